/*
 * plan: turns a libpcap filter expression into an index plan, a tree of term
 * ranges joined by AND/OR whose candidate frames are a superset of the frames
 * holding a packet the filter matches.
 *
 * Design
 *   A small recursive-descent parser over pcap's token rules follows the
 *   boolean structure exactly (and/or have one precedence and associate to
 *   the left; not binds tighter) and translates only the primitives whose
 *   meaning in the index is certain: host/net, port/portrange, protocol
 *   names and "proto N", ip/ip6/arp/rarp, "vlan N".
 *   Everything else (relations, link-layer primitives, names that need a
 *   lookup, a bare id inheriting the qualifiers before it, anything under
 *   "not") becomes ALL, which only widens the plan since AND and OR are
 *   monotone.  Tokens the parser cannot follow make the whole plan ALL.
 *
 * Invariants
 *   - The plan never drops a frame holding a packet pcap matches; being wide
 *     only costs reading time, because every candidate is filtered exactly.
 *   - Simplified while built: ALL and NONE only ever are the whole plan.
 *   - In pcap every "vlan" keyword moves the offsets of all later primitives
 *     in the text, whatever the boolean structure: "vlan 1 or host X" reads
 *     the host 4 bytes further on in untagged packets too.  A primitive after
 *     k vlan keywords is translated only where an ANDed vlan test guarantees
 *     k tags; elsewhere it reads other bytes than the index did: ALL.
 *     mpls, pppoes, pppoed, geneve and vxlan move offsets in ways the index
 *     does not follow: the whole plan is ALL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include "query/query.h"

#define PLAN_ADDR_LEN 16  /* HOST term: IPv6 or IPv4-mapped address */
#define PLAN_TOKEN_MAX 64 /* longest number or address token we convert */
#define PLAN_VLAN_MAX 4095
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tokens ------------------------------------------------------------------------ */

struct plan_tok {
	const char *s; /* into the filter string, not NUL-terminated */
	size_t len;
	unsigned vlans; /* "vlan" keywords before this token: pcap's offset shift */
	size_t match;   /* '(' or '[': index of its closing token, n if none */
};

struct plan_parser {
	struct plan_tok *tok;
	size_t n;   /* tokens */
	size_t pos; /* next token to read */
	bool nomem; /* an allocation failed: the build returns -ENOMEM */
	bool lost;  /* the plan is ALL: empty filter, or one the parser cannot follow */
};

/* Length of the word at s, 0 if none: an id, number, MAC or address ("tcp-syn", "fd00::1"). */
static size_t lex_word_len(const char *s)
{
	size_t len = 0;

	if (!isalnum((unsigned char)s[0]) && s[0] != '_' && s[0] != '\\' &&
	    !(s[0] == ':' && s[1] == ':'))
		return 0;
	while (isalnum((unsigned char)s[len]) || (s[len] != '\0' && strchr("_.-:\\", s[len])))
		len++;
	return len;
}

/* Length of the operator at s, 0 if none; the two-character ones win ("||" is not "|"). */
static size_t lex_op_len(const char *s)
{
	static const char two[][3] = {"&&", "||", "!=", "==", "<=", ">=", "<<", ">>"};

	for (size_t i = 0; i < COUNT(two); i++)
		if (s[0] == two[i][0] && s[1] == two[i][1])
			return 2;
	return (s[0] != '\0' && strchr("()[]!<>=&|+-*/%^:", s[0]) != NULL) ? 1 : 0;
}

static bool tok_is(const struct plan_tok *t, const char *w)
{
	return t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}

/* Splits the filter into ps->tok (at most one token per character); -ENOMEM or 0. */
static int plan_tokenize(struct plan_parser *ps, const char *s)
{
	unsigned vlans = 0;

	ps->tok = malloc((strlen(s) + 1) * sizeof(*ps->tok));
	if (ps->tok == NULL)
		return -ENOMEM;
	while (*s != '\0') {
		size_t len = lex_word_len(s);

		if (strchr(" \t\r\n\v\f", *s) != NULL) {
			s++;
			continue;
		}
		if (len == 0)
			len = lex_op_len(s);
		if (len == 0) { /* a character pcap's grammar has no use for */
			ps->lost = true;
			return 0;
		}
		ps->tok[ps->n] = (struct plan_tok){.s = s, .len = len, .vlans = vlans};
		vlans += tok_is(&ps->tok[ps->n++], "vlan");
		s += len;
	}
	return 0;
}

static bool at(const struct plan_parser *ps, size_t i, const char *w)
{
	return i < ps->n && tok_is(&ps->tok[i], w);
}

/* QUERY_PLAN_AND or QUERY_PLAN_OR for a boolean operator at i, else 0. */
static int at_bool(const struct plan_parser *ps, size_t i)
{
	if (at(ps, i, "and") || at(ps, i, "&&"))
		return QUERY_PLAN_AND;
	return at(ps, i, "or") || at(ps, i, "||") ? QUERY_PLAN_OR : 0;
}

static bool at_dir(const struct plan_parser *ps, size_t i)
{
	return at(ps, i, "src") || at(ps, i, "dst");
}

/* "src or dst" / "src and dst" is one qualifier, not a boolean operator. */
static bool at_dir_pair(const struct plan_parser *ps, size_t i)
{
	return i > 0 && at_bool(ps, i) != 0 && at_dir(ps, i - 1) && at_dir(ps, i + 1);
}

static int at_bracket(const struct plan_parser *ps, size_t i)
{
	if (at(ps, i, "(") || at(ps, i, "["))
		return 1;
	return at(ps, i, ")") || at(ps, i, "]") ? -1 : 0;
}

/* Links brackets to their ends, so that scanning a term skips groups in one step. */
static void plan_match_brackets(struct plan_parser *ps)
{
	size_t open = SIZE_MAX; /* innermost open bracket; its .match: the one around it */

	for (size_t i = 0; i < ps->n; i++) {
		int b = at_bracket(ps, i);
		size_t outer;

		if (b > 0) {
			ps->tok[i].match = open;
			open = i;
		} else if (b < 0 && open != SIZE_MAX) {
			outer = ps->tok[open].match;
			ps->tok[open].match = i;
			open = outer;
		}
	}
	while (open != SIZE_MAX) {
		size_t outer = ps->tok[open].match;

		ps->tok[open].match = ps->n;
		open = outer;
	}
}

/* Keywords after which pcap's offsets no longer match what the index parsed. */
static bool plan_has_offset_changer(const struct plan_parser *ps)
{
	static const char *const kw[] = {"mpls", "pppoes", "pppoed", "geneve", "vxlan"};

	for (size_t i = 0; i < ps->n; i++)
		for (size_t k = 0; k < COUNT(kw); k++)
			if (ps->tok[i].len == strlen(kw[k]) &&
			    strncasecmp(ps->tok[i].s, kw[k], ps->tok[i].len) == 0)
				return true;
	return false;
}

/* ---- numbers and addresses --------------------------------------------------------- */

/*
 * A number in the forms whose value pcap agrees on: decimal without a
 * leading zero, or 0x hex where pcap reads hex.  pcap reads "010" as octal
 * in some places and as decimal in others; such numbers fail (so: ALL).
 */
static bool plan_number(const char *s, size_t len, bool hex_ok, uint32_t *out)
{
	char buf[PLAN_TOKEN_MAX], *end;
	bool hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	unsigned long v;

	if (len == 0 || len >= sizeof(buf) || !isdigit((unsigned char)s[0]) || (hex && !hex_ok) ||
	    (!hex && s[0] == '0' && len > 1))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoul(buf, &end, hex ? 16 : 10);
	if (*end != '\0' || errno != 0 || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool tok_number(const struct plan_tok *t, uint32_t *out)
{
	return plan_number(t->s, t->len, true, out);
}

/* A numeric IPv4 (made IPv4-mapped) or IPv6 address: its bit length, 0 if none. */
static unsigned plan_addr(const struct plan_tok *t, uint8_t out[PLAN_ADDR_LEN])
{
	char s[PLAN_TOKEN_MAX];

	if (t->len >= sizeof(s))
		return 0;
	memcpy(s, t->s, t->len);
	s[t->len] = '\0';
	memset(out, 0, PLAN_ADDR_LEN);
	if (inet_pton(AF_INET, s, out + 12) == 1) {
		out[10] = out[11] = 0xff;
		return 32;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 128 : 0;
}

/*
 * Address argument tokens [i, end): ADDR, ADDR/LEN or ADDR mask MASK (IPv4),
 * as the inclusive range [addr & mask, addr | ~mask].  For a mask with holes
 * the range is wider than the set, which is still a superset.
 */
static bool plan_addr_range(const struct plan_parser *ps, size_t i, size_t end,
                            uint8_t lo[PLAN_ADDR_LEN], uint8_t hi[PLAN_ADDR_LEN])
{
	uint8_t mask[PLAN_ADDR_LEN], m4[PLAN_ADDR_LEN];
	unsigned bits = plan_addr(&ps->tok[i], lo);
	uint32_t plen = bits;
	bool has_mask = end - i == 3 && at(ps, i + 1, "mask");

	if (bits == 0 || (end - i != 1 && end - i != 3))
		return false;
	if (end - i == 3 && !has_mask &&
	    (!at(ps, i + 1, "/") || !tok_number(&ps->tok[i + 2], &plen) || plen > bits))
		return false;
	if (has_mask && (bits != 32 || plan_addr(&ps->tok[i + 2], m4) != 32))
		return false;
	plen += 128 - bits; /* an IPv4 prefix covers the 96 bits of the mapping too */
	for (unsigned k = 0; k < PLAN_ADDR_LEN; k++) {
		unsigned take = plen >= 8 ? 8 : plen;

		mask[k] = has_mask && k >= 12 ? m4[k] : (uint8_t)(0xff00u >> take);
		plen -= take;
		lo[k] &= mask[k];
		hi[k] = (uint8_t)(lo[k] | (uint8_t)~mask[k]);
	}
	return true;
}

/* ---- plan nodes -------------------------------------------------------------------- */

static struct query_plan *plan_new(struct plan_parser *ps, enum query_plan_op op)
{
	struct query_plan *p = calloc(1, sizeof(*p));

	if (p == NULL)
		ps->nomem = true;
	else
		p->op = op;
	return p;
}

static struct query_plan *plan_term(struct plan_parser *ps, enum archive_term_type type,
                                    const uint8_t *lo, const uint8_t *hi)
{
	struct query_plan *p = plan_new(ps, QUERY_PLAN_TERM);

	if (p != NULL) {
		p->type = type;
		memcpy(p->lo, lo, archive_term_len(type));
		memcpy(p->hi, hi, archive_term_len(type));
	}
	return p;
}

/* A term of 1 or 2 big-endian bytes over [lo, hi]. */
static struct query_plan *plan_term_num(struct plan_parser *ps, enum archive_term_type type,
                                        uint32_t lo, uint32_t hi)
{
	uint8_t l[2] = {(uint8_t)(lo >> 8), (uint8_t)lo}, h[2] = {(uint8_t)(hi >> 8), (uint8_t)hi};
	size_t skip = 2 - archive_term_len(type);

	return plan_term(ps, type, l + skip, h + skip);
}

/*
 * Joins two plans, simplifying: ALL is AND's identity and absorbs OR, NONE
 * is OR's identity and absorbs AND.  Takes both; NULL (out of memory) in
 * gives NULL out.
 */
static struct query_plan *plan_join(struct plan_parser *ps, enum query_plan_op op,
                                    struct query_plan *a, struct query_plan *b)
{
	enum query_plan_op unit = op == QUERY_PLAN_AND ? QUERY_PLAN_ALL : QUERY_PLAN_NONE;
	enum query_plan_op zero = op == QUERY_PLAN_AND ? QUERY_PLAN_NONE : QUERY_PLAN_ALL;
	struct query_plan *p = NULL;

	if (a != NULL && b != NULL && (a->op == unit || b->op == zero)) {
		query_plan_free(a);
		return b;
	}
	if (a != NULL && b != NULL && (b->op == unit || a->op == zero)) {
		query_plan_free(b);
		return a;
	}
	if (a != NULL && b != NULL)
		p = plan_new(ps, op);
	if (p == NULL) {
		query_plan_free(a);
		query_plan_free(b);
		return NULL;
	}
	p->left = a;
	p->right = b;
	return p;
}

/* ---- primitives -------------------------------------------------------------------- */

struct plan_name {
	const char *name;
	uint16_t value;
};

/* pcap keywords that alone test exactly this ethertype; also host/net qualifiers. */
static const struct plan_name plan_ethertypes[] = {
    {"ip", 0x0800}, {"ip6", 0x86dd}, {"arp", 0x0806}, {"rarp", 0x8035}};

/*
 * pcap keywords that alone test exactly this IP protocol; also the names
 * "proto \tcp" may give (pcap resolves them with getprotobyname(), so when
 * pcap accepts one, it has its standard number).
 */
static const struct plan_name plan_ipprotos[] = {
    {"tcp", 6},  {"udp", 17},  {"sctp", 132}, {"icmp", 1},   {"icmp6", 58}, {"igmp", 2},
    {"igrp", 9}, {"pim", 103}, {"vrrp", 112}, {"carp", 112}, {"ah", 51},    {"esp", 50}};

enum plan_kind { PK_NONE, PK_HOST, PK_NET, PK_PORT, PK_PORTRANGE, PK_PROTO };

/* A primitive split into pcap's qualifiers: [proto] [dir] [kind] argument... */
struct plan_prim {
	const struct plan_name *et;  /* protocol qualifier from plan_ethertypes, or NULL */
	const struct plan_name *ipp; /* protocol qualifier from plan_ipprotos, or NULL */
	bool dir;                    /* src, dst, src or dst, src and dst */
	enum plan_kind kind;
	size_t arg; /* first argument token */
	size_t end; /* one past the primitive's last token */
};

static const struct plan_name *name_find(const char *s, size_t len, const struct plan_name *names,
                                         size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (strlen(names[k].name) == len && memcmp(names[k].name, s, len) == 0)
			return &names[k];
	return NULL;
}

static void prim_split(const struct plan_parser *ps, size_t i, size_t end, struct plan_prim *pr)
{
	static const char *const kinds[] = {"host", "net", "port", "portrange", "proto"};
	const struct plan_tok *t = &ps->tok[i];

	*pr = (struct plan_prim){.kind = PK_NONE, .end = end};
	pr->et = name_find(t->s, t->len, plan_ethertypes, COUNT(plan_ethertypes));
	pr->ipp = name_find(t->s, t->len, plan_ipprotos, COUNT(plan_ipprotos));
	if (pr->et != NULL || pr->ipp != NULL)
		i++;
	if (i < end && at_dir(ps, i)) {
		pr->dir = true;
		i += at_dir_pair(ps, i + 1) ? 3 : 1;
	}
	for (size_t k = 0; i < end && k < COUNT(kinds); k++)
		if (at(ps, i, kinds[k])) {
			pr->kind = (enum plan_kind)(PK_HOST + k);
			i++;
			break;
		}
	pr->arg = i;
}

/* host, net, or an address after src/dst: one HOST term, exact or a range. */
static struct query_plan *prim_host(struct plan_parser *ps, const struct plan_prim *pr)
{
	uint8_t lo[PLAN_ADDR_LEN], hi[PLAN_ADDR_LEN];

	if (pr->ipp != NULL || pr->arg >= pr->end || !plan_addr_range(ps, pr->arg, pr->end, lo, hi))
		return plan_new(ps, QUERY_PLAN_ALL);
	return plan_term(ps, ARCHIVE_TERM_HOST, lo, hi);
}

/* "A-B" or "A", decimal only: pcap reads range ends unlike other numbers. */
static bool plan_portrange(const struct plan_tok *t, uint32_t *lo, uint32_t *hi)
{
	const char *dash = memchr(t->s, '-', t->len);
	size_t l1 = dash != NULL ? (size_t)(dash - t->s) : t->len;

	if (!plan_number(t->s, l1, false, lo) ||
	    !plan_number(dash != NULL ? dash + 1 : t->s, dash != NULL ? t->len - l1 - 1 : l1, false,
	                 hi))
		return false;
	if (*lo > *hi) { /* pcap swaps a reversed range */
		uint32_t swap = *lo;

		*lo = *hi;
		*hi = swap;
	}
	return *hi <= UINT16_MAX;
}

/* [tcp|udp|sctp] port/portrange: a PORT term, ANDed with the protocol's PROTO term. */
static struct query_plan *prim_port(struct plan_parser *ps, const struct plan_prim *pr)
{
	uint32_t lo = 0, hi = 0, proto = pr->ipp != NULL ? pr->ipp->value : 0;
	bool ok;

	if (pr->et != NULL || (proto != 0 && proto != 6 && proto != 17 && proto != 132) ||
	    pr->end - pr->arg != 1)
		return plan_new(ps, QUERY_PLAN_ALL);
	if (pr->kind == PK_PORT) { /* a service name ("http") would need a lookup */
		ok = tok_number(&ps->tok[pr->arg], &lo) && lo <= UINT16_MAX;
		hi = lo;
	} else {
		ok = plan_portrange(&ps->tok[pr->arg], &lo, &hi);
	}
	if (!ok)
		return plan_new(ps, QUERY_PLAN_ALL);
	if (proto == 0)
		return plan_term_num(ps, ARCHIVE_TERM_PORT, lo, hi);
	return plan_join(ps, QUERY_PLAN_AND, plan_term_num(ps, ARCHIVE_TERM_PROTO, proto, proto),
	                 plan_term_num(ps, ARCHIVE_TERM_PORT, lo, hi));
}

/* [ip|ip6] proto N or \name: a PROTO term. */
static struct query_plan *prim_proto(struct plan_parser *ps, const struct plan_prim *pr)
{
	const struct plan_tok *t = &ps->tok[pr->arg];
	const struct plan_name *name;
	uint32_t v;

	if (pr->dir || pr->ipp != NULL ||
	    (pr->et != NULL && pr->et->value != 0x0800 && pr->et->value != 0x86dd) ||
	    pr->end - pr->arg != 1)
		return plan_new(ps, QUERY_PLAN_ALL);
	if (!tok_number(t, &v)) { /* "\tcp": tcp is a keyword, so pcap wants it escaped */
		name = t->s[0] == '\\'
		           ? name_find(t->s + 1, t->len - 1, plan_ipprotos, COUNT(plan_ipprotos))
		           : NULL;
		if (name == NULL)
			return plan_new(ps, QUERY_PLAN_ALL);
		v = name->value;
	}
	if (v > UINT8_MAX) /* pcap compares a byte with it: never true */
		return plan_new(ps, QUERY_PLAN_NONE);
	return plan_term_num(ps, ARCHIVE_TERM_PROTO, v, v);
}

/* A primitive other than vlan, read at the offsets the index used. */
static struct query_plan *prim_translate(struct plan_parser *ps, size_t from, size_t end)
{
	struct plan_prim pr;

	prim_split(ps, from, end, &pr);
	if (pr.et != NULL && end - from == 1)
		return plan_term_num(ps, ARCHIVE_TERM_ETHERTYPE, pr.et->value, pr.et->value);
	if (pr.ipp != NULL && end - from == 1)
		return plan_term_num(ps, ARCHIVE_TERM_PROTO, pr.ipp->value, pr.ipp->value);
	switch (pr.kind) {
	case PK_HOST:
	case PK_NET:
		return prim_host(ps, &pr);
	case PK_PORT:
	case PK_PORTRANGE:
		return prim_port(ps, &pr);
	case PK_PROTO:
		return prim_proto(ps, &pr);
	case PK_NONE:
		break;
	}
	/* "src 10.0.0.1" is a host; anything else without a kind is not ours. */
	return pr.dir ? prim_host(ps, &pr) : plan_new(ps, QUERY_PLAN_ALL);
}

/*
 * "vlan [N]" tests for a tag at level shift + 1, pcap having moved past
 * `shift` tags already.  It reads a tag only where the context guarantees
 * the levels before it, and then guarantees one more level to what is
 * ANDed after it.
 */
static struct query_plan *prim_vlan(struct plan_parser *ps, size_t from, size_t end, unsigned *tags)
{
	unsigned shift = ps->tok[from].vlans;
	uint32_t id = 0;

	if (shift > *tags || end - from > 2 ||
	    (end - from == 2 && (!tok_number(&ps->tok[from + 1], &id) || id > PLAN_VLAN_MAX)))
		return plan_new(ps, QUERY_PLAN_ALL);
	*tags = shift + 1;
	/* The index keeps the outer FT_MAX_VLAN ids only. */
	if (end - from == 1 || shift >= FT_MAX_VLAN)
		return plan_new(ps, QUERY_PLAN_ALL);
	return plan_term_num(ps, ARCHIVE_TERM_VLAN, id, id);
}

/* ---- parser ------------------------------------------------------------------------ */

/* End of the term at `from`: the first and/or outside brackets, or an unmatched ')'. */
static size_t term_end(const struct plan_parser *ps, size_t from)
{
	for (size_t i = from; i < ps->n; i++) {
		if (at_bracket(ps, i) > 0)
			i = ps->tok[i].match; /* the loop steps past it */
		else if (at_bracket(ps, i) < 0 || (at_bool(ps, i) != 0 && !at_dir_pair(ps, i)))
			return i;
	}
	return ps->n;
}

/*
 * A relation ("len > 100", "tcp[13] & 2 != 0", "(tcp[13] & 2) != 0") has a
 * comparison outside all brackets; a parenthesised boolean group has none.
 */
static bool term_is_relation(const struct plan_parser *ps, size_t from, size_t end)
{
	static const char *const relops[] = {"=", "==", "!=", "<", ">", "<=", ">="};

	for (size_t i = from; i < end; i++) {
		if (at_bracket(ps, i) > 0)
			i = ps->tok[i].match;
		for (size_t k = 0; i < end && k < COUNT(relops); k++)
			if (at(ps, i, relops[k]))
				return true;
	}
	return false;
}

static struct query_plan *parse_expr(struct plan_parser *ps, unsigned *tags);

/*
 * One term: not TERM, ( EXPR ), a relation, or a primitive.  *tags is in:
 * the VLAN levels the context guarantees; out: those the term guarantees.
 */
static struct query_plan *parse_term(struct plan_parser *ps, unsigned *tags)
{
	size_t from = ps->pos, end;

	if (at(ps, from, "not") || at(ps, from, "!")) {
		unsigned inner = *tags;

		ps->pos++;
		query_plan_free(parse_term(ps, &inner));
		return plan_new(ps, QUERY_PLAN_ALL); /* the index has no complement */
	}
	end = term_end(ps, from);
	if (end == from) { /* nothing where a term must be */
		ps->lost = true;
	} else if (!term_is_relation(ps, from, end) && at(ps, from, "(")) {
		struct query_plan *p;

		ps->pos++;
		p = parse_expr(ps, tags);
		if (at(ps, ps->pos, ")"))
			ps->pos++;
		else
			ps->lost = true;
		return p;
	}
	ps->pos = end;
	if (ps->lost || term_is_relation(ps, from, end))
		return plan_new(ps, QUERY_PLAN_ALL);
	if (at(ps, from, "vlan"))
		return prim_vlan(ps, from, end, tags);
	if (ps->tok[end - 1].vlans > *tags) /* pcap reads it past tags the packet may lack */
		return plan_new(ps, QUERY_PLAN_ALL);
	return prim_translate(ps, from, end);
}

/*
 * TERM { (and|or) TERM }: pcap gives and/or one precedence, left to right,
 * so "a or b and c" is "(a or b) and c".  What an AND's left side
 * guarantees about VLAN tags holds for its right side; an OR's right side
 * has only what the OR's context has.
 */
static struct query_plan *parse_expr(struct plan_parser *ps, unsigned *tags)
{
	unsigned ctx = *tags, have = ctx;
	struct query_plan *p = parse_term(ps, &have);
	int op;

	while (!ps->lost && (op = at_bool(ps, ps->pos)) != 0) {
		unsigned rhs = op == QUERY_PLAN_AND ? have : ctx;

		ps->pos++;
		p = plan_join(ps, (enum query_plan_op)op, p, parse_term(ps, &rhs));
		if (op == QUERY_PLAN_AND)
			have = rhs > have ? rhs : have;
		else
			have = rhs < have ? rhs : have;
	}
	*tags = have;
	return p;
}

/* ---- building ---------------------------------------------------------------------- */

int query_plan_build(const char *filter, struct query_plan **out)
{
	struct plan_parser ps = {0};
	struct query_plan *p = NULL;
	unsigned tags = 0;

	*out = NULL;
	if (plan_tokenize(&ps, filter != NULL ? filter : "") != 0)
		return -ENOMEM;
	if (!ps.lost && ps.n > 0 && !plan_has_offset_changer(&ps)) {
		plan_match_brackets(&ps);
		p = parse_expr(&ps, &tags);
		ps.lost |= ps.pos != ps.n; /* e.g. a stray ")" */
	} else {
		ps.lost = true;
	}
	free(ps.tok);
	if (ps.lost && !ps.nomem) {
		query_plan_free(p);
		p = plan_new(&ps, QUERY_PLAN_ALL);
	}
	if (ps.nomem) {
		query_plan_free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void query_plan_free(struct query_plan *p)
{
	/* "a and b and c ..." builds a left-deep tree: loop down the left side. */
	while (p != NULL) {
		struct query_plan *left = p->left;

		query_plan_free(p->right);
		free(p);
		p = left;
	}
}

/* ---- formatting -------------------------------------------------------------------- */

struct plan_out {
	char *buf;
	size_t len;  /* size of buf, > 0 */
	size_t used; /* characters written, the NUL not counted */
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct plan_out *o, const char *fmt,
                                                             ...)
{
	va_list ap;
	int n;

	if (o->used + 1 >= o->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	/* vsnprintf() truncates and terminates; keep `used` at the real end. */
	if (n >= 0)
		o->used = (size_t)n >= o->len - o->used ? o->len - 1 : o->used + (size_t)n;
}

static const char *addr_format(const uint8_t *a, bool v4, char *s, size_t len)
{
	if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, s, (socklen_t)len) == NULL)
		snprintf(s, len, "?");
	return s;
}

static unsigned bit_at(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1u;
}

/* Length of the prefix whose addresses are exactly [lo, hi], or -1. */
static int range_prefix_len(const uint8_t *lo, const uint8_t *hi)
{
	unsigned len = 0;

	while (len < 128 && bit_at(lo, len) == bit_at(hi, len))
		len++;
	for (unsigned i = len; i < 128; i++)
		if (bit_at(lo, i) != 0 || bit_at(hi, i) != 1)
			return -1;
	return (int)len;
}

static void format_host(struct plan_out *o, const uint8_t *lo, const uint8_t *hi)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	int plen = range_prefix_len(lo, hi);
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	bool v4 = memcmp(lo, mapped, 12) == 0 && memcmp(hi, mapped, 12) == 0;

	if (plen == 128)
		out_printf(o, "host %s", addr_format(lo, v4, a, sizeof(a)));
	else if (plen >= 0 && (!v4 || plen >= 96))
		out_printf(o, "net %s/%d", addr_format(lo, v4, a, sizeof(a)),
		           v4 ? plen - 96 : plen);
	else
		out_printf(o, "host [%s..%s]", addr_format(lo, v4, a, sizeof(a)),
		           addr_format(hi, v4, b, sizeof(b)));
}

static void format_term(struct plan_out *o, const struct query_plan *p)
{
	size_t len = archive_term_len(p->type);
	unsigned lo = len == 2 ? (unsigned)p->lo[0] << 8 | p->lo[1] : p->lo[0];
	unsigned hi = len == 2 ? (unsigned)p->hi[0] << 8 | p->hi[1] : p->hi[0];

	switch (p->type) {
	case ARCHIVE_TERM_HOST:
		format_host(o, p->lo, p->hi);
		return;
	case ARCHIVE_TERM_PORT:
		out_printf(o, lo == hi ? "port %u" : "portrange %u-%u", lo, hi);
		return;
	case ARCHIVE_TERM_PROTO:
		out_printf(o, lo == hi ? "proto %u" : "proto [%u..%u]", lo, hi);
		return;
	case ARCHIVE_TERM_VLAN:
		out_printf(o, lo == hi ? "vlan %u" : "vlan [%u..%u]", lo, hi);
		return;
	case ARCHIVE_TERM_ETHERTYPE:
		out_printf(o, lo == hi ? "ethertype 0x%04x" : "ethertype [0x%04x..0x%04x]", lo, hi);
		return;
	default: /* FLOW and UNINDEXED: never built by the planner */
		out_printf(o, "term %d", (int)p->type);
		return;
	}
}

static void format_node(struct plan_out *o, const struct query_plan *p)
{
	if (o->used + 1 >= o->len) /* full: also bounds the recursion on deep trees */
		return;
	if (p == NULL) {
		out_printf(o, "(null)");
		return;
	}
	switch (p->op) {
	case QUERY_PLAN_ALL:
		out_printf(o, "ALL");
		return;
	case QUERY_PLAN_NONE:
		out_printf(o, "NONE");
		return;
	case QUERY_PLAN_TERM:
		format_term(o, p);
		return;
	case QUERY_PLAN_AND:
	case QUERY_PLAN_OR:
		out_printf(o, "(");
		format_node(o, p->left);
		out_printf(o, p->op == QUERY_PLAN_AND ? " AND " : " OR ");
		format_node(o, p->right);
		out_printf(o, ")");
		return;
	}
	out_printf(o, "?");
}

char *query_plan_format(const struct query_plan *p, char *buf, size_t len)
{
	struct plan_out o = {.buf = buf, .len = len, .used = 0};

	if (buf == NULL || len == 0)
		return buf;
	buf[0] = '\0';
	format_node(&o, p);
	return buf;
}

/* ---- the plan as a ClickHouse condition on flow rows (docs/clickhouse.md) ------------------ */

static void sql_addr(struct plan_out *o, const char *col, const uint8_t *lo, const uint8_t *hi)
{
	char l[33], h[33];
	for (int i = 0; i < 16; i++) {
		snprintf(l + 2 * i, 3, "%02x", lo[i]);
		snprintf(h + 2 * i, 3, "%02x", hi[i]);
	}
	if (memcmp(lo, hi, 16) == 0)
		out_printf(o, "%s = toFixedString(unhex('%s'), 16)", col, l);
	else
		out_printf(
		    o,
		    "%s BETWEEN toFixedString(unhex('%s'), 16) AND toFixedString(unhex('%s'), 16)",
		    col, l, h);
}

/* Protocols whose packets the flow rows carry under that number (not IPv6 extension headers). */
static bool sql_proto_ok(unsigned lo, unsigned hi)
{
	return lo == hi && (lo == 1 || lo == 6 || lo == 17 || lo == 58 || lo == 132);
}

static void sql_term(struct plan_out *o, const struct query_plan *p)
{
	size_t len = archive_term_len(p->type);
	unsigned lo = len == 2 ? (unsigned)p->lo[0] << 8 | p->lo[1] : p->lo[0];
	unsigned hi = len == 2 ? (unsigned)p->hi[0] << 8 | p->hi[1] : p->hi[0];
	switch (p->type) {
	case ARCHIVE_TERM_HOST:
		out_printf(o, "(");
		sql_addr(o, "addr_a", p->lo, p->hi);
		out_printf(o, " OR ");
		sql_addr(o, "addr_b", p->lo, p->hi);
		out_printf(o, ")");
		return;
	case ARCHIVE_TERM_PORT:
		out_printf(o, "(port_a BETWEEN %u AND %u OR port_b BETWEEN %u AND %u)", lo, hi, lo,
		           hi);
		return;
	case ARCHIVE_TERM_PROTO:
		if (sql_proto_ok(lo, hi))
			out_printf(o, "proto = %u", lo);
		else
			out_printf(o, "1");
		return;
	case ARCHIVE_TERM_VLAN:
		out_printf(o, "(vlan BETWEEN %u AND %u OR vlan_inner BETWEEN %u AND %u)", lo, hi,
		           lo, hi);
		return;
	default: /* ethertypes (packets of no flow among them), the rest: rows cannot tell */
		out_printf(o, "1");
		return;
	}
}

static void sql_node(struct plan_out *o, const struct query_plan *p)
{
	if (o->used + 1 >= o->len)
		return;
	switch (p->op) {
	case QUERY_PLAN_ALL:
		out_printf(o, "1");
		return;
	case QUERY_PLAN_NONE:
		out_printf(o, "0");
		return;
	case QUERY_PLAN_TERM:
		sql_term(o, p);
		return;
	case QUERY_PLAN_AND:
	case QUERY_PLAN_OR:
		out_printf(o, "(");
		sql_node(o, p->left);
		out_printf(o, p->op == QUERY_PLAN_AND ? " AND " : " OR ");
		sql_node(o, p->right);
		out_printf(o, ")");
		return;
	}
}

/* 1 when the plan narrows nothing the rows can tell (ALL, or terms they cannot tell only). */
static bool sql_all(const struct query_plan *p)
{
	switch (p->op) {
	case QUERY_PLAN_ALL:
		return true;
	case QUERY_PLAN_NONE:
		return false;
	case QUERY_PLAN_TERM: {
		size_t len = archive_term_len(p->type);
		unsigned lo = len == 2 ? (unsigned)p->lo[0] << 8 | p->lo[1] : p->lo[0];
		unsigned hi = len == 2 ? (unsigned)p->hi[0] << 8 | p->hi[1] : p->hi[0];
		return p->type == ARCHIVE_TERM_PROTO
		           ? !sql_proto_ok(lo, hi)
		           : p->type != ARCHIVE_TERM_HOST && p->type != ARCHIVE_TERM_PORT &&
		                 p->type != ARCHIVE_TERM_VLAN;
	}
	case QUERY_PLAN_AND:
		return sql_all(p->left) && sql_all(p->right);
	case QUERY_PLAN_OR:
		return sql_all(p->left) || sql_all(p->right);
	}
	return true;
}

int query_plan_sql(const struct query_plan *p, char *buf, size_t len)
{
	struct plan_out o = {.buf = buf, .len = len, .used = 0};
	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	if (sql_all(p))
		return 1;
	sql_node(&o, p);
	return o.used + 1 >= len ? -ENOSPC : 0;
}
