/*
 * dialect_canvas.c: the shared drawing canvas (seed 000).
 *
 * REST under the mount: list rooms, create one (the host), join one (a
 * guest), delete one (the host's token).  Then one WebSocket per member at
 * rooms/{id}/ws: the room's op log holds its canvas actions, each stored
 * as the client's JSON object without its "pointer"; the pointer is the
 * record's sequence number and is put back when the action is sent.  Each
 * member has a cursor (the last pointer it was sent) and is always sent
 * exactly the actions after it, as one JSON array (canvas_frame_add); the
 * fan-out builds it once per cursor and shares it (fanout.c).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <http_parser.h>
#include <json-c/json.h>

#include "roomd.h"

#define CANVAS_LIST_MAX		100000
#define CANVAS_NAME_MAX		64	/* bytes */

/* The path after the mount: "/rooms", "/rooms/ID" or "/rooms/ID/VERB". */
struct canvas_path {
	int	 depth;			/* 1, 2 or 3 */
	char	 id[ROOM_ID_MAX + 1];
	char	 verb[8];
};

static int
canvas_parse_path(const char *sub, struct canvas_path *cp)
{
	const char	*p, *slash;
	size_t		 n;

	memset(cp, 0, sizeof(*cp));
	if (strncmp(sub, "/rooms", 6) != 0 || (sub[6] != '\0' && sub[6] != '/'))
		return -1;
	cp->depth = 1;
	p = sub + 6;
	if (*p == '\0' || strcmp(p, "/") == 0)
		return 0;
	p++;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n > ROOM_ID_MAX)
		return -1;
	memcpy(cp->id, p, n);
	if (!util_valid_id(cp->id, ROOM_ID_MAX))
		return -1;
	cp->depth = 2;
	if (slash == NULL || slash[1] == '\0')
		return 0;
	p = slash + 1;
	n = strlen(p);
	if (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(cp->verb) || memchr(p, '/', n) != NULL)
		return -1;
	memcpy(cp->verb, p, n);
	cp->depth = 3;
	return 0;
}

/* Names: 1..64 bytes of UTF-8 with no control characters. */
static int
canvas_valid_name(const char *s)
{
	size_t	 n = s ? strlen(s) : 0, i;

	if (n < 1 || n > CANVAS_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/*
 * Replies that list a room's members are written as JSON text into one
 * growing buffer, not built as a json-c object per guest: a join reply
 * lists every guest, and the many small objects of each one, freed at
 * once, were left between the members' long-lived allocations.  The
 * text is what json_text() made of those objects, byte for byte (same
 * keys in the same order, json_quote()'s escaping, no spaces).
 */
struct jbuf {
	char	*p;
	size_t	 len, cap;
	int	 oom;
};

/* Room for n more bytes at b->p + b->len, or NULL (and oom). */
static char *
jb_space(struct jbuf *b, size_t n)
{
	size_t	 cap = b->cap != 0 ? b->cap : 512;
	char	*p;

	if (b->oom)
		return NULL;
	if (b->len + n > b->cap) {
		while (cap < b->len + n)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

static void
jb_add(struct jbuf *b, const char *s, size_t n)
{
	char	*p;

	if (n > 0 && (p = jb_space(b, n)) != NULL) {
		memcpy(p, s, n);
		b->len += n;
	}
}

#define jb_lit(b, s)	jb_add((b), (s), sizeof(s) - 1)

/* A JSON string, or null for NULL. */
static void
jb_str(struct jbuf *b, const char *s)
{
	size_t	 n;
	char	*p;

	if (s == NULL) {
		jb_lit(b, "null");
		return;
	}
	n = strlen(s);
	if ((p = jb_space(b, JSON_QUOTE_MAX(n))) != NULL)
		b->len += json_quote(p, s, n);
}

/* Send the buffer as a JSON answer and free it. */
static void
jb_send(struct conn *conn, int status, struct jbuf *b)
{
	if (b->oom)
		server_http_error(conn, 500, "internal", "out of memory");
	else
		server_http_respond(conn, status, "application/json", b->p,
		    b->len, NULL);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

struct room_json {
	struct jbuf	*guests;
	int		 host;
	char		 host_name[MEMBER_NAME_MAX + 1];
};

static void
canvas_member_json(const struct room_member *m, void *arg)
{
	struct room_json	*rj = arg;

	if (m->role & MEMBER_ROLE_HOST) {
		rj->host = 1;
		memcpy(rj->host_name, m->name, sizeof(rj->host_name));
		return;
	}
	if (rj->guests->len > 0)
		jb_lit(rj->guests, ",");
	jb_lit(rj->guests, "{\"name\":");
	jb_str(rj->guests, m->name);
	jb_lit(rj->guests, "}");
}

/*
 * {"roomId","host","guests":[{"name"}] of a locked room, without the
 * closing brace: the caller adds its own members and closes it.
 */
static void
canvas_room_json(struct room *room, struct jbuf *b)
{
	struct jbuf		 guests = { NULL, 0, 0, 0 };
	struct room_json	 rj = { &guests, 0, "" };

	room_members(room, canvas_member_json, &rj);
	jb_lit(b, "{\"roomId\":");
	jb_str(b, room_id(room));
	jb_lit(b, ",\"host\":");
	jb_str(b, rj.host ? rj.host_name : NULL);
	jb_lit(b, ",\"guests\":[");
	jb_add(b, guests.p, guests.len);
	jb_lit(b, "]");
	b->oom |= guests.oom;
	free(guests.p);
}

static void
jb_bool(struct jbuf *b, int v)
{
	if (v)
		jb_lit(b, "true");
	else
		jb_lit(b, "false");
}

static void
canvas_list(struct conn *conn)
{
	struct room_ref		*refs;
	struct jbuf		 b = { NULL, 0, 0, 0 };
	struct room		*room;
	size_t			 i, n, listed = 0;

	if ((refs = calloc(CANVAS_LIST_MAX, sizeof(*refs))) == NULL) {
		server_http_error(conn, 500, "internal", "out of memory");
		return;
	}
	n = room_list(&dialect_canvas, refs, CANVAS_LIST_MAX);
	jb_lit(&b, "[");
	for (i = 0; i < n; i++) {
		if (room_lock(&refs[i], &room) != 0)
			continue;	/* deleted meanwhile */
		if (listed++ > 0)
			jb_lit(&b, ",");
		canvas_room_json(room, &b);
		jb_lit(&b, ",\"locked\":");
		jb_bool(&b, room_has_password(room));
		jb_lit(&b, "}");
		room_unlock(room);
	}
	jb_lit(&b, "]");
	free(refs);
	jb_send(conn, 200, &b);
}

/* The request body as a JSON object, or NULL after answering 400. */
static struct json_object *
canvas_body(struct conn *conn, struct http_req *req)
{
	struct json_object	*body = NULL;

	if (req->body == NULL || json_parse(req->body, req->body_len, &body)
	    == -1 || body == NULL || !json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		server_http_error(conn, 400, "bad_request",
		    "the body must be a JSON object");
		return NULL;
	}
	return body;
}

/*
 * An optional string member: 0 and *out (NULL when absent or null), or -1
 * when it is present with another type.
 */
static int
canvas_opt_string(struct json_object *o, const char *key, const char **out)
{
	struct json_object	*v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*out = json_object_get_string(v);
	return 0;
}

static int
canvas_room_error(struct conn *conn, int rc)
{
	switch (rc) {
	case ROOM_ENOENT:
		server_http_error(conn, 404, "no_such_room", "no room with "
		    "that id");
		break;
	case ROOM_EEXIST:
		server_http_error(conn, 409, "room_exists", "a room with that "
		    "id exists");
		break;
	case ROOM_ELIMIT:
		server_http_error(conn, 403, "room_full", "the room has its "
		    "maximum number of members");
		break;
	case ROOM_ENOSPC:
		server_http_error(conn, 503, "arena_full", "the server has no "
		    "room for more data");
		break;
	case ROOM_EUNAVAIL:
		server_http_error(conn, 503, "unavailable", room_strerror(rc));
		break;
	default:
		server_http_error(conn, 500, "internal", room_strerror(rc));
	}
	return -1;
}

/*
 * The arena's epoch: it changes only when roomd had to start from an empty
 * arena, so a client that comes back to a room of the same id and sees
 * another epoch knows its canvas and pointer are from before.
 */
static void
canvas_epoch(struct jbuf *b, uint64_t epoch)
{
	char	 num[32];

	jb_lit(b, ",\"epoch\":");
	jb_add(b, num, (size_t)snprintf(num, sizeof(num), "%lld",
	    (long long)epoch));
}

/* GET rooms/ID: the room as the list shows it, with the epoch. */
static void
canvas_show(struct conn *conn, const char *id)
{
	struct room_ref		 ref;
	struct jbuf		 b = { NULL, 0, 0, 0 };
	struct room		*room;
	uint64_t		 epoch;
	int			 rc;

	if ((rc = room_find_lock(&dialect_canvas, id, &ref,
	    &room)) != 0) {
		canvas_room_error(conn, rc);
		return;
	}
	canvas_room_json(room, &b);
	jb_lit(&b, ",\"locked\":");
	jb_bool(&b, room_has_password(room));
	epoch = room_epoch(room);
	room_unlock(room);
	canvas_epoch(&b, epoch);
	jb_lit(&b, "}");
	jb_send(conn, 200, &b);
}

/* A member event of room id, for the webhooks. */
static void
canvas_hook(enum webhook_event type, const char *id,
    const struct room_member *m, const char *reason)
{
	struct webhook_member	 wm = { m->uid, m->name,
				    (m->role & MEMBER_ROLE_HOST) != 0 };

	webhook_emit(&dialect_canvas, type, id, &wm, reason);
}

static void
canvas_create(struct conn *conn, struct http_req *req)
{
	struct json_object	*body;
	struct jbuf		 b = { NULL, 0, 0, 0 };
	struct room_member	 host;
	struct room		*room;
	const char		*name, *pw, *id;
	char			 uuid[MEMBER_UID_LEN + 1];
	uint64_t		 epoch;
	int			 rc;

	if ((body = canvas_body(conn, req)) == NULL)
		return;
	name = json_get_string(body, "host");
	if (!canvas_valid_name(name) || canvas_opt_string(body, "password",
	    &pw) == -1 || canvas_opt_string(body, "roomId", &id) == -1 ||
	    (id == NULL && json_object_object_get_ex(body, "roomId", NULL)) ||
	    (id != NULL && !util_valid_id(id, ROOM_ID_MAX))) {
		server_http_error(conn, 400, "bad_request", "expected "
		    "{\"host\": name, \"password\": optional string, "
		    "\"roomId\": optional [A-Za-z0-9_-]{1,64}}; names are "
		    "1 to 64 bytes");
		json_object_put(body);
		return;
	}
	if (id == NULL) {
		util_uuid(uuid);
		id = uuid;
	}
	if ((rc = room_create(&dialect_canvas, id, server_limit_addr(conn), &room)) != 0) {
		if (rc == ROOM_ELIMIT)
			server_http_error(conn, 429, "too_many_rooms", "this "
			    "address has as many rooms as it may have; delete "
			    "one or let one expire");
		else
			canvas_room_error(conn, rc);
		json_object_put(body);
		return;
	}
	if ((pw != NULL && pw[0] != '\0' && room_set_password(room, pw) != 0) ||
	    (rc = room_member_add(room, name, MEMBER_ROLE_HOST, &host)) != 0) {
		room_delete(room, "could not be set up");
		canvas_room_error(conn, rc ? rc : ROOM_EINVAL);
		json_object_put(body);
		return;
	}
	canvas_room_json(room, &b);
	epoch = room_epoch(room);
	room_unlock(room);
	jb_lit(&b, ",\"password\":");
	jb_str(&b, pw);
	jb_lit(&b, ",\"token\":");
	jb_str(&b, host.token);
	canvas_epoch(&b, epoch);
	jb_lit(&b, "}");
	jb_send(conn, 201, &b);
	canvas_hook(WEBHOOK_MEMBER_JOINED, id, &host, NULL);
	json_object_put(body);
}

/*
 * Join room id as a guest, named as the body says or as auth_hook's
 * answer renamed it (as, if not NULL).
 */
static void
canvas_join_as(struct conn *conn, struct http_req *req, const char *id,
    const char *as)
{
	struct json_object	*body;
	struct jbuf		 b = { NULL, 0, 0, 0 };
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room;
	const char		*name, *pw;
	int			 rc, joined = 0;

	if ((body = canvas_body(conn, req)) == NULL)
		return;
	name = as != NULL ? as : json_get_string(body, "name");
	canvas_opt_string(body, "password", &pw);
	if ((rc = room_find_lock(&dialect_canvas, id, &ref,
	    &room)) != 0) {
		canvas_room_error(conn, rc);
		json_object_put(body);
		return;
	}
	if (room_password_blocked(room, server_limit_addr(conn)))
		server_http_error(conn, 429, "too_many_attempts", "too many "
		    "wrong passwords for this room from this address; try "
		    "again in a minute");
	else if (!room_check_password(room, pw)) {
		/* A missing password is no guess: only wrong ones count. */
		if (pw != NULL)
			room_password_failed(room, server_limit_addr(conn));
		server_http_error(conn, 403, "wrong_password", "wrong or "
		    "missing password");
	} else if (room_member_by_name(room, name, &m) == 0)
		server_http_error(conn, 409, "name_taken", "someone in the "
		    "room has that name");
	else if ((rc = room_member_add(room, name, 0, &m)) != 0)
		canvas_room_error(conn, rc);
	else {
		canvas_room_json(room, &b);
		jb_lit(&b, ",\"token\":");
		jb_str(&b, m.token);
		canvas_epoch(&b, room_epoch(room));
		jb_lit(&b, "}");
		joined = 1;
	}
	room_unlock(room);
	if (joined) {
		jb_send(conn, 200, &b);
		canvas_hook(WEBHOOK_MEMBER_JOINED, id, &m, NULL);
	}
	json_object_put(body);
}

/* auth_hook's answer to a join: refused (403, or 503 if the application
 * could not be asked), or the join, maybe under another name. */
static void
canvas_checked(struct conn *conn, struct authhook_answer *a, void *id)
{
	authhook_validate(a, a->name == NULL || canvas_valid_name(a->name));
	if (!a->allow)
		server_http_error(conn, a->failed ? 503 : 403, a->failed ?
		    "unavailable" : "forbidden", a->reason);
	else if (conn->req != NULL)
		canvas_join_as(conn, conn->req, id, a->name);
}

/* POST rooms/ID/join: checked, then asked of auth_hook if there is one. */
static void
canvas_join(struct conn *conn, struct http_req *req, const char *id)
{
	struct authhook_query	 q = { &dialect_canvas, "join", id, NULL,
				    NULL, 0 };
	struct json_object	*body;
	struct room_ref		 ref;
	const char		*pw;
	char			*arg;
	int			 rc;

	if ((body = canvas_body(conn, req)) == NULL)
		return;
	q.name = json_get_string(body, "name");
	if (!canvas_valid_name(q.name) ||
	    canvas_opt_string(body, "password", &pw) == -1) {
		server_http_error(conn, 400, "bad_request", "expected "
		    "{\"name\": name, \"password\": optional string}; names "
		    "are 1 to 64 bytes");
		json_object_put(body);
		return;
	}
	if (!authhook_enabled(&dialect_canvas))
		canvas_join_as(conn, req, id, NULL);
	else if ((rc = room_find(&dialect_canvas, id, &ref)) != 0)
		canvas_room_error(conn, rc);
	else if ((arg = strdup(id)) == NULL ||
	    authhook_ask(conn, &q, canvas_checked, arg, free) == -1) {
		free(arg);
		server_http_error(conn, 500, "internal", "out of memory");
	}
	json_object_put(body);
}

static void
canvas_remove(struct conn *conn, struct http_req *req, const char *id)
{
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room;
	const char		*auth = req->authorization, *token;
	int			 rc;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		static const char body[] = "{\"error\":\"unauthorized\","
		    "\"message\":\"send the host's token as Authorization: "
		    "Bearer TOKEN\"}";

		server_http_respond(conn, 401, "application/json", body,
		    sizeof(body) - 1, "WWW-Authenticate: Bearer\r\n");
		return;
	}
	for (token = auth + 7; *token == ' '; token++)
		;
	if ((rc = room_find_lock(&dialect_canvas, id, &ref,
	    &room)) != 0) {
		canvas_room_error(conn, rc);
		return;
	}
	if (room_member_by_token(room, token, &m) != 0 ||
	    !(m.role & MEMBER_ROLE_HOST)) {
		room_unlock(room);
		server_http_error(conn, 403, "forbidden", "only the host may "
		    "delete the room");
		return;
	}
	room_delete(room, "room deleted");
	server_http_respond(conn, 204, NULL, NULL, 0, NULL);
}

static void
canvas_http(struct conn *conn, struct http_req *req, const char *sub)
{
	struct canvas_path	 cp;
	int			 method = req->method;

	if (canvas_parse_path(sub, &cp) == -1) {
		server_http_error(conn, 404, "not_found", "no such path");
		return;
	}
	if (cp.depth == 1 && method == HTTP_GET)
		canvas_list(conn);
	else if (cp.depth == 1 && method == HTTP_POST)
		canvas_create(conn, req);
	else if (cp.depth == 2 && method == HTTP_DELETE)
		canvas_remove(conn, req, cp.id);
	else if (cp.depth == 2 && method == HTTP_GET)
		canvas_show(conn, cp.id);
	else if (cp.depth == 3 && strcmp(cp.verb, "join") == 0 &&
	    method == HTTP_POST)
		canvas_join(conn, req, cp.id);
	else if (cp.depth == 3 && strcmp(cp.verb, "ws") == 0)
		server_http_error(conn, 400, "bad_request", "this path takes "
		    "a WebSocket upgrade");
	else if (cp.depth == 3 && strcmp(cp.verb, "join") != 0)
		server_http_error(conn, 404, "not_found", "no such path");
	else
		server_http_error(conn, 405, "method_not_allowed",
		    "method not allowed here");
}

static int
canvas_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	struct canvas_path	 cp;

	if (canvas_parse_path(sub, &cp) == -1 || cp.depth != 3 ||
	    strcmp(cp.verb, "ws") != 0)
		return 404;
	return 0;
}

static void
canvas_ws_error(struct conn *conn, const char *code, const char *message)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(message));
	server_ws_send_json(conn, o);
}

static void
canvas_ws_refuse(struct conn *conn, const char *code, const char *message)
{
	canvas_ws_error(conn, code, message);
	server_ws_close(conn, 1008, code);
}

/*
 * A member's message is an array of the actions after its cursor, each
 * with its pointer: the stored object without its closing brace, then the
 * pointer.  The fan-out cuts and shares these messages (fanout.c).
 */
static void
canvas_frame_add(struct evbuffer *buf, const struct room_rec *rec, int i)
{
	if (rec == NULL) {
		evbuffer_add(buf, i == 0 ? "[]" : "]", i == 0 ? 2 : 1);
		return;
	}
	evbuffer_add(buf, i == 0 ? "[" : ",", 1);
	evbuffer_add(buf, rec->data, rec->len - 1);
	evbuffer_add_printf(buf, ",\"pointer\":%llu}",
	    (unsigned long long)rec->seq);
}

/* A pointer is a decimal number of at most 19 digits. */
static int
canvas_parse_pointer(const char *s, uint64_t *out)
{
	size_t	 i, n = strlen(s);

	if (n == 0 || n > 19)
		return -1;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return -1;
	*out = strtoull(s, NULL, 10);
	return 0;
}

static void
canvas_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
	struct canvas_path	 cp;
	struct room_ref		 ref;
	struct room_member	 m;
	struct room		*room;
	char			 token[MEMBER_TOKEN_LEN + 2], ptr[32];
	uint64_t		 pointer = 0;
	int			 has_ptr, rc;

	canvas_parse_path(sub, &cp);
	if ((rc = room_find_lock(&dialect_canvas, cp.id, &ref,
	    &room)) != 0) {
		if (rc == ROOM_EUNAVAIL)	/* the room may well be there */
			fanout_unavailable(conn);
		else
			canvas_ws_refuse(conn, "no_such_room",
			    "no room with that id");
		return;
	}
	if (util_query_get(req->query, "token", token, sizeof(token)) != 1 ||
	    room_member_by_token(room, token, &m) != 0) {
		room_unlock(room);
		canvas_ws_refuse(conn, "bad_token", "missing or wrong token");
		return;
	}
	has_ptr = util_query_get(req->query, "pointer", ptr, sizeof(ptr));
	if (has_ptr != 0 && (has_ptr != 1 || canvas_parse_pointer(ptr,
	    &pointer) == -1 || pointer > room_committed(room))) {
		room_unlock(room);
		canvas_ws_refuse(conn, "bad_pointer", "pointer must be a "
		    "number no larger than the room's last pointer");
		return;
	}
	if (fanout_attach(room, conn, m.mid) != 0) {
		room_unlock(room);
		canvas_ws_refuse(conn, "internal", "out of memory");
		return;
	}
	room_unlock(room);
	conn->cursor = pointer;
	fanout_catch_up(conn, 1);
}

/*
 * The actions of msg, an action object or an array of them, as records to
 * append (their data is msg's): a new array in *recs, of *n.  The
 * pointers they carry are dropped.  0, -1 if one is no action object, or
 * -2 without memory.
 */
static int
canvas_actions(struct json_object *msg, struct room_rec_in **recs, size_t *n)
{
	struct json_object	*item;
	size_t			 i, tlen, len;

	*recs = NULL;
	*n = 0;
	len = json_object_is_type(msg, json_type_array) ?
	    json_object_array_length(msg) : 1;
	if (len > 0 && (*recs = calloc(len, sizeof(**recs))) == NULL)
		return -2;
	for (i = 0; i < len; i++) {
		item = json_object_is_type(msg, json_type_array) ?
		    json_object_array_get_idx(msg, i) : msg;
		if (!json_object_is_type(item, json_type_object))
			break;
		json_object_object_del(item, "pointer");
		if (json_object_object_length(item) == 0)
			break;
		(*recs)[i].data = json_text(item, &tlen);
		(*recs)[i].len = (uint32_t)tlen;
	}
	if (i < len) {
		free(*recs);
		*recs = NULL;
		return -1;
	}
	*n = len;
	return 0;
}

/* One message: one action object or an array of them, appended whole. */
static void
canvas_ws_message(struct conn *conn, int binary, const char *data,
    size_t len)
{
	struct json_object	*msg;
	struct room_rec_in	*recs = NULL;
	struct room		*room;
	size_t			 n = 0;
	uint64_t		 last;
	int			 rc;

	if (conn->room == NULL)
		return;
	if (binary) {
		canvas_ws_error(conn, "bad_frame", "canvas messages are JSON "
		    "text frames");
		return;
	}
	if (json_parse(data, len, &msg) == -1) {
		canvas_ws_error(conn, "bad_json", "the message is not JSON");
		return;
	}
	if (msg == NULL || (!json_object_is_type(msg, json_type_object) &&
	    !json_object_is_type(msg, json_type_array))) {
		json_object_put(msg);
		canvas_ws_error(conn, "bad_request", "send an action object or "
		    "an array of them");
		return;
	}
	if ((rc = canvas_actions(msg, &recs, &n)) == -2) {
		canvas_ws_error(conn, "internal", "out of memory");
	} else if (rc == -1) {
		canvas_ws_error(conn, "bad_action", "every action must be an "
		    "object with an action key; nothing was appended");
	} else if (n > 0 && (rc = room_lock(&conn->room->ref, &room)) != 0) {
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);
		else
			canvas_ws_refuse(conn, "no_such_room",
			    "the room is gone");
	} else if (n > 0) {
		rc = room_append(room, recs, n, &last);
		room_unlock(room);
		if (rc == ROOM_EUNAVAIL)
			fanout_unavailable(conn);	/* nothing appended */
		else if (rc == ROOM_ELIMIT)
			canvas_ws_error(conn, "log_full", "the room's canvas "
			    "is full; nothing was appended");
		else if (rc != 0)
			canvas_ws_error(conn, "arena_full", "the server has "
			    "no room for more data; nothing was appended");
	}
	free(recs);
	json_object_put(msg);
}

/*
 * The server API: {"actions": an action or an array of them}, appended
 * as one batch, exactly as a member's message is.  Actions carry no
 * author, so the system sender (api_sender) is named in the log alone.
 */
static int
canvas_api_publish(struct room *room, struct json_object *body,
    struct api_result *res)
{
	struct json_object	*actions;
	struct room_rec_in	*recs;
	size_t			 n;
	uint64_t		 last;
	int			 rc;

	if (!json_object_object_get_ex(body, "actions", &actions) ||
	    (rc = canvas_actions(actions, &recs, &n)) == -1 || n == 0)
		return api_fail(res, 400, "bad_action", "expected {\"actions\": "
		    "an action object or a non-empty array of them}; nothing "
		    "was appended");
	if (rc == -2)
		return api_fail(res, 500, "internal", "out of memory");
	rc = room_append(room, recs, n, &last);
	free(recs);
	if (rc == ROOM_ELIMIT)
		return api_fail(res, 409, "log_full", "the room's canvas is "
		    "full; nothing was appended");
	if (rc != 0)
		return api_fail(res, 503, "arena_full", "the server has no room "
		    "for more data; nothing was appended");
	log_debug("canvas: %s appended %zu actions to room %s",
	    env->conf.api_sender, n, room_id(room));
	json_object_object_add(res->reply, "pointer",
	    json_object_new_int64((int64_t)last));
	return 200;
}

static void
canvas_ws_close(struct conn *conn)
{
	/* On a clean stop rooms stay, for a restarted roomd to serve. */
	fanout_detach(conn, !server_stopping(conn), NULL);
}

const struct dialect dialect_canvas = {
	.name = "canvas",
	.id = 1,
	.default_mount = "/canvas",
	.http = canvas_http,
	.ws_accept = canvas_ws_accept,
	.ws_open = canvas_ws_open,
	.ws_message = canvas_ws_message,
	.ws_close = canvas_ws_close,
	.frame_add = canvas_frame_add,
	.api_publish = canvas_api_publish,
};
