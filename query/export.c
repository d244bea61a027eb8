/*
 * Exporters: matching packets as pcap (nanosecond or microsecond), pcapng,
 * or JSON lines.
 *
 * pcap carries one link type, so the caller picks it before the first
 * packet (export_begin).  pcapng writes an Interface Description Block the
 * first time a link type (and snaplen, and interface name: x->iface, a
 * fleet's sensor) appears, with if_tsresol = 9 so
 * timestamps keep their nanoseconds, and puts the query in the Section
 * Header's comment.  JSON writes one object per packet from the parsed
 * headers.  All formats write through stdio; the caller flushes once per
 * frame so `-w -` streams.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "query/query_pvt.h"

static int put(struct export *x, const void *p, size_t n)
{
	if (x->nspan && export_flush(x) != 0) /* spans first: the bytes stay in order */
		return QUERY_E_OUTPUT;
	if (n && fwrite(p, 1, n, x->out) != n)
		return QUERY_E_OUTPUT;
	x->bytes += n;
	return 0;
}

static int put32(struct export *x, uint32_t v)
{
	return put(x, &v, 4); /* host order: pcap and pcapng say which by their magic */
}

static int put16(struct export *x, uint16_t v)
{
	return put(x, &v, 2);
}

/* ---- pcap ------------------------------------------------------------------------------- */

static int pcap_header(struct export *x)
{
	uint32_t v[6] = {x->ts_micro ? 0xa1b2c3d4u : 0xa1b23c4du,
	                 0x00040002u,
	                 0,
	                 0,
	                 x->snaplen,
	                 (uint32_t)x->linktype};
	return put(x, v, sizeof(v));
}

/* writev(2) of iov[0..n) whole, through short writes and EINTR.  0 or QUERY_E_OUTPUT. */
static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return QUERY_E_OUTPUT;
		for (; n > 0 && (size_t)w >= iov->iov_len; n--, iov++)
			w -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int export_flush(struct export *x)
{
	int n = x->nspan, fd = n ? fileno(x->out) : -1, e = 0;
	x->nspan = 0;
	if (n && fd >= 0) /* what stdio holds goes first, then the spans from their frames */
		return fflush(x->out) == 0 ? writev_all(fd, x->span, n) : QUERY_E_OUTPUT;
	for (int i = 0; i < n && e == 0; i++) /* a FILE without a descriptor (a memstream) */
		if (fwrite(x->span[i].iov_base, 1, x->span[i].iov_len, x->out) !=
		    x->span[i].iov_len)
			e = QUERY_E_OUTPUT;
	return e;
}

/* Keeps the stored record back in a span (export_flush writes them). */
static int span_add(struct export *x, const struct archive_record *r)
{
	struct iovec *last = x->nspan ? &x->span[x->nspan - 1] : NULL;
	if (last && (const uint8_t *)last->iov_base + last->iov_len == r->raw) {
		last->iov_len += r->raw_len;
	} else {
		int e = x->nspan == EXPORT_SPANS ? export_flush(x) : 0;
		if (e)
			return e;
		x->span[x->nspan++] = (struct iovec){(void *)r->raw, r->raw_len};
	}
	x->bytes += r->raw_len;
	return 0;
}

static int pcap_packet(struct export *x, const struct archive_record *r)
{
	if (!x->ts_micro && r->raw) /* the archive stores exactly this */
		return span_add(x, r);
	uint32_t frac = (uint32_t)(r->ts_ns % 1000000000u);
	uint32_t h[4] = {(uint32_t)(r->ts_ns / 1000000000u), x->ts_micro ? frac / 1000u : frac,
	                 r->caplen, r->wirelen};
	int e = put(x, h, sizeof(h));
	return e ? e : put(x, r->data, r->caplen);
}

/* ---- pcapng ----------------------------------------------------------------------------- */

static int put_option(struct export *x, uint16_t code, const void *v, uint16_t len)
{
	static const uint8_t zero[4];
	int e = put16(x, code);
	if (!e)
		e = put16(x, len);
	if (!e)
		e = put(x, v, len);
	if (!e)
		e = put(x, zero, (4 - len % 4) % 4);
	return e;
}

static size_t opt_len(size_t len)
{
	return 4 + len + (4 - len % 4) % 4;
}

/* The comment bytes the Section Header Block keeps (an option holds at most 64 KiB). */
static size_t shb_comment_len(const char *comment)
{
	size_t clen = comment ? strlen(comment) : 0;
	return clen > 60000 ? 60000 : clen;
}

static uint32_t shb_size(size_t clen)
{
	return 28 + (clen ? (uint32_t)opt_len(clen) : 0) + 4;
}

static int pcapng_shb(struct export *x)
{
	size_t clen = shb_comment_len(x->comment);
	uint32_t total = shb_size(clen);
	int e = put32(x, 0x0A0D0D0A);
	uint32_t body[4] = {total, 0x1A2B3C4D, 0x00000001, 0xffffffffu}; /* v1.0, length unknown */
	if (!e)
		e = put(x, body, sizeof(body));
	if (!e)
		e = put32(x, 0xffffffffu);
	if (!e && clen)
		e = put_option(x, 1 /* opt_comment */, x->comment, (uint16_t)clen);
	if (!e)
		e = put32(x, 0); /* opt_endofopt */
	return e ? e : put32(x, total);
}

/* The index of interface (linktype, snaplen, x->iface) among those written, or x->nif. */
static unsigned iface_find(const struct export *x, int linktype, uint32_t snaplen)
{
	unsigned i;
	for (i = 0; i < x->nif; i++)
		if (x->if_linktype[i] == linktype && x->if_snaplen[i] == snaplen &&
		    (x->if_name[i] == x->iface ||
		     (x->if_name[i] && x->iface && strcmp(x->if_name[i], x->iface) == 0)))
			break;
	return i;
}

/* The bytes of the if_name option of x->iface (0: none). */
static size_t iface_name_len(const struct export *x)
{
	size_t n = x->iface ? strlen(x->iface) : 0;
	return n > 255 ? 255 : n;
}

/* The interface id of (linktype, snaplen, x->iface), writing its IDB the first time. */
static int pcapng_iface(struct export *x, int linktype, uint32_t snaplen, uint32_t *id)
{
	if ((*id = iface_find(x, linktype, snaplen)) < x->nif)
		return 0;
	if (x->nif == EXPORT_MAX_IFACES)
		return QUERY_E_LINKTYPES;
	uint8_t tsresol = 9;
	size_t nlen = iface_name_len(x);
	uint32_t total = 16 + (uint32_t)opt_len(1) + (nlen ? (uint32_t)opt_len(nlen) : 0) + 4 + 4;
	int e = put32(x, 1); /* IDB */
	if (!e)
		e = put32(x, total);
	if (!e)
		e = put16(x, (uint16_t)linktype);
	if (!e)
		e = put16(x, 0);
	if (!e)
		e = put32(x, snaplen);
	if (!e && nlen)
		e = put_option(x, 2 /* if_name */, x->iface, (uint16_t)nlen);
	if (!e)
		e = put_option(x, 9 /* if_tsresol */, &tsresol, 1);
	if (!e)
		e = put32(x, 0);
	if (!e)
		e = put32(x, total);
	if (e)
		return e;
	x->if_linktype[x->nif] = linktype;
	x->if_snaplen[x->nif] = snaplen;
	x->if_name[x->nif] = x->iface;
	*id = x->nif++;
	return 0;
}

static int pcapng_packet(struct export *x, int linktype, uint32_t snaplen,
                         const struct archive_record *r)
{
	static const uint8_t zero[4];
	uint32_t id;
	int e = pcapng_iface(x, linktype, snaplen, &id);
	if (e)
		return e;
	uint32_t pad = (4 - r->caplen % 4) % 4, total = 32 + r->caplen + pad;
	uint32_t h[7] = {6 /* EPB */,        total,     id,        (uint32_t)(r->ts_ns >> 32),
	                 (uint32_t)r->ts_ns, r->caplen, r->wirelen};
	if ((e = put(x, h, sizeof(h))) || (e = put(x, r->data, r->caplen)) ||
	    (e = put(x, zero, pad)))
		return e;
	return put32(x, total);
}

/* ---- JSON lines --------------------------------------------------------------------------- */

void export_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f); /* UTF-8 (parameters are checked to be) passes through */
	}
	fputc('"', f);
}

void export_json_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000u));
}

#define JSON_MAX 512 /* an object is at most ~330 bytes */

/* Appends to a JSON_MAX buffer. */
#define JPUT(...)                                                                             \
	(n += snprintf(buf + (n < JSON_MAX ? n : 0), n < JSON_MAX ? JSON_MAX - (size_t)n : 0, \
	               __VA_ARGS__))

/* IP: protocol, addresses, ports, TCP flags, TTL (hop limit). */
static int json_ip(const struct ft_packet *p, char *buf, int n)
{
	char a[FT_ADDRSTRLEN], b[FT_ADDRSTRLEN], pbuf[16], fl[16];
	ft_addr_format(p->src, a, sizeof(a));
	ft_addr_format(p->dst, b, sizeof(b));
	JPUT(",\"proto\":\"%s\",\"src\":\"%s\",\"dst\":\"%s\"",
	     ft_proto_name(p->proto, pbuf, sizeof(pbuf)), a, b);
	if (p->flags & FT_PKT_L4)
		JPUT(",\"sport\":%u,\"dport\":%u", p->sport, p->dport);
	if (p->proto == 6 && (p->flags & FT_PKT_L4)) {
		ft_tcp_flags_format(p->tcp_flags, fl);
		JPUT(",\"tcp_flags\":\"%s\"", fl);
	}
	if (p->family)
		JPUT(",\"ttl\":%u", p->ttl);
	return n;
}

/* Not IP: the ethertype, and for ARP (RARP) the sender and target IPv4 addresses. */
static int json_non_ip(const struct ft_packet *p, char *buf, int n)
{
	char a[FT_ADDRSTRLEN], b[FT_ADDRSTRLEN];
	JPUT(",\"ethertype\":\"0x%04x\"", p->ethertype);
	if (p->flags & FT_PKT_ARP) {
		ft_addr_format(p->src, a, sizeof(a));
		ft_addr_format(p->dst, b, sizeof(b));
		JPUT(",\"src\":\"%s\",\"dst\":\"%s\"", a, b);
	}
	return n;
}

/* One object per packet: time, lengths, and what the parser found.  Returns its length. */
static int json_format(int linktype, const struct archive_record *r, char *buf)
{
	char t[48];
	struct ft_packet p;
	int n = 0;
	export_json_time(r->ts_ns, t, sizeof(t));
	JPUT("{\"time\":\"%s\",\"ts_ns\":%llu,\"len\":%u,\"caplen\":%u", t,
	     (unsigned long long)r->ts_ns, r->wirelen, r->caplen);
	if (ft_parse(linktype, r->data, r->caplen, &p) != 0)
		memset(&p, 0, sizeof(p)); /* a link type the parser does not know: no more fields */
	if ((p.flags & FT_PKT_IP) && !(p.flags & FT_PKT_ARP))
		n = json_ip(&p, buf, n);
	else if (p.ethertype)
		n = json_non_ip(&p, buf, n);
	if (p.n_vlan)
		JPUT(",\"vlan\":%u", p.vlan[0]);
	if (p.flags & FT_PKT_FRAG)
		JPUT(",\"fragment\":true");
	JPUT("}\n");
	return n < JSON_MAX ? n : JSON_MAX - 1;
}

static int json_packet(struct export *x, int linktype, const struct archive_record *r)
{
	char buf[JSON_MAX];
	int n = json_format(linktype, r, buf); /* buf written before put reads it */
	return put(x, buf, (size_t)n);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int export_begin(struct export *x)
{
	switch (x->format) {
	case QUERY_FORMAT_PCAP:
		return pcap_header(x);
	case QUERY_FORMAT_PCAPNG:
		return pcapng_shb(x);
	case QUERY_FORMAT_JSON:
		return 0;
	}
	return -EINVAL;
}

int export_packet(struct export *x, int linktype, uint32_t snaplen, const struct archive_record *r)
{
	switch (x->format) {
	case QUERY_FORMAT_PCAP:
		return pcap_packet(x, r);
	case QUERY_FORMAT_PCAPNG:
		return pcapng_packet(x, linktype, snaplen, r);
	case QUERY_FORMAT_JSON:
		return json_packet(x, linktype, r);
	}
	return -EINVAL;
}

uint64_t query_header_size(const struct query_options *opt)
{
	switch (opt->format) {
	case QUERY_FORMAT_PCAP:
		return 24;
	case QUERY_FORMAT_PCAPNG:
		return shb_size(shb_comment_len(opt->comment));
	case QUERY_FORMAT_JSON:
		return 0;
	}
	return 0;
}

uint64_t export_packet_size(const struct export *x, int linktype, uint32_t snaplen,
                            const struct archive_record *r)
{
	char buf[JSON_MAX];
	switch (x->format) {
	case QUERY_FORMAT_PCAP:
		return 16u + r->caplen;
	case QUERY_FORMAT_PCAPNG: {
		uint64_t n = 32u + r->caplen + (4 - r->caplen % 4) % 4;
		if (iface_find(x, linktype, snaplen) < x->nif)
			return n;
		size_t nlen = iface_name_len(x);
		return n + 16 + opt_len(1) + (nlen ? opt_len(nlen) : 0) + 8; /* and its IDB */
	}
	case QUERY_FORMAT_JSON:
		return (uint64_t)json_format(linktype, r, buf);
	}
	return 0;
}
