/*
 * Test helper: a Stenographer query through query_steno_translate(), printed
 * as three lines (the libpcap filter, from_ns, to_ns), so a shell test can
 * hand them to `flowscope query`.  now_ns is given, so "N ago" is fixed.
 *
 *   steno_translate NOW_NS QUERY     exit 0; 1 with the one-line error on stderr
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: steno_translate NOW_NS QUERY\n");
		return 2;
	}
	struct query_steno s;
	char err[QUERY_ERRBUF_SIZE];
	uint64_t now = strtoull(argv[1], NULL, 10);
	if (query_steno_translate(argv[2], strlen(argv[2]), now, &s, err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s\n%" PRIu64 "\n%" PRIu64 "\n", s.filter, s.from_ns, s.to_ns);
	query_steno_free(&s);
	return 0;
}
