/*
 * flowscope flows: the flows an archive holds, one line each: first and last
 * time, duration, the two endpoints, packets and bytes per direction, TCP
 * flags seen, the flow's Community ID (docs/cli.md) and the trigger that
 * archived the flow (if any).  The
 * selection (records merged across segments, the filter run on the packets,
 * order, top) is the query library's query_flows(), which GET /api/v1/flows
 * shares; this file parses the options and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "query/query.h"
#include "tools/cli.h"
#include "tools/fleet.h"
#include "tools/remote.h"

#define CMD "flows"

struct flows_args {
	const char *archive;
	int json;
	char *filter;
	const char *remote; /* --remote URL: ask a flowscope serve (GET /api/v1/flows) */
	const char *fleet;  /* --fleet FILE: the fleet's ClickHouse (tools/fleet_clickhouse.c) */
	struct remote_tls tls;
	struct query_flows_options o;
};

/* The text table: its header line, then one row per flow (the trigger last: free text). */
static void print_header(void)
{
	printf("%-30s %10s %-5s %-40s %-40s %-9s %8s %8s %11s %11s %-8s %-30s %s\n", "first",
	       "duration", "proto", "a", "b", "vlan", "pkts>", "pkts<", "bytes>", "bytes<", "flags",
	       "community_id", "trigger");
}

static void print_row(const struct query_flow_text *x, double duration,
                      const struct archive_flow_info *f)
{
	printf("%-30s %10.3f %-5s %-40s %-40s %-9s %8" PRIu64 " %8" PRIu64 " %11" PRIu64
	       " %11" PRIu64 " %-8s %-30s %s\n",
	       x->first, duration, x->proto, x->a, x->b, x->vlan, f->packets[0], f->packets[1],
	       f->bytes[0], f->bytes[1], x->flags, x->community_id,
	       x->trigger[0] ? x->trigger : "-");
}

static void print_flow(const struct flows_args *fa, struct archive_rtxn *t,
                       const struct archive_flow_info *f)
{
	struct query_flow_text x;
	if (fa->json) {
		query_flow_json(stdout, t, f);
		return;
	}
	query_flow_fields(t, f, &x);
	print_row(&x, (double)(f->last_ns - f->first_ns) / 1e9, f);
}

static int parse_args(int argc, char **argv, struct flows_args *fa)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'}, {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},      {"triggered", no_argument, NULL, 'T'},
	    {"json", no_argument, NULL, 'j'},          {"top", required_argument, NULL, 'n'},
	    {"sort", required_argument, NULL, 's'},    {"help", no_argument, NULL, 'h'},
	    {"remote", required_argument, NULL, 'r'},  {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'K'},     {"cacert", required_argument, NULL, 'A'},
	    {"fleet", required_argument, NULL, 'L'},   {NULL, 0, NULL, 0},
	};
	int c, r;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		uint64_t *tm = c == 'f' ? &fa->o.from_ns : &fa->o.to_ns;
		switch (c) {
		case 'a':
			fa->archive = optarg;
			break;
		case 'f':
		case 't':
			if ((r = cli_parse_time(optarg, cli_now_ns(), tm)) != 0) {
				cli_time_error(CMD, c == 'f' ? "--from" : "--to", optarg, r);
				return EXIT_USAGE;
			}
			break;
		case 'T':
			fa->o.triggered = 1;
			break;
		case 'j':
			fa->json = 1;
			break;
		case 'n':
			if (cli_parse_uint(optarg, 1, UINT64_MAX, &fa->o.top) != 0) {
				cli_error(CMD, "--top '%s': expected a number of flows", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			fa->o.sort = strcmp(optarg, "bytes") == 0      ? QUERY_FLOWS_BY_BYTES
			             : strcmp(optarg, "packets") == 0  ? QUERY_FLOWS_BY_PACKETS
			             : strcmp(optarg, "duration") == 0 ? QUERY_FLOWS_BY_DURATION
			                                               : QUERY_FLOWS_BY_TIME;
			if (fa->o.sort == QUERY_FLOWS_BY_TIME) {
				cli_error(CMD, "--sort '%s': expected bytes, packets or duration",
				          optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			fa->remote = optarg;
			break;
		case 'L':
			fa->fleet = optarg;
			break;
		case 'c':
			fa->tls.cert = optarg;
			break;
		case 'K':
			fa->tls.key = optarg;
			break;
		case 'A':
			fa->tls.cacert = optarg;
			break;
		case 'h':
			printf(
			    "usage: flowscope flows --archive DIR [--from T] [--to T] "
			    "[--triggered] [--json]\n"
			    "                      [--top N] [--sort bytes|packets|duration] "
			    "[FILTER...]\n"
			    "       flowscope flows --remote URL [--cert FILE --key FILE] "
			    "[--cacert FILE] ...\n"
			    "       flowscope flows --fleet FILE [--from T] [--to T] [--json] "
			    "[--top N] [FILTER...]\n"
			    "FILTER is a tcpdump expression: the flows with a matching packet "
			    "are listed\n"
			    "--remote URL asks a flowscope serve at URL instead of reading "
			    "--archive; --cert, --key:\n"
			    "the client certificate and key, --cacert: the CA of the server's\n"
			    "--fleet FILE lists the flows of every sensor from the ClickHouse the "
			    "fleet file names\n(docs/fleet.md); FILTER: hosts, nets, ports, "
			    "protocols, VLANs\n");
			return -1;
		default:
			return cli_usage_error(CMD, argv, optind, optopt);
		}
	}
	if (!!fa->archive + !!fa->remote + !!fa->fleet != 1) {
		cli_error(CMD, fa->archive || fa->remote
		                   ? "--archive, --remote and --fleet exclude each other"
		                   : "--archive DIR is required (or --remote URL, --fleet FILE)");
		return EXIT_USAGE;
	}
	if (fa->fleet && (fa->o.triggered || fa->o.sort != QUERY_FLOWS_BY_TIME)) {
		cli_error(CMD,
		          "--fleet lists by time, or by bytes with --top, without --triggered");
		return EXIT_USAGE;
	}
	if ((!fa->remote && (fa->tls.cert || fa->tls.key || fa->tls.cacert)) ||
	    !fa->tls.cert != !fa->tls.key) {
		cli_error(CMD, "--cert and --key go together, and with --cacert are for --remote");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		char err[512];
		struct bpf_program prog; /* refused up front, whatever the archive holds */
		fa->filter = cli_join_args(argc, argv, optind);
		if (!fa->filter) {
			cli_error(CMD, "out of memory");
			return EXIT_FAIL;
		}
		if (ft_bpf_compile(1, 262144, fa->filter, &prog, err, sizeof(err)) != 0) {
			cli_error(CMD, "%s", err);
			return EXIT_USAGE;
		}
		pcap_freecode(&prog);
	}
	fa->o.filter = fa->filter;
	return 0;
}

/*
 * A line of /api/v1/flows (query_flow_json's) into x, *dur and f; 0, or -1 when it is not
 * such a line.  "community_id" may be missing (a server from before it) or null (ICMP): "-".
 */
static int remote_flow(json_t *j, struct query_flow_text *x, double *dur,
                       struct archive_flow_info *f)
{
	const char *s[7];
	json_int_t vlan, inner, n[4];
	json_t *cid = NULL;
	if (json_unpack(
	        j, "{s:s, s:s, s:F, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s?o, s:s}",
	        "first", &s[0], "last", &s[1], "duration", dur, "proto", &s[2], "a", &s[3], "b",
	        &s[4], "vlan", &vlan, "vlan_inner", &inner, "packets_ab", &n[0], "packets_ba",
	        &n[1], "bytes_ab", &n[2], "bytes_ba", &n[3], "tcp_flags", &s[5], "community_id",
	        &cid, "trigger", &s[6]) != 0 ||
	    vlan < 0 || vlan > 4095 || inner < 0 || inner > 4095 ||
	    (n[0] | n[1] | n[2] | n[3]) < 0 || (cid && !json_is_null(cid) && !json_is_string(cid)))
		return -1;
	char *to[7] = {x->first, x->last, x->proto, x->a, x->b, x->flags, x->trigger};
	size_t len[7] = {sizeof(x->first), sizeof(x->last),  sizeof(x->proto),  sizeof(x->a),
	                 sizeof(x->b),     sizeof(x->flags), sizeof(x->trigger)};
	for (int i = 0; i < 7; i++)
		snprintf(to[i], len[i], "%s", s[i]);
	snprintf(x->community_id, sizeof(x->community_id), "%s",
	         json_is_string(cid) ? json_string_value(cid) : "-");
	query_vlan_text((unsigned)vlan, (unsigned)inner, x->vlan, sizeof(x->vlan));
	for (int d = 0; d < 2; d++) {
		f->packets[d] = (uint64_t)n[d];
		f->bytes[d] = (uint64_t)n[2 + d];
	}
	return 0;
}

/* One line of /api/v1/flows printed as print_flow does; 0, or -1 when it is not such a line. */
static int print_remote_line(const char *line)
{
	struct archive_flow_info f = {0};
	struct query_flow_text x;
	double dur;
	json_t *j = json_loads(line, 0, NULL);
	int r = j ? remote_flow(j, &x, &dur, &f) : -1;
	if (r == 0)
		print_row(&x, dur, &f);
	json_decref(j);
	return r;
}

/* --remote: the server's flows, printed as a local run prints them; the exit status. */
static int flows_remote(const struct flows_args *fa)
{
	static const char *const sorts[] = {"time", "bytes", "packets", "duration"};
	char from[32], to[32], top[32], err[QUERY_ERRBUF_SIZE], *text = NULL;
	const char *p[16];
	size_t len = 0;
	long http;
	int n = 0;
	if (fa->filter)
		p[n++] = "filter", p[n++] = fa->filter;
	if (fa->o.from_ns)
		p[n++] = "from", p[n++] = remote_time(fa->o.from_ns, from);
	if (fa->o.to_ns)
		p[n++] = "to", p[n++] = remote_time(fa->o.to_ns, to);
	if (fa->o.triggered)
		p[n++] = "triggered", p[n++] = "true";
	p[n++] = "sort", p[n++] = sorts[fa->o.sort];
	if (fa->o.top) {
		snprintf(top, sizeof(top), "%" PRIu64, fa->o.top);
		p[n++] = "top", p[n++] = top;
	}
	FILE *m = open_memstream(&text, &len);
	int r = m ? remote_get(fa->remote, "flows", p, n, &fa->tls, m, &http, err) : -ENOMEM;
	if (m)
		fclose(m);
	if (r) {
		if (r == REMOTE_E_REFUSED)
			cli_error(CMD, "%s: %s (HTTP %ld)", fa->remote, err, http);
		else
			cli_error(CMD, "%s", r == -ENOMEM ? "out of memory" : err);
		free(text);
		return r == REMOTE_E_REFUSED && http == 400 ? EXIT_USAGE : EXIT_FAIL;
	}
	if (fa->json) {
		fwrite(text, 1, len, stdout);
	} else {
		print_header();
		for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (print_remote_line(line) != 0) {
				cli_error(CMD, "%s: an answer line that is not a flow: %.80s",
				          fa->remote, line);
				free(text);
				return EXIT_FAIL;
			}
		}
	}
	free(text);
	return EXIT_OK;
}

/* --fleet: the fleet's flows from its ClickHouse; the exit status. */
static int flows_fleet(const struct flows_args *fa)
{
	struct fleet f;
	int status = fleet_load(CMD, fa->fleet, &f);
	if (status == 0) {
		status = fleet_flows(CMD, &f, fa->filter, fa->o.from_ns, fa->o.to_ns, fa->json,
		                     fa->o.top);
		fleet_free(&f);
	}
	return status;
}

int flows_main(int argc, char **argv)
{
	struct flows_args fa = {0};
	int r = parse_args(argc, argv, &fa);
	if (r) {
		free(fa.filter);
		return r < 0 ? EXIT_OK : r;
	}
	if (fa.remote || fa.fleet) {
		r = fa.remote ? flows_remote(&fa) : flows_fleet(&fa);
		free(fa.filter);
		return r;
	}
	struct archive *a = NULL;
	struct archive_rtxn *t = NULL;
	struct archive_flow_info *f = NULL;
	size_t n = 0;
	uint64_t damaged = 0;
	char err[QUERY_ERRBUF_SIZE];
	int status = EXIT_FAIL;
	fa.o.notices = stderr;
	fa.o.notice_prefix = "flowscope flows: ";
	if ((r = archive_open(fa.archive, ARCHIVE_READ, &a)) == 0 &&
	    (r = archive_rtxn_begin(a, &t)) == 0) {
		cli_check_segment_files(CMD, a, t, fa.archive); /* flows come from the index */
		r = query_flows(a, t, &fa.o, &f, &n, &damaged, err);
		if (r)
			cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		status = r == QUERY_E_FILTER ? EXIT_USAGE
		         : r                 ? EXIT_FAIL
		         : damaged           ? EXIT_DAMAGED
		                             : 0;
	} else {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	}
	if (status == EXIT_OK || status == EXIT_DAMAGED) {
		if (!fa.json)
			print_header();
		for (size_t i = 0; i < n; i++)
			print_flow(&fa, t, &f[i]);
	}
	free(f);
	archive_rtxn_end(t);
	archive_close(a);
	free(fa.filter);
	return status;
}
