/*
 * oauth.c: signing in to the chat through the providers of roomd.conf.
 *
 * GET MOUNT/auth/NAME/login sends the browser to the provider (OAuth 2.0
 * authorization code with PKCE, RFC 7636) and leaves what the way back
 * needs (state, code verifier, nonce, where to return) in a short-lived
 * cookie signed with the session secret, so the callback may land on any
 * worker.  GET MOUNT/auth/NAME/callback trades the code for tokens at the
 * provider, checks the ID token against the provider's keys (or asks its
 * user endpoint, for OAuth-only providers), and answers with a redirect
 * whose fragment carries roomd's own session token.  The WebSocket takes
 * that token, or a provider's ID token, through oauth_identify().
 *
 * A user's identifier is the name-based UUID (version 5, URL namespace) of
 * "ISSUER SUBJECT": the same person on every connection and worker.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <http_parser.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "roomd.h"

#define OAUTH_COOKIE		"roomd_oauth"
#define OAUTH_LOGIN_TTL		600	/* seconds to come back from */
#define OAUTH_JWKS_TTL		3600	/* seconds keys are trusted */
#define OAUTH_JWKS_RETRY	5	/* seconds between refreshes */
#define OAUTH_TOKEN_MAX		8192

/* One sign-in under way: the browser's connection waits for it. */
struct oauth_op {
	struct conn		*conn;	/* NULL once the browser left */
	struct chat_provider	 p;
	char			 nonce[MEMBER_TOKEN_LEN + 1];
	char			 ret[512];
	char			 cookie_path[320];
	char			*access_token;
	char			*id_token;
};

/* A provider's key set, as this worker last fetched it. */
struct oauth_jwks {
	char			 url[512];
	struct json_object	*keys;
	time_t			 fetched;
	time_t			 tried;
};
static struct oauth_jwks	jwks_cache[ROOMD_MAX_PROVIDERS];

static const char *
oauth_secret(void)
{
	return env->conf.chat_session_secret[0] != '\0' ?
	    env->conf.chat_session_secret : env->chat_secret;
}

static const struct chat_provider *
oauth_provider(const char *name, size_t len)
{
	int	 i;

	for (i = 0; i < env->conf.nproviders; i++)
		if (strlen(env->conf.providers[i].name) == len &&
		    strncmp(env->conf.providers[i].name, name, len) == 0)
			return &env->conf.providers[i];
	return NULL;
}

static const struct chat_provider *
oauth_provider_by_issuer(const char *iss)
{
	int	 i;

	for (i = 0; iss != NULL && i < env->conf.nproviders; i++)
		if (strcmp(env->conf.providers[i].issuer, iss) == 0 &&
		    env->conf.providers[i].jwks[0] != '\0')
			return &env->conf.providers[i];
	return NULL;
}

/* ---------------------------------------------------------- identity */

/* RFC 4122 version 5: SHA-1 of the URL namespace and the name. */
static void
oauth_uid(const char *issuer, const char *subject, char *out)
{
	static const unsigned char ns[16] = { 0x6b, 0xa7, 0xb8, 0x11, 0x9d,
	    0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
	    0xc8 };
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();

	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	EVP_DigestUpdate(ctx, ns, sizeof(ns));
	EVP_DigestUpdate(ctx, issuer, strlen(issuer));
	EVP_DigestUpdate(ctx, " ", 1);
	EVP_DigestUpdate(ctx, subject, strlen(subject));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	md[6] = (md[6] & 0x0f) | 0x50;
	md[8] = (md[8] & 0x3f) | 0x80;
	snprintf(out, MEMBER_UID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x-%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3],
	    md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
	    md[13], md[14], md[15]);
}

/* The chat name: the first usable claim, kept to [A-Za-z0-9_-]. */
static void
oauth_name(struct json_object *claims, const char *uid, char *out,
    size_t outlen)
{
	static const char *keys[] = { "preferred_username", "login",
	    "nickname", "name", "email" };
	const char	*v;
	size_t		 i, n = 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && n == 0; i++) {
		if ((v = json_get_string(claims, keys[i])) == NULL)
			continue;
		for (; *v != '\0' && n < outlen - 1 && n < ROOM_ID_MAX;
		    v++) {
			if (*v == '@' && i == 4)
				break;
			if (isalnum((unsigned char)*v) || *v == '_' ||
			    *v == '-')
				out[n++] = *v;
		}
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "user-%.8s", uid);
}

/* The user of claims from an issuer; -1 without a subject. */
static int
oauth_user(const char *issuer, struct json_object *claims,
    struct chat_user *u)
{
	struct json_object	*sub;
	char			 subject[256];

	if (!json_object_object_get_ex(claims, "sub", &sub) &&
	    !json_object_object_get_ex(claims, "id", &sub))
		return -1;
	if (json_object_is_type(sub, json_type_string))
		snprintf(subject, sizeof(subject), "%s",
		    json_object_get_string(sub));
	else if (json_object_is_type(sub, json_type_int))
		snprintf(subject, sizeof(subject), "%lld",
		    (long long)json_object_get_int64(sub));
	else
		return -1;
	if (subject[0] == '\0')
		return -1;
	oauth_uid(issuer, subject, u->uid);
	oauth_name(claims, u->uid, u->name, sizeof(u->name));
	return 0;
}

/* roomd's session token for u. */
static char *
oauth_session(const struct chat_user *u)
{
	struct json_object	*c = json_object_new_object();

	json_object_object_add(c, "iss", json_object_new_string("roomd"));
	json_object_object_add(c, "aud",
	    json_object_new_string("roomd-chat"));
	json_object_object_add(c, "sub", json_object_new_string(u->uid));
	json_object_object_add(c, "name", json_object_new_string(u->name));
	json_object_object_add(c, "exp", json_object_new_int64(
	    (int64_t)time(NULL) + env->conf.chat_session_ttl));
	return jwt_sign_hs256(c, oauth_secret());
}

/* Does claim key hold want (or, for aud, an array holding it)? */
static int
oauth_claim_is(struct json_object *claims, const char *key, const char *want)
{
	struct json_object	*v, *e;
	size_t			 i;

	if (!json_object_object_get_ex(claims, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), want) == 0;
	if (!json_object_is_type(v, json_type_array) || strcmp(key, "aud"))
		return 0;
	for (i = 0; i < json_object_array_length(v); i++)
		if ((e = json_object_array_get_idx(v, i)) != NULL &&
		    json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), want) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------- key sets */

static struct oauth_jwks *
oauth_jwks_of(const struct chat_provider *p)
{
	int	 i;

	for (i = 0; i < ROOMD_MAX_PROVIDERS; i++)
		if (strcmp(jwks_cache[i].url, p->jwks) == 0)
			return &jwks_cache[i];
	for (i = 0; i < ROOMD_MAX_PROVIDERS; i++)
		if (jwks_cache[i].url[0] == '\0')
			break;
	if (i == ROOMD_MAX_PROVIDERS)	/* providers changed: reuse one */
		i = 0;
	json_object_put(jwks_cache[i].keys);
	memset(&jwks_cache[i], 0, sizeof(jwks_cache[i]));
	snprintf(jwks_cache[i].url, sizeof(jwks_cache[i].url), "%s", p->jwks);
	return &jwks_cache[i];
}

static int
oauth_jwks_fresh(struct oauth_jwks *k)
{
	return k->keys != NULL && time(NULL) - k->fetched < OAUTH_JWKS_TTL;
}

/* Keep a fetched key set; 0 if it was one. */
static int
oauth_jwks_store(const char *url, int status, const char *body, size_t len)
{
	struct oauth_jwks	*k;
	struct json_object	*o = NULL, *keys;
	int			 i;

	for (i = 0; i < ROOMD_MAX_PROVIDERS; i++)
		if (strcmp(jwks_cache[i].url, url) == 0)
			break;
	if (i == ROOMD_MAX_PROVIDERS || status != 200 ||
	    json_parse(body, len, &o) == -1 || o == NULL ||
	    !json_object_object_get_ex(o, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		json_object_put(o);
		return -1;
	}
	k = &jwks_cache[i];
	json_object_put(k->keys);
	k->keys = o;
	k->fetched = time(NULL);
	return 0;
}

/* A refresh nobody waits for. */
struct oauth_bg {
	char	url[512];
};

static void
oauth_jwks_bg_done(int status, const char *body, size_t len, void *arg)
{
	struct oauth_bg	*bg = arg;

	if (oauth_jwks_store(bg->url, status, body, len) == -1)
		log_warnx("key set %s: not fetched (status %d)", bg->url,
		    status);
	free(bg);
}

static void
oauth_jwks_refresh(const struct chat_provider *p, struct oauth_jwks *k)
{
	struct oauth_bg	*bg;

	if (time(NULL) - k->tried < OAUTH_JWKS_RETRY ||
	    (bg = calloc(1, sizeof(*bg))) == NULL)
		return;
	k->tried = time(NULL);
	snprintf(bg->url, sizeof(bg->url), "%s", p->jwks);
	if (fetch(p->jwks, NULL, NULL, oauth_jwks_bg_done, bg) == -1)
		free(bg);
}

/*
 * Verify a provider's ID token with the keys this worker has (and its
 * nonce, unless NULL).  Returns the claims, or NULL with why; *unknown
 * says that no key of the set has the token's kid.
 */
static struct json_object *
oauth_verify_id(const struct chat_provider *p, const char *token,
    const char *nonce, int *unknown, char *err, size_t errlen)
{
	struct oauth_jwks	*k = oauth_jwks_of(p);
	struct json_object	*claims;

	if ((claims = jwt_verify_jwks(token, k->keys, unknown, err, errlen))
	    == NULL)
		return NULL;
	if (!json_object_object_get_ex(claims, "exp", NULL))
		snprintf(err, errlen, "the ID token never expires");
	else if (!oauth_claim_is(claims, "iss", p->issuer))
		snprintf(err, errlen, "the ID token is from another issuer");
	else if (!oauth_claim_is(claims, "aud", p->client_id))
		snprintf(err, errlen, "the ID token is for another client");
	else if (nonce != NULL && !oauth_claim_is(claims, "nonce", nonce))
		snprintf(err, errlen, "the ID token's nonce is not ours");
	else if (json_get_string(claims, "sub") == NULL)
		snprintf(err, errlen, "the ID token names no subject");
	else
		return claims;
	json_object_put(claims);
	return NULL;
}

/* ---------------------------------------------------------- WebSocket */

/* "Bearer T" or ?token=T; 1 with the token in out, else 0. */
static int
oauth_credentials(struct http_req *req, char *out, size_t outlen)
{
	const char	*a = req->authorization;

	if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
		a += 7;
		while (*a == ' ')
			a++;
		if (strlen(a) >= outlen)
			return -1;
		snprintf(out, outlen, "%s", a);
		return out[0] != '\0';
	}
	return util_query_get(req->query, "token", out, outlen) == 1 &&
	    out[0] != '\0';
}

/*
 * Who the WebSocket upgrade req signs in as: 0 and u filled in; 1 if it
 * brings no credentials; -1 if they are not good.
 */
int
oauth_identify(struct http_req *req, struct chat_user *u)
{
	const struct chat_provider	*p;
	struct oauth_jwks		*k;
	struct json_object		*claims;
	const char			*name, *sub;
	char				*token, err[128];
	int				 rc = -1, unknown;

	if ((token = malloc(OAUTH_TOKEN_MAX)) == NULL)
		return -1;
	switch (oauth_credentials(req, token, OAUTH_TOKEN_MAX)) {
	case 0:
		rc = 1;
		/* FALLTHROUGH */
	case -1:
		free(token);
		return rc;
	}
	if ((claims = jwt_verify_hs(token, oauth_secret(), err,
	    sizeof(err))) != NULL) {
		sub = json_get_string(claims, "sub");
		name = json_get_string(claims, "name");
		/* (A sign-in cookie, signed with the same key, has no iss.) */
		if (oauth_claim_is(claims, "iss", "roomd") &&
		    json_object_object_get_ex(claims, "exp", NULL) &&
		    (!json_object_object_get_ex(claims, "aud", NULL) ||
		    oauth_claim_is(claims, "aud", "roomd-chat")) &&
		    sub != NULL && strlen(sub) == MEMBER_UID_LEN &&
		    name != NULL && util_valid_id(name, ROOM_ID_MAX)) {
			snprintf(u->uid, sizeof(u->uid), "%s", sub);
			snprintf(u->name, sizeof(u->name), "%s", name);
			rc = 0;
		}
	} else if ((claims = jwt_peek(token)) != NULL &&
	    (p = oauth_provider_by_issuer(json_get_string(claims, "iss"))) !=
	    NULL) {
		/* A stale or missing key set is fetched for the next try. */
		json_object_put(claims);
		k = oauth_jwks_of(p);
		if (!oauth_jwks_fresh(k))
			oauth_jwks_refresh(p, k);
		if ((claims = oauth_verify_id(p, token, NULL, &unknown, err,
		    sizeof(err))) != NULL)
			rc = oauth_user(p->issuer, claims, u);
		else {
			if (unknown)
				oauth_jwks_refresh(p, k);
			log_debug("chat: ID token refused: %s", err);
		}
	}
	json_object_put(claims);
	free(token);
	return rc;
}

/* ---------------------------------------------------------- HTTP */

static void
oauth_fail(struct conn *conn, int status, const char *code, const char *why)
{
	server_http_error(conn, status, code, why);
}

/* key=urlencoded(value)&... appended to b. */
static void
oauth_param(struct evbuffer *b, const char *key, const char *value)
{
	char	*v = evhttp_uriencode(value, -1, 0);

	evbuffer_add_printf(b, "%s%s=%s", evbuffer_get_length(b) ? "&" : "",
	    key, v ? v : "");
	free(v);
}

/* The callback URL: configured, or made from the request's Host. */
static int
oauth_redirect_uri(struct conn *conn, struct http_req *req,
    const struct chat_provider *p, const char *mount, char *out,
    size_t outlen)
{
	const char	*h = req->host;
	size_t		 i;

	if (p->redirect[0] != '\0') {
		snprintf(out, outlen, "%s", p->redirect);
		return 0;
	}
	for (i = 0; h != NULL && h[i] != '\0'; i++)
		if (!isalnum((unsigned char)h[i]) && strchr(".-:[]", h[i]) ==
		    NULL)
			return -1;
	if (h == NULL || i == 0)
		return -1;
	snprintf(out, outlen, "%s://%s%s/auth/%s/callback",
	    conn->tls ? "https" : "http", h,
	    mount, p->name);
	return 0;
}

/* A random PKCE verifier and its S256 challenge. */
static void
oauth_pkce(char *verifier, size_t vlen, char *challenge, size_t clen)
{
	unsigned char	 md[32];
	char		 a[MEMBER_TOKEN_LEN + 1], b[MEMBER_TOKEN_LEN + 1];

	util_token(a, sizeof(a));
	util_token(b, sizeof(b));
	snprintf(verifier, vlen, "%s%s", a, b);
	EVP_Digest(verifier, strlen(verifier), md, NULL, EVP_sha256(), NULL);
	jwt_b64url_encode(md, sizeof(md), challenge, clen);
}

static void
oauth_login(struct conn *conn, struct http_req *req,
    const struct chat_provider *p, const char *mount)
{
	struct json_object	*c;
	struct evbuffer		*q;
	char			 ret[512], redirect[768], state[64], nonce[64];
	char			 verifier[80], challenge[64], scope[256];
	char			*cookie, *hdr, *s;
	int			 rc;

	rc = util_query_get(req->query, "return", ret, sizeof(ret));
	if (rc == 0)
		snprintf(ret, sizeof(ret), "/chat.html");
	if (rc == -1 || ret[0] != '/' || ret[1] == '/' || ret[1] == '\\' ||
	    strpbrk(ret, "\r\n#") != NULL) {
		oauth_fail(conn, 400, "bad_request", "return must be a path "
		    "on this server");
		return;
	}
	if (oauth_redirect_uri(conn, req, p, mount, redirect,
	    sizeof(redirect)) == -1) {
		oauth_fail(conn, 400, "bad_request", "the request has no "
		    "usable Host header");
		return;
	}
	snprintf(scope, sizeof(scope), "%s", p->scope);
	util_token(state, sizeof(state));
	util_token(nonce, sizeof(nonce));
	oauth_pkce(verifier, sizeof(verifier), challenge, sizeof(challenge));
	c = json_object_new_object();
	json_object_object_add(c, "aud", json_object_new_string("roomd-login"));
	json_object_object_add(c, "prov", json_object_new_string(p->name));
	json_object_object_add(c, "state", json_object_new_string(state));
	json_object_object_add(c, "verifier", json_object_new_string(verifier));
	json_object_object_add(c, "nonce", json_object_new_string(nonce));
	json_object_object_add(c, "ret", json_object_new_string(ret));
	json_object_object_add(c, "redirect", json_object_new_string(redirect));
	json_object_object_add(c, "exp", json_object_new_int64(
	    (int64_t)time(NULL) + OAUTH_LOGIN_TTL));
	if ((cookie = jwt_sign_hs256(c, oauth_secret())) == NULL ||
	    (q = evbuffer_new()) == NULL) {
		free(cookie);
		oauth_fail(conn, 500, "internal", "out of memory");
		return;
	}
	for (s = scope; *s != '\0'; s++)
		if (*s == ',')
			*s = ' ';
	oauth_param(q, "response_type", "code");
	oauth_param(q, "client_id", p->client_id);
	oauth_param(q, "redirect_uri", redirect);
	if (scope[0] != '\0')
		oauth_param(q, "scope", scope);
	oauth_param(q, "state", state);
	if (p->jwks[0] != '\0')
		oauth_param(q, "nonce", nonce);
	oauth_param(q, "code_challenge", challenge);
	oauth_param(q, "code_challenge_method", "S256");
	evbuffer_add(q, "", 1);
	if (asprintf(&hdr, "Location: %s%c%s\r\nSet-Cookie: " OAUTH_COOKIE
	    "=%s; Path=%s/auth/%s; HttpOnly; SameSite=Lax; Max-Age=%d%s\r\n"
	    "Cache-Control: no-store\r\n", p->authorize,
	    strchr(p->authorize, '?') ? '&' : '?', evbuffer_pullup(q, -1),
	    cookie, mount, p->name,
	    OAUTH_LOGIN_TTL, strncmp(redirect, "https:", 6) == 0 ?
	    "; Secure" : "") == -1)
		hdr = NULL;
	server_http_respond(conn, 302, NULL, NULL, 0, hdr);
	free(hdr);
	free(cookie);
	evbuffer_free(q);
}

static void
oauth_op_cancel(void *arg)
{
	struct oauth_op	*op = arg;

	op->conn = NULL;
}

/* The browser's request ends: an answer, the op freed. */
static void
oauth_op_end(struct oauth_op *op, int status, const char *code,
    const char *why, const struct chat_user *u)
{
	char	*token = NULL, *hdr = NULL;

	if (op->conn != NULL) {
		if (u != NULL && (token = oauth_session(u)) != NULL &&
		    asprintf(&hdr, "Location: %s#token=%s\r\n"
		    "Set-Cookie: " OAUTH_COOKIE "=; Path=%s; Max-Age=0\r\n"
		    "Cache-Control: no-store\r\n", op->ret, token,
		    op->cookie_path) != -1)
			server_http_respond(op->conn, 302, NULL, NULL, 0, hdr);
		else
			server_http_error(op->conn, u != NULL ? 500 : status,
			    u != NULL ? "internal" : code, u != NULL ?
			    "cannot make a session" : why);
		server_http_resume(op->conn);
	}
	if (u != NULL)
		log_info("chat: %s signed in through %s as %s", u->uid,
		    op->p.name, u->name);
	free(hdr);
	free(token);
	free(op->access_token);
	free(op->id_token);
	free(op);
}

static void oauth_check_id(struct oauth_op *);

static void
oauth_jwks_done(int status, const char *body, size_t len, void *arg)
{
	struct oauth_op	*op = arg;

	if (oauth_jwks_store(op->p.jwks, status, body, len) == -1) {
		oauth_op_end(op, 502, "provider_unreachable", "cannot fetch "
		    "the provider's keys", NULL);
		return;
	}
	oauth_check_id(op);
}

static void
oauth_check_id(struct oauth_op *op)
{
	struct oauth_jwks	*k = oauth_jwks_of(&op->p);
	struct json_object	*claims;
	struct chat_user	 u;
	char			 err[128];
	int			 unknown;

	if (!oauth_jwks_fresh(k)) {
		k->tried = time(NULL);
		if (fetch(op->p.jwks, NULL, NULL, oauth_jwks_done, op) == -1)
			oauth_op_end(op, 502, "provider_unreachable", "bad "
			    "key set URL", NULL);
		return;
	}
	claims = oauth_verify_id(&op->p, op->id_token, op->nonce, &unknown,
	    err, sizeof(err));
	if (claims == NULL && unknown && time(NULL) - k->fetched >=
	    OAUTH_JWKS_RETRY) {
		k->fetched = 0;		/* the keys may have rolled over */
		oauth_check_id(op);
		return;
	}
	if (claims == NULL || oauth_user(op->p.issuer, claims, &u) == -1) {
		log_info("chat: sign-in through %s refused: %s", op->p.name,
		    claims ? "no subject" : err);
		oauth_op_end(op, 401, "bad_id_token", err, NULL);
	} else
		oauth_op_end(op, 0, NULL, NULL, &u);
	json_object_put(claims);
}

static void
oauth_userinfo_done(int status, const char *body, size_t len, void *arg)
{
	struct oauth_op		*op = arg;
	struct json_object	*o = NULL;
	struct chat_user	 u;

	if (status == 0)
		oauth_op_end(op, 502, "provider_unreachable", "the provider's "
		    "user endpoint did not answer", NULL);
	else if (status != 200 || json_parse(body, len, &o) == -1 ||
	    o == NULL || oauth_user(op->p.issuer, o, &u) == -1)
		oauth_op_end(op, 401, "provider_error", "the provider's user "
		    "endpoint did not say who this is", NULL);
	else
		oauth_op_end(op, 0, NULL, NULL, &u);
	json_object_put(o);
}

static void
oauth_token_done(int status, const char *body, size_t len, void *arg)
{
	struct oauth_op		*op = arg;
	struct json_object	*o = NULL;
	const char		*id, *access;
	char			 why[160];

	if (status == 0) {
		oauth_op_end(op, 502, "provider_unreachable", "the provider's "
		    "token endpoint did not answer", NULL);
		return;
	}
	if (json_parse(body, len, &o) == -1)
		o = NULL;
	if (status != 200 || o == NULL) {
		snprintf(why, sizeof(why), "the provider refused the code: %s",
		    o && json_get_string(o, "error") ? json_get_string(o,
		    "error") : "no reason given");
		json_object_put(o);
		oauth_op_end(op, 401, "provider_error", why, NULL);
		return;
	}
	id = json_get_string(o, "id_token");
	access = json_get_string(o, "access_token");
	op->id_token = id ? strdup(id) : NULL;
	op->access_token = access ? strdup(access) : NULL;
	json_object_put(o);
	if (op->p.jwks[0] != '\0') {
		if (op->id_token == NULL)
			oauth_op_end(op, 401, "bad_id_token", "the provider "
			    "sent no ID token", NULL);
		else
			oauth_check_id(op);
	} else if (op->access_token == NULL)
		oauth_op_end(op, 401, "provider_error", "the provider sent no "
		    "access token", NULL);
	else if (fetch(op->p.userinfo, NULL, op->access_token,
	    oauth_userinfo_done, op) == -1)
		oauth_op_end(op, 502, "provider_unreachable", "bad user "
		    "endpoint URL", NULL);
}

/* The value of cookie name in a Cookie header, or NULL. */
static char *
oauth_cookie(const char *h, const char *name)
{
	size_t	 n = strlen(name), len;

	while (h != NULL && *h != '\0') {
		while (*h == ' ' || *h == ';')
			h++;
		len = strcspn(h, ";");
		if (len > n && strncmp(h, name, n) == 0 && h[n] == '=')
			return strndup(h + n + 1, len - n - 1);
		h += len;
	}
	return NULL;
}

static void
oauth_callback(struct conn *conn, struct http_req *req,
    const struct chat_provider *p, const char *mount)
{
	struct json_object	*c = NULL;
	struct oauth_op		*op;
	struct evbuffer		*form;
	char			 code[2048], state[128], err[128], *cookie;
	const char		*s, *v;

	if (util_query_get(req->query, "error", err, sizeof(err)) == 1) {
		snprintf(code, sizeof(code), "the provider said: %s", err);
		oauth_fail(conn, 401, "provider_error", code);
		return;
	}
	cookie = oauth_cookie(req->cookie, OAUTH_COOKIE);
	if (cookie != NULL)
		c = jwt_verify_hs(cookie, oauth_secret(), err, sizeof(err));
	free(cookie);
	if (c == NULL || !oauth_claim_is(c, "aud", "roomd-login") ||
	    !oauth_claim_is(c, "prov", p->name) ||
	    util_query_get(req->query, "state", state, sizeof(state)) != 1 ||
	    (s = json_get_string(c, "state")) == NULL || strcmp(s, state) ||
	    util_query_get(req->query, "code", code, sizeof(code)) != 1) {
		json_object_put(c);
		oauth_fail(conn, 400, "bad_state", "this sign-in was not "
		    "started here, or too long ago: start again");
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL ||
	    (form = evbuffer_new()) == NULL) {
		free(op);
		json_object_put(c);
		oauth_fail(conn, 500, "internal", "out of memory");
		return;
	}
	op->conn = conn;
	op->p = *p;
	snprintf(op->cookie_path, sizeof(op->cookie_path), "%s/auth/%s",
	    mount, p->name);
	snprintf(op->nonce, sizeof(op->nonce), "%s",
	    (v = json_get_string(c, "nonce")) ? v : "");
	snprintf(op->ret, sizeof(op->ret), "%s",
	    (v = json_get_string(c, "ret")) ? v : "/chat.html");
	oauth_param(form, "grant_type", "authorization_code");
	oauth_param(form, "code", code);
	oauth_param(form, "redirect_uri", (v = json_get_string(c,
	    "redirect")) ? v : "");
	oauth_param(form, "client_id", p->client_id);
	if (p->client_secret[0] != '\0')
		oauth_param(form, "client_secret", p->client_secret);
	oauth_param(form, "code_verifier", (v = json_get_string(c,
	    "verifier")) ? v : "");
	evbuffer_add(form, "", 1);
	json_object_put(c);
	if (fetch(p->token, (char *)evbuffer_pullup(form, -1), NULL,
	    oauth_token_done, op) == -1) {
		free(op);
		oauth_fail(conn, 502, "provider_unreachable", "bad token "
		    "endpoint URL");
	} else
		server_http_hold(conn, oauth_op_cancel, op);
	evbuffer_free(form);
}

static void
oauth_providers(struct conn *conn, const char *mount)
{
	struct json_object	*o = json_object_new_object();
	struct json_object	*a = json_object_new_array(), *e;
	char			 login[512];
	int			 i;

	for (i = 0; i < env->conf.nproviders; i++) {
		e = json_object_new_object();
		json_object_object_add(e, "name",
		    json_object_new_string(env->conf.providers[i].name));
		snprintf(login, sizeof(login), "%s/auth/%s/login", mount,
		    env->conf.providers[i].name);
		json_object_object_add(e, "login",
		    json_object_new_string(login));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "providers", a);
	json_object_object_add(o, "anonymous",
	    json_object_new_boolean(env->conf.chat_anonymous));
	server_http_json(conn, 200, o);
}

/* GET MOUNT/auth/...: sub is the path after the mount. */
void
oauth_http(struct conn *conn, struct http_req *req, const char *sub)
{
	const struct chat_provider	*p;
	const char			*name, *slash;
	char				 mount[256];
	size_t				 mlen = strlen(req->path) - strlen(sub);

	snprintf(mount, sizeof(mount), "%.*s", (int)mlen, req->path);
	if (strcmp(sub, "/auth/providers") == 0 && req->method == HTTP_GET) {
		oauth_providers(conn, mount);
		return;
	}
	name = sub + strlen("/auth/");
	if (strncmp(sub, "/auth/", 6) != 0 || (slash = strchr(name, '/')) ==
	    NULL || (strcmp(slash, "/login") != 0 &&
	    strcmp(slash, "/callback") != 0)) {
		oauth_fail(conn, 404, "not_found", "no such path");
		return;
	}
	if ((p = oauth_provider(name, (size_t)(slash - name))) == NULL) {
		oauth_fail(conn, 404, "no_such_provider", "no sign-in "
		    "provider of that name");
		return;
	}
	if (req->method != HTTP_GET)
		oauth_fail(conn, 405, "method_not_allowed", "use GET");
	else if (strcmp(slash, "/login") == 0)
		oauth_login(conn, req, p, mount);
	else
		oauth_callback(conn, req, p, mount);
}
