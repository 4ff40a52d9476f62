-- host_renew: extend a live session's lease.  A lease that has run out is
-- never renewed: the host must stop writing, close its clients and join
-- again, since any host may already be reaping its connections.
--
-- KEYS[1] leases   <P>leases
-- KEYS[2] host     <P>host:<host>
-- ARGV[1] session  "<host>/<incarnation>"
-- ARGV[2] lease_ms 100..3600000
-- Reply: { lease end ms, now ms, replicas online }
-- Errors: ARGS, FENCED (no such session, lease expired, superseded)

-- The replicas of this server that are online (INFO replication): those
-- a WAIT can count, for the host to compare with its cluster_wait.
local function replicas_online()
	local n = 0
	for _ in string.gmatch(redis.call('INFO', 'replication'),
	    'slave%d+:[^\r\n]*state=online') do
		n = n + 1
	end
	return n
end

local function host_renew(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 2)
	local p = shard_prefix(keys[1])
	local sess, host, inc = session(argv, 1)
	local lease = int(argv, 2, 'lease_ms', 100, 3600000)
	check_key(keys[2], p .. 'host:' .. host, 'KEYS[2]')
	local now = now_ms()
	fence(keys[1], sess, now)
	if redis.call('GET', keys[2]) ~= inc then
		fail('FENCED', 'superseded by a newer session of the host')
	end
	redis.call('ZADD', keys[1], str(now + lease), sess)
	return { now + lease, now, replicas_online() }
end
step('host_renew', host_renew, { 'allow-oom' })
