/*
 * libpcap live source: captures on any interface libpcap can open (one
 * queue), for links AF_PACKET's Ethernet-only source refuses and for
 * platforms without it.
 *
 * libpcap does the work: ring, VLAN tags put back, link type.  We ask for
 * nanosecond timestamps and fall back to microseconds where the platform has
 * none (pcap_get_tstamp_precision says which we got).
 *
 * Waiting: on Linux (TPACKET_V3) libpcap's read timeout only runs once a
 * packet has arrived; with no traffic pcap_dispatch() would block forever and
 * never see a stop request.  So where pcap has a selectable descriptor the
 * handle is non-blocking and we poll() that descriptor ourselves, at most
 * LIVE_TIMEOUT_MS at a time; the same timeout makes the kernel hand over a
 * partly filled block.  After each wait and each burst the run loop checks
 * for stop and refreshes the drop counters; when a pass finds nothing it
 * publishes the QQ's partly filled chunk.  In burst mode each dispatch's
 * packets are copied (libpcap reuses their memory) and handed over after it.
 *
 * Counters: pcap_stats() values are cumulative since open, in 32 bits; we
 * add their differences modulo 2^32 so our 64-bit counters survive the wrap.
 * Only the run thread calls pcap_stats().
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest_pvt.h"

#define LIVE_SNAPLEN 262144
#define LIVE_TIMEOUT_MS 100
#define LIVE_BUFFER (32 << 20)

struct live_source {
	struct ingest_source base;
	pcap_t *pcap;
	char *name;
	int fd;                /* pcap's selectable descriptor (non-blocking handle), or -1 */
	int nano;              /* timestamps in ns (else us) */
	uint32_t ps_drop_last; /* last pcap_stats() values; run thread only */
	uint32_t ps_ifdrop_last;
};

/* What the pcap_dispatch() callback needs. */
struct live_ctx {
	struct live_source *l;
	struct ingest_sink *k;
	int err; /* INGEST_E_QQ once the QQ refused a packet */
};

static void live_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	struct live_ctx *c = (struct live_ctx *)user;
	if (c->err)
		return;
	uint64_t frac = (uint64_t)h->ts.tv_usec; /* ns when c->l->nano */
	uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000u + (c->l->nano ? frac : frac * 1000u);
	/* libpcap may hand the ring's block back once the callback returns: burst mode copies */
	if (ingest__store(c->k, ts, h->caplen, h->len, data, INGEST_COPY) != 0) {
		c->err = INGEST_E_QQ;
		pcap_breakloop(c->l->pcap);
	}
}

static void live_stats_read(struct live_source *l)
{
	struct pcap_stat ps;
	if (pcap_stats(l->pcap, &ps) != 0)
		return;
	struct ingest_counters *c = &l->base.q[0];
	ingest__count_add(&c->dropped_kernel, (uint32_t)(ps.ps_drop - l->ps_drop_last));
	ingest__count_add(&c->dropped_iface, (uint32_t)(ps.ps_ifdrop - l->ps_ifdrop_last));
	l->ps_drop_last = ps.ps_drop;
	l->ps_ifdrop_last = ps.ps_ifdrop;
}

/* Waits for packets (or a pending error) at most LIVE_TIMEOUT_MS. */
static int live_wait(struct live_source *l, char *errbuf)
{
	if (l->fd < 0)
		return 0; /* blocking handle: pcap_dispatch() waits */
	struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
	if (poll(&pfd, 1, LIVE_TIMEOUT_MS) < 0 && errno != EINTR) {
		int e = errno;
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: poll: %s", l->name, strerror(e));
		return -e;
	}
	return 0;
}

static int live_run(struct ingest_source *s, struct ingest_sink *k, char *errbuf)
{
	struct live_source *l = (struct live_source *)s;
	struct live_ctx c = {.l = l, .k = k, .err = 0};
	uint64_t stats_due = ingest__mono_ns() + INGEST_STATS_EVERY_NS;
	int r = 0, n = 0;

	while (!ingest__stopping(s)) {
		if (n == 0 && (r = live_wait(l, errbuf)) != 0)
			break;
		n = pcap_dispatch(l->pcap, INGEST_BURST, live_packet, (u_char *)&c);
		if (c.err) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: stopped: the QQ refused packets",
			         l->name);
			r = INGEST_E_QQ;
			break;
		}
		if (n == PCAP_ERROR) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: capture failed: %s", l->name,
			         pcap_geterr(l->pcap));
			r = -EIO;
			break;
		}
		uint64_t now = ingest__mono_ns();
		if (n == 0) /* idle: publish the partly filled QQ chunk (under load chunks fill) */
			ingest__sink_idle(k, now);
		else
			ingest__sink_deliver(k); /* burst mode: this dispatch's packets */
		if (now >= stats_due) {
			live_stats_read(l);
			stats_due = now + INGEST_STATS_EVERY_NS;
		}
	}
	live_stats_read(l);
	return r;
}

static void live_close(struct ingest_source *s)
{
	struct live_source *l = (struct live_source *)s;
	if (l->pcap)
		pcap_close(l->pcap);
	free(l->name);
	free(l);
}

static const struct ingest_ops live_ops = {.run = live_run, .close = live_close};

/* Maps a pcap_activate() failure to our error convention, with a line naming the interface. */
static int live_activate_error(struct live_source *l, int status, char *errbuf)
{
	const char *msg = pcap_geterr(l->pcap);
	if (!msg || !msg[0])
		msg = pcap_statustostr(status);
	switch (status) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "no such interface: %s", l->name);
		return -ENODEV;
	case PCAP_ERROR_PERM_DENIED:
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: permission denied (needs root or CAP_NET_RAW): %s", l->name, msg);
		return -EPERM;
	case PCAP_ERROR_PROMISC_PERM_DENIED:
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: permission denied for promiscuous mode: %s", l->name, msg);
		return -EPERM;
	case PCAP_ERROR_IFACE_NOT_UP:
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: interface is down", l->name);
		return INGEST_E_LIVE;
	default:
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s", l->name, msg);
		return INGEST_E_LIVE;
	}
}

/*
 * Sets the capture options; the setters fail only on an activated handle, so
 * their results are not checked, except nanosecond precision, which a
 * platform may lack (then microseconds).
 */
static void live_configure(pcap_t *p)
{
	pcap_set_snaplen(p, LIVE_SNAPLEN);
	pcap_set_promisc(p, 1);
	pcap_set_timeout(p, LIVE_TIMEOUT_MS);
	pcap_set_buffer_size(p, LIVE_BUFFER);
	(void)pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
}

/* On success errbuf holds libpcap's warning from pcap_activate(), if any, else "". */
int ingest_live_open(const char *ifname, uint16_t port, struct ingest_source **out, char *errbuf)
{
	struct live_source *l = calloc(1, sizeof(*l));
	if (!l || !(l->name = strdup(ifname))) {
		free(l);
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: out of memory", ifname);
		return -ENOMEM;
	}
	l->base.ops = &live_ops;
	char perr[PCAP_ERRBUF_SIZE];
	l->pcap = pcap_create(ifname, perr);
	if (!l->pcap) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s", ifname, perr);
		live_close(&l->base);
		return INGEST_E_LIVE;
	}
	live_configure(l->pcap);
	int st = pcap_activate(l->pcap);
	if (st < 0) {
		int r = live_activate_error(l, st, errbuf);
		live_close(&l->base);
		return r;
	}
	errbuf[0] = '\0';
	if (st > 0) /* a warning (no promiscuous mode, say): capture works */
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: warning: %s", ifname,
		         pcap_geterr(l->pcap)[0] ? pcap_geterr(l->pcap) : pcap_statustostr(st));
	l->nano = pcap_get_tstamp_precision(l->pcap) == PCAP_TSTAMP_PRECISION_NANO;
	l->fd = pcap_get_selectable_fd(l->pcap);
	if (l->fd >= 0 && pcap_setnonblock(l->pcap, 1, perr) != 0)
		l->fd = -1; /* then pcap's own timeout is all we have */
	l->base.info = (struct ingest_source_info){
	    .name = l->name,
	    .kind = "live",
	    .linktype = ingest__pcap_linktype(l->pcap),
	    .snaplen = (uint32_t)pcap_snapshot(l->pcap),
	    .queues = 1,
	    .port = port,
	};
	*out = &l->base;
	return 0;
}
