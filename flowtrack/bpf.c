/*
 * BPF filters compiled exactly as `tcpdump -r FILE` compiles them.
 *
 * libpcap compiles some primitives differently for capture files than for a
 * pcap_open_dead() handle (for DLT_NULL it accepts every BSD AF_INET6 value,
 * not only this host's), so the program is compiled against a savefile: a
 * header-only nanosecond pcap of the right link type and snaplen, in
 * memory.  Netmask 0, as tcpdump uses for files.  Used by the query engine
 * and by the trigger module, so a trigger and a query agree on what a
 * filter matches.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

int ft_bpf_compile(int linktype, uint32_t snaplen, const char *expr, struct bpf_program *prog,
                   char *err, size_t errlen)
{
	uint8_t hdr[24];
	uint32_t v[6] = {0xa1b23c4du, 0x00040002u, 0, 0, snaplen, (uint32_t)linktype};
	memcpy(hdr, v, sizeof(hdr)); /* host byte order: the magic says which */
	FILE *f = fmemopen(hdr, sizeof(hdr), "rb");
	char perr[PCAP_ERRBUF_SIZE];
	if (!f) {
		snprintf(err, errlen, "cannot compile the filter: %s", strerror(errno));
		return -ENOMEM;
	}
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!p) {
		fclose(f);
		snprintf(err, errlen, "cannot compile the filter: %s", perr);
		return -EINVAL;
	}
	int r = 0;
	if (pcap_compile(p, prog, expr ? expr : "", 1, 0) != 0) {
		const char *name = pcap_datalink_val_to_name(pcap_datalink(p));
		snprintf(err, errlen, "invalid filter '%s' (link type %s): %s", expr ? expr : "",
		         name ? name : "unknown", pcap_geterr(p));
		r = -EINVAL;
	}
	pcap_close(p); /* closes f too */
	return r;
}
