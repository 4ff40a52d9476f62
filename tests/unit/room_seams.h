/*
 * room_seams.h: what tests/unit/room_seams.c puts in place of the daemon
 * around the room engine (room.c, fanout.c, stats.c), for test_room.c.
 *
 *   proc.c       proc_ring records each doorbell and the slot it was rung
 *                to (a slot in seam_full_slots refuses it, as a full inbox)
 *   server*.c    fake connections: struct fake_conn wraps a struct conn
 *                and records the frames it was sent and how it was closed;
 *                its output is full while fake->full is set
 *   dialect.c    two test dialects: seam_hist (history, with a frame_add
 *                that writes "[seq:data,seq:data]") and seam_relay (relay,
 *                with a relay_match on fake->tag and a member_lost that
 *                records its calls and can act through seam_lost_fn)
 *   log.c        messages are counted (and kept quiet)
 */
#ifndef ROOM_SEAMS_H
#define ROOM_SEAMS_H

#include <stddef.h>
#include <stdint.h>

#include "roomd.h"

#define SEAM_FRAMES	16	/* frames kept per fake connection */
#define SEAM_RINGS	64	/* doorbells kept */
#define SEAM_LOST	8	/* member_lost calls kept */

struct fake_conn {
	struct conn	 c;		/* first: a struct conn * is a fake */
	int		 full;		/* server_output_full says so */
	uint64_t	 tag;		/* what relay_match picks */
	int		 nframes;	/* frames sent (all, even past SEAM_FRAMES) */
	char		*frames[SEAM_FRAMES];	/* their payloads, NUL-ended */
	int		 ncloses;	/* server_ws_close calls that closed it */
	int		 close_code;
	char		 close_reason[128];
	struct fake_conn *next;		/* every fake, for seam_reset */
};

struct seam_ring {
	int		 slot;
	struct doorbell	 db;
};

struct seam_lost {
	uint64_t	 rid;
	struct room_member m;
	int		 locked;	/* the room's lock was held */
};

extern const struct dialect	 seam_hist;
extern const struct dialect	 seam_relay;
extern const struct mount	 seam_hist_mount;
extern const struct mount	 seam_relay_mount;

extern struct seam_ring		 seam_rings[SEAM_RINGS];
extern int			 seam_nrings;
extern uint64_t			 seam_full_slots;
extern int			 seam_flush_later_calls;
extern int			 seam_frame_adds;	/* records written */
extern int			 seam_relay_matches;	/* relay_match calls */
extern char			 seam_relay_text[64];	/* "type text" it saw last */
extern struct seam_lost		 seam_lost[SEAM_LOST];
extern int			 seam_nlost;
/* Called by seam_relay's member_lost after it records the call. */
extern void			(*seam_lost_fn)(struct room *,
				    const struct room_member *);
extern int			 seam_warnings;

/* A fake WebSocket connection of the mount's dialect. */
struct fake_conn *seam_conn(const struct mount *);
/* Doorbells of a type rung to slot since the last reset. */
int	 seam_rung(int slot, uint32_t type, struct doorbell *last);
/* A bit mask of the slots rung a doorbell of this type. */
uint64_t seam_rung_slots(uint32_t type);
/* Forget what was recorded (not the fakes). */
void	 seam_clear(void);
/* Detach and free every fake connection; nothing left pending. */
void	 seam_reset(void);

#endif /* ROOM_SEAMS_H */
