-- read: records of the room from seq "from" on, at most count of them.
-- Not fenced (reading changes nothing), and it runs when Redis is out of
-- memory.  The one write it may do is the room's new epoch after a
-- restart or failover, so that what it returns is already in the epoch
-- every later record will carry.
--
-- KEYS[1] meta     <base>:meta
-- KEYS[2] log      <base>:log
-- ARGV[1] from     1..
-- ARGV[2] count    0..10000 (0: only the header)
-- Reply: { epoch, top seq, first seq kept, closed (0/1),
--          { seq, type, target, data, seq, type, ... } }
-- Errors: ARGS, NOROOM, CORRUPT,
--         TRIMMED <epoch> <first> <top>: records before "first" are gone;
--                 start over from a snapshot (or from "first");
--         AHEAD <epoch> <top>: "from" is past top + 1, a position this
--                 room never had in this epoch: start over.
local function read(keys, argv)
	nkeys(keys, 2)
	nargs(argv, 2)
	local k = room_keys(keys, { 'log' })
	local from = int(argv, 1, 'from', 1, INT_MAX)
	local count = int(argv, 2, 'count', 0, 10000)
	local st = room_load(k, true)
	room_touch(k, st)
	local head = redis.call('XRANGE', k.log, '-', '+', 'COUNT', 1)
	local first = head[1] and tonumber(string.match(head[1][1], '^(%d+)'))
	    or st.seq + 1
	if from < first then
		fail('TRIMMED', str(st.epoch) .. ' ' .. str(first) .. ' ' ..
		    str(st.seq))
	end
	if from > st.seq + 1 then
		fail('AHEAD', str(st.epoch) .. ' ' .. str(st.seq))
	end
	local out = {}
	if count > 0 then
		local got = redis.call('XRANGE', k.log, str(from) .. '-0', '+',
		    'COUNT', count)
		for _, e in ipairs(got) do
			local f = {}
			for x = 1, #e[2], 2 do f[e[2][x]] = e[2][x + 1] end
			out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
			out[#out + 1] = tonumber(f.t)
			out[#out + 1] = tonumber(f.to)
			out[#out + 1] = f.d
		end
	end
	return { st.epoch, st.seq, first, st.closed and 1 or 0, out }
end
step('read', read, { 'allow-oom' })
