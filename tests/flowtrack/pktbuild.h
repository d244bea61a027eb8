/*
 * Test helpers: build Ethernet / VLAN / IPv4 / IPv6 / TCP-UDP headers into a
 * buffer, for the flowtrack tests.  Header-only, static functions.
 */
#ifndef FLOWSCOPE_TESTS_PKTBUILD_H
#define FLOWSCOPE_TESTS_PKTBUILD_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t eth(uint8_t *p, uint16_t type)
{
	memset(p, 0, 12);
	p[0] = 0x02;
	p[6] = 0x04;
	p[12] = (uint8_t)(type >> 8);
	p[13] = (uint8_t)type;
	return 14;
}

static inline size_t vlan_tag(uint8_t *p, uint16_t vid, uint16_t next_type)
{
	p[0] = (uint8_t)(vid >> 8);
	p[1] = (uint8_t)vid;
	p[2] = (uint8_t)(next_type >> 8);
	p[3] = (uint8_t)next_type;
	return 4;
}

/* IPv4 header with `opt` bytes of options; returns its length. */
static inline size_t ipv4(uint8_t *p, const char *src, const char *dst, uint8_t proto,
                          uint16_t frag, size_t opt)
{
	size_t hl = 20 + opt;
	memset(p, 0, hl);
	p[0] = (uint8_t)(0x40 | (hl / 4));
	p[6] = (uint8_t)(frag >> 8);
	p[7] = (uint8_t)frag;
	p[8] = 64;
	p[9] = proto;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	for (size_t i = 20; i < hl; i++)
		p[i] = 1; /* NOP options */
	return hl;
}

static inline size_t ipv6(uint8_t *p, const char *src, const char *dst, uint8_t nh)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = nh;
	p[7] = 63;
	inet_pton(AF_INET6, src, p + 8);
	inet_pton(AF_INET6, dst, p + 24);
	return 40;
}

static inline size_t ports(uint8_t *p, uint16_t sp, uint16_t dp, uint8_t tcp_flags)
{
	memset(p, 0, 20);
	p[0] = (uint8_t)(sp >> 8);
	p[1] = (uint8_t)sp;
	p[2] = (uint8_t)(dp >> 8);
	p[3] = (uint8_t)dp;
	p[12] = 0x50;
	p[13] = tcp_flags;
	return 20;
}

static inline void v4mapped(const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	inet_pton(AF_INET, s, out + 12);
}

static inline void v6(const char *s, uint8_t out[16])
{
	inet_pton(AF_INET6, s, out);
}

#endif
