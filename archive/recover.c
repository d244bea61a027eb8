/*
 * Crash recovery and index rebuild: segments indexed from their bytes alone.
 *
 * Both scan a segment file frame by frame (scan.c) and feed each whole,
 * valid frame to a writer that adopts the file instead of writing it
 * (writer.c): the same code that indexes packets as they are recorded
 * indexes them here, so a recovered or rebuilt index is the index the
 * recorder would have written.
 *
 * Recovery (archive_recover, at record start) handles what a crash leaves:
 *   - a segment the index has as open: its indexed frames are on disk (the
 *     index only ever points at synced bytes), frames written after the last
 *     commit may follow, then perhaps a torn frame.  Its index entries are
 *     dropped and the whole file is indexed again up to its last whole frame,
 *     cut there, sealed with its seek table and closed.
 *   - a file the index does not know: empty (created just before the crash,
 *     its record not committed) or older than every indexed segment (retention
 *     dropped it from the index, then the crash came before the unlink):
 *     removed.  Anything else is left alone and reported (index rebuild
 *     indexes it), and new segment ids skip past it.
 * Rebuild (archive_rebuild) indexes every segment file into a new index
 * beside the old one, then swaps them.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"

static void say(archive_log_fn log, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(archive_log_fn log, void *arg, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log)
		log(line, arg);
}

/* ---- segment files on disk ------------------------------------------------------------- */

struct seg_file {
	uint64_t id;
	int open; /* the .open name */
	uint64_t size, mtime_ns;
};

static int file_cmp(const void *x, const void *y)
{
	const struct seg_file *a = x, *b = y;
	return (a->id > b->id) - (a->id < b->id);
}

/* The segment files of dir/segments (12-digit id, .pcap.zst or .pcap.zst.open), by id. */
static int list_files(const char *dir, struct seg_file **out, size_t *n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/segments", dir);
	DIR *d = opendir(path);
	if (!d)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	struct dirent *e;
	int r = 0;
	while ((e = readdir(d))) {
		char tail[32];
		unsigned long long id;
		int used = 0;
		if (strlen(e->d_name) < 21 || sscanf(e->d_name, "%12llu%n", &id, &used) != 1 ||
		    used != 12 || snprintf(tail, sizeof(tail), "%s", e->d_name + 12) < 0)
			continue;
		int open = strcmp(tail, ".pcap.zst.open") == 0;
		if (!open && strcmp(tail, ".pcap.zst") != 0)
			continue;
		struct stat st;
		snprintf(path, sizeof(path), "%s/segments/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct seg_file *nf = realloc(*out, cap * sizeof(*nf));
			if (!nf) {
				r = archive__fail(-ENOMEM, "out of memory");
				break;
			}
			*out = nf;
		}
		(*out)[(*n)++] =
		    (struct seg_file){.id = id,
		                      .open = open,
		                      .size = (uint64_t)st.st_size,
		                      .mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
		                                  (uint64_t)st.st_mtim.tv_nsec};
	}
	closedir(d);
	if (r == 0 && *n > 1)
		qsort(*out, *n, sizeof(**out), file_cmp);
	return r;
}

/* ---- indexing one file ------------------------------------------------------------------- */

struct indexed {
	uint64_t frames, packets, bytes_cut;
	uint64_t damaged; /* damaged frames stepped over (the frames after them are indexed) */
	int complete;     /* the scan reached the end or a matching seek table */
};

/*
 * Steps over the damaged frame at sc->off (why: what is wrong) to the next
 * whole one, said in one line; returns as archive__scan_resync.
 */
static int skip_damage(struct seg_scan *sc, struct seg_scanned *f, char *why, size_t whylen,
                       uint64_t id, const char *path, archive_log_fn log, void *arg,
                       struct indexed *got)
{
	char damage[160];
	uint32_t frame = sc->frame;
	snprintf(damage, sizeof(damage), "%s", why);
	int n = archive__scan_resync(sc, f, why, whylen);
	if (n >= 0) {
		got->damaged++;
		say(log, arg,
		    "segment %llu frame %u (%s, byte %llu): %s: its %u bytes are not indexed, the "
		    "frames after it are",
		    (unsigned long long)id, frame, path, (unsigned long long)sc->gap_off, damage,
		    sc->gap_bytes);
	}
	return n;
}

/* The damaged bytes stepped over last, once the segment is adopted. */
static int gap_flush(struct archive_writer *w, const struct seg_scan *sc, int *gap)
{
	if (!*gap)
		return 0;
	*gap = 0;
	return archive__writer_adopt_gap(w, sc->gap_bytes, sc->gap_usize);
}

/*
 * Indexes the file of segment `info->id` at path through writer w (adopting
 * it), frame by frame.  A damaged frame followed by whole ones is stepped
 * over (said in one line, counted in got->damaged; its bytes stay); what
 * follows the last whole frame (a torn tail) is not indexed: with seal, it is
 * cut and the file closed with a seek table.  *got says what was found.  A
 * file without one whole frame is not indexed (got->frames == 0).  When frame
 * 0 is damaged past reading its pcap header, info's link type and snaplen
 * (if info->snaplen is set: what an index knew) stand in for it.
 */
static int index_file(struct archive_writer *w, const struct archive_segment_info *info,
                      const char *path, int seal, archive_log_fn log, void *arg,
                      struct indexed *got)
{
	struct seg_scan sc;
	struct seg_scanned f;
	char why[160];
	int adopted = 0, gap = 0;
	memset(got, 0, sizeof(*got));
	int r = archive__scan_open(&sc, path);
	if (r)
		return r;
	sc.known_linktype = info->linktype; /* (recovery: the index's record) */
	sc.known_snaplen = info->snaplen;
	int n = archive__scan_next(&sc, &f, why, sizeof(why));
	while (r == 0) {
		if (n == -1 && (n = skip_damage(&sc, &f, why, sizeof(why), info->id, path, log, arg,
		                                got)) != -1) {
			gap = n >= 0;
			continue;
		}
		if (n != 1)
			break;
		if (!adopted++) {
			struct archive_segment_info s = *info;
			s.linktype = sc.linktype;
			s.snaplen = sc.snaplen;
			s.run = sc.run;
			if ((r = archive__writer_adopt(w, &s, info->created_ns, path)) != 0)
				break;
		}
		r = gap_flush(w, &sc, &gap);
		if (r == 0 && (r = archive__writer_adopt_frame(w, &f)) == 0) {
			got->frames++;
			got->packets += f.packets;
			n = archive__scan_next(&sc, &f, why, sizeof(why));
		}
	}
	if (r == 0 && n < -1)
		r = n;
	if (adopted && r == 0) /* damage just before a matching seek table */
		r = gap_flush(w, &sc, &gap);
	if (r == 0 && adopted) {
		got->complete = n == 0;
		if (n == -1 && !seal)
			say(log, arg,
			    "segment %llu (%s): damaged at byte %llu (%s): what follows is not "
			    "indexed, "
			    "the file is left as it is",
			    (unsigned long long)info->id, path, (unsigned long long)sc.off, why);
		r = archive__writer_adopt_close(w, seal, sc.seektable, &got->bytes_cut);
	}
	archive__scan_close(&sc);
	return r;
}

/* ---- recovery ------------------------------------------------------------------------------ */

static int collect_seg(const struct archive_segment_info *s, void *arg)
{
	struct {
		struct archive_segment_info *v;
		size_t n, cap;
	} *c = arg;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		struct archive_segment_info *nv = realloc(c->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	c->v[c->n++] = *s;
	return 0;
}

/* Drops a segment's entries (what) from the index in one transaction. */
static int drop_segment(struct archive *a, uint64_t id, unsigned what)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	int r = archive__segment_drop(a, txn, id, what);
	if (r) {
		mdb_txn_abort(txn);
		return r;
	}
	rc = mdb_txn_commit(txn);
	return rc ? archive__lmdb_fail(rc, "commit") : 0;
}

/*
 * Sets the meta counter `key` (next_segment: u64 LE; next_run: u32 LE) to at
 * least `next`: counters only grow, so an id once handed out is never reused.
 */
static int bump_meta(struct archive *a, const char *key, size_t width, uint64_t next)
{
	MDB_txn *txn;
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key}, v;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	uint64_t cur = 1;
	if (mdb_get(txn, a->db_meta, &k, &v) == 0 && v.mv_size == width)
		cur = width == 8 ? le64_get(v.mv_data) : le32_get(v.mv_data);
	if (cur >= next) {
		mdb_txn_abort(txn);
		return 0;
	}
	uint8_t b[8];
	if (width == 8)
		le64_put(b, next);
	else
		le32_put(b, (uint32_t)next);
	v = (MDB_val){.mv_size = width, .mv_data = b};
	if ((rc = mdb_put(txn, a->db_meta, &k, &v, 0)) != 0) {
		char what[32];
		snprintf(what, sizeof(what), "write %s", key);
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, what);
	}
	if ((rc = mdb_txn_commit(txn)) != 0) /* the txn is freed either way */
		return archive__lmdb_fail(rc, "commit");
	return 0;
}

static int bump_next_segment(struct archive *a, uint64_t next)
{
	return bump_meta(a, "next_segment", 8, next);
}

/* One segment left open: index its file again, whole, and close it. */
static int recover_open(struct archive *a, struct archive_writer *w,
                        const struct archive_segment_info *s, archive_log_fn log, void *arg,
                        struct archive_recover_stats *st)
{
	char path[4096];
	struct stat sb;
	archive__seg_path(a, s->id, ARCHIVE_SEG_OPEN, path, sizeof(path));
	if (stat(path, &sb) != 0)
		archive__seg_path(a, s->id, ARCHIVE_SEG_CLOSED, path, sizeof(path));
	/* its entries go, its record stays (open) until it is indexed again: a crash
	 * during recovery leaves it for the next one */
	int r = drop_segment(a, s->id, SEG_DROP_TERMS);
	if (r)
		return r;
	st->segments++;
	if (stat(path, &sb) != 0) {
		if ((r = drop_segment(a, s->id, SEG_DROP_RECORD)) != 0)
			return r;
		say(log, arg,
		    "segment %llu: left open by a crash and its file is gone: removed from "
		    "the index",
		    (unsigned long long)s->id);
		return 0;
	}
	struct indexed got;
	if ((r = index_file(w, s, path, 1, log, arg, &got)) != 0)
		return r;
	if (got.frames == 0) {
		if ((r = drop_segment(a, s->id, SEG_DROP_RECORD)) != 0)
			return r;
		unlink(path);
		say(log, arg,
		    "segment %llu: left open by a crash without one whole frame: removed "
		    "(%llu bytes)",
		    (unsigned long long)s->id, (unsigned long long)sb.st_size);
		st->bytes_cut += (uint64_t)sb.st_size;
		return 0;
	}
	uint64_t after = got.frames > s->frames ? got.frames - s->frames : 0;
	st->frames_indexed += after;
	st->bytes_cut += got.bytes_cut;
	say(log, arg,
	    "segment %llu: left open by a crash: %llu frames (%llu packets) kept, %llu of them "
	    "written after the last index commit; %llu bytes of an incomplete frame cut; closed",
	    (unsigned long long)s->id, (unsigned long long)got.frames,
	    (unsigned long long)got.packets, (unsigned long long)after,
	    (unsigned long long)got.bytes_cut);
	return 0;
}

/* Files the index does not know. */
static int recover_orphans(struct archive *a, const struct archive_segment_info *segs, size_t nseg,
                           archive_log_fn log, void *arg, struct archive_recover_stats *st)
{
	struct seg_file *files;
	size_t nf;
	int r = list_files(a->dir, &files, &nf);
	if (r)
		return r;
	uint64_t min_id = nseg ? segs[0].id : UINT64_MAX, max_kept = 0;
	size_t j = 0;
	for (size_t i = 0; i < nf; i++) {
		while (j < nseg && segs[j].id < files[i].id)
			j++;
		if (j < nseg && segs[j].id == files[i].id)
			continue;
		char path[4096];
		archive__seg_path(a, files[i].id,
		                  files[i].open ? ARCHIVE_SEG_OPEN : ARCHIVE_SEG_CLOSED, path,
		                  sizeof(path));
		if (files[i].size == 0 || (!files[i].open && files[i].id < min_id)) {
			unlink(path);
			st->files_removed++;
			say(log, arg, "%s: not in the index (%s): removed", path,
			    files[i].size == 0 ? "created empty just before a crash"
			                       : "retention had dropped it when a crash came");
			continue;
		}
		max_kept = files[i].id > max_kept ? files[i].id : max_kept;
		say(log, arg,
		    "%s: not in the index: left alone (flowscope index rebuild indexes it)", path);
	}
	free(files);
	return max_kept ? bump_next_segment(a, max_kept + 1) : 0;
}

int archive_recover(struct archive *a, archive_log_fn log, void *arg,
                    struct archive_recover_stats *st)
{
	struct {
		struct archive_segment_info *v;
		size_t n, cap;
	} c = {0};
	struct archive_recover_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct archive_rtxn *t;
	int r = archive_rtxn_begin(a, &t);
	if (r == 0) {
		r = archive_segments(t, 0, 0, collect_seg, &c);
		archive_rtxn_end(t);
	}
	struct archive_writer *w = NULL;
	for (size_t i = 0; r == 0 && i < c.n; i++) {
		if (c.v[i].state != ARCHIVE_SEG_OPEN)
			continue;
		struct archive_writer_config cfg = {.run = c.v[i].run};
		if (!w && (r = archive_writer_create(a, &cfg, &w)) != 0)
			break;
		r = recover_open(a, w, &c.v[i], log, arg, st);
	}
	if (r == 0)
		r = recover_orphans(a, c.v, c.n, log, arg, st);
	if (w) {
		int e = archive_writer_close(w);
		r = r ? r : e;
	}
	free(c.v);
	return r;
}

/* ---- rebuild --------------------------------------------------------------------------- */

/*
 * What only the old index knew: trigger names and ids, the last run report,
 * the next ids, and which trigger archived each flow.  Best effort: an old
 * index that cannot be read leaves the new one without them.
 */
static int carry_over(struct archive *old, struct archive *fresh, archive_log_fn log, void *arg)
{
	MDB_txn *ot, *nt;
	if (mdb_txn_begin(old->env, NULL, MDB_RDONLY, &ot) != 0)
		return 0;
	int rc = mdb_txn_begin(fresh->env, NULL, 0, &nt);
	if (rc) {
		mdb_txn_abort(ot);
		return archive__lmdb_fail(rc, "begin write");
	}
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t flows = 0;
	/* meta: triggers (both directions), counters, the run report; not next_segment */
	if (mdb_cursor_open(ot, old->db_meta, &c) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
			if (!(k.mv_size == 12 && memcmp(k.mv_data, "next_segment", 12) == 0))
				mdb_put(nt, fresh->db_meta, &k, &v, 0);
		mdb_cursor_close(c);
	}
	/* flow records: the trigger of the same flow in the same segment */
	if (mdb_cursor_open(ot, old->db_flows, &c) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			struct archive_flow_info of, nf;
			MDB_val nv;
			if (archive__flow_decode(&k, &v, &of) != 0 || of.trigger == 0 ||
			    mdb_get(nt, fresh->db_flows, &k, &nv) != 0 ||
			    archive__flow_decode(&k, &nv, &nf) != 0 || nf.trigger)
				continue;
			nf.trigger = of.trigger;
			uint8_t b[FLOW_REC_MAX];
			MDB_val wv = {.mv_size = archive__flow_encode(&nf, b), .mv_data = b};
			if (mdb_put(nt, fresh->db_flows, &k, &wv, 0) == 0)
				flows++;
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(ot);
	if ((rc = mdb_txn_commit(nt)) != 0)
		return archive__lmdb_fail(rc, "commit");
	say(log, arg,
	    "carried over from the old index: trigger names, run report, and the trigger "
	    "of %llu flow records",
	    (unsigned long long)flows);
	return 0;
}

/* The segment record of id in the old index (its creation time), if readable. */
static uint64_t old_created(struct archive *old, uint64_t id, uint64_t fallback)
{
	if (!old)
		return fallback;
	uint64_t created = fallback;
	uint8_t kb[8];
	be64_put(kb, id);
	MDB_val k = {.mv_size = 8, .mv_data = kb}, v;
	MDB_txn *txn;
	if (mdb_txn_begin(old->env, NULL, MDB_RDONLY, &txn) == 0) {
		struct archive_segment_info s;
		if (mdb_get(txn, old->db_segments, &k, &v) == 0 &&
		    archive__seg_decode(id, &v, &s) == 0 && s.created_ns)
			created = s.created_ns;
		mdb_txn_abort(txn);
	}
	return created;
}

static int rebuild_files(struct archive *fresh, struct archive *old, archive_log_fn log, void *arg,
                         struct archive_rebuild_stats *st, uint64_t *max_id)
{
	struct seg_file *files;
	size_t nf;
	int r = list_files(fresh->dir, &files, &nf);
	if (r)
		return r;
	struct archive_writer *w = NULL;
	struct archive_writer_config cfg = {0};
	if ((r = archive_writer_create(fresh, &cfg, &w)) != 0) {
		free(files);
		return r;
	}
	for (size_t i = 0; r == 0 && i < nf; i++) {
		char path[4096];
		struct seg_file *f = &files[i];
		archive__seg_path(fresh, f->id, f->open ? ARCHIVE_SEG_OPEN : ARCHIVE_SEG_CLOSED,
		                  path, sizeof(path));
		*max_id = f->id > *max_id ? f->id : *max_id;
		struct archive_segment_info s = {
		    .id = f->id, .created_ns = old_created(old, f->id, f->mtime_ns)};
		struct indexed got;
		if ((r = index_file(w, &s, path, f->open, log, arg, &got)) != 0)
			break;
		if (got.frames == 0) {
			if (f->open) {
				unlink(path);
				say(log, arg,
				    "segment %llu: open, without one whole frame: removed",
				    (unsigned long long)f->id);
			} else {
				say(log, arg,
				    "segment %llu: not one readable frame: not indexed, left as it "
				    "is",
				    (unsigned long long)f->id);
			}
			continue;
		}
		st->segments++;
		st->frames += got.frames;
		st->packets += got.packets;
		st->bytes_cut += got.bytes_cut;
		if (f->open)
			say(log, arg,
			    "segment %llu: was open: %llu frames indexed, %llu bytes of an "
			    "incomplete "
			    "frame cut, closed",
			    (unsigned long long)f->id, (unsigned long long)got.frames,
			    (unsigned long long)got.bytes_cut);
	}
	int e = archive_writer_close(w);
	free(files);
	return r ? r : e;
}

struct rebuilt {
	uint64_t flows;
	uint32_t max_run;
};

static int count_flows(const struct archive_segment_info *s, void *arg)
{
	struct rebuilt *b = arg;
	b->flows += s->flows;
	b->max_run = s->run > b->max_run ? s->run : b->max_run;
	return 0;
}

int archive_rebuild(const char *dir, archive_log_fn log, void *arg,
                    struct archive_rebuild_stats *st)
{
	struct archive_rebuild_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct archive *fresh, *old = NULL;
	int r = archive__open_rebuild(dir, "index.rebuild", &fresh);
	if (r)
		return r;
	if (archive_open(dir, ARCHIVE_READ, &old) != 0) {
		old = NULL;
		say(log, arg,
		    "the old index cannot be read (%s): trigger names and the last run "
		    "report are lost",
		    archive_errmsg());
	}
	uint64_t max_id = 0;
	r = rebuild_files(fresh, old, log, arg, st, &max_id);
	if (r == 0 && old)
		r = carry_over(old, fresh, log, arg);
	if (r == 0 && max_id)
		r = bump_next_segment(fresh, max_id + 1);
	if (r == 0 && old) { /* never reuse an id the old index handed out */
		MDB_txn *txn;
		MDB_val k = {.mv_size = 12, .mv_data = "next_segment"}, v;
		uint64_t next = 0;
		if (mdb_txn_begin(old->env, NULL, MDB_RDONLY, &txn) == 0) {
			if (mdb_get(txn, old->db_meta, &k, &v) == 0 && v.mv_size == 8)
				next = le64_get(v.mv_data);
			mdb_txn_abort(txn);
		}
		if (next)
			r = bump_next_segment(fresh, next);
	}
	if (r == 0) {
		struct archive_rtxn *t;
		struct rebuilt b = {0};
		if ((r = archive_rtxn_begin(fresh, &t)) == 0) {
			r = archive_segments(t, 0, 0, count_flows, &b);
			archive_rtxn_end(t);
		}
		st->flows = b.flows;
		if (r == 0 && b.max_run)
			r = bump_meta(fresh, "next_run", 4, (uint64_t)b.max_run + 1);
	}
	archive_close(old);
	if (r) {
		archive_close(fresh); /* the old index stays; index.rebuild is removed next time */
		return r;
	}
	return archive__rebuild_swap(fresh);
}
