/*
 * flowscope query: matching packets from an archive as a pcap.
 *
 * Output goes to a temporary file renamed into place at the end (so a failed
 * query never leaves a half-written FILE), or is streamed to stdout with
 * "-w -" (flushed after every frame, for `| tcpdump -r -` or
 * `| wireshark -k -i -`).  A binary pcap is never written to a terminal.
 * SIGINT, SIGTERM, SIGHUP or SIGPIPE while the temporary file is written
 * remove it before the signal ends the process (status 128 + signal).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flowtrack/flowtrack.h"
#include "query/query.h"
#include "tools/cli.h"
#include "tools/fleet.h"
#include "tools/remote.h"

#define CMD "query"

struct query_args {
	const char *archive;
	const char *out;
	char *filter;
	char *cmdline;
	const char *limit_bytes; /* --limit-bytes as given, for its error line */
	const char *remote;      /* --remote URL: ask a flowscope serve (tools/remote.c) */
	const char *fleet;       /* --fleet FILE: ask every sensor in it (tools/fleet.c) */
	int all_sensors;         /* --all-sensors: no narrowing by the fleet's ClickHouse */
	struct remote_tls tls;
	struct query_options q;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flowscope query --archive DIR [--from T] [--to T] [-w FILE|-] [--explain] "
	    "[FILTER...]\n"
	    "       flowscope query --remote URL [--cert FILE --key FILE] [--cacert FILE] ...\n"
	    "       flowscope query --fleet FILE ...\n"
	    "  FILTER      a libpcap filter expression (as for tcpdump); none = everything\n"
	    "  --from T    first packet time, inclusive; --to T: end, exclusive.  T is RFC 3339\n"
	    "              (2026-11-27T14:02:00Z), epoch seconds (1795000000.5), 'now', or\n"
	    "              '15m ago' / '2h ago' / '1d ago'\n"
	    "  -w FILE     write to FILE; '-' for stdout (streams as it reads)\n"
	    "  --format F  pcap (default), pcapng, or json (one object per packet)\n"
	    "  --ts T      pcap timestamps: nano (default) or micro\n"
	    "  --limit-packets N, --limit-bytes SIZE  stop there (the output is whole packets\n"
	    "              and never larger than SIZE, so SIZE holds at least the file header)\n"
	    "  --skip-damaged  leave out frames that cannot be read (one line each), return\n"
	    "              the rest, exit status 3; the default for -w - (a stream)\n"
	    "  --community-id ID  only the packets of the flow(s) with this Community ID v1\n"
	    "              (1:...; seed 0) active in [--from, --to), and-ed with FILTER\n"
	    "  --explain   print the plan (index terms, segments, frames, bytes); read nothing\n"
	    "  --workers N threads decompressing and matching frames (default: one per CPU;\n"
	    "              1 = all on the query's thread); the answer is the same bytes\n"
	    "  --remote URL  ask a flowscope serve at URL (https://HOST:PORT) instead of\n"
	    "              reading --archive: the same answer (docs/api.md)\n"
	    "  --cert FILE, --key FILE  PEM client certificate and key for --remote\n"
	    "  --cacert FILE  PEM CA that signed the server's certificate (default: the "
	    "system's)\n"
	    "  --fleet FILE  ask every sensor the fleet file names (their URLs and client\n"
	    "              certificates) at once, and merge their answers by time; pcapng:\n"
	    "              an interface per sensor (docs/fleet.md); with clickhouse = URL in\n"
	    "              it, only the sensors whose flows may match\n"
	    "  --all-sensors  --fleet: ask every sensor, whatever ClickHouse says\n");
}

static int parse_time_opt(const char *name, const char *arg, uint64_t *out)
{
	int r = cli_parse_time(arg, cli_now_ns(), out);
	if (r == 0)
		return 0;
	cli_time_error(CMD, name, arg, r);
	return EXIT_USAGE;
}

static int parse_output_opt(struct query_args *a, int c, const char *arg)
{
	switch (c) {
	case 'F':
		if (strcmp(arg, "pcap") == 0)
			a->q.format = QUERY_FORMAT_PCAP;
		else if (strcmp(arg, "pcapng") == 0)
			a->q.format = QUERY_FORMAT_PCAPNG;
		else if (strcmp(arg, "json") == 0)
			a->q.format = QUERY_FORMAT_JSON;
		else
			break;
		return 0;
	case 'S':
		if (strcmp(arg, "nano") != 0 && strcmp(arg, "micro") != 0)
			break;
		a->q.ts_micro = arg[0] == 'm';
		return 0;
	case 'P':
		if (cli_parse_uint(arg, 1, UINT64_MAX, &a->q.limit_packets) == 0)
			return 0;
		break;
	case 'B':
		a->limit_bytes = arg;
		if (cli_parse_size(arg, &a->q.limit_bytes) == 0 && a->q.limit_bytes > 0)
			return 0;
		break;
	case 'W': {
		uint64_t w;
		if (cli_parse_uint(arg, 1, QUERY_MAX_WORKERS, &w) == 0) {
			a->q.workers = (unsigned)w;
			return 0;
		}
		break;
	}
	}
	static const char *const want[] = {['F'] = "pcap, pcapng or json",
	                                   ['S'] = "nano or micro",
	                                   ['P'] = "a packet count of at least 1",
	                                   ['B'] = "a size such as 10M, at least 1",
	                                   ['W'] = "a thread count from 1 to 64"};
	static const char *const name[] = {['F'] = "--format",
	                                   ['S'] = "--ts",
	                                   ['P'] = "--limit-packets",
	                                   ['B'] = "--limit-bytes",
	                                   ['W'] = "--workers"};
	cli_error(CMD, "%s '%s': expected %s", name[c], arg, want[c]);
	return EXIT_USAGE;
}

/*
 * The least --limit-bytes: the file header.  pcapng's holds the command line, whose
 * --limit-bytes value changes its length: the figure given must hold the command that
 * gives it.  0, or -ENOMEM.
 */
static int least_limit_bytes(const struct query_args *a, uint64_t *least)
{
	struct query_options o = a->q;
	size_t other = a->cmdline ? strlen(a->cmdline) - strlen(a->limit_bytes) : 0;
	*least = query_header_size(&o);
	for (int i = 0; a->cmdline && i < 4; i++) { /* the length of the figure settles */
		char figure[24];
		size_t len = other + (size_t)snprintf(figure, sizeof(figure), "%" PRIu64, *least);
		char *c = malloc(len + 1);
		if (!c)
			return -ENOMEM;
		memset(c, 'x', len);
		c[len] = '\0';
		o.comment = c;
		*least = query_header_size(&o);
		free(c);
	}
	return 0;
}

/* The output never exceeds --limit-bytes and is a valid file: a limit that cannot hold the
   file header is refused rather than broken. */
static int check_limit_bytes(const struct query_args *a)
{
	uint64_t header = query_header_size(&a->q), least;
	if (!a->q.limit_bytes || a->q.limit_bytes >= header)
		return 0;
	if (least_limit_bytes(a, &least) != 0) {
		cli_error(CMD, "out of memory");
		return EXIT_FAIL;
	}
	cli_error(CMD,
	          "--limit-bytes '%s': less than the %s file header%s; give at least %" PRIu64
	          " bytes (the header alone)",
	          a->limit_bytes, a->q.format == QUERY_FORMAT_PCAPNG ? "pcapng" : "pcap",
	          a->q.format == QUERY_FORMAT_PCAPNG ? " (it holds the command line)" : "", least);
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct query_args *a)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"write", required_argument, NULL, 'w'},
	    {"explain", no_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'h'},
	    {"format", required_argument, NULL, 'F'},
	    {"ts", required_argument, NULL, 'S'},
	    {"limit-packets", required_argument, NULL, 'P'},
	    {"limit-bytes", required_argument, NULL, 'B'},
	    {"skip-damaged", no_argument, NULL, 'k'},
	    {"workers", required_argument, NULL, 'W'},
	    {"remote", required_argument, NULL, 'r'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'K'},
	    {"cacert", required_argument, NULL, 'A'},
	    {"community-id", required_argument, NULL, 'C'},
	    {"fleet", required_argument, NULL, 'L'},
	    {"all-sensors", no_argument, NULL, 'N'},
	    {NULL, 0, NULL, 0},
	};
	int c, r;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hw:", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			a->archive = optarg;
			break;
		case 'f':
			if ((r = parse_time_opt("--from", optarg, &a->q.from_ns)) != 0)
				return r;
			break;
		case 't':
			if ((r = parse_time_opt("--to", optarg, &a->q.to_ns)) != 0)
				return r;
			break;
		case 'w':
			a->out = optarg;
			break;
		case 'e':
			a->q.explain = 1;
			break;
		case 'k':
			a->q.skip_damaged = 1;
			break;
		case 'r':
			a->remote = optarg;
			break;
		case 'L':
			a->fleet = optarg;
			break;
		case 'N':
			a->all_sensors = 1;
			break;
		case 'c':
			a->tls.cert = optarg;
			break;
		case 'K':
			a->tls.key = optarg;
			break;
		case 'A':
			a->tls.cacert = optarg;
			break;
		case 'C':
			if (!ft_community_id_valid(optarg)) {
				cli_error(
				    CMD,
				    "--community-id '%s': expected a Community ID v1 (1: and 28 "
				    "base64 characters)",
				    optarg);
				return EXIT_USAGE;
			}
			a->q.community_id = optarg;
			break;
		case 'F':
		case 'S':
		case 'P':
		case 'B':
		case 'W':
			if ((r = parse_output_opt(a, c, optarg)) != 0)
				return r;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return cli_usage_error(CMD, argv, optind, optopt);
		}
	}
	if (!!a->archive + !!a->remote + !!a->fleet != 1) {
		cli_error(CMD,
		          a->archive || a->remote
		              ? "--archive, --remote and --fleet exclude each other"
		              : "--archive DIR is required (or --remote URL, --fleet FILE; see "
		                "flowscope query --help)");
		return EXIT_USAGE;
	}
	if (a->fleet && (a->q.explain || a->q.limit_packets || a->q.limit_bytes ||
	                 a->q.format == QUERY_FORMAT_JSON)) {
		cli_error(CMD, "--fleet answers pcap or pcapng, without --explain, --limit-packets "
		               "or --limit-bytes");
		return EXIT_USAGE;
	}
	if (a->all_sensors && !a->fleet) {
		cli_error(CMD, "--all-sensors is for --fleet FILE");
		return EXIT_USAGE;
	}
	if (!a->remote && (a->tls.cert || a->tls.key || a->tls.cacert)) {
		cli_error(CMD, "--cert, --key and --cacert are for --remote (a fleet file names "
		               "each sensor's)");
		return EXIT_USAGE;
	}
	if (!a->tls.cert != !a->tls.key) {
		cli_error(CMD, "--cert and --key go together");
		return EXIT_USAGE;
	}
	if (a->q.to_ns && a->q.from_ns >= a->q.to_ns) {
		cli_error(CMD, "--from is not before --to: the time range is empty");
		return EXIT_USAGE;
	}
	if (a->q.ts_micro && a->q.format != QUERY_FORMAT_PCAP) {
		cli_error(CMD,
		          "--ts micro is for --format pcap (pcapng and JSON keep nanoseconds)");
		return EXIT_USAGE;
	}
	a->filter = cli_join_args(argc, argv, optind);
	a->q.filter = a->filter;
	char *args = cli_join_args(argc, argv, 0); /* "query ...": the pcapng section comment */
	if (args && asprintf(&a->cmdline, "flowscope %s", args) < 0)
		a->cmdline = NULL;
	free(args);
	a->q.comment = a->cmdline;
	return check_limit_bytes(a);
}

/* ---- the temporary file against signals ---------------------------------------------------- */

static const int g_fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
static char g_partial[4096]; /* the temporary file while it is written, else "" */

/* Removes the partial answer, then dies of the signal as it would have. */
static void on_fatal_signal(int sig)
{
	if (g_partial[0])
		unlink(g_partial);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* tmp is being written: a signal removes it first. */
static void partial_guard(const char *tmp)
{
	struct sigaction sa = {0};
	snprintf(g_partial, sizeof(g_partial), "%s", tmp);
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(g_fatal_signals) / sizeof(g_fatal_signals[0]); i++)
		sigaddset(&sa.sa_mask, g_fatal_signals[i]);
	for (size_t i = 0; i < sizeof(g_fatal_signals) / sizeof(g_fatal_signals[0]); i++) {
		struct sigaction old;
		/* one ignored (nohup, a background job's SIGINT) cannot end the query: left so */
		if (sigaction(g_fatal_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(g_fatal_signals[i], &sa, NULL);
	}
}

/* Opens the output: stdout for "-" (or when -w is absent and stdout is not a terminal). */
static int open_output(struct query_args *a, char *tmp, size_t tmplen)
{
	tmp[0] = '\0';
	if (a->q.explain || !a->out || strcmp(a->out, "-") == 0) {
		if (!a->q.explain && a->q.format != QUERY_FORMAT_JSON && isatty(STDOUT_FILENO)) {
			cli_error(CMD,
			          "refusing to write a binary pcap to a terminal: use -w FILE, or "
			          "-w - with a pipe");
			return EXIT_USAGE;
		}
		a->q.out = stdout;
		a->q.skip_damaged = 1; /* what was streamed cannot be taken back: go on */
		return 0;
	}
	struct stat st;
	if (stat(a->out, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* /dev/null, a FIFO, a terminal: written in place, never renamed over */
		a->q.out = fopen(a->out, "we");
		if (!a->q.out) {
			cli_error(CMD, "cannot write %s: %s", a->out, strerror(errno));
			return EXIT_FAIL;
		}
		return 0;
	}
	snprintf(tmp, tmplen, "%s.partial-%d", a->out, (int)getpid());
	partial_guard(tmp); /* before it exists: a signal between the two finds nothing */
	a->q.out = fopen(tmp, "we");
	if (!a->q.out) {
		cli_error(CMD, "cannot write %s: %s", a->out, strerror(errno));
		tmp[0] = '\0';
		return EXIT_FAIL;
	}
	return 0;
}

/* Closes the output; renames the temporary file into place when ok. */
static int close_output(struct query_args *a, const char *tmp, int ok)
{
	if (!tmp[0] && a->q.out && a->q.out != stdout && fclose(a->q.out) != 0 && ok) {
		cli_error(CMD, "cannot write %s: %s", a->out, strerror(errno));
		return EXIT_FAIL;
	}
	if (!tmp[0])
		return ok ? 0 : EXIT_FAIL;
	int bad = fclose(a->q.out) != 0;
	if (ok && bad)
		cli_error(CMD, "cannot write %s: %s", a->out, strerror(errno));
	if (ok && !bad && rename(tmp, a->out) != 0) {
		cli_error(CMD, "cannot write %s: %s", a->out, strerror(errno));
		bad = 1;
	}
	if (!ok || bad)
		unlink(tmp);
	g_partial[0] = '\0'; /* renamed or removed: a signal now has nothing to remove */
	return ok && !bad ? 0 : EXIT_FAIL;
}

/* --remote: the server's answer into the output, as query_run's would be; the status. */
static int query_remote(struct query_args *a)
{
	char tmp[4096], err[QUERY_ERRBUF_SIZE];
	long http;
	int status = open_output(a, tmp, sizeof(tmp));
	if (status)
		return status;
	int r = remote_query(a->remote, &a->tls, &a->q, &http, err);
	if (r == REMOTE_E_REFUSED)
		cli_error(CMD, "%s: %s (HTTP %ld)", a->remote, err, http);
	else if (r)
		cli_error(CMD, "%s", err);
	status = close_output(a, tmp, r == 0);
	if (r && !status)
		status = EXIT_FAIL;
	return r == REMOTE_E_REFUSED && http == 400 ? EXIT_USAGE : status;
}

/* --fleet: every sensor's answer, merged, into the output; the status. */
static int query_fleet(struct query_args *a)
{
	struct fleet f;
	char tmp[4096];
	int status = fleet_load(CMD, a->fleet, &f);
	if (status)
		return status;
	if ((status = open_output(a, tmp, sizeof(tmp))) == 0) {
		int r = fleet_query(CMD, &f, &a->q, a->all_sensors);
		int kept =
		    r == EXIT_OK || r == EXIT_DAMAGED; /* partial (3): what the others hold */
		int c = close_output(a, tmp, kept);
		status = kept && c ? c : r;
	}
	fleet_free(&f);
	return status;
}

int query_main(int argc, char **argv)
{
	struct query_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r) {
		free(a.filter);
		free(a.cmdline);
		return r < 0 ? EXIT_OK : r;
	}
	if (a.remote || a.fleet) {
		r = a.remote ? query_remote(&a) : query_fleet(&a);
		free(a.filter);
		free(a.cmdline);
		return r;
	}
	struct archive *arch;
	if ((r = archive_open(a.archive, ARCHIVE_READ, &arch)) != 0) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		free(a.filter);
		free(a.cmdline);
		return EXIT_FAIL;
	}
	char tmp[4096], err[QUERY_ERRBUF_SIZE];
	struct query_result res = {0}; /* read only when query_run ran and succeeded */
	a.q.notices = stderr;
	a.q.notice_prefix = "flowscope query: ";
	int status = open_output(&a, tmp, sizeof(tmp));
	if (status == 0) {
		r = query_run(arch, &a.q, &res, err);
		if (r)
			cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		status = close_output(&a, tmp, r == 0);
		if (r && !status)
			status = EXIT_FAIL;
		if (r == QUERY_E_FILTER)
			status = EXIT_USAGE;
	}
	if (status == 0 && res.frames_damaged)
		status = EXIT_DAMAGED; /* the lines above said what was left out */
	if (status == 0 && !a.q.explain && res.limited)
		fprintf(stderr,
		        "flowscope query: stopped at the limit after %" PRIu64 " packets, %" PRIu64
		        " bytes; more packets match\n",
		        res.packets, res.bytes);
	else if (status == 0 && !a.q.explain && res.no_flow)
		fprintf(stderr,
		        "flowscope query: no flow with Community ID %s in the time range%s\n",
		        a.q.community_id,
		        a.q.format == QUERY_FORMAT_JSON ? ""
		                                        : " (the output is a valid empty capture)");
	else if (status == 0 && !a.q.explain && res.packets == 0)
		fprintf(stderr, "flowscope query: no packets matched%s\n",
		        a.q.format == QUERY_FORMAT_JSON ? ""
		                                        : " (the output is a valid empty capture)");
	archive_close(arch);
	free(a.filter);
	free(a.cmdline);
	return status;
}
