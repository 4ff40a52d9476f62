/*
 * dialect_classroom.c: rooms with an admin and per-participant authorities
 * (seed 003), on the wire of the original Spring Boot server
 * (../shared/seeds/NOTES.md).
 *
 * Identity comes from the handshake: a JWT (HS512 or HS256) in the
 * Authorization header, or, where the configuration allows open rooms,
 * ?name=&room= with the first participant of a room as its admin.  The
 * admin flag and the authorities are fields of the member record in the
 * arena, so a grant made on one worker holds on every worker at once.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "roomd.h"

/*
 * Authorities: the message types a participant may send besides admins.
 * The first five are checked; Control grants any other message type name
 * too, as the original server does (its authorities are its message
 * types), and RolesApplied lists it.  The bits are kept in the arena:
 * new names go at the end.
 */
static const char *const cls_authorities[] = {
	"Broadcast", "Direct", "Control", "Kick", "Close",
	"Petition", "Disconnect", "ParticipantEnter", "ParticipantExit",
	"RolesApplied", "ServerResponse"
};
#define CLS_BROADCAST	0x01
#define CLS_DIRECT	0x02
#define CLS_CONTROL	0x04
#define CLS_KICK	0x08
#define CLS_CLOSE	0x10
#define CLS_NAUTH	(sizeof(cls_authorities) / sizeof(cls_authorities[0]))

/* Who a connection is, from its handshake. */
struct cls_conn {
	char	 name[MEMBER_NAME_MAX + 1];
	char	 room[ROOM_ID_MAX + 1];
	int	 admin;
	int	 granted;	/* auth_hook gave authorities */
	uint64_t authorities;
};

static int
cls_open_rooms(void)
{
	const struct roomd_config *c = &env->conf;

	return c->classroom_open_rooms == -1 ? c->classroom_jwt_secret[0] ==
	    '\0' : c->classroom_open_rooms;
}

/* A name or room: 1..64 bytes, no control characters. */
static int
cls_valid(const char *s)
{
	size_t	 i, n = s ? strlen(s) : 0;

	if (n < 1 || n > ROOM_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
cls_from_jwt(struct cls_conn *cc, const char *token)
{
	const struct roomd_config	*c = &env->conf;
	struct json_object		*claims, *admin;
	const char			*sub, *name, *room;
	char				 err[128];
	int				 ok;

	if (c->classroom_jwt_secret[0] == '\0')
		return -1;
	if ((claims = jwt_verify_hs(token, c->classroom_jwt_secret, err,
	    sizeof(err))) == NULL) {
		log_debug("classroom: %s", err);
		return -1;
	}
	sub = json_get_string(claims, "sub");
	name = json_get_string(claims, "name");
	room = json_get_string(claims, "room");
	ok = cls_valid(name) && cls_valid(room) &&
	    (c->classroom_jwt_subject[0] == '\0' || (sub != NULL &&
	    strcmp(sub, c->classroom_jwt_subject) == 0));
	if (ok) {
		snprintf(cc->name, sizeof(cc->name), "%s", name);
		snprintf(cc->room, sizeof(cc->room), "%s", room);
		/* Only a JSON true makes an admin, not "yes" or 1. */
		cc->admin = json_object_object_get_ex(claims, "admin",
		    &admin) && json_object_is_type(admin, json_type_boolean) &&
		    json_object_get_boolean(admin);
	}
	json_object_put(claims);
	return ok ? 0 : -1;
}

/*
 * auth_hook's "admin" and "authorities" into cc: 0, or -1 if they are
 * not a boolean and an array of authority names.
 */
static int
cls_granted(struct cls_conn *cc, struct json_object *answer)
{
	struct json_object	*v, *e;
	const char		*name;
	uint64_t		 bits = 0;
	size_t			 i, k;
	int			 admin = cc->admin;

	if (json_object_object_get_ex(answer, "admin", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_boolean))
			return -1;
		admin = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(answer, "authorities", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_array))
			return -1;
		for (i = 0; i < json_object_array_length(v); i++) {
			e = json_object_array_get_idx(v, i);
			if (!json_object_is_type(e, json_type_string))
				return -1;
			name = json_object_get_string(e);
			for (k = 0; k < CLS_NAUTH; k++)
				if (strcmp(name, cls_authorities[k]) == 0)
					break;
			if (k == CLS_NAUTH)
				return -1;
			bits |= 1ULL << k;
		}
		cc->granted = 1;
		cc->authorities = bits;
	}
	cc->admin = admin;
	return 0;
}

/* auth_hook's answer to a handshake: refused with 403 (or 503 if the
 * application could not be asked), or the participant enters, maybe
 * renamed, made admin or given authorities. */
static void
cls_checked(struct conn *conn, struct authhook_answer *a, void *arg)
{
	struct cls_conn	*cc = conn->data;

	(void)arg;
	authhook_validate(a, (a->name == NULL || cls_valid(a->name)) &&
	    (a->answer == NULL || cls_granted(cc, a->answer) == 0));
	if (a->allow && a->name != NULL)
		snprintf(cc->name, sizeof(cc->name), "%s", a->name);
	authhook_handshake(conn, a);
}

/* The handshake: who is this?  401 if nobody we accept; then auth_hook,
 * if the classroom has one. */
static int
cls_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	struct authhook_query	 q = { &dialect_classroom, "enter", NULL,
				    NULL, NULL, 0 };
	struct cls_conn		*cc;
	const char		*auth = req->authorization;

	if (sub[0] != '\0' && strcmp(sub, "/") != 0)
		return 404;
	if ((cc = calloc(1, sizeof(*cc))) == NULL)
		return 500;
	if (auth != NULL) {
		if (strncasecmp(auth, "Bearer ", 7) == 0)
			auth += 7;
		while (*auth == ' ')
			auth++;
		if (cls_from_jwt(cc, auth) == -1) {
			free(cc);
			return 401;
		}
		cc->admin = cc->admin ? 1 : 0;
	} else if (!cls_open_rooms() ||
	    util_query_get(req->query, "name", cc->name, sizeof(cc->name)) != 1
	    || util_query_get(req->query, "room", cc->room, sizeof(cc->room))
	    != 1 || !cls_valid(cc->name) || !cls_valid(cc->room)) {
		free(cc);
		return 401;
	} else
		cc->admin = -1;		/* the first one in is the admin */
	free(conn->data);
	conn->data = cc;
	q.room = cc->room;
	q.name = cc->name;
	q.host = cc->admin == 1;
	switch (authhook_ask(conn, &q, cls_checked, NULL, NULL)) {
	case 0:
		return 0;
	case 1:
		return HTTP_HELD;
	default:
		return 500;
	}
}

/* A participant entered or left, for the webhooks. */
static void
cls_hook(enum webhook_event type, struct room *room,
    const struct room_member *m, const char *reason)
{
	struct webhook_member	 wm = { m->uid, m->name,
				    (m->role & MEMBER_ROLE_HOST) != 0 };

	webhook_emit(&dialect_classroom, type, room_id(room), &wm, reason);
}

/* {"id":ROOM,"participants":[{"name","room","admin","authorities","id"}]},
 * participants in the order they entered (member ids only grow). */
struct cls_json {
	struct json_object	*list;
	const char		*room;
	struct room_member	*m;
	size_t			 n, cap;
};

static void
cls_member_collect(const struct room_member *m, void *arg)
{
	struct cls_json		*cj = arg;
	struct room_member	*p;

	if (cj->n == cj->cap) {
		cj->cap = cj->cap ? 2 * cj->cap : 16;
		if ((p = reallocarray(cj->m, cj->cap, sizeof(*p))) == NULL) {
			cj->cap = cj->n;
			return;
		}
		cj->m = p;
	}
	cj->m[cj->n++] = *m;
}

static int
cls_member_cmp(const void *a, const void *b)
{
	const struct room_member *x = a, *y = b;

	return x->mid < y->mid ? -1 : x->mid > y->mid;
}

static void
cls_member_json(const struct room_member *m, struct cls_json *cj)
{
	struct json_object	*p = json_object_new_object(), *auth;
	size_t			 i;

	auth = json_object_new_array();
	for (i = 0; i < CLS_NAUTH; i++)
		if (m->authorities & (1U << i))
			json_object_array_add(auth,
			    json_object_new_string(cls_authorities[i]));
	json_object_object_add(p, "name", json_object_new_string(m->name));
	json_object_object_add(p, "room", json_object_new_string(cj->room));
	json_object_object_add(p, "admin", json_object_new_boolean(
	    (m->role & MEMBER_ROLE_HOST) != 0));
	json_object_object_add(p, "authorities", auth);
	json_object_object_add(p, "id", json_object_new_string(m->uid));
	json_object_array_add(cj->list, p);
}

/* {"type":T,"data":ROOM} for a locked room. */
static struct json_object *
cls_room_msg(struct room *room, const char *type)
{
	struct cls_json		 cj = { json_object_new_array(), room_id(room),
				    NULL, 0, 0 };
	struct json_object	*o = json_object_new_object(), *data;
	size_t			 i;

	room_members(room, cls_member_collect, &cj);
	qsort(cj.m, cj.n, sizeof(*cj.m), cls_member_cmp);
	for (i = 0; i < cj.n; i++)
		cls_member_json(&cj.m[i], &cj);
	free(cj.m);
	data = json_object_new_object();
	json_object_object_add(data, "id", json_object_new_string(cj.room));
	json_object_object_add(data, "participants", cj.list);
	/* The arena's epoch, an addition of roomd: it changes only when
	 * roomd started afresh, so a client that kept another one knows the
	 * room is not the one it knew. */
	json_object_object_add(data, "epoch",
	    json_object_new_int64((int64_t)room_epoch(room)));
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "data", data);
	return o;
}

static struct json_object *
cls_response(const char *value, const char *details)
{
	struct json_object	*o = json_object_new_object();
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, "value", json_object_new_string(value));
	json_object_object_add(d, "details", json_object_new_string(details));
	json_object_object_add(o, "type", json_object_new_string(
	    "ServerResponse"));
	json_object_object_add(o, "data", d);
	return o;
}

static void
cls_reply(struct conn *conn, const char *value, const char *details)
{
	server_ws_send_json(conn, cls_response(value, details));
}

static void
cls_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
	struct cls_conn		*cc = conn->data;
	struct room_ref		 ref;
	struct room_member	 m = { .mid = 0 };
	struct room		*room = NULL;
	int			 rc, tries;

	/* Find the room, or make it: two may race to make it, so retry. */
	for (tries = 0; tries < 3 && room == NULL; tries++) {
		if (room_find_lock(&dialect_classroom, cc->room, &ref,
		    &room) == 0)
			break;
		room = NULL;
		if ((rc = room_create(&dialect_classroom, cc->room,
		    server_limit_addr(conn), &room)) !=
		    0 && rc != ROOM_EEXIST)
			break;
	}
	if (room == NULL) {
		server_ws_close(conn, 1011, "cannot open the room");
		return;
	}
	if (room_closing(room)) {
		room_unlock(room);
		server_ws_close(conn, 1013, "the room is closing; try again");
		return;
	}
	if (cc->admin == -1)
		cc->admin = room_member_count(room) == 0;
	if ((rc = room_member_add(room, cc->name, cc->admin ?
	    MEMBER_ROLE_HOST : 0, &m)) != 0 || fanout_attach(room, conn,
	    m.mid) != 0) {
		if (rc == 0)
			room_member_remove(room, m.mid);
		if (room_member_count(room) == 0)
			room_delete(room, "could not be set up");
		else
			room_unlock(room);
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		else
			server_ws_close(conn, 1013, "the room is full");
		return;
	}
	if (cc->granted)
		room_member_set(room, m.mid, m.role, cc->authorities);
	/* The newcomer is attached first, so it hears its own entrance. */
	room_publish_json(room, AUD_ALL, 0, cls_room_msg(room,
	    "ParticipantEnter"));
	cls_hook(WEBHOOK_MEMBER_JOINED, room, &m, NULL);
	room_unlock(room);
}

/* Participant ids of a message, as member ids of the locked room. */
static size_t
cls_targets(struct room *room, struct json_object *ids, uint64_t *out,
    size_t max)
{
	struct room_member	 m;
	size_t			 i, j, n = 0;
	const char		*id;

	for (i = 0; i < json_object_array_length(ids) && n < max; i++) {
		id = json_object_get_string(json_object_array_get_idx(ids, i));
		if (id == NULL || room_member_by_uid(room, id, &m) != 0)
			continue;	/* unknown ids are ignored */
		for (j = 0; j < n && out[j] != m.mid; j++)
			;
		if (j == n)
			out[n++] = m.mid;
	}
	return n;
}

/* {"type","data","participants","from"}, null fields left out. */
static struct json_object *
cls_relay_msg(const char *type, struct json_object *msg, const char *from,
    int with_participants)
{
	struct json_object	*o = json_object_new_object(), *v;

	json_object_object_add(o, "type", json_object_new_string(type));
	if (json_object_object_get_ex(msg, "data", &v) && v != NULL)
		json_object_object_add(o, "data", json_object_get(v));
	if (with_participants &&
	    json_object_object_get_ex(msg, "participants", &v) && v != NULL)
		json_object_object_add(o, "participants", json_object_get(v));
	json_object_object_add(o, "from", json_object_new_string(from));
	return o;
}

struct cls_petition {
	uint64_t	*to;
	size_t		 n, max;
};

static void
cls_find_controllers(const struct room_member *m, void *arg)
{
	struct cls_petition	*p = arg;

	if (((m->role & MEMBER_ROLE_HOST) || (m->authorities & CLS_CONTROL))
	    && p->n < p->max)
		p->to[p->n++] = m->mid;
}

/* Control's data: {"allow": bool, "authorities": [names]}. */
static int
cls_control_bits(struct json_object *msg, int *allow, uint64_t *bits)
{
	struct json_object	*data, *a, *list, *x;
	size_t			 i, k;

	if (!json_object_object_get_ex(msg, "data", &data) ||
	    !json_object_is_type(data, json_type_object) ||
	    !json_object_object_get_ex(data, "allow", &a) ||
	    !json_object_is_type(a, json_type_boolean) ||
	    !json_object_object_get_ex(data, "authorities", &list) ||
	    !json_object_is_type(list, json_type_array))
		return -1;	/* invalid control message */
	*allow = json_object_get_boolean(a);
	*bits = 0;
	for (i = 0; i < json_object_array_length(list); i++) {
		x = json_object_array_get_idx(list, i);
		for (k = 0; k < CLS_NAUTH; k++)
			if (json_object_is_type(x, json_type_string) &&
			    strcmp(json_object_get_string(x),
			    cls_authorities[k]) == 0)
				break;
		if (k == CLS_NAUTH)
			return -2;	/* an unknown authority */
		*bits |= 1U << k;
	}
	return 0;
}

/* A client message being handled, in its locked room. */
struct cls_msg {
	struct room		*room;
	struct room_member	*me;	/* the sender */
	const char		*type;
	struct json_object	*msg;
	uint64_t		 to[256];	/* its participants, as members */
	size_t			 n;
};

static const char *
cls_broadcast(struct cls_msg *m)
{
	room_publish_json(m->room, AUD_ALL_BUT, m->me->mid,
	    cls_relay_msg(m->type, m->msg, m->me->uid, 1));
	return "sent";
}

static const char *
cls_petition(struct cls_msg *m)
{
	struct cls_petition	 pet = { m->to, 0, 256 };
	size_t			 i;

	room_members(m->room, cls_find_controllers, &pet);
	if (pet.n == 0)
		return "admins not found";
	for (i = 0; i < pet.n; i++)
		room_publish_json(m->room, AUD_MEMBER, m->to[i],
		    cls_relay_msg(m->type, m->msg, m->me->uid, 0));
	return "sent";
}

/* Everyone, the sender last; the room goes with the last connection, and
 * nobody is told of exits meanwhile. */
static const char *
cls_close(struct cls_msg *m)
{
	room_set_closing(m->room);
	room_publish_json(m->room, AUD_CLOSE_ALL_BUT, m->me->mid,
	    cls_response("ok", "disconnected"));
	room_publish_json(m->room, AUD_CLOSE_MEMBER, m->me->mid,
	    cls_response("ok", "disconnected"));
	return NULL;
}

static const char *
cls_direct(struct cls_msg *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++)
		room_publish_json(m->room, AUD_MEMBER, m->to[i],
		    cls_relay_msg(m->type, m->msg, m->me->uid, 1));
	return "sent";
}

static const char *
cls_kick(struct cls_msg *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++)
		room_publish_json(m->room, AUD_CLOSE_MEMBER, m->to[i],
		    cls_response("ok", "disconnected"));
	return "sent";
}

static const char *
cls_control(struct cls_msg *m)
{
	struct room_member	 x;
	uint64_t		 bits;
	size_t			 i;
	int			 allow, rc;

	if ((rc = cls_control_bits(m->msg, &allow, &bits)) != 0)
		return rc == -1 ? "invalid control message" : "parsing error";
	for (i = 0; i < m->n; i++)
		if (room_member_by_mid(m->room, m->to[i], &x) == 0)
			room_member_set(m->room, x.mid, x.role, allow ?
			    x.authorities | bits : x.authorities & ~bits);
	room_publish_json(m->room, AUD_ALL, 0, cls_room_msg(m->room,
	    "RolesApplied"));
	return NULL;
}

/*
 * What a client message needs: an authority (the host has all), its
 * participants; and what handles it.  Disconnect is handled before the
 * room is locked (cls_ws_message).
 */
static const struct cls_handler {
	const char	*type;
	unsigned	 needs;		/* CLS_* authority bit, or 0 */
	int		 ids;		/* needs "participants" */
	const char	*(*fn)(struct cls_msg *);
} cls_handlers[] = {
	{ "Broadcast",	CLS_BROADCAST,	0, cls_broadcast },
	{ "Direct",	CLS_DIRECT,	1, cls_direct },
	{ "Control",	CLS_CONTROL,	1, cls_control },
	{ "Petition",	0,		0, cls_petition },
	{ "Kick",	CLS_KICK,	1, cls_kick },
	{ "Close",	CLS_CLOSE,	0, cls_close },
};

/*
 * One client message in a locked room, from member me.  Returns the reply
 * for the sender ("sent" or a failure), or NULL for none.
 */
static const char *
cls_handle(struct room *room, struct room_member *me, const char *type,
    struct json_object *msg, struct json_object *ids)
{
	const struct cls_handler	*h = NULL;
	struct cls_msg			 m = { room, me, type, msg, { 0 }, 0 };
	size_t				 i;

	for (i = 0; i < sizeof(cls_handlers) / sizeof(cls_handlers[0]); i++)
		if (strcmp(type, cls_handlers[i].type) == 0)
			h = &cls_handlers[i];
	if (h == NULL)
		return "parsing error";
	if (h->needs != 0 && !(me->role & MEMBER_ROLE_HOST) &&
	    !(me->authorities & h->needs))
		return "forbidden";
	/* An empty list is as missing, for the original server too. */
	if (h->ids && (ids == NULL || json_object_array_length(ids) == 0))
		return "participants are missing";
	if (h->ids)
		m.n = cls_targets(room, ids, m.to, sizeof(m.to) /
		    sizeof(m.to[0]));
	return h->fn(&m);
}

static void
cls_ws_message(struct conn *conn, int binary, const char *data, size_t len)
{
	static const char *const client_types[] = { "Broadcast", "Direct",
	    "Control", "Petition", "Disconnect", "Kick", "Close" };
	static const char *const server_types[] = { "ParticipantEnter",
	    "ParticipantExit", "RolesApplied", "ServerResponse" };
	struct json_object	*msg = NULL, *ids = NULL, *t;
	struct room_member	 me;
	struct room		*room;
	const char		*type, *reply = NULL;
	size_t			 i;
	int			 rc;

	if (conn->room == NULL)
		return;
	if (binary || json_parse(data, len, &msg) == -1 || msg == NULL ||
	    !json_object_is_type(msg, json_type_object) ||
	    (json_object_object_get_ex(msg, "participants", &ids) &&
	    ids != NULL && !json_object_is_type(ids, json_type_array))) {
		json_object_put(msg);
		cls_reply(conn, "fail", "parsing error");
		return;
	}
	if (!json_object_object_get_ex(msg, "type", &t) || t == NULL) {
		json_object_put(msg);
		cls_reply(conn, "fail", "message type not supported");
		return;
	}
	type = json_object_get_string(t);
	for (i = 0; i < sizeof(server_types) / sizeof(server_types[0]); i++)
		if (strcmp(type, server_types[i]) == 0)
			reply = "message type not supported";
	for (i = 0; i < sizeof(client_types) / sizeof(client_types[0]); i++)
		if (json_object_is_type(t, json_type_string) &&
		    strcmp(type, client_types[i]) == 0)
			break;
	if (reply == NULL && i == sizeof(client_types) /
	    sizeof(client_types[0]))
		reply = "parsing error";
	if (reply != NULL) {
		json_object_put(msg);
		cls_reply(conn, "fail", reply);
		return;
	}
	if (strcmp(type, "Disconnect") == 0) {
		json_object_put(msg);
		server_ws_close(conn, 1000, "disconnect");
		return;
	}
	if ((rc = room_lock(&conn->room->ref, &room)) != 0) {
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		json_object_put(msg);
		return;
	}
	/* The reply goes through the room's log too, so that it follows
	 * whatever the sender receives of its own message. */
	if (room_member_by_mid(room, conn->mid, &me) == 0 &&
	    (reply = cls_handle(room, &me, type, msg, ids)) != NULL)
		room_publish_json(room, AUD_MEMBER, me.mid, cls_response(
		    strcmp(reply, "sent") == 0 ? "ok" : "fail", reply));
	room_unlock(room);
	json_object_put(msg);
}

/*
 * Every id of a Direct's participants, as members of the locked room,
 * into to (max): their number, 0 if the list is missing or empty, or -1
 * if one is no participant's id.
 */
static int
cls_api_targets(struct room *room, struct json_object *ids, uint64_t *to,
    size_t max)
{
	struct room_member	 m;
	struct json_object	*id;
	size_t			 i, j, n, k = 0;

	if (!json_object_is_type(ids, json_type_array) ||
	    (n = json_object_array_length(ids)) == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		id = json_object_array_get_idx(ids, i);
		if (!json_object_is_type(id, json_type_string) ||
		    room_member_by_uid(room, json_object_get_string(id), &m)
		    != 0)
			return -1;
		for (j = 0; j < k && to[j] != m.mid; j++)
			;
		if (j == k)	/* each once, as a participant's Direct */
			to[k++] = m.mid;
	}
	return (int)k;
}

/*
 * The server API: a Broadcast (to every participant) or a Direct (to the
 * participants listed), shaped as a participant's but "from" the room's
 * system (api_sender).  Bad input sends nothing: a Direct to an id that
 * is no participant's is refused whole.
 */
static int
cls_api_publish(struct room *room, struct json_object *body,
    struct api_result *res)
{
	const char		*type = json_get_string(body, "type");
	const char		*from = env->conf.api_sender;
	struct json_object	*ids = NULL;
	uint64_t		 to[256];
	int			 n, i, rc = 0;

	if (type == NULL || (strcmp(type, "Broadcast") != 0 &&
	    strcmp(type, "Direct") != 0))
		return api_fail(res, 400, "bad_type", "type is Broadcast "
		    "or Direct");
	if (room_closing(room))
		return api_fail(res, 409, "room_closing", "the room is "
		    "closing");
	if (strcmp(type, "Broadcast") == 0)
		rc = room_publish_json(room, AUD_ALL, 0, cls_relay_msg(type,
		    body, from, 0));
	else {
		json_object_object_get_ex(body, "participants", &ids);
		if ((n = cls_api_targets(room, ids, to, 256)) == 0)
			return api_fail(res, 400, "participants_missing",
			    "a Direct lists 1 to 256 participant ids");
		if (n == -1)
			return api_fail(res, 404, "no_such_member", "an id "
			    "of the list is no participant's; nothing was sent");
		for (i = 0; i < n && rc == 0; i++)
			rc = room_publish_json(room, AUD_MEMBER, to[i],
			    cls_relay_msg(type, body, from, 1));
	}
	if (rc != 0)
		return api_fail(res, 503, "arena_full", "the server has no "
		    "room for more data");
	return 200;
}

/*
 * A participant lost with its worker never said goodbye: remove it and
 * tell the others, as if it had left.
 */
static void
cls_member_lost(struct room *room, const struct room_member *m)
{
	cls_hook(WEBHOOK_MEMBER_LEFT, room, m, "lost");
	room_member_remove(room, m->mid);
	if (!room_closing(room) && room_member_count(room) > 0)
		room_publish_json(room, AUD_ALL, 0, cls_room_msg(room,
		    "ParticipantExit"));
}

/* A participant leaves: the others see the room without it. */
static void
cls_ws_close(struct conn *conn)
{
	struct room_member	 m;
	struct room		*room;

	if (conn->room == NULL)
		return;
	if (room_lock(&conn->room->ref, &room) == 0) {
		if (!server_stopping() &&
		    room_member_by_mid(room, conn->mid, &m) == 0)
			cls_hook(WEBHOOK_MEMBER_LEFT, room, &m, "left");
		room_member_remove(room, conn->mid);
		if (!room_closing(room) && !server_stopping() &&
		    room_member_count(room) > 0)
			room_publish_json(room, AUD_ALL_BUT, conn->mid,
			    cls_room_msg(room, "ParticipantExit"));
		room_unlock(room);
	}
	fanout_detach(conn, !server_stopping(), NULL);
}

const struct dialect dialect_classroom = {
	.name = "classroom",
	.id = 3,
	.default_mount = "/classroom",
	.http = NULL,
	.ws_accept = cls_ws_accept,
	.ws_open = cls_ws_open,
	.ws_message = cls_ws_message,
	.ws_close = cls_ws_close,
	.member_lost = cls_member_lost,
	.api_publish = cls_api_publish,
	.relay = 1,
};
