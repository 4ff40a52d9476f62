/*
 * api.c: the server API, HTTP and JSON for the application behind roomd
 * (roomd-protocols(7), SERVER API): list and describe rooms and their
 * members, kick a member, close a room (what roomctl does), and publish
 * into a room in its dialect's own terms (the dialect's api_publish).
 *
 * It has a listener of its own, api_listen, never a public one.  The
 * master binds that one socket before it forks, and every worker accepts
 * on it with the public port's non-blocking HTTP code (server_http.c,
 * with its limits on headers, body and time): a slow or hostile client
 * holds only its own connection, and a worker that is stopped or busy
 * leaves the API to the others.  Every request carries one of the
 * api_key lines as a bearer token, compared in constant time.  Rooms are
 * read and changed through the engine alone, as by any dialect.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>
#include <json-c/json.h>

#include "roomd.h"

#define API_PREFIX	"/api/rooms"
#define API_ROOMS_MAX	100000
#define API_BACKLOG	128

/* What a path names. */
enum api_kind {
	API_ROOMS,		/* /api/rooms */
	API_DIALECT,		/* /api/rooms/D */
	API_ROOM,		/* /api/rooms/D/ID */
	API_MEMBERS,		/* /api/rooms/D/ID/members */
	API_MEMBER,		/* /api/rooms/D/ID/members/M */
	API_PUBLISH		/* /api/rooms/D/ID/publish */
};

struct api_path {
	enum api_kind		 kind;
	const struct dialect	*d;		/* NULL: every dialect */
	char			 id[ROOM_ID_MAX + 1];
	char			 member[MEMBER_NAME_MAX + 1];	/* name or id */
};

int
api_listen_open(const struct roomd_config *c)
{
	struct roomd_config	*tmp;
	char			 err[256];
	int			 fd = -1, on = 1;

	if ((tmp = calloc(1, sizeof(*tmp))) == NULL ||
	    config_listen(tmp, c->api_listen, err, sizeof(err)) == -1) {
		log_warnx("api_listen: %s", tmp == NULL ? "out of memory" : err);
		free(tmp);
		return -1;
	}
	/* No SO_REUSEPORT: a second roomd on the address fails to start
	 * instead of sharing it. */
	if ((fd = socket(tmp->listens[0].ss.ss_family, SOCK_STREAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    bind(fd, (struct sockaddr *)&tmp->listens[0].ss,
	    tmp->listens[0].sslen) == -1 || listen(fd, API_BACKLOG) == -1) {
		log_warn("api_listen %s", c->api_listen);
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	free(tmp);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Rooms and members as JSON (roomctl's too) */

static struct json_object *
api_member_json(const struct room_member *x)
{
	struct json_object	*m = json_object_new_object();

	json_object_object_add(m, "name", json_object_new_string(x->name));
	json_object_object_add(m, "id", json_object_new_string(x->uid));
	json_object_object_add(m, "role", json_object_new_string(
	    x->role & MEMBER_ROLE_HOST ? "host" : "member"));
	json_object_object_add(m, "connected",
	    json_object_new_boolean(x->connected));
	return m;
}

static void
api_member_add(const struct room_member *x, void *list)
{
	json_object_array_add(list, api_member_json(x));
}

static struct json_object *
api_members_json(struct room *room)
{
	struct json_object	*list = json_object_new_array();

	room_members(room, api_member_add, list);
	return list;
}

struct json_object *
api_room_json(struct room *room, int with_members)
{
	const struct dialect	*d = room_dialect(room);
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "dialect", json_object_new_string(
	    d != NULL ? d->name : "?"));
	json_object_object_add(o, "id", json_object_new_string(room_id(room)));
	json_object_object_add(o, "members", with_members ?
	    api_members_json(room) : json_object_new_int64(
	    (int64_t)room_member_count(room)));
	json_object_object_add(o, "connections",
	    json_object_new_int64((int64_t)room_conns(room)));
	json_object_object_add(o, "log", json_object_new_int64(
	    (int64_t)room_committed(room)));
	json_object_object_add(o, "log_bytes", json_object_new_int64(
	    (int64_t)room_log_bytes(room)));
	return o;
}

/* ------------------------------------------------------------------ */
/* Paths */

static int
api_hex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
	    c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * Percent-decode the n bytes at s into out (len bytes with the NUL): 0,
 * -1 if badly encoded (or a NUL), -2 if too long.
 */
static int
api_decode(const char *s, size_t n, char *out, size_t len)
{
	size_t	 i, o = 0;
	int	 hi, lo;

	for (i = 0; i < n; i++, o++) {
		if (o + 1 >= len)
			return -2;
		if (s[i] != '%') {
			out[o] = s[i];
			continue;
		}
		if (i + 2 >= n || (hi = api_hex((unsigned char)s[i + 1])) == -1
		    || (lo = api_hex((unsigned char)s[i + 2])) == -1 ||
		    hi + lo == 0)
			return -1;
		out[o] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return 0;
}

/*
 * What the segments after /api/rooms name: 0, or 404 with the error's
 * code in *code.
 */
static int
api_route_path(char seg[][MEMBER_NAME_MAX + 1], size_t nseg,
    struct api_path *ap, const char **code)
{
	static const enum api_kind kinds[] = { API_ROOMS, API_DIALECT,
	    API_ROOM, API_MEMBERS, API_MEMBER };

	*code = "not_found";
	ap->kind = kinds[nseg];
	if (nseg >= 3 && strcmp(seg[2], "members") != 0 &&
	    (nseg == 4 || strcmp(seg[2], "publish") != 0))
		return 404;
	if (nseg == 3 && strcmp(seg[2], "publish") == 0)
		ap->kind = API_PUBLISH;
	if (nseg == 0)
		return 0;
	if ((ap->d = dialect_find(seg[0])) == NULL) {
		*code = "no_such_dialect";
		return 404;
	}
	if (nseg >= 2 && strlen(seg[1]) > ROOM_ID_MAX) {
		*code = "no_such_room";
		return 404;
	}
	if (nseg >= 2)
		memcpy(ap->id, seg[1], strlen(seg[1]) + 1);
	if (nseg == 4)
		memcpy(ap->member, seg[3], sizeof(ap->member));
	return 0;
}

/*
 * The path of the request (its raw target, without the query) split into
 * what it names: 0, or an HTTP status (404, 400) with the error's code in
 * *code.  A segment is percent-decoded on its own, so that an id may hold
 * any character, "/" too.
 */
static int
api_parse(const char *url, struct api_path *ap, const char **code)
{
	char		 seg[4][MEMBER_NAME_MAX + 1];
	const char	*p, *slash;
	size_t		 n = strlen(API_PREFIX), nseg = 0;
	int		 rc;

	memset(ap, 0, sizeof(*ap));
	*code = "not_found";
	if (strncmp(url, API_PREFIX, n) != 0 || (url[n] != '\0' &&
	    url[n] != '/'))
		return 404;
	for (p = url + n; *p == '/' && p[1] != '\0'; p = slash) {
		p++;
		slash = p + strcspn(p, "/");
		if (slash == p || nseg == 4)
			return 404;
		rc = api_decode(p, (size_t)(slash - p), seg[nseg],
		    sizeof(seg[nseg]));
		if (rc == -1) {
			*code = "bad_request";
			return 400;
		}
		if (rc == -2) {
			*code = nseg == 3 ? "no_such_member" : nseg == 1 ?
			    "no_such_room" : "not_found";
			return 404;
		}
		nseg++;
	}
	return api_route_path(seg, nseg, ap, code);
}

/* ------------------------------------------------------------------ */
/* Routes */

/* Lock the room the path names: 0, or -1 having answered 404. */
static int
api_lock(struct conn *conn, const struct api_path *ap, struct room **room)
{
	struct room_ref	 ref;

	if (room_find(ap->d, ap->id, &ref) != 0 || room_lock(&ref, room) != 0) {
		server_http_error(conn, 404, "no_such_room", "no room of that "
		    "dialect has that id");
		return -1;
	}
	return 0;
}

/* The member the path names, by name or id, in a locked room; 0, or -1
 * having unlocked the room and answered 404. */
static int
api_member_find(struct conn *conn, struct room *room,
    const struct api_path *ap, struct room_member *m)
{
	if (room_member_by_name(room, ap->member, m) == 0 ||
	    room_member_by_uid(room, ap->member, m) == 0)
		return 0;
	room_unlock(room);
	server_http_error(conn, 404, "no_such_member", "no member of the room "
	    "has that name or id");
	return -1;
}

int
api_fail(struct api_result *res, int status, const char *code,
    const char *message)
{
	res->code = code;
	res->message = message;
	return status;
}

static void
api_ok(struct conn *conn)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	server_http_json(conn, 200, o);
}

/* GET /api/rooms[/D] */
static void
api_list(struct conn *conn, struct http_req *req, const struct api_path *ap)
{
	struct room_ref		*refs;
	struct room		*room;
	struct json_object	*o, *list;
	size_t			 i, n;

	if ((refs = calloc(API_ROOMS_MAX, sizeof(*refs))) == NULL) {
		server_http_error(conn, 500, "internal", "out of memory");
		return;
	}
	list = json_object_new_array();
	n = room_list(ap->d, refs, API_ROOMS_MAX);
	for (i = 0; i < n; i++)
		if (room_lock(&refs[i], &room) == 0) {
			json_object_array_add(list, api_room_json(room, 0));
			room_unlock(room);
		}
	free(refs);
	o = json_object_new_object();
	json_object_object_add(o, "rooms", list);
	server_http_json(conn, 200, o);
}

/* GET /api/rooms/D/ID */
static void
api_show(struct conn *conn, struct http_req *req, const struct api_path *ap)
{
	struct json_object	*o;
	struct room		*room;

	if (api_lock(conn, ap, &room) == -1)
		return;
	o = api_room_json(room, 1);
	room_unlock(room);
	server_http_json(conn, 200, o);
}

/* DELETE /api/rooms/D/ID: every connection to it closes (1000). */
static void
api_close(struct conn *conn, struct http_req *req, const struct api_path *ap)
{
	struct room	*room;

	if (api_lock(conn, ap, &room) == -1)
		return;
	room_delete(room, "closed by the server API");
	log_info("api: closed room %s:%s", ap->d->name, ap->id);
	api_ok(conn);
}

/* GET /api/rooms/D/ID/members */
static void
api_members(struct conn *conn, struct http_req *req,
    const struct api_path *ap)
{
	struct json_object	*o;
	struct room		*room;

	if (api_lock(conn, ap, &room) == -1)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "members", api_members_json(room));
	room_unlock(room);
	server_http_json(conn, 200, o);
}

/* GET /api/rooms/D/ID/members/M */
static void
api_member(struct conn *conn, struct http_req *req, const struct api_path *ap)
{
	struct room_member	 m;
	struct room		*room;

	if (api_lock(conn, ap, &room) == -1 ||
	    api_member_find(conn, room, ap, &m) == -1)
		return;
	room_unlock(room);
	server_http_json(conn, 200, api_member_json(&m));
}

/* The members a kick names: by name or id, each of them (a chat user
 * with several tabs is one member of the server room for each). */
struct api_kick {
	struct room	*room;
	const char	*who;
	size_t		 n;
};

static void
api_kick_one(const struct room_member *m, void *arg)
{
	struct api_kick	*k = arg;

	if (strcmp(m->name, k->who) == 0 || strcmp(m->uid, k->who) == 0) {
		room_kick(k->room, m->mid);
		k->n++;
	}
}

/* DELETE /api/rooms/D/ID/members/M: its connections close, everywhere. */
static void
api_kick(struct conn *conn, struct http_req *req, const struct api_path *ap)
{
	struct room	*room;
	struct api_kick	 k;

	if (api_lock(conn, ap, &room) == -1)
		return;
	k.room = room;
	k.who = ap->member;
	k.n = 0;
	room_members(room, api_kick_one, &k);
	room_unlock(room);
	if (k.n == 0) {
		server_http_error(conn, 404, "no_such_member", "no member of "
		    "the room has that name or id");
		return;
	}
	log_info("api: kicked %s from room %s:%s", ap->member, ap->d->name,
	    ap->id);
	api_ok(conn);
}

/* POST /api/rooms/D/ID/publish: the dialect says it in its own terms. */
static void
api_publish(struct conn *conn, struct http_req *req,
    const struct api_path *ap)
{
	struct api_result	 res = { NULL, NULL, NULL };
	struct json_object	*body = NULL;
	struct room_ref		 ref;
	struct room		*room;
	int			 status;

	if (room_find(ap->d, ap->id, &ref) != 0) {
		server_http_error(conn, 404, "no_such_room", "no room of that "
		    "dialect has that id");
		return;
	}
	if (ap->d->api_publish == NULL) {
		server_http_error(conn, 400, "not_supported", "this dialect "
		    "has nothing to publish from the server");
		return;
	}
	if (req->body == NULL || json_parse(req->body, req->body_len, &body)
	    == -1 || !json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		server_http_error(conn, 400, "bad_json", "the body must be a "
		    "JSON object");
		return;
	}
	if (api_lock(conn, ap, &room) == -1) {
		json_object_put(body);
		return;
	}
	res.reply = json_object_new_object();
	json_object_object_add(res.reply, "ok", json_object_new_boolean(1));
	status = ap->d->api_publish(room, body, &res);
	room_unlock(room);
	json_object_put(body);
	if (status == 200) {
		log_debug("api: published in room %s:%s", ap->d->name, ap->id);
		server_http_json(conn, 200, res.reply);
		return;
	}
	json_object_put(res.reply);
	server_http_error(conn, status, res.code, res.message);
}

static const struct api_route {
	enum api_kind	 kind;
	int		 method;
	const char	*name;
	void		(*fn)(struct conn *, struct http_req *,
			    const struct api_path *);
} api_routes[] = {
	{ API_ROOMS,	HTTP_GET,	"GET",		api_list },
	{ API_DIALECT,	HTTP_GET,	"GET",		api_list },
	{ API_ROOM,	HTTP_GET,	"GET",		api_show },
	{ API_ROOM,	HTTP_DELETE,	"DELETE",	api_close },
	{ API_MEMBERS,	HTTP_GET,	"GET",		api_members },
	{ API_MEMBER,	HTTP_GET,	"GET",		api_member },
	{ API_MEMBER,	HTTP_DELETE,	"DELETE",	api_kick },
	{ API_PUBLISH,	HTTP_POST,	"POST",		api_publish },
};
#define API_NROUTES	(sizeof(api_routes) / sizeof(api_routes[0]))

/* 405, with the methods the path takes. */
static void
api_not_allowed(struct conn *conn, enum api_kind kind)
{
	static const char body[] = "{\"error\":\"method_not_allowed\","
	    "\"message\":\"this path does not take that method\"}";
	char	 allow[64];
	size_t	 i, n;

	n = (size_t)snprintf(allow, sizeof(allow), "Allow:");
	for (i = 0; i < API_NROUTES && n < sizeof(allow); i++)
		if (api_routes[i].kind == kind)
			n += (size_t)snprintf(allow + n, sizeof(allow) - n,
			    "%s %s", n > 6 ? "," : "", api_routes[i].name);
	if (n < sizeof(allow))
		snprintf(allow + n, sizeof(allow) - n, "\r\n");
	server_http_respond(conn, 405, "application/json", body,
	    sizeof(body) - 1, allow);
}

/*
 * Is the request's bearer token one of the api_key lines?  Every key is
 * compared, each in constant time, so the time taken tells nothing of
 * which, or how much of one, a guess matched.  If not, 401 is answered.
 */
static int
api_authorized(struct conn *conn, struct http_req *req)
{
	static const char none[] = "{\"error\":\"unauthorized\","
	    "\"message\":\"send an API key as Authorization: Bearer KEY\"}";
	static const char bad[] = "{\"error\":\"unauthorized\","
	    "\"message\":\"wrong API key\"}";
	const char	*auth = req->authorization, *key;
	int		 i, ok = 0;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		server_http_respond(conn, 401, "application/json", none,
		    sizeof(none) - 1, "WWW-Authenticate: Bearer "
		    "realm=\"roomd\"\r\n");
		return 0;
	}
	for (key = auth + 7; *key == ' '; key++)
		;
	for (i = 0; i < env->conf.napi_keys; i++)
		ok |= util_secret_equal(key, env->conf.api_keys[i]);
	if (!ok) {
		log_debug("api: a request with a wrong key");
		server_http_respond(conn, 401, "application/json", bad,
		    sizeof(bad) - 1, "WWW-Authenticate: Bearer realm=\"roomd\", "
		    "error=\"invalid_token\"\r\n");
	}
	return ok;
}

void
api_http(struct conn *conn, struct http_req *req)
{
	struct api_path	 ap;
	const char	*code;
	size_t		 i;
	int		 method, status;

	if (!api_authorized(conn, req))
		return;
	if ((status = api_parse(req->url, &ap, &code)) != 0) {
		server_http_error(conn, status, code, status == 400 ? "bad "
		    "percent-encoding in the path" : strcmp(code, "not_found")
		    == 0 ? "no such path" : strcmp(code, "no_such_dialect") ==
		    0 ? "no such dialect" : "no such room or member");
		return;
	}
	/* HEAD is GET without the body (server_http_respond). */
	method = req->method == HTTP_HEAD ? HTTP_GET : req->method;
	for (i = 0; i < API_NROUTES; i++)
		if (api_routes[i].kind == ap.kind &&
		    api_routes[i].method == method) {
			api_routes[i].fn(conn, req, &ap);
			return;
		}
	api_not_allowed(conn, ap.kind);
}
