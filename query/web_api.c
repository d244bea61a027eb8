/*
 * The web view's two endpoints (docs/api.md, docs/web.md):
 *
 * GET /api/v1/timeline: packets and wire bytes per time bucket, from the
 * index alone (no segment is read), so it costs the same on a 10 GB archive
 * as on a small one: one pass over the frames of the segments that meet the
 * range.  A frame's packets are spread evenly over its time span [min, max]
 * (frames are short: one chunk's packets), each bucket getting the part of
 * the span it holds, in whole packets that add up exactly; a frame's wire
 * bytes are its segment's, shared out by the frame's share of the segment's
 * uncompressed bytes (the index keeps wire bytes per segment, not per frame).
 * Over the whole archive the totals are info's packets and wire bytes.
 *
 * GET /api/v1/flows/summary: the flows /api/v1/flows selects for the same
 * filter, range and triggered, counted and summed, with the top talkers (an
 * address's bytes over its flows, both directions) and top ports (a flow
 * counts for the lower of its two ports: the service's, as a rule).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"
#include "qq/qq.h"
#include "query/web_pvt.h"

#define TIMELINE_BUCKETS 300 /* default */
#define TIMELINE_MAX_BUCKETS 4000
#define SUMMARY_TOP 10 /* default talkers and ports */
#define SUMMARY_MAX_TOP 100

/* ---- the timeline -------------------------------------------------------------------------- */

struct timeline {
	struct archive_rtxn *t;
	uint64_t from, to, width; /* [from, to) in n buckets of width ns (the last may be short) */
	uint64_t n;
	uint64_t *packets, *bytes; /* n each */
	uint64_t segments, frames, total_packets, total_bytes;
	struct archive_frame_info *f; /* one segment's frames */
	size_t nf, cap;
};

/* The part of total that lies before t, for a total spread evenly over [lo, hi]. */
static uint64_t spread_before(uint64_t total, uint64_t t, uint64_t lo, uint64_t hi)
{
	if (t <= lo)
		return 0;
	if (t > hi)
		return total;
	return (uint64_t)((unsigned __int128)total * (t - lo) / (hi - lo + 1));
}

/* Adds a frame's packets and bytes to the buckets its span meets. */
static void timeline_add(struct timeline *tl, uint64_t lo, uint64_t hi, uint64_t packets,
                         uint64_t bytes)
{
	if (hi < tl->from || lo >= tl->to)
		return;
	uint64_t first = (lo > tl->from ? lo - tl->from : 0) / tl->width;
	uint64_t last = ((hi < tl->to ? hi : tl->to - 1) - tl->from) / tl->width;
	for (uint64_t i = first; i <= last; i++) {
		uint64_t b0 = tl->from + i * tl->width, b1 = b0 + tl->width;
		b1 = b1 < tl->to ? b1 : tl->to;
		uint64_t p =
		    spread_before(packets, b1, lo, hi) - spread_before(packets, b0, lo, hi);
		uint64_t w = spread_before(bytes, b1, lo, hi) - spread_before(bytes, b0, lo, hi);
		tl->packets[i] += p;
		tl->bytes[i] += w;
		tl->total_packets += p;
		tl->total_bytes += w;
	}
}

static int frame_keep(const struct archive_frame_info *f, void *arg)
{
	struct timeline *tl = arg;
	if (qq_grow((void **)&tl->f, &tl->cap, tl->nf + 1, sizeof(*tl->f)) != 0)
		return -ENOMEM;
	tl->f[tl->nf++] = *f;
	return 0;
}

/* A segment's frames into the buckets, its wire bytes shared out by uncompressed bytes. */
static int timeline_segment(const struct archive_segment_info *s, void *arg)
{
	struct timeline *tl = arg;
	tl->nf = 0;
	int e = archive_frames(tl->t, s->id, frame_keep, tl);
	if (e)
		return e;
	uint64_t usum = 0, ucum = 0, wprev = 0;
	for (size_t i = 0; i < tl->nf; i++)
		usum += tl->f[i].usize;
	for (size_t i = 0; i < tl->nf; i++) {
		ucum += tl->f[i].usize;
		uint64_t w = usum ? (uint64_t)((unsigned __int128)s->wire_bytes * ucum / usum) : 0;
		timeline_add(tl, tl->f[i].min_ns, tl->f[i].max_ns, tl->f[i].packets, w - wprev);
		wprev = w;
	}
	tl->segments++;
	tl->frames += tl->nf;
	return 0;
}

static void json_array(FILE *f, const char *name, const uint64_t *v, uint64_t n)
{
	fprintf(f, ", \"%s\": [", name);
	for (uint64_t i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu64, i ? "," : "", v[i]);
	fputc(']', f);
}

static enum MHD_Result timeline_answer(struct MHD_Connection *c, const struct timeline *tl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return api_error(c, 503, "out of memory");
	fprintf(f,
	        "{\"from_ns\": %" PRIu64 ", \"to_ns\": %" PRIu64 ", \"bucket_ns\": %" PRIu64
	        ", \"segments\": %" PRIu64 ", \"frames\": %" PRIu64 ", \"packets\": %" PRIu64
	        ", \"wire_bytes\": %" PRIu64,
	        tl->from, tl->to, tl->width, tl->segments, tl->frames, tl->total_packets,
	        tl->total_bytes);
	json_array(f, "bucket_packets", tl->packets, tl->n);
	json_array(f, "bucket_bytes", tl->bytes, tl->n);
	fprintf(f, "}\n");
	if (fclose(f) != 0) {
		free(text);
		return api_error(c, 503, "out of memory");
	}
	enum MHD_Result ret = api_json(c, 200, text, len);
	free(text);
	return ret;
}

static const char *const timeline_params[] = {"from", "to", "buckets", NULL};

/* The range (the archive's when not given) and its buckets; 0 or -1 with q's error. */
static int timeline_range(struct api_request *q, struct timeline *tl)
{
	struct archive_summary s;
	uint64_t n = TIMELINE_BUCKETS;
	if (api_params_known(q, timeline_params) || api_param_time(q, "from", &tl->from) ||
	    api_param_time(q, "to", &tl->to) || api_param_uint(q, "buckets", &n))
		return -1;
	if (n > TIMELINE_MAX_BUCKETS)
		return api_request_fail(q, 400, "buckets %" PRIu64 ": at most %d", n,
		                        TIMELINE_MAX_BUCKETS),
		       -1;
	int e = archive_summary(tl->t, &s);
	if (e)
		return api_request_fail(q, 500, "cannot read the archive: %s", archive_strerror(e)),
		       -1;
	if (!api_param(q, "from"))
		tl->from = s.packets ? s.min_ns : 0;
	if (!api_param(q, "to"))
		tl->to = s.packets ? s.max_ns + 1 : tl->from + 1;
	if (tl->from >= tl->to)
		return api_request_fail(q, 400, "from is not before to: the time range is empty"),
		       -1;
	tl->width = (tl->to - tl->from + n - 1) / n;
	tl->n = (tl->to - tl->from + tl->width - 1) / tl->width;
	return 0;
}

enum MHD_Result web_timeline(struct api_request *q, struct MHD_Connection *c)
{
	struct timeline tl = {0};
	int e = archive_rtxn_begin(q->s->c.archive, &tl.t);
	if (e)
		return api_error(c, 500, "cannot read the archive: %s", archive_strerror(e));
	enum MHD_Result ret;
	if (timeline_range(q, &tl) != 0) {
		ret = api_error(c, q->status, "%s", q->error);
	} else if (!(tl.packets = calloc(tl.n, sizeof(uint64_t))) ||
	           !(tl.bytes = calloc(tl.n, sizeof(uint64_t)))) {
		ret = api_error(c, 503, "out of memory");
	} else if ((e = archive_segments(tl.t, tl.from, tl.to, timeline_segment, &tl)) != 0) {
		ret = api_error(c, 500, "cannot read the archive's index: %s", archive_strerror(e));
	} else {
		ret = timeline_answer(c, &tl);
	}
	archive_rtxn_end(tl.t);
	free(tl.packets);
	free(tl.bytes);
	free(tl.f);
	return ret;
}

/* ---- the flows' summary -------------------------------------------------------------------- */

/* One address's or port's share: key then totals (sorted by key to add up, then by bytes). */
struct tally {
	uint8_t key[17]; /* an address (16 bytes), or proto then the port (big-endian) */
	uint64_t bytes, packets, flows;
};

static int tally_key_cmp(const void *x, const void *y)
{
	return memcmp(((const struct tally *)x)->key, ((const struct tally *)y)->key, 17);
}

static int tally_bytes_cmp(const void *x, const void *y)
{
	const struct tally *a = x, *b = y;
	if (a->bytes != b->bytes)
		return (a->bytes < b->bytes) - (a->bytes > b->bytes);
	return tally_key_cmp(x, y);
}

/* Adds up the rows of equal key and orders them by bytes, largest first; the rows left. */
static size_t tally_rank(struct tally *t, size_t n)
{
	if (n == 0)
		return 0;
	qsort(t, n, sizeof(*t), tally_key_cmp);
	size_t w = 0;
	for (size_t i = 1; i < n; i++) {
		if (memcmp(t[w].key, t[i].key, 17) != 0) {
			t[++w] = t[i];
			continue;
		}
		t[w].bytes += t[i].bytes;
		t[w].packets += t[i].packets;
		t[w].flows += t[i].flows;
	}
	qsort(t, w + 1, sizeof(*t), tally_bytes_cmp);
	return w + 1;
}

static void tally_json(FILE *out, const struct tally *t, int port)
{
	char a[FT_ADDRSTRLEN], pbuf[16];
	if (port) {
		fprintf(out, "{\"proto\": \"%s\", \"port\": %u",
		        ft_proto_name(t->key[0], pbuf, sizeof(pbuf)),
		        (unsigned)(t->key[1] << 8 | t->key[2]));
	} else {
		ft_addr_format(t->key, a, sizeof(a));
		fprintf(out, "{\"addr\": \"%s\"", a);
	}
	fprintf(out, ", \"bytes\": %" PRIu64 ", \"packets\": %" PRIu64 ", \"flows\": %" PRIu64 "}",
	        t->bytes, t->packets, t->flows);
}

static void tally_list(FILE *out, const char *name, struct tally *t, size_t n, uint64_t top,
                       int port)
{
	n = tally_rank(t, n);
	fprintf(out, ", \"%s\": [", name);
	for (size_t i = 0; i < n && i < top; i++) {
		fputs(i ? ", " : "", out);
		tally_json(out, &t[i], port);
	}
	fputc(']', out);
}

struct summary {
	struct tally *hosts, *ports; /* 2 per flow, 1 per flow with ports */
	size_t nh, np;
	uint64_t packets, bytes;
};

static void summary_add(struct summary *s, const struct archive_flow_info *f)
{
	uint64_t p = f->packets[0] + f->packets[1], b = f->bytes[0] + f->bytes[1];
	s->packets += p;
	s->bytes += b;
	struct tally *h = &s->hosts[s->nh];
	s->nh += 2;
	memset(h, 0, 2 * sizeof(*h));
	memcpy(h[0].key, f->key.a, 16);
	memcpy(h[1].key, f->key.b, 16);
	h[0].bytes = h[1].bytes = b;
	h[0].packets = h[1].packets = p;
	h[0].flows = h[1].flows = 1;
	if (!f->key.port_a && !f->key.port_b)
		return;
	uint16_t port = f->key.port_a < f->key.port_b ? f->key.port_a : f->key.port_b;
	struct tally *t = &s->ports[s->np++];
	*t = (struct tally){.key = {f->key.proto, (uint8_t)(port >> 8), (uint8_t)port},
	                    .bytes = b,
	                    .packets = p,
	                    .flows = 1};
}

static enum MHD_Result summary_answer(struct MHD_Connection *c, const struct archive_flow_info *f,
                                      size_t n, uint64_t top, uint64_t damaged)
{
	struct summary s = {.hosts = malloc((2 * n + 1) * sizeof(struct tally)),
	                    .ports = malloc((n + 1) * sizeof(struct tally))};
	char *text = NULL;
	size_t len = 0;
	FILE *out = s.hosts && s.ports ? open_memstream(&text, &len) : NULL;
	if (!out) {
		free(s.hosts);
		free(s.ports);
		return api_error(c, 503, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		summary_add(&s, &f[i]);
	fprintf(out,
	        "{\"flows\": %zu, \"packets\": %" PRIu64 ", \"bytes\": %" PRIu64
	        ", \"frames_damaged\": %" PRIu64,
	        n, s.packets, s.bytes, damaged);
	tally_list(out, "top_talkers", s.hosts, s.nh, top, 0);
	tally_list(out, "top_ports", s.ports, s.np, top, 1);
	fprintf(out, "}\n");
	int bad = fclose(out) != 0;
	free(s.hosts);
	free(s.ports);
	enum MHD_Result ret =
	    bad ? api_error(c, 503, "out of memory") : api_json(c, 200, text, len);
	free(text);
	return ret;
}

static const char *const summary_params[] = {"filter", "from", "to", "triggered", "top", NULL};

/* The flows' options (as /api/v1/flows takes them, without order and paging), *top. */
static int summary_options(struct api_request *q, struct query_flows_options *o, uint64_t *top)
{
	if (api_params_known(q, summary_params) || api_flows_options(q, o))
		return -1;
	*top = o->top ? o->top : SUMMARY_TOP;
	o->top = 0;
	if (*top > SUMMARY_MAX_TOP)
		return api_request_fail(q, 400, "top %" PRIu64 ": at most %d", *top,
		                        SUMMARY_MAX_TOP),
		       -1;
	return 0;
}

enum MHD_Result web_flows_summary(struct api_request *q, struct MHD_Connection *c)
{
	struct query_flows_options o;
	struct archive_rtxn *t;
	struct archive_flow_info *f = NULL;
	size_t n = 0;
	uint64_t top, damaged = 0;
	char err[QUERY_ERRBUF_SIZE];
	if (summary_options(q, &o, &top) != 0)
		return api_error(c, q->status, "%s", q->error);
	unsigned running = api_slot_take(q->s);
	if (running)
		return api_error(c, 429, "%u queries are running (the server's --max-queries)",
		                 running);
	int rc = archive_rtxn_begin(q->s->c.archive, &t);
	if (rc == 0) {
		rc = query_flows(q->s->c.archive, t, &o, &f, &n, &damaged, err);
		archive_rtxn_end(t);
	} else {
		snprintf(err, sizeof(err), "cannot read the archive: %s", archive_strerror(rc));
	}
	api_slot_put(q->s);
	enum MHD_Result ret = rc ? api_error(c, rc == QUERY_E_FILTER ? 400 : 500, "%s",
	                                     err[0] ? err : query_strerror(rc))
	                         : summary_answer(c, f, n, top, damaged);
	free(f);
	return ret;
}
