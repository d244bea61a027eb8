/*
 * The source interface: dispatch to each kind's operations, counting, the
 * sink (QQ producer or burst callback) and the helpers every source shares
 * (storing, VLAN tag re-insertion, link types, clocks).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	case INGEST_E_DPDK:
		return "DPDK setup failed";
	case INGEST_E_LIVE:
		return "live capture failed";
	case INGEST_E_MALFORMED:
		return "malformed input";
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

struct ingest_link ingest_source_link(const struct ingest_source *s, unsigned link)
{
	if (link == 0 || link >= INGEST_MAX_LINKS)
		return (struct ingest_link){s->info.linktype, s->info.snaplen};
	return s->links[link];
}

static int queue_check(const struct ingest_source *s, unsigned queue, char *errbuf)
{
	errbuf[0] = '\0';
	if (queue < s->info.queues)
		return 0;
	snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: no queue %u", s->info.name, queue);
	return -EINVAL;
}

int ingest_source_run(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf)
{
	int r = queue_check(s, queue, errbuf);
	if (r)
		return r;
	struct ingest_sink k = {.s = s, .queue = queue, .qq = p};
	return s->ops->run(s, &k, errbuf);
}

int ingest_source_run_burst(struct ingest_source *s, unsigned queue, ingest_burst_fn fn, void *arg,
                            char *errbuf)
{
	int r = queue_check(s, queue, errbuf);
	if (r)
		return r;
	struct ingest_sink *k = calloc(1, sizeof(*k));
	if (!k || !(k->stage = malloc(INGEST_STAGE_BYTES))) {
		free(k);
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: queue %u: out of memory", s->info.name,
		         queue);
		return -ENOMEM;
	}
	k->s = s;
	k->queue = queue;
	k->fn = fn;
	k->arg = arg;
	r = s->ops->run(s, k, errbuf);
	ingest__sink_deliver(k); /* what is left is staged: the sources deliver kept packets */
	free(k->stage);
	free(k);
	return r;
}

void ingest_source_stop(struct ingest_source *s)
{
	atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

static uint64_t ld(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static void counters_add(const struct ingest_counters *c, struct ingest_stats *o)
{
	o->packets += ld(&c->packets);
	o->bytes += ld(&c->bytes);
	o->wire_bytes += ld(&c->wire_bytes);
	o->truncated_records += ld(&c->truncated_records);
	o->dropped_qq += ld(&c->dropped_qq);
	o->dropped_oversize += ld(&c->dropped_oversize);
	o->dropped_time += ld(&c->dropped_time);
	o->dropped_kernel += ld(&c->dropped_kernel);
	o->dropped_iface += ld(&c->dropped_iface);
	o->imissed += ld(&c->imissed);
	o->ierrors += ld(&c->ierrors);
	o->rx_nombuf += ld(&c->rx_nombuf);
	uint64_t f = ld(&c->first_ns), l = ld(&c->last_ns);
	if (f && (!o->first_ns || f < o->first_ns))
		o->first_ns = f;
	if (l > o->last_ns)
		o->last_ns = l;
}

void ingest_source_stats(const struct ingest_source *s, int queue, struct ingest_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (queue >= 0) {
		if ((unsigned)queue < s->info.queues)
			counters_add(&s->q[queue], out);
		return;
	}
	for (unsigned i = 0; i < s->info.queues; i++)
		counters_add(&s->q[i], out);
	counters_add(&s->dev, out);
}

uint64_t ingest_stats_drops(const struct ingest_stats *st)
{
	return st->dropped_qq + st->dropped_oversize + st->dropped_time + st->dropped_kernel +
	       st->dropped_iface + st->imissed + st->ierrors + st->rx_nombuf;
}

void ingest_source_close(struct ingest_source *s)
{
	if (s)
		s->ops->close(s);
}

void ingest__sink_deliver(struct ingest_sink *k)
{
	if (!k->n)
		return;
	struct ingest_burst b = {.queue = k->queue,
	                         .linktype = ingest_source_link(k->s, k->link).linktype,
	                         .n = k->n,
	                         .pkt = k->pkt};
	k->fn(k->arg, &b);
	k->n = 0;
	k->stage_used = 0;
}

void ingest__sink_set_link(struct ingest_sink *k, uint8_t link)
{
	if (link == k->link)
		return;
	ingest__sink_deliver(k);
	k->link = link;
	if (k->qq)
		qq_producer_set_link(k->qq, link);
}

void ingest__sink_flush(struct ingest_sink *k, uint64_t now_ns)
{
	if (k->qq)
		qq_producer_flush(k->qq, now_ns);
	else
		ingest__sink_deliver(k);
}

void ingest__sink_idle(struct ingest_sink *k, uint64_t now_ns)
{
	if (k->qq) {
		qq_producer_flush(k->qq, now_ns);
	} else if (k->n) {
		ingest__sink_deliver(k);
	} else if (now_ns - k->idle_ns >= INGEST_IDLE_EVERY_NS) {
		struct ingest_burst b = {.queue = k->queue,
		                         .linktype = ingest_source_link(k->s, k->link).linktype};
		k->idle_ns = now_ns;
		k->fn(k->arg, &b);
	}
}

static void count_stored(struct ingest_counters *c, uint64_t ts_ns, uint32_t caplen,
                         uint32_t wirelen)
{
	if (ld(&c->packets) == 0)
		ingest__count_set(&c->first_ns, ts_ns);
	ingest__count_set(&c->last_ns, ts_ns);
	ingest__count_add(&c->packets, 1);
	ingest__count_add(&c->bytes, caplen);
	ingest__count_add(&c->wire_bytes, wirelen);
}

static int store_qq(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                    const uint8_t *data)
{
	struct ingest_counters *c = &k->s->q[k->queue];
	int r = qq_producer_append(k->qq, ts_ns, caplen, wirelen, k->s->info.port,
	                           (uint16_t)k->queue, data);
	if (r == QQ_E_TOOBIG) {
		ingest__count_add(&c->dropped_oversize, 1);
		return 0;
	}
	if (r) {
		ingest__count_add(&c->dropped_qq, 1);
		return INGEST_E_QQ;
	}
	count_stored(c, ts_ns, caplen, wirelen);
	return 0;
}

uint8_t *ingest__sink_room(struct ingest_sink *k, uint32_t len)
{
	if (k->qq || len > INGEST_STAGE_BYTES)
		return NULL;
	if (len > INGEST_STAGE_BYTES - k->stage_used)
		ingest__sink_deliver(k);
	return k->stage + k->stage_used;
}

/* Takes len bytes at the staging area's free room (8-byte aligned). */
static void stage_take(struct ingest_sink *k, uint32_t len)
{
	k->stage_used += (len + 7) & ~(size_t)7;
	if (k->stage_used > INGEST_STAGE_BYTES)
		k->stage_used = INGEST_STAGE_BYTES;
}

/*
 * Burst mode: queues the packet.  One to copy goes into the staging area
 * (after the pending ones are handed over if it does not fit its free
 * room); one larger than the whole area is handed over alone, where it is.
 */
static void store_burst(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                        const uint8_t *data, enum ingest_data how)
{
	int alone = 0;
	count_stored(&k->s->q[k->queue], ts_ns, caplen, wirelen);
	if (how == INGEST_COPY) {
		uint8_t *room = ingest__sink_room(k, caplen);
		if (room) {
			memcpy(room, data, caplen);
			data = room;
			how = INGEST_STAGED;
		} else {
			alone = 1;
			ingest__sink_deliver(k);
		}
	}
	if (how == INGEST_STAGED)
		stage_take(k, caplen);
	k->pkt[k->n++] =
	    (struct ingest_pkt){.ts_ns = ts_ns, .caplen = caplen, .wirelen = wirelen, .data = data};
	if (k->n == INGEST_BURST || alone)
		ingest__sink_deliver(k);
}

int ingest__store(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                  const uint8_t *data, enum ingest_data how)
{
	if (k->qq)
		return store_qq(k, ts_ns, caplen, wirelen, data);
	store_burst(k, ts_ns, caplen, wirelen, data, how);
	return 0;
}

int ingest__store_vlan(struct ingest_sink *k, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                       const uint8_t *data, uint16_t tpid, uint16_t tci)
{
	static _Thread_local uint8_t tls[262144 + 4];
	if (caplen < 12 || caplen > sizeof(tls) - 4)
		return ingest__store(k, ts_ns, caplen, wirelen, data, INGEST_KEEP);
	/* burst mode builds the frame where the callback will read it */
	uint8_t *buf = ingest__sink_room(k, caplen + 4);
	enum ingest_data how = buf ? INGEST_STAGED : INGEST_COPY;
	if (!buf)
		buf = tls;
	memcpy(buf, data, 12);
	buf[12] = (uint8_t)(tpid >> 8);
	buf[13] = (uint8_t)tpid;
	buf[14] = (uint8_t)(tci >> 8);
	buf[15] = (uint8_t)tci;
	memcpy(buf + 16, data + 12, caplen - 12);
	return ingest__store(k, ts_ns, caplen + 4, wirelen + 4, buf, how);
}

/*
 * pcap_datalink() returns the DLT_ value, which differs from the LINKTYPE_
 * value files store for a few link types (raw IP is DLT 12, LINKTYPE 101);
 * libpcap's own dumper does the mapping, so ask it to write a header into
 * memory and read the field back.
 */
int ingest__pcap_linktype(pcap_t *p)
{
	char *buf = NULL;
	size_t len = 0;
	int lt = pcap_datalink(p);
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return lt;
	pcap_dumper_t *d = pcap_dump_fopen(p, m);
	if (!d) {
		fclose(m);
		free(buf);
		return lt;
	}
	pcap_dump_flush(d);
	if (len >= 24)
		memcpy(&lt, buf + 20, 4); /* written in host byte order */
	pcap_dump_close(d);
	free(buf);
	return lt;
}

uint64_t ingest__mono_ns(void)
{
	return qq_clock_ns(CLOCK_MONOTONIC);
}

uint64_t ingest__real_ns(void)
{
	return qq_clock_ns(CLOCK_REALTIME);
}
