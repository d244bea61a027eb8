/*
 * qq_bench: QQ throughput, enqueue -> peek -> dequeue, against this machine's
 * memcpy bandwidth measured in the same run.  A benchmark, not a test: it
 * prints one line per configuration and judges nothing.
 *
 * Each configuration runs P producer threads (each appending N records of
 * the given size from a cache-hot buffer, as a NIC driver copies from its
 * receive buffers), P analyzers (each peeking every record of its producer:
 * reads the header and the first data word) and one dumper (dequeues and
 * releases whole chunks above the high-water mark, then drains).  The time
 * is from the first append to the last release.  Back-pressure mode, so
 * every record goes the whole way and nothing is dropped.
 *
 * Baseline: one thread copying the same record sizes from a cache-hot source
 * into a ring of the same size as the QQ, sequentially (what a producer must
 * do at least).  The ratio is QQ records/s over baseline records/s.
 *
 * usage: qq_bench [--quick]     (--quick: a tenth of the records)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qq/qq.h"
#include "tools/bench/machine.h"

#define QQ_SIZE (256u << 20)
#define MAX_P 2

static const uint32_t imix_sizes[12] = {64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500};

struct config {
	const char *name;
	uint32_t size; /* 0 = IMIX */
	unsigned producers;
	uint64_t records; /* per producer */
};

static inline uint32_t rec_len(const struct config *c, uint64_t i)
{
	return c->size ? c->size : imix_sizes[i % 12];
}

/* Mean record size of a configuration (for Gbit/s). */
static double mean_len(const struct config *c)
{
	if (c->size)
		return c->size;
	double s = 0;
	for (int i = 0; i < 12; i++)
		s += imix_sizes[i];
	return s / 12;
}

static uint8_t src_buf[2048];

/* ---- baseline ----------------------------------------------------------------------- */

/* Records per second one thread achieves copying records into a QQ_SIZE ring. */
static double memcpy_rate(const struct config *c, uint8_t *ring)
{
	uint64_t n = c->records, off = 0, t0 = qq_clock_ns(CLOCK_MONOTONIC);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t len = rec_len(c, i);
		uint32_t step = (24 + len + 7) & ~7u; /* the same footprint as a QQ record */
		if (off + step > QQ_SIZE)
			off = 0;
		memcpy(ring + off + 24, src_buf, len);
		off += step;
	}
	__asm__ volatile("" ::"r"(ring) : "memory");
	return (double)n * 1e9 / (double)(qq_clock_ns(CLOCK_MONOTONIC) - t0);
}

/* ---- the QQ run ----------------------------------------------------------------------- */

struct run {
	const struct config *c;
	struct qq *q;
	struct qq_producer *p[MAX_P];
	atomic_uint analyzers_done;
	uint64_t checksum[MAX_P];
	uint64_t dumped;
};

struct targ {
	struct run *r;
	unsigned id;
};

static void *producer(void *v)
{
	struct targ *a = v;
	const struct config *c = a->r->c;
	struct qq_producer *p = a->r->p[a->id];
	for (uint64_t i = 0; i < c->records; i++) {
		uint32_t len = rec_len(c, i);
		if (qq_producer_append(p, i, len, len, (uint16_t)a->id, 0, src_buf) != 0)
			abort();
	}
	qq_producer_close(p);
	return NULL;
}

static void *analyzer(void *v)
{
	struct targ *a = v;
	struct qq_peek pk;
	uint64_t sum = 0;
	int r;
	while ((r = qq_analyzer_next(a->r->q, a->id, &pk, 100)) != QQ_E_DRAINED) {
		if (r)
			continue;
		for (uint32_t i = pk.first; i < pk.end; i++) {
			const struct qq_record *rec = qq_chunk_record(pk.chunk, i);
			uint64_t w;
			memcpy(&w, rec->data, sizeof(w));
			sum += rec->ts_ns + rec->caplen + w;
		}
		qq_analyzer_done(a->r->q, &pk);
	}
	a->r->checksum[a->id] = sum;
	atomic_fetch_add(&a->r->analyzers_done, 1);
	return NULL;
}

static void *dumper(void *v)
{
	struct run *r = v;
	struct qq_chunk *ch;
	int rc;
	for (;;) {
		if (atomic_load(&r->analyzers_done) == r->c->producers)
			qq_drain(r->q);
		rc = qq_dumper_next(r->q, &ch, 10);
		if (rc == QQ_E_DRAINED)
			break;
		if (rc)
			continue;
		r->dumped += qq_chunk_count(ch);
		qq_dumper_release(r->q, ch);
	}
	return NULL;
}

/* Records per second through the QQ (all producers together). */
static double qq_rate(const struct config *c)
{
	struct run r = {.c = c};
	struct qq_config qc = {.size = QQ_SIZE,
	                       .producers = c->producers,
	                       .analyzers = c->producers,
	                       .mode = QQ_MODE_BACKPRESSURE,
	                       .hugepages = 1};
	if (qq_create(&qc, &r.q) != 0) {
		fprintf(stderr, "qq_bench: cannot create a %u MiB QQ\n", QQ_SIZE >> 20);
		exit(1);
	}
	for (unsigned i = 0; i < c->producers; i++)
		qq_producer_open(r.q, i, &r.p[i]);
	pthread_t pt[MAX_P], at[MAX_P], dt;
	struct targ args[MAX_P];
	for (unsigned i = 0; i < c->producers; i++) {
		args[i] = (struct targ){.r = &r, .id = i};
		pthread_create(&at[i], NULL, analyzer, &args[i]);
	}
	pthread_create(&dt, NULL, dumper, &r);
	uint64_t t0 = qq_clock_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < c->producers; i++)
		pthread_create(&pt[i], NULL, producer, &args[i]);
	for (unsigned i = 0; i < c->producers; i++)
		pthread_join(pt[i], NULL);
	for (unsigned i = 0; i < c->producers; i++)
		pthread_join(at[i], NULL);
	pthread_join(dt, NULL);
	uint64_t dt_ns = qq_clock_ns(CLOCK_MONOTONIC) - t0;
	if (r.dumped != c->records * c->producers) {
		fprintf(stderr, "qq_bench: %" PRIu64 " records dumped, expected %" PRIu64 "\n",
		        r.dumped, c->records * c->producers);
		exit(1);
	}
	qq_destroy(r.q);
	return (double)(c->records * c->producers) * 1e9 / (double)dt_ns;
}

/* ---- output ---------------------------------------------------------------------------- */

static void print_machine(void)
{
	bench_machine_line("qq_bench");
	printf("# QQ %u MiB, chunks 4 MiB, back-pressure; P producers + P analyzers + 1 dumper\n",
	       QQ_SIZE >> 20);
	printf("# baseline: 1 thread memcpy of the same records into a %u MiB ring, same run\n",
	       QQ_SIZE >> 20);
	printf("%-6s %2s %10s %9s %14s %13s %7s\n", "size", "P", "qq_Mpps", "qq_Gbps",
	       "memcpy_Mpps", "memcpy_Gbps", "ratio");
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	struct config cfgs[] = {
	    {"64", 64, 1, 40000000},    {"64", 64, 2, 20000000},  {"1500", 1500, 1, 4000000},
	    {"1500", 1500, 2, 2000000}, {"imix", 0, 1, 16000000}, {"imix", 0, 2, 8000000},
	};
	for (size_t i = 0; i < sizeof(src_buf); i++)
		src_buf[i] = (uint8_t)(i * 7);
	uint8_t *ring = malloc(QQ_SIZE);
	if (!ring)
		return 1;
	memset(ring, 0, QQ_SIZE); /* pre-fault, like the QQ */
	print_machine();
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		struct config *c = &cfgs[i];
		if (quick)
			c->records /= 10;
		struct config base = *c;
		base.records *= c->producers;
		double b = memcpy_rate(&base, ring);
		double q = qq_rate(c);
		double bits = mean_len(c) * 8;
		printf("%-6s %2u %10.2f %9.2f %14.2f %13.2f %6.0f%%\n", c->name, c->producers,
		       q / 1e6, q * bits / 1e9, b / 1e6, b * bits / 1e9, 100 * q / b);
		fflush(stdout);
	}
	free(ring);
	return 0;
}
