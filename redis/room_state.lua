-- room_state: everything a host needs to start mirroring a room, at one
-- seq: apply the records after it from the channel or read.  Not fenced;
-- runs when Redis is out of memory.
-- Like read, it may take the room's new epoch after a restart/failover.
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] members  <base>:members
-- KEYS[3] ix       <base>:ix
-- ARGV    none
-- Reply: { epoch, seq, dialect, created ms, keep, { w0..w7 },
--          { mid, member bytes, connections, mid, ... } }
-- Errors: ARGS, NOROOM, CLOSED
local function room_state(keys, argv)
	nkeys(keys, 3)
	nargs(argv, 0)
	local k = room_keys(keys, { 'members', 'ix' })
	local st = room_load(k)
	room_touch(k, st)
	local m = redis.call('HMGET', k.meta, 'dialect', 'created',
	    'w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7')
	local words = {}
	for i = 1, WORDS do words[i] = tonumber(m[i + 2] or '0') end
	local all = redis.call('HGETALL', k.members)
	local out = {}
	for i = 1, #all, 2 do
		out[#out + 1] = tonumber(all[i])
		out[#out + 1] = all[i + 1]
		out[#out + 1] = #list_words(k.ix, 'c:' .. all[i])
	end
	return { st.epoch, st.seq, m[1], tonumber(m[2]), st.keep, words, out }
end
step('room_state', room_state, { 'allow-oom' })
