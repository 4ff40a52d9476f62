"""Real Redis servers for the cluster tests, started and stopped by the tests.

Every server is a redis-server (or redis-sentinel) process of our own on a
free 127.0.0.1 port, with its own config file and data folder under a
temporary directory: appendonly yes, maxmemory-policy noeviction, no RDB
saves, protected mode, bound to loopback.  It is stopped by its PID and its
directory removed, when the test ends, pass or fail.  The system's Redis
service (port 6379) is never used.

Fixtures (import them into a test module):
  redis_server        one primary
  redis_factory       redis_factory(**conf) -> a server of the test's own
  redis_sentinel_group  a primary, a replica and three sentinels
  tcp_proxy           tcp_proxy(port) -> a pausable loopback proxy

And load_library(client): the roomd library from redis/ (lib.lua first,
then the steps in name order), loaded only when it differs from the
loaded one (reloading starts a new server life: see doc/cluster.txt).
"""
import atexit
import ctypes
import glob
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import redis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBDIR = os.path.join(REPO, "redis")
SYSTEM_PORT = 6379
MASTER = "roomd"        # the name sentinels monitor the primary under

_LIVE = []              # processes started here and not yet stopped


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now (never 6379)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port != SYSTEM_PORT:
            return port


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, even
    by SIGKILL (Linux), so that no server outlives a killed run."""
    try:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _wait(cond, timeout, what):
    """Poll cond() until it is true, at most timeout seconds."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            if cond():
                return
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s (last error: {last})")


class Server:
    """A redis-server or redis-sentinel process: .port .dir .proc .pid."""

    binary = "redis-server"

    def __init__(self, root, name, conf, password=None):
        self.name = name
        self.password = password
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, f"{name}.conf")
        self.log_path = os.path.join(self.dir, f"{name}.log")
        with open(self.conf_path, "w") as f:
            f.write(self.base_conf() + conf)
        self.proc = None

    def base_conf(self):
        return (f"bind 127.0.0.1\n"
                f"protected-mode yes\n"
                f"port {self.port}\n"
                f"dir {self.dir}\n"
                f"logfile {self.log_path}\n"
                f"daemonize no\n"
                f"save \"\"\n"
                f"appendonly yes\n"
                f"appendfsync everysec\n"
                f"maxmemory-policy noeviction\n"
                # A replica's first sync starts at once, not after 5 s.
                f"repl-diskless-sync-delay 0\n")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        assert self.port != SYSTEM_PORT
        if shutil.which(self.binary) is None:
            pytest.fail(f"{self.binary} not found: install it with "
                        f"tests/debian-deps")
        self.proc = subprocess.Popen([self.binary, self.conf_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent)
        _LIVE.append(self)
        c = self.client(socket_timeout=1.0)
        try:
            _wait(lambda: self.proc.poll() is None and self._ready(c),
                  timeout, f"{self.name} on port {self.port}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n--- log ---\n{self.log_tail()}")
        finally:
            c.close()
        return self

    def _ready(self, c):
        return c.ping() and c.info("persistence").get("loading") == 0

    def client(self, **kw):
        kw.setdefault("socket_timeout", 10.0)
        kw.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def kill9(self):
        """SIGKILL by PID, as a crash would end it; the data dir stays."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self in _LIVE:
            _LIVE.remove(self)

    def restart(self):
        """kill -9, then start again on the same port and data dir."""
        self.kill9()
        return self.start()

    def stop(self):
        """SIGTERM by PID, SIGKILL after 5 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"


class Sentinel(Server):
    binary = "redis-sentinel"

    def base_conf(self):
        # Sentinel rewrites its own config file: it must be ours, writable.
        return (f"bind 127.0.0.1\n"
                f"protected-mode yes\n"
                f"port {self.port}\n"
                f"dir {self.dir}\n"
                f"logfile {self.log_path}\n"
                f"daemonize no\n")

    def _ready(self, c):
        return c.ping()

    def primary(self):
        """(host, port) of the primary this sentinel names now."""
        h, p = self.client(socket_timeout=1.0).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return h.decode(), int(p)


class Group:
    """Servers of one test under one temporary directory."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="roomd-redis-")
        self.servers = []
        self.n = 0

    def server(self, maxmemory=None, replicaof=None, extra="", password=None):
        self.n += 1
        conf = extra
        if password:
            conf += f"requirepass {password}\n"
        if maxmemory:
            conf += f"maxmemory {maxmemory}\n"
        if replicaof:       # a Server, or a port (a proxy's)
            port = getattr(replicaof, "port", replicaof)
            conf += f"replicaof 127.0.0.1 {port}\n"
        s = Server(self.tmp, f"redis{self.n}", conf, password)
        self.servers.append(s)
        return s.start()

    def sentinel(self, primary, quorum=2, down_ms=1000, failover_ms=5000):
        self.n += 1
        conf = (f"sentinel resolve-hostnames no\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} {quorum}\n"
                f"sentinel down-after-milliseconds {MASTER} {down_ms}\n"
                f"sentinel failover-timeout {MASTER} {failover_ms}\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
        s = Sentinel(self.tmp, f"sentinel{self.n}", conf)
        self.servers.append(s)
        return s.start()

    def close(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@atexit.register
def _kill_leftovers():
    """Nothing started here outlives the test process."""
    for s in list(_LIVE):
        s.kill9()


# ---------------------------------------------------------------- library

def library_text():
    """The roomd library: lib.lua, then every other step file by name."""
    steps = sorted(p for p in glob.glob(os.path.join(LIBDIR, "*.lua"))
                   if os.path.basename(p) != "lib.lua")
    parts = ["#!lua name=roomd\n"]
    for p in [os.path.join(LIBDIR, "lib.lua")] + steps:
        with open(p) as f:
            parts.append(f.read())
    return "\n".join(parts)


def load_library(client):
    """Load the library unless exactly this text is loaded already."""
    text = library_text()
    have = client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "roomd",
                                  "WITHCODE")
    for lib in have:
        d = dict(zip(lib[::2], lib[1::2]))
        if d.get(b"library_name") == b"roomd" and \
                d.get(b"library_code", b"").decode() == text:
            return False
    client.execute_command("FUNCTION", "LOAD", "REPLACE", text)
    return True


# ---------------------------------------------------------------- proxy

class Proxy:
    """A TCP proxy on 127.0.0.1 to a loopback port that can stop passing
    bytes (pause: connections stay open, as behind a partition), pass them
    again (resume), or drop every connection (cut); with .delay (seconds)
    it holds each chunk that long before passing it on, one chunk at a
    time (a far, slow Redis)."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.passing = threading.Event()
        self.passing.set()
        self.pairs = []
        self.lock = threading.Lock()
        self.stopping = False
        self.delay = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def pause(self):
        self.passing.clear()

    def resume(self):
        self.passing.set()

    def cut(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                # At once: a close alone waits for the proxy's select()
                # to let the socket go (up to 50 ms).
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.stopping = True
        self.cut()
        self.lsock.close()
        self.thread.join(timeout=5)

    def _run(self):
        while not self.stopping:
            with self.lock:
                socks = [self.lsock] + [s for p in self.pairs for s in p]
            try:
                r, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue        # a socket closed under us: look again
            for s in r:
                if s is self.lsock:
                    self._accept()
                elif self.passing.is_set():
                    self._pass(s)
            if not self.passing.is_set():
                time.sleep(0.02)    # bytes wait in the kernel meanwhile

    def _accept(self):
        try:
            a, _ = self.lsock.accept()
            b = socket.create_connection(("127.0.0.1", self.target), 5)
        except OSError:
            return
        with self.lock:
            self.pairs.append((a, b))

    def _pass(self, s):
        with self.lock:
            pair = next((p for p in self.pairs if s in p), None)
        if pair is None:
            return
        other = pair[1] if s is pair[0] else pair[0]
        try:
            data = s.recv(65536)
            if data:
                if self.delay > 0:
                    time.sleep(self.delay)
                other.sendall(data)
                return
        except OSError:
            pass
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        pair[0].close()
        pair[1].close()


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def redis_factory():
    """redis_factory(maxmemory=None, replicaof=None, extra="",
    password=None) -> a started Server; replicaof is a Server or a loopback
    port; with password, Redis requires it (requirepass) and .client()
    gives it."""
    g = Group()
    try:
        yield g.server
    finally:
        g.close()


@pytest.fixture
def redis_server(redis_factory):
    """One primary with the roomd library loaded."""
    s = redis_factory()
    load_library(s.client())
    return s


@pytest.fixture
def redis_sentinel_group():
    """(group, primary, replica, [3 sentinels]), the replica in sync and
    every sentinel aware of the replica and of the two other sentinels."""
    g = Group()
    try:
        primary = g.server()
        load_library(primary.client())
        replica = g.server(replicaof=primary)
        _wait(lambda: replica.client().info("replication")
              .get("master_link_status") == "up", 10, "replica in sync")
        sentinels = [g.sentinel(primary) for _ in range(3)]

        def aware():
            for s in sentinels:
                c = s.client(socket_timeout=1.0)
                if len(c.execute_command("SENTINEL", "REPLICAS", MASTER)) < 1:
                    return False
                if len(c.execute_command("SENTINEL", "SENTINELS", MASTER)) < 2:
                    return False
            return True
        _wait(aware, 15, "sentinels aware of the replica and each other")
        yield g, primary, replica, sentinels
    finally:
        g.close()


@pytest.fixture
def tcp_proxy():
    """tcp_proxy(port) -> a Proxy to 127.0.0.1:port, closed at teardown."""
    made = []

    def make(port):
        p = Proxy(port)
        made.append(p)
        return p
    try:
        yield make
    finally:
        for p in made:
            p.close()
