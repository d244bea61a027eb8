/*
 * archive private: the per-frame set of distinct index terms (terms.c).
 * One per writer; not thread-safe.
 */
#ifndef FLOWSCOPE_ARCHIVE_TERMS_PVT_H
#define FLOWSCOPE_ARCHIVE_TERMS_PVT_H

#include <stdint.h>

#include "archive/archive.h"

#define TERM_ENTRY_MAX 64 /* bytes: the largest term or packet signature */

_Static_assert(TERM_ENTRY_MAX >= 16 * 2 + 9 + 2 * FT_MAX_VLAN + 1 + FT_MAX_NXT,
               "a packet signature must fit an entry");

struct term_entry {
	uint8_t type; /* enum archive_term_type (0 for signatures) */
	uint8_t len;
	uint8_t b[TERM_ENTRY_MAX];
};

/* A set of short byte strings: open addressing over an append-only array. */
struct byteset {
	struct term_entry *ents; /* distinct entries, insertion order */
	uint32_t n, cap;
	uint32_t *slots; /* entry index + 1, 0 = empty */
	uint32_t mask;
};

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

/* Adds the terms of one parsed packet.  0 or -ENOMEM. */
int archive__termset_add_packet(struct termset *ts, const struct ft_packet *pkt);

#endif
