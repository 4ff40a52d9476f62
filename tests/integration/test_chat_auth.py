"""Chat sign-in: OAuth 2.0 / OpenID Connect providers, roomd's session
tokens, and what a signed-in user is on the chat WebSocket.

A fake provider (fake_provider.py) serves HTTPS on loopback with a CA made
for the module; roomd trusts it through chat_ca_file.  The client here
never follows a redirect: each step of a sign-in is one request whose
answer is checked, and the provider records what roomd sent it.

Daemons (2 workers each, shared by the module):
  authd   chat_anonymous yes; providers "fake" (OpenID Connect), "gh"
          (OAuth 2.0 + userinfo, GitHub-like), "down" (token endpoint on a
          closed port) and "rogue" (a provider whose certificate roomd does
          not trust); the default redirect URI.
  authb   chat_anonymous no, another session secret, chat_session_ttl 120,
          one chat_admin, provider "fake" with a configured redirect URI.

Placement: an HTTP request is put on a worker by opening a keep-alive
connection, asking a harmless GET first and reading X-Roomd-Worker (the
callback cannot simply be retried: its code is single use).  WebSockets are
opened again until they land on the worker wanted (a stray is the same
signed-in user on one more connection; it joins nothing)."""
import asyncio
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import time
import urllib.parse
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, RawWS, _worker_map, close_ws,
                      expect_close, parse_worker, poll, roomd_t,
                      start_roomd, ws_open_headers, ws_worker)
from fake_provider import (CLIENT_OAUTH, CLIENT_OIDC, FakeProvider, jwt_parts,
                           s256)
from jwt_helper import b64url, b64url_decode
from test_chat import (Client, alive, create, ev_channel, expect_all,
                       expect_error, join, priv_msg, quiet, say, session)

pytestmark = pytest.mark.skipif(
    EXTERNAL_URL is not None,
    reason="needs daemons configured with a fake provider; ROOMD_URL names "
    "an external one")

SECRET_A = "session-secret-A-" + os.urandom(8).hex()
SECRET_B = "session-secret-B-" + os.urandom(8).hex()
TTL_B = 120
COOKIE = "roomd_oauth"
NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SLOTS = pytest.mark.parametrize("slot", [0, 1], ids=["worker0", "worker1"])
JWKS_WAIT = 5.0         # the contract's bound on a worker's first JWKS fetch


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def provider():
    p = FakeProvider("fake").start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def rogue():
    """A provider with a CA of its own, which roomd is not told about."""
    p = FakeProvider("rogue", signing=False).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def misnamed(provider):
    """A provider whose certificate roomd's CA signed, for another name."""
    p = FakeProvider("misnamed", signing=False, ca_from=provider,
                     san="DNS:other.example").start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def closed_port():
    """A loopback port bound but not listening: connections are refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
    finally:
        s.close()


def _daemon(text):
    d = start_roomd(text, 2)
    d.first_workers = _worker_map(d)
    return d


def _stop_checked(d, what):
    """Stop d, failing if it or one of its workers died meanwhile."""
    try:
        alive_ = d.proc.poll() is None
        tail = d.log_tail()
        assert alive_, (f"{what} died (status {d.proc.returncode})\n"
                        f"--- log ---\n{tail}")
        after = _worker_map(d)
        assert d.first_workers is None or after == d.first_workers, (
            f"a worker of {what} was replaced (crashed): slot->pid "
            f"{d.first_workers} became {after}\n--- log ---\n{tail}")
    finally:
        d.stop()


@pytest.fixture(scope="module")
def authd(provider, rogue, misnamed, closed_port):
    dead = f"http://127.0.0.1:{closed_port}"
    conf = (f"chat_ca_file {provider.ca_file}\n"
            f"chat_session_secret {SECRET_A}\n"
            + provider.conf("fake", scope="openid,email,profile")
            + provider.conf("gh", CLIENT_OAUTH, issuer=provider.base + "/gh",
                            scope="read:user,user:email")
            + provider.conf("down", issuer=provider.base + "/down",
                            token=dead + "/token", jwks=dead + "/jwks")
            + provider.conf("nokeys", jwks=dead + "/jwks")
            + provider.conf("ghdown", CLIENT_OAUTH,
                            issuer=provider.base + "/gh",
                            userinfo=dead + "/user")
            + rogue.conf("rogue") + misnamed.conf("misnamed"))
    d = _daemon(conf)
    try:
        yield d
    finally:
        _stop_checked(d, "the sign-in tests' roomd (authd)")


ADMIN = {"sub": "admin-" + os.urandom(6).hex(),
         "preferred_username": "admin-" + os.urandom(4).hex()}
REDIRECT_B = "https://chat.example/chat/auth/fake/callback"


@pytest.fixture(scope="module")
def admin_uid(authd, provider):
    """The identifier of ADMIN, learnt from a sign-in on authd."""
    return login(authd, provider, ADMIN).sub


@pytest.fixture(scope="module")
def authb(provider, admin_uid):
    conf = (f"chat_ca_file {provider.ca_file}\n"
            f"chat_session_secret {SECRET_B}\n"
            f"chat_session_ttl {TTL_B}\n"
            f"chat_anonymous no\n"
            # UUIDs are case-insensitive on input (RFC 4122, 3)
            f"chat_admin {admin_uid.upper()}\n"
            + provider.conf("fake", redirect=REDIRECT_B))
    d = _daemon(conf)
    try:
        yield d
    finally:
        _stop_checked(d, "the sign-in tests' second roomd (authb)")


# ---------------------------------------------------------------- HTTP

class Resp:
    def __init__(self, method, path, status, headers, body, slot):
        self.method, self.path = method, path
        self.status, self.headers, self.body = status, headers, body
        self.slot = slot
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def cookies(self):
        """[(name, value, {attribute: value})] of every Set-Cookie."""
        out = []
        for line in self.headers.get_all("Set-Cookie") or []:
            parts = [x.strip() for x in line.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {}
            for a in parts[1:]:
                k, _, v = a.partition("=")
                attrs[k.strip().lower()] = v.strip()
            out.append((name.strip(), value.strip(), attrs))
        return out

    def __repr__(self):
        return (f"<{self.method} {self.path} (worker {self.slot}) -> "
                f"{self.status} {dict(self.headers.items())} "
                f"{self.body[:400]!r}>")


def _conn_on(d, slot, attempts=80):
    """A keep-alive connection served by worker slot."""
    for _ in range(attempts):
        c = http.client.HTTPConnection(d.host, d.port, timeout=5)
        try:
            c.request("GET", "/canvas/rooms")
            r = c.getresponse()
            r.read()
            s, _ = parse_worker(r.getheader("X-Roomd-Worker"))
            if s == slot and not r.will_close:
                return c
        except BaseException:
            c.close()
            raise
        c.close()
    pytest.fail(f"no HTTP connection landed on worker slot {slot}")


def request(d, method, path, headers=None, body=None, slot=None):
    """One request (on worker slot if given)."""
    if slot is None:
        c = http.client.HTTPConnection(d.host, d.port, timeout=10)
    else:
        c = _conn_on(d, slot)
    try:
        c.request(method, path, body=body, headers=dict(headers or {}))
        r = c.getresponse()
        data = r.read()
        w = r.getheader("X-Roomd-Worker")
        return Resp(method, path, r.status, r.msg, data,
                    parse_worker(w)[0] if w else None)
    finally:
        c.close()


def auth_error(r, status, code):
    """r is status with the JSON body {"error": code, "message": text}."""
    assert r.status == status, f"expected {status} {code}: {r!r}"
    ct = (r.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ct == "application/json", f"not application/json: {r!r}"
    assert isinstance(r.json, dict), f"body is not a JSON object: {r!r}"
    assert r.json.get("error") == code, f"expected error {code!r}: {r!r}"
    assert isinstance(r.json.get("message"), str) and r.json["message"], \
        f"no message: {r!r}"


def provider_get(p, url):
    """GET url on the fake provider (as the browser would), not following
    the redirect.  -> (status, Location)."""
    u = urllib.parse.urlsplit(url)
    assert f"{u.scheme}://{u.netloc}" == p.base, f"not {p.base}: {url}"
    ctx = ssl.create_default_context(cafile=p.ca_file)
    c = http.client.HTTPSConnection("127.0.0.1", p.port, context=ctx,
                                    timeout=10)
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Location")
    finally:
        c.close()


def query_of(url):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query,
                              keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in q.items()}


def start(d, name="fake", ret=None, slot=None, host=None):
    """GET /chat/auth/NAME/login -> (Resp, cookie value, authorize query)."""
    q = "" if ret is None else "?" + urllib.parse.urlencode({"return": ret})
    hdrs = {"Host": host} if host else {}
    r = request(d, "GET", f"/chat/auth/{name}/login{q}", hdrs, slot=slot)
    assert r.status == 302, f"login: expected 302: {r!r}"
    ours = [c for c in r.cookies() if c[0] == COOKIE]
    assert len(ours) == 1, f"login: one {COOKIE} cookie expected: {r!r}"
    return r, ours[0][1], query_of(r.header("Location"))


def callback(d, name, query, cookie=None, slot=None):
    hdrs = {} if cookie is None else {"Cookie": f"{COOKIE}={cookie}"}
    return request(d, "GET", f"/chat/auth/{name}/callback?{query}", hdrs,
                   slot=slot)


def verify_session_token(token, secret):
    """The claims of a roomd session token, its HS256 signature checked."""
    h, p, s = token.split(".")
    header, claims = jwt_parts(token)
    assert header.get("alg") == "HS256", f"session token header {header}"
    want = hmac.new(secret.encode(), f"{h}.{p}".encode(),
                    hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(s), want), \
        "session token signature is not HMAC-SHA256 with chat_session_secret"
    return claims


def assert_v5(uid, what=""):
    assert isinstance(uid, str), f"{what}: identifier {uid!r}"
    u = uuid.UUID(uid)
    assert str(u) == uid.lower() and u.version == 5, \
        f"{what}: identifier {uid!r} is not a version 5 UUID"


class Login:
    """One finished sign-in: .start .cookie .params (roomd's redirect),
    .code .state (the provider's), .cb (roomd's answer to the callback),
    .token .claims .sub .name (the session token)."""


def login(d, p, user=None, name="fake", ret=None, knobs=(), login_slot=None,
          cb_slot=None, secret=SECRET_A, expect=302):
    """A whole sign-in as user (claims for the OIDC provider; for "gh" the
    userinfo answer).  With expect other than 302 the callback's Resp is
    returned in .cb and nothing more is checked."""
    f = Login()
    if user is not None:
        if name.startswith("gh"):
            p.userinfo_user = dict(user)
        else:
            p.next_user = dict(user)
    f.start, f.cookie, f.params = start(d, name, ret, login_slot)
    status, loc = provider_get(p, f.start.header("Location"))
    assert status == 302, f"provider /authorize: {status} {loc}"
    assert loc.startswith(f.params["redirect_uri"] + "?"), loc
    q = query_of(loc)
    assert "code" in q, f"provider refused: {loc}"
    f.code, f.state = q["code"], q["state"]
    p.misbehave = set(knobs)
    try:
        f.cb = callback(d, name, urllib.parse.urlsplit(loc).query, f.cookie,
                        cb_slot)
    finally:
        p.misbehave = set()
    if expect != 302:
        return f
    assert f.cb.status == 302, f"callback: expected 302: {f.cb!r}"
    loc = f.cb.header("Location")
    want = (ret or "/chat.html") + "#token="
    assert loc.startswith(want), f"callback Location {loc!r}, wanted {want}"
    f.token = loc[len(want):]
    f.claims = (verify_session_token(f.token, secret) if secret is not None
                else jwt_parts(f.token)[1])
    f.sub, f.name = f.claims.get("sub"), f.claims.get("name")
    return f


_TAG = os.urandom(3).hex()
_N = [0]


def new_user(stem="u", **claims):
    """Claims of a user unique to the run: a fresh subject and a fresh
    preferred_username (unless given)."""
    _N[0] += 1
    u = {"sub": f"{stem}-{_N[0]}-{os.urandom(6).hex()}",
         "preferred_username": f"{stem}{_N[0]}-{_TAG}"}
    u.update(claims)
    return {k: v for k, v in u.items() if v is not None}


# ---------------------------------------------------------------- WebSocket

def chat_path(token=None, name=None):
    q = {}
    if token is not None:
        q["token"] = token
    if name is not None:
        q["name"] = name
    return "/chat" + ("?" + urllib.parse.urlencode(q) if q else "")


async def open_user(c, token, name, slot=None, header=False,
                    wait=0.0, attempts=60):
    """A signed-in connection as name (on worker slot if given); the token
    in the query or in Authorization.  401 is retried for `wait` seconds
    (a worker still fetching the JWKS)."""
    if header:
        url, hdrs = c.d.ws_base + "/chat", [("Authorization",
                                              f"Bearer {token}")]
    else:
        url, hdrs = c.d.ws_base + chat_path(token), []
    deadline = time.monotonic() + wait
    for _ in range(attempts):
        try:
            ws = await ws_open_headers(url, hdrs)
        except websockets.InvalidStatusCode as e:
            if e.status_code != 401 or time.monotonic() > deadline:
                raise AssertionError(f"{name}: handshake refused with "
                                     f"{e.status_code}") from None
            await asyncio.sleep(0.1)
            continue
        c.all.append(ws)
        if slot is None or ws_worker(ws)[0] == slot:
            return Client(ws, name)
        await close_ws(ws)
    pytest.fail(f"no chat connection landed on worker slot {slot}")


def handshake(d, path, headers=()):
    """A raw upgrade request -> (status, headers, JSON body or None)."""
    with RawWS(d) as raw:
        status, hdrs, _ = raw.handshake(path, extra=list(headers))
        body = raw.read_body(hdrs) if status != 101 else b""
    try:
        js = json.loads(body) if body else None
    except ValueError:
        js = None
    return status, hdrs, js


def assert_refused_401(d, path, headers=(), what=""):
    status, hdrs, js = handshake(d, path, headers)
    assert status == 401, f"{what}: expected 401, got {status} {hdrs} {js}"
    assert isinstance(js, dict) and isinstance(js.get("error"), str), \
        f"{what}: 401 without a JSON error: {hdrs} {js!r}"
    assert "sec-websocket-accept" not in hdrs, f"{what}: {hdrs}"


@pytest.fixture(scope="module")
def warm(authd, provider):
    """Both workers of authd have the JWKS: an ID token given directly is
    accepted on each (within JWKS_WAIT)."""
    u = new_user("warm")

    async def body(c):
        for slot in (0, 1):
            cl = await open_user(c, provider.id_token(u),
                                 u["preferred_username"], slot=slot,
                                 wait=JWKS_WAIT)
            await alive(cl)
    session(authd, body)
    return True


# ---------------------------------------------------------------- providers

def test_providers_lists_every_provider_and_anonymous(authd, authb):
    r = request(authd, "GET", "/chat/auth/providers")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    assert set(r.json) == {"providers", "anonymous"}, r
    assert r.json["anonymous"] is True, r
    got = sorted(r.json["providers"], key=lambda x: x.get("name", ""))
    assert got == [{"name": n, "login": f"/chat/auth/{n}/login"}
                   for n in ("down", "fake", "gh", "ghdown", "misnamed",
                             "nokeys", "rogue")], r
    r = request(authb, "GET", "/chat/auth/providers")
    assert r.status == 200 and r.json == {
        "providers": [{"name": "fake", "login": "/chat/auth/fake/login"}],
        "anonymous": False}, r


# ---------------------------------------------------------------- login

@SLOTS
def test_login_redirects_to_authorize_with_pkce_state_nonce_and_cookie(
        authd, provider, slot):
    r, cookie, q = start(authd, slot=slot)
    loc = r.header("Location")
    assert loc.split("?", 1)[0] == provider.base + "/authorize", loc
    assert set(q) == {"response_type", "client_id", "redirect_uri", "scope",
                      "state", "nonce", "code_challenge",
                      "code_challenge_method"}, loc
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_OIDC
    assert q["redirect_uri"] == (f"http://127.0.0.1:{authd.port}"
                                 "/chat/auth/fake/callback"), q
    assert q["scope"] == "openid email profile", q
    assert q["code_challenge_method"] == "S256", q
    # a SHA-256 digest in base64url without padding is 43 characters
    assert re.match(r"^[A-Za-z0-9_-]{43}$", q["code_challenge"]), q
    assert len(q["state"]) >= 16 and len(q["nonce"]) >= 16, q
    (name, value, attrs), = [c for c in r.cookies() if c[0] == COOKIE]
    assert value, r
    assert attrs.get("path") == "/chat/auth/fake", r
    assert "httponly" in attrs, r
    assert attrs.get("samesite", "").lower() == "lax", r
    assert attrs.get("max-age") == "600", r
    # every login is a fresh one
    r2, cookie2, q2 = start(authd, slot=1 - slot)
    for k in ("state", "nonce", "code_challenge"):
        assert q[k] != q2[k], f"{k} repeated across logins: {q[k]}"
    assert cookie != cookie2


def test_default_redirect_uri_follows_the_host_header(authd):
    _, _, q = start(authd, host="chat.example:8080")
    assert q["redirect_uri"] == \
        "http://chat.example:8080/chat/auth/fake/callback", q


def test_configured_redirect_uri_is_used(authb, provider):
    m = provider.mark()
    f = login(authb, provider, new_user("redir"), secret=SECRET_B)
    assert f.params["redirect_uri"] == REDIRECT_B, f.params
    tok, = provider.since(m, "/token")
    assert tok["form"]["redirect_uri"] == REDIRECT_B, tok["form"]


def test_login_to_an_unknown_provider_is_404(authd):
    r = request(authd, "GET", "/chat/auth/nosuch/login")
    auth_error(r, 404, "no_such_provider")


@pytest.mark.parametrize("ret", ["//evil.example/x", "https://evil.example/",
                                 "http:/evil", "chat.html", "evil.example"],
                         ids=["protocol-relative", "absolute", "scheme",
                              "relative", "host"])
def test_login_with_a_return_that_is_not_a_local_path_is_400(authd, ret):
    q = urllib.parse.urlencode({"return": ret})
    r = request(authd, "GET", f"/chat/auth/fake/login?{q}")
    auth_error(r, 400, "bad_request")
    assert not [c for c in r.cookies() if c[0] == COOKIE], r


# ---------------------------------------------------------------- callback

@pytest.mark.parametrize("login_slot,cb_slot", [(0, 1), (1, 0), (1, 1)],
                         ids=["0-then-1", "1-then-0", "1-then-1"])
def test_sign_in_gives_a_session_token_and_clears_the_cookie(
        authd, provider, login_slot, cb_slot):
    u = new_user("flow")
    m = provider.mark()
    f = login(authd, provider, u, login_slot=login_slot, cb_slot=cb_slot)
    assert f.cb.slot == cb_slot and f.start.slot == login_slot
    c = f.claims
    assert c.get("iss") == "roomd", c
    assert_v5(c.get("sub"), "session token sub")
    assert c.get("name") == u["preferred_username"], c
    now = time.time()
    assert isinstance(c.get("exp"), int) and \
        now + 86400 - 120 <= c["exp"] <= now + 86400 + 5, c
    cleared = [x for x in f.cb.cookies() if x[0] == COOKIE]
    assert len(cleared) == 1, f"callback does not clear {COOKIE}: {f.cb!r}"
    _, value, attrs = cleared[0]
    assert attrs.get("max-age") == "0" or "expires" in attrs, f.cb
    assert attrs.get("path") == "/chat/auth/fake", f.cb
    # what the provider saw: one authorize, one token request, no userinfo
    auth, = provider.since(m, "/authorize")
    tok, = provider.since(m, "/token")
    assert not provider.since(m, "/userinfo")
    assert auth["query"] == f.params
    form = tok["form"]
    assert form is not None, f"token request not a form: {tok}"
    assert form.get("grant_type") == "authorization_code", form
    assert form.get("code") == f.code, form
    assert form.get("redirect_uri") == f.params["redirect_uri"], form
    assert form.get("client_id") == CLIENT_OIDC, form
    assert form.get("client_secret") == provider.secret(), form
    assert tok["response"][0] == 200, tok["response"]


def test_requests_to_the_provider_name_its_host_and_port(authd, provider):
    """HTTP/1.1 (RFC 9110, 7.2): Host carries the port when it is not the
    scheme's default; a provider behind name-based virtual hosting needs
    it."""
    m = provider.mark()
    login(authd, provider, new_user("host"))
    tok, = provider.since(m, "/token")
    assert tok["headers"].get("host") == f"127.0.0.1:{provider.port}", \
        tok["headers"]


def test_pkce_verifier_matches_the_challenge(authd, provider):
    m = provider.mark()
    f = login(authd, provider, new_user("pkce"))
    auth, = provider.since(m, "/authorize")
    tok, = provider.since(m, "/token")
    v = tok["form"].get("code_verifier")
    assert v is not None, f"no code_verifier sent: {tok['form']}"
    # RFC 7636: 43 to 128 unreserved characters
    assert re.match(r"^[A-Za-z0-9._~-]{43,128}$", v), v
    assert s256(v) == auth["query"]["code_challenge"] == \
        f.params["code_challenge"]
    # the verifier is not in the redirect through the browser
    assert v not in f.start.header("Location")


def test_return_path_is_kept(authd, provider):
    ret = "/rooms.html?room=r1&x=%2F"
    f = login(authd, provider, new_user("ret"), ret=ret)
    assert f.cb.header("Location").startswith(ret + "#token="), f.cb


def login_params(d, p, user, name="fake"):
    """Login and authorize, without the callback: (cookie, provider's
    redirect query string, code, state)."""
    p.next_user = dict(user)
    _, cookie, q = start(d, name)
    status, loc = provider_get(p, urllib.parse.urlunsplit(
        urllib.parse.urlsplit(p.base + "/authorize")._replace(
            query=urllib.parse.urlencode(q))))
    assert status == 302, loc
    qs = urllib.parse.urlsplit(loc).query
    pq = query_of(loc)
    return cookie, qs, pq["code"], pq["state"]


@SLOTS
def test_state_mismatch_is_400_bad_state_and_no_code_is_redeemed(
        authd, provider, slot):
    cookie1, _, _, _ = login_params(authd, provider, new_user("st"))
    _, qs2, _, _ = login_params(authd, provider, new_user("st"))
    m = provider.mark()
    r = callback(authd, "fake", qs2, cookie1, slot)
    auth_error(r, 400, "bad_state")
    assert not provider.since(m, "/token"), "a code was redeemed"


@SLOTS
def test_missing_cookie_is_400_bad_state(authd, provider, slot):
    _, qs, _, _ = login_params(authd, provider, new_user("nc"))
    m = provider.mark()
    r = callback(authd, "fake", qs, None, slot)
    auth_error(r, 400, "bad_state")
    assert not provider.since(m, "/token"), "a code was redeemed"


def flip(s):
    """s with one character in its middle changed."""
    i = len(s) // 2
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


@pytest.mark.parametrize("how", ["tampered", "garbage", "empty",
                                 "other-provider"])
def test_bad_cookie_is_400_bad_state(authd, provider, how):
    cookie, qs, _, state = login_params(authd, provider, new_user("bc"))
    if how == "other-provider":
        # a sign-in through gh started with the same state: its cookie
        # must not serve fake's callback
        r = request(authd, "GET", "/chat/auth/gh/login")
        bad = [c for c in r.cookies() if c[0] == COOKIE][0][1]
        q = query_of(r.header("Location"))
        qs = urllib.parse.urlencode({"code": query_of("?" + qs)["code"],
                                     "state": q["state"]})
    else:
        bad = {"tampered": flip(cookie), "garbage": "x" * 40,
               "empty": ""}[how]
    m = provider.mark()
    r = callback(authd, "fake", qs, bad)
    auth_error(r, 400, "bad_state")
    assert not provider.since(m, "/token"), "a code was redeemed"


def test_provider_error_is_401_provider_error(authd, provider):
    provider.deny = "access_denied"
    try:
        p = provider
        _, cookie, q = start(authd)
        status, loc = provider_get(p, p.base + "/authorize?" +
                                   urllib.parse.urlencode(q))
    finally:
        provider.deny = None
    assert query_of(loc).get("error") == "access_denied", loc
    m = provider.mark()
    r = callback(authd, "fake", urllib.parse.urlsplit(loc).query, cookie)
    auth_error(r, 401, "provider_error")
    assert not provider.since(m, "/token")


@SLOTS
def test_replayed_code_is_401_provider_error(authd, provider, slot):
    f = login(authd, provider, new_user("replay"))
    # a new sign-in (new cookie and state) carrying the spent code: roomd
    # asks the token endpoint, which refuses it
    _, cookie2, q2 = start(authd)
    m = provider.mark()
    r = callback(authd, "fake", urllib.parse.urlencode(
        {"code": f.code, "state": q2["state"]}), cookie2, slot)
    auth_error(r, 401, "provider_error")
    tok, = provider.since(m, "/token")
    assert tok["form"]["code"] == f.code
    assert tok["response"][0] == 400 and \
        tok["response"][1]["error"] == "invalid_grant", tok["response"]
    # the very same callback again gives no session either
    r = callback(authd, "fake", urllib.parse.urlencode(
        {"code": f.code, "state": f.state}), f.cookie)
    assert r.status in (400, 401) and r.json and \
        r.json.get("error") in ("bad_state", "provider_error"), r
    assert "#token=" not in (r.header("Location") or "")


BAD_ID_TOKENS = ["forge", "wrong_aud", "wrong_iss", "expired", "wrong_nonce",
                 "alg_none", "unknown_kid", "no_exp", "kid_mismatch",
                 "hs256"]


@SLOTS
@pytest.mark.parametrize("knob", BAD_ID_TOKENS)
def test_bad_id_token_is_401_bad_id_token(authd, provider, knob, slot):
    m = provider.mark()
    f = login(authd, provider, new_user("bad"), knobs=[knob], cb_slot=slot,
              expect=401)
    tok, = provider.since(m, "/token")
    assert tok["response"][0] == 200, "the fake refused the code itself"
    auth_error(f.cb, 401, "bad_id_token")
    assert "#token=" not in (f.cb.header("Location") or "")


@SLOTS
def test_es256_id_token_is_accepted(authd, provider, slot):
    m = provider.mark()
    u = new_user("es")
    f = login(authd, provider, u, knobs=["es256"], cb_slot=slot)
    tok, = provider.since(m, "/token")
    h, _ = jwt_parts(tok["response"][1]["id_token"])
    assert h["alg"] == "ES256" and h["kid"] == "ec1", h
    assert f.name == u["preferred_username"]
    # the same person as with an RS256 token
    assert f.sub == login(authd, provider, u).sub


@SLOTS
def test_userinfo_provider_github_like(authd, provider, slot):
    uid = 900000 + int.from_bytes(os.urandom(3), "big")
    gh = {"id": uid, "login": f"octo{_TAG}", "name": "Mona Lisa"}
    m = provider.mark()
    f = login(authd, provider, gh, name="gh", cb_slot=slot)
    auth, = provider.since(m, "/authorize")
    assert auth["query"]["client_id"] == CLIENT_OAUTH
    assert auth["query"]["scope"] == "read:user user:email", auth["query"]
    tok, = provider.since(m, "/token")
    assert tok["form"].get("client_secret") == provider.secret(CLIENT_OAUTH)
    assert s256(tok["form"].get("code_verifier", "")) == \
        auth["query"]["code_challenge"]
    ui, = provider.since(m, "/userinfo")
    assert ui["headers"].get("authorization") == \
        "Bearer " + tok["response"][1]["access_token"], ui["headers"]
    assert f.name == gh["login"], f.claims
    assert_v5(f.sub, "gh")
    # the same GitHub user again: the same identifier; another: another
    assert login(authd, provider, gh, name="gh").sub == f.sub
    other = dict(gh, id=uid + 1, login=f"octo2{_TAG}")
    assert login(authd, provider, other, name="gh").sub != f.sub
    # an OpenID user whose subject is the same number, at another issuer
    same_sub = login(authd, provider, new_user("num", sub=str(uid)))
    assert same_sub.sub != f.sub, "issuer ignored in the identifier"


def test_identifier_is_stable_per_subject_and_differs_between_subjects(
        authd, provider):
    u = new_user("stable")
    a = login(authd, provider, u, cb_slot=0)
    b = login(authd, provider, dict(u, preferred_username=u[
        "preferred_username"] + "x", name="Renamed"), cb_slot=1)
    assert_v5(a.sub, "first login")
    assert a.sub == b.sub, "same subject, other identifier"
    assert b.name == u["preferred_username"] + "x"
    v = login(authd, provider, dict(u, sub=u["sub"] + "-2"))
    assert_v5(v.sub, "other subject")
    assert v.sub != a.sub


NAMES = {
    "preferred-username-cleaned": ({"preferred_username": "Ada.Love lace!",
                                    "nickname": "nick", "name": "N"},
                                   "AdaLovelace"),
    "nickname": ({"nickname": "nick_1-x", "name": "Full Name",
                  "email": "e@example.org"}, "nick_1-x"),
    "name": ({"name": "Grace B. Hopper", "email": "g@example.org"},
             "GraceBHopper"),
    "email-local-part": ({"email": "a.b-c+d_e@example.org"}, "ab-cd_e"),
    "cut-to-64": ({"preferred_username": "p" * 70 + "q"}, "p" * 64),
    "nothing-left": ({"name": "\u00c6\u00d8 \u00f8!"}, None),
    "no-name-claim": ({}, None),
}


@pytest.mark.parametrize("kind", list(NAMES))
def test_chat_name_from_claims(authd, provider, kind):
    claims, want = NAMES[kind]
    u = {"sub": f"name-{kind}-{os.urandom(6).hex()}"}
    u.update(claims)
    f = login(authd, provider, u)
    if want is None:
        want = "user-" + f.sub.replace("-", "")[:8]
    assert f.name == want, f.claims
    assert NAME_OK.match(f.name), f.name


@SLOTS
def test_browser_leaving_during_the_token_request_harms_nothing(
        authd, provider, slot):
    """The browser's connection closes while roomd waits for the token
    endpoint: the answer comes to nobody, and the worker lives on."""
    cookie, qs, _, _ = login_params(authd, provider, new_user("gone"))
    m = provider.mark()
    provider.token_delay = 1.0
    try:
        c = _conn_on(authd, slot)
        c.request("GET", f"/chat/auth/fake/callback?{qs}",
                  headers={"Cookie": f"{COOKIE}={cookie}"})
        assert poll(lambda: provider.since(m, "/token"), 5), \
            "roomd never asked the token endpoint"
        c.close()
        # the provider answers after the browser left
        assert poll(lambda: provider.since(m, "/token")[0]["response"], 5)
    finally:
        provider.token_delay = 0.0
    time.sleep(0.3)
    assert _worker_map(authd) == authd.first_workers, authd.log_tail(8)
    f = login(authd, provider, new_user("after"), cb_slot=slot)
    assert f.cb.slot == slot


# ---------------------------------------------------------------- unreachable

@pytest.mark.parametrize("name", ["down", "rogue", "misnamed"],
                         ids=["closed-port", "untrusted-certificate",
                              "certificate-for-another-name"])
def test_unreachable_token_endpoint_is_502(authd, rogue, misnamed, name):
    _, cookie, q = start(authd, name)
    rogue = {"rogue": rogue, "misnamed": misnamed}.get(name)
    m = rogue.mark() if rogue else 0
    t0 = time.monotonic()
    r = callback(authd, name, urllib.parse.urlencode(
        {"code": "c0de", "state": q["state"]}), cookie)
    auth_error(r, 502, "provider_unreachable")
    assert time.monotonic() - t0 < 10
    if rogue is not None:
        assert not rogue.since(m), \
            "roomd talked HTTP to a provider whose certificate it must refuse"
        # the rogue notes the refused handshake in its own thread, maybe
        # after roomd has answered
        assert poll(lambda: rogue.tls_failures, 3), \
            "no TLS handshake reached the rogue"
        want = {"rogue": "unknown ca", "misnamed": "bad certificate"}
        assert any(want[name] in f["error"].lower()
                   for f in rogue.tls_failures), rogue.tls_failures


@pytest.mark.parametrize("name", ["nokeys", "ghdown"],
                         ids=["key-set", "userinfo"])
def test_unreachable_keys_or_userinfo_is_502(authd, provider, name):
    """The code is good, but the key set (OpenID) or the user endpoint
    (OAuth) is on a closed port."""
    m = provider.mark()
    user = new_user("kd") if name == "nokeys" else {
        "id": 700000 + _N[0], "login": f"kd{_TAG}"}
    f = login(authd, provider, user, name=name, expect=502)
    auth_error(f.cb, 502, "provider_unreachable")
    tok, = provider.since(m, "/token")
    assert tok["response"][0] == 200


# ---------------------------------------------------------------- WebSocket

@pytest.mark.parametrize("s1,s2", [(0, 1), (1, 0)],
                         ids=["0-and-1", "1-and-0"])
def test_signed_in_users_chat_across_workers(authd, provider, s1, s2):
    ua, ub = new_user("ann"), new_user("bob")
    fa = login(authd, provider, ua, cb_slot=s1)
    fb = login(authd, provider, ub, cb_slot=s2)

    async def body(c):
        a = await open_user(c, fa.token, fa.name, slot=s1)
        b = await open_user(c, fb.token, fb.name, slot=s2, header=True)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        assert a.uid == fa.sub and b.uid == fb.sub, (a.uid, b.uid)
        await say(a, ch, "hello from a", 1, [b])
        await say(b, ch, "hello from b", 2, [a])
        await b.say("@" + a.name, "psst")
        await expect_all([a, b], priv_msg(b, "@" + a.name, "psst"))
        await quiet(a, b)
    session(authd, body)


def test_identifier_is_the_same_on_every_login_connection_and_worker(
        authd, provider):
    u = new_user("same")
    logins = [login(authd, provider, u, cb_slot=s) for s in (0, 1)]

    async def body(c):
        seen = []
        for f, slot in zip(logins, (1, 0)):
            cl = await open_user(c, f.token, f.name, slot=slot)
            await alive(cl)
            seen.append(cl.uid)
        assert seen == [logins[0].sub] * 2, (seen, logins[0].sub)
    session(authd, body)


def test_anonymous_and_signed_in_users_together(authd, provider):
    f = login(authd, provider, new_user("mix"))

    async def body(c):
        s = await open_user(c, f.token, f.name, slot=0)
        a = await c.open(slot=1)
        await alive(a)
        assert a.uid != f.sub
        await s.say("@" + a.name, "hi guest")
        s.uid = f.sub
        await expect_all([a, s], priv_msg(s, "@" + a.name, "hi guest"))
    session(authd, body)


@SLOTS
@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
def test_id_token_directly_on_the_websocket(authd, provider, slot, header):
    u = new_user("direct")
    want = login(authd, provider, u).sub

    async def body(c):
        cl = await open_user(c, provider.id_token(u), u["preferred_username"],
                             slot=slot, header=header, wait=JWKS_WAIT)
        await alive(cl)
        assert cl.uid == want, "ID token and session token disagree"
        # ES256 too
        cl2 = await open_user(c, provider.id_token(u, knobs=["es256"]),
                              u["preferred_username"], slot=1 - slot,
                              header=header, wait=JWKS_WAIT)
        await alive(cl2)
        assert cl2.uid == want
    session(authd, body)


def _mint(claims, secret, header=None):
    hdr = header or {"alg": "HS256", "typ": "JWT"}
    si = (b64url(json.dumps(hdr, separators=(",", ":"))) + "." +
          b64url(json.dumps(claims, separators=(",", ":"))))
    sig = hmac.new(secret.encode(), si.encode(), hashlib.sha256).digest()
    return si + "." + b64url(sig)


def _session_claims(name, ttl=300):
    return {"iss": "roomd", "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "name": name, "exp": int(time.time()) + ttl}


def test_session_token_signed_with_chat_session_secret_is_accepted(authd):
    """The contract's session token: HS256 over chat_session_secret with
    the claims iss "roomd", sub, name and exp, nothing more."""
    claims = _session_claims(f"minted-{_TAG}")
    status, hdrs, js = handshake(authd, chat_path(_mint(claims, SECRET_A)))
    if status != 101:
        # say which extra claim roomd wants, to make the failure useful
        extra = {"aud": "roomd-chat"}
        s2, _, _ = handshake(authd, chat_path(_mint(dict(claims, **extra),
                                                    SECRET_A)))
        pytest.fail(f"a session token with the claims {sorted(claims)} is "
                    f"refused ({status} {js}); with {extra} added: {s2}")

    async def body(c):
        cl = await open_user(c, _mint(claims, SECRET_A), claims["name"])
        await alive(cl)
        assert cl.uid == claims["sub"]
    session(authd, body)


@pytest.mark.parametrize("kind", [
    "other-secret", "expired", "no-exp", "tampered", "alg-none",
    "other-issuer", "garbage"])
@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
def test_bad_session_token_is_401(authd, kind, header):
    claims = _session_claims(f"bad-{kind}-{_TAG}")
    tok = {
        "other-secret": lambda: _mint(claims, SECRET_B),
        "expired": lambda: _mint(dict(claims, exp=int(time.time()) - 60),
                                 SECRET_A),
        "no-exp": lambda: _mint({k: v for k, v in claims.items()
                                 if k != "exp"}, SECRET_A),
        "tampered": lambda: _mint(claims, SECRET_A).split(".")[0] + "." +
        b64url(json.dumps(dict(claims, name="mallory"))) + "." +
        _mint(claims, SECRET_A).split(".")[2],
        "alg-none": lambda: ".".join(_mint(claims, SECRET_A, {
            "alg": "none", "typ": "JWT"}).split(".")[:2]) + ".",
        "other-issuer": lambda: _mint(dict(claims, iss="elsewhere"),
                                      SECRET_A),
        "garbage": lambda: "not.a.token",
    }[kind]()
    if header:
        assert_refused_401(authd, "/chat", [("Authorization",
                                             f"Bearer {tok}")], kind)
    else:
        assert_refused_401(authd, "/chat?" + urllib.parse.urlencode(
            {"token": tok}), (), kind)


@pytest.mark.parametrize("knob", [k for k in BAD_ID_TOKENS
                                  if k != "wrong_nonce"])
@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
def test_bad_id_token_directly_on_the_websocket_is_401(authd, provider, warm,
                                                       knob, header):
    tok = provider.id_token(new_user("badws"), knobs=[knob])
    for _ in range(4):      # both workers, whichever serves each attempt
        if header:
            assert_refused_401(authd, "/chat", [("Authorization",
                                                 f"Bearer {tok}")], knob)
        else:
            assert_refused_401(authd, chat_path(tok), (), knob)


def test_id_token_whose_aud_array_contains_the_client_is_accepted(
        authd, provider, warm):
    u = new_user("audarr")

    async def body(c):
        cl = await open_user(c, provider.id_token(
            u, aud=["someone-else", CLIENT_OIDC]), u["preferred_username"])
        await alive(cl)
        assert_v5(cl.uid, "aud array")
    session(authd, body)


def test_id_token_for_another_client_is_401(authd, provider, warm):
    # minted for the OAuth client's audience: not one of roomd's OIDC
    # providers' client ids
    tok = provider.id_token(new_user("aud"), aud=CLIENT_OAUTH)
    assert_refused_401(authd, chat_path(tok), (), "aud gh-client")


def test_login_cookie_is_not_a_session_token(authd):
    """The login cookie is signed with the same secret: it must not open
    the chat."""
    _, cookie, _ = start(authd)
    assert_refused_401(authd, chat_path(cookie), (), "login cookie")
    assert_refused_401(authd, "/chat", [("Authorization",
                                         f"Bearer {cookie}")],
                       "login cookie in Authorization")


def test_session_tokens_of_one_daemon_are_refused_by_another(authd, authb,
                                                            provider):
    u = new_user("cross")
    fa = login(authd, provider, u)
    fb = login(authb, provider, u, secret=SECRET_B)
    assert fa.sub == fb.sub, "the same person on two daemons"
    now = time.time()
    assert now + TTL_B - 60 <= fb.claims["exp"] <= now + TTL_B + 5, \
        f"chat_session_ttl {TTL_B}: {fb.claims}"
    assert_refused_401(authb, chat_path(fa.token), (), "authd's token on b")
    assert_refused_401(authd, chat_path(fb.token), (), "authb's token on a")


# ---------------------------------------------------------------- anonymous no

def test_chat_anonymous_no_refuses_names_and_accepts_tokens(authb, provider):
    status, hdrs, js = handshake(authb, chat_path(name=f"guest{_TAG}"))
    assert status == 401, (status, hdrs, js)
    u = new_user("anon-no")
    f = login(authb, provider, u, secret=SECRET_B)

    async def body(c):
        s = await open_user(c, f.token, f.name, slot=0)
        await alive(s)
        d = await open_user(c, provider.id_token(u), f.name, slot=1,
                            wait=JWKS_WAIT)
        await alive(d)
        assert s.uid == d.uid == f.sub
    session(authb, body)


# ---------------------------------------------------------------- admin

def test_chat_admin_may_destroy_any_channel(authb, provider, admin_uid):
    fa = login(authb, provider, ADMIN, secret=SECRET_B)
    assert fa.sub == admin_uid
    fc = login(authb, provider, new_user("creator"), secret=SECRET_B)
    fd = login(authb, provider, new_user("other"), secret=SECRET_B)

    async def body(c):
        adm = await open_user(c, fa.token, fa.name, slot=0)
        cre = await open_user(c, fc.token, fc.name, slot=1)
        oth = await open_user(c, fd.token, fd.name, slot=0)
        ch = c.channel()
        await create(cre, ch, [adm, oth])
        await join(cre, ch)
        await join(oth, ch, [cre])
        req = await oth.cmd("destroy", ch)
        await expect_error(oth, "forbidden", req, "non-admin destroys")
        await adm.cmd("destroy", ch)
        await expect_all([adm, cre, oth], ev_channel(ch, "destroy"),
                         "admin destroys")
        await quiet(adm, cre, oth)
        req = await cre.say(ch, "anyone?")
        await expect_error(cre, "no_such_channel", req, "after destroy")
    session(authb, body)


# ---------------------------------------------------------------- several tabs

def test_one_user_on_several_connections(authd, provider):
    u, v = new_user("tabs"), new_user("pal")
    fu = login(authd, provider, u)
    fv = login(authd, provider, v)
    # someone else (another subject) who calls himself the same
    fx = login(authd, provider, new_user("twin", preferred_username=u[
        "preferred_username"]))
    assert fx.name == fu.name and fx.sub != fu.sub

    async def body(c):
        tabs = [await open_user(c, fu.token, fu.name, slot=s)
                for s in (0, 1, 0)]
        pal = await open_user(c, fv.token, fv.name, slot=1)
        for t in tabs:
            t.uid = fu.sub
        pal.uid = fv.sub
        await pal.say("@" + fu.name, "to every tab")
        await expect_all([pal, *tabs], priv_msg(pal, "@" + fu.name,
                                                "to every tab"))
        await tabs[1].say("@" + fv.name, "from tab 2")
        await expect_all([pal, tabs[1]], priv_msg(tabs[1], "@" + fv.name,
                                                  "from tab 2"))
        # a channel joined from one tab is that user's
        ch = c.channel()
        await tabs[0].cmd("create", ch)
        await expect_all([*tabs, pal], ev_channel(ch, "create"))
        await quiet(*tabs, pal)
        # the namesake is refused, whatever the worker
        for slot in (0, 1):
            for _ in range(60):
                ws = await ws_open_headers(authd.ws_base + chat_path(
                    fx.token))
                c.all.append(ws)
                msgs, code, _ = await expect_close(ws)
                assert len(msgs) == 1 and json.loads(msgs[0]).get(
                    "code") == "name_taken", msgs
                assert code == 1008, code
                if ws_worker(ws)[0] == slot:
                    break
        # an anonymous guest under that name too
        ws = await ws_open_headers(authd.ws_base + chat_path(name=fu.name))
        c.all.append(ws)
        msgs, code, _ = await expect_close(ws)
        assert [json.loads(x).get("code") for x in msgs] == ["name_taken"] \
            and code == 1008, (msgs, code)
        # a message to oneself from one tab reaches every tab once
        await tabs[2].say("@" + fu.name, "note to all my tabs")
        await expect_all(tabs, priv_msg(tabs[2], "@" + fu.name,
                                        "note to all my tabs"))
        await quiet(*tabs, pal)
        # closing two tabs leaves the third reachable
        await close_ws(tabs[0].ws)
        await close_ws(tabs[1].ws)
        await pal.say("@" + fu.name, "still there?")
        await expect_all([pal, tabs[2]], priv_msg(pal, "@" + fu.name,
                                                  "still there?"))
    session(authd, body)


@pytest.mark.parametrize("n", [8, 20])
def test_many_tabs_all_get_a_private_message(roomd_factory, provider, n):
    """n connections of one user (half on each worker): a message to @name
    reaches every one of them, and no worker dies of it.  A daemon of its
    own: a worker dying here must not disturb the other tests."""
    d = roomd_factory(f"chat_ca_file {provider.ca_file}\n"
                      f"chat_session_secret {SECRET_A}\n"
                      + provider.conf("fake"))
    before = _worker_map(d)
    fu = login(d, provider, new_user("many"))
    fv = login(d, provider, new_user("sender"))

    async def body(c):
        tabs = [await open_user(c, fu.token, fu.name, slot=i % 2)
                for i in range(n)]
        pal = await open_user(c, fv.token, fv.name)
        for t in tabs:
            t.uid = fu.sub
        pal.uid = fv.sub
        await pal.say("@" + fu.name, f"to all {n}")
        want = priv_msg(pal, "@" + fu.name, f"to all {n}")
        got = await asyncio.gather(*(t.recv("tab") for t in tabs),
                                   return_exceptions=True)
        missing = [i for i, m in enumerate(got) if m != want]
        assert not missing, (f"{len(missing)} of {n} tabs did not get the "
                             f"message: tabs {missing}: "
                             f"{[got[i] for i in missing][:2]!r:.300}")
        await pal.expect(want, "sender's copy")
    try:
        session(d, body)
    finally:
        after = _worker_map(d)
        assert after == before, (f"a worker died: slot->pid {before} became "
                                 f"{after}\n--- log ---\n{d.log_tail(8)}")


def test_default_session_secret_is_one_for_all_workers(roomd_factory,
                                                       provider):
    """Without chat_session_secret the secret is random per start, but the
    same in every worker: a sign-in started on one worker ends on the
    other, and its session token opens the chat on both."""
    d = roomd_factory(f"chat_ca_file {provider.ca_file}\n"
                      + provider.conf("fake"))
    u = new_user("rnd")
    f = login(d, provider, u, login_slot=0, cb_slot=1, secret=None)
    g = login(d, provider, u, login_slot=1, cb_slot=0, secret=None)
    assert f.sub == g.sub and f.name == u["preferred_username"], \
        (f.claims, g.claims)

    async def body(c):
        for tok, slot in ((f.token, 0), (f.token, 1), (g.token, 1)):
            cl = await open_user(c, tok, f.name, slot=slot)
            await alive(cl)
            assert cl.uid == f.sub
    session(d, body)


def test_a_guest_holding_a_name_keeps_it_from_a_signed_in_user(authd,
                                                               provider):
    async def body(c):
        guest = await c.open()
        await alive(guest)
        f = login(authd, provider, new_user("late", preferred_username=
                                            guest.name))
        assert f.name == guest.name
        ws = await ws_open_headers(authd.ws_base + chat_path(f.token))
        c.all.append(ws)
        msgs, code, _ = await expect_close(ws)
        assert [json.loads(x).get("code") for x in msgs] == ["name_taken"] \
            and code == 1008, (msgs, code)
        await alive(guest)
    session(authd, body)


# ---------------------------------------------------------------- roomd -t

GOOD = """chat_history 10
chat_provider g issuer https://accounts.example.org
chat_provider g client_id abc
chat_provider g client_secret s3cret
chat_provider g authorize https://accounts.example.org/authorize
chat_provider g token https://accounts.example.org/token
chat_provider g jwks https://accounts.example.org/jwks
chat_provider g scope openid,email
chat_provider h issuer https://github.com
chat_provider h client_id def
chat_provider h client_secret s3cret
chat_provider h authorize http://localhost:9/login/oauth/authorize
chat_provider h token http://127.0.0.2:9/login/oauth/access_token
chat_provider h userinfo http://[::1]:9/user
chat_provider h redirect https://chat.example/chat/auth/h/callback
chat_session_secret abcdef
chat_session_ttl 3600
chat_admin 0b5d3c4e-8f3a-5e6b-9a1c-2d3e4f5a6b7c
chat_anonymous no
"""


def test_roomd_t_accepts_good_providers():
    rc, out, _ = roomd_t(GOOD)
    assert rc == 0, out


def _without(field, name="g"):
    return "".join(x + "\n" for x in GOOD.splitlines()
                   if not x.startswith(f"chat_provider {name} {field} "))


@pytest.mark.parametrize("field", ["issuer", "client_id", "authorize",
                                   "token", "jwks"])
def test_roomd_t_rejects_a_provider_missing_a_field(field):
    text = _without(field)
    first = next(i for i, x in enumerate(text.splitlines(), 1)
                 if x.startswith("chat_provider g "))
    rc, out, conf = roomd_t(text)
    assert rc != 0, f"without {field}: accepted\n{out}"
    assert f"{conf}:{first}" in out, \
        f"without {field}: the message names not {conf}:{first}:\n{out}"


def test_roomd_t_rejects_a_provider_with_neither_jwks_nor_userinfo():
    text = _without("userinfo", "h")
    first = next(i for i, x in enumerate(text.splitlines(), 1)
                 if x.startswith("chat_provider h "))
    rc, out, conf = roomd_t(text)
    assert rc != 0 and f"{conf}:{first}" in out, out


def test_roomd_t_rejects_an_unknown_provider_field():
    rc, out, conf = roomd_t(GOOD + "chat_provider g colour blue\n")
    assert rc != 0, out
    assert conf in out and "colour" in out, out


@pytest.mark.parametrize("url", ["http://accounts.example.org/token",
                                 "http://127.0.0.1.nip.example/token",
                                 "http://127.example.org/token",
                                 "http://localhost.example.org/token",
                                 "ftp://127.0.0.1/token", "token"],
                         ids=["http-not-loopback",
                              "http-host-starting-127.0.0.1",
                              "http-host-starting-127",
                              "http-host-starting-localhost",
                              "ftp", "not-a-url"])
def test_roomd_t_rejects_a_plain_http_url_off_loopback(url):
    text = GOOD.replace("token https://accounts.example.org/token",
                        f"token {url}")
    rc, out, conf = roomd_t(text)
    assert rc != 0, f"token {url}: accepted\n{out}"
    assert conf in out, out
