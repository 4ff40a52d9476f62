-- txn_lock: take the room's lock for a transaction, and return what the
-- host's mirror lacks: the entries after its ver.  The lock is a lease of
-- px ms held by (session, token); taking it again with the same pair
-- extends it.  Nothing of the room changes but the lock (and the epoch in
-- a new server life).
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] lock, KEYS[4] lost
-- KEYS[5] leases
-- ARGV[1] session
-- ARGV[2] token    a word, new for each transaction
-- ARGV[3] px       the lock's lease, 10..60000 ms
-- ARGV[4] after    the mirror's ver
-- ARGV[5] max      at most this many entries (1..100000)
-- Reply: { epoch, ver, seq, complete (1 if every entry after "after" is
--          returned), { ver, data, ... }, { lost mid, ... } }
-- Errors: ARGS, FENCED, NOROOM, BUSY <ms left> (another holds the lock)
local function txn_lock(keys, argv)
	nkeys(keys, 5)
	nargs(argv, 5)
	local k = room_keys(keys, { 'log', 'lock', 'lost' })
	room_in(k, shard_prefix(keys[5]))
	local sess = session(argv, 1)
	local token = word(argv, 2, 'token')
	local px = int(argv, 3, 'px', 10, 60000)
	local after = int(argv, 4, 'after', 0, INT_MAX)
	local max = int(argv, 5, 'max', 1, 100000)
	fence(keys[5], sess, now_ms())
	local st = txn_state(k)
	local me = sess .. ' ' .. token
	local cur = redis.call('GET', k.lock)
	if cur and cur ~= me then
		fail('BUSY', str(redis.call('PTTL', k.lock)))
	end
	room_touch(k, st)
	redis.call('SET', k.lock, me, 'PX', str(px))
	local ents = {}
	local complete = after <= st.ver and 1 or 0
	if after < st.ver then
		ents = log_entries(k, after, max)
		if #ents == 0 or ents[1] ~= after + 1 or
		    ents[#ents - 1] ~= st.ver then
			complete = 0
		end
	end
	return { st.epoch, st.ver, st.seq, complete, ents,
	    redis.call('SMEMBERS', k.lost) }
end
step('txn_lock', txn_lock)
