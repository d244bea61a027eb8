/*
 * ingest private: the source object every kind of source embeds, per-queue
 * counters, and the helpers all sources share.
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
#include <stdatomic.h>

#include "ingest/ingest.h"

#define INGEST_BURST 32                 /* packets per receive burst */
#define INGEST_STATS_EVERY_NS 100000000 /* refresh kernel/device drop counters */

struct ingest_ops {
	int (*run)(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf);
	void (*close)(struct ingest_source *s);
};

/* One queue's counters (the fields of struct ingest_stats), on its own cache line. */
struct ingest_counters {
	_Atomic uint64_t packets, bytes, wire_bytes;
	_Atomic uint64_t truncated_records, dropped_qq, dropped_oversize;
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
 * Stores one packet of `queue` into the QQ and counts it.  Returns 0 (stored,
 * or counted as oversize), or INGEST_E_QQ when the QQ was stopped.
 */
int ingest__store(struct ingest_source *s, struct qq_producer *p, unsigned queue, uint64_t ts_ns,
                  uint32_t caplen, uint32_t wirelen, const uint8_t *data);

/*
 * Stores a frame whose VLAN tag the kernel or NIC stripped into metadata:
 * rebuilds dst, src, TPID, TCI, rest (as libpcap does) and stores that.
 */
int ingest__store_vlan(struct ingest_source *s, struct qq_producer *p, unsigned queue,
                       uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t *data,
                       uint16_t tpid, uint16_t tci);

/* The LINKTYPE_ value a pcap file would store for a pcap_t (see ingest.h). */
int ingest__pcap_linktype(pcap_t *p);

/* CLOCK_MONOTONIC / CLOCK_REALTIME in ns. */
uint64_t ingest__mono_ns(void);
uint64_t ingest__real_ns(void);

#endif
