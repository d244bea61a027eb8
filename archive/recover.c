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
 *   - segments on retention's drop list (the index says retention dropped
 *     them; the crash came before their files went): the files are removed.
 *   - a segment the index has as open: its indexed frames are on disk (the
 *     index only ever points at synced bytes), frames written after the last
 *     commit may follow, then perhaps a torn frame.  The whole file is indexed
 *     again up to its last whole frame; the commit that writes its new entries
 *     deletes the old ones in the same transaction (a crash during recovery
 *     leaves it as it was, for the next one); then it is cut there, sealed
 *     with its seek table and closed.
 *   - a file the index neither lists nor names as dropped: an empty `.open`
 *     file (created just before a crash, its record not committed) is
 *     removed; anything else is left alone and reported (index rebuild
 *     indexes it), and new segment ids skip past it.  An index that lists no
 *     segment at all beside such files was lost: recovery refuses, changing
 *     nothing, and says to run index rebuild.
 * Nothing is removed on a guess: only what the index says retention dropped,
 * or holds no byte.
 * Rebuild (archive_rebuild) indexes every segment file into a new index
 * beside the old one, then swaps them with one exchanging rename (a kill
 * leaves one of the two in place); an old index it could not read is kept
 * aside, not removed.  It checks that every file can be read before it
 * changes any (it cuts and closes open segments).  A rebuild that fails or is
 * stopped (archive_rebuild_stop) before the swap removes its new index; one
 * killed outright leaves it, for the next rebuild to remove.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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

/*
 * The segment files of dir/segments (12-digit id, .pcap.zst or .pcap.zst.open), by id.
 * Only regular files: anything else under such a name (a directory, a device) is no
 * segment of ours, left alone and, with log, reported.
 */
static int list_files_log(const char *dir, struct seg_file **out, size_t *n, archive_log_fn log,
                          void *arg)
{
	char path[4096];
	*out = NULL; /* an empty list whatever comes */
	*n = 0;
	snprintf(path, sizeof(path), "%s/segments", dir);
	DIR *d = opendir(path);
	if (!d)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	size_t cap = 0;
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
		if (!S_ISREG(st.st_mode)) {
			say(log, arg, "%s: not a regular file: no segment, left alone", path);
			continue;
		}
		if ((r = archive__grow((void **)out, &cap, *n + 1, sizeof(**out))) != 0)
			break;
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

static int list_files(const char *dir, struct seg_file **out, size_t *n)
{
	return list_files_log(dir, out, n, NULL, NULL);
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

/* What recovery starts from: the index's segments and drop list, the files, all by id. */
struct recovery {
	struct archive *a;
	archive_log_fn log;
	void *arg;
	struct archive_recover_stats *st;
	struct archive_segment_info *segs;
	size_t nseg, segcap;
	uint64_t *dropped;
	size_t ndropped;
	struct seg_file *files;
	size_t nfiles;
};

static int collect_seg(const struct archive_segment_info *s, void *arg)
{
	struct recovery *rv = arg;
	int r = archive__grow((void **)&rv->segs, &rv->segcap, rv->nseg + 1, sizeof(*rv->segs));
	if (r)
		return r;
	rv->segs[rv->nseg++] = *s;
	return 0;
}

static int indexed(const struct recovery *rv, uint64_t id)
{
	size_t lo = 0, hi = rv->nseg; /* segs come in id order (their keys) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rv->segs[mid].id == id)
			return 1;
		if (rv->segs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int on_drop_list(const struct recovery *rv, uint64_t id)
{
	size_t lo = 0, hi = rv->ndropped; /* increasing (their keys) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rv->dropped[mid] == id)
			return 1;
		if (rv->dropped[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int recovery_load(struct recovery *rv)
{
	struct archive_rtxn *t;
	int r = archive_rtxn_begin(rv->a, &t);
	if (r)
		return r;
	r = archive_segments(t, 0, 0, collect_seg, rv);
	archive_rtxn_end(t);
	if (r == 0)
		r = archive__dropped_list(rv->a, &rv->dropped, &rv->ndropped);
	if (r == 0)
		r = list_files(rv->a->dir, &rv->files, &rv->nfiles);
	return r;
}

/*
 * An index that lists no segment beside segment files with data was lost or
 * replaced (a new one is created empty when index/data.mdb is gone): nothing
 * in it says what those files are, so nothing is touched and rebuild is the
 * way on.
 */
static int refuse_unknown_archive(const struct recovery *rv)
{
	size_t n = 0;
	uint64_t first = 0, last = 0;
	for (size_t i = 0; rv->nseg == 0 && i < rv->nfiles; i++) {
		const struct seg_file *f = &rv->files[i];
		if (f->size == 0 || on_drop_list(rv, f->id))
			continue;
		first = n++ ? first : f->id;
		last = f->id;
	}
	if (n == 0)
		return 0;
	return archive__fail(ARCHIVE_E_CORRUPT,
	                     "%s: the index lists no segment but %s/segments holds %zu segment "
	                     "files (%012llu to %012llu): the index was lost or replaced; nothing "
	                     "was changed: run flowscope index rebuild --archive %s, then record",
	                     rv->a->dir, rv->a->dir, n, (unsigned long long)first,
	                     (unsigned long long)last, rv->a->dir);
}

/* Retention dropped these from the index and a crash came before their files went. */
static int finish_drops(struct recovery *rv)
{
	size_t n = 0, removed;
	uint64_t *ids = rv->ndropped ? malloc(rv->ndropped * sizeof(*ids)) : NULL;
	if (rv->ndropped && !ids)
		return archive__fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < rv->ndropped; i++) {
		uint64_t id = rv->dropped[i];
		if (indexed(rv, id)) { /* never written so: the index wins, the file stays */
			say(rv->log, rv->arg,
			    "segment %llu: on retention's drop list but still in the index: kept",
			    (unsigned long long)id);
			continue;
		}
		ids[n++] = id;
		for (size_t j = 0; j < rv->nfiles; j++)
			if (rv->files[j].id == id && !rv->files[j].open)
				say(rv->log, rv->arg,
				    "segment %llu: retention had dropped it from the index when a "
				    "crash "
				    "came: its file is removed now",
				    (unsigned long long)id);
	}
	int r = archive__dropped_finish(rv->a, ids, n, &removed);
	rv->st->files_removed += removed;
	free(ids);
	return r;
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

/* An open segment whose file has not one whole frame. */
static int recover_frameless(struct archive *a, const struct archive_segment_info *s,
                             const char *path, uint64_t size, archive_log_fn log, void *arg,
                             struct archive_recover_stats *st)
{
	if (s->frames > 0) { /* the index had synced frames there: damage, not a crash */
		say(log, arg,
		    "segment %llu: left open by a crash, but its first frame cannot be read: "
		    "left as it is (flowscope index verify shows the damage)",
		    (unsigned long long)s->id);
		return 0;
	}
	int r = drop_segment(a, s->id, SEG_DROP_RECORD | SEG_DROP_TERMS);
	if (r)
		return r;
	unlink(path);
	say(log, arg,
	    "segment %llu: left open by a crash without one whole frame: removed (%llu bytes)",
	    (unsigned long long)s->id, (unsigned long long)size);
	st->bytes_cut += size;
	return 0;
}

/*
 * One segment left open: its file is indexed again, whole, and closed.  Its
 * old entries stay until the commit that writes the new ones deletes them
 * (the writer adopts in replacing mode), so a crash at any point leaves it
 * readable as before or after.
 */
static int recover_open(struct archive *a, struct archive_writer *w,
                        const struct archive_segment_info *s, archive_log_fn log, void *arg,
                        struct archive_recover_stats *st)
{
	char path[4096];
	struct stat sb;
	archive__seg_path(a, s->id, ARCHIVE_SEG_OPEN, path, sizeof(path));
	if (stat(path, &sb) != 0)
		archive__seg_path(a, s->id, ARCHIVE_SEG_CLOSED, path, sizeof(path));
	st->segments++;
	int r;
	if (stat(path, &sb) != 0) {
		if ((r = drop_segment(a, s->id, SEG_DROP_RECORD | SEG_DROP_TERMS)) != 0)
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
	if (got.frames == 0)
		return recover_frameless(a, s, path, (uint64_t)sb.st_size, log, arg, st);
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

static int recover_open_all(struct recovery *rv)
{
	struct archive_writer *w = NULL;
	int r = 0;
	for (size_t i = 0; r == 0 && i < rv->nseg; i++) {
		const struct archive_segment_info *s = &rv->segs[i];
		if (s->state != ARCHIVE_SEG_OPEN)
			continue;
		struct archive_writer_config cfg = {.run = s->run};
		if (!w) {
			if ((r = archive_writer_create(rv->a, &cfg, &w)) != 0)
				break;
			archive__writer_adopt_replacing(w);
		}
		r = recover_open(rv->a, w, s, rv->log, rv->arg, rv->st);
	}
	if (!w)
		return r;
	if (r)
		archive__writer_adopt_abandon(w); /* the index keeps what it had */
	int e = archive_writer_close(w);
	return r ? r : e;
}

/*
 * Files the index does not know and that are not on the drop list: an empty
 * `.open` file (created just before a crash, its record not committed) is
 * removed; anything else is left alone and reported (index rebuild indexes
 * it), and new segment ids skip past it.
 */
static int recover_orphans(struct recovery *rv)
{
	uint64_t max_kept = 0;
	for (size_t i = 0; i < rv->nfiles; i++) {
		const struct seg_file *f = &rv->files[i];
		if (indexed(rv, f->id) || on_drop_list(rv, f->id))
			continue;
		char path[4096];
		archive__seg_path(rv->a, f->id, f->open ? ARCHIVE_SEG_OPEN : ARCHIVE_SEG_CLOSED,
		                  path, sizeof(path));
		if (f->size == 0 && f->open) {
			unlink(path);
			rv->st->files_removed++;
			say(rv->log, rv->arg,
			    "%s: not in the index (created empty just before a crash): removed",
			    path);
			continue;
		}
		max_kept = f->id > max_kept ? f->id : max_kept;
		say(rv->log, rv->arg,
		    "%s: not in the index: left alone (flowscope index rebuild indexes it)", path);
	}
	return max_kept ? bump_next_segment(rv->a, max_kept + 1) : 0;
}

int archive_recover(struct archive *a, archive_log_fn log, void *arg,
                    struct archive_recover_stats *st)
{
	struct archive_recover_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct recovery rv = {.a = a, .log = log, .arg = arg, .st = st};
	int r = recovery_load(&rv);
	if (r == 0)
		r = refuse_unknown_archive(&rv);
	if (r == 0)
		r = finish_drops(&rv);
	if (r == 0)
		r = recover_open_all(&rv);
	if (r == 0)
		r = recover_orphans(&rv);
	free(rv.segs);
	free(rv.dropped);
	free(rv.files);
	return r;
}

/* ---- rebuild --------------------------------------------------------------------------- */

/* Gives the fresh record of key k the trigger id (unless it has one); 1 if it did. */
static int trigger_put(MDB_txn *nt, struct archive *fresh, MDB_val *k, uint16_t trigger)
{
	struct archive_flow_info nf;
	MDB_val nv;
	if (mdb_get(nt, fresh->db_flows, k, &nv) != 0 || archive__flow_decode(k, &nv, &nf) != 0 ||
	    nf.trigger)
		return 0;
	nf.trigger = trigger;
	uint8_t b[FLOW_REC_MAX];
	MDB_val wv = {.mv_size = archive__flow_encode(&nf, b), .mv_data = b};
	return mdb_put(nt, fresh->db_flows, k, &wv, 0) == 0;
}

/*
 * The trigger of an old flow record (of, whose key was v2: format 2's, the
 * outer VLAN id only) goes to the fresh record of the same flow.  A format 2
 * key stood for every flow of its 5-tuple and outer tag: they all get it, as
 * the old record said.  Returns how many records got it.
 */
static uint64_t carry_trigger(MDB_txn *nt, struct archive *fresh,
                              const struct archive_flow_info *of, int v2)
{
	uint8_t kb[FLOW_KEY_LEN];
	/* a v2 key decodes with inner tag 0: the first of the flows it stood for */
	MDB_val k = {.mv_size = archive__flow_key_put(of->seg, &of->key, 0, kb), .mv_data = kb}, nv;
	size_t len = k.mv_size;
	if (!v2)
		return (uint64_t)trigger_put(nt, fresh, &k, of->trigger);
	MDB_cursor *c;
	uint64_t n = 0;
	if (mdb_cursor_open(nt, fresh->db_flows, &c) != 0)
		return 0;
	int rc = mdb_cursor_get(c, &k, &nv, MDB_SET_RANGE);
	/* the fresh keys that differ in the inner tag only (the last two bytes); the cursor
	 * points k into its pages, kb stays the key it started from */
	for (; rc == 0 && k.mv_size >= len - 2 && memcmp(k.mv_data, kb, len - 2) == 0;
	     rc = mdb_cursor_get(c, &k, &nv, MDB_NEXT)) {
		struct archive_flow_info nf;
		if (k.mv_size != len || archive__flow_decode(&k, &nv, &nf) != 0 || nf.trigger)
			continue;
		nf.trigger = of->trigger;
		uint8_t b[FLOW_REC_MAX];
		MDB_val wv = {.mv_size = archive__flow_encode(&nf, b), .mv_data = b};
		n += mdb_cursor_put(c, &k, &wv, MDB_CURRENT) == 0;
	}
	mdb_cursor_close(c);
	return n;
}

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
			struct archive_flow_info of;
			if (archive__flow_decode(&k, &v, &of) == 0 && of.trigger)
				flows +=
				    carry_trigger(nt, fresh, &of, k.mv_size == FLOW_KEY_LEN_V2);
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

/* Set by archive_rebuild_stop() (a signal handler): checked before each file and the swap. */
static volatile sig_atomic_t rebuild_stopping;

void archive_rebuild_stop(void)
{
	rebuild_stopping = 1;
}

static int rebuild_stopped(const struct archive *fresh)
{
	return archive__fail(-EINTR,
	                     "%s: index rebuild stopped by a signal: the old index is in place "
	                     "and unchanged, the new one removed (run it again to rebuild)",
	                     fresh->dir);
}

/* Every file can be read: checked before rebuild changes any (it cuts and closes open ones). */
static int rebuild_readable(struct archive *a, const struct seg_file *files, size_t nf)
{
	for (size_t i = 0; i < nf; i++) {
		char path[4096];
		archive__seg_path(a, files[i].id,
		                  files[i].open ? ARCHIVE_SEG_OPEN : ARCHIVE_SEG_CLOSED, path,
		                  sizeof(path));
		int fd = open(path, (files[i].open ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (fd < 0)
			return archive__fail(-errno, "%s: %s: nothing was changed", path,
			                     strerror(errno));
		close(fd);
	}
	return 0;
}

/*
 * Rebuild's files on several threads: each worker takes the next file (in id
 * order) and indexes it through a writer of its own (writers may share an
 * archive; LMDB serialises their commits, and the index's encoding does not
 * depend on their order).  What a file's indexing says (its log lines, its
 * counts, an error and its archive_errmsg()) waits in its rb_file until the
 * rebuild's thread says it, in file order: the lines, the counts and the
 * error that stops the rebuild are those of the sequential rebuild.
 */
struct rb_file {
	/* written by the thread that indexes the file, read by the rebuild's thread after
	   done (set under rb.mu, read under it: the mutex orders the rest) */
	int r;         /* 0, or the error that stops the rebuild */
	int stopped;   /* rebuild_stopping was seen before this file */
	char msg[512]; /* r's archive_errmsg() */
	char *lines;   /* its log lines, each ending in '\n' */
	size_t len, cap;
	struct indexed got;
	int counted; /* a segment indexed: got goes into the stats */
	int done;    /* (rb.mu) */
};

struct rb {
	struct archive *fresh, *old;
	const struct seg_file *files;
	size_t nf;
	struct rb_file *out;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast (under mu) when a file is done */
	size_t next;       /* the next file to take (mu) */
	int stop;          /* the rebuild's thread stops: take no more files (mu) */
};

/* archive_log_fn into the file's lines. */
static void rb_log(const char *line, void *arg)
{
	struct rb_file *o = arg;
	size_t n = strlen(line);
	if (archive__grow((void **)&o->lines, &o->cap, o->len + n + 2, 1) != 0)
		return; /* out of memory: the line is lost, the rebuild goes on */
	memcpy(o->lines + o->len, line, n);
	o->len += n;
	o->lines[o->len++] = '\n';
	o->lines[o->len] = '\0';
}

/* Indexes file f through *w (created on first use); its lines through rb_log into o. */
static int rebuild_one(struct rb *rb, struct archive_writer **w, const struct seg_file *f,
                       struct rb_file *o)
{
	char path[4096];
	struct archive_writer_config cfg = {0};
	int r;
	archive__seg_path(rb->fresh, f->id, f->open ? ARCHIVE_SEG_OPEN : ARCHIVE_SEG_CLOSED, path,
	                  sizeof(path));
	if (rb->old && !f->open && archive__dropped_contains(rb->old, NULL, f->id) == 1) {
		unlink(path); /* retention dropped it; a crash came before the unlink */
		say(rb_log, o,
		    "segment %llu: the old index has it as dropped by retention: removed",
		    (unsigned long long)f->id);
		return 0;
	}
	if (!*w && (r = archive_writer_create(rb->fresh, &cfg, w)) != 0)
		return r;
	struct archive_segment_info s = {.id = f->id,
	                                 .created_ns = old_created(rb->old, f->id, f->mtime_ns)};
	if ((r = index_file(*w, &s, path, f->open, rb_log, o, &o->got)) != 0)
		return r;
	if (o->got.frames == 0) {
		if (f->open && f->size == 0) { /* created just before a crash: no bytes */
			unlink(path);
			say(rb_log, o, "segment %llu: open and empty: removed",
			    (unsigned long long)f->id);
		} else { /* never removed: it may hold the only copy of something */
			say(rb_log, o,
			    "segment %llu: not one readable frame (%s, %llu bytes): not "
			    "indexed, left as it is; move it out of segments/ once you no "
			    "longer need its bytes",
			    (unsigned long long)f->id, path, (unsigned long long)f->size);
		}
		return 0;
	}
	o->counted = 1;
	if (f->open)
		say(rb_log, o,
		    "segment %llu: was open: %llu frames indexed, %llu bytes of an "
		    "incomplete "
		    "frame cut, closed",
		    (unsigned long long)f->id, (unsigned long long)o->got.frames,
		    (unsigned long long)o->got.bytes_cut);
	return 0;
}

/* Takes files until none is left or the rebuild stops; a worker's loop (or the only one). */
static int rebuild_take(struct rb *rb)
{
	struct archive_writer *w = NULL;
	pthread_mutex_lock(&rb->mu);
	while (!rb->stop && rb->next < rb->nf) {
		size_t i = rb->next++;
		struct rb_file *o = &rb->out[i];
		pthread_mutex_unlock(&rb->mu);
		if (rebuild_stopping)
			o->stopped = 1;
		else if ((o->r = rebuild_one(rb, &w, &rb->files[i], o)) != 0)
			snprintf(o->msg, sizeof(o->msg), "%s", archive_errmsg());
		pthread_mutex_lock(&rb->mu); /* pairs with the lock in rebuild_wait */
		o->done = 1;
		rb->stop |= o->r != 0 || o->stopped; /* no need to index what will not be said */
		pthread_cond_broadcast(&rb->cv);
	}
	pthread_mutex_unlock(&rb->mu);
	return w ? archive_writer_close(w) : 0;
}

static void *rebuild_worker(void *arg)
{
	return (void *)(intptr_t)rebuild_take(arg);
}

static void rebuild_wait(struct rb *rb, size_t i)
{
	pthread_mutex_lock(&rb->mu);
	while (!rb->out[i].done)
		pthread_cond_wait(&rb->cv, &rb->mu);
	pthread_mutex_unlock(&rb->mu);
}

/* Says file i's lines and counts it, in file order; its error, or 0. */
static int rebuild_said(struct rb *rb, size_t i, archive_log_fn log, void *arg,
                        struct archive_rebuild_stats *st)
{
	struct rb_file *o = &rb->out[i];
	for (char *l = o->lines, *nl; l && (nl = strchr(l, '\n')); l = nl + 1) {
		*nl = '\0';
		if (log)
			log(l, arg);
	}
	if (o->stopped)
		return rebuild_stopped(rb->fresh);
	if (o->r) {
		archive__errmsg_set("%s", o->msg);
		return o->r;
	}
	if (o->counted) {
		st->segments++;
		st->frames += o->got.frames;
		st->packets += o->got.packets;
		st->bytes_cut += o->got.bytes_cut;
	}
	return 0;
}

/* Indexes the files on `threads` workers (0: on this thread), saying each in order. */
static int rebuild_run(struct rb *rb, unsigned threads, archive_log_fn log, void *arg,
                       struct archive_rebuild_stats *st)
{
	pthread_t *t = threads ? calloc(threads, sizeof(*t)) : NULL;
	unsigned started = 0;
	int r = 0, e;
	while (t && started < threads && pthread_create(&t[started], NULL, rebuild_worker, rb) == 0)
		started++;
	if (started == 0) /* none (one worker asked, or none could start): here, in order */
		r = rebuild_take(rb);
	for (size_t i = 0; r == 0 && i < rb->nf; i++) {
		rebuild_wait(rb, i);
		r = rebuild_said(rb, i, log, arg, st);
	}
	pthread_mutex_lock(&rb->mu);
	rb->stop = 1; /* after an error: the workers take no more */
	pthread_mutex_unlock(&rb->mu);
	for (unsigned i = 0; i < started; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		e = (int)(intptr_t)ret;
		r = r ? r : e;
	}
	free(t);
	return r;
}

static int rebuild_files(struct archive *fresh, struct archive *old, unsigned workers,
                         archive_log_fn log, void *arg, struct archive_rebuild_stats *st,
                         uint64_t *max_id)
{
	struct seg_file *files;
	size_t nf;
	int r = list_files_log(fresh->dir, &files, &nf, log, arg);
	if (r == 0 && (r = rebuild_readable(fresh, files, nf)) != 0)
		free(files);
	if (r)
		return r;
	struct rb rb = {.fresh = fresh, .old = old, .files = files, .nf = nf};
	if (nf && !(rb.out = calloc(nf, sizeof(*rb.out)))) {
		free(files);
		return archive__fail(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&rb.mu, NULL);
	pthread_cond_init(&rb.cv, NULL);
	if (workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		workers = n < 1 ? 1 : (unsigned)n;
	}
	workers = workers > nf ? (unsigned)nf : workers;
	r = rebuild_run(&rb, workers > 1 ? workers : 0, log, arg, st);
	for (size_t i = 0; i < nf; i++) {
		*max_id = files[i].id > *max_id ? files[i].id : *max_id;
		free(rb.out[i].lines);
	}
	pthread_cond_destroy(&rb.cv);
	pthread_mutex_destroy(&rb.mu);
	free(rb.out);
	free(files);
	return r;
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

/* Why the old index could not be opened: archive_errmsg() without the archive's name and
 * the advice to rebuild (this is the rebuild). */
static const char *old_index_damage(const char *dir, char *buf, size_t len)
{
	const char *m = archive_errmsg();
	size_t dl = strlen(dir);
	if (strncmp(m, dir, dl) == 0 && strncmp(m + dl, ": ", 2) == 0)
		m += dl + 2;
	snprintf(buf, len, "%s", m);
	char *advice = strstr(buf, ": run flowscope index rebuild");
	if (advice)
		*advice = '\0';
	return buf;
}

int archive_rebuild(const char *dir, unsigned workers, archive_log_fn log, void *arg,
                    struct archive_rebuild_stats *st)
{
	struct archive_rebuild_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct archive *fresh, *old = NULL;
	int old_damaged = 0;
	int r = archive__open_rebuild(dir, ARCHIVE__REBUILD_SUB, &fresh);
	if (r)
		return r;
	if (archive_open(dir, ARCHIVE_READ | ARCHIVE__ANY_FORMAT, &old) != 0) {
		char why[512];
		old = NULL;
		old_damaged = 1;
		say(log, arg,
		    "the old index cannot be read (%s): trigger names and the last run "
		    "report are lost",
		    old_index_damage(dir, why, sizeof(why)));
	}
	uint64_t max_id = 0;
	r = rebuild_files(fresh, old, workers, log, arg, st, &max_id);
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
	if (r == 0 && rebuild_stopping)
		r = rebuild_stopped(fresh);
	if (r) {
		archive__rebuild_discard(fresh); /* the old index stays */
		return r;
	}
	char kept[4300] = ""; /* written by the swap when asked for */
	if ((r = archive__rebuild_swap(fresh, old_damaged ? kept : NULL, sizeof(kept))) == 0 &&
	    old_damaged && kept[0])
		say(log, arg, "the old index was moved to %s (kept, not used)", kept);
	return r;
}
