/*
 * Private interface between the analyzer engine (module.c), the flow table
 * (table.c) and the LuaJIT bridge (lua.c).  Not installed, not part of the
 * module ABI: an external .so module never sees these.
 *
 * A Lua module is a struct ft_module built at load time (state_size,
 * default_state, key, interval read from the script) plus the per-engine
 * hooks below, which the engine calls instead of handle_packet and
 * check_expiry.  They exist because a Lua module is not thread-agnostic
 * like a C one: each analyzer engine owns a lua_State of its own (a "ctx"),
 * and a packet burst is handed to Lua in one call so the per-packet loop
 * runs inside JIT-compiled Lua instead of crossing C -> Lua per packet.
 *
 * Threading: a ctx belongs to the engine that opened it and is only used
 * by the thread running that engine.  check_merge / check_final of the
 * struct ft_module run on whichever thread finishes an interval and use the
 * module's own finalizer state under its own lock (lua.c).
 */
#ifndef FLOWSCOPE_FLOWTRACK_MODULE_PVT_H
#define FLOWSCOPE_FLOWTRACK_MODULE_PVT_H

#include "flowtrack/flowtrack.h"

#define FT__CHECK_BATCH 64 /* flows per checker call into a Lua module */

/* One burst of packets for a Lua module; filled by the engine, read by the Lua trampoline. */
struct ft__burst {
	struct ft_flow *flow[FT_ENGINE_BURST];
	const struct ft_packet_ctx *pkt[FT_ENGINE_BURST];
	uint8_t is_new[FT_ENGINE_BURST];
	uint8_t trig[FT_ENGINE_BURST]; /* out: handlePacket returned true */
	uint8_t ok[FT_ENGINE_BURST];   /* out (extract): extractFlowKey accepted the packet */
	uint32_t n;
	uint32_t pos; /* the trampoline's progress: after an error, resume at pos + 1 */
	struct ft_flow_key key[FT_ENGINE_BURST]; /* out (extract): the custom keys */
};

/* One batch of flows for a Lua module's checkExpiry. */
struct ft__check_batch {
	struct ft_flow *flow[FT__CHECK_BATCH];
	uint64_t last[FT__CHECK_BATCH];   /* out: last-seen time, ns (preset to flow->last_ns) */
	uint8_t expired[FT__CHECK_BATCH]; /* out */
	uint32_t n;
	uint32_t pos;
};

/* Per-engine hooks of a module (NULL for C modules). */
struct ft__module_ops {
	/*
	 * The engine's context (a lua_State), created by ft_engine_create; NULL +
	 * err on error.  b and cb are the only batches the engine will pass it.
	 */
	void *(*open)(void *inst, unsigned engine, struct ft__burst *b, struct ft__check_batch *cb,
	              char *err, size_t errlen);
	void (*close)(void *ctx);
	/* Custom keys: fills b->key[j] / b->ok[j] for b->pkt[0..n); NULL when the key is built in. */
	void (*extract)(void *ctx, struct ft__burst *b);
	/* handlePacket for b->flow/pkt/is_new[0..n): sets b->trig[j]. */
	void (*handle)(void *ctx, struct ft__burst *b);
	/* A checker pass: begin (now = capture time), batches of flows, end -> merge-able state. */
	void (*check_begin)(void *ctx, uint64_t now_ns);
	void (*check_batch)(void *ctx, struct ft__check_batch *b);
	void *(*check_end)(void *ctx);
	int (*build_filter)(void *ctx, const struct ft_flow *flow, char *buf, size_t len);
	uint64_t (*errors)(void *ctx); /* runtime errors of this engine's callbacks */
	/* Custom keys: a key of the module's own type as text; NULL when the key is built in. */
	void (*key_format)(void *ctx, const struct ft_flow_key *key, char *buf, size_t len);
};

/*
 * Loads the Lua module at `path` with argument text `args` (may be NULL):
 * *mod describes it (owned by *inst), *ops are its hooks, *inst is freed by
 * ft__lua_destroy.  Returns 0, or -ENOENT (no such file) / -EINVAL (syntax
 * error, error while loading, missing or wrong field) / -ENOMEM with
 * "file:line: message" in err.
 */
int ft__lua_load(const char *path, const char *args, const struct ft_module **mod,
                 const struct ft__module_ops **ops, void **inst, char *err, size_t errlen);
void ft__lua_destroy(void *inst);
/* strict: the first runtime error in the module's callbacks ends the process. */
void ft__lua_set_strict(void *inst, int strict);
int ft__lua_fatal(void *inst);             /* strict, and an error happened */
uint64_t ft__lua_final_errors(void *inst); /* errors in checkMerge / checkFinalizer */

/* Non-zero if the next insert into t would evict a flow. */
int ft__table_full(const struct ft_table *t);

/*
 * The one burst update of a flow table (the engine's modules, ft_table_track_burst):
 * keys and hashes first with the slots prefetched, then the records FT__LOOKAHEAD lookups
 * ahead of their use, so the burst's cache misses overlap instead of following one another.
 * Inline so that each caller's callbacks are inlined into its loop.
 */
#define FT__LOOKAHEAD 8 /* burst lookups: how far ahead flow records are prefetched */

/*
 * The first half: each packet's context (c), key and hash (ok[j] 0: no flow), the slots
 * prefetched, then the first FT__LOOKAHEAD records.  Keys are of kind/flags, or already in
 * key[] with `extracted` saying which (dir 0).
 */
static inline void ft__burst_keys(const struct ft_table *t, const struct ft_packet_ctx *p,
                                  unsigned n, enum ft_key_kind kind, unsigned flags,
                                  const uint8_t *extracted, struct ft_flow_key *key,
                                  struct ft_packet_ctx *c, uint64_t *h, uint8_t *ok)
{
	for (unsigned j = 0; j < n; j++) {
		c[j] = p[j];
		if (extracted) {
			ok[j] = extracted[j];
			c[j].dir = 0;
		} else {
			ok[j] = ft_flow_key_make(p[j].pkt, kind, flags, &key[j], &c[j].dir) == 0;
		}
		if (ok[j]) {
			h[j] = ft_flow_key_hash(&key[j]);
			ft_table_prefetch(t, h[j]);
		}
	}
	for (unsigned j = 0; j < n && j < FT__LOOKAHEAD; j++)
		if (ok[j])
			ft_table_prefetch_flow(t, h[j]);
}

/*
 * The second half: each packet with a flow looked up (prefetching FT__LOOKAHEAD ahead) and
 * handed to visit(arg, j, flow, is_new); before (may be NULL) runs before each lookup (a
 * caller that holds on to flows hands them over before a lookup that would evict).
 */
static inline void
ft__burst_update(struct ft_table *t, const struct ft_flow_key *key, const uint64_t *h,
                 const uint8_t *ok, unsigned n, void (*before)(void *arg),
                 void (*visit)(void *arg, unsigned j, struct ft_flow *f, int is_new), void *arg)
{
	for (unsigned j = 0; j < n; j++) {
		int is_new;
		if (j + FT__LOOKAHEAD < n && ok[j + FT__LOOKAHEAD])
			ft_table_prefetch_flow(t, h[j + FT__LOOKAHEAD]);
		if (!ok[j])
			continue;
		if (before)
			before(arg);
		struct ft_flow *f = ft_table_lookup(t, &key[j], h[j], &is_new);
		visit(arg, j, f, is_new);
	}
}

/* A flow's own counters for packet c (its direction in c->dir). */
static inline void ft__flow_count(struct ft_flow *f, int is_new, const struct ft_packet_ctx *c)
{
	if (is_new)
		f->first_ns = c->ts_ns;
	if (c->ts_ns > f->last_ns)
		f->last_ns = c->ts_ns;
	f->packets[c->dir]++;
	f->bytes[c->dir] += c->wirelen;
	f->tcp_flags[c->dir] |= c->pkt->tcp_flags;
}

#endif
