/*
 * An external flowscope module, built on its own (see Makefile) and loaded
 * with `flowscope record --module ./syn_to_port.so:port=8080`.
 *
 * It triggers a flow whose client sends a TCP SYN to the given port, and asks
 * the dumpers to archive the flow with a BPF expression of its own (the
 * 5-tuple and VLAN tags, from ft_flow_key_filter) instead of its key, to
 * show build_filter.  Flows expire after
 * `idle` seconds without packets (default 30).
 *
 * Only flowtrack/flowtrack.h is needed: the module sees parsed packets and
 * per-flow state through it (docs/modules.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

struct conf {
	unsigned port;
	unsigned long long idle_ns;
};

struct state {
	unsigned char syn_seen; /* the per-flow state: a flag */
};

static void *create(const char *args, char *err, size_t errlen)
{
	struct conf *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->idle_ns = 30ull * 1000000000ull;
	if (sscanf(args, "port=%u", &c->port) != 1 || c->port == 0 || c->port > 65535) {
		snprintf(err, errlen, "syn_to_port: give port=N (1..65535), not '%s'", args);
		free(c);
		return NULL;
	}
	return c;
}

static int handle_packet(void *inst, struct ft_flow *flow, const struct ft_packet_ctx *p,
                         int is_first)
{
	const struct conf *c = inst;
	struct state *st = (struct state *)flow->state;
	(void)is_first;
	if (p->pkt->proto != 6 || !(p->pkt->flags & FT_PKT_L4))
		return 0;
	int syn = (p->pkt->tcp_flags & 0x12) == 0x02; /* SYN without ACK */
	if (syn && p->pkt->dport == c->port && !st->syn_seen) {
		st->syn_seen = 1;
		return 1;
	}
	return 0;
}

static int check_expiry(void *inst, void *check, struct ft_flow *flow, uint64_t now,
                        uint64_t *last_seen)
{
	const struct conf *c = inst;
	(void)check;
	*last_seen = flow->last_ns;
	return now > flow->last_ns + c->idle_ns;
}

static int build_filter(void *inst, const struct ft_flow *flow, char *buf, size_t len)
{
	(void)inst;
	/* the flow's 5-tuple behind its VLAN tags (QinQ: outer and inner) */
	return ft_flow_key_filter(&flow->key, buf, len) != NULL;
}

static const struct ft_module module = {
    .abi = FT_MODULE_ABI,
    .name = "syn_to_port",
    .state_size = sizeof(struct state),
    .key_kind = FT_KEY_BIDIRECTIONAL,
    .create = create,
    .destroy = free,
    .handle_packet = handle_packet,
    .check_expiry = check_expiry,
    .build_filter = build_filter,
};

const struct ft_module *flowscope_module(void)
{
	return &module;
}
