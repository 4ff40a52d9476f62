/*
 * shm.h: the shared-memory arena that holds every room, member and op log.
 *
 * The arena is one mapping made by the master before it forks.  Everything
 * inside refers to everything else by offset from the start of the mapping,
 * so each process may map it at any address.  Every structure here is
 * shared; the per-process handle is struct arena.
 *
 * Locks are robust process-shared mutexes.  Each lock carries a small
 * transaction journal (struct shm_tx): every store to reachable shared
 * state inside a critical section goes through shm_tx_set(), which records
 * the old value first.  A process that takes a lock whose owner died
 * (EOWNERDEAD) rolls the journal back, or, if the owner had committed and
 * was only returning blocks to the allocator, finishes that, then marks the
 * mutex consistent.  Lock order and what each lock guards: doc/locking.txt.
 *
 * Functions return 0 (or an offset) on success and a negative SHM_E* code
 * on failure; nothing is half-written on failure.
 */
#ifndef ROOMD_SHM_H
#define ROOMD_SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ARENA_MAGIC		0x315241444d4f4f52ULL	/* "ROOMDAR1" */
#define ARENA_LAYOUT		6	/* 6: cluster mirrors; 5: 128-byte members, long names
					   apart; 4: member slots; 3: the
					   epoch; 2: the address table */
#define ARENA_MAX_SLOTS		64	/* worker slots a room can track */
#define ARENA_BUCKETS		16384	/* room index hash buckets */
#define ARENA_NCLASSES		20	/* size classes 64 B .. 32 MiB */
#define ARENA_MIN_SIZE		(4UL << 20)
#define IPT_ENTRIES		4096	/* per-address counters */
#define IPT_BUCKETS		1024

#define SHM_TX_UNDO		32
#define SHM_TX_BLOCKS		8

#define SHM_ID_MAX		64	/* bytes of a room id */
#define SHM_NAME_MAX		127	/* bytes; dialects set their own limits */
#define SHM_NAME_INLINE		22	/* a member record's name field */
#define SHM_TOKEN_LEN		32	/* hex characters */
#define SHM_UID_LEN		36	/* a UUID string */
#define SHM_SECRET_LEN		32	/* SHA-256 */

enum shm_error {
	SHM_OK = 0,
	SHM_ENOSPC = -1,	/* the arena is full */
	SHM_EEXIST = -2,	/* a room or member of that name exists */
	SHM_ENOENT = -3,	/* no such room or member */
	SHM_ELIMIT = -4,	/* a configured limit was reached */
	SHM_EINVAL = -5,	/* bad argument */
	SHM_ESTATE = -6,	/* the lock could not be made consistent */
	SHM_ELAYOUT = -7,	/* an existing arena has another size */
	SHM_EHEADER = -8	/* an existing arena's header is bad: its
				 * magic, layout or size word */
};

typedef uint64_t shm_off;	/* offset from the arena base; 0 is null */

/* Shared: the journal of one critical section. */
struct shm_undo {
	uint64_t	off;
	uint64_t	old;
};

enum shm_tx_state { SHM_TX_IDLE = 0, SHM_TX_ACTIVE, SHM_TX_FREEING };

struct shm_tx {
	uint64_t	state;
	uint64_t	nundo;
	struct shm_undo	undo[SHM_TX_UNDO];
	shm_off		alloc[SHM_TX_BLOCKS];	/* blocks taken in this tx */
	shm_off		release[SHM_TX_BLOCKS];	/* blocks to free at commit */
};

/* Shared: a robust mutex and its journal. */
struct shm_lock {
	pthread_mutex_t	mtx;
	struct shm_tx	tx;
	uint64_t	owner_pid;
};

/*
 * Shared: counters every process adds to with atomic operations, so one
 * scrape sees the whole daemon.  Which counter is which is the daemon's
 * business (src/stats.c); per-dialect rows are indexed by dialect id.
 */
#define STATS_COUNTERS		16
#define STATS_DIALECTS		8
#define STATS_DIALECT_COUNTERS	8
struct arena_stats {
	uint64_t	c[STATS_COUNTERS];
	uint64_t	d[STATS_DIALECTS][STATS_DIALECT_COUNTERS];
};

/*
 * Shared: one counter of the per-address table (shm_room.c).  A client
 * address is two words: an IPv4 address, or the /64 prefix of an IPv6
 * one (a client is usually given a whole /64), and 4 or 6.  The entries
 * of one address all hang on the same hash chain, one per kind.
 */
struct shm_ipent {
	uint64_t	addr[2];
	uint64_t	kind;		/* IPT_* | argument << 8 */
	uint64_t	count;
	uint64_t	stamp;		/* IPT_FAILS: when its minute began */
	uint64_t	next;		/* chain or free list: index + 1 */
};
enum shm_ipt_kind {
	IPT_CONNS = 1,		/* open connections on worker slot (arg) */
	IPT_ROOMS,		/* rooms it created that still exist */
	IPT_FAILS		/* wrong passwords for room rid (arg) */
};
#define IPT_KIND(type, arg)	((uint64_t)(type) | ((uint64_t)(arg) << 8))
#define IPT_TYPE(kind)		((unsigned)((kind) & 0xff))

/* Shared: the arena header, at offset 0. */
struct arena_hdr {
	uint64_t	magic;
	uint64_t	layout;
	uint64_t	size;
	uint64_t	generation;	/* bumped each time a master attaches */
	uint64_t	hdr_size;
	uint64_t	recoveries;	/* locks repaired after an owner died */
	uint64_t	epoch;		/* changes when the arena is replaced */
	struct arena_stats stats;

	struct shm_lock	alloc_lock;	/* guards top, freelist, room_free */
	uint64_t	top;
	uint64_t	used;		/* bytes handed out, headers included */
	shm_off		freelist[ARENA_NCLASSES];
	shm_off		room_free;
	uint64_t	room_slots;	/* room slots ever carved */

	struct shm_lock	index_lock;	/* guards buckets, nrooms, next_rid */
	uint64_t	next_rid;
	uint64_t	nrooms;
	shm_off		buckets[ARENA_BUCKETS];

	struct shm_lock	ip_lock;	/* guards ip_*: a leaf lock */
	uint64_t	ip_free;	/* free entries: index + 1 */
	uint64_t	ip_inuse;
	uint64_t	ip_full;	/* counts not kept: table full (stat) */
	uint64_t	ip_buckets[IPT_BUCKETS];
	struct shm_ipent ip[IPT_ENTRIES];
};

/* Shared: the header in front of every allocated block. */
struct shm_block {
	uint64_t	tag;		/* SHM_BLOCK_USED or _FREE, and class */
	shm_off		next;		/* free list link while free */
};
#define SHM_BLOCK_USED		0x5553454400000000ULL
#define SHM_BLOCK_FREE		0x4652454500000000ULL
#define SHM_BLOCK_STATE(t)	((t) & 0xffffffff00000000ULL)
#define SHM_BLOCK_CLASS(t)	((unsigned)((t) & 0xffffffffU))
#define SHM_CLASS_ROOM		0xffU	/* a room slot, from its own pool */
#define SHM_CHAIN		0x1ULL	/* release[]: a chain of log chunks */
#define SHM_UNLINK		0x2ULL	/* release[]: unlink a room from the index */
#define SHM_RELEASE_FLAGS	0x7ULL

/*
 * Shared: one member of a room, 128 bytes.  A slot with mid 0 is free.
 * A name of up to SHM_NAME_INLINE - 1 bytes is kept in name, terminated;
 * a longer one in a block of its own (struct shm_name) on the room's
 * chain of names, and then name holds SHM_NAME_LONG in its last byte and
 * the block's offset in its first eight (shm_member_name() reads both).
 */
struct shm_member {
	uint64_t	mid;		/* 1.., unique within the room */
	uint64_t	role;		/* dialect-defined bits */
	uint64_t	authorities;	/* dialect-defined bitmask */
	uint64_t	slots;		/* worker slots with a connection of it */
	uint32_t	joined;		/* unix time */
	char		token[SHM_TOKEN_LEN + 1];
	char		uid[SHM_UID_LEN + 1];
	char		name[SHM_NAME_INLINE];
};
#define SHM_NAME_LONG		((char)0xff)	/* name[SHM_NAME_INLINE - 1] */

/* Shared: a long member name, on its room's chain (first word: next). */
struct shm_name {
	shm_off		next;
	char		name[];		/* terminated */
};
/* A member's bit in slots for worker slot s. */
#define SHM_SLOT_BIT(s)		(1ULL << ((unsigned)(s) % ARENA_MAX_SLOTS))

/* Shared: one record of a room's op log. */
struct shm_rec {
	uint64_t	seq;
	uint32_t	len;
	uint16_t	type;		/* dialect-defined */
	uint16_t	flags;
	uint64_t	target;		/* audience argument, dialect-defined */
	/* len bytes of payload follow, padded to 8 */
};

/* Shared: a piece of a room's op log. */
struct shm_chunk {
	shm_off		next;
	uint64_t	first_seq;
	uint64_t	nrec;
	uint64_t	used;		/* bytes of data[] in use */
	uint64_t	cap;
	/* data follows */
};

/*
 * Shared: a room.  Room slots come from their own pool and are never reused
 * for anything else, so a process may always lock a room slot it found
 * earlier and then check that rid still matches and the room is not dead.
 */
struct shm_room {
	uint64_t	magic;
	struct shm_lock	lock;
	uint64_t	rid;		/* unique per room, never reused */
	shm_off		next_free;
	shm_off		hnext;		/* index hash chain */
	uint64_t	dialect;
	char		id[SHM_ID_MAX + 1];
	uint8_t		secret[SHM_SECRET_LEN];	/* salted password hash */
	uint8_t		salt[16];
	uint64_t	flags;		/* ROOM_F_* */
	uint64_t	created;
	uint64_t	expires;	/* unix time; 0 while connected */
	shm_off		members;	/* struct shm_member[cap] */
	shm_off		names;		/* chain of struct shm_name */
	uint64_t	nmembers;	/* slots in use, free ones included */
	uint64_t	cap;
	uint64_t	next_mid;
	shm_off		log_head;
	shm_off		log_tail;
	uint64_t	committed;	/* last committed sequence */
	uint64_t	log_bytes;
	uint64_t	conns;		/* open connections, all slots */
	uint64_t	slot_conns[ARENA_MAX_SLOTS];
	uint64_t	slot_seq[ARENA_MAX_SLOTS];	/* read up to, per slot */
	uint64_t	dstate[8];	/* the dialect's own words */
	uint64_t	keep_from;	/* relay: never trim from this seq on */
	uint64_t	creator[2];	/* client address, counted; 0 if none */
	uint64_t	cepoch;		/* cluster mode: the mirror's epoch, */
	uint64_t	cver;		/* and the last transaction applied */
};
#define ROOM_MAGIC		0x4d4f4f52U
#define ROOM_SLOT_SIZE	((sizeof(struct shm_block) + sizeof(struct shm_room) \
			    + 63) & ~(uint64_t)63)
#define ROOM_ALL_DIALECTS	(~0U)
#define ROOM_F_PASSWORD		0x1
#define ROOM_F_OPENED		0x2	/* a connection has opened */
#define ROOM_F_DEAD		0x4	/* deleted; the slot is being freed */
#define ROOM_F_RELAY		0x8	/* log read once per worker, then trimmed */
#define ROOM_F_CLOSING		0x10	/* closing: nobody joins any more */

/* Per process: a handle on the arena. */
struct arena {
	uint8_t			*base;
	size_t			 size;
	struct arena_hdr	*hdr;
};

#define SHM_PTR(a, off)	((void *)((a)->base + (off)))
#define SHM_OFF(a, p)	((shm_off)((const uint8_t *)(p) - (a)->base))

/* shm/arena.c */
/*
 * Map an arena: anonymous when path is NULL (shared with children forked
 * later), else a named shm object ("/name") or a file.  An existing object
 * of the same layout and size is reattached; *reattached tells which.
 * Returns 0, or a negative SHM_E* and a message in err: SHM_ELAYOUT for
 * an object of another size than size, SHM_EHEADER for one of that size
 * whose header is not a good one of this layout (see arena_replace_bad).
 */
int	 arena_open(struct arena *, const char *path, size_t size,
	    int *reattached, char *err, size_t errlen);
void	 arena_close(struct arena *);
int	 arena_unlink(const char *path);
/* Walk every structure; 0 if sound, else -1 and the first fault in err. */
int	 arena_check(struct arena *, char *err, size_t errlen);
int	 arena_check_live(struct arena *, char *err, size_t errlen);
/* The same, by the only process attached (a master reattaching): a lock
 * held and not marked dead by the kernel is a fault, not a wait. */
int	 arena_check_alone(struct arena *, char *err, size_t errlen);
/*
 * The epoch names one life of an arena's contents: a fresh arena takes a
 * random one below ARENA_EPOCH_MAX (2^48, exact in a JSON double), one
 * made to replace an untrusted arena takes the old epoch plus one.
 */
#define ARENA_EPOCH_MAX		(1ULL << 48)
uint64_t arena_epoch(const struct arena *);
/*
 * Hold an exclusive lock on the arena file or shm object (made empty if
 * missing) for as long as the returned descriptor is open, so two
 * masters never share one arena; waits up to wait seconds for processes
 * of an earlier master to let go.  Returns the descriptor or -1 and err.
 */
int	 arena_claim(const char *path, int wait, char *err, size_t errlen);
/*
 * Replace the untrusted arena a (mapped from path): a file is renamed
 * aside (its new name in aside, else aside is ""), a shm object
 * unlinked, and a fresh arena of the same size made in its place, with
 * the old epoch plus one.  Returns 0 with a mapping the new arena, or
 * SHM_E* and err with a closed.
 */
int	 arena_replace(struct arena *a, const char *path, char *aside,
	    size_t asidelen, char *err, size_t errlen);
/*
 * The same for an arena that arena_open refused with SHM_EHEADER, and so
 * could not map: the epoch is read from the object's header, plus one if
 * it is one an arena could have, else a random one.  Returns 0 with a
 * mapping the new arena, or SHM_E* and err.
 */
int	 arena_replace_bad(struct arena *a, const char *path, size_t size,
	    char *aside, size_t asidelen, char *err, size_t errlen);
const char *shm_strerror(int);

/* shm/shm_lock.c */
int	 shm_lock_init(struct shm_lock *);
int	 shm_lock(struct arena *, struct shm_lock *);
void	 shm_unlock(struct arena *, struct shm_lock *);
void	 shm_tx_begin(struct arena *, struct shm_lock *);
void	 shm_tx_set(struct arena *, struct shm_lock *, uint64_t *, uint64_t);
void	 shm_tx_commit(struct arena *, struct shm_lock *);
void	 shm_tx_abort(struct arena *, struct shm_lock *);
/* Commit and begin again if fewer than n journal entries are left. */
void	 shm_tx_reserve(struct arena *, struct shm_lock *, unsigned n);
/* 1 if p was written in the running transaction of lk. */
int	 shm_tx_touched(struct arena *, struct shm_lock *, const void *p);
/* --enable-crash-points: SIGKILL at a site named by ROOMD_CRASH_AT, once per
 * file ROOMD_CRASH_ARM (or ROOMD_CRASH_ARM.PID) if that is set. */
void	 shm_crash_point(const char *);
/* Called, if set, after a lock whose owner died has been repaired. */
extern void (*shm_recovery_hook)(const char *what, uint64_t pid);
#ifdef ROOMD_CRASH_POINTS
#define SHM_CRASH(site)	shm_crash_point(site)
#else
#define SHM_CRASH(site)	((void)0)
#endif

/* shm/shm_alloc.c */
/* Allocate n bytes inside the transaction of the held lock lk. */
shm_off	 shm_tx_alloc(struct arena *, struct shm_lock *lk, size_t n);
/* Free a block (or, with SHM_CHAIN, a chain of log chunks) at commit. */
void	 shm_tx_free(struct arena *, struct shm_lock *lk, shm_off);
/* Return the block named by *slot to its free list and zero *slot. */
void	 shm_release(struct arena *, uint64_t *slot);
size_t	 shm_block_size(struct arena *, shm_off);
int	 shm_size_class(size_t);
shm_off	 shm_room_slot_alloc(struct arena *, struct shm_lock *lk);
void	 shm_room_slot_free(struct arena *, struct shm_lock *lk, shm_off);
void	 shm_usage(struct arena *, uint64_t *used, uint64_t *size);

/* shm/shm_room.c */
struct shm_room_ref {
	shm_off		off;
	uint64_t	rid;
};
int	 shm_room_create(struct arena *, unsigned dialect, const char *id,
	    uint64_t expires, struct shm_room_ref *);
/* The same, returning the new room already locked (before anyone else
 * can find it), its transaction begun. */
int	 shm_room_create_locked(struct arena *, unsigned dialect,
	    const char *id, uint64_t expires, struct shm_room_ref *,
	    struct shm_room **);
int	 shm_room_find(struct arena *, unsigned dialect, const char *id,
	    struct shm_room_ref *);
/* Lock a room found earlier; SHM_ENOENT if it was deleted meanwhile. */
int	 shm_room_lock(struct arena *, const struct shm_room_ref *,
	    struct shm_room **);
void	 shm_room_unlock(struct arena *, struct shm_room *);
/* Unlink the room named by *slot from the index if it is still there, and
 * zero *slot, as one index transaction (a FREEING step). */
void	 shm_room_unlink(struct arena *, uint64_t *slot);
/* Delete a room whose lock is held; the lock is released. */
void	 shm_room_delete_locked(struct arena *, struct shm_room *);
/* Copy out up to max references of a dialect's rooms. */
size_t	 shm_room_list(struct arena *, unsigned dialect,
	    struct shm_room_ref *, size_t max);
int	 shm_room_conn_locked(struct arena *, struct shm_room *, unsigned slot,
	    int delta, uint64_t expires);
/*
 * A worker slot died: forget its connections in every room (a room left
 * with none expires at the given time), and clear its bit in the slots of
 * every member.  A member left with no slot at all is passed to lost, if
 * set, with its room locked and a fresh journal; lost may change that room
 * (not delete it) and take locks after it in the lock order.
 */
void	 shm_room_slot_dead(struct arena *, unsigned slot, uint64_t expires);
struct shm_slot_dead {
	uint64_t	(*expires)(unsigned dialect, void *);
	void		(*lost)(struct shm_room *, const struct shm_room_ref *,
			    struct shm_member *, void *);
	void		*arg;
	uint64_t	 keep;		/* bits that do not count: lost is
					 * called when the others are gone */
};
void	 shm_room_slot_dead_fn(struct arena *, unsigned slot,
	    const struct shm_slot_dead *);
void	 shm_room_reap(struct arena *, uint64_t now);
/* The same, calling gone(room, arg) under the room's lock just before
 * each deletion (the master tells webhooks). */
void	 shm_room_reap_fn(struct arena *, uint64_t now,
	    void (*gone)(struct shm_room *, void *), void *arg);
int	 shm_room_set_expiry_locked(struct arena *, struct shm_room *,
	    uint64_t);
struct shm_member *shm_member_at(struct arena *, struct shm_room *, size_t);
/*
 * Add a member: role, authorities, slots, joined, token and uid come
 * from *in, the name (at most SHM_NAME_MAX bytes) from name; mid is
 * assigned.  Returns 0 and the record in *out (valid until the room lock
 * is released), SHM_ELIMIT, SHM_EINVAL or SHM_ENOSPC.
 */
int	 shm_member_add_locked(struct arena *, struct shm_room *,
	    const struct shm_member *in, const char *name, uint64_t max,
	    struct shm_member **);
/* A member's name, terminated, wherever it is kept. */
const char *shm_member_name(struct arena *, const struct shm_member *);
struct shm_member *shm_member_by_name(struct arena *, struct shm_room *,
	    const char *);
struct shm_member *shm_member_by_token(struct arena *, struct shm_room *,
	    const char *);
struct shm_member *shm_member_by_mid(struct arena *, struct shm_room *,
	    uint64_t);
struct shm_member *shm_member_by_uid(struct arena *, struct shm_room *,
	    const char *);
void	 shm_member_set_locked(struct arena *, struct shm_room *,
	    struct shm_member *, uint64_t *field, uint64_t value);
void	 shm_member_remove_locked(struct arena *, struct shm_room *,
	    struct shm_member *);

/*
 * The per-address table (shm_room.c), under its own leaf lock: a process
 * may take it while holding any other lock and takes none while holding
 * it.  A limit of 0 means none.  The adding calls return 0 (counted),
 * SHM_ELIMIT (refused), or 1 when the table is full: then nothing is
 * counted and the client is let through, so a flood of addresses can
 * never lock other clients out.
 */
/* Count a connection from addr on a worker slot unless max are open. */
int	 shm_ip_conn_add(struct arena *, const uint64_t addr[2],
	    unsigned slot, uint64_t max);
void	 shm_ip_conn_del(struct arena *, const uint64_t addr[2],
	    unsigned slot);
/* Count a room created by addr unless max of its rooms exist. */
int	 shm_ip_room_add(struct arena *, const uint64_t addr[2], uint64_t max);
void	 shm_ip_room_del(struct arena *, const uint64_t addr[2]);
/* Wrong passwords from addr for room rid within the minute from now. */
uint64_t shm_ip_fails(struct arena *, const uint64_t addr[2], uint64_t rid,
	    uint64_t now);
int	 shm_ip_fail_add(struct arena *, const uint64_t addr[2], uint64_t rid,
	    uint64_t now);
/* Sum of one kind of counts of addr (for every slot, for IPT_CONNS). */
uint64_t shm_ip_count(struct arena *, const uint64_t addr[2], unsigned type);
/* Forget the connections of a dead worker slot. */
void	 shm_ip_slot_dead(struct arena *, unsigned slot);
/* Drop wrong-password counts older than a minute. */
void	 shm_ip_reap(struct arena *, uint64_t now);

/* shm/shm_log.c */
struct shm_rec_in {
	const void	*data;
	uint32_t	 len;
	uint16_t	 type;
	uint64_t	 target;
};
/* Append n records atomically; on success *last is the last sequence. */
int	 shm_log_append_locked(struct arena *, struct shm_room *,
	    const struct shm_rec_in *, size_t n, uint64_t max_bytes,
	    uint64_t *last);
/*
 * Call fn for every committed record after seq "after", in order, while
 * the room lock is held; stop early when fn returns nonzero.
 */
typedef int (*shm_log_fn)(const struct shm_rec *, const void *data, void *);
void	 shm_log_read_locked(struct arena *, struct shm_room *,
	    uint64_t after, shm_log_fn, void *);
/*
 * Free whole chunks at the head of the log whose records are all at or
 * before seq "upto" (never the tail chunk).  Returns the chunks freed.
 */
int	 shm_log_trim_locked(struct arena *, struct shm_room *, uint64_t upto);

#endif /* ROOMD_SHM_H */
