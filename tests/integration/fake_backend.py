"""A fake application backend for the webhook and join check tests.

Python's standard library only.  It serves HTTP on 127.0.0.1 (a free
port) in a thread and offers:

  POST /hook   records a webhook (headers, body, when) in .webhooks and
               answers as .hook_policy says
  POST /auth   records a join check in .checks and answers as
               .auth_policy says (a callable may decide per request)

Policies (strings): "ok", "hang" (never answers, until stop), "garbage"
(200 with a body that is not JSON), "close" (announces a longer body than
it sends, then closes), "redirect" (302 to itself, again and again),
"500"; for /hook, ("fail", n): 500 for the first n webhooks, then ok.  An
/auth policy may also be a dict (the JSON answer) or a callable taking
the request's JSON and returning a policy.

verify() checks a webhook as roomd-protocols(7) tells a backend to:
the HMAC-SHA256 signature over "timestamp.body" with the shared secret,
compared in constant time, and the timestamp no older than a tolerance,
which refuses a replay.
"""
import hashlib
import hmac
import http.server
import json
import threading
import time


class Refused(Exception):
    """A webhook a verifier must refuse."""


def sign(secret, ts, body):
    """The X-Roomd-Signature value of body sent at ts (strings/bytes)."""
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret, headers, body, now=None, tolerance=300):
    """Accept a webhook (headers: a dict, body: bytes) or raise Refused."""
    ts = headers.get("X-Roomd-Timestamp")
    sig = headers.get("X-Roomd-Signature")
    if ts is None or sig is None or not ts.isdigit():
        raise Refused("no timestamp or signature")
    if not hmac.compare_digest(sign(secret, ts, body), sig):
        raise Refused("bad signature")
    now = time.time() if now is None else now
    if abs(now - int(ts)) > tolerance:
        raise Refused("stale timestamp: a replay")
    return json.loads(body)


class FakeBackend:
    def __init__(self):
        self.webhooks = []          # dicts: headers, body, json, at
        self.checks = []            # dicts: headers, json, raw, at
        self.hook_policy = "ok"
        self.auth_policy = "ok"
        self._hook_failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                headers = {k: v for k, v in self.headers.items()}
                if self.path == "/hook":
                    backend._webhook(self, headers, body)
                elif self.path == "/auth":
                    backend._auth(self, headers, body)
                else:
                    self._answer(404, b"")

            def _answer(self, status, body, ctype="application/json",
                        extra=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        daemon=True)
        self._thread.start()

    # -- what roomd.conf needs
    @property
    def hook_url(self):
        return self.url + "/hook"

    @property
    def auth_url(self):
        return self.url + "/auth"

    # -- answers
    def _misbehave(self, h, policy):
        """The bad answers both routes share; True if one was given."""
        if policy == "hang":
            self._stop.wait(60)
            h.close_connection = True
            return True
        if policy == "garbage":
            h._answer(200, b"<html>this is no JSON</html>", "text/html")
            return True
        if policy == "close":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "400")
            h.end_headers()
            h.wfile.write(b'{"allow": tr')
            h.wfile.flush()
            h.close_connection = True
            return True
        if policy == "redirect":
            h._answer(302, b"", extra=(("Location", h.path),))
            return True
        if policy == "500":
            h._answer(500, b'{"error":"down"}')
            return True
        return False

    def _webhook(self, h, headers, body):
        with self._lock:
            policy = self.hook_policy
            if isinstance(policy, tuple) and policy[0] == "fail":
                if self._hook_failures < policy[1]:
                    self._hook_failures += 1
                    policy = "500"
                else:
                    policy = "ok"
            self.webhooks.append({"headers": headers, "body": body,
                                  "at": time.time(), "answered": policy})
        if not self._misbehave(h, policy):
            h._answer(204, b"")

    def _auth(self, h, headers, body):
        try:
            q = json.loads(body)
        except ValueError:
            q = None
        with self._lock:
            self.checks.append({"headers": headers, "json": q,
                                "raw": body, "at": time.time()})
            policy = self.auth_policy
        if callable(policy):
            policy = policy(q)
        if isinstance(policy, dict):
            h._answer(200, json.dumps(policy).encode())
        elif policy == "ok":
            h._answer(200, b'{"allow": true}')
        elif policy == "refuse":
            h._answer(200, b'{"allow": false, "reason": "not on the list"}')
        elif not self._misbehave(h, policy):
            h._answer(500, b"unknown policy")

    # -- for the tests
    def events(self, secret, type=None):
        """The webhooks received, verified, as JSON; of one type if given."""
        with self._lock:
            got = list(self.webhooks)
        out = []
        for w in got:
            if w["answered"] != "ok":
                continue
            e = verify(secret, w["headers"], w["body"])
            if type is None or e["type"] == type:
                out.append(e)
        return out

    def wait_events(self, secret, pred, timeout=10.0):
        """Wait until pred(list of verified events) holds; return them."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.events(secret)
            if pred(ev):
                return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks never satisfied the test "
                                     f"within {timeout} s: {ev!r:.3000}")
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
