/*
 * flowscope trigger: asks a running recorder (record --listen) to archive a
 * flow, or the flows a filter selects, with the packets its ring still holds
 * from before (POST /api/v1/trigger, docs/api.md), and prints the answer as
 * lines, or as the server's JSON with --json.  The answer is read whole
 * (it is small: at most FT_TRIGGER_LISTED flows) and parsed with jansson.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/remote.h"

#define CMD "trigger"

struct trigger_args {
	const char *remote, *flow, *community_id, *reason, *dur;
	char *filter; /* the words left, joined (malloc'd) */
	struct remote_tls tls;
	int json;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: flowscope trigger --remote URL [--cert FILE --key FILE] [--cacert FILE]\n"
	        "                         [--for DUR] [--reason TEXT] [--json]\n"
	        "                         (FILTER | --flow FLOW | --community-id ID)\n"
	        "Archives a flow, or the flows FILTER selects, in a running recorder (its\n"
	        "API), with the packets its ring still holds from before (docs/api.md).\n"
	        "  --remote URL          the recorder's API (http://127.0.0.1:PORT, https://...)\n"
	        "  --flow FLOW           'tcp 10.0.0.1:443 10.0.0.2:51234 [vlan 42[/7]]', either\n"
	        "                        direction; IPv6 as [ADDR]:PORT\n"
	        "  --community-id ID     the flow of a Community ID (1:...)\n"
	        "  FILTER                a tcpdump filter: every flow it selects (addresses,\n"
	        "                        ports, protocol, VLAN)\n"
	        "  --for DUR             also archive matching flows that start within DUR\n"
	        "  --reason TEXT         shown by flowscope flows as 'api: TEXT'\n"
	        "  --json                print the server's JSON answer\n"
	        "  --cert FILE, --key FILE  PEM client certificate and key\n"
	        "  --cacert FILE         PEM CA that signed the server's certificate\n");
}

static const struct option longopts[] = {
    {"remote", required_argument, NULL, 'r'},
    {"cert", required_argument, NULL, 'c'},
    {"key", required_argument, NULL, 'k'},
    {"cacert", required_argument, NULL, 'A'},
    {"flow", required_argument, NULL, 'f'},
    {"community-id", required_argument, NULL, 'I'},
    {"reason", required_argument, NULL, 'R'},
    {"for", required_argument, NULL, 'F'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int set_opt(struct trigger_args *a, int c, const char *arg)
{
	switch (c) {
	case 'r':
		a->remote = arg;
		return 0;
	case 'c':
		a->tls.cert = arg;
		return 0;
	case 'k':
		a->tls.key = arg;
		return 0;
	case 'A':
		a->tls.cacert = arg;
		return 0;
	case 'f':
		a->flow = arg;
		return 0;
	case 'I':
		a->community_id = arg;
		return 0;
	case 'R':
		a->reason = arg;
		return 0;
	case 'F':
		a->dur = arg;
		return 0;
	case 'j':
		a->json = 1;
		return 0;
	}
	return -1;
}

/* The words after the options, joined by spaces, as the filter. */
static int join_filter(struct trigger_args *a, int argc, char **argv)
{
	size_t len = 1;
	for (int i = optind; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (optind == argc)
		return 0;
	if (!(a->filter = calloc(1, len)))
		return -1;
	for (int i = optind; i < argc; i++) {
		strcat(a->filter, argv[i]);
		if (i + 1 < argc)
			strcat(a->filter, " ");
	}
	return 0;
}

static int check_args(const struct trigger_args *a)
{
	uint64_t ns;
	if (!a->remote) {
		cli_error(CMD, "--remote URL is required (see flowscope trigger --help)");
		return EXIT_USAGE;
	}
	if (!!a->filter + !!a->flow + !!a->community_id != 1) {
		cli_error(CMD, "give exactly one of FILTER, --flow, --community-id");
		return EXIT_USAGE;
	}
	if (!a->tls.cert != !a->tls.key) {
		cli_error(CMD, "--cert and --key go together");
		return EXIT_USAGE;
	}
	if (a->dur && cli_parse_duration(a->dur, &ns) != 0) {
		cli_error(CMD, "--for '%s': expected a duration, e.g. 30s, 5m", a->dur);
		return EXIT_USAGE;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct trigger_args *a)
{
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == ':' || c == '?' || set_opt(a, c, optarg) != 0)
			return cli_usage_error(CMD, argv, optind, optopt);
	}
	if (join_filter(a, argc, argv) != 0) {
		cli_error(CMD, "out of memory");
		return EXIT_FAIL;
	}
	return check_args(a);
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* One matched flow's lines. */
static void print_flow(FILE *f, json_t *m, double window)
{
	fprintf(f, "%s: reached back %.0f packets, %.1f s%s\n",
	        json_string_value(json_object_get(m, "flow")), num(m, "packets"),
	        num(m, "seconds_back"),
	        json_is_true(json_object_get(m, "triggered_before")) ? " (triggered before)" : "");
	if (json_is_true(json_object_get(m, "first_packet_lost")))
		fprintf(f, "first packet lost: ring window was %.1f s\n", window);
}

/* The answer as lines; 0, or EXIT_FAIL when it is not the answer's JSON. */
static int print_answer(FILE *f, const char *text, size_t len)
{
	json_error_t je;
	json_t *o = json_loadb(text, len, 0, &je), *flows = json_object_get(o, "flows");
	if (!json_is_array(flows)) {
		cli_error(CMD, "the server's answer is not a trigger's: %s",
		          o ? "no flows" : je.text);
		json_decref(o);
		return EXIT_FAIL;
	}
	double n = num(o, "matched"), window = num(o, "ring_window_s");
	fprintf(f, "matched %.0f flow%s, reached back %.0f packets (%s)\n", n, n == 1 ? "" : "s",
	        num(o, "packets"), json_string_value(json_object_get(o, "trigger")));
	for (size_t i = 0; i < json_array_size(flows); i++)
		print_flow(f, json_array_get(flows, i), window);
	if (n > (double)json_array_size(flows))
		fprintf(f, "(%zu of them listed)\n", json_array_size(flows));
	if (num(o, "for_s") > 0)
		fprintf(f, "new matching flows archived for %.1f s more\n", num(o, "for_s"));
	json_decref(o);
	return 0;
}

static int run(const struct trigger_args *a)
{
	const char *p[10];
	int n = 0;
	char err[QUERY_ERRBUF_SIZE], *text = NULL;
	size_t len = 0;
	long http;
	if (a->flow)
		p[n++] = "flow", p[n++] = a->flow;
	if (a->filter)
		p[n++] = "filter", p[n++] = a->filter;
	if (a->community_id)
		p[n++] = "community_id", p[n++] = a->community_id;
	if (a->reason)
		p[n++] = "reason", p[n++] = a->reason;
	if (a->dur)
		p[n++] = "for", p[n++] = a->dur;
	FILE *out = open_memstream(&text, &len);
	if (!out) {
		cli_error(CMD, "out of memory");
		return EXIT_FAIL;
	}
	int e = remote_post(a->remote, "trigger", p, n, &a->tls, out, &http, err);
	fclose(out);
	int r = EXIT_OK;
	if (e) {
		cli_error(CMD, "%s: %s", a->remote, err);
		r = e == REMOTE_E_REFUSED && http >= 400 && http < 500 ? EXIT_USAGE : EXIT_FAIL;
	} else if (a->json) {
		fwrite(text, 1, len, stdout);
	} else {
		r = print_answer(stdout, text, len);
	}
	free(text);
	return r;
}

int trigger_main(int argc, char **argv)
{
	struct trigger_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r == 0)
		r = run(&a);
	free(a.filter);
	return r < 0 ? EXIT_OK : r;
}
