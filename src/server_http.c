/*
 * server_http.c: HTTP/1.1 requests (parsed by http_parser, fed whatever
 * chunks arrive) and responses.  One request is handled at a time: the
 * parser pauses at the end of each message, the request is routed to the
 * dialect mounted on its path, and parsing resumes with the next one.
 * An upgrade hands the connection to server_ws.c with any bytes that
 * followed the handshake still in the input buffer.
 */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>
#include <json-c/json.h>

#include "roomd.h"

#define HTTP_MAX_HEADERS	100
#define CORS_HEADERS	"Access-Control-Allow-Origin: *\r\n"
#define CORS_PREFLIGHT	"Access-Control-Allow-Methods: GET, POST, DELETE, " \
	"OPTIONS\r\nAccess-Control-Allow-Headers: Authorization, " \
	"Content-Type\r\nAccess-Control-Max-Age: 600\r\n"

static int	http_on_begin(http_parser *);
static int	http_on_url(http_parser *, const char *, size_t);
static int	http_on_field(http_parser *, const char *, size_t);
static int	http_on_value(http_parser *, const char *, size_t);
static int	http_on_headers(http_parser *);
static int	http_on_body(http_parser *, const char *, size_t);
static int	http_on_complete(http_parser *);
static void	http_dispatch(struct conn *, struct http_req *);
static void	http_done(struct conn *);

static const http_parser_settings http_settings = {
	.on_message_begin = http_on_begin,
	.on_url = http_on_url,
	.on_header_field = http_on_field,
	.on_header_value = http_on_value,
	.on_headers_complete = http_on_headers,
	.on_body = http_on_body,
	.on_message_complete = http_on_complete,
};

static struct http_req *
req_of(http_parser *p)
{
	return ((struct conn *)p->data)->req;
}

static void
http_reset(struct http_req *req)
{
	free(req->url);
	free(req->path);
	free(req->hfield);
	free(req->hvalue);
	free(req->upgrade);
	free(req->connection);
	free(req->ws_key);
	free(req->ws_version);
	free(req->ws_extensions);
	free(req->authorization);
	free(req->cookie);
	free(req->host);
	free(req->origin);
	free(req->if_none_match);
	free(req->body);
	memset((char *)req + sizeof(req->parser), 0,
	    sizeof(*req) - sizeof(req->parser));
}

void
server_http_start(struct conn *conn)
{
	http_parser	*p;

	if ((conn->req = calloc(1, sizeof(*conn->req))) == NULL ||
	    (p = malloc(sizeof(*p))) == NULL) {
		free(conn->req);
		conn->req = NULL;
		server_close(conn, "out of memory");
		return;
	}
	http_parser_init(p, HTTP_REQUEST);
	p->data = conn;
	conn->req->parser = p;
	conn->state = CONN_HTTP;
	conn_timeouts(conn, env->conf.idle_timeout, env->conf.idle_timeout);
}

void
server_http_free(struct http_req *req)
{
	http_reset(req);
	free(req->parser);
	free(req);
}

/* Append to a growing string, keeping the header size limit. */
static int
http_append(struct http_req *req, char **dst, size_t *dlen, const char *s,
    size_t n)
{
	size_t	 have = *dst ? strlen(*dst) : 0;
	char	*p;

	req->header_bytes += n;
	if (req->header_bytes > env->conf.max_header_bytes) {
		req->error = 431;
		return -1;
	}
	if ((p = realloc(*dst, have + n + 1)) == NULL) {
		req->error = 500;
		return -1;
	}
	memcpy(p + have, s, n);
	p[have + n] = '\0';
	*dst = p;
	if (dlen != NULL)
		*dlen = have + n;
	return 0;
}

static int
http_on_begin(http_parser *p)
{
	http_reset(req_of(p));
	req_of(p)->started = time(NULL);
	return 0;
}

static int
http_on_url(http_parser *p, const char *at, size_t n)
{
	struct http_req	*req = req_of(p);

	return http_append(req, &req->url, &req->url_len, at, n);
}

/* Keep the headers roomd reads; count and size all of them. */
static void
http_header_done(struct http_req *req)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} keep[] = {
		{ "upgrade", offsetof(struct http_req, upgrade) },
		{ "connection", offsetof(struct http_req, connection) },
		{ "sec-websocket-key", offsetof(struct http_req, ws_key) },
		{ "sec-websocket-version", offsetof(struct http_req,
		    ws_version) },
		{ "authorization", offsetof(struct http_req, authorization) },
		{ "cookie", offsetof(struct http_req, cookie) },
		{ "host", offsetof(struct http_req, host) },
		{ "origin", offsetof(struct http_req, origin) },
		{ "if-none-match", offsetof(struct http_req, if_none_match) },
	};
	size_t	 i;
	char	**slot;

	if (req->hfield == NULL)
		return;
	/* Extensions may be offered over several lines: one list. */
	if (strcasecmp(req->hfield, "sec-websocket-extensions") == 0 &&
	    req->hvalue != NULL) {
		if (req->ws_extensions != NULL)
			http_append(req, &req->ws_extensions, NULL, ", ", 2);
		http_append(req, &req->ws_extensions, NULL, req->hvalue,
		    strlen(req->hvalue));
	}
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (strcasecmp(req->hfield, keep[i].name) == 0) {
			slot = (char **)((char *)req + keep[i].off);
			free(*slot);
			*slot = req->hvalue ? req->hvalue : strdup("");
			req->hvalue = NULL;
			break;
		}
	free(req->hfield);
	free(req->hvalue);
	req->hfield = req->hvalue = NULL;
	req->hstate = 0;
}

static int
http_on_field(http_parser *p, const char *at, size_t n)
{
	struct http_req	*req = req_of(p);

	if (req->hstate == 1)
		http_header_done(req);
	/* A header begins (its name may come in pieces): count it. */
	if (req->hfield == NULL && ++req->nheaders > HTTP_MAX_HEADERS) {
		req->error = 431;
		return -1;
	}
	return http_append(req, &req->hfield, NULL, at, n);
}

static int
http_on_value(http_parser *p, const char *at, size_t n)
{
	struct http_req	*req = req_of(p);

	req->hstate = 1;
	return http_append(req, &req->hvalue, NULL, at, n);
}

static int
hexdigit(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Split the target into a percent-decoded path and a raw query. */
static int
http_split_url(struct http_req *req)
{
	char	*q, *d;
	size_t	 i, n;

	if (req->url == NULL || req->url[0] != '/')
		return -1;
	if ((q = strchr(req->url, '?')) != NULL) {
		*q = '\0';
		req->query = q + 1;
	}
	n = strlen(req->url);
	if ((d = req->path = malloc(n + 1)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (req->url[i] == '%') {
			if (!isxdigit((unsigned char)req->url[i + 1]) ||
			    !isxdigit((unsigned char)req->url[i + 2]))
				return -1;
			*d = (char)(hexdigit((unsigned char)req->url[i + 1]) *
			    16 + hexdigit((unsigned char)req->url[i + 2]));
			if (*d == '\0')
				return -1;
			d++;
			i += 2;
		} else
			*d++ = req->url[i];
	}
	*d = '\0';
	return 0;
}

static int
http_on_headers(http_parser *p)
{
	struct http_req	*req = req_of(p);

	http_header_done(req);
	if (http_split_url(req) == -1) {
		req->error = 400;
		return -1;
	}
	if (p->content_length != ULLONG_MAX &&
	    p->content_length > env->conf.max_body_bytes) {
		req->error = 413;
		return -1;
	}
	req->method = p->method;
	return 0;
}

static int
http_on_body(http_parser *p, const char *at, size_t n)
{
	struct http_req	*req = req_of(p);
	char		*b;

	if (req->body_len + n > env->conf.max_body_bytes) {
		req->error = 413;
		return -1;
	}
	if ((b = realloc(req->body, req->body_len + n + 1)) == NULL) {
		req->error = 500;
		return -1;
	}
	memcpy(b + req->body_len, at, n);
	req->body_len += n;
	b[req->body_len] = '\0';
	req->body = b;
	return 0;
}

static int
http_on_complete(http_parser *p)
{
	req_of(p)->complete = 1;
	http_parser_pause(p, 1);
	return 0;
}

/*
 * Feed what has arrived to the parser, one buffer chunk at a time, and
 * handle each request as it completes.
 */
void
server_http_read(struct conn *conn)
{
	struct evbuffer		*in = conn_in(conn);
	struct evbuffer_iovec	 v;
	http_parser		*p;
	size_t			 n;

	/* A request must arrive whole within idle_timeout, however slowly
	 * its bytes trickle in: each byte would restart a read timeout. */
	if (conn->req->started != 0 && !conn->req->complete &&
	    time(NULL) - conn->req->started > env->conf.idle_timeout) {
		server_http_error(conn, 408, "request_timeout", "the request "
		    "took too long to arrive");
		conn->state = CONN_CLOSING;
		return;
	}
	while (in != NULL && !conn->closed && conn->state == CONN_HTTP &&
	    !conn->held && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		p = conn->req->parser;
		n = http_parser_execute(p, &http_settings, v.iov_base,
		    v.iov_len);
		evbuffer_drain(in, n);
		stats_add(STAT_BYTES_IN, n);
		if (HTTP_PARSER_ERRNO(p) == HPE_PAUSED) {
			http_parser_pause(p, 0);
			http_dispatch(conn, conn->req);
			continue;
		}
		if (HTTP_PARSER_ERRNO(p) != HPE_OK) {
			int status = conn->req->error ? conn->req->error : 400;

			server_http_error(conn, status, status == 431 ?
			    "headers_too_large" : status == 413 ?
			    "body_too_large" : "bad_request",
			    status == 400 ? http_errno_description(
			    HTTP_PARSER_ERRNO(p)) : http_status_str(status));
			if (!conn->closed)
				conn->state = CONN_CLOSING;
			return;
		}
		if (n < v.iov_len)	/* cannot happen without an error */
			break;
	}
}

/*
 * The answer to this request comes later (the dialect waits for another
 * server): read nothing more until server_http_resume.  If the connection
 * closes first, cancel(arg) is called.
 */
void
server_http_hold(struct conn *conn, void (*cancel)(void *), void *arg)
{
	conn->held = 1;
	conn->hold_cancel = cancel;
	conn->hold_arg = arg;
	conn_reading(conn, 0);
}

/* The held request has been answered: go on with the connection. */
void
server_http_resume(struct conn *conn)
{
	conn->held = 0;
	conn->hold_cancel = NULL;
	conn->hold_arg = NULL;
	if (conn->closed)
		return;
	conn_reading(conn, 1);
	http_done(conn);
	if (!conn->closed && conn->state == CONN_HTTP) {
		server_http_read(conn);
		if (!conn->closed)
			conn_in_trim(conn);
	}
}

const char *
server_http_method(struct http_req *req)
{
	return http_method_str((enum http_method)req->method);
}

static int
http_wants_upgrade(struct http_req *req)
{
	return req->upgrade != NULL && strcasecmp(req->upgrade, "websocket")
	    == 0 && req->connection != NULL &&
	    strcasestr(req->connection, "upgrade") != NULL;
}

/*
 * allowed_origins: a browser names the page that opens a WebSocket in
 * Origin; when the list is set, only those pages may.  A request without
 * Origin is no browser's and passes.  Origins compare without case.
 */
static int
http_origin_allowed(const char *origin)
{
	const char	*list = env->conf.allowed_origins, *end;
	size_t		 n;

	if (origin == NULL || list[0] == '\0')
		return 1;
	n = strlen(origin);
	for (; *list != '\0'; list = *end == ' ' ? end + 1 : end) {
		if ((end = strchr(list, ' ')) == NULL)
			end = list + strlen(list);
		if ((size_t)(end - list) == n && strncasecmp(list, origin, n)
		    == 0)
			return 1;
	}
	return 0;
}

/*
 * The upgrade of conn's request goes ahead: the handshake's answer, then
 * the dialect's ws_open.  Returns 0, or -1 after answering an error.
 */
static int
http_upgrade(struct conn *conn, struct http_req *req, const struct mount *m,
    const char *sub)
{
	if (server_ws_upgrade(conn, req) == -1)
		return -1;
	conn->mount = m;
	stats_dadd(m->dialect->id, STAT_D_WEBSOCKETS_OPEN, 1);
	m->dialect->ws_open(conn, req, sub);
	conn->req = NULL;
	server_http_free(req);
	return 0;
}

/* The dialect refused the upgrade with status (or the origin did). */
static void
http_upgrade_refused(struct conn *conn, int status)
{
	if (status == 403)
		server_http_error(conn, 403, "forbidden_origin",
		    "this Origin may not open a WebSocket here");
	else
		server_http_error(conn, status, status == 404 ?
		    "not_found" : status == 401 ? "unauthorized" :
		    "bad_request", status == 401 ? "missing, invalid or "
		    "expired credentials" : "cannot upgrade to a "
		    "WebSocket here");
}

static void
http_dispatch(struct conn *conn, struct http_req *req)
{
	http_parser		*p = req->parser;
	const struct mount	*m;
	const char		*sub;
	int			 status;

	stats_add(STAT_HTTP_REQUESTS, 1);
	/* api_listen serves the API alone: no pages, mounts or CORS. */
	if (conn->api) {
		api_http(conn, req);
		if (!conn->held)
			http_done(conn);
		return;
	}
	m = dialect_route(req->path, &sub);
	if (req->method == HTTP_OPTIONS && !http_wants_upgrade(req))
		server_http_respond(conn, 204, NULL, NULL, 0, CORS_PREFLIGHT);
	else if (m == NULL && http_wants_upgrade(req))
		server_http_error(conn, 404, "not_found", "no such path");
	else if (m == NULL)
		server_file_serve(conn, req);
	else if (http_wants_upgrade(req)) {
		if (req->method != HTTP_GET)
			status = 400;
		else if (!http_origin_allowed(req->origin))
			status = 403;
		else
			status = m->dialect->ws_accept(conn, req, sub);
		if (status == HTTP_HELD) {
			/* The dialect asks another server first; its
			 * answer calls server_http_upgrade or answers. */
			conn->mount = m;
			return;
		}
		if (status != 0)
			http_upgrade_refused(conn, status);
		else if (http_upgrade(conn, req, m, sub) == 0)
			return;
	} else if (p->upgrade) {
		server_http_error(conn, 400, "bad_request", "unsupported "
		    "upgrade");
	} else if (m->dialect->http == NULL)
		server_http_upgrade_required(conn);
	else
		m->dialect->http(conn, req, sub);
	if (!conn->held)
		http_done(conn);
}

/*
 * A held handshake (ws_accept returned HTTP_HELD) goes ahead.  conn stays
 * held: server_ws_resume, or server_http_resume if the upgrade failed,
 * lets it read again.
 */
void
server_http_upgrade(struct conn *conn)
{
	const struct mount	*m;
	const char		*sub;

	if (conn->closed || conn->req == NULL || conn->state != CONN_HTTP)
		return;
	if ((m = dialect_route(conn->req->path, &sub)) == NULL ||
	    m != conn->mount) {
		server_http_error(conn, 500, "internal", "the mount is gone");
		return;
	}
	http_upgrade(conn, conn->req, m, sub);
}

/* The answer to a request is out: next request, or close. */
static void
http_done(struct conn *conn)
{
	http_parser	*p = conn->req->parser;

	if (conn->closed)
		return;
	if (!http_should_keep_alive(p) || p->upgrade) {
		conn->state = CONN_CLOSING;
		if (conn_out_len(conn) == 0)
			server_close(conn, "request done");
	}
}

void
server_http_respond(struct conn *conn, int status, const char *type,
    const char *body, size_t len, const char *extra)
{
	struct evbuffer	*out;
	http_parser	*p = conn->req ? conn->req->parser : NULL;
	int		 keep;

	if ((out = conn_out(conn)) == NULL)
		return;
	/* After a parse error the stream cannot be trusted: close. */
	keep = p != NULL && http_should_keep_alive(p) && !p->upgrade &&
	    (HTTP_PARSER_ERRNO(p) == HPE_OK ||
	    HTTP_PARSER_ERRNO(p) == HPE_PAUSED);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Server: roomd/%s\r\n"
	    "X-Roomd-Worker: %d/%d\r\n"
	    "Connection: %s\r\n"
	    "%s%s",
	    status, http_status_str((enum http_status)status), PACKAGE_VERSION,
	    env->slot, (int)getpid(), keep ? "keep-alive" : "close",
	    conn->api ? "" : CORS_HEADERS, extra ? extra : "");
	if (type != NULL)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", type);
	if (status != 204 && status != 304)
		evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
	evbuffer_add(out, "\r\n", 2);
	if (len > 0 && (p == NULL || p->method != HTTP_HEAD))
		evbuffer_add(out, body, len);
	stats_add(STAT_BYTES_OUT, len);
}

/* 426: a plain request where only a WebSocket upgrade is served. */
void
server_http_upgrade_required(struct conn *conn)
{
	static const char body[] = "{\"error\":\"upgrade_required\","
	    "\"message\":\"this path takes a WebSocket\"}";

	server_http_respond(conn, 426, "application/json", body,
	    sizeof(body) - 1, "Upgrade: websocket\r\n");
}

void
server_http_json(struct conn *conn, int status, struct json_object *obj)
{
	const char	*text;
	size_t		 len;

	text = json_text(obj, &len);
	server_http_respond(conn, status, "application/json", text, len, NULL);
	json_object_put(obj);
}

/* Every error answer is {"error": CODE, "message": TEXT}. */
void
server_http_error(struct conn *conn, int status, const char *code,
    const char *message)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	server_http_json(conn, status, o);
}
