-- deadlines_pop: take the timers that are due, at most n, so that no
-- other host gets them: each due timer is handed to exactly one caller.
-- The caller fires them (an append, a member_leave...).  A host that
-- dies between the pop and the firing loses those timers.
--
-- KEYS[1] leases     <P>leases
-- KEYS[2] deadlines  <P>deadlines
-- ARGV[1] session
-- ARGV[2] n          1..1000
-- Reply: { room base, name, due ms, ... }
-- Errors: ARGS, FENCED
local function deadlines_pop(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 2)
	local p = shard_prefix(keys[1])
	check_key(keys[2], p .. 'deadlines', 'KEYS[2]')
	local sess = session(argv, 1)
	local n = int(argv, 2, 'n', 1, 1000)
	local now = now_ms()
	fence(keys[1], sess, now)
	local due = redis.call('ZRANGEBYSCORE', keys[2], '-inf', str(now),
	    'WITHSCORES', 'LIMIT', 0, n)
	local out = {}
	for i = 1, #due, 2 do
		redis.call('ZREM', keys[2], due[i])
		local at = string.find(due[i], '\0', 1, true)
		out[#out + 1] = string.sub(due[i], 1, at - 1)
		out[#out + 1] = string.sub(due[i], at + 1)
		out[#out + 1] = tonumber(due[i + 1])
	end
	return out
end
step('deadlines_pop', deadlines_pop)
