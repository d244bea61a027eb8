/*
 * The source interface: dispatch to each kind's operations, shared counting,
 * and error names.
 */
#include <string.h>

#include "ingest/ingest_pvt.h"

const char *ingest_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case INGEST_E_FORMAT:
		return "not a capture file";
	case INGEST_E_DAMAGED:
		return "capture input damaged";
	case INGEST_E_QQ:
		return "the QQ stopped accepting packets";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown ingest error";
	}
}

void ingest_source_info(const struct ingest_source *s, struct ingest_source_info *out)
{
	*out = s->info;
}

int ingest_source_run(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf)
{
	errbuf[0] = '\0';
	return s->ops->run(s, queue, p, errbuf);
}

void ingest_source_stop(struct ingest_source *s)
{
	atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

void ingest_source_stats(const struct ingest_source *s, struct ingest_stats *out)
{
	struct ingest_counters *c = (struct ingest_counters *)&s->c;
	out->packets = atomic_load_explicit(&c->packets, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&c->bytes, memory_order_relaxed);
	out->wire_bytes = atomic_load_explicit(&c->wire_bytes, memory_order_relaxed);
	out->truncated_records = atomic_load_explicit(&c->truncated_records, memory_order_relaxed);
	out->dropped_qq = atomic_load_explicit(&c->dropped_qq, memory_order_relaxed);
	out->dropped_oversize = atomic_load_explicit(&c->dropped_oversize, memory_order_relaxed);
	out->first_ns = atomic_load_explicit(&c->first_ns, memory_order_relaxed);
	out->last_ns = atomic_load_explicit(&c->last_ns, memory_order_relaxed);
}

void ingest_source_close(struct ingest_source *s)
{
	if (s)
		s->ops->close(s);
}

int ingest__store(struct ingest_source *s, struct qq_producer *p, uint64_t ts_ns, uint32_t caplen,
                  uint32_t wirelen, uint16_t queue, const uint8_t *data)
{
	int r = qq_producer_append(p, ts_ns, caplen, wirelen, s->info.port, queue, data);
	if (r == QQ_E_TOOBIG) {
		ingest__count_add(&s->c.dropped_oversize, 1);
		return 0;
	}
	if (r) {
		ingest__count_add(&s->c.dropped_qq, 1);
		return INGEST_E_QQ;
	}
	if (atomic_load_explicit(&s->c.packets, memory_order_relaxed) == 0)
		atomic_store_explicit(&s->c.first_ns, ts_ns, memory_order_relaxed);
	atomic_store_explicit(&s->c.last_ns, ts_ns, memory_order_relaxed);
	ingest__count_add(&s->c.packets, 1);
	ingest__count_add(&s->c.bytes, caplen);
	ingest__count_add(&s->c.wire_bytes, wirelen);
	return 0;
}
