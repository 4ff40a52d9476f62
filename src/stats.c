/*
 * stats.c: the daemon's counters.  They live in the arena's header, so
 * every process adds to the same ones with atomic operations and the
 * master's /metrics and roomctl stats see the whole daemon; this module
 * is the only code that knows where, so the layers above need no arena.
 */
#include "config.h"

#include "roomd.h"
#include "shm.h"

_Static_assert(STAT_NCOUNTERS <= STATS_COUNTERS, "daemon counters");
_Static_assert(STAT_D_NCOUNTERS <= STATS_DIALECT_COUNTERS,
    "dialect counters");

static struct arena_stats *
stats(void)
{
	return env->arena != NULL && env->arena->hdr != NULL ?
	    &env->arena->hdr->stats : NULL;
}

/* Add n (negative for a gauge going down) to a counter. */
void
stats_add(enum stats_counter c, int64_t n)
{
	struct arena_stats	*s = stats();

	if (s != NULL)
		__atomic_add_fetch(&s->c[c], (uint64_t)n, __ATOMIC_RELAXED);
}

/* Add n to a counter of a dialect's row. */
void
stats_dadd(unsigned dialect, enum stats_dialect_counter c, int64_t n)
{
	struct arena_stats	*s = stats();

	if (s != NULL)
		__atomic_add_fetch(&s->d[dialect % STATS_DIALECTS][c],
		    (uint64_t)n, __ATOMIC_RELAXED);
}

uint64_t
stats_get(enum stats_counter c)
{
	struct arena_stats	*s = stats();

	return s != NULL ? __atomic_load_n(&s->c[c], __ATOMIC_RELAXED) : 0;
}

uint64_t
stats_dget(unsigned dialect, enum stats_dialect_counter c)
{
	struct arena_stats	*s = stats();

	return s != NULL ? __atomic_load_n(&s->d[dialect % STATS_DIALECTS][c],
	    __ATOMIC_RELAXED) : 0;
}
