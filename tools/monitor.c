/*
 * flowscope monitor: immediate mode.  The analysis modules run directly on
 * the source's bursts, on each receive queue's own thread, as in the
 * reference's "immediate mode without buffering/dumping": no QQ, no
 * archive, nothing written to disk.  The modules print what they print
 * (stats: top flows every interval, on stdout); a flow a module triggers on
 * is printed as one line on stdout, since there is nothing to archive it
 * into.
 *
 * Threads: one per RX queue, each running ingest_source_run_burst() with a
 * callback that parses the burst, tracks its flows in the queue's own flow
 * table and runs the queue's own module engine over it.  Flow affinity comes
 * from the source (symmetric RSS or fanout), as in record, where queue q is
 * analysed by analyzer q mod N: here N is the number of queues, and the
 * analysis cannot be spread over more threads than there are queues, since
 * a queue's thread hands its packets to nobody.  (For more analysis threads
 * use more RX queues.)  The checker passes of the queues' engines meet at
 * the module's merge point as in record, so `stats` prints one report per
 * interval for the whole source.
 *
 * Signals: as record.  The first SIGINT/SIGTERM stops the source; every
 * packet already received is analysed, the modules' last reports are
 * printed, then the final counters, and the exit status is 0.  A second
 * signal exits at once (130).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/capture.h"
#include "tools/counters.h"
#include "tools/privdrop.h"
#include "tools/service.h"

#define CMD "monitor"

struct monitor;

/* One RX queue: its thread receives, parses, tracks and runs the modules. */
struct monitor_queue {
	struct monitor *m;
	unsigned id;
	pthread_t thread;
	struct capture_burst burst; /* parsed packets of the burst being analysed */
	int rc;
	char err[INGEST_ERRBUF_SIZE];
};

struct monitor {
	struct record_opts o;
	struct ingest_source *src;
	struct ingest_source_info info;
	struct ft_modset *mods;                        /* or NULL: flow tracking only */
	struct record_analyzer ana[INGEST_MAX_QUEUES]; /* ana[q]: queue q's thread only */
	struct monitor_queue q[INGEST_MAX_QUEUES];
	atomic_uint queues_running;
	atomic_int failed; /* a queue failed: stop the others */
	uint64_t t_start_ns;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: flowscope monitor SOURCE --module M|--trigger BPF [options]\n"
	    "Runs analysis modules directly on the source's packets (no ring, no archive).\n"
	    "SOURCE, exactly one of:\n"
	    "  --read FILE           replay a pcap or pcapng file ('-' = stdin)\n"
	    "  --dpdk 'EAL ARGS'     a DPDK port (NIC or vdev), e.g. '-l 0 --vdev net_pcap0,...'\n"
	    "  --afpacket IFACE      AF_PACKET TPACKET_V3 rings with fanout\n"
	    "  --live IFACE          libpcap live capture\n"
	    "options:\n"
	    "  --module NAME[:ARGS]  analysis module: noop, stats, ttl, threshold:..., PATH.so\n"
	    "                        (C) or PATH.lua (Lua) (repeatable; docs/modules.md)\n"
	    "  --trigger BPF         print flows with a packet matching the expression\n"
	    "                        (repeatable; at least one --module or --trigger)\n"
	    "  --port N              DPDK port id (default 0)\n"
	    "  --rx-queues N         RX queues for --dpdk / --afpacket (default 1); each queue's\n"
	    "                        thread analyses its own packets\n"
	    "  --replay-speed X      --read at recorded speed times X (default: flat out)\n"
	    "  --max-flows N         flow table size per queue (default 262144)\n"
	    "  --status-interval DUR status line interval, 0 = off (default 5s;\n"
	    "                        --stats-interval is its old name)\n"
	    "  --strict-modules      a runtime error in a Lua module ends monitor\n"
	    "  --config FILE         read these options from FILE, key = value lines\n"
	    "                        (module = stats); the command line overrides it\n"
	    "                        (docs/config.md, flowscope.conf(5))\n"
	    "  --user NAME           parse packets as NAME, after the source is open as root\n"
	    "                        (default for root: the flowscope user if it exists;\n"
	    "                        root = keep root)\n"
	    "Module output and triggered flows go to stdout; status and report to stderr.\n");
}

/* ---- options ---------------------------------------------------------------------------------- */

static const struct option longopts[] = {
    {"read", required_argument, NULL, 'r'},
    {"dpdk", required_argument, NULL, 'D'},
    {"afpacket", required_argument, NULL, 'A'},
    {"live", required_argument, NULL, 'L'},
    {"port", required_argument, NULL, 'p'},
    {"rx-queues", required_argument, NULL, 'Q'},
    {"replay-speed", required_argument, NULL, 'S'},
    {"analyzers", required_argument, NULL, 'n'},
    {"module", required_argument, NULL, 'M'},
    {"trigger", required_argument, NULL, 'T'},
    {"max-flows", required_argument, NULL, 'f'},
    {"stats-interval", required_argument, NULL, 'i'},
    {"status-interval", required_argument, NULL, 'i'},
    {"strict-modules", no_argument, NULL, 'E'},
    {"config", required_argument, NULL, CAPTURE_CONFIG},
    {"user", required_argument, NULL, 'U'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_opt(struct record_opts *o, int c, const char *arg)
{
	if (c == 'n') {
		cli_error(CMD, "--analyzers: in immediate mode each RX queue's thread analyses its "
		               "own packets; use --rx-queues N for N analysis threads");
		return EXIT_USAGE;
	}
	int r = capture_parse_opt(o, CMD, c, arg);
	return r >= 0 ? r : EXIT_USAGE;
}

/* 0, -1 after --help, or an exit status. */
static int parse_args(int argc, char **argv, struct record_opts *o)
{
	*o = (struct record_opts){.stats_ns = 5000000000ull, .max_flows = 262144, .rx_queues = 1};
	int r = capture_getopt(argc, argv, CMD, longopts, parse_opt, usage, o);
	if (r || (r = capture_check_opts(o, CMD)) != 0)
		return r;
	if (o->nmodules == 0) { /* flow tracking alone prints nothing but counters */
		cli_error(CMD, "nothing to run: give --module M or --trigger BPF (see flowscope "
		               "monitor --help)");
		return EXIT_USAGE;
	}
	return 0;
}

/* ---- the queue threads ------------------------------------------------------------------------ */

/*
 * A triggered flow: one line on stdout, "TIME trigger MODULE: KEY", the key
 * as the module's engine formats it (a Lua module's own key type by the
 * module).  Called on the queue's thread; one printf is one locked write to
 * stdout, so lines of several queues do not mix.
 */
static void on_trigger(void *arg, unsigned module, const struct ft_flow_key *key,
                       enum ft_key_kind kind, unsigned key_flags, const char *filter,
                       uint64_t ts_ns)
{
	struct monitor_queue *q = arg;
	struct monitor *m = q->m;
	char t[48], k[FT_MODKEYSTRLEN];
	(void)key_flags;
	printf("%s trigger %s: %s%s%s%s%s\n", cli_format_time(ts_ns, t, sizeof(t)),
	       m->o.modules[module],
	       ft_engine_key_format(m->ana[q->id].engine, module, key, k, sizeof(k)),
	       kind == FT_KEY_UNIDIRECTIONAL ? " (one direction)" : "", filter ? " filter '" : "",
	       filter ? filter : "", filter ? "'" : "");
	fflush(stdout);
}

/*
 * The burst callback: every packet analysed while its bytes are valid; then
 * the checker's clock, which for live sources is also the wall clock, so a
 * quiet link still gets its reports and expiries (n = 0: the queue is idle).
 * A file is analysed in capture time only, so its output does not depend on
 * how fast it is read.
 */
static void on_burst(void *arg, const struct ingest_burst *b)
{
	struct monitor_queue *q = arg;
	struct record_analyzer *a = &q->m->ana[q->id];
	service_beat(&a->beat); /* at least every 100 ms, also while idle (ingest.h) */
	for (unsigned i = 0; i < b->n; i++) {
		const struct ingest_pkt *p = &b->pkt[i];
		capture_analyze(a, &q->burst, b->linktype, p->ts_ns, p->caplen, p->wirelen, p->data,
		                NULL, NULL);
	}
	capture_analyze_flush(a, &q->burst);
	if (a->engine && !q->m->o.read)
		ft_engine_tick(a->engine, cli_now_ns());
}

static void *queue_thread(void *arg)
{
	struct monitor_queue *q = arg;
	struct monitor *m = q->m;
	q->rc = ingest_source_run_burst(m->src, q->id, on_burst, q, q->err);
	if (q->rc && q->rc != INGEST_E_DAMAGED)
		atomic_store(&m->failed, 1);
	atomic_fetch_sub(&m->queues_running, 1);
	return NULL;
}

/* ---- setup and teardown ---------------------------------------------------------------------- */

/* The source, the module instances, a flow table and an engine per queue. */
static int monitor_open(struct monitor *m)
{
	/* modules first: a bad module or filter fails before a device is touched; the
	   options say how many queues the source will have (1 unless --rx-queues) */
	int r = capture_modules_create(&m->o, CMD, (unsigned)m->o.rx_queues, &m->mods);
	if (r || (r = capture_source_open(&m->o, CMD, &m->src, &m->info)) != 0)
		return r;
	if ((r = capture_analyzers_open(m->ana, m->info.queues, &m->o, CMD)) != 0)
		return r;
	struct ft_engine_events ev = {.trigger = on_trigger};
	for (unsigned i = 0; i < m->info.queues; i++) {
		m->q[i] = (struct monitor_queue){.m = m, .id = i};
		ev.arg = &m->q[i];
		r = m->mods ? ft_engine_create(m->mods, i, m->o.max_flows, &ev, &m->ana[i].engine)
		            : 0;
		if (r) {
			cli_error(CMD, "module engine with %" PRIu64 " flows: %s", m->o.max_flows,
			          ft_strerror(r));
			return EXIT_FAIL;
		}
	}
	return 0;
}

static void monitor_close(struct monitor *m)
{
	for (unsigned i = 0; i < INGEST_MAX_QUEUES; i++) {
		ft_table_destroy(m->ana[i].flows);
		ft_engine_destroy(m->ana[i].engine);
	}
	ft_modset_destroy(m->mods);
	ingest_source_close(m->src);
}

/* Starts a thread per queue; on failure stops and joins those that started. */
static int monitor_start(struct monitor *m)
{
	m->t_start_ns = cli_now_ns();
	atomic_store(&m->queues_running, m->info.queues);
	for (unsigned i = 0; i < m->info.queues; i++) {
		if (pthread_create(&m->q[i].thread, NULL, queue_thread, &m->q[i]) != 0) {
			cli_error(CMD, "cannot start threads: %s", strerror(errno));
			ingest_source_stop(m->src);
			for (unsigned j = 0; j < i; j++)
				pthread_join(m->q[j].thread, NULL);
			return EXIT_FAIL;
		}
		cli_name_thread(m->q[i].thread, "rx", (int)i);
	}
	return 0;
}

static void status_line(void *arg, FILE *f, struct capture_rates *last, double dt)
{
	struct monitor *m = arg;
	capture_status_source(f, m->src, &m->info, last, dt);
}

/*
 * Waits for the queues to end (or fail, or a signal), printing status lines;
 * READY=1 first, and the watchdog pinged while every queue's thread comes
 * round (service.h); STOPPING=1 when they stopped.
 */
static void monitor_wait(struct monitor *m)
{
	struct capture_loop l = {.cmd = CMD,
	                         .running = &m->queues_running,
	                         .failed = &m->failed,
	                         .mods = m->mods,
	                         .status_ns = m->o.stats_ns,
	                         .status = status_line,
	                         .arg = m};
	char status[256];
	service_watch_init(&l.watch, cli_mono_ns());
	for (unsigned i = 0; i < m->info.queues; i++)
		service_watch_add(&l.watch, &m->ana[i].beat);
	snprintf(status, sizeof(status), "monitoring %s %s", m->info.kind, m->info.name);
	service_ready(status);
	capture_wait(&l);
	service_stopping("stopping: sources stopped; the modules' last reports");
	ingest_source_stop(m->src); /* a failure, or one queue ended: stop them all */
	for (unsigned i = 0; i < m->info.queues; i++)
		pthread_join(m->q[i].thread, NULL);
	for (unsigned i = 0; i < m->info.queues; i++)
		if (m->ana[i].engine)
			ft_engine_finish(m->ana[i].engine); /* the modules' last reports */
}

/* ---- report ---------------------------------------------------------------------------------- */

/* The final counters (docs/counters.md): the run line, then name=value lines per component. */
static void report_write(FILE *f, struct monitor *m, double secs, const char *ended)
{
	char t0[48], t1[48];
	fprintf(f, "run: %s .. %s (%.2f s), %s %s, %u queue(s), ended: %s%s%s\n",
	        cli_format_time(m->t_start_ns, t0, sizeof(t0)),
	        cli_format_time(cli_now_ns(), t1, sizeof(t1)), secs, m->info.kind, m->info.name,
	        m->info.queues, ended, m->info.ts_note ? "; " : "",
	        m->info.ts_note ? m->info.ts_note : "");
	capture_report_ingest(f, m->src, &m->info);
	capture_report_flows(f, m->ana, m->info.queues);
	struct counters_monitor c = {
	    .triggers = capture_report_modules(f, &m->o, m->mods, m->ana, m->info.queues)};
	counters_print_line(f, "monitor", counters_mon, counters_mon_n, &c); /* lines on stdout */
}

/* The final counters on stderr, each line prefixed like every other line of ours. */
static void report(struct monitor *m, double secs, const char *ended)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return;
	report_write(mem, m, secs, ended);
	fclose(mem);
	capture_print_lines(stderr, CMD, text);
	free(text);
}

/* The exit status: the first failure, else damaged input (3), else 0. */
/* Did a source end on damaged input (rather than at its end)? */
static int input_damaged(const struct monitor *m)
{
	for (unsigned i = 0; i < m->info.queues; i++)
		if (m->q[i].rc == INGEST_E_DAMAGED)
			return 1;
	return 0;
}

static int exit_status(const struct monitor *m)
{
	int damaged = 0;
	for (unsigned i = 0; i < m->info.queues; i++) {
		const struct monitor_queue *q = &m->q[i];
		int r = capture_queue_status(CMD, q->rc, q->err,
		                             "every packet before it was analysed", &damaged);
		if (r)
			return r;
	}
	if (ft_modset_fatal(m->mods)) {
		cli_error(CMD,
		          "stopped: a module failed with --strict-modules (its error is above)");
		return EXIT_FAIL;
	}
	return damaged ? EXIT_DAMAGED : EXIT_OK;
}

static int monitor_run(struct monitor *m, const struct privdrop *pd)
{
	capture_signals_install("flowscope monitor: second signal: exiting now\n");
	int r = monitor_open(m);
	/* as root until here; the first line says who parses packets from now on */
	if (r == 0 && (r = privdrop_apply(CMD, pd)) == 0)
		privdrop_announce(stderr, CMD, pd);
	if (r == 0) {
		capture_signals_source(m->src);
		uint64_t t0 = cli_mono_ns();
		if ((r = monitor_start(m)) == 0) {
			monitor_wait(m);
			report(m, (double)(cli_mono_ns() - t0) / 1e9,
			       atomic_load(&m->failed)    ? "error"
			       : ft_modset_fatal(m->mods) ? "module error (--strict-modules)"
			       : capture_signalled()      ? "signal"
			       : input_damaged(m)         ? "damaged input"
			                                  : "end of input");
			r = exit_status(m);
		}
		capture_signals_source(NULL);
	}
	monitor_close(m);
	return r;
}

int monitor_main(int argc, char **argv)
{
	/* its analyzers are cache-line aligned: calloc() does not promise that */
	struct monitor *m = aligned_alloc(_Alignof(struct monitor), sizeof(*m));
	if (!m) {
		cli_error(CMD, "out of memory");
		return EXIT_FAIL;
	}
	memset(m, 0, sizeof(*m));
	struct privdrop pd;
	int r = parse_args(argc, argv, &m->o);
	if (r == 0 && (r = privdrop_plan(CMD, m->o.user, &pd)) == 0)
		r = monitor_run(m, &pd);
	capture_opts_free(&m->o);
	free(m);
	return r < 0 ? EXIT_OK : r;
}
