/*
 * control.c: the master's admin socket (roomctl's other end) and its
 * Prometheus metrics endpoint.
 *
 * Both are served by the master, one short request at a time, so the
 * public listeners stay the workers' alone and the metrics are off them.
 * The admin socket takes one line ("rooms", "room ID", "kick ROOM MEMBER",
 * "check", ...) and answers one JSON object; who may use it is decided by the
 * socket's file mode.  Rooms are read and changed through the room engine,
 * which rings the workers' doorbells as it does for any worker.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "roomd.h"

#define CONTROL_LINE_MAX	1024
#define CONTROL_TIMEOUT_MS	1000
#define CONTROL_ROOMS_MAX	100000

static int	control_fd = -1, metrics_fd = -1;

int
control_open(void)
{
	struct roomd_config	*c = &env->conf;
	struct sockaddr_un	 sun;
	struct listen_addr	 la;
	struct roomd_config	 tmp;
	char			 err[256];
	mode_t			 old;
	int			 on = 1;

	if (c->control_socket[0] != '\0') {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		    c->control_socket);
		unlink(c->control_socket);
		old = umask(0117);	/* 0660: the owner and its group */
		if ((control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1 || bind(control_fd,
		    (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
		    listen(control_fd, 16) == -1) {
			log_warn("control socket %s", c->control_socket);
			if (control_fd != -1)
				close(control_fd);
			control_fd = -1;	/* roomd runs without it */
		}
		umask(old);
	}
	if (c->metrics_listen[0] != '\0') {
		memset(&tmp, 0, sizeof(tmp));
		if (config_listen(&tmp, c->metrics_listen, err, sizeof(err))
		    == -1) {
			log_warnx("metrics_listen: %s", err);
			return -1;
		}
		la = tmp.listens[0];
		if ((metrics_fd = socket(la.ss.ss_family, SOCK_STREAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
		    setsockopt(metrics_fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1 || bind(metrics_fd,
		    (struct sockaddr *)&la.ss, la.sslen) == -1 ||
		    listen(metrics_fd, 16) == -1) {
			log_warn("metrics on %s", c->metrics_listen);
			return -1;
		}
	}
	return 0;
}

void
control_fds(int *control, int *metrics)
{
	*control = control_fd;
	*metrics = metrics_fd;
}

void
control_close(void)
{
	if (control_fd != -1) {
		close(control_fd);
		unlink(env->conf.control_socket);
	}
	if (metrics_fd != -1)
		close(metrics_fd);
	control_fd = metrics_fd = -1;
}

static uint64_t
control_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (control_now_ms), at least 0. */
static int
control_left(uint64_t deadline)
{
	uint64_t	 now = control_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/*
 * Read until a newline or a blank line (HTTP), bounded in size and in
 * time: CONTROL_TIMEOUT_MS for the whole, however slowly the bytes come,
 * since the master serves nothing else meanwhile (/healthz included).
 */
static ssize_t
control_read(int fd, char *buf, size_t len, const char *end)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	uint64_t	 deadline = control_now_ms() + CONTROL_TIMEOUT_MS;
	size_t		 have = 0;
	ssize_t		 n;

	while (have + 1 < len) {
		if (poll(&pfd, 1, control_left(deadline)) != 1)
			return -1;
		if ((n = read(fd, buf + have, len - 1 - have)) <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, end) != NULL)
			break;
	}
	buf[have] = '\0';
	return (ssize_t)have;
}

/* Write it all, or as much as a reader takes in CONTROL_TIMEOUT_MS. */
static void
control_write(int fd, const char *text, size_t len)
{
	struct pollfd	 pfd = { fd, POLLOUT, 0 };
	uint64_t	 deadline = control_now_ms() + CONTROL_TIMEOUT_MS;
	ssize_t		 n;

	while (len > 0 && poll(&pfd, 1, control_left(deadline)) == 1) {
		if ((n = write(fd, text, len)) <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

/* The counters, as one table for the JSON and the Prometheus answers. */
struct metric {
	const char	*name;
	const char	*help;
	int		 gauge;
	int		 dialect;	/* a per-dialect row: STAT_D_*; else -1 */
	uint64_t	 value;
};

/* Cluster mode: 9 rows. */
static size_t
control_cluster_metrics(struct metric *m)
{
	struct cluster_status	 st;
	size_t			 n = 0;
	int			 i, down, up = cluster_shards_up(&down);
	int			 fewest = -1;

	for (i = 0; i < cluster_shards(); i++) {
		cluster_status(i, &st);
		if (st.replicas >= 0 && (fewest < 0 || st.replicas < fewest))
			fewest = st.replicas;
	}
	cluster_status(0, &st);		/* the counters are the host's */
	m[n++] = (struct metric){ "cluster_up", "1 while the host holds its "
	    "lease on every shard in Redis.", 1, -1,
	    (uint64_t)(up == cluster_shards()) };
	m[n++] = (struct metric){ "cluster_shards_up", "Shards (Redis "
	    "primaries) on which the host holds its lease.", 1, -1,
	    (uint64_t)up };
	m[n++] = (struct metric){ "cluster_reconnects_total", "Links to Redis "
	    "made again.", 0, -1, st.reconnects };
	m[n++] = (struct metric){ "cluster_errors_total", "Redis calls that "
	    "failed or were refused.", 0, -1, st.errors };
	m[n++] = (struct metric){ "cluster_commits_total", "Room transactions "
	    "committed to Redis by this host.", 0, -1, st.commits };
	m[n++] = (struct metric){ "cluster_applied_total", "Other hosts' "
	    "transactions applied to this host's mirrors.", 0, -1,
	    st.applied };
	m[n++] = (struct metric){ "cluster_catch_ups_total", "Mirrors filled "
	    "from the log after a missed message, or made again.", 0, -1,
	    st.gaps };
	m[n++] = (struct metric){ "cluster_members_lost_total", "Members of "
	    "dead hosts handed to their dialect.", 0, -1, st.reaped };
	m[n++] = (struct metric){ "cluster_replicas_online", "Replicas "
	    "online of the primary with the fewest, at the last lease "
	    "renewal (0 until one is counted).", 1, -1,
	    (uint64_t)(fewest > 0 ? fewest : 0) };
	return n;
}

static size_t
control_metrics(struct metric *m, size_t max)
{
	static const struct metric base[] = {
		{ "connections_total", "Connections accepted.", 0, -1, 0 },
		{ "connections_open", "Connections open now.", 1, -1, 0 },
		{ "http_requests_total", "HTTP requests handled.", 0, -1, 0 },
		{ "bytes_in_total", "Bytes read from clients.", 0, -1, 0 },
		{ "bytes_out_total", "Bytes queued to clients.", 0, -1, 0 },
		{ "worker_restarts_total", "Workers forked again after dying.",
		    0, -1, 0 },
		{ "doorbells_total", "Doorbells rung between workers.", 0, -1,
		    0 },
		/* Webhooks and join checks (webhook.c, authhook.c) */
		{ "webhooks_sent_total", "Webhook events delivered (2xx).", 0,
		    -1, 0 },
		{ "webhooks_retried_total", "Webhook attempts failed and "
		    "retried later.", 0, -1, 0 },
		{ "webhooks_dropped_total", "Webhook events given up: queue "
		    "full, retries spent, or the worker stopped.", 0, -1, 0 },
		{ "auth_checks_total", "Join checks asked of auth_hook.", 0,
		    -1, 0 },
		{ "auth_checks_refused_total", "Joins the backend refused.", 0,
		    -1, 0 },
		{ "auth_checks_failed_total", "Join checks without a valid "
		    "answer, decided by auth_hook_on_failure.", 0, -1, 0 },
	};
	static const struct metric per[] = {
		{ "websockets_open", "WebSockets open now.", 1,
		    STAT_D_WEBSOCKETS_OPEN, 0 },
		{ "messages_in_total", "WebSocket messages received.", 0,
		    STAT_D_MESSAGES_IN, 0 },
		{ "messages_out_total", "WebSocket messages queued to clients.",
		    0, STAT_D_MESSAGES_OUT, 0 },
		{ "log_appends_total", "Op log records appended.", 0,
		    STAT_D_APPENDS, 0 },
	};
	uint64_t		 rooms, used, size, recoveries;
	size_t			 n = 0, i;

	for (i = 0; i < STAT_NCOUNTERS && n < max; i++) {
		m[n] = base[i];
		m[n++].value = stats_get((enum stats_counter)i);
	}
	room_usage(&rooms, &used, &size, &recoveries);
	if (n + 4 <= max) {
		m[n++] = (struct metric){ "rooms", "Rooms in the arena.", 1, -1,
		    rooms };
		m[n++] = (struct metric){ "arena_bytes_used", "Arena bytes in "
		    "use.", 1, -1, used };
		m[n++] = (struct metric){ "arena_bytes_size", "Arena size.", 1,
		    -1, size };
		m[n++] = (struct metric){ "lock_recoveries_total", "Locks "
		    "repaired after their owner died.", 0, -1, recoveries };
	}
	if (cluster_enabled() && n + 9 <= max)
		n += control_cluster_metrics(m + n);
	for (i = 0; i < STAT_D_NCOUNTERS && n < max; i++)
		m[n++] = per[i];
	return n;
}

static struct json_object *
control_stats(void)
{
	struct metric		 m[48];
	struct json_object	*o = json_object_new_object(), *d;
	const struct dialect	*dl;
	size_t			 n, i, k;

	n = control_metrics(m, 48);
	for (i = 0; i < n; i++) {
		if (m[i].dialect < 0) {
			json_object_object_add(o, m[i].name,
			    json_object_new_int64((int64_t)m[i].value));
			continue;
		}
		d = json_object_new_object();
		for (k = 0; (dl = dialect_at(k)) != NULL; k++)
			json_object_object_add(d, dl->name,
			    json_object_new_int64((int64_t)stats_dget(dl->id,
			    (enum stats_dialect_counter)m[i].dialect)));
		json_object_object_add(o, m[i].name, d);
	}
	return o;
}

/* One HTTP answer on the metrics endpoint, which then closes. */
static void
metrics_answer(int fd, int status, const char *type, const char *body,
    size_t len)
{
	char	 head[256];

	snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n", status, status == 200 ? "OK" :
	    status == 404 ? "Not Found" : "Service Unavailable", type, len);
	control_write(fd, head, strlen(head));
	control_write(fd, body, len);
}

/* GET /metrics: the counters in Prometheus's text format. */
static void
metrics_prometheus(int fd)
{
	struct metric		 m[48];
	const struct dialect	*dl;
	char			*p = NULL;
	size_t			 len = 0, n, i, k;
	FILE			*fp;

	if ((fp = open_memstream(&p, &len)) == NULL)
		return;
	n = control_metrics(m, 48);
	for (i = 0; i < n; i++) {
		fprintf(fp, "# HELP roomd_%s %s\n# TYPE roomd_%s %s\n",
		    m[i].name, m[i].help, m[i].name, m[i].gauge ? "gauge" :
		    "counter");
		if (m[i].dialect < 0) {
			fprintf(fp, "roomd_%s %llu\n", m[i].name,
			    (unsigned long long)m[i].value);
			continue;
		}
		for (k = 0; (dl = dialect_at(k)) != NULL; k++)
			fprintf(fp, "roomd_%s{dialect=\"%s\"} %llu\n",
			    m[i].name, dl->name, (unsigned long long)stats_dget(
			    dl->id, (enum stats_dialect_counter)m[i].dialect));
	}
	fclose(fp);
	metrics_answer(fd, 200, "text/plain; version=0.0.4", p, len);
	free(p);
}

/*
 * GET /healthz: the master is alive, since it answers.  GET /readyz: 200
 * if every worker serves, the arena walk passed and the cluster link is
 * up (health.c), else 503; a one-line reason either way.
 */
static void
metrics_health(int fd, int ready, const struct worker_info *w)
{
	char	 why[300], line[320];
	int	 ok = 1;

	if (ready)
		ok = health_ready(w, why, sizeof(why));
	snprintf(line, sizeof(line), "%s\n", ok ? "ok" : why);
	metrics_answer(fd, ok ? 200 : 503, "text/plain", line, strlen(line));
}

void
metrics_accept(int lfd, const struct worker_info *w)
{
	static const char nf[] = "not found\n";
	char		 req[2048], *path, *end;
	int		 fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	if (control_read(fd, req, sizeof(req), "\r\n\r\n") <= 0) {
		close(fd);
		return;
	}
	/* "GET /path?query HTTP/1.1": the path alone. */
	if ((path = strchr(req, ' ')) != NULL &&
	    (end = strpbrk(++path, " ?\r\n")) != NULL)
		*end = '\0';
	if (path == NULL || end == NULL || strncmp(req, "GET ", 4) != 0 ||
	    (strcmp(path, "/metrics") != 0 && strcmp(path, "/healthz") != 0 &&
	    strcmp(path, "/readyz") != 0))
		metrics_answer(fd, 404, "text/plain", nf, sizeof(nf) - 1);
	else if (strcmp(path, "/metrics") == 0)
		metrics_prometheus(fd);
	else
		metrics_health(fd, strcmp(path, "/readyz") == 0, w);
	close(fd);
}

/* A room named "ID" or "dialect:ID"; ROOM_EEXIST when ID is ambiguous. */
static int
control_find(const char *name, struct room_ref *ref)
{
	const struct dialect	*d;
	struct room_ref		 r;
	const char		*colon = strchr(name, ':');
	char			 dname[32];
	size_t			 i;
	int			 found = 0;

	if (colon != NULL && (size_t)(colon - name) < sizeof(dname)) {
		snprintf(dname, sizeof(dname), "%.*s", (int)(colon - name),
		    name);
		if ((d = dialect_find(dname)) != NULL)
			return room_find(d, colon + 1, ref);
	}
	for (i = 0; (d = dialect_at(i)) != NULL; i++)
		if (room_find(d, name, &r) == 0) {
			*ref = r;
			found++;
		}
	return found == 1 ? 0 : found == 0 ? ROOM_ENOENT : ROOM_EEXIST;
}

static struct json_object *
control_error(const char *fmt, const char *arg)
{
	struct json_object	*o = json_object_new_object();
	char			 text[256];

	snprintf(text, sizeof(text), fmt, arg);
	json_object_object_add(o, "error", json_object_new_string(text));
	return o;
}

static struct json_object *
control_rooms(void)
{
	struct room_ref		*refs;
	struct room		*room;
	struct json_object	*o = json_object_new_object(), *list;
	size_t			 i, n;

	list = json_object_new_array();
	if ((refs = calloc(CONTROL_ROOMS_MAX, sizeof(*refs))) != NULL) {
		n = room_list(NULL, refs, CONTROL_ROOMS_MAX);
		for (i = 0; i < n; i++)
			if (room_lock(&refs[i], &room) == 0) {
				json_object_array_add(list,
				    api_room_json(room, 0));
				room_unlock(room);
			}
		free(refs);
	}
	json_object_object_add(o, "rooms", list);
	return o;
}

/* Kick a member by name or id: its connections on every worker close. */
static struct json_object *
control_kick(struct room *room, const char *name, const char *who)
{
	struct room_member	 m;

	if (room_member_by_name(room, who, &m) != 0 &&
	    room_member_by_uid(room, who, &m) != 0) {
		room_unlock(room);
		return control_error("no member %s", who);
	}
	room_kick(room, m.mid);
	room_unlock(room);
	log_info("roomctl: kicked %s from room %s", who, name);
	return NULL;
}

static struct json_object *
control_room(const char *name, const char *verb, const char *who)
{
	struct room_ref		 ref;
	struct room		*room;
	struct json_object	*o;
	int			 rc;

	if ((rc = control_find(name, &ref)) != 0)
		return control_error(rc == ROOM_EEXIST ? "room %s is in more "
		    "than one dialect: say dialect:id" : "no room %s", name);
	if (room_lock(&ref, &room) != 0)
		return control_error("no room %s", name);
	if (strcmp(verb, "room") == 0) {
		o = api_room_json(room, 1);
		room_unlock(room);
		return o;
	}
	if (strcmp(verb, "close") == 0) {
		room_delete(room, "closed by the administrator");
		log_info("roomctl: closed room %s", name);
	} else if ((o = control_kick(room, name, who)) != NULL)
		return o;
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

/* One shard's link, for status. */
static struct json_object *
control_shard(int shard, struct cluster_status *st)
{
	struct json_object	*o = json_object_new_object();

	cluster_status(shard, st);
	json_object_object_add(o, "up", json_object_new_boolean(st->up));
	json_object_object_add(o, "suspect", json_object_new_boolean(
	    st->suspect));
	json_object_object_add(o, "session", json_object_new_string(
	    st->session));
	json_object_object_add(o, "primary", json_object_new_string(
	    st->primary));
	json_object_object_add(o, "lease_left_ms", json_object_new_int64(
	    st->lease_left_ms));
	json_object_object_add(o, "lag_ms", json_object_new_int64(
	    st->lag_ms));
	json_object_object_add(o, "replicas", st->replicas < 0 ? NULL :
	    json_object_new_int(st->replicas));
	json_object_object_add(o, "keeper", json_object_new_int(
	    (int)st->keeper));
	return o;
}

/* The links to Redis, for status: shard 0's fields (and every shard's
 * in "shards"), "up" only while every shard's lease holds. */
static struct json_object *
control_cluster(void)
{
	struct json_object	*o, *list = json_object_new_array();
	struct cluster_status	 st;
	int			 i, down;

	for (i = 0; i < cluster_shards(); i++)
		json_object_array_add(list, control_shard(i, &st));
	o = control_shard(0, &st);	/* st: shard 0 and the counters */
	json_object_object_add(o, "up", json_object_new_boolean(
	    cluster_shards_up(&down) == cluster_shards()));
	json_object_object_add(o, "reconnects", json_object_new_int64(
	    (int64_t)st.reconnects));
	json_object_object_add(o, "errors", json_object_new_int64(
	    (int64_t)st.errors));
	json_object_object_add(o, "fenced", json_object_new_int64(
	    (int64_t)st.fenced));
	json_object_object_add(o, "shards", list);
	return o;
}

/* What status and check both say of the arena. */
static void
control_arena_fields(struct json_object *o)
{
	uint64_t	 rooms, used, size, recoveries;

	room_usage(&rooms, &used, &size, &recoveries);
	json_object_object_add(o, "rooms", json_object_new_int64(
	    (int64_t)rooms));
	json_object_object_add(o, "arena_bytes_used",
	    json_object_new_int64((int64_t)used));
	json_object_object_add(o, "arena_bytes_size",
	    json_object_new_int64((int64_t)size));
	json_object_object_add(o, "epoch", json_object_new_int64(
	    (int64_t)room_epoch(NULL)));
}

static struct json_object *
control_status(const struct worker_info *w, time_t started)
{
	struct json_object	*o = json_object_new_object(), *list, *x;
	uint64_t		 rooms, used, size, recoveries;
	int			 i;

	json_object_object_add(o, "version", json_object_new_string(
	    PACKAGE_VERSION));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "uptime", json_object_new_int64(
	    (int64_t)(time(NULL) - started)));
	list = json_object_new_array();
	for (i = 0; i < ROOMD_MAX_WORKERS; i++) {
		if (w[i].state == WORKER_FREE)
			continue;
		x = json_object_new_object();
		json_object_object_add(x, "slot", json_object_new_int(i));
		json_object_object_add(x, "pid", json_object_new_int(w[i].pid));
		json_object_object_add(x, "restarts",
		    json_object_new_int((int)w[i].restarts));
		json_object_object_add(x, "draining",
		    json_object_new_boolean(w[i].state == WORKER_DRAINING));
		json_object_array_add(list, x);
	}
	json_object_object_add(o, "workers", list);
	control_arena_fields(o);
	room_usage(&rooms, &used, &size, &recoveries);
	json_object_object_add(o, "lock_recoveries", json_object_new_int64(
	    (int64_t)recoveries));
	if (cluster_enabled())
		json_object_object_add(o, "cluster", control_cluster());
	return o;
}

/*
 * Walk the whole arena while the workers run.  Totals (rooms, bytes) that
 * the workers change between the checker's walks are not compared: that
 * takes a quiet arena, which the master checks when it reattaches.
 */
static struct json_object *
control_check(void)
{
	struct json_object	*o = json_object_new_object();
	char			 err[512];
	int			 ok;

	ok = room_check(err, sizeof(err)) == 0;
	if (!ok)
		log_warnx("roomctl check: %s", err);
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (!ok)
		json_object_object_add(o, "fault", json_object_new_string(err));
	control_arena_fields(o);
	return o;
}

void
control_accept(int lfd, const struct worker_info *w, time_t started,
    int *stop, int *reload)
{
	struct json_object	*o;
	char			 line[CONTROL_LINE_MAX], *argv[4], *p;
	const char		*text;
	size_t			 len;
	int			 fd, argc = 0;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	if (control_read(fd, line, sizeof(line), "\n") <= 0) {
		close(fd);
		return;
	}
	for (p = strtok(line, " \t\r\n"); p != NULL && argc < 4;
	    p = strtok(NULL, " \t\r\n"))
		argv[argc++] = p;
	if (argc == 1 && strcmp(argv[0], "status") == 0)
		o = control_status(w, started);
	else if (argc == 1 && strcmp(argv[0], "rooms") == 0)
		o = control_rooms();
	else if (argc == 1 && strcmp(argv[0], "stats") == 0)
		o = control_stats();
	else if (argc == 1 && strcmp(argv[0], "check") == 0)
		o = control_check();
	else if (argc == 2 && (strcmp(argv[0], "room") == 0 ||
	    strcmp(argv[0], "close") == 0))
		o = control_room(argv[1], argv[0], NULL);
	else if (argc == 3 && strcmp(argv[0], "kick") == 0)
		o = control_room(argv[1], argv[0], argv[2]);
	else if (argc == 1 && (strcmp(argv[0], "reload") == 0 ||
	    strcmp(argv[0], "stop") == 0)) {
		if (argv[0][0] == 'r')
			*reload = 1;
		else
			*stop = 1;
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(1));
	} else
		o = control_error("unknown command: %s; try status, rooms, "
		    "room ID, kick ROOM MEMBER, close ROOM, reload, stop, stats, "
		    "check",
		    argc > 0 ? argv[0] : "");
	text = json_text(o, &len);
	control_write(fd, text, len);
	control_write(fd, "\n", 1);
	json_object_put(o);
	close(fd);
}
