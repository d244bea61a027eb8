/*
 * Test helper: one line per packet of a capture, "caplen wirelen fnv64(bytes)",
 * so captures whose timestamps differ (live capture) can be compared packet
 * by packet (sort the lines when queue interleaving may reorder them); with
 * -t the line starts with the timestamp in nanoseconds, which makes every
 * packet of a `flowscope gen` capture unique.
 *
 *   pktdigest [-t] FILE
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	int ts = argc == 3 && strcmp(argv[1], "-t") == 0;
	if (argc != 2 + ts) {
		fprintf(stderr, "usage: pktdigest [-t] FILE\n");
		return 2;
	}
	pcap_t *p =
	    pcap_open_offline_with_tstamp_precision(argv[1 + ts], PCAP_TSTAMP_PRECISION_NANO, err);
	if (!p) {
		fprintf(stderr, "pktdigest: %s\n", err);
		return 1;
	}
	struct pcap_pkthdr *h;
	const u_char *d;
	int r;
	while ((r = pcap_next_ex(p, &h, &d)) == 1) {
		uint64_t x = 0xcbf29ce484222325ull;
		for (uint32_t i = 0; i < h->caplen; i++)
			x = (x ^ d[i]) * 0x100000001b3ull;
		if (ts)
			printf("%lld%09ld ", (long long)h->ts.tv_sec, (long)h->ts.tv_usec);
		printf("%u %u %016" PRIx64 "\n", h->caplen, h->len, x);
	}
	pcap_close(p);
	return r == PCAP_ERROR_BREAK ? 0 : 1;
}
