-- reap_room: remove up to limit connections of an expired session from
-- one room; a member left without connections leaves, with a leave record
-- (reason "lost").  Each connection is removed by exactly one call, so
-- two hosts reaping at once announce each member's leave once.  Call
-- again while the reply's second number is not 0.  Not fenced: reaping
-- the dead is right whoever does it.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] conns, KEYS[5] ix
-- KEYS[6] leases
-- KEYS[7] sess     <P>sess:<session>
-- ARGV[1] session  the expired session
-- ARGV[2] limit    1..10000
-- ARGV[3] maxlen   as in append
-- Reply: { members that left, connections of the session still here }
-- Errors: ARGS, ALIVE (the session's lease runs)
local function reap_room(keys, argv)
	nkeys(keys, 7)
	nargs(argv, 3)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	local p = shard_prefix(keys[6])
	local sess = session(argv, 1)
	check_key(keys[7], p .. 'sess:' .. sess, 'KEYS[7]')
	local limit = int(argv, 2, 'limit', 1, 10000)
	local maxlen = int(argv, 3, 'maxlen', 0, INT_MAX)
	local until_ms = redis.call('ZSCORE', keys[6], sess)
	if until_ms and tonumber(until_ms) > now_ms() then
		fail('ALIVE', 'the session holds its lease')
	end
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	if not m[1] or m[2] then
		redis.call('SREM', keys[7], k.base)
		return { 0, 0 }
	end
	local st = room_load(k)
	local cids = list_words(k.ix, 's:' .. sess)
	room_touch(k, st)
	local recs = {}
	for i = 1, math.min(limit, #cids) do
		local conn = sess .. '/' .. cids[i]
		local mid = tonumber(redis.call('HGET', k.conns, conn) or '0')
		if mid == 0 then
			list_del(k.ix, 's:' .. sess, cids[i])
		elseif conn_drop(k, sess, cids[i], mid) == 0 and
		    redis.call('HEXISTS', k.members, str(mid)) == 1 then
			member_drop(k, mid)
			recs[#recs + 1] = { REC_LEAVE, mid, 'lost' }
		end
	end
	if #recs > 0 then log_append(k, st, recs, maxlen) end
	room_expiry(k, st)
	local left = math.max(#cids - limit, 0)
	if left == 0 then redis.call('SREM', keys[7], k.base) end
	return { #recs, left }
end
step('reap_room', reap_room)
