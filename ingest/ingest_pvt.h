/*
 * ingest private: the source object every kind of source embeds, per-queue
 * counters, the sink a queue's packets go to, and the helpers all sources
 * share.
 *
 * A source's run function for queue q writes only queue q's counters; any
 * thread may read them.  Both sides use relaxed atomics: each counter is
 * independent and only needs to be untorn, and a reader that sees a slightly
 * old value is fine (status lines).  Device-level counters (DPDK imissed ...)
 * live in `dev` and are refreshed by queue 0's run loop.
 */
#ifndef FLOWSCOPE_INGEST_PVT_H
#define FLOWSCOPE_INGEST_PVT_H

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdatomic.h>

#include "ingest/ingest.h"

#define INGEST_BURST INGEST_BURST_MAX   /* packets per receive burst */
#define INGEST_STATS_EVERY_NS 100000000 /* refresh kernel/device drop counters */

struct ingest_sink;

struct ingest_ops {
	int (*run)(struct ingest_source *s, struct ingest_sink *k, char *errbuf);
	void (*close)(struct ingest_source *s);
};

/* One queue's counters (the fields of struct ingest_stats), on its own cache line. */
struct ingest_counters {
	_Atomic uint64_t packets, bytes, wire_bytes;
	_Atomic uint64_t truncated_records, dropped_qq, dropped_oversize, dropped_time;
	_Atomic uint64_t dropped_kernel, dropped_iface;
	_Atomic uint64_t imissed, ierrors, rx_nombuf;
	_Atomic uint64_t first_ns, last_ns;
} __attribute__((aligned(64)));

struct ingest_source {
	const struct ingest_ops *ops;
	struct ingest_source_info info;
	atomic_int stop; /* set by ingest_source_stop(), polled by run */
	struct ingest_counters q[INGEST_MAX_QUEUES]; /* per queue */
	struct ingest_counters dev;                  /* device level (DPDK port counters) */
	/* links 1.. (0 is info's): written by the one queue's run thread before the
	 * first packet of the link is stored, read by consumers of such packets */
	struct ingest_link links[INGEST_MAX_LINKS];
};

static inline void ingest__count_add(_Atomic uint64_t *c, uint64_t v)
{
	/* one writer per counter: load + store is enough, no read-modify-write needed */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

static inline void ingest__count_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline int ingest__stopping(const struct ingest_source *s)
{
	return atomic_load_explicit(&s->stop, memory_order_relaxed);
}

/*
 * Where one queue's packets go: the QQ (ingest_source_run) or a burst
 * callback (ingest_source_run_burst).  Owned by the queue's run thread.
 *
 * Burst mode keeps pointers to the packets until the burst is handed over
 * (ingest__sink_deliver).  A packet stored with INGEST_KEEP stays where the
 * source received it, so the source must deliver before that memory goes
 * back (mbufs freed, ring block released); one stored with INGEST_COPY is
 * copied into the staging area first (the source reuses its bytes at once);
 * one stored with INGEST_STAGED was built by the source in the staging area
 * (ingest__sink_room: VLAN tags put back, chained mbufs linearised), so no
 * packet is copied twice.
 */
struct ingest_sink {
	struct ingest_source *s;
	unsigned queue;
	struct qq_producer *qq; /* QQ mode, else NULL */
	ingest_burst_fn fn;     /* burst mode */
	void *arg;
	unsigned n; /* packets pending in pkt[] */
	struct ingest_pkt pkt[INGEST_BURST];
	uint8_t *stage; /* INGEST_STAGE_BYTES for INGEST_COPY and INGEST_STAGED packets */
	size_t stage_used;
	uint64_t idle_ns; /* last idle call of fn (monotonic) */
	uint8_t link;     /* link of the packets stored next (ingest__sink_set_link) */
};

#define INGEST_STAGE_BYTES (128u << 10)
#define INGEST_IDLE_EVERY_NS 10000000u /* idle calls of the burst callback, at most */

enum ingest_data { INGEST_KEEP, INGEST_COPY, INGEST_STAGED };

/*
 * Burst mode: room for a packet of len bytes in the staging area (handing
 * the pending burst over first when the free room is too small), to be
 * stored next with INGEST_STAGED.  NULL in QQ mode, or when len exceeds the
 * whole area: then the caller builds the packet in a buffer of its own and
 * stores it with INGEST_COPY.
 */
uint8_t *ingest__sink_room(struct ingest_sink *k, uint32_t len);

/*
 * Stores one packet of the sink's queue and counts it.  QQ mode copies it
 * into the QQ; burst mode queues it (copied first if `how` is INGEST_COPY;
 * with INGEST_STAGED, data is what ingest__sink_room returned) and hands the
 * burst over once it is full.  Returns 0 (stored, or counted
 * as oversize), or INGEST_E_QQ when the QQ was stopped.
 */
int ingest__store(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                  const uint8_t *data, enum ingest_data how);

/*
 * Stores a frame whose VLAN tag the kernel or NIC stripped into metadata:
 * rebuilds dst, src, TPID, TCI, rest (as libpcap does) and stores that.
 */
int ingest__store_vlan(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                       const uint8_t *data, uint16_t tpid, uint16_t tci);

/*
 * The packets stored next are of link `link` (s->links[link] written):
 * stamped on QQ records; burst mode hands the pending burst over first, as
 * a burst has one link type.
 */
void ingest__sink_set_link(struct ingest_sink *k, uint8_t link);

/* Burst mode: hands the pending packets over.  QQ mode: nothing. */
void ingest__sink_deliver(struct ingest_sink *k);

/* Publishes what is pending: qq_producer_flush() in QQ mode, ingest__sink_deliver(). */
void ingest__sink_flush(struct ingest_sink *k, uint64_t now_ns);

/*
 * The source has nothing more at the moment: QQ mode publishes the partly
 * filled chunk (qq_producer_flush, once it is flush_ns old); burst mode hands
 * the pending packets over, or says the queue is idle (n = 0) at most every
 * INGEST_IDLE_EVERY_NS.
 */
void ingest__sink_idle(struct ingest_sink *k, uint64_t now_ns);

/*
 * pcapng input for libpcap when its interfaces differ in link type or snaplen
 * (pcapng_links.c): wraps `in`, read from its start, in a stream to hand
 * libpcap instead; it notes each interface's link in s->links and each packet
 * block's link in a FIFO.  Closing the stream closes `in` (not stdin) and
 * frees the walk.  NULL (errno) on failure.
 */
struct ingest__nglinks;
FILE *ingest__nglinks_open(FILE *in, struct ingest_source *s, struct ingest__nglinks **out);

/* What the walk saw of the next packet libpcap returns ({0, 0} when unknown). */
struct ingest__ngpkt {
	uint32_t wirelen; /* an SPB's original length when libpcap was given less; else 0 */
	uint8_t link;
};
struct ingest__ngpkt ingest__nglinks_next(struct ingest__nglinks *w);

/* The LINKTYPE_ value a pcap file would store for a pcap_t (see ingest.h). */
int ingest__pcap_linktype(pcap_t *p);

/* CLOCK_MONOTONIC / CLOCK_REALTIME in ns. */
uint64_t ingest__mono_ns(void);
uint64_t ingest__real_ns(void);

#endif
