/*
 * proc.c: the doorbell mesh between workers.
 *
 * Each worker slot has an inbox: a datagram socketpair made by the master
 * before it forks.  A worker reads its own inbox and writes into the
 * others'.  Because the master keeps both ends, a restarted worker gets
 * the same inbox back.  A doorbell is a small fixed-size envelope (room,
 * sequence); the payload stays in the arena.  The master also hands a
 * live worker work it cannot do without an event loop (a webhook event
 * to send): a doorbell header of another type with the data after it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "roomd.h"

static struct event	*inbox_ev;
static int		 mesh_open;	/* the inboxes exist */
int			(*proc_live_slot)(void);

int
proc_mesh_open(void)
{
	int	 s, size = 1 << 20;

	/* Every slot, not only the first generation's: after a reload that
	 * starts new workers, old and new ring each other. */
	for (s = 0; s < ROOMD_MAX_WORKERS; s++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, env->inbox[s]) == -1) {
			log_warn("%s: socketpair", __func__);
			return -1;
		}
		setsockopt(env->inbox[s][0], SOL_SOCKET, SO_RCVBUF, &size,
		    sizeof(size));
		setsockopt(env->inbox[s][1], SOL_SOCKET, SO_SNDBUF, &size,
		    sizeof(size));
	}
	mesh_open = 1;
	return 0;
}

static void
proc_dispatch_worker(evutil_socket_t fd, short events, void *arg)
{
	static union {
		struct doorbell	 db;
		char		 buf[sizeof(struct doorbell) + PROC_MSG_MAX];
	}		 m;
	ssize_t		 n;
	int		 i;

	/* Bounded, so a flood of doorbells cannot starve client I/O. */
	for (i = 0; i < 1024; i++) {
		n = recv(fd, &m, sizeof(m), 0);
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("%s: recv", __func__);
			return;
		}
		if (n > (ssize_t)sizeof(m.db) && m.db.type == PROC_WEBHOOK) {
			webhook_forwarded(m.buf + sizeof(m.db),
			    (size_t)n - sizeof(m.db));
			continue;
		}
		if (n != sizeof(m.db)) {
			log_warnx("%s: doorbell of %zd bytes ignored",
			    __func__, n);
			continue;
		}
		fanout_doorbell(&m.db);
	}
}

/* In a worker: keep the own inbox to read and the others' to write. */
void
proc_mesh_worker(struct event_base *base)
{
	int	 s;

	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		if (s != env->slot)
			close(env->inbox[s][0]);
	inbox_ev = event_new(base, env->inbox[env->slot][0],
	    EV_READ | EV_PERSIST, proc_dispatch_worker, NULL);
	if (inbox_ev == NULL || event_add(inbox_ev, NULL) == -1)
		fatalx("%s: cannot watch the inbox", __func__);
}

/* Ring a worker's doorbell.  Returns 0, or -1 if its inbox is full or
 * there are no inboxes yet (a master repairing the arena it reattached:
 * no worker has started to hear it). */
int
proc_ring(int slot, const struct doorbell *db)
{
	if (!mesh_open)
		return -1;
	if (send(env->inbox[slot][1], db, sizeof(*db), MSG_DONTWAIT) == -1) {
		if (errno != EAGAIN && errno != ENOBUFS)
			log_warn("%s: slot %d", __func__, slot);
		return -1;
	}
	return 0;
}

/* From the master: data for a live worker, after a header of type. */
int
proc_forward(uint32_t type, const void *data, size_t len)
{
	struct doorbell	 db = { .type = type, .from = (uint32_t)-1 };
	struct iovec	 iov[2];
	struct msghdr	 msg;
	int		 slot;

	if (!mesh_open || proc_live_slot == NULL || len > PROC_MSG_MAX ||
	    (slot = proc_live_slot()) < 0)
		return -1;
	iov[0].iov_base = &db;
	iov[0].iov_len = sizeof(db);
	iov[1].iov_base = (void *)(uintptr_t)data;
	iov[1].iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	if (sendmsg(env->inbox[slot][1], &msg, MSG_DONTWAIT) == -1) {
		if (errno != EAGAIN && errno != ENOBUFS)
			log_warn("%s: slot %d", __func__, slot);
		return -1;
	}
	return 0;
}
