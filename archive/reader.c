/*
 * Frame reader: reads one zstd frame of a segment, decompresses it, checks
 * its pcap record structure, and walks its records.
 *
 * Nothing from disk is trusted: the frame's compressed size comes from the
 * index and is bounded, the decompressed size must equal both the index's
 * and the frame header's, and every record header must fit the frame and the
 * segment's snaplen before the reader hands it out.  A segment can vanish
 * between the index lookup and the read (retention, or the rename that closes
 * it): the reader tries the other name once and otherwise reports -ENOENT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"

#define MAX_FRAME_BYTES (64u << 20) /* larger frames are treated as corrupt */

struct archive_frame_reader {
	struct archive *a;
	ZSTD_DCtx *dctx;
	int fd;          /* open segment file, or -1 */
	uint64_t fd_seg; /* its id */
	char path[4096]; /* its path (the closed name while none is open) */
	uint8_t *cbuf, *ubuf;
	size_t ccap, ucap;
	/* the loaded frame */
	size_t pos, len;
	uint32_t snaplen;
	uint64_t seg;
	uint32_t frame;
};

int archive_frame_reader_create(struct archive *a, struct archive_frame_reader **out)
{
	struct archive_frame_reader *r = calloc(1, sizeof(*r));
	if (!r || !(r->dctx = ZSTD_createDCtx())) {
		free(r);
		return archive__fail(-ENOMEM, "out of memory");
	}
	r->a = a;
	r->fd = -1;
	*out = r;
	return 0;
}

void archive_frame_reader_destroy(struct archive_frame_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	ZSTD_freeDCtx(r->dctx);
	free(r->cbuf);
	free(r->ubuf);
	free(r);
}

static int segment_fd(struct archive_frame_reader *r, const struct archive_segment_info *s)
{
	char other[4096];
	if (r->fd >= 0 && r->fd_seg == s->id)
		return 0;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = open(archive__seg_path(r->a, s->id, s->state, r->path, sizeof(r->path)),
	             O_RDONLY | O_CLOEXEC);
	if (r->fd < 0 && errno == ENOENT) { /* closed since we looked, or the other way */
		archive__seg_path(r->a, s->id,
		                  s->state == ARCHIVE_SEG_OPEN ? ARCHIVE_SEG_CLOSED
		                                               : ARCHIVE_SEG_OPEN,
		                  other, sizeof(other));
		if ((r->fd = open(other, O_RDONLY | O_CLOEXEC)) >= 0)
			snprintf(r->path, sizeof(r->path), "%s", other);
		else
			errno = ENOENT;
	}
	if (r->fd < 0) {
		int e = errno;
		archive__seg_path(r->a, s->id, ARCHIVE_SEG_CLOSED, r->path, sizeof(r->path));
		return archive__fail(-e, "segment %llu (%s): %s", (unsigned long long)s->id,
		                     r->path, strerror(e));
	}
	r->fd_seg = s->id;
	return 0;
}

const char *archive_frame_reader_path(const struct archive_frame_reader *r)
{
	return r->path;
}

int archive_segment_check_file(struct archive *a, const struct archive_segment_info *s)
{
	char path[4096], other[4096];
	struct stat st;
	archive__seg_path(a, s->id, s->state, path, sizeof(path));
	archive__seg_path(a, s->id,
	                  s->state == ARCHIVE_SEG_OPEN ? ARCHIVE_SEG_CLOSED : ARCHIVE_SEG_OPEN,
	                  other, sizeof(other));
	if (stat(path, &st) != 0 && stat(other, &st) != 0)
		return archive__fail(-ENOENT, "segment %llu: file missing (%s)",
		                     (unsigned long long)s->id, path);
	if ((uint64_t)st.st_size < s->file_bytes)
		return archive__fail(
		    ARCHIVE_E_CORRUPT,
		    "segment %llu: file %s holds %llu bytes, the index counts %llu",
		    (unsigned long long)s->id, path, (unsigned long long)st.st_size,
		    (unsigned long long)s->file_bytes);
	return 0;
}

static int ensure(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	uint8_t *n = realloc(*buf, need);
	if (!n)
		return archive__fail(-ENOMEM, "out of memory");
	*buf = n;
	*cap = need;
	return 0;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return ARCHIVE_E_CORRUPT; /* file shorter than the index says */
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Checks the records of the decompressed frame fit and are the ones the index
 * describes (count and time range: a segment file swapped with another, or
 * restored from elsewhere, is caught here); sets r->pos past any header.
 */
static const char *frame_check(struct archive_frame_reader *r, const struct archive_segment_info *s,
                               const struct archive_frame_info *f)
{
	int lt = s->linktype;
	uint32_t snap = s->snaplen, packets;
	uint64_t lo, hi;
	if (archive__pcap_check(r->ubuf, r->len, r->frame == 0, &lt, &snap, &r->pos, &packets, &lo,
	                        &hi) != 0)
		return "bad pcap records";
	if (packets != f->packets || (packets && (lo != f->min_ns || hi != f->max_ns)))
		return "its packets are not the ones the index describes (a file swapped or "
		       "replaced?)";
	return NULL;
}

/* The frame's tag: the recording and QQ chunk the index has for it. */
static const char *tag_check(const uint8_t *t, const struct archive_segment_info *s,
                             const struct archive_frame_info *f, int *foreign)
{
	if (le32_get(t) != FRAME_TAG_MAGIC || le32_get(t + 4) != FRAME_TAG_LEN - 8)
		return "no frame tag where the index has the frame";
	*foreign = (s->run && le32_get(t + 8) != s->run) || le64_get(t + 16) != f->chunk;
	return *foreign ? "the file's frame names another recording or chunk than the index: "
	                  "not this segment's file (swapped or replaced?)"
	                : NULL;
}

static int frame_fail(const struct archive_frame_reader *r, int err,
                      const struct archive_frame_info *f, const char *why)
{
	return archive__fail(err, "segment %llu frame %u (%s, byte %llu): %s",
	                     (unsigned long long)r->seg, f->frame, r->path,
	                     (unsigned long long)f->offset, why);
}

int archive_frame_load(struct archive_frame_reader *r, const struct archive_segment_info *s,
                       const struct archive_frame_info *f)
{
	r->pos = r->len = 0;
	r->seg = s->id;
	r->frame = f->frame;
	r->snaplen = s->snaplen;
	int e = segment_fd(r, s);
	if (e)
		return e;
	if (f->csize <= FRAME_TAG_LEN || f->csize > MAX_FRAME_BYTES || f->usize > MAX_FRAME_BYTES)
		return frame_fail(r, ARCHIVE_E_CORRUPT, f, "bad sizes in the index");
	if ((e = ensure(&r->cbuf, &r->ccap, f->csize)) ||
	    (e = ensure(&r->ubuf, &r->ucap, f->usize)))
		return e;
	if ((e = read_full(r->fd, r->cbuf, f->csize, f->offset)) != 0)
		return frame_fail(r, e, f,
		                  e == ARCHIVE_E_CORRUPT ? "file too short" : strerror(-e));
	/* the frame's tag (a skippable frame), then the zstd frame */
	const uint8_t *z = r->cbuf + FRAME_TAG_LEN;
	size_t zlen = f->csize - FRAME_TAG_LEN;
	int foreign = 0;
	const char *why = tag_check(r->cbuf, s, f, &foreign);
	if (!why && ZSTD_getFrameContentSize(z, zlen) != f->usize)
		why = "frame header disagrees with the index";
	if (why)
		return frame_fail(r, foreign ? -ESTALE : ARCHIVE_E_CORRUPT, f, why);
	size_t n = ZSTD_decompressDCtx(r->dctx, r->ubuf, f->usize, z, zlen);
	if (ZSTD_isError(n) || n != f->usize)
		return frame_fail(r, ARCHIVE_E_CORRUPT, f,
		                  ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame");
	r->len = n;
	if ((why = frame_check(r, s, f)) != NULL) {
		r->len = 0;
		return frame_fail(r, ARCHIVE_E_CORRUPT, f, why);
	}
	return 0;
}

int archive_frame_next(struct archive_frame_reader *r, struct archive_record *rec)
{
	return archive__record_next(r->ubuf, r->len, &r->pos, rec);
}
