/*
 * flowscope flows: the flows an archive holds, one line each: first and last
 * time, duration, the two endpoints, packets and bytes per direction, TCP
 * flags seen, and the trigger that archived the flow (if any).
 *
 * The index keeps one flow record per flow per segment; records of the same
 * flow (key and VLAN) from several segments are merged here.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "tools/cli.h"

#define CMD "flows"

struct flows_args {
	const char *archive;
	uint64_t from_ns, to_ns;
	int triggered, json;
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

static void flags_str(uint8_t f, char *buf)
{
	const char *names = "FSRPAUEC";
	int n = 0;
	for (int i = 0; i < 8; i++)
		if (f & (1u << i))
			buf[n++] = names[i];
	buf[n] = '\0';
	if (!n)
		strcpy(buf, "-");
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
	char t0[48], a[64], b[64], fl[16], trig[256], pbuf[16];
	archive_trigger_name(t, f->trigger, trig, sizeof(trig));
	endpoint(f->key.a, f->key.port_a, a, sizeof(a));
	endpoint(f->key.b, f->key.port_b, b, sizeof(b));
	flags_str(f->tcp_flags[0] | f->tcp_flags[1], fl);
	const char *proto = ft_proto_name(f->key.proto, pbuf, sizeof(pbuf));
	double dur = (double)(f->last_ns - f->first_ns) / 1e9;
	cli_format_time(f->first_ns, t0, sizeof(t0));
	if (fa->json) {
		printf("{\"first\":\"%s\",\"duration\":%.9f,\"proto\":\"%s\",\"a\":\"%s\",\"b\":\"%"
		       "s\","
		       "\"vlan\":%u,\"packets_ab\":%" PRIu64 ",\"packets_ba\":%" PRIu64
		       ",\"bytes_ab\":%" PRIu64 ",\"bytes_ba\":%" PRIu64
		       ",\"tcp_flags\":\"%s\",\"trigger\":\"%s\"}\n",
		       t0, dur, proto, a, b, f->key.vlan, f->packets[0], f->packets[1], f->bytes[0],
		       f->bytes[1], fl, trig);
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
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		uint64_t *tm = c == 'f' ? &fa->from_ns : &fa->to_ns;
		switch (c) {
		case 'a':
			fa->archive = optarg;
			break;
		case 'f':
		case 't':
			if (cli_parse_time(optarg, cli_now_ns(), tm) != 0) {
				cli_error(CMD, "%s '%s': not a time", c == 'f' ? "--from" : "--to",
				          optarg);
				return EXIT_USAGE;
			}
			break;
		case 'T':
			fa->triggered = 1;
			break;
		case 'j':
			fa->json = 1;
			break;
		case 'h':
			printf("usage: flowscope flows --archive DIR [--from T] [--to T] "
			       "[--triggered] "
			       "[--json]\n");
			return -1;
		default:
			return cli_usage_error(CMD, argv, optind, optopt);
		}
	}
	if (!fa->archive || optind < argc) {
		cli_error(
		    CMD, optind < argc ? "unexpected argument '%s'" : "--archive DIR is required%s",
		    optind < argc ? argv[optind] : "");
		return EXIT_USAGE;
	}
	return 0;
}

int flows_main(int argc, char **argv)
{
	struct flows_args fa = {0};
	int r = parse_args(argc, argv, &fa);
	if (r)
		return r < 0 ? EXIT_OK : r;
	struct archive *a = NULL;
	struct collect c = {0};
	if ((r = archive_open(fa.archive, ARCHIVE_READ, &a)) == 0 &&
	    (r = archive_rtxn_begin(a, &c.t)) == 0)
		r = archive_segments(c.t, fa.from_ns, fa.to_ns, seg_flows, &c);
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	} else {
		merge_segments(&c);
		if (!fa.json)
			printf("%-30s %10s %-5s %-40s %-40s %8s %8s %11s %11s %-8s %s\n", "first",
			       "duration", "proto", "a", "b", "pkts>", "pkts<", "bytes>", "bytes<",
			       "flags", "trigger");
		for (size_t i = 0; i < c.n; i++)
			if (!fa.triggered || c.f[i].trigger)
				print_flow(&fa, c.t, &c.f[i]);
	}
	free(c.f);
	archive_rtxn_end(c.t);
	archive_close(a);
	return r ? EXIT_FAIL : EXIT_OK;
}
