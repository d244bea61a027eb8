/*
 * libFuzzer target: a segment file's bytes, as recovery, `index verify` and
 * queries read them: the scanner (archive/scan.c: frame tags, zstd frames,
 * pcap records, the seek table, and the resync past damage) and the frame
 * reader (archive/reader.c) on the frames the scan found.  The input is the
 * file.  Every record handed out is read to its last byte; and where the
 * scan read the file cleanly, the reader must load each frame the scan
 * found, with the same packets (the two agree on what a good frame is), and
 * refuse it when the index's sizes are off by one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_pvt.h"
#include "archive/scan_pvt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAMES_MAX 64 /* frames compared with the reader */
#define STEPS_MAX 256 /* scan and resync calls per input */

static char dir[4096];  /* a private archive directory under $TMPDIR, made once */
static char path[4200]; /* its segment 1 (closed name) */
static volatile uint8_t sink;

static void records_read(const uint8_t *p, size_t len, size_t pos, uint32_t *packets)
{
	struct archive_record rec;
	*packets = 0;
	while (archive__record_next(p, len, &pos, &rec) == 1) {
		for (uint32_t i = 0; i < rec.caplen; i++)
			sink ^= rec.data[i];
		(*packets)++;
	}
}

static void cleanup(void)
{
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/segments", dir);
	unlink(path);
	rmdir(sub);
	rmdir(dir);
}

/* Writes the input as segment 1's file; 0 or -1. */
static int file_put(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/fuzz_segment.%d", tmp && *tmp ? tmp : "/tmp",
		         (int)getpid());
		snprintf(path, sizeof(path), "%s/segments/%012u.pcap.zst", dir, 1u);
		atexit(cleanup);
	}
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/segments", dir);
	mkdir(dir, 0700); /* again if something cleaned /tmp meanwhile */
	mkdir(sub, 0700);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int ok = write(fd, data, size) == (ssize_t)size;
	close(fd);
	return ok ? 0 : -1;
}

/* The scan: frames into fr[] (up to FRAMES_MAX); 1 when it read the file with no damage. */
static int scan(struct seg_scan *s, struct archive_frame_info *fr, size_t *nfr)
{
	struct seg_scanned f;
	char why[128];
	int clean = 1, n;
	*nfr = 0;
	for (int step = 0; step < STEPS_MAX; step++) {
		n = archive__scan_next(s, &f, why, sizeof(why));
		if (n == -1) {
			clean = 0;
			n = archive__scan_resync(s, &f, why, sizeof(why));
		}
		if (n != 1)
			return n == 0 && clean;
		uint32_t packets;
		records_read(f.data, f.usize, f.records_at, &packets);
		if (packets != f.packets)
			abort(); /* the walk and the check disagree */
		if (*nfr < FRAMES_MAX)
			fr[(*nfr)++] = (struct archive_frame_info){.seg = 1,
			                                           .frame = f.frame,
			                                           .offset = f.offset,
			                                           .csize = f.csize,
			                                           .usize = f.usize,
			                                           .min_ns = f.min_ns,
			                                           .max_ns = f.max_ns,
			                                           .packets = f.packets,
			                                           .chunk = f.chunk};
	}
	return 0;
}

/* The reader on the frames of a clean scan: each loads, with the scan's packets. */
static void reader_agrees(const struct seg_scan *s, const struct archive_frame_info *fr, size_t nfr,
                          int clean)
{
	struct archive a = {.dir = dir, .lock_fd = -1};
	struct archive_segment_info seg = {.id = 1,
	                                   .state = ARCHIVE_SEG_CLOSED,
	                                   .linktype = s->linktype,
	                                   .snaplen = s->snaplen,
	                                   .run = s->run};
	struct archive_frame_reader *r;
	struct archive_record rec;
	if (archive_frame_reader_create(&a, &r) != 0)
		return;
	for (size_t i = 0; i < nfr; i++) {
		int e = archive_frame_load(r, &seg, &fr[i]);
		if (clean && e != 0)
			abort(); /* a frame the scan accepted, refused by the reader */
		uint32_t packets = 0;
		while (e == 0 && archive_frame_next(r, &rec) == 1) {
			for (uint32_t j = 0; j < rec.caplen; j++)
				sink ^= rec.data[j];
			packets++;
		}
		if (e == 0 && packets != fr[i].packets)
			abort();
		struct archive_frame_info off = fr[i];
		off.usize++; /* the index and the file disagree: refused, never read past */
		if (archive_frame_load(r, &seg, &off) == 0)
			abort();
		off = fr[i];
		off.csize--;
		if (archive_frame_load(r, &seg, &off) == 0)
			abort();
	}
	archive_frame_reader_destroy(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct archive_frame_info fr[FRAMES_MAX];
	struct seg_scan s;
	size_t nfr;
	if (file_put(data, size) != 0 || archive__scan_open(&s, path) != 0)
		return 0;
	int clean = scan(&s, fr, &nfr);
	reader_agrees(&s, fr, nfr, clean);
	archive__scan_close(&s);
	return 0;
}
