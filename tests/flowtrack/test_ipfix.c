/*
 * The IPFIX exporter (flowtrack/ipfix.c): the bytes of a message (header,
 * template set, data set) against values computed by hand from RFC 7011 and
 * the IANA registry; sets of both families in one message; the template
 * refresh by messages and by time; messages within the MTU with sequence
 * numbers counting the records; and the flow table side: deltas at the
 * active timeout, the idle timeout (once; the flow stays in the table), the
 * end of the recording, an eviction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

#define SEC 1000000000ull

/* What send() received: every message, concatenated, and where each starts. */
struct sink {
	uint8_t buf[1 << 20];
	size_t len;
	size_t off[4096];
	unsigned n;
	unsigned records, templates;
};

static void sink_send(void *arg, const uint8_t *msg, size_t len, const struct ft_ipfix_sent *what)
{
	struct sink *s = arg;
	assert_true(s->len + len <= sizeof(s->buf) && s->n < 4096);
	s->off[s->n++] = s->len;
	memcpy(s->buf + s->len, msg, len);
	s->len += len;
	s->records += what->records;
	s->templates += what->templates;
}

static uint32_t rd16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) << 16 | rd16(p + 2);
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

static struct ft_ipfix *exporter(struct sink *s, uint32_t domain)
{
	struct ft_ipfix_config c = {.domain = domain, .send = sink_send, .arg = s};
	struct ft_ipfix *x;
	memset(s, 0, sizeof(*s));
	assert_int_equal(ft_ipfix_create(&c, &x), 0);
	return x;
}

static void v4(uint8_t a[16], const char *text)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, text, a + 12), 1);
}

static struct ft_ipfix_record sample_v4(void)
{
	struct ft_ipfix_record r = {.sport = 1234,
	                            .dport = 80,
	                            .proto = 6,
	                            .end_reason = FT_IPFIX_END_ACTIVE,
	                            .tcp_flags = 0x1b,
	                            .vlan = 100,
	                            .vlan_inner = 42,
	                            .packets = 3,
	                            .bytes = 1500,
	                            .start_ns = 1700000000 * SEC + SEC / 2,
	                            .end_ns = 1700000001 * SEC + SEC / 4};
	v4(r.src, "10.0.0.1");
	v4(r.dst, "10.0.0.2");
	return r;
}

/* The template of IPv4 flows, as RFC 7011 3.4.1 lays it out: (id, length) per element. */
#define TEMPLATE_V4_RECORD                                            \
	0x01, 0x00, 0x00, 0x0f,     /* template 256, 15 fields */     \
	    0x00, 0x08, 0x00, 0x04, /* sourceIPv4Address */           \
	    0x00, 0x0c, 0x00, 0x04, /* destinationIPv4Address */      \
	    0x00, 0x07, 0x00, 0x02, /* sourceTransportPort */         \
	    0x00, 0x0b, 0x00, 0x02, /* destinationTransportPort */    \
	    0x00, 0x04, 0x00, 0x01, /* protocolIdentifier */          \
	    0x00, 0x06, 0x00, 0x02, /* tcpControlBits */              \
	    0x00, 0x3a, 0x00, 0x02, /* vlanId (58) */                 \
	    0x00, 0xf5, 0x00, 0x02, /* dot1qCustomerVlanId (245) */   \
	    0x00, 0x01, 0x00, 0x08, /* octetDeltaCount */             \
	    0x00, 0x02, 0x00, 0x08, /* packetDeltaCount */            \
	    0x00, 0x9c, 0x00, 0x08, /* flowStartNanoseconds (156) */  \
	    0x00, 0x9d, 0x00, 0x08, /* flowEndNanoseconds (157) */    \
	    0x00, 0x98, 0x00, 0x08, /* flowStartMilliseconds (152) */ \
	    0x00, 0x99, 0x00, 0x08, /* flowEndMilliseconds (153) */   \
	    0x00, 0x88, 0x00, 0x01  /* flowEndReason (136) */

static const uint8_t first_message[] = {
    /* message header (RFC 7011 3.1) */
    0x00, 0x0a,             /* version 10 */
    0x00, 0xdc,             /* length 220 = 16 + 132 + 72 */
    0x6b, 0x49, 0xd2, 0x00, /* export time 1800000000 */
    0x00, 0x00, 0x00, 0x00, /* sequence number: no record before */
    0x00, 0x00, 0x00, 0x07, /* observation domain 7 */
    /* template set: id 2, length 132 = 4 + 2 x (4 + 15 x 4) */
    0x00, 0x02, 0x00, 0x84, TEMPLATE_V4_RECORD,
    /* the IPv6 template: the same but addresses 27 and 28, 16 bytes */
    0x01, 0x01, 0x00, 0x0f, 0x00, 0x1b, 0x00, 0x10, 0x00, 0x1c, 0x00, 0x10, 0x00, 0x07, 0x00, 0x02,
    0x00, 0x0b, 0x00, 0x02, 0x00, 0x04, 0x00, 0x01, 0x00, 0x06, 0x00, 0x02, 0x00, 0x3a, 0x00, 0x02,
    0x00, 0xf5, 0x00, 0x02, 0x00, 0x01, 0x00, 0x08, 0x00, 0x02, 0x00, 0x08, 0x00, 0x9c, 0x00, 0x08,
    0x00, 0x9d, 0x00, 0x08, 0x00, 0x98, 0x00, 0x08, 0x00, 0x99, 0x00, 0x08, 0x00, 0x88, 0x00, 0x01,
    0x01, 0x00, 0x00, 0x48,                         /* data set: template 256, length 72 = 4 + 68 */
    0x0a, 0x00, 0x00, 0x01,                         /* 10.0.0.1 */
    0x0a, 0x00, 0x00, 0x02,                         /* 10.0.0.2 */
    0x04, 0xd2,                                     /* 1234 */
    0x00, 0x50,                                     /* 80 */
    0x06,                                           /* TCP */
    0x00, 0x1b,                                     /* FIN SYN PSH ACK */
    0x00, 0x64,                                     /* VLAN 100 */
    0x00, 0x2a,                                     /* inner VLAN 42 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, /* 1500 bytes */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, /* 3 packets */
    /* NTP: 1700000000 + 2208988800 = 3908988800 s since 1900, then 0.5 x 2^32 */
    0xe8, 0xfe, 0x6f, 0x80, 0x80, 0x00, 0x00, 0x00, /* 1700000000.5 */
    0xe8, 0xfe, 0x6f, 0x81, 0x40, 0x00, 0x00, 0x00, /* 1700000001.25: 0.25 x 2^32 */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x69, 0xf4, /* 1700000000500 ms */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x6c, 0xe2, /* 1700000001250 ms */
    0x02,                                           /* active timeout */
};

static void test_first_message(void **state)
{
	(void)state;
	struct sink *s = malloc(sizeof(*s));
	struct ft_ipfix *x = exporter(s, 7);
	struct ft_ipfix_record r = sample_v4();
	ft_ipfix_add(x, &r, 1800000000 * SEC + 123);
	assert_int_equal(s->n, 0); /* nothing sent before the flush */
	ft_ipfix_flush(x, 0);
	assert_int_equal(s->n, 1);
	assert_int_equal(s->len, sizeof(first_message));
	for (size_t i = 0; i < sizeof(first_message); i++)
		if (s->buf[i] != first_message[i])
			fail_msg("byte %zu: 0x%02x, expected 0x%02x", i, s->buf[i],
			         first_message[i]);
	assert_int_equal(s->records, 1);
	assert_int_equal(s->templates, 2);
	assert_int_equal(ft_ipfix_record_len(4), 68);
	assert_int_equal(ft_ipfix_record_len(6), 92);
	ft_ipfix_flush(x, 0); /* nothing open: nothing sent */
	assert_int_equal(s->n, 1);
	ft_ipfix_destroy(x);
	free(s);
}

/* IPv4, IPv6, IPv4: three data sets, the sequence number of the next message 3. */
static void test_families(void **state)
{
	(void)state;
	struct sink *s = malloc(sizeof(*s));
	struct ft_ipfix *x = exporter(s, 1);
	struct ft_ipfix_record r4 = sample_v4(), r6 = sample_v4();
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", r6.src), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::2", r6.dst), 1);
	ft_ipfix_add(x, &r4, SEC);
	ft_ipfix_add(x, &r6, SEC);
	ft_ipfix_add(x, &r4, SEC);
	ft_ipfix_flush(x, 0);
	const uint8_t *p = s->buf + 16 + 132;
	assert_int_equal(rd16(p), 256);
	assert_int_equal(rd16(p + 2), 4 + 68);
	p += 72;
	assert_int_equal(rd16(p), 257);
	assert_int_equal(rd16(p + 2), 4 + 92);
	assert_memory_equal(p + 4, r6.src, 16);
	assert_memory_equal(p + 20, r6.dst, 16);
	p += 96;
	assert_int_equal(rd16(p), 256);
	assert_int_equal(rd16(s->buf + 2), 16 + 132 + 72 + 96 + 72);
	ft_ipfix_add(x, &r4, SEC);
	ft_ipfix_flush(x, 0);
	assert_int_equal(rd32(s->buf + s->off[1] + 8), 3);    /* sequence: records before it */
	assert_int_equal(rd16(s->buf + s->off[1] + 16), 256); /* no templates: a data set */
	ft_ipfix_destroy(x);
	free(s);
}

/* Templates again after FT_IPFIX_TEMPLATE_MSGS messages, and after FT_IPFIX_TEMPLATE_NS. */
static void test_template_refresh(void **state)
{
	(void)state;
	struct sink *s = malloc(sizeof(*s));
	struct ft_ipfix *x = exporter(s, 1);
	struct ft_ipfix_record r = sample_v4();
	for (unsigned i = 0; i <= FT_IPFIX_TEMPLATE_MSGS; i++) {
		ft_ipfix_add(x, &r, 100 * SEC);
		ft_ipfix_flush(x, 0);
	}
	assert_int_equal(s->n, FT_IPFIX_TEMPLATE_MSGS + 1);
	for (unsigned i = 0; i < s->n; i++)
		assert_int_equal(rd16(s->buf + s->off[i] + 16),
		                 i % FT_IPFIX_TEMPLATE_MSGS ? 256 : 2);
	ft_ipfix_add(x, &r, 100 * SEC + FT_IPFIX_TEMPLATE_NS - 1);
	ft_ipfix_flush(x, 0);
	assert_int_equal(rd16(s->buf + s->off[s->n - 1] + 16), 256);
	ft_ipfix_add(x, &r, 100 * SEC + FT_IPFIX_TEMPLATE_NS);
	ft_ipfix_flush(x, 0);
	assert_int_equal(rd16(s->buf + s->off[s->n - 1] + 16), 2);
	assert_int_equal(s->templates, 6);
	ft_ipfix_destroy(x);
	free(s);
}

/* 1000 records: every message within the MTU, the sequence numbers add up. */
static void test_mtu(void **state)
{
	(void)state;
	struct sink *s = malloc(sizeof(*s));
	struct ft_ipfix *x = exporter(s, 1);
	struct ft_ipfix_record r = sample_v4();
	for (unsigned i = 0; i < 1000; i++) {
		r.packets = i;
		ft_ipfix_add(x, &r, SEC);
	}
	ft_ipfix_flush(x, 0);
	assert_int_equal(s->records, 1000);
	uint32_t seq = 0;
	for (unsigned i = 0; i < s->n; i++) {
		const uint8_t *m = s->buf + s->off[i];
		size_t len = rd16(m + 2), end = i + 1 < s->n ? s->off[i + 1] : s->len;
		assert_int_equal(len, end - s->off[i]);
		assert_true(len <= FT_IPFIX_MTU);
		assert_int_equal(rd32(m + 8), seq);
		size_t set = i ? 16 : 16 + 132;
		assert_int_equal(rd16(m + set), 256);
		unsigned n = (rd16(m + set + 2) - 4) / 68;
		assert_int_equal(rd64(m + set + 4 + 27), seq); /* packets = record index */
		seq += n;
		if (i + 1 < s->n)
			assert_true(len + 68 > FT_IPFIX_MTU); /* full, but for the last */
	}
	assert_int_equal(seq, 1000);
	ft_ipfix_destroy(x);
	free(s);
}

/* ---- the flow table side ---- */

/* The data records sent, decoded (IPv4 only here): packets, bytes, end reason, ports. */
struct rec {
	uint16_t sport;
	uint64_t packets, bytes, start_ns, end_ns;
	uint8_t reason;
};

static uint64_t ntp_ns(const uint8_t *p)
{
	return (rd32(p) - 2208988800ull) * SEC + ((uint64_t)rd32(p + 4) * SEC >> 32);
}

static unsigned decode(const struct sink *s, struct rec *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->n; i++) {
		const uint8_t *m = s->buf + s->off[i], *end = m + rd16(m + 2);
		for (const uint8_t *set = m + 16; set < end; set += rd16(set + 2)) {
			if (rd16(set) != 256)
				continue;
			for (const uint8_t *r = set + 4; r + 68 <= set + rd16(set + 2) && n < max;
			     r += 68)
				out[n++] = (struct rec){.sport = (uint16_t)rd16(r + 8),
				                        .bytes = rd64(r + 19),
				                        .packets = rd64(r + 27),
				                        .start_ns = ntp_ns(r + 35),
				                        .end_ns = ntp_ns(r + 43),
				                        .reason = r[67]};
		}
	}
	return n;
}

static struct ft_flow *flow(struct ft_table *t, uint16_t port, uint64_t first_ns)
{
	struct ft_flow_key k = {.port_a = port, .port_b = 80, .proto = 6};
	int is_new;
	v4(k.a, "10.0.0.1");
	v4(k.b, "10.0.0.2");
	struct ft_flow *f = ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new);
	assert_int_equal(is_new, 1);
	f->first_ns = f->last_ns = first_ns;
	return f;
}

static void count(struct ft_flow *f, int dir, uint64_t packets, uint64_t bytes, uint64_t ts)
{
	f->packets[dir] += packets;
	f->bytes[dir] += bytes;
	f->last_ns = ts;
}

static void test_table(void **state)
{
	(void)state;
	struct sink *s = malloc(sizeof(*s));
	struct ft_ipfix_config c = {
	    .domain = 1, .active_ns = 10 * SEC, .idle_ns = 3 * SEC, .send = sink_send, .arg = s};
	struct ft_ipfix *x;
	struct ft_table *t;
	struct rec r[16] = {0};
	memset(s, 0, sizeof(*s));
	assert_int_equal(ft_ipfix_create(&c, &x), 0);
	assert_int_equal(ft_table_create(1024, FT_IPFIX_STATE_SIZE, NULL, &t), 0);
	uint64_t t0 = 1000 * SEC;
	struct ft_flow *a = flow(t, 1001, t0), *b = flow(t, 1002, t0), *k = flow(t, 1003, t0);
	count(a, 0, 5, 500, t0 + 3 * SEC); /* a: both ways, long */
	count(a, 1, 4, 4000, t0 + 3 * SEC);
	count(b, 0, 2, 200, t0 + 4 * SEC); /* b: goes idle */
	count(k, 0, 1, 60, t0 + SEC);      /* k: goes idle, triggered */
	k->triggered = 1;
	ft_ipfix_expire(x, t, t0 + 2 * SEC, SEC);
	assert_int_equal(s->n, 0);                /* nothing due */
	ft_ipfix_expire(x, t, t0 + 5 * SEC, SEC); /* k idle (4 s) */
	assert_int_equal(decode(s, r, 16), 1);
	assert_int_equal(r[0].sport, 1003);
	assert_int_equal(r[0].reason, FT_IPFIX_END_IDLE);
	assert_non_null(ft_table_find(t, &k->key, ft_flow_key_hash(&k->key))); /* it stays */
	count(a, 0, 1, 100, t0 + 9 * SEC);
	ft_ipfix_expire(x, t, t0 + 9 * SEC, SEC); /* b idle (7 s); a not yet 10 s */
	assert_int_equal(decode(s, r, 16), 2);
	assert_int_equal(r[1].sport, 1002);
	assert_int_equal(r[1].packets, 2);
	assert_non_null(ft_table_find(
	    t, &b->key,
	    ft_flow_key_hash(
	        &b->key))); /* it stays; exported once: the next scan below adds only a's two */
	count(a, 1, 1, 1000, t0 + 10 * SEC);
	ft_ipfix_expire(x, t, t0 + 10 * SEC, SEC); /* a active: both directions */
	assert_int_equal(decode(s, r, 16), 4);
	assert_int_equal(r[2].sport, 1001);
	assert_int_equal(r[2].packets, 6);
	assert_int_equal(r[2].bytes, 600);
	assert_int_equal(r[3].sport, 80);
	assert_int_equal(r[3].packets, 5);
	assert_int_equal(r[3].bytes, 5000);
	assert_int_equal(r[2].reason, FT_IPFIX_END_ACTIVE);
	assert_int_equal(r[2].start_ns, t0);
	assert_int_equal(r[2].end_ns, t0 + 10 * SEC);
	count(a, 0, 7, 700, t0 + 11 * SEC); /* then only a->b: one delta record at the end */
	ft_ipfix_finish(x, t, SEC);
	assert_int_equal(decode(s, r, 16), 5);
	assert_int_equal(r[4].packets, 7);
	assert_int_equal(r[4].bytes, 700);
	assert_int_equal(r[4].reason, FT_IPFIX_END_FORCED);
	assert_int_equal(r[4].start_ns, t0 + 10 * SEC); /* after the last exported packet */
	/* an eviction: what came since the last export */
	count(a, 0, 1, 50, t0 + 12 * SEC);
	ft_ipfix_flow_end(x, a, FT_IPFIX_END_RESOURCES, SEC);
	ft_ipfix_flush(x, 0);
	assert_int_equal(decode(s, r, 16), 6);
	assert_int_equal(r[5].packets, 1);
	assert_int_equal(r[5].reason, FT_IPFIX_END_RESOURCES);
	ft_table_destroy(t);
	ft_ipfix_destroy(x);
	free(s);
}

static void test_config(void **state)
{
	(void)state;
	struct ft_ipfix *x;
	struct ft_ipfix_config c = {.send = NULL};
	assert_int_equal(ft_ipfix_create(&c, &x), -EINVAL);
	c.send = sink_send;
	c.mtu = FT_IPFIX_MIN_MTU - 1;
	assert_int_equal(ft_ipfix_create(&c, &x), -EINVAL);
	c.mtu = 70000;
	assert_int_equal(ft_ipfix_create(&c, &x), -EINVAL);
	ft_ipfix_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_message),
	    cmocka_unit_test(test_families),
	    cmocka_unit_test(test_template_refresh),
	    cmocka_unit_test(test_mtu),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
