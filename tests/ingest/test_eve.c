/*
 * test_eve: unit tests of the detector-alert parsers and the --eve-filter
 * (ingest/eve.c).
 *
 * The alert lines of data/eve_alerts.tsv are real flows of the shared
 * captures (TCP over IPv4 and IPv6, UDP, ICMP, ICMPv6, one VLAN tag, QinQ),
 * each written in Suricata's documented EVE layout beside what tshark read
 * from the flow's first packet (make_eve_lines.sh): the parser must give back
 * exactly tshark's values.  Then the other event types (skipped), every kind
 * of bad line (one reason each), the string bounds, Zeek notices, and the
 * filter's grammar and meaning.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ingest/ingest.h"

#define ERRLEN 256

/* ---- helpers ----------------------------------------------------------------------- */

static int parse(const char *line, struct ingest_eve_alert *a, char *err)
{
	return ingest_eve_parse(line, strlen(line), a, err, ERRLEN);
}

/* The 16 bytes a flow key holds for a textual address (IPv4 mapped). */
static void key_addr(const char *s, uint8_t out[16])
{
	uint8_t v4[4];
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, v4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

/* Splits a tab-separated line in place into at most n fields (the others ""); returns the
 * count. */
static int split_tabs(char *line, char **f, int n)
{
	static char none[] = "";
	int k = 0;
	for (int i = 0; i < n; i++)
		f[i] = none;
	for (char *p = line; k < n; k++) {
		f[k] = p;
		p = strchr(p, '\t');
		if (!p)
			return k + 1;
		*p++ = '\0';
	}
	return k;
}

/* One line of data/eve_alerts.tsv: the EVE line must parse to tshark's values. */
static void check_tsv_line(char **f)
{
	struct ingest_eve_alert a;
	char err[ERRLEN];
	uint8_t src[16], dst[16];
	int r = parse(f[14], &a, err);
	if (r != 1)
		fprintf(stderr, "%s: %s\n", f[0], err);
	assert_int_equal(r, 1);
	assert_int_equal(a.source, INGEST_EVE_SURICATA);
	assert_int_equal(a.family, atoi(f[1]) == 6 ? AF_INET6 : AF_INET);
	key_addr(f[2], src);
	key_addr(f[4], dst);
	assert_memory_equal(a.src, src, 16);
	assert_memory_equal(a.dest, dst, 16);
	assert_int_equal(a.src_port, atoi(f[3]));
	assert_int_equal(a.dest_port, atoi(f[5]));
	assert_int_equal(a.proto, atoi(f[6]));
	assert_int_equal(a.vlan_known, 1);
	assert_int_equal(a.n_vlan, atoi(f[7]));
	assert_int_equal(a.vlan[0], atoi(f[8]));
	assert_int_equal(a.vlan[1], atoi(f[9]));
	assert_int_equal(a.icmp_type, atoi(f[10]));
	assert_int_equal(a.icmp_code, atoi(f[11]));
	assert_int_equal(a.ts_ns, strtoull(f[12], NULL, 10));
	assert_string_equal(a.community_id, strcmp(f[13], "-") ? f[13] : "");
	assert_true(a.has_flow_id && a.flow_id > 0);
	assert_true(a.has_sid && a.sid > 0);
	assert_true(a.has_severity && a.severity >= 1 && a.severity <= 3);
	assert_string_equal(a.category, "Potentially Bad Traffic");
	assert_true(strlen(a.signature) > 10);
}

/* ---- alert lines for flows of the shared captures ------------------------------------ */

static void test_tshark_flows(void **state)
{
	(void)state;
	FILE *in = fopen(EVE_DATA, "r");
	assert_non_null(in);
	char *line = NULL, *f[16] = {NULL};
	size_t cap = 0, n = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, in)) > 0) {
		if (line[0] == '#')
			continue;
		line[len - 1] = '\0';
		assert_int_equal(split_tabs(line, f, 15), 15);
		check_tsv_line(f);
		n++;
	}
	free(line);
	fclose(in);
	assert_int_equal(n, 7); /* tcp4 tcp6 udp4 icmp4 icmp6 vlan1 qinq */
}

#define HEAD "{\"timestamp\":\"2026-11-27T05:29:34.521251+0000\",\"flow_id\":1245789630547000,"
#define TUPLE                                                                                    \
	"\"src_ip\":\"10.99.1.10\",\"src_port\":34952,\"dest_ip\":\"10.99.1.80\",\"dest_port\":" \
	"80,"                                                                                    \
	"\"proto\":\"TCP\","
#define ALERT                                                                             \
	"\"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":2010935,\"rev\":2," \
	"\"signature\":\"ET TEST\",\"category\":\"Misc\",\"severity\":2}"
#define GOOD HEAD "\"event_type\":\"alert\"," TUPLE ALERT "}"

static void test_good_line_and_variants(void **state)
{
	(void)state;
	struct ingest_eve_alert a;
	char err[ERRLEN];
	assert_int_equal(parse(GOOD, &a, err), 1);
	assert_int_equal(a.ts_ns, 1795757374521251000ull);
	assert_int_equal(a.sid, 2010935);
	assert_int_equal(a.severity, 2);
	assert_int_equal(a.n_vlan, 0);
	assert_int_equal(a.icmp_type, -1);
	assert_string_equal(a.signature, "ET TEST");
	/* a trailing newline (as read from the file) is fine */
	assert_int_equal(parse(GOOD "\n", &a, err), 1);
	/* the same instant in other zone spellings */
	static const char *const stamps[] = {
	    "2026-11-27T06:29:34.521251+0100",    "2026-11-27T06:29:34.521251+01:00",
	    "2026-11-27T05:29:34.521251Z",        "2026-11-27T05:29:34.521251",
	    "2026-11-27T00:29:34.521251000-0500", "2026-11-27T05:29:34.5212519999+0000"};
	for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
		char line[1024];
		snprintf(line, sizeof(line),
		         "{\"timestamp\":\"%s\",\"event_type\":\"alert\"," TUPLE ALERT "}",
		         stamps[i]);
		assert_int_equal(parse(line, &a, err), 1);
		assert_int_equal(a.ts_ns, 1795757374521251000ull + (i == 5 ? 999 : 0));
		assert_int_equal(a.has_flow_id, 0);
	}
	/* protocol as a number string, a JSON number, lower case */
	const char *protos[][2] = {{"\"6\"", "6"},
	                           {"17", "17"},
	                           {"\"ipv6-icmp\"", "58"},
	                           {"\"sctp\"", "132"},
	                           {"\"GRE\"", "47"}};
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		char line[1024];
		snprintf(line, sizeof(line),
		         HEAD "\"event_type\":\"alert\",\"src_ip\":\"::1\",\"src_port\":1,"
		              "\"dest_ip\":\"::2\",\"dest_port\":2,\"proto\":%s," ALERT "}",
		         protos[i][0]);
		assert_int_equal(parse(line, &a, err), 1);
		assert_int_equal(a.proto, atoi(protos[i][1]));
		assert_int_equal(a.family, AF_INET6);
		/* ports only for the protocols a flow key keeps them for */
		assert_int_equal(a.src_port, a.proto == 58 || a.proto == 47 ? 0 : 1);
	}
}

static void test_community_id_alone(void **state)
{
	(void)state;
	struct ingest_eve_alert a;
	char err[ERRLEN];
	const char *line = HEAD "\"event_type\":\"alert\","
	                        "\"community_id\":\"1:8AgNY+DlOJHIzLpsE/kmhYTl44A=\"," ALERT "}";
	assert_int_equal(parse(line, &a, err), 1);
	assert_int_equal(a.family, AF_UNSPEC);
	assert_string_equal(a.community_id, "1:8AgNY+DlOJHIzLpsE/kmhYTl44A=");
}

static void test_other_events_skipped(void **state)
{
	(void)state;
	struct ingest_eve_alert a;
	char err[ERRLEN];
	static const char *const lines[] = {
	    HEAD "\"event_type\":\"flow\"," TUPLE "\"flow\":{\"pkts_toserver\":5}}",
	    HEAD "\"event_type\":\"dns\"," TUPLE
	         "\"dns\":{\"type\":\"query\",\"rrname\":\"a.test\"}}",
	    HEAD "\"event_type\":\"http\"," TUPLE "\"http\":{\"hostname\":\"x\"}}",
	    "{\"timestamp\":\"2026-11-27T05:29:34.521251+0000\",\"event_type\":\"stats\","
	    "\"stats\":{\"uptime\":8}}",
	    /* not an alert, so its other fields are not looked at */
	    "{\"event_type\":\"anomaly\",\"src_ip\":\"bogus\"}",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_int_equal(parse(lines[i], &a, err), 0);
}

/* Bad lines: each is refused with its reason. */
static void test_bad_lines(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
	    {"", "invalid JSON"},
	    {"not json at all", "invalid JSON"},
	    {"[1,2,3]", "not a JSON object"},
	    {"{\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\"", "invalid JSON"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE, "invalid JSON"},
	    {"{\"timestamp\":\"2026-11-27T05:29:34Z\"}", "missing event_type"},
	    {"{\"event_type\":7}", "bad event_type"},
	    {"{\"event_type\":\"alert\"," TUPLE ALERT "}", "missing timestamp"},
	    {HEAD "\"event_type\":\"alert\"," ALERT "}", "missing src_ip"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"proto\":\"TCP\"," ALERT "}",
	     "missing dest_ip"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"dest_ip\":\"10.0.0.2\"," ALERT
	          "}",
	     "missing proto"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"dest_ip\":\"10.0.0.2\","
	          "\"proto\":\"TCP\",\"dest_port\":80," ALERT "}",
	     "missing src_port"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.256\",\"src_port\":1,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":80,\"proto\":\"TCP\"," ALERT "}",
	     "bad src_ip"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":1,"
	          "\"dest_ip\":\"::1\",\"dest_port\":80,\"proto\":\"TCP\"," ALERT "}",
	     "different address families"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":10,\"dest_ip\":\"10.0.0.2\"," ALERT "}",
	     "bad src_ip: not a string"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":70000,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":80,\"proto\":\"TCP\"," ALERT "}",
	     "bad src_port"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":\"80\","
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":80,\"proto\":\"TCP\"," ALERT "}",
	     "bad src_port"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":1,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":-1,\"proto\":\"TCP\"," ALERT "}",
	     "bad dest_port"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":1,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":8.5,\"proto\":\"TCP\"," ALERT "}",
	     "bad dest_port"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE "\"proto\":\"TCP\"," ALERT "}", "invalid JSON"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":1,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":2,\"proto\":\"FOO\"," ALERT "}",
	     "bad proto"},
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":1,"
	          "\"dest_ip\":\"10.0.0.2\",\"dest_port\":2,\"proto\":\"256\"," ALERT "}",
	     "bad proto"},
	    {HEAD "\"event_type\":\"alert\",\"vlan\":[4096]," TUPLE ALERT "}", "bad vlan[0]"},
	    {HEAD "\"event_type\":\"alert\",\"vlan\":[100,\"42\"]," TUPLE ALERT "}", "bad vlan[1]"},
	    {HEAD "\"event_type\":\"alert\",\"vlan\":100," TUPLE ALERT "}",
	     "bad vlan: not an array"},
	    {HEAD "\"event_type\":\"alert\",\"icmp_type\":300," TUPLE ALERT "}", "bad icmp_type"},
	    {"{\"timestamp\":\"2026-13-01T00:00:00.000000+0000\",\"event_type\":\"alert\"," TUPLE
	         ALERT "}",
	     "bad timestamp"},
	    {"{\"timestamp\":\"2026-02-29T00:00:00.000000+0000\",\"event_type\":\"alert\"," TUPLE
	         ALERT "}",
	     "bad timestamp"},
	    {"{\"timestamp\":\"1969-12-31T23:59:59.000000+0000\",\"event_type\":\"alert\"," TUPLE
	         ALERT "}",
	     "bad timestamp"},
	    {"{\"timestamp\":\"yesterday\",\"event_type\":\"alert\"," TUPLE ALERT "}",
	     "bad timestamp"},
	    {"{\"timestamp\":\"2026-11-27T05:29:34.+0000\",\"event_type\":\"alert\"," TUPLE ALERT
	     "}",
	     "bad timestamp"},
	    {"{\"timestamp\":\"2026-11-27T05:29:34.5+2500\",\"event_type\":\"alert\"," TUPLE ALERT
	     "}",
	     "bad timestamp"},
	    {"{\"timestamp\":1795757374,\"event_type\":\"alert\"," TUPLE ALERT "}",
	     "bad timestamp: not a string"},
	    {HEAD "\"event_type\":\"alert\",\"community_id\":\"1:abc\"," TUPLE ALERT "}",
	     "bad community_id"},
	    {HEAD
	     "\"event_type\":\"alert\",\"community_id\":\"2:8AgNY+DlOJHIzLpsE/kmhYTl44A=\"," TUPLE
	         ALERT "}",
	     "bad community_id"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE "\"app_proto\":\"http\"}", "missing alert"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE "\"alert\":[]}", "bad alert: not an object"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE "\"alert\":{\"severity\":1}}",
	     "missing alert.signature_id"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE "\"alert\":{\"signature_id\":1}}",
	     "missing alert.severity"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE
	          "\"alert\":{\"signature_id\":4294967296,\"severity\":1}}",
	     "bad signature_id"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE
	          "\"alert\":{\"signature_id\":1,\"severity\":\"high\"}}",
	     "bad severity"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE
	          "\"alert\":{\"signature_id\":1,\"severity\":1,\"signature\":[\"x\"]}}",
	     "bad signature"},
	    /* huge numbers: beyond 64 bits jansson refuses the line, beyond 63 we do */
	    {"{\"timestamp\":\"2026-11-27T05:29:34.521251+0000\",\"flow_id\":"
	     "123456789012345678901234567890,\"event_type\":\"alert\"," TUPLE ALERT "}",
	     "invalid JSON"},
	    {"{\"timestamp\":\"2026-11-27T05:29:34.521251+0000\",\"flow_id\":-5,"
	     "\"event_type\":\"alert\"," TUPLE ALERT "}",
	     "bad flow_id"},
	    {HEAD "\"event_type\":\"alert\"," TUPLE
	          "\"alert\":{\"signature_id\":1e300,\"severity\":1}}",
	     "bad signature_id"},
	    /* duplicate keys would make the flow ambiguous */
	    {HEAD "\"event_type\":\"alert\",\"src_ip\":\"10.9.9.9\"," TUPLE ALERT "}",
	     "invalid JSON"},
	    /* non-UTF-8 bytes in a string */
	    {HEAD "\"event_type\":\"alert\"," TUPLE
	          "\"alert\":{\"signature_id\":1,\"severity\":1,\"signature\":\"caf\xe9 \xff\"}}",
	     "invalid JSON"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ingest_eve_alert a;
		char err[ERRLEN] = "";
		int r = parse(bad[i][0], &a, err);
		if (r != INGEST_E_MALFORMED || !strstr(err, bad[i][1]))
			fprintf(stderr, "bad[%zu]: got %d \"%s\", want \"%s\"\n", i, r, err,
			        bad[i][1]);
		assert_int_equal(r, INGEST_E_MALFORMED);
		assert_non_null(strstr(err, bad[i][1]));
	}
	/* a NUL inside the given length ends the JSON text: refused, never read past len */
	struct ingest_eve_alert a;
	char err[ERRLEN];
	assert_int_equal(ingest_eve_parse(GOOD "\0garbage", sizeof(GOOD) + 7, &a, err, ERRLEN),
	                 INGEST_E_MALFORMED);
	assert_int_equal(ingest_eve_parse(GOOD, sizeof(GOOD) - 10, &a, err, ERRLEN),
	                 INGEST_E_MALFORMED);
	assert_int_equal(ingest_eve_parse("{}", 2, &a, NULL, 0), INGEST_E_MALFORMED);
}

/* Long strings are cut to their bound at a character boundary. */
static void test_string_bounds(void **state)
{
	(void)state;
	char sig[1200], line[4096];
	size_t n = 0;
	while (n + 2 < 1000) { /* 2-byte characters: the last byte before each bound is a lead */
		sig[n++] = (char)0xc3;
		sig[n++] = (char)0xa9; /* é */
	}
	sig[n] = '\0';
	snprintf(line, sizeof(line),
	         HEAD "\"event_type\":\"alert\"," TUPLE
	              "\"alert\":{\"signature_id\":7,\"severity\":1,\"signature\":\"%s\","
	              "\"category\":\"%s\"}}",
	         sig, sig);
	struct ingest_eve_alert a;
	char err[ERRLEN];
	assert_int_equal(parse(line, &a, err), 1);
	size_t sl = strlen(a.signature), cl = strlen(a.category);
	assert_true(sl <= INGEST_EVE_SIGNATURE_MAX - 1 && sl >= INGEST_EVE_SIGNATURE_MAX - 2);
	assert_true(cl <= INGEST_EVE_CATEGORY_MAX - 1 && cl >= INGEST_EVE_CATEGORY_MAX - 2);
	assert_int_equal(sl, INGEST_EVE_SIGNATURE_MAX - 2); /* whole é's only */
	assert_int_equal(cl, INGEST_EVE_CATEGORY_MAX - 2);
	assert_memory_equal(a.signature, sig, sl);
}

/* ---- Zeek notice.log ----------------------------------------------------------------- */

static int zeek(const char *line, struct ingest_eve_alert *a, char *err)
{
	return ingest_zeek_notice_parse(line, strlen(line), a, err, ERRLEN);
}

#define UNKNOWN_NOTICE                                                                      \
	"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"," \
	"\"id.orig_p\":0,\"id.resp_p\":0,\"proto\":\"unknown_transport\""

static void test_zeek_notices(void **state)
{
	(void)state;
	struct ingest_eve_alert a;
	char err[ERRLEN];
	uint8_t src[16];
	assert_int_equal(
	    zeek("{\"ts\":1795757374.521251,\"uid\":\"CHhAvVGS1DHFjwGM9\","
	         "\"id.orig_h\":\"10.99.1.10\",\"id.orig_p\":34952,"
	         "\"id.resp_h\":\"10.99.1.80\",\"id.resp_p\":80,\"proto\":\"tcp\","
	         "\"note\":\"HTTP::SQL_Injection_Attacker\",\"msg\":\"An SQL injection "
	         "attacker was discovered!\",\"actions\":[\"Notice::ACTION_LOG\"],"
	         "\"suppress_for\":3600.0}",
	         &a, err),
	    1);
	assert_int_equal(a.source, INGEST_EVE_ZEEK);
	key_addr("10.99.1.10", src);
	assert_memory_equal(a.src, src, 16);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.src_port, 34952);
	assert_int_equal(a.dest_port, 80);
	assert_int_equal(a.proto, 6);
	assert_int_equal(a.ts_ns, 1795757374521251000ull);
	assert_int_equal(a.vlan_known, 0);
	assert_int_equal(a.has_sid, 0);
	assert_string_equal(
	    a.signature, "HTTP::SQL_Injection_Attacker: An SQL injection attacker was discovered!");
	/* ICMPv6: Zeek's ports are the type and code; nested id; ISO time */
	assert_int_equal(zeek("{\"ts\":\"2026-11-27T05:29:41.494684Z\",\"id\":{\"orig_h\":"
	                      "\"fd00:99:2::10\",\"orig_p\":128,\"resp_h\":\"fd00:99:2::53\","
	                      "\"resp_p\":0},\"proto\":\"icmp\",\"note\":\"Local::Ping\"}",
	                      &a, err),
	                 1);
	assert_int_equal(a.proto, 58);
	assert_int_equal(a.icmp_type, 128);
	assert_int_equal(a.src_port, 0);
	assert_int_equal(a.ts_ns, 1795757381494684000ull);
	assert_string_equal(a.signature, "Local::Ping");
	/* a notice about no flow (a scan summary): skipped */
	assert_int_equal(zeek("{\"ts\":1795757374.5,\"note\":\"Scan::Port_Scan\",\"msg\":\"x\","
	                      "\"src\":\"10.99.1.10\"}",
	                      &a, err),
	                 0);
	/* community_id alone */
	assert_int_equal(zeek("{\"ts\":1795757374.5,\"note\":\"X\",\"community_id\":"
	                      "\"1:8AgNY+DlOJHIzLpsE/kmhYTl44A=\"}",
	                      &a, err),
	                 1);
	assert_int_equal(a.family, AF_UNSPEC);
	/* a transport Zeek does not know: the community_id alone, or skipped without one */
	assert_int_equal(zeek(UNKNOWN_NOTICE "}", &a, err), 0);
	assert_int_equal(
	    zeek(UNKNOWN_NOTICE ",\"community_id\":\"1:8AgNY+DlOJHIzLpsE/kmhYTl44A=\"}", &a, err),
	    1);
	assert_int_equal(a.family, AF_UNSPEC);
	assert_int_equal(a.dest[15], 0);
	static const char *const bad[][2] = {
	    {"{\"ts\":1.5,\"msg\":\"x\"}", "missing note"},
	    {"{\"note\":\"X\"}", "missing ts"},
	    {"{\"ts\":-1,\"note\":\"X\"}", "bad ts"},
	    {"{\"ts\":\"soon\",\"note\":\"X\"}", "bad ts"},
	    {"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\"}", "bad id.orig_h"},
	    {"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"}",
	     "missing proto"},
	    {"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\","
	     "\"proto\":\"tcp\",\"id.orig_p\":1}",
	     "missing id.resp_p"},
	    {"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\","
	     "\"proto\":\"tcp\",\"id.orig_p\":1,\"id.resp_p\":65536}",
	     "bad id.orig_p"},
	    {"{\"ts\":1.5,\"note\":\"X\",\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\","
	     "\"proto\":\"gre\",\"id.orig_p\":1,\"id.resp_p\":2}",
	     "bad proto"},
	    {"{\"ts\":1.5,\"note\":\"X\"", "invalid JSON"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = zeek(bad[i][0], &a, err);
		if (r != INGEST_E_MALFORMED || !strstr(err, bad[i][1]))
			fprintf(stderr, "zeek bad[%zu]: got %d \"%s\"\n", i, r, err);
		assert_int_equal(r, INGEST_E_MALFORMED);
		assert_non_null(strstr(err, bad[i][1]));
	}
}

/* ---- --eve-filter -------------------------------------------------------------------- */

static struct ingest_eve_alert alert_of(uint32_t sid, unsigned severity)
{
	struct ingest_eve_alert a;
	memset(&a, 0, sizeof(a));
	a.source = INGEST_EVE_SURICATA;
	a.has_sid = a.has_severity = 1;
	a.sid = sid;
	a.severity = severity;
	return a;
}

static int passes(const char *text, uint32_t sid, unsigned severity)
{
	struct ingest_eve_filter *f = NULL;
	char err[ERRLEN];
	int r = ingest_eve_filter_parse(&f, text, err, ERRLEN);
	if (r)
		fprintf(stderr, "%s: %s\n", text, err);
	assert_int_equal(r, 0);
	struct ingest_eve_alert a = alert_of(sid, severity);
	int m = ingest_eve_filter_match(f, &a);
	ingest_eve_filter_free(f);
	return m;
}

static void test_filter(void **state)
{
	(void)state;
	assert_true(passes("sid=2010935,2010936", 2010936, 3));
	assert_false(passes("sid=2010935,2010936", 2010937, 3));
	assert_true(passes("severity<=2", 1, 2));
	assert_false(passes("severity<=2", 1, 3));
	assert_true(passes("severity<2", 1, 1));
	assert_false(passes("severity<2", 1, 2));
	assert_true(passes("severity>=2", 1, 2));
	assert_false(passes("severity>2", 1, 2));
	assert_true(passes("sid=2010935,2010936,severity<=2", 2010935, 1));
	assert_false(passes("sid=2010935,2010936,severity<=2", 2010935, 3));
	assert_true(passes(" sid = 1 , 5 - 9 , severity != 3 ", 7, 2));
	assert_false(passes("sid=1,5-9,severity!=3", 7, 3));
	assert_false(passes("sid!=2200000-2299999", 2200100, 3));
	assert_true(passes("sid!=2200000-2299999", 2010935, 3));
	assert_true(passes("sid=4294967295", 4294967295u, 1));
	/* no filter passes everything */
	struct ingest_eve_alert a = alert_of(1, 1);
	assert_true(ingest_eve_filter_match(NULL, &a));
	/* repeated texts add terms: all must hold; a bad text leaves the filter as it was */
	struct ingest_eve_filter *f = NULL;
	char err[ERRLEN];
	assert_int_equal(ingest_eve_filter_parse(&f, "sid=1-100", err, ERRLEN), 0);
	assert_int_equal(ingest_eve_filter_parse(&f, "severity=1", err, ERRLEN), 0);
	assert_int_equal(ingest_eve_filter_parse(&f, "severity=2,bogus", err, ERRLEN),
	                 INGEST_E_MALFORMED);
	a = alert_of(50, 1);
	assert_true(ingest_eve_filter_match(f, &a));
	a = alert_of(50, 2);
	assert_false(ingest_eve_filter_match(f, &a));
	a = alert_of(150, 1);
	assert_false(ingest_eve_filter_match(f, &a));
	/* a term on a field the record lacks does not hold (Zeek: no sid, no severity) */
	a.has_sid = a.has_severity = 0;
	assert_false(ingest_eve_filter_match(f, &a));
	ingest_eve_filter_free(f);
	static const char *const bad[][2] = {
	    {"", "expected sid or severity"},
	    {"sig=1", "expected sid or severity"},
	    {"sid", "expected =, !=, <, <=, > or >="},
	    {"sid=", "expected a number"},
	    {"sid=x", "expected a number"},
	    {"sid=4294967296", "expected a number 0..4294967295"},
	    {"severity=256", "expected a number 0..255"},
	    {"severity<1-2", "a range needs = or !="},
	    {"sid=9-1", "expected a range"},
	    {"sid=1,", "expected sid or severity"},
	    {"sid=1;severity=2", "expected , or the end"},
	    {"severity<=1,2", "expected sid or severity"},
	    {"sid=99999999999999999999999", "expected a number"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = NULL;
		int r = ingest_eve_filter_parse(&f, bad[i][0], err, ERRLEN);
		if (r != INGEST_E_MALFORMED || !strstr(err, bad[i][1]))
			fprintf(stderr, "filter bad[%zu] \"%s\": got %d \"%s\"\n", i, bad[i][0], r,
			        err);
		assert_int_equal(r, INGEST_E_MALFORMED);
		assert_non_null(strstr(err, bad[i][1]));
		assert_null(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tshark_flows),
	    cmocka_unit_test(test_good_line_and_variants),
	    cmocka_unit_test(test_community_id_alone),
	    cmocka_unit_test(test_other_events_skipped),
	    cmocka_unit_test(test_bad_lines),
	    cmocka_unit_test(test_string_bounds),
	    cmocka_unit_test(test_zeek_notices),
	    cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
