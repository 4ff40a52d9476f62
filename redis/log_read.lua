-- log_read: the entries of a room's log after ver "after", for a mirror
-- that missed messages.  Not fenced, and it runs when Redis is out of
-- memory.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] members, KEYS[4] pres, KEYS[5] lost
-- ARGV[1] after, ARGV[2] max (1..100000)
-- Reply: { epoch, ver, complete (1 if every entry after "after" is
--          returned), { ver, data, ... } }
-- Errors: ARGS, NOROOM
local function log_read(keys, argv)
	nkeys(keys, 5)
	nargs(argv, 2)
	local k = room_keys(keys, { 'log', 'members', 'pres', 'lost' })
	local after = int(argv, 1, 'after', 0, INT_MAX)
	local max = int(argv, 2, 'max', 1, 100000)
	local st = txn_state(k)
	room_touch(k, st)
	local ents, complete = {}, after <= st.ver and 1 or 0
	if after < st.ver then
		ents = log_entries(k, after, max)
		if #ents == 0 or ents[1] ~= after + 1 or
		    ents[#ents - 1] ~= st.ver then
			complete = 0
		end
	end
	return { st.epoch, st.ver, complete, ents }
end
step('log_read', log_read, { 'allow-oom' })
