/*
 * The index file checked before LMDB trusts it.
 *
 * LMDB maps data.mdb and follows page numbers and node offsets without
 * bounds checks beyond "page number below the snapshot's last page": a file
 * cut short dies with SIGBUS when a page past its end is touched, and a page
 * overwritten with garbage sends mdb_cursor_get() outside the map (SIGSEGV).
 * So before LMDB reads anything:
 *   - the header (both meta pages) is read with pread(): magic, version, page
 *     size, map size and last page against the file's size;
 *   - then, inside a transaction (so that a writer cannot reuse the pages
 *     meanwhile), every page reachable from the snapshot's meta is checked
 *     in place: its own page number, its kind, its free-space bounds, every
 *     node inside the page, keys in order, overflow runs and child pages
 *     within the snapshot, each page reached once, no live page on the free
 *     list.  It reads each page's header and node headers only: a few ms per
 *     MB of index.
 * The layouts are LMDB 0.9's (mdb.c: MDB_page, MDB_node, MDB_meta, MDB_db,
 * native byte order, 64-bit page numbers); lmdbcheck knows no more of LMDB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"

#define MDB_MAGIC_ 0xBEEFC0DEu
#define MDB_DATA_VERSION_ 1u
#define PAGEHDRSZ_ 16u
#define NODESZ_ 8u
#define P_BRANCH_ 0x01u
#define P_LEAF_ 0x02u
#define P_OVERFLOW_ 0x04u
#define P_META_ 0x08u
#define F_BIGDATA_ 0x01u
#define F_SUBDATA_ 0x02u
#define F_DUPDATA_ 0x04u
#define DB_INTEGERKEY_ 0x08u
#define DB_LEN_ 48u        /* MDB_db: pad u32, flags u16, depth u16, 4 counts, root */
#define META_DBS_ 40u      /* offset of mm_dbs[FREE, MAIN] in a meta page */
#define META_LAST_PG_ 136u /* mm_last_pg */
#define META_TXNID_ 144u   /* mm_txnid */
#define P_INVALID_ (~0ull)
#define MAX_DEPTH_ 32u

_Static_assert(sizeof(size_t) == 8, "lmdbcheck knows LMDB's layout with 64-bit page numbers");

static uint16_t u16_at(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t u64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static int damaged(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int damaged(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return ARCHIVE_E_CORRUPT;
}

/* ---- the header -------------------------------------------------------------------------- */

/* One meta page (n: 0 or 1) of a file of `size` bytes with pages of psize. */
static int meta_check(const uint8_t *m, unsigned n, uint64_t psize, uint64_t size, char *why,
                      size_t len)
{
	if (u32_at(m + PAGEHDRSZ_) != MDB_MAGIC_ || !(u16_at(m + 10) & P_META_))
		return damaged(why, len, "header page %u is not an LMDB header", n);
	if (u32_at(m + PAGEHDRSZ_ + 4) != MDB_DATA_VERSION_)
		return damaged(why, len, "header page %u: LMDB data version %u, not %u", n,
		               u32_at(m + PAGEHDRSZ_ + 4), MDB_DATA_VERSION_);
	if (u32_at(m + META_DBS_) != psize)
		return damaged(why, len, "header pages disagree on the page size");
	uint64_t last = u64_at(m + META_LAST_PG_), mapsize = u64_at(m + PAGEHDRSZ_ + 16);
	if (last < 1 || last >= size / psize)
		return damaged(why, len,
		               "header page %u says the file has %llu pages, it holds %llu bytes "
		               "(cut short)",
		               n, (unsigned long long)last + 1, (unsigned long long)size);
	if (mapsize < (last + 1) * psize)
		return damaged(why, len, "header page %u: map size %llu below the data", n,
		               (unsigned long long)mapsize);
	for (unsigned d = 0; d < 2; d++) {
		uint64_t root = u64_at(m + META_DBS_ + d * DB_LEN_ + 40);
		if (root != P_INVALID_ && (root < 2 || root > last))
			return damaged(why, len, "header page %u: a root page %llu out of range", n,
			               (unsigned long long)root);
	}
	return 0;
}

int archive__lmdb_check_header(const char *path, char *why, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	uint8_t m0[256], m1[256];
	int r = 0;
	if (fstat(fd, &st) != 0)
		r = -errno;
	else if (st.st_size == 0)
		r = damaged(why, len, "the index file is empty (0 bytes)");
	else if (pread(fd, m0, sizeof(m0), 0) != (ssize_t)sizeof(m0))
		r = damaged(why, len, "the index file holds only %lld bytes",
		            (long long)st.st_size);
	uint64_t psize = r ? 0 : u32_at(m0 + META_DBS_);
	if (r == 0 && (psize < 256 || psize > 65536 || (psize & (psize - 1)) ||
	               u32_at(m0 + PAGEHDRSZ_) != MDB_MAGIC_))
		r = damaged(why, len, "header page 0 is not an LMDB header");
	else if (r == 0 && (uint64_t)st.st_size < 2 * psize)
		r = damaged(why, len,
		            "the index file holds %lld bytes, less than its two header pages",
		            (long long)st.st_size);
	else if (r == 0 && pread(fd, m1, sizeof(m1), (off_t)psize) != (ssize_t)sizeof(m1))
		r = -EIO;
	close(fd);
	for (unsigned n = 0; r == 0 && n < 2; n++)
		r = meta_check(n ? m1 : m0, n, psize, (uint64_t)st.st_size, why, len);
	return r;
}

/* ---- the pages of a snapshot ------------------------------------------------------------- */

struct walk {
	const uint8_t *map;
	uint64_t psize, last;
	uint8_t *live, *freed; /* a bit per page */
	char *why;
	size_t len;
};

static int bit_get(const uint8_t *b, uint64_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

static void bit_set(uint8_t *b, uint64_t i)
{
	b[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Takes page pg as live: in range, reached once, not on the free list. */
static int claim(struct walk *w, uint64_t pg, uint64_t from)
{
	if (pg < 2 || pg > w->last)
		return damaged(w->why, w->len, "page %llu points to page %llu, outside the file",
		               (unsigned long long)from, (unsigned long long)pg);
	if (bit_get(w->live, pg) || bit_get(w->freed, pg))
		return damaged(w->why, w->len, "page %llu is reached twice (from page %llu)",
		               (unsigned long long)pg, (unsigned long long)from);
	bit_set(w->live, pg);
	return 0;
}

/* An overflow run holding dsize bytes of a value, at pg. */
static int overflow_check(struct walk *w, uint64_t pg, uint64_t from, uint64_t dsize)
{
	int r = claim(w, pg, from);
	if (r)
		return r;
	const uint8_t *p = w->map + pg * w->psize;
	uint64_t n = u32_at(p + 12);
	if (u64_at(p) != pg || !(u16_at(p + 10) & P_OVERFLOW_) || n == 0 || n > w->last - pg + 1 ||
	    dsize > n * w->psize - PAGEHDRSZ_)
		return damaged(w->why, w->len,
		               "page %llu: not the overflow run page %llu points to",
		               (unsigned long long)pg, (unsigned long long)from);
	for (uint64_t i = 1; i < n; i++)
		if ((r = claim(w, pg + i, pg)) != 0)
			return r;
	return 0;
}

static int walk_db(struct walk *w, const uint8_t *db, int is_free, uint64_t from);

/* A free-list value: a count, then that many page numbers, each marked freed. */
static int freelist_value(struct walk *w, const uint8_t *v, uint64_t dsize, uint64_t pg)
{
	uint64_t n = dsize >= 8 ? u64_at(v) : UINT64_MAX;
	if (dsize % 8 || n > dsize / 8 - 1)
		return damaged(w->why, w->len,
		               "page %llu: a free-list entry of %llu bytes is garbled",
		               (unsigned long long)pg, (unsigned long long)dsize);
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t f = u64_at(v + i * 8);
		if (f < 2 || f > w->last || bit_get(w->freed, f))
			return damaged(w->why, w->len,
			               "page %llu: the free list names page %llu twice "
			               "or out of range",
			               (unsigned long long)pg, (unsigned long long)f);
		bit_set(w->freed, f);
	}
	return 0;
}

/* The value of a leaf node (key at k, ks bytes). */
static int leaf_value(struct walk *w, uint64_t pg, const uint8_t *node, uint32_t off, int is_free,
                      int is_main)
{
	uint16_t fl = u16_at(node + 4), ks = u16_at(node + 6);
	uint64_t dsize = u16_at(node) | (uint64_t)u16_at(node + 2) << 16;
	const uint8_t *v = node + NODESZ_ + ks;
	if (fl & F_DUPDATA_)
		return damaged(w->why, w->len,
		               "page %llu: a duplicate-key node (flowscope uses none)",
		               (unsigned long long)pg);
	if (fl & F_BIGDATA_) {
		if (off + NODESZ_ + ks + 8 > w->psize)
			return damaged(w->why, w->len, "page %llu: a node runs past the page",
			               (unsigned long long)pg);
		uint64_t ov = u64_at(v);
		int r = overflow_check(w, ov, pg, dsize);
		if (r == 0 && is_free)
			r = freelist_value(w, w->map + ov * w->psize + PAGEHDRSZ_, dsize, pg);
		return r;
	}
	if (off + NODESZ_ + ks + dsize > w->psize)
		return damaged(w->why, w->len, "page %llu: a node runs past the page",
		               (unsigned long long)pg);
	if (is_free)
		return freelist_value(w, v, dsize, pg);
	if (fl & F_SUBDATA_)
		return is_main && dsize == DB_LEN_
		           ? walk_db(w, v, 0, pg)
		           : damaged(w->why, w->len, "page %llu: a garbled database record",
		                     (unsigned long long)pg);
	return 0;
}

/* Keys a < b in the database's order. */
static int key_before(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, int intkey)
{
	if (intkey && al == 8 && bl == 8)
		return u64_at(a) < u64_at(b);
	int c = memcmp(a, b, al < bl ? al : bl);
	return c < 0 || (c == 0 && al < bl);
}

static int walk_page(struct walk *w, uint64_t pg, unsigned level, unsigned depth, unsigned dbflags,
                     int is_free, int is_main)
{
	const uint8_t *p = w->map + pg * w->psize;
	uint16_t fl = u16_at(p + 10) & (P_BRANCH_ | P_LEAF_ | P_OVERFLOW_ | P_META_ | 0x60u);
	uint32_t lower = u16_at(p + 12), upper = u16_at(p + 14);
	unsigned want = level + 1 < depth ? P_BRANCH_ : P_LEAF_;
	if (u64_at(p) != pg || fl != want)
		return damaged(w->why, w->len,
		               "page %llu: its header (number %llu, kind 0x%x) is "
		               "garbled",
		               (unsigned long long)pg, (unsigned long long)u64_at(p), fl);
	if (lower < PAGEHDRSZ_ + 2 || lower > upper || upper > w->psize || (lower & 1))
		return damaged(w->why, w->len, "page %llu: its free-space bounds are garbled",
		               (unsigned long long)pg);
	const uint8_t *prev = NULL;
	size_t prevlen = 0;
	for (uint32_t i = 0; i < (lower - PAGEHDRSZ_) / 2; i++) {
		uint32_t off = u16_at(p + PAGEHDRSZ_ + 2 * i);
		const uint8_t *node = p + off;
		if (off < upper || off + NODESZ_ > w->psize ||
		    off + NODESZ_ + u16_at(node + 6) > w->psize)
			return damaged(w->why, w->len, "page %llu: node %u lies outside the page",
			               (unsigned long long)pg, i);
		const uint8_t *k = node + NODESZ_;
		size_t ks = u16_at(node + 6);
		int keyed = want == P_LEAF_ || i > 0; /* a branch's first key is implicit */
		if (keyed && prev && !key_before(prev, prevlen, k, ks, dbflags & DB_INTEGERKEY_))
			return damaged(w->why, w->len, "page %llu: keys out of order at node %u",
			               (unsigned long long)pg, i);
		if (keyed) {
			prev = k;
			prevlen = ks;
		}
		int r;
		if (want == P_LEAF_) {
			r = leaf_value(w, pg, node, off, is_free, is_main);
		} else {
			uint64_t child = u16_at(node) | (uint64_t)u16_at(node + 2) << 16 |
			                 (uint64_t)u16_at(node + 4) << 32;
			r = claim(w, child, pg);
			if (r == 0)
				r = walk_page(w, child, level + 1, depth, dbflags, is_free,
				              is_main);
		}
		if (r)
			return r;
	}
	return 0;
}

/* One B-tree, described by the MDB_db record at db. */
static int walk_db(struct walk *w, const uint8_t *db, int is_free, uint64_t from)
{
	unsigned depth = u16_at(db + 6), flags = u16_at(db + 4);
	uint64_t root = u64_at(db + 40);
	if (root == P_INVALID_)
		return depth == 0 ? 0
		                  : damaged(w->why, w->len, "page %llu: an empty tree of depth %u",
		                            (unsigned long long)from, depth);
	if (depth == 0 || depth > MAX_DEPTH_)
		return damaged(w->why, w->len, "page %llu: a tree of depth %u",
		               (unsigned long long)from, depth);
	int r = claim(w, root, from);
	return r ? r : walk_page(w, root, 0, depth, flags, is_free, from == 0 && !is_free);
}

/* The pages of the snapshot of meta m, mapped at map (size bytes). */
static int check_snapshot(struct walk *w, const uint8_t *m, uint64_t size)
{
	w->last = u64_at(m + META_LAST_PG_);
	if ((w->last + 1) * w->psize > size)
		return damaged(w->why, w->len, "the index file is shorter than its header says");
	size_t bits = (size_t)(w->last / 8 + 1);
	w->live = calloc(1, bits);
	w->freed = calloc(1, bits);
	int r = w->live && w->freed ? 0 : -ENOMEM;
	if (r == 0)
		r = walk_db(w, m + META_DBS_, 1, 0); /* the free list first: it marks freed pages */
	if (r == 0)
		r = walk_db(w, m + META_DBS_ + DB_LEN_, 0, 0);
	free(w->live);
	free(w->freed);
	return r;
}

int archive__lmdb_check_pages(MDB_env *env, MDB_txn *txn, char *why, size_t len)
{
	MDB_stat st;
	int fd;
	struct stat fs;
	if (mdb_env_stat(env, &st) != 0 || mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &fs) != 0 ||
	    (uint64_t)fs.st_size < 2u * st.ms_psize)
		return damaged(why, len, "cannot inspect the index file");
	/* a map of our own (LMDB does not tell where its map is): the same page cache */
	void *map = mmap(NULL, (size_t)fs.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	struct walk w = {.map = map, .psize = st.ms_psize, .why = why, .len = len};
	/* the snapshot's meta: the newest at or before the transaction */
	const uint8_t *m0 = w.map, *m1 = w.map + w.psize;
	uint64_t id = mdb_txn_id(txn), t0 = u64_at(m0 + META_TXNID_), t1 = u64_at(m1 + META_TXNID_);
	int r =
	    check_snapshot(&w, (t1 > t0 && t1 <= id) || t0 > id ? m1 : m0, (uint64_t)fs.st_size);
	munmap(map, (size_t)fs.st_size);
	return r;
}
