"""The roomd Redis library (redis/*.lua) against real redis-servers.

Each test starts its own redis-server (redisd.py) on a free loopback port,
loads the library and calls its steps as a roomd host will: by FCALL, with
the keys of doc/cluster.txt.  Refusals must write nothing: tests compare a
dump of every key before and after.

Run with:  /usr/bin/python3 -m pytest -q tests/integration/test_redis_scripts.py
"""
import threading
import time

import pytest
import redis

from redisd import (load_library, redis_factory, redis_sentinel_group,  # noqa: F401
                    redis_server, tcp_proxy)

P = "roomd:"
REC_JOIN, REC_LEAVE, REC_SET, REC_CLOSE = 0xff01, 0xff02, 0xff03, 0xff04
ROOM_SUFFIXES = ("meta", "log", "members", "conns", "ix")


def room(name, dialect="canvas"):
    """The base of a room's keys, which is also its channel."""
    return f"roomd:{{{dialect}:{name}}}"


def rkeys(base, *suffixes):
    return [f"{base}:{s}" for s in suffixes]


class Host:
    """One roomd host's session on a shard, calling the steps by FCALL."""

    def __init__(self, server, name, lease_ms=10000):
        self.r = server.client()
        self.name = name
        self.lease_ms = lease_ms
        self.join()

    def join(self):
        inc, self.until, _ = self.call("host_join",
                                       [P + "leases", P + "host:" + self.name],
                                       self.name, self.lease_ms)
        self.inc = inc
        self.session = f"{self.name}/{inc}"
        return self.session

    def call(self, step, keys, *args):
        return self.r.fcall("roomd_" + step, len(keys), *keys, *args)

    def renew(self):
        return self.call("host_renew", [P + "leases", P + "host:" + self.name],
                         self.session, self.lease_ms)

    def create(self, base, dialect="canvas", idle_ms=0):
        return self.call("room_create", rkeys(base, *ROOM_SUFFIXES) +
                         [P + "leases"], self.session, dialect, idle_ms)

    def append(self, base, recs, maxlen=0, keep=0, cas=(), sets=()):
        args = [self.session, maxlen, keep, len(cas)]
        for w, v in cas:
            args += [w, v]
        args.append(len(sets))
        for w, v in sets:
            args += [w, v]
        for t, to, d in recs:
            args += [t, to, d]
        return self.call("append", rkeys(base, "meta", "log") + [P + "leases"],
                         *args)

    def member_join(self, base, cid, mid=0, member=b"m", uniq=(), maxlen=0):
        return self.call("member_join", rkeys(base, *ROOM_SUFFIXES) +
                         [P + "leases", P + "sess:" + self.session],
                         self.session, cid, mid, member, maxlen, len(uniq),
                         *uniq)

    def conn_leave(self, base, cid, keep=0, reason=b"bye"):
        return self.call("conn_leave", rkeys(base, *ROOM_SUFFIXES) +
                         [P + "leases", P + "sess:" + self.session],
                         self.session, cid, keep, reason, 0)

    def member_leave(self, base, mid, reason=b"kicked"):
        return self.call("member_leave", rkeys(base, *ROOM_SUFFIXES) +
                         [P + "leases"], self.session, mid, reason, 0)

    def member_set(self, base, mid, member):
        return self.call("member_set", rkeys(base, "meta", "log", "members") +
                         [P + "leases"], self.session, mid, member, 0)

    def delete(self, base, reason=b"gone", linger_ms=0):
        return self.call("room_delete", rkeys(base, *ROOM_SUFFIXES) +
                         [P + "leases", P + "deadlines"], self.session,
                         reason, linger_ms)

    def deadline_set(self, base, name, delay_ms):
        return self.call("deadline_set", rkeys(base, "meta", "ix") +
                         [P + "leases", P + "deadlines"], self.session, name,
                         delay_ms)

    def deadline_clear(self, base, name):
        return self.call("deadline_clear", [P + "leases", P + "deadlines"],
                         self.session, base, name)

    def deadlines_pop(self, n=100):
        return self.call("deadlines_pop", [P + "leases", P + "deadlines"],
                         self.session, n)

    def read(self, base, start=1, count=10000):
        return self.call("read", rkeys(base, "meta", "log"), start, count)

    def state(self, base):
        return self.call("room_state", rkeys(base, "meta", "members", "ix"))

    def reap(self, limit=5):
        """Reap every expired session as a host's sweep would: returns the
        number of members that left by this host's calls."""
        left = 0
        for sess in self.call("reap_list", [P + "leases"], 100):
            sess = sess.decode()
            skey = P + "sess:" + sess
            for base in self.r.smembers(skey):
                base = base.decode()
                while True:
                    n, more = self.call("reap_room",
                                        rkeys(base, *ROOM_SUFFIXES) +
                                        [P + "leases", skey], sess, limit, 0)
                    left += n
                    if more == 0:
                        break
            host = sess.split("/")[0]
            self.call("session_drop", [P + "leases", skey, P + "host:" + host],
                      sess)
        return left


def records(host, base, start=1):
    """[(seq, type, target, data)] of the room's log from start."""
    flat = host.read(base, start)[4]
    return [tuple(flat[i:i + 4]) for i in range(0, len(flat), 4)]


def snapshot(r):
    """Every key with its type, TTL presence and DUMP: what 'nothing was
    written' is checked against."""
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


def parse_message(data):
    """A published message: (epoch, first, [(type, target, bytes)])."""
    head, rest = data.split(b"\n", 1)
    epoch, first, n = (int(x) for x in head.split())
    recs = []
    for _ in range(n):
        line, rest = rest.split(b"\n", 1)
        t, to, ln = (int(x) for x in line.split())
        recs.append((t, to, rest[:ln]))
        rest = rest[ln:]
    assert rest == b""
    return epoch, first, recs


def run_threads(fns, timeout=60):
    """Run each fn in a thread; re-raise the first failure."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:      # noqa: B902 - reported below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(f,)) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish in time"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- library

def test_library_loads_once_and_registers_every_step(redis_server):
    r = redis_server.client()
    assert load_library(r) is False     # already this text: not reloaded
    lib = dict(zip(*[iter(r.function_list("roomd")[0])] * 2))
    names = {dict(zip(*[iter(f)] * 2))[b"name"].decode()
             for f in lib[b"functions"]}
    for step in ("host_join", "host_renew", "host_leave", "room_create",
                 "room_delete", "room_state", "append", "read",
                 "member_join", "conn_leave", "member_leave", "member_set",
                 "reap_list", "reap_room", "session_drop", "deadline_set",
                 "deadline_clear", "deadlines_pop"):
        assert "roomd_" + step in names
    cfg = r.config_get("appendonly")["appendonly"], \
        r.config_get("maxmemory-policy")["maxmemory-policy"]
    assert cfg == ("yes", "noeviction")
    assert redis_server.port != 6379


# ---------------------------------------------------------------- append

def test_concurrent_appends_get_dense_seqs_in_one_order(redis_server):
    base = room("dense")
    Host(redis_server, "h0").create(base)
    sub = redis_server.client().pubsub()
    sub.subscribe(base)
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    hosts = [Host(redis_server, f"h{i}") for i in range(4)]
    got = {h.name: [] for h in hosts}
    per_host = 150

    def work(h):
        for i in range(per_host):
            n = 1 + i % 3
            recs = [(1, 0, f"{h.name}:{i}:{j}".encode()) for j in range(n)]
            first, last, _ = h.append(base, recs)
            assert last - first + 1 == n
            got[h.name].append((first, last, [d for _, _, d in recs]))
    run_threads([lambda h=h: work(h) for h in hosts])

    total = sum(1 + i % 3 for i in range(per_host)) * len(hosts)
    log = records(hosts[0], base)
    assert [s for s, _, _, _ in log] == list(range(1, total + 1))
    by_seq = {s: d for s, _, _, d in log}
    for name, calls in got.items():
        for first, last, datas in calls:
            assert [by_seq[s] for s in range(first, last + 1)] == datas
        assert [c[0] for c in calls] == sorted(c[0] for c in calls)

    # The channel carried every record once, in seq order, with the epoch.
    epoch = hosts[0].read(base, 1, 0)[0]
    seen = []
    deadline = time.monotonic() + 10
    while len(seen) < total and time.monotonic() < deadline:
        m = sub.get_message(timeout=1)
        if m and m["type"] == "message":
            e, first, recs = parse_message(m["data"])
            assert e == epoch and first == len(seen) + 1
            seen += [d for _, _, d in recs]
    sub.close()
    assert seen == [d for _, _, _, d in log]


def test_append_compares_and_sets_dialect_words_or_writes_nothing(redis_server):
    h = Host(redis_server, "h1")
    base = room("cas", "lobby")
    h.create(base, "lobby")
    h.append(base, [(1, 0, b"v1")], sets=[(2, 5)])
    before = snapshot(h.r)
    assert refused("CHANGED", h.append, base, [(1, 0, b"v2")],
                   cas=[(2, 4)], sets=[(2, 6)]) .endswith("w2 5")
    assert snapshot(h.r) == before
    first, last, _ = h.append(base, [(1, 0, b"v2")], cas=[(2, 5)],
                              sets=[(2, 6), (3, -1)])
    assert (first, last) == (2, 2)
    assert h.state(base)[5] == [0, 0, 6, -1, 0, 0, 0, 0]


# ---------------------------------------------------------------- fencing

def test_a_host_whose_lease_expired_is_fenced_and_writes_nothing(redis_server):
    live = Host(redis_server, "live")
    base = room("fence")
    live.create(base)
    live.member_join(base, "c1")
    stale = Host(redis_server, "stale", lease_ms=150)
    stale.member_join(base, "c1")
    time.sleep(0.3)
    before = snapshot(live.r)
    for call in (lambda: stale.append(base, [(1, 0, b"late")]),
                 lambda: stale.member_join(base, "c2"),
                 lambda: stale.conn_leave(base, "c1"),
                 lambda: stale.member_set(base, 1, b"x"),
                 lambda: stale.member_leave(base, 1),
                 lambda: stale.deadline_set(base, "t", 0),
                 lambda: stale.deadlines_pop(),
                 lambda: stale.create(room("other")),
                 lambda: stale.delete(base),
                 stale.renew):
        assert "lease expired" in refused("FENCED", call)
    assert snapshot(live.r) == before
    # Joining again is a new session: the old one stays fenced.
    old = stale.session
    stale.join()
    assert stale.session != old
    stale.append(base, [(1, 0, b"now")])
    stale.session = old
    refused("FENCED", stale.append, base, [(1, 0, b"old")])


def test_an_old_incarnation_is_fenced_once_the_host_joins_again(redis_server):
    a = Host(redis_server, "same")
    base = room("inc")
    a.create(base)
    b = Host(redis_server, "same")      # the host restarted: a new session
    assert b.session != a.session
    before = snapshot(b.r)
    refused("FENCED", a.append, base, [(1, 0, b"zombie")])
    refused("FENCED", a.renew)
    assert snapshot(b.r) == before
    b.append(base, [(1, 0, b"alive")])
    b.renew()
    a.session = "same/12345"            # never issued
    assert "no such session" in refused("FENCED", a.append, base,
                                        [(1, 0, b"x")])


def test_renewing_keeps_a_lease_past_its_first_term(redis_server):
    h = Host(redis_server, "h", lease_ms=200)
    base = room("renew")
    h.create(base)
    for _ in range(5):
        time.sleep(0.1)
        until, now = h.renew()
        assert until - now == 200
    h.append(base, [(1, 0, b"still here")])     # 500 ms after joining


def test_a_write_delayed_past_the_lease_is_refused_when_it_arrives(
        redis_server, tcp_proxy):
    """A host cut off from Redis (the proxy holds its bytes) whose lease
    runs out meanwhile: its members are reaped, and the append it sent
    before the cut reaches Redis late and is refused."""
    proxy = tcp_proxy(redis_server.port)
    live = Host(redis_server, "live")
    base = room("partition", "chat")
    live.create(base, "chat")
    cut = Host(redis_server, "cut", lease_ms=300)
    cut.r = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=10)
    mid = cut.member_join(base, "c1", member=b"bob")[0]
    proxy.pause()
    late = {}

    def send():
        try:
            late["reply"] = cut.append(base, [(1, 0, b"sent before the cut")])
        except redis.ResponseError as e:
            late["error"] = str(e)
    t = threading.Thread(target=send)
    t.start()
    time.sleep(0.5)
    assert live.reap() == 1
    proxy.resume()
    t.join(10)
    assert not t.is_alive()
    # The reaper has dropped the session by then: "no such session".
    assert late.get("error", "").startswith("FENCED "), late
    assert [r[1:3] for r in records(live, base)] == [(REC_JOIN, mid),
                                                     (REC_LEAVE, mid)]


# ---------------------------------------------------------------- members

def test_member_records_are_ordered_with_the_ops(redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    base = room("order", "classroom")
    a.create(base, "classroom")
    expect = []
    mid1, s, _ = a.member_join(base, "c1", member=b"teacher")
    expect.append((s, REC_JOIN, mid1, b"teacher"))
    f, _, _ = a.append(base, [(1, 0, b"hello")])
    expect.append((f, 1, 0, b"hello"))
    mid2, s, _ = b.member_join(base, "c9", member=b"pupil")
    expect.append((s, REC_JOIN, mid2, b"pupil"))
    f, _, _ = b.append(base, [(3, mid1, b"to teacher")])
    expect.append((f, 3, mid1, b"to teacher"))
    s, _ = a.member_set(base, mid2, b"pupil+mic")
    expect.append((s, REC_SET, mid2, b"pupil+mic"))
    _, s, _ = b.conn_leave(base, "c9", reason=b"closed")
    expect.append((s, REC_LEAVE, mid2, b"closed"))
    f, _, _ = a.append(base, [(1, 0, b"bye")])
    expect.append((f, 1, 0, b"bye"))
    assert records(a, base) == expect
    assert [s for s, _, _, _ in expect] == list(range(1, 8))
    st = a.state(base)
    assert st[1] == 7 and st[6] == [mid1, b"teacher", 1]
    refused("NOMEMBER", a.member_set, base, mid2, b"gone")


def test_one_member_with_connections_on_two_hosts_leaves_with_the_last(
        redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    base = room("tabs", "chat")
    a.create(base, "chat")
    mid, s1, _ = a.member_join(base, "t1", member=b"alice", uniq=["u:alice"])
    assert s1 == 1
    # Another connection of the same user: the engine found the mid by the
    # unique key; another user cannot take it.
    e = refused("EXISTS", b.member_join, base, "t2", 0, b"alice",
                ["u:alice"])
    assert e.split()[1:] == [str(mid), "u:alice"]
    assert b.member_join(base, "t2", mid=mid) == [mid, 0, a.read(base)[0]]
    assert b.member_join(base, "t2", mid=mid)[1] == 0     # again: the same
    refused("EXISTS", b.member_join, base, "t2", mid=mid + 1)
    refused("NOMEMBER", b.member_join, base, "t3", mid=99)
    assert a.state(base)[6] == [mid, b"alice", 2]
    assert a.conn_leave(base, "t1")[1] == 0     # a tab left: no record
    assert a.state(base)[6] == [mid, b"alice", 1]
    assert a.conn_leave(base, "t1") == [0, 0, a.read(base)[0]]
    m, seq, _ = b.conn_leave(base, "t2", reason=b"last tab")
    assert (m, seq) == (mid, 2)
    assert records(a, base)[-1] == (2, REC_LEAVE, mid, b"last tab")
    assert a.state(base)[6] == []
    assert a.r.smembers(P + "sess:" + b.session) == set()
    # The name is free again: a new member, a new mid.
    assert a.member_join(base, "t4", uniq=["u:alice"])[0] == mid + 1


def test_a_member_kept_without_connections_leaves_by_member_leave(
        redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    base = room("grace", "lobby")
    a.create(base, "lobby")
    host_mid = a.member_join(base, "c1", member=b"host", uniq=["n:h"])[0]
    other = b.member_join(base, "c2", member=b"guest")[0]
    b.member_join(base, "c3", mid=other)
    assert a.conn_leave(base, "c1", keep=1)[1] == 0
    assert a.state(base)[6][:3] == [host_mid, b"host", 0]
    # A kick takes every connection of the member, on every host.
    seq, _ = a.member_leave(base, other, b"kicked")
    seq2, _ = a.member_leave(base, host_mid, b"grace over")
    assert [r[1:] for r in records(a, base)[-2:]] == [
        (REC_LEAVE, other, b"kicked"), (REC_LEAVE, host_mid, b"grace over")]
    assert seq2 == seq + 1
    assert a.state(base)[6] == []
    assert a.r.hlen(base + ":conns") == 0
    assert a.r.hlen(base + ":ix") == 0
    refused("NOMEMBER", a.member_leave, base, other)


# ---------------------------------------------------------------- reaping

def test_two_concurrent_reapers_announce_each_lost_member_once(redis_server):
    live = Host(redis_server, "live")
    dead = Host(redis_server, "dead", lease_ms=400)
    bases = [room(f"reap{i}", "chat") for i in range(3)]
    lost, kept = {}, {}
    for base in bases:
        live.create(base, "chat")
        lost[base], kept[base] = [], []
        for j in range(12):
            mid = dead.member_join(base, f"d{j}")[0]
            dead.member_join(base, f"e{j}", mid=mid)    # two tabs there
            if j % 4 == 0:      # this user has a tab on the live host too
                live.member_join(base, f"l{j}", mid=mid)
                kept[base].append(mid)
            else:
                lost[base].append(mid)
    refused("ALIVE", live.call, "reap_room",
            rkeys(bases[0], *ROOM_SUFFIXES) +
            [P + "leases", P + "sess:" + dead.session], dead.session, 5, 0)
    time.sleep(0.5)
    reapers = [Host(redis_server, "r1"), Host(redis_server, "r2")]
    counts = []
    run_threads([lambda h=h: counts.append(h.reap(limit=3))
                 for h in reapers])
    assert sum(counts) == sum(len(v) for v in lost.values())
    for base in bases:
        leaves = [r[2] for r in records(live, base) if r[1] == REC_LEAVE]
        assert sorted(leaves) == sorted(lost[base])     # each once
        members = live.state(base)[6]
        assert sorted(members[0::3]) == sorted(kept[base])
        assert set(members[2::3]) == {1}
    assert live.r.zscore(P + "leases", dead.session) is None
    assert not live.r.exists(P + "sess:" + dead.session)
    assert live.reap() == 0             # nothing left: nothing twice
    live.renew()


def test_a_host_that_leaves_is_reaped_at_once(redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b")
    base = room("bye")
    a.create(base)
    mid = a.member_join(base, "c1")[0]
    a.call("host_leave", [P + "leases", P + "host:a"], a.session)
    assert b.reap() == 1
    assert records(b, base)[-1][1:3] == (REC_LEAVE, mid)


# ---------------------------------------------------------------- deadlines

def test_due_deadlines_are_popped_by_exactly_one_host(redis_server):
    owner = Host(redis_server, "owner")
    bases = [room(f"t{i}", "lobby") for i in range(4)]
    want = set()
    for base in bases:
        owner.create(base, "lobby")
        for j in range(40):
            owner.deadline_set(base, f"timer{j}", j % 5)
            want.add((base, f"timer{j}"))
    owner.deadline_set(bases[0], "later", 60000)
    owner.deadline_set(bases[1], "cleared", 0)
    assert owner.deadline_clear(bases[1], "cleared") == 1
    assert owner.deadline_clear(bases[1], "cleared") == 0
    want.discard((bases[1], "cleared"))
    time.sleep(0.05)
    poppers = [Host(redis_server, f"p{i}") for i in range(4)]
    got = []

    def pop(h):
        for _ in range(200):
            flat = h.deadlines_pop(n=7)
            got.extend((flat[i].decode(), flat[i + 1].decode())
                       for i in range(0, len(flat), 3))
            if not flat and len(got) >= len(want):
                return
    run_threads([lambda h=h: pop(h) for h in poppers])
    assert len(got) == len(set(got)) and set(got) == want
    # The room's pending timer goes with the room.
    owner.delete(bases[0])
    assert owner.r.zcard(P + "deadlines") == 0


# ---------------------------------------------------------------- read

def test_a_read_from_a_trimmed_seq_says_so(redis_server):
    h = Host(redis_server, "h")
    base = room("trim")
    h.create(base)
    for i in range(1000):
        h.append(base, [(1, 0, b"%d" % i)], maxlen=50)
    epoch, top, first, closed, _ = h.read(base, 1000, 0)
    assert top == 1000 and closed == 0 and 1 < first <= 951
    e = refused("TRIMMED", h.read, base, 1, 10).split()
    assert e[1:] == [str(epoch), str(first), "1000"]
    assert records(h, base, first)[0][0] == first
    assert records(h, base, 1000) == [(1000, 1, 0, b"999")]
    assert records(h, base, 1001) == []
    assert refused("AHEAD", h.read, base, 1002, 10).split()[1:] == \
        [str(epoch), "1000"]
    # keep: the lobby's snapshot record is never trimmed.
    h.append(base, [(1, 0, b"snapshot")], keep=1001)
    for i in range(300):
        h.append(base, [(1, 0, b"x")], maxlen=50)
    assert h.read(base, 1001, 1)[4][3] == b"snapshot"
    refused("NOROOM", h.read, room("nowhere"), 1, 1)


def test_room_create_refuses_a_room_that_exists_and_delete_closes_it(
        redis_server):
    h = Host(redis_server, "h")
    sub = redis_server.client().pubsub()
    base = room("life")
    sub.subscribe(base)
    sub.get_message(timeout=5)
    epoch, _ = h.create(base)
    before = snapshot(h.r)
    refused("EXISTS", h.create, base)
    assert snapshot(h.r) == before
    h.member_join(base, "c1")
    h.deadline_set(base, "t", 60000)
    seq, e = h.delete(base, b"closed by admin", linger_ms=60000)
    assert (seq, e) == (2, epoch)
    # The close record is readable while the room lingers, and published.
    assert h.read(base, 2)[3] == 1
    assert records(h, base, 2) == [(2, REC_CLOSE, 0, b"closed by admin")]
    msgs = []
    while len(msgs) < 2:
        m = sub.get_message(timeout=5)
        assert m is not None
        if m["type"] == "message":
            msgs.append(parse_message(m["data"]))
    sub.close()
    assert msgs[1] == (epoch, 2, [(REC_CLOSE, 0, b"closed by admin")])
    refused("CLOSED", h.append, base, [(1, 0, b"late")])
    refused("CLOSED", h.member_join, base, "c2")
    assert h.conn_leave(base, "c1")[:2] == [0, 0]
    assert h.r.zcard(P + "deadlines") == 0
    # A new room by that name: a new epoch, so old pointers mean nothing.
    epoch2, _ = h.create(base)
    assert epoch2 != epoch
    assert h.append(base, [(1, 0, b"new")])[:2] == [1, 1]
    h.delete(base)
    assert h.r.keys(base + "*") == []
    refused("NOROOM", h.delete, base)


def test_a_room_without_connections_expires_after_its_idle_time(
        redis_server):
    a, b = Host(redis_server, "a"), Host(redis_server, "b", lease_ms=300)
    base = room("idle")
    epoch, _ = a.create(base, idle_ms=400)
    r = a.r
    assert 0 < r.pttl(base + ":meta") <= 400    # nobody came yet
    mid = a.member_join(base, "c1")[0]
    b.member_join(base, "c2", mid=mid)
    a.append(base, [(1, 0, b"op")])
    assert [r.pttl(k) for k in rkeys(base, *ROOM_SUFFIXES)] == [-1] * 5
    a.conn_leave(base, "c1")
    assert r.pttl(base + ":meta") == -1         # b's connection is in
    time.sleep(0.35)
    assert a.reap() == 1                        # b was lost: now idle
    ttls = [r.pttl(k) for k in rkeys(base, *ROOM_SUFFIXES) if r.exists(k)]
    assert len(ttls) >= 2 and all(0 < t <= 400 for t in ttls), ttls
    a.member_join(base, "c3")                   # back in use: kept
    assert r.pttl(base + ":meta") == -1 and r.pttl(base + ":log") == -1
    a.conn_leave(base, "c3")
    time.sleep(0.5)
    assert r.keys(base + "*") == []
    refused("NOROOM", a.append, base, [(1, 0, b"late")])
    assert a.create(base)[0] != epoch


# ---------------------------------------------------------------- faults

def test_a_restarted_redis_keeps_what_was_acknowledged_under_a_new_epoch(
        redis_factory):
    s = redis_factory()
    load_library(s.client())
    h = Host(s, "h", lease_ms=60000)
    base = room("restart")
    epoch, _ = h.create(base)
    acked = []
    for i in range(300):
        acked.append(h.append(base, [(1, 0, b"op%d" % i)])[1])
    s.restart()                         # kill -9, same data dir
    h.r = s.client()
    assert load_library(h.r) is False   # functions persist in the AOF
    got = records(h, base)
    assert [r[0] for r in got] == acked == list(range(1, 301))
    assert got[-1][3] == b"op299"
    epoch2 = h.read(base, 1, 0)[0]
    assert epoch2 != epoch              # a new server life: a new epoch
    assert h.append(base, [(1, 0, b"after")]) == [301, 301, epoch2]


def test_out_of_memory_refuses_a_step_whole(redis_factory):
    s = redis_factory()
    r = s.client()
    load_library(r)
    h = Host(s, "h")
    base = room("oom")
    h.create(base)
    mid = h.member_join(base, "c1")[0]
    h.append(base, [(1, 0, b"x" * 1000)])
    r.config_set("maxmemory", r.info("memory")["used_memory"] // 2)
    before = snapshot(r)
    calls = [lambda: h.append(base, [(1, 0, b"y" * 1000)] * 3),
             lambda: h.member_join(base, "c2"),
             lambda: h.member_set(base, mid, b"z"),
             lambda: h.deadline_set(base, "t", 10),
             lambda: h.create(room("oom2"))]
    for call in calls:
        refused("OOM", call)
    assert snapshot(r) == before
    assert records(h, base)[-1][0] == 2     # reads still work
    r.config_set("maxmemory", 0)
    assert h.append(base, [(1, 0, b"y")])[:2] == [3, 3]


def test_calls_of_the_wrong_shape_are_refused_and_write_nothing(redis_server):
    h = Host(redis_server, "h")
    base = room("shape")
    h.create(base)
    h.member_join(base, "c1")
    r = h.r
    s = h.session
    mk = rkeys(base, "meta", "log") + [P + "leases"]
    all5 = rkeys(base, *ROOM_SUFFIXES)
    sk = P + "sess:" + s
    bad = [
        ("append", mk, [s]),                                  # too few
        ("append", mk, [s, 0, 0, 0, 0]),                      # no record
        ("append", mk, [s, 0, 0, 0, 0, 1, 0]),                # not threes
        ("append", mk, [s, "ten", 0, 0, 0, 1, 0, b"d"]),      # maxlen
        ("append", mk, [s, 0, 0, 0, 0, 0x10000, 0, b"d"]),    # type range
        ("append", mk, [s, 0, 0, 0, 0, 1, -1, b"d"]),         # target
        ("append", mk, [s, 0, 0, 0, 0, 1, "1.5", b"d"]),      # not integer
        ("append", mk, [s, 0, 0, 1, 9, 0, 0, 1, 0, b"d"]),    # word index
        ("append", mk, [s, 0, 0, 2, 1, 0, 0, 1, 0, b"d"]),    # short cas
        ("append", mk, ["nosession", 0, 0, 0, 0, 1, 0, b"d"]),
        ("append", mk[:2], [s, 0, 0, 0, 0, 1, 0, b"d"]),      # a key short
        ("append", [base + ":log", base + ":meta", P + "leases"],
         [s, 0, 0, 0, 0, 1, 0, b"d"]),                        # keys swapped
        ("append", [base + ":meta", room("x") + ":log", P + "leases"],
         [s, 0, 0, 0, 0, 1, 0, b"d"]),                        # another room
        ("append", rkeys(base, "meta", "log") + ["roomd:lease"],
         [s, 0, 0, 0, 0, 1, 0, b"d"]),
        ("member_join", all5 + [P + "leases", sk], [s, "c2", 0, b"m", 0]),
        ("member_join", all5 + [P + "leases", sk], [s, "c 2", 0, b"m", 0, 0]),
        ("member_join", all5 + [P + "leases", sk], [s, "c2", 0, b"m", 0, 2,
                                                    "u:a"]),
        ("member_join", all5 + [P + "leases", P + "sess:other/1"],
         [s, "c2", 0, b"m", 0, 0]),
        ("member_join", all5 + [P + "leases", sk], [s, "c2", "x", b"m", 0, 0]),
        ("conn_leave", all5 + [P + "leases", sk], [s, "c1", 2, b"r", 0]),
        ("member_set", rkeys(base, "meta", "log", "members") + [P + "leases"],
         [s, 0, b"m", 0]),
        ("read", rkeys(base, "meta", "log"), [0, 10]),
        ("read", rkeys(base, "meta", "log"), [1]),
        ("read", rkeys(base, "meta", "log"), [1, 10001]),
        ("host_join", [P + "leases", P + "host:h"], ["h", 5]),
        ("host_join", [P + "leases", P + "host:other"], ["h", 5000]),
        ("host_join", [P + "leases", P + "host:a/b"], ["a/b", 5000]),
        ("deadline_set", rkeys(base, "meta", "ix") + [P + "leases",
                                                      P + "deadlines"],
         [s, "t", -1]),
        ("deadlines_pop", [P + "leases", P + "deadlines"], [s, 0]),
        ("reap_list", [P + "leases"], ["many"]),
        ("room_create", all5 + [P + "leases"], [s, "can vas", 0]),
        ("room_create", all5 + [P + "leases"], [s, "canvas"]),
        ("room_create", all5 + [P + "leases"], [s, "canvas", -5]),
    ]
    before = snapshot(r)
    for step, keys, args in bad:
        msg = refused("ARGS", h.call, step, keys, *args)
        assert len(msg) < 200, msg
    assert snapshot(r) == before


def test_a_promoted_replica_that_missed_records_never_reuses_their_seqs(
        redis_factory, tcp_proxy):
    """The rewind a failover without WAIT causes: the primary publishes
    records its replica never gets (replication goes through a proxy that
    holds them, then drops them), dies, and the replica is promoted.  The
    seqs it hands out again come with a new epoch, so (epoch, seq) still
    names one record."""
    primary = redis_factory()
    load_library(primary.client())
    link = tcp_proxy(primary.port)
    replica = redis_factory(replicaof=link.port)
    rc = replica.client()
    for _ in range(200):
        if rc.info("replication").get("master_link_status") == "up":
            break
        time.sleep(0.05)
    h = Host(primary, "h", lease_ms=60000)
    base = room("rewind")
    epoch, _ = h.create(base)
    for i in range(20):
        h.append(base, [(1, 0, b"kept%d" % i)])
    assert h.r.execute_command("WAIT", 1, 5000) == 1
    sub = primary.client().pubsub()
    sub.subscribe(base)
    sub.get_message(timeout=5)
    link.pause()
    seen = {}
    for i in range(5):
        first, _, e = h.append(base, [(1, 0, b"lost%d" % i)])
        seen[(e, first)] = b"lost%d" % i
    assert h.r.execute_command("WAIT", 1, 200) == 0
    published = 0
    while published < 5:                # other hosts got them
        m = sub.get_message(timeout=5)
        assert m is not None
        published += m["type"] == "message"
    primary.kill9()
    link.cut()
    rc.execute_command("REPLICAOF", "NO", "ONE")
    h.r = rc
    top = h.read(base, 1, 0)
    assert top[1] == 20                 # the five records are gone
    assert top[0] != epoch
    for i in range(5):
        first, _, e = h.append(base, [(1, 0, b"new%d" % i)])
        assert (e, first) not in seen and e == top[0]
    assert [r[3] for r in records(h, base, 21)] == [b"new%d" % i
                                                    for i in range(5)]


def test_a_primary_demoted_and_promoted_again_does_not_reuse_its_lost_seqs(
        redis_factory, tcp_proxy):
    """The same process serves a room, loses records it published in a
    failover, becomes a replica of the new primary, and is promoted back:
    it must not hand those seqs out again under the old epoch, though the
    room's meta still names a life of this very process."""
    a = redis_factory()
    load_library(a.client())
    link = tcp_proxy(a.port)
    b = redis_factory(replicaof=link.port)

    def synced(s):
        for _ in range(400):
            if s.client().info("replication").get(
                    "master_link_status") == "up":
                return
            time.sleep(0.05)
        raise AssertionError("replica not in sync")
    synced(b)
    h = Host(a, "h", lease_ms=60000)
    base = room("boomerang")
    epoch, _ = h.create(base)
    for i in range(5):
        h.append(base, [(1, 0, b"kept%d" % i)])
    assert h.r.execute_command("WAIT", 1, 5000) == 1
    link.pause()
    lost = {tuple(h.append(base, [(1, 0, b"lost%d" % i)])[::2])
            for i in range(3)}
    assert lost == {(6, epoch), (7, epoch), (8, epoch)}
    link.cut()
    b.client().execute_command("REPLICAOF", "NO", "ONE")
    h.r.execute_command("REPLICAOF", "127.0.0.1", b.port)
    synced(a)
    top = h.r.xrevrange(base + ":log", count=1)
    assert top[0][0] == b"5-0"          # a holds b's history now
    h.r.execute_command("REPLICAOF", "NO", "ONE")
    first, _, e = h.append(base, [(1, 0, b"new")])
    assert first == 6 and (first, e) not in lost


def test_failover_keeps_every_op_acknowledged_after_wait(
        redis_sentinel_group):
    g, primary, replica, sentinels = redis_sentinel_group
    t0 = time.monotonic()
    h = Host(primary, "h", lease_ms=60000)
    base = room("failover")
    epoch, _ = h.create(base)
    acked = []
    for i in range(200):
        seq = h.append(base, [(1, 0, b"op%d" % i)])[1]
        if h.r.execute_command("WAIT", 1, 1000) >= 1:
            acked.append(seq)
    assert len(acked) == 200
    primary.kill9()
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            if sentinels[0].primary() == ("127.0.0.1", replica.port):
                break
        except redis.RedisError:
            pass
        time.sleep(0.1)
    assert sentinels[0].primary() == ("127.0.0.1", replica.port), \
        "the sentinels did not promote the replica within 20 s"
    h.r = replica.client()
    for _ in range(100):                # promoted: writable shortly after
        if h.r.info("replication")["role"] == "master":
            break
        time.sleep(0.05)
    got = records(h, base)
    assert [r[0] for r in got] == acked
    assert [r[3] for r in got] == [b"op%d" % i for i in range(200)]
    # The promoted replica is a new server life: a new epoch, seq goes on.
    first, last, epoch2 = h.append(base, [(1, 0, b"after")])
    assert (first, epoch2 != epoch) == (201, True)
    assert time.monotonic() - t0 < 30


def test_the_proxy_can_cut_a_host_off_and_let_it_back(redis_server,
                                                       tcp_proxy):
    p = tcp_proxy(redis_server.port)
    c = redis.Redis(host="127.0.0.1", port=p.port, socket_timeout=0.5)
    assert c.ping()
    p.pause()
    with pytest.raises(redis.TimeoutError):
        c.ping()
    p.resume()
    c = redis.Redis(host="127.0.0.1", port=p.port, socket_timeout=2)
    assert c.ping()
    p.cut()
    with pytest.raises(redis.ConnectionError):
        c.execute_command("PING")
