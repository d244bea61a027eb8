/*
 * flowtrack unit tests: parsing (Ethernet, VLAN/QinQ, MPLS, IPv4 with
 * options, IPv6 with extension headers, fragments, ARP, cooked and raw link
 * types), every truncation point of a packet, canonical flow keys, hashing,
 * and the flow table (insert, lookup, removal, eviction when full).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <pcap/pcap.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

#include "pktbuild.h"

/* ---- parser ------------------------------------------------------------------------------- */

static void test_ipv4_tcp(void **state)
{
	(void)state;
	uint8_t b[128], a[16];
	size_t n = eth(b, 0x0800);
	n += ipv4(b + n, "10.0.0.1", "10.0.0.2", 6, 0x4000, 0);
	n += ports(b + n, 40000, 80, 0x12);
	struct ft_packet p;
	assert_int_equal(ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p), 0);
	assert_int_equal(p.flags, FT_PKT_PARSED | FT_PKT_IP | FT_PKT_L4);
	assert_int_equal(p.family, 4);
	assert_int_equal(p.ethertype, 0x0800);
	assert_int_equal(p.l3_off, 14);
	assert_int_equal(p.l4_off, 34);
	assert_int_equal(p.proto, 6);
	assert_int_equal(p.ttl, 64);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 80);
	assert_int_equal(p.tcp_flags, 0x12);
	v4mapped("10.0.0.1", a);
	assert_memory_equal(p.src, a, 16);
	v4mapped("10.0.0.2", a);
	assert_memory_equal(p.dst, a, 16);
}

static void test_ipv4_options_vlan_qinq(void **state)
{
	(void)state;
	uint8_t b[160];
	size_t n = eth(b, 0x88a8);
	n += vlan_tag(b + n, 200, 0x8100);
	n += vlan_tag(b + n, 100, 0x0800);
	n += ipv4(b + n, "192.168.1.1", "192.168.1.2", 17, 0, 12);
	n += ports(b + n, 5353, 53, 0);
	struct ft_packet p;
	assert_int_equal(ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p), 0);
	assert_int_equal(p.n_vlan, 2);
	assert_int_equal(p.vlan[0], 200);
	assert_int_equal(p.vlan[1], 100);
	assert_int_equal(p.l3_off, 22);
	assert_int_equal(p.l4_off, 22 + 32);
	assert_int_equal(p.sport, 5353);
	assert_int_equal(p.dport, 53);
	assert_true(p.flags & FT_PKT_L4);
}

static void test_ipv6_ext_headers(void **state)
{
	(void)state;
	uint8_t b[200], a[16];
	size_t n = eth(b, 0x86dd);
	n += ipv6(b + n, "fd00::1", "fd00::2", 0); /* hop-by-hop */
	memset(b + n, 0, 8);
	b[n] = 60; /* next: destination options, 8 bytes */
	n += 8;
	memset(b + n, 0, 16);
	b[n] = 6;     /* next: TCP */
	b[n + 1] = 1; /* (1 + 1) * 8 = 16 bytes */
	n += 16;
	n += ports(b + n, 443, 50000, 0x10);
	struct ft_packet p;
	assert_int_equal(ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p), 0);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.proto, 6);
	assert_int_equal(p.n_nxt, 3);
	assert_int_equal(p.nxt[0], 0);
	assert_int_equal(p.nxt[1], 60);
	assert_int_equal(p.nxt[2], 6);
	assert_int_equal(p.l4_off, 14 + 40 + 8 + 16);
	assert_int_equal(p.sport, 443);
	assert_int_equal(p.ttl, 63);
	v6("fd00::2", a);
	assert_memory_equal(p.dst, a, 16);
}

static void test_fragments(void **state)
{
	(void)state;
	uint8_t b[200];
	struct ft_packet p;
	/* IPv4 first fragment (MF): ports read */
	size_t n = eth(b, 0x0800);
	n += ipv4(b + n, "10.0.0.1", "10.0.0.2", 17, 0x2000, 0);
	n += ports(b + n, 1000, 2000, 0);
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_int_equal(p.flags & (FT_PKT_FRAG | FT_PKT_FRAG_LATER | FT_PKT_L4),
	                 FT_PKT_FRAG | FT_PKT_L4);
	/* IPv4 later fragment (offset 185*8): payload bytes are NOT ports */
	n = eth(b, 0x0800);
	n += ipv4(b + n, "10.0.0.1", "10.0.0.2", 17, 185, 0);
	n += ports(b + n, 1000, 2000, 0);
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_true(p.flags & FT_PKT_FRAG_LATER);
	assert_false(p.flags & FT_PKT_L4);
	assert_int_equal(p.sport, 0);
	assert_int_equal(p.proto, 17);
	/* IPv6 later fragment */
	n = eth(b, 0x86dd);
	n += ipv6(b + n, "fd00::1", "fd00::2", 44);
	memset(b + n, 0, 8);
	b[n] = 17;
	b[n + 2] = 0x05; /* offset 0x05a8 >> 3 */
	b[n + 3] = 0xa8;
	n += 8;
	n += ports(b + n, 1000, 2000, 0);
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_true(p.flags & FT_PKT_FRAG_LATER);
	assert_false(p.flags & FT_PKT_L4);
	assert_int_equal(p.proto, 17);
}

static void test_arp_and_mpls(void **state)
{
	(void)state;
	uint8_t b[128], a[16];
	struct ft_packet p;
	size_t n = eth(b, 0x0806);
	memset(b + n, 0, 28);
	b[n + 1] = 1;    /* htype ethernet */
	b[n + 2] = 0x08; /* ptype IPv4 */
	b[n + 4] = 6;
	b[n + 5] = 4;
	inet_pton(AF_INET, "10.1.1.1", b + n + 14);
	inet_pton(AF_INET, "10.1.1.2", b + n + 24);
	n += 28;
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_int_equal(p.flags, FT_PKT_PARSED | FT_PKT_ARP);
	assert_int_equal(p.family, 0); /* not IP: no IPv4 header at l3_off */
	v4mapped("10.1.1.2", a);
	assert_memory_equal(p.dst, a, 16);
	struct ft_flow_key k;
	assert_int_equal(ft_flow_key_from_packet(&p, 0, &k, NULL), -ENOENT);

	n = eth(b, 0x8847);
	memset(b + n, 0, 8);
	b[n + 2] = 0x00; /* label 1, not bottom */
	b[n + 6] = 0x01; /* bottom of stack */
	n += 8;
	n += ipv4(b + n, "10.2.2.2", "10.3.3.3", 6, 0, 0);
	n += ports(b + n, 1, 2, 0);
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_true(p.flags & FT_PKT_MPLS);
	assert_true(p.flags & FT_PKT_L4);
	assert_int_equal(p.dport, 2);
}

static void test_other_linktypes(void **state)
{
	(void)state;
	uint8_t b[128];
	struct ft_packet p;
	size_t n;
	/* raw IPv4 */
	n = ipv4(b, "1.2.3.4", "5.6.7.8", 17, 0, 0);
	n += ports(b + n, 7, 9, 0);
	ft_parse(FT_DLT_RAW, b, (uint32_t)n, &p);
	assert_int_equal(p.family, 4);
	assert_int_equal(p.dport, 9);
	/* Linux cooked v1: protocol at 14, IPv6 at 16 */
	memset(b, 0, 16);
	b[14] = 0x86;
	b[15] = 0xdd;
	n = 16 + ipv6(b + 16, "::1", "::2", 17);
	n += ports(b + n, 11, 12, 0);
	ft_parse(FT_DLT_LINUX_SLL, b, (uint32_t)n, &p);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.sport, 11);
	/* Linux cooked v2: protocol at 0, payload at 20 */
	memset(b, 0, 20);
	b[0] = 0x08;
	n = 20 + ipv4(b + 20, "9.9.9.9", "8.8.8.8", 6, 0, 0);
	n += ports(b + n, 3, 4, 0x02);
	ft_parse(FT_DLT_LINUX_SLL2, b, (uint32_t)n, &p);
	assert_int_equal(p.tcp_flags, 0x02);
	/* BSD loopback, host byte order AF_INET */
	b[0] = 2, b[1] = b[2] = b[3] = 0;
	n = 4 + ipv4(b + 4, "127.0.0.1", "127.0.0.1", 1, 0, 0);
	b[n] = 8;
	b[n + 1] = 0;
	n += 2;
	ft_parse(FT_DLT_NULL, b, (uint32_t)n, &p);
	assert_int_equal(p.proto, 1);
	assert_int_equal(p.icmp_type, 8);
	assert_int_equal(ft_parse(147, b, (uint32_t)n, &p), FT_E_LINKTYPE);
	assert_int_equal(p.flags, 0); /* not FT_PKT_PARSED: ft_packet_view would parse it again */
	assert_false(ft_linktype_supported(147));
}

/* Every truncation of a full packet parses without reading past caplen (ASan checks). */
static void test_every_truncation(void **state)
{
	(void)state;
	uint8_t full[200];
	size_t n = eth(full, 0x8100);
	n += vlan_tag(full + n, 7, 0x86dd);
	n += ipv6(full + n, "fd00::1", "fd00::2", 44);
	memset(full + n, 0, 8);
	full[n] = 6;
	n += 8;
	n += ports(full + n, 1, 2, 0x11);
	for (size_t len = 0; len <= n; len++) {
		uint8_t *cut = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
		memcpy(cut, full, len);
		struct ft_packet p;
		assert_int_equal(ft_parse(FT_DLT_EN10MB, cut, (uint32_t)len, &p), 0);
		if (len < 18 + 40)
			assert_false(p.flags & FT_PKT_IP);
		if (len < 18 + 40 + 8 + 14) /* up to the TCP flags byte, the last field read */
			assert_true(p.flags & FT_PKT_TRUNCATED);
		else
			assert_int_equal(p.flags,
			                 FT_PKT_PARSED | FT_PKT_IP | FT_PKT_L4 | FT_PKT_FRAG);
		free(cut);
	}
}

static void test_malformed_ipv4(void **state)
{
	(void)state;
	uint8_t b[100];
	size_t n = eth(b, 0x0800);
	n += ipv4(b + n, "10.0.0.1", "10.0.0.2", 6, 0, 0);
	b[14] = 0x43; /* IHL 3 */
	n += ports(b + n, 1, 2, 0);
	struct ft_packet p;
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_true(p.flags & FT_PKT_MALFORMED);
	assert_true(p.flags & FT_PKT_IP); /* addresses still read, where libpcap reads them */
	assert_false(p.flags & FT_PKT_L4);
}

/* ---- keys ---------------------------------------------------------------------------------- */

static void key_of(const char *s, const char *d, uint16_t sp, uint16_t dp, struct ft_flow_key *k,
                   int *dir)
{
	uint8_t b[100];
	size_t n = eth(b, 0x0800);
	n += ipv4(b + n, s, d, 6, 0, 0);
	n += ports(b + n, sp, dp, 0);
	struct ft_packet p;
	ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &p);
	assert_int_equal(ft_flow_key_from_packet(&p, 0, k, dir), 0);
}

static void test_key_canonical(void **state)
{
	(void)state;
	struct ft_flow_key k1, k2, k3, k4;
	int d1, d2, d3, d4;
	key_of("10.0.0.9", "10.0.0.1", 80, 5000, &k1, &d1);
	key_of("10.0.0.1", "10.0.0.9", 5000, 80, &k2, &d2);
	assert_memory_equal(&k1, &k2, sizeof(k1));
	assert_int_equal(ft_flow_key_hash(&k1), ft_flow_key_hash(&k2));
	assert_int_not_equal(d1, d2);
	assert_int_equal(k1.port_a, 5000); /* 10.0.0.1 sorts first */
	/* equal addresses: ordered by port, still deterministic */
	key_of("10.0.0.5", "10.0.0.5", 9000, 22, &k3, &d3);
	key_of("10.0.0.5", "10.0.0.5", 22, 9000, &k4, &d4);
	assert_memory_equal(&k3, &k4, sizeof(k3));
	assert_int_equal(k3.port_a, 22);
	assert_int_not_equal(d3, d4);
	char buf[FT_KEYSTRLEN];
	assert_string_equal(ft_flow_key_format(&k1, buf, sizeof(buf)),
	                    "tcp 10.0.0.1:5000 <-> 10.0.0.9:80");
}

/*
 * Three tenants on one 5-tuple told apart only by VLAN tags (802.1Q 42, QinQ
 * 300/42, QinQ 300/43) and an untagged one: each is a flow of its own under
 * the default key; FT_KEY_OUTER_VLAN merges the two QinQ tenants,
 * FT_KEY_NO_VLAN all four.  The key's filter, compiled by libpcap as tcpdump
 * would, selects its own tenant's packet and no other.
 */
static size_t tenant_pkt(uint8_t *b, uint16_t outer, uint16_t inner, int rev)
{
	size_t n = eth(b, outer ? (inner ? 0x88a8 : 0x8100) : 0x0800);
	if (outer)
		n += vlan_tag(b + n, outer, inner ? 0x8100 : 0x0800);
	if (inner)
		n += vlan_tag(b + n, inner, 0x0800);
	n += ipv4(b + n, rev ? "10.1.0.2" : "10.1.0.1", rev ? "10.1.0.1" : "10.1.0.2", 17, 0, 0);
	n += ports(b + n, rev ? 53 : 53000, rev ? 53000 : 53, 0);
	return n;
}

static void test_key_vlan(void **state)
{
	(void)state;
	static const uint16_t tags[4][2] = {{42, 0}, {300, 42}, {300, 43}, {0, 0}};
	uint8_t b[4][100];
	size_t n[4];
	struct ft_packet p[4];
	struct ft_flow_key k[4], blind[4], outer[4];
	for (int i = 0; i < 4; i++) {
		n[i] = tenant_pkt(b[i], tags[i][0], tags[i][1], i == 2);
		assert_int_equal(ft_parse(FT_DLT_EN10MB, b[i], (uint32_t)n[i], &p[i]), 0);
		assert_int_equal(ft_flow_key_make(&p[i], FT_KEY_BIDIRECTIONAL, 0, &k[i], NULL), 0);
		assert_int_equal(k[i].vlan, tags[i][0]);
		assert_int_equal(k[i].vlan_inner, tags[i][1]);
		assert_int_equal(
		    ft_flow_key_make(&p[i], FT_KEY_BIDIRECTIONAL, FT_KEY_NO_VLAN, &blind[i], NULL),
		    0);
		assert_int_equal(ft_flow_key_make(&p[i], FT_KEY_BIDIRECTIONAL, FT_KEY_OUTER_VLAN,
		                                  &outer[i], NULL),
		                 0);
	}
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			assert_memory_not_equal(&k[i], &k[j], sizeof(k[i]));
			assert_int_not_equal(ft_flow_key_hash(&k[i]), ft_flow_key_hash(&k[j]));
			assert_memory_equal(&blind[i], &blind[j], sizeof(blind[i]));
		}
	assert_memory_equal(&outer[1], &outer[2], sizeof(outer[1]));
	assert_memory_not_equal(&outer[0], &outer[1], sizeof(outer[0]));
	assert_int_equal(blind[0].vlan + blind[0].vlan_inner + outer[1].vlan_inner, 0);
	char buf[FT_KEYSTRLEN], f[FT_KEYFILTERLEN], err[256];
	assert_string_equal(ft_flow_key_format(&k[1], buf, sizeof(buf)),
	                    "udp 10.1.0.1:53000 <-> 10.1.0.2:53 vlan 300/42");
	assert_string_equal(ft_flow_key_format(&k[0], buf, sizeof(buf)),
	                    "udp 10.1.0.1:53000 <-> 10.1.0.2:53 vlan 42");
	assert_string_equal(ft_flow_key_filter(&k[1], f, sizeof(f)),
	                    "vlan 300 and vlan 42 and udp and host 10.1.0.1 and host 10.1.0.2 and "
	                    "port 53000 and port 53");
	assert_null(ft_flow_key_filter(&k[1], f, 20));
	for (int i = 0; i < 4; i++) {
		struct bpf_program prog;
		assert_non_null(ft_flow_key_filter(&k[i], f, sizeof(f)));
		assert_int_equal(ft_bpf_compile(FT_DLT_EN10MB, 65535, f, &prog, err, sizeof(err)),
		                 0);
		for (int j = 0; j < 4; j++) {
			struct pcap_pkthdr h = {.caplen = (uint32_t)n[j], .len = (uint32_t)n[j]};
			assert_int_equal(pcap_offline_filter(&prog, &h, b[j]) != 0, i == j);
		}
		pcap_freecode(&prog);
	}
}

/* ---- table ---------------------------------------------------------------------------------- */

static struct ft_flow_key nth_key(uint32_t i)
{
	struct ft_flow_key k = {0};
	k.a[10] = k.a[11] = 0xff;
	memcpy(k.a + 12, &i, 4);
	k.port_a = (uint16_t)i;
	k.proto = 17;
	return k;
}

static void count_cb(struct ft_flow *f, void *arg)
{
	(void)f;
	(*(unsigned *)arg)++;
}

static void remove_odd_cb(struct ft_flow *f, void *arg)
{
	uint32_t i;
	memcpy(&i, f->key.a + 12, 4);
	if (i % 2)
		ft_table_remove(arg, f);
}

static void test_table(void **state)
{
	(void)state;
	struct ft_table *t;
	uint32_t def = 0xabcd;
	assert_int_equal(ft_table_create(1000, sizeof(def), &def, &t), 0);
	int is_new;
	for (uint32_t i = 0; i < 1000; i++) {
		struct ft_flow_key k = nth_key(i);
		struct ft_flow *f = ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new);
		assert_true(is_new);
		assert_memory_equal(f->state, &def, sizeof(def));
		f->last_ns = i + 1;
		f->packets[0] = i;
	}
	for (uint32_t i = 0; i < 1000; i++) {
		struct ft_flow_key k = nth_key(i);
		struct ft_flow *f = ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new);
		assert_false(is_new);
		assert_int_equal(f->packets[0], i);
	}
	ft_table_foreach(t, remove_odd_cb, t);
	unsigned n = 0;
	ft_table_foreach(t, count_cb, &n);
	assert_int_equal(n, 500);
	for (uint32_t i = 0; i < 1000; i += 2) { /* the survivors are all still found */
		struct ft_flow_key k = nth_key(i);
		assert_int_equal(ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new)->packets[0],
		                 i);
		assert_false(is_new);
	}
	/* fill to the bound, then insert more: evictions, counted, never a failure */
	for (uint32_t i = 1000; i < 3000; i++) {
		struct ft_flow_key k = nth_key(i);
		ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new)->last_ns = 10000 + i;
		assert_true(is_new);
	}
	struct ft_table_stats st;
	ft_table_stats(t, &st);
	assert_int_equal(st.flows, 1000);
	assert_int_equal(st.expired, 500);
	assert_int_equal(st.evicted, 1500);
	assert_int_equal(st.inserted, 3000);
	ft_table_clear(t);
	ft_table_stats(t, &st);
	assert_int_equal(st.flows, 0);
	ft_table_destroy(t);
}

/* Expected counters of one flow, kept by hand packet by packet. */
struct want_flow {
	struct ft_flow_key key;
	uint64_t first, last, packets[2], bytes[2];
	uint8_t flags[2];
};

/*
 * ft_table_track_burst over 70 packets (three bursts): two tenants' flows in both
 * directions and ARP (no flow) between them, one timestamp stepping back.  Each flow's
 * counters as kept by hand, each packet's hash its key's, ARP's hash left alone.
 */
static void test_track_burst(void **state)
{
	(void)state;
	enum { N = 70 };
	static uint8_t b[N][100];
	struct ft_packet pkt[N];
	struct ft_packet_ctx c[N];
	uint64_t hash[N];
	struct want_flow want[2] = {{.first = 0}};
	int seen[2] = {0, 0};
	for (unsigned i = 0; i < N; i++) {
		size_t n;
		if (i % 5 == 4) {
			n = eth(b[i], 0x0806);
			memset(b[i] + n, 0, 28);
			n += 28;
		} else {
			unsigned t = i % 5 / 2; /* tenant 0: VLAN 42; tenant 1: 300 in 42 */
			n = tenant_pkt(b[i], t ? 300 : 42, t ? 42 : 0, i % 2);
		}
		assert_int_equal(ft_parse(FT_DLT_EN10MB, b[i], (uint32_t)n, &pkt[i]), 0);
		uint64_t ts = i == 66 ? 500 : 1000 + i; /* 66, flow 0's last: earlier than 65 */
		c[i] = (struct ft_packet_ctx){.ts_ns = ts,
		                              .caplen = (uint32_t)n,
		                              .wirelen = (uint32_t)n + 4,
		                              .linktype = FT_DLT_EN10MB,
		                              .data = b[i],
		                              .pkt = &pkt[i]};
		hash[i] = 7;
		struct ft_flow_key k;
		int dir;
		if (ft_flow_key_make(&pkt[i], FT_KEY_BIDIRECTIONAL, 0, &k, &dir) != 0)
			continue;
		unsigned t = i % 5 / 2;
		struct want_flow *w = &want[t];
		if (!seen[t]++) {
			w->key = k;
			w->first = ts;
		}
		assert_memory_equal(&w->key, &k, sizeof(k));
		if (ts > w->last)
			w->last = ts;
		w->packets[dir]++;
		w->bytes[dir] += n + 4;
		w->flags[dir] |= pkt[i].tcp_flags;
	}
	struct ft_table *t;
	assert_int_equal(ft_table_create(64, 0, NULL, &t), 0);
	ft_table_track_burst(t, c, N, FT_KEY_BIDIRECTIONAL, 0, hash, NULL);
	struct ft_table_stats st;
	ft_table_stats(t, &st);
	assert_int_equal(st.flows, 2);
	for (unsigned j = 0; j < 2; j++) {
		int is_new;
		uint64_t h = ft_flow_key_hash(&want[j].key);
		struct ft_flow *f = ft_table_lookup(t, &want[j].key, h, &is_new);
		assert_false(is_new);
		assert_int_equal(f->first_ns, want[j].first);
		assert_int_equal(f->last_ns, want[j].last);
		for (int d = 0; d < 2; d++) {
			assert_int_equal(f->packets[d], want[j].packets[d]);
			assert_int_equal(f->bytes[d], want[j].bytes[d]);
			assert_int_equal(f->tcp_flags[d], want[j].flags[d]);
		}
	}
	assert_int_equal(want[0].last, 1000 + 65); /* 66 stepped back: last stays the latest */
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(hash[i], i % 5 == 4 ? 7 : ft_flow_key_hash(&want[i % 5 / 2].key));
	ft_table_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_tcp),         cmocka_unit_test(test_ipv4_options_vlan_qinq),
	    cmocka_unit_test(test_ipv6_ext_headers), cmocka_unit_test(test_fragments),
	    cmocka_unit_test(test_arp_and_mpls),     cmocka_unit_test(test_other_linktypes),
	    cmocka_unit_test(test_every_truncation), cmocka_unit_test(test_malformed_ipv4),
	    cmocka_unit_test(test_key_canonical),    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_key_vlan),         cmocka_unit_test(test_track_burst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
