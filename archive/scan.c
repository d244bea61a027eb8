/*
 * Segment scanning: a segment's frames from its bytes alone (see
 * scan_pvt.h).  The file is mapped read-only; each frame's extent comes from
 * zstd's own frame format (ZSTD_findFrameCompressedSize), its content from
 * decompression with the frame checksum checked, so a torn or zeroed tail
 * (a crash, a power loss) ends the scan at the last whole frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"

#define MAX_FRAME_USIZE (64u << 20)

int archive__pcap_check(const uint8_t *p, size_t len, int frame0, int *linktype, uint32_t *snaplen,
                        size_t *records_at, uint32_t *packets, uint64_t *min_ns, uint64_t *max_ns)
{
	size_t pos = 0;
	if (frame0) {
		if (len < PCAP_GHDR_LEN || le32_get(p) != PCAP_MAGIC_NANO)
			return ARCHIVE_E_CORRUPT;
		uint32_t snap = le32_get(p + 16), lt = le32_get(p + 20);
		if (*linktype < 0) {
			*linktype = (int)lt;
			*snaplen = snap;
		} else if (lt != (uint32_t)*linktype || snap != *snaplen) {
			return ARCHIVE_E_CORRUPT;
		}
		pos = PCAP_GHDR_LEN;
	}
	if (*linktype < 0)
		return ARCHIVE_E_CORRUPT; /* records before any pcap header */
	*records_at = pos;
	*packets = 0;
	*min_ns = UINT64_MAX;
	*max_ns = 0;
	while (pos < len) {
		if (len - pos < PCAP_RHDR_LEN)
			return ARCHIVE_E_CORRUPT;
		uint32_t nsec = le32_get(p + pos + 4), cap = le32_get(p + pos + 8);
		if (nsec >= 1000000000u || cap > *snaplen || cap > ARCHIVE_MAX_CAPLEN ||
		    cap > len - pos - PCAP_RHDR_LEN)
			return ARCHIVE_E_CORRUPT;
		uint64_t ts = (uint64_t)le32_get(p + pos) * 1000000000u + nsec;
		*min_ns = ts < *min_ns ? ts : *min_ns;
		*max_ns = ts > *max_ns ? ts : *max_ns;
		(*packets)++;
		pos += PCAP_RHDR_LEN + cap;
	}
	return 0;
}

int archive__record_next(const uint8_t *p, size_t len, size_t *pos, struct archive_record *rec)
{
	if (*pos >= len)
		return 0;
	const uint8_t *h = p + *pos;
	rec->ts_ns = (uint64_t)le32_get(h) * 1000000000u + le32_get(h + 4);
	rec->caplen = le32_get(h + 8);
	rec->wirelen = le32_get(h + 12);
	rec->data = h + PCAP_RHDR_LEN;
	rec->raw = h;
	rec->raw_len = PCAP_RHDR_LEN + rec->caplen;
	*pos += rec->raw_len;
	return 1;
}

int archive__scan_open(struct seg_scan *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->linktype = -1;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return archive__fail(-e, "%s: %s", path, strerror(e));
	}
	s->fd = fd;
	s->size = (size_t)st.st_size;
	if (s->size > 0) {
		void *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			archive__scan_close(s);
			return archive__fail(-e, "%s: mmap: %s", path, strerror(e));
		}
		madvise(m, s->size, MADV_SEQUENTIAL);
		s->map = m;
	}
	if (!(s->dctx = ZSTD_createDCtx())) {
		archive__scan_close(s);
		return archive__fail(-ENOMEM, "out of memory");
	}
	return 0;
}

void archive__scan_close(struct seg_scan *s)
{
	if (s->map)
		munmap((void *)s->map, s->size);
	if (s->fd >= 0)
		close(s->fd);
	ZSTD_freeDCtx(s->dctx);
	free(s->ubuf);
	free(s->sizes);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

/* A seek table at s->off that lists exactly the frames read and ends the file. */
static int seektable_ok(const struct seg_scan *s, size_t fsize)
{
	const uint8_t *p = s->map + s->off;
	if (s->off + fsize != s->size || fsize < 8 + SEEK_FOOTER_LEN)
		return 0;
	uint32_t body = le32_get(p + 4);
	if ((uint64_t)body + 8 != fsize || body < SEEK_FOOTER_LEN ||
	    (body - SEEK_FOOTER_LEN) % SEEK_ENTRY_LEN)
		return 0;
	size_t n = (body - SEEK_FOOTER_LEN) / SEEK_ENTRY_LEN;
	const uint8_t *foot = p + 8 + n * SEEK_ENTRY_LEN;
	if (le32_get(foot) != n || foot[4] != 0 || le32_get(foot + 5) != SEEK_FOOTER_MAGIC ||
	    n != s->nsizes)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (le32_get(p + 8 + i * 8) != s->sizes[i].csize ||
		    (!s->sizes[i].damaged && le32_get(p + 12 + i * 8) != s->sizes[i].usize))
			return 0;
	return 1;
}

static int sizes_add(struct seg_scan *s, struct seg_frame_size fs)
{
	int r = archive__grow((void **)&s->sizes, &s->sizes_cap, s->nsizes + 1, sizeof(*s->sizes));
	if (r)
		return r;
	s->sizes[s->nsizes++] = fs;
	return 0;
}

static int scan_bad(char *why, size_t len, const char *msg)
{
	snprintf(why, len, "%s", msg);
	return -1;
}

int archive__scan_next(struct seg_scan *s, struct seg_scanned *f, char *why, size_t whylen)
{
	if (s->off >= s->size)
		return 0;
	const uint8_t *p = s->map + s->off;
	size_t avail = s->size - s->off;
	size_t csize = ZSTD_findFrameCompressedSize(p, avail);
	if (ZSTD_isError(csize))
		return scan_bad(why, whylen, "an incomplete or damaged zstd frame");
	if (avail >= 4 && le32_get(p) == SEEK_SKIPPABLE_MAGIC) {
		if (!seektable_ok(s, csize))
			return scan_bad(why, whylen, "a seek table that does not match the frames");
		s->seektable = 1;
		s->off = s->size;
		return 0;
	}
	/* the frame's tag, then the zstd frame it describes */
	if (csize != FRAME_TAG_LEN || le32_get(p) != FRAME_TAG_MAGIC || le32_get(p + 12) != 0)
		return scan_bad(why, whylen, "a data frame without its tag");
	uint32_t run = le32_get(p + 8);
	uint64_t chunk = le64_get(p + 16);
	size_t dsize = ZSTD_findFrameCompressedSize(p + FRAME_TAG_LEN, avail - FRAME_TAG_LEN);
	if (ZSTD_isError(dsize))
		return scan_bad(why, whylen, "an incomplete or damaged zstd frame");
	p += FRAME_TAG_LEN;
	if (s->frame > 0 && run != s->run)
		return scan_bad(why, whylen, "frames of two recordings in one segment");
	s->run = run;
	unsigned long long usize = ZSTD_getFrameContentSize(p, dsize);
	if (usize == ZSTD_CONTENTSIZE_UNKNOWN || usize == ZSTD_CONTENTSIZE_ERROR ||
	    usize > MAX_FRAME_USIZE || usize == 0 || dsize > UINT32_MAX - FRAME_TAG_LEN)
		return scan_bad(why, whylen, "a zstd frame without a valid content size");
	if (usize > s->ucap) {
		uint8_t *nb = realloc(s->ubuf, (size_t)usize);
		if (!nb)
			return archive__fail(-ENOMEM, "out of memory");
		s->ubuf = nb;
		s->ucap = (size_t)usize;
	}
	size_t n = ZSTD_decompressDCtx(s->dctx, s->ubuf, (size_t)usize, p, dsize);
	if (ZSTD_isError(n) || n != usize)
		return scan_bad(why, whylen,
		                ZSTD_isError(n) ? ZSTD_getErrorName(n) : "a short zstd frame");
	csize = FRAME_TAG_LEN + dsize; /* tag and frame: one entry of the seek table */
	*f = (struct seg_scanned){.frame = s->frame,
	                          .offset = s->off,
	                          .csize = (uint32_t)csize,
	                          .usize = (uint32_t)usize,
	                          .data = s->ubuf,
	                          .chunk = chunk};
	if (archive__pcap_check(s->ubuf, n, s->frame == 0, &s->linktype, &s->snaplen,
	                        &f->records_at, &f->packets, &f->min_ns, &f->max_ns) != 0)
		return scan_bad(why, whylen, "a frame whose pcap records are damaged");
	if (sizes_add(s, (struct seg_frame_size){(uint32_t)csize, (uint32_t)usize, 0}) != 0)
		return -ENOMEM;
	s->off += csize;
	s->frame++;
	return 1;
}

/*
 * The pcap header of a damaged frame 0, from what of it decompresses before
 * the damage (zstd streams a block out once it is decoded; the checksum comes
 * last): learned only when it is a whole, plausible header.
 */
static void header_learn(struct seg_scan *s, const uint8_t *z, size_t zlen)
{
	uint8_t h[PCAP_GHDR_LEN];
	ZSTD_inBuffer in = {z, zlen, 0};
	ZSTD_outBuffer out = {h, sizeof(h), 0};
	ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_only);
	while (out.pos < out.size && in.pos < in.size) {
		size_t r = ZSTD_decompressStream(s->dctx, &out, &in);
		if (ZSTD_isError(r) || r == 0)
			break;
	}
	ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_only);
	if (out.pos < sizeof(h)) /* h is not all written: read none of it */
		return;
	uint32_t snap = le32_get(h + 16), lt = le32_get(h + 20);
	if (le32_get(h) != PCAP_MAGIC_NANO || le32_get(h + 4) != 0x00040002u || snap == 0 ||
	    snap > ARCHIVE_MAX_CAPLEN || lt > 0xFFFF)
		return;
	s->linktype = (int)lt;
	s->snaplen = snap;
}

/* 1 when a frame tag or a seek table may start at p (avail bytes). */
static int frame_start(const uint8_t *p, size_t avail)
{
	if (avail < 8)
		return 0;
	return (le32_get(p) == FRAME_TAG_MAGIC && le32_get(p + 4) == FRAME_TAG_LEN - 8) ||
	       le32_get(p) == SEEK_SKIPPABLE_MAGIC;
}

int archive__scan_resync(struct seg_scan *s, struct seg_scanned *f, char *why, size_t whylen)
{
	const uint64_t from = s->off;
	const uint32_t frame = s->frame, run = s->run;
	const size_t nsizes = s->nsizes;
	const uint8_t *z = s->map + from + FRAME_TAG_LEN;
	int had_header = s->linktype >= 0;
	unsigned long long usize = 0;
	if (s->size > from + FRAME_TAG_LEN) {
		usize = ZSTD_getFrameContentSize(z, s->size - from - FRAME_TAG_LEN);
		usize = usize > UINT32_MAX ? 0 : usize;
		if (frame == 0 && !had_header)
			header_learn(s, z, s->size - from - FRAME_TAG_LEN);
	}
	if (frame == 0 && s->linktype < 0 && s->known_snaplen) { /* as the index knew it */
		s->linktype = s->known_linktype;
		s->snaplen = s->known_snaplen;
	}
	for (uint64_t at = from + 1; at < s->size; at++) {
		if (!frame_start(s->map + at, s->size - at) || at - from > UINT32_MAX)
			continue;
		s->off = at;
		s->frame = frame + 1;
		s->nsizes = nsizes;
		s->run = nsizes == 0 && s->size - at >= 12 ? le32_get(s->map + at + 8)
		                                           : run; /* frame 0 */
		if (sizes_add(s,
		              (struct seg_frame_size){(uint32_t)(at - from), (uint32_t)usize, 1}))
			return -ENOMEM;
		int n = archive__scan_next(s, f, why, whylen);
		if (n == 1 || (n == 0 && s->seektable) || n < -1) {
			s->gap_off = from;
			s->gap_bytes = (uint32_t)(at - from);
			s->gap_usize = (uint32_t)usize;
			return n;
		}
	}
	s->off = from; /* nothing whole after the damage */
	s->frame = frame;
	s->run = run;
	s->nsizes = nsizes;
	if (!had_header)
		s->linktype = -1;
	return -1;
}

/* ---- reading ahead ------------------------------------------------------------------------- */

/*
 * The thread fills slots in order (made), the caller takes them in order
 * (taken); a slot is the thread's to fill again only once taken, so a frame's
 * bytes stay put while the caller holds it.  made and taken change under mu,
 * which orders a slot's contents (written by whoever holds it) with them.
 */
struct ahead_slot {
	int r; /* archive__scan_next's answer, with f, why and pos */
	struct seg_scanned f;
	struct seg_ahead_pos pos;
	char why[256];
	uint8_t *buf; /* the frame's bytes: the scan's buffer while it decompressed into it */
	size_t cap;
};

struct seg_ahead {
	struct seg_scan *s; /* the thread's while it runs */
	pthread_t thread;
	int threaded;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast (under mu) when made, taken or stop change */
	uint64_t made;     /* slots filled (mu) */
	uint64_t taken;    /* slots the caller is done with (mu) */
	uint64_t bytes;    /* frame contents of the slots made and not taken (mu) */
	int stop;          /* (mu) */
	int held;          /* the caller holds slot[taken] (the caller's thread only) */
	struct ahead_slot slot[SCAN_AHEAD_FRAMES];
};

/* One archive__scan_next into sl, decompressing into the slot's own buffer. */
static void ahead_fill(struct seg_scan *s, struct ahead_slot *sl)
{
	uint8_t *own = s->ubuf;
	size_t owncap = s->ucap;
	if (sl->cap > SCAN_AHEAD_KEEP) {
		free(sl->buf);
		sl->buf = NULL;
		sl->cap = 0;
	}
	s->ubuf = sl->buf;
	s->ucap = sl->cap;
	sl->why[0] = '\0';
	sl->r = archive__scan_next(s, &sl->f, sl->why, sizeof(sl->why));
	if (sl->r < -1) /* -ENOMEM: its message is this thread's */
		snprintf(sl->why, sizeof(sl->why), "%s", archive_errmsg());
	sl->buf = s->ubuf;
	sl->cap = s->ucap;
	s->ubuf = own;
	s->ucap = owncap;
	sl->pos = (struct seg_ahead_pos){s->off, s->seektable, s->linktype};
}

/* The thread: fills slots until the scan ends (an answer other than 1) or stop. */
static void *ahead_run(void *arg)
{
	struct seg_ahead *a = arg;
	int r = 1;
	pthread_mutex_lock(&a->mu);
	while (r == 1) {
		while (!a->stop && (a->made - a->taken == SCAN_AHEAD_FRAMES ||
		                    (a->made > a->taken && a->bytes >= SCAN_AHEAD_BYTES)))
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		struct ahead_slot *sl = &a->slot[a->made % SCAN_AHEAD_FRAMES];
		pthread_mutex_unlock(&a->mu);
		ahead_fill(a->s, sl);
		r = sl->r;
		pthread_mutex_lock(&a->mu); /* pairs with the caller's lock in take */
		a->made++;
		a->bytes += r == 1 ? sl->f.usize : 0;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int archive__scan_ahead_start(struct seg_scan *s, int threaded, struct seg_ahead **out)
{
	struct seg_ahead *a = calloc(1, sizeof(*a));
	if (!a)
		return archive__fail(-ENOMEM, "out of memory");
	a->s = s;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->threaded = threaded && pthread_create(&a->thread, NULL, ahead_run, a) == 0;
	*out = a;
	return 0;
}

/* The next slot, the one held before given back (unless it ended the scan: it stays). */
static struct ahead_slot *ahead_take(struct seg_ahead *a)
{
	pthread_mutex_lock(&a->mu);
	if (a->held && a->slot[a->taken % SCAN_AHEAD_FRAMES].r == 1) {
		a->bytes -= a->slot[a->taken % SCAN_AHEAD_FRAMES].f.usize;
		a->taken++;
		pthread_cond_broadcast(&a->cv);
	}
	while (a->made == a->taken)
		pthread_cond_wait(&a->cv, &a->mu);
	a->held = 1;
	struct ahead_slot *sl = &a->slot[a->taken % SCAN_AHEAD_FRAMES];
	pthread_mutex_unlock(&a->mu);
	return sl;
}

int archive__scan_ahead_next(struct seg_ahead *a, struct seg_scanned *f, char *why, size_t whylen,
                             struct seg_ahead_pos *pos)
{
	struct ahead_slot *sl = a->slot;
	if (a->threaded)
		sl = ahead_take(a);
	else
		ahead_fill(a->s, sl);
	if (sl->r == 1)
		*f = sl->f;
	else if (sl->r == -1)
		snprintf(why, whylen, "%s", sl->why);
	else if (sl->r < -1)
		archive__errmsg_set("%s", sl->why);
	*pos = sl->pos;
	return sl->r;
}

void archive__scan_ahead_stop(struct seg_ahead *a)
{
	if (!a)
		return;
	if (a->threaded) {
		pthread_mutex_lock(&a->mu);
		a->stop = 1;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	for (size_t i = 0; i < SCAN_AHEAD_FRAMES; i++)
		free(a->slot[i].buf);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
