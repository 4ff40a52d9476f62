/*
 * server_io.c: a connection's transport, under server.c's connection
 * lifecycle.
 *
 * A TLS connection reads and writes through an OpenSSL bufferevent.  A
 * plain one, which is nearly every member of a big room, holds less: a
 * persistent read event with the idle timeout, a write event only while
 * the socket refuses output (with the stall timeout), and an input and an
 * output buffer only while something waits in them.  An idle member
 * costs its read event here, about 200 bytes; a bufferevent with its two
 * buffers was about 980 (BENCHMARKS.md, W5).
 *
 * A plain connection's output is written by the flush (server_flush),
 * after the iteration's I/O: conn_out() puts the connection on a list,
 * and conn_io_flush() writes each listed output with writev() until the
 * socket refuses.  A member who keeps up costs one system call per
 * iteration and no epoll_ctl().  Only a backlog gets a write event, which
 * writes the rest as the socket drains and goes away when it has.
 *
 * What happens comes back to server.c as server_read (input arrived),
 * server_write (the output drained) and server_event (idle, stalled, EOF
 * or error), the same for both kinds.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "roomd.h"

static TAILQ_HEAD(, conn)	 outq = TAILQ_HEAD_INITIALIZER(outq);

static void	conn_io_readable(evutil_socket_t, short, void *);
static void	conn_io_writable(evutil_socket_t, short, void *);
static void	conn_io_write(struct conn *);
static void	conn_tls_read(struct bufferevent *, void *);
static void	conn_tls_write(struct bufferevent *, void *);
static void	conn_tls_event(struct bufferevent *, short, void *);

/* A read or write that failed only for now. */
static int
conn_retry(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* A timeval of s seconds, or NULL for none. */
static const struct timeval *
conn_tv(struct timeval *tv, int s)
{
	tv->tv_sec = s;
	tv->tv_usec = 0;
	return s > 0 ? tv : NULL;
}

/*
 * Take fd as conn's socket, speaking TLS with ctx if it is not NULL.
 * Reading starts at once, without a timeout until conn_timeouts() sets
 * one.  Returns -1, with fd closed, if it cannot.
 */
int
conn_io_open(struct conn *conn, int fd, SSL_CTX *ctx)
{
	struct event_base	*base = server_base();
	SSL			*ssl;

	if (ctx == NULL) {
		conn->rev = event_new(base, fd, EV_READ | EV_PERSIST,
		    conn_io_readable, conn);
		if (conn->rev == NULL || event_add(conn->rev, NULL) == -1) {
			if (conn->rev != NULL)
				event_free(conn->rev);
			conn->rev = NULL;
			close(fd);
			return -1;
		}
		return 0;
	}
	if ((ssl = SSL_new(ctx)) == NULL) {
		close(fd);
		return -1;
	}
	/* The bufferevent owns ssl from here, also when it fails. */
	conn->bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		close(fd);
		return -1;
	}
	conn->tls = 1;
	/* A client that just drops TCP is an EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	bufferevent_setcb(conn->bev, conn_tls_read, conn_tls_write,
	    conn_tls_event, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	return 0;
}

/*
 * Stop all I/O and close the socket; what waits in the output is
 * dropped.  The buffers and events stay until conn_io_free(), as a
 * caller up the stack may still hold them.
 */
void
conn_io_close(struct conn *conn)
{
	if (conn->closed)
		return;
	conn->closed = 1;
	if (conn->out_queued) {
		TAILQ_REMOVE(&outq, conn, out_entry);
		conn->out_queued = 0;
	}
	if (conn->bev != NULL) {
		bufferevent_free(conn->bev);
		conn->bev = NULL;
		return;
	}
	if (conn->wev != NULL)
		event_del(conn->wev);
	event_del(conn->rev);
	close(event_get_fd(conn->rev));
}

void
conn_io_free(struct conn *conn)
{
	if (conn->wev != NULL)
		event_free(conn->wev);
	if (conn->rev != NULL)
		event_free(conn->rev);
	if (conn->in != NULL)
		evbuffer_free(conn->in);
	if (conn->out != NULL)
		evbuffer_free(conn->out);
	conn->wev = conn->rev = NULL;
	conn->in = conn->out = NULL;
}

int
conn_fd(struct conn *conn)
{
	if (conn->closed)
		return -1;
	return conn->bev != NULL ? bufferevent_getfd(conn->bev) :
	    event_get_fd(conn->rev);
}

/* What has been read and not yet taken; NULL when nothing waits. */
struct evbuffer *
conn_in(struct conn *conn)
{
	return conn->bev != NULL ? bufferevent_get_input(conn->bev) :
	    conn->in;
}

/* A plain connection's input buffer goes once it is empty. */
void
conn_in_trim(struct conn *conn)
{
	if (conn->in != NULL && evbuffer_get_length(conn->in) == 0) {
		evbuffer_free(conn->in);
		conn->in = NULL;
	}
}

/*
 * The output, for adding to; the flush writes it.  NULL on a closed
 * connection, or when no buffer can be had: then the flush closes the
 * connection, since the caller may be walking a list it is on.
 */
struct evbuffer *
conn_out(struct conn *conn)
{
	if (conn->closed)
		return NULL;
	if (conn->bev != NULL)
		return bufferevent_get_output(conn->bev);
	if (conn->out == NULL && (conn->out = evbuffer_new()) == NULL)
		conn->io_failed = 1;
	/* With a backlog, the write event writes. */
	if (conn->wev == NULL || conn->io_failed)
		conn_io_flush_later(conn);
	return conn->out;
}

size_t
conn_out_len(struct conn *conn)
{
	struct evbuffer	*out;

	if (conn->closed)
		return 0;
	out = conn->bev != NULL ? bufferevent_get_output(conn->bev) :
	    conn->out;
	return out != NULL ? evbuffer_get_length(out) : 0;
}

/*
 * Have the flush look at conn: write its output, and if that is drained
 * (or empty) call server_write, which ends a closing connection.
 */
void
conn_io_flush_later(struct conn *conn)
{
	if (conn->closed)
		return;
	if (conn->bev != NULL) {
		bufferevent_trigger(conn->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
		return;
	}
	if (conn->out_queued)
		return;
	conn->out_queued = 1;
	TAILQ_INSERT_TAIL(&outq, conn, out_entry);
	server_flush_later();
}

/* Stop or resume reading (a request held for another server's answer). */
void
conn_reading(struct conn *conn, int on)
{
	struct timeval	 tv;

	if (conn->closed || conn->no_read == !on)
		return;
	conn->no_read = !on;
	if (conn->bev != NULL) {
		if (on)
			bufferevent_enable(conn->bev, EV_READ);
		else
			bufferevent_disable(conn->bev, EV_READ);
	} else if (on)
		event_add(conn->rev, conn_tv(&tv, conn->idle));
	else
		event_del(conn->rev);
}

/*
 * Close (server_event) after idle seconds without input, and after stall
 * seconds in which a backlog made no progress; 0 is no limit.
 */
void
conn_timeouts(struct conn *conn, int idle, int stall)
{
	struct timeval	 r, w;

	if (conn->closed)
		return;
	conn->idle = idle;
	conn->stall = stall;
	if (conn->bev != NULL)
		bufferevent_set_timeouts(conn->bev, conn_tv(&r, idle),
		    conn_tv(&w, stall));
	else {
		if (!conn->no_read)
			event_add(conn->rev, conn_tv(&r, idle));
		if (conn->wev != NULL)
			event_add(conn->wev, conn_tv(&w, stall));
	}
}

/* Write every listed output (server_flush, after the iteration's I/O). */
void
conn_io_flush(void)
{
	struct conn	*conn;

	while ((conn = TAILQ_FIRST(&outq)) != NULL) {
		TAILQ_REMOVE(&outq, conn, out_entry);
		conn->out_queued = 0;
		if (conn->io_failed)
			server_close(conn, "out of memory");
		else if (conn->wev == NULL)
			conn_io_write(conn);
	}
}

/*
 * Write what the socket takes.  Then either the output is drained (the
 * buffer goes, and server_write hears of it), or the rest waits for the
 * write event, made now.
 */
static void
conn_io_write(struct conn *conn)
{
	evutil_socket_t	 fd = event_get_fd(conn->rev);
	struct timeval	 tv;
	int		 n = 0;

	while (conn->out != NULL && evbuffer_get_length(conn->out) > 0 &&
	    (n = evbuffer_write(conn->out, fd)) > 0)
		;
	if (n == -1 && !conn_retry(errno)) {
		server_event(conn, CONN_IO_ERROR);
		return;
	}
	if (conn->out != NULL && evbuffer_get_length(conn->out) > 0) {
		if (conn->wev == NULL && ((conn->wev = event_new(server_base(),
		    fd, EV_WRITE | EV_PERSIST, conn_io_writable, conn)) ==
		    NULL || event_add(conn->wev, conn_tv(&tv, conn->stall)) ==
		    -1)) {
			server_close(conn, "out of memory");
			return;
		}
		return;
	}
	if (conn->wev != NULL) {
		event_free(conn->wev);
		conn->wev = NULL;
	}
	if (conn->out != NULL) {
		evbuffer_free(conn->out);
		conn->out = NULL;
	}
	server_write(conn);
}

static void
conn_io_writable(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*conn = arg;

	if (what & EV_TIMEOUT)
		server_event(conn, CONN_IO_STALLED);
	else
		conn_io_write(conn);
}

static void
conn_io_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*conn = arg;
	int		 n;

	if (what & EV_TIMEOUT) {
		server_event(conn, CONN_IO_IDLE);
		return;
	}
	if (conn->in == NULL && (conn->in = evbuffer_new()) == NULL) {
		server_close(conn, "out of memory");
		return;
	}
	n = evbuffer_read(conn->in, fd, -1);
	if (n == 0)
		server_event(conn, CONN_IO_EOF);
	else if (n > 0)
		server_read(conn);
	else if (!conn_retry(errno))
		server_event(conn, CONN_IO_ERROR);
	if (!conn->closed)
		conn_in_trim(conn);
}

static void
conn_tls_read(struct bufferevent *bev, void *arg)
{
	server_read(arg);
}

static void
conn_tls_write(struct bufferevent *bev, void *arg)
{
	server_write(arg);
}

/* A bufferevent stops reading at its timeout: go on if still open. */
static void
conn_tls_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*conn = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		server_event(conn, (what & BEV_EVENT_WRITING) ?
		    CONN_IO_STALLED : CONN_IO_IDLE);
		if (!conn->closed && !conn->no_read)
			bufferevent_enable(bev, EV_READ);
	} else if (what & BEV_EVENT_EOF)
		server_event(conn, CONN_IO_EOF);
	else if (what & BEV_EVENT_ERROR)
		server_event(conn, CONN_IO_ERROR);
}
