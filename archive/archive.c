/*
 * Opening and creating archives: the FORMAT marker, the writer's LOCK, the
 * LMDB environment and its named databases; error names and details.
 *
 * An archive is recognised by its FORMAT file, written last when creating so
 * that a half-created directory is never mistaken for an archive.  Writers
 * hold an exclusive flock() on LOCK for as long as the archive is open, so
 * two recorders can never interleave segments; readers take no lock of ours
 * (LMDB's reader table in index/lock.mdb keeps their snapshots consistent).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"

#define FORMAT_FILE "FORMAT"
#define FORMAT_MAGIC "flowscope-archive"

static _Thread_local char tls_errmsg[512];

const char *archive_errmsg(void)
{
	return tls_errmsg;
}

int archive__fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tls_errmsg, sizeof(tls_errmsg), fmt, ap);
	va_end(ap);
	return err;
}

int archive__lmdb_fail(int rc, const char *what)
{
	return archive__fail(ARCHIVE_E_LMDB, "index: %s: %s", what, mdb_strerror(rc));
}

const char *archive_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case ARCHIVE_E_NOTARCH:
		return "not a flowscope archive";
	case ARCHIVE_E_VERSION:
		return "archive format version not supported";
	case ARCHIVE_E_LOCKED:
		return "archive is being written by another process";
	case ARCHIVE_E_LMDB:
		return "index (LMDB) error";
	case ARCHIVE_E_ZSTD:
		return "compression error";
	case ARCHIVE_E_CORRUPT:
		return "archive content is damaged";
	case ARCHIVE_E_NOTFOUND:
		return "not found in the archive";
	case ARCHIVE_E_TOOBIG:
		return "packet larger than the archive accepts";
	case ARCHIVE_E_TIME:
		return "packet time after 2106-02-07T06:28:15Z, the last a pcap record holds";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown archive error";
	}
}

const char *archive_dir(const struct archive *a)
{
	return a->dir;
}

char *archive__seg_path(const struct archive *a, uint64_t id, enum archive_segment_state state,
                        char *buf, size_t len)
{
	snprintf(buf, len, "%s/segments/%012llu.pcap.zst%s", a->dir, (unsigned long long)id,
	         state == ARCHIVE_SEG_OPEN ? ".open" : "");
	return buf;
}

/* ---- FORMAT marker ---------------------------------------------------------------- */

static int format_read(const char *dir)
{
	char path[4096], line[128];
	snprintf(path, sizeof(path), "%s/%s", dir, FORMAT_FILE);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT
		           ? archive__fail(ARCHIVE_E_NOTARCH,
		                           "%s: not a flowscope archive (no FORMAT file)", dir)
		           : archive__fail(-errno, "%s: %s", path, strerror(errno));
	unsigned version = 0;
	int ok = fgets(line, sizeof(line), f) && sscanf(line, FORMAT_MAGIC " %u", &version) == 1;
	fclose(f);
	if (!ok)
		return archive__fail(ARCHIVE_E_NOTARCH,
		                     "%s: not a flowscope archive (bad FORMAT file)", dir);
	if (version != ARCHIVE_FORMAT_VERSION)
		return archive__fail(
		    ARCHIVE_E_VERSION,
		    "%s: archive format version %u, this flowscope reads version %u", dir, version,
		    ARCHIVE_FORMAT_VERSION);
	return 0;
}

static int format_write(const char *dir)
{
	char path[4096], tmp[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, FORMAT_FILE);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, FORMAT_FILE);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return archive__fail(-errno, "%s: %s", tmp, strerror(errno));
	fprintf(f, FORMAT_MAGIC " %u\n", ARCHIVE_FORMAT_VERSION);
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	int e = errno;
	if (fclose(f) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad || rename(tmp, path) != 0)
		return archive__fail(-(bad ? e : errno), "%s: %s", path, strerror(bad ? e : errno));
	return 0;
}

/* 1 if dir is empty (only . and ..), 0 if not, negative errno. */
static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* Creates the layout in an absent or empty directory. */
static int archive_create_layout(const char *dir)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return archive__fail(-errno, "%s: cannot create: %s", dir, strerror(errno));
	int empty = dir_is_empty(dir);
	if (empty < 0)
		return archive__fail(empty, "%s: %s", dir, strerror(-empty));
	if (!empty)
		return archive__fail(
		    ARCHIVE_E_NOTARCH,
		    "%s: not a flowscope archive and not empty: refusing to use it", dir);
	char path[4096];
	const char *subs[] = {"segments", "index"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return archive__fail(-errno, "%s: %s", path, strerror(errno));
	}
	return 0;
}

/* ---- LMDB ---------------------------------------------------------------------------- */

static int env_open(struct archive *a)
{
	char path[4096];
	int rc = mdb_env_create(&a->env);
	if (rc)
		return archive__lmdb_fail(rc, "create environment");
	mdb_env_set_maxdbs(a->env, 8);
	mdb_env_set_mapsize(a->env, ARCHIVE_MAPSIZE);
	mdb_env_set_maxreaders(a->env, 256);
	snprintf(path, sizeof(path), "%s/%s", a->dir, a->index_sub ? a->index_sub : "index");
	unsigned flags = MDB_NOTLS | (a->writable ? 0 : MDB_RDONLY);
	rc = mdb_env_open(a->env, path, flags, 0644);
	if (rc)
		return archive__fail(rc == ENOENT ? ARCHIVE_E_NOTARCH : ARCHIVE_E_LMDB,
		                     "%s: cannot open the index: %s", path, mdb_strerror(rc));
	return 0;
}

static int dbs_open(struct archive *a)
{
	MDB_txn *txn;
	unsigned create = a->writable ? MDB_CREATE : 0;
	int rc = mdb_txn_begin(a->env, NULL, a->writable ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin");
	if ((rc = mdb_dbi_open(txn, "meta", create, &a->db_meta)) ||
	    (rc = mdb_dbi_open(txn, "segments", create, &a->db_segments)) ||
	    (rc = mdb_dbi_open(txn, "frames", create, &a->db_frames)) ||
	    (rc = mdb_dbi_open(txn, "terms", create, &a->db_terms)) ||
	    (rc = mdb_dbi_open(txn, "flows", create, &a->db_flows))) {
		mdb_txn_abort(txn);
		return archive__fail(rc == MDB_NOTFOUND ? ARCHIVE_E_NOTARCH : ARCHIVE_E_LMDB,
		                     "%s: index databases missing or unreadable: %s", a->dir,
		                     mdb_strerror(rc));
	}
	rc = mdb_txn_commit(txn);
	return rc ? archive__lmdb_fail(rc, "commit") : 0;
}

int archive__next_segment_id(struct archive *a, MDB_txn *txn, uint64_t *id)
{
	MDB_val k = {.mv_size = 12, .mv_data = "next_segment"}, v;
	uint64_t next = 1;
	int rc = mdb_get(txn, a->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		next = le64_get(v.mv_data);
	else if (rc != MDB_NOTFOUND && rc != 0)
		return archive__lmdb_fail(rc, "read next_segment");
	if (next > UINT32_MAX) /* the index packs seg << 32 | frame: 136 years at 1 per second */
		return archive__fail(-ENOSPC, "index: segment ids exhausted");
	uint8_t buf[8];
	le64_put(buf, next + 1);
	v.mv_size = 8;
	v.mv_data = buf;
	rc = mdb_put(txn, a->db_meta, &k, &v, 0);
	if (rc)
		return archive__lmdb_fail(rc, "write next_segment");
	*id = next;
	return 0;
}

int archive_new_run(struct archive *a, uint32_t *run)
{
	MDB_val k = {.mv_size = 8, .mv_data = "next_run"}, v;
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin write");
	uint32_t next = 1;
	rc = mdb_get(txn, a->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == 4)
		next = le32_get(v.mv_data);
	else if (rc != MDB_NOTFOUND && rc != 0) {
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, "read next_run");
	}
	uint8_t buf[4];
	le32_put(buf, next + 1);
	v = (MDB_val){.mv_size = 4, .mv_data = buf};
	if ((rc = mdb_put(txn, a->db_meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return archive__lmdb_fail(rc, "write next_run");
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return archive__lmdb_fail(rc, "commit");
	*run = next;
	return 0;
}

/* ---- open / close ----------------------------------------------------------------------- */

static int take_lock(struct archive *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", a->dir);
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (a->lock_fd < 0)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK
		           ? archive__fail(ARCHIVE_E_LOCKED,
		                           "%s: another flowscope process is writing this archive",
		                           a->dir)
		           : archive__fail(-errno, "%s: %s", path, strerror(errno));
	/* who writes: readers of another version refuse while this writer runs */
	char who[128];
	int n =
	    snprintf(who, sizeof(who), "flowscope %s pid %d\n", FLOWSCOPE_VERSION, (int)getpid());
	if (ftruncate(a->lock_fd, 0) != 0 || pwrite(a->lock_fd, who, (size_t)n, 0) != n)
		return archive__fail(-errno, "%s: %s", path, strerror(errno));
	return 0;
}

/*
 * A reader checks whether a writer holds the archive, and if so, that it is
 * this version: the index may be mid-way through changes an older or newer
 * flowscope does not expect.  0 or ARCHIVE_E_VERSION.
 */
static int check_writer(const struct archive *a)
{
	char path[4096], who[128] = "", ver[64];
	snprintf(path, sizeof(path), "%s/LOCK", a->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no LOCK: never written, or read-only media */
	int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	ssize_t n = busy ? pread(fd, who, sizeof(who) - 1, 0) : 0;
	close(fd);
	if (n <= 0)
		return 0;
	who[n] = '\0';
	if (sscanf(who, "flowscope %63s", ver) == 1 && strcmp(ver, FLOWSCOPE_VERSION) != 0)
		return archive__fail(
		    ARCHIVE_E_VERSION,
		    "%s: being written by flowscope %s; this is flowscope %s: use the "
		    "same version while it records",
		    a->dir, ver, FLOWSCOPE_VERSION);
	return 0;
}

static int archive_open_dir(struct archive *a, unsigned flags)
{
	struct stat st;
	if (stat(a->dir, &st) != 0) {
		if (errno == ENOENT && !(flags & ARCHIVE_CREATE))
			return archive__fail(-ENOENT, "%s: no such archive (no such directory)",
			                     a->dir);
		if (errno != ENOENT)
			return archive__fail(-errno, "%s: %s", a->dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		return archive__fail(ARCHIVE_E_NOTARCH, "%s: not a directory", a->dir);
	}
	int r = format_read(a->dir);
	if (r == ARCHIVE_E_NOTARCH && (flags & ARCHIVE_CREATE)) {
		r = archive_create_layout(a->dir);
		if (r == 0 && (r = take_lock(a)) == 0 && (r = env_open(a)) == 0 &&
		    (r = dbs_open(a)) == 0)
			r = format_write(a->dir);
		return r;
	}
	if (r)
		return r;
	if ((flags & ARCHIVE_WRITE) && (r = take_lock(a)) != 0)
		return r;
	if (!(flags & ARCHIVE_WRITE) && (r = check_writer(a)) != 0)
		return r;
	if ((r = env_open(a)) != 0)
		return r;
	return dbs_open(a);
}

int archive_open(const char *dir, unsigned flags, struct archive **out)
{
	tls_errmsg[0] = '\0';
	struct archive *a = calloc(1, sizeof(*a));
	if (!a || !(a->dir = strdup(dir))) {
		free(a);
		return archive__fail(-ENOMEM, "out of memory");
	}
	a->lock_fd = -1;
	a->writable = (flags & ARCHIVE_WRITE) != 0;
	if ((flags & ARCHIVE_CREATE) && !a->writable) {
		archive_close(a);
		return archive__fail(-EINVAL, "ARCHIVE_CREATE needs ARCHIVE_WRITE");
	}
	int r = archive_open_dir(a, flags);
	if (r) {
		archive_close(a);
		return r;
	}
	*out = a;
	return 0;
}

void archive_close(struct archive *a)
{
	if (!a)
		return;
	if (a->env)
		mdb_env_close(a->env);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	free(a->dir);
	free(a);
}

/* ---- rebuild: a new index beside the old one ------------------------------------------------ */

/* rm -rf of a directory of plain files (an LMDB environment). */
static void remove_env_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	char f[4096];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
			unlink(f);
		}
	closedir(d);
	rmdir(path);
}

int archive__open_rebuild(const char *dir, const char *sub, struct archive **out)
{
	tls_errmsg[0] = '\0';
	struct archive *a = calloc(1, sizeof(*a));
	char path[4096];
	if (!a || !(a->dir = strdup(dir))) {
		free(a);
		return archive__fail(-ENOMEM, "out of memory");
	}
	a->lock_fd = -1;
	a->writable = 1;
	a->index_sub = sub;
	struct stat st;
	int r = 0;
	snprintf(path, sizeof(path), "%s/segments", dir);
	if (stat(dir, &st) != 0)
		r = archive__fail(-errno, "%s: %s", dir, strerror(errno));
	else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		r = archive__fail(ARCHIVE_E_NOTARCH, "%s: not a flowscope archive (no segments/)",
		                  dir);
	else if ((r = format_read(dir)) == ARCHIVE_E_NOTARCH)
		r = 0; /* FORMAT lost too: the segments are what counts; written at the swap */
	if (r == 0 && (r = take_lock(a)) == 0) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub);
		remove_env_dir(path); /* an interrupted rebuild's */
		if (mkdir(path, 0755) != 0)
			r = archive__fail(-errno, "%s: %s", path, strerror(errno));
	}
	if (r == 0 && (r = env_open(a)) == 0)
		r = dbs_open(a);
	if (r) {
		archive_close(a);
		return r;
	}
	*out = a;
	return 0;
}

int archive__rebuild_swap(struct archive *a)
{
	char cur[4096], old[4096], fresh[4096];
	int r = 0;
	mdb_env_sync(a->env, 1);
	mdb_env_close(a->env);
	a->env = NULL;
	snprintf(cur, sizeof(cur), "%s/index", a->dir);
	snprintf(old, sizeof(old), "%s/index.old-%d", a->dir, (int)getpid());
	snprintf(fresh, sizeof(fresh), "%s/%s", a->dir, a->index_sub);
	if (rename(cur, old) != 0 && errno != ENOENT)
		r = archive__fail(-errno, "%s: rename: %s", cur, strerror(errno));
	else if (rename(fresh, cur) != 0)
		r = archive__fail(-errno, "%s: rename: %s", fresh, strerror(errno));
	else {
		int fd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		remove_env_dir(old);
		if (format_read(a->dir) == ARCHIVE_E_NOTARCH)
			r = format_write(a->dir);
	}
	archive_close(a);
	return r;
}
