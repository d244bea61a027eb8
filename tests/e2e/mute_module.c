/*
 * A test module whose create() fails without saying why (err left as it
 * is): flowscope must still print a line that names the module.
 */
#include "flowtrack/flowtrack.h"

static void *create(const char *args, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	return NULL;
}

static int handle_packet(void *inst, struct ft_flow *flow, const struct ft_packet_ctx *p,
                         int is_first)
{
	(void)inst;
	(void)flow;
	(void)p;
	(void)is_first;
	return 0;
}

static const struct ft_module module = {
    .abi = FT_MODULE_ABI,
    .name = "mute_module",
    .key_kind = FT_KEY_BIDIRECTIONAL,
    .create = create,
    .handle_packet = handle_packet,
};

const struct ft_module *flowscope_module(void)
{
	return &module;
}
