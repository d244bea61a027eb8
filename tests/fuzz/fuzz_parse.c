/*
 * libFuzzer target: the packet parser and flow keys on arbitrary bytes.
 * The first input byte picks the link type, the rest is the packet.  Built
 * with clang -fsanitize=fuzzer,address,undefined (make test-fuzz), so any
 * read past the captured length, any undefined behaviour, is a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int linktypes[] = {FT_DLT_EN10MB, FT_DLT_LINUX_SLL, FT_DLT_LINUX_SLL2,
                                FT_DLT_RAW,    FT_DLT_NULL,      FT_DLT_LOOP,
                                FT_DLT_IPV4,   FT_DLT_IPV6,      FT_DLT_RAW_DLT12};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int lt = linktypes[data[0] % (sizeof(linktypes) / sizeof(linktypes[0]))];
	/* an exact-size copy: the sanitizer sees a read one byte past the packet */
	size_t n = size - 1;
	uint8_t *pkt = malloc(n ? n : 1);
	if (!pkt)
		return 0;
	memcpy(pkt, data + 1, n);
	struct ft_packet p;
	ft_parse(lt, pkt, (uint32_t)n, &p);
	if (p.l4_off > n || p.l3_off > n)
		abort(); /* offsets must stay inside the packet */
	for (int kind = FT_KEY_BIDIRECTIONAL; kind <= FT_KEY_IP_PAIR; kind++) {
		struct ft_flow_key k;
		int dir;
		if (ft_flow_key_make(&p, (enum ft_key_kind)kind, 0, &k, &dir) == 0) {
			char buf[FT_KEYSTRLEN], filter[FT_KEYFILTERLEN];
			ft_flow_key_format(&k, buf, sizeof(buf));
			if (!ft_flow_key_filter(&k, filter, sizeof(filter)))
				abort(); /* FT_KEYFILTERLEN is always enough */
			(void)ft_flow_key_hash(&k);
		}
	}
	free(pkt);
	return 0;
}
