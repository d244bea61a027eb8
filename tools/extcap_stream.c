/*
 * The pcap stream of flowscope extcap (tools/extcap.h): a stdio cookie stream
 * that splits the answers' bytes, as they come in pieces of any size, into
 * file headers, record headers and record data, and passes on what the FIFO
 * has not had.  It allocates nothing: a header is gathered in a fixed buffer,
 * data is passed (or not) as it comes, whatever length a record claims.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "tools/extcap.h"

#define PCAP_MAGIC_MICRO 0xa1b2c3d4u
#define PCAP_MAGIC_NANO 0xa1b23c4du
static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4); /* the server writes its own byte order: flowscope is little-endian */
	return v;
}

/* Writes n bytes to the FIFO; -1 when it cannot (reader_gone when Wireshark closed it). */
static int pass_out(struct extcap_stream *s, const void *p, size_t n)
{
	if (fwrite(p, 1, n, s->fifo) == n)
		return 0;
	s->reader_gone = errno == EPIPE;
	snprintf(s->err, sizeof(s->err), "cannot write the FIFO: %s", strerror(errno));
	return -1;
}

/* An answer's file header: the first one passed, a later one checked. */
static int pass_file_header(struct extcap_stream *s)
{
	uint32_t magic = rd32(s->head), linktype = rd32(s->head + 20);
	if (magic != PCAP_MAGIC_MICRO && magic != PCAP_MAGIC_NANO) {
		snprintf(s->err, sizeof(s->err), "the answer is not a pcap (magic 0x%08" PRIx32 ")",
		         magic);
		return -1;
	}
	s->nano = magic == PCAP_MAGIC_NANO;
	if (s->answers++ == 0) {
		s->linktype = linktype;
		return pass_out(s, s->head, EXTCAP_PCAP_FILE_HEADER);
	}
	if (linktype != s->linktype) {
		snprintf(s->err, sizeof(s->err),
		         "the archive's newer packets have link type %" PRIu32 ", not %" PRIu32
		         ": a pcap stream holds one; capture again",
		         linktype, s->linktype);
		return -1;
	}
	return 0;
}

/* A record's header: whether the record goes on (it is not one passed before), and if so out. */
static int pass_record_header(struct extcap_stream *s)
{
	uint64_t ns = (uint64_t)rd32(s->head) * 1000000000u +
	              (uint64_t)rd32(s->head + 4) * (s->nano ? 1u : 1000u);
	s->body_left = rd32(s->head + 8);
	s->body_passed = 0;
	if (ns < s->last_ns || (ns == s->last_ns && s->skip > 0)) {
		s->skip -= ns == s->last_ns;
		return 0;
	}
	if (ns > s->last_ns || s->at_last == 0) {
		s->last_ns = ns;
		s->at_last = 0;
	}
	s->at_last++;
	s->body_passed = 1;
	return pass_out(s, s->head, EXTCAP_PCAP_RECORD_HEADER);
}

/*
 * The cookie stream's write: n bytes of the answer, split into headers and bodies.  Returns n,
 * or 0 when they cannot go on (fopencookie(3): never negative; then the stream's fwrite fails
 * and the transfer stops).
 */
static ssize_t pass_write(void *cookie, const char *p, size_t n)
{
	struct extcap_stream *s = cookie;
	size_t done = 0;
	while (done < n) {
		if (s->want == 0) { /* inside a record's data */
			size_t k = n - done < s->body_left ? n - done : (size_t)s->body_left;
			if (s->body_passed && pass_out(s, p + done, k) != 0)
				return 0;
			done += k;
			if ((s->body_left -= k) == 0)
				s->want = EXTCAP_PCAP_RECORD_HEADER;
			continue;
		}
		size_t k = s->want - s->have < n - done ? s->want - s->have : n - done;
		memcpy(s->head + s->have, p + done, k);
		done += k;
		if ((s->have += k) < s->want)
			continue;
		int r = s->want == EXTCAP_PCAP_FILE_HEADER ? pass_file_header(s)
		                                           : pass_record_header(s);
		if (r != 0)
			return 0;
		s->have = 0;
		s->want = s->want == EXTCAP_PCAP_FILE_HEADER || s->body_left == 0
		              ? EXTCAP_PCAP_RECORD_HEADER
		              : 0;
	}
	if (fflush(s->fifo) == 0)
		return (ssize_t)n;
	s->reader_gone = errno == EPIPE;
	snprintf(s->err, sizeof(s->err), "cannot write the FIFO: %s", strerror(errno));
	return 0;
}

void extcap_stream_begin(struct extcap_stream *s)
{
	s->have = 0;
	s->want = EXTCAP_PCAP_FILE_HEADER;
	s->skip = s->at_last; /* the records at last_ns it repeats */
}

FILE *extcap_stream_open(struct extcap_stream *s)
{
	cookie_io_functions_t io = {.write = pass_write};
	FILE *f = fopencookie(s, "w", io);
	if (f && setvbuf(f, NULL, _IONBF, 0) != 0) { /* each piece at once, as it arrives */
		fclose(f);
		return NULL;
	}
	return f;
}
