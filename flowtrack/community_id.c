/*
 * Community ID v1 (github.com/corelight/community-id-spec): the flow hash
 * that Zeek, Suricata, Arkime and Wireshark print, so one flow is one
 * string across tools.
 *
 * The hash input is seed (2 bytes), source address, destination address
 * (4 bytes for IPv4, 16 for IPv6), protocol, a zero byte, and for TCP, UDP,
 * SCTP, ICMP and ICMPv6 two "ports" (2 bytes each), all in network byte
 * order; the endpoints are ordered so the lower (address, port) comes first,
 * which makes both directions one ID.  ICMP has no ports: its type stands for
 * the source port and, for the request/reply types that have a counterpart
 * (echo, timestamp, ...), the counterpart type for the destination port, so
 * request and reply are one flow; any other type is one-way: its code is
 * the destination port and the endpoints keep the packet's order.  The
 * digest is SHA-1, printed "1:" + base64 (nettle does both).
 *
 * Our flow key stores IPv4 addresses IPv4-mapped; the mapped prefix says the
 * family, so an IPv6 packet between ::ffff:a.b.c.d addresses would be hashed
 * as IPv4 (such packets are not sent on a wire).  VLAN ids are not part of
 * the ID.
 */
#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

_Static_assert(2 + BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1 <= FT_COMMUNITY_ID_LEN,
               "FT_COMMUNITY_ID_LEN holds \"1:\", the base64 digest and its NUL");

/* One endpoint pair as it goes into the hash. */
struct cid_tuple {
	const uint8_t *src, *dst; /* 16 bytes each, IPv4-mapped for IPv4 */
	uint16_t sport, dport;
	uint8_t proto;
	uint8_t has_ports; /* TCP, UDP, SCTP, ICMP, ICMPv6 */
	uint8_t one_way;   /* ICMP without counterpart: keep the order */
};

static int has_ports(uint8_t proto)
{
	return proto == 6 || proto == 17 || proto == 132 || proto == 1 || proto == 58;
}

int ft_community_id_icmp_peer(uint8_t proto, uint8_t type)
{
	static const uint8_t v4[][2] = {{8, 0}, {13, 14}, {15, 16}, {10, 9}, {17, 18}};
	static const uint8_t v6[][2] = {{128, 129}, {130, 131}, {133, 134},
	                                {135, 136}, {139, 140}, {144, 145}};
	if (proto != 1 && proto != 58)
		return -1;
	const uint8_t(*pairs)[2] = proto == 1 ? v4 : v6;
	size_t n = proto == 1 ? sizeof(v4) / sizeof(v4[0]) : sizeof(v6) / sizeof(v6[0]);
	for (size_t i = 0; i < n; i++) {
		if (pairs[i][0] == type)
			return pairs[i][1];
		if (pairs[i][1] == type)
			return pairs[i][0];
	}
	return -1;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Swaps the endpoints unless the tuple is one-way or already lower first. */
static void cid_order(struct cid_tuple *t)
{
	int c = memcmp(t->src, t->dst, 16);
	if (t->one_way || c < 0 || (c == 0 && t->sport <= t->dport))
		return;
	const uint8_t *a = t->src;
	uint16_t p = t->sport;
	t->src = t->dst;
	t->dst = a;
	t->sport = t->dport;
	t->dport = p;
}

static void cid_hash(struct cid_tuple t, uint16_t seed, char out[FT_COMMUNITY_ID_LEN])
{
	uint8_t buf[2 + 16 + 16 + 2 + 4], digest[SHA1_DIGEST_SIZE];
	size_t alen = ft_addr_is_v4(t.src) && ft_addr_is_v4(t.dst) ? 4 : 16;
	size_t n = 0;

	cid_order(&t);
	put16(buf, seed);
	n = 2;
	memcpy(buf + n, t.src + 16 - alen, alen);
	n += alen;
	memcpy(buf + n, t.dst + 16 - alen, alen);
	n += alen;
	buf[n++] = t.proto;
	buf[n++] = 0;
	if (t.has_ports) {
		put16(buf + n, t.sport);
		put16(buf + n + 2, t.dport);
		n += 4;
	}
	struct sha1_ctx ctx;
	sha1_init(&ctx);
	sha1_update(&ctx, n, buf);
	sha1_digest(&ctx, sizeof(digest), digest);
	out[0] = '1';
	out[1] = ':';
	base64_encode_raw(out + 2, sizeof(digest), digest);
	out[2 + BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

int ft_community_id(const struct ft_flow_key *key, uint16_t seed, char out[FT_COMMUNITY_ID_LEN])
{
	if (key->proto == 1 || key->proto == 58)
		return -ENOTSUP;
	struct cid_tuple t = {.src = key->a,
	                      .dst = key->b,
	                      .sport = key->port_a,
	                      .dport = key->port_b,
	                      .proto = key->proto,
	                      .has_ports = (uint8_t)has_ports(key->proto)};
	cid_hash(t, seed, out);
	return 0;
}

int ft_community_id_packet(const struct ft_packet *pkt, uint16_t seed,
                           char out[FT_COMMUNITY_ID_LEN])
{
	if (!(pkt->flags & FT_PKT_IP) || (pkt->flags & FT_PKT_ARP))
		return -ENOENT;
	struct cid_tuple t = {.src = pkt->src,
	                      .dst = pkt->dst,
	                      .proto = pkt->proto,
	                      .has_ports = (uint8_t)has_ports(pkt->proto)};
	if (pkt->proto == 1 || pkt->proto == 58) {
		if (pkt->flags & (FT_PKT_FRAG_LATER | FT_PKT_TRUNCATED))
			return -ENOENT; /* no ICMP header: no type, no code */
		int peer = ft_community_id_icmp_peer(pkt->proto, pkt->icmp_type);
		t.sport = pkt->icmp_type;
		t.dport = peer >= 0 ? (uint16_t)peer : pkt->icmp_code;
		t.one_way = peer < 0;
	} else if (pkt->flags & FT_PKT_L4) {
		t.sport = pkt->sport;
		t.dport = pkt->dport;
	}
	cid_hash(t, seed, out);
	return 0;
}

int ft_community_id_valid(const char *s)
{
	enum { B64 = BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) };
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (!s || strncmp(s, "1:", 2) != 0 || strlen(s) != 2 + B64 ||
	    strspn(s + 2, alphabet) != B64 - 1 || s[2 + B64 - 1] != '=')
		return 0; /* nettle's decoder would skip spaces: only the alphabet, one '=' */
	struct base64_decode_ctx ctx;
	uint8_t digest[BASE64_DECODE_LENGTH(B64)];
	size_t n = sizeof(digest);
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &n, digest, B64, s + 2) || !base64_decode_final(&ctx))
		return 0;
	return n == SHA1_DIGEST_SIZE;
}
