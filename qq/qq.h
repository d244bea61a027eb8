/*
 * qq: the QQ (queue-in-queue) ring buffer that holds recent traffic in RAM.
 *
 * Purpose
 *   Keeps the last N bytes of captured packets so that when a flow triggers,
 *   its earlier packets are still there ("time travel").  Analyzers see every
 *   packet as soon as it is published; dumpers take packets out as late as
 *   possible: only while the ring is filled above its high-water mark, or when
 *   it is drained at shutdown.
 *
 * Structure
 *   One allocation of `size` bytes cut into chunks of `chunk_size` bytes (the
 *   inner queues).  An outer ring holds references to published chunks in
 *   publication order.  A chunk is published when full or when its oldest
 *   unpublished record is older than the flush interval; a chunk published
 *   early keeps filling (later records become visible at later flushes), so
 *   a quiet link wastes no ring space.  A producer owns one chunk at a time exclusively and
 *   fills it without any synchronisation; records are packed from the start
 *   of the chunk, 8-byte aligned, and a table of record offsets grows down
 *   from the end of the chunk, giving O(1) random access by index.  The only
 *   synchronisation is taking and handing back whole chunks (a mutex over the
 *   outer ring, taken once per chunk, never per packet).
 *
 * Lifecycle
 *   qq_create() -> producers: qq_producer_open() / qq_producer_append()... /
 *   qq_producer_close();  analyzers: qq_analyzer_next() / qq_chunk_record()
 *   for the range handed out / qq_analyzer_done();  dumpers: qq_dumper_next() / qq_dumper_release();
 *   qq_drain() at shutdown; qq_destroy() when every thread has stopped.
 *   Open every producer handle before any analyzer or dumper starts waiting:
 *   with no producer open, the QQ counts as finished (QQ_E_DRAINED).
 *
 * Ordering
 *   Every chunk is peeked by exactly one analyzer: producer p's chunks all go
 *   to analyzer p % analyzers, in the order p published them, so per-producer
 *   order (and with symmetric RSS, per-flow order) is preserved.  Dumpers take
 *   chunks strictly in publication order and never before the chunk's analyzer
 *   has finished with it.
 *
 * When full
 *   In QQ_MODE_OVERWRITE (live capture) a producer that finds no free chunk
 *   discards the oldest published chunk that no thread is using, and counts it
 *   (qq.overwritten_*): ingest never blocks.  In QQ_MODE_BACKPRESSURE
 *   (file replay) the producer waits for a dumper to free a chunk instead.
 *
 * Threading
 *   Any number of producer, analyzer and dumper threads, as configured.  A
 *   struct qq_producer belongs to one thread.  A chunk returned by
 *   qq_analyzer_next() or qq_dumper_next() belongs to the caller until it is
 *   handed back.  qq_stats() may be called from any thread.  Unless
 *   cfg.lazy, the ring owns one thread of its own, "qq-prefault", that
 *   populates the ring's pages after qq_create() returns and ends when done
 *   (or in qq_destroy()).
 *
 * Errors
 *   0 on success, negative errno, or QQ_E_* (-10000..-10099); qq_strerror().
 */
#ifndef FLOWSCOPE_QQ_H
#define FLOWSCOPE_QQ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QQ_E_BASE (-10000)
#define QQ_E_TIMEDOUT (QQ_E_BASE - 1) /* nothing arrived within the timeout */
#define QQ_E_DRAINED (QQ_E_BASE - 2)  /* producers closed and everything was handed out */
#define QQ_E_STOPPED (QQ_E_BASE - 3)  /* qq_stop() was called */
#define QQ_E_TOOBIG (QQ_E_BASE - 4)   /* record larger than a chunk can hold */
#define QQ_E_NOMEM (QQ_E_BASE - 5)    /* the ring memory could not be had */
#define QQ_E_LAST (QQ_E_BASE - 99)

const char *qq_strerror(int err);

/*
 * One packet in a chunk: fixed 24-byte header then `caplen` bytes, the whole
 * padded to 8 bytes, then (when the QQ was made with a note_size) the
 * record's note.  `flow_hash` and the note are free for the analyzer that
 * peeks the chunk to annotate (dumpers read them later); producers set both
 * to zeros.
 */
struct qq_record {
	uint64_t ts_ns;   /* capture time, ns since the Unix epoch */
	uint32_t caplen;  /* bytes stored in data[] */
	uint32_t wirelen; /* length on the wire */
	uint16_t port;    /* ingest source (port) number */
	uint8_t queue;    /* RX queue within that source */
	uint8_t link; /* the source's link (link type, snaplen) number: see qq_producer_set_link */
	uint32_t flow_hash; /* analyzer annotation */
	uint8_t data[];
};

enum qq_mode {
	QQ_MODE_OVERWRITE = 0,    /* full ring: discard oldest chunk (live capture) */
	QQ_MODE_BACKPRESSURE = 1, /* full ring: producer waits (file replay) */
};

struct qq_config {
	size_t size;        /* total bytes; rounded down to whole chunks (>= 4 chunks) */
	size_t chunk_size;  /* bytes per chunk; 0 = default QQ_DEFAULT_CHUNK */
	unsigned producers; /* producer handles that will be opened (>= 1) */
	unsigned analyzers; /* analyzer threads (>= 1) */
	double high_water;  /* dequeue only above this fill fraction; 0 = 0.9; or QQ_NO_HOLD */
	uint64_t flush_ns;  /* publish a partly filled chunk after this; 0 = 1 ms */
	enum qq_mode mode;
	int hugepages; /* 1: try MAP_HUGETLB first (falls back silently) */
	/*
	 * 1: normal pages are not pre-faulted; each faults in when first used.
	 * For a source that can wait (a file): no start-up delay, and memory the
	 * run never reaches is never touched.  A wire cannot wait for a page
	 * fault: live capture keeps 0.  With 0, qq_create() populates the first
	 * chunk and a background thread the rest, chunk by chunk ahead of the
	 * producers (qq_stats: prefaulted_bytes), so capture starts at once.
	 */
	int lazy;
	/*
	 * Bytes per second the background pre-fault populates at most; 0: as
	 * fast as the kernel zeroes pages.  A pace keeps it from taking memory
	 * bandwidth and a core from capture on a small machine (and lets a test
	 * watch a ring in use before it is all populated).
	 */
	uint64_t prefault_rate;
	/*
	 * QQ_MODE_BACKPRESSURE: producers wait while this many chunks are in use
	 * (0: until the ring is full).  With QQ_NO_HOLD a file needs no more than
	 * a few chunks in flight; a small working set stays in the CPU caches
	 * and leaves the rest of the ring untouched.
	 */
	uint32_t max_used;
	/*
	 * A chunk goes to the dumpers at the latest this long (monotonic ns)
	 * after its producer took it, full or not, whatever the high-water mark:
	 * qq_producer_flush() seals it and dumpers take it.  On a quiet link a
	 * chunk would otherwise wait until it is full and the ring has filled
	 * up to the mark (hours).  0: no limit.
	 */
	uint64_t max_hold_ns;
	/*
	 * Bytes of each record's note (qq_record_note), rounded up to 8; 0: none.
	 * The analyzers write in it what the dumpers need, so that they do not
	 * redo the analyzers' work (the recorder: the parsed packet); it costs as
	 * much ring memory per packet.  At most QQ_MAX_NOTE.
	 */
	uint32_t note_size;
};

#define QQ_MAX_NOTE 256u

/*
 * high_water for a ring that holds nothing back: dumpers take each chunk as
 * soon as every analyzer has seen it (when nothing will look back at past
 * packets, holding them only delays the archive and loses more in a crash).
 */
#define QQ_NO_HOLD (-1.0)

#define QQ_DEFAULT_CHUNK (4u << 20)
#define QQ_RECORD_HDR ((uint32_t)sizeof(struct qq_record))

struct qq;
struct qq_chunk;
struct qq_producer;

/*
 * Allocates the ring: one mapping of `size` bytes (rounded down to whole
 * chunks), from reserved 1 GiB or 2 MiB huge pages when cfg.hugepages is set
 * and the pool has them, else normal pages with transparent huge pages
 * requested; unless cfg.lazy, its first chunk is populated before it returns
 * and the rest by a background thread (joined by qq_destroy).  Returns 0 and
 * *out, -EINVAL for a bad config, or QQ_E_NOMEM when the memory cannot be
 * had (more than MemAvailable, the kernel refused to back the first chunk, or
 * no thread could be started).  A later refusal stops the pre-fault and sets
 * qq_stats.prefault_failed.
 */
int qq_create(const struct qq_config *cfg, struct qq **out);

/* Frees the ring.  No thread may still use it. */
void qq_destroy(struct qq *q);

/* ---- producers -------------------------------------------------------------- */

/*
 * Opens producer handle `id` (0 <= id < cfg.producers).  Returns 0, -EINVAL,
 * or -EBUSY if already open.  The handle belongs to the calling thread.
 */
int qq_producer_open(struct qq *q, unsigned id, struct qq_producer **out);

/*
 * Copies one packet into the producer's chunk, taking a new chunk when the
 * current one is full.  Returns 0 (stored, or in overwrite mode dropped and
 * counted in dropped_packets because the ring is full and its oldest chunk
 * is still being analysed); QQ_E_TOOBIG if the record can never fit a chunk;
 * QQ_E_STOPPED after qq_stop() (the packet is not stored).  May block only in
 * QQ_MODE_BACKPRESSURE.  No lock and no syscall unless a chunk changes.
 */
int qq_producer_append(struct qq_producer *p, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                       uint16_t port, uint16_t queue, const void *data);

/*
 * The link number the producer's next records carry (qq_record.link; 0 at
 * open): a source whose packets come with several link types (a pcapng file
 * with interfaces of several) says which one each has.  Producer's thread.
 */
void qq_producer_set_link(struct qq_producer *p, uint8_t link);

/*
 * Publishes the producer's chunk if it holds records older than flush_ns at
 * time now_ns (monotonic clock), so low-rate traffic is never stuck (and
 * seals it after max_hold_ns, see qq_config).  Call it when a receive burst
 * comes back empty or after each burst.
 */
void qq_producer_flush(struct qq_producer *p, uint64_t now_ns);

/* Publishes what is left and closes the handle (freed). */
void qq_producer_close(struct qq_producer *p);

/* ---- analyzers -------------------------------------------------------------- */

/* What an analyzer is handed: records [first, end) of a chunk. */
struct qq_peek {
	struct qq_chunk *chunk;
	uint32_t first, end;
};

/*
 * Waits up to timeout_ms for records `analyzer` has not seen: the oldest
 * chunk of its producers with newly visible records (a chunk may still be
 * filling: its later records come in a later call, always in order).
 * Returns 0 and *out; QQ_E_TIMEDOUT; QQ_E_DRAINED when all producers are
 * closed and every record for this analyzer has been handed out;
 * QQ_E_STOPPED.  Each range must be handed back with qq_analyzer_done()
 * before the next call.
 */
int qq_analyzer_next(struct qq *q, unsigned analyzer, struct qq_peek *out, int timeout_ms);

/* Hands a range back: once a chunk's every record was handed back, dumpers may take it. */
void qq_analyzer_done(struct qq *q, const struct qq_peek *pk);

/* ---- dumpers ---------------------------------------------------------------- */

/*
 * Waits up to timeout_ms for the oldest published chunk, which is handed out
 * only when the ring is filled above the high-water mark (or being drained)
 * and its analyzer is done with it.  Returns 0 and *out; QQ_E_TIMEDOUT;
 * QQ_E_DRAINED when draining and nothing is left; QQ_E_STOPPED.
 */
int qq_dumper_next(struct qq *q, struct qq_chunk **out, int timeout_ms);

/* Hands a chunk back from a dumper: it becomes free for producers. */
void qq_dumper_release(struct qq *q, struct qq_chunk *c);

/* ---- chunks ----------------------------------------------------------------- */

/* Number of records in a chunk (final once a dumper has it). */
uint32_t qq_chunk_count(const struct qq_chunk *c);

/* Record i (0 <= i < count) of a chunk; O(1). */
struct qq_record *qq_chunk_record(const struct qq_chunk *c, uint32_t i);

/*
 * The note of record rec, in a QQ made with a note_size (undefined without
 * one): the bytes after its padded data.  Zeros as the producer left it; the
 * analyzer owning the record's chunk writes it before qq_analyzer_done().
 */
static inline void *qq_record_note(struct qq_record *rec)
{
	return (uint8_t *)rec + ((QQ_RECORD_HDR + rec->caplen + 7u) & ~7u);
}

/*
 * The chunk's position in publication order (0, 1, 2, ...), from the moment
 * it is first published.  Dumpers see positions in increasing order.
 */
uint64_t qq_chunk_seq(const struct qq_chunk *c);

/*
 * The position the next chunk will get: every record published so far is in
 * a chunk at a smaller position.  Any thread.
 */
uint64_t qq_published(struct qq *q);

/* The producer that filled the chunk. */
unsigned qq_chunk_producer(const struct qq_chunk *c);

/* ---- control and statistics -------------------------------------------------- */

/* From now on dumpers take every chunk regardless of the high-water mark. */
void qq_drain(struct qq *q);

/* Wakes every waiting thread with QQ_E_STOPPED; producers stop storing. */
void qq_stop(struct qq *q);

struct qq_stats {
	uint64_t capacity;            /* bytes of ring memory */
	uint32_t chunks;              /* chunks in the ring */
	uint32_t chunks_used;         /* chunks being filled or published, not yet freed */
	double fill;                  /* chunks_used / chunks */
	uint64_t oldest_ns;           /* oldest timestamp held (0 if empty) */
	uint64_t newest_ns;           /* newest timestamp published (0 if empty) */
	uint64_t enqueued_packets;    /* qq.packets (names: docs/counters.md) */
	uint64_t enqueued_bytes;      /* qq.captured_bytes */
	uint64_t overwritten_chunks;  /* qq.overwritten_chunks */
	uint64_t overwritten_packets; /* qq.overwritten_packets */
	uint64_t overwritten_bytes;   /* qq.overwritten_bytes */
	uint64_t dropped_packets;     /* qq.dropped_busy: ring full, oldest chunk in use */
	uint64_t backpressure_waits;  /* qq.backpressure_waits */
	int hugepages;                /* 1 if the ring is backed by reserved huge pages */
	uint64_t page_size;           /* 1 GiB, 2 MiB, or the base page (THP may still apply) */
	uint64_t prefaulted_bytes;    /* qq.prefaulted_bytes: populated so far (capacity: all) */
	uint32_t prefault_failed;     /* qq.prefault_failed: the kernel could not back the rest */
};

void qq_stats(struct qq *q, struct qq_stats *out);

/* MemAvailable from /proc/meminfo in bytes (0 if unknown), for error messages. */
uint64_t qq_memory_available(void);

/*
 * Two helpers for every library: qq is the one library all the others sit on
 * (ingest -> qq; tools -> query -> archive -> flowtrack -> qq), so the project's
 * one clock and one growable array live here.  Both are thread-safe (grow: on
 * distinct arrays).
 */

/* clock id (CLOCK_MONOTONIC, CLOCK_REALTIME, ...) in nanoseconds since its epoch. */
uint64_t qq_clock_ns(clockid_t id);

/* Makes *buf (room for *cap elements of el bytes; NULL and 0 at first) hold at least need
 * elements, doubling from 64.  0, or -ENOMEM (also when the size overflows): *buf and
 * *cap are then unchanged.  The caller frees *buf. */
int qq_grow(void **buf, size_t *cap, size_t need, size_t el);

#ifdef __cplusplus
}
#endif
#endif
