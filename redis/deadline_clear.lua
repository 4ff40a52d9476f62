-- deadline_clear: cancel the room's timer "name" if it has not fired.
--
-- KEYS[1] leases     <P>leases
-- KEYS[2] deadlines  <P>deadlines
-- ARGV[1] session
-- ARGV[2] room       the room's base ("roomd:{canvas:abc}")
-- ARGV[3] name       a word
-- Reply: 1 if it was pending, else 0
-- Errors: ARGS, FENCED
local function deadline_clear(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 3)
	local p = shard_prefix(keys[1])
	check_key(keys[2], p .. 'deadlines', 'KEYS[2]')
	local sess = session(argv, 1)
	local base = bytes(argv, 2, 'room', 1024)
	local name = word(argv, 3, 'name')
	fence(keys[1], sess, now_ms())
	return redis.call('ZREM', keys[2], base .. '\0' .. name)
end
step('deadline_clear', deadline_clear)
