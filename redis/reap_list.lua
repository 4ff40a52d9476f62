-- reap_list: sessions whose lease has run out by Redis's clock, oldest
-- first, at most n: for each, visit the rooms of <P>sess:<session> with
-- reap_presence, then call session_drop.  Any host may reap.
--
-- KEYS[1] leases   <P>leases
-- ARGV[1] n        1..1000
-- Reply: { session, ... }
-- Errors: ARGS
local function reap_list(keys, argv)
	nkeys(keys, 1)
	nargs(argv, 1)
	shard_prefix(keys[1])
	local n = int(argv, 1, 'n', 1, 1000)
	return redis.call('ZRANGEBYSCORE', keys[1], '-inf', str(now_ms()),
	    'LIMIT', 0, n)
end
step('reap_list', reap_list, { 'no-writes' })
