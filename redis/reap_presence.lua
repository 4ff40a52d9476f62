-- reap_presence: forget an expired session's presence in one room.  A
-- member left present nowhere goes to the room's lost set (and the room
-- to the shard's), for the next transaction on the room to hand to its
-- dialect's member_lost: once, since that transaction removes it.  One
-- entry with the presence counts is committed, so every mirror learns.
-- Not fenced: reaping the dead is right whoever does it.  Refused while
-- another host holds the room's lock.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] pres, KEYS[4] lock, KEYS[5] lost
-- KEYS[6] leases, KEYS[7] sess <P>sess:<session>, KEYS[8] <P>lost
-- ARGV[1] session  the expired session
-- ARGV[2] maxlen   as in txn_commit
-- Reply: members now lost
-- Errors: ARGS, ALIVE (the session's lease runs), BUSY
local function reap_presence(keys, argv)
	nkeys(keys, 8)
	nargs(argv, 2)
	local k = room_keys(keys, { 'log', 'pres', 'lock', 'lost' })
	local p = shard_prefix(keys[6])
	room_in(k, p)
	local sess = session(argv, 1)
	local maxlen = int(argv, 2, 'maxlen', 0, INT_MAX)
	check_key(keys[7], p .. 'sess:' .. sess, 'KEYS[7]')
	check_key(keys[8], p .. 'lost', 'KEYS[8]')
	local until_ms = redis.call('ZSCORE', keys[6], sess)
	if until_ms and tonumber(until_ms) > now_ms() then
		fail('ALIVE', 'the session holds its lease')
	end
	local m = redis.call('HMGET', k.meta, 'epoch', 'closed')
	if not m[1] or m[2] then
		redis.call('SREM', keys[7], k.base)
		return 0
	end
	if redis.call('EXISTS', k.lock) == 1 then
		fail('BUSY', str(redis.call('PTTL', k.lock)))
	end
	local lost = presence_drop(k, txn_state(k), sess,
	    redis.call('HGETALL', k.pres), keys[8], maxlen)
	redis.call('SREM', keys[7], k.base)
	return lost
end
step('reap_presence', reap_presence)
