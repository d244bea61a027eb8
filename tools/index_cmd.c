/*
 * flowscope index: the archive's index against its segments.
 *
 *   verify   checks every index entry against the segment files, read-only
 *            (archive_verify): one line per problem on stdout, then a summary;
 *            exit 0 when the index matches, 3 when it does not
 *   rebuild  recreates the index from the segment files alone
 *            (archive_rebuild): its actions on stderr, a summary on stdout;
 *            SIGINT, SIGTERM or SIGHUP stop it before its next segment file,
 *            its new index removed, the old one unchanged (exit 128 + signal;
 *            a second signal kills it at once: the next rebuild cleans up)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "archive/archive.h"
#include "tools/cli.h"

#define CMD "index"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: flowscope index verify --archive DIR [--workers N]\n"
	        "       flowscope index rebuild --archive DIR [--workers N]\n"
	        "  verify   check every index entry against the segment files (read-only);\n"
	        "           exit 0: the index matches, 3: it does not (one line per problem)\n"
	        "  rebuild  recreate the index from the segment files alone\n"
	        "  --workers N  rebuild: threads indexing segment files (default: one per CPU);\n"
	        "               verify: 1 keeps it on one thread (default: frames are read on a\n"
	        "               second thread when there is more than one CPU)\n");
}

/*
 * Parses `--archive DIR` (and, when workers is not NULL, `--workers N`) after the
 * subcommand; EXIT_OK with *dir, -1 (--help done), or EXIT_USAGE.
 */
static int parse_args(const char *cmd, int argc, char **argv, const char **dir, unsigned *workers)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"workers", required_argument, NULL, 'W'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	uint64_t w;
	*dir = NULL;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'a') {
			*dir = optarg;
		} else if (c == 'W' && workers) {
			if (cli_parse_uint(optarg, 1, 64, &w) != 0) {
				cli_error(cmd,
				          "--workers '%s': expected a thread count from 1 to 64",
				          optarg);
				return EXIT_USAGE;
			}
			*workers = (unsigned)w;
		} else if (c == 'h') {
			usage(stdout);
			return -1;
		} else {
			return cli_usage_error(cmd, argv, optind, optopt);
		}
	}
	if (optind < argc) {
		cli_error(cmd, "unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!*dir) {
		cli_error(cmd, "--archive DIR is required");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The error that stopped a command, one line naming the archive. */
static void report_error(const char *cmd, const char *dir, int r)
{
	const char *msg = archive_errmsg();
	if (msg[0])
		cli_error(cmd, "%s", msg);
	else
		cli_error(cmd, "%s: %s", dir, archive_strerror(r));
}

static void log_stdout(const char *line, void *arg)
{
	(void)arg;
	printf("%s\n", line);
}

static void log_stderr(const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "flowscope index: %s\n", line);
}

static int verify_main(int argc, char **argv)
{
	const char *cmd = "index verify", *dir;
	unsigned workers = 0;
	int r = parse_args(cmd, argc, argv, &dir, &workers);
	if (r != EXIT_OK)
		return r < 0 ? EXIT_OK : r;
	struct archive *a = NULL;
	struct archive_verify_stats st;
	if ((r = archive_open(dir, ARCHIVE_READ, &a)) == 0)
		r = archive_verify(a, workers, log_stdout, NULL, &st);
	if (r) {
		fflush(stdout);
		report_error(cmd, dir, r);
		archive_close(a);
		return EXIT_FAIL;
	}
	archive_close(a);
	printf("index verify: %" PRIu64 " segments, %" PRIu64 " frames, %" PRIu64
	       " packets, %" PRIu64 " flow records checked: ",
	       st.segments, st.frames, st.packets, st.flows);
	if (st.problems)
		printf("%" PRIu64 " problem%s", st.problems, st.problems == 1 ? "" : "s");
	else
		printf("OK");
	if (st.unindexed_frames)
		printf("; %" PRIu64 " whole frames after the index in open segments",
		       st.unindexed_frames);
	if (st.orphan_files)
		printf("; %" PRIu64
		       " empty open segment file%s never indexed (left by a killed recorder; "
		       "the next record removes %s)",
		       st.orphan_files, st.orphan_files == 1 ? "" : "s",
		       st.orphan_files == 1 ? "it" : "them");
	if (st.stale_rebuild)
		printf(
		    "; %s/index.rebuild is left from an index rebuild that was killed (nothing in "
		    "it is used: the next flowscope index rebuild removes it, or remove it)",
		    dir);
	if (st.dropped_files)
		printf("; %" PRIu64
		       " segment file%s retention dropped from the index before a crash "
		       "(the next record removes %s)",
		       st.dropped_files, st.dropped_files == 1 ? "" : "s",
		       st.dropped_files == 1 ? "it" : "them");
	printf("\n");
	return st.problems ? EXIT_DAMAGED : EXIT_OK;
}

static volatile sig_atomic_t g_stop_signal;

/* The first signal asks the rebuild to stop in order; the handler then resets: a second one
 * kills (the next rebuild removes what that leaves). */
static void on_stop_signal(int sig)
{
	g_stop_signal = sig;
	archive_rebuild_stop();
}

/* SIGINT, SIGTERM and SIGHUP stop the rebuild in order, unless ignored (nohup, a background
 * job's SIGINT): then they could not end it anyway. */
static void stop_signals_install(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
}

static int rebuild_main(int argc, char **argv)
{
	const char *cmd = "index rebuild", *dir;
	unsigned workers = 0;
	int r = parse_args(cmd, argc, argv, &dir, &workers);
	if (r != EXIT_OK)
		return r < 0 ? EXIT_OK : r;
	struct archive_rebuild_stats st;
	memset(&st, 0, sizeof(st));
	stop_signals_install();
	if ((r = archive_rebuild(dir, workers, log_stderr, NULL, &st)) != 0) {
		report_error(cmd, dir, r);
		return r == -EINTR && g_stop_signal ? 128 + g_stop_signal : EXIT_FAIL;
	}
	printf("index rebuild: %" PRIu64 " segments, %" PRIu64 " frames, %" PRIu64
	       " packets, %" PRIu64 " flow records indexed",
	       st.segments, st.frames, st.packets, st.flows);
	if (st.bytes_cut)
		printf("; %" PRIu64 " bytes of incomplete frames cut", st.bytes_cut);
	printf("\n");
	return EXIT_OK;
}

int index_main(int argc, char **argv)
{
	if (argc < 2) {
		cli_error(CMD, "a subcommand is required: verify or rebuild (see flowscope index "
		               "--help)");
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "rebuild") == 0)
		return rebuild_main(argc - 1, argv + 1);
	cli_error(CMD, "unknown subcommand '%s': verify or rebuild (see flowscope index --help)",
	          argv[1]);
	return EXIT_USAGE;
}
