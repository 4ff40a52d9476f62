/*
 * webhook.c: roomd tells the application what happens in its rooms.
 *
 * An event (a room created or deleted, a member joined or left, each in
 * its dialect's meaning) is a JSON object POSTed to every webhook URL of
 * roomd.conf, signed with HMAC-SHA256 over the attempt's timestamp and
 * the body (roomd-protocols(7), WEBHOOKS).  Nothing here ever waits:
 *
 * - A worker queues the events that happen in it: one queue per URL, all
 *   of them bounded together by webhook_queue.  Each URL has one request
 *   in flight at a time, so a backend sees a worker's events in order;
 *   a failed one (no answer in webhook_timeout, or not 2xx) is retried
 *   with exponential backoff, up to webhook_retries times.
 * - The master has no event loop to send from.  What happens there (a
 *   room deleted by roomctl or by expiry, members lost with a dead
 *   worker) goes as a datagram to a live worker's inbox (proc.c), which
 *   queues it as its own.
 *
 * An event that finds the queue full, whose inbox is full, or whose
 * retries are spent is dropped: counted (roomd_webhooks_dropped_total on
 * /metrics) and logged, at most once per interval with the count.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "roomd.h"

#define WEBHOOK_BACKOFF_MAX	60	/* seconds between two attempts */
#define WEBHOOK_TARGETS		(2 * ROOMD_MAX_WEBHOOKS)

/* One event on its way to one URL. */
struct wh_item {
	TAILQ_ENTRY(wh_item)	 entry;
	char			*body;
	size_t			 len;
	char			 id[MEMBER_UID_LEN + 1];
	char			 type[16];
	int			 attempts;	/* made so far */
	time_t			 not_before;	/* the next one, after a failure */
};
TAILQ_HEAD(wh_queue, wh_item);

/*
 * A URL's queue.  A URL that a reload removed keeps its target until
 * what was queued for it is sent or dropped.
 */
struct wh_target {
	char			 url[ROOMD_URL_MAX];
	struct wh_queue		 q;
	int			 busy;		/* a request in flight */
	struct event		*timer;		/* the head's next attempt */
};

static struct wh_target		 targets[WEBHOOK_TARGETS];
static int			 queued;	/* items in every queue */
static struct log_limit		 drop_log = { "webhook", 0, 0 };
static struct log_limit		 fail_log = { "webhook", 0, 0 };

static const char *const wh_names[] = {
	"room.created", "room.deleted", "member.joined", "member.left"
};

static void	wh_kick(struct wh_target *);

static void
wh_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	wh_kick(arg);
}

/* An event was dropped: counted, and said at most once an interval. */
static void
wh_dropped(const char *type, const char *why)
{
	stats_add(STAT_WEBHOOKS_DROPPED, 1);
	log_limited(&drop_log, "%s event dropped: %s", type, why);
}

static void
wh_item_free(struct wh_item *it)
{
	free(it->body);
	free(it);
}

/* The target of url, made if there is room for it; NULL if none. */
static struct wh_target *
wh_target(const char *url)
{
	struct wh_target	*t, *free_t = NULL;
	int			 i;

	for (i = 0; i < WEBHOOK_TARGETS; i++) {
		t = &targets[i];
		if (t->url[0] != '\0' && strcmp(t->url, url) == 0)
			return t;
		if (free_t == NULL && (t->url[0] == '\0' ||
		    (!t->busy && TAILQ_EMPTY(&t->q))))
			free_t = t;
	}
	if ((t = free_t) == NULL)
		return NULL;
	if (t->timer == NULL) {
		TAILQ_INIT(&t->q);
		if ((t->timer = evtimer_new(server_base(), wh_timer, t)) ==
		    NULL)
			return NULL;
	}
	snprintf(t->url, sizeof(t->url), "%s", url);
	return t;
}

/* Queue a copy of an event's body for every webhook URL. */
static void
wh_enqueue(const char *body, size_t len, const char *id, const char *type)
{
	struct wh_target	*t;
	struct wh_item		*it;
	int			 i;

	for (i = 0; i < env->conf.nwebhooks; i++) {
		if (queued >= env->conf.webhook_queue) {
			wh_dropped(type, "the queue is full");
			continue;
		}
		if ((t = wh_target(env->conf.webhooks[i])) == NULL ||
		    (it = calloc(1, sizeof(*it))) == NULL) {
			wh_dropped(type, "out of memory");
			continue;
		}
		if ((it->body = malloc(len + 1)) == NULL) {
			free(it);
			wh_dropped(type, "out of memory");
			continue;
		}
		memcpy(it->body, body, len);
		it->body[len] = '\0';
		it->len = len;
		snprintf(it->id, sizeof(it->id), "%s", id);
		snprintf(it->type, sizeof(it->type), "%s", type);
		TAILQ_INSERT_TAIL(&t->q, it, entry);
		queued++;
		wh_kick(t);
	}
}

/*
 * The signature of a body sent at ts: "sha256=" and the hex of
 * HMAC-SHA256(secret, ts "." body), into sig (72 bytes).  0, or -1.
 */
int
webhook_sign(const char *secret, const char *ts, const char *body,
    size_t len, char *sig, size_t siglen)
{
	uint8_t		 mac[EVP_MAX_MD_SIZE];
	unsigned int	 maclen = 0, i;
	char		*msg;
	size_t		 tlen = strlen(ts);

	if (siglen < 7 + 64 + 1 || (msg = malloc(tlen + 1 + len)) == NULL)
		return -1;
	memcpy(msg, ts, tlen);
	msg[tlen] = '.';
	memcpy(msg + tlen + 1, body, len);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, tlen + 1 + len, mac, &maclen) == NULL) {
		free(msg);
		return -1;
	}
	free(msg);
	memcpy(sig, "sha256=", 7);
	for (i = 0; i < maclen; i++)
		snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

/* Seconds to wait after attempt n failed: 1, 2, 4... up to the cap. */
static int
wh_backoff(int n)
{
	return n >= 7 ? WEBHOOK_BACKOFF_MAX : 1 << (n - 1);
}

/* The head of t's queue was answered (status 0: not at all). */
static void
wh_done(int status, const char *body, size_t len, void *arg)
{
	struct wh_target	*t = arg;
	struct wh_item		*it = TAILQ_FIRST(&t->q);
	char			 why[ROOMD_URL_MAX + 64];

	t->busy = 0;
	if (status >= 200 && status <= 299) {
		stats_add(STAT_WEBHOOKS_SENT, 1);
		TAILQ_REMOVE(&t->q, it, entry);
		queued--;
		wh_item_free(it);
	} else {
		if (status == 0)
			snprintf(why, sizeof(why), "%s", fetch_error());
		else
			snprintf(why, sizeof(why), "status %d", status);
		log_limited(&fail_log, "%s: %s event %s: %s (attempt %d)",
		    t->url, it->type, it->id, why, it->attempts);
		if (it->attempts > env->conf.webhook_retries) {
			TAILQ_REMOVE(&t->q, it, entry);
			queued--;
			snprintf(why, sizeof(why), "%s: no success in %d "
			    "attempts", t->url, it->attempts);
			wh_dropped(it->type, why);
			wh_item_free(it);
		} else {
			stats_add(STAT_WEBHOOKS_RETRIED, 1);
			it->not_before = time(NULL) + wh_backoff(it->attempts);
		}
	}
	wh_kick(t);
}

/* Send the head of t's queue, now or when its backoff ends. */
static void
wh_kick(struct wh_target *t)
{
	struct wh_item	*it;
	struct timeval	 tv = { 0, 0 };
	time_t		 now = time(NULL);
	char		 ts[24], sig[80];
	const char	*headers[] = { "X-Roomd-Event", NULL,
			    "X-Roomd-Delivery", NULL, "X-Roomd-Timestamp", ts,
			    "X-Roomd-Signature", sig, NULL };

	if (t->busy || (it = TAILQ_FIRST(&t->q)) == NULL)
		return;
	if (it->not_before > now) {
		tv.tv_sec = it->not_before - now;
		if (!evtimer_pending(t->timer, NULL))
			evtimer_add(t->timer, &tv);
		return;
	}
	headers[1] = it->type;
	headers[3] = it->id;
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	it->attempts++;
	t->busy = 1;
	if (webhook_sign(env->conf.webhook_secret, ts, it->body, it->len, sig,
	    sizeof(sig)) == -1 || fetch_json(t->url, it->body, it->len,
	    headers, env->conf.webhook_timeout, wh_done, t) == -1) {
		/* Not even started: a failure like any other, retried
		 * after its backoff (the timer, not a recursion). */
		t->busy = 0;
		it->not_before = now + wh_backoff(it->attempts);
		if (it->attempts > env->conf.webhook_retries) {
			TAILQ_REMOVE(&t->q, it, entry);
			queued--;
			wh_dropped(it->type, "the request could not start");
			wh_item_free(it);
			tv.tv_sec = 0;
		} else
			tv.tv_sec = it->not_before - now;
		evtimer_add(t->timer, &tv);
	}
}

/* The body of an event, as roomd-protocols(7) shows it. */
static struct json_object *
wh_json(const struct dialect *d, enum webhook_event type, const char *room,
    const struct webhook_member *m, const char *reason, char *id)
{
	struct json_object	*o = json_object_new_object(), *jm;

	util_uuid(id);
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "type",
	    json_object_new_string(wh_names[type]));
	json_object_object_add(o, "time",
	    json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(o, "dialect", json_object_new_string(d->name));
	json_object_object_add(o, "room", json_object_new_string(room));
	if (m != NULL) {
		jm = json_object_new_object();
		json_object_object_add(jm, "id", json_object_new_string(m->id));
		json_object_object_add(jm, "name",
		    json_object_new_string(m->name));
		json_object_object_add(jm, "host",
		    json_object_new_boolean(m->host));
		json_object_object_add(o, "member", jm);
	}
	if (reason != NULL)
		json_object_object_add(o, "reason",
		    json_object_new_string(reason));
	return o;
}

/*
 * An event of dialect d: queued in a worker, handed to a worker by the
 * master.  m is the member of a member event (NULL for a room event);
 * reason says why a room was deleted or a member left (NULL: nothing).
 */
void
webhook_emit(const struct dialect *d, enum webhook_event type,
    const char *room, const struct webhook_member *m, const char *reason)
{
	struct json_object	*o;
	const char		*text;
	char			 id[MEMBER_UID_LEN + 1];
	size_t			 len;

	if (env->conf.nwebhooks == 0 || d == NULL)
		return;
	o = wh_json(d, type, room, m, reason, id);
	text = json_text(o, &len);
	if (env->slot >= 0)
		wh_enqueue(text, len, id, wh_names[type]);
	else if (proc_forward(PROC_WEBHOOK, text, len) == -1)
		wh_dropped(wh_names[type], "no worker's inbox could take it");
	json_object_put(o);
}

/* An event the master handed over (proc.c): queued as if it were ours. */
void
webhook_forwarded(const char *body, size_t len)
{
	struct json_object	*o = NULL;
	const char		*id, *type;

	if (json_parse(body, len, &o) == -1 || o == NULL ||
	    (id = json_get_string(o, "id")) == NULL ||
	    (type = json_get_string(o, "type")) == NULL)
		log_warnx("%s: a malformed event from the master", __func__);
	else
		wh_enqueue(body, len, id, type);
	json_object_put(o);
}

/* The room a room event names: the dialect's name for it, or NULL when
 * the room is none of the dialect's rooms to its users. */
static const char *
wh_room_name(const struct dialect *d, const char *id, char *buf,
    size_t len)
{
	if (d->room_name == NULL)
		return id;
	return d->room_name(id, buf, len) == 0 ? buf : NULL;
}

/* A room of dialect d was created or deleted (room.c). */
void
webhook_room(const struct dialect *d, enum webhook_event type,
    const char *id, const char *reason)
{
	char		 name[ROOM_ID_MAX + 8];
	const char	*room;

	if (env->conf.nwebhooks == 0 || d == NULL ||
	    (room = wh_room_name(d, id, name, sizeof(name))) == NULL)
		return;
	webhook_emit(d, type, room, NULL, reason);
}

/* The worker stops: what is still queued will not be sent. */
void
webhook_stop(void)
{
	struct wh_item	*it;
	int		 i, n = 0;

	for (i = 0; i < WEBHOOK_TARGETS; i++) {
		while ((it = TAILQ_FIRST(&targets[i].q)) != NULL) {
			TAILQ_REMOVE(&targets[i].q, it, entry);
			wh_item_free(it);
			n++;
		}
		if (targets[i].timer != NULL)
			event_free(targets[i].timer);
		targets[i].timer = NULL;
		targets[i].url[0] = '\0';
	}
	queued = 0;
	if (n > 0) {
		stats_add(STAT_WEBHOOKS_DROPPED, n);
		log_warnx("webhook: %d events dropped: the worker stops", n);
	}
}
