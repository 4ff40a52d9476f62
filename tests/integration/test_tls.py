"""TLS listeners: https:// and wss:// through libevent's OpenSSL bufferevents.

A self-signed certificate (and a second one, for the renewal test) is made
once per session with the openssl command into a temporary directory.  Each
test starts its own daemon with a file that says

    listen 127.0.0.1:PORT tls cert FILE key FILE
    listen 127.0.0.1:PORT2

(the conftest launcher passes -l, which replaces the file's listen lines, so
this module starts its daemons itself, with the same cleanup guarantees).
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import http.client

import pytest
import websockets

from conftest import (assert_error, free_port, parse_worker, poll, roomd_bin,
                      roomd_t, run)

T = 10.0


# ---------------------------------------------------------------- fixtures

def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="session")
def certs():
    """Two self-signed certificates for 127.0.0.1 (cert, key, cert2, key2)
    and a file that is not PEM."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tempfile.TemporaryDirectory(prefix="roomd-tls-")
    out = {}
    try:
        for n, cn in (("", "roomd-test-one"), ("2", "roomd-test-two")):
            cert = os.path.join(d.name, f"cert{n}.pem")
            key = os.path.join(d.name, f"key{n}.pem")
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                     "-subj", f"/CN={cn}", "-addext",
                     "subjectAltName=IP:127.0.0.1,DNS:localhost",
                     "-keyout", key, "-out", cert)
            out["cert" + n] = cert
            out["key" + n] = key
        out["junk"] = os.path.join(d.name, "junk.pem")
        with open(out["junk"], "w") as f:
            f.write("this is not a certificate\n")
        out["dir"] = d.name
        yield out
    finally:
        d.cleanup()


class TlsRoomd:
    """A daemon with one TLS and one plain listener, stopped at teardown."""

    def __init__(self, certs, extra="", workers=2, cert=None, key=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="roomd-tls-it-")
        self.port = free_port()
        self.plain_port = free_port()
        self.workers = workers
        # The certificate files the daemon reads, copies of the session's,
        # so a test may replace them.
        self.cert = os.path.join(self.tmp.name, "cert.pem")
        self.key = os.path.join(self.tmp.name, "key.pem")
        shutil.copy(cert or certs["cert"], self.cert)
        shutil.copy(key or certs["key"], self.key)
        self.conf = os.path.join(self.tmp.name, "roomd.conf")
        with open(self.conf, "w") as f:
            f.write(f"pidfile {self.tmp.name}/roomd.pid\n"
                    f"control_socket {self.tmp.name}/roomd.sock\n"
                    f"listen 127.0.0.1:{self.port} tls cert {self.cert} "
                    f"key {self.key}\n"
                    f"listen 127.0.0.1:{self.plain_port}\n"
                    "mount canvas /canvas\nmount echo /echo\n" + extra)
        self.log_path = os.path.join(self.tmp.name, "roomd.log")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [roomd_bin(), "-f", "-c", self.conf, "-w", str(workers)],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"roomd exited during startup:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.plain_port),
                                         timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"roomd did not start:\n{self.log()}")
                time.sleep(0.05)
        self.ctx = ssl.create_default_context(cafile=certs["cert"])
        self.base = f"https://127.0.0.1:{self.port}"
        self.ws_base = f"wss://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None

    def https(self, method, path, body=None, ctx=None, timeout=5.0):
        c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                        timeout=timeout,
                                        context=ctx or self.ctx)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data else {}
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            payload = r.read()
            return r.status, r.msg, payload
        finally:
            c.close()

    def peer_cert_cn(self):
        """The CN of the certificate a new connection is shown."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) \
                as s, ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
        pem = ssl.DER_cert_to_PEM_cert(der)
        out = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                             input=pem.encode(), capture_output=True,
                             timeout=30, check=True).stdout.decode()
        return out.strip()


@pytest.fixture
def tls_factory(certs):
    started = []

    def make(extra="", workers=2, **kw):
        d = TlsRoomd(certs, extra, workers, **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


async def wss_open(d, path, timeout=T):
    return await asyncio.wait_for(websockets.connect(
        d.ws_base + path, ssl=d.ctx, max_size=None, compression=None,
        ping_interval=None, open_timeout=timeout, close_timeout=2), timeout)


def ws_slot(ws):
    return parse_worker(ws.response_headers.get("X-Roomd-Worker"))[0]


# ---------------------------------------------------------------- HTTPS

def test_https_api_and_static_files(tls_factory):
    d = tls_factory()
    st, hdrs, body = d.https("POST", "/canvas/rooms", {"host": "ann"})
    assert st == 201, body
    room = json.loads(body)
    st, hdrs, body = d.https("GET", "/canvas/rooms")
    assert st == 200 and room["roomId"] in body.decode(), body
    st, hdrs, body = d.https("POST", "/canvas/rooms/nosuchroom/join",
                             {"name": "bob"})
    assert st == 404 and json.loads(body)["error"] == "no_such_room", body
    # A path outside every mount is a static file (or its 404), over TLS.
    st, hdrs, body = d.https("GET", "/no-such-file.html")
    assert st == 404, body
    # The plain listener of the same daemon still speaks plain HTTP.
    c = http.client.HTTPConnection("127.0.0.1", d.plain_port, timeout=5)
    c.request("GET", "/canvas/rooms")
    r = c.getresponse()
    assert r.status == 200 and room["roomId"] in r.read().decode()
    c.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_is_1_2_or_later(tls_factory):
    d = tls_factory()
    ctx = ssl.create_default_context(cafile=d.cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        d.https("GET", "/canvas/rooms", ctx=ctx)
    ctx = ssl.create_default_context(cafile=d.cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    st, _, _ = d.https("GET", "/canvas/rooms", ctx=ctx)
    assert st == 200


def test_plain_http_on_the_tls_port_is_refused_cleanly(tls_factory):
    d = tls_factory()
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"GET /canvas/rooms HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, socket.timeout):
            pass
    # Never an HTTP answer: at most a TLS alert record (type 21), then EOF.
    assert not got.startswith(b"HTTP/"), got
    assert got == b"" or got[0] == 0x15, got
    st, _, _ = d.https("GET", "/canvas/rooms")
    assert st == 200, d.log()
    assert d.proc.poll() is None


# ---------------------------------------------------------------- wss

def test_wss_canvas_round_trip_across_both_workers(tls_factory):
    d = tls_factory()
    st, _, body = d.https("POST", "/canvas/rooms", {"host": "ann"})
    room = json.loads(body)
    rid = room["roomId"]
    toks = [room["token"]]
    for n in ("bob", "cy", "dee", "eve", "fay", "gus", "hal"):
        st, _, body = d.https("POST", f"/canvas/rooms/{rid}/join",
                              {"name": n})
        assert st == 200, body
        toks.append(json.loads(body)["token"])

    async def go():
        wss = []
        try:
            for t in toks:
                ws = await wss_open(d, f"/canvas/rooms/{rid}/ws?token={t}")
                wss.append(ws)
                assert json.loads(await asyncio.wait_for(ws.recv(), T)) == []
            slots = {ws_slot(w) for w in wss}
            if len(slots) < 2:
                pytest.skip(f"all {len(wss)} connections landed on one "
                            "worker")
            acts = [{"moveto": [1, 2]}, {"lineto": [3, 4]}]
            await wss[0].send(json.dumps(acts))
            for w in wss:
                got = []
                while len(got) < 2:
                    got += json.loads(await asyncio.wait_for(w.recv(), T))
                assert [a["pointer"] for a in got] == [1, 2], got
                assert [{k: v for k, v in a.items() if k != "pointer"}
                        for a in got] == acts
            return slots
        finally:
            for w in wss:
                await w.close()

    assert run(go(), 60) == {0, 1}


def test_large_messages_over_tls(tls_factory):
    d = tls_factory()
    big = os.urandom(900 * 1024)
    text = "x" * (700 * 1024)

    async def go():
        ws = await wss_open(d, "/echo")
        try:
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), T) == big
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), T) == text
        finally:
            await ws.close()
    run(go(), 60)

    # A large canvas action reaches another member over TLS too.
    st, _, body = d.https("POST", "/canvas/rooms", {"host": "ann"})
    room = json.loads(body)
    st, _, body = d.https("POST", f"/canvas/rooms/{room['roomId']}/join",
                          {"name": "bob"})
    tok2 = json.loads(body)["token"]
    act = {"text": "y" * (600 * 1024)}

    async def canvas():
        a = await wss_open(d, f"/canvas/rooms/{room['roomId']}/ws"
                              f"?token={room['token']}")
        b = await wss_open(d, f"/canvas/rooms/{room['roomId']}/ws"
                              f"?token={tok2}")
        try:
            await asyncio.wait_for(a.recv(), T)
            await asyncio.wait_for(b.recv(), T)
            await a.send(json.dumps([act]))
            got = json.loads(await asyncio.wait_for(b.recv(), T))
            assert got[0]["text"] == act["text"] and got[0]["pointer"] == 1
        finally:
            await a.close()
            await b.close()
    run(canvas(), 60)


def test_sigterm_closes_wss_with_1001(tls_factory):
    d = tls_factory()

    async def go():
        wss = [await wss_open(d, "/echo") for _ in range(4)]
        for w in wss:
            await w.send("hi")
            assert await asyncio.wait_for(w.recv(), T) == "hi"
        d.proc.send_signal(signal.SIGTERM)
        codes = []
        for w in wss:
            with pytest.raises(websockets.ConnectionClosed) as e:
                await asyncio.wait_for(w.recv(), T)
            codes.append(e.value.rcvd.code if e.value.rcvd else None)
        return codes

    assert run(go(), 30) == [1001] * 4
    assert d.proc.wait(timeout=10) == 0, d.log()


def _recv_exact(t, n):
    b = b""
    while len(b) < n:
        c = t.recv(n - len(b))
        if not c:
            raise ConnectionError("closed")
        b += c
    return b


def _recv_frame(t):
    """One unmasked server frame from a TLS socket: (opcode, payload)."""
    h = _recv_exact(t, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(_recv_exact(t, 2), "big")
    elif n == 127:
        n = int.from_bytes(_recv_exact(t, 8), "big")
    return h[0] & 0x0F, _recv_exact(t, n)


def test_stalled_wss_member_does_not_hold_up_the_room_and_catches_up(
        tls_factory):
    """Over TLS as over TCP: a member that stops reading is not waited for;
    past output_buffer_bytes it is sent nothing more and catches up from
    its pointer once it reads again, every action once, in order."""
    d = tls_factory("output_buffer_bytes 65536\n")
    st, _, body = d.https("POST", "/canvas/rooms", {"host": "ann"})
    room = json.loads(body)
    rid = room["roomId"]
    st, _, body = d.https("POST", f"/canvas/rooms/{rid}/join",
                          {"name": "slow"})
    slow_tok = json.loads(body)["token"]
    nact = 150
    pad = "p" * 8000                    # 150 x 8 KB: far past 64 KB

    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", d.port))
    t = d.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        t.sendall((f"GET /canvas/rooms/{rid}/ws?token={slow_tok} HTTP/1.1"
                   "\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
                   "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _recv_exact(t, 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        op, first = _recv_frame(t)
        assert op == 1 and json.loads(first) == []

        async def go():
            ws = await wss_open(d, f"/canvas/rooms/{rid}/ws?token="
                                   f"{room['token']}")
            try:
                await asyncio.wait_for(ws.recv(), T)
                t0 = time.monotonic()
                for i in range(nact):
                    await ws.send(json.dumps([{"i": i, "pad": pad}]))
                    got = json.loads(await asyncio.wait_for(ws.recv(), T))
                    assert got[0]["i"] == i
                return time.monotonic() - t0
            finally:
                await ws.close()
        took = run(go(), 60)
        assert took < 30
        # Now read: every action exactly once, in order.
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < nact and time.monotonic() < deadline:
            op, payload = _recv_frame(t)
            if op == 1:
                seen += [a["i"] for a in json.loads(payload)]
        assert seen == list(range(nact)), seen[:20]
        assert d.proc.poll() is None
    finally:
        t.close()


# ---------------------------------------------------------------- checks

@pytest.mark.parametrize("case", ["missing_key", "missing_cert",
                                  "mismatched", "junk_cert", "no_key_word",
                                  "cert_without_tls"])
def test_check_rejects_bad_certificates_with_file_and_line(certs, case):
    c, k = certs["cert"], certs["key"]
    line = {
        "missing_key": f"listen 127.0.0.1:8443 tls cert {c} key /nonexistent/k.pem",
        "missing_cert": f"listen 127.0.0.1:8443 tls cert /nonexistent/c.pem key {k}",
        "mismatched": f"listen 127.0.0.1:8443 tls cert {c} key {certs['key2']}",
        "junk_cert": f"listen 127.0.0.1:8443 tls cert {certs['junk']} key {k}",
        "no_key_word": f"listen 127.0.0.1:8443 tls cert {c}",
        "cert_without_tls": f"listen 127.0.0.1:8443 cert {c} key {k}",
    }[case]
    rc, err, conf = roomd_t(f"# a comment\nworkers 1\n{line}\n")
    assert rc == 1, err
    assert f"{conf}:3:" in err, err
    want = {"missing_key": "/nonexistent/k.pem", "missing_cert":
            "/nonexistent/c.pem", "mismatched": certs["key2"],
            "junk_cert": certs["junk"], "no_key_word": "key",
            "cert_without_tls": "tls"}[case]
    assert want in err, err


def test_check_accepts_a_good_tls_listener(certs):
    rc, err, _ = roomd_t(f"listen 127.0.0.1:8443 tls cert {certs['cert']} "
                        f"key {certs['key']}\n")
    assert rc == 0 and "configuration OK" in err, err


# ---------------------------------------------------------------- SIGHUP

def test_sighup_reads_a_renewed_certificate(tls_factory, certs):
    d = tls_factory()
    assert "roomd-test-one" in d.peer_cert_cn()

    # The renewal: new files in place, then SIGHUP.
    shutil.copy(certs["cert2"], d.cert)
    shutil.copy(certs["key2"], d.key)
    d.proc.send_signal(signal.SIGHUP)

    def renewed():
        return all("roomd-test-two" in d.peer_cert_cn() for _ in range(8))
    assert poll(renewed, 10), d.log()
    # A broken renewal is refused and the running certificate kept.
    with open(d.key, "w") as f:
        f.write("garbage\n")
    d.proc.send_signal(signal.SIGHUP)
    assert poll(lambda: "keeping the running" in d.log(), 10), d.log()
    assert all("roomd-test-two" in d.peer_cert_cn() for _ in range(8))
    assert d.proc.poll() is None
