/*
 * QQ unit tests: record packing and random access, chunk hand-over between
 * producer, analyzer and dumper, the high-water mark (and none), the
 * back-pressure limit, drain, overwrite
 * accounting, back-pressure, per-producer order across threads, and the
 * background pre-fault (capture does not wait for it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qq/qq.h"

#define CHUNK (64u << 10)

static struct qq *make_qq(unsigned chunks, enum qq_mode mode, double hw, unsigned producers,
                          unsigned analyzers)
{
	struct qq_config c = {.size = (size_t)chunks * CHUNK,
	                      .chunk_size = CHUNK,
	                      .producers = producers,
	                      .analyzers = analyzers,
	                      .high_water = hw,
	                      .mode = mode};
	struct qq *q = NULL;
	assert_int_equal(qq_create(&c, &q), 0);
	return q;
}

/* Appends packet number i: its bytes are a pattern derived from i, length 1..1500. */
static void put(struct qq_producer *p, uint32_t i, uint16_t port)
{
	uint8_t buf[1500];
	uint32_t len = 1 + (i * 7919u) % 1500u;
	for (uint32_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(i + k);
	assert_int_equal(qq_producer_append(p, 1000 + i, len, len + 4, port, 0, buf), 0);
}

static void check(const struct qq_record *r, uint32_t i)
{
	uint32_t len = 1 + (i * 7919u) % 1500u;
	assert_int_equal(r->ts_ns, 1000 + i);
	assert_int_equal(r->caplen, len);
	assert_int_equal(r->wirelen, len + 4);
	assert_int_equal((uintptr_t)r % 8, 0);
	for (uint32_t k = 0; k < len; k++)
		assert_int_equal(r->data[k], (uint8_t)(i + k));
}

static void test_bad_config(void **state)
{
	(void)state;
	struct qq *q;
	struct qq_config c = {
	    .size = 3 * CHUNK, .chunk_size = CHUNK, .producers = 1, .analyzers = 1};
	assert_int_equal(qq_create(&c, &q), -EINVAL); /* fewer than 4 chunks */
	c.size = 8 * CHUNK;
	c.high_water = 1.5;
	assert_int_equal(qq_create(&c, &q), -EINVAL);
	c.high_water = 0;
	c.producers = 0;
	assert_int_equal(qq_create(&c, &q), -EINVAL);
	c.producers = 1;
	c.note_size = QQ_MAX_NOTE + 1;
	assert_int_equal(qq_create(&c, &q), -EINVAL);
}

/*
 * Notes: each record has note_size bytes (rounded up to 8) after its padded data, zeros
 * from the producer, 8-byte aligned; what an analyzer writes there reaches the dumper,
 * and neither the note nor the data overwrite each other or the next record.
 */
static void test_notes(void **state)
{
	(void)state;
	struct qq_config c = {.size = 8 * CHUNK,
	                      .chunk_size = CHUNK,
	                      .producers = 1,
	                      .analyzers = 1,
	                      .high_water = QQ_NO_HOLD,
	                      .mode = QQ_MODE_BACKPRESSURE,
	                      .note_size = 70};
	struct qq *q;
	assert_int_equal(qq_create(&c, &q), 0);
	struct qq_producer *p;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	for (uint32_t i = 0; i < 30; i++)
		put(p, i, 0);
	qq_producer_close(p);
	struct qq_peek pk;
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
	assert_int_equal(pk.end, 30);
	for (uint32_t i = 0; i < 30; i++) {
		struct qq_record *r = qq_chunk_record(pk.chunk, i);
		uint8_t *note = qq_record_note(r);
		assert_int_equal((uintptr_t)note % 8, 0);
		assert_true(note >= r->data + r->caplen);
		for (int k = 0; k < 72; k++)
			assert_int_equal(note[k], 0);
		memset(note, (int)(i + 1), 72); /* all 72 bytes: 70 rounded up */
	}
	qq_analyzer_done(q, &pk);
	struct qq_chunk *ch;
	assert_int_equal(qq_dumper_next(q, &ch, 100), 0);
	for (uint32_t i = 0; i < 30; i++) {
		struct qq_record *r = qq_chunk_record(ch, i);
		check(r, i);
		const uint8_t *note = qq_record_note(r);
		for (int k = 0; k < 72; k++)
			assert_int_equal(note[k], i + 1);
	}
	qq_dumper_release(q, ch);
	qq_destroy(q);
}

static void test_pack_random_access(void **state)
{
	(void)state;
	struct qq *q = make_qq(8, QQ_MODE_BACKPRESSURE, 0, 1, 1);
	struct qq_producer *p;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	for (uint32_t i = 0; i < 40; i++)
		put(p, i, 3);
	qq_producer_close(p);

	struct qq_peek pk;
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
	struct qq_chunk *c = pk.chunk;
	uint32_t n = qq_chunk_count(c);
	assert_int_equal(n, 40); /* 40 records of <= 1.5 KB fit one 64 KiB chunk */
	assert_int_equal(pk.first, 0);
	assert_int_equal(pk.end, 40);
	for (uint32_t i = n; i-- > 0;) /* random access, backwards */
		check(qq_chunk_record(c, i), i);
	assert_int_equal(qq_chunk_record(c, 5)->port, 3);
	qq_analyzer_done(q, &pk);
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), QQ_E_DRAINED);
	qq_destroy(q);
}

static void test_too_big(void **state)
{
	(void)state;
	struct qq *q = make_qq(8, QQ_MODE_BACKPRESSURE, 0, 1, 1);
	struct qq_producer *p;
	static uint8_t big[CHUNK];
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	assert_int_equal(qq_producer_append(p, 1, CHUNK, CHUNK, 0, 0, big), QQ_E_TOOBIG);
	assert_int_equal(qq_producer_append(p, 1, CHUNK - 64, CHUNK, 0, 0, big), 0);
	qq_producer_close(p);
	qq_destroy(q);
}

/* Fills the producer's chunk with n packets starting at *next. */
static void fill(struct qq_producer *p, uint32_t *next, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++, (*next)++)
		put(p, *next, 0);
}

/*
 * A flush makes a partly filled chunk visible; the chunk keeps filling (no
 * ring space wasted) and later records come in a later range, in order; the
 * dumper gets the chunk only once it is sealed and every record was peeked.
 */
static void test_flush_partial(void **state)
{
	(void)state;
	struct qq *q = make_qq(8, QQ_MODE_BACKPRESSURE, 0.1, 1, 1);
	struct qq_producer *p;
	struct qq_peek pk;
	struct qq_chunk *d;
	uint32_t next = 0;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	qq_drain(q);
	fill(p, &next, 3);
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), QQ_E_TIMEDOUT); /* not yet visible */
	qq_producer_flush(p, 0);                                          /* too early: no-op */
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), QQ_E_TIMEDOUT);
	qq_producer_flush(p, UINT64_MAX / 4); /* long after the flush interval */
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
	assert_int_equal(pk.first, 0);
	assert_int_equal(pk.end, 3);
	struct qq_chunk *c = pk.chunk;
	fill(p, &next, 2); /* the same chunk keeps filling while the analyzer reads */
	qq_analyzer_done(q, &pk);
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), QQ_E_TIMEDOUT);
	assert_int_equal(qq_dumper_next(q, &d, 10), QQ_E_TIMEDOUT); /* still filling */
	qq_producer_flush(p, UINT64_MAX / 2);
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
	assert_ptr_equal(pk.chunk, c);
	assert_int_equal(pk.first, 3);
	assert_int_equal(pk.end, 5);
	for (uint32_t i = pk.first; i < pk.end; i++)
		check(qq_chunk_record(c, i), i);
	qq_producer_close(p); /* seals: nothing new, the dumper still waits for the peek */
	assert_int_equal(qq_dumper_next(q, &d, 10), QQ_E_TIMEDOUT);
	qq_analyzer_done(q, &pk);
	assert_int_equal(qq_dumper_next(q, &d, 100), 0);
	assert_ptr_equal(d, c);
	assert_int_equal(qq_chunk_count(d), 5);
	qq_dumper_release(q, d);
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), QQ_E_DRAINED);
	assert_int_equal(qq_dumper_next(q, &d, 10), QQ_E_DRAINED);
	struct qq_stats st;
	qq_stats(q, &st);
	assert_int_equal(st.chunks_used, 0);
	assert_int_equal(st.enqueued_packets, 5);
	qq_destroy(q);
}

/* Publishes k full chunks (each one packet of 40 KiB, so one per chunk). */
static void publish_chunks(struct qq_producer *p, unsigned k, uint64_t *ts)
{
	static uint8_t blob[40u << 10];
	for (unsigned i = 0; i < k; i++, (*ts)++)
		assert_int_equal(qq_producer_append(p, *ts, sizeof(blob), sizeof(blob), 0, 0, blob),
		                 0);
}

static void analyze_all(struct qq *q, unsigned expect)
{
	struct qq_peek pk;
	for (unsigned i = 0; i < expect; i++) {
		assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
		qq_analyzer_done(q, &pk);
	}
}

static void test_high_water(void **state)
{
	(void)state;
	/* 10 chunks, high water 50%: dumpers may take chunks only while > 5 are used */
	struct qq *q = make_qq(10, QQ_MODE_BACKPRESSURE, 0.5, 1, 1);
	struct qq_producer *p;
	struct qq_chunk *c;
	uint64_t ts = 1;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	publish_chunks(p, 5, &ts); /* 4 published + 1 being filled = 5 used */
	analyze_all(q, 4);
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_TIMEDOUT);
	publish_chunks(p, 2, &ts); /* 6 published + 1 filling = 7 used */
	analyze_all(q, 2);
	struct qq_stats st;
	qq_stats(q, &st);
	assert_int_equal(st.chunks_used, 7);
	assert_int_equal(st.oldest_ns, 1);
	assert_int_equal(st.newest_ns, 6);
	/* 7 used > 5: dequeue oldest first, until the mark is reached */
	assert_int_equal(qq_dumper_next(q, &c, 10), 0);
	assert_int_equal(qq_chunk_record(c, 0)->ts_ns, 1);
	qq_dumper_release(q, c);
	assert_int_equal(qq_dumper_next(q, &c, 10), 0);
	assert_int_equal(qq_chunk_record(c, 0)->ts_ns, 2);
	qq_dumper_release(q, c);
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_TIMEDOUT); /* 5 used: at the mark */
	/* drain: everything goes, in order, then DRAINED */
	qq_producer_close(p);
	analyze_all(q, 1);
	qq_drain(q);
	for (uint64_t want = 3; want <= 7; want++) {
		assert_int_equal(qq_dumper_next(q, &c, 10), 0);
		assert_int_equal(qq_chunk_record(c, 0)->ts_ns, want);
		qq_dumper_release(q, c);
	}
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_DRAINED);
	qq_destroy(q);
}

struct append_arg {
	struct qq_producer *p;
	uint64_t ts;
};

static void *append_thread(void *arg)
{
	struct append_arg *a = arg;
	publish_chunks(a->p, 1, &a->ts);
	return NULL;
}

/*
 * No hold-back: a chunk goes to the dumpers as soon as it is analysed.  A
 * back-pressured ring with max_used: the producer waits at that many used
 * chunks although most of the ring is free, and goes on when one is freed.
 * Lazy (not pre-faulted) memory works as any other.
 */
static void test_no_hold_max_used(void **state)
{
	(void)state;
	struct qq_config cfg = {.size = 10 * CHUNK,
	                        .chunk_size = CHUNK,
	                        .producers = 1,
	                        .analyzers = 1,
	                        .high_water = QQ_NO_HOLD,
	                        .mode = QQ_MODE_BACKPRESSURE,
	                        .lazy = 1,
	                        .max_used = 4};
	struct qq *q;
	struct qq_producer *p;
	struct qq_chunk *c;
	struct qq_stats st;
	assert_int_equal(qq_create(&cfg, &q), 0);
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	uint64_t ts = 1;
	publish_chunks(p, 2, &ts);                                  /* 1 published + 1 filling */
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_TIMEDOUT); /* not analysed yet */
	analyze_all(q, 1);
	assert_int_equal(qq_dumper_next(q, &c, 10), 0); /* 2 of 10 used: taken at once */
	assert_int_equal(qq_chunk_record(c, 0)->ts_ns, 1);
	qq_dumper_release(q, c);

	publish_chunks(p, 3, &ts); /* 3 published + 1 filling = max_used */
	qq_stats(q, &st);
	assert_int_equal(st.chunks_used, 4);
	assert_int_equal(st.backpressure_waits, 0);
	struct append_arg a = {.p = p, .ts = ts};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, append_thread, &a), 0);
	for (int i = 0; i < 5000 && st.backpressure_waits == 0; i++) { /* at most 5 s */
		struct timespec ms = {.tv_nsec = 1000000};
		nanosleep(&ms, NULL);
		qq_stats(q, &st);
	}
	assert_int_equal(st.backpressure_waits, 1); /* 6 of 10 chunks free, yet it waits */
	assert_int_equal(st.chunks_used, 4);
	analyze_all(q, 3);
	assert_int_equal(qq_dumper_next(q, &c, 10), 0);
	assert_int_equal(qq_chunk_record(c, 0)->ts_ns, 2);
	qq_dumper_release(q, c); /* room: the producer goes on */
	assert_int_equal(pthread_join(t, NULL), 0);
	qq_stats(q, &st);
	assert_int_equal(st.chunks_used, 4);
	qq_producer_close(p);
	analyze_all(q, 2); /* 5 (sealed before the wait) and 6 */
	qq_drain(q);
	for (uint64_t want = 3; want <= 6; want++) {
		assert_int_equal(qq_dumper_next(q, &c, 10), 0);
		assert_int_equal(qq_chunk_record(c, 0)->ts_ns, want);
		qq_dumper_release(q, c);
	}
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_DRAINED);
	qq_destroy(q);
}

/*
 * max_hold_ns: a flush seals a chunk taken that long ago, full or not, and
 * the dumper gets it: at once with no hold-back, and with a high-water mark
 * (not reached here) once the chunk is that old; the next packet starts a
 * new chunk.  Every packet is handed out exactly once.
 */
static void test_max_hold(void **state)
{
	(void)state;
	static const uint8_t pkt[100];
	for (int hold = 0; hold < 2; hold++) {
		struct qq_config cfg = {.size = 10 * CHUNK,
		                        .chunk_size = CHUNK,
		                        .producers = 1,
		                        .analyzers = 1,
		                        .high_water = hold ? 0.5 : QQ_NO_HOLD,
		                        .mode = QQ_MODE_BACKPRESSURE,
		                        .max_hold_ns = 50000000ull}; /* 50 ms */
		struct qq *q;
		struct qq_producer *p;
		struct qq_chunk *c;
		struct qq_peek pk;
		struct qq_stats st;
		assert_int_equal(qq_create(&cfg, &q), 0);
		assert_int_equal(qq_producer_open(q, 0, &p), 0);
		assert_int_equal(qq_producer_append(p, 1, sizeof(pkt), sizeof(pkt), 0, 0, pkt), 0);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t t = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		qq_producer_flush(
		    p, t + 2000000); /* 2 ms on (the flush interval is 1 ms): published */
		assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
		qq_analyzer_done(q, &pk);
		assert_int_equal(qq_dumper_next(q, &c, 1), QQ_E_TIMEDOUT); /* not sealed */
		qq_producer_flush(p, UINT64_MAX / 2);                      /* long after: sealed */
		/* no hold: at once; held: when 50 ms old (the call waits for that, not its 5 s) */
		assert_int_equal(qq_dumper_next(q, &c, 5000), 0);
		assert_int_equal(qq_chunk_count(c), 1);
		qq_dumper_release(q, c);
		assert_int_equal(qq_producer_append(p, 2, sizeof(pkt), sizeof(pkt), 0, 0, pkt), 0);
		qq_stats(q, &st);
		assert_int_equal(st.chunks_used, 1); /* a new chunk */
		qq_producer_close(p);
		assert_int_equal(qq_analyzer_next(q, 0, &pk, 100), 0);
		qq_analyzer_done(q, &pk);
		qq_drain(q);
		assert_int_equal(qq_dumper_next(q, &c, 100), 0);
		assert_int_equal(qq_chunk_count(c), 1);
		assert_int_equal(qq_chunk_record(c, 0)->ts_ns, 2);
		qq_dumper_release(q, c);
		assert_int_equal(qq_dumper_next(q, &c, 100), QQ_E_DRAINED);
		qq_destroy(q);
	}
}

static void test_not_before_peek(void **state)
{
	(void)state;
	struct qq *q = make_qq(6, QQ_MODE_BACKPRESSURE, 0.1, 1, 1);
	struct qq_producer *p;
	struct qq_chunk *c;
	struct qq_peek a;
	uint64_t ts = 1;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	publish_chunks(p, 4, &ts);
	qq_drain(q);
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_TIMEDOUT); /* nothing analysed yet */
	assert_int_equal(qq_analyzer_next(q, 0, &a, 10), 0);
	assert_int_equal(qq_dumper_next(q, &c, 10), QQ_E_TIMEDOUT); /* being analysed */
	qq_analyzer_done(q, &a);
	assert_int_equal(qq_dumper_next(q, &c, 10), 0);
	assert_ptr_equal(c, a.chunk);
	qq_dumper_release(q, c);
	qq_producer_close(p);
	qq_destroy(q);
}

static void test_overwrite_when_full(void **state)
{
	(void)state;
	/* 4 chunks, overwrite mode, no dumper: the oldest chunks are discarded and counted */
	struct qq *q = make_qq(4, QQ_MODE_OVERWRITE, 0, 1, 1);
	struct qq_producer *p;
	struct qq_peek pk;
	uint64_t ts = 1;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	publish_chunks(p, 10, &ts); /* chunks 1..9 published, 10 filling */
	struct qq_stats st;
	qq_stats(q, &st);
	assert_int_equal(st.overwritten_chunks, 6);
	assert_int_equal(st.overwritten_packets, 6);
	assert_int_equal(st.overwritten_bytes, 6u * (40u << 10));
	assert_int_equal(st.oldest_ns, 7); /* the ring holds 7, 8, 9 (+10 filling) */
	/* the analyzer resumes at the oldest chunk still held */
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 10), 0);
	assert_int_equal(qq_chunk_record(pk.chunk, 0)->ts_ns, 7);
	/* ring full and its oldest chunk busy: the packet is dropped and counted, not blocked */
	static uint8_t blob[40u << 10];
	assert_int_equal(qq_producer_append(p, 99, sizeof(blob), sizeof(blob), 0, 0, blob), 0);
	qq_analyzer_done(q, &pk);
	qq_producer_close(p);
	qq_stats(q, &st);
	assert_int_equal(st.dropped_packets, 1);
	qq_destroy(q);
}

/* Many times around a 4-chunk ring: every chunk comes back, in order, contents intact. */
static void test_wrap_around(void **state)
{
	(void)state;
	struct qq *q = make_qq(4, QQ_MODE_BACKPRESSURE, 0.25, 1, 1); /* dequeue above 1 used */
	struct qq_producer *p;
	struct qq_chunk *c;
	uint64_t ts = 1, want = 1;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	for (unsigned round = 0; round < 100; round++) {
		publish_chunks(p, 1, &ts); /* publishes the previous chunk, fills a new one */
		if (round == 0)
			continue;
		analyze_all(q, 1);
		assert_int_equal(qq_dumper_next(q, &c, 100), 0); /* 2 used > 1 */
		assert_int_equal(qq_chunk_count(c), 1);
		assert_int_equal(qq_chunk_record(c, 0)->ts_ns, want++);
		qq_dumper_release(q, c);
	}
	struct qq_stats st;
	qq_stats(q, &st);
	assert_int_equal(st.enqueued_packets, 99);
	assert_int_equal(st.chunks_used, 1);
	assert_int_equal(st.overwritten_chunks + st.backpressure_waits, 0);
	qq_producer_close(p);
	qq_destroy(q);
}

struct prod_arg {
	struct qq_producer *p;
	unsigned id;
	uint32_t n;
};

static void *producer_thread(void *v)
{
	struct prod_arg *a = v;
	struct qq_producer *p = a->p;
	uint8_t buf[256];
	for (uint32_t i = 0; i < a->n; i++) {
		uint32_t len = 16 + i % 200;
		memcpy(buf, &i, 4);
		if (qq_producer_append(p, i, len, len, (uint16_t)a->id, 0, buf) != 0)
			return (void *)1;
	}
	qq_producer_close(p);
	return NULL;
}

struct ana_arg {
	struct qq *q;
	unsigned id, nprod;
	uint32_t next[4]; /* expected next sequence per producer */
	int bad;
};

static void *analyzer_thread(void *v)
{
	struct ana_arg *a = v;
	struct qq_peek pk;
	int r;
	while ((r = qq_analyzer_next(a->q, a->id, &pk, 100)) != QQ_E_DRAINED) {
		if (r == QQ_E_TIMEDOUT)
			continue;
		for (uint32_t i = pk.first; i < pk.end; i++) {
			const struct qq_record *rec = qq_chunk_record(pk.chunk, i);
			uint32_t seq;
			memcpy(&seq, rec->data, 4);
			if (rec->port % 2 != a->id || seq != a->next[rec->port])
				a->bad = 1;
			a->next[rec->port] = seq + 1;
		}
		qq_analyzer_done(a->q, &pk);
	}
	return NULL;
}

static void *dumper_thread(void *v)
{
	struct qq *q = v;
	struct qq_chunk *c;
	uintptr_t packets = 0;
	int r;
	while ((r = qq_dumper_next(q, &c, 100)) != QQ_E_DRAINED) {
		if (r == QQ_E_TIMEDOUT)
			continue;
		packets += qq_chunk_count(c);
		qq_dumper_release(q, c);
	}
	return (void *)packets;
}

/* The project's one growable array and one clock (qq.h's helpers for every library). */
/*
 * The ring is usable before its pre-fault is done: paced at 1 byte per
 * second, the background thread has populated only the first chunk (the
 * one qq_create populates itself) while records cross three chunks from
 * producer to analyzer to dumper; qq_destroy stops the paced thread.
 * Unpaced, it populates the whole ring.
 */
static void test_start_before_prefault(void **state)
{
	(void)state;
	struct qq_config c = {.size = 64 * CHUNK,
	                      .chunk_size = CHUNK,
	                      .producers = 1,
	                      .analyzers = 1,
	                      .high_water = QQ_NO_HOLD,
	                      .mode = QQ_MODE_OVERWRITE,
	                      .prefault_rate = 1};
	struct qq *q;
	struct qq_producer *p;
	struct qq_stats st;
	assert_int_equal(qq_create(&c, &q), 0);
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	uint32_t n = 0;
	fill(p, &n, 3 * CHUNK / 800); /* ~800 B a record: past the third chunk */
	qq_producer_close(p);
	uint32_t seen = 0;
	struct qq_peek pk;
	while (qq_analyzer_next(q, 0, &pk, 1000) == 0) {
		for (uint32_t i = pk.first; i < pk.end; i++)
			check(qq_chunk_record(pk.chunk, i), seen++);
		qq_analyzer_done(q, &pk);
	}
	assert_int_equal(seen, n);
	qq_stats(q, &st);
	assert_true(st.chunks_used >= 3);
	assert_int_equal(st.prefaulted_bytes, CHUNK); /* the rest is still to come */
	assert_int_equal(st.prefault_failed, 0);
	qq_destroy(q); /* returns: the paced thread is told to stop */

	c.prefault_rate = 0;
	assert_int_equal(qq_create(&c, &q), 0);
	qq_stats(q, &st);
	for (int i = 0; i < 5000 && st.prefaulted_bytes < st.capacity; i++) { /* at most 5 s */
		struct timespec ms = {.tv_nsec = 1000000};
		nanosleep(&ms, NULL);
		qq_stats(q, &st);
	}
	assert_int_equal(st.prefaulted_bytes, 64 * CHUNK);
	qq_destroy(q);
}

static void test_grow_and_clock(void **state)
{
	(void)state;
	uint32_t *v = NULL;
	size_t cap = 0;
	for (uint32_t i = 0; i < 1000; i++) {
		assert_int_equal(qq_grow((void **)&v, &cap, i + 1, sizeof(*v)), 0);
		assert_true(cap >= i + 1);
		v[i] = i;
	}
	assert_int_equal(cap, 1024);
	for (uint32_t i = 0; i < 1000; i++)
		assert_int_equal(v[i], i);
	void *keep = v;
	assert_int_equal(qq_grow((void **)&v, &cap, 10, sizeof(*v)), 0); /* room already */
	assert_ptr_equal(v, keep);
	/* a size beyond size_t fails, the array untouched */
	assert_int_equal(qq_grow((void **)&v, &cap, SIZE_MAX, sizeof(*v)), -ENOMEM);
	assert_int_equal(qq_grow((void **)&v, &cap, SIZE_MAX / 2, sizeof(*v)), -ENOMEM);
	assert_ptr_equal(v, keep);
	assert_int_equal(cap, 1024);
	free(v);

	uint64_t a = qq_clock_ns(CLOCK_MONOTONIC), b = qq_clock_ns(CLOCK_MONOTONIC);
	assert_true(a > 0 && b >= a);
	assert_true(qq_clock_ns(CLOCK_REALTIME) > 1600000000ull * 1000000000ull);
}

/* 4 producers, 2 analyzers, 1 dumper, back-pressure: nothing lost, per-producer order kept. */
static void test_threads_order(void **state)
{
	(void)state;
	struct qq *q = make_qq(8, QQ_MODE_BACKPRESSURE, 0.5, 4, 2);
	pthread_t pt[4], at[2], dt;
	struct prod_arg pa[4];
	struct ana_arg aa[2] = {{.q = q, .id = 0, .nprod = 4}, {.q = q, .id = 1, .nprod = 4}};
	/* producers are opened before any thread starts (the documented order) */
	for (unsigned i = 0; i < 4; i++) {
		pa[i] = (struct prod_arg){.id = i, .n = 20000};
		assert_int_equal(qq_producer_open(q, i, &pa[i].p), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&pt[i], NULL, producer_thread, &pa[i]), 0);
	assert_int_equal(pthread_create(&dt, NULL, dumper_thread, q), 0);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&at[i], NULL, analyzer_thread, &aa[i]), 0);
	for (unsigned i = 0; i < 4; i++) {
		void *rv;
		pthread_join(pt[i], &rv);
		assert_null(rv);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(at[i], NULL);
	qq_drain(q);
	void *dumped;
	pthread_join(dt, &dumped);
	assert_int_equal((uintptr_t)dumped, 4 * 20000);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(aa[i].bad, 0);
		assert_int_equal(aa[i].next[i], 20000);
		assert_int_equal(aa[i].next[i + 2], 20000);
	}
	qq_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_pack_random_access),
	    cmocka_unit_test(test_notes),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_flush_partial),
	    cmocka_unit_test(test_high_water),
	    cmocka_unit_test(test_no_hold_max_used),
	    cmocka_unit_test(test_max_hold),
	    cmocka_unit_test(test_not_before_peek),
	    cmocka_unit_test(test_overwrite_when_full),
	    cmocka_unit_test(test_wrap_around),
	    cmocka_unit_test(test_threads_order),
	    cmocka_unit_test(test_grow_and_clock),
	    cmocka_unit_test(test_start_before_prefault),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
