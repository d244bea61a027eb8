/*
 * archive private (scan.c): reading a segment file from its bytes alone, as
 * recovery, `index verify` and `index rebuild` must: frame by frame, each
 * zstd frame decompressed (its checksum checked) and its pcap records
 * checked, up to the end, the seek table, or the first frame that is
 * incomplete or damaged.
 */
#ifndef FLOWSCOPE_ARCHIVE_SCAN_PVT_H
#define FLOWSCOPE_ARCHIVE_SCAN_PVT_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "archive/archive.h"

struct seg_frame_size {
	uint32_t csize, usize;
	int damaged; /* bytes skipped by archive__scan_resync: usize is a guess (0 unknown) */
};

struct seg_scan {
	int fd;
	const uint8_t *map; /* the whole file, read-only */
	size_t size;
	ZSTD_DCtx *dctx;
	uint8_t *ubuf;
	size_t ucap;
	uint64_t off;                 /* where the next frame starts */
	uint32_t frame;               /* its number */
	int linktype;                 /* from frame 0's pcap header; -1 before */
	uint32_t snaplen;             /* likewise */
	int seektable;                /* the scan ended at a seek table that matches the frames */
	uint32_t run;                 /* the recording, from the frames' tags */
	struct seg_frame_size *sizes; /* the frames read so far (and the damaged ones skipped) */
	size_t nsizes, sizes_cap;
	uint64_t gap_off;       /* the last damage archive__scan_resync skipped: where, */
	uint32_t gap_bytes;     /*   how long, */
	uint32_t gap_usize;     /*   and its zstd header's content size (0 unknown) */
	int known_linktype;     /* when frame 0 is damaged past reading its pcap header: */
	uint32_t known_snaplen; /*   what the index knew (snaplen 0: nothing) */
};

struct seg_scanned {
	uint32_t frame;
	uint64_t offset;
	uint32_t csize, usize;
	const uint8_t *data; /* decompressed, valid until the next call */
	size_t records_at;   /* first record (after the pcap header in frame 0) */
	uint32_t packets;
	uint64_t min_ns, max_ns;
	uint64_t chunk; /* from the frame's tag */
};

/* Opens (maps) a segment file.  0, or a negative errno with archive_errmsg(). */
int archive__scan_open(struct seg_scan *s, const char *path);
void archive__scan_close(struct seg_scan *s);

/*
 * The next data frame.  Returns 1 and *f; 0 at a clean end (the end of the
 * file after whole frames, or a seek table matching them that ends the
 * file: s->seektable); -1 when the bytes at s->off are not a whole, valid
 * frame (why says what), which is where a crash cut the file; -ENOMEM.
 */
int archive__scan_next(struct seg_scan *s, struct seg_scanned *f, char *why, size_t whylen);

/*
 * After archive__scan_next returned -1: finds the first whole frame (or a
 * seek table that matches the frames and ends the file) after the damaged
 * bytes at s->off.  The damaged bytes count as one frame (s->frame and the
 * sizes move on; s->gap_* describe them); when they are frame 0, the pcap
 * header is taken from what of the frame still decompresses, else from
 * s->known_linktype and s->known_snaplen if set.  Returns what
 * archive__scan_next returns for the frame found (1 and *f, or 0 at a seek
 * table), or -1 with s unchanged when no whole frame follows (a torn or
 * damaged tail), or -ENOMEM.
 */
int archive__scan_resync(struct seg_scan *s, struct seg_scanned *f, char *why, size_t whylen);

/*
 * Reading ahead (index verify): a thread of its own runs archive__scan_next
 * on s, up to SCAN_AHEAD_FRAMES frames before the caller, so that
 * decompressing and checking the next frames overlaps the caller's work on
 * this one.  While it runs, s belongs to that thread: the caller learns what
 * archive__scan_next would have said, and where s then stood (*pos), from
 * archive__scan_ahead_next, and reads s again only after
 * archive__scan_ahead_stop (the thread may have read past the frames taken;
 * once a call returned 0, s is as a plain scan left it).  Without a thread
 * (not asked for, or none could start) the calls read on the caller's
 * thread.  Threading: one caller thread.
 */
#define SCAN_AHEAD_FRAMES 8
/* ... and while frames are ahead, no further once their contents reach this many bytes (a
 * damaged segment may claim frames of up to 64 MiB: memory stays bounded by the budget, one
 * frame over it and the caller's frame); a slot keeps a buffer between frames only up to
 * SCAN_AHEAD_KEEP bytes. */
#define SCAN_AHEAD_BYTES (32u << 20)
#define SCAN_AHEAD_KEEP (4u << 20)

struct seg_ahead;

struct seg_ahead_pos {
	uint64_t off;  /* s->off after the call */
	int seektable; /* s->seektable */
	int linktype;  /* s->linktype */
};

/* Starts reading s ahead (threaded 0: on the caller's thread, when it asks).  0, or -ENOMEM
 * with archive_errmsg(). */
int archive__scan_ahead_start(struct seg_scan *s, int threaded, struct seg_ahead **out);

/*
 * As archive__scan_next (the frame's data valid until the next call; after a
 * return other than 1 every later call returns the same), with *pos.
 */
int archive__scan_ahead_next(struct seg_ahead *a, struct seg_scanned *f, char *why, size_t whylen,
                             struct seg_ahead_pos *pos);

/* Stops the thread and frees a (NULL: nothing). */
void archive__scan_ahead_stop(struct seg_ahead *a);

/*
 * Checks the pcap records of a decompressed frame: frame 0 starts with the
 * nanosecond pcap header (its link type and snaplen are learned into
 * *linktype and *snaplen when *linktype < 0, else must equal them); every record
 * fits the frame and the snaplen, with nanoseconds below 10^9.  Sets
 * *records_at, *packets and the time range.  0 or ARCHIVE_E_CORRUPT.
 */
int archive__pcap_check(const uint8_t *p, size_t len, int frame0, int *linktype, uint32_t *snaplen,
                        size_t *records_at, uint32_t *packets, uint64_t *min_ns, uint64_t *max_ns);

/* The next record at *pos of checked records; 1 and *rec, 0 at the end. */
int archive__record_next(const uint8_t *p, size_t len, size_t *pos, struct archive_record *rec);

#endif
