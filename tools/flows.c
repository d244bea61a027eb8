/*
 * flowscope flows: the flows an archive holds, one line each: first and last
 * time, duration, the two endpoints, packets and bytes per direction, TCP
 * flags seen, and the trigger that archived the flow (if any).
 *
 * The index keeps one flow record per flow per segment; records of the same
 * flow (key and VLAN) from several segments are merged here.
 *
 * A filter selects flows, not packets: it is run on a representative packet
 * of each direction of the flow (Ethernet, the VLAN tag, the IP header with
 * the flow's addresses and protocol, a TCP/UDP/SCTP header with its ports and,
 * for TCP, every flag seen in that direction), and the flow is listed when
 * a direction that carried packets matches.  So host, net, port, protocol, VLAN and TCP-flag
 * primitives mean what they mean for packets; payload and length primitives
 * see those header-only packets.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
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
	struct bpf_program prog;
	int have_prog;
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
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 256;
		struct archive_flow_info *n = realloc(c->f, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->f = n;
		c->cap = nc;
	}
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

/* Merges the records of one flow from several segments (sorted by key). */
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
	qsort(c->f, c->n, sizeof(*c->f), time_cmp);
}

/* The representative packet of one direction (see the file comment); returns its length. */
static uint32_t flow_packet(const struct archive_flow_info *f, int dir, uint8_t *p)
{
	const uint8_t *src = dir ? f->key.b : f->key.a, *dst = dir ? f->key.a : f->key.b;
	uint16_t sp = dir ? f->key.port_b : f->key.port_a, dp = dir ? f->key.port_a : f->key.port_b;
	int v4 = ft_addr_is_v4(src);
	uint32_t n = 12, l4len = f->key.proto == 6 ? 20 : 8;
	memset(p, 0, 128);
	if (f->key.vlan) {
		p[n++] = 0x81, p[n++] = 0x00;
		p[n++] = (uint8_t)(f->key.vlan >> 8), p[n++] = (uint8_t)f->key.vlan;
	}
	p[n++] = v4 ? 0x08 : 0x86, p[n++] = v4 ? 0x00 : 0xdd;
	uint8_t *ip = p + n;
	if (v4) {
		ip[0] = 0x45, ip[2] = 0, ip[3] = (uint8_t)(20 + l4len), ip[8] = 64,
		ip[9] = f->key.proto;
		memcpy(ip + 12, src + 12, 4);
		memcpy(ip + 16, dst + 12, 4);
		n += 20;
	} else {
		ip[0] = 0x60, ip[5] = (uint8_t)l4len, ip[6] = f->key.proto, ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		n += 40;
	}
	uint8_t *l4 = p + n;
	l4[0] = (uint8_t)(sp >> 8), l4[1] = (uint8_t)sp, l4[2] = (uint8_t)(dp >> 8),
	l4[3] = (uint8_t)dp;
	if (f->key.proto == 6) {
		l4[12] = 0x50;
		l4[13] = f->tcp_flags[dir];
	}
	return n + l4len;
}

static int flow_matches(const struct flows_args *fa, const struct archive_flow_info *f)
{
	uint8_t p[128];
	if (!fa->have_prog)
		return 1;
	for (int dir = 0; dir < 2; dir++) {
		if (!f->packets[dir]) /* a direction nothing was sent in matches nothing */
			continue;
		struct pcap_pkthdr h = {.caplen = flow_packet(f, dir, p)};
		h.len = h.caplen;
		if (pcap_offline_filter(&fa->prog, &h, p))
			return 1;
	}
	return 0;
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
	char t0[48], t1[48], a[64], b[64], fl[16], trig[256], pbuf[16];
	archive_trigger_name(t, f->trigger, trig, sizeof(trig));
	endpoint(f->key.a, f->key.port_a, a, sizeof(a));
	endpoint(f->key.b, f->key.port_b, b, sizeof(b));
	if (!ft_tcp_flags_format(f->tcp_flags[0] | f->tcp_flags[1], fl)[0])
		strcpy(fl, "-");
	const char *proto = ft_proto_name(f->key.proto, pbuf, sizeof(pbuf));
	double dur = (double)(f->last_ns - f->first_ns) / 1e9;
	cli_format_time(f->first_ns, t0, sizeof(t0));
	cli_format_time(f->last_ns, t1, sizeof(t1));
	if (fa->json) {
		printf("{\"first\":\"%s\",\"last\":\"%s\",\"duration\":%.9f,\"proto\":\"%s\",\"a\":"
		       "\"%s\",\"b\":\"%"
		       "s\","
		       "\"vlan\":%u,\"packets_ab\":%" PRIu64 ",\"packets_ba\":%" PRIu64
		       ",\"bytes_ab\":%" PRIu64 ",\"bytes_ba\":%" PRIu64
		       ",\"tcp_flags\":\"%s\",\"trigger\":\"%s\"}\n",
		       t0, t1, dur, proto, a, b, f->key.vlan, f->packets[0], f->packets[1],
		       f->bytes[0], f->bytes[1], fl, trig);
		return;
	}
	printf("%-30s %10.3f %-5s %-40s %-40s %8" PRIu64 " %8" PRIu64 " %11" PRIu64 " %11" PRIu64
	       " %-8s %s\n",
	       t0, dur, proto, a, b, f->packets[0], f->packets[1], f->bytes[0], f->bytes[1], fl,
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
			       "FILTER is a tcpdump expression run on each direction of a flow "
			       "(headers only)\n");
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
		fa->filter = cli_join_args(argc, argv, optind);
		if (!fa->filter) {
			cli_error(CMD, "out of memory");
			return EXIT_FAIL;
		}
		if (ft_bpf_compile(1, 262144, fa->filter, &fa->prog, err, sizeof(err)) != 0) {
			cli_error(CMD, "%s", err);
			return EXIT_USAGE;
		}
		fa->have_prog = 1;
	}
	return 0;
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
	if ((r = archive_open(fa.archive, ARCHIVE_READ, &a)) == 0 &&
	    (r = archive_rtxn_begin(a, &c.t)) == 0)
		r = archive_segments(c.t, fa.from_ns, fa.to_ns, seg_flows, &c);
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	} else {
		cli_check_segment_files(CMD, a, c.t, fa.archive); /* flows come from the index */
		merge_segments(&c);
		if (!fa.json)
			printf("%-30s %10s %-5s %-40s %-40s %8s %8s %11s %11s %-8s %s\n", "first",
			       "duration", "proto", "a", "b", "pkts>", "pkts<", "bytes>", "bytes<",
			       "flags", "trigger");
		size_t w = 0; /* keep the flows asked for, then order and cut */
		for (size_t i = 0; i < c.n; i++)
			if ((!fa.triggered || c.f[i].trigger) && in_range(&fa, &c.f[i]) &&
			    flow_matches(&fa, &c.f[i]))
				c.f[w++] = c.f[i];
		c.n = w;
		if (fa.sort != SORT_TIME) {
			g_sort = fa.sort;
			if (c.n > 1)
				qsort(c.f, c.n, sizeof(*c.f), sort_cmp);
		}
		if (fa.top && c.n > fa.top)
			c.n = fa.top;
		for (size_t i = 0; i < c.n; i++)
			print_flow(&fa, c.t, &c.f[i]);
	}
	free(c.f);
	archive_rtxn_end(c.t);
	archive_close(a);
	if (fa.have_prog)
		pcap_freecode(&fa.prog);
	free(fa.filter);
	return r ? EXIT_FAIL : EXIT_OK;
}
