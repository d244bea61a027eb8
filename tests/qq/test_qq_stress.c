/*
 * QQ stress test: 2 producers, 2 analyzers, 1 dumper, a million records each
 * carrying (producer, sequence).
 *
 * Back-pressure mode (the ring never overflows): every record reaches its
 * analyzer and the dumper exactly once, in per-producer order.
 * Overwrite mode with a dumper that starts only once the producers are done,
 * so the 16 MiB ring must overflow: records are lost, but only whole and counted: at the dumper, the gaps in every producer's
 * sequence add up exactly to the QQ's overwritten + dropped counters, and the
 * order of what remains is kept.  Assertions are on counts and order only,
 * never on timing; the run is bounded by its record count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "qq/qq.h"

#define PRODUCERS 2
#define ANALYZERS 2
#define RECORDS 1000000u /* per producer */

struct payload {
	uint32_t producer;
	uint32_t seq;
};

struct shared {
	struct qq *q;
	struct qq_producer *p[PRODUCERS];
	atomic_uint analyzers_done;
	atomic_uint producers_done;
	int late_dumper; /* the dumper waits for the producers: the ring overflows */
};

struct seen {
	uint32_t next[PRODUCERS]; /* next expected sequence */
	uint64_t records;
	uint64_t gaps;     /* records skipped over */
	uint64_t disorder; /* sequence went backwards or repeated */
	uint64_t wrong_analyzer;
};

/* Checks one record against what this consumer has seen of its producer. */
static void seen_record(struct seen *s, const struct qq_record *r)
{
	struct payload pl;
	memcpy(&pl, r->data, sizeof(pl));
	if (pl.producer >= PRODUCERS || pl.producer != r->port) {
		s->disorder++;
		return;
	}
	if (pl.seq < s->next[pl.producer])
		s->disorder++;
	else
		s->gaps += pl.seq - s->next[pl.producer];
	s->next[pl.producer] = pl.seq + 1;
	s->records++;
}

struct prod_arg {
	struct shared *sh;
	unsigned id;
};

static void *producer(void *v)
{
	struct prod_arg *a = v;
	uint8_t buf[128];
	memset(buf, 0xab, sizeof(buf));
	for (uint32_t i = 0; i < RECORDS; i++) {
		struct payload pl = {a->id, i};
		memcpy(buf, &pl, sizeof(pl));
		uint32_t len = 8 + (i * 37u) % 120u;
		if (qq_producer_append(a->sh->p[a->id], i, len, len, (uint16_t)a->id, 0, buf) != 0)
			return (void *)1;
	}
	qq_producer_close(a->sh->p[a->id]);
	atomic_fetch_add(&a->sh->producers_done, 1);
	return NULL;
}

struct ana_arg {
	struct shared *sh;
	unsigned id;
	struct seen seen;
};

static void *analyzer(void *v)
{
	struct ana_arg *a = v;
	struct qq_peek pk;
	int r;
	while ((r = qq_analyzer_next(a->sh->q, a->id, &pk, 50)) != QQ_E_DRAINED) {
		if (r != 0)
			continue;
		for (uint32_t i = pk.first; i < pk.end; i++) {
			const struct qq_record *rec = qq_chunk_record(pk.chunk, i);
			if (rec->port % ANALYZERS != a->id)
				a->seen.wrong_analyzer++;
			seen_record(&a->seen, rec);
		}
		qq_analyzer_done(a->sh->q, &pk);
	}
	atomic_fetch_add(&a->sh->analyzers_done, 1);
	return NULL;
}

struct dump_arg {
	struct shared *sh;
	struct seen seen;
};

static void *dumper(void *v)
{
	struct dump_arg *a = v;
	struct qq_chunk *c;
	int r;
	while (a->sh->late_dumper && atomic_load(&a->sh->producers_done) < PRODUCERS)
		sched_yield();
	for (;;) {
		if (atomic_load(&a->sh->analyzers_done) == ANALYZERS)
			qq_drain(a->sh->q);
		r = qq_dumper_next(a->sh->q, &c, 20);
		if (r == QQ_E_DRAINED)
			break;
		if (r != 0)
			continue;
		for (uint32_t i = 0; i < qq_chunk_count(c); i++)
			seen_record(&a->seen, qq_chunk_record(c, i));
		qq_dumper_release(a->sh->q, c);
	}
	return NULL;
}

static void run(enum qq_mode mode, int late_dumper, struct ana_arg *aa, struct dump_arg *da,
                struct qq_stats *st)
{
	struct shared sh = {.late_dumper = late_dumper};
	struct qq_config cfg = {.size = 16u << 20,
	                        .chunk_size = 256u << 10,
	                        .producers = PRODUCERS,
	                        .analyzers = ANALYZERS,
	                        .high_water = 0.5,
	                        .mode = mode};
	assert_int_equal(qq_create(&cfg, &sh.q), 0);
	for (unsigned i = 0; i < PRODUCERS; i++)
		assert_int_equal(qq_producer_open(sh.q, i, &sh.p[i]), 0);
	pthread_t pt[PRODUCERS], at[ANALYZERS], dt;
	struct prod_arg pa[PRODUCERS];
	*da = (struct dump_arg){.sh = &sh};
	for (unsigned i = 0; i < ANALYZERS; i++) {
		aa[i] = (struct ana_arg){.sh = &sh, .id = i};
		assert_int_equal(pthread_create(&at[i], NULL, analyzer, &aa[i]), 0);
	}
	assert_int_equal(pthread_create(&dt, NULL, dumper, da), 0);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		pa[i] = (struct prod_arg){.sh = &sh, .id = i};
		assert_int_equal(pthread_create(&pt[i], NULL, producer, &pa[i]), 0);
	}
	for (unsigned i = 0; i < PRODUCERS; i++) {
		void *rv;
		pthread_join(pt[i], &rv);
		assert_null(rv);
	}
	for (unsigned i = 0; i < ANALYZERS; i++)
		pthread_join(at[i], NULL);
	pthread_join(dt, NULL);
	qq_stats(sh.q, st);
	qq_destroy(sh.q);
}

static void test_no_loss_in_order(void **state)
{
	(void)state;
	struct ana_arg aa[ANALYZERS];
	struct dump_arg da;
	struct qq_stats st;
	run(QQ_MODE_BACKPRESSURE, 0, aa, &da, &st);
	for (unsigned i = 0; i < ANALYZERS; i++) {
		assert_int_equal(aa[i].seen.records, RECORDS); /* producer i goes to analyzer i */
		assert_int_equal(aa[i].seen.gaps, 0);
		assert_int_equal(aa[i].seen.disorder, 0);
		assert_int_equal(aa[i].seen.wrong_analyzer, 0);
	}
	assert_int_equal(da.seen.records, (uint64_t)PRODUCERS * RECORDS);
	assert_int_equal(da.seen.gaps, 0);
	assert_int_equal(da.seen.disorder, 0);
	assert_int_equal(st.enqueued_packets, (uint64_t)PRODUCERS * RECORDS);
	assert_int_equal(st.overwritten_packets + st.dropped_packets, 0);
}

static void test_overflow_counted(void **state)
{
	(void)state;
	struct ana_arg aa[ANALYZERS];
	struct dump_arg da;
	struct qq_stats st;
	run(QQ_MODE_OVERWRITE, 1, aa, &da, &st);
	uint64_t lost = st.overwritten_packets + st.dropped_packets;
	assert_true(st.overwritten_chunks > 0); /* 2M records of ~80 B never fit 16 MiB */
	/* what the dumper did not get, it did not get as counted, whole records */
	for (unsigned p = 0; p < PRODUCERS; p++) /* trailing gap: sequences after the last seen */
		da.seen.gaps += RECORDS - da.seen.next[p];
	assert_int_equal(da.seen.gaps, lost);
	assert_int_equal(da.seen.records + lost, (uint64_t)PRODUCERS * RECORDS);
	assert_int_equal(da.seen.disorder, 0);
	for (unsigned i = 0; i < ANALYZERS; i++) {
		assert_int_equal(aa[i].seen.disorder, 0);
		assert_int_equal(aa[i].seen.wrong_analyzer, 0);
	}
	/* stored = published; dropped packets never entered a chunk */
	assert_int_equal(st.enqueued_packets + st.dropped_packets, (uint64_t)PRODUCERS * RECORDS);
	print_message("overflow run: %llu of %llu records overwritten, %llu dropped while the "
	              "oldest chunk was busy\n",
	              (unsigned long long)st.overwritten_packets,
	              (unsigned long long)PRODUCERS * RECORDS,
	              (unsigned long long)st.dropped_packets);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_loss_in_order),
	    cmocka_unit_test(test_overflow_counted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
