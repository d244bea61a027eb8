/*
 * Test helper: rewrites an Ethernet capture with another link-layer header,
 * so the end-to-end tests can check the parser and the index on link types
 * our sample captures do not have.
 *
 *   relink raw|sll|sll2 IN.pcap OUT.pcap
 *
 * raw:  drops the Ethernet header and VLAN tags (LINKTYPE_RAW); non-IP frames
 *       are skipped.
 * sll:  Linux cooked v1 header (16 bytes) carrying the frame's ethertype.
 * sll2: Linux cooked v2 header (20 bytes) carrying the frame's ethertype.
 * VLAN tags stay in the payload for sll/sll2 (protocol 0x8100), as Linux does.
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

static int relink_one(const char *mode, const struct pcap_pkthdr *h, const u_char *p, u_char *out,
                      struct pcap_pkthdr *oh)
{
	if (h->caplen < 14)
		return 0;
	uint16_t type = (uint16_t)(p[12] << 8 | p[13]);
	size_t hl = 0, skip = 14;
	if (strcmp(mode, "raw") == 0) {
		while (type == 0x8100 && h->caplen >= skip + 4) {
			type = (uint16_t)(p[skip + 2] << 8 | p[skip + 3]);
			skip += 4;
		}
		if (type != 0x0800 && type != 0x86dd)
			return 0;
	} else if (strcmp(mode, "sll") == 0) {
		hl = 16;
		memset(out, 0, hl);
		out[1] = 4; /* sent by us */
		out[3] = 1; /* ARPHRD_ETHER */
		out[5] = 6;
		memcpy(out + 6, p + 6, 6);
		out[14] = p[12];
		out[15] = p[13];
	} else {
		hl = 20;
		memset(out, 0, hl);
		out[0] = p[12];
		out[1] = p[13];
		out[7] = 2;  /* ifindex */
		out[9] = 1;  /* ARPHRD_ETHER */
		out[10] = 4; /* outgoing */
		out[11] = 6;
		memcpy(out + 12, p + 6, 6);
	}
	memcpy(out + hl, p + skip, h->caplen - skip);
	*oh = *h;
	oh->caplen = (bpf_u_int32)(h->caplen - skip + hl);
	oh->len = (bpf_u_int32)(h->len - skip + hl);
	return 1;
}

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	if (argc != 4) {
		fprintf(stderr, "usage: relink raw|sll|sll2 IN OUT\n");
		return 2;
	}
	int dlt = strcmp(argv[1], "raw") == 0   ? DLT_RAW
	          : strcmp(argv[1], "sll") == 0 ? DLT_LINUX_SLL
	                                        : DLT_LINUX_SLL2;
	pcap_t *in =
	    pcap_open_offline_with_tstamp_precision(argv[2], PCAP_TSTAMP_PRECISION_NANO, err);
	if (!in) {
		fprintf(stderr, "relink: %s\n", err);
		return 1;
	}
	pcap_t *dead = pcap_open_dead_with_tstamp_precision(dlt, pcap_snapshot(in) + 6,
	                                                    PCAP_TSTAMP_PRECISION_NANO);
	pcap_dumper_t *d = pcap_dump_open(dead, argv[3]);
	if (!d) {
		fprintf(stderr, "relink: %s\n", pcap_geterr(dead));
		return 1;
	}
	struct pcap_pkthdr *h, oh;
	const u_char *p;
	static u_char out[262144 + 64];
	while (pcap_next_ex(in, &h, &p) == 1)
		if (relink_one(argv[1], h, p, out, &oh))
			pcap_dump((u_char *)d, &oh, out);
	pcap_dump_close(d);
	pcap_close(in);
	pcap_close(dead);
	return 0;
}
