/*
 * Retention: the oldest closed segments go when the archive is over its disk
 * budget, when their data is too old, or when the filesystem runs out of
 * room (see archive_retention_run in archive.h).
 *
 * Order: by each segment's newest packet, so with several dumpers whose
 * segments overlap in time the oldest data always goes first.  The index
 * entries of the dropped segments are deleted in one LMDB transaction, then
 * the files are unlinked: a crash in between leaves files the index does not
 * know, which recovery removes (they are older than every indexed segment).
 * A query that planned with a dropped segment finds its file gone and leaves
 * it out; a query that already opened the file reads it whole (an unlinked
 * file lives on while open).  Posting lists are per partition of
 * TERMS_PART_SEGS segments and go with the last segment of their partition;
 * until then readers ignore the lists of segments that are not in the index.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_pvt.h"

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
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		struct archive_segment_info *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
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

int archive_retention_run(struct archive *a, const struct archive_retention *p,
                          struct archive_retention_stats *st)
{
	struct archive_retention_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct seg_list l;
	int r = scan_segments(a, p->open_size, &l);
	if (r) {
		free(l.v);
		return r;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), oldest_first);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	uint64_t usage = l.usage, free_now = p->min_free ? fs_free(a) : UINT64_MAX;
	size_t k = 0;
	while (k < l.n) {
		const struct archive_segment_info *s = &l.v[k];
		int over = p->max_bytes && usage > p->max_bytes;
		int old =
		    p->max_age_ns && now_ns > p->max_age_ns && s->max_ns < now_ns - p->max_age_ns;
		int full = p->min_free && free_now < p->min_free;
		if (!over && !old && !full)
			break;
		uint64_t b = seg_disk_bytes(s);
		usage -= b < usage ? b : usage;
		free_now += b;
		st->bytes += b;
		k++;
	}
	if (k > 0) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
		if (rc)
			r = archive__lmdb_fail(rc, "begin write");
		for (size_t i = 0; r == 0 && i < k; i++)
			r = archive__segment_drop(a, txn, l.v[i].id, SEG_DROP_RECORD);
		if (r == 0)
			r = drop_empty_parts(a, txn, &l, k);
		if (r == 0 && (rc = mdb_txn_commit(txn)) != 0)
			r = archive__lmdb_fail(rc, "commit");
		else if (r && !rc) /* begun (a failed begin leaves no txn) */
			mdb_txn_abort(txn);
		for (size_t i = 0; r == 0 && i < k; i++) {
			char path[4096];
			archive__seg_path(a, l.v[i].id, ARCHIVE_SEG_CLOSED, path, sizeof(path));
			unlink(path); /* gone already: fine (recovery) */
		}
		if (r == 0)
			st->segments = k;
	}
	if (r == 0) {
		st->usage = usage;
		st->oldest_ns = k < l.n ? l.v[k].min_ns : 0;
		for (size_t i = k; i < l.n; i++)
			st->oldest_ns =
			    l.v[i].min_ns < st->oldest_ns ? l.v[i].min_ns : st->oldest_ns;
	} else {
		st->bytes = 0;
	}
	free(l.v);
	return r;
}
