/*
 * gen.h - private to `flowscope gen`: the generator's state, shared by its three files.
 *
 *   gen.c          options, output, the run loop (with its cut and event drain), the summary;
 *   gen_flows.c    flows: endpoints, services, the TCP/UDP/ICMP state machines, scripted events
 *                  and the byte budget that keeps ordinary flows below --event big;
 *   gen_packets.c  bytes: payloads (protocol-shaped or filler), frames, checksums, pcap records.
 *
 * Lifecycle: gen_main() parses options into struct gen_opts, prepares struct gen (flow table,
 * frame buffer, text block), then repeatedly picks a slot, starts a flow there if it is idle
 * (gen_flow_start) and steps it (gen_flow_step), which emits exactly one frame.  Single
 * threaded; nothing here is shared with other threads.
 *
 * Determinism: every random choice comes from g->rng, a splitmix64 stream seeded by --seed and
 * consumed in an order fixed by the options.  Same options and seed => byte-identical output.
 */
#ifndef FLOWSCOPE_TOOLS_GEN_H
#define FLOWSCOPE_TOOLS_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <pcap/pcap.h>

#define GEN_MAX_PAYLOAD 65495u  /* 65535 - IPv4 20 - TCP 20: largest payload every flow can carry */
#define GEN_MAX_FLOWS 16000000u /* 64 bytes each: 10 M flows take 640 MB */
#define GEN_MAX_SNAPLEN 262144u
#define GEN_MAX_PACKETS \
	100000000000ull         /* 1e11: below the 4.4e11 unique client ports (gen_flows.c) */
#define GEN_MAX_EVENTS 1000000u /* per kind */
#define GEN_FRAME_ROOM (14 + 4 + 40 + 32 + GEN_MAX_PAYLOAD) /* eth, vlan, ipv6, tcp + opts */
#define GEN_TEXT_SPAN 65536u /* text payloads are copied from a random offset below this */
#define GEN_MIN_FRAME 60u    /* Ethernet minimum without the FCS; size presets pad up to it */
#define GEN_EPH_LO 32768u    /* client ports: Linux's ephemeral range 32768..60999 */
#define GEN_EPH_N (60999u - GEN_EPH_LO + 1u)

/* Protocol-shaped payloads need this room in the --size range (an HTTP head is ~130 bytes). */
#define GEN_STRUCT_MIN 32u
#define GEN_STRUCT_MAX 256u
#define GEN_HTTP_HEAD 160u /* smallest segment that starts an HTTP request or response */

enum { C2S = 0, S2C = 1 }; /* direction; also the index of the sending side in a flow */

enum { TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_PSH = 0x08, TH_ACK = 0x10 };
enum { PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ICMP6 = 58 };

enum gen_payload { GEN_PAY_ZERO, GEN_PAY_TEXT, GEN_PAY_RANDOM };

/* --size: a payload range, or a preset of frame/packet sizes for data-carrying packets. */
enum gen_sizes {
	GEN_SIZE_RANGE, /* MIN-MAX payload bytes */
	GEN_SIZE_64,    /* 64-byte frames on the wire: 60 captured, at least 1 payload byte */
	GEN_SIZE_IMIX,  /* 7:4:1 of the 64 class, 576- and 1500-byte IP packets */
	GEN_SIZE_1500,  /* 1500-byte IP packets */
};

enum gen_app { APP_DATA, APP_HTTP, APP_TLS, APP_SSH, APP_SMTP, APP_DNS, APP_NTP, APP_PING };

/* Scripted events (--event); a flow carries at most one. */
enum gen_event { GEN_EV_NONE, GEN_EV_TTL, GEN_EV_RST, GEN_EV_BIG, GEN_EV_KINDS };

enum gen_phase {
	P_SYN,      /* TCP: client SYN */
	P_SYNACK,   /* TCP: server SYN/ACK */
	P_ACK,      /* TCP: client ACK completing the handshake */
	P_CBURST,   /* TCP: client data segments of this round (request or upload) */
	P_SBURST,   /* TCP: server data segments of this round (response or download) */
	P_ROUNDACK, /* TCP: client acknowledges the end of the server burst */
	P_FIN1,     /* TCP: closer FIN/ACK */
	P_FIN2,     /* TCP: the other side FIN/ACK */
	P_LASTACK,  /* TCP: closer ACK */
	P_RST,      /* TCP: closer RST/ACK instead of the FIN exchange (--event rst) */
	P_REQ,      /* UDP/ICMP: request from the client */
	P_RESP,     /* UDP/ICMP: response from the server */
	P_DONE,
};

struct gen_opts {
	const char *out;
	const char *events_out; /* --events-out FILE, or NULL */
	uint64_t packets;       /* --packets; GEN_MAX_PACKETS when only --duration is given */
	uint64_t duration_ns;   /* --duration; 0: none */
	uint64_t seed;
	uint64_t start_sec;
	uint32_t start_nsec;
	double rate;
	uint32_t flows;
	uint32_t snaplen;
	uint32_t size_min, size_max; /* GEN_SIZE_RANGE only */
	enum gen_sizes sizes;
	uint32_t ipv6_pct, vlan_pct, udp_pct, icmp_pct;
	enum gen_payload payload;
	uint32_t events[GEN_EV_KINDS]; /* flows wanted per event kind */
	uint64_t big_bytes;            /* --event big: BYTES */
	bool packets_set;
};

struct gen_rng {
	uint64_t s;
};

/*
 * One flow: one cache line, so 10 M flows fit in 640 MB and a random slot pick costs one miss.
 * Hosts are indexes (gen_host_addr makes their addresses), IPv6 flow labels a hash of the
 * client endpoint.  Index [C2S] is the client side, [S2C] the server side.
 */
struct gen_flow {
	uint64_t bytes;     /* --event big measure, both directions: IP bytes of a big flow, */
	                    /* frame bytes (pcap wire length) of every other flow */
	uint32_t seq[2];    /* next TCP sequence number each side sends */
	uint32_t client;    /* client host index */
	uint32_t segs;      /* TCP: segments left in the current burst */
	uint32_t s_segs;    /* TCP: segments of the server burst of this round */
	uint16_t port[2];   /* client (ephemeral) and server port */
	uint16_t ipid[2];   /* next IPv4 identification each side sends */
	uint16_t last_len;  /* TCP: length of the final segment of a bulk burst */
	uint16_t rounds;    /* TCP: rounds left after this one; UDP/ICMP: exchanges left */
	uint16_t ping_len;  /* ICMP: echo payload length of this exchange */
	uint16_t txn_id;    /* DNS id, ICMP echo identifier */
	uint16_t txn_seq;   /* ICMP echo sequence, DNS name choice */
	uint8_t server;     /* server host index */
	uint8_t vlan;       /* 0: untagged, else VLAN 100 * vlan */
	uint8_t unacked[2]; /* data segments side i received and has not acknowledged */
	uint8_t proto;      /* PROTO_TCP, PROTO_UDP or PROTO_ICMP (ICMPv6 when v6) */
	uint8_t app;        /* enum gen_app */
	uint8_t phase;      /* enum gen_phase */
	uint8_t closer;     /* TCP: side that closes */
	uint8_t bulk;       /* TCP: side sending full-size segments this round; 2 = neither */
	uint8_t spoke;      /* TCP: bit d set once side d sent data (SSH banners come first) */
	uint8_t event;      /* enum gen_event */
	uint8_t ttl_side;   /* ttl-change: the side whose TTL changes */
	uint8_t ttl_at;     /* ttl-change: changes at the end of the round leaving this many */
	uint8_t ttl_new;    /* ttl-change: the TTL (hop limit) after the change */
	bool ttl_moved;     /* ttl-change: ttl_new is in force */
	bool v6;
	bool active;
	bool pad;
};

struct gen {
	struct gen_opts o;
	struct gen_rng rng;
	struct gen_flow *flows; /* o.flows slots */
	uint8_t *frame;         /* the frame being built; GEN_FRAME_ROOM bytes */
	char *text;             /* GEN_TEXT_SPAN + pay_max bytes of HTTP-like lines */
	uint32_t pay_max;       /* largest payload any packet carries */
	bool structured;        /* payloads follow the protocol of their port */
	uint32_t host_key;
	uint64_t port_next; /* client port slot of the next flow, counting wraps */
	uint64_t flows_started;
	uint64_t packets;    /* frames written */
	uint64_t wire_bytes; /* frame bytes written (before --snaplen) */
	uint64_t big_cap;    /* ordinary flows send at most this many IP bytes; UINT64_MAX */
	uint32_t ev_left[GEN_EV_KINDS]; /* events not yet given to a flow */
	uint32_t ev_left_all;
	uint32_t ev_flows;    /* flows that carry an event */
	uint32_t *ev_slots;   /* drain: slots of the evented flows still running */
	uint64_t cut_packets; /* frames written when --packets/--duration cut the capture */
	uint64_t end_ns;      /* --duration: no packet at or after this time (ns since epoch) */
	uint64_t sec;         /* timestamp of the next packet */
	uint32_t nsec;
	uint32_t frac;     /* 1/65536 ns, so rates above 1 Gpps still advance on average */
	double mean_fp;    /* mean gap between packets in 1/65536 ns */
	uint64_t last_sec; /* timestamp of the last packet written */
	uint32_t last_nsec;
	pcap_t *pcap;
	pcap_dumper_t *dump;
	FILE *fp;
	FILE *ev_fp; /* --events-out */
	int write_errno;
};

/* ---- PRNG (inline: it runs several times per packet) ---------------------------------------- */

/* splitmix64: tiny, fast, and every seed (0 included) gives a full-quality stream. */
static inline uint64_t rng_next(struct gen_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n): multiply-shift without rejection; the bias (< n / 2^32) is invisible here
 * and the stream stays branch-free and deterministic. */
static inline uint32_t rng_below(struct gen_rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static inline uint32_t rng_range(struct gen_rng *r, uint32_t lo, uint32_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

static inline bool rng_pct(struct gen_rng *r, uint32_t pct)
{
	return rng_below(r, 100) < pct;
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static inline uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

static inline size_t gen_l2_len(const struct gen_flow *f)
{
	return f->vlan ? 18 : 14;
}

static inline size_t gen_l3_len(const struct gen_flow *f)
{
	return f->v6 ? 40 : 20;
}

static inline uint8_t *gen_frame_l4(struct gen *g, const struct gen_flow *f)
{
	return g->frame + gen_l2_len(f) + gen_l3_len(f);
}

/* ---- gen_flows.c ------------------------------------------------------------------------------ */

/* Starts a fresh flow in f.  force_event: a TCP flow that takes one of the events left. */
void gen_flow_start(struct gen *g, struct gen_flow *f, bool force_event);

/* Emits the next packet of the active flow f; clears f->active after its last packet. */
void gen_flow_step(struct gen *g, struct gen_flow *f);

/* Address of host idx (client side when !server) into ip[16] (IPv4: first 4 bytes), mac[6]. */
void gen_host_addr(uint32_t idx, bool server, bool v6, uint8_t *ip, uint8_t *mac);

/* ---- gen_packets.c ---------------------------------------------------------------------------- */

/* Fills g->text, the block text payloads are copied from. */
void gen_text_build(struct gen *g);

/* Filler bytes of the --payload kind. */
void gen_fill_plain(struct gen *g, uint8_t *p, size_t len);

/* Payload bytes of the next data packet of f with an l4-byte L4 header: drawn from the --size
 * range or preset; gen_data_max is the largest it can return for f. */
uint32_t gen_data_len(struct gen *g, const struct gen_flow *f, uint32_t l4);
uint32_t gen_data_max(const struct gen *g, const struct gen_flow *f, uint32_t l4);

/* Protocol messages; each returns its length. */
size_t gen_dns_message(const struct gen_flow *f, uint8_t *p, bool resp); /* at most 67 */
size_t gen_ntp_message(const struct gen *g, uint8_t *p, bool resp);      /* 48 */

/* TCP payload of len bytes from side d at the payload position; returns the final length
 * (DNS and SSH banners dictate their own).  first: the first segment of its burst. */
size_t gen_tcp_payload(struct gen *g, const struct gen_flow *f, int d, uint8_t *p, size_t len,
                       bool first);

/* Emit one frame: the payload is already in place after the L4 header; these write the
 * headers and checksums, the pcap record, and count the flow's bytes. */
void gen_emit_tcp(struct gen *g, struct gen_flow *f, int d, uint8_t flags, size_t len);
void gen_emit_udp(struct gen *g, struct gen_flow *f, int d, size_t len);
void gen_emit_icmp(struct gen *g, struct gen_flow *f, int d, size_t len);

#endif
