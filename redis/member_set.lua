-- member_set: replace a member's bytes (its role, its authorities, its
-- name: the engine encodes them) with a record carrying the new bytes,
-- so that every host applies the change at the same place in the order.
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] log      <base>:log
-- KEYS[3] members  <base>:members
-- KEYS[4] leases   <P>leases
-- ARGV[1] session
-- ARGV[2] mid
-- ARGV[3] member   bytes, at most 64 KiB
-- ARGV[4] maxlen   as in append
-- Reply: { seq of the record, epoch }
-- Errors: ARGS, FENCED, NOROOM, CLOSED, NOMEMBER
local function member_set(keys, argv)
	nkeys(keys, 4)
	nargs(argv, 4)
	local k = room_keys(keys, { 'log', 'members' })
	shard_prefix(keys[4])
	local sess = session(argv, 1)
	local mid = int(argv, 2, 'mid', 1, INT_MAX)
	local member = bytes(argv, 3, 'member', 65536)
	local maxlen = int(argv, 4, 'maxlen', 0, INT_MAX)
	fence(keys[4], sess, now_ms())
	local st = room_load(k)
	if redis.call('HEXISTS', k.members, str(mid)) == 0 then
		fail('NOMEMBER', 'no member ' .. str(mid))
	end
	room_touch(k, st)
	redis.call('HSET', k.members, str(mid), member)
	local _, seq = log_append(k, st, { { REC_SET, mid, member } }, maxlen)
	return { seq, st.epoch }
end
step('member_set', member_set)
