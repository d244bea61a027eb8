/*
 * test_extcap_stream: the pcap stream of flowscope extcap (tools/extcap.h)
 * on answers made here: one answer passes whole; answers asked again from
 * the last packet's time (--follow) give each record once, however many
 * share that time, whatever the size of the pieces they arrive in (1 byte,
 * 7, 100, whole); microsecond answers; a record with no data; an empty
 * answer; an answer of another link type or no pcap at all is refused; a
 * FIFO whose reader is gone stops the stream with reader_gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/extcap.h"

#define NANO 0xa1b23c4du
#define MICRO 0xa1b2c3d4u

struct buf {
	char *p;
	size_t len;
};

static void put32(FILE *f, uint32_t v)
{
	fwrite(&v, 4, 1, f);
}

/* A pcap answer: magic, linktype, then n records (time t[i] in the magic's unit, data "<tag>"). */
static struct buf answer(uint32_t magic, uint32_t linktype, int n, const uint32_t *t,
                         const char *const *tag)
{
	struct buf b = {0};
	FILE *f = open_memstream(&b.p, &b.len);
	assert_non_null(f);
	uint16_t v[2] = {2, 4};
	put32(f, magic);
	fwrite(v, 2, 2, f);
	put32(f, 0);
	put32(f, 0);
	put32(f, 262144);
	put32(f, linktype);
	for (int i = 0; i < n; i++) {
		uint32_t len = (uint32_t)strlen(tag[i]);
		put32(f, 1795000000u);
		put32(f, t[i]);
		put32(f, len);
		put32(f, len);
		fwrite(tag[i], 1, len, f);
	}
	fclose(f);
	return b;
}

/* Writes b through the stream's FILE in pieces of `piece` bytes; 0, or -1 when a write failed. */
static int feed(struct extcap_stream *s, FILE *in, const struct buf *b, size_t piece)
{
	extcap_stream_begin(s);
	for (size_t off = 0; off < b->len; off += piece) {
		size_t k = b->len - off < piece ? b->len - off : piece;
		if (fwrite(b->p + off, 1, k, in) != k)
			return -1;
	}
	return 0;
}

/* The data of the records of a pcap the stream wrote, joined by '|'; checks its file header. */
static void records_of(const struct buf *out, uint32_t magic, char *got, size_t cap)
{
	size_t off = EXTCAP_PCAP_FILE_HEADER, n = 0;
	uint32_t m;
	assert_true(out->len >= EXTCAP_PCAP_FILE_HEADER);
	memcpy(&m, out->p, 4);
	assert_int_equal(m, magic);
	got[0] = '\0';
	while (off + EXTCAP_PCAP_RECORD_HEADER <= out->len) {
		uint32_t len;
		memcpy(&len, out->p + off + 8, 4);
		off += EXTCAP_PCAP_RECORD_HEADER;
		assert_true(off + len <= out->len);
		n += (size_t)snprintf(got + n, cap - n, "%s%.*s", n ? "|" : "", (int)len,
		                      out->p + off);
		off += len;
	}
	assert_int_equal(off, out->len); /* nothing but whole records after the header */
}

/*
 * The follow sequence: answer 1 (from the start) has a b c1 c2 at times 1 2 3 3; answer 2,
 * asked from time 3, repeats c1 c2 and has c3 (also at 3) and d at 4; answer 3, from 4, is d
 * again; answer 4 is empty (a range with nothing: the header alone); answer 5 is d, then e at
 * 5 with no data.  Each record once, in order.
 */
static void follow_pieces(uint32_t magic, size_t piece)
{
	static const uint32_t t1[] = {1, 2, 3, 3}, t2[] = {3, 3, 3, 4}, t3[] = {4}, t4[] = {4, 5};
	static const char *const g1[] = {"a", "b", "c1", "c2"},
	                         *const g2[] = {"c1", "c2", "c3", "d"}, *const g3[] = {"d"},
	                         *const g4[] = {"d", ""};
	struct buf out = {0}, a[] = {answer(magic, 1, 4, t1, g1), answer(magic, 1, 4, t2, g2),
	                             answer(magic, 1, 1, t3, g3), answer(magic, 1, 0, NULL, NULL),
	                             answer(magic, 1, 2, t4, g4)};
	struct extcap_stream s = {.fifo = open_memstream(&out.p, &out.len)};
	FILE *in = extcap_stream_open(&s);
	assert_non_null(in);
	for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++) {
		assert_int_equal(feed(&s, in, &a[i], piece), 0);
		free(a[i].p);
	}
	assert_string_equal(s.err, "");
	fclose(in);
	fclose(s.fifo);
	char got[256];
	records_of(&out, magic, got, sizeof(got));
	assert_string_equal(got, "a|b|c1|c2|c3|d|");
	assert_int_equal(s.last_ns, 1795000000ull * 1000000000u + 5 * (magic == NANO ? 1 : 1000));
	assert_int_equal(s.at_last, 1);
	free(out.p);
}

static void test_follow_each_record_once(void **state)
{
	(void)state;
	static const size_t pieces[] = {1, 7, 16, 100, 1 << 20};
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		follow_pieces(NANO, pieces[i]);
		follow_pieces(MICRO, pieces[i]);
	}
}

/* One answer passes byte for byte. */
static void test_one_answer_whole(void **state)
{
	(void)state;
	static const uint32_t t[] = {5, 5, 9};
	static const char *const g[] = {"x", "y", "z"};
	struct buf out = {0}, a = answer(NANO, 113, 3, t, g);
	struct extcap_stream s = {.fifo = open_memstream(&out.p, &out.len)};
	FILE *in = extcap_stream_open(&s);
	assert_int_equal(feed(&s, in, &a, 3), 0);
	fclose(in);
	fclose(s.fifo);
	assert_int_equal(out.len, a.len);
	assert_memory_equal(out.p, a.p, a.len);
	free(a.p);
	free(out.p);
}

/* A later answer of another link type, or not a pcap: the write fails, err says why. */
static void test_refused_answers(void **state)
{
	(void)state;
	static const uint32_t t[] = {1};
	static const char *const g[] = {"a"};
	for (int bad = 0; bad < 2; bad++) {
		struct buf out = {0}, a = answer(NANO, 1, 1, t, g),
		           b = answer(bad ? 0x0a0d0d0au : NANO, bad ? 1 : 113, 1, t, g);
		struct extcap_stream s = {.fifo = open_memstream(&out.p, &out.len)};
		FILE *in = extcap_stream_open(&s);
		assert_int_equal(feed(&s, in, &a, 1000), 0);
		assert_int_equal(feed(&s, in, &b, 1000), -1);
		assert_non_null(strstr(s.err, bad ? "not a pcap" : "link type 113, not 1"));
		assert_false(s.reader_gone);
		fclose(in);
		fclose(s.fifo);
		free(a.p);
		free(b.p);
		free(out.p);
	}
}

/* The FIFO's reader is gone (a pipe's read end closed): EPIPE, reader_gone. */
static void test_reader_gone(void **state)
{
	(void)state;
	static const uint32_t t[] = {1};
	static const char *const g[] = {"a"};
	int fd[2];
	assert_int_equal(pipe(fd), 0);
	close(fd[0]);
	signal(SIGPIPE, SIG_IGN);
	struct buf a = answer(NANO, 1, 1, t, g);
	struct extcap_stream s = {.fifo = fdopen(fd[1], "w")};
	FILE *in = extcap_stream_open(&s);
	assert_int_equal(feed(&s, in, &a, 1000), -1);
	assert_true(s.reader_gone);
	assert_non_null(strstr(s.err, "Broken pipe"));
	fclose(in);
	fclose(s.fifo);
	free(a.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_follow_each_record_once),
	    cmocka_unit_test(test_one_answer_whole),
	    cmocka_unit_test(test_refused_answers),
	    cmocka_unit_test(test_reader_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
