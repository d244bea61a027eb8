/*
 * tools/extcap: the pcap stream of `flowscope extcap` (tools/extcap.c,
 * docs/cli.md "flowscope extcap"): the pcap answers of one query asked again
 * and again (--follow, from the time of the last packet passed onward) become
 * one pcap in Wireshark's FIFO, each packet once.
 *
 * Lifecycle: a zeroed struct extcap_stream with .fifo set (the FIFO, or any
 * stream); extcap_stream_open() gives the FILE the answers are written to
 * (remote_query's output); extcap_stream_begin() before each answer; fclose()
 * the FILE, then the FIFO.  Threading: one thread (the transfer's).
 *
 * Each answer is a pcap (what GET /api/v1/query answers: the server's byte
 * order, microsecond or nanosecond magic).  The first answer's file header is
 * passed on; a later answer's is checked (the same link type: a pcap holds
 * one) and dropped.  The answers are in time order, ties in the same order
 * every time (the query merges by time, docs/architecture.md): of a later
 * answer, a record older than the last one passed is dropped, and of the
 * records as old as it, as many as were passed already.
 *
 * Errors: a write to the FILE fails (fwrite short, ferror) when the FIFO
 * cannot be written (reader_gone: its reader closed it, EPIPE) or an answer
 * is refused (not a pcap, another link type); err says which.
 */
#ifndef FLOWSCOPE_TOOLS_EXTCAP_H
#define FLOWSCOPE_TOOLS_EXTCAP_H

#include <stdint.h>
#include <stdio.h>

#include "query/query.h"

#define EXTCAP_PCAP_FILE_HEADER 24
#define EXTCAP_PCAP_RECORD_HEADER 16

struct extcap_stream {
	FILE *fifo;                            /* where the packets go: set by the caller */
	int answers;                           /* answers begun; the first one's header is passed */
	uint8_t head[EXTCAP_PCAP_FILE_HEADER]; /* the file or record header, as it arrives */
	size_t have, want;                     /* bytes of head[] held, and needed (0: in a body) */
	uint32_t linktype;                     /* the first answer's */
	int nano;                              /* this answer's timestamps are ns (else us) */
	uint64_t body_left;                    /* bytes of the current record's data to come */
	int body_passed;                       /* the current record goes to the FIFO */
	uint64_t last_ns;                      /* the time of the last record passed */
	uint64_t at_last;                      /* records passed with that time (0: none yet) */
	uint64_t skip;                         /* of this answer: records at last_ns to drop */
	int reader_gone;                       /* the FIFO's reader closed it (EPIPE) */
	char err[QUERY_ERRBUF_SIZE];           /* why the stream stopped, or "" */
};

/* The unbuffered FILE whose bytes go through s into s->fifo; NULL with errno. */
FILE *extcap_stream_open(struct extcap_stream *s);

/* A new answer begins: its file header comes next. */
void extcap_stream_begin(struct extcap_stream *s);

#endif
