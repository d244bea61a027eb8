/*
 * libFuzzer target: the HTTP API's request parameters (query/api.c's
 * api_param_add: UTF-8, repeats, sizes; query/api_query.c's parameters of
 * /api/v1/query and /api/v1/flows into their options) on arbitrary bytes.
 * The input is "name=value&name=value..." as libmicrohttpd hands the decoded
 * query string over (values may hold any byte, NUL too); the first byte picks
 * the endpoint: bit 0 flows, bit 1 POST /api/v1/trigger (query/api_trigger.c),
 * whose body with bit 2 is the rest as it is, a JSON object for jansson.  Each request ends either in options that are consistent
 * (a time range not empty, limits as asked) or in a 4xx with a one-line
 * message whose JSON encoding holds no raw control byte; never anything else.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api_pvt.h"
#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS 1796000000000000000ull

static int parse_time(const char *text, uint64_t *ns)
{
	return cli_parse_time(text, NOW_NS, ns);
}

/* Splits "a=b&c=d" into parameters (a name stops at '=' or NUL: as MHD's, a C string). */
static void add_params(struct api_request *q, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *amp = memchr(p, '&', n);
		size_t len = amp ? (size_t)(amp - p) : n;
		const uint8_t *eq = memchr(p, '=', len);
		size_t nl = eq ? (size_t)(eq - p) : len;
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)(nl < 63 ? nl : 63), (const char *)p);
		if (eq)
			api_param_add(q, name, (const char *)eq + 1, len - nl - 1);
		else
			api_param_add(q, name, "", 0);
		p += len + (amp != NULL);
		n -= len + (amp != NULL);
	}
}

static void check_error(const struct api_request *q)
{
	if (q->status < 400 || q->status > 503 || !q->error[0])
		abort();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return;
	export_json_string(f, q->error);
	fclose(f);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20)
			abort();
	free(text);
}

/* A trigger's parameters: one flow (a key) or a filter, a name "api" or "api: REASON". */
static int trigger_check(struct api_request *q)
{
	struct ft_trigger t;
	char name[API_TRIGGER_NAME_MAX];
	int r = api_trigger_options(q, &t, name, sizeof(name));
	if (r == 0 && (t.has_key + !!t.filter + !!t.community_id != 1 ||
	               (t.community_id && !ft_community_id_valid(t.community_id)) ||
	               strncmp(name, "api", 3) != 0 || (t.has_key && t.key.pad != 0)))
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct query_api s = {.c = {.parse_time = parse_time, .max_queries = 1}};
	struct api_request q = {.s = &s};
	if ((data[0] & 6) == 6) { /* a JSON body, as it came */
		q.raw = (char *)data + 1;
		q.raw_len = size - 1;
	} else {
		add_params(&q, data + 1, size - 1);
	}
	int r = -1;
	if (!q.status && (data[0] & 2)) {
		r = trigger_check(&q);
	} else if (!q.status && (data[0] & 1)) {
		struct query_flows_options o;
		r = api_flows_options(&q, &o);
		if (r == 0 && o.to_ns && o.from_ns >= o.to_ns)
			abort();
	} else if (!q.status) {
		struct query_options o;
		r = api_query_options(&q, &o);
		if (r == 0 && ((o.to_ns && o.from_ns >= o.to_ns) ||
		               (o.limit_bytes && o.limit_bytes < query_header_size(&o)) ||
		               (api_param(&q, "limit_packets") && !o.limit_packets)))
			abort();
	}
	if (r != 0)
		check_error(&q);
	for (size_t i = 0; i < q.np; i++) {
		free(q.p[i].name);
		free(q.p[i].value);
	}
	return 0;
}
