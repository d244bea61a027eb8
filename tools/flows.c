/*
 * flowscope flows: the flows an archive holds, one line each: first and last
 * time, duration, the two endpoints, packets and bytes per direction, TCP
 * flags seen, and the trigger that archived the flow (if any).
 *
 * The index keeps one flow record per flow per segment; the records of the
 * same flow (its key, as archive_flow_key_of() gives it: the 5-tuple and
 * both VLAN ids) from every segment are merged first, so --from/--to see the
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
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "query/query.h"
#include "qq/qq.h"
#include "tools/cli.h"

#define CMD "flows"

enum sort_key { SORT_TIME, SORT_BYTES, SORT_PACKETS, SORT_DURATION };

struct flows_args {
	const char *archive;
	uint64_t from_ns, to_ns;
	int triggered, json;
	uint64_t top;
	enum sort_key sort;
	char *filter;
};

struct collect {
	struct archive_rtxn *t;
	struct archive_flow_info *f;
	size_t n, cap;
	int err;
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
 * it on the packets of their time span.  Returns 0, EXIT_DAMAGED (frames that
 * could not be read were left out, each said on stderr), EXIT_USAGE or
 * EXIT_FAIL (said).
 */
static int keep_matching(const struct flows_args *fa, struct archive *a, struct collect *c)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < c->n; i++) {
		lo = c->f[i].first_ns < lo ? c->f[i].first_ns : lo;
		hi = c->f[i].last_ns > hi ? c->f[i].last_ns : hi;
	}
	struct resolve rs = {.f = c->f, .n = c->n, .hit = calloc(c->n ? c->n : 1, 1)};
	if (!rs.hit) {
		cli_error(CMD, "out of memory");
		return EXIT_FAIL;
	}
	struct query_options o = {.filter = fa->filter,
	                          .from_ns = lo,
	                          .to_ns = hi == UINT64_MAX ? 0 : hi + 1,
	                          .notices = stderr,
	                          .notice_prefix = "flowscope flows: ",
	                          .skip_damaged = 1,
	                          .on_packet = packet_matched,
	                          .on_packet_arg = &rs};
	struct query_result res;
	char err[QUERY_ERRBUF_SIZE];
	int r = c->n ? query_run(a, &o, &res, err) : 0, status = 0;
	if (r) {
		cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		status = r == QUERY_E_FILTER ? EXIT_USAGE : EXIT_FAIL;
	} else if (c->n && res.frames_damaged) {
		status = EXIT_DAMAGED; /* the lines above said what was left out */
	}
	size_t w = 0;
	for (size_t i = 0; i < c->n; i++)
		if (rs.hit[i])
			c->f[w++] = c->f[i];
	c->n = w;
	free(rs.hit);
	return status;
}

/* The flow was active in [from, to): it has a packet there or spans the range. */
static int in_range(const struct flows_args *fa, const struct archive_flow_info *f)
{
	return (!fa->from_ns || f->last_ns >= fa->from_ns) &&
	       (!fa->to_ns || f->first_ns < fa->to_ns);
}

static int sort_cmp_key(const struct archive_flow_info *a, const struct archive_flow_info *b,
                        enum sort_key k)
{
	uint64_t va = 0, vb = 0;
	if (k == SORT_BYTES)
		va = a->bytes[0] + a->bytes[1], vb = b->bytes[0] + b->bytes[1];
	else if (k == SORT_PACKETS)
		va = a->packets[0] + a->packets[1], vb = b->packets[0] + b->packets[1];
	else
		va = a->last_ns - a->first_ns, vb = b->last_ns - b->first_ns;
	return (va < vb) - (va > vb); /* largest first */
}

static enum sort_key g_sort; /* qsort has no context argument */

static int sort_cmp(const void *x, const void *y)
{
	int r = sort_cmp_key(x, y, g_sort);
	return r ? r : time_cmp(x, y);
}

static void endpoint(const uint8_t *addr, uint16_t port, char *buf, size_t len)
{
	char a[FT_ADDRSTRLEN];
	ft_addr_format(addr, a, sizeof(a));
	snprintf(buf, len, ft_addr_is_v4(addr) ? "%s:%u" : "[%s]:%u", a, port);
}

static void print_flow(const struct flows_args *fa, struct archive_rtxn *t,
                       const struct archive_flow_info *f)
{
	char t0[48], t1[48], a[64], b[64], fl[16], trig[256], pbuf[16], vl[16] = "-";
	archive_trigger_name(t, f->trigger, trig, sizeof(trig));
	endpoint(f->key.a, f->key.port_a, a, sizeof(a));
	endpoint(f->key.b, f->key.port_b, b, sizeof(b));
	if (!ft_tcp_flags_format(f->tcp_flags[0] | f->tcp_flags[1], fl)[0])
		strcpy(fl, "-");
	const char *proto = ft_proto_name(f->key.proto, pbuf, sizeof(pbuf));
	double dur = (double)(f->last_ns - f->first_ns) / 1e9;
	cli_format_time(f->first_ns, t0, sizeof(t0));
	cli_format_time(f->last_ns, t1, sizeof(t1));
	if (f->key.vlan_inner)
		snprintf(vl, sizeof(vl), "%u/%u", f->key.vlan, f->key.vlan_inner);
	else if (f->key.vlan)
		snprintf(vl, sizeof(vl), "%u", f->key.vlan);
	if (fa->json) {
		printf("{\"first\":\"%s\",\"last\":\"%s\",\"duration\":%.9f,\"proto\":\"%s\",\"a\":"
		       "\"%s\",\"b\":\"%"
		       "s\","
		       "\"vlan\":%u,\"vlan_inner\":%u,\"packets_ab\":%" PRIu64
		       ",\"packets_ba\":%" PRIu64 ",\"bytes_ab\":%" PRIu64 ",\"bytes_ba\":%" PRIu64
		       ",\"tcp_flags\":\"%s\",\"trigger\":\"%s\"}\n",
		       t0, t1, dur, proto, a, b, f->key.vlan, f->key.vlan_inner, f->packets[0],
		       f->packets[1], f->bytes[0], f->bytes[1], fl, trig);
		return;
	}
	printf("%-30s %10.3f %-5s %-40s %-40s %-9s %8" PRIu64 " %8" PRIu64 " %11" PRIu64
	       " %11" PRIu64 " %-8s %s\n",
	       t0, dur, proto, a, b, vl, f->packets[0], f->packets[1], f->bytes[0], f->bytes[1], fl,
	       trig[0] ? trig : "-");
}

static int parse_args(int argc, char **argv, struct flows_args *fa)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"triggered", no_argument, NULL, 'T'},
	    {"json", no_argument, NULL, 'j'},
	    {"top", required_argument, NULL, 'n'},
	    {"sort", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, r;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		uint64_t *tm = c == 'f' ? &fa->from_ns : &fa->to_ns;
		switch (c) {
		case 'a':
			fa->archive = optarg;
			break;
		case 'f':
		case 't':
			if ((r = cli_parse_time(optarg, cli_now_ns(), tm)) != 0) {
				cli_time_error(CMD, c == 'f' ? "--from" : "--to", optarg, r);
				return EXIT_USAGE;
			}
			break;
		case 'T':
			fa->triggered = 1;
			break;
		case 'j':
			fa->json = 1;
			break;
		case 'n':
			if (cli_parse_uint(optarg, 1, UINT64_MAX, &fa->top) != 0) {
				cli_error(CMD, "--top '%s': expected a number of flows", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			fa->sort = strcmp(optarg, "bytes") == 0      ? SORT_BYTES
			           : strcmp(optarg, "packets") == 0  ? SORT_PACKETS
			           : strcmp(optarg, "duration") == 0 ? SORT_DURATION
			                                             : (enum sort_key) - 1;
			if ((int)fa->sort < 0) {
				cli_error(CMD, "--sort '%s': expected bytes, packets or duration",
				          optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: flowscope flows --archive DIR [--from T] [--to T] "
			       "[--triggered] [--json]\n"
			       "                      [--top N] [--sort bytes|packets|duration] "
			       "[FILTER...]\n"
			       "FILTER is a tcpdump expression: the flows with a matching packet "
			       "are listed\n");
			return -1;
		default:
			return cli_usage_error(CMD, argv, optind, optopt);
		}
	}
	if (!fa->archive) {
		cli_error(CMD, "--archive DIR is required");
		return EXIT_USAGE;
	}
	if (fa->top && fa->sort == SORT_TIME)
		fa->sort = SORT_BYTES;
	if (optind < argc) {
		char err[512];
		struct bpf_program prog; /* refused up front, whatever the archive holds */
		fa->filter = cli_join_args(argc, argv, optind);
		if (!fa->filter) {
			cli_error(CMD, "out of memory");
			return EXIT_FAIL;
		}
		if (ft_bpf_compile(1, 262144, fa->filter, &prog, err, sizeof(err)) != 0) {
			cli_error(CMD, "%s", err);
			return EXIT_USAGE;
		}
		pcap_freecode(&prog);
	}
	return 0;
}

/* Keeps the flows asked for (in key order), then orders and cuts them; 0 or an exit status. */
static int select_flows(const struct flows_args *fa, struct archive *a, struct collect *c)
{
	size_t w = 0;
	for (size_t i = 0; i < c->n; i++)
		if ((!fa->triggered || c->f[i].trigger) && in_range(fa, &c->f[i]))
			c->f[w++] = c->f[i];
	c->n = w;
	int status = fa->filter ? keep_matching(fa, a, c) : 0;
	if (status != 0 && status != EXIT_DAMAGED)
		return status;
	g_sort = fa->sort;
	if (c->n > 1)
		qsort(c->f, c->n, sizeof(*c->f), fa->sort == SORT_TIME ? time_cmp : sort_cmp);
	if (fa->top && c->n > fa->top)
		c->n = fa->top;
	return status;
}

int flows_main(int argc, char **argv)
{
	struct flows_args fa = {0};
	int r = parse_args(argc, argv, &fa);
	if (r) {
		free(fa.filter);
		return r < 0 ? EXIT_OK : r;
	}
	struct archive *a = NULL;
	struct collect c = {0};
	int status = EXIT_FAIL;
	/* every segment: a flow's records outside the range still count (merged first) */
	if ((r = archive_open(fa.archive, ARCHIVE_READ, &a)) == 0 &&
	    (r = archive_rtxn_begin(a, &c.t)) == 0)
		r = archive_segments(c.t, 0, 0, seg_flows, &c);
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	} else {
		cli_check_segment_files(CMD, a, c.t, fa.archive); /* flows come from the index */
		merge_segments(&c);
		status = select_flows(&fa, a, &c);
	}
	if (status == EXIT_OK || status == EXIT_DAMAGED) {
		if (!fa.json)
			printf("%-30s %10s %-5s %-40s %-40s %-9s %8s %8s %11s %11s %-8s %s\n",
			       "first", "duration", "proto", "a", "b", "vlan", "pkts>", "pkts<",
			       "bytes>", "bytes<", "flags", "trigger");
		for (size_t i = 0; i < c.n; i++)
			print_flow(&fa, c.t, &c.f[i]);
	}
	free(c.f);
	archive_rtxn_end(c.t);
	archive_close(a);
	free(fa.filter);
	return status;
}
