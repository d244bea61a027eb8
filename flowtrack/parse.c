/*
 * Packet parser: link layer -> VLAN/MPLS -> IPv4/IPv6 (+ extension headers,
 * fragments) / ARP -> TCP/UDP/SCTP/ICMP/ICMPv6.
 *
 * Every read is checked against caplen before it happens; the parser never
 * allocates and never fails on packet content: what it cannot read is
 * reported in ft_packet.flags.
 *
 * The archive index is built from this parser's output and must record a
 * superset of what libpcap's filters can see, so the parser deliberately
 * reads addresses where libpcap does (fixed offsets from the network header)
 * even when a header is inconsistent; such packets are flagged
 * FT_PKT_MALFORMED and the indexer marks their frame for scanning.
 */
#include <errno.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_RARP 0x8035
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_QINQ1 0x9100
#define ETH_P_MPLS_UC 0x8847
#define ETH_P_MPLS_MC 0x8848

#define MAX_TAGS 16    /* VLAN + MPLS labels parsed before giving up */
#define MAX_EXTHDRS 16 /* IPv6 extension headers parsed before giving up */

struct cursor {
	const uint8_t *p;
	uint32_t len;
};

static inline int has(const struct cursor *c, uint32_t off, uint32_t n)
{
	return off <= c->len && n <= c->len - off;
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void addr_v4(uint8_t out[16], const uint8_t *v4)
{
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

static void push_nxt(struct ft_packet *pkt, uint8_t v)
{
	if (pkt->n_nxt < FT_MAX_NXT)
		pkt->nxt[pkt->n_nxt++] = v;
}

/* Transport header at off: ports, TCP flags, ICMP type. */
static void parse_l4(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	const uint8_t *h = c->p + off;

	pkt->l4_off = (uint16_t)off;
	switch (pkt->proto) {
	case 6:   /* TCP */
	case 17:  /* UDP */
	case 132: /* SCTP */
		if (!has(c, off, 4)) {
			pkt->flags |= FT_PKT_TRUNCATED;
			return;
		}
		pkt->sport = rd16(h);
		pkt->dport = rd16(h + 2);
		pkt->flags |= FT_PKT_L4;
		if (pkt->proto == 6) {
			if (has(c, off, 14))
				pkt->tcp_flags = h[13];
			else
				pkt->flags |= FT_PKT_TRUNCATED;
		}
		return;
	case 1:  /* ICMP */
	case 58: /* ICMPv6 */
		if (!has(c, off, 2)) {
			pkt->flags |= FT_PKT_TRUNCATED;
			return;
		}
		pkt->icmp_type = h[0];
		pkt->icmp_code = h[1];
		return;
	default:
		return;
	}
}

static void parse_ipv4(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	const uint8_t *h = c->p + off;

	pkt->l3_off = (uint16_t)off;
	if (!has(c, off, 20)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	/* libpcap's host/net read these fixed offsets whatever the header says */
	pkt->family = 4;
	pkt->flags |= FT_PKT_IP;
	addr_v4(pkt->src, h + 12);
	addr_v4(pkt->dst, h + 16);
	pkt->ttl = h[8];
	pkt->proto = h[9];
	push_nxt(pkt, h[9]);

	uint32_t ihl = (uint32_t)(h[0] & 0x0f) * 4;
	if ((h[0] >> 4) != 4 || ihl < 20) {
		pkt->flags |= FT_PKT_MALFORMED;
		return;
	}
	uint16_t frag = rd16(h + 6);
	if (frag & 0x3fff) { /* MF set or offset non-zero */
		pkt->flags |= FT_PKT_FRAG;
		if (frag & 0x1fff) {
			pkt->flags |= FT_PKT_FRAG_LATER;
			return;
		}
	}
	if (!has(c, off, ihl)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	parse_l4(c, off + ihl, pkt);
}

/* Length of the IPv6 extension header `nh` at off, or 0 if nh ends the chain. */
static uint32_t ipv6_ext_len(const struct cursor *c, uint32_t off, uint8_t nh, int *truncated)
{
	switch (nh) {
	case 0:   /* hop-by-hop options */
	case 43:  /* routing */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		if (!has(c, off, 2)) {
			*truncated = 1;
			return 0;
		}
		return ((uint32_t)c->p[off + 1] + 1) * 8;
	case 51: /* AH: length in 4-byte units, minus 2 */
		if (!has(c, off, 2)) {
			*truncated = 1;
			return 0;
		}
		return ((uint32_t)c->p[off + 1] + 2) * 4;
	case 44: /* fragment */
		return 8;
	default:
		return 0;
	}
}

static void parse_ipv6(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	const uint8_t *h = c->p + off;

	pkt->l3_off = (uint16_t)off;
	if (!has(c, off, 40)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	pkt->family = 6;
	pkt->flags |= FT_PKT_IP;
	memcpy(pkt->src, h + 8, 16);
	memcpy(pkt->dst, h + 24, 16);
	pkt->ttl = h[7];
	if ((h[0] >> 4) != 6)
		pkt->flags |= FT_PKT_MALFORMED;

	uint8_t nh = h[6];
	uint32_t pos = off + 40;
	push_nxt(pkt, nh);
	for (int i = 0; i < MAX_EXTHDRS; i++) {
		int truncated = 0;
		uint32_t len = ipv6_ext_len(c, pos, nh, &truncated);
		if (truncated) {
			pkt->flags |= FT_PKT_TRUNCATED;
			pkt->proto = nh;
			return;
		}
		if (len == 0)
			break;
		if (!has(c, pos, len < 8 ? len : 8)) {
			pkt->flags |= FT_PKT_TRUNCATED;
			pkt->proto = nh;
			return;
		}
		if (nh == 44) {
			uint16_t fo = rd16(c->p + pos + 2);
			pkt->flags |= FT_PKT_FRAG;
			if (fo & 0xfff8) {
				pkt->flags |= FT_PKT_FRAG_LATER;
				pkt->proto = c->p[pos];
				push_nxt(pkt, c->p[pos]);
				return;
			}
		}
		nh = c->p[pos];
		push_nxt(pkt, nh);
		pos += len;
	}
	pkt->proto = nh;
	if (ipv6_ext_len(c, pos, nh, &(int){0}) != 0) {
		/* chain longer than MAX_EXTHDRS: give up on L4 */
		pkt->flags |= FT_PKT_MALFORMED;
		return;
	}
	if (!has(c, pos, 0)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	parse_l4(c, pos, pkt);
}

/*
 * ARP/RARP: libpcap reads sender/target IPv4 at fixed offsets 14 and 24.
 * family stays 0: ARP is not IP (no TTL, no IPv4 header at l3_off).
 */
static void parse_arp(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	const uint8_t *h = c->p + off;

	pkt->l3_off = (uint16_t)off;
	if (!has(c, off, 28)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	pkt->flags |= FT_PKT_ARP;
	addr_v4(pkt->src, h + 14);
	addr_v4(pkt->dst, h + 24);
	if (rd16(h + 2) != ETH_P_IPV4 || h[4] != 6 || h[5] != 4)
		pkt->flags |= FT_PKT_MALFORMED;
}

static void parse_l3(const struct cursor *c, uint32_t off, uint16_t ethertype,
                     struct ft_packet *pkt)
{
	pkt->ethertype = ethertype;
	pkt->l3_off = (uint16_t)off;
	switch (ethertype) {
	case ETH_P_IPV4:
		parse_ipv4(c, off, pkt);
		break;
	case ETH_P_IPV6:
		parse_ipv6(c, off, pkt);
		break;
	case ETH_P_ARP:
	case ETH_P_RARP:
		parse_arp(c, off, pkt);
		break;
	default:
		break;
	}
}

/* Raw IP at off: the version nibble decides. */
static void parse_raw_ip(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	if (!has(c, off, 1)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	uint8_t v = c->p[off] >> 4;
	if (v == 4)
		parse_l3(c, off, ETH_P_IPV4, pkt);
	else if (v == 6)
		parse_l3(c, off, ETH_P_IPV6, pkt);
}

/* MPLS label stack at off: skip to bottom of stack, then guess IP by version. */
static void parse_mpls(const struct cursor *c, uint32_t off, struct ft_packet *pkt)
{
	pkt->flags |= FT_PKT_MPLS;
	for (int i = 0; i < MAX_TAGS; i++) {
		if (!has(c, off, 4)) {
			pkt->flags |= FT_PKT_TRUNCATED;
			return;
		}
		uint32_t label = rd32(c->p + off);
		off += 4;
		if (label & 0x100) { /* bottom of stack */
			parse_raw_ip(c, off, pkt);
			return;
		}
	}
	pkt->flags |= FT_PKT_MALFORMED;
}

/*
 * Payload of ethertype `type` starting at off (after MACs or a cooked
 * header): VLAN tags (TCI, then the next type), MPLS, then L3.
 */
static void parse_ethertype(const struct cursor *c, uint16_t type, uint32_t off,
                            struct ft_packet *pkt)
{
	for (int i = 0; i < MAX_TAGS; i++) {
		if (type == ETH_P_8021Q || type == ETH_P_8021AD || type == ETH_P_QINQ1) {
			if (!has(c, off, 4)) {
				pkt->flags |= FT_PKT_TRUNCATED;
				return;
			}
			if (pkt->n_vlan < FT_MAX_VLAN)
				pkt->vlan[pkt->n_vlan] = rd16(c->p + off) & 0x0fff;
			pkt->n_vlan++;
			type = rd16(c->p + off + 2);
			off += 4;
			continue;
		}
		if (type == ETH_P_MPLS_UC || type == ETH_P_MPLS_MC) {
			pkt->ethertype = type;
			parse_mpls(c, off, pkt);
			return;
		}
		if (type > 1500)
			parse_l3(c, off, type, pkt);
		return; /* <= 1500: an 802.3 length field, LLC follows: not parsed */
	}
	pkt->flags |= FT_PKT_MALFORMED;
}

/* The ethertype at type_off, payload at off. */
static void parse_typed(const struct cursor *c, uint32_t type_off, uint32_t off,
                        struct ft_packet *pkt)
{
	if (!has(c, type_off, 2) || !has(c, off, 0)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	parse_ethertype(c, rd16(c->p + type_off), off, pkt);
}

/* BSD loopback: a 4-byte address family, byte order per link type. */
static void parse_null(const struct cursor *c, int network_order, struct ft_packet *pkt)
{
	if (!has(c, 0, 4)) {
		pkt->flags |= FT_PKT_TRUNCATED;
		return;
	}
	uint32_t af = network_order ? rd32(c->p)
	                            : (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 |
	                                  (uint32_t)c->p[2] << 16 | (uint32_t)c->p[3] << 24;
	if (af == 2)
		parse_l3(c, 4, ETH_P_IPV4, pkt);
	else if (af == 24 || af == 28 || af == 30 || af == 10)
		parse_l3(c, 4, ETH_P_IPV6, pkt);
}

int ft_linktype_supported(int linktype)
{
	switch (linktype) {
	case FT_DLT_NULL:
	case FT_DLT_EN10MB:
	case FT_DLT_RAW:
	case FT_DLT_RAW_DLT12:
	case FT_DLT_RAW_DLT14:
	case FT_DLT_LOOP:
	case FT_DLT_LINUX_SLL:
	case FT_DLT_LINUX_SLL2:
	case FT_DLT_IPV4:
	case FT_DLT_IPV6:
		return 1;
	default:
		return 0;
	}
}

int ft_parse(int linktype, const uint8_t *data, uint32_t caplen, struct ft_packet *out)
{
	struct cursor c = {.p = data, .len = caplen};

	memset(out, 0, sizeof(*out));
	switch (linktype) {
	case FT_DLT_EN10MB: /* dst(6) src(6) type(2) */
		parse_typed(&c, 12, 14, out);
		break;
	case FT_DLT_LINUX_SLL: /* pkttype(2) hatype(2) halen(2) addr(8) protocol(2) */
		parse_typed(&c, 14, 16, out);
		break;
	case FT_DLT_LINUX_SLL2: /* protocol(2) reserved(2) ifindex(4) hatype(2) ... = 20 */
		parse_typed(&c, 0, 20, out);
		break;
	case FT_DLT_NULL:
		parse_null(&c, 0, out);
		break;
	case FT_DLT_LOOP:
		parse_null(&c, 1, out);
		break;
	case FT_DLT_RAW:
	case FT_DLT_RAW_DLT12:
	case FT_DLT_RAW_DLT14:
		parse_raw_ip(&c, 0, out);
		break;
	case FT_DLT_IPV4:
		parse_l3(&c, 0, ETH_P_IPV4, out);
		break;
	case FT_DLT_IPV6:
		parse_l3(&c, 0, ETH_P_IPV6, out);
		break;
	default:
		return FT_E_LINKTYPE;
	}
	out->flags |= FT_PKT_PARSED;
	return 0;
}

const struct ft_packet *ft_packet_view(const struct ft_packet *parsed, int linktype,
                                       const uint8_t *data, uint32_t caplen, struct ft_packet *buf)
{
	if (parsed && (parsed->flags & FT_PKT_PARSED))
		return parsed;
	ft_parse(linktype, data, caplen, buf);
	return buf;
}

const char *ft_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case FT_E_LINKTYPE:
		return "link type not supported by the parser";
	case FT_E_FULL:
		return "flow table full";
	case FT_E_STOPPING:
		return "the recorder is stopping";
	case FT_E_TIMEDOUT:
		return "an analyzer did not answer in time";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown flowtrack error";
	}
}
