/*
 * dump_bench: the dumper's throughput, the packet parsed once or twice more.
 *
 * The recorder's analyzers parse every packet; the dumper needs the same parse to match
 * the triggered flows' rules (archive/rules.c) and to index the packet (archive/terms.c).
 * Since the analyzers leave their parse in each QQ record's note (archive_dump_opts.parsed)
 * the dumper parses nothing; before, it parsed each packet again for the index and a third
 * time when key rules were live.  This benchmark runs the same chunks through
 * archive_writer_dump_chunk() both ways in one run: "reparse" (the notes ignored: the old
 * behaviour, the baseline) and "parsed" (the notes used), without rules and with 1000
 * live key rules.  Packets are UDP/IPv4 frames over 10 000 flows in random order, filled
 * into a QQ and parsed into the notes (untimed: the analyzers' work either way), then
 * timed from the first chunk to the writer's close, the archive in /dev/shm (no disk).
 * A benchmark, not a test: it prints, never judges.
 *
 *   dump_bench [--quick] [--repeat N]
 *     --quick: fewer packets; --repeat: best of N runs a row (3)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "qq/qq.h"
#include "tools/bench/machine.h"

#define NFLOWS 10000u
#define NRULES 1000u

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Frame of `len` bytes for flow i: 10.0.x.y:port -> 10.200.0.1:53, UDP, payload varied. */
static void make_frame(uint8_t *f, uint32_t len, uint32_t i, uint64_t *seed)
{
	memset(f, 0, len);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((len - 14) >> 8), ip[3] = (uint8_t)(len - 14);
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10, ip[14] = (uint8_t)(i >> 8), ip[15] = (uint8_t)i;
	ip[16] = 10, ip[17] = 200, ip[19] = 1;
	uint8_t *u = ip + 20;
	uint32_t port = 1024 + i;
	u[0] = (uint8_t)(port >> 8), u[1] = (uint8_t)port;
	u[3] = 53;
	u[4] = (uint8_t)((len - 34) >> 8), u[5] = (uint8_t)(len - 34);
	for (uint32_t k = 42; k < len; k++) /* some of it compresses, as real payloads */
		f[k] = (uint8_t)(k % 7 ? k : rng(seed));
}

static struct archive_dump_link bench_link(void *arg, unsigned no)
{
	(void)arg, (void)no;
	return (struct archive_dump_link){.linktype = FT_DLT_EN10MB, .snaplen = 65535};
}

/* A QQ holding npkts frames of `len` bytes, each record's note parsed as an analyzer does. */
static struct qq *fill(uint32_t len, size_t npkts)
{
	struct qq_config qc = {.chunk_size = QQ_DEFAULT_CHUNK,
	                       .producers = 1,
	                       .analyzers = 1,
	                       .high_water = QQ_NO_HOLD,
	                       .mode = QQ_MODE_BACKPRESSURE,
	                       .lazy = 1,
	                       .note_size = sizeof(struct ft_packet)};
	size_t rec = 24 + ((len + 7) & ~7u) + sizeof(struct ft_packet) + 4;
	qc.size = (npkts * rec / QQ_DEFAULT_CHUNK + 8) * QQ_DEFAULT_CHUNK;
	struct qq *q;
	struct qq_producer *p;
	if (qq_create(&qc, &q) || qq_producer_open(q, 0, &p))
		return NULL;
	uint8_t f[2048];
	uint64_t seed = 42;
	for (size_t i = 0; i < npkts; i++) {
		make_frame(f, len, (uint32_t)(i < NFLOWS ? i : rng(&seed) % NFLOWS), &seed);
		if (qq_producer_append(p, 1000000000ull + i, len, len, 0, 0, f))
			return NULL;
	}
	qq_producer_close(p);
	struct qq_peek pk;
	while (qq_analyzer_next(q, 0, &pk, 0) == 0) {
		for (uint32_t i = pk.first; i < pk.end; i++) {
			struct qq_record *r = qq_chunk_record(pk.chunk, i);
			ft_parse(FT_DLT_EN10MB, r->data, r->caplen, qq_record_note(r));
		}
		qq_analyzer_done(q, &pk);
	}
	return q;
}

/* Live key rules for flows 0..NRULES-1 (none of them ever expires). */
static struct archive_rule_view *rules_make(struct archive_rules **rules)
{
	struct archive_rule_view *v;
	if (archive_rules_create(rules) || archive_rule_view_create(*rules, &v))
		return NULL;
	uint8_t f[64];
	uint64_t seed = 1;
	for (uint32_t i = 0; i < NRULES; i++) {
		struct ft_packet pkt;
		struct ft_flow_key key;
		int dir;
		make_frame(f, sizeof(f), i, &seed);
		ft_parse(FT_DLT_EN10MB, f, sizeof(f), &pkt);
		archive_flow_key_of(&pkt, &key, &dir);
		archive_rules_add(*rules, &key, FT_KEY_BIDIRECTIONAL, 0, NULL, 1);
	}
	archive_rule_view_update(v, 0);
	return v;
}

/* Seconds to dump every chunk of a fresh QQ into a new archive (/dev/shm), or -1. */
static double measure(uint32_t len, size_t npkts, int parsed, int rules)
{
	struct qq *q = fill(len, npkts);
	char dir[] = "/dev/shm/dump_bench.XXXXXX";
	struct archive *a;
	struct archive_writer *w;
	struct archive_writer_config wc = {0};
	if (!q || !mkdtemp(dir) || archive_open(dir, ARCHIVE_WRITE | ARCHIVE_CREATE, &a) ||
	    archive_writer_create(a, &wc, &w))
		return -1;
	struct archive_rules *rs = NULL;
	struct archive_dump_opts o = {.link = bench_link, .parsed = parsed};
	o.view = rules ? rules_make(&rs) : NULL;
	struct archive_dump_stats st = {0};
	struct qq_chunk *c;
	int r = 0;
	uint64_t t0 = qq_clock_ns(CLOCK_MONOTONIC);
	while (r == 0 && qq_dumper_next(q, &c, 0) == 0) {
		r = archive_writer_dump_chunk(w, c, &o, &st);
		qq_dumper_release(q, c);
	}
	r |= archive_writer_close(w);
	double secs = (double)(qq_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	archive_close(a);
	if (o.view)
		archive_rule_view_destroy(o.view), archive_rules_destroy(rs);
	qq_destroy(q);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0 || r != 0)
		return -1;
	return secs;
}

static unsigned g_repeat = 3;

/* Mpps of the best of g_repeat runs (the machine may be shared: the least disturbed). */
static double best_mpps(uint32_t len, size_t npkts, int parsed, int rules)
{
	double best = 0;
	for (unsigned i = 0; i < g_repeat; i++) {
		double s = measure(len, npkts, parsed, rules);
		if (s <= 0)
			return -1;
		if ((double)npkts / s / 1e6 > best)
			best = (double)npkts / s / 1e6;
	}
	return best;
}

int main(int argc, char **argv)
{
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0)
			g_repeat = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: dump_bench [--quick] [--repeat N]\n");
			return 2;
		}
	}
	size_t npkts = quick ? 500000 : 2000000;
	bench_machine_line("dump_bench");
	printf("# one dumper thread: archive_writer_dump_chunk() from a QQ to an archive in "
	       "/dev/shm, %zu packets over %u flows, best of %u runs a row\n",
	       npkts, NFLOWS, g_repeat);
	printf("# reparse: the dumper parses each packet again (the baseline, before the "
	       "analyzers' parse was kept in the QQ); parsed: it takes the QQ record's note\n");
	printf("%-6s %-10s %14s %13s %8s\n", "bytes", "rules", "reparse_Mpps", "parsed_Mpps",
	       "gain");
	static const uint32_t lens[] = {64, 600};
	for (size_t l = 0; l < 2; l++)
		for (int rules = 0; rules <= 1; rules++) {
			double base = best_mpps(lens[l], npkts, 0, rules);
			double now = best_mpps(lens[l], npkts, 1, rules);
			if (base <= 0 || now <= 0) {
				fprintf(stderr, "dump_bench: a run failed (memory, /dev/shm?)\n");
				return 1;
			}
			printf("%-6u %-10s %14.3f %13.3f %7.1f%%\n", lens[l],
			       rules ? "1000 keys" : "none", base, now, 100 * (now / base - 1));
			fflush(stdout);
		}
	return 0;
}
