-- room_adopt: roomd -R has copied a room here, its meta as it was on the
-- server it came from.  If the room was last written in that server's
-- present life (ARGV[1], from its roomd_life), nothing of it can have been
-- lost on the way, and it goes on in this server's life with its epoch.
-- Otherwise its life stays another's, and the room takes a new epoch when
-- it is next written, as it would have on the old server.
--
-- KEYS[1] meta     <base>:meta
-- ARGV[1] life     the old server's life
-- Reply: 1 if adopted, 0 if not (another life, or no such room)
-- Errors: ARGS
local function room_adopt(keys, argv)
	nkeys(keys, 1)
	nargs(argv, 1)
	if not string.match(keys[1] or '', ':meta$') then
		fail('ARGS', 'KEYS[1] must end in ":meta"')
	end
	local was = word(argv, 1, 'life')
	if redis.call('HGET', keys[1], 'life') ~= was then return 0 end
	redis.call('HSET', keys[1], 'life', life())
	return 1
end
step('room_adopt', room_adopt)
