/*
 * server_deflate.c: permessage-deflate (RFC 7692), the codec and its
 * negotiation; server_ws.c does the framing.
 *
 * roomd always answers with server_no_context_takeover and
 * client_no_context_takeover (a server may ask for the latter even when
 * the client did not offer it, RFC 7692 section 7.1.1.2).  So each
 * message is compressed and inflated on its own:
 *
 * - a room's message is compressed once per worker and the same bytes go
 *   to every member that negotiated the same window (server_ws.c keeps
 *   the compressed variant of a shared frame);
 * - compression uses one zlib stream per window size per worker, reset
 *   between messages, not one per connection;
 * - an inflate stream exists only while a compressed message is being
 *   read, and its output is bounded as it grows, so a small message that
 *   inflates to gigabytes is refused after max_message_bytes of output.
 *
 * An idle connection that negotiated compression keeps no zlib state at
 * all; one that did not costs nothing more than before.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "roomd.h"

#define DEFLATE_TAIL	"\x00\x00\xff\xff"	/* of a sync flush */
#define DEFLATE_CHUNK	4096	/* first inflate buffer */

/* An inflate in progress: one compressed message being read. */
struct server_deflate_in {
	z_stream	 z;
	uint8_t		*out;
	size_t		 len, cap;
	int		 ended;		/* a final block was read */
};

/* The worker's compressors, by window bits - 8, made on first use. */
static z_stream	*deflaters[8];

/*
 * Parsing of a Sec-WebSocket-Extensions value: a list of extensions
 * separated by commas, each a name and parameters separated by
 * semicolons, a parameter a token with an optional value (a token or a
 * quoted string).
 */
struct pmd_offer {
	int	 server_bits;		/* 0: not given */
	int	 client_bits;		/* -1: given without value; 0: not */
	int	 server_nct, client_nct;
	int	 bad;
};

static const char *
pmd_skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int
pmd_tchar(int c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?={}", c) ==
	    NULL;
}

/* A token into buf (truncated; an overlong one is never valid here).
 * Returns the end, or NULL if there is none at p. */
static const char *
pmd_token(const char *p, char *buf, size_t len)
{
	size_t	 n = 0;

	if (!pmd_tchar((unsigned char)*p))
		return NULL;
	for (; pmd_tchar((unsigned char)*p); p++)
		if (n + 1 < len)
			buf[n++] = *p;
	buf[n] = '\0';
	return p;
}

/* A token or a quoted string (unquoted into buf). */
static const char *
pmd_value(const char *p, char *buf, size_t len)
{
	size_t	 n = 0;

	if (*p != '"')
		return pmd_token(p, buf, len);
	for (p++; *p != '"'; p++) {
		if (*p == '\0')
			return NULL;
		if (*p == '\\' && *++p == '\0')
			return NULL;
		if (n + 1 < len)
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return p + 1;
}

/* Window bits as RFC 7692 writes them: 8 to 15, no leading zero. */
static int
pmd_bits(const char *v)
{
	if (strlen(v) == 1 && (v[0] == '8' || v[0] == '9'))
		return v[0] - '0';
	if (strlen(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
		return 10 + v[1] - '0';
	return 0;
}

/* One parameter of a permessage-deflate offer; sets o->bad if it is
 * unknown, repeated or of a bad value. */
static void
pmd_param(struct pmd_offer *o, const char *name, const char *value)
{
	if (strcmp(name, "server_no_context_takeover") == 0) {
		o->bad |= o->server_nct || value != NULL;
		o->server_nct = 1;
	} else if (strcmp(name, "client_no_context_takeover") == 0) {
		o->bad |= o->client_nct || value != NULL;
		o->client_nct = 1;
	} else if (strcmp(name, "server_max_window_bits") == 0) {
		o->bad |= o->server_bits != 0 || value == NULL;
		if (value != NULL && (o->server_bits = pmd_bits(value)) == 0)
			o->bad = 1;
	} else if (strcmp(name, "client_max_window_bits") == 0) {
		o->bad |= o->client_bits != 0;
		o->client_bits = value == NULL ? -1 : pmd_bits(value);
		o->bad |= o->client_bits == 0;
	} else
		o->bad = 1;
}

/* One extension of the list at p: its name into name, its parameters
 * into o if it is permessage-deflate.  Returns the end (at a comma or the
 * string's end), or NULL if the list is malformed. */
static const char *
pmd_extension(const char *p, char *name, size_t len, struct pmd_offer *o)
{
	char	 param[64], value[64];
	int	 has;

	memset(o, 0, sizeof(*o));
	if ((p = pmd_token(pmd_skip_ws(p), name, len)) == NULL)
		return NULL;
	for (p = pmd_skip_ws(p); *p == ';'; p = pmd_skip_ws(p)) {
		if ((p = pmd_token(pmd_skip_ws(p + 1), param,
		    sizeof(param))) == NULL)
			return NULL;
		p = pmd_skip_ws(p);
		if ((has = *p == '=') && (p = pmd_value(pmd_skip_ws(p + 1),
		    value, sizeof(value))) == NULL)
			return NULL;
		pmd_param(o, param, has ? value : NULL);
	}
	return *p == ',' || *p == '\0' ? p : NULL;
}

int
server_deflate_negotiate(const char *offers, int *server_bits, char *resp,
    size_t len)
{
	struct pmd_offer	 o;
	char			 name[64];
	const char		*p = offers;

	if (offers == NULL)
		return 0;
	for (;;) {
		p = pmd_skip_ws(p);
		while (*p == ',')		/* empty elements are allowed */
			p = pmd_skip_ws(p + 1);
		if (*p == '\0')
			return 0;
		if ((p = pmd_extension(p, name, sizeof(name), &o)) == NULL)
			return 0;
		if (strcasecmp(name, "permessage-deflate") == 0 && !o.bad)
			break;
	}
	*server_bits = o.server_bits ? o.server_bits : 15;
	if (o.server_bits)
		snprintf(resp, len, "Sec-WebSocket-Extensions: "
		    "permessage-deflate; server_no_context_takeover; "
		    "client_no_context_takeover; server_max_window_bits=%d\r\n",
		    o.server_bits);
	else
		snprintf(resp, len, "Sec-WebSocket-Extensions: "
		    "permessage-deflate; server_no_context_takeover; "
		    "client_no_context_takeover\r\n");
	return 1;
}

/*
 * The compressor for a window of 2^bits.  zlib refuses a raw window of
 * 256 bytes (8 bits) since 1.2.9; for it, deflate with 512 and Z_RLE,
 * whose matches are all at distance one, which any window holds.
 */
static z_stream *
deflate_stream(int bits)
{
	z_stream	*z;

	if (bits < 8 || bits > 15)
		return NULL;
	if ((z = deflaters[bits - 8]) != NULL) {
		deflateReset(z);
		return z;
	}
	if ((z = calloc(1, sizeof(*z))) == NULL)
		return NULL;
	if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
	    -(bits == 8 ? 9 : bits), 8, bits == 8 ? Z_RLE :
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	return deflaters[bits - 8] = z;
}

/* The worker's output buffer for compression, grown to the largest
 * message compressed. */
static uint8_t	*zbuf;
static size_t	 zbuf_len;

static int
deflate_room(size_t len)
{
	void	*p;

	if (len <= zbuf_len)
		return 0;
	if ((p = realloc(zbuf, len)) == NULL)
		return -1;
	zbuf = p;
	zbuf_len = len;
	return 0;
}

int
server_deflate_message(int bits, struct evbuffer *in, size_t skip,
    struct evbuffer *out)
{
	struct evbuffer_iovec	 v[16];
	struct evbuffer_ptr	 p;
	z_stream		*z;
	size_t			 total, n, len;
	int			 i, got;

	if ((z = deflate_stream(bits)) == NULL)
		return -1;
	total = evbuffer_get_length(in);
	if (skip > total || deflate_room(deflateBound(z, total - skip) +
	    64) == -1 || evbuffer_ptr_set(in, &p, skip, EVBUFFER_PTR_SET) == -1)
		return -1;
	z->next_out = zbuf;
	z->avail_out = (uInt)zbuf_len;
	for (n = skip; n < total; n += len) {
		got = evbuffer_peek(in, total - n, &p, v, 16);
		for (i = 0, len = 0; i < got && i < 16; i++) {
			if (v[i].iov_len == 0)
				continue;	/* deflate wants some input */
			z->next_in = v[i].iov_base;
			z->avail_in = (uInt)v[i].iov_len;
			if (deflate(z, Z_NO_FLUSH) != Z_OK || z->avail_in > 0)
				return -1;
			len += v[i].iov_len;
		}
		if (len == 0 || evbuffer_ptr_set(in, &p, len,
		    EVBUFFER_PTR_ADD) == -1)
			break;
	}
	if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_out == 0)
		return -1;
	/* The sync flush ends with an empty stored block's 00 00 ff ff,
	 * which the receiver adds back (RFC 7692 section 7.2.1). */
	len = zbuf_len - z->avail_out;
	if (len >= 4 && memcmp(zbuf + len - 4, DEFLATE_TAIL, 4) == 0)
		len -= 4;
	return evbuffer_add(out, zbuf, len);
}

struct server_deflate_in *
server_deflate_in_new(void)
{
	struct server_deflate_in	*in;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	/* A window of 32 KiB reads whatever window the client used. */
	if (inflateInit2(&in->z, -15) != Z_OK) {
		free(in);
		return NULL;
	}
	return in;
}

void
server_deflate_in_free(struct server_deflate_in *in)
{
	if (in == NULL)
		return;
	inflateEnd(&in->z);
	free(in->out);
	free(in);
}

/*
 * Inflate len octets into in->out, never past max octets of output.  A
 * final block (BFINAL, RFC 7692 section 7.2.3.3) ends the message: what
 * follows it, the appended 00 00 ff ff at least, is ignored.
 */
static int
inflate_feed(struct server_deflate_in *in, const uint8_t *data, size_t len,
    size_t max)
{
	size_t	 cap;
	void	*p;
	int	 rc;

	if (in->ended)
		return 0;
	in->z.next_in = (Bytef *)(uintptr_t)data;
	in->z.avail_in = (uInt)len;
	for (;;) {
		if (in->len == in->cap) {
			cap = in->cap ? 2 * in->cap : DEFLATE_CHUNK;
			if (cap > max + 1)
				cap = max + 1;	/* one more shows "too big" */
			if ((p = realloc(in->out, cap)) == NULL)
				return DEFLATE_ENOMEM;
			in->out = p;
			in->cap = cap;
		}
		in->z.next_out = in->out + in->len;
		in->z.avail_out = (uInt)(in->cap - in->len);
		rc = inflate(&in->z, Z_SYNC_FLUSH);
		in->len = in->cap - in->z.avail_out;
		if (in->len > max)
			return DEFLATE_ETOOBIG;
		if (rc == Z_STREAM_END) {
			in->ended = 1;
			return 0;
		}
		if (rc == Z_MEM_ERROR)
			return DEFLATE_ENOMEM;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return DEFLATE_EDATA;
		if (in->z.avail_out > 0 && (in->z.avail_in == 0 ||
		    rc == Z_BUF_ERROR))
			return 0;		/* all of it went in */
	}
}

int
server_deflate_in_feed(struct server_deflate_in *in, const uint8_t *data,
    size_t len, size_t max)
{
	return inflate_feed(in, data, len, max);
}

int
server_deflate_in_finish(struct server_deflate_in *in, size_t max,
    const uint8_t **msg, size_t *len)
{
	int	 rc;

	if ((rc = inflate_feed(in, (const uint8_t *)DEFLATE_TAIL, 4, max)) != 0)
		return rc;
	*msg = in->out != NULL ? in->out : (const uint8_t *)"";
	*len = in->len;
	return 0;
}

const char *
server_deflate_strerror(int e)
{
	switch (e) {
	case DEFLATE_ETOOBIG:
		return "message too big";
	case DEFLATE_EDATA:
		return "invalid compressed data";
	case DEFLATE_ENOMEM:
		return "out of memory";
	}
	return "no error";
}
