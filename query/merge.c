/*
 * Merging answers: the pcap streams of several servers (query --fleet) into
 * one capture, ordered by timestamp.  Each input is a file libpcap reads
 * (nanosecond or microsecond pcap, as a server writes its answer); the
 * merge repeatedly writes the packet with the smallest timestamp among the
 * inputs' next ones, the first input winning a tie, so the order is stable
 * and the same for the same inputs.  The output goes through the query's
 * own exporters: pcap (one link type: inputs of another are refused before
 * anything is written), or pcapng with one interface per input and link
 * type, named after the input (if_name), so a reader sees where each packet
 * was captured.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_pvt.h"

struct source {
	struct query_merge_input *in;
	pcap_t *p;
	int linktype;
	uint32_t snaplen;
	struct archive_record next; /* valid while p is open */
};

/* The source's next packet into s->next; at the end (or a cut) its pcap is closed. */
static void advance(struct source *s)
{
	struct pcap_pkthdr *h;
	const u_char *d;
	if (!s->p)
		return;
	int r = pcap_next_ex(s->p, &h, &d);
	if (r == 1) {
		s->next = (struct archive_record){.ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u +
		                                           (uint64_t)h->ts.tv_usec,
		                                  .caplen = h->caplen,
		                                  .wirelen = h->len,
		                                  .data = d};
		s->in->packets++;
		return;
	}
	s->in->truncated = r == PCAP_ERROR; /* PCAP_ERROR_BREAK: the end */
	pcap_close(s->p);                   /* and its FILE */
	s->p = NULL;
}

/* Opens input i (an empty or absent one is no source); 0. */
static void source_open(struct source *s, struct query_merge_input *in)
{
	char err[PCAP_ERRBUF_SIZE];
	memset(s, 0, sizeof(*s));
	s->in = in;
	in->packets = 0;
	in->truncated = 0;
	if (!in->in || fseek(in->in, 0, SEEK_SET) != 0)
		return;
	s->p = pcap_fopen_offline_with_tstamp_precision(in->in, PCAP_TSTAMP_PRECISION_NANO, err);
	in->in = NULL; /* libpcap owns it now (or it is not a capture: nothing from it) */
	if (!s->p)
		return;
	s->linktype = pcap_datalink(s->p);
	s->snaplen = (uint32_t)pcap_snapshot(s->p);
	advance(s);
}

/* The source whose next packet is the earliest (the first on a tie), or NULL. */
static struct source *earliest(struct source *v, size_t n)
{
	struct source *best = NULL;
	for (size_t i = 0; i < n; i++)
		if (v[i].p && (!best || v[i].next.ts_ns < best->next.ts_ns))
			best = &v[i];
	return best;
}

/* pcap: the one link type of the sources that have packets (0 when they agree). */
static int pcap_link(struct export *x, struct source *v, size_t n, char *errbuf)
{
	int have = 0;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].p)
			continue;
		if (have && v[i].linktype != x->linktype) {
			snprintf(
			    errbuf, QUERY_ERRBUF_SIZE,
			    "%s and %s answered packets of different link types (%s, %s): a pcap "
			    "holds one, ask for pcapng",
			    v[0].in->name, v[i].in->name, pcap_datalink_val_to_name(x->linktype),
			    pcap_datalink_val_to_name(v[i].linktype));
			return QUERY_E_LINKTYPES;
		}
		if (!have)
			x->linktype = v[i].linktype, x->snaplen = v[i].snaplen, have = 1;
		else if (v[i].snaplen > x->snaplen)
			x->snaplen = v[i].snaplen;
	}
	if (!have)
		x->linktype = DLT_EN10MB,
		x->snaplen = 262144; /* nothing at all: an empty capture */
	return 0;
}

static int merge(struct export *x, struct source *v, size_t n, char *errbuf)
{
	int e = x->format == QUERY_FORMAT_PCAP ? pcap_link(x, v, n, errbuf) : 0;
	if (e)
		return e;
	if ((e = export_begin(x)) != 0)
		return e;
	struct source *s;
	while ((s = earliest(v, n)) != NULL) {
		x->iface = s->in->name;
		if ((e = export_packet(x, s->linktype, s->snaplen, &s->next)) != 0)
			return e;
		advance(s);
	}
	return fflush(x->out) == 0 ? 0 : QUERY_E_OUTPUT;
}

int query_merge(struct query_merge_input *in, size_t n, const struct query_options *opt,
                char *errbuf)
{
	errbuf[0] = '\0';
	if (opt->format == QUERY_FORMAT_JSON) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "merged answers are pcap or pcapng");
		return -EINVAL;
	}
	struct source *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		source_open(&v[i], &in[i]);
	struct export x = {.out = opt->out,
	                   .format = opt->format,
	                   .ts_micro = opt->ts_micro,
	                   .comment = opt->comment};
	int e = merge(&x, v, n, errbuf);
	if (e == QUERY_E_OUTPUT)
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot write the output: %s", strerror(errno));
	else if (e == QUERY_E_LINKTYPES && !errbuf[0])
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "more than %d interfaces", EXPORT_MAX_IFACES);
	for (size_t i = 0; i < n; i++)
		if (v[i].p)
			pcap_close(v[i].p);
	free(v);
	return e;
}
