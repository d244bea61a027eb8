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
#include "tools/listen.h"

#define CMD "serve"
#define SERVE_CONFIG 'f' /* getopt value of --config */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: flowscope serve --archive DIR --listen ADDR:PORT [--tls-cert FILE "
	        "--tls-key FILE [--client-ca FILE]] [limits]\n"
	        "  --config FILE  read options from FILE's [serve] section (docs/config.md);\n"
	        "              the command line overrides it\n"
	        "%s",
	        listen_usage);
}

static const struct option longopts[] = {
    {"archive", required_argument, NULL, 'a'},
    LISTEN_LONGOPTS,
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
	else if (c != SERVE_CONFIG) { /* the file is read by config_argv_build() */
		cli_error_where(config_argv_where(file, elem, where, sizeof(where)));
		r = listen_parse_opt(CMD, c, optarg, cfg);
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
		if ((c != 'a' && c != SERVE_CONFIG && !strchr(LISTEN_OPT_LETTERS, c)) || c == ':' ||
		    c == '?')
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
	return listen_check(CMD, cfg);
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
