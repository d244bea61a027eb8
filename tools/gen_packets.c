/*
 * gen_packets.c - the bytes of `flowscope gen`: payloads, headers, checksums, pcap records.
 *
 * Each frame is built in place in one buffer (g->frame): the flow state machine (gen_flows.c)
 * puts the payload after the L4 header, then gen_emit_* writes the L4 header, IP and Ethernet,
 * and last the L4 checksum over the finished pseudo-header and payload.  Nothing is allocated
 * per packet.
 *
 * Invariants:
 *  - IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums are right (pseudo-headers included); TCP
 *    sequence and acknowledgement numbers follow the bytes actually sent.
 *  - Multi-byte fields are written byte by byte, so the file does not depend on the host.
 *  - Payloads on well-known ports follow the protocol when g->structured (HTTP heads with exact
 *    Content-Length, DNS messages, NTP packets, TLS records, SSH banners); --payload only picks
 *    the filler (text or random), so dissectors find nothing malformed.
 *  - Size presets (--size 64|imix|1500) give every data packet exactly its preset size and pad
 *    every shorter frame to the 60-byte Ethernet minimum with zeros.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/gen.h"

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

/*
 * Internet checksum (RFC 1071).  The one's complement sum does not depend on byte order or
 * word size, so we add native 32-bit words and store the folded result natively; the bytes come
 * out right on any host.  Every chunk must start at an even offset of the summed stream.
 */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
	uint32_t w;
	uint16_t h;

	for (; n >= 4; p += 4, n -= 4) {
		memcpy(&w, p, 4);
		sum += w;
	}
	if (n >= 2) {
		memcpy(&h, p, 2);
		sum += h;
		p += 2;
		n -= 2;
	}
	if (n) {
		uint8_t t[2] = {p[0], 0};

		memcpy(&h, t, 2);
		sum += h;
	}
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---- sizes ---------------------------------------------------------------------------------- */

/* Payload that makes the frame 60 bytes (64 with the FCS), at least 1 byte when the headers
 * alone reach that (IPv6 TCP, or tagged IPv6). */
static uint32_t small_frame_len(const struct gen_flow *f, uint32_t l4)
{
	uint32_t hdr = (uint32_t)(gen_l2_len(f) + gen_l3_len(f)) + l4;

	return hdr + 1 < GEN_MIN_FRAME ? GEN_MIN_FRAME - hdr : 1;
}

/* Payload that makes an IP packet of ip_len bytes. */
static uint32_t ip_packet_len(const struct gen_flow *f, uint32_t l4, uint32_t ip_len)
{
	return ip_len - (uint32_t)gen_l3_len(f) - l4;
}

uint32_t gen_data_len(struct gen *g, const struct gen_flow *f, uint32_t l4)
{
	uint32_t r;

	switch (g->o.sizes) {
	case GEN_SIZE_64:
		return small_frame_len(f, l4);
	case GEN_SIZE_1500:
		return ip_packet_len(f, l4, 1500);
	case GEN_SIZE_IMIX:
		r = rng_below(&g->rng, 12); /* simple IMIX: 7 small, 4 medium, 1 large */
		if (r < 7)
			return small_frame_len(f, l4);
		return ip_packet_len(f, l4, r < 11 ? 576 : 1500);
	default:
		return rng_range(&g->rng, g->o.size_min, g->o.size_max);
	}
}

uint32_t gen_data_max(const struct gen *g, const struct gen_flow *f, uint32_t l4)
{
	switch (g->o.sizes) {
	case GEN_SIZE_64:
		return small_frame_len(f, l4);
	case GEN_SIZE_1500:
	case GEN_SIZE_IMIX:
		return ip_packet_len(f, l4, 1500);
	default:
		return g->o.size_max;
	}
}

/* ---- payloads ------------------------------------------------------------------------------- */

void gen_text_build(struct gen *g)
{
	static const char *const fmt[] = {
	    "Host: www%u.example.com\r\n",
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) flowscope-gen/%u\r\n",
	    "Accept: text/html,application/xhtml+xml,application/xml;q=0.%u\r\n",
	    "Accept-Encoding: gzip, deflate, br; build=%u\r\n",
	    "X-Request-Id: %08x\r\n",
	    "Set-Cookie: session=%08x; Path=/; HttpOnly; SameSite=Lax\r\n",
	    "Cache-Control: max-age=%u, must-revalidate\r\n",
	    "<li><a href=\"/catalog/item/%u\">Item details and reviews</a></li>\r\n",
	    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do %u.</p>\r\n",
	    "{\"id\": %u, \"status\": \"ok\", \"tags\": [\"alpha\", \"beta\"]}\r\n",
	};
	size_t want = GEN_TEXT_SPAN + g->pay_max, used = 0;
	char line[128];

	while (used < want) {
		uint32_t v = (uint32_t)rng_next(&g->rng);
		const char *f = fmt[rng_below(&g->rng, sizeof(fmt) / sizeof(fmt[0]))];
		int k = snprintf(line, sizeof(line), f, v % 100000u);
		size_t n = min_u32((uint32_t)k, (uint32_t)(want - used));

		memcpy(g->text + used, line, n);
		used += n;
	}
}

static void fill_text(struct gen *g, uint8_t *p, size_t len)
{
	memcpy(p, g->text + rng_below(&g->rng, GEN_TEXT_SPAN), len);
}

/* Fresh PRNG output for every byte, so random payloads are truly incompressible. */
static void fill_random(struct gen *g, uint8_t *p, size_t len)
{
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = rng_next(&g->rng);

		for (unsigned b = 0; b < 8; b++)
			p[i + b] = (uint8_t)(v >> (8 * b));
	}
	for (uint64_t v = rng_next(&g->rng); i < len; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

void gen_fill_plain(struct gen *g, uint8_t *p, size_t len)
{
	if (g->o.payload == GEN_PAY_ZERO)
		memset(p, 0, len);
	else if (g->o.payload == GEN_PAY_RANDOM)
		fill_random(g, p, len);
	else
		fill_text(g, p, len);
}

/* Copies a head of hl bytes and fills the rest of len; false if it does not fit. */
static bool put_head(struct gen *g, uint8_t *p, size_t len, const char *head, int hl)
{
	if (hl < 0 || (size_t)hl > len)
		return false;
	memcpy(p, head, (size_t)hl);
	gen_fill_plain(g, p + hl, len - (size_t)hl);
	return true;
}

static bool http_request(struct gen *g, const struct gen_flow *f, uint8_t *p, size_t len)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
	                  "GET /catalog/item/%u HTTP/1.1\r\nHost: s%u.example.com\r\n"
	                  "User-Agent: flowscope-gen/1.0\r\nAccept: */*\r\nX-Pad: ",
	                  rng_below(&g->rng, 100000), f->server + 1u);

	/* The X-Pad value (text without CR/LF) stretches the head to exactly len bytes. */
	if (hl < 0 || (size_t)hl + 4 > len)
		return false;
	memcpy(p, head, (size_t)hl);
	memset(p + hl, 'x', len - (size_t)hl - 4);
	memcpy(p + len - 4, "\r\n\r\n", 4);
	return true;
}

/* Response head whose Content-Length makes head + body exactly total bytes. */
static bool http_response(struct gen *g, uint8_t *p, size_t len, uint32_t total)
{
	static const char fmt[] = "HTTP/1.1 200 OK\r\nServer: flowscope-gen\r\n"
	                          "Content-Type: %s\r\nContent-Length:%*u\r\n\r\n";
	const char *type =
	    g->o.payload == GEN_PAY_TEXT ? "text/html; charset=utf-8" : "application/octet-stream";
	uint32_t fixed = (uint32_t)(sizeof(fmt) - 1 - 5 + strlen(type)); /* without %s, %*u */
	char head[256];

	/* Find cl with fixed + 1 (the space) + digits(cl) + cl == total; one total per power of
	 * ten has no solution, then a second space (optional whitespace) fills the gap. */
	for (int pad = 1; pad <= 2; pad++) {
		for (int d = 1; d <= 10; d++) {
			int64_t cl = (int64_t)total - fixed - pad - d;

			if (cl >= 0 && snprintf(NULL, 0, "%" PRId64, cl) == d) {
				int hl =
				    snprintf(head, sizeof(head), fmt, type, d + pad, (unsigned)cl);

				return put_head(g, p, len, head, hl);
			}
		}
	}
	return false;
}

/* DNS name for choice k, www|api|cdn|mail|time.s<n>.example.com|net|org, as labels. */
static size_t dns_name(uint8_t *p, uint32_t k)
{
	static const char *const first[] = {"www", "api", "cdn", "mail", "time"};
	static const char *const tld[] = {"com", "net", "org"};
	char *name = (char *)p + 1;
	int n = sprintf(name, "%s.s%u.example.%s", first[k % 5], (k / 15) % 1000, tld[(k / 5) % 3]);
	uint8_t *len = p;

	/* Dotted form one byte to the right; each dot (and the start) becomes a length. */
	for (int i = 0; i <= n; i++) {
		if (name[i] == '.' || name[i] == '\0') {
			*len = (uint8_t)((uint8_t *)name + i - len - 1);
			len = (uint8_t *)name + i;
		}
	}
	*len = 0; /* the root label, over the terminating NUL */
	return (size_t)n + 2;
}

size_t gen_dns_message(const struct gen_flow *f, uint8_t *p, bool resp)
{
	uint16_t qtype = f->v6 ? 28 : 1; /* AAAA for IPv6 clients, A otherwise */
	uint8_t ip[16], mac[6];
	size_t n = 12;

	put16(p, f->txn_id);
	put16(p + 2, resp ? 0x8180 : 0x0100); /* response + RD + RA : query + RD */
	put16(p + 4, 1);
	put16(p + 6, resp ? 1 : 0);
	put32(p + 8, 0);
	n += dns_name(p + n, f->txn_seq);
	put16(p + n, qtype);
	put16(p + n + 2, 1); /* IN */
	n += 4;
	if (!resp)
		return n;
	put16(p + n, 0xc00c); /* pointer to the question name */
	put16(p + n + 2, qtype);
	put16(p + n + 4, 1);
	put32(p + n + 6, 300);
	put16(p + n + 10, qtype == 1 ? 4 : 16);
	n += 12;
	/* The answer is the server itself: realistic enough and keeps the packet deterministic. */
	gen_host_addr(f->server, true, f->v6, ip, mac);
	memcpy(p + n, ip, qtype == 1 ? 4 : 16);
	return n + (qtype == 1 ? 4 : 16);
}

/* NTPv4 client request (mode 3) or server reply (mode 4). */
size_t gen_ntp_message(const struct gen *g, uint8_t *p, bool resp)
{
	uint32_t secs = (uint32_t)(g->sec + 2208988800ull); /* NTP era 0 wraps; fine */
	uint32_t frac = (uint32_t)(((uint64_t)g->nsec << 32) / 1000000000u);

	memset(p, 0, 48);
	p[0] = resp ? 0x24 : 0x23; /* LI 0, VN 4, mode */
	p[2] = 6;                  /* poll 64 s */
	p[3] = 0xe9;               /* precision ~2^-23 s */
	if (resp) {
		p[1] = 2; /* stratum 2: reference id is an IPv4 address */
		put32(p + 4, 0x00000123);
		put32(p + 8, 0x00000456);
		put32(p + 12, 0xc0000201); /* 192.0.2.1 */
		put32(p + 16, secs - 40);  /* reference timestamp */
		put32(p + 24, secs);       /* origin (the client's transmit time, roughly) */
		put32(p + 32, secs);       /* receive */
		put32(p + 36, frac);
	}
	put32(p + 40, secs); /* transmit */
	put32(p + 44, frac);
	return 48;
}

/*
 * One TLS 1.2 application-data record filling the segment; returns its length, at least 6 (a
 * segment shorter than a record header would make the dissector reassemble across records).
 */
static size_t tls_record(struct gen *g, uint8_t *p, size_t len)
{
	if (len < 6)
		len = 6; /* within --size: structured payloads imply size_max >= GEN_STRUCT_MAX */
	p[0] = 0x17;
	p[1] = 0x03;
	p[2] = 0x03;
	put16(p + 3, (uint32_t)(len - 5));
	fill_random(g, p + 5, len - 5); /* encrypted: no structure to imitate */
	return len;
}

static size_t ssh_banner(uint8_t *p, int d)
{
	static const char *const banner[2] = {"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
	                                      "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n"};
	size_t n = strlen(banner[d]);

	memcpy(p, banner[d], n);
	return n;
}

size_t gen_tcp_payload(struct gen *g, const struct gen_flow *f, int d, uint8_t *p, size_t len,
                       bool first)
{
	if (!g->structured) {
		gen_fill_plain(g, p, len);
		return len;
	}
	switch (f->app) {
	case APP_DNS:
		len = gen_dns_message(f, p + 2, d == S2C);
		put16(p, (uint32_t)len);
		return len + 2;
	case APP_HTTP:
		if (first && d == C2S && http_request(g, f, p, len))
			return len;
		if (first && d == S2C && f->bulk == S2C &&
		    http_response(g, p, len, (f->s_segs - 1) * g->o.size_max + f->last_len))
			return len;
		break;
	case APP_TLS:
		return len ? tls_record(g, p, len) : 0;
	case APP_SSH:
		/* After the version exchange everything is encrypted binary. */
		if (!(f->spoke & (1u << d)))
			return ssh_banner(p, d);
		fill_random(g, p, len);
		return len;
	default:
		break;
	}
	gen_fill_plain(g, p, len);
	return len;
}

/* ---- frames --------------------------------------------------------------------------------- */

static void put_eth(uint8_t *p, const struct gen_flow *f, uint8_t (*mac)[6], int d)
{
	memcpy(p, mac[!d], 6);
	memcpy(p + 6, mac[d], 6);
	if (f->vlan) {
		put16(p + 12, 0x8100);
		put16(p + 14, 100u * f->vlan); /* PCP 0, DEI 0 */
		p += 4;
	}
	put16(p + 12, f->v6 ? 0x86dd : 0x0800);
}

/* The TTL (hop limit) side d sends with: the server is one router away from the capture point
 * (IPv4), until a --event ttl-change moves one side to its new value. */
static uint8_t ttl_of(const struct gen_flow *f, int d)
{
	if (f->ttl_moved && d == f->ttl_side)
		return f->ttl_new;
	return (uint8_t)(f->v6 || d == C2S ? 64 : 63);
}

static void put_ip4(uint8_t *p, struct gen_flow *f, uint8_t (*ip)[16], int d, uint8_t proto,
                    size_t l4len)
{
	uint16_t c;

	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint32_t)(20 + l4len));
	put16(p + 4, f->ipid[d]++);
	put16(p + 6, proto == PROTO_TCP ? 0x4000 : 0); /* DF for TCP, as Linux does with PMTUD */
	p[8] = ttl_of(f, d);
	p[9] = proto;
	p[10] = p[11] = 0;
	memcpy(p + 12, ip[d], 4);
	memcpy(p + 16, ip[!d], 4);
	c = csum_fold(csum_add(0, p, 20));
	memcpy(p + 10, &c, 2);
}

/* The flow label is a hash of the client endpoint and direction: fixed per flow and side. */
static void put_ip6(uint8_t *p, const struct gen *g, const struct gen_flow *f, uint8_t (*ip)[16],
                    int d, uint8_t nh, size_t l4len)
{
	uint32_t x = (f->client * 65537u + f->port[C2S]) ^ g->host_key ^ (d ? 0x9e3779b9u : 0);

	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	put32(p, 0x60000000u | ((x & 0xfffffu) | 1u)); /* 20 bits, never 0 */
	put16(p + 4, (uint32_t)l4len);
	p[6] = nh;
	p[7] = ttl_of(f, d);
	memcpy(p + 8, ip[d], 16);
	memcpy(p + 24, ip[!d], 16);
}

/* Writes the pcap record of the len-byte frame; returns its length after padding. */
static size_t frame_write(struct gen *g, size_t len)
{
	struct pcap_pkthdr h;

	if (g->o.sizes != GEN_SIZE_RANGE && len < GEN_MIN_FRAME) {
		memset(g->frame + len, 0, GEN_MIN_FRAME - len); /* Ethernet padding */
		len = GEN_MIN_FRAME;
	}
	h.ts.tv_sec = (time_t)g->sec;
	h.ts.tv_usec = (suseconds_t)g->nsec; /* nanoseconds: the handle has nano precision */
	h.len = (bpf_u_int32)len;
	h.caplen = (bpf_u_int32)min_u32((uint32_t)len, g->o.snaplen);
	pcap_dump((u_char *)g->dump, &h, g->frame);
	g->packets++;
	g->wire_bytes += len;
	g->last_sec = g->sec;
	g->last_nsec = g->nsec;
	return len;
}

/*
 * Completes the frame whose L4 header (checksum field zero) and payload are in place: writes
 * the IP and Ethernet headers, the L4 checksum at l4 + csum_off, and dumps the frame.
 */
static void frame_finish(struct gen *g, struct gen_flow *f, int d, uint8_t proto, size_t l4len,
                         size_t csum_off)
{
	uint8_t *l3 = g->frame + gen_l2_len(f), *l4 = l3 + gen_l3_len(f);
	uint8_t ip[2][16], mac[2][6], tail[8] = {0};
	uint64_t sum = 0;
	uint16_t c;
	size_t len;

	gen_host_addr(f->client, false, f->v6, ip[C2S], mac[C2S]);
	gen_host_addr(f->server, true, f->v6, ip[S2C], mac[S2C]);
	put_eth(g->frame, f, mac, d);
	if (f->v6) {
		put_ip6(l3, g, f, ip, d, proto, l4len);
		put32(tail, (uint32_t)l4len); /* pseudo-header: addresses, length, next header */
		tail[7] = proto;
		sum = csum_add(csum_add(0, l3 + 8, 32), tail, 8);
	} else {
		put_ip4(l3, f, ip, d, proto, l4len);
		if (proto != PROTO_ICMP) {
			tail[1] = proto; /* pseudo-header: addresses, zero, protocol, length */
			put16(tail + 2, (uint32_t)l4len);
			sum = csum_add(csum_add(0, l3 + 12, 8), tail, 4);
		}
	}
	c = csum_fold(csum_add(sum, l4, l4len));
	if (proto == PROTO_UDP && c == 0)
		c = 0xffff; /* zero means "no checksum" in UDP */
	memcpy(l4 + csum_off, &c, 2);
	len = frame_write(g, gen_l2_len(f) + gen_l3_len(f) + l4len);
	f->bytes += f->event == GEN_EV_BIG ? gen_l3_len(f) + l4len : len;
}

/* The MSS a SYN announces: the largest segment the --size range or preset sends. */
static uint32_t syn_mss(const struct gen *g, const struct gen_flow *f)
{
	if (g->o.sizes != GEN_SIZE_RANGE)
		return ip_packet_len(f, 20, 1500);
	return min_u32(max_u32(g->o.size_max, 536), 65495 - (f->v6 ? 20 : 0));
}

void gen_emit_tcp(struct gen *g, struct gen_flow *f, int d, uint8_t flags, size_t len)
{
	uint8_t *th = gen_frame_l4(g, f);
	size_t hl = (flags & TH_SYN) ? 32 : 20;
	uint32_t win = (flags & TH_SYN) ? (d == C2S ? 64240 : 65160) : (d == C2S ? 502 : 509);

	put16(th, f->port[d]);
	put16(th + 2, f->port[!d]);
	put32(th + 4, f->seq[d]);
	put32(th + 8, (flags & TH_ACK) ? f->seq[!d] : 0);
	th[12] = (uint8_t)((hl / 4) << 4);
	th[13] = flags;
	put16(th + 14, win);
	put32(th + 16, 0); /* checksum, urgent pointer */
	if (flags & TH_SYN) {
		/* MSS, NOP, window scale 7, NOP, NOP, SACK permitted: a Linux SYN without stamps */
		static const uint8_t opt[12] = {2, 4, 0, 0, 1, 3, 3, 7, 1, 1, 4, 2};

		memcpy(th + 20, opt, sizeof(opt));
		put16(th + 22, syn_mss(g, f));
	}
	f->seq[d] += (uint32_t)len + ((flags & (TH_SYN | TH_FIN)) ? 1 : 0);
	if (flags & TH_ACK)
		f->unacked[d] = 0;
	if (len)
		f->unacked[!d]++;
	frame_finish(g, f, d, PROTO_TCP, hl + len, 16);
}

void gen_emit_udp(struct gen *g, struct gen_flow *f, int d, size_t len)
{
	uint8_t *uh = gen_frame_l4(g, f);

	put16(uh, f->port[d]);
	put16(uh + 2, f->port[!d]);
	put16(uh + 4, (uint32_t)(8 + len));
	put16(uh + 6, 0);
	frame_finish(g, f, d, PROTO_UDP, 8 + len, 6);
}

void gen_emit_icmp(struct gen *g, struct gen_flow *f, int d, size_t len)
{
	uint8_t *ih = gen_frame_l4(g, f);

	if (f->v6)
		ih[0] = d == C2S ? 128 : 129; /* ICMPv6 echo request / reply */
	else
		ih[0] = d == C2S ? 8 : 0;
	ih[1] = 0;
	put16(ih + 2, 0);
	put16(ih + 4, f->txn_id);
	put16(ih + 6, f->txn_seq);
	frame_finish(g, f, d, f->v6 ? PROTO_ICMP6 : PROTO_ICMP, 8 + len, 2);
}
