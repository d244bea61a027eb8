/*
 * flowtrack: packet parsing, flow keys and per-analyzer flow tables.
 *
 * Purpose
 *   Turns the raw bytes of one captured packet into a parsed view
 *   (struct ft_packet: offsets and values read out of the packet, never a
 *   copy of it) and a flow key; keeps per-flow state in flow tables owned by
 *   one analyzer thread each.
 *
 * Lifecycle
 *   Parsing is stateless: ft_parse() fills a caller-owned struct ft_packet.
 *   Flow tables: ft_table_create() -> ft_table_lookup()... -> ft_table_destroy().
 *
 * Threading
 *   ft_parse() and the key functions are pure and thread-safe.  A flow table
 *   belongs to one thread; it takes no lock.  Flows are partitioned between
 *   analyzers by the symmetric flow hash, so no flow is in two tables.
 *
 * Safety
 *   The parser never reads outside [data, data + caplen).  A header cut by
 *   the capture length stops parsing at the last whole layer and is flagged
 *   FT_PKT_TRUNCATED; an inconsistent header (wrong IP version, IHL < 5, ...)
 *   is flagged FT_PKT_MALFORMED.  Neither is an error.
 *
 * Errors
 *   int returns: 0 on success, negative errno, or FT_E_* codes (-10200..-10299);
 *   ft_strerror() names both kinds.
 */
#ifndef FLOWSCOPE_FLOWTRACK_H
#define FLOWSCOPE_FLOWTRACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------- */

#define FT_E_BASE (-10200)
#define FT_E_LINKTYPE (FT_E_BASE - 1) /* link type the parser does not know */
#define FT_E_FULL (FT_E_BASE - 2)     /* flow table full and eviction disabled */
#define FT_E_LAST (FT_E_BASE - 99)

/* Returns a static message for an FT_E_* code or a negative errno. */
const char *ft_strerror(int err);

/* ---- parsed packet --------------------------------------------------------- */

#define FT_MAX_VLAN 4 /* VLAN tags kept (outer first); deeper tags are parsed past */
#define FT_MAX_NXT 8  /* IPv4 protocol / IPv6 next-header values kept */

/* ft_packet.flags */
#define FT_PKT_IP 0x0001u         /* src/dst are IP (or ARP protocol) addresses */
#define FT_PKT_ARP 0x0002u        /* ARP/RARP: src/dst are sender/target IPv4 */
#define FT_PKT_L4 0x0004u         /* sport/dport were read from a TCP/UDP/SCTP header */
#define FT_PKT_FRAG 0x0008u       /* IPv4 MF/offset or IPv6 fragment header present */
#define FT_PKT_FRAG_LATER 0x0010u /* non-first fragment: no L4 header in this packet */
#define FT_PKT_TRUNCATED 0x0020u  /* the capture length cut a header */
#define FT_PKT_MALFORMED 0x0040u  /* a header is inconsistent; see file comment */
#define FT_PKT_MPLS 0x0080u       /* one or more MPLS labels were skipped */

/*
 * The parsed view of one packet.  Addresses are in network byte order, IPv4
 * as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) so one 16-byte form serves
 * both families; ports and other numbers are in host byte order.
 */
struct ft_packet {
	uint32_t flags;     /* FT_PKT_* */
	uint16_t ethertype; /* innermost ethertype (0x0800, 0x86dd, 0x0806, ...), 0 if none */
	uint16_t l3_off;    /* offset of the IP (or ARP) header; valid if ethertype != 0 */
	uint16_t l4_off;    /* offset of the L4 header; valid if FT_PKT_L4 or proto set */
	uint8_t family;     /* 4, 6, or 0 (not IP) */
	uint8_t proto;      /* final transport protocol (IPPROTO_*), 0 if none */
	uint8_t ttl;        /* IPv4 TTL or IPv6 hop limit */
	uint8_t tcp_flags;  /* TCP flags byte (FIN=0x01 ... CWR=0x80) if TCP */
	uint8_t icmp_type;  /* ICMP / ICMPv6 type and code if proto is ICMP(v6) */
	uint8_t icmp_code;
	uint8_t n_vlan;             /* VLAN tags seen (may exceed FT_MAX_VLAN) */
	uint8_t n_nxt;              /* entries in nxt[] */
	uint16_t vlan[FT_MAX_VLAN]; /* VLAN ids (12 bits), outer first */
	uint8_t nxt[FT_MAX_NXT];    /* IPv4 protocol, or every IPv6 next-header value in order */
	uint16_t sport, dport;
	uint8_t src[16], dst[16];
};

/*
 * Link types: the LINKTYPE_ values pcap files store (tcpdump.org/linktypes),
 * which is what flowscope records and archives carry.  libpcap's DLT_ values
 * are the same except for a few, e.g. raw IP: LINKTYPE_RAW is 101, DLT_RAW is
 * 12 (14 on OpenBSD); ft_parse() accepts those old raw values too.
 * ft_linktype_supported() says whether ft_parse() knows one.
 */
#define FT_DLT_NULL 0         /* BSD loopback, host-order AF_ word */
#define FT_DLT_EN10MB 1       /* Ethernet */
#define FT_DLT_RAW 101        /* raw IP, the version nibble decides */
#define FT_DLT_RAW_DLT12 12   /* raw IP under DLT_RAW's value */
#define FT_DLT_RAW_DLT14 14   /* raw IP under OpenBSD's DLT_RAW value */
#define FT_DLT_LOOP 108       /* OpenBSD loopback, network-order AF_ word */
#define FT_DLT_LINUX_SLL 113  /* Linux cooked v1 */
#define FT_DLT_LINUX_SLL2 276 /* Linux cooked v2 */
#define FT_DLT_IPV4 228       /* raw IPv4 */
#define FT_DLT_IPV6 229       /* raw IPv6 */

/* Non-zero if ft_parse() understands link type `linktype`. */
int ft_linktype_supported(int linktype);

/*
 * Parses the packet `data` of `caplen` captured bytes, link type `linktype`,
 * into *out (fully overwritten).  Reads at most caplen bytes.
 *
 * Returns 0 (whatever the packet holds; see flags), or FT_E_LINKTYPE.
 * Thread-safe; allocates nothing.
 */
int ft_parse(int linktype, const uint8_t *data, uint32_t caplen, struct ft_packet *out);

/* ---- flow keys ------------------------------------------------------------- */

/*
 * Bidirectional IP 5-tuple, canonical: the (address, port) endpoint that
 * compares lower (memcmp of the address, then the port) is `a`, so both
 * directions of a flow give the same key; equal addresses are ordered by port,
 * so the order is deterministic for every packet.  IPv4 addresses are
 * IPv4-mapped.  Ports are 0 for protocols without ports and for non-first
 * fragments (those are attributed to the flow's 3-tuple: addresses and
 * protocol, ports 0).  `vlan` is the outer VLAN id when the caller asked for
 * VLAN-aware keys, else 0.  The layout is fixed (40 bytes, no padding holes)
 * so keys can be hashed and compared as bytes; `pad` is always 0.
 */
struct ft_flow_key {
	uint8_t a[16];
	uint8_t b[16];
	uint16_t port_a; /* host byte order */
	uint16_t port_b;
	uint8_t proto;
	uint8_t pad;
	uint16_t vlan;
};

#define FT_KEY_VLAN 0x1u /* ft_flow_key_from_packet(): include the outer VLAN id */

/*
 * Fills *key from a parsed packet.  Sets *dir (if not NULL) to 0 when the
 * packet's source is endpoint a, 1 when it is b.
 * Returns 0, or -ENOENT when the packet has no IP addresses (not IP, or ARP).
 */
int ft_flow_key_from_packet(const struct ft_packet *pkt, unsigned flags, struct ft_flow_key *key,
                            int *dir);

/* 64-bit hash of a key; equal for both directions because keys are canonical. */
uint64_t ft_flow_key_hash(const struct ft_flow_key *key);

/* Non-zero if the address (16 bytes) is IPv4-mapped. */
int ft_addr_is_v4(const uint8_t addr[16]);

/*
 * Formats an address (IPv4-mapped shown as dotted quad) into buf.
 * Returns buf.  buflen should be at least FT_ADDRSTRLEN.
 */
#define FT_ADDRSTRLEN 46
char *ft_addr_format(const uint8_t addr[16], char *buf, size_t buflen);

/*
 * Formats a key as "proto a:port <-> b:port" (IPv6 in brackets).
 * Returns buf.  buflen should be at least FT_KEYSTRLEN.
 */
#define FT_KEYSTRLEN 128
char *ft_flow_key_format(const struct ft_flow_key *key, char *buf, size_t buflen);

/* ---- flow table ------------------------------------------------------------ */

/*
 * A flow table: open addressing with linear probing over a power-of-two
 * array, bounded by max_flows.  When full, inserting evicts the flow least
 * recently seen among a small probe window and counts it.  One thread only.
 */
struct ft_table;

struct ft_flow {
	struct ft_flow_key key;
	uint64_t first_ns;   /* timestamp of the first packet */
	uint64_t last_ns;    /* timestamp of the last packet */
	uint64_t packets[2]; /* per direction: [0] a->b, [1] b->a */
	uint64_t bytes[2];   /* wire bytes per direction */
	uint8_t tcp_flags[2];
	uint8_t state[]; /* module state, state_size bytes */
};

struct ft_table_stats {
	uint64_t flows;    /* flows in the table now */
	uint64_t inserted; /* flowtrack.table.inserted */
	uint64_t evicted;  /* flowtrack.table.evicted: removed to make room */
	uint64_t expired;  /* flowtrack.table.expired: removed by ft_table_remove() */
};

/*
 * Creates a table for at most max_flows flows, each with state_size bytes of
 * module state initialised from default_state (zeros if NULL).
 * Returns 0 and *out, -EINVAL, or -ENOMEM.
 */
int ft_table_create(size_t max_flows, size_t state_size, const void *default_state,
                    struct ft_table **out);
void ft_table_destroy(struct ft_table *t);

/*
 * Finds the flow for key (hash h = ft_flow_key_hash(key)), inserting it with
 * the default state when absent (*is_new set to 1).  Never fails: when the
 * table is full the least recently seen flow in the probe window is evicted.
 * The returned pointer is valid until the next insert or remove.
 */
struct ft_flow *ft_table_lookup(struct ft_table *t, const struct ft_flow_key *key, uint64_t h,
                                int *is_new);

/* Removes every flow (not counted as expired or evicted). */
void ft_table_clear(struct ft_table *t);

/* Removes a flow returned by lookup or iteration; counted as expired. */
void ft_table_remove(struct ft_table *t, struct ft_flow *f);

/*
 * Calls fn(flow, arg) for every flow.  fn may call ft_table_remove() on the
 * flow it is given (and only on that one).
 */
void ft_table_foreach(struct ft_table *t, void (*fn)(struct ft_flow *f, void *arg), void *arg);

void ft_table_stats(const struct ft_table *t, struct ft_table_stats *out);

#ifdef __cplusplus
}
#endif
#endif
