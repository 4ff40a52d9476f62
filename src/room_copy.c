/*
 * room_copy.c: a host's copy of a room in its arena (cluster mode): the
 * log entries of doc/cluster.txt applied to it, a copy made from Redis
 * (room_open) and caught up from the log (log_read).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "roomd.h"
#include "room_cluster.h"

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
void
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
	unsigned long long	 w[8], flags, keep = 0;
	char			 salt[64], secret[128];
	uint8_t			 bin[64];
	int			 i, n;

	/* keep_from came after the secret (an older roomd's lack it). */
	n = sscanf(line, "W %llu %llu %llu %llu %llu %llu %llu %llu %llu "
	    "%63s %127s %llu", &w[0], &w[1], &w[2], &w[3], &w[4], &w[5], &w[6],
	    &w[7], &flags, salt, secret, &keep);
	if ((n != 11 && n != 12) || strlen(salt) != 2 * sizeof(r->salt) ||
	    strlen(secret) != 2 * sizeof(r->secret))
		return -1;
	mirror_piece(room, 8 + 1 + 6 + 1);
	if (n == 12 && r->keep_from != keep)
		shm_tx_set(room_arena(), &r->lock, &r->keep_from, keep);
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
 * past the next one (a gap); -3: the entry is of another epoch (nothing
 * applied); -2: the mirror cannot follow (an entry it cannot read):
 * start it over.
 */
int
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
		return -3;
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
int
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
void
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

	shm_tx_set(room_arena(), &sr->lock, &sr->cepoch, reply_int(r, 0));
	shm_tx_set(room_arena(), &sr->lock, &sr->cver, reply_int(r, 1));
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
	if (rc == 0 && reply_int(r, 5) > sr->next_mid)
		shm_tx_set(room_arena(), &sr->lock, &sr->next_mid,
		    reply_int(r, 5));
	if (rc == 0)
		rc = mirror_load_records(room, r->element[8]);
	if (rc == 0 && sr->log_head == 0)
		shm_tx_set(room_arena(), &sr->lock, &sr->committed,
		    reply_int(r, 2));
	if (rc == 0 && sr->committed != reply_int(r, 2))
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

	if (!reply_shaped(r, 9, arrays))
		return reply_failed(r, "room_open");
	rc = shm_room_create_locked(room_arena(), d->id, id,
	    room_idle_expiry(d), &ref, &sr);
	if (rc != 0)
		return rc;
	room = room_new(sr, (const struct room_ref *)&ref);
	if (room_relays(d, id))
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
 * A transaction that may only read (Redis is out of memory): the mirror
 * is brought up to date with log_read, and every change is refused
 * (rcl_writable).  0, or as rcl_lock.
 */
int
mirror_read_only(struct room *room)
{
	static const int arrays[] = { 3, -1 };
	redisReply	*r = log_read_call(room);
	int		 rc = -2;

	if (reply_shaped(r, 4, arrays) && reply_int(r, 0) == room->r->cepoch &&
	    reply_int(r, 2) == 1)
		rc = mirror_apply_list(room, r->element[3]);
	else if (r != NULL && reply_is(r, "NOROOM"))
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

redisReply *
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
void
mirror_catch_up(struct room *room)
{
	static const int arrays[] = { 3, -1 };
	redisReply	*r = log_read_call(room);
	int		 rc = 0;

	if (r != NULL && reply_is(r, "NOROOM")) {
		freeReplyObject(r);
		room_delete_local(room, "room deleted", 0);
		return;
	}
	if (reply_shaped(r, 4, arrays)) {
		rc = reply_int(r, 0) == room->r->cepoch && reply_int(r, 2) == 1 ?
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
