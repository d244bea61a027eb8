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

/* libpcap's compiled filter (pcap/pcap.h), declared here so that this header
   builds under plain -std=c17: pcap/bpf.h needs BSD types such as u_int */
struct bpf_program;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------- */

#define FT_E_BASE (-10200)
#define FT_E_LINKTYPE (FT_E_BASE - 1) /* link type the parser does not know */
#define FT_E_FULL (FT_E_BASE - 2)     /* flow table full and eviction disabled */
#define FT_E_STOPPING (FT_E_BASE - 3) /* triggers: the analyzers are stopping */
#define FT_E_TIMEDOUT (FT_E_BASE - 4) /* triggers: an analyzer did not answer in time */
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
 * Set on every packet ft_parse() parsed (whatever it holds): a zeroed
 * struct ft_packet, as a QQ record's note is before an analyzer fills it,
 * has not been parsed (see ft_packet_view).
 */
#define FT_PKT_PARSED 0x0100u

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
	uint8_t family;     /* 4, 6, or 0 (not IP: ARP too, see FT_PKT_ARP) */
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

/*
 * The parsed view of a packet that an earlier stage may have parsed already:
 * `parsed` when it is one (FT_PKT_PARSED set: ft_parse() filled it from this
 * very packet), else ft_parse(linktype, data, caplen, buf) and buf (zeroed
 * when the link type is not supported, as ft_parse leaves it).  So a packet
 * on its way from the capture to the archive is parsed once.
 */
const struct ft_packet *ft_packet_view(const struct ft_packet *parsed, int linktype,
                                       const uint8_t *data, uint32_t caplen, struct ft_packet *buf);

/*
 * Compiles a libpcap filter expression for packets of `linktype` (LINKTYPE_
 * value) exactly as `tcpdump -r` would for a capture file of that link type
 * and snaplen.  Returns 0 (free prog with pcap_freecode), -EINVAL with
 * libpcap's message in err, or -ENOMEM.
 */
int ft_bpf_compile(int linktype, uint32_t snaplen, const char *expr, struct bpf_program *prog,
                   char *err, size_t errlen);

/* ---- flow keys ------------------------------------------------------------- */

/*
 * Bidirectional IP 5-tuple, canonical: the (address, port) endpoint that
 * compares lower (memcmp of the address, then the port) is `a`, so both
 * directions of a flow give the same key; equal addresses are ordered by port,
 * so the order is deterministic for every packet.  IPv4 addresses are
 * IPv4-mapped.  Ports are 0 for protocols without ports and for non-first
 * fragments (those are attributed to the flow's 3-tuple: addresses and
 * protocol, ports 0).  `vlan` and `vlan_inner` are the packet's first two
 * VLAN ids (outer first; 0 where the packet has fewer tags), so tenants that
 * only VLAN tags tell apart (802.1Q 42, QinQ 300/42, QinQ 300/43) are
 * separate flows; both are 0 in a key made with FT_KEY_NO_VLAN, and
 * `vlan_inner` is 0 with FT_KEY_OUTER_VLAN.  The layout is fixed (42 bytes,
 * no padding holes) so keys can be hashed and compared as bytes; `pad` is
 * always 0.
 */
struct ft_flow_key {
	uint8_t a[16];
	uint8_t b[16];
	uint16_t port_a; /* host byte order */
	uint16_t port_b;
	uint8_t proto;
	uint8_t pad;
	uint16_t vlan;       /* outer VLAN id */
	uint16_t vlan_inner; /* second VLAN id (QinQ) */
};

/*
 * Key flags (struct ft_module.key_flags, ft_flow_key_make).  0, the default,
 * is the VLAN-aware key: outer and inner VLAN id.
 */
#define FT_KEY_NO_VLAN 0x2u    /* VLAN-blind: no VLAN id in the key */
#define FT_KEY_OUTER_VLAN 0x4u /* the outer VLAN id only (format 2 archives' flow records) */
/*
 * Set by the loader, not by modules: the key is a Lua module's own type
 * (flowKeys), not a 5-tuple, so it selects packets only through the
 * module's filter; a dump rule by such a key is refused.
 */
#define FT_KEY_OWN 0x8u
/* ABI 1's opt-in to VLAN-aware keys, now the default: kept so its sources still build. */
#define FT_KEY_VLAN 0x0u

/* What makes packets one flow. */
enum ft_key_kind {
	FT_KEY_BIDIRECTIONAL = 0, /* canonical 5-tuple: both directions are one flow (default) */
	FT_KEY_UNIDIRECTIONAL,    /* 5-tuple as seen: a = source, b = destination */
	FT_KEY_IP_PAIR,           /* canonical address pair: ports and protocol 0 */
};

/*
 * Fills *key from a parsed packet (bidirectional 5-tuple; flags FT_KEY_*).
 * Sets *dir (if not NULL) to 0 when the packet's source is endpoint a, 1 when it is b.
 * Returns 0, or -ENOENT when the packet has no IP addresses (not IP, or ARP).
 */
int ft_flow_key_from_packet(const struct ft_packet *pkt, unsigned flags, struct ft_flow_key *key,
                            int *dir);

/* As ft_flow_key_from_packet(), for any kind of key (*dir is 0 for unidirectional keys). */
int ft_flow_key_make(const struct ft_packet *pkt, enum ft_key_kind kind, unsigned flags,
                     struct ft_flow_key *key, int *dir);

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

/* "tcp", "udp", "icmp", "icmp6", "sctp", else "protoN"; returns buf or a constant. */
const char *ft_proto_name(uint8_t proto, char *buf, size_t len);

/* TCP flags as letters "FSRPAUEC" (FIN first), "" for none; buf of FT_TCPFLAGSLEN; returns buf. */
#define FT_TCPFLAGSLEN 9
char *ft_tcp_flags_format(uint8_t flags, char *buf);

/*
 * Formats a key as "proto a:port <-> b:port" (IPv6 in brackets), followed
 * by " vlan OUTER" or " vlan OUTER/INNER" when the key has VLAN ids.
 * Returns buf.  buflen should be at least FT_KEYSTRLEN.
 */
#define FT_KEYSTRLEN 128
char *ft_flow_key_format(const struct ft_flow_key *key, char *buf, size_t buflen);

/*
 * A libpcap filter expression for the packets of a key's flow, both
 * directions, as tcpdump reads it: "vlan 300 and vlan 42 and tcp and host
 * 10.1.0.1 and host 10.1.0.2 and port 80 and port 5000".  VLAN ids are in
 * it when the key has them, and then a packet with other tags, or none, does
 * not match; a key without them matches untagged packets only.  Like
 * tcpdump's host/port primitives it also matches the mirrored port pairing
 * (a:port_b <-> b:port_a); a key with ports 0 gives addresses and protocol,
 * an address pair (protocol 0) the addresses.  Returns buf, or NULL when
 * buflen is too small; FT_KEYFILTERLEN is always enough.
 */
#define FT_KEYFILTERLEN 256
char *ft_flow_key_filter(const struct ft_flow_key *key, char *buf, size_t buflen);

/*
 * Parses a flow as people write it, the inverse of ft_flow_key_format():
 * "PROTO A:PORT B:PORT [vlan OUTER[/INNER]]" (IPv6 as [ADDR]:PORT; "<->"
 * between the endpoints allowed; PROTO tcp, udp, sctp, icmp, icmp6 or a
 * number; ports omitted for protocols without them, or ":0" as ft_flow_key_format()
 * writes them), in either direction, into
 * the canonical VLAN-aware bidirectional key.  Returns 0, or -EINVAL with a
 * reason in err.  Pure and thread-safe.
 */
int ft_flow_key_parse(const char *text, struct ft_flow_key *key, char *err, size_t errlen);

/* Puts a key's endpoints in canonical order (the lower address and port is `a`), as every
 * bidirectional key has them: for a key filled in by hand from a 5-tuple (an alert's).
 * Pure and thread-safe. */
void ft_flow_key_canonical(struct ft_flow_key *key);

/*
 * Community ID v1 (https://github.com/corelight/community-id-spec): the
 * flow's "1:" + base64(SHA-1) string that Zeek, Suricata, Arkime and
 * Wireshark print, the same for both directions.  `seed` is the spec's
 * seed, 0 unless the tools being matched were configured otherwise.  The
 * family comes from the addresses (IPv4-mapped: IPv4).  VLAN ids are not
 * part of it.  FT_COMMUNITY_ID_LEN holds "1:", 28 base64 characters and the NUL.
 * Pure and thread-safe.
 */
#define FT_COMMUNITY_ID_LEN 32

/*
 * The Community ID of a key's flow: TCP, UDP and SCTP with their ports
 * (ports 0, as a non-first fragment's key has them, are hashed as 0), other
 * protocols without ports.  Returns 0, or -ENOTSUP for ICMP and ICMPv6 keys:
 * a key joins every ICMP message between two hosts, the Community ID tells
 * their types apart (use ft_community_id_packet()).
 */
int ft_community_id(const struct ft_flow_key *key, uint16_t seed, char out[FT_COMMUNITY_ID_LEN]);

/*
 * The Community ID of a parsed packet's flow, ICMP and ICMPv6 included
 * (type and counterpart type, or type and code for the one-way types, as
 * the spec takes them from Zeek).  Returns 0, or -ENOENT when the packet has
 * no IP addresses (not IP, ARP) or is an ICMP packet without its header
 * (non-first fragment, truncated).
 */
int ft_community_id_packet(const struct ft_packet *pkt, uint16_t seed,
                           char out[FT_COMMUNITY_ID_LEN]);

/*
 * The request/reply counterpart of ICMP (proto 1) or ICMPv6 (58) type `type`
 * that the Community ID pairs it with (echo request/reply, ...), or -1 for a
 * one-way type (its code goes into the ID, and the direction).
 */
int ft_community_id_icmp_peer(uint8_t proto, uint8_t type);

/*
 * Non-zero if s has the form of a Community ID v1: "1:" and the base64 of
 * 20 bytes (27 characters of the alphabet and one '='), nothing else.
 */
int ft_community_id_valid(const char *s);

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
	uint8_t triggered;                           /* a module triggered on this flow */
	uint8_t state[] __attribute__((aligned(8))); /* module state, state_size bytes */
};

struct ft_table_stats {
	uint64_t flows;    /* flows in the table now */
	uint64_t inserted; /* flowtrack.analyzerN.flows (docs/counters.md) */
	uint64_t evicted;  /* flowtrack.analyzerN.evicted: removed to make room */
	uint64_t expired;  /* removed by ft_table_remove() (not reported) */
};

/*
 * Creates a table for at most max_flows flows, each with state_size bytes of
 * module state initialised from default_state (zeros if NULL).
 * Returns 0 and *out, -EINVAL, or -ENOMEM.
 */
int ft_table_create(size_t max_flows, size_t state_size, const void *default_state,
                    struct ft_table **out);
void ft_table_destroy(struct ft_table *t);

/* The bytes ft_table_create(max_flows, state_size, ...) allocates (its arrays, all faulted in
 * at creation): for checking that tables fit in memory before creating them. */
uint64_t ft_table_bytes(size_t max_flows, size_t state_size);

/*
 * Finds the flow for key (hash h = ft_flow_key_hash(key)), inserting it with
 * the default state when absent (*is_new set to 1).  Never fails: when the
 * table is full the least recently seen flow in the probe window is evicted.
 * The returned pointer is valid until the next insert or remove.
 */
struct ft_flow *ft_table_lookup(struct ft_table *t, const struct ft_flow_key *key, uint64_t h,
                                int *is_new);

/* The flow for key (hash h), or NULL: never inserts. */
struct ft_flow *ft_table_find(struct ft_table *t, const struct ft_flow_key *key, uint64_t h);

/*
 * Calls fn(flow, arg) for a flow just before the table evicts it to make room
 * (the flow is still intact; fn must not touch the table).
 */
void ft_table_set_evict_cb(struct ft_table *t, void (*fn)(struct ft_flow *f, void *arg), void *arg);

/* Removes every flow (not counted as expired or evicted). */
void ft_table_clear(struct ft_table *t);

/*
 * Burst lookups: prefetch the slot for hash h (stage 1), then, once that line
 * has likely arrived, the flow record it points to (stage 2), then look up.
 * Hints only: no effect on results.
 */
void ft_table_prefetch(const struct ft_table *t, uint64_t h);
void ft_table_prefetch_flow(const struct ft_table *t, uint64_t h);

/*
 * For a later stage of such prefetching: the flow in h's home slot if its
 * hash matches, else NULL.  A hint only: it may be another flow of the same
 * 32-bit hash, and a flow further along the probe sequence is not found.
 */
const struct ft_flow *ft_table_peek(const struct ft_table *t, uint64_t h);

/* Removes a flow returned by lookup or iteration; counted as expired. */
void ft_table_remove(struct ft_table *t, struct ft_flow *f);

/*
 * Calls fn(flow, arg) for every flow.  fn may call ft_table_remove() on the
 * flow it is given (and only on that one).
 */
void ft_table_foreach(struct ft_table *t, void (*fn)(struct ft_flow *f, void *arg), void *arg);

void ft_table_stats(const struct ft_table *t, struct ft_table_stats *out);

/* ---- modules ------------------------------------------------------------------------ */

/*
 * An analysis module: per-flow state, a packet handler that may trigger the
 * archival of its flow, and a checker run every check_interval_ns over all
 * flows (expiry, periodic statistics).  The same struct describes built-in
 * modules and external ones loaded with dlopen() (see docs/modules.md), and
 * mirrors the reference's Lua module table: stateType/defaultState ->
 * state_size/default_state, flowKeys -> key_kind, handlePacket ->
 * handle_packet, checkInterval -> check_interval_ns, checkInitializer ->
 * check_init, checkExpiry -> check_expiry, checkFinalizer -> check_final,
 * buildPacketFilter -> build_filter.
 *
 * Threading: one instance (create) is shared by every analyzer thread;
 * handle_packet and check_expiry are called by the analyzer that owns the
 * flow (flows are partitioned, so a flow's state is never touched by two
 * threads); an instance that keeps shared data must protect it itself.
 * check_init/check_expiry run per analyzer thread; the per-thread check
 * states are merged (check_merge) and check_final runs once per interval.
 *
 * Lua modules (PATH.lua, flowtrack/lua.c) are described by the same struct,
 * built when the script is loaded, but run through private per-engine hooks
 * (a Lua state per analyzer, bursts of packets per call): nothing here
 * changes for C modules.
 *
 * ABI 2 (was 1): struct ft_flow_key grew to 42 bytes (vlan_inner) and a
 * module's default key became VLAN-aware (key_flags 0: outer and inner tag;
 * FT_KEY_NO_VLAN asks for a VLAN-blind key).  The loader refuses .so
 * modules built for another ABI.
 */
#define FT_MODULE_ABI 2 /* 2: 42-byte keys with both VLAN tags, VLAN-aware by default */

/* One packet as a module sees it. */
struct ft_packet_ctx {
	uint64_t ts_ns; /* capture time */
	uint32_t caplen, wirelen;
	int linktype; /* LINKTYPE_ of data */
	const uint8_t *data;
	const struct ft_packet *pkt; /* parsed view */
	int dir;                     /* 0: from endpoint a of the key, 1: from b */
};

/*
 * Tracks n parsed packets (p[j].pkt set; dir is ignored) in table t by their flow key of
 * kind and flags (as ft_flow_key_make): each packet counted in its flow (first and last
 * seen, packets, wire bytes and TCP flags per direction; last seen never goes back), the
 * lookups of each FT_ENGINE_BURST packets overlapped by prefetching, as the engine's.
 * hash (NULL, or n entries) gets each packet's ft_flow_key_hash(); it is left alone for a
 * packet without a flow (not IP).  is_new (NULL, or n entries) gets 1 for a packet that
 * made a new flow, else 0.  The table's thread only.
 */
void ft_table_track_burst(struct ft_table *t, const struct ft_packet_ctx *p, unsigned n,
                          enum ft_key_kind kind, unsigned flags, uint64_t *hash, uint8_t *is_new);

struct ft_module {
	uint32_t abi; /* FT_MODULE_ABI */
	const char *name;
	size_t state_size;         /* bytes of per-flow state (in struct ft_flow.state) */
	const void *default_state; /* initial state of a new flow; NULL = zeros */
	enum ft_key_kind key_kind;
	unsigned key_flags;         /* FT_KEY_*: 0 = VLAN-aware (both tags), FT_KEY_NO_VLAN */
	uint64_t check_interval_ns; /* 0 = default 5 s */
	/* Optional: the instance's interval (from its arguments), overriding check_interval_ns. */
	uint64_t (*interval)(void *inst);

	/* Instance from the module's arguments (text after "NAME:"); NULL + err on error. */
	void *(*create)(const char *args, char *err, size_t errlen);
	void (*destroy)(void *inst);

	/*
	 * Per packet of a flow.  Returns 1 to trigger the flow's archival, 0
	 * not to, or -1 for an error (counted in the module's errors; not a
	 * trigger).
	 */
	int (*handle_packet)(void *inst, struct ft_flow *flow, const struct ft_packet_ctx *p,
	                     int is_first);

	/* Checker: a fresh check state for one pass (may return NULL). */
	void *(*check_init)(void *inst);
	/*
	 * For every flow: returns 1 if the flow expired (it is removed and its
	 * dump rule retired after *last_seen_ns), else 0.  now_ns is capture time.
	 */
	int (*check_expiry)(void *inst, void *check, struct ft_flow *flow, uint64_t now_ns,
	                    uint64_t *last_seen_ns);
	/* Optional: folds `from` (another thread's pass) into `into`, freeing `from`. */
	void (*check_merge)(void *inst, void *into, void *from);
	/* Once per interval after every thread's pass: reports, frees check. */
	void (*check_final)(void *inst, void *check, uint64_t kept, uint64_t purged);

	/*
	 * Optional: a BPF expression that selects the flow's packets for dumping,
	 * instead of its key.  Returns 1 with buf filled, or 0 to use the key.
	 * An expression that does not compile (for the triggering packet's link
	 * type) is counted in bad_filters, said once per module, and the flow
	 * dumped by its key.
	 */
	int (*build_filter)(void *inst, const struct ft_flow *flow, char *buf, size_t len);
};

/*
 * Finds a module by built-in name ("noop", "stats", "ttl", "trigger",
 * "threshold") or loads PATH.so (a path containing '/' or ending in ".so")
 * with dlopen(): the library must export `const struct ft_module
 * *flowscope_module(void)` (the library then stays loaded).  Returns 0 and
 * *out, or -ENOENT / -EINVAL (wrong ABI, missing handler; a PATH.lua, which
 * needs the engine: use ft_modset_create) with err filled.
 */
int ft_module_find(const char *name, const struct ft_module **out, char *err, size_t errlen);

/* What an external module library exports (and nothing in flowscope defines). */
const struct ft_module *flowscope_module(void);

/* NULL-terminated list of the built-in modules. */
extern const struct ft_module *const ft_builtin_modules[];

/* ---- analyzer engine ------------------------------------------------------------------ */

/*
 * Runs module instances over packets: one engine per analyzer thread, each
 * with its own flow table per module; the engines of one recording share a
 * struct ft_modset (the instances and the checker merge point).
 */
struct ft_modset;
struct ft_engine;

/* What an engine reports to its owner. */
struct ft_engine_events {
	void *arg;
	/* module `module` triggered on a flow (once per flow); key of the module's kind/flags */
	void (*trigger)(void *arg, unsigned module, const struct ft_flow_key *key,
	                enum ft_key_kind kind, unsigned key_flags, const char *filter,
	                uint64_t ts_ns);
	/* a flow that had triggered expired; its last packet was at last_seen_ns */
	void (*expire)(void *arg, unsigned module, const struct ft_flow_key *key,
	               enum ft_key_kind kind, unsigned key_flags, uint64_t last_seen_ns);
};

/*
 * Creates the instance set from "NAME[:ARGS]" specs: built-in names,
 * PATH.so[:ARGS] (external C module), or PATH.lua[:ARGS] (a Lua module run
 * by LuaJIT, docs/modules.md: loaded here once to check it, then once per
 * engine in a state of its own).  `analyzers` engines
 * will share it.  Returns 0, -ENOENT, -EINVAL, -ENOMEM with err filled.
 */
int ft_modset_create(const char *const *specs, unsigned n, unsigned analyzers,
                     struct ft_modset **out, char *err, size_t errlen);
/*
 * The same from module structs (modules not found by name: embedded, or
 * made at run time); args[i] may be NULL.  Returns as ft_modset_create.
 */
int ft_modset_create_modules(const struct ft_module *const *mods, const char *const *args,
                             unsigned n, unsigned analyzers, struct ft_modset **out, char *err,
                             size_t errlen);

void ft_modset_destroy(struct ft_modset *ms);

/*
 * Lua modules only: with strict set, the first runtime error in a module
 * callback prints its traceback and makes ft_modset_fatal() 1, for module
 * development: the caller stops (record and monitor end their run in order
 * and exit 1); the error is still counted and the flow's state put back.
 * Otherwise errors are counted and logged and the caller goes on.  Call
 * before creating engines.
 */
void ft_modset_set_strict(struct ft_modset *ms, int strict);

/* 1 once a strict module had a runtime error (any thread may ask; ms may be NULL). */
int ft_modset_fatal(const struct ft_modset *ms);

/* Runtime errors of module i's checkMerge / checkFinalizer (Lua; 0 for C modules). */
uint64_t ft_modset_errors(const struct ft_modset *ms, unsigned i);
unsigned ft_modset_count(const struct ft_modset *ms);
const char *ft_modset_name(const struct ft_modset *ms, unsigned i);

/* An engine for analyzer `id` with flow tables of max_flows each. */
int ft_engine_create(struct ft_modset *ms, unsigned id, size_t max_flows,
                     const struct ft_engine_events *ev, struct ft_engine **out);
void ft_engine_destroy(struct ft_engine *e);

/* The bytes of the flow tables of one engine of ms with max_flows each (ft_table_bytes of
 * every module's state size): what ft_engine_create will allocate. */
uint64_t ft_engine_bytes(const struct ft_modset *ms, size_t max_flows);

/* Runs every module on one packet (parsed by the caller). */
void ft_engine_packet(struct ft_engine *e, const struct ft_packet_ctx *p);

#define FT_ENGINE_BURST 32

/*
 * The same for n packets (any n; processed FT_ENGINE_BURST at a time) with
 * the flow-table lookups of a burst overlapped by prefetching: the fast path.
 * Same results as n calls of ft_engine_packet, in order.
 */
void ft_engine_packets(struct ft_engine *e, const struct ft_packet_ctx *p, unsigned n);

/*
 * Runs the checker of each module whose interval boundary has passed at time
 * now_ns (passes also run from ft_engine_packet, at packet timestamps; call
 * this when no packets arrive, with the wall clock for live sources).
 */
void ft_engine_tick(struct ft_engine *e, uint64_t now_ns);

/* Runs a last checker pass at capture time (final reports), at shutdown. */
void ft_engine_finish(struct ft_engine *e);

/*
 * Formats a key that module `module` of engine e reported (the trigger and
 * expire events) into buf: a built-in key as ft_flow_key_format() does; a key
 * of a Lua module's own type (flowKeys) by the module's formatFlowKey, else as
 * its type name and bytes in hex (docs/modules.md).  Call on the engine's
 * thread (from its events).  len: FT_MODKEYSTRLEN is enough for the built-in
 * formats; longer text is cut.  Returns buf.
 */
#define FT_MODKEYSTRLEN 256
char *ft_engine_key_format(struct ft_engine *e, unsigned module, const struct ft_flow_key *key,
                           char *buf, size_t len);

struct ft_engine_stats {
	uint64_t packets, flows, triggers, expired, evicted;
	/* runtime errors in a Lua module's callbacks on this engine, or C handle_packet < 0 */
	uint64_t errors;
	/* triggered flows whose build_filter result did not compile: dumped by their keys */
	uint64_t bad_filters;
};

void ft_engine_stats(const struct ft_engine *e, unsigned module, struct ft_engine_stats *out);

/* ---- triggers from outside ----------------------------------------------------------- */

/*
 * A detector outside the recorder (the HTTP API, an IDS alert log) asks for a
 * flow, or the flows a filter selects, to be archived with their packets still
 * in the ring.  Flow tables belong to their analyzer threads, so a request is
 * not applied by the caller: a hub holds one small inbox per analyzer, the
 * caller posts the request to every inbox (it cannot know which analyzer owns
 * the flow) and waits, bounded, until each analyzer has applied it in its own
 * loop (ft_trigger_poll, which the analyzer calls at least every 100 ms) and
 * merged its part of the result.
 *
 * In an analyzer: a flow trigger looks the canonical key up in the analyzer's
 * table (VLAN ids are part of it); a filter trigger tests every flow in the
 * table.  A flow that matches is marked (struct ft_flow.triggered: later
 * packets cost nothing) and handed to the owner's add event (a dump rule);
 * the flow's idle expiry (FT_TRIGGER_IDLE_NS without a packet, or evicted
 * from the table) hands it to the expire event.  With for_ns, the trigger
 * stays pending that long in each analyzer: every new flow is tested once,
 * by its first packet's key (not per packet).  Filters are tested against a
 * packet made from the flow's key (Ethernet, its VLAN tags, IPv4/IPv6, the
 * TCP/UDP/SCTP ports), in both directions: they select by address, port,
 * protocol and VLAN, not by payload, TCP flags or lengths.
 *
 * Lifecycle: ft_trigger_hub_create() -> analyzers call ft_trigger_poll() and
 * ft_trigger_new_flows() on their tables; any thread ft_trigger_post() ->
 * ft_trigger_hub_close() (posts refused, waiting callers answered) before the
 * analyzers stop -> ft_trigger_hub_destroy() after they stopped.
 *
 * Threading: post, close and stats from any thread (one mutex per inbox and
 * per request, never held while a table is touched by another thread); poll
 * and new_flows on analyzer `id`'s thread only, with its table.
 */
#define FT_TRIGGER_LISTED 64              /* matched flows listed in a result */
#define FT_TRIGGER_IDLE_NS 30000000000ull /* a triggered flow this idle has ended */

struct ft_trigger {
	int has_key;              /* 1: the flow `key`; 0: community_id's flows, or filter's */
	struct ft_flow_key key;   /* canonical VLAN-aware bidirectional (ft_flow_key_parse) */
	const char *community_id; /* has_key 0: the flows of this Community ID v1 (seed 0; any
	                             VLAN: the ID has none; never ICMP flows), or NULL */
	const char *filter;       /* has_key 0, no community_id: a libpcap expression (copied) */
	uint16_t tag;             /* the owner's id for the rule (record: archive_trigger_id) */
	uint64_t for_ns;          /* keep matching new flows this long; 0: the table now */
};

/* One flow a trigger matched. */
struct ft_trigger_match {
	struct ft_flow_key key;
	uint64_t packets;   /* its packets so far, both directions: what the rule reaches back */
	uint64_t first_ns;  /* its first packet's time */
	uint64_t back_ns;   /* trigger time minus first_ns */
	uint8_t first_lost; /* its first packet had left the ring already */
	uint8_t again;      /* it had triggered before (no new rule) */
};

struct ft_trigger_result {
	uint64_t flows;      /* flows matched */
	uint64_t packets;    /* their packets reached back */
	uint64_t lost_flows; /* of them, with the first packet gone from the ring */
	uint64_t window_ns;  /* the ring's time window (newest - oldest) at the trigger */
	unsigned analyzers;  /* analyzers that answered */
	unsigned listed;     /* entries in match[] (the first FT_TRIGGER_LISTED) */
	struct ft_trigger_match match[FT_TRIGGER_LISTED];
};

/* What the owner does for matched flows (called on the analyzer's thread). */
struct ft_trigger_events {
	void *arg;
	/* a flow matched for the first time: archive it (a rule tagged `tag`) */
	void (*add)(void *arg, const struct ft_flow_key *key, uint16_t tag);
	/* a triggered flow ended; its last packet was at last_seen_ns */
	void (*expire)(void *arg, const struct ft_flow_key *key, uint64_t last_seen_ns);
	/* the ring's oldest and newest timestamps held (0, 0: empty) */
	void (*window)(void *arg, uint64_t *oldest_ns, uint64_t *newest_ns);
};

/* Counters of a hub (docs/counters.md, trigger.*). */
struct ft_trigger_stats {
	uint64_t requests; /* posted and answered */
	uint64_t flows;    /* flows matched */
	uint64_t packets;  /* packets reached back */
	uint64_t too_late; /* flows matched whose first packet had left the ring */
	uint64_t pending;  /* gauge: triggers kept for new flows (summed over analyzers) */
	uint64_t active;   /* gauge: triggered flows not yet ended */
	uint64_t refused;  /* posts refused: stopping, or an analyzer did not answer */
};

struct ft_trigger_hub;

/* A hub for `analyzers` analyzer threads.  Returns 0 and *out, -EINVAL, -ENOMEM. */
int ft_trigger_hub_create(unsigned analyzers, const struct ft_trigger_events *ev,
                          struct ft_trigger_hub **out);
void ft_trigger_hub_destroy(struct ft_trigger_hub *h);

/*
 * Applies trigger t in every analyzer, waiting at most timeout_ns for them
 * (now_ns: the trigger's time, wall clock).  Returns 0 with *res filled;
 * -EINVAL (a filter that does not compile: libpcap's message in err; a
 * community_id that is not one);
 * FT_E_STOPPING (closed); FT_E_TIMEDOUT (an analyzer did not answer: the
 * request stays queued and is applied later; *res holds what answered);
 * -ENOMEM.  Any thread.
 */
int ft_trigger_post(struct ft_trigger_hub *h, const struct ft_trigger *t, uint64_t now_ns,
                    uint64_t timeout_ns, struct ft_trigger_result *res, char *err, size_t errlen);

/* Refuses later posts (FT_E_STOPPING) and answers those queued.  Any thread; idempotent. */
void ft_trigger_hub_close(struct ft_trigger_hub *h);

/*
 * Analyzer `id`: applies the requests in its inbox to table t, drops pending
 * triggers past their time (now_ns: the wall clock) and, once a second, ends
 * triggered flows that left the table or saw no packet for idle_ns before
 * now_ns.  idle_ns 0 is for a file, whose capture time is not the clock:
 * nothing ends until the recording does, and a match's back_ns is measured
 * to the flow's last packet instead of now_ns.  Call at least every 100 ms.
 */
void ft_trigger_poll(struct ft_trigger_hub *h, unsigned id, struct ft_table *t, uint64_t now_ns,
                     uint64_t idle_ns);

/*
 * Analyzer `id`: packets p[0..n) were just tracked in t (ft_table_track_burst, with is_new);
 * each new flow is tested against the pending triggers.  O(1) when none is pending.
 */
void ft_trigger_new_flows(struct ft_trigger_hub *h, unsigned id, struct ft_table *t,
                          const struct ft_packet_ctx *p, const uint8_t *is_new, unsigned n);

/* The hub's counters (relaxed reads).  Any thread. */
void ft_trigger_stats(struct ft_trigger_hub *h, struct ft_trigger_stats *out);

/* ---- IPFIX export ------------------------------------------------------------------------ */

/*
 * An analyzer's flows as IPFIX (RFC 7011) messages, for a collector
 * (docs/ipfix.md): one data record per direction of a flow (uniflows: nfcapd
 * and nfacctd read them; no RFC 5103 reverse elements), IPv4 flows under
 * template FT_IPFIX_TEMPLATE_V4, IPv6 under FT_IPFIX_TEMPLATE_V6.  Records
 * carry the counters since the flow's last export (octetDeltaCount: the
 * frames' wire bytes, as struct ft_flow counts them) and flowEndReason:
 * idle timeout, active timeout (the flow stays, later records carry what
 * came since), lack of resources (evicted from the table) or forced end (the
 * end of the recording).
 *
 * Lifecycle: ft_ipfix_create() -> the owner's table created with
 * FT_IPFIX_STATE_SIZE bytes of state (the exporter's mark per flow), its
 * evictions handed to ft_ipfix_flow_end(..., FT_IPFIX_END_RESOURCES, ...),
 * ft_ipfix_expire() often (it scans the table at most once a second of
 * flow_now_ns) -> ft_ipfix_finish() -> ft_ipfix_destroy().
 *
 * Threading: an exporter belongs to the thread that owns its table (one per
 * analyzer; each its own observation domain, so sequence numbers hold per
 * domain).  send() runs on that thread and must not block.
 *
 * Errors: create returns 0, -EINVAL (no send, mtu outside FT_IPFIX_MIN_MTU..
 * 65535) or -ENOMEM; the rest cannot fail: a send that fails is the owner's
 * to count (the message is gone; the collector sees the sequence gap).
 */
#define FT_IPFIX_TEMPLATE_V4 256
#define FT_IPFIX_TEMPLATE_V6 257
#define FT_IPFIX_MTU 1400                   /* default message size limit: fits a 1500 MTU */
#define FT_IPFIX_MIN_MTU 256                /* the templates and a record fit */
#define FT_IPFIX_TEMPLATE_NS 30000000000ull /* templates again after 30 s ... */
#define FT_IPFIX_TEMPLATE_MSGS 100          /* ... or 100 messages, whichever first */
#define FT_IPFIX_STATE_SIZE 40              /* bytes of flow state the exporter needs */
#define FT_IPFIX_ACTIVE_NS 60000000000ull   /* default active timeout */
#define FT_IPFIX_IDLE_NS 15000000000ull     /* default idle timeout */

/* flowEndReason (IANA element 136) */
#define FT_IPFIX_END_IDLE 1
#define FT_IPFIX_END_ACTIVE 2
#define FT_IPFIX_END_FORCED 4
#define FT_IPFIX_END_RESOURCES 5

/* One data record: one direction of a flow. */
struct ft_ipfix_record {
	uint8_t src[16], dst[16]; /* network order; both IPv4-mapped: the IPv4 template */
	uint16_t sport, dport;    /* host order */
	uint8_t proto;
	uint8_t end_reason; /* FT_IPFIX_END_* */
	uint16_t tcp_flags; /* tcpControlBits, OR of the direction's packets */
	uint16_t vlan, vlan_inner;
	uint64_t packets, bytes;   /* packetDeltaCount, octetDeltaCount */
	uint64_t start_ns, end_ns; /* flowStart/EndNanoseconds, ns since 1970 */
};

/* What one message handed to send() holds. */
struct ft_ipfix_sent {
	unsigned records;   /* data records */
	unsigned templates; /* template records (0 or 2) */
};

struct ft_ipfix_config {
	uint32_t domain;        /* observation domain id */
	size_t mtu;             /* largest message, bytes; 0: FT_IPFIX_MTU */
	uint64_t template_ns;   /* templates re-sent after this (wall clock); 0: default */
	unsigned template_msgs; /* ... or after this many messages; 0: default */
	uint64_t active_ns;     /* a flow's record ends after this long (flow clock) */
	uint64_t idle_ns;       /* a flow ends after this long without a packet (flow clock) */
	/* takes one whole message (len bytes, valid during the call only); must not block */
	void (*send)(void *arg, const uint8_t *msg, size_t len, const struct ft_ipfix_sent *what);
	void *arg;
};

struct ft_ipfix;

int ft_ipfix_create(const struct ft_ipfix_config *c, struct ft_ipfix **out);
void ft_ipfix_destroy(struct ft_ipfix *x); /* x may be NULL; a pending message is dropped */

/* Bytes of one data record of an IPv4 (family 4) or IPv6 (6) flow. */
size_t ft_ipfix_record_len(int family);

/*
 * Appends record r to the open message (sending that one first when r does not fit;
 * opening a new one, with the templates when they are due).  now_ns: the wall
 * clock (exportTime, the template timer), 0: the last one given.
 */
void ft_ipfix_add(struct ft_ipfix *x, const struct ft_ipfix_record *r, uint64_t now_ns);

/* Sends the open message, if it holds any record. */
void ft_ipfix_flush(struct ft_ipfix *x, uint64_t now_ns);

/* Exports flow f's records since its last export, ended by `reason` (an eviction). */
void ft_ipfix_flow_end(struct ft_ipfix *x, struct ft_flow *f, uint8_t reason, uint64_t now_ns);

/*
 * At most once per second of flow_now_ns (capture time of a file, the wall
 * clock of a live source): exports every flow of t idle for idle_ns (what it
 * had since its last export; it stays in the table, which is the analyzer's:
 * packets after that are a new record) or counting for active_ns, then sends.
 */
void ft_ipfix_expire(struct ft_ipfix *x, struct ft_table *t, uint64_t flow_now_ns, uint64_t now_ns);

/* The end: every flow's records since its last export (forced end), then sends. */
void ft_ipfix_finish(struct ft_ipfix *x, struct ft_table *t, uint64_t now_ns);

/* ---- numbers people type -------------------------------------------------------------- */

/*
 * Strict parsers for the values of module arguments and of the command line
 * (tools/cli.c uses these): the whole string or an error.  Numbers are
 * decimal digits, computed in integers: no sign, space, exponent, hex, "inf"
 * or "nan".  Each returns 0 and *out; -EINVAL when s is not such a value
 * (*out untouched); -ERANGE when it is one but beyond 64 bits or outside
 * [min, max].  Pure and thread-safe.
 */

/* A whole number in [min, max]: "0", "1500". */
int ft_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * A count with an optional k (or K), M or G: powers of 1000.  A fraction is
 * allowed when the count comes out whole: "1000", "10k", "1.5M"; not "1.5".
 */
int ft_parse_count(const char *s, uint64_t *out);

/* Bytes with an optional K, M, G or T (powers of 1024, any case; "MiB", "MB" too): "512M". */
int ft_parse_size(const char *s, uint64_t *out);

/*
 * Nanoseconds: a decimal (fraction allowed) with a unit ns, us, ms, s, m, h
 * or d; a bare number is seconds.  "30s", "1.5s", "250ms", "2".
 */
int ft_parse_duration(const char *s, uint64_t *out);

/*
 * A time in RFC 3339 with its zone ("2026-11-27T14:02:00Z", "...+01:00",
 * "...t...z", a fraction to ns, a space for T): ns since 1970.  -EINVAL, or
 * -ERANGE before 1970 or after 2554-07-21T23:34:33.709551615Z (ns in a u64).
 */
int ft_parse_rfc3339(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
