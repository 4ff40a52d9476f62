-- presence_end: members of a live session that lost their last connection
-- on its host (with a worker that died).  The session's presence of each
-- goes; one left present nowhere goes to the room's lost set (and the
-- room to the shard's), for the next transaction on the room to hand to
-- its dialect's member_lost: once, since that transaction removes it.  A
-- member the session is not present for is left alone, so calling again
-- with the same members changes nothing.  One entry with the presence
-- counts is committed, so every mirror learns.  Refused while a host
-- holds the room's lock.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] pres, KEYS[4] lock, KEYS[5] lost
-- KEYS[6] leases, KEYS[7] <P>lost
-- ARGV[1] session  the host's live session
-- ARGV[2] maxlen   as in txn_commit
-- ARGV[3..] mids   at most 100000
-- Reply: members now lost
-- Errors: ARGS, FENCED (the session ended: its reaping does the rest),
--         BUSY <ms left>
local function presence_end(keys, argv)
	nkeys(keys, 7)
	if #argv < 3 or #argv > 100002 then
		fail('ARGS', 'expected a session, maxlen and 1 to 100000 mids')
	end
	local k = room_keys(keys, { 'log', 'pres', 'lock', 'lost' })
	local p = shard_prefix(keys[6])
	room_in(k, p)
	local sess = session(argv, 1)
	local maxlen = int(argv, 2, 'maxlen', 0, INT_MAX)
	local mids = {}
	for i = 3, #argv do
		mids[#mids + 1] = str(int(argv, i, 'mid', 0, INT_MAX))
	end
	check_key(keys[7], p .. 'lost', 'KEYS[7]')
	fence(keys[6], sess, now_ms())
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	if not m[1] or m[2] then return 0 end
	if redis.call('EXISTS', k.lock) == 1 then
		fail('BUSY', str(redis.call('PTTL', k.lock)))
	end
	local pres = {}
	for _, mid in ipairs(mids) do
		pres[#pres + 1] = mid
		pres[#pres + 1] = redis.call('HGET', k.pres, mid) or ''
	end
	return presence_drop(k, txn_state(k), sess, pres, keys[7], maxlen)
end
step('presence_end', presence_end)
