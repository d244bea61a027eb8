/*
 * test_steno: unit tests of the Stenographer query translation (query/steno.c).
 *
 * Each construct's exact libpcap text, which pcap_compile() must accept;
 * the precedence (equal, left to right) both as text and by running the
 * compiled filters on built packets; the time forms against a fixed now;
 * and errors: one line, the column where the fault lies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "tests/flowtrack/pktbuild.h"

#define NS 1000000000ull
#define NOW (1796212800ull * NS) /* 2026-12-02T12:00:00Z, checked with date(1) */

/* ---- helpers ----------------------------------------------------------------------- */

static int compiles(const char *filter)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	struct bpf_program prog;
	int ok = pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0;
	if (ok)
		pcap_freecode(&prog);
	else
		fprintf(stderr, "pcap_compile(\"%s\"): %s\n", filter, pcap_geterr(p));
	pcap_close(p);
	return ok;
}

/* Translates q and checks the filter text (which libpcap must accept) and the range. */
static void expect(const char *q, const char *filter, uint64_t from, uint64_t to)
{
	struct query_steno s;
	char err[QUERY_ERRBUF_SIZE];
	int r = query_steno_translate(q, strlen(q), NOW, &s, err);
	if (r)
		fprintf(stderr, "%s: %s\n", q, err);
	assert_int_equal(r, 0);
	assert_string_equal(s.filter, filter);
	assert_true(compiles(s.filter));
	assert_int_equal(s.from_ns, from);
	assert_int_equal(s.to_ns, to);
	query_steno_free(&s);
}

static void expect_filter(const char *q, const char *filter)
{
	expect(q, filter, 0, 0);
}

/* q is refused: one line holding "column COL" and `what`. */
static void expect_error(const char *q, size_t len, int col, const char *what)
{
	struct query_steno s = {(char *)"x", 1, 1};
	char err[QUERY_ERRBUF_SIZE], at[32];
	assert_int_equal(query_steno_translate(q, len, NOW, &s, err), QUERY_E_STENO);
	assert_null(s.filter);
	assert_int_equal(s.from_ns, 0);
	assert_null(strchr(err, '\n'));
	snprintf(at, sizeof(at), "column %d:", col);
	if (col && !strstr(err, at))
		fail_msg("'%s': expected \"%s\" in \"%s\"", q, at, err);
	if (!strstr(err, what))
		fail_msg("'%s': expected \"%s\" in \"%s\"", q, what, err);
}

/* ---- constructs -------------------------------------------------------------------- */

static void test_host(void **state)
{
	(void)state;
	expect_filter("host 8.8.8.8", "ip host 8.8.8.8");
	expect_filter("host 2001:DB8:0:0::1", "ip6 host 2001:db8::1");
	expect_filter("host ::ffff:1.2.3.4", "ip6 host ::ffff:1.2.3.4");
}

static void test_net(void **state)
{
	(void)state;
	expect_filter("net 1.0.0.0/8", "ip net 1.0.0.0/8");
	expect_filter("net 1.2.3.4/8", "ip net 1.0.0.0/8"); /* host bits cleared, as Steno does */
	expect_filter("net 10.1.2.3/32", "ip net 10.1.2.3/32");
	expect_filter("net 0.0.0.0/0", "ip net 0.0.0.0/0");
	expect_filter("net 1.2.3.4 mask 255.255.254.0", "ip net 1.2.2.0/23");
	expect_filter("net 1.2.3.4 mask 255.0.255.0", "ip net 1.0.3.0 mask 255.0.255.0");
	expect_filter("net 2001:db8:1::5/48", "ip6 net 2001:db8:1::/48");
	expect_filter("net 2001:db8::1 mask ffff:ffff::", "ip6 net 2001:db8::/32");
}

static void test_port_proto(void **state)
{
	(void)state;
	expect_filter("port 80", "(tcp port 80 or udp port 80)");
	expect_filter("port 0", "(tcp port 0 or udp port 0)");
	expect_filter("port 65535", "(tcp port 65535 or udp port 65535)");
	expect_filter("ip proto 6", "tcp");
	expect_filter("ip proto 17", "udp");
	expect_filter("ip proto 50", "(ip proto 50 or ip6 proto 50)");
	expect_filter("tcp", "tcp");
	expect_filter("udp", "udp");
	expect_filter("icmp", "(ip proto 1 or ip6 proto 1)");
}

/* ---- combining ---------------------------------------------------------------------- */

static void test_precedence_text(void **state)
{
	(void)state;
	expect_filter("host 1.2.3.4 and port 255",
	              "ip host 1.2.3.4 and (tcp port 255 or udp port 255)");
	expect_filter("tcp && port 22 || udp", "(tcp and (tcp port 22 or udp port 22)) or udp");
	/* equal precedence, left to right: ((udp and 514) or tcp) and 80 */
	expect_filter("udp and port 514 or tcp and port 80",
	              "((udp and (tcp port 514 or udp port 514)) or tcp) and "
	              "(tcp port 80 or udp port 80)");
	expect_filter("(udp and port 514) or (tcp and port 80)",
	              "(udp and (tcp port 514 or udp port 514)) or "
	              "(tcp and (tcp port 80 or udp port 80))");
	expect_filter("(port 80 or (host 1.2.3.4 and tcp) or port 7)",
	              "((tcp port 80 or udp port 80) or (ip host 1.2.3.4 and tcp)) or "
	              "(tcp port 7 or udp port 7)");
	expect_filter(" \t((tcp))\n", "tcp");
	expect_filter("tcp&&udp||icmp", "(tcp and udp) or (ip proto 1 or ip6 proto 1)");
}

/* Runs filter f on an Ethernet/IPv4 packet of proto with ports sp, dp. */
static int matches(const char *f, uint8_t proto, uint16_t sp, uint16_t dp)
{
	uint8_t pkt[128];
	size_t n = eth(pkt, 0x0800);
	size_t ip = n;
	n += ipv4(pkt + n, "10.0.0.1", "10.0.0.2", proto, 0, 0);
	n += ports(pkt + n, sp, dp, 0x10);
	pkt[ip + 2] = (uint8_t)((n - ip) >> 8);
	pkt[ip + 3] = (uint8_t)(n - ip);
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	struct bpf_program prog;
	assert_int_equal(pcap_compile(p, &prog, f, 1, PCAP_NETMASK_UNKNOWN), 0);
	struct pcap_pkthdr h = {.caplen = (bpf_u_int32)n, .len = (bpf_u_int32)n};
	int m = pcap_offline_filter(&prog, &h, pkt) != 0;
	pcap_freecode(&prog);
	pcap_close(p);
	return m;
}

/* The translated filter means what Stenographer's grammar says, not what a reader may guess. */
static void test_precedence_meaning(void **state)
{
	(void)state;
	struct query_steno s;
	char err[QUERY_ERRBUF_SIZE];
	const char *q = "udp and port 514 or tcp and port 80";
	assert_int_equal(query_steno_translate(q, strlen(q), NOW, &s, err), 0);
	assert_false(matches(s.filter, 17, 1000, 514)); /* udp 514 but not port 80 */
	assert_true(matches(s.filter, 6, 1000, 80));
	assert_false(matches(s.filter, 6, 1000, 81));
	assert_true(matches(s.filter, 17, 514, 80)); /* (udp and 514) and 80 */
	query_steno_free(&s);
	q = "(udp and port 514) or (tcp and port 80)";
	assert_int_equal(query_steno_translate(q, strlen(q), NOW, &s, err), 0);
	assert_true(matches(s.filter, 17, 1000, 514));
	assert_false(matches(s.filter, 17, 1000, 80));
	query_steno_free(&s);
}

/* ---- time ------------------------------------------------------------------------- */

static void test_time_forms(void **state)
{
	(void)state;
	uint64_t t = 1796203800ull * NS; /* 2026-12-02T10:30:00+01:00 = 09:30:00Z */
	expect("after 2026-12-02T10:30:00+01:00", "", t, 0);
	expect("before 2026-12-02T09:30:00Z", "", 0, t);
	expect("before 2026-12-02t09:30:00.5z", "", 0, t + NS / 2);
	expect("after 45m ago", "", NOW - 45 * 60 * NS, 0);
	expect("after 3h ago", "", NOW - 3 * 3600 * NS, 0);
	expect("before 2d ago", "", 0, NOW - 2 * 86400 * NS);
	expect("after 0m ago", "", NOW, 0);
	/* several: the narrowest range */
	expect("after 3h ago and after 2h ago and before 1h ago and before 30m ago", "",
	       NOW - 2 * 3600 * NS, NOW - 3600 * NS);
	/* time terms anywhere on the top "and" chain, in parentheses too */
	expect("host 1.2.3.4 and (after 1h ago and port 53)",
	       "ip host 1.2.3.4 and (tcp port 53 or udp port 53)", NOW - 3600 * NS, 0);
	expect("(port 1 or port 2) and after 1h ago",
	       "(tcp port 1 or udp port 1) or (tcp port 2 or udp port 2)", NOW - 3600 * NS, 0);
	/* left to right: the time is a conjunct of (port 1 or port 2) */
	expect("port 1 or port 2 and before 1h ago",
	       "(tcp port 1 or udp port 1) or (tcp port 2 or udp port 2)", 0, NOW - 3600 * NS);
}

static void test_time_errors(void **state)
{
	(void)state;
	const char *q = "(port 80 and after 2015-01-01T13:14:15Z) or host 1.2.3.4";
	expect_error(q, strlen(q), 14, "under 'or'");
	q = "port 80 or after 1h ago";
	expect_error(q, strlen(q), 12, "under 'or'");
	q = "after 1h ago and before 2h ago";
	expect_error(q, strlen(q), 18, "time range is empty");
	q = "after 2026-12-02T10:00:00Z and before 2026-12-02T10:00:00Z";
	expect_error(q, strlen(q), 32, "time range is empty");
	q = "after 2026-12-02T10:00:00";
	expect_error(q, strlen(q), 7, "RFC 3339");
	q = "after 2026-02-30T10:00:00Z";
	expect_error(q, strlen(q), 7, "RFC 3339");
	q = "after 1969-12-31T23:59:59Z";
	expect_error(q, strlen(q), 7, "out of range");
	q = "before 1970-01-01T00:00:00Z";
	expect_error(q, strlen(q), 1, "nothing is before 1970");
	q = "after 45m";
	expect_error(q, strlen(q), 10, "expected 'ago'");
	q = "after 1.5h ago";
	expect_error(q, strlen(q), 7, "RFC 3339");
	q = "after 45s ago";
	expect_error(q, strlen(q), 7, "RFC 3339");
	q = "after 99999999999999999d ago";
	expect_error(q, strlen(q), 7, "before 1970");
	q = "after";
	expect_error(q, strlen(q), 6, "expected a time");
}

/* ---- errors ------------------------------------------------------------------------- */

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *q;
		int col;
		const char *what;
	} cases[] = {
	    {"", 1, "unexpected end"},
	    {"   ", 4, "unexpected end"},
	    {"host 1.2.3", 6, "IPv4 or IPv6 address"},
	    {"host example.com", 6, "no host names"},
	    {"host", 5, "IPv4 or IPv6 address"},
	    {"net 1.2.3.4/44", 13, "prefix length (0..32)"},
	    {"net 2001:db8::/129", 16, "prefix length (0..128)"},
	    {"net 1.2.3.4", 12, "expected '/'"},
	    {"net 1.2.3.4 mask ffff::", 18, "family"},
	    {"net 2001:db8:: mask ffff:0:ffff::", 21, "contiguous"},
	    {"port 77777", 6, "port number (0..65535)"},
	    {"port 8 and port 77777", 17, "port number"},
	    {"port -1", 6, "port number"},
	    {"port 0x50", 6, "port number"},
	    {"ip proto 256", 10, "IP protocol number (0..255)"},
	    {"ip 6", 4, "expected 'proto'"},
	    {"protocol 6", 1, "expected host, net"},
	    {"last 4", 1, "expected host, net"},
	    {"HOST 1.2.3.4", 1, "expected host, net"},
	    {"hostx 1.2.3.4", 1, "expected host, net"},
	    {"tcp udp", 5, "expected 'and', 'or'"},
	    {"tcp and", 8, "unexpected end"},
	    {"tcp & udp", 5, "expected 'and', 'or'"},
	    {"(tcp", 5, "closing the '(' at column 1"},
	    {"tcp)", 4, "expected 'and', 'or'"},
	    {"()", 2, "expected host"},
	    {"vlan 10", 1, "not supported"},
	    {"mpls 10", 1, "not supported"},
	    {"not tcp", 1, "expected host"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].q, strlen(cases[i].q), cases[i].col, cases[i].what);
}

static void test_limits(void **state)
{
	(void)state;
	char deep[200];
	int n = QUERY_STENO_MAX_DEPTH;
	memset(deep, '(', (size_t)n);
	memcpy(deep + n, "tcp", 3);
	memset(deep + n + 3, ')', (size_t)n);
	deep[2 * n + 3] = '\0';
	expect_filter(deep, "tcp"); /* n deep is fine */
	char deeper[200];
	memset(deeper, '(', (size_t)n + 1);
	strcpy(deeper + n + 1, "tcp");
	expect_error(deeper, strlen(deeper), n + 1, "nested deeper than");

	char nul[] = "tcp\0 and udp";
	expect_error(nul, sizeof(nul) - 1, 4, "NUL byte");

	size_t big = QUERY_STENO_MAX_LEN + 1;
	char *q = malloc(big + 1);
	assert_non_null(q);
	memset(q, ' ', big);
	memcpy(q, "tcp", 3);
	q[big] = '\0';
	expect_error(q, big, 0, "longer than");
	/* the most terms allowed translate, and libpcap takes them; one more is refused */
	size_t len = 0;
	for (int i = 0; i < QUERY_STENO_MAX_TERMS; i++)
		len += (size_t)sprintf(q + len, "%sport %d", i ? " or " : "", i);
	struct query_steno s;
	char err[QUERY_ERRBUF_SIZE];
	assert_int_equal(query_steno_translate(q, len, NOW, &s, err), 0);
	assert_true(compiles(s.filter));
	query_steno_free(&s);
	len += (size_t)sprintf(q + len, " or tcp");
	expect_error(q, len, (int)len - 2, "more than 64 terms");
	free(q);
	/* a non-printable byte is shown as '?' in the one-line error */
	expect_error("host \x01\n2", 7, 6, "(at \"?\")");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host),
	    cmocka_unit_test(test_net),
	    cmocka_unit_test(test_port_proto),
	    cmocka_unit_test(test_precedence_text),
	    cmocka_unit_test(test_precedence_meaning),
	    cmocka_unit_test(test_time_forms),
	    cmocka_unit_test(test_time_errors),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
