-- deadline_set: set (or move) the room's timer "name" to fire delay_ms
-- from now by Redis's clock; deadlines_pop hands it to one host.
--
-- KEYS[1] meta       <base>:meta
-- KEYS[2] ix         <base>:ix (its "d" field lists the room's timer
--                    names, for room_delete)
-- KEYS[3] leases     <P>leases
-- KEYS[4] deadlines  <P>deadlines  zset "<base>\0<name>" -> due ms
-- ARGV[1] session
-- ARGV[2] name       a word
-- ARGV[3] delay_ms   0..2^40
-- Reply: due ms
-- Errors: ARGS, FENCED, NOROOM, CLOSED
local function deadline_set(keys, argv)
	nkeys(keys, 4)
	nargs(argv, 3)
	local k = room_keys(keys, { 'ix' })
	local p = shard_prefix(keys[3])
	check_key(keys[4], p .. 'deadlines', 'KEYS[4]')
	local sess = session(argv, 1)
	local name = word(argv, 2, 'name')
	local delay = int(argv, 3, 'delay_ms', 0, 2 ^ 40)
	local now = now_ms()
	fence(keys[3], sess, now)
	local st = room_load(k)
	room_touch(k, st)
	local due = now + delay
	redis.call('ZADD', keys[4], str(due), k.base .. '\0' .. name)
	local names = list_words(k.ix, 'd')
	local known = false
	for _, n in ipairs(names) do known = known or n == name end
	if not known then list_add(k.ix, 'd', name) end
	return due
end
step('deadline_set', deadline_set)
