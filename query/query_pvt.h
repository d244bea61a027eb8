/*
 * query private: the exporters (export.c) used by the query runner (run.c).
 */
#ifndef FLOWSCOPE_QUERY_PVT_H
#define FLOWSCOPE_QUERY_PVT_H

#include <stdio.h>
#include <time.h>

#include "query/query.h"

#define EXPORT_MAX_IFACES 16

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
};

/* RFC 3339 UTC with nanoseconds ("2026-11-27T14:02:00.123456789Z"); buf >= 40 bytes. */
void export_json_time(uint64_t ns, char *buf, size_t len);

/* Writes the file header (pcap, pcapng) or nothing (JSON).  0 or QUERY_E_OUTPUT. */
int export_begin(struct export *x);

/* Writes one packet of a segment of this link type and snaplen.  0, QUERY_E_OUTPUT,
 * QUERY_E_LINKTYPES (pcapng: more than EXPORT_MAX_IFACES interfaces). */
int export_packet(struct export *x, int linktype, uint32_t snaplen, const struct archive_record *r);

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

#endif
