/*
 * archive: the on-disk archive — zstd-compressed pcap segments plus an LMDB
 * index — with the writer used by dumpers and the reader used by queries.
 *
 * Purpose
 *   An archive is a directory:
 *     FORMAT                    "flowscope-archive 3\n": marks the directory
 *     LOCK                      flock()ed by the one process that writes
 *     segments/<id>.pcap.zst    closed segments
 *     segments/<id>.pcap.zst.open  the segment a writer is filling
 *     index/                    LMDB environment (data.mdb, lock.mdb)
 *   The format is specified in docs/archive-format.md.  A segment is a
 *   sequence of independent zstd frames of whole pcap records; frame 0 starts
 *   with a nanosecond pcap global header; a closed segment ends with a seek
 *   table in zstd's seekable format.  The index maps segments, frames (offset,
 *   sizes, time range), and terms (flow key, host, port, protocol, VLAN,
 *   ethertype) to the frames that hold matching packets.
 *
 * Durability
 *   The index never references bytes that are not on disk: a writer
 *   fdatasync()s the segment before the LMDB commit that references its new
 *   frames.
 *
 * Lifecycle
 *   archive_open() -> [writer: archive_writer_create() -> archive_writer_add()...
 *   -> archive_writer_close()] [reader: archive_rtxn_begin() -> lookups ->
 *   archive_rtxn_end(); archive_frame_load()] -> archive_close().
 *
 * Threading
 *   struct archive may be shared by threads.  A writer belongs to one thread;
 *   several writers (one per dumper) may share an archive.  A read
 *   transaction and a frame reader belong to one thread each.  Only one
 *   process may write an archive (ARCHIVE_WRITE takes the LOCK file); any
 *   number may read it concurrently.
 *
 * Errors
 *   0 on success, negative errno, or ARCHIVE_E_* (-10300..-10399);
 *   archive_strerror().  Functions that can fail for a reason worth a
 *   sentence also leave one in archive_errmsg() (per thread).
 */
#ifndef FLOWSCOPE_ARCHIVE_H
#define FLOWSCOPE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flowtrack/flowtrack.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ARCHIVE_E_BASE (-10300)
#define ARCHIVE_E_NOTARCH (ARCHIVE_E_BASE - 1)  /* directory is not a flowscope archive */
#define ARCHIVE_E_VERSION (ARCHIVE_E_BASE - 2)  /* archive format version not supported */
#define ARCHIVE_E_LOCKED (ARCHIVE_E_BASE - 3)   /* another process is writing the archive */
#define ARCHIVE_E_LMDB (ARCHIVE_E_BASE - 4)     /* LMDB failed; see archive_errmsg() */
#define ARCHIVE_E_ZSTD (ARCHIVE_E_BASE - 5)     /* zstd failed; see archive_errmsg() */
#define ARCHIVE_E_CORRUPT (ARCHIVE_E_BASE - 6)  /* segment or index content is invalid */
#define ARCHIVE_E_NOTFOUND (ARCHIVE_E_BASE - 7) /* no such segment/frame/entry */
#define ARCHIVE_E_TOOBIG (ARCHIVE_E_BASE - 8)   /* record larger than the format allows */
#define ARCHIVE_E_TIME (ARCHIVE_E_BASE - 9)     /* packet time after ARCHIVE_MAX_TS_NS */
#define ARCHIVE_E_LAST (ARCHIVE_E_BASE - 99)

const char *archive_strerror(int err);

/* Detail of the last error on this thread ("" if none); valid until the next call. */
const char *archive_errmsg(void);

#define ARCHIVE_FORMAT_VERSION 4 /* what this flowscope writes (short IPv4 flow keys) */
#define ARCHIVE_FORMAT_OLDEST 2  /* the oldest it reads; a writer upgrades it (archive_open) */
#define ARCHIVE_MAX_CAPLEN (256u << 10) /* largest record accepted (bytes) */
/* The last time a pcap record holds (u32 seconds): 2106-02-07T06:28:15.999999999Z. */
#define ARCHIVE_MAX_TS_NS (4294967296ull * 1000000000ull - 1)

/* ---- opening ----------------------------------------------------------------- */

#define ARCHIVE_READ 0x0u
#define ARCHIVE_WRITE 0x1u  /* take the write lock */
#define ARCHIVE_CREATE 0x2u /* with WRITE: create the directory/archive if missing */

struct archive;

/*
 * Opens the archive at `dir`.  Returns 0 and *out; -ENOENT (no such
 * directory), ARCHIVE_E_NOTARCH (exists but is not an archive, or is not an
 * empty directory when creating), ARCHIVE_E_VERSION, ARCHIVE_E_LOCKED,
 * ARCHIVE_E_LMDB, ARCHIVE_E_CORRUPT (the index file is damaged or missing:
 * index rebuild), or a negative errno.  The index file is checked before use
 * (its header, then every page of the snapshot: a few ms per MB).  Formats
 * ARCHIVE_FORMAT_OLDEST to ARCHIVE_FORMAT_VERSION are read; with
 * ARCHIVE_WRITE an older one is upgraded to ARCHIVE_FORMAT_VERSION first (one
 * rename of FORMAT, under the lock, before anything is written).
 *
 * A reader that may not write index/lock.mdb (another user's archive) opens
 * the index without LMDB's reader table (MDB_NOLOCK): safe only while no
 * writer runs, since a writer reuses pages that no registered reader holds.
 * So such a reader refuses (ARCHIVE_E_LOCKED) while a writer holds LOCK;
 * a writer starting meanwhile is not seen (see docs/cli.md, file modes).
 */
int archive_open(const char *dir, unsigned flags, struct archive **out);

/*
 * Lets group `gid` read the archive while a recorder writes it: the archive's
 * directories, FORMAT, LOCK, the index and the segment files get the group,
 * directories g+rxs (new files inherit the group), files g+r, and
 * index/lock.mdb g+rw (a reader registers its snapshot there).  For a writer
 * (the process must own the files or be root).  0 or a negative errno.
 */
int archive_share(struct archive *a, gid_t gid);

/*
 * Gives the archive to user uid (and group gid, unless (gid_t)-1) before a writer that
 * was opened as root becomes that user (record --user): the directory, FORMAT, LOCK,
 * segments/ and its segment files, index/ and its data.mdb and lock.mdb: exactly the
 * files of the layout above, whichever run made them, so that the user can write
 * segments and the index.  Anything else in the directory, symbolic links and files
 * with more than one link are left alone (an entry is opened with O_NOFOLLOW and
 * checked before its fchown()).  For a writer running as root.  0 or a negative errno
 * (archive_errmsg() names the file).
 */
int archive_give(struct archive *a, uid_t uid, gid_t gid);

/* Closes the archive; all writers must be closed and read transactions ended. */
void archive_close(struct archive *a);

/*
 * archive_close(), and if this archive_open() created the archive (the
 * directory was absent or empty) and no segment file was made in it since,
 * removes what the creation made: FORMAT, LOCK, index/, segments/ and the
 * directory if it made it (each only if it holds nothing else).  For a
 * command that fails before it stores anything: it leaves no half-used
 * archive behind.  An archive that existed before is only closed.
 */
void archive_close_discard(struct archive *a);

const char *archive_dir(const struct archive *a);

/* The archive's format version, as its FORMAT says (a writer has upgraded it to the current). */
unsigned archive_format(const struct archive *a);

/* ---- writing ------------------------------------------------------------------ */

#define ARCHIVE_SEGMENT_SIZE (256ull << 20) /* the default segment size (also --segment-size's) */

struct archive_writer_config {
	uint64_t segment_size; /* rotate at this many compressed bytes; 0 = ARCHIVE_SEGMENT_SIZE */
	uint64_t segment_age_ns; /* rotate a segment this old (wall clock); 0 = 60 s */
	uint32_t frame_size;     /* uncompressed bytes per frame; 0 = 256 KiB */
	int zstd_level;          /* zstd level (negative = fast levels); 0 = -2 */
	uint64_t sync_ns;        /* index commit interval (wall clock); 0 = 1 s */
	uint32_t run;            /* the recording this writer belongs to (archive_new_run) */
};

/* A writer stopped by a full disk resumes when the filesystem has this much free. */
#define ARCHIVE_RESUME_FREE (8u << 20)

struct archive_writer_stats {
	uint64_t packets;      /* archive.writer.packets stored */
	uint64_t wire_bytes;   /* sum of wire lengths */
	uint64_t record_bytes; /* uncompressed pcap bytes, global headers included */
	uint64_t file_bytes;   /* compressed bytes written */
	uint64_t frames;
	uint64_t segments;         /* segments opened */
	uint64_t commits;          /* index transactions committed */
	int full;                  /* 1: the disk is full, packets are counted, not stored */
	uint64_t full_events;      /* times the disk filled up */
	uint64_t unstored_packets; /* archive.writer.unstored_packets: lost to a full disk */
	uint64_t unstored_bytes;   /* their wire bytes */
	const char *io;            /* segment I/O: "io_uring" or "pwritev" (static string) */
	int io_direct;             /* 1: the last segment was written with O_DIRECT */
	uint64_t io_max_inflight;  /* most writes in flight at once */
};

struct archive_writer;

/* Creates a writer (one open segment at a time).  Returns 0, -ENOMEM, ARCHIVE_E_*. */
int archive_writer_create(struct archive *a, const struct archive_writer_config *cfg,
                          struct archive_writer **out);

/*
 * Appends one packet.  A segment holds one link type and snaplen; a packet
 * with another one closes the current segment first.  Returns 0, or
 * ARCHIVE_E_TOOBIG (caplen > ARCHIVE_MAX_CAPLEN or > snaplen), ARCHIVE_E_TIME
 * (ts_ns > ARCHIVE_MAX_TS_NS: not stored, the caller counts it), or an I/O,
 * zstd or LMDB error (the archive stays valid up to the last commit).
 *
 * A full disk is not an error.  Before each frame the writer looks at the
 * free space, less what its next commit needs (the segment bytes not synced
 * yet, the index growth): as it shrinks it commits more often, so that the
 * last commit stays small; below a reserve (room for that commit, a seek
 * table and two frames, about 2.5 MiB) it commits what it wrote, stops
 * storing, counts every packet after that as unstored, and returns 0.
 * Should a write fail all the same (ENOSPC, EDQUOT, from the segment or the
 * index: someone else filled the disk) and the commit too, it cuts the
 * segment back to its last commit and counts those packets as unstored.
 * Five times a second (in add and tick) and at every new chunk it looks for
 * free space again and, with ARCHIVE_RESUME_FREE (well above the reserve:
 * no flapping), resumes writing where it stopped.  The archive stays valid
 * throughout; archive_writer_close() seals the segment, full or not.
 */
int archive_writer_add(struct archive_writer *w, int linktype, uint32_t snaplen, uint64_t ts_ns,
                       uint32_t caplen, uint32_t wirelen, const uint8_t *data);

/*
 * The packets added next come from QQ chunk `chunk` (its publication
 * position, qq_chunk_seq): a frame never holds packets of two chunks, and
 * records the chunk, so that a query can merge the segments of several
 * dumpers of one recording back into the order the recorder took packets in
 * (chunks are taken whole by one dumper).  Without calls, chunk 0.
 * Returns as add (it may close the current frame).
 */
int archive_writer_set_chunk(struct archive_writer *w, uint64_t chunk);

/* Allocates a recording id (1, 2, ...; meta "next_run").  0 or ARCHIVE_E_LMDB. */
int archive_new_run(struct archive *a, uint32_t *run);

/*
 * A hint, for speed only: a packet whose flow hash is `flow_hash` (the low 32
 * bits of ft_flow_key_hash() of its VLAN-aware bidirectional key, as the
 * recorder's analyzers leave in qq_record.flow_hash; 0: unknown) will be
 * added soon.  Stage 0 some packets ahead fetches its slot in the writer's
 * flow table, stage 1 closer (about half as far) the flow record itself,
 * stage 2 closer still the posting lists of its hosts and ports, stage 3
 * the ends of those lists.
 */
void archive_writer_prefetch(const struct archive_writer *w, uint32_t flow_hash, int stage);

/* One packet for archive_writer_add_packet(). */
struct archive_packet {
	int linktype;     /* LINKTYPE_ value */
	uint32_t snaplen; /* of its source: a segment holds packets of one linktype and snaplen */
	uint64_t ts_ns;
	uint32_t caplen, wirelen;
	const uint8_t *data;
	uint16_t trigger; /* its flow is tagged with this trigger id (0: none) */
	/*
	 * The packet as ft_parse(linktype, data, caplen) saw it, when the caller parsed it
	 * already (the recorder's analyzers leave it in the QQ record's note), else NULL or
	 * a zeroed view (without FT_PKT_PARSED): the writer parses it.  Read, never kept.
	 */
	const struct ft_packet *parsed;
};

/* As archive_writer_add(), with a trigger tag and the packet's parsed view. */
int archive_writer_add_packet(struct archive_writer *w, const struct archive_packet *p);

/*
 * Time-driven work: commits the index when sync_ns has passed and closes a
 * segment older than segment_age_ns.  now_ns is CLOCK_MONOTONIC.  Call it
 * when idle too, so a quiet link's packets still become durable and
 * queryable within sync_ns.  Returns as add.
 */
int archive_writer_tick(struct archive_writer *w, uint64_t now_ns);

/*
 * Writes the pending frame, syncs, and commits the index: everything added
 * so far is durable and queryable.  Returns as add.
 */
int archive_writer_flush(struct archive_writer *w);

/* Closes the open segment (seek table, sync, rename, commit) and frees w. */
int archive_writer_close(struct archive_writer *w);

void archive_writer_stats(const struct archive_writer *w, struct archive_writer_stats *out);

/*
 * Why the segment I/O does not run as preferred (io_uring refused, e.g. by a
 * container's seccomp profile: pwritev on an I/O thread instead; buffers not
 * registered), one line, or NULL.  For the log, once.
 */
const char *archive_writer_io_note(const struct archive_writer *w);

/*
 * The recorder's report of its last run (final counters, as text lines),
 * stored in the index so `flowscope info` can show it.  Replaces the previous
 * report.  Returns 0 or ARCHIVE_E_LMDB.
 */
int archive_set_run_report(struct archive *a, const char *text);

/* ---- dump rules ------------------------------------------------------------------------- */

/*
 * Dump rules: which flows dumpers archive in triggered capture, and which
 * trigger archived a flow (recorded in the index in every capture mode).
 *
 * Analyzers add a rule when a module triggers and expire it when the flow
 * expires (any thread; one mutex per call: these are rare events).  Each
 * dumper owns a view: it brings the view up to date before each QQ chunk and
 * then matches every packet against it without a lock.  A rule matches
 * packets of its flow (its key, of its kind) whatever their age, so packets
 * still in the ring from before the trigger are archived too; once the flow
 * expired it matches only packets up to the flow's last-seen time, and the
 * view drops it when the dumper reaches the ring position given at expiry
 * (every chunk that can hold the flow's packets is then behind it).
 */
struct archive_rules;
struct archive_rule_view;

int archive_rules_create(struct archive_rules **out);
void archive_rules_destroy(struct archive_rules *r); /* after every view */

/*
 * A trigger fired on flow `key` (of `kind`, with `key_flags` FT_KEY_*):
 * archive its packets, tagged `trigger` (an id from archive_trigger_id()).
 * With `filter` non-NULL the rule matches that BPF expression instead of the
 * key.  Returns 0, -ENOMEM, or -EINVAL without a filter for a key of a
 * module's own type (FT_KEY_OWN), which is no 5-tuple and selects nothing.
 */
int archive_rules_add(struct archive_rules *r, const struct ft_flow_key *key, enum ft_key_kind kind,
                      unsigned key_flags, const char *filter, uint16_t trigger);

/*
 * The flow expired: match only its packets up to last_seen_ns, and retire the
 * rule once the dumper reaches ring position retire_seq.  0 or -ENOMEM.
 */
int archive_rules_expire(struct archive_rules *r, const struct ft_flow_key *key,
                         enum ft_key_kind kind, unsigned key_flags, uint64_t last_seen_ns,
                         uint64_t retire_seq);

int archive_rule_view_create(struct archive_rules *r, struct archive_rule_view **out);
void archive_rule_view_destroy(struct archive_rule_view *v);

/* Before processing the chunk at ring position seq: apply new events, retire old rules. */
void archive_rule_view_update(struct archive_rule_view *v, uint64_t seq);

/*
 * The trigger id of a rule matching packet p (its trigger and snaplen are not used), or 0.
 * p->parsed saves parsing it again (see struct archive_packet).  No lock, no allocation.
 */
uint16_t archive_rule_view_match(struct archive_rule_view *v, const struct archive_packet *p);

/* Rules in the view (active and expiring). */
size_t archive_rule_view_size(const struct archive_rule_view *v);

/* ---- the dumper's loop: one QQ chunk into a writer (dump.c) ---- */

struct qq_chunk;

/* A link (archive_dump_opts.link): the link type and snaplen of a record's link number. */
struct archive_dump_link {
	int linktype;
	uint32_t snaplen;
};

struct archive_dump_opts {
	struct archive_rule_view *view; /* triggered flows' rules, or NULL (no module) */
	int triggered_only;             /* archive only the packets a rule matches */
	/* The link of qq_record.link `no` (called when it changes; link 0 is asked first). */
	struct archive_dump_link (*link)(void *arg, unsigned no);
	void *link_arg;
	/*
	 * 1: each record's note (qq_record_note) holds the struct ft_packet the analyzers
	 * parsed from it (or zeros: not parsed), so the packet is not parsed again here.
	 */
	int parsed;
};

/* What archive_writer_dump_chunk() did with the packets (added to, never reset). */
struct archive_dump_stats {
	uint64_t selected; /* tagged by a rule */
	uint64_t skipped;  /* left out: no rule matched, triggered_only */
	uint64_t oversize; /* archive.writer.dropped_oversize (ARCHIVE_E_TOOBIG) */
	uint64_t untimed;  /* archive.writer.dropped_time (ARCHIVE_E_TIME) */
};

/*
 * Every packet of QQ chunk c (taken by the caller with qq_dumper_next(), handed back by the
 * caller) into writer w: the rule view brought up to the chunk's ring position, the chunk
 * set (archive_writer_set_chunk), each packet tagged with the trigger whose rule matches its
 * flow (left out when none does and triggered_only), the writer's flow and posting lists
 * prefetched ahead by the flow hash the analyzers left in each record.  A packet too big or
 * outside the format's time range is counted in *st and left out.  Returns 0 or the
 * writer's first other error (as archive_writer_add).  The writer's thread only.
 */
int archive_writer_dump_chunk(struct archive_writer *w, const struct qq_chunk *c,
                              const struct archive_dump_opts *o, struct archive_dump_stats *st);

/*
 * The id (1..65535) under which the index records flows archived by the
 * trigger `name` (a module name, or "trigger:EXPR"), creating it on first
 * use; stable for the archive's life.  Returns 0, ARCHIVE_E_LMDB, -ENOSPC.
 */
int archive_trigger_id(struct archive *a, const char *name, uint16_t *id);

/*
 * Triggers that came after the flows keys[0..n) (canonicalised here) were
 * written (capture all): each flow's record in every segment whose packets
 * reach from_ns[i] (its first packet time), where it has one and no
 * trigger yet, gets `trigger`, as if the trigger had archived it: `flows`
 * names it, retention with pin_triggered keeps those segments.  One write
 * transaction, beside a writer's (LMDB orders them; the writer keeps a
 * record's trigger).  Any thread but an analyzer's (it waits for the
 * writer's commits).  0 with *marked records, -EPERM (opened read-only),
 * -ENOMEM or ARCHIVE_E_*.
 */
int archive_flows_mark(struct archive *a, const struct ft_flow_key *keys, const uint64_t *from_ns,
                       size_t n, uint16_t trigger, uint64_t *marked);

/* ---- index terms -------------------------------------------------------------- */

/*
 * What the index records per frame.  Term bytes (all big-endian):
 *   HOST      16 bytes: an IP address (IPv4-mapped for IPv4) from an IPv4 or
 *             IPv6 header, or an ARP/RARP sender or target protocol address
 *   PORT      2 bytes: a TCP, UDP or SCTP source or destination port
 *   PROTO     1 byte: IPv4 protocol, or any IPv6 next-header value in the chain
 *   VLAN      2 bytes: any VLAN id in the tag stack
 *   ETHERTYPE 2 bytes: the innermost ethertype
 *   FLOW      37 bytes: a, b, port_a, port_b, proto of the bidirectional key
 *             (struct ft_flow_key without VLAN), see docs/archive-format.md;
 *             the key of flow records, not a term of `terms` (a 5-tuple is
 *             looked up as its hosts and ports)
 *   UNINDEXED 1 byte (0): the frame holds a packet whose headers the parser
 *             found cut or inconsistent; queries always read such frames
 */
enum archive_term_type {
	ARCHIVE_TERM_HOST = 'H',
	ARCHIVE_TERM_PORT = 'P',
	ARCHIVE_TERM_PROTO = 'T',
	ARCHIVE_TERM_VLAN = 'V',
	ARCHIVE_TERM_ETHERTYPE = 'E',
	ARCHIVE_TERM_FLOW = 'F',
	ARCHIVE_TERM_UNINDEXED = 'U',
};

#define ARCHIVE_TERM_MAXLEN 37

/* Length of the term bytes for a type, or 0 for an unknown type. */
size_t archive_term_len(enum archive_term_type type);

/* Encodes a flow key as FLOW term bytes (ARCHIVE_TERM_MAXLEN bytes). */
void archive_term_flow(const struct ft_flow_key *key, uint8_t out[ARCHIVE_TERM_MAXLEN]);

/*
 * The key of the flow record a parsed packet is counted in (the index keys
 * flows as this says, so a reader finding a packet's flow record uses it
 * too), and its direction in it (*dir, if not NULL: 0 = from a, 1 = from b).
 * It is the modules' default key: the 5-tuple and both VLAN ids (outer,
 * inner).  Records written by format 2 carry the outer id only (vlan_inner 0).
 * Returns 0, or -ENOENT when the packet belongs to no flow (not IP, ARP).
 */
int archive_flow_key_of(const struct ft_packet *pkt, struct ft_flow_key *key, int *dir);

/* ---- reading -------------------------------------------------------------------- */

enum archive_segment_state {
	ARCHIVE_SEG_OPEN = 1,   /* being written (or left by a crash) */
	ARCHIVE_SEG_CLOSED = 2, /* complete, with seek table */
};

/* archive_segment_info.flags */
#define ARCHIVE_SEG_UNINDEXED 0x1u /* link type not parsed: terms absent, scan it */

/* archive_frame_info.flags */
#define ARCHIVE_FRAME_UNINDEXED 0x1u /* holds packets the indexer could not parse: scan it */

struct archive_segment_info {
	uint64_t id;
	enum archive_segment_state state;
	uint32_t flags; /* ARCHIVE_SEG_* */
	int linktype;
	uint32_t snaplen;
	uint64_t min_ns, max_ns; /* timestamp range of its packets */
	uint64_t packets;
	uint64_t wire_bytes;
	uint64_t record_bytes; /* uncompressed pcap bytes, global header included */
	uint64_t file_bytes;   /* compressed bytes (frames, without the seek table) */
	uint32_t frames;
	uint32_t flows;      /* flow records of this segment */
	uint32_t run;        /* the recording that wrote it (0: unknown) */
	uint64_t created_ns; /* when the writer created it (wall clock) */
};

struct archive_frame_info {
	uint64_t seg;
	uint32_t frame;
	uint32_t flags;  /* ARCHIVE_FRAME_* */
	uint64_t offset; /* byte offset of the zstd frame in the segment */
	uint32_t csize;  /* compressed size */
	uint32_t usize;  /* decompressed size */
	uint64_t min_ns, max_ns;
	uint32_t packets;
	uint64_t chunk; /* the QQ chunk its packets came from (archive_writer_set_chunk) */
};

/* Per-segment statistics of one flow (directions as in struct ft_flow_key). */
struct archive_flow_info {
	struct ft_flow_key key;
	uint64_t seg;
	uint64_t first_ns, last_ns;
	uint64_t packets[2];
	uint64_t bytes[2]; /* wire bytes */
	uint8_t tcp_flags[2];
	uint16_t trigger; /* id of the trigger that archived it (archive_trigger_id), 0: none */
};

struct archive_rtxn;

/* Begins a read snapshot of the index.  Returns 0, ARCHIVE_E_LMDB. */
int archive_rtxn_begin(struct archive *a, struct archive_rtxn **out);
void archive_rtxn_end(struct archive_rtxn *t);

/*
 * Calls fn for every segment whose time range meets [from_ns, to_ns) (to_ns 0
 * = unbounded; with both 0, every segment, empty ones included), in id order; fn returning non-zero stops the walk with that
 * value.  Returns 0, fn's value, or ARCHIVE_E_*.
 */
int archive_segments(struct archive_rtxn *t, uint64_t from_ns, uint64_t to_ns,
                     int (*fn)(const struct archive_segment_info *s, void *arg), void *arg);

/* The record of segment `id`.  0, ARCHIVE_E_NOTFOUND (not in the index), ARCHIVE_E_*. */
int archive_segment_get(struct archive_rtxn *t, uint64_t id, struct archive_segment_info *out);

/* Calls fn for every frame of segment `seg`, in order.  Returns as archive_segments. */
int archive_frames(struct archive_rtxn *t, uint64_t seg,
                   int (*fn)(const struct archive_frame_info *f, void *arg), void *arg);

/* Reads frame `frame` of segment `seg`.  Returns 0, ARCHIVE_E_NOTFOUND, ARCHIVE_E_*. */
int archive_frame_get(struct archive_rtxn *t, uint64_t seg, uint32_t frame,
                      struct archive_frame_info *out);

/*
 * The frames of segments seg_lo..seg_hi that hold a term of `type` whose
 * bytes lie in [lo, hi] (byte-wise; lo == hi for one exact term): appended
 * to *out (realloc()ed; caller frees; *n updated) as seg << 32 | frame,
 * sorted and duplicate-free.  Segment ids must be below 2^32.  Returns 0,
 * -EINVAL (a type not in the index: FLOW), -ENOMEM or ARCHIVE_E_*.
 */
int archive_term_postings(struct archive_rtxn *t, enum archive_term_type type, const uint8_t *lo,
                          const uint8_t *hi, uint64_t seg_lo, uint64_t seg_hi, uint64_t **out,
                          size_t *n);

/* Calls fn for every flow record of segment `seg`.  Returns as archive_segments. */
int archive_flows(struct archive_rtxn *t, uint64_t seg,
                  int (*fn)(const struct archive_flow_info *f, void *arg), void *arg);

struct archive_summary {
	uint64_t segments, segments_open;
	uint64_t min_ns, max_ns;
	uint64_t packets, wire_bytes, record_bytes, file_bytes, frames;
	uint64_t flow_records; /* per-segment flow records */
	uint64_t index_bytes;  /* size of the LMDB index file (its use of the disk) */
	uint64_t index_used;   /* bytes of the index's pages holding data (the rest is free) */
};

int archive_summary(struct archive_rtxn *t, struct archive_summary *out);

/* The name of trigger id `id` into buf ("" if unknown).  0 or ARCHIVE_E_*. */
int archive_trigger_name(struct archive_rtxn *t, uint16_t id, char *buf, size_t len);

/* The last run report as a malloc()ed string (*text NULL if none).  0, -ENOMEM, ARCHIVE_E_*. */
int archive_run_report(struct archive_rtxn *t, char **text);

/* ---- flow export (archive/flowexport.c, docs/clickhouse.md) ------------------------ */

/*
 * The closed segments' flow records, sent to a table elsewhere (ClickHouse)
 * by a sink, in segment order, from a cursor kept in the index under the
 * target's name: the index is the spool, retention its bound.  A batch (at
 * most ARCHIVE_EXPORT_BATCH_ROWS rows of one segment, seq = their place
 * among its records) is first counted in the table and sent only when the
 * table holds none of it, so a batch is sent once across crashes, lost
 * answers and restarts of either side.  A trigger that marks a flow after its
 * segment was sent is not sent again.
 *
 * Threading: one pass at a time per target (it reads in read transactions of
 * its own, so not inside one, and writes the cursor).
 */
#define ARCHIVE_EXPORT_BATCH_ROWS 65536u

/* RowBinary columns of a row, in order (docs/clickhouse.md's flows table). */
#define ARCHIVE_EXPORT_COLUMNS                                                                 \
	"sensor, segment, segment_created_ns, seq, first_ns, last_ns, proto, addr_a, port_a, " \
	"addr_b, port_b, vlan, vlan_inner, packets_ab, packets_ba, bytes_ab, bytes_ba, "       \
	"tcp_flags_ab, tcp_flags_ba, trigger, reason"

/*
 * A batch: rows first..first+n of segment seg.  A segment is known by its id
 * and creation time together: another archive of the same sensor (a disk
 * replaced) numbers its segments from 1 again.
 */
struct archive_export_batch {
	uint64_t seg, seg_created_ns;
	uint32_t first, n;
};

struct archive_export {
	const char *target; /* names the cursor ("clickhouse://host:port/db.table") */
	const char *sensor; /* the sensor column */
	/* *have = rows of the batch (sensor, segment, its creation, seq range) the table holds */
	int (*count)(void *arg, const struct archive_export_batch *b, uint64_t *have);
	/* inserts n RowBinary rows; 0 or < 0 (nothing was stored) */
	int (*insert)(void *arg, const uint8_t *rows, size_t len, uint32_t n);
	void *arg;
};

struct archive_export_stats { /* added to by each pass */
	uint64_t segments, batches, rows;
	uint64_t skipped_batches;  /* found in the table already (sent before a failure) */
	uint64_t missed_segments;  /* gone from the index before they were sent (retention) */
	uint64_t pending_segments; /* closed, not sent yet (after the last pass) */
	uint64_t through_ns;       /* every packet before it is in a sent segment (0: none) */
	int more;                  /* the last pass stopped at its limit: pass again */
};

/*
 * Sends the closed segments past the cursor, oldest first, stopping at the
 * first open one.  Returns 0, a sink's error (the cursor stays at the last
 * segment sent whole), ARCHIVE_E_CORRUPT (the table holds part of a batch:
 * archive_errmsg() says which), or ARCHIVE_E_*.
 */
int archive_export_pass(struct archive *a, const struct archive_export *e,
                        struct archive_export_stats *st);

/* The last segment sent whole to `target` (0: none).  0 or ARCHIVE_E_*. */
int archive_export_cursor(struct archive_rtxn *t, const char *target, uint64_t *seg);
int archive_export_cursor_set(struct archive *a, const char *target, uint64_t seg);

/*
 * Rows b->first..b->first+b->n of segment b->seg's flow records as RowBinary
 * (*rows malloc()ed, caller frees; *n rows, fewer when the segment has fewer).
 * 0, -ENOMEM, ARCHIVE_E_*.
 */
int archive_export_rows(struct archive_rtxn *t, const struct archive_export_batch *b,
                        const char *sensor, uint8_t **rows, size_t *len, uint32_t *n);

/* A trigger name's source (its first *src_len bytes) and reason ("api: why": api, why). */
void archive_export_trigger_split(const char *name, size_t *src_len, const char **reason);

/*
 * A frame reader decompresses frames into its own buffer and walks their
 * pcap records.  One per thread.
 */
struct archive_frame_reader;

int archive_frame_reader_create(struct archive *a, struct archive_frame_reader **out);
void archive_frame_reader_destroy(struct archive_frame_reader *r);

/*
 * Reads and decompresses one frame of segment s, validating sizes, the
 * record structure, and that the frame is the one the index describes (its
 * tag's recording and chunk, its packet count and time range).  Returns 0;
 * -ENOENT when the segment file is gone (retention removed it); -ESTALE when
 * the file is not the segment the index describes (the frame's tag names
 * another recording or chunk: a file swapped or replaced); ARCHIVE_E_CORRUPT
 * (archive_errmsg() names segment, frame, file and byte offset);
 * ARCHIVE_E_ZSTD; -errno.
 */
int archive_frame_load(struct archive_frame_reader *r, const struct archive_segment_info *s,
                       const struct archive_frame_info *f);

/* The path of the segment file the last archive_frame_load() read or looked for. */
const char *archive_frame_reader_path(const struct archive_frame_reader *r);

/*
 * Checks, with stat() alone, that segment s's file exists (under its name
 * for s->state, or the other one: a segment closes while readers look) and
 * holds at least the s->file_bytes the index counts.  Returns 0, or -ENOENT
 * / ARCHIVE_E_CORRUPT (file shorter) with archive_errmsg() naming the
 * segment and its file.
 */
int archive_segment_check_file(struct archive *a, const struct archive_segment_info *s);

/* One record of a loaded frame: points into the reader's buffer. */
struct archive_record {
	uint64_t ts_ns;
	uint32_t caplen;
	uint32_t wirelen;
	const uint8_t *data;
	const uint8_t *raw; /* the record as stored: 16-byte pcap header + data */
	uint32_t raw_len;
};

/* Next record of the loaded frame.  Returns 1 and *rec, 0 at the end. */
int archive_frame_next(struct archive_frame_reader *r, struct archive_record *rec);

/* ---- checking and repairing ------------------------------------------------------ */

/* Receives one line (no newline) describing a problem or an action. */
typedef void (*archive_log_fn)(const char *line, void *arg);

struct archive_verify_stats {
	uint64_t segments, frames, packets, flows; /* checked */
	uint64_t unindexed_frames; /* whole frames after the indexed ones of open segments */
	uint64_t orphan_files;     /* empty open segment files a killed recorder created but
	                              never indexed (the next record removes them) */
	uint64_t problems;         /* lines reported */
	uint64_t dropped_files;    /* files of segments on retention's drop list: dropped from
	                              the index, a crash came before the unlink (the next record
	                              removes them) */
	uint64_t stale_rebuild;    /* 1: index.rebuild/ is there and no writer holds the archive:
	                              left by an index rebuild killed before its end (the next
	                              rebuild removes it; nothing in it is used) */
};

/*
 * `flowscope index verify`: checks every index entry against the segments,
 * read-only, from one snapshot of the index: each segment's file exists;
 * each indexed frame is where the index says, decompresses (checksum), holds
 * valid pcap records, and has the packets, time range and UNINDEXED flag the
 * index says; the segment record's totals; the posting list of every term of
 * every segment is exactly the frames holding it (no term missing, none
 * extra); the flow records are exactly the segment's flows (the trigger
 * aside); a closed segment ends with a seek table matching its frames;
 * segment files the index does not know.  Each problem is one line to log,
 * on this thread, in segment order.  workers: 1 reads and checks everything
 * on this thread; otherwise (0: when more than one CPU is online) a second
 * thread decompresses and checks each segment's frames ahead of the
 * indexing and comparing here: the same lines either way.
 * Returns 0 when the check ran (st->problems says whether it passed), or an
 * error that stopped it (ARCHIVE_E_*, -ENOMEM).
 */
int archive_verify(struct archive *a, unsigned workers, archive_log_fn log, void *arg,
                   struct archive_verify_stats *st);

struct archive_recover_stats {
	uint64_t segments;       /* open segments found (left by a crash) */
	uint64_t frames_indexed; /* whole frames found after the indexed ones, now indexed */
	uint64_t bytes_cut;      /* bytes of incomplete frames removed */
	uint64_t files_removed;  /* files of dropped segments, empty files of a crash */
};

/*
 * Recovers an archive left by a crash (run by `flowscope record` after
 * opening for writing, before writing): files of segments on retention's
 * drop list are removed (the crash came between the index change and the
 * unlink); every segment the index has as open is indexed up to its last
 * whole frame (frames written but not yet indexed are scanned and indexed),
 * cut there, sealed with its seek table and closed, each in steps that a
 * crash cannot leave half done; an empty `.open` file without index entry is
 * removed; any other file the index does not know is left alone and
 * reported.  Each action is one line to log.  Returns 0, ARCHIVE_E_CORRUPT
 * (changing nothing) when the index lists no segment but segment files with
 * data exist (a lost index: `index rebuild` is the remedy), other
 * ARCHIVE_E_*, or -errno.
 */
int archive_recover(struct archive *a, archive_log_fn log, void *arg,
                    struct archive_recover_stats *st);

/* ---- retention ------------------------------------------------------------------ */

struct archive_retention {
	uint64_t max_bytes;  /* the archive's own disk use (segments and index); 0 = no limit */
	uint64_t max_age_ns; /* drop segments whose newest packet is older (wall clock); 0 = none */
	uint64_t min_free;   /* also drop until the filesystem has this much free; 0 = no */
	uint64_t open_size;  /* count each open segment as at least this (it grows to it) */
	int pin_triggered;   /* segments holding a triggered flow (a record with a trigger) go
	                        last: never for age, for room (max_bytes, min_free) only when no
	                        other closed segment is left */
};

struct archive_retention_stats {
	uint64_t segments, bytes; /* dropped */
	uint64_t pinned;          /* of the dropped segments, those holding triggered flows */
	uint64_t usage;           /* the archive's disk use afterwards */
	uint64_t oldest_ns;       /* the oldest packet time kept (0: none) */
};

/*
 * The archive's own use of the disk: its segment files (as the index records
 * them, seek tables included) and the index files.  0 or ARCHIVE_E_*.
 */
int archive_disk_usage(struct archive *a, uint64_t *bytes);

/*
 * Drops the oldest closed segments (by their newest packet) while the
 * archive uses more than max_bytes, while their data is older than
 * max_age_ns, or while the filesystem has less than min_free free: their
 * index entries go in one transaction (their posting lists when their whole
 * index partition is gone), then their files.  A query running meanwhile
 * finds a dropped segment gone and leaves it out (it never reads a partial
 * file: segments are never cut, only removed).  Open segments are never
 * dropped.  With pin_triggered the segments holding triggered flows are
 * passed over while others can go, and never go for age.  Returns 0 or
 * ARCHIVE_E_*; st says what went.
 */
int archive_retention_run(struct archive *a, const struct archive_retention *p,
                          struct archive_retention_stats *st);

/*
 * Retention while recording: the passes of several threads (each dumper when it has opened
 * a segment, a housekeeping thread on a clock) one at a time, what they dropped added up.
 * The caller runs the passes on its own threads; the keeper says when the clock's pass is
 * due and runs it.  Threading: every function may be called from any thread.
 */
struct archive_retention_keeper;

struct archive_retention_totals {
	uint64_t runs, segments, bytes; /* passes; what they dropped */
	uint64_t pinned;                /* of the dropped segments, those holding triggered flows */
	uint64_t usage;                 /* the archive's disk use after the last pass that worked */
	int err;                        /* the last pass's error (0: it worked) */
};

#define ARCHIVE_RETENTION_PERIOD_NS 1000000000ull /* the clock's pass: every second */

/* A keeper of a's retention: max_bytes, max_age_ns and pin_triggered as struct
 * archive_retention; segment_size the writers' (0: ARCHIVE_SEGMENT_SIZE).  With pins it
 * remembers which closed segments hold triggered flows, so their flow records are read
 * once.  0 or -ENOMEM. */
int archive_retention_keeper_create(struct archive *a, uint64_t max_bytes, uint64_t max_age_ns,
                                    int pin_triggered, uint64_t segment_size,
                                    struct archive_retention_keeper **out);
void archive_retention_keeper_destroy(struct archive_retention_keeper *k);

/*
 * One pass (archive_retention_run), after any other thread's.  make_room (while recording):
 * also until the filesystem has room for two more segments and ARCHIVE_RESUME_FREE, so a
 * disk smaller than the budget never fills up and one that did gets room again; each open
 * segment counts as a whole segment.  Returns 0 or the pass's error; *first_err (may be
 * NULL) 1 when it is the keeper's first failed pass (to say so once: it will be retried).
 */
int archive_retention_keeper_pass(struct archive_retention_keeper *k, int make_room,
                                  int *first_err);

/* 1 if the clock's pass is due at now_ns (monotonic): ARCHIVE_RETENTION_PERIOD_NS after the
 * last time it was, or at once while a disk is full (disk_full); then counted as done. */
int archive_retention_keeper_due(struct archive_retention_keeper *k, uint64_t now_ns,
                                 int disk_full);

void archive_retention_keeper_totals(struct archive_retention_keeper *k,
                                     struct archive_retention_totals *out);

struct archive_rebuild_stats {
	uint64_t segments, frames, packets, flows;
	uint64_t bytes_cut; /* incomplete frames at the end of open segments, removed */
};

/*
 * `flowscope index rebuild`: recreates the index of the archive at `dir`
 * from its segment files alone (the archive is locked as by a writer): the
 * new index is built beside the old one and replaces it atomically; what
 * only the old index knew (trigger names, the trigger that archived each
 * flow, the last run report) is carried over when the old index can still
 * be read.  Open segments are cut to their last whole frame and closed.
 * Works on an archive whose index is missing or damaged.  The segment files
 * are indexed on `workers` threads (0: one per online CPU; 1: this thread
 * alone), each through a writer of its own; log gets its lines on this
 * thread, in segment order, the same lines whatever the number (with one
 * worker, once every file is indexed).
 * Returns 0 or ARCHIVE_E_*, -errno.
 */
int archive_rebuild(const char *dir, unsigned workers, archive_log_fn log, void *arg,
                    struct archive_rebuild_stats *st);

/*
 * Asks a running archive_rebuild() of this process to stop before its next
 * segment file: it then removes its new index (dir/index.rebuild) and returns
 * -EINTR, the old index in place and unchanged.  A rebuild that is already
 * putting its index in place finishes (returns 0).  Async-signal-safe: for a
 * signal handler.  A rebuild killed outright leaves dir/index.rebuild: the
 * next rebuild removes it, and archive_verify() reports it.
 */
void archive_rebuild_stop(void);

#ifdef __cplusplus
}
#endif
#endif
