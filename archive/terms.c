/*
 * Term sets: the distinct index terms of the packets of one frame.
 *
 * Each packet contributes its hosts, ports, protocols, VLAN ids, ethertype
 * and flow key (see archive.h for what each term is, and why it must be a
 * superset of what libpcap filters can see).  Most packets of a frame belong
 * to flows already seen in that frame, so each packet first builds a
 * signature (the bytes of everything it would add); a packet whose signature
 * is already in the frame's signature set adds nothing and costs one probe.
 * Signatures are compared as bytes, not by hash, so crafted packets cannot
 * collide their way out of the index.
 */
#include <errno.h>
#include <stdlib.h>

#include "archive/archive_pvt.h"
#include "archive/terms_pvt.h"

static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static int byteset_init(struct byteset *bs, uint32_t cap)
{
	memset(bs, 0, sizeof(*bs));
	bs->cap = cap;
	bs->mask = cap * 4 - 1;
	bs->ents = malloc(cap * sizeof(*bs->ents));
	bs->slots = calloc((size_t)bs->mask + 1, sizeof(*bs->slots));
	return bs->ents && bs->slots ? 0 : -ENOMEM;
}

static void byteset_free(struct byteset *bs)
{
	free(bs->ents);
	free(bs->slots);
	memset(bs, 0, sizeof(*bs));
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
	uint32_t *ns = calloc((size_t)nmask + 1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (uint32_t i = 0; i < bs->n; i++) {
		const struct term_entry *e = &bs->ents[i];
		uint32_t s = (uint32_t)hash_bytes(e->b, e->len, e->type) & nmask;
		while (ns[s])
			s = (s + 1) & nmask;
		ns[s] = i + 1;
	}
	free(bs->slots);
	bs->slots = ns;
	bs->mask = nmask;
	return 0;
}

/* Inserts (type, b[0..len)); returns 1 if it was present, 0 if added, -ENOMEM. */
static int byteset_add(struct byteset *bs, uint8_t type, const uint8_t *b, uint8_t len)
{
	uint32_t s = (uint32_t)hash_bytes(b, len, type) & bs->mask;
	for (; bs->slots[s]; s = (s + 1) & bs->mask) {
		const struct term_entry *e = &bs->ents[bs->slots[s] - 1];
		if (e->type == type && e->len == len && memcmp(e->b, b, len) == 0)
			return 1;
	}
	if (bs->n == bs->cap) {
		struct term_entry *ne = realloc(bs->ents, 2 * (size_t)bs->cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		bs->ents = ne;
		bs->cap *= 2;
	}
	struct term_entry *e = &bs->ents[bs->n];
	e->type = type;
	e->len = len;
	memcpy(e->b, b, len);
	bs->slots[s] = ++bs->n;
	if (bs->n * 2 > bs->mask)
		return byteset_grow_slots(bs);
	return 0;
}

int archive__termset_init(struct termset *ts)
{
	if (byteset_init(&ts->terms, 1024) || byteset_init(&ts->sigs, 1024)) {
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

int archive__termset_add_packet(struct termset *ts, const struct ft_packet *pkt)
{
	uint8_t sig[TERM_ENTRY_MAX];
	int r = byteset_add(&ts->sigs, 0, sig, packet_sig(pkt, sig));
	if (r != 0)
		return r < 0 ? r : 0; /* seen: nothing new */
	if (pkt->ethertype)
		r |= add_u16(ts, ARCHIVE_TERM_ETHERTYPE, pkt->ethertype);
	for (int i = 0; i < pkt->n_vlan && i < FT_MAX_VLAN; i++)
		r |= add_u16(ts, ARCHIVE_TERM_VLAN, pkt->vlan[i]);
	if (pkt->flags & (FT_PKT_IP | FT_PKT_ARP)) {
		r |= archive__termset_add(ts, ARCHIVE_TERM_HOST, pkt->src, 16);
		r |= archive__termset_add(ts, ARCHIVE_TERM_HOST, pkt->dst, 16);
	}
	for (int i = 0; i < pkt->n_nxt; i++)
		r |= archive__termset_add(ts, ARCHIVE_TERM_PROTO, &pkt->nxt[i], 1);
	if (pkt->flags & FT_PKT_L4) {
		r |= add_u16(ts, ARCHIVE_TERM_PORT, pkt->sport);
		r |= add_u16(ts, ARCHIVE_TERM_PORT, pkt->dport);
	}
	struct ft_flow_key key;
	if (ft_flow_key_from_packet(pkt, 0, &key, NULL) == 0) {
		uint8_t fb[ARCHIVE_TERM_MAXLEN];
		archive_term_flow(&key, fb);
		r |= archive__termset_add(ts, ARCHIVE_TERM_FLOW, fb, ARCHIVE_TERM_MAXLEN);
	}
	return r ? -ENOMEM : 0;
}
