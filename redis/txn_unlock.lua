-- txn_unlock: give back a room's lock held by (session, token), for a
-- transaction that changed nothing.  Releasing a lock one does not hold
-- (it expired, another took it) does nothing.
--
-- KEYS[1] lock     <base>:lock
-- ARGV[1] session, ARGV[2] token
-- Reply: 1 if it was held, else 0
-- Errors: ARGS
local function txn_unlock(keys, argv)
	nkeys(keys, 1)
	nargs(argv, 2)
	if not string.match(keys[1] or '', ':lock$') then
		fail('ARGS', 'KEYS[1] must end in ":lock"')
	end
	local sess = session(argv, 1)
	local token = word(argv, 2, 'token')
	if redis.call('GET', keys[1]) ~= sess .. ' ' .. token then
		return 0
	end
	redis.call('DEL', keys[1])
	return 1
end
step('txn_unlock', txn_unlock, { 'allow-oom' })
