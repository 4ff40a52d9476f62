/*
 * shm_lock.c: robust process-shared locks and the transaction journal that
 * makes each critical section all-or-nothing when its owner dies.
 *
 * A transaction is the span of one lock hold.  Stores to shared state that
 * other processes can reach go through shm_tx_set(), which writes the old
 * value into the lock's journal before the new value lands.  Memory that is
 * not reachable yet (a fresh block, the unused tail of a log chunk) is
 * written directly: the journaled store that links it in is the commit.
 *
 * Commit marks the journal FREEING and returns the blocks queued with
 * shm_tx_free() to the allocator, one allocator transaction each, each of
 * which zeroes its journal entry; so a crash at any point either rolls the
 * whole change back (ACTIVE) or lets the next owner finish the frees
 * (FREEING), and no block is ever freed twice.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"

void (*shm_recovery_hook)(const char *, uint64_t);

/* The arena-wide locks this process holds (each process is one thread). */
static int	holding_index, holding_alloc;

static void	shm_tx_rollback(struct arena *, struct shm_lock *);
static void	shm_tx_finish(struct arena *, struct shm_lock *);

/*
 * This process's id, for the owner field of every lock it takes: glibc
 * no longer caches getpid(), and a worker takes thousands of locks a
 * second.  A fork forgets it in the child.
 */
static pid_t	self_pid;

static void
self_pid_forget(void)
{
	self_pid = 0;
}

static pid_t
self(void)
{
	static int	 registered;

	if (self_pid == 0) {
		if (!registered && pthread_atfork(NULL, NULL,
		    self_pid_forget) == 0)
			registered = 1;
		if (!registered)
			return getpid();
		self_pid = getpid();
	}
	return self_pid;
}

int
shm_lock_init(struct shm_lock *lk)
{
	pthread_mutexattr_t	 attr;
	int			 rc;

	memset(lk, 0, sizeof(*lk));
	if (pthread_mutexattr_init(&attr) != 0)
		return -1;
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&lk->mtx, &attr);
	pthread_mutexattr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

/*
 * Take a lock.  If its owner died holding it, repair what the owner was
 * doing before anyone else sees it, then mark the mutex consistent.
 * Returns 0, or SHM_ESTATE if the mutex is beyond repair (which would mean
 * an earlier repair itself failed: never expected).
 */
int
shm_lock(struct arena *a, struct shm_lock *lk)
{
	uint64_t	 dead;
	int		 rc;

	rc = pthread_mutex_lock(&lk->mtx);
	if (rc == EOWNERDEAD) {
		dead = lk->owner_pid;
		/* The dead owner may have been inside an inner lock too
		 * (index, allocator), whose journal can hold entries of this
		 * one's: repair those first, in lock order.  The address
		 * table's lock is a leaf: nothing is taken inside it. */
		if (lk != &a->hdr->alloc_lock && lk != &a->hdr->ip_lock) {
			if (lk != &a->hdr->index_lock && !holding_index &&
			    shm_lock(a, &a->hdr->index_lock) == 0)
				shm_unlock(a, &a->hdr->index_lock);
			if (!holding_alloc &&
			    shm_lock(a, &a->hdr->alloc_lock) == 0)
				shm_unlock(a, &a->hdr->alloc_lock);
		}
		if (lk->tx.state == SHM_TX_ACTIVE)
			shm_tx_rollback(a, lk);
		else if (lk->tx.state == SHM_TX_FREEING)
			shm_tx_finish(a, lk);
		pthread_mutex_consistent(&lk->mtx);
		__atomic_add_fetch(&a->hdr->recoveries, 1, __ATOMIC_RELAXED);
		if (shm_recovery_hook != NULL)
			shm_recovery_hook(lk == &a->hdr->alloc_lock ?
			    "allocator" : lk == &a->hdr->index_lock ?
			    "room index" : lk == &a->hdr->ip_lock ?
			    "address table" : "room", dead);
	} else if (rc != 0)
		return SHM_ESTATE;
	lk->owner_pid = (uint64_t)self();
	holding_index += lk == &a->hdr->index_lock;
	holding_alloc += lk == &a->hdr->alloc_lock;
	return 0;
}

void
shm_unlock(struct arena *a, struct shm_lock *lk)
{
	holding_index -= lk == &a->hdr->index_lock;
	holding_alloc -= lk == &a->hdr->alloc_lock;
	pthread_mutex_unlock(&lk->mtx);
}

void
shm_tx_begin(struct arena *a, struct shm_lock *lk)
{
	struct shm_tx	*tx = &lk->tx;

	(void)a;
	tx->nundo = 0;
	memset(tx->alloc, 0, sizeof(tx->alloc));
	memset(tx->release, 0, sizeof(tx->release));
	__atomic_store_n(&tx->state, SHM_TX_ACTIVE, __ATOMIC_RELEASE);
}

/*
 * Store v at p, journaling the old value first.  The journal entry is
 * complete before the count covers it, and the count covers it before the
 * store lands, so a crash anywhere leaves a journal that undoes exactly
 * what happened.
 */
void
shm_tx_set(struct arena *a, struct shm_lock *lk, uint64_t *p, uint64_t v)
{
	struct shm_tx	*tx = &lk->tx;
	struct shm_undo	*u;

	if (tx->state != SHM_TX_ACTIVE || tx->nundo >= SHM_TX_UNDO)
		abort();	/* a programming error, not a runtime one */
	u = &tx->undo[tx->nundo];
	u->off = SHM_OFF(a, p);
	u->old = *p;
	__atomic_store_n(&tx->nundo, tx->nundo + 1, __ATOMIC_RELEASE);
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void
shm_tx_rollback(struct arena *a, struct shm_lock *lk)
{
	struct shm_tx	*tx = &lk->tx;
	uint64_t	 i;

	for (i = tx->nundo; i > 0; i--) {
		struct shm_undo *u = &tx->undo[i - 1];
		uint64_t *p = SHM_PTR(a, u->off);

		__atomic_store_n(p, u->old, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&tx->nundo, 0, __ATOMIC_RELEASE);
	/* Blocks taken in the transaction go back; each entry is zeroed in
	 * the same allocator transaction that frees it. */
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		if (tx->alloc[i] != 0)
			shm_release(a, &tx->alloc[i]);
	memset(tx->release, 0, sizeof(tx->release));
	__atomic_store_n(&tx->state, SHM_TX_IDLE, __ATOMIC_RELEASE);
}

static void
shm_tx_finish(struct arena *a, struct shm_lock *lk)
{
	struct shm_tx	*tx = &lk->tx;
	uint64_t	 i;

	/* In order: a room's unlink comes first and its slot last. */
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		while (tx->release[i] != 0) {
			if (tx->release[i] & SHM_UNLINK)
				shm_room_unlink(a, &tx->release[i]);
			else
				shm_release(a, &tx->release[i]);
		}
	tx->nundo = 0;
	memset(tx->alloc, 0, sizeof(tx->alloc));
	__atomic_store_n(&tx->state, SHM_TX_IDLE, __ATOMIC_RELEASE);
}

void
shm_tx_commit(struct arena *a, struct shm_lock *lk)
{
	struct shm_tx	*tx = &lk->tx;
	int		 i, frees = 0;

	SHM_CRASH("tx_commit");
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		frees |= tx->release[i] != 0;
	if (frees) {
		__atomic_store_n(&tx->state, SHM_TX_FREEING, __ATOMIC_RELEASE);
		SHM_CRASH("tx_freeing");
		shm_tx_finish(a, lk);
	} else
		__atomic_store_n(&tx->state, SHM_TX_IDLE, __ATOMIC_RELEASE);
}

void
shm_tx_abort(struct arena *a, struct shm_lock *lk)
{
	shm_tx_rollback(a, lk);
}

/*
 * For long runs of independent changes (forgetting every locator of a dead
 * worker): commit what is done so far when the journal runs short.
 */
void
shm_tx_reserve(struct arena *a, struct shm_lock *lk, unsigned n)
{
	if (lk->tx.nundo + n > SHM_TX_UNDO) {
		shm_tx_commit(a, lk);
		shm_tx_begin(a, lk);
	}
}

int
shm_tx_touched(struct arena *a, struct shm_lock *lk, const void *p)
{
	shm_off		 off = SHM_OFF(a, p);
	uint64_t	 i;

	for (i = 0; i < lk->tx.nundo; i++)
		if (lk->tx.undo[i].off == off)
			return 1;
	return 0;
}

/*
 * With --enable-crash-points, ROOMD_CRASH_AT=site kills the process with
 * SIGKILL when it passes that site: the test of every critical section's
 * repair.  Without ROOMD_CRASH_ARM every process that passes the site dies
 * (the unit suite forks one child per site).  With ROOMD_CRASH_ARM=path a
 * crash is armed by creating a file: a process passing the site dies only
 * if it can unlink path (any process) or path.PID (that process alone), so
 * each file created kills exactly one process and a worker forked again
 * with the same environment lives on.  The environment is read once per
 * process: the child side of a fork reads it again, since a worker's pid
 * and a forked test child's settings are its own.
 */
static struct {
	int		 read;
	const char	*site;
	const char	*arm;
	char		 mine[1024];
} crash;

static void
shm_crash_forked(void)
{
	crash.read = 0;
}

void
shm_crash_point(const char *site)
{
	static int	 registered;

	if (!crash.read) {
		if (!registered && pthread_atfork(NULL, NULL,
		    shm_crash_forked) == 0)
			registered = 1;
		crash.site = getenv("ROOMD_CRASH_AT");
		crash.arm = getenv("ROOMD_CRASH_ARM");
		if (crash.arm != NULL && (size_t)snprintf(crash.mine,
		    sizeof(crash.mine), "%s.%d", crash.arm, (int)getpid()) >=
		    sizeof(crash.mine))
			crash.mine[0] = '\0';
		/* Without the fork hook the cache could name the parent. */
		crash.read = registered;
	}
	if (crash.site == NULL || strcmp(crash.site, site) != 0)
		return;
	if (crash.arm == NULL || unlink(crash.arm) == 0 ||
	    (crash.mine[0] != '\0' && unlink(crash.mine) == 0))
		raise(SIGKILL);
}
