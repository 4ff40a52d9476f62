/*
 * dialect_chat.c: chat channels and private messages (seed 001).
 *
 * Every chat connection is a member of the chat's server room ("@"; one
 * for the dialect, however many paths it is mounted on),
 * which carries what goes to everyone (channel created or destroyed), to
 * one user (private messages) and, tagged with a channel, what goes to a
 * channel's participants.  Each channel is a room of its own that nobody
 * connects to: its members are the participants and its op log is the
 * channel's history.  A channel message is appended to the channel's log
 * and published in the server room while the channel's lock is held
 * (channel lock, then server room lock: always in that order), so the
 * history and the live order agree on every worker.
 *
 * A signed-in user may have several connections (tabs), on any workers.
 * The user is one member of a channel however many of them joined it,
 * present (room_member_here) on each worker where one of them is in it;
 * the others hear "join" when it first comes and "left" when its last
 * connection there leaves, or is lost with its worker (chat_member_lost).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "roomd.h"

#define CHAT_SERVER_ROOM	"@"
#define CHAT_CHANNELS_MAX	64	/* channels one connection joins */
/* A channel's or a guest's name: 1 to 64 characters.  A channel's room
 * is named without its "#", so that 64 of them fit a room id. */
#define CHAT_NAME_MAX		ROOM_ID_MAX
#define CHAT_CREATOR		0x2	/* member role bit in a channel */

struct chat_channel {
	uint64_t	 rid;
	uint64_t	 tag;	/* room_key: what the server room's records
				 * for the channel carry, on every host */
	uint64_t	 from;	/* server log seq its history reached */
	uint64_t	 seen;	/* the channel's last message sent to it */
	uint64_t	 stall;	/* the channel's last one at the last tick */
	char		 name[CHAT_NAME_MAX + 2];	/* with its "#" */
};

struct chat_conn {
	LIST_ENTRY(chat_conn)	 entry;	/* while in chat_conns */
	struct conn		*conn;
	int			 listed;
	char			 name[ROOM_ID_MAX + 1];
	char			 uid[MEMBER_UID_LEN + 1];
	uint64_t		 tag;	/* chat_user_tag(uid) */
	struct chat_channel	 ch[CHAT_CHANNELS_MAX];
	int			 nch;
};

/* This worker's open chat connections. */
static LIST_HEAD(, chat_conn)	 chat_conns = LIST_HEAD_INITIALIZER(chat_conns);

/* "#name" or "@name": the sigil, then 1..64 of [A-Za-z0-9_-]. */
static int
chat_valid_target(const char *t, char sigil)
{
	return t != NULL && t[0] == sigil && util_valid_id(t + 1,
	    CHAT_NAME_MAX);
}

static void
chat_error(struct conn *conn, const char *code, const char *message,
    struct json_object *request)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("error"));
	json_object_object_add(o, "code", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	if (request != NULL)
		json_object_object_add(o, "request", json_object_get(request));
	server_ws_send_json(conn, o);
}

/* An event; a participant's carries its name and channel (target). */
static struct json_object *
chat_event(const char *emitter, const char *identifier, const char *event,
    const char *name, const char *target)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("event"));
	json_object_object_add(o, "emitter", json_object_new_string(emitter));
	json_object_object_add(o, "identifier",
	    json_object_new_string(identifier));
	json_object_object_add(o, "event", json_object_new_string(event));
	if (name != NULL)
		json_object_object_add(o, "name", json_object_new_string(name));
	if (target != NULL)
		json_object_object_add(o, "target",
		    json_object_new_string(target));
	return o;
}

/*
 * The connection's entry for channel name, if it joined the channel that
 * has this rid now.  An entry for a channel since destroyed (and maybe
 * made again) is dropped.
 */
static struct chat_channel *
chat_joined(struct chat_conn *cc, const char *name, uint64_t rid)
{
	int	 i;

	for (i = 0; i < cc->nch; i++) {
		if (strcmp(cc->ch[i].name, name) != 0)
			continue;
		if (cc->ch[i].rid == rid)
			return &cc->ch[i];
		cc->ch[i] = cc->ch[--cc->nch];
		return NULL;
	}
	return NULL;
}

/*
 * Channel "#name" is the room "name" (the server room is "@").  An arena
 * kept from a roomd that named channel rooms with their "#" (and so only
 * up to 63 characters) may still hold such a room: it is found too.
 * 0 or ROOM_ENOENT.
 */
static int
chat_find(const char *name, struct room_ref *ref)
{
	if (room_find(&dialect_chat, name + 1, ref) == 0)
		return 0;
	return strlen(name) <= ROOM_ID_MAX ? room_find(&dialect_chat, name,
	    ref) : ROOM_ENOENT;
}

/* Drop the entries of channels that no longer exist. */
static void
chat_prune(struct chat_conn *cc)
{
	struct room_ref		 ref;
	int			 i;

	for (i = 0; i < cc->nch; i++)
		if (chat_find(cc->ch[i].name, &ref) != 0 ||
		    ref.rid != cc->ch[i].rid)
			cc->ch[i--] = cc->ch[--cc->nch];
}

/* Whether a connection of this worker of user uid is in channel rid. */
static int
chat_local_joined(const char *uid, uint64_t rid)
{
	struct chat_conn	*cc;
	int			 i;

	LIST_FOREACH(cc, &chat_conns, entry) {
		if (strcmp(cc->uid, uid) != 0)
			continue;
		for (i = 0; i < cc->nch; i++)
			if (cc->ch[i].rid == rid)
				return 1;
	}
	return 0;
}

/*
 * Whether user m is in channel room (locked) through a connection of this
 * worker (here), as its other connections on this worker say.  A user in
 * the channel through none on any worker is out: its member goes, but a
 * creator's.  Returns 1 if the user is out.
 */
static int
chat_presence(struct room *room, const struct room_member *m, int here)
{
	if (room_member_here(room, m->mid, here) != 0)
		return 0;
	if (!(m->role & CHAT_CREATOR))
		room_member_remove(room, m->mid);
	return 1;
}

/*
 * The tag of what goes to every connection of one user: 63 bits of the
 * SHA-256 of the identifier, with the top bit set (channel tags are room
 * keys, below it).  A hash nobody can aim: an identifier that an
 * identity provider let a user choose must not take another's messages.
 */
static uint64_t
chat_user_tag(const char *uid)
{
	uint8_t		 md[32];
	uint64_t	 h = 0;
	int		 i;

	util_sha256("chat-user:", 10, uid, strlen(uid), md);
	for (i = 0; i < 8; i++)
		h = h << 8 | md[i];
	return h | 1ULL << 63;
}

/* History: the messages from first on (after since, or the last
 * chat_history), and before end if end is not 0. */
struct chat_history {
	struct conn	*conn;
	uint64_t	 first, end;
	uint64_t	 sent;
};

static int
chat_send_rec(const struct room_rec *rec, void *arg)
{
	struct chat_history	*h = arg;

	if (h->end != 0 && rec->seq >= h->end)
		return 1;
	if (rec->seq >= h->first) {
		server_ws_send_text(h->conn, rec->data, rec->len);
		h->sent++;
	}
	return 0;
}

/*
 * The seq of a channel message as the server room relays it (the text
 * chat_message_json made, whose last member it is), or 0 for any other
 * record (an event).
 */
static uint64_t
chat_rec_seq(const struct room_rec *rec)
{
	static const char	 key[] = ",\"seq\":";
	const char		*p = rec->data;
	size_t			 n = rec->len, end, k = sizeof(key) - 1;
	uint64_t		 seq = 0, mul = 1;

	if (n < k + 2 || p[n - 1] != '}')
		return 0;
	for (end = n - 1; end > 0 && p[end - 1] >= '0' && p[end - 1] <= '9' &&
	    n - end < 20; end--) {
		seq += (uint64_t)(p[end - 1] - '0') * mul;
		mul *= 10;
	}
	if (end == n - 1 || end < k || memcmp(p + end - k, key, k) != 0)
		return 0;
	return seq;
}

/* The connection's channel ch, as this host has it, locked to read
 * (room_lock_view): 0, or -1 if it is gone or was made again. */
static int
chat_view(const struct chat_channel *ch, struct room **room)
{
	struct room_ref	 ref;

	if (chat_find(ch->name, &ref) != 0 || ref.rid != ch->rid ||
	    room_lock_view(&ref, room) != 0)
		return -1;
	return 0;
}

/* Send the channel's messages after ch->seen and before seq, which the
 * relay lost with their sender's worker (they are in the history). */
static void
chat_fill(struct conn *conn, struct chat_channel *ch, uint64_t seq)
{
	struct chat_history	 h = { conn, ch->seen + 1, seq, 0 };
	struct room		*room;

	if (chat_view(ch, &room) != 0)
		return;
	room_read(room, ch->seen, chat_send_rec, &h);
	room_unlock(room);
	if (h.sent + 1 < seq - ch->seen)
		log_warnx("chat %s: messages %llu to %llu are not here to "
		    "send", ch->name, (unsigned long long)ch->seen + 1,
		    (unsigned long long)seq - 1);
}

static int
chat_relay_match(struct conn *conn, const struct room_rec *rec)
{
	struct chat_conn	*cc = conn->data;
	struct chat_channel	*ch;
	uint64_t		 seq;
	int			 i;

	if (cc != NULL && (rec->target & 1ULL << 63))
		return rec->target == cc->tag;
	for (i = 0; cc != NULL && i < cc->nch; i++) {
		ch = &cc->ch[i];
		if (ch->tag != rec->target)
			continue;
		if (rec->seq <= ch->from)
			return 0;
		if ((seq = chat_rec_seq(rec)) == 0)
			return 1;
		if (seq <= ch->seen)
			return 0;	/* sent from the history already */
		if (seq > ch->seen + 1)
			chat_fill(conn, ch, seq);
		ch->seen = seq;
		return 1;
	}
	return 0;
}

/*
 * The last message of channel rid (name), as this host has it; one lookup
 * per channel and tick (a few channels kept, the others looked up again).
 */
struct chat_last {
	uint64_t	 rid, seq;
};

static uint64_t
chat_last(struct chat_last *c, size_t max, size_t *n,
    const struct chat_channel *ch)
{
	struct room	*room;
	uint64_t	 seq = 0;
	size_t		 i;

	for (i = 0; i < *n; i++)
		if (c[i].rid == ch->rid)
			return c[i].seq;
	if (chat_view(ch, &room) == 0) {
		seq = room_committed(room);
		room_unlock(room);
	}
	if (*n < max)
		c[(*n)++] = (struct chat_last){ ch->rid, seq };
	return seq;
}

/*
 * Once a second: a channel message that was in the history a tick ago
 * and has not reached a connection of the channel since lost its relay
 * (its sender's worker or host died in between, chat_relay) and was not
 * made good by a next message (chat_relay_match): it is sent from the
 * history now.  A relay of it that still comes is not sent again.
 */
static void
chat_tick(const struct room_ref *server)
{
	struct chat_last	 last[32];
	struct chat_conn	*cc;
	struct chat_channel	*ch;
	size_t			 n = 0;
	uint64_t		 seq;
	int			 i;

	(void)server;
	LIST_FOREACH(cc, &chat_conns, entry)
		for (i = 0; i < cc->nch; i++) {
			ch = &cc->ch[i];
			seq = chat_last(last, sizeof(last) / sizeof(last[0]),
			    &n, ch);
			if (ch->stall > ch->seen) {
				chat_fill(cc->conn, ch, ch->stall + 1);
				ch->seen = ch->stall;
			}
			ch->stall = seq > ch->seen ? seq : 0;
		}
}

/*
 * auth_hook's answer to a handshake: refused with 403 (the application
 * said no) or 503 (it could not be asked), or let through, maybe under
 * another name.  A name that is no chat name is a bad answer.
 */
static void
chat_checked(struct conn *conn, struct authhook_answer *a, void *arg)
{
	struct chat_conn	*cc = conn->data;

	(void)arg;
	authhook_validate(a, a->name == NULL ||
	    util_valid_id(a->name, CHAT_NAME_MAX));
	if (a->allow && a->name != NULL)
		snprintf(cc->name, sizeof(cc->name), "%s", a->name);
	authhook_handshake(conn, a);
}

/*
 * A signed-in user (a session token or a provider's ID token, oauth.c),
 * or a guest named by ?name= when chat_anonymous allows guests; then
 * auth_hook, if the chat has one.
 */
static int
chat_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	struct authhook_query	 q = { &dialect_chat, "connect", NULL, NULL,
				    NULL, 0 };
	struct chat_conn	*cc;
	struct chat_user	 u;
	int			 rc;

	if (sub[0] != '\0' && strcmp(sub, "/") != 0)
		return 404;
	if ((rc = oauth_identify(req, &u)) == -1 ||
	    (rc == 1 && !env->conf.chat_anonymous))
		return 401;
	if ((cc = calloc(1, sizeof(*cc))) == NULL)
		return 500;
	if (rc == 0) {
		snprintf(cc->name, sizeof(cc->name), "%s", u.name);
		snprintf(cc->uid, sizeof(cc->uid), "%s", u.uid);
		q.user = cc->uid;
	} else if (util_query_get(req->query, "name", cc->name,
	    sizeof(cc->name)) != 1 || !util_valid_id(cc->name,
	    CHAT_NAME_MAX)) {
		free(cc);
		return 400;
	} else
		util_uuid(cc->uid);
	cc->tag = chat_user_tag(cc->uid);
	cc->conn = conn;
	free(conn->data);
	conn->data = cc;
	q.name = cc->name;
	switch (authhook_ask(conn, &q, chat_checked, NULL, NULL)) {
	case 0:
		return 0;
	case 1:
		return HTTP_HELD;
	default:
		return 500;
	}
}

/* GET MOUNT/auth/...: signing in; anything else wants a WebSocket. */
static void
chat_http(struct conn *conn, struct http_req *req, const char *sub)
{
	if (strncmp(sub, "/auth/", 6) == 0)
		oauth_http(conn, req, sub);
	else
		server_http_upgrade_required(conn);
}

static int
chat_admin(const struct chat_conn *cc)
{
	int	 i;

	for (i = 0; i < env->conf.nadmins; i++)
		if (strcmp(env->conf.chat_admins[i], cc->uid) == 0)
			return 1;
	return 0;
}

/* Lock the server room of the chat, making it if need be. */
static int
chat_server_room(struct room **out)
{
	struct room_ref		 ref;
	int			 tries;

	for (tries = 0; tries < 3; tries++) {
		if (room_find_lock(&dialect_chat, CHAT_SERVER_ROOM, &ref,
		    out) == 0)
			return 0;
		if (room_create(&dialect_chat, CHAT_SERVER_ROOM, NULL, out) == 0)
			return 0;
	}
	return -1;
}

static void
chat_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
	struct chat_conn	*cc = conn->data;
	struct room_member	 m;
	struct room		*room;
	int			 rc;

	if (chat_server_room(&room) == -1) {
		server_ws_close(conn, 1011, "cannot open the chat");
		return;
	}
	if (room_member_by_name(room, cc->name, &m) == 0 &&
	    strcmp(m.uid, cc->uid) != 0) {
		room_unlock(room);
		chat_error(conn, "name_taken", "someone connected has that "
		    "name", NULL);
		server_ws_close(conn, 1008, "name_taken");
		return;
	}
	/* Each connection is a member of the server room, whose name is
	 * free again when it closes or is lost with its worker. */
	m.mid = 0;
	if ((rc = room_member_add_id(room, cc->name, 0, cc->uid, NULL,
	    &m)) != 0 || fanout_attach(room, conn, m.mid) != 0) {
		if (rc == 0)
			room_member_remove(room, m.mid);
		room_unlock(room);
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		else
			server_ws_close(conn, 1013, "the chat is full");
		return;
	}
	room_unlock(room);
	LIST_INSERT_HEAD(&chat_conns, cc, entry);
	cc->listed = 1;
}

/* To the connection alone, through the server room (after its history). */
static int
chat_publish_member(struct conn *conn, struct json_object *msg)
{
	struct room	*server;
	int		 rc;

	if (room_lock(&conn->room->ref, &server) != 0) {
		json_object_put(msg);
		return -1;
	}
	rc = room_publish_json(server, AUD_MEMBER, conn->mid, msg);
	room_unlock(server);
	return rc;
}

/* With the channel locked, publish msg to the channel's participants. */
static int
chat_publish_channel(struct conn *conn, struct room *channel,
    struct json_object *msg)
{
	uint64_t	 tag = room_key(channel);
	struct room	*server;
	int		 rc;

	if (room_lock(&conn->room->ref, &server) != 0) {
		json_object_put(msg);
		return -1;
	}
	rc = room_publish_json(server, AUD_TAG, tag, msg);
	room_unlock(server);
	return rc;
}

static uint64_t
chat_server_seq(struct conn *conn)
{
	struct room	*server;
	uint64_t	 seq = 0;

	if (room_lock(&conn->room->ref, &server) == 0) {
		seq = room_committed(server);
		room_unlock(server);
	}
	return seq;
}

static int
chat_lock_channel(const char *name, struct room_ref *ref,
    struct room **room)
{
	return chat_find(name, ref) == 0 &&
	    room_lock(ref, room) == 0 ? 0 : -1;
}

/* A user joined or left channel "#name", for the webhooks. */
static void
chat_hook(enum webhook_event type, const char *channel, const char *uid,
    const char *user, const char *reason)
{
	struct webhook_member	 m = { uid, user, 0 };

	webhook_emit(&dialect_chat, type, channel, &m, reason);
}

static void
chat_join(struct conn *conn, struct chat_conn *cc, const char *name,
    struct json_object *msg)
{
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room;
	struct chat_channel	*ch;
	struct chat_history	 h = { conn, 1, 0, 0 };
	struct json_object	*since, *ev;
	uint64_t		 last;
	int			 before = 0, rc;

	if (cc->nch == CHAT_CHANNELS_MAX)
		chat_prune(cc);
	if (chat_lock_channel(name, &ref, &room) == -1) {
		chat_error(conn, "no_such_channel", "no such channel", msg);
		return;
	}
	if (chat_joined(cc, name, ref.rid) != NULL ||
	    cc->nch == CHAT_CHANNELS_MAX) {
		room_unlock(room);
		chat_error(conn, cc->nch == CHAT_CHANNELS_MAX ? "forbidden" :
		    "already_joined", cc->nch == CHAT_CHANNELS_MAX ? "too many "
		    "channels" : "already a participant", msg);
		return;
	}
	/* The user's member: made on its first join, or its creator's, or
	 * that of its other connections. */
	if (room_member_by_uid(room, cc->uid, &m) == 0)
		before = m.connected;
	else if ((rc = room_member_add_id(room, cc->name, 0, cc->uid, NULL,
	    &m)) != 0) {
		room_unlock(room);
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		else
			chat_error(conn, "forbidden", "the channel is full",
			    msg);
		return;
	}
	room_member_here(room, m.mid, 1);
	/* History first, straight from the channel's log; live messages
	 * are those the server room carries after this point. */
	last = room_committed(room);
	if (json_object_object_get_ex(msg, "since", &since) &&
	    json_object_is_type(since, json_type_int) &&
	    json_object_get_int64(since) >= 0)
		h.first = (uint64_t)json_object_get_int64(since) + 1;
	else if (last > (uint64_t)env->conf.chat_history)
		h.first = last - (uint64_t)env->conf.chat_history + 1;
	room_read(room, h.first - 1, chat_send_rec, &h);
	ch = &cc->ch[cc->nch++];
	ch->rid = ref.rid;
	ch->tag = room_key(room);
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->from = chat_server_seq(conn);
	ch->seen = last;
	/* A user in the channel already, through another connection, is
	 * not announced again: only this connection hears its join. */
	ev = chat_event("participant", cc->uid, "join", cc->name, name);
	/* The arena's epoch, which changes only when roomd started afresh:
	 * a client that kept another one knows that the channel, its
	 * history and its seq numbers are not those it knew (an addition
	 * of roomd, which clients of the original ignore). */
	json_object_object_add(ev, "epoch",
	    json_object_new_int64((int64_t)room_epoch(room)));
	if (before == 0)
		chat_publish_channel(conn, room, ev);
	else
		chat_publish_member(conn, ev);
	room_unlock(room);
	if (before == 0)
		chat_hook(WEBHOOK_MEMBER_JOINED, name, cc->uid, cc->name, NULL);
}

static void
chat_leave(struct conn *conn, struct chat_conn *cc, const char *name,
    struct json_object *msg)
{
	struct room_ref		 ref;
	struct chat_channel	*ch = NULL;
	struct room_member	 m;
	struct room		*room;

	if (chat_lock_channel(name, &ref, &room) == -1) {
		chat_joined(cc, name, 0);	/* drops a stale entry */
		if (msg != NULL)
			chat_error(conn, "no_such_channel", "no such channel",
			    msg);
		return;
	}
	if ((ch = chat_joined(cc, name, ref.rid)) == NULL) {
		room_unlock(room);
		if (msg != NULL)
			chat_error(conn, "not_a_participant", "not in that "
			    "channel", msg);
		return;
	}
	*ch = cc->ch[--cc->nch];	/* leaves the set: not told itself */
	/* The user leaves when its last connection in the channel does. */
	if (room_member_by_uid(room, cc->uid, &m) == 0 && m.connected &&
	    chat_presence(room, &m, chat_local_joined(cc->uid, ref.rid))) {
		chat_publish_channel(conn, room, chat_event("participant",
		    cc->uid, "left", cc->name, name));
		chat_hook(WEBHOOK_MEMBER_LEFT, name, cc->uid, cc->name,
		    msg != NULL ? "left" : "disconnected");
	}
	room_unlock(room);
}

static void
chat_create(struct conn *conn, struct chat_conn *cc, const char *name,
    struct json_object *msg)
{
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room, *server;
	int			 rc;

	if (chat_find(name, &ref) == 0)
		rc = ROOM_EEXIST;	/* kept from an earlier roomd */
	else
		rc = room_create(&dialect_chat, name + 1,
		    server_limit_addr(conn), &room);
	if (rc != 0) {
		chat_error(conn, rc == ROOM_EEXIST ? "channel_exists" :
		    "forbidden", rc == ROOM_EEXIST ? "the channel exists" :
		    "no room for another channel", msg);
		return;
	}
	/* Nobody connects to a channel: it lives until destroyed. */
	room_set_expires(room, 0);
	if (room_member_add_id(room, cc->name, CHAT_CREATOR, cc->uid, NULL,
	    &m) != 0) {
		room_delete(room, "could not be set up");
		chat_error(conn, "forbidden", "no room for another channel",
		    msg);
		return;
	}
	room_unlock(room);
	if (room_lock(&conn->room->ref, &server) == 0) {
		room_publish_json(server, AUD_ALL, 0, chat_event("channel",
		    name, "create", NULL, NULL));
		room_unlock(server);
	}
}

static void
chat_destroy(struct conn *conn, struct chat_conn *cc, const char *name,
    struct json_object *msg)
{
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room, *server;

	if (chat_lock_channel(name, &ref, &room) == -1) {
		chat_error(conn, "no_such_channel", "no such channel", msg);
		return;
	}
	if (!chat_admin(cc) && (room_member_by_uid(room, cc->uid, &m) != 0 ||
	    !(m.role & CHAT_CREATOR))) {
		room_unlock(room);
		chat_error(conn, "forbidden", "only the channel's creator or "
		    "an admin may destroy it", msg);
		return;
	}
	room_delete(room, "destroyed");
	if (room_lock(&conn->room->ref, &server) == 0) {
		room_publish_json(server, AUD_ALL, 0, chat_event("channel",
		    name, "destroy", NULL, NULL));
		room_unlock(server);
	}
}

/* A message from a participant (its identifier and name), or from the
 * server API's system sender (emitter "server"). */
static struct json_object *
chat_message_json(const char *emitter, const char *identifier,
    const char *name, const char *target, const char *text, uint64_t seq)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("message"));
	json_object_object_add(o, "emitter", json_object_new_string(emitter));
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "identifier",
	    json_object_new_string(identifier));
	json_object_object_add(o, "message", json_object_new_string(text));
	json_object_object_add(o, "name", json_object_new_string(name));
	if (seq != 0)
		json_object_object_add(o, "seq",
		    json_object_new_int64((int64_t)seq));
	return o;
}

static void
chat_say(struct conn *conn, struct chat_conn *cc, const char *target,
    const char *text, struct json_object *msg)
{
	struct room_ref		 ref;
	struct room_rec_in	 rec;
	struct room_member	 to;
	struct room		*room;
	struct json_object	*o;
	const char		*t;
	size_t			 len;
	uint64_t		 seq;

	/* To every connection of the user (one record, however many), and
	 * a copy to the sender. */
	if (target[0] == '@') {
		if (room_lock(&conn->room->ref, &room) != 0) {
			fanout_unavailable(conn);	/* "@" is never gone */
			return;
		}
		if (room_member_by_name(room, target + 1, &to) != 0) {
			room_unlock(room);
			chat_error(conn, "no_such_user", "nobody of that name "
			    "is connected", msg);
			return;
		}
		o = chat_message_json("participant", cc->uid, cc->name, target,
		    text, 0);
		t = json_text(o, &len);
		room_publish(room, AUD_TAG, chat_user_tag(to.uid), t, len);
		if (strcmp(to.uid, cc->uid) != 0)
			room_publish(room, AUD_MEMBER, conn->mid, t, len);
		room_unlock(room);
		json_object_put(o);
		return;
	}
	if (chat_lock_channel(target, &ref, &room) == -1) {
		chat_error(conn, "no_such_channel", "no such channel", msg);
		return;
	}
	if (chat_joined(cc, target, ref.rid) == NULL) {
		room_unlock(room);
		chat_error(conn, "not_a_participant", "join the channel first",
		    msg);
		return;
	}
	seq = room_committed(room) + 1;
	o = chat_message_json("participant", cc->uid, cc->name, target,
	    text, seq);
	t = json_text(o, &len);
	rec.data = t;
	rec.len = (uint32_t)len;
	rec.type = 0;
	rec.target = 0;
	if (room_append(room, &rec, 1, &seq) != 0) {
		room_unlock(room);
		json_object_put(o);
		chat_error(conn, "forbidden", "the channel's history is full",
		    msg);
		return;
	}
	/* The history has it: a relay lost from here on is made good by
	 * the next one (chat_relay_match). */
	room_crash_point("chat_relay");
	chat_publish_channel(conn, room, o);
	room_unlock(room);
}

/* "#name" of a locked channel room (one kept from an older roomd may
 * have its "#" in its id already). */
static void
chat_channel_name(struct room *room, char *name, size_t len)
{
	snprintf(name, len, "%s%s", room_id(room)[0] == '#' ? "" : "#",
	    room_id(room));
}

/*
 * Publish msg in the server room, found and locked here; the caller may
 * hold a channel's lock (the lock order: channel, then server room).
 * 0, ROOM_ENOENT when nobody is connected to the chat, or as room_publish.
 */
static int
chat_server_publish(enum room_audience aud, uint64_t target,
    struct json_object *msg)
{
	struct room_ref	 ref;
	struct room	*server;
	int		 rc;

	if (room_find(&dialect_chat, CHAT_SERVER_ROOM, &ref) != 0 ||
	    room_lock(&ref, &server) != 0) {
		json_object_put(msg);
		return ROOM_ENOENT;
	}
	rc = room_publish_json(server, aud, target, msg);
	room_unlock(server);
	return rc;
}

/* The server API, in the server room: a private message to @name. */
static int
chat_api_user(struct room *server, const char *target, const char *text,
    struct api_result *res)
{
	const char		*sender = env->conf.api_sender;
	struct room_member	 to;
	int			 rc;

	if (!chat_valid_target(target, '@'))
		return api_fail(res, 400, "bad_target", "in the room @, "
		    "the target is @user, 1 to 64 of A-Z a-z 0-9 _ -");
	if (room_member_by_name(server, target + 1, &to) != 0)
		return api_fail(res, 404, "no_such_user", "nobody of that "
		    "name is connected");
	rc = room_publish_json(server, AUD_TAG, chat_user_tag(to.uid),
	    chat_message_json("server", sender, sender, target, text, 0));
	if (rc != 0)
		return api_fail(res, 503, "arena_full", "the server has "
		    "no room for more data");
	return 200;
}

/* The server API, in a channel: its history, then its participants. */
static int
chat_api_channel(struct room *room, const char *target, const char *text,
    struct api_result *res)
{
	const char		*sender = env->conf.api_sender;
	char			 channel[CHAT_NAME_MAX + 2];
	struct room_rec_in	 rec = { NULL, 0, 0, 0 };
	struct json_object	*o;
	size_t			 len;
	uint64_t		 seq = room_committed(room) + 1;

	chat_channel_name(room, channel, sizeof(channel));
	if (target != NULL && strcmp(target, channel) != 0)
		return api_fail(res, 400, "bad_target", "a channel's "
		    "room takes messages to that channel only; leave target "
		    "out or name the channel");
	o = chat_message_json("server", sender, sender, channel, text, seq);
	rec.data = json_text(o, &len);
	rec.len = (uint32_t)len;
	if (room_append(room, &rec, 1, &seq) != 0) {
		json_object_put(o);
		return api_fail(res, 409, "history_full", "the channel's "
		    "history is full");
	}
	/* Nobody connected: the history has it for whoever joins. */
	chat_server_publish(AUD_TAG, room_key(room), o);
	json_object_object_add(res->reply, "seq",
	    json_object_new_int64((int64_t)seq));
	return 200;
}

/*
 * The server API: {"message": text, "target": "#channel" or "@user"} in
 * the chat's own terms, from the system sender (api_sender, emitter
 * "server").  A channel's room takes messages to that channel; the
 * server room "@" takes private messages to a connected user.
 */
static int
chat_api_publish(struct room *room, struct json_object *body,
    struct api_result *res)
{
	struct json_object	*t;
	const char		*text = json_get_string(body, "message");
	const char		*target = json_get_string(body, "target");

	if (text == NULL || (target == NULL &&
	    json_object_object_get_ex(body, "target", &t)))
		return api_fail(res, 400, "bad_request", "expected "
		    "{\"message\": text, \"target\": \"#channel\" or "
		    "\"@user\"}");
	if (strcmp(room_id(room), CHAT_SERVER_ROOM) == 0)
		return chat_api_user(room, target, text, res);
	return chat_api_channel(room, target, text, res);
}

/* The commands, each on a channel ("#name"). */
static const struct chat_command {
	const char	*action;
	void		(*fn)(struct conn *, struct chat_conn *, const char *,
			    struct json_object *);
} chat_commands[] = {
	{ "create",	chat_create },
	{ "destroy",	chat_destroy },
	{ "join",	chat_join },
	{ "leave",	chat_leave },
};

static const struct chat_command *
chat_command(const char *type, const char *action)
{
	size_t	 i;

	if (strcmp(type, "command") != 0 || action == NULL)
		return NULL;
	for (i = 0; i < sizeof(chat_commands) / sizeof(chat_commands[0]); i++)
		if (strcmp(action, chat_commands[i].action) == 0)
			return &chat_commands[i];
	return NULL;
}

static void
chat_ws_message(struct conn *conn, int binary, const char *data, size_t len)
{
	const struct chat_command	*cmd;
	struct chat_conn		*cc = conn->data;
	struct json_object		*msg = NULL;
	const char			*type, *target, *text;

	if (conn->room == NULL || cc == NULL)
		return;
	if (binary || json_parse(data, len, &msg) == -1) {
		chat_error(conn, "bad_json", "messages are JSON text", NULL);
		return;
	}
	if (msg == NULL || !json_object_is_type(msg, json_type_object) ||
	    (type = json_get_string(msg, "type")) == NULL) {
		chat_error(conn, "bad_request", "expected an object with a "
		    "type", msg);
		json_object_put(msg);
		return;
	}
	target = json_get_string(msg, "target");
	text = json_get_string(msg, "message");
	if ((cmd = chat_command(type, json_get_string(msg, "action"))) !=
	    NULL) {
		if (!chat_valid_target(target, '#'))
			chat_error(conn, "bad_target", "channels are # and 1 "
			    "to 64 of A-Z a-z 0-9 _ -", msg);
		else
			cmd->fn(conn, cc, target, msg);
	} else if (strcmp(type, "message") == 0 && text != NULL) {
		if (!chat_valid_target(target, '#') &&
		    !chat_valid_target(target, '@'))
			chat_error(conn, "bad_target", "a target is #channel "
			    "or @user", msg);
		else
			chat_say(conn, cc, target, text, msg);
	} else
		chat_error(conn, "bad_request", "expected a command (create, "
		    "destroy, join, leave) or a message", msg);
	json_object_put(msg);
}

/*
 * Lost with a killed worker: a connection's member of the server room
 * (its name is free again), or a user in a channel through connections
 * on that worker only, which the channel hears has left.  The channel is
 * locked, then the server room: the lock order.
 */
static void
chat_member_lost(struct room *room, const struct room_member *m)
{
	char		 channel[CHAT_NAME_MAX + 2];

	if (strcmp(room_id(room), CHAT_SERVER_ROOM) == 0) {
		room_member_remove(room, m->mid);
		return;
	}
	if (!(m->role & CHAT_CREATOR))
		room_member_remove(room, m->mid);
	chat_channel_name(room, channel, sizeof(channel));
	chat_server_publish(AUD_TAG, room_key(room), chat_event(
	    "participant", m->uid, "left", m->name, channel));
	chat_hook(WEBHOOK_MEMBER_LEFT, channel, m->uid, m->name, "lost");
}

/* Webhooks: channel "#name" is room "name"; the server room is none. */
static int
chat_room_name(const char *id, char *name, size_t len)
{
	if (strcmp(id, CHAT_SERVER_ROOM) == 0)
		return -1;
	snprintf(name, len, "%s%s", id[0] == '#' ? "" : "#", id);
	return 0;
}

/* Only the server room relays; a channel's log is its history. */
static int
chat_room_relays(const char *id)
{
	return strcmp(id, CHAT_SERVER_ROOM) == 0;
}

/* Leaving the chat leaves every channel; the others are told. */
static void
chat_ws_close(struct conn *conn)
{
	struct chat_conn	*cc = conn->data;
	struct room		*room;

	if (cc != NULL && cc->listed) {
		LIST_REMOVE(cc, entry);
		cc->listed = 0;
	}
	if (conn->room == NULL || cc == NULL)
		return;
	while (cc->nch > 0 && !server_stopping(conn))
		chat_leave(conn, cc, cc->ch[cc->nch - 1].name, NULL);
	if (room_lock(&conn->room->ref, &room) == 0) {
		room_member_remove(room, conn->mid);
		room_unlock(room);
	}
	fanout_detach(conn, !server_stopping(conn), NULL);
}

const struct dialect dialect_chat = {
	.name = "chat",
	.id = 5,
	.default_mount = "/chat",
	.http = chat_http,
	.ws_accept = chat_ws_accept,
	.ws_open = chat_ws_open,
	.ws_message = chat_ws_message,
	.ws_close = chat_ws_close,
	.member_lost = chat_member_lost,
	.tick = chat_tick,
	.relay_match = chat_relay_match,
	.api_publish = chat_api_publish,
	.room_name = chat_room_name,
	.relay = 1,
	.room_relays = chat_room_relays,
};
