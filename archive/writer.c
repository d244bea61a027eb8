/*
 * Segment writer: packets -> pcap records -> zstd frames -> segment file,
 * and the index entries that describe them.
 *
 * A writer fills one frame buffer with pcap records (frame 0 starts with the
 * pcap global header), compresses it as one independent zstd frame when it
 * reaches frame_size, straight into an I/O buffer of segio, which writes it
 * to the open segment (io_uring or an I/O thread, O_DIRECT where possible)
 * while the next frame is compressed.  Index entries for the frames written
 * since the last commit (frame records, term postings, flow statistics) wait
 * in memory; a commit first makes the segment durable (segio_sync: every
 * write done, fdatasync), then writes them in one LMDB transaction, so the
 * index never points at bytes that are not on disk.  A commit also closes the partly filled frame,
 * so on a quiet link everything becomes durable and queryable within sync_ns.
 *
 * Closing a segment appends the seek table (zstd seekable format), syncs,
 * renames <id>.pcap.zst.open to <id>.pcap.zst and marks it closed in the index.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"
#include "archive/segio.h"
#include "archive/terms_pvt.h"
#include "qq/qq.h"

#define DEF_SEGMENT_AGE (60ull * 1000000000ull)
#define DEF_FRAME_SIZE (256u << 10)
#define DEF_SYNC_NS 1000000000ull
#define MAX_FLOW_DELTAS (1u << 18) /* flows buffered between commits */
#define IO_BUFS 8                  /* segio buffers: writes in flight */
#define FULL_RETRY_NS 200000000ull /* disk full: look for room this often */
#define FULL_RESUME_FREE ARCHIVE_RESUME_FREE
#define FULL_INDEX_ROOM (2u << 20) /* kept free for index commits, seek tables, the run report */
#define IDX_ITEM_GUESS 512u        /* index file bytes per list or flow before the first commit */
#define IDX_ITEMS_LEARN 1000u      /* ... learnt from commits of at least this many */
#define IDX_ITEM_MIN 64u           /* ... never less (a commit that reused free pages grew 0) */
#define ROOM_SHARE 4               /* commit once a quarter of the room is pending */
#define IO_BUF_MIN (1u << 20)

struct seek_entry {
	uint32_t csize, usize;
};

struct archive_writer {
	struct archive *a;
	struct archive_writer_config cfg;
	ZSTD_CCtx *cctx;
	struct archive_writer_stats st;

	/* open segment */
	int seg_open;
	int adopt_fd; /* >= 0: an existing file being indexed (recovery, rebuild), not written */
	int adopt_replace;   /* recovery: adopted segments may have entries in the index already */
	int replace_pending; /* the next commit first deletes them, in its own transaction */
	char adopt_path[4096];
	struct archive_segment_info seg;
	uint64_t seg_created_mono, seg_created_real;
	int seg_synced_dir;       /* segments/ fsynced since the file was created */
	int seg_dirty;            /* segment record changed since the last commit */
	struct seek_entry *seeks; /* one per frame written */
	size_t nseeks, seeks_cap;

	uint64_t chunk; /* QQ chunk of the packets being added */

	/* current frame */
	uint8_t *fbuf;
	size_t flen, fcap;
	struct archive_frame_info frame;
	struct termset terms;     /* of the current frame */
	struct segterms segterms; /* posting lists of the open segment */
	struct segio *io;
	size_t ccap; /* room reserved in the I/O buffer per frame */

	/* waiting for the next commit */
	struct archive_frame_info *pframes;
	size_t npframes, pframes_cap;
	struct ft_table *flows; /* per-flow deltas since the last commit */
	uint64_t last_commit_mono;

	/* the state of the last commit, for a rollback when the disk is full */
	struct archive_segment_info seg_committed;
	struct archive_writer_stats st_committed;
	int counted;         /* the packet being added is in seg.packets */
	uint64_t retry_mono; /* disk full: when to look for space again */
	/* how much an index commit grows the index file, per posting list and flow delta it
	 * writes: twice what this writer's last commit (of some size) grew it by, for
	 * room_check */
	uint64_t idx_item_bytes;
	unsigned psize; /* LMDB page size */
};

int archive__grow(void **buf, size_t *cap, size_t need, size_t el)
{
	if (qq_grow(buf, cap, need, el) != 0)
		return archive__fail(-ENOMEM, "out of memory");
	return 0;
}

static int fsync_dir(const struct archive *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/segments", a->dir);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	int r = fsync(fd) == 0 ? 0 : archive__fail(-errno, "%s: fsync: %s", path, strerror(errno));
	close(fd);
	return r;
}

/* ---- create / destroy ---------------------------------------------------------------- */

int archive_writer_create(struct archive *a, const struct archive_writer_config *cfg,
                          struct archive_writer **out)
{
	if (!a->writable)
		return archive__fail(-EBADF, "archive opened read-only");
	struct archive_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return archive__fail(-ENOMEM, "out of memory");
	w->a = a;
	w->adopt_fd = -1;
	w->cfg = *cfg;
	if (!w->cfg.segment_size)
		w->cfg.segment_size = ARCHIVE_SEGMENT_SIZE;
	if (!w->cfg.segment_age_ns)
		w->cfg.segment_age_ns = DEF_SEGMENT_AGE;
	if (!w->cfg.frame_size)
		w->cfg.frame_size = DEF_FRAME_SIZE;
	if (!w->cfg.zstd_level)
		w->cfg.zstd_level = -2;
	if (!w->cfg.sync_ns)
		w->cfg.sync_ns = DEF_SYNC_NS;
	w->fcap = w->cfg.frame_size + PCAP_GHDR_LEN + PCAP_RHDR_LEN + ARCHIVE_MAX_CAPLEN;
	w->fbuf = malloc(w->fcap);
	w->ccap = FRAME_TAG_LEN + ZSTD_compressBound(w->fcap);
	size_t bufsize = (w->ccap + 2 * SEGIO_ALIGN + 4095) & ~(size_t)4095;
	int r =
	    segio_create(SEGIO_AUTO, IO_BUFS, bufsize < IO_BUF_MIN ? IO_BUF_MIN : bufsize, &w->io);
	if (r) {
		free(w->fbuf);
		ZSTD_freeCCtx(w->cctx);
		free(w);
		return archive__fail(r, "segment I/O: %s", strerror(-r));
	}
	w->cctx = ZSTD_createCCtx();
	r = -ENOMEM;
	if (w->fbuf && w->cctx && archive__termset_init(&w->terms) == 0 &&
	    archive__segterms_init(&w->segterms) == 0)
		r = ft_table_create(MAX_FLOW_DELTAS, sizeof(struct archive__flow_state), NULL,
		                    &w->flows);
	if (r == 0 && (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel,
	                                                   w->cfg.zstd_level)) ||
	               ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1))))
		r = archive__fail(ARCHIVE_E_ZSTD, "zstd level %d not accepted", w->cfg.zstd_level);
	else if (r)
		r = archive__fail(-ENOMEM, "out of memory");
	if (r) {
		ZSTD_freeCCtx(w->cctx);
		free(w->fbuf);
		segio_destroy(w->io);
		archive__termset_free(&w->terms);
		archive__segterms_free(&w->segterms);
		ft_table_destroy(w->flows);
		free(w);
		return r;
	}
	w->last_commit_mono = qq_clock_ns(CLOCK_MONOTONIC);
	w->idx_item_bytes = IDX_ITEM_GUESS;
	MDB_stat ms;
	w->psize = mdb_env_stat(a->env, &ms) == 0 ? ms.ms_psize : 4096;
	*out = w;
	return 0;
}

static void writer_free(struct archive_writer *w)
{
	segio_destroy(w->io); /* an open segment stays as it is: recovery's job */
	ZSTD_freeCCtx(w->cctx);
	free(w->fbuf);
	free(w->seeks);
	free(w->pframes);
	archive__termset_free(&w->terms);
	archive__segterms_free(&w->segterms);
	ft_table_destroy(w->flows);
	free(w);
}

void archive_writer_stats(const struct archive_writer *w, struct archive_writer_stats *out)
{
	struct segio_stats io;
	segio_stats(w->io, &io);
	*out = w->st;
	out->io = segio_engine_name(w->io);
	out->io_direct = io.direct;
	out->io_max_inflight = io.max_inflight;
}

const char *archive_writer_io_note(const struct archive_writer *w)
{
	return segio_note(w->io);
}

/* ---- frames ----------------------------------------------------------------------------- */

static void frame_begin(struct archive_writer *w)
{
	w->flen = 0;
	memset(&w->frame, 0, sizeof(w->frame));
	w->frame.seg = w->seg.id;
	w->frame.frame = w->seg.frames;
	w->frame.min_ns = UINT64_MAX;
	w->frame.chunk = w->chunk;
	archive__termset_reset(&w->terms);
	if (w->seg.frames == 0) { /* frame 0 starts with the pcap global header */
		uint8_t *g = w->fbuf;
		le32_put(g, PCAP_MAGIC_NANO);
		g[4] = 2, g[5] = 0, g[6] = 4, g[7] = 0; /* version 2.4, little-endian u16s */
		memset(g + 8, 0, 8);                    /* thiszone, sigfigs */
		le32_put(g + 16, w->seg.snaplen);
		le32_put(g + 20, (uint32_t)w->seg.linktype);
		w->flen = PCAP_GHDR_LEN;
		w->st.record_bytes += PCAP_GHDR_LEN;
	}
}

static uint64_t fs_free(const struct archive_writer *w);

/*
 * An LMDB failure.  A full disk shows as ENOSPC, or as EIO when LMDB got a
 * short write: both become -ENOSPC when the filesystem is (nearly) full, so
 * the writer treats them as a full disk, not as a broken archive.
 */
static int lmdb_fail(const struct archive_writer *w, int rc, const char *what)
{
	if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && fs_free(w) < FULL_RESUME_FREE))
		return archive__fail(-ENOSPC, "index: %s: %s", what, strerror(ENOSPC));
	return archive__lmdb_fail(rc, what);
}

/* An I/O error on the open segment, with its path. */
static int io_fail(struct archive_writer *w, int err, const char *what)
{
	char path[4096];
	archive__seg_path(w->a, w->seg.id, ARCHIVE_SEG_OPEN, path, sizeof(path));
	if (err == 0)
		err = -EIO;
	return archive__fail(err, "%s: %s: %s", path, what, strerror(-err));
}

/* Compresses and writes the current frame; queues its index entries. */
static int frame_flush(struct archive_writer *w)
{
	if (w->frame.packets == 0 || w->adopt_fd >= 0) /* adopted frames are on disk already */
		return 0;
	uint8_t *out = segio_reserve(w->io, w->ccap);
	if (!out)
		return io_fail(w, segio_error(w->io), "write");
	le32_put(out, FRAME_TAG_MAGIC); /* the frame's tag: recording and chunk */
	le32_put(out + 4, FRAME_TAG_LEN - 8);
	le32_put(out + 8, w->cfg.run);
	le32_put(out + 12, 0);
	le64_put(out + 16, w->frame.chunk);
	size_t c =
	    ZSTD_compress2(w->cctx, out + FRAME_TAG_LEN, w->ccap - FRAME_TAG_LEN, w->fbuf, w->flen);
	if (ZSTD_isError(c))
		return archive__fail(ARCHIVE_E_ZSTD, "zstd: %s", ZSTD_getErrorName(c));
	c += FRAME_TAG_LEN;
	int r = segio_commit(w->io, c);
	if (r)
		return io_fail(w, r, "write");
	w->frame.offset = w->seg.file_bytes;
	w->frame.csize = (uint32_t)c;
	w->frame.usize = (uint32_t)w->flen;
	if ((r = archive__grow((void **)&w->pframes, &w->pframes_cap, w->npframes + 1,
	                       sizeof(*w->pframes))) ||
	    (r = archive__grow((void **)&w->seeks, &w->seeks_cap, w->nseeks + 1,
	                       sizeof(*w->seeks))))
		return r;
	if (archive__segterms_add_frame(&w->segterms, &w->terms, w->frame.frame) != 0)
		return archive__fail(-ENOMEM, "out of memory");
	w->pframes[w->npframes++] = w->frame;
	w->seeks[w->nseeks++] = (struct seek_entry){(uint32_t)c, (uint32_t)w->flen};
	w->seg.file_bytes += c;
	w->seg.record_bytes += w->flen;
	w->seg.frames++;
	w->seg_dirty = 1;
	w->st.file_bytes += c;
	w->st.frames++;
	frame_begin(w);
	return 0;
}

/* ---- index commit ------------------------------------------------------------------------- */

/* qsort has no context argument; each dumper thread sorts its own writer's terms */
static _Thread_local const struct byteset *g_sort_set;

/* Orders dirty term lists by their key in `terms` (same partition and segment). */
static int dirty_cmp(const void *x, const void *y)
{
	const struct term_entry *a = archive__byteset_at(g_sort_set, *(const uint32_t *)x);
	const struct term_entry *b = archive__byteset_at(g_sort_set, *(const uint32_t *)y);
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	return memcmp(a->b, b->b, a->len); /* one type, one length */
}

static int put_segment(struct archive_writer *w, MDB_txn *txn)
{
	uint8_t k[SEG_KEY_LEN], v[SEG_REC_LEN];
	be64_put(k, w->seg.id);
	archive__seg_encode(&w->seg, w->seg_created_real, v);
	MDB_val kv = {.mv_size = sizeof(k), .mv_data = k},
	        vv = {.mv_size = sizeof(v), .mv_data = v};
	int rc = mdb_put(txn, w->a->db_segments, &kv, &vv, 0);
	return rc ? lmdb_fail(w, rc, "write segment") : 0;
}

static int put_frames(struct archive_writer *w, MDB_txn *txn)
{
	for (size_t i = 0; i < w->npframes; i++) {
		uint8_t k[FRAME_KEY_LEN], v[FRAME_REC_LEN];
		be64_put(k, w->pframes[i].seg);
		be32_put(k + 8, w->pframes[i].frame);
		archive__frame_encode(&w->pframes[i], v);
		MDB_val kv = {.mv_size = sizeof(k), .mv_data = k};
		MDB_val vv = {.mv_size = sizeof(v), .mv_data = v};
		int rc =
		    mdb_put(txn, w->a->db_frames, &kv, &vv, 0); /* several writers: no APPEND */
		if (rc)
			return lmdb_fail(w, rc, "write frame");
	}
	return 0;
}

/* Writes the posting lists that changed since the last commit, in key order. */
static int put_terms(struct archive_writer *w, MDB_txn *txn)
{
	struct segterms *st = &w->segterms;
	g_sort_set = &st->set;
	if (st->ndirty > 1)
		qsort(st->dirty, st->ndirty, sizeof(*st->dirty), dirty_cmp);
	uint8_t k[TERMS_KEY_MAX];
	be32_put(k, archive__terms_part(w->seg.id));
	for (uint32_t i = 0; i < st->ndirty; i++) {
		const struct term_entry *e = archive__byteset_at(&st->set, st->dirty[i]);
		const struct plist *pl = &st->lists[st->dirty[i]];
		k[4] = e->type;
		memcpy(k + 5, e->b, e->len);
		be64_put(k + 5 + e->len, w->seg.id);
		MDB_val kv = {.mv_size = 5u + e->len + 8u, .mv_data = k};
		MDB_val vv = {.mv_size = pl->len, .mv_data = pl->buf};
		int rc = mdb_put(txn, w->a->db_terms, &kv, &vv, 0);
		if (rc)
			return lmdb_fail(w, rc, "write term");
	}
	return 0;
}

/* After a successful commit: the lists are what the index holds. */
static void terms_committed(struct archive_writer *w)
{
	struct segterms *st = &w->segterms;
	for (uint32_t i = 0; i < st->ndirty; i++)
		st->lists[st->dirty[i]].committed = st->lists[st->dirty[i]].len;
	st->ndirty = 0;
}

struct flow_put_ctx {
	struct archive_writer *w;
	MDB_txn *txn;
	int rc;
};

/* Adds one flow's delta to its record for this segment (read-modify-write). */
static void put_flow(struct ft_flow *f, void *arg)
{
	struct flow_put_ctx *ctx = arg;
	uint8_t k[FLOW_KEY_LEN], v[FLOW_REC_MAX];
	if (ctx->rc)
		return;
	size_t kn = archive__flow_key_put(ctx->w->seg.id, &f->key, 0, k);
	MDB_val kv = {.mv_size = kn, .mv_data = k}, vv;
	struct archive_flow_info old = {0}, cur = {.key = f->key, .seg = ctx->w->seg.id};
	int rc = mdb_get(ctx->txn, ctx->w->a->db_flows, &kv, &vv);
	if (rc == 0 && archive__flow_decode(&kv, &vv, &old) == 0) {
		cur = old;
	} else {
		cur.first_ns = f->first_ns;
		ctx->w->seg.flows++;
	}
	cur.first_ns = f->first_ns < cur.first_ns ? f->first_ns : cur.first_ns;
	cur.last_ns = f->last_ns > cur.last_ns ? f->last_ns : cur.last_ns;
	for (int d = 0; d < 2; d++) {
		cur.packets[d] += f->packets[d];
		cur.bytes[d] += f->bytes[d];
		cur.tcp_flags[d] |= f->tcp_flags[d];
	}
	if (!cur.trigger)
		cur.trigger = archive__flow_trigger(f);
	vv.mv_size = archive__flow_encode(&cur, v);
	vv.mv_data = v;
	rc = mdb_put(ctx->txn, ctx->w->a->db_flows, &kv, &vv, 0);
	if (rc)
		ctx->rc = lmdb_fail(ctx->w, rc, "write flow");
}

/* Posting lists and flow deltas the next commit writes (what its size grows with). */
static uint64_t index_items(const struct archive_writer *w)
{
	struct ft_table_stats ts;
	ft_table_stats(w->flows, &ts);
	return (uint64_t)w->segterms.ndirty + ts.flows;
}

/* Makes the written frames durable, then indexes them in one transaction. */
static int index_commit(struct archive_writer *w)
{
	int r = 0;
	if (!w->seg_open)
		return 0;
	if ((r = frame_flush(w)) != 0)
		return r;
	if (!w->seg_dirty && w->npframes == 0)
		return 0;
	if (w->adopt_fd >= 0 ? fdatasync(w->adopt_fd) != 0 && (r = -errno) != 0
	                     : (r = segio_sync(w->io)) != 0)
		return io_fail(w, r, "sync");
	if (!w->seg_synced_dir && (r = fsync_dir(w->a)) != 0)
		return r;
	w->seg_synced_dir = 1;

	MDB_txn *txn;
	MDB_envinfo before, after;
	uint32_t flows_before = w->seg.flows;
	uint64_t items = index_items(w);
	int rc = mdb_txn_begin(w->a->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(w, rc, "begin write");
	mdb_env_info(w->a->env, &before); /* the last commit's: this one holds the write lock */
	struct flow_put_ctx fc = {.w = w, .txn = txn};
	/* the old entries go with the commit that brings the new ones: a crash keeps either */
	if (w->replace_pending)
		r = archive__segment_drop(w->a, txn, w->seg.id, SEG_DROP_TERMS);
	if (r == 0 && (r = put_frames(w, txn)) == 0 && (r = put_terms(w, txn)) == 0) {
		ft_table_foreach(w->flows, put_flow, &fc);
		r = fc.rc;
	}
	if (r == 0)
		r = put_segment(w, txn); /* after put_flow: it counts new flows */
	if (r == 0 && (rc = mdb_txn_commit(txn)) != 0)
		r = lmdb_fail(w, rc, "commit");
	else if (r)
		mdb_txn_abort(txn);
	if (r) {
		w->seg.flows = flows_before; /* the retry counts them again */
		return r;
	}
	if (items >= IDX_ITEMS_LEARN && mdb_env_info(w->a->env, &after) == 0) {
		uint64_t per = 2 * (after.me_last_pgno - before.me_last_pgno) * w->psize / items;
		w->idx_item_bytes = per > IDX_ITEM_MIN ? per : IDX_ITEM_MIN;
	}
	w->npframes = 0;
	w->replace_pending = 0;
	terms_committed(w);
	w->seg_dirty = 0;
	ft_table_clear(w->flows);
	w->st.commits++;
	w->last_commit_mono = qq_clock_ns(CLOCK_MONOTONIC);
	w->seg_committed = w->seg;
	w->st_committed = w->st;
	return 0;
}

/* The segment, its file closed and renamed, is recorded as closed. */
static int segment_commit_closed(struct archive_writer *w)
{
	w->seg_open = 0;
	w->seg.state = ARCHIVE_SEG_CLOSED;
	MDB_txn *txn;
	int rc = mdb_txn_begin(w->a->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(w, rc, "begin write");
	int r = put_segment(w, txn);
	if (r) {
		mdb_txn_abort(txn);
		return r;
	}
	rc = mdb_txn_commit(txn);
	return rc ? lmdb_fail(w, rc, "commit") : 0;
}

/* ---- segments ------------------------------------------------------------------------------ */

/* Allocates an id, creates the .open file, and records the segment as open. */
static int segment_open(struct archive_writer *w, int linktype, uint32_t snaplen)
{
	char path[4096];
	MDB_txn *txn;
	int rc = mdb_txn_begin(w->a->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(w, rc, "begin write");
	memset(&w->seg, 0, sizeof(w->seg));
	int r = archive__next_segment_id(w->a, txn, &w->seg.id);
	if (r) {
		mdb_txn_abort(txn);
		return r;
	}
	w->seg.state = ARCHIVE_SEG_OPEN;
	w->seg.run = w->cfg.run;
	w->seg.linktype = linktype;
	w->seg.snaplen = snaplen;
	w->seg.flags = ft_linktype_supported(linktype) ? 0 : ARCHIVE_SEG_UNINDEXED;
	w->seg_created_real = qq_clock_ns(CLOCK_REALTIME);
	w->seg_created_mono = qq_clock_ns(CLOCK_MONOTONIC);
	archive__seg_path(w->a, w->seg.id, ARCHIVE_SEG_OPEN, path, sizeof(path));
	if ((r = segio_open(w->io, path)) != 0) {
		mdb_txn_abort(txn);
		return archive__fail(r, "%s: %s", path, strerror(-r));
	}
	if ((r = put_segment(w, txn)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (!r)
			r = lmdb_fail(w, rc, "commit");
		else
			mdb_txn_abort(txn);
		segio_close(w->io);
		unlink(path);
		return r;
	}
	w->seg_open = 1;
	w->seg_synced_dir = 0;
	w->nseeks = 0;
	archive__segterms_reset(&w->segterms);
	w->st.segments++;
	frame_begin(w);
	w->seg_committed = w->seg;
	w->st_committed = w->st;
	return 0;
}

/* Appends the seek table: skippable frame of (csize, usize) entries and footer. */
static int segment_write_seektable(struct archive_writer *w, const char *path)
{
	size_t n = w->nseeks, len = 8 + n * SEEK_ENTRY_LEN + SEEK_FOOTER_LEN;
	uint8_t *b = malloc(len);
	if (!b)
		return archive__fail(-ENOMEM, "out of memory");
	le32_put(b, SEEK_SKIPPABLE_MAGIC);
	le32_put(b + 4, (uint32_t)(n * SEEK_ENTRY_LEN + SEEK_FOOTER_LEN));
	for (size_t i = 0; i < n; i++) {
		le32_put(b + 8 + i * 8, w->seeks[i].csize);
		le32_put(b + 12 + i * 8, w->seeks[i].usize);
	}
	uint8_t *f = b + 8 + n * SEEK_ENTRY_LEN;
	le32_put(f, (uint32_t)n);
	f[4] = 0; /* descriptor: no checksums, reserved bits 0 */
	le32_put(f + 5, SEEK_FOOTER_MAGIC);
	int r = 0;
	if (w->adopt_fd >= 0) {
		ssize_t wr = pwrite(w->adopt_fd, b, len, (off_t)w->seg.file_bytes);
		r = wr == (ssize_t)len ? 0 : wr < 0 ? -errno : -EIO;
	} else {
		r = segio_append(w->io, b, len);
	}
	free(b);
	return r ? archive__fail(r, "%s: write: %s", path, strerror(-r)) : 0;
}

/* Commits, seals with the seek table, renames to the closed name, marks it closed. */
static int segment_close(struct archive_writer *w)
{
	char open_path[4096], closed_path[4096];
	if (!w->seg_open)
		return 0;
	int r = index_commit(w);
	if (r)
		return r;
	archive__seg_path(w->a, w->seg.id, ARCHIVE_SEG_OPEN, open_path, sizeof(open_path));
	archive__seg_path(w->a, w->seg.id, ARCHIVE_SEG_CLOSED, closed_path, sizeof(closed_path));
	if ((r = segment_write_seektable(w, open_path)) != 0)
		return r;
	if ((r = segio_sync(w->io)) != 0)
		return io_fail(w, r, "sync");
	/* renamed already when an earlier close stopped after it (a full disk) */
	if (rename(open_path, closed_path) != 0 && (errno != ENOENT || access(closed_path, F_OK)))
		return archive__fail(-errno, "%s: rename: %s", open_path, strerror(errno));
	if ((r = fsync_dir(w->a)) != 0)
		return r;
	segio_close(w->io); /* nothing left to write: cannot fail */
	return segment_commit_closed(w);
}

/* ---- adopting an existing segment file (recovery, rebuild) -------------------------------- */

static int packet_index(struct archive_writer *w, const struct archive_packet *p);

int archive__writer_adopt(struct archive_writer *w, const struct archive_segment_info *s,
                          uint64_t created_ns, const char *path)
{
	if (w->seg_open)
		return archive__fail(-EBUSY, "writer has an open segment");
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	memset(&w->seg, 0, sizeof(w->seg));
	w->seg.id = s->id;
	w->seg.state = ARCHIVE_SEG_OPEN;
	w->seg.run = s->run;
	w->seg.linktype = s->linktype;
	w->seg.snaplen = s->snaplen;
	w->seg.flags = ft_linktype_supported(s->linktype) ? 0 : ARCHIVE_SEG_UNINDEXED;
	w->seg_created_real = created_ns;
	w->seg_created_mono = qq_clock_ns(CLOCK_MONOTONIC);
	w->seg_synced_dir = 0;
	w->seg_dirty = 1;
	w->nseeks = 0;
	archive__segterms_reset(&w->segterms);
	w->adopt_fd = fd;
	w->replace_pending = w->adopt_replace;
	snprintf(w->adopt_path, sizeof(w->adopt_path), "%s", path);
	w->seg_open = 1;
	w->st.segments++;
	return 0;
}

int archive__writer_adopt_frame(struct archive_writer *w, const struct seg_scanned *f)
{
	int r;
	if (f->offset != w->seg.file_bytes || f->frame != w->seg.frames)
		return archive__fail(ARCHIVE_E_CORRUPT, "segment %llu: frames out of order",
		                     (unsigned long long)w->seg.id);
	memset(&w->frame, 0, sizeof(w->frame));
	w->frame.seg = w->seg.id;
	w->frame.frame = f->frame;
	w->frame.min_ns = UINT64_MAX;
	w->frame.chunk = f->chunk;
	archive__termset_reset(&w->terms);
	struct archive_record rec;
	size_t pos = f->records_at;
	struct archive_segment_info *s = &w->seg;
	while (archive__record_next(f->data, f->usize, &pos, &rec)) {
		struct archive_packet p = {.linktype = s->linktype,
		                           .snaplen = s->snaplen,
		                           .ts_ns = rec.ts_ns,
		                           .caplen = rec.caplen,
		                           .wirelen = rec.wirelen,
		                           .data = rec.data};
		if ((r = packet_index(w, &p)) != 0)
			return r;
		w->frame.packets++;
		w->frame.min_ns = rec.ts_ns < w->frame.min_ns ? rec.ts_ns : w->frame.min_ns;
		w->frame.max_ns = rec.ts_ns > w->frame.max_ns ? rec.ts_ns : w->frame.max_ns;
		s->min_ns = s->packets == 0 || rec.ts_ns < s->min_ns ? rec.ts_ns : s->min_ns;
		s->max_ns = rec.ts_ns > s->max_ns ? rec.ts_ns : s->max_ns;
		s->packets++;
		s->wire_bytes += rec.wirelen;
		w->counted = 1;
		w->st.packets++;
		w->st.wire_bytes += rec.wirelen;
	}
	w->frame.offset = f->offset;
	w->frame.csize = f->csize;
	w->frame.usize = f->usize;
	if ((r = archive__grow((void **)&w->pframes, &w->pframes_cap, w->npframes + 1,
	                       sizeof(*w->pframes))) ||
	    (r = archive__grow((void **)&w->seeks, &w->seeks_cap, w->nseeks + 1,
	                       sizeof(*w->seeks))))
		return r;
	if (archive__segterms_add_frame(&w->segterms, &w->terms, f->frame) != 0)
		return archive__fail(-ENOMEM, "out of memory");
	w->pframes[w->npframes++] = w->frame;
	w->seeks[w->nseeks++] = (struct seek_entry){f->csize, f->usize};
	s->file_bytes += f->csize;
	s->record_bytes += f->usize;
	s->frames++;
	w->seg_dirty = 1;
	w->st.file_bytes += f->csize;
	w->st.record_bytes += f->usize;
	w->st.frames++;
	return 0;
}

void archive__writer_adopt_replacing(struct archive_writer *w)
{
	w->adopt_replace = 1;
}

void archive__writer_adopt_abandon(struct archive_writer *w)
{
	if (w->adopt_fd < 0)
		return;
	close(w->adopt_fd);
	w->adopt_fd = -1;
	w->seg_open = 0;
	w->npframes = 0;
	w->replace_pending = 0;
	ft_table_clear(w->flows);
}

int archive__writer_adopt_gap(struct archive_writer *w, uint32_t bytes, uint32_t usize)
{
	int r = archive__grow((void **)&w->seeks, &w->seeks_cap, w->nseeks + 1, sizeof(*w->seeks));
	if (r)
		return r;
	w->seeks[w->nseeks++] = (struct seek_entry){bytes, usize};
	w->seg.file_bytes += bytes;
	w->seg.frames++;
	w->seg_dirty = 1;
	return 0;
}

int archive__writer_adopt_close(struct archive_writer *w, int seal, int has_table, uint64_t *cut)
{
	char closed_path[4096];
	int r = index_commit(w);
	*cut = 0;
	if (r)
		return r;
	archive__seg_path(w->a, w->seg.id, ARCHIVE_SEG_CLOSED, closed_path, sizeof(closed_path));
	if (seal) {
		struct stat st;
		if (fstat(w->adopt_fd, &st) != 0)
			return archive__fail(-errno, "%s: %s", w->adopt_path, strerror(errno));
		if (!has_table) {
			if ((uint64_t)st.st_size > w->seg.file_bytes)
				*cut = (uint64_t)st.st_size - w->seg.file_bytes;
			if (ftruncate(w->adopt_fd, (off_t)w->seg.file_bytes) != 0)
				return archive__fail(-errno, "%s: truncate: %s", w->adopt_path,
				                     strerror(errno));
			if ((r = segment_write_seektable(w, w->adopt_path)) != 0)
				return r;
			if (fdatasync(w->adopt_fd) != 0)
				return archive__fail(-errno, "%s: fdatasync: %s", w->adopt_path,
				                     strerror(errno));
		}
		if (strcmp(w->adopt_path, closed_path) != 0) {
			if (rename(w->adopt_path, closed_path) != 0)
				return archive__fail(-errno, "%s: rename: %s", w->adopt_path,
				                     strerror(errno));
			if ((r = fsync_dir(w->a)) != 0)
				return r;
		}
	}
	close(w->adopt_fd);
	w->adopt_fd = -1;
	return segment_commit_closed(w);
}

/* ---- public writing API ---------------------------------------------------------------------- */

void archive_writer_prefetch(const struct archive_writer *w, uint32_t flow_hash, int stage)
{
	if (!flow_hash)
		return;
	if (stage == 0) {
		ft_table_prefetch(w->flows, flow_hash);
	} else if (stage == 1) {
		ft_table_prefetch_flow(w->flows, flow_hash);
	} else { /* the posting lists the flow's hosts and ports go to, then their ends */
		const struct ft_flow *f = ft_table_peek(w->flows, flow_hash);
		if (f)
			archive__flow_terms_prefetch(&w->segterms, f, stage - 2);
	}
}

/* The packet's index terms and flow statistics (parsed here unless p->parsed). */
static int packet_index(struct archive_writer *w, const struct archive_packet *p)
{
	if (w->seg.flags & ARCHIVE_SEG_UNINDEXED)
		return 0;
	struct ft_table_stats ts;
	ft_table_stats(w->flows, &ts);
	int r;
	if (ts.flows >= MAX_FLOW_DELTAS && (r = index_commit(w)) != 0)
		return r; /* the flow deltas table must never evict */
	/* adopting: a full flow table commits in the middle of a frame that is not yet in the
	 * pending frame records, so its terms wait for the frame's end (in w->terms) */
	struct segterms *st = w->adopt_fd >= 0 ? NULL : &w->segterms;
	if (archive__index_packet(&w->terms, st, w->frame.frame, w->flows, p, &w->frame.flags) != 0)
		return archive__fail(-ENOMEM, "out of memory");
	return 0;
}

int archive_writer_add(struct archive_writer *w, int linktype, uint32_t snaplen, uint64_t ts_ns,
                       uint32_t caplen, uint32_t wirelen, const uint8_t *data)
{
	struct archive_packet p = {.linktype = linktype,
	                           .snaplen = snaplen,
	                           .ts_ns = ts_ns,
	                           .caplen = caplen,
	                           .wirelen = wirelen,
	                           .data = data};
	return archive_writer_add_packet(w, &p);
}

/* ---- a full disk ------------------------------------------------------------------------------ */

static int is_nospace(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

static uint64_t fs_free(const struct archive_writer *w)
{ /* unknown: UINT64_MAX (assume room: a write that fails says otherwise) */
	struct statvfs v;
	if (statvfs(w->a->dir, &v) != 0)
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/*
 * The last resort of a full disk: back to the last commit (the segment cut
 * to what the index references, the pending frames, posting lists and flow
 * deltas dropped), those packets counted as unstored.  0, or the error of
 * the cut itself (then the writer is unusable: a hard error).
 */
static int cut_back(struct archive_writer *w)
{
	uint64_t lost = w->seg.packets - w->seg_committed.packets;
	uint64_t lost_bytes = w->seg.wire_bytes - w->seg_committed.wire_bytes;
	int r = segio_truncate(w->io, w->seg_committed.file_bytes);
	if (r)
		return io_fail(w, r, "cut back after a full disk");
	w->seg = w->seg_committed;
	w->nseeks = w->seg.frames;
	w->npframes = 0;
	if (archive__segterms_cut(&w->segterms, w->seg.frames) != 0)
		return archive__fail(-ENOMEM, "out of memory");
	ft_table_clear(w->flows);
	frame_begin(w);
	uint64_t full_events = w->st.full_events, up = w->st.unstored_packets,
	         ub = w->st.unstored_bytes;
	w->st = w->st_committed;
	w->st.full_events = full_events;
	w->st.unstored_packets = up + lost;
	w->st.unstored_bytes = ub + lost_bytes;
	w->seg_dirty = 0;
	return 0;
}

/*
 * The disk is full: keep what is written.  Usually the writer stopped itself
 * before a frame with less than the reserve free (room_check), so every
 * frame written is whole and the commit (sync, index) fits in the reserve.
 * Only when that commit fails too (a write failed: someone else filled the
 * disk) does it cut back to the last commit.  Then no packet is added until
 * still_full() finds ARCHIVE_RESUME_FREE free: the gap between the reserve
 * and that is the hysteresis that keeps the writer from flapping.
 * 0, or a hard error.
 */
static int go_full(struct archive_writer *w)
{
	if (w->seg_open) {
		int r = index_commit(w);
		if (is_nospace(r))
			r = cut_back(w);
		if (r)
			return r;
	}
	w->st.full = 1;
	w->st.full_events++;
	w->retry_mono = qq_clock_ns(CLOCK_MONOTONIC) + FULL_RETRY_NS;
	return 0;
}

/* Free space below which a writer stores nothing more: room for the index commit of what it
 * wrote and for two frames (of two dumpers that both looked just before it fell). */
static uint64_t full_reserve(const struct archive_writer *w)
{
	return FULL_INDEX_ROOM + 2 * (uint64_t)w->ccap;
}

/*
 * Before a frame's first packet (a statvfs per frame, not per packet).  What
 * the next commit needs: the segment bytes this writer appended since its
 * last commit (they may still sit in segio's buffers, unseen by statvfs) and
 * what the index file will grow by (learnt per posting list and flow delta:
 * with many flows the index grows more than the segment).  Commits now when
 * that would not fit above the reserve any more, or once the segment bytes
 * reach 1/ROOM_SHARE of the room left (that bounds what all dumpers together
 * may still have to write).  Not at every frame: each commit copies the
 * index pages it touches (LMDB), so needless commits grow the index file.
 * Then with less than the reserve free, -ENOSPC (go_full stops storing).
 * 0 when there is room.
 */
static int room_check(struct archive_writer *w)
{
	uint64_t free_now = fs_free(w), reserve = full_reserve(w);
	uint64_t seg = w->seg_open ? w->seg.file_bytes - w->seg_committed.file_bytes : 0;
	uint64_t need = seg ? seg + index_items(w) * w->idx_item_bytes : 0;
	if (need &&
	    (free_now < reserve + need || seg >= (free_now - reserve - need) / ROOM_SHARE)) {
		int r = index_commit(w);
		if (r)
			return r;
		free_now = fs_free(w);
	}
	if (free_now < reserve)
		return archive__fail(-ENOSPC, "%s: %llu bytes free: disk full", w->a->dir,
		                     (unsigned long long)free_now);
	return 0;
}

/*
 * 1 while the disk is full (the caller drops).  Looks for space every
 * FULL_RETRY_NS, or now when `now` is set (a new QQ chunk: a statvfs() per
 * chunk costs nothing, one per packet would).
 */
static int still_full_at(struct archive_writer *w, int now_check)
{
	if (!w->st.full)
		return 0;
	uint64_t now = qq_clock_ns(CLOCK_MONOTONIC);
	if (!now_check && now < w->retry_mono)
		return 1;
	w->retry_mono = now + FULL_RETRY_NS;
	if (fs_free(w) < FULL_RESUME_FREE)
		return 1;
	w->st.full = 0; /* resume; a write that fails again comes back here */
	return 0;
}

static int still_full(struct archive_writer *w)
{
	return still_full_at(w, 0);
}

/* An inner call's result: a full disk becomes 0 (after go_full). */
static int nospace_ok(struct archive_writer *w, int r)
{
	return is_nospace(r) ? go_full(w) : r;
}

/* ---- public writing API, continued --------------------------------------------------------- */

static int tick(struct archive_writer *w, uint64_t now_ns);

/* The packet's pcap record into the frame buffer, counted in the frame, segment and totals. */
static void record_append(struct archive_writer *w, const struct archive_packet *p)
{
	uint8_t *rec = w->fbuf + w->flen;
	le32_put(rec, (uint32_t)(p->ts_ns / 1000000000u));
	le32_put(rec + 4, (uint32_t)(p->ts_ns % 1000000000u));
	le32_put(rec + 8, p->caplen);
	le32_put(rec + 12, p->wirelen);
	memcpy(rec + PCAP_RHDR_LEN, p->data, p->caplen);
	w->flen += PCAP_RHDR_LEN + p->caplen;
	w->counted = 1;

	uint64_t ts_ns = p->ts_ns;
	struct archive_frame_info *fr = &w->frame;
	fr->packets++;
	fr->min_ns = ts_ns < fr->min_ns ? ts_ns : fr->min_ns;
	fr->max_ns = ts_ns > fr->max_ns ? ts_ns : fr->max_ns;
	struct archive_segment_info *s = &w->seg;
	s->min_ns = s->packets == 0 || ts_ns < s->min_ns ? ts_ns : s->min_ns;
	s->max_ns = ts_ns > s->max_ns ? ts_ns : s->max_ns;
	s->packets++;
	s->wire_bytes += p->wirelen;
	w->st.packets++;
	w->st.wire_bytes += p->wirelen;
	w->st.record_bytes += PCAP_RHDR_LEN + p->caplen;
}

static int add_packet(struct archive_writer *w, const struct archive_packet *p)
{
	int r;
	if (w->seg_open && (w->seg.linktype != p->linktype || w->seg.snaplen != p->snaplen) &&
	    (r = segment_close(w)) != 0)
		return r;
	/* room for a new frame (or segment) first: a frame started is written whole */
	if ((!w->seg_open || w->frame.packets == 0) && (r = room_check(w)) != 0)
		return r;
	if (!w->seg_open && (r = segment_open(w, p->linktype, p->snaplen)) != 0)
		return r;
	/* index first: it may commit (a full flow table), closing the frame without this packet */
	if ((r = packet_index(w, p)) != 0)
		return r;
	record_append(w, p);
	if (w->flen < w->cfg.frame_size)
		return 0;
	if ((r = frame_flush(w)) != 0)
		return r;
	if (w->seg.file_bytes >= w->cfg.segment_size)
		return segment_close(w);
	return tick(w, qq_clock_ns(CLOCK_MONOTONIC));
}

int archive_writer_add_packet(struct archive_writer *w, const struct archive_packet *p)
{
	if (p->caplen > ARCHIVE_MAX_CAPLEN || p->caplen > p->snaplen)
		return archive__fail(ARCHIVE_E_TOOBIG, "packet of %u bytes exceeds snaplen %u",
		                     p->caplen, p->snaplen);
	if (p->ts_ns > ARCHIVE_MAX_TS_NS) /* a record's seconds are u32: it would wrap */
		return archive__fail(ARCHIVE_E_TIME, "packet time %llu ns is after %llu",
		                     (unsigned long long)p->ts_ns, ARCHIVE_MAX_TS_NS);
	if (still_full(w)) {
		w->st.unstored_packets++;
		w->st.unstored_bytes += p->wirelen;
		return 0;
	}
	w->counted = 0;
	int r = add_packet(w, p);
	if (is_nospace(r) && !w->counted) { /* failed before it was in the segment */
		w->st.unstored_packets++;
		w->st.unstored_bytes += p->wirelen;
	}
	return nospace_ok(w, r);
}

int archive_writer_set_chunk(struct archive_writer *w, uint64_t chunk)
{
	if (chunk == w->chunk)
		return 0;
	w->chunk = chunk;
	if (still_full_at(w, 1) || !w->seg_open)
		return 0;
	if (w->frame.packets == 0) { /* nothing of the old chunk: just retag */
		w->frame.chunk = chunk;
		return 0;
	}
	int r = frame_flush(w);
	if (r == 0 && w->seg.file_bytes >= w->cfg.segment_size)
		r = segment_close(w);
	return nospace_ok(w, r);
}

static int tick(struct archive_writer *w, uint64_t now_ns)
{
	if (!w->seg_open)
		return 0;
	if (now_ns - w->seg_created_mono >= w->cfg.segment_age_ns)
		return segment_close(w);
	if (now_ns - w->last_commit_mono >= w->cfg.sync_ns)
		return index_commit(w);
	return 0;
}

int archive_writer_tick(struct archive_writer *w, uint64_t now_ns)
{
	if (still_full(w))
		return 0;
	return nospace_ok(w, tick(w, now_ns));
}

int archive_writer_flush(struct archive_writer *w)
{
	if (w->st.full)
		return 0;
	return nospace_ok(w, index_commit(w));
}

int archive_writer_close(struct archive_writer *w)
{
	/* full or not, the reserve has room for the seek table; when even that fails, the
	 * segment stays open at its last commit: recovery closes it */
	int r = segment_close(w);
	r = is_nospace(r) && w->st.full ? 0 : nospace_ok(w, r);
	writer_free(w);
	return r;
}
