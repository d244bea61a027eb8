/*
 * segio: appends into a ring of I/O buffers written by io_uring or by a
 * pwritev I/O thread, with O_DIRECT where the filesystem supports it.
 *
 * Design
 *   The buffer logic is shared; an engine only knows how to start a write of
 *   buffer i (engine_submit) and how to collect finished writes
 *   (engine_reap), which it reports to complete() in the caller's thread.
 *   Every buffer is FREE, FILLING (exactly one: s->cur) or INFLIGHT (handed
 *   to the engine, not touched by the caller until complete() frees it).
 *
 * Invariants
 *   - cur->off + cur->len == s->size: the current buffer holds the last bytes
 *     appended; every byte before cur->off was handed to the engine.
 *   - With O_DIRECT, every buffer's `off` and every write's offset and length
 *     are multiples of SEGIO_ALIGN.  A handoff writes the aligned prefix and
 *     copies the tail (< SEGIO_ALIGN bytes) to the next buffer, which starts
 *     at that aligned offset.  Writes in flight never overlap: a block is
 *     written again only by a later buffer, or after segio_sync() waited.
 *   - Each buffer has at most one write in flight; a short write is resumed
 *     by complete() (with O_DIRECT from the last aligned byte, rewriting the
 *     same bytes), so the io_uring SQ never needs more than nbufs entries.
 *
 * Why 4096 and not the 512 bytes that ext4 on a virtio disk reports as its
 * O_DIRECT alignment: a write that is not aligned to the filesystem block
 * makes ext4 take its "unaligned DIO" path, which waits for every other
 * direct write on the inode: one sync at an odd offset would serialise all
 * later writes.  Aligning to 4096 (a multiple of every alignment we accept)
 * keeps every write on the concurrent path.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "archive/segio.h"

#define MIN_BUFSIZE (64u << 10)
#define MAX_BUFSIZE (1ull << 30) /* largest io_uring registered buffer */
#define MAX_NBUFS 1024u          /* IOV_MAX: one pwritev can take every buffer */
#define NOTE_LEN 200

enum buf_state { BUF_FREE, BUF_FILLING, BUF_INFLIGHT };

/* One I/O buffer.  All fields belong to the caller's thread; while INFLIGHT the
 * pwritev I/O thread reads mem/off/wlen/done (published by the queue mutex). */
struct segio_buf {
	uint8_t *mem; /* bufsize bytes, SEGIO_ALIGN-aligned */
	uint64_t off; /* file offset of mem[0] */
	size_t len;   /* FILLING: bytes appended */
	size_t wlen;  /* INFLIGHT: bytes of mem to write (padded to a block at a sync) */
	size_t done;  /* INFLIGHT: bytes of wlen already written */
	enum buf_state state;
};

/* pwritev engine: queue of submitted buffers and list of finished ones. */
struct pwv {
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t work; /* I/O thread waits: queue not empty, or stop */
	pthread_cond_t done; /* caller waits: a write finished */
	/* protected by mu */
	unsigned *q; /* submitted buffer indices, FIFO, at most nbufs */
	unsigned qhead, qlen;
	unsigned *fin; /* finished buffer indices ... */
	int *fin_res;  /* ... and their results (bytes written from `done`, or -errno) */
	unsigned nfin;
	int stop;
	/* owned by the I/O thread */
	unsigned *batch;
	int *batch_res;
	struct iovec *iov;
	/* owned by the caller */
	unsigned *reaped;
	int *reaped_res;
};

struct segio {
	enum segio_engine engine; /* SEGIO_URING or SEGIO_PWRITEV */
	unsigned nbufs;
	size_t bufsize;
	uint8_t *mem; /* nbufs * bufsize */
	struct segio_buf *bufs;
	char note[NOTE_LEN];

	struct io_uring ring;
	int ring_ready;
	int registered;
	int broken; /* the engine failed (submit or wait): only close/destroy are left */
	struct pwv pwv;

	/* the open file (fd < 0: none) */
	int fd;
	int direct;
	unsigned cur;      /* the FILLING buffer */
	uint64_t size;     /* logical bytes appended */
	size_t reserved;   /* maxlen of the last segio_reserve(), until segio_commit() */
	int dirty;         /* appended or truncated since the last fdatasync */
	uint64_t synced;   /* size at the last successful sync (or truncation below it) */
	int err;           /* sticky negative errno */
	uint64_t err_off;  /* with err: bytes from here on may be lost (before: intact) */
	unsigned inflight; /* buffers INFLIGHT */

	uint64_t writes, bytes_written, syncs, max_inflight;
};

static size_t align_down(size_t v)
{
	return v & ~(size_t)(SEGIO_ALIGN - 1);
}

static size_t align_up(size_t v)
{
	return align_down(v + SEGIO_ALIGN - 1);
}

/*
 * Records the first error, and that the bytes from `off` on may be lost; returns
 * the sticky error.  Bytes before the last sync stay intact even when a write
 * over them fails: with O_DIRECT the block holding the synced size is written
 * again, with identical bytes before that size.
 */
static int set_err(struct segio *s, int err, uint64_t off)
{
	if (err >= 0)
		return s->err;
	if (!s->err)
		s->err = err;
	off = off > s->synced ? off : s->synced;
	if (off < s->err_off)
		s->err_off = off;
	return s->err;
}

static int engine_submit(struct segio *s, unsigned i);

/*
 * A write of buffer i finished with `res` (bytes written from b->done, or
 * -errno).  Resumes a short write, else frees the buffer; a failure becomes
 * the sticky error and the buffer's bytes are lost (segio_truncate).
 */
static void complete(struct segio *s, unsigned i, int res)
{
	struct segio_buf *b = &s->bufs[i];
	if (res == 0 && b->done < b->wlen)
		res = -EIO; /* a regular file never writes nothing without an error */
	if (res > 0) {
		s->writes++;
		s->bytes_written += (uint64_t)res;
		b->done += (size_t)res;
		if (b->done < b->wlen) {
			if (s->direct)
				b->done = align_down(b->done); /* rewrite identical bytes */
			res = engine_submit(s, i);
			if (res == 0)
				return;
		}
	}
	set_err(s, res, b->off + b->done);
	b->state = BUF_FREE;
	s->inflight--;
}

/* ---- io_uring engine ------------------------------------------------------------- */

static int uring_init(struct segio *s, int *init_err)
{
	int r = io_uring_queue_init(s->nbufs, &s->ring, 0);
	if (r < 0) {
		*init_err = r;
		return r;
	}
	s->ring_ready = 1;
	struct iovec *iov = calloc(s->nbufs, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nbufs; i++)
		iov[i] = (struct iovec){s->bufs[i].mem, s->bufsize};
	r = io_uring_register_buffers(&s->ring, iov, s->nbufs);
	free(iov);
	s->registered = r == 0;
	if (r < 0)
		snprintf(s->note, sizeof(s->note),
		         "io_uring buffers not registered (io_uring_register_buffers: %s; "
		         "RLIMIT_MEMLOCK?): writing with unregistered IORING_OP_WRITE",
		         strerror(-r));
	return 0;
}

static int uring_submit(struct segio *s, unsigned i)
{
	struct segio_buf *b = &s->bufs[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe)
		return -EBUSY; /* cannot happen: one SQE per buffer, submitted at once */
	uint8_t *p = b->mem + b->done;
	unsigned len = (unsigned)(b->wlen - b->done);
	uint64_t off = b->off + b->done;
	if (s->registered)
		io_uring_prep_write_fixed(sqe, s->fd, p, len, off, (int)i);
	else
		io_uring_prep_write(sqe, s->fd, p, len, off);
	io_uring_sqe_set_data64(sqe, i);
	for (;;) {
		int r = io_uring_submit(&s->ring);
		if (r >= 1)
			return 0;
		if (r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			s->broken = 1; /* the SQE may or may not have reached the kernel */
			return r < 0 ? r : -EIO;
		}
	}
}

/* Collects finished writes; with `wait`, at least one (something must be in flight). */
static int uring_reap(struct segio *s, int wait)
{
	struct io_uring_cqe *cqe;
	int r;
	do
		r = wait ? io_uring_wait_cqe(&s->ring, &cqe) : io_uring_peek_cqe(&s->ring, &cqe);
	while (r == -EINTR);
	if (r == -EAGAIN && !wait)
		return 0;
	if (r < 0) {
		s->broken = 1;
		return set_err(s, r, s->synced);
	}
	do {
		unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&s->ring, cqe);
		complete(s, i, res);
	} while (io_uring_peek_cqe(&s->ring, &cqe) == 0);
	return 0;
}

/* ---- pwritev engine ------------------------------------------------------------- */

/*
 * Writes one run of file-contiguous buffers with pwritev and sets each
 * buffer's result: the bytes it had to write, or the error that stopped the
 * run.  A short write continues where it stopped (with O_DIRECT from the
 * last aligned byte: the run starts aligned and every length is aligned).
 */
static void pwv_write_run(const struct segio *s, int fd, int direct, const unsigned *idx,
                          unsigned n, int *res, struct iovec *iov)
{
	const struct segio_buf *b0 = &s->bufs[idx[0]];
	uint64_t start = b0->off + b0->done;
	size_t total = 0, written = 0;
	for (unsigned k = 0; k < n; k++)
		total += s->bufs[idx[k]].wlen - s->bufs[idx[k]].done;
	int err = 0;
	while (written < total && !err) {
		unsigned cnt = 0;
		size_t skip = written;
		for (unsigned k = 0; k < n; k++) {
			const struct segio_buf *b = &s->bufs[idx[k]];
			size_t len = b->wlen - b->done;
			if (skip >= len) {
				skip -= len;
				continue;
			}
			iov[cnt++] = (struct iovec){b->mem + b->done + skip, len - skip};
			skip = 0;
		}
		ssize_t w = pwritev(fd, iov, (int)cnt, (off_t)(start + written));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = w < 0 ? -errno : -EIO;
		else
			written += (size_t)w;
		if (direct && written < total)
			written = align_down(written);
	}
	size_t pos = 0;
	for (unsigned k = 0; k < n; k++) {
		size_t len = s->bufs[idx[k]].wlen - s->bufs[idx[k]].done;
		pos += len;
		res[k] = pos <= written ? (int)len : err;
	}
}

/* Writes a batch taken from the queue, one pwritev per run of contiguous buffers. */
static void pwv_write_batch(const struct segio *s, int fd, int direct, const unsigned *idx,
                            unsigned n, int *res, struct iovec *iov)
{
	unsigned k = 0;
	while (k < n) {
		const struct segio_buf *b = &s->bufs[idx[k]];
		uint64_t end = b->off + b->wlen;
		unsigned e = k + 1;
		while (e < n && s->bufs[idx[e]].off + s->bufs[idx[e]].done == end) {
			end = s->bufs[idx[e]].off + s->bufs[idx[e]].wlen;
			e++;
		}
		pwv_write_run(s, fd, direct, idx + k, e - k, res + k, iov);
		k = e;
	}
}

static void *pwv_thread(void *arg)
{
	struct segio *s = arg;
	struct pwv *p = &s->pwv;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->qlen == 0 && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->qlen == 0)
			break; /* stop, and everything submitted was written */
		unsigned n = p->qlen;
		for (unsigned k = 0; k < n; k++)
			p->batch[k] = p->q[(p->qhead + k) % s->nbufs];
		p->qhead = (p->qhead + n) % s->nbufs;
		p->qlen = 0;
		/* fd and direct were set by segio_open before any buffer was queued (the mutex
		 * orders them); the buffers' fields were set before pwv_submit released the mutex */
		int fd = s->fd, direct = s->direct;
		pthread_mutex_unlock(&p->mu);
		pwv_write_batch(s, fd, direct, p->batch, n, p->batch_res, p->iov);
		pthread_mutex_lock(&p->mu);
		for (unsigned k = 0; k < n; k++) {
			p->fin[p->nfin] = p->batch[k];
			p->fin_res[p->nfin++] = p->batch_res[k];
		}
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int pwv_init(struct segio *s)
{
	struct pwv *p = &s->pwv;
	unsigned n = s->nbufs;
	p->q = calloc(n, sizeof(*p->q));
	p->fin = calloc(n, sizeof(*p->fin));
	p->fin_res = calloc(n, sizeof(*p->fin_res));
	p->batch = calloc(n, sizeof(*p->batch));
	p->batch_res = calloc(n, sizeof(*p->batch_res));
	p->iov = calloc(n, sizeof(*p->iov));
	p->reaped = calloc(n, sizeof(*p->reaped));
	p->reaped_res = calloc(n, sizeof(*p->reaped_res));
	if (!p->q || !p->fin || !p->fin_res || !p->batch || !p->batch_res || !p->iov ||
	    !p->reaped || !p->reaped_res)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	/* the I/O thread blocks every signal: they go to the caller's threads */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&p->thread, NULL, pwv_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return -r;
	p->started = 1;
	return 0;
}

static void pwv_fini(struct segio *s)
{
	struct pwv *p = &s->pwv;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_signal(&p->work);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		pthread_cond_destroy(&p->done);
		pthread_cond_destroy(&p->work);
		pthread_mutex_destroy(&p->mu);
	}
	free(p->q);
	free(p->fin);
	free(p->fin_res);
	free(p->batch);
	free(p->batch_res);
	free(p->iov);
	free(p->reaped);
	free(p->reaped_res);
}

static int pwv_submit(struct segio *s, unsigned i)
{
	struct pwv *p = &s->pwv;
	pthread_mutex_lock(&p->mu); /* releases buffer i's fields to the I/O thread */
	p->q[(p->qhead + p->qlen) % s->nbufs] = i;
	p->qlen++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static int pwv_reap(struct segio *s, int wait)
{
	struct pwv *p = &s->pwv;
	pthread_mutex_lock(&p->mu); /* acquires what the I/O thread published with the results */
	while (wait && p->nfin == 0)
		pthread_cond_wait(&p->done, &p->mu);
	unsigned n = p->nfin;
	memcpy(p->reaped, p->fin, n * sizeof(*p->fin));
	memcpy(p->reaped_res, p->fin_res, n * sizeof(*p->fin_res));
	p->nfin = 0;
	pthread_mutex_unlock(&p->mu);
	for (unsigned k = 0; k < n; k++)
		complete(s, p->reaped[k], p->reaped_res[k]);
	return 0;
}

/* ---- shared buffer logic -------------------------------------------------------- */

static int engine_submit(struct segio *s, unsigned i)
{
	return s->engine == SEGIO_URING ? uring_submit(s, i) : pwv_submit(s, i);
}

static int engine_reap(struct segio *s, int wait)
{
	if (s->broken)
		return s->err;
	return s->engine == SEGIO_URING ? uring_reap(s, wait) : pwv_reap(s, wait);
}

/* Hands buffer i to the engine to write its first wlen bytes at b->off. */
static void write_buf(struct segio *s, unsigned i, size_t wlen)
{
	struct segio_buf *b = &s->bufs[i];
	b->wlen = wlen;
	b->done = 0;
	b->state = BUF_INFLIGHT;
	s->inflight++;
	if (s->inflight > s->max_inflight)
		s->max_inflight = s->inflight;
	int r = engine_submit(s, i);
	if (r < 0)
		complete(s, i, r);
}

static int wait_all(struct segio *s)
{
	while (s->inflight > 0) {
		int r = engine_reap(s, 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A FREE buffer other than the current one, waiting for a write to finish if none is. */
static int next_free(struct segio *s, unsigned *out)
{
	for (;;) {
		for (unsigned k = 1; k < s->nbufs; k++) {
			unsigned i = (s->cur + k) % s->nbufs;
			if (s->bufs[i].state == BUF_FREE) {
				*out = i;
				return 0;
			}
		}
		if (s->inflight == 0)
			return -EIO; /* cannot happen: nbufs >= 2 */
		int r = engine_reap(s, 1);
		if (r < 0)
			return r;
	}
}

/*
 * Writes the current buffer (with O_DIRECT its aligned prefix; the tail moves
 * to the next buffer) and makes a free buffer current.  Returns the sticky error.
 */
static int handoff(struct segio *s)
{
	int r = engine_reap(s, 0); /* notice finished writes (and errors) early */
	unsigned i = s->cur, j = 0;
	if (r == 0)
		r = next_free(s, &j);
	if (r < 0)
		return set_err(s, r, s->synced);
	struct segio_buf *b = &s->bufs[i], *n = &s->bufs[j];
	size_t final = s->direct ? align_down(b->len) : b->len;
	n->off = b->off + final;
	n->len = b->len - final;
	memcpy(n->mem, b->mem + final, n->len);
	n->state = BUF_FILLING;
	s->cur = j;
	if (final > 0)
		write_buf(s, i, final);
	else
		b->state = BUF_FREE;
	return s->err;
}

void *segio_reserve(struct segio *s, size_t maxlen)
{
	s->reserved = 0;
	if (s->fd < 0 || s->err || maxlen > s->bufsize - SEGIO_ALIGN)
		return NULL;
	if (s->bufsize - s->bufs[s->cur].len < maxlen && handoff(s) < 0)
		return NULL;
	s->reserved = maxlen;
	struct segio_buf *b = &s->bufs[s->cur];
	return b->mem + b->len;
}

int segio_commit(struct segio *s, size_t len)
{
	if (s->fd < 0)
		return -EBADF;
	if (s->err)
		return s->err;
	if (len > s->reserved)
		return -EINVAL;
	s->reserved = 0;
	struct segio_buf *b = &s->bufs[s->cur];
	b->len += len;
	s->size += len;
	s->dirty |= len > 0;
	if (b->len == s->bufsize)
		return handoff(s);
	return 0;
}

int segio_append(struct segio *s, const void *p, size_t len)
{
	if (s->fd < 0)
		return -EBADF;
	s->reserved = 0;
	const uint8_t *src = p;
	while (!s->err && len > 0) {
		struct segio_buf *b = &s->bufs[s->cur];
		size_t n = s->bufsize - b->len;
		n = n < len ? n : len;
		memcpy(b->mem + b->len, src, n);
		b->len += n;
		s->size += n;
		s->dirty = 1;
		src += n;
		len -= n;
		if (b->len == s->bufsize)
			handoff(s);
	}
	return s->err;
}

uint64_t segio_size(const struct segio *s)
{
	return s->size;
}

int segio_sync(struct segio *s)
{
	if (s->fd < 0)
		return -EBADF;
	if (s->err || !s->dirty)
		return s->err;
	s->reserved = 0;
	struct segio_buf *b = &s->bufs[s->cur];
	size_t len = b->len;
	size_t wlen = s->direct ? align_up(len) : len;
	if (wlen > 0) {
		memset(b->mem + len, 0, wlen - len);
		write_buf(s, s->cur, wlen);
	}
	int r = wait_all(s);
	b->state = BUF_FILLING; /* it stays the current buffer: nothing took it while we waited */
	if (r == 0)
		r = s->err;
	if (r == 0 && wlen > len && ftruncate(s->fd, (off_t)s->size) != 0)
		r = -errno;
	if (r == 0 && fdatasync(s->fd) != 0)
		r = -errno;
	if (r < 0)
		return set_err(s, r,
		               s->synced); /* fdatasync failed: any unsynced byte may be lost */
	s->syncs++;
	s->dirty = 0;
	s->synced = s->size;
	/* the written blocks are final: keep only the unaligned tail (O_DIRECT) */
	size_t final = s->direct ? align_down(len) : len;
	memmove(b->mem, b->mem + final, len - final);
	b->off += final;
	b->len = len - final;
	return 0;
}

/* Reads the bytes [b->off, b->off + b->len) of the file back into b (O_DIRECT: one block). */
static int reread_block(struct segio *s, struct segio_buf *b)
{
	for (int tries = 0; tries < 4; tries++) {
		ssize_t n = pread(s->fd, b->mem, SEGIO_ALIGN, (off_t)b->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n >= b->len)
			return 0;
	}
	return -EIO;
}

int segio_truncate(struct segio *s, uint64_t size)
{
	if (s->fd < 0)
		return -EBADF;
	if (size > s->size)
		return -EINVAL;
	int r = wait_all(s);
	if (r < 0)
		return r;
	if (s->err && size > s->err_off)
		return s->err; /* a failed write may have lost bytes before size */
	if (ftruncate(s->fd, (off_t)size) != 0)
		return -errno;
	struct segio_buf *b = &s->bufs[s->cur];
	if (size >= b->off) {
		b->len = (size_t)(size - b->off); /* the bytes before size are in the buffer */
	} else {
		b->off = s->direct ? align_down(size) : size;
		b->len = (size_t)(size - b->off);
		if (b->len > 0 && (r = reread_block(s, b)) < 0)
			return r;
	}
	s->size = size;
	s->synced = s->synced < size ? s->synced : size;
	s->reserved = 0;
	s->dirty = 1;
	s->err = 0;
	s->err_off = UINT64_MAX;
	return 0;
}

/* ---- files ------------------------------------------------------------------------ */

/* Whether O_DIRECT is worth using on fd (opened with it): not on tmpfs (its pages are the
 * storage), not where statx says direct I/O is unsupported or needs more than SEGIO_ALIGN. */
static int direct_usable(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
		return 0;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (sx.stx_dio_offset_align == 0)
			return 0;
		if (sx.stx_dio_offset_align > SEGIO_ALIGN || sx.stx_dio_mem_align > SEGIO_ALIGN)
			return 0;
	}
#endif
	return 1; /* the kernel did not say: assume SEGIO_ALIGN */
}

int segio_open(struct segio *s, const char *path)
{
	if (s->fd >= 0)
		return -EBUSY;
	if (s->broken)
		return s->err;
	int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
	int direct = 1;
	int fd = open(path, flags | O_DIRECT, 0644);
	if (fd < 0 && errno == EINVAL) {
		direct = 0;
		fd = open(path, flags, 0644);
	}
	if (fd < 0)
		return -errno;
	if (direct && !direct_usable(fd)) {
		direct = 0;
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0) {
			int r = -errno;
			close(fd);
			unlink(path);
			return r;
		}
	}
	for (unsigned i = 0; i < s->nbufs; i++)
		s->bufs[i].state = BUF_FREE;
	s->cur = 0;
	s->bufs[0] = (struct segio_buf){.mem = s->bufs[0].mem, .state = BUF_FILLING};
	s->size = 0;
	s->synced = 0;
	s->reserved = 0;
	s->dirty = 0;
	s->err = 0;
	s->err_off = UINT64_MAX;
	s->direct = direct;
	s->fd = fd; /* published to the I/O thread by the queue mutex with the first write */
	return 0;
}

/* Waits for the writes in flight (unless the engine is broken) and closes the file. */
static int release_file(struct segio *s)
{
	int r = wait_all(s);
	if (close(s->fd) != 0 && r == 0)
		r = -errno;
	s->fd = -1;
	return r;
}

int segio_close(struct segio *s)
{
	if (s->fd < 0)
		return -EBADF;
	int r = segio_sync(s);
	int rc = release_file(s);
	return r < 0 ? r : rc;
}

/* ---- context ---------------------------------------------------------------------- */

/* Sets up the engine asked for (or chosen by FLOWSCOPE_IO); AUTO falls back to pwritev. */
static int choose_engine(struct segio *s, enum segio_engine engine)
{
	const char *env = getenv("FLOWSCOPE_IO");
	if (engine == SEGIO_AUTO && env && *env) {
		if (strcmp(env, "pwritev") == 0)
			engine = SEGIO_PWRITEV;
		else if (strcmp(env, "uring") == 0 || strcmp(env, "io_uring") == 0)
			engine = SEGIO_URING;
		else
			snprintf(s->note, sizeof(s->note),
			         "FLOWSCOPE_IO=%.40s not understood (uring or pwritev): automatic "
			         "choice",
			         env);
	}
	if (engine != SEGIO_PWRITEV) {
		int init_err = 0;
		int r = uring_init(s, &init_err);
		if (r == 0) {
			s->engine = SEGIO_URING;
			return 0;
		}
		if (engine == SEGIO_URING || !init_err)
			return r;
		snprintf(
		    s->note, sizeof(s->note),
		    "io_uring unavailable (io_uring_queue_init: %s): writing with pwritev on an "
		    "I/O thread",
		    strerror(-init_err));
	}
	s->engine = SEGIO_PWRITEV;
	return pwv_init(s);
}

int segio_create(enum segio_engine engine, unsigned nbufs, size_t bufsize, struct segio **out)
{
	*out = NULL;
	if (nbufs < 2 || nbufs > MAX_NBUFS || bufsize < MIN_BUFSIZE || bufsize > MAX_BUFSIZE ||
	    bufsize % SEGIO_ALIGN != 0 ||
	    (engine != SEGIO_AUTO && engine != SEGIO_URING && engine != SEGIO_PWRITEV))
		return -EINVAL;
	struct segio *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->nbufs = nbufs;
	s->bufsize = bufsize;
	s->engine = SEGIO_PWRITEV; /* until choose_engine: segio_destroy frees what exists */
	void *mem = NULL;
	s->bufs = calloc(nbufs, sizeof(*s->bufs));
	if (!s->bufs || posix_memalign(&mem, SEGIO_ALIGN, (size_t)nbufs * bufsize) != 0) {
		segio_destroy(s);
		return -ENOMEM;
	}
	s->mem = mem;
	/* touch every page now: the first write into fresh memory is slow, and padding needs
	 * zeros anyway */
	memset(s->mem, 0, (size_t)nbufs * bufsize);
	for (unsigned i = 0; i < nbufs; i++)
		s->bufs[i].mem = s->mem + (size_t)i * bufsize;
	int r = choose_engine(s, engine);
	if (r < 0) {
		segio_destroy(s);
		return r;
	}
	*out = s;
	return 0;
}

void segio_destroy(struct segio *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		release_file(s);
	if (s->ring_ready)
		io_uring_queue_exit(&s->ring);
	pwv_fini(s);
	free(s->mem);
	free(s->bufs);
	free(s);
}

const char *segio_engine_name(const struct segio *s)
{
	return s->engine == SEGIO_URING ? "io_uring" : "pwritev";
}

const char *segio_note(const struct segio *s)
{
	return s->note[0] ? s->note : NULL;
}

int segio_error(const struct segio *s)
{
	return s->err;
}

void segio_stats(const struct segio *s, struct segio_stats *out)
{
	*out = (struct segio_stats){
	    .writes = s->writes,
	    .bytes_written = s->bytes_written,
	    .syncs = s->syncs,
	    .max_inflight = s->max_inflight,
	    .direct = s->direct,
	    .registered = s->registered,
	};
}
