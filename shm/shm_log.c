/*
 * shm_log.c: each room's append-only, numbered op log.
 *
 * The log is a chain of chunks; records are packed into a chunk and never
 * span two.  An append writes its records into space no reader looks at
 * (past the tail chunk's used mark, or a fresh chunk), then publishes them
 * with a handful of journaled stores, the last being the committed
 * sequence.  So a batch is appended whole or not at all.
 */
#include "config.h"

#include <string.h>

#include "shm.h"

#define CHUNK_BYTES	(64 * 1024)
#define REC_BYTES(len)	(sizeof(struct shm_rec) + (((uint64_t)(len) + 7) & ~7ULL))

static void
rec_write(uint8_t *at, const struct shm_rec_in *in, uint64_t seq)
{
	struct shm_rec	*rec = (struct shm_rec *)at;

	rec->seq = seq;
	rec->len = in->len;
	rec->type = in->type;
	rec->flags = 0;
	rec->target = in->target;
	if (in->len > 0)
		memcpy(rec + 1, in->data, in->len);
}

/*
 * Append n records as one batch, numbered from committed + 1, unless the
 * log would pass max_bytes (SHM_ELIMIT) or the arena is full (SHM_ENOSPC).
 */
int
shm_log_append_locked(struct arena *a, struct shm_room *r,
    const struct shm_rec_in *in, size_t n, uint64_t max_bytes,
    uint64_t *last)
{
	struct shm_lock		*lk = &r->lock;
	struct shm_chunk	*tail = NULL, *fresh = NULL;
	shm_off			 fresh_off = 0;
	uint64_t		 total = 0, fit = 0, rest = 0, seq, used;
	size_t			 i, k = 0;

	for (i = 0; i < n; i++)
		total += REC_BYTES(in[i].len);
	if (n == 0)
		return SHM_EINVAL;
	if (r->log_bytes + total > max_bytes)
		return SHM_ELIMIT;
	if (r->log_tail != 0) {
		tail = SHM_PTR(a, r->log_tail);
		/* Records that fit in the tail go there, in order. */
		for (k = 0; k < n && tail->used + fit + REC_BYTES(in[k].len) <=
		    tail->cap; k++)
			fit += REC_BYTES(in[k].len);
	}
	rest = total - fit;
	if (rest > 0) {
		uint64_t want = rest > CHUNK_BYTES ? rest : CHUNK_BYTES;

		fresh_off = shm_tx_alloc(a, lk, sizeof(*fresh) + want);
		if (fresh_off == 0)
			return shm_size_class(sizeof(*fresh) + want) < 0 ?
			    SHM_ELIMIT : SHM_ENOSPC;
		fresh = SHM_PTR(a, fresh_off);
		fresh->next = 0;
		fresh->first_seq = r->committed + 1 + k;
		fresh->nrec = 0;
		fresh->used = 0;
		fresh->cap = shm_block_size(a, fresh_off) - sizeof(*fresh);
	}
	seq = r->committed;
	used = tail != NULL ? tail->used : 0;
	for (i = 0; i < k; i++) {
		rec_write((uint8_t *)(tail + 1) + used, &in[i], ++seq);
		used += REC_BYTES(in[i].len);
	}
	for (; i < n; i++) {
		rec_write((uint8_t *)(fresh + 1) + fresh->used, &in[i], ++seq);
		fresh->used += REC_BYTES(in[i].len);
		fresh->nrec++;
	}
	/* Publish: everything above was written where no reader looks. */
	if (k > 0) {
		shm_tx_set(a, lk, &tail->used, used);
		shm_tx_set(a, lk, &tail->nrec, tail->nrec + k);
	}
	SHM_CRASH("log_append");
	if (fresh != NULL) {
		if (tail != NULL)
			shm_tx_set(a, lk, &tail->next, fresh_off);
		else
			shm_tx_set(a, lk, &r->log_head, fresh_off);
		shm_tx_set(a, lk, &r->log_tail, fresh_off);
	}
	shm_tx_set(a, lk, &r->log_bytes, r->log_bytes + total);
	shm_tx_set(a, lk, &r->committed, seq);
	*last = seq;
	return 0;
}

void
shm_log_read_locked(struct arena *a, struct shm_room *r, uint64_t after,
    shm_log_fn fn, void *arg)
{
	struct shm_chunk	*c;
	const uint8_t		*p, *end;
	shm_off			 off;

	for (off = r->log_head; off != 0; off = c->next) {
		c = SHM_PTR(a, off);
		if (c->nrec == 0 || c->first_seq + c->nrec - 1 <= after)
			continue;
		p = (const uint8_t *)(c + 1);
		end = p + c->used;
		while (p < end) {
			const struct shm_rec *rec = (const void *)p;

			if (rec->seq > after && fn(rec, rec + 1, arg) != 0)
				return;
			p += REC_BYTES(rec->len);
		}
	}
}

int
shm_log_trim_locked(struct arena *a, struct shm_room *r, uint64_t upto)
{
	struct shm_chunk	*c;
	int			 n = 0;

	/* A few chunks a call keeps the journal and release list short. */
	while (n < 4 && r->log_head != 0 && r->log_head != r->log_tail) {
		c = SHM_PTR(a, r->log_head);
		if (c->nrec > 0 && c->first_seq + c->nrec - 1 > upto)
			break;
		shm_tx_free(a, &r->lock, r->log_head);
		shm_tx_set(a, &r->lock, &r->log_bytes, r->log_bytes - c->used);
		shm_tx_set(a, &r->lock, &r->log_head, c->next);
		n++;
	}
	return n;
}
