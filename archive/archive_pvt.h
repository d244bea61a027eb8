/*
 * archive private: the archive object, the LMDB schema, and the byte-level
 * encodings of index keys and values (docs/archive-format.md is the spec;
 * this file must agree with it).
 *
 * Keys are big-endian so LMDB's memcmp order is numeric order; values are
 * little-endian fixed layouts with a leading version where they may grow.
 */
#ifndef FLOWSCOPE_ARCHIVE_PVT_H
#define FLOWSCOPE_ARCHIVE_PVT_H

#include <lmdb.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "archive/archive.h"

#define ARCHIVE_MAPSIZE (1ull << 40)     /* LMDB map: virtual reservation, 1 TiB */
#define ARCHIVE_MAPSIZE_MIN (1ull << 30) /* where the address space holds no more */
#define ARCHIVE_SEG_NAMELEN 64

/* pcap global header, nanosecond variant (written in little-endian) */
#define PCAP_MAGIC_NANO 0xa1b23c4du
#define PCAP_GHDR_LEN 24u
#define PCAP_RHDR_LEN 16u

/*
 * Each data frame of a segment is preceded by a skippable frame (ignored by
 * zstd tools) naming the recording and QQ chunk its packets came from:
 * magic, size 16, run u32, reserved u32 (0), chunk u64, all little-endian.
 */
#define FRAME_TAG_MAGIC 0x184D2A53u
#define FRAME_TAG_LEN 24u

/* zstd seekable format (contrib/seekable_format) */
#define SEEK_SKIPPABLE_MAGIC 0x184D2A5Eu
#define SEEK_FOOTER_MAGIC 0x8F92EAB1u
#define SEEK_ENTRY_LEN 8u
#define SEEK_FOOTER_LEN 9u

struct archive {
	char *dir;
	const char *index_sub; /* the LMDB directory under dir: "index" (rebuild: another) */
	int lock_fd;           /* LOCK file, flock()ed by writers; -1 for readers */
	int writable;
	unsigned format; /* FORMAT's version (ARCHIVE_FORMAT_OLDEST..ARCHIVE_FORMAT_VERSION) */
	MDB_env *env;
	MDB_dbi db_meta, db_segments, db_frames, db_terms, db_flows;
	int created; /* archive_open() created it: 1, 2 = and its directory (else 0) */
};

/* ---- value layouts (little-endian) ---- */

#define SEG_REC_VERSION 1u
#define SEG_REC_LEN 96u
#define FRAME_REC_LEN 48u
#define FLOW_REC_MAX 72u /* flow value: 8 + 5 varints of <= 10 bytes + 2 + varint(u16) */

/* keys: segments: seg u64 BE; frames: seg u64 BE | frame u32 BE;
 * terms: partition u32 BE | type u8 | term bytes | seg u64 BE (value: posting list);
 * flows: seg u64 BE | FLOW term (37 bytes) | outer vlan u16 BE | inner vlan u16 BE, and
 *        an IPv4 flow without the IPv4-mapped prefixes: seg | a (4) | b (4) | port a u16 BE |
 *        port b u16 BE | proto | outer vlan | inner vlan (FLOW_KEY_LEN_IP4, format 4); format 3
 *        keyed IPv4 flows at FLOW_KEY_LEN too, format 2 all flows without the inner tag
 *        (FLOW_KEY_LEN_V2): both still read */
#define SEG_KEY_LEN 8u
#define FRAME_KEY_LEN 12u
#define TERMS_TERM_MAXLEN 16u /* the longest term stored in `terms` (HOST) */
#define TERMS_KEY_MAX (4u + 1u + TERMS_TERM_MAXLEN + 8u)
#define FLOW_KEY_LEN (8u + ARCHIVE_TERM_MAXLEN + 4u)
#define FLOW_KEY_LEN_V2 (8u + ARCHIVE_TERM_MAXLEN + 2u)
#define FLOW_KEY_LEN_IP4 (8u + 4u + 4u + 2u + 2u + 1u + 4u)

/*
 * Segments per partition of `terms`: a term's entries for the segments of one
 * partition are adjacent keys (one range read per term per partition), and a
 * partition's entries are deleted together once all its segments are gone.
 */
#define TERMS_PART_SEGS 64u

static inline uint32_t archive__terms_part(uint64_t seg)
{
	return (uint32_t)(seg / TERMS_PART_SEGS);
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline void le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

/*
 * The archive's one varint: unsigned LEB128, 7 bits a byte, low group first, the top bit
 * set on every byte but the last (flow records, posting lists).  Writers write the
 * shortest form, so a reader rejects any other: a last byte of 0 after the first (over-
 * long), more than 10 bytes or bits beyond 2^64 (overflow), a value above the field's max.
 */
#define ARCHIVE_VARINT_MAX 10u /* bytes of a 64-bit value */

/* Writes v at p (room for ARCHIVE_VARINT_MAX bytes); returns its length. */
static inline size_t archive__varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Reads the varint at p (len bytes available) into *v if it is at most max; returns its
 * length, 0 if malformed (truncated, over-long, beyond 64 bits or max). */
static inline size_t archive__varint_get(const uint8_t *p, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < len && i < ARCHIVE_VARINT_MAX; i++) {
		uint8_t b = p[i];
		if (i == ARCHIVE_VARINT_MAX - 1 && b > 1)
			return 0; /* bits beyond 2^64 */
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if ((i > 0 && b == 0) || x > max)
				return 0;
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/* records <-> bytes (index.c) */
/* A read transaction (archive_rtxn_begin), or a write transaction lent to the readers'
 * walks (archive_segments, archive_flows) by a function that holds one. */
struct archive_rtxn {
	struct archive *a;
	MDB_txn *txn;
};

/* 1 if segment id has a flow record with a trigger, 0 if not, or ARCHIVE_E_* (pins.c). */
int archive__seg_pinned(struct archive *a, uint64_t id);

void archive__seg_encode(const struct archive_segment_info *s, uint64_t created_ns,
                         uint8_t out[SEG_REC_LEN]);
int archive__seg_decode(uint64_t id, const MDB_val *v, struct archive_segment_info *s);
void archive__frame_encode(const struct archive_frame_info *f, uint8_t out[FRAME_REC_LEN]);
int archive__frame_decode(const MDB_val *k, const MDB_val *v, struct archive_frame_info *f);
/* Returns the value's length. */
size_t archive__flow_encode(const struct archive_flow_info *f, uint8_t out[FLOW_REC_MAX]);
int archive__flow_decode(const MDB_val *k, const MDB_val *v, struct archive_flow_info *f);
/*
 * The flows key of key in segment seg; returns its length: FLOW_KEY_LEN_IP4 for an IPv4 flow
 * (both addresses IPv4-mapped), FLOW_KEY_LEN for others; with wide, FLOW_KEY_LEN for every
 * flow (the key format 3 wrote).
 */
size_t archive__flow_key_put(uint64_t seg, const struct ft_flow_key *key, int wide,
                             uint8_t out[FLOW_KEY_LEN]);
/* 1 if k's length is one a flows key may have (FLOW_KEY_LEN, _V2 or _IP4). */
int archive__flow_key_len_ok(size_t len);
/* The flow key of a flows key of any of those lengths (FLOW_KEY_LEN_V2: inner tag 0). */
void archive__flow_key_get(const MDB_val *k, struct ft_flow_key *key);

/* Segment file path for a state; returns buf. */
/* 1 if name is a segment file's: "<12 digits>.pcap.zst" or "<12 digits>.pcap.zst.open". */
int archive__seg_name_ok(const char *name);
char *archive__seg_path(const struct archive *a, uint64_t id, enum archive_segment_state state,
                        char *buf, size_t len);

/* Sets this thread's error detail (printf-style). */
void archive__errmsg_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Sets this thread's error detail (printf-style) and is err, for chaining:
 * `return archive__fail(ARCHIVE_E_CORRUPT, "...")`; err is read first (it may
 * be -errno).  A macro so that the value is plain where it is used: a
 * decoder's failure is seen to return non-zero, by the static analyzer too
 * (which does not look into archive.c).
 */
#define archive__fail(err, ...)                   \
	__extension__({                           \
		int archive_fail_err_ = (err);    \
		archive__errmsg_set(__VA_ARGS__); \
		archive_fail_err_;                \
	})

/* 1 if another process holds the archive's write lock (flock on LOCK); 0 for the writer. */
int archive__writer_active(const struct archive *a);

/* Maps an LMDB return code to ARCHIVE_E_LMDB with a message naming `what`. */
int archive__lmdb_fail(int rc, const char *what);

/* Writes one meta key in a write transaction of its own; `what` names it in a failure. */
int archive__meta_put(struct archive *a, MDB_val *k, MDB_val *v, const char *what);

/* Makes *buf (of *cap elements of el bytes) hold at least need: doubles from 64.
 * 0 or -ENOMEM (archive_errmsg says so); *buf and *cap unchanged on failure. */
int archive__grow(void **buf, size_t *cap, size_t need, size_t el);

/* The index file checked before LMDB trusts it (lmdbcheck.c): 0, -errno (-ENOENT: no
 * file), or ARCHIVE_E_CORRUPT with the damage described in why. */
int archive__lmdb_check_header(const char *path, char *why, size_t len);
/* Every page of txn's snapshot checked in place, before LMDB reads them: 0, -ENOMEM or
 * ARCHIVE_E_CORRUPT (why says where). */
int archive__lmdb_check_pages(MDB_env *env, MDB_txn *txn, char *why, size_t len);

/* ---- writers adopting existing segment files (writer.c; recover.c) ---- */

struct seg_scanned;

/* Makes the file at path (as scanned: id, run, linktype, snaplen in s) the writer's open
 * segment, to be indexed frame by frame, not written.  0 or an error. */
int archive__writer_adopt(struct archive_writer *w, const struct archive_segment_info *s,
                          uint64_t created_ns, const char *path);
/* From now on each segment w adopts may have entries in the index already (recovery of an
 * open segment): its commit deletes them and writes the new ones in one transaction, so a
 * crash leaves the index as it was before or after, never without the segment's entries. */
void archive__writer_adopt_replacing(struct archive_writer *w);
/* After an error: forgets the adopted segment without committing or writing anything. */
void archive__writer_adopt_abandon(struct archive_writer *w);
/* Indexes the next whole frame of the adopted file. */
int archive__writer_adopt_frame(struct archive_writer *w, const struct seg_scanned *f);
/* Steps over `bytes` of a damaged frame of the adopted file (archive__scan_resync): they
 * count as one frame with no record in the index (the seek table keeps its entry, with
 * usize if its zstd header still says it), so the frames after it keep their places. */
int archive__writer_adopt_gap(struct archive_writer *w, uint32_t bytes, uint32_t usize);
/* Commits; with seal, cuts the file after the last adopted frame and appends the seek table
 * (unless has_table: the file already ends with one matching), renames it to the closed
 * name; records the segment closed.  *cut: bytes removed. */
int archive__writer_adopt_close(struct archive_writer *w, int seal, int has_table, uint64_t *cut);

/*
 * Deletes what the index holds about segment `id` in txn: its frames and
 * flow records, with SEG_DROP_RECORD its record, with SEG_DROP_TERMS its
 * posting lists (a scan of its partition: for recovery; retention leaves
 * them until the whole partition goes).
 */
#define SEG_DROP_RECORD 0x1u
#define SEG_DROP_TERMS 0x2u
int archive__segment_drop(struct archive *a, MDB_txn *txn, uint64_t id, unsigned what);

/*
 * Retention's drop list (retention.c): the ids of segments whose index
 * entries retention deleted and whose files are still to be unlinked, as
 * `meta` keys "dropped:" + id (u64 BE), empty values.  An id goes on the list
 * in the transaction that deletes the segment's entries and leaves it once
 * the file is gone, so after a crash the index itself says which files
 * retention dropped: recovery and rebuild finish those drops, and nothing
 * else is ever removed on the strength of a guess.
 */
/* 1 if id is on the list (in txn's snapshot; NULL: a fresh one), 0 if not, or an error. */
int archive__dropped_contains(struct archive *a, MDB_txn *txn, uint64_t id);
/* The ids on the list, increasing; *ids is malloc()ed (the caller frees it). */
int archive__dropped_list(struct archive *a, uint64_t **ids, size_t *n);
/* Unlinks the files of ids (closed names; gone already is fine), syncs the directory and
 * takes them off the list; one that cannot be unlinked stays on it (its error is returned).
 * *removed: files that were there. */
int archive__dropped_finish(struct archive *a, const uint64_t *ids, size_t n, size_t *removed);

/* Deletes every `terms` entry of a partition. */
int archive__terms_drop_part(struct archive *a, MDB_txn *txn, uint32_t part);

/* archive_open() flag for rebuild: read the index even if FORMAT is missing or garbled. */
#define ARCHIVE__ANY_FORMAT 0x100u

/* Where rebuild makes its new index, beside dir/index. */
#define ARCHIVE__REBUILD_SUB "index.rebuild"

/* For rebuild: opens dir for writing (LOCK taken) with a new, empty index in dir/<sub>. */
int archive__open_rebuild(const char *dir, const char *sub, struct archive **out);

/*
 * For rebuild: closes a and makes dir/<sub> the archive's index, atomically where the file
 * system can exchange two names (else rebuild again after a crash).  The old index is
 * removed if keep is NULL; else kept as dir/index.damaged-<UTC time>, named in keep (len
 * bytes; "" when there was no old index).
 */
int archive__rebuild_swap(struct archive *a, char *keep, size_t len);

/* For a rebuild that failed or was stopped before the swap: closes a and removes dir/<sub>
 * (the new index, ours under the LOCK; nothing in it is not in the segments). */
void archive__rebuild_discard(struct archive *a);

/* Allocates and writes the next segment id (meta "next_segment") in txn. */
int archive__next_segment_id(struct archive *a, MDB_txn *txn, uint64_t *id);

#endif
