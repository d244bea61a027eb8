/*
 * test_follow: unit tests of the log follower (ingest/follow.c), `tail -F`
 * semantics driven by the test's own writes in its own temporary directory:
 * start at the end or the beginning, a line written in two parts, rotation
 * (rename + new file, with lines still appended to the old one), truncation,
 * delete + recreate, a file that appears after the follower started, and a
 * 10 MB line between two good ones.  Every wait is for a line (bounded by
 * WAIT_MS), never a sleep standing in for an event; "nothing comes" is
 * checked with a short bounded call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define WAIT_MS 5000 /* bound on a line the test has written: far above any real delay */

struct fx {
	char dir[64];
	char path[128];
	struct ingest_follow *f;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	snprintf(x->dir, sizeof(x->dir), "/tmp/flowscope-test-follow.XXXXXX");
	if (!mkdtemp(x->dir)) {
		free(x);
		return -1;
	}
	snprintf(x->path, sizeof(x->path), "%s/eve.json", x->dir);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	char cmd[160];
	ingest_follow_close(x->f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	if (system(cmd) != 0)
		return -1;
	free(x);
	return 0;
}

/* Appends (or, with flags O_TRUNC, replaces) bytes at path. */
static void put(const char *path, const char *data, size_t n, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | flags, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void append(const char *path, const char *s)
{
	put(path, s, strlen(s), 0);
}

static void follow(struct fx *x, int from_start, size_t max_line)
{
	struct ingest_follow_opts o = {.from_start = from_start, .max_line = max_line};
	char err[INGEST_ERRBUF_SIZE];
	int r = ingest_follow_open(x->path, &o, &x->f, err);
	if (r)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(r, 0);
}

/* The next line must be `want`, within WAIT_MS. */
static void expect_line(struct fx *x, const char *want)
{
	const char *line;
	size_t len;
	int r = ingest_follow_next(x->f, &line, &len, WAIT_MS);
	if (r != 1 || len != strlen(want) || memcmp(line, want, len) != 0)
		fprintf(stderr, "want \"%s\", got %d \"%.*s\"\n", want, r, r == 1 ? (int)len : 0,
		        r == 1 ? line : "");
	assert_int_equal(r, 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
}

/* Nothing more is there (checked with a short bounded call). */
static void expect_nothing(struct fx *x)
{
	const char *line;
	size_t len;
	int r = ingest_follow_next(x->f, &line, &len, 30);
	if (r != 0)
		fprintf(stderr, "unexpected line \"%.*s\"\n", (int)len, line);
	assert_int_equal(r, 0);
}

static struct ingest_follow_stats stats(struct fx *x)
{
	struct ingest_follow_stats s;
	ingest_follow_stats(x->f, &s);
	return s;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_start_at_end(void **state)
{
	struct fx *x = *state;
	append(x->path, "old 1\nold 2\npart of a line");
	follow(x, 0, 0);
	expect_nothing(x);
	append(x->path, " that was there\nnew 1\n");
	expect_line(x, "new 1");
	append(x->path, "new 2\n");
	expect_line(x, "new 2");
	expect_nothing(x);
	assert_int_equal(stats(x).lines, 2);
}

static void test_from_start(void **state)
{
	struct fx *x = *state;
	append(x->path, "old 1\n\nold 2\n");
	follow(x, 1, 0);
	expect_line(x, "old 1");
	expect_line(x, ""); /* an empty line is a line */
	expect_line(x, "old 2");
	append(x->path, "new 1\n");
	expect_line(x, "new 1");
	assert_int_equal(stats(x).lines, 4);
	assert_int_equal(stats(x).bytes, 19);
}

static void test_partial_line(void **state)
{
	struct fx *x = *state;
	append(x->path, "");
	follow(x, 0, 0);
	append(x->path, "{\"event_type\":");
	expect_nothing(x); /* held until its newline */
	append(x->path, "\"alert\"}\n");
	expect_line(x, "{\"event_type\":\"alert\"}");
	/* a zero timeout returns at once, with or without a line */
	const char *line;
	size_t len;
	assert_int_equal(ingest_follow_next(x->f, &line, &len, 0), 0);
	append(x->path, "x\n");
	assert_int_equal(ingest_follow_next(x->f, &line, &len, 0), 1);
}

static void test_rotation(void **state)
{
	struct fx *x = *state;
	char old[160];
	snprintf(old, sizeof(old), "%s.1", x->path);
	append(x->path, "");
	follow(x, 0, 0);
	append(x->path, "a\n");
	expect_line(x, "a");
	assert_int_equal(rename(x->path, old), 0);
	append(old, "b (after the rename, before the writer reopened)\n");
	expect_line(x, "b (after the rename, before the writer reopened)");
	append(old, "c\nunfinished");
	append(x->path, "d (new file)\n");
	expect_line(x, "c");
	expect_line(x, "unfinished"); /* the old file's writer moved on: delivered as it is */
	expect_line(x, "d (new file)");
	append(old, "e (old file, too late)\n");
	append(x->path, "f\n");
	expect_line(x, "f");
	expect_nothing(x);
	assert_int_equal(stats(x).rotations, 1);
	assert_int_equal(stats(x).truncations, 0);
}

static void test_truncation(void **state)
{
	struct fx *x = *state;
	append(x->path, "");
	follow(x, 0, 0);
	append(x->path, "first line\nsecond line\nhalf");
	expect_line(x, "first line");
	expect_line(x, "second line");
	put(x->path, "x\n", 2, O_TRUNC); /* copytruncate: shorter than what was read */
	expect_line(x, "x");
	expect_nothing(x);
	assert_int_equal(stats(x).truncations, 1);
	assert_int_equal(stats(x).rotations, 0);
}

static void test_delete_recreate(void **state)
{
	struct fx *x = *state;
	append(x->path, "");
	follow(x, 0, 0);
	append(x->path, "one\n");
	expect_line(x, "one");
	assert_int_equal(unlink(x->path), 0);
	expect_nothing(x); /* no file at the path: the old one is kept */
	append(x->path, "two\n");
	expect_line(x, "two");
	assert_int_equal(stats(x).rotations, 1);
}

static void test_file_appears_later(void **state)
{
	struct fx *x = *state;
	follow(x, 0, 0); /* not there yet: waited for, then read from its start */
	expect_nothing(x);
	append(x->path, "first\n");
	expect_line(x, "first");
	assert_int_equal(stats(x).rotations, 0);
}

/* A 10 MB line between two good ones: they come out, it is counted, never held whole. */
static void test_too_long(void **state)
{
	struct fx *x = *state;
	enum { BIG = 10 * 1000 * 1000, PIECE = 1 << 20 };
	char *big = malloc(PIECE);
	assert_non_null(big);
	memset(big, 'x', PIECE);
	append(x->path, "");
	follow(x, 0, 0);
	append(x->path, "good 1\n");
	for (size_t done = 0; done < BIG; done += PIECE) {
		put(x->path, big, BIG - done < PIECE ? BIG - done : PIECE, 0);
		if (done == 0)
			expect_line(x, "good 1");
		expect_nothing(x);
	}
	append(x->path, "\ngood 2\n");
	expect_line(x, "good 2");
	free(big);
	struct ingest_follow_stats s = stats(x);
	assert_int_equal(s.too_long, 1);
	assert_int_equal(s.lines, 2);
	assert_int_equal(s.bytes, 7 + BIG + 8);
}

/* The bound itself: max_line bytes pass, one more is too long. */
static void test_line_bound(void **state)
{
	struct fx *x = *state;
	append(x->path, "");
	follow(x, 0, 8);
	append(x->path, "12345678\n123456789\nok\n123456789");
	expect_line(x, "12345678");
	expect_line(x, "ok");
	expect_nothing(x);
	append(x->path, "more\nlast\n");
	expect_line(x, "last");
	assert_int_equal(stats(x).too_long, 2);
}

static void test_open_errors(void **state)
{
	struct fx *x = *state;
	char err[INGEST_ERRBUF_SIZE], path[192];
	struct ingest_follow *f = NULL;
	snprintf(path, sizeof(path), "%s/no-such-dir/eve.json", x->dir);
	assert_int_equal(ingest_follow_open(path, NULL, &f, err), -ENOENT);
	assert_non_null(strstr(err, "no-such-dir"));
	assert_int_equal(ingest_follow_open(x->dir, NULL, &f, err), -EISDIR);
	assert_non_null(strstr(err, "is a directory"));
	assert_int_equal(mkfifo(x->path, 0600), 0); /* opening a FIFO would block on its writer */
	assert_int_equal(ingest_follow_open(x->path, NULL, &f, err), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_start_at_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_from_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_recreate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_appears_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
