-- member_join: a connection joins the room, as a new member (mid 0) or as
-- one more connection of member mid (a second tab, maybe on another
-- host).  A new member takes the next mid, its unique keys (a name, a
-- user id: refused if another member holds one) and a join record, all in
-- one step, so the record order and the membership agree.  Joining again
-- with a connection already in is answered as the first time.
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] log      <base>:log
-- KEYS[3] members  <base>:members
-- KEYS[4] conns    <base>:conns
-- KEYS[5] ix       <base>:ix
-- KEYS[6] leases   <P>leases
-- KEYS[7] sess     <P>sess:<session>  set of the rooms (bases) where the
--                  session has connections: what a reaper visits
-- ARGV[1] session
-- ARGV[2] cid      the connection, a word unique within the session
-- ARGV[3] mid      0 for a new member, else an existing member's mid
-- ARGV[4] member   bytes (at most 64 KiB), kept and sent in the record
-- ARGV[5] maxlen   as in append
-- ARGV[6] nkeys    then nkeys unique keys (bytes, no newline, <= 256)
-- Reply: { mid, seq of the join record or 0, epoch }
-- Errors: ARGS, FENCED, NOROOM, CLOSED, NOMEMBER,
--         EXISTS <mid> <key>: a unique key is held by member mid;
--         EXISTS <mid>: the connection is in as another member
local function member_join(keys, argv)
	nkeys(keys, 7)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	local p = shard_prefix(keys[6])
	if #argv < 6 then fail('ARGS', 'too few arguments') end
	local sess = session(argv, 1)
	check_key(keys[7], p .. 'sess:' .. sess, 'KEYS[7]')
	local cid = word(argv, 2, 'cid')
	local mid = int(argv, 3, 'mid', 0, INT_MAX)
	local member = bytes(argv, 4, 'member', 65536)
	local maxlen = int(argv, 5, 'maxlen', 0, INT_MAX)
	local n = int(argv, 6, 'nkeys', 0, 16)
	nargs(argv, 6 + n)
	local uniq = {}
	for i = 1, n do
		uniq[i] = bytes(argv, 6 + i, 'key', 256)
		if #uniq[i] == 0 or string.find(uniq[i], '\n', 1, true) then
			fail('ARGS', 'key (argument ' .. (6 + i) ..
			    ') is empty or has a newline')
		end
	end
	fence(keys[6], sess, now_ms())
	local st = room_load(k)
	local conn = sess .. '/' .. cid
	local had = redis.call('HGET', k.conns, conn)
	if had then
		if mid ~= 0 and tonumber(had) ~= mid then
			fail('EXISTS', had)
		end
		return { tonumber(had), 0, st.epoch }
	end
	if mid ~= 0 and redis.call('HEXISTS', k.members, str(mid)) == 0 then
		fail('NOMEMBER', 'no member ' .. str(mid))
	end
	if mid == 0 then
		for _, key in ipairs(uniq) do
			local holder = redis.call('HGET', k.ix, 'k:' .. key)
			if holder then fail('EXISTS', holder .. ' ' .. key) end
		end
	end
	-- Every check passed: write.
	room_touch(k, st)
	local seq = 0
	if mid == 0 then
		mid = redis.call('HINCRBY', k.meta, 'next_mid', 1)
		redis.call('HSET', k.members, str(mid), member)
		for _, key in ipairs(uniq) do
			redis.call('HSET', k.ix, 'k:' .. key, str(mid))
		end
		if n > 0 then
			redis.call('HSET', k.ix, 'm:' .. str(mid),
			    table.concat(uniq, '\n'))
		end
		seq = select(2, log_append(k, st, { { REC_JOIN, mid, member } },
		    maxlen))
	end
	redis.call('HSET', k.conns, conn, str(mid))
	list_add(k.ix, 'c:' .. str(mid), conn)
	list_add(k.ix, 's:' .. sess, cid)
	redis.call('SADD', keys[7], k.base)
	room_expiry(k, st)
	return { mid, seq, st.epoch }
end
step('member_join', member_join)
