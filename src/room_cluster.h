/*
 * room_cluster.h: what the engine's cluster files share, and nothing else
 * includes: room_cluster.c (keys, shards, replies), room_copy.c (a host's
 * copy of a room: entries applied, a copy made and caught up),
 * room_txn.c (transactions: the Redis lock, commits) and room_master.c
 * (what the master does: other hosts' entries, reaping, lost members).
 */
#ifndef ROOM_CLUSTER_H
#define ROOM_CLUSTER_H

#include <hiredis/hiredis.h>

#include "room_engine.h"

#define P		cluster_prefix()
#define LOCK_PX		2000	/* the room lock's lease in Redis */
#define LOCK_WAIT_MS	2500	/* how long a busy lock is waited for:
				 * past a dead holder's lease */
#define RELAY_KEEP	1000	/* log entries a relay room keeps */
#define CATCH_UP_MAX	100000	/* entries asked for at once */

struct presence {
	uint64_t	 mid;
	int		 here;
};

struct room_txn {
	char		 session[96];
	char		 token[32];
	int		 locked;
	uint64_t	 seq0;		/* records after it are not sent yet */
	uint64_t	*mids;		/* members changed */
	size_t		 nmids;
	struct presence	*pres;
	size_t		 npres;
	uint64_t	*kicks;
	size_t		 nkicks;
	uint64_t	*lost;		/* from txn_lock */
	size_t		 nlost;
	uint64_t	*done;		/* given to member_lost */
	size_t		 ndone;
	int		 words;		/* the dialect's words or flags changed */
	uint64_t	 recs_first;	/* the last commit with records: its */
	uint64_t	 recs_ver;	/* first seq and its ver (entry) */
	int		 keep;		/* keep_from moved: send keep_ver */
	uint64_t	 keep_ver;
	int		 force;		/* commit even if nothing changed */
	const char	*close;		/* the room closes, for this reason */
};

struct buf {
	char		*p;
	size_t		 len, cap;
};

/* room_cluster.c */
void	 buf_add(struct buf *, const void *p, size_t len);
void	 buf_printf(struct buf *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 push64(uint64_t **v, size_t *n, uint64_t x);	/* once each */
/* "P{dialect:id}", the base of a room's keys, and its shard. */
void	 room_base(char *buf, size_t len, const struct dialect *,
	    const char *id);
void	 room_key_set(struct room *, char *base, size_t len);
int	 shard_of(const struct dialect *, const char *id);
/* The keys of a room, in the order given by their suffixes ("@x": the
 * shard's key x; NULL: the caller's). */
int	 room_keys(const char *base, const char **names, char keys[][200],
	    int n);
/* Replies: is r the error code; say why r failed (a ROOM_E* code); the
 * integer (or number string) at i of an array; an array of n whose
 * elements listed in arrays (ending -1) are arrays. */
int	 reply_is(const redisReply *, const char *code);
int	 reply_failed(redisReply *, const char *what);
uint64_t reply_int(const redisReply *, size_t i);
int	 reply_shaped(const redisReply *, size_t n, const int *arrays);

/* room_copy.c */
/* One entry as published (doc/cluster.txt) applied to a locked copy: 0
 * (applied, or had it), 1 (the room closed: freed), -1 (a gap), -3 (of
 * another epoch: nothing applied) or -2 (the copy cannot follow: make it
 * again). */
int	 mirror_apply(struct room *, const char *msg, size_t len);
/* Apply the entries of a list, in order: 0, 1 (the room closed: freed),
 * -1 (an entry is missing) or -2 (the copy cannot follow). */
int	 mirror_apply_list(struct room *, const redisReply *list);
void	 mirror_drop(struct room *);	/* unlocked and forgotten */
void	 mirror_presence(struct room *, uint64_t mid, uint64_t n);
/* A transaction that may only read: as rcl_lock. */
int	 mirror_read_only(struct room *);
redisReply *log_read_call(struct room *);
void	 mirror_catch_up(struct room *);	/* unlocks (or frees) it */

#endif
