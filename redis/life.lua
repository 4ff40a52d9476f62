-- life: this server's life (lib.lua), for roomd -R to hand to room_adopt
-- with the rooms it copies from this server.
--
-- Reply: the life, "<run_id prefix>:<replication id>"
-- Errors: ARGS
local function server_life(keys, argv)
	nkeys(keys, 0)
	nargs(argv, 0)
	return life()
end
step('life', server_life, { 'no-writes' })
