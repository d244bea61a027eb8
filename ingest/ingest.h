/*
 * ingest: packet sources that write captured packets straight into the QQ.
 *
 * Purpose
 *   One small interface over every kind of source.  A source has one or more
 *   receive queues; each queue is served by one thread that owns one QQ
 *   producer handle and calls ingest_source_run() for its queue.
 *
 * Sources
 *   pcap/pcapng file (libpcap): ingest_file_open().  One queue.  Timestamps
 *   are read in nanoseconds whatever the file's resolution.  A record cut
 *   short by the end of the file is stored up to the cut and counted
 *   (ingest.file.truncated_records); damage elsewhere stops reading with an
 *   error that names the file and the byte offset.
 *
 * Lifecycle
 *   ingest_*_open() -> ingest_source_info() -> ingest_source_run() on each
 *   queue (one thread each) -> ingest_source_stats() -> ingest_source_close().
 *
 * Threading
 *   ingest_source_run() for queue q is called by one thread at a time;
 *   ingest_source_stop() and ingest_source_stats() may be called from any
 *   thread (counters are read with relaxed atomics: each is exact, the set
 *   may be mid-update).
 *
 * Errors
 *   0 on success, negative errno, or INGEST_E_* (-10100..-10199);
 *   ingest_strerror().  Open functions write a one-line reason into errbuf
 *   (INGEST_ERRBUF_SIZE bytes) that names the input at fault.
 */
#ifndef FLOWSCOPE_INGEST_H
#define FLOWSCOPE_INGEST_H

#include <stdint.h>

#include "qq/qq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INGEST_E_BASE (-10100)
#define INGEST_E_FORMAT (INGEST_E_BASE - 1)  /* not a capture file libpcap can read */
#define INGEST_E_DAMAGED (INGEST_E_BASE - 2) /* input damaged mid-file; errbuf says where */
#define INGEST_E_QQ (INGEST_E_BASE - 3)      /* the QQ refused a packet (see qq error) */
#define INGEST_E_LAST (INGEST_E_BASE - 99)

const char *ingest_strerror(int err);

#define INGEST_ERRBUF_SIZE 512

struct ingest_source;

struct ingest_source_info {
	const char *name; /* file path or interface, for messages */
	const char *kind; /* "file", ... */
	int linktype;     /* DLT_ value */
	uint32_t snaplen;
	unsigned queues;
	uint16_t port; /* source number stamped on every record */
};

struct ingest_stats {
	uint64_t packets;           /* ingest.<kind>.packets: stored in the QQ */
	uint64_t bytes;             /* ingest.<kind>.bytes: captured bytes stored */
	uint64_t wire_bytes;        /* sum of wire lengths stored */
	uint64_t truncated_records; /* ingest.file.truncated_records: cut by end of file */
	uint64_t dropped_qq;        /* ingest.<kind>.dropped_qq: refused by the QQ */
	uint64_t dropped_oversize;  /* ingest.<kind>.dropped_oversize: larger than a chunk */
	uint64_t first_ns, last_ns; /* capture time of first and last packet stored */
};

/*
 * Opens a pcap or pcapng file ("-" = standard input; pipes work too) for
 * replay as source number `port`.
 * Returns 0 and *out; -errno (no such file, permission) or INGEST_E_FORMAT,
 * each with a line in errbuf naming the file.
 */
int ingest_file_open(const char *path, uint16_t port, struct ingest_source **out, char *errbuf);

void ingest_source_info(const struct ingest_source *s, struct ingest_source_info *out);

/*
 * Receives packets on `queue` into producer p until the source ends or
 * ingest_source_stop() is called.  Returns 0 at the end of the input or when
 * stopped; INGEST_E_DAMAGED (errbuf names file and offset; everything before
 * was stored); INGEST_E_QQ when the QQ stopped.
 */
int ingest_source_run(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf);

/* Asks every queue's ingest_source_run() to return soon.  Async-signal-safe. */
void ingest_source_stop(struct ingest_source *s);

void ingest_source_stats(const struct ingest_source *s, struct ingest_stats *out);

void ingest_source_close(struct ingest_source *s);

#ifdef __cplusplus
}
#endif
#endif
