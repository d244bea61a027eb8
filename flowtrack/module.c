/*
 * Modules and the analyzer engine that runs them.
 *
 * A module set holds the instances (one per "NAME[:ARGS]" spec) shared by
 * every analyzer thread.  Each analyzer thread has an engine: one flow table
 * per module (keys of the module's kind, its per-flow state), fed one parsed
 * packet at a time; flows are partitioned between analyzers by the symmetric
 * flow hash, so no flow is in two engines and the hot path takes no lock.
 *
 * Checker: each engine runs its own pass when capture time crosses the
 * module's interval (no stop-the-world).  The passes of one interval meet at
 * the module's merge point (one mutex, taken once per pass): the first
 * thread's check state is kept, the others are folded into it
 * (check_merge), and when every analyzer has reported (or the next interval
 * begins) check_final runs once.
 *
 * Triggers and expiry are reported through struct ft_engine_events; a flow
 * reports its trigger once, and a flow that triggered reports its expiry
 * (also when the table evicts it), so the dumpers can retire its rule.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>

#include "flowtrack/module_pvt.h"

#define DEFAULT_INTERVAL_NS 5000000000ull
#define DEFAULT_IDLE_NS 30000000000ull
#define FILTER_MAX 1024

struct merge_point {
	pthread_mutex_t lock;
	uint64_t epoch;
	unsigned count; /* passes folded into acc for this epoch */
	void *acc;
	uint64_t kept, purged;
};

struct instance {
	const struct ft_module *mod;
	void *inst;
	const struct ft__module_ops *ops; /* per-engine hooks of a Lua module, else NULL */
	char *spec;
	struct merge_point mp;
	int mp_ready; /* mp.lock initialised */
	/* a build_filter result did not compile: said once (any analyzer may set it) */
	atomic_int bad_filter_said;
};

struct ft_modset {
	unsigned n, analyzers;
	struct instance *in;
	void **dl; /* dlopen handles to close */
	unsigned ndl;
};

struct per_module {
	struct ft_table *flows;
	void *ctx;                  /* the module's per-engine context (Lua state), or NULL */
	struct ft__burst *burst;    /* with ctx: the burst handed to the module */
	struct ft__check_batch *cb; /* with ctx: a checker batch */
	uint64_t next_check;
	struct ft_engine_stats st;
};

struct ft_engine {
	struct ft_modset *ms;
	unsigned id;
	struct ft_engine_events ev;
	uint64_t now;      /* newest capture time seen */
	uint64_t next_due; /* earliest next_check of the modules (0: not set yet) */
	struct per_module *m;
	unsigned evict_module; /* for the eviction callback */
};

/* ---- finding modules ----------------------------------------------------------------- */

static int module_check(const struct ft_module *m, const char *what, char *err, size_t errlen)
{
	if (!m || m->abi != FT_MODULE_ABI) {
		snprintf(err, errlen,
		         "%s: module ABI %u, flowscope needs %u: rebuild it against this "
		         "flowscope's flowtrack/flowtrack.h (docs/modules.md)",
		         what, m ? m->abi : 0, (unsigned)FT_MODULE_ABI);
		return -EINVAL;
	}
	if (!m->name || !m->handle_packet) {
		snprintf(err, errlen, "%s: module has no name or no handle_packet", what);
		return -EINVAL;
	}
	return 0;
}

static int module_dlopen(const char *path, const struct ft_module **out, void **handle, char *err,
                         size_t errlen)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "module %s: %s", path, dlerror());
		return -ENOENT;
	}
	const struct ft_module *(*get)(void);
	*(void **)&get = dlsym(h, "flowscope_module");
	if (!get) {
		snprintf(err, errlen, "module %s: no flowscope_module() symbol", path);
		dlclose(h);
		return -EINVAL;
	}
	const struct ft_module *m = get();
	int r = module_check(m, path, err, errlen);
	if (r) {
		dlclose(h);
		return r;
	}
	*out = m;
	*handle = h;
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

static int is_path(const char *name)
{
	return strchr(name, '/') || ends_with(name, ".so");
}

/* Built-in by name, or a library by path (its handle in *handle, else NULL). */
static int module_resolve(const char *name, const struct ft_module **out, void **handle, char *err,
                          size_t errlen)
{
	*handle = NULL;
	for (size_t i = 0; ft_builtin_modules[i]; i++)
		if (strcmp(ft_builtin_modules[i]->name, name) == 0) {
			*out = ft_builtin_modules[i];
			return 0;
		}
	if (ends_with(name, ".lua")) {
		snprintf(err, errlen, "module %s: a Lua module runs only in a module set", name);
		return -EINVAL;
	}
	if (is_path(name))
		return module_dlopen(name, out, handle, err, errlen);
	snprintf(err, errlen,
	         "no module '%s' (built-ins: noop, stats, ttl, trigger, threshold; or a "
	         "path to a .so or .lua file)",
	         name);
	return -ENOENT;
}

int ft_module_find(const char *name, const struct ft_module **out, char *err, size_t errlen)
{
	void *handle; /* a loaded library stays loaded: *out points into it */
	return module_resolve(name, out, &handle, err, errlen);
}

/* ---- module sets ----------------------------------------------------------------------- */

/* Splits "name:args" / "/path/lib.so:args" / "path.lua:args" in place; returns args (or NULL). */
static char *spec_split(char *spec)
{
	char *so = strstr(spec, ".so:"), *lua = strstr(spec, ".lua:"), *args = NULL;
	if (so) {
		so[3] = '\0';
		args = so + 4;
	} else if (lua) {
		lua[4] = '\0';
		args = lua + 5;
	} else if (!strchr(spec, '/') && (args = strchr(spec, ':')) != NULL) {
		*args++ = '\0';
	}
	return args; /* a path without ".so:" has no arguments */
}

static int instance_init(struct instance *in, const struct ft_module *mod, const char *args,
                         char *err, size_t errlen)
{
	in->mod = mod;
	if (mod->create) {
		if (errlen)
			err[0] = '\0';
		in->inst = mod->create(args ? args : "", err, errlen);
		if (!in->inst && errlen && !err[0]) /* a module that gave no reason */
			snprintf(err, errlen, "module %s: create('%s') failed and gave no reason",
			         mod->name, args ? args : "");
		if (!in->inst)
			return -EINVAL;
	} else if (args && *args) {
		snprintf(err, errlen, "module %s takes no arguments ('%s')", mod->name, args);
		return -EINVAL;
	}
	pthread_mutex_init(&in->mp.lock, NULL);
	in->mp_ready = 1;
	return 0;
}

static struct ft_modset *modset_alloc(unsigned n, unsigned analyzers)
{
	struct ft_modset *ms = calloc(1, sizeof(*ms));
	if (!ms || !(ms->in = calloc(n ? n : 1, sizeof(*ms->in))) ||
	    !(ms->dl = calloc(n ? n : 1, sizeof(*ms->dl)))) {
		ft_modset_destroy(ms);
		return NULL;
	}
	ms->analyzers = analyzers ? analyzers : 1;
	return ms;
}

int ft_modset_create(const char *const *specs, unsigned n, unsigned analyzers,
                     struct ft_modset **out, char *err, size_t errlen)
{
	struct ft_modset *ms = modset_alloc(n, analyzers);
	if (!ms) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct instance *in = &ms->in[i];
		const struct ft_module *mod;
		void *h;
		int r = (in->spec = strdup(specs[i])) ? 0 : -ENOMEM;
		char *args = r ? NULL : spec_split(in->spec);
		ms->n = i + 1;
		if (r == 0 && ends_with(in->spec, ".lua")) {
			r = ft__lua_load(in->spec, args, &in->mod, &in->ops, &in->inst, err,
			                 errlen);
			if (r == 0) {
				pthread_mutex_init(&in->mp.lock, NULL);
				in->mp_ready = 1;
			}
		} else if (r == 0 && (r = module_resolve(in->spec, &mod, &h, err, errlen)) == 0) {
			if (h)
				ms->dl[ms->ndl++] = h;
			r = instance_init(in, mod, args, err, errlen);
		}
		if (r) {
			ft_modset_destroy(ms);
			return r;
		}
	}
	*out = ms;
	return 0;
}

int ft_modset_create_modules(const struct ft_module *const *mods, const char *const *args,
                             unsigned n, unsigned analyzers, struct ft_modset **out, char *err,
                             size_t errlen)
{
	struct ft_modset *ms = modset_alloc(n, analyzers);
	if (!ms) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		int r = module_check(mods[i], mods[i] && mods[i]->name ? mods[i]->name : "module",
		                     err, errlen);
		ms->n = i + 1;
		if (r == 0)
			r = instance_init(&ms->in[i], mods[i], args ? args[i] : NULL, err, errlen);
		if (r) {
			ft_modset_destroy(ms);
			return r;
		}
	}
	*out = ms;
	return 0;
}

/* Runs check_final on what the merge point holds.  Lock held. */
static void merge_finalize_locked(struct instance *in)
{
	if (in->mp.count > 0 && in->mod->check_final)
		in->mod->check_final(in->inst, in->mp.acc, in->mp.kept, in->mp.purged);
	in->mp.count = 0;
	in->mp.acc = NULL;
	in->mp.kept = in->mp.purged = 0;
}

void ft_modset_destroy(struct ft_modset *ms)
{
	if (!ms)
		return;
	for (unsigned i = 0; i < ms->n; i++) {
		struct instance *in = &ms->in[i];
		if (in->mp_ready) {
			pthread_mutex_lock(&in->mp.lock);
			merge_finalize_locked(in);
			pthread_mutex_unlock(&in->mp.lock);
			pthread_mutex_destroy(&in->mp.lock);
		}
		if (in->inst && in->ops)
			ft__lua_destroy(in->inst);
		else if (in->inst && in->mod->destroy)
			in->mod->destroy(in->inst);
		free(in->spec);
	}
	for (unsigned i = 0; i < ms->ndl; i++)
		dlclose(ms->dl[i]);
	free(ms->dl);
	free(ms->in);
	free(ms);
}

unsigned ft_modset_count(const struct ft_modset *ms)
{
	return ms->n;
}

const char *ft_modset_name(const struct ft_modset *ms, unsigned i)
{
	return i < ms->n ? ms->in[i].mod->name : "";
}

void ft_modset_set_strict(struct ft_modset *ms, int strict)
{
	for (unsigned i = 0; i < ms->n; i++)
		if (ms->in[i].ops)
			ft__lua_set_strict(ms->in[i].inst, strict);
}

int ft_modset_fatal(const struct ft_modset *ms)
{
	for (unsigned i = 0; ms && i < ms->n; i++)
		if (ms->in[i].ops && ft__lua_fatal(ms->in[i].inst))
			return 1;
	return 0;
}

uint64_t ft_modset_errors(const struct ft_modset *ms, unsigned i)
{
	return i < ms->n && ms->in[i].ops ? ft__lua_final_errors(ms->in[i].inst) : 0;
}

/*
 * A thread's finished pass for interval `epoch`: folded into the interval's
 * result; the last thread (or the next interval) finalises it.
 */
static void merge_deposit(struct ft_modset *ms, struct instance *in, uint64_t epoch, void *check,
                          uint64_t kept, uint64_t purged)
{
	struct merge_point *mp = &in->mp;
	pthread_mutex_lock(&mp->lock);
	if (mp->count > 0 && epoch < mp->epoch) {
		/* a late thread's pass for an interval already reported: report it alone */
		pthread_mutex_unlock(&mp->lock);
		if (in->mod->check_final)
			in->mod->check_final(in->inst, check, kept, purged);
		return;
	}
	if (mp->count > 0 && epoch != mp->epoch)
		merge_finalize_locked(in); /* a thread is late: report what the interval had */
	if (mp->count == 0) {
		mp->epoch = epoch;
		mp->acc = check;
	} else if (in->mod->check_merge) {
		in->mod->check_merge(in->inst, mp->acc, check);
	} else if (in->mod->check_final) {
		in->mod->check_final(in->inst, check, kept, purged); /* no merge: report alone */
	}
	mp->count++;
	mp->kept += kept;
	mp->purged += purged;
	if (mp->count >= ms->analyzers)
		merge_finalize_locked(in);
	pthread_mutex_unlock(&mp->lock);
}

/* ---- engines ------------------------------------------------------------------------------ */

static void engine_evicted(struct ft_flow *f, void *arg);

/* The per-engine context of module i (its Lua state) and its batch buffers. */
static int engine_open_ctx(struct ft_engine *e, unsigned i)
{
	const struct instance *in = &e->ms->in[i];
	struct per_module *pm = &e->m[i];
	char err[512];
	if (!(pm->burst = calloc(1, sizeof(*pm->burst))) || !(pm->cb = calloc(1, sizeof(*pm->cb))))
		return -ENOMEM;
	pm->ctx = in->ops->open(in->inst, e->id, pm->burst, pm->cb, err, sizeof(err));
	if (!pm->ctx) {
		/* the same script loaded once already at ft_modset_create: rare, say why */
		fprintf(stderr, "flowscope: analyzer %u: %s\n", e->id, err);
		return -EINVAL;
	}
	return 0;
}

int ft_engine_create(struct ft_modset *ms, unsigned id, size_t max_flows,
                     const struct ft_engine_events *ev, struct ft_engine **out)
{
	struct ft_engine *e = calloc(1, sizeof(*e));
	if (!e || !(e->m = calloc(ms->n ? ms->n : 1, sizeof(*e->m)))) {
		free(e);
		return -ENOMEM;
	}
	e->ms = ms;
	e->id = id;
	if (ev)
		e->ev = *ev;
	for (unsigned i = 0; i < ms->n; i++) {
		const struct ft_module *m = ms->in[i].mod;
		int r = ft_table_create(max_flows, m->state_size, m->default_state, &e->m[i].flows);
		if (r == 0 && ms->in[i].ops)
			r = engine_open_ctx(e, i);
		if (r) {
			ft_engine_destroy(e);
			return r;
		}
		ft_table_set_evict_cb(e->m[i].flows, engine_evicted, e);
	}
	*out = e;
	return 0;
}

uint64_t ft_engine_bytes(const struct ft_modset *ms, size_t max_flows)
{
	uint64_t n = 0;
	for (unsigned i = 0; ms && i < ms->n; i++)
		n += ft_table_bytes(max_flows, ms->in[i].mod->state_size);
	return n;
}

void ft_engine_destroy(struct ft_engine *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < e->ms->n; i++) {
		if (e->m[i].ctx)
			e->ms->in[i].ops->close(e->m[i].ctx);
		free(e->m[i].burst);
		free(e->m[i].cb);
		ft_table_destroy(e->m[i].flows);
	}
	free(e->m);
	free(e);
}

/*
 * Module i's filter for flow f is unusable (`why`): counted (bad_filters)
 * and said once per module.  The flow is then dumped by its key, which a key
 * of the module's own type (FT_KEY_OWN) cannot do: such a flow is not
 * archived, and the line says so.
 */
static void engine_bad_filter(struct ft_engine *e, unsigned i, const struct ft_flow *f,
                              const char *why)
{
	struct instance *in = &e->ms->in[i];
	char key[FT_MODKEYSTRLEN];
	e->m[i].st.bad_filters++;
	/* relaxed: the flag only keeps the line to one; nothing else depends on it */
	if (atomic_exchange_explicit(&in->bad_filter_said, 1, memory_order_relaxed) == 0)
		fprintf(
		    stderr,
		    "flowscope: module %s: %s for flow %s: %s; %s (counted in bad_filters)\n",
		    in->spec ? in->spec : in->mod->name,
		    in->ops ? "buildPacketFilter" : "build_filter",
		    ft_engine_key_format(e, i, &f->key, key, sizeof(key)), why,
		    (in->mod->key_flags & FT_KEY_OWN)
		        ? "a key of the module's own type selects no packet: such flows are not "
		          "archived"
		        : "flows whose filter does not compile are selected by their keys");
}

/*
 * Whether the filter module i built for flow f compiles for the packet's
 * link type (as the dumpers will compile it); when it does not, see
 * engine_bad_filter().  One compile per triggered flow, on the analyzer: a
 * trigger is once per flow.
 */
static int engine_filter_ok(struct ft_engine *e, unsigned i, const struct ft_flow *f,
                            const char *filter, const struct ft_packet_ctx *c)
{
	struct bpf_program prog;
	char err[FILTER_MAX + 256] = "the filter is not NUL-terminated in its buffer";
	if (memchr(filter, '\0', FILTER_MAX) &&
	    ft_bpf_compile(c->linktype, 262144, filter, &prog, err, sizeof(err)) == 0) {
		pcap_freecode(&prog);
		return 1;
	}
	engine_bad_filter(e, i, f, err);
	return 0;
}

static void engine_trigger(struct ft_engine *e, unsigned i, struct ft_flow *f,
                           const struct ft_packet_ctx *c)
{
	const struct instance *in = &e->ms->in[i];
	char filter[FILTER_MAX] = "";
	int has_filter = in->ops ? in->ops->build_filter(e->m[i].ctx, f, filter, sizeof(filter))
	                         : in->mod->build_filter &&
	                               in->mod->build_filter(in->inst, f, filter, sizeof(filter));
	if (has_filter && !engine_filter_ok(e, i, f, filter, c))
		has_filter = 0;
	else if (!has_filter && (in->mod->key_flags & FT_KEY_OWN))
		engine_bad_filter(e, i, f, "no filter (an error, or an empty string)");
	f->triggered = 1;
	e->m[i].st.triggers++;
	if (e->ev.trigger)
		e->ev.trigger(e->ev.arg, i, &f->key, in->mod->key_kind, in->mod->key_flags,
		              has_filter ? filter : NULL, c->ts_ns);
}

/* The flow's own counters for packet c. */
static void engine_flow_count(struct ft_engine *e, unsigned i, struct ft_flow *f, int is_new,
                              const struct ft_packet_ctx *c)
{
	ft__flow_count(f, is_new, c);
	e->m[i].st.packets++;
}

/* Updates flow f of module i with packet c (key already made), calling the module. */
static void engine_flow_update(struct ft_engine *e, unsigned i, struct ft_flow *f, int is_new,
                               const struct ft_packet_ctx *c)
{
	const struct instance *in = &e->ms->in[i];
	engine_flow_count(e, i, f, is_new, c);
	int r = in->mod->handle_packet(in->inst, f, c, is_new);
	if (r < 0)
		e->m[i].st.errors++; /* an error is not a trigger */
	else if (r > 0 && !f->triggered)
		engine_trigger(e, i, f, c);
}

static void engine_module_burst(struct ft_engine *e, unsigned i, const struct ft_packet_ctx *p,
                                unsigned n);

static void engine_module_packet(struct ft_engine *e, unsigned i, const struct ft_packet_ctx *p)
{
	const struct instance *in = &e->ms->in[i];
	if (in->ops) {
		engine_module_burst(e, i, p, 1);
		return;
	}
	struct ft_flow_key key;
	struct ft_packet_ctx c = *p;
	int is_new;
	if (ft_flow_key_make(p->pkt, in->mod->key_kind, in->mod->key_flags, &key, &c.dir) != 0)
		return;
	e->evict_module = i;
	struct ft_flow *f = ft_table_lookup(e->m[i].flows, &key, ft_flow_key_hash(&key), &is_new);
	engine_flow_update(e, i, f, is_new, &c);
}

static void engine_run_due(struct ft_engine *e, uint64_t now);

void ft_engine_packet(struct ft_engine *e, const struct ft_packet_ctx *p)
{
	/* passes run at interval boundaries of capture time, before the packet that crosses one */
	if (p->ts_ns >= e->next_due)
		engine_run_due(e, p->ts_ns);
	if (p->ts_ns > e->now)
		e->now = p->ts_ns;
	for (unsigned i = 0; i < e->ms->n; i++)
		engine_module_packet(e, i, p);
}

/* A flow the table had to evict: if it had triggered, its rule must retire. */
static void engine_evicted(struct ft_flow *f, void *arg)
{
	struct ft_engine *e = arg;
	unsigned i = e->evict_module;
	e->m[i].st.evicted++;
	if (f->triggered && e->ev.expire)
		e->ev.expire(e->ev.arg, i, &f->key, e->ms->in[i].mod->key_kind,
		             e->ms->in[i].mod->key_flags, f->last_ns);
}

struct pass {
	struct ft_engine *e;
	unsigned i;
	void *check;
	uint64_t now, kept, purged;
};

/* The checker's verdict on one flow: kept, or removed (and its rule retired). */
static void pass_result(struct pass *ps, struct ft_flow *f, int expired, uint64_t last)
{
	const struct instance *in = &ps->e->ms->in[ps->i];
	if (!expired) {
		ps->kept++;
		return;
	}
	ps->purged++;
	ps->e->m[ps->i].st.expired++;
	if (f->triggered && ps->e->ev.expire)
		ps->e->ev.expire(ps->e->ev.arg, ps->i, &f->key, in->mod->key_kind,
		                 in->mod->key_flags, last);
	ft_table_remove(ps->e->m[ps->i].flows, f);
}

static void pass_visit(struct ft_flow *f, void *arg)
{
	struct pass *ps = arg;
	const struct instance *in = &ps->e->ms->in[ps->i];
	uint64_t last = f->last_ns;
	int expired;
	if (in->mod->check_expiry)
		expired = in->mod->check_expiry(in->inst, ps->check, f, ps->now, &last);
	else
		expired = ps->now > f->last_ns + DEFAULT_IDLE_NS;
	pass_result(ps, f, expired, last);
}

/*
 * A module with per-engine hooks gets the flows a batch at a time.  The
 * flows of a batch have all been visited, so removing them after the batch
 * is safe: records never move and iteration skips freed ones.
 */
static void pass_ctx_flush(struct pass *ps)
{
	struct per_module *pm = &ps->e->m[ps->i];
	struct ft__check_batch *b = pm->cb;
	if (b->n == 0)
		return;
	ps->e->ms->in[ps->i].ops->check_batch(pm->ctx, b);
	for (uint32_t k = 0; k < b->n; k++)
		pass_result(ps, b->flow[k], b->expired[k], b->last[k]);
	b->n = 0;
}

static void pass_ctx_visit(struct ft_flow *f, void *arg)
{
	struct pass *ps = arg;
	struct ft__check_batch *b = ps->e->m[ps->i].cb;
	b->flow[b->n++] = f;
	if (b->n == FT__CHECK_BATCH)
		pass_ctx_flush(ps);
}

static uint64_t interval_of(const struct instance *in)
{
	uint64_t iv = in->mod->interval && in->inst ? in->mod->interval(in->inst) : 0;
	if (!iv)
		iv = in->mod->check_interval_ns;
	return iv ? iv : DEFAULT_INTERVAL_NS;
}

/*
 * The merge epoch of every engine's last pass (ft_engine_finish): one and the
 * same for all, after every interval, so the last passes are merged into one
 * report even when an engine saw no packet (its capture time is still 0).
 */
#define EPOCH_LAST UINT64_MAX

/* A checker pass of module i at capture time now, deposited for merge epoch `epoch`. */
static void engine_pass(struct ft_engine *e, unsigned i, uint64_t now, uint64_t epoch)
{
	const struct instance *in = &e->ms->in[i];
	struct pass ps = {.e = e, .i = i, .now = now};
	if (in->ops) {
		in->ops->check_begin(e->m[i].ctx, now);
		e->m[i].cb->n = 0;
		ft_table_foreach(e->m[i].flows, pass_ctx_visit, &ps);
		pass_ctx_flush(&ps);
		ps.check = in->ops->check_end(e->m[i].ctx);
	} else {
		ps.check = in->mod->check_init ? in->mod->check_init(in->inst) : NULL;
		ft_table_foreach(e->m[i].flows, pass_visit, &ps);
	}
	merge_deposit(e->ms, (struct instance *)in, epoch, ps.check, ps.kept, ps.purged);
}

/*
 * Runs the pass of every module whose next boundary is at or before now: at
 * the last boundary passed (one pass, however long the gap), then schedules
 * the next one.  The first call only sets the boundaries.
 */
static void engine_run_due(struct ft_engine *e, uint64_t now)
{
	e->next_due = UINT64_MAX;
	for (unsigned i = 0; i < e->ms->n; i++) {
		struct per_module *pm = &e->m[i];
		uint64_t iv = interval_of(&e->ms->in[i]);
		if (pm->next_check == 0) {
			pm->next_check = (now / iv + 1) * iv;
		} else if (now >= pm->next_check) {
			engine_pass(e, i, now / iv * iv, now / iv);
			pm->next_check = (now / iv + 1) * iv;
		}
		if (pm->next_check < e->next_due)
			e->next_due = pm->next_check;
	}
}

void ft_engine_tick(struct ft_engine *e, uint64_t now_ns)
{
	if (now_ns >= e->next_due)
		engine_run_due(e, now_ns);
}

/* Hands the flows collected in module i's burst to the module, then reports its triggers. */
static void engine_ctx_flush(struct ft_engine *e, unsigned i, unsigned m)
{
	struct per_module *pm = &e->m[i];
	struct ft__burst *b = pm->burst;
	if (m == 0)
		return;
	b->n = m;
	e->ms->in[i].ops->handle(pm->ctx, b);
	for (unsigned k = 0; k < m; k++)
		if (b->trig[k] && !b->flow[k]->triggered)
			engine_trigger(e, i, b->flow[k], b->pkt[k]);
}

/*
 * A burst for a module with per-engine hooks (Lua): keys (the module's own
 * extractFlowKey, or built in), lookups with the same prefetching as the C
 * path, then one call into the module for all the burst's flows.  The flows
 * are collected first, so a lookup must not evict one of them: when the
 * table is full (the next insert evicts), what was collected is handed over
 * before that lookup.
 */
/* What a burst's lookups visit: module i's flows, the burst's contexts. */
struct burst_visit {
	struct ft_engine *e;
	unsigned i, m; /* m: flows collected for a Lua module's call */
	const struct ft_packet_ctx *c;
};

/* Before a Lua module's lookup: when the table is full (the next insert evicts), what was
 * collected is handed over first, so a lookup never evicts a collected flow. */
static void ctx_before_lookup(void *arg)
{
	struct burst_visit *v = arg;
	if (v->m > 0 && ft__table_full(v->e->m[v->i].flows)) {
		engine_ctx_flush(v->e, v->i, v->m);
		v->m = 0;
	}
}

static void ctx_visit(void *arg, unsigned j, struct ft_flow *f, int is_new)
{
	struct burst_visit *v = arg;
	struct ft__burst *b = v->e->m[v->i].burst;
	engine_flow_count(v->e, v->i, f, is_new, &v->c[j]);
	b->flow[v->m] = f;
	b->pkt[v->m] = &v->c[j];
	b->is_new[v->m] = (uint8_t)is_new;
	v->m++;
}

/*
 * A burst for a module with per-engine hooks (Lua): keys (the module's own
 * extractFlowKey, or built in), lookups with the same prefetching as the C
 * path, then one call into the module for all the burst's flows.  The flows
 * are collected first, so a lookup must not evict one of them
 * (ctx_before_lookup).
 */
static void engine_ctx_burst(struct ft_engine *e, unsigned i, const struct ft_packet_ctx *p,
                             unsigned n)
{
	const struct instance *in = &e->ms->in[i];
	struct per_module *pm = &e->m[i];
	struct ft__burst *b = pm->burst;
	struct ft_table *t = pm->flows;
	struct ft_flow_key key[FT_ENGINE_BURST];
	struct ft_packet_ctx c[FT_ENGINE_BURST];
	uint64_t h[FT_ENGINE_BURST];
	uint8_t ok[FT_ENGINE_BURST];
	if (in->ops->extract) {
		b->n = n;
		for (unsigned j = 0; j < n; j++)
			b->pkt[j] = &p[j];
		in->ops->extract(pm->ctx, b);
		memcpy(key, b->key, n * sizeof(key[0]));
	}
	ft__burst_keys(t, p, n, in->mod->key_kind, in->mod->key_flags,
	               in->ops->extract ? b->ok : NULL, key, c, h, ok);
	e->evict_module = i;
	struct burst_visit v = {.e = e, .i = i, .c = c};
	ft__burst_update(t, key, h, ok, n, ctx_before_lookup, ctx_visit, &v);
	engine_ctx_flush(e, i, v.m);
}

static void module_visit(void *arg, unsigned j, struct ft_flow *f, int is_new)
{
	struct burst_visit *v = arg;
	engine_flow_update(v->e, v->i, f, is_new, &v->c[j]);
}

/* One burst for module i: the one burst update (ft__burst_keys, ft__burst_update). */
static void engine_module_burst(struct ft_engine *e, unsigned i, const struct ft_packet_ctx *p,
                                unsigned n)
{
	const struct instance *in = &e->ms->in[i];
	if (in->ops) {
		engine_ctx_burst(e, i, p, n);
		return;
	}
	struct ft_table *t = e->m[i].flows;
	struct ft_flow_key key[FT_ENGINE_BURST];
	struct ft_packet_ctx c[FT_ENGINE_BURST];
	uint64_t h[FT_ENGINE_BURST];
	uint8_t ok[FT_ENGINE_BURST];
	ft__burst_keys(t, p, n, in->mod->key_kind, in->mod->key_flags, NULL, key, c, h, ok);
	e->evict_module = i;
	struct burst_visit v = {.e = e, .i = i, .c = c};
	ft__burst_update(t, key, h, ok, n, NULL, module_visit, &v);
}

void ft_engine_packets(struct ft_engine *e, const struct ft_packet_ctx *p, unsigned n)
{
	while (n > 0) {
		unsigned k = n < FT_ENGINE_BURST ? n : FT_ENGINE_BURST;
		if (p[0].ts_ns >= e->next_due)
			engine_run_due(e, p[0].ts_ns);
		for (unsigned j = 1; j < k; j++) /* a checker boundary in the burst: cut it there */
			if (p[j].ts_ns >= e->next_due) {
				k = j;
				break;
			}
		for (unsigned j = 0; j < k; j++)
			if (p[j].ts_ns > e->now)
				e->now = p[j].ts_ns;
		for (unsigned i = 0; i < e->ms->n; i++)
			engine_module_burst(e, i, p, k);
		p += k;
		n -= k;
	}
}

void ft_engine_finish(struct ft_engine *e)
{
	for (unsigned i = 0; i < e->ms->n; i++)
		engine_pass(e, i, e->now, EPOCH_LAST);
}

char *ft_engine_key_format(struct ft_engine *e, unsigned module, const struct ft_flow_key *key,
                           char *buf, size_t len)
{
	const struct instance *in = &e->ms->in[module];
	if (in->ops && in->ops->key_format)
		in->ops->key_format(e->m[module].ctx, key, buf, len);
	else
		ft_flow_key_format(key, buf, len);
	return buf;
}

void ft_engine_stats(const struct ft_engine *e, unsigned module, struct ft_engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (module >= e->ms->n)
		return;
	struct ft_table_stats ts;
	ft_table_stats(e->m[module].flows, &ts);
	*out = e->m[module].st;
	out->flows = ts.flows;
	if (e->m[module].ctx)
		out->errors = e->ms->in[module].ops->errors(e->m[module].ctx);
}
