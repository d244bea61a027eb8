/*
 * Flow keys: the canonical bidirectional IP 5-tuple with the packet's outer
 * and inner VLAN id, its hash, its printed form and its tcpdump filter.
 *
 * Canonical order makes both directions of a flow one key: the endpoint
 * (address, then port) that compares lower is `a`.  Because the key is
 * canonical, any hash of its bytes is symmetric.  VLAN ids are part of the
 * key unless the caller asks for a VLAN-blind one (FT_KEY_NO_VLAN): tenants
 * that reuse addresses behind different tags are different flows.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "flowtrack/flowtrack.h"

_Static_assert(sizeof(struct ft_flow_key) == 42, "ft_flow_key must have no padding holes");

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int ft_addr_is_v4(const uint8_t addr[16])
{
	return memcmp(addr, v4_prefix, sizeof(v4_prefix)) == 0;
}

/* <0, 0, >0 as endpoint (a1, p1) sorts before, equal to, after (a2, p2). */
static int endpoint_cmp(const uint8_t *a1, uint16_t p1, const uint8_t *a2, uint16_t p2)
{
	int c = memcmp(a1, a2, 16);
	if (c != 0)
		return c;
	return (p1 > p2) - (p1 < p2);
}

int ft_flow_key_from_packet(const struct ft_packet *pkt, unsigned flags, struct ft_flow_key *key,
                            int *dir)
{
	if (!(pkt->flags & FT_PKT_IP))
		return -ENOENT;

	uint16_t sp = 0, dp = 0;
	if (pkt->flags & FT_PKT_L4) {
		sp = pkt->sport;
		dp = pkt->dport;
	}
	memset(key, 0, sizeof(*key));
	int swap = endpoint_cmp(pkt->src, sp, pkt->dst, dp) > 0;
	memcpy(key->a, swap ? pkt->dst : pkt->src, 16);
	memcpy(key->b, swap ? pkt->src : pkt->dst, 16);
	key->port_a = swap ? dp : sp;
	key->port_b = swap ? sp : dp;
	key->proto = pkt->proto;
	if (!(flags & FT_KEY_NO_VLAN) && pkt->n_vlan > 0)
		key->vlan = pkt->vlan[0];
	if (!(flags & (FT_KEY_NO_VLAN | FT_KEY_OUTER_VLAN)) && pkt->n_vlan > 1)
		key->vlan_inner = pkt->vlan[1];
	if (dir)
		*dir = swap;
	return 0;
}

int ft_flow_key_make(const struct ft_packet *pkt, enum ft_key_kind kind, unsigned flags,
                     struct ft_flow_key *key, int *dir)
{
	int r = ft_flow_key_from_packet(pkt, flags, key, dir);
	if (r)
		return r;
	if (kind == FT_KEY_UNIDIRECTIONAL) {
		memcpy(key->a, pkt->src, 16);
		memcpy(key->b, pkt->dst, 16);
		key->port_a = (pkt->flags & FT_PKT_L4) ? pkt->sport : 0;
		key->port_b = (pkt->flags & FT_PKT_L4) ? pkt->dport : 0;
		if (dir)
			*dir = 0;
	} else if (kind == FT_KEY_IP_PAIR) {
		key->port_a = key->port_b = 0;
		key->proto =
		    0; /* a <= b by address already: the 5-tuple order puts addresses first */
	}
	return 0;
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* 64x64 -> 128 multiply folded to 64 bits: the wyhash/rapidhash mixer. */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t ft_flow_key_hash(const struct ft_flow_key *key)
{
	const uint8_t *p = (const uint8_t *)key;
	const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
	const uint64_t k2 = 0x8ebc6af09c88c6e3ull, k3 = 0x589965cc75374cc3ull;

	uint64_t h = mix(load64(p) ^ k0, load64(p + 8) ^ k1);
	h = mix(h ^ load64(p + 16) ^ k2, load64(p + 24) ^ k3);
	uint64_t tail = (uint64_t)p[40] | (uint64_t)p[41] << 8;
	h = mix(h ^ load64(p + 32) ^ k0, tail ^ (42ull << 32) ^ k1);
	return h;
}

char *ft_addr_format(const uint8_t addr[16], char *buf, size_t buflen)
{
	if (buflen == 0)
		return buf;
	const char *r = ft_addr_is_v4(addr) ? inet_ntop(AF_INET, addr + 12, buf, (socklen_t)buflen)
	                                    : inet_ntop(AF_INET6, addr, buf, (socklen_t)buflen);
	if (!r)
		buf[0] = '\0';
	return buf;
}

const char *ft_proto_name(uint8_t proto, char *tmp, size_t len)
{
	switch (proto) {
	case 1:
		return "icmp";
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 58:
		return "icmp6";
	case 132:
		return "sctp";
	default:
		snprintf(tmp, len, "proto%u", proto);
		return tmp;
	}
}

char *ft_tcp_flags_format(uint8_t flags, char *buf)
{
	static const char names[] = "FSRPAUEC";
	int n = 0;
	for (int i = 0; i < 8; i++)
		if (flags & (1u << i))
			buf[n++] = names[i];
	buf[n] = '\0';
	return buf;
}

char *ft_flow_key_format(const struct ft_flow_key *key, char *buf, size_t buflen)
{
	char a[FT_ADDRSTRLEN], b[FT_ADDRSTRLEN], tmp[16];
	int v4 = ft_addr_is_v4(key->a);

	ft_addr_format(key->a, a, sizeof(a));
	ft_addr_format(key->b, b, sizeof(b));
	snprintf(buf, buflen, v4 ? "%s %s:%u <-> %s:%u" : "%s [%s]:%u <-> [%s]:%u",
	         ft_proto_name(key->proto, tmp, sizeof(tmp)), a, key->port_a, b, key->port_b);
	size_t n = strlen(buf);
	if (key->vlan_inner && n < buflen)
		snprintf(buf + n, buflen - n, " vlan %u/%u", key->vlan, key->vlan_inner);
	else if (key->vlan && n < buflen)
		snprintf(buf + n, buflen - n, " vlan %u", key->vlan);
	return buf;
}

char *ft_flow_key_filter(const struct ft_flow_key *key, char *buf, size_t buflen)
{
	char a[FT_ADDRSTRLEN], b[FT_ADDRSTRLEN], vl[32] = "", tmp[16];
	int v4 = ft_addr_is_v4(key->a), n;
	ft_addr_format(key->a, a, sizeof(a));
	ft_addr_format(key->b, b, sizeof(b));
	/* each `vlan` moves libpcap's offsets past one tag: outer first, then inner */
	if (key->vlan_inner)
		snprintf(vl, sizeof(vl), "vlan %u and vlan %u and ", key->vlan, key->vlan_inner);
	else if (key->vlan)
		snprintf(vl, sizeof(vl), "vlan %u and ", key->vlan);
	if (key->proto == 6 || key->proto == 17 || key->proto == 132)
		n = snprintf(buf, buflen, "%s%s and host %s and host %s and port %u and port %u",
		             vl, ft_proto_name(key->proto, tmp, sizeof(tmp)), a, b, key->port_a,
		             key->port_b);
	else if (key->proto)
		n = snprintf(buf, buflen, "%s%s proto %u and host %s and host %s", vl,
		             v4 ? "ip" : "ip6", key->proto, a, b);
	else /* an address pair */
		n = snprintf(buf, buflen, "%s%s and host %s and host %s", vl, v4 ? "ip" : "ip6", a,
		             b);
	return n >= 0 && (size_t)n < buflen ? buf : NULL;
}

/* ---- parsing a flow people typed ---------------------------------------------------------- */

static int proto_parse(const char *s, uint8_t *proto)
{
	static const struct {
		const char *name;
		uint8_t proto;
	} names[] = {{"tcp", 6}, {"udp", 17}, {"sctp", 132}, {"icmp", 1}, {"icmp6", 58}};
	uint64_t v;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*proto = names[i].proto;
			return 0;
		}
	if (strncmp(s, "proto", 5) == 0)
		s += 5;
	if (ft_parse_uint(s, 0, 255, &v) != 0)
		return -EINVAL;
	*proto = (uint8_t)v;
	return 0;
}

/* "ADDR:PORT", "[ADDR6]:PORT", or without ":PORT" when ports is 0. */
static int endpoint_parse(char *s, int ports, uint8_t addr[16], uint16_t *port)
{
	char *colon = NULL;
	uint64_t v = 0;
	if (s[0] == '[') {
		char *end = strchr(s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		*end = '\0';
		colon = end[1] ? end + 1 : NULL;
		s++;
	} else if (strchr(s, '.')) {
		colon = strchr(s, ':');
	}
	if (colon)
		*colon = '\0';
	/* a protocol without ports: none, or ":0" as ft_flow_key_format() writes it */
	if ((!colon && ports) || (colon && !ports && strcmp(colon + 1, "0") != 0) ||
	    (colon && ft_parse_uint(colon + 1, 0, 65535, &v) != 0))
		return -EINVAL;
	*port = (uint16_t)v;
	if (inet_pton(AF_INET, s, addr + 12) == 1) {
		memcpy(addr, v4_prefix, sizeof(v4_prefix));
		return 0;
	}
	return inet_pton(AF_INET6, s, addr) == 1 ? 0 : -EINVAL;
}

/* "OUTER" or "OUTER/INNER", each 1..4095. */
static int vlan_parse(const char *s, struct ft_flow_key *key)
{
	char outer[16];
	const char *slash = strchr(s, '/');
	uint64_t o, in = 0;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof(outer))
		return -EINVAL;
	memcpy(outer, s, n);
	outer[n] = '\0';
	if (ft_parse_uint(outer, 1, 4095, &o) != 0 ||
	    (slash && ft_parse_uint(slash + 1, 1, 4095, &in) != 0))
		return -EINVAL;
	key->vlan = (uint16_t)o;
	key->vlan_inner = (uint16_t)in;
	return 0;
}

void ft_flow_key_canonical(struct ft_flow_key *k)
{
	if (endpoint_cmp(k->a, k->port_a, k->b, k->port_b) <= 0)
		return;
	uint8_t t[16];
	uint16_t p = k->port_a;
	memcpy(t, k->a, 16);
	memcpy(k->a, k->b, 16);
	memcpy(k->b, t, 16);
	k->port_a = k->port_b;
	k->port_b = p;
}

static int key_fail(char *err, size_t errlen, const char *text, const char *why)
{
	snprintf(err, errlen,
	         "flow '%s': %s (expected 'PROTO A:PORT B:PORT [vlan ID[/ID]]', IPv6 as "
	         "[ADDR]:PORT)",
	         text, why);
	return -EINVAL;
}

int ft_flow_key_parse(const char *text, struct ft_flow_key *key, char *err, size_t errlen)
{
	char buf[256], *tok[8], *save = NULL;
	int n = 0;
	if (strlen(text) >= sizeof(buf))
		return key_fail(err, errlen, "...", "too long");
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *t = strtok_r(buf, " \t", &save); t && n < 8; t = strtok_r(NULL, " \t", &save))
		if (strcmp(t, "<->") != 0)
			tok[n++] = t;
	memset(key, 0, sizeof(*key));
	if (n != 3 && n != 5)
		return key_fail(err, errlen, text, "wrong number of words");
	if (proto_parse(tok[0], &key->proto) != 0)
		return key_fail(err, errlen, text, "unknown protocol");
	int ports = key->proto == 6 || key->proto == 17 || key->proto == 132;
	if (endpoint_parse(tok[1], ports, key->a, &key->port_a) != 0 ||
	    endpoint_parse(tok[2], ports, key->b, &key->port_b) != 0 ||
	    ft_addr_is_v4(key->a) != ft_addr_is_v4(key->b))
		return key_fail(err, errlen, text,
		                ports ? "bad address or port" : "bad address (no port for it)");
	if (n == 5 && (strcasecmp(tok[3], "vlan") != 0 || vlan_parse(tok[4], key) != 0))
		return key_fail(err, errlen, text, "bad VLAN (vlan 1..4095[/1..4095])");
	ft_flow_key_canonical(key);
	return 0;
}
