-- host_leave: a host ends its session on purpose (shutdown): the lease
-- ends now and its connections become reapable at once.  Not fenced: an
-- expired session leaving changes nothing.
--
-- KEYS[1] leases   <P>leases
-- KEYS[2] host     <P>host:<host>
-- ARGV[1] session  "<host>/<incarnation>"
-- Reply: 1
-- Errors: ARGS
local function host_leave(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 1)
	local p = shard_prefix(keys[1])
	local sess, host, inc = session(argv, 1)
	check_key(keys[2], p .. 'host:' .. host, 'KEYS[2]')
	local now = now_ms()
	redis.call('ZADD', keys[1], 'XX', 'LT', str(now), sess)
	if redis.call('GET', keys[2]) == inc then
		redis.call('DEL', keys[2])
	end
	return 1
end
step('host_leave', host_leave, { 'allow-oom' })
