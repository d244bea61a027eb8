/*
 * The LMDB index: value encodings and the read side (segments, frames, term
 * lookups, flows, summary).
 *
 * Every key starts with the segment id (big-endian), so everything about one
 * segment is one contiguous key range in each database: a query walks the
 * segments of its time range and does one B-tree lookup (or one short range
 * scan, for a net prefix or port range) per term per segment, and retention
 * deletes a segment's entries as whole ranges.  Readers validate every value's
 * size and version before using it.
 */
#include <errno.h>
#include <stdlib.h>

#include "archive/archive_pvt.h"

struct archive_rtxn {
	struct archive *a;
	MDB_txn *txn;
};

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
	/* 76..79 reserved, zero */
	le64_put(out + 80, created_ns);
	/* 88..95 reserved, zero */
}

int archive__seg_decode(uint64_t id, const MDB_val *v, struct archive_segment_info *s)
{
	const uint8_t *p = v->mv_data;
	if (v->mv_size < SEG_REC_LEN || le32_get(p) != SEG_REC_VERSION)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: segment %llu: bad record",
		                     (unsigned long long)id);
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
	if (s->state != ARCHIVE_SEG_OPEN && s->state != ARCHIVE_SEG_CLOSED)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: segment %llu: bad state %u",
		                     (unsigned long long)id, (unsigned)s->state);
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
}

int archive__frame_decode(const MDB_val *k, const MDB_val *v, struct archive_frame_info *f)
{
	const uint8_t *p = v->mv_data;
	if (k->mv_size != FRAME_KEY_LEN || v->mv_size < FRAME_REC_LEN)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: bad frame record");
	f->seg = be64_get(k->mv_data);
	f->frame = be32_get((const uint8_t *)k->mv_data + 8);
	f->offset = le64_get(p);
	f->csize = le32_get(p + 8);
	f->usize = le32_get(p + 12);
	f->min_ns = le64_get(p + 16);
	f->max_ns = le64_get(p + 24);
	f->packets = le32_get(p + 32);
	f->flags = le32_get(p + 36);
	return 0;
}

void archive__flow_encode(const struct archive_flow_info *f, uint8_t out[FLOW_REC_LEN])
{
	memset(out, 0, FLOW_REC_LEN);
	le64_put(out + 0, f->first_ns);
	le64_put(out + 8, f->last_ns);
	le64_put(out + 16, f->packets[0]);
	le64_put(out + 24, f->packets[1]);
	le64_put(out + 32, f->bytes[0]);
	le64_put(out + 40, f->bytes[1]);
	out[48] = f->tcp_flags[0];
	out[49] = f->tcp_flags[1];
	out[50] = (uint8_t)f->trigger;
	out[51] = (uint8_t)(f->trigger >> 8);
	/* 52..55 reserved, zero */
}

int archive__flow_decode(const MDB_val *k, const MDB_val *v, struct archive_flow_info *f)
{
	const uint8_t *p = v->mv_data, *kp = k->mv_data;
	if (k->mv_size != FLOW_KEY_LEN || v->mv_size < FLOW_REC_LEN)
		return archive__fail(ARCHIVE_E_CORRUPT, "index: bad flow record");
	memset(f, 0, sizeof(*f));
	f->seg = be64_get(kp);
	memcpy(f->key.a, kp + 8, 16);
	memcpy(f->key.b, kp + 24, 16);
	f->key.port_a = (uint16_t)((kp[40] << 8) | kp[41]);
	f->key.port_b = (uint16_t)((kp[42] << 8) | kp[43]);
	f->key.proto = kp[44];
	f->key.vlan = (uint16_t)((kp[45] << 8) | kp[46]);
	f->first_ns = le64_get(p);
	f->last_ns = le64_get(p + 8);
	f->packets[0] = le64_get(p + 16);
	f->packets[1] = le64_get(p + 24);
	f->bytes[0] = le64_get(p + 32);
	f->bytes[1] = le64_get(p + 40);
	f->tcp_flags[0] = p[48];
	f->tcp_flags[1] = p[49];
	f->trigger = (uint16_t)(p[50] | (p[51] << 8));
	return 0;
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

/* Opens a cursor positioned at the first key >= key; returns rc of the get. */
static int cursor_seek(struct archive_rtxn *t, MDB_dbi dbi, MDB_cursor **c, MDB_val *k, MDB_val *v)
{
	int rc = mdb_cursor_open(t->txn, dbi, c);
	if (rc)
		return rc;
	return mdb_cursor_get(*c, k, v, MDB_SET_RANGE);
}

int archive_segments(struct archive_rtxn *t, uint64_t from_ns, uint64_t to_ns,
                     int (*fn)(const struct archive_segment_info *s, void *arg), void *arg)
{
	MDB_cursor *c = NULL;
	uint8_t kb[8] = {0};
	MDB_val k = {.mv_size = 8, .mv_data = kb}, v;
	int rc = cursor_seek(t, t->a->db_segments, &c, &k, &v), r = 0;

	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct archive_segment_info s;
		if (k.mv_size != SEG_KEY_LEN) {
			r = archive__fail(ARCHIVE_E_CORRUPT, "index: bad segment key");
			break;
		}
		if ((r = archive__seg_decode(be64_get(k.mv_data), &v, &s)) != 0)
			break;
		if ((from_ns || to_ns) &&
		    (s.packets == 0 || s.max_ns < from_ns || (to_ns && s.min_ns >= to_ns)))
			continue;
		if ((r = fn(&s, arg)) != 0)
			break;
	}
	if (c)
		mdb_cursor_close(c);
	if (r == 0 && rc != MDB_NOTFOUND && rc != 0)
		r = archive__lmdb_fail(rc, "walk segments");
	return r;
}

int archive_frames(struct archive_rtxn *t, uint64_t seg,
                   int (*fn)(const struct archive_frame_info *f, void *arg), void *arg)
{
	MDB_cursor *c = NULL;
	uint8_t kb[FRAME_KEY_LEN] = {0};
	be64_put(kb, seg);
	MDB_val k = {.mv_size = FRAME_KEY_LEN, .mv_data = kb}, v;
	int rc = cursor_seek(t, t->a->db_frames, &c, &k, &v), r = 0;

	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct archive_frame_info f;
		if ((r = archive__frame_decode(&k, &v, &f)) != 0 || f.seg != seg)
			break;
		if ((r = fn(&f, arg)) != 0)
			break;
	}
	if (c)
		mdb_cursor_close(c);
	if (r == 0 && rc != MDB_NOTFOUND && rc != 0)
		r = archive__lmdb_fail(rc, "walk frames");
	return r;
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

static int u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return (a > b) - (a < b);
}

static int frames_reserve(uint32_t **frames, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 64;
	while (nc < need)
		nc *= 2;
	uint32_t *nf = realloc(*frames, nc * sizeof(**frames));
	if (!nf)
		return ENOMEM;
	*frames = nf;
	*cap = nc;
	return 0;
}

/*
 * Appends the dup values (frame numbers) of the cursor's current key.  LMDB
 * stores a key with a single value as a plain node, for which
 * MDB_GET_MULTIPLE returns nothing: that case reads the one value directly.
 */
static int collect_dups(MDB_cursor *c, uint32_t **frames, size_t *n, size_t *cap)
{
	MDB_val k = {0}, v = {0};
	size_t count = 0;
	int rc = mdb_cursor_count(c, &count);
	if (rc)
		return rc;
	if (count == 1) {
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT)) != 0)
			return rc;
		if (v.mv_size != 4)
			return MDB_CORRUPTED;
		if ((rc = frames_reserve(frames, cap, *n + 1)) != 0)
			return rc;
		(*frames)[(*n)++] = be32_get(v.mv_data);
		return 0;
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_GET_MULTIPLE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_MULTIPLE)) {
		size_t cnt = v.mv_size / 4;
		int e = frames_reserve(frames, cap, *n + cnt);
		if (e)
			return e;
		for (size_t i = 0; i < cnt; i++)
			(*frames)[(*n)++] = be32_get((const uint8_t *)v.mv_data + 4 * i);
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Sorts and removes duplicates from frames[start..n). */
static void sort_unique(uint32_t *frames, size_t *n)
{
	if (*n == 0)
		return;
	qsort(frames, *n, sizeof(*frames), u32_cmp);
	size_t w = 0;
	for (size_t i = 0; i < *n; i++)
		if (w == 0 || frames[w - 1] != frames[i])
			frames[w++] = frames[i];
	*n = w;
}

int archive_term_frames(struct archive_rtxn *t, uint64_t seg, enum archive_term_type type,
                        const uint8_t *lo, const uint8_t *hi, uint32_t **frames, size_t *n)
{
	size_t len = archive_term_len(type), cap = *n;
	if (len == 0)
		return -EINVAL;
	uint8_t kb[TERM_KEY_MAX], hik[TERM_KEY_MAX];
	be64_put(kb, seg);
	kb[8] = (uint8_t)type;
	memcpy(kb + 9, lo, len);
	memcpy(hik, kb, 9);
	memcpy(hik + 9, hi, len);
	MDB_val k = {.mv_size = 9 + len, .mv_data = kb}, v;
	MDB_cursor *c = NULL;
	int rc = cursor_seek(t, t->a->db_terms, &c, &k, &v);

	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP)) {
		if (k.mv_size != 9 + len || memcmp(k.mv_data, hik, 9 + len) > 0)
			break;
		if ((rc = collect_dups(c, frames, n, &cap)) != 0)
			break;
	}
	if (c)
		mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc == ENOMEM ? -ENOMEM : archive__lmdb_fail(rc, "read terms");
	sort_unique(*frames, n);
	return 0;
}

int archive_flows(struct archive_rtxn *t, uint64_t seg,
                  int (*fn)(const struct archive_flow_info *f, void *arg), void *arg)
{
	uint8_t kb[FLOW_KEY_LEN] = {0};
	be64_put(kb, seg);
	MDB_val k = {.mv_size = FLOW_KEY_LEN, .mv_data = kb}, v;
	MDB_cursor *c = NULL;
	int rc = cursor_seek(t, t->a->db_flows, &c, &k, &v), r = 0;

	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct archive_flow_info f;
		if ((r = archive__flow_decode(&k, &v, &f)) != 0 || f.seg != seg)
			break;
		if ((r = fn(&f, arg)) != 0)
			break;
	}
	if (c)
		mdb_cursor_close(c);
	if (r == 0 && rc != MDB_NOTFOUND && rc != 0)
		r = archive__lmdb_fail(rc, "walk flows");
	return r;
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
	return 0;
}

#define RUN_REPORT_KEY "last_run"

int archive_set_run_report(struct archive *a, const char *text)
{
	MDB_txn *txn;
	MDB_val k = {.mv_size = strlen(RUN_REPORT_KEY), .mv_data = RUN_REPORT_KEY};
	MDB_val v = {.mv_size = strlen(text), .mv_data = (void *)text};
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	if ((rc = mdb_put(txn, a->db_meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, "write run report");
	}
	rc = mdb_txn_commit(txn);
	return rc ? archive__lmdb_fail(rc, "commit") : 0;
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
