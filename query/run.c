/*
 * Running a query: plan -> candidate frames per segment -> read, filter
 * exactly, write (or hand each packet to the caller's on_packet).
 *
 * Two passes.  The first walks the index only: it lists the segments of the
 * time range, evaluates the plan once over them (each term one range read per
 * index partition, giving seg|frame lists that AND and OR merge), so that
 * each segment gets a sorted list of candidate frames (frames flagged
 * UNINDEXED are always candidates, and so is every frame of a segment whose
 * link type the indexer cannot parse), then drops frames whose time range
 * misses the query's.  That gives the exact amount of data to read
 * before reading any (for --explain and for the "not indexable" notice).  The
 * second pass decompresses those frames and runs every record through
 * libpcap's BPF (pcap_offline_filter) and the per-packet time check; the
 * index only ever narrows what is read, never what matches.
 *
 * The second pass runs on all cores: each stream submits its next frames to
 * a read-ahead pool (readahead.c), whose workers decompress and match them
 * while this thread merges and writes the frames before them; the merge
 * takes each frame's matching records in the same order as when it read
 * them itself (query_options.workers 1), so the output bytes are the same.
 * pcap records go out as runs of a frame's bytes, one fwrite each.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/query_pvt.h"
#include "qq/qq.h"

#define MAX_LINKTYPES 16

struct seg_cand {
	struct archive_segment_info seg;
	struct archive_frame_info *frames; /* candidate frames, in order */
	size_t n;
	struct bpf_program *prog; /* the filter for its link type */
	int dead;                 /* its file is gone or cut short: frames left out */
	uint32_t holes, hole;     /* frames without a record (index rebuild stepped over
	                             their damage) that may hold matches; the first */
};

struct bpf_cache {
	int linktype[MAX_LINKTYPES];
	struct bpf_program prog[MAX_LINKTYPES];
	int ok[MAX_LINKTYPES]; /* 0: libpcap cannot compile the filter for it */
	size_t n;
};

struct run {
	struct archive *a;
	const struct query_options *opt;
	struct query_result *res;
	char *errbuf;
	struct archive_rtxn *txn;
	struct query_plan *plan;
	struct seg_cand *cands;
	size_t ncands, cands_cap;
	struct bpf_cache bpf;
	struct export x;
	int no_flow;                /* community_id names no flow: the answer is empty */
	struct query_readahead *ra; /* the read-ahead pool, NULL with one worker */
	size_t ahead;               /* frames a stream keeps submitted ahead (pool only) */
};

const char *query_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case QUERY_E_FILTER:
		return "invalid filter";
	case QUERY_E_LINKTYPES:
		return "matches span several link types";
	case QUERY_E_OUTPUT:
		return "cannot write the output";
	case QUERY_E_STENO:
		return "invalid Stenographer query";
	default:
		if (err <= ARCHIVE_E_BASE && err > ARCHIVE_E_LAST)
			return archive_strerror(err);
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown query error";
	}
}

static int fail(struct run *r, int err, const char *fmt, const char *a1, const char *a2)
{
	snprintf(r->errbuf, QUERY_ERRBUF_SIZE, fmt, a1, a2);
	return err;
}

/* ---- exact filter: one compiled program per link type ------------------------------------ */

static const char *filter_text(const struct query_options *opt)
{
	return opt->filter ? opt->filter : "";
}

/*
 * Compiles the filter for a link type (cached, failures too: a filter that
 * libpcap cannot compile for one link type, such as `icmp` for DLT 147, is
 * compiled once).  Returns the program or NULL + errbuf.
 */
static struct bpf_program *bpf_for(struct run *r, int linktype, uint32_t snaplen)
{
	for (size_t i = 0; i < r->bpf.n; i++)
		if (r->bpf.linktype[i] == linktype)
			return r->bpf.ok[i] ? &r->bpf.prog[i] : NULL;
	if (r->bpf.n == MAX_LINKTYPES) {
		fail(r, QUERY_E_LINKTYPES, "too many link types in the archive%s%s", "", "");
		return NULL;
	}
	size_t i = r->bpf.n++;
	r->bpf.linktype[i] = linktype;
	r->bpf.ok[i] = ft_bpf_compile(linktype, snaplen, filter_text(r->opt), &r->bpf.prog[i],
	                              r->errbuf, QUERY_ERRBUF_SIZE) == 0;
	return r->bpf.ok[i] ? &r->bpf.prog[i] : NULL;
}

static void bpf_free(struct bpf_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->ok[i])
			pcap_freecode(&c->prog[i]);
	c->n = 0;
}

/* ---- pass 1: candidates ---------------------------------------------------------------------- */

/* Candidate frames as seg << 32 | frame, sorted; all = 1 means every frame. */
struct flist {
	int all;
	uint64_t *f;
	size_t n;
};

static void flist_free(struct flist *l)
{
	free(l->f);
	l->f = NULL;
	l->n = 0;
}

/* out = a AND b (sorted unique lists); consumes a and b. */
static void flist_and(struct flist *a, struct flist *b, struct flist *out)
{
	if (a->all) {
		*out = *b;
		flist_free(a);
		return;
	}
	if (b->all) {
		*out = *a;
		flist_free(b);
		return;
	}
	size_t i = 0, j = 0, w = 0;
	while (i < a->n && j < b->n) {
		if (a->f[i] < b->f[j])
			i++;
		else if (a->f[i] > b->f[j])
			j++;
		else {
			a->f[w++] = a->f[i];
			i++;
			j++;
		}
	}
	a->n = w;
	*out = *a;
	flist_free(b);
}

/* out = a OR b; consumes a and b.  Returns 0 or -ENOMEM. */
static int flist_or(struct flist *a, struct flist *b, struct flist *out)
{
	if (a->all || b->all) {
		flist_free(a);
		flist_free(b);
		*out = (struct flist){.all = 1};
		return 0;
	}
	uint64_t *m = malloc((a->n + b->n + 1) * sizeof(*m));
	if (!m) {
		flist_free(a);
		flist_free(b);
		return -ENOMEM;
	}
	size_t i = 0, j = 0, w = 0;
	while (i < a->n || j < b->n) {
		uint64_t v;
		if (j >= b->n || (i < a->n && a->f[i] < b->f[j]))
			v = a->f[i++];
		else if (i >= a->n || b->f[j] < a->f[i])
			v = b->f[j++];
		else {
			v = a->f[i++];
			j++;
		}
		m[w++] = v;
	}
	flist_free(a);
	flist_free(b);
	*out = (struct flist){.f = m, .n = w};
	return 0;
}

/* Evaluates the plan over the segments seg_lo..seg_hi. */
static int plan_eval(struct run *r, const struct query_plan *p, uint64_t seg_lo, uint64_t seg_hi,
                     struct flist *out)
{
	struct flist a = {0}, b = {0};
	int e;
	*out = (struct flist){0};
	switch (p->op) {
	case QUERY_PLAN_ALL:
		out->all = 1;
		return 0;
	case QUERY_PLAN_NONE:
		return 0;
	case QUERY_PLAN_TERM:
		return archive_term_postings(r->txn, p->type, p->lo, p->hi, seg_lo, seg_hi, &out->f,
		                             &out->n);
	case QUERY_PLAN_AND:
	case QUERY_PLAN_OR:
		if ((e = plan_eval(r, p->left, seg_lo, seg_hi, &a)) ||
		    (e = plan_eval(r, p->right, seg_lo, seg_hi, &b))) {
			flist_free(&a);
			flist_free(&b);
			return e;
		}
		if (p->op == QUERY_PLAN_OR)
			return flist_or(&a, &b, out);
		flist_and(&a, &b, out);
		return 0;
	}
	return -EINVAL;
}

/* Adds the UNINDEXED frames: they are read whatever the plan says. */
static int add_unindexed(struct run *r, uint64_t seg_lo, uint64_t seg_hi, struct flist *l)
{
	static const uint8_t zero = 0;
	struct flist u = {0};
	if (l->all)
		return 0;
	int e = archive_term_postings(r->txn, ARCHIVE_TERM_UNINDEXED, &zero, &zero, seg_lo, seg_hi,
	                              &u.f, &u.n);
	if (e || u.n == 0) {
		flist_free(&u);
		return e;
	}
	return flist_or(l, &u, l);
}

struct frame_sink {
	struct run *r;
	struct seg_cand *c;
	size_t cap;
};

static int frames_add(struct frame_sink *s, const struct archive_frame_info *f)
{
	const struct query_options *o = s->r->opt;
	s->r->res->frames_total++;
	if (f->max_ns < o->from_ns || (o->to_ns && f->min_ns >= o->to_ns))
		return 0;
	if (qq_grow((void **)&s->c->frames, &s->cap, s->c->n + 1, sizeof(*s->c->frames)) != 0)
		return -ENOMEM;
	s->c->frames[s->c->n++] = *f;
	s->r->res->frames_read++;
	s->r->res->bytes_read += f->csize;
	return 0;
}

static int frames_add_cb(const struct archive_frame_info *f, void *arg)
{
	return frames_add(arg, f);
}

/*
 * Fills c->frames: every frame when all, else the frames of list entries
 * l[*i..] that belong to c (the list and the segments are both in id order).
 */
static int seg_frames(struct run *r, struct seg_cand *c, const struct flist *l, size_t *i)
{
	struct frame_sink s = {.r = r, .c = c};
	if (l->all || (c->seg.flags & ARCHIVE_SEG_UNINDEXED))
		return archive_frames(r->txn, c->seg.id, frames_add_cb, &s);
	while (*i < l->n && l->f[*i] >> 32 < c->seg.id)
		(*i)++; /* segments outside the time range, or gone (retention) */
	uint32_t listed = 0;
	for (; *i < l->n && l->f[*i] >> 32 == c->seg.id; (*i)++) {
		struct archive_frame_info f;
		int e = archive_frame_get(r->txn, c->seg.id, (uint32_t)l->f[*i], &f);
		if (e == ARCHIVE_E_NOTFOUND)
			continue; /* cannot be: frames are committed with their postings */
		if (e || (e = frames_add(&s, &f)))
			return e;
		listed++;
	}
	r->res->frames_total += c->seg.frames - listed; /* the ones the index ruled out */
	return 0;
}

static int seg_collect(const struct archive_segment_info *s, void *arg)
{
	struct run *r = arg;
	r->res->segments++;
	if (qq_grow((void **)&r->cands, &r->cands_cap, r->ncands + 1, sizeof(*r->cands)) != 0)
		return -ENOMEM;
	r->cands[r->ncands++] = (struct seg_cand){.seg = *s};
	return 0;
}

/*
 * Frames numbered in a segment but without a record: index rebuild (or
 * recovery) stepped over their damage, so their packets are lost.  Counted
 * when the time between their neighbours meets the query's range.
 */
struct holes {
	const struct query_options *o;
	struct seg_cand *c;
	uint32_t next;     /* the frame expected next */
	uint64_t prev_max; /* the latest packet before it */
};

static void hole_at(struct holes *h, uint32_t upto, uint64_t next_min)
{
	const struct query_options *o = h->o;
	if (upto <= h->next || next_min < o->from_ns || (o->to_ns && h->prev_max >= o->to_ns))
		return;
	if (h->c->holes == 0)
		h->c->hole = h->next;
	h->c->holes += upto - h->next;
}

static int holes_cb(const struct archive_frame_info *f, void *arg)
{
	struct holes *h = arg;
	hole_at(h, f->frame, f->min_ns);
	h->next = f->frame + 1;
	h->prev_max = f->max_ns;
	return 0;
}

static int seg_holes(struct run *r, struct seg_cand *c)
{
	struct holes h = {.o = r->opt, .c = c, .prev_max = c->seg.min_ns};
	int e = archive_frames(r->txn, c->seg.id, holes_cb, &h);
	hole_at(&h, c->seg.frames, c->seg.max_ns);
	return e;
}

/* One line per segment with holes; they make the answer incomplete (exit status 3). */
static void report_holes(struct run *r)
{
	for (size_t i = 0; i < r->ncands; i++) {
		const struct seg_cand *c = &r->cands[i];
		if (!c->holes || !c->prog)
			continue;
		r->res->frames_damaged += c->holes;
		if (r->opt->notices)
			fprintf(
			    r->opt->notices,
			    "%sarchive %s: segment %llu: %u damaged frames from frame %u were not "
			    "indexed (index rebuild or recovery stepped over them): their packets "
			    "are not in "
			    "the answer\n",
			    r->opt->notice_prefix ? r->opt->notice_prefix : "", archive_dir(r->a),
			    (unsigned long long)c->seg.id, c->holes, c->hole);
	}
}

/* The segments of the time range, then the plan over the indexed ones, then their frames. */
static int candidates(struct run *r)
{
	int e = archive_segments(r->txn, r->opt->from_ns, r->opt->to_ns, seg_collect, r);
	if (e)
		return e;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < r->ncands; i++)
		if (!(r->cands[i].seg.flags & ARCHIVE_SEG_UNINDEXED)) {
			lo = r->cands[i].seg.id < lo ? r->cands[i].seg.id : lo;
			hi = r->cands[i].seg.id > hi ? r->cands[i].seg.id : hi;
		}
	struct flist l = {.all = r->plan->op == QUERY_PLAN_ALL};
	if (!l.all && lo <= hi &&
	    ((e = plan_eval(r, r->plan, lo, hi, &l)) || (e = add_unindexed(r, lo, hi, &l)))) {
		flist_free(&l);
		return e;
	}
	size_t at = 0;
	for (size_t i = 0; i < r->ncands && e == 0; i++)
		if ((e = seg_frames(r, &r->cands[i], &l, &at)) == 0)
			e = seg_holes(r, &r->cands[i]);
	flist_free(&l);
	return e;
}

/* ---- pass 2: read, filter, merge, write --------------------------------------------------- */

/* The pcap output's link type and snaplen: those of the segments that can match. */
static int choose_output(struct run *r)
{
	int lt = -1;
	uint32_t snap = 0;
	for (size_t i = 0; i < r->ncands; i++) {
		const struct archive_segment_info *s = &r->cands[i].seg;
		if (r->cands[i].n == 0)
			continue;
		if (lt >= 0 && s->linktype != lt && r->opt->format == QUERY_FORMAT_PCAP) {
			snprintf(
			    r->errbuf, QUERY_ERRBUF_SIZE,
			    "matching packets have several link types (%d and %d): a pcap holds "
			    "one; use --format pcapng, or narrow the filter or the time range",
			    lt, s->linktype);
			return QUERY_E_LINKTYPES;
		}
		lt = s->linktype;
		snap = s->snaplen > snap ? s->snaplen : snap;
	}
	if (lt < 0 && r->ncands > 0) { /* nothing to read: describe the first segment */
		lt = r->cands[0].seg.linktype;
		snap = r->cands[0].seg.snaplen;
	}
	r->x.linktype = lt < 0 ? 1 /* LINKTYPE_ETHERNET */ : lt;
	r->x.snaplen = snap ? snap : 262144;
	return 0;
}

/*
 * The order of the answer.  One recording (run) is one stream: its candidate
 * frames in the order the recorder took their packets (QQ chunk, then
 * segment, then frame: a chunk goes whole to one dumper and a frame holds one
 * chunk, so for one queue this is capture order, even where timestamps step
 * back), each frame's records in stored order.  Segments of no known
 * recording (run 0) are a stream each.  Streams are merged packet by packet:
 * earlier timestamp first, ties by run, then segment.  A stream is opened
 * (a reader, a decompressed frame) only once its earliest packet time is not
 * after the next packet out, so streams that do not overlap in time are read
 * one after the other; however many overlap, the order is the same.
 */
struct fref {
	struct seg_cand *c;
	size_t i; /* c->frames[i] */
};

#define AHEAD_MAX 16 /* frames a stream keeps submitted to the pool, at most */

struct stream {
	struct fref *f; /* its frames, in order */
	size_t n, next;
	size_t rank;            /* its place in (run, segment) order: ties */
	uint64_t min_ns;        /* no packet of it is earlier */
	struct query_frame own; /* while open: a frame read on this thread (no free slot) */
	struct query_frame *win[AHEAD_MAX]; /* pool slots of frames next..sub-1, a ring */
	size_t win_head, win_n, sub;
	struct query_frame *fr;     /* the loaded frame (own or a slot), NULL between frames */
	size_t mi;                  /* its next matching record */
	const struct seg_cand *cur; /* segment of the loaded frame, NULL between frames */
	struct archive_record rec;  /* the current record */
};

/*
 * A segment whose file is missing: gone from the index too (retention dropped
 * it after this query planned) means its packets are left out, with a notice;
 * still in the index means the archive is damaged (the caller reports it).
 */
static int segment_gone(struct run *r, uint64_t id)
{
	struct archive_rtxn *t;
	struct archive_segment_info s;
	if (archive_rtxn_begin(r->a, &t) != 0)
		return 0;
	int gone = archive_segment_get(t, id, &s) == ARCHIVE_E_NOTFOUND;
	archive_rtxn_end(t);
	if (gone) {
		r->res->segments_removed++;
		if (r->opt->notices)
			fprintf(r->opt->notices,
			        "%ssegment %llu was removed by retention while the query ran: its "
			        "packets are left out\n",
			        r->opt->notice_prefix ? r->opt->notice_prefix : "",
			        (unsigned long long)id);
	}
	return gone;
}

/* 1 when the segment file is missing or ends before frame f: the frames after it are gone too. */
static int file_lacks(const char *path, const struct archive_frame_info *f)
{
	struct stat st;
	return stat(path, &st) != 0 || (uint64_t)st.st_size < f->offset + f->csize;
}

/*
 * A frame that cannot be read (archive_errmsg() says why): without
 * --skip-damaged the query fails naming it; with it, the frame (or, when the
 * file is missing, cut short or another segment's, the rest of the segment)
 * is left out, said in one line and counted.  Returns 0 (skipped) or the error.
 */
static int frame_damaged(struct run *r, const struct query_frame *j, struct fref *fr, int err)
{
	struct seg_cand *c = fr->c;
	const struct archive_frame_info *f = &c->frames[fr->i];
	int whole = err == -ESTALE || file_lacks(archive_frame_reader_path(j->rd), f);
	size_t last = whole ? c->n - 1 : fr->i;
	uint64_t packets = 0;
	for (size_t i = fr->i; i <= last; i++)
		packets += c->frames[i].packets;
	if (!r->opt->skip_damaged) {
		snprintf(
		    r->errbuf, QUERY_ERRBUF_SIZE, /* cut short at errbuf's end, as before */
		    "archive %s: %.*s: %llu packets cannot be read (--skip-damaged returns the "
		    "others; flowscope index verify lists the damage)",
		    archive_dir(r->a), (int)strlen(j->msg), j->msg, (unsigned long long)packets);
		return err;
	}
	if (last > fr->i)
		c->dead = 1; /* its other frames are in this stream, later */
	r->res->frames_damaged += last - fr->i + 1;
	r->res->packets_damaged += packets;
	if (r->opt->notices)
		fprintf(r->opt->notices,
		        "%sarchive %s: %s: left out %llu packets (frames %u to %u)\n",
		        r->opt->notice_prefix ? r->opt->notice_prefix : "", archive_dir(r->a),
		        j->msg, (unsigned long long)packets, f->frame, c->frames[last].frame);
	return 0;
}

/* The inputs of frame fr of a stream: what query__frame_match needs. */
static void frame_inputs(const struct run *r, const struct fref *fr, struct query_frame *j)
{
	j->seg = &fr->c->seg;
	j->f = &fr->c->frames[fr->i];
	j->prog = fr->c->prog;
	j->from_ns = r->opt->from_ns;
	j->to_ns = r->opt->to_ns;
}

/* Submits the stream's next frames to the pool, up to r->ahead ahead or no free slot. */
static void stream_submit(struct run *r, struct stream *k)
{
	struct query_frame want;
	while (r->ra && k->win_n < r->ahead && k->sub < k->n) {
		frame_inputs(r, &k->f[k->sub], &want);
		struct query_frame *j = query__readahead_submit(r->ra, &want);
		if (!j)
			return; /* others hold every slot: this stream reads on this thread */
		k->win[(k->win_head + k->win_n++) % AHEAD_MAX] = j;
		k->sub++;
	}
}

/* Frame k->next, run: its pool slot (after the wait), else run here in k->own. */
static struct query_frame *stream_frame(struct run *r, struct stream *k, const struct fref *fr)
{
	if (k->sub == k->next)
		k->sub++; /* not submitted: read here */
	else {
		struct query_frame *j = k->win[k->win_head];
		k->win_head = (k->win_head + 1) % AHEAD_MAX;
		k->win_n--;
		query__readahead_wait(r->ra, j);
		return j;
	}
	frame_inputs(r, fr, &k->own);
	query__frame_match(&k->own);
	return &k->own;
}

/* Done with the loaded frame: what points into it is written first.  0 or an error. */
static int frame_release(struct run *r, struct stream *k, struct query_frame *j)
{
	int e = r->opt->on_packet ? 0 : export_flush(&r->x);
	if (j && j != &k->own)
		query__readahead_release(r->ra, j);
	if (k->fr == j) {
		k->fr = NULL;
		k->cur = NULL;
	}
	return e ? fail(r, e, "cannot write the output: %s%s", strerror(errno), "") : 0;
}

/* What a frame that did not load means: 0 = left out (gone or damaged), <0 = error. */
static int frame_failed(struct run *r, struct query_frame *j, struct fref *fr)
{
	struct seg_cand *c = fr->c;
	int e = j->err;
	if (e == -ENOENT && segment_gone(r, c->seg.id)) {
		c->dead = 1; /* retention removed it meanwhile: left out, said on stderr */
		return 0;
	}
	if (e == -ENOMEM) {
		snprintf(r->errbuf, QUERY_ERRBUF_SIZE, "%s", j->msg);
		return e;
	}
	return frame_damaged(r, j, fr, e);
}

/* Loads the stream's next frame.  1 = loaded, 0 = left out (gone or damaged), <0 = error. */
static int stream_load(struct run *r, struct stream *k)
{
	stream_submit(r, k);
	struct fref *fr = &k->f[k->next];
	struct seg_cand *c = fr->c;
	struct query_frame *j;
	if (c->dead && k->sub == k->next) { /* not read, as before */
		k->next++;
		k->sub++;
		return 0;
	}
	j = stream_frame(r, k, fr);
	k->next++;
	if (!c->dead && j->err == 0) {
		k->fr = j;
		k->mi = 0;
		k->cur = c;
		return 1;
	}
	int e = c->dead ? 0 : frame_failed(r, j, fr);
	int f = frame_release(r, k, j);
	return e ? e : f;
}

/* Moves to the next matching record.  1 = have one, 0 = stream done, <0 = error. */
static int stream_next(struct run *r, struct stream *k)
{
	const struct query_options *o = r->opt;
	for (;;) {
		if (k->fr && k->mi < k->fr->nm) {
			k->rec = k->fr->m[k->mi++];
			return 1;
		}
		int e = k->fr ? frame_release(r, k, k->fr) : 0;
		if (e)
			return e;
		if (k->next == k->n)
			return 0;
		if (o->out && fflush(o->out) != 0) /* stream: what was found so far goes out now */
			return fail(r, QUERY_E_OUTPUT, "cannot write the output: %s%s",
			            strerror(errno), "");
		if (o->stop && atomic_load_explicit(o->stop, memory_order_relaxed))
			return fail(r, -ECANCELED, "the query was stopped%s%s", "", "");
		if ((e = stream_load(r, k)) < 0)
			return e;
	}
}

/* Gives back its frames (the loaded one after writing what points into it); 0 or an error. */
static int stream_close(struct run *r, struct stream *k)
{
	int e = k->fr ? frame_release(r, k, k->fr) : 0;
	for (; k->win_n; k->win_n--, k->win_head = (k->win_head + 1) % AHEAD_MAX)
		query__readahead_release(r->ra, k->win[k->win_head]);
	archive_frame_reader_destroy(k->own.rd);
	free(k->own.m);
	k->own = (struct query_frame){0};
	return e;
}

/* The merge: a heap of the open streams that have a record, by stream_before. */
struct merge {
	struct stream **k;
	size_t n;
};

static int stream_before(const struct stream *a, const struct stream *b)
{
	if (a->rec.ts_ns != b->rec.ts_ns)
		return a->rec.ts_ns < b->rec.ts_ns;
	return a->rank < b->rank;
}

static void heap_push(struct merge *m, struct stream *k)
{
	size_t i = m->n++;
	while (i > 0 && stream_before(k, m->k[(i - 1) / 2])) {
		m->k[i] = m->k[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	m->k[i] = k;
}

static struct stream *heap_pop(struct merge *m)
{
	struct stream *top = m->k[0], *last = m->k[--m->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m->n)
			break;
		if (c + 1 < m->n && stream_before(m->k[c + 1], m->k[c]))
			c++;
		if (!stream_before(m->k[c], last))
			break;
		m->k[i] = m->k[c];
		i = c;
	}
	if (m->n)
		m->k[i] = last;
	return top;
}

/* Advances k and puts it back in the heap, or closes it at its end.  0 or an error. */
static int stream_advance(struct run *r, struct merge *m, struct stream *k)
{
	int got = stream_next(r, k);
	if (got == 1) {
		heap_push(m, k);
		return 0;
	}
	int e = stream_close(r, k);
	return got ? got : e;
}

static int stream_open(struct run *r, struct merge *m, struct stream *k)
{
	if (archive_frame_reader_create(r->a, &k->own.rd) != 0)
		return fail(r, -ENOMEM, "out of memory%s%s", "", "");
	return stream_advance(r, m, k);
}

/* 1 when --limit-packets is reached (--limit-bytes is checked per packet, before writing). */
static int limits_reached(const struct run *r)
{
	const struct query_options *o = r->opt;
	return o->limit_packets && r->res->packets >= o->limit_packets;
}

/* Writes k's record; 1 when --limit-bytes stops the answer before it, 0, or an error. */
static int write_record(struct run *r, const struct stream *k)
{
	const struct archive_segment_info *s = &k->cur->seg;
	if (r->opt->on_packet) {
		int e = r->opt->on_packet(s, &k->rec, r->opt->on_packet_arg);
		r->res->packets += e == 0;
		return e < 0 ? e : 0;
	}
	if (r->opt->limit_bytes &&
	    r->x.bytes + export_packet_size(&r->x, s->linktype, s->snaplen, &k->rec) >
	        r->opt->limit_bytes) {
		r->res->limited = 1;
		return 1;
	}
	int e = export_packet(&r->x, s->linktype, s->snaplen, &k->rec);
	if (e == QUERY_E_OUTPUT)
		return fail(r, e, "cannot write the output: %s%s", strerror(errno), "");
	if (e)
		return e;
	r->res->packets++;
	return 0;
}

/* Writes the records of the streams (pending: by min_ns) in merge order. */
static int merge_streams(struct run *r, struct stream **pending, size_t n)
{
	struct merge m = {.k = calloc(n ? n : 1, sizeof(*m.k))};
	size_t next = 0;
	int e = m.k ? 0 : fail(r, -ENOMEM, "out of memory%s%s", "", "");
	while (e == 0 && !limits_reached(r)) {
		while (e == 0 && next < n &&
		       (m.n == 0 || pending[next]->min_ns <= m.k[0]->rec.ts_ns))
			e = stream_open(r, &m, pending[next++]);
		if (e || m.n == 0)
			break;
		struct stream *k = heap_pop(&m);
		if ((e = write_record(r, k)) != 0) {
			int c = stream_close(r, k);
			e = e > 0 && c ? c : e;
			break;
		}
		e = stream_advance(r, &m, k);
	}
	if (e == 0 && limits_reached(r) && (m.n || next < n))
		r->res->limited = 1;
	e = e > 0 ? 0 : e;
	while (m.n) {
		int c = stream_close(r, heap_pop(&m));
		e = e ? e : c;
	}
	free(m.k);
	return e;
}

/* Stream key: (run, or for run 0 the segment), then QQ chunk, segment, frame. */
static int fref_cmp(const void *x, const void *y)
{
	const struct fref *a = x, *b = y;
	const struct archive_segment_info *sa = &a->c->seg, *sb = &b->c->seg;
	uint64_t ka[4] = {sa->run, sa->run ? 0 : sa->id, a->c->frames[a->i].chunk, sa->id};
	uint64_t kb[4] = {sb->run, sb->run ? 0 : sb->id, b->c->frames[b->i].chunk, sb->id};
	for (int i = 0; i < 4; i++)
		if (ka[i] != kb[i])
			return ka[i] < kb[i] ? -1 : 1;
	return (a->i > b->i) - (a->i < b->i);
}

static int same_stream(const struct fref *a, const struct fref *b)
{
	return a->c->seg.run == b->c->seg.run && (a->c->seg.run || a->c == b->c);
}

static int stream_start_cmp(const void *x, const void *y)
{
	const struct stream *a = *(struct stream *const *)x, *b = *(struct stream *const *)y;
	if (a->min_ns != b->min_ns)
		return a->min_ns < b->min_ns ? -1 : 1;
	return (a->rank > b->rank) - (a->rank < b->rank);
}

/* Cuts the sorted frames f[0..n) into streams (*out, by earliest packet). */
static size_t streams_cut(struct fref *f, size_t n, struct stream *st, struct stream **out)
{
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || !same_stream(&f[i - 1], &f[i])) {
			st[ns] = (struct stream){.f = &f[i], .rank = ns, .min_ns = UINT64_MAX};
			ns++; /* not in the line above: ns read and incremented there is undefined */
		}
		struct stream *k = &st[ns - 1];
		const struct archive_frame_info *fi = &f[i].c->frames[f[i].i];
		k->n++;
		k->min_ns = fi->min_ns < k->min_ns ? fi->min_ns : k->min_ns;
	}
	for (size_t i = 0; i < ns; i++)
		out[i] = &st[i];
	if (ns > 1)
		qsort(out, ns, sizeof(*out), stream_start_cmp);
	return ns;
}

/* Workers for the read-ahead pool: opt->workers, or one per online CPU. */
static unsigned workers_wanted(const struct query_options *o)
{
	long n = o->workers ? (long)o->workers : sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > QUERY_MAX_WORKERS ? QUERY_MAX_WORKERS : (unsigned)n;
}

/*
 * Starts the read-ahead pool when there are threads to spare and frames to
 * share: w - 1 workers beside this thread (which runs frames while it waits);
 * each stream keeps w + 1 frames submitted (one being merged, one per thread,
 * one more), the pool has slots for two such streams at once.
 */
static int readahead_start(struct run *r, size_t frames)
{
	unsigned w = workers_wanted(r->opt);
	if (w < 2 || frames < 2)
		return 0;
	r->ahead = w + 1 < AHEAD_MAX ? w + 1 : AHEAD_MAX;
	if (query__readahead_create(r->a, w - 1, 2 * r->ahead, &r->ra) != 0)
		return fail(r, -ENOMEM, "cannot start the query's workers%s%s", "", "");
	return 0;
}

/* The candidate frames in stream order, cut into streams, merged. */
static int merge_segments(struct run *r)
{
	size_t n = 0, w = 0;
	for (size_t i = 0; i < r->ncands; i++)
		n += r->cands[i].n;
	struct fref *f = malloc((n ? n : 1) * sizeof(*f));
	struct stream *st = malloc((n ? n : 1) * sizeof(*st));
	struct stream **order = malloc((n ? n : 1) * sizeof(*order));
	int e = 0;
	if (!f || !st || !order) {
		e = fail(r, -ENOMEM, "out of memory%s%s", "", "");
	} else {
		for (size_t i = 0; i < r->ncands; i++)
			for (size_t j = 0; j < r->cands[i].n; j++)
				f[w++] = (struct fref){.c = &r->cands[i], .i = j};
		qsort(f, n, sizeof(*f), fref_cmp);
		if ((e = readahead_start(r, n)) == 0)
			e = merge_streams(r, order, streams_cut(f, n, st, order));
		query__readahead_destroy(r->ra); /* before the frames its slots point to */
		r->ra = NULL;
	}
	free(f);
	free(st);
	free(order);
	return e;
}

static int write_output(struct run *r)
{
	r->x = (struct export){.out = r->opt->out,
	                       .format = r->opt->format,
	                       .ts_micro = r->opt->ts_micro,
	                       .comment = r->opt->comment};
	int e = r->opt->on_packet ? 0 : choose_output(r);
	if (e == 0 && r->opt->on_start)
		r->opt->on_start(r->opt->on_start_arg);
	if (e == 0 && r->opt->on_packet) /* handed over, not written */
		return merge_segments(r);
	if (e == 0 && (e = export_begin(&r->x)) != 0)
		fail(r, e, "cannot write the output: %s%s", strerror(errno), "");
	if (e == 0)
		e = merge_segments(r);
	if (e == 0 && export_flush(&r->x) != 0) /* none left: the streams' ends wrote theirs */
		e = fail(r, QUERY_E_OUTPUT, "cannot write the output: %s%s", strerror(errno), "");
	r->res->bytes = r->x.bytes;
	if (e == 0 && fflush(r->opt->out) != 0)
		e = fail(r, QUERY_E_OUTPUT, "cannot write the output: %s%s", strerror(errno), "");
	return e;
}

static int explain(struct run *r)
{
	char buf[1024];
	FILE *o = r->opt->out;
	fprintf(o, "plan: %s\n", query_plan_format(r->plan, buf, sizeof(buf)));
	fprintf(o, "index: %s\n",
	        r->res->indexed ? "used"
	                        : "not used (filter not indexable): scanning the time range");
	fprintf(o, "segments: %llu in the time range\n", (unsigned long long)r->res->segments);
	fprintf(o, "frames: %llu of %llu to read, %llu compressed bytes\n",
	        (unsigned long long)r->res->frames_read, (unsigned long long)r->res->frames_total,
	        (unsigned long long)r->res->bytes_read);
	for (size_t i = 0; i < r->ncands; i++)
		if (r->cands[i].n)
			fprintf(o, "  segment %llu: %zu frames\n",
			        (unsigned long long)r->cands[i].seg.id, r->cands[i].n);
	return fflush(o) == 0 ? 0 : QUERY_E_OUTPUT;
}

/*
 * One warning line for a link type the filter cannot be compiled for: its
 * segments in the range (named) are left out, as `tcpdump` could not read
 * them with this filter either.
 */
static void warn_linktype(struct run *r, int linktype, const char *why)
{
	char ids[256] = "";
	size_t len = 0, segs = 0;
	uint64_t packets = 0;
	for (size_t i = 0; i < r->ncands; i++) {
		const struct archive_segment_info *s = &r->cands[i].seg;
		if (s->linktype != linktype)
			continue;
		packets += s->packets;
		if (segs++ < 8 && len < sizeof(ids))
			len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%llu",
			                        segs > 1 ? ", " : "", (unsigned long long)s->id);
	}
	if (!r->opt->notices)
		return;
	fprintf(r->opt->notices,
	        "%swarning: archive %s: %s: segments %s%s of link type %d (%llu packets) are "
	        "left out\n",
	        r->opt->notice_prefix ? r->opt->notice_prefix : "", archive_dir(r->a), why, ids,
	        segs > 8 ? ", ..." : "", linktype, (unsigned long long)packets);
}

/*
 * Compiles the filter for every link type in range, even without candidates
 * (an invalid filter is refused whatever the archive holds).  Segments of a
 * link type it cannot be compiled for are left out with a warning; when that
 * is every link type in range, the query fails (QUERY_E_FILTER).
 */
static int compile_filters(struct run *r)
{
	size_t ok = 0;
	if (r->ncands == 0)
		return bpf_for(r, 1 /* LINKTYPE_ETHERNET */, 262144) ? 0 : QUERY_E_FILTER;
	for (size_t i = 0; i < r->ncands; i++)
		if ((r->cands[i].prog =
		         bpf_for(r, r->cands[i].seg.linktype, r->cands[i].seg.snaplen)))
			ok++;
	if (ok == 0)
		return QUERY_E_FILTER; /* errbuf: the last failure */
	for (size_t i = 0; i < r->bpf.n; i++) {
		struct bpf_program p; /* compiled once more for its message */
		if (r->bpf.ok[i])
			continue;
		if (ft_bpf_compile(r->bpf.linktype[i], 262144, filter_text(r->opt), &p, r->errbuf,
		                   QUERY_ERRBUF_SIZE) == 0)
			pcap_freecode(&p);
		else
			warn_linktype(r, r->bpf.linktype[i], r->errbuf);
	}
	for (size_t i = 0; i < r->ncands; i++)
		if (!r->cands[i].prog)
			r->cands[i].n = 0; /* left out, said above */
	r->errbuf[0] = '\0';
	return 0;
}

static int run_passes(struct run *r)
{
	int e = query_plan_build(r->opt->filter, &r->plan);
	if (e)
		return fail(r, e, "out of memory%s%s", "", "");
	if (r->no_flow)
		r->plan->op = QUERY_PLAN_NONE; /* its children are freed with it */
	r->res->indexed = r->plan->op != QUERY_PLAN_ALL;
	if ((e = archive_rtxn_begin(r->a, &r->txn)) || (e = candidates(r))) {
		snprintf(r->errbuf, QUERY_ERRBUF_SIZE, "%s",
		         archive_errmsg()[0] ? archive_errmsg() : query_strerror(e));
		return e;
	}
	if ((e = compile_filters(r)) != 0)
		return e;
	if (r->opt->explain)
		return explain(r);
	report_holes(r);
	if (!r->res->indexed && r->opt->notices && r->res->frames_read > 0 &&
	    filter_text(r->opt)[0])
		fprintf(r->opt->notices,
		        "%sfilter not indexable: scanning %llu frames (%llu compressed bytes)\n",
		        r->opt->notice_prefix ? r->opt->notice_prefix : "",
		        (unsigned long long)r->res->frames_read,
		        (unsigned long long)r->res->bytes_read);
	return write_output(r);
}

/*
 * opt->community_id: the query runs on *o, a copy of the options whose filter
 * selects the ID's flows (*filter, freed by the caller), or with no_flow set
 * when no flow has that ID.  0 or the resolver's error.
 */
static int community_id_options(struct run *r, struct query_options *o, char **filter)
{
	const struct query_options *opt = r->opt;
	int e = query__community_id_filter(r->a, opt->community_id, opt->filter, opt->from_ns,
	                                   opt->to_ns, filter, r->errbuf);
	if (e)
		return e;
	*o = *opt;
	o->filter = *filter ? *filter : opt->filter;
	r->opt = o;
	r->no_flow = r->res->no_flow = !*filter;
	return 0;
}

int query_run(struct archive *a, const struct query_options *opt, struct query_result *res,
              char *errbuf)
{
	struct run r = {.a = a, .opt = opt, .res = res, .errbuf = errbuf};
	memset(res, 0, sizeof(*res));
	errbuf[0] = '\0';
	if (opt->to_ns && opt->from_ns >= opt->to_ns) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE,
		         "the time range is empty (--from is not before --to)");
		return -EINVAL;
	}
	struct query_options cid_opt;
	char *cid_filter = NULL;
	int e = 0;
	if (opt->community_id)
		e = community_id_options(&r, &cid_opt, &cid_filter);
	if (e == 0)
		e = run_passes(&r);
	free(cid_filter);
	archive_rtxn_end(r.txn);
	for (size_t i = 0; i < r.ncands; i++)
		free(r.cands[i].frames);
	free(r.cands);
	bpf_free(&r.bpf);
	query_plan_free(r.plan);
	return e;
}
