-- conn_leave: a connection leaves the room.  When it was its member's
-- last, the member leaves too, with a leave record, unless keep is 1 (the
-- member stays without connections, e.g. for a grace period, until
-- member_leave).  Leaving with a connection that is not in (any more)
-- is answered { 0, 0, epoch }; so is leaving a closed or deleted room.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] conns, KEYS[5] ix,
-- KEYS[6] leases, KEYS[7] sess (see member_join)
-- ARGV[1] session
-- ARGV[2] cid
-- ARGV[3] keep     0 or 1
-- ARGV[4] reason   bytes, at most 1024: the leave record's data
-- ARGV[5] maxlen   as in append
-- Reply: { mid, seq of the leave record or 0, epoch }
-- Errors: ARGS, FENCED
local function conn_leave(keys, argv)
	nkeys(keys, 7)
	nargs(argv, 5)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	local p = shard_prefix(keys[6])
	local sess = session(argv, 1)
	check_key(keys[7], p .. 'sess:' .. sess, 'KEYS[7]')
	local cid = word(argv, 2, 'cid')
	local keep = int(argv, 3, 'keep', 0, 1)
	local reason = bytes(argv, 4, 'reason', 1024)
	local maxlen = int(argv, 5, 'maxlen', 0, INT_MAX)
	fence(keys[6], sess, now_ms())
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	local conn = sess .. '/' .. cid
	local mid = redis.call('HGET', k.conns, conn)
	if not m[1] or m[2] or not mid then
		if redis.call('HEXISTS', k.ix, 's:' .. sess) == 0 then
			redis.call('SREM', keys[7], k.base)
		end
		return { 0, 0, tonumber(m[1] or '0') }
	end
	local st = room_load(k)
	room_touch(k, st)
	mid = tonumber(mid)
	local left = conn_drop(k, sess, cid, mid)
	if redis.call('HEXISTS', k.ix, 's:' .. sess) == 0 then
		redis.call('SREM', keys[7], k.base)
	end
	local seq = 0
	if left == 0 and keep == 0 then
		member_drop(k, mid)
		local recs = { { REC_LEAVE, mid, reason } }
		seq = select(2, log_append(k, st, recs, maxlen))
	end
	room_expiry(k, st)
	return { mid, seq, st.epoch }
end
step('conn_leave', conn_leave)
