/*
 * Stenographer's query language, translated into a libpcap filter and a time
 * range, so a Stenographer client (stenoread's POST /query) can ask flowscope
 * for packets.  The grammar is Stenographer's (its README and query/parser.y):
 *
 *   expr := term { ("and" | "&&" | "or" | "||") term }   equal precedence, left to right
 *   term := "host" IP | "net" IP "/" BITS | "net" IP "mask" IP | "port" N
 *         | "ip" "proto" N | "tcp" | "udp" | "icmp"
 *         | "before" TIME | "after" TIME | "(" expr ")"
 *   TIME := RFC 3339 with zone | N("m"|"h"|"d") "ago"
 *
 * The input is parsed into a small tree (nodes in one array), checked, then
 * written out once.  Nothing of the input reaches the filter as text: every
 * address and number is parsed and printed again (inet_ntop, %u), so the
 * filter is always one libpcap accepts and means what the tree means.
 *
 * libpcap has no time predicate, so "before"/"after" become the time range.
 * That is exact only where a time term is a conjunct of the whole query
 * (reached from the top through "and" and parentheses only): a time under an
 * "or" is refused with its position rather than widened or dropped.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"
#include "query/query.h"

#define STENO_ATOM_MAX 96 /* the longest atom: "ip6 net " + an IPv6 address + "/128" */

enum steno_tok { T_END, T_WORD, T_LPAREN, T_RPAREN, T_SLASH, T_AND, T_OR, T_BAD };

enum steno_kind { N_ATOM, N_TIME, N_AND, N_OR };

struct steno_node {
	enum steno_kind kind;
	size_t pos;                /* N_TIME: where its keyword starts, for errors */
	int is_after;              /* N_TIME: 1 after (from), 0 before (to) */
	uint64_t ns;               /* N_TIME */
	int left, right;           /* N_AND / N_OR: node indexes */
	char atom[STENO_ATOM_MAX]; /* N_ATOM: libpcap text */
};

struct steno_parser {
	const char *in;
	size_t len, pos;         /* pos: the next unread byte */
	enum steno_tok tok;      /* the current token ... */
	size_t tok_pos, tok_len; /* ... and where it lies */
	uint64_t now_ns;
	int terms; /* primitives so far (QUERY_STENO_MAX_TERMS) */
	struct steno_node *nodes;
	int n_nodes, cap_nodes;
	char *errbuf;
	int failed;
};

struct steno_buf {
	char *p;
	size_t len, cap;
	int oom;
};

/* ---- errors ------------------------------------------------------------------------- */

/* The first error wins: "stenographer query, column C: WHAT (at "TOKEN")". */
static int steno_fail(struct steno_parser *ps, size_t pos, const char *fmt, ...)
{
	if (ps->failed)
		return QUERY_E_STENO;
	ps->failed = 1;
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	char near[40];
	size_t n = 0;
	for (size_t i = pos; i < ps->len && n < 32 && !isspace((unsigned char)ps->in[i]); i++)
		near[n++] = isprint((unsigned char)ps->in[i]) ? ps->in[i] : '?';
	near[n] = '\0';
	if (n)
		snprintf(ps->errbuf, QUERY_ERRBUF_SIZE,
		         "stenographer query, column %zu: %s (at \"%s\")", pos + 1, what, near);
	else
		snprintf(ps->errbuf, QUERY_ERRBUF_SIZE, "stenographer query, column %zu: %s",
		         pos + 1, what);
	return QUERY_E_STENO;
}

/* ---- tokens ------------------------------------------------------------------------- */

static int steno_is_word_char(char c)
{
	return !isspace((unsigned char)c) && !strchr("()/&|", c);
}

static void steno_next(struct steno_parser *ps)
{
	while (ps->pos < ps->len && isspace((unsigned char)ps->in[ps->pos]))
		ps->pos++;
	ps->tok_pos = ps->pos;
	ps->tok_len = 1;
	if (ps->pos >= ps->len) {
		ps->tok = T_END;
		ps->tok_len = 0;
		return;
	}
	const char *s = ps->in + ps->pos;
	size_t left = ps->len - ps->pos;
	if (*s == '(' || *s == ')' || *s == '/') {
		ps->tok = *s == '(' ? T_LPAREN : *s == ')' ? T_RPAREN : T_SLASH;
	} else if (*s == '&' || *s == '|') {
		ps->tok = left >= 2 && s[1] == *s ? (*s == '&' ? T_AND : T_OR) : T_BAD;
		ps->tok_len = ps->tok == T_BAD ? 1 : 2;
	} else {
		while (ps->tok_len < left && steno_is_word_char(s[ps->tok_len]))
			ps->tok_len++;
		ps->tok = T_WORD;
		if (ps->tok_len == 3 && memcmp(s, "and", 3) == 0)
			ps->tok = T_AND;
		else if (ps->tok_len == 2 && memcmp(s, "or", 2) == 0)
			ps->tok = T_OR;
	}
	ps->pos += ps->tok_len;
}

static int steno_word_is(const struct steno_parser *ps, const char *w)
{
	return ps->tok == T_WORD && ps->tok_len == strlen(w) &&
	       memcmp(ps->in + ps->tok_pos, w, ps->tok_len) == 0;
}

/* The current word as a string (words longer than cap-1 bytes come back cut: never valid). */
static void steno_word(const struct steno_parser *ps, char *buf, size_t cap)
{
	size_t n = ps->tok == T_WORD ? ps->tok_len : 0;
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, ps->in + ps->tok_pos, n);
	buf[n] = '\0';
}

/* ---- nodes -------------------------------------------------------------------------- */

static int steno_node_new(struct steno_parser *ps, enum steno_kind kind)
{
	if (ps->n_nodes == ps->cap_nodes) {
		int cap = ps->cap_nodes ? ps->cap_nodes * 2 : 16;
		struct steno_node *n = realloc(ps->nodes, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		ps->nodes = n;
		ps->cap_nodes = cap;
	}
	struct steno_node *n = &ps->nodes[ps->n_nodes];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->left = n->right = -1;
	return ps->n_nodes++;
}

static int steno_atom(struct steno_parser *ps, const char *fmt, ...)
{
	int i = steno_node_new(ps, N_ATOM);
	if (i < 0)
		return i;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->nodes[i].atom, STENO_ATOM_MAX, fmt, ap);
	va_end(ap);
	return i;
}

/* ---- terms -------------------------------------------------------------------------- */

/* A decimal number in [0, max] (the current word); advances past it. */
static int steno_number(struct steno_parser *ps, uint64_t max, const char *what, unsigned *out)
{
	char w[24];
	uint64_t v;
	steno_word(ps, w, sizeof(w));
	if (ps->tok != T_WORD || ps->tok_len >= sizeof(w) || ft_parse_uint(w, 0, max, &v) != 0)
		return steno_fail(ps, ps->tok_pos, "expected %s (0..%llu)", what,
		                  (unsigned long long)max);
	*out = (unsigned)v;
	steno_next(ps);
	return 0;
}

struct steno_ip {
	int family; /* AF_INET or AF_INET6 */
	unsigned char b[16];
};

static int steno_ip(struct steno_parser *ps, struct steno_ip *ip)
{
	char w[INET6_ADDRSTRLEN + 1];
	steno_word(ps, w, sizeof(w));
	if (ps->tok == T_WORD && ps->tok_len < sizeof(w)) {
		ip->family = AF_INET;
		if (inet_pton(AF_INET, w, ip->b) == 1)
			return steno_next(ps), 0;
		ip->family = AF_INET6;
		if (inet_pton(AF_INET6, w, ip->b) == 1)
			return steno_next(ps), 0;
	}
	return steno_fail(ps, ps->tok_pos, "expected an IPv4 or IPv6 address (no host names)");
}

static const char *steno_ip_qual(const struct steno_ip *ip)
{
	return ip->family == AF_INET ? "ip" : "ip6";
}

/* Prefix length of a contiguous mask, or -1. */
static int steno_mask_bits(const struct steno_ip *m)
{
	int n = m->family == AF_INET ? 4 : 16, bits = 0, i = 0;
	for (; i < n && m->b[i] == 0xff; i++)
		bits += 8;
	if (i < n) {
		unsigned char c = m->b[i++];
		for (; c & 0x80; c = (unsigned char)(c << 1))
			bits++;
		if (c)
			return -1;
	}
	for (; i < n; i++)
		if (m->b[i])
			return -1;
	return bits;
}

/* "net A/BITS" or "net A mask M": the address is masked first, as Stenographer does. */
static int steno_term_net(struct steno_parser *ps)
{
	struct steno_ip a = {0}, m = {0};
	char as[INET6_ADDRSTRLEN], ms[INET6_ADDRSTRLEN];
	unsigned bits = 0;
	int r = steno_ip(ps, &a);
	if (r)
		return r;
	int n = a.family == AF_INET ? 4 : 16;
	m.family = a.family;
	if (ps->tok == T_SLASH) {
		steno_next(ps);
		if ((r = steno_number(ps, n * 8u, "a prefix length", &bits)))
			return r;
		memset(m.b, 0, sizeof(m.b));
		for (unsigned i = 0; i < bits; i++)
			m.b[i / 8] |= (unsigned char)(0x80u >> (i % 8));
	} else if (steno_word_is(ps, "mask")) {
		steno_next(ps);
		size_t mpos = ps->tok_pos;
		if ((r = steno_ip(ps, &m)))
			return r;
		if (m.family != a.family)
			return steno_fail(ps, mpos, "the mask is not of the address's family");
		int b = steno_mask_bits(&m);
		if (a.family == AF_INET6 && b < 0)
			return steno_fail(ps, mpos, "an IPv6 mask must be contiguous");
		bits = b < 0 ? 0 : (unsigned)b;
	} else {
		return steno_fail(ps, ps->tok_pos, "expected '/' and a prefix length, or 'mask'");
	}
	for (int i = 0; i < n; i++)
		a.b[i] &= m.b[i];
	inet_ntop(a.family, a.b, as, sizeof(as));
	if (a.family == AF_INET && steno_mask_bits(&m) < 0) { /* libpcap takes any IPv4 mask */
		inet_ntop(AF_INET, m.b, ms, sizeof(ms));
		return steno_atom(ps, "ip net %s mask %s", as, ms);
	}
	return steno_atom(ps, "%s net %s/%u", steno_ip_qual(&a), as, bits);
}

static int steno_proto(struct steno_parser *ps, unsigned proto)
{
	if (proto == 6 || proto == 17) /* libpcap's tcp/udp are exactly this pair */
		return steno_atom(ps, proto == 6 ? "tcp" : "udp");
	return steno_atom(ps, "(ip proto %u or ip6 proto %u)", proto, proto);
}

/* "N[mhd] ago" (the number whole, as Stenographer's README says) or RFC 3339. */
static int steno_time(struct steno_parser *ps, uint64_t *ns)
{
	char w[64];
	size_t pos = ps->tok_pos;
	steno_word(ps, w, sizeof(w));
	size_t n = strlen(w);
	if (ps->tok == T_WORD && ps->tok_len < sizeof(w) && n >= 2 && strchr("mhd", w[n - 1]) &&
	    strspn(w, "0123456789") == n - 1) {
		uint64_t dur;
		steno_next(ps);
		if (!steno_word_is(ps, "ago"))
			return steno_fail(ps, ps->tok_pos, "expected 'ago' after a duration");
		if (ft_parse_duration(w, &dur) != 0 || dur > ps->now_ns)
			return steno_fail(ps, pos, "duration reaches before 1970");
		*ns = ps->now_ns - dur;
		return steno_next(ps), 0;
	}
	int r = ps->tok == T_WORD && ps->tok_len < sizeof(w) ? ft_parse_rfc3339(w, ns) : -EINVAL;
	if (r == -ERANGE)
		return steno_fail(ps, pos, "time out of range (1970 to 2554)");
	if (r)
		return steno_fail(ps, pos,
		                  "expected a time: RFC 3339 with a zone (2026-12-02T10:00:00Z) "
		                  "or N[mhd] ago");
	steno_next(ps);
	return 0;
}

static int steno_term_time(struct steno_parser *ps, int is_after)
{
	size_t pos = ps->tok_pos;
	uint64_t ns = 0;
	steno_next(ps);
	int r = steno_time(ps, &ns), i;
	if (r)
		return r;
	if ((i = steno_node_new(ps, N_TIME)) < 0)
		return i;
	ps->nodes[i].pos = pos;
	ps->nodes[i].is_after = is_after;
	ps->nodes[i].ns = ns;
	return i;
}

static int steno_expr(struct steno_parser *ps, int depth);

static int steno_term(struct steno_parser *ps, int depth)
{
	struct steno_ip ip = {0};
	char a[INET6_ADDRSTRLEN];
	unsigned v = 0;
	int r;
	if (ps->tok == T_LPAREN) {
		size_t open = ps->tok_pos;
		if (depth >= QUERY_STENO_MAX_DEPTH)
			return steno_fail(ps, open, "parentheses nested deeper than %d",
			                  QUERY_STENO_MAX_DEPTH);
		steno_next(ps);
		if ((r = steno_expr(ps, depth + 1)) < 0)
			return r;
		if (ps->tok != T_RPAREN)
			return steno_fail(ps, ps->tok_pos,
			                  "expected ')' closing the '(' at column %zu", open + 1);
		steno_next(ps);
		return r;
	}
	if (++ps->terms > QUERY_STENO_MAX_TERMS)
		return steno_fail(ps, ps->tok_pos, "more than %d terms", QUERY_STENO_MAX_TERMS);
	if (steno_word_is(ps, "host")) {
		steno_next(ps);
		if ((r = steno_ip(ps, &ip)))
			return r;
		inet_ntop(ip.family, ip.b, a, sizeof(a));
		return steno_atom(ps, "%s host %s", steno_ip_qual(&ip), a);
	}
	if (steno_word_is(ps, "net"))
		return steno_next(ps), steno_term_net(ps);
	if (steno_word_is(ps, "port")) {
		steno_next(ps);
		if ((r = steno_number(ps, 65535, "a port number", &v)))
			return r;
		return steno_atom(ps, "(tcp port %u or udp port %u)", v, v);
	}
	if (steno_word_is(ps, "ip")) {
		steno_next(ps);
		if (!steno_word_is(ps, "proto"))
			return steno_fail(ps, ps->tok_pos, "expected 'proto' after 'ip'");
		steno_next(ps);
		if ((r = steno_number(ps, 255, "an IP protocol number", &v)))
			return r;
		return steno_proto(ps, v);
	}
	if (steno_word_is(ps, "tcp") || steno_word_is(ps, "udp") || steno_word_is(ps, "icmp")) {
		v = steno_word_is(ps, "tcp") ? 6 : steno_word_is(ps, "udp") ? 17 : 1;
		steno_next(ps);
		return steno_proto(ps, v);
	}
	if (steno_word_is(ps, "before") || steno_word_is(ps, "after"))
		return steno_term_time(ps, steno_word_is(ps, "after"));
	if (steno_word_is(ps, "vlan") || steno_word_is(ps, "mpls"))
		return steno_fail(ps, ps->tok_pos, "not supported here (use a tcpdump filter)");
	if (ps->tok == T_END)
		return steno_fail(ps, ps->tok_pos, "unexpected end of the query");
	return steno_fail(
	    ps, ps->tok_pos,
	    "expected host, net, port, ip proto, tcp, udp, icmp, before, after or '('");
}

/* Left to right, "and" and "or" of equal precedence (Stenographer's and libpcap's rule). */
static int steno_expr(struct steno_parser *ps, int depth)
{
	int left = steno_term(ps, depth);
	while (left >= 0 && (ps->tok == T_AND || ps->tok == T_OR)) {
		enum steno_kind kind = ps->tok == T_AND ? N_AND : N_OR;
		steno_next(ps);
		int right = steno_term(ps, depth), i;
		if (right < 0)
			return right;
		if ((i = steno_node_new(ps, kind)) < 0)
			return i;
		ps->nodes[i].left = left;
		ps->nodes[i].right = right;
		left = i;
	}
	return left;
}

/* ---- checking and writing ------------------------------------------------------------- */

/* Refuses a time under an "or"; gathers the others into the range. */
static int steno_check(struct steno_parser *ps, int i, int conjunct, struct query_steno *out)
{
	const struct steno_node *n = &ps->nodes[i];
	if (n->kind == N_TIME) {
		if (!conjunct)
			return steno_fail(ps, n->pos,
			                  "before/after under 'or' cannot be one time range: "
			                  "use them joined by 'and' to the whole query");
		if (n->is_after && n->ns > out->from_ns)
			out->from_ns = n->ns;
		if (!n->is_after && (out->to_ns == 0 || n->ns < out->to_ns))
			out->to_ns = n->ns;
		if (!n->is_after && n->ns == 0)
			return steno_fail(ps, n->pos, "nothing is before 1970-01-01T00:00:00Z");
		if (out->to_ns && out->from_ns >= out->to_ns)
			return steno_fail(ps, n->pos,
			                  "the time range is empty (after is not before)");
		return 0;
	}
	if (n->kind == N_ATOM)
		return 0;
	int r = steno_check(ps, n->left, conjunct && n->kind == N_AND, out);
	return r ? r : steno_check(ps, n->right, conjunct && n->kind == N_AND, out);
}

/* Drops time terms (now the range) from the tree: -1 when nothing is left. */
static int steno_strip(struct steno_parser *ps, int i)
{
	struct steno_node *n = &ps->nodes[i];
	if (n->kind == N_TIME)
		return -1;
	if (n->kind == N_ATOM)
		return i;
	int l = steno_strip(ps, n->left), r = steno_strip(ps, n->right);
	if (l < 0 || r < 0) /* only under "and": steno_check refused times under "or" */
		return l < 0 ? r : l;
	n->left = l;
	n->right = r;
	return i;
}

static void steno_put(struct steno_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 256) + n;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

/* Writes node i; an operand that is itself "and"/"or" goes in parentheses. */
static void steno_write(const struct steno_parser *ps, int i, struct steno_buf *b)
{
	const struct steno_node *n = &ps->nodes[i];
	if (n->kind == N_ATOM) {
		steno_put(b, n->atom);
		return;
	}
	for (int side = 0; side < 2; side++) {
		int c = side ? n->right : n->left;
		int wrap = ps->nodes[c].kind != N_ATOM;
		if (side)
			steno_put(b, n->kind == N_AND ? " and " : " or ");
		if (wrap)
			steno_put(b, "(");
		steno_write(ps, c, b);
		if (wrap)
			steno_put(b, ")");
	}
}

/* ---- the entry point ------------------------------------------------------------------ */

int query_steno_translate(const char *text, size_t len, uint64_t now_ns, struct query_steno *out,
                          char *errbuf)
{
	struct steno_parser ps = {.in = text, .len = len, .now_ns = now_ns, .errbuf = errbuf};
	struct steno_buf b = {0};
	memset(out, 0, sizeof(*out));
	errbuf[0] = '\0';
	if (len > QUERY_STENO_MAX_LEN) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE,
		         "stenographer query: %zu bytes, longer than the %d allowed", len,
		         QUERY_STENO_MAX_LEN);
		return QUERY_E_STENO;
	}
	if (memchr(text, '\0', len))
		return steno_fail(&ps, (size_t)((const char *)memchr(text, '\0', len) - text),
		                  "a NUL byte in the query");
	steno_next(&ps);
	int root = steno_expr(&ps, 0), r = root < 0 ? root : 0;
	if (!r && ps.tok != T_END)
		r = steno_fail(&ps, ps.tok_pos, "expected 'and', 'or' or the end of the query");
	if (!r)
		r = steno_check(&ps, root, 1, out);
	if (!r && (root = steno_strip(&ps, root)) >= 0)
		steno_write(&ps, root, &b);
	steno_put(&b, "");
	if (!r && b.oom)
		r = -ENOMEM;
	if (r == -ENOMEM && !errbuf[0])
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "stenographer query: out of memory");
	free(ps.nodes);
	if (r) {
		free(b.p);
		memset(out, 0, sizeof(*out));
		return r;
	}
	out->filter = b.p;
	return 0;
}

void query_steno_free(struct query_steno *s)
{
	if (!s)
		return;
	free(s->filter);
	s->filter = NULL;
}
