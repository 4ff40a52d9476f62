"""The roomd Redis library (redis/*.lua) against real redis-servers.

Each test starts its own redis-server (redisd.py) on a free loopback port,
loads the library and calls its steps as a roomd host does
(src/room_cluster.c, src/cluster.c): by FCALL, with the keys and arguments
of doc/cluster.txt, "Steps".  A refused step must write nothing: tests
compare a dump of every key before and after.

Run with:  /usr/bin/python3 -m pytest -q tests/integration/test_redis_scripts.py
"""
import itertools
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from redisd import (LIBDIR, library_text, load_library,  # noqa: F401
                    redis_factory, redis_sentinel_group, redis_server,
                    tcp_proxy)

P = "roomd:"
STEPS = {"host_join", "host_renew", "host_leave", "room_open", "room_find",
         "txn_lock", "txn_commit", "txn_unlock", "log_read", "reap_list",
         "reap_presence", "session_drop", "life", "room_adopt",
         "presence_end"}
WORDS = "1 2 3 4 5 6 7 8 1 " + "ab" * 16 + " " + "cd" * 32


class Room:
    """A room's names: base ("P{dialect:id}", also its channel), keys."""

    def __init__(self, rid, dialect="canvas", prefix=P):
        self.id, self.dialect, self.prefix = rid, dialect, prefix
        self.base = f"{prefix}{{{dialect}:{rid}}}"

    def k(self, *suffixes):
        return [f"{self.base}:{s}" for s in suffixes]


def line(name, role=1):
    """A member line: role authorities joined token uid name."""
    return f"{role} 0 1700000000 tok-{name} uid-{name} {name}".encode()


def body_of(recs=(), ups=(), rms=(), words="", next_mid=0, kicks=(),
            close=None):
    """An entry's body as the engine writes it (commit_build)."""
    b = b""
    for t, target, data in recs:
        b += b"R %d %d %d\n%s\n" % (t, target, len(data), data)
    for mid, ln in ups:
        b += b"M %s %d\n%s\n" % (str(mid).encode(), len(ln), ln)
    for mid in rms:
        b += b"X %s\n" % str(mid).encode()
    if words:
        b += b"W %s\n" % words.encode()
    b += b"N %d\n" % next_mid
    for mid in kicks:
        b += b"K %d\n" % mid
    if close is not None:
        b += b"C %d\n%s\n" % (len(close), close)
    return b


def parse_entry(d):
    """A stored or published entry: ((epoch, ver, first, nrecs), items),
    strictly by doc/cluster.txt "Entries"; anything else fails."""
    head, rest = d.split(b"\n", 1)
    tag, *nums = head.split(b" ")
    assert tag == b"E" and len(nums) == 4, head
    items, seen_p = [], False
    while rest:
        ln, rest = rest.split(b"\n", 1)
        f = ln.split(b" ")
        kind = f[0].decode()
        assert not seen_p or kind == "P", "P lines come last: %r" % d
        if kind in ("R", "M", "C"):
            n = int(f[-1])
            data, rest = rest[:n], rest[n:]
            assert rest[:1] == b"\n", d
            rest = rest[1:]
            items.append((kind, *(int(x) for x in f[1:-1]), data))
        elif kind == "W":
            items.append(("W", ln[2:].decode()))
        elif kind in ("X", "N", "K"):
            assert len(f) == 2, ln
            items.append((kind, int(f[1])))
        elif kind == "P":
            assert len(f) == 3, ln
            seen_p = True
            items.append(("P", int(f[1]), int(f[2])))
        else:
            raise AssertionError(f"unknown line {ln!r}")
    return tuple(int(x) for x in nums), items


class Host:
    """One roomd host's session on a shard, calling the steps by FCALL."""

    def __init__(self, server, name, lease_ms=10000, prefix=P, client=None):
        self.r = client or server.client()
        self.name, self.lease_ms, self.p = name, lease_ms, prefix
        self.tokens = itertools.count(1)
        self.join()

    def call(self, step, keys, *args):
        return self.r.fcall("roomd_" + step, len(keys), *keys, *args)

    def hkeys(self):
        return [self.p + "leases", self.p + "host:" + self.name]

    def join(self):
        inc, self.until, now = self.call("host_join", self.hkeys(), self.name,
                                         self.lease_ms)
        self.session = f"{self.name}/{inc}"
        return inc, self.until, now

    def renew(self):
        return self.call("host_renew", self.hkeys(), self.session,
                         self.lease_ms)

    def leave(self):
        return self.call("host_leave", self.hkeys(), self.session)

    def open_keys(self, room):
        return room.k("meta", "log", "members", "pres", "lost") + \
            [self.p + "rooms:" + room.dialect, self.p + "leases"]

    def open(self, room, create=1, idle_ms=0, max=0):
        step = "room_open" if create else "room_find"
        return self.call(step, self.open_keys(room), self.session,
                         room.dialect, room.id, create, idle_ms, max)

    def find(self, room, max=0):
        return self.open(room, create=0, max=max)

    def lock_keys(self, room):
        return room.k("meta", "log", "lock", "lost") + [self.p + "leases"]

    def lock(self, room, token, px=3000, after=0, max=1000):
        return self.call("txn_lock", self.lock_keys(room), self.session,
                         token, px, after, max)

    def commit_keys(self, room):
        return room.k("meta", "log", "members", "pres", "lock", "lost") + \
            [self.p + "leases", self.p + "sess:" + self.session,
             self.p + "lost", self.p + "rooms:" + room.dialect]

    def commit_args(self, token, recs=(), ups=(), rms=(), pres=(), done=(),
                    words="", next_mid=0, kicks=(), close=None, release=1,
                    maxlen=0, keep=""):
        body = body_of(recs, ups, rms, words, next_mid, kicks, close)
        return [self.session, token, release, maxlen, body, len(recs),
                0 if close is None else 1, words, keep, next_mid,
                len(ups), *itertools.chain(*ups), len(rms), *rms,
                len(pres), *itertools.chain(*pres), len(done), *done]

    def commit(self, room, token, **kw):
        return self.call("txn_commit", self.commit_keys(room),
                         *self.commit_args(token, **kw))

    def unlock(self, room, token):
        return self.call("txn_unlock", room.k("lock"), self.session, token)

    def log_read(self, room, after=0, max=1000):
        return self.call("log_read", room.k("meta", "log", "members", "pres",
                                            "lost"), after, max)

    def txn(self, room, px=3000, **kw):
        """A whole transaction: lock (waiting while BUSY), commit, release."""
        token = f"t{next(self.tokens)}"
        end = time.monotonic() + 10
        while True:
            try:
                self.lock(room, token, px=px)
                break
            except redis.ResponseError as e:
                if not str(e).startswith("BUSY ") or \
                        time.monotonic() > end:
                    raise
                time.sleep(0.001)
        return self.commit(room, token, **kw)

    def reap_presence(self, base, sess, maxlen=0):
        keys = [f"{base}:{s}" for s in ("meta", "log", "pres", "lock",
                                        "lost")]
        return self.call("reap_presence", keys + [
            self.p + "leases", self.p + "sess:" + sess, self.p + "lost"],
            sess, maxlen)

    def presence_end(self, base, mids, maxlen=0, sess=None):
        keys = [f"{base}:{s}" for s in ("meta", "log", "pres", "lock",
                                        "lost")]
        return self.call("presence_end", keys + [
            self.p + "leases", self.p + "lost"],
            sess or self.session, maxlen, *mids)

    def session_drop(self, sess):
        return self.call("session_drop", [
            self.p + "leases", self.p + "sess:" + sess,
            self.p + "host:" + sess.split("/")[0]], sess)

    def reap(self):
        """A master's sweep (cluster_reap): the members now lost."""
        lost = 0
        for sess in self.call("reap_list", [self.p + "leases"], 16):
            sess = sess.decode()
            for base in self.r.smembers(self.p + "sess:" + sess):
                lost += self.reap_presence(base.decode(), sess)
            self.session_drop(sess)
        return lost


def entries(h, room, after=0):
    """[(ver, header, items)] of the room's log after ver "after"."""
    flat = h.log_read(room, after, 100000)[3]
    out = []
    for ver, d in zip(flat[::2], flat[1::2]):
        head, items = parse_entry(d)
        assert head[1] == ver
        out.append((ver, head, items))
    return out


def snapshot(r):
    """Every key with its type, whether it has a TTL, and its DUMP: what
    "nothing was written" is checked against."""
    out = {}
    for k in r.scan_iter(count=1000):
        out[k] = (r.type(k), r.pttl(k) > 0, r.dump(k))
    return out


def refused(code, fn, *args, **kw):
    """fn must fail with an error reply whose first word is code."""
    with pytest.raises(redis.ResponseError) as e:
        fn(*args, **kw)
    assert str(e.value).split()[0] == code, str(e.value)
    return str(e.value)


def run_threads(fns, timeout=60):
    """Run each fn in a thread; re-raise the first failure."""
    with ThreadPoolExecutor(len(fns)) as ex:
        for f in [ex.submit(fn) for fn in fns]:
            f.result(timeout)


def messages(sub, n, timeout=5):
    """The next n messages of a pubsub, each within timeout."""
    got = []
    end = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < end, f"{len(got)} of {n} messages"
        m = sub.get_message(timeout=0.5)
        if m and m["type"] == "message":
            got.append(m["data"])
    return got


def subscribe(server, channel):
    sub = server.client().pubsub()
    sub.subscribe(channel)
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    return sub


def wait_until(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.05)


# ---------------------------------------------------------------- library

def test_library_loads_once_and_registers_every_step(redis_server):
    r = redis_server.client()
    assert load_library(r) is False     # already this text: not reloaded
    lib = dict(zip(*[iter(r.function_list("roomd")[0])] * 2))
    funcs = {}
    for f in lib[b"functions"]:
        d = dict(zip(*[iter(f)] * 2))
        funcs[d[b"name"].decode()] = {x.decode() for x in d[b"flags"]}
    assert set(funcs) == {"roomd_" + s for s in STEPS}
    assert funcs["roomd_room_find"] == funcs["roomd_log_read"] == \
        {"allow-oom"}
    assert funcs["roomd_reap_list"] == {"no-writes"}
    # The text a host compiles in (redis/embed.sh) is the text loaded
    # here, so that a host does not reload it at each start.
    hexes = subprocess.run(["sh", os.path.join(LIBDIR, "embed.sh"), LIBDIR],
                           capture_output=True, text=True, check=True,
                           timeout=30).stdout
    embedded = bytes(int(x, 16) for x in
                     hexes.replace(",", " ").split() if x.startswith("0x"))
    assert embedded == library_text().encode() + b"\0"
    assert r.config_get("appendonly")["appendonly"] == "yes"
    assert redis_server.port != 6379


# ---------------------------------------------------------------- leases

def test_join_renew_and_leave_by_redis_time(redis_server):
    a = Host(redis_server, "a", lease_ms=5000)
    first = a.session
    inc, until, now = a.join()          # the host restarted
    t = a.r.time()
    assert abs(now - (t[0] * 1000 + t[1] // 1000)) < 1000
    assert until - now == 5000 and 0 < inc < 2 ** 48 and a.session != first
    assert a.r.zscore(P + "leases", a.session) == until
    assert a.r.zscore(P + "leases", first) <= now   # ended then
    assert a.r.get(P + "host:a") == str(inc).encode()
    until2, now2, replicas = a.renew()
    assert until2 - now2 == 5000 and until2 >= until
    assert replicas == 0                # a lone server
    # Leaving ends the lease at once: another host reaps it now.
    room = Room("leave")
    a.open(room)
    a.txn(room, ups=[(1, line("x"))], pres=[(1, 1)], next_mid=2)
    assert a.leave() == 1
    assert not a.r.exists(P + "host:a")
    assert "lease expired" in refused("FENCED", a.renew)
    b = Host(redis_server, "b")
    assert b.reap() == 1
    assert entries(b, room)[-1][2] == [("P", 1, 0)]
    assert b.call("reap_list", [P + "leases"], 10) == []


def test_renew_counts_the_replicas_online(redis_server, redis_factory):
    """host_renew says how many replicas a WAIT could count: those whose
    link is online, not those still syncing or gone."""
    h = Host(redis_server, "h")
    assert h.renew()[2] == 0
    replicas = [redis_factory(replicaof=redis_server) for _ in range(2)]

    def online():
        return h.renew()[2]
    deadline = time.time() + 10
    while online() != 2 and time.time() < deadline:
        time.sleep(0.05)
    assert online() == 2
    replicas[1].stop()
    deadline = time.time() + 10
    while online() != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert online() == 1


def test_an_expired_lease_is_fenced_and_writes_nothing(redis_server):
    live = Host(redis_server, "live")
    room = Room("fence")
    live.open(room)
    stale = Host(redis_server, "stale", lease_ms=150)
    stale.lock(room, "t1", px=60000)
    stale.commit(room, "t1", ups=[(1, line("bob"))], pres=[(1, 1)],
                 next_mid=2, release=0)
    time.sleep(0.3)
    before = snapshot(live.r)
    for call in (lambda: stale.lock(room, "t1"),
                 lambda: stale.commit(room, "t1", recs=[(1, 0, b"late")]),
                 lambda: stale.open(Room("other")),
                 stale.renew):
        assert "lease expired" in refused("FENCED", call)
    assert snapshot(live.r) == before
    # An expired lease is never renewed: joining again is a new session.
    old = stale.session
    stale.join()
    assert stale.session != old
    stale.open(Room("other"))
    stale.session = old
    refused("FENCED", stale.open, Room("third"))


def test_an_old_incarnation_is_fenced_once_the_host_joins_again(
        redis_server):
    a = Host(redis_server, "same")
    room = Room("inc")
    a.open(room)
    a.txn(room, recs=[(1, 0, b"first")])
    b = Host(redis_server, "same")      # the host restarted: a new session
    assert b.session != a.session
    before = snapshot(b.r)
    refused("FENCED", a.lock, room, "t9")
    refused("FENCED", a.renew)
    assert snapshot(b.r) == before
    assert b.txn(room, recs=[(1, 0, b"alive")])[:2] == [2, 2]
    b.renew()
    a.session = "same/12345"            # never issued
    assert "no such session" in refused("FENCED", a.lock, room, "t1")


def test_renewing_keeps_a_lease_past_its_first_term(redis_server):
    h = Host(redis_server, "h", lease_ms=200)
    room = Room("renew")
    h.open(room)
    for _ in range(5):
        time.sleep(0.1)
        until, now, _ = h.renew()
        assert until - now == 200
    assert h.txn(room, recs=[(1, 0, b"still here")])[0] == 1   # at 500 ms
    assert h.call("reap_list", [P + "leases"], 10) == []


def test_a_write_delayed_past_the_lease_is_refused_when_it_arrives(
        redis_server, tcp_proxy):
    """A host cut off from Redis (the proxy holds its bytes) whose lease
    runs out meanwhile: another host reaps its presence, and the commit
    it sent before the cut reaches Redis late and is refused."""
    proxy = tcp_proxy(redis_server.port)
    live = Host(redis_server, "live")
    room = Room("partition", "chat")
    live.open(room)
    cut = Host(redis_server, "cut", lease_ms=300, client=redis.Redis(
        host="127.0.0.1", port=proxy.port, socket_timeout=10))
    cut.txn(room, ups=[(1, line("bob"))], pres=[(1, 1)], next_mid=2)
    cut.lock(room, "late", px=250)
    proxy.pause()
    late = {}

    def send():
        try:
            late["reply"] = cut.commit(room, "late",
                                       recs=[(1, 0, b"before the cut")])
        except redis.ResponseError as e:
            late["error"] = str(e)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(0.6)                     # the lease and the lock ran out
    assert live.reap() == 1
    proxy.resume()
    t.join(10)
    assert not t.is_alive()
    assert late.get("error", "").startswith("FENCED "), late
    got = entries(live, room)
    assert [v for v, _, _ in got] == [1, 2]
    assert got[1][2] == [("P", 1, 0)]
    assert live.r.smembers(room.base + ":lost") == {b"1"}


# ---------------------------------------------------------------- rooms

def test_room_open_creates_and_refuses_exists_and_noroom(redis_server):
    h = Host(redis_server, "h")
    room = Room("life", "lobby")
    refused("NOROOM", h.find, room)
    refused("NOROOM", h.open, room, create=0)
    epoch, ver, seq, created, words, next_mid, mem, pres, ents = \
        h.open(room, idle_ms=0)
    t = h.r.time()
    assert 0 < epoch < 2 ** 48
    assert (ver, seq, words, next_mid, mem, pres, ents) == \
        (0, 0, b"", 0, [], [], [])
    assert abs(created - (t[0] * 1000 + t[1] // 1000)) < 1000
    assert h.r.smembers(P + "rooms:lobby") == {b"life"}
    assert h.r.hget(room.base + ":meta", "dialect") == b"lobby"
    before = snapshot(h.r)
    refused("EXISTS", h.open, room)
    assert snapshot(h.r) == before
    assert h.find(room)[:4] == [epoch, 0, 0, created]
    # Another room of the same id in another dialect is another room.
    assert h.open(Room("life", "chat"))[0] != epoch
    # A stale id is dropped by the room_open that finds it gone.
    h.r.sadd(P + "rooms:lobby", "ghost")
    refused("NOROOM", h.find, Room("ghost", "lobby"))
    assert h.r.smembers(P + "rooms:lobby") == {b"life"}


def test_room_open_returns_what_a_new_mirror_needs(redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("snap", "classroom")
    epoch = a.open(room)[0]
    a.txn(room, recs=[(1, 0, b"hello"), (2, 1, b"x")],
          ups=[(1, line("ann")), (2, line("ben"))], pres=[(1, 1), (2, 1)],
          words=WORDS, next_mid=3)
    b.txn(room, ups=[(1, line("ann", role=2))], pres=[(1, 1)], next_mid=3)
    a.txn(room, recs=[(1, 0, b"bye")], rms=[2], next_mid=3)
    r = b.find(room)
    assert r[:6] == [epoch, 3, 3, r[3], WORDS.encode(), 3]
    assert r[6] == [b"1", line("ann", role=2)]
    assert dict(zip(r[7][::2], r[7][1::2])) == {
        b"1": f"{a.session} {b.session}".encode()}
    assert r[8][::2] == [1, 2, 3]
    assert r[8] == a.log_read(room)[3]
    assert parse_entry(r[8][5])[1] == [("R", 1, 0, b"bye"), ("X", 2),
                                       ("N", 3)]
    assert b.find(room, max=2)[8][::2] == [1, 2]


# ---------------------------------------------------------------- locks

def test_txn_lock_is_busy_for_another_and_reentrant_for_the_same(
        redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("busy")
    a.open(room)
    epoch = a.find(room)[0]
    assert a.lock(room, "t1", px=2000) == [epoch, 0, 0, 1, [], []]
    assert a.r.get(room.base + ":lock") == f"{a.session} t1".encode()
    before = snapshot(a.r)
    ms = int(refused("BUSY", b.lock, room, "t1").split()[1])
    assert 0 < ms <= 2000
    refused("BUSY", a.lock, room, "t2")  # another transaction of a
    assert snapshot(a.r) == before
    time.sleep(0.1)
    a.lock(room, "t1", px=5000)         # the same pair: extended
    assert 4000 < a.r.pttl(room.base + ":lock") <= 5000
    assert a.commit(room, "t1", recs=[(1, 0, b"x")])[:2] == [1, 1]
    assert not a.r.exists(room.base + ":lock")
    assert b.lock(room, "t1")[1] == 1
    refused("NOROOM", a.lock, Room("nowhere"), "t1")


def test_txn_lock_returns_exactly_the_entries_after_after(redis_server):
    h = Host(redis_server, "h")
    room = Room("catchup")
    epoch = h.open(room)[0]
    for i in range(10):
        h.txn(room, recs=[(1, 0, b"op%d" % i)] * (i % 3), next_mid=i)
    seq = sum(i % 3 for i in range(10))
    log = h.log_read(room)[3]
    for after in (0, 1, 5, 9, 10):
        r = h.lock(room, "t", after=after)
        assert r[:4] == [epoch, 10, seq, 1]
        assert r[4] == log[2 * after:]
        h.unlock(room, "t")
    # More than max, or after ahead of the log: not complete.
    assert h.lock(room, "t", after=2, max=3)[3:5] == [0, log[4:10]]
    assert h.lock(room, "t", after=11)[3:5] == [0, []]
    h.unlock(room, "t")
    # A log trimmed past "after" (maxlen) cannot bring the mirror up.
    for i in range(300):
        h.txn(room, recs=[(1, 0, b"t%d" % i)], maxlen=20)
    assert h.r.xlen(room.base + ":log") < 200
    r = h.lock(room, "t", after=5)
    assert r[1] == 310 and r[3] == 0 and r[4][-2] == 310
    assert h.lock(room, "t", after=305)[3:5] == \
        [1, h.log_read(room, 305)[3]]


def test_a_relay_logs_trimming_keeps_the_entry_it_is_told_to(redis_server):
    """maxlen trims a relay room's log, but never past the entry named
    by keep (its saved state), which meta remembers for later commits;
    keep 0 keeps every entry from then on."""
    h = Host(redis_server, "h")
    room = Room("keep")
    h.open(room)
    for i in range(5):
        h.txn(room, recs=[(1, 0, b"a%d" % i)], maxlen=20)
    # ver 6: the saved state, kept from its own commit on
    assert h.txn(room, recs=[(1, 0, b"state")], maxlen=20, keep=6)[0] == 6
    assert h.r.hget(room.base + ":meta", "keep") == b"6"
    for i in range(300):
        h.txn(room, recs=[(1, 0, b"b%d" % i)], maxlen=20)
    ids = [int(e[0].split(b"-")[0]) for e in
           h.r.xrange(room.base + ":log")]
    assert ids[0] <= 6 and ids[-1] == 306 and 6 in ids
    assert ids == list(range(ids[0], 307))
    # Kept from a later entry: what is before it goes.
    h.txn(room, recs=[(1, 0, b"state2")], maxlen=20, keep=307)
    for i in range(300):
        h.txn(room, recs=[(1, 0, b"c%d" % i)], maxlen=20)
    first = int(h.r.xrange(room.base + ":log", count=1)[0][0].split(b"-")[0])
    assert 200 < first <= 307
    # keep 0: nothing trimmed any more.
    h.txn(room, recs=[(1, 0, b"x")], maxlen=20, keep=0)
    n = h.r.xlen(room.base + ":log")
    for i in range(200):
        h.txn(room, recs=[(1, 0, b"d%d" % i)], maxlen=20)
    assert h.r.xlen(room.base + ":log") == n + 200


def test_txn_unlock_releases_only_ones_own_lock(redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("unlock")
    a.open(room)
    a.lock(room, "mine")
    before = snapshot(a.r)
    assert b.unlock(room, "mine") == 0
    assert a.unlock(room, "other") == 0
    assert snapshot(a.r) == before
    assert a.unlock(room, "mine") == 1
    assert not a.r.exists(room.base + ":lock")
    assert a.unlock(room, "mine") == 0
    # After its PX ran out and b took it, a's late unlock leaves b's.
    a.lock(room, "t2", px=50)
    time.sleep(0.1)
    b.lock(room, "t3")
    assert a.unlock(room, "t2") == 0
    assert a.r.get(room.base + ":lock") == f"{b.session} t3".encode()


# ---------------------------------------------------------------- commits

def test_concurrent_committers_get_dense_seqs_taking_the_lock_in_turn(
        redis_server):
    room = Room("dense")
    hosts = [Host(redis_server, f"h{i}") for i in range(4)]
    hosts[0].open(room)
    sub = subscribe(redis_server, room.base)
    got = []
    per_host = 40

    def work(h):
        for i in range(per_host):
            recs = [(1, 0, f"{h.name}:{i}:{j}".encode())
                    for j in range(i % 3)]
            ver, first, _, _ = h.txn(room, recs=recs)
            got.append((ver, first, [d for _, _, d in recs]))
    run_threads([lambda h=h: work(h) for h in hosts])
    total = per_host * len(hosts)
    got.sort()
    assert [g[0] for g in got] == list(range(1, total + 1))
    seq = 1
    for ver, first, datas in got:       # seqs dense, in ver order
        assert first == seq
        seq += len(datas)
    log = entries(hosts[0], room)
    assert [e[1][2:] for e in log] == [(g[1], len(g[2])) for g in got]
    assert [[i[3] for i in e[2] if i[0] == "R"] for e in log] == \
        [g[2] for g in got]
    assert hosts[0].find(room)[1:3] == [total, seq - 1]
    # Every entry was published once, in ver order.
    pub = [parse_entry(m)[0][1] for m in messages(sub, total, timeout=20)]
    sub.close()
    assert pub == list(range(1, total + 1))


def test_a_commit_without_the_lock_is_locklost_and_writes_nothing(
        redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("lost")
    a.open(room)
    for take in (None, "a", "b"):
        if take == "a":
            a.lock(room, "t1", px=50)
            time.sleep(0.1)             # and its PX ran out
        elif take == "b":
            b.lock(room, "t2")          # and b took it
        before = snapshot(a.r)
        refused("LOCKLOST", a.commit, room, "t1", recs=[(1, 0, b"x")],
                ups=[(1, line("z"))], pres=[(1, 1)], words=WORDS)
        assert snapshot(a.r) == before
    refused("LOCKLOST", a.commit, room, "t2")   # b's token, a's session
    assert b.commit(room, "t2", recs=[(1, 0, b"y")])[:2] == [1, 1]

def test_a_commit_stores_members_presence_and_words(redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("members", "chat")
    epoch = a.open(room)[0]
    r = a.txn(room, ups=[(1, line("ann")), (2, line("ben"))],
              pres=[(1, 1), (2, 1)], words=WORDS, next_mid=3)
    assert r == [1, 1, epoch, [1, 1, 2, 1]]    # no records: first = seq+1
    assert b.txn(room, pres=[(1, 1)], next_mid=3)[3] == [1, 2]
    m = a.r.hgetall(room.base + ":members")
    assert m == {b"1": line("ann"), b"2": line("ben")}
    assert a.r.hget(room.base + ":pres", "1") == \
        f"{a.session} {b.session}".encode()
    assert a.r.smembers(P + "sess:" + a.session) == {room.base.encode()}
    assert a.r.smembers(P + "sess:" + b.session) == {room.base.encode()}
    meta = a.r.hgetall(room.base + ":meta")
    assert (meta[b"words"], meta[b"next_mid"]) == (WORDS.encode(), b"3")
    # "" keeps the words; a member's presence goes host by host.
    assert a.txn(room, pres=[(1, 0)], next_mid=3)[3] == [1, 1]
    assert a.r.hget(room.base + ":meta", "words") == WORDS.encode()
    assert a.r.hget(room.base + ":pres", "1") == b.session.encode()
    assert b.txn(room, pres=[(1, 0)], next_mid=4)[3] == [1, 0]
    assert not a.r.hexists(room.base + ":pres", "1")
    # A removed member takes its presence with it.
    a.txn(room, rms=[2], next_mid=4)
    assert a.r.hkeys(room.base + ":members") == [b"1"]
    assert not a.r.exists(room.base + ":pres")
    assert a.r.hget(room.base + ":meta", "next_mid") == b"4"


def test_the_published_message_is_the_stored_entry(redis_server):
    h = Host(redis_server, "h")
    room = Room("wire", "screenshare")
    sub = subscribe(redis_server, room.base)
    epoch = h.open(room)[0]
    recs = [(7, 0, b"a\nb"), (8, 2, b""), (9, 1, bytes(range(256)))]
    h.txn(room, recs=recs, ups=[(2, line("eve"))], rms=[5],
          pres=[(2, 1), (5, 0)], words=WORDS, next_mid=6, kicks=[3])
    h.txn(room, recs=[(1, 0, b"z")], next_mid=6)
    msgs = messages(sub, 2)
    sub.close()
    stored = h.r.xrange(room.base + ":log")
    assert [e[0] for e in stored] == [b"1-0", b"2-0"]
    assert [e[1] for e in stored] == [{b"d": m} for m in msgs]
    head, items = parse_entry(msgs[0])
    assert msgs[0].startswith(b"E %d 1 1 3\n" % epoch)
    assert head == (epoch, 1, 1, 3)
    assert items == [("R", 7, 0, b"a\nb"), ("R", 8, 2, b""),
                     ("R", 9, 1, bytes(range(256))),
                     ("M", 2, line("eve")), ("X", 5), ("W", WORDS),
                     ("N", 6), ("K", 3), ("P", 2, 1), ("P", 5, 0)]
    assert parse_entry(msgs[1]) == ((epoch, 2, 4, 1),
                                    [("R", 1, 0, b"z"), ("N", 6)])


def test_close_removes_members_presence_lock_and_the_room_id(redis_server):
    a, dead = Host(redis_server, "a"), Host(redis_server, "dead",
                                            lease_ms=150)
    room = Room("bye", "lobby")
    sub = subscribe(redis_server, room.base)
    epoch = a.open(room)[0]
    a.txn(room, ups=[(1, line("ann"))], pres=[(1, 1)], next_mid=2)
    dead.txn(room, ups=[(2, line("ben"))], pres=[(2, 1)], next_mid=3)
    time.sleep(0.3)
    assert a.reap() == 1                # ben is lost, not yet handed on
    assert a.r.smembers(P + "lost") == {room.base.encode()}
    a.lock(room, "end")
    r = a.commit(room, "end", recs=[(1, 0, b"last")], next_mid=3,
                 close=b"closed by admin", release=0)
    assert r[:3] == [4, 1, epoch]
    for suffix in ("members", "pres", "lock", "lost"):
        assert not a.r.exists(f"{room.base}:{suffix}"), suffix
    assert a.r.smembers(P + "rooms:lobby") == set()
    assert a.r.smembers(P + "lost") == set()
    for suffix in ("meta", "log"):      # late readers: a minute
        assert 50000 < a.r.pttl(f"{room.base}:{suffix}") <= 60000
    msg = messages(sub, 4)[3]
    sub.close()
    assert parse_entry(msg)[1][-1] == ("C", b"closed by admin")
    assert a.r.xrevrange(room.base + ":log", count=1)[0][1][b"d"] == msg
    refused("NOROOM", a.find, room)
    refused("NOROOM", a.lock, room, "t")
    # The same id again: a new room, a new epoch, nothing of the old one.
    r = a.open(room)
    assert r[0] != epoch and r[1:3] == [0, 0] and r[6:] == [[], [], []]
    assert a.r.smembers(P + "rooms:lobby") == {b"bye"}


# ---------------------------------------------------------------- log_read

def test_log_read_returns_the_entries_after_and_says_when_incomplete(
        redis_server):
    h = Host(redis_server, "h")
    room = Room("read")
    epoch = h.open(room)[0]
    assert h.log_read(room) == [epoch, 0, 1, []]
    for i in range(6):
        h.txn(room, recs=[(1, 0, b"%d" % i)])
    log = h.log_read(room)[3]
    assert log[::2] == [1, 2, 3, 4, 5, 6]
    assert h.log_read(room, 4) == [epoch, 6, 1, log[8:]]
    assert h.log_read(room, 6) == [epoch, 6, 1, []]
    assert h.log_read(room, 7)[2] == 0          # ahead of the log
    r = h.log_read(room, 1, 2)                  # more than max
    assert r[3] == log[2:6] and r[2] == 0
    # Not fenced: a reader needs no session.
    h.leave()
    assert h.log_read(room, 5)[3] == log[10:]
    refused("NOROOM", h.log_read, Room("nowhere"))


# ---------------------------------------------------------------- reaping

def test_presence_end_lets_a_live_sessions_members_go_once(redis_server):
    """A worker of a live host died: its members' presence in the
    host's session goes; one present on no other host is lost, to be
    handed to member_lost by the next transaction; calling again (a
    helper started again) changes nothing."""
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    room = Room("gone", "chat")
    a.open(room)
    a.txn(room, ups=[(1, line("x")), (2, line("y")), (3, line("z"))],
          pres=[(1, 1), (2, 1)], next_mid=4)
    b.txn(room, pres=[(2, 1)], next_mid=4)          # y has a connection on b too
    ver = entries(a, room)[-1][1][1]
    assert a.presence_end(room.base, [1, 2, 3]) == 1    # x; z never was
    assert a.r.smembers(room.k("lost")[0]) == {b"1"}
    assert a.r.sismember(P + "lost", room.base)
    assert a.r.hget(room.k("pres")[0], "2") == b.session.encode()
    assert not a.r.hexists(room.k("pres")[0], "1")
    e = entries(a, room)[-1]
    assert e[1][1] == ver + 1 and sorted(e[2]) == [("P", 1, 0), ("P", 2, 1)]
    before = snapshot(a.r)
    assert a.presence_end(room.base, [1, 2, 3]) == 0
    assert snapshot(a.r) == before
    # The lost member goes once, with the next transaction (lost_room).
    assert b.lock(room, "t")[5] == [b"1"]
    b.commit(room, "t", done=[1], next_mid=4)
    assert not a.r.exists(room.k("lost")[0])
    # Under another's lock: BUSY, nothing written; a gone room: nothing.
    b.txn(room, pres=[(3, 1)], next_mid=4)
    a.txn(room, pres=[(3, 1)], next_mid=4)
    b.lock(room, "held", px=60000)
    before = snapshot(a.r)
    refused("BUSY", a.presence_end, room.base, [3])
    assert snapshot(a.r) == before
    b.unlock(room, "held")
    assert a.presence_end(room.base, [3]) == 0          # b still has z
    assert a.presence_end(Room("nowhere").base, [1]) == 0
    # A session that has ended is fenced: its reaping does the rest.
    dead = Host(redis_server, "dead", lease_ms=100)
    dead.txn(room, pres=[(3, 1)], next_mid=4)
    time.sleep(0.15)
    before = snapshot(a.r)
    assert "lease expired" in refused("FENCED", dead.presence_end,
                                      room.base, [3])
    assert snapshot(a.r) == before


def test_reap_presence_waits_for_the_lease_and_the_lock(redis_server):
    live = Host(redis_server, "live")
    dead = Host(redis_server, "dead", lease_ms=300)
    room = Room("wait", "chat")
    live.open(room)
    dead.txn(room, ups=[(1, line("d"))], pres=[(1, 1)], next_mid=2)
    before = snapshot(live.r)
    refused("ALIVE", live.reap_presence, room.base, dead.session)
    refused("ALIVE", live.session_drop, dead.session)
    assert snapshot(live.r) == before
    live.lock(room, "t", px=60000)
    time.sleep(0.4)
    before = snapshot(live.r)
    refused("BUSY", live.reap_presence, room.base, dead.session)
    assert live.session_drop(dead.session) == 0     # a room remains
    assert snapshot(live.r) == before
    live.unlock(room, "t")
    assert live.reap_presence(room.base, dead.session) == 1
    assert live.session_drop(dead.session) == 1
    assert live.r.zscore(P + "leases", dead.session) is None
    assert not live.r.exists(P + "host:dead")
    # A closed or gone room: nothing to reap, the session lets go of it.
    live.r.sadd(P + "sess:" + dead.session, Room("gone").base)
    assert live.reap_presence(Room("gone").base, dead.session) == 0
    assert not live.r.exists(P + "sess:" + dead.session)


def test_two_concurrent_reapers_move_each_lost_member_once(redis_server):
    live = Host(redis_server, "live")
    dead = Host(redis_server, "dead", lease_ms=400)
    rooms = [Room(f"reap{i}", "chat") for i in range(3)]
    lost, kept = {}, {}
    for room in rooms:
        live.open(room)
        ups = [(m, line(f"u{m}")) for m in range(1, 13)]
        dead.txn(room, ups=ups, pres=[(m, 1) for m in range(1, 13)],
                 next_mid=13)
        kept[room.base] = [m for m in range(1, 13) if m % 4 == 0]
        live.txn(room, pres=[(m, 1) for m in kept[room.base]], next_mid=13)
        lost[room.base] = [m for m in range(1, 13) if m % 4]
    time.sleep(0.5)
    subs = [subscribe(redis_server, room.base) for room in rooms]
    reapers = [Host(redis_server, "r1"), Host(redis_server, "r2")]
    counts = []

    def sweep(h):
        for _ in range(3):
            counts.append(h.reap())
    run_threads([lambda h=h: sweep(h) for h in reapers])
    assert sum(counts) == 3 * 9
    for room, sub in zip(rooms, subs):
        ents = entries(live, room)
        assert len(ents) == 3           # one reap entry per room
        assert ents[2][1][2:] == (1, 0)     # no records: seq + 1, none
        assert sorted(ents[2][2]) == sorted(
            [("P", m, 0) for m in lost[room.base]] +
            [("P", m, 1) for m in kept[room.base]])
        assert parse_entry(messages(sub, 1)[0]) == ents[2][1:]
        assert sub.get_message(timeout=0.2) is None
        sub.close()
        assert sorted(int(m) for m in live.r.smembers(room.base + ":lost")) \
            == lost[room.base]
        pres = live.r.hgetall(room.base + ":pres")
        assert pres == {str(m).encode(): live.session.encode()
                        for m in kept[room.base]}
    assert live.r.smembers(P + "lost") == {r.base.encode() for r in rooms}
    assert live.r.zscore(P + "leases", dead.session) is None
    assert not live.r.exists(P + "sess:" + dead.session)
    # The next transaction hands the lost members on, and says it did.
    room = rooms[0]
    got = live.lock(room, "t")
    assert sorted(int(m) for m in got[5]) == lost[room.base]
    live.commit(room, "t", done=lost[room.base], next_mid=13)
    assert live.lock(room, "t2")[5] == []
    live.unlock(room, "t2")
    assert live.r.smembers(P + "lost") == {r.base.encode()
                                           for r in rooms[1:]}
    assert live.reap() == 0


# ---------------------------------------------------------------- idle rooms

def test_a_room_with_presence_does_not_expire_and_one_without_does(
        redis_server):
    h = Host(redis_server, "h")
    room, keep = Room("idle"), Room("forever")
    r = h.r
    epoch = h.open(room, idle_ms=400)[0]
    h.open(keep, idle_ms=0)
    assert 0 < r.pttl(room.base + ":meta") <= 400   # nobody came yet
    h.txn(room, ups=[(1, line("a"))], pres=[(1, 1)], next_mid=2)
    h.txn(keep, ups=[(1, line("a"))], pres=[(1, 1)], next_mid=2)
    keys = room.k("meta", "log", "members", "pres")
    assert [r.pttl(k) for k in keys] == [-1] * 4
    time.sleep(0.5)
    h.txn(room, recs=[(1, 0, b"still")], next_mid=2)
    assert [r.pttl(k) for k in keys] == [-1] * 4
    h.txn(room, pres=[(1, 0)], next_mid=2)          # the last one left
    h.txn(keep, pres=[(1, 0)], next_mid=2)
    ttls = [r.pttl(k) for k in room.k("meta", "log", "members")]
    assert all(0 < t <= 400 for t in ttls), ttls
    time.sleep(0.6)
    assert r.keys(room.base + "*") == []
    assert r.smembers(P + "rooms:canvas") == {b"idle", b"forever"}
    refused("NOROOM", h.find, room)
    assert r.smembers(P + "rooms:canvas") == {b"forever"}
    assert h.find(keep)[1] == 2 and r.pttl(keep.base + ":meta") == -1
    assert h.open(room)[0] != epoch


# ---------------------------------------------------------------- prefixes

def test_another_prefix_works_the_same_and_is_isolated(redis_server):
    a = Host(redis_server, "h")
    o = Host(redis_server, "h", prefix="other:")
    assert o.session != a.session
    ra, ro = Room("same"), Room("same", prefix="other:")
    ea, eo = a.open(ra)[0], o.open(ro)[0]
    assert ea != eo
    o.txn(ro, recs=[(1, 0, b"o")], ups=[(1, line("x"))], pres=[(1, 1)],
          next_mid=2)
    assert a.find(ra)[1] == 0 and o.find(ro)[1] == 1
    assert a.r.smembers("other:rooms:canvas") == {b"same"}
    assert a.r.smembers("other:sess:" + o.session) == {ro.base.encode()}
    # Each shard its own leases and locks.
    o.session, sess = a.session, o.session
    assert "no such session" in refused("FENCED", o.lock, ro, "t")
    o.session = sess
    o.lock(ro, "t")
    a.lock(ra, "t")
    assert a.unlock(ra, "t") == 1 and o.unlock(ro, "t") == 1
    # Reaping one shard leaves the other alone.
    o.lease_ms = 100
    o.join()
    time.sleep(0.2)
    assert o.reap() == 1
    assert a.call("reap_list", [P + "leases"], 10) == []
    assert o.r.smembers("other:lost") == {ro.base.encode()}
    assert a.r.smembers(P + "lost") == set()
    assert all(k.startswith((b"roomd:", b"other:")) for k in a.r.keys("*"))
    # other:'s session on a roomd: room, with other:'s shard keys: a call
    # of the wrong shape, refused before anything else is looked at.
    o.lease_ms = 10000
    o.join()
    a.txn(ra, ups=[(1, line("x"))], pres=[(1, 1)], next_mid=2)
    d = Host(redis_server, "d", lease_ms=100, prefix="other:")
    time.sleep(0.2)
    before = snapshot(a.r)
    refused("ARGS", o.lock, ra, "t")
    refused("ARGS", o.call, "txn_commit", o.commit_keys(ra),
            *o.commit_args("t", next_mid=2))
    refused("ARGS", o.open, Room("new"))
    refused("ARGS", d.reap_presence, ra.base, d.session)
    assert snapshot(a.r) == before


# ---------------------------------------------------------------- lives

def test_a_restarted_redis_keeps_what_was_acknowledged_under_a_new_epoch(
        redis_factory):
    s = redis_factory()
    load_library(s.client())
    h = Host(s, "h", lease_ms=60000)
    room = Room("restart")
    epoch = h.open(room)[0]
    acked = [h.txn(room, recs=[(1, 0, b"op%d" % i)], ups=[(1, line("a"))],
                   pres=[(1, 1)], next_mid=2)[:2] for i in range(200)]
    assert acked == [[i, i] for i in range(1, 201)]
    s.restart()                         # kill -9, same data dir
    h.r = s.client()
    assert load_library(h.r) is False   # functions persist in the AOF
    epoch2, ver, complete, flat = h.log_read(room, 0, 100000)
    assert (ver, complete) == (200, 1)
    assert epoch2 != epoch              # a new server life: a new epoch
    assert [parse_entry(d)[1][0][3] for d in flat[1::2]] == \
        [b"op%d" % i for i in range(200)]
    assert h.r.hget(room.base + ":pres", "1") == h.session.encode()
    assert h.txn(room, recs=[(1, 0, b"after")], next_mid=2)[:3] == \
        [201, 201, epoch2]
    assert entries(h, room, 200)[0][1] == (epoch2, 201, 201, 1)
    # Loading the library again (FUNCTION LOAD REPLACE: a host of a new
    # roomd) is the same life: the data was not rewound, the epoch stays.
    h.r.execute_command("FUNCTION", "LOAD", "REPLACE", library_text())
    assert h.log_read(room)[0] == epoch2
    assert h.lock(room, "t")[:3] == [epoch2, 201, 201]
    assert h.commit(room, "t", next_mid=2)[:3] == [202, 202, epoch2]


def copy_room(src, dst, room):
    """What roomd -R does with a room's keys: DUMP, RESTORE REPLACE."""
    a, b = src.client(), dst.client()
    keys = a.keys(room.base + ":*")
    assert keys
    for k in keys:
        b.restore(k, 0, a.dump(k), replace=True)


def test_a_copied_room_keeps_its_epoch_only_if_written_in_its_servers_life(
        redis_factory):
    a, b = redis_factory(), redis_factory()
    for s in (a, b):
        load_library(s.client())
    ha, hb = Host(a, "h", lease_ms=60000), Host(b, "h", lease_ms=60000)
    room, old = Room("adopt"), Room("adopt-old")
    epoch = ha.open(room)[0]
    ha.txn(room, recs=[(1, 0, b"x")], next_mid=1)
    life = ha.r.fcall("roomd_life", 0).decode()
    assert ha.r.fcall("roomd_life", 0).decode() == life
    assert hb.r.fcall("roomd_life", 0).decode() != life
    copy_room(a, b, room)
    meta = room.base + ":meta"
    # Another life than the one its meta was written in: not adopted.
    other = "0" * 16 + ":" + "0" * 40
    assert hb.call("room_adopt", room.k("meta"), other) == 0
    assert hb.r.hget(meta, "life").decode() == life
    assert hb.call("room_adopt", room.k("meta"), life) == 1
    assert hb.r.hget(meta, "life").decode() == \
        hb.r.fcall("roomd_life", 0).decode()
    assert hb.log_read(room)[:3] == [epoch, 1, 1]
    assert hb.txn(room, recs=[(1, 0, b"y")], next_mid=1)[:3] == [2, 2, epoch]
    assert hb.call("room_adopt", Room("none").k("meta"), life) == 0
    assert not hb.r.exists(Room("none").base + ":meta")
    # A room last written before its server restarted (what that life had
    # not persisted may be lost) is not adopted: a new epoch, as on a.
    epoch_old = ha.open(old)[0]
    ha.txn(old, recs=[(1, 0, b"x")], next_mid=1)
    a.restart()
    ha.r = a.client()
    life2 = ha.r.fcall("roomd_life", 0).decode()
    assert life2 != life
    copy_room(a, b, old)
    assert hb.call("room_adopt", old.k("meta"), life2) == 0
    epoch_new = hb.log_read(old)[0]
    assert epoch_new != epoch_old
    assert hb.txn(old, recs=[(1, 0, b"y")], next_mid=1)[:3] == \
        [2, 2, epoch_new]


def test_out_of_memory_refuses_a_writing_step_whole(redis_factory):
    s = redis_factory()
    r = s.client()
    load_library(r)
    h = Host(s, "h")
    room = Room("oom")
    epoch = h.open(room)[0]
    h.txn(room, recs=[(1, 0, b"x" * 1000)], ups=[(1, line("a"))],
          pres=[(1, 1)], next_mid=2)
    h.lock(room, "held", px=60000)
    r.config_set("maxmemory", r.info("memory")["used_memory"] // 2)
    try:
        before = snapshot(r)
        for call in (lambda: h.lock(room, "t"),
                     lambda: h.commit(room, "held",
                                      recs=[(1, 0, b"y" * 1000)] * 3,
                                      next_mid=2),
                     lambda: h.open(Room("oom2")),
                     lambda: h.reap_presence(room.base, "x/1")):
            refused("OOM", call)
        # A host can still find rooms and follow their logs.
        assert h.find(room)[:3] == [epoch, 1, 1]
        assert h.log_read(room)[:3] == [epoch, 1, 1]
        assert h.call("reap_list", [P + "leases"], 10) == []
        assert snapshot(r) == before
    finally:
        r.config_set("maxmemory", 0)
    assert h.commit(room, "held", recs=[(1, 0, b"y")], next_mid=2)[:2] == \
        [2, 2]


def test_calls_of_the_wrong_shape_are_refused_and_write_nothing(
        redis_server):
    h = Host(redis_server, "h")
    room, other = Room("shape"), Room("elsewhere")
    h.open(room)
    h.txn(room, ups=[(1, line("a"))], pres=[(1, 1)], next_mid=2)
    h.lock(room, "tok", px=60000)
    dead = Host(redis_server, "dead", lease_ms=100)
    time.sleep(0.15)
    s, d, hk, ok_ok = h.session, dead.session, h.hkeys(), h.open_keys(room)
    ck, lk = h.commit_keys(room), h.lock_keys(room)
    ok = h.commit_args("tok", recs=[(1, 0, b"d")], ups=[(2, line("b"))],
                       pres=[(2, 1)], next_mid=3)
    ok_lock = [s, "tok", 3000, 0, 10]
    rk = room.k("meta", "log", "members", "pres", "lost")
    pk = room.k("meta", "log", "pres", "lock", "lost") + [
        P + "leases", P + "sess:" + d, P + "lost"]
    sd = [P + "leases", P + "sess:" + d, P + "host:dead"]
    ek = room.k("meta", "log", "pres", "lock", "lost") + [
        P + "leases", P + "lost"]
    bad = [     # each one thing wrong: a range, a shape, a key name
        ("host_join", hk, ["h", 99]), ("host_join", hk, ["h", 3600001]),
        ("host_join", [hk[0], P + "host:other"], ["h", 5000]),
        ("host_join", [hk[0], P + "host:a/b"], ["a/b", 5000]),
        ("host_join", [P + "lease", hk[1]], ["h", 5000]),
        ("host_join", hk, ["h", 5000, 1]), ("host_join", hk[:1], ["h", 5000]),
        ("host_renew", hk, ["nosession", 5000]),
        ("host_renew", hk, [s, "1e3"]),
        ("host_renew", [hk[0], P + "host:x"], [s, 5000]),
        ("host_leave", hk, [s, 1]),
        ("room_open", ok_ok[:6], [s, "canvas", "shape", 1, 0, 0]),
        ("room_open", ok_ok, [s, "can vas", "shape", 1, 0, 0]),
        ("room_open", ok_ok, [s, "canvas", "shape", 2, 0, 0]),
        ("room_open", ok_ok, [s, "canvas", "shape", 1, -5, 0]),
        ("room_open", ok_ok, [s, "canvas", "shape", 1, 0, 0.5]),
        ("room_open", ok_ok, [s, "canvas", "shape2", 1, 0, 0]),  # not its id
        ("room_open", ok_ok[:5] + [P + "rooms:chat", hk[0]],
         [s, "canvas", "shape", 1, 0, 0]),
        ("room_open", h.open_keys(Room("x" * 65)),
         [s, "canvas", "x" * 65, 1, 0, 0]),
        ("room_find", ok_ok, [s, "canvas", "shape", 1, 0, 0]),
        ("txn_lock", lk, [s, "tok", 9, 0, 10]),
        ("txn_lock", lk, [s, "tok", 60001, 0, 10]),
        ("txn_lock", lk, [s, "tok", 3000, -1, 10]),
        ("txn_lock", lk, [s, "tok", 3000, 0, 0]),
        ("txn_lock", lk, [s, "tok", 3000, 0, 100001]),
        ("txn_lock", lk, [s, "a b", 3000, 0, 10]), ("txn_lock", lk, ok_lock[:4]),
        ("txn_lock", [lk[1], lk[0]] + lk[2:], ok_lock),
        ("txn_lock", lk[:1] + other.k("log") + lk[2:], ok_lock),
        ("txn_commit", ck, ok[:13]), ("txn_commit", ck, ok + [1]),
        ("txn_commit", ck, ok[:10] + [1, 2]),
        ("txn_commit", ck, ok[:2] + [2] + ok[3:]),          # release
        ("txn_commit", ck, ok[:5] + ["x"] + ok[6:]),        # nrecs
        ("txn_commit", ck, ok[:6] + [-1] + ok[7:]),         # close
        ("txn_commit", ck, ok[:7] + ["w" * 401] + ok[8:]),  # words
        ("txn_commit", ck, ok[:8] + ["x"] + ok[9:]),        # keep
        ("txn_commit", ck, ok[:8] + [-1] + ok[9:]),         # keep
        ("txn_commit", ck, ok[:9] + [-1] + ok[10:]),        # next_mid
        ("txn_commit", ck[:7] + [P + "sess:h/1"] + ck[8:], ok),
        ("txn_commit", ck[:8] + [P + "lostx"] + ck[9:], ok),
        ("txn_commit", ck[:9] + [P + "rooms:chat"], ok),
        ("txn_commit", ck[:9], ok),
        ("txn_unlock", room.k("meta"), [s, "tok"]),
        ("txn_unlock", room.k("lock"), [s]),
        ("txn_unlock", room.k("lock"), ["h", "tok"]),
        ("log_read", rk, [0, 0]), ("log_read", rk, [0, 100001]),
        ("log_read", rk, ["x", 10]), ("log_read", rk, [0]),
        ("log_read", rk[:4] + other.k("lost"), [0, 10]),
        ("reap_list", [hk[0]], ["many"]), ("reap_list", [hk[0]], [0]),
        ("reap_list", [hk[0]], [1001]), ("reap_list", [P + "leasez"], [10]),
        ("reap_presence", pk, [d, -1]), ("reap_presence", pk, [d]),
        ("reap_presence", pk[:6] + [P + "sess:h/1", pk[7]], [d, 0]),
        ("reap_presence", pk[:7] + [P + "lots"], [d, 0]),
        ("presence_end", ek, [s, 0]), ("presence_end", ek, [s, -1, 1]),
        ("presence_end", ek, [s, 0, "x"]), ("presence_end", ek, ["s", 0, 1]),
        ("presence_end", ek[:6] + [P + "lots"], [s, 0, 1]),
        ("presence_end", ek[:6], [s, 0, 1]),
        ("session_drop", sd[:2] + [P + "host:other"], [d]),
        ("session_drop", [sd[0], P + "sess:h/1", sd[2]], [d]),
        ("life", [], [1]), ("life", [hk[0]], []),
        ("room_adopt", room.k("lock"), ["a:b"]),
        ("room_adopt", room.k("meta"), []),
        ("room_adopt", room.k("meta"), ["a b"]),
        ("room_adopt", room.k("meta", "log"), ["a:b"]),
    ]
    # The lists of txn_commit hold mids (integers) and presence flags (0/1).
    for kw in ({"ups": [("x", line("a"))]}, {"rms": ["1.5"]},
               {"pres": [("x", 1)]}, {"pres": [(1, 2)]}, {"pres": [(1, "")]},
               {"done": [-1]}, {"ups": [(2 ** 60, line("a"))]}):
        bad.append(("txn_commit", ck, h.commit_args("tok", next_mid=3, **kw)))
    before = snapshot(h.r)
    for step, keys, args in bad:
        msg = refused("ARGS", h.call, step, keys, *args)
        assert len(msg) < 200, msg
    assert snapshot(h.r) == before
    # The good calls the bad ones were made from do run.
    assert h.call("txn_commit", ck, *ok)[:2] == [2, 1]
    assert h.call("reap_presence", pk, d, 0) == 0
    assert h.call("session_drop", sd, d) == 1


# ---------------------------------------------------------------- failover

def wait_synced(server, timeout=20):
    wait_until(lambda: server.client().info("replication").get(
        "master_link_status") == "up", timeout, "replica not in sync")


def test_a_promoted_replica_that_missed_commits_never_reuses_their_seqs(
        redis_factory, tcp_proxy):
    """The rewind a failover without WAIT causes: the primary commits what
    its replica never gets (replication goes through a proxy that holds
    it, then drops it), dies, and the replica is promoted.  The seqs it
    hands out again come with a new epoch, so (epoch, seq) still names
    one record."""
    primary = redis_factory()
    load_library(primary.client())
    link = tcp_proxy(primary.port)
    replica = redis_factory(replicaof=link.port)
    wait_synced(replica)
    h = Host(primary, "h", lease_ms=60000)
    room = Room("rewind")
    epoch = h.open(room)[0]
    for i in range(20):
        h.txn(room, recs=[(1, 0, b"kept%d" % i)])
    assert h.r.execute_command("WAIT", 1, 5000) == 1
    sub = subscribe(primary, room.base)
    link.pause()
    seen = set()
    for i in range(5):
        ver, first, e, _ = h.txn(room, recs=[(1, 0, b"lost%d" % i)])
        seen.add((e, first))
    assert seen == {(epoch, s) for s in range(21, 26)}
    assert h.r.execute_command("WAIT", 1, 200) == 0
    assert len(messages(sub, 5)) == 5   # other hosts saw them
    sub.close()
    primary.kill9()
    link.close()                        # nothing reconnects through it
    rc = replica.client()
    rc.execute_command("REPLICAOF", "NO", "ONE")
    h.r = rc
    top = h.log_read(room, 0, 100000)
    assert top[1:3] == [20, 1]          # the five commits are gone
    assert top[0] != epoch
    for i in range(5):
        ver, first, e, _ = h.txn(room, recs=[(1, 0, b"new%d" % i)])
        assert (e, first) not in seen and e == top[0] and ver == 21 + i
    assert [i[0][3] for _, _, i in entries(h, room, 20)] == \
        [b"new%d" % i for i in range(5)]


def test_a_primary_demoted_and_promoted_again_does_not_reuse_its_lost_seqs(
        redis_factory, tcp_proxy):
    """The same process serves a room, loses commits in a failover,
    becomes a replica of the new primary, and is promoted back: it must
    not hand those seqs out again under the old epoch, though the room's
    meta still names a life of this very process."""
    a = redis_factory()
    load_library(a.client())
    link = tcp_proxy(a.port)
    b = redis_factory(replicaof=link.port)
    wait_synced(b)
    h = Host(a, "h", lease_ms=60000)
    room = Room("boomerang")
    epoch = h.open(room)[0]
    for i in range(5):
        h.txn(room, recs=[(1, 0, b"kept%d" % i)])
    assert h.r.execute_command("WAIT", 1, 5000) == 1
    link.pause()
    lost = {tuple(h.txn(room, recs=[(1, 0, b"lost%d" % i)])[1:3])
            for i in range(3)}
    assert lost == {(6, epoch), (7, epoch), (8, epoch)}
    link.close()                        # nothing reconnects through it
    b.client().execute_command("REPLICAOF", "NO", "ONE")
    h.r.execute_command("REPLICAOF", "127.0.0.1", b.port)
    wait_synced(a)
    assert h.r.xrevrange(room.base + ":log", count=1)[0][0] == b"5-0"
    h.r.execute_command("REPLICAOF", "NO", "ONE")
    ver, first, e, _ = h.txn(room, recs=[(1, 0, b"new")])
    assert (ver, first) == (6, 6) and (first, e) not in lost
    # A server writing its first AOF after a sync refuses to stop.
    wait_until(lambda: h.r.info("persistence")["aof_rewrite_in_progress"] ==
               0, 10, "the AOF rewrite did not end")


def test_a_replica_promoted_without_a_full_sync_takes_a_new_epoch(
        redis_factory):
    """A primary hands over to its replica and follows it by a partial
    sync (its library is not loaded again: the same Lua state), then is
    promoted back: a promoted replica is a new server life all the same."""
    a = redis_factory()
    load_library(a.client())
    a.client().config_set("repl-ping-replica-period", 3600)
    b = redis_factory(replicaof=a)
    wait_synced(b)
    h = Host(a, "h", lease_ms=60000)
    room = Room("psync")
    epoch = h.open(room)[0]
    h.txn(room, recs=[(1, 0, b"x")])
    assert h.r.execute_command("WAIT", 1, 5000) == 1
    b.client().execute_command("REPLICAOF", "NO", "ONE")
    h.r.execute_command("REPLICAOF", "127.0.0.1", b.port)
    wait_synced(a)
    assert b.client().info("stats")["sync_partial_ok"] == 1
    h.r.execute_command("REPLICAOF", "NO", "ONE")
    epoch2 = h.log_read(room)[0]
    assert epoch2 != epoch
    assert h.txn(room, recs=[(1, 0, b"y")])[:3] == [2, 2, epoch2]


def test_failover_keeps_every_commit_acknowledged_after_wait(
        redis_sentinel_group):
    g, primary, replica, sentinels = redis_sentinel_group
    t0 = time.monotonic()
    h = Host(primary, "h", lease_ms=60000)
    room = Room("failover")
    epoch = h.open(room)[0]
    acked = []
    for i in range(100):
        ver, first, _, _ = h.txn(room, recs=[(1, 0, b"op%d" % i)])
        if h.r.execute_command("WAIT", 1, 1000) >= 1:
            acked.append((ver, first))
    assert acked == [(i, i) for i in range(1, 101)]
    primary.kill9()
    wait_until(lambda: sentinels[0].primary() == ("127.0.0.1",
                                                  replica.port),
               20, "the sentinels did not promote the replica in 20 s")
    h.r = replica.client()
    wait_until(lambda: h.r.info("replication")["role"] == "master", 5,
               "the replica is not a primary")
    got = entries(h, room)
    assert [e[0] for e in got] == [v for v, _ in acked]
    assert [e[2][0][3] for e in got] == [b"op%d" % i for i in range(100)]
    # The promoted replica is a new server life: a new epoch, seq goes on.
    ver, first, epoch2, _ = h.txn(room, recs=[(1, 0, b"after")])
    assert (ver, first) == (101, 101) and epoch2 != epoch
    assert time.monotonic() - t0 < 40


def test_the_proxy_can_cut_a_host_off_and_let_it_back(redis_server,
                                                       tcp_proxy):
    p = tcp_proxy(redis_server.port)
    c = redis.Redis(host="127.0.0.1", port=p.port, socket_timeout=0.5)
    assert c.ping()
    p.pause()
    with pytest.raises(redis.TimeoutError):
        c.ping()
    p.resume()
    # One connection, no pool: a pool would connect again by itself.
    c = redis.Connection(host="127.0.0.1", port=p.port, socket_timeout=2)
    c.send_command("PING")
    assert c.read_response() in (b"PONG", "PONG", True)
    p.cut()
    with pytest.raises(redis.ConnectionError):
        c.send_command("PING")
        c.read_response()
    c.disconnect()
