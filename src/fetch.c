/*
 * fetch.c: requests roomd itself makes: to a sign-in provider's token,
 * key set and user endpoints (oauth.c), and to the application's webhook
 * and join check URLs (webhook.c, authhook.c).  One HTTP/1.1 request per
 * connection on the worker's event loop (libevent's HTTP client), over
 * TLS with the peer's certificate and name verified (OpenSSL), or in the
 * clear to loopback only, as roomd.conf(5) allows.  No redirect is
 * followed: a 3xx is an answer like any other.  Each request has a
 * deadline for the whole exchange, so a server that trickles its answer
 * cannot hold it longer.  The callback runs exactly once: with the
 * status and body, or with status 0 if the server could not be reached or
 * did not answer in time (fetch_error says which, during the callback).
 */
#include "config.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "roomd.h"

#define FETCH_TIMEOUT	10		/* seconds, for each request */
#define FETCH_MAX_BODY	(1 << 20)

struct fetch {
	struct evhttp_connection	*evcon;
	struct event			*deadline;
	fetch_cb			 cb;
	void				*arg;
	int				 quiet;		/* the caller logs */
	const char			*error;		/* why status 0 */
	char				 url[512];
};

static const char		*fetch_why;	/* during a callback */

static SSL_CTX			*fetch_ctx;
static char			 fetch_ca[1024];	/* what fetch_ctx trusts */
static struct evdns_base	*fetch_dns;

/* The client TLS context, made again when chat_ca_file changes. */
static SSL_CTX *
fetch_ssl_ctx(void)
{
	const char	*ca = env->conf.chat_ca_file;
	int		 ok;

	if (fetch_ctx != NULL && strcmp(fetch_ca, ca) == 0)
		return fetch_ctx;
	SSL_CTX_free(fetch_ctx);
	if ((fetch_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(fetch_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(fetch_ctx, SSL_VERIFY_PEER, NULL);
	ok = ca[0] != '\0' ? SSL_CTX_load_verify_locations(fetch_ctx, ca,
	    NULL) : SSL_CTX_set_default_verify_paths(fetch_ctx);
	if (ok != 1) {
		log_warnx("chat_ca_file %s: cannot load", ca);
		SSL_CTX_free(fetch_ctx);
		fetch_ctx = NULL;
		return NULL;
	}
	snprintf(fetch_ca, sizeof(fetch_ca), "%s", ca);
	return fetch_ctx;
}

static void
fetch_free_later(evutil_socket_t fd, short what, void *arg)
{
	struct evhttp_connection	*evcon = arg;

	(void)fd;
	(void)what;
	evhttp_connection_free(evcon);
}

/* What libevent says went wrong with a request (evhttp_request_error). */
static void
fetch_failed(enum evhttp_request_error e, void *arg)
{
	struct fetch	*f = arg;

	f->error = e == EVREQ_HTTP_TIMEOUT ? "timed out" :
	    e == EVREQ_HTTP_EOF ? "connection closed before the answer ended" :
	    e == EVREQ_HTTP_INVALID_HEADER ? "malformed answer" :
	    e == EVREQ_HTTP_DATA_TOO_LONG ? "answer too long" :
	    "no answer";
}

/* The callback, once, then the request's memory. */
static void
fetch_finish(struct fetch *f, int status, const char *body, size_t len)
{
	unsigned long	 e;

	if (status == 0) {
		e = ERR_get_error();
		if (f->error == NULL)
			f->error = e != 0 ? ERR_reason_error_string(e) :
			    "no answer";
		if (!f->quiet)
			log_warnx("fetch %s: %s", f->url, f->error);
		ERR_clear_error();
	}
	fetch_why = f->error;
	f->cb(status, body, len, f->arg);
	fetch_why = NULL;
	event_free(f->deadline);
	free(f);
}

static void
fetch_done(struct evhttp_request *req, void *arg)
{
	struct fetch	*f = arg;
	struct evbuffer	*in;
	char		*body = NULL;
	size_t		 len = 0;
	int		 status = 0;

	if (req != NULL && (status = evhttp_request_get_response_code(req))
	    != 0) {
		in = evhttp_request_get_input_buffer(req);
		len = evbuffer_get_length(in);
		if ((body = malloc(len + 1)) != NULL) {
			evbuffer_remove(in, body, len);
			body[len] = '\0';
		} else
			status = 0;
	}
	/* The connection cannot be freed inside its own callback. */
	event_base_once(server_base(), -1, EV_TIMEOUT, fetch_free_later,
	    f->evcon, NULL);
	fetch_finish(f, status, body ? body : "", body ? len : 0);
	free(body);
}

/* The whole exchange took too long: give up on it.  Freeing the
 * connection drops its request without calling fetch_done. */
static void
fetch_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct fetch	*f = arg;

	(void)fd;
	(void)what;
	evhttp_connection_free(f->evcon);
	f->error = "timed out";
	fetch_finish(f, 0, "", 0);
}

/* During a callback with status 0: what failed. */
const char *
fetch_error(void)
{
	return fetch_why != NULL ? fetch_why : "no answer";
}

/*
 * The host of uri, with its port (the scheme's if it names none) and
 * whether it is https; NULL unless the scheme is http or https and there
 * is a host.
 */
static const char *
fetch_url(const struct evhttp_uri *uri, int *port, int *tls)
{
	const char	*scheme = evhttp_uri_get_scheme(uri);
	const char	*host = evhttp_uri_get_host(uri);

	if (scheme == NULL || host == NULL || host[0] == '\0')
		return NULL;
	*tls = strcmp(scheme, "https") == 0;
	if (!*tls && strcmp(scheme, "http") != 0)
		return NULL;
	if ((*port = evhttp_uri_get_port(uri)) == -1)
		*port = *tls ? 443 : 80;
	return host;
}

/* What the request line asks for: the path ("/" if none) and query. */
static void
fetch_target(const struct evhttp_uri *uri, char *target, size_t len)
{
	const char	*path = evhttp_uri_get_path(uri);
	const char	*query = evhttp_uri_get_query(uri);

	snprintf(target, len, "%s%s%s", path && path[0] ? path : "/",
	    query ? "?" : "", query ? query : "");
}

/*
 * A bufferevent that speaks TLS to host, whose certificate must be for
 * that name (or that address, for a literal one); NULL if none could be
 * made.
 */
static struct bufferevent *
fetch_tls(const char *host)
{
	struct bufferevent	*bev;
	struct in6_addr		 ip;
	SSL_CTX			*ctx;
	SSL			*ssl;

	if ((ctx = fetch_ssl_ctx()) == NULL || (ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (inet_pton(AF_INET, host, &ip) == 1 ||
	    inet_pton(AF_INET6, host, &ip) == 1)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else {
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	bev = bufferevent_openssl_socket_new(server_base(), -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/*
 * f's connection to host:port, over TLS or in the clear, with the
 * timeout and the body limit of a fetch.  Returns -1 if it could not be
 * made.
 */
static int
fetch_connect(struct fetch *f, const char *host, int port, int tls,
    int timeout)
{
	struct timeval		 tv = { timeout, 0 };
	struct bufferevent	*bev = NULL;

	if (fetch_dns == NULL)
		fetch_dns = evdns_base_new(server_base(),
		    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (tls && (bev = fetch_tls(host)) == NULL)
		return -1;
	f->evcon = evhttp_connection_base_bufferevent_new(server_base(),
	    fetch_dns, bev, host, (unsigned short)port);
	if (f->evcon == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		return -1;
	}
	evhttp_connection_set_timeout(f->evcon, timeout);
	evhttp_connection_set_max_body_size(f->evcon, FETCH_MAX_BODY);
	evhttp_connection_set_retries(f->evcon, 0);
	if ((f->deadline = evtimer_new(server_base(), fetch_deadline, f))
	    == NULL || evtimer_add(f->deadline, &tv) == -1) {
		evhttp_connection_free(f->evcon);
		return -1;
	}
	return 0;
}

/* What a request sends besides its target: method, body and headers. */
struct fetch_out {
	const char		*type;		/* of the body; NULL: none */
	const char		*body;
	size_t			 len;
	const char		*bearer;	/* Authorization: Bearer */
	const char *const	*headers;	/* name, value, ..., NULL */
};

/* The headers of a request to host:port, and its body. */
static void
fetch_headers(struct evhttp_request *req, const char *host, int port,
    int tls, const struct fetch_out *o)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	const char *const	*x;
	char			 buf[8300];

	if (port == (tls ? 443 : 80))
		evhttp_add_header(h, "Host", host);
	else {
		snprintf(buf, sizeof(buf), strchr(host, ':') ? "[%s]:%d" :
		    "%s:%d", host, port);
		evhttp_add_header(h, "Host", buf);
	}
	evhttp_add_header(h, "Accept", "application/json");
	evhttp_add_header(h, "User-Agent", "roomd/" PACKAGE_VERSION);
	evhttp_add_header(h, "Connection", "close");
	if (o->bearer != NULL) {
		snprintf(buf, sizeof(buf), "Bearer %s", o->bearer);
		evhttp_add_header(h, "Authorization", buf);
	}
	for (x = o->headers; x != NULL && x[0] != NULL; x += 2)
		evhttp_add_header(h, x[0], x[1]);
	if (o->type != NULL) {
		evhttp_add_header(h, "Content-Type", o->type);
		evbuffer_add(evhttp_request_get_output_buffer(req), o->body,
		    o->len);
	}
}

/*
 * Start a request: GET, or POST when o has a body.  Returns -1 (and never
 * calls cb) if it could not even start.
 */
static int
fetch_start(const char *url, const struct fetch_out *o, int timeout,
    int quiet, fetch_cb cb, void *arg)
{
	struct evhttp_uri	*uri;
	struct evhttp_request	*req;
	struct fetch		*f = NULL;
	const char		*host;
	char			 target[1024];
	int			 port, tls;

	if ((uri = evhttp_uri_parse(url)) == NULL)
		return -1;
	if ((host = fetch_url(uri, &port, &tls)) == NULL ||
	    (f = calloc(1, sizeof(*f))) == NULL)
		goto fail;
	fetch_target(uri, target, sizeof(target));
	if (fetch_connect(f, host, port, tls, timeout) == -1)
		goto fail;
	f->cb = cb;
	f->arg = arg;
	f->quiet = quiet;
	snprintf(f->url, sizeof(f->url), "%s", url);
	if ((req = evhttp_request_new(fetch_done, f)) == NULL) {
		evhttp_connection_free(f->evcon);
		goto fail;
	}
	evhttp_request_set_error_cb(req, fetch_failed);
	fetch_headers(req, host, port, tls, o);
	if (evhttp_make_request(f->evcon, req, o->type ? EVHTTP_REQ_POST :
	    EVHTTP_REQ_GET, target) != 0) {
		evhttp_connection_free(f->evcon);	/* frees req too */
		goto fail;
	}
	evhttp_uri_free(uri);
	return 0;
fail:
	if (f != NULL && f->deadline != NULL)
		event_free(f->deadline);
	free(f);
	evhttp_uri_free(uri);
	return -1;
}

/*
 * GET url (form NULL) or POST form to it, with "Authorization: Bearer"
 * when bearer is set.  Returns -1 (and never calls cb) if the request
 * could not even start.
 */
int
fetch(const char *url, const char *form, const char *bearer, fetch_cb cb,
    void *arg)
{
	struct fetch_out	 o = { NULL, form, form ? strlen(form) : 0,
				    bearer, NULL };

	if (form != NULL)
		o.type = "application/x-www-form-urlencoded";
	return fetch_start(url, &o, FETCH_TIMEOUT, 0, cb, arg);
}

/*
 * POST a JSON body to url with extra headers (name, value, ..., NULL),
 * given up after timeout seconds.  Failures are not logged: the caller
 * does, with fetch_error.  Returns -1 (and never calls cb) if the request
 * could not even start.
 */
int
fetch_json(const char *url, const char *body, size_t len,
    const char *const *headers, int timeout, fetch_cb cb, void *arg)
{
	struct fetch_out	 o = { "application/json", body, len, NULL,
				    headers };

	return fetch_start(url, &o, timeout, 1, cb, arg);
}
