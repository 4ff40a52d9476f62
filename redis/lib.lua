-- lib.lua: what every step of the roomd Redis library shares.
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
--    (ARGS, FENCED, NOROOM, EXISTS, CLOSED, CHANGED, NOMEMBER, TRIMMED,
--    AHEAD, ALIVE, CORRUPT); Redis itself refuses with OOM before a step
--    starts when maxmemory is reached;
--  - times are Redis TIME in milliseconds, never a host's clock.

-- Record types the engine appends itself; dialect records use 1..0xfeff.
local REC_JOIN = 0xff01		-- target mid, data the member
local REC_LEAVE = 0xff02	-- target mid, data the reason
local REC_SET = 0xff03		-- target mid, data the member
local REC_CLOSE = 0xff04	-- target 0, data the reason

local INT_MAX = 2 ^ 53		-- exact in a Lua number and a JSON double
local WORDS = 8			-- dialect words per room, w0..w7

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
-- slashes), at most 64 bytes: host names, connection ids, deadline names.
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
-- under the rooms, that is when this process restarted (the library's
-- state is new: boot) or when it was promoted from replica (Redis gives a
-- promoted server a new replication id).  A room written in another life
-- takes a new epoch before anything else is written to it.
--
local boot
local made = 0

local function life()
	local info = redis.call('INFO', 'replication')
	local replid = string.match(info, 'master_replid:(%x+)') or '?'
	if not boot then
		local t = redis.call('TIME')
		boot = string.sub(redis.sha1hex(t[1] .. '.' .. t[2] .. replid),
		    1, 16)
	end
	return boot .. ':' .. replid
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
-- are P.."host:"..host, P.."sess:"..session, P.."deadlines".
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

-- Exactly n keys, or refuse.
local function nkeys(keys, n)
	if #keys ~= n then
		fail('ARGS', 'expected ' .. n .. ' keys, got ' .. #keys)
	end
end

-- The room's state, or refuse with NOROOM / CLOSED.  Nothing is written:
-- st.fresh is the new epoch to take when the server's life changed, and
-- room_touch() takes it once the step has decided to write.
local function room_load(k, allow_closed)
	local m = redis.call('HMGET', k.meta, 'epoch', 'seq', 'life',
	    'closed', 'next_mid', 'keep', 'idle')
	if not m[1] then fail('NOROOM', 'no such room') end
	if m[4] and not allow_closed then
		fail('CLOSED', 'the room is closed')
	end
	local st = { epoch = tonumber(m[1]), seq = tonumber(m[2]),
	    next_mid = tonumber(m[5]), keep = tonumber(m[6] or '0'),
	    idle = tonumber(m[7] or '0'),
	    closed = m[4] ~= false, life = life() }
	if m[3] ~= st.life then
		st.fresh = fresh(k.base, m[1])
	end
	-- The log's last entry must be the room's seq, or XADD would refuse
	-- halfway through a step.
	if k.log then
		local top = redis.call('XREVRANGE', k.log, '+', '-', 'COUNT', 1)
		local tseq = 0
		if top[1] then
			tseq = tonumber(string.match(top[1][1], '^(%d+)'))
		end
		if tseq > st.seq then
			fail('CORRUPT', 'the log ends at ' .. str(tseq) ..
			    ', the room at ' .. str(st.seq))
		end
	end
	return st
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

local TRIM_EVERY = 32

-- A room without connections lives its idle ms more, then its keys
-- expire (idle 0: for ever); joining a connection makes it last again.
-- Called by the steps that change connections, after their writes, with
-- every room key in k.
local function room_expiry(k, st)
	if st.idle == 0 then return end
	if redis.call('HLEN', k.conns) == 0 then
		for _, key in ipairs({ k.meta, k.log, k.members, k.ix }) do
			redis.call('PEXPIRE', key, st.idle)
		end
	elseif redis.call('PTTL', k.meta) >= 0 then
		for _, key in ipairs({ k.meta, k.log, k.members, k.ix }) do
			redis.call('PERSIST', key)
		end
	end
end

-- recs[i] = { type, target, data }: check their shape, or refuse.
local function check_recs(argv, from, maxdata)
	local recs = {}
	local n = #argv - from + 1
	if n < 3 or n % 3 ~= 0 then
		fail('ARGS', 'records come in threes: type, target, data')
	end
	for i = from, #argv, 3 do
		recs[#recs + 1] = { int(argv, i, 'type', 1, 0xfeff),
		    int(argv, i + 1, 'target', 0, INT_MAX),
		    bytes(argv, i + 2, 'data', maxdata) }
	end
	return recs
end

--
-- Append records to the room's log: seq by HINCRBY, one stream entry per
-- record with id "<seq>-0", one PUBLISH of them all, then trim to about
-- maxlen records (0: keep all) but never past the room's keep seq.  The
-- published message is "<epoch> <first seq> <n>\n" then, per record,
-- "<type> <target> <length>\n<data>".  Returns the first and last seq.
--
local function log_append(k, st, recs, maxlen)
	room_touch(k, st)
	local first = st.seq + 1
	local last = redis.call('HINCRBY', k.meta, 'seq', #recs)
	local msg = { str(st.epoch) .. ' ' .. str(first) .. ' ' .. #recs ..
	    '\n' }
	for i, r in ipairs(recs) do
		local seq = first + i - 1
		redis.call('XADD', k.log, str(seq) .. '-0', 't', str(r[1]),
		    'to', str(r[2]), 'd', r[3])
		msg[#msg + 1] = str(r[1]) .. ' ' .. str(r[2]) .. ' ' .. #r[3] ..
		    '\n' .. r[3]
	end
	st.seq = last
	redis.call('PUBLISH', k.base, table.concat(msg))
	-- Trim when seq passes a multiple of TRIM_EVERY: the log keeps up to
	-- maxlen + TRIM_EVERY records, for one XTRIM in TRIM_EVERY appends.
	local crossed = math.floor(last / TRIM_EVERY) >
	    math.floor((first - 1) / TRIM_EVERY)
	if maxlen > 0 and last > maxlen and crossed then
		local lo = last - maxlen + 1
		if st.keep > 0 and st.keep < lo then lo = st.keep end
		redis.call('XTRIM', k.log, 'MINID', '~', str(lo))
	end
	return first, last
end

-- Members' bookkeeping lives in the room's ix hash:
--   k:<key> -> mid     a unique key (a name, a user id) taken by a member
--   m:<mid> -> keys    that member's unique keys, one per line
--   c:<mid> -> conns   that member's connections, space separated
--   s:<session> -> ids that session's connection ids here, space separated
local function list_add(ix, field, item)
	local v = redis.call('HGET', ix, field)
	redis.call('HSET', ix, field, v and (v .. ' ' .. item) or item)
end

-- Remove item; returns how many are left.
local function list_del(ix, field, item)
	local v = redis.call('HGET', ix, field)
	local left = {}
	for w in string.gmatch(v or '', '%S+') do
		if w ~= item then left[#left + 1] = w end
	end
	if #left == 0 then
		redis.call('HDEL', ix, field)
	else
		redis.call('HSET', ix, field, table.concat(left, ' '))
	end
	return #left
end

local function list_words(ix, field)
	local out = {}
	for w in string.gmatch(redis.call('HGET', ix, field) or '', '%S+') do
		out[#out + 1] = w
	end
	return out
end

-- Remove member mid and its unique keys (its connections must be gone).
local function member_drop(k, mid)
	local m = str(mid)
	for key in string.gmatch(redis.call('HGET', k.ix, 'm:' .. m) or '',
	    '[^\n]+') do
		redis.call('HDEL', k.ix, 'k:' .. key)
	end
	redis.call('HDEL', k.ix, 'm:' .. m, 'c:' .. m)
	redis.call('HDEL', k.members, m)
end

-- Remove connection "<session>/<cid>" of member mid; returns the number of
-- connections the member has left.
local function conn_drop(k, sess, cid, mid)
	redis.call('HDEL', k.conns, sess .. '/' .. cid)
	list_del(k.ix, 's:' .. sess, cid)
	return list_del(k.ix, 'c:' .. str(mid), sess .. '/' .. cid)
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

--
-- Transactions (room_open, txn_lock, txn_commit, reap_presence): the
-- engine's model.  meta's ver counts the room's committed transactions;
-- its seq counts the records they appended (the dialect's dense seq).
-- The log holds one entry per transaction, id "<ver>-0", field d: the
-- message published for it.
--

-- The room's epoch, seq and ver, or refuse with NOROOM (missing or
-- closed).  As room_load: st.fresh is the epoch a new life takes.
local function txn_state(k)
	local m = redis.call('HMGET', k.meta, 'epoch', 'seq', 'ver', 'life',
	    'closed', 'idle')
	if not m[1] or m[5] then fail('NOROOM', 'no such room') end
	local st = { epoch = tonumber(m[1]), seq = tonumber(m[2]),
	    ver = tonumber(m[3] or '0'), idle = tonumber(m[6] or '0'),
	    life = life() }
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
	if maxlen > 0 then
		args[3], args[4], args[5] = 'MAXLEN', '~', str(maxlen)
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
