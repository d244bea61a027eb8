/*
 * Triggers from outside (flowtrack/trigger.c) and the flow text they name
 * (ft_flow_key_parse): a flow is matched by its canonical VLAN-aware key in
 * either direction, a filter against a packet made from each flow's key; a
 * flow triggers once (one add event), ends by idle time (one expire event);
 * a trigger with `for` finds a later flow by its first packet; the poster
 * waits for the analyzer thread that applies it, and a closed hub refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "flowtrack/flowtrack.h"

#include "pktbuild.h"

static void test_key_parse(void **state)
{
	(void)state;
	struct ft_flow_key k, r;
	char err[256], buf[FT_KEYSTRLEN];
	assert_int_equal(
	    ft_flow_key_parse("tcp 10.0.0.2:51234 10.0.0.1:443 vlan 42/7", &k, err, sizeof(err)),
	    0);
	assert_string_equal(ft_flow_key_format(&k, buf, sizeof(buf)),
	                    "tcp 10.0.0.1:443 <-> 10.0.0.2:51234 vlan 42/7");
	/* the other direction, and what `flows` prints, are the same key */
	assert_int_equal(ft_flow_key_parse("TCP 10.0.0.1:443 <-> 10.0.0.2:51234 vlan 42/7", &r, err,
	                                   sizeof(err)),
	                 0);
	assert_memory_equal(&k, &r, sizeof(k));
	assert_int_equal(
	    ft_flow_key_parse("udp [2001:db8::2]:53 [2001:db8::1]:5353", &k, err, sizeof(err)), 0);
	assert_string_equal(ft_flow_key_format(&k, buf, sizeof(buf)),
	                    "udp [2001:db8::1]:5353 <-> [2001:db8::2]:53");
	assert_int_equal(ft_flow_key_parse("icmp 10.0.0.1 10.0.0.2", &k, err, sizeof(err)), 0);
	assert_int_equal(k.proto, 1);
	/* as ft_flow_key_format() writes a flow without ports: the same key */
	assert_string_equal(ft_flow_key_format(&k, buf, sizeof(buf)),
	                    "icmp 10.0.0.1:0 <-> 10.0.0.2:0");
	assert_int_equal(ft_flow_key_parse(buf, &r, err, sizeof(err)), 0);
	assert_memory_equal(&k, &r, sizeof(k));
	static const char *const bad[] = {
	    "tcp 10.0.0.1 10.0.0.2:80",
	    "tcp 10.0.0.1:80 10.0.0.2:65536",
	    "tcp 10.0.0.1:80 [2001:db8::1]:80",
	    "tcp 10.0.0.1:80 10.0.0.2:80 vlan 4096",
	    "tcp 10.0.0.1:80 10.0.0.2:80 vlan 0",
	    "tcp 10.0.0.1:80 10.0.0.2:80 vlan 1/",
	    "tcp 10.0.0.1:80",
	    "quic 10.0.0.1:80 10.0.0.2:80",
	    "icmp 10.0.0.1:1 10.0.0.2:2",
	    "tcp 10.0.0.1:80 10.0.0.2:80 tag 4",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(ft_flow_key_parse(bad[i], &k, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "expected"));
	}
}

/* What the hub reported, and the ring's window it is told. */
struct events {
	unsigned adds, expires;
	struct ft_flow_key last;
	uint16_t tag;
	uint64_t oldest, newest;
};

static void ev_add(void *arg, const struct ft_flow_key *key, uint16_t tag)
{
	struct events *e = arg;
	e->adds++;
	e->last = *key;
	e->tag = tag;
}

static void ev_expire(void *arg, const struct ft_flow_key *key, uint64_t last_seen_ns)
{
	struct events *e = arg;
	(void)last_seen_ns;
	e->expires++;
	e->last = *key;
}

static void ev_window(void *arg, uint64_t *oldest, uint64_t *newest)
{
	struct events *e = arg;
	*oldest = e->oldest;
	*newest = e->newest;
}

/* The analyzer: polls the hub until told to stop. */
struct analyzer {
	struct ft_trigger_hub *h;
	struct ft_table *t;
	atomic_int stop;
};

static void *analyzer_run(void *arg)
{
	struct analyzer *a = arg;
	while (!atomic_load(&a->stop)) {
		ft_trigger_poll(a->h, 0, a->t, 1000, 0);
		usleep(1000);
	}
	return NULL;
}

/* A flow with `packets` packets from first_ns. */
static void flow_add(struct ft_table *t, const char *text, uint64_t packets, uint64_t first_ns)
{
	struct ft_flow_key k;
	char err[256];
	int is_new;
	assert_int_equal(ft_flow_key_parse(text, &k, err, sizeof(err)), 0);
	struct ft_flow *f = ft_table_lookup(t, &k, ft_flow_key_hash(&k), &is_new);
	f->packets[0] = packets;
	f->first_ns = first_ns;
	f->last_ns = first_ns + 100;
}

/* Posts a trigger (a flow text, or a filter) and returns its result code. */
static uint16_t post_tag = 7; /* the tag of the next post */

static int post(struct ft_trigger_hub *h, const char *flow, const char *filter, uint64_t for_ns,
                struct ft_trigger_result *res)
{
	struct ft_trigger t = {
	    .has_key = flow != NULL, .filter = filter, .tag = post_tag, .for_ns = for_ns};
	char err[256];
	if (flow)
		assert_int_equal(ft_flow_key_parse(flow, &t.key, err, sizeof(err)), 0);
	return ft_trigger_post(h, &t, 1000, 2000000000ull, res, err, sizeof(err));
}

static void test_hub(void **state)
{
	(void)state;
	struct events ev = {.oldest = 150, .newest = 4150};
	struct ft_trigger_events e = {
	    .arg = &ev, .add = ev_add, .expire = ev_expire, .window = ev_window};
	struct analyzer a = {0};
	struct ft_trigger_result res;
	pthread_t th;
	assert_int_equal(ft_table_create(1024, 0, NULL, &a.t), 0);
	assert_int_equal(ft_trigger_hub_create(1, &e, &a.h), 0);
	flow_add(a.t, "tcp 10.1.0.1:40000 10.1.0.2:80 vlan 42", 37, 200);
	flow_add(a.t, "tcp 10.1.0.1:40000 10.1.0.2:80 vlan 43", 5, 100); /* first packet gone */
	assert_int_equal(pthread_create(&th, NULL, analyzer_run, &a), 0);

	/* VLAN 42, named the other way round: that tenant only */
	assert_int_equal(post(a.h, "tcp 10.1.0.2:80 10.1.0.1:40000 vlan 42", NULL, 0, &res), 0);
	assert_int_equal(res.flows, 1);
	assert_int_equal(res.packets, 37);
	assert_int_equal(res.lost_flows, 0);
	assert_int_equal(res.window_ns, 4000);
	assert_int_equal(res.match[0].key.vlan, 42);
	assert_int_equal(ev.adds, 1);
	assert_int_equal(ev.tag, 7);
	/* again: matched, no second rule */
	assert_int_equal(post(a.h, "tcp 10.1.0.1:40000 10.1.0.2:80 vlan 42", NULL, 0, &res), 0);
	assert_int_equal(res.flows, 1);
	assert_int_equal(res.match[0].again, 1);
	assert_int_equal(ev.adds, 1);
	/* a filter selects by the key's VLAN; the flow's first packet left the ring */
	assert_int_equal(post(a.h, NULL, "vlan 43 and tcp port 80", 0, &res), 0);
	assert_int_equal(res.flows, 1);
	assert_int_equal(res.match[0].key.vlan, 43);
	assert_int_equal(res.match[0].first_lost, 1);
	assert_int_equal(res.lost_flows, 1);
	assert_int_equal(ev.adds, 2);
	/* a Community ID has no VLAN: both tenants (triggered already) */
	char id[FT_COMMUNITY_ID_LEN];
	struct ft_flow_key k;
	char err[256];
	assert_int_equal(ft_flow_key_parse("tcp 10.1.0.1:40000 10.1.0.2:80", &k, err, sizeof(err)),
	                 0);
	assert_int_equal(ft_community_id(&k, 0, id), 0);
	struct ft_trigger tc = {.community_id = id};
	assert_int_equal(ft_trigger_post(a.h, &tc, 1000, 2000000000ull, &res, err, sizeof(err)), 0);
	assert_int_equal(res.flows, 2);
	assert_int_equal(res.match[0].again + res.match[1].again, 2);
	tc.community_id = "1:nope";
	assert_int_equal(ft_trigger_post(a.h, &tc, 1000, 2000000000ull, &res, err, sizeof(err)),
	                 -EINVAL);
	/* never seen, untagged or another VLAN: nothing */
	assert_int_equal(post(a.h, "tcp 10.1.0.1:40000 10.1.0.2:80", NULL, 0, &res), 0);
	assert_int_equal(res.flows, 0);
	assert_int_equal(post(a.h, "tcp 10.1.0.1:40000 10.1.0.2:80 vlan 44", NULL, 0, &res), 0);
	assert_int_equal(res.flows, 0);
	assert_int_equal(post(a.h, NULL, "tcp port", 0, &res), -EINVAL);
	/* with for: kept, then found by a new flow's first packet (the untagged flow, not the
	   one on VLAN 44 kept first) */
	post_tag = 9;
	assert_int_equal(
	    post(a.h, "tcp 10.9.0.2:1234 10.9.0.1:22 vlan 44", NULL, 60000000000ull, &res), 0);
	post_tag = 7;
	assert_int_equal(post(a.h, NULL, "host 10.9.0.1", 60000000000ull, &res), 0);
	assert_int_equal(res.flows, 0);
	atomic_store(&a.stop, 1);
	pthread_join(th, NULL);
	struct ft_trigger_stats st;
	ft_trigger_stats(a.h, &st);
	assert_int_equal(st.pending, 2);
	assert_int_equal(st.active, 2);
	assert_int_equal(st.too_late, 2); /* the VLAN 43 flow, by the filter and the ID */

	uint8_t b[100];
	size_t n = eth(b, 0x0800);
	n += ipv4(b + n, "10.9.0.2", "10.9.0.1", 6, 0x4000, 0);
	n += ports(b + n, 1234, 22, 0x02);
	struct ft_packet pkt;
	assert_int_equal(ft_parse(FT_DLT_EN10MB, b, (uint32_t)n, &pkt), 0);
	struct ft_packet_ctx c = {.ts_ns = 5000,
	                          .caplen = (uint32_t)n,
	                          .wirelen = (uint32_t)n,
	                          .linktype = FT_DLT_EN10MB,
	                          .data = b,
	                          .pkt = &pkt};
	uint8_t is_new;
	ft_table_track_burst(a.t, &c, 1, FT_KEY_BIDIRECTIONAL, 0, NULL, &is_new);
	assert_int_equal(is_new, 1);
	ft_trigger_new_flows(a.h, 0, a.t, &c, &is_new, 1);
	assert_int_equal(ev.adds, 3);
	assert_int_equal(ev.last.port_a, 22);
	assert_int_equal(ev.tag, 7);

	/* idle: the triggered flows end, one expire each; the pending one goes after its time */
	ft_trigger_poll(a.h, 0, a.t, 1000 + 60000000000ull + 1, 30000000000ull);
	assert_int_equal(ev.expires, 3);
	ft_trigger_stats(a.h, &st);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.pending, 0);

	/* closed: refused */
	ft_trigger_hub_close(a.h);
	assert_int_equal(post(a.h, NULL, "tcp", 0, &res), FT_E_STOPPING);
	ft_trigger_hub_destroy(a.h);
	ft_table_destroy(a.t);
}

/* Nobody polls: the poster gives up after its time, and the request is applied later. */
static void test_timeout(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_trigger_events e = {.arg = &ev, .add = ev_add, .expire = ev_expire};
	struct ft_trigger_hub *h;
	struct ft_table *t;
	struct ft_trigger_result res;
	struct ft_trigger tr = {.has_key = 0, .filter = "tcp"};
	char err[256];
	assert_int_equal(ft_table_create(1024, 0, NULL, &t), 0);
	assert_int_equal(ft_trigger_hub_create(2, &e, &h), 0);
	flow_add(t, "tcp 10.1.0.1:1 10.1.0.2:2", 3, 10);
	assert_int_equal(ft_trigger_post(h, &tr, 1000, 20000000ull, &res, err, sizeof(err)),
	                 FT_E_TIMEDOUT);
	ft_trigger_poll(h, 0, t, 1000, 0);
	assert_int_equal(ev.adds, 1);
	ft_trigger_hub_destroy(h); /* analyzer 1 never came: its inbox's request is freed here */
	ft_table_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_parse),
	    cmocka_unit_test(test_hub),
	    cmocka_unit_test(test_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
