/*
 * Index verification (archive_verify, `flowscope index verify`): every index
 * entry checked against the segment files, read-only, from one LMDB snapshot.
 *
 * Each segment is scanned from its bytes alone (scan.c: every frame
 * decompressed with its checksum checked, its pcap records checked) and
 * indexed again exactly as the writer indexes it (archive__index_packet, the
 * same posting-list encoding, which is canonical), so the comparison is byte
 * for byte: each term's posting list, each frame record, each flow record
 * and the segment record's totals.  What the index holds beyond that (term
 * entries no frame gives, frame records past the segment's frames, frame and
 * flow records of segments it does not have) and files no record names are
 * found by one cursor pass per key range, one seek per segment.
 *
 * The frames are decompressed and checked on a thread of their own, up to
 * SCAN_AHEAD_FRAMES ahead of the indexing and comparing (scan_pvt.h's
 * reading ahead): the two overlap on two cores; the order of everything said
 * is the one frame-by-frame reading gives.
 *
 * Memory: the term lists and the flow table of the segment being checked,
 * the frames read ahead;
 * of the segments before it, only how many term entries each should have,
 * until their partition of `terms` has been counted (at most
 * TERMS_PART_SEGS segments).
 *
 * A writer may run meanwhile (readers take no lock): the snapshot is
 * consistent, and files only grow, get renamed to the closed name, or appear
 * with ids the snapshot has not allocated.  So a file is looked for under
 * both names; an open segment may hold frames past the indexed ones and a
 * torn tail; a file with an id at or past the snapshot's next_segment is new
 * (not damage) while a writer holds the archive or once a fresh snapshot has
 * it (a recorder may have come and gone while verify ran); a file that
 * vanished is a problem only if a fresh snapshot still has its segment, and a
 * file the snapshot does not know only if it is still there (retention
 * commits, then deletes files).
 * Term entries of segments not in `segments` are allowed: retention leaves
 * them until their whole partition goes.
 *
 * The data is untrusted: sizes, offsets and values are checked before use;
 * each inconsistency is one problem line, never a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"
#include "archive/terms_pvt.h"
#include "qq/qq.h"

#define MAX_SHOWN 1000          /* problem lines logged; the rest are only counted */
#define FLOWS_MIN 1024u         /* smallest flow table */
#define FLOWS_MAX (1u << 23)    /* largest flow table a check allocates (~1 GiB) */
#define FLOWS_TRUST (1u << 18)  /* a segment record's flow count is believed up to this */
#define FRAMESET_MAX (1u << 22) /* frames decoded from one posting list of the index */

struct part_seg {
	uint64_t seg;
	uint64_t want;  /* term entries its frames give */
	uint64_t found; /* of those, present in the index */
	uint64_t count; /* entries of the segment in its partition */
};

/* The frames of a posting list, decoded (at most FRAMESET_MAX: a hostile run stops there). */
struct frameset {
	uint32_t *f;
	size_t n, cap;
};

struct verify {
	struct archive *a;
	MDB_txn *txn;
	archive_log_fn log;
	void *arg;
	struct archive_verify_stats *st;
	uint64_t next_segment;    /* meta next_segment in the snapshot */
	uint64_t next_run;        /* meta next_run in the snapshot */
	struct termset terms;     /* of the frame being indexed */
	struct segterms segterms; /* of the segment being checked */
	struct ft_table *flows;   /* of the segment being checked */
	size_t flows_cap;
	uint64_t evicted;                    /* the table's eviction count before this segment */
	struct frameset fs_index, fs_frames; /* a posting list that differs, both ways */
	int read_ahead;                      /* frames decompressed on a thread of their own */
	/* the partition of `terms` being checked and its segments' expectations */
	uint32_t part;
	uint32_t nparts;
	struct part_seg pseg[TERMS_PART_SEGS];
};

struct seg_check {
	struct archive_segment_info s; /* the index's record */
	char path[4096];
	int opened;
	struct seg_scan scan;
	struct seg_ahead *ahead;  /* reads scan ahead: decompression beside the indexing */
	struct seg_ahead_pos pos; /* where scan stood after the last frame taken */
	int indexed;              /* terms and flows recorded (not ARCHIVE_SEG_UNINDEXED) */
	int complete;             /* every indexed frame was read */
	uint64_t flow_keys_v2;    /* flow records keyed as format 2 wrote them (outer VLAN only) */
	/* what the frames read hold */
	uint64_t packets, wire_bytes, record_bytes, file_bytes, min_ns, max_ns;
};

static void problem(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct verify *v, const char *fmt, ...)
{
	char line[1024];
	if (!v->log) {
		v->st->problems++;
		return;
	}
	if (++v->st->problems > MAX_SHOWN) {
		if (v->st->problems == MAX_SHOWN + 1)
			v->log("... more problems not shown", v->arg);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->log(line, v->arg);
}

/* ---- formatting for messages ---------------------------------------------------------- */

static const char *term_str(const struct term_entry *e, char *buf, size_t len)
{
	char addr[FT_ADDRSTRLEN];
	unsigned u16 = e->len >= 2 ? (unsigned)(e->b[0] << 8 | e->b[1]) : 0;
	switch (e->type) {
	case ARCHIVE_TERM_HOST:
		snprintf(buf, len, "host %s", ft_addr_format(e->b, addr, sizeof(addr)));
		break;
	case ARCHIVE_TERM_PORT:
		snprintf(buf, len, "port %u", u16);
		break;
	case ARCHIVE_TERM_PROTO:
		snprintf(buf, len, "proto %u", e->b[0]);
		break;
	case ARCHIVE_TERM_VLAN:
		snprintf(buf, len, "vlan %u", u16);
		break;
	case ARCHIVE_TERM_ETHERTYPE:
		snprintf(buf, len, "ethertype 0x%04x", u16);
		break;
	case ARCHIVE_TERM_UNINDEXED:
		snprintf(buf, len, "unindexed");
		break;
	default:
		snprintf(buf, len, "type 0x%02x", e->type);
	}
	return buf;
}

/* Frame numbers as ranges ("0-3,7"), cut with "..." when the buffer is full. */
struct ranges {
	char *buf;
	size_t len, n;
	uint32_t start, prev;
	int have, full;
};

static void ranges_init(struct ranges *r, char *buf, size_t len)
{
	*r = (struct ranges){.buf = buf, .len = len};
	buf[0] = '\0';
}

static void ranges_emit(struct ranges *r)
{
	const char *sep = r->n ? "," : "";
	size_t room = r->len - r->n;
	int w = r->start == r->prev
	            ? snprintf(r->buf + r->n, room, "%s%u", sep, r->start)
	            : snprintf(r->buf + r->n, room, "%s%u-%u", sep, r->start, r->prev);
	if (w < 0 || (size_t)w + 5 >= room) { /* no room left: cut here */
		snprintf(r->buf + r->n, room, "%s...", sep);
		r->full = 1;
		return;
	}
	r->n += (size_t)w;
}

static void ranges_add(struct ranges *r, uint32_t f)
{
	if (r->full)
		return;
	if (r->have && f == r->prev + 1) {
		r->prev = f;
		return;
	}
	if (r->have)
		ranges_emit(r);
	r->start = r->prev = f;
	r->have = 1;
}

static const char *ranges_end(struct ranges *r)
{
	if (r->have && !r->full)
		ranges_emit(r);
	if (!r->have)
		snprintf(r->buf, r->len, "none");
	return r->buf;
}

static int ranges_add_cb(uint32_t f, void *arg)
{
	struct ranges *r = arg;
	ranges_add(r, f);
	return r->full;
}

/* One of our own posting lists as ranges. */
static const char *plist_ranges(const struct plist *pl, char *buf, size_t len)
{
	struct ranges r;
	ranges_init(&r, buf, len);
	archive__plist_decode(pl->buf, pl->len, ranges_add_cb, &r);
	return ranges_end(&r);
}

static int frameset_add(uint32_t frame, void *arg)
{
	struct frameset *s = arg;
	if (s->n == FRAMESET_MAX)
		return 1;
	if (qq_grow((void **)&s->f, &s->cap, s->n + 1, sizeof(*s->f)) != 0)
		return -ENOMEM;
	s->f[s->n++] = frame;
	return 0;
}

/* ---- the snapshot --------------------------------------------------------------------- */

/* The snapshot's next_segment and next_run (absent: 1, nothing allocated yet). */
static int read_meta(struct verify *v)
{
	const char *keys[2] = {"next_segment", "next_run"};
	size_t sizes[2] = {8, 4};
	uint64_t *out[2] = {&v->next_segment, &v->next_run};
	for (int i = 0; i < 2; i++) {
		MDB_val k = {.mv_size = strlen(keys[i]), .mv_data = (void *)keys[i]}, val;
		int rc = mdb_get(v->txn, v->a->db_meta, &k, &val);
		*out[i] = 1;
		if (rc && rc != MDB_NOTFOUND)
			return archive__lmdb_fail(rc, "read meta");
		if (rc == 0 && val.mv_size != sizes[i])
			problem(v, "index: meta %s has %zu bytes (%zu expected)", keys[i],
			        val.mv_size, sizes[i]);
		else if (rc == 0)
			*out[i] = i == 0 ? le64_get(val.mv_data) : le32_get(val.mv_data);
	}
	return 0;
}

/* 1 if a fresh snapshot still has segment id (0: deleted since ours). */
static int segment_still_indexed(struct verify *v, uint64_t id)
{
	MDB_txn *txn;
	uint8_t kb[SEG_KEY_LEN];
	be64_put(kb, id);
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
	if (mdb_txn_begin(v->a->env, NULL, MDB_RDONLY, &txn) != 0)
		return 1;
	int rc = mdb_get(txn, v->a->db_segments, &k, &val);
	mdb_txn_abort(txn);
	return rc != MDB_NOTFOUND;
}

/* ---- the segment record and its file ---------------------------------------------------- */

/* Decodes and checks the record; 0 when it cannot be used (reported). */
static int seg_record(struct verify *v, uint64_t id, const MDB_val *val,
                      struct archive_segment_info *s)
{
	if (archive__seg_decode(id, val, s) != 0) { /* the readers' own checks */
		problem(v, "%s", archive_errmsg());
		return 0;
	}
	if (id == 0 || id >= v->next_segment)
		problem(v, "segment %" PRIu64 ": id not below the index's next_segment %" PRIu64,
		        id, v->next_segment);
	if (s->run >= v->next_run) /* the run would be given again */
		problem(v, "segment %" PRIu64 ": run %u not below the index's next_run %" PRIu64,
		        id, s->run, v->next_run);
	return 1;
}

/* Opens the segment's file under its state's name or the other one: 1, 0 (reported), <0. */
static int seg_open(struct verify *v, struct seg_check *sc)
{
	uint64_t id = sc->s.id;
	int open_state = sc->s.state == ARCHIVE_SEG_OPEN;
	char alt[4096];
	archive__seg_path(v->a, id, sc->s.state, sc->path, sizeof(sc->path));
	int r = archive__scan_open(&sc->scan, sc->path);
	if (r == -ENOENT) {
		archive__seg_path(v->a, id, open_state ? ARCHIVE_SEG_CLOSED : ARCHIVE_SEG_OPEN, alt,
		                  sizeof(alt));
		r = archive__scan_open(&sc->scan, alt);
		if (r == 0 && !open_state) /* a rename goes the other way only */
			problem(v,
			        "segment %" PRIu64 ": closed, but its file has the open name (%s)",
			        id, alt);
		if (r == 0)
			snprintf(sc->path, sizeof(sc->path), "%s", alt);
	}
	sc->opened = 1;
	if (r == 0) {
		sc->pos =
		    (struct seg_ahead_pos){sc->scan.off, sc->scan.seektable, sc->scan.linktype};
		r = archive__scan_ahead_start(&sc->scan, v->read_ahead, &sc->ahead);
		return r == 0 ? 1 : r;
	}
	if (r == -ENOMEM)
		return r;
	if (r != -ENOENT)
		problem(v, "segment %" PRIu64 ": %s", id, archive_errmsg());
	else if (segment_still_indexed(v, id))
		problem(v, "segment %" PRIu64 ": file missing (%s)", id, sc->path);
	return 0;
}

/* ---- frames ------------------------------------------------------------------------------- */

/* The index's record of a frame: 1 and *out, 0 (reported), or an LMDB error; *out zeroed first. */
static int frame_record(struct verify *v, uint64_t seg, uint32_t frame,
                        struct archive_frame_info *out)
{
	memset(out, 0, sizeof(*out)); /* archive__lmdb_fail() < 0: scan-build cannot see it */
	uint8_t kb[FRAME_KEY_LEN];
	be64_put(kb, seg);
	be32_put(kb + 8, frame);
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
	int rc = mdb_get(v->txn, v->a->db_frames, &k, &val);
	if (rc == MDB_NOTFOUND) {
		problem(v, "segment %" PRIu64 " frame %u: no frame record in the index", seg,
		        frame);
		return 0;
	}
	if (rc)
		return archive__lmdb_fail(rc, "read frame");
	if (archive__frame_decode(&k, &val, out) != 0) { /* the readers' own checks */
		problem(v, "segment %" PRIu64 " frame %u: %s", seg, frame, archive_errmsg());
		return 0;
	}
	return 1;
}

static void frame_diff(struct verify *v, uint64_t seg, uint32_t frame, const char *what,
                       uint64_t idx, uint64_t real)
{
	if (idx != real)
		problem(v,
		        "segment %" PRIu64 " frame %u: index says %s %" PRIu64
		        ", the frame's is %" PRIu64,
		        seg, frame, what, idx, real);
}

static void frame_compare(struct verify *v, const struct seg_scanned *f, uint32_t flags,
                          const struct archive_frame_info *x)
{
	uint64_t seg = x->seg;
	if (x->packets != f->packets)
		problem(v,
		        "segment %" PRIu64 " frame %u: index says %u packets, the frame holds %u",
		        seg, f->frame, x->packets, f->packets);
	frame_diff(v, seg, f->frame, "offset", x->offset, f->offset);
	frame_diff(v, seg, f->frame, "compressed size", x->csize, f->csize);
	frame_diff(v, seg, f->frame, "decompressed size", x->usize, f->usize);
	frame_diff(v, seg, f->frame, "first timestamp", x->min_ns, f->min_ns);
	frame_diff(v, seg, f->frame, "last timestamp", x->max_ns, f->max_ns);
	frame_diff(v, seg, f->frame, "chunk", x->chunk, f->chunk);
	if (x->flags != flags)
		problem(v,
		        "segment %" PRIu64
		        " frame %u: index says flags 0x%x, its packets give 0x%x "
		        "(0x1: a packet the indexer could not parse)",
		        seg, f->frame, x->flags, flags);
}

/* Indexes one frame's packets as the writer does, and compares its record. */
static int frame_check(struct verify *v, struct seg_check *sc, const struct seg_scanned *f)
{
	struct archive_frame_info x;
	int have = frame_record(v, sc->s.id, f->frame, &x);
	if (have < 0)
		return have;
	uint32_t flags = 0;
	size_t pos = f->records_at;
	struct archive_record rec;
	while (archive__record_next(f->data, f->usize, &pos, &rec)) {
		sc->wire_bytes += rec.wirelen;
		struct archive_packet p = {.linktype = sc->pos.linktype,
		                           .ts_ns = rec.ts_ns,
		                           .caplen = rec.caplen,
		                           .wirelen = rec.wirelen,
		                           .data = rec.data};
		if (sc->indexed && archive__index_packet(&v->terms, &v->segterms, f->frame,
		                                         v->flows, &p, &flags) != 0)
			return archive__fail(-ENOMEM, "out of memory");
	}
	if (sc->indexed) {
		if (archive__segterms_add_frame(&v->segterms, &v->terms, f->frame) != 0)
			return archive__fail(-ENOMEM, "out of memory");
		archive__termset_reset(&v->terms);
	}
	sc->packets += f->packets;
	sc->record_bytes += f->usize;
	sc->file_bytes += f->csize;
	if (f->packets && f->min_ns < sc->min_ns)
		sc->min_ns = f->min_ns;
	if (f->packets && f->max_ns > sc->max_ns)
		sc->max_ns = f->max_ns;
	if (have)
		frame_compare(v, f, flags, &x);
	v->st->frames++;
	v->st->packets += f->packets;
	return 0;
}

/* Reads the indexed frames; stops at the first that cannot be read (reported). */
static int seg_frames(struct verify *v, struct seg_check *sc)
{
	char why[256];
	struct seg_scanned f;
	sc->min_ns = UINT64_MAX;
	for (uint32_t i = 0; i < sc->s.frames; i++) {
		int r = archive__scan_ahead_next(sc->ahead, &f, why, sizeof(why), &sc->pos);
		if (r == 1) {
			if ((r = frame_check(v, sc, &f)) != 0)
				return r;
			continue;
		}
		if (r != 0 && r != -1)
			return r;
		if (r == 0)
			snprintf(why, sizeof(why),
			         "missing: the file ends %sthere (the index has %u frames)",
			         sc->pos.seektable ? "with a seek table " : "", sc->s.frames);
		problem(v,
		        "segment %" PRIu64 " frame %u at byte %" PRIu64
		        " of %s: %s; the rest of the segment is not checked",
		        sc->s.id, i, sc->pos.off, sc->path, why);
		return 0;
	}
	sc->complete = 1;
	return 0;
}

/* After the indexed frames: a closed segment's seek table; an open one's newer frames. */
static int seg_tail(struct verify *v, struct seg_check *sc)
{
	char why[256];
	struct seg_scanned f;
	uint64_t at = sc->pos.off, extra = 0;
	int r;
	while ((r = archive__scan_ahead_next(sc->ahead, &f, why, sizeof(why), &sc->pos)) == 1)
		extra++;
	if (r != 0 && r != -1)
		return r;
	if (sc->s.state == ARCHIVE_SEG_OPEN) { /* frames not yet indexed; a torn tail */
		v->st->unindexed_frames += extra;
		return 0;
	}
	if (extra)
		problem(v,
		        "segment %" PRIu64 ": %" PRIu64
		        " whole frames after its %u indexed ones (byte "
		        "%" PRIu64 "), but it is closed",
		        sc->s.id, extra, sc->s.frames, at);
	if (r == -1)
		problem(v, "segment %" PRIu64 ": closed, but at byte %" PRIu64 " of %s: %s",
		        sc->s.id, sc->pos.off, sc->path, why);
	else if (!sc->pos.seektable)
		problem(v, "segment %" PRIu64 ": closed, but %s ends without a seek table",
		        sc->s.id, sc->path);
	return 0;
}

/* Frame records of the segment past its frame count (or with malformed keys). */
static int seg_frame_keys(struct verify *v, const struct seg_check *sc)
{
	MDB_cursor *c;
	uint8_t kb[FRAME_KEY_LEN] = {0};
	be64_put(kb, sc->s.id);
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
	int rc = mdb_cursor_open(v->txn, v->a->db_frames, &c);
	if (rc)
		return archive__lmdb_fail(rc, "read frames");
	uint64_t beyond = 0;
	uint32_t first = 0;
	for (rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		if (k.mv_size < 8 || be64_get(k.mv_data) != sc->s.id)
			break;
		if (k.mv_size != FRAME_KEY_LEN) {
			problem(v, "segment %" PRIu64 ": a frame key of %zu bytes", sc->s.id,
			        k.mv_size);
			continue;
		}
		uint32_t fr = be32_get((const uint8_t *)k.mv_data + 8);
		if (fr >= sc->s.frames && beyond++ == 0)
			first = fr;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return archive__lmdb_fail(rc, "read frames");
	if (beyond)
		problem(v,
		        "segment %" PRIu64 ": %" PRIu64
		        " frame records beyond its %u frames (frame %u"
		        "%s)",
		        sc->s.id, beyond, sc->s.frames, first, beyond > 1 ? " and after" : "");
	return 0;
}

/* The segment record's totals against its frames. */
static void seg_totals(struct verify *v, const struct seg_check *sc)
{
	const struct archive_segment_info *s = &sc->s;
	uint64_t min = sc->packets ? sc->min_ns : 0, max = sc->packets ? sc->max_ns : 0;
	const struct {
		const char *what;
		uint64_t idx, real;
	} t[] = {
	    {"packets", s->packets, sc->packets},
	    {"wire bytes", s->wire_bytes, sc->wire_bytes},
	    {"pcap bytes", s->record_bytes, sc->record_bytes},
	    {"compressed bytes", s->file_bytes, sc->file_bytes},
	    {"first timestamp", s->min_ns, min},
	    {"last timestamp", s->max_ns, max},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].idx != t[i].real)
			problem(v,
			        "segment %" PRIu64 ": index says %s %" PRIu64
			        ", its frames hold %" PRIu64,
			        s->id, t[i].what, t[i].idx, t[i].real);
	if (s->frames == 0)
		return;
	if (sc->scan.linktype != s->linktype || sc->scan.snaplen != s->snaplen)
		problem(v,
		        "segment %" PRIu64 ": index says link type %d snaplen %u, the file's pcap "
		        "header %d and %u",
		        s->id, s->linktype, s->snaplen, sc->scan.linktype, sc->scan.snaplen);
	if (sc->scan.run != s->run)
		problem(v, "segment %" PRIu64 ": index says run %u, the frames' tags %u", s->id,
		        s->run, sc->scan.run);
}

/* ---- terms -------------------------------------------------------------------------------- */

/* Remembers what the segment's partition must hold for it (counted by part_check). */
static void part_add(struct verify *v, uint64_t seg, uint64_t want, uint64_t found)
{
	if (v->nparts < TERMS_PART_SEGS) /* always: ids are unique */
		v->pseg[v->nparts++] = (struct part_seg){.seg = seg, .want = want, .found = found};
}

/* Says how the index's posting list of a term differs from the frames that hold it. */
static int term_diff(struct verify *v, uint64_t seg, const struct term_entry *e, const MDB_val *val,
                     const struct plist *pl)
{
	char ts[80], extra[256], missing[256];
	struct frameset *x = &v->fs_index, *w = &v->fs_frames;
	x->n = w->n = 0;
	int r = archive__plist_decode(val->mv_data, val->mv_size, frameset_add, x);
	if (r == -ENOMEM || archive__plist_decode(pl->buf, pl->len, frameset_add, w) == -ENOMEM)
		return archive__fail(-ENOMEM, "out of memory");
	term_str(e, ts, sizeof(ts));
	if (r < 0) {
		problem(v,
		        "segment %" PRIu64
		        ": %s: the index's posting list is malformed (%zu bytes); "
		        "the frames holding it are %s",
		        seg, ts, val->mv_size, plist_ranges(pl, missing, sizeof(missing)));
		return 0;
	}
	struct ranges re, rm;
	ranges_init(&re, extra, sizeof(extra));
	ranges_init(&rm, missing, sizeof(missing));
	for (size_t i = 0, j = 0; i < x->n || j < w->n;) {
		if (j == w->n || (i < x->n && x->f[i] < w->f[j]))
			ranges_add(&re, x->f[i++]);
		else if (i == x->n || w->f[j] < x->f[i])
			ranges_add(&rm, w->f[j++]);
		else
			i++, j++;
	}
	if (!re.have && !rm.have && r == 0) {
		problem(v,
		        "segment %" PRIu64 ": %s: the index's posting list names the right frames, "
		        "not in the canonical encoding (%zu bytes, %u expected)",
		        seg, ts, val->mv_size, pl->len);
		return 0;
	}
	char a[300] = "", b[300] = "";
	if (re.have || r > 0) /* r > 0: cut at FRAMESET_MAX, what follows is extra too */
		snprintf(a, sizeof(a), "the index lists it in frames %s%s, which do not hold it",
		         re.have ? ranges_end(&re) : "", r > 0 ? (re.have ? ",..." : "...") : "");
	if (rm.have)
		snprintf(b, sizeof(b), "the index lacks frames %s, which hold it", ranges_end(&rm));
	problem(v, "segment %" PRIu64 ": %s: %s%s%s", seg, ts, a, a[0] && b[0] ? "; " : "", b);
	return 0;
}

/* Every posting list of the segment's frames must be the index's value, byte for byte. */
static int seg_terms(struct verify *v, const struct seg_check *sc)
{
	const struct segterms *st = &v->segterms;
	uint8_t kb[TERMS_KEY_MAX];
	char ts[80], want[256];
	uint64_t found = 0;
	be32_put(kb, archive__terms_part(sc->s.id));
	for (uint32_t i = 0; i < st->set.n; i++) {
		const struct term_entry *e = archive__byteset_at(&st->set, i);
		const struct plist *pl = &st->lists[i];
		if (e->len > TERMS_TERM_MAXLEN)
			continue; /* not a `terms` term (cannot happen) */
		kb[4] = e->type;
		memcpy(kb + 5, e->b, e->len);
		be64_put(kb + 5 + e->len, sc->s.id);
		MDB_val k = {.mv_size = 5u + e->len + 8u, .mv_data = kb}, val;
		int rc = mdb_get(v->txn, v->a->db_terms, &k, &val), r = 0;
		if (rc && rc != MDB_NOTFOUND)
			return archive__lmdb_fail(rc, "read terms");
		if (rc == MDB_NOTFOUND) {
			problem(v, "segment %" PRIu64 ": %s (frames %s) is missing from the index",
			        sc->s.id, term_str(e, ts, sizeof(ts)),
			        plist_ranges(pl, want, sizeof(want)));
			continue;
		}
		found++;
		if ((val.mv_size != pl->len || memcmp(val.mv_data, pl->buf, pl->len) != 0) &&
		    (r = term_diff(v, sc->s.id, e, &val, pl)) != 0)
			return r;
	}
	part_add(v, sc->s.id, st->set.n, found);
	return 0;
}

/* Counts the partition's keys per segment: entries no frame gives are problems. */
static int part_check(struct verify *v)
{
	MDB_cursor *c;
	uint8_t kb[4];
	be32_put(kb, v->part);
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
	int rc = mdb_cursor_open(v->txn, v->a->db_terms, &c);
	if (rc)
		return archive__lmdb_fail(rc, "read terms");
	for (rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;
		if (k.mv_size < 4 || be32_get(p) != v->part)
			break;
		size_t tl = k.mv_size > 4 ? archive_term_len((enum archive_term_type)p[4]) : 0;
		if (tl == 0 || tl > TERMS_TERM_MAXLEN || k.mv_size != 5 + tl + 8) {
			problem(v, "index: terms partition %u: a malformed key (%zu bytes)",
			        v->part, k.mv_size);
			continue;
		}
		uint64_t seg = be64_get(p + 5 + tl);
		if (archive__terms_part(seg) != v->part) {
			problem(v, "index: terms partition %u: an entry of segment %" PRIu64,
			        v->part, seg);
			continue;
		}
		for (uint32_t i = 0; i < v->nparts; i++)
			if (v->pseg[i].seg == seg)
				v->pseg[i].count++;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return archive__lmdb_fail(rc, "read terms");
	for (uint32_t i = 0; i < v->nparts; i++) {
		const struct part_seg *ps = &v->pseg[i];
		if (ps->count > ps->found)
			problem(v,
			        "segment %" PRIu64 ": %" PRIu64
			        " term entries in the index that its "
			        "frames do not give (%" PRIu64 " entries, %" PRIu64
			        " terms in the frames)",
			        ps->seg, ps->count - ps->found, ps->count, ps->want);
	}
	v->nparts = 0;
	return 0;
}

/* ---- flows -------------------------------------------------------------------------------- */

/* Walks the segment's flow records: fn(v, key, value) for each; returns its error or 0. */
static int flow_walk(struct verify *v, uint64_t seg,
                     int (*fn)(struct verify *v, const MDB_val *k, const MDB_val *val, void *arg),
                     void *arg)
{
	MDB_cursor *c;
	uint8_t kb[SEG_KEY_LEN];
	be64_put(kb, seg); /* sorts before every key of the segment, whatever its length */
	MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
	int rc = mdb_cursor_open(v->txn, v->a->db_flows, &c), r = 0;
	if (rc)
		return archive__lmdb_fail(rc, "read flows");
	for (rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE); rc == 0 && r == 0;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		if (k.mv_size < 8 || be64_get(k.mv_data) != seg)
			break;
		r = fn(v, &k, &val, arg);
	}
	mdb_cursor_close(c);
	if (r == 0 && rc && rc != MDB_NOTFOUND)
		r = archive__lmdb_fail(rc, "read flows");
	return r;
}

struct flow_counts {
	uint64_t records, v2, ip4, ip4_wide; /* IPv4 flows' keys: format 4's, format 3's */
};

static int flow_count(struct verify *v, const MDB_val *k, const MDB_val *val, void *arg)
{
	struct flow_counts *n = arg;
	(void)v, (void)val;
	n->records++;
	n->v2 += k->mv_size == FLOW_KEY_LEN_V2;
	n->ip4 += k->mv_size == FLOW_KEY_LEN_IP4;
	if (k->mv_size == FLOW_KEY_LEN) {
		struct ft_flow_key key;
		archive__flow_key_get(k, &key);
		n->ip4_wide += ft_addr_is_v4(key.a) && ft_addr_is_v4(key.b);
	}
	return 0;
}

/* A flow table for the segment, empty, big enough for what its index says. */
static int flows_prepare(struct verify *v, struct seg_check *sc)
{
	uint64_t n = sc->s.flows < FLOWS_TRUST ? sc->s.flows : FLOWS_TRUST;
	struct flow_counts cnt = {0};
	int r = flow_walk(v, sc->s.id, flow_count, &cnt);
	if (r)
		return r;
	sc->flow_keys_v2 = cnt.v2;
	if (cnt.v2 && cnt.v2 != cnt.records)
		problem(v,
		        "segment %" PRIu64 ": %" PRIu64 " of its %" PRIu64
		        " flow records are keyed by the outer VLAN only (format 2), the others by "
		        "both tags: one writer keys a segment one way",
		        sc->s.id, cnt.v2, cnt.records);
	if (cnt.ip4 && (cnt.ip4_wide || cnt.v2))
		problem(v,
		        "segment %" PRIu64 ": %" PRIu64 " IPv4 flow records have format 4's keys "
		        "(%u bytes), %" PRIu64 " older keys: one writer keys a segment one way",
		        sc->s.id, cnt.ip4, FLOW_KEY_LEN_IP4, cnt.ip4_wide + cnt.v2);
	uint64_t records = cnt.records;
	n = records > n ? records : n; /* records exist; a count in a record may be garbage */
	size_t cap = n > (FLOWS_MAX - FLOWS_MIN) / 2 ? FLOWS_MAX : (size_t)(2 * n + FLOWS_MIN);
	if (v->flows && (cap > v->flows_cap || v->flows_cap >= 16 * cap)) {
		ft_table_destroy(v->flows);
		v->flows = NULL;
	}
	if (v->flows) {
		ft_table_clear(v->flows);
	} else {
		if (ft_table_create(cap, sizeof(struct archive__flow_state), NULL, &v->flows) != 0)
			return archive__fail(-ENOMEM, "out of memory (a table of %zu flows)", cap);
		v->flows_cap = cap;
	}
	struct ft_table_stats ts;
	ft_table_stats(v->flows, &ts);
	v->evicted = ts.evicted;
	return 0;
}

struct flow_cmp {
	struct verify *v;
	const struct seg_check *sc;
	uint64_t records;
};

static void flow_compare(struct verify *v, uint64_t seg, const char *name,
                         const struct archive_flow_info *x, const struct ft_flow *f)
{
	static const char *dir[2] = {"a->b", "b->a"};
	if (x->first_ns != f->first_ns || x->last_ns != f->last_ns)
		problem(v,
		        "segment %" PRIu64 ": flow %s: index says packets from %" PRIu64
		        " to %" PRIu64 " ns, the segment's from %" PRIu64 " to %" PRIu64,
		        seg, name, x->first_ns, x->last_ns, f->first_ns, f->last_ns);
	for (int d = 0; d < 2; d++) {
		if (x->packets[d] != f->packets[d] || x->bytes[d] != f->bytes[d])
			problem(v,
			        "segment %" PRIu64 ": flow %s: index says %" PRIu64
			        " packets %" PRIu64 " bytes %s, the segment holds %" PRIu64
			        " packets %" PRIu64 " bytes",
			        seg, name, x->packets[d], x->bytes[d], dir[d], f->packets[d],
			        f->bytes[d]);
		if (x->tcp_flags[d] != f->tcp_flags[d])
			problem(v,
			        "segment %" PRIu64 ": flow %s: index says TCP flags 0x%02x %s, the "
			        "segment's packets 0x%02x",
			        seg, name, x->tcp_flags[d], dir[d], f->tcp_flags[d]);
	}
}

/* One flow record against the flow the packets gave (removed from the table once seen). */
static int flow_check(struct verify *v, const MDB_val *k, const MDB_val *val, void *arg)
{
	struct flow_cmp *fc = arg;
	uint64_t seg = fc->sc->s.id;
	char name[FT_KEYSTRLEN];
	fc->records++;
	v->st->flows++;
	if (!archive__flow_key_len_ok(k->mv_size)) {
		problem(v, "segment %" PRIu64 ": a flow key of %zu bytes", seg, k->mv_size);
		return 0;
	}
	struct ft_flow_key key;
	struct archive_flow_info x;
	archive__flow_key_get(k, &key);
	ft_flow_key_format(&key, name, sizeof(name));
	int bad = archive__flow_decode(k, val, &x) != 0;
	if (bad)
		problem(v, "segment %" PRIu64 ": flow %s: a malformed record (%zu bytes)", seg,
		        name, val->mv_size);
	if (!fc->sc->indexed) {
		problem(v, "segment %" PRIu64 ": not indexed, but it has flow %s", seg, name);
		return 0;
	}
	int is_new;
	struct ft_flow *f = ft_table_lookup(v->flows, &key, ft_flow_key_hash(&key), &is_new);
	if (is_new)
		problem(v, "segment %" PRIu64 ": flow %s is in the index, not in the segment", seg,
		        name);
	else if (!bad)
		flow_compare(v, seg, name, &x, f);
	ft_table_remove(v->flows, f); /* what is left is missing from the index */
	return 0;
}

static void flow_missing(struct ft_flow *f, void *arg)
{
	const struct flow_cmp *fc = arg;
	char name[FT_KEYSTRLEN];
	problem(fc->v,
	        "segment %" PRIu64 ": flow %s (%" PRIu64 " packets) is missing from the index",
	        fc->sc->s.id, ft_flow_key_format(&f->key, name, sizeof(name)),
	        f->packets[0] + f->packets[1]);
}

/* ---- format 2's flow keys ---- */

struct fold {
	struct ft_table *t;
	struct ft_flow *f; /* copies of the flows with an inner VLAN id, taken out of t */
	size_t n, cap, size;
	int err;
};

static void fold_take(struct ft_flow *f, void *arg)
{
	struct fold *c = arg;
	if (c->err || !f->key.vlan_inner)
		return;
	if (qq_grow((void **)&c->f, &c->cap, c->n + 1, c->size) != 0) {
		c->err = -ENOMEM;
		return;
	}
	memcpy((uint8_t *)c->f + c->n++ * c->size, f, c->size);
	ft_table_remove(c->t, f);
}

/*
 * A segment written by format 2 keyed its flows by the outer VLAN id only:
 * the flows its packets give (both tags) are merged as that writer merged
 * them, so that its records are checked against what it would have written.
 */
static int fold_inner_vlan(struct verify *v)
{
	struct fold c = {.t = v->flows,
	                 .size = sizeof(struct ft_flow) + sizeof(struct archive__flow_state)};
	ft_table_foreach(v->flows, fold_take, &c);
	for (size_t i = 0; i < c.n && !c.err; i++) {
		const struct ft_flow *g = (const void *)((uint8_t *)c.f + i * c.size);
		struct ft_flow_key key = g->key;
		int is_new;
		key.vlan_inner = 0;
		struct ft_flow *f =
		    ft_table_lookup(v->flows, &key, ft_flow_key_hash(&key), &is_new);
		if (!f) {
			c.err = -ENOMEM;
			break;
		}
		if (is_new || g->first_ns < f->first_ns)
			f->first_ns = g->first_ns;
		if (g->last_ns > f->last_ns)
			f->last_ns = g->last_ns;
		for (int d = 0; d < 2; d++) {
			f->packets[d] += g->packets[d];
			f->bytes[d] += g->bytes[d];
			f->tcp_flags[d] |= g->tcp_flags[d];
		}
	}
	free(c.f);
	return c.err ? archive__fail(c.err, "out of memory") : 0;
}

/* The segment's flow records must be exactly the flows of its packets. */
static int seg_flows(struct verify *v, const struct seg_check *sc)
{
	struct ft_table_stats ts;
	if (sc->indexed && sc->flow_keys_v2) {
		int r = fold_inner_vlan(v);
		if (r)
			return r;
	}
	if (sc->indexed) {
		ft_table_stats(v->flows, &ts);
		if (ts.evicted != v->evicted || ts.flows >= v->flows_cap) {
			problem(v, "segment %" PRIu64 ": too many flows to check (more than %zu)",
			        sc->s.id, v->flows_cap - 1);
			return 0;
		}
	}
	struct flow_cmp fc = {.v = v, .sc = sc};
	int r = flow_walk(v, sc->s.id, flow_check, &fc);
	if (r)
		return r;
	if (sc->indexed)
		ft_table_foreach(v->flows, flow_missing, &fc);
	if (fc.records != sc->s.flows)
		problem(v, "segment %" PRIu64 ": record says %u flows, the index holds %" PRIu64,
		        sc->s.id, sc->s.flows, fc.records);
	return 0;
}

/* ---- one segment ------------------------------------------------------------------------- */

static int seg_content(struct verify *v, struct seg_check *sc)
{
	int r = 0;
	if (sc->indexed)
		r = flows_prepare(v, sc);
	if (r == 0)
		r = seg_frames(v, sc);
	if (r == 0 && sc->complete)
		r = seg_tail(v, sc);
	archive__scan_ahead_stop(sc->ahead); /* the scan is at its end, or not read further */
	sc->ahead = NULL;
	if (r == 0)
		r = seg_frame_keys(v, sc);
	if (r || !sc->complete)
		return r;
	seg_totals(v, sc);
	if (sc->indexed)
		r = seg_terms(v, sc);
	else
		part_add(v, sc->s.id, 0, 0);
	if (r == 0)
		r = seg_flows(v, sc);
	return r;
}

static int verify_segment(struct verify *v, uint64_t id, const MDB_val *val)
{
	struct seg_check *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return archive__fail(-ENOMEM, "out of memory");
	int r = 0;
	if (seg_record(v, id, val, &sc->s)) {
		v->st->segments++;
		sc->indexed = !(sc->s.flags & ARCHIVE_SEG_UNINDEXED);
		r = seg_open(v, sc);
		r = r == 1 ? seg_content(v, sc) : r;
	}
	archive__scan_ahead_stop(sc->ahead);
	if (sc->opened)
		archive__scan_close(&sc->scan);
	archive__segterms_reset(&v->segterms);
	archive__termset_reset(&v->terms);
	free(sc);
	return r;
}

/* Every segment record in id order; each partition of `terms` counted after its segments. */
static int verify_segments(struct verify *v)
{
	MDB_cursor *c;
	MDB_val k, val;
	int rc = mdb_cursor_open(v->txn, v->a->db_segments, &c), r = 0;
	if (rc)
		return archive__lmdb_fail(rc, "walk segments");
	for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0 && r == 0;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		if (k.mv_size != SEG_KEY_LEN) {
			problem(v, "index: a segment key of %zu bytes (%u expected)", k.mv_size,
			        SEG_KEY_LEN);
			continue;
		}
		uint64_t id = be64_get(k.mv_data);
		if (v->nparts && archive__terms_part(id) != v->part)
			r = part_check(v);
		v->part = archive__terms_part(id);
		if (r == 0)
			r = verify_segment(v, id, &val);
	}
	mdb_cursor_close(c);
	if (r == 0 && rc && rc != MDB_NOTFOUND)
		r = archive__lmdb_fail(rc, "walk segments");
	if (r == 0 && v->nparts)
		r = part_check(v);
	return r;
}

/*
 * Records of `frames` or `flows` whose segment has no record (a writer adds a
 * segment's record first and removes it last).  One seek per segment.
 */
static int verify_orphans(struct verify *v, MDB_dbi dbi, const char *what)
{
	MDB_cursor *c;
	MDB_val k, val;
	uint8_t kb[SEG_KEY_LEN];
	int rc = mdb_cursor_open(v->txn, dbi, &c);
	if (rc)
		return archive__lmdb_fail(rc, "walk the index");
	rc = mdb_cursor_get(c, &k, &val, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size < SEG_KEY_LEN) {
			problem(v, "index: a %s key of %zu bytes", what, k.mv_size);
			rc = mdb_cursor_get(c, &k, &val, MDB_NEXT);
			continue;
		}
		uint64_t seg = be64_get(k.mv_data), n = 0;
		be64_put(kb, seg);
		MDB_val sk = {.mv_size = sizeof(kb), .mv_data = kb}, sv;
		if ((rc = mdb_get(v->txn, v->a->db_segments, &sk, &sv)) == 0) {
			if (seg == UINT64_MAX)
				break;
			be64_put(kb, seg + 1); /* past this segment's records */
			k = (MDB_val){.mv_size = sizeof(kb), .mv_data = kb};
			rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE);
			continue;
		}
		if (rc != MDB_NOTFOUND)
			break;
		do {
			n++;
			rc = mdb_cursor_get(c, &k, &val, MDB_NEXT);
		} while (rc == 0 && k.mv_size >= SEG_KEY_LEN && be64_get(k.mv_data) == seg);
		problem(v,
		        "index: %" PRIu64 " %s records of segment %" PRIu64 ", which has no record",
		        n, what, seg);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : archive__lmdb_fail(rc, "walk the index");
}

/* ---- files the index does not know ---------------------------------------------------------- */

struct seg_file {
	uint64_t id;
	int open;
	char name[32];
};

/* "<12 digits>.pcap.zst" or "<12 digits>.pcap.zst.open": 1 and *f. */
static int seg_name_parse(const char *name, struct seg_file *f)
{
	if (!archive__seg_name_ok(name))
		return 0;
	f->id = strtoull(name, NULL, 10);
	f->open = name[21] != '\0';
	snprintf(f->name, sizeof(f->name), "%.26s", name); /* 12 + 14 at most */
	return 1;
}

static int seg_file_cmp(const void *x, const void *y)
{
	const struct seg_file *a = x, *b = y;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return a->open - b->open;
}

/* The segment files in DIR/segments, sorted; *n of them (malloc()ed array). */
static int list_files(struct verify *v, const char *dir, struct seg_file **out, size_t *n)
{
	DIR *d = opendir(dir);
	*out = NULL;
	*n = 0;
	if (!d) {
		problem(v, "%s: %s", dir, strerror(errno));
		return 0;
	}
	size_t cap = 0;
	struct dirent *e;
	struct seg_file f;
	while ((e = readdir(d))) {
		if (!seg_name_parse(e->d_name, &f))
			continue;
		int r = archive__grow((void **)out, &cap, *n + 1, sizeof(**out));
		if (r) {
			closedir(d);
			return r;
		}
		(*out)[(*n)++] = f;
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), seg_file_cmp);
	return 0;
}

/* 1 if both names of segment id exist now (closed name first: renames go that way). */
static int both_names(const struct verify *v, uint64_t id)
{
	char path[4096];
	struct stat st;
	if (stat(archive__seg_path(v->a, id, ARCHIVE_SEG_CLOSED, path, sizeof(path)), &st) != 0)
		return 0;
	return stat(archive__seg_path(v->a, id, ARCHIVE_SEG_OPEN, path, sizeof(path)), &st) == 0;
}

/*
 * 1 if the file is still there: retention commits the removal of a segment's
 * entries, then deletes its file (a file with id at or past the snapshot's
 * next_segment, while a writer runs, is one created since the snapshot).
 */
static int file_stat(const char *dir, const struct seg_file *f, struct stat *st)
{
	char path[4096 + sizeof(f->name) + 1];
	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	return stat(path, st);
}

static int still_there(const char *dir, const struct seg_file *f)
{
	struct stat st;
	return file_stat(dir, f, &st) == 0 || errno != ENOENT;
}

/* 1 if the file is there and empty (created by a recorder killed before it wrote). */
static int empty_file(const char *dir, const struct seg_file *f)
{
	struct stat st;
	return file_stat(dir, f, &st) == 0 && st.st_size == 0;
}

/*
 * A file the index does not know: rebuild indexes it, unless it holds not one
 * readable frame (emptied, or damaged from its start): then only the user can
 * decide, and the line says so instead of sending them to rebuild again.
 */
static void unindexed_file(struct verify *v, const char *dir, const struct seg_file *f)
{
	char path[4096 + sizeof(f->name) + 1], why[160];
	struct seg_scan sc;
	struct seg_scanned fr;
	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	int frames = 0;
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		problem(v, "%s is not a regular file, so no segment: move it out of segments/",
		        path);
		return;
	}
	if (archive__scan_open(&sc, path) == 0) {
		frames = archive__scan_next(&sc, &fr, why, sizeof(why)) == 1;
		archive__scan_close(&sc);
	}
	if (frames)
		problem(v, "file %s is not in the index (run flowscope index rebuild)", path);
	else
		problem(
		    v,
		    "file %s is not in the index and holds no readable frame (index rebuild "
		    "leaves it out): move it out of segments/ once you no longer need its bytes",
		    path);
}

static int verify_files(struct verify *v)
{
	char dir[4096];
	struct seg_file *files;
	size_t n;
	snprintf(dir, sizeof(dir), "%s/segments", v->a->dir);
	int r = list_files(v, dir, &files, &n), writer = archive__writer_active(v->a);
	for (size_t i = 0; r == 0 && i < n; i++) {
		uint8_t kb[SEG_KEY_LEN];
		be64_put(kb, files[i].id);
		MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb}, val;
		int rc = mdb_get(v->txn, v->a->db_segments, &k, &val);
		if (rc == 0) {
			if (files[i].open && i > 0 && files[i - 1].id == files[i].id &&
			    both_names(v, files[i].id))
				problem(v, "segment %" PRIu64 ": both %s and %s exist", files[i].id,
				        files[i - 1].name, files[i].name);
			continue;
		}
		if (rc != MDB_NOTFOUND)
			r = archive__lmdb_fail(rc, "read segments");
		else if (!writer && files[i].open && files[i].id >= v->next_segment &&
		         empty_file(dir, &files[i]))
			v->st->orphan_files++; /* created, then killed before its first commit */
		else if (!files[i].open &&
		         archive__dropped_contains(v->a, v->txn, files[i].id) == 1)
			v->st->dropped_files++; /* the index says it goes: a crash came first */
		else if (files[i].id >= v->next_segment &&
		         (writer || segment_still_indexed(v, files[i].id)))
			continue; /* created after the snapshot (indexed since, or being written) */
		else if (still_there(dir, &files[i]))
			unindexed_file(v, dir, &files[i]);
	}
	free(files);
	return r;
}

/* ---- entry point --------------------------------------------------------------------------- */

/* 1 if a rebuild killed before its end left its new index (no writer: none is running). */
static int stale_rebuild(const struct archive *a)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/" ARCHIVE__REBUILD_SUB, a->dir);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && !archive__writer_active(a);
}

int archive_verify(struct archive *a, unsigned workers, archive_log_fn log, void *arg,
                   struct archive_verify_stats *st)
{
	struct verify *v = calloc(1, sizeof(*v));
	memset(st, 0, sizeof(*st));
	if (!v)
		return archive__fail(-ENOMEM, "out of memory");
	*v = (struct verify){.a = a, .log = log, .arg = arg, .st = st};
	v->read_ahead = workers > 1 || (workers == 0 && sysconf(_SC_NPROCESSORS_ONLN) > 1);
	int r = 0, rc = 0;
	if (archive__termset_init(&v->terms) != 0) { /* it frees itself */
		free(v);
		return archive__fail(-ENOMEM, "out of memory");
	}
	if (archive__segterms_init(&v->segterms) != 0) { /* it frees itself */
		archive__termset_free(&v->terms);
		free(v);
		return archive__fail(-ENOMEM, "out of memory");
	}
	if ((rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &v->txn)) != 0)
		r = archive__lmdb_fail(rc, "begin read");
	if (r == 0)
		r = read_meta(v);
	if (r == 0)
		r = verify_segments(v);
	if (r == 0)
		r = verify_orphans(v, a->db_frames, "frame");
	if (r == 0)
		r = verify_orphans(v, a->db_flows, "flow");
	if (r == 0)
		r = verify_files(v);
	if (r == 0)
		st->stale_rebuild = stale_rebuild(a);
	if (v->txn)
		mdb_txn_abort(v->txn);
	archive__termset_free(&v->terms);
	archive__segterms_free(&v->segterms);
	ft_table_destroy(v->flows);
	free(v->fs_index.f);
	free(v->fs_frames.f);
	free(v);
	return r;
}
