-- host_join: a host starts a session on this shard: a new incarnation and
-- a lease of lease_ms by Redis's clock.  The host's previous session, if
-- any, ends now, so that its connections can be reaped.
--
-- KEYS[1] leases   <P>leases      zset session -> lease end (ms)
-- KEYS[2] host     <P>host:<host> the host's current incarnation
-- ARGV[1] host     a word naming the host (stable across restarts)
-- ARGV[2] lease_ms 100..3600000
-- Reply: { incarnation, lease end ms, now ms }; the session is
-- "<host>/<incarnation>".
-- Errors: ARGS
local function host_join(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 2)
	local p = shard_prefix(keys[1])
	local host = word(argv, 1, 'host')
	local lease = int(argv, 2, 'lease_ms', 100, 3600000)
	check_key(keys[2], p .. 'host:' .. host, 'KEYS[2]')
	local now = now_ms()
	local inc = fresh('join', host)
	local old = redis.call('GET', keys[2])
	if old then
		redis.call('ZADD', keys[1], 'XX', 'LT', str(now),
		    host .. '/' .. old)
	end
	redis.call('SET', keys[2], str(inc))
	redis.call('ZADD', keys[1], str(now + lease), host .. '/' .. str(inc))
	return { inc, now + lease, now }
end
step('host_join', host_join)
