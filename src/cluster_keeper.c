/*
 * cluster_keeper.c: the master's hands on Redis in cluster mode.
 *
 * A keeper is a process per shard, forked by the master after its first
 * join (cluster_init) and forked again when it dies.  It holds the host's
 * session and lease on its shard, reads the shard's channel and applies
 * the other hosts' entries to the copies, catches up, and reaps dead
 * hosts (cluster_keep).  Redis's calls block (cluster.c), so a shard that
 * hangs holds up its own keeper only: not the other shards' deliveries,
 * and not the master, which answers roomctl, /metrics and signals and
 * collects dead workers.  What a dead worker leaves in Redis (a room
 * lock, members no other worker has) is handed to a short-lived helper
 * process (cluster_helper) for the same reason; the master keeps the job
 * and forks another helper for it if one dies before it is done.
 *
 * A keeper works on the arena and rings the workers' doorbells as the
 * master would: it is forked from the master and has the same mappings
 * and sockets.  SIGTERM ends its lease on the shard (the master stops, or
 * died: PR_SET_PDEATHSIG), SIGHUP reads the configuration again, as a
 * worker does, and SIGUSR2 wakes it to ask Redis at once (a call of
 * another process failed: cluster.c's suspect shards).
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/wait.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "roomd.h"

#define KEEPER_STOP_WAIT	3	/* seconds for the keepers to leave */
#define HELPER_FORKS		5	/* of one job, at most */

/* A helper's job, kept by the master until a helper exits 0 with it. */
struct helper {
	LIST_ENTRY(helper)	 entry;
	pid_t			 pid;
	const char		*name;
	void			(*fn)(void *);
	void			(*done)(void *);
	void			*arg;
	int			 forks;
};
static LIST_HEAD(, helper)	 helpers = LIST_HEAD_INITIALIZER(helpers);

static int	helper_died(pid_t, int, int);

static pid_t			 keepers[CLUSTER_SHARDS_MAX];
static time_t			 started[CLUSTER_SHARDS_MAX];
static time_t			 respawn_at[CLUSTER_SHARDS_MAX];
static volatile sig_atomic_t	 keeper_stop, keeper_reload;

static void
keeper_signal(int sig)
{
	if (sig == SIGHUP)
		keeper_reload = 1;
	else if (sig != SIGUSR2)	/* SIGUSR2 only wakes: a call of */
		keeper_stop = 1;	/* another process failed */
}

static void
keeper_handlers(void)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = keeper_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
}

/*
 * The keeper of shard.  The master's signals stay blocked but while
 * ppoll() waits, so a flag set by a handler is seen on the next turn.
 */
static void __attribute__((noreturn))
keeper_main(int shard, int first)
{
	int			 ms = cluster_tick_ms();
	struct timespec		 tick = { ms / 1000, (ms % 1000) * 1000000L };
	struct timespec		 now = { 0, 0 };
	struct roomd_config	 c;
	struct pollfd		 pfd;
	sigset_t		 empty;
	char			 name[32];

	snprintf(name, sizeof(name), "cluster %d", shard);
	log_setproc(name);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)		/* the master died before prctl */
		keeper_stop = 1;
	keeper_handlers();
	/* The first keeper goes on with the master's links to its shard,
	 * subscribed since cluster_init: nothing published in between is
	 * missed.  A keeper forked again makes its own (the master's are
	 * then only for roomctl's room commands, and not to be shared). */
	cluster_forked(first ? shard : -1);
	cluster_keeping(shard);
	sigemptyset(&empty);
	while (!keeper_stop) {
		pfd.fd = cluster_sub_fd(shard);	/* -1: ppoll skips it */
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* While a check of the copies goes on, a slice a turn. */
		ppoll(&pfd, 1, cluster_checking(shard) ? &now : &tick, &empty);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			cluster_sub_read(shard);
		/* SIGHUP: what can change live (the dialects' settings,
		 * the webhooks), as a worker does; a cluster line needs a
		 * restart. */
		if (keeper_reload) {
			keeper_reload = 0;
			if (config_reread(&c, env->conf.file) == 0)
				config_apply_live(&env->conf, &c);
		}
		cluster_keep(shard);
	}
	cluster_leave(shard);
	_exit(0);
}

static void
keeper_fork(int shard, int first)
{
	pid_t	 pid;

	switch (pid = fork()) {
	case -1:
		log_warn("fork the keeper of cluster shard %d", shard);
		respawn_at[shard] = time(NULL) + 1;
		return;
	case 0:
		keeper_main(shard, first);
	}
	keepers[shard] = pid;
	started[shard] = time(NULL);
	cluster_set_keeper(shard, pid);
	log_debug("the keeper of cluster shard %d is pid %d", shard,
	    (int)pid);
}

/* The master, once cluster_init has joined: a keeper per shard.  The
 * master's links close: from now on it makes one only for a roomctl
 * command on a room. */
void
cluster_keepers_start(void)
{
	int	 i;

	for (i = 0; i < cluster_shards(); i++)
		keeper_fork(i, 1);
	cluster_forked(-1);
}

/* The master collected pid: 1 if it was a keeper, forked again by
 * cluster_keepers_respawn at once (the lease goes on meanwhile: less
 * than half of it left cuts the host off), or a second later if it died
 * right after it started; or a helper (helper_died). */
int
cluster_keeper_died(pid_t pid, int status, int stopping)
{
	int	 i;

	for (i = 0; i < CLUSTER_SHARDS_MAX; i++)
		if (keepers[i] == pid && pid > 0)
			break;
	if (i == CLUSTER_SHARDS_MAX)
		return helper_died(pid, status, stopping);
	keepers[i] = 0;
	cluster_set_keeper(i, 0);
	if (stopping)
		return 1;
	if (WIFSIGNALED(status))
		log_warnx("the keeper of cluster shard %d (pid %d) killed by "
		    "signal %d", i, (int)pid, WTERMSIG(status));
	else
		log_warnx("the keeper of cluster shard %d (pid %d) exited "
		    "with status %d", i, (int)pid, WEXITSTATUS(status));
	respawn_at[i] = time(NULL) - started[i] < 1 ? time(NULL) + 1 : 0;
	return 1;
}

void
cluster_keepers_respawn(void)
{
	int	 i;

	for (i = 0; i < cluster_shards(); i++)
		if (keepers[i] == 0 && time(NULL) >= respawn_at[i])
			keeper_fork(i, 0);
}

void
cluster_keepers_signal(int sig)
{
	int	 i;

	for (i = 0; i < CLUSTER_SHARDS_MAX; i++)
		if (keepers[i] > 0)
			kill(keepers[i], sig);
}

/* The master stops, its workers gone: each keeper ends its lease; one
 * that cannot within KEEPER_STOP_WAIT is killed (the lease runs out). */
void
cluster_keepers_stop(void)
{
	time_t	 deadline = time(NULL) + KEEPER_STOP_WAIT;
	pid_t	 pid;
	int	 i, alive, status;

	cluster_keepers_signal(SIGTERM);
	for (;;) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			cluster_keeper_died(pid, status, 1);
		for (alive = 0, i = 0; i < CLUSTER_SHARDS_MAX; i++)
			alive += keepers[i] > 0;
		if (alive == 0)
			return;
		if (time(NULL) >= deadline)
			cluster_keepers_signal(SIGKILL);
		usleep(20000);
	}
}

static int	 helping;

/* Is this a helper process (which may wait), not the master? */
int
cluster_helping(void)
{
	return helping;
}

/* Fork a helper for h; in place if none can be forked. */
static void
helper_fork(struct helper *h)
{
	pid_t	 master = getpid();

	h->forks++;
	if ((h->pid = fork()) == -1) {
		log_warn("%s: fork", h->name);
		h->pid = 0;
		h->fn(h->arg);
		return;
	}
	if (h->pid == 0) {
		/* It goes with the master, which it may outlive by seconds
		 * while Redis does not answer. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != master)
			_exit(0);
		log_setproc(h->name);
		cluster_forked(-1);
		helping = 1;
		h->fn(h->arg);
		_exit(0);
	}
}

static void
helper_free(struct helper *h)
{
	LIST_REMOVE(h, entry);
	h->done(h->arg);
	free(h);
}

/*
 * A job of the master's that talks to Redis: fn(arg) in a helper process
 * of its own (its log says name), in place if none can be forked.  The
 * master keeps the job until a helper exits 0 with it, and forks another
 * for a helper killed or failed before (HELPER_FORKS in all); then
 * done(arg).
 */
void
cluster_helper(const char *name, void (*fn)(void *), void (*done)(void *),
    void *arg)
{
	struct helper	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		fn(arg);
		done(arg);
		return;
	}
	h->name = name;
	h->fn = fn;
	h->done = done;
	h->arg = arg;
	LIST_INSERT_HEAD(&helpers, h, entry);
	helper_fork(h);
	if (h->pid == 0)
		helper_free(h);
}

/* pid was collected: 1 if it was a helper; one that did not finish its
 * job is forked again, unless the master stops. */
static int
helper_died(pid_t pid, int status, int stopping)
{
	struct helper	*h;

	LIST_FOREACH(h, &helpers, entry)
		if (h->pid == pid && pid > 0)
			break;
	if (h == NULL)
		return 0;
	h->pid = 0;
	if (stopping || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		helper_free(h);
		return 1;
	}
	if (h->forks >= HELPER_FORKS) {
		log_warnx("%s: helper (pid %d) died, %d times: given up", h->name,
		    (int)pid, h->forks);
		helper_free(h);
		return 1;
	}
	if (WIFSIGNALED(status))
		log_warnx("%s: helper (pid %d) killed by signal %d: forked "
		    "again", h->name, (int)pid, WTERMSIG(status));
	else
		log_warnx("%s: helper (pid %d) exited with status %d: forked "
		    "again", h->name, (int)pid, WEXITSTATUS(status));
	helper_fork(h);
	if (h->pid == 0)
		helper_free(h);
	return 1;
}
