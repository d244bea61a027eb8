/*
 * Flow records out of the archive, into a table elsewhere (ClickHouse,
 * docs/clickhouse.md): the index is the spool.
 *
 * A closed segment's flow records no longer change (but for a late trigger's
 * mark, archive/pins.c), so an export is a walk over the closed segments
 * past a cursor kept in the index ("export:TARGET" in meta: the last segment
 * sent whole).  Each segment goes in batches of at most
 * ARCHIVE_EXPORT_BATCH_ROWS rows, numbered by their place among the
 * segment's records (seq); before a batch is sent the sink is asked how many
 * rows of (sensor, segment, seq range) the table already holds: all of them,
 * the batch is skipped (it arrived before a crash or a lost answer); none, it
 * is sent.  A batch is one insert of fewer rows than ClickHouse's block, so
 * it lands whole or not at all, and every row arrives once.
 *
 * The rows are ClickHouse's RowBinary: fixed-width little-endian integers,
 * FixedString(16) as its bytes, String as a LEB128 length (the archive's
 * varint) and its bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_pvt.h"

#define EXPORT_KEY_MAX 512

struct rowbuf {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

static uint8_t *row_room(struct rowbuf *b, size_t n)
{
	void *p = b->p;
	if (archive__grow(&p, &b->cap, b->len + n, 1) != 0) {
		b->oom = 1;
		return NULL;
	}
	b->p = p;
	b->len += n;
	return b->p + b->len - n;
}

static void put_string(struct rowbuf *b, const char *s, size_t n)
{
	uint8_t *p = row_room(b, 10 + n);
	if (!p)
		return;
	size_t v = archive__varint_put(p, n);
	memcpy(p + v, s, n);
	b->len -= 10 - v;
}

static void put_bytes(struct rowbuf *b, const uint8_t *v, size_t n)
{
	uint8_t *p = row_room(b, n);
	if (p)
		memcpy(p, v, n);
}

static void put_le(struct rowbuf *b, uint64_t v, unsigned width)
{
	uint8_t *p = row_room(b, width);
	for (unsigned i = 0; p && i < width; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/*
 * A trigger name as source and reason: "api: REASON", "eve: SIGNATURE",
 * "trigger:EXPR" split at the first ':' (the reason without its leading
 * blanks); a module's name is a source without reason.
 */
void archive_export_trigger_split(const char *name, size_t *src_len, const char **reason)
{
	const char *colon = strchr(name, ':');
	if (!colon) {
		*src_len = strlen(name);
		*reason = name + *src_len;
		return;
	}
	*src_len = (size_t)(colon - name);
	for (*reason = colon + 1; **reason == ' '; (*reason)++)
		;
}

/* ---- one batch ---------------------------------------------------------------------------- */

struct batch {
	struct archive_rtxn *t;
	const char *sensor;
	uint64_t created_ns;
	uint32_t first, max, at, rows;
	uint16_t last_trigger; /* the name below is this trigger's (0: none looked up) */
	char trigger[256];
	struct rowbuf b;
};

static void put_trigger(struct batch *x, uint16_t id)
{
	if (id && id != x->last_trigger) {
		if (archive_trigger_name(x->t, id, x->trigger, sizeof(x->trigger)) != 0)
			snprintf(x->trigger, sizeof(x->trigger), "trigger %u", id);
		x->last_trigger = id;
	}
	const char *name = id ? x->trigger : "", *reason;
	size_t src_len;
	archive_export_trigger_split(name, &src_len, &reason);
	put_string(&x->b, name, src_len);
	put_string(&x->b, reason, strlen(reason));
}

/* Columns in the order of ARCHIVE_EXPORT_COLUMNS. */
static int row_add(const struct archive_flow_info *f, void *arg)
{
	struct batch *x = arg;
	if (x->at++ < x->first)
		return 0;
	struct rowbuf *b = &x->b;
	put_string(b, x->sensor, strlen(x->sensor));
	put_le(b, f->seg, 8);
	put_le(b, x->created_ns, 8);
	put_le(b, x->first + x->rows, 4);
	put_le(b, f->first_ns, 8);
	put_le(b, f->last_ns, 8);
	put_le(b, f->key.proto, 1);
	put_bytes(b, f->key.a, 16);
	put_le(b, f->key.port_a, 2);
	put_bytes(b, f->key.b, 16);
	put_le(b, f->key.port_b, 2);
	put_le(b, f->key.vlan, 2);
	put_le(b, f->key.vlan_inner, 2);
	for (int d = 0; d < 2; d++)
		put_le(b, f->packets[d], 8);
	for (int d = 0; d < 2; d++)
		put_le(b, f->bytes[d], 8);
	put_le(b, f->tcp_flags[0], 1);
	put_le(b, f->tcp_flags[1], 1);
	put_trigger(x, f->trigger);
	if (b->oom)
		return -ENOMEM;
	return ++x->rows == x->max ? 1 : 0;
}

int archive_export_rows(struct archive_rtxn *t, const struct archive_export_batch *b,
                        const char *sensor, uint8_t **rows, size_t *len, uint32_t *n)
{
	struct batch x = {.t = t,
	                  .sensor = sensor,
	                  .created_ns = b->seg_created_ns,
	                  .first = b->first,
	                  .max = b->n};
	int r = archive_flows(t, b->seg, row_add, &x);
	if (r < 0) {
		free(x.b.p);
		return r;
	}
	*rows = x.b.p;
	*len = x.b.len;
	*n = x.rows;
	return 0;
}

/* ---- the cursor ------------------------------------------------------------------------- */

static MDB_val cursor_key(char *buf, size_t len, const char *target)
{
	int n = snprintf(buf, len, "export:%s", target);
	if (n < 0 || (size_t)n >= len)
		n = (int)len - 1;
	return (MDB_val){.mv_size = (size_t)n, .mv_data = buf};
}

int archive_export_cursor(struct archive_rtxn *t, const char *target, uint64_t *seg)
{
	char kb[EXPORT_KEY_MAX];
	MDB_val k = cursor_key(kb, sizeof(kb), target), v;
	*seg = 0;
	int rc = mdb_get(t->txn, t->a->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return archive__lmdb_fail(rc, "read export cursor");
	if (v.mv_size != 8)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: export cursor of %zu bytes",
		                     v.mv_size);
	*seg = le64_get(v.mv_data);
	return 0;
}

int archive_export_cursor_set(struct archive *a, const char *target, uint64_t seg)
{
	char kb[EXPORT_KEY_MAX];
	uint8_t vb[8];
	le64_put(vb, seg);
	MDB_val k = cursor_key(kb, sizeof(kb), target), v = {.mv_size = 8, .mv_data = vb};
	return archive__meta_put(a, &k, &v, "write export cursor");
}

/* ---- a pass --------------------------------------------------------------------------------- */

#define PASS_MAX_SEGS 4096 /* segments one pass looks at (the next pass goes on) */

struct todo {
	uint64_t after; /* the cursor */
	uint64_t ids[PASS_MAX_SEGS], created[PASS_MAX_SEGS], min_ns[PASS_MAX_SEGS],
	    max_ns[PASS_MAX_SEGS];
	uint32_t flows[PASS_MAX_SEGS];
	size_t n;
	uint64_t open_min_ns; /* the first open segment's first packet (0: none open) */
	uint64_t first_id;    /* the lowest segment id past the cursor (0: none) */
	uint64_t done_max_ns; /* the last packet of the segments sent before */
};

static int todo_add(const struct archive_segment_info *s, void *arg)
{
	struct todo *td = arg;
	if (s->id <= td->after) {
		if (s->max_ns > td->done_max_ns)
			td->done_max_ns = s->max_ns;
		return 0;
	}
	if (!td->first_id)
		td->first_id = s->id;
	if (s->state != ARCHIVE_SEG_CLOSED) {
		td->open_min_ns = s->packets ? s->min_ns : 0; /* 0: no packet yet: newer ones */
		return 1;
	}
	if (td->n == PASS_MAX_SEGS)
		return 1;
	td->ids[td->n] = s->id;
	td->created[td->n] = s->created_ns;
	td->min_ns[td->n] = s->min_ns;
	td->max_ns[td->n] = s->max_ns;
	td->flows[td->n++] = s->flows;
	return 0;
}

static int todo_collect(struct archive *a, const char *target, struct todo *td)
{
	struct archive_rtxn *t;
	int r = archive_rtxn_begin(a, &t);
	if (r)
		return r;
	if ((r = archive_export_cursor(t, target, &td->after)) == 0) {
		r = archive_segments(t, 0, 0, todo_add, td);
		r = r > 0 ? 0 : r;
	}
	archive_rtxn_end(t);
	return r;
}

/* One batch: asked first whether the table holds it, sent if it holds none of it. */
static int batch_send(struct archive *a, const struct archive_export *e,
                      const struct archive_export_batch *b, struct archive_export_stats *st)
{
	uint64_t have = 0;
	int r = e->count(e->arg, b, &have);
	if (r)
		return r;
	if (have == b->n) {
		st->skipped_batches++;
		return 0;
	}
	if (have != 0)
		return archive__fail(
		    ARCHIVE_E_CORRUPT,
		    "the table holds %llu of the %u rows of segment %llu from row %u",
		    (unsigned long long)have, b->n, (unsigned long long)b->seg, b->first);
	struct archive_rtxn *t;
	uint8_t *rows = NULL;
	size_t len = 0;
	uint32_t got = 0;
	if ((r = archive_rtxn_begin(a, &t)) != 0)
		return r;
	r = archive_export_rows(t, b, e->sensor, &rows, &len, &got);
	struct archive_segment_info si;
	if (r == 0 && got != b->n) /* retention dropped it since the pass began: gone, not wrong */
		r = archive_segment_get(t, b->seg, &si) == ARCHIVE_E_NOTFOUND
		        ? ARCHIVE_E_NOTFOUND
		        : archive__fail(ARCHIVE_E_CORRUPT,
		                        "segment %llu: %u flow records, %u expected",
		                        (unsigned long long)b->seg, got, b->n);
	archive_rtxn_end(t);
	if (r == 0 && (r = e->insert(e->arg, rows, len, b->n)) == 0) {
		st->batches++;
		st->rows += b->n;
	}
	free(rows);
	return r;
}

static int segment_send(struct archive *a, const struct archive_export *e, const struct todo *td,
                        size_t i, struct archive_export_stats *st)
{
	struct archive_export_batch b = {.seg = td->ids[i], .seg_created_ns = td->created[i]};
	for (uint32_t flows = td->flows[i]; b.first < flows; b.first += ARCHIVE_EXPORT_BATCH_ROWS) {
		b.n = flows - b.first < ARCHIVE_EXPORT_BATCH_ROWS ? flows - b.first
		                                                  : ARCHIVE_EXPORT_BATCH_ROWS;
		int r = batch_send(a, e, &b, st);
		if (r == ARCHIVE_E_NOTFOUND) {
			st->missed_segments++;
			return archive_export_cursor_set(a, e->target, b.seg);
		}
		if (r)
			return r;
	}
	int r = archive_export_cursor_set(a, e->target, b.seg);
	if (r == 0)
		st->segments++;
	return r;
}

int archive_export_pass(struct archive *a, const struct archive_export *e,
                        struct archive_export_stats *st)
{
	struct todo *td = calloc(1, sizeof(*td));
	if (!td)
		return -ENOMEM;
	int r = todo_collect(a, e->target, td);
	/* ids are consecutive: those between the cursor and the first left are gone unsent */
	if (r == 0 && td->after && td->first_id > td->after + 1)
		st->missed_segments += td->first_id - td->after - 1;
	size_t i = 0;
	while (r == 0 && i < td->n && (r = segment_send(a, e, td, i, st)) == 0)
		i++;
	st->pending_segments = td->n - i;
	st->more = r == 0 && td->n == PASS_MAX_SEGS;
	/* complete below: the first segment not sent, else the end of everything sent */
	uint64_t through = i < td->n ? td->min_ns[i] : td->open_min_ns;
	if (!through) {
		through = td->done_max_ns;
		for (size_t j = 0; j < td->n; j++)
			through = td->max_ns[j] > through ? td->max_ns[j] : through;
		through = through ? through + 1 : 0;
	}
	if (through > st->through_ns)
		st->through_ns = through;
	free(td);
	return r;
}
