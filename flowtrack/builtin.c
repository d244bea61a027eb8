/*
 * The built-in modules: noop, stats, ttl, trigger, threshold.
 *
 * Arguments come after the name as "key=value,key=value" (durations such as
 * 30s, counts such as 10M, read by units.c's strict parsers, as on the
 * command line: "inf", "1e30" or "-1" is an error naming the argument);
 * `trigger` takes a whole BPF expression instead.
 * Every module expires a flow idle for `idle` (default 30 s of capture time)
 * and runs its checker every `interval` (default 5 s).
 *
 *   noop               flow tracking only (the benchmark's upper bound)
 *   stats[:top=N,idle=D,interval=D]
 *                      every interval, the top N flows by bit rate over the
 *                      interval, then totals, on stdout (the reference's
 *                      liveStatistician format)
 *   ttl[:idle=D]       triggers when a packet's TTL / hop limit differs from
 *                      the first one seen in that direction of the flow
 *   trigger:BPF        triggers flows with a packet matching the expression
 *   threshold:bytes=N,packets=N,rate=BITS/s[,idle=D]
 *                      triggers flows over N wire bytes or N packets (both
 *                      directions), or faster than the rate over any 1 s
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowtrack/flowtrack.h"
#include "qq/qq.h"

#define SEC 1000000000ull
#define STATS_TOP_MAX 100 /* stats: top=N at most */

/* ---- arguments ------------------------------------------------------------------------ */

struct common_args {
	uint64_t idle_ns;
	uint64_t interval_ns;
	uint64_t top;
	uint64_t bytes, packets, rate_bps;
};

enum arg_kind { ARG_DURATION, ARG_COUNT };

/* The arguments every built-in module takes, each parsed by flowtrack's strict parsers. */
static const struct arg_spec {
	const char *key;
	enum arg_kind kind;
	size_t off;
	uint64_t max; /* each is at least 1 */
} arg_specs[] = {
    {"idle", ARG_DURATION, offsetof(struct common_args, idle_ns), UINT64_MAX},
    {"interval", ARG_DURATION, offsetof(struct common_args, interval_ns), UINT64_MAX},
    {"top", ARG_COUNT, offsetof(struct common_args, top), STATS_TOP_MAX},
    {"bytes", ARG_COUNT, offsetof(struct common_args, bytes), UINT64_MAX},
    {"packets", ARG_COUNT, offsetof(struct common_args, packets), UINT64_MAX},
    {"rate", ARG_COUNT, offsetof(struct common_args, rate_bps), UINT64_MAX},
};

/* What the argument of spec as takes, for the error line (as the command line says it). */
static void arg_expected(const struct arg_spec *as, char *why, size_t len)
{
	if (as->kind == ARG_DURATION)
		snprintf(why, len,
		         "expected a duration such as 30s, 500ms or 1.5m, from 1ns to %llus",
		         (unsigned long long)(as->max / SEC));
	else
		snprintf(why, len, "expected a whole count such as 20, 10k or 2.5M, from 1 to %llu",
		         (unsigned long long)as->max);
}

/* Parses value v of key k into a; 0, or -1 with why filled. */
static int parse_one(struct common_args *a, const char *k, const char *v, char *why, size_t len)
{
	const struct arg_spec *as = NULL;
	for (size_t i = 0; i < sizeof(arg_specs) / sizeof(arg_specs[0]); i++)
		if (strcmp(k, arg_specs[i].key) == 0)
			as = &arg_specs[i];
	if (!as) {
		snprintf(why, len, "expected one of idle, interval, top, bytes, packets, rate");
		return -1;
	}
	uint64_t x;
	int r = as->kind == ARG_DURATION ? ft_parse_duration(v, &x) : ft_parse_count(v, &x);
	if (r == 0 && (x < 1 || x > as->max))
		r = -ERANGE;
	if (r) {
		arg_expected(as, why, len);
		return -1;
	}
	*(uint64_t *)((char *)a + as->off) = x;
	return 0;
}

/* Parses "k=v,k=v" into a (defaults pre-set); 0, or -1 with err naming the bad part. */
static int parse_args(const char *mod, const char *args, struct common_args *a, char *err,
                      size_t errlen)
{
	char buf[512], why[128] = "expected key=value";
	if (strlen(args) >= sizeof(buf)) {
		snprintf(err, errlen, "module %s: arguments longer than %zu bytes", mod,
		         sizeof(buf) - 1);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", args);
	for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv;
	     kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq || (*eq = '\0', parse_one(a, kv, eq + 1, why, sizeof(why)) != 0)) {
			snprintf(err, errlen, "module %s: bad argument '%s%s%s': %s", mod, kv,
			         eq ? "=" : "", eq ? eq + 1 : "", why);
			return -1;
		}
	}
	return 0;
}

static void *args_create(const char *mod, const char *args, struct common_args *def, char *err,
                         size_t errlen)
{
	struct common_args *a = malloc(sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*a = *def;
	if (parse_args(mod, args, a, err, errlen) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

static int idle_expiry(void *inst, void *check, struct ft_flow *f, uint64_t now, uint64_t *last)
{
	const struct common_args *a = inst;
	(void)check;
	*last = f->last_ns;
	return now > f->last_ns && now - f->last_ns > a->idle_ns; /* no sum: idle may be huge */
}

/* The instance's check interval from its arguments (0: the module's default). */
static uint64_t args_interval(void *inst)
{
	return ((const struct common_args *)inst)->interval_ns;
}

/* ---- noop ------------------------------------------------------------------------------- */

static void *noop_create(const char *args, char *err, size_t errlen)
{
	struct common_args d = {.idle_ns = 30 * SEC};
	return args_create("noop", args, &d, err, errlen);
}

static int noop_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	(void)inst, (void)f, (void)p, (void)is_first;
	return 0;
}

static const struct ft_module mod_noop = {
    .abi = FT_MODULE_ABI,
    .name = "noop",
    .interval = args_interval,
    .create = noop_create,
    .destroy = free,
    .handle_packet = noop_packet,
    .check_expiry = idle_expiry,
};

/* ---- stats ------------------------------------------------------------------------------ */

struct stats_inst {
	struct common_args a;
	uint64_t cum_packets, cum_bytes; /* written only by check_final (one at a time) */
};

struct stats_flow {
	uint64_t win_bytes, win_packets; /* since the last checker pass */
};

struct top_entry {
	struct ft_flow_key key;
	double bps, pps;
};

struct stats_check {
	uint64_t t0; /* wall clock at the first pass of the interval */
	uint64_t active;
	uint64_t win_packets, win_bytes;
	unsigned n;
	struct top_entry top[STATS_TOP_MAX];
};

static void *stats_create(const char *args, char *err, size_t errlen)
{
	struct stats_inst *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->a = (struct common_args){.idle_ns = 30 * SEC, .interval_ns = 5 * SEC, .top = 10};
	if (parse_args("stats", args, &s->a, err, errlen) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static int stats_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	struct stats_flow *st = (struct stats_flow *)f->state;
	(void)inst, (void)is_first;
	st->win_bytes += p->wirelen;
	st->win_packets++;
	return 0;
}

static void *stats_check_init(void *inst)
{
	(void)inst;
	struct stats_check *c = calloc(1, sizeof(*c));
	if (c)
		c->t0 = qq_clock_ns(CLOCK_MONOTONIC);
	return c;
}

/* Inserts into the top list (sorted by bps, at most `top` entries). */
static void top_insert(struct stats_check *c, unsigned top, const struct top_entry *e)
{
	if (c->n == top && (top == 0 || e->bps <= c->top[top - 1].bps))
		return;
	unsigned i = c->n < top ? c->n++ : top - 1;
	while (i > 0 && c->top[i - 1].bps < e->bps) {
		c->top[i] = c->top[i - 1];
		i--;
	}
	c->top[i] = *e;
}

static int stats_expiry(void *inst, void *check, struct ft_flow *f, uint64_t now, uint64_t *last)
{
	struct stats_inst *s = inst;
	struct stats_check *c = check;
	struct stats_flow *st = (struct stats_flow *)f->state;
	if (c) {
		double secs = (double)s->a.interval_ns / 1e9;
		struct top_entry e = {.key = f->key,
		                      .bps = (double)st->win_bytes * 8 / secs,
		                      .pps = (double)st->win_packets / secs};
		c->active++;
		c->win_packets += st->win_packets;
		c->win_bytes += st->win_bytes;
		if (st->win_packets)
			top_insert(c, (unsigned)s->a.top, &e);
	}
	st->win_bytes = st->win_packets = 0;
	return idle_expiry(&s->a, check, f, now, last);
}

static void stats_merge(void *inst, void *into, void *from)
{
	struct stats_inst *s = inst;
	struct stats_check *a = into, *b = from;
	if (a && b) {
		a->active += b->active;
		a->win_packets += b->win_packets;
		a->win_bytes += b->win_bytes;
		for (unsigned i = 0; i < b->n; i++)
			top_insert(a, (unsigned)s->a.top, &b->top[i]);
		a->t0 = a->t0 < b->t0 ? a->t0 : b->t0;
	}
	free(b);
}

/*
 * "ipv4_5tuple{ip_a: 10.0.0.10, ip_b: 10.1.0.10, port_a: 2143, port_b: 1234, proto: udp}",
 * with ", vlan: 300/42" (or ", vlan: 42") before the brace when the key has VLAN ids.
 */
static void flow_print(FILE *o, const struct ft_flow_key *k)
{
	char a[FT_ADDRSTRLEN], b[FT_ADDRSTRLEN], tmp[16], vl[24] = "";
	ft_addr_format(k->a, a, sizeof(a));
	ft_addr_format(k->b, b, sizeof(b));
	if (k->vlan_inner)
		snprintf(vl, sizeof(vl), ", vlan: %u/%u", k->vlan, k->vlan_inner);
	else if (k->vlan)
		snprintf(vl, sizeof(vl), ", vlan: %u", k->vlan);
	fprintf(o, "%s_5tuple{ip_a: %s, ip_b: %s, port_a: %u, port_b: %u, proto: %s%s}",
	        ft_addr_is_v4(k->a) ? "ipv4" : "ipv6", a, b, k->port_a, k->port_b,
	        ft_proto_name(k->proto, tmp, sizeof(tmp)), vl);
}

static void stats_final(void *inst, void *check, uint64_t kept, uint64_t purged)
{
	struct stats_inst *s = inst;
	struct stats_check *c = check;
	(void)kept, (void)purged;
	if (!c)
		return;
	double secs = (double)s->a.interval_ns / 1e9;
	s->cum_packets += c->win_packets;
	s->cum_bytes += c->win_bytes;
	printf("Top flows over sliding %.0fs window:\n#\tbps\tpps\tFlow\n", secs);
	for (unsigned i = 0; i < c->n; i++) {
		printf("%u %.2f %.2f ", i + 1, c->top[i].bps, c->top[i].pps);
		flow_print(stdout, &c->top[i].key);
		putchar('\n');
	}
	printf("Active flows %llu, cumulative packets %llu [%.2f/s], cumulative bytes %llu "
	       "[%.2f/s], took %.2fs\n",
	       (unsigned long long)c->active, (unsigned long long)s->cum_packets,
	       (double)c->win_packets / secs, (unsigned long long)s->cum_bytes,
	       (double)c->win_bytes / secs, (double)(qq_clock_ns(CLOCK_MONOTONIC) - c->t0) / 1e9);
	fflush(stdout);
	free(c);
}

static const struct ft_module mod_stats = {
    .abi = FT_MODULE_ABI,
    .name = "stats",
    .state_size = sizeof(struct stats_flow),
    .check_interval_ns = 5 * SEC,
    .interval = args_interval,
    .create = stats_create,
    .destroy = free,
    .handle_packet = stats_packet,
    .check_init = stats_check_init,
    .check_expiry = stats_expiry,
    .check_merge = stats_merge,
    .check_final = stats_final,
};

/* ---- ttl ---------------------------------------------------------------------------------- */

struct ttl_flow {
	uint8_t ttl[2]; /* first TTL / hop limit seen per direction */
	uint8_t seen[2];
};

static void *ttl_create(const char *args, char *err, size_t errlen)
{
	struct common_args d = {.idle_ns = 30 * SEC};
	return args_create("ttl", args, &d, err, errlen);
}

static int ttl_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	struct ttl_flow *st = (struct ttl_flow *)f->state;
	(void)inst, (void)is_first;
	if (!(p->pkt->flags & FT_PKT_IP))
		return 0;
	if (!st->seen[p->dir]) {
		st->seen[p->dir] = 1;
		st->ttl[p->dir] = p->pkt->ttl;
		return 0;
	}
	return p->pkt->ttl != st->ttl[p->dir];
}

static const struct ft_module mod_ttl = {
    .abi = FT_MODULE_ABI,
    .name = "ttl",
    .interval = args_interval,
    .state_size = sizeof(struct ttl_flow),
    .create = ttl_create,
    .destroy = free,
    .handle_packet = ttl_packet,
    .check_expiry = idle_expiry,
};

/* ---- trigger ------------------------------------------------------------------------------- */

#define TRIGGER_LINKTYPES 8

/*
 * One program per link type, compiled on first use.  Compiling takes the
 * lock; matching reads a finished program, which pcap_offline_filter never
 * changes, so analyzer threads share it without locking (the acquire load
 * of n pairs with the release store after the program is complete).
 */
struct trigger_inst {
	struct common_args a;
	char *expr;
	pthread_mutex_t lock;
	_Atomic unsigned n;
	int linktype[TRIGGER_LINKTYPES];
	struct bpf_program prog[TRIGGER_LINKTYPES];
	int failed[TRIGGER_LINKTYPES]; /* the expression does not compile for that link type */
};

static void *trigger_create(const char *args, char *err, size_t errlen)
{
	struct trigger_inst *t = calloc(1, sizeof(*t));
	if (!t || !(t->expr = strdup(args))) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->a.idle_ns = 30 * SEC;
	pthread_mutex_init(&t->lock, NULL);
	/* check the expression now, for Ethernet, so a typo fails at start */
	struct bpf_program prog;
	if (ft_bpf_compile(FT_DLT_EN10MB, 262144, t->expr, &prog, err, errlen) != 0) {
		free(t->expr);
		free(t);
		return NULL;
	}
	pcap_freecode(&prog);
	return t;
}

static void trigger_destroy(void *inst)
{
	struct trigger_inst *t = inst;
	for (unsigned i = 0; i < t->n; i++)
		if (!t->failed[i])
			pcap_freecode(&t->prog[i]);
	pthread_mutex_destroy(&t->lock);
	free(t->expr);
	free(t);
}

/* The program for a link type, compiling it on first use; NULL if it does not compile. */
static const struct bpf_program *trigger_prog(struct trigger_inst *t, int linktype)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		if (t->linktype[i] == linktype)
			return t->failed[i] ? NULL : &t->prog[i];
	pthread_mutex_lock(&t->lock);
	const struct bpf_program *r = NULL;
	n = atomic_load_explicit(&t->n, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++)
		if (t->linktype[i] == linktype) {
			r = t->failed[i] ? NULL : &t->prog[i];
			goto out;
		}
	if (n < TRIGGER_LINKTYPES) {
		char err[256];
		t->linktype[n] = linktype;
		t->failed[n] =
		    ft_bpf_compile(linktype, 262144, t->expr, &t->prog[n], err, sizeof(err)) != 0;
		r = t->failed[n] ? NULL : &t->prog[n];
		atomic_store_explicit(&t->n, n + 1, memory_order_release);
	}
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int trigger_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p,
                          int is_first)
{
	(void)f, (void)is_first;
	const struct bpf_program *prog = trigger_prog(inst, p->linktype);
	struct pcap_pkthdr h = {.caplen = p->caplen, .len = p->wirelen};
	return prog && pcap_offline_filter(prog, &h, p->data);
}

static const struct ft_module mod_trigger = {
    .abi = FT_MODULE_ABI,
    .name = "trigger",
    .interval = args_interval,
    .create = trigger_create,
    .destroy = trigger_destroy,
    .handle_packet = trigger_packet,
    .check_expiry = idle_expiry,
};

/* ---- threshold ----------------------------------------------------------------------------- */

struct threshold_flow {
	uint64_t win_start; /* start of the current 1 s rate window */
	uint64_t win_bytes;
};

static void *threshold_create(const char *args, char *err, size_t errlen)
{
	struct common_args d = {.idle_ns = 30 * SEC};
	struct common_args *a = args_create("threshold", args, &d, err, errlen);
	if (a && !a->bytes && !a->packets && !a->rate_bps) {
		snprintf(err, errlen, "module threshold: give bytes=N, packets=N or rate=BITS/s");
		free(a);
		return NULL;
	}
	return a;
}

static int threshold_packet(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p,
                            int is_first)
{
	const struct common_args *a = inst;
	struct threshold_flow *st = (struct threshold_flow *)f->state;
	(void)is_first;
	if (a->bytes && f->bytes[0] + f->bytes[1] > a->bytes)
		return 1;
	if (a->packets && f->packets[0] + f->packets[1] > a->packets)
		return 1;
	if (!a->rate_bps)
		return 0;
	if (p->ts_ns >= st->win_start + SEC || p->ts_ns < st->win_start) {
		st->win_start = p->ts_ns;
		st->win_bytes = 0;
	}
	st->win_bytes += p->wirelen;
	return st->win_bytes * 8 > a->rate_bps;
}

static const struct ft_module mod_threshold = {
    .abi = FT_MODULE_ABI,
    .name = "threshold",
    .interval = args_interval,
    .state_size = sizeof(struct threshold_flow),
    .create = threshold_create,
    .destroy = free,
    .handle_packet = threshold_packet,
    .check_expiry = idle_expiry,
};

const struct ft_module *const ft_builtin_modules[] = {
    &mod_noop, &mod_stats, &mod_ttl, &mod_trigger, &mod_threshold, NULL,
};
