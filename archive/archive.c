/*
 * Opening and creating archives: the FORMAT marker, the writer's LOCK, the
 * LMDB environment and its named databases; error names and details.
 *
 * An archive is recognised by its FORMAT file, written last when creating so
 * that a half-created directory is never mistaken for an archive (and a
 * failed creation removes what it made).  Writers hold an exclusive flock()
 * on LOCK for as long as the archive is open, so two recorders can never
 * interleave segments; readers take no lock of ours (LMDB's reader table in
 * index/lock.mdb keeps their snapshots consistent; a reader that may not
 * write it reads without it, and only while no writer holds LOCK).
 *
 * LMDB trusts its file: the index is checked (lmdbcheck.c) before LMDB maps
 * it and before it reads a page, so that damage is one line, not a signal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_pvt.h"

#define FORMAT_FILE "FORMAT"
#define FORMAT_MAGIC "flowscope-archive"

static _Thread_local char tls_errmsg[512];

const char *archive_errmsg(void)
{
	return tls_errmsg;
}

void archive__errmsg_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tls_errmsg, sizeof(tls_errmsg), fmt, ap);
	va_end(ap);
}

/*
 * The archive an LMDB failure is about: the directory archive_open() opened
 * last.  A flowscope process works on one archive (rebuild opens the same
 * one twice), so this names it without every caller passing it down.
 */
static char lmdb_dir[1024];

static void lmdb_dir_set(const char *dir)
{
	snprintf(lmdb_dir, sizeof(lmdb_dir), "%s", dir);
}

/* LMDB codes that mean the index file's bytes are not what LMDB wrote. */
static int lmdb_damage(int rc)
{
	return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
	       rc == MDB_BAD_TXN || rc == MDB_BAD_DBI;
}

int archive__lmdb_fail(int rc, const char *what)
{
	if (lmdb_damage(rc))
		return archive__fail(
		    ARCHIVE_E_CORRUPT,
		    "%s: the index is damaged (%s: %s): run flowscope index rebuild "
		    "--archive %s",
		    lmdb_dir, what, mdb_strerror(rc), lmdb_dir);
	return archive__fail(ARCHIVE_E_LMDB, "%s: index: %s: %s", lmdb_dir, what, mdb_strerror(rc));
}

/* A damage found before LMDB read the file (lmdbcheck.c): `why` names it. */
static int index_damaged(const struct archive *a, const char *why)
{
	return archive__fail(ARCHIVE_E_CORRUPT,
	                     "%s: the index is damaged (%s/data.mdb: %s): run flowscope index "
	                     "rebuild --archive %s",
	                     a->dir, a->index_sub ? a->index_sub : "index", why, a->dir);
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

unsigned archive_format(const struct archive *a)
{
	return a->format;
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

int archive__seg_name_ok(const char *name)
{
	for (int i = 0; i < 12; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return strcmp(name + 12, ".pcap.zst") == 0 || strcmp(name + 12, ".pcap.zst.open") == 0;
}

/* ---- FORMAT marker ---------------------------------------------------------------- */

/* FORMAT's version into *version (may be NULL); one this flowscope cannot read is refused. */
static int format_read(const char *dir, unsigned *version_out)
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
	if (version < ARCHIVE_FORMAT_OLDEST || version > ARCHIVE_FORMAT_VERSION)
		return archive__fail(ARCHIVE_E_VERSION,
		                     "%s: archive format version %u, this flowscope reads versions "
		                     "%u to %u",
		                     dir, version, ARCHIVE_FORMAT_OLDEST, ARCHIVE_FORMAT_VERSION);
	if (version_out)
		*version_out = version;
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
	fprintf(f, FORMAT_MAGIC " %u\n", (unsigned)ARCHIVE_FORMAT_VERSION);
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

/*
 * An archive of an older version that this flowscope writes to (the writer's
 * LOCK held) becomes the current version first, before any record is written:
 * FORMAT is replaced in one rename and the directory synced, so it names one
 * version or the other, never a mix.  What the old version stored stays as it
 * is (readers accept it); only what is written from now on uses the new
 * layout, which an older flowscope would misread: the new FORMAT makes it
 * refuse the archive by name.  See docs/archive-format.md, "Versioning".
 */
static int format_upgrade(const char *dir, unsigned version)
{
	if (version >= ARCHIVE_FORMAT_VERSION)
		return 0;
	int r = format_write(dir);
	int fd = r ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) != 0)
			r = archive__fail(-errno, "%s: fsync: %s", dir, strerror(errno));
		close(fd);
	}
	if (r) {
		char why[sizeof(tls_errmsg)];
		snprintf(why, sizeof(why), "%s", archive_errmsg());
		return archive__fail(r, "cannot upgrade archive format %u to %u (%s)", version,
		                     ARCHIVE_FORMAT_VERSION, why);
	}
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

/*
 * A directory that a failed or killed creation left: no FORMAT, nothing but
 * LOCK, FORMAT.tmp, index/ and an empty segments/.  Nothing was stored in it,
 * so creating the archive again may use it.
 */
static int half_created(const char *dir)
{
	static const char *const made[] = {".", "..", "LOCK", "FORMAT.tmp", "index", "segments"};
	char path[4200];
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	int ok = 1;
	while (ok && (e = readdir(d))) {
		size_t i = 0;
		while (i < sizeof(made) / sizeof(made[0]) && strcmp(e->d_name, made[i]) != 0)
			i++;
		ok = i < sizeof(made) / sizeof(made[0]);
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/segments", dir);
	return ok && dir_is_empty(path) != 0; /* empty, or absent */
}

/* What a failed creation made goes again (we hold LOCK: no other creator is at work). */
static void archive_create_undo(struct archive *a, int made_dir)
{
	char path[4200];
	if (a->env) {
		mdb_env_close(a->env);
		a->env = NULL;
	}
	snprintf(path, sizeof(path), "%s/index", a->dir);
	remove_env_dir(path);
	snprintf(path, sizeof(path), "%s/segments", a->dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/FORMAT.tmp", a->dir);
	unlink(path);
	if (a->lock_fd >= 0) { /* ours: a LOCK we could not open may be another's */
		snprintf(path, sizeof(path), "%s/LOCK", a->dir);
		unlink(path);
		close(a->lock_fd);
		a->lock_fd = -1;
	}
	if (made_dir)
		rmdir(a->dir);
}

/* 1 if dir holds segments/: an archive, whatever happened to its FORMAT. */
static int has_segments(const char *dir)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/segments", dir);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* An archive that lost FORMAT (or whose FORMAT is garbled). */
static int format_lost(const char *dir)
{
	return archive__fail(ARCHIVE_E_NOTARCH,
	                     "%s: FORMAT missing or damaged, but segments/ is there: run "
	                     "flowscope index rebuild --archive %s (it writes FORMAT again)",
	                     dir, dir);
}

/* Refusal of a directory that is not an archive; one that looks like one lost FORMAT. */
static int not_archive(const char *dir)
{
	if (has_segments(dir))
		return format_lost(dir);
	return archive__fail(ARCHIVE_E_NOTARCH,
	                     "%s: not a flowscope archive and not empty: refusing to use it", dir);
}

static int env_open(struct archive *a);
static int dbs_open(struct archive *a);
static int format_write(const char *dir);
static int take_lock(struct archive *a);

/* archive_create(): another process created the archive meanwhile; open it as one. */
#define CREATED_BY_OTHER 1

/*
 * A directory that is neither empty nor half-created: an archive another
 * creator finished between our look for FORMAT and now (CREATED_BY_OTHER),
 * or not ours to use.
 */
static int not_empty(const char *dir)
{
	int r = format_read(dir, NULL);
	if (r != ARCHIVE_E_NOTARCH)
		return r ? r : CREATED_BY_OTHER;
	return not_archive(dir);
}

/*
 * Creates an archive in an absent or empty directory (or one a failed creation
 * left).  LOCK is taken before anything else is made, so that of two creators
 * the second is told the archive is being written; under it FORMAT is looked
 * for again (a creator that finished and closed it meanwhile made an archive:
 * CREATED_BY_OTHER, lock held).  FORMAT comes last; if any step fails, what
 * was made is removed, so that a full disk leaves nothing that blocks the
 * next try.
 */
static int archive_create(struct archive *a)
{
	int made_dir = mkdir(a->dir, 0755) == 0;
	if (!made_dir && errno != EEXIST)
		return archive__fail(-errno, "%s: cannot create: %s", a->dir, strerror(errno));
	int empty = dir_is_empty(a->dir), r;
	if (empty < 0)
		return archive__fail(empty, "%s: %s", a->dir, strerror(-empty));
	if (!empty && !half_created(a->dir))
		return not_empty(a->dir);
	if ((r = take_lock(a)) == ARCHIVE_E_LOCKED)
		return r; /* another process is creating it */
	if (r == 0 && (r = format_read(a->dir, NULL)) != ARCHIVE_E_NOTARCH)
		return r ? r : CREATED_BY_OTHER; /* created and closed since we looked */
	if (r == ARCHIVE_E_NOTARCH)
		r = 0;
	char path[4200];
	snprintf(path, sizeof(path), "%s/index", a->dir);
	if (r == 0)
		remove_env_dir(path); /* a failed creation's: nothing was stored */
	const char *subs[] = {"segments", "index"};
	for (size_t i = 0; r == 0 && i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, subs[i]);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			r = archive__fail(-errno, "%s: %s", path, strerror(errno));
	}
	if (r == 0 && (r = env_open(a)) == 0 && (r = dbs_open(a)) == 0)
		r = format_write(a->dir);
	if (r == 0)
		a->created = made_dir ? 2 : 1;
	if (r) {
		char keep[sizeof(tls_errmsg) + 64];
		snprintf(keep, sizeof(keep), "%s: nothing was created", archive_errmsg());
		archive_create_undo(a, made_dir);
		archive__fail(r, "%s", keep);
	}
	return r;
}

/* ---- LMDB ---------------------------------------------------------------------------- */

/*
 * data.mdb against its own header before LMDB maps it (a file cut short
 * would be a SIGBUS).  Absent: a reader refuses; a writer lets LMDB create it
 * (archive creation; record decides what an archive without index means).
 */
static int index_file_check(struct archive *a, const char *envdir)
{
	char path[4200], why[256];
	snprintf(path, sizeof(path), "%s/data.mdb", envdir);
	int r = archive__lmdb_check_header(path, why, sizeof(why));
	if (r == -ENOENT && !a->writable)
		return archive__fail(ARCHIVE_E_CORRUPT,
		                     "%s: the index is missing (%s): run flowscope index rebuild "
		                     "--archive %s",
		                     a->dir, path, a->dir);
	if (r == -ENOENT)
		return 0;
	if (r == ARCHIVE_E_CORRUPT)
		return index_damaged(a, why);
	return r ? archive__fail(r, "%s: %s", path, strerror(-r)) : 0;
}

/* 1 if this process may write envdir/lock.mdb (or create it), as LMDB readers must. */
static int lock_file_writable(const char *envdir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/lock.mdb", envdir);
	if (access(path, R_OK | W_OK) == 0)
		return 1;
	return errno == ENOENT && access(envdir, W_OK | X_OK) == 0;
}

int archive__writer_active(const struct archive *a)
{
	char path[4096];
	if (a->lock_fd >= 0)
		return 0; /* we are the writer */
	snprintf(path, sizeof(path), "%s/LOCK", a->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd);
	return busy;
}

/* A reader without the reader table: refused while a writer holds LOCK. */
static int check_no_writer(const struct archive *a)
{
	if (!archive__writer_active(a))
		return 0;
	return archive__fail(ARCHIVE_E_LOCKED,
	                     "%s: a recorder is writing it and this user may not write "
	                     "index/lock.mdb, so cannot read safely meanwhile: record with "
	                     "--archive-group GROUP for readers in GROUP, or read once it stops",
	                     a->dir);
}

/*
 * The map is a virtual reservation: ARCHIVE_MAPSIZE where the address space
 * allows, else the largest of a quarter, a sixteenth... down to
 * ARCHIVE_MAPSIZE_MIN (a process under ulimit -v, or a sanitizer's shadow
 * memory, may not find 1 TiB in one piece: mdb_env_open says ENOMEM).
 */
static int env_try_open(struct archive *a, const char *path, unsigned flags)
{
	int rc = ENOMEM;
	for (uint64_t map = ARCHIVE_MAPSIZE; rc == ENOMEM && map >= ARCHIVE_MAPSIZE_MIN; map /= 4) {
		if (a->env)
			mdb_env_close(a->env); /* a failed open leaves it unusable */
		if ((rc = mdb_env_create(&a->env)) != 0) {
			a->env = NULL;
			return archive__lmdb_fail(rc, "create environment");
		}
		mdb_env_set_maxdbs(a->env, 8);
		mdb_env_set_mapsize(a->env, map);
		mdb_env_set_maxreaders(a->env, 256);
		rc = mdb_env_open(a->env, path, flags, 0644);
	}
	if (rc)
		return archive__fail(rc == ENOENT ? ARCHIVE_E_NOTARCH : ARCHIVE_E_LMDB,
		                     "%s: cannot open the index: %s", path, mdb_strerror(rc));
	return 0;
}

static int env_open(struct archive *a)
{
	char path[4096];
	int rc;
	snprintf(path, sizeof(path), "%s/%s", a->dir, a->index_sub ? a->index_sub : "index");
	if ((rc = index_file_check(a, path)) != 0)
		return rc;
	unsigned flags = MDB_NOTLS | (a->writable ? 0 : MDB_RDONLY);
	if (!a->writable && !lock_file_writable(path)) {
		if ((rc = check_no_writer(a)) != 0)
			return rc;
		flags |= MDB_NOLOCK; /* no reader table: see archive_open() */
	}
	return env_try_open(a, path, flags);
}

static int dbs_open(struct archive *a)
{
	MDB_txn *txn;
	unsigned create = a->writable ? MDB_CREATE : 0;
	int rc = mdb_txn_begin(a->env, NULL, a->writable ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return archive__lmdb_fail(rc, "begin");
	char why[256];
	int r = archive__lmdb_check_pages(a->env, txn, why, sizeof(why));
	if (r) {
		mdb_txn_abort(txn);
		return r == ARCHIVE_E_CORRUPT
		           ? index_damaged(a, why)
		           : archive__fail(r, "%s: index: %s", a->dir, strerror(-r));
	}
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

/* The holder's "flowscope VERSION pid N" from its LOCK file, if it wrote it yet. */
static int locked_by_other(const struct archive *a)
{
	char who[128];
	ssize_t n = pread(a->lock_fd, who, sizeof(who) - 1, 0);
	who[n > 0 ? n : 0] = '\0';
	who[strcspn(who, "\n")] = '\0';
	return archive__fail(ARCHIVE_E_LOCKED,
	                     "%s: another flowscope process is writing this archive%s%s%s", a->dir,
	                     who[0] ? " (" : "", who, who[0] ? ")" : "");
}

/* 1 if fd is still the file at path: a failed creation unlinks its LOCK, and a lock on a file
 * no longer there keeps nobody out. */
static int lock_current(int fd, const char *path)
{
	struct stat f, p;
	return fstat(fd, &f) == 0 && stat(path, &p) == 0 && f.st_ino == p.st_ino &&
	       f.st_dev == p.st_dev;
}

/* An flock()ed LOCK at path in a->lock_fd (tried again while its file is replaced). */
static int lock_open(struct archive *a, const char *path)
{
	for (int tries = 0; tries < 8; tries++) {
		a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (a->lock_fd < 0)
			return archive__fail(-errno, "%s: %s", path, strerror(errno));
		if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0)
			return errno == EWOULDBLOCK
			           ? locked_by_other(a)
			           : archive__fail(-errno, "%s: %s", path, strerror(errno));
		if (lock_current(a->lock_fd, path))
			return 0;
		close(a->lock_fd);
		a->lock_fd = -1;
	}
	return archive__fail(ARCHIVE_E_LOCKED, "%s: another flowscope process is creating it",
	                     a->dir);
}

static int take_lock(struct archive *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", a->dir);
	int r = lock_open(a, path);
	if (r)
		return r;
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
	unsigned version = ARCHIVE_FORMAT_VERSION;
	int r = format_read(a->dir, &version);
	a->format = ARCHIVE_FORMAT_VERSION;
	if (r == ARCHIVE_E_NOTARCH && (flags & ARCHIVE_CREATE) &&
	    (r = archive_create(a)) != CREATED_BY_OTHER)
		return r;
	if (r == CREATED_BY_OTHER) /* lock held; the other creator's version */
		r = format_read(a->dir, &version);
	if (r == ARCHIVE_E_NOTARCH && (flags & ARCHIVE__ANY_FORMAT) && has_segments(a->dir))
		r = 0; /* rebuild reads the old index of an archive that lost FORMAT */
	if (r == ARCHIVE_E_NOTARCH && has_segments(a->dir))
		return format_lost(a->dir);
	if (r)
		return r;
	if ((flags & ARCHIVE_WRITE) && a->lock_fd < 0 && (r = take_lock(a)) != 0)
		return r;
	if ((flags & ARCHIVE_WRITE) && (r = format_upgrade(a->dir, version)) != 0)
		return r;
	a->format = (flags & ARCHIVE_WRITE) ? ARCHIVE_FORMAT_VERSION : version;
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
	lmdb_dir_set(dir);
	int r = archive_open_dir(a, flags);
	if (r) {
		archive_close(a);
		return r;
	}
	tls_errmsg[0] = '\0'; /* "no FORMAT file" of a creation: no error of a later call's */
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

/* 1 if dir/segments holds no file. */
static int no_segments(const struct archive *a)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/segments", a->dir);
	return dir_is_empty(path) == 1;
}

void archive_close_discard(struct archive *a)
{
	if (a && a->created && a->lock_fd >= 0 && no_segments(a)) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/" FORMAT_FILE, a->dir);
		unlink(path); /* first: without it the rest is a half-made archive, used again */
		archive_create_undo(a, a->created == 2);
	}
	archive_close(a);
}

/* ---- sharing with a group of readers -------------------------------------------------- */

/* path gets group gid and the mode bits `add`. */
static int share_path(const char *path, gid_t gid, mode_t add)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : archive__fail(-errno, "%s: %s", path, strerror(errno));
	if ((st.st_gid != gid && chown(path, (uid_t)-1, gid) != 0) ||
	    ((st.st_mode & add) != add && chmod(path, (st.st_mode & 07777) | add) != 0))
		return archive__fail(-errno, "%s: cannot give group %u access: %s", path,
		                     (unsigned)gid, strerror(errno));
	return 0;
}

/* Every entry of directory dir (plain files) gets gid and g+r. */
static int share_files(const char *dir, gid_t gid)
{
	DIR *d = opendir(dir);
	if (!d)
		return archive__fail(-errno, "%s: %s", dir, strerror(errno));
	struct dirent *e;
	char path[4096 + 512];
	int r = 0;
	while (r == 0 && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			r = share_path(path, gid,
			               strcmp(e->d_name, "lock.mdb") == 0 ? S_IRGRP | S_IWGRP
			                                                  : S_IRGRP);
		}
	closedir(d);
	return r;
}

int archive_share(struct archive *a, gid_t gid)
{
	char path[4200];
	const mode_t dirbits = S_IRGRP | S_IXGRP | S_ISGID;
	int r = share_path(a->dir, gid, dirbits);
	const char *subs[] = {"segments", "index"};
	for (size_t i = 0; r == 0 && i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, subs[i]);
		if ((r = share_path(path, gid, dirbits)) == 0)
			r = share_files(path, gid);
	}
	const char *files[] = {"FORMAT", "LOCK"};
	for (size_t i = 0; r == 0 && i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, files[i]);
		r = share_path(path, gid, S_IRGRP);
	}
	return r;
}

/* ---- giving the archive to the recorder's user ------------------------------------------ */

/*
 * Entry `name` of directory fd dfd (the directory itself for ".") gets uid and gid, if it
 * is a directory or a regular file with one link, reached without following a symbolic
 * link: a file linked in from elsewhere is left alone.  Opened first, so the checks and
 * the fchown() are about the same inode.
 */
static int give_entry(int dfd, const char *dirpath, const char *name, uid_t uid, gid_t gid)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP
		           ? 0
		           : archive__fail(-errno, "%s/%s: %s", dirpath, name, strerror(errno));
	struct stat st;
	int r = fstat(fd, &st) != 0 ? -errno : 0;
	int ours = S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1);
	if (r == 0 && ours && (st.st_uid != uid || (gid != (gid_t)-1 && st.st_gid != gid)) &&
	    fchown(fd, uid, gid) != 0)
		r = -errno;
	close(fd);
	if (r)
		return archive__fail(r, "%s/%s: cannot give it to uid %u: %s", dirpath, name,
		                     (unsigned)uid, strerror(-r));
	return 0;
}

/* Directory `sub` and its entries that `ours` accepts get uid and gid. */
static int give_dir(const char *dir, const char *sub, int (*ours)(const char *), uid_t uid,
                    gid_t gid)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : archive__fail(-errno, "%s: %s", path, strerror(errno));
	int r = give_entry(dfd, path, ".", uid, gid);
	DIR *d = r ? NULL : fdopendir(dfd);
	if (!d) {
		close(dfd);
		return r ? r : archive__fail(-errno, "%s: %s", path, strerror(errno));
	}
	struct dirent *e;
	while (r == 0 && (e = readdir(d)))
		if (ours(e->d_name))
			r = give_entry(dfd, path, e->d_name, uid, gid);
	closedir(d);
	return r;
}

static int lmdb_name_ok(const char *name)
{
	return strcmp(name, "data.mdb") == 0 || strcmp(name, "lock.mdb") == 0;
}

static int top_name_ok(const char *name)
{
	return strcmp(name, FORMAT_FILE) == 0 || strcmp(name, "LOCK") == 0;
}

int archive_give(struct archive *a, uid_t uid, gid_t gid)
{
	int r = give_dir(a->dir, ".", top_name_ok, uid, gid);
	if (r == 0)
		r = give_dir(a->dir, "segments", archive__seg_name_ok, uid, gid);
	if (r == 0)
		r = give_dir(a->dir, a->index_sub ? a->index_sub : "index", lmdb_name_ok, uid, gid);
	return r;
}

/* ---- rebuild: a new index beside the old one ------------------------------------------------ */

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
	a->format = ARCHIVE_FORMAT_VERSION;
	a->index_sub = sub;
	lmdb_dir_set(dir);
	struct stat st;
	unsigned version = ARCHIVE_FORMAT_VERSION;
	int r = 0;
	snprintf(path, sizeof(path), "%s/segments", dir);
	if (stat(dir, &st) != 0)
		r = archive__fail(-errno, "%s: %s", dir, strerror(errno));
	else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		r = archive__fail(ARCHIVE_E_NOTARCH, "%s: not a flowscope archive (no segments/)",
		                  dir);
	else if ((r = format_read(dir, &version)) == ARCHIVE_E_NOTARCH)
		r = 0; /* FORMAT lost too: the segments are what counts; written at the swap */
	if (r == 0 && (r = take_lock(a)) == 0 && (r = format_upgrade(dir, version)) == 0) {
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

void archive__rebuild_discard(struct archive *a)
{
	char path[4200];
	if (a->env) {
		mdb_env_close(a->env);
		a->env = NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", a->dir, a->index_sub);
	remove_env_dir(path);
	archive_close(a); /* the LOCK last: no other rebuild could have made dir/<sub> */
}

/* fsync of a directory: its renames are durable once this returns. */
static void dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * cur (the index) and fresh trade places in one rename(2) where the file
 * system can (RENAME_EXCHANGE): a kill at any moment leaves an index at cur,
 * the old or the new.  Elsewhere two renames, with a moment without index
 * (rebuild again).  Afterwards fresh holds the old index, if there was one.
 */
static int index_exchange(const char *cur, const char *fresh, const char *aside)
{
	struct stat st;
	if (stat(cur, &st) != 0)
		return rename(fresh, cur) == 0 ? 0 : -errno;
	if (renameat2(AT_FDCWD, fresh, AT_FDCWD, cur, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (rename(cur, aside) != 0)
		return -errno;
	if (rename(fresh, cur) != 0)
		return -errno;
	return rename(aside, fresh) == 0 ? 0 : -errno;
}

/* The new index gets the group access record --archive-group gave the old one (best effort:
 * readers without it get the lock-less read). */
static void index_share_like(const char *fresh, const char *cur)
{
	struct stat st;
	if (stat(cur, &st) != 0 || !(st.st_mode & S_ISGID))
		return;
	if (share_path(fresh, st.st_gid, S_IRGRP | S_IXGRP | S_ISGID) == 0)
		share_files(fresh, st.st_gid);
}

int archive__rebuild_swap(struct archive *a, char *keep, size_t len)
{
	char cur[4096], aside[4200], fresh[4096];
	mdb_env_sync(a->env, 1);
	mdb_env_close(a->env);
	a->env = NULL;
	snprintf(cur, sizeof(cur), "%s/index", a->dir);
	snprintf(aside, sizeof(aside), "%s/index.old-%d", a->dir, (int)getpid());
	snprintf(fresh, sizeof(fresh), "%s/%s", a->dir, a->index_sub);
	char data[4200];
	struct stat st;
	snprintf(data, sizeof(data), "%s/data.mdb", cur);
	index_share_like(fresh, cur);
	int had = stat(data, &st) == 0, r = index_exchange(cur, fresh, aside);
	if (r) {
		r = archive__fail(r, "%s: cannot put the new index in place: %s", a->dir,
		                  strerror(-r));
		archive_close(a);
		return r;
	}
	dir_sync(a->dir);
	if (keep && had) { /* the old index, damaged: kept for whoever wants to look at it */
		char when[32];
		time_t now = time(NULL);
		strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", gmtime(&now));
		snprintf(keep, len, "%s/index.damaged-%s", a->dir, when);
		if (rename(fresh, keep) != 0)
			snprintf(keep, len, "%s", fresh);
		dir_sync(a->dir);
	} else {
		if (keep)
			keep[0] = '\0';
		remove_env_dir(fresh);
	}
	if (format_read(a->dir, NULL) == ARCHIVE_E_NOTARCH)
		r = format_write(a->dir);
	archive_close(a);
	return r;
}
