/*
 * flowscope record: the recording pipeline.
 *
 *   source thread:   ingest_source_run() -> QQ producer
 *   analyzer thread: QQ peek -> parse -> flow key -> flow table (annotates
 *                    each record with its flow hash)
 *   dumper thread:   QQ dequeue (above the high-water mark, or draining) ->
 *                    archive writer -> segments + index
 *   main thread:     status line every --stats-interval, signals, shutdown.
 *
 * Shutdown order is what keeps every packet: the source stops (end of file or
 * SIGINT/SIGTERM), its producer publishes its last chunk and closes, the
 * analyzer finishes every chunk, the QQ is drained to the dumper, the writer
 * closes its segment (seek table, sync, index commit).  A second signal exits
 * at once: the index is only ever changed by whole LMDB transactions that
 * point at synced data, so the archive stays valid; the open segment is left
 * for recovery.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "ingest/ingest.h"
#include "qq/qq.h"
#include "tools/cli.h"

#define CMD "record"
#define WAIT_MS 50

struct record_opts {
	const char *archive;
	const char *read;
	uint64_t qq_size;
	uint64_t qq_flush_ns;
	double qq_high_water;
	uint64_t segment_size;
	uint64_t segment_age_ns;
	uint64_t stats_ns;
	uint64_t max_flows;
	int zstd_level;
};

struct pipeline {
	struct record_opts o;
	struct qq *qq;
	struct ingest_source *src;
	struct ingest_source_info info;
	struct qq_producer *producer; /* opened before the threads start, closed by the source */
	struct archive *arch;
	struct archive_writer *writer;
	struct ft_table *flows;
	pthread_t t_src, t_ana, t_dump;
	int src_rc, ana_rc, dump_rc;
	char src_err[INGEST_ERRBUF_SIZE];
	char dump_err[512];
	atomic_int src_done;
	atomic_int failed;      /* a thread failed: stop everything */
	uint64_t dump_oversize; /* archive.writer.dropped_oversize (dumper thread) */
	uint64_t ana_packets;   /* analyzer thread only */
};

static volatile sig_atomic_t g_signals;
static struct ingest_source *volatile g_src;

static void on_signal(int sig)
{
	(void)sig;
	if (g_signals++ > 0) {
		static const char msg[] =
		    "flowscope record: second signal: exiting now; the archive "
		    "is valid up to its last commit\n";
		ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)w;
		_exit(130);
	}
	if (g_src)
		ingest_source_stop(g_src);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: flowscope record --archive DIR --read FILE [--capture all] [options]\n"
	        "  --archive DIR         archive directory (created if absent or empty)\n"
	        "  --read FILE           replay a pcap or pcapng file\n"
	        "  --capture all         archive every packet (the default)\n"
	        "  --qq-size SIZE        RAM ring size, K/M/G suffixes (default 512M)\n"
	        "  --qq-high-water PCT   dumpers take packets only above this fill (default 90)\n"
	        "  --qq-flush DUR        publish a partly filled chunk after this (default 1ms)\n"
	        "  --segment-size SIZE   rotate segments at this compressed size (default 256M)\n"
	        "  --segment-age DUR     rotate segments this old (default 60s)\n"
	        "  --zstd-level N        zstd level, -7..19 (default 1)\n"
	        "  --max-flows N         flow table size of the analyzer (default 262144)\n"
	        "  --stats-interval DUR  status line interval, 0 = off (default 5s)\n");
}

/* ---- option parsing ---------------------------------------------------------------------- */

static int parse_opt(struct record_opts *o, int c, const char *arg)
{
	uint64_t v;
	switch (c) {
	case 'a':
		o->archive = arg;
		return 0;
	case 'r':
		o->read = arg;
		return 0;
	case 'c':
		if (strcmp(arg, "all") == 0)
			return 0;
		cli_error(CMD,
		          "--capture %s: only 'all' is available (triggered capture needs "
		          "analysis modules, not built yet)",
		          arg);
		return EXIT_USAGE;
	case 'q':
		if (cli_parse_size(arg, &o->qq_size) == 0 && o->qq_size >= (2u << 20))
			return 0;
		cli_error(CMD, "--qq-size '%s': expected a size of at least 2M, e.g. 512M", arg);
		return EXIT_USAGE;
	case 'H':
		if (cli_parse_uint(arg, 1, 99, &v) == 0) {
			o->qq_high_water = (double)v / 100;
			return 0;
		}
		cli_error(CMD, "--qq-high-water '%s': expected a percentage, 1..99", arg);
		return EXIT_USAGE;
	case 'F':
		if (cli_parse_duration(arg, &o->qq_flush_ns) == 0 && o->qq_flush_ns >= 1000 &&
		    o->qq_flush_ns <= 10000000000ull)
			return 0;
		cli_error(CMD, "--qq-flush '%s': expected a duration from 1us to 10s", arg);
		return EXIT_USAGE;
	case 's':
		if (cli_parse_size(arg, &o->segment_size) == 0 && o->segment_size >= (1u << 20))
			return 0;
		cli_error(CMD, "--segment-size '%s': expected a size of at least 1M", arg);
		return EXIT_USAGE;
	case 'g':
		if (cli_parse_duration(arg, &o->segment_age_ns) == 0 &&
		    o->segment_age_ns >= 1000000000)
			return 0;
		cli_error(CMD, "--segment-age '%s': expected a duration of at least 1s", arg);
		return EXIT_USAGE;
	case 'z':
		if (arg[0] == '-' ? cli_parse_uint(arg + 1, 1, 7, &v) == 0
		                  : cli_parse_uint(arg, 1, 19, &v) == 0) {
			o->zstd_level = arg[0] == '-' ? -(int)v : (int)v;
			return 0;
		}
		cli_error(CMD, "--zstd-level '%s': expected -7..-1 or 1..19", arg);
		return EXIT_USAGE;
	case 'f':
		if (cli_parse_uint(arg, 1024, 1u << 28, &o->max_flows) == 0)
			return 0;
		cli_error(CMD, "--max-flows '%s': expected 1024..268435456", arg);
		return EXIT_USAGE;
	case 'i':
		if (cli_parse_duration(arg, &o->stats_ns) == 0)
			return 0;
		cli_error(CMD, "--stats-interval '%s': expected a duration such as 5s", arg);
		return EXIT_USAGE;
	}
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct record_opts *o)
{
	static const struct option longopts[] = {
	    {"archive", required_argument, NULL, 'a'},
	    {"read", required_argument, NULL, 'r'},
	    {"capture", required_argument, NULL, 'c'},
	    {"qq-size", required_argument, NULL, 'q'},
	    {"qq-high-water", required_argument, NULL, 'H'},
	    {"qq-flush", required_argument, NULL, 'F'},
	    {"segment-size", required_argument, NULL, 's'},
	    {"segment-age", required_argument, NULL, 'g'},
	    {"zstd-level", required_argument, NULL, 'z'},
	    {"max-flows", required_argument, NULL, 'f'},
	    {"stats-interval", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	*o = (struct record_opts){
	    .qq_size = 512u << 20, .stats_ns = 5000000000ull, .max_flows = 262144, .zstd_level = 1};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_usage_error(CMD, argv, optind, optopt);
		int r = parse_opt(o, c, optarg);
		if (r)
			return r;
	}
	if (optind < argc) {
		cli_error(CMD, "unexpected argument '%s' (see flowscope record --help)",
		          argv[optind]);
		return EXIT_USAGE;
	}
	if (!o->archive || !o->read) {
		cli_error(CMD, "%s is required (see flowscope record --help)",
		          !o->archive ? "--archive DIR" : "a source (--read FILE)");
		return EXIT_USAGE;
	}
	return 0;
}

/* ---- threads ------------------------------------------------------------------------------ */

static void *source_thread(void *arg)
{
	struct pipeline *pl = arg;
	pl->src_rc = ingest_source_run(pl->src, 0, pl->producer, pl->src_err);
	qq_producer_close(pl->producer); /* publishes the last chunk */
	pl->producer = NULL;
	atomic_store(&pl->src_done, 1);
	return NULL;
}

/* Flow tracking: every packet's bidirectional 5-tuple into the flow table. */
static void analyze_chunk(struct pipeline *pl, struct qq_chunk *c)
{
	uint32_t n = qq_chunk_count(c);
	for (uint32_t i = 0; i < n; i++) {
		struct qq_record *rec = qq_chunk_record(c, i);
		struct ft_packet pkt;
		struct ft_flow_key key;
		int dir, is_new;
		pl->ana_packets++;
		if (ft_parse(pl->info.linktype, rec->data, rec->caplen, &pkt) != 0 ||
		    ft_flow_key_from_packet(&pkt, FT_KEY_VLAN, &key, &dir) != 0)
			continue;
		uint64_t h = ft_flow_key_hash(&key);
		rec->flow_hash = (uint32_t)h;
		struct ft_flow *f = ft_table_lookup(pl->flows, &key, h, &is_new);
		if (is_new)
			f->first_ns = rec->ts_ns;
		f->last_ns = rec->ts_ns;
		f->packets[dir]++;
		f->bytes[dir] += rec->wirelen;
		f->tcp_flags[dir] |= pkt.tcp_flags;
	}
}

static void *analyzer_thread(void *arg)
{
	struct pipeline *pl = arg;
	for (;;) {
		struct qq_chunk *c;
		int r = qq_analyzer_next(pl->qq, 0, &c, WAIT_MS);
		if (r == QQ_E_TIMEDOUT)
			continue;
		if (r) {
			pl->ana_rc = r == QQ_E_DRAINED || r == QQ_E_STOPPED ? 0 : r;
			return NULL;
		}
		analyze_chunk(pl, c);
		qq_analyzer_done(pl->qq, c);
	}
}

static int dump_chunk(struct pipeline *pl, struct qq_chunk *c)
{
	uint32_t n = qq_chunk_count(c);
	for (uint32_t i = 0; i < n; i++) {
		const struct qq_record *rec = qq_chunk_record(c, i);
		int r = archive_writer_add(pl->writer, pl->info.linktype, pl->info.snaplen,
		                           rec->ts_ns, rec->caplen, rec->wirelen, rec->data);
		if (r == ARCHIVE_E_TOOBIG) {
			pl->dump_oversize++;
			continue;
		}
		if (r)
			return r;
	}
	return 0;
}

static void *dumper_thread(void *arg)
{
	struct pipeline *pl = arg;
	int r = 0;
	while (r == 0) {
		struct qq_chunk *c;
		r = qq_dumper_next(pl->qq, &c, WAIT_MS);
		if (r == QQ_E_TIMEDOUT) {
			r = archive_writer_tick(pl->writer, cli_mono_ns());
			continue;
		}
		if (r)
			break;
		r = dump_chunk(pl, c);
		qq_dumper_release(pl->qq, c);
	}
	if (r == QQ_E_DRAINED || r == QQ_E_STOPPED)
		r = 0;
	if (r) {
		snprintf(pl->dump_err, sizeof(pl->dump_err), "archive %s: %s", pl->o.archive,
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		atomic_store(&pl->failed, 1);
		qq_stop(pl->qq); /* nothing more can be stored: unblock everyone */
	}
	pl->dump_rc = r;
	return NULL;
}

/* ---- setup, status, shutdown ------------------------------------------------------------------ */

/* Chunks: a sixteenth of the ring, between 512 KiB (fits any packet) and 4 MiB. */
static size_t chunk_size_for(uint64_t qq_size)
{
	uint64_t c = qq_size / 16;
	c = c < (512u << 10) ? (512u << 10) : c > (4u << 20) ? (4u << 20) : c;
	return (size_t)(c & ~(uint64_t)4095);
}

static int pipeline_open(struct pipeline *pl)
{
	char err[INGEST_ERRBUF_SIZE];
	/* the source first: a bad input must fail before the archive is touched */
	int r = ingest_file_open(pl->o.read, 0, &pl->src, err);
	if (r) {
		cli_error(CMD, "%s", err);
		return EXIT_FAIL;
	}
	ingest_source_info(pl->src, &pl->info);
	struct qq_config qc = {.size = pl->o.qq_size,
	                       .chunk_size = chunk_size_for(pl->o.qq_size),
	                       .producers = 1,
	                       .analyzers = 1,
	                       .high_water = pl->o.qq_high_water,
	                       .flush_ns = pl->o.qq_flush_ns,
	                       .mode = QQ_MODE_BACKPRESSURE,
	                       .hugepages = 1};
	if ((r = qq_create(&qc, &pl->qq)) != 0) {
		if (r == QQ_E_NOMEM)
			cli_error(
			    CMD,
			    "--qq-size %.1f MiB: cannot have that much RAM (%.1f MiB available)",
			    (double)pl->o.qq_size / 1048576,
			    (double)qq_memory_available() / 1048576);
		else
			cli_error(CMD, "QQ: %s", qq_strerror(r));
		return EXIT_FAIL;
	}
	if ((r = qq_producer_open(pl->qq, 0, &pl->producer)) != 0) {
		cli_error(CMD, "QQ producer: %s", qq_strerror(r));
		return EXIT_FAIL;
	}
	if ((r = ft_table_create(pl->o.max_flows, 0, NULL, &pl->flows)) != 0) {
		cli_error(CMD, "flow table of %" PRIu64 " flows: %s", pl->o.max_flows,
		          ft_strerror(r));
		return EXIT_FAIL;
	}
	r = archive_open(pl->o.archive, ARCHIVE_WRITE | ARCHIVE_CREATE, &pl->arch);
	if (r == 0) {
		struct archive_writer_config wc = {.segment_size = pl->o.segment_size,
		                                   .segment_age_ns = pl->o.segment_age_ns,
		                                   .zstd_level = pl->o.zstd_level};
		r = archive_writer_create(pl->arch, &wc, &pl->writer);
	}
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		return EXIT_FAIL;
	}
	return 0;
}

static void status_line(struct pipeline *pl, uint64_t *last_pkts, uint64_t *last_bytes,
                        uint64_t dt_ns)
{
	struct ingest_stats is;
	struct qq_stats qs;
	ingest_source_stats(pl->src, &is);
	qq_stats(pl->qq, &qs);
	double dt = (double)dt_ns / 1e9;
	double window =
	    qs.newest_ns > qs.oldest_ns ? (double)(qs.newest_ns - qs.oldest_ns) / 1e9 : 0;
	fprintf(stderr,
	        "flowscope record: %s %" PRIu64 " pkts, %.0f pkt/s, %.1f Mbit/s | qq %.0f%% window "
	        "%.1fs drops %" PRIu64 " | drops: oversize %" PRIu64 "\n",
	        pl->info.kind, is.packets, (double)(is.packets - *last_pkts) / dt,
	        (double)(is.wire_bytes - *last_bytes) * 8 / dt / 1e6, qs.fill * 100, window,
	        qs.overwritten_packets + qs.dropped_packets, is.dropped_oversize);
	*last_pkts = is.packets;
	*last_bytes = is.wire_bytes;
}

/* Waits for the source to end (or fail, or a signal), printing status lines. */
static void wait_source(struct pipeline *pl)
{
	uint64_t last = cli_mono_ns(), lp = 0, lb = 0;
	while (!atomic_load(&pl->src_done) && !atomic_load(&pl->failed)) {
		usleep(WAIT_MS * 1000);
		uint64_t now = cli_mono_ns();
		if (pl->o.stats_ns && now - last >= pl->o.stats_ns) {
			status_line(pl, &lp, &lb, now - last);
			last = now;
		}
	}
	if (atomic_load(&pl->failed))
		ingest_source_stop(pl->src);
}

static void summary(struct pipeline *pl, double secs)
{
	struct ingest_stats is;
	struct archive_writer_stats ws;
	struct ft_table_stats fs;
	ingest_source_stats(pl->src, &is);
	archive_writer_stats(pl->writer, &ws);
	ft_table_stats(pl->flows, &fs);
	fprintf(stderr,
	        "flowscope record: read %" PRIu64 " packets (%" PRIu64 " bytes) from %s in %.2fs; "
	        "%" PRIu64 " flows\n",
	        is.packets, is.wire_bytes, pl->info.name, secs, fs.inserted);
	fprintf(stderr,
	        "flowscope record: archived %" PRIu64 " packets in %" PRIu64 " segment(s), %" PRIu64
	        " frames: %" PRIu64 " pcap bytes -> %" PRIu64 " compressed (ratio %.2f) in %s\n",
	        ws.packets, ws.segments, ws.frames, ws.record_bytes, ws.file_bytes,
	        ws.file_bytes ? (double)ws.record_bytes / (double)ws.file_bytes : 0.0,
	        pl->o.archive);
	if (is.truncated_records || is.dropped_oversize || pl->dump_oversize || fs.evicted)
		fprintf(stderr,
		        "flowscope record: counted: ingest.file.truncated_records %" PRIu64
		        ", ingest.file.dropped_oversize %" PRIu64
		        ", archive.writer.dropped_oversize %" PRIu64
		        ", flowtrack.table.evicted %" PRIu64 "\n",
		        is.truncated_records, is.dropped_oversize, pl->dump_oversize, fs.evicted);
}

static void pipeline_close(struct pipeline *pl)
{
	if (pl->writer) {
		int r = archive_writer_close(pl->writer);
		if (r && !pl->dump_rc) {
			pl->dump_rc = r;
			snprintf(pl->dump_err, sizeof(pl->dump_err), "archive %s: %s",
			         pl->o.archive,
			         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		}
	}
	archive_close(pl->arch);
	if (pl->producer)
		qq_producer_close(pl->producer);
	ft_table_destroy(pl->flows);
	qq_destroy(pl->qq);
	g_src = NULL;
	ingest_source_close(pl->src);
}

/* Runs the pipeline to the end; returns the exit status. */
static int pipeline_run(struct pipeline *pl)
{
	uint64_t t0 = cli_mono_ns();
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	fprintf(stderr, "flowscope record: QQ %.0f MiB, %u chunks of %zu KiB, %s pages\n",
	        (double)qs.capacity / 1048576, qs.chunks, chunk_size_for(pl->o.qq_size) >> 10,
	        qs.page_size >= (1u << 30)   ? "1 GiB huge"
	        : qs.page_size >= (2u << 20) ? "2 MiB huge"
	                                     : "normal (THP requested)");
	g_src = pl->src;
	if (pthread_create(&pl->t_src, NULL, source_thread, pl) ||
	    pthread_create(&pl->t_ana, NULL, analyzer_thread, pl) ||
	    pthread_create(&pl->t_dump, NULL, dumper_thread, pl)) {
		cli_error(CMD, "cannot start threads: %s", strerror(errno));
		_exit(EXIT_FAIL); /* threads that did start may be blocked in the QQ */
	}
	wait_source(pl);
	pthread_join(pl->t_src, NULL);
	pthread_join(pl->t_ana, NULL);
	qq_drain(pl->qq);
	pthread_join(pl->t_dump, NULL);
	if (pl->dump_rc == 0 && (pl->dump_rc = archive_writer_flush(pl->writer)) != 0)
		snprintf(pl->dump_err, sizeof(pl->dump_err), "archive %s: %s", pl->o.archive,
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(pl->dump_rc));
	double secs = (double)(cli_mono_ns() - t0) / 1e9;
	summary(pl, secs);
	return 0;
}

static void signals_install(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int record_main(int argc, char **argv)
{
	struct pipeline pl = {0};
	int r = parse_args(argc, argv, &pl.o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	signals_install();
	if ((r = pipeline_open(&pl)) == 0)
		r = pipeline_run(&pl);
	pipeline_close(&pl);
	if (r)
		return r;
	if (pl.dump_rc) {
		cli_error(CMD, "%s", pl.dump_err);
		return EXIT_FAIL;
	}
	if (pl.src_rc == INGEST_E_DAMAGED) {
		cli_error(CMD, "%s; the archive holds every packet before it", pl.src_err);
		return EXIT_DAMAGED;
	}
	if (pl.src_rc) {
		cli_error(CMD, "%s", pl.src_err[0] ? pl.src_err : ingest_strerror(pl.src_rc));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
