/*
 * File source: replays a pcap or pcapng file through libpcap, as fast as the
 * QQ takes it (the QQ applies back-pressure for file sources).
 *
 * libpcap does the parsing.  The one thing it cannot do is hand over the
 * bytes of a last record cut short by the end of the file (a capture that was
 * killed mid-write): it reports "truncated dump file; tried to read N
 * captured bytes, only got M".  For classic pcap files we then read that
 * record's 16-byte header ourselves (it sits just before the M bytes at the
 * end of the file), check it agrees with libpcap's N, and store the M bytes
 * as a packet whose captured length is M: nothing that reached the disk is
 * lost, and the cut is counted and reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest_pvt.h"

#define FLUSH_EVERY 1024    /* packets between QQ flush checks */
#define READ_BUF (1u << 20) /* stdio buffer under libpcap: one read(2) per MiB, not per 4 KiB */

struct file_source {
	struct ingest_source base;
	double speed;      /* 0: as fast as possible; else recorded speed times this */
	uint64_t pace_t0;  /* pacing origin: monotonic time ... */
	uint64_t pace_ts0; /* ... and the capture time of the first packet */
	pcap_t *pcap;
	char *rbuf; /* the stdio buffer of libpcap's FILE */
	char *path;
	int fd;      /* our own descriptor, for the truncated-record read */
	int pipe_fd; /* a pipe or device as the precheck opened it, until libpcap's FILE has it */
	int classic; /* 1: classic pcap (not pcapng), also for stdin */
	int swapped; /* classic: byte order differs from ours */
	int nano;    /* classic: nanosecond magic */
	int pcapng;  /* the magic says pcapng (regular files only) */
	struct ingest__nglinks *links; /* the walk libpcap reads pcapng through, else NULL */
};

static uint32_t rd32(const uint8_t *p, int swapped)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return swapped ? __builtin_bswap32(v) : v;
}

/* Reads the magic to tell classic pcap (and its byte order) from pcapng. */
static void file_sniff(struct file_source *f)
{
	uint8_t m[4];
	if (f->fd < 0 || pread(f->fd, m, 4, 0) != 4)
		return;
	uint32_t v = rd32(m, 0);
	switch (v) {
	case 0xa1b2c3d4:
		f->classic = 1;
		break;
	case 0xa1b23c4d:
		f->classic = 1;
		f->nano = 1;
		break;
	case 0xd4c3b2a1:
		f->classic = 1;
		f->swapped = 1;
		break;
	case 0x4d3cb2a1:
		f->classic = 1;
		f->swapped = 1;
		f->nano = 1;
		break;
	case 0x0A0D0D0A: /* a section header block */
		f->pcapng = 1;
		break;
	default:
		break;
	}
}

/*
 * Stores the record cut by the end of the file.  `want` and `got` come from
 * libpcap's message.  Returns 0 when stored, -1 when the file does not look
 * as the message says (then the caller reports plain damage).
 */
static int store_truncated(struct file_source *f, struct ingest_sink *k, uint32_t want,
                           uint32_t got, char *errbuf)
{
	struct stat st;
	if (!f->classic || f->fd < 0 || fstat(f->fd, &st) != 0 ||
	    (uint64_t)st.st_size < 24u + 16u + got)
		return -1;
	off_t rec = st.st_size - (off_t)got - 16;
	uint8_t hdr[16];
	if (pread(f->fd, hdr, 16, rec) != 16 || rd32(hdr + 8, f->swapped) != want)
		return -1;
	uint8_t *data = malloc(got ? got : 1);
	if (!data || pread(f->fd, data, got, rec + 16) != (ssize_t)got) {
		free(data);
		return -1;
	}
	uint64_t sec = rd32(hdr, f->swapped), frac = rd32(hdr + 4, f->swapped);
	uint64_t ts = sec * 1000000000u + (f->nano ? frac : frac * 1000u);
	uint32_t wire = rd32(hdr + 12, f->swapped);
	int r = ingest__store(k, ts, got, wire, data, INGEST_COPY);
	free(data);
	if (r)
		return -1;
	ingest__count_add(&f->base.q[0].truncated_records, 1);
	snprintf(errbuf, INGEST_ERRBUF_SIZE,
	         "%s: truncated at byte %lld: last record has %u of %u captured bytes "
	         "(%s as a %u-byte packet)", /* burst mode (monitor): the caller analyses it */
	         f->base.info.name, (long long)st.st_size, got, want, k->qq ? "stored" : "analysed",
	         got);
	return 0;
}

/* Turns a libpcap read error into INGEST_E_DAMAGED with a message naming the place. */
static int file_error(struct file_source *f, struct ingest_sink *k, char *errbuf)
{
	const char *msg = pcap_geterr(f->pcap);
	unsigned want = 0, got = 0;

	if (sscanf(msg, "truncated dump file; tried to read %u captured bytes, only got %u", &want,
	           &got) == 2 &&
	    store_truncated(f, k, want, got, errbuf) == 0)
		return INGEST_E_DAMAGED;
	if (sscanf(msg, "truncated dump file; tried to read %u header bytes, only got %u", &want,
	           &got) == 2) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: truncated: %u stray bytes at the end where a record header should be",
		         f->base.info.name, got);
		return INGEST_E_DAMAGED;
	}
	long pos = ftell(pcap_file(f->pcap)); /* -1 on a pipe */
	char where[48] = "";
	if (pos >= 0)
		snprintf(where, sizeof(where), " near byte %ld", pos);
	snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: damaged%s after %" PRIu64 " packets: %s",
	         f->base.info.name, where, atomic_load(&f->base.q[0].packets), msg);
	return INGEST_E_DAMAGED;
}

/*
 * Pacing: waits until the packet stamped ts is due (recorded speed times
 * f->speed), publishing the QQ's partly filled chunk (or handing the pending
 * burst over) while it waits so analyzers see the packets already read.
 */
static void file_pace(struct file_source *f, struct ingest_sink *k, uint64_t ts)
{
	if (!f->pace_t0) {
		f->pace_t0 = ingest__mono_ns();
		f->pace_ts0 = ts;
		return;
	}
	if (ts <= f->pace_ts0)
		return;
	uint64_t due = f->pace_t0 + (uint64_t)((double)(ts - f->pace_ts0) / f->speed);
	for (uint64_t now = ingest__mono_ns(); now < due && !ingest__stopping(&f->base);
	     now = ingest__mono_ns()) {
		ingest__sink_idle(k, now);
		uint64_t wait = due - now < 10000000u ? due - now : 10000000u; /* stay responsive */
		struct timespec d = {.tv_sec = 0, .tv_nsec = (long)wait};
		nanosleep(&d, NULL);
	}
}

/*
 * The packet's capture time in ns since the epoch: 0, or -ERANGE when a u64
 * of ns cannot hold it (the caller counts the packet, it is not stored).
 * A classic pcap's seconds are unsigned 32-bit (to 2106-02-07, as the format
 * and tshark read them), but libpcap 1.10 hands them over sign-extended: from
 * 2038-01-19T03:14:08Z on they come out negative, so only their low 32 bits
 * count.  A pcapng time is 64-bit and libpcap adds the interface's signed
 * if_tsoffset: it can be before 1970 or after 2554-07-21.
 */
static int file_time(const struct file_source *f, const struct pcap_pkthdr *h, uint64_t *ts)
{
	uint64_t ns = (uint64_t)h->ts.tv_usec; /* opened with nanosecond precision */
	uint64_t sec = f->classic ? (uint32_t)h->ts.tv_sec : (uint64_t)h->ts.tv_sec;
	if ((!f->classic && h->ts.tv_sec < 0) || ns >= 1000000000u ||
	    sec > (UINT64_MAX - ns) / 1000000000u)
		return -ERANGE;
	*ts = sec * 1000000000u + ns;
	return 0;
}

/*
 * A pcapng packet's link (its interface's link type and snaplen): the
 * packets stored next are of it.  libpcap was told "no limit" for every
 * interface's snaplen, so the check it would make is made here.
 */
static int file_link(struct file_source *f, struct ingest_sink *k, struct pcap_pkthdr *h,
                     char *errbuf)
{
	struct ingest__ngpkt e = ingest__nglinks_next(f->links);
	unsigned link = e.link;
	struct ingest_link l = f->base.links[link];
	if (e.wirelen)
		h->len = e.wirelen; /* an SPB handed over cut to its snaplen */
	if (h->caplen > l.snaplen) {
		long pos = ftell(pcap_file(f->pcap));
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: damaged near byte %ld after %" PRIu64
		         " packets: invalid packet capture "
		         "length %u, bigger than snaplen of %u",
		         f->base.info.name, pos, atomic_load(&f->base.q[0].packets), h->caplen,
		         l.snaplen);
		return -1;
	}
	ingest__sink_set_link(k, (uint8_t)link);
	return 0;
}

static int file_run(struct ingest_source *s, struct ingest_sink *k, char *errbuf)
{
	struct file_source *f = (struct file_source *)s;
	struct pcap_pkthdr *h;
	const u_char *data;
	unsigned n = 0;

	while (!ingest__stopping(s)) {
		int r = pcap_next_ex(f->pcap, &h, &data);
		if (r == PCAP_ERROR_BREAK)
			return 0; /* end of file */
		if (r != 1) /* a stop ends a pipe's input, maybe inside a record: not damage */
			return ingest__stopping(s) ? 0 : file_error(f, k, errbuf);
		if (f->links && file_link(f, k, h, errbuf) != 0)
			return INGEST_E_DAMAGED;
		uint64_t ts;
		if (file_time(f, h, &ts) != 0) {
			ingest__count_add(&s->q[0].dropped_time, 1);
			continue;
		}
		if (f->speed > 0)
			file_pace(f, k, ts);
		/* libpcap reads the next record into the same buffer: burst mode copies */
		if (ingest__store(k, ts, h->caplen, h->len, data, INGEST_COPY) != 0) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: stopped: the QQ refused packets",
			         s->info.name);
			return INGEST_E_QQ;
		}
		if (++n % FLUSH_EVERY == 0)
			ingest__sink_flush(k, ingest__mono_ns());
	}
	return 0;
}

void ingest_file_set_speed(struct ingest_source *s, double speed)
{
	((struct file_source *)s)->speed = speed > 0 ? speed : 0;
}

static void file_close(struct ingest_source *s)
{
	struct file_source *f = (struct file_source *)s;
	if (f->pcap)
		pcap_close(f->pcap); /* closes its FILE, which uses rbuf */
	free(f->rbuf);
	if (f->fd >= 0)
		close(f->fd);
	if (f->pipe_fd >= 0)
		close(f->pipe_fd);
	free(f->path);
	free(f);
}

static const struct ingest_ops file_ops = {.run = file_run, .close = file_close};

/*
 * Opens the path ourselves first so errno-level problems get errno-level
 * messages.  "-" (stdin) and pipes are read by libpcap alone: they cannot be
 * re-read, so a record cut by their end is reported, not recovered.
 */
static int file_precheck(struct file_source *f, const char *path, char *errbuf)
{
	f->fd = f->pipe_fd = -1;
	if (strcmp(path, "-") == 0)
		return 0;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		int e = errno;
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(f->fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: is a directory, not a capture file",
		         path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode)) { /* a pipe or device: libpcap reads it once, through this */
		f->pipe_fd =
		    f->fd; /* descriptor: opening a FIFO again could find its writer gone */
		f->fd = -1;
		return 0;
	}
	if (st.st_size == 0) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: empty file, not a capture file", path);
		return INGEST_E_FORMAT;
	}
	return 0;
}

/*
 * libpcap reads a savefile a record at a time through stdio; its own
 * pcap_open_offline() leaves the FILE with a 4 KiB buffer, so a large file
 * costs a read(2) per few packets.  NULL and perr set on failure.
 */
static pcap_t *open_pcap(struct file_source *f, const char *path, char *perr)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin
	           : f->pipe_fd >= 0      ? fdopen(f->pipe_fd, "rb")
	                                  : fopen(path, "rbe");
	if (fp && f->pipe_fd >= 0)
		f->pipe_fd = -1; /* the FILE has it now */
	if (!fp) {
		snprintf(perr, PCAP_ERRBUF_SIZE, "%s", strerror(errno));
		return NULL;
	}
	/* pcapng through the links walk, and what could not be sniffed (stdin, a pipe):
	 * the walk lets anything else through */
	if (f->pcapng || f->fd < 0) {
		FILE *w = ingest__nglinks_open(fp, &f->base, &f->links);
		if (!w) {
			snprintf(perr, PCAP_ERRBUF_SIZE, "%s", strerror(errno));
			if (fp != stdin)
				fclose(fp);
			return NULL;
		}
		fp = w; /* closing it closes the file, not stdin */
	}
	if (fp != stdin &&
	    (f->rbuf = malloc(READ_BUF)) != NULL) /* pcap_close() leaves stdin open */
		setvbuf(fp, f->rbuf, _IOFBF, READ_BUF);
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!p && fp != stdin)
		fclose(fp); /* as pcap_open_offline() does */
	if (!p)
		f->links = NULL; /* went with fp */
	return p;
}

int ingest_file_open(const char *path, uint16_t port, struct ingest_source **out, char *errbuf)
{
	struct file_source *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: out of memory", path);
		return -ENOMEM;
	}
	f->base.ops = &file_ops;
	int r = file_precheck(f, path, errbuf);
	if (r) {
		file_close(&f->base);
		return r;
	}
	char perr[PCAP_ERRBUF_SIZE];
	file_sniff(f);
	f->pcap = open_pcap(f, path, perr);
	if (!f->pcap) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: not a capture file libpcap can read (%s)",
		         path, perr);
		file_close(&f->base);
		return INGEST_E_FORMAT;
	}
	f->classic = pcap_major_version(f->pcap) == 2; /* also for stdin; pcapng says 1 */
	if (f->classic)
		f->links =
		    NULL; /* stdin: the walk let a classic pcap through, its stream frees it */
	f->base.info.name = strcmp(f->path, "-") == 0 ? "stdin" : f->path;
	f->base.info.kind = "file";
	f->base.info.linktype = ingest__pcap_linktype(f->pcap);
	f->base.info.snaplen = (uint32_t)pcap_snapshot(f->pcap);
	/* libpcap was told "no limit": its snaplen for the link type, unless the IDB had one */
	if (f->links && f->base.links[0].snaplen && f->base.links[0].snaplen != 262144u)
		f->base.info.snaplen = f->base.links[0].snaplen;

	f->base.info.queues = 1;
	f->base.info.port = port;
	*out = &f->base;
	return 0;
}
