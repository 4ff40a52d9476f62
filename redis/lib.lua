-- lib.lua: what every step of the roomd Redis library shares.
--
-- roomd library 1
-- (The interface's version: raise it with any change of a step's keys,
-- arguments, reply or of the keys' contents that hosts of the previous
-- roomd would misread.  A host does not replace a library of a higher
-- version: doc/cluster.txt, "Loading".)
--
-- The library is this file followed by the step files of this folder in
-- the order of their names, with "#!lua name=roomd" in front: one FUNCTION
-- LOAD, one function per step, named roomd_<step>.  Each step is called
-- with FCALL and names its keys at its top.  See doc/cluster.txt.
--
-- Rules every step follows:
--  - every argument is checked, then every refusal is decided, and only
--    then is anything written, so a refused call writes nothing (Redis
--    runs a script atomically but does not undo the writes made before an
--    error);
--  - a refusal is an error reply whose first word is a stable code
--    (ARGS, FENCED, NOROOM, EXISTS, BUSY, LOCKLOST, ALIVE); Redis itself
--    refuses with OOM before a step starts when maxmemory is reached;
--  - times are Redis TIME in milliseconds, never a host's clock.

local INT_MAX = 2 ^ 53		-- exact in a Lua number and a JSON double

-- Refuse the call: the step's wrapper turns this into an error reply.
local function fail(code, msg)
	error({ roomd = code .. ' ' .. msg }, 0)
end

-- An integer as text, never in exponent form.
local function str(n)
	return string.format('%d', n)
end

-- ARGV[i] as an integer in [lo, hi], or refuse.
local function int(argv, i, name, lo, hi)
	local v = argv[i]
	if type(v) ~= 'string' or not string.match(v, '^%-?%d+$') then
		fail('ARGS', name .. ' (argument ' .. i ..
		    ') is not an integer')
	end
	local n = tonumber(v)
	if n < lo or n > hi then
		fail('ARGS', name .. ' (argument ' .. i .. ') is out of range')
	end
	return n
end

-- ARGV[i] as a word made of letters, digits and - _ . : (no spaces, no
-- slashes), at most 64 bytes: host names, dialects, lock tokens.
local function word(argv, i, name)
	local v = argv[i]
	if type(v) ~= 'string' or #v == 0 or #v > 64 or
	    not string.match(v, '^[%w%-_%.:]+$') then
		fail('ARGS', name .. ' (argument ' .. i .. ') is not a word')
	end
	return v
end

-- ARGV[i] as bytes of at most max length.
local function bytes(argv, i, name, max)
	local v = argv[i]
	if type(v) ~= 'string' or #v > max then
		fail('ARGS', name .. ' (argument ' .. i ..
		    ') is missing or too long')
	end
	return v
end

-- Exactly n arguments, or refuse (a call of the wrong shape).
local function nargs(argv, n)
	if #argv ~= n then
		fail('ARGS', 'expected ' .. n .. ' arguments, got ' .. #argv)
	end
end

-- Redis's clock in milliseconds.
local function now_ms()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

--
-- The server's life: it changes whenever the data may have been rewound
-- under the rooms, that is when this process restarted (a new run_id) or
-- when it was promoted from replica (Redis gives a promoted server a new
-- replication id).  Loading the library again (a new roomd) is not a new
-- life: the run_id is the process's, whatever the library's state.  A
-- room written in another life takes a new epoch before anything else is
-- written to it.
--
local run
local made = 0

local function life()
	local info = redis.call('INFO', 'replication')
	local replid = string.match(info, 'master_replid:(%x+)') or '?'
	if not run then
		run = string.match(redis.call('INFO', 'server'),
		    'run_id:(%x+)')
		if not run then
			local t = redis.call('TIME')
			run = redis.sha1hex(t[1] .. '.' .. t[2] .. replid)
		end
		run = string.sub(run, 1, 16)
	end
	return run .. ':' .. replid
end

-- A new 48-bit number never handed out before, in any life of any server
-- (with the odds of a 48-bit hash): epochs and incarnations.  Counters
-- would not do: a failover can rewind a counter and hand a value out twice.
local function fresh(...)
	made = made + 1
	local t = redis.call('TIME')
	local h = redis.sha1hex(table.concat({ life(), t[1], t[2], str(made),
	    ... }, '\n'))
	local n = tonumber(string.sub(h, 1, 12), 16)
	if n == 0 then n = 1 end
	return n
end

--
-- Shard keys: the prefix P is the leases key less "leases"; the others
-- are P.."host:"..host, P.."sess:"..session, P.."lost", P.."rooms:"..dialect.
--
local function shard_prefix(leases)
	local p = string.match(leases, '^(.*)leases$')
	if not p then fail('ARGS', 'the leases key must end in "leases"') end
	return p
end

local function check_key(got, want, what)
	if got ~= want then
		fail('ARGS', what .. ' key must be "' .. want .. '"')
	end
end

-- A session is "<host>/<incarnation>".
local function session(argv, i)
	local v = argv[i]
	local host, inc = string.match(type(v) == 'string' and v or '',
	    '^([%w%-_%.:]+)/(%d+)$')
	if not host or #host > 64 then
		fail('ARGS', 'session (argument ' .. i ..
		    ') is not host/incarnation')
	end
	return v, host, inc
end

-- Fencing: the session's lease must be held, by Redis's clock.
local function fence(leases, sess, now)
	local until_ms = redis.call('ZSCORE', leases, sess)
	if not until_ms then fail('FENCED', 'no such session') end
	if tonumber(until_ms) <= now then fail('FENCED', 'lease expired') end
end

--
-- Room keys: KEYS[1] is "<base>:meta" and the others "<base>:<suffix>" in
-- the order the step names; base ("roomd:{canvas:abc}") is the room's name
-- in the shard's sets and its pub/sub channel.
--
local function room_keys(keys, suffixes)
	local base = string.match(keys[1] or '', '^(.+):meta$')
	if not base then fail('ARGS', 'KEYS[1] must end in ":meta"') end
	local k = { base = base, meta = keys[1] }
	for i, s in ipairs(suffixes) do
		check_key(keys[i + 1], base .. ':' .. s,
		    'KEYS[' .. (i + 1) .. ']')
		k[s] = keys[i + 1]
	end
	return k
end

-- The room's keys must be of the shard whose prefix is p (the leases key's):
-- base is p.."{<dialect>:<id>}".
local function room_in(k, p)
	if string.sub(k.base, 1, #p + 1) ~= p .. '{' or
	    string.sub(k.base, -1) ~= '}' then
		fail('ARGS', 'the room keys are not of the shard "' .. p .. '"')
	end
end

-- Exactly n keys, or refuse.
local function nkeys(keys, n)
	if #keys ~= n then
		fail('ARGS', 'expected ' .. n .. ' keys, got ' .. #keys)
	end
end

-- Take the new epoch if there is one; the first write of every step.
local function room_touch(k, st)
	if st.fresh then
		st.epoch = st.fresh
		st.fresh = nil
		redis.call('HSET', k.meta, 'epoch', str(st.epoch),
		    'life', st.life)
	end
end

--
-- Transactions (room_open, txn_lock, txn_commit, reap_presence): the
-- engine's model.  meta's ver counts the room's committed transactions;
-- its seq counts the records they appended (the dialect's dense seq).
-- The log holds one entry per transaction, id "<ver>-0", field d: the
-- message published for it.
--

-- The room's epoch, seq and ver, or refuse with NOROOM (missing or
-- closed).  Nothing is written: st.fresh is the new epoch to take when
-- the server's life changed, and room_touch() takes it once the step has
-- decided to write.
local function txn_state(k)
	local m = redis.call('HMGET', k.meta, 'epoch', 'seq', 'ver', 'life',
	    'closed', 'idle', 'keep')
	if not m[1] or m[5] then fail('NOROOM', 'no such room') end
	local st = { epoch = tonumber(m[1]), seq = tonumber(m[2]),
	    ver = tonumber(m[3] or '0'), idle = tonumber(m[6] or '0'),
	    keep = tonumber(m[7] or ''), life = life() }
	if m[4] ~= st.life then st.fresh = fresh(k.base, m[1]) end
	return st
end

-- { ver, data, ... } of the log's entries after ver "after", at most max
-- of them (0: all), and whether the log still has every entry after it.
local function log_entries(k, after, max)
	local out = {}
	local args = { 'XRANGE', k.log, '(' .. str(after) .. '-0', '+' }
	if after == 0 then args[3] = '-' end
	if max > 0 then
		args[#args + 1] = 'COUNT'
		args[#args + 1] = str(max)
	end
	for _, e in ipairs(redis.call(unpack(args))) do
		out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
		out[#out + 1] = e[2][2]
	end
	return out
end

-- A room nobody is connected to lives idle ms after its last transaction
-- (0: for ever); one with a connection on some host does not expire.
local function txn_expiry(k, st)
	if st.idle == 0 then return end
	local keys = { k.meta, k.log, k.members, k.pres, k.lost }
	if redis.call('HLEN', k.pres) > 0 then
		for _, key in ipairs(keys) do redis.call('PERSIST', key) end
	else
		for _, key in ipairs(keys) do
			redis.call('PEXPIRE', key, st.idle)
		end
	end
end

-- The XADD arguments that trim the log to about maxlen entries (0: no
-- trimming), never past the entry st.keep (a relay room's saved state)
-- when there is one; ver is the entry being added.
local function log_trim(st, ver, maxlen)
	if maxlen == 0 then return {} end
	if not st.keep then return { 'MAXLEN', '~', str(maxlen) } end
	local lo = math.min(st.keep, ver - maxlen + 1)
	if lo <= 1 then return {} end
	return { 'MINID', '~', str(lo) }
end

-- Commit one transaction: ver + 1, seq + nrecs, the log entry, the
-- message.  body is what the host wrote; the header is ours.
local function txn_publish(k, st, body, nrecs, maxlen)
	room_touch(k, st)
	local first = st.seq + 1
	st.seq = st.seq + nrecs
	st.ver = st.ver + 1
	redis.call('HSET', k.meta, 'seq', str(st.seq), 'ver', str(st.ver))
	local msg = 'E ' .. str(st.epoch) .. ' ' .. str(st.ver) .. ' ' ..
	    str(first) .. ' ' .. str(nrecs) .. '\n' .. body
	local args = { 'XADD', k.log }
	for _, a in ipairs(log_trim(st, st.ver, maxlen)) do
		args[#args + 1] = a
	end
	args[#args + 1] = str(st.ver) .. '-0'
	args[#args + 1] = 'd'
	args[#args + 1] = msg
	redis.call(unpack(args))
	redis.call('PUBLISH', k.base, msg)
	txn_expiry(k, st)
	return first
end

-- Presence: pres[mid] lists the sessions where member mid has a
-- connection.  Add or remove sess; returns how many are left.
local function pres_set(k, mid, sess, here)
	local left = {}
	for w in string.gmatch(redis.call('HGET', k.pres, mid) or '', '%S+') do
		if w ~= sess then left[#left + 1] = w end
	end
	if here then left[#left + 1] = sess end
	if #left == 0 then
		redis.call('HDEL', k.pres, mid)
	else
		redis.call('HSET', k.pres, mid, table.concat(left, ' '))
	end
	return #left
end

-- End session sess's presence of the members pres lists as { mid, its
-- sessions (space separated), ... }, those it is present for (the others
-- are left alone): one entry with their new counts, and a member left
-- present nowhere goes to the room's lost set (and the room to the
-- shard's, lostkey).  Returns how many were lost.
local function presence_drop(k, st, sess, pres, lostkey, maxlen)
	local tail, lost = {}, 0
	for x = 1, #pres, 2 do
		local mine = false
		for w in string.gmatch(pres[x + 1], '%S+') do
			if w == sess then mine = true end
		end
		if mine then
			local n = pres_set(k, pres[x], sess, false)
			tail[#tail + 1] = 'P ' .. pres[x] .. ' ' .. str(n) .. '\n'
			if n == 0 then
				redis.call('SADD', k.lost, pres[x])
				lost = lost + 1
			end
		end
	end
	if #tail > 0 then
		txn_publish(k, st, table.concat(tail), 0, maxlen)
	end
	if redis.call('SCARD', k.lost) > 0 then
		redis.call('SADD', lostkey, k.base)
	end
	return lost
end

-- Register a step: errors raised by fail() become clean error replies.
local function step(name, fn, flags)
	redis.register_function({ function_name = 'roomd_' .. name,
	    flags = flags or {},
	    callback = function(keys, argv)
		local ok, r = pcall(fn, keys, argv)
		if ok then return r end
		if type(r) == 'table' and r.roomd then
			return redis.error_reply(r.roomd)
		end
		if type(r) == 'table' and r.err then
			return redis.error_reply(r.err)
		end
		return redis.error_reply('ERR roomd_' .. name .. ': ' ..
		    tostring(r))
	end })
end
