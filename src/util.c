/*
 * util.c: small helpers shared by the daemon: JSON in and out (json-c),
 * tokens and ids (OpenSSL, libuuid), digests, query strings, validation.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <uuid/uuid.h>

#include "roomd.h"

/*
 * RFC 8259 syntax, checked before json-c sees the text: json-c, even in
 * strict mode, takes NaN, Infinity, "1.", single-quoted keys, raw control
 * characters in strings and some invalid UTF-8.  Returns the end of the
 * value at p, or NULL.
 */
#define JSON_MAX_DEPTH	64

static const char *json_value(const char *, const char *, int);

static const char *
json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *
json_string(const char *p, const char *end)
{
	const char	*start;

	if (p == end || *p++ != '"')
		return NULL;
	start = p;
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p++ != '\\')
			continue;
		if (p == end)
			return NULL;
		if (*p == 'u') {
			if (end - p < 5 || !isxdigit((unsigned char)p[1]) ||
			    !isxdigit((unsigned char)p[2]) ||
			    !isxdigit((unsigned char)p[3]) ||
			    !isxdigit((unsigned char)p[4]))
				return NULL;
			p += 5;
		} else if (strchr("\"\\/bfnrt", *p) != NULL && *p != '\0')
			p++;
		else
			return NULL;
	}
	if (p == end || !util_valid_utf8((const uint8_t *)start,
	    (size_t)(p - start)))
		return NULL;
	return p + 1;
}

static const char *
json_digits(const char *p, const char *end)
{
	const char	*q = p;

	while (q < end && isdigit((unsigned char)*q))
		q++;
	return q == p ? NULL : q;
}

static const char *
json_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if ((p = json_digits(p, end)) == NULL)
		return NULL;
	if (p < end && *p == '.' && (p = json_digits(p + 1, end)) == NULL)
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((p = json_digits(p, end)) == NULL)
			return NULL;
	}
	return p;
}

static const char *
json_members(const char *p, const char *end, int depth, char close, int obj)
{
	p = json_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			if ((p = json_string(p, end)) == NULL)
				return NULL;
			p = json_ws(p, end);
			if (p == end || *p++ != ':')
				return NULL;
		}
		if ((p = json_value(p, end, depth + 1)) == NULL)
			return NULL;
		p = json_ws(p, end);
		if (p < end && *p == close)
			return p + 1;
		if (p == end || *p++ != ',')
			return NULL;
		p = json_ws(p, end);
	}
}

static const char *
json_value(const char *p, const char *end, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t	 i, n;

	p = json_ws(p, end);
	if (p == end || depth > JSON_MAX_DEPTH)
		return NULL;
	switch (*p) {
	case '{':
		return json_members(p, end, depth, '}', 1);
	case '[':
		return json_members(p, end, depth, ']', 0);
	case '"':
		return json_string(p, end);
	}
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		n = strlen(words[i]);
		if ((size_t)(end - p) >= n && memcmp(p, words[i], n) == 0)
			return p + n;
	}
	return json_number(p, end);
}

/*
 * Parse a whole buffer as one JSON value (white space around it allowed),
 * strictly by RFC 8259.  Returns 0 and the value in *out (NULL for JSON
 * null), or -1.
 */
int
json_parse(const char *buf, size_t len, struct json_object **out)
{
	struct json_tokener	*tok;
	struct json_object	*obj;
	enum json_tokener_error	 err;
	const char		*vend;

	*out = NULL;
	/* An empty WebSocket message arrives as (NULL, 0): no JSON, and no
	 * arithmetic on a null pointer. */
	if (buf == NULL || len == 0 || len > INT32_MAX)
		return -1;
	vend = json_value(buf, buf + len, 0);
	if (vend == NULL || json_ws(vend, buf + len) != buf + len ||
	    (tok = json_tokener_new()) == NULL)
		return -1;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	err = json_tokener_get_error(tok);
	if (err == json_tokener_continue) {
		/* A bare number or literal may wait for more input: a NUL
		 * byte tells the tokener that the text has ended. */
		obj = json_tokener_parse_ex(tok, "", 1);
		err = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);
	if (err != json_tokener_success) {
		json_object_put(obj);
		return -1;
	}
	*out = obj;
	return 0;
}

const char *
json_text(struct json_object *obj, size_t *len)
{
	return json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, len);
}

/*
 * s (len bytes, up to a NUL) as a JSON string, quotes included, written
 * to out, which has room for JSON_QUOTE_MAX(len) bytes; returns the bytes
 * written.  The escaping is json_text()'s, byte for byte: \b \f \n \r
 * \t \" and \\ by name, other bytes below 0x20 as \u00xx (lower case),
 * everything else (the slash, DEL, UTF-8) as it is.
 */
size_t
json_quote(char *out, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	char			*o = out;
	unsigned char		 c;
	size_t			 i;

	*o++ = '"';
	for (i = 0; i < len && s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':	*o++ = '"'; break;
		case '\\':	*o++ = '\\'; break;
		case '\b':	*o++ = 'b'; break;
		case '\f':	*o++ = 'f'; break;
		case '\n':	*o++ = 'n'; break;
		case '\r':	*o++ = 'r'; break;
		case '\t':	*o++ = 't'; break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[c >> 4];
			o[4] = hex[c & 0xf];
			o += 5;
		}
	}
	*o++ = '"';
	return (size_t)(o - out);
}

/*
 * The string value of key, or NULL if absent, not a string, or holding a
 * NUL character (which C strings would silently cut short).
 */
const char *
json_get_string(struct json_object *obj, const char *key)
{
	struct json_object	*v;
	const char		*s;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return NULL;
	return s;
}

/* A secret of MEMBER_TOKEN_LEN hex characters. */
int
util_token(char *buf, size_t len)
{
	unsigned char	 raw[MEMBER_TOKEN_LEN / 2];
	size_t		 i;

	if (len < MEMBER_TOKEN_LEN + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	for (i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

int
util_uuid(char *buf)
{
	uuid_t	 u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, buf);
	return 0;
}

int
util_sha1_base64(const char *in, size_t len, char *out, size_t outlen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;

	if (outlen < 29 || EVP_Digest(in, len, md, &mdlen, EVP_sha1(), NULL)
	    != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
	return 0;
}

/* SHA-256 of salt then data. */
void
util_sha256(const void *salt, size_t saltlen, const void *data, size_t len,
    uint8_t *out)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned int	 n;

	if (ctx == NULL)
		fatalx("%s: out of memory", __func__);
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, salt, saltlen);
	EVP_DigestUpdate(ctx, data, len);
	EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}

/*
 * Both strings are hashed first, so that what is compared has one length
 * whatever theirs, and CRYPTO_memcmp looks at every byte: how long the
 * answer takes tells nothing of how much of a guess was right.
 */
int
util_secret_equal(const char *a, const char *b)
{
	uint8_t	 da[32], db[32];

	util_sha256("", 0, a, strlen(a), da);
	util_sha256("", 0, b, strlen(b), db);
	return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Find key in a query string and copy its percent-decoded value.
 * Returns the number of times key occurs (0: absent), or -1 if a value
 * does not fit or is badly encoded.
 */
int
util_query_get(const char *query, const char *key, char *out, size_t outlen)
{
	const char	*p = query, *amp, *eq;
	size_t		 klen = strlen(key), i, n;
	int		 found = 0;

	if (out != NULL && outlen == 0)
		return -1;
	if (out != NULL)
		out[0] = '\0';
	while (p != NULL && *p != '\0') {
		amp = strchr(p, '&');
		eq = memchr(p, '=', amp ? (size_t)(amp - p) : strlen(p));
		n = eq ? (size_t)(eq - p) : amp ? (size_t)(amp - p) : strlen(p);
		if (n == klen && strncmp(p, key, klen) == 0) {
			const char *v = eq ? eq + 1 : p + n;
			const char *vend = amp ? amp : v + strlen(v);

			if (found++ == 0 && out != NULL) {
				for (i = 0; v < vend; v++) {
					int c = (unsigned char)*v;

					if (c == '%') {
						int h = vend - v > 2 ?
						    hexval(v[1]) : -1;
						int l = h >= 0 ? hexval(v[2]) :
						    -1;
						if (l < 0)
							return -1;
						c = h * 16 + l;
						v += 2;
					} else if (c == '+')
						c = ' ';
					if (i + 1 >= outlen || c == 0)
						return -1;
					out[i++] = (char)c;
				}
				out[i] = '\0';
			}
		}
		p = amp ? amp + 1 : NULL;
	}
	return found;
}

/* 1..max characters of [A-Za-z0-9_-]. */
int
util_valid_id(const char *s, size_t max)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return 0;
	return n >= 1 && n <= max;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, at most U+10FFFF. */
int
util_valid_utf8(const uint8_t *s, size_t len)
{
	size_t	 i = 0;

	while (i < len) {
		uint8_t	 c = s[i];
		size_t	 n, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return 0;
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* "123", "64K", "256M", "1G". */
int
util_parse_size(const char *s, uint64_t *out)
{
	char			*end;
	unsigned long long	 n;
	int			 shift = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (n > (~0ULL >> shift))
		return -1;
	*out = (uint64_t)n << shift;
	return 0;
}

uint64_t
util_now(void)
{
	return (uint64_t)time(NULL);
}
