/*
 * gen.c - `flowscope gen`: write a pcap file of synthetic, deterministic, realistic traffic.
 *
 * The idea: a table of --flows slots, each holding one flow (TCP, UDP or ICMP) that is a small
 * state machine emitting exactly one packet per step.  For every packet a seeded PRNG picks a
 * slot and steps its flow; a finished flow is replaced by a fresh one the next time its slot is
 * picked.  So up to --flows flows interleave like a real capture, and the file holds exactly
 * --packets packets (the last flows are simply cut off wherever they are).
 *
 * Invariants:
 *  - Determinism: the only entropy is one splitmix64 stream seeded from --seed, consumed in an
 *    order fixed by the options; no clocks, no rand(), no pointer values, multi-byte fields
 *    written byte by byte.  Same options and seed => byte-identical file.
 *  - Speed: nothing is allocated per packet.  Each frame is built in place in one buffer: the
 *    payload first, then the L4 header, then IP and Ethernet, then the L4 checksum.
 *  - Correctness: IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums are right (pseudo-headers
 *    included); TCP sequence and acknowledgement numbers follow the bytes actually sent;
 *    timestamps never go backwards.
 *  - 5-tuples are unique over the whole file: the client port advances with every flow and the
 *    client host shifts each time the ephemeral range wraps, so no two flows ever merge.
 *  - Payloads on well-known ports follow the protocol (HTTP heads with exact Content-Length,
 *    DNS messages, NTP packets, TLS records, SSH banners) and --payload only chooses the filler
 *    (text or random), so dissectors find nothing malformed.  Zero payloads, or a --size range
 *    too narrow for the heads, give unstructured bytes, and DNS/NTP move to undissected ports.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "tools/cli.h"

enum {
	GEN_EXIT_OK = 0,
	GEN_EXIT_IO = 1,
	GEN_EXIT_USAGE = 2,
};

#define GEN_MAX_PAYLOAD 65495u /* 65535 - IPv4 20 - TCP 20: largest payload every flow can carry */
#define GEN_MAX_FLOWS 1000000u
#define GEN_MAX_SNAPLEN 262144u
#define GEN_MAX_PACKETS 1000000000000ull
#define GEN_FRAME_ROOM (14 + 4 + 40 + 32 + GEN_MAX_PAYLOAD) /* eth, vlan, ipv6, tcp + opts */
#define GEN_TEXT_SPAN 65536u /* text payloads are copied from a random offset below this */
#define GEN_NCLIENTS 4000u   /* 10.1.0.1 .. 10.1.15.250 */
#define GEN_NSERVERS 16u     /* 10.2.0.1 .. 10.2.0.16 */
#define GEN_EPH_LO 32768u
#define GEN_EPH_N (60999u - GEN_EPH_LO + 1u)
#define GEN_OUT_BUFFER (1u << 20) /* stdio buffer: few large writes instead of many small ones */

/* Protocol-shaped payloads need this room in the --size range (an HTTP head is ~130 bytes). */
#define GEN_STRUCT_MIN 32u
#define GEN_STRUCT_MAX 256u
#define GEN_HTTP_HEAD 160u /* smallest segment that starts an HTTP request or response */

enum { C2S = 0, S2C = 1 }; /* direction; also the index of the sending side in a flow */

enum { TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_PSH = 0x08, TH_ACK = 0x10 };
enum { PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ICMP6 = 58 };

enum gen_payload { GEN_PAY_ZERO, GEN_PAY_TEXT, GEN_PAY_RANDOM };

enum gen_app { APP_DATA, APP_HTTP, APP_TLS, APP_SSH, APP_SMTP, APP_DNS, APP_NTP, APP_PING };

enum gen_phase {
	P_SYN,      /* TCP: client SYN */
	P_SYNACK,   /* TCP: server SYN/ACK */
	P_ACK,      /* TCP: client ACK completing the handshake */
	P_REFUSED,  /* TCP: server RST/ACK answering the SYN */
	P_CBURST,   /* TCP: client data segments of this round (request or upload) */
	P_SBURST,   /* TCP: server data segments of this round (response or download) */
	P_ROUNDACK, /* TCP: client acknowledges the end of the server burst */
	P_FIN1,     /* TCP: closer FIN/ACK */
	P_FIN2,     /* TCP: the other side FIN/ACK */
	P_LASTACK,  /* TCP: closer ACK */
	P_RST,      /* TCP: closer RST/ACK instead of the FIN exchange */
	P_REQ,      /* UDP/ICMP: request from the client */
	P_RESP,     /* UDP/ICMP: response from the server */
	P_DONE,
};

struct gen_opts {
	const char *out;
	uint64_t packets;
	uint64_t seed;
	uint64_t start_sec;
	uint32_t start_nsec;
	double rate;
	uint32_t flows;
	uint32_t snaplen;
	uint32_t size_min, size_max;
	uint32_t ipv6_pct, vlan_pct, udp_pct, icmp_pct;
	enum gen_payload payload;
};

struct gen_rng {
	uint64_t s;
};

struct gen_host {
	uint8_t mac[6];
	uint8_t ip[16]; /* IPv4 in the first 4 bytes */
};

/* One flow.  Index [C2S] is the client side, [S2C] the server side. */
struct gen_flow {
	struct gen_host end[2];
	uint16_t port[2];
	uint16_t ipid[2];   /* next IPv4 identification each side sends */
	uint32_t seq[2];    /* next TCP sequence number each side sends */
	uint32_t label[2];  /* IPv6 flow label each side uses */
	uint8_t unacked[2]; /* data segments side i received and has not acknowledged */
	uint32_t segs;      /* TCP: segments left in the current burst */
	uint32_t s_segs;    /* TCP: segments of the server burst of this round */
	uint32_t last_len;  /* TCP: length of the final segment of a bulk burst */
	uint32_t rounds;    /* TCP: rounds left after this one; UDP/ICMP: exchanges left */
	uint32_t ping_len;  /* ICMP: echo payload length, fixed per flow like ping(8) */
	uint16_t txn_id;    /* DNS id, ICMP echo identifier */
	uint16_t txn_seq;   /* ICMP echo sequence, DNS name choice */
	uint16_t vlan;      /* 0: untagged */
	uint8_t proto;      /* PROTO_TCP, PROTO_UDP or PROTO_ICMP (ICMPv6 when v6) */
	uint8_t app;        /* enum gen_app */
	uint8_t phase;      /* enum gen_phase */
	uint8_t closer;     /* TCP: side that closes */
	uint8_t bulk;       /* TCP: side sending full-size segments this round; 2 = neither */
	uint8_t spoke;      /* TCP: bit d set once side d sent data (SSH banners come first) */
	bool rst;           /* TCP: the closer resets instead of exchanging FINs */
	bool v6;
	bool active;
};

struct gen {
	struct gen_opts o;
	struct gen_rng rng;
	struct gen_flow *flows;
	uint8_t *frame;  /* the frame being built; GEN_FRAME_ROOM bytes */
	char *text;      /* GEN_TEXT_SPAN + size_max bytes of HTTP-like lines */
	bool structured; /* payloads follow the protocol of their port (see the invariants) */
	uint32_t host_key;
	uint64_t port_next; /* client port slot of the next flow, counting wraps */
	uint64_t flows_started;
	uint64_t wire_bytes;
	uint64_t sec; /* timestamp of the next packet */
	uint32_t nsec;
	uint32_t frac;     /* 1/65536 ns, so rates above 1 Gpps still advance on average */
	double mean_fp;    /* mean gap between packets in 1/65536 ns */
	uint64_t last_sec; /* timestamp of the last packet written */
	uint32_t last_nsec;
	pcap_t *pcap;
	pcap_dumper_t *dump;
	FILE *fp;
	int write_errno;
};

/* ---- small helpers ---------------------------------------------------------------------- */

/* splitmix64: tiny, fast, and every seed (0 included) gives a full-quality stream. */
static uint64_t rng_next(struct gen_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n): multiply-shift without rejection; the bias (< n / 2^32) is invisible here
 * and the stream stays branch-free and deterministic. */
static uint32_t rng_below(struct gen_rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static uint32_t rng_range(struct gen_rng *r, uint32_t lo, uint32_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

static bool rng_pct(struct gen_rng *r, uint32_t pct)
{
	return rng_below(r, 100) < pct;
}

static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	return x ^ (x >> 16);
}

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

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
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

/* ---- payloads ----------------------------------------------------------------------------- */

/* Fills the text block once; text payloads are then one memcpy from a random offset. */
static void text_build(struct gen *g)
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
	size_t want = GEN_TEXT_SPAN + g->o.size_max, used = 0;
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

static void fill_plain(struct gen *g, uint8_t *p, size_t len)
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
	fill_plain(g, p + hl, len - (size_t)hl);
	return true;
}

static bool http_request(struct gen *g, const struct gen_flow *f, uint8_t *p, size_t len)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
	                  "GET /catalog/item/%u HTTP/1.1\r\nHost: s%u.example.com\r\n"
	                  "User-Agent: flowscope-gen/1.0\r\nAccept: */*\r\nX-Pad: ",
	                  rng_below(&g->rng, 100000), f->end[S2C].ip[f->v6 ? 15 : 3]);

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

/* A DNS query (resp false) or its answer; returns the message length (at most 67 bytes). */
static size_t dns_message(const struct gen_flow *f, uint8_t *p, bool resp)
{
	uint16_t qtype = f->v6 ? 28 : 1; /* AAAA for IPv6 clients, A otherwise */
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
	memcpy(p + n, f->end[S2C].ip, qtype == 1 ? 4 : 16);
	return n + (qtype == 1 ? 4 : 16);
}

/* NTPv4 client request (mode 3) or server reply (mode 4), 48 bytes. */
static size_t ntp_message(const struct gen *g, uint8_t *p, bool resp)
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

/*
 * Writes the payload of a TCP segment of len bytes from side d and returns its final length
 * (DNS and SSH banners dictate their own).  first: the first segment of its burst.
 */
static size_t tcp_payload(struct gen *g, const struct gen_flow *f, int d, uint8_t *p, size_t len,
                          bool first)
{
	if (!g->structured) {
		fill_plain(g, p, len);
		return len;
	}
	switch (f->app) {
	case APP_DNS:
		len = dns_message(f, p + 2, d == S2C);
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
	fill_plain(g, p, len);
	return len;
}

/* ---- frames ------------------------------------------------------------------------------- */

static size_t l2_len(const struct gen_flow *f)
{
	return f->vlan ? 18 : 14;
}

static size_t l3_len(const struct gen_flow *f)
{
	return f->v6 ? 40 : 20;
}

static uint8_t *frame_l4(struct gen *g, const struct gen_flow *f)
{
	return g->frame + l2_len(f) + l3_len(f);
}

static void put_eth(uint8_t *p, const struct gen_flow *f, int d)
{
	memcpy(p, f->end[!d].mac, 6);
	memcpy(p + 6, f->end[d].mac, 6);
	if (f->vlan) {
		put16(p + 12, 0x8100);
		put16(p + 14, f->vlan); /* PCP 0, DEI 0 */
		p += 4;
	}
	put16(p + 12, f->v6 ? 0x86dd : 0x0800);
}

static void put_ip4(uint8_t *p, struct gen_flow *f, int d, uint8_t proto, size_t l4len)
{
	uint16_t c;

	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint32_t)(20 + l4len));
	put16(p + 4, f->ipid[d]++);
	put16(p + 6, proto == PROTO_TCP ? 0x4000 : 0); /* DF for TCP, as Linux does with PMTUD */
	p[8] = d == C2S ? 64 : 63; /* the server is one router away from the capture point */
	p[9] = proto;
	p[10] = p[11] = 0;
	memcpy(p + 12, f->end[d].ip, 4);
	memcpy(p + 16, f->end[!d].ip, 4);
	c = csum_fold(csum_add(0, p, 20));
	memcpy(p + 10, &c, 2);
}

static void put_ip6(uint8_t *p, const struct gen_flow *f, int d, uint8_t nh, size_t l4len)
{
	put32(p, 0x60000000u | f->label[d]);
	put16(p + 4, (uint32_t)l4len);
	p[6] = nh;
	p[7] = 64;
	memcpy(p + 8, f->end[d].ip, 16);
	memcpy(p + 24, f->end[!d].ip, 16);
}

static void frame_write(struct gen *g, size_t len)
{
	struct pcap_pkthdr h;

	h.ts.tv_sec = (time_t)g->sec;
	h.ts.tv_usec = (suseconds_t)g->nsec; /* nanoseconds: the handle has nano precision */
	h.len = (bpf_u_int32)len;
	h.caplen = (bpf_u_int32)min_u32((uint32_t)len, g->o.snaplen);
	pcap_dump((u_char *)g->dump, &h, g->frame);
	g->wire_bytes += len;
	g->last_sec = g->sec;
	g->last_nsec = g->nsec;
}

/*
 * Completes the frame whose L4 header (checksum field zero) and payload are in place: writes
 * the IP and Ethernet headers, the L4 checksum at l4 + csum_off, and dumps the frame.
 */
static void frame_finish(struct gen *g, struct gen_flow *f, int d, uint8_t proto, size_t l4len,
                         size_t csum_off)
{
	uint8_t *l3 = g->frame + l2_len(f), *l4 = l3 + l3_len(f);
	uint8_t tail[8] = {0};
	uint64_t sum = 0;
	uint16_t c;

	put_eth(g->frame, f, d);
	if (f->v6) {
		put_ip6(l3, f, d, proto, l4len);
		put32(tail, (uint32_t)l4len); /* pseudo-header: addresses, length, next header */
		tail[7] = proto;
		sum = csum_add(csum_add(0, l3 + 8, 32), tail, 8);
	} else {
		put_ip4(l3, f, d, proto, l4len);
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
	frame_write(g, l2_len(f) + l3_len(f) + l4len);
}

/* Emits a TCP segment whose len payload bytes are already in place; advances the sequence. */
static void emit_tcp(struct gen *g, struct gen_flow *f, int d, uint8_t flags, size_t len)
{
	uint8_t *th = frame_l4(g, f);
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
		uint32_t mss = min_u32(max_u32(g->o.size_max, 536), 65495 - (f->v6 ? 20 : 0));

		memcpy(th + 20, opt, sizeof(opt));
		put16(th + 22, mss);
	}
	f->seq[d] += (uint32_t)len + ((flags & (TH_SYN | TH_FIN)) ? 1 : 0);
	if (flags & TH_ACK)
		f->unacked[d] = 0;
	if (len)
		f->unacked[!d]++;
	frame_finish(g, f, d, PROTO_TCP, hl + len, 16);
}

static void emit_udp(struct gen *g, struct gen_flow *f, int d, size_t len)
{
	uint8_t *uh = frame_l4(g, f);

	put16(uh, f->port[d]);
	put16(uh + 2, f->port[!d]);
	put16(uh + 4, (uint32_t)(8 + len));
	put16(uh + 6, 0);
	frame_finish(g, f, d, PROTO_UDP, 8 + len, 6);
}

static void emit_icmp(struct gen *g, struct gen_flow *f, int d, size_t len)
{
	uint8_t *ih = frame_l4(g, f);

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

/* ---- flows -------------------------------------------------------------------------------- */

/* Client i is 10.1.x.y / fd00:1::xxyy, server i is 10.2.0.z / fd00:2::z; one MAC per host. */
static void host_init(struct gen_host *h, uint8_t net, uint32_t i, bool v6)
{
	uint8_t x = net == 1 ? (uint8_t)(i / 250) : 0;
	uint8_t y = net == 1 ? (uint8_t)(i % 250 + 1) : (uint8_t)(i + 1);
	const uint8_t mac[6] = {0x02, 0x00, 10, net, x, y}; /* locally administered */

	memcpy(h->mac, mac, 6);
	memset(h->ip, 0, sizeof(h->ip));
	if (v6) {
		h->ip[0] = 0xfd;
		h->ip[3] = net;
		h->ip[14] = x;
		h->ip[15] = y;
	} else {
		h->ip[0] = 10;
		h->ip[1] = net;
		h->ip[2] = x;
		h->ip[3] = y;
	}
}

/*
 * Ephemeral ports that Wireshark 4.0 binds to a dissector.  Like ip_local_reserved_ports we
 * never hand them out: a plain datagram to an undissected server port would be decoded by the
 * client port's dissector (Elasticsearch on 54328, ...) and flagged malformed.
 */
static const uint16_t reserved_ports[] = {
    34962, 34980, 37008, 41170, 44321, 44322, 44818, 45564, 47000, 47808, 48049, 48898,
    49999, 54328, 56000, 56001, 56500, 56501, 57000, 57001, 57032, 57033, 57500, 57501,
    57532, 57533, 59000, 59001, 59032, 59033, 59500, 59501, 59532, 59533, 60001,
};

static bool port_reserved(uint32_t port)
{
	for (size_t i = 0; i < sizeof(reserved_ports) / sizeof(reserved_ports[0]); i++) {
		if (reserved_ports[i] == port)
			return true;
	}
	return false;
}

/*
 * Every flow takes the next client port slot k mod range; each time the range wraps the client
 * host shifts by one, so a 5-tuple repeats only after GEN_EPH_N * GEN_NCLIENTS (113 M) flows.
 */
static void flow_endpoints(struct gen *g, struct gen_flow *f)
{
	uint64_t k;
	uint32_t slot;

	do
		k = g->port_next++;
	while (port_reserved(GEN_EPH_LO + (uint32_t)(k % GEN_EPH_N)));
	slot = (uint32_t)(k % GEN_EPH_N);
	uint32_t client = (uint32_t)((mix32(slot ^ g->host_key) + k / GEN_EPH_N) % GEN_NCLIENTS);
	uint32_t a = rng_below(&g->rng, GEN_NSERVERS), b = rng_below(&g->rng, GEN_NSERVERS);

	host_init(&f->end[C2S], 1, client, f->v6);
	host_init(&f->end[S2C], 2, min_u32(a, b), f->v6); /* low servers are busier */
	f->port[C2S] = (uint16_t)(GEN_EPH_LO + slot);
	for (int d = 0; d < 2; d++) {
		uint64_t r = rng_next(&g->rng);

		f->ipid[d] = (uint16_t)r;
		f->seq[d] = (uint32_t)(r >> 16);
		f->label[d] = (uint32_t)(r >> 44) | 1; /* 20 bits, never 0 */
	}
}

/*
 * Server ports and what they carry, with a weight in percent per protocol: [0] when payloads
 * follow the protocol (structured), [1] otherwise.  Unstructured bytes avoid DNS and NTP, whose
 * dissectors would call them malformed, and use UDP ports nothing dissects.  (Not 4789: VXLAN
 * would decode the bytes as an inner frame.)
 */
struct gen_service {
	uint8_t proto;
	uint8_t app;
	uint16_t port;
	uint8_t weight[2];
};

static const struct gen_service services[] = {
    {PROTO_TCP, APP_TLS, 443, {40, 40}},   {PROTO_TCP, APP_HTTP, 80, {22, 25}},
    {PROTO_TCP, APP_HTTP, 8080, {8, 10}},  {PROTO_TCP, APP_SSH, 22, {12, 12}},
    {PROTO_TCP, APP_SMTP, 25, {10, 13}},   {PROTO_TCP, APP_DNS, 53, {8, 0}},
    {PROTO_UDP, APP_DNS, 53, {60, 0}},     {PROTO_UDP, APP_NTP, 123, {15, 0}},
    {PROTO_UDP, APP_DNS, 5353, {10, 0}},   {PROTO_UDP, APP_DATA, 9000, {15, 40}},
    {PROTO_UDP, APP_DATA, 27015, {0, 30}}, {PROTO_UDP, APP_DATA, 40000, {0, 30}},
};

static const struct gen_service *pick_service(struct gen *g, uint8_t proto)
{
	uint32_t r = rng_below(&g->rng, 100);
	int mode = g->structured ? 0 : 1;
	size_t i = 0, last = 0;

	for (; i < sizeof(services) / sizeof(services[0]); i++) {
		if (services[i].proto != proto || !services[i].weight[mode])
			continue;
		if (r < services[i].weight[mode])
			return &services[i];
		r -= services[i].weight[mode];
		last = i;
	}
	return &services[last]; /* not reached: the weights of each column add up to 100 */
}

/* Segments in a bulk burst: mostly a few, sometimes dozens, rarely a thousand (long tail). */
static uint32_t bulk_count(struct gen *g)
{
	uint32_t r = rng_below(&g->rng, 100);

	if (r < 70)
		return rng_range(&g->rng, 1, 4);
	if (r < 95)
		return rng_range(&g->rng, 5, 60);
	return rng_range(&g->rng, 61, 1000);
}

/* Length of a request-like segment: small, but within --size, and not empty if it can help it
 * (an empty "data" segment would look like a duplicate ACK). */
static uint32_t small_len(struct gen *g, const struct gen_flow *f)
{
	uint32_t lo = max_u32(g->o.size_min, min_u32(g->o.size_max, 1));
	uint32_t hi = max_u32(lo, min_u32(g->o.size_max, 600));

	if (f->app == APP_HTTP && g->structured)
		lo = min_u32(max_u32(lo, GEN_HTTP_HEAD), hi); /* room for a request head */
	if (f->app == APP_SSH)
		hi = max_u32(lo, min_u32(hi, 200)); /* keystrokes and echoes */
	return rng_range(&g->rng, lo, hi);
}

/* Sets up the bursts of the next request/response round. */
static void tcp_round(struct gen *g, struct gen_flow *f)
{
	bool upload = f->app == APP_SMTP; /* mail goes up, everything else comes down */

	f->phase = P_CBURST;
	f->bulk = upload ? C2S : S2C;
	f->segs = upload ? bulk_count(g) : 1;
	f->s_segs = upload ? 1 : bulk_count(g);
	if (f->app == APP_DNS || (f->app == APP_SSH && f->rounds)) {
		f->bulk = 2; /* one query, one answer; or keystrokes and their echo */
		f->segs = 1;
		f->s_segs = f->app == APP_DNS ? 1 : rng_range(&g->rng, 1, 2);
	}
	f->last_len =
	    rng_range(&g->rng, max_u32(g->o.size_min, min_u32(g->o.size_max, 1)), g->o.size_max);
	if (f->app == APP_HTTP && g->structured && f->s_segs == 1)
		f->last_len = max_u32(f->last_len, GEN_HTTP_HEAD); /* the response head must fit */
	f->txn_id = (uint16_t)rng_next(&g->rng); /* DNS over TCP: the query of this round */
	f->txn_seq = (uint16_t)rng_next(&g->rng);
}

static void flow_service(struct gen_flow *f, const struct gen_service *s)
{
	f->proto = s->proto;
	f->app = s->app;
	f->port[S2C] = s->port;
}

static void tcp_start(struct gen *g, struct gen_flow *f)
{
	flow_service(f, pick_service(g, PROTO_TCP));
	f->phase = rng_pct(&g->rng, 2) ? P_REFUSED : P_SYN;
	if (f->phase == P_REFUSED)
		f->segs = 1; /* the SYN still goes out first */
	f->closer = rng_pct(&g->rng, 70) ? C2S : S2C;
	switch (f->app) {
	case APP_SSH:
		f->rounds = rng_range(&g->rng, 3, 60);
		break;
	case APP_DNS:
	case APP_SMTP:
		f->rounds = rng_range(&g->rng, 0, 2);
		break;
	default:
		f->rounds = rng_pct(&g->rng, 50) ? 0 : rng_range(&g->rng, 1, 6);
		break;
	}
	f->rst = rng_pct(&g->rng, 10);
}

static void udp_start(struct gen *g, struct gen_flow *f)
{
	flow_service(f, pick_service(g, PROTO_UDP));
	f->phase = P_REQ;
	if (f->app == APP_DATA) {
		f->rounds = rng_range(&g->rng, 2, 40); /* packets, either direction */
		return;
	}
	f->rounds = f->app == APP_NTP ? 1 : (rng_pct(&g->rng, 80) ? 1 : rng_range(&g->rng, 2, 3));
	f->txn_id = (uint16_t)rng_next(&g->rng);
	f->txn_seq = (uint16_t)rng_next(&g->rng);
}

static void icmp_start(struct gen *g, struct gen_flow *f)
{
	f->proto = PROTO_ICMP;
	f->app = APP_PING;
	f->phase = P_REQ;
	f->rounds = rng_range(&g->rng, 1, 10);
	f->txn_id = f->port[C2S]; /* unique per flow, like the port it stands in for */
	f->txn_seq = 1;
	if (g->o.size_min <= 56 && 56 <= g->o.size_max)
		f->ping_len = 56; /* ping(8)'s default */
	else
		f->ping_len = rng_range(&g->rng, g->o.size_min, g->o.size_max);
}

static void flow_start(struct gen *g, struct gen_flow *f)
{
	static const uint16_t vlans[] = {100, 200, 300};
	struct gen_rng *r = &g->rng;
	uint32_t kind;

	memset(f, 0, sizeof(*f));
	f->active = true;
	f->v6 = rng_pct(r, g->o.ipv6_pct);
	f->vlan = rng_pct(r, g->o.vlan_pct) ? vlans[rng_below(r, 3)] : 0;
	flow_endpoints(g, f);
	g->flows_started++;
	kind = rng_below(r, 100);
	if (kind < g->o.udp_pct)
		udp_start(g, f);
	else if (kind < g->o.udp_pct + g->o.icmp_pct)
		icmp_start(g, f);
	else
		tcp_start(g, f);
}

/* One data segment (or pure ACK when the receiver owes one) in a burst from side d. */
static void tcp_burst_step(struct gen *g, struct gen_flow *f, int d)
{
	uint8_t *pl = frame_l4(g, f) + 20;
	/* Heads (HTTP) go into requests and the first segment of a response. */
	bool first = d == C2S ? f->bulk != C2S : f->segs == f->s_segs;
	size_t len;

	/* Delayed ACK: a receiver acknowledges every second segment. */
	if (f->unacked[!d] >= 2) {
		emit_tcp(g, f, !d, TH_ACK, 0);
		return;
	}
	if (d == f->bulk)
		len = f->segs > 1 ? g->o.size_max : f->last_len;
	else
		len = small_len(g, f);
	len = tcp_payload(g, f, d, pl, len, first);
	if (len)
		f->spoke |= (uint8_t)(1u << d);
	emit_tcp(g, f, d, len ? TH_ACK | TH_PSH : TH_ACK, len);
	if (--f->segs)
		return;
	if (d == C2S) {
		f->phase = P_SBURST;
		f->segs = f->s_segs;
	} else {
		f->phase = f->unacked[C2S] ? P_ROUNDACK : P_DONE; /* P_DONE: round over */
	}
}

static void tcp_round_over(struct gen *g, struct gen_flow *f)
{
	if (f->rounds) {
		f->rounds--;
		tcp_round(g, f);
	} else {
		f->phase = f->rst ? P_RST : P_FIN1;
	}
}

/* Emits the next packet of a TCP flow. */
static void tcp_step(struct gen *g, struct gen_flow *f)
{
	int c = f->closer;

	switch (f->phase) {
	case P_SYN:
		emit_tcp(g, f, C2S, TH_SYN, 0);
		f->phase = P_SYNACK;
		return;
	case P_REFUSED:
		if (f->segs) {
			emit_tcp(g, f, C2S, TH_SYN, 0);
			f->segs = 0;
			return;
		}
		f->seq[S2C] = 0; /* RFC 9293: a RST answering a SYN carries seq 0 */
		emit_tcp(g, f, S2C, TH_RST | TH_ACK, 0);
		f->active = false;
		return;
	case P_SYNACK:
		emit_tcp(g, f, S2C, TH_SYN | TH_ACK, 0);
		f->phase = P_ACK;
		return;
	case P_ACK:
		emit_tcp(g, f, C2S, TH_ACK, 0);
		tcp_round(g, f);
		return;
	case P_CBURST:
	case P_SBURST:
		tcp_burst_step(g, f, f->phase == P_CBURST ? C2S : S2C);
		if (f->phase == P_DONE)
			tcp_round_over(g, f);
		return;
	case P_ROUNDACK:
		emit_tcp(g, f, C2S, TH_ACK, 0);
		tcp_round_over(g, f);
		return;
	default:
		break;
	}
	switch (f->phase) {
	case P_FIN1:
		emit_tcp(g, f, c, TH_FIN | TH_ACK, 0);
		f->phase = P_FIN2;
		return;
	case P_FIN2:
		emit_tcp(g, f, !c, TH_FIN | TH_ACK, 0);
		f->phase = P_LASTACK;
		return;
	case P_LASTACK:
		emit_tcp(g, f, c, TH_ACK, 0);
		break;
	default: /* P_RST */
		emit_tcp(g, f, c, TH_RST | TH_ACK, 0);
		break;
	}
	f->active = false;
}

/* Emits the next packet of a UDP flow: request/response pairs, or plain datagrams. */
static void udp_step(struct gen *g, struct gen_flow *f)
{
	uint8_t *pl = frame_l4(g, f) + 8;
	int d = f->phase == P_REQ ? C2S : S2C;
	size_t len;

	if (f->app == APP_DATA) {
		d = rng_pct(&g->rng, 60) ? C2S : S2C;
		len = rng_range(&g->rng, g->o.size_min, g->o.size_max);
		fill_plain(g, pl, len);
		/* Like most datagram protocols, a magic ("FS") and a sequence number first; they
		 * also keep heuristic dissectors (RTCP, Thrift) from claiming random bytes. */
		if (len >= 4 && g->o.payload != GEN_PAY_ZERO) {
			put16(pl, 0x4653);
			put16(pl + 2, f->txn_seq++);
		}
		emit_udp(g, f, d, len);
		f->active = --f->rounds > 0;
		return;
	}
	if (f->app == APP_NTP)
		len = ntp_message(g, pl, d == S2C);
	else
		len = dns_message(f, pl, d == S2C);
	emit_udp(g, f, d, len);
	if (d == C2S) {
		f->phase = P_RESP;
		return;
	}
	f->phase = P_REQ;
	f->txn_id = (uint16_t)rng_next(&g->rng); /* the next query of this client */
	f->txn_seq = (uint16_t)rng_next(&g->rng);
	f->active = --f->rounds > 0;
}

/* Emits the next packet of an echo flow; both directions carry the same payload. */
static void icmp_step(struct gen *g, struct gen_flow *f)
{
	static const char win_ping[] = "abcdefghijklmnopqrstuvwabcdefghi"; /* Windows' pattern */
	uint8_t *pl = frame_l4(g, f) + 8;
	int d = f->phase == P_REQ ? C2S : S2C;

	if (g->o.payload != GEN_PAY_TEXT) {
		fill_plain(g, pl, f->ping_len);
	} else {
		for (uint32_t i = 0; i < f->ping_len; i++)
			pl[i] = (uint8_t)win_ping[i % (sizeof(win_ping) - 1)];
	}
	emit_icmp(g, f, d, f->ping_len);
	if (d == C2S) {
		f->phase = P_RESP;
		return;
	}
	f->phase = P_REQ;
	f->txn_seq++;
	f->active = --f->rounds > 0;
}

/* ---- generation --------------------------------------------------------------------------- */

/* Advances the clock by a uniform gap in [0, 2 * mean]: mean rate as asked, never backwards. */
static void clock_advance(struct gen *g)
{
	double u = (double)(rng_next(&g->rng) >> 11) * 0x1p-53;
	uint64_t gap = (uint64_t)(u * 2.0 * g->mean_fp) + g->frac;

	g->frac = (uint32_t)(gap & 0xffff);
	gap = (gap >> 16) + g->nsec;
	g->sec += gap / 1000000000u;
	g->nsec = (uint32_t)(gap % 1000000000u);
}

static int gen_run(struct gen *g)
{
	for (uint64_t i = 0; i < g->o.packets; i++) {
		struct gen_flow *f = &g->flows[rng_below(&g->rng, g->o.flows)];

		if (!f->active)
			flow_start(g, f);
		if (f->proto == PROTO_TCP)
			tcp_step(g, f);
		else if (f->proto == PROTO_UDP)
			udp_step(g, f);
		else
			icmp_step(g, f);
		clock_advance(g);
		/* Checked per packet (a flag test): a full disk stops the run at once, and errno
		 * still holds the reason, since pcap_dump() reports nothing itself. */
		if (ferror(g->fp)) {
			g->write_errno = errno ? errno : EIO;
			return -1;
		}
	}
	return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("flowscope gen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return GEN_EXIT_USAGE;
}

/* A decimal in [lo, hi] from s up to stop, or to the end of s when stop is NULL. */
static bool parse_u64(const char *s, const char *stop, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false; /* strtoull would accept spaces and signs, and wrap "-1" */
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end != (stop ? stop : s + strlen(s)) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int opt_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char range[64];

	if (parse_u64(s, NULL, lo, hi, out))
		return 0;
	snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64, lo, hi);
	fprintf(stderr, "flowscope gen: %s '%s': expected an integer in %s\n", name, s, range);
	return GEN_EXIT_USAGE;
}

static int opt_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v = 0;
	int rc = opt_u64(name, s, lo, hi, &v);

	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* "MIN-MAX" or "N" (meaning N-N). */
static int opt_size(struct gen_opts *o, const char *s)
{
	const char *dash = strchr(s, '-');
	uint64_t lo, hi;

	if (!parse_u64(s, dash, 0, GEN_MAX_PAYLOAD, &lo) ||
	    !parse_u64(dash ? dash + 1 : s, NULL, 0, GEN_MAX_PAYLOAD, &hi) || lo > hi)
		return usage_error("--size '%s': expected MIN-MAX with 0 <= MIN <= MAX <= %u", s,
		                   GEN_MAX_PAYLOAD);
	o->size_min = (uint32_t)lo;
	o->size_max = (uint32_t)hi;
	return 0;
}

/* Epoch seconds with an optional fraction of up to 9 digits: "1795000000.25". */
static int opt_start(struct gen_opts *o, const char *s)
{
	const char *dot = strchr(s, '.');
	size_t nd = dot ? strlen(dot + 1) : 0; /* fraction digits */
	uint64_t sec, frac = 0;

	if (!parse_u64(s, dot, 0, UINT32_MAX, &sec) ||
	    (dot && (nd == 0 || nd > 9 || !parse_u64(dot + 1, NULL, 0, 999999999, &frac))))
		return usage_error("--start '%s': expected epoch seconds below 2^32 with at most "
		                   "9 fraction digits",
		                   s);
	for (; dot && nd < 9; nd++)
		frac *= 10; /* ".25" is 250000000 ns */
	o->start_sec = sec;
	o->start_nsec = (uint32_t)frac;
	return 0;
}

static int opt_rate(struct gen_opts *o, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.001 && v <= 1e12))
		return usage_error("--rate '%s': expected packets per second in 0.001..1e12", s);
	o->rate = v;
	return 0;
}

static int opt_payload(struct gen_opts *o, const char *s)
{
	if (!strcmp(s, "zero"))
		o->payload = GEN_PAY_ZERO;
	else if (!strcmp(s, "text"))
		o->payload = GEN_PAY_TEXT;
	else if (!strcmp(s, "random"))
		o->payload = GEN_PAY_RANDOM;
	else
		return usage_error("--payload '%s': expected zero, text or random", s);
	return 0;
}

enum {
	OPT_FLOWS = 256,
	OPT_PACKETS,
	OPT_SEED,
	OPT_START,
	OPT_RATE,
	OPT_IPV6,
	OPT_VLAN,
	OPT_UDP,
	OPT_ICMP,
	OPT_SIZE,
	OPT_SNAPLEN,
	OPT_PAYLOAD,
};

static const struct option gen_longopts[] = {
    {"write", required_argument, NULL, 'w'},
    {"flows", required_argument, NULL, OPT_FLOWS},
    {"packets", required_argument, NULL, OPT_PACKETS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"start", required_argument, NULL, OPT_START},
    {"rate", required_argument, NULL, OPT_RATE},
    {"ipv6", required_argument, NULL, OPT_IPV6},
    {"vlan", required_argument, NULL, OPT_VLAN},
    {"udp", required_argument, NULL, OPT_UDP},
    {"icmp", required_argument, NULL, OPT_ICMP},
    {"size", required_argument, NULL, OPT_SIZE},
    {"snaplen", required_argument, NULL, OPT_SNAPLEN},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs(
	    "usage: flowscope gen -w FILE|- [options]\n"
	    "Write deterministic synthetic traffic (Ethernet, nanosecond pcap).\n"
	    "  -w, --write FILE   output file, '-' for stdout (required)\n"
	    "  --flows N          concurrent flows (default 50)\n"
	    "  --packets N        total packets (default 10000)\n"
	    "  --seed N           PRNG seed (default 1); same options and seed, same bytes\n"
	    "  --start T          first timestamp, epoch seconds[.fraction] (default 1795000000)\n"
	    "  --rate PPS         mean packets per second of capture time (default 10000)\n"
	    "  --ipv6 PCT         percent of flows over IPv6 (default 25)\n"
	    "  --vlan PCT         percent of flows with an 802.1Q tag 100/200/300 (default 0)\n"
	    "  --udp PCT          percent of UDP flows (default 25)\n"
	    "  --icmp PCT         percent of ICMP echo flows (default 5); the rest is TCP\n"
	    "  --size MIN-MAX     payload bytes per packet (default 0-1400, at most 65495)\n"
	    "  --snaplen N        capture length limit (default 262144)\n"
	    "  --payload KIND     zero, text (HTTP-like, default) or random (incompressible)\n"
	    "  -h, --help         this help\n",
	    out);
}

static int opt_one(struct gen_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'w':
		o->out = arg;
		return 0;
	case OPT_FLOWS:
		return opt_u32("--flows", arg, 1, GEN_MAX_FLOWS, &o->flows);
	case OPT_PACKETS:
		return opt_u64("--packets", arg, 0, GEN_MAX_PACKETS, &o->packets);
	case OPT_SEED:
		return opt_u64("--seed", arg, 0, UINT64_MAX, &o->seed);
	case OPT_START:
		return opt_start(o, arg);
	case OPT_RATE:
		return opt_rate(o, arg);
	case OPT_IPV6:
		return opt_u32("--ipv6", arg, 0, 100, &o->ipv6_pct);
	case OPT_VLAN:
		return opt_u32("--vlan", arg, 0, 100, &o->vlan_pct);
	case OPT_UDP:
		return opt_u32("--udp", arg, 0, 100, &o->udp_pct);
	case OPT_ICMP:
		return opt_u32("--icmp", arg, 0, 100, &o->icmp_pct);
	case OPT_SIZE:
		return opt_size(o, arg);
	case OPT_SNAPLEN:
		return opt_u32("--snaplen", arg, 1, GEN_MAX_SNAPLEN, &o->snaplen);
	default: /* OPT_PAYLOAD */
		return opt_payload(o, arg);
	}
}

/* Names the option getopt_long just rejected, short or long. */
static int opt_reject(int c, char **argv)
{
	const char *word = argv[optind - 1];

	if (c == ':')
		return usage_error("option '%s' needs a value", word);
	if (optopt && optopt < 256 && strncmp(word, "--", 2))
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", word);
}

/* Returns -1 to go on, else the exit status (help, or a usage error already reported). */
static int opts_parse(struct gen_opts *o, int argc, char **argv)
{
	int c, rc;

	*o = (struct gen_opts){
	    .packets = 10000,
	    .seed = 1,
	    .start_sec = 1795000000,
	    .rate = 10000,
	    .flows = 50,
	    .snaplen = 262144,
	    .size_max = 1400,
	    .ipv6_pct = 25,
	    .udp_pct = 25,
	    .icmp_pct = 5,
	    .payload = GEN_PAY_TEXT,
	};
	optind = 0; /* glibc: full reinitialisation, gen_main may not be the first getopt user */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:h", gen_longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return GEN_EXIT_OK;
		}
		if (c == '?' || c == ':')
			return opt_reject(c, argv);
		rc = opt_one(o, c, optarg);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->out)
		return usage_error("missing -w FILE (use -w - for stdout)");
	if (o->udp_pct + o->icmp_pct > 100)
		return usage_error("--udp plus --icmp exceed 100 percent");
	return -1;
}

/* ---- output ------------------------------------------------------------------------------- */

static const char *out_name(const struct gen *g)
{
	return strcmp(g->o.out, "-") ? g->o.out : "stdout";
}

static int out_open(struct gen *g)
{
	const char *why;

	g->pcap = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, (int)g->o.snaplen,
	                                               PCAP_TSTAMP_PRECISION_NANO);
	if (!g->pcap) {
		fprintf(stderr, "flowscope gen: cannot create a pcap handle\n");
		return GEN_EXIT_IO;
	}
	if (strcmp(g->o.out, "-")) {
		g->fp = fopen(g->o.out, "wb");
	} else {
		if (isatty(STDOUT_FILENO))
			return usage_error("refusing to write pcap to a terminal");
		/* A duplicate, so closing the dump leaves the process' stdout open. */
		int fd = dup(STDOUT_FILENO);

		g->fp = fd < 0 ? NULL : fdopen(fd, "wb");
		if (!g->fp && fd >= 0)
			close(fd);
	}
	if (!g->fp) {
		fprintf(stderr, "flowscope gen: cannot write %s: %s\n", out_name(g),
		        strerror(errno));
		return GEN_EXIT_IO;
	}
	setvbuf(g->fp, NULL, _IOFBF, GEN_OUT_BUFFER);
	g->dump = pcap_dump_fopen(g->pcap, g->fp);
	if (!g->dump) {
		why = pcap_geterr(g->pcap);
		fprintf(stderr, "flowscope gen: cannot write %s: %s\n", out_name(g), why);
		fclose(g->fp);
		g->fp = NULL;
		return GEN_EXIT_IO;
	}
	return 0;
}

/* Flushes and closes; a write that failed at any point (full disk) is an error here. */
static int out_close(struct gen *g, int rc)
{
	if (g->dump) {
		errno = 0;
		if ((pcap_dump_flush(g->dump) || ferror(g->fp)) && !g->write_errno)
			g->write_errno = errno ? errno : EIO;
		pcap_dump_close(g->dump); /* closes g->fp */
		if (g->write_errno && rc == 0) {
			fprintf(stderr, "flowscope gen: cannot write %s: %s\n", out_name(g),
			        strerror(g->write_errno));
			rc = GEN_EXIT_IO;
		}
	}
	if (g->pcap)
		pcap_close(g->pcap);
	return rc;
}

static void print_summary(const struct gen *g)
{
	char when[32], frac[16] = "";
	struct tm tm;
	time_t t = (time_t)g->o.start_sec;
	double span = 0;

	if (g->o.packets)
		span = (double)(g->last_sec - g->o.start_sec) +
		       ((double)g->last_nsec - (double)g->o.start_nsec) / 1e9;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (g->o.start_nsec) {
		size_t n = (size_t)snprintf(frac, sizeof(frac), ".%09u", g->o.start_nsec);

		while (frac[n - 1] == '0')
			frac[--n] = '\0';
	}
	fprintf(stderr,
	        "gen: wrote %" PRIu64 " packets (%" PRIu64 " bytes) in %" PRIu64
	        " flows to %s, %s%sZ .. +%.3fs\n",
	        g->o.packets, g->wire_bytes, g->flows_started, out_name(g), when, frac, span);
}

/* Everything that can be decided before the first packet: buffers, seeds, clock limits. */
static int gen_prepare(struct gen *g)
{
	double span_s;

	g->structured = g->o.payload != GEN_PAY_ZERO && g->o.size_min <= GEN_STRUCT_MIN &&
	                g->o.size_max >= GEN_STRUCT_MAX;
	g->mean_fp = 1e9 / g->o.rate * 65536.0;
	/* The pcap record keeps 32-bit seconds: refuse a run whose clock would pass them. */
	span_s = (double)g->o.packets * 2.0 / g->o.rate;
	if ((double)g->o.start_sec + span_s + 1.0 > (double)UINT32_MAX) {
		fprintf(stderr, "flowscope gen: --start plus --packets/--rate pass the pcap time "
		                "limit (2106-02-07)\n");
		return GEN_EXIT_USAGE;
	}
	g->rng.s = g->o.seed;
	g->host_key = (uint32_t)rng_next(&g->rng);
	g->port_next = rng_below(&g->rng, GEN_EPH_N);
	g->sec = g->o.start_sec;
	g->nsec = g->o.start_nsec;
	g->flows = calloc(g->o.flows, sizeof(*g->flows));
	g->frame = calloc(1, GEN_FRAME_ROOM);
	if (g->o.payload == GEN_PAY_TEXT)
		g->text = malloc(GEN_TEXT_SPAN + g->o.size_max);
	if (!g->flows || !g->frame || (g->o.payload == GEN_PAY_TEXT && !g->text)) {
		fprintf(stderr, "flowscope gen: out of memory for %u flows\n", g->o.flows);
		return GEN_EXIT_IO;
	}
	if (g->text)
		text_build(g);
	return 0;
}

int gen_main(int argc, char **argv)
{
	struct gen g;
	int rc;

	memset(&g, 0, sizeof(g));
	rc = opts_parse(&g.o, argc, argv);
	if (rc >= 0)
		return rc;
	rc = gen_prepare(&g);
	if (rc == 0)
		rc = out_open(&g);
	if (rc == 0)
		(void)gen_run(&g); /* a write error is in write_errno; out_close reports it */
	rc = out_close(&g, rc);
	if (rc == 0)
		print_summary(&g);
	free(g.flows);
	free(g.frame);
	free(g.text);
	return rc;
}
