/*
 * dialect_lobby.c: groovejet, a WebRTC lobby for games (seed 002), on the
 * wire of the original Node server (../shared/seeds/NOTES.md), with the
 * goals its author left unticked: identities that survive reconnection,
 * host reconnection within a grace period, host migration to a guest,
 * game-state snapshots, and rooms that end when their host is gone.
 *
 * A client's identity (clientId, token) is a member record of the room, so
 * it outlives the connection.  The host's grace deadline, the migration
 * candidate and the latest snapshot are words of the room in the arena,
 * and every worker with members in the room checks the timers each second
 * under the room lock: whichever comes first acts, once, and a host whose
 * worker was killed is noticed as surely as one that said goodbye.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <http_parser.h>
#include <json-c/json.h>

#include "roomd.h"

#define LOBBY_CODE_CHARS	"0123456789abcdefghijklmnopqrstuvwxyz"
#define LOBBY_CODE_LEN		5

/* The room's dialect words (room_dget/room_dset). */
#define LS_HOST_GONE	0	/* when the host's grace ends; 0: not gone */
#define LS_SNAPSHOT	1	/* sequence of the latest snapshot record */
#define LS_CANDIDATE	2	/* guest asked to become host */
#define LS_CAND_UNTIL	3	/* when to ask another */
#define LS_FLAGS	4
#define LS_VERSION	5	/* snapshots saved so far */
#define LF_MIGRATE	0x1	/* migrate the host to a guest */
#define LF_MIGRATE_SET	0x2	/* the room chose, not the configuration */

struct lobby_conn {
	char	 uid[MEMBER_UID_LEN + 1];
	char	 token[MEMBER_TOKEN_LEN + 1];
	int	 proven;	/* the identity was restored from a pair */
};

static struct json_object *
lobby_msg(const char *type, struct json_object *data)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	if (data != NULL)
		json_object_object_add(o, "data", data);
	return o;
}

static void
lobby_identity(struct conn *conn)
{
	struct lobby_conn	*lc = conn->data;
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, "clientId", json_object_new_string(lc->uid));
	json_object_object_add(d, "token", json_object_new_string(lc->token));
	server_ws_send_json(conn, lobby_msg("identity", d));
}

static void
lobby_fresh(struct lobby_conn *lc)
{
	util_uuid(lc->uid);
	util_token(lc->token, sizeof(lc->token));
	lc->proven = 0;
}

static struct json_object *
lobby_error_msg(const char *type, const char *message)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("error"));
	json_object_object_add(o, "errorType", json_object_new_string(type));
	json_object_object_add(o, "errorMessage",
	    json_object_new_string(message));
	return o;
}

/*
 * The answer to createRoom or joinRoom: under the document's name, then
 * under the name groovejet's later code gave it (createdRoom, joinedRoom,
 * which pearl-multiplayer-socket waits for), as lobby_replies says.
 * Clients ignore types they do not know.
 */
static void
lobby_reply(struct conn *conn, const char *doc_type, struct json_object *doc,
    const char *gj_type, struct json_object *gj)
{
	if (env->conf.lobby_replies & LOBBY_REPLIES_DOCUMENT)
		server_ws_send_json(conn, lobby_msg(doc_type, doc));
	else
		json_object_put(doc);
	if (env->conf.lobby_replies & LOBBY_REPLIES_GROOVEJET)
		server_ws_send_json(conn, lobby_msg(gj_type, gj));
	else
		json_object_put(gj);
}

/* A named error, then the connection is closed. */
static void
lobby_refuse(struct conn *conn, const char *type, const char *fmt,
    const char *code)
{
	char	 text[256];

	snprintf(text, sizeof(text), fmt, code);
	server_ws_send_json(conn, lobby_error_msg(type, text));
	server_ws_close(conn, 1000, type);
}

/* A client joined or left room code, for the webhooks. */
static void
lobby_hook(enum webhook_event type, const char *code,
    const struct room_member *m, const char *reason)
{
	struct webhook_member	 wm = { m->uid, m->uid,
				    (m->role & MEMBER_ROLE_HOST) != 0 };

	webhook_emit(&dialect_lobby, type, code, &wm, reason);
}

/* auth_hook refused a join (or could not be asked): a named error, and
 * the connection closes, as lobby errors do. */
static void
lobby_check_refused(struct conn *conn, const struct authhook_answer *a)
{
	lobby_refuse(conn, a->failed ? "joinCheckFailed" : "joinRefused",
	    "%s", a->reason);
}

static int
lobby_migrates(struct room *room)
{
	uint64_t	 f = room_dget(room, LS_FLAGS);

	return f & LF_MIGRATE_SET ? (f & LF_MIGRATE) != 0 :
	    env->conf.lobby_migration;
}

struct lobby_scan {
	struct room_member	 host;		/* mid 0: none */
	struct room_member	 oldest;	/* longest connected guest */
	uint64_t		 skip;
	int			 guests;	/* connected guests */
};

static void
lobby_scan_member(const struct room_member *m, void *arg)
{
	struct lobby_scan	*s = arg;

	if (m->role & MEMBER_ROLE_HOST)
		s->host = *m;
	else if (m->connected) {
		s->guests++;
		if (m->mid != s->skip && (s->oldest.mid == 0 ||
		    m->joined < s->oldest.joined))
			s->oldest = *m;
	}
}

static void
lobby_scan(struct room *room, struct lobby_scan *s, uint64_t skip)
{
	memset(s, 0, sizeof(*s));
	s->skip = skip;
	room_members(room, lobby_scan_member, s);
}

/* The latest snapshot's state, parsed, or NULL (JSON null). */
static struct json_object *
lobby_snapshot(struct room *room, uint64_t *version)
{
	struct json_object	*state = NULL;
	char			*text;
	size_t			 len;
	uint64_t		 seq = room_dget(room, LS_SNAPSHOT);

	*version = room_dget(room, LS_VERSION);
	if (seq != 0 && room_read_one(room, seq, &text, &len) == 0) {
		json_parse(text, len, &state);
		free(text);
	}
	return state;
}

/*
 * Store a snapshot as a record for nobody, which the log keeps: trimming
 * stops at the latest snapshot.  Returns 0 or ROOM_E*.
 */
static int
lobby_store(struct room *room, const char *text, size_t len)
{
	int	 rc;

	if ((rc = room_publish(room, AUD_MEMBER, 0, text, len)) != 0)
		return rc;
	room_dset(room, LS_SNAPSHOT, room_committed(room));
	room_keep_from(room, room_committed(room));
	return 0;
}

/*
 * Signals relayed after a snapshot would pile up behind it: once the log
 * holds a quarter of its limit, the snapshot moves to the log's end (same
 * version), so everything before it can be trimmed.
 */
static void
lobby_compact(struct room *room)
{
	char	*text;
	size_t	 len;

	if (room_dget(room, LS_SNAPSHOT) == 0 || room_log_bytes(room) <
	    env->conf.room_log_max_bytes / 4)
		return;
	if (room_read_one(room, room_dget(room, LS_SNAPSHOT), &text, &len) ==
	    0) {
		lobby_store(room, text, len);
		free(text);
	}
}

/*
 * Seat conn in a locked room as host or guest.  restored is the member
 * whose identity it proved, or NULL for a newcomer.  Returns 1 if seated
 * as host, 0 as guest, -1 after refusing.
 *
 * A host that comes back with its identity finds its seat kept for the
 * grace period.  A newcomer that asks for the seat takes it at once from
 * a host that is not connected, as in the original server, which frees
 * the seat when the host's socket closes (else an original client whose
 * host dropped could never host that room again); the old host, if it
 * returns, comes back as a guest.
 */
static int
lobby_seat(struct conn *conn, struct room *room, const char *code,
    int want_host, int can_host, const struct room_member *restored)
{
	struct lobby_conn	*lc = conn->data;
	struct lobby_scan	 s;
	struct room_member	 m;
	uint64_t		 gone = room_dget(room, LS_HOST_GONE);
	int			 host_here, grace_over, as_host, rc;

	lobby_scan(room, &s, 0);
	host_here = s.host.mid != 0 && s.host.connected;
	grace_over = s.host.mid == 0 || (gone != 0 && util_now() >= gone);
	if (restored != NULL && (restored->role & MEMBER_ROLE_HOST)) {
		as_host = 1;
		m = *restored;
	} else if (restored != NULL) {
		if (!host_here && !(can_host && grace_over)) {
			lobby_refuse(conn, "hostDisconnected", "The host for "
			    "room %s has disconnected", code);
			return -1;
		}
		as_host = !host_here;
		m = *restored;
	} else if (want_host && host_here) {
		lobby_refuse(conn, "hostAlreadyExists", "You're trying to "
		    "connect as a host, but the room %s already has a host",
		    code);
		return -1;
	} else if (!want_host && !host_here && !(can_host && grace_over)) {
		lobby_refuse(conn, "hostDisconnected", "The host for room %s "
		    "has disconnected", code);
		return -1;
	} else {
		as_host = want_host || !host_here;
		if ((rc = room_member_add_id(room, lc->uid, 0, lc->uid,
		    lc->token, &m)) == ROOM_EUNAVAIL) {
			fanout_unavailable(conn);
			return -1;
		} else if (rc != 0) {
			lobby_refuse(conn, "roomFull", "Room %s is full", code);
			return -1;
		}
	}
	if (as_host && s.host.mid != 0 && s.host.mid != m.mid)
		room_member_set(room, s.host.mid, 0, s.host.authorities);
	if (as_host)
		room_member_set(room, m.mid, MEMBER_ROLE_HOST, m.authorities);
	if (fanout_attach(room, conn, m.mid) != 0) {
		lobby_refuse(conn, "roomFull", "Room %s is full", code);
		return -1;
	}
	if (as_host && gone != 0) {
		/* The host is back (or a new one took over): guests
		 * re-signal to it. */
		room_dset(room, LS_HOST_GONE, 0);
		room_dset(room, LS_CANDIDATE, 0);
		room_publish_json(room, AUD_ALL_BUT, m.mid,
		    lobby_msg("hostRejoined", NULL));
	}
	if (as_host)
		m.role |= MEMBER_ROLE_HOST;
	lobby_hook(WEBHOOK_MEMBER_JOINED, code, &m, restored != NULL ?
	    "reconnected" : NULL);
	return as_host;
}

/* A clientId/token pair: the member it proves, or -1 (invalidToken sent
 * after a fresh identity, and the connection closing). */
static int
lobby_restore(struct conn *conn, struct room *room, const char *cid,
    const char *token, struct room_member *m)
{
	struct lobby_conn	*lc = conn->data;

	if (room_member_check(room, cid, token, m) == 0) {
		snprintf(lc->uid, sizeof(lc->uid), "%s", m->uid);
		snprintf(lc->token, sizeof(lc->token), "%s", m->token);
		return 0;
	}
	return -1;
}

/*
 * A connection without a room code, which waits for createRoom or
 * joinRoom.  A clientId/token pair in its query string restores that
 * identity, whatever room it belongs to, so that a following joinRoom
 * seats the client as itself; a wrong pair is refused as in a room.
 */
static void
lobby_bare_open(struct conn *conn, struct http_req *req)
{
	struct lobby_conn	*lc = conn->data;
	struct room_ref		 ref;
	struct room_member	 m;
	char			 cid[MEMBER_UID_LEN + 2];
	char			 token[MEMBER_TOKEN_LEN + 2];

	if (util_query_get(req->query, "clientId", cid, sizeof(cid)) != 1 ||
	    util_query_get(req->query, "token", token, sizeof(token)) != 1) {
		lobby_identity(conn);
		return;
	}
	if (room_member_find(&dialect_lobby, cid, token, &ref, &m) != 0) {
		lobby_identity(conn);
		lobby_refuse(conn, "invalidToken", "Unknown client id or wrong "
		    "token%s", "");
		return;
	}
	snprintf(lc->uid, sizeof(lc->uid), "%s", m.uid);
	snprintf(lc->token, sizeof(lc->token), "%s", m.token);
	lc->proven = 1;
	lobby_identity(conn);
}

/* The current usage: a connection with a room code in its query. */
static void
lobby_open_room(struct conn *conn, const char *query)
{
	struct room_ref		 ref;
	struct room_member	 m, *restored = NULL;
	struct room		*room;
	char			 code[ROOM_ID_MAX + 1], cid[MEMBER_UID_LEN + 2];
	char			 token[MEMBER_TOKEN_LEN + 2];
	int			 host;

	util_query_get(query, "code", code, sizeof(code));
	host = util_query_get(query, "host", NULL, 0) > 0;
	if (!util_valid_id(code, ROOM_ID_MAX) ||
	    room_find_lock(&dialect_lobby, code, &ref, &room) != 0) {
		lobby_identity(conn);
		lobby_refuse(conn, "noRoomFound", "No room exists with code %s",
		    util_valid_id(code, ROOM_ID_MAX) ? code : "given");
		return;
	}
	if (util_query_get(query, "clientId", cid, sizeof(cid)) == 1 &&
	    util_query_get(query, "token", token, sizeof(token)) == 1) {
		if (lobby_restore(conn, room, cid, token, &m) == -1) {
			room_unlock(room);
			lobby_identity(conn);
			lobby_refuse(conn, "invalidToken", "Unknown client id "
			    "or wrong token%s", "");
			return;
		}
		restored = &m;
	}
	lobby_identity(conn);
	lobby_seat(conn, room, code, host, 0, restored);
	room_unlock(room);
}

/* auth_hook's answer to a connection with a room code. */
static void
lobby_open_checked(struct conn *conn, struct authhook_answer *a,
    void *query)
{
	if (a->allow)
		lobby_open_room(conn, query);
	else {
		lobby_identity(conn);
		lobby_check_refused(conn, a);
	}
}

static void
lobby_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
	struct authhook_query	 q = { &dialect_lobby, "join", NULL, NULL,
				    NULL, 0 };
	struct lobby_conn	*lc;
	char			 code[ROOM_ID_MAX + 1], cid[MEMBER_UID_LEN + 2];
	char			*query;
	int			 ncode, host;

	if ((lc = calloc(1, sizeof(*lc))) == NULL) {
		server_ws_close(conn, 1011, "out of memory");
		return;
	}
	conn->data = lc;
	lobby_fresh(lc);
	server_ws_set_ping(conn, env->conf.lobby_ping_interval);
	ncode = util_query_get(req->query, "code", code, sizeof(code));
	host = util_query_get(req->query, "host", NULL, 0) > 0;
	if (ncode == 0 && !host) {
		lobby_bare_open(conn, req);	/* the future usage: wait */
		return;
	}
	if (ncode != 1 || code[0] == '\0') {
		lobby_identity(conn);
		lobby_refuse(conn, "missingRoomCode", "Missing room code in "
		    "query string%s", "");
		return;
	}
	if (!authhook_enabled(&dialect_lobby) ||
	    !util_valid_id(code, ROOM_ID_MAX)) {
		lobby_open_room(conn, req->query);
		return;
	}
	q.room = code;
	q.host = host;
	q.user = util_query_get(req->query, "clientId", cid, sizeof(cid)) ==
	    1 ? cid : lc->uid;
	if ((query = strdup(req->query)) == NULL ||
	    authhook_ask(conn, &q, lobby_open_checked, query, free) == -1) {
		free(query);
		server_ws_close(conn, 1011, "out of memory");
	}
}

static void
lobby_create(struct conn *conn, struct json_object *msg)
{
	struct lobby_conn	*lc = conn->data;
	struct json_object	*data, *mig, *d, *g;
	struct room_member	 m;
	struct room		*room;
	char			 code[LOBBY_CODE_LEN + 1];

	if (room_create_unique(&dialect_lobby, LOBBY_CODE_CHARS,
	    LOBBY_CODE_LEN, server_limit_addr(conn), code, &room) != 0) {
		server_ws_send_json(conn, lobby_error_msg("serverError",
		    "Could not create a room"));
		return;
	}
	if (json_object_object_get_ex(msg, "data", &data) &&
	    json_object_object_get_ex(data, "migration", &mig) &&
	    json_object_is_type(mig, json_type_boolean))
		room_dset(room, LS_FLAGS, LF_MIGRATE_SET |
		    (json_object_get_boolean(mig) ? LF_MIGRATE : 0));
	if (room_member_add_id(room, lc->uid, MEMBER_ROLE_HOST, lc->uid,
	    lc->token, &m) != 0 || fanout_attach(room, conn, m.mid) != 0) {
		room_delete(room, "could not be set up");
		server_ws_send_json(conn, lobby_error_msg("serverError",
		    "Could not create a room"));
		return;
	}
	room_unlock(room);
	lobby_hook(WEBHOOK_MEMBER_JOINED, code, &m, NULL);
	d = json_object_new_object();
	json_object_object_add(d, "roomCode", json_object_new_string(code));
	g = json_object_new_object();
	json_object_object_add(g, "roomCode", json_object_new_string(code));
	lobby_reply(conn, "roomCreated", d, "createdRoom", g);
}

static void
lobby_join_as(struct conn *conn, struct json_object *msg)
{
	struct lobby_conn	*lc = conn->data;
	struct json_object	*data = NULL, *v, *d, *g;
	struct room_ref		 ref;
	struct room_member	 m, *restored = NULL;
	struct room		*room;
	const char		*code, *cid, *token;
	int			 can_host = 0, rc;

	json_object_object_get_ex(msg, "data", &data);
	code = data != NULL ? json_get_string(data, "roomCode") : NULL;
	if (code == NULL || code[0] == '\0') {
		lobby_refuse(conn, "missingRoomCode", "Missing room code%s",
		    "");
		return;
	}
	if (!util_valid_id(code, ROOM_ID_MAX) ||
	    room_find_lock(&dialect_lobby, code, &ref, &room) != 0) {
		lobby_refuse(conn, "noRoomFound", "No room exists with code %s",
		    util_valid_id(code, ROOM_ID_MAX) ? code : "given");
		return;
	}
	if (json_object_object_get_ex(data, "canHost", &v))
		can_host = json_object_get_boolean(v);
	cid = json_get_string(data, "clientId");
	token = json_get_string(data, "token");
	if (cid != NULL && token != NULL) {
		if (lobby_restore(conn, room, cid, token, &m) == -1) {
			room_unlock(room);
			lobby_fresh(lc);
			lobby_identity(conn);
			lobby_refuse(conn, "invalidToken", "Unknown client id "
			    "or wrong token%s", "");
			return;
		}
		restored = &m;
	} else if (lc->proven && room_member_by_uid(room, lc->uid, &m) ==
	    0)
		restored = &m;	/* proven when the connection opened */
	rc = lobby_seat(conn, room, code, 0, can_host, restored);
	room_unlock(room);
	if (rc == -1)
		return;
	d = json_object_new_object();
	json_object_object_add(d, "clientIsHost", json_object_new_boolean(rc));
	json_object_object_add(d, "reconnected",
	    json_object_new_boolean(restored != NULL));
	g = json_object_new_object();
	json_object_object_add(g, "isHost", json_object_new_boolean(rc));
	lobby_reply(conn, "roomJoined", d, "joinedRoom", g);
}

/* auth_hook's answer to a joinRoom. */
static void
lobby_join_checked(struct conn *conn, struct authhook_answer *a, void *msg)
{
	if (a->allow)
		lobby_join_as(conn, msg);
	else
		lobby_check_refused(conn, a);
}

static void
lobby_msg_free(void *msg)
{
	json_object_put(msg);
}

/* joinRoom: asked of auth_hook first, if the lobby has one. */
static void
lobby_join(struct conn *conn, struct json_object *msg)
{
	struct lobby_conn	*lc = conn->data;
	struct authhook_query	 q = { &dialect_lobby, "join", NULL, NULL,
				    NULL, 0 };
	struct json_object	*data = NULL;

	json_object_object_get_ex(msg, "data", &data);
	q.room = data != NULL ? json_get_string(data, "roomCode") : NULL;
	q.user = data != NULL ? json_get_string(data, "clientId") : NULL;
	if (q.user == NULL)
		q.user = lc->uid;
	if (!authhook_enabled(&dialect_lobby) || q.room == NULL ||
	    !util_valid_id(q.room, ROOM_ID_MAX)) {
		lobby_join_as(conn, msg);
		return;
	}
	if (authhook_ask(conn, &q, lobby_join_checked, json_object_get(msg),
	    lobby_msg_free) == -1) {
		json_object_put(msg);
		server_ws_close(conn, 1011, "out of memory");
	}
}

/* {"type":T,"data":{key:value, ...}} with value taken from src. */
static struct json_object *
lobby_signal(const char *type, const char *key, struct json_object *value,
    const char *client)
{
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, key, json_object_get(value));
	if (client != NULL)
		json_object_object_add(d, "clientId",
		    json_object_new_string(client));
	return lobby_msg(type, d);
}

/*
 * getRoomState: the room as a member sees it.  epoch is the arena's: a
 * client that kept it from before a reconnection and now reads another
 * knows the room and its snapshots were lost and made anew.
 */
static struct json_object *
lobby_room_state(struct room *room, const struct room_member *me)
{
	struct json_object	*d = json_object_new_object();

	json_object_object_add(d, "roomCode",
	    json_object_new_string(room_id(room)));
	json_object_object_add(d, "clientIsHost",
	    json_object_new_boolean((me->role & MEMBER_ROLE_HOST) != 0));
	json_object_object_add(d, "version",
	    json_object_new_int64((int64_t)room_dget(room, LS_VERSION)));
	json_object_object_add(d, "epoch",
	    json_object_new_int64((int64_t)room_epoch(room)));
	return lobby_msg("roomState", d);
}

/* A message from a seated member, being handled in its locked room. */
struct lobby_in {
	struct conn		*conn;
	struct room		*room;
	struct room_member	*me;
	const char		*type;
	struct json_object	*data;	/* its "data", or NULL */
	struct lobby_scan	 s;	/* the room's host and guests */
};

static void
lobby_offer(struct lobby_in *in)
{
	struct json_object	*v = NULL;

	if (!json_object_is_type(in->data, json_type_object) ||
	    in->s.host.mid == 0 || !in->s.host.connected)
		return;
	json_object_object_get_ex(in->data, "offerSignal", &v);
	room_publish_json(in->room, AUD_MEMBER, in->s.host.mid,
	    lobby_signal(in->type, "offerSignal", v, in->me->uid));
	lobby_compact(in->room);
}

static void
lobby_answer(struct lobby_in *in)
{
	struct json_object	*v = NULL;
	struct room_member	 to;
	const char		*cid;

	if (!json_object_is_type(in->data, json_type_object) ||
	    (cid = json_get_string(in->data, "clientId")) == NULL ||
	    room_member_by_uid(in->room, cid, &to) != 0 ||
	    to.mid == in->me->mid)
		return;
	json_object_object_get_ex(in->data, "answerSignal", &v);
	room_publish_json(in->room, AUD_MEMBER, to.mid,
	    lobby_signal(in->type, "answerSignal", v, NULL));
	lobby_compact(in->room);
}

static void
lobby_save(struct lobby_in *in)
{
	struct json_object	*d;
	const char		*text;
	uint64_t		 version;
	size_t			 len;

	text = json_text(in->data, &len);
	if (len > env->conf.lobby_snapshot_max_bytes) {
		server_ws_send_json(in->conn, lobby_error_msg(
		    "snapshotTooLarge", "The snapshot is larger than the "
		    "server keeps"));
		return;
	}
	if (lobby_store(in->room, text, len) != 0) {
		server_ws_send_json(in->conn, lobby_error_msg(
		    "snapshotTooLarge", "The room has no space left"));
		return;
	}
	version = room_dget(in->room, LS_VERSION) + 1;
	room_dset(in->room, LS_VERSION, version);
	d = json_object_new_object();
	json_object_object_add(d, "version",
	    json_object_new_int64((int64_t)version));
	server_ws_send_json(in->conn, lobby_msg("snapshotSaved", d));
}

static void
lobby_get(struct lobby_in *in)
{
	struct json_object	*v, *d;
	uint64_t		 version;

	v = lobby_snapshot(in->room, &version);
	d = json_object_new_object();
	json_object_object_add(d, "version",
	    json_object_new_int64((int64_t)version));
	json_object_object_add(d, "state", v);
	server_ws_send_json(in->conn, lobby_msg("snapshot", d));
}

static void
lobby_state(struct lobby_in *in)
{
	server_ws_send_json(in->conn, lobby_room_state(in->room, in->me));
}

/* The guest asked to take over (becomeHost) is ready: it is the host. */
static void
lobby_ready(struct lobby_in *in)
{
	struct json_object	*d;

	if (room_dget(in->room, LS_CANDIDATE) != in->me->mid)
		return;
	if (in->s.host.mid != 0)
		room_member_set(in->room, in->s.host.mid, 0,
		    in->s.host.authorities);
	room_member_set(in->room, in->me->mid, MEMBER_ROLE_HOST,
	    in->me->authorities);
	room_dset(in->room, LS_HOST_GONE, 0);
	room_dset(in->room, LS_CANDIDATE, 0);
	d = json_object_new_object();
	json_object_object_add(d, "clientId",
	    json_object_new_string(in->me->uid));
	room_publish_json(in->room, AUD_ALL_BUT, in->me->mid,
	    lobby_msg("hostChanged", d));
}

/* Who may send a message, and what handles it.  Anything else, or from
 * someone else, is dropped, as the original server does. */
enum lobby_who { LOBBY_ANY, LOBBY_HOST, LOBBY_GUEST };
static const struct lobby_handler {
	const char	*type;
	enum lobby_who	 who;
	void		(*fn)(struct lobby_in *);
} lobby_handlers[] = {
	{ "guestOfferSignal",	LOBBY_GUEST,	lobby_offer },
	{ "hostAnswerSignal",	LOBBY_HOST,	lobby_answer },
	{ "saveSnapshot",	LOBBY_HOST,	lobby_save },
	{ "getSnapshot",	LOBBY_ANY,	lobby_get },
	{ "getRoomState",	LOBBY_ANY,	lobby_state },
	{ "hostReady",		LOBBY_GUEST,	lobby_ready },
};

static void
lobby_in_room(struct conn *conn, struct room *room, struct room_member *me,
    const char *type, struct json_object *msg)
{
	struct lobby_in			 in = { .conn = conn, .room = room,
					    .me = me, .type = type };
	const struct lobby_handler	*h;
	enum lobby_who			 who;
	size_t				 i;

	who = (me->role & MEMBER_ROLE_HOST) ? LOBBY_HOST : LOBBY_GUEST;
	for (i = 0; i < sizeof(lobby_handlers) / sizeof(lobby_handlers[0]);
	    i++) {
		h = &lobby_handlers[i];
		if (strcmp(type, h->type) != 0 || (h->who != LOBBY_ANY &&
		    h->who != who))
			continue;
		json_object_object_get_ex(msg, "data", &in.data);
		lobby_scan(room, &in.s, 0);
		h->fn(&in);
		return;
	}
}

static void
lobby_ws_message(struct conn *conn, int binary, const char *data,
    size_t len)
{
	struct json_object	*msg = NULL;
	struct room_member	 me;
	struct room		*room;
	const char		*type;
	int			 rc;

	if (binary || json_parse(data, len, &msg) == -1 || msg == NULL ||
	    !json_object_is_type(msg, json_type_object) ||
	    (type = json_get_string(msg, "type")) == NULL) {
		json_object_put(msg);
		return;		/* dropped silently */
	}
	if (conn->room == NULL) {
		if (strcmp(type, "createRoom") == 0)
			lobby_create(conn, msg);
		else if (strcmp(type, "joinRoom") == 0)
			lobby_join(conn, msg);
	} else if ((rc = room_lock(&conn->room->ref, &room)) == 0) {
		if (room_member_by_mid(room, conn->mid, &me) == 0)
			lobby_in_room(conn, room, &me, type, msg);
		room_unlock(room);
	} else if (rc == ROOM_EUNAVAIL)
		fanout_unavailable(conn);
	json_object_put(msg);
}

/* The host's grace period starts: its guests are told. */
static void
lobby_host_gone(struct room *room)
{
	room_dset(room, LS_HOST_GONE, util_now() +
	    (uint64_t)env->conf.lobby_grace);
	room_publish_json(room, AUD_ALL, 0, lobby_msg("hostDisconnected",
	    NULL));
}

static void
lobby_ws_close(struct conn *conn)
{
	struct room_ref		 ref;
	struct lobby_scan	 s;
	struct room		*room;
	struct room_member	 m;
	uint64_t		 mid = conn->mid;
	int			 left;

	if (conn->room == NULL)
		return;
	ref = conn->room->ref;
	left = fanout_detach(conn, 0, NULL);
	if (left < 0 || room_lock(&ref, &room) != 0)
		return;
	if (!server_stopping() && room_member_by_mid(room, mid, &m) == 0)
		lobby_hook(WEBHOOK_MEMBER_LEFT, room_id(room), &m,
		    "disconnected");
	if (room_closing(room) && left == 0) {
		room_delete(room, "closed");
		return;
	}
	lobby_scan(room, &s, 0);
	if (!server_stopping() && s.host.mid != 0 && !s.host.connected &&
	    room_dget(room, LS_HOST_GONE) == 0)
		lobby_host_gone(room);
	room_unlock(room);
}

/* Everyone gone: the room and its snapshot wait for them this long. */
static int
lobby_idle_ttl(void)
{
	return env->conf.lobby_retention;
}

/* A host lost with its worker starts its grace period, as one that left. */
static void
lobby_member_lost(struct room *room, const struct room_member *m)
{
	lobby_hook(WEBHOOK_MEMBER_LEFT, room_id(room), m, "lost");
	if ((m->role & MEMBER_ROLE_HOST) && !room_closing(room) &&
	    room_dget(room, LS_HOST_GONE) == 0)
		lobby_host_gone(room);
}

/*
 * Once a second, on each worker with members here: end a host's grace
 * period by migrating the host to the longest-connected guest or by
 * closing the room.
 */
static void
lobby_tick(const struct room_ref *ref)
{
	struct lobby_scan	 s;
	struct room_member	 cm;
	struct json_object	*d;
	struct room		*room;
	uint64_t		 now = util_now(), gone, cand, version;

	if (room_lock(ref, &room) != 0)
		return;
	lobby_scan(room, &s, 0);
	gone = room_dget(room, LS_HOST_GONE);
	if (room_closing(room) || s.host.connected || gone == 0)
		;
	else if (now >= gone && s.guests > 0) {
		cand = room_dget(room, LS_CANDIDATE);
		if (!lobby_migrates(room)) {
			room_set_closing(room);
			room_publish_json(room, AUD_CLOSE_ALL_BUT, 0,
			    lobby_error_msg("roomClosed", "The host did not "
			    "come back; the room is closed"));
		} else if (cand == 0 || now >= room_dget(room, LS_CAND_UNTIL) ||
		    room_member_by_mid(room, cand, &cm) != 0 ||
		    !cm.connected) {
			lobby_scan(room, &s, cand);
			if (s.oldest.mid != 0) {
				room_dset(room, LS_CANDIDATE, s.oldest.mid);
				room_dset(room, LS_CAND_UNTIL, now +
				    (uint64_t)env->conf.lobby_grace);
				d = json_object_new_object();
				json_object_object_add(d, "snapshot",
				    lobby_snapshot(room, &version));
				room_publish_json(room, AUD_MEMBER,
				    s.oldest.mid, lobby_msg("becomeHost", d));
			}
		}
	}
	room_unlock(room);
}

static void
lobby_http(struct conn *conn, struct http_req *req, const char *sub)
{
	struct json_object	*o;
	struct room		*room;
	char			 code[LOBBY_CODE_LEN + 1];

	if (sub[0] == '\0' || strcmp(sub, "/") == 0) {
		server_http_upgrade_required(conn);
		return;
	}
	if (strcmp(sub, "/rooms") != 0 && strcmp(sub, "/rooms/") != 0) {
		server_http_error(conn, 404, "not_found", "no such path");
		return;
	}
	if (req->method != HTTP_POST) {
		server_http_error(conn, 405, "method_not_allowed", "POST "
		    "/rooms makes a room");
		return;
	}
	if (room_create_unique(&dialect_lobby, LOBBY_CODE_CHARS,
	    LOBBY_CODE_LEN, server_limit_addr(conn), code, &room) != 0) {
		server_http_error(conn, 503, "arena_full", "no room for "
		    "another room");
		return;
	}
	room_unlock(room);
	o = json_object_new_object();
	json_object_object_add(o, "code", json_object_new_string(code));
	server_http_json(conn, 200, o);
}

static int
lobby_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	return sub[0] == '\0' || strcmp(sub, "/") == 0 ? 0 : 404;
}

const struct dialect dialect_lobby = {
	.name = "lobby",
	.id = 2,
	.default_mount = "/lobby",
	.http = lobby_http,
	.ws_accept = lobby_ws_accept,
	.ws_open = lobby_ws_open,
	.ws_message = lobby_ws_message,
	.ws_close = lobby_ws_close,
	.tick = lobby_tick,
	.member_lost = lobby_member_lost,
	.idle_ttl = lobby_idle_ttl,
	.relay = 1,
};
