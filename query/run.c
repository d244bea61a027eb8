/*
 * Running a query: plan -> candidate frames per segment -> read, filter
 * exactly, write.
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
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_pvt.h"

#define MAX_LINKTYPES 16
#define MERGE_MAX 256 /* segments read at once (their times overlap) */

struct seg_cand {
	struct archive_segment_info seg;
	struct archive_frame_info *frames; /* candidate frames, in order */
	size_t n;
};

struct bpf_cache {
	int linktype[MAX_LINKTYPES];
	struct bpf_program prog[MAX_LINKTYPES];
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

/* Compiles the filter for a link type (cached).  Returns the program or NULL + errbuf. */
static struct bpf_program *bpf_for(struct run *r, int linktype, uint32_t snaplen)
{
	for (size_t i = 0; i < r->bpf.n; i++)
		if (r->bpf.linktype[i] == linktype)
			return &r->bpf.prog[i];
	if (r->bpf.n == MAX_LINKTYPES) {
		fail(r, QUERY_E_LINKTYPES, "too many link types in the archive%s%s", "", "");
		return NULL;
	}
	struct bpf_program *prog = &r->bpf.prog[r->bpf.n];
	if (ft_bpf_compile(linktype, snaplen, filter_text(r->opt), prog, r->errbuf,
	                   QUERY_ERRBUF_SIZE) != 0)
		return NULL;
	r->bpf.linktype[r->bpf.n++] = linktype;
	return prog;
}

static void bpf_free(struct bpf_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
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
	if (s->c->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		struct archive_frame_info *nf = realloc(s->c->frames, nc * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		s->c->frames = nf;
		s->cap = nc;
	}
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
	if (r->ncands == r->cands_cap) {
		size_t nc = r->cands_cap ? r->cands_cap * 2 : 16;
		struct seg_cand *n = realloc(r->cands, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->cands = n;
		r->cands_cap = nc;
	}
	r->cands[r->ncands++] = (struct seg_cand){.seg = *s};
	return 0;
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
		e = seg_frames(r, &r->cands[i], &l, &at);
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
 * One segment being read: its candidate frames one after the other, the
 * records of each that pass the time range and the filter.  Cursors of
 * segments whose times overlap (several dumpers) are merged by timestamp.
 */
struct cursor {
	const struct seg_cand *c;
	struct archive_frame_reader *rd;
	struct bpf_program *prog;
	size_t next_frame;
	uint64_t chunk;            /* QQ chunk of the loaded frame */
	struct archive_record rec; /* the current record (valid while the cursor is live) */
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

/* Moves to the next matching record.  1 = have one, 0 = segment done, <0 = error. */
static int cursor_next(struct run *r, struct cursor *k)
{
	const struct query_options *o = r->opt;
	for (;;) {
		while (archive_frame_next(k->rd, &k->rec)) {
			if (k->rec.ts_ns < o->from_ns || (o->to_ns && k->rec.ts_ns >= o->to_ns))
				continue;
			struct pcap_pkthdr h = {.caplen = k->rec.caplen, .len = k->rec.wirelen};
			if (pcap_offline_filter(k->prog, &h, k->rec.data))
				return 1;
		}
		if (k->next_frame == k->c->n)
			return 0;
		if (fflush(o->out) != 0) /* stream: what was found so far goes out now */
			return fail(r, QUERY_E_OUTPUT, "cannot write the output: %s%s",
			            strerror(errno), "");
		k->chunk = k->c->frames[k->next_frame].chunk;
		int e = archive_frame_load(k->rd, &k->c->seg, &k->c->frames[k->next_frame++]);
		if (e == -ENOENT && segment_gone(r, k->c->seg.id))
			return 0; /* retention removed it meanwhile: left out, said on stderr */
		if (e) {
			snprintf(r->errbuf, QUERY_ERRBUF_SIZE, "%s", archive_errmsg());
			return e;
		}
	}
}

struct merge {
	struct cursor *k[MERGE_MAX];
	unsigned n;
};

/*
 * Heap order.  Segments of one recording (run): the order the recorder took
 * packets in, which is the order of their QQ chunks (a chunk goes whole to
 * one dumper; a frame holds one chunk).  Otherwise: earlier timestamp first,
 * ties by run, then segment order.
 */
static int cursor_before(const struct cursor *a, const struct cursor *b)
{
	const struct archive_segment_info *sa = &a->c->seg, *sb = &b->c->seg;
	if (sa->run && sa->run == sb->run && a->chunk != b->chunk)
		return a->chunk < b->chunk;
	if (a->rec.ts_ns != b->rec.ts_ns)
		return a->rec.ts_ns < b->rec.ts_ns;
	if (sa->run != sb->run)
		return sa->run < sb->run;
	return a->c < b->c;
}

static void heap_push(struct merge *m, struct cursor *k)
{
	unsigned i = m->n++;
	while (i > 0 && cursor_before(k, m->k[(i - 1) / 2])) {
		m->k[i] = m->k[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	m->k[i] = k;
}

static struct cursor *heap_pop(struct merge *m)
{
	struct cursor *top = m->k[0], *last = m->k[--m->n];
	unsigned i = 0;
	for (;;) {
		unsigned c = 2 * i + 1;
		if (c >= m->n)
			break;
		if (c + 1 < m->n && cursor_before(m->k[c + 1], m->k[c]))
			c++;
		if (!cursor_before(m->k[c], last))
			break;
		m->k[i] = m->k[c];
		i = c;
	}
	if (m->n)
		m->k[i] = last;
	return top;
}

static int cursor_open(struct run *r, const struct seg_cand *c, struct cursor **out)
{
	struct cursor *k = calloc(1, sizeof(*k));
	if (!k)
		return fail(r, -ENOMEM, "out of memory%s%s", "", "");
	k->c = c;
	if (!(k->prog = bpf_for(r, c->seg.linktype, c->seg.snaplen))) {
		free(k);
		return QUERY_E_FILTER;
	}
	if (archive_frame_reader_create(r->a, &k->rd) != 0) {
		free(k);
		return fail(r, -ENOMEM, "out of memory%s%s", "", "");
	}
	*out = k;
	return 0;
}

static void cursor_close(struct cursor *k)
{
	archive_frame_reader_destroy(k->rd);
	free(k);
}

/* 1 when --limit-packets is reached (--limit-bytes is checked per packet, before writing). */
static int limits_reached(const struct run *r)
{
	const struct query_options *o = r->opt;
	return o->limit_packets && r->res->packets >= o->limit_packets;
}

static int seg_start_cmp(const void *x, const void *y)
{
	const struct seg_cand *a = *(struct seg_cand *const *)x, *b = *(struct seg_cand *const *)y;
	if (a->seg.min_ns != b->seg.min_ns)
		return (a->seg.min_ns > b->seg.min_ns) - (a->seg.min_ns < b->seg.min_ns);
	return (a->seg.id > b->seg.id) - (a->seg.id < b->seg.id);
}

/*
 * Writes the matches of every candidate segment in merge order (see
 * cursor_before).  Segments are taken by first packet time; one joins the
 * merge while its time range overlaps those already joined (their latest
 * packet), so segments that do not overlap are read one after the other
 * with one cursor.
 */
static int merge_segments(struct run *r, struct seg_cand **order, size_t n)
{
	struct merge m = {.n = 0};
	size_t next = 0;
	uint64_t reach = 0; /* latest packet time of the segments joined */
	int e = 0;
	while (e == 0 && !limits_reached(r)) {
		while (next < n && (m.n == 0 || order[next]->seg.min_ns <= reach) &&
		       m.n < MERGE_MAX) {
			if (order[next]->seg.max_ns > reach)
				reach = order[next]->seg.max_ns;
			struct cursor *k;
			if ((e = cursor_open(r, order[next++], &k)) != 0)
				break;
			int got = cursor_next(r, k);
			if (got == 1) {
				heap_push(&m, k);
			} else {
				cursor_close(k);
				e = got < 0 ? got : 0;
			}
		}
		if (e || m.n == 0)
			break;
		struct cursor *k = heap_pop(&m);
		const struct archive_segment_info *s = &k->c->seg;
		if (r->opt->limit_bytes &&
		    r->x.bytes + export_packet_size(&r->x, s->linktype, s->snaplen, &k->rec) >
		        r->opt->limit_bytes) {
			r->res->limited = 1;
			cursor_close(k);
			break;
		}
		if ((e = export_packet(&r->x, s->linktype, s->snaplen, &k->rec)) != 0) {
			if (e == QUERY_E_OUTPUT)
				fail(r, e, "cannot write the output: %s%s", strerror(errno), "");
			cursor_close(k);
			break;
		}
		r->res->packets++;
		int got = cursor_next(r, k);
		if (got == 1)
			heap_push(&m, k);
		else {
			cursor_close(k);
			e = got < 0 ? got : 0;
		}
	}
	if (e == 0 && limits_reached(r) && (m.n || next < n))
		r->res->limited = 1;
	while (m.n)
		cursor_close(heap_pop(&m));
	return e;
}

static int write_output(struct run *r)
{
	struct seg_cand **order = malloc((r->ncands ? r->ncands : 1) * sizeof(*order));
	size_t n = 0;
	if (!order)
		return fail(r, -ENOMEM, "out of memory%s%s", "", "");
	for (size_t i = 0; i < r->ncands; i++)
		if (r->cands[i].n)
			order[n++] = &r->cands[i];
	if (n > 1)
		qsort(order, n, sizeof(*order), seg_start_cmp);
	r->x = (struct export){.out = r->opt->out,
	                       .format = r->opt->format,
	                       .ts_micro = r->opt->ts_micro,
	                       .comment = r->opt->comment};
	int e = choose_output(r);
	if (e == 0 && (e = export_begin(&r->x)) != 0)
		fail(r, e, "cannot write the output: %s%s", strerror(errno), "");
	if (e == 0)
		e = merge_segments(r, order, n);
	free(order);
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

static int run_passes(struct run *r)
{
	int e = query_plan_build(r->opt->filter, &r->plan);
	if (e)
		return fail(r, e, "out of memory%s%s", "", "");
	r->res->indexed = r->plan->op != QUERY_PLAN_ALL;
	if ((e = archive_rtxn_begin(r->a, &r->txn)) || (e = candidates(r))) {
		snprintf(r->errbuf, QUERY_ERRBUF_SIZE, "%s",
		         archive_errmsg()[0] ? archive_errmsg() : query_strerror(e));
		return e;
	}
	/* validate the filter for every link type in range, even without candidates */
	for (size_t i = 0; i < r->ncands; i++)
		if (!bpf_for(r, r->cands[i].seg.linktype, r->cands[i].seg.snaplen))
			return QUERY_E_FILTER;
	if (r->ncands == 0 && !bpf_for(r, 1 /* LINKTYPE_ETHERNET */, 262144))
		return QUERY_E_FILTER;
	if (r->opt->explain)
		return explain(r);
	if (!r->res->indexed && r->opt->notices && r->res->frames_read > 0 &&
	    filter_text(r->opt)[0])
		fprintf(r->opt->notices,
		        "%sfilter not indexable: scanning %llu frames (%llu compressed bytes)\n",
		        r->opt->notice_prefix ? r->opt->notice_prefix : "",
		        (unsigned long long)r->res->frames_read,
		        (unsigned long long)r->res->bytes_read);
	return write_output(r);
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
	int e = run_passes(&r);
	archive_rtxn_end(r.txn);
	for (size_t i = 0; i < r.ncands; i++)
		free(r.cands[i].frames);
	free(r.cands);
	bpf_free(&r.bpf);
	query_plan_free(r.plan);
	return e;
}
