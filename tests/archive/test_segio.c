/*
 * segio unit tests: both engines, forced, on ext4 (O_DIRECT) and on tmpfs
 * (no O_DIRECT) write exactly the bytes appended: a pseudo-random sequence
 * of reserve/commit, append and sync (fixed seed), truncation back to a
 * synced or unsynced size, visibility of synced bytes to another fd, the
 * engine choice (FLOWSCOPE_IO, io_uring blocked by seccomp, unregistered
 * buffers under a memlock limit), and ENOSPC on a full filesystem (root
 * only: a 2 MiB tmpfs, and a small ext4 image for O_DIRECT) followed by a
 * truncation and more appends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/segio.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define MAX_PIECE (300u * KiB)

static const enum segio_engine engines[] = {SEGIO_URING, SEGIO_PWRITEV};

/* ---- helpers ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void fill(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd(s) >> 32);
}

/* A length from 1 to max, log-uniform: as many tiny pieces as large ones. */
static size_t rnd_len(uint64_t *s, size_t max)
{
	unsigned bits = (unsigned)(rnd(s) % 20);
	size_t len = 1 + (size_t)(rnd(s) % (1ull << bits));
	return len < max ? len : max;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return b;
}

/* The file holds exactly exp[0..len). */
static void assert_file(const char *path, const uint8_t *exp, size_t len)
{
	size_t n;
	uint8_t *b = read_all(path, &n);
	assert_int_equal(n, len);
	assert_memory_equal(b, exp, len);
	free(b);
}

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* Appends n fresh random bytes, remembered at exp + *size. */
static void append_rnd(struct segio *s, uint8_t *exp, size_t *size, size_t n, uint64_t *ds)
{
	fill(exp + *size, n, ds);
	assert_int_equal(segio_append(s, exp + *size, n), 0);
	*size += n;
	assert_int_equal(segio_size(s), *size);
}

/* Reserves maxlen bytes, writes random ones, commits n of them. */
static void commit_rnd(struct segio *s, uint8_t *exp, size_t *size, size_t maxlen, size_t n,
                       uint64_t *ds)
{
	uint8_t *p = segio_reserve(s, maxlen);
	assert_non_null(p);
	fill(p, maxlen, ds); /* the uncommitted rest must never reach the file */
	memcpy(exp + *size, p, n);
	assert_int_equal(segio_commit(s, n), 0);
	*size += n;
	assert_int_equal(segio_size(s), *size);
}

/* Directories on ext4 (/tmp: O_DIRECT) and tmpfs (/dev/shm: none). */
struct dirs {
	char ext4[128], shm[128];
};

static int dirs_setup(void **state)
{
	struct dirs *d = calloc(1, sizeof(*d));
	if (!d)
		return -1;
	snprintf(d->ext4, sizeof(d->ext4), "/tmp/flowscope-test-segio.XXXXXX");
	snprintf(d->shm, sizeof(d->shm), "/dev/shm/flowscope-test-segio.XXXXXX");
	if (!mkdtemp(d->ext4)) {
		free(d);
		return -1;
	}
	if (!mkdtemp(d->shm)) {
		rmdir(d->ext4);
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int dirs_teardown(void **state)
{
	struct dirs *d = *state;
	rm_rf(d->ext4);
	rm_rf(d->shm);
	free(d);
	return 0;
}

/* ---- 1. random sequences: both engines, both filesystems, two buffer sizes ---- */

/* One file: a fixed pseudo-random sequence of appends, reserve/commits and syncs. */
static void random_file(struct segio *s, const char *path, uint64_t seed, size_t total,
                        size_t bufsize, uint8_t *exp)
{
	uint64_t os = seed, ds = seed * 7 + 1;
	size_t size = 0, rmax = bufsize - SEGIO_ALIGN;
	assert_int_equal(segio_open(s, path), 0);
	while (size < total) {
		unsigned op = (unsigned)(rnd(&os) % 100);
		size_t len = rnd_len(&os, MAX_PIECE);
		if (op < 47) {
			append_rnd(s, exp, &size, len, &ds);
		} else if (op < 97) {
			size_t maxlen = len < rmax ? len : rmax;
			commit_rnd(s, exp, &size, maxlen, (size_t)(rnd(&os) % (maxlen + 1)), &ds);
		} else {
			assert_int_equal(segio_sync(s), 0);
		}
	}
	assert_int_equal(segio_error(s), 0);
	assert_int_equal(segio_close(s), 0);
	assert_file(path, exp, size);
}

static void test_random_sequences(void **state)
{
	struct dirs *d = *state;
	const size_t total = 12 * MiB;
	const struct {
		unsigned nbufs;
		size_t bufsize;
	} cfg[] = {{8, 1 * MiB}, {2, 64 * KiB}};
	uint8_t *exp = malloc(total + MAX_PIECE);
	assert_non_null(exp);
	for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
		for (size_t e = 0; e < 2; e++) {
			struct segio *s;
			assert_int_equal(segio_create(engines[e], cfg[c].nbufs, cfg[c].bufsize, &s),
			                 0);
			const char *dir[2] = {d->ext4, d->shm};
			struct segio_stats prev = {0};
			for (int fs = 0; fs < 2; fs++) { /* one context, successive files */
				char path[256];
				snprintf(path, sizeof(path), "%s/rand-%zu-%s", dir[fs], c,
				         segio_engine_name(s));
				random_file(s, path, 42 + c, total, cfg[c].bufsize, exp);
				struct segio_stats st;
				segio_stats(s, &st);
				assert_int_equal(st.direct, fs == 0);
				assert_int_equal(st.registered, engines[e] == SEGIO_URING);
				print_message("%-8s %u x %4zu KiB %-5s: %4" PRIu64
				              " writes, %8" PRIu64 " bytes, %2" PRIu64
				              " syncs; max %" PRIu64 " in flight so far\n",
				              segio_engine_name(s), cfg[c].nbufs,
				              cfg[c].bufsize / KiB, fs == 0 ? "ext4" : "tmpfs",
				              st.writes - prev.writes,
				              st.bytes_written - prev.bytes_written,
				              st.syncs - prev.syncs, st.max_inflight);
				prev = st;
			}
			segio_destroy(s);
		}
		/* both engines wrote identical files (each equals exp: compare anyway) */
		for (int fs = 0; fs < 2; fs++) {
			char a[256], b[256];
			const char *dir = fs == 0 ? d->ext4 : d->shm;
			snprintf(a, sizeof(a), "%s/rand-%zu-io_uring", dir, c);
			snprintf(b, sizeof(b), "%s/rand-%zu-pwritev", dir, c);
			size_t la, lb;
			uint8_t *fa = read_all(a, &la), *fb = read_all(b, &lb);
			assert_int_equal(la, lb);
			assert_memory_equal(fa, fb, la);
			free(fa);
			free(fb);
		}
	}
	free(exp);
}

/* ---- 2. truncate ---- */

static void truncate_file(struct segio *s, const char *path)
{
	uint8_t *exp = malloc(16 * MiB);
	assert_non_null(exp);
	uint64_t ds = 7;
	size_t size = 0;
	assert_int_equal(segio_open(s, path), 0);
	/* back to a synced size at an odd offset, several buffers later */
	append_rnd(s, exp, &size, 700001, &ds);
	assert_int_equal(segio_sync(s), 0);
	size_t synced = size;
	append_rnd(s, exp, &size, 2 * MiB + 555, &ds);
	commit_rnd(s, exp, &size, 200 * KiB, 123457, &ds);
	assert_int_equal(segio_truncate(s, synced), 0);
	assert_int_equal(segio_size(s), synced);
	size = synced;
	append_rnd(s, exp, &size, 300 * KiB + 7, &ds);
	commit_rnd(s, exp, &size, 100 * KiB, 99999, &ds);
	assert_int_equal(segio_sync(s), 0);
	assert_file(path, exp, size);
	/* within the current buffer, nothing synced since */
	append_rnd(s, exp, &size, 1000, &ds);
	assert_int_equal(segio_truncate(s, size - 500), 0);
	size -= 500;
	append_rnd(s, exp, &size, 4321, &ds);
	/* back over written but unsynced buffers (no error: any size is allowed) */
	append_rnd(s, exp, &size, 3 * MiB, &ds);
	size_t cut = size - 2 * MiB - 123;
	assert_int_equal(segio_truncate(s, cut), 0);
	size = cut;
	append_rnd(s, exp, &size, 777, &ds);
	/* to 0 and a block boundary */
	assert_int_equal(segio_truncate(s, 0), 0);
	size = 0;
	append_rnd(s, exp, &size, 3 * SEGIO_ALIGN, &ds);
	assert_int_equal(segio_sync(s), 0);
	append_rnd(s, exp, &size, 5, &ds);
	assert_int_equal(segio_truncate(s, 2 * SEGIO_ALIGN), 0);
	size = 2 * SEGIO_ALIGN;
	append_rnd(s, exp, &size, 1 * MiB + 3, &ds);
	assert_int_equal(segio_truncate(s, segio_size(s) + 1), -EINVAL);
	assert_int_equal(segio_close(s), 0);
	assert_file(path, exp, size);
	free(exp);
}

static void test_truncate(void **state)
{
	struct dirs *d = *state;
	for (size_t e = 0; e < 2; e++) {
		struct segio *s;
		assert_int_equal(segio_create(engines[e], 4, 512 * KiB, &s), 0);
		char path[256];
		snprintf(path, sizeof(path), "%s/trunc-%s", d->ext4, segio_engine_name(s));
		truncate_file(s, path);
		snprintf(path, sizeof(path), "%s/trunc-%s", d->shm, segio_engine_name(s));
		truncate_file(s, path);
		segio_destroy(s);
	}
}

/* ---- 3. synced bytes are visible, without padding ---- */

static void sync_visible_file(struct segio *s, const char *path)
{
	uint8_t *exp = malloc(8 * MiB);
	assert_non_null(exp);
	uint64_t ds = 99, os = 5;
	size_t size = 0;
	assert_int_equal(segio_open(s, path), 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int round = 0; round < 12; round++) {
		append_rnd(s, exp, &size, rnd_len(&os, 600 * KiB), &ds);
		assert_int_equal(segio_sync(s), 0);
		assert_int_equal(segio_sync(s), 0); /* nothing new: no-op */
		struct stat st;
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, segio_size(s));
		uint8_t *b = malloc(size + 1);
		assert_non_null(b);
		assert_int_equal(pread(fd, b, size + 1, 0), (ssize_t)size);
		assert_memory_equal(b, exp, size);
		free(b);
	}
	close(fd);
	assert_int_equal(segio_close(s), 0);
	assert_file(path, exp, size);
	free(exp);
}

static void test_sync_visible(void **state)
{
	struct dirs *d = *state;
	for (size_t e = 0; e < 2; e++) {
		struct segio *s;
		assert_int_equal(segio_create(engines[e], 3, 256 * KiB, &s), 0);
		char path[256];
		snprintf(path, sizeof(path), "%s/vis-%s", d->ext4, segio_engine_name(s));
		sync_visible_file(s, path);
		snprintf(path, sizeof(path), "%s/vis-%s", d->shm, segio_engine_name(s));
		sync_visible_file(s, path);
		struct segio_stats st;
		segio_stats(s, &st);
		assert_int_equal(st.syncs, 24);
		segio_destroy(s);
	}
}

/* ---- contract: arguments and states ---- */

static void test_contract(void **state)
{
	struct dirs *d = *state;
	struct segio *s = (struct segio *)1;
	assert_int_equal(segio_create(SEGIO_PWRITEV, 1, 1 * MiB, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(segio_create(SEGIO_PWRITEV, 4, 64 * KiB + 512, &s), -EINVAL);
	assert_int_equal(segio_create(SEGIO_PWRITEV, 4, 32 * KiB, &s), -EINVAL);
	for (size_t e = 0; e < 2; e++) {
		assert_int_equal(segio_create(engines[e], 2, 64 * KiB, &s), 0);
		assert_null(segio_reserve(s, 10));
		assert_int_equal(segio_append(s, "x", 1), -EBADF);
		assert_int_equal(segio_sync(s), -EBADF);
		assert_int_equal(segio_close(s), -EBADF);
		char path[256];
		snprintf(path, sizeof(path), "%s/contract-%s", d->ext4, segio_engine_name(s));
		assert_int_equal(segio_open(s, path), 0);
		assert_int_equal(segio_open(s, path), -EBUSY);
		assert_null(segio_reserve(s, 64 * KiB - SEGIO_ALIGN + 1));
		assert_int_equal(segio_error(s), 0);
		assert_non_null(segio_reserve(s, 100));
		assert_int_equal(segio_commit(s, 101), -EINVAL);
		assert_int_equal(segio_commit(s, 0), 0);
		assert_int_equal(segio_commit(s, 1), -EINVAL); /* nothing reserved any more */
		assert_int_equal(segio_append(s, "abc", 3), 0);
		assert_int_equal(segio_close(s), 0);
		assert_file(path, (const uint8_t *)"abc", 3);
		assert_int_equal(segio_open(s, path), -EEXIST);
		/* a commit that fills the buffer exactly, then destroy with the file open */
		snprintf(path, sizeof(path), "%s/contract2-%s", d->ext4, segio_engine_name(s));
		assert_int_equal(segio_open(s, path), 0);
		static uint8_t exp[64 * KiB + 15];
		uint64_t ds = 1;
		size_t size = 0;
		append_rnd(s, exp, &size, SEGIO_ALIGN, &ds);
		commit_rnd(s, exp, &size, 64 * KiB - SEGIO_ALIGN, 64 * KiB - SEGIO_ALIGN, &ds);
		append_rnd(s, exp, &size, 10, &ds);
		assert_int_equal(segio_sync(s), 0);
		assert_file(path, exp, size);
		append_rnd(s, exp, &size, 5, &ds);
		segio_destroy(s);
	}
	segio_destroy(NULL);
}

/* ---- 4. engine choice ---- */

static void test_engine_choice(void **state)
{
	(void)state;
	struct segio *s;
	/* is io_uring available here at all? */
	unsetenv("FLOWSCOPE_IO");
	int uring = segio_create(SEGIO_URING, 2, 64 * KiB, &s);
	if (uring == 0)
		segio_destroy(s);
	assert_int_equal(segio_create(SEGIO_AUTO, 2, 64 * KiB, &s), 0);
	if (uring == 0) {
		assert_string_equal(segio_engine_name(s), "io_uring");
		struct segio_stats st;
		segio_stats(s, &st);
		if (st.registered)
			assert_null(segio_note(s));
	} else {
		print_message("io_uring unavailable here (%s)\n", strerror(-uring));
		assert_string_equal(segio_engine_name(s), "pwritev");
		assert_non_null(strstr(segio_note(s), "io_uring unavailable"));
	}
	segio_destroy(s);

	setenv("FLOWSCOPE_IO", "pwritev", 1);
	assert_int_equal(segio_create(SEGIO_AUTO, 2, 64 * KiB, &s), 0);
	assert_string_equal(segio_engine_name(s), "pwritev");
	assert_null(segio_note(s)); /* asked for, not a fallback */
	segio_destroy(s);
	if (uring == 0) { /* an explicit engine ignores the environment */
		assert_int_equal(segio_create(SEGIO_URING, 2, 64 * KiB, &s), 0);
		assert_string_equal(segio_engine_name(s), "io_uring");
		segio_destroy(s);
	}

	setenv("FLOWSCOPE_IO", "uring", 1);
	assert_int_equal(segio_create(SEGIO_AUTO, 2, 64 * KiB, &s), uring);
	if (uring == 0) {
		assert_string_equal(segio_engine_name(s), "io_uring");
		segio_destroy(s);
	}

	setenv("FLOWSCOPE_IO", "bogus", 1);
	assert_int_equal(segio_create(SEGIO_AUTO, 2, 64 * KiB, &s), 0);
	assert_non_null(segio_note(s));
	assert_non_null(strstr(segio_note(s), "FLOWSCOPE_IO"));
	segio_destroy(s);
	unsetenv("FLOWSCOPE_IO");
}

/* Runs fn in a child process; returns its exit status (77: skipped). */
static int in_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* io_uring_setup fails with EPERM, as under a container's seccomp profile. */
static int child_no_uring(void *arg)
{
	(void)arg;
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return 77;
	struct segio *s;
	unsetenv("FLOWSCOPE_IO");
	if (segio_create(SEGIO_URING, 2, 64 * KiB, &s) != -EPERM)
		return 1;
	setenv("FLOWSCOPE_IO", "uring", 1);
	if (segio_create(SEGIO_AUTO, 2, 64 * KiB, &s) != -EPERM)
		return 2;
	unsetenv("FLOWSCOPE_IO");
	if (segio_create(SEGIO_AUTO, 2, 64 * KiB, &s) != 0)
		return 3;
	const char *note = segio_note(s);
	printf("note: %s\n", note ? note : "(none)");
	int bad = strcmp(segio_engine_name(s), "pwritev") != 0 || !note ||
	          !strstr(note, "io_uring unavailable") || !strstr(note, strerror(EPERM));
	segio_destroy(s);
	return bad ? 4 : 0;
}

static void test_fallback_seccomp(void **state)
{
	(void)state;
	int r = in_child(child_no_uring, NULL);
	if (r == 77)
		skip();
	assert_int_equal(r, 0);
}

/* As an unprivileged user with a 64 KiB memlock limit: io_uring without registered buffers. */
static int child_unregistered(void *arg)
{
	const char *dir = arg;
	struct rlimit rl = {64 * KiB, 64 * KiB};
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		return 77;
	struct segio *s;
	if (segio_create(SEGIO_URING, 4, 1 * MiB, &s) != 0)
		return 77; /* io_uring not allowed for this user */
	struct segio_stats st;
	segio_stats(s, &st);
	const char *note = segio_note(s);
	printf("note: %s\n", note ? note : "(none)");
	if (st.registered || !note || !strstr(note, "not registered"))
		return 1;
	char path[256];
	snprintf(path, sizeof(path), "%s/unregistered", dir);
	static uint8_t exp[5 * MiB + 3];
	uint64_t ds = 3;
	fill(exp, sizeof(exp), &ds);
	if (segio_open(s, path) != 0 || segio_append(s, exp, 3 * MiB + 1) != 0 ||
	    segio_sync(s) != 0 || segio_append(s, exp + 3 * MiB + 1, sizeof(exp) - 3 * MiB - 1) ||
	    segio_close(s) != 0)
		return 2;
	segio_stats(s, &st);
	segio_destroy(s);
	int fd = open(path, O_RDONLY);
	static uint8_t got[sizeof(exp) + 1];
	ssize_t n = fd < 0 ? -1 : pread(fd, got, sizeof(got), 0);
	close(fd);
	return n == (ssize_t)sizeof(exp) && memcmp(got, exp, sizeof(exp)) == 0 && st.direct ? 0 : 3;
}

static void test_unregistered_buffers(void **state)
{
	struct dirs *d = *state;
	if (getuid() != 0)
		skip();
	assert_int_equal(chmod(d->ext4, 0777), 0);
	int r = in_child(child_unregistered, d->ext4);
	assert_int_equal(chmod(d->ext4, 0700), 0);
	if (r == 77)
		skip();
	assert_int_equal(r, 0);
}

/* ---- 5. ENOSPC ---- */

struct full_fs {
	char dir[128];
	int mounted;
	struct segio *s;
	uint8_t *exp;
};

static int full_fs_setup(void **state)
{
	struct full_fs *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/flowscope-test-segio-full.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* Runs even when the test failed half-way: nothing stays mounted. */
static int full_fs_teardown(void **state)
{
	struct full_fs *f = *state;
	segio_destroy(f->s);
	free(f->exp);
	if (f->mounted && umount2(f->dir, 0) != 0 && umount2(f->dir, MNT_DETACH) != 0)
		fprintf(stderr, "cannot unmount %s: %s\n", f->dir, strerror(errno));
	rm_rf(f->dir);
	free(f);
	return 0;
}

static int write_filler(const char *path, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	static const uint8_t z[64 * KiB];
	int r = 0;
	while (len > 0 && r == 0) {
		size_t n = len < sizeof(z) ? len : sizeof(z);
		ssize_t w = write(fd, z, n);
		r = w > 0 ? 0 : -ENOSPC;
		len -= w > 0 ? (size_t)w : 0;
	}
	if (fsync(fd) != 0 && r == 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Appends (syncing every ~100 KiB) until the filesystem is full, checks
 * ENOSPC, truncates to the last synced size, frees the filler and goes on.
 */
static void fill_until_enospc(struct full_fs *f, enum segio_engine engine, int direct)
{
	const size_t cap = 64 * MiB;
	char path[256], filler[256];
	snprintf(path, sizeof(path), "%s/seg-%d", f->dir, (int)engine);
	snprintf(filler, sizeof(filler), "%s/filler", f->dir);
	assert_int_equal(segio_create(engine, 4, 256 * KiB, &f->s), 0);
	assert_int_equal(segio_open(f->s, path), 0);
	struct segio_stats st;
	segio_stats(f->s, &st);
	assert_int_equal(st.direct, direct);
	uint64_t ds = 11, os = 12;
	size_t size = 0, synced = 0, since = 0;
	int err = 0;
	while (!err && size < cap) {
		size_t n = rnd_len(&os, 64 * KiB);
		fill(f->exp + size, n, &ds);
		if (rnd(&os) & 1) {
			err = segio_append(f->s, f->exp + size, n);
		} else {
			uint8_t *p = segio_reserve(f->s, n);
			if (p)
				memcpy(p, f->exp + size, n);
			err = p ? segio_commit(f->s, n) : segio_error(f->s);
		}
		if (err)
			break;
		size += n;
		since += n;
		if (since >= 100 * KiB && (err = segio_sync(f->s)) == 0) {
			synced = size;
			since = 0;
		}
	}
	print_message("%s: ENOSPC after %zu bytes appended, %zu synced\n", segio_engine_name(f->s),
	              size, synced);
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(segio_error(f->s), -ENOSPC);
	assert_null(segio_reserve(f->s, 10));
	assert_int_equal(segio_append(f->s, "x", 1), -ENOSPC);
	assert_int_equal(segio_sync(f->s), -ENOSPC);
	/* not past the failed write: those bytes may be lost; the error stays */
	assert_int_equal(segio_truncate(f->s, segio_size(f->s)), -ENOSPC);
	assert_int_equal(segio_error(f->s), -ENOSPC);
	assert_int_equal(segio_truncate(f->s, synced), 0);
	assert_int_equal(segio_error(f->s), 0);
	assert_file(path, f->exp, synced);
	assert_int_equal(unlink(filler), 0);
	size = synced;
	fill(f->exp + size, 100 * KiB + 3, &ds);
	assert_int_equal(segio_append(f->s, f->exp + size, 100 * KiB + 3), 0);
	size += 100 * KiB + 3;
	assert_int_equal(segio_sync(f->s), 0);
	assert_int_equal(segio_close(f->s), 0);
	assert_file(path, f->exp, size);
	segio_destroy(f->s);
	f->s = NULL;
	assert_int_equal(unlink(path), 0);
}

static void test_enospc_tmpfs(void **state)
{
	struct full_fs *f = *state;
	if (getuid() != 0)
		skip();
	assert_int_equal(mount("tmpfs", f->dir, "tmpfs", 0, "size=2m"), 0);
	f->mounted = 1;
	f->exp = malloc(64 * MiB + 64 * KiB);
	assert_non_null(f->exp);
	char filler[256];
	snprintf(filler, sizeof(filler), "%s/filler", f->dir);
	for (size_t e = 0; e < 2; e++) {
		assert_int_equal(write_filler(filler, 512 * KiB), 0);
		fill_until_enospc(f, engines[e], 0);
	}
}

/* The same with O_DIRECT: a 16 MiB ext4 image on a loop device, filled but for ~1.5 MiB. */
static void test_enospc_ext4_direct(void **state)
{
	struct full_fs *f = *state;
	if (getuid() != 0 ||
	    (access("/sbin/mkfs.ext4", X_OK) != 0 && access("/usr/sbin/mkfs.ext4", X_OK) != 0))
		skip();
	char img[256], mnt[256], cmd[800], filler[256];
	snprintf(img, sizeof(img), "%s/img", f->dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
	assert_int_equal(mkdir(mnt, 0755), 0);
	int fd = open(img, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 * MiB), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F -m 0 -b 4096 '%s' >/dev/null 2>&1", img);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "mount -o loop '%s' '%s' 2>/dev/null", img, mnt);
	if (system(cmd) != 0)
		skip(); /* no loop devices here */
	snprintf(f->dir + strlen(f->dir), sizeof(f->dir) - strlen(f->dir), "/mnt");
	f->mounted = 1; /* teardown unmounts f->dir (mnt), then removes the parent */
	f->exp = malloc(64 * MiB + 64 * KiB);
	assert_non_null(f->exp);
	snprintf(filler, sizeof(filler), "%s/filler", f->dir);
	for (size_t e = 0; e < 2; e++) {
		struct statvfs sv;
		assert_int_equal(statvfs(f->dir, &sv), 0);
		size_t avail = (size_t)sv.f_bavail * sv.f_frsize;
		assert_true(avail > 3 * MiB);
		assert_int_equal(write_filler(filler, avail - 1536 * KiB), 0);
		fill_until_enospc(f, engines[e], 1);
	}
}

/* The ext4 test mounts on <dir>/mnt: unmount that, then remove <dir>. */
static int ext4_teardown(void **state)
{
	struct full_fs *f = *state;
	char *slash = strrchr(f->dir, '/');
	if (f->mounted) {
		segio_destroy(f->s);
		f->s = NULL;
		if (umount2(f->dir, 0) != 0 && umount2(f->dir, MNT_DETACH) != 0)
			fprintf(stderr, "cannot unmount %s: %s\n", f->dir, strerror(errno));
		f->mounted = 0;
		*slash = '\0';
	}
	return full_fs_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_random_sequences, dirs_setup, dirs_teardown),
	    cmocka_unit_test_setup_teardown(test_truncate, dirs_setup, dirs_teardown),
	    cmocka_unit_test_setup_teardown(test_sync_visible, dirs_setup, dirs_teardown),
	    cmocka_unit_test_setup_teardown(test_contract, dirs_setup, dirs_teardown),
	    cmocka_unit_test(test_engine_choice),
	    cmocka_unit_test(test_fallback_seccomp),
	    cmocka_unit_test_setup_teardown(test_unregistered_buffers, dirs_setup, dirs_teardown),
	    cmocka_unit_test_setup_teardown(test_enospc_tmpfs, full_fs_setup, full_fs_teardown),
	    cmocka_unit_test_setup_teardown(test_enospc_ext4_direct, full_fs_setup, ext4_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
