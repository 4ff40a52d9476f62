"""roomd -c NEW.conf -R OLD.conf: moving rooms between shards, offline, when
the list of Redis primaries of a cluster changes (doc/cluster.txt, Shards).

Each room whose shard changes is copied whole (every key of its base, with
its TTL) to its new primary and removed from the old one, with its place in
P:rooms:<d> and P:lost and the presence of the expired host sessions, so
that the hosts of the new shard reap those members; every primary of NEW
ends with P:shard "T/M", one only in OLD with none.  It refuses, changing
nothing, while a host holds a lease, when a primary's claim is neither its
place in OLD nor in NEW nor the move's own marker ("moving F/N T/M"), and
on files that name no primary or one primary twice (servers are told apart
by their run_id, so the same one may be written two ways: 127.0.0.1 and
localhost below).  A host started while a claim says "moving" is refused;
so is a host with the old list once the move is done.

Ground truth is read from each Redis with the keys of doc/cluster.txt:
a moved room's keys are compared with what they were, but for the life
in its meta, which room_adopt sets to the new server's when it was the
old server's.  Contents (canvas actions, chat history, lobby snapshots)
are read back through the hosts started with the new list, and a canvas
room's epoch is the one it had: the move lost nothing, so clients resume
rather than reload.
"""
import asyncio
import json
import re
import subprocess
import time

from cluster import (LEASE, at, cluster_hosts,  # noqa: F401
                     host_sessions, redis_factory, redis_url, room_base,
                     wait_for)
from conftest import (SANITIZER_RE, collect_actions, connect, create_room,
                      http_req, roomd_bin, run, strip_pointers)
from test_chat import Chat, create, ev_participant, join, quiet, say
from test_cluster_shards import acts, ids_on, sessions, shard_of
from test_lobby import (LobbyConns, get_snapshot, post_room,
                        reconnect_current, save)

# Rooms outlive the test while nobody is connected (room_ttl), and a lobby
# whose host is away is neither closed (grace) nor dropped (retention).
SETTINGS = {"room_ttl": 120, "lobby_grace": 60, "lobby_retention": 120}

# (roomd writes "to 1 shard", in the singular)
MOVED = re.compile(r"roomd: moved (\d+) rooms, (\d+) stayed, to (\d+) "
                   r"shard(s?)")
SUFFIXES = ("meta", "log", "members", "pres", "lock", "lost")


# ---------------------------------------------------------------- config files

def with_shards(conf_text, urls):
    """conf_text with its cluster and cluster_shard lines replaced by urls
    (the first the cluster line); no urls: no cluster line, nor any other
    cluster_* line."""
    keep = []
    for ln in conf_text.splitlines():
        word = ln.split(None, 1)[0] if ln.strip() else ""
        if word in ("cluster", "cluster_shard"):
            continue
        if not urls and word.startswith("cluster"):
            continue
        keep.append(ln)
    if urls:
        keep.append(f"cluster {urls[0]}")
        keep += [f"cluster_shard {u}" for u in urls[1:]]
    return "\n".join(keep) + "\n"


def local(r):
    """The same Redis written another way: by the name localhost."""
    return f"redis://localhost:{r.port}"


def conf(tmp_path, name, host, urls, extra=""):
    """A roomd.conf in tmp_path: host's own, with urls as its primaries."""
    p = tmp_path / name
    p.write_text(with_shards(host.conf_text, urls) + extra)
    return str(p)


def use_shards(c, servers):
    """Every host of c (stopped) lists servers from now on."""
    for h in c:
        assert not h.running, f"{h.name} still runs"
        h.conf_text = with_shards(h.conf_text,
                                  [redis_url(s) for s in servers])


def reshard(new, old):
    """roomd -c new -R old, run to its end (no sanitizer report)."""
    p = subprocess.run([roomd_bin(), "-c", new, "-R", old],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def said(p):
    return f"exit {p.returncode}\nstdout: {p.stdout!r}\nstderr: {p.stderr!r}"


def moved_line(p):
    """exit 0 and its one line: (moved, stayed, shards)."""
    assert p.returncode == 0, f"roomd -R failed: {said(p)}"
    lines = p.stdout.splitlines()
    assert len(lines) == 1, f"roomd -R printed not one line: {said(p)}"
    m = MOVED.fullmatch(lines[0])
    assert m, f"roomd -R's line is not the expected one: {said(p)}"
    assert (m.group(3) == "1") == (m.group(4) == ""), said(p)
    return tuple(int(x) for x in m.groups()[:3])


def refused(p, words):
    """exit 1 and a line "roomd: ..." on stderr that says words."""
    assert p.returncode == 1, f"roomd -R did not refuse ({words}): {said(p)}"
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("roomd: ")]
    assert lines, f"no line starting 'roomd: ' on stderr: {said(p)}"
    assert any(words in ln for ln in lines), \
        f"roomd -R refused without saying {words!r}: {said(p)}"
    assert "moved" not in p.stdout, said(p)


# ---------------------------------------------------------------- Redis truth

def value(cl, k):
    """(type, content) of key k."""
    t = cl.type(k).decode()
    if t == "string":
        v = cl.get(k)
    elif t == "hash":
        v = cl.hgetall(k)
    elif t == "set":
        v = sorted(cl.smembers(k))
    elif t == "zset":
        v = cl.zrange(k, 0, -1, withscores=True)
    elif t == "stream":
        v = cl.xrange(k)
    elif t == "list":
        v = cl.lrange(k, 0, -1)
    else:
        v = None
    return t, v


def contents(servers, volatile=()):
    """Everything on each server: [{key: (type, content, expires)}]; of a
    volatile key (a lease a running host renews) only its members."""
    out = []
    for s in servers:
        cl = s.client()
        d = {}
        for k in cl.keys("*"):
            k = k.decode()
            t, v = value(cl, k)
            if k in volatile:
                v = sorted(m for m, _ in v) if t == "zset" else None
            d[k] = (t, v, cl.pttl(k) >= 0)
        out.append(d)
    return out


def claims(servers):
    return [s.client().get("roomd:shard") for s in servers]


def life(s):
    """The server's life (doc/cluster.txt, Epochs; the step life)."""
    return s.client().execute_command("FCALL", "roomd_life", 0)


def base_of(tag):
    d, rid = tag.split(":", 1)
    return room_base(d, rid)


def tags_on(cl):
    """The rooms on a server ("<dialect>:<id>"), from its P:rooms:<d>
    sets and, apart, from its meta keys."""
    listed = set()
    for k in cl.keys("roomd:rooms:*"):
        d = k.decode()[len("roomd:rooms:"):]
        listed |= {f"{d}:{x.decode()}" for x in cl.smembers(k)}
    metas = {k.decode()[len("roomd:{"):-len("}:meta")]
             for k in cl.keys("roomd:{*}:meta")}
    return listed, metas


def room_keys(cl, tag):
    """suffix -> (type, content, pttl) of the keys of the room's base."""
    out = {}
    for suf in SUFFIXES:
        k = f"{base_of(tag)}:{suf}"
        if cl.exists(k):
            t, v = value(cl, k)
            out[suf] = (t, v, cl.pttl(k))
    return out


def no_rooms(s):
    cl = s.client()
    left = [k for k in cl.keys("*") if k.startswith(b"roomd:{") or
            k.startswith(b"roomd:rooms:") or k.startswith(b"roomd:sess:")
            or k == b"roomd:lost"]
    return left


class Survey:
    """Where every room is before a move, and all that must move with it:
    .rooms {tag: (server, room_keys)}, .lost (tags in P:lost), .pres
    {(session, tag)} (sessions in the room's presence), .score {session:
    its lease end on the room's server}."""

    def __init__(self, servers, old):
        for s in servers:
            if all(s is not o for o in old):
                assert no_rooms(s) == [], \
                    f"a server not in OLD holds rooms: {no_rooms(s)}"
        self.rooms, self.lost, self.pres, self.score = {}, set(), set(), {}
        self.t = time.monotonic()
        self.life = {s.port: life(s) for s in old}
        for i, s in enumerate(old):
            cl = s.client()
            listed, metas = tags_on(cl)
            assert listed == metas, \
                f"rooms listed {sorted(listed)} but kept {sorted(metas)}"
            lost = {m.decode() for m in cl.smembers("roomd:lost")}
            for tag in listed:
                assert shard_of(tag, len(old)) == i, (tag, i)
                keys = room_keys(cl, tag)
                self.rooms[tag] = (s, keys)
                if base_of(tag) in lost:
                    self.lost.add(tag)
                for sess in keys.get("pres", (0, {}))[1].values():
                    for x in sess.decode().split():
                        self.pres.add((x, tag))
                        sc = cl.zscore("roomd:leases", x)
                        assert sc is not None, f"{x} has no lease on {s.port}"
                        self.score[x] = sc

    def dest(self, tag, new):
        return new[shard_of(tag, len(new))]

    def counts(self, new):
        moved = sum(1 for t, (s, _) in self.rooms.items()
                    if self.dest(t, new) is not s)
        return moved, len(self.rooms) - moved

    def moving(self, new):
        return {t for t, (s, _) in self.rooms.items()
                if self.dest(t, new) is not s}


def check_moved(sv, servers, new):
    """Every room of sv is on its shard of new, and only there, with every
    key as it was (and its TTL, less the time gone by), in its P:rooms:<d>
    and P:lost there; the sessions of its presence hold it in their
    P:sess:<s> there, with their lease ends."""
    gone_ms = (time.monotonic() - sv.t) * 1000 + 1000
    for tag, (src, keys) in sorted(sv.rooms.items()):
        dst = sv.dest(tag, new)
        d, rid = tag.split(":", 1)
        base = base_of(tag)
        for s in servers:
            cl = s.client()
            got = room_keys(cl, tag)
            where = f"{tag} (from {src.port}) on {s.port}"
            if s is not dst:
                assert got == {}, f"{where}: keys left: {sorted(got)}"
                assert not cl.sismember(f"roomd:rooms:{d}", rid), \
                    f"{where}: still in roomd:rooms:{d}"
                assert not cl.sismember("roomd:lost", base), \
                    f"{where}: still in roomd:lost"
                for x, t in sv.pres:
                    if t == tag:
                        assert not cl.sismember(f"roomd:sess:{x}", base), \
                            f"{where}: still in roomd:sess:{x}"
                continue
            for suf, (t, v, ttl) in keys.items():
                if suf == "lock" and 0 <= ttl < 3000 and suf not in got:
                    continue        # a lock that ran out meanwhile
                assert suf in got, f"{where}: {suf} lost ({sorted(got)})"
                if suf == "meta" and src is not dst:
                    # room_adopt: written in its old server's present
                    # life, the room goes on in its new server's.
                    v = dict(v)
                    if v.get(b"life") == sv.life[src.port]:
                        v[b"life"] = life(dst)
                assert got[suf][:2] == (t, v), \
                    f"{where}: {suf} differs:\n{(t, v)!r:.1500}\n" \
                    f"{got[suf][:2]!r:.1500}"
                left = got[suf][2]
                if ttl < 0:
                    assert left == -1, f"{where}: {suf} got a TTL {left}"
                else:
                    assert ttl - gone_ms <= left <= ttl + 100, \
                        f"{where}: {suf} TTL {ttl} ms became {left} ms"
            assert set(got) <= set(keys), \
                f"{where}: keys made up: {sorted(set(got) - set(keys))}"
            assert cl.sismember(f"roomd:rooms:{d}", rid), \
                f"{where}: not in roomd:rooms:{d}"
            assert cl.sismember("roomd:lost", base) == (tag in sv.lost), \
                f"{where}: roomd:lost"
            for x, t in sv.pres:
                if t == tag:
                    assert cl.sismember(f"roomd:sess:{x}", base), \
                        f"{where}: not in roomd:sess:{x}"
                    assert cl.zscore("roomd:leases", x) == sv.score[x], \
                        f"{where}: lease of {x}: " \
                        f"{cl.zscore('roomd:leases', x)} != {sv.score[x]}"


def old_sessions(servers):
    return {m for s in servers
            for m in s.client().zrange("roomd:leases", 0, -1)}


def reaped(servers, olds):
    """No server holds any of the sessions olds any more."""
    return not any(m in olds for m in old_sessions(servers))


def all_joined(c, servers):
    names = {h.name for h in c}
    return all(names <= sessions(s) for s in servers)


# ---------------------------------------------------------------- contents

class Filled:
    """What the rooms hold: canvas [(rid, token, actions)], chat [(channel,
    messages)], lobby [(code, host client, version, state)]."""

    def __init__(self):
        self.canvas, self.chat, self.lobby = [], [], []
        self.epochs = {}        # canvas rid -> its epoch (GET rooms/ID)


async def fill(cc, lc, hosts, canvas_ids, chat_ids, nlobby):
    """Rooms of three dialects, spread over hosts; their connections stay
    open (a canvas room whose last WebSocket closes is deleted)."""
    f = Filled()
    n = len(hosts)
    for i, rid in enumerate(canvas_ids):
        tok = (await asyncio.to_thread(create_room, hosts[i % n],
                                       host=f"al{i}", room_id=rid))["token"]
        ws, first, _ = await connect(hosts[(i + 1) % n], rid, tok)
        cc.all.append(ws)
        assert first == [], first
        k = 2 + i % 4
        await ws.send(json.dumps(acts(rid, k)))
        got = await collect_actions(ws, k, quiet=0)
        assert strip_pointers(got) == acts(rid, k), got
        f.canvas.append((rid, tok, got))
        f.epochs[rid] = (await asyncio.to_thread(
            http_req, hosts[i % n], "GET", f"/canvas/rooms/{rid}")).json[
                "epoch"]
    writers = [await at(cc, h).open() for h in hosts]
    for i, cid in enumerate(chat_ids):
        w, ch = writers[i % n], "#" + cid
        await create(w, ch, [x for x in writers if x is not w])
        await join(w, ch)
        f.chat.append((ch, [await say(w, ch, f"{cid} m{k}", k)
                            for k in range(1, 3 + i % 3)]))
    for i in range(nlobby):
        code = await asyncio.to_thread(post_room, hosts[i % n])
        h = await at(lc, hosts[(i + 1) % n]).client(f"code={code}&host=true")
        state = {"room": code, "level": i, "players": [{"id": "a"}]}
        f.lobby.append((code, h, await save(h, state), state))
    return f


def fill_and_stop(c, canvas_ids, chat_ids, nlobby):
    """fill(), then every host stopped cleanly with the connections
    open."""
    async def body():
        cc, lc = Chat(c[0]), LobbyConns(c[0])
        try:
            f = await fill(cc, lc, c.hosts, canvas_ids, chat_ids, nlobby)
            for h in c:
                await asyncio.to_thread(h.stop)
            return f
        finally:
            await cc.close()
            await lc.close()
    return run(body(), 60)


async def verify(cc, lc, hosts, f):
    """Every room read back whole from every host: each canvas room's
    catch-up, each channel's history since 0, each lobby's snapshot (its
    host back with its identity)."""
    for h in hosts:
        for rid, tok, sent in f.canvas:
            got = (await asyncio.to_thread(
                http_req, h, "GET", f"/canvas/rooms/{rid}")).json["epoch"]
            assert got == f.epochs[rid], \
                f"canvas {rid} on {h.name}: epoch {got}, was {f.epochs[rid]}"
            ws, first, _ = await connect(h, rid, tok)
            cc.all.append(ws)
            if len(first) < len(sent):
                first += await collect_actions(ws, len(sent) - len(first),
                                               quiet=0)
            assert strip_pointers(first) == strip_pointers(sent), \
                f"canvas {rid} read on {h.name}: {first} != {sent}"
    readers = []
    for h in hosts:
        r = await at(cc, h).open()
        for ch, sent in f.chat:
            await join(r, ch, readers, history=sent, since=0)
        readers.append(r)
    for code, hc, v, state in f.lobby:
        await reconnect_current(at(lc, hosts[0]), code, hc, host_flag=True)
        for h in hosts:
            g = await at(lc, h).client(f"code={code}")
            await get_snapshot(g, v, state, f"lobby {code} on {h.name}")


def restart_and_verify(c, servers, f, olds):
    """Start c's hosts (with their new list), wait until they hold leases
    on every server and have reaped the sessions of before, then read
    everything back."""
    c.start()
    wait_for(lambda: all_joined(c, servers), 10,
             "every host holds a lease on every server")
    wait_for(lambda: reaped(servers, olds), LEASE + 10,
             "the sessions of before reaped")

    async def body():
        cc, lc = Chat(c[0]), LobbyConns(c[0])
        try:
            await verify(cc, lc, c.hosts, f)
        finally:
            await cc.close()
            await lc.close()
    run(body(), 60)


# ---------------------------------------------------------------- tests

def test_grow_from_one_shard_to_two_moves_the_rooms_whole(
        cluster_hosts, redis_factory, tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(2, redis=A, **SETTINGS)
    canvas = ids_on("canvas", 0, 2, 3, "g") + ids_on("canvas", 1, 2, 3, "g")
    chat = ids_on("chat", 0, 2, 2, "c") + ids_on("chat", 1, 2, 2, "c")
    f = fill_and_stop(c, canvas, chat, 6)
    assert claims([A, B]) == [b"0/1", None]
    sv = Survey([A, B], [A])
    # The canvas rooms and channels made to move do, the others stay.
    assert {f"canvas:{r}" for r in canvas[3:]} | \
        {f"chat:{r}" for r in chat[2:]} <= sv.moving([A, B])
    assert not ({f"canvas:{r}" for r in canvas[:3]} |
                {f"chat:{r}" for r in chat[:2]}) & sv.moving([A, B])
    assert any(t.startswith("lobby:") for t in sv.rooms), sorted(sv.rooms)
    assert sv.pres, "no expired host session in any room's presence"
    olds = old_sessions([A, B])
    # A written otherwise in OLD than in NEW: the same server (run_id).
    old = conf(tmp_path, "old.conf", c[0], [local(A)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A), redis_url(B)])
    p = reshard(new, old)
    moved, stayed, n = moved_line(p)
    assert n == 2, said(p)
    assert (moved, stayed) == sv.counts([A, B]), \
        f"{said(p)}\nexpected moved/stayed {sv.counts([A, B])}"
    assert moved >= 6 and stayed >= 5, (moved, stayed)
    check_moved(sv, [A, B], [A, B])
    assert claims([A, B]) == [b"0/2", b"1/2"]
    # The hosts with [A, B] serve every room whole.
    use_shards(c, [A, B])
    restart_and_verify(c, [A, B], f, olds)
    assert claims([A, B]) == [b"0/2", b"1/2"]


def test_shrink_from_two_shards_to_one(cluster_hosts, redis_factory,
                                       tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(2, redis=A, cluster_shard=redis_url(B), **SETTINGS)
    canvas = ids_on("canvas", 0, 2, 3, "s") + ids_on("canvas", 1, 2, 3, "s")
    chat = ids_on("chat", 0, 2, 2, "c") + ids_on("chat", 1, 2, 2, "c")
    f = fill_and_stop(c, canvas, chat, 4)
    assert claims([A, B]) == [b"0/2", b"1/2"]
    sv = Survey([A, B], [A, B])
    on_b = {t for t, (s, _) in sv.rooms.items() if s is B}
    assert {f"canvas:{r}" for r in canvas[3:]} <= on_b
    olds = old_sessions([A, B])
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A), redis_url(B)])
    new = conf(tmp_path, "new.conf", c[0], [local(A)])
    p = reshard(new, old)
    moved, stayed, n = moved_line(p)
    assert (moved, stayed, n) == (len(on_b), len(sv.rooms) - len(on_b), 1), \
        said(p)
    check_moved(sv, [A, B], [A])
    assert claims([A, B]) == [b"0/1", None]
    # A server only in OLD is left with no key of the cluster at all.
    assert B.client().keys("roomd:*") == [], \
        f"keys left on B: {B.client().keys('roomd:*')}"
    use_shards(c, [A])
    restart_and_verify(c, [A], f, olds)
    assert B.client().keys("roomd:*") == []


def test_refused_while_a_host_holds_a_lease(cluster_hosts, redis_factory,
                                            tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(2, redis=A, **SETTINGS)
    rids = ids_on("canvas", 0, 2, 2, "l") + ids_on("canvas", 1, 2, 2, "l")
    for i, rid in enumerate(rids):
        create_room(c[i % 2], host="al", room_id=rid)
    c[1].stop()
    # h1 reaps h2's ended session: wait for it, so that nothing changes
    # under the comparison but h1's renewals.
    wait_for(lambda: host_sessions(A.client(), "h2") == set(), LEASE + 5,
             "h2's session forgotten")
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A), redis_url(B)])
    before = contents([A, B], volatile={"roomd:leases"})
    p = reshard(new, old)
    refused(p, "holds a lease")
    assert contents([A, B], volatile={"roomd:leases"}) == before, \
        "roomd -R changed something while refusing"
    assert claims([A, B]) == [b"0/1", None]
    assert c[0].running and sessions(A) == {"h1"}
    # Once h1 is stopped too, the same files do.  A room that moves has
    # a lost member, as a host that reaped it and died before handing it
    # to its dialect leaves it: the lost sets go with the room.
    c[0].stop()
    lost = room_base("canvas", rids[2])
    A.client().sadd(f"{lost}:lost", "1")
    A.client().sadd("roomd:lost", lost)
    sv = Survey([A, B], [A])
    assert sv.lost == {"canvas:" + rids[2]}
    assert moved_line(reshard(new, old)) == sv.counts([A, B]) + (2,)
    check_moved(sv, [A, B], [A, B])
    assert B.client().smembers("roomd:lost") == {lost.encode()}
    assert not A.client().exists("roomd:lost")


def test_running_it_again_moves_nothing_more(cluster_hosts, redis_factory,
                                             tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(2, redis=A, **SETTINGS)
    f = fill_and_stop(c, ids_on("canvas", 0, 2, 1, "t") +
                      ids_on("canvas", 1, 2, 2, "t"),
                      ids_on("chat", 1, 2, 1, "c"), 2)
    sv = Survey([A, B], [A])
    olds = old_sessions([A, B])
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A), redis_url(B)])
    first = moved_line(reshard(new, old))
    assert first == sv.counts([A, B]) + (2,) and first[0] >= 3, first
    after = contents([A, B])
    # Again: the rooms of OLD's server (A) all stay now.
    p = reshard(new, old)
    assert moved_line(p) == (0, first[1], 2), said(p)
    assert contents([A, B]) == after, "the second run changed something"
    check_moved(sv, [A, B], [A, B])
    use_shards(c, [A, B])
    restart_and_verify(c, [A, B], f, olds)


def test_old_hosts_and_hosts_during_a_move_are_refused(
        cluster_hosts, redis_factory, tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(1, redis=A, **SETTINGS)
    rids = ids_on("canvas", 0, 2, 2, "m") + ids_on("canvas", 1, 2, 2, "m")
    for rid in rids:
        create_room(c[0], host="al", room_id=rid)
    c[0].stop()
    sv = Survey([A, B], [A])
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A), redis_url(B)])
    # A move cut short: the markers are there, one room is copied to B
    # but not yet deleted from A, the others have not moved.
    A.client().set("roomd:shard", "moving 0/1 0/2")
    B.client().set("roomd:shard", "moving - 1/2")
    half = "canvas:" + rids[2]
    for suf in room_keys(A.client(), half):
        k = f"{base_of(half)}:{suf}"
        ttl = A.client().pttl(k)
        B.client().restore(k, max(ttl, 0), A.client().dump(k), replace=True)
    B.client().sadd("roomd:rooms:canvas", rids[2])
    mid = cluster_hosts(1, redis=A, cluster_shard=redis_url(B),
                        cluster_host="mid", **SETTINGS)
    wait_for(lambda: "rooms are being moved" in mid[0].log(), 5,
             "a host started during the move says why it is refused")
    time.sleep(1)
    for s in (A, B):
        assert "mid" not in sessions(s), f"mid holds a lease on {s.port}"
    assert claims([A, B]) == [b"moving 0/1 0/2", b"moving - 1/2"]
    mid[0].stop()
    # roomd -R with the same files finishes the move.
    moved, stayed, n = moved_line(reshard(new, old))
    assert (moved, stayed, n) == sv.counts([A, B]) + (2,) and moved >= 2
    check_moved(sv, [A, B], [A, B])
    assert claims([A, B]) == [b"0/2", b"1/2"]
    # A host still configured with the old list is refused on A.
    stale = cluster_hosts(1, redis=A, cluster_host="stale", **SETTINGS)
    wait_for(lambda: "is shard" in stale[0].log(), 5,
             "a host with the old list says why it is refused")
    time.sleep(1)
    assert "stale" not in sessions(A), "the stale host holds a lease"
    assert claims([A, B]) == [b"0/2", b"1/2"]
    # And one with the new list is served.
    use_shards(c, [A, B])
    c.start()
    wait_for(lambda: all_joined(c, [A, B]), 10, "h1 on both shards")


def test_a_killed_hosts_members_leave_once_after_the_move(
        cluster_hosts, redis_factory, tmp_path):
    """A chat channel that moves (shard 1 of 2), with a user on h1 and one
    on h2; h1 is killed, h2 stopped cleanly; once h1's lease has run out
    the rooms move; the hosts started with the new list reap the dead
    sessions on the channel's new primary: its leave is announced once to
    users on both hosts."""
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(2, redis=A, **SETTINGS)
    ch = "#" + ids_on("chat", 1, 2, 1, "k")[0]
    tag = "chat:" + ch[1:]
    state = {}

    async def before():
        cc = Chat(c[0])
        try:
            a = await at(cc, c[1]).open()
            d = await at(cc, c[0]).open()
            await create(a, ch, [d])
            await join(a, ch)
            await join(d, ch, [a])
            msgs = [await say(d, ch, "from h1", 1, [a]),
                    await say(a, ch, "from h2", 2, [d])]
            state.update(a=a, d=d, msgs=msgs,
                         h1=host_sessions(A.client(), "h1"))
            await asyncio.to_thread(c[0].kill)
            await asyncio.to_thread(c[1].stop)
        finally:
            await cc.close()
    run(before(), 60)
    a, d, msgs = state["a"], state["d"], state["msgs"]
    assert len(state["h1"]) == 1, state["h1"]
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A), redis_url(B)])
    # Refused while the dead host's lease runs.
    deadline = time.monotonic() + LEASE + 10
    while True:
        sv = Survey([A, B], [A])
        p = reshard(new, old)
        if p.returncode == 0 or "holds a lease" not in p.stderr:
            break
        assert time.monotonic() < deadline, \
            f"still 'holds a lease' {LEASE + 10} s after h1 died: {said(p)}"
        time.sleep(0.5)
    assert moved_line(p) == sv.counts([A, B]) + (2,), said(p)
    assert tag in sv.moving([A, B])
    check_moved(sv, [A, B], [A, B])
    # The dead session, with its lease end, is where the channel now is.
    (s1,) = state["h1"]
    assert (s1, tag) in sv.pres, sorted(sv.pres)
    bc = B.client()
    assert bc.sismember(f"roomd:sess:{s1}", base_of(tag))
    # The users whose presence was left to reap: d (h1 killed), and a if
    # h2's stop left its presence too (each is announced once).
    pres = sv.rooms[tag][1]["pres"][1]
    names = {ln.decode().split(" ", 5)[5]
             for mid, ln in sv.rooms[tag][1]["members"][1].items()
             if pres.get(mid, b"").strip()}
    assert d.name in names, (names, pres)
    gone = [u for u in (a, d) if u.name in names]
    # Hold the reaping back (the dead sessions' lease ends pushed ahead)
    # until two users are in the channel to hear it, then let it go.
    olds = old_sessions([A, B])
    now = int(bc.time()[0]) * 1000
    ends = {s: {m: sc for m, sc in s.client().zrange("roomd:leases", 0, -1,
                                                     withscores=True)}
            for s in (A, B)}
    for s in (A, B):
        for m in ends[s]:
            s.client().zadd("roomd:leases", {m: now + 60000}, xx=True)
    use_shards(c, [A, B])
    c.start()

    async def after():
        cc = Chat(c[0])
        try:
            o1 = await at(cc, c[0]).open()
            o2 = await at(cc, c[1]).open()
            await join(o1, ch, [], history=msgs)
            await join(o2, ch, [o1], history=msgs)
            for s in (A, B):
                for m, sc in ends[s].items():
                    s.client().zadd("roomd:leases", {m: sc}, xx=True)
            want = sorted(json.dumps(ev_participant(u, "left", ch))
                          for u in gone)
            for o in (o1, o2):
                got = [await o.recv("the dead sessions' users leave",
                                    LEASE + 8) for _ in gone]
                assert sorted(map(json.dumps, got)) == want, \
                    f"{o.name}: {got} (expected {want})"
            # Once: nothing more, though every host reaps.
            await quiet(o1, o2, t=2)
        finally:
            await cc.close()
    run(after(), 60)
    wait_for(lambda: reaped([A, B], olds), LEASE + 5,
             "the dead sessions forgotten")


def test_bad_files_and_claims_are_refused_and_change_nothing(
        cluster_hosts, redis_factory, tmp_path):
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(1, redis=A, **SETTINGS)
    for rid in ids_on("canvas", 0, 2, 1, "b") + ids_on("canvas", 1, 2, 1, "b"):
        create_room(c[0], host="al", room_id=rid)
    c[0].stop()
    h = c[0]
    old = conf(tmp_path, "old.conf", h, [redis_url(A)])
    new = conf(tmp_path, "new.conf", h, [redis_url(A), redis_url(B)])
    bare = conf(tmp_path, "bare.conf", h, [])
    twice_new = conf(tmp_path, "twice-new.conf", h,
                     [redis_url(A), local(A)])
    # (the other file agreeing with A's claim, 0/1: only the file is
    # wrong)
    one = conf(tmp_path, "one.conf", h, [local(A)])
    twice_old = conf(tmp_path, "twice-old.conf", h, [redis_url(A), local(A)])
    other = conf(tmp_path, "prefix.conf", h, [redis_url(A), redis_url(B)],
                 "cluster_prefix other\n")
    before = contents([A, B])
    cases = [(bare, old, "no cluster line"),
             (new, bare, "no cluster line"),
             (twice_new, old, "twice"),
             (one, twice_old, "twice"),
             (other, old, "prefix")]
    for n, o, words in cases:
        refused(reshard(n, o), words)
        assert contents([A, B]) == before, \
            f"roomd -c {n} -R {o} refused, but changed something"
    # A server only in NEW with keys of roomd but no claim: not new.
    B.client().sadd("roomd:rooms:canvas", "stray")
    refused(reshard(new, old), "")
    assert contents([B]) == [{"roomd:rooms:canvas": ("set", [b"stray"],
                                                     False)}]
    B.client().delete("roomd:rooms:canvas")
    # A claim that is neither A's place in OLD nor B's in NEW.
    for s, bad in ((B, "1/3"), (A, "0/3")):
        s.client().set("roomd:shard", bad)
        marked = contents([A, B])
        refused(reshard(new, old), "is shard")
        assert contents([A, B]) == marked, \
            f"a claim {bad!r} refused, but something changed"
        if s is B:
            s.client().delete("roomd:shard")
        else:
            s.client().set("roomd:shard", "0/1")
    assert contents([A, B]) == before
    # The good files do.
    sv = Survey([A, B], [A])
    assert moved_line(reshard(new, old)) == sv.counts([A, B]) + (2,)


def test_a_key_that_is_no_rooms_is_left_and_keeps_its_server_marked(
        cluster_hosts, redis_factory, tmp_path):
    """A key of the prefix that roomd did not make ("roomd:{...}:x" with no
    "dialect:id" inside) is named and left where it is; a server dropped
    from the list that still holds one keeps its "moving" mark, so that no
    host starts on it, until the key is dealt with and -R run again."""
    A, B = redis_factory(), redis_factory()
    c = cluster_hosts(1, redis=A, cluster_shard=redis_url(B), **SETTINGS)
    rids = ids_on("canvas", 0, 2, 1, "w") + ids_on("canvas", 1, 2, 2, "w")
    for rid in rids:
        create_room(c[0], host="al", room_id=rid)
    c[0].stop()
    B.client().set("roomd:{stray}:x", "not a room's")
    sv = Survey([A, B], [A, B])
    old = conf(tmp_path, "old.conf", c[0], [redis_url(A), redis_url(B)])
    new = conf(tmp_path, "new.conf", c[0], [redis_url(A)])
    p = reshard(new, old)
    refused(p, "left on it")
    assert "roomd:{stray}:x: not a room's key: left where it is" in \
        p.stderr, said(p)
    # The rooms moved all the same; B keeps the key and its mark.
    check_moved(sv, [A, B], [A])
    assert B.client().get("roomd:{stray}:x") == b"not a room's"
    assert claims([A, B]) == [b"0/1", b"moving 1/2 -"]
    B.client().delete("roomd:{stray}:x")
    assert moved_line(reshard(new, old)) == (0, len(rids), 1)
    assert claims([A, B]) == [b"0/1", None]
    assert B.client().keys("*") == []
