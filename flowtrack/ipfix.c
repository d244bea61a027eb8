/*
 * IPFIX export (RFC 7011) of an analyzer's flow table: the messages built
 * here, sent by the owner's callback (tools/record_pipeline.c: a UDP socket).
 *
 * Key decisions:
 *   - One record per direction (uniflows), never RFC 5103 biflows: a flow
 *     table entry is bidirectional, but pmacct's nfacctd ignores the reverse
 *     elements (PEN 29305) that nfdump's nfcapd reads, while both count
 *     uniflow records right (docs/ipfix.md).  A direction without packets
 *     since the last export gives no record.
 *   - Deltas: a flow's state (struct ipfix_mark in ft_flow.state, which the
 *     owner reserves with FT_IPFIX_STATE_SIZE) keeps what was exported, so an
 *     active timeout exports what came since and the flow stays in the table.
 *   - Two templates (IPv4 256, IPv6 257), sent in the first message and again
 *     every template_ns or every template_msgs messages (RFC 7011 8.4: UDP).
 *   - The message builder is pure: it only writes into its buffer and calls
 *     send(); sequence numbers count every data record handed to send(),
 *     sent or not, so a lost message is a gap the collector sees.
 *
 * Invariant: x->len is 0 (no message open) or >= the 16-byte header; a data set
 * is open iff x->set_off != 0, and then its records are of template x->set_tid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

#define HDR_LEN 16
#define SET_HDR_LEN 4
#define TEMPLATE_SET_ID 2
#define NTP_EPOCH_OFFSET 2208988800ull /* seconds from 1900-01-01 to 1970-01-01 */
#define SCAN_NS 1000000000ull          /* the table is scanned at most once a second */

/* IANA information elements, in template order (ids and lengths). */
struct ie {
	uint16_t id, len;
};

#define COMMON_IES                                                                              \
	{7, 2}, {11, 2}, {4, 1}, {6, 2}, {58, 2}, {245, 2}, {1, 8}, {2, 8}, {156, 8}, {157, 8}, \
	    {152, 8}, {153, 8},                                                                 \
	{                                                                                       \
		136, 1                                                                          \
	}
static const struct ie ies_v4[] = {{8, 4}, {12, 4}, COMMON_IES};
static const struct ie ies_v6[] = {{27, 16}, {28, 16}, COMMON_IES};
#define NIES (sizeof(ies_v4) / sizeof(ies_v4[0]))

/* What a flow's state keeps: what the exporter has sent of it so far. */
struct ipfix_mark {
	uint64_t packets[2], bytes[2];
	uint64_t start_ns; /* start of the record being counted; 0: the flow's first packet */
};

_Static_assert(sizeof(struct ipfix_mark) <= FT_IPFIX_STATE_SIZE, "FT_IPFIX_STATE_SIZE");

struct ft_ipfix {
	struct ft_ipfix_config c;
	uint8_t *msg;          /* c.mtu bytes */
	size_t len;            /* bytes of the open message, 0 when none */
	size_t set_off;        /* offset of the open data set's header, 0 when none */
	uint16_t set_tid;      /* its template */
	unsigned nrec, ntpl;   /* data and template records in the open message */
	uint32_t seq;          /* data records handed to send() before this message */
	uint64_t tpl_ns;       /* wall clock of the last templates; 0: never sent */
	unsigned msgs_since;   /* messages since then */
	uint64_t now_ns;       /* wall clock of the last call */
	uint64_t last_scan_ns; /* flow clock of the last table scan */
};

int ft_ipfix_create(const struct ft_ipfix_config *c, struct ft_ipfix **out)
{
	struct ft_ipfix *x;
	if (!c->send || (c->mtu && (c->mtu < FT_IPFIX_MIN_MTU || c->mtu > 65535)))
		return -EINVAL;
	if (!(x = calloc(1, sizeof(*x))))
		return -ENOMEM;
	x->c = *c;
	if (!x->c.mtu)
		x->c.mtu = FT_IPFIX_MTU;
	if (!x->c.template_ns)
		x->c.template_ns = FT_IPFIX_TEMPLATE_NS;
	if (!x->c.template_msgs)
		x->c.template_msgs = FT_IPFIX_TEMPLATE_MSGS;
	if (!x->c.active_ns)
		x->c.active_ns = FT_IPFIX_ACTIVE_NS;
	if (!x->c.idle_ns)
		x->c.idle_ns = FT_IPFIX_IDLE_NS;
	if (!(x->msg = malloc(x->c.mtu))) {
		free(x);
		return -ENOMEM;
	}
	*out = x;
	return 0;
}

void ft_ipfix_destroy(struct ft_ipfix *x)
{
	if (!x)
		return;
	free(x->msg);
	free(x);
}

/* ---- bytes ---------------------------------------------------------------------------------- */

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	return put16(put16(p, (uint16_t)(v >> 16)), (uint16_t)v);
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

/* dateTimeNanoseconds (RFC 7011 6.1.10): NTP format, seconds since 1900 and a 2^-32 fraction. */
static uint8_t *put_ntp(uint8_t *p, uint64_t ns)
{
	uint64_t frac = ((ns % 1000000000ull) << 32) / 1000000000ull;
	return put32(put32(p, (uint32_t)(ns / 1000000000ull + NTP_EPOCH_OFFSET)), (uint32_t)frac);
}

static size_t record_len(int v4)
{
	const struct ie *t = v4 ? ies_v4 : ies_v6;
	size_t n = 0;
	for (size_t i = 0; i < NIES; i++)
		n += t[i].len;
	return n;
}

size_t ft_ipfix_record_len(int family)
{
	return record_len(family == 4);
}

/* ---- messages ------------------------------------------------------------------------------- */

static uint8_t *put_template(uint8_t *p, uint16_t tid, const struct ie *t)
{
	p = put16(put16(p, tid), (uint16_t)NIES);
	for (size_t i = 0; i < NIES; i++)
		p = put16(put16(p, t[i].id), t[i].len);
	return p;
}

static int templates_due(const struct ft_ipfix *x)
{
	return !x->tpl_ns || x->now_ns - x->tpl_ns >= x->c.template_ns ||
	       x->msgs_since >= x->c.template_msgs;
}

/* A new message: its header's room, and the template set when due. */
static void message_open(struct ft_ipfix *x)
{
	x->len = HDR_LEN;
	x->set_off = 0;
	x->nrec = x->ntpl = 0;
	if (!templates_due(x))
		return;
	uint8_t *s = x->msg + x->len;
	uint8_t *p = put_template(s + SET_HDR_LEN, FT_IPFIX_TEMPLATE_V4, ies_v4);
	p = put_template(p, FT_IPFIX_TEMPLATE_V6, ies_v6);
	put16(put16(s, TEMPLATE_SET_ID), (uint16_t)(p - s));
	x->len = (size_t)(p - x->msg);
	x->ntpl = 2;
	x->tpl_ns = x->now_ns ? x->now_ns : 1;
	x->msgs_since = 0;
}

static void set_close(struct ft_ipfix *x)
{
	if (x->set_off)
		put16(x->msg + x->set_off + 2, (uint16_t)(x->len - x->set_off));
	x->set_off = 0;
}

void ft_ipfix_flush(struct ft_ipfix *x, uint64_t now_ns)
{
	if (now_ns)
		x->now_ns = now_ns;
	if (!x->len || (!x->nrec && !x->ntpl))
		return;
	set_close(x);
	uint8_t *p = put16(put16(x->msg, 10), (uint16_t)x->len);
	put32(put32(put32(p, (uint32_t)(x->now_ns / 1000000000ull)), x->seq), x->c.domain);
	struct ft_ipfix_sent what = {.records = x->nrec, .templates = x->ntpl};
	x->c.send(x->c.arg, x->msg, x->len, &what);
	x->seq += x->nrec;
	x->msgs_since++;
	x->len = 0;
}

static uint8_t *put_record(uint8_t *p, const struct ft_ipfix_record *r, int v4)
{
	size_t alen = v4 ? 4 : 16;
	memcpy(p, r->src + 16 - alen, alen);
	memcpy(p + alen, r->dst + 16 - alen, alen);
	p = put16(put16(p + 2 * alen, r->sport), r->dport);
	*p++ = r->proto;
	p = put16(put16(put16(p, r->tcp_flags), r->vlan), r->vlan_inner);
	p = put_ntp(put_ntp(put64(put64(p, r->bytes), r->packets), r->start_ns), r->end_ns);
	/* flowStart/EndMilliseconds too: nfdump 1.7 reads no nanosecond element */
	p = put64(put64(p, r->start_ns / 1000000), r->end_ns / 1000000);
	*p++ = r->end_reason;
	return p;
}

void ft_ipfix_add(struct ft_ipfix *x, const struct ft_ipfix_record *r, uint64_t now_ns)
{
	int v4 = ft_addr_is_v4(r->src) && ft_addr_is_v4(r->dst);
	uint16_t tid = v4 ? FT_IPFIX_TEMPLATE_V4 : FT_IPFIX_TEMPLATE_V6;
	size_t rl = record_len(v4);
	if (now_ns)
		x->now_ns = now_ns;
	if (x->len && x->len + rl + (x->set_off && x->set_tid == tid ? 0 : SET_HDR_LEN) > x->c.mtu)
		ft_ipfix_flush(x, 0);
	if (!x->len)
		message_open(x);
	if (!x->set_off || x->set_tid != tid) {
		set_close(x);
		x->set_off = x->len;
		x->set_tid = tid;
		put16(x->msg + x->len, tid);
		x->len += SET_HDR_LEN;
	}
	x->len = (size_t)(put_record(x->msg + x->len, r, v4) - x->msg);
	x->nrec++;
}

/* ---- flows ---------------------------------------------------------------------------------- */

/* The records of flow f since its last export (one per direction with packets), ended by
 * `reason`; the mark then says they are sent, and the next record starts after them. */
static void flow_export(struct ft_ipfix *x, struct ft_flow *f, uint8_t reason)
{
	struct ipfix_mark *m = (struct ipfix_mark *)f->state;
	const struct ft_flow_key *k = &f->key;
	for (int d = 0; d < 2; d++) {
		if (f->packets[d] == m->packets[d])
			continue;
		struct ft_ipfix_record r = {.sport = d ? k->port_b : k->port_a,
		                            .dport = d ? k->port_a : k->port_b,
		                            .proto = k->proto,
		                            .tcp_flags = f->tcp_flags[d],
		                            .end_reason = reason,
		                            .vlan = k->vlan,
		                            .vlan_inner = k->vlan_inner,
		                            .packets = f->packets[d] - m->packets[d],
		                            .bytes = f->bytes[d] - m->bytes[d],
		                            .start_ns = m->start_ns ? m->start_ns : f->first_ns,
		                            .end_ns = f->last_ns};
		memcpy(r.src, d ? k->b : k->a, 16);
		memcpy(r.dst, d ? k->a : k->b, 16);
		ft_ipfix_add(x, &r, 0);
		m->packets[d] = f->packets[d];
		m->bytes[d] = f->bytes[d];
	}
	m->start_ns = f->last_ns;
}

void ft_ipfix_flow_end(struct ft_ipfix *x, struct ft_flow *f, uint8_t reason, uint64_t now_ns)
{
	if (now_ns)
		x->now_ns = now_ns;
	flow_export(x, f, reason);
}

static void scan_visit(struct ft_flow *f, void *arg)
{
	struct ft_ipfix *x = arg;
	struct ipfix_mark *m = (struct ipfix_mark *)f->state;
	uint64_t now = x->last_scan_ns;
	uint64_t start = m->start_ns ? m->start_ns : f->first_ns;
	/* idle: exported once (then it has nothing new); it stays, the table is the analyzer's */
	if (f->last_ns + x->c.idle_ns <= now)
		flow_export(x, f, FT_IPFIX_END_IDLE);
	else if (start + x->c.active_ns <= now)
		flow_export(x, f, FT_IPFIX_END_ACTIVE);
}

void ft_ipfix_expire(struct ft_ipfix *x, struct ft_table *t, uint64_t flow_now_ns, uint64_t now_ns)
{
	x->now_ns = now_ns;
	if (flow_now_ns < x->last_scan_ns + SCAN_NS)
		return;
	x->last_scan_ns = flow_now_ns;
	ft_table_foreach(t, scan_visit, x);
	ft_ipfix_flush(x, 0);
}

static void finish_visit(struct ft_flow *f, void *arg)
{
	flow_export(arg, f, FT_IPFIX_END_FORCED);
}

void ft_ipfix_finish(struct ft_ipfix *x, struct ft_table *t, uint64_t now_ns)
{
	x->now_ns = now_ns;
	ft_table_foreach(t, finish_visit, x);
	ft_ipfix_flush(x, 0);
}
