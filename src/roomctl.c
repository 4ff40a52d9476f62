/*
 * roomctl.c: the admin command.  It sends one line to roomd's admin socket
 * and prints the JSON answer, as tables or (-j) as JSON.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define ROOMCTL_SOCKET	"/var/run/roomd.sock"

static void	usage(FILE *, int) __attribute__((noreturn));

static void
usage(FILE *fp, int status)
{
	fprintf(fp, "usage: roomctl [-hjVv] [-s socket] command [argument ...]\n"
	    "commands: status, rooms, room ID, kick ROOM MEMBER, close ROOM,\n"
	    "          reload, stop, stats, check\n");
	exit(status);
}

static char *
roomctl_ask(const char *path, const char *line)
{
	struct sockaddr_un	 sun;
	char			*buf = NULL, *p;
	size_t			 len = 0, cap = 0;
	ssize_t			 n;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "roomctl: socket path too long\n");
		exit(1);
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "roomctl: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		fprintf(stderr, "roomctl: write: %s\n", strerror(errno));
		exit(1);
	}
	for (;;) {
		if (len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			if ((p = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "roomctl: out of memory\n");
				exit(1);
			}
			buf = p;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL || len == 0) {
		fprintf(stderr, "roomctl: no answer from roomd\n");
		exit(1);
	}
	buf[len] = '\0';
	return buf;
}

static long long
num(struct json_object *o, const char *key)
{
	struct json_object	*v;

	return json_object_object_get_ex(o, key, &v) ?
	    (long long)json_object_get_int64(v) : 0;
}

static const char *
str(struct json_object *o, const char *key)
{
	struct json_object	*v;

	return json_object_object_get_ex(o, key, &v) && v != NULL ?
	    json_object_get_string(v) : "";
}

/* A cluster link's replicas online: "?" until a renewal counted them. */
static const char *
replicas(struct json_object *o)
{
	return *str(o, "replicas") != '\0' ? str(o, "replicas") : "?";
}

/* A cluster link's state: "up" or "DOWN", and whether it is suspect. */
static const char *
link_state(struct json_object *o)
{
	struct json_object	*up, *suspect;
	int			 u, s;

	u = json_object_object_get_ex(o, "up", &up) &&
	    json_object_get_boolean(up);
	s = json_object_object_get_ex(o, "suspect", &suspect) &&
	    json_object_get_boolean(suspect);
	return u ? (s ? "up (suspect)" : "up") : (s ? "DOWN (suspect)" :
	    "DOWN");
}

static void
print_status(struct json_object *o)
{
	struct json_object	*list, *w, *d;
	size_t			 i;

	printf("roomd %s, pid %lld, up %lld s\n", str(o, "version"),
	    num(o, "pid"), num(o, "uptime"));
	printf("rooms %lld, arena %lld of %lld bytes used, lock recoveries "
	    "%lld, epoch %lld\n", num(o, "rooms"), num(o, "arena_bytes_used"),
	    num(o, "arena_bytes_size"), num(o, "lock_recoveries"),
	    num(o, "epoch"));
	if (json_object_object_get_ex(o, "cluster", &d))
		printf("cluster %s, session %s, primary %s, replicas %s, "
		    "lease %lld ms left, lag %lld ms, reconnects %lld, errors "
		    "%lld, fenced %lld, keeper %lld\n", link_state(d),
		    str(d, "session"), str(d, "primary"), replicas(d),
		    num(d, "lease_left_ms"), num(d, "lag_ms"),
		    num(d, "reconnects"), num(d, "errors"), num(d, "fenced"),
		    num(d, "keeper"));
	if (json_object_object_get_ex(o, "cluster", &d) &&
	    json_object_object_get_ex(d, "shards", &list) &&
	    json_object_array_length(list) > 1)
		for (i = 0; i < json_object_array_length(list); i++) {
			w = json_object_array_get_idx(list, i);
			printf("  shard %zu %s, session %s, primary %s, "
			    "replicas %s, lease %lld ms left, lag %lld ms, "
			    "keeper %lld\n", i, link_state(w),
			    str(w, "session"), str(w, "primary"), replicas(w),
			    num(w, "lease_left_ms"), num(w, "lag_ms"),
			    num(w, "keeper"));
		}
	printf("%-6s %-8s %-9s %s\n", "SLOT", "PID", "RESTARTS", "STATE");
	if (json_object_object_get_ex(o, "workers", &list))
		for (i = 0; i < json_object_array_length(list); i++) {
			w = json_object_array_get_idx(list, i);
			printf("%-6lld %-8lld %-9lld %s\n", num(w, "slot"),
			    num(w, "pid"), num(w, "restarts"),
			    json_object_object_get_ex(w, "draining", &d) &&
			    json_object_get_boolean(d) ? "draining" :
			    "serving");
		}
}

static void
print_rooms(struct json_object *o)
{
	struct json_object	*list, *r;
	size_t			 i;

	printf("%-12s %-40s %8s %8s %8s %10s\n", "DIALECT", "ID", "MEMBERS",
	    "CONNS", "LOG", "LOG_BYTES");
	if (json_object_object_get_ex(o, "rooms", &list))
		for (i = 0; i < json_object_array_length(list); i++) {
			r = json_object_array_get_idx(list, i);
			printf("%-12s %-40s %8lld %8lld %8lld %10lld\n",
			    str(r, "dialect"), str(r, "id"), num(r, "members"),
			    num(r, "connections"), num(r, "log"),
			    num(r, "log_bytes"));
		}
}

static void
print_room(struct json_object *o)
{
	struct json_object	*list, *m, *c;
	size_t			 i;

	printf("%s room %s: %lld connections, log %lld records (%lld "
	    "bytes)\n", str(o, "dialect"), str(o, "id"),
	    num(o, "connections"), num(o, "log"), num(o, "log_bytes"));
	printf("%-24s %-36s %-6s %s\n", "NAME", "ID", "ROLE", "CONNECTED");
	if (json_object_object_get_ex(o, "members", &list))
		for (i = 0; i < json_object_array_length(list); i++) {
			m = json_object_array_get_idx(list, i);
			json_object_object_get_ex(m, "connected", &c);
			printf("%-24s %-36s %-6s %s\n", str(m, "name"),
			    str(m, "id"), str(m, "role"),
			    json_object_get_boolean(c) ? "yes" : "no");
		}
}

/* "check": 0 if the arena is sound, else 1. */
static int
print_check(struct json_object *o, int json)
{
	struct json_object	*v;
	int			 ok;

	ok = json_object_object_get_ex(o, "ok", &v) &&
	    json_object_get_boolean(v);
	if (!json && ok)
		printf("arena OK: %lld rooms, %lld of %lld bytes used, epoch "
		    "%lld\n", num(o, "rooms"), num(o, "arena_bytes_used"),
		    num(o, "arena_bytes_size"), num(o, "epoch"));
	else if (!json)
		printf("arena fault: %s\n", str(o, "fault"));
	return ok ? 0 : 1;
}

static void
print_stats(struct json_object *o)
{
	json_object_object_foreach(o, key, val) {
		if (!json_object_is_type(val, json_type_object)) {
			printf("%s %lld\n", key,
			    (long long)json_object_get_int64(val));
			continue;
		}
		json_object_object_foreach(val, dialect, v)
			printf("%s{dialect=\"%s\"} %lld\n", key, dialect,
			    (long long)json_object_get_int64(v));
	}
}

int
main(int argc, char *argv[])
{
	struct json_object	*o, *err;
	const char		*sock = ROOMCTL_SOCKET;
	char			 line[1024], *answer;
	size_t			 len = 0;
	int			 ch, json = 0, i, rc = 0;

	while ((ch = getopt(argc, argv, "hjs:Vv")) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout, 0);
		case 'j':
			json = 1;
			break;
		case 's':
			sock = optarg;
			break;
		case 'V':
		case 'v':
			printf("roomctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr, 2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 3)
		usage(stderr, 2);
	line[0] = '\0';
	for (i = 0; i < argc; i++) {
		if (strlen(argv[i]) + len + 2 >= sizeof(line) ||
		    strpbrk(argv[i], " \t\r\n") != NULL) {
			fprintf(stderr, "roomctl: bad argument\n");
			return 2;
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s",
		    i ? " " : "", argv[i]);
	}
	snprintf(line + len, sizeof(line) - len, "\n");
	answer = roomctl_ask(sock, line);
	if ((o = json_tokener_parse(answer)) == NULL) {
		fprintf(stderr, "roomctl: unreadable answer from roomd\n");
		free(answer);
		return 1;
	}
	free(answer);
	if (json_object_object_get_ex(o, "error", &err)) {
		if (json)
			printf("%s\n", json_object_to_json_string_ext(o,
			    JSON_C_TO_STRING_PRETTY));
		fprintf(stderr, "roomctl: %s\n", json_object_get_string(err));
		json_object_put(o);
		return 1;
	}
	if (strcmp(argv[0], "check") == 0)
		rc = print_check(o, json);
	if (json)
		printf("%s\n", json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PRETTY));
	else if (strcmp(argv[0], "check") == 0)
		;	/* printed above */
	else if (strcmp(argv[0], "status") == 0)
		print_status(o);
	else if (strcmp(argv[0], "rooms") == 0)
		print_rooms(o);
	else if (strcmp(argv[0], "room") == 0)
		print_room(o);
	else if (strcmp(argv[0], "stats") == 0)
		print_stats(o);
	else
		printf("ok\n");
	json_object_put(o);
	return rc;
}
