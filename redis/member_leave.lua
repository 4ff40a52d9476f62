-- member_leave: a member leaves (kicked, or its grace ran out): it and
-- all its connections, on every host, go, with one leave record; each
-- host closes its own connections of that member when the record comes.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] conns, KEYS[5] ix
-- KEYS[6] leases
-- ARGV[1] session
-- ARGV[2] mid
-- ARGV[3] reason   bytes, at most 1024
-- ARGV[4] maxlen   as in append
-- Reply: { seq of the leave record, epoch }
-- Errors: ARGS, FENCED, NOROOM, CLOSED, NOMEMBER
local function member_leave(keys, argv)
	nkeys(keys, 6)
	nargs(argv, 4)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	shard_prefix(keys[6])
	local sess = session(argv, 1)
	local mid = int(argv, 2, 'mid', 1, INT_MAX)
	local reason = bytes(argv, 3, 'reason', 1024)
	local maxlen = int(argv, 4, 'maxlen', 0, INT_MAX)
	fence(keys[6], sess, now_ms())
	local st = room_load(k)
	if redis.call('HEXISTS', k.members, str(mid)) == 0 then
		fail('NOMEMBER', 'no member ' .. str(mid))
	end
	room_touch(k, st)
	-- A session left without connections here keeps the room in its
	-- set until it leaves or is reaped; both cope with that.
	for _, conn in ipairs(list_words(k.ix, 'c:' .. str(mid))) do
		local s, cid = string.match(conn, '^(.*)/([^/]+)$')
		conn_drop(k, s, cid, mid)
	end
	member_drop(k, mid)
	local _, seq = log_append(k, st, { { REC_LEAVE, mid, reason } },
	    maxlen)
	room_expiry(k, st)
	return { seq, st.epoch }
end
step('member_leave', member_leave)
