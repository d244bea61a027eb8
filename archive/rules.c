/*
 * Dump rules (see archive.h): analyzers post events, each dumper applies
 * them to its own view and matches packets against the view without locks.
 *
 * Events go to every view's queue under the rules mutex; a view swaps its
 * queue out under that mutex once per chunk (archive_rule_view_update) and
 * applies it to its private hash table of key rules (open addressing over
 * (kind, flags, key)) and its list of BPF filter rules.  A view keeps a
 * count of key rules per (kind, flags) so matching parses a packet only
 * when a rule could match, and builds only the keys some rule uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_pvt.h"
#include "qq/qq.h"

#define KEY_COMBOS 9 /* 3 kinds x (both VLAN ids, none, the outer only) */
#define FILTER_LINKTYPES 4

enum ev_type { EV_ADD, EV_EXPIRE };

struct rule_event {
	enum ev_type type;
	struct ft_flow_key key;
	uint8_t combo; /* combo_of(kind, flags) */
	uint16_t trigger;
	uint64_t last_seen_ns, retire_seq;
	char *filter; /* EV_ADD of a filter rule: owned by the event, then the view */
};

struct key_rule {
	struct ft_flow_key key;
	uint8_t combo;
	uint8_t used; /* 0 empty, 1 live, 2 deleted (tombstone) */
	uint16_t trigger;
	uint64_t until_ns;   /* UINT64_MAX while the flow is active */
	uint64_t retire_seq; /* UINT64_MAX while the flow is active */
};

struct filter_rule {
	struct ft_flow_key key; /* the flow whose module built the filter */
	uint8_t combo;
	char *expr;
	uint16_t trigger;
	uint64_t until_ns, retire_seq;
	int linktype[FILTER_LINKTYPES];
	struct bpf_program prog[FILTER_LINKTYPES];
	int ok[FILTER_LINKTYPES];
	unsigned nprog;
};

struct archive_rule_view {
	struct archive_rules *owner;
	struct archive_rule_view *next; /* in owner's list (owner's mutex) */
	/* owner's mutex: */
	struct rule_event *q;
	size_t nq, capq;
	/* the dumper's own: */
	struct key_rule *slots;
	size_t mask, live, used; /* used: live + tombstones */
	size_t per_combo[KEY_COMBOS];
	struct filter_rule *filters;
	size_t nfilters, capfilters;
};

struct archive_rules {
	pthread_mutex_t lock;
	struct archive_rule_view *views;
};

int archive_rules_create(struct archive_rules **out)
{
	struct archive_rules *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void archive_rules_destroy(struct archive_rules *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* A key kind and its VLAN flags as one small number: kind * 3 + VLAN mode. */
static uint8_t combo_of(enum ft_key_kind kind, unsigned flags)
{
	unsigned vlan = (flags & FT_KEY_NO_VLAN) ? 1 : (flags & FT_KEY_OUTER_VLAN) ? 2 : 0;
	return (uint8_t)(kind * 3 + vlan);
}

static const unsigned combo_flags[3] = {0, FT_KEY_NO_VLAN, FT_KEY_OUTER_VLAN};

/* Appends ev to every view's queue.  0 or -ENOMEM (then no view got it). */
static int post(struct archive_rules *r, const struct rule_event *ev)
{
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	for (struct archive_rule_view *v = r->views; v; v = v->next) {
		if (qq_grow((void **)&v->q, &v->capq, v->nq + 1, sizeof(*v->q)) != 0) {
			rc = -ENOMEM;
			continue;
		}
		v->q[v->nq] = *ev;
		if (ev->filter && !(v->q[v->nq].filter = strdup(ev->filter))) {
			rc = -ENOMEM;
			continue;
		}
		v->nq++;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int archive_rules_add(struct archive_rules *r, const struct ft_flow_key *key, enum ft_key_kind kind,
                      unsigned key_flags, const char *filter, uint16_t trigger)
{
	if (!filter && (key_flags & FT_KEY_OWN))
		return -EINVAL; /* a key of a module's own type is no 5-tuple: it selects nothing */
	struct rule_event ev = {.type = EV_ADD,
	                        .key = *key,
	                        .combo = combo_of(kind, key_flags),
	                        .trigger = trigger,
	                        .filter = (char *)filter};
	return post(r, &ev);
}

int archive_rules_expire(struct archive_rules *r, const struct ft_flow_key *key,
                         enum ft_key_kind kind, unsigned key_flags, uint64_t last_seen_ns,
                         uint64_t retire_seq)
{
	struct rule_event ev = {.type = EV_EXPIRE,
	                        .key = *key,
	                        .combo = combo_of(kind, key_flags),
	                        .last_seen_ns = last_seen_ns,
	                        .retire_seq = retire_seq};
	return post(r, &ev);
}

/* ---- views ------------------------------------------------------------------------------- */

int archive_rule_view_create(struct archive_rules *r, struct archive_rule_view **out)
{
	struct archive_rule_view *v = calloc(1, sizeof(*v));
	if (!v || !(v->slots = calloc(64, sizeof(*v->slots)))) {
		free(v);
		return -ENOMEM;
	}
	v->mask = 63;
	v->owner = r;
	pthread_mutex_lock(&r->lock);
	v->next = r->views;
	r->views = v;
	pthread_mutex_unlock(&r->lock);
	*out = v;
	return 0;
}

static void filter_free(struct filter_rule *f)
{
	for (unsigned i = 0; i < f->nprog; i++)
		if (f->ok[i])
			pcap_freecode(&f->prog[i]);
	free(f->expr);
}

void archive_rule_view_destroy(struct archive_rule_view *v)
{
	if (!v)
		return;
	struct archive_rules *r = v->owner;
	pthread_mutex_lock(&r->lock);
	for (struct archive_rule_view **p = &r->views; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < v->nq; i++)
		free(v->q[i].filter);
	for (size_t i = 0; i < v->nfilters; i++)
		filter_free(&v->filters[i]);
	free(v->q);
	free(v->filters);
	free(v->slots);
	free(v);
}

size_t archive_rule_view_size(const struct archive_rule_view *v)
{
	return v->live + v->nfilters;
}

static uint64_t slot_hash(const struct ft_flow_key *k, uint8_t combo)
{
	return ft_flow_key_hash(k) ^ ((uint64_t)combo * 0x9e3779b97f4a7c15ull);
}

/* The slot holding (key, combo), or NULL. */
static struct key_rule *slot_find(const struct archive_rule_view *v, const struct ft_flow_key *k,
                                  uint8_t combo)
{
	for (size_t s = slot_hash(k, combo) & v->mask;; s = (s + 1) & v->mask) {
		struct key_rule *r = &v->slots[s];
		if (r->used == 0)
			return NULL;
		if (r->used == 1 && r->combo == combo && memcmp(&r->key, k, sizeof(*k)) == 0)
			return r;
	}
}

/* Rebuilds the table at twice the live size (drops tombstones).  0 or -ENOMEM. */
static int slots_rehash(struct archive_rule_view *v)
{
	size_t n = 64;
	while (n < (v->live + 1) * 4)
		n *= 2;
	struct key_rule *ns = calloc(n, sizeof(*ns)), *old = v->slots;
	if (!ns)
		return -ENOMEM;
	size_t oldn = v->mask + 1;
	v->slots = ns;
	v->mask = n - 1;
	v->used = v->live;
	for (size_t i = 0; i < oldn; i++)
		if (old[i].used == 1) {
			size_t s = slot_hash(&old[i].key, old[i].combo) & v->mask;
			while (ns[s].used)
				s = (s + 1) & v->mask;
			ns[s] = old[i];
		}
	free(old);
	return 0;
}

static void key_rule_add(struct archive_rule_view *v, const struct rule_event *ev)
{
	struct key_rule *r = slot_find(v, &ev->key, ev->combo);
	if (r) { /* the flow triggered again after expiring: active again */
		r->until_ns = r->retire_seq = UINT64_MAX;
		return;
	}
	if ((v->used + 1) * 2 > v->mask + 1 && slots_rehash(v) != 0)
		return; /* no memory: the flow is not archived (counted by the caller's totals) */
	size_t s = slot_hash(&ev->key, ev->combo) & v->mask;
	while (v->slots[s].used == 1)
		s = (s + 1) & v->mask;
	if (v->slots[s].used == 0)
		v->used++;
	v->slots[s] = (struct key_rule){.key = ev->key,
	                                .combo = ev->combo,
	                                .used = 1,
	                                .trigger = ev->trigger,
	                                .until_ns = UINT64_MAX,
	                                .retire_seq = UINT64_MAX};
	v->live++;
	v->per_combo[ev->combo]++;
}

static void filter_rule_add(struct archive_rule_view *v, struct rule_event *ev)
{
	if (qq_grow((void **)&v->filters, &v->capfilters, v->nfilters + 1, sizeof(*v->filters)) !=
	    0)
		return;
	v->filters[v->nfilters++] = (struct filter_rule){.key = ev->key,
	                                                 .combo = ev->combo,
	                                                 .expr = ev->filter,
	                                                 .trigger = ev->trigger,
	                                                 .until_ns = UINT64_MAX,
	                                                 .retire_seq = UINT64_MAX};
	ev->filter = NULL; /* the rule owns it now */
}

static void rule_expire(struct archive_rule_view *v, const struct rule_event *ev)
{
	struct key_rule *r = slot_find(v, &ev->key, ev->combo);
	if (r) {
		r->until_ns = ev->last_seen_ns;
		r->retire_seq = ev->retire_seq;
	}
	for (size_t i = 0; i < v->nfilters; i++) {
		struct filter_rule *f = &v->filters[i];
		if (f->combo == ev->combo && memcmp(&f->key, &ev->key, sizeof(ev->key)) == 0) {
			f->until_ns = ev->last_seen_ns;
			f->retire_seq = ev->retire_seq;
		}
	}
}

/* Drops rules whose flows expired and whose packets are all behind position seq. */
static void retire(struct archive_rule_view *v, uint64_t seq)
{
	for (size_t s = 0; s <= v->mask; s++) {
		struct key_rule *r = &v->slots[s];
		if (r->used == 1 && r->retire_seq <= seq) {
			r->used = 2;
			v->live--;
			v->per_combo[r->combo]--;
		}
	}
	size_t kept = 0; /* the live ones moved down, in order: each rule freed once, then gone */
	for (size_t i = 0; i < v->nfilters; i++) {
		if (v->filters[i].retire_seq <= seq)
			filter_free(&v->filters[i]);
		else
			v->filters[kept++] = v->filters[i];
	}
	v->nfilters = kept;
}

void archive_rule_view_update(struct archive_rule_view *v, uint64_t seq)
{
	struct rule_event *q;
	size_t n;
	pthread_mutex_lock(&v->owner->lock);
	q = v->q;
	n = v->nq;
	v->q = NULL;
	v->nq = v->capq = 0;
	pthread_mutex_unlock(&v->owner->lock);
	for (size_t i = 0; i < n; i++) {
		if (q[i].type == EV_ADD && q[i].filter)
			filter_rule_add(v, &q[i]);
		else if (q[i].type == EV_ADD)
			key_rule_add(v, &q[i]);
		else
			rule_expire(v, &q[i]);
		free(q[i].filter);
	}
	free(q);
	if (v->live || v->nfilters)
		retire(v, seq);
}

/* The compiled filter of rule f for a link type (compiled on first use), or NULL. */
static const struct bpf_program *filter_prog(struct filter_rule *f, int linktype)
{
	for (unsigned i = 0; i < f->nprog; i++)
		if (f->linktype[i] == linktype)
			return f->ok[i] ? &f->prog[i] : NULL;
	if (f->nprog == FILTER_LINKTYPES)
		return NULL;
	char err[256];
	unsigned i = f->nprog++;
	f->linktype[i] = linktype;
	f->ok[i] = ft_bpf_compile(linktype, 262144, f->expr, &f->prog[i], err, sizeof(err)) == 0;
	return f->ok[i] ? &f->prog[i] : NULL;
}

static uint16_t match_filters(struct archive_rule_view *v, int linktype, uint64_t ts,
                              const uint8_t *data, uint32_t caplen, uint32_t wirelen)
{
	struct pcap_pkthdr h = {.caplen = caplen, .len = wirelen};
	for (size_t i = 0; i < v->nfilters; i++) {
		struct filter_rule *f = &v->filters[i];
		const struct bpf_program *p;
		if (ts <= f->until_ns && (p = filter_prog(f, linktype)) &&
		    pcap_offline_filter(p, &h, data))
			return f->trigger;
	}
	return 0;
}

/* The trigger of a live key rule for p's flow under any key the rules use, or 0. */
static uint16_t match_keys(const struct archive_rule_view *v, const struct archive_packet *p)
{
	struct ft_packet buf;
	const struct ft_packet *pkt =
	    ft_packet_view(p->parsed, p->linktype, p->data, p->caplen, &buf);
	if (!(pkt->flags & FT_PKT_IP))
		return 0;
	for (uint8_t combo = 0; combo < KEY_COMBOS; combo++) {
		struct ft_flow_key key;
		if (!v->per_combo[combo] ||
		    ft_flow_key_make(pkt, (enum ft_key_kind)(combo / 3), combo_flags[combo % 3],
		                     &key, NULL) != 0)
			continue;
		const struct key_rule *r = slot_find(v, &key, combo);
		if (r && p->ts_ns <= r->until_ns)
			return r->trigger;
	}
	return 0;
}

uint16_t archive_rule_view_match(struct archive_rule_view *v, const struct archive_packet *p)
{
	uint16_t t = v->live ? match_keys(v, p) : 0;
	if (t || v->nfilters == 0)
		return t;
	return match_filters(v, p->linktype, p->ts_ns, p->data, p->caplen, p->wirelen);
}
