/*
 * server.c: a worker.  One libevent loop accepts on this slot's listening
 * sockets and runs every connection it accepted, for that connection's
 * whole life: HTTP first, then WebSocket if it upgrades.
 *
 * Connections are never freed from inside their own callbacks: the one
 * exit, server_close(), detaches the connection from its room at once and
 * parks it; the flush event, which libevent runs at a lower priority after
 * this loop iteration's I/O, frees it.  The same event delivers the room
 * changes of the iteration (fanout_flush), so a burst of messages to one
 * member becomes one write.
 *
 * That write is the flush's own, too (server_io.c, the transport): what
 * is added to a plain connection's output during the iteration is
 * written by the flush with one writev(), and only what the socket
 * refuses gets a write event until it drains.  A TLS listener's
 * connections get an OpenSSL bufferevent instead; nothing above
 * server_io.c can tell the two apart.
 *
 * Per-address limits are counted at accept, in the arena's address table,
 * so they hold across workers (SO_REUSEPORT spreads one client's
 * connections over all of them).
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "roomd.h"

static struct event_base	*base;
static struct evconnlistener	*listeners[ROOMD_MAX_LISTEN];
static struct evconnlistener	*api_listener;	/* api_listen's, if set */
static struct connlist		 conns = TAILQ_HEAD_INITIALIZER(conns);
static struct connlist		 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static struct event		*flush_ev, *stop_timer, *drain_timer, *resume_ev;
static uint64_t			 next_conn_id;
static int			 stopping, draining, flush_scheduled;
static SSL_CTX			*tls_ctx[ROOMD_MAX_LISTEN];

static void	server_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	server_flush(evutil_socket_t, short, void *);
static void	server_stop(evutil_socket_t, short, void *);
static void	server_tick(evutil_socket_t, short, void *);
static void	server_reload(evutil_socket_t, short, void *);
static void	server_drain(evutil_socket_t, short, void *);
static void	server_accept_error(struct evconnlistener *, void *);
static void	server_accept_resume(evutil_socket_t, short, void *);

struct event_base *
server_base(void)
{
	return base;
}

int
server_stopping(const struct conn *conn)
{
	return stopping || (conn != NULL && conn->parting);
}

void
server_parting(struct conn *conn)
{
	conn->parting = 1;
}

/*
 * The worker's loop: its event base, and the flush event at the lower of
 * its two priorities.  server_main adds the listeners, signals and the
 * doorbell mesh; the fuzz harnesses (tests/fuzz) run it without them.
 */
void
server_init(void)
{
	if ((base = event_base_new()) == NULL ||
	    event_base_priority_init(base, 2) == -1)
		fatalx("%s: event_base_new", __func__);
	if ((flush_ev = event_new(base, -1, 0, server_flush, NULL)) == NULL)
		fatalx("%s: event_new", __func__);
	event_priority_set(flush_ev, 1);
}

void
server_main(int slot)
{
	struct event	*sigterm, *sigint, *sighup, *sigusr2, *tick;
	struct timeval	 second = { 1, 0 };
	sigset_t	 none;
	char		 name[32];
	int		 s, l;

	env->slot = slot;
	cluster_forked(-1);
	/* A fan-out allocates and frees a few hundred kilobytes in every
	 * iteration: glibc would give them back to the kernel at each free
	 * and fault them in again at the next publish (a fifth of the
	 * worker's time).  Keep up to 32 MB of free heap instead, and give
	 * it back once a second (server_tick). */
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
	snprintf(name, sizeof(name), "worker %d", slot);
	log_setproc(name);
	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		for (l = 0; s != slot && l < ROOMD_MAX_LISTEN; l++)
			if (env->listen_fd[s][l] != -1)
				close(env->listen_fd[s][l]);

	server_init();
	proc_mesh_worker(base);
	/* The master's sockets listen already, with their backlog: a
	 * backlog of -1 here would call listen() again with libevent's
	 * 128, and a crowd joining at once would overflow it. */
	for (l = 0; l < env->conf.nlistens; l++) {
		listeners[l] = evconnlistener_new(base, server_accept,
		    (void *)(intptr_t)l, LEV_OPT_CLOSE_ON_FREE, 0,
		    env->listen_fd[slot][l]);
		if (listeners[l] == NULL)
			fatalx("%s: evconnlistener_new", __func__);
		evconnlistener_set_error_cb(listeners[l], server_accept_error);
	}
	if (env->api_fd != -1) {
		api_listener = evconnlistener_new(base, server_accept,
		    (void *)(intptr_t)SERVER_LISTENER_API, LEV_OPT_CLOSE_ON_FREE,
		    0, env->api_fd);
		if (api_listener == NULL)
			fatalx("%s: evconnlistener_new", __func__);
		evconnlistener_set_error_cb(api_listener, server_accept_error);
	}
	resume_ev = evtimer_new(base, server_accept_resume, NULL);
	sigterm = evsignal_new(base, SIGTERM, server_stop, NULL);
	sigint = evsignal_new(base, SIGINT, server_stop, NULL);
	sighup = evsignal_new(base, SIGHUP, server_reload, NULL);
	sigusr2 = evsignal_new(base, SIGUSR2, server_drain, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_add(sighup, NULL);
	event_add(sigusr2, NULL);
	/* Blocked since the fork (master_fork): what came meanwhile is
	 * delivered now, to the handlers above. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	tick = event_new(base, -1, EV_PERSIST, server_tick, NULL);
	event_add(tick, &second);
	signal(SIGPIPE, SIG_IGN);

	health_beat();
	log_debug("ready");
	event_base_dispatch(base);

	log_debug("exiting");
	webhook_stop();
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_free(sigusr2);
	event_free(tick);
	if (drain_timer != NULL)
		event_free(drain_timer);
	event_free(resume_ev);
	if (api_listener != NULL)
		evconnlistener_free(api_listener);
	exit(0);
}

/*
 * A client address as a key of the address table: an IPv4 address (also
 * when it comes IPv4-mapped), or the /64 prefix of an IPv6 address, since
 * one IPv6 client usually holds a whole /64.
 */
void
server_addr_key(const struct sockaddr *sa, uint64_t key[2])
{
	const struct sockaddr_in	*sin = (const void *)sa;
	const struct sockaddr_in6	*sin6 = (const void *)sa;
	const uint8_t			*b;
	int				 i;

	key[0] = key[1] = 0;
	if (sa->sa_family == AF_INET) {
		key[0] = ntohl(sin->sin_addr.s_addr);
		key[1] = 4;
	} else if (sa->sa_family == AF_INET6) {
		b = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key[0] = (uint64_t)b[12] << 24 | (uint64_t)b[13] << 16 |
			    (uint64_t)b[14] << 8 | b[15];
			key[1] = 4;
			return;
		}
		for (i = 0; i < 8; i++)
			key[0] = key[0] << 8 | b[i];
		key[1] = 6;
	}
}

/*
 * Do the per-client limits apply to this address?  Not to loopback ones
 * (a proxy on the same host, local tools) unless limits_on_loopback.
 */
static int
server_addr_limited(const uint64_t key[2])
{
	if (key[1] == 0)
		return 0;
	if (env->conf.limits_on_loopback)
		return 1;
	return !((key[1] == 4 && key[0] >> 24 == 127) ||
	    (key[1] == 6 && key[0] == 0));
}

const uint64_t *
server_limit_addr(struct conn *conn)
{
	return server_addr_limited(conn->addr) ? conn->addr : NULL;
}

/*
 * A new connection.  One from an address that holds
 * max_connections_per_ip already is closed at once, before anything is
 * read (there is no cheaper answer, and a TLS client could not read a
 * plain one).
 */
static void
server_accept(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct conn	*conn;
	uint64_t	 key[2];
	int		 on = 1, l = (int)(intptr_t)arg, rc = 1;

	if (stopping) {
		close(fd);
		return;
	}
	server_addr_key(sa, key);
	if (env->conf.max_connections_per_ip > 0 && server_addr_limited(key) &&
	    (rc = room_addr_conn_add(key,
	    (uint64_t)env->conf.max_connections_per_ip)) < 0) {
		log_debug("connection refused: max_connections_per_ip (%d) "
		    "reached", env->conf.max_connections_per_ip);
		close(fd);
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		log_warn("%s: calloc", __func__);
		if (rc == 0)
			room_addr_conn_del(key);
		close(fd);
		return;
	}
	conn->addr[0] = key[0];
	conn->addr[1] = key[1];
	conn->addr_counted = rc == 0;
	conn->api = l == SERVER_LISTENER_API;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	conn->id = ++next_conn_id;
	if (conn_io_open(conn, fd, l >= 0 && l < ROOMD_MAX_LISTEN ?
	    tls_ctx[l] : NULL) == -1) {
		log_warnx("%s: no memory for a connection", __func__);
		if (conn->addr_counted)
			room_addr_conn_del(key);
		free(conn);
		return;
	}
	TAILQ_INSERT_TAIL(&conns, conn, entry);
	stats_add(STAT_CONNECTIONS, 1);
	stats_add(STAT_CONNECTIONS_OPEN, 1);
	server_http_start(conn);
}

/*
 * Take fd as a connection accepted from sa on listener l, as the
 * listener's callback does (the fuzz harnesses hand it socketpairs).
 */
void
server_accept_fd(int fd, struct sockaddr *sa, int salen, int l)
{
	server_accept(NULL, fd, sa, salen, (void *)(intptr_t)l);
}

/* The open connection after conn, or the first if conn is NULL. */
struct conn *
server_conn_next(struct conn *conn)
{
	return conn == NULL ? TAILQ_FIRST(&conns) : TAILQ_NEXT(conn, entry);
}

/* Input arrived (server_io.c). */
void
server_read(struct conn *conn)
{
	struct evbuffer	*in;

	conn->pinged = 0;
	if (conn->state == CONN_HTTP) {
		server_http_read(conn);
		/* Frames that came in the same read as the upgrade. */
		if (!conn->closed && conn->ws != NULL &&
		    (in = conn_in(conn)) != NULL && evbuffer_get_length(in) > 0)
			server_ws_read(conn);
	} else if (conn->ws != NULL)
		server_ws_read(conn);
	else if ((in = conn_in(conn)) != NULL)
		evbuffer_drain(in, evbuffer_get_length(in));
}

/* The output drained (server_io.c). */
void
server_write(struct conn *conn)
{
	if (conn->state == CONN_CLOSING) {
		/* A closing WebSocket waits for the peer's close frame. */
		if (conn->ws == NULL || conn->peer_closed)
			server_close(conn, "closed");
		return;
	}
	fanout_drained(conn);
}

void
server_event(struct conn *conn, enum conn_io_event what)
{
	switch (what) {
	case CONN_IO_STALLED:
		server_close(conn, "peer stopped reading: output stalled");
		break;
	case CONN_IO_IDLE:
		if (conn->state == CONN_WS && !conn->pinged) {
			conn->pinged = 1;
			server_ws_ping(conn);
			break;
		}
		server_close(conn, conn->state == CONN_HTTP ? "idle timeout" :
		    "no answer to ping");
		break;
	case CONN_IO_EOF:
		server_close(conn, "peer closed the connection");
		break;
	case CONN_IO_ERROR:
		server_close(conn, evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
		break;
	}
}

/*
 * The one exit of a connection.  It leaves its room now (so the room's
 * count is right at once); the memory is freed in server_flush.
 */
void
server_close(struct conn *conn, const char *reason)
{
	if (conn->closed)
		return;
	log_debug("connection %llu: %s", (unsigned long long)conn->id, reason);
	if (conn->held && conn->hold_cancel != NULL)
		conn->hold_cancel(conn->hold_arg);
	if (conn->ws != NULL && conn->mount->dialect->ws_close != NULL)
		conn->mount->dialect->ws_close(conn);
	if (conn->room != NULL)
		fanout_detach(conn, 0, NULL);
	if (conn->addr_counted)
		room_addr_conn_del(conn->addr);
	conn->addr_counted = 0;
	stats_add(STAT_CONNECTIONS_OPEN, -1);
	if (conn->ws != NULL)
		stats_dadd(conn->mount->dialect->id,
		    STAT_D_WEBSOCKETS_OPEN, -1);
	conn_io_close(conn);
	TAILQ_REMOVE(&conns, conn, entry);
	TAILQ_INSERT_TAIL(&graveyard, conn, entry);
	server_flush_later();
}

/*
 * message_rate: a token bucket per connection, in thousandths of a
 * message, filled at message_rate a second up to message_burst.  Returns
 * 1 if one more message may pass now.
 */
int
server_message_allowed(struct conn *conn)
{
	uint64_t	 rate = (uint64_t)env->conf.message_rate;
	uint64_t	 burst = (uint64_t)env->conf.message_burst * 1000;
	uint64_t	 now;
	struct timeval	 tv;

	if (rate == 0 || !server_addr_limited(conn->addr))
		return 1;
	event_base_gettimeofday_cached(base, &tv);
	now = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
	if (conn->refilled == 0)
		conn->tokens = burst;
	else if (now > conn->refilled)
		conn->tokens += (now - conn->refilled) * rate;
	if (conn->tokens > burst)
		conn->tokens = burst;
	conn->refilled = now;
	if (conn->tokens < 1000)
		return 0;
	conn->tokens -= 1000;
	return 1;
}

/* One listener's TLS context: TLS 1.2 and later, forward secrecy only. */
static SSL_CTX *
server_tls_ctx(const struct roomd_config *c, const struct listen_addr *l,
    char *err, size_t errlen)
{
	SSL_CTX		*ctx;
	FILE		*fp;
	const char	*what = NULL, *path = NULL;
	unsigned long	 e;

	/* First the plain reasons (no such file, permission denied). */
	if ((fp = fopen(path = l->cert, "r")) != NULL) {
		fclose(fp);
		fp = fopen(path = l->key, "r");
	}
	if (fp == NULL) {
		snprintf(err, errlen, "%s:%d: listen %s: %s: %s", c->file,
		    l->line, l->text, path, strerror(errno));
		return NULL;
	}
	fclose(fp);
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "listen %s: cannot make a TLS context",
		    l->text);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:"
	    "DHE+AESGCM:DHE+CHACHA20:!aNULL") != 1)
		what = "the cipher list", path = "";
	else if (SSL_CTX_use_certificate_chain_file(ctx, l->cert) != 1)
		what = "certificate", path = l->cert;
	else if (SSL_CTX_use_PrivateKey_file(ctx, l->key, SSL_FILETYPE_PEM)
	    != 1)
		what = "key", path = l->key;
	else if (SSL_CTX_check_private_key(ctx) != 1)
		what = "key (it does not match the certificate)",
		    path = l->key;
	if (what != NULL) {
		e = ERR_peek_last_error();
		snprintf(err, errlen, "%s:%d: listen %s: bad %s %s: %s",
		    c->file, l->line, l->text, what, path,
		    e != 0 ? ERR_reason_error_string(e) : "unusable");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * Make the TLS context of every TLS listener (roomd -t does it too, so a
 * missing or mismatched file is found before a start).  Returns 0, or -1
 * with "file:line: ..." in err and the running contexts untouched.
 */
int
server_tls_load(const struct roomd_config *c, char *err, size_t errlen)
{
	SSL_CTX	*ctx[ROOMD_MAX_LISTEN] = { NULL };
	int	 l;

	for (l = 0; l < c->nlistens; l++)
		if (c->listens[l].tls && (ctx[l] = server_tls_ctx(c,
		    &c->listens[l], err, errlen)) == NULL) {
			while (l-- > 0)
				SSL_CTX_free(ctx[l]);
			return -1;
		}
	server_tls_free();
	memcpy(tls_ctx, ctx, sizeof(tls_ctx));
	return 0;
}

/*
 * SIGHUP: read the certificate and key of every TLS listener that is
 * still configured the same way again (a renewal).  Connections already
 * open keep the context they started with; new ones get the new one.  If
 * the files cannot be read (root-only keys once privileges are dropped)
 * the running certificate stays and the log says a restart is needed.
 */
void
server_tls_reload(const struct roomd_config *c)
{
	const struct listen_addr	*o, *n;
	SSL_CTX				*ctx;
	char				 err[1024];
	int				 l;

	for (l = 0; l < c->nlistens && l < env->conf.nlistens; l++) {
		o = &env->conf.listens[l];
		n = &c->listens[l];
		if (tls_ctx[l] == NULL || !n->tls ||
		    strcmp(o->text, n->text) != 0)
			continue;
		if ((ctx = server_tls_ctx(c, n, err, sizeof(err))) == NULL) {
			log_warnx("reload: %s; keeping the running "
			    "certificate (a restart reads it as root)", err);
			continue;
		}
		SSL_CTX_free(tls_ctx[l]);
		tls_ctx[l] = ctx;
	}
}

void
server_tls_free(void)
{
	int	 l;

	for (l = 0; l < ROOMD_MAX_LISTEN; l++) {
		SSL_CTX_free(tls_ctx[l]);
		tls_ctx[l] = NULL;
	}
}

int
server_output_full(struct conn *conn)
{
	return conn->closed ||
	    conn_out_len(conn) > env->conf.output_buffer_bytes;
}

/* Run server_flush once, after the I/O callbacks of this iteration. */
void
server_flush_later(void)
{
	if (!flush_scheduled) {
		flush_scheduled = 1;
		event_active(flush_ev, EV_TIMEOUT, 1);
	}
}

static void
server_flush(evutil_socket_t fd, short events, void *arg)
{
	struct conn	*conn;

	flush_scheduled = 0;
	fanout_flush();
	conn_io_flush();
	while ((conn = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, conn, entry);
		conn_io_free(conn);
		server_ws_free(conn);
		if (conn->req != NULL)
			server_http_free(conn->req);
		free(conn->data);
		free(conn);
	}
	if ((stopping || draining) && TAILQ_EMPTY(&conns))
		event_base_loopexit(base, NULL);
}

/*
 * SIGHUP from the master, which checked the file already.  libevent runs
 * this in the loop, not in signal context, so the worker may read the file
 * and take the settings that can change live; no connection is touched.
 */
static void
server_reload(evutil_socket_t sig, short events, void *arg)
{
	struct roomd_config	 c;

	if (config_reread(&c, env->conf.file) == -1)
		return;
	server_tls_reload(&c);
	config_apply_live(&env->conf, &c);
	log_debug("configuration reloaded");
}

static void
server_tick(evutil_socket_t fd, short events, void *arg)
{
	struct conn	*conn, *next;
	unsigned	 cut;

	/* The master reads the beat for /readyz: a worker whose loop stops
	 * turning, or that no longer accepts, is not ready. */
	if (!stopping && !draining)
		health_beat();
	if (!stopping)
		fanout_tick();
	/* Cluster mode: a host that lost its lease on a shard serves none of
	 * that shard's rooms; their clients go to another host (1012: come
	 * back later).  A connection in no room yet goes when every shard
	 * is lost. */
	if (!stopping && cluster_enabled() && (cut = cluster_cut_off()) != 0)
		for (conn = TAILQ_FIRST(&conns); conn != NULL; conn = next) {
			next = TAILQ_NEXT(conn, entry);
			if (conn->state == CONN_WS && (conn->room == NULL ?
			    cut == (1U << cluster_shards()) - 1 :
			    (cut >> conn->room->shard) & 1)) {
				server_parting(conn);
				server_ws_close(conn, 1012, "cluster link lost");
			}
		}
	/* What the heap kept free through the last second's bursts (see
	 * M_TRIM_THRESHOLD in server_main) goes back to the kernel. */
	malloc_trim(0);
}

/*
 * accept() failed.  Out of descriptors (EMFILE, ENFILE) or memory, the
 * waiting connection stays in the backlog and the socket stays readable:
 * stop accepting for a moment instead of spinning, and say so once.
 */
static void
server_accept_error(struct evconnlistener *lis, void *arg)
{
	struct timeval	 tv = { 0, 250000 };
	int		 l, e = EVUTIL_SOCKET_ERROR();

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		log_warnx("accept: %s", evutil_socket_error_to_string(e));
		return;
	}
	if (evtimer_pending(resume_ev, NULL))
		return;
	log_warnx("accept: %s: not accepting for a moment",
	    evutil_socket_error_to_string(e));
	for (l = 0; l < env->conf.nlistens; l++)
		if (listeners[l] != NULL)
			evconnlistener_disable(listeners[l]);
	if (api_listener != NULL)
		evconnlistener_disable(api_listener);
	evtimer_add(resume_ev, &tv);
}

static void
server_accept_resume(evutil_socket_t fd, short events, void *arg)
{
	int	 l;

	if (stopping || draining)
		return;
	for (l = 0; l < env->conf.nlistens; l++)
		if (listeners[l] != NULL)
			evconnlistener_enable(listeners[l]);
	if (api_listener != NULL)
		evconnlistener_enable(api_listener);
}

/*
 * SIGUSR2 from the master: a new generation of workers serves the changed
 * listen addresses, worker count or mounts.  Take what already waits in
 * the listening sockets, close them, and keep serving the connections
 * there are until they end or drain_timeout passes; then stop (1001).
 */
static void
server_drain(evutil_socket_t sig, short events, void *arg)
{
	struct sockaddr_storage	 ss;
	struct timeval		 tv = { env->conf.drain_timeout, 0 };
	socklen_t		 len;
	int			 l, fd;

	if (stopping || draining)
		return;
	draining = 1;
	log_info("draining: %d seconds for the connections to end",
	    env->conf.drain_timeout);
	for (l = 0; l < env->conf.nlistens; l++) {
		if (listeners[l] == NULL)
			continue;
		evconnlistener_disable(listeners[l]);
		for (;;) {
			len = sizeof(ss);
			fd = accept4(evconnlistener_get_fd(listeners[l]),
			    (struct sockaddr *)&ss, &len, SOCK_NONBLOCK |
			    SOCK_CLOEXEC);
			if (fd == -1)
				break;
			server_accept(listeners[l], fd, (struct sockaddr *)&ss,
			    (int)len, (void *)(intptr_t)l);
		}
		evconnlistener_free(listeners[l]);
		listeners[l] = NULL;
	}
	/* The API's one socket stays the master's and the new workers':
	 * this worker closes its own descriptor only, and what waits in it
	 * is theirs. */
	if (api_listener != NULL) {
		evconnlistener_free(api_listener);
		api_listener = NULL;
	}
	drain_timer = evtimer_new(base, server_stop, NULL);
	evtimer_add(drain_timer, &tv);
	server_flush_later();
}

static void
server_stop_timeout(evutil_socket_t fd, short events, void *arg)
{
	log_warnx("connections still open after %d seconds: exiting",
	    ROOMD_STOP_TIMEOUT);
	event_base_loopexit(base, NULL);
}

/*
 * SIGTERM or SIGINT.  libevent runs this in the loop, not in signal
 * context, so it may close connections: every WebSocket gets close 1001,
 * idle HTTP connections are closed, and the loop ends once all are gone
 * or the stop timeout passes.
 */
static void
server_stop(evutil_socket_t sig, short events, void *arg)
{
	struct timeval	 tv = { ROOMD_STOP_TIMEOUT, 0 };
	struct conn	*conn, *next;
	int		 l;

	if (stopping)
		return;
	stopping = 1;
	log_debug("stopping");
	for (l = 0; l < env->conf.nlistens; l++)
		if (listeners[l] != NULL)
			evconnlistener_disable(listeners[l]);
	if (api_listener != NULL)
		evconnlistener_disable(api_listener);
	for (conn = TAILQ_FIRST(&conns); conn != NULL; conn = next) {
		next = TAILQ_NEXT(conn, entry);
		if (conn->state == CONN_WS)
			server_ws_close(conn, 1001, "server shutting down");
		else if (conn->state == CONN_HTTP)
			server_close(conn, "server shutting down");
	}
	stop_timer = evtimer_new(base, server_stop_timeout, NULL);
	evtimer_add(stop_timer, &tv);
	server_flush_later();
}
