/*
 * ingest private: the source object every kind of source embeds, and the
 * operations table behind the public ingest_source_* functions.
 */
#ifndef FLOWSCOPE_INGEST_PVT_H
#define FLOWSCOPE_INGEST_PVT_H

#include <stdatomic.h>

#include "ingest/ingest.h"

struct ingest_ops {
	int (*run)(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf);
	void (*close)(struct ingest_source *s);
};

/*
 * Counters are written by the one thread running the source and read by any
 * thread: both sides use relaxed atomics, which is enough because each
 * counter is independent and only needs to be untorn.
 */
struct ingest_counters {
	_Atomic uint64_t packets, bytes, wire_bytes;
	_Atomic uint64_t truncated_records, dropped_qq, dropped_oversize;
	_Atomic uint64_t first_ns, last_ns;
};

struct ingest_source {
	const struct ingest_ops *ops;
	struct ingest_source_info info;
	atomic_int stop; /* set by ingest_source_stop(), polled by run */
	struct ingest_counters c;
};

static inline void ingest__count_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

/* Stores one packet into the QQ and counts it.  Returns 0 or INGEST_E_QQ. */
int ingest__store(struct ingest_source *s, struct qq_producer *p, uint64_t ts_ns, uint32_t caplen,
                  uint32_t wirelen, uint16_t queue, const uint8_t *data);

#endif
