/*
 * Retention: the oldest closed segments go when the archive is over its disk
 * budget, when their data is too old, or when the filesystem runs out of
 * room (see archive_retention_run in archive.h); with pins, the segments
 * holding triggered flows last (pins.c).
 *
 * Order: by each segment's newest packet, so with several dumpers whose
 * segments overlap in time the oldest data always goes first.  The index
 * entries of the dropped segments are deleted in one LMDB transaction that
 * also puts their ids on the drop list (meta "dropped:" keys), then the files
 * are unlinked, then the ids leave the list: a crash in between leaves files
 * that the index itself names as dropped, and recovery (or index rebuild)
 * finishes the drop.  Nothing is ever removed on a guess: a file the index
 * neither lists nor names as dropped is not retention's.
 * A query that planned with a dropped segment finds its file gone and leaves
 * it out; a query that already opened the file reads it whole (an unlinked
 * file lives on while open).  Posting lists are per partition of
 * TERMS_PART_SEGS segments and go with the last segment of their partition;
 * until then readers ignore the lists of segments that are not in the index.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_pvt.h"
#include "qq/qq.h"

struct seg_list {
	struct archive *a;
	uint64_t open_size;
	struct archive_segment_info *v;
	size_t n, cap;
	uint64_t usage;
};

/* The bytes a segment's file takes as the index knows it. */
static uint64_t seg_disk_bytes(const struct archive_segment_info *s)
{
	uint64_t b = s->file_bytes;
	if (s->state == ARCHIVE_SEG_CLOSED)
		b += 8 + (uint64_t)s->frames * SEEK_ENTRY_LEN + SEEK_FOOTER_LEN;
	return b;
}

static int list_add(const struct archive_segment_info *s, void *arg)
{
	struct seg_list *l = arg;
	uint64_t b = seg_disk_bytes(s);
	if (s->state != ARCHIVE_SEG_CLOSED) {
		/* being written: the file may be well past the last commit */
		char path[4096];
		struct stat st;
		archive__seg_path(l->a, s->id, ARCHIVE_SEG_OPEN, path, sizeof(path));
		if (stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 > b)
			b = (uint64_t)st.st_blocks * 512;
		b = b > l->open_size ? b : l->open_size; /* it will grow to that */
		l->usage += b;
		return 0;
	}
	l->usage += b;
	if (qq_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)) != 0)
		return -ENOMEM;
	l->v[l->n++] = *s;
	return 0;
}

static uint64_t index_file_bytes(const struct archive *a)
{
	char path[4096];
	struct stat st;
	uint64_t b = 0;
	const char *files[] = {"data.mdb", "lock.mdb"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/index/%s", a->dir, files[i]);
		if (stat(path, &st) == 0)
			b += (uint64_t)st.st_blocks * 512; /* what it takes, not its sparse size */
	}
	return b;
}

/* Closed segments (oldest data first) and the archive's usage. */
static int scan_segments(struct archive *a, uint64_t open_size, struct seg_list *l)
{
	struct archive_rtxn *t;
	memset(l, 0, sizeof(*l));
	l->a = a;
	l->open_size = open_size;
	int r = archive_rtxn_begin(a, &t);
	if (r)
		return r;
	r = archive_segments(t, 0, 0, list_add, l);
	archive_rtxn_end(t);
	l->usage += index_file_bytes(a);
	return r;
}

int archive_disk_usage(struct archive *a, uint64_t *bytes)
{
	struct seg_list l;
	int r = scan_segments(a, 0, &l);
	free(l.v);
	*bytes = l.usage;
	return r;
}

static int oldest_first(const void *x, const void *y)
{
	const struct archive_segment_info *a = x, *b = y;
	if (a->max_ns != b->max_ns)
		return (a->max_ns > b->max_ns) - (a->max_ns < b->max_ns);
	return (a->id > b->id) - (a->id < b->id);
}

static uint64_t fs_free(const struct archive *a)
{
	struct statvfs v;
	if (statvfs(a->dir, &v) != 0)
		return UINT64_MAX; /* unknown: do not drop for it */
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Deletes the posting lists of every partition below `upto` that has no segment left. */
static int drop_empty_parts(struct archive *a, MDB_txn *txn, const struct seg_list *l, size_t k)
{
	MDB_val key = {.mv_size = 12, .mv_data = "next_segment"}, v;
	uint64_t next = 1;
	if (mdb_get(txn, a->db_meta, &key, &v) == 0 && v.mv_size == 8)
		next = le64_get(v.mv_data);
	for (size_t i = 0; i < k; i++) {
		uint32_t part = archive__terms_part(l->v[i].id);
		uint64_t lo = (uint64_t)part * TERMS_PART_SEGS, hi = lo + TERMS_PART_SEGS;
		if (next < hi)
			continue; /* new segments may still come into it */
		int taken = 0;
		for (size_t j = 0; j < i && !taken; j++) /* done already */
			taken = archive__terms_part(l->v[j].id) == part;
		if (taken)
			continue;
		MDB_cursor *c;
		uint8_t kb[8];
		be64_put(kb, lo);
		MDB_val sk = {.mv_size = 8, .mv_data = kb};
		int rc = mdb_cursor_open(txn, a->db_segments, &c);
		if (rc)
			return archive__lmdb_fail(rc, "read segments");
		rc = mdb_cursor_get(c, &sk, &v, MDB_SET_RANGE);
		int empty = rc == MDB_NOTFOUND ||
		            (rc == 0 && sk.mv_size == 8 && be64_get(sk.mv_data) >= hi);
		mdb_cursor_close(c);
		if (rc && rc != MDB_NOTFOUND)
			return archive__lmdb_fail(rc, "read segments");
		int r;
		if (empty && (r = archive__terms_drop_part(a, txn, part)) != 0)
			return r;
	}
	return 0;
}

/* ---- the drop list ------------------------------------------------------------------------ */

#define DROPPED_PREFIX "dropped:"
#define DROPPED_PREFIX_LEN 8u
#define DROPPED_KEY_LEN (DROPPED_PREFIX_LEN + 8u)

static MDB_val dropped_key(uint8_t kb[DROPPED_KEY_LEN], uint64_t id)
{
	memcpy(kb, DROPPED_PREFIX, DROPPED_PREFIX_LEN);
	be64_put(kb + DROPPED_PREFIX_LEN, id);
	return (MDB_val){.mv_size = DROPPED_KEY_LEN, .mv_data = kb};
}

/* Puts id on the drop list in txn (the one that deletes its entries). */
static int dropped_put(struct archive *a, MDB_txn *txn, uint64_t id)
{
	uint8_t kb[DROPPED_KEY_LEN];
	MDB_val k = dropped_key(kb, id), v = {.mv_size = 0, .mv_data = kb};
	int rc = mdb_put(txn, a->db_meta, &k, &v, 0);
	return rc ? archive__lmdb_fail(rc, "write the drop list") : 0;
}

int archive__dropped_contains(struct archive *a, MDB_txn *txn, uint64_t id)
{
	MDB_txn *own = NULL;
	int rc = txn ? 0 : mdb_txn_begin(a->env, NULL, MDB_RDONLY, &own);
	if (rc)
		return archive__lmdb_fail(rc, "begin read");
	uint8_t kb[DROPPED_KEY_LEN];
	MDB_val k = dropped_key(kb, id), v;
	rc = mdb_get(txn ? txn : own, a->db_meta, &k, &v);
	if (own)
		mdb_txn_abort(own);
	if (rc && rc != MDB_NOTFOUND)
		return archive__lmdb_fail(rc, "read the drop list");
	return rc == 0;
}

int archive__dropped_list(struct archive *a, uint64_t **ids, size_t *n)
{
	MDB_txn *txn;
	MDB_cursor *c;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin read");
	if ((rc = mdb_cursor_open(txn, a->db_meta, &c)) != 0) {
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, "read the drop list");
	}
	MDB_val k = {.mv_size = DROPPED_PREFIX_LEN, .mv_data = DROPPED_PREFIX}, v;
	int r = 0;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && r == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < DROPPED_PREFIX_LEN ||
		    memcmp(k.mv_data, DROPPED_PREFIX, DROPPED_PREFIX_LEN) != 0)
			break;
		if (k.mv_size != DROPPED_KEY_LEN)
			continue; /* not ours to read */
		if (*n == cap &&
		    (r = archive__grow((void **)ids, &cap, *n + 1, sizeof(**ids))) != 0)
			break;
		(*ids)[(*n)++] = be64_get((const uint8_t *)k.mv_data + DROPPED_PREFIX_LEN);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (r == 0 && rc && rc != MDB_NOTFOUND)
		r = archive__lmdb_fail(rc, "read the drop list");
	if (r) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return r;
}

/* Makes the unlinks durable before the drop list forgets them. */
static void sync_segments_dir(const struct archive *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/segments", a->dir);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int archive__dropped_finish(struct archive *a, const uint64_t *ids, size_t n, size_t *removed)
{
	MDB_txn *txn;
	size_t gone = 0;
	*removed = 0;
	if (n == 0)
		return 0;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn), r = 0;
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		archive__seg_path(a, ids[i], ARCHIVE_SEG_CLOSED, path, sizeof(path));
		if (unlink(path) == 0)
			(*removed)++;
		else if (errno != ENOENT) {
			r = archive__fail(-errno, "%s: cannot remove it: %s", path,
			                  strerror(errno));
			continue; /* it stays on the list: the next recovery tries again */
		}
		uint8_t kb[DROPPED_KEY_LEN];
		MDB_val k = dropped_key(kb, ids[i]);
		if ((rc = mdb_del(txn, a->db_meta, &k, NULL)) != 0 && rc != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return archive__lmdb_fail(rc, "write the drop list");
		}
		gone++;
	}
	if (gone)
		sync_segments_dir(a);
	if ((rc = mdb_txn_commit(txn)) != 0)
		return archive__lmdb_fail(rc, "commit");
	return r;
}

/*
 * Drops the first k segments of l: their entries go and their ids go on the
 * drop list in one transaction; then their files, then the list entries.
 */
static int drop_segments(struct archive *a, const struct seg_list *l, size_t k)
{
	MDB_txn *txn;
	uint64_t *ids = malloc(k * sizeof(*ids));
	if (!ids)
		return archive__fail(-ENOMEM, "out of memory");
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn), r = 0;
	if (rc) {
		free(ids);
		return archive__lmdb_fail(rc, "begin write");
	}
	for (size_t i = 0; r == 0 && i < k; i++) {
		ids[i] = l->v[i].id;
		if ((r = archive__segment_drop(a, txn, ids[i], SEG_DROP_RECORD)) == 0)
			r = dropped_put(a, txn, ids[i]);
	}
	if (r == 0)
		r = drop_empty_parts(a, txn, l, k);
	if (r == 0 && (rc = mdb_txn_commit(txn)) != 0) /* the txn is freed either way */
		r = archive__lmdb_fail(rc, "commit");
	else if (r)
		mdb_txn_abort(txn);
	size_t removed;
	if (r == 0) /* a file that cannot go stays on the list: recovery tries again */
		r = archive__dropped_finish(a, ids, k, &removed);
	free(ids);
	return r;
}

/* ---- pins: which closed segments hold a triggered flow ---------------------------------- */

/*
 * A keeper's memory of the segments found to hold a triggered flow (a record's trigger is
 * never taken back, so a pinned segment stays pinned; one without may be marked later, so
 * that answer is not kept: such a segment goes in the pass that asked anyway).
 */
struct pin_cache {
	uint64_t *id;
	size_t n, cap;
};

/* 1 if closed segment id holds a triggered flow, 0 if not, or ARCHIVE_E_*. */
static int pinned(struct archive *a, struct pin_cache *c, uint64_t id)
{
	for (size_t i = 0; c && i < c->n; i++)
		if (c->id[i] == id)
			return 1;
	int r = archive__seg_pinned(a, id);
	if (r == 1 && c && qq_grow((void **)&c->id, &c->cap, c->n + 1, sizeof(*c->id)) == 0)
		c->id[c->n++] = id; /* else asked again next time */
	return r;
}

/* The dropped segments leave the cache. */
static void pins_forget(struct pin_cache *c, const struct seg_list *l, size_t k)
{
	size_t kept = 0;
	for (size_t i = 0; c && i < c->n; i++) {
		size_t j = 0;
		while (j < k && l->v[j].id != c->id[i])
			j++;
		if (j == k)
			c->id[kept++] = c->id[i];
	}
	if (c)
		c->n = kept;
}

/* ---- choosing what goes ------------------------------------------------------------------- */

struct choice {
	const struct archive_retention *p;
	uint64_t now_ns, usage, free_now;
	uint8_t *take, *pin; /* per segment of the list */
	size_t k;            /* segments taken */
};

/* Whether segment s must go now: over the budget, short of free space, or (unpinned) old. */
static int must_go(const struct choice *ch, const struct archive_segment_info *s, int is_pinned)
{
	const struct archive_retention *p = ch->p;
	int over = p->max_bytes && ch->usage > p->max_bytes;
	int full = p->min_free && ch->free_now < p->min_free;
	int old = !is_pinned && p->max_age_ns && ch->now_ns > p->max_age_ns &&
	          s->max_ns < ch->now_ns - p->max_age_ns;
	return over || full || old;
}

static void take(struct choice *ch, const struct seg_list *l, size_t i,
                 struct archive_retention_stats *st)
{
	uint64_t b = seg_disk_bytes(&l->v[i]);
	ch->usage -= b < ch->usage ? b : ch->usage;
	ch->free_now += b;
	st->bytes += b;
	st->pinned += ch->pin[i];
	ch->take[i] = 1;
	ch->k++;
}

/*
 * Oldest first, the segments that must go; with pins, those holding triggered flows are
 * passed over, then taken (oldest first) only while room is still short.  0 or ARCHIVE_E_*.
 */
static int choose(struct archive *a, struct pin_cache *c, const struct seg_list *l,
                  struct choice *ch, struct archive_retention_stats *st)
{
	size_t i;
	for (i = 0; i < l->n && must_go(ch, &l->v[i], 0); i++) {
		int r = ch->p->pin_triggered ? pinned(a, c, l->v[i].id) : 0;
		if (r < 0)
			return r;
		if (r)
			ch->pin[i] = 1;
		else
			take(ch, l, i, st);
	}
	for (i = 0; i < l->n; i++)
		if (ch->pin[i]) {
			if (!must_go(ch, &l->v[i], 1))
				break;
			take(ch, l, i, st);
		}
	return 0;
}

/* The taken segments to the front of the list (their order kept, and the rest's). */
static int taken_first(struct seg_list *l, const struct choice *ch)
{
	struct archive_segment_info *v = malloc(l->n * sizeof(*v));
	if (!v)
		return archive__fail(-ENOMEM, "out of memory");
	size_t j = 0;
	for (int taken = 1; taken >= 0; taken--)
		for (size_t i = 0; i < l->n; i++)
			if (ch->take[i] == taken)
				v[j++] = l->v[i];
	free(l->v);
	l->v = v;
	return 0;
}

static int retention_run(struct archive *a, const struct archive_retention *p, struct pin_cache *c,
                         struct archive_retention_stats *st)
{
	memset(st, 0, sizeof(*st));
	struct seg_list l;
	int r = scan_segments(a, p->open_size, &l);
	struct choice ch = {.p = p, .now_ns = qq_clock_ns(CLOCK_REALTIME), .usage = l.usage};
	ch.free_now = p->min_free ? fs_free(a) : UINT64_MAX;
	ch.take = calloc(l.n + 1, 1);
	ch.pin = calloc(l.n + 1, 1);
	if (r == 0 && (!ch.take || !ch.pin))
		r = archive__fail(-ENOMEM, "out of memory");
	if (r == 0 && l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), oldest_first);
	if (r == 0)
		r = choose(a, c, &l, &ch, st);
	size_t k = ch.k;
	if (r == 0 && k > 0 && (r = taken_first(&l, &ch)) == 0) {
		if ((r = drop_segments(a, &l, k)) == 0) {
			st->segments = k;
			pins_forget(c, &l, k);
		}
	}
	if (r == 0) {
		st->usage = ch.usage;
		st->oldest_ns = k < l.n ? l.v[k].min_ns : 0;
		for (size_t i = k; i < l.n; i++)
			st->oldest_ns =
			    l.v[i].min_ns < st->oldest_ns ? l.v[i].min_ns : st->oldest_ns;
	} else {
		st->bytes = st->pinned = 0;
	}
	free(ch.take);
	free(ch.pin);
	free(l.v);
	return r;
}

int archive_retention_run(struct archive *a, const struct archive_retention *p,
                          struct archive_retention_stats *st)
{
	struct archive_retention_stats local;
	return retention_run(a, p, NULL, st ? st : &local);
}

/* ---- the keeper: passes of several threads, one at a time ---------------------------------- */

struct archive_retention_keeper {
	struct archive *a;
	uint64_t max_bytes, max_age_ns, segment_size;
	int pin_triggered;
	pthread_mutex_t lock; /* one pass at a time; guards everything below */
	struct pin_cache pins;
	uint64_t last_due; /* monotonic ns of the clock's last pass */
	int failed;        /* a pass has failed (once set, stays) */
	struct archive_retention_totals t;
};

int archive_retention_keeper_create(struct archive *a, uint64_t max_bytes, uint64_t max_age_ns,
                                    int pin_triggered, uint64_t segment_size,
                                    struct archive_retention_keeper **out)
{
	struct archive_retention_keeper *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->a = a;
	k->max_bytes = max_bytes;
	k->max_age_ns = max_age_ns;
	k->pin_triggered = pin_triggered;
	k->segment_size = segment_size ? segment_size : ARCHIVE_SEGMENT_SIZE;
	pthread_mutex_init(&k->lock, NULL);
	*out = k;
	return 0;
}

void archive_retention_keeper_destroy(struct archive_retention_keeper *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k->pins.id);
	free(k);
}

int archive_retention_keeper_pass(struct archive_retention_keeper *k, int make_room, int *first_err)
{
	struct archive_retention p = {.max_bytes = k->max_bytes,
	                              .max_age_ns = k->max_age_ns,
	                              .min_free =
	                                  make_room ? 2 * k->segment_size + ARCHIVE_RESUME_FREE : 0,
	                              .open_size = k->segment_size,
	                              .pin_triggered = k->pin_triggered};
	struct archive_retention_stats rs;
	pthread_mutex_lock(&k->lock);
	int r = retention_run(k->a, &p, &k->pins, &rs);
	k->t.runs++;
	k->t.err = r;
	if (first_err)
		*first_err = r && !k->failed;
	if (r) {
		k->failed = 1;
	} else {
		k->t.segments += rs.segments;
		k->t.bytes += rs.bytes;
		k->t.pinned += rs.pinned;
		k->t.usage = rs.usage;
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

int archive_retention_keeper_due(struct archive_retention_keeper *k, uint64_t now_ns, int disk_full)
{
	pthread_mutex_lock(&k->lock);
	int due = disk_full || now_ns - k->last_due >= ARCHIVE_RETENTION_PERIOD_NS;
	if (due)
		k->last_due = now_ns;
	pthread_mutex_unlock(&k->lock);
	return due;
}

void archive_retention_keeper_totals(struct archive_retention_keeper *k,
                                     struct archive_retention_totals *out)
{
	pthread_mutex_lock(&k->lock);
	*out = k->t;
	pthread_mutex_unlock(&k->lock);
}
