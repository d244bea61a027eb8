/*
 * Module and engine tests: loading (built-ins, arguments, errors, an
 * external .so), the checker (idle expiry at capture-time boundaries, a
 * resumed flow is a new flow, per-thread passes merged into one report),
 * key kinds, and the built-in modules' triggers (trigger, ttl, threshold),
 * with the trigger/expire events a recorder turns into dump rules; modules
 * that fail (handle_packet -1, a filter that does not compile).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

#include "pktbuild.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- events -------------------------------------------------------------------------------- */

struct events {
	unsigned triggers, expires;
	struct ft_flow_key last_key;
	uint64_t last_seen;
	char filter[256];
};

static void ev_trigger(void *arg, unsigned module, const struct ft_flow_key *key,
                       enum ft_key_kind kind, unsigned flags, const char *filter, uint64_t ts)
{
	struct events *e = arg;
	(void)module, (void)kind, (void)flags, (void)ts;
	e->triggers++;
	e->last_key = *key;
	snprintf(e->filter, sizeof(e->filter), "%s", filter ? filter : "");
}

static void ev_expire(void *arg, unsigned module, const struct ft_flow_key *key,
                      enum ft_key_kind kind, unsigned flags, uint64_t last_seen)
{
	struct events *e = arg;
	(void)module, (void)kind, (void)flags;
	e->expires++;
	e->last_key = *key;
	e->last_seen = last_seen;
}

/* ---- packets ------------------------------------------------------------------------------ */

struct pkt {
	uint8_t b[128];
	size_t n;
	struct ft_packet parsed;
};

/* A TCP packet src:sp -> dst:dp with the given TTL and flags. */
static void tcp_pkt(struct pkt *p, const char *src, uint16_t sp, const char *dst, uint16_t dp,
                    uint8_t ttl, uint8_t flags)
{
	p->n = eth(p->b, 0x0800);
	size_t l3 = p->n;
	p->n += ipv4(p->b + p->n, src, dst, 6, 0, 0);
	p->b[l3 + 8] = ttl;
	p->n += ports(p->b + p->n, sp, dp, flags);
	assert_int_equal(ft_parse(FT_DLT_EN10MB, p->b, (uint32_t)p->n, &p->parsed), 0);
}

static void feed(struct ft_engine *e, struct pkt *p, uint64_t ts)
{
	struct ft_packet_ctx c = {.ts_ns = ts,
	                          .caplen = (uint32_t)p->n,
	                          .wirelen = (uint32_t)p->n,
	                          .linktype = FT_DLT_EN10MB,
	                          .data = p->b,
	                          .pkt = &p->parsed};
	ft_engine_packet(e, &c);
}

static struct ft_engine *engine_for(const char *spec, struct ft_modset **ms, struct events *ev)
{
	char err[256];
	const char *specs[1] = {spec};
	struct ft_engine_events cb = {.arg = ev, .trigger = ev_trigger, .expire = ev_expire};
	struct ft_engine *e;
	int r = ft_modset_create(specs, 1, 1, ms, err, sizeof(err));
	if (r)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(ft_engine_create(*ms, 0, 1024, &cb, &e), 0);
	return e;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_find_and_errors(void **state)
{
	(void)state;
	const struct ft_module *m;
	struct ft_modset *ms;
	char err[256];
	assert_int_equal(ft_module_find("stats", &m, err, sizeof(err)), 0);
	assert_string_equal(m->name, "stats");
	assert_int_equal(ft_module_find("nosuch", &m, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no module 'nosuch'"));
	assert_int_equal(ft_module_find("/nonexistent/x.so", &m, err, sizeof(err)), -ENOENT);
	const char *bad_arg[] = {"threshold:bytes=lots"};
	assert_int_equal(ft_modset_create(bad_arg, 1, 1, &ms, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad argument 'bytes=lots'"));
	const char *no_limit[] = {"threshold"};
	assert_int_equal(ft_modset_create(no_limit, 1, 1, &ms, err, sizeof(err)), -EINVAL);
	const char *bad_bpf[] = {"trigger:tcp port eighty"};
	assert_int_equal(ft_modset_create(bad_bpf, 1, 1, &ms, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid filter"));
	const char *noargs[] = {"noop:idle=2s,interval=1s", "ttl", "stats:top=3"};
	assert_int_equal(ft_modset_create(noargs, 3, 2, &ms, err, sizeof(err)), 0);
	assert_int_equal(ft_modset_count(ms), 3);
	assert_string_equal(ft_modset_name(ms, 1), "ttl");
	ft_modset_destroy(ms);
}

static void test_idle_expiry_and_resume(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	struct ft_engine *e = engine_for("trigger:tcp[tcpflags] & tcp-rst != 0", &ms, &ev);
	struct pkt a, a_rst, b;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64, 0x02);
	tcp_pkt(&a_rst, "10.0.0.2", 80, "10.0.0.1", 1000, 64, 0x04);
	tcp_pkt(&b, "10.0.0.3", 2000, "10.0.0.2", 80, 64, 0x02);
	feed(e, &a, 1 * SEC);
	feed(e, &a_rst, 2 * SEC); /* the reply direction triggers the flow */
	assert_int_equal(ev.triggers, 1);
	feed(e, &a_rst, 3 * SEC); /* once per flow */
	assert_int_equal(ev.triggers, 1);
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.flows, 1);
	/* 31 s idle at the 35 s boundary (idle 30 s, interval 5 s): expired, last seen 3 s */
	feed(e, &b, 36 * SEC);
	assert_int_equal(ev.expires, 1);
	assert_int_equal(ev.last_seen, 3 * SEC);
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.flows, 1); /* b */
	/* the flow resumes: a new flow, which triggers again */
	feed(e, &a_rst, 37 * SEC);
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.flows, 2);
	assert_int_equal(ev.triggers, 2);
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

static void test_ttl_and_threshold(void **state)
{
	(void)state;
	struct events ev = {0}, ev2 = {0};
	struct ft_modset *ms, *ms2;
	struct ft_engine *e = engine_for("ttl", &ms, &ev);
	struct ft_engine *t = engine_for("threshold:packets=3", &ms2, &ev2);
	struct pkt p64, p63, back;
	tcp_pkt(&p64, "10.0.0.1", 1000, "10.0.0.2", 80, 64, 0x10);
	tcp_pkt(&p63, "10.0.0.1", 1000, "10.0.0.2", 80, 63, 0x10);
	tcp_pkt(&back, "10.0.0.2", 80, "10.0.0.1", 1000, 50, 0x10); /* other direction, own TTL */
	for (int i = 0; i < 3; i++) {
		feed(e, &p64, (uint64_t)(i + 1) * MS);
		feed(e, &back, (uint64_t)(i + 1) * MS + 1);
		feed(t, &p64, (uint64_t)(i + 1) * MS);
	}
	assert_int_equal(ev.triggers, 0);
	assert_int_equal(ev2.triggers, 0); /* 3 packets: not over 3 */
	feed(t, &back, 10 * MS);
	assert_int_equal(ev2.triggers, 1);
	feed(e, &p63, 10 * MS);
	assert_int_equal(ev.triggers, 1);
	char buf[FT_KEYSTRLEN];
	assert_string_equal(ft_flow_key_format(&ev.last_key, buf, sizeof(buf)),
	                    "tcp 10.0.0.1:1000 <-> 10.0.0.2:80");
	ft_engine_destroy(e);
	ft_engine_destroy(t);
	ft_modset_destroy(ms);
	ft_modset_destroy(ms2);
}

static void test_key_kinds(void **state)
{
	(void)state;
	struct pkt a, b;
	struct ft_flow_key k1, k2;
	int d1, d2;
	tcp_pkt(&a, "10.0.0.9", 1000, "10.0.0.2", 80, 64, 0);
	tcp_pkt(&b, "10.0.0.2", 80, "10.0.0.9", 1000, 64, 0);
	ft_flow_key_make(&a.parsed, FT_KEY_UNIDIRECTIONAL, 0, &k1, &d1);
	ft_flow_key_make(&b.parsed, FT_KEY_UNIDIRECTIONAL, 0, &k2, &d2);
	assert_memory_not_equal(&k1, &k2, sizeof(k1)); /* each direction its own flow */
	assert_int_equal(k1.port_a, 1000);
	ft_flow_key_make(&a.parsed, FT_KEY_IP_PAIR, 0, &k1, &d1);
	ft_flow_key_make(&b.parsed, FT_KEY_IP_PAIR, 0, &k2, &d2);
	assert_memory_equal(&k1, &k2, sizeof(k1)); /* one pair, no ports */
	assert_int_equal(k1.port_a + k1.port_b + k1.proto, 0);
	assert_int_not_equal(d1, d2);
}

/* A test module counting what its checker sees, to check merging across analyzers. */
struct count_check {
	uint64_t flows;
};

static unsigned finals;
static uint64_t final_flows, final_kept;

static int count_packet(void *i, struct ft_flow *f, const struct ft_packet_ctx *p, int first)
{
	(void)i, (void)f, (void)p, (void)first;
	return 0;
}

static void *count_init(void *i)
{
	(void)i;
	return calloc(1, sizeof(struct count_check));
}

static int count_expiry(void *i, void *c, struct ft_flow *f, uint64_t now, uint64_t *last)
{
	(void)i, (void)now;
	((struct count_check *)c)->flows++;
	*last = f->last_ns;
	return 0;
}

static void count_merge(void *i, void *into, void *from)
{
	(void)i;
	((struct count_check *)into)->flows += ((struct count_check *)from)->flows;
	free(from);
}

static void count_final(void *i, void *c, uint64_t kept, uint64_t purged)
{
	(void)i, (void)purged;
	finals++;
	final_flows = ((struct count_check *)c)->flows;
	final_kept = kept;
	free(c);
}

static const struct ft_module count_module = {
    .abi = FT_MODULE_ABI,
    .name = "count",
    .check_interval_ns = SEC,
    .handle_packet = count_packet,
    .check_init = count_init,
    .check_expiry = count_expiry,
    .check_merge = count_merge,
    .check_final = count_final,
};

static void test_merge_across_analyzers(void **state)
{
	(void)state;
	/* two engines (analyzers) of one set: each pass is merged into one report per interval */
	struct ft_modset *ms;
	char err[256];
	const struct ft_module *mods[] = {&count_module};
	assert_int_equal(ft_modset_create_modules(mods, NULL, 1, 2, &ms, err, sizeof(err)), 0);
	struct ft_engine *e0, *e1;
	assert_int_equal(ft_engine_create(ms, 0, 64, NULL, &e0), 0);
	assert_int_equal(ft_engine_create(ms, 1, 64, NULL, &e1), 0);
	struct pkt a, b, c;
	tcp_pkt(&a, "10.0.0.1", 1, "10.0.0.2", 2, 64, 0);
	tcp_pkt(&b, "10.0.0.3", 3, "10.0.0.4", 4, 64, 0);
	tcp_pkt(&c, "10.0.0.5", 5, "10.0.0.6", 6, 64, 0);
	feed(e0, &a, SEC / 2);
	feed(e1, &b, SEC / 2);
	feed(e1, &c, SEC / 2);
	feed(e0, &a, 3 * SEC / 2); /* crosses 1 s: e0's pass deposited, not reported yet */
	assert_int_equal(finals, 0);
	feed(e1, &b, 3 * SEC / 2); /* e1's pass: now both, one report with 3 flows */
	assert_int_equal(finals, 1);
	assert_int_equal(final_flows, 3);
	assert_int_equal(final_kept, 3);
	ft_engine_destroy(e0);
	ft_engine_destroy(e1);
	ft_modset_destroy(ms);
}

/* A module like count_module with a VLAN-blind key. */
static const struct ft_module blind_module = {
    .abi = FT_MODULE_ABI,
    .name = "blind",
    .key_flags = FT_KEY_NO_VLAN,
    .handle_packet = count_packet,
};

/* The same TCP packet behind the VLAN tags of one of three tenants (or none). */
static void tenant_pkt(struct pkt *p, uint16_t outer, uint16_t inner)
{
	p->n = eth(p->b, outer ? (inner ? 0x88a8 : 0x8100) : 0x0800);
	if (outer)
		p->n += vlan_tag(p->b + p->n, outer, inner ? 0x8100 : 0x0800);
	if (inner)
		p->n += vlan_tag(p->b + p->n, inner, 0x0800);
	p->n += ipv4(p->b + p->n, "10.1.0.1", "10.1.0.2", 6, 0, 0);
	p->n += ports(p->b + p->n, 40000, 80, 0x02);
	assert_int_equal(ft_parse(FT_DLT_EN10MB, p->b, (uint32_t)p->n, &p->parsed), 0);
}

/*
 * Modules key flows by both VLAN tags unless they ask for a VLAN-blind key;
 * a trigger reports the tenant's key; a library of another ABI is refused.
 */
static void test_vlan_module_keys(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms, *ms2;
	struct ft_engine *e = engine_for("trigger:vlan 300 and vlan 43", &ms, &ev);
	struct pkt t[4];
	tenant_pkt(&t[0], 42, 0);
	tenant_pkt(&t[1], 300, 42);
	tenant_pkt(&t[2], 300, 43);
	tenant_pkt(&t[3], 0, 0);
	char err[256];
	const struct ft_module *mods[] = {&blind_module};
	assert_int_equal(ft_modset_create_modules(mods, NULL, 1, 1, &ms2, err, sizeof(err)), 0);
	struct ft_engine *e2;
	assert_int_equal(ft_engine_create(ms2, 0, 64, NULL, &e2), 0);
	for (int i = 0; i < 4; i++) {
		feed(e, &t[i], SEC);
		feed(e2, &t[i], SEC);
	}
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.flows, 4);
	assert_int_equal(ev.triggers, 1);
	assert_int_equal(ev.last_key.vlan, 300);
	assert_int_equal(ev.last_key.vlan_inner, 43);
	ft_engine_stats(e2, 0, &st);
	assert_int_equal(st.flows, 1);
	ft_engine_destroy(e);
	ft_engine_destroy(e2);
	ft_modset_destroy(ms);
	ft_modset_destroy(ms2);
	struct ft_module old = blind_module;
	old.abi = 1;
	const struct ft_module *olds[] = {&old};
	assert_int_equal(ft_modset_create_modules(olds, NULL, 1, 1, &ms, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "module ABI 1, flowscope needs 2"));
}

static void test_external_module(void **state)
{
	(void)state;
	const char *path = getenv("EXAMPLE_MODULE");
	if (!path) {
		print_message("EXAMPLE_MODULE not set: skipped\n");
		return;
	}
	struct events ev = {0};
	struct ft_modset *ms;
	char spec[512];
	snprintf(spec, sizeof(spec), "%s:port=8080", path);
	struct ft_engine *e = engine_for(spec, &ms, &ev);
	struct pkt a, b;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64, 0x02);
	tcp_pkt(&b, "10.0.0.1", 1001, "10.0.0.2", 8080, 64, 0x02);
	feed(e, &a, SEC);
	assert_int_equal(ev.triggers, 0);
	feed(e, &b, SEC);
	assert_int_equal(ev.triggers, 1);
	assert_string_equal(ev.filter,
	                    "tcp and host 10.0.0.1 and host 10.0.0.2 and port 1001 and port 8080");
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

/* ---- misbehaving modules: handle_packet -1, a filter that does not compile ----------------- */

static int fail_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	(void)inst, (void)f, (void)p, (void)is_first;
	return -1;
}

static int trig_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	(void)inst, (void)f, (void)p, (void)is_first;
	return 1;
}

static int bad_filter(void *inst, const struct ft_flow *f, char *buf, size_t len)
{
	(void)inst, (void)f;
	snprintf(buf, len, "tcp and (((");
	return 1;
}

static int good_filter(void *inst, const struct ft_flow *f, char *buf, size_t len)
{
	(void)inst, (void)f;
	snprintf(buf, len, "tcp and port 80");
	return 1;
}

/* Feeds two packets of one flow to a module made of handle and filter; its stats in *st. */
static void run_faulty(int (*handle)(void *, struct ft_flow *, const struct ft_packet_ctx *, int),
                       int (*filter)(void *, const struct ft_flow *, char *, size_t),
                       struct events *ev, struct ft_engine_stats *st)
{
	const struct ft_module m = {.abi = FT_MODULE_ABI,
	                            .name = "faulty",
	                            .handle_packet = handle,
	                            .build_filter = filter};
	const struct ft_module *mods[] = {&m};
	struct ft_engine_events cb = {.arg = ev, .trigger = ev_trigger, .expire = ev_expire};
	struct ft_modset *ms;
	struct ft_engine *e;
	char err[256];
	assert_int_equal(ft_modset_create_modules(mods, NULL, 1, 1, &ms, err, sizeof(err)), 0);
	assert_int_equal(ft_engine_create(ms, 0, 1024, &cb, &e), 0);
	struct pkt a;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64, 0x02);
	feed(e, &a, SEC);
	feed(e, &a, SEC + 1);
	ft_engine_stats(e, 0, st);
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

static void test_faulty_modules(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_engine_stats st;
	run_faulty(fail_packet, NULL, &ev, &st); /* -1 is an error, not a trigger */
	assert_int_equal(ev.triggers, 0);
	assert_int_equal(st.triggers, 0);
	assert_int_equal(st.errors, 2);
	run_faulty(trig_packet, good_filter, &ev, &st);
	assert_int_equal(ev.triggers, 1);
	assert_string_equal(ev.filter, "tcp and port 80");
	assert_int_equal(st.bad_filters, 0);
	strcpy(ev.filter, "unset");
	run_faulty(trig_packet, bad_filter, &ev, &st); /* the flow goes by its key: no filter */
	assert_int_equal(ev.triggers, 2);
	assert_string_equal(ev.filter, "");
	assert_int_equal(st.triggers, 1);
	assert_int_equal(st.bad_filters, 1);
	assert_int_equal(st.errors, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_and_errors),
	    cmocka_unit_test(test_idle_expiry_and_resume),
	    cmocka_unit_test(test_ttl_and_threshold),
	    cmocka_unit_test(test_key_kinds),
	    cmocka_unit_test(test_merge_across_analyzers),
	    cmocka_unit_test(test_external_module),
	    cmocka_unit_test(test_faulty_modules),
	    cmocka_unit_test(test_vlan_module_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
