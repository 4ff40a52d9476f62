-- room_create: a new room with seq 0 and a new epoch.  A room that exists
-- and is not closed is refused; a closed one (lingering after room_delete)
-- is replaced, and its leftovers go.  While it has no connections, its
-- keys expire after idle_ms.
--
-- KEYS[1] meta     <base>:meta     hash: epoch seq life next_mid dialect
--                                  created keep idle closed w0..w7
-- KEYS[2] log      <base>:log      stream of records, id "<seq>-0"
-- KEYS[3] members  <base>:members  hash mid -> member bytes
-- KEYS[4] conns    <base>:conns    hash "<session>/<cid>" -> mid
-- KEYS[5] ix       <base>:ix       hash, see lib.lua
-- KEYS[6] leases   <P>leases
-- ARGV[1] session
-- ARGV[2] dialect  a word
-- ARGV[3] idle_ms  0 (never expire) or 1..2^40
-- Reply: { epoch, created ms }
-- Errors: ARGS, FENCED, EXISTS
local function room_create(keys, argv)
	nkeys(keys, 6)
	nargs(argv, 3)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	shard_prefix(keys[6])
	local sess = session(argv, 1)
	local dialect = word(argv, 2, 'dialect')
	local idle = int(argv, 3, 'idle_ms', 0, 2 ^ 40)
	local now = now_ms()
	fence(keys[6], sess, now)
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	if m[1] and not m[2] then fail('EXISTS', 'the room exists') end
	local epoch = fresh('room', k.base, m[1] or '')
	redis.call('DEL', k.meta, k.log, k.members, k.conns, k.ix)
	redis.call('HSET', k.meta, 'epoch', str(epoch), 'seq', '0',
	    'life', life(), 'next_mid', '0', 'dialect', dialect,
	    'created', str(now), 'keep', '0', 'idle', str(idle))
	if idle > 0 then redis.call('PEXPIRE', k.meta, idle) end
	return { epoch, now }
end
step('room_create', room_create)
