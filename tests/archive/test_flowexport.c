/*
 * archive flow export (archive/flowexport.c): the RowBinary rows of a
 * segment's flow records, and passes against a table held here, whose
 * answers can be lost: every row arrives once, in segment order, and a batch
 * the table holds already is not sent again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"

#define MAX_ROWS 4096

/* The table: which (segment, seq) it holds, and what went wrong on purpose. */
struct table {
	uint64_t seg[MAX_ROWS], created[MAX_ROWS];
	uint32_t seq[MAX_ROWS];
	size_t n;
	uint32_t inserts;
	int lose_answer_at; /* this insert (1-based) stores its rows, then reports a failure */
	int refuse_at;      /* this insert stores nothing and fails */
	uint8_t first_row[256];
	size_t first_len;
};

static uint64_t le(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;
	for (unsigned i = w; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static int t_count(void *arg, const struct archive_export_batch *b, uint64_t *have)
{
	struct table *t = arg;
	*have = 0;
	for (size_t i = 0; i < t->n; i++)
		*have += t->seg[i] == b->seg && t->created[i] == b->seg_created_ns &&
		         t->seq[i] >= b->first && t->seq[i] < b->first + b->n;
	return 0;
}

/* Walks RowBinary rows: sensor "s1", segment, its creation, seq, the rest skipped by layout. */
static int t_insert(void *arg, const uint8_t *rows, size_t len, uint32_t n)
{
	struct table *t = arg;
	if ((int)++t->inserts == t->refuse_at)
		return -EIO;
	if (!t->first_len) {
		memcpy(t->first_row, rows, len < sizeof(t->first_row) ? len : sizeof(t->first_row));
		t->first_len = len;
	}
	const uint8_t *p = rows;
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(p[0], 2);
		assert_memory_equal(p + 1, "s1", 2);
		assert_true(t->n < MAX_ROWS);
		t->seg[t->n] = le(p + 3, 8);
		t->created[t->n] = le(p + 11, 8);
		t->seq[t->n++] = (uint32_t)le(p + 19, 4);
		p += 3 + 8 + 8 + 4 + 8 + 8 + 1 + 16 + 2 + 16 + 2 + 2 + 2 + 32 + 2;
		p += 1 + p[0]; /* trigger (short) */
		p += 1 + p[0]; /* reason */
	}
	assert_int_equal(p - rows, len);
	return (int)t->inserts == t->lose_answer_at ? -EIO : 0;
}

/* A UDP packet from 10.0.0.1:sport to 10.0.1.1:53, 100 bytes. */
static void udp(uint8_t *b, uint16_t sport)
{
	memset(b, 0, 100);
	b[12] = 0x08;
	b[14] = 0x45, b[22] = 64, b[23] = 17;
	b[26] = 10, b[29] = 1, b[30] = 10, b[32] = 1, b[33] = 1;
	b[34] = (uint8_t)(sport >> 8), b[35] = (uint8_t)sport, b[37] = 53;
}

/* A segment of n one-packet flows (ports from port0), closed. */
static void segment(struct archive *a, uint16_t port0, uint32_t n, uint64_t t0)
{
	struct archive_writer *w;
	struct archive_writer_config c = {.frame_size = 65536};
	uint8_t b[100];
	assert_int_equal(archive_writer_create(a, &c, &w), 0);
	for (uint32_t i = 0; i < n; i++) {
		udp(b, (uint16_t)(port0 + i));
		assert_int_equal(archive_writer_add(w, 1, 65535, t0 + i, 100, 100, b), 0);
	}
	assert_int_equal(archive_writer_close(w), 0);
}

static void test_passes(void **state)
{
	(void)state;
	char dir[] = "/tmp/flowscope-test-export.XXXXXX", cmd[128];
	assert_non_null(mkdtemp(dir));
	struct archive *a;
	assert_int_equal(archive_open(dir, ARCHIVE_WRITE | ARCHIVE_CREATE, &a), 0);
	segment(a, 1000, 300, 1000);
	segment(a, 2000, 200, 5000);
	struct table t = {.lose_answer_at = 2};
	struct archive_export e = {
	    .target = "test", .sensor = "s1", .count = t_count, .insert = t_insert, .arg = &t};
	struct archive_export_stats st = {0};
	/* the second segment's insert stores its rows but its answer is lost */
	assert_int_equal(archive_export_pass(a, &e, &st), -EIO);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.pending_segments, 1);
	assert_int_equal(t.n, 500);
	/* again: the table holds that batch, so it is not sent twice */
	assert_int_equal(archive_export_pass(a, &e, &st), 0);
	assert_int_equal(st.segments, 2);
	assert_int_equal(st.skipped_batches, 1);
	assert_int_equal(st.rows, 300);
	assert_int_equal(st.pending_segments, 0);
	assert_int_equal(st.through_ns, 5000 + 199 + 1);
	assert_int_equal(t.n, 500);
	for (size_t i = 0; i < t.n; i++) /* (segment, seq) unique: seq in 0..flows */
		assert_true(t.seq[i] < (t.seg[i] == t.seg[0] ? 300u : 200u));
	/* a refused insert stores nothing; a new segment goes on the next pass */
	segment(a, 3000, 10, 9000);
	t.refuse_at = (int)t.inserts + 1;
	assert_int_equal(archive_export_pass(a, &e, &st), -EIO);
	assert_int_equal(t.n, 500);
	assert_int_equal(archive_export_pass(a, &e, &st), 0);
	assert_int_equal(t.n, 510);
	assert_int_equal(st.skipped_batches, 1);
	/* a row's fixed columns: first and last packet of a one-packet flow, udp, ports, counts */
	const uint8_t *r = t.first_row + 3 + 8 + 8 + 4;
	assert_int_equal(le(r, 8), le(r + 8, 8));
	assert_int_equal(r[16], 17);
	uint64_t pkts =
	    le(r + 17 + 16 + 2 + 16 + 2 + 4, 8) + le(r + 17 + 16 + 2 + 16 + 2 + 4 + 8, 8);
	assert_int_equal(pkts, 1);
	archive_close(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_trigger_split(void **state)
{
	(void)state;
	size_t n;
	const char *reason;
	archive_export_trigger_split("api: ids alert", &n, &reason);
	assert_int_equal(n, 3);
	assert_string_equal(reason, "ids alert");
	archive_export_trigger_split("tcp_rst", &n, &reason);
	assert_int_equal(n, 7);
	assert_string_equal(reason, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_passes),
	    cmocka_unit_test(test_trigger_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
