/*
 * test_deflate.c: cmocka unit tests for src/server_deflate.c.
 *
 * Covered: the choice among Sec-WebSocket-Extensions offers (a table of
 * valid and invalid ones, and the response written); compression of one
 * message, read back by a plain zlib inflate with the window agreed (8
 * bits too, which zlib cannot deflate with); inflation of a client's
 * message fed whole, octet by octet and in odd chunks; the output bound,
 * hit before the input ends; a final block (BFINAL) and data that is not
 * DEFLATE.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "roomd.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* negotiation */

static const struct {
	const char	*offer;
	int		 ok, bits;
	const char	*resp;		/* its parameters after the name */
} offers[] = {
	{ NULL, 0, 0, NULL },
	{ "", 0, 0, NULL },
	{ "x-webkit-deflate-frame", 0, 0, NULL },
	{ "permessage-deflate", 1, 15, "" },
	{ "PerMessage-Deflate", 1, 15, "" },
	{ "permessage-deflate; client_max_window_bits", 1, 15, "" },
	{ "permessage-deflate; client_max_window_bits=10", 1, 15, "" },
	{ "permessage-deflate;client_no_context_takeover", 1, 15, "" },
	{ "permessage-deflate; server_no_context_takeover", 1, 15, "" },
	{ "permessage-deflate; server_max_window_bits=8", 1, 8,
	    "; server_max_window_bits=8" },
	{ "permessage-deflate; server_max_window_bits=\"12\"", 1, 12,
	    "; server_max_window_bits=12" },
	{ "permessage-deflate ; server_max_window_bits = 9 ", 1, 9,
	    "; server_max_window_bits=9" },
	{ "permessage-deflate; server_max_window_bits", 0, 0, NULL },
	{ "permessage-deflate; server_max_window_bits=7", 0, 0, NULL },
	{ "permessage-deflate; server_max_window_bits=16", 0, 0, NULL },
	{ "permessage-deflate; server_max_window_bits=09", 0, 0, NULL },
	{ "permessage-deflate; server_max_window_bits=1a", 0, 0, NULL },
	{ "permessage-deflate; client_max_window_bits=", 0, 0, NULL },
	{ "permessage-deflate; client_max_window_bits; "
	    "client_max_window_bits", 0, 0, NULL },
	{ "permessage-deflate; server_no_context_takeover=yes", 0, 0, NULL },
	{ "permessage-deflate; unknown", 0, 0, NULL },
	{ "permessage-deflate; server_max_window_bits=\"10", 0, 0, NULL },
	{ "permessage-deflate; unknown, permessage-deflate; "
	    "server_max_window_bits=11", 1, 11,
	    "; server_max_window_bits=11" },
	{ "foo, , permessage-deflate", 1, 15, "" },
	{ "foo; a=\"x,y\", permessage-deflate", 1, 15, "" },
	{ "permessage-deflate junk", 0, 0, NULL },
};

static void
test_negotiate(void **state)
{
	char	 resp[256], want[256];
	size_t	 i;
	int	 bits, ok, bad = 0;

	for (i = 0; i < nitems(offers); i++) {
		bits = 0;
		resp[0] = '\0';
		ok = server_deflate_negotiate(offers[i].offer, &bits, resp,
		    sizeof(resp));
		if (offers[i].ok)
			snprintf(want, sizeof(want), "Sec-WebSocket-Extensions: "
			    "permessage-deflate; server_no_context_takeover; "
			    "client_no_context_takeover%s\r\n", offers[i].resp);
		if (ok != offers[i].ok || (ok && (bits != offers[i].bits ||
		    strcmp(resp, want) != 0))) {
			print_error("offer %s: got %d, bits %d, \"%s\"\n",
			    offers[i].offer ? offers[i].offer : "(none)", ok,
			    bits, resp);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ */
/* compression */

/* Octets that compress some (text) or not at all (noise). */
static uint8_t *
sample(size_t len, int noise)
{
	static const char words[] = "the room sends a stroke to every "
	    "member that joined it; ";
	uint8_t	*p = malloc(len ? len : 1);
	size_t	 i;
	uint32_t x = 7692;

	assert_non_null(p);
	for (i = 0; i < len; i++) {
		x = x * 1103515245 + 12345;
		p[i] = noise ? (uint8_t)(x >> 16) :
		    (uint8_t)words[i % (sizeof(words) - 1)];
	}
	return p;
}

/* Inflate a frame payload as a client would, with a window of 2^bits. */
static size_t
client_inflate(const uint8_t *z, size_t zlen, int bits, uint8_t *out,
    size_t cap)
{
	static const uint8_t tail[4] = { 0, 0, 0xff, 0xff };
	z_stream	 s;
	int		 rc;

	memset(&s, 0, sizeof(s));
	assert_int_equal(inflateInit2(&s, -bits), Z_OK);
	s.next_out = out;
	s.avail_out = (uInt)cap;
	s.next_in = (Bytef *)(uintptr_t)z;
	s.avail_in = (uInt)zlen;
	rc = inflate(&s, Z_SYNC_FLUSH);
	assert_true(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
	s.next_in = (Bytef *)(uintptr_t)tail;
	s.avail_in = 4;
	rc = inflate(&s, Z_SYNC_FLUSH);
	assert_true(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
	inflateEnd(&s);
	return cap - s.avail_out;
}

static void
test_compress_roundtrip(void **state)
{
	static const size_t	 lens[] = { 0, 1, 16, 300, 4096, 70000, 300000 };
	struct evbuffer		*in, *out;
	uint8_t			*data, *back, *z;
	size_t			 i, zlen, got;
	int			 bits, noise;

	for (noise = 0; noise < 2; noise++)
		for (bits = 8; bits <= 15; bits++)
			for (i = 0; i < nitems(lens); i++) {
				data = sample(lens[i], noise);
				in = evbuffer_new();
				out = evbuffer_new();
				/* Three octets of "header" to skip, and the
				 * payload in pieces, as a frame has them. */
				evbuffer_add(in, "HDR", 3);
				evbuffer_add(in, data, lens[i] / 2);
				evbuffer_add_reference(in, data + lens[i] / 2,
				    lens[i] - lens[i] / 2, NULL, NULL);
				assert_int_equal(server_deflate_message(bits,
				    in, 3, out), 0);
				zlen = evbuffer_get_length(out);
				z = evbuffer_pullup(out, -1);
				back = malloc(lens[i] + 64);
				got = client_inflate(z, zlen, bits, back,
				    lens[i] + 64);
				assert_int_equal(got, lens[i]);
				assert_memory_equal(back, data, lens[i]);
				/* Text shrinks; by half but with 8 bits,
				 * where only runs are matched (Z_RLE). */
				if (!noise && lens[i] >= 300)
					assert_true(zlen < (bits == 8 ?
					    lens[i] : lens[i] / 2));
				free(back);
				evbuffer_free(in);
				evbuffer_free(out);
				free(data);
			}
}

/* ------------------------------------------------------------------ */
/* inflation */

/* A client's compressed message: a raw deflate, sync flushed, tail cut
 * (or, with final, one final block). */
static uint8_t *
client_deflate(const uint8_t *p, size_t len, int final, size_t *zlen)
{
	z_stream	 s;
	uint8_t		*z;
	size_t		 cap = len + len / 100 + 128;

	memset(&s, 0, sizeof(s));
	assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY), Z_OK);
	z = malloc(cap);
	s.next_in = (Bytef *)(uintptr_t)p;
	s.avail_in = (uInt)len;
	s.next_out = z;
	s.avail_out = (uInt)cap;
	assert_int_equal(deflate(&s, final ? Z_FINISH : Z_SYNC_FLUSH),
	    final ? Z_STREAM_END : Z_OK);
	*zlen = cap - s.avail_out;
	if (!final) {
		assert_true(*zlen >= 4);
		assert_memory_equal(z + *zlen - 4, "\x00\x00\xff\xff", 4);
		*zlen -= 4;
	}
	deflateEnd(&s);
	return z;
}

static void
inflate_in_chunks(const uint8_t *z, size_t zlen, size_t chunk,
    const uint8_t *want, size_t len)
{
	struct server_deflate_in	*in = server_deflate_in_new();
	const uint8_t			*msg;
	size_t				 off, n, mlen;

	assert_non_null(in);
	for (off = 0; off < zlen; off += n) {
		n = zlen - off < chunk ? zlen - off : chunk;
		assert_int_equal(server_deflate_in_feed(in, z + off, n,
		    len), 0);
	}
	assert_int_equal(server_deflate_in_finish(in, len, &msg, &mlen), 0);
	assert_int_equal(mlen, len);
	assert_memory_equal(msg, want, len);
	server_deflate_in_free(in);
}

static void
test_inflate_chunked(void **state)
{
	static const size_t	 lens[] = { 0, 5, 1000, 100000 };
	static const size_t	 chunks[] = { 1, 3, 1000, 1 << 30 };
	uint8_t			*data, *z;
	size_t			 i, c, zlen;
	int			 final;

	for (final = 0; final < 2; final++)
		for (i = 0; i < nitems(lens); i++) {
			data = sample(lens[i], i == 3);
			z = client_deflate(data, lens[i], final, &zlen);
			for (c = 0; c < nitems(chunks); c++)
				if (chunks[c] > 1 || zlen < 20000)
					inflate_in_chunks(z, zlen, chunks[c],
					    data, lens[i]);
			free(z);
			free(data);
		}
}

static void
test_inflate_bound_hit_while_inflating(void **state)
{
	struct server_deflate_in	*in;
	uint8_t				*zeros, *z;
	size_t				 zlen, off;
	int				 rc = 0;

	zeros = calloc(1, 4 << 20);
	z = client_deflate(zeros, 4 << 20, 0, &zlen);
	in = server_deflate_in_new();
	/* 1 MiB allowed: refused before half of the input is in. */
	for (off = 0; off < zlen && rc == 0; off += 64)
		rc = server_deflate_in_feed(in, z + off, zlen - off < 64 ?
		    zlen - off : 64, 1 << 20);
	assert_int_equal(rc, DEFLATE_ETOOBIG);
	assert_true(off < zlen / 2);
	server_deflate_in_free(in);
	/* Exactly the limit passes. */
	in = server_deflate_in_new();
	free(z);
	z = client_deflate(zeros, 1 << 20, 0, &zlen);
	assert_int_equal(server_deflate_in_feed(in, z, zlen, 1 << 20), 0);
	{
		const uint8_t	*msg;
		size_t		 mlen;

		assert_int_equal(server_deflate_in_finish(in, 1 << 20, &msg,
		    &mlen), 0);
		assert_int_equal(mlen, 1 << 20);
	}
	server_deflate_in_free(in);
	free(z);
	free(zeros);
}

static void
test_inflate_bad_data(void **state)
{
	struct server_deflate_in	*in = server_deflate_in_new();
	const uint8_t			*msg;
	size_t				 mlen;
	int				 rc;

	rc = server_deflate_in_feed(in, (const uint8_t *)"\xff\xff\xff\xff",
	    4, 1000);
	if (rc == 0)
		rc = server_deflate_in_finish(in, 1000, &msg, &mlen);
	assert_int_equal(rc, DEFLATE_EDATA);
	server_deflate_in_free(in);
	assert_string_equal(server_deflate_strerror(DEFLATE_ETOOBIG),
	    "message too big");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_compress_roundtrip),
		cmocka_unit_test(test_inflate_chunked),
		cmocka_unit_test(test_inflate_bound_hit_while_inflating),
		cmocka_unit_test(test_inflate_bad_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
