/*
 * libFuzzer target: the detector-alert parsers and the --eve-filter
 * (ingest/eve.c) on arbitrary bytes.  The first byte picks the parser
 * (0: EVE, 1: Zeek notice, 2: filter text), the rest is the line.  A parser
 * returns 1, 0 or INGEST_E_MALFORMED with a reason, and nothing else; an
 * alert it accepts is whole (a family it names, strings terminated within
 * their bounds, ports only where a flow key has them, a flow to trigger);
 * a filter it accepts matches without fault.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_alert(const struct ingest_eve_alert *a)
{
	if (a->family != AF_INET && a->family != AF_INET6 && a->family != AF_UNSPEC)
		abort();
	if (a->family == AF_UNSPEC && a->community_id[0] == '\0')
		abort(); /* nothing to trigger */
	if (!memchr(a->signature, '\0', sizeof(a->signature)) ||
	    !memchr(a->category, '\0', sizeof(a->category)) ||
	    !memchr(a->community_id, '\0', sizeof(a->community_id)))
		abort();
	if ((a->src_port || a->dest_port) && a->proto != 6 && a->proto != 17 && a->proto != 132)
		abort();
	if (a->n_vlan > 255 || a->vlan[0] > 4095 || a->vlan[1] > 4095)
		abort();
	if (a->icmp_type < -1 || a->icmp_type > 255 || a->icmp_code < -1 || a->icmp_code > 255)
		abort();
}

static void parse_line(const char *s, size_t n, int zeek)
{
	struct ingest_eve_alert a;
	char err[128];
	int r = zeek ? ingest_zeek_notice_parse(s, n, &a, err, sizeof(err))
	             : ingest_eve_parse(s, n, &a, err, sizeof(err));
	if (r == 1)
		check_alert(&a);
	else if (r != 0 && (r != INGEST_E_MALFORMED || err[0] == '\0' || !memchr(err, '\0', 128)))
		abort();
}

static void parse_filter(const char *text)
{
	struct ingest_eve_filter *f = NULL;
	char err[128];
	int r = ingest_eve_filter_parse(&f, text, err, sizeof(err));
	if (r != 0 && (r != INGEST_E_MALFORMED || f != NULL || err[0] == '\0'))
		abort();
	struct ingest_eve_alert a;
	memset(&a, 0, sizeof(a));
	a.has_sid = a.has_severity = 1;
	for (uint32_t sid = 0; sid < 4; sid++) {
		a.sid = sid * 1000003u;
		a.severity = sid;
		if (ingest_eve_filter_match(f, &a) > 1u)
			abort();
	}
	ingest_eve_filter_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	/* an exact-size copy, so ASan sees any read beyond the given length */
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	if (data[0] % 3 == 2) {
		s[size - 1] = '\0';
		parse_filter(s);
	} else {
		parse_line(s, size - 1, data[0] % 3);
	}
	free(s);
	return 0;
}
