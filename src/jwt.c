/*
 * jwt.c: JSON Web Tokens (RFC 7519).  HMAC tokens (HS256, HS512) are made
 * and checked with a shared secret; a provider's tokens (RS256, ES256) are
 * checked against its JSON Web Key Set (RFC 7517), all with OpenSSL.  The
 * claims come back as a json-c object; "exp" and "nbf", when present, are
 * checked against the clock.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include "roomd.h"

#define JWT_MAX		8192
#define JWT_SIG_MAX	1024	/* an RSA-8192 signature */

/* A token taken apart: its header, claims and signature, not yet trusted. */
struct jwt {
	struct json_object	*hdr;
	struct json_object	*claims;
	size_t			 signed_len;	/* "header.claims" */
	unsigned char		 sig[JWT_SIG_MAX + 3];
	int			 siglen;
};

/* base64url without padding; returns the decoded length or -1. */
int
jwt_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outlen)
{
	char	*buf;
	size_t	 i, pad = (4 - len % 4) % 4;
	int	 n;

	/* EVP_DecodeBlock writes whole groups of three, padding included. */
	if (len > JWT_MAX || pad == 3 || (len + pad) / 4 * 3 > outlen ||
	    (buf = malloc(len + pad + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '+' || c == '/' || c == '=') {
			free(buf);
			return -1;
		}
		buf[i] = c;
	}
	memset(buf + len, '=', pad);
	n = EVP_DecodeBlock(out, (unsigned char *)buf, (int)(len + pad));
	free(buf);
	return n < 0 ? -1 : n - (int)pad;
}

/* base64url without padding into out (NUL-terminated); -1 if too small. */
int
jwt_b64url_encode(const void *in, size_t len, char *out, size_t outlen)
{
	size_t	 i, n;

	if ((len + 2) / 3 * 4 + 1 > outlen)
		return -1;
	n = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (i = 0; i < n; i++)
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	return (int)n;
}

static struct json_object *
jwt_part(const char *in, size_t len)
{
	unsigned char		*raw;
	struct json_object	*o = NULL;
	int			 n;

	if ((raw = malloc(JWT_MAX)) == NULL)
		return NULL;
	if ((n = jwt_b64url_decode(in, len, raw, JWT_MAX)) < 0 ||
	    json_parse((char *)raw, (size_t)n, &o) == -1)
		o = NULL;
	free(raw);
	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static void
jwt_free(struct jwt *t)
{
	json_object_put(t->hdr);
	json_object_put(t->claims);
	t->hdr = t->claims = NULL;
}

static int
jwt_decode(const char *token, struct jwt *t, char *err, size_t errlen)
{
	const char	*dot1, *dot2;

	memset(t, 0, sizeof(*t));
	if (strlen(token) > JWT_MAX || (dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.')) {
		snprintf(err, errlen, "not a JWT");
		return -1;
	}
	if ((t->hdr = jwt_part(token, (size_t)(dot1 - token))) == NULL ||
	    (t->claims = jwt_part(dot1 + 1, (size_t)(dot2 - dot1 - 1))) ==
	    NULL) {
		snprintf(err, errlen, "bad JWT header or claims");
		jwt_free(t);
		return -1;
	}
	t->signed_len = (size_t)(dot2 - token);
	t->siglen = jwt_b64url_decode(dot2 + 1, strlen(dot2 + 1), t->sig,
	    sizeof(t->sig));
	if (t->siglen <= 0 || t->siglen > JWT_SIG_MAX) {
		snprintf(err, errlen, "bad JWT signature");
		jwt_free(t);
		return -1;
	}
	return 0;
}

/* A numeric date claim: 1 if present, 0 if absent, -1 if malformed. */
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

/* The claims, if exp and nbf allow them now; else NULL and why. */
static struct json_object *
jwt_claims_now(struct jwt *t, char *err, size_t errlen)
{
	struct json_object	*claims = t->claims;
	int64_t			 when;
	int			 rc;

	if ((rc = jwt_time(claims, "exp", &when)) == -1 ||
	    (rc == 1 && when <= (int64_t)time(NULL)))
		snprintf(err, errlen, "JWT expired");
	else if ((rc = jwt_time(claims, "nbf", &when)) == -1 ||
	    (rc == 1 && when > (int64_t)time(NULL)))
		snprintf(err, errlen, "JWT not valid yet");
	else {
		t->claims = NULL;
		jwt_free(t);
		return claims;
	}
	jwt_free(t);
	return NULL;
}

/*
 * Verify token against secret.  Returns the claims (the caller puts them),
 * or NULL with the reason in err.
 */
struct json_object *
jwt_verify_hs(const char *token, const char *secret, char *err,
    size_t errlen)
{
	struct jwt	 t;
	const EVP_MD	*md;
	const char	*alg;
	unsigned char	 want[EVP_MAX_MD_SIZE];
	unsigned int	 wantlen;

	if (jwt_decode(token, &t, err, errlen) == -1)
		return NULL;
	alg = json_get_string(t.hdr, "alg");
	md = alg == NULL ? NULL : strcmp(alg, "HS256") == 0 ? EVP_sha256() :
	    strcmp(alg, "HS512") == 0 ? EVP_sha512() : NULL;
	if (md == NULL) {
		snprintf(err, errlen, "JWT algorithm must be HS256 or HS512");
		jwt_free(&t);
		return NULL;
	}
	if (HMAC(md, secret, (int)strlen(secret), (const unsigned char *)token,
	    t.signed_len, want, &wantlen) == NULL ||
	    (unsigned int)t.siglen != wantlen ||
	    CRYPTO_memcmp(t.sig, want, wantlen) != 0) {
		snprintf(err, errlen, "bad JWT signature");
		jwt_free(&t);
		return NULL;
	}
	return jwt_claims_now(&t, err, errlen);
}

/* An HS256 token of claims (which it puts), or NULL. */
char *
jwt_sign_hs256(struct json_object *claims, const char *secret)
{
	static const char	 hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen;
	const char		*text;
	char			*out = NULL;
	size_t			 len, cap, n;

	text = json_text(claims, &len);
	cap = (sizeof(hdr) + len) / 3 * 4 + 128;
	if (len > JWT_MAX / 2 || (out = malloc(cap)) == NULL)
		goto done;
	n = (size_t)jwt_b64url_encode(hdr, sizeof(hdr) - 1, out, cap);
	out[n++] = '.';
	n += (size_t)jwt_b64url_encode(text, len, out + n, cap - n);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (unsigned char *)out, n, md, &mdlen) == NULL) {
		free(out);
		out = NULL;
		goto done;
	}
	out[n++] = '.';
	jwt_b64url_encode(md, mdlen, out + n, cap - n);
done:
	json_object_put(claims);
	return out;
}

/* A base64url member of a JWK as a big number. */
static BIGNUM *
jwk_bn(struct json_object *jwk, const char *key, int want_len)
{
	unsigned char	 raw[1024];
	const char	*s = json_get_string(jwk, key);
	int		 n;

	if (s == NULL || (n = jwt_b64url_decode(s, strlen(s), raw,
	    sizeof(raw))) <= 0 || (want_len != 0 && n != want_len))
		return NULL;
	return BN_bin2bn(raw, n, NULL);
}

/* The public key a JWK describes (RSA, or EC on P-256), or NULL. */
static EVP_PKEY *
jwk_key(struct json_object *jwk, int *is_ec)
{
	OSSL_PARAM_BLD	*bld = NULL;
	OSSL_PARAM	*params = NULL;
	EVP_PKEY_CTX	*ctx = NULL;
	EVP_PKEY	*pkey = NULL;
	BIGNUM		*a = NULL, *b = NULL;
	const char	*kty = json_get_string(jwk, "kty");
	const char	*crv = json_get_string(jwk, "crv");
	unsigned char	 pub[65];

	*is_ec = kty != NULL && strcmp(kty, "EC") == 0;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL || kty == NULL)
		goto done;
	if (strcmp(kty, "RSA") == 0) {
		if ((a = jwk_bn(jwk, "n", 0)) == NULL ||
		    (b = jwk_bn(jwk, "e", 0)) == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, a) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b))
			goto done;
	} else if (*is_ec && crv != NULL && strcmp(crv, "P-256") == 0) {
		if ((a = jwk_bn(jwk, "x", 32)) == NULL ||
		    (b = jwk_bn(jwk, "y", 32)) == NULL)
			goto done;
		pub[0] = 0x04;	/* uncompressed point */
		if (BN_bn2binpad(a, pub + 1, 32) != 32 ||
		    BN_bn2binpad(b, pub + 33, 32) != 32 ||
		    !OSSL_PARAM_BLD_push_utf8_string(bld,
		    OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld,
		    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
			goto done;
	} else
		goto done;
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, *is_ec ? "EC" : "RSA",
	    NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	if (pkey != NULL && !*is_ec && EVP_PKEY_get_bits(pkey) < 2048) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
done:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(a);
	BN_free(b);
	return pkey;
}

/* ES256 signatures are r || s; OpenSSL verifies DER. */
static int
jwt_es256_der(const unsigned char *raw, int len, unsigned char **der)
{
	ECDSA_SIG	*sig;
	BIGNUM		*r, *s;
	int		 n;

	if (len != 64 || (sig = ECDSA_SIG_new()) == NULL)
		return -1;
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return -1;
	}
	*der = NULL;
	n = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	return n;
}

/*
 * Verify token against a JSON Web Key Set: RS256 or ES256, the key chosen
 * by the header's kid.  Returns the claims or NULL with the reason in err;
 * *unknown_kid is set when no key of the set has the token's kid (the set
 * may be stale).
 */
struct json_object *
jwt_verify_jwks(const char *token, struct json_object *jwks,
    int *unknown_kid, char *err, size_t errlen)
{
	struct jwt		 t;
	struct json_object	*keys, *jwk = NULL;
	const char		*alg, *kid, *k;
	EVP_MD_CTX		*md = NULL;
	EVP_PKEY		*pkey = NULL;
	unsigned char		*der = NULL;
	const unsigned char	*sig;
	size_t			 i, n;
	int			 is_ec, siglen, ok = 0;

	*unknown_kid = 0;
	if (jwt_decode(token, &t, err, errlen) == -1)
		return NULL;
	alg = json_get_string(t.hdr, "alg");
	kid = json_get_string(t.hdr, "kid");
	if (alg == NULL || (strcmp(alg, "RS256") != 0 &&
	    strcmp(alg, "ES256") != 0)) {
		snprintf(err, errlen, "JWT algorithm must be RS256 or ES256");
		goto done;
	}
	if (jwks != NULL && json_object_object_get_ex(jwks, "keys", &keys) &&
	    json_object_is_type(keys, json_type_array)) {
		n = json_object_array_length(keys);
		for (i = 0; i < n && jwk == NULL; i++) {
			struct json_object *c = json_object_array_get_idx(keys,
			    i);

			k = kid != NULL ? json_get_string(c, "kid") :
			    json_get_string(c, "kty");
			if (k != NULL && strcmp(k, kid != NULL ? kid :
			    alg[0] == 'E' ? "EC" : "RSA") == 0)
				jwk = c;
		}
	}
	if (jwk == NULL) {
		*unknown_kid = 1;
		snprintf(err, errlen, "no key for the JWT's kid");
		goto done;
	}
	if ((pkey = jwk_key(jwk, &is_ec)) == NULL ||
	    is_ec != (strcmp(alg, "ES256") == 0)) {
		snprintf(err, errlen, "the key does not fit the JWT's "
		    "algorithm");
		goto done;
	}
	sig = t.sig;
	siglen = t.siglen;
	if (is_ec) {
		if ((siglen = jwt_es256_der(t.sig, t.siglen, &der)) <= 0) {
			snprintf(err, errlen, "bad JWT signature");
			goto done;
		}
		sig = der;
	}
	ok = (md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	    EVP_DigestVerify(md, sig, (size_t)siglen,
	    (const unsigned char *)token, t.signed_len) == 1;
	if (!ok)
		snprintf(err, errlen, "bad JWT signature");
done:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	if (!ok) {
		jwt_free(&t);
		return NULL;
	}
	return jwt_claims_now(&t, err, errlen);
}

/* The claims of token, unverified: only to learn whose it claims to be. */
struct json_object *
jwt_peek(const char *token)
{
	struct jwt		 t;
	struct json_object	*claims;
	char			 err[64];

	if (jwt_decode(token, &t, err, sizeof(err)) == -1)
		return NULL;
	claims = t.claims;
	t.claims = NULL;
	jwt_free(&t);
	return claims;
}
