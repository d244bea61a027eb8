/*
 * flowscope info: what an archive holds: time range, segments, packets,
 * bytes on the wire / as pcap / compressed, flows, and the index size.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "tools/cli.h"
#include "tools/counters.h"

#define CMD "info"

static void human(uint64_t b, char *buf, size_t len)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void print_summary(const char *dir, unsigned format, const struct archive_summary *s)
{
	char t0[48], t1[48], h1[32], h2[32], h3[32], h4[32];
	printf("archive:    %s (format %u)\n", dir, format);
	if (s->packets) {
		printf("time range: %s .. %s (%.3f s)\n",
		       cli_format_time(s->min_ns, t0, sizeof(t0)),
		       cli_format_time(s->max_ns, t1, sizeof(t1)),
		       (double)(s->max_ns - s->min_ns) / 1e9);
	} else {
		printf("time range: (empty)\n");
	}
	printf("segments:   %" PRIu64 " (%" PRIu64 " open), %" PRIu64 " frames\n", s->segments,
	       s->segments_open, s->frames);
	printf("packets:    %" PRIu64 "\n", s->packets);
	human(s->wire_bytes, h1, sizeof(h1));
	human(s->record_bytes, h2, sizeof(h2));
	human(s->file_bytes, h3, sizeof(h3));
	printf("bytes:      %" PRIu64 " on the wire (%s); %" PRIu64 " captured as pcap (%s); "
	       "%" PRIu64 " stored compressed (%s); ratio %.2f\n",
	       s->wire_bytes, h1, s->record_bytes, h2, s->file_bytes, h3,
	       s->file_bytes ? (double)s->record_bytes / (double)s->file_bytes : 0.0);
	printf("flows:      %" PRIu64 " (flow records, one per flow per segment)\n",
	       s->flow_records);
	char h5[32];
	human(s->index_used, h4, sizeof(h4));
	human(s->index_bytes, h5, sizeof(h5));
	printf("index:      %" PRIu64 " bytes in use (%s), %.2f%% of stored segment bytes; "
	       "file %s\n",
	       s->index_used, h4,
	       s->file_bytes ? 100.0 * (double)s->index_used / (double)s->file_bytes : 0.0, h5);
}

/* --metrics: 0, or 1 with a line on stderr (out of memory). */
static int print_metrics(const struct archive_summary *s, const char *last_run)
{
	char err[256] = "out of memory";
	if (counters_prometheus_archive(stdout, s, last_run, err, sizeof(err)) != 0) {
		cli_error(CMD, "the last run's counters: %s", err);
		return 1;
	}
	return 0;
}

/* The recorder's final counters of the last run, as it printed them. */
static void print_last_run(const char *text)
{
	if (!text)
		return;
	printf("last run:\n");
	for (const char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		printf("  %.*s\n", (int)(nl ? nl - line : (long)strlen(line)), line);
		if (!nl)
			break;
	}
}

int info_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"metrics", no_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	int c, metrics = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'a') {
			dir = optarg;
		} else if (c == 'm') {
			metrics = 1;
		} else if (c == 'h') {
			printf("usage: flowscope info --archive DIR [--metrics]\n"
			       "  --metrics   the archive's size and the last run's counters in\n"
			       "              Prometheus's text format (docs/counters.md)\n");
			return EXIT_OK;
		} else {
			return cli_usage_error(CMD, argv, optind, optopt);
		}
	}
	if (!dir || optind < argc) {
		cli_error(
		    CMD, optind < argc ? "unexpected argument '%s'" : "--archive DIR is required%s",
		    optind < argc ? argv[optind] : "");
		return EXIT_USAGE;
	}
	struct archive *a = NULL;
	struct archive_rtxn *t = NULL;
	struct archive_summary s;
	int r = archive_open(dir, ARCHIVE_READ, &a);
	char *last_run = NULL;
	if (r == 0 && (r = archive_rtxn_begin(a, &t)) == 0 && (r = archive_summary(t, &s)) == 0)
		r = archive_run_report(t, &last_run);
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	} else if (metrics) {
		r = print_metrics(&s, last_run);
	} else {
		print_summary(dir, archive_format(a), &s);
		print_last_run(last_run);
	}
	int status = r ? EXIT_FAIL : cli_check_segment_files(CMD, a, t, dir) ? EXIT_DAMAGED : 0;
	free(last_run);
	archive_rtxn_end(t);
	archive_close(a);
	return status;
}
