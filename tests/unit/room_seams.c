/*
 * room_seams.c: link-time stand-ins for what room.c, fanout.c and stats.c
 * call outside the engine (see room_seams.h), and the process environment
 * they read (env), so tests/unit/test_room.c can drive the engine against
 * an anonymous arena with fake connections.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "roomd.h"
#include "shm.h"
#include "room_seams.h"

struct roomd		*env;

struct seam_ring	 seam_rings[SEAM_RINGS];
int			 seam_nrings;
uint64_t		 seam_full_slots;
int			 seam_flush_later_calls;
int			 seam_frame_adds;
int			 seam_relay_matches;
char			 seam_relay_text[64];
struct seam_lost	 seam_lost[SEAM_LOST];
int			 seam_nlost;
void			(*seam_lost_fn)(struct room *,
			    const struct room_member *);
int			 seam_warnings;

static struct fake_conn	*fakes;
static struct event_base *base;

/* ------------------------------------------------------------------ */
/* dialect.c: the test dialects */

/* "[1:a,2:b]": each record as seq:data; "[]" for an empty message. */
static void
hist_frame_add(struct evbuffer *buf, const struct room_rec *rec, int i)
{
	if (rec == NULL) {
		evbuffer_add_printf(buf, "%s]", i == 0 ? "[" : "");
		return;
	}
	seam_frame_adds++;
	evbuffer_add_printf(buf, "%s%llu:%.*s", i == 0 ? "[" : ",",
	    (unsigned long long)rec->seq, (int)rec->len,
	    (const char *)rec->data);
}

static int
relay_match(struct conn *conn, const struct room_rec *rec)
{
	/* it sees the record itself, text and all */
	snprintf(seam_relay_text, sizeof(seam_relay_text), "%d %.*s",
	    rec->type, (int)rec->len, rec->data != NULL ?
	    (const char *)rec->data : "");
	seam_relay_matches++;
	return ((struct fake_conn *)conn)->tag == rec->target;
}

static void
relay_member_lost(struct room *room, const struct room_member *m)
{
	struct room_ref	 ref = room_ref(room);
	struct shm_room	*r = SHM_PTR(env->arena, ref.off);
	struct seam_lost *l;
	int		 locked;

	/* Held by this thread: a trylock of the (normal, robust) mutex
	 * finds it busy; if it is free, give it back at once. */
	locked = pthread_mutex_trylock(&r->lock.mtx) == EBUSY;
	if (!locked)
		pthread_mutex_unlock(&r->lock.mtx);
	if (seam_nlost < SEAM_LOST) {
		l = &seam_lost[seam_nlost];
		l->rid = ref.rid;
		l->m = *m;
		l->locked = locked;
	}
	seam_nlost++;
	if (seam_lost_fn != NULL)
		seam_lost_fn(room, m);
}

const struct dialect seam_hist = {
	.name = "hist",
	.id = 1,
	.default_mount = "/hist",
	.frame_add = hist_frame_add,
};

const struct dialect seam_relay = {
	.name = "relay",
	.id = 2,
	.default_mount = "/relay",
	.member_lost = relay_member_lost,
	.relay_match = relay_match,
	.relay = 1,
};

const struct mount seam_hist_mount = { "/hist", &seam_hist, 0 };
const struct mount seam_relay_mount = { "/relay", &seam_relay, 0 };

static const struct dialect *const dialects[] = { &seam_hist, &seam_relay };
#define NDIALECTS	(sizeof(dialects) / sizeof(dialects[0]))

const struct dialect *
dialect_find(const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i < NDIALECTS; i++)
		if (strcmp(dialects[i]->name, name) == 0)
			return dialects[i];
	return NULL;
}

const struct dialect *
dialect_find_id(unsigned id)
{
	size_t	 i;

	for (i = 0; i < NDIALECTS; i++)
		if (dialects[i]->id == id)
			return dialects[i];
	return NULL;
}

const struct dialect *
dialect_at(size_t i)
{
	return i < NDIALECTS ? dialects[i] : NULL;
}

/* ------------------------------------------------------------------ */
/* proc.c */

int
proc_ring(int slot, const struct doorbell *db)
{
	if (seam_full_slots & (1ULL << slot))
		return -1;
	if (seam_nrings < SEAM_RINGS) {
		seam_rings[seam_nrings].slot = slot;
		seam_rings[seam_nrings].db = *db;
	}
	seam_nrings++;
	return 0;
}

int
seam_rung(int slot, uint32_t type, struct doorbell *last)
{
	int	 i, n = 0;

	for (i = 0; i < seam_nrings && i < SEAM_RINGS; i++)
		if (seam_rings[i].slot == slot &&
		    seam_rings[i].db.type == type) {
			n++;
			if (last != NULL)
				*last = seam_rings[i].db;
		}
	return n;
}

uint64_t
seam_rung_slots(uint32_t type)
{
	uint64_t	 mask = 0;
	int		 i;

	for (i = 0; i < seam_nrings && i < SEAM_RINGS; i++)
		if (seam_rings[i].db.type == type)
			mask |= 1ULL << seam_rings[i].slot;
	return mask;
}

/* ------------------------------------------------------------------ */
/* server.c, server_ws.c: fake connections */

struct fake_conn *
seam_conn(const struct mount *mount)
{
	struct fake_conn	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		abort();
	f->c.state = CONN_WS;
	f->c.mount = mount;
	f->c.ws = f;		/* upgraded */
	f->next = fakes;
	fakes = f;
	return f;
}

struct event_base *
server_base(void)
{
	if (base == NULL && (base = event_base_new()) == NULL)
		abort();
	return base;
}

void
server_flush_later(void)
{
	seam_flush_later_calls++;
}

int
server_output_full(struct conn *conn)
{
	return ((struct fake_conn *)conn)->full || conn->closed;
}

/* Nothing in front: the fake frame keeps the payload as it was built. */
struct ws_frame {
	struct evbuffer	*payload;
};

struct ws_frame *
server_ws_frame_seal(struct evbuffer *payload, int binary)
{
	struct ws_frame	*frame;

	if ((frame = malloc(sizeof(*frame))) == NULL)
		abort();
	frame->payload = payload;
	return frame;
}

void
server_ws_frame_send(struct conn *conn, struct ws_frame *frame)
{
	struct fake_conn	*f = (struct fake_conn *)conn;
	size_t			 len = evbuffer_get_length(frame->payload);
	char			*copy;

	if (conn->state != CONN_WS)
		return;
	if (f->nframes < SEAM_FRAMES) {
		if ((copy = malloc(len + 1)) == NULL)
			abort();
		evbuffer_copyout(frame->payload, copy, len);
		copy[len] = '\0';
		f->frames[f->nframes] = copy;
	}
	f->nframes++;
}

void
server_ws_frame_free(struct ws_frame *frame)
{
	if (frame == NULL)
		return;
	evbuffer_free(frame->payload);
	free(frame);
}

/* As the real one: the first call starts the closing handshake. */
void
server_ws_close(struct conn *conn, int code, const char *reason)
{
	struct fake_conn	*f = (struct fake_conn *)conn;

	if (conn->closed || conn->state == CONN_CLOSING)
		return;
	conn->state = CONN_CLOSING;
	f->ncloses++;
	f->close_code = code;
	snprintf(f->close_reason, sizeof(f->close_reason), "%s", reason);
}

static void
fake_clear(struct fake_conn *f)
{
	int	 i;

	for (i = 0; i < f->nframes && i < SEAM_FRAMES; i++) {
		free(f->frames[i]);
		f->frames[i] = NULL;
	}
	f->nframes = 0;
}

void
seam_clear(void)
{
	struct fake_conn	*f;

	memset(seam_rings, 0, sizeof(seam_rings));
	seam_nrings = 0;
	seam_full_slots = 0;
	seam_flush_later_calls = 0;
	seam_frame_adds = 0;
	seam_relay_matches = 0;
	memset(seam_lost, 0, sizeof(seam_lost));
	seam_nlost = 0;
	seam_lost_fn = NULL;
	seam_warnings = 0;
	for (f = fakes; f != NULL; f = f->next)
		fake_clear(f);
}

void
seam_reset(void)
{
	struct fake_conn	*f;

	/* Leave fanout.c with no view of any room, and nothing pending. */
	for (f = fakes; f != NULL; f = f->next)
		if (f->c.room != NULL)
			fanout_detach(&f->c, 0, NULL);
	seam_full_slots = 0;
	fanout_flush();
	while ((f = fakes) != NULL) {
		fakes = f->next;
		fake_clear(f);
		free(f);
	}
	/* The base stays: fanout.c keeps its retry timer on it. */
	seam_clear();
}

/* ------------------------------------------------------------------ */
/* log.c */

void
log_warn(const char *fmt, ...)
{
	seam_warnings++;
}

void
log_warnx(const char *fmt, ...)
{
	seam_warnings++;
}

void
log_info(const char *fmt, ...)
{
}

void
log_debug(const char *fmt, ...)
{
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* webhook.c: the engine tells of rooms created and deleted. */
void
webhook_room(const struct dialect *d, enum webhook_event type,
    const char *id, const char *reason)
{
	(void)d;
	(void)type;
	(void)id;
	(void)reason;
}

/* Cluster mode's parting connections: the engine's tests have none. */
void
server_parting(struct conn *conn)
{
	(void)conn;
}

/* cluster_keeper.c: the engine's tests fork no helper: a dead slot's
 * Redis work is done in place. */
void
cluster_helper(const char *name, void (*fn)(void *), void (*done)(void *),
    void *arg)
{
	(void)name;
	fn(arg);
	done(arg);
}

int
cluster_helping(void)
{
	return 0;		/* in place: the master's one try */
}
