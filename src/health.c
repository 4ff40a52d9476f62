/*
 * health.c: is roomd alive, and is it ready to serve?  The master answers
 * /healthz (it is alive: it answered) and /readyz on metrics_listen
 * (control.c) from what this file keeps:
 *
 *   - a heartbeat of each worker slot: a word the worker writes from its
 *     once-a-second timer, in a small page the master maps before it
 *     forks.  The page is not the arena: it holds no room state, and the
 *     arena's layout stays as it is.  A worker whose loop stops turning
 *     (stopped, stuck, busy for seconds) stops beating;
 *   - the outcome of the master's own walk of the arena (room_check, as
 *     roomctl check does), every arena_walk_interval seconds;
 *   - the cluster link, when cluster mode is configured.
 *
 * The walk takes every lock in turn, as room_reap does once a second: a
 * worker stopped while it holds one holds the master up with it.
 */
#include "config.h"

#include <sys/mman.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "roomd.h"

/* A worker that has not beaten for this long is not serving. */
#define HEALTH_STALE_MS		3000

static uint64_t	*beats;		/* milliseconds, CLOCK_MONOTONIC, per slot */

static struct {
	uint64_t	 ran;		/* when the last walk ran (ms), 0: never */
	uint64_t	 passed;	/* when one last passed (ms), 0: never */
	int		 failed;	/* the last walk found a fault */
	char		 err[256];
} walk;

static uint64_t
health_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
health_open(void)
{
	void	*p;

	p = mmap(NULL, ROOMD_MAX_WORKERS * sizeof(*beats), PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_warn("%s: mmap", __func__);
		return -1;
	}
	beats = p;
	return 0;
}

void
health_beat(void)
{
	if (beats != NULL && env->slot >= 0 && env->slot < ROOMD_MAX_WORKERS)
		__atomic_store_n(&beats[env->slot], health_now_ms(),
		    __ATOMIC_RELAXED);
}

void
health_tick(void)
{
	uint64_t	 now = health_now_ms(), took;
	char		 err[sizeof(walk.err)];
	int		 ok;

	if (env->conf.arena_walk_interval <= 0 || (walk.ran != 0 &&
	    now - walk.ran < (uint64_t)env->conf.arena_walk_interval * 1000))
		return;
	ok = room_check(err, sizeof(err)) == 0;
	walk.ran = health_now_ms();
	took = walk.ran - now;
	if (ok) {
		if (walk.failed)
			log_info("arena check passes again");
		walk.passed = walk.ran;
	} else if (!walk.failed || strcmp(err, walk.err) != 0)
		log_warnx("arena check: %s: not ready", err);
	walk.failed = !ok;
	memcpy(walk.err, err, sizeof(err));
	log_debug("arena walked in %llu ms", (unsigned long long)took);
}

/* The arena walk's part of readiness. */
static int
health_arena_ready(uint64_t now, char *why, size_t len)
{
	uint64_t	 every = (uint64_t)env->conf.arena_walk_interval * 1000;

	if (every == 0)
		return 1;
	if (walk.failed) {
		snprintf(why, len, "arena check failed: %s", walk.err);
		return 0;
	}
	/* Late beyond twice the interval: the master did not get to it. */
	if (walk.passed == 0 || now - walk.passed > 2 * every + 1000) {
		snprintf(why, len, "no arena check has passed in the last %d s",
		    2 * env->conf.arena_walk_interval + 1);
		return 0;
	}
	return 1;
}

int
health_ready(const struct worker_info *w, char *why, size_t len)
{
	uint64_t	 now = health_now_ms(), beat;
	int		 i, active = 0;

	for (i = 0; i < ROOMD_MAX_WORKERS; i++) {
		if (w[i].state != WORKER_ACTIVE)
			continue;
		active++;
		if (w[i].pid <= 0) {
			snprintf(why, len, "worker %d is not running", i);
			return 0;
		}
		beat = beats != NULL ? __atomic_load_n(&beats[i],
		    __ATOMIC_RELAXED) : 0;
		if (beat == 0) {
			snprintf(why, len, "worker %d (pid %d) is starting", i,
			    w[i].pid);
			return 0;
		}
		if (now - beat > HEALTH_STALE_MS) {
			snprintf(why, len, "worker %d (pid %d) has not answered "
			    "for %llu ms", i, w[i].pid,
			    (unsigned long long)(now - beat));
			return 0;
		}
	}
	if (active == 0) {
		snprintf(why, len, "no worker serves");
		return 0;
	}
	if (!health_arena_ready(now, why, len))
		return 0;
	return health_cluster_ready(why, len);
}

/* The cluster link (cluster.c): a session on Redis whose lease holds. */
int
health_cluster_ready(char *why, size_t len)
{
	struct cluster_status	 st;
	int			 down;

	if (cluster_shards_up(&down) == cluster_shards())
		return 1;
	cluster_status(down, &st);
	snprintf(why, len, "cluster link down: no lease held%s%s",
	    st.primary[0] != '\0' ? " on " : "", st.primary);
	return 0;
}
