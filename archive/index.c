/*
 * The LMDB index: value encodings and the read side (segments, frames, term
 * lookups, flows, summary).
 *
 * `segments`, `frames` and `flows` keys start with the segment id
 * (big-endian), so everything about one segment is one key range there.
 * `terms` keys are partition | type | term | segment: a term's posting lists
 * for the segments of one partition are adjacent, so a lookup costs one range
 * read per partition of the time range (TERMS_PART_SEGS segments each), and
 * what it reads is the answer.  Readers validate every value before use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "archive/archive_pvt.h"
#include "archive/terms_pvt.h"
#include "qq/qq.h"

/* ---- encodings ---------------------------------------------------------------------- */

void archive__seg_encode(const struct archive_segment_info *s, uint64_t created_ns,
                         uint8_t out[SEG_REC_LEN])
{
	memset(out, 0, SEG_REC_LEN);
	le32_put(out + 0, SEG_REC_VERSION);
	le32_put(out + 4, (uint32_t)s->state);
	le32_put(out + 8, s->flags);
	le32_put(out + 12, (uint32_t)s->linktype);
	le32_put(out + 16, s->snaplen);
	le32_put(out + 20, s->frames);
	le64_put(out + 24, s->min_ns);
	le64_put(out + 32, s->max_ns);
	le64_put(out + 40, s->packets);
	le64_put(out + 48, s->wire_bytes);
	le64_put(out + 56, s->record_bytes);
	le64_put(out + 64, s->file_bytes);
	le32_put(out + 72, s->flows);
	le32_put(out + 76, s->run);
	le64_put(out + 80, created_ns);
	/* 88..95 reserved, zero */
}

/*
 * What is wrong with a segment record, or NULL: the exact size, the version,
 * the reserved bytes zero and no unknown flag (the encoder writes nothing
 * else, so an accepted record re-encodes to the same bytes).
 */
static const char *seg_damage(const MDB_val *v, char *buf, size_t len)
{
	const uint8_t *p = v->mv_data;
	if (v->mv_size != SEG_REC_LEN)
		snprintf(buf, len, "record of %zu bytes (%u expected)", v->mv_size, SEG_REC_LEN);
	else if (le32_get(p) != SEG_REC_VERSION)
		snprintf(buf, len, "record version %u (this flowscope knows %u)", le32_get(p),
		         SEG_REC_VERSION);
	else if (le32_get(p + 4) != ARCHIVE_SEG_OPEN && le32_get(p + 4) != ARCHIVE_SEG_CLOSED)
		snprintf(buf, len, "bad state %u", le32_get(p + 4));
	else if (le32_get(p + 8) & ~ARCHIVE_SEG_UNINDEXED)
		snprintf(buf, len, "unknown flags 0x%x", le32_get(p + 8));
	else if (le64_get(p + 88) != 0)
		snprintf(buf, len, "reserved record bytes are not zero");
	else
		return NULL;
	return buf;
}

int archive__seg_decode(uint64_t id, const MDB_val *v, struct archive_segment_info *s)
{
	const uint8_t *p = v->mv_data;
	char why[80];
	if (seg_damage(v, why, sizeof(why)))
		return archive__fail(ARCHIVE_E_CORRUPT, "index: segment %llu: %s",
		                     (unsigned long long)id, why);
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->state = (enum archive_segment_state)le32_get(p + 4);
	s->flags = le32_get(p + 8);
	s->linktype = (int)le32_get(p + 12);
	s->snaplen = le32_get(p + 16);
	s->frames = le32_get(p + 20);
	s->min_ns = le64_get(p + 24);
	s->max_ns = le64_get(p + 32);
	s->packets = le64_get(p + 40);
	s->wire_bytes = le64_get(p + 48);
	s->record_bytes = le64_get(p + 56);
	s->file_bytes = le64_get(p + 64);
	s->flows = le32_get(p + 72);
	s->run = le32_get(p + 76);
	s->created_ns = le64_get(p + 80);
	return 0;
}

void archive__frame_encode(const struct archive_frame_info *f, uint8_t out[FRAME_REC_LEN])
{
	le64_put(out + 0, f->offset);
	le32_put(out + 8, f->csize);
	le32_put(out + 12, f->usize);
	le64_put(out + 16, f->min_ns);
	le64_put(out + 24, f->max_ns);
	le32_put(out + 32, f->packets);
	le32_put(out + 36, f->flags);
	le64_put(out + 40, f->chunk);
}

int archive__frame_decode(const MDB_val *k, const MDB_val *v, struct archive_frame_info *f)
{
	const uint8_t *p = v->mv_data;
	if (k->mv_size != FRAME_KEY_LEN || v->mv_size != FRAME_REC_LEN)
		return archive__fail(ARCHIVE_E_CORRUPT,
		                     "index: frame record of %zu bytes (%u expected), key of %zu",
		                     v->mv_size, FRAME_REC_LEN, k->mv_size);
	if (le32_get(p + 36) & ~ARCHIVE_FRAME_UNINDEXED)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: frame record: unknown flags 0x%x",
		                     le32_get(p + 36));
	f->seg = be64_get(k->mv_data);
	f->frame = be32_get((const uint8_t *)k->mv_data + 8);
	f->offset = le64_get(p);
	f->csize = le32_get(p + 8);
	f->usize = le32_get(p + 12);
	f->min_ns = le64_get(p + 16);
	f->max_ns = le64_get(p + 24);
	f->packets = le32_get(p + 32);
	f->flags = le32_get(p + 36);
	f->chunk = le64_get(p + 40);
	return 0;
}

/* Reads the varint at *i (at most max) and steps over it; 0 or -1 (malformed). */
static int uvarint_get(const uint8_t *p, size_t len, size_t *i, uint64_t max, uint64_t *v)
{
	size_t n = archive__varint_get(p + *i, len - *i, max, v);
	*i += n;
	return n ? 0 : -1;
}

size_t archive__flow_encode(const struct archive_flow_info *f, uint8_t out[FLOW_REC_MAX])
{
	size_t n = 8;
	le64_put(out, f->first_ns);
	n += archive__varint_put(out + n, f->last_ns - f->first_ns);
	n += archive__varint_put(out + n, f->packets[0]);
	n += archive__varint_put(out + n, f->packets[1]);
	n += archive__varint_put(out + n, f->bytes[0]);
	n += archive__varint_put(out + n, f->bytes[1]);
	out[n++] = f->tcp_flags[0];
	out[n++] = f->tcp_flags[1];
	n += archive__varint_put(out + n, f->trigger);
	return n;
}

/* Where a flows key of length len has its outer VLAN id (the inner one follows, but in _V2). */
static size_t flow_key_vlan_at(size_t len)
{
	return len == FLOW_KEY_LEN_IP4 ? FLOW_KEY_LEN_IP4 - 4 : 8 + ARCHIVE_TERM_MAXLEN;
}

int archive__flow_key_len_ok(size_t len)
{
	return len == FLOW_KEY_LEN || len == FLOW_KEY_LEN_V2 || len == FLOW_KEY_LEN_IP4;
}

int archive__flow_decode(const MDB_val *k, const MDB_val *v, struct archive_flow_info *f)
{
	const uint8_t *p = v->mv_data, *kp = k->mv_data;
	uint64_t x[6] = {0}; /* read only once decoded: zeroed so that cppcheck sees it too */
	size_t i = 8, len = v->mv_size, flags_at = 0, vl = flow_key_vlan_at(k->mv_size);
	int bad = !archive__flow_key_len_ok(k->mv_size) || len < 8 + 5 + 2 + 1;
	for (int j = 0; j < 5 && !bad; j++)
		bad = uvarint_get(p, len, &i, UINT64_MAX, &x[j]) != 0;
	if (!bad && i + 2 <= len) {
		flags_at = i;
		i += 2;
		bad = uvarint_get(p, len, &i, UINT16_MAX, &x[5]) != 0 || i != len;
	} else {
		bad = 1;
	}
	/* the last timestamp within 64 bits; VLAN ids of 12 bits (the rest is reserved) */
	bad = bad || x[0] > UINT64_MAX - le64_get(p) || (kp[vl] & 0xf0) ||
	      (k->mv_size != FLOW_KEY_LEN_V2 && (kp[vl + 2] & 0xf0));
	if (bad)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: bad flow record");
	memset(f, 0, sizeof(*f));
	f->seg = be64_get(kp);
	archive__flow_key_get(k, &f->key);
	f->first_ns = le64_get(p);
	f->last_ns = f->first_ns + x[0];
	f->packets[0] = x[1];
	f->packets[1] = x[2];
	f->bytes[0] = x[3];
	f->bytes[1] = x[4];
	f->tcp_flags[0] = p[flags_at];
	f->tcp_flags[1] = p[flags_at + 1];
	f->trigger = (uint16_t)x[5];
	return 0;
}

size_t archive__flow_key_put(uint64_t seg, const struct ft_flow_key *key, int wide,
                             uint8_t out[FLOW_KEY_LEN])
{
	be64_put(out, seg);
	size_t n = 8 + ARCHIVE_TERM_MAXLEN;
	if (!wide && ft_addr_is_v4(key->a) && ft_addr_is_v4(key->b)) {
		uint8_t t[ARCHIVE_TERM_MAXLEN];
		archive_term_flow(key, t);
		memcpy(out + 8, t + 12, 4);
		memcpy(out + 12, t + 28, 9); /* address b, the ports, the protocol */
		n = FLOW_KEY_LEN_IP4 - 4;
	} else {
		archive_term_flow(key, out + 8);
	}
	out[n] = (uint8_t)(key->vlan >> 8);
	out[n + 1] = (uint8_t)key->vlan;
	out[n + 2] = (uint8_t)(key->vlan_inner >> 8);
	out[n + 3] = (uint8_t)key->vlan_inner;
	return n + 4;
}

void archive__flow_key_get(const MDB_val *k, struct ft_flow_key *key)
{
	const uint8_t *kp = k->mv_data;
	size_t vl = flow_key_vlan_at(k->mv_size), pt = vl - 5; /* the ports, then the protocol */
	memset(key, 0, sizeof(*key));
	if (k->mv_size == FLOW_KEY_LEN_IP4) {
		key->a[10] = key->a[11] = key->b[10] = key->b[11] = 0xff;
		memcpy(key->a + 12, kp + 8, 4);
		memcpy(key->b + 12, kp + 12, 4);
	} else {
		memcpy(key->a, kp + 8, 16);
		memcpy(key->b, kp + 24, 16);
	}
	key->port_a = (uint16_t)((kp[pt] << 8) | kp[pt + 1]);
	key->port_b = (uint16_t)((kp[pt + 2] << 8) | kp[pt + 3]);
	key->proto = kp[pt + 4];
	key->vlan = (uint16_t)((kp[vl] << 8) | kp[vl + 1]);
	if (k->mv_size != FLOW_KEY_LEN_V2)
		key->vlan_inner = (uint16_t)((kp[vl + 2] << 8) | kp[vl + 3]);
}

size_t archive_term_len(enum archive_term_type type)
{
	switch (type) {
	case ARCHIVE_TERM_HOST:
		return 16;
	case ARCHIVE_TERM_PORT:
	case ARCHIVE_TERM_VLAN:
	case ARCHIVE_TERM_ETHERTYPE:
		return 2;
	case ARCHIVE_TERM_PROTO:
	case ARCHIVE_TERM_UNINDEXED:
		return 1;
	case ARCHIVE_TERM_FLOW:
		return ARCHIVE_TERM_MAXLEN;
	default:
		return 0;
	}
}

void archive_term_flow(const struct ft_flow_key *key, uint8_t out[ARCHIVE_TERM_MAXLEN])
{
	memcpy(out, key->a, 16);
	memcpy(out + 16, key->b, 16);
	out[32] = (uint8_t)(key->port_a >> 8);
	out[33] = (uint8_t)key->port_a;
	out[34] = (uint8_t)(key->port_b >> 8);
	out[35] = (uint8_t)key->port_b;
	out[36] = key->proto;
}

int archive_flow_key_of(const struct ft_packet *pkt, struct ft_flow_key *key, int *dir)
{
	return ft_flow_key_from_packet(pkt, 0, key, dir); /* both VLAN tags, as modules' keys */
}

/* ---- read transactions ------------------------------------------------------------------ */

int archive_rtxn_begin(struct archive *a, struct archive_rtxn **out)
{
	struct archive_rtxn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->a = a;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return archive__lmdb_fail(rc, "begin read");
	}
	*out = t;
	return 0;
}

void archive_rtxn_end(struct archive_rtxn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

/*
 * The index's one cursor walk: from the first key >= *from in dbi, calls row on each entry
 * until row returns nonzero (returned) or sets *end (0 returned: past the range); an LMDB
 * failure is ARCHIVE_E_LMDB naming `what`.
 */
static int cursor_walk(struct archive_rtxn *t, MDB_dbi dbi, MDB_val *from,
                       int (*row)(const MDB_val *k, const MDB_val *v, void *arg, int *end),
                       void *arg, const char *what)
{
	MDB_cursor *c;
	MDB_val k = *from, v;
	int rc = mdb_cursor_open(t->txn, dbi, &c), r = 0, end = 0;
	if (rc)
		return archive__lmdb_fail(rc, what);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if ((r = row(&k, &v, arg, &end)) != 0 || end)
			break;
	mdb_cursor_close(c);
	if (r == 0 && !end && rc != MDB_NOTFOUND && rc != 0)
		r = archive__lmdb_fail(rc, what);
	return r;
}

struct seg_walk {
	uint64_t from_ns, to_ns;
	int (*fn)(const struct archive_segment_info *s, void *arg);
	void *arg;
};

static int segments_row(const MDB_val *k, const MDB_val *v, void *arg, int *end)
{
	struct seg_walk *w = arg;
	struct archive_segment_info s;
	int r;
	(void)end;
	if (k->mv_size != SEG_KEY_LEN)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: bad segment key");
	if ((r = archive__seg_decode(be64_get(k->mv_data), v, &s)) != 0)
		return r;
	if ((w->from_ns || w->to_ns) &&
	    (s.packets == 0 || s.max_ns < w->from_ns || (w->to_ns && s.min_ns >= w->to_ns)))
		return 0;
	return w->fn(&s, w->arg);
}

int archive_segments(struct archive_rtxn *t, uint64_t from_ns, uint64_t to_ns,
                     int (*fn)(const struct archive_segment_info *s, void *arg), void *arg)
{
	uint8_t kb[8] = {0};
	MDB_val k = {.mv_size = 8, .mv_data = kb};
	struct seg_walk w = {.from_ns = from_ns, .to_ns = to_ns, .fn = fn, .arg = arg};
	return cursor_walk(t, t->a->db_segments, &k, segments_row, &w, "walk segments");
}

int archive_segment_get(struct archive_rtxn *t, uint64_t id, struct archive_segment_info *out)
{
	uint8_t kb[SEG_KEY_LEN];
	be64_put(kb, id);
	MDB_val k = {.mv_size = SEG_KEY_LEN, .mv_data = kb}, v;
	int rc = mdb_get(t->txn, t->a->db_segments, &k, &v);
	if (rc == MDB_NOTFOUND)
		return ARCHIVE_E_NOTFOUND;
	if (rc)
		return archive__lmdb_fail(rc, "read segment");
	return archive__seg_decode(id, &v, out);
}

struct seg_rows {
	uint64_t seg;
	int (*frame)(const struct archive_frame_info *f, void *arg);
	int (*flow)(const struct archive_flow_info *f, void *arg);
	void *arg;
};

static int frames_row(const MDB_val *k, const MDB_val *v, void *arg, int *end)
{
	struct seg_rows *w = arg;
	struct archive_frame_info f;
	int r = archive__frame_decode(k, v, &f);
	if (r)
		return r;
	if (f.seg != w->seg) {
		*end = 1;
		return 0;
	}
	return w->frame(&f, w->arg);
}

int archive_frames(struct archive_rtxn *t, uint64_t seg,
                   int (*fn)(const struct archive_frame_info *f, void *arg), void *arg)
{
	uint8_t kb[FRAME_KEY_LEN] = {0};
	be64_put(kb, seg);
	MDB_val k = {.mv_size = FRAME_KEY_LEN, .mv_data = kb};
	struct seg_rows w = {.seg = seg, .frame = fn, .arg = arg};
	return cursor_walk(t, t->a->db_frames, &k, frames_row, &w, "walk frames");
}

int archive_frame_get(struct archive_rtxn *t, uint64_t seg, uint32_t frame,
                      struct archive_frame_info *out)
{
	uint8_t kb[FRAME_KEY_LEN];
	be64_put(kb, seg);
	be32_put(kb + 8, frame);
	MDB_val k = {.mv_size = FRAME_KEY_LEN, .mv_data = kb}, v;
	int rc = mdb_get(t->txn, t->a->db_frames, &k, &v);
	if (rc == MDB_NOTFOUND)
		return ARCHIVE_E_NOTFOUND;
	if (rc)
		return archive__lmdb_fail(rc, "read frame");
	return archive__frame_decode(&k, &v, out);
}

static int u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return (a > b) - (a < b);
}

struct postings_out {
	uint64_t **p;
	size_t *n, cap;
	uint64_t seg;
};

static int postings_add(uint32_t frame, void *arg)
{
	struct postings_out *o = arg;
	if (qq_grow((void **)o->p, &o->cap, *o->n + 1, sizeof(**o->p)) != 0)
		return -ENOMEM;
	(*o->p)[(*o->n)++] = o->seg << 32 | frame;
	return 0;
}

/* Increments a big-endian number of len bytes; 0 when it wrapped around. */
static int be_inc(uint8_t *b, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++b[i] != 0)
			return 1;
	return 0;
}

/* One partition: every (term, seg) key with term in [lo, hi] and seg in [seg_lo, seg_hi]. */
static int postings_part(struct archive_rtxn *t, MDB_cursor *c, uint32_t part, uint8_t type,
                         const uint8_t *lo, const uint8_t *hi, size_t len, uint64_t seg_lo,
                         uint64_t seg_hi, struct postings_out *o)
{
	uint8_t kb[TERMS_KEY_MAX];
	size_t klen = 5 + len + 8;
	be32_put(kb, part);
	kb[4] = type;
	memcpy(kb + 5, lo, len);
	be64_put(kb + 5 + len, seg_lo);
	MDB_val k = {.mv_size = klen, .mv_data = kb}, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		const uint8_t *p = k.mv_data;
		if (k.mv_size != klen || be32_get(p) != part || p[4] != type ||
		    memcmp(p + 5, hi, len) > 0)
			return 0; /* past the range (other lengths are other types) */
		uint64_t seg = be64_get(p + 5 + len);
		if (seg < seg_lo || seg > seg_hi) {
			/* this term's keys outside the segments: jump to the next position */
			memcpy(kb + 5, p + 5, len);
			if (seg > seg_hi && !be_inc(kb + 5, len))
				return 0;
			be64_put(kb + 5 + len, seg_lo);
			k = (MDB_val){.mv_size = klen, .mv_data = kb};
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
			continue;
		}
		o->seg = seg;
		int e = archive__plist_decode(v.mv_data, v.mv_size, postings_add, o);
		if (e == -ENOMEM)
			return e;
		if (e)
			return archive__fail(ARCHIVE_E_CORRUPT,
			                     "index: segment %llu: bad posting list",
			                     (unsigned long long)seg);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	(void)t;
	return rc == MDB_NOTFOUND ? 0 : archive__lmdb_fail(rc, "read terms");
}

int archive_term_postings(struct archive_rtxn *t, enum archive_term_type type, const uint8_t *lo,
                          const uint8_t *hi, uint64_t seg_lo, uint64_t seg_hi, uint64_t **out,
                          size_t *n)
{
	size_t len = archive_term_len(type);
	if (len == 0 || len > TERMS_TERM_MAXLEN || seg_lo > seg_hi || seg_hi > UINT32_MAX)
		return -EINVAL;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->a->db_terms, &c);
	if (rc)
		return archive__lmdb_fail(rc, "read terms");
	struct postings_out o = {.p = out, .n = n, .cap = *n};
	size_t start = *n;
	int r = 0;
	for (uint32_t part = archive__terms_part(seg_lo);
	     r == 0 && part <= archive__terms_part(seg_hi); part++) {
		uint64_t plo = (uint64_t)part * TERMS_PART_SEGS, phi = plo + TERMS_PART_SEGS - 1;
		r = postings_part(t, c, part, (uint8_t)type, lo, hi, len,
		                  seg_lo > plo ? seg_lo : plo, seg_hi < phi ? seg_hi : phi, &o);
	}
	mdb_cursor_close(c);
	if (r || *n - start < 2)
		return r;
	/* a range of terms gives each segment's frames once per term: sort, unique */
	uint64_t *p = *out + start;
	size_t m = *n - start, w = 0;
	qsort(p, m, sizeof(*p), u64_cmp);
	for (size_t j = 0; j < m; j++)
		if (w == 0 || p[w - 1] != p[j])
			p[w++] = p[j];
	*n = start + w;
	return 0;
}

static int flows_row(const MDB_val *k, const MDB_val *v, void *arg, int *end)
{
	struct seg_rows *w = arg;
	struct archive_flow_info f;
	int r = archive__flow_decode(k, v, &f);
	if (r)
		return r;
	if (f.seg != w->seg) {
		*end = 1;
		return 0;
	}
	return w->flow(&f, w->arg);
}

int archive_flows(struct archive_rtxn *t, uint64_t seg,
                  int (*fn)(const struct archive_flow_info *f, void *arg), void *arg)
{
	uint8_t kb[SEG_KEY_LEN];
	be64_put(kb, seg); /* sorts before every key of the segment, whatever its length */
	MDB_val k = {.mv_size = SEG_KEY_LEN, .mv_data = kb};
	struct seg_rows w = {.seg = seg, .flow = fn, .arg = arg};
	return cursor_walk(t, t->a->db_flows, &k, flows_row, &w, "walk flows");
}

static int summary_add(const struct archive_segment_info *s, void *arg)
{
	struct archive_summary *sum = arg;
	sum->segments++;
	sum->segments_open += s->state == ARCHIVE_SEG_OPEN;
	if (s->packets && (sum->min_ns == 0 || s->min_ns < sum->min_ns))
		sum->min_ns = s->min_ns;
	if (s->max_ns > sum->max_ns)
		sum->max_ns = s->max_ns;
	sum->packets += s->packets;
	sum->wire_bytes += s->wire_bytes;
	sum->record_bytes += s->record_bytes;
	sum->file_bytes += s->file_bytes;
	sum->frames += s->frames;
	sum->flow_records += s->flows;
	return 0;
}

int archive_summary(struct archive_rtxn *t, struct archive_summary *out)
{
	memset(out, 0, sizeof(*out));
	int r = archive_segments(t, 0, 0, summary_add, out);
	if (r)
		return r;
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(t->a->env, &info) == 0 && mdb_env_stat(t->a->env, &st) == 0)
		out->index_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	/* pages holding data: the two meta pages, the main tree, each database */
	MDB_dbi dbs[] = {t->a->db_meta, t->a->db_segments, t->a->db_frames, t->a->db_terms,
	                 t->a->db_flows};
	uint64_t pages = 2;
	if (mdb_stat(t->txn, 1 /* MAIN_DBI */, &st) == 0)
		pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	for (size_t j = 0; j < sizeof(dbs) / sizeof(dbs[0]); j++)
		if (mdb_stat(t->txn, dbs[j], &st) == 0)
			pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	out->index_used = pages * st.ms_psize;
	return 0;
}

int archive__meta_put(struct archive *a, MDB_val *k, MDB_val *v, const char *what)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	if ((rc = mdb_put(txn, a->db_meta, k, v, 0)) != 0) {
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, what);
	}
	rc = mdb_txn_commit(txn);
	return rc ? archive__lmdb_fail(rc, "commit") : 0;
}

#define RUN_REPORT_KEY "last_run"

int archive_set_run_report(struct archive *a, const char *text)
{
	MDB_val k = {.mv_size = strlen(RUN_REPORT_KEY), .mv_data = RUN_REPORT_KEY};
	MDB_val v = {.mv_size = strlen(text), .mv_data = (void *)text};
	return archive__meta_put(a, &k, &v, "write run report");
}

int archive_run_report(struct archive_rtxn *t, char **text)
{
	MDB_val k = {.mv_size = strlen(RUN_REPORT_KEY), .mv_data = RUN_REPORT_KEY}, v;
	*text = NULL;
	int rc = mdb_get(t->txn, t->a->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return archive__lmdb_fail(rc, "read run report");
	if (!(*text = malloc(v.mv_size + 1)))
		return -ENOMEM;
	memcpy(*text, v.mv_data, v.mv_size);
	(*text)[v.mv_size] = '\0';
	return 0;
}

/* ---- trigger names --------------------------------------------------------------------- */

/* meta keys: "trigger:NAME" -> id (u16 LE); "trigger#" id (u16 BE) -> NAME; "next_trigger" */
static MDB_val trig_id_key(char *buf, size_t len, uint16_t id)
{
	memcpy(buf, "trigger#", 8);
	buf[8] = (char)(id >> 8);
	buf[9] = (char)id;
	(void)len;
	return (MDB_val){.mv_size = 10, .mv_data = buf};
}

static int trigger_create_locked(struct archive *a, MDB_txn *txn, const MDB_val *nk,
                                 const char *name, uint16_t *id)
{
	MDB_val ck = {.mv_size = 12, .mv_data = "next_trigger"}, v;
	uint16_t next = 1;
	int rc = mdb_get(txn, a->db_meta, &ck, &v);
	if (rc == 0 && v.mv_size == 2)
		next = (uint16_t)(((const uint8_t *)v.mv_data)[0] | ((const uint8_t *)v.mv_data)[1]
		                                                        << 8);
	else if (rc && rc != MDB_NOTFOUND)
		return archive__lmdb_fail(rc, "read next_trigger");
	if (next == 0)
		return archive__fail(-ENOSPC, "index: no trigger id left");
	uint8_t idb[2] = {(uint8_t)next, (uint8_t)(next >> 8)}, nb[2];
	uint16_t after = (uint16_t)(next + 1);
	nb[0] = (uint8_t)after;
	nb[1] = (uint8_t)(after >> 8);
	char kb[10];
	MDB_val idv = {.mv_size = 2, .mv_data = idb}, nv = {.mv_size = 2, .mv_data = nb};
	MDB_val ik = trig_id_key(kb, sizeof(kb), next);
	MDB_val namev = {.mv_size = strlen(name), .mv_data = (void *)name};
	if ((rc = mdb_put(txn, a->db_meta, (MDB_val *)nk, &idv, 0)) ||
	    (rc = mdb_put(txn, a->db_meta, &ik, &namev, 0)) ||
	    (rc = mdb_put(txn, a->db_meta, &ck, &nv, 0)))
		return archive__lmdb_fail(rc, "write trigger");
	*id = next;
	return 0;
}

int archive_trigger_id(struct archive *a, const char *name, uint16_t *id)
{
	char kb[512];
	int n = snprintf(kb, sizeof(kb), "trigger:%s", name);
	if (n < 0 || (size_t)n >= sizeof(kb))
		n = (int)sizeof(kb) - 1; /* very long names share their first 500 bytes */
	MDB_val k = {.mv_size = (size_t)n, .mv_data = kb}, v;
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	rc = mdb_get(txn, a->db_meta, &k, &v);
	int r = 0;
	if (rc == 0 && v.mv_size == 2)
		*id = (uint16_t)(((const uint8_t *)v.mv_data)[0] | ((const uint8_t *)v.mv_data)[1]
		                                                       << 8);
	else if (rc == MDB_NOTFOUND)
		r = trigger_create_locked(a, txn, &k, name, id);
	else
		r = archive__lmdb_fail(rc, "read trigger");
	if (r) {
		mdb_txn_abort(txn);
		return r;
	}
	rc = mdb_txn_commit(txn);
	return rc ? archive__lmdb_fail(rc, "commit") : 0;
}

int archive_trigger_name(struct archive_rtxn *t, uint16_t id, char *buf, size_t len)
{
	char kb[10];
	MDB_val k = trig_id_key(kb, sizeof(kb), id), v;
	if (len)
		buf[0] = '\0';
	int rc = mdb_get(t->txn, t->a->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return archive__lmdb_fail(rc, "read trigger name");
	snprintf(buf, len, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
	return 0;
}

/* ---- deleting ------------------------------------------------------------------------------ */

#define DROP_BATCH 4096

/*
 * Deletes the keys of dbi that start with prefix[0..plen) and satisfy keep_fn == 0
 * (NULL: all): collected with a cursor in batches, then deleted by key, so
 * nothing depends on where a cursor stands after a delete.
 */
static int drop_keys(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                     int (*skip)(const MDB_val *k, void *arg), void *arg)
{
	struct {
		uint8_t b[64];
		size_t len;
	} *batch = malloc(DROP_BATCH * sizeof(*batch));
	if (!batch)
		return ENOMEM;
	uint8_t from[64];
	size_t flen = plen;
	memcpy(from, prefix, plen);
	int rc = 0;
	for (;;) {
		MDB_cursor *c;
		if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
			break;
		MDB_val k = {.mv_size = flen, .mv_data = from}, v;
		size_t n = 0;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && n < DROP_BATCH;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size < plen || k.mv_size > sizeof(batch[0].b) ||
			    memcmp(k.mv_data, prefix, plen) != 0) {
				rc = MDB_NOTFOUND;
				break;
			}
			memcpy(from, k.mv_data, k.mv_size); /* resume after the last one seen */
			flen = k.mv_size;
			if (skip && skip(&k, arg))
				continue;
			memcpy(batch[n].b, k.mv_data, k.mv_size);
			batch[n++].len = k.mv_size;
		}
		mdb_cursor_close(c);
		int more = rc == 0; /* the batch filled up before the end */
		if (rc && rc != MDB_NOTFOUND)
			break;
		for (size_t j = 0; j < n; j++) {
			MDB_val dk = {.mv_size = batch[j].len, .mv_data = batch[j].b};
			if ((rc = mdb_del(txn, dbi, &dk, NULL)) != 0 && rc != MDB_NOTFOUND)
				goto out;
		}
		rc = 0;
		if (!more)
			break;
		/* continue at the key after `from`: append a zero byte (the next key in order) */
		if (flen == sizeof(from))
			break;
		from[flen++] = 0;
	}
out:
	free(batch);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int archive__terms_drop_part(struct archive *a, MDB_txn *txn, uint32_t part)
{
	uint8_t p[4];
	be32_put(p, part);
	int rc = drop_keys(txn, a->db_terms, p, 4, NULL, NULL);
	return rc ? archive__lmdb_fail(rc, "delete terms") : 0;
}

/* A terms key of another segment than *arg (its last 8 bytes). */
static int other_segment(const MDB_val *k, void *arg)
{
	return k->mv_size < 13 ||
	       be64_get((const uint8_t *)k->mv_data + k->mv_size - 8) != *(uint64_t *)arg;
}

int archive__segment_drop(struct archive *a, MDB_txn *txn, uint64_t id, unsigned what)
{
	uint8_t p[8], pk[4];
	be64_put(p, id);
	MDB_val k = {.mv_size = 8, .mv_data = p};
	int rc = what & SEG_DROP_RECORD ? mdb_del(txn, a->db_segments, &k, NULL) : 0;
	if (rc && rc != MDB_NOTFOUND)
		return archive__lmdb_fail(rc, "delete segment");
	if ((rc = drop_keys(txn, a->db_frames, p, 8, NULL, NULL)) != 0 ||
	    (rc = drop_keys(txn, a->db_flows, p, 8, NULL, NULL)) != 0)
		return archive__lmdb_fail(rc, "delete segment entries");
	if (!(what & SEG_DROP_TERMS))
		return 0;
	be32_put(pk, archive__terms_part(id)); /* its posting lists: in its partition */
	rc = drop_keys(txn, a->db_terms, pk, 4, other_segment, &id);
	return rc ? archive__lmdb_fail(rc, "delete terms") : 0;
}
