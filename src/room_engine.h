/*
 * room_engine.h: what room.c and the cluster files (room_cluster.h)
 * share, and nothing else includes: a locked room as the engine holds
 * it.
 */
#ifndef ROOM_ENGINE_H
#define ROOM_ENGINE_H

#include "shm.h"

/* Cluster mode: the member is present on another host (worker slots are
 * then at most 63). */
#define ROOM_SLOT_ELSEWHERE	(1ULL << 63)

struct room_kick {
	struct doorbell		 db;
	uint64_t		 slots;
};

struct room_txn;

struct room {
	struct shm_room		*r;
	struct room_ref		 ref;
	const struct dialect	*dialect;
	int			 appended;
	int			 swept;		/* by room_slot_dead: not ours */
	struct room_kick	*kicks;		/* pended once unlocked */
	size_t			 nkicks;
	struct room_txn		*tx;		/* cluster mode */
};

static inline struct arena *
room_arena(void)
{
	return env->arena;
}

struct room	*room_new(struct shm_room *, const struct room_ref *);
uint64_t	 room_slots(struct shm_room *);
/* Relay rooms: drop the records every worker has read, up to upto. */
void		 room_trim(struct shm_room *, uint64_t upto);
void		 room_tx_bytes(struct shm_room *, void *p, const void *src,
		    size_t len);
/* Whether room id of d relays (its log trimmed) or keeps a history. */
int		 room_relays(const struct dialect *d, const char *id);

/* Changes of this host's mirror only (applying another host's). */
/* reload: the room is not deleted, only this copy (clients: 1012) */
void		 room_delete_local(struct room *, const char *reason,
		    int reload);
void		 room_kick_local(struct room *, uint64_t mid);
int		 room_member_remove_local(struct room *, uint64_t mid);

/* The cluster files (room_copy.c, room_txn.c, room_master.c), for
 * room.c: each returns 0 or a ROOM_E* code. */
int	 rcl_create(const struct dialect *, const char *id, struct room **);
int	 rcl_open(const struct dialect *, const char *id);
size_t	 rcl_list(const struct dialect *, struct room_ref *, size_t max);
/* rcl_lock: 0, ROOM_EUNAVAIL (still locked here), or the room was freed:
 * ROOM_ENOENT (gone) or RCL_RELOADED (its mirror must be made again). */
#define RCL_RELOADED	(-100)
int	 rcl_lock(struct room *);
void	 rcl_release(struct room *);
/* 0 if the transaction may only read (Redis takes no writes). */
int	 rcl_writable(struct room *);
int	 rcl_unlock(struct room *);	/* before the local commit */
/* Commit now, before the client is answered (an append, a join): 0, or
 * ROOM_EUNAVAIL with the local journal rolled back to the last commit. */
int	 rcl_commit(struct room *);
int	 rcl_close(struct room *, const char *reason);
void	 rcl_kick(struct room *, uint64_t mid);
void	 rcl_dirty_member(struct room *, uint64_t mid);
void	 rcl_dirty_room(struct room *);
void	 rcl_keep_from(struct room *, uint64_t seq);
void	 rcl_presence(struct room *, uint64_t mid, int here);
/* Members mids of a room lost their last connection here with a worker:
 * this host's presence of each ends in Redis, and those present nowhere
 * go to the room's lost set, handed to member_lost once by the next
 * transaction on the room (at once, here).  0 when done (or when the
 * session they were present in, kept in was, has ended and its reaping
 * will do it), -1 to try again (Redis cannot be reached, or refused).
 * Done twice, the second time changes nothing. */
int	 rcl_presence_end(const struct dialect *, const char *id,
	    const uint64_t *mids, size_t n, char *was, size_t len);

#endif
