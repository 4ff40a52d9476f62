/*
 * room_cluster.c: the engine in cluster mode.  Redis (cluster.c, the
 * functions of redis/) holds every room; each host's arena holds a
 * mirror of the rooms it serves, and the code above room.c cannot tell.
 *
 * A transaction is what a room lock held: room_lock takes the room's lock
 * in Redis too (txn_lock) and brings the mirror up to date with the
 * entries it lacks, so a dialect decides on the room as every host has
 * it; what the dialect changes goes to the arena through its journal as
 * in single-host mode, and also into a list of what to publish; a commit
 * (txn_commit, at room_unlock, and at each room_append so that an append
 * is acknowledged only once Redis has it) sends the change as one log
 * entry, which every other host's master applies to its own mirror.  The
 * entry's text (below, "Bodies") is the engine's own: Redis only stores
 * and publishes it, with its header in front and the presence counts at
 * the end.
 *
 * Presence: a member's worker bits are this host's; ROOM_SLOT_ELSEWHERE
 * says another host has a connection of it.  A host that dies is reaped
 * by another one (reap_presence); the members it leaves present nowhere
 * go to the room's lost set, and the next transaction on that room hands
 * each to its dialect's member_lost, once.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "roomd.h"
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
	int		 force;		/* commit even if nothing changed */
	const char	*close;		/* the room closes, for this reason */
};

struct buf {
	char		*p;
	size_t		 len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t	 cap = b->cap ? b->cap * 2 : 256;

		while (cap < b->len + len + 1)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			fatal("%s", __func__);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
buf_printf(struct buf *b, const char *fmt, ...)
{
	char	 tmp[256];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_add(b, tmp, n < 0 ? 0 : (size_t)n >= sizeof(tmp) ?
	    sizeof(tmp) - 1 : (size_t)n);
}

static void
push64(uint64_t **v, size_t *n, uint64_t x)
{
	size_t	 i;

	for (i = 0; i < *n; i++)
		if ((*v)[i] == x)
			return;
	if ((*v = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
		fatal("%s", __func__);
	(*v)[(*n)++] = x;
}

/* "roomd:{dialect:id}" */
static void
room_base(char *buf, size_t len, const struct dialect *d, const char *id)
{
	snprintf(buf, len, "%s{%s:%s}", P, d->name, id);
}

/* The shard that holds a room. */
static int
shard_of(const struct dialect *d, const char *id)
{
	char	 tag[ROOM_ID_MAX + 40];

	if (cluster_shards() < 2)
		return 0;
	snprintf(tag, sizeof(tag), "%s:%s", d->name, id);
	return cluster_shard_of(tag);
}

int
room_shard(struct room *room)
{
	return cluster_enabled() ? shard_of(room->dialect, room->r->id) : 0;
}

/* The keys of a room, in the order given by the suffixes. */
static int
room_keys(const char *base, const char **names, char keys[][200], int n)
{
	int	 i;

	for (i = 0; i < n; i++) {
		if (names[i] == NULL)	/* the caller's */
			keys[i][0] = '\0';
		else if (names[i][0] == '@')	/* a shard key */
			snprintf(keys[i], 200, "%s%s", P, names[i] + 1);
		else
			snprintf(keys[i], 200, "%s:%s", base, names[i]);
	}
	return n;
}

/* Is reply r the error code? */
static int
is_error(const redisReply *r, const char *code)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, code, strlen(code)) == 0;
}

static int
reply_failed(redisReply *r, const char *what)
{
	if (r == NULL)
		return ROOM_EUNAVAIL;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "NOROOM", 6) != 0 &&
		    strncmp(r->str, "EXISTS", 6) != 0)
			log_warnx("cluster: %s: %s", what, r->str);
		return strncmp(r->str, "NOROOM", 6) == 0 ? ROOM_ENOENT :
		    strncmp(r->str, "EXISTS", 6) == 0 ? ROOM_EEXIST :
		    ROOM_EUNAVAIL;
	}
	log_warnx("cluster: %s: a reply of the wrong shape", what);
	return ROOM_EUNAVAIL;
}

static uint64_t
int_at(const redisReply *r, size_t i)
{
	const redisReply	*e = r->element[i];

	if (e->type == REDIS_REPLY_INTEGER)
		return (uint64_t)e->integer;
	if (e->type == REDIS_REPLY_STRING)
		return strtoull(e->str, NULL, 10);
	return 0;
}

/* An array reply of at least n elements, whose listed ones are arrays. */
static int
shaped(const redisReply *r, size_t n, const int *arrays)
{
	size_t	 i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < n)
		return 0;
	for (i = 0; arrays != NULL && arrays[i] >= 0; i++)
		if (r->element[arrays[i]]->type != REDIS_REPLY_ARRAY)
			return 0;
	return 1;
}

/*
 * Bodies.  After Redis's header "E <epoch> <ver> <first seq> <nrecs>\n",
 * one item per line:
 *   R <type> <target> <len>\n<data>\n	a record (seqs from first on)
 *   M <mid> <len>\n<member>\n		a member added or changed
 *   X <mid>\n				a member removed
 *   W <w0> ... <w7> <flags> <salt> <secret>\n	the room's words
 *   N <next mid>\n
 *   K <mid>\n				close the member's connections
 *   C <len>\n<reason>\n		the room is closed
 *   P <mid> <n>\n			the member is present on n hosts
 * A member is "<role> <authorities> <joined> <token> <uid> <name>".
 */
struct entry {
	uint64_t	 epoch, ver, first, nrecs;
	const char	*p, *end;	/* the items */
};

static int
entry_parse(const char *msg, size_t len, struct entry *e)
{
	const char	*nl = memchr(msg, '\n', len);
	char		 head[128];

	if (nl == NULL || (size_t)(nl - msg) >= sizeof(head))
		return -1;
	memcpy(head, msg, (size_t)(nl - msg));
	head[nl - msg] = '\0';
	if (sscanf(head, "E %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
	    &e->epoch, &e->ver, &e->first, &e->nrecs) != 4)
		return -1;
	e->p = nl + 1;
	e->end = msg + len;
	return 0;
}

/* The next item: its line (terminated in line), and its data if any. */
static int
entry_item(struct entry *e, char *line, size_t linelen, const char **data,
    size_t *dlen)
{
	const char	*nl;
	char		 kind;
	unsigned long long a, b, n;

	if (e->p >= e->end)
		return 0;
	if ((nl = memchr(e->p, '\n', (size_t)(e->end - e->p))) == NULL ||
	    (size_t)(nl - e->p) >= linelen)
		return -1;
	memcpy(line, e->p, (size_t)(nl - e->p));
	line[nl - e->p] = '\0';
	e->p = nl + 1;
	*data = NULL;
	*dlen = 0;
	kind = line[0];
	if (kind == 'R' && sscanf(line, "R %llu %llu %llu", &a, &b, &n) == 3)
		;
	else if (kind == 'M' && sscanf(line, "M %llu %llu", &a, &n) == 2)
		;
	else if (kind == 'C' && sscanf(line, "C %llu", &n) == 1)
		;
	else
		return strchr("XWNKP", kind) != NULL && kind != '\0' ? 1 : -1;
	if (n + 1 > (size_t)(e->end - e->p) || e->p[n] != '\n')
		return -1;
	*data = e->p;
	*dlen = (size_t)n;
	e->p += n + 1;
	return 1;
}

/*
 * The mirror.  Applying changes the arena through the room's journal,
 * committed piece by piece (a change may be longer than one journal); a
 * piece applied twice does the same, and the records and the ver go last
 * and together.
 */
static void
mirror_piece(struct room *room, unsigned n)
{
	shm_tx_reserve(room_arena(), &room->r->lock, n);
}

static int
member_parse(const char *s, size_t len, struct shm_member *m, char *name)
{
	char			 buf[512];
	unsigned long long	 role, auth, joined;
	char			 token[64], uid[64];
	int			 off = 0;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(m, 0, sizeof(*m));
	if (sscanf(buf, "%llu %llu %llu %63s %63s %n", &role, &auth, &joined,
	    token, uid, &off) != 5 || off == 0 || strlen(token) !=
	    SHM_TOKEN_LEN || strlen(uid) != SHM_UID_LEN || strlen(buf + off) >
	    SHM_NAME_MAX)
		return -1;
	m->role = role;
	m->authorities = auth;
	m->joined = (uint32_t)joined;
	memcpy(m->token, token, SHM_TOKEN_LEN);
	memcpy(m->uid, uid, SHM_UID_LEN);
	snprintf(name, SHM_NAME_MAX + 1, "%s", buf + off);
	return 0;
}

/* Member mid as the entry says: changed, or added with that mid. */
static int
mirror_member(struct room *room, uint64_t mid, const char *s, size_t len)
{
	struct arena		*a = room_arena();
	struct shm_room		*r = room->r;
	struct shm_member	 in, *m;
	char			 name[SHM_NAME_MAX + 1];
	uint64_t		 next = r->next_mid;

	if (member_parse(s, len, &in, name) == -1)
		return -1;
	mirror_piece(room, 12);
	if ((m = shm_member_by_mid(a, r, mid)) != NULL) {
		if (m->role != in.role)
			shm_member_set_locked(a, r, m, &m->role, in.role);
		if (m->authorities != in.authorities)
			shm_member_set_locked(a, r, m, &m->authorities,
			    in.authorities);
		return 0;
	}
	shm_tx_set(a, &r->lock, &r->next_mid, mid);
	if (shm_member_add_locked(a, r, &in, name, UINT64_MAX, &m) != 0)
		return -1;
	shm_tx_set(a, &r->lock, &r->next_mid, next > mid + 1 ? next : mid + 1);
	return 0;
}

/* Member mid is present on n hosts, this one counted if it has it. */
static void
mirror_presence(struct room *room, uint64_t mid, uint64_t n)
{
	struct shm_member	*m = shm_member_by_mid(room_arena(), room->r,
				    mid);
	uint64_t		 slots, local;

	if (m == NULL)
		return;
	local = m->slots & ~ROOM_SLOT_ELSEWHERE;
	slots = n > (local != 0) ? m->slots | ROOM_SLOT_ELSEWHERE : local;
	if (slots != m->slots) {
		mirror_piece(room, 2);
		shm_member_set_locked(room_arena(), room->r, m, &m->slots,
		    slots);
	}
}

static int
mirror_words(struct room *room, const char *line)
{
	struct shm_room		*r = room->r;
	unsigned long long	 w[8], flags;
	char			 salt[64], secret[128];
	uint8_t			 bin[64];
	int			 i;

	if (sscanf(line, "W %llu %llu %llu %llu %llu %llu %llu %llu %llu "
	    "%63s %127s", &w[0], &w[1], &w[2], &w[3], &w[4], &w[5], &w[6],
	    &w[7], &flags, salt, secret) != 11 || strlen(salt) != 2 *
	    sizeof(r->salt) || strlen(secret) != 2 * sizeof(r->secret))
		return -1;
	mirror_piece(room, 8 + 1 + 6);
	for (i = 0; i < 8; i++)
		if (r->dstate[i] != w[i])
			shm_tx_set(room_arena(), &r->lock, &r->dstate[i], w[i]);
	if (r->flags != flags)
		shm_tx_set(room_arena(), &r->lock, &r->flags, flags);
	for (i = 0; i < (int)sizeof(r->salt); i++)
		sscanf(salt + 2 * i, "%2hhx", &bin[i]);
	room_tx_bytes(r, r->salt, bin, sizeof(r->salt));
	for (i = 0; i < (int)sizeof(r->secret); i++)
		sscanf(secret + 2 * i, "%2hhx", &bin[i]);
	room_tx_bytes(r, r->secret, bin, sizeof(r->secret));
	return 0;
}

/* The entry's records, at their seqs, and its ver: the last piece. */
static int
mirror_records(struct room *room, const struct entry *e0)
{
	struct entry		 e = *e0;
	struct room_rec_in	*recs = NULL;
	char			 line[256];
	const char		*data;
	size_t			 dlen, n = 0;
	unsigned long long	 type, target;
	uint64_t		 last;
	int			 rc = 0;

	if (e.nrecs > 0 && (recs = calloc(e.nrecs, sizeof(*recs))) == NULL)
		fatal("%s", __func__);
	while (rc == 0 && entry_item(&e, line, sizeof(line), &data, &dlen) ==
	    1)
		if (line[0] == 'R') {
			if (n == e.nrecs || sscanf(line, "R %llu %llu", &type,
			    &target) != 2)
				rc = -1;
			else
				recs[n++] = (struct room_rec_in){ data,
				    (uint32_t)dlen, (uint16_t)type, target };
		}
	if (rc == 0 && n != e.nrecs)
		rc = -1;
	mirror_piece(room, 12);
	if (rc == 0 && n > 0) {
		if (room->r->log_head == 0 && room->r->committed + 1 !=
		    e.first)
			shm_tx_set(room_arena(), &room->r->lock,
			    &room->r->committed, e.first - 1);
		if (room->r->committed + 1 != e.first ||
		    shm_log_append_locked(room_arena(), room->r,
		    (const struct shm_rec_in *)recs, n, UINT64_MAX, &last) != 0)
			rc = -1;
		else
			room->appended = 1;
	}
	if (rc == 0)
		shm_tx_set(room_arena(), &room->r->lock, &room->r->cver, e.ver);
	if (rc == 0 && n > 0 && (room->r->flags & ROOM_F_RELAY)) {
		mirror_piece(room, 16);		/* four chunks at most */
		room_trim(room->r, last);
	}
	free(recs);
	return rc;
}

/*
 * Apply one entry to a locked mirror.  0: applied or already there; 1:
 * the room was closed (and is gone: room was freed); -1: the entry is
 * past the next one (a gap); -2: the mirror cannot follow (another epoch,
 * or an entry it cannot read): start it over.
 */
static int
mirror_apply(struct room *room, const char *msg, size_t len)
{
	struct entry		 e, items;
	char			 line[256], reason[128];
	const char		*data;
	size_t			 dlen;
	unsigned long long	 mid, n;
	int			 k;

	if (entry_parse(msg, len, &e) == -1)
		return -2;
	if (e.epoch != room->r->cepoch)
		return -2;
	if (e.ver <= room->r->cver)
		return 0;
	if (e.ver != room->r->cver + 1)
		return -1;
	items = e;
	while ((k = entry_item(&items, line, sizeof(line), &data, &dlen)) ==
	    1) {
		mid = n = 0;
		sscanf(line + 1, " %llu %llu", &mid, &n);
		switch (line[0]) {
		case 'M':
			if (mirror_member(room, mid, data, dlen) == -1)
				return -2;
			break;
		case 'X':
			mirror_piece(room, 8);
			if (room_member_remove_local(room, mid) != 0)
				(void)0;	/* already gone */
			break;
		case 'W':
			if (mirror_words(room, line) == -1)
				return -2;
			break;
		case 'N':
			if (mid > room->r->next_mid) {
				mirror_piece(room, 1);
				shm_tx_set(room_arena(), &room->r->lock,
				    &room->r->next_mid, mid);
			}
			break;
		case 'K':
			room_kick_local(room, mid);
			break;
		case 'P':
			mirror_presence(room, mid, n);
			break;
		}
		if (line[0] == 'C') {
			snprintf(reason, sizeof(reason), "%.*s", (int)dlen,
			    data);
			room_delete_local(room, reason, 0);
			return 1;
		}
	}
	if (k == -1 || mirror_records(room, &e) == -1)
		return -2;
	cluster_count(CLUSTER_APPLIED, 1);
	return 0;
}

/*
 * Apply the entries of a reply ({ver, data, ...}) to a locked mirror,
 * committing the journal after each.  0, 1 (closed: room freed), or -2
 * (start over).
 */
static int
mirror_apply_list(struct room *room, const redisReply *list)
{
	size_t	 i;
	int	 rc;

	for (i = 0; i + 1 < list->elements; i += 2) {
		const redisReply *d = list->element[i + 1];

		if (d->type != REDIS_REPLY_STRING)
			return -2;
		rc = mirror_apply(room, d->str, d->len);
		if (rc == 1)
			return 1;
		if (rc != 0)
			return -2;
		shm_tx_commit(room_arena(), &room->r->lock);
		shm_tx_begin(room_arena(), &room->r->lock);
	}
	return 0;
}

/* The mirror cannot follow: drop it (its clients are closed and come
 * back to a fresh one).  The room is freed. */
static void
mirror_drop(struct room *room)
{
	log_info("cluster: room %s:%s starts over from Redis",
	    room->dialect != NULL ? room->dialect->name : "?", room->r->id);
	cluster_count(CLUSTER_GAPS, 1);
	room_delete_local(room, "room reloaded", 1);
}

/* Records of an entry only (its state is in the snapshot). */
static int
mirror_load_records(struct room *room, const redisReply *list)
{
	struct entry	 e;
	size_t		 i;
	uint64_t	 ver = room->r->cver;

	for (i = 0; i + 1 < list->elements; i += 2) {
		const redisReply *d = list->element[i + 1];

		if (d->type != REDIS_REPLY_STRING ||
		    entry_parse(d->str, d->len, &e) == -1)
			return -1;
		if (e.nrecs == 0)
			continue;
		if (mirror_records(room, &e) == -1)
			return -1;
		shm_tx_commit(room_arena(), &room->r->lock);
		shm_tx_begin(room_arena(), &room->r->lock);
	}
	shm_tx_set(room_arena(), &room->r->lock, &room->r->cver, ver);
	return 0;
}

/* room_open's reply into a new, locked mirror. */
static int
mirror_load(struct room *room, const redisReply *r)
{
	struct shm_room	*sr = room->r;
	const redisReply *mem = r->element[6], *pres = r->element[7];
	char		 line[300];
	size_t		 i;
	int		 rc = 0;

	shm_tx_set(room_arena(), &sr->lock, &sr->cepoch, int_at(r, 0));
	shm_tx_set(room_arena(), &sr->lock, &sr->cver, int_at(r, 1));
	if (r->element[4]->type == REDIS_REPLY_STRING &&
	    r->element[4]->len > 0) {
		snprintf(line, sizeof(line), "W %s", r->element[4]->str);
		rc = mirror_words(room, line);
	}
	for (i = 0; rc == 0 && i + 1 < mem->elements; i += 2)
		rc = mirror_member(room, strtoull(mem->element[i]->str, NULL,
		    10), mem->element[i + 1]->str, mem->element[i + 1]->len);
	for (i = 0; rc == 0 && i + 1 < pres->elements; i += 2) {
		const char	*s = pres->element[i + 1]->str;
		uint64_t	 n = *s != '\0';

		for (; *s != '\0'; s++)
			n += *s == ' ';
		mirror_presence(room, strtoull(pres->element[i]->str, NULL,
		    10), n);
	}
	if (rc == 0 && int_at(r, 5) > sr->next_mid)
		shm_tx_set(room_arena(), &sr->lock, &sr->next_mid,
		    int_at(r, 5));
	if (rc == 0)
		rc = mirror_load_records(room, r->element[8]);
	if (rc == 0 && sr->log_head == 0)
		shm_tx_set(room_arena(), &sr->lock, &sr->committed,
		    int_at(r, 2));
	if (rc == 0 && sr->committed != int_at(r, 2))
		rc = -1;
	return rc;
}

static redisReply *
room_open_call(const struct dialect *d, const char *id, int create)
{
	static const char *names[] = { "meta", "log", "members", "pres",
				    "lost", NULL, "@leases" };
	char		 base[160], keys[7][200], session[96], idle[32];
	char		 create_s[2] = { create ? '1' : '0', 0 };
	const char	*argv[16];
	int		 i, shard = shard_of(d, id);

	if (cluster_session(shard, session, sizeof(session)) == -1 && create)
		return NULL;
	room_base(base, sizeof(base), d, id);
	room_keys(base, names, keys, 7);
	snprintf(keys[5], 200, "%srooms:%s", P, d->name);
	snprintf(idle, sizeof(idle), "%llu", (unsigned long long)(d->idle_ttl
	    != NULL ? d->idle_ttl() : env->conf.room_ttl) * 1000ULL);
	argv[0] = "FCALL";
	argv[1] = create ? "roomd_room_open" : "roomd_room_find";
	argv[2] = "7";
	for (i = 0; i < 7; i++)
		argv[3 + i] = keys[i];
	argv[10] = session[0] ? session : "none/0";
	argv[11] = d->name;
	argv[12] = id;
	argv[13] = create_s;
	argv[14] = idle;
	argv[15] = "0";
	return cluster_callv(shard, 16, argv, NULL);
}

/* Make the local mirror of a room from room_open's reply. */
static int
mirror_make(const struct dialect *d, const char *id, redisReply *r,
    struct room **out)
{
	static const int arrays[] = { 6, 7, 8, -1 };
	struct shm_room_ref	 ref;
	struct shm_room		*sr;
	struct room		*room;
	int			 rc;

	if (!shaped(r, 9, arrays))
		return reply_failed(r, "room_open");
	rc = shm_room_create_locked(room_arena(), d->id, id,
	    room_idle_expiry(d), &ref, &sr);
	if (rc != 0)
		return rc;
	room = room_new(sr, (const struct room_ref *)&ref);
	if (d->relay)
		shm_tx_set(room_arena(), &sr->lock, &sr->flags, sr->flags |
		    ROOM_F_RELAY);
	if (mirror_load(room, r) == -1) {
		log_warnx("cluster: room %s:%s: its state in Redis cannot be "
		    "read", d->name, id);
		room_delete_local(room, "room reloaded", 1);
		return ROOM_EUNAVAIL;
	}
	*out = room;
	return 0;
}

int
rcl_open(const struct dialect *d, const char *id)
{
	redisReply	*r = room_open_call(d, id, 0);
	struct room	*room;
	int		 rc;

	if (r == NULL)
		return ROOM_EUNAVAIL;
	if ((rc = mirror_make(d, id, r, &room)) == 0)
		room_unlock(room);	/* no transaction: a local commit */
	else if (rc == ROOM_EEXIST)
		rc = 0;			/* another process made it */
	freeReplyObject(r);
	return rc;
}

int
rcl_create(const struct dialect *d, const char *id, struct room **out)
{
	struct room_ref	 ref;
	struct shm_room	*sr;
	redisReply	*r = room_open_call(d, id, 1);
	int		 rc;

	if (r == NULL)
		return ROOM_EUNAVAIL;
	if (r->type == REDIS_REPLY_ERROR) {
		rc = reply_failed(r, "room_open");
		freeReplyObject(r);
		return rc;
	}
	/* A mirror of a room closed meanwhile is stale. */
	if (shm_room_find(room_arena(), d->id, id,
	    (struct shm_room_ref *)&ref) == 0 && shm_room_lock(room_arena(),
	    (const struct shm_room_ref *)&ref, &sr) == 0)
		room_delete_local(room_new(sr, &ref), "room deleted", 0);
	rc = mirror_make(d, id, r, out);
	freeReplyObject(r);
	if (rc == 0 && (rc = rcl_lock(*out)) != 0) {
		if (rc == ROOM_EUNAVAIL)
			room_delete_local(*out, "cluster unavailable", 1);
		*out = NULL;
		rc = ROOM_EUNAVAIL;
	}
	return rc;
}

size_t
rcl_list(const struct dialect *d, struct room_ref *refs, size_t max)
{
	redisReply	*r;
	size_t		 n = 0, i, k;
	int		 shard;
	const struct dialect *x;

	for (k = 0; (x = d != NULL ? (k == 0 ? d : NULL) : dialect_at(k)) !=
	    NULL && n < max; k++)
		for (shard = 0; shard < cluster_shards() && n < max; shard++) {
			if ((r = cluster_cmd(shard, "SMEMBERS %srooms:%s", P,
			    x->name)) == NULL)
				continue;	/* that shard's rooms are away */
			for (i = 0; r->type == REDIS_REPLY_ARRAY &&
			    i < r->elements && n < max; i++)
				if (r->element[i]->type == REDIS_REPLY_STRING &&
				    room_find(x, r->element[i]->str,
				    &refs[n]) == 0)
					n++;
			freeReplyObject(r);
		}
	return n;
}

/*
 * Transactions.
 */
static int		 mirror_read_only(struct room *);
static redisReply	*log_read_call(struct room *);
static struct room_txn *
txn_get(struct room *room)
{
	if (room->tx == NULL && (room->tx = calloc(1, sizeof(*room->tx))) ==
	    NULL)
		fatal("%s", __func__);
	return room->tx;
}

static void
txn_free(struct room *room)
{
	struct room_txn	*tx = room->tx;

	if (tx == NULL)
		return;
	free(tx->mids);
	free(tx->pres);
	free(tx->kicks);
	free(tx->lost);
	free(tx->done);
	free(tx);
	room->tx = NULL;
}

static void
txn_clear(struct room_txn *tx)
{
	tx->nmids = tx->npres = tx->nkicks = tx->ndone = 0;
	tx->words = tx->force = 0;
	tx->close = NULL;
}

static void
room_key_set(struct room *room, char *base, size_t len)
{
	room_base(base, len, room->dialect, room->r->id);
}

static redisReply *
txn_lock_call(struct room *room, struct room_txn *tx)
{
	static const char *names[] = { "meta", "log", "lock", "lost",
				    "@leases" };
	char		 base[160], keys[5][200], px[16], after[32], max[16];
	const char	*argv[13];
	int		 i;

	room_key_set(room, base, sizeof(base));
	room_keys(base, names, keys, 5);
	snprintf(px, sizeof(px), "%d", LOCK_PX);
	snprintf(after, sizeof(after), "%llu",
	    (unsigned long long)room->r->cver);
	snprintf(max, sizeof(max), "%d", CATCH_UP_MAX);
	argv[0] = "FCALL";
	argv[1] = "roomd_txn_lock";
	argv[2] = "5";
	for (i = 0; i < 5; i++)
		argv[3 + i] = keys[i];
	argv[8] = tx->session;
	argv[9] = tx->token;
	argv[10] = px;
	argv[11] = after;
	argv[12] = max;
	return cluster_callv(room_shard(room), 13, argv, NULL);
}

/* Wait a little for a busy lock: 1, 2, 4... ms, at most 32. */
static void
lock_backoff(int *ms)
{
	struct timespec	 ts = { 0, (long)*ms * 1000000L };

	nanosleep(&ts, NULL);
	if (*ms < 32)
		*ms *= 2;
}

/*
 * Take the room's lock in Redis and bring the mirror up to date.  The
 * local lock is held.  0, ROOM_ENOENT (the room is gone: the mirror is
 * dropped and room freed), or ROOM_EUNAVAIL.
 */
int
rcl_lock(struct room *room)
{
	static unsigned long	 counter;
	static const int	 arrays[] = { 4, 5, -1 };
	struct room_txn		*tx = txn_get(room);
	redisReply		*r;
	char			 key[200];
	int64_t			 until = cluster_ms() + LOCK_WAIT_MS;
	int			 ms = 1, rc, shard = room_shard(room);
	size_t			 i;

	if (cluster_session(shard, tx->session, sizeof(tx->session)) == -1)
		return ROOM_EUNAVAIL;
	snprintf(tx->token, sizeof(tx->token), "%ld.%lu", (long)getpid(),
	    ++counter);
	room_key_set(room, key, sizeof(key) - 5);
	strcat(key, ":lock");
	cluster_hold(shard, key, tx->token);
	while ((r = txn_lock_call(room, tx)) != NULL && is_error(r, "BUSY") &&
	    cluster_ms() < until) {
		freeReplyObject(r);
		lock_backoff(&ms);
	}
	if (r != NULL && is_error(r, "OOM")) {
		/* Redis takes no writes: the room can still be read. */
		freeReplyObject(r);
		cluster_hold(0, NULL, NULL);
		return mirror_read_only(room);
	}
	if (!shaped(r, 6, arrays)) {
		cluster_hold(0, NULL, NULL);
		rc = reply_failed(r, "txn_lock");
		if (r != NULL)
			freeReplyObject(r);
		if (rc == ROOM_ENOENT)
			room_delete_local(room, "room deleted", 0);
		return rc == ROOM_ENOENT ? rc : ROOM_EUNAVAIL;
	}
	tx->locked = 1;
	rc = int_at(r, 0) == room->r->cepoch && int_at(r, 3) == 1 ?
	    mirror_apply_list(room, r->element[4]) : -2;
	for (i = 0; rc == 0 && i < r->element[5]->elements; i++)
		push64(&tx->lost, &tx->nlost, int_at(r->element[5], i));
	freeReplyObject(r);
	if (rc == 1)
		return ROOM_ENOENT;	/* closed: freed */
	if (rc != 0) {
		rcl_release(room);
		mirror_drop(room);
		return RCL_RELOADED;
	}
	tx->seq0 = room->r->committed;
	return 0;
}

/*
 * A transaction that may only read (Redis is out of memory): the mirror
 * is brought up to date with log_read, and every change is refused
 * (rcl_writable).  0, or as rcl_lock.
 */
static int
mirror_read_only(struct room *room)
{
	static const int arrays[] = { 3, -1 };
	redisReply	*r = log_read_call(room);
	int		 rc = -2;

	if (shaped(r, 4, arrays) && int_at(r, 0) == room->r->cepoch &&
	    int_at(r, 2) == 1)
		rc = mirror_apply_list(room, r->element[3]);
	else if (r != NULL && is_error(r, "NOROOM"))
		rc = 1;
	if (r != NULL)
		freeReplyObject(r);
	if (rc == 1) {
		room_delete_local(room, "room deleted", 0);
		return ROOM_ENOENT;
	}
	if (rc != 0) {
		mirror_drop(room);
		return RCL_RELOADED;
	}
	room->tx->seq0 = room->r->committed;
	return 0;
}

int
rcl_writable(struct room *room)
{
	return room->tx == NULL || room->tx->locked;
}

/* Give the Redis lock back without a change. */
void
rcl_release(struct room *room)
{
	struct room_txn	*tx = room->tx;
	redisReply	*r;
	char		 base[160];

	if (tx == NULL || !tx->locked)
		return;
	room_key_set(room, base, sizeof(base));
	r = cluster_cmd(room_shard(room), "FCALL roomd_txn_unlock 1 %s:lock "
	    "%s %s", base, tx->session, tx->token);
	if (r != NULL)
		freeReplyObject(r);
	tx->locked = 0;
	cluster_hold(0, NULL, NULL);
}

/* The records appended since the last commit, into the body. */
struct rec_out {
	struct buf	*b;
	uint64_t	 n;
};

static int
body_rec(const struct room_rec *rec, void *arg)
{
	struct rec_out	*o = arg;

	buf_printf(o->b, "R %d %llu %zu\n", rec->type,
	    (unsigned long long)rec->target, rec->len);
	buf_add(o->b, rec->data, rec->len);
	buf_add(o->b, "\n", 1);
	o->n++;
	return 0;
}

static void
hex(struct buf *b, const uint8_t *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		buf_printf(b, "%02x", p[i]);
}

/* "role authorities joined token uid name" */
static void
member_line(struct buf *b, struct room *room, const struct shm_member *m)
{
	buf_printf(b, "%llu %llu %u %s %s ", (unsigned long long)m->role,
	    (unsigned long long)m->authorities, m->joined, m->token, m->uid);
	buf_printf(b, "%s", shm_member_name(room_arena(), m));
}

struct commit {
	struct buf	 body, words, args[4];	/* ups, rms, pres, done */
	uint64_t	 nrecs;
	size_t		 n[4];
};

/* Arguments travel as one buffer of NUL-terminated strings per list. */
static void
arg_add(struct commit *c, int list, const char *s, size_t len)
{
	buf_add(&c->args[list], s, len);
	buf_add(&c->args[list], "", 1);
}

static void
commit_members(struct room *room, struct commit *c)
{
	struct room_txn		*tx = room->tx;
	struct shm_member	*m;
	struct buf		 line = { NULL, 0, 0 };
	char			 mid[32];
	size_t			 i;

	for (i = 0; i < tx->nmids; i++) {
		snprintf(mid, sizeof(mid), "%llu",
		    (unsigned long long)tx->mids[i]);
		m = shm_member_by_mid(room_arena(), room->r, tx->mids[i]);
		if (m == NULL) {
			buf_printf(&c->body, "X %s\n", mid);
			arg_add(c, 1, mid, strlen(mid));
			c->n[1]++;
			continue;
		}
		line.len = 0;
		member_line(&line, room, m);
		buf_printf(&c->body, "M %s %zu\n", mid, line.len);
		buf_add(&c->body, line.p, line.len);
		buf_add(&c->body, "\n", 1);
		arg_add(c, 0, mid, strlen(mid));
		arg_add(c, 0, line.p, line.len);
		c->n[0]++;
	}
	free(line.p);
}

static void
commit_build(struct room *room, struct commit *c)
{
	struct room_txn	*tx = room->tx;
	struct shm_room	*r = room->r;
	struct rec_out	 o = { &c->body, 0 };
	char		 s[32];
	size_t		 i;
	int		 k;

	room_read(room, tx->seq0, body_rec, &o);
	c->nrecs = o.n;
	commit_members(room, c);
	if (tx->words) {
		for (k = 0; k < 8; k++)
			buf_printf(&c->words, "%s%llu", k ? " " : "",
			    (unsigned long long)r->dstate[k]);
		buf_printf(&c->words, " %llu ", (unsigned long long)(r->flags &
		    (ROOM_F_PASSWORD | ROOM_F_CLOSING)));
		hex(&c->words, r->salt, sizeof(r->salt));
		buf_add(&c->words, " ", 1);
		hex(&c->words, r->secret, sizeof(r->secret));
		buf_printf(&c->body, "W %s\n", c->words.p);
	}
	buf_printf(&c->body, "N %llu\n", (unsigned long long)r->next_mid);
	for (i = 0; i < tx->nkicks; i++)
		buf_printf(&c->body, "K %llu\n",
		    (unsigned long long)tx->kicks[i]);
	if (tx->close != NULL) {
		buf_printf(&c->body, "C %zu\n", strlen(tx->close));
		buf_printf(&c->body, "%s\n", tx->close);
	}
	for (i = 0; i < tx->npres; i++) {
		snprintf(s, sizeof(s), "%llu",
		    (unsigned long long)tx->pres[i].mid);
		arg_add(c, 2, s, strlen(s));
		arg_add(c, 2, tx->pres[i].here ? "1" : "0", 1);
		c->n[2]++;
	}
	for (i = 0; i < tx->ndone; i++) {
		snprintf(s, sizeof(s), "%llu", (unsigned long long)tx->done[i]);
		arg_add(c, 3, s, strlen(s));
		c->n[3]++;
	}
}

/* argv for txn_commit: 10 keys, 10 fixed arguments, then the lists. */
static redisReply *
commit_call(struct room *room, struct commit *c, int release)
{
	static const char *names[] = { "meta", "log", "members", "pres",
				    "lock", "lost", "@leases", NULL, "@lost",
				    NULL };
	struct room_txn	*tx = room->tx;
	char		 base[160], keys[10][200], num[7][32];
	const char	**argv, *p;
	size_t		*lens, n, i, k, cap;
	redisReply	*r;
	int		 list;

	room_key_set(room, base, sizeof(base));
	room_keys(base, names, keys, 10);
	snprintf(keys[7], 200, "%ssess:%s", P, tx->session);
	snprintf(keys[9], 200, "%srooms:%s", P, room->dialect->name);
	cap = 32 + c->n[0] * 2 + c->n[1] + c->n[2] * 2 + c->n[3];
	if ((argv = calloc(cap, sizeof(*argv))) == NULL ||
	    (lens = calloc(cap, sizeof(*lens))) == NULL)
		fatal("%s", __func__);
	n = 0;
	argv[n++] = "FCALL";
	argv[n++] = "roomd_txn_commit";
	argv[n++] = "10";
	for (i = 0; i < 10; i++)
		argv[n++] = keys[i];
	argv[n++] = tx->session;
	argv[n++] = tx->token;
	argv[n++] = release ? "1" : "0";
	argv[n++] = room->dialect->relay ? "1000" : "0";
	lens[n] = c->body.len;
	argv[n++] = c->body.p != NULL ? c->body.p : "";
	snprintf(num[0], 32, "%llu", (unsigned long long)c->nrecs);
	argv[n++] = num[0];
	argv[n++] = tx->close != NULL ? "1" : "0";
	argv[n++] = c->words.p != NULL ? c->words.p : "";
	argv[n++] = "";
	snprintf(num[1], 32, "%llu", (unsigned long long)room->r->next_mid);
	argv[n++] = num[1];
	for (list = 0; list < 4; list++) {
		snprintf(num[2 + list], 32, "%zu", c->n[list]);
		argv[n++] = num[2 + list];
		p = c->args[list].p;
		k = list == 0 || list == 2 ? 2 * c->n[list] : c->n[list];
		for (i = 0; i < k; i++) {
			/* a member line may hold any byte but NUL */
			argv[n++] = p;
			p += strlen(p) + 1;
		}
	}
	for (i = 0; i < n; i++)
		if (lens[i] == 0)
			lens[i] = strlen(argv[i]);
	r = cluster_callv(room_shard(room), (int)n, argv, lens);
	free(argv);
	free(lens);
	return r;
}

static void
commit_free(struct commit *c)
{
	int	 i;

	free(c->body.p);
	free(c->words.p);
	for (i = 0; i < 4; i++)
		free(c->args[i].p);
}

/*
 * Commit what the transaction changed so far.  0, or ROOM_EUNAVAIL with
 * the local journal rolled back to the last commit (Redis has nothing).
 */
static int
txn_commit(struct room *room, int release)
{
	static const int arrays[] = { 3, -1 };
	struct room_txn	*tx = room->tx;
	struct commit	 c;
	redisReply	*r;
	size_t		 i;
	int		 ok;

	memset(&c, 0, sizeof(c));
	commit_build(room, &c);
	r = commit_call(room, &c, release);
	ok = shaped(r, 4, arrays) && int_at(r, 0) == room->r->cver + 1 &&
	    (c.nrecs == 0 || int_at(r, 1) == tx->seq0 + 1) &&
	    int_at(r, 2) == room->r->cepoch;
	if (ok) {
		shm_tx_set(room_arena(), &room->r->lock, &room->r->cver,
		    int_at(r, 0));
		for (i = 0; i + 1 < r->element[3]->elements; i += 2)
			mirror_presence(room, int_at(r->element[3], i),
			    int_at(r->element[3], i + 1));
		cluster_count(CLUSTER_COMMITS, 1);
	} else if (shaped(r, 4, arrays))
		log_warnx("cluster: room %s: the commit does not follow the "
		    "mirror", room->r->id);
	else
		reply_failed(r, "txn_commit");
	if (r != NULL)
		freeReplyObject(r);
	commit_free(&c);
	if (ok && cluster_wait_replicas(room_shard(room)) == -1)
		ok = 0;		/* written, but not acknowledged */
	if (release || !ok) {
		tx->locked = 0;
		cluster_hold(0, NULL, NULL);
	}
	txn_clear(tx);
	tx->seq0 = room->r->committed;
	return ok ? 0 : ROOM_EUNAVAIL;
}

static int
txn_dirty(const struct room_txn *tx, uint64_t seq0, uint64_t committed)
{
	return tx->nmids || tx->npres || tx->nkicks || tx->ndone || tx->words ||
	    tx->force || tx->close != NULL || committed != seq0;
}

int
rcl_unlock(struct room *room)
{
	struct room_txn	*tx = room->tx;
	int		 rc = 0;

	if (tx == NULL)
		return 0;
	if (tx->locked && txn_dirty(tx, tx->seq0, room->r->committed))
		rc = txn_commit(room, 1);
	else if (!tx->locked && txn_dirty(tx, tx->seq0, room->r->committed))
		rc = ROOM_EUNAVAIL;	/* read only: undone here */
	else
		rcl_release(room);
	txn_free(room);
	return rc;
}

int
rcl_commit(struct room *room)
{
	struct arena	*a = room_arena();
	int		 rc;

	if (room->tx == NULL || !room->tx->locked)
		return ROOM_EUNAVAIL;
	rc = txn_commit(room, 0);
	if (rc == 0)
		shm_tx_commit(a, &room->r->lock);
	else
		shm_tx_abort(a, &room->r->lock);
	shm_tx_begin(a, &room->r->lock);
	return rc;
}

int
rcl_close(struct room *room, const char *reason)
{
	if (room->tx == NULL || !room->tx->locked)
		return ROOM_EUNAVAIL;
	room->tx->close = reason;
	return txn_commit(room, 1);
}

void
rcl_kick(struct room *room, uint64_t mid)
{
	struct room_txn	*tx = room->tx;

	if (tx != NULL)
		push64(&tx->kicks, &tx->nkicks, mid);
}

void
rcl_dirty_member(struct room *room, uint64_t mid)
{
	if (room->tx != NULL)
		push64(&room->tx->mids, &room->tx->nmids, mid);
}

void
rcl_dirty_room(struct room *room)
{
	if (room->tx != NULL)
		room->tx->words = 1;
}

void
rcl_presence(struct room *room, uint64_t mid, int here)
{
	struct room_txn	*tx = room->tx;
	size_t		 i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->npres; i++)
		if (tx->pres[i].mid == mid) {
			tx->pres[i].here = here;
			return;
		}
	if ((tx->pres = reallocarray(tx->pres, tx->npres + 1,
	    sizeof(*tx->pres))) == NULL)
		fatal("%s", __func__);
	tx->pres[tx->npres++] = (struct presence){ mid, here };
}

/*
 * The master: other hosts' transactions, reaping, lost members.
 */

/* "dialect:id" or "roomd:{dialect:id}" into its dialect and id. */
static const struct dialect *
room_name_parse(const char *s, char *id, size_t idlen)
{
	char		 name[32];
	const char	*colon;
	size_t		 n;

	if (strncmp(s, P, strlen(P)) == 0 && s[strlen(P)] == '{')
		s += strlen(P) + 1;
	if ((colon = strchr(s, ':')) == NULL || (size_t)(colon - s) >=
	    sizeof(name))
		return NULL;
	memcpy(name, s, (size_t)(colon - s));
	name[colon - s] = '\0';
	snprintf(id, idlen, "%s", colon + 1);
	n = strlen(id);
	if (n > 0 && id[n - 1] == '}')
		id[n - 1] = '\0';
	return dialect_find(name);
}

/* Lock a local mirror without a transaction: NULL if there is none. */
static struct room *
mirror_lock(const struct dialect *d, const char *id)
{
	struct shm_room_ref	 ref;
	struct shm_room		*sr;

	if (d == NULL || shm_room_find(room_arena(), d->id, id, &ref) != 0 ||
	    shm_room_lock(room_arena(), &ref, &sr) != 0)
		return NULL;
	return room_new(sr, (const struct room_ref *)&ref);
}

static redisReply *
log_read_call(struct room *room)
{
	char	 base[160];

	room_key_set(room, base, sizeof(base));
	return cluster_cmd(room_shard(room), "FCALL roomd_log_read 5 %s:meta "
	    "%s:log %s:members "
	    "%s:pres %s:lost %llu %d", base, base, base, base, base,
	    (unsigned long long)room->r->cver, CATCH_UP_MAX);
}

/* Fill a locked mirror from the log.  The room is unlocked (or gone). */
static void
mirror_catch_up(struct room *room)
{
	static const int arrays[] = { 3, -1 };
	redisReply	*r = log_read_call(room);
	int		 rc = 0;

	if (r != NULL && is_error(r, "NOROOM")) {
		freeReplyObject(r);
		room_delete_local(room, "room deleted", 0);
		return;
	}
	if (shaped(r, 4, arrays)) {
		rc = int_at(r, 0) == room->r->cepoch && int_at(r, 2) == 1 ?
		    mirror_apply_list(room, r->element[3]) : -2;
		if (rc == 0 && r->element[3]->elements > 0)
			cluster_count(CLUSTER_GAPS, 1);
	}
	if (r != NULL)
		freeReplyObject(r);
	if (rc == -2)
		mirror_drop(room);
	else if (rc == 0)
		room_unlock(room);
}

void
room_mirror_message(const char *name, const char *msg, size_t len)
{
	const struct dialect	*d;
	struct room		*room;
	char			 id[ROOM_ID_MAX + 2];
	int			 rc;

	if ((d = room_name_parse(name, id, sizeof(id))) == NULL ||
	    (room = mirror_lock(d, id)) == NULL)
		return;		/* not a room this host serves */
	rc = mirror_apply(room, msg, len);
	if (rc == -1)
		mirror_catch_up(room);
	else if (rc == -2)
		mirror_drop(room);
	else if (rc == 0)
		room_unlock(room);
}

void
room_mirror_check_all(int shard)
{
	struct room_ref	*refs;
	struct room	*room;
	size_t		 n, i;

	if ((refs = calloc(4096, sizeof(*refs))) == NULL)
		return;
	n = shm_room_list(room_arena(), ROOM_ALL_DIALECTS,
	    (struct shm_room_ref *)refs, 4096);
	for (i = 0; i < n; i++) {
		struct shm_room *sr;

		if (shm_room_lock(room_arena(), (const struct shm_room_ref *)
		    &refs[i], &sr) != 0)
			continue;
		room = room_new(sr, &refs[i]);
		if (room_shard(room) == shard)
			mirror_catch_up(room);
		else
			room_unlock(room);
	}
	free(refs);
}

void
room_mirror_reap(int shard, const char *base, const char *s)
{
	redisReply	*r;

	r = cluster_cmd(shard, "FCALL roomd_reap_presence 8 %s:meta %s:log %s:pres "
	    "%s:lock %s:lost %sleases %ssess:%s %slost %s 0", base, base,
	    base, base, base, P, P, s, P, s);
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		log_info("cluster: %lld members of %s lost with %s",
		    r->integer, base, s);
	else if (r->type == REDIS_REPLY_ERROR && !is_error(r, "BUSY") &&
	    !is_error(r, "ALIVE"))
		log_warnx("cluster: reap_presence %s: %s", base, r->str);
	freeReplyObject(r);
}

/* Hand the room's lost members to its dialect, once: the commit removes
 * them from the lost set. */
static void
lost_room(const struct dialect *d, const char *id)
{
	struct room_ref		 ref;
	struct room		*room;
	struct room_member	 m;
	struct room_txn		*tx;
	size_t			 i;

	if (room_find(d, id, &ref) != 0 || room_lock(&ref, &room) != 0)
		return;
	tx = room->tx;
	for (i = 0; tx != NULL && i < tx->nlost; i++) {
		if (room_member_by_mid(room, tx->lost[i], &m) == 0 &&
		    !m.connected && d->member_lost != NULL) {
			d->member_lost(room, &m);
			cluster_count(CLUSTER_REAPED, 1);
		}
		push64(&tx->done, &tx->ndone, tx->lost[i]);
	}
	if (tx != NULL)
		tx->force = 1;
	room_unlock(room);
}

void
room_mirror_lost_all(int shard)
{
	const struct dialect	*d;
	redisReply		*r;
	char			 id[ROOM_ID_MAX + 2];
	size_t			 i;

	if ((r = cluster_cmd(shard, "SMEMBERS %slost", P)) == NULL)
		return;
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    (d = room_name_parse(r->element[i]->str, id,
		    sizeof(id))) != NULL)
			lost_room(d, id);
	freeReplyObject(r);
}

void
rcl_member_gone(const struct dialect *d, const char *id, uint64_t mid)
{
	struct room_ref		 ref;
	struct room		*room;
	struct room_member	 m;
	char			 session[96];

	/* Without a session (a master that reattached its arena and has
	 * not joined yet), the reaping of the old session does it. */
	if (cluster_session(shard_of(d, id), session, sizeof(session)) == -1 ||
	    room_find(d, id, &ref) != 0 || room_lock(&ref, &room) != 0)
		return;
	/* This host's presence goes first, so that the counts say whether
	 * another host still has the member. */
	rcl_presence(room, mid, 0);
	if (rcl_commit(room) == 0 && room_member_by_mid(room, mid, &m) == 0 &&
	    !m.connected && d->member_lost != NULL)
		d->member_lost(room, &m);
	room_unlock(room);
}
