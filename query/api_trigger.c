/*
 * POST /api/v1/trigger (docs/api.md): a detector outside the recorder asks
 * for a flow, or the flows a filter selects, to be archived with the packets
 * the ring still holds from before.  The server only reads the request and
 * writes the answer: the recorder behind query_api_config.trigger applies it
 * (record --listen; flowscope serve has none and answers 404).
 *
 * The body is a form, or a JSON object (jansson) whose members become the
 * same parameters: strings as they are, a number for "for" as seconds.
 * Parameters: exactly one of flow ("tcp 10.0.0.1:443 10.0.0.2:51234 [vlan
 * 42[/7]]"), filter (a libpcap expression) or community_id (every flow of
 * that Community ID v1, on any VLAN); reason (shown by
 * `flows` as "api: REASON"); for (a duration: keep matching new flows).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "query/api_pvt.h"

static const char *const trigger_params[] = {"flow", "filter", "community_id", "reason", "for"};

/* A JSON body's members as parameters; 0, or -1 with the request failed (400). */
static int json_params(struct api_request *q)
{
	json_error_t je;
	json_t *o = json_loadb(q->raw, q->raw_len, JSON_REJECT_DUPLICATES, &je);
	const char *k;
	json_t *v;
	if (!o || !json_is_object(o)) {
		api_request_fail(q, 400, "the body is not a JSON object: %s",
		                 o ? "another JSON value" : je.text);
		json_decref(o);
		return -1;
	}
	json_object_foreach(o, k, v)
	{
		char num[64];
		if (json_is_string(v))
			api_param_add(q, k, json_string_value(v), json_string_length(v));
		else if (json_is_number(v) &&
		         snprintf(num, sizeof(num), "%.9g", json_number_value(v)))
			api_param_add(q, k, num, strlen(num));
		else
			api_request_fail(q, 400, "member '%s' must be a string or a number", k);
	}
	json_decref(o);
	return q->status ? -1 : 0;
}

/* Every parameter is one the endpoint takes; 0 or -1 (400). */
static int params_known(struct api_request *q)
{
	for (size_t i = 0; i < q->np; i++) {
		size_t k = 0, n = sizeof(trigger_params) / sizeof(trigger_params[0]);
		while (k < n && strcmp(q->p[i].name, trigger_params[k]) != 0)
			k++;
		if (k == n) {
			api_request_fail(
			    q, 400,
			    "unknown parameter '%s' (flow, filter, community_id, reason, "
			    "for)",
			    q->p[i].name);
			return -1;
		}
	}
	return 0;
}

/* The request's parameters into *t and its name; 0, or -1 with q failed (400). */
static int trigger_parse(struct api_request *q, struct ft_trigger *t, char *name, size_t len)
{
	const char *flow = api_param(q, "flow"), *filter = api_param(q, "filter");
	const char *cid = api_param(q, "community_id"), *reason = api_param(q, "reason");
	const char *dur = api_param(q, "for");
	char err[256];
	memset(t, 0, sizeof(*t));
	if (!!flow + !!filter + !!cid != 1)
		return api_request_fail(q, 400, "give exactly one of flow, filter, community_id"),
		       -1;
	if (cid && !ft_community_id_valid(cid))
		return api_request_fail(q, 400,
		                        "community_id '%.64s': not a Community ID v1 (1:...)", cid),
		       -1;
	if (flow && ft_flow_key_parse(flow, &t->key, err, sizeof(err)) != 0)
		return api_request_fail(q, 400, "%s", err), -1;
	if (dur && ft_parse_duration(dur, &t->for_ns) != 0)
		return api_request_fail(q, 400, "for '%s': expected a duration, e.g. 30s, 5m", dur),
		       -1;
	t->has_key = flow != NULL;
	t->community_id = cid;
	t->filter = filter;
	if (reason && reason[0])
		snprintf(name, len, "api: %.*s", API_TRIGGER_REASON_MAX, reason);
	else
		snprintf(name, len, "api");
	return 0;
}

int api_trigger_options(struct api_request *q, struct ft_trigger *t, char *name, size_t len)
{
	if ((q->raw && json_params(q) != 0) || params_known(q) != 0 ||
	    trigger_parse(q, t, name, len) != 0)
		return -1;
	return 0;
}

/* The status of a recorder's error. */
static unsigned trigger_status(int e)
{
	switch (e) {
	case -EINVAL:
		return 400;
	case FT_E_STOPPING:
	case FT_E_TIMEDOUT:
	case -EBUSY:
		return 503;
	case -ENOSYS:
		return 409;
	default:
		return 500;
	}
}

static void match_json(FILE *f, const struct ft_trigger_match *m, uint64_t window_ns)
{
	char key[FT_KEYSTRLEN], id[FT_COMMUNITY_ID_LEN];
	fprintf(f, "{\"flow\": ");
	export_json_string(f, ft_flow_key_format(&m->key, key, sizeof(key)));
	fprintf(f, ", \"community_id\": ");
	if (ft_community_id(&m->key, 0, id) == 0)
		export_json_string(f, id);
	else
		fprintf(f, "null"); /* ICMP: the ID needs a message's type */
	fprintf(f,
	        ", \"packets\": %" PRIu64 ", \"first_ns\": %" PRIu64
	        ", \"seconds_back\": %.3f, \"first_packet_lost\": %s, \"triggered_before\": %s",
	        m->packets, m->first_ns, (double)m->back_ns / 1e9, m->first_lost ? "true" : "false",
	        m->again ? "true" : "false");
	if (m->first_lost)
		fprintf(f, ", \"note\": \"first packet lost: ring window was %.1f s\"",
		        (double)window_ns / 1e9);
	fprintf(f, "}");
}

static enum MHD_Result trigger_answer(struct MHD_Connection *c, const struct ft_trigger *t,
                                      const char *name, const struct ft_trigger_result *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return api_error(c, 503, "out of memory");
	fprintf(f, "{\"trigger\": ");
	export_json_string(f, name);
	fprintf(f,
	        ", \"matched\": %" PRIu64 ", \"packets\": %" PRIu64
	        ", \"first_packet_lost\": %" PRIu64 ", \"ring_window_s\": %.3f, \"for_s\": %.3f"
	        ", \"listed\": %u, \"flows\": [",
	        r->flows, r->packets, r->lost_flows, (double)r->window_ns / 1e9,
	        (double)t->for_ns / 1e9, r->listed);
	for (unsigned i = 0; i < r->listed; i++) {
		fprintf(f, i ? ", " : "");
		match_json(f, &r->match[i], r->window_ns);
	}
	fprintf(f, "]}\n");
	fclose(f);
	enum MHD_Result ret = api_json(c, 200, text, len);
	free(text);
	return ret;
}

enum MHD_Result api_trigger(struct api_request *q, struct MHD_Connection *c)
{
	const struct query_api_config *cf = &q->s->c;
	struct ft_trigger t;
	struct ft_trigger_result *res;
	char name[API_TRIGGER_NAME_MAX], err[QUERY_ERRBUF_SIZE] = "";
	if (!cf->trigger)
		return api_error(c, 404,
		                 "this server has no recorder to trigger (flowscope record "
		                 "--listen serves POST /api/v1/trigger)");
	if (api_trigger_options(q, &t, name, sizeof(name)) != 0)
		return api_error(c, q->status, "%s", q->error);
	if (!(res = malloc(sizeof(*res))))
		return api_error(c, 503, "out of memory");
	int e = cf->trigger(cf->trigger_arg, &t, name, res, err, sizeof(err));
	enum MHD_Result ret = e ? api_error(c, trigger_status(e), "%s", err[0] ? err : "failed")
	                        : trigger_answer(c, &t, name, res);
	free(res);
	return ret;
}
