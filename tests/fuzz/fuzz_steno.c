/*
 * libFuzzer target: the Stenographer query translation (query/steno.c) on
 * arbitrary bytes, as an HTTP body would bring them.  It must never crash;
 * an error is one line; a translation must be a filter libpcap parses and a
 * time range whose ends are in order.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS (1796212800ull * 1000000000ull) /* 2026-12-02T12:00:00Z */

static void check_filter(const char *filter)
{
	static pcap_t *dead;
	struct bpf_program prog;
	if (!dead && !(dead = pcap_open_dead(DLT_EN10MB, 65535)))
		abort();
	/* unoptimized: the optimizer refuses a filter that matches nothing ("udp and tcp"),
	   a query the engine refuses as tcpdump does, not a faulty translation */
	if (pcap_compile(dead, &prog, filter, 0, PCAP_NETMASK_UNKNOWN) != 0)
		abort(); /* a translation libpcap refuses */
	pcap_freecode(&prog);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct query_steno s;
	char err[QUERY_ERRBUF_SIZE];
	int r = query_steno_translate((const char *)data, size, NOW_NS, &s, err);
	if (r == QUERY_E_STENO || r == -ENOMEM) {
		if (s.filter || !err[0] || strchr(err, '\n') || strlen(err) >= sizeof(err))
			abort();
		return 0;
	}
	if (r != 0 || !s.filter)
		abort();
	if (s.to_ns && s.from_ns >= s.to_ns)
		abort();
	check_filter(s.filter);
	query_steno_free(&s);
	return 0;
}
