-- room_open: find a room, or create it, and return what a host needs to
-- start its mirror: the state and every transaction the log keeps.  The
-- engine's model (see doc/cluster.txt, "Transactions"): the log holds one
-- entry per committed transaction, id "<ver>-0", whose data is the
-- message that was published for it.
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] log      <base>:log
-- KEYS[3] members  <base>:members  hash mid -> member line
-- KEYS[4] pres     <base>:pres     hash mid -> sessions where present
-- KEYS[5] lost     <base>:lost     set of mids lost with a dead host
-- KEYS[6] rooms    <P>rooms:<dialect>  set of room ids
-- KEYS[7] leases   <P>leases
-- ARGV[1] session
-- ARGV[2] dialect  a word
-- ARGV[3] id       the room id (at most 64 bytes)
-- ARGV[4] create   0: find it; 1: create it (EXISTS if it is open)
-- ARGV[5] idle_ms  create: the room's keys expire this long after its
--                  last transaction (0: never)
-- ARGV[6] max      at most this many log entries (0: all kept)
-- Reply: { epoch, ver, seq, created, words ("" or the text of txn_commit's
--          words argument), next_mid, { mid, line, ... },
--          { mid, sessions, ... }, { ver, data, ... } }
-- Errors: ARGS, FENCED (create), EXISTS, NOROOM
local function room_open(keys, argv)
	nkeys(keys, 7)
	nargs(argv, 6)
	local k = room_keys(keys, { 'log', 'members', 'pres', 'lost' })
	local p = shard_prefix(keys[7])
	local sess = session(argv, 1)
	local dialect = word(argv, 2, 'dialect')
	local id = bytes(argv, 3, 'id', 64)
	local create = int(argv, 4, 'create', 0, 1)
	local idle = int(argv, 5, 'idle_ms', 0, 2 ^ 40)
	local max = int(argv, 6, 'max', 0, INT_MAX)
	check_key(keys[6], p .. 'rooms:' .. dialect, 'KEYS[6]')
	check_key(k.base, p .. '{' .. dialect .. ':' .. id .. '}', 'base')
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	if create == 1 then
		local now = now_ms()
		fence(keys[7], sess, now)
		if m[1] and not m[2] then fail('EXISTS', 'the room exists') end
		local epoch = fresh('room', k.base, m[1] or '')
		redis.call('DEL', k.meta, k.log, k.members, k.pres, k.lost)
		redis.call('HSET', k.meta, 'epoch', str(epoch), 'seq', '0',
		    'ver', '0', 'life', life(), 'next_mid', '0',
		    'dialect', dialect, 'created', str(now), 'idle', str(idle),
		    'words', '')
		if idle > 0 then redis.call('PEXPIRE', k.meta, idle) end
		redis.call('SADD', keys[6], id)
	elseif not m[1] or m[2] then
		redis.call('SREM', keys[6], id)
		fail('NOROOM', 'no such room')
	end
	local st = txn_state(k)
	room_touch(k, st)
	local f = redis.call('HMGET', k.meta, 'created', 'words', 'next_mid')
	local ents = log_entries(k, 0, max)
	return { st.epoch, st.ver, st.seq, tonumber(f[1]), f[2] or '',
	    tonumber(f[3]), redis.call('HGETALL', k.members),
	    redis.call('HGETALL', k.pres), ents }
end
step('room_open', room_open)

-- room_find: room_open with create 0, which also runs when Redis is out
-- of memory (finding a room writes at most its new epoch).
local function room_find(keys, argv)
	if argv[4] ~= '0' then fail('ARGS', 'room_find only finds') end
	return room_open(keys, argv)
end
step('room_find', room_find, { 'allow-oom' })
