-- session_drop: forget an expired session once no room holds its
-- connections any more (its sess set is empty).
--
-- KEYS[1] leases   <P>leases
-- KEYS[2] sess     <P>sess:<session>
-- KEYS[3] host     <P>host:<host>
-- ARGV[1] session
-- Reply: 1 when dropped (or already gone), 0 while rooms remain
-- Errors: ARGS, ALIVE
local function session_drop(keys, argv)
	nkeys(keys, 3)
	nargs(argv, 1)
	local p = shard_prefix(keys[1])
	local sess, host, inc = session(argv, 1)
	check_key(keys[2], p .. 'sess:' .. sess, 'KEYS[2]')
	check_key(keys[3], p .. 'host:' .. host, 'KEYS[3]')
	local until_ms = redis.call('ZSCORE', keys[1], sess)
	if until_ms and tonumber(until_ms) > now_ms() then
		fail('ALIVE', 'the session holds its lease')
	end
	if redis.call('SCARD', keys[2]) > 0 then return 0 end
	redis.call('ZREM', keys[1], sess)
	if redis.call('GET', keys[3]) == inc then redis.call('DEL', keys[3]) end
	return 1
end
step('session_drop', session_drop)
