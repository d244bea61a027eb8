/*
 * Triggers from outside the recorder (flowtrack.h, "triggers from outside").
 *
 * A request is one object shared by every analyzer's inbox: its poster and
 * each inbox hold a reference, the last one frees it, so a poster that gave
 * up waiting (FT_E_TIMEDOUT) leaves nothing dangling.  Each analyzer applies
 * it to its own table in its own thread and folds its part of the result into
 * the request under the request's lock; the poster waits on the request's
 * condition until every analyzer answered or its time is up.  A request with
 * for_ns stays referenced by each analyzer's pending list until its time
 * passes, and every new flow is tested against the pending ones once.
 *
 * Inboxes are bounded rings of request pointers (INBOX_CAP): a post that
 * finds one full is refused (-EBUSY) rather than queued without bound.
 *
 * Costs in the analyzer: nothing per packet (a triggered flow's flag is all);
 * per new flow, one hash lookup among the pending flow triggers (a flow table
 * of their keys, made on the first one, PEND_KEYS at most: beyond, the least
 * recently added goes) and one BPF run per pending filter trigger.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowtrack/flowtrack.h"

#define INBOX_CAP 256
#define PEND_KEYS 65536       /* pending flow triggers kept per analyzer */
#define SCAN_NS 1000000000ull /* how often triggered flows are checked for their end */

struct request {
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned refs; /* the poster's and each analyzer's, pending lists included */
	unsigned left; /* analyzers that have not answered */
	int stopped;   /* the hub closed before an analyzer applied it */
	struct ft_trigger t;
	char community_id[FT_COMMUNITY_ID_LEN]; /* t.community_id points here */
	char *filter;
	struct bpf_program prog; /* when filter: compiled for an Ethernet packet */
	uint64_t now_ns, until_ns;
	struct ft_trigger_result res;
};

struct pending {
	struct request *r;
};

struct active {
	struct ft_flow_key key;
	uint64_t hash, last_ns;
};

/* One analyzer's side: its inbox (lock) and what its thread alone touches. */
struct analyzer {
	pthread_mutex_t lock;
	struct request *inbox[INBOX_CAP]; /* lock */
	unsigned head, count;             /* lock */
	/* the analyzer's thread only */
	struct pending *pend; /* pending filter triggers */
	size_t npend, cap_pend;
	struct ft_table *pend_keys; /* pending flow triggers by key: state a struct request * */
	struct active *act;
	size_t nact, cap_act;
	uint64_t next_scan;
	/* written by the thread, read by ft_trigger_stats (relaxed: gauges) */
	atomic_ulong g_pending, g_active;
} __attribute__((aligned(64)));

struct ft_trigger_hub {
	unsigned n;
	struct ft_trigger_events ev;
	atomic_int closed;
	atomic_ulong requests, flows, packets, too_late, refused;
	struct analyzer *a;
};

/* ---- requests -------------------------------------------------------------------------- */

static void request_put(struct request *r)
{
	pthread_mutex_lock(&r->lock);
	unsigned left = --r->refs;
	pthread_mutex_unlock(&r->lock);
	if (left)
		return;
	if (r->filter)
		pcap_freecode(&r->prog);
	free(r->filter);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->done);
	free(r);
}

static int request_new(const struct ft_trigger *t, uint64_t now_ns, struct request **out, char *err,
                       size_t errlen)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->t = *t;
	r->now_ns = now_ns;
	r->until_ns = t->for_ns ? now_ns + t->for_ns : 0;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->done, NULL);
	r->refs = 1;
	int e = 0;
	if (!t->has_key && t->community_id) {
		if (ft_community_id_valid(t->community_id)) {
			snprintf(r->community_id, sizeof(r->community_id), "%s", t->community_id);
			r->t.community_id = r->community_id;
		} else {
			snprintf(err, errlen, "community_id '%.64s': not a Community ID v1 (1:...)",
			         t->community_id);
			e = -EINVAL;
		}
	} else if (!t->has_key) {
		r->filter = strdup(t->filter ? t->filter : "");
		e = r->filter
		        ? ft_bpf_compile(FT_DLT_EN10MB, 65535, r->filter, &r->prog, err, errlen)
		        : -ENOMEM;
		if (e) {
			free(r->filter);
			r->filter = NULL;
		}
	}
	r->t.filter = r->filter;
	if (e) {
		request_put(r);
		return e;
	}
	*out = r;
	return 0;
}

/* ---- a packet made from a key, for filters ---------------------------------------------- */

static size_t put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

/* The L4 header of key's protocol from sport to dport; its length. */
static size_t key_l4(const struct ft_flow_key *k, uint16_t sport, uint16_t dport, uint8_t *p)
{
	size_t n = k->proto == 6 ? 20 : k->proto == 132 ? 12 : k->proto ? 8 : 0;
	memset(p, 0, n);
	if (k->proto == 6 || k->proto == 17 || k->proto == 132) {
		put16(p, sport);
		put16(p + 2, dport);
	}
	if (k->proto == 6) {
		p[12] = 0x50; /* data offset 5 */
		p[13] = 0x10; /* ACK */
	}
	if (k->proto == 17)
		put16(p + 4, 8);
	return n;
}

/* An Ethernet packet of key's flow, from b to a when rev; its length (buf >= 128 bytes). */
static size_t key_packet(const struct ft_flow_key *k, int rev, uint8_t *buf)
{
	const uint8_t *src = rev ? k->b : k->a, *dst = rev ? k->a : k->b;
	uint16_t sport = rev ? k->port_b : k->port_a, dport = rev ? k->port_a : k->port_b;
	int v4 = ft_addr_is_v4(k->a);
	size_t n = 12, ip;
	memset(buf, 0, 12);
	if (k->vlan)
		n += put16(buf + n, 0x8100), n += put16(buf + n, k->vlan);
	if (k->vlan_inner)
		n += put16(buf + n, 0x8100), n += put16(buf + n, k->vlan_inner);
	n += put16(buf + n, v4 ? 0x0800 : 0x86dd);
	ip = n;
	n += v4 ? 20 : 40;
	size_t l4 = key_l4(k, sport, dport, buf + n);
	memset(buf + ip, 0, n - ip);
	if (v4) {
		buf[ip] = 0x45;
		put16(buf + ip + 2, (uint16_t)(20 + l4));
		buf[ip + 6] = 0x40; /* DF: not a fragment */
		buf[ip + 8] = 64;
		buf[ip + 9] = k->proto;
		memcpy(buf + ip + 12, src + 12, 4);
		memcpy(buf + ip + 16, dst + 12, 4);
	} else {
		buf[ip] = 0x60;
		put16(buf + ip + 4, (uint16_t)l4);
		buf[ip + 6] = k->proto;
		buf[ip + 7] = 64;
		memcpy(buf + ip + 8, src, 16);
		memcpy(buf + ip + 24, dst, 16);
	}
	return n + l4;
}

/* Whether request r selects the flow of key k (its key, its Community ID, or its filter
   either way round). */
static int request_matches(const struct request *r, const struct ft_flow_key *k)
{
	char id[FT_COMMUNITY_ID_LEN];
	if (r->t.has_key)
		return memcmp(&r->t.key, k, sizeof(*k)) == 0;
	if (r->t.community_id)
		return ft_community_id(k, 0, id) == 0 && strcmp(id, r->t.community_id) == 0;
	uint8_t pkt[128];
	for (int rev = 0; rev < 2; rev++) {
		u_int len = (u_int)key_packet(k, rev, pkt);
		if (bpf_filter(r->prog.bf_insns, pkt, len, len))
			return 1;
	}
	return 0;
}

/* ---- in an analyzer ---------------------------------------------------------------------- */

/* What a match in this analyzer is measured against. */
struct apply {
	struct ft_trigger_hub *h;
	struct analyzer *a;
	const struct request *r;
	uint64_t oldest, newest, now, idle;
	struct ft_trigger_result part;
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *q = realloc(*p, c * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

/* Flow f matched: marked, its rule added (once), measured into ap->part. */
static void flow_matched(struct apply *ap, struct ft_flow *f)
{
	struct ft_trigger_hub *h = ap->h;
	struct analyzer *a = ap->a;
	struct ft_trigger_match m = {.key = f->key,
	                             .packets = f->packets[0] + f->packets[1],
	                             .first_ns = f->first_ns,
	                             .again = f->triggered};
	uint64_t t = ap->idle ? ap->now : f->last_ns;
	m.back_ns = t > f->first_ns ? t - f->first_ns : 0;
	m.first_lost = ap->oldest == 0 || f->first_ns < ap->oldest;
	if (!f->triggered &&
	    grow((void **)&a->act, &a->cap_act, a->nact + 1, sizeof(*a->act)) == 0) {
		a->act[a->nact++] = (struct active){
		    .key = f->key, .hash = ft_flow_key_hash(&f->key), .last_ns = f->last_ns};
		f->triggered = 1;
		h->ev.add(h->ev.arg, &f->key, ap->r->t.tag);
		atomic_store_explicit(&a->g_active, a->nact, memory_order_relaxed);
	}
	ap->part.flows++;
	ap->part.packets += m.packets;
	ap->part.lost_flows += m.first_lost;
	if (ap->part.listed < FT_TRIGGER_LISTED)
		ap->part.match[ap->part.listed++] = m;
	atomic_fetch_add_explicit(&h->flows, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->packets, m.packets, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->too_late, m.first_lost, memory_order_relaxed);
}

static void scan_visit(struct ft_flow *f, void *arg)
{
	struct apply *ap = arg;
	if (request_matches(ap->r, &f->key))
		flow_matched(ap, f);
}

/* This analyzer's part folded into the request; the poster woken when it was the last. */
static void request_answer(struct request *r, const struct ft_trigger_result *p, int stopped)
{
	pthread_mutex_lock(&r->lock);
	struct ft_trigger_result *s = &r->res;
	s->flows += p->flows;
	s->packets += p->packets;
	s->lost_flows += p->lost_flows;
	if (p->window_ns > s->window_ns)
		s->window_ns = p->window_ns;
	for (unsigned i = 0; i < p->listed && s->listed < FT_TRIGGER_LISTED; i++)
		s->match[s->listed++] = p->match[i];
	s->analyzers += !stopped;
	r->stopped |= stopped;
	if (--r->left == 0)
		pthread_cond_broadcast(&r->done);
	pthread_mutex_unlock(&r->lock);
}

static void apply_begin(struct apply *ap, struct ft_trigger_hub *h, struct analyzer *a,
                        const struct request *r, uint64_t now, uint64_t idle)
{
	*ap = (struct apply){.h = h, .a = a, .r = r, .now = now, .idle = idle};
	if (h->ev.window)
		h->ev.window(h->ev.arg, &ap->oldest, &ap->newest);
	ap->part.window_ns = ap->newest > ap->oldest ? ap->newest - ap->oldest : 0;
}

static void pending_gauge(struct analyzer *a)
{
	struct ft_table_stats st = {0};
	if (a->pend_keys)
		ft_table_stats(a->pend_keys, &st);
	atomic_store_explicit(&a->g_pending, a->npend + st.flows, memory_order_relaxed);
}

/* A pending flow trigger the key table had to evict (full): dropped. */
static void pending_evicted(struct ft_flow *f, void *arg)
{
	(void)arg;
	request_put(*(struct request **)f->state);
}

/* Keeps r (its reference) until its time: by key, or in the filter list.  0 or -ENOMEM. */
static int pending_add(struct analyzer *a, struct request *r)
{
	int is_new;
	if (!r->t.has_key) {
		if (grow((void **)&a->pend, &a->cap_pend, a->npend + 1, sizeof(*a->pend)) != 0)
			return -ENOMEM;
		a->pend[a->npend++] = (struct pending){.r = r};
	} else {
		if (!a->pend_keys &&
		    ft_table_create(PEND_KEYS, sizeof(struct request *), NULL, &a->pend_keys) != 0)
			return -ENOMEM;
		ft_table_set_evict_cb(a->pend_keys, pending_evicted, NULL);
		struct ft_flow *f =
		    ft_table_lookup(a->pend_keys, &r->t.key, ft_flow_key_hash(&r->t.key), &is_new);
		struct request **slot = (struct request **)f->state;
		if (!is_new && (*slot)->until_ns >= r->until_ns)
			return -EEXIST; /* one as long is kept already */
		if (!is_new)
			request_put(*slot);
		*slot = r;
	}
	pending_gauge(a);
	return 0;
}

/* Request r in this analyzer: the table now, then pending for its time. */
static void request_apply(struct ft_trigger_hub *h, struct analyzer *a, struct request *r,
                          struct ft_table *t, uint64_t now, uint64_t idle)
{
	struct apply ap;
	apply_begin(&ap, h, a, r, now, idle);
	if (r->t.has_key) {
		struct ft_flow *f = ft_table_find(t, &r->t.key, ft_flow_key_hash(&r->t.key));
		if (f)
			flow_matched(&ap, f);
	} else {
		ft_table_foreach(t, scan_visit, &ap);
	}
	request_answer(r, &ap.part, 0);
	if (r->until_ns > now && pending_add(a, r) == 0)
		return; /* the inbox's reference stays with the pending trigger */
	request_put(r);
}

struct key_expiry {
	struct ft_table *t;
	uint64_t now;
};

static void pending_key_visit(struct ft_flow *f, void *arg)
{
	struct key_expiry *x = arg;
	struct request *r = *(struct request **)f->state;
	if (r->until_ns > x->now)
		return;
	request_put(r);
	ft_table_remove(x->t, f);
}

/* Pending triggers past their time are dropped (the keys' table: once a second). */
static void pending_expire(struct analyzer *a, uint64_t now, int scan_keys)
{
	for (size_t i = 0; i < a->npend;) {
		if (a->pend[i].r->until_ns > now) {
			i++;
			continue;
		}
		request_put(a->pend[i].r);
		a->pend[i] = a->pend[--a->npend];
	}
	if (scan_keys && a->pend_keys) {
		struct key_expiry x = {.t = a->pend_keys, .now = now};
		ft_table_foreach(a->pend_keys, pending_key_visit, &x);
	}
	pending_gauge(a);
}

/* Triggered flows that left the table or went idle: ended, their rules retired. */
static void active_scan(struct ft_trigger_hub *h, struct analyzer *a, struct ft_table *t,
                        uint64_t now, uint64_t idle)
{
	if (now < a->next_scan)
		return;
	for (size_t i = 0; i < a->nact;) {
		struct active *x = &a->act[i];
		struct ft_flow *f = ft_table_find(t, &x->key, x->hash);
		if (f && f->last_ns + idle > now) {
			x->last_ns = f->last_ns;
			i++;
			continue;
		}
		if (f) {
			x->last_ns = f->last_ns;
			f->triggered = 0;
		}
		h->ev.expire(h->ev.arg, &x->key, x->last_ns);
		a->act[i] = a->act[--a->nact];
	}
	atomic_store_explicit(&a->g_active, a->nact, memory_order_relaxed);
}

void ft_trigger_poll(struct ft_trigger_hub *h, unsigned id, struct ft_table *t, uint64_t now_ns,
                     uint64_t idle_ns)
{
	struct analyzer *a = &h->a[id];
	struct request *got[INBOX_CAP];
	unsigned n = 0;
	pthread_mutex_lock(&a->lock);
	for (; a->count > 0; a->count--, a->head = (a->head + 1) % INBOX_CAP)
		got[n++] = a->inbox[a->head];
	pthread_mutex_unlock(&a->lock);
	for (unsigned i = 0; i < n; i++)
		request_apply(h, a, got[i], t, now_ns, idle_ns);
	int second = now_ns >= a->next_scan;
	if (a->npend || (second && a->pend_keys))
		pending_expire(a, now_ns, second);
	if (idle_ns && a->nact)
		active_scan(h, a, t, now_ns, idle_ns);
	if (second)
		a->next_scan = now_ns + SCAN_NS;
}

/* A new flow (its first packet p) against the pending triggers. */
static void new_flow(struct ft_trigger_hub *h, struct analyzer *a, struct ft_table *t,
                     const struct ft_packet_ctx *p)
{
	struct ft_flow_key key;
	if (ft_flow_key_make(p->pkt, FT_KEY_BIDIRECTIONAL, 0, &key, NULL) != 0)
		return;
	uint64_t hash = ft_flow_key_hash(&key);
	struct ft_flow *f = ft_table_find(t, &key, hash), *pk;
	struct apply ap = {.h = h, .a = a, .oldest = f ? f->first_ns : 0};
	if (!f)
		return;
	/* its first packet is in the ring: nothing lost; past their time: dropped by a poll */
	if (a->pend_keys && (pk = ft_table_find(a->pend_keys, &key, hash)) != NULL) {
		ap.r = *(struct request **)pk->state;
		flow_matched(&ap, f);
	}
	for (size_t i = 0; !f->triggered && i < a->npend; i++) {
		ap.r = a->pend[i].r;
		if (request_matches(ap.r, &key))
			flow_matched(&ap, f);
	}
}

void ft_trigger_new_flows(struct ft_trigger_hub *h, unsigned id, struct ft_table *t,
                          const struct ft_packet_ctx *p, const uint8_t *is_new, unsigned n)
{
	struct analyzer *a = &h->a[id];
	if (a->npend == 0 && !a->pend_keys)
		return;
	for (unsigned j = 0; j < n; j++)
		if (is_new[j])
			new_flow(h, a, t, &p[j]);
}

/* ---- the hub ------------------------------------------------------------------------------ */

int ft_trigger_hub_create(unsigned analyzers, const struct ft_trigger_events *ev,
                          struct ft_trigger_hub **out)
{
	if (analyzers == 0 || !ev || !ev->add || !ev->expire)
		return -EINVAL;
	struct ft_trigger_hub *h = calloc(1, sizeof(*h));
	if (!h || !(h->a = aligned_alloc(64, analyzers * sizeof(*h->a)))) {
		free(h);
		return -ENOMEM;
	}
	memset(h->a, 0, analyzers * sizeof(*h->a));
	h->n = analyzers;
	h->ev = *ev;
	for (unsigned i = 0; i < analyzers; i++)
		pthread_mutex_init(&h->a[i].lock, NULL);
	*out = h;
	return 0;
}

void ft_trigger_hub_close(struct ft_trigger_hub *h)
{
	if (!h || atomic_exchange(&h->closed, 1))
		return;
	struct ft_trigger_result none = {0};
	for (unsigned i = 0; i < h->n; i++) {
		struct analyzer *a = &h->a[i];
		pthread_mutex_lock(&a->lock);
		for (; a->count > 0; a->count--, a->head = (a->head + 1) % INBOX_CAP) {
			request_answer(a->inbox[a->head], &none, 1);
			request_put(a->inbox[a->head]);
		}
		pthread_mutex_unlock(&a->lock);
	}
}

void ft_trigger_hub_destroy(struct ft_trigger_hub *h)
{
	if (!h)
		return;
	ft_trigger_hub_close(h);
	for (unsigned i = 0; i < h->n; i++) {
		struct analyzer *a = &h->a[i];
		for (size_t k = 0; k < a->npend; k++)
			request_put(a->pend[k].r);
		if (a->pend_keys) { /* every pending flow trigger's reference goes */
			struct key_expiry x = {.t = a->pend_keys, .now = UINT64_MAX};
			ft_table_foreach(a->pend_keys, pending_key_visit, &x);
		}
		ft_table_destroy(a->pend_keys);
		free(a->pend);
		free(a->act);
		pthread_mutex_destroy(&a->lock);
	}
	free(h->a);
	free(h);
}

/* Queues r in every inbox (a reference each); -EBUSY when one is full, FT_E_STOPPING. */
static int request_queue(struct ft_trigger_hub *h, struct request *r)
{
	for (unsigned i = 0; i < h->n; i++)
		pthread_mutex_lock(&h->a[i].lock);
	int e = atomic_load(&h->closed) ? FT_E_STOPPING : 0;
	for (unsigned i = 0; e == 0 && i < h->n; i++)
		if (h->a[i].count == INBOX_CAP)
			e = -EBUSY;
	for (unsigned i = 0; e == 0 && i < h->n; i++) {
		struct analyzer *a = &h->a[i];
		a->inbox[(a->head + a->count++) % INBOX_CAP] = r;
	}
	if (e == 0) {
		pthread_mutex_lock(&r->lock);
		r->refs += h->n;
		r->left = h->n;
		pthread_mutex_unlock(&r->lock);
	}
	for (unsigned i = h->n; i-- > 0;)
		pthread_mutex_unlock(&h->a[i].lock);
	return e;
}

/* Waits for every analyzer's answer until timeout_ns; copies the result.  0 or an error. */
static int request_wait(struct request *r, uint64_t timeout_ns, struct ft_trigger_result *res)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + timeout_ns;
	dl.tv_sec += (time_t)(ns / 1000000000u);
	dl.tv_nsec = (long)(ns % 1000000000u);
	int e = 0;
	pthread_mutex_lock(&r->lock);
	while (r->left > 0 && e == 0)
		e = pthread_cond_timedwait(&r->done, &r->lock, &dl);
	*res = r->res;
	e = r->stopped ? FT_E_STOPPING : r->left ? FT_E_TIMEDOUT : 0;
	pthread_mutex_unlock(&r->lock);
	return e;
}

int ft_trigger_post(struct ft_trigger_hub *h, const struct ft_trigger *t, uint64_t now_ns,
                    uint64_t timeout_ns, struct ft_trigger_result *res, char *err, size_t errlen)
{
	struct request *r;
	memset(res, 0, sizeof(*res));
	int e = request_new(t, now_ns, &r, err, errlen);
	if (e)
		return e;
	if ((e = request_queue(h, r)) == 0)
		e = request_wait(r, timeout_ns, res);
	request_put(r);
	if (e == 0)
		atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&h->refused, 1, memory_order_relaxed);
	if (e && errlen)
		snprintf(err, errlen, "%s", ft_strerror(e));
	return e;
}

void ft_trigger_stats(struct ft_trigger_hub *h, struct ft_trigger_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!h)
		return;
	/* relaxed: counters, each current on its own */
	out->requests = atomic_load_explicit(&h->requests, memory_order_relaxed);
	out->flows = atomic_load_explicit(&h->flows, memory_order_relaxed);
	out->packets = atomic_load_explicit(&h->packets, memory_order_relaxed);
	out->too_late = atomic_load_explicit(&h->too_late, memory_order_relaxed);
	out->refused = atomic_load_explicit(&h->refused, memory_order_relaxed);
	for (unsigned i = 0; i < h->n; i++) {
		out->pending += atomic_load_explicit(&h->a[i].g_pending, memory_order_relaxed);
		out->active += atomic_load_explicit(&h->a[i].g_active, memory_order_relaxed);
	}
}
