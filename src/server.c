/*
 * server.c: a worker.  One libevent loop accepts on this slot's listening
 * sockets and runs every connection it accepted, for that connection's
 * whole life: HTTP first, then WebSocket if it upgrades.
 *
 * Connections are never freed from inside their own callbacks: the one
 * exit, server_close(), detaches the connection from its room at once and
 * parks it; the flush event, which libevent runs at a lower priority after
 * this loop iteration's I/O, frees it.  The same event delivers the room
 * changes of the iteration (room_flush), so a burst of messages to one
 * member becomes one write.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "roomd.h"

static struct event_base	*base;
static struct evconnlistener	*listeners[ROOMD_MAX_LISTEN];
static struct connlist		 conns = TAILQ_HEAD_INITIALIZER(conns);
static struct connlist		 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static struct event		*flush_ev, *stop_timer;
static uint64_t			 next_conn_id;
static int			 stopping, flush_scheduled;

static void	server_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	server_read(struct bufferevent *, void *);
static void	server_write(struct bufferevent *, void *);
static void	server_event(struct bufferevent *, short, void *);
static void	server_flush(evutil_socket_t, short, void *);
static void	server_stop(evutil_socket_t, short, void *);
static void	server_tick(evutil_socket_t, short, void *);
static void	server_reload(evutil_socket_t, short, void *);

struct event_base *
server_base(void)
{
	return base;
}

int
server_stopping(void)
{
	return stopping;
}

void
server_main(int slot)
{
	struct event	*sigterm, *sigint, *sighup, *tick;
	struct timeval	 second = { 1, 0 };
	char		 name[32];
	int		 s, l;

	env->slot = slot;
	snprintf(name, sizeof(name), "worker %d", slot);
	log_setproc(name);
	for (s = 0; s < env->nworkers; s++)
		if (s != slot)
			for (l = 0; l < env->conf.nlistens; l++)
				close(env->listen_fd[s][l]);

	if ((base = event_base_new()) == NULL ||
	    event_base_priority_init(base, 2) == -1)
		fatalx("%s: event_base_new", __func__);
	proc_mesh_worker(base);
	for (l = 0; l < env->conf.nlistens; l++) {
		listeners[l] = evconnlistener_new(base, server_accept, NULL,
		    LEV_OPT_CLOSE_ON_FREE, -1, env->listen_fd[slot][l]);
		if (listeners[l] == NULL)
			fatalx("%s: evconnlistener_new", __func__);
	}
	flush_ev = event_new(base, -1, 0, server_flush, NULL);
	event_priority_set(flush_ev, 1);
	sigterm = evsignal_new(base, SIGTERM, server_stop, NULL);
	sigint = evsignal_new(base, SIGINT, server_stop, NULL);
	sighup = evsignal_new(base, SIGHUP, server_reload, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_add(sighup, NULL);
	tick = event_new(base, -1, EV_PERSIST, server_tick, NULL);
	event_add(tick, &second);
	signal(SIGPIPE, SIG_IGN);

	log_debug("ready");
	event_base_dispatch(base);

	log_debug("exiting");
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_free(tick);
	exit(0);
}

static void
server_accept(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct conn	*conn;
	int		 on = 1;

	if (stopping) {
		close(fd);
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		log_warn("%s: calloc", __func__);
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	conn->id = ++next_conn_id;
	conn->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		close(fd);
		free(conn);
		return;
	}
	bufferevent_setcb(conn->bev, server_read, server_write, server_event,
	    conn);
	TAILQ_INSERT_TAIL(&conns, conn, entry);
	STATS_ADD(&env->arena, ST_CONNECTIONS, 1);
	STATS_ADD(&env->arena, ST_CONNECTIONS_OPEN, 1);
	server_http_start(conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
}

static void
server_read(struct bufferevent *bev, void *arg)
{
	struct conn	*conn = arg;

	conn->pinged = 0;
	if (conn->state == CONN_HTTP)
		server_http_read(conn);
	else if (conn->ws != NULL)
		server_ws_read(conn);
	else
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
server_write(struct bufferevent *bev, void *arg)
{
	struct conn	*conn = arg;

	if (conn->state == CONN_CLOSING) {
		/* A closing WebSocket waits for the peer's close frame. */
		if (conn->ws == NULL || conn->peer_closed)
			server_close(conn, "closed");
		return;
	}
	if (conn->mount != NULL && conn->mount->dialect->drained != NULL)
		conn->mount->dialect->drained(conn);
}

static void
server_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*conn = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		if (conn->state == CONN_WS && !conn->pinged) {
			conn->pinged = 1;
			server_ws_ping(conn);
			bufferevent_enable(bev, EV_READ);
			return;
		}
		server_close(conn, conn->state == CONN_HTTP ? "idle timeout" :
		    "no answer to ping");
	} else if (what & BEV_EVENT_EOF)
		server_close(conn, "peer closed the connection");
	else if (what & BEV_EVENT_ERROR)
		server_close(conn, evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
}

/*
 * The one exit of a connection.  It leaves its room now (so the room's
 * count is right at once); the memory is freed in server_flush.
 */
void
server_close(struct conn *conn, const char *reason)
{
	if (conn->bev == NULL)
		return;
	log_debug("connection %llu: %s", (unsigned long long)conn->id, reason);
	if (conn->ws != NULL && conn->mount->dialect->ws_close != NULL)
		conn->mount->dialect->ws_close(conn);
	if (conn->room != NULL)
		room_detach(conn, 0);
	STATS_ADD(&env->arena, ST_CONNECTIONS_OPEN, -1);
	if (conn->ws != NULL)
		STATS_DADD(&env->arena, conn->mount->dialect->id,
		    SD_WEBSOCKETS_OPEN, -1);
	bufferevent_free(conn->bev);
	conn->bev = NULL;
	TAILQ_REMOVE(&conns, conn, entry);
	TAILQ_INSERT_TAIL(&graveyard, conn, entry);
	server_flush_later();
}

int
server_output_full(struct conn *conn)
{
	return conn->bev == NULL || evbuffer_get_length(
	    bufferevent_get_output(conn->bev)) > env->conf.output_buffer_bytes;
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
	room_flush();
	while ((conn = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, conn, entry);
		server_ws_free(conn);
		if (conn->req != NULL)
			server_http_free(conn->req);
		free(conn->data);
		free(conn);
	}
	if (stopping && TAILQ_EMPTY(&conns))
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
	char			 err[1024];

	config_defaults(&c);
	if (env->conf.file[0] == '\0' ||
	    config_load(&c, env->conf.file, err, sizeof(err)) == -1 ||
	    config_finish(&c, err, sizeof(err)) == -1)
		return;
	config_apply_live(&env->conf, &c);
	log_debug("configuration reloaded");
}

static void
server_tick(evutil_socket_t fd, short events, void *arg)
{
	if (!stopping)
		room_tick();
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
