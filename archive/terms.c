/*
 * Term sets: the distinct index terms of the packets of one frame.
 *
 * Each packet contributes its hosts, ports, protocols, VLAN ids and
 * ethertype (see archive.h for what each term is, and why it must be a
 * superset of what libpcap filters can see).  A 5-tuple needs no term of its
 * own: the frames holding both hosts and both ports are few, and the filter
 * decides the rest.  Most packets of a frame belong
 * to flows already seen in that frame, so each packet first builds a
 * signature (the bytes of everything it would add); a packet whose signature
 * is already in the frame's signature set adds nothing and costs one probe.
 * Signatures are compared as bytes, not by hash, so crafted packets cannot
 * collide their way out of the index.
 *
 * The posting lists of an open segment (segterms) grow by one frame number
 * per term per frame; at each index commit the writer stores the lists that
 * changed, as one value per (term, segment).
 */
#include <errno.h>
#include <stdlib.h>

#include "archive/archive_pvt.h"
#include "archive/terms_pvt.h"

/* 8 bytes at a time (the tail zero-padded), then splitmix64's finalizer: every input bit
 * reaches the low bits that pick the slot. */
static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = (seed + n) * 0x9e3779b97f4a7c15ull;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	if (n) {
		uint64_t w = 0;
		memcpy(&w, p, n);
		h ^= w;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static void byteset_free(struct byteset *bs)
{
	free(bs->ents);
	free(bs->hashes);
	free(bs->slots);
	*bs = (struct byteset){0}; /* fit for byteset_free again */
}

/* Entries of up to max_len bytes.  0, or -ENOMEM with bs empty (fit for byteset_free). */
static int byteset_init(struct byteset *bs, uint32_t cap, size_t max_len)
{
	memset(bs, 0, sizeof(*bs));
	bs->cap = cap;
	bs->mask = cap * 4 - 1;
	bs->stride = sizeof(struct term_entry) + max_len;
	bs->ents = malloc(cap * bs->stride);
	bs->hashes = malloc(cap * sizeof(*bs->hashes));
	bs->slots = calloc((size_t)bs->mask + 1, sizeof(*bs->slots));
	if (bs->ents && bs->hashes && bs->slots)
		return 0;
	byteset_free(bs);
	return -ENOMEM;
}

static void byteset_reset(struct byteset *bs)
{
	memset(bs->slots, 0, ((size_t)bs->mask + 1) * sizeof(*bs->slots));
	bs->n = 0;
}

/* Doubles the slot array (load kept <= 1/2) and rehashes. */
static int byteset_grow_slots(struct byteset *bs)
{
	uint32_t nmask = bs->mask * 2 + 1;
	struct byteset_slot *ns = calloc((size_t)nmask + 1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (uint32_t i = 0; i < bs->n; i++) {
		uint32_t s = (uint32_t)bs->hashes[i] & nmask;
		while (ns[s].idx)
			s = (s + 1) & nmask;
		ns[s] = (struct byteset_slot){.tag = (uint32_t)(bs->hashes[i] >> 32), .idx = i + 1};
	}
	free(bs->slots);
	bs->slots = ns;
	bs->mask = nmask;
	return 0;
}

/* Room for one more entry.  0 or -ENOMEM. */
static int byteset_reserve(struct byteset *bs)
{
	if (bs->n < bs->cap)
		return 0;
	size_t nc = bs->cap ? 2 * (size_t)bs->cap : 64; /* never 0 (a set is made with room) */
	uint8_t *ne = realloc(bs->ents, nc * bs->stride);
	if (!ne)
		return -ENOMEM;
	bs->ents = ne;
	uint64_t *nh = realloc(bs->hashes, nc * sizeof(*nh));
	if (!nh)
		return -ENOMEM; /* ents is larger than needed: harmless */
	bs->hashes = nh;
	bs->cap = (uint32_t)nc;
	return 0;
}

/*
 * Inserts (type, b[0..len)) of hash h; returns 1 if it was present, 0 if
 * added, -ENOMEM.  *idx (if not NULL) gets the entry's index either way.
 */
static int byteset_add_hashed(struct byteset *bs, uint8_t type, const uint8_t *b, uint8_t len,
                              uint64_t h, uint32_t *idx)
{
	uint32_t s = (uint32_t)h & bs->mask, tag = (uint32_t)(h >> 32);
	for (; bs->slots[s].idx; s = (s + 1) & bs->mask) {
		if (bs->slots[s].tag != tag)
			continue;
		const struct term_entry *e = archive__byteset_at(bs, bs->slots[s].idx - 1);
		if (e->type == type && e->len == len && memcmp(e->b, b, len) == 0) {
			if (idx)
				*idx = bs->slots[s].idx - 1;
			return 1;
		}
	}
	if (len > bs->stride - sizeof(struct term_entry))
		return -EINVAL; /* longer than the set's entries (a bug) */
	if (byteset_reserve(bs) != 0)
		return -ENOMEM;
	struct term_entry *e = (struct term_entry *)(bs->ents + (size_t)bs->n * bs->stride);
	e->type = type;
	e->len = len;
	memcpy(e->b, b, len);
	bs->hashes[bs->n] = h;
	if (idx)
		*idx = bs->n;
	bs->slots[s] = (struct byteset_slot){.tag = tag, .idx = ++bs->n};
	if (bs->n * 2 > bs->mask)
		return byteset_grow_slots(bs);
	return 0;
}

static int byteset_add_at(struct byteset *bs, uint8_t type, const uint8_t *b, uint8_t len,
                          uint32_t *idx)
{
	return byteset_add_hashed(bs, type, b, len, hash_bytes(b, len, type), idx);
}

static int byteset_add(struct byteset *bs, uint8_t type, const uint8_t *b, uint8_t len)
{
	return byteset_add_at(bs, type, b, len, NULL);
}

int archive__termset_init(struct termset *ts)
{
	*ts = (struct termset){0}; /* sigs is freed below even when terms failed first */
	if (byteset_init(&ts->terms, 1024, TERMS_TERM_MAXLEN) ||
	    byteset_init(&ts->sigs, 1024, TERM_ENTRY_MAX)) {
		archive__termset_free(ts);
		return -ENOMEM;
	}
	return 0;
}

void archive__termset_free(struct termset *ts)
{
	byteset_free(&ts->terms);
	byteset_free(&ts->sigs);
}

void archive__termset_reset(struct termset *ts)
{
	byteset_reset(&ts->terms);
	byteset_reset(&ts->sigs);
}

int archive__termset_add(struct termset *ts, uint8_t type, const uint8_t *b, uint8_t len)
{
	int r = byteset_add(&ts->terms, type, b, len);
	return r < 0 ? r : 0;
}

/* Everything about pkt that its terms depend on, as bytes; returns the length. */
static uint8_t packet_sig(const struct ft_packet *pkt, uint8_t buf[TERM_ENTRY_MAX])
{
	size_t n = 0;
	memcpy(buf + n, pkt->src, 16);
	n += 16;
	memcpy(buf + n, pkt->dst, 16);
	n += 16;
	buf[n++] = (uint8_t)(pkt->sport >> 8);
	buf[n++] = (uint8_t)pkt->sport;
	buf[n++] = (uint8_t)(pkt->dport >> 8);
	buf[n++] = (uint8_t)pkt->dport;
	buf[n++] = (uint8_t)(pkt->flags & (FT_PKT_IP | FT_PKT_ARP | FT_PKT_L4));
	buf[n++] = pkt->proto;
	buf[n++] = (uint8_t)(pkt->ethertype >> 8);
	buf[n++] = (uint8_t)pkt->ethertype;
	buf[n++] = pkt->n_vlan;
	for (int i = 0; i < pkt->n_vlan && i < FT_MAX_VLAN; i++) {
		buf[n++] = (uint8_t)(pkt->vlan[i] >> 8);
		buf[n++] = (uint8_t)pkt->vlan[i];
	}
	buf[n++] = pkt->n_nxt;
	memcpy(buf + n, pkt->nxt, pkt->n_nxt);
	n += pkt->n_nxt;
	return (uint8_t)n;
}

static int add_u16(struct termset *ts, uint8_t type, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	return archive__termset_add(ts, type, b, 2);
}

int archive__termset_add_packet(struct termset *ts, const struct ft_packet *pkt, int hosts_ports)
{
	uint8_t sig[TERM_ENTRY_MAX];
	int r = byteset_add(&ts->sigs, 0, sig, packet_sig(pkt, sig));
	if (r != 0)
		return r < 0 ? r : 0; /* seen: nothing new */
	if (pkt->ethertype)
		r |= add_u16(ts, ARCHIVE_TERM_ETHERTYPE, pkt->ethertype);
	for (int i = 0; i < pkt->n_vlan && i < FT_MAX_VLAN; i++)
		r |= add_u16(ts, ARCHIVE_TERM_VLAN, pkt->vlan[i]);
	if (hosts_ports && (pkt->flags & (FT_PKT_IP | FT_PKT_ARP))) {
		r |= archive__termset_add(ts, ARCHIVE_TERM_HOST, pkt->src, 16);
		r |= archive__termset_add(ts, ARCHIVE_TERM_HOST, pkt->dst, 16);
	}
	for (int i = 0; i < pkt->n_nxt; i++)
		r |= archive__termset_add(ts, ARCHIVE_TERM_PROTO, &pkt->nxt[i], 1);
	if (hosts_ports && (pkt->flags & FT_PKT_L4)) {
		r |= add_u16(ts, ARCHIVE_TERM_PORT, pkt->sport);
		r |= add_u16(ts, ARCHIVE_TERM_PORT, pkt->dport);
	}
	return r ? -ENOMEM : 0;
}

/* ---- one packet ------------------------------------------------------------------------- */

uint16_t archive__flow_trigger(const struct ft_flow *f)
{
	uint16_t t;
	memcpy(&t, f->state, sizeof(t));
	return t;
}

static struct plist *segterms_list(struct segterms *st, uint8_t type, const uint8_t *b, uint8_t len,
                                   uint64_t h);
static int segterms_list_add(struct segterms *st, uint32_t i, uint32_t frame);

/*
 * Frame `frame` into the posting lists of the flow's hosts and ports; the
 * lists are found once per flow and segment (a flow's packets are spread over
 * many frames, and looking its terms up in the segment's large set each time
 * would cost a cache miss or more per term).
 */
static int flow_terms_add(struct segterms *st, struct ft_flow *f, uint32_t frame)
{
	struct archive__flow_state *fs = (struct archive__flow_state *)f->state;
	if (fs->gen != st->gen) {
		const struct ft_flow_key *k = &f->key;
		uint8_t pa[2] = {(uint8_t)(k->port_a >> 8), (uint8_t)k->port_a};
		uint8_t pb[2] = {(uint8_t)(k->port_b >> 8), (uint8_t)k->port_b};
		const struct {
			uint8_t type, len;
			const uint8_t *b;
		} t[4] = {{ARCHIVE_TERM_HOST, 16, k->a},
		          {ARCHIVE_TERM_HOST, 16, k->b},
		          {ARCHIVE_TERM_PORT, 2, pa},
		          {ARCHIVE_TERM_PORT, 2, pb}};
		for (int i = 0; i < 4; i++) {
			struct plist *pl = segterms_list(st, t[i].type, t[i].b, t[i].len,
			                                 hash_bytes(t[i].b, t[i].len, t[i].type));
			if (!pl)
				return -ENOMEM;
			fs->list[i] = (uint32_t)(pl - st->lists);
		}
		fs->gen = st->gen;
	}
	for (int i = 0; i < 4; i++)
		if (segterms_list_add(st, fs->list[i], frame) != 0)
			return -ENOMEM;
	return 0;
}

void archive__flow_terms_prefetch(const struct segterms *st, const struct ft_flow *f, int stage)
{
	const struct archive__flow_state *fs = (const struct archive__flow_state *)f->state;
	if (fs->gen != st->gen)
		return;
	for (int i = 0; i < 4; i++) {
		const struct plist *pl = &st->lists[fs->list[i]];
		if (stage == 0)
			__builtin_prefetch(pl, 1);
		else if (pl->buf)
			__builtin_prefetch(pl->buf + pl->last_off, 1);
	}
}

int archive__index_packet(struct termset *ts, struct segterms *st, uint32_t frame,
                          struct ft_table *flows, const struct archive_packet *p,
                          uint32_t *frame_flags)
{
	struct ft_packet buf;
	const struct ft_packet *pkt =
	    ft_packet_view(p->parsed, p->linktype, p->data, p->caplen, &buf);
	int r = 0;
	if ((pkt->flags & (FT_PKT_MALFORMED | FT_PKT_TRUNCATED)) &&
	    !(*frame_flags & ARCHIVE_FRAME_UNINDEXED)) {
		static const uint8_t zero = 0;
		*frame_flags |= ARCHIVE_FRAME_UNINDEXED;
		r = archive__termset_add(ts, ARCHIVE_TERM_UNINDEXED, &zero, 1);
	}
	/* an IP packet with ports has a flow, and its hosts and ports are the flow's */
	int by_flow = st && (pkt->flags & FT_PKT_IP) && (pkt->flags & FT_PKT_L4);
	if (r == 0)
		r = archive__termset_add_packet(ts, pkt, !by_flow);
	if (r)
		return r;
	struct ft_flow_key key;
	int dir, is_new;
	if (archive_flow_key_of(pkt, &key, &dir) != 0)
		return 0;
	struct ft_flow *f = ft_table_lookup(flows, &key, ft_flow_key_hash(&key), &is_new);
	if (!f)
		return -ENOMEM;
	if (is_new || p->ts_ns < f->first_ns)
		f->first_ns = p->ts_ns;
	if (p->ts_ns > f->last_ns)
		f->last_ns = p->ts_ns;
	f->packets[dir]++;
	f->bytes[dir] += p->wirelen;
	f->tcp_flags[dir] |= pkt->tcp_flags;
	if (p->trigger && !archive__flow_trigger(f))
		memcpy(f->state, &p->trigger, sizeof(p->trigger));
	return by_flow ? flow_terms_add(st, f, frame) : 0;
}

/* ---- posting lists ---------------------------------------------------------------------- */

/* Reads a varint of at most 32 bits; returns its length, 0 if malformed. */
static size_t varint_get(const uint8_t *p, size_t len, uint32_t *v)
{
	uint64_t x = 0;
	size_t n = archive__varint_get(p, len, UINT32_MAX, &x);
	if (n)
		*v = (uint32_t)x;
	return n;
}

/* Writes the item (gap, run) at pl->len. */
static int plist_put_item(struct plist *pl, uint32_t gap, uint32_t run)
{
	if (pl->len + PLIST_MAX_ITEM > pl->cap) {
		uint32_t nc = pl->cap ? pl->cap * 2 : 16;
		uint8_t *nb = realloc(pl->buf, nc);
		if (!nb)
			return -ENOMEM;
		pl->buf = nb;
		pl->cap = nc;
	}
	pl->last_off = pl->len;
	pl->len += archive__varint_put(pl->buf + pl->len, gap << 1 | (run > 1));
	if (run > 1)
		pl->len += archive__varint_put(pl->buf + pl->len, run - 2);
	pl->last_gap = gap;
	pl->last_run = run;
	return 0;
}

int archive__plist_add(struct plist *pl, uint32_t f)
{
	if (pl->last_run && f == pl->end) { /* the next frame of the last run: rewrite it */
		pl->len = pl->last_off;
		if (pl->committed > pl->len)
			pl->committed = pl->len; /* the written value changes from here */
		int r = plist_put_item(pl, pl->last_gap, pl->last_run + 1);
		if (r == 0)
			pl->end++;
		return r;
	}
	int r = plist_put_item(pl, f - pl->end, 1);
	if (r == 0)
		pl->end = f + 1;
	return r;
}

struct cut_ctx {
	struct plist out;
	uint32_t n;
	int err;
};

static int cut_add(uint32_t f, void *arg)
{
	struct cut_ctx *c = arg;
	if (f >= c->n)
		return 1;
	if ((c->err = archive__plist_add(&c->out, f)) != 0)
		return 1;
	return 0;
}

int archive__plist_cut(struct plist *pl, uint32_t nframes)
{
	if (pl->end <= nframes)
		return 0;
	struct cut_ctx c = {.n = nframes};
	archive__plist_decode(pl->buf, pl->len, cut_add, &c);
	if (c.err) {
		free(c.out.buf);
		return c.err;
	}
	free(pl->buf);
	/* a rollback to the frames of the last commit: what the index holds (runs are
	 * maximal, so the encoding of a set of frames is unique) */
	c.out.committed = c.out.len;
	*pl = c.out;
	return 0;
}

int archive__plist_decode(const uint8_t *p, size_t len, int (*fn)(uint32_t frame, void *arg),
                          void *arg)
{
	uint64_t end = 0;
	size_t i = 0;
	while (i < len) {
		uint32_t item, run = 1;
		size_t n = varint_get(p + i, len - i, &item);
		if (!n)
			return -EINVAL;
		i += n;
		if (item & 1) {
			if (!(n = varint_get(p + i, len - i, &run)) || run > UINT32_MAX - 2)
				return -EINVAL;
			i += n;
			run += 2;
		}
		if (end > 0 && item >> 1 == 0)
			return -EINVAL; /* two runs that touch: runs are maximal, the encoding unique */
		uint64_t start = end + (item >> 1);
		if (start + run > (uint64_t)UINT32_MAX + 1)
			return -EINVAL;
		for (uint64_t f = start; f < start + run; f++) {
			int r = fn((uint32_t)f, arg);
			if (r)
				return r;
		}
		end = start + run;
	}
	return 0;
}

/* ---- per-segment term lists -------------------------------------------------------------- */

int archive__segterms_init(struct segterms *st)
{
	memset(st, 0, sizeof(*st));
	st->gen = 1;
	return byteset_init(&st->set, 1024, TERMS_TERM_MAXLEN);
}

void archive__segterms_free(struct segterms *st)
{
	archive__segterms_reset(st);
	byteset_free(&st->set);
	free(st->lists);
	free(st->dirty);
	memset(st, 0, sizeof(*st));
}

void archive__segterms_reset(struct segterms *st)
{
	for (uint32_t i = 0; i < st->set.n; i++)
		free(st->lists[i].buf);
	byteset_reset(&st->set);
	st->ndirty = 0;
	if (++st->gen == 0) /* 0 is what a new flow record holds */
		st->gen = 1;
}

static int mark_dirty(struct segterms *st, uint32_t i)
{
	if (st->ndirty == st->dirty_cap) {
		uint32_t nc = st->dirty_cap ? st->dirty_cap * 2 : 1024;
		uint32_t *nd = realloc(st->dirty, nc * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		st->dirty = nd;
		st->dirty_cap = nc;
	}
	st->dirty[st->ndirty++] = i;
	return 0;
}

/*
 * Frame `frame` into list i, unless it is there already (a term can reach a
 * frame both through a flow and through the frame's term set).  Frames come
 * in increasing order.  0 or -ENOMEM.
 */
static int segterms_list_add(struct segterms *st, uint32_t i, uint32_t frame)
{
	struct plist *pl = &st->lists[i];
	if (pl->last_run && pl->end == frame + 1)
		return 0;
	int was_clean = pl->committed == pl->len;
	if (archive__plist_add(pl, frame) != 0 || (was_clean && mark_dirty(st, i) != 0))
		return -ENOMEM;
	return 0;
}

/* The list of term (type, b, len) of hash h, created empty if new; NULL if out of memory. */
static struct plist *segterms_list(struct segterms *st, uint8_t type, const uint8_t *b, uint8_t len,
                                   uint64_t h)
{
	if (st->set.n == st->lists_cap) { /* room for a new one first */
		uint32_t nc = st->lists_cap ? st->lists_cap * 2 : 1024;
		struct plist *nl = realloc(st->lists, nc * sizeof(*nl));
		if (!nl)
			return NULL;
		st->lists = nl;
		st->lists_cap = nc;
	}
	uint32_t i;
	int r = byteset_add_hashed(&st->set, type, b, len, h, &i);
	if (r < 0)
		return NULL;
	if (r == 0)
		memset(&st->lists[i], 0, sizeof(st->lists[i]));
	return &st->lists[i];
}

/*
 * The segment's set is large (every term of up to 256 MiB of traffic) and hit
 * at random, so each term of a frame would wait for a slot, an entry, a list
 * and its buffer to come from memory, one after the other: look PF_AHEAD
 * terms ahead, the slot first, then (once it is in) what it points at.
 */
#define PF_AHEAD 16

static void segterms_prefetch_slot(const struct segterms *st, uint64_t h)
{
	__builtin_prefetch(&st->set.slots[(uint32_t)h & st->set.mask]);
}

/* The entry index + 1 in h's home slot if its tag matches, else 0 (for prefetching). */
static uint32_t segterms_home(const struct segterms *st, uint64_t h)
{
	const struct byteset_slot *s = &st->set.slots[(uint32_t)h & st->set.mask];
	return s->tag == (uint32_t)(h >> 32) ? s->idx : 0;
}

static void segterms_prefetch_buf(const struct segterms *st, uint64_t h)
{
	uint32_t i = segterms_home(st, h);
	if (i) {
		const struct plist *pl = &st->lists[i - 1];
		__builtin_prefetch(pl->buf + pl->last_off, 1);
	}
}

static void segterms_prefetch_entry(const struct segterms *st, uint64_t h)
{
	uint32_t i = segterms_home(st, h);
	if (i) {
		__builtin_prefetch(archive__byteset_at(&st->set, i - 1));
		__builtin_prefetch(&st->lists[i - 1]);
	}
}

int archive__segterms_add_frame(struct segterms *st, const struct termset *ts, uint32_t frame)
{
	const struct byteset *bs = &ts->terms;
	const uint64_t *hs = bs->hashes; /* the same hash function in both sets */
	for (uint32_t j = 0; j < bs->n && j < 2 * PF_AHEAD; j++)
		segterms_prefetch_slot(st, hs[j]);
	for (uint32_t i = 0; i < bs->n; i++) {
		const struct term_entry *e = archive__byteset_at(bs, i);
		if (i + 2 * PF_AHEAD < bs->n)
			segterms_prefetch_slot(st, hs[i + 2 * PF_AHEAD]);
		if (i + PF_AHEAD < bs->n)
			segterms_prefetch_entry(st, hs[i + PF_AHEAD]);
		if (i + PF_AHEAD / 2 < bs->n)
			segterms_prefetch_buf(st, hs[i + PF_AHEAD / 2]);
		struct plist *pl = segterms_list(st, e->type, e->b, e->len, hs[i]);
		if (!pl || segterms_list_add(st, (uint32_t)(pl - st->lists), frame) != 0)
			return -ENOMEM;
	}
	return 0;
}

int archive__segterms_cut(struct segterms *st, uint32_t nframes)
{
	st->ndirty = 0; /* every list is back to what the index holds */
	for (uint32_t i = 0; i < st->set.n; i++)
		if (archive__plist_cut(&st->lists[i], nframes) != 0)
			return -ENOMEM;
	return 0;
}
