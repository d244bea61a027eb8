/*
 * The LuaJIT bridge: user modules written in Lua (docs/modules.md).
 *
 * A Lua module is a script returning a table that mirrors the reference's
 * module API (stateType, defaultState, flowKeys/extractFlowKey,
 * handlePacket, checkInterval, checkInitializer, checkExpiry,
 * checkFinalizer, buildPacketFilter, and our checkMerge).  Loading it builds
 * a struct ft_module (state size and default state from the FFI type) plus
 * the per-engine hooks of module_pvt.h.
 *
 * States: every analyzer engine opens a lua_State of its own and runs the
 * script there; states share nothing.  One more state, the finalizer state,
 * is opened at load (it also validates the script, so errors fail at start)
 * and runs checkMerge and checkFinalizer under `lock`: each analyzer's
 * checkState is copied into it as plain data (numbers, strings, booleans,
 * nested tables) at the end of its pass.
 *
 * Speed: the engine hands a whole burst (up to 32 packets) to one call of a
 * Lua trampoline (lua_prelude.lua) that loops over it, so LuaJIT compiles
 * the loop and the user's handlePacket into one trace; per-flow state and
 * packets are cdata pointers into C memory, never copies.
 *
 * Faults: every call is a lua_pcall with a traceback handler.  The
 * trampoline records which element it is at; after an error the element's
 * flow state is restored from the snapshot the trampoline took before the
 * call, the error is counted and logged (the first LOG_FIRST with their
 * traceback, then at most one a second), and the batch resumes at the next
 * element.  With strict set, the first error ends the process.
 */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flowtrack/module_pvt.h"
#include "qq/qq.h"

#define SEC 1000000000ull
#define LOG_FIRST 5      /* errors logged in full per module, before rate limiting */
#define LOG_EVERY_NS SEC /* afterwards: at most one line a second */
#define COPY_DEPTH 32    /* nesting limit of a checkState moved between states */
#define DEFAULT_IDLE_NS (30 * SEC)

static const char prelude[] = {
#include "lua_prelude.inc"
};

/* Fixed stack slots of every state (below them nothing; above them a call's frame). */
enum {
	IDX_MSGH = 1, /* traceback handler */
	IDX_HANDLE,
	IDX_EXTRACT,
	IDX_CHECK_BEGIN,
	IDX_CHECK_BATCH,
	IDX_CHECK_END,
	IDX_FILTER,
	IDX_MERGE,
	IDX_FINAL,
	IDX_KEY_TEXT,
	IDX_TOP = IDX_KEY_TEXT
};

struct lua_mod {
	struct ft_module m; /* what the engine sees; name = path */
	char *path, *args;
	void *default_state;
	int key_custom, has_expiry, has_filter;
	int strict;
	pthread_mutex_t lock; /* the finalizer state F and fnow */
	lua_State *F;
	uint64_t fnow;                /* flowscope.now() in the finalizer: the newest pass merged */
	_Atomic uint64_t logged;      /* errors seen by all states (for the log's rate limit) */
	_Atomic uint64_t last_log_ns; /* wall time of the last rate-limited line */
	_Atomic uint64_t final_errors;
	atomic_int fatal; /* --strict-modules and an error happened: the caller stops */
};

struct lua_ctx {
	struct lua_mod *mod;
	lua_State *L;
	unsigned engine;
	uint8_t *snap;    /* the state of the flow being handled, before the call */
	uint64_t now;     /* capture time for flowscope.now(): read by Lua through a pointer */
	uint64_t errors;  /* written by the engine's thread only */
	uint64_t idle_ns; /* default expiry */
};

/* ---- errors ---------------------------------------------------------------------------------- */

/*
 * A runtime error in `what` (message and traceback on top of L's stack,
 * popped here).  Counted by the caller; logged here, rate-limited per module.
 */
static void report_error(struct lua_mod *m, lua_State *L, unsigned engine, const char *what)
{
	const char *msg = lua_tostring(L, -1);
	uint64_t n = atomic_fetch_add_explicit(&m->logged, 1, memory_order_relaxed) + 1;
	if (m->strict) {
		/* the first one is the report; the caller stops soon (ft_modset_fatal) */
		int no = 0;
		if (atomic_compare_exchange_strong(&m->fatal, &no, 1))
			fprintf(stderr,
			        "flowscope: module %s: error in %s (analyzer %u), fatal with "
			        "--strict-modules: %s\n",
			        m->path, what, engine, msg ? msg : "?");
		lua_pop(L, 1);
		return;
	}
	if (n <= LOG_FIRST) {
		fprintf(stderr, "flowscope: module %s: error %llu in %s (analyzer %u): %s\n",
		        m->path, (unsigned long long)n, what, engine, msg ? msg : "?");
	} else {
		/* relaxed: the log's pacing only, no data hangs on it */
		uint64_t now = qq_clock_ns(CLOCK_MONOTONIC),
		         last = atomic_load_explicit(&m->last_log_ns, memory_order_relaxed);
		if (now - last >= LOG_EVERY_NS &&
		    atomic_compare_exchange_strong_explicit(
		        &m->last_log_ns, &last, now, memory_order_relaxed, memory_order_relaxed)) {
			const char *nl = msg ? strchr(msg, '\n') : NULL;
			fprintf(stderr,
			        "flowscope: module %s: %llu errors so far; latest in %s: %.*s\n",
			        m->path, (unsigned long long)n, what,
			        nl ? (int)(nl - msg) : (int)strlen(msg ? msg : "?"),
			        msg ? msg : "?");
		}
	}
	lua_pop(L, 1);
}

static int msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
	return 1;
}

/* ---- states ---------------------------------------------------------------------------------- */

static void set_offset(lua_State *L, const char *name, size_t off)
{
	lua_pushinteger(L, (lua_Integer)off);
	lua_setfield(L, -2, name);
}

/* The table of facts the prelude checks and uses (C layouts, helper functions). */
static void push_c_info(lua_State *L, uint64_t *nowp)
{
	lua_newtable(L);
	lua_newtable(L);
	set_offset(L, "struct ft_flow.state", offsetof(struct ft_flow, state));
	set_offset(L, "struct ft_flow.triggered", offsetof(struct ft_flow, triggered));
	set_offset(L, "struct ft_flow.last_ns", offsetof(struct ft_flow, last_ns));
	set_offset(L, "struct ft_packet_ctx.data", offsetof(struct ft_packet_ctx, data));
	set_offset(L, "struct ft_packet_ctx.pkt", offsetof(struct ft_packet_ctx, pkt));
	set_offset(L, "struct ft_packet_ctx.dir", offsetof(struct ft_packet_ctx, dir));
	set_offset(L, "struct ft_packet.src", offsetof(struct ft_packet, src));
	set_offset(L, "struct ft_packet.sport", offsetof(struct ft_packet, sport));
	set_offset(L, "struct ft_packet.vlan", offsetof(struct ft_packet, vlan));
	set_offset(L, "struct ft_flow_key.vlan", offsetof(struct ft_flow_key, vlan));
	set_offset(L, "struct ft_flow_key.vlan_inner", offsetof(struct ft_flow_key, vlan_inner));
	set_offset(L, "struct ft__burst.key", offsetof(struct ft__burst, key));
	set_offset(L, "struct ft__burst.pos", offsetof(struct ft__burst, pos));
	set_offset(L, "struct ft__check_batch.pos", offsetof(struct ft__check_batch, pos));
	lua_setfield(L, -2, "offsets");
	set_offset(L, "burst_size", sizeof(struct ft__burst));
	set_offset(L, "check_size", sizeof(struct ft__check_batch));
	lua_pushlightuserdata(L, (void *)(uintptr_t)ft_addr_format);
	lua_setfield(L, -2, "addr_format");
	lua_pushlightuserdata(L, (void *)(uintptr_t)ft_proto_name);
	lua_setfield(L, -2, "proto_name");
	lua_pushlightuserdata(L, nowp);
	lua_setfield(L, -2, "now_ptr");
}

/* Copies the message on top of L (the first line of a traceback) into err and pops it. */
static void take_error(lua_State *L, char *err, size_t errlen)
{
	const char *msg = lua_tostring(L, -1);
	size_t n = msg ? strcspn(msg, "\n") : 0;
	snprintf(err, errlen, "%.*s", (int)n, msg ? msg : "unknown Lua error");
	lua_pop(L, 1);
}

/*
 * A new state running the prelude and the module script, with the
 * trampolines in their fixed slots and the module's info table above them
 * (IDX_TOP + 1).  Returns the state, or NULL with err (file:line: message)
 * and *rc set.
 */
static lua_State *state_open(struct lua_mod *m, void *snap, struct ft__burst *b,
                             struct ft__check_batch *cb, uint64_t *nowp, int *rc, char *err,
                             size_t errlen)
{
	lua_State *L = luaL_newstate();
	if (!L) {
		snprintf(err, errlen, "module %s: cannot create a Lua state (out of memory)",
		         m->path);
		*rc = -ENOMEM;
		return NULL;
	}
	luaL_openlibs(L);
	lua_pushcfunction(L, msgh); /* IDX_MSGH */
	*rc = -EINVAL;
	if (luaL_loadbuffer(L, prelude, sizeof(prelude) - 1, "=flowscope_prelude") != 0)
		goto fail;
	push_c_info(L, nowp);
	if (lua_pcall(L, 1, 1, IDX_MSGH) != 0) /* -> bind */
		goto fail;
	int lr = luaL_loadfile(L, m->path);
	if (lr != 0) {
		if (lr == LUA_ERRFILE)
			*rc = -ENOENT;
		goto fail;
	}
	lua_pushstring(L, m->args ? m->args : "");
	if (lua_pcall(L, 1, 1, IDX_MSGH) != 0) /* the script -> its module table */
		goto fail;
	/* bind(M, path, args, snap, burst, batch) -> info, trampolines */
	lua_pushstring(L, m->path);
	lua_pushstring(L, m->args ? m->args : "");
	void *ptrs[3] = {snap, b, cb};
	for (int i = 0; i < 3; i++)
		if (ptrs[i])
			lua_pushlightuserdata(L, ptrs[i]);
		else
			lua_pushnil(L);
	if (lua_pcall(L, 6, 2, IDX_MSGH) != 0)
		goto fail;
	/* stack: msgh, info, trampolines -> msgh, the trampolines in their slots, info */
	static const char *const slots[] = {"handle",      "extract",   "check_begin",
	                                    "check_batch", "check_end", "filter",
	                                    "merge",       "final",     "key_text"};
	for (int i = 0; i < (int)(sizeof(slots) / sizeof(slots[0])); i++)
		lua_getfield(L, IDX_MSGH + 2, slots[i]);
	lua_remove(L, IDX_MSGH + 2);
	lua_pushvalue(L, IDX_MSGH + 1);
	lua_remove(L, IDX_MSGH + 1);
	*rc = 0;
	return L;
fail:
	take_error(L, err, errlen);
	lua_close(L);
	return NULL;
}

/* Reads the module description from the info table at IDX_TOP + 1 of the finalizer state. */
static int mod_describe(struct lua_mod *m, char *err, size_t errlen)
{
	lua_State *L = m->F;
	int info = IDX_TOP + 1;
	size_t len;
	lua_getfield(L, info, "state_size");
	m->m.state_size = (size_t)lua_tointeger(L, -1);
	lua_getfield(L, info, "default_state");
	const char *def = lua_tolstring(L, -1, &len);
	if (len != m->m.state_size || !(m->default_state = malloc(len ? len : 1))) {
		snprintf(err, errlen, "module %s: out of memory", m->path);
		return -ENOMEM;
	}
	memcpy(m->default_state, def, len);
	lua_getfield(L, info, "interval");
	double iv = lua_tonumber(L, -1);
	lua_getfield(L, info, "key_custom");
	m->key_custom = lua_toboolean(L, -1);
	lua_getfield(L, info, "key_flags");
	m->m.key_flags = (unsigned)lua_tointeger(L, -1) | (m->key_custom ? FT_KEY_OWN : 0);
	lua_getfield(L, info, "has_expiry");
	m->has_expiry = lua_toboolean(L, -1);
	lua_getfield(L, info, "has_filter");
	m->has_filter = lua_toboolean(L, -1);
	lua_settop(L, IDX_TOP); /* the finalizer keeps only its slots */
	if (iv < 0 || iv > 86400) {
		snprintf(err, errlen, "module %s: checkInterval %g s: must be 0 < s <= 86400",
		         m->path, iv);
		return -EINVAL;
	}
	m->m.default_state = m->default_state;
	m->m.check_interval_ns = (uint64_t)(iv * 1e9);
	return 0;
}

/* ---- moving a checkState between states ------------------------------------------------------ */

/*
 * Pushes onto `to` a copy of the value at index idx of `from`: numbers,
 * strings, booleans and tables of them.  Returns 0, or -1 with the offending
 * type in *bad (nothing pushed).
 */
static int xcopy(lua_State *from, int idx, lua_State *to, int depth, const char **bad)
{
	switch (lua_type(from, idx)) {
	case LUA_TNIL:
		lua_pushnil(to);
		return 0;
	case LUA_TBOOLEAN:
		lua_pushboolean(to, lua_toboolean(from, idx));
		return 0;
	case LUA_TNUMBER:
		lua_pushnumber(to, lua_tonumber(from, idx));
		return 0;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(from, idx, &len);
		lua_pushlstring(to, s, len);
		return 0;
	}
	case LUA_TTABLE:
		break;
	default:
		*bad = lua_typename(from, lua_type(from, idx));
		return -1;
	}
	if (depth >= COPY_DEPTH) {
		*bad = "table nested too deep (or a cycle)";
		return -1;
	}
	if (idx < 0)
		idx = lua_gettop(from) + idx + 1;
	lua_newtable(to);
	lua_pushnil(from);
	while (lua_next(from, idx) != 0) {
		/* key at -2, value at -1 */
		if (xcopy(from, -2, to, depth + 1, bad) != 0 ||
		    xcopy(from, -1, to, depth + 1, bad) != 0) {
			lua_pop(from, 2); /* the caller resets `to` */
			return -1;
		}
		lua_rawset(to, -3);
		lua_pop(from, 1);
	}
	return 0;
}

/* A checkState in the finalizer state, as the engine's opaque check pointer. */
static void *ref_to_check(int ref)
{
	return ref > 0 ? (void *)(uintptr_t)ref : NULL;
}

static int check_to_ref(void *check)
{
	return check ? (int)(uintptr_t)check : LUA_NOREF;
}

/* ---- per-engine hooks ------------------------------------------------------------------------ */

static void *ctx_open(void *inst, unsigned engine, struct ft__burst *b, struct ft__check_batch *cb,
                      char *err, size_t errlen)
{
	struct lua_mod *m = inst;
	struct lua_ctx *c = calloc(1, sizeof(*c));
	int rc;
	if (!c || !(c->snap = malloc(m->m.state_size ? m->m.state_size : 1))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->mod = m;
	c->engine = engine;
	c->idle_ns = DEFAULT_IDLE_NS;
	c->L = state_open(m, c->snap, b, cb, &c->now, &rc, err, errlen);
	if (!c->L) {
		free(c->snap);
		free(c);
		return NULL;
	}
	lua_settop(c->L, IDX_TOP);
	return c;
}

static void ctx_close(void *vc)
{
	struct lua_ctx *c = vc;
	if (!c)
		return;
	lua_close(c->L);
	free(c->snap);
	free(c);
}

static void ctx_error(struct lua_ctx *c, const char *what)
{
	c->errors++;
	report_error(c->mod, c->L, c->engine, what);
}

/* Calls the trampoline in `slot` over batch b until it completes, skipping failed elements. */
static void run_batch(struct lua_ctx *c, int slot, void *b, uint32_t *pos, uint32_t n,
                      const char *what, void (*undo)(struct lua_ctx *c, void *b, uint32_t at))
{
	lua_State *L = c->L;
	*pos = 0;
	while (*pos < n) {
		lua_pushvalue(L, slot); /* the trampoline knows b (bound at open) */
		if (lua_pcall(L, 0, 0, IDX_MSGH) == 0)
			return;
		ctx_error(c, what);
		undo(c, b, *pos);
		++*pos;
	}
}

static void handle_undo(struct lua_ctx *c, void *vb, uint32_t at)
{
	struct ft__burst *b = vb;
	if (c->mod->m.state_size)
		memcpy(b->flow[at]->state, c->snap, c->mod->m.state_size);
	b->trig[at] = 0;
}

static void ctx_handle(void *vc, struct ft__burst *b)
{
	struct lua_ctx *c = vc;
	memset(b->trig, 0, b->n);
	for (uint32_t j = 0; j < b->n; j++)
		if (b->pkt[j]->ts_ns > c->now)
			c->now = b->pkt[j]->ts_ns;
	run_batch(c, IDX_HANDLE, b, &b->pos, b->n, "handlePacket", handle_undo);
}

static void extract_undo(struct lua_ctx *c, void *vb, uint32_t at)
{
	(void)c;
	((struct ft__burst *)vb)->ok[at] = 0;
}

static void ctx_extract(void *vc, struct ft__burst *b)
{
	memset(b->ok, 0, b->n);
	run_batch(vc, IDX_EXTRACT, b, &b->pos, b->n, "extractFlowKey", extract_undo);
}

static void ctx_check_begin(void *vc, uint64_t now_ns)
{
	struct lua_ctx *c = vc;
	c->now = now_ns;
	lua_pushvalue(c->L, IDX_CHECK_BEGIN);
	if (lua_pcall(c->L, 0, 0, IDX_MSGH) != 0)
		ctx_error(c, "checkInitializer");
}

static void check_undo(struct lua_ctx *c, void *vb, uint32_t at)
{
	struct ft__check_batch *b = vb;
	(void)c;
	b->expired[at] = 0; /* the flow stays as it was */
	b->last[at] = b->flow[at]->last_ns;
}

static void ctx_check_batch(void *vc, struct ft__check_batch *b)
{
	struct lua_ctx *c = vc;
	for (uint32_t j = 0; j < b->n; j++) {
		b->last[j] = b->flow[j]->last_ns;
		b->expired[j] = !c->mod->has_expiry && c->now > b->flow[j]->last_ns + c->idle_ns;
	}
	if (c->mod->has_expiry)
		run_batch(c, IDX_CHECK_BATCH, b, &b->pos, b->n, "checkExpiry", check_undo);
	for (uint32_t j = 0; j < b->n; j++) {
		/* a last-seen in seconds loses sub-microsecond precision: never retire too early */
		uint64_t real = b->flow[j]->last_ns;
		if (b->last[j] < real && real - b->last[j] < 1000)
			b->last[j] = real;
	}
}

/* The pass's checkState, moved into the finalizer state. */
static void *ctx_check_end(void *vc)
{
	struct lua_ctx *c = vc;
	struct lua_mod *m = c->mod;
	lua_State *L = c->L;
	int ref = LUA_NOREF;
	lua_pushvalue(L, IDX_CHECK_END);
	if (lua_pcall(L, 0, 1, IDX_MSGH) != 0) {
		ctx_error(c, "checker");
		return NULL;
	}
	const char *bad = NULL;
	pthread_mutex_lock(&m->lock);
	if (c->now > m->fnow)
		m->fnow = c->now;
	int top = lua_gettop(m->F);
	if (xcopy(L, -1, m->F, 0, &bad) == 0) {
		ref = luaL_ref(m->F, LUA_REGISTRYINDEX);
	} else {
		lua_settop(m->F, top);
		lua_pushfstring(L,
		                "checkState holds a %s: only numbers, strings, booleans and "
		                "tables of them move between analyzer threads",
		                bad);
		pthread_mutex_unlock(&m->lock);
		lua_remove(L, -2);
		ctx_error(c, "checker");
		return NULL;
	}
	pthread_mutex_unlock(&m->lock);
	lua_pop(L, 1);
	return ref_to_check(ref);
}

static int ctx_filter(void *vc, const struct ft_flow *f, char *buf, size_t len)
{
	struct lua_ctx *c = vc;
	lua_State *L = c->L;
	if (!c->mod->has_filter)
		return 0;
	lua_pushvalue(L, IDX_FILTER);
	lua_pushlightuserdata(L, (void *)f);
	if (lua_pcall(L, 1, 1, IDX_MSGH) != 0) {
		ctx_error(c, "buildPacketFilter");
		return 0;
	}
	const char *s = lua_tostring(L, -1);
	size_t n = s ? strlen(s) : 0;
	if (n >= len) { /* the flow is dumped by its key instead */
		lua_pushfstring(L, "buildPacketFilter returned %d bytes, at most %d", (int)n,
		                (int)len - 1);
		lua_remove(L, -2);
		ctx_error(c, "buildPacketFilter");
		return 0;
	}
	if (n)
		memcpy(buf, s, n + 1);
	lua_pop(L, 1);
	return n > 0;
}

/*
 * The module's own key as text: formatFlowKey's string, else the key type and
 * its bytes in hex (lua_prelude.lua); after an error (counted) the 40 key bytes
 * in hex.
 */
static void ctx_key_format(void *vc, const struct ft_flow_key *key, char *buf, size_t len)
{
	struct lua_ctx *c = vc;
	lua_State *L = c->L;
	lua_pushvalue(L, IDX_KEY_TEXT);
	lua_pushlightuserdata(L, (void *)key); /* a key is the start of its flow */
	if (lua_pcall(L, 1, 1, IDX_MSGH) == 0) {
		snprintf(buf, len, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return;
	}
	ctx_error(c, "formatFlowKey");
	const uint8_t *b = (const uint8_t *)key;
	size_t n = (size_t)snprintf(buf, len, "key ");
	for (size_t i = 0; i < sizeof(*key) && n + 2 < len && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%02x", b[i]);
}

static uint64_t ctx_errors(void *vc)
{
	return ((struct lua_ctx *)vc)->errors;
}

/* Two variants: with the module's own flow keys (extractFlowKey), or the built-in key. */
static const struct ft__module_ops lua_ops_custom_key = {
    .open = ctx_open,
    .close = ctx_close,
    .extract = ctx_extract,
    .handle = ctx_handle,
    .check_begin = ctx_check_begin,
    .check_batch = ctx_check_batch,
    .check_end = ctx_check_end,
    .build_filter = ctx_filter,
    .errors = ctx_errors,
    .key_format = ctx_key_format,
};

static const struct ft__module_ops lua_ops = {
    .open = ctx_open,
    .close = ctx_close,
    .handle = ctx_handle,
    .check_begin = ctx_check_begin,
    .check_batch = ctx_check_batch,
    .check_end = ctx_check_end,
    .build_filter = ctx_filter,
    .errors = ctx_errors,
};

/* ---- the finalizer state (struct ft_module callbacks) ---------------------------------------- */

static void final_error(struct lua_mod *m, const char *what)
{
	atomic_fetch_add_explicit(&m->final_errors, 1, memory_order_relaxed);
	report_error(m, m->F, 0, what);
}

static void lua_check_merge(void *inst, void *into, void *from)
{
	struct lua_mod *m = inst;
	int a = check_to_ref(into), b = check_to_ref(from);
	pthread_mutex_lock(&m->lock);
	if (a != LUA_NOREF && b != LUA_NOREF) {
		lua_pushvalue(m->F, IDX_MERGE);
		lua_rawgeti(m->F, LUA_REGISTRYINDEX, a);
		lua_rawgeti(m->F, LUA_REGISTRYINDEX, b);
		if (lua_pcall(m->F, 2, 0, IDX_MSGH) != 0)
			final_error(m, "checkMerge");
	}
	luaL_unref(m->F, LUA_REGISTRYINDEX, b);
	pthread_mutex_unlock(&m->lock);
}

static void lua_check_final(void *inst, void *check, uint64_t kept, uint64_t purged)
{
	struct lua_mod *m = inst;
	int ref = check_to_ref(check);
	pthread_mutex_lock(&m->lock);
	lua_pushvalue(m->F, IDX_FINAL);
	if (ref != LUA_NOREF)
		lua_rawgeti(m->F, LUA_REGISTRYINDEX, ref);
	else
		lua_newtable(m->F);
	lua_pushnumber(m->F, (lua_Number)kept);
	lua_pushnumber(m->F, (lua_Number)purged);
	if (lua_pcall(m->F, 3, 0, IDX_MSGH) != 0)
		final_error(m, "checkFinalizer");
	luaL_unref(m->F, LUA_REGISTRYINDEX, ref);
	lua_gc(m->F, LUA_GCSTEP, 0);
	pthread_mutex_unlock(&m->lock);
}

static int lua_never(void *inst, struct ft_flow *f, const struct ft_packet_ctx *p, int is_first)
{
	(void)inst, (void)f, (void)p, (void)is_first;
	return 0; /* the engine calls the hooks instead */
}

/* ---- loading ---------------------------------------------------------------------------------- */

int ft__lua_load(const char *path, const char *args, const struct ft_module **mod,
                 const struct ft__module_ops **ops, void **inst, char *err, size_t errlen)
{
	struct lua_mod *m = calloc(1, sizeof(*m));
	int rc;
	if (m)
		pthread_mutex_init(&m->lock, NULL);
	if (!m || !(m->path = strdup(path)) || (args && !(m->args = strdup(args)))) {
		ft__lua_destroy(m);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->m = (struct ft_module){
	    .abi = FT_MODULE_ABI,
	    .name = m->path,
	    .handle_packet = lua_never,
	    .check_merge = lua_check_merge,
	    .check_final = lua_check_final,
	};
	m->F = state_open(m, NULL, NULL, NULL, &m->fnow, &rc, err, errlen);
	if (!m->F || (rc = mod_describe(m, err, errlen)) != 0) {
		ft__lua_destroy(m);
		return rc;
	}
	*mod = &m->m;
	*ops = m->key_custom ? &lua_ops_custom_key : &lua_ops;
	*inst = m;
	return 0;
}

void ft__lua_set_strict(void *inst, int strict)
{
	((struct lua_mod *)inst)->strict = strict;
}

int ft__lua_fatal(void *inst)
{
	return atomic_load(&((struct lua_mod *)inst)->fatal);
}

uint64_t ft__lua_final_errors(void *inst)
{
	return atomic_load_explicit(&((struct lua_mod *)inst)->final_errors, memory_order_relaxed);
}

void ft__lua_destroy(void *inst)
{
	struct lua_mod *m = inst;
	if (!m)
		return;
	if (m->F)
		lua_close(m->F);
	pthread_mutex_destroy(&m->lock);
	free(m->default_state);
	free(m->path);
	free(m->args);
	free(m);
}
