/*
 * Lua modules through the engine: load-time errors with file:line, per-flow
 * state in the flow table (default state, changes kept between packets),
 * triggers and buildPacketFilter, checkExpiry's last-seen in ns and in
 * seconds, custom flow keys, checker passes of two analyzers merged
 * (default merge), two analyzer threads at once (every packet reported
 * once; also run under ThreadSanitizer), runtime errors counted with the
 * flow's state put back, and bursts that fill the table (evictions
 * mid-burst).
 * The module scripts are written to a temporary directory by each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flowtrack/flowtrack.h"

#include "pktbuild.h"

#define SEC 1000000000ull

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_lua.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes a script to DIR/name and returns its path (static buffer). */
static const char *script(const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* ---- events and packets (as test_modules.c) -------------------------------------------------- */

struct events {
	unsigned triggers, expires;
	uint64_t last_seen;
	char filter[256];
};

static void ev_trigger(void *arg, unsigned module, const struct ft_flow_key *key,
                       enum ft_key_kind kind, unsigned flags, const char *filter, uint64_t ts)
{
	struct events *e = arg;
	(void)module, (void)key, (void)kind, (void)flags, (void)ts;
	e->triggers++;
	snprintf(e->filter, sizeof(e->filter), "%s", filter ? filter : "");
}

static void ev_expire(void *arg, unsigned module, const struct ft_flow_key *key,
                      enum ft_key_kind kind, unsigned flags, uint64_t last_seen)
{
	struct events *e = arg;
	(void)module, (void)key, (void)kind, (void)flags;
	e->expires++;
	e->last_seen = last_seen;
}

struct pkt {
	uint8_t b[128];
	size_t n;
	struct ft_packet parsed;
};

static void tcp_pkt(struct pkt *p, const char *src, uint16_t sp, const char *dst, uint16_t dp,
                    uint8_t ttl)
{
	p->n = eth(p->b, 0x0800);
	size_t l3 = p->n;
	p->n += ipv4(p->b + p->n, src, dst, 6, 0, 0);
	p->b[l3 + 8] = ttl;
	p->n += ports(p->b + p->n, sp, dp, 0x10);
	assert_int_equal(ft_parse(FT_DLT_EN10MB, p->b, (uint32_t)p->n, &p->parsed), 0);
}

static struct ft_packet_ctx ctx_of(struct pkt *p, uint64_t ts)
{
	return (struct ft_packet_ctx){.ts_ns = ts,
	                              .caplen = (uint32_t)p->n,
	                              .wirelen = (uint32_t)p->n,
	                              .linktype = FT_DLT_EN10MB,
	                              .data = p->b,
	                              .pkt = &p->parsed};
}

static void feed(struct ft_engine *e, struct pkt *p, uint64_t ts)
{
	struct ft_packet_ctx c = ctx_of(p, ts);
	ft_engine_packets(e, &c, 1);
}

static struct ft_engine *engine_for(const char *spec, unsigned analyzers, struct ft_modset **ms,
                                    struct events *ev)
{
	char err[512];
	const char *specs[1] = {spec};
	struct ft_engine_events cb = {.arg = ev, .trigger = ev_trigger, .expire = ev_expire};
	struct ft_engine *e;
	int r = ft_modset_create(specs, 1, analyzers, ms, err, sizeof(err));
	if (r)
		print_error("%s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(ft_engine_create(*ms, 0, 1024, &cb, &e), 0);
	return e;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* load SCRIPT: ft_modset_create fails with rc and an error containing want */
static void load_fails(const char *name, const char *text, int rc, const char *want)
{
	char err[512] = "";
	struct ft_modset *ms;
	const char *specs[1] = {script(name, text)};
	assert_int_equal(ft_modset_create(specs, 1, 1, &ms, err, sizeof(err)), rc);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
}

#define CDEF "local ffi = require('ffi')\nffi.cdef[[ struct s { uint64_t n; }; ]]\n"

static void test_load_errors(void **state)
{
	(void)state;
	const struct ft_module *m;
	char err[256];
	assert_int_equal(ft_module_find("x.lua", &m, err, sizeof(err)), -EINVAL);
	load_fails("syntax.lua", "local m = {}\nm.x = = 1\nreturn m\n", -EINVAL, "syntax.lua:2:");
	load_fails("nohandler.lua", CDEF "local m = {stateType = 'struct s'}\nreturn m\n", -EINVAL,
	           "nohandler.lua:4: module.handlePacket is missing");
	load_fails("nostate.lua", "local m = {}\nfunction m.handlePacket() end\nreturn m\n",
	           -EINVAL, "nostate.lua:3: module.stateType is missing");
	load_fails("badtype.lua",
	           "return {stateType = 'struct undeclared', handlePacket = function() end}\n",
	           -EINVAL, "badtype.lua:1: module.stateType 'struct undeclared'");
	load_fails("raise.lua", "error('at load')\n", -EINVAL, "raise.lua:1: at load");
	load_fails("keynofilter.lua",
	           CDEF "return {stateType = 'struct s', handlePacket = function() end,\n"
	                "flowKeys = {'struct s'}, extractFlowKey = function() end}\n",
	           -EINVAL, "module.buildPacketFilter is missing");
	load_fails("bigkey.lua",
	           "local ffi = require('ffi')\nffi.cdef[[ struct k { uint8_t b[41]; }; ]]\n"
	           "return {stateType = 'struct k', handlePacket = function() end,\n"
	           "flowKeys = {'struct k'}, extractFlowKey = function() end,\n"
	           "buildPacketFilter = function() end}\n",
	           -EINVAL, "is 41 bytes, at most 40");
	load_fails("interval.lua",
	           CDEF "return {stateType = 'struct s', handlePacket = function() end, "
	                "checkInterval = -1}\n",
	           -EINVAL, "checkInterval");
	load_fails("ignorevlan.lua",
	           CDEF "return {stateType = 'struct s', handlePacket = function() end,\n"
	                "ignoreVlan = 'yes'}\n",
	           -EINVAL, "module.ignoreVlan is a string, must be a boolean");
	load_fails("ignorevlankeys.lua",
	           CDEF "return {stateType = 'struct s', handlePacket = function() end,\n"
	                "flowKeys = {'struct s'}, extractFlowKey = function() end,\n"
	                "buildPacketFilter = function() end, ignoreVlan = true}\n",
	           -EINVAL, "module.ignoreVlan is for the built-in key");
	struct ft_modset *ms;
	const char *absent[1] = {"/nonexistent/module.lua"};
	assert_int_equal(ft_modset_create(absent, 1, 1, &ms, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot open /nonexistent/module.lua"));
}

static const char *const stateful =
    "local ffi = require('ffi')\n"
    "local fs = require('flowscope')\n"
    "ffi.cdef[[ struct st { uint64_t last; uint32_t n; uint8_t ttl0; }; ]]\n"
    "local m = {stateType = 'struct st', defaultState = {n = 100}, checkInterval = 1}\n"
    "function m.handlePacket(key, s, pkt, first)\n"
    "  if first then assert(s.n == 100); s.ttl0 = pkt:ip4().ttl end\n"
    "  assert(pkt:tcp() and fs.ntohs(pkt:tcp().dport) == pkt.pkt.dport)\n"
    "  s.n = s.n + 1\n"
    "  s.last = pkt.ts_ns\n"
    "  return s.n == 103\n"
    "end\n"
    "function m.buildPacketFilter(key) return fs.key_filter(key) end\n"
    "function m.checkExpiry(key, s, cs)\n"
    "  if s.ttl0 == 1 then return true, tonumber(s.last) / 1e9 end\n"
    "  return s.n >= 104, s.last\n"
    "end\n"
    "return m\n";

static void test_state_trigger_expiry(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	struct ft_engine *e = engine_for(script("st.lua", stateful), 1, &ms, &ev);
	struct pkt a, b;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64);
	tcp_pkt(&b, "10.0.0.3", 2000, "10.0.0.2", 80, 1);
	feed(e, &a, 1 * SEC + 1);
	feed(e, &a, 1 * SEC + 2);
	assert_int_equal(ev.triggers, 0);
	feed(e, &a, 1 * SEC + 3); /* n: 100 -> 103 */
	assert_int_equal(ev.triggers, 1);
	assert_string_equal(ev.filter,
	                    "tcp and host 10.0.0.1 and host 10.0.0.2 and port 1000 and port 80");
	feed(e, &a, 1 * SEC + 123456789); /* n = 104: expires at the next pass */
	feed(e, &b, 1 * SEC + 987654321); /* ttl 1: expires, last-seen in seconds */
	feed(e, &b, 2 * SEC);             /* crosses the 2 s boundary: the pass runs first */
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.errors, 0);
	assert_int_equal(ev.expires, 1);                     /* only a had triggered */
	assert_int_equal(ev.last_seen, 1 * SEC + 123456789); /* exact: a uint64_t in ns */
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

static void test_custom_key(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	const char *text =
	    "local ffi = require('ffi')\n"
	    "ffi.cdef[[ struct pk { uint8_t lo[16], hi[16]; }; struct c { uint32_t n; }; ]]\n"
	    "local m = {stateType = 'struct c', flowKeys = {'struct pk'}}\n"
	    "function m.extractFlowKey(pkt, k)\n"
	    "  local p = pkt.pkt\n"
	    "  if p.family == 0 then return false end\n"
	    "  local a, b = p.src, p.dst\n"
	    "  if a[15] > b[15] then a, b = b, a end\n"
	    "  ffi.copy(k.lo, a, 16); ffi.copy(k.hi, b, 16)\n"
	    "  return true\n"
	    "end\n"
	    "function m.handlePacket(k, s) s.n = s.n + 1; return s.n == 3 end\n"
	    "function m.buildPacketFilter(k)\n"
	    "  local fs = require('flowscope')\n"
	    "  return 'host ' .. fs.addr(k.lo) .. ' and host ' .. fs.addr(k.hi)\n"
	    "end\n"
	    "return m\n";
	struct ft_engine *e = engine_for(script("key.lua", text), 1, &ms, &ev);
	struct pkt a, b, c;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64);
	tcp_pkt(&b, "10.0.0.2", 443, "10.0.0.1", 5000, 64); /* same host pair, other ports */
	tcp_pkt(&c, "10.0.0.3", 1000, "10.0.0.2", 80, 64);
	feed(e, &a, SEC);
	feed(e, &b, SEC);
	feed(e, &c, SEC);
	assert_int_equal(ev.triggers, 0);
	feed(e, &b, SEC);
	assert_int_equal(ev.triggers, 1);
	assert_string_equal(ev.filter, "host 10.0.0.1 and host 10.0.0.2");
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.flows, 2);
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

/* Reads the one line a finalizer wrote. */
static void read_result(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void test_merge_two_analyzers(void **state)
{
	(void)state;
	char out[128], spec[256], got[256];
	snprintf(out, sizeof(out), "%s/merge.out", dir);
	const char *text =
	    "local path = ...\n"
	    "local ffi = require('ffi')\n"
	    "ffi.cdef[[ struct e { uint8_t x; }; ]]\n"
	    "local m = {stateType = 'struct e', checkInterval = 1}\n"
	    "function m.handlePacket() return false end\n"
	    "function m.checkInitializer(cs) cs.flows = 0; cs.keys = {}; cs.sub = {n = 1} end\n"
	    "function m.checkExpiry(k, s, cs)\n"
	    "  cs.flows = cs.flows + 1; cs.keys[#cs.keys + 1] = tostring(k.port_a)\n"
	    "  return false\n"
	    "end\n"
	    "function m.checkFinalizer(cs, kept, purged)\n"
	    "  table.sort(cs.keys)\n"
	    "  local f = io.open(path, 'a')\n"
	    "  f:write(('flows=%d keys=%s sub=%d kept=%d\\n'):format(cs.flows, "
	    "table.concat(cs.keys, ','), cs.sub.n, kept))\n"
	    "  f:close()\n"
	    "end\n"
	    "return m\n";
	snprintf(spec, sizeof(spec), "%s:%s", script("merge.lua", text), out);
	struct ft_modset *ms;
	char err[512];
	const char *specs[1] = {spec};
	assert_int_equal(ft_modset_create(specs, 1, 2, &ms, err, sizeof(err)), 0);
	struct ft_engine *e0, *e1;
	assert_int_equal(ft_engine_create(ms, 0, 64, NULL, &e0), 0);
	assert_int_equal(ft_engine_create(ms, 1, 64, NULL, &e1), 0);
	struct pkt a, b, c;
	tcp_pkt(&a, "10.0.0.1", 1, "10.0.0.2", 2, 64);
	tcp_pkt(&b, "10.0.0.3", 3, "10.0.0.4", 4, 64);
	tcp_pkt(&c, "10.0.0.5", 5, "10.0.0.6", 6, 64);
	feed(e0, &a, SEC / 2);
	feed(e1, &b, SEC / 2);
	feed(e1, &c, SEC / 2);
	feed(e0, &a, 3 * SEC / 2);
	assert_int_equal(access(out, F_OK), -1); /* one pass of two: not reported yet */
	feed(e1, &b, 3 * SEC / 2);
	read_result(out, got, sizeof(got)); /* default merge: sums, arrays appended */
	assert_string_equal(got, "flows=3 keys=1,3,5 sub=2 kept=3");
	ft_engine_destroy(e0);
	ft_engine_destroy(e1);
	ft_modset_destroy(ms);
}

static void test_runtime_errors(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	/* every 3rd call raises after changing the state, which must be put back */
	const char *text = "local ffi = require('ffi')\n"
	                   "ffi.cdef[[ struct r { uint64_t n; }; ]]\n"
	                   "local m = {stateType = 'struct r', checkInterval = 1}\n"
	                   "local calls = 0\n"
	                   "function m.handlePacket(k, s)\n"
	                   "  calls = calls + 1; s.n = s.n + 1\n"
	                   "  if calls % 3 == 0 then error('boom') end\n"
	                   "  return s.n == 5\n"
	                   "end\n"
	                   "function m.checkExpiry(k, s) return false, s.n end\n"
	                   "return m\n";
	struct ft_engine *e = engine_for(script("err.lua", text), 1, &ms, &ev);
	struct pkt a;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64);
	struct ft_packet_ctx c[10];
	for (int i = 0; i < 10; i++)
		c[i] = ctx_of(&a, SEC + (uint64_t)i);
	ft_engine_packets(e, c, 10); /* one burst: calls 3, 6, 9 fail and are skipped */
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(st.errors, 3);
	assert_int_equal(st.packets, 10);
	assert_int_equal(ev.triggers, 1); /* s.n reached 5 (call 7) despite the failures */
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

/* ---- two analyzer threads at once ------------------------------------------------------------- */

struct feeder {
	struct ft_engine *e;
	unsigned id;
};

/* 20000 packets of 100 flows of its own over 10 s of capture time, in bursts of 20 */
static void *feeder_run(void *arg)
{
	struct feeder *f = arg;
	static _Thread_local struct pkt p[100];
	for (int i = 0; i < 100; i++) {
		char src[32];
		snprintf(src, sizeof(src), "10.%u.0.%d", f->id + 1, i + 1);
		tcp_pkt(&p[i], src, (uint16_t)(1000 + i), "10.200.0.1", 80, 64);
	}
	for (int i = 0; i < 20000; i += 20) {
		struct ft_packet_ctx c[20];
		for (int j = 0; j < 20; j++)
			c[j] = ctx_of(&p[(i + j) % 100], (uint64_t)(i + j) * (SEC / 2000));
		ft_engine_packets(f->e, c, 20);
	}
	ft_engine_finish(f->e);
	return NULL;
}

static void test_two_threads(void **state)
{
	(void)state;
	char out[128], spec[256];
	snprintf(out, sizeof(out), "%s/threads.out", dir);
	const char *text =
	    "local path = ...\n"
	    "local ffi = require('ffi')\n"
	    "ffi.cdef[[ struct w { uint64_t n; }; ]]\n"
	    "local m = {stateType = 'struct w', checkInterval = 1}\n"
	    "function m.handlePacket(k, s) s.n = s.n + 1; return false end\n"
	    "function m.checkInitializer(cs) cs.packets = 0 end\n"
	    "function m.checkExpiry(k, s, cs)\n"
	    "  cs.packets = cs.packets + tonumber(s.n); s.n = 0; return false\n"
	    "end\n"
	    "function m.checkFinalizer(cs)\n"
	    "  local f = io.open(path, 'a'); f:write(cs.packets or 0, '\\n'); f:close()\n"
	    "end\n"
	    "return m\n";
	snprintf(spec, sizeof(spec), "%s:%s", script("threads.lua", text), out);
	struct ft_modset *ms;
	char err[512];
	const char *specs[1] = {spec};
	assert_int_equal(ft_modset_create(specs, 1, 2, &ms, err, sizeof(err)), 0);
	struct feeder f[2];
	pthread_t t[2];
	for (unsigned i = 0; i < 2; i++) {
		f[i].id = i;
		assert_int_equal(ft_engine_create(ms, i, 1024, NULL, &f[i].e), 0);
	}
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, feeder_run, &f[i]), 0);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < 2; i++)
		ft_engine_destroy(f[i].e);
	ft_modset_destroy(ms); /* reports what is still pending */
	/* every packet is counted in exactly one report, whichever thread finished the interval */
	FILE *fp = fopen(out, "r");
	assert_non_null(fp);
	unsigned long long sum = 0, v;
	unsigned reports = 0;
	while (fscanf(fp, "%llu", &v) == 1)
		sum += v, reports++;
	fclose(fp);
	assert_int_equal(sum, 40000);
	assert_true(reports >= 10);
}

static void test_filter_too_long(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	const char *text =
	    "local ffi = require('ffi')\n"
	    "ffi.cdef[[ struct l { uint8_t x; }; ]]\n"
	    "return {stateType = 'struct l', handlePacket = function() return true end,\n"
	    "        buildPacketFilter = function() return ('x'):rep(5000) end}\n";
	struct ft_engine *e = engine_for(script("long.lua", text), 1, &ms, &ev);
	struct pkt a;
	tcp_pkt(&a, "10.0.0.1", 1000, "10.0.0.2", 80, 64);
	feed(e, &a, SEC);
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_int_equal(ev.triggers, 1); /* dumped by its key */
	assert_string_equal(ev.filter, "");
	assert_int_equal(st.errors, 1);
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

static void test_bursts_with_evictions(void **state)
{
	(void)state;
	struct events ev = {0};
	struct ft_modset *ms;
	/* the state remembers its flow's port: a state handed to the wrong flow triggers */
	const char *text = "local ffi = require('ffi')\n"
	                   "ffi.cdef[[ struct p { uint16_t port; uint8_t set; }; ]]\n"
	                   "local m = {stateType = 'struct p'}\n"
	                   "function m.handlePacket(k, s, pkt, first)\n"
	                   "  if first ~= (s.set == 0) then return true end\n"
	                   "  if s.set == 0 then s.set = 1; s.port = k.port_a end\n"
	                   "  return s.port ~= k.port_a\n"
	                   "end\n"
	                   "return m\n";
	struct ft_engine *e = engine_for(script("evict.lua", text), 1, &ms, &ev);
	static struct pkt p[64];
	for (int i = 0; i < 64; i++)
		tcp_pkt(&p[i], "10.0.0.1", (uint16_t)(1000 + i), "10.0.0.2", 80, 64);
	/* 5000 flows through a table of 1024: bursts of 32 with new flows and repeats */
	for (int round = 0; round < 160; round++) {
		struct ft_packet_ctx c[32];
		for (int j = 0; j < 32; j++) {
			struct pkt *q = &p[(j * 7) % 64];
			uint16_t port = (uint16_t)(1000 + (round * 31 + j) % 5000);
			q->b[34] = (uint8_t)(port >> 8), q->b[35] = (uint8_t)port;
			assert_int_equal(ft_parse(FT_DLT_EN10MB, q->b, (uint32_t)q->n, &q->parsed),
			                 0);
			c[j] = ctx_of(q, SEC + (uint64_t)(round * 32 + j));
		}
		ft_engine_packets(e, c, 32);
	}
	struct ft_engine_stats st;
	ft_engine_stats(e, 0, &st);
	assert_true(st.evicted > 1000);
	assert_int_equal(st.errors, 0);
	assert_int_equal(ev.triggers, 0);
	ft_engine_destroy(e);
	ft_modset_destroy(ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_state_trigger_expiry),
	    cmocka_unit_test(test_custom_key),      cmocka_unit_test(test_merge_two_analyzers),
	    cmocka_unit_test(test_runtime_errors),  cmocka_unit_test(test_two_threads),
	    cmocka_unit_test(test_filter_too_long), cmocka_unit_test(test_bursts_with_evictions),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
