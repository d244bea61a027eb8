/*
 * flowscope record: the command line, the status line, the final report and
 * signal handling around the pipeline of record_pipeline.c.
 *
 * Signals: the first SIGINT/SIGTERM/SIGHUP asks every source queue to stop; the
 * pipeline then drains (see record_pipeline.c) and the command exits 0.  A
 * second signal exits at once: the index is only ever changed by whole LMDB
 * transactions that point at synced data, so the archive stays valid; the
 * open segment is left for recovery.
 *
 * The final counters are printed and also stored in the archive as its
 * last-run report, so `flowscope info` shows the same figures later.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/query.h"
#include "tools/cli.h"
#include "tools/counters.h"
#include "tools/listen.h"
#include "tools/privdrop.h"
#include "tools/record.h"
#include "tools/service.h"

#define CMD "record"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flowscope record --archive DIR SOURCE [--capture all|triggered] [options]\n"
	    "SOURCE, exactly one of:\n"
	    "  --read FILE           replay a pcap or pcapng file ('-' = stdin)\n"
	    "  --dpdk 'EAL ARGS'     a DPDK port (NIC or vdev), e.g. '-l 0 --vdev net_pcap0,...'\n"
	    "  --afpacket IFACE      AF_PACKET TPACKET_V3 rings with fanout\n"
	    "  --live IFACE          libpcap live capture\n"
	    "options:\n"
	    "  --archive DIR         archive directory (created if absent or empty)\n"
	    "  --capture MODE        all: every packet (the default); triggered: only the\n"
	    "                        flows a module, --trigger, an API trigger (--listen)\n"
	    "                        or an alert (--eve) triggered, with their packets\n"
	    "                        still in the ring from before the trigger\n"
	    "  --module M            analysis module: noop, stats, ttl, threshold:..., PATH.so\n"
	    "                        (C) or PATH.lua (Lua), [:ARGS] (repeatable;\n"
	    "                        docs/modules.md)\n"
	    "  --trigger BPF         trigger the flows of packets matching the expression\n"
	    "                        (repeatable)\n"
	    "  --strict-modules      a runtime error in a Lua module ends record\n"
	    "  --port N              DPDK port id (default 0)\n"
	    "  --rx-queues N         RX queues for --dpdk / --afpacket (default 1)\n"
	    "  --replay-speed X      --read at recorded speed times X (default: flat out)\n"
	    "  --analyzers N         analyzer threads (default: one per RX queue)\n"
	    "  --dumpers N           dumper threads, each compressing into its own segment\n"
	    "                        (default 2, 1 on a single core)\n"
	    "  --qq-size SIZE        RAM ring size, K/M/G suffixes (default 512M)\n"
	    "  --qq-high-water PCT   dumpers take packets only above this fill, 0 = at once\n"
	    "                        (default 90 with modules or triggers, else 0)\n"
	    "  --qq-flush DUR        publish a partly filled chunk after this (default 1ms)\n"
	    "  --qq-hold-max DUR     packets leave the ring for the archive at the latest\n"
	    "                        this long after arriving, ring full or not (default\n"
	    "                        60s with modules, 1s without, none for --read flat\n"
	    "                        out; 0 = no limit)\n"
	    "  --segment-size SIZE   rotate segments at this compressed size (default 256M)\n"
	    "  --segment-age DUR     rotate segments this old (default 60s)\n"
	    "  --max-disk SIZE       retention: keep the archive (segments and index) under\n"
	    "                        SIZE, dropping the oldest segments; at least\n"
	    "                        4 x dumpers x --segment-size\n"
	    "  --max-age DUR         retention: drop segments whose packets are older (30d)\n"
	    "  --pin-triggered       with --capture all: retention keeps the segments that\n"
	    "                        hold triggered flows, dropping them last (for room,\n"
	    "                        never for age)\n"
	    "  --zstd-level N        zstd level, -7..-1 (fast) or 1..19 (default -2)\n"
	    "  --archive-group GROUP let GROUP read the archive, also while it records\n"
	    "  --max-flows N         flow table size per analyzer (default 262144)\n"
	    "  --status-interval DUR status line interval, 0 = off (default 5s;\n"
	    "                        --stats-interval is its old name)\n"
	    "  --listen ADDR:PORT    serve the HTTP API (docs/api.md) from the recorder:\n"
	    "                        queries of the archive as it records, /healthz,\n"
	    "                        /metrics (the live counters)\n"
	    "  --tls-cert FILE, --tls-key FILE, --client-ca FILE, --max-queries N,\n"
	    "  --max-connections N, --per-ip-connections N, --idle-timeout D,\n"
	    "  --query-timeout D, --max-answer-bytes SIZE\n"
	    "                        for --listen, as for flowscope serve (see its --help)\n"
	    "  --eve FILE            follow an IDS's alert log (Suricata EVE JSON, Zeek's\n"
	    "                        notice.log as JSON) as tail -F: every alert triggers\n"
	    "                        its flow, with its packets still in the ring\n"
	    "                        (docs/triggers.md)\n"
	    "  --eve-from-start      read the log's present lines too (default: its end)\n"
	    "  --eve-filter TEXT     only alerts that pass, e.g. 'severity<=2' or\n"
	    "                        'sid!=2200000-2299999' (several: all must hold)\n"
	    "  --ipfix HOST:PORT     export the flows to an IPFIX collector over UDP\n"
	    "                        (nfcapd, nfacctd; docs/ipfix.md)\n"
	    "  --ipfix-active-timeout DUR\n"
	    "                        a long flow's record is sent after this (default 60s)\n"
	    "  --ipfix-idle-timeout DUR\n"
	    "                        a flow this long without a packet ends (default 15s)\n"
	    "  --flow-export clickhouse://HOST:PORT/DB.TABLE\n"
	    "                        send every closed segment's flow records to ClickHouse\n"
	    "                        (and the counters to DB.TABLE_counters; docs/clickhouse.md)\n"
	    "  --sensor NAME         the rows' sensor name (default: the host name)\n"
	    "  --flow-export-interval DUR\n"
	    "                        how often to send (default 10s)\n"
	    "  --config FILE         read these options from FILE, key = value lines\n"
	    "                        (archive = DIR); the command line overrides it\n"
	    "                        (docs/config.md, flowscope.conf(5))\n"
	    "  --user NAME           parse packets and write the archive as NAME, after the\n"
	    "                        source and archive are open as root (default for root:\n"
	    "                        the flowscope user if it exists; root = keep root)\n");
}

/* ---- options ------------------------------------------------------------------------------ */

static int bad(const char *opt, const char *arg, const char *want)
{
	cli_error(CMD, "%s '%s': expected %s", opt, arg, want);
	return EXIT_USAGE;
}

static int parse_qq_opt(struct record_opts *o, int c, const char *arg)
{
	uint64_t v;
	switch (c) {
	case 'q':
		if (cli_parse_size(arg, &o->qq_size) == 0 && o->qq_size >= (2u << 20))
			return 0;
		return bad("--qq-size", arg, "a size of at least 2M, e.g. 512M");
	case 'H':
		if (cli_parse_uint(arg, 0, 99, &v) != 0)
			return bad("--qq-high-water", arg, "a percentage, 0..99");
		o->qq_high_water = v ? (double)v / 100 : QQ_NO_HOLD;
		return 0;
	case 'F':
		if (cli_parse_duration(arg, &o->qq_flush_ns) == 0 && o->qq_flush_ns >= 1000 &&
		    o->qq_flush_ns <= 10000000000ull)
			return 0;
		return bad("--qq-flush", arg, "a duration from 1us to 10s");
	case 'J':
		if (cli_parse_duration(arg, &o->qq_hold_max_ns) == 0 &&
		    (o->qq_hold_max_ns == 0 || o->qq_hold_max_ns >= 1000000000ull))
			return 0;
		return bad("--qq-hold-max", arg, "a duration of at least 1s, or 0 (no limit)");
	}
	return -1;
}

/* --archive-group: a group name or number; its members may read the archive while it
 * records (archive_share), so new files must be group-readable whatever the umask. */
static int parse_group(struct record_opts *o, const char *arg)
{
	uint64_t v;
	struct group *g = getgrnam(arg);
	if (g)
		o->archive_gid = (long)g->gr_gid;
	else if (cli_parse_uint(arg, 0, UINT32_MAX - 1, &v) == 0)
		o->archive_gid = (long)v;
	else
		return bad("--archive-group", arg, "a group name or number");
	mode_t m = umask(0);
	umask(m & ~(mode_t)(S_IRGRP | S_IXGRP));
	return 0;
}

static int parse_archive_opt(struct record_opts *o, int c, const char *arg)
{
	uint64_t v;
	switch (c) {
	case 's':
		if (cli_parse_size(arg, &o->segment_size) == 0 && o->segment_size >= (1u << 20))
			return 0;
		return bad("--segment-size", arg, "a size of at least 1M");
	case 'g':
		if (cli_parse_duration(arg, &o->segment_age_ns) == 0 &&
		    o->segment_age_ns >= 1000000000)
			return 0;
		return bad("--segment-age", arg, "a duration of at least 1s");
	case 'X': /* its least value depends on --dumpers and --segment-size: check_args */
		if (cli_parse_size(arg, &o->max_disk) == 0 && o->max_disk > 0)
			return 0;
		return bad("--max-disk", arg, "a size, e.g. 500G");
	case 'Y':
		if (cli_parse_duration(arg, &o->max_age_ns) == 0 && o->max_age_ns >= 1000000000)
			return 0;
		return bad("--max-age", arg, "a duration of at least 1s, e.g. 30d");
	case 'z':
		if (arg[0] == '-' ? cli_parse_uint(arg + 1, 1, 7, &v) != 0
		                  : cli_parse_uint(arg, 1, 19, &v) != 0)
			return bad("--zstd-level", arg, "-7..-1 or 1..19");
		o->zstd_level = arg[0] == '-' ? -(int)v : (int)v;
		return 0;
	case 'G':
		return parse_group(o, arg);
	case 'O':
		return o->pin_triggered = 1, 0;
	case 'c':
		if (strcmp(arg, "all") == 0 || strcmp(arg, "triggered") == 0) {
			o->triggered = arg[0] == 't';
			return 0;
		}
		return bad("--capture", arg, "all or triggered");
	}
	return -1;
}

/* --ipfix and its timeouts; -1 when c is not one of them. */
static int parse_ipfix_opt(struct record_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'x':
		return record_ipfix_parse(o, arg);
	case 'u':
		if (cli_parse_duration(arg, &o->ipfix_active_ns) == 0 &&
		    o->ipfix_active_ns >= 1000000000ull)
			return 0;
		return bad("--ipfix-active-timeout", arg, "a duration of at least 1s");
	case 'y':
		if (cli_parse_duration(arg, &o->ipfix_idle_ns) == 0 &&
		    o->ipfix_idle_ns >= 1000000000ull)
			return 0;
		return bad("--ipfix-idle-timeout", arg, "a duration of at least 1s");
	}
	return -1;
}

/* --eve and its options; -1 when c is not one of them. */
static int parse_eve_opt(struct record_opts *o, int c, const char *arg)
{
	char err[256];
	switch (c) {
	case 'e':
		return o->eve = arg, 0;
	case 'R':
		return o->eve_from_start = 1, 0;
	case 'v': /* terms add up: all must hold */
		if (ingest_eve_filter_parse(&o->eve_filter, arg, err, sizeof(err)) == 0)
			return 0;
		cli_error(CMD, "--eve-filter '%s': %s (see docs/triggers.md)", arg, err);
		return EXIT_USAGE;
	}
	return -1;
}

static int parse_opt(struct record_opts *o, int c, const char *arg)
{
	int r;
	if ((r = capture_parse_opt(o, CMD, c, arg)) >= 0 || (r = parse_qq_opt(o, c, arg)) >= 0 ||
	    (r = parse_archive_opt(o, c, arg)) >= 0)
		return r;
	if ((r = listen_parse_opt(CMD, c, arg, &o->api)) >= 0 ||
	    (r = parse_eve_opt(o, c, arg)) >= 0 || (r = parse_ipfix_opt(o, c, arg)) >= 0 ||
	    (r = record_flowexport_parse(o, c, arg)) >= 0)
		return r;
	switch (c) {
	case 'a':
		o->archive = arg;
		return 0;
	case 'd':
		return cli_parse_uint(arg, 1, RECORD_MAX_DUMPERS, &o->dumpers)
		           ? bad("--dumpers", arg, "1..16")
		           : 0;
	}
	return EXIT_USAGE;
}

static const struct option longopts[] = {
    {"archive", required_argument, NULL, 'a'},
    {"read", required_argument, NULL, 'r'},
    {"dpdk", required_argument, NULL, 'D'},
    {"afpacket", required_argument, NULL, 'A'},
    {"live", required_argument, NULL, 'L'},
    {"port", required_argument, NULL, 'p'},
    {"rx-queues", required_argument, NULL, 'Q'},
    {"replay-speed", required_argument, NULL, 'S'},
    {"analyzers", required_argument, NULL, 'n'},
    {"dumpers", required_argument, NULL, 'd'},
    {"capture", required_argument, NULL, 'c'},
    {"module", required_argument, NULL, 'M'},
    {"trigger", required_argument, NULL, 'T'},
    {"qq-size", required_argument, NULL, 'q'},
    {"qq-high-water", required_argument, NULL, 'H'},
    {"qq-flush", required_argument, NULL, 'F'},
    {"qq-hold-max", required_argument, NULL, 'J'},
    {"segment-size", required_argument, NULL, 's'},
    {"segment-age", required_argument, NULL, 'g'},
    {"max-disk", required_argument, NULL, 'X'},
    {"max-age", required_argument, NULL, 'Y'},
    {"pin-triggered", no_argument, NULL, 'O'},
    {"archive-group", required_argument, NULL, 'G'},
    {"zstd-level", required_argument, NULL, 'z'},
    {"max-flows", required_argument, NULL, 'f'},
    {"stats-interval", required_argument, NULL, 'i'},
    {"status-interval", required_argument, NULL, 'i'},
    {"strict-modules", no_argument, NULL, 'E'},
    {"config", required_argument, NULL, CAPTURE_CONFIG},
    {"user", required_argument, NULL, 'U'},
    LISTEN_LONGOPTS,
    {"eve", required_argument, NULL, 'e'},
    {"eve-from-start", no_argument, NULL, 'R'},
    {"eve-filter", required_argument, NULL, 'v'},
    {"ipfix", required_argument, NULL, 'x'},
    {"ipfix-active-timeout", required_argument, NULL, 'u'},
    {"ipfix-idle-timeout", required_argument, NULL, 'y'},
    {"flow-export", required_argument, NULL, RECORD_OPT_FLOW_EXPORT},
    {"sensor", required_argument, NULL, RECORD_OPT_SENSOR},
    {"flow-export-interval", required_argument, NULL, RECORD_OPT_FLOW_EXPORT_INTERVAL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int check_args(const struct record_opts *o)
{
	if (!o->archive) {
		cli_error(CMD, "--archive DIR is required (see flowscope record --help)");
		return EXIT_USAGE;
	}
	int r = capture_check_opts(o, CMD);
	if (r)
		return r;
	if ((r = listen_check(CMD, &o->api)) != 0)
		return r;
	if ((o->ipfix_active_ns || o->ipfix_idle_ns) && !o->ipfix) {
		cli_error(
		    CMD,
		    "--ipfix-active-timeout and --ipfix-idle-timeout are for --ipfix HOST:PORT");
		return EXIT_USAGE;
	}
	if ((o->sensor || o->flow_export_ns) && !o->flow_export) {
		cli_error(CMD, "--sensor and --flow-export-interval are for --flow-export URL");
		return EXIT_USAGE;
	}
	if ((o->eve_from_start || o->eve_filter) && !o->eve) {
		cli_error(CMD, "--eve-from-start and --eve-filter are for --eve FILE");
		return EXIT_USAGE;
	}
	if (o->pin_triggered && (o->triggered || (!o->max_disk && !o->max_age_ns))) {
		cli_error(CMD,
		          "--pin-triggered is for --capture all with retention (--max-disk or "
		          "--max-age): in triggered capture every segment holds triggered flows");
		return EXIT_USAGE;
	}
	if (o->triggered && o->nmodules == 0 && !o->api.listen && !o->eve) {
		cli_error(CMD, "--capture triggered needs --trigger BPF, --module M, --listen "
		               "(POST /api/v1/trigger) or --eve FILE");
		return EXIT_USAGE;
	}
	/* each dumper's open segment grows to --segment-size and cannot be dropped, the index
	   takes a little more: a budget below a few segments per dumper would drop everything */
	uint64_t seg = o->segment_size ? o->segment_size : RECORD_SEGMENT_SIZE;
	uint64_t dumpers = o->dumpers ? (uint64_t)o->dumpers : record_default_dumpers();
	if (o->max_disk && o->max_disk < 4 * dumpers * seg) {
		cli_error(CMD,
		          "--max-disk %" PRIu64 "%s is too small for %" PRIu64
		          " dumper(s) writing segments of up to %" PRIu64
		          "M: give at least %" PRIu64 "M (4 x dumpers x --segment-size), or a "
		          "smaller --segment-size or fewer --dumpers",
		          o->max_disk % (1u << 20) ? o->max_disk : o->max_disk >> 20,
		          o->max_disk % (1u << 20) ? " bytes" : "M", dumpers, seg >> 20,
		          (4 * dumpers * seg + (1u << 20) - 1) >> 20);
		return EXIT_USAGE;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct record_opts *o)
{
	*o = (struct record_opts){.qq_size = 512u << 20,
	                          .stats_ns = 5000000000ull,
	                          .max_flows = 262144,
	                          .rx_queues = 1,
	                          .qq_high_water = HIGH_WATER_DEFAULT,
	                          .qq_hold_max_ns = HOLD_MAX_DEFAULT,
	                          .zstd_level = -2,
	                          .archive_gid = -1};
	int r = capture_getopt(argc, argv, CMD, longopts, parse_opt, usage, o);
	return r ? r : check_args(o);
}

/* ---- status line and report ------------------------------------------------------------------- */

static void status_line(void *arg, FILE *f, struct capture_rates *last, double dt)
{
	struct record_pipeline *pl = arg;
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	capture_status_source(f, pl->src, &pl->info, last, dt);
	double window =
	    qs.newest_ns > qs.oldest_ns ? (double)(qs.newest_ns - qs.oldest_ns) / 1e9 : 0;
	int full = 0;
	for (unsigned i = 0; i < pl->ndumpers; i++)
		full |= atomic_load_explicit(&pl->dump[i].full, memory_order_relaxed);
	fprintf(f, " | qq %.0f%% window %.1fs drops %" PRIu64 "%s", qs.fill * 100, window,
	        qs.overwritten_packets + qs.dropped_packets,
	        full ? " | disk full, not storing" : "");
}

/*
 * The threads the watchdog vouches for: every analyzer and dumper (a module
 * that hangs, a write that never returns).  Before they start.
 */
static void watch_threads(struct record_pipeline *pl, struct service_watch *w)
{
	service_watch_init(w, cli_mono_ns());
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		service_watch_add(w, &pl->ana[i].beat);
	for (unsigned i = 0; i < pl->ndumpers; i++)
		service_watch_add(w, &pl->dump[i].beat);
}

/* Waits for the sources to end (or fail, or a signal), printing status lines and pinging
 * the watchdog (service.h) while every analyzer and dumper comes round. */
static void wait_sources(struct record_pipeline *pl, struct capture_loop *l)
{
	l->cmd = CMD;
	l->running = &pl->queues_running;
	l->failed = &pl->failed;
	l->mods = pl->mods;
	l->status_ns = pl->o.stats_ns;
	l->status = status_line;
	l->arg = pl;
	capture_wait(l);
	ingest_source_stop(pl->src); /* a failure, or one queue ended: stop them all */
}

/* READY=1 for the service manager: the source is open, the archive recovered, the threads
 * run. */
static void ready(const struct record_pipeline *pl)
{
	char status[512];
	snprintf(status, sizeof(status), "recording %s %s into %s", pl->info.kind, pl->info.name,
	         pl->o.archive);
	service_ready(status);
}

/* STOPPING=1: the sources stopped; what is left in the ring goes to the archive. */
static void stopping(struct record_pipeline *pl)
{
	char what[128], status[160];
	snprintf(what, sizeof(what), "sources stopped; draining %" PRIu64 " packets from the ring",
	         record_pipeline_pending(pl));
	snprintf(status, sizeof(status), "stopping: %s", what);
	service_stopping(status);
	if (capture_signalled()) /* the drain may take a while: say what it waits for */
		cli_info(CMD, "signal: %s (a second signal exits at once, losing them)", what);
}

/* The trigger line (record --listen, --eve) and the alert log's (--eve). */
static void report_triggers(FILE *f, struct record_pipeline *pl)
{
	struct counters_trigger c;
	struct counters_eve e;
	if (!pl->trig)
		return;
	record_trigger_counters(pl, &c);
	counters_print_line(f, "trigger", counters_trig, counters_trig_n, &c);
	if (!pl->eve)
		return;
	record_eve_counters(pl, &e);
	counters_print_line(f, "eve", counters_eve, counters_eve_n, &e);
}

static void report_modules(FILE *f, struct record_pipeline *pl)
{
	report_triggers(f, pl);
	if (!pl->mods && !pl->trig)
		return;
	if (pl->mods)
		capture_report_modules(f, &pl->o, pl->mods, pl->ana, pl->nanalyzers);
	struct counters_dumper c = {.rules_added = atomic_load(&pl->triggers)};
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		c.triggered_packets += pl->dump[i].selected;
		c.unselected_packets += pl->dump[i].skipped;
	}
	counters_print_line(f, "dumper", counters_dump, counters_dump_n, &c);
}

/* The dumpers' writers' counters added up (unstored_*, full_events, packets ... commits;
 * io and io_direct of any, io_max_inflight the largest). */
void record_writer_add(struct archive_writer_stats *ws, const struct archive_writer_stats *d)
{
	ws->unstored_packets += d->unstored_packets;
	ws->unstored_bytes += d->unstored_bytes;
	ws->full_events += d->full_events;
	ws->packets += d->packets;
	ws->wire_bytes += d->wire_bytes;
	ws->commits += d->commits;
	ws->segments += d->segments;
	ws->frames += d->frames;
	ws->record_bytes += d->record_bytes;
	ws->file_bytes += d->file_bytes;
	ws->io = d->io;
	ws->io_direct |= d->io_direct;
	if (d->io_max_inflight > ws->io_max_inflight)
		ws->io_max_inflight = d->io_max_inflight;
}

static void writer_totals(const struct record_pipeline *pl, struct archive_writer_stats *ws)
{
	*ws = (struct archive_writer_stats){0};
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		struct archive_writer_stats d = pl->dump[i].final;
		if (pl->dump[i].writer)
			archive_writer_stats(pl->dump[i].writer, &d);
		record_writer_add(ws, &d);
	}
}

/* The archive writers' line: their counters, then how they write (not counters). */
static void report_writer(FILE *f, const struct record_pipeline *pl)
{
	struct counters_writer c = {0};
	writer_totals(pl, &c.w);
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		c.dropped_oversize += pl->dump[i].oversize;
		c.dropped_time += pl->dump[i].untimed;
	}
	counters_print_line(f, "archive.writer", counters_archive, counters_archive_n, &c);
	fprintf(f, "archive.writer: %u dumper(s), io %s%s, compression ratio %.2f\n", pl->ndumpers,
	        c.w.io ? c.w.io : "-", c.w.io_direct ? " O_DIRECT" : "",
	        c.w.file_bytes ? (double)c.w.record_bytes / (double)c.w.file_bytes : 0.0);
}

/*
 * The final counters (docs/counters.md): a human line about the run, then
 * lines of name=value counters, one line per component.
 */
static void report_write(FILE *f, struct record_pipeline *pl, double secs, const char *ended)
{
	char t0[48], t1[48];
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	fprintf(f, "run: %s .. %s (%.2f s), %s %s, %u queue(s), %u analyzer(s), ended: %s%s%s\n",
	        cli_format_time(pl->t_start_ns, t0, sizeof(t0)),
	        cli_format_time(cli_now_ns(), t1, sizeof(t1)), secs, pl->info.kind, pl->info.name,
	        pl->info.queues, pl->nanalyzers, ended, pl->info.ts_note ? "; " : "",
	        pl->info.ts_note ? pl->info.ts_note : "");
	capture_report_ingest(f, pl->src, &pl->info);
	counters_print_line(f, "qq", counters_qq, counters_qq_n, &qs);
	capture_report_flows(f, pl->ana, pl->nanalyzers);
	report_modules(f, pl);
	if (pl->o.ipfix) {
		struct counters_ipfix c;
		record_ipfix_counters(pl, &c);
		counters_print_line(f, "ipfix", counters_ipfix, counters_ipfix_n, &c);
	}
	report_writer(f, pl);
	if (pl->fx) {
		struct counters_flow_export c;
		record_flowexport_counters(pl, &c);
		counters_print_line(f, "flow_export", counters_fx, counters_fx_n, &c);
	}
	if (pl->o.max_disk || pl->o.max_age_ns) {
		struct counters_retention r = {.dropped_segments = pl->ret_segments,
		                               .dropped_bytes = pl->ret_bytes,
		                               .archive_bytes = pl->ret_usage};
		counters_print_line(f, "retention", counters_ret, counters_ret_n, &r);
	}
}

/* Prints the report on stderr and keeps it in the archive for `flowscope info`. */
static void report(struct record_pipeline *pl, double secs, const char *ended)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	if (!m)
		return;
	report_write(m, pl, secs, ended);
	fclose(m);
	capture_print_lines(stderr, CMD, text);
	if (pl->arch && archive_set_run_report(pl->arch, text) != 0)
		cli_error(CMD, "cannot store the run report: %s", archive_errmsg());
	free(text);
}

static void print_qq(const struct record_pipeline *pl)
{
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	double hw = record_high_water(pl);
	char hold[96] = "archived at once (no module looks back)";
	uint64_t hold_max = record_hold_max(pl);
	if (hw != QQ_NO_HOLD && hold_max)
		snprintf(hold, sizeof(hold), "held until %.0f %% full or for %.0f s", hw * 100,
		         (double)hold_max / 1e9);
	else if (hw != QQ_NO_HOLD)
		snprintf(hold, sizeof(hold), "held until %.0f %% full", hw * 100);
	cli_info(CMD, "QQ %.0f MiB, %u chunks of %zu KiB, %s pages; packets %s",
	         (double)qs.capacity / 1048576, qs.chunks, record_chunk_size(pl->o.qq_size) >> 10,
	         qs.page_size >= (1u << 30)   ? "1 GiB huge"
	         : qs.page_size >= (2u << 20) ? "2 MiB huge"
	                                      : "normal (THP requested)",
	         hold);
}

/*
 * A file that could not be stored whole (a full disk): one line saying how
 * much and why, and EXIT_UNSTORED, so that a batch import learns of it.  Live
 * sources go on through a full disk as through their other drops: counted in
 * the report, exit 0.
 */
static int unstored_status(const struct record_pipeline *pl)
{
	struct archive_writer_stats ws;
	writer_totals(pl, &ws);
	if (!pl->o.read || ws.unstored_packets == 0)
		return 0;
	cli_error(CMD,
	          "archive %s: %" PRIu64 " packets (%" PRIu64 " bytes) of %s could not be stored: "
	          "the disk was full (%" PRIu64 " times); %" PRIu64
	          " of its packets were stored and the archive is consistent; make room (or "
	          "record with --max-disk) before recording more",
	          pl->o.archive, ws.unstored_packets, ws.unstored_bytes, pl->o.read, ws.full_events,
	          ws.packets);
	return EXIT_UNSTORED;
}

/*
 * Packets whose times an archive cannot hold: before 1970 or after 2554
 * (refused by the file source: ns in a u64), after 2106-02-07 (refused by the
 * writer: a pcap record's seconds are u32).  Counted, never stored wrong:
 * one line, and 1 (exit status 3) when there were any.
 */
static int report_untimed(struct record_pipeline *pl)
{
	struct ingest_stats st;
	ingest_source_stats(pl->src, -1, &st);
	uint64_t n = st.dropped_time;
	for (unsigned i = 0; i < pl->ndumpers; i++)
		n += pl->dump[i].untimed;
	if (n)
		cli_error(CMD,
		          "%s: %" PRIu64 " packets not stored: their times are outside what an "
		          "archive holds (1970-01-01T00:00:00Z .. 2106-02-07T06:28:15.999999999Z); "
		          "every other packet is archived",
		          pl->info.name, n);
	return n != 0;
}

/* Did a source end on damaged input (rather than at its end)? */
static int input_damaged(const struct record_pipeline *pl)
{
	for (unsigned q = 0; q < pl->info.queues; q++)
		if (pl->queue[q].rc == INGEST_E_DAMAGED)
			return 1;
	return 0;
}

/*
 * The exit status: the first failure, else packets not stored for a full
 * disk (4), else damaged input or packets not stored for their times (3),
 * else 0.
 */
static int exit_status(struct record_pipeline *pl, int module_fatal, int untimed)
{
	int damaged = untimed;
	if (pl->dump_rc) {
		cli_error(CMD, "%s", pl->dump_err);
		return EXIT_FAIL;
	}
	for (unsigned q = 0; q < pl->info.queues; q++) {
		const struct record_queue *rq = &pl->queue[q];
		int r = capture_queue_status(CMD, rq->rc, rq->err,
		                             "the archive holds every packet before it", &damaged);
		if (r)
			return r;
	}
	if (module_fatal) {
		cli_error(CMD,
		          "stopped: a module failed with --strict-modules (its error is above); "
		          "the archive is closed and holds what was captured until then");
		return EXIT_FAIL;
	}
	int r = unstored_status(pl);
	if (r)
		return r;
	return damaged ? EXIT_DAMAGED : EXIT_OK;
}

/* ---- the API from the recorder (--listen) ---------------------------------------------------- */

/*
 * The API on the recorder's archive, opened as the command starts (its TLS files read and
 * its port bound before the privilege drop); 0 (or nothing asked), or EXIT_FAIL (said).
 */
static int api_open(struct record_pipeline *pl, struct query_api **api)
{
	char err[QUERY_ERRBUF_SIZE];
	struct query_api_config c = pl->o.api; /* the options, with the recorder's parts */
	c.archive = pl->arch;
	c.query_workers = 1; /* a query takes one core at most from the capture (nice 19 too) */
	c.parse_time = cli_parse_time_now;
	c.health = record_health;
	c.health_arg = pl;
	c.metrics = record_metrics;
	c.metrics_arg = pl;
	c.trigger = record_trigger;
	c.trigger_arg = pl;
	*api = NULL;
	if (!pl->o.api.listen)
		return 0;
	int r = query_api_open(&c, api, err);
	if (r) {
		cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		return EXIT_FAIL;
	}
	return 0;
}

/* Serving starts after the drop: the server's threads hold no capability either. */
static int api_serve(struct record_pipeline *pl, struct query_api *api)
{
	char err[QUERY_ERRBUF_SIZE];
	if (!api)
		return 0;
	int r = query_api_serve(api, err);
	if (r) {
		cli_error(CMD, "%s", err[0] ? err : query_strerror(r));
		return EXIT_FAIL;
	}
	atomic_store(&pl->api, api);
	const char *listen = pl->o.api.listen, *colon = strrchr(listen, ':');
	cli_log_to(stderr, CLI_INFO, CMD, "API listening on %s://%.*s:%u",
	           pl->o.api.tls_cert ? "https" : "http", (int)(colon - listen), listen,
	           query_api_port(api));
	return 0;
}

static int record_run(struct record_pipeline *pl, const struct privdrop *pd);

int record_main(int argc, char **argv)
{
	struct record_pipeline pl = {0};
	struct privdrop pd;
	int r = parse_args(argc, argv, &pl.o);
	if (r == 0 && (r = privdrop_plan(CMD, pl.o.user, &pd)) == 0)
		r = record_run(&pl, &pd);
	capture_opts_free(&pl.o);
	return r < 0 ? EXIT_OK : r;
}

/*
 * Source, modules and archive are open (as root): the user who will write the archive
 * must be able to reach it (a parent directory closed to it would fail only at the
 * first segment, after the drop), the archive's files are given to it, and the
 * process becomes that user.  0 or EXIT_FAIL (line printed).
 */
static int drop_privileges(struct record_pipeline *pl, const struct privdrop *pd)
{
	char parent[4200];
	snprintf(parent, sizeof(parent), "%s", pl->o.archive);
	int e = privdrop_can_access(pd, dirname(parent), X_OK);
	if (e) {
		cli_error(CMD,
		          "archive %s: user %s could not reach it (%s: %s): let it through each "
		          "parent directory (o+x), or choose another --user",
		          pl->o.archive, pd->user, parent, strerror(e));
		return EXIT_FAIL;
	}
	gid_t gid = pl->o.archive_gid >= 0 ? (gid_t)-1 : pd->gid; /* --archive-group's stays */
	if (pd->change && archive_give(pl->arch, pd->uid, gid) != 0) {
		cli_error(CMD, "archive %s: %s", pl->o.archive, archive_errmsg());
		return EXIT_FAIL;
	}
	return privdrop_apply(CMD, pd);
}

static int record_run(struct record_pipeline *pl, const struct privdrop *pd)
{
	int r;
	capture_signals_install("flowscope record: second signal: exiting now; the archive is "
	                        "valid up to its last commit\n");
	struct query_api *api = NULL;
	if ((r = record_pipeline_open(pl)) != 0) {
		record_pipeline_close(pl);
		return r;
	}
	/* the alert log as the user who will read it again after a rotation */
	if ((r = api_open(pl, &api)) == 0 && (r = drop_privileges(pl, pd)) == 0 &&
	    (r = record_eve_open(pl)) == 0) {
		privdrop_announce(stderr, CMD,
		                  pd); /* the first line: nothing parsed a packet yet */
		record_pipeline_notes(pl);
		r = api_serve(pl, api);
	}
	if (r) {
		atomic_store(&pl->api, NULL);
		query_api_stop(api);
		record_pipeline_seal(pl); /* nothing recorded: an archive this run made goes */
		archive_close_discard(pl->arch);
		pl->arch = NULL;
		record_pipeline_close(pl);
		return r;
	}
	print_qq(pl);
	uint64_t t0 = cli_mono_ns();
	capture_signals_source(pl->src);
	struct capture_loop loop;
	watch_threads(pl, &loop.watch);
	if (record_pipeline_start(pl) == 0)
		ready(pl);
	wait_sources(pl, &loop);
	stopping(pl);
	record_pipeline_finish(pl);
	record_pipeline_seal(pl);
	record_flowexport_stop(pl); /* the last pass: every segment is closed now */
	report(pl, (double)(cli_mono_ns() - t0) / 1e9,
	       atomic_load(&pl->failed)    ? "error"
	       : ft_modset_fatal(pl->mods) ? "module error (--strict-modules)"
	       : capture_signalled()       ? "signal"
	       : input_damaged(pl)         ? "damaged input"
	                                   : "end of input");
	capture_signals_source(NULL);
	int module_fatal = ft_modset_fatal(pl->mods); /* the modules go with the pipeline */
	int untimed = report_untimed(pl);             /* and the source */
	query_api_stop(api);                          /* before the archive it serves closes */
	record_pipeline_close(pl);
	return exit_status(pl, module_fatal, untimed);
}
