/*
 * libFuzzer target: the query planner on arbitrary filter text.  The planner
 * must never crash, whatever the text; when libpcap accepts the text, a plan
 * must come back (only -ENOMEM may fail), and formatting it must stay within
 * its buffer.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *expr = malloc(size + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	struct query_plan *plan = NULL;
	int r = query_plan_build(expr, &plan);
	if (r != 0 && r != -ENOMEM)
		abort();
	if (plan) {
		char small[7], big[512];
		query_plan_format(plan, small, sizeof(small));
		query_plan_format(plan, big, sizeof(big));
		if (strlen(small) >= sizeof(small) || strlen(big) >= sizeof(big))
			abort();
		query_plan_free(plan);
	}
	free(expr);
	return 0;
}
