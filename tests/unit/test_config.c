/*
 * test_config.c: cmocka unit tests for src/config.c.
 *
 * Covered: the defaults; listen addresses (IPv4, bracketed IPv6, all
 * addresses, what is refused, the limit of ROOMD_MAX_LISTEN); mounts
 * (trailing slashes, duplicates, a path taken by another dialect, unknown
 * dialects, bad paths, the limit of ROOMD_MAX_MOUNTS); config_load on
 * files written by the test (every keyword, comments and blank lines, each
 * kind of error with its "FILE:LINE: reason", long lines, a missing file);
 * config_finish.
 *
 * Each test that writes a file does so with mkstemp in /tmp; the teardown
 * removes it, whether the test passed or not.  Tests named *_bug_* show a
 * defect in config.c that is still there: they fail until it is fixed.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "roomd.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* The state of a test: a configuration and the file it may have written. */
struct fixture {
	struct roomd_config	 conf;
	char			 path[64];	/* "" until written */
	char			 dir[64];	/* "" until made */
	char			 err[2048];
};

static int
setup(void **state)
{
	struct fixture	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	config_defaults(&f->conf);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	int		 rc = 0;

	if (f == NULL)
		return 0;
	if (f->path[0] != '\0' && unlink(f->path) == -1 && errno != ENOENT) {
		fprintf(stderr, "unlink %s: %s\n", f->path, strerror(errno));
		rc = -1;
	}
	if (f->dir[0] != '\0' && rmdir(f->dir) == -1 && errno != ENOENT) {
		fprintf(stderr, "rmdir %s: %s\n", f->dir, strerror(errno));
		rc = -1;
	}
	free(f);
	*state = NULL;
	return rc;
}

/* Write text to a new temporary file, whose name goes in f->path. */
static void
write_conf(struct fixture *f, const char *text)
{
	size_t	 len = strlen(text);
	int	 fd;

	assert_true(f->path[0] == '\0');	/* one file per test */
	snprintf(f->path, sizeof(f->path), "/tmp/roomd-test-config.XXXXXX");
	fd = mkstemp(f->path);
	if (fd == -1) {
		f->path[0] = '\0';
		fail_msg("mkstemp: %s", strerror(errno));
	}
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		fail_msg("write %s: %s", f->path, strerror(errno));
	}
	assert_int_equal(close(fd), 0);
}

/* Load text as a file: config_load's return, error text in f->err. */
static int
load(struct fixture *f, const char *text)
{
	write_conf(f, text);
	f->err[0] = '\0';
	return config_load(&f->conf, f->path, f->err, sizeof(f->err));
}

/*
 * The file must be refused with exactly "PATH:line: reason".  A macro, so
 * that a failure names the line of the test.
 */
#define load_fails(f, text, line, reason) do {				\
	char	 want_[sizeof((f)->err)];				\
									\
	assert_int_equal(load((f), (text)), -1);			\
	snprintf(want_, sizeof(want_), "%s:%d: %s", (f)->path, (line),	\
	    (reason));							\
	assert_string_equal((f)->err, want_);				\
} while (0)

/*
 * Start the test over on a fresh fixture, removing the file of the last
 * one: for the tests that try many files.  The new fixture goes into
 * *state, so the teardown cleans up whatever happens next.
 */
static struct fixture *
fresh(void **state)
{
	assert_int_equal(teardown(state), 0);
	assert_int_equal(setup(state), 0);
	return *state;
}

static uint16_t
port_of(const struct listen_addr *l)
{
	if (l->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&l->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&l->ss)->sin_port);
}

static const char *
addr_of(const struct listen_addr *l, char *buf, size_t len)
{
	const void	*a;

	if (l->ss.ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)&l->ss)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)&l->ss)->sin_addr;
	if (inet_ntop(l->ss.ss_family, a, buf, (socklen_t)len) == NULL)
		return "?";
	return buf;
}

/* ------------------------------------------------------------------ */
/* config_defaults */

static void
config_defaults_values(void **state)
{
	struct roomd_config	 c;
	long			 ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int			 want;

	memset(&c, 0xa5, sizeof(c));
	config_defaults(&c);
	want = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
	assert_int_equal(c.workers, want);
	assert_in_range(c.workers, 1, 64);
	assert_int_equal(c.arena_size, 256ULL << 20);
	assert_int_equal(c.nlistens, 0);
	assert_int_equal(c.nmounts, 0);
	assert_string_equal(c.file, "");
	assert_string_equal(c.arena_path, "");
	assert_string_equal(c.pidfile, "/var/run/roomd.pid");
	assert_int_equal(c.max_header_bytes, 8192);
	assert_int_equal(c.max_body_bytes, 65536);
	assert_int_equal(c.max_message_bytes, 1 << 20);
	assert_int_equal(c.output_buffer_bytes, 4 << 20);
	assert_int_equal(c.idle_timeout, 60);
	assert_int_equal(c.ping_interval, 30);
	assert_int_equal(c.room_ttl, 60);
	assert_int_equal(c.room_max_members, 1000);
	assert_int_equal(c.room_log_max_bytes, 64ULL << 20);
}

/* ------------------------------------------------------------------ */
/* config_listen */

static void
config_listen_ipv4(void **state)
{
	struct fixture		*f = *state;
	struct listen_addr	*l = &f->conf.listens[0];
	char			 a[INET6_ADDRSTRLEN];

	assert_int_equal(config_listen(&f->conf, "127.0.0.1:8080", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_int_equal(l->ss.ss_family, AF_INET);
	assert_int_equal(l->sslen, sizeof(struct sockaddr_in));
	assert_string_equal(addr_of(l, a, sizeof(a)), "127.0.0.1");
	assert_int_equal(port_of(l), 8080);
	assert_string_equal(l->text, "127.0.0.1:8080");

	assert_int_equal(config_listen(&f->conf, "10.1.2.3:65535", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 2);
	l = &f->conf.listens[1];
	assert_string_equal(addr_of(l, a, sizeof(a)), "10.1.2.3");
	assert_int_equal(port_of(l), 65535);
	assert_int_equal(config_listen(&f->conf, "10.1.2.3:1", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(port_of(&f->conf.listens[2]), 1);
}

static void
config_listen_ipv6(void **state)
{
	struct fixture		*f = *state;
	struct listen_addr	*l = &f->conf.listens[0];
	char			 a[INET6_ADDRSTRLEN];

	assert_int_equal(config_listen(&f->conf, "[::1]:9000", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_int_equal(l->ss.ss_family, AF_INET6);
	assert_int_equal(l->sslen, sizeof(struct sockaddr_in6));
	assert_string_equal(addr_of(l, a, sizeof(a)), "::1");
	assert_int_equal(port_of(l), 9000);
	assert_string_equal(l->text, "[::1]:9000");

	assert_int_equal(config_listen(&f->conf, "[::]:80", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(addr_of(&f->conf.listens[1], a, sizeof(a)), "::");
	assert_int_equal(config_listen(&f->conf, "[2001:db8::5]:443", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(addr_of(&f->conf.listens[2], a, sizeof(a)),
	    "2001:db8::5");
	assert_int_equal(port_of(&f->conf.listens[2]), 443);
}

static void
config_listen_any(void **state)
{
	struct fixture	*f = *state;
	char		 a[INET6_ADDRSTRLEN];
	int		 i;

	assert_int_equal(config_listen(&f->conf, ":80", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_listen(&f->conf, "*:81", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(f->conf.listens[i].ss.ss_family, AF_INET);
		assert_string_equal(addr_of(&f->conf.listens[i], a, sizeof(a)),
		    "0.0.0.0");
		assert_int_equal(port_of(&f->conf.listens[i]), 80 + i);
	}
	assert_string_equal(f->conf.listens[0].text, ":80");
	assert_string_equal(f->conf.listens[1].text, "*:81");
}

static void
config_listen_rejects(void **state)
{
	static const struct {
		const char	*text;
		const char	*err;	/* a part of the message */
	} bad[] = {
		{ "localhost:80", "bad address in \"localhost:80\"" },
		{ "example.com:80", "bad address" },
		{ "1.2.3.4", "\"1.2.3.4\" is not address:port" },
		{ "", "is not address:port" },
		{ "1.2.3.4:0", "bad port in \"1.2.3.4:0\"" },
		{ "1.2.3.4:65536", "bad port in \"1.2.3.4:65536\"" },
		{ "1.2.3.4:x", "bad port in \"1.2.3.4:x\"" },
		{ "1.2.3.4:", "bad port" },
		{ "1.2.3.4:80x", "bad port" },
		{ "1.2.3.4:-80", "bad port" },
		{ "1.2.3.4:99999999999999999999", "bad port" },
		{ "1.2.3:80", "bad address" },
		{ "1.2.3.256:80", "bad address" },
		{ "::1:80", "bad address" },
		{ "[::1]", "bad port" },
		{ "[::1:80", "bad address" },
		{ "[]:80", "bad address" },
		{ "[1.2.3.4]:80", "bad address" },
		{ "[::g]:80", "bad address" },
		{ "**:80", "bad address" },
	};
	struct fixture	*f = *state;
	char		 longtext[200];
	size_t		 i;
	int		 nbad = 0;

	for (i = 0; i < nitems(bad); i++) {
		f->err[0] = '\0';
		if (config_listen(&f->conf, bad[i].text, f->err,
		    sizeof(f->err)) != -1) {
			print_error("\"%s\" accepted\n", bad[i].text);
			nbad++;
		} else if (strstr(f->err, bad[i].err) == NULL) {
			print_error("\"%s\": error \"%s\" lacks \"%s\"\n",
			    bad[i].text, f->err, bad[i].err);
			nbad++;
		}
	}
	assert_int_equal(nbad, 0);
	assert_int_equal(f->conf.nlistens, 0);

	/* longer than a listen_addr's text */
	memset(longtext, '1', sizeof(longtext));
	memcpy(longtext + sizeof(longtext) - 4, ":80", 4);
	assert_int_equal(config_listen(&f->conf, longtext, f->err,
	    sizeof(f->err)), -1);
	assert_int_equal(f->conf.nlistens, 0);
}

static void
config_listen_limit(void **state)
{
	struct fixture	*f = *state;
	char		 text[32];
	int		 i;

	assert_int_equal(ROOMD_MAX_LISTEN, 16);
	for (i = 0; i < 16; i++) {
		snprintf(text, sizeof(text), "127.0.0.1:%d", 9000 + i);
		assert_int_equal(config_listen(&f->conf, text, f->err,
		    sizeof(f->err)), 0);
	}
	assert_int_equal(f->conf.nlistens, 16);
	assert_int_equal(port_of(&f->conf.listens[15]), 9015);
	assert_int_equal(config_listen(&f->conf, "127.0.0.1:9016", f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err, "too many listen addresses");
	assert_int_equal(f->conf.nlistens, 16);
}

/* ------------------------------------------------------------------ */
/* config_mount */

static void
config_mount_canvas(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nmounts, 1);
	assert_string_equal(f->conf.mounts[0].path, "/canvas");
	assert_ptr_equal(f->conf.mounts[0].dialect, &dialect_canvas);

	assert_int_equal(config_mount(&f->conf, "canvas", "/", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nmounts, 2);
	assert_string_equal(f->conf.mounts[1].path, "/");
	assert_int_equal(config_mount(&f->conf, "canvas", "/a/b", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(f->conf.mounts[2].path, "/a/b");
}

static void
config_mount_trailing_slash(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas/", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(f->conf.mounts[0].path, "/canvas");
	assert_int_equal(config_mount(&f->conf, "canvas", "/x///", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(f->conf.mounts[1].path, "/x");
	/* the root keeps its slash */
	assert_int_equal(config_mount(&f->conf, "canvas", "//", f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(f->conf.mounts[2].path, "/");
	assert_int_equal(f->conf.nmounts, 3);
}

static void
config_mount_duplicate(void **state)
{
	static const struct dialect other = {
		.name = "other",
		.id = 2,
		.default_mount = "/other",
	};
	struct fixture	*f = *state;

	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas/", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nmounts, 1);

	/* a path that another dialect holds */
	snprintf(f->conf.mounts[1].path, sizeof(f->conf.mounts[1].path),
	    "/taken");
	f->conf.mounts[1].dialect = &other;
	f->conf.nmounts = 2;
	assert_int_equal(config_mount(&f->conf, "canvas", "/taken/", f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err, "path /taken is already mounted");
	assert_int_equal(f->conf.nmounts, 2);
	/* a prefix of it is another path */
	assert_int_equal(config_mount(&f->conf, "canvas", "/take", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nmounts, 3);
}

static void
config_mount_unknown_dialect(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(config_mount(&f->conf, "paint", "/paint", f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err, "unknown dialect \"paint\"");
	assert_int_equal(config_mount(&f->conf, "Canvas", "/canvas", f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err, "unknown dialect \"Canvas\"");
	assert_int_equal(f->conf.nmounts, 0);
}

static void
config_mount_bad_path(void **state)
{
	static const char *bad[] = { "canvas", "", "canvas/", " /canvas",
	    "x/" };
	struct fixture	*f = *state;
	char		 longpath[300], want[400];
	size_t		 i;
	int		 nbad = 0;

	for (i = 0; i < nitems(bad); i++) {
		f->err[0] = '\0';
		snprintf(want, sizeof(want), "mount path \"%s\" must start "
		    "with /", bad[i]);
		if (config_mount(&f->conf, "canvas", bad[i], f->err,
		    sizeof(f->err)) != -1) {
			print_error("\"%s\" accepted\n", bad[i]);
			nbad++;
		} else if (strcmp(f->err, want) != 0) {
			print_error("\"%s\": error \"%s\"\n", bad[i], f->err);
			nbad++;
		}
	}
	assert_int_equal(nbad, 0);
	/* a query string is not part of a path */
	assert_int_equal(config_mount(&f->conf, "canvas", "/canvas?x=1",
	    f->err, sizeof(f->err)), -1);
	assert_int_equal(config_mount(&f->conf, "canvas", "/?", f->err,
	    sizeof(f->err)), -1);
	/* a path that does not fit in struct mount */
	longpath[0] = '/';
	memset(longpath + 1, 'p', 255);
	longpath[256] = '\0';
	assert_int_equal(config_mount(&f->conf, "canvas", longpath, f->err,
	    sizeof(f->err)), -1);
	assert_int_equal(f->conf.nmounts, 0);
	longpath[255] = '\0';
	assert_int_equal(config_mount(&f->conf, "canvas", longpath, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(strlen(f->conf.mounts[0].path), 255);
}

static void
config_mount_limit(void **state)
{
	struct fixture	*f = *state;
	char		 path[32];
	int		 i;

	assert_int_equal(ROOMD_MAX_MOUNTS, 16);
	for (i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "/m%d", i);
		assert_int_equal(config_mount(&f->conf, "canvas", path, f->err,
		    sizeof(f->err)), 0);
	}
	assert_int_equal(config_mount(&f->conf, "canvas", "/m16", f->err,
	    sizeof(f->err)), -1);
	assert_string_equal(f->err, "too many mounts");
	/* one already there is still fine */
	assert_int_equal(config_mount(&f->conf, "canvas", "/m3/", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(f->conf.nmounts, 16);
}

/* ------------------------------------------------------------------ */
/* config_load */

static void
config_load_every_keyword(void **state)
{
	struct fixture	*f = *state;
	struct roomd_config *c = &f->conf;
	char		 a[INET6_ADDRSTRLEN];

	assert_int_equal(load(f,
	    "listen 127.0.0.1:9001\n"
	    "listen [::1]:9002\n"
	    "workers 3\n"
	    "mount canvas /draw/\n"
	    "arena_size 64M\n"
	    "arena_path /roomd-test\n"
	    "pidfile /tmp/roomd-test.pid\n"
	    "max_header_bytes 16K\n"
	    "max_body_bytes 2M\n"
	    "max_message_bytes 512K\n"
	    "output_buffer_bytes 1G\n"
	    "idle_timeout 90\n"
	    "ping_interval 15\n"
	    "room_ttl 3600\n"
	    "room_max_members 2K\n"
	    "room_log_max_bytes 8m\n"), 0);
	assert_string_equal(f->err, "");
	assert_string_equal(c->file, f->path);
	assert_int_equal(c->nlistens, 2);
	assert_string_equal(c->listens[0].text, "127.0.0.1:9001");
	assert_string_equal(addr_of(&c->listens[0], a, sizeof(a)), "127.0.0.1");
	assert_int_equal(port_of(&c->listens[0]), 9001);
	assert_string_equal(c->listens[1].text, "[::1]:9002");
	assert_int_equal(c->listens[1].ss.ss_family, AF_INET6);
	assert_int_equal(port_of(&c->listens[1]), 9002);
	assert_int_equal(c->workers, 3);
	assert_int_equal(c->nmounts, 1);
	assert_string_equal(c->mounts[0].path, "/draw");
	assert_ptr_equal(c->mounts[0].dialect, &dialect_canvas);
	assert_int_equal(c->arena_size, 64ULL << 20);
	assert_string_equal(c->arena_path, "/roomd-test");
	assert_string_equal(c->pidfile, "/tmp/roomd-test.pid");
	assert_int_equal(c->max_header_bytes, 16384);
	assert_int_equal(c->max_body_bytes, 2ULL << 20);
	assert_int_equal(c->max_message_bytes, 512ULL << 10);
	assert_int_equal(c->output_buffer_bytes, 1ULL << 30);
	assert_int_equal(c->idle_timeout, 90);
	assert_int_equal(c->ping_interval, 15);
	assert_int_equal(c->room_ttl, 3600);
	assert_int_equal(c->room_max_members, 2048);
	assert_int_equal(c->room_log_max_bytes, 8ULL << 20);
}

static void
config_load_plain_numbers(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(load(f,
	    "arena_size 8388608\n"
	    "max_header_bytes 256\n"
	    "room_max_members 1\n"
	    "workers 1\n"), 0);
	assert_int_equal(f->conf.arena_size, 8388608);
	assert_int_equal(f->conf.max_header_bytes, 256);
	assert_int_equal(f->conf.room_max_members, 1);
	assert_int_equal(f->conf.workers, 1);
	/* what the file does not name keeps its default */
	assert_int_equal(f->conf.max_body_bytes, 65536);
	assert_int_equal(f->conf.idle_timeout, 60);
	assert_string_equal(f->conf.pidfile, "/var/run/roomd.pid");
	assert_int_equal(f->conf.nlistens, 0);
	assert_int_equal(f->conf.nmounts, 0);
}

static void
config_load_comments_blank_lines(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(load(f,
	    "# roomd.conf\n"
	    "\n"
	    "   \n"
	    "\t\n"
	    "\t# indented comment\n"
	    "#workers 9\n"
	    "workers 5 # five\n"
	    "idle_timeout 7#no space\n"
	    "  ping_interval\t\t12  \n"
	    "room_ttl 99\r\n"
	    "###\n"
	    "listen 127.0.0.1:1234"), 0);	/* no newline at the end */
	assert_int_equal(f->conf.workers, 5);
	assert_int_equal(f->conf.idle_timeout, 7);
	assert_int_equal(f->conf.ping_interval, 12);
	assert_int_equal(f->conf.room_ttl, 99);
	assert_int_equal(f->conf.nlistens, 1);
	assert_int_equal(port_of(&f->conf.listens[0]), 1234);
}

static void
config_load_empty_file(void **state)
{
	struct fixture		*f = *state;
	struct roomd_config	 d;

	config_defaults(&d);
	assert_int_equal(load(f, ""), 0);
	/* nothing changes but the name of the file */
	assert_string_equal(f->conf.file, f->path);
	memset(f->conf.file, 0, sizeof(f->conf.file));
	assert_memory_equal(&f->conf, &d, sizeof(d));
}

static void
config_load_unknown_keyword(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "workers 2\n\n# c\nfrobnicate 1\nworkers 3\n", 4,
	    "unknown setting \"frobnicate\"");
	/* stops at the error */
	assert_int_equal(f->conf.workers, 2);
}

static void
config_load_unknown_keyword_case(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "Workers 2\n", 1, "unknown setting \"Workers\"");
}

/*
 * Bug: a keyword that does not exist, given no value or two, is reported
 * as "frobnicate takes one value", as if it were a setting: config.c
 * lines 206-208 check the number of words before the keyword is known.
 */
static void
config_load_bug_unknown_keyword_word_count(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "frobnicate\n", 1, "unknown setting \"frobnicate\"");
	f = fresh(state);
	load_fails(f, "frobnicate a b\n", 1, "unknown setting \"frobnicate\"");
}

static void
config_load_missing_value(void **state)
{
	static const char *keys[] = {
		"workers", "listen", "arena_size", "arena_path", "pidfile",
		"idle_timeout", "room_log_max_bytes",
	};
	struct fixture	*f = *state;
	char		 text[64], reason[64];
	size_t		 i;

	for (i = 0; i < nitems(keys); i++) {
		f = fresh(state);
		snprintf(text, sizeof(text), "# x\n%s\n", keys[i]);
		snprintf(reason, sizeof(reason), "%s takes one value", keys[i]);
		load_fails(f, text, 2, reason);
	}
	f = fresh(state);
	load_fails(f, "workers # 4\n", 1, "workers takes one value");
	f = fresh(state);
	load_fails(f, "mount canvas\n", 1, "usage: mount dialect path");
	f = fresh(state);
	load_fails(f, "mount\n", 1, "usage: mount dialect path");
}

static void
config_load_extra_value(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "workers 2 3\n", 1, "workers takes one value");
	f = fresh(state);
	load_fails(f, "\nlisten 127.0.0.1:80 127.0.0.1:81\n", 2,
	    "listen takes one value");
	f = fresh(state);
	load_fails(f, "pidfile /a /b\n", 1, "pidfile takes one value");
	f = fresh(state);
	load_fails(f, "mount canvas /a /b\n", 1, "usage: mount dialect path");
	f = fresh(state);
	load_fails(f, "listen 1 2 3 4 5 6 7\n", 1, "too many words");
	f = fresh(state);
	load_fails(f, "workers 1 2 3 4 5 6 7 8 9 10\n", 1, "too many words");
}

static void
config_load_bad_number(void **state)
{
	static const struct {
		const char	*text;
		const char	*reason;
	} bad[] = {
		{ "workers two\n",
		    "workers: bad value \"two\" (from 1 to 64)" },
		{ "workers 4x\n", "workers: bad value \"4x\" (from 1 to 64)" },
		{ "workers 4K\n", "workers: bad value \"4K\" (from 1 to 64)" },
		{ "workers 99999999999999999999\n", "workers: bad value "
		    "\"99999999999999999999\" (from 1 to 64)" },
		{ "idle_timeout -1\n", "idle_timeout: bad value \"-1\" "
		    "(from 1 to 86400)" },
		{ "room_ttl 1.5\n", "room_ttl: bad value \"1.5\" "
		    "(from 1 to 31536000)" },
		{ "arena_size 12X\n", "arena_size: bad value \"12X\" "
		    "(from 4194304 to 1099511627776)" },
		{ "arena_size 64MB\n", "arena_size: bad value \"64MB\" "
		    "(from 4194304 to 1099511627776)" },
		{ "max_body_bytes 1.5M\n", "max_body_bytes: bad value "
		    "\"1.5M\" (from 64 to 67108864)" },
		{ "room_max_members lots\n", "room_max_members: bad value "
		    "\"lots\" (from 1 to 1048576)" },
		{ "listen 127.0.0.1:http\n",
		    "bad port in \"127.0.0.1:http\"" },
	};
	struct fixture	*f = *state;
	size_t		 i;

	for (i = 0; i < nitems(bad); i++) {
		f = fresh(state);
		load_fails(f, bad[i].text, 1, bad[i].reason);
	}
}

static void
config_load_out_of_range(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "workers 0\n", 1,
	    "workers: bad value \"0\" (from 1 to 64)");
	f = fresh(state);
	load_fails(f, "workers 65\n", 1,
	    "workers: bad value \"65\" (from 1 to 64)");
	f = fresh(state);
	load_fails(f, "arena_size 1M\n", 1,
	    "arena_size: bad value \"1M\" (from 4194304 to 1099511627776)");
	f = fresh(state);
	load_fails(f, "arena_size 4194303\n", 1, "arena_size: bad value "
	    "\"4194303\" (from 4194304 to 1099511627776)");
	f = fresh(state);
	load_fails(f, "idle_timeout 0\n", 1,
	    "idle_timeout: bad value \"0\" (from 1 to 86400)");
	f = fresh(state);
	load_fails(f, "room_max_members 0\n", 1,
	    "room_max_members: bad value \"0\" (from 1 to 1048576)");

	/* and the ends of the ranges are accepted */
	f = fresh(state);
	assert_int_equal(load(f, "workers 1\n"), 0);
	assert_int_equal(f->conf.workers, 1);
	f = fresh(state);
	assert_int_equal(load(f, "workers 64\narena_size 4M\n"), 0);
	assert_int_equal(f->conf.workers, 64);
	assert_int_equal(f->conf.arena_size, 4ULL << 20);
}

static void
config_load_bad_listen_and_mount(void **state)
{
	struct fixture	*f = *state;

	load_fails(f, "listen localhost:80\n", 1, "bad address in "
	    "\"localhost:80\" (use a numeric IPv4 address or [IPv6])");
	f = fresh(state);
	load_fails(f, "# mounts\nmount paint /paint\n", 2,
	    "unknown dialect \"paint\"");
	f = fresh(state);
	load_fails(f, "mount canvas canvas\n", 1,
	    "mount path \"canvas\" must start with /");
}

static void
config_load_path_too_long(void **state)
{
	struct fixture	*f = *state;
	char		 text[400];

	/* arena_path holds 255 characters */
	snprintf(text, sizeof(text), "arena_path /%0255d\n", 0);
	load_fails(f, text, 1, "arena_path is too long");
	f = fresh(state);
	snprintf(text, sizeof(text), "arena_path /%0254d\n", 0);
	assert_int_equal(load(f, text), 0);
	assert_int_equal(strlen(f->conf.arena_path), 255);
}

/* A file of n characters of comment on line 2 between two settings. */
static char *
long_line_file(size_t n)
{
	char	*text;
	size_t	 off;

	text = malloc(n + 64);
	assert_non_null(text);
	off = (size_t)snprintf(text, n + 64, "workers 2\n");
	text[off] = '#';
	memset(text + off + 1, 'x', n - 1);
	off += n;
	snprintf(text + off, n + 64 - off, "\nworkers 3\n");
	return text;
}

static void
config_load_long_line(void **state)
{
	struct fixture	*f = *state;
	char		*text;

	text = long_line_file(4096);
	load_fails(f, text, 2, "line too long");
	free(text);
	f = fresh(state);
	text = long_line_file(10000);
	load_fails(f, text, 2, "line too long");
	free(text);
	/* a shorter one is fine */
	f = fresh(state);
	text = long_line_file(4094);
	assert_int_equal(load(f, text), 0);
	free(text);
	assert_int_equal(f->conf.workers, 3);
}

/*
 * Bug: a line of exactly 4095 characters is refused as "line too long".
 * config.c line 262 reads into a buffer of 4096 bytes, which holds 4095
 * characters and the NUL but not the newline after them, so fgets stops
 * before the newline and line 272 takes the line for a longer one.  (Or,
 * if the limit is meant to be 4094 characters, the manual does not say
 * so.)
 */
static void
config_load_bug_line_of_4095(void **state)
{
	struct fixture	*f = *state;
	char		*text;

	text = long_line_file(4095);
	assert_int_equal(strlen(text), strlen("workers 2\n") + 4095 +
	    strlen("\nworkers 3\n"));
	f->err[0] = '\0';
	if (load(f, text) != 0) {
		free(text);
		fail_msg("4095 characters refused: %s", f->err);
	}
	free(text);
	assert_int_equal(f->conf.workers, 3);
}

static void
config_load_missing_file(void **state)
{
	struct fixture	*f = *state;
	char		 want[256];

	/* a name that surely does not exist: a temporary file, removed */
	write_conf(f, "");
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(config_load(&f->conf, f->path, f->err,
	    sizeof(f->err)), -1);
	snprintf(want, sizeof(want), "%s: %s", f->path, strerror(ENOENT));
	assert_string_equal(f->err, want);
	assert_string_equal(f->conf.file, "");
}

/* A file that cannot be read: the error comes from the read. */
static void
config_load_read_error(void **state)
{
	struct fixture	*f = *state;
	char		 want[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/roomd-test-config.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		f->dir[0] = '\0';
		fail_msg("mkdtemp: %s", strerror(errno));
	}
	/* fopen takes a directory for reading; the first read fails */
	assert_int_equal(config_load(&f->conf, f->dir, f->err,
	    sizeof(f->err)), -1);
	snprintf(want, sizeof(want), "%s:0: %s", f->dir, strerror(EISDIR));
	assert_string_equal(f->err, want);
}

/* ------------------------------------------------------------------ */
/* config_finish */

static void
config_finish_defaults(void **state)
{
	struct fixture	*f = *state;
	char		 a[INET6_ADDRSTRLEN];

	assert_int_equal(config_finish(&f->conf, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_string_equal(f->conf.listens[0].text, "127.0.0.1:8080");
	assert_int_equal(f->conf.listens[0].ss.ss_family, AF_INET);
	assert_string_equal(addr_of(&f->conf.listens[0], a, sizeof(a)),
	    "127.0.0.1");
	assert_int_equal(port_of(&f->conf.listens[0]), 8080);
	assert_int_equal(f->conf.nmounts, 1);
	assert_string_equal(f->conf.mounts[0].path, "/canvas");
	assert_ptr_equal(f->conf.mounts[0].dialect, &dialect_canvas);
	/* a second call adds nothing */
	assert_int_equal(config_finish(&f->conf, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_int_equal(f->conf.nmounts, 1);
}

static void
config_finish_keeps_settings(void **state)
{
	struct fixture	*f = *state;

	assert_int_equal(load(f, "listen [::1]:9000\nmount canvas /\n"), 0);
	assert_int_equal(config_finish(&f->conf, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_string_equal(f->conf.listens[0].text, "[::1]:9000");
	assert_int_equal(f->conf.nmounts, 1);
	assert_string_equal(f->conf.mounts[0].path, "/");
}

static void
config_finish_one_of_two(void **state)
{
	struct fixture	*f = *state;

	/* listens set, mounts not */
	assert_int_equal(config_listen(&f->conf, ":7000", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_finish(&f->conf, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_string_equal(f->conf.listens[0].text, ":7000");
	assert_int_equal(f->conf.nmounts, 1);
	assert_string_equal(f->conf.mounts[0].path, "/canvas");

	/* mounts set, listens not */
	config_defaults(&f->conf);
	assert_int_equal(config_mount(&f->conf, "canvas", "/c", f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_finish(&f->conf, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->conf.nlistens, 1);
	assert_string_equal(f->conf.listens[0].text, "127.0.0.1:8080");
	assert_int_equal(f->conf.nmounts, 1);
	assert_string_equal(f->conf.mounts[0].path, "/c");
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_defaults_values),
		T(config_listen_ipv4),
		T(config_listen_ipv6),
		T(config_listen_any),
		T(config_listen_rejects),
		T(config_listen_limit),
		T(config_mount_canvas),
		T(config_mount_trailing_slash),
		T(config_mount_duplicate),
		T(config_mount_unknown_dialect),
		T(config_mount_bad_path),
		T(config_mount_limit),
		T(config_load_every_keyword),
		T(config_load_plain_numbers),
		T(config_load_comments_blank_lines),
		T(config_load_empty_file),
		T(config_load_unknown_keyword),
		T(config_load_unknown_keyword_case),
		T(config_load_bug_unknown_keyword_word_count),
		T(config_load_missing_value),
		T(config_load_extra_value),
		T(config_load_bad_number),
		T(config_load_out_of_range),
		T(config_load_bad_listen_and_mount),
		T(config_load_path_too_long),
		T(config_load_long_line),
		T(config_load_bug_line_of_4095),
		T(config_load_missing_file),
		T(config_load_read_error),
		T(config_finish_defaults),
		T(config_finish_keeps_settings),
		T(config_finish_one_of_two),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
