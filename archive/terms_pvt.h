/*
 * archive private (terms.c): the per-frame set of distinct index terms, the
 * per-segment posting lists built from them, and the posting-list encoding
 * (docs/archive-format.md, "terms").  One of each per writer; not
 * thread-safe.
 */
#ifndef FLOWSCOPE_ARCHIVE_TERMS_PVT_H
#define FLOWSCOPE_ARCHIVE_TERMS_PVT_H

#include <stdint.h>

#include "archive/archive.h"

#define TERM_ENTRY_MAX 64 /* bytes: the largest term or packet signature */

_Static_assert(TERM_ENTRY_MAX >= 16 * 2 + 9 + 2 * FT_MAX_VLAN + 1 + FT_MAX_NXT,
               "a packet signature must fit an entry");

/* An entry of a byteset: its bytes follow; a set's entries are all max_len long. */
struct term_entry {
	uint8_t type; /* enum archive_term_type (0 for signatures) */
	uint8_t len;
	uint8_t b[];
};

/* A slot of a byteset: the entry, and 32 bits of its hash that the slot index does not use. */
struct byteset_slot {
	uint32_t tag; /* hash >> 32 */
	uint32_t idx; /* entry index + 1, 0 = empty */
};

/*
 * A set of short byte strings: open addressing over an append-only array.
 * Probes compare tags first, so an entry is read only when it likely matches.
 */
struct byteset {
	uint8_t *ents;    /* distinct entries, insertion order, `stride` bytes each */
	size_t stride;    /* sizeof(struct term_entry) + the set's longest entry: sets of
	                   * terms (16 bytes at most) stay small and dense */
	uint64_t *hashes; /* parallel to ents: each entry's hash */
	uint32_t n, cap;
	struct byteset_slot *slots;
	uint32_t mask;
};

/* Entry i of a set. */
static inline const struct term_entry *archive__byteset_at(const struct byteset *bs, uint32_t i)
{
	return (const struct term_entry *)(bs->ents + (size_t)i * bs->stride);
}

struct termset {
	struct byteset terms; /* the frame's distinct terms */
	struct byteset sigs;  /* signatures of packets already added */
};

/* 0 or -ENOMEM. */
int archive__termset_init(struct termset *ts);
void archive__termset_free(struct termset *ts);

/* Empties the set for the next frame (keeps its memory). */
void archive__termset_reset(struct termset *ts);

/* Adds one term (type, b[0..len)) if absent.  0 or -ENOMEM. */
int archive__termset_add(struct termset *ts, uint8_t type, const uint8_t *b, uint8_t len);

/*
 * Adds the terms of one parsed packet (its hosts and ports only if
 * hosts_ports: see archive__index_packet).  0 or -ENOMEM.
 */
int archive__termset_add_packet(struct termset *ts, const struct ft_packet *pkt, int hosts_ports);

/*
 * The writer's state of a flow (ft_flow.state, writer and verify tables):
 * the trigger id (first one wins), and which of the segment's posting lists
 * hold the flow's two hosts and two ports (valid while gen is the segterms'
 * generation), so that its packets reach them without hashing or searching.
 */
struct archive__flow_state {
	uint16_t trigger;
	uint16_t pad;
	uint32_t gen;
	uint32_t list[4]; /* host a, host b, port a, port b of the flow key */
};

struct segterms;

/* Prefetching for flow f's posting lists: stage 0 the lists, stage 1 their ends (a hint). */
void archive__flow_terms_prefetch(const struct segterms *st, const struct ft_flow *f, int stage);

/*
 * The index content of one packet of a segment of `linktype`, in frame
 * `frame`: its terms into ts (and the UNINDEXED term, with
 * ARCHIVE_FRAME_UNINDEXED in *frame_flags, when its headers are cut or
 * inconsistent), and its flow's statistics into `flows` (flow key with VLAN;
 * state: struct archive__flow_state).  The hosts and ports of an IP packet
 * with ports go straight into st's posting lists for `frame` instead of ts
 * (the same lists in the end: archive__segterms_add_frame adds each term to
 * a frame once); with st NULL they go into ts too (for a caller that may
 * commit lists before the frame itself is recorded).  The table must not be
 * full (it would evict).  0 or -ENOMEM.
 */
int archive__index_packet(struct termset *ts, struct segterms *st, uint32_t frame,
                          struct ft_table *flows, const struct archive_packet *p,
                          uint32_t *frame_flags);

/* The trigger id stored in a flow's state by archive__index_packet. */
uint16_t archive__flow_trigger(const struct ft_flow *f);

/* ---- posting lists ---------------------------------------------------------------------- */

/*
 * The frames of one segment that hold one term, as the index stores them: a
 * sequence of runs of consecutive frame numbers, each run one item
 *   varint(gap << 1 | multi) [varint(length - 2) when multi]
 * where gap = run start - end of the previous run (0 for the first run's
 * start from 0) and varint is unsigned LEB128.  Appending the next frame of a
 * run rewrites only the last item.
 */
struct plist {
	uint8_t *buf;
	uint32_t len, cap;
	uint32_t last_off;  /* where the last item starts */
	uint32_t last_gap;  /* its gap */
	uint32_t last_run;  /* its run length (0: empty list) */
	uint32_t end;       /* the frame after its run */
	uint32_t committed; /* len when last written to the index */
};

#define PLIST_MAX_ITEM 10 /* two varints of up to 5 bytes */

/* Appends frame f (greater than every frame in the list).  0 or -ENOMEM. */
int archive__plist_add(struct plist *pl, uint32_t f);

/* Drops the frames >= nframes; the list is then marked as written (see segterms_cut). */
int archive__plist_cut(struct plist *pl, uint32_t nframes);

/*
 * Decodes an encoded list, calling fn(frame, arg) for each frame in order;
 * fn's non-zero return stops.  Returns 0, fn's value, or -EINVAL (malformed:
 * truncated or over-long varint, run beyond 2^32, trailing garbage, two runs
 * that touch): what it accepts is the one encoding archive__plist_add writes.
 */
int archive__plist_decode(const uint8_t *p, size_t len, int (*fn)(uint32_t frame, void *arg),
                          void *arg);

/* The terms of one open segment and their posting lists. */
struct segterms {
	struct byteset set;  /* terms, insertion order */
	struct plist *lists; /* parallel to set.ents */
	uint32_t lists_cap;
	uint32_t *dirty; /* indexes of lists changed since the last commit */
	uint32_t ndirty, dirty_cap;
	uint32_t gen; /* > 0; changes when the lists do (a new segment): see archive__flow_state */
};

int archive__segterms_init(struct segterms *st);
void archive__segterms_free(struct segterms *st);
void archive__segterms_reset(struct segterms *st); /* for the next segment */

/* Adds frame `frame` to the list of every term of the frame's set.  0 or -ENOMEM. */
int archive__segterms_add_frame(struct segterms *st, const struct termset *ts, uint32_t frame);

/*
 * Drops frames >= nframes from every list: a rollback to the last commit, whose
 * frames are those below nframes, so every list is then what the index holds
 * (nothing dirty).  0 or -ENOMEM.
 */
int archive__segterms_cut(struct segterms *st, uint32_t nframes);

#endif
