"""A fake OAuth 2.0 / OpenID Connect provider for the chat sign-in tests.

Python's standard library and the openssl command line only.  It serves
HTTPS on 127.0.0.1 (a free port) with a certificate from a CA it makes for
itself in a temporary directory, and offers:

  GET  /authorize   no login page: the user who "logs in" is .next_user;
                    302 to redirect_uri?code=CODE&state=STATE
  POST /token       authorization_code grant with PKCE (S256 only), client
                    secret in the form or HTTP Basic; codes are single use
                    and live 60 s; OpenID clients get an RS256 ID token
  GET  /userinfo    a GitHub-like user for a Bearer access token
  GET  /jwks        the RSA key "rsa1" and the EC P-256 key "ec1"

Two clients are registered: CLIENT_OIDC (ID tokens, verified against
/jwks) and CLIENT_OAUTH (no ID token; the user is read from /userinfo).
Every request is recorded (.requests) so that tests can check what roomd
sent; .misbehave holds knobs that spoil the next ID token (KNOBS).

Run alone it prints the roomd.conf lines for both clients and serves until
interrupted:  /usr/bin/python3 tests/integration/fake_provider.py
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from jwt_helper import b64url, b64url_decode

CLIENT_OIDC = "roomd-test"
CLIENT_OAUTH = "gh-client"
CODE_LIFETIME = 60

# What .misbehave may hold: each spoils the next ID token one way.
KNOBS = ("forge", "wrong_aud", "wrong_iss", "expired", "wrong_nonce",
         "alg_none", "es256", "unknown_kid",
         "no_exp",          # no exp claim at all
         "kid_mismatch",    # RS256, signed with rsa1, but kid "ec1"
         "hs256")           # HS256 keyed with rsa1's public key (PEM)


def s256(verifier):
    """The PKCE S256 challenge of a code verifier (RFC 7636, 4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def jwt_parts(token):
    """(header, claims) of a compact JWS, without any verification."""
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def _openssl(args, cwd, data=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(args), r.stderr.decode("utf-8", "replace").strip()))
    return r.stdout


def _der_ecdsa_to_raw(der, size=32):
    """An ECDSA-Sig-Value (DER SEQUENCE of INTEGER r, s) as r||s, each
    left-padded to size bytes (RFC 7518, 3.4)."""
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER integer")
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        if len(v) > size:
            raise ValueError("integer too long")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


DEFAULT_SAN = "IP:127.0.0.1,DNS:localhost"


class Pki:
    """A CA, a server certificate it signed (for 127.0.0.1 and localhost
    unless san says otherwise), and (when signing is true) the token
    signing keys, in a temporary directory removed by cleanup().  With
    ca_from (another Pki) the server certificate is signed by that one's
    CA instead of a CA of its own."""

    def __init__(self, label="fake", signing=True, ca_from=None,
                 san=DEFAULT_SAN):
        self.dir = tempfile.mkdtemp(prefix=f"roomd-{label}-idp-")
        try:
            self._make_tls(label, ca_from, san)
            if signing:
                self._make_signing()
        except BaseException:
            self.cleanup()
            raise

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _make_tls(self, label, ca_from, san):
        d = self.dir
        if ca_from is not None:
            ca_pem, ca_key = ca_from.path("ca.pem"), ca_from.path("ca.key")
        else:
            ca_pem, ca_key = self.path("ca.pem"), self.path("ca.key")
            _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                      "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
                      f"/CN=roomd test CA ({label})",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                     d)
        _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                  "server.key", "-out", "server.csr", "-subj",
                  "/CN=localhost"], d)
        with open(self.path("server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    f"subjectAltName={san}\n")
        _openssl(["x509", "-req", "-in", "server.csr", "-CA", ca_pem,
                  "-CAkey", ca_key, "-CAcreateserial", "-CAserial",
                  "ca.srl", "-out", "server.pem", "-days", "2",
                  "-extfile", "server.ext"], d)
        self.ca_file = ca_pem

    def _make_signing(self):
        d = self.dir
        for name in ("rsa1", "forge"):
            _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt",
                      "rsa_keygen_bits:2048", "-out", f"{name}.pem"], d)
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", "ec1.pem"], d)
        _openssl(["pkey", "-in", "rsa1.pem", "-pubout", "-out", "rsa1.pub"],
                 d)
        with open(self.path("rsa1.pub"), "rb") as f:
            self.rsa1_public_pem = f.read()
        mod = _openssl(["rsa", "-in", "rsa1.pem", "-noout", "-modulus"],
                       d).decode()
        n = bytes.fromhex(mod.strip().split("=", 1)[1])
        text = _openssl(["rsa", "-in", "rsa1.pem", "-noout", "-text"],
                        d).decode()
        e = int(re.search(r"publicExponent: (\d+)", text).group(1))
        spki = _openssl(["pkey", "-in", "ec1.pem", "-pubout", "-outform",
                         "DER"], d)
        point = spki[-65:]
        if point[0] != 0x04:
            raise RuntimeError("EC public key is not an uncompressed point")
        self.jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
             "n": b64url(n),
             "e": b64url(e.to_bytes((e.bit_length() + 7) // 8, "big"))},
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
             "alg": "ES256", "x": b64url(point[1:33]),
             "y": b64url(point[33:])}]}

    def sign(self, key, signing_input):
        """openssl dgst -sha256 -sign: PKCS#1 v1.5 for RSA keys, DER ECDSA
        turned into raw r||s for EC ones."""
        sig = _openssl(["dgst", "-sha256", "-sign", f"{key}.pem"], self.dir,
                       signing_input.encode("ascii"))
        return _der_ecdsa_to_raw(sig) if key == "ec1" else sig


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, provider, ctx):
        self.provider = provider
        self.ctx = ctx
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, in the request's own thread, so
        # that a client that stalls or refuses the certificate holds up
        # nobody else.
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.provider._note_tls_failure(client_address, e)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeIdP/1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.provider._handle(self)

    def do_POST(self):
        self.server.provider._handle(self)


class FakeProvider:
    """One fake identity provider.  Attributes tests use:

    .base, .issuer        https://127.0.0.1:PORT (the issuer of both clients'
                          tokens is .issuer; the OAuth client's users are
                          meant to be configured with another issuer)
    .ca_file              the CA that signed the server certificate
    .next_user            claims of whoever logs in next at /authorize
    .userinfo_user        what /userinfo answers for the OAuth client
    .misbehave            set of KNOBS spoiling the next ID token issued
    .deny                 when set, /authorize redirects with this error
    .token_delay          seconds /token waits before answering
    .requests             every request received (dicts, see _record)
    .tls_failures         handshakes that failed (client refused the cert)
    """

    def __init__(self, label="fake", signing=True, ca_from=None,
                 san=DEFAULT_SAN):
        self.pki = Pki(label, signing, ca_from.pki if ca_from else None,
                       san)
        self.lock = threading.Lock()
        self.clients = {
            CLIENT_OIDC: {"secret": "oidc-" + secrets.token_hex(8),
                          "oidc": True},
            CLIENT_OAUTH: {"secret": "oauth-" + secrets.token_hex(8),
                           "oidc": False},
        }
        self.next_user = {"sub": "1001", "name": "Ada Lovelace",
                          "preferred_username": "ada"}
        self.userinfo_user = {"id": 4242, "login": "octocat", "name": "Mona"}
        self.misbehave = set()
        self.deny = None
        self.token_delay = 0.0
        self.requests = []
        self.tls_failures = []
        self.codes = {}
        self.access_tokens = {}
        self.token_results = []
        self._server = None
        self._thread = None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.path("server.pem"),
                            self.pki.path("server.key"))
        try:
            self._server = _Server(self, ctx)
        except BaseException:
            self.pki.cleanup()
            raise
        self.port = self._server.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self.issuer = self.base
        self.ca_file = self.pki.ca_file

    # ------------------------------------------------------------ lifetime

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="fake-idp", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close the socket, remove the keys and certificates.
        Safe to call more than once."""
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(5)
            self._server.server_close()
            self._server = None
        self.pki.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ for tests

    def secret(self, client_id=CLIENT_OIDC):
        return self.clients[client_id]["secret"]

    def conf(self, name, client_id=CLIENT_OIDC, issuer=None, scope=None,
             **urls):
        """roomd.conf lines for a provider NAME using this server; urls
        overrides authorize/token/jwks/userinfo (None leaves one out)."""
        oidc = self.clients[client_id]["oidc"]
        fields = {"issuer": issuer or self.issuer,
                  "client_id": client_id,
                  "client_secret": self.secret(client_id),
                  "authorize": self.base + "/authorize",
                  "token": self.base + "/token"}
        if oidc:
            fields["jwks"] = self.base + "/jwks"
        else:
            fields["userinfo"] = self.base + "/userinfo"
        fields.update(urls)
        if scope is not None:
            fields["scope"] = scope
        return "".join(f"chat_provider {name} {k} {v}\n"
                       for k, v in fields.items() if v is not None)

    def mark(self):
        with self.lock:
            return len(self.requests)

    def since(self, mark, path=None):
        """Requests received after mark (to path only, if given)."""
        with self.lock:
            got = list(self.requests[mark:])
        return [r for r in got if path is None or r["path"] == path]

    def id_token(self, user=None, aud=CLIENT_OIDC, nonce=None, knobs=(),
                 lifetime=300, extra=None):
        """A signed ID token for user (default .next_user), spoiled by each
        of knobs."""
        knobs = set(knobs)
        unknown = knobs - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}")
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": aud, "iat": now,
                  "exp": now + lifetime}
        claims.update(user if user is not None else self.next_user)
        if nonce is not None:
            claims["nonce"] = nonce
        if extra:
            claims.update(extra)
        if "wrong_aud" in knobs:
            claims["aud"] = "someone-else"
        if "wrong_iss" in knobs:
            claims["iss"] = self.issuer + "/evil"
        if "expired" in knobs:
            claims["iat"] = now - 1200
            claims["exp"] = now - 600
        if "wrong_nonce" in knobs:
            claims["nonce"] = "not-" + secrets.token_urlsafe(12)
        if "no_exp" in knobs:
            del claims["exp"]
        key, alg, kid = "rsa1", "RS256", "rsa1"
        if "es256" in knobs:
            key, alg, kid = "ec1", "ES256", "ec1"
        if "forge" in knobs:
            key = "forge"
        if "unknown_kid" in knobs:
            kid = "rsa-unknown"
        if "kid_mismatch" in knobs:
            kid = "ec1"
        header = {"alg": alg, "typ": "JWT", "kid": kid}
        if "alg_none" in knobs:
            header["alg"] = "none"
        if "hs256" in knobs:
            header["alg"] = "HS256"
        signing_input = (b64url(json.dumps(header, separators=(",", ":")))
                         + "." +
                         b64url(json.dumps(claims, separators=(",", ":"))))
        if "alg_none" in knobs:
            return signing_input + "."
        if "hs256" in knobs:
            return signing_input + "." + b64url(hmac.new(
                self.pki.rsa1_public_pem, signing_input.encode("ascii"),
                hashlib.sha256).digest())
        return signing_input + "." + b64url(self.pki.sign(key,
                                                          signing_input))

    # ------------------------------------------------------------ serving

    def _note_tls_failure(self, addr, err):
        with self.lock:
            self.tls_failures.append({"time": time.time(), "peer": addr,
                                      "error": str(err)})

    def _record(self, h, body):
        u = urllib.parse.urlsplit(h.path)
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        form = None
        if ctype == "application/x-www-form-urlencoded":
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8",
                                                           "replace"),
                                               keep_blank_values=True))
        rec = {"time": time.time(), "method": h.command, "path": u.path,
               "query": dict(urllib.parse.parse_qsl(
                   u.query, keep_blank_values=True)),
               "headers": {k.lower(): v for k, v in h.headers.items()},
               "body": body, "form": form, "response": None}
        with self.lock:
            self.requests.append(rec)
        return rec

    def _handle(self, h):
        n = h.headers.get("Content-Length")
        try:
            body = h.rfile.read(int(n)) if n else b""
        except (ValueError, OSError):
            body = b""
        rec = self._record(h, body)
        route = {("GET", "/authorize"): self._authorize,
                 ("POST", "/token"): self._token,
                 ("GET", "/userinfo"): self._userinfo,
                 ("GET", "/jwks"): self._jwks}.get((h.command, rec["path"]))
        if route == self._token and self.token_delay:
            time.sleep(self.token_delay)
        if route is None:
            status, hdrs, payload = 404, {}, {"error": "not_found"}
        else:
            with self.lock:
                status, hdrs, payload = route(rec)
        data = b""
        if payload is not None:
            data = json.dumps(payload).encode()
            hdrs.setdefault("Content-Type", "application/json")
            hdrs.setdefault("Cache-Control", "no-store")
        h.send_response(status)
        for k, v in hdrs.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()
        rec["response"] = (status, payload)

    @staticmethod
    def _redirect(uri, params):
        sep = "&" if "?" in uri else "?"
        return 302, {"Location": uri + sep + urllib.parse.urlencode(params)}, \
            None

    def _authorize(self, rec):
        q = rec["query"]
        uri = q.get("redirect_uri")
        if not uri:
            return 400, {}, {"error": "invalid_request",
                             "error_description": "no redirect_uri"}
        state = q.get("state", "")
        if (q.get("response_type") != "code" or
                q.get("client_id") not in self.clients or
                not q.get("code_challenge") or
                q.get("code_challenge_method") != "S256"):
            return self._redirect(uri, {"error": "invalid_request",
                                        "state": state})
        if self.deny:
            return self._redirect(uri, {"error": self.deny, "state": state})
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"client_id": q["client_id"], "redirect_uri": uri,
                            "challenge": q["code_challenge"],
                            "nonce": q.get("nonce"), "scope": q.get("scope"),
                            "user": dict(self.next_user),
                            "issued": time.monotonic(), "used": False}
        return self._redirect(uri, {"code": code, "state": state})

    def _client(self, rec, form):
        """(client_id, secret) from HTTP Basic or the form."""
        auth = rec["headers"].get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip()).decode()
                cid, _, sec = raw.partition(":")
                return (urllib.parse.unquote_plus(cid),
                        urllib.parse.unquote_plus(sec))
            except (ValueError, UnicodeDecodeError):
                return None, None
        return form.get("client_id"), form.get("client_secret")

    def _token_error(self, status, error, why):
        self.token_results.append((status, error, why))
        return status, {}, {"error": error, "error_description": why}

    def _token(self, rec):
        form = rec["form"]
        if form is None:
            return self._token_error(400, "invalid_request",
                                     "not application/x-www-form-urlencoded")
        if form.get("grant_type") != "authorization_code":
            return self._token_error(400, "unsupported_grant_type",
                                     repr(form.get("grant_type")))
        cid, sec = self._client(rec, form)
        client = self.clients.get(cid)
        if client is None or not secrets.compare_digest(
                client["secret"], sec or ""):
            return self._token_error(401, "invalid_client", repr(cid))
        c = self.codes.get(form.get("code", ""))
        if c is None:
            return self._token_error(400, "invalid_grant", "unknown code")
        if c["used"]:
            return self._token_error(400, "invalid_grant", "code replayed")
        c["used"] = True
        if c["client_id"] != cid:
            return self._token_error(400, "invalid_grant", "other client")
        if time.monotonic() - c["issued"] > CODE_LIFETIME:
            return self._token_error(400, "invalid_grant", "code expired")
        if form.get("redirect_uri") != c["redirect_uri"]:
            return self._token_error(400, "invalid_grant",
                                     "redirect_uri differs")
        v = form.get("code_verifier")
        if not v or s256(v) != c["challenge"]:
            return self._token_error(400, "invalid_grant",
                                     "code_verifier does not match")
        access = secrets.token_urlsafe(24)
        out = {"access_token": access, "token_type": "Bearer",
               "expires_in": 3600}
        if client["oidc"]:
            self.access_tokens[access] = dict(c["user"])
            knobs, self.misbehave = set(self.misbehave), set()
            out["id_token"] = self.id_token(c["user"], cid, c["nonce"],
                                            knobs)
            out["scope"] = c["scope"] or ""
        else:
            self.access_tokens[access] = dict(self.userinfo_user)
        self.token_results.append((200, None, "ok"))
        return 200, {}, out

    def _userinfo(self, rec):
        auth = rec["headers"].get("authorization", "")
        scheme, _, tok = auth.partition(" ")
        user = self.access_tokens.get(tok.strip()) \
            if scheme.lower() == "bearer" else None
        if user is None:
            return 401, {"WWW-Authenticate": "Bearer"}, \
                {"message": "Bad credentials"}
        return 200, {}, user

    def _jwks(self, rec):
        return 200, {}, getattr(self.pki, "jwks", {"keys": []})


def _self_test(p):
    """Sign one token of each kind and verify it with openssl."""
    pub = {}
    for key in ("rsa1", "ec1"):
        pub[key] = p.pki.path(f"{key}.pub")
        _openssl(["pkey", "-in", f"{key}.pem", "-pubout", "-out",
                  f"{key}.pub"], p.pki.dir)
    for knobs, key in (((), "rsa1"), (("es256",), "ec1")):
        tok = p.id_token(knobs=knobs)
        h, c = jwt_parts(tok)
        si, _, sig = tok.rpartition(".")
        sig = b64url_decode(sig)
        if key == "ec1":
            def der_int(b):
                b = b.lstrip(b"\0")
                if not b or b[0] & 0x80:
                    b = b"\0" + b
                return b"\x02" + bytes([len(b)]) + b
            body = der_int(sig[:32]) + der_int(sig[32:])
            sig = b"\x30" + bytes([len(body)]) + body
        sig_path = p.pki.path("sig.bin")
        with open(sig_path, "wb") as f:
            f.write(sig)
        _openssl(["dgst", "-sha256", "-verify", pub[key], "-signature",
                  sig_path], p.pki.dir, si.encode())
        print(f"self-test: {h['alg']} token with kid {h['kid']} verifies")


def main(argv):
    with FakeProvider() as p:
        if "--self-test" in argv:
            _self_test(p)
            return 0
        print(f"# fake provider on {p.base}; CA {p.ca_file}")
        print(f"chat_ca_file {p.ca_file}")
        sys.stdout.write(p.conf("fake"))
        sys.stdout.write(p.conf("gh", CLIENT_OAUTH, issuer=p.base + "/gh"))
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
