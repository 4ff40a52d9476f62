/*
 * roomd.c: the master process.  It reads the configuration, binds one
 * SO_REUSEPORT socket per worker slot and listen address, makes the
 * shared-memory arena and the doorbell mesh, forks the workers and keeps
 * them alive.  It never talks to a client.
 *
 * Signal handlers only set flags; the loop below acts on them (nginx's
 * way), so everything the master does runs outside signal context.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "roomd.h"
#include "shm.h"

struct roomd		*env;
static struct arena	 arena;		/* env->arena */

static volatile sig_atomic_t	 sig_stop, sig_reload, sig_child, sig_usr1;
static int			 arena_fd = -1;	/* arena_claim() */

/* The command line, kept so that a reload builds the same way. */
static struct {
	const char	*file;
	int		 file_given;
	char		*listens[ROOMD_MAX_LISTEN];
	int		 nlistens;
	char		*mounts[ROOMD_MAX_MOUNTS];
	int		 nmounts;
	int		 workers;
	int		 check;		/* -t */
	const char	*reshard;	/* -R: the old configuration */
} cli;

static struct {
	pid_t		 pid;
	time_t		 started;
	time_t		 respawn_at;	/* when a crash-looping slot may fork */
	unsigned	 restarts;
	int		 state;		/* enum worker_state */
} workers[ROOMD_MAX_WORKERS];

static void	usage(FILE *, int) __attribute__((noreturn));
static void	master_signal(int);
static void	master_block_signals(sigset_t *);
static int	master_probe(const struct roomd_config *);
static int	master_arena(void);
static int	master_listen(const struct roomd_config *, int slot, int from);
static int	master_same_listen(const struct roomd_config *, int, int);
static void	master_adopt(const struct roomd_config *, int, int);
static void	master_unlisten(int slot);
static pid_t	master_fork(int);
static void	master_reap(int stopping);
static void	master_stop(void);
static void	master_reload(void);
static void	master_pidfile(void);
static void	master_recovered(const char *, uint64_t);
static void	master_drop_privileges(void);
static void	master_control(struct pollfd *, time_t);
static int	master_live_slot(void);
static int	master_reshard(void);

static void
usage(FILE *fp, int status)
{
	fprintf(fp, "usage: roomd [-fhtVv] [-c file] [-l address:port] "
	    "[-M dialect=path] [-R old-file] [-w workers]\n");
	exit(status);
}

static void
master_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		sig_stop = 1;
		break;
	case SIGHUP:
		sig_reload = 1;
		break;
	case SIGCHLD:
		sig_child = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	}
}

/* Build the configuration from the file and the command line. */
static int
master_config(struct roomd_config *c, char *err, size_t errlen)
{
	char	*eq, dialect[64];
	int	 i;

	config_defaults(c);
	if (cli.file_given || access(cli.file, F_OK) == 0) {
		if (config_load(c, cli.file, err, errlen) == -1)
			return -1;
	}
	if (cli.nlistens > 0)
		c->nlistens = 0;
	for (i = 0; i < cli.nlistens; i++)
		if (config_listen(c, cli.listens[i], err, errlen) == -1)
			return -1;
	if (config_finish(c, err, errlen) == -1)
		return -1;
	for (i = 0; i < cli.nmounts; i++) {
		if ((eq = strchr(cli.mounts[i], '=')) == NULL ||
		    (size_t)(eq - cli.mounts[i]) >= sizeof(dialect)) {
			snprintf(err, errlen, "-M %s: expected dialect=path",
			    cli.mounts[i]);
			return -1;
		}
		snprintf(dialect, sizeof(dialect), "%.*s",
		    (int)(eq - cli.mounts[i]), cli.mounts[i]);
		if (config_mount(c, dialect, eq + 1, err, errlen) == -1)
			return -1;
	}
	if (cli.workers > 0)
		c->workers = cli.workers;
	return config_check_api(c, err, errlen);
}

/*
 * The options, into cli and env.  Returns -1, having said why on stderr,
 * for a bad one; exits with the usage for -h or a malformed command line,
 * and with the version for -V.
 */
static int
master_options(int argc, char *argv[])
{
	const char	*errstr = NULL;
	char		*end;
	long		 n;
	int		 ch;

	cli.file = ROOMD_CONF;
	while ((ch = getopt(argc, argv, "c:fhl:M:R:tVvw:")) != -1) {
		switch (ch) {
		case 'c':
			cli.file = optarg;
			cli.file_given = 1;
			break;
		case 'f':
			env->foreground = 1;
			break;
		case 'h':
			usage(stdout, 0);
		case 'l':
			if (cli.nlistens == ROOMD_MAX_LISTEN)
				errstr = "too many -l options";
			else
				cli.listens[cli.nlistens++] = optarg;
			break;
		case 'M':
			if (cli.nmounts == ROOMD_MAX_MOUNTS)
				errstr = "too many -M options";
			else
				cli.mounts[cli.nmounts++] = optarg;
			break;
		case 'R':
			cli.reshard = optarg;
			break;
		case 't':
			cli.check = 1;
			break;
		case 'V':	/* -v was taken already: verbose */
			printf("roomd %s\n", PACKAGE_VERSION);
			exit(0);
		case 'v':
			env->verbose = 1;
			break;
		case 'w':
			n = strtol(optarg, &end, 10);
			if (*end != '\0' || n < 1 || n > ROOMD_MAX_WORKERS)
				errstr = "-w takes a number from 1 to 64";
			else
				cli.workers = (int)n;
			break;
		default:
			usage(stderr, 1);
		}
	}
	if (optind != argc)
		usage(stderr, 1);
	if (errstr != NULL) {
		fprintf(stderr, "roomd: %s\n", errstr);
		return -1;
	}
	return 0;
}

/*
 * The configuration, and the TLS contexts of its listeners: keys are
 * often readable by root only, so they are loaded now, before privileges
 * are dropped; the workers inherit the contexts.  Returns -1, having said
 * why on stderr, if either is bad.
 */
static int
master_configure(void)
{
	char	 err[1024];

	if (master_config(&env->conf, err, sizeof(err)) == -1 ||
	    server_tls_load(&env->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "roomd: %s\n", err);
		return -1;
	}
	return 0;
}

/*
 * roomd -R old-file: the rooms moved from the shards of old-file's
 * cluster lines to the configuration's (cluster_reshard.c), and exit.
 */
static int
master_reshard(void)
{
	static struct roomd_config	 old;
	char				 err[1024];
	int				 rc;

	config_defaults(&old);
	if (config_load(&old, cli.reshard, err, sizeof(err)) == -1 ||
	    config_finish(&old, err, sizeof(err)) == -1) {
		fprintf(stderr, "roomd: -R: %s\n", err);
		return 1;
	}
	server_tls_free();
	log_init(1, env->verbose);
	log_setproc("reshard");
	rc = cluster_reshard(&old, &env->conf);
	return rc == 0 ? 0 : 1;
}

/* One descriptor per connection: as many as the hard limit allows. */
static void
master_rlimit(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Everything the workers share, made before they are forked: the
 * listening sockets, the arena, the chat's key, the doorbell mesh and the
 * admin socket; then detach (unless -f) and drop privileges.  Returns -1,
 * having logged why, if something cannot be made.
 */
static int
master_start(void)
{
	int	 i;

	if (master_probe(&env->conf) == -1)
		return -1;
	env->nworkers = env->conf.workers;
	log_init(1, env->verbose);
	log_setproc("master");
	master_rlimit();
	memset(env->listen_fd, -1, sizeof(env->listen_fd));
	for (i = 0; i < env->nworkers; i++)
		if (master_listen(&env->conf, i, -1) == -1)
			return -1;
	/* One API socket that every worker accepts on, so that a worker
	 * stopped or busy leaves the API to the others. */
	if (env->conf.api_listen[0] != '\0' &&
	    (env->api_fd = api_listen_open(&env->conf)) == -1)
		return -1;
	if (health_open() == -1)
		return -1;
	shm_recovery_hook = master_recovered;
	proc_live_slot = master_live_slot;
	if (master_arena() == -1)
		return -1;
	/* The chat's session key when roomd.conf sets none: one for all
	 * workers, new at each start. */
	if (util_token(env->chat_secret, sizeof(env->chat_secret)) == -1)
		fatalx("no random numbers for the chat's session key");
	if (proc_mesh_open() == -1 || control_open() == -1)
		return -1;
	if (!env->foreground) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(0, env->verbose);
		master_pidfile();
	}
	/* Last: the sockets, the arena and the pid file need root. */
	master_drop_privileges();
	cluster_init();
	return 0;
}

/*
 * The handlers of the master's signals.  They stay blocked
 * (master_block_signals): whatever came during the start is delivered by
 * the first ppoll() of master_loop.
 */
static void
master_handlers(void)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = master_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);	/* the master's word to workers */
}

/* Fork one worker per slot of the first generation. */
static void
master_start_workers(void)
{
	int	 i;

	for (i = 0; i < env->nworkers; i++) {
		workers[i].state = WORKER_ACTIVE;
		workers[i].pid = master_fork(i);
	}
	log_info("roomd %s started: %d workers on %s%s", PACKAGE_VERSION,
	    env->nworkers, env->conf.listens[0].text,
	    env->conf.nlistens > 1 ? " and more" : "");
}

/* Fork again the active slots whose worker died, once they may. */
static void
master_respawn(void)
{
	int	 i;

	for (i = 0; i < ROOMD_MAX_WORKERS; i++)
		if (workers[i].state == WORKER_ACTIVE && workers[i].pid == 0 &&
		    time(NULL) >= workers[i].respawn_at)
			workers[i].pid = master_fork(i);
}

/*
 * Until SIGTERM, SIGINT or a stop on the admin socket: act on the flags
 * the handlers set, serve the admin socket and the metrics endpoint, keep
 * the workers alive, and expire rooms once a second.
 */
static void
master_loop(time_t started)
{
	struct timespec	 tick = { 1, 0 };
	struct pollfd	 pfd[2];
	sigset_t	 empty;

	/* Signals are blocked except while ppoll() waits, so a flag set by
	 * a handler is always seen on the next turn of this loop. */
	sigemptyset(&empty);
	health_tick();		/* the first arena walk, for /readyz */
	control_fds(&pfd[0].fd, &pfd[1].fd);
	pfd[0].events = pfd[1].events = POLLIN;
	for (;;) {
		if (ppoll(pfd, 2, &tick, &empty) == -1 && errno != EINTR)
			fatal("ppoll");
		master_control(pfd, started);
		if (sig_stop)
			break;
		if (sig_child) {
			sig_child = 0;
			master_reap(0);
		}
		master_respawn();
		cluster_keepers_respawn();
		if (sig_reload) {
			sig_reload = 0;
			master_reload();
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			log_info("SIGUSR1: no log files to reopen");
		}
		room_reap();
		health_tick();
	}
}

int
main(int argc, char *argv[])
{
	static struct roomd	 roomd;
	sigset_t		 block;
	time_t			 started = time(NULL);

	/* A signal before its handler is installed would kill the master
	 * (SIGHUP, SIGUSR1) or be lost: held until then. */
	master_block_signals(&block);
	env = &roomd;
	env->slot = -1;
	env->api_fd = -1;
	if (master_options(argc, argv) == -1 || master_configure() == -1)
		return 1;
	if (cli.check) {
		server_tls_free();
		fprintf(stderr, "roomd: configuration OK\n");
		return 0;
	}
	if (cli.reshard != NULL)
		return master_reshard();
	if (master_start() == -1)
		return 1;
	master_handlers();
	cluster_keepers_start();
	master_start_workers();
	master_loop(started);
	master_stop();
	return 0;
}

/*
 * Block the signals the master handles, from its first instruction until
 * ppoll() waits with an empty mask; a worker keeps them blocked until its
 * loop has handlers for them (server_main).
 */
static void
master_block_signals(sigset_t *block)
{
	sigemptyset(block);
	sigaddset(block, SIGTERM);
	sigaddset(block, SIGINT);
	sigaddset(block, SIGHUP);
	sigaddset(block, SIGCHLD);
	sigaddset(block, SIGUSR1);
	sigaddset(block, SIGUSR2);
	sigprocmask(SIG_BLOCK, block, NULL);
}

/*
 * At startup only: bind each listen address once without SO_REUSEPORT.
 * The listening sockets all set it, so without this a second roomd on
 * the same address would share the port with the first and take half of
 * its connections.  Port 0 (any free port) cannot clash.  A reload's new
 * generation shares the port with the old one on purpose and skips this.
 */
static int
master_probe(const struct roomd_config *c)
{
	const struct sockaddr_in	*sin;
	int				 l, fd, on = 1, rc;

	for (l = 0; l < c->nlistens; l++) {
		sin = (const struct sockaddr_in *)&c->listens[l].ss;
		if (sin->sin_port == 0)	/* same place in sockaddr_in6 */
			continue;
		if ((fd = socket(c->listens[l].ss.ss_family, SOCK_STREAM |
		    SOCK_CLOEXEC, 0)) == -1)
			continue;	/* master_listen() will say why */
		/* A port left in TIME_WAIT by an earlier roomd is free. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		rc = bind(fd, (const struct sockaddr *)&c->listens[l].ss,
		    c->listens[l].sslen);
		close(fd);
		if (rc == -1 && errno == EADDRINUSE) {
			fprintf(stderr, "roomd: %s: address already in use\n",
			    c->listens[l].text);
			return -1;
		}
	}
	return 0;
}

/*
 * An untrusted arena at path was replaced (rc from arena_replace or
 * arena_replace_bad): claim the fresh one and say what became of the old.
 * 0 or -1.
 */
static int
master_arena_fresh(const char *path, int rc, const char *aside,
    const char *err)
{
	char	 cerr[1024];
	int	 fd;

	if (rc != 0 || (fd = arena_claim(path, 0, cerr, sizeof(cerr))) ==
	    -1) {
		log_warnx("arena: %s", rc != 0 ? err : cerr);
		return -1;
	}
	close(arena_fd);
	arena_fd = fd;
	log_warnx("arena %s: %s%s; a fresh arena starts with epoch %llu and "
	    "no rooms", path, aside[0] ? "moved aside to " : "removed", aside,
	    (unsigned long long)arena_epoch(env->arena));
	return 0;
}

/*
 * Map the arena.  One that was reattached is trusted only if its header
 * is good (magic, layout and size) and the checker, which takes every
 * lock once and so repairs those whose owners died, finds it sound; if
 * not, it is moved aside (a file) or removed (a shm object) and a fresh
 * one with the next epoch takes its place, so clients that come back can
 * tell that what they knew is gone.  An object of another size than
 * arena_size is refused: that is the configuration's to settle.
 */
static int
master_arena(void)
{
	struct roomd_config	*c = &env->conf;
	const char		*path = c->arena_path[0] ? c->arena_path : NULL;
	char			 err[1024], why[512], aside[PATH_MAX];
	int			 reattached, i, rc;

	env->arena = &arena;
	if (path != NULL && (arena_fd = arena_claim(path, ROOMD_STOP_TIMEOUT +
	    5, err, sizeof(err))) == -1) {
		log_warnx("arena: %s", err);
		return -1;
	}
	if ((rc = arena_open(env->arena, path, c->arena_size, &reattached,
	    why, sizeof(why))) == SHM_EHEADER && path != NULL) {
		/* A header that is bad is as untrusted as a failed walk. */
		log_warnx("arena %s is not trusted: %s", path, why);
		rc = arena_replace_bad(env->arena, path, c->arena_size, aside,
		    sizeof(aside), err, sizeof(err));
		return master_arena_fresh(path, rc, aside, err);
	}
	if (rc != 0) {
		log_warnx("arena: %s", why);
		return -1;
	}
	if (!reattached) {
		log_info("arena %s: new, epoch %llu", path ? path : "(anonymous)",
		    (unsigned long long)arena_epoch(env->arena));
		return 0;
	}
	if (arena_check_alone(env->arena, why, sizeof(why)) == -1) {
		log_warnx("arena %s is not trusted: %s", path, why);
		rc = arena_replace(env->arena, path, aside, sizeof(aside), err,
		    sizeof(err));
		return master_arena_fresh(path, rc, aside, err);
	}
	log_info("reattached to arena %s: %llu rooms kept, epoch %llu", path,
	    (unsigned long long)env->arena->hdr->nrooms,
	    (unsigned long long)arena_epoch(env->arena));
	/* Nobody is connected any more: every room gets room_ttl for its
	 * members to come back. */
	for (i = 0; i < ARENA_MAX_SLOTS; i++)
		room_slot_dead(i);
	return 0;
}

/*
 * The listening sockets of slot s, one per address of c.  Where the slot
 * "from" (or -1) of the generation before listens on the same address,
 * its socket is left for master_adopt() to hand over instead.
 */
static int
master_listen(const struct roomd_config *c, int s, int from)
{
	int	 l, fd, on = 1;

	for (l = 0; l < c->nlistens; l++) {
		if (master_same_listen(c, l, from) != -1)
			continue;
		fd = socket(c->listens[l].ss.ss_family, SOCK_STREAM |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			log_warn("socket");
			master_unlisten(s);
			return -1;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
		    sizeof(on)) == -1 ||
		    bind(fd, (struct sockaddr *)&c->listens[l].ss,
		    c->listens[l].sslen) == -1 || listen(fd, ROOMD_LISTEN_BACKLOG) == -1) {
			log_warn("listen on %s", c->listens[l].text);
			close(fd);
			master_unlisten(s);
			return -1;
		}
		env->listen_fd[s][l] = fd;
	}
	return 0;
}

/* Which socket of the running slot "from" listens on c's address l, or -1. */
static int
master_same_listen(const struct roomd_config *c, int l, int from)
{
	const struct listen_addr	*a = &c->listens[l], *b;
	int				 m;

	if (from == -1)
		return -1;
	for (m = 0; m < env->conf.nlistens; m++) {
		b = &env->conf.listens[m];
		if (env->listen_fd[from][m] != -1 && a->sslen == b->sslen &&
		    memcmp(&a->ss, &b->ss, a->sslen) == 0)
			return m;
	}
	return -1;
}

/*
 * Move the sockets master_listen() left from slot "from" to slot s.  The
 * old worker then closes only its own descriptor, and the socket with
 * whatever waits in it lives on in the new worker: closing the last
 * descriptor of a socket in a SO_REUSEPORT group would reset the
 * connections that reached it between the old worker's last accept and
 * its close.
 */
static void
master_adopt(const struct roomd_config *c, int s, int from)
{
	int	 l, m;

	for (l = 0; l < c->nlistens; l++)
		if ((m = master_same_listen(c, l, from)) != -1) {
			env->listen_fd[s][l] = env->listen_fd[from][m];
			env->listen_fd[from][m] = -1;
		}
}

static void
master_unlisten(int s)
{
	int	 l;

	for (l = 0; l < ROOMD_MAX_LISTEN; l++)
		if (env->listen_fd[s][l] != -1) {
			close(env->listen_fd[s][l]);
			env->listen_fd[s][l] = -1;
		}
}

/*
 * A reload changed the listen addresses, the number of workers or the
 * mounts: give a new generation of workers in free slots the old ones'
 * listening sockets on the addresses that stay and new ones for the rest,
 * tell the running ones to drain (SIGUSR2: they close their listening
 * sockets and end once their connections have, or after drain_timeout),
 * and start the new ones.  Both generations share the
 * arena, so rooms and members stay where they are.  Returns -1, with
 * nothing changed, if it cannot.
 */
static int
master_generation(const struct roomd_config *c)
{
	int	 slot[ROOMD_MAX_WORKERS], from[ROOMD_MAX_WORKERS], n = 0, i;
	int	 nold = 0;
	char	 err[1024];

	for (i = 0; i < ROOMD_MAX_WORKERS; i++) {
		if (workers[i].state == WORKER_ACTIVE)
			from[nold++] = i;
		else if (workers[i].state == WORKER_FREE &&
		    workers[i].pid == 0 && n < c->workers)
			slot[n++] = i;
	}
	if (n < c->workers) {
		log_warnx("reload: no free slots for %d new workers while the "
		    "old ones drain", c->workers);
		return -1;
	}
	/* The k-th new worker takes over the k-th old one's sockets on the
	 * addresses both have; the rest are bound now. */
	for (i = 0; i < n; i++)
		if (master_listen(c, slot[i], i < nold ? from[i] : -1) == -1) {
			while (i-- > 0)
				master_unlisten(slot[i]);
			return -1;
		}
	if (server_tls_load(c, err, sizeof(err)) == -1) {
		log_warnx("reload: %s", err);
		for (i = 0; i < n; i++)
			master_unlisten(slot[i]);
		return -1;
	}
	for (i = 0; i < n && i < nold; i++)
		master_adopt(c, slot[i], from[i]);
	/* The new sockets listen already, so no connection is refused
	 * while the old ones close. */
	for (i = 0; i < nold; i++) {
		workers[from[i]].state = WORKER_DRAINING;
		if (workers[from[i]].pid > 0)
			kill(workers[from[i]].pid, SIGUSR2);
		master_unlisten(from[i]);
	}
	env->conf = *c;
	env->nworkers = n;
	for (i = 0; i < n; i++) {
		workers[slot[i]].state = WORKER_ACTIVE;
		workers[slot[i]].restarts = 0;
		workers[slot[i]].pid = master_fork(slot[i]);
	}
	log_info("reload: %d new workers on %s%s; the old ones drain for up "
	    "to %d seconds", n, c->listens[0].text, c->nlistens > 1 ?
	    " and more" : "", c->drain_timeout);
	return 0;
}

static pid_t
master_fork(int slot)
{
	pid_t		 pid;

	switch (pid = fork()) {
	case -1:
		log_warn("fork worker %d", slot);
		workers[slot].respawn_at = time(NULL) + 1;
		return 0;
	case 0:
		/* The master's signals stay blocked until server_main has
		 * its own handlers: a SIGTERM or SIGUSR2 sent to a worker
		 * that is still starting waits for them, not lost. */
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGUSR1, SIG_IGN);
		/* A worker must not outlive its master. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(0);
		server_main(slot);
	}
	workers[slot].started = time(NULL);
	log_debug("worker %d is pid %d", slot, (int)pid);
	return pid;
}

static void
master_recovered(const char *what, uint64_t pid)
{
	log_warnx("shared memory %s lock was held by dead pid %llu: "
	    "recovered", what, (unsigned long long)pid);
}

/*
 * The slot of a worker to hand work to (proc_forward): a serving one that
 * is alive, else one that will be forked again and read its inbox then;
 * -1 if none.
 */
static int
master_live_slot(void)
{
	int	 i, respawning = -1;

	for (i = 0; i < ROOMD_MAX_WORKERS; i++) {
		if (workers[i].state != WORKER_ACTIVE)
			continue;
		if (workers[i].pid != 0)
			return i;
		if (respawning == -1)
			respawning = i;
	}
	return respawning;
}

/* Collect dead workers; repair the arena after each and mark the slot. */
static void
master_reap(int stopping)
{
	pid_t		 pid;
	int		 status, i;
	char		 err[256];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < ROOMD_MAX_WORKERS; i++)
			if (workers[i].pid == pid)
				break;
		if (i == ROOMD_MAX_WORKERS) {
			/* A keeper, or a helper (cluster_keeper.c). */
			cluster_keeper_died(pid, status, stopping);
			continue;
		}
		workers[i].pid = 0;
		if (stopping)
			continue;
		if (workers[i].state == WORKER_DRAINING) {
			/* An old generation's worker is done. */
			workers[i].state = WORKER_FREE;
			log_info("worker %d (pid %d) drained", i, (int)pid);
			room_slot_dead(i);
			continue;
		}
		stats_add(STAT_WORKER_RESTARTS, 1);
		workers[i].restarts++;
		if (WIFSIGNALED(status))
			log_warnx("worker %d (pid %d) killed by signal %d",
			    i, (int)pid, WTERMSIG(status));
		else
			log_warnx("worker %d (pid %d) exited with status %d",
			    i, (int)pid, WEXITSTATUS(status));
		/* Its connections are gone: forget them, and take every
		 * lock once so one it died holding is repaired now. */
		room_slot_dead(i);
		if (env->verbose && arena_check_live(env->arena, err,
		    sizeof(err)) == -1)
			log_warnx("arena check after worker %d died: %s", i,
			    err);
		/* A slot that dies right after starting waits a second. */
		workers[i].respawn_at = time(NULL) - workers[i].started < 1 ?
		    time(NULL) + 1 : 0;
	}
}

static void
master_stop(void)
{
	time_t	 deadline = time(NULL) + ROOMD_STOP_TIMEOUT + 2;
	int	 i, alive;

	log_info("stopping: asking %d workers to close their connections",
	    env->nworkers);
	for (i = 0; i < ROOMD_MAX_WORKERS; i++)
		if (workers[i].pid > 0)
			kill(workers[i].pid, SIGTERM);
	for (;;) {
		master_reap(1);
		for (alive = 0, i = 0; i < ROOMD_MAX_WORKERS; i++)
			alive += workers[i].pid > 0;
		if (alive == 0)
			break;
		if (time(NULL) >= deadline) {
			for (i = 0; i < ROOMD_MAX_WORKERS; i++)
				if (workers[i].pid > 0)
					kill(workers[i].pid, SIGKILL);
		}
		usleep(20000);
	}
	if (!env->foreground)
		unlink(env->conf.pidfile);
	cluster_keepers_stop();
	control_close();
	arena_close(env->arena);
	log_info("stopped");
}

/*
 * SIGHUP: read the configuration again.  A bad file is logged and the
 * running one kept.  A good one is applied by the master and by every
 * worker (told with SIGHUP) to what can change live: limits, timeouts,
 * the dialects' settings.  No connection is touched.  Changed listen
 * addresses, workers or mounts start a new generation of workers while
 * the old one drains (master_generation).  The arena, sockets and user
 * need a restart; the log says so.
 */
static void
master_reload(void)
{
	struct roomd_config	 c;
	char			 err[1024];
	int			 i, restart, gen;

	if (env->conf.file[0] == '\0') {
		log_info("reload: no configuration file to read");
		return;
	}
	if (master_config(&c, err, sizeof(err)) == -1) {
		log_warnx("reload: %s; keeping the running configuration",
		    err);
		return;
	}
	gen = config_generation_differs(&env->conf, &c);
	if (!gen)
		server_tls_reload(&c);
	restart = config_apply_live(&env->conf, &c);
	for (i = 0; i < ROOMD_MAX_WORKERS; i++)
		if (workers[i].state == WORKER_ACTIVE && workers[i].pid > 0)
			kill(workers[i].pid, SIGHUP);
	cluster_keepers_signal(SIGHUP);
	if (gen && master_generation(&c) == -1)
		log_warnx("reload: the new listen addresses, workers or mounts "
		    "need a restart");
	log_info("reload: %s applied%s", env->conf.file, restart ?
	    "; changes to the arena, sockets, pid file or user need a "
	    "restart" : "");
}

/* One request on the admin socket or the metrics endpoint, if any. */
static void
master_control(struct pollfd *pfd, time_t started)
{
	struct worker_info	 w[ROOMD_MAX_WORKERS];
	int			 i, stop = 0, reload = 0;

	for (i = 0; i < ROOMD_MAX_WORKERS; i++) {
		w[i].pid = workers[i].pid;
		w[i].restarts = workers[i].restarts;
		w[i].state = workers[i].state;
	}
	if (pfd[0].fd != -1 && (pfd[0].revents & POLLIN)) {
		control_accept(pfd[0].fd, w, started, &stop, &reload);
		sig_stop |= stop;
		sig_reload |= reload;
	}
	if (pfd[1].fd != -1 && (pfd[1].revents & POLLIN))
		metrics_accept(pfd[1].fd, w);
}

/* After binding and mapping: become the configured user, if any. */
static void
master_drop_privileges(void)
{
	struct passwd	*pw;

	if (env->conf.user[0] == '\0')
		return;
	if ((pw = getpwnam(env->conf.user)) == NULL)
		fatalx("user %s does not exist", env->conf.user);
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1)
		fatal("cannot become user %s", env->conf.user);
	log_info("running as user %s", env->conf.user);
}

static void
master_pidfile(void)
{
	FILE	*fp;

	if ((fp = fopen(env->conf.pidfile, "w")) == NULL) {
		log_warn("pidfile %s", env->conf.pidfile);
		return;
	}
	fprintf(fp, "%d\n", (int)getpid());
	fclose(fp);
}
