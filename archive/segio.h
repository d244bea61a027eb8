/*
 * segio: the segment writer's I/O layer — appends that overlap with the
 * caller's compression, and a sync after which every appended byte is on disk.
 * Private to the archive library (not installed).
 *
 * Purpose
 *   The archive writer compresses pcap data into zstd frames and appends them
 *   to a segment file; once a second it needs everything appended to be
 *   durable before it commits index entries that reference those bytes.
 *   segio keeps `nbufs` I/O buffers: the caller appends into the current one
 *   (or compresses straight into it: segio_reserve/segio_commit), a full
 *   buffer is handed to the I/O engine and the caller carries on in the next
 *   free one, so compression and disk writes overlap.  The caller waits only
 *   when every buffer is in flight, and in segio_sync().
 *
 * Engines (chosen once, by segio_create)
 *   io_uring  buffers registered with io_uring_register_buffers and written
 *             with IORING_OP_WRITE_FIXED, several in flight; when registration
 *             fails (RLIMIT_MEMLOCK, 8 MiB for unprivileged users) plain
 *             IORING_OP_WRITE with the same buffers.
 *   pwritev   an I/O thread owned by the context takes full buffers from a
 *             small queue and pwritev()s them (contiguous ones in one call);
 *             used when io_uring cannot be set up (ENOSYS, EPERM: seccomp in
 *             containers, kernel.io_uring_disabled) or when asked for.
 *   SEGIO_AUTO takes io_uring unless the environment variable FLOWSCOPE_IO is
 *   "pwritev" or io_uring_queue_init() fails; FLOWSCOPE_IO=uring forces
 *   io_uring (segio_create then fails when it cannot be had).  An explicit
 *   SEGIO_URING / SEGIO_PWRITEV ignores the environment.
 *
 * O_DIRECT
 *   Files are opened with O_DIRECT when the filesystem supports it (not on
 *   tmpfs, whose pages are the storage), so segment data does not evict the
 *   page cache that queries use.  Every write then covers whole
 *   SEGIO_ALIGN-byte blocks: a buffer starts at an aligned file offset, only
 *   its aligned prefix is written when it is handed off, and its unaligned
 *   tail moves to the start of the next buffer (that block is written again,
 *   completed, later).  segio_sync() writes the partial last block padded
 *   with zeros, then cuts the file back to segio_size() before fdatasync(),
 *   so after a sync the file holds exactly the appended bytes.  Between syncs
 *   the file may be longer than segio_size() (padding) or shorter (data still
 *   in buffers).
 *
 * Lifecycle
 *   segio_create() -> [segio_open(path) -> segio_append() / segio_reserve() +
 *   segio_commit()... -> segio_sync()... [-> segio_truncate()] ->
 *   segio_close()]... -> segio_destroy().  One context serves successive
 *   files (one writer = one context).
 *
 * Threading
 *   A context belongs to one thread: no two calls on the same context may
 *   run at once (segio_engine_name, segio_note, segio_error and segio_stats
 *   included).  The pwritev engine's I/O thread is internal; it blocks every
 *   signal, so signals still go to the caller's threads.  Different
 *   contexts are independent.
 *
 * Errors
 *   0 on success or a negative errno.  A failed write (ENOSPC, EIO...) is
 *   remembered: the engine notices it when the write completes, and from the
 *   first call after that (at the latest segio_sync) every append, commit
 *   and sync returns it and segio_reserve returns NULL, until
 *   segio_truncate() throws the unsynced data away and clears it.  No call
 *   crashes or loses bytes before the last successful segio_sync() because
 *   of a failed write.
 */
#ifndef FLOWSCOPE_ARCHIVE_SEGIO_H
#define FLOWSCOPE_ARCHIVE_SEGIO_H

#include <stddef.h>
#include <stdint.h>

#define SEGIO_ALIGN 4096u /* O_DIRECT block: offset, length and memory alignment */

enum segio_engine {
	SEGIO_AUTO,   /* io_uring, else pwritev; FLOWSCOPE_IO=uring|pwritev overrides */
	SEGIO_URING,  /* io_uring or fail */
	SEGIO_PWRITEV /* pwritev on an I/O thread */
};

struct segio;

/* Counters since segio_create(), for all files; `direct` and `registered` describe the open
 * (or last) file and the engine. */
struct segio_stats {
	uint64_t writes;        /* write completions (a short write counts once per part) */
	uint64_t bytes_written; /* bytes the kernel wrote, rewritten blocks and padding included */
	uint64_t syncs;         /* segio_sync() calls that wrote something and fdatasync()ed */
	uint64_t max_inflight;  /* most buffers in flight at once */
	int direct;             /* 1: the file is written with O_DIRECT */
	int registered;         /* 1: io_uring with registered buffers (WRITE_FIXED) */
};

/*
 * Creates an I/O context with `nbufs` buffers of `bufsize` bytes (allocated,
 * page-aligned and touched now; registered with io_uring when that engine is
 * used).  nbufs: 2..1024; bufsize: a multiple of SEGIO_ALIGN, 64 KiB..1 GiB.
 * On success *out is the context; on failure *out is NULL.
 * Returns 0; -EINVAL for sizes out of range; -ENOMEM; with SEGIO_URING (or
 * FLOWSCOPE_IO=uring) the error of io_uring_queue_init() (-ENOSYS, -EPERM,
 * -ENOMEM...); with the pwritev engine the error of pthread_create().
 */
int segio_create(enum segio_engine engine, unsigned nbufs, size_t bufsize, struct segio **out);

/* Closes an open file without syncing (waiting for writes in flight) and frees the context.
 * NULL is allowed. */
void segio_destroy(struct segio *s);

/* "io_uring" or "pwritev": the engine in use.  Static string. */
const char *segio_engine_name(const struct segio *s);

/* One line saying why the context does not run as preferred, or NULL: io_uring unavailable
 * (SEGIO_AUTO fell back to pwritev), io_uring buffers not registered (any io_uring context:
 * plain IORING_OP_WRITE), FLOWSCOPE_IO not understood.  An engine asked for (argument or
 * FLOWSCOPE_IO) is no fallback: no note.  Valid until segio_destroy(); print it once. */
const char *segio_note(const struct segio *s);

/*
 * Creates `path` (O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, mode 0644, plus O_DIRECT
 * when the filesystem supports it; read access is for segio_truncate) and
 * makes it the file appended to, from offset 0.  `path` is not kept.
 * Returns 0; -EBUSY if a file is already open; the errno of open() (-EEXIST...)
 * or of fcntl() (the file is then removed again).
 */
int segio_open(struct segio *s, const char *path);

/*
 * Returns a pointer where up to `maxlen` bytes may be written contiguously,
 * to be appended by segio_commit(); lets the caller compress straight into
 * the I/O buffer.  Hands the current buffer off (and may wait for a free
 * one) when fewer than maxlen bytes are left in it.  The pointer is valid
 * until the next call on the context other than segio_commit().
 * maxlen must be <= bufsize - SEGIO_ALIGN.
 * Returns NULL when no file is open, when maxlen is too large (both caller
 * bugs: segio_error() stays 0) or on an error (segio_error() says which).
 */
void *segio_reserve(struct segio *s, size_t maxlen);

/* Appends the first `len` bytes written at the last segio_reserve() pointer.
 * Returns 0; -EINVAL if len exceeds what was reserved (nothing is appended); -EBADF; the
 * sticky error. */
int segio_commit(struct segio *s, size_t len);

/* Appends `len` bytes (any length) copied from `p`.  Returns 0; -EBADF (no file open); the
 * sticky error (then none, some or all of the bytes were appended: truncate). */
int segio_append(struct segio *s, const void *p, size_t len);

/* Logical size of the file: bytes appended since segio_open(), after truncations. */
uint64_t segio_size(const struct segio *s);

/*
 * Writes everything appended (O_DIRECT: the last partial block padded, then
 * the file cut back to segio_size()), waits for every write and fdatasync()s.
 * On success a reader sees exactly segio_size() bytes.  Does nothing (returns
 * 0) when nothing changed since the last successful sync.
 * Returns 0; -EBADF; the sticky error; the errno of ftruncate() or fdatasync()
 * (which becomes sticky: the state of the unsynced bytes is unknown).
 */
int segio_sync(struct segio *s);

/*
 * Waits for every write, cuts the file to `size` bytes and continues
 * appending from there; clears the sticky error.  Used after ENOSPC to throw
 * away what the index does not reference.  Allowed for any size <=
 * segio_size() whose preceding bytes were all written: with no error (also
 * none found while waiting here) any size; after a failed write, any size up
 * to where that write started, and always the size at the last successful
 * segio_sync().  With O_DIRECT the partial block before `size` is read back
 * into the buffer so later appends rewrite it correctly.  The truncation is
 * durable at the next sync.
 * Returns 0; -EBADF; -EINVAL if size > segio_size(); the sticky error (kept)
 * if a failed write may have lost bytes before `size`, or when the engine
 * itself failed (io_uring_submit or io_uring_wait_cqe errors: only
 * segio_close/segio_destroy are left); the errno of ftruncate() or pread()
 * (-EIO if the file is shorter than size).
 */
int segio_truncate(struct segio *s, uint64_t size);

/*
 * segio_sync(), then closes the file, whatever the sync returned; the
 * context can open another file.  Call segio_sync() first to handle a sync
 * error while the file is still open.
 * Returns 0, -EBADF (no file open), or the first error of the sync or close().
 */
int segio_close(struct segio *s);

/* The sticky error (negative errno) or 0. */
int segio_error(const struct segio *s);

/* Fills *out with the counters (see struct segio_stats). */
void segio_stats(const struct segio *s, struct segio_stats *out);

#endif
