/*
 * config.c: roomd.conf(5).  One setting per line, "keyword value", with
 * "#" comments; an error names the file, the line and what is wrong.  The
 * command line adds to or replaces what the file says (roomd.c).
 */
#include "config.h"

#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roomd.h"

void
config_defaults(struct roomd_config *c)
{
	long	 ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof(*c));
	c->workers = ncpu < 1 ? 1 : ncpu > ROOMD_MAX_WORKERS ?
	    ROOMD_MAX_WORKERS : (int)ncpu;
	c->arena_size = 256ULL << 20;
	c->cluster_lease = 10;
	snprintf(c->pidfile, sizeof(c->pidfile), "%s", ROOMD_PIDFILE);
	c->max_header_bytes = 8192;
	c->max_body_bytes = 65536;
	c->max_message_bytes = 1 << 20;
	c->output_buffer_bytes = 4 << 20;
	c->idle_timeout = 60;
	c->ping_interval = 30;
	c->room_ttl = 60;
	c->room_max_members = 1000;
	c->room_log_max_bytes = 64ULL << 20;
	c->classroom_open_rooms = -1;
	c->lobby_ping_interval = 10;
	c->lobby_grace = 30;
	c->lobby_retention = 600;
	c->lobby_snapshot_max_bytes = 1 << 20;
	c->lobby_replies = LOBBY_REPLIES_DOCUMENT | LOBBY_REPLIES_GROOVEJET;
	c->chat_anonymous = 1;
	c->chat_history = 50;
	c->max_connections_per_ip = 256;
	c->max_rooms_per_ip = 100;
	c->message_rate = 200;
	c->message_burst = 400;
	c->join_failures_per_minute = 10;
	c->chat_session_ttl = 86400;
	c->drain_timeout = 30;
	c->webhook_queue = 1000;
	c->webhook_retries = 5;
	c->webhook_timeout = 5;
	c->auth_hook_timeout = 3;
	snprintf(c->control_socket, sizeof(c->control_socket), "%s",
	    ROOMD_CONTROL);
	snprintf(c->api_sender, sizeof(c->api_sender), "roomd");
	c->arena_walk_interval = 30;
}

/*
 * Do the listen addresses, the number of workers or the mounts of a and b
 * differ?  A reload then starts new workers and drains the old ones.
 */
int
config_generation_differs(const struct roomd_config *a,
    const struct roomd_config *b)
{
	int	 i, differ;

	differ = a->nlistens != b->nlistens || a->workers != b->workers ||
	    a->nmounts != b->nmounts;
	for (i = 0; !differ && i < a->nlistens; i++)
		differ = strcmp(a->listens[i].text, b->listens[i].text) != 0 ||
		    a->listens[i].tls != b->listens[i].tls;
	for (i = 0; !differ && i < a->nmounts; i++)
		differ = strcmp(a->mounts[i].path, b->mounts[i].path) != 0 ||
		    a->mounts[i].dialect != b->mounts[i].dialect;
	return differ;
}

/*
 * SIGHUP in a worker or a keeper, after the master checked the file (and
 * logged what was wrong with it): the file read again into c, from the
 * defaults.  0, or -1 if it no longer reads.
 */
int
config_reread(struct roomd_config *c, const char *file)
{
	char	 err[1024];

	config_defaults(c);
	if (file[0] == '\0' || config_load(c, file, err, sizeof(err)) == -1 ||
	    config_finish(c, err, sizeof(err)) == -1)
		return -1;
	return 0;
}

/*
 * Copy the settings a running worker can take (limits, timeouts, the
 * document root, the dialects' options) from src to dst.  Returns how
 * many of the others (the arena, sockets, user, pid file) differ: those
 * need a restart.  Listen addresses, workers and mounts are left alone
 * (config_generation_differs).
 */
int
config_apply_live(struct roomd_config *dst, const struct roomd_config *src)
{
	int	 restart = 0;

	restart += dst->arena_size != src->arena_size ||
	    strcmp(dst->arena_path, src->arena_path) != 0 ||
	    strcmp(dst->control_socket, src->control_socket) != 0 ||
	    strcmp(dst->metrics_listen, src->metrics_listen) != 0 ||
	    strcmp(dst->api_listen, src->api_listen) != 0 ||
	    strcmp(dst->user, src->user) != 0 ||
	    strcmp(dst->pidfile, src->pidfile) != 0 ||
	    strcmp(dst->cluster, src->cluster) != 0 ||
	    dst->ncluster_shards != src->ncluster_shards ||
	    memcmp(dst->cluster_shard, src->cluster_shard,
	    sizeof(dst->cluster_shard)) != 0 ||
	    strcmp(dst->cluster_host, src->cluster_host) != 0 ||
	    strcmp(dst->cluster_prefix, src->cluster_prefix) != 0 ||
	    dst->cluster_lease != src->cluster_lease ||
	    dst->cluster_wait != src->cluster_wait;
	dst->max_header_bytes = src->max_header_bytes;
	dst->max_body_bytes = src->max_body_bytes;
	dst->max_message_bytes = src->max_message_bytes;
	dst->output_buffer_bytes = src->output_buffer_bytes;
	dst->idle_timeout = src->idle_timeout;
	dst->ping_interval = src->ping_interval;
	dst->room_ttl = src->room_ttl;
	dst->room_max_members = src->room_max_members;
	dst->room_log_max_bytes = src->room_log_max_bytes;
	dst->max_connections_per_ip = src->max_connections_per_ip;
	dst->max_rooms_per_ip = src->max_rooms_per_ip;
	dst->message_rate = src->message_rate;
	dst->message_burst = src->message_burst;
	dst->join_failures_per_minute = src->join_failures_per_minute;
	dst->limits_on_loopback = src->limits_on_loopback;
	/* New connections negotiate with it; open ones keep what they have. */
	dst->websocket_compression = src->websocket_compression;
	memcpy(dst->allowed_origins, src->allowed_origins,
	    sizeof(dst->allowed_origins));
	memcpy(dst->htdocs, src->htdocs, sizeof(dst->htdocs));
	memcpy(dst->classroom_jwt_secret, src->classroom_jwt_secret,
	    sizeof(dst->classroom_jwt_secret));
	memcpy(dst->classroom_jwt_subject, src->classroom_jwt_subject,
	    sizeof(dst->classroom_jwt_subject));
	dst->classroom_open_rooms = src->classroom_open_rooms;
	dst->lobby_ping_interval = src->lobby_ping_interval;
	dst->lobby_grace = src->lobby_grace;
	dst->lobby_retention = src->lobby_retention;
	dst->lobby_migration = src->lobby_migration;
	dst->lobby_snapshot_max_bytes = src->lobby_snapshot_max_bytes;
	dst->lobby_replies = src->lobby_replies;
	dst->chat_anonymous = src->chat_anonymous;
	dst->chat_history = src->chat_history;
	memcpy(dst->providers, src->providers, sizeof(dst->providers));
	dst->nproviders = src->nproviders;
	memcpy(dst->chat_admins, src->chat_admins, sizeof(dst->chat_admins));
	dst->nadmins = src->nadmins;
	memcpy(dst->chat_ca_file, src->chat_ca_file,
	    sizeof(dst->chat_ca_file));
	memcpy(dst->chat_session_secret, src->chat_session_secret,
	    sizeof(dst->chat_session_secret));
	dst->chat_session_ttl = src->chat_session_ttl;
	dst->drain_timeout = src->drain_timeout;
	/* Keys change live, so that one can be replaced without a restart. */
	memcpy(dst->api_keys, src->api_keys, sizeof(dst->api_keys));
	dst->napi_keys = src->napi_keys;
	memcpy(dst->api_sender, src->api_sender, sizeof(dst->api_sender));
	dst->arena_walk_interval = src->arena_walk_interval;
	/* Webhooks and join checks: events queued before keep their URLs
	 * (webhook.c); checks started before finish as they began. */
	memcpy(dst->webhooks, src->webhooks, sizeof(dst->webhooks));
	dst->nwebhooks = src->nwebhooks;
	memcpy(dst->webhook_secret, src->webhook_secret,
	    sizeof(dst->webhook_secret));
	dst->webhook_queue = src->webhook_queue;
	dst->webhook_retries = src->webhook_retries;
	dst->webhook_timeout = src->webhook_timeout;
	memcpy(dst->auth_hooks, src->auth_hooks, sizeof(dst->auth_hooks));
	dst->auth_hook_timeout = src->auth_hook_timeout;
	dst->auth_hook_allow_on_failure = src->auth_hook_allow_on_failure;
	return restart;
}

/* "host:port", "[v6]:port" or ":port" (all addresses). */
int
config_listen(struct roomd_config *c, const char *text, char *err,
    size_t errlen)
{
	struct listen_addr	*l;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 host[128], *colon, *end;
	long			 port;

	if (c->nlistens == ROOMD_MAX_LISTEN) {
		snprintf(err, errlen, "too many listen addresses");
		return -1;
	}
	if (strlen(text) >= sizeof(host) || (colon = strrchr(text, ':'))
	    == NULL) {
		snprintf(err, errlen, "listen address \"%s\" is not "
		    "address:port", text);
		return -1;
	}
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || port < 1 ||
	    port > 65535) {
		snprintf(err, errlen, "bad port in \"%s\"", text);
		return -1;
	}
	l = &c->listens[c->nlistens];
	memset(l, 0, sizeof(*l));
	sin = (struct sockaddr_in *)&l->ss;
	sin6 = (struct sockaddr_in6 *)&l->ss;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		l->sslen = sizeof(*sin6);
	} else {
		if (host[0] == '\0' || strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto bad;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		l->sslen = sizeof(*sin);
	}
	snprintf(l->text, sizeof(l->text), "%s", text);
	c->nlistens++;
	return 0;
bad:
	snprintf(err, errlen, "bad address in \"%s\" (use a numeric IPv4 "
	    "address or [IPv6])", text);
	return -1;
}

int
config_mount(struct roomd_config *c, const char *dialect, const char *path,
    char *err, size_t errlen)
{
	const struct dialect	*d;
	struct mount		*m;
	size_t			 len = strlen(path);
	int			 i;

	if ((d = dialect_find(dialect)) == NULL) {
		snprintf(err, errlen, "unknown dialect \"%s\"", dialect);
		return -1;
	}
	if (path[0] != '/') {
		snprintf(err, errlen, "mount path \"%s\" must start with /",
		    path);
		return -1;
	}
	if (len >= sizeof(m->path) || strchr(path, '?') != NULL) {
		snprintf(err, errlen, "mount path \"%.40s\" is too long or has "
		    "a ?", path);
		return -1;
	}
	while (len > 1 && path[len - 1] == '/')
		len--;
	for (i = 0; i < c->nmounts; i++)
		if (strlen(c->mounts[i].path) == len &&
		    strncmp(c->mounts[i].path, path, len) == 0) {
			if (c->mounts[i].dialect == d)
				return 0;
			if (c->mounts[i].is_default) {
				c->mounts[i].dialect = d;
				c->mounts[i].is_default = 0;
				return 0;
			}
			snprintf(err, errlen, "path %.*s is already mounted",
			    (int)len, path);
			return -1;
		}
	if (c->nmounts == ROOMD_MAX_MOUNTS) {
		snprintf(err, errlen, "too many mounts");
		return -1;
	}
	m = &c->mounts[c->nmounts++];
	memcpy(m->path, path, len);
	m->path[len] = '\0';
	m->dialect = d;
	return 0;
}

/* The line config_load is reading, for settings that span lines. */
static int	config_line;

/*
 * One keyword of roomd.conf(5) and its setter.  The setters of a type
 * (config_set_int and the others below it) store argv[1] in the field
 * at off, len bytes wide, between min and max; the custom setters of the
 * keywords that are special (listen, mount, chat_provider...) ignore the
 * rest.  A setter returns 0, or -1 with the reason in err.
 */
struct config_keyword {
	const char	*key;
	int		(*set)(struct roomd_config *,
			    const struct config_keyword *, char **argv,
			    int argc, char *err, size_t errlen);
	size_t		 off, len;
	long long	 min, max;
};

static int
config_int(const char *v, long min, long max, long *out)
{
	char	*end;
	long	 n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* Has "keyword value" its one value?  If not, err says so. */
static int
config_one_value(const struct config_keyword *k, int argc, char *err,
    size_t errlen)
{
	if (argc == 2)
		return 0;
	snprintf(err, errlen, "%s takes one value", k->key);
	return -1;
}

/* A number from min to max, into an int (a count, or seconds). */
static int
config_set_int(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	long	 n;

	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (config_int(argv[1], (long)k->min, (long)k->max, &n) == -1) {
		snprintf(err, errlen, "%s: bad value \"%s\" (from %lld to "
		    "%lld)", k->key, argv[1], k->min, k->max);
		return -1;
	}
	*(int *)(void *)((char *)c + k->off) = (int)n;
	return 0;
}

/* A size with an optional K, M or G (util_parse_size), into a uint64_t. */
static int
config_set_size(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	uint64_t	 u;

	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (util_parse_size(argv[1], &u) == -1 || u < (uint64_t)k->min ||
	    u > (uint64_t)k->max) {
		snprintf(err, errlen, "%s: bad value \"%s\" (from %lld to "
		    "%lld)", k->key, argv[1], k->min, k->max);
		return -1;
	}
	*(uint64_t *)(void *)((char *)c + k->off) = u;
	return 0;
}

/* yes or no, into an int: 1 or 0. */
static int
config_set_yesno(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (strcmp(argv[1], "yes") != 0 && strcmp(argv[1], "no") != 0) {
		snprintf(err, errlen, "%s takes yes or no", k->key);
		return -1;
	}
	*(int *)(void *)((char *)c + k->off) = strcmp(argv[1], "yes") == 0;
	return 0;
}

/* A string, into a buffer of len bytes; a longer one is refused. */
static int
config_set_string(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (strlen(argv[1]) >= k->len) {
		snprintf(err, errlen, "%s is too long", k->key);
		return -1;
	}
	snprintf((char *)c + k->off, k->len, "%s", argv[1]);
	return 0;
}

/* metrics_listen and api_listen address:port: checked now, so that
 * roomd -t names the line; bound by control.c and api.c. */
static int
config_set_address(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	struct roomd_config	*tmp;
	char			 why[256];
	int			 rc;

	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if ((tmp = calloc(1, sizeof(*tmp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = config_listen(tmp, argv[1], why, sizeof(why));
	free(tmp);
	if (rc == -1) {
		snprintf(err, errlen, "%s: %s", k->key, why);
		return -1;
	}
	return config_set_string(c, k, argv, argc, err, errlen);
}

/* api_key KEY: each line adds one, of API_KEY_MIN to API_KEY_MAX
 * printable characters. */
static int
config_set_api_key(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	size_t	 i, n;

	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	n = strlen(argv[1]);
	for (i = 0; i < n; i++)
		if (!isgraph((unsigned char)argv[1][i]))
			break;
	if (n < API_KEY_MIN || n > API_KEY_MAX || i < n) {
		snprintf(err, errlen, "api_key: a key is %d to %d printable "
		    "characters (openssl rand -hex 32 makes one)", API_KEY_MIN,
		    API_KEY_MAX);
		return -1;
	}
	if (c->napi_keys == ROOMD_MAX_API_KEYS) {
		snprintf(err, errlen, "too many api_key lines (%d at most)",
		    ROOMD_MAX_API_KEYS);
		return -1;
	}
	memcpy(c->api_keys[c->napi_keys++], argv[1], n + 1);
	return 0;
}

/* api_sender NAME: 1 to 64 of A-Z a-z 0-9 _ -, a name every dialect takes. */
static int
config_set_api_sender(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (!util_valid_id(argv[1], ROOM_ID_MAX)) {
		snprintf(err, errlen, "api_sender: \"%s\" is not 1 to 64 of "
		    "A-Z a-z 0-9 _ -", argv[1]);
		return -1;
	}
	return config_set_string(c, k, argv, argc, err, errlen);
}

/* cluster URL: its form checked now (roomd -t); reached at startup. */
static int
config_set_cluster(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (c->cluster[0] != '\0') {
		snprintf(err, errlen, "cluster: given twice (more primaries "
		    "are cluster_shard lines)");
		return -1;
	}
	if (cluster_parse(k->key, argv[1], err, errlen) == -1)
		return -1;
	return config_set_string(c, k, argv, argc, err, errlen);
}

/* cluster_shard URL: one more primary, in the order of the lines. */
static int
config_set_cluster_shard(struct roomd_config *c,
    const struct config_keyword *k, char **argv, int argc, char *err,
    size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1 ||
	    cluster_parse(k->key, argv[1], err, errlen) == -1)
		return -1;
	if (c->cluster[0] == '\0') {
		snprintf(err, errlen, "cluster_shard: after the cluster line "
		    "(shard 0)");
		return -1;
	}
	if (c->ncluster_shards == CLUSTER_SHARDS_MAX - 1) {
		snprintf(err, errlen, "cluster_shard: at most %d lines",
		    CLUSTER_SHARDS_MAX - 1);
		return -1;
	}
	if (strlen(argv[1]) >= sizeof(c->cluster_shard[0])) {
		snprintf(err, errlen, "cluster_shard: too long");
		return -1;
	}
	snprintf(c->cluster_shard[c->ncluster_shards++],
	    sizeof(c->cluster_shard[0]), "%s", argv[1]);
	return 0;
}

/* cluster_host and cluster_prefix: what Redis's functions take as a
 * word. */
static int
config_set_cluster_host(struct roomd_config *c,
    const struct config_keyword *k, char **argv, int argc, char *err,
    size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (strlen(argv[1]) > 64 || strspn(argv[1], "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(argv[1])) {
		snprintf(err, errlen, "%s: 1 to 64 letters, digits, '-', '_' "
		    "or '.'", k->key);
		return -1;
	}
	return config_set_string(c, k, argv, argc, err, errlen);
}

/* Do two addresses of config_listen() take the same port, one of them on
 * every address or both on the same one? */
static int
config_same_socket(const struct listen_addr *a, const struct listen_addr *b)
{
	const struct sockaddr_in	*a4 = (const void *)&a->ss;
	const struct sockaddr_in	*b4 = (const void *)&b->ss;
	const struct sockaddr_in6	*a6 = (const void *)&a->ss;
	const struct sockaddr_in6	*b6 = (const void *)&b->ss;
	int				 any_a, any_b;

	/* sin_port and sin6_port lie at the same place. */
	if (a4->sin_port != b4->sin_port)
		return 0;
	any_a = a->ss.ss_family == AF_INET ? a4->sin_addr.s_addr ==
	    htonl(INADDR_ANY) : IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
	any_b = b->ss.ss_family == AF_INET ? b4->sin_addr.s_addr ==
	    htonl(INADDR_ANY) : IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr);
	if (any_a || any_b)
		return 1;
	return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

/*
 * api_listen is never a public address nor metrics_listen's (clients must
 * not reach the API, and the master answers metrics alone), and an API
 * without a key would be open to all or to none.
 */
int
config_check_api(const struct roomd_config *c, char *err, size_t errlen)
{
	struct roomd_config	*tmp;
	const char		*clash = NULL;
	int			 l;

	if (c->api_listen[0] == '\0')
		return 0;
	if (c->napi_keys == 0) {
		snprintf(err, errlen, "api_listen %s: no api_key is set",
		    c->api_listen);
		return -1;
	}
	if ((tmp = calloc(1, sizeof(*tmp))) == NULL ||
	    config_listen(tmp, c->api_listen, err, errlen) == -1 ||
	    (c->metrics_listen[0] != '\0' && config_listen(tmp,
	    c->metrics_listen, err, errlen) == -1)) {
		free(tmp);
		return -1;
	}
	for (l = 0; l < c->nlistens && clash == NULL; l++)
		if (config_same_socket(&tmp->listens[0], &c->listens[l]))
			clash = c->listens[l].text;
	if (clash == NULL && tmp->nlistens == 2 &&
	    config_same_socket(&tmp->listens[0], &tmp->listens[1]))
		clash = "metrics_listen";
	free(tmp);
	if (clash != NULL) {
		snprintf(err, errlen, "api_listen %s takes the port of %s: the "
		    "API needs a listener of its own", c->api_listen, clash);
		return -1;
	}
	return 0;
}

/* user name: one that exists now. */
static int
config_set_user(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (getpwnam(argv[1]) == NULL) {
		snprintf(err, errlen, "user %s does not exist", argv[1]);
		return -1;
	}
	return config_set_string(c, k, argv, argc, err, errlen);
}

/*
 * listen address:port [tls [cert file] [key file]]: the files are read
 * by server_tls_load(), in the master, which names this line if they are
 * unreadable or do not match.
 */
static int
config_set_listen(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	struct listen_addr	*l;
	char			*dst;
	int			 i;

	/* One value, as before TLS, unless the options follow. */
	if (argc < 2 || (argc > 2 && strcmp(argv[2], "tls") != 0 &&
	    strcmp(argv[2], "cert") != 0 && strcmp(argv[2], "key") != 0)) {
		snprintf(err, errlen, "listen takes one value");
		return -1;
	}
	if (config_listen(c, argv[1], err, errlen) == -1)
		return -1;
	l = &c->listens[c->nlistens - 1];
	l->line = config_line;
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "tls") == 0) {
			l->tls = 1;
			continue;
		}
		dst = strcmp(argv[i], "cert") == 0 ? l->cert :
		    strcmp(argv[i], "key") == 0 ? l->key : NULL;
		if (dst == NULL || i + 1 == argc) {
			snprintf(err, errlen, "listen %s: expected tls, cert "
			    "file or key file, not \"%s\"", argv[1], argv[i]);
			return -1;
		}
		if (strlen(argv[++i]) >= sizeof(l->cert)) {
			snprintf(err, errlen, "listen %s: file name too long",
			    argv[1]);
			return -1;
		}
		snprintf(dst, sizeof(l->cert), "%s", argv[i]);
	}
	if ((l->cert[0] != '\0' || l->key[0] != '\0') && !l->tls) {
		snprintf(err, errlen, "listen %s: cert and key need tls",
		    argv[1]);
		return -1;
	}
	if (l->tls && (l->cert[0] == '\0' || l->key[0] == '\0')) {
		snprintf(err, errlen, "listen %s: tls needs cert file and key "
		    "file", argv[1]);
		return -1;
	}
	return 0;
}

/* mount dialect path */
static int
config_set_mount(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (argc != 3) {
		snprintf(err, errlen, "usage: mount dialect path");
		return -1;
	}
	return config_mount(c, argv[1], argv[2], err, errlen);
}

/* message_rate per-second [burst]; 0 turns it off. */
static int
config_set_message_rate(struct roomd_config *c,
    const struct config_keyword *k, char **argv, int argc, char *err,
    size_t errlen)
{
	long	 rate, burst;

	if (argc < 2 || argc > 3 || config_int(argv[1], 0, 1000000, &rate)
	    == -1 || (argc == 3 && (config_int(argv[2], 1, 10000000, &burst)
	    == -1 || burst < rate))) {
		snprintf(err, errlen, "usage: message_rate per-second [burst], "
		    "from 0 to 1000000, the burst at least the rate");
		return -1;
	}
	c->message_rate = (int)rate;
	c->message_burst = argc == 3 ? (int)burst : (int)rate * 2;
	return 0;
}

/*
 * lobby_replies both | document | groovejet: which names the lobby answers
 * createRoom and joinRoom with, the document's (roomCreated, roomJoined),
 * groovejet's later ones (createdRoom, joinedRoom) or both, in that order.
 */
static int
config_set_lobby_replies(struct roomd_config *c,
    const struct config_keyword *k, char **argv, int argc, char *err,
    size_t errlen)
{
	if (argc == 2 && strcmp(argv[1], "both") == 0)
		c->lobby_replies = LOBBY_REPLIES_DOCUMENT |
		    LOBBY_REPLIES_GROOVEJET;
	else if (argc == 2 && strcmp(argv[1], "document") == 0)
		c->lobby_replies = LOBBY_REPLIES_DOCUMENT;
	else if (argc == 2 && strcmp(argv[1], "groovejet") == 0)
		c->lobby_replies = LOBBY_REPLIES_GROOVEJET;
	else {
		snprintf(err, errlen, "usage: lobby_replies both | document | "
		    "groovejet");
		return -1;
	}
	return 0;
}

/* allowed_origins origin ...: each line adds to the list. */
static int
config_set_origins(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	size_t	 have = strlen(c->allowed_origins), n;
	int	 i;

	for (i = 1; i < argc; i++) {
		n = strlen(argv[i]);
		if (strncmp(argv[i], "http://", 7) != 0 &&
		    strncmp(argv[i], "https://", 8) != 0 &&
		    strcmp(argv[i], "null") != 0) {
			snprintf(err, errlen, "allowed_origins: \"%s\" is not "
			    "an origin (scheme://host[:port])", argv[i]);
			return -1;
		}
		if (have + n + 2 > sizeof(c->allowed_origins)) {
			snprintf(err, errlen, "allowed_origins: too long");
			return -1;
		}
		if (have > 0)
			c->allowed_origins[have++] = ' ';
		memcpy(c->allowed_origins + have, argv[i], n + 1);
		have += n;
	}
	return 0;
}

/* chat_admin UUID */
static int
config_set_admin(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	const char	*u = argc == 2 ? argv[1] : "";
	size_t		 i;

	for (i = 0; u[i] != '\0'; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? u[i] != '-' :
		    !isxdigit((unsigned char)u[i]))
			break;
	if (argc != 2 || i != 36 || u[i] != '\0') {
		snprintf(err, errlen, "usage: chat_admin identifier (a UUID)");
		return -1;
	}
	if (c->nadmins == ROOMD_MAX_ADMINS) {
		snprintf(err, errlen, "too many chat admins");
		return -1;
	}
	for (i = 0; i < 36; i++)
		c->chat_admins[c->nadmins][i] = (char)tolower((unsigned char)
		    u[i]);
	c->chat_admins[c->nadmins++][36] = '\0';
	return 0;
}

/* A URL a provider may use: https, or http on a loopback host. */
static int
config_provider_url(const char *u)
{
	struct in_addr	 in;
	const char	*h;
	char		 host[16];
	size_t		 len;

	if (strncmp(u, "https://", 8) == 0)
		return u[8] != '\0' && u[8] != '/';
	if (strncmp(u, "http://", 7) != 0)
		return 0;
	h = u + 7;
	if (strncmp(h, "[::1]", 5) == 0)
		return strchr(":/", h[5]) != NULL;
	len = strcspn(h, ":/");
	if (len >= sizeof(host))
		return 0;
	memcpy(host, h, len);
	host[len] = '\0';
	return strcmp(host, "localhost") == 0 ||
	    (inet_pton(AF_INET, host, &in) == 1 &&
	    (ntohl(in.s_addr) >> 24) == 127);
}

/* The provider called name, made if it is new; NULL if there are too many. */
static struct chat_provider *
config_provider_named(struct roomd_config *c, const char *name)
{
	struct chat_provider	*p;
	int			 k;

	for (k = 0; k < c->nproviders; k++)
		if (strcmp(c->providers[k].name, name) == 0)
			return &c->providers[k];
	if (c->nproviders == ROOMD_MAX_PROVIDERS)
		return NULL;
	p = &c->providers[c->nproviders++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->line = config_line;
	return p;
}

/* chat_provider NAME FIELD VALUE */
static int
config_set_provider(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	static const struct {
		const char	*field;
		size_t		 off, len;
		int		 url;
	} fields[] = {
#define PF(f, u) { #f, offsetof(struct chat_provider, f), \
	sizeof(((struct chat_provider *)0)->f), u }
		PF(issuer, 0), PF(client_id, 0), PF(client_secret, 0),
		PF(authorize, 1), PF(token, 1), PF(jwks, 1), PF(userinfo, 1),
		PF(scope, 0), PF(redirect, 0),
#undef PF
	};
	struct chat_provider	*p;
	size_t			 i;

	if (argc != 4) {
		snprintf(err, errlen, "usage: chat_provider name field value");
		return -1;
	}
	if (!util_valid_id(argv[1], sizeof(p->name) - 1)) {
		snprintf(err, errlen, "chat_provider: bad name \"%s\" (1 to "
		    "31 of A-Z a-z 0-9 _ -)", argv[1]);
		return -1;
	}
	if ((p = config_provider_named(c, argv[1])) == NULL) {
		snprintf(err, errlen, "too many chat providers");
		return -1;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(argv[2], fields[i].field) != 0)
			continue;
		if (strlen(argv[3]) >= fields[i].len) {
			snprintf(err, errlen, "chat_provider %s: %s is too "
			    "long", p->name, argv[2]);
			return -1;
		}
		if (fields[i].url && !config_provider_url(argv[3])) {
			snprintf(err, errlen, "chat_provider %s: %s must be "
			    "an https:// URL (http:// only on loopback)",
			    p->name, argv[2]);
			return -1;
		}
		snprintf((char *)p + fields[i].off, fields[i].len, "%s",
		    argv[3]);
		return 0;
	}
	snprintf(err, errlen, "chat_provider %s: unknown field \"%s\"",
	    p->name, argv[2]);
	return -1;
}

/* Every provider must say where to send people and how to know them. */
static int
config_providers_check(struct roomd_config *c, char *err, size_t errlen)
{
	struct chat_provider	*p;
	const char		*missing;
	int			 k;

	for (k = 0; k < c->nproviders; k++) {
		p = &c->providers[k];
		missing = p->issuer[0] == '\0' ? "issuer" :
		    p->client_id[0] == '\0' ? "client_id" :
		    p->authorize[0] == '\0' ? "authorize" :
		    p->token[0] == '\0' ? "token" :
		    p->jwks[0] == '\0' && p->userinfo[0] == '\0' ?
		    "jwks or userinfo" : NULL;
		if (missing != NULL) {
			snprintf(err, errlen, "%s:%d: chat_provider %s has no "
			    "%s", c->file, p->line, p->name, missing);
			return -1;
		}
		if (p->scope[0] == '\0')
			snprintf(p->scope, sizeof(p->scope), "%s",
			    p->jwks[0] != '\0' ? "openid,profile,email" : "");
	}
	return 0;
}

/* webhook URL: up to ROOMD_MAX_WEBHOOKS of them, each sent every event. */
static int
config_set_webhook(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (c->nwebhooks == ROOMD_MAX_WEBHOOKS) {
		snprintf(err, errlen, "too many webhooks (at most %d)",
		    ROOMD_MAX_WEBHOOKS);
		return -1;
	}
	if (strlen(argv[1]) >= ROOMD_URL_MAX ||
	    !config_provider_url(argv[1])) {
		snprintf(err, errlen, "webhook must be an https:// URL "
		    "(http:// only on loopback) of at most %d bytes",
		    ROOMD_URL_MAX - 1);
		return -1;
	}
	snprintf(c->webhooks[c->nwebhooks++], ROOMD_URL_MAX, "%s", argv[1]);
	return 0;
}

/* Can a dialect's joins be checked?  Those with a join to check. */
static int
config_checked_dialect(const struct dialect *d)
{
	return d != NULL && d->id < ROOMD_MAX_DIALECTS &&
	    strcmp(d->name, "echo") != 0;
}

/* auth_hook [dialect] URL: for that dialect, or for every one. */
static int
config_set_auth_hook(struct roomd_config *c, const struct config_keyword *k,
    char **argv, int argc, char *err, size_t errlen)
{
	const struct dialect	*d = NULL;
	const char		*url = argv[argc - 1];
	size_t			 i;

	if (argc != 2 && argc != 3) {
		snprintf(err, errlen, "usage: auth_hook [dialect] url");
		return -1;
	}
	if (argc == 3 && !config_checked_dialect(d = dialect_find(argv[1]))) {
		snprintf(err, errlen, "auth_hook: no joins to check in "
		    "dialect \"%s\"", argv[1]);
		return -1;
	}
	if (strlen(url) >= ROOMD_URL_MAX || !config_provider_url(url)) {
		snprintf(err, errlen, "auth_hook must be an https:// URL "
		    "(http:// only on loopback) of at most %d bytes",
		    ROOMD_URL_MAX - 1);
		return -1;
	}
	for (i = 0; d == NULL && dialect_at(i) != NULL; i++)
		if (config_checked_dialect(dialect_at(i)))
			snprintf(c->auth_hooks[dialect_at(i)->id],
			    ROOMD_URL_MAX, "%s", url);
	if (d != NULL)
		snprintf(c->auth_hooks[d->id], ROOMD_URL_MAX, "%s", url);
	return 0;
}

/* auth_hook_on_failure allow|refuse */
static int
config_set_auth_failure(struct roomd_config *c,
    const struct config_keyword *k, char **argv, int argc, char *err,
    size_t errlen)
{
	if (config_one_value(k, argc, err, errlen) == -1)
		return -1;
	if (strcmp(argv[1], "allow") != 0 && strcmp(argv[1], "refuse") != 0) {
		snprintf(err, errlen, "auth_hook_on_failure is allow or "
		    "refuse");
		return -1;
	}
	c->auth_hook_allow_on_failure = strcmp(argv[1], "allow") == 0;
	return 0;
}

/* Webhooks are signed: a URL without a secret is a mistake. */
static int
config_hooks_check(struct roomd_config *c, char *err, size_t errlen)
{
	if (c->nwebhooks > 0 && c->webhook_secret[0] == '\0') {
		snprintf(err, errlen, "%s: webhook needs a webhook_secret to "
		    "sign with", c->file);
		return -1;
	}
	return 0;
}

/*
 * The offset of field f of struct roomd_config, which must be as wide as
 * type t: an entry that gives a setter a field of another type does not
 * compile (the array's size would be negative).
 */
#define CONFIG_FIELD(f, t)	(offsetof(struct roomd_config, f) +	\
	0 * sizeof(char[sizeof(((struct roomd_config *)0)->f) ==	\
	sizeof(t) ? 1 : -1]))
#define KW_INT(f, lo, hi)	{ #f, config_set_int, CONFIG_FIELD(f, int), \
	sizeof(int), lo, hi }
#define KW_SECONDS(f, lo, hi)	KW_INT(f, lo, hi)
#define KW_SIZE(f, lo, hi)	{ #f, config_set_size,			\
	CONFIG_FIELD(f, uint64_t), sizeof(uint64_t), lo, hi }
#define KW_YESNO(f)		{ #f, config_set_yesno, CONFIG_FIELD(f, int), \
	sizeof(int), 0, 1 }
#define KW_STRING(f, set)	{ #f, set, offsetof(struct roomd_config, f), \
	sizeof(((struct roomd_config *)0)->f), 0, 0 }
#define KW_CUSTOM(key, set)	{ key, set, 0, 0, 0, 0 }

/* Every keyword, in the order of roomd.conf(5). */
static const struct config_keyword config_keywords[] = {
	KW_CUSTOM("listen", config_set_listen),
	KW_INT(workers, 1, ROOMD_MAX_WORKERS),
	KW_CUSTOM("mount", config_set_mount),
	KW_SIZE(arena_size, ROOMD_ARENA_MIN, 1LL << 40),
	KW_STRING(arena_path, config_set_string),
	KW_STRING(htdocs, config_set_string),
	KW_STRING(pidfile, config_set_string),
	KW_STRING(control_socket, config_set_string),
	KW_STRING(metrics_listen, config_set_address),
	/* The server API and readiness (api.c, health.c) */
	KW_STRING(api_listen, config_set_address),
	KW_CUSTOM("api_key", config_set_api_key),
	KW_STRING(api_sender, config_set_api_sender),
	KW_SECONDS(arena_walk_interval, 0, 86400),
	KW_STRING(user, config_set_user),
	KW_SIZE(max_header_bytes, 256, 1 << 20),
	KW_SIZE(max_body_bytes, 64, 64 << 20),
	KW_SIZE(max_message_bytes, 125, 256 << 20),
	/* permessage-deflate (server_deflate.c) */
	KW_YESNO(websocket_compression),
	KW_SIZE(output_buffer_bytes, 4096, 1LL << 32),
	KW_SECONDS(idle_timeout, 1, 86400),
	KW_SECONDS(ping_interval, 1, 86400),
	KW_SECONDS(room_ttl, 1, 86400 * 365),
	KW_SIZE(room_max_members, 1, 1 << 20),
	KW_SIZE(room_log_max_bytes, 1024, 1LL << 40),
	KW_INT(max_connections_per_ip, 0, 1000000),
	KW_INT(max_rooms_per_ip, 0, 1000000),
	KW_CUSTOM("message_rate", config_set_message_rate),
	KW_INT(join_failures_per_minute, 0, 1000000),
	KW_YESNO(limits_on_loopback),
	KW_CUSTOM("allowed_origins", config_set_origins),
	KW_CUSTOM("chat_admin", config_set_admin),
	KW_YESNO(chat_anonymous),
	KW_STRING(chat_ca_file, config_set_string),
	KW_CUSTOM("chat_provider", config_set_provider),
	KW_STRING(chat_session_secret, config_set_string),
	KW_SECONDS(chat_session_ttl, 60, 86400 * 365),
	KW_SECONDS(drain_timeout, 0, 86400),
	KW_INT(chat_history, 0, 10000),
	KW_STRING(classroom_jwt_secret, config_set_string),
	KW_STRING(classroom_jwt_subject, config_set_string),
	KW_YESNO(classroom_open_rooms),
	KW_SECONDS(lobby_grace, 1, 86400),
	KW_YESNO(lobby_migration),
	KW_CUSTOM("lobby_replies", config_set_lobby_replies),
	KW_SECONDS(lobby_ping_interval, 1, 86400),
	KW_SECONDS(lobby_retention, 1, 86400 * 365),
	KW_SIZE(lobby_snapshot_max_bytes, 16, 16 << 20),
	/* Webhooks and join checks (webhook.c, authhook.c) */
	KW_CUSTOM("webhook", config_set_webhook),
	KW_STRING(webhook_secret, config_set_string),
	KW_INT(webhook_queue, 1, 1000000),
	KW_INT(webhook_retries, 0, 100),
	KW_SECONDS(webhook_timeout, 1, 300),
	KW_CUSTOM("auth_hook", config_set_auth_hook),
	KW_SECONDS(auth_hook_timeout, 1, 60),
	KW_CUSTOM("auth_hook_on_failure", config_set_auth_failure),
	KW_STRING(cluster, config_set_cluster),
	KW_CUSTOM("cluster_shard", config_set_cluster_shard),
	KW_STRING(cluster_host, config_set_cluster_host),
	KW_STRING(cluster_prefix, config_set_cluster_host),
	KW_SECONDS(cluster_lease, 2, 3600),
	KW_INT(cluster_wait, 0, 16),
};

#undef KW_CUSTOM
#undef KW_STRING
#undef KW_YESNO
#undef KW_SIZE
#undef KW_SECONDS
#undef KW_INT
#undef CONFIG_FIELD

/* The name of keyword i, or NULL past the last (for the tests). */
const char *
config_keyword(size_t i)
{
	if (i >= sizeof(config_keywords) / sizeof(config_keywords[0]))
		return NULL;
	return config_keywords[i].key;
}

/* One "keyword value..." line. */
static int
config_setting(struct roomd_config *c, char **argv, int argc, char *err,
    size_t errlen)
{
	const struct config_keyword	*k;
	size_t				 i;

	for (i = 0; i < sizeof(config_keywords) / sizeof(config_keywords[0]);
	    i++) {
		k = &config_keywords[i];
		if (strcmp(argv[0], k->key) == 0)
			return k->set(c, k, argv, argc, err, errlen);
	}
	snprintf(err, errlen, "unknown setting \"%s\"", argv[0]);
	return -1;
}
/*
 * Read a configuration file into c (which holds the defaults).  Returns 0,
 * or -1 with "file:line: reason" in err.
 */
int
config_load(struct roomd_config *c, const char *file, char *err,
    size_t errlen)
{
	FILE	*fp;
	char	 line[4097], *argv[8], *p, why[512];	/* 4095 + \n + NUL */
	int	 lineno = 0, argc, rc = 0;

	if ((fp = fopen(file, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	snprintf(c->file, sizeof(c->file), "%s", file);
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		config_line = ++lineno;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(why, sizeof(why), "line too long");
			rc = -1;
			break;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		argc = 0;
		for (p = strtok(line, " \t\r\n"); p != NULL && argc < 8;
		    p = strtok(NULL, " \t\r\n"))
			argv[argc++] = p;
		if (argc == 0)
			continue;
		if (argc == 8) {
			snprintf(why, sizeof(why), "too many words");
			rc = -1;
		} else
			rc = config_setting(c, argv, argc, why, sizeof(why));
	}
	if (rc == 0 && ferror(fp)) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		rc = -1;
	}
	fclose(fp);
	if (rc == -1)
		snprintf(err, errlen, "%s:%d: %s", file, lineno, why);
	return rc;
}

/*
 * Fill what nothing set: the default listener, and every dialect on its
 * default path when the file mounts none.
 */
int
config_finish(struct roomd_config *c, char *err, size_t errlen)
{
	const struct dialect	*d;
	size_t			 i;

	if (c->nlistens == 0 &&
	    config_listen(c, ROOMD_DEFAULT_LISTEN, err, errlen) == -1)
		return -1;
	if (config_providers_check(c, err, errlen) == -1 ||
	    config_hooks_check(c, err, errlen) == -1)
		return -1;
	/* A member's 64th presence bit says "on another host". */
	if (c->cluster[0] != '\0' && c->workers > ROOMD_MAX_WORKERS - 1) {
		snprintf(err, errlen, "cluster: at most %d workers",
		    ROOMD_MAX_WORKERS - 1);
		return -1;
	}
	/* The installed pages, or those of the source tree roomd runs in;
	 * made absolute, for a daemon changes to / when it detaches. */
	if (c->htdocs[0] == '\0')
		snprintf(c->htdocs, sizeof(c->htdocs), "%s",
		    access(ROOMD_HTDOCS "/index.html", R_OK) == 0 ?
		    ROOMD_HTDOCS : "htdocs");
	if (c->htdocs[0] != '/') {
		char	*abs = realpath(c->htdocs, NULL);

		snprintf(c->htdocs, sizeof(c->htdocs), "%s", abs ? abs : "");
		free(abs);
	}
	if (c->nmounts == 0)
		for (i = 0; (d = dialect_at(i)) != NULL; i++) {
			if (d->default_mount == NULL)
				continue;
			if (config_mount(c, d->name, d->default_mount, err,
			    errlen) == -1)
				return -1;
			c->mounts[c->nmounts - 1].is_default = 1;
		}
	return 0;
}
