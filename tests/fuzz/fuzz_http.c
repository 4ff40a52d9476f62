/*
 * fuzz_http.c: roomd's HTTP request layer (src/server_http.c on
 * http-parser), fed one connection's bytes in pieces the input chooses.
 *
 * Input: byte 0 says how many chunk sizes follow (0 to 7); those bytes
 * are the sizes, used in turn (0: all that is left); the rest is what the
 * client sends, which may be several requests, bodies, and an upgrade to
 * a WebSocket followed by frames.  Every dialect is mounted where its
 * default says, the echo dialect on /echo, and htdocs is the source
 * tree's, so requests reach the dialects' REST handlers and the static
 * files too.  After the input the client hangs up; the worker must then
 * free the connection, leave no room counting it, and the arena must be
 * sound.  The limits are lowered so inputs of a few KiB reach them.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "roomd.h"
#include "fuzz.h"

static void
http_tune(struct roomd_config *c)
{
	c->max_header_bytes = 2048;
	c->max_body_bytes = 2048;
	c->max_message_bytes = 4096;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_init(http_tune);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 nsizes;
	int	 c;

	if (size < 1)
		return 0;
	nsizes = data[0] % 8;
	if (size < 1 + nsizes)
		return 0;
	fz_begin();
	if ((c = fz_connect()) == -1)
		abort();
	fz_send_chunked(c, data + 1 + nsizes, size - 1 - nsizes, data + 1,
	    nsizes);
	fz_check("after the requests");
	fz_end();
	return 0;
}
