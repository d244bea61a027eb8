/*
 * gen_flows.c - the flows of `flowscope gen`: who talks to whom, and what each packet is.
 *
 * A flow (TCP, UDP or ICMP echo) is a small state machine that emits exactly one packet per
 * gen_flow_step().  TCP flows do the handshake, then request/response rounds (bulk bursts with
 * delayed ACKs), then close with FIN/ACK; UDP flows are DNS/NTP exchanges or plain datagrams;
 * ICMP flows are echo request/reply pairs.
 *
 * Scripted events (--event) go to TCP flows chosen by the PRNG among the first ones started:
 * while events are left, each new TCP flow takes one with probability 1/2 (the run loop in
 * gen.c also forces them, see its drain).  An evented flow is written to --events-out when it
 * starts, and carries exactly one event:
 *  - ttl-change: at the end of a round chosen at start (or when the flow begins to close, if
 *    the --event big budget closes it early), one side's TTL (hop limit) drops by 1..6 for the
 *    rest of the flow; both sides have sent before (handshake) and send after (FIN exchange);
 *  - rst: the flow ends with a RST/ACK from its closer instead of the FIN exchange.  No other
 *    flow ever carries a RST;
 *  - big: the flow keeps doing bulk rounds until it has sent more than BYTES IP bytes, while
 *    every other flow is held to at most (BYTES - 1) / 2 frame bytes (g->big_cap).  Frame
 *    bytes (the pcap wire length: Ethernet, VLAN tag, padding) exceed IP bytes, so a threshold
 *    anywhere in [BYTES / 2, BYTES] separates the two kinds under either measure.
 *
 * 5-tuples are unique over the whole file: the client port advances with every flow and the
 * client host shifts each time the ephemeral range wraps (see flow_endpoints).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tools/gen.h"

#define GEN_NCLIENTS 4000u         /* clients per epoch: 10.1.0.1 .. 10.1.15.250 in the first */
#define GEN_CLIENTS_PER_NET 62500u /* 250 x 250 hosts per 10.N.0.0/16 */
#define GEN_NSERVERS 16u           /* 10.2.0.1 .. 10.2.0.16 */
#define GEN_BIG_BURST 10000u       /* --event big: most segments in one burst (HTTP length fits) */

_Static_assert(sizeof(struct gen_flow) == 64, "a flow slot is one cache line");

static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	return x ^ (x >> 16);
}

/*
 * Client idx lives in 10.N.x.y with N = 1 for the first 62500 (so 10.1.x.y for every run below
 * 113 M flows), then 3, 4, ... 255 (10.2 is the servers'); x = idx / 250 % 250, y = idx % 250 + 1.
 * Server idx is 10.2.0.(idx + 1).  IPv6 hosts are fd00:N::x:y; one locally administered MAC
 * per host, 02:00:0a:N:x:y.
 */
void gen_host_addr(uint32_t idx, bool server, bool v6, uint8_t *ip, uint8_t *mac)
{
	uint32_t net = idx / GEN_CLIENTS_PER_NET;
	uint8_t n = server ? 2 : (uint8_t)(net ? net + 2 : 1);
	uint8_t x = server ? 0 : (uint8_t)(idx / 250 % 250);
	uint8_t y = (uint8_t)(server ? idx + 1 : idx % 250 + 1);

	mac[0] = 0x02;
	mac[1] = 0x00;
	mac[2] = 10;
	mac[3] = n;
	mac[4] = x;
	mac[5] = y;
	memset(ip, 0, 16);
	if (v6) {
		ip[0] = 0xfd;
		ip[3] = n;
		ip[14] = x;
		ip[15] = y;
	} else {
		ip[0] = 10;
		ip[1] = n;
		ip[2] = x;
		ip[3] = y;
	}
}

/*
 * Ephemeral ports that Wireshark 4.0 binds to a dissector (TCP or UDP).  Like
 * ip_local_reserved_ports we never hand them out: a plain datagram to an undissected server port
 * would be decoded by the client port's dissector (Elasticsearch on 54328, ...) and flagged
 * malformed.
 */
static const uint16_t reserved_ports[] = {
    34962, 34980, 37008, 41170, 44321, 44322, 44818, 45564, 47000, 47808, 48049, 48898,
    49999, 54328, 56000, 56001, 56500, 56501, 57000, 57001, 57032, 57033, 57500, 57501,
    57532, 57533, 59000, 59001, 59032, 59033, 59500, 59501, 59532, 59533, 60001,
};

static bool port_reserved(uint32_t port)
{
	for (size_t i = 0; i < sizeof(reserved_ports) / sizeof(reserved_ports[0]); i++) {
		if (reserved_ports[i] == port)
			return true;
	}
	return false;
}

/*
 * Every flow takes the next client port slot k mod range; each time the range wraps (w = k /
 * range) the client host shifts by one within an epoch of GEN_NCLIENTS hosts, and each epoch has
 * hosts of its own.  So (client, port) never repeats: 3968 epochs (client index below 15.87 M)
 * give 4.4e11 flows, more than GEN_MAX_PACKETS can start.
 */
static void flow_endpoints(struct gen *g, struct gen_flow *f)
{
	uint64_t k, w;
	uint32_t slot, a, b;

	do
		k = g->port_next++;
	while (port_reserved(GEN_EPH_LO + (uint32_t)(k % GEN_EPH_N)));
	slot = (uint32_t)(k % GEN_EPH_N);
	w = k / GEN_EPH_N;
	f->client = (uint32_t)((w / GEN_NCLIENTS) * GEN_NCLIENTS +
	                       (mix32(slot ^ g->host_key) + w) % GEN_NCLIENTS);
	a = rng_below(&g->rng, GEN_NSERVERS);
	b = rng_below(&g->rng, GEN_NSERVERS);
	f->server = (uint8_t)min_u32(a, b); /* low servers are busier */
	f->port[C2S] = (uint16_t)(GEN_EPH_LO + slot);
	for (int d = 0; d < 2; d++) {
		uint64_t r = rng_next(&g->rng);

		f->ipid[d] = (uint16_t)r;
		f->seq[d] = (uint32_t)(r >> 16);
	}
}

/*
 * Server ports and what they carry, with a weight in percent per protocol: [0] when payloads
 * follow the protocol (structured), [1] otherwise.  Unstructured bytes avoid HTTP, DNS, NTP and
 * SSH, whose dissectors would call them malformed (SSH reads a binary packet's length and
 * padding from whatever follows the missing version banner), and use ports nothing dissects
 * (TCP 8000; UDP 9000, 27015, 40000; not 4789: VXLAN would decode the bytes as an inner frame)
 * or whose dissectors take any bytes (TLS 443, SMTP 25).
 */
struct gen_service {
	uint8_t proto;
	uint8_t app;
	uint16_t port;
	uint8_t weight[2];
};

static const struct gen_service services[] = {
    {PROTO_TCP, APP_TLS, 443, {40, 40}},   {PROTO_TCP, APP_HTTP, 80, {22, 0}},
    {PROTO_TCP, APP_HTTP, 8080, {8, 0}},   {PROTO_TCP, APP_DATA, 8000, {0, 47}},
    {PROTO_TCP, APP_SSH, 22, {12, 0}},     {PROTO_TCP, APP_SMTP, 25, {10, 13}},
    {PROTO_TCP, APP_DNS, 53, {8, 0}},      {PROTO_UDP, APP_DNS, 53, {60, 0}},
    {PROTO_UDP, APP_NTP, 123, {15, 0}},    {PROTO_UDP, APP_DNS, 5353, {10, 0}},
    {PROTO_UDP, APP_DATA, 9000, {15, 40}}, {PROTO_UDP, APP_DATA, 27015, {0, 30}},
    {PROTO_UDP, APP_DATA, 40000, {0, 30}},
};

static const struct gen_service *pick_service(struct gen *g, uint8_t proto)
{
	uint32_t r = rng_below(&g->rng, 100);
	int mode = g->structured ? 0 : 1;
	size_t i = 0, last = 0;

	for (; i < sizeof(services) / sizeof(services[0]); i++) {
		if (services[i].proto != proto || !services[i].weight[mode])
			continue;
		if (r < services[i].weight[mode])
			return &services[i];
		r -= services[i].weight[mode];
		last = i;
	}
	return &services[last]; /* not reached: the weights of each column add up to 100 */
}

static void flow_service(struct gen_flow *f, const struct gen_service *s)
{
	f->proto = s->proto;
	f->app = s->app;
	f->port[S2C] = s->port;
}

/* ---- the --event big budget ----------------------------------------------------------------- */

static bool flow_capped(const struct gen *g, const struct gen_flow *f)
{
	return g->big_cap != UINT64_MAX && f->event != GEN_EV_BIG;
}

/* The largest frame f sends with an l4-byte L4 header and pay payload bytes (padded). */
static uint64_t frame_max(const struct gen *g, const struct gen_flow *f, uint32_t l4, uint32_t pay)
{
	uint64_t n = gen_l2_len(f) + gen_l3_len(f) + l4 + pay;

	return g->o.sizes != GEN_SIZE_RANGE && n < GEN_MIN_FRAME ? GEN_MIN_FRAME : n;
}

/* Caps n exchanges of at most per frame bytes each to what the budget of f allows; at least one
 * (the smallest --event big BYTES makes room for it, see gen.c). */
static uint16_t cap_exchanges(const struct gen *g, const struct gen_flow *f, uint32_t n,
                              uint64_t per)
{
	uint64_t fit;

	if (!flow_capped(g, f))
		return (uint16_t)n;
	fit = g->big_cap / per;
	return (uint16_t)(fit < 1 ? 1 : fit < n ? fit : n);
}

/*
 * Before each round of an ordinary flow under --event big: shrinks the bursts to what the
 * budget leaves after the close (three segments); false when not even one data segment each
 * way fits, and the flow closes instead.  With data frames of at most d bytes and bare segments
 * of a, a round of m data segments costs at most m * d, plus (m / 2 + 2) * a for the delayed
 * ACKs (one per two segments received) and the round's final ACK.
 */
static bool tcp_round_fits(const struct gen *g, struct gen_flow *f)
{
	uint64_t a = frame_max(g, f, 20, 0), d = frame_max(g, f, 20, gen_data_max(g, f, 20));
	uint64_t spent = f->bytes + 3 * a + 2 * a, m;

	if (!flow_capped(g, f))
		return true;
	if (spent >= g->big_cap)
		return false;
	m = (g->big_cap - spent) / (d + (a + 1) / 2);
	if (m < 2)
		return false;
	if (f->bulk == C2S)
		f->segs = (uint32_t)(m - f->s_segs < f->segs ? m - f->s_segs : f->segs);
	else
		f->s_segs = (uint32_t)(m - f->segs < f->s_segs ? m - f->segs : f->s_segs);
	return true;
}

/* --event big: a bulk burst large enough to pass BYTES (or the next GEN_BIG_BURST of it). */
static void big_round(const struct gen *g, struct gen_flow *f)
{
	uint64_t h = gen_l3_len(f) + 20, p = gen_data_max(g, f, 20);
	uint64_t left = f->bytes < g->o.big_bytes ? g->o.big_bytes - f->bytes : 0;
	uint64_t n = left / (h + p) + 1;
	uint32_t segs = (uint32_t)(n < GEN_BIG_BURST ? n : GEN_BIG_BURST);

	if (f->bulk == C2S)
		f->segs = segs;
	else
		f->s_segs = segs;
}

/* ---- TCP ------------------------------------------------------------------------------------ */

/* Segments in a bulk burst: mostly a few, sometimes dozens, rarely a thousand (long tail). */
static uint32_t bulk_count(struct gen *g)
{
	uint32_t r = rng_below(&g->rng, 100);

	if (r < 70)
		return rng_range(&g->rng, 1, 4);
	if (r < 95)
		return rng_range(&g->rng, 5, 60);
	return rng_range(&g->rng, 61, 1000);
}

/* Length of a request-like segment: small, but within --size, and not empty if it can help it
 * (an empty "data" segment would look like a duplicate ACK). */
static uint32_t small_len(struct gen *g, const struct gen_flow *f)
{
	uint32_t lo = max_u32(g->o.size_min, min_u32(g->o.size_max, 1));
	uint32_t hi = max_u32(lo, min_u32(g->o.size_max, 600));

	if (f->app == APP_HTTP && g->structured)
		lo = min_u32(max_u32(lo, GEN_HTTP_HEAD), hi); /* room for a request head */
	if (f->app == APP_SSH)
		hi = max_u32(lo, min_u32(hi, 200)); /* keystrokes and echoes */
	return rng_range(&g->rng, lo, hi);
}

/* The flow starts to close; a pending TTL change takes effect now at the latest. */
static void tcp_close(struct gen_flow *f)
{
	if (f->event == GEN_EV_TTL)
		f->ttl_moved = true;
	f->phase = f->event == GEN_EV_RST ? P_RST : P_FIN1;
}

/* Sets up the bursts of the next request/response round (or closes, out of budget). */
static void tcp_round(struct gen *g, struct gen_flow *f)
{
	bool upload = f->app == APP_SMTP; /* mail goes up, everything else comes down */

	f->phase = P_CBURST;
	f->bulk = upload ? C2S : S2C;
	f->segs = upload ? bulk_count(g) : 1;
	f->s_segs = upload ? 1 : bulk_count(g);
	if (f->app == APP_DNS || (f->app == APP_SSH && f->rounds)) {
		f->bulk = 2; /* one query, one answer; or keystrokes and their echo */
		f->segs = 1;
		f->s_segs = f->app == APP_DNS ? 1 : rng_range(&g->rng, 1, 2);
	}
	if (f->event == GEN_EV_BIG)
		big_round(g, f);
	if (!tcp_round_fits(g, f)) {
		tcp_close(f);
		return;
	}
	if (g->o.sizes == GEN_SIZE_RANGE)
		f->last_len = (uint16_t)rng_range(
		    &g->rng, max_u32(g->o.size_min, min_u32(g->o.size_max, 1)), g->o.size_max);
	if (f->app == APP_HTTP && g->structured && f->s_segs == 1)
		f->last_len = (uint16_t)max_u32(f->last_len, GEN_HTTP_HEAD); /* the head must fit */
	f->txn_id = (uint16_t)rng_next(&g->rng); /* DNS over TCP: the query of this round */
	f->txn_seq = (uint16_t)rng_next(&g->rng);
}

static void tcp_round_over(struct gen *g, struct gen_flow *f)
{
	if (f->event == GEN_EV_TTL && f->rounds <= f->ttl_at)
		f->ttl_moved = true;
	if (f->event == GEN_EV_BIG && f->bytes <= g->o.big_bytes) {
		tcp_round(g, f); /* not big enough yet: one more bulk round */
	} else if (f->rounds) {
		f->rounds--;
		tcp_round(g, f);
	} else {
		tcp_close(f);
	}
}

/* Writes the --events-out line of f: EVENT tcp CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT. */
static void event_write(struct gen *g, const struct gen_flow *f)
{
	static const char *const name[GEN_EV_KINDS] = {"none", "ttl-change", "rst", "big"};
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	uint8_t ip[2][16], mac[6];

	if (!g->ev_fp)
		return;
	gen_host_addr(f->client, false, f->v6, ip[C2S], mac);
	gen_host_addr(f->server, true, f->v6, ip[S2C], mac);
	inet_ntop(f->v6 ? AF_INET6 : AF_INET, ip[C2S], a, sizeof(a));
	inet_ntop(f->v6 ? AF_INET6 : AF_INET, ip[S2C], b, sizeof(b));
	fprintf(g->ev_fp, "%s tcp %s %u %s %u\n", name[f->event], a, f->port[C2S], b, f->port[S2C]);
}

/* Gives the new TCP flow f one of the events left, the kind drawn in proportion to them. */
static void event_take(struct gen *g, struct gen_flow *f)
{
	uint32_t r = rng_below(&g->rng, g->ev_left_all);
	int e = GEN_EV_TTL;

	/* r < ev_left_all, their sum: the bound on e says so (to the analyzer), never stops it */
	while (e < GEN_EV_KINDS - 1 && r >= g->ev_left[e])
		r -= g->ev_left[e++];
	g->ev_left[e]--;
	g->ev_left_all--;
	g->ev_flows++;
	f->event = (uint8_t)e;
	if (e == GEN_EV_TTL) {
		f->rounds = (uint16_t)max_u32(f->rounds, 1); /* a round before, one after */
		f->ttl_at = (uint8_t)rng_below(&g->rng, f->rounds + 1u);
		f->ttl_side = (uint8_t)rng_below(&g->rng, 2);
		f->ttl_new = (uint8_t)((f->v6 || f->ttl_side == C2S ? 64 : 63) -
		                       rng_range(&g->rng, 1, 6)); /* a longer path */
	} else if (e == GEN_EV_BIG) {
		while (f->app == APP_DNS || f->app == APP_SSH) /* no bulk transfers there */
			flow_service(f, pick_service(g, PROTO_TCP));
	}
	event_write(g, f);
}

static void tcp_start(struct gen *g, struct gen_flow *f, bool force_event)
{
	flow_service(f, pick_service(g, PROTO_TCP));
	f->phase = P_SYN;
	f->closer = rng_pct(&g->rng, 70) ? C2S : S2C;
	switch (f->app) {
	case APP_SSH:
		f->rounds = (uint16_t)rng_range(&g->rng, 3, 60);
		break;
	case APP_DNS:
	case APP_SMTP:
		f->rounds = (uint16_t)rng_range(&g->rng, 0, 2);
		break;
	default:
		f->rounds = (uint16_t)(rng_pct(&g->rng, 50) ? 0 : rng_range(&g->rng, 1, 6));
		break;
	}
	if (g->ev_left_all && (force_event || rng_pct(&g->rng, 50)))
		event_take(g, f);
}

/* One data segment (or pure ACK when the receiver owes one) in a burst from side d. */
static void tcp_burst_step(struct gen *g, struct gen_flow *f, int d)
{
	uint8_t *pl = gen_frame_l4(g, f) + 20;
	/* Heads (HTTP) go into requests and the first segment of a response. */
	bool first = d == C2S ? f->bulk != C2S : f->segs == f->s_segs;
	size_t len;

	/* Delayed ACK: a receiver acknowledges every second segment. */
	if (f->unacked[!d] >= 2) {
		gen_emit_tcp(g, f, !d, TH_ACK, 0);
		return;
	}
	if (g->o.sizes != GEN_SIZE_RANGE)
		len = gen_data_len(g, f, 20);
	else if (d == f->bulk)
		len = f->segs > 1 ? g->o.size_max : f->last_len;
	else
		len = small_len(g, f);
	len = gen_tcp_payload(g, f, d, pl, len, first);
	if (len)
		f->spoke |= (uint8_t)(1u << d);
	gen_emit_tcp(g, f, d, len ? TH_ACK | TH_PSH : TH_ACK, len);
	if (--f->segs)
		return;
	if (d == C2S) {
		f->phase = P_SBURST;
		f->segs = f->s_segs;
	} else {
		f->phase = f->unacked[C2S] ? P_ROUNDACK : P_DONE; /* P_DONE: round over */
	}
}

/* Emits the next packet of a TCP flow. */
static void tcp_step(struct gen *g, struct gen_flow *f)
{
	int c = f->closer;

	switch (f->phase) {
	case P_SYN:
		gen_emit_tcp(g, f, C2S, TH_SYN, 0);
		f->phase = P_SYNACK;
		return;
	case P_SYNACK:
		gen_emit_tcp(g, f, S2C, TH_SYN | TH_ACK, 0);
		f->phase = P_ACK;
		return;
	case P_ACK:
		gen_emit_tcp(g, f, C2S, TH_ACK, 0);
		tcp_round(g, f);
		return;
	case P_CBURST:
	case P_SBURST:
		tcp_burst_step(g, f, f->phase == P_CBURST ? C2S : S2C);
		if (f->phase == P_DONE)
			tcp_round_over(g, f);
		return;
	case P_ROUNDACK:
		gen_emit_tcp(g, f, C2S, TH_ACK, 0);
		tcp_round_over(g, f);
		return;
	case P_FIN1:
		gen_emit_tcp(g, f, c, TH_FIN | TH_ACK, 0);
		f->phase = P_FIN2;
		return;
	case P_FIN2:
		gen_emit_tcp(g, f, !c, TH_FIN | TH_ACK, 0);
		f->phase = P_LASTACK;
		return;
	case P_LASTACK:
		gen_emit_tcp(g, f, c, TH_ACK, 0);
		break;
	default: /* P_RST: --event rst only */
		gen_emit_tcp(g, f, c, TH_RST | TH_ACK, 0);
		break;
	}
	f->active = false;
}

/* ---- UDP and ICMP --------------------------------------------------------------------------- */

static void udp_start(struct gen *g, struct gen_flow *f)
{
	flow_service(f, pick_service(g, PROTO_UDP));
	f->phase = P_REQ;
	if (f->app == APP_DATA) {
		f->rounds = (uint16_t)rng_range(&g->rng, 2, 40); /* packets, either direction */
		f->rounds =
		    cap_exchanges(g, f, f->rounds, frame_max(g, f, 8, gen_data_max(g, f, 8)));
		return;
	}
	f->rounds = f->app == APP_NTP ? 1 : (rng_pct(&g->rng, 80) ? 1 : rng_range(&g->rng, 2, 3));
	f->rounds = cap_exchanges(g, f, f->rounds, 2 * frame_max(g, f, 8, 67)); /* DNS, NTP */
	f->txn_id = (uint16_t)rng_next(&g->rng);
	f->txn_seq = (uint16_t)rng_next(&g->rng);
}

static void icmp_start(struct gen *g, struct gen_flow *f)
{
	uint32_t max;

	f->proto = PROTO_ICMP;
	f->app = APP_PING;
	f->phase = P_REQ;
	f->rounds = (uint16_t)rng_range(&g->rng, 1, 10);
	f->txn_id = f->port[C2S]; /* unique per flow, like the port it stands in for */
	f->txn_seq = 1;
	if (g->o.sizes != GEN_SIZE_RANGE)
		f->ping_len = 0; /* drawn per exchange from the preset */
	else if (g->o.size_min <= 56 && 56 <= g->o.size_max)
		f->ping_len = 56; /* ping(8)'s default */
	else
		f->ping_len = (uint16_t)rng_range(&g->rng, g->o.size_min, g->o.size_max);
	max = g->o.sizes == GEN_SIZE_RANGE ? f->ping_len : gen_data_max(g, f, 8);
	f->rounds = cap_exchanges(g, f, f->rounds, 2 * frame_max(g, f, 8, max));
}

void gen_flow_start(struct gen *g, struct gen_flow *f, bool force_event)
{
	struct gen_rng *r = &g->rng;
	uint32_t kind;

	memset(f, 0, sizeof(*f));
	f->active = true;
	f->v6 = rng_pct(r, g->o.ipv6_pct);
	f->vlan = (uint8_t)(rng_pct(r, g->o.vlan_pct) ? 1 + rng_below(r, 3) : 0);
	flow_endpoints(g, f);
	g->flows_started++;
	kind = force_event ? 100 : rng_below(r, 100);
	if (kind < g->o.udp_pct)
		udp_start(g, f);
	else if (kind < g->o.udp_pct + g->o.icmp_pct)
		icmp_start(g, f);
	else
		tcp_start(g, f, force_event);
}

/* Emits the next packet of a UDP flow: request/response pairs, or plain datagrams. */
static void udp_step(struct gen *g, struct gen_flow *f)
{
	uint8_t *pl = gen_frame_l4(g, f) + 8;
	int d = f->phase == P_REQ ? C2S : S2C;
	size_t len;

	if (f->app == APP_DATA) {
		d = rng_pct(&g->rng, 60) ? C2S : S2C;
		len = gen_data_len(g, f, 8);
		gen_fill_plain(g, pl, len);
		/* Like most datagram protocols, a magic ("FS") and a sequence number first; they
		 * also keep heuristic dissectors (RTCP, Thrift) from claiming random bytes. */
		if (len >= 4 && g->o.payload != GEN_PAY_ZERO) {
			pl[0] = 0x46;
			pl[1] = 0x53;
			pl[2] = (uint8_t)(f->txn_seq >> 8);
			pl[3] = (uint8_t)f->txn_seq++;
		}
		gen_emit_udp(g, f, d, len);
		f->active = --f->rounds > 0;
		return;
	}
	if (f->app == APP_NTP)
		len = gen_ntp_message(g, pl, d == S2C);
	else
		len = gen_dns_message(f, pl, d == S2C);
	gen_emit_udp(g, f, d, len);
	if (d == C2S) {
		f->phase = P_RESP;
		return;
	}
	f->phase = P_REQ;
	f->txn_id = (uint16_t)rng_next(&g->rng); /* the next query of this client */
	f->txn_seq = (uint16_t)rng_next(&g->rng);
	f->active = --f->rounds > 0;
}

/* Emits the next packet of an echo flow; both directions carry the same payload. */
static void icmp_step(struct gen *g, struct gen_flow *f)
{
	static const char win_ping[] = "abcdefghijklmnopqrstuvwabcdefghi"; /* Windows' pattern */
	uint8_t *pl = gen_frame_l4(g, f) + 8;
	int d = f->phase == P_REQ ? C2S : S2C;

	if (d == C2S && g->o.sizes != GEN_SIZE_RANGE)
		f->ping_len = (uint16_t)gen_data_len(g, f, 8);
	if (g->o.payload != GEN_PAY_TEXT) {
		gen_fill_plain(g, pl, f->ping_len);
	} else {
		for (uint32_t i = 0; i < f->ping_len; i++)
			pl[i] = (uint8_t)win_ping[i % (sizeof(win_ping) - 1)];
	}
	gen_emit_icmp(g, f, d, f->ping_len);
	if (d == C2S) {
		f->phase = P_RESP;
		return;
	}
	f->phase = P_REQ;
	f->txn_seq++;
	f->active = --f->rounds > 0;
}

void gen_flow_step(struct gen *g, struct gen_flow *f)
{
	if (f->proto == PROTO_TCP)
		tcp_step(g, f);
	else if (f->proto == PROTO_UDP)
		udp_step(g, f);
	else
		icmp_step(g, f);
}
