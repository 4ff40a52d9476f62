/*
 * fuzz.h: what the libFuzzer harnesses of tests/fuzz share.
 *
 * fuzz_worker.c makes this process one roomd worker (slot 0 of 1) with
 * its own arena in an anonymous mapping, and runs the real src/ code: a
 * client is one end of a socketpair whose other end goes through
 * server.c's accept path, exactly as a connection accepted from a
 * listening socket would.  The harness writes bytes on its end, runs the
 * worker's event loop until nothing is left to do, and reads what came
 * back.
 */
#ifndef ROOMD_FUZZ_H
#define ROOMD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FZ_MAX_CLIENTS	12

struct fz_client {
	int	 fd;		/* the harness's end; -1 when closed */
	char	*rx;		/* what the server sent, up to FZ_RX_MAX */
	size_t	 rxlen;
	size_t	 rxoff;		/* WebSocket frames checked up to here */
	int	 ws;		/* the handshake succeeded */
	int	 lost;		/* rx overflowed: frames no longer checked */
	int	 close_seen;	/* the server sent its close frame */
};
#define FZ_RX_MAX	(256 * 1024)

/* Once per process: the worker's configuration, event base, logging. */
void	 fz_init(void (*tune)(struct roomd_config *));
/* Per input: a fresh arena, a fresh pseudo-random sequence. */
void	 fz_begin(void);
/* Per input: close every client, settle, check, drop the arena. */
void	 fz_end(void);
/* Walk the arena with shm/'s checker; abort with its message if unsound. */
void	 fz_check(const char *when);

int	 fz_connect(void);		/* a new client, or -1 */
void	 fz_send(int, const void *, size_t);
void	 fz_send_chunked(int, const uint8_t *, size_t, const uint8_t *sizes,
	    size_t nsizes);
void	 fz_close(int);
void	 fz_settle(void);
struct fz_client *fz_client(int);
size_t	 fz_nclients(void);
/* Copy the string value of "key" in what a client received (last one). */
int	 fz_rx_value(int, const char *key, char *, size_t);

/* WebSocket, as a client: the handshake and masked frames. */
int	 fz_ws_open(const char *target, const char *extra_headers);
size_t	 fz_ws_frame(uint8_t *, size_t cap, int first_byte, const void *,
	    size_t, uint32_t mask);
void	 fz_ws_send(int, int opcode, const void *, size_t);
/*
 * Check every frame the server sent this client since the last call
 * against RFC 6455's rules for a server (unmasked, minimal lengths, FIN,
 * no reserved bits or opcodes, short unfragmented control frames, valid
 * close codes, UTF-8 text, nothing after close); abort on a violation.
 */
void	 fz_ws_verify(int);
void	 fz_ws_verify_all(void);

/* libFuzzer's entry points, defined by each harness. */
int	 LLVMFuzzerInitialize(int *, char ***);
int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

extern int	 fz_verbose;

#endif /* ROOMD_FUZZ_H */
