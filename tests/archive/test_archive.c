/*
 * archive unit tests: create/open rules, the writer's segments and frames,
 * term postings (exact and range lookups), flow records, the frame reader
 * (round trip of every byte and timestamp), corrupt-frame detection,
 * segment rotation, and discarding an archive a failed command created.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_pvt.h" /* the drop list test writes its documented keys */
#include "archive/terms_pvt.h"
#include "qq/qq.h"

struct fixture {
	char dir[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/flowscope-test-archive.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* An Ethernet/IPv4/UDP packet from 10.0.0.<host> port <sport> to 10.0.1.1:53, n bytes. */
static uint32_t make_udp(uint8_t *b, uint8_t host, uint16_t sport, uint32_t n)
{
	memset(b, 0, n);
	b[12] = 0x08;
	uint8_t *ip = b + 14;
	ip[0] = 0x45;
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10, ip[15] = host;
	ip[16] = 10, ip[18] = 1, ip[19] = 1;
	uint8_t *u = ip + 20;
	u[0] = (uint8_t)(sport >> 8);
	u[1] = (uint8_t)sport;
	u[3] = 53;
	for (uint32_t i = 42; i < n; i++)
		b[i] = (uint8_t)(i * 31 + host);
	return n;
}

static struct archive *open_rw(const char *dir)
{
	struct archive *a = NULL;
	assert_int_equal(archive_open(dir, ARCHIVE_WRITE | ARCHIVE_CREATE, &a), 0);
	return a;
}

/* Writes n packets: host = i % 4 + 1, sport = 1000 + i, 200 bytes, ts = base + i. */
/* n UDP packets of len captured bytes (at most 1400; 100 more on the wire), one port each. */
static void write_sized(struct archive *a, uint32_t n, uint32_t frame_size, uint64_t base,
                        uint32_t len)
{
	struct archive_writer *w;
	struct archive_writer_config c = {.frame_size = frame_size};
	assert_int_equal(archive_writer_create(a, &c, &w), 0);
	uint8_t b[1400];
	assert_true(len <= sizeof(b));
	for (uint32_t i = 0; i < n; i++) {
		make_udp(b, (uint8_t)(i % 4 + 1), (uint16_t)(1000 + i), len);
		assert_int_equal(archive_writer_add(w, 1, 65535, base + i, len, len + 100, b), 0);
	}
	struct archive_writer_stats st;
	archive_writer_stats(w, &st);
	assert_int_equal(st.packets, n);
	assert_int_equal(archive_writer_close(w), 0);
}

static void write_packets(struct archive *a, uint32_t n, uint32_t frame_size, uint64_t base)
{
	write_sized(a, n, frame_size, base, 200);
}

static int count_seg(const struct archive_segment_info *s, void *arg)
{
	struct archive_segment_info *out = arg;
	*out = *s;
	return 0;
}

static void test_open_rules(void **state)
{
	struct fixture *f = *state;
	struct archive *a;
	char path[512];
	/* not an archive: missing, then a non-empty plain directory */
	snprintf(path, sizeof(path), "%s/none", f->dir);
	assert_int_equal(archive_open(path, ARCHIVE_READ, &a), -ENOENT);
	snprintf(path, sizeof(path), "%s/junk", f->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/junk/file", f->dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(path, sizeof(path), "%s/junk", f->dir);
	assert_int_equal(archive_open(path, ARCHIVE_READ, &a), ARCHIVE_E_NOTARCH);
	assert_int_equal(archive_open(path, ARCHIVE_WRITE | ARCHIVE_CREATE, &a), ARCHIVE_E_NOTARCH);
	assert_non_null(strstr(archive_errmsg(), "not empty"));
	/* create, then a second writer is refused while the first holds it */
	snprintf(path, sizeof(path), "%s/arch", f->dir);
	struct archive *w1 = open_rw(path), *w2;
	assert_int_equal(archive_open(path, ARCHIVE_WRITE, &w2), ARCHIVE_E_LOCKED);
	assert_int_equal(archive_open(path, ARCHIVE_READ, &a), 0); /* readers are welcome */
	archive_close(a);
	archive_close(w1);
	/* a future format version is refused by name */
	snprintf(path, sizeof(path), "%s/arch/FORMAT", f->dir);
	FILE *fp = fopen(path, "w");
	fputs("flowscope-archive 99\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/arch", f->dir);
	assert_int_equal(archive_open(path, ARCHIVE_READ, &a), ARCHIVE_E_VERSION);
}

/* Writes line as dir's FORMAT. */
static void format_put(const char *dir, const char *line)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/FORMAT", dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(line, fp);
	fclose(fp);
}

/* dir's FORMAT is line. */
static void format_is(const char *dir, const char *line)
{
	char path[512], got[64] = "";
	snprintf(path, sizeof(path), "%s/FORMAT", dir);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(got, sizeof(got), fp));
	fclose(fp);
	assert_string_equal(got, line);
}

/*
 * Formats 2 and 3 are read as they are and upgraded to 4 by a writer (before
 * it writes); versions below 2 or above 4 are refused, by readers and
 * writers, and FORMAT is left alone.
 */
static void test_format_versions(void **state)
{
	struct fixture *f = *state;
	struct archive *a;
	char path[512];
	snprintf(path, sizeof(path), "%s/arch", f->dir);
	archive_close(open_rw(path));
	format_is(path, "flowscope-archive 4\n");
	for (unsigned v = 2; v <= 3; v++) {
		char line[64];
		snprintf(line, sizeof(line), "flowscope-archive %u\n", v);
		format_put(path, line);
		assert_int_equal(archive_open(path, ARCHIVE_READ, &a), 0);
		assert_int_equal(archive_format(a), v);
		archive_close(a);
		format_is(path, line); /* readers never change it */
		assert_int_equal(archive_open(path, ARCHIVE_WRITE, &a), 0);
		assert_int_equal(archive_format(a), 4);
		archive_close(a);
		format_is(path, "flowscope-archive 4\n");
	}
	const char *refused[] = {"flowscope-archive 1\n", "flowscope-archive 5\n"};
	for (int i = 0; i < 2; i++) {
		format_put(path, refused[i]);
		assert_int_equal(archive_open(path, ARCHIVE_READ, &a), ARCHIVE_E_VERSION);
		assert_int_equal(archive_open(path, ARCHIVE_WRITE, &a), ARCHIVE_E_VERSION);
		assert_non_null(strstr(archive_errmsg(), "this flowscope reads versions 2 to 4"));
		format_is(path, refused[i]);
	}
}

/* The bytes of a file (malloc()ed), *len of them. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	*len = (size_t)ftell(fp);
	rewind(fp);
	uint8_t *b = malloc(*len);
	assert_int_equal(fread(b, 1, *len, fp), *len);
	fclose(fp);
	return b;
}

static void spill(const char *path, const uint8_t *b, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(b, 1, len, fp), len);
	fclose(fp);
}

static int seg_count(const struct archive_segment_info *s, void *arg)
{
	(void)s;
	++*(int *)arg;
	return 0;
}

/*
 * A damaged index file is refused by archive_open with ARCHIVE_E_CORRUPT and
 * a message naming the archive and index rebuild, never a signal: cut at
 * several sizes, and 64 bytes overwritten at the top of each page in turn
 * (where LMDB keeps its nodes); what opens is readable.
 */
static void test_index_checked(void **state)
{
	struct fixture *f = *state;
	char dir[512], db[600];
	snprintf(dir, sizeof(dir), "%s/arch", f->dir);
	snprintf(db, sizeof(db), "%s/index/data.mdb", dir);
	struct archive *a = open_rw(dir);
	write_packets(a, 3000, 16384, 1000000000ull);
	archive_close(a);
	size_t len;
	uint8_t *orig = slurp(db, &len), *bad = malloc(len);
	size_t cuts[] = {0, 100, 4096, 8192, len / 2, len - 4096};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		spill(db, orig, cuts[i]);
		for (unsigned fl = 0; fl < 2; fl++) {
			assert_int_equal(archive_open(dir, fl ? ARCHIVE_WRITE : ARCHIVE_READ, &a),
			                 ARCHIVE_E_CORRUPT);
			assert_non_null(strstr(archive_errmsg(), dir));
			assert_non_null(strstr(archive_errmsg(), "index rebuild"));
		}
	}
	unsigned refused = 0;
	for (size_t pg = 0; pg < len / 4096; pg++) {
		memcpy(bad, orig, len);
		memset(bad + pg * 4096 + 4096 - 64, 0xff, 64);
		spill(db, bad, len);
		int r = archive_open(dir, ARCHIVE_READ, &a);
		if (r == ARCHIVE_E_CORRUPT) {
			refused++;
			continue;
		}
		assert_int_equal(r, 0);
		struct archive_rtxn *t;
		int n = 0;
		if (archive_rtxn_begin(a, &t) == 0) {
			archive_segments(t, 0, 0, seg_count, &n);
			archive_rtxn_end(t);
		}
		archive_close(a);
	}
	assert_true(refused > 0);
	spill(db, orig, len);
	assert_int_equal(archive_open(dir, ARCHIVE_READ, &a), 0);
	archive_close(a);
	free(orig);
	free(bad);
}

static void test_write_read_terms(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	write_packets(a, 1000, 16384, 5000000000ull); /* ~216 B records: ~76 per frame */

	struct archive_rtxn *t;
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	struct archive_segment_info s = {0};
	assert_int_equal(archive_segments(t, 0, 0, count_seg, &s), 0);
	assert_int_equal(s.id, 1);
	assert_int_equal(s.state, ARCHIVE_SEG_CLOSED);
	assert_int_equal(s.packets, 1000);
	assert_int_equal(s.wire_bytes, 300000);
	assert_int_equal(s.record_bytes, 24 + 1000 * (16 + 200));
	assert_int_equal(s.min_ns, 5000000000ull);
	assert_int_equal(s.max_ns, 5000000999ull);
	assert_true(s.frames >= 13);
	assert_int_equal(s.flows, 1000);

	/* host 10.0.0.2 is in every frame */
	uint8_t h[16] = {0};
	h[10] = h[11] = 0xff;
	h[12] = 10, h[15] = 2;
	uint64_t *fr = NULL;
	size_t n = 0;
	const uint64_t S = 1ull << 32; /* segment 1 */
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_HOST, h, h, 1, 1, &fr, &n), 0);
	assert_int_equal(n, s.frames);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fr[i], S | i);
	/* outside the segment range: nothing */
	n = 0;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_HOST, h, h, 2, 500, &fr, &n), 0);
	assert_int_equal(n, 0);
	/* port 1999 (the last packet) only in the last frame */
	uint8_t p[2] = {1999 >> 8, 1999 & 0xff};
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_PORT, p, p, 0, 9, &fr, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fr[0], S | (s.frames - 1));
	/* port range 1000..1010: the first frame only; a port never seen: nothing */
	n = 0;
	uint8_t lo[2] = {1000 >> 8, 1000 & 0xff}, hi[2] = {1010 >> 8, 1010 & 0xff};
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_PORT, lo, hi, 1, 1, &fr, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fr[0], S | 0);
	n = 0;
	uint8_t none[2] = {0xff, 0xfe};
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_PORT, none, none, 1, 1, &fr, &n), 0);
	assert_int_equal(n, 0);
	/* net 10.0.0.0/24 as a host range: every frame, each once */
	uint8_t nlo[16] = {0}, nhi[16] = {0};
	nlo[10] = nlo[11] = nhi[10] = nhi[11] = 0xff;
	nlo[12] = nhi[12] = 10;
	nhi[15] = 0xff;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_HOST, nlo, nhi, 1, 1, &fr, &n), 0);
	assert_int_equal(n, s.frames);
	/* ethertype and protocol terms */
	n = 0;
	uint8_t et[2] = {0x08, 0x00}, udp = 17;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_ETHERTYPE, et, et, 1, 1, &fr, &n),
	                 0);
	assert_int_equal(n, s.frames);
	n = 0;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_PROTO, &udp, &udp, 1, 1, &fr, &n),
	                 0);
	assert_int_equal(n, s.frames);
	/* FLOW is not a term of the index */
	uint8_t fl[ARCHIVE_TERM_MAXLEN] = {0};
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_FLOW, fl, fl, 1, 1, &fr, &n),
	                 -EINVAL);
	free(fr);
	archive_rtxn_end(t);
	archive_close(a);
}

struct read_ctx {
	struct archive_frame_reader *r;
	const struct archive_segment_info *s;
	uint32_t next;
};

static int read_frame_cb(const struct archive_frame_info *fi, void *arg)
{
	struct read_ctx *c = arg;
	assert_int_equal(archive_frame_load(c->r, c->s, fi), 0);
	struct archive_record rec;
	uint32_t in_frame = 0;
	while (archive_frame_next(c->r, &rec)) {
		uint8_t want[200];
		make_udp(want, (uint8_t)(c->next % 4 + 1), (uint16_t)(1000 + c->next),
		         sizeof(want));
		assert_int_equal(rec.ts_ns, 5000000000ull + c->next);
		assert_int_equal(rec.caplen, 200);
		assert_int_equal(rec.wirelen, 300);
		assert_memory_equal(rec.data, want, 200);
		c->next++;
		in_frame++;
	}
	assert_int_equal(in_frame, fi->packets);
	assert_true(fi->min_ns <= fi->max_ns);
	return 0;
}

static void test_frame_round_trip(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	write_packets(a, 1000, 16384, 5000000000ull);
	struct archive_rtxn *t;
	struct archive_segment_info s = {0};
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	assert_int_equal(archive_segments(t, 0, 0, count_seg, &s), 0);
	struct read_ctx c = {.s = &s};
	assert_int_equal(archive_frame_reader_create(a, &c.r), 0);
	assert_int_equal(archive_frames(t, 1, read_frame_cb, &c), 0);
	assert_int_equal(c.next, 1000);

	/* flip a byte inside frame 1: the reader reports corruption, never bad data */
	struct archive_frame_info fi;
	assert_int_equal(archive_frame_get(t, 1, 1, &fi), 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/segments/000000000001.pcap.zst", f->dir);
	int fd = open(path, O_RDWR);
	uint8_t byte;
	assert_int_equal(pread(fd, &byte, 1, (off_t)(fi.offset + fi.csize / 2)), 1);
	byte ^= 0x5a;
	assert_int_equal(pwrite(fd, &byte, 1, (off_t)(fi.offset + fi.csize / 2)), 1);
	close(fd);
	assert_int_equal(archive_frame_load(c.r, &s, &fi), ARCHIVE_E_CORRUPT);
	struct archive_record rec;
	assert_int_equal(archive_frame_next(c.r, &rec), 0);
	archive_frame_reader_destroy(c.r);
	archive_rtxn_end(t);
	archive_close(a);
}

/*
 * Frames of 12 MiB (five of them, 45 000 packets of 1400 bytes): verify's read-ahead stops at its byte
 * budget (32 MiB, three frames ahead here) rather than its frame count, and
 * frees the buffers of frames that large; what it finds is what one thread
 * finds.
 */
static void test_verify_large_frames(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	write_sized(a, 45000, 12u << 20, 5000000000ull, 1400); /* large: few to index for 60 MB */
	struct archive_verify_stats one, two;
	assert_int_equal(archive_verify(a, 1, NULL, NULL, &one), 0);
	assert_int_equal(archive_verify(a, 2, NULL, NULL, &two), 0);
	assert_int_equal(one.problems, 0);
	assert_int_equal(two.problems, 0);
	assert_int_equal(one.frames, two.frames);
	assert_true(two.frames >= 5);
	assert_int_equal(two.packets, 45000);
	archive_close(a);
}

static int count_segs(const struct archive_segment_info *s, void *arg)
{
	(void)s;
	(*(int *)arg)++;
	return 0;
}

static void test_rotation_and_time_range(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	struct archive_writer *w;
	/* 1 MiB segments of random (incompressible) 1400-byte packets: several segments */
	struct archive_writer_config c = {.segment_size = 1u << 20, .frame_size = 65536};
	assert_int_equal(archive_writer_create(a, &c, &w), 0);
	uint8_t b[1400];
	uint32_t x = 1;
	for (uint32_t i = 0; i < 3000; i++) {
		make_udp(b, 1, 7, sizeof(b));
		for (size_t k = 42; k < sizeof(b); k++)
			b[k] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
		assert_int_equal(archive_writer_add(w, 1, 65535, 1000000000ull * i, 1400, 1400, b),
		                 0);
	}
	/* a packet of another link type starts a new segment */
	assert_int_equal(archive_writer_add(w, 101, 65535, 1000000000ull * 3000, 60, 60, b + 14),
	                 0);
	assert_int_equal(archive_writer_close(w), 0);
	struct archive_rtxn *t;
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	int all = 0, some = 0;
	assert_int_equal(archive_segments(t, 0, 0, count_segs, &all), 0);
	assert_true(all >= 5);
	/* [1000 s, 1001 s): the one segment holding packet 1000 */
	assert_int_equal(archive_segments(t, 1000000000000ull, 1001000000000ull, count_segs, &some),
	                 0);
	assert_int_equal(some, 1);
	struct archive_summary sum;
	assert_int_equal(archive_summary(t, &sum), 0);
	assert_int_equal(sum.packets, 3001);
	assert_int_equal(sum.segments, (uint64_t)all);
	assert_int_equal(sum.segments_open, 0);
	assert_true(sum.index_bytes > 0);
	archive_rtxn_end(t);
	archive_close(a);
}

/* ---- posting lists ---- */

struct frames_out {
	uint32_t f[4096];
	size_t n;
};

static int collect_frame(uint32_t frame, void *arg)
{
	struct frames_out *o = arg;
	if (o->n == 4096)
		return 1;
	o->f[o->n++] = frame;
	return 0;
}

static void test_plist_codec(void **state)
{
	(void)state;
	struct plist pl = {0};
	/* {3}: gap 3, single: one byte 3 << 1 */
	assert_int_equal(archive__plist_add(&pl, 3), 0);
	assert_int_equal(pl.len, 1);
	assert_int_equal(pl.buf[0], 6);
	/* {3,4,5}: one run item (3 << 1 | 1, 3 - 2) */
	assert_int_equal(archive__plist_add(&pl, 4), 0);
	assert_int_equal(archive__plist_add(&pl, 5), 0);
	assert_int_equal(pl.len, 2);
	assert_int_equal(pl.buf[0], 7);
	assert_int_equal(pl.buf[1], 1);
	/* + {300}: gap 294 after the run end 6: varint(588) = 0xcc 0x04 */
	assert_int_equal(archive__plist_add(&pl, 300), 0);
	assert_int_equal(pl.len, 4);
	assert_int_equal(pl.buf[2], 0xcc);
	assert_int_equal(pl.buf[3], 0x04);
	free(pl.buf);

	/* random sets round trip; cut keeps exactly the frames below the cut */
	uint32_t x = 12345;
	for (int round = 0; round < 200; round++) {
		struct plist p = {0};
		static uint32_t want[4096];
		size_t n = 0;
		uint32_t f = 0;
		for (int i = 0; i < 1000; i++) {
			x = x * 1103515245u + 12345u;
			uint32_t step =
			    (x >> 16) % 8 == 0 ? (x >> 8) % 70000 + 1 : (x >> 20) % 3 + 1;
			f += step;
			want[n++] = f;
			assert_int_equal(archive__plist_add(&p, f), 0);
		}
		struct frames_out o = {.n = 0};
		assert_int_equal(archive__plist_decode(p.buf, p.len, collect_frame, &o), 0);
		assert_int_equal(o.n, n);
		assert_memory_equal(o.f, want, n * sizeof(want[0]));
		uint32_t cut = want[(x >> 4) % n];
		assert_int_equal(archive__plist_cut(&p, cut), 0);
		o.n = 0;
		assert_int_equal(archive__plist_decode(p.buf, p.len, collect_frame, &o), 0);
		size_t keep = 0;
		while (keep < n && want[keep] < cut)
			keep++;
		assert_int_equal(o.n, keep);
		assert_memory_equal(o.f, want, keep * sizeof(want[0]));
		/* after a cut the list grows on as if the cut frames never were */
		assert_int_equal(archive__plist_add(&p, cut + 5), 0);
		o.n = 0;
		assert_int_equal(archive__plist_decode(p.buf, p.len, collect_frame, &o), 0);
		assert_int_equal(o.n, keep + 1);
		assert_int_equal(o.f[keep], cut + 5);
		free(p.buf);
	}
	/* malformed: truncated varint, run past 2^32, truncated run length */
	struct frames_out o = {.n = 0};
	const uint8_t trunc[] = {0x80}, big[] = {0xfe, 0xff, 0xff, 0xff, 0x0f, 0xfe, 0xff, 0xff,
	                                         0xff, 0x0f, 0xfe, 0xff, 0xff, 0xff, 0x0f};
	const uint8_t norun[] = {0x07};
	assert_int_equal(archive__plist_decode(trunc, sizeof(trunc), collect_frame, &o), -EINVAL);
	assert_int_equal(archive__plist_decode(big, sizeof(big), collect_frame, &o), -EINVAL);
	assert_int_equal(archive__plist_decode(norun, sizeof(norun), collect_frame, &o), -EINVAL);
}

/*
 * The index's record decoders are strict, as `index verify` is: an accepted
 * record is exactly what the encoder writes.  Reserved bytes, unknown flags,
 * wrong sizes, over-long varints and trailing bytes are damage.
 */
static void test_strict_decoders(void **state)
{
	(void)state;
	struct archive_segment_info s = {.state = ARCHIVE_SEG_CLOSED, .frames = 2, .run = 1};
	uint8_t seg[SEG_REC_LEN + 1] = {0};
	archive__seg_encode(&s, 5, seg);
	MDB_val v = {.mv_size = SEG_REC_LEN, .mv_data = seg};
	assert_int_equal(archive__seg_decode(1, &v, &s), 0);
	seg[90] = 1; /* reserved */
	assert_int_equal(archive__seg_decode(1, &v, &s), ARCHIVE_E_CORRUPT);
	seg[90] = 0;
	seg[9] = 1; /* flag bit 8: unknown */
	assert_int_equal(archive__seg_decode(1, &v, &s), ARCHIVE_E_CORRUPT);
	seg[9] = 0;
	v.mv_size = SEG_REC_LEN + 1; /* a trailing byte */
	assert_int_equal(archive__seg_decode(1, &v, &s), ARCHIVE_E_CORRUPT);

	struct archive_frame_info f = {
	    .csize = 100, .usize = 200, .flags = ARCHIVE_FRAME_UNINDEXED};
	uint8_t fk[FRAME_KEY_LEN] = {0}, fr[FRAME_REC_LEN + 1] = {0};
	archive__frame_encode(&f, fr);
	MDB_val k = {.mv_size = sizeof(fk), .mv_data = fk};
	v = (MDB_val){.mv_size = FRAME_REC_LEN, .mv_data = fr};
	assert_int_equal(archive__frame_decode(&k, &v, &f), 0);
	v.mv_size = FRAME_REC_LEN + 1;
	assert_int_equal(archive__frame_decode(&k, &v, &f), ARCHIVE_E_CORRUPT);
	v.mv_size = FRAME_REC_LEN;
	fr[36] = 2; /* unknown flag */
	assert_int_equal(archive__frame_decode(&k, &v, &f), ARCHIVE_E_CORRUPT);

	struct archive_flow_info fl = {.first_ns = 1000, .last_ns = 1500, .packets = {1, 0}};
	uint8_t key[FLOW_KEY_LEN] = {0}, val[FLOW_REC_MAX + 4];
	size_t n = archive__flow_encode(&fl, val);
	k = (MDB_val){.mv_size = sizeof(key), .mv_data = key};
	v = (MDB_val){.mv_size = n, .mv_data = val};
	assert_int_equal(archive__flow_decode(&k, &v, &fl), 0);
	/* packets a->b = 1 written over-long as 81 00; the rest moves on by one byte */
	uint8_t longer[FLOW_REC_MAX + 4];
	memcpy(longer, val, 10);
	longer[10] = 0x81;
	longer[11] = 0x00;
	memcpy(longer + 12, val + 11, n - 11);
	assert_int_equal(val[10], 0x01);
	v = (MDB_val){.mv_size = n + 1, .mv_data = longer};
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);
	/* last - first of more than 64 bits: ten bytes, the last 0x7f */
	uint8_t wide[8 + 10 + 4 + 2 + 1] = {0};
	memset(wide + 8, 0xff, 9);
	wide[17] = 0x7f;
	v = (MDB_val){.mv_size = sizeof(wide), .mv_data = wide};
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);
	/* last - first past the end of time: first + delta beyond 64 bits */
	le64_put(val, UINT64_MAX - 100);
	v = (MDB_val){.mv_size = n, .mv_data = val};
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);
	le64_put(val, 1000);
	key[45] = 0x10; /* a VLAN id of more than 12 bits */
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);
	key[45] = 0;

	/* format 4: an IPv4 flow's key is 25 bytes (no IPv4-mapped prefixes), an IPv6 flow's
	 * 49; both read back as the flow; the 25-byte key's VLAN ids are 12 bits too */
	struct ft_flow_key f4 = {.a = {[10] = 0xff, [11] = 0xff, 10, 0, 0, 1},
	                         .b = {[10] = 0xff, [11] = 0xff, 10, 0, 0, 2},
	                         .port_a = 53000,
	                         .port_b = 53,
	                         .proto = 17,
	                         .vlan = 300,
	                         .vlan_inner = 42},
	                   f6 = f4, back;
	f6.a[10] = 0xfe;
	k.mv_size = archive__flow_key_put(7, &f4, 0, key);
	assert_int_equal(k.mv_size, FLOW_KEY_LEN_IP4);
	const uint8_t want4[FLOW_KEY_LEN_IP4] = {0,    0,    0,  0,    0,    0, 0, 7,    10,
	                                         0,    0,    1,  10,   0,    0, 2, 0xcf, 0x08,
	                                         0x00, 0x35, 17, 0x01, 0x2c, 0, 42};
	assert_memory_equal(key, want4, FLOW_KEY_LEN_IP4);
	assert_int_equal(archive__flow_decode(&k, &v, &fl), 0);
	assert_int_equal(fl.seg, 7);
	assert_memory_equal(&fl.key, &f4, sizeof(f4));
	key[23] = 0x10; /* the inner VLAN id's reserved bits */
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);
	assert_int_equal(archive__flow_key_put(7, &f4, 1, key), FLOW_KEY_LEN); /* format 3's */
	k.mv_size = FLOW_KEY_LEN;
	archive__flow_key_get(&k, &back);
	assert_memory_equal(&back, &f4, sizeof(f4));
	k.mv_size = archive__flow_key_put(7, &f6, 0, key);
	assert_int_equal(k.mv_size, FLOW_KEY_LEN);
	archive__flow_key_get(&k, &back);
	assert_memory_equal(&back, &f6, sizeof(f6));
	k.mv_size = FLOW_KEY_LEN_IP4 + 1; /* no such length */
	assert_int_equal(archive__flow_decode(&k, &v, &fl), ARCHIVE_E_CORRUPT);

	/* posting lists: {3} as an over-long varint, {3} {4} as two runs that touch */
	struct frames_out o = {.n = 0};
	const uint8_t over[] = {0x86, 0x00}, touch[] = {0x06, 0x00};
	assert_int_equal(archive__plist_decode(over, sizeof(over), collect_frame, &o), -EINVAL);
	o.n = 0;
	assert_int_equal(archive__plist_decode(touch, sizeof(touch), collect_frame, &o), -EINVAL);
}

/* Both varint readers (flow records, posting lists) are the one strict codec: a varint
 * written longer than it needs (0x80 0x00 for 0) or beyond 64 bits is damage, not a value. */
static void test_varint_strict(void **state)
{
	(void)state;
	struct frames_out o = {.n = 0};
	const uint8_t overlong[] = {0x80, 0x00}, overlong_run[] = {0x03, 0x81, 0x00};
	assert_int_equal(archive__plist_decode(overlong, sizeof(overlong), collect_frame, &o),
	                 -EINVAL);
	assert_int_equal(
	    archive__plist_decode(overlong_run, sizeof(overlong_run), collect_frame, &o), -EINVAL);

	struct archive_flow_info f = {.first_ns = 10, .last_ns = 20, .packets = {1, 2}};
	uint8_t k[FLOW_KEY_LEN] = {0}, good[FLOW_REC_MAX], bad[FLOW_REC_MAX + 16];
	size_t n = archive__flow_encode(&f, good);
	MDB_val kv = {.mv_size = FLOW_KEY_LEN, .mv_data = k}, v = {.mv_size = n, .mv_data = good};
	struct archive_flow_info g;
	assert_int_equal(archive__flow_decode(&kv, &v, &g), 0);
	assert_int_equal(g.last_ns, 20);
	/* the first varint (last - first = 10) rewritten as 0x8a 0x00: over-long */
	memcpy(bad, good, 8);
	bad[8] = 0x8a;
	bad[9] = 0x00;
	memcpy(bad + 10, good + 9, n - 9);
	v = (MDB_val){.mv_size = n + 1, .mv_data = bad};
	assert_int_equal(archive__flow_decode(&kv, &v, &g), ARCHIVE_E_CORRUPT);
	/* ... as ten bytes whose last carries bits beyond 2^64 */
	memcpy(bad, good, 8);
	memset(bad + 8, 0xff, 9);
	bad[17] = 0x7f;
	memcpy(bad + 18, good + 9, n - 9);
	v = (MDB_val){.mv_size = n + 9, .mv_data = bad};
	assert_int_equal(archive__flow_decode(&kv, &v, &g), ARCHIVE_E_CORRUPT);
	/* the largest value, 2^64 - 1, is ten bytes ending 0x01 and reads back (from a first
	 * time of 0: the last time must fit in 64 bits too) */
	f.first_ns = 0;
	f.last_ns = UINT64_MAX;
	n = archive__flow_encode(&f, good);
	assert_int_equal(good[17], 0x01);
	v = (MDB_val){.mv_size = n, .mv_data = good};
	assert_int_equal(archive__flow_decode(&kv, &v, &g), 0);
	assert_int_equal(g.last_ns, f.last_ns);
}

/* archive__grow refuses a size beyond size_t (it used to double its capacity to 0 and spin). */
static void test_grow_overflow(void **state)
{
	(void)state;
	uint64_t *v = NULL;
	size_t cap = 0;
	assert_int_equal(archive__grow((void **)&v, &cap, 100, sizeof(*v)), 0);
	assert_int_equal(cap, 128);
	assert_int_equal(archive__grow((void **)&v, &cap, SIZE_MAX, sizeof(*v)), -ENOMEM);
	assert_int_equal(cap, 128);
	free(v);
}

/* The dump test's links: link 0 is Ethernet with snaplen 256; counts the calls. */
static struct archive_dump_link dump_test_link(void *arg, unsigned no)
{
	(*(unsigned *)arg)++;
	assert_int_equal(no, 0);
	return (struct archive_dump_link){.linktype = 1, .snaplen = 256};
}

static int dump_test_flow(const struct archive_flow_info *fi, void *arg)
{
	struct archive_flow_info *out = arg;
	*out = *fi;
	out->seg++; /* seen */
	return 0;
}

/* The dump tests' QQ: 4 chunks of 64 KiB, one producer and analyzer, notes of note_size. */
static struct qq *dump_qq(uint32_t note_size)
{
	struct qq *q;
	struct qq_config qc = {.size = 4u << 16,
	                       .chunk_size = 1u << 16,
	                       .producers = 1,
	                       .analyzers = 1,
	                       .high_water = QQ_NO_HOLD,
	                       .mode = QQ_MODE_BACKPRESSURE,
	                       .lazy = 1,
	                       .note_size = note_size};
	assert_int_equal(qq_create(&qc, &q), 0);
	return q;
}

/* A rule view with one key rule, trigger 7, on the flow of make_udp(host 2, port 1002). */
static struct archive_rule_view *host2_rule(struct archive_rules **rules)
{
	struct archive_rule_view *view;
	assert_int_equal(archive_rules_create(rules), 0);
	assert_int_equal(archive_rule_view_create(*rules, &view), 0);
	uint8_t b[200];
	struct ft_packet pkt;
	struct ft_flow_key key;
	int dir;
	make_udp(b, 2, 1002, sizeof(b));
	assert_int_equal(ft_parse(1, b, sizeof(b), &pkt), 0);
	assert_int_equal(archive_flow_key_of(&pkt, &key, &dir), 0);
	assert_int_equal(archive_rules_add(*rules, &key, FT_KEY_BIDIRECTIONAL, 0, NULL, 7), 0);
	return view;
}

/*
 * archive_writer_dump_chunk: one QQ chunk of three flows (hosts 1..3) into a writer in
 * triggered capture, a rule on host 2's flow (trigger 7): host 2's packets archived and
 * tagged, the others skipped; host 2's oversize packet (caplen > the link's snaplen) and
 * one past the format's time counted and left out.
 */
static void test_dump_chunk(void **state)
{
	struct fixture *f = *state;
	struct qq *q = dump_qq(0);
	struct qq_producer *p;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	uint8_t b[300];
	for (uint32_t i = 0; i < 32; i++) {
		uint8_t host = (uint8_t)(i % 3 + 1);
		uint32_t n = i == 31 ? 300 : 200; /* 31 (host 2): above the snaplen */
		uint64_t ts = i == 28 ? ARCHIVE_MAX_TS_NS + 1 : 5000000000ull + i; /* 28: host 2 */
		make_udp(b, host, 1000 + host, n);
		assert_int_equal(qq_producer_append(p, ts, n, n, 0, 0, b), 0);
	}
	qq_producer_close(p);
	struct qq_peek pk;
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 1000), 0);
	assert_int_equal(pk.end - pk.first, 32);
	qq_analyzer_done(q, &pk);
	struct qq_chunk *c;
	assert_int_equal(qq_dumper_next(q, &c, 1000), 0);

	struct archive_rules *rules;
	struct archive_rule_view *view = host2_rule(&rules);

	struct archive *a = open_rw(f->dir);
	struct archive_writer *w;
	struct archive_writer_config wc = {0};
	assert_int_equal(archive_writer_create(a, &wc, &w), 0);
	unsigned link_calls = 0;
	struct archive_dump_opts o = {
	    .view = view, .triggered_only = 1, .link = dump_test_link, .link_arg = &link_calls};
	struct archive_dump_stats st = {0};
	assert_int_equal(archive_writer_dump_chunk(w, c, &o, &st), 0);
	qq_dumper_release(q, c);
	assert_int_equal(st.selected, 11); /* host 2: i = 1, 4, ..., 31 */
	assert_int_equal(st.skipped, 21);
	assert_int_equal(st.oversize, 1);
	assert_int_equal(st.untimed, 1);
	assert_int_equal(link_calls, 1);
	assert_int_equal(archive_writer_close(w), 0);

	struct archive_rtxn *t;
	struct archive_flow_info fi = {.seg = 0};
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	assert_int_equal(archive_flows(t, 1, dump_test_flow, &fi), 0);
	assert_int_equal(fi.seg, 2); /* one flow, in segment 1 */
	assert_int_equal(fi.trigger, 7);
	assert_int_equal(fi.packets[0] + fi.packets[1], 9); /* 11 less 28 and 31 */
	archive_rtxn_end(t);
	archive_close(a);
	archive_rule_view_destroy(view);
	archive_rules_destroy(rules);
	qq_destroy(q);
}

/*
 * Parsed once: with archive_dump_opts.parsed, the dumper takes each record's note (the
 * ft_packet an analyzer left) instead of parsing the packet again, and parses only a
 * record whose note is zeros (no FT_PKT_PARSED).  Host 1's notes here claim host 2's flow:
 * the rule on host 2's flow tags them (a dumper that parsed again would not), and host 2's
 * packet with a zeroed note is parsed and tagged all the same.
 */
static void test_dump_chunk_parsed(void **state)
{
	struct fixture *f = *state;
	struct qq *q = dump_qq(sizeof(struct ft_packet));
	struct qq_producer *p;
	assert_int_equal(qq_producer_open(q, 0, &p), 0);
	uint8_t b[200], b2[200];
	for (uint32_t i = 0; i < 6; i++) {
		make_udp(b, (uint8_t)(i % 2 + 1), 1000 + (uint16_t)(i % 2 + 1), sizeof(b));
		assert_int_equal(qq_producer_append(p, 5000000000ull + i, 200, 200, 0, 0, b), 0);
	}
	qq_producer_close(p);
	struct qq_peek pk;
	assert_int_equal(qq_analyzer_next(q, 0, &pk, 1000), 0);
	make_udp(b2, 2, 1002, sizeof(b2));
	for (uint32_t i = 0; i < 5; i++) { /* record 5 keeps the producer's zeros */
		struct qq_record *rec = qq_chunk_record(pk.chunk, i);
		const struct ft_packet *zero = qq_record_note(rec);
		assert_int_equal(zero->flags, 0);
		assert_int_equal(ft_parse(1, b2, 200, qq_record_note(rec)), 0); /* host 2's view */
	}
	qq_analyzer_done(q, &pk);
	struct qq_chunk *c;
	assert_int_equal(qq_dumper_next(q, &c, 1000), 0);

	struct archive_rules *rules;
	struct archive_rule_view *view = host2_rule(&rules);

	struct archive *a = open_rw(f->dir);
	struct archive_writer *w;
	struct archive_writer_config wc = {0};
	assert_int_equal(archive_writer_create(a, &wc, &w), 0);
	unsigned link_calls = 0;
	struct archive_dump_opts o = {.view = view,
	                              .triggered_only = 1,
	                              .link = dump_test_link,
	                              .link_arg = &link_calls,
	                              .parsed = 1};
	struct archive_dump_stats st = {0};
	assert_int_equal(archive_writer_dump_chunk(w, c, &o, &st), 0);
	qq_dumper_release(q, c);
	assert_int_equal(st.selected, 6);
	assert_int_equal(st.skipped, 0);
	assert_int_equal(archive_writer_close(w), 0);

	struct archive_rtxn *t;
	struct archive_flow_info fi = {.seg = 0};
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	assert_int_equal(archive_flows(t, 1, dump_test_flow, &fi), 0);
	assert_int_equal(fi.seg, 2); /* one flow: the index keyed them by the notes too */
	assert_int_equal(fi.packets[0] + fi.packets[1], 6);
	archive_rtxn_end(t);
	archive_close(a);
	archive_rule_view_destroy(view);
	archive_rules_destroy(rules);
	qq_destroy(q);
}

/* The retention keeper: the clock's pass due once a second (at once while a disk is
 * full); passes add up what they dropped. */
static void test_retention_keeper(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	write_packets(a, 100, 16384, 5000000000ull); /* one closed segment, from 1970 */
	struct archive_retention_keeper *k;
	assert_int_equal(archive_retention_keeper_create(a, 0, 86400ull * 1000000000ull, 0, 0, &k),
	                 0);
	uint64_t s = 1000000000ull;
	assert_int_equal(archive_retention_keeper_due(k, 5 * s, 0), 1);
	assert_int_equal(archive_retention_keeper_due(k, 5 * s + s / 2, 0), 0);
	assert_int_equal(archive_retention_keeper_due(k, 5 * s + s / 2, 1), 1); /* full */
	assert_int_equal(archive_retention_keeper_due(k, 6 * s, 0), 0);
	assert_int_equal(archive_retention_keeper_due(k, 6 * s + s / 2, 0), 1);
	int first = -1;
	assert_int_equal(archive_retention_keeper_pass(k, 0, &first), 0);
	assert_int_equal(first, 0);
	assert_int_equal(archive_retention_keeper_pass(k, 0, NULL), 0); /* nothing left to drop */
	struct archive_retention_totals t;
	archive_retention_keeper_totals(k, &t);
	assert_int_equal(t.runs, 2);
	assert_int_equal(t.segments, 1);
	assert_true(t.bytes > 0);
	assert_int_equal(t.err, 0);
	int segs = 0;
	struct archive_rtxn *x;
	assert_int_equal(archive_rtxn_begin(a, &x), 0);
	assert_int_equal(archive_segments(x, 0, 0, count_segs, &segs), 0);
	assert_int_equal(segs, 0);
	archive_rtxn_end(x);
	archive_retention_keeper_destroy(k);
	archive_close(a);
}

struct flows_of {
	struct archive_flow_info *v;
	int n;
};

static int collect_flow(const struct archive_flow_info *fi, void *arg)
{
	struct flows_of *l = arg;
	if (l->n < 128)
		l->v[l->n++] = *fi;
	return 0;
}

/* The ids of the segments left, oldest id first (at most 8). */
struct seg_ids {
	uint64_t id[8];
	int n;
};

static int list_seg_ids(const struct archive_segment_info *s, void *arg)
{
	struct seg_ids *l = arg;
	if (l->n < 8)
		l->id[l->n++] = s->id;
	return 0;
}

static struct seg_ids segs_left(struct archive *a)
{
	struct seg_ids l = {.n = 0};
	struct archive_rtxn *t;
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	assert_int_equal(archive_segments(t, 0, 0, list_seg_ids, &l), 0);
	archive_rtxn_end(t);
	return l;
}

/* The trigger of flow (host, sport)'s record in segment seg (-1: no record). */
static int flow_trigger_in(struct archive *a, uint64_t seg, const struct ft_flow_key *key)
{
	struct archive_flow_info fi[128];
	struct flows_of l = {fi, 0};
	struct archive_rtxn *t;
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	assert_int_equal(archive_flows(t, seg, collect_flow, &l), 0);
	archive_rtxn_end(t);
	for (int i = 0; i < l.n; i++)
		if (memcmp(&fi[i].key, key, sizeof(*key)) == 0)
			return fi[i].trigger;
	return -1;
}

/* Re-keys segment seg's record of an IPv4 flow as format 3 wrote it (the 49-byte key). */
static void widen_flow(struct archive *a, uint64_t seg, const struct ft_flow_key *key)
{
	uint8_t kb[FLOW_KEY_LEN], wb[FLOW_KEY_LEN], vb[FLOW_REC_MAX];
	MDB_txn *txn;
	MDB_val k = {.mv_size = archive__flow_key_put(seg, key, 0, kb), .mv_data = kb}, v;
	MDB_val w = {.mv_size = archive__flow_key_put(seg, key, 1, wb), .mv_data = wb};
	assert_int_equal(k.mv_size, FLOW_KEY_LEN_IP4);
	assert_int_equal(w.mv_size, FLOW_KEY_LEN);
	assert_int_equal(mdb_txn_begin(a->env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_get(txn, a->db_flows, &k, &v), 0);
	assert_true(v.mv_size <= sizeof(vb));
	memcpy(vb, v.mv_data, v.mv_size);
	v.mv_data = vb;
	assert_int_equal(mdb_del(txn, a->db_flows, &k, NULL), 0);
	assert_int_equal(mdb_put(txn, a->db_flows, &w, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

/*
 * Triggers after the fact and pins: three segments (A, B, C: the same 100 flows at 1, 2, 3 s
 * of 1970) written without triggers; archive_flows_mark gives one flow's records trigger 9
 * in the segments that reach its first time (B and C), once, also where the record has the
 * key of format 3 (C's, re-keyed); retention with pins then drops A for age but never B and
 * C, which go for room (max_bytes) only, counted as pinned.
 */
static void test_pins(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	const uint64_t s = 1000000000ull;
	for (uint64_t t = 1; t <= 3; t++)
		write_packets(a, 100, 16384, t * s);
	struct seg_ids l = segs_left(a);
	assert_int_equal(l.n, 3);
	uint8_t b[200];
	struct ft_packet pkt;
	struct ft_flow_key key;
	int dir;
	make_udp(b, 2, 1005, sizeof(b)); /* packet 5 of each segment */
	assert_int_equal(ft_parse(1, b, sizeof(b), &pkt), 0);
	assert_int_equal(archive_flow_key_of(&pkt, &key, &dir), 0);
	uint64_t from = 2 * s + 50, marked = 0;
	widen_flow(a, l.id[2], &key);
	assert_int_equal(archive_flows_mark(a, &key, &from, 1, 9, &marked), 0);
	assert_int_equal(marked, 2); /* B and C */
	assert_int_equal(archive_flows_mark(a, &key, &from, 1, 10, &marked), 0);
	assert_int_equal(marked, 0); /* each has its trigger already */
	assert_int_equal(flow_trigger_in(a, l.id[0], &key), 0);
	assert_int_equal(flow_trigger_in(a, l.id[1], &key), 9);
	assert_int_equal(flow_trigger_in(a, l.id[2], &key), 9);

	struct archive_retention p = {.max_age_ns = s, .pin_triggered = 1};
	struct archive_retention_stats st;
	assert_int_equal(archive_retention_run(a, &p, &st), 0);
	assert_int_equal(st.segments, 1); /* A: old and unpinned */
	assert_int_equal(st.pinned, 0);
	assert_int_equal(archive_retention_run(a, &p, &st), 0);
	assert_int_equal(st.segments, 0); /* B and C are pinned against age */
	l = segs_left(a);
	assert_int_equal(l.n, 2);

	p = (struct archive_retention){.max_bytes = 1, .pin_triggered = 1};
	assert_int_equal(archive_retention_run(a, &p, &st), 0);
	assert_int_equal(st.segments, 2); /* nothing else left to make room with */
	assert_int_equal(st.pinned, 2);
	assert_int_equal(segs_left(a).n, 0);
	archive_close(a);

	struct archive *ro;
	assert_int_equal(archive_open(f->dir, 0, &ro), 0);
	assert_int_equal(archive_flows_mark(ro, &key, &from, 1, 9, &marked), -EPERM);
	archive_close(ro);
}

/* The keeper with pins: over the budget, the unpinned segment goes though it is newer; the
 * pinned one goes for room only when it is the last. */
static void test_pins_keeper(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	const uint64_t s = 1000000000ull;
	write_packets(a, 100, 16384, 1 * s); /* A: flows of ports 1000..1099 */
	write_packets(a, 50, 16384, 2 * s);  /* B: 1000..1049 */
	struct seg_ids l = segs_left(a);
	uint8_t b[200];
	struct ft_packet pkt;
	struct ft_flow_key key;
	int dir;
	make_udp(b, 4, 1099, sizeof(b)); /* packet 99: in A only */
	assert_int_equal(ft_parse(1, b, sizeof(b), &pkt), 0);
	assert_int_equal(archive_flow_key_of(&pkt, &key, &dir), 0);
	uint64_t from = 0, marked = 0, usage;
	assert_int_equal(archive_flows_mark(a, &key, &from, 1, 9, &marked), 0);
	assert_int_equal(marked, 1);
	assert_int_equal(archive_disk_usage(a, &usage), 0);
	struct archive_retention_keeper *k;
	assert_int_equal(archive_retention_keeper_create(a, usage - 1, 0, 1, 0, &k), 0);
	assert_int_equal(archive_retention_keeper_pass(k, 0, NULL), 0); /* one pass: the index
	                                         grows with the drop, the next would take A too */
	struct archive_retention_totals t;
	archive_retention_keeper_totals(k, &t);
	assert_int_equal(t.segments, 1);
	assert_int_equal(t.pinned, 0);
	struct seg_ids left = segs_left(a);
	assert_int_equal(left.n, 1);
	assert_int_equal(left.id[0], l.id[0]); /* A, the older, stays */
	archive_retention_keeper_destroy(k);
	assert_int_equal(archive_retention_keeper_create(a, 1, 0, 1, 0, &k), 0);
	assert_int_equal(archive_retention_keeper_pass(k, 0, NULL), 0);
	archive_retention_keeper_totals(k, &t);
	assert_int_equal(t.segments, 1);
	assert_int_equal(t.pinned, 1); /* the last one, for room */
	assert_int_equal(segs_left(a).n, 0);
	archive_retention_keeper_destroy(k);
	archive_close(a);
}

/* One packet per segment across three index partitions: lookups by segment range. */
static void test_partitions(void **state)
{
	struct fixture *f = *state;
	struct archive *a = open_rw(f->dir);
	struct archive_writer *w;
	/* a frame per packet, a segment per frame */
	struct archive_writer_config c = {.segment_size = 1, .frame_size = 1};
	assert_int_equal(archive_writer_create(a, &c, &w), 0);
	uint8_t b[200];
	const uint32_t n = 150;
	for (uint32_t i = 0; i < n; i++) {
		make_udp(b, (uint8_t)(i % 4 + 1), (uint16_t)(1000 + i), sizeof(b));
		assert_int_equal(archive_writer_add(w, 1, 65535, 1000 + i, sizeof(b), 300, b), 0);
	}
	assert_int_equal(archive_writer_close(w), 0);
	struct archive_rtxn *t;
	assert_int_equal(archive_rtxn_begin(a, &t), 0);
	uint64_t *fr = NULL;
	size_t got = 0;
	for (uint32_t i = 0; i < n; i += 7) { /* port 1000 + i: segment i + 1, frame 0 */
		uint8_t p[2] = {(uint8_t)((1000 + i) >> 8), (uint8_t)(1000 + i)};
		got = 0;
		assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_PORT, p, p, 1, n, &fr, &got),
		                 0);
		assert_int_equal(got, 1);
		assert_int_equal(fr[0], (uint64_t)(i + 1) << 32);
	}
	/* host 10.0.0.2 (i % 4 == 1) within segments 60..140: every 4th, each once */
	uint8_t h[16] = {0};
	h[10] = h[11] = 0xff;
	h[12] = 10, h[15] = 2;
	got = 0;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_HOST, h, h, 60, 140, &fr, &got), 0);
	size_t k = 0;
	for (uint64_t s = 60; s <= 140; s++)
		if ((s - 1) % 4 == 1) {
			assert_true(k < got);
			assert_int_equal(fr[k++], s << 32);
		}
	assert_int_equal(k, got);
	/* a net range over all segments: every segment once */
	uint8_t nlo[16] = {0}, nhi[16] = {0};
	memcpy(nlo, h, 12);
	memcpy(nhi, h, 12);
	nlo[12] = nhi[12] = 10;
	nhi[15] = 0xff;
	got = 0;
	assert_int_equal(archive_term_postings(t, ARCHIVE_TERM_HOST, nlo, nhi, 1, n, &fr, &got), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < got; i++)
		assert_int_equal(fr[i], (uint64_t)(i + 1) << 32);
	free(fr);
	archive_rtxn_end(t);
	archive_close(a);
}

/* ---- retention's drop list: what a crash between a drop and its unlink leaves ---- */

static void seg_path(const char *dir, uint64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/segments/%012llu.pcap.zst", dir, (unsigned long long)id);
}

/*
 * Segments 1..3; segment 2 (the oldest data) dropped as retention drops it,
 * the crash coming before the unlink: its entries gone, its id on the list
 * (docs/archive-format.md: meta "dropped:" + id u64 BE), its file still there.
 */
static void crash_after_drop(const char *dir)
{
	struct archive *a = open_rw(dir);
	write_packets(a, 100, 4096, 1000000000000ull);
	write_packets(a, 100, 4096, 1000000000ull); /* older: retention's first pick */
	write_packets(a, 100, 4096, 2000000000000ull);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(a->env, NULL, 0, &txn), 0);
	assert_int_equal(archive__segment_drop(a, txn, 2, SEG_DROP_RECORD), 0);
	uint8_t kb[16] = "dropped:";
	be64_put(kb + 8, 2);
	MDB_val k = {.mv_size = 16, .mv_data = kb}, v = {.mv_size = 0, .mv_data = kb};
	assert_int_equal(mdb_put(txn, a->db_meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	archive_close(a);
}

static void test_drop_list(void **state)
{
	struct fixture *f = *state;
	char dir[300], copy[300], path[512], cmd[1024];
	snprintf(dir, sizeof(dir), "%s/a", f->dir);
	snprintf(copy, sizeof(copy), "%s/b", f->dir);
	crash_after_drop(dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", dir, copy);
	assert_int_equal(system(cmd), 0);
	/* verify: not a problem, the index says the file goes */
	struct archive *a;
	struct archive_verify_stats vs;
	assert_int_equal(archive_open(dir, ARCHIVE_READ, &a), 0);
	assert_int_equal(archive_verify(a, 0, NULL, NULL, &vs), 0);
	assert_int_equal(vs.problems, 0);
	archive_close(a);
	/* rebuild: the dropped segment does not come back */
	struct archive_rebuild_stats rs;
	assert_int_equal(archive_rebuild(copy, 1, NULL, NULL, &rs), 0);
	assert_int_equal(rs.segments, 2);
	seg_path(copy, 2, path, sizeof(path));
	assert_int_not_equal(access(path, F_OK), 0);
	/* recovery: finishes the drop, leaves the rest */
	struct archive_recover_stats st;
	a = open_rw(dir);
	assert_int_equal(archive_recover(a, NULL, NULL, &st), 0);
	assert_int_equal(st.files_removed, 1);
	seg_path(dir, 2, path, sizeof(path));
	assert_int_not_equal(access(path, F_OK), 0);
	seg_path(dir, 1, path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(archive_verify(a, 0, NULL, NULL, &vs), 0);
	assert_int_equal(vs.problems, 0);
	archive_close(a);
	/* a lost index: recovery refuses and removes nothing */
	snprintf(path, sizeof(path), "%s/index/data.mdb", dir);
	assert_int_equal(unlink(path), 0);
	a = open_rw(dir);
	assert_int_equal(archive_recover(a, NULL, NULL, &st), ARCHIVE_E_CORRUPT);
	assert_non_null(strstr(archive_errmsg(), "index rebuild"));
	archive_close(a);
	seg_path(dir, 1, path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
	seg_path(dir, 3, path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
}

/* 1 if path exists. */
static int exists(const char *dir, const char *name)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/*
 * archive_close_discard: an archive this open created and nothing was stored
 * in goes (the directory too if it was made, else it stays empty); one with a
 * segment, or one that was there before, is only closed.
 */
static void test_close_discard(void **state)
{
	struct fixture *f = *state;
	char path[512];
	snprintf(path, sizeof(path), "%s/new", f->dir);
	archive_close_discard(open_rw(path));
	assert_false(exists(f->dir, "new"));

	snprintf(path, sizeof(path), "%s/empty", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	archive_close_discard(open_rw(path));
	assert_true(exists(f->dir, "empty"));
	assert_false(exists(path, "FORMAT") || exists(path, "LOCK") || exists(path, "index") ||
	             exists(path, "segments"));

	snprintf(path, sizeof(path), "%s/used", f->dir); /* created, then a segment stored */
	struct archive *a = open_rw(path);
	write_packets(a, 10, 0, 1000);
	archive_close_discard(a);
	assert_true(exists(path, "FORMAT"));

	snprintf(path, sizeof(path), "%s/old", f->dir); /* there before: only closed */
	archive_close(open_rw(path));
	archive_close_discard(open_rw(path));
	assert_true(exists(path, "FORMAT") && exists(path, "index/data.mdb"));
	assert_int_equal(archive_open(path, ARCHIVE_READ, &a), 0);
	archive_close(a);
}

/* Filter rules: the earliest one still live wins, before and after older ones retire (a
 * retired rule is freed once and the others keep their order). */
static void test_filter_rules_retire(void **state)
{
	(void)state;
	uint8_t pkt[54] = {0}; /* Ethernet, IPv4, TCP 10.0.0.1:1234 -> 10.0.0.2:80, SYN */
	const uint8_t ip_tcp[] = {0x08, 0x00, 0x45, 0, 0, 40, 0,  0, 0, 0, 64,   6,
	                          0,    0,    10,   0, 0, 1,  10, 0, 0, 2, 0x04, 0xd2,
	                          0,    80,   0,    0, 0, 0,  0,  0, 0, 0, 0x50, 0x02};
	memcpy(pkt + 12, ip_tcp, sizeof(ip_tcp));
	const char *expr[3] = {"ip", "tcp", "tcp port 80"}; /* added in this order, all match */
	struct ft_flow_key key[3];
	struct archive_rules *r;
	struct archive_rule_view *v;
	assert_int_equal(archive_rules_create(&r), 0);
	assert_int_equal(archive_rule_view_create(r, &v), 0);
	for (int i = 0; i < 3; i++) {
		memset(&key[i], i + 1, sizeof(key[i]));
		assert_int_equal(archive_rules_add(r, &key[i], FT_KEY_BIDIRECTIONAL, 0, expr[i],
		                                   (uint16_t)(i + 1)),
		                 0);
	}
	archive_rule_view_update(v, 0);
	assert_int_equal(archive_rule_view_size(v), 3);
	struct archive_packet p = {
	    .linktype = FT_DLT_EN10MB, .ts_ns = 100, .caplen = 54, .wirelen = 54, .data = pkt};
	assert_int_equal(archive_rule_view_match(v, &p), 1);
	for (int i = 0; i < 2; i++) { /* "ip", then "tcp" expires and retires */
		assert_int_equal(
		    archive_rules_expire(r, &key[i], FT_KEY_BIDIRECTIONAL, 0, 50, 10 * (i + 1)), 0);
		archive_rule_view_update(v, 10 * (i + 1));
		assert_int_equal(archive_rule_view_size(v), 2 - i);
		assert_int_equal(archive_rule_view_match(v, &p), i + 2);
	}
	archive_rule_view_destroy(v);
	archive_rules_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_read_terms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_frame_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_large_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_and_time_range, setup, teardown),
	    cmocka_unit_test(test_plist_codec),
	    cmocka_unit_test(test_strict_decoders),
	    cmocka_unit_test(test_varint_strict),
	    cmocka_unit_test(test_grow_overflow),
	    cmocka_unit_test_setup_teardown(test_dump_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dump_chunk_parsed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention_keeper, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pins_keeper, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_discard, setup, teardown),
	    cmocka_unit_test(test_filter_rules_retire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
