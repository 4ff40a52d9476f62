/*
 * authhook.c: join checks.  Before a dialect lets someone in (a canvas
 * join, a chat or classroom handshake, a lobby or screenshare room join),
 * it may ask the application: roomd POSTs who, what and where to the
 * dialect's auth_hook URL and holds the connection, reading nothing more
 * from it, until the answer comes or auth_hook_timeout passes.  The
 * dialect then goes on in a callback: it allows, refuses with its own
 * error, or allows with the changes the answer asks for (a display name,
 * classroom authorities).  An answer that is no answer (no connection, a
 * timeout, a status other than 200, a body that is not the JSON
 * roomd-protocols(7) describes, a redirect, which is never followed)
 * counts as a failure, and auth_hook_on_failure decides: refuse (the
 * default) or allow.
 *
 * The connection may close while its check is out: the check then only
 * forgets it (server_close calls the hold's cancel), and the answer,
 * when it comes, frees what the dialect left with it.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "roomd.h"

#define AUTHHOOK_REFUSED	"refused by the application"
#define AUTHHOOK_UNCHECKED	"the join could not be checked"

struct ah_check {
	struct conn		*conn;		/* NULL once it closed */
	authhook_cb		 cb;
	void			*arg;
	void			(*free_arg)(void *);
	char			 url[ROOMD_URL_MAX];
	char			 dialect[32];
};

static struct log_limit	 ah_log = { "auth_hook", 0, 0 };

/* Does dialect d check its joins? */
int
authhook_enabled(const struct dialect *d)
{
	return d != NULL && d->id < ROOMD_MAX_DIALECTS &&
	    env->conf.auth_hooks[d->id][0] != '\0';
}

/* The connection closed while its check was out. */
static void
ah_cancel(void *arg)
{
	struct ah_check	*c = arg;

	c->conn = NULL;
}

/* The client's address as text ("" if unknown); IPv4-mapped unwrapped. */
static void
ah_address(struct conn *conn, char *buf, size_t len)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t		 sl = sizeof(ss);
	int			 fd = conn_fd(conn);

	buf[0] = '\0';
	if (fd == -1 || getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
		    (socklen_t)len);
	else if (ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
		    (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len);
}

/* The question, as roomd-protocols(7) shows it. */
static struct json_object *
ah_request(struct conn *conn, const struct authhook_query *q)
{
	struct json_object	*o = json_object_new_object();
	char			 addr[INET6_ADDRSTRLEN];

	ah_address(conn, addr, sizeof(addr));
	json_object_object_add(o, "dialect",
	    json_object_new_string(q->dialect->name));
	json_object_object_add(o, "action", json_object_new_string(q->action));
	json_object_object_add(o, "room", q->room != NULL ?
	    json_object_new_string(q->room) : NULL);
	json_object_object_add(o, "name", q->name != NULL ?
	    json_object_new_string(q->name) : NULL);
	json_object_object_add(o, "user", q->user != NULL ?
	    json_object_new_string(q->user) : NULL);
	json_object_object_add(o, "host", json_object_new_boolean(q->host));
	json_object_object_add(o, "address", json_object_new_string(addr));
	json_object_object_add(o, "time",
	    json_object_new_int64((int64_t)time(NULL)));
	return o;
}

/*
 * Read an answer into a: 0, or -1 with why (a failure).  It must be a
 * 200 with a JSON object whose "allow" is a boolean; "reason" and "name",
 * when present, are strings.
 */
static int
ah_parse(int status, const char *body, size_t len, struct json_object **o,
    struct authhook_answer *a, char *why, size_t whylen)
{
	struct json_object	*v;

	if (status != 200) {
		if (status == 0)
			snprintf(why, whylen, "%s", fetch_error());
		else
			snprintf(why, whylen, "status %d", status);
		return -1;
	}
	if (json_parse(body, len, o) == -1 || *o == NULL ||
	    !json_object_is_type(*o, json_type_object) ||
	    !json_object_object_get_ex(*o, "allow", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		snprintf(why, whylen, "the answer is not {\"allow\": boolean}");
		return -1;
	}
	a->allow = json_object_get_boolean(v);
	if ((json_object_object_get_ex(*o, "reason", &v) && v != NULL &&
	    !json_object_is_type(v, json_type_string)) ||
	    (json_object_object_get_ex(*o, "name", &v) && v != NULL &&
	    !json_object_is_type(v, json_type_string))) {
		snprintf(why, whylen, "reason and name must be strings");
		return -1;
	}
	a->reason = json_get_string(*o, "reason");
	a->name = json_get_string(*o, "name");
	a->answer = *o;
	return 0;
}

/*
 * Whether the dialect can take what an allowing answer asks for (a name,
 * authorities): an answer it cannot take is a failure, which
 * auth_hook_on_failure decides (its changes are then dropped).
 */
void
authhook_validate(struct authhook_answer *a, int valid)
{
	if (valid || a->failed || !a->allow)
		return;
	a->failed = 1;
	a->name = NULL;
	a->allow = env->conf.auth_hook_allow_on_failure;
	a->reason = AUTHHOOK_UNCHECKED;
	stats_add(STAT_AUTH_FAILED, 1);
	log_limited(&ah_log, "the answer asks for what roomd cannot do: %s",
	    a->allow ? "allowed (auth_hook_on_failure allow)" : "refused");
}

/* Let the held connection go on: read again, and what it sent meanwhile. */
static void
ah_resume(struct conn *conn, struct ah_check *c)
{
	if (!conn->held || conn->hold_arg != c)
		return;		/* the callback held it again, or closed it */
	if (conn->state == CONN_HTTP)
		server_http_resume(conn);
	else
		server_ws_resume(conn);
}

/* The answer, or the failure: the dialect's callback decides. */
static void
ah_done(int status, const char *body, size_t len, void *arg)
{
	struct ah_check		*c = arg;
	struct authhook_answer	 a;
	struct json_object	*o = NULL;
	struct conn		*conn = c->conn;
	char			 why[160];

	memset(&a, 0, sizeof(a));
	if (ah_parse(status, body, len, &o, &a, why, sizeof(why)) == -1) {
		memset(&a, 0, sizeof(a));
		a.failed = 1;
		a.allow = env->conf.auth_hook_allow_on_failure;
		stats_add(STAT_AUTH_FAILED, 1);
		log_limited(&ah_log, "%s (%s): %s: %s", c->url, c->dialect, why,
		    a.allow ? "allowed (auth_hook_on_failure allow)" :
		    "refused");
	} else if (!a.allow)
		stats_add(STAT_AUTH_REFUSED, 1);
	if (!a.allow && a.reason == NULL)
		a.reason = a.failed ? AUTHHOOK_UNCHECKED : AUTHHOOK_REFUSED;
	/* A connection closed meanwhile is gone for us (ah_cancel); one
	 * the callback closes stays in memory until the loop's flush. */
	if (conn != NULL && !conn->closed) {
		c->cb(conn, &a, c->arg);
		ah_resume(conn, c);
	}
	json_object_put(o);
	if (c->free_arg != NULL)
		c->free_arg(c->arg);
	free(c);
}

/* A request that could not even start fails on the next turn of the
 * loop, as if it had been sent: the dialect always hears later. */
static void
ah_fail_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ah_done(0, "", 0, arg);
}

/*
 * Ask the dialect's auth_hook about q.  Returns 0 when the dialect has
 * none (the caller goes on now), or 1: conn is held, and cb(conn, answer,
 * arg) runs later unless conn closes first; free_arg(arg) runs after
 * either.  -1 only without memory.
 */
int
authhook_ask(struct conn *conn, const struct authhook_query *q,
    authhook_cb cb, void *arg, void (*free_arg)(void *))
{
	const struct dialect	*d = q->dialect;
	struct json_object	*o;
	struct ah_check		*c;
	const char		*text;
	char			 ts[24], sig[80];
	const char		*headers[] = { "X-Roomd-Timestamp", ts,
				    "X-Roomd-Signature", sig, NULL };
	size_t			 len;

	if (!authhook_enabled(d))
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->conn = conn;
	c->cb = cb;
	c->arg = arg;
	c->free_arg = free_arg;
	snprintf(c->url, sizeof(c->url), "%s", env->conf.auth_hooks[d->id]);
	snprintf(c->dialect, sizeof(c->dialect), "%s", d->name);
	stats_add(STAT_AUTH_CHECKS, 1);
	o = ah_request(conn, q);
	text = json_text(o, &len);
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (env->conf.webhook_secret[0] == '\0' ||
	    webhook_sign(env->conf.webhook_secret, ts, text, len, sig,
	    sizeof(sig)) == -1)
		headers[2] = NULL;	/* unsigned */
	if (conn->state == CONN_HTTP)
		server_http_hold(conn, ah_cancel, c);
	else
		server_ws_hold(conn, ah_cancel, c);
	if (fetch_json(c->url, text, len, headers, env->conf.auth_hook_timeout,
	    ah_done, c) == -1 && event_base_once(server_base(), -1,
	    EV_TIMEOUT, ah_fail_later, c, NULL) == -1)
		fatalx("%s: event_base_once", __func__);
	json_object_put(o);
	return 1;
}

/* A handshake held for its check (chat, classroom): upgrade it, or refuse
 * it, 403 for a backend's no, 503 for a check that failed. */
void
authhook_handshake(struct conn *conn, const struct authhook_answer *a)
{
	if (a->allow)
		server_http_upgrade(conn);
	else
		server_http_error(conn, a->failed ? 503 : 403, a->failed ?
		    "unavailable" : "forbidden", a->reason);
}
