"""roomd hosts of one cluster, started and stopped by the tests.

On top of redisd.py (real redis-servers and sentinels) and conftest.py
(roomd daemons): cluster_hosts(n=3, redis=...) starts n roomd hosts, each
with its own temporary directory, roomd.conf, arena file, pid file, admin
socket and free loopback port, all sharing one Redis through the lines

  cluster redis://127.0.0.1:PORT        (or sentinel://.../roomd)
  cluster_host hN
  cluster_lease LEASE                    (short, for tests)

A host can be killed whole (SIGKILL of the master and of every worker,
found as the master's children), restarted (same port, same arena file),
and every host still running at the end is stopped with stop_clean
(SIGTERM, exit 0, no sanitizer report); nothing is left behind, pass or
fail.  Redis processes are redisd.py's and stopped by it.

Fixtures (import them into a test module):
  cluster_hosts     cluster_hosts(n=3, redis=None, **settings) -> Cluster;
                    redis: a redisd Server, a redis:// or sentinel:// URL,
                    or a list with one of those per host; None starts a
                    primary of the test's own; False: no cluster line
                    (hosts alone, for the fixture's own tests).
  and redisd.py's redis_factory, redis_server, redis_sentinel_group,
  tcp_proxy.

Helpers that read Redis (doc/cluster.txt's keys): room_base(),
host_sessions() (the sessions of a host that hold a lease).

The checker of test_cluster_jepsen.py lives here too, shared with
test_cluster_faults.py: CanvasMember (a member that appends and resumes
through faults), members_on(), drive(), final_logs(), check_members(),
verdict().

at(conns, d): the connections of one test (a conftest Conns or a dialect's
subclass) opening their next connections on host d, all still closed
together at the end of the session.
"""
import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import websockets

from conftest import (EXTERNAL_URL, SANITIZER_RE, _pid_gone, close_ws,
                      connect, create_room, free_port, http_req, join_room,
                      poll,
                      recv_json, roomctl_path, start_roomd, stop_clean,
                      ws_open, ws_url)
from redisd import (MASTER, Server, load_library, redis_factory,  # noqa: F401
                    redis_sentinel_group, redis_server, tcp_proxy)

# The lease of the tests' hosts, in seconds: short, so that a killed host's
# members are reaped within a few seconds.  A host cut off from Redis must
# close its clients after half of it (issue 15, 4).
LEASE = 3


def redis_url(r, password=None):
    """The cluster line's address of r: a Server, a Proxy (.port), a port
    number or a URL already."""
    if isinstance(r, str):
        return r
    port = r if isinstance(r, int) else r.port
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}"


def sentinel_url(sentinels, name=MASTER):
    return ("sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
            + "/" + name)


def children(pid):
    """PIDs whose parent is pid (the workers of a master), from /proc."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            out.append(int(e))
    return out


class Host:
    """One roomd host of a cluster: .name .index .d (its conftest Roomd
    while it runs, else None) .port .dir .conf_text; .base and .ws_base as a
    Roomd's, so that a Host can stand wherever a daemon is expected."""

    def __init__(self, cluster, index, url, settings, workers, env=None):
        self.cluster = cluster
        self.env = env          # more environment (start_roomd's)
        self.index = index
        self.name = f"h{index + 1}"
        self.dir = os.path.join(cluster.tmp, self.name)
        os.makedirs(self.dir)
        self.url = url
        self.workers = workers
        self.port = None
        self.d = None
        self.killed = []        # PIDs of the last kill()
        self.metrics_port = free_port()
        lines = [f"arena_path {self.dir}/arena", "arena_size 32M",
                 f"metrics_listen 127.0.0.1:{self.metrics_port}"]
        if url is not None:
            lines += [f"cluster {url}", f"cluster_host {self.name}"]
        for k, v in settings.items():
            if v is not None and (url is not None or
                                  not k.startswith("cluster")):
                lines.append(f"{k} {v}")
        self.conf_text = "\n".join(lines) + "\n"

    # A Host stands for its daemon in the conftest helpers (http_req,
    # connect, the dialects' Conns): these are the attributes they read.
    host = "127.0.0.1"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self):
        return f"ws://127.0.0.1:{self.port}"

    @property
    def control_socket(self):
        return self.d.control_socket

    @property
    def log_path(self):
        return self.d.log_path if self.d else None

    @property
    def running(self):
        return self.d is not None and self.d.proc.poll() is None

    def start(self, timeout=20.0):
        """Start (or start again, on the same port and arena file).  A
        metrics port taken by another process between free_port() and the
        bind is replaced, at most twice."""
        assert self.d is None, f"{self.name} runs already"
        for attempt in range(3):
            try:
                self.d = start_roomd(self.conf_text, self.workers, timeout,
                                     port=self.port, env=self.env)
                break
            except BaseException as e:      # noqa: B902 (pytest.fail)
                taken = f"metrics on 127.0.0.1:{self.metrics_port}: " \
                        "Address already in use"
                if attempt == 2 or taken not in str(e):
                    raise
                old = f"metrics_listen 127.0.0.1:{self.metrics_port}"
                self.metrics_port = free_port()
                self.conf_text = self.conf_text.replace(
                    old, f"metrics_listen 127.0.0.1:{self.metrics_port}")
        self.port = self.d.port
        return self

    def kill(self):
        """SIGKILL the master and all its workers at once, as a machine
        that dies; wait until every one of them is gone.  The arena file
        stays.  -> the PIDs killed."""
        d = self.d
        assert d is not None, f"{self.name} is not running"
        pids = [d.master_pid] + children(d.master_pid)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(d.master_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        d.proc.wait(10)
        assert poll(lambda: all(_pid_gone(p) for p in pids), 10), \
            f"{self.name}: {pids} outlived SIGKILL"
        self.keep_log()
        d.stop()                # removes its temporary directory
        self.d = None
        self.killed = pids
        return pids

    def stop(self):
        """stop_clean (SIGTERM, exit 0, no sanitizer report), then remove
        what the daemon left; raises what stop_clean found, after
        cleaning up."""
        d, self.d = self.d, None
        if d is None:
            return
        try:
            stop_clean(d)
        finally:
            self.keep_log(d)
            d.stop()

    def restart(self):
        if self.d is not None:
            self.kill()
        return self.start()

    def keep_log(self, d=None):
        """Append the daemon's log to the host's own (which outlives the
        daemon's temporary directory, for a failing test's report)."""
        d = d or self.d
        if d is None or not d.log_path:
            return
        try:
            with open(d.log_path, "rb") as f, \
                    open(os.path.join(self.dir, "roomd.log"), "ab") as out:
                out.write(f.read())
        except OSError:
            pass

    def log(self):
        """Everything this host logged, over all its starts so far."""
        text = ""
        try:
            with open(os.path.join(self.dir, "roomd.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            pass
        if self.d is not None:
            try:
                with open(self.d.log_path, "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return text

    def ctl(self, *args, timeout=20):
        return subprocess.run([roomctl_path(), "-s", self.control_socket,
                               *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=timeout)

    def ctl_json(self, *args):
        p = self.ctl("-j", *args)
        assert p.returncode == 0, (self.name, p.returncode, p.stdout,
                                   p.stderr)
        return json.loads(p.stdout)

    def metrics(self):
        """The text of GET /metrics from the host's metrics_listen."""
        class At:
            host = "127.0.0.1"
            port = self.metrics_port
        r = http_req(At, "GET", "/metrics")
        assert r.status == 200, f"{self.name}: /metrics: {r!r}"
        return r.body.decode()

    def __repr__(self):
        return f"<host {self.name} port {self.port}>"


class Cluster:
    """n hosts sharing one Redis: .hosts .redis (a Server, or None) .tmp"""

    def __init__(self, n, redis, workers, settings, env=None):
        self.tmp = tempfile.mkdtemp(prefix="roomd-cluster-")
        self.redis = redis if isinstance(redis, Server) else None
        urls = redis if isinstance(redis, list) else [redis] * n
        assert len(urls) == n, "one Redis address per host"
        self.hosts = [Host(self, i, None if u is False else redis_url(u),
                           settings, workers, env)
                      for i, u in enumerate(urls)]

    def __getitem__(self, i):
        return self.hosts[i]

    def __len__(self):
        return len(self.hosts)

    def __iter__(self):
        return iter(self.hosts)

    def start(self):
        for h in self.hosts:
            h.start()
        return self

    def alive(self):
        return [h for h in self.hosts if h.running]

    def logs(self):
        return "\n".join(f"--- {h.name} ---\n{h.log()[-4000:]}"
                         for h in self.hosts)

    def close(self):
        """Stop every running host cleanly; whatever fails, every process
        and file is gone afterwards; then raise the first failure.  The
        logs of every incarnation of every host (killed ones too) must
        hold no sanitizer report."""
        first = None
        for h in self.hosts:
            try:
                h.stop()
            except BaseException as e:       # noqa: B902 (cleanup first)
                first = first or e
        for h in self.hosts:
            text = h.log()
            m = SANITIZER_RE.search(text)
            if m and first is None:
                first = AssertionError(
                    f"sanitizer report in {h.name}'s log:\n" +
                    text[max(0, m.start() - 2000):m.start() + 6000])
        shutil.rmtree(self.tmp, ignore_errors=True)
        if first is not None:
            raise first


def settings_of(lease=LEASE, **kw):
    """Config lines of every host: cluster_lease and what kw adds (its
    keys are roomd.conf keywords; None leaves one out)."""
    s = {"cluster_lease": lease}
    s.update(kw)
    return s


@pytest.fixture
def cluster_hosts(redis_factory):
    """cluster_hosts(n=3, redis=None, workers=2, lease=LEASE, env=None,
    **settings) -> a started Cluster; settings are more roomd.conf lines
    (keyword=value), env more environment for every host's daemon.
    Every host is stopped at teardown (stop_clean for those still running)
    and every Redis started here by redisd."""
    if EXTERNAL_URL:
        pytest.skip("the cluster tests start hosts of their own")
    made = []

    def make(n=3, redis=None, workers=2, lease=LEASE, start=True, env=None,
             **settings):
        if redis is None:
            redis = redis_factory()
        if redis is False:
            redis = [False] * n
        c = Cluster(n, redis, workers, settings_of(lease, **settings), env)
        made.append(c)
        return c.start() if start else c
    try:
        yield make
    finally:
        errs = []
        for c in made:
            try:
                c.close()
            except BaseException as e:      # noqa: B902
                errs.append(e)
        if errs:
            raise errs[0]


# ---------------------------------------------------------------- Redis truth

def room_base(dialect, room):
    """The base of a room's keys in Redis (doc/cluster.txt)."""
    return f"roomd:{{{dialect}:{room}}}"


def host_sessions(client, host):
    """The sessions of host (its name) that hold a lease in Redis."""
    return {m.decode() for m in client.zrange("roomd:leases", 0, -1)
            if m.decode().split("/")[0] == host}


def wait_for(cond, timeout, what, interval=0.1):
    """poll(cond) or fail saying what did not happen."""
    v = poll(cond, timeout, interval)
    assert v, f"{what}: not within {timeout} s"
    return v


# ---------------------------------------------------------------- connections

class _At:
    """A Conns that opens its next connections on another daemon: every
    attribute but .d is the original's (its list of connections, its name
    counters), and its methods run with self = this view."""

    def __init__(self, conns, d):
        object.__setattr__(self, "_orig", conns)
        object.__setattr__(self, "d", d)

    def __getattr__(self, k):
        v = getattr(type(self._orig), k, None)
        if callable(v) and not isinstance(v, type):
            return functools.partial(v, self)
        return getattr(self._orig, k)

    def __setattr__(self, k, v):
        setattr(self._orig, k, v)


def at(conns, d):
    """conns (a Conns of one test) opening on host (or daemon) d."""
    orig = conns._orig if isinstance(conns, _At) else conns
    return _At(orig, d)


# ---------------------------------------------------------------- a member that resumes

class CanvasMember:
    """A canvas member that appends and reads through whatever happens to
    the hosts: when its WebSocket closes (or cannot open) it reconnects to
    the next host with the last pointer it received, as a real client
    would.  It records what it saw, per epoch of the room, for the
    checker:

      .sent      [op id]            every action it sent ({"op": id, ...})
      .acked     {op id: (epoch, pointer)}  its actions it saw echoed
      .seen      {epoch: [(pointer, op id)]} everything received, in order
      .closes    [(host, code, reason)] every close, for the report
      .resumes   how many times it reconnected with a pointer
    """

    def __init__(self, name, token, rid, hosts, start=0):
        self.name = name
        self.token = token
        self.rid = rid
        self.hosts = hosts
        self.at = start
        self.sent = []
        self.acked = {}
        self.seen = {}
        self.closes = []
        self.errors = []
        self.resumes = 0
        self.epoch = None
        self.last = None        # the last pointer received in .epoch

    def _epoch_of(self, h):
        r = http_req(h, "GET", f"/canvas/rooms/{self.rid}", timeout=3.0)
        if r.status != 200 or not isinstance(r.json, dict):
            return None
        return r.json.get("epoch")

    def _take(self, actions):
        for a in actions:
            p, op = a.get("pointer"), a.get("op")
            self.seen.setdefault(self.epoch, []).append((p, op))
            self.last = p
            if isinstance(op, str) and op.startswith(self.name + ":"):
                self.acked.setdefault(op, (self.epoch, p))

    async def _connect(self):
        """One attempt on the current host: -> ws or None."""
        h = self.hosts[self.at % len(self.hosts)]
        if not h.running:
            return None
        try:
            epoch = await asyncio.to_thread(self._epoch_of, h)
        except OSError:
            return None
        if epoch is None:
            return None
        if epoch != self.epoch:
            # A new epoch: the room's log starts over for this client.
            self.epoch, self.last = epoch, None
        try:
            ws = await ws_open(ws_url(h, self.rid, self.token, self.last),
                               timeout=3.0)
            first = await recv_json(ws, 5.0)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException,
                AssertionError, ValueError) as e:
            self.errors.append((h.name, repr(e)[:200]))
            return None
        if isinstance(first, dict):         # an error, then a close
            self.errors.append((h.name, first))
            if first.get("error") == "bad_pointer":
                self.epoch = None           # ask for the epoch again
            try:
                await ws.close()
            except Exception:
                pass
            return None
        if self.last is not None:
            self.resumes += 1
        self._take(first)
        return ws

    async def run(self, stop, interval=0.05, batch=1, done=None):
        """Append (batch actions every interval) and read until stop is
        set; then read on until done is set (so that the room, which a
        canvas deletes with its last WebSocket, can be read whole), or
        1.5 s without done."""
        n = 0
        while not stop.is_set():
            ws = await self._connect()
            if ws is None:
                self.at += 1
                await asyncio.sleep(0.2)
                continue

            async def reader():
                async for m in ws:
                    x = json.loads(m)
                    if isinstance(x, list):
                        self._take(x)
            rt = asyncio.ensure_future(reader())
            try:
                while not stop.is_set() and not rt.done():
                    ops = []
                    for _ in range(batch):
                        n += 1
                        op = f"{self.name}:{n}"
                        ops.append({"lineto": [n, 0], "op": op})
                        self.sent.append(op)
                    await ws.send(json.dumps(ops))
                    await asyncio.sleep(interval)
                if not rt.done():
                    if done is not None:
                        await asyncio.wait(
                            [rt, asyncio.ensure_future(done.wait())],
                            return_when=asyncio.FIRST_COMPLETED)
                    else:
                        await asyncio.wait([rt], timeout=1.5)
            except websockets.ConnectionClosed:
                pass
            finally:
                rt.cancel()
                try:
                    await rt
                except (asyncio.CancelledError, websockets.ConnectionClosed,
                        ValueError):
                    pass
                except Exception as e:      # noqa: B902 (kept for report)
                    self.errors.append(("reader", repr(e)[:200]))
                rc = ws.close_rcvd
                self.closes.append((self.hosts[self.at % len(self.hosts)].name,
                                    rc.code if rc else None,
                                    rc.reason if rc else None))
                try:
                    await asyncio.wait_for(ws.close(), 2)
                except Exception:
                    ws.transport.abort()
            if not stop.is_set():
                self.at += 1


def check_members(members, final=None, keep="all"):
    """The checker's rules over what CanvasMembers saw.  final: {epoch:
    [(pointer, op)]} of the room read whole at the end (from every host,
    which must agree).  Returns a list of violations (empty: all held).

    1. No gap, no duplicate: within an epoch, each member saw pointers
       p, p+1, p+2... from where it started (1, or where it resumed).
    2. One record per name: no (epoch, pointer) names two different ops,
       across members and the final log.
    3. Acknowledged ops are kept, each exactly once in the final log:
       keep "all": every op a member saw echoed (Redis restarted, or a
       failover with cluster_wait 1); "last": those acknowledged in the
       epoch the final log has (a lost tail must show as a new epoch);
       None: not checked.
    (Rule 4, "the room lives", is told_gone().)"""
    bad = []
    names = {}
    for m in members:
        for epoch, xs in m.seen.items():
            ps = [p for p, _ in xs]
            for a, b in zip(ps, ps[1:]):
                if b != a + 1:
                    bad.append(f"{m.name}: epoch {epoch}: pointer {a} then "
                               f"{b} (a gap or a duplicate)")
                    break
            for p, op in xs:
                k = (epoch, p)
                if names.setdefault(k, op) != op:
                    bad.append(f"({epoch}, {p}) names {names[k]} and {op}")
    if final is not None:
        for epoch, xs in final.items():
            ops = [op for _, op in xs]
            dup = {o for o in ops if ops.count(o) > 1}
            if dup:
                bad.append(f"final log, epoch {epoch}: ops twice: "
                           f"{sorted(dup)[:10]}")
            ps = [p for p, _ in xs]
            if ps != list(range(1, len(ps) + 1)):
                bad.append(f"final log, epoch {epoch}: not dense from 1")
            for p, op in xs:
                k = (epoch, p)
                if names.setdefault(k, op) != op:
                    bad.append(f"final ({epoch}, {p}) is {op}, a member saw "
                               f"{names[k]}")
        last = max(final, key=lambda e: len(final[e])) if final else None
        kept = {op for _, op in final.get(last, [])}
        for m in members:
            for op, (epoch, _) in m.acked.items():
                if op in kept or keep is None:
                    continue
                if keep == "all" or epoch == last:
                    bad.append(f"{m.name}: acknowledged {op} (epoch "
                               f"{epoch}) lost")
    return bad


async def read_whole(h, rid, token):
    """(epoch, [(pointer, op)]) of the room's whole log, read on h."""
    epoch = await asyncio.to_thread(
        lambda: http_req(h, "GET", f"/canvas/rooms/{rid}").json["epoch"])
    ws, first, _ = await connect(h, rid, token)
    await close_ws(ws)
    return epoch, [(a.get("pointer"), a.get("op")) for a in first]


def members_on(c, rid, per_host=2, hosts=None):
    """A room with per_host members starting on each host (the first
    member made it). -> [CanvasMember]"""
    hosts = hosts or c.hosts
    ms = []
    for i in range(per_host * len(hosts)):
        h = hosts[i % len(hosts)]
        name = f"m{i}"
        if i == 0:
            tok = create_room(h, host=name, room_id=rid)["token"]
        else:
            tok = join_room(h, rid, name)["token"]
        ms.append(CanvasMember(name, tok, rid, hosts, start=i))
    return ms


async def drive(ms, fault, before=2.0, after=6.0, interval=0.05,
                final=None):
    """Run the members; after `before` s call fault() (in a thread); run
    `after` s more; stop their appending, give them 2 s for the last
    echoes, call `await final()` while they are still connected (the room
    lives as long as they do), then close them.  -> (ops acknowledged
    before the fault, what final returned)."""
    stop, done = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.ensure_future(m.run(stop, interval, done=done))
             for m in ms]
    out = None
    try:
        await asyncio.sleep(before)
        acked_before = sum(len(m.acked) for m in ms)
        await asyncio.to_thread(fault)
        await asyncio.sleep(after)
        stop.set()
        await asyncio.sleep(2)
        if final is not None:
            out = await final()
    finally:
        stop.set()
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return acked_before, out


async def final_logs(c, rid, token):
    """{host name: (epoch, log)} read whole on every running host, once
    they agree (a host may still be catching up, or answer 503 for a
    moment after a failover), at most 10 s.  Failures agreeing are not an
    answer: they are tried again."""
    deadline = time.monotonic() + 10
    while True:
        got = {}
        for h in c.alive():
            try:
                got[h.name] = await read_whole(h, rid, token)
            except Exception as e:          # noqa: B902 (reported below)
                got[h.name] = repr(e)
        read = all(isinstance(v, tuple) for v in got.values())
        if (read and len({repr(v) for v in got.values()}) == 1) or \
                time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


def told_gone(members):
    """Rule 4, the room lives: the members that were told no_such_room (a
    client gives up on a room it is told is gone), as sentences."""
    out = []
    for m in members:
        gone = [e for e in m.errors if isinstance(e[1], dict) and
                e[1].get("error") == "no_such_room"]
        if gone:
            out.append(f"{m.name}: told no_such_room {len(gone)} times, "
                       f"first by {gone[0][0]}")
    return out


def room_lived(ms):
    """Rule 4 (told_gone), the last check of a test: nobody was told
    no_such_room for the live room, even while the cluster recovered."""
    gone = told_gone(ms)
    assert not gone, f"told no_such_room for a live room: {gone}"


def verdict(ms, logs, keep):
    """Every host read the same log; the checker's rules 1-3 hold (a test
    ends with room_lived(ms) for rule 4)."""
    report = "\n".join(
        f"  {m.name}: sent {len(m.sent)}, acked {len(m.acked)}, resumed "
        f"{m.resumes}, closes {m.closes[-6:]}, errors "
        f"{m.errors[-3:]}" for m in ms)
    if os.environ.get("ROOMD_CHECK_REPORT"):
        print(f"checker: members\n{report}")
    vals = list(logs.values())
    assert all(v == vals[0] for v in vals), \
        "the hosts disagree on the room's log: " + \
        "; ".join(f"{k}: {str(v)[:300]}" for k, v in logs.items()) + \
        "\n" + report
    assert isinstance(vals[0], tuple), \
        f"the room's log could not be read at the end: {logs}\n{report}"
    epoch, log = vals[0]
    bad = check_members(ms, {epoch: log}, keep)
    assert bad == [], f"{len(bad)} violations: {bad[:20]}\n{report}"
    return epoch, log
