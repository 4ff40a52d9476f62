"""Cluster mode (issue 15): the hosts start, roomd -t checks the cluster
lines, roomctl status and /metrics show the link, and a bad Redis is told
apart from a good one.  Fixtures: cluster.py (hosts), redisd.py (Redis).

Run with:  /usr/bin/python3 -m pytest -q tests/integration/test_cluster.py
"""
import asyncio
import json
import re
import socket
import threading
import time

import pytest

from cluster import (LEASE, at, cluster_hosts, redis_factory,  # noqa: F401
                     redis_server, redis_url, sentinel_url, wait_for)
from cluster import room_base
from redisd import library_text
from conftest import (close_all, collect_actions, connect, create_room,
                      http_req, join_room, roomd_t, run)

# -t accepts all of these (each alone after a valid cluster line where it
# needs one); "{r}" is a live Redis's address.
GOOD = {
    "redis": "cluster redis://127.0.0.1:{port}\n",
    "password": "cluster redis://:s3cret@127.0.0.1:{port}\n",
    "sentinel-one": "cluster sentinel://127.0.0.1:{port}/roomd\n",
    "sentinel-three": "cluster sentinel://127.0.0.1:{port},127.0.0.1:{port},"
                      "127.0.0.1:{port}/mymaster\n",
    "host-lease-wait": "cluster redis://127.0.0.1:{port}\ncluster_host h1\n"
                       "cluster_lease 4\ncluster_wait 1\n",
    "lease-default-range": "cluster redis://127.0.0.1:{port}\n"
                           "cluster_lease 10\n",
    "shard": "cluster redis://127.0.0.1:{port}\n"
             "cluster_shard redis://127.0.0.1:{port}\n",
}

# -t refuses each of these, naming the keyword of the bad line.
BAD = {
    "scheme": ("cluster http://127.0.0.1:{port}\n", "cluster"),
    "no-port": ("cluster redis://127.0.0.1\n", "cluster"),
    "port-zero": ("cluster redis://127.0.0.1:0\n", "cluster"),
    "port-too-big": ("cluster redis://127.0.0.1:70000\n", "cluster"),
    "no-address": ("cluster\n", "cluster"),
    "two-words": ("cluster redis://127.0.0.1:{port} extra\n", "cluster"),
    "sentinel-no-name": ("cluster sentinel://127.0.0.1:{port}\n", "cluster"),
    "sentinel-empty-name": ("cluster sentinel://127.0.0.1:{port}/\n",
                            "cluster"),
    "sentinel-bad-list": ("cluster sentinel://127.0.0.1:{port},,/roomd\n",
                          "cluster"),
    "lease-zero": ("cluster redis://127.0.0.1:{port}\ncluster_lease 0\n",
                   "cluster_lease"),
    "lease-word": ("cluster redis://127.0.0.1:{port}\ncluster_lease ten\n",
                   "cluster_lease"),
    "wait-negative": ("cluster redis://127.0.0.1:{port}\ncluster_wait -1\n",
                      "cluster_wait"),
    "wait-word": ("cluster redis://127.0.0.1:{port}\ncluster_wait all\n",
                  "cluster_wait"),
    "host-empty": ("cluster redis://127.0.0.1:{port}\ncluster_host\n",
                   "cluster_host"),
    "host-too-long": ("cluster redis://127.0.0.1:{port}\ncluster_host " +
                      "h" * 300 + "\n", "cluster_host"),
    "shard-scheme": ("cluster redis://127.0.0.1:{port}\n"
                     "cluster_shard ftp://127.0.0.1:{port}\n",
                     "cluster_shard"),
    "twice": ("cluster redis://127.0.0.1:{port}\n"
              "cluster redis://127.0.0.1:{port}\n", "cluster"),
    "shard-alone": ("cluster_shard redis://127.0.0.1:{port}\n",
                    "cluster_shard"),
    "shard-eight": ("cluster redis://127.0.0.1:{port}\n" +
                    "cluster_shard redis://127.0.0.1:{port}\n" * 8,
                    "cluster_shard"),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_roomd_t_accepts_the_cluster_lines(redis_server, case):
    text = GOOD[case].format(port=redis_server.port)
    rc, out, _ = roomd_t(text)
    assert rc == 0, f"roomd -t refused {text!r}: {out}"
    assert "configuration OK" in out, out


@pytest.mark.parametrize("case", list(BAD))
def test_roomd_t_refuses_a_bad_cluster_line_naming_it(case):
    text, keyword = BAD[case]
    text = text.format(port=6390)
    rc, out, conf = roomd_t(text)
    assert rc != 0, f"roomd -t accepted {text!r}: {out}"
    assert "unknown setting" not in out, \
        f"the cluster keywords are not known yet: {out}"
    assert re.search(r":\d+: " + re.escape(keyword) + r"\b", out), \
        f"the error does not name the line and {keyword!r}: {out}"


def test_without_a_cluster_line_the_arena_is_alone(roomd_factory):
    """No cluster line: nothing of cluster mode shows (issue 15)."""
    d = roomd_factory("")
    r = http_req(d, "GET", "/canvas/rooms")
    assert r.status == 200
    m = http_req(d, "GET", "/metrics").body.decode()
    assert not re.search(r"^roomd_cluster_up [1-9]", m, re.M), m


def test_three_hosts_start_and_each_serves(cluster_hosts):
    c = cluster_hosts(3)
    for h in c:
        r = http_req(h, "GET", "/canvas/rooms")
        assert r.status == 200, f"{h.name}: {r!r}"
        assert r.json == [], f"{h.name}: a fresh cluster has rooms: {r!r}"
    # Each host joined Redis as a session with a lease.
    r = c.redis.client()
    wait_for(lambda: r.zcard("roomd:leases") >= 3, 5,
             "three sessions in roomd:leases")
    names = {m.decode().split("/")[0] for m in r.zrange("roomd:leases", 0, -1)}
    assert names == {"h1", "h2", "h3"}, names


def test_status_shows_the_cluster_link(cluster_hosts):
    c = cluster_hosts(2)
    for h in c:
        st = h.ctl_json("status")
        link = st.get("cluster")
        assert isinstance(link, dict), \
            f"{h.name}: roomctl status has no cluster object: {st}"
        text = repr(link).lower()
        assert str(c.redis.port) in text, \
            f"{h.name}: status does not name the Redis: {link}"
        assert h.name in text, f"{h.name}: status does not name the host: " \
            f"{link}"
        p = h.ctl("status")
        assert p.returncode == 0, p
        assert re.search(r"cluster", p.stdout, re.I), p.stdout


def test_metrics_count_the_cluster_link(cluster_hosts):
    c = cluster_hosts(2)
    m = c[0].metrics()
    names = set(re.findall(r"^(roomd_cluster_\w+)", m, re.M))
    assert names, "no roomd_cluster_* series in /metrics:\n" + m[:3000]


def test_status_and_log_say_when_cluster_wait_and_the_replicas_differ(
        cluster_hosts, redis_factory):
    """Each renewal counts the primary's replicas online: status and
    /metrics show the count, and the log says once when cluster_wait asks
    for more (changes refused) or counts fewer (a failover may lose
    acknowledged changes)."""
    primary = redis_factory()
    replicas = [redis_factory(replicaof=primary)]
    c = cluster_hosts(1, redis=primary, workers=1, lease=2, cluster_wait=2)
    h = c[0]

    def seen(n, text):
        wait_for(lambda: h.ctl_json("status")["cluster"].get("replicas") ==
                 n and text in h.log(), 15,
                 f"status replicas {n} and {text!r} in the log")

    seen(1, "has 1 replica online, fewer than cluster_wait 2: changes are "
         "refused")
    replicas.append(redis_factory(replicaof=primary))
    seen(2, "has 2 replicas online, as cluster_wait asks")
    replicas.append(redis_factory(replicaof=primary))
    seen(3, "cluster_wait 2 counts fewer than the 3 replicas of")
    assert re.search(r"^roomd_cluster_replicas_online 3$", h.metrics(), re.M)
    p = h.ctl("status")
    assert p.returncode == 0 and "replicas 3," in p.stdout, p.stdout
    # Said once per change, not at every renewal.
    time.sleep(1.5)
    assert h.log().count("counts fewer than the 3 replicas") == 1, h.log()


def _library_code(client):
    lib = dict(zip(*[iter(client.function_list("roomd", True)[0])] * 2))
    return lib[b"library_code"].decode()


def test_a_library_of_a_newer_roomd_is_not_replaced(cluster_hosts,
                                                   redis_factory):
    """A host does not replace a Redis library of a higher interface
    version (lib.lua's "roomd library N": a host of a newer roomd loaded
    it); it says so and stays down.  A library of a lower version, or
    whose version is not a number, is replaced, and the host joins."""
    r = redis_factory()
    c = r.client()
    text = library_text()
    m = re.search(r"^-- roomd library (\d+)$", text, re.M)
    assert m, "lib.lua has no version line"
    v = int(m.group(1))
    newer = text.replace(m.group(0), f"-- roomd library {v + 1}")
    c.function_load(newer, replace=True)
    h = cluster_hosts(1, redis=r, workers=1)[0]
    wait_for(lambda: f"Redis has the library of a newer roomd (version "
             f"{v + 1}; this one's is {v}): not replaced" in h.log(), 15,
             "the refusal in the log")
    assert h.ctl_json("status")["cluster"]["up"] is False
    assert _library_code(c) == newer
    older = text.replace(m.group(0), f"-- roomd library {v - 1}")
    c.function_load(older, replace=True)
    wait_for(lambda: h.ctl_json("status")["cluster"]["up"] is True, 20,
             "the host joins once the library is older")
    assert _library_code(c) == text
    # A version line that is not a number counts as none: replaced.
    h.stop()        # the next host has its name
    c.function_load(text.replace(m.group(0), "-- roomd library x"),
                    replace=True)
    h2 = cluster_hosts(1, redis=r, workers=1)[0]
    wait_for(lambda: h2.ctl_json("status")["cluster"]["up"] is True, 20,
             "a host joins over a library whose version is not a number")
    assert _library_code(c) == text


# ---------------------------------------------------------------- bad Redis

def _fake_server(answer):
    """A loopback port whose every connection gets answer(bytes read) for
    each read, until the client closes.  -> (port, stop)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(0.2)
    done = threading.Event()

    def serve(s):
        try:
            s.settimeout(0.5)
            while not done.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                reply = answer(data)
                if reply is None:
                    break
                s.sendall(reply)
        except OSError:
            pass
        finally:
            s.close()

    def run():
        while not done.is_set():
            try:
                s, _ = ls.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(s,), daemon=True).start()
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def stop():
        done.set()
        t.join(5)
        ls.close()
    return ls.getsockname()[1], stop


def _not_redis_server():
    """An address that is not Redis: an HTTP error, then the close."""
    return _fake_server(lambda data: b"HTTP/1.1 400 Bad Request\r\n"
                        b"Content-Length: 0\r\n\r\n")


def _wrong_shape_server():
    """A Redis that answers every command (every line of a RESP array
    header) with the integer 1: replies of the wrong shape."""
    return _fake_server(lambda data: b":1\r\n" * max(1, data.count(b"*")))


def _canvas_create(h, rid):
    return http_req(h, "POST", "/canvas/rooms", {"host": "a", "roomId": rid})


def test_an_address_that_is_not_redis_is_an_error_said_once(cluster_hosts):
    """The host starts and serves what it can; a room create is refused
    with the dialect's own error; the log says why, not once per try."""
    port, stop = _not_redis_server()
    try:
        c = cluster_hosts(1, redis=redis_url(port))
        h = c[0]
        r = _canvas_create(h, "notredis")
        assert r.status in (500, 503), f"create without Redis: {r!r}"
        assert isinstance(r.json, dict) and "error" in r.json, r
        assert http_req(h, "GET", "/canvas/rooms").status in (200, 503)
        wait_for(lambda: re.search(r"cluster|redis", h.log(), re.I), 5,
                 "a log line about the bad Redis")
        time.sleep(3)
        lines = [ln for ln in h.log().splitlines()
                 if re.search(r"cluster|redis", ln, re.I)]
        assert len(lines) <= 6, \
            "the same complaint many times a second:\n" + "\n".join(lines)
    finally:
        stop()


def test_replies_of_the_wrong_shape_are_an_error_not_a_crash(
        cluster_hosts):
    """Every reply is the integer 1: the host does not crash, refuses to
    create rooms with the dialect's error, and says why in its log, not
    at every try."""
    port, stop = _wrong_shape_server()
    try:
        c = cluster_hosts(1, redis=redis_url(port))
        h = c[0]
        for i in range(3):
            r = _canvas_create(h, f"shape{i}")
            assert r.status in (500, 503), f"create on a bad Redis: {r!r}"
            assert isinstance(r.json, dict) and "error" in r.json, r
        assert h.running
        time.sleep(2)
        lines = [ln for ln in h.log().splitlines()
                 if re.search(r"cluster|redis", ln, re.I)]
        assert lines, "the log does not say what is wrong with Redis"
        assert len(lines) <= 8, \
            "the same complaint many times a second:\n" + "\n".join(lines)
    finally:
        stop()


def test_a_wrong_password_is_refused_and_said(cluster_hosts, redis_factory):
    r = redis_factory(password="right")
    c = cluster_hosts(1, redis=redis_url(r, "wrong"))
    h = c[0]
    res = _canvas_create(h, "wrongpass")
    assert res.status in (500, 503), f"create with a wrong password: {res!r}"
    wait_for(lambda: re.search(r"WRONGPASS|password|auth", h.log(), re.I), 5,
             "a log line about the password")
    assert r.client().keys("roomd:{*") == [], \
        "something was written with a wrong password"


def test_the_right_password_works(cluster_hosts, redis_factory):
    r = redis_factory(password="right")
    c = cluster_hosts(2, redis=redis_url(r, "right"))
    res = _canvas_create(c[0], "rightpass")
    assert res.status == 201, res
    assert wait_for(lambda: any(x["roomId"] == "rightpass" for x in
                                http_req(c[1], "GET", "/canvas/rooms").json),
                    5, "the room listed on the other host")


def test_redis_out_of_memory_is_the_dialects_error_and_writes_nothing(
        cluster_hosts, redis_factory):
    """maxmemory reached with noeviction: creating a room is refused with
    canvas's own error, nothing half-written, the host goes on serving."""
    r = redis_factory()
    c = cluster_hosts(1, redis=r)
    h = c[0]
    assert _canvas_create(h, "before-oom").status == 201
    cl = r.client()
    # Ballast of our own, then a maxmemory below what is used: Redis
    # refuses every write with OOM (noeviction) until it is raised again.
    for i in range(20):
        cl.set(f"ballast:{i}", b"x" * 100000)
    cl.config_set("maxmemory", "1mb")
    keys_before = sorted(cl.keys("roomd:{canvas:oom*"))
    res = _canvas_create(h, "oom1")
    assert res.status in (500, 503, 507), f"create under OOM: {res!r}"
    assert isinstance(res.json, dict) and "error" in res.json, res
    assert sorted(cl.keys("roomd:{canvas:oom*")) == keys_before, \
        "a refused create left keys behind"
    # Reads go on: the room made before is still listed.
    lst = http_req(h, "GET", "/canvas/rooms")
    assert lst.status == 200 and any(x["roomId"] == "before-oom"
                                     for x in lst.json), lst
    # The host keeps its session through more than a lease of it: its
    # renewals (and the locks it gives back) take no memory.
    session = h.ctl_json("status")["cluster"]["session"]
    time.sleep(LEASE + 1)
    st = h.ctl_json("status")["cluster"]
    assert st["up"] and st["session"] == session and st["fenced"] == 0, st
    assert http_req(h, "GET", "/canvas/rooms/before-oom").status == 200
    cl.config_set("maxmemory", "0")
    assert wait_for(lambda: _canvas_create(h, "after-oom").status == 201, 10,
                    "create again once Redis has memory")


def test_a_late_entry_of_another_epoch_costs_the_live_copy_nothing(
        cluster_hosts):
    """A room deleted and made again has a new epoch; an entry of the old
    one that a host's master reads late (its close, say) must not make the
    host drop its copy of the new room and close its members 1012: the
    master asks Redis which room lives.  Faked here by publishing such an
    entry on the room's channel."""
    c = cluster_hosts(2)
    made = create_room(c[0], host="ann", room_id="late-entry")
    tok_b = join_room(c[1], "late-entry", "bob")["token"]
    r = c.redis.client()
    epoch = made["epoch"]
    assert isinstance(epoch, int), made

    async def body():
        wa, _, _ = await connect(c[0], "late-entry", made["token"])
        wb, _, _ = await connect(c[1], "late-entry", tok_b)
        try:
            other = epoch + 1 if epoch + 1 < 2 ** 48 else epoch - 1
            for ver in (1, 99):
                n = await asyncio.to_thread(
                    r.publish, room_base("canvas", "late-entry"),
                    f"E {other} {ver} 1 0\nC 4\nbye\n")
                assert n >= 2, f"{n} subscribers"
            await asyncio.sleep(1.0)
            await wa.send(json.dumps([{"moveto": [1, 1]}]))
            return await collect_actions(wb, 1)
        finally:
            await close_all([wa, wb])
    got = run(body())
    assert [a.get("pointer") for a in got] == [1], got
    for h in c:
        assert "starts over" not in h.log(), h.log()[-2000:]
        d = http_req(h, "GET", "/canvas/rooms/late-entry")
        assert d.status == 200 and d.json["epoch"] == epoch, d


# ---------------------------------------------------------------- the fixture

def test_fixture_kills_a_host_whole_and_starts_it_again(cluster_hosts):
    """cluster.py itself, on hosts without a cluster line: kill() ends the
    master and every worker at once, start() brings the host back on its
    port, and the others never notice."""
    from conftest import _pid_gone
    c = cluster_hosts(2, redis=False)
    h = c[0]
    port = h.port
    pids = h.kill()
    assert len(pids) == 1 + h.workers, f"master and workers: {pids}"
    assert all(_pid_gone(p) for p in pids)
    assert not h.running
    assert http_req(c[1], "GET", "/canvas/rooms").status == 200
    h.start()
    assert h.port == port
    assert http_req(h, "GET", "/canvas/rooms").status == 200


def test_fixture_checker_passes_a_lone_host_and_catches_faults(
        cluster_hosts):
    """The checker of test_cluster_jepsen.py on one host without a
    cluster line (all must hold), then on made-up histories with a gap, a
    duplicate, a pointer reused and an acknowledged op lost."""
    import asyncio
    from cluster import CanvasMember, check_members, read_whole
    from conftest import create_room, join_room, run
    c = cluster_hosts(1, redis=False)
    h = c[0]
    toks = [create_room(h, host="m0", room_id="chk")["token"]] + \
        [join_room(h, "chk", f"m{i}")["token"] for i in (1, 2)]
    ms = [CanvasMember(f"m{i}", t, "chk", c.hosts) for i, t in
          enumerate(toks)]

    async def body():
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(m.run(stop, 0.02)) for m in ms]
        await asyncio.sleep(2)
        # every member's connection is cut once: they resume
        h.kill()
        h.start()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)
        return await read_whole(h, "chk", toks[0])
    # The room is gone with the host (no cluster): the members start over
    # in no room; only what they saw before the kill is checked.
    try:
        run(body(), 30)
    except Exception:
        pass
    assert all(m.acked for m in ms), [(m.name, m.errors[:3]) for m in ms]
    assert check_members(ms) == [], check_members(ms)

    class Fake:
        def __init__(self, name, seen, acked=None):
            self.name, self.seen, self.acked = name, seen, acked or {}
    gap = Fake("a", {1: [(1, "a:1"), (3, "a:2")]})
    dup = Fake("b", {1: [(1, "a:1"), (1, "a:1")]})
    reuse = Fake("c", {1: [(1, "x:1")]})
    lost = Fake("d", {1: [(1, "a:1")]}, {"d:1": (1, 2)})
    assert len(check_members([gap])) == 1
    assert len(check_members([dup])) == 1
    assert check_members([gap, reuse])
    assert check_members([lost], {1: [(1, "a:1")]}) == \
        ["d: acknowledged d:1 (epoch 1) lost"]
    # Lost in an epoch that ended: a violation only when all must be kept.
    assert check_members([lost], {2: [(1, "a:1")]}, keep="last") == []
    assert check_members([lost], {2: [(1, "a:1")]}, keep="all")
    assert check_members([lost], {1: [(1, "a:1"), (2, "d:1")]}) == []
