/*
 * fuzz_ws.c: roomd's WebSocket layer (src/server_ws.c: wslay reads, roomd
 * frames what it sends), fed arbitrary client frames after a valid
 * handshake, in pieces the input chooses.
 *
 * Input:
 *   byte 0	the endpoint: mostly the echo dialect, else chat, screenshare,
 *		lobby or an open classroom (their handlers see the messages)
 *   byte 1	bit 7: raw mode; bits 0-2: how many chunk sizes follow
 *   sizes	chunk sizes used in turn (0: all that is left)
 *   rest	raw mode: the bytes the client sends after the handshake.
 *		Otherwise a list of frames, each: its first byte (FIN, RSV,
 *		opcode) as is, a length byte (0-253; 254: a 16-bit length
 *		follows; 255: the same, and the frame goes unmasked), then
 *		the payload, masked by the harness.
 * Everything the server sends back is checked against RFC 6455's rules
 * for a server (fz_ws_verify), and the arena after the client hangs up.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd.h"
#include "fuzz.h"

static const char *const endpoints[] = {
	"/echo", "/echo", "/echo", "/echo", "/chat?name=fz", "/ws", "/lobby",
	"/classroom?name=fz&room=r1",
};

static void
ws_tune(struct roomd_config *c)
{
	c->max_message_bytes = 8192;
	c->room_log_max_bytes = 32768;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_init(ws_tune);
	return 0;
}

/* Turn the frame list into wire bytes; returns their length. */
static size_t
ws_build(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t	 i = 0, n = 0, plen, k = 0;
	int	 first, masked;

	while (i + 2 <= len) {
		first = in[i];
		plen = in[i + 1];
		masked = plen != 255;
		i += 2;
		if (plen >= 254) {
			if (i + 2 > len)
				break;
			plen = (size_t)in[i] << 8 | in[i + 1];
			i += 2;
		}
		if (plen > len - i)
			plen = len - i;
		if (masked)
			n += fz_ws_frame(out + n, cap - n, first, in + i, plen,
			    0x5a3c9617U * (uint32_t)++k);
		else if (cap - n >= plen + 4) {
			out[n++] = (uint8_t)first;
			if (plen < 126)
				out[n++] = (uint8_t)plen;
			else {
				out[n++] = 126;
				out[n++] = (uint8_t)(plen >> 8);
				out[n++] = (uint8_t)plen;
			}
			memcpy(out + n, in + i, plen);
			n += plen;
		}
		i += plen;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*target;
	uint8_t		*wire;
	size_t		 nsizes, off, n;
	int		 c, raw;

	if (size < 2)
		return 0;
	target = endpoints[data[0] % (sizeof(endpoints) /
	    sizeof(endpoints[0]))];
	raw = data[1] & 0x80;
	nsizes = data[1] & 7;
	off = 2 + nsizes;
	if (size < off)
		return 0;
	fz_begin();
	if ((c = fz_ws_open(target, NULL)) == -1) {
		fprintf(stderr, "fuzz: no WebSocket at %s\n", target);
		abort();
	}
	if (raw)
		fz_send_chunked(c, data + off, size - off, data + 2, nsizes);
	else {
		/* Each frame grows by at most 12 bytes of header. */
		if ((wire = malloc(size * 7 + 16)) == NULL)
			abort();
		n = ws_build(data + off, size - off, wire, size * 7 + 16);
		fz_send_chunked(c, wire, n, data + 2, nsizes);
		free(wire);
	}
	fz_ws_verify(c);
	fz_check("after the frames");
	fz_end();
	return 0;
}
