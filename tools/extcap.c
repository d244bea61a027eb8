/*
 * flowscope extcap: Wireshark's external-capture interface (extcap(4)) to the
 * archive behind a `flowscope serve` or `flowscope record --listen`, so that it
 * is one more interface in Wireshark's and tshark's list (docs/cli.md).
 *
 * Wireshark runs the program in its extcap directory (a two-line script that
 * runs `flowscope extcap "$@"`) to ask for its interfaces, their link types
 * and options, then with --capture --fifo PATH and the options the user set.
 * "Capturing" is the query's pcap answer (tools/remote.c, the client of
 * `flowscope query --remote`) written into the FIFO; with --follow the query is
 * asked again and again from the last packet's time onward, as tail -f, and
 * only what the FIFO has not had yet is passed on.
 *
 * The answers pass through a filter of the pcap stream (tools/extcap.h):
 * one file header, then each record once.
 *
 * It ends with status 0 when the answer is whole (without --follow), when
 * Wireshark closes the FIFO (EPIPE, or the FIFO's error state while waiting)
 * or sends SIGTERM/SIGINT; otherwise with one line on stderr (which Wireshark
 * shows): 2 for a usage error or the server's 400 (an invalid filter), as
 * query --remote; 1 when the server refuses otherwise or cannot be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/extcap.h"
#include "tools/remote.h"

#define CMD "extcap"
#define EXTCAP_IFACE "flowscope"
#define EXTCAP_FOLLOW_MS 1000 /* --follow: the pause between two queries */

enum extcap_mode { MODE_NONE, MODE_INTERFACES, MODE_DLTS, MODE_CONFIG, MODE_CAPTURE };

struct extcap_args {
	enum extcap_mode mode;
	const char *iface;
	const char *fifo;
	const char *capture_filter; /* --extcap-capture-filter: Wireshark's capture filter box */
	const char *filter;         /* --filter: the interface's option */
	const char *remote;
	struct remote_tls tls;
	uint64_t from_ns, to_ns;
	int follow;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flowscope extcap --extcap-interfaces | --extcap-dlts | --extcap-config\n"
	    "       flowscope extcap --capture --extcap-interface flowscope --fifo PATH\n"
	    "                        --remote URL [--cert FILE --key FILE] [--cacert FILE]\n"
	    "                        [--filter FILTER] [--from T] [--to T] [--follow]\n"
	    "  Wireshark's extcap interface (run by Wireshark from its extcap directory;\n"
	    "  docs/cli.md)\n"
	    "  --extcap-interfaces  the interface, flowscope\n"
	    "  --extcap-version=V   Wireshark's version, given with it: ignored\n"
	    "  --extcap-dlts        its link type (with --extcap-interface flowscope)\n"
	    "  --extcap-config      its options, as arg lines\n"
	    "  --capture            write the answer into --fifo PATH as a pcap\n"
	    "  --extcap-interface I the interface asked about: flowscope\n"
	    "  --fifo PATH          where the capture goes (Wireshark's FIFO)\n"
	    "  --extcap-capture-filter F  Wireshark's capture filter, and-ed with --filter\n"
	    "  --remote URL         https://HOST:PORT of 'flowscope serve' or 'record --listen'\n"
	    "  --cert FILE, --key FILE  PEM client certificate and key\n"
	    "  --cacert FILE        PEM CA that signed the server's certificate (default: the "
	    "system's)\n"
	    "  --filter FILTER      a libpcap filter expression (as for tcpdump)\n"
	    "  --from T, --to T     the time range, as for flowscope query\n"
	    "  --follow             then keep asking for newer packets, as tail -f (not with "
	    "--to)\n");
}

/* ---- the protocol's answers ---------------------------------------------------------------- */

static void print_interfaces(void)
{
	printf("extcap {version=%s}{display=flowscope}\n", FLOWSCOPE_VERSION);
	printf("interface {value=" EXTCAP_IFACE
	       "}{display=flowscope archive (query over HTTPS)}\n");
}

/*
 * The answers' link type is only known from their file header, which Wireshark reads from
 * the FIFO and follows: this line is what most archives hold (GET /api/v1/info does not say).
 */
static void print_dlts(void)
{
	printf("dlt {number=1}{name=EN10MB}{display=Ethernet}\n");
}

static void print_config(void)
{
	static const char *const args[] = {
	    "{call=--remote}{display=Server URL}{type=string}{required=true}"
	    "{tooltip=https://HOST:PORT of flowscope serve or flowscope record --listen}"
	    "{validation=^https?://}{group=Server}",
	    "{call=--cert}{display=Client certificate}{type=fileselect}{mustexist=true}"
	    "{tooltip=PEM client certificate the server's --client-ca signed}{group=Server}",
	    "{call=--key}{display=Client key}{type=fileselect}{mustexist=true}"
	    "{tooltip=PEM key of the client certificate}{group=Server}",
	    "{call=--cacert}{display=Server CA}{type=fileselect}{mustexist=true}"
	    "{tooltip=PEM CA that signed the server's certificate (empty: the system's)}"
	    "{group=Server}",
	    "{call=--filter}{display=Filter}{type=string}"
	    "{tooltip=libpcap filter expression, as for tcpdump (empty: every packet)}"
	    "{group=Query}",
	    "{call=--from}{display=From}{type=string}"
	    "{tooltip=first packet time: 2026-11-27T14:02:00Z, epoch seconds, now, 15m ago}"
	    "{group=Query}",
	    "{call=--to}{display=To}{type=string}"
	    "{tooltip=end of the range, exclusive (empty: the newest packet)}{group=Query}",
	    "{call=--follow}{display=Follow new packets}{type=boolflag}{default=false}"
	    "{tooltip=keep asking for newer packets, as tail -f (a recorder; not with To)}"
	    "{group=Query}",
	};
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
		printf("arg {number=%zu}%s\n", i, args[i]);
}

/* ---- options ------------------------------------------------------------------------------- */

static int parse_time_opt(const char *name, const char *arg, uint64_t *out)
{
	int r = arg[0] ? cli_parse_time(arg, cli_now_ns(), out) : 0; /* empty: none */
	if (r == 0)
		return 0;
	cli_time_error(CMD, name, arg, r);
	return EXIT_USAGE;
}

static int set_mode(struct extcap_args *a, enum extcap_mode m)
{
	if (a->mode != MODE_NONE && a->mode != m) {
		cli_error(CMD, "--extcap-interfaces, --extcap-dlts, --extcap-config and --capture "
		               "exclude each other");
		return EXIT_USAGE;
	}
	a->mode = m;
	return 0;
}

/* An option Wireshark leaves empty is as if not given. */
static const char *nonempty(const char *s)
{
	return s && s[0] ? s : NULL;
}

static int parse_opt(struct extcap_args *a, int c, const char *arg)
{
	switch (c) {
	case 'I':
		return set_mode(a, MODE_INTERFACES);
	case 'D':
		return set_mode(a, MODE_DLTS);
	case 'C':
		return set_mode(a, MODE_CONFIG);
	case 'c':
		return set_mode(a, MODE_CAPTURE);
	case 'V':
		return 0; /* --extcap-version=V: Wireshark's; the answer is the same */
	case 'i':
		a->iface = arg;
		return 0;
	case 'o':
		a->fifo = arg;
		return 0;
	case 'g':
		a->capture_filter = nonempty(arg);
		return 0;
	case 'r':
		a->remote = nonempty(arg);
		return 0;
	case 'T':
		a->tls.cert = nonempty(arg);
		return 0;
	case 'K':
		a->tls.key = nonempty(arg);
		return 0;
	case 'A':
		a->tls.cacert = nonempty(arg);
		return 0;
	case 'q':
		a->filter = nonempty(arg);
		return 0;
	case 'f':
		return parse_time_opt("--from", arg, &a->from_ns);
	case 't':
		return parse_time_opt("--to", arg, &a->to_ns);
	case 'F':
		a->follow = 1;
		return 0;
	}
	return EXIT_USAGE;
}

static int check_capture_args(const struct extcap_args *a)
{
	const char *why = NULL;
	if (!a->fifo)
		why = "--capture needs --fifo PATH";
	else if (!a->remote)
		why = "--capture needs --remote URL (the server: https://HOST:PORT)";
	else if (!a->tls.cert != !a->tls.key)
		why = "--cert and --key go together";
	else if (a->to_ns && a->from_ns >= a->to_ns)
		why = "--from is not before --to: the time range is empty";
	else if (a->follow && a->to_ns)
		why = "--follow follows new packets: it has no --to";
	if (why)
		cli_error(CMD, "%s", why);
	return why ? EXIT_USAGE : 0;
}

/* 0, EXIT_USAGE, or -1 for --help. */
static int parse_args(int argc, char **argv, struct extcap_args *a)
{
	static const struct option longopts[] = {
	    {"extcap-interfaces", no_argument, NULL, 'I'},
	    {"extcap-dlts", no_argument, NULL, 'D'},
	    {"extcap-config", no_argument, NULL, 'C'},
	    {"capture", no_argument, NULL, 'c'},
	    {"extcap-version", optional_argument, NULL, 'V'},
	    {"extcap-interface", required_argument, NULL, 'i'},
	    {"fifo", required_argument, NULL, 'o'},
	    {"extcap-capture-filter", required_argument, NULL, 'g'},
	    {"remote", required_argument, NULL, 'r'},
	    {"cert", required_argument, NULL, 'T'},
	    {"key", required_argument, NULL, 'K'},
	    {"cacert", required_argument, NULL, 'A'},
	    {"filter", required_argument, NULL, 'q'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"follow", no_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, r;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_usage_error(CMD, argv, optind, optopt);
		if ((r = parse_opt(a, c, optarg)) != 0)
			return r;
	}
	if (optind < argc) {
		cli_error(CMD, "unexpected argument '%s' (flowscope extcap --help)", argv[optind]);
		return EXIT_USAGE;
	}
	if (a->mode == MODE_NONE) {
		cli_error(CMD, "one of --extcap-interfaces, --extcap-dlts, --extcap-config or "
		               "--capture is required (flowscope extcap --help)");
		return EXIT_USAGE;
	}
	if (a->mode != MODE_INTERFACES && (!a->iface || strcmp(a->iface, EXTCAP_IFACE) != 0)) {
		cli_error(CMD, "--extcap-interface '%s': the interface is " EXTCAP_IFACE,
		          a->iface ? a->iface : "");
		return EXIT_USAGE;
	}
	return a->mode == MODE_CAPTURE ? check_capture_args(a) : 0;
}

/* ---- capture ------------------------------------------------------------------------------- */

static void on_stop(int sig)
{
	(void)sig;
	_exit(EXIT_OK); /* Wireshark stops the capture: what was written is what it wanted */
}

/* Waits the pause between two --follow queries; 1 when the FIFO's reader is gone. */
static int follow_wait(FILE *fifo)
{
	struct pollfd p = {.fd = fileno(fifo), .events = 0};
	int r = poll(&p, 1, EXTCAP_FOLLOW_MS); /* a pipe's writer sees POLLERR once readers left */
	return r > 0 && (p.revents & (POLLERR | POLLHUP));
}

/* The query's filter: --filter and Wireshark's capture filter, both when both are given. */
static char *query_filter(const struct extcap_args *a)
{
	char *f = NULL;
	if (a->filter && a->capture_filter) {
		if (asprintf(&f, "(%s) and (%s)", a->filter, a->capture_filter) < 0)
			return NULL;
		return f;
	}
	return strdup(a->filter ? a->filter : a->capture_filter ? a->capture_filter : "");
}

/* The queries into the stream; the exit status. */
static int capture_loop(const struct extcap_args *a, struct extcap_stream *s, FILE *out,
                        char *filter)
{
	struct query_options q = {.filter = filter,
	                          .from_ns = a->from_ns,
	                          .to_ns = a->to_ns,
	                          .format = QUERY_FORMAT_PCAP,
	                          .out = out};
	char err[QUERY_ERRBUF_SIZE];
	long http;
	for (;;) {
		extcap_stream_begin(s);
		int r = remote_query(a->remote, &a->tls, &q, &http, err);
		if (r != 0 && s->reader_gone)
			return EXIT_OK;
		if (r == REMOTE_E_REFUSED)
			cli_error(CMD, "%s: %s (HTTP %ld)", a->remote, err, http);
		else if (r == QUERY_E_OUTPUT && s->err[0])
			cli_error(CMD, "%s", s->err);
		else if (r != 0)
			cli_error(CMD, "%s", err);
		if (r != 0)
			return r == REMOTE_E_REFUSED && http == 400 ? EXIT_USAGE : EXIT_FAIL;
		if (!a->follow || follow_wait(s->fifo))
			return EXIT_OK;
		if (s->at_last)
			q.from_ns = s->last_ns;
	}
}

static int capture(const struct extcap_args *a)
{
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a closed FIFO is EPIPE, the end of the capture */
	struct extcap_stream s = {0};
	char *filter = query_filter(a);
	s.fifo = fopen(a->fifo, "we"); /* waits for Wireshark to open its end */
	if (!s.fifo || !filter) {
		cli_error(CMD, "cannot write %s: %s", a->fifo,
		          filter ? strerror(errno) : "no memory");
		if (s.fifo)
			fclose(s.fifo);
		free(filter);
		return EXIT_FAIL;
	}
	FILE *out = extcap_stream_open(&s);
	int status = EXIT_FAIL;
	if (out)
		status = capture_loop(a, &s, out, filter);
	else
		cli_error(CMD, "cannot make the stream: %s", strerror(errno));
	/* the status is decided: Wireshark's SIGTERM on the FIFO's end must not make it 0 */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	if (out)
		fclose(out);
	if (fclose(s.fifo) != 0 && status == EXIT_OK && errno != EPIPE)
		status = EXIT_FAIL;
	free(filter);
	return status;
}

int extcap_main(int argc, char **argv)
{
	struct extcap_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? EXIT_OK : r;
	switch (a.mode) {
	case MODE_INTERFACES:
		print_interfaces();
		break;
	case MODE_DLTS:
		print_dlts();
		break;
	case MODE_CONFIG:
		print_config();
		break;
	default:
		return capture(&a);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
