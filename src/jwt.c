/*
 * jwt.c: JSON Web Tokens (RFC 7519) signed with HMAC (HS256, HS512),
 * verified with OpenSSL in constant time.  The claims come back as a json-c
 * object; "exp" and "nbf", when present, are checked against the clock.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "roomd.h"

#define JWT_MAX		8192

/* base64url without padding; returns the decoded length or -1. */
static int
jwt_b64url(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	char	 buf[JWT_MAX + 4];
	size_t	 i, pad = (4 - len % 4) % 4;
	int	 n;

	if (len + pad > JWT_MAX || pad == 3 || (len + pad) / 4 * 3 > outlen)
		return -1;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '+' || c == '/' || c == '=')
			return -1;
		buf[i] = c;
	}
	memset(buf + len, '=', pad);
	n = EVP_DecodeBlock(out, (unsigned char *)buf, (int)(len + pad));
	return n < 0 ? -1 : n - (int)pad;
}

static struct json_object *
jwt_part(const char *in, size_t len)
{
	unsigned char		 raw[JWT_MAX];
	struct json_object	*o = NULL;
	int			 n;

	if ((n = jwt_b64url(in, len, raw, sizeof(raw))) < 0 ||
	    json_parse((char *)raw, (size_t)n, &o) == -1)
		return NULL;
	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* A numeric date claim: 1 if present and past/future as asked, 0 if
 * absent, -1 if malformed. */
static int
jwt_time(struct json_object *claims, const char *key, int64_t *t)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(claims, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return -1;
	*t = json_object_get_int64(v);
	return 1;
}

/*
 * Verify token against secret.  Returns the claims (the caller puts them),
 * or NULL with the reason in err.
 */
struct json_object *
jwt_verify_hs(const char *token, const char *secret, char *err,
    size_t errlen)
{
	const char		*dot1, *dot2, *alg;
	const EVP_MD		*md;
	struct json_object	*hdr, *claims = NULL;
	/* Decoding writes up to two padding bytes past the signature. */
	unsigned char		 sig[EVP_MAX_MD_SIZE + 3], want[EVP_MAX_MD_SIZE];
	unsigned int		 wantlen;
	int64_t			 t;
	int			 n, rc;

	if (strlen(token) > JWT_MAX || (dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.')) {
		snprintf(err, errlen, "not a JWT");
		return NULL;
	}
	if ((hdr = jwt_part(token, (size_t)(dot1 - token))) == NULL) {
		snprintf(err, errlen, "bad JWT header");
		return NULL;
	}
	alg = json_get_string(hdr, "alg");
	md = alg == NULL ? NULL : strcmp(alg, "HS256") == 0 ? EVP_sha256() :
	    strcmp(alg, "HS512") == 0 ? EVP_sha512() : NULL;
	json_object_put(hdr);
	if (md == NULL) {
		snprintf(err, errlen, "JWT algorithm must be HS256 or HS512");
		return NULL;
	}
	n = jwt_b64url(dot2 + 1, strlen(dot2 + 1), sig, sizeof(sig));
	if (HMAC(md, secret, (int)strlen(secret), (const unsigned char *)token,
	    (size_t)(dot2 - token), want, &wantlen) == NULL || n < 0 ||
	    (unsigned int)n != wantlen || CRYPTO_memcmp(sig, want, wantlen)) {
		snprintf(err, errlen, "bad JWT signature");
		return NULL;
	}
	if ((claims = jwt_part(dot1 + 1, (size_t)(dot2 - dot1 - 1))) == NULL) {
		snprintf(err, errlen, "bad JWT claims");
		return NULL;
	}
	if ((rc = jwt_time(claims, "exp", &t)) == -1 ||
	    (rc == 1 && t <= (int64_t)time(NULL))) {
		snprintf(err, errlen, "JWT expired");
		json_object_put(claims);
		return NULL;
	}
	if ((rc = jwt_time(claims, "nbf", &t)) == -1 ||
	    (rc == 1 && t > (int64_t)time(NULL))) {
		snprintf(err, errlen, "JWT not valid yet");
		json_object_put(claims);
		return NULL;
	}
	return claims;
}
