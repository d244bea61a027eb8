/*
 * Community ID v1 (flowtrack/community_id.c) against the specification's
 * published vectors: every tuple of the baseline JSON files
 * (corelight/community-id-spec baseline/baseline_deflt.json and
 * baseline_seed1.json: ICMP, ICMPv6, TCP over IPv4 and IPv6, UDP, SCTP,
 * RSVP), the tables of its baseline/README.md, and the one-way ICMP cases of
 * the reference implementation's tests (pycommunityid tests/communityid_test.py),
 * each with seed 0 and seed 1, through a parsed packet and, where a flow key
 * can say it (not ICMP), through the key in both directions.  Then the form
 * check ft_community_id_valid().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

/*
 * One vector: protocol, source, destination, source and destination port
 * (ICMP: type and code; -1: a protocol without ports), the ID with seed 0
 * and with seed 1.  The baseline JSON gives ICMP's port equivalents: where
 * the destination is the counterpart type, the code does not count and is 0 here.
 */
struct vector {
	uint8_t proto;
	const char *src, *dst;
	int sport, dport;
	const char *id0, *id1;
};

static const struct vector vectors[] = {
    /* baseline/baseline_deflt.json + baseline_seed1.json (pcaps/combined.pcap.gz) */
    {58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 0,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="},
    {58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 0,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="},
    {58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="},
    {58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8="},
    {58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 0,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="},
    {58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 0,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="},
    {58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 0,
     "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8="},
    {58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 0,
     "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc="},
    {1, "192.168.0.89", "192.168.0.1", 8, 0,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {1, "192.168.0.1", "192.168.0.89", 0, 0,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {1, "10.0.0.1", "10.0.0.2", 11, 0,
     "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20="},
    {6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
    {6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
    {132, "192.168.170.8", "192.168.170.56", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="},
    {132, "192.168.170.56", "192.168.170.8", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="},
    {6, "128.232.110.120", "66.35.250.204", 34855, 80,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    {6, "66.35.250.204", "128.232.110.120", 80, 34855,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    {17, "192.168.1.52", "8.8.8.8", 54585, 53,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {17, "8.8.8.8", "192.168.1.52", 53, 54585,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {46, "10.1.12.1", "10.1.12.2", -1, -1,
     "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="},
    {46, "10.1.12.2", "10.1.12.1", -1, -1, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
     "1:rYir8gphR31noO9iDRQmF/BteEI="}, /* baseline/README.md tables: default seed and seed=1 */
    {6, "1.2.3.4", "5.6.7.8", 1122, 3344,
     "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {6, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {17, "1.2.3.4", "5.6.7.8", 1122, 3344,
     "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
    {17, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
    {132, "1.2.3.4", "5.6.7.8", 1122, 3344,
     "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="},
    {132, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="},
    {1, "1.2.3.4", "5.6.7.8", 8, 0,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {1, "5.6.7.8", "1.2.3.4", 0, 0,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {1, "1.2.3.4", "5.6.7.8", 11, 0,
     "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="},
    {58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 128,
     0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {58, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", 129,
     0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 146,
     0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="},
    {46, "1.2.3.4", "5.6.7.8", -1, -1,
     "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="},
    {46, "5.6.7.8", "1.2.3.4", -1, -1,
     "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="},
    {46, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", -1,
     -1, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="},
    {46, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", -1,
     -1, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="},
    /* pycommunityid's tests: one-way ICMP keeps the packet's order (the
       higher address first here), type 0's code is ignored, TCP ports that
       must be compared as numbers (issue 3), a port-less protocol */
    {1, "192.168.0.89", "192.168.0.1", 20, 0,
     "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=", "1:lCXHHxavE1Vq3oX9NH5ladQg02o="},
    {1, "192.168.0.89", "192.168.0.1", 20, 1,
     "1:tz/fHIDUHs19NkixVVoOZywde+I=", "1:Ie3wmFyxiEyikbsbcO03d2nh+PM="},
    {1, "192.168.0.1", "192.168.0.89", 0, 20,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=", "1:OlOWx9psIbBFi7lOCw/4MhlKR9M="},
    {58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0,
     "1:/OGBt9BN1ofenrmSPWYicpij2Vc=", "1:Ij4ZxnC87/MXzhOjvH2vHu7LRmE="},
    {132, "192.168.170.8", "192.168.170.56", 7, 80,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {132, "192.168.170.56", "192.168.170.8", 80, 7,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {6, "10.0.0.1", "10.0.0.2", 10, 11569,
     "1:SXBGMX1lBOwhhoDrZynfROxnhnM=", "1:HmBRGR+fUyXF4t8WEtal7Y0gEAo="},
    {46, "10.1.24.4", "10.1.12.1", -1, -1,
     "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
    {46, "10.1.12.1", "10.1.24.4", -1, -1,
     "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
};

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

/* An address as ft_packet holds it: IPv6, or IPv4-mapped. */
static void addr16(const char *s, uint8_t out[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	memcpy(out, mapped, sizeof(mapped));
	if (inet_pton(AF_INET, s, out + 12) == 1)
		return;
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

/* The packet ft_parse() would give for the vector's first header bytes. */
static void vector_packet(const struct vector *v, struct ft_packet *p)
{
	memset(p, 0, sizeof(*p));
	p->flags = FT_PKT_PARSED | FT_PKT_IP;
	p->proto = v->proto;
	addr16(v->src, p->src);
	addr16(v->dst, p->dst);
	p->family = ft_addr_is_v4(p->src) ? 4 : 6;
	if (v->proto == 1 || v->proto == 58) {
		p->icmp_type = (uint8_t)v->sport;
		p->icmp_code = (uint8_t)v->dport;
	} else if (v->sport >= 0) {
		p->flags |= FT_PKT_L4;
		p->sport = (uint16_t)v->sport;
		p->dport = (uint16_t)v->dport;
	}
}

/* Asserts one ID, naming the vector when it differs. */
static void check_id(size_t i, const char *what, uint16_t seed, const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		print_error("vector %zu (%s -> %s, proto %u), %s, seed %u: %s, want %s\n", i,
		            vectors[i].src, vectors[i].dst, vectors[i].proto, what, seed, got,
		            want);
	assert_string_equal(got, want);
}

static void test_vectors_packet(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VECTORS; i++) {
		struct ft_packet p;
		char id[FT_COMMUNITY_ID_LEN];
		vector_packet(&vectors[i], &p);
		assert_int_equal(ft_community_id_packet(&p, 0, id), 0);
		check_id(i, "packet", 0, id, vectors[i].id0);
		assert_int_equal(ft_community_id_packet(&p, 1, id), 0);
		check_id(i, "packet", 1, id, vectors[i].id1);
		assert_true(ft_community_id_valid(id));
	}
}

/* The key of the vector's packet, canonical (as flow tables and the index hold it) and reversed. */
static void test_vectors_key(void **state)
{
	(void)state;
	size_t keyed = 0;
	for (size_t i = 0; i < N_VECTORS; i++) {
		if (vectors[i].proto == 1 || vectors[i].proto == 58)
			continue;
		struct ft_packet p;
		struct ft_flow_key k, r;
		char id[FT_COMMUNITY_ID_LEN];
		vector_packet(&vectors[i], &p);
		assert_int_equal(ft_flow_key_from_packet(&p, 0, &k, NULL), 0);
		r = k;
		memcpy(r.a, k.b, 16);
		memcpy(r.b, k.a, 16);
		r.port_a = k.port_b;
		r.port_b = k.port_a;
		for (int seed = 0; seed <= 1; seed++) {
			const char *want = seed ? vectors[i].id1 : vectors[i].id0;
			assert_int_equal(ft_community_id(&k, (uint16_t)seed, id), 0);
			check_id(i, "key", (uint16_t)seed, id, want);
			assert_int_equal(ft_community_id(&r, (uint16_t)seed, id), 0);
			check_id(i, "reversed key", (uint16_t)seed, id, want);
		}
		keyed++;
	}
	assert_true(keyed >= 20);
}

/* VLAN ids are not part of the ID; ICMP keys have no single one; ARP has none. */
static void test_key_limits(void **state)
{
	(void)state;
	struct ft_packet p;
	struct ft_flow_key k;
	char id[FT_COMMUNITY_ID_LEN];
	vector_packet(&vectors[N_VECTORS - 3], &p); /* TCP 10.0.0.1:10 -> 10.0.0.2:11569 */
	assert_int_equal(p.proto, 6);
	p.n_vlan = 2;
	p.vlan[0] = 300;
	p.vlan[1] = 42;
	assert_int_equal(ft_flow_key_from_packet(&p, 0, &k, NULL), 0);
	assert_int_equal(k.vlan, 300);
	assert_int_equal(ft_community_id(&k, 0, id), 0);
	assert_string_equal(id, "1:SXBGMX1lBOwhhoDrZynfROxnhnM=");

	vector_packet(&vectors[10], &p); /* ICMP echo */
	assert_int_equal(p.proto, 1);
	assert_int_equal(ft_flow_key_from_packet(&p, 0, &k, NULL), 0);
	assert_int_equal(ft_community_id(&k, 0, id), -ENOTSUP);
	p.flags |= FT_PKT_FRAG | FT_PKT_FRAG_LATER; /* no ICMP header in this fragment */
	assert_int_equal(ft_community_id_packet(&p, 0, id), -ENOENT);
	p.flags = FT_PKT_PARSED | FT_PKT_IP | FT_PKT_ARP;
	assert_int_equal(ft_community_id_packet(&p, 0, id), -ENOENT);
	memset(&p, 0, sizeof(p));
	assert_int_equal(ft_community_id_packet(&p, 0, id), -ENOENT);
}

static void test_valid(void **state)
{
	(void)state;
	static const char *const good[] = {"1:wCb3OG7yAFWelaUydu0D+125CLM=",
	                                   "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="};
	static const char *const bad[] = {
	    "",
	    "1:",
	    "2:wCb3OG7yAFWelaUydu0D+125CLM=",             /* another version */
	    "1:wCb3OG7yAFWelaUydu0D+125CLM",              /* no padding */
	    "1:wCb3OG7yAFWelaUydu0D+125CLM==",            /* too long */
	    "1:wCb3OG7yAFWelaUydu0D+125CL=",              /* 19 bytes */
	    "1:wCb3OG7yAFWelaUydu0D 125CLM=",             /* a space nettle's decoder would skip */
	    "1:wCb3OG7yAFWelaUydu0D-125CLM=",             /* base64url */
	    "1:c026f7386ef200559e95a53276ed03fb5db908b3", /* the spec's hex (no base64) form */
	    " 1:wCb3OG7yAFWelaUydu0D+125CLM=",
	    "1:wCb3OG7yAFWelaUydu0D+125CLM=\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(ft_community_id_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ft_community_id_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	assert_false(ft_community_id_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_packet),
	    cmocka_unit_test(test_vectors_key),
	    cmocka_unit_test(test_key_limits),
	    cmocka_unit_test(test_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
