"""Harness for the roomd integration tests.

Starts real roomd daemons on free loopback ports (or uses the one named by
ROOMD_URL) and offers small HTTP, WebSocket and raw-socket helpers that the
test modules share.  Every wait is bounded; every process and temporary file
a test creates is removed at teardown.

Run with:  cd <repo> && /usr/bin/python3 -m pytest -q tests/integration
"""
import asyncio
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import urllib.parse

import pytest
import websockets

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTERNAL_URL = os.environ.get("ROOMD_URL")


def roomd_bin():
    b = os.environ.get("ROOMD_BIN")
    if b:
        return b
    built = os.path.join(REPO, "build", "roomd")
    if os.path.exists(built):
        return built
    return os.path.join(REPO, "roomd")


# ---------------------------------------------------------------- daemons

_LIVE = []          # daemons started by this process and not yet stopped


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _pid_gone(pid):
    """True when pid no longer names a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (OSError, IndexError):
        return True


def log_text(d):
    """The whole log of a daemon of the tests' own ("" if unreadable)."""
    try:
        with open(d.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""



SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|"
                          r"UndefinedBehaviorSanitizer|runtime error:")


def stop_clean(d):
    """Stop d with SIGTERM and require a clean exit: status 0 and no
    sanitizer report in its log (read before the log is removed)."""
    d.proc.send_signal(signal.SIGTERM)
    try:
        d.proc.wait(timeout=15)
    except Exception:
        pass
    text = log_text(d)
    m = SANITIZER_RE.search(text)
    assert m is None, ("sanitizer report in the daemon's log:\n" +
                       text[max(0, m.start() - 2000):m.start() + 6000])
    assert d.proc.returncode == 0, \
        f"roomd exited with {d.proc.returncode}\n{text[-3000:]}"

def roomctl_path():
    """roomctl, built next to the roomd under test."""
    return os.path.join(os.path.dirname(roomd_bin()), "roomctl")


class Roomd:
    """A running daemon: .port .base .ws_base .proc .master_pid .log_path."""

    def __init__(self, host, port, proc=None, tmpdir=None, log_path=None):
        self.host = host
        self.port = port
        self.base = f"http://{host}:{port}"
        self.ws_base = f"ws://{host}:{port}"
        self.proc = proc
        self.master_pid = proc.pid if proc is not None else None
        self.log_path = log_path
        self._tmpdir = tmpdir
        self._logf = None
        self.returncode = None

    @property
    def external(self):
        return self.proc is None

    def log_tail(self, n=50):
        if not self.log_path:
            return "(external daemon: no log)"
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError as e:
            return f"(log unreadable: {e})"
        return "\n".join(lines[-n:])

    def stop(self):
        """SIGTERM, wait up to 10 s, then SIGKILL; remove every leftover."""
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.returncode = self.proc.returncode
            # Workers live in the master's own process group (we started it
            # with start_new_session): kill whatever of that group is left.
            try:
                os.killpg(self.master_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        finally:
            if self._logf is not None:
                self._logf.close()
                self._logf = None
            if self in _LIVE:
                _LIVE.remove(self)
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None
        return self.returncode


def start_roomd(conf_text="", workers=2, timeout=10.0, env=None,
                args=(), port=None):
    """roomd -f with conf_text and extra command-line args; env adds to
    the environment, "{tmp}" in a value standing for the daemon's temporary
    directory (.tmp).  It listens on 127.0.0.1:port (a free port unless
    told: a host restarted where it was)."""
    binary = roomd_bin()
    if not os.path.exists(binary):
        pytest.fail(f"roomd binary not found at {binary} (set ROOMD_BIN)")
    tmp = tempfile.TemporaryDirectory(prefix="roomd-it-")
    conf = os.path.join(tmp.name, "roomd.conf")
    with open(conf, "w") as f:
        # pidfile and admin socket in the temporary directory so that
        # concurrent daemons never share one; the caller's settings follow.
        f.write(f"pidfile {tmp.name}/roomd.pid\n")
        f.write(f"control_socket {tmp.name}/roomd.sock\n")
        # ROOMD_TEST_CLUSTER="redis://... [redis://...]": every daemon
        # is a one-host cluster on that Redis, the further addresses its
        # cluster_shard lines (the single-host suites then test the
        # engine's cluster side).
        cl = os.environ.get("ROOMD_TEST_CLUSTER")
        if cl and "cluster " not in conf_text:
            # a daemon restarted on the same arena is the same host
            m = re.search(r"^arena_path\s+(\S+)", conf_text, re.M)
            me = f"it-{os.getpid()}-" + (
                hashlib.sha1(m.group(1).encode()).hexdigest()[:8] if m
                else uuid.uuid4().hex[:8])
            first, *more = cl.split()
            f.write(f"cluster {first}\ncluster_host {me}\n"
                    f"cluster_prefix {me}\n")
            for u in more:
                f.write(f"cluster_shard {u}\n")
        f.write(conf_text)
        if conf_text and not conf_text.endswith("\n"):
            f.write("\n")
    if port is None:
        port = free_port()
    log_path = os.path.join(tmp.name, "roomd.log")
    logf = open(log_path, "wb")
    argv = [binary, "-f", *args, "-c", conf, "-l", f"127.0.0.1:{port}",
            "-w", str(workers)]
    penv = dict(os.environ)
    for k, v in (env or {}).items():
        penv[k] = v.replace("{tmp}", tmp.name)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, env=penv, start_new_session=True)
    except OSError:
        logf.close()
        tmp.cleanup()
        raise
    d = Roomd("127.0.0.1", port, proc, tmp, log_path)
    d._logf = logf
    d.conf_path = conf
    d.control_socket = os.path.join(tmp.name, "roomd.sock")
    d.workers = workers
    d.tmp = tmp.name
    d.started = time.monotonic()
    _LIVE.append(d)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = d.log_tail()
            d.stop()
            pytest.fail(f"roomd exited with status {proc.returncode} during "
                        f"startup: {argv}\n--- log ---\n{tail}")
        # Up once a worker accepts and the master has its admin socket
        # (which it opens after binding the port: a while under ASan, and
        # until then a SIGHUP would find no handler).
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            if os.path.exists(d.control_socket):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            tail = d.log_tail()
            d.stop()
            pytest.fail(f"roomd did not accept on port {port} within "
                        f"{timeout} s\n--- log ---\n{tail}")
        time.sleep(0.05)
    return d


def roomd_t(conf_text):
    """roomd -t on conf_text, written to a file in a temporary directory:
    (exit status, what it wrote to stdout and stderr, the file's path)."""
    with tempfile.TemporaryDirectory(prefix="roomd-t-") as tmp:
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        r = subprocess.run([roomd_bin(), "-t", "-c", conf],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        return r.returncode, r.stdout.decode("utf-8", "replace"), conf


def _external():
    u = urllib.parse.urlsplit(EXTERNAL_URL)
    return Roomd(u.hostname or "127.0.0.1", u.port or 80)


def watched_daemon(conf_text="", workers=2, what="the shared roomd"):
    """For a fixture: yield a daemon of its own (or the ROOMD_URL one), and
    at the end fail if it died or if a worker was replaced (crashed): every
    slot must still be served by the process that served it at the start."""
    if EXTERNAL_URL:
        yield _external()
        return
    d = start_roomd(conf_text, workers)
    try:
        before = _worker_map(d)
        yield d
        alive = d.proc.poll() is None
        tail = d.log_tail()
        assert alive, (f"{what} died (status {d.proc.returncode})\n"
                       f"--- log ---\n{tail}")
        after = _worker_map(d)
        if before is not None:
            assert after == before, (
                f"a worker of {what} was replaced (crashed): slot->pid "
                f"{before} became {after}\n--- log ---\n{tail}")
    finally:
        d.stop()


@pytest.fixture(scope="session")
def roomd():
    """One daemon shared by the whole session (or the ROOMD_URL one)."""
    yield from watched_daemon(what="the shared roomd")


def _worker_map(d, slots=2, tries=100):
    """slot -> pid of the workers answering new connections, or None."""
    seen = {}
    try:
        for _ in range(tries):
            r = http_req(d, "GET", "/canvas/rooms", timeout=2.0)
            slot, pid = parse_worker(r.header("X-Roomd-Worker"))
            seen.setdefault(slot, set()).add(pid)
            if len(seen) >= slots and all(len(v) == 1 for v in seen.values()):
                break
    except Exception:
        return None
    return seen


def own_daemons(start=start_roomd):
    """For a fixture: yield make(...), which starts a daemon with start(...)
    (start_roomd(conf_text="", workers=2) unless told); every one started
    is stopped at teardown, whatever happened."""
    started = []

    def make(*a, **kw):
        d = start(*a, **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def roomd_factory():
    """roomd_factory(conf_text="", workers=2) -> a daemon of the test's own."""
    if EXTERNAL_URL:
        pytest.skip("needs a daemon of its own (config or signals); "
                    "ROOMD_URL names an external one")
    yield from own_daemons()


def pytest_sessionfinish(session, exitstatus):
    """No daemon outlives the run, whatever a test forgot or failed to stop."""
    for d in list(_LIVE):
        d.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in list(_LIVE):
            rep.sections.append((f"roomd log (port {d.port}, last 50 lines)",
                                 d.log_tail(50)))


# ---------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, method, path, req_body, status, headers, body):
        self.method = method
        self.path = path
        self.req_body = req_body
        self.status = status
        self.headers = headers          # http.client.HTTPMessage
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        rb = self.req_body
        if isinstance(rb, (bytes, bytearray)) and len(rb) > 200:
            rb = rb[:200] + b"...(%d bytes)" % len(rb)
        b = self.body[:400]
        return (f"<{self.method} {self.path} body={rb!r} -> {self.status} "
                f"headers={dict(self.headers.items())} body={b!r}>")


def http_req(d, method, path, body=None, raw=None, headers=None, timeout=5.0):
    """One request on a new TCP connection.  body is JSON-encoded, raw is sent
    as is."""
    hdrs = dict(headers or {})
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(d.host, d.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Resp(method, path, data, r.status, r.msg, payload)
    finally:
        conn.close()


def assert_json_response(r):
    ct = r.header("Content-Type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", \
        f"Content-Type is not application/json: {r!r}"
    assert r.header("Access-Control-Allow-Origin") == "*", \
        f"missing Access-Control-Allow-Origin: *: {r!r}"


def assert_error(r, status, code=None):
    assert r.status == status, f"expected {status} {code}: {r!r}"
    assert_json_response(r)
    assert isinstance(r.json, dict), f"error body is not a JSON object: {r!r}"
    assert isinstance(r.json.get("error"), str), f"no error code: {r!r}"
    assert isinstance(r.json.get("message"), str), f"no message: {r!r}"
    if code is not None:
        assert r.json["error"] == code, f"expected error {code!r}: {r!r}"


def create_room(d, host="host", password=None, room_id=None):
    body = {"host": host}
    if password is not None:
        body["password"] = password
    if room_id is not None:
        body["roomId"] = room_id
    r = http_req(d, "POST", "/canvas/rooms", body)
    assert r.status == 201, f"create room failed: {r!r}"
    return r.json


def join_room(d, room_id, name, password=None):
    body = {"name": name}
    if password is not None:
        body["password"] = password
    r = http_req(d, "POST", f"/canvas/rooms/{room_id}/join", body)
    assert r.status == 200, f"join failed: {r!r}"
    return r.json


def list_rooms(d):
    r = http_req(d, "GET", "/canvas/rooms")
    assert r.status == 200, f"list failed: {r!r}"
    assert isinstance(r.json, list), f"list is not an array: {r!r}"
    return r.json


def room_listed(d, room_id):
    return any(x.get("roomId") == room_id for x in list_rooms(d))


def parse_worker(value):
    """'SLOT/PID' -> (slot, pid)."""
    assert value is not None, "no X-Roomd-Worker header"
    s, _, p = value.partition("/")
    assert s.isdigit() and p.isdigit(), f"bad X-Roomd-Worker {value!r}"
    return int(s), int(p)


def worker_of_new_request(d):
    r = http_req(d, "GET", "/canvas/rooms", timeout=2.0)
    return parse_worker(r.header("X-Roomd-Worker"))


def poll(fn, timeout, interval=0.1):
    """Call fn until it returns a true value or timeout passes; return the
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- WebSocket

T = 5.0     # default bound of one WebSocket wait


def run(coro, timeout=60.0):
    """Drive a coroutine from a plain test, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_url(d, room_id, token=None, pointer=None):
    q = []
    if token is not None:
        q.append(f"token={token}")
    if pointer is not None:
        q.append(f"pointer={pointer}")
    url = f"{d.ws_base}/canvas/rooms/{room_id}/ws"
    return url + ("?" + "&".join(q) if q else "")


async def ws_open(url, timeout=T):
    return await asyncio.wait_for(websockets.connect(
        url, max_size=None, max_queue=4096, compression=None,
        ping_interval=None, open_timeout=timeout, close_timeout=2), timeout)


async def recv_json(ws, timeout=T):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(msg, str), f"expected a text message, got {msg!r:.200}"
    return json.loads(msg)


async def recv_array(ws, timeout=T):
    m = await recv_json(ws, timeout)
    assert isinstance(m, list), f"expected a JSON array, got {m!r:.300}"
    return m


async def connect(d, room_id, token, pointer=None, slot=None,
                  attempts=60, timeout=10.0):
    """Open a member's WebSocket (on worker `slot` if given) and read its
    first message.  Returns (ws, first_message, (slot, pid)).

    Connections that land on another worker are closed again, so the room
    must already have another member connected when slot is given (else
    closing the stray would delete the room)."""
    deadline = time.monotonic() + timeout
    url = ws_url(d, room_id, token, pointer)
    for _ in range(attempts):
        ws = await ws_open(url)
        w = parse_worker(ws.response_headers.get("X-Roomd-Worker"))
        if slot is None or w[0] == slot:
            try:
                first = await recv_json(ws)
            except BaseException:
                await close_ws(ws)
                raise
            return ws, first, w
        await close_ws(ws)
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    pytest.fail(f"no WebSocket landed on worker slot {slot} in {attempts} tries")


async def close_ws(ws):
    try:
        await asyncio.wait_for(ws.close(), 4)
    except Exception:
        ws.transport.abort()


async def close_all(wss):
    await asyncio.gather(*(close_ws(w) for w in wss if w is not None))


async def collect_actions(ws, n, timeout=T, quiet=0.3):
    """Concatenate JSON-array messages until n actions arrived, then keep
    listening `quiet` seconds for anything more (which would be a surplus)."""
    got = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < n:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"wanted {n} actions within {timeout} s, "
                                 f"got {len(got)}: {got!r:.1000}")
        try:
            m = await recv_json(ws, left)
        except asyncio.TimeoutError:
            continue
        assert isinstance(m, list), f"expected an array of actions, got {m!r:.300}"
        got.extend(m)
    if quiet:
        while True:
            try:
                m = await recv_json(ws, quiet)
            except asyncio.TimeoutError:
                break
            got.extend(m if isinstance(m, list) else [m])
    return got


async def expect_close(ws, timeout=T):
    """Read (and return) messages until the server closes; return
    (messages, code, reason).  code is None when no close frame came."""
    msgs = []
    try:
        while True:
            m = await asyncio.wait_for(ws.recv(), timeout)
            msgs.append(m)
    except websockets.ConnectionClosed as e:
        rc = e.rcvd
        return msgs, (rc.code if rc else None), (rc.reason if rc else None)


def strip_pointers(actions):
    return [{k: v for k, v in a.items() if k != "pointer"} for a in actions]


def pointers(actions):
    return [a.get("pointer") for a in actions]


def assert_strictly_increasing(ps):
    assert all(isinstance(p, int) and not isinstance(p, bool) for p in ps), ps
    assert all(a < b for a, b in zip(ps, ps[1:])), f"pointers not increasing: {ps}"


# ---------------------------------------------------------------- raw sockets

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def mask(payload, key):
    """payload XOR the repeated 4-byte key, fast for megabytes too."""
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^
            int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True):
    """One frame's octets, masked with a fresh key as a client must."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


class RawWS:
    """A hand-driven WebSocket client for RFC 6455 details."""

    def __init__(self, d, timeout=T):
        self.sock = socket.create_connection((d.host, d.port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.d = d

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def read_body(self, headers):
        n = headers.get("content-length")
        if n is not None:
            return self._read(int(n))
        return b""

    def handshake(self, path, key="__new__", version="13", extra=None,
                  drop=()):
        """Send an upgrade request; return (status, headers, key)."""
        if key == "__new__":
            key = new_key()
        hdrs = [("Host", f"{self.d.host}:{self.d.port}"),
                ("Upgrade", "websocket"), ("Connection", "Upgrade")]
        if key is not None:
            hdrs.append(("Sec-WebSocket-Key", key))
        if version is not None:
            hdrs.append(("Sec-WebSocket-Version", version))
        hdrs += list(extra or [])
        hdrs = [(k, v) for k, v in hdrs if k not in drop]
        req = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
        self.sock.sendall(req.encode())
        status, headers = self.read_head()
        self.last_request = req
        return status, headers, key

    def open(self, path):
        status, headers, key = self.handshake(path)
        assert status == 101, f"handshake {path} -> {status} {headers}"
        return headers

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
        return frame(opcode, payload, fin, rsv, masked=mask)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text, **kw)

    def recv_frame(self):
        """-> (fin, opcode, payload, masked)"""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._read(2), "big")
        elif n == 127:
            n = int.from_bytes(self._read(8), "big")
        masked = bool(b1 & 0x80)
        key = self._read(4) if masked else None
        payload = self._read(n)
        if masked:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload, masked

    def recv_message(self):
        """Next data message (text/binary), reassembling fragments; control
        frames other than close are skipped.  Returns (opcode, payload)."""
        op0, parts = None, []
        while True:
            fin, op, payload, _ = self.recv_frame()
            if op == 0x8:
                raise AssertionError(f"close frame {payload!r} while waiting "
                                     "for a message")
            if op in (0x9, 0xA):
                continue
            if op != 0:
                op0 = op
            parts.append(payload)
            if fin:
                return op0, b"".join(parts)

    def recv_json(self):
        op, payload = self.recv_message()
        assert op == 0x1, f"expected a text message, got opcode {op}"
        return json.loads(payload.decode())

    def recv_close(self):
        """Skip frames until a close frame; return (code, reason, skipped).
        code is None for an empty close payload."""
        skipped = []
        while True:
            fin, op, payload, _ = self.recv_frame()
            if op == 0x8:
                if len(payload) >= 2:
                    return (int.from_bytes(payload[:2], "big"),
                            payload[2:].decode("utf-8", "replace"), skipped)
                return None, "", skipped
            skipped.append((op, payload[:200]))


# ---------------------------------------------------------------- message dialects

async def ws_open_headers(url, headers=None, timeout=T):
    """ws_open with extra request header fields (a list of (name, value))."""
    return await asyncio.wait_for(websockets.connect(
        url, extra_headers=list(headers or []), max_size=None,
        max_queue=4096, compression=None, ping_interval=None,
        open_timeout=timeout, close_timeout=2), timeout)


def ws_worker(ws):
    """(slot, pid) from the X-Roomd-Worker field of ws's 101 response."""
    return parse_worker(ws.response_headers.get("X-Roomd-Worker"))


async def open_on_slot(url, slot=None, headers=None, attempts=60,
                       timeout=10.0):
    """Open url (on worker `slot` if given), closing connections that land
    elsewhere; only for endpoints where opening changes no state.  Returns
    (ws, (slot, pid))."""
    deadline = time.monotonic() + timeout
    for _ in range(attempts):
        ws = await ws_open_headers(url, headers)
        w = ws_worker(ws)
        if slot is None or w[0] == slot:
            return ws, w
        await close_ws(ws)
        if time.monotonic() > deadline:
            break
    pytest.fail(f"no WebSocket to {url} landed on worker slot {slot} "
                f"in {attempts} tries")


async def send_json(ws, obj):
    await ws.send(json.dumps(obj))


async def expect_quiet(ws, quiet=0.3):
    """Fail if any message arrives on ws within `quiet` seconds."""
    try:
        m = await asyncio.wait_for(ws.recv(), quiet)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message: {m!r:.400}")


# ---------------------------------------------------------------- one test's connections

class Conns:
    """The connections of one test, all closed at its end (session())."""

    def __init__(self, d):
        self.d = d
        self.all = []

    async def close(self):
        await close_all(self.all)


def session(d, body, timeout=60.0, conns=Conns, **kw):
    """run(body(c)) with c = conns(d, **kw), whose connections are all
    closed afterwards, whatever happened."""
    async def main():
        c = conns(d, **kw)
        try:
            return await body(c)
        finally:
            await c.close()
    return run(main(), timeout)


def check(m, expected, what="", norm=None):
    """m is expected, with its keys (and those of its "data", if that is an
    object) in the same order; norm(m) first, if given, takes off what is
    not compared."""
    if norm is not None:
        m = norm(m)
    assert m == expected, f"{what}: expected {expected!r}, got {m!r:.600}"
    assert list(m) == list(expected), \
        f"{what}: key order {list(m)} instead of {list(expected)}"
    if isinstance(expected.get("data"), dict):
        assert list(m["data"]) == list(expected["data"]), \
            f"{what}: data key order {list(m['data'])} instead of " \
            f"{list(expected['data'])}"


async def expect(ws, expected, what="", timeout=T, norm=None):
    """Read one JSON message from ws and check() it against expected."""
    try:
        m = await recv_json(ws, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: expected {expected!r}, got nothing "
                             f"within {timeout} s") from None
    except websockets.ConnectionClosed as e:
        raise AssertionError(f"{what}: expected {expected!r}, but the "
                             f"connection closed ({e})") from None
    check(m, expected, what, norm)
    return m


async def quiet(*wss, t=0.3):
    """Fail if a message arrives on any of wss within t seconds."""
    await asyncio.gather(*(expect_quiet(w, t) for w in wss))


async def recv_until(ws, pred, timeout=T):
    """Read JSON messages until pred(message) is true; return (message,
    [messages skipped before it]).  Bounded by timeout in all."""
    skipped = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no awaited message within {timeout} s; "
                                 f"got {skipped!r:.1500}")
        try:
            m = await recv_json(ws, left)
        except asyncio.TimeoutError:
            continue
        if pred(m):
            return m, skipped
        skipped.append(m)


def server_side_states(d, ports):
    """Our local port -> TCP state (hex, "01" established) of roomd's end
    of each connection, from /proc/net/tcp; absent when roomd's socket is
    gone altogether."""
    mine = f"0100007F:{d.port:04X}"
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for ln in f:
            x = ln.split()
            if x[1] == mine and x[2].startswith("0100007F:"):
                p = int(x[2][9:], 16)
                if p in ports:
                    out[p] = x[3]
    return out
