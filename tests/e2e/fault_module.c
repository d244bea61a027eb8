/*
 * A C module that misbehaves on purpose, for tests/e2e/module_faults.sh:
 *
 *   fault_module.so:bad_filter  triggers every TCP flow and asks for its
 *                               packets with a filter that does not compile
 *                               ("tcp and (((")
 *   fault_module.so:error       handle_packet returns -1 (an error) for
 *                               every packet
 *   fault_module.so:hang        handle_packet never returns from the first
 *                               packet (after "fault_module: hanging" on
 *                               stderr): a stuck analyzer, for the watchdog
 *                               test (tests/e2e/sd_notify.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flowtrack/flowtrack.h"

enum mode { BAD_FILTER, ERROR, HANG };

static void *create(const char *args, char *err, size_t errlen)
{
	enum mode *m = malloc(sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "fault_module: out of memory");
		return NULL;
	}
	if (strcmp(args, "bad_filter") == 0) {
		*m = BAD_FILTER;
	} else if (strcmp(args, "error") == 0) {
		*m = ERROR;
	} else if (strcmp(args, "hang") == 0) {
		*m = HANG;
	} else {
		snprintf(err, errlen, "fault_module: give bad_filter, error or hang, not '%s'",
		         args);
		free(m);
		return NULL;
	}
	return m;
}

static int handle_packet(void *inst, struct ft_flow *flow, const struct ft_packet_ctx *p,
                         int is_first)
{
	(void)flow, (void)is_first;
	if (*(const enum mode *)inst == ERROR)
		return -1;
	if (*(const enum mode *)inst == HANG) {
		fprintf(stderr, "fault_module: hanging\n");
		for (;;)
			pause(); /* a signal handled on this thread returns here: hang on */
	}
	return p->pkt->proto == 6;
}

static int build_filter(void *inst, const struct ft_flow *flow, char *buf, size_t len)
{
	(void)inst, (void)flow;
	snprintf(buf, len, "tcp and (((");
	return 1;
}

static const struct ft_module module = {
    .abi = FT_MODULE_ABI,
    .name = "fault_module",
    .create = create,
    .destroy = free,
    .handle_packet = handle_packet,
    .build_filter = build_filter,
};

const struct ft_module *flowscope_module(void)
{
	return &module;
}
