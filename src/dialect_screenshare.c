/*
 * dialect_screenshare.c: screen-sharing signaling (seed 004), the wire
 * format of the original FastAPI server (../shared/seeds/NOTES.md).
 *
 * One WebSocket at the mount; a connection creates a room (and is its
 * host) or joins one by id with a username, then relays sharing requests,
 * SDP offers and answers and ICE candidates between users and the host.
 * Every relay is a room_publish to one member, so host and users may sit
 * on different workers.  A member is its connection: it is removed when
 * the connection leaves, and the room goes with its last member.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "roomd.h"

#define SS_ID_CHARS	"abcdefghijklmnopqrstuvwxyz0123456789"
#define SS_ID_LEN	4
#define SS_NAME_MAX	30	/* characters */

static void
ss_reply(struct conn *conn, const char *type, const char *message)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	if (message != NULL)
		json_object_object_add(o, "message",
		    json_object_new_string(message));
	server_ws_send_json(conn, o);
}

/*
 * Printable as Python's str.isprintable() sees it, near enough: no C0 or
 * C1 controls, no separators other than the ASCII space, no format marks.
 */
static int
ss_printable(uint32_t cp)
{
	return cp >= 0x20 && !(cp >= 0x7f && cp <= 0xa0) && cp != 0xad &&
	    !(cp >= 0x2000 && cp <= 0x200f) && !(cp >= 0x2028 && cp <= 0x202f)
	    && !(cp >= 0x2060 && cp <= 0x206f) && cp != 0x3000 &&
	    cp != 0xfeff && cp != 0x1680;
}

/* One UTF-8 character of valid text at p: its code point and length. */
static int
ss_decode(const unsigned char *p, uint32_t *cp)
{
	int	 n = *p < 0x80 ? 1 : *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;

	*cp = n == 1 ? *p : *p & (0x7f >> n);
	for (int i = 1; i < n; i++)
		*cp = (*cp << 6) | (p[i] & 0x3f);
	return n;
}

/* Whitespace as Python's str.strip() sees it. */
static int
ss_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) ||
	    cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 &&
	    cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
	    cp == 0x205f || cp == 0x3000;
}

/* name without the whitespace around it, into out (outlen bytes); -1 if
 * it does not fit. */
static int
ss_strip(const char *name, char *out, size_t outlen)
{
	const unsigned char	*p = (const unsigned char *)name, *end;
	uint32_t		 cp;
	int			 n;

	while (*p != '\0' && ss_space((n = ss_decode(p, &cp), cp)))
		p += n;
	end = p;
	for (const unsigned char *q = p; *q != '\0'; q += n)
		if (!ss_space((n = ss_decode(q, &cp), cp)))
			end = q + n;
	if ((size_t)(end - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 0;
}

/*
 * name stripped of surrounding whitespace as the original server does
 * before it checks and keeps it, into out: 0, or -1 if it is no username
 * (empty, too long, not printable).
 */
static int
ss_valid_username(const char *name, char *out, size_t outlen)
{
	const unsigned char	*p;
	size_t			 chars = 0;
	uint32_t		 cp;
	int			 n;

	/* NULL: a string holding a NUL. */
	if (name == NULL || ss_strip(name, out, outlen) == -1)
		return -1;
	/* The text is valid UTF-8 (json_parse checked): decode it. */
	for (p = (const unsigned char *)out; *p != '\0'; p += n, chars++) {
		n = ss_decode(p, &cp);
		if (!ss_printable(cp))
			break;
	}
	return chars == 0 || *p != '\0' || chars > SS_NAME_MAX ? -1 : 0;
}

/* The username of msg, checked, into out: 0, or -1 after answering. */
static int
ss_check_username(struct conn *conn, struct json_object *msg, char *out,
    size_t outlen)
{
	const char	*name = json_get_string(msg, "username");

	if (name == NULL && !json_object_is_type(json_object_object_get(msg,
	    "username"), json_type_string)) {
		ss_reply(conn, "INVALID_USERNAME", "Username missing");
		return -1;
	}
	if (ss_valid_username(name, out, outlen) == -1) {
		ss_reply(conn, "INVALID_USERNAME", "Invalid username");
		return -1;
	}
	return 0;
}

/* The host of a locked room, if it has one. */
struct ss_find {
	uint64_t	 host;
};

static void
ss_find_host(const struct room_member *m, void *arg)
{
	struct ss_find	*f = arg;

	if (m->role & MEMBER_ROLE_HOST)
		f->host = m->mid;
}

static uint64_t
ss_host(struct room *room)
{
	struct ss_find	 f = { 0 };

	room_members(room, ss_find_host, &f);
	return f.host;
}

/* A user (not the host) of a locked room by name. */
struct ss_find_user {
	const char		*name;
	struct room_member	*m;
	int			 found;
};

static void
ss_find_user(const struct room_member *m, void *arg)
{
	struct ss_find_user	*f = arg;

	if (!f->found && !(m->role & MEMBER_ROLE_HOST) &&
	    strcmp(m->name, f->name) == 0) {
		*f->m = *m;
		f->found = 1;
	}
}

/*
 * The original server never keeps the host's name (its front end names
 * every host "hostname"): only users' names are taken, and only users
 * are found by name.  0 or -1.
 */
static int
ss_user_by_name(struct room *room, const char *name, struct room_member *m)
{
	struct ss_find_user	 f = { name, m, 0 };

	room_members(room, ss_find_user, &f);
	return f.found ? 0 : -1;
}

/* {"type":T} plus "username" and one more key, in that order. */
static struct json_object *
ss_msg(const char *type, const char *username, const char *key,
    struct json_object *value)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	if (username != NULL)
		json_object_object_add(o, "username",
		    json_object_new_string(username));
	if (key != NULL)
		json_object_object_add(o, key, json_object_get(value));
	return o;
}

/*
 * The arena's epoch, in ROOM_CREATED and ROOM_JOINED (an addition of
 * roomd, which the original front end ignores): it changes only when
 * roomd started afresh, so a client that kept another one knows the room
 * of that id is not the one it knew.
 */
static void
ss_epoch(struct json_object *o, uint64_t epoch)
{
	json_object_object_add(o, "epoch", json_object_new_int64((int64_t)
	    epoch));
}

/* A member joined or left, for the webhooks. */
static void
ss_hook(enum webhook_event type, struct room *room,
    const struct room_member *m, const char *reason)
{
	struct webhook_member	 wm = { m->uid, m->name,
				    (m->role & MEMBER_ROLE_HOST) != 0 };

	webhook_emit(&dialect_screenshare, type, room_id(room), &wm, reason);
}

/* The host is told a user left, or the users that the host left. */
static void
ss_announce_leave(struct room *room, const struct room_member *m)
{
	uint64_t	 host = ss_host(room);

	if (m->role & MEMBER_ROLE_HOST)
		room_publish_json(room, AUD_ALL_BUT, m->mid, ss_msg("HOST_LEFT",
		    NULL, NULL, NULL));
	else if (host != 0)
		room_publish_json(room, AUD_MEMBER, host, ss_msg("USER_LEFT",
		    m->name, NULL, NULL));
}

/* Leave the room, as announced; the member goes, and the room with its
 * last connection. */
static void
ss_leave(struct conn *conn, int reply)
{
	struct room_member	 me;
	struct room		*room;

	if (conn->room == NULL)
		return;
	if (room_lock(&conn->room->ref, &room) == 0) {
		if (room_member_by_mid(room, conn->mid, &me) == 0) {
			/* On a stop everyone is being closed anyway. */
			if (!server_stopping()) {
				ss_announce_leave(room, &me);
				ss_hook(WEBHOOK_MEMBER_LEFT, room, &me,
				    "left");
			}
			room_member_remove(room, me.mid);
		}
		room_unlock(room);
	}
	fanout_detach(conn, !server_stopping(), NULL);
	if (reply)
		ss_reply(conn, "LEFT_ROOM", NULL);
}

/* A member lost with its worker left without a word: as if it had left. */
static void
ss_member_lost(struct room *room, const struct room_member *m)
{
	ss_announce_leave(room, m);
	ss_hook(WEBHOOK_MEMBER_LEFT, room, m, "lost");
	room_member_remove(room, m->mid);
}

static void
ss_create(struct conn *conn, struct json_object *msg)
{
	struct room_member	 m;
	struct room		*room;
	char			 name[MEMBER_NAME_MAX + 1];
	char			 id[SS_ID_LEN + 1];
	struct json_object	*o;
	uint64_t		 epoch;

	if (ss_check_username(conn, msg, name, sizeof(name)) == -1)
		return;
	ss_leave(conn, 0);	/* once the username is accepted */
	if (room_create_unique(&dialect_screenshare, SS_ID_CHARS, SS_ID_LEN,
	    server_limit_addr(conn), id, &room) != 0) {
		ss_reply(conn, "ERROR", "Could not create a room");
		return;
	}
	if (room_member_add(room, name, MEMBER_ROLE_HOST, &m) != 0 ||
	    fanout_attach(room, conn, m.mid) != 0) {
		room_delete(room, "could not be set up");
		ss_reply(conn, "ERROR", "Could not create a room");
		return;
	}
	ss_hook(WEBHOOK_MEMBER_JOINED, room, &m, NULL);
	epoch = room_epoch(room);
	room_unlock(room);
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(
	    "ROOM_CREATED"));
	json_object_object_add(o, "roomid", json_object_new_string(id));
	ss_epoch(o, epoch);
	server_ws_send_json(conn, o);
}

/* Room ids are looked up stripped and lower-cased. */
static int
ss_normalize(const char *in, char *out, size_t outlen)
{
	size_t	 n;

	while (isspace((unsigned char)*in))
		in++;
	n = strlen(in);
	while (n > 0 && isspace((unsigned char)in[n - 1]))
		n--;
	if (n == 0 || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return util_valid_id(out, ROOM_ID_MAX) ? 0 : -1;
}

/*
 * Lock the room a JOIN_ROOM names whose user name is free, or answer why
 * not: 0 or -1.
 */
static int
ss_join_room(struct conn *conn, const char *given, const char *name,
    struct room **room)
{
	struct room_ref		 ref;
	struct room_member	 m;
	char			 id[ROOM_ID_MAX + 1];

	if (ss_normalize(given, id, sizeof(id)) == -1 ||
	    room_find_lock(&dialect_screenshare, id, &ref, room) != 0) {
		ss_reply(conn, "INVALID_ROOM_ID", "Room with given ID not "
		    "found");
		return -1;
	}
	if (ss_user_by_name(*room, name, &m) == 0) {
		room_unlock(*room);
		ss_reply(conn, "INVALID_USERNAME", "Username already exists in "
		    "this room");
		return -1;
	}
	return 0;
}

/*
 * As the original: the room id is checked first, then the username, and
 * a connection in a room leaves it only once the join is sure to succeed
 * (it is checked again after leaving, which needs the old room's lock).
 */
static void
ss_join_as(struct conn *conn, struct json_object *msg)
{
	struct room_member	 m;
	struct room		*room;
	struct json_object	*o;
	uint64_t		 epoch;
	const char		*given;
	char			 name[MEMBER_NAME_MAX + 1];
	uint64_t		 host;
	int			 rc;

	if ((given = json_get_string(msg, "roomid")) == NULL ||
	    given[0] == '\0') {
		ss_reply(conn, "INVALID_ROOM_ID", "Room ID is required");
		return;
	}
	if (ss_check_username(conn, msg, name, sizeof(name)) == -1 ||
	    ss_join_room(conn, given, name, &room) == -1)
		return;
	if (conn->room != NULL) {
		room_unlock(room);
		ss_leave(conn, 0);
		if (ss_join_room(conn, given, name, &room) == -1)
			return;
	}
	if ((rc = room_member_add(room, name, 0, &m)) != 0 ||
	    fanout_attach(room, conn, m.mid) != 0) {
		if (rc == 0)
			room_member_remove(room, m.mid);
		room_unlock(room);
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		else
			ss_reply(conn, "ERROR", "The room is full");
		return;
	}
	/* ROOM_JOINED goes out now; USER_JOINED at the end of this loop
	 * iteration, so the joiner always hears first. */
	if ((host = ss_host(room)) != 0)
		room_publish_json(room, AUD_MEMBER, host,
		    ss_msg("USER_JOINED", name, NULL, NULL));
	ss_hook(WEBHOOK_MEMBER_JOINED, room, &m, NULL);
	epoch = room_epoch(room);
	room_unlock(room);
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(
	    "ROOM_JOINED"));
	json_object_object_add(o, "roomid", json_object_new_string(given));
	ss_epoch(o, epoch);
	server_ws_send_json(conn, o);
}

/* auth_hook's answer to a JOIN_ROOM: an ERROR with the reason (the
 * connection stays), or the join, maybe under another username. */
static void
ss_join_checked(struct conn *conn, struct authhook_answer *a, void *msg)
{
	char	 name[MEMBER_NAME_MAX + 1];

	authhook_validate(a, a->name == NULL ||
	    ss_valid_username(a->name, name, sizeof(name)) == 0);
	if (!a->allow) {
		ss_reply(conn, "ERROR", a->reason);
		return;
	}
	if (a->name != NULL)
		json_object_object_add(msg, "username",
		    json_object_new_string(name));
	ss_join_as(conn, msg);
}

static void
ss_msg_free(void *msg)
{
	json_object_put(msg);
}

/* JOIN_ROOM: asked of auth_hook first, if the dialect has one, once the
 * room id and username are there to ask about. */
static void
ss_join(struct conn *conn, struct json_object *msg)
{
	struct authhook_query	 q = { &dialect_screenshare, "join", NULL,
				    NULL, NULL, 0 };
	char			 name[MEMBER_NAME_MAX + 1];
	char			 id[ROOM_ID_MAX + 1];

	q.room = json_get_string(msg, "roomid");
	if (!authhook_enabled(&dialect_screenshare) || q.room == NULL ||
	    ss_normalize(q.room, id, sizeof(id)) == -1 ||
	    ss_valid_username(json_get_string(msg, "username"), name,
	    sizeof(name)) == -1) {
		ss_join_as(conn, msg);
		return;
	}
	q.room = id;
	q.name = name;
	if (authhook_ask(conn, &q, ss_join_checked, json_object_get(msg),
	    ss_msg_free) == -1) {
		json_object_put(msg);
		ss_reply(conn, "ERROR", "out of memory");
	}
}

/*
 * A signaling message inside a room, by its table entry: a user's goes
 * to the host (with the user's name) if to_host; the host's goes to the
 * user it names, to every user, or nowhere, as from_host says.  The
 * payload key (sdp, candidate) is carried over.
 */
enum ss_from_host { SS_DROP, SS_TO_USER, SS_TO_ALL_OR_USER };
/* A message type: whether it needs a room, what handles it, and for the
 * signaling ones how they are relayed.  The table is ss_types. */
struct ss_type {
	const char		*type;
	int			 in_room;
	void			(*fn)(struct conn *, const struct ss_type *,
				    struct json_object *);
	const char		*key;		/* the payload's key */
	int			 to_host;	/* a user's goes to the host */
	enum ss_from_host	 from_host;
};

static void
ss_relay(struct conn *conn, const struct ss_type *t, struct json_object *msg)
{
	struct room_member	 me, to;
	struct room		*room;
	struct json_object	*value = NULL, *out = NULL;
	const char		*target;
	uint64_t		 host, dest = 0;
	int			 not_found = 0, rc;

	if (t->key != NULL)
		json_object_object_get_ex(msg, t->key, &value);
	if ((rc = room_lock(&conn->room->ref, &room)) != 0) {
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		return;
	}
	if (room_member_by_mid(room, conn->mid, &me) != 0) {
		room_unlock(room);
		return;
	}
	host = ss_host(room);
	target = json_get_string(msg, "username");
	if (!(me.role & MEMBER_ROLE_HOST)) {
		if (host != 0 && t->to_host) {
			dest = host;
			out = ss_msg(t->type, me.name, t->key, value);
		}
	} else if (t->from_host == SS_TO_ALL_OR_USER &&
	    !json_object_object_get_ex(msg, "username", NULL)) {
		room_publish_json(room, AUD_ALL_BUT, me.mid,
		    ss_msg(t->type, NULL, NULL, NULL));
	} else if (t->from_host != SS_DROP) {
		if (target == NULL || ss_user_by_name(room, target, &to) != 0)
			not_found = 1;
		else {
			dest = to.mid;
			out = ss_msg(t->type, NULL, t->key, value);
		}
	}
	if (out != NULL)
		room_publish_json(room, AUD_MEMBER, dest, out);
	room_unlock(room);
	if (not_found)
		ss_reply(conn, "ERROR", "User not found");
}

static int
ss_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	return sub[0] == '\0' || strcmp(sub, "/") == 0 ? 0 : 404;
}

static void
ss_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
}

static void
ss_create_msg(struct conn *conn, const struct ss_type *t,
    struct json_object *msg)
{
	ss_create(conn, msg);
}

static void
ss_join_msg(struct conn *conn, const struct ss_type *t,
    struct json_object *msg)
{
	ss_join(conn, msg);
}

static void
ss_leave_msg(struct conn *conn, const struct ss_type *t,
    struct json_object *msg)
{
	ss_leave(conn, 1);
}

/* Other types inside a room are ignored, as the original server does. */
static const struct ss_type ss_types[] = {
	{ "CREATE_ROOM",	0, ss_create_msg, NULL, 0, SS_DROP },
	{ "JOIN_ROOM",		0, ss_join_msg, NULL, 0, SS_DROP },
	{ "LEAVE_ROOM",		1, ss_leave_msg, NULL, 0, SS_DROP },
	{ "REQUEST_SHARING",	1, ss_relay, NULL, 1, SS_DROP },
	{ "STOP_SHARING",	1, ss_relay, NULL, 1, SS_TO_ALL_OR_USER },
	{ "ALLOW_SHARING",	1, ss_relay, NULL, 0, SS_TO_USER },
	{ "RCP_OFFER",		1, ss_relay, "sdp", 1, SS_DROP },
	{ "RCP_ANSWER",		1, ss_relay, "sdp", 0, SS_TO_USER },
	{ "ICE_CANDIDATE",	1, ss_relay, "candidate", 1, SS_TO_USER },
};

static void
ss_ws_message(struct conn *conn, int binary, const char *data, size_t len)
{
	const struct ss_type	*t = NULL;
	struct json_object	*msg;
	const char		*type;
	size_t			 i;

	if (binary) {
		ss_reply(conn, "ERROR", "Invalid message: binary frames are "
		    "not supported");
		return;
	}
	if (json_parse(data, len, &msg) == -1 || msg == NULL ||
	    !json_object_is_type(msg, json_type_object)) {
		json_object_put(msg);
		ss_reply(conn, "ERROR", "Invalid message: expected a JSON "
		    "object");
		return;
	}
	type = json_get_string(msg, "type");
	for (i = 0; type != NULL && i < sizeof(ss_types) / sizeof(ss_types[0]);
	    i++)
		if (strcmp(type, ss_types[i].type) == 0)
			t = &ss_types[i];
	if ((t == NULL || t->in_room) && conn->room == NULL)
		ss_reply(conn, "ERROR", "You must join a room first");
	else if (t != NULL)
		t->fn(conn, t, msg);
	json_object_put(msg);
}

static void
ss_ws_close(struct conn *conn)
{
	ss_leave(conn, 0);
}

const struct dialect dialect_screenshare = {
	.name = "screenshare",
	.id = 4,
	.default_mount = "/ws",
	.http = NULL,
	.ws_accept = ss_ws_accept,
	.ws_open = ss_ws_open,
	.ws_message = ss_ws_message,
	.ws_close = ss_ws_close,
	.member_lost = ss_member_lost,
	.relay = 1,
};
