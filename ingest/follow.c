/*
 * Following a growing text log as `tail -F` does (ingest_follow_*), for
 * detector logs such as Suricata's eve.json.
 *
 * One buffer of max_line + 1 bytes: lines are handed out as pointers into it,
 * a partial line stays there until its newline arrives, and a line that fills
 * the buffer without a newline is too long: from then on bytes are read into
 * the buffer and thrown away until the next newline, so no line is ever held
 * whole whatever its length.  `scan` remembers how far the buffer is known to
 * hold no newline, so a line that arrives in many small writes is searched
 * once.
 *
 * The file is named by its path, not its inode: when reading stops at the end
 * of the open file, the path is checked.  The open file shrank below the read
 * position: truncated, read again from 0.  Another file at the path (rename
 * or delete, then create): the old file is read to its end, a last line
 * without newline delivered as it is, then the new file is read from 0.  No
 * file at the path: keep the old one (its writer may still append until it
 * reopens).  inotify on the directory and the file only shortens the waits;
 * every wait also ends after INGEST_FOLLOW_POLL_MS, so correctness never
 * depends on an event arriving.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"

struct follow_counters {
	/* written by the following thread only, read by any thread (ingest_follow_stats) */
	_Atomic uint64_t lines, bytes, rotations, truncations, too_long, open_errors;
};

struct ingest_follow {
	char *path;
	int fd;    /* the file read now; -1 while the path has none */
	dev_t dev; /* identity of fd's file, to tell another file at the path */
	ino_t ino;
	uint64_t off; /* bytes of fd's file consumed into buf (its read position) */
	char *buf;    /* cap = max_line + 1 bytes */
	size_t cap, max_line;
	size_t start;   /* first byte of the line being assembled */
	size_t scan;    /* [start, scan) holds no newline */
	size_t end;     /* end of the bytes read */
	int skipping;   /* discarding up to the next newline (too long, or started mid-line) */
	int flush_tail; /* the old file is done: hand out its unterminated last line */
	dev_t bad_dev;  /* the file at the path that could not be opened (counted once) */
	ino_t bad_ino;
	int ino_fd;  /* inotify, -1 without */
	int wd_file; /* watch on fd's file, -1 without */
	struct follow_counters c;
};

static void count_add(_Atomic uint64_t *c, uint64_t v)
{
	/* one writer: load + store, no read-modify-write needed; relaxed: counters only */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

static uint64_t now_ns(void)
{
	return qq_clock_ns(CLOCK_MONOTONIC);
}

static void buf_reset(struct ingest_follow *f)
{
	f->start = f->scan = f->end = 0;
	f->skipping = 0;
	f->flush_tail = 0;
}

static void watch_file(struct ingest_follow *f)
{
	if (f->ino_fd < 0)
		return;
	if (f->wd_file >= 0)
		inotify_rm_watch(f->ino_fd, f->wd_file);
	f->wd_file = inotify_add_watch(f->ino_fd, f->path,
	                               IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF);
}

/* At the end of a file whose last byte is not a newline, the line it ends is skipped. */
static void seek_end(struct ingest_follow *f, const struct stat *st)
{
	char last = '\n';
	f->off = (uint64_t)st->st_size;
	if (lseek(f->fd, st->st_size, SEEK_SET) < 0)
		f->off = 0;
	if (f->off > 0 && pread(f->fd, &last, 1, st->st_size - 1) == 1 && last != '\n')
		f->skipping = 1;
}

/*
 * Opens the file now at the path and makes it the one read (from its end when
 * at_end).  Returns 1 when it did, 0 when the path has no usable file (the
 * current one, if any, stays).
 */
static int open_path(struct ingest_follow *f, int at_end)
{
	struct stat st;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		struct stat ps;
		int missing = fd < 0 && errno == ENOENT;
		if (fd >= 0)
			close(fd);
		if (!missing && stat(f->path, &ps) == 0 &&
		    (ps.st_dev != f->bad_dev || ps.st_ino != f->bad_ino)) {
			f->bad_dev = ps.st_dev;
			f->bad_ino = ps.st_ino;
			count_add(&f->c.open_errors, 1);
		}
		return 0;
	}
	if (f->fd >= 0) {
		close(f->fd);
		count_add(&f->c.rotations, 1);
	}
	f->fd = fd;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->off = 0;
	buf_reset(f);
	if (at_end)
		seek_end(f, &st);
	watch_file(f);
	return 1;
}

/* Reads what the file has beyond the buffer's bytes.  Returns the bytes read (0: none now). */
static size_t fill(struct ingest_follow *f)
{
	if (f->fd < 0)
		return 0;
	if (f->start > 0) {
		memmove(f->buf, f->buf + f->start, f->end - f->start);
		f->end -= f->start;
		f->scan -= f->start;
		f->start = 0;
	}
	ssize_t n = read(f->fd, f->buf + f->end, f->cap - f->end);
	if (n <= 0)
		return 0; /* end of file, or EINTR/EAGAIN/EIO: the next check tries again */
	f->end += (size_t)n;
	f->off += (uint64_t)n;
	count_add(&f->c.bytes, (uint64_t)n);
	return (size_t)n;
}

/* Hands out the next complete line in the buffer (1), or 0 when there is none yet. */
static int take_line(struct ingest_follow *f, const char **line, size_t *len)
{
	while (f->scan < f->end) {
		char *nl = memchr(f->buf + f->scan, '\n', f->end - f->scan);
		if (!nl) {
			f->scan = f->end;
			break;
		}
		size_t at = (size_t)(nl - f->buf), from = f->start;
		f->start = f->scan = at + 1;
		if (f->skipping) {
			f->skipping = 0;
			continue;
		}
		*line = f->buf + from;
		*len = at - from;
		count_add(&f->c.lines, 1);
		return 1;
	}
	if (!f->skipping && f->end - f->start > f->max_line) {
		count_add(&f->c.too_long, 1);
		f->skipping = 1;
	}
	if (f->skipping) {
		f->start = f->scan = f->end; /* discarded: the next fill reuses the buffer */
	} else if (f->flush_tail && f->end > f->start) {
		*line = f->buf + f->start;
		*len = f->end - f->start;
		f->start = f->scan = f->end;
		count_add(&f->c.lines, 1);
		return 1;
	}
	return 0;
}

/*
 * Reading stopped at the end of the file: what happened to the path?
 * Returns 1 when there may be more to read now, 0 to wait.
 */
static int check_path(struct ingest_follow *f)
{
	struct stat st;
	if (f->fd < 0)
		return open_path(f, 0);
	if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size != f->off) {
		if ((uint64_t)st.st_size > f->off)
			return 1; /* written since the read */
		lseek(f->fd, 0, SEEK_SET);
		f->off = 0;
		buf_reset(f);
		count_add(&f->c.truncations, 1);
		return 1;
	}
	if (stat(f->path, &st) != 0 || (st.st_dev == f->dev && st.st_ino == f->ino))
		return 0; /* same file, or none at the path: the old one may still grow */
	/* Another file: drain the old one first (its writer has reopened by now). */
	if (fill(f) > 0)
		return 1;
	if (!f->skipping && f->end > f->start && !f->flush_tail) {
		f->flush_tail = 1;
		return 1;
	}
	return open_path(f, 0);
}

/* Waits for an inotify event or the poll interval, whichever comes first, up to deadline. */
static void wait_change(struct ingest_follow *f, uint64_t deadline)
{
	uint64_t now = now_ns(), left = deadline > now ? deadline - now : 0;
	int ms = (int)(left / 1000000u + (left % 1000000u != 0));
	if (ms > INGEST_FOLLOW_POLL_MS)
		ms = INGEST_FOLLOW_POLL_MS;
	if (f->ino_fd < 0) {
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		return;
	}
	struct pollfd p = {.fd = f->ino_fd, .events = POLLIN};
	if (poll(&p, 1, ms) > 0) {
		char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		while (read(f->ino_fd, ev, sizeof(ev)) > 0) {
			/* drained: the events only say "look again" */
		}
	}
}

/* Checks of the path that may go round again at once, per call: a file whose size says
 * "more" while read() gives nothing (a failing disk) must not make the caller spin. */
#define FOLLOW_RECHECKS 8

int ingest_follow_next(struct ingest_follow *f, const char **line, size_t *len, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	for (unsigned rechecks = 0;;) {
		if (take_line(f, line, len))
			return 1;
		if (fill(f) > 0)
			continue;
		if (check_path(f) && rechecks++ < FOLLOW_RECHECKS)
			continue;
		if (now_ns() >= deadline)
			return 0;
		wait_change(f, deadline);
	}
}

static int dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 1;
	if (n >= cap)
		return -ENAMETOOLONG;
	if (!slash)
		memcpy(dir, ".", 2);
	else if (n == 0)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	return 0;
}

/* The path's directory must exist; the path itself is a regular file or nothing yet. */
static int check_open_path(const char *path, char *errbuf)
{
	char dir[PATH_MAX];
	struct stat st;
	int r = dir_of(path, dir, sizeof(dir));
	if (r == 0 && stat(dir, &st) != 0)
		r = -errno;
	else if (r == 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: directory %.200s: %s", path, dir,
		         strerror(-r));
		return r;
	}
	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	if (r)
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s", path,
		         r == -EISDIR ? "is a directory" : "not a regular file");
	return r;
}

static void watch_dir(struct ingest_follow *f)
{
	char dir[PATH_MAX];
	f->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (f->ino_fd < 0 || dir_of(f->path, dir, sizeof(dir)) != 0)
		return;
	/* no directory watch (inotify limits): the poll interval still finds new files */
	inotify_add_watch(f->ino_fd, dir, IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE);
}

static struct ingest_follow *follow_new(const char *path, size_t max_line)
{
	struct ingest_follow *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fd = f->ino_fd = f->wd_file = -1;
	f->max_line = max_line;
	f->cap = max_line + 1;
	f->path = strdup(path);
	f->buf = malloc(f->cap);
	if (!f->path || !f->buf) {
		ingest_follow_close(f);
		return NULL;
	}
	return f;
}

int ingest_follow_open(const char *path, const struct ingest_follow_opts *opts,
                       struct ingest_follow **out, char *errbuf)
{
	size_t max_line = opts && opts->max_line ? opts->max_line : INGEST_FOLLOW_MAX_LINE;
	errbuf[0] = '\0';
	int r = check_open_path(path, errbuf);
	if (r)
		return r;
	struct ingest_follow *f = max_line < SIZE_MAX ? follow_new(path, max_line) : NULL;
	if (!f) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: no memory for a %zu-byte line", path,
		         max_line);
		return -ENOMEM;
	}
	watch_dir(f);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s", path, strerror(-r));
		ingest_follow_close(f);
		return r;
	}
	if (fd >= 0) {
		close(fd);
		open_path(f, !(opts && opts->from_start)); /* gone again meanwhile: waited for */
	}
	*out = f;
	return 0;
}

void ingest_follow_stats(const struct ingest_follow *f, struct ingest_follow_stats *out)
{
	out->lines = atomic_load_explicit(&f->c.lines, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&f->c.bytes, memory_order_relaxed);
	out->rotations = atomic_load_explicit(&f->c.rotations, memory_order_relaxed);
	out->truncations = atomic_load_explicit(&f->c.truncations, memory_order_relaxed);
	out->too_long = atomic_load_explicit(&f->c.too_long, memory_order_relaxed);
	out->open_errors = atomic_load_explicit(&f->c.open_errors, memory_order_relaxed);
}

void ingest_follow_close(struct ingest_follow *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	if (f->ino_fd >= 0)
		close(f->ino_fd);
	free(f->buf);
	free(f->path);
	free(f);
}
