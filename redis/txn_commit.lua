-- txn_commit: commit one transaction of the host that holds the room's
-- lock: its members, presence, words and records, as one log entry and
-- one message.  The body is the host's own description of the change
-- (the engine parses it on every host); the arguments after it are the
-- same change in the terms this script keeps (members, presence).
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] pres, KEYS[5] lock,
-- KEYS[6] lost
-- KEYS[7] leases, KEYS[8] sess <P>sess:<session>, KEYS[9] <P>lost,
-- KEYS[10] <P>rooms:<dialect>
-- ARGV[1] session, ARGV[2] token (the lock's)
-- ARGV[3] release  1: release the lock (the end of the transaction)
-- ARGV[4] maxlen   entries kept in the log, 0 for all
-- ARGV[5] body     at most 16 MiB
-- ARGV[6] nrecs    records in the body (the seqs they take)
-- ARGV[7] close    1: the room closes (its members, presence, lock and lost
--                  members go; meta and log stay a minute for late readers)
-- ARGV[8] words    "" or the room's words after the change (the 8
--                  dialect words, the flags, the password's salt and
--                  hash, as the host writes them)
-- ARGV[9] keep     "" or the ver of the entry from which the log keeps
--                  every entry whatever maxlen says (a relay room's
--                  saved state; 0: keep every entry from now on)
-- ARGV[10] next_mid
-- then nups, nups pairs (mid, member line); nrm, nrm mids; npres, npres
-- pairs (mid, 0/1: this session present); ndone, ndone mids handed to
-- member_lost.  Mids are integers.
-- Reply: { ver, first seq, epoch, { mid, sessions present, ... } }
-- Errors: ARGS, FENCED, NOROOM, LOCKLOST (the lock is not ours)
--
-- A list: its count n at argv[i], then n items of width 1 (a mid) or 2 (a
-- mid and a member line, or with flag a mid and 0/1).  Mids are integers,
-- returned in their canonical form (they name hash fields).
local function list_of(argv, i, what, width, flag)
	local n = int(argv, i, what, 0, 100000)
	if #argv < i + n * width then fail('ARGS', what .. ': too few') end
	local out = {}
	for j = 1, n * width do
		if (j - 1) % width == 0 then
			out[j] = str(int(argv, i + j, what .. ' mid', 0, INT_MAX))
		elseif flag then
			out[j] = str(int(argv, i + j, what .. ' flag', 0, 1))
		else
			out[j] = argv[i + j]
		end
	end
	return out, i + n * width + 1
end

local function txn_commit(keys, argv)
	nkeys(keys, 10)
	local k = room_keys(keys, { 'log', 'members', 'pres', 'lock', 'lost' })
	local p = shard_prefix(keys[7])
	room_in(k, p)
	if #argv < 14 then fail('ARGS', 'too few arguments') end
	local sess = session(argv, 1)
	local token = word(argv, 2, 'token')
	local release = int(argv, 3, 'release', 0, 1)
	local maxlen = int(argv, 4, 'maxlen', 0, INT_MAX)
	local body = bytes(argv, 5, 'body', 16777216)
	local nrecs = int(argv, 6, 'nrecs', 0, 1000000)
	local close = int(argv, 7, 'close', 0, 1)
	local words = bytes(argv, 8, 'words', 400)
	local keep = argv[9] ~= '' and int(argv, 9, 'keep', 0, INT_MAX)
	local next_mid = int(argv, 10, 'next_mid', 0, INT_MAX)
	local ups, i = list_of(argv, 11, 'nups', 2)
	local rms, j = list_of(argv, i, 'nrm', 1)
	local pres, l = list_of(argv, j, 'npres', 2, true)
	local done, e = list_of(argv, l, 'ndone', 1)
	if e ~= #argv + 1 then fail('ARGS', 'extra arguments') end
	check_key(keys[8], p .. 'sess:' .. sess, 'KEYS[8]')
	check_key(keys[9], p .. 'lost', 'KEYS[9]')
	check_key(keys[10], p .. 'rooms:' ..
	    (string.match(k.base, '{([%w%-_%.]+):') or ''), 'KEYS[10]')
	fence(keys[7], sess, now_ms())
	local st = txn_state(k)
	if redis.call('GET', k.lock) ~= sess .. ' ' .. token then
		fail('LOCKLOST', 'the room lock is not held')
	end
	for x = 1, #ups, 2 do redis.call('HSET', k.members, ups[x], ups[x + 1]) end
	for _, mid in ipairs(rms) do
		redis.call('HDEL', k.members, mid)
		redis.call('HDEL', k.pres, mid)
		redis.call('SREM', k.lost, mid)
	end
	local tail, counts = {}, {}
	for x = 1, #pres, 2 do
		local n = pres_set(k, pres[x], sess, pres[x + 1] == '1')
		tail[#tail + 1] = 'P ' .. pres[x] .. ' ' .. str(n) .. '\n'
		counts[#counts + 1] = tonumber(pres[x])
		counts[#counts + 1] = n
		if pres[x + 1] == '1' then
			redis.call('SADD', keys[8], k.base)
		end
	end
	for _, mid in ipairs(done) do redis.call('SREM', k.lost, mid) end
	if redis.call('SCARD', k.lost) == 0 then
		redis.call('SREM', keys[9], k.base)
	end
	local set = { 'HSET', k.meta, 'next_mid', str(next_mid) }
	if words ~= '' then set[#set + 1] = 'words'; set[#set + 1] = words end
	if keep then
		set[#set + 1] = 'keep'; set[#set + 1] = str(keep)
		st.keep = keep
	end
	redis.call(unpack(set))
	local first = txn_publish(k, st, body .. table.concat(tail), nrecs,
	    maxlen)
	if close == 1 then
		redis.call('HSET', k.meta, 'closed', '1')
		redis.call('DEL', k.members, k.pres, k.lock, k.lost)
		redis.call('SREM', keys[9], k.base)
		redis.call('SREM', keys[10], string.match(k.base,
		    '{[%w%-_%.]+:(.*)}$') or '')
		for _, key in ipairs({ k.meta, k.log }) do
			redis.call('PEXPIRE', key, 60000)
		end
	elseif release == 1 then
		redis.call('DEL', k.lock)
	end
	return { st.ver, first, st.epoch, counts }
end
step('txn_commit', txn_commit)
