/*
 * trigger_bench: what triggers from outside (flowtrack/trigger.c) cost the
 * analyzer, and how long a trigger waits for its answer.
 *
 * Rate: one analyzer's own flow tracking as record runs it (parse a burst,
 * ft_table_track_burst with is_new, ft_trigger_new_flows) over 64-byte UDP
 * frames of FLOWS flows in random order (every flow new once, as in
 * flow_bench), in Mpps: without a hub (the baselines of the same run: flows
 * new, or all in the table already), then with N triggered flows (marked:
 * nothing per packet; against the warm baseline), N pending flow triggers (a
 * hash lookup per new flow), N pending filter triggers (a BPF run each per
 * new flow, in both directions: 10 and 1000 only, 100 k would be 200 k BPF
 * runs per new flow).  Each rate: the best of REPEAT runs.  Latency: post -> answer while an analyzer thread
 * tracks packets and polls after every 1024 (a QQ range), p50 and p99 of
 * 2000 posts.  A benchmark, not a test: it prints, never judges.
 *
 *   trigger_bench [--quick]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowtrack/flowtrack.h"
#include "qq/qq.h"
#include "tools/bench/machine.h"

#define FRAME 64
#define RANGE 1024 /* packets between polls: a QQ range */

static size_t g_flows = 262144, g_pkts = 4u << 20;

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Frame of flow i: 10.a.b.c:port -> 10.200.x.1:53, UDP. */
static void make_frame(uint8_t *f, uint32_t i)
{
	memset(f, 0, FRAME);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = FRAME - 14;
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10, ip[13] = (uint8_t)(i >> 16), ip[14] = (uint8_t)(i >> 8), ip[15] = (uint8_t)i;
	ip[16] = 10, ip[17] = 200, ip[18] = (uint8_t)(i >> 24), ip[19] = 1;
	uint32_t port = 1024 + i % 50000;
	ip[20] = (uint8_t)(port >> 8);
	ip[21] = (uint8_t)port;
	ip[23] = 53;
	ip[25] = FRAME - 34;
}

static uint8_t *packets_make(void)
{
	uint8_t *tmpl = malloc(g_flows * FRAME), *p = malloc(g_pkts * FRAME);
	uint64_t s = 42;
	if (!tmpl || !p || !g_flows)
		exit(1);
	for (size_t i = 0; i < g_flows; i++)
		make_frame(tmpl + i * FRAME, (uint32_t)i);
	for (size_t i = 0; i < g_pkts; i++) /* every flow once first, then random ones */
		memcpy(p + i * FRAME, tmpl + (i < g_flows ? i : rng(&s) % g_flows) * FRAME, FRAME);
	free(tmpl);
	return p;
}

static void ev_add(void *arg, const struct ft_flow_key *key, uint16_t tag)
{
	(void)arg, (void)key, (void)tag;
}

static void ev_expire(void *arg, const struct ft_flow_key *key, uint64_t last)
{
	(void)arg, (void)key, (void)last;
}

/* The analyzer's work on packets [from, to) of pkts, polling the hub every RANGE. */
static void track(struct ft_table *t, struct ft_trigger_hub *h, const uint8_t *pkts, size_t from,
                  size_t to)
{
	struct ft_packet p[FT_ENGINE_BURST];
	struct ft_packet_ctx c[FT_ENGINE_BURST];
	uint8_t is_new[FT_ENGINE_BURST];
	for (size_t i = from; i < to; i += FT_ENGINE_BURST) {
		unsigned n = to - i < FT_ENGINE_BURST ? (unsigned)(to - i) : FT_ENGINE_BURST;
		for (unsigned j = 0; j < n; j++) {
			const uint8_t *f = pkts + (i + j) * FRAME;
			ft_parse(FT_DLT_EN10MB, f, FRAME, &p[j]);
			c[j] = (struct ft_packet_ctx){.ts_ns = 1000000000ull + i + j,
			                              .caplen = FRAME,
			                              .wirelen = FRAME,
			                              .linktype = FT_DLT_EN10MB,
			                              .data = f,
			                              .pkt = &p[j]};
		}
		ft_table_track_burst(t, c, n, FT_KEY_BIDIRECTIONAL, 0, NULL, h ? is_new : NULL);
		if (h)
			ft_trigger_new_flows(h, 0, t, c, is_new, n);
		if (h && (i / FT_ENGINE_BURST) % (RANGE / FT_ENGINE_BURST) == 0)
			ft_trigger_poll(h, 0, t, qq_clock_ns(CLOCK_REALTIME), 0);
	}
}

enum kind { NONE, NONE_WARM, ACTIVE, PENDING_FLOWS, PENDING_FILTERS };

/* An analyzer for the latency rows: tracks the packets round and round until stopped. */
struct analyzer {
	struct ft_table *t;
	struct ft_trigger_hub *h;
	const uint8_t *pkts;
	atomic_int stop;
};

static void *analyzer_run(void *arg)
{
	struct analyzer *a = arg;
	for (size_t i = 0; !atomic_load(&a->stop); i = (i + RANGE) % g_pkts)
		track(a->t, a->h, a->pkts, i, i + RANGE);
	return NULL;
}

/* Posts t from another thread while the analyzer runs (applied by poll). */
static int post(struct ft_trigger_hub *h, struct ft_trigger *t, struct ft_trigger_result *res)
{
	char err[256];
	return ft_trigger_post(h, t, qq_clock_ns(CLOCK_REALTIME), 10000000000ull, res, err,
	                       sizeof(err));
}

/* n triggers of kind k set up in hub h over table t (an analyzer thread applies them). */
static void setup(struct ft_table *t, struct ft_trigger_hub *h, const uint8_t *pkts, enum kind k,
                  size_t n)
{
	struct analyzer a = {.t = t, .h = h, .pkts = pkts};
	struct ft_trigger_result *res = malloc(sizeof(*res));
	pthread_t th;
	char filter[64];
	pthread_create(&th, NULL, analyzer_run, &a);
	for (size_t i = 0; res && i < n; i++) {
		struct ft_trigger tr = {.has_key = k != PENDING_FILTERS,
		                        .for_ns = 3600000000000ull};
		if (k == ACTIVE) { /* flow i of the traffic: matched now, marked */
			struct ft_packet p;
			uint8_t f[FRAME];
			make_frame(f, (uint32_t)i);
			ft_parse(FT_DLT_EN10MB, f, FRAME, &p);
			ft_flow_key_from_packet(&p, 0, &tr.key, NULL);
			tr.for_ns = 0;
		} else if (k == PENDING_FLOWS) { /* flows that never come */
			tr.key.proto = 6;
			memcpy(tr.key.a + 10, "\xff\xff\xc0\x00\x02", 5);
			tr.key.port_a = (uint16_t)i, tr.key.port_b = (uint16_t)(i >> 16);
		} else {
			snprintf(filter, sizeof(filter), "host 192.0.%zu.%zu", i / 256 % 256,
			         i % 256);
			tr.filter = filter;
		}
		post(h, &tr, res);
	}
	atomic_store(&a.stop, 1);
	pthread_join(th, NULL);
	free(res);
}

static double rate_once(const uint8_t *pkts, enum kind k, size_t n)
{
	struct ft_trigger_events ev = {.add = ev_add, .expire = ev_expire};
	struct ft_trigger_hub *h = NULL;
	struct ft_table *t;
	if (ft_table_create(g_flows, 0, NULL, &t) != 0)
		exit(1);
	if (k != NONE && k != NONE_WARM)
		ft_trigger_hub_create(1, &ev, &h);
	if (k == ACTIVE || k == NONE_WARM) /* the flows in the table (to be triggered) */
		track(t, NULL, pkts, 0, g_flows);
	if (h)
		setup(t, h, pkts, k, n);
	if (k != ACTIVE && k != NONE_WARM) { /* every flow new again */
		ft_table_destroy(t);
		ft_table_create(g_flows, 0, NULL, &t);
	}
	uint64_t t0 = qq_clock_ns(CLOCK_MONOTONIC);
	track(t, h, pkts, 0, g_pkts);
	double secs = (double)(qq_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	ft_trigger_hub_destroy(h);
	ft_table_destroy(t);
	return (double)g_pkts / secs / 1e6;
}

#define REPEAT 3 /* each rate row: the best of this many runs (the machine is shared) */

static double rate_row(const uint8_t *pkts, enum kind k, size_t n)
{
	double best = 0;
	for (int i = 0; i < REPEAT; i++) {
		double r = rate_once(pkts, k, n);
		best = r > best ? r : best;
	}
	return best;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* post -> answer of `posts` flow triggers while the analyzer tracks packets. */
static void latency_row(const uint8_t *pkts, size_t posts)
{
	struct ft_trigger_events ev = {.add = ev_add, .expire = ev_expire};
	struct analyzer a = {.pkts = pkts};
	struct ft_trigger_result *res = malloc(sizeof(*res));
	uint64_t *ns = malloc(posts * sizeof(*ns));
	pthread_t th;
	if (!res || !ns || ft_table_create(g_flows, 0, NULL, &a.t) != 0 ||
	    ft_trigger_hub_create(1, &ev, &a.h) != 0)
		exit(1);
	pthread_create(&th, NULL, analyzer_run, &a);
	for (size_t i = 0; i < posts; i++) {
		struct ft_trigger tr = {.has_key = 1};
		tr.key.proto = 17;
		tr.key.port_a = (uint16_t)i;
		uint64_t t0 = qq_clock_ns(CLOCK_MONOTONIC);
		post(a.h, &tr, res);
		ns[i] = qq_clock_ns(CLOCK_MONOTONIC) - t0;
	}
	atomic_store(&a.stop, 1);
	pthread_join(th, NULL);
	qsort(ns, posts, sizeof(*ns), cmp_u64);
	printf("latency   post -> answer, analyzer busy (poll every %d pkts)   p50 %7.1f us   p99 "
	       "%7.1f us\n",
	       RANGE, (double)ns[posts / 2] / 1e3, (double)ns[posts * 99 / 100] / 1e3);
	ft_trigger_hub_destroy(a.h);
	ft_table_destroy(a.t);
	free(ns);
	free(res);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	if (quick)
		g_flows = 65536, g_pkts = 1u << 20;
	bench_machine_line("trigger_bench");
	printf("%zu flows, %zu packets of %d bytes, one analyzer\n", g_flows, g_pkts, FRAME);
	const uint8_t *pkts = packets_make();
	static const struct {
		enum kind k;
		const char *name;
	} kinds[] = {{ACTIVE, "triggered flows"},
	             {PENDING_FLOWS, "pending flow triggers"},
	             {PENDING_FILTERS, "pending filter triggers"}};
	/* cold: every flow inserted during the run (new flows: the pending rows); warm: every
	   flow in the table already (the triggered-flows rows) */
	double cold = rate_row(pkts, NONE, 0), warm = rate_row(pkts, NONE_WARM, 0);
	printf("rate      baseline, no trigger hub, flows new (cold)      %7.2f Mpps\n", cold);
	printf("rate      baseline, no trigger hub, flows known (warm)    %7.2f Mpps\n", warm);
	double r0 = rate_row(pkts, PENDING_FLOWS, 0);
	printf("rate      hub, 0 triggers (cold)                          %7.2f Mpps  %5.2fx\n", r0,
	       r0 / cold);
	for (size_t k = 0; k < 3; k++) {
		int filters = kinds[k].k == PENDING_FILTERS;
		double base = kinds[k].k == ACTIVE ? warm : cold;
		for (size_t n = filters ? 10 : 1000; n <= (filters ? 1000u : 100000u); n *= 100) {
			if (kinds[k].k == ACTIVE && n > g_flows)
				break;
			double r = rate_row(pkts, kinds[k].k, n);
			printf("rate      %7zu %-40s %7.2f Mpps  %5.2fx\n", n, kinds[k].name, r,
			       r / base);
		}
	}
	latency_row(pkts, quick ? 500 : 2000);
	free((void *)pkts);
	return 0;
}
