/*
 * pcapng files whose interfaces differ in link type or snaplen, for libpcap.
 *
 * libpcap 1.10 refuses a pcapng file whose interface description blocks
 * (IDBs) differ in link type or snapshot length ("an interface has a type 113
 * different from the type of the first interface"), and does not tell which
 * interface a packet came from.  mergecap writes such files and tshark reads
 * them.  So the file source hands libpcap a pcapng file through this filter:
 * a stdio stream (fopencookie) that walks the block structure only -- each
 * block's type and length, each section's byte order, an IDB's link type and
 * snaplen, a packet block's interface -- and leaves all the parsing (options,
 * time resolution and offset, packet data, damage) to libpcap:
 *
 *   - every IDB is handed over with the first IDB's link type and snaplen 0
 *     (no limit), so libpcap takes it; its real pair becomes a link of the
 *     source (ingest_source_link: distinct pairs numbered in order of first
 *     appearance, the first IDB's being link 0).  The file source checks
 *     each packet's captured length against its own link's snaplen, as
 *     libpcap would have against the one snaplen it knows;
 *   - every packet block (EPB, SPB, PB) appends its interface's link number
 *     to a FIFO; libpcap returns every packet block as a packet, in file
 *     order, so the file source pops one entry per packet it gets;
 *   - a simple packet block (SPB) has no captured length: libpcap takes the
 *     smaller of its original length and the snaplen.  One longer than its
 *     interface's snaplen is handed over with that snaplen as its length,
 *     and its FIFO entry keeps the original length for the wire length.
 *
 * The walk looks at the first 16 bytes of each block in the bytes it hands
 * over (a block header cut by a read is held back until the next), so the
 * bytes are copied once, as without the filter.  Bytes it cannot walk (a
 * block length libpcap refuses too, a header cut by the end of the input,
 * more than INGEST_MAX_LINKS links) end the walk: the rest passes unchanged
 * and libpcap reports what is wrong with it as it would have.  Input that is
 * not pcapng (a classic pcap on stdin) passes unchanged from the start.
 */
/* fopencookie: _GNU_SOURCE comes from the build */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest_pvt.h"

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 1u
#define BT_PB 2u /* obsolete packet block: u16 interface id */
#define BT_SPB 3u
#define BT_EPB 6u
#define BOM 0x1A2B3C4Du
#define HDR 16u          /* bytes of a block the walk reads */
#define MAX_SNAP 262144u /* libpcap's snaplen for "no limit" (0), most link types */
#define MAX_IFACES 65536u

struct ingest__nglinks {
	FILE *in; /* what the file source opened (stdin: not closed) */
	int fd;
	struct ingest_source *s;
	unsigned nlinks;
	int walking;       /* 0 once the walk ended: the rest passes unchanged */
	int started;       /* the first block was seen */
	int swapped;       /* this section's byte order differs from ours */
	int eof;           /* read(2) said end of input */
	uint16_t first_lt; /* the first IDB's link type, as libpcap must see every IDB's */
	uint64_t left;     /* bytes of the current block not yet walked over */
	uint64_t pos;      /* bytes handed over: the stream's position */
	uint8_t held[HDR]; /* the start of a block header cut by the last read */
	unsigned nheld;
	uint8_t *iface; /* this section's interfaces: their link numbers */
	unsigned niface;
	size_t ciface;
	struct ingest__ngpkt *fifo; /* packet blocks libpcap has not returned yet */
	size_t fhead, fcount, fcap;
};

static uint32_t get32(const struct ingest__nglinks *w, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return w->swapped ? __builtin_bswap32(v) : v;
}

static uint16_t get16(const struct ingest__nglinks *w, const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return w->swapped ? __builtin_bswap16(v) : v;
}

static int fifo_push(struct ingest__nglinks *w, uint8_t link, uint32_t wirelen)
{
	if (w->fcount == w->fcap) { /* grow, unwrapping the ring */
		size_t nc = w->fcap ? 2 * w->fcap : 4096;
		struct ingest__ngpkt *n = malloc(nc * sizeof(*n));
		if (!n)
			return -1;
		for (size_t i = 0; i < w->fcount; i++)
			n[i] = w->fifo[(w->fhead + i) % w->fcap];
		free(w->fifo);
		w->fifo = n;
		w->fcap = nc;
		w->fhead = 0;
	}
	w->fifo[(w->fhead + w->fcount) % w->fcap] = (struct ingest__ngpkt){wirelen, link};
	w->fcount++;
	return 0;
}

struct ingest__ngpkt ingest__nglinks_next(struct ingest__nglinks *w)
{
	if (!w->fcount)
		return (struct ingest__ngpkt){0, 0};
	struct ingest__ngpkt e = w->fifo[w->fhead];
	w->fhead = (w->fhead + 1) % w->fcap;
	w->fcount--;
	return e;
}

/* The link number of a link type and snaplen pair, added when new; -1 when full. */
static int link_of(struct ingest__nglinks *w, int linktype, uint32_t snaplen)
{
	if (snaplen == 0 || snaplen > INT32_MAX)
		snaplen = MAX_SNAP; /* as libpcap 1.10 adjusts it (for most link types) */
	for (unsigned i = 0; i < w->nlinks; i++)
		if (w->s->links[i].linktype == linktype && w->s->links[i].snaplen == snaplen)
			return (int)i;
	if (w->nlinks == INGEST_MAX_LINKS)
		return -1;
	w->s->links[w->nlinks] = (struct ingest_link){linktype, snaplen};
	return (int)w->nlinks++;
}

/* An IDB (at least HDR bytes at p): notes its link, hands it over as the first IDB's. */
static int walk_idb(struct ingest__nglinks *w, uint8_t *p)
{
	uint16_t lt = get16(w, p + 8);
	int link = link_of(w, lt, get32(w, p + 12));
	if (link < 0 || w->niface == MAX_IFACES)
		return -1;
	if (qq_grow((void **)&w->iface, &w->ciface, w->niface + 1, 1) != 0)
		return -1;
	w->iface[w->niface++] = (uint8_t)link;
	if (w->nlinks == 1 && link == 0)
		w->first_lt = lt;
	uint16_t flt = w->swapped ? __builtin_bswap16(w->first_lt) : w->first_lt;
	memcpy(p + 8, &flt, 2);
	memset(p + 12, 0, 4);
	return 0;
}

/* A packet block's interface's link number (an unknown interface: libpcap refuses it). */
static uint8_t iface_link(const struct ingest__nglinks *w, uint32_t id)
{
	return id < w->niface ? w->iface[id] : 0;
}

/* An SPB (at least 12 bytes at p): its captured length is the smaller of length and snaplen. */
static int walk_spb(struct ingest__nglinks *w, uint8_t *p)
{
	uint8_t link = iface_link(w, 0);
	uint32_t wire = get32(w, p + 8), snap = w->s->links[link].snaplen;
	if (!w->niface || wire <= snap)
		return fifo_push(w, link, 0);
	uint32_t v = w->swapped ? __builtin_bswap32(snap) : snap;
	memcpy(p + 8, &v, 4);
	return fifo_push(w, link, wire);
}

/* Walks the block starting at p (avail bytes there, HDR unless the input ends). */
static int walk_block(struct ingest__nglinks *w, uint8_t *p, size_t avail)
{
	if (avail < 12)
		return -1;
	uint32_t type;
	memcpy(&type, p, 4); /* BT_SHB reads the same in both byte orders */
	if (type == BT_SHB) {
		uint32_t bom;
		memcpy(&bom, p + 8, 4);
		if (bom != BOM && bom != __builtin_bswap32(BOM))
			return -1;
		w->swapped = bom != BOM;
		w->niface = 0; /* a section has its own interfaces */
	} else if (!w->started) {
		return -1; /* not pcapng */
	}
	w->started = 1;
	type = get32(w, p);
	uint32_t len = get32(w, p + 4);
	if (len < 12 || len % 4)
		return -1;
	w->left = len;
	switch (type) {
	case BT_IDB:
		return len >= 20 && avail >= HDR ? walk_idb(w, p) : -1;
	case BT_EPB:
		return fifo_push(w, iface_link(w, get32(w, p + 8)), 0);
	case BT_PB:
		return fifo_push(w, iface_link(w, get16(w, p + 8)), 0);
	case BT_SPB:
		return walk_spb(w, p);
	default:
		return 0;
	}
}

/*
 * Walks buf[0..len) (the held bytes first): returns how many bytes may be
 * handed over; the rest is the start of a block header, held for the next read.
 */
static size_t walk(struct ingest__nglinks *w, uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len && w->walking) {
		if (w->left) {
			uint64_t k = w->left < len - i ? w->left : len - i;
			i += k;
			w->left -= k;
			continue;
		}
		if (len - i < HDR && !w->eof)
			return i;
		if (walk_block(w, buf + i, len - i) != 0)
			w->walking = 0;
	}
	return len;
}

/*
 * Waits until fd can be read or the source is being stopped (1 / 0).  A pipe
 * or stdin can stay open and empty for as long as its writer likes: a read
 * would block through a signal (the handler runs on another thread), so the
 * reader looks at the stop flag every STOP_POLL_MS.  A regular file is
 * always readable.
 */
#define STOP_POLL_MS 100
static int readable(struct ingest__nglinks *w)
{
	struct pollfd p = {.fd = w->fd, .events = POLLIN};
	while (!ingest__stopping(w->s))
		if (poll(&p, 1, STOP_POLL_MS) != 0) /* ready, or an error read() will report */
			return 1;
	return 0;
}

/*
 * Reads into buf (held bytes first) until HDR bytes are there, or the end, or
 * an error.  A stop counts as the end of the input.
 */
static ssize_t fill(struct ingest__nglinks *w, uint8_t *buf, size_t size)
{
	size_t n = w->nheld;
	memcpy(buf, w->held, n);
	w->nheld = 0;
	do {
		if (!readable(w)) {
			w->eof = 1;
			break;
		}
		ssize_t r = read(w->fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			memcpy(w->held, buf, n < HDR ? n : HDR); /* keep what was held */
			w->nheld = n < HDR ? (unsigned)n : HDR;
			return -1;
		}
		w->eof = r == 0;
		n += (size_t)r;
	} while (!w->eof && n < HDR && n < size);
	return (ssize_t)n;
}

static ssize_t cookie_read(void *cookie, char *out, size_t size)
{
	struct ingest__nglinks *w = cookie;
	if (size < HDR) { /* stdio asks for its buffer's size; never this small */
		errno = EINVAL;
		return -1;
	}
	ssize_t n = fill(w, (uint8_t *)out, size);
	if (n <= 0)
		return n;
	size_t give = walk(w, (uint8_t *)out, (size_t)n);
	w->nheld = (unsigned)((size_t)n - give);
	memcpy(w->held, out + give, w->nheld);
	w->pos += give;
	return (ssize_t)give;
}

/* Only tells the position (ftell, for messages that name the byte); no seeking. */
static int cookie_seek(void *cookie, off64_t *off, int whence)
{
	struct ingest__nglinks *w = cookie;
	if (whence != SEEK_CUR || *off != 0) {
		errno = ESPIPE;
		return -1;
	}
	*off = (off64_t)w->pos;
	return 0;
}

static int cookie_close(void *cookie)
{
	struct ingest__nglinks *w = cookie;
	if (w->in != stdin)
		fclose(w->in);
	free(w->iface);
	free(w->fifo);
	free(w);
	return 0;
}

FILE *ingest__nglinks_open(FILE *in, struct ingest_source *s, struct ingest__nglinks **out)
{
	struct ingest__nglinks *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	*w = (struct ingest__nglinks){.in = in, .fd = fileno(in), .s = s, .walking = 1};
	cookie_io_functions_t io = {
	    .read = cookie_read, .seek = cookie_seek, .close = cookie_close};
	FILE *fp = fopencookie(w, "r", io);
	if (!fp) {
		free(w);
		return NULL;
	}
	*out = w;
	return fp;
}
