"""Mint JSON Web Tokens (RFC 7519, JWS compact form) for the classroom
tests with the standard library only: HS256/HS512 signatures, the unsigned
"none" form, and deliberately broken variants."""
import base64
import hashlib
import hmac
import json
import time

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
           "HS512": hashlib.sha512}


def b64url(data):
    """base64url without padding (RFC 7515, section 2)."""
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def sign(signing_input, secret, alg="HS512"):
    """The HMAC signature segment of signing_input ('header.payload')."""
    if isinstance(secret, str):
        secret = secret.encode()
    digest = hmac.new(secret, signing_input.encode("ascii"),
                      _HASHES[alg]).digest()
    return b64url(digest)


def mint(claims, secret, alg="HS512", header=None, sign_alg=None):
    """A signed token.  header overrides the JOSE header (default
    {"alg": alg, "typ": "JWT"}); sign_alg is the HMAC actually used
    (default alg), so that a header may lie about the algorithm."""
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = _segment(hdr) + "." + _segment(claims)
    return signing_input + "." + sign(signing_input, secret, sign_alg or alg)


def mint_none(claims):
    """An unsecured token: alg "none" and an empty signature."""
    return _segment({"alg": "none", "typ": "JWT"}) + "." + _segment(claims) + "."


def tamper_payload(token, **changes):
    """The token with its payload changed but the old signature kept."""
    h, p, s = token.split(".")
    claims = json.loads(b64url_decode(p))
    claims.update(changes)
    return h + "." + _segment(claims) + "." + s


def claims_for(name, room, sub=None, admin=None, exp=None, **extra):
    """The claims of a classroom participant; None leaves a claim out."""
    c = {}
    if sub is not None:
        c["sub"] = sub
    c["name"] = name
    c["room"] = room
    if admin is not None:
        c["admin"] = admin
    if exp is not None:
        c["exp"] = exp
    c.update(extra)
    return c


def in_seconds(n):
    return int(time.time()) + n
