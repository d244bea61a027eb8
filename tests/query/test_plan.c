/*
 * test_plan: unit tests of the query planner (query/plan.c).
 *
 * Every case asserts the exact plan a filter gives: either node by node
 * (op, term type, lo/hi bytes) or through its query_plan_format() rendering,
 * whose own mapping to nodes is tested node by node first.  The cases follow
 * the planner's one rule: a plan may be wider than the filter, never narrower,
 * so each ALL below is a place where narrowing would risk a wrong answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

/* ---- helpers ----------------------------------------------------------------------- */

static struct query_plan *build(const char *filter)
{
	struct query_plan *p = NULL;

	assert_int_equal(query_plan_build(filter, &p), 0);
	assert_non_null(p);
	return p;
}

/* Builds `filter` and checks its one-line rendering. */
static void expect_plan(const char *filter, const char *rendering)
{
	struct query_plan *p = build(filter);
	char buf[1024];

	query_plan_format(p, buf, sizeof(buf));
	if (strcmp(buf, rendering) != 0)
		print_error("filter \"%s\": plan \"%s\", expected \"%s\"\n", filter, buf,
		            rendering);
	assert_string_equal(buf, rendering);
	query_plan_free(p);
}

static void addr_bytes(const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out + 12) == 1) {
		out[10] = out[11] = 0xff;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

static void check_op(const struct query_plan *p, enum query_plan_op op)
{
	assert_non_null(p);
	assert_int_equal(p->op, op);
	if (op != QUERY_PLAN_AND && op != QUERY_PLAN_OR) {
		assert_null(p->left);
		assert_null(p->right);
	}
}

static void check_host(const struct query_plan *p, const char *lo, const char *hi)
{
	uint8_t l[16], h[16];

	addr_bytes(lo, l);
	addr_bytes(hi, h);
	check_op(p, QUERY_PLAN_TERM);
	assert_int_equal(p->type, ARCHIVE_TERM_HOST);
	assert_memory_equal(p->lo, l, 16);
	assert_memory_equal(p->hi, h, 16);
}

/* A PROTO (1 byte) or PORT/VLAN/ETHERTYPE (2 bytes, big-endian) term over [lo, hi]. */
static void check_num(const struct query_plan *p, enum archive_term_type type, unsigned lo,
                      unsigned hi)
{
	check_op(p, QUERY_PLAN_TERM);
	assert_int_equal(p->type, type);
	if (type == ARCHIVE_TERM_PROTO) {
		assert_int_equal(p->lo[0], lo);
		assert_int_equal(p->hi[0], hi);
		return;
	}
	assert_int_equal(p->lo[0], lo >> 8);
	assert_int_equal(p->lo[1], lo & 0xff);
	assert_int_equal(p->hi[0], hi >> 8);
	assert_int_equal(p->hi[1], hi & 0xff);
}

/* The children of a binary node, `first` being the one of term type `type` (either order). */
static void split_by_type(const struct query_plan *p, enum archive_term_type type,
                          const struct query_plan **first, const struct query_plan **second)
{
	bool left_first;

	assert_non_null(p->left);
	assert_non_null(p->right);
	left_first = p->left->op == QUERY_PLAN_TERM && p->left->type == type;

	*first = left_first ? p->left : p->right;
	*second = left_first ? p->right : p->left;
}

/* ---- hosts and nets ---------------------------------------------------------------- */

static void test_host_v4(void **state)
{
	struct query_plan *p = build("host 10.0.0.1");
	static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};

	(void)state;
	check_op(p, QUERY_PLAN_TERM);
	assert_int_equal(p->type, ARCHIVE_TERM_HOST);
	assert_memory_equal(p->lo, mapped, 16);
	assert_memory_equal(p->hi, mapped, 16);
	query_plan_free(p);
}

static void test_host_qualifiers(void **state)
{
	static const char *const filters[] = {
	    "src or dst host 10.0.0.1",
	    "src and dst host 10.0.0.1",
	    "dst or src host 10.0.0.1",
	    "src || dst host 10.0.0.1",
	    "dst host 10.0.0.1",
	    "ip src host 10.0.0.1",
	    "arp host 10.0.0.1",
	    "rarp dst host 10.0.0.1",
	    "src 10.0.0.1",
	    "ip dst 10.0.0.1",
	    "net 10.0.0.1",
	    "(host 10.0.0.1)",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		struct query_plan *p = build(filters[i]);

		check_host(p, "10.0.0.1", "10.0.0.1");
		query_plan_free(p);
	}
}

static void test_host_v6(void **state)
{
	struct query_plan *p = build("ip6 host fd00::1");

	(void)state;
	check_host(p, "fd00::1", "fd00::1");
	query_plan_free(p);
	p = build("host fd00::1/128");
	check_host(p, "fd00::1", "fd00::1");
	query_plan_free(p);
	p = build("host ::ffff:1.2.3.4"); /* the same bytes as IPv4 1.2.3.4 */
	check_host(p, "1.2.3.4", "1.2.3.4");
	query_plan_free(p);
}

static void test_host_not_numeric(void **state)
{
	(void)state;
	expect_plan("host example.com", "ALL");
	expect_plan("host 010.0.0.1", "ALL"); /* pcap reads leading zeros its own way */
	expect_plan("ether host 00:11:22:33:44:55", "ALL");
	expect_plan("ether src or dst host 00:11:22:33:44:55 and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("gateway router", "ALL");
}

static void test_mixed_families(void **state)
{
	struct query_plan *p = build("ip host 10.0.0.1 and ip6 host fd00::1");

	(void)state;
	check_op(p, QUERY_PLAN_AND);
	check_host(p->left, "10.0.0.1", "10.0.0.1");
	check_host(p->right, "fd00::1", "fd00::1");
	query_plan_free(p);
}

static void test_net_v4(void **state)
{
	struct query_plan *p = build("net 10.0.0.0/8");

	(void)state;
	check_host(p, "10.0.0.0", "10.255.255.255");
	query_plan_free(p);
	p = build("ip src net 192.168.1.0/24");
	check_host(p, "192.168.1.0", "192.168.1.255");
	query_plan_free(p);
	p = build("net 0.0.0.0/0");
	check_host(p, "0.0.0.0", "255.255.255.255");
	query_plan_free(p);
}

static void test_net_mask(void **state)
{
	struct query_plan *p = build("net 10.1.0.0 mask 255.255.0.0");

	(void)state;
	check_host(p, "10.1.0.0", "10.1.255.255");
	query_plan_free(p);
	/* A mask with holes: the range covers more than the set, never less. */
	p = build("net 10.0.0.0 mask 255.0.255.0");
	check_host(p, "10.0.0.0", "10.255.0.255");
	query_plan_free(p);
}

static void test_net_v6(void **state)
{
	struct query_plan *p = build("net fd00::/16");

	(void)state;
	check_host(p, "fd00::", "fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	query_plan_free(p);
	p = build("ip6 dst net 2001:db8::/32");
	check_host(p, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	query_plan_free(p);
}

static void test_net_partial(void **state)
{
	(void)state;
	expect_plan("net 10.1", "ALL"); /* classful rules */
	expect_plan("net 10.1/16", "ALL");
	expect_plan("net 10", "ALL");
}

/* ---- ports ------------------------------------------------------------------------- */

static void test_tcp_port(void **state)
{
	struct query_plan *p = build("tcp port 80");
	const struct query_plan *proto, *port;

	(void)state;
	check_op(p, QUERY_PLAN_AND);
	split_by_type(p, ARCHIVE_TERM_PROTO, &proto, &port);
	check_num(proto, ARCHIVE_TERM_PROTO, 6, 6);
	check_num(port, ARCHIVE_TERM_PORT, 80, 80);
	query_plan_free(p);
}

static void test_port_variants(void **state)
{
	struct query_plan *p = build("port 53");

	(void)state;
	check_num(p, ARCHIVE_TERM_PORT, 53, 53);
	query_plan_free(p);
	p = build("src port 0x50");
	check_num(p, ARCHIVE_TERM_PORT, 80, 80);
	query_plan_free(p);
	expect_plan("udp dst port 53", "(proto 17 AND port 53)");
	expect_plan("sctp src or dst port 5000", "(proto 132 AND port 5000)");
	expect_plan("port 65535", "port 65535");
}

static void test_port_names(void **state)
{
	(void)state;
	expect_plan("port http", "ALL"); /* a service name needs a lookup */
	expect_plan("tcp port ssh", "ALL");
	expect_plan("port 010", "ALL"); /* octal to pcap */
}

static void test_portrange(void **state)
{
	struct query_plan *p = build("portrange 1000-2000");
	const struct query_plan *proto, *port;

	(void)state;
	check_num(p, ARCHIVE_TERM_PORT, 1000, 2000);
	query_plan_free(p);
	p = build("udp src portrange 2000-1000"); /* pcap swaps a reversed range */
	check_op(p, QUERY_PLAN_AND);
	split_by_type(p, ARCHIVE_TERM_PROTO, &proto, &port);
	check_num(proto, ARCHIVE_TERM_PROTO, 17, 17);
	check_num(port, ARCHIVE_TERM_PORT, 1000, 2000);
	query_plan_free(p);
	expect_plan("portrange 80", "port 80");
	expect_plan("portrange ssh-telnet", "ALL");
}

/* ---- boolean structure -------------------------------------------------------------- */

static void test_or(void **state)
{
	struct query_plan *p = build("port 80 or port 443");

	(void)state;
	check_op(p, QUERY_PLAN_OR);
	check_num(p->left, ARCHIVE_TERM_PORT, 80, 80);
	check_num(p->right, ARCHIVE_TERM_PORT, 443, 443);
	query_plan_free(p);
	expect_plan("port 80 || port 443", "(port 80 OR port 443)");
}

static void test_and_not(void **state)
{
	(void)state;
	expect_plan("host 10.0.0.1 and not port 22", "host 10.0.0.1");
	expect_plan("host 10.0.0.1 && !port 22", "host 10.0.0.1");
	expect_plan("not port 22 and host 10.0.0.1", "host 10.0.0.1");
}

static void test_not(void **state)
{
	(void)state;
	expect_plan("not host 10.0.0.1", "ALL");
	expect_plan("! tcp", "ALL");
	expect_plan("!tcp", "ALL");
	expect_plan("not not tcp", "ALL");
	expect_plan("not (tcp and port 80)", "ALL");
	expect_plan("not tcp or udp", "ALL"); /* (not tcp) or udp */
}

/* pcap: and/or have one precedence and group to the left. */
static void test_precedence(void **state)
{
	struct query_plan *p = build("host 10.0.0.1 or host 10.0.0.2 and tcp");

	(void)state;
	check_op(p, QUERY_PLAN_AND);
	check_op(p->left, QUERY_PLAN_OR);
	check_host(p->left->left, "10.0.0.1", "10.0.0.1");
	check_host(p->left->right, "10.0.0.2", "10.0.0.2");
	check_num(p->right, ARCHIVE_TERM_PROTO, 6, 6);
	query_plan_free(p);
	expect_plan("tcp and port 80 or udp", "((proto 6 AND port 80) OR proto 17)");
	expect_plan("tcp or udp and port 53", "((proto 6 OR proto 17) AND port 53)");
}

static void test_parentheses(void **state)
{
	struct query_plan *p = build("host 10.0.0.1 or (host 10.0.0.2 and tcp)");

	(void)state;
	check_op(p, QUERY_PLAN_OR);
	check_host(p->left, "10.0.0.1", "10.0.0.1");
	check_op(p->right, QUERY_PLAN_AND);
	check_host(p->right->left, "10.0.0.2", "10.0.0.2");
	check_num(p->right->right, ARCHIVE_TERM_PROTO, 6, 6);
	query_plan_free(p);
	expect_plan("tcp and (port 80 or port 8080)", "(proto 6 AND (port 80 OR port 8080))");
	expect_plan("((((udp))))", "proto 17");
	expect_plan("(tcp or udp) and (port 53 or (host 10.0.0.1 and port 5353))",
	            "((proto 6 OR proto 17) AND (port 53 OR (host 10.0.0.1 AND port 5353)))");
}

/* A bare id after and/or inherits the qualifiers before it: not translated. */
static void test_bare_id(void **state)
{
	(void)state;
	expect_plan("host 1.2.3.4 or 5.6.7.8", "ALL");
	expect_plan("port 80 or 443", "ALL");
	expect_plan("tcp port 80 or 443", "ALL");
	expect_plan("host 1.2.3.4 and 5.6.7.8", "host 1.2.3.4");
	expect_plan("host 1.2.3.4 and not 5.6.7.8", "host 1.2.3.4");
	expect_plan("host 1.2.3.4 and (5.6.7.8 or 9.9.9.9)", "host 1.2.3.4");
	expect_plan("net 10.0.0.0/8 or 192.168.0.0/16", "ALL");
}

/* ---- relations ---------------------------------------------------------------------- */

static void test_relation_then_host(void **state)
{
	(void)state;
	expect_plan("tcp[tcpflags] & tcp-syn != 0 and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("tcp[13]&2!=0 and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("host 10.0.0.1 and tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "host 10.0.0.1");
	expect_plan("ip[8] < 5 and icmp", "proto 1");
}

static void test_relation_alone(void **state)
{
	(void)state;
	expect_plan("(tcp[13] & 2) != 0", "ALL");
	expect_plan("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "ALL");
	expect_plan("ip[2:2] = 0x1c", "ALL");
	expect_plan("icmp[icmptype] = icmp-echo", "ALL");
	expect_plan("ip[0] & 0xf != 5 or tcp", "ALL");
	expect_plan("len >= 5 * 2 + 1", "ALL");
}

/* A '(' opens either a boolean group or the left side of a comparison. */
static void test_relation_parens(void **state)
{
	(void)state;
	expect_plan("((tcp[13] & 2)) != 0 and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("(tcp[13] & 2) != 0 and (host 10.0.0.1 or host 10.0.0.2)",
	            "(host 10.0.0.1 OR host 10.0.0.2)");
	expect_plan("(len > 100) and udp", "proto 17");
	expect_plan("(tcp[13] & 2 != 0 or udp) and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("(ip[9]) - 11 = 6 and udp", "proto 17");
	expect_plan("(udp[0:2] | 1) << 1 > 0 and port 53", "port 53");
}

static void test_len_and_friends(void **state)
{
	(void)state;
	expect_plan("len > 100 and udp", "proto 17");
	expect_plan("greater 100 and udp", "proto 17");
	expect_plan("less 100 or udp", "ALL");
	expect_plan("inbound and tcp", "proto 6");
	expect_plan("ip multicast and udp", "proto 17");
	expect_plan("ether broadcast", "ALL");
}

/* ---- protocols, ethertypes, vlan ---------------------------------------------------- */

static void test_protocols(void **state)
{
	struct query_plan *p = build("icmp6");

	(void)state;
	check_num(p, ARCHIVE_TERM_PROTO, 58, 58);
	query_plan_free(p);
	expect_plan("icmp", "proto 1");
	expect_plan("udp", "proto 17");
	expect_plan("sctp", "proto 132");
	expect_plan("esp or ah", "(proto 50 OR proto 51)");
	expect_plan("pim", "proto 103");
}

static void test_ethertypes(void **state)
{
	struct query_plan *p = build("arp");

	(void)state;
	check_num(p, ARCHIVE_TERM_ETHERTYPE, 0x0806, 0x0806);
	query_plan_free(p);
	expect_plan("ip6", "ethertype 0x86dd");
	expect_plan("ip", "ethertype 0x0800");
	expect_plan("rarp", "ethertype 0x8035");
	expect_plan("ip and tcp", "(ethertype 0x0800 AND proto 6)");
}

static void test_proto_numbers(void **state)
{
	(void)state;
	expect_plan("ip proto 17", "proto 17");
	expect_plan("ip6 proto 58", "proto 58");
	expect_plan("proto 0x11", "proto 17");
	expect_plan("ip proto \\tcp", "proto 6");
	expect_plan("ip6 proto \\udp", "proto 17");
	expect_plan("proto \\ospf", "ALL"); /* not in our table: ALL */
	expect_plan("ip protochain 6", "ALL");
	expect_plan("ether proto 0x0806", "ALL");
}

/* pcap compares one byte with a protocol above 255: the primitive never matches. */
static void test_proto_none(void **state)
{
	(void)state;
	expect_plan("ip proto 300", "NONE");
	expect_plan("proto 300 or tcp", "proto 6");
	expect_plan("proto 300 and tcp", "NONE");
	expect_plan("(proto 300 and tcp) or udp", "proto 17");
}

static void test_vlan_and_udp(void **state)
{
	struct query_plan *p = build("vlan 100 and udp");

	(void)state;
	check_op(p, QUERY_PLAN_AND);
	check_num(p->left, ARCHIVE_TERM_VLAN, 100, 100);
	check_num(p->right, ARCHIVE_TERM_PROTO, 17, 17);
	query_plan_free(p);
	expect_plan("vlan 0x64", "vlan 100");
	expect_plan("vlan 4095", "vlan 4095");
	expect_plan("vlan 010", "ALL");
}

static void test_vlan_bare(void **state)
{
	(void)state;
	expect_plan("vlan", "ALL");
	expect_plan("vlan and host 10.0.0.1", "host 10.0.0.1");
	expect_plan("vlan and vlan 200 and tcp port 80", "(vlan 200 AND (proto 6 AND port 80))");
}

/* After "vlan", pcap reads every later primitive 4 bytes further on, in all packets. */
static void test_vlan_offset_shift(void **state)
{
	(void)state;
	expect_plan("vlan 100 or host 10.0.0.1", "ALL");
	expect_plan("host 10.0.0.1 or vlan 100", "(host 10.0.0.1 OR vlan 100)");
	expect_plan("not vlan and host 10.0.0.1", "ALL");
	/* The second vlan reads level 2 in packets the first one failed on. */
	expect_plan("(vlan 100 or vlan 200) and tcp", "ALL");
	expect_plan("(vlan 100 or vlan) and tcp", "ALL");
	expect_plan("vlan 100 and (host 10.0.0.1 or vlan 200 and tcp)",
	            "(vlan 100 AND (host 10.0.0.1 OR vlan 200))");
	/* pcap's well-known trap: the second group tests an inner tag, even untagged. */
	expect_plan("(vlan 100 and host 10.0.0.1) or (vlan 200 and host 10.0.0.2)", "ALL");
	expect_plan("vlan 100 and host 10.0.0.1 or host 10.0.0.2", "ALL");
	expect_plan("vlan and (host 10.0.0.1 or host 10.0.0.2)",
	            "(host 10.0.0.1 OR host 10.0.0.2)");
}

static void test_vlan_depth(void **state)
{
	(void)state;
	expect_plan("vlan 1 and vlan 2 and vlan 3 and vlan 4",
	            "(((vlan 1 AND vlan 2) AND vlan 3) AND vlan 4)");
	/* The index keeps the outer four ids only. */
	expect_plan("vlan and vlan and vlan and vlan and vlan 5 and udp", "proto 17");
}

static void test_offset_changers(void **state)
{
	(void)state;
	expect_plan("mpls and host 10.0.0.1", "ALL");
	expect_plan("mpls 42 and host 10.0.0.1", "ALL");
	expect_plan("pppoes and tcp", "ALL");
	expect_plan("pppoed or udp", "ALL");
	expect_plan("geneve and udp port 6081", "ALL");
	expect_plan("vlan and (mpls or udp)", "ALL");
	expect_plan("tcp and (udp or geneve)", "ALL");
}

/* ---- whole-filter fallbacks --------------------------------------------------------- */

static void test_empty(void **state)
{
	(void)state;
	expect_plan(NULL, "ALL");
	expect_plan("", "ALL");
	expect_plan(" \t\n ", "ALL");
}

/* Filters pcap rejects too; the planner still answers, and only with ALL. */
static void test_unfollowable(void **state)
{
	(void)state;
	expect_plan("host 10.0.0.1 and (", "ALL");
	expect_plan("host 10.0.0.1)", "ALL");
	expect_plan("(host 10.0.0.1", "ALL");
	expect_plan("and tcp", "ALL");
	expect_plan("tcp and", "ALL");
	expect_plan("tcp udp", "ALL");
	expect_plan("tcp and \"x\"", "ALL");
	expect_plan("()", "ALL");
}

/* Nothing indexable anywhere: one ALL node, not a tree of them. */
static void test_all_is_minimal(void **state)
{
	struct query_plan *p = build("(not tcp or len > 5) and ether host 00:11:22:33:44:55");

	(void)state;
	check_op(p, QUERY_PLAN_ALL);
	query_plan_free(p);
}

/* A long left-deep chain builds, renders truncated, and frees. */
static void test_long_chain(void **state)
{
	size_t n = 5000, len = 0;
	char *f = malloc(n * 16), buf[64];
	struct query_plan *p;

	(void)state;
	assert_non_null(f);
	for (size_t i = 1; i <= n; i++)
		len += (size_t)sprintf(f + len, "%sport %zu", i > 1 ? " or " : "", i);
	p = build(f);
	check_op(p, QUERY_PLAN_OR);
	check_num(p->right, ARCHIVE_TERM_PORT, (unsigned)n, (unsigned)n);
	query_plan_format(p, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	query_plan_free(p);
	free(f);
}

/* Nesting as deep as pcap's parser takes is parsed in linear time (brackets are linked). */
static void test_deep_nesting(void **state)
{
	size_t n = 9000;
	char *f = malloc(4 * n + 16);
	struct query_plan *p;

	(void)state;
	assert_non_null(f);
	memset(f, '(', n);
	strcpy(f + n, "tcp");
	memset(f + n + 3, ')', n);
	f[2 * n + 3] = '\0';
	p = build(f);
	check_num(p, ARCHIVE_TERM_PROTO, 6, 6);
	query_plan_free(p);
	for (size_t i = 0; i < n; i++)
		memcpy(f + 4 * i, "not ", 4);
	strcpy(f + 4 * n, "tcp");
	p = build(f);
	check_op(p, QUERY_PLAN_ALL);
	query_plan_free(p);
	free(f);
}

/* ---- formatting --------------------------------------------------------------------- */

static void test_format_terms(void **state)
{
	(void)state;
	expect_plan("host 10.0.0.1", "host 10.0.0.1");
	expect_plan("host fd00::1", "host fd00::1");
	expect_plan("net 10.0.0.0/8", "net 10.0.0.0/8");
	expect_plan("net fd00::/16", "net fd00::/16");
	expect_plan("net 10.0.0.0 mask 255.0.255.0", "host [10.0.0.0..10.255.0.255]");
	expect_plan("port 80", "port 80");
	expect_plan("portrange 1000-2000", "portrange 1000-2000");
	expect_plan("tcp", "proto 6");
	expect_plan("vlan 100", "vlan 100");
	expect_plan("arp", "ethertype 0x0806");
	expect_plan("tcp port 80", "(proto 6 AND port 80)");
	expect_plan("port 80 or port 443", "(port 80 OR port 443)");
}

/* Nodes the planner does not build itself still render. */
static void test_format_hand_built(void **state)
{
	struct query_plan pr = {.op = QUERY_PLAN_TERM, .type = ARCHIVE_TERM_PROTO};
	struct query_plan vl = {.op = QUERY_PLAN_TERM, .type = ARCHIVE_TERM_VLAN};
	struct query_plan h6 = {.op = QUERY_PLAN_TERM, .type = ARCHIVE_TERM_HOST};
	struct query_plan both = {.op = QUERY_PLAN_AND, .left = &pr, .right = &vl};
	char buf[256];

	(void)state;
	pr.lo[0] = 6;
	pr.hi[0] = 17;
	vl.lo[1] = 10;
	vl.hi[1] = 20;
	addr_bytes("fd00::", h6.lo);
	addr_bytes("fd00::1:ffff", h6.hi);
	assert_string_equal(query_plan_format(&both, buf, sizeof(buf)),
	                    "(proto [6..17] AND vlan [10..20])");
	assert_string_equal(query_plan_format(&h6, buf, sizeof(buf)), "net fd00::/111");
	addr_bytes("fd00::1", h6.lo);
	assert_string_equal(query_plan_format(&h6, buf, sizeof(buf)),
	                    "host [fd00::1..fd00::1:ffff]");
	assert_string_equal(query_plan_format(NULL, buf, sizeof(buf)), "(null)");
}

static void test_format_truncation(void **state)
{
	struct query_plan *p = build("(tcp port 80 or udp port 53) and host 10.0.0.1");
	const char *full = "(((proto 6 AND port 80) OR (proto 17 AND port 53)) AND host 10.0.0.1)";
	char buf[128];

	(void)state;
	assert_string_equal(query_plan_format(p, buf, sizeof(buf)), full);
	for (size_t len = 1; len <= strlen(full) + 1; len++) {
		memset(buf, 'X', sizeof(buf));
		assert_ptr_equal(query_plan_format(p, buf, len), buf);
		assert_int_equal(strlen(buf), len - 1);
		assert_memory_equal(buf, full, len - 1);
		assert_int_equal(buf[len], 'X'); /* nothing written past len */
	}
	buf[0] = 'X';
	assert_ptr_equal(query_plan_format(p, buf, 0), buf);
	assert_int_equal(buf[0], 'X');
	query_plan_free(p);
}

/* The plan as a ClickHouse condition on flow rows (query_plan_sql). */
static int sql_of(const char *filter, char *buf, size_t len)
{
	struct query_plan *p;
	assert_int_equal(query_plan_build(filter, &p), 0);
	int r = query_plan_sql(p, buf, len);
	query_plan_free(p);
	return r;
}

static void test_sql(void **state)
{
	(void)state;
	char b[2048];
	assert_int_equal(sql_of("host 10.0.0.1", b, sizeof(b)), 0);
	assert_string_equal(b,
	                    "(addr_a = toFixedString(unhex('00000000000000000000ffff0a000001'), 16)"
	                    " OR addr_b = toFixedString(unhex('00000000000000000000ffff0a000001'), "
	                    "16))");
	assert_int_equal(sql_of("tcp port 80", b, sizeof(b)), 0);
	assert_non_null(strstr(b, "proto = 6"));
	assert_non_null(strstr(b, "(port_a BETWEEN 80 AND 80 OR port_b BETWEEN 80 AND 80)"));
	assert_int_equal(sql_of("net 10.1.0.0/16 and vlan 7", b, sizeof(b)), 0);
	assert_non_null(
	    strstr(b, "addr_a BETWEEN toFixedString(unhex('00000000000000000000ffff0a010000'"));
	assert_non_null(strstr(b, "vlan BETWEEN 7 AND 7 OR vlan_inner BETWEEN 7 AND 7"));
	/* what rows cannot tell: packets of no flow, IPv6 extension headers, arbitrary bytes */
	assert_int_equal(sql_of("arp", b, sizeof(b)), 1);
	assert_int_equal(sql_of("host 10.0.0.1 or arp", b, sizeof(b)), 1);
	assert_int_equal(sql_of("ip6 proto 0", b, sizeof(b)), 1);
	assert_int_equal(sql_of("tcp[13] & 4 != 0", b, sizeof(b)), 1);
	assert_int_equal(sql_of("", b, sizeof(b)), 1);
	/* an and with something they cannot tell keeps the rest */
	assert_int_equal(sql_of("host 10.0.0.1 and tcp[13] & 4 != 0", b, sizeof(b)), 0);
	assert_non_null(strstr(b, "addr_a ="));
	assert_int_equal(sql_of("host 10.0.0.1", b, 40), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_v4),
	    cmocka_unit_test(test_host_qualifiers),
	    cmocka_unit_test(test_host_v6),
	    cmocka_unit_test(test_host_not_numeric),
	    cmocka_unit_test(test_mixed_families),
	    cmocka_unit_test(test_net_v4),
	    cmocka_unit_test(test_net_mask),
	    cmocka_unit_test(test_net_v6),
	    cmocka_unit_test(test_net_partial),
	    cmocka_unit_test(test_tcp_port),
	    cmocka_unit_test(test_port_variants),
	    cmocka_unit_test(test_port_names),
	    cmocka_unit_test(test_portrange),
	    cmocka_unit_test(test_or),
	    cmocka_unit_test(test_and_not),
	    cmocka_unit_test(test_not),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_parentheses),
	    cmocka_unit_test(test_bare_id),
	    cmocka_unit_test(test_relation_then_host),
	    cmocka_unit_test(test_relation_alone),
	    cmocka_unit_test(test_relation_parens),
	    cmocka_unit_test(test_len_and_friends),
	    cmocka_unit_test(test_protocols),
	    cmocka_unit_test(test_ethertypes),
	    cmocka_unit_test(test_proto_numbers),
	    cmocka_unit_test(test_proto_none),
	    cmocka_unit_test(test_vlan_and_udp),
	    cmocka_unit_test(test_vlan_bare),
	    cmocka_unit_test(test_vlan_offset_shift),
	    cmocka_unit_test(test_vlan_depth),
	    cmocka_unit_test(test_offset_changers),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_unfollowable),
	    cmocka_unit_test(test_all_is_minimal),
	    cmocka_unit_test(test_long_chain),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_format_terms),
	    cmocka_unit_test(test_format_hand_built),
	    cmocka_unit_test(test_format_truncation),
	    cmocka_unit_test(test_sql),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
