/*
 * dialect_echo.c: a WebSocket echo, for testing roomd's RFC 6455 layer
 * (conformance, hostile clients).  It has no default mount: it answers
 * only where the configuration or -M echo=PATH puts it.  Every text or
 * binary message comes back as it came; it touches no room.
 */
#include "config.h"

#include <string.h>

#include "roomd.h"

static int
echo_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	return sub[0] == '\0' || strcmp(sub, "/") == 0 ? 0 : 404;
}

static void
echo_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
}

static void
echo_ws_message(struct conn *conn, int binary, const char *data, size_t len)
{
	server_ws_send(conn, binary, data, len);
}

const struct dialect dialect_echo = {
	.name = "echo",
	.id = 6,
	.default_mount = NULL,
	.ws_accept = echo_ws_accept,
	.ws_open = echo_ws_open,
	.ws_message = echo_ws_message,
};
