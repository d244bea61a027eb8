/*
 * Flows: the flows an archive holds, selected as `flowscope flows` and
 * GET /api/v1/flows list them (moved here from tools/flows.c so both share
 * one selection and one JSON line).
 *
 * The index keeps one flow record per flow per segment; the records of the
 * same flow (its key, as archive_flow_key_of() gives it: the 5-tuple and
 * both VLAN ids) from every segment are merged first, so from/to see the
 * whole flow however the archive was split into segments.  A record that
 * format 2 wrote has the outer VLAN id only (inner 0): it stands for the
 * flows of every inner tag, and a packet with an inner tag finds it when its
 * own key has no record.
 *
 * A filter selects flows by their packets: a flow is listed when one of its
 * packets matches.  The flow record cannot decide that (it holds neither
 * every packet's flags, nor VLAN tags past the second, MPLS labels or IPv6
 * extension headers that move pcap's offsets), so the filter runs on the
 * packets themselves: a query (the index narrows the frames it reads as for
 * `flowscope query`) over the listed flows' time span hands every matching
 * packet here, and the flow record its key names is kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "qq/qq.h"
#include "query/query_pvt.h"

struct collect {
	struct archive_rtxn *t;
	struct archive_flow_info *f;
	size_t n, cap;
};

static int flow_add(const struct archive_flow_info *f, void *arg)
{
	struct collect *c = arg;
	if (qq_grow((void **)&c->f, &c->cap, c->n + 1, sizeof(*c->f)) != 0)
		return -ENOMEM;
	c->f[c->n++] = *f;
	return 0;
}

static int seg_flows(const struct archive_segment_info *s, void *arg)
{
	struct collect *c = arg;
	return archive_flows(c->t, s->id, flow_add, c);
}

static int key_cmp(const void *x, const void *y)
{
	const struct archive_flow_info *a = x, *b = y;
	int r = memcmp(&a->key, &b->key, sizeof(a->key));
	if (r)
		return r;
	return (a->first_ns > b->first_ns) - (a->first_ns < b->first_ns);
}

static int time_cmp(const void *x, const void *y)
{
	const struct archive_flow_info *a = x, *b = y;
	if (a->first_ns != b->first_ns)
		return (a->first_ns > b->first_ns) - (a->first_ns < b->first_ns);
	return memcmp(&a->key, &b->key, sizeof(a->key));
}

/* Merges the records of one flow from several segments; leaves the flows sorted by key. */
static void merge_segments(struct collect *c)
{
	if (c->n == 0)
		return;
	qsort(c->f, c->n, sizeof(*c->f), key_cmp);
	size_t w = 0;
	for (size_t i = 1; i < c->n; i++) {
		struct archive_flow_info *a = &c->f[w], *b = &c->f[i];
		if (memcmp(&a->key, &b->key, sizeof(a->key)) != 0) {
			c->f[++w] = *b;
			continue;
		}
		a->last_ns = b->last_ns > a->last_ns ? b->last_ns : a->last_ns;
		for (int d = 0; d < 2; d++) {
			a->packets[d] += b->packets[d];
			a->bytes[d] += b->bytes[d];
			a->tcp_flags[d] |= b->tcp_flags[d];
		}
		if (!a->trigger)
			a->trigger = b->trigger;
	}
	c->n = w + 1;
}

/* The flows whose packets the filter runs on, sorted by key, and which of them matched. */
struct resolve {
	const struct archive_flow_info *f;
	size_t n;
	uint8_t *hit;
};

static int key_find_cmp(const void *key, const void *x)
{
	const struct archive_flow_info *f = x;
	return memcmp(key, &f->key, sizeof(f->key));
}

/* A packet the filter matched (query's on_packet): marks the flow record it is counted in. */
static int packet_matched(const struct archive_segment_info *seg, const struct archive_record *rec,
                          void *arg)
{
	struct resolve *rs = arg;
	struct ft_packet pkt;
	struct ft_flow_key key;
	if (ft_parse(seg->linktype, rec->data, rec->caplen, &pkt) != 0 ||
	    archive_flow_key_of(&pkt, &key, NULL) != 0)
		return 0; /* no flow (ARP, a link type the indexer does not parse) */
	const struct archive_flow_info *f =
	    bsearch(&key, rs->f, rs->n, sizeof(*rs->f), key_find_cmp);
	if (!f && key.vlan_inner) { /* a format 2 record: keyed by the outer tag only */
		key.vlan_inner = 0;
		f = bsearch(&key, rs->f, rs->n, sizeof(*rs->f), key_find_cmp);
	}
	if (f)
		rs->hit[f - rs->f] = 1;
	return 0;
}

/*
 * Keeps the flows (sorted by key) with a packet the filter matches, running
 * it on the packets of their time span.  0 or query_run's error (errbuf).
 */
static int keep_matching(const struct query_flows_options *fo, struct archive *a, struct collect *c,
                         uint64_t *frames_damaged, char *errbuf)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < c->n; i++) {
		lo = c->f[i].first_ns < lo ? c->f[i].first_ns : lo;
		hi = c->f[i].last_ns > hi ? c->f[i].last_ns : hi;
	}
	struct resolve rs = {.f = c->f, .n = c->n, .hit = calloc(c->n ? c->n : 1, 1)};
	if (!rs.hit)
		return snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory"), -ENOMEM;
	struct query_options o = {.filter = fo->filter,
	                          .from_ns = lo,
	                          .to_ns = hi == UINT64_MAX ? 0 : hi + 1,
	                          .notices = fo->notices,
	                          .notice_prefix = fo->notice_prefix,
	                          .skip_damaged = 1,
	                          .on_packet = packet_matched,
	                          .on_packet_arg = &rs,
	                          .stop = fo->stop};
	struct query_result res = {0};
	int r = c->n ? query_run(a, &o, &res, errbuf) : 0;
	*frames_damaged = res.frames_damaged;
	size_t w = 0;
	for (size_t i = 0; i < c->n; i++)
		if (rs.hit[i])
			c->f[w++] = c->f[i];
	c->n = w;
	free(rs.hit);
	return r;
}

/* The flow was active in [from, to): it has a packet there or spans the range. */
static int in_range(const struct query_flows_options *fo, const struct archive_flow_info *f)
{
	return (!fo->from_ns || f->last_ns >= fo->from_ns) &&
	       (!fo->to_ns || f->first_ns < fo->to_ns);
}

static int sort_cmp(const void *x, const void *y, void *arg)
{
	const struct archive_flow_info *a = x, *b = y;
	enum query_flows_sort k = *(const enum query_flows_sort *)arg;
	uint64_t va = 0, vb = 0;
	if (k == QUERY_FLOWS_BY_BYTES)
		va = a->bytes[0] + a->bytes[1], vb = b->bytes[0] + b->bytes[1];
	else if (k == QUERY_FLOWS_BY_PACKETS)
		va = a->packets[0] + a->packets[1], vb = b->packets[0] + b->packets[1];
	else
		va = a->last_ns - a->first_ns, vb = b->last_ns - b->first_ns;
	int r = (va < vb) - (va > vb); /* largest first */
	return r ? r : time_cmp(x, y);
}

/* Keeps the flows asked for (in key order), then orders and cuts them. */
static int select_flows(const struct query_flows_options *fo, struct archive *a, struct collect *c,
                        uint64_t *frames_damaged, char *errbuf)
{
	size_t w = 0;
	for (size_t i = 0; i < c->n; i++)
		if ((!fo->triggered || c->f[i].trigger) && in_range(fo, &c->f[i]))
			c->f[w++] = c->f[i];
	c->n = w;
	int r = fo->filter && fo->filter[0] ? keep_matching(fo, a, c, frames_damaged, errbuf) : 0;
	if (r)
		return r;
	enum query_flows_sort k =
	    fo->sort == QUERY_FLOWS_BY_TIME && fo->top ? QUERY_FLOWS_BY_BYTES : fo->sort;
	if (c->n > 1 && k == QUERY_FLOWS_BY_TIME)
		qsort(c->f, c->n, sizeof(*c->f), time_cmp);
	else if (c->n > 1)
		qsort_r(c->f, c->n, sizeof(*c->f), sort_cmp, &k);
	if (fo->total)
		*fo->total = c->n;
	size_t skip = fo->offset < c->n ? (size_t)fo->offset : c->n;
	memmove(c->f, c->f + skip, (c->n - skip) * sizeof(*c->f));
	c->n -= skip;
	if (fo->top && c->n > fo->top)
		c->n = (size_t)fo->top;
	if (fo->limit && c->n > fo->limit)
		c->n = (size_t)fo->limit;
	return 0;
}

int query_flows(struct archive *a, struct archive_rtxn *t, const struct query_flows_options *fo,
                struct archive_flow_info **flows, size_t *n, uint64_t *frames_damaged, char *errbuf)
{
	struct collect c = {.t = t};
	struct bpf_program prog;
	*flows = NULL;
	*n = 0;
	*frames_damaged = 0;
	errbuf[0] = '\0';
	if (fo->filter && fo->filter[0]) { /* refused up front, whatever the archive holds */
		if (ft_bpf_compile(1, 262144, fo->filter, &prog, errbuf, QUERY_ERRBUF_SIZE) != 0)
			return QUERY_E_FILTER;
		pcap_freecode(&prog);
	}
	/* every segment: a flow's records outside the range still count (merged first) */
	int r = archive_segments(t, 0, 0, seg_flows, &c);
	if (r) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "%s",
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		free(c.f);
		return r;
	}
	merge_segments(&c);
	if ((r = select_flows(fo, a, &c, frames_damaged, errbuf)) != 0) {
		free(c.f);
		return r;
	}
	*flows = c.f;
	*n = c.n;
	return 0;
}

static void endpoint(const uint8_t *addr, uint16_t port, char *buf, size_t len)
{
	char a[FT_ADDRSTRLEN];
	ft_addr_format(addr, a, sizeof(a));
	snprintf(buf, len, ft_addr_is_v4(addr) ? "%s:%u" : "[%s]:%u", a, port);
}

void query_flow_fields(struct archive_rtxn *t, const struct archive_flow_info *f,
                       struct query_flow_text *x)
{
	char pbuf[16];
	x->trigger[0] = '\0';
	if (t) /* (NULL: rows from elsewhere, their trigger filled in by the caller) */
		archive_trigger_name(t, f->trigger, x->trigger, sizeof(x->trigger));
	endpoint(f->key.a, f->key.port_a, x->a, sizeof(x->a));
	endpoint(f->key.b, f->key.port_b, x->b, sizeof(x->b));
	if (!ft_tcp_flags_format(f->tcp_flags[0] | f->tcp_flags[1], x->flags)[0])
		strcpy(x->flags, "-");
	snprintf(x->proto, sizeof(x->proto), "%s", ft_proto_name(f->key.proto, pbuf, sizeof(pbuf)));
	export_json_time(f->first_ns, x->first, sizeof(x->first));
	export_json_time(f->last_ns, x->last, sizeof(x->last));
	if (ft_community_id(&f->key, 0, x->community_id) != 0)
		strcpy(x->community_id, "-");
	query_vlan_text(f->key.vlan, f->key.vlan_inner, x->vlan, sizeof(x->vlan));
}

void query_vlan_text(unsigned vlan, unsigned inner, char *buf, size_t len)
{
	if (inner)
		snprintf(buf, len, "%u/%u", vlan, inner);
	else if (vlan)
		snprintf(buf, len, "%u", vlan);
	else
		snprintf(buf, len, "-");
}

void query_flow_json(FILE *out, struct archive_rtxn *t, const struct archive_flow_info *f)
{
	struct query_flow_text x;
	char cid[FT_COMMUNITY_ID_LEN + 2] = "null";
	query_flow_fields(t, f, &x);
	if (strcmp(x.community_id, "-") != 0)
		snprintf(cid, sizeof(cid), "\"%s\"", x.community_id);
	fprintf(out,
	        "{\"first\":\"%s\",\"last\":\"%s\",\"duration\":%.9f,\"proto\":\"%s\",\"a\":"
	        "\"%s\",\"b\":\"%s\",\"vlan\":%u,\"vlan_inner\":%u,\"packets_ab\":%" PRIu64
	        ",\"packets_ba\":%" PRIu64 ",\"bytes_ab\":%" PRIu64 ",\"bytes_ba\":%" PRIu64
	        ",\"tcp_flags\":\"%s\",\"community_id\":%s,\"trigger\":",
	        x.first, x.last, (double)(f->last_ns - f->first_ns) / 1e9, x.proto, x.a, x.b,
	        f->key.vlan, f->key.vlan_inner, f->packets[0], f->packets[1], f->bytes[0],
	        f->bytes[1], x.flags, cid);
	export_json_string(out, x.trigger); /* free text: an API reason, a Suricata signature */
	fputs("}\n", out);
}

/* ---- Community ID: the flows of one ID as a filter (query_options.community_id) -------- */

/* The filter text being built: "(flow) or (flow) ..." (open_memstream). */
struct cid_filter {
	FILE *f;
	char *text;
	size_t len;
	size_t flows;
};

/* One flow (a key's filter, and an ICMP refinement or "") into the filter. */
static void cid_add(struct cid_filter *cf, const struct ft_flow_key *key, const char *refine)
{
	char kf[FT_KEYFILTERLEN];
	fprintf(cf->f, "%s(%s%s)", cf->flows++ ? " or " : "",
	        ft_flow_key_filter(key, kf, sizeof(kf)), refine);
}

/* The ID of ICMP(v6) type/code from src to dst, as ft_community_id_packet gives it. */
static int icmp_id_is(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint8_t type,
                      uint8_t code, const char *id)
{
	struct ft_packet p = {.flags = FT_PKT_PARSED | FT_PKT_IP, .proto = proto};
	char got[FT_COMMUNITY_ID_LEN];
	memcpy(p.src, src, 16);
	memcpy(p.dst, dst, 16);
	p.icmp_type = type;
	p.icmp_code = code;
	return ft_community_id_packet(&p, 0, got) == 0 && strcmp(got, id) == 0;
}

/*
 * The refinement for ICMP(v6) type t (code c) sent by src to dst: a request/reply
 * pair's two types, each from its side (the ID of a request from the other
 * host is another), or a one-way type's direction and code.
 */
static void icmp_refine(const struct ft_flow_key *k, const uint8_t *src, const uint8_t *dst,
                        unsigned t, unsigned c, char *buf, size_t len)
{
	const char *l4 = k->proto == 1 ? "icmp" : "icmp6";
	char s[FT_ADDRSTRLEN], d[FT_ADDRSTRLEN];
	int peer = ft_community_id_icmp_peer(k->proto, (uint8_t)t);
	ft_addr_format(src, s, sizeof(s));
	ft_addr_format(dst, d, sizeof(d));
	if (peer >= 0)
		snprintf(buf, len,
		         " and ((src host %s and %s[0] == %u) or (src host %s and %s[0] == %d))", s,
		         l4, t, d, l4, peer);
	else
		snprintf(buf, len, " and src host %s and %s[0] == %u and %s[1] == %u", s, l4, t, l4,
		         c);
}

/*
 * An ICMP flow record joins every ICMP message between its two hosts; the
 * Community ID tells them apart by type.  Tries each type (code 0; the error
 * types with each code they define: destination unreachable, redirect, time
 * exceeded, parameter problem; ICMPv6's errors) in both directions: a
 * request/reply pair is one ID for both directions and both types, a one-way
 * type one per direction and code.  The first that matches is the flow.
 */
static void cid_icmp(struct cid_filter *cf, const struct ft_flow_key *k, const char *id)
{
	static const uint8_t codes4[256] = {[3] = 15, [5] = 3, [11] = 1, [12] = 2};
	static const uint8_t codes6[256] = {[1] = 7, [3] = 1, [4] = 3};
	const uint8_t *codes = k->proto == 1 ? codes4 : codes6;
	char refine[320];
	for (unsigned t = 0; t < 256; t++) {
		for (unsigned c = 0; c <= codes[t]; c++) {
			for (int d = 0; d < 2; d++) {
				const uint8_t *s = d ? k->b : k->a, *r = d ? k->a : k->b;
				if (!icmp_id_is(s, r, k->proto, (uint8_t)t, (uint8_t)c, id))
					continue;
				icmp_refine(k, s, r, t, c, refine, sizeof(refine));
				cid_add(cf, k, refine);
				return;
			}
		}
	}
}

/* query_pvt.h */
int query__community_id_filter(struct archive *a, const char *id, const char *filter,
                               uint64_t from_ns, uint64_t to_ns, char **out, char *errbuf)
{
	struct query_flows_options fo = {.from_ns = from_ns, .to_ns = to_ns};
	struct archive_rtxn *t = NULL;
	struct archive_flow_info *f = NULL;
	struct cid_filter cf = {0};
	uint64_t damaged;
	size_t n = 0;
	*out = NULL;
	if (!ft_community_id_valid(id))
		return snprintf(
		           errbuf, QUERY_ERRBUF_SIZE,
		           "invalid Community ID '%.64s': expected 1: and 28 base64 characters",
		           id),
		       QUERY_E_FILTER;
	int r = archive_rtxn_begin(a, &t);
	if (r == 0)
		r = query_flows(a, t, &fo, &f, &n, &damaged, errbuf);
	else
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "%s", archive_strerror(r));
	if (r == 0 && !(cf.f = open_memstream(&cf.text, &cf.len)))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		char got[FT_COMMUNITY_ID_LEN];
		if (f[i].key.proto == 1 || f[i].key.proto == 58)
			cid_icmp(&cf, &f[i].key, id);
		else if (ft_community_id(&f[i].key, 0, got) == 0 && strcmp(got, id) == 0)
			cid_add(&cf, &f[i].key, "");
	}
	if (cf.f && fclose(cf.f) != 0 && r == 0)
		r = -ENOMEM;
	archive_rtxn_end(t);
	free(f);
	if (r == 0 && cf.flows && filter && filter[0] &&
	    asprintf(out, "(%s) and (%s)", cf.text, filter) < 0)
		r = -ENOMEM, *out = NULL;
	else if (r == 0 && cf.flows && !(filter && filter[0]))
		*out = cf.text, cf.text = NULL;
	if (r == -ENOMEM)
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory");
	free(cf.text);
	return r;
}
