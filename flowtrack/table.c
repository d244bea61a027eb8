/*
 * Flow table: open addressing with linear probing, owned by one thread.
 *
 * Slots (8 bytes: 32 bits of hash + flow index) live in a power-of-two array
 * at most half full, so a probe usually touches one cache line; flows live in
 * a separate fixed array of max_flows records that never moves, so pointers
 * stay valid across lookups of other keys and iteration can remove flows.
 * Deletion is backward-shift (no tombstones).  When all records are in use,
 * an insert evicts the least recently seen of EVICT_SAMPLE records taken
 * round-robin (an approximation of LRU that costs O(1)), and counts it.
 */
#include <errno.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#include <stdlib.h>
#include <string.h>

#include "flowtrack/module_pvt.h"

#define EVICT_SAMPLE 8
#define NO_FLOW UINT32_MAX

struct slot {
	uint32_t hash; /* low 32 bits of the key hash */
	uint32_t flow; /* flow index + 1; 0 = empty */
};

struct ft_table {
	struct slot *slots;
	uint32_t mask; /* slots - 1 */
	uint32_t max_flows;
	size_t rec_size; /* bytes per flow record, 8-aligned */
	size_t state_size;
	uint8_t *recs;       /* max_flows records */
	uint32_t *slot_of;   /* record -> slot index, NO_FLOW when free */
	uint32_t *free_list; /* stack of free record indexes */
	uint32_t n_free;
	uint32_t evict_hand;
	void (*evict_cb)(struct ft_flow *f, void *arg);
	void *evict_arg;
	void *default_state;
	struct ft_table_stats st;
};

/*
 * Large arrays (slots, records) come from their own mapping with transparent
 * huge pages requested, faulted in at creation: a table of millions of flows
 * is hit at random, and with 4 KiB pages nearly every lookup would also miss
 * the TLB.  Zeroed.
 */
static void *big_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);       /* best effort */
	madvise(p, len, MADV_POPULATE_WRITE); /* fault it in now, not per new flow (5.14+) */
	return p;
}

static void big_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

static inline struct ft_flow *rec_at(const struct ft_table *t, uint32_t i)
{
	return (struct ft_flow *)(t->recs + (size_t)i * t->rec_size);
}

static inline uint32_t rec_index(const struct ft_table *t, const struct ft_flow *f)
{
	return (uint32_t)(((const uint8_t *)f - t->recs) / t->rec_size);
}

/* Slots: a power of two, at least twice max_flows (at most half full). */
static size_t table_slots(size_t max_flows)
{
	size_t nslots = 16;
	while (nslots < max_flows * 2)
		nslots <<= 1;
	return nslots;
}

static size_t table_rec_size(size_t state_size)
{
	return (sizeof(struct ft_flow) + state_size + 7) & ~(size_t)7;
}

uint64_t ft_table_bytes(size_t max_flows, size_t state_size)
{
	return (uint64_t)table_slots(max_flows) * sizeof(struct slot) +
	       (uint64_t)max_flows * (table_rec_size(state_size) + 2 * sizeof(uint32_t)) +
	       sizeof(struct ft_table) + state_size;
}

int ft_table_create(size_t max_flows, size_t state_size, const void *default_state,
                    struct ft_table **out)
{
	if (max_flows == 0 || max_flows > (1u << 30))
		return -EINVAL;
	struct ft_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;

	size_t nslots = table_slots(max_flows);
	t->mask = (uint32_t)(nslots - 1);
	t->max_flows = (uint32_t)max_flows;
	t->state_size = state_size;
	t->rec_size = table_rec_size(state_size);
	t->slots = big_alloc(nslots * sizeof(*t->slots));
	t->recs = big_alloc(max_flows * t->rec_size);
	t->slot_of = malloc(max_flows * sizeof(*t->slot_of));
	t->free_list = malloc(max_flows * sizeof(*t->free_list));
	t->default_state = state_size ? calloc(1, state_size) : NULL;
	if (!t->slots || !t->recs || !t->slot_of || !t->free_list ||
	    (state_size && !t->default_state)) {
		ft_table_destroy(t);
		return -ENOMEM;
	}
	if (default_state && state_size)
		memcpy(t->default_state, default_state, state_size);
	for (uint32_t i = 0; i < t->max_flows; i++) {
		t->slot_of[i] = NO_FLOW;
		t->free_list[i] = t->max_flows - 1 - i; /* pop gives 0, 1, 2, ... */
	}
	t->n_free = t->max_flows;
	*out = t;
	return 0;
}

void ft_table_destroy(struct ft_table *t)
{
	if (!t)
		return;
	big_free(t->slots, ((size_t)t->mask + 1) * sizeof(*t->slots));
	big_free(t->recs, (size_t)t->max_flows * t->rec_size);
	free(t->slot_of);
	free(t->free_list);
	free(t->default_state);
	free(t);
}

/* Removes the slot at index s by shifting later members of its cluster back. */
static void slot_delete(struct ft_table *t, uint32_t s)
{
	uint32_t hole = s;
	for (uint32_t j = (s + 1) & t->mask; t->slots[j].flow != 0; j = (j + 1) & t->mask) {
		uint32_t home = t->slots[j].hash & t->mask;
		/* j may move into the hole unless its home lies cyclically in (hole, j] */
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		t->slots[hole] = t->slots[j];
		t->slot_of[t->slots[hole].flow - 1] = hole;
		hole = j;
	}
	t->slots[hole].flow = 0;
}

static void flow_release(struct ft_table *t, struct ft_flow *f)
{
	uint32_t i = rec_index(t, f);
	slot_delete(t, t->slot_of[i]);
	t->slot_of[i] = NO_FLOW;
	t->free_list[t->n_free++] = i;
	t->st.flows--;
}

void ft_table_set_evict_cb(struct ft_table *t, void (*fn)(struct ft_flow *f, void *arg), void *arg)
{
	t->evict_cb = fn;
	t->evict_arg = arg;
}

void ft_table_clear(struct ft_table *t)
{
	memset(t->slots, 0, ((size_t)t->mask + 1) * sizeof(*t->slots));
	for (uint32_t i = 0; i < t->max_flows; i++) {
		t->slot_of[i] = NO_FLOW;
		t->free_list[i] = t->max_flows - 1 - i;
	}
	t->n_free = t->max_flows;
	t->st.flows = 0;
}

void ft_table_remove(struct ft_table *t, struct ft_flow *f)
{
	flow_release(t, f);
	t->st.expired++;
}

/* Frees one record: the least recently seen of a round-robin sample. */
static void evict_one(struct ft_table *t)
{
	struct ft_flow *victim = NULL;
	for (int k = 0; k < EVICT_SAMPLE; k++) {
		struct ft_flow *f = rec_at(t, t->evict_hand);
		t->evict_hand = (t->evict_hand + 1) % t->max_flows;
		if (!victim || f->last_ns < victim->last_ns)
			victim = f;
	}
	if (t->evict_cb)
		t->evict_cb(victim, t->evict_arg);
	flow_release(t, victim);
	t->st.evicted++;
}

void ft_table_prefetch(const struct ft_table *t, uint64_t h)
{
	__builtin_prefetch(&t->slots[(uint32_t)h & t->mask], 0, 3);
}

void ft_table_prefetch_flow(const struct ft_table *t, uint64_t h)
{
	const struct slot *s = &t->slots[(uint32_t)h & t->mask];
	if (s->flow != 0 && s->hash == (uint32_t)h) {
		const uint8_t *r = (const uint8_t *)rec_at(t, s->flow - 1);
		__builtin_prefetch(r, 1, 3);
		__builtin_prefetch(r + 64, 1, 3); /* key and counters span two lines */
	}
}

const struct ft_flow *ft_table_peek(const struct ft_table *t, uint64_t h)
{
	const struct slot *s = &t->slots[(uint32_t)h & t->mask];
	return s->flow != 0 && s->hash == (uint32_t)h ? rec_at(t, s->flow - 1) : NULL;
}

struct ft_flow *ft_table_lookup(struct ft_table *t, const struct ft_flow_key *key, uint64_t h,
                                int *is_new)
{
	uint32_t h32 = (uint32_t)h;
	uint32_t s = h32 & t->mask;

	for (; t->slots[s].flow != 0; s = (s + 1) & t->mask) {
		if (t->slots[s].hash != h32)
			continue;
		struct ft_flow *f = rec_at(t, t->slots[s].flow - 1);
		if (memcmp(&f->key, key, sizeof(*key)) == 0) {
			*is_new = 0;
			return f;
		}
	}
	if (t->n_free == 0) {
		evict_one(t);
		/* the eviction may have shifted our empty slot: probe again */
		for (s = h32 & t->mask; t->slots[s].flow != 0; s = (s + 1) & t->mask)
			;
	}
	uint32_t i = t->free_list[--t->n_free];
	struct ft_flow *f = rec_at(t, i);
	memset(f, 0, sizeof(*f));
	f->key = *key;
	if (t->state_size)
		memcpy(f->state, t->default_state, t->state_size);
	t->slots[s].hash = h32;
	t->slots[s].flow = i + 1;
	t->slot_of[i] = s;
	t->st.flows++;
	t->st.inserted++;
	*is_new = 1;
	return f;
}

struct ft_flow *ft_table_find(struct ft_table *t, const struct ft_flow_key *key, uint64_t h)
{
	uint32_t h32 = (uint32_t)h;
	for (uint32_t s = h32 & t->mask; t->slots[s].flow != 0; s = (s + 1) & t->mask) {
		struct ft_flow *f = rec_at(t, t->slots[s].flow - 1);
		if (t->slots[s].hash == h32 && memcmp(&f->key, key, sizeof(*key)) == 0)
			return f;
	}
	return NULL;
}

void ft_table_foreach(struct ft_table *t, void (*fn)(struct ft_flow *f, void *arg), void *arg)
{
	/* records never move, so removing the current one cannot skip or repeat another */
	for (uint32_t i = 0; i < t->max_flows; i++)
		if (t->slot_of[i] != NO_FLOW)
			fn(rec_at(t, i), arg);
}

int ft__table_full(const struct ft_table *t)
{
	return t->n_free == 0;
}

void ft_table_stats(const struct ft_table *t, struct ft_table_stats *out)
{
	*out = t->st;
}

struct track_visit {
	const struct ft_packet_ctx *c;
	uint8_t *is_new; /* NULL, or this burst's entries */
};

static void track_visit(void *arg, unsigned j, struct ft_flow *f, int is_new)
{
	const struct track_visit *v = arg;
	ft__flow_count(f, is_new, &v->c[j]);
	if (v->is_new)
		v->is_new[j] = (uint8_t)is_new;
}

void ft_table_track_burst(struct ft_table *t, const struct ft_packet_ctx *p, unsigned n,
                          enum ft_key_kind kind, unsigned flags, uint64_t *hash, uint8_t *is_new)
{
	struct ft_flow_key key[FT_ENGINE_BURST];
	struct ft_packet_ctx c[FT_ENGINE_BURST];
	uint64_t h[FT_ENGINE_BURST];
	uint8_t ok[FT_ENGINE_BURST];
	for (unsigned done = 0; done < n;) {
		unsigned k = n - done < FT_ENGINE_BURST ? n - done : FT_ENGINE_BURST;
		ft__burst_keys(t, p + done, k, kind, flags, NULL, key, c, h, ok);
		struct track_visit v = {.c = c, .is_new = is_new ? is_new + done : NULL};
		for (unsigned j = 0; is_new && j < k; j++)
			is_new[done + j] = 0; /* a packet without a flow */
		ft__burst_update(t, key, h, ok, k, NULL, track_visit, &v);
		for (unsigned j = 0; hash && j < k; j++)
			if (ok[j])
				hash[done + j] = h[j];
		done += k;
	}
}
