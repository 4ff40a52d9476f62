-- room_delete: append the close record, then drop the room: its members,
-- connections and deadlines at once, its meta and log after linger_ms (so
-- that a host that missed the published close still reads it), or at once
-- with linger_ms 0.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] conns, KEYS[5] ix
--         (see room_create)
-- KEYS[6] leases     <P>leases
-- KEYS[7] deadlines  <P>deadlines
-- ARGV[1] session
-- ARGV[2] reason     bytes, at most 1024
-- ARGV[3] linger_ms  0..86400000
-- Reply: { seq of the close record, epoch }
-- Errors: ARGS, FENCED, NOROOM, CLOSED
local function room_delete(keys, argv)
	nkeys(keys, 7)
	nargs(argv, 3)
	local k = room_keys(keys, { 'log', 'members', 'conns', 'ix' })
	local p = shard_prefix(keys[6])
	check_key(keys[7], p .. 'deadlines', 'KEYS[7]')
	local sess = session(argv, 1)
	local reason = bytes(argv, 2, 'reason', 1024)
	local linger = int(argv, 3, 'linger_ms', 0, 86400000)
	fence(keys[6], sess, now_ms())
	local st = room_load(k)
	local names = list_words(k.ix, 'd')
	local _, seq = log_append(k, st, { { REC_CLOSE, 0, reason } }, 0)
	for _, name in ipairs(names) do
		redis.call('ZREM', keys[7], k.base .. '\0' .. name)
	end
	redis.call('DEL', k.members, k.conns, k.ix)
	if linger > 0 then
		redis.call('HSET', k.meta, 'closed', '1')
		redis.call('PEXPIRE', k.meta, linger)
		redis.call('PEXPIRE', k.log, linger)
	else
		redis.call('DEL', k.meta, k.log)
	end
	return { seq, st.epoch }
end
step('room_delete', room_delete)
