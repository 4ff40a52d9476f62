/*
 * wire.h: one connection of the HTTP and WebSocket layers
 * (src/server_http.c, src/server_ws.c) without a socket, for the unit
 * suites test_http.c and test_ws.c.
 *
 * tests/unit/wire.c stands in for what those two files call elsewhere:
 * the transport (server_io.c's conn_* functions, over two evbuffers), the
 * worker (server_close, the message rate) and the routing (dialect_route
 * over two test dialects).  A run feeds one input to a fresh connection
 * in the chunks it is given, as server.c and server_io.c would (a read,
 * then the flush after the loop iteration), and records every byte roomd
 * wrote and every event the test dialects saw.
 *
 * The test dialects:
 *   /wire	HTTP: answers 200 text/plain "METHOD path=P sub=S query=Q
 *		body=B"; sub /hold holds the request until the next
 *		iteration (as one waiting for another server would).
 *		WebSocket: sub /deny refuses the upgrade with 401; a message
 *		is echoed with its type, except the text "close-me" (the
 *		server closes with 1000 "bye") and "ping-me" (a server ping).
 *   /wsonly	WebSocket only: a plain request is answered 426.
 *   elsewhere	the static files (server_file_serve): 404 here.
 */
#ifndef ROOMD_WIRE_H
#define ROOMD_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* What one run produced: compared whole across chunkings. */
struct wire_result {
	char	*out;		/* every byte roomd wrote, in order */
	size_t	 outlen;
	char	*log;		/* one line per event, then how it ended */
};

/*
 * Growing byte strings (NUL-terminated too), for building inputs and
 * expected outputs.
 */
struct wire_buf {
	uint8_t	*p;
	size_t	 len;
};

/* The limits the suites are written for (wire_setup sets them). */
#define WIRE_MAX_HEADER		512
#define WIRE_MAX_BODY		256
#define WIRE_MAX_MESSAGE	1024
#define WIRE_ORIGIN		"https://ok.example"

/* A test's input and the output it expects. */
struct wire_case {
	struct wire_buf	 in, want;
};

/*
 * cmocka's setup and teardown of a test: env with the limits above and
 * the two mounts, and an empty struct wire_case in *state.
 */
int	 wire_setup(void **state);
int	 wire_teardown(void **state);

/*
 * Feed in[0..len) to a new connection in chunks of the sizes given (the
 * last one takes what is left), and return what came of it.
 */
struct wire_result *wire_run(const void *in, size_t len,
	    const size_t *chunks, size_t nchunks);
void	 wire_result_free(struct wire_result *);

/*
 * Run in every chunking: whole, one byte at a time, random splits of
 * several seeds, and (for short inputs) every split in two.  Every run
 * must give the same result as the whole one, which is returned; a
 * difference fails the test, naming the chunking.
 */
struct wire_result *wire_every_chunking(const void *in, size_t len);

/*
 * Run in every chunking and assert that the output is exactly want and
 * the events exactly log (one line each, "end: ..." last).
 */
void	 wire_expect(const struct wire_buf *in, const struct wire_buf *want,
	    const char *log);

/* Print bytes with C escapes (for failure messages). */
void	 wire_print(const char *what, const void *, size_t);

void	 wire_add(struct wire_buf *, const void *, size_t);
void	 wire_adds(struct wire_buf *, const char *);
void	 wire_addf(struct wire_buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 wire_buf_free(struct wire_buf *);

/* A client's frame: first byte as given (FIN, RSV, opcode), masked with
 * key unless key is 0 (then sent unmasked). */
void	 wire_client_frame(struct wire_buf *, int first, const void *,
	    size_t, uint32_t key);
/* A server's frame as roomd writes it: FIN set, unmasked. */
void	 wire_server_frame(struct wire_buf *, int opcode, const void *,
	    size_t);
/* A close frame from the server: code (0: no body) and reason. */
void	 wire_server_close(struct wire_buf *, int code, const char *);

/* The client's opening handshake for path, with extra header lines. */
void	 wire_handshake(struct wire_buf *, const char *path,
	    const char *extra);
/* Exactly what roomd answers a handshake of the key wire_handshake
 * sends (RFC 6455's example key). */
void	 wire_switching(struct wire_buf *);

/*
 * Exactly what server_http_respond writes: the status line and the
 * headers roomd always sends, Connection (keep-alive or close), extra
 * lines, Content-Type if type is not NULL, Content-Length but for 204 and
 * 304, then the body (none if head).
 */
void	 wire_response(struct wire_buf *, int status, int keep,
	    const char *extra, const char *type, const char *body, int head);
/* An error answer: {"error":CODE,"message":MESSAGE} as application/json. */
void	 wire_error(struct wire_buf *, int status, int keep, const char *code,
	    const char *message);

/*
 * Decode what roomd sent after a 101 answer into lines "text: hello",
 * "binary: 3 bytes", "ping: ", "pong: x", "close: 1000 bye", and
 * "bad frame" or "partial frame" if it cannot; NULL if there is no 101.
 * The caller frees the string.
 */
char	*wire_frames(const struct wire_result *);

/* Assert that the output is exactly want, printing both if not. */
#define assert_wire_output(r, want)					\
	wire_assert_output((r), (want), __FILE__, __LINE__)
void	 wire_assert_output(const struct wire_result *,
	    const struct wire_buf *, const char *, int);

#endif /* ROOMD_WIRE_H */
