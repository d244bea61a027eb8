/*
 * flowscope serve: an archive, read only, over HTTP(S) (docs/api.md).  This
 * file parses the options and wires the query library's server
 * (query_api_start); the server is all in query/api*.c.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked before the server's threads
 * start (they inherit the mask) and taken by sigwait() here: the first one
 * stops the server (running queries end, connections close), exit 0.
 * SIGPIPE is ignored (a client gone is an error on its connection only).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "tools/cli.h"
#include "tools/config.h"
#include "tools/counters.h"

#define CMD "serve"
#define SERVE_CONFIG 'f' /* getopt value of --config */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flowscope serve --archive DIR --listen ADDR:PORT [--tls-cert FILE "
	    "--tls-key FILE [--client-ca FILE]] [limits]\n"
	    "  --config FILE  read options from FILE's [serve] section (docs/config.md);\n"
	    "              the command line overrides it\n"
	    "  --listen ADDR:PORT  numeric address ([ADDR6]:PORT for IPv6); port 0 picks a\n"
	    "              free one (printed); plain HTTP only on a loopback address\n"
	    "  --tls-cert FILE, --tls-key FILE  PEM certificate (chain) and key: HTTPS, TLS 1.2+\n"
	    "  --client-ca FILE  PEM CA: clients need a certificate it signed (mutual TLS)\n"
	    "  --max-queries N  queries at once, more are answered 429 (default 4)\n"
	    "  --max-connections N  connections at once (default 64)\n"
	    "  --per-ip-connections N  connections at once from one address (default 16)\n"
	    "  --idle-timeout D  close a connection idle this long (default 30s)\n"
	    "  --query-timeout D  cut a query off after this long (default 10m)\n"
	    "  --max-answer-bytes SIZE  end every answer before SIZE bytes, as limit_bytes\n"
	    "              (whole packets, a valid file; default: no bound)\n");
}

/* A count option in [1, 65535]; 0 or EXIT_USAGE. */
static int parse_count(const char *name, const char *arg, unsigned *out)
{
	uint64_t v;
	if (cli_parse_uint(arg, 1, 65535, &v) != 0) {
		cli_error(CMD, "%s '%s': expected a whole number from 1 to 65535", name, arg);
		return EXIT_USAGE;
	}
	*out = (unsigned)v;
	return 0;
}

/* A duration option in whole seconds, at least 1; 0 or EXIT_USAGE. */
static int parse_seconds(const char *name, const char *arg, unsigned *out)
{
	uint64_t ns;
	if (cli_parse_duration(arg, &ns) != 0 || ns < 1000000000ull || ns / 1000000000ull > 86400) {
		cli_error(CMD, "%s '%s': expected a duration from 1s to 1d, such as 30s or 10m",
		          name, arg);
		return EXIT_USAGE;
	}
	*out = (unsigned)(ns / 1000000000ull);
	return 0;
}

static int parse_limit(int c, const char *arg, struct query_api_config *cfg)
{
	switch (c) {
	case 'q':
		return parse_count("--max-queries", arg, &cfg->max_queries);
	case 'm':
		return parse_count("--max-connections", arg, &cfg->max_connections);
	case 'p':
		return parse_count("--per-ip-connections", arg, &cfg->per_ip_connections);
	case 'i':
		return parse_seconds("--idle-timeout", arg, &cfg->idle_timeout_s);
	case 'B':
		if (cli_parse_size(arg, &cfg->max_answer_bytes) == 0 &&
		    cfg->max_answer_bytes >= 1024)
			return 0;
		cli_error(CMD,
		          "--max-answer-bytes '%s': expected a size of at least 1K, such as 1G",
		          arg);
		return EXIT_USAGE;
	default:
		return parse_seconds("--query-timeout", arg, &cfg->query_timeout_s);
	}
}

static const struct option longopts[] = {
    {"archive", required_argument, NULL, 'a'},
    {"listen", required_argument, NULL, 'l'},
    {"tls-cert", required_argument, NULL, 'c'},
    {"tls-key", required_argument, NULL, 'k'},
    {"client-ca", required_argument, NULL, 'C'},
    {"max-queries", required_argument, NULL, 'q'},
    {"max-connections", required_argument, NULL, 'm'},
    {"per-ip-connections", required_argument, NULL, 'p'},
    {"idle-timeout", required_argument, NULL, 'i'},
    {"query-timeout", required_argument, NULL, 't'},
    {"max-answer-bytes", required_argument, NULL, 'B'},
    {"config", required_argument, NULL, SERVE_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option; its error line names the config file's line when it came from there (elem:
   the argv element getopt_long just read). */
static int parse_opt(int c, const char *elem, const struct config_argv *file, const char **dir,
                     struct query_api_config *cfg)
{
	char where[PATH_MAX + 32];
	int r = 0;
	if (c == 'a')
		*dir = optarg;
	else if (c == 'l')
		cfg->listen = optarg;
	else if (c == 'c')
		cfg->tls_cert = optarg;
	else if (c == 'k')
		cfg->tls_key = optarg;
	else if (c == 'C')
		cfg->client_ca = optarg;
	else if (c != SERVE_CONFIG) { /* the file is read by config_argv_build() */
		cli_error_where(config_argv_where(file, elem, where, sizeof(where)));
		r = parse_limit(c, optarg, cfg);
		cli_error_where(NULL);
	}
	return r;
}

/* The options (--config FILE's first, the command line's over them): 0, -1 after --help, or
   an exit status (printed).  The values point into argv or file's strings. */
static int parse_args(int argc, char **argv, struct config_argv *file, const char **dir,
                      struct query_api_config *cfg)
{
	const struct config_spec spec = {
	    .cmd = CMD, .longopts = longopts, .config_val = SERVE_CONFIG};
	int c, r = config_argv_build(&spec, argc, argv, file);
	if (r)
		return r;
	argc = file->argc;
	argv = file->argv;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h')
			return usage(stdout), -1;
		if (!strchr("alckCqmpitBf", c) || c == ':' || c == '?')
			return cli_usage_error(CMD, argv, optind, optopt);
		if ((r = parse_opt(c, argv[optind - 1], file, dir, cfg)) != 0)
			return r;
	}
	if (optind < argc) {
		cli_error(CMD, "unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!*dir || !cfg->listen) {
		cli_error(CMD,
		          "--archive DIR and --listen ADDR:PORT are required (see flowscope serve "
		          "--help)");
		return EXIT_USAGE;
	}
	if (!cfg->tls_cert != !cfg->tls_key || (cfg->client_ca && !cfg->tls_cert)) {
		cli_error(CMD, "%s",
		          cfg->client_ca && !cfg->tls_cert
		              ? "--client-ca needs --tls-cert and --tls-key"
		              : "--tls-cert and --tls-key go together");
		return EXIT_USAGE;
	}
	return 0;
}

/* The final report: one line of name=value counters (docs/api.md, "Counters"). */
static void print_counters(const struct query_api_counters *n)
{
	static const char *const le[QUERY_API_LATENCY_BUCKETS] = {"10ms", "100ms", "1s", "10s",
	                                                          "60s"};
	printf("flowscope serve: api.requests=%" PRIu64 " api.responses_2xx=%" PRIu64
	       " api.responses_4xx=%" PRIu64 " api.responses_5xx=%" PRIu64
	       " api.refused_busy=%" PRIu64 " api.aborted=%" PRIu64 " api.queries=%" PRIu64
	       " api.query_bytes=%" PRIu64 " api.query_ns=%" PRIu64,
	       n->requests, n->responses_2xx, n->responses_4xx, n->responses_5xx, n->refused_busy,
	       n->aborted, n->queries, n->query_bytes, n->query_ns);
	for (int i = 0; i < QUERY_API_LATENCY_BUCKETS; i++)
		printf(" api.query_le_%s=%" PRIu64, le[i], n->query_le[i]);
	printf("\n");
	fflush(stdout);
}

/* GET /metrics: the archive's gauges and last run (tools/metrics.c), then the server's own
   counters (set once it started: a request can come before query_api_start returns). */
struct serve_metrics {
	struct archive *archive;
	_Atomic(struct query_api *) api;
};

static int serve_metrics(void *arg, char **text, size_t *len)
{
	struct serve_metrics *m = arg;
	struct query_api *api = atomic_load(&m->api);
	struct query_api_counters n;
	FILE *f = open_memstream(text, len);
	if (!f)
		return *text = NULL, -ENOMEM;
	int r = counters_prometheus_archive_now(f, m->archive, 1);
	if (r == 0 && api) {
		query_api_counters(api, &n);
		counters_prometheus_api(f, &n);
	}
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r) {
		free(*text);
		*text = NULL;
	}
	return r;
}

/* Serves until a signal; 0, or EXIT_FAIL when the server cannot start. */
static int serve(struct archive *a, const struct query_api_config *opts)
{
	struct query_api_config c = *opts, *cfg = &c; /* with the archive and metrics added */
	sigset_t stop;
	int sig;
	char err[QUERY_ERRBUF_SIZE];
	struct query_api *api;
	struct serve_metrics m = {.archive = a};
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	cfg->archive = a;
	cfg->parse_time = cli_parse_time_now;
	cfg->metrics = serve_metrics;
	cfg->metrics_arg = &m;
	int r = query_api_start(cfg, &api, err);
	if (r) {
		cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		return EXIT_FAIL;
	}
	atomic_store(&m.api, api);
	const char *colon = strrchr(cfg->listen, ':');
	printf("flowscope serve: listening on %s://%.*s:%u\n", cfg->tls_cert ? "https" : "http",
	       (int)(colon - cfg->listen), cfg->listen, query_api_port(api));
	fflush(stdout);
	while (sigwait(&stop, &sig) != 0)
		;
	struct query_api_counters n;
	query_api_stop_counted(api, &n);
	print_counters(&n);
	return EXIT_OK;
}

int serve_main(int argc, char **argv)
{
	struct query_api_config cfg = {0};
	struct config_argv file;
	const char *dir = NULL;
	int r = parse_args(argc, argv, &file, &dir, &cfg);
	if (r) {
		config_argv_free(&file);
		return r < 0 ? EXIT_OK : r;
	}
	struct archive *a;
	if ((r = archive_open(dir, ARCHIVE_READ, &a)) != 0) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		config_argv_free(&file);
		return EXIT_FAIL;
	}
	r = serve(a, &cfg);
	archive_close(a);
	config_argv_free(&file);
	return r;
}
