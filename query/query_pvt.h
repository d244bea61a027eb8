/*
 * query private: the exporters (export.c) and the frame read-ahead pool
 * (readahead.c) used by the query runner (run.c).
 */
#ifndef FLOWSCOPE_QUERY_PVT_H
#define FLOWSCOPE_QUERY_PVT_H

#include <pcap/pcap.h>
#include <stdio.h>
#include <sys/uio.h>
#include <time.h>

#include "query/query.h"

#define EXPORT_MAX_IFACES 16
#define EXPORT_SPANS 64 /* runs of records kept back, at most (one writev) */

struct export
{
	FILE *out;
	enum query_format format;
	int ts_micro;        /* pcap: microsecond timestamps */
	int linktype;        /* pcap: the one link type of the file */
	uint32_t snaplen;    /* pcap: its snaplen */
	const char *comment; /* pcapng: the section comment (the query) */
	uint64_t bytes;      /* written so far */
	const char *iface;   /* pcapng: if_name of the packets written next (NULL: none) */
	/* pcapng interfaces written so far */
	int if_linktype[EXPORT_MAX_IFACES];
	uint32_t if_snaplen[EXPORT_MAX_IFACES];
	const char *if_name[EXPORT_MAX_IFACES]; /* the iface each was written for */
	unsigned nif;
	/* pcap: stored records waiting to be written, as runs of adjacent bytes in their
	   frames (export_packet grows the last while the next record follows on); export_flush
	   writes them with writev(2), not copied into stdio's buffer */
	struct iovec span[EXPORT_SPANS];
	int nspan;
};

/* s as a JSON string, quoted and escaped (UTF-8 passes through). */
void export_json_string(FILE *f, const char *s);

/* RFC 3339 UTC with nanoseconds ("2026-11-27T14:02:00.123456789Z"); buf >= 40 bytes. */
void export_json_time(uint64_t ns, char *buf, size_t len);

/* Writes the file header (pcap, pcapng) or nothing (JSON).  0 or QUERY_E_OUTPUT. */
int export_begin(struct export *x);

/* Writes one packet of a segment of this link type and snaplen.  0, QUERY_E_OUTPUT,
 * QUERY_E_LINKTYPES (pcapng: more than EXPORT_MAX_IFACES interfaces). */
int export_packet(struct export *x, int linktype, uint32_t snaplen, const struct archive_record *r);

/* Writes the pending spans (export_packet may keep records back, pointing into their
 * frame): before that frame's buffer is reused or freed, and at the end.  0 or
 * QUERY_E_OUTPUT. */
int export_flush(struct export *x);

/* The bytes export_packet would write for this packet (with a new pcapng interface block). */
uint64_t export_packet_size(const struct export *x, int linktype, uint32_t snaplen,
                            const struct archive_record *r);

/*
 * The filter for query_options.community_id (flows.c): the packets of the
 * flows with Community ID `id` active in [from_ns, to_ns), and-ed with
 * `filter`.  0 with *out (malloc'd; NULL when no flow has the ID),
 * QUERY_E_FILTER (not a Community ID), -ENOMEM, ARCHIVE_E_*; errbuf: one line.
 */
int query__community_id_filter(struct archive *a, const char *id, const char *filter,
                               uint64_t from_ns, uint64_t to_ns, char **out, char *errbuf);

/* ---- frames read ahead (readahead.c) ------------------------------------------------ */

/*
 * One frame to decompress and match: a slot of the pool, or a stream's own
 * (run on the query's thread).  The submitter sets the inputs; the thread
 * that runs it sets the result; the consumer reads the result once
 * query__readahead_wait returned (or query__frame_match, run by itself).
 */
struct query_frame {
	/* inputs: set by the submitter, read only while queued or running */
	const struct archive_segment_info *seg;
	const struct archive_frame_info *f;
	const struct bpf_program *prog; /* shared: bpf_filter only reads it */
	uint64_t from_ns, to_ns;        /* the query's time range (to_ns 0: open) */
	/* result: written by the running thread, read by the consumer after the wait */
	struct archive_frame_reader *rd; /* holds the decompressed frame */
	int err;                         /* archive_frame_load's error, -ENOMEM, or 0 */
	char msg[512];                   /* archive_errmsg() of the thread that ran it */
	struct archive_record *m;        /* the matching records, in stored order */
	size_t nm, mcap;
	/* the pool's (under its mutex) */
	int state, dropped;
	struct query_frame *next;
};

/* Loads f (its reader) and lists its matching records.  0, or f->err with f->msg. */
int query__frame_match(struct query_frame *f);

struct query_readahead;

/*
 * Starts `workers` threads (0: none, the consumer runs every frame in
 * query__readahead_wait) and `slots` frame slots (each with a frame reader).
 * 0, -ENOMEM or -errno of pthread_create.  Owned by one query thread, which
 * alone calls the functions below.
 */
int query__readahead_create(struct archive *a, unsigned workers, size_t slots,
                            struct query_readahead **out);

/* Queues a copy of want's inputs in a free slot; the slot, or NULL when none is free. */
struct query_frame *query__readahead_submit(struct query_readahead *p,
                                            const struct query_frame *want);

/* Returns once f has run (running it here if no worker has taken it yet). */
void query__readahead_wait(struct query_readahead *p, struct query_frame *f);

/* Gives f's slot back (queued: never run; running: freed when it ends). */
void query__readahead_release(struct query_readahead *p, struct query_frame *f);

/* Drops the queued frames, joins the workers, frees.  NULL is a no-op. */
void query__readahead_destroy(struct query_readahead *p);

#endif
