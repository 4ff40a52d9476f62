-- append: add records to the room's log in one total order, publish them,
-- and optionally compare-and-set the room's dialect words in the same
-- step (the words stand in for the arena's room lock: a dialect that read
-- w2 = 5 appends "only if w2 is still 5").
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] log      <base>:log
-- KEYS[3] leases   <P>leases
-- ARGV[1] session
-- ARGV[2] maxlen   records kept in the log, 0 for all
-- ARGV[3] keep     0, or never trim the log from this seq on (lobby
--                  snapshot); kept until changed
-- ARGV[4] ncas     then ncas pairs: word index 0..7, expected value
--                  (a word never set is 0)
-- then    nset     then nset pairs: word index 0..7, new value
-- then    records, one or more: type (1..0xfeff), target (mid or 0),
--                  data (at most 1 MiB)
-- Reply: { first seq, last seq, epoch }
-- Errors: ARGS, FENCED, NOROOM, CLOSED, CHANGED <word> <value>, CORRUPT
local function word_pairs(argv, i, what)
	local n = int(argv, i, what, 0, WORDS)
	local out = {}
	for j = 1, n do
		local at = i + 2 * j - 1
		out[j] = { int(argv, at, 'word', 0, WORDS - 1),
		    int(argv, at + 1, 'value', -INT_MAX, INT_MAX) }
	end
	return out, i + 2 * n + 1
end

local function append(keys, argv)
	nkeys(keys, 3)
	local k = room_keys(keys, { 'log' })
	shard_prefix(keys[3])
	if #argv < 5 then fail('ARGS', 'too few arguments') end
	local sess = session(argv, 1)
	local maxlen = int(argv, 2, 'maxlen', 0, INT_MAX)
	local keep = int(argv, 3, 'keep', 0, INT_MAX)
	local cas, i = word_pairs(argv, 4, 'ncas')
	local set, j = word_pairs(argv, i, 'nset')
	local recs = check_recs(argv, j, 1048576)
	fence(keys[3], sess, now_ms())
	local st = room_load(k)
	for _, c in ipairs(cas) do
		local v = redis.call('HGET', k.meta, 'w' .. c[1])
		v = tonumber(v or '0')
		if v ~= c[2] then
			fail('CHANGED', 'w' .. c[1] .. ' ' .. str(v))
		end
	end
	for _, s in ipairs(set) do
		redis.call('HSET', k.meta, 'w' .. s[1], str(s[2]))
	end
	if keep > 0 then
		redis.call('HSET', k.meta, 'keep', str(keep))
		st.keep = keep
	end
	local first, last = log_append(k, st, recs, maxlen)
	return { first, last, st.epoch }
end
step('append', append)
