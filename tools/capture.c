/*
 * What `flowscope record` and `flowscope monitor` share: the source and
 * analysis options, opening the source and the modules, the analysis of one
 * packet (flow tracking and the modules, a burst at a time), and the ingest,
 * flowtrack and module lines of the status line and the final report.
 *
 * record analyses packets from the QQ on analyzer threads; monitor analyses
 * them on each source queue's own thread as they arrive.  Both use the same
 * struct record_analyzer (a flow table and a module engine) through these
 * functions, so their counters and their module output mean the same.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/capture.h"
#include "tools/cli.h"
#include "tools/counters.h"

/* ---- options ---------------------------------------------------------------------------- */

static int bad(const char *cmd, const char *opt, const char *arg, const char *want)
{
	cli_error(cmd, "%s '%s': expected %s", opt, arg, want);
	return EXIT_USAGE;
}

static int parse_module(struct record_opts *o, const char *cmd, int c, const char *arg)
{
	if (o->nmodules == RECORD_MAX_MODULES) {
		cli_error(cmd, "at most %d --module and --trigger options", RECORD_MAX_MODULES);
		return EXIT_USAGE;
	}
	if (c == 'T' ? asprintf(&o->modules[o->nmodules], "trigger:%s", arg) < 0
	             : !(o->modules[o->nmodules] = strdup(arg)))
		return EXIT_FAIL;
	o->nmodules++;
	return 0;
}

static int parse_source(struct record_opts *o, const char *cmd, int c, const char *arg)
{
	char *end;
	switch (c) {
	case 'r':
		o->read = arg;
		return 0;
	case 'D':
		o->dpdk = arg;
		return 0;
	case 'A':
		o->afpacket = arg;
		return 0;
	case 'L':
		o->live = arg;
		return 0;
	case 'p':
		return cli_parse_uint(arg, 0, 65535, &o->dpdk_port)
		           ? bad(cmd, "--port", arg, "0..65535")
		           : 0;
	case 'Q':
		return cli_parse_uint(arg, 1, INGEST_MAX_QUEUES, &o->rx_queues)
		           ? bad(cmd, "--rx-queues", arg, "1..64")
		           : 0;
	case 'S':
		o->replay_speed = strtod(arg, &end);
		if (*end || end == arg || !(o->replay_speed > 0) || o->replay_speed > 1e6)
			return bad(cmd, "--replay-speed", arg, "a factor such as 1 or 0.5 or 10");
		return 0;
	}
	return -1;
}

int capture_parse_opt(struct record_opts *o, const char *cmd, int c, const char *arg)
{
	int r = parse_source(o, cmd, c, arg);
	if (r >= 0)
		return r;
	switch (c) {
	case 'M':
	case 'T':
		return parse_module(o, cmd, c, arg);
	case 'n':
		return cli_parse_uint(arg, 1, RECORD_MAX_ANALYZERS, &o->analyzers)
		           ? bad(cmd, "--analyzers", arg, "1..16")
		           : 0;
	case 'f':
		return cli_parse_uint(arg, 1024, 1u << 28, &o->max_flows)
		           ? bad(cmd, "--max-flows", arg, "1024..268435456")
		           : 0;
	case 'i':
		return cli_parse_duration(arg, &o->stats_ns)
		           ? bad(cmd, "--status-interval", arg, "a duration such as 5s, or 0")
		           : 0;
	case 'E':
		o->strict_modules = 1;
		return 0;
	case 'U': /* resolved by privdrop_plan(), before anything is opened */
		o->user = arg;
		return 0;
	}
	return -1;
}

int capture_check_opts(const struct record_opts *o, const char *cmd)
{
	int sources = !!o->read + !!o->dpdk + !!o->afpacket + !!o->live;
	if (sources != 1) {
		cli_error(cmd, sources ? "give one source: --read, --dpdk, --afpacket or --live"
		                       : "a source (--read FILE, --dpdk, --afpacket or --live) is "
		                         "required");
		return EXIT_USAGE;
	}
	if (o->rx_queues > 1 && !o->dpdk && !o->afpacket) {
		cli_error(cmd, "--rx-queues needs --dpdk or --afpacket");
		return EXIT_USAGE;
	}
	if (o->replay_speed > 0 && !o->read) {
		cli_error(cmd, "--replay-speed needs --read");
		return EXIT_USAGE;
	}
	return 0;
}

/* parse(o, c, arg), its error lines naming the config file's line when the option is one
 * of its arguments (elem: the argv element getopt_long just read). */
static int parse_one(int (*parse)(struct record_opts *o, int c, const char *arg),
                     struct record_opts *o, int c, const char *arg, const char *elem)
{
	char where[PATH_MAX + 32];
	cli_error_where(config_argv_where(&o->config, elem, where, sizeof(where)));
	int r = parse(o, c, arg);
	cli_error_where(NULL);
	return r;
}

int capture_getopt(int argc, char **argv, const char *cmd, const struct option *longopts,
                   int (*parse)(struct record_opts *o, int c, const char *arg),
                   void (*usage)(FILE *f), struct record_opts *o)
{
	const struct config_spec spec = {.cmd = cmd,
	                                 .longopts = longopts,
	                                 .config_val = CAPTURE_CONFIG,
	                                 .repeatable = "MT",
	                                 .one_of = "rDAL",
	                                 .one_of_params = "pQS"};
	int c, r = config_argv_build(&spec, argc, argv, &o->config);
	if (r)
		return r;
	argc = o->config.argc;
	argv = o->config.argv;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return cli_usage_error(cmd, argv, optind, optopt);
		if (c == CAPTURE_CONFIG) /* read by config_argv_build() */
			continue;
		if ((r = parse_one(parse, o, c, optarg, argv[optind - 1])) != 0)
			return r;
	}
	if (optind < argc) {
		cli_error(cmd, "unexpected argument '%s' (see flowscope %s --help)", argv[optind],
		          cmd);
		return EXIT_USAGE;
	}
	return 0;
}

void capture_opts_free(struct record_opts *o)
{
	for (unsigned i = 0; i < o->nmodules; i++)
		free(o->modules[i]);
	o->nmodules = 0;
	ingest_eve_filter_free(o->eve_filter);
	o->eve_filter = NULL;
	config_argv_free(&o->config);
}

/* ---- signals ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signals;
static struct ingest_source *volatile g_src;
static char g_second[256]; /* set before the handler is installed, then only read */

static void on_signal(int sig)
{
	(void)sig;
	if (g_signals++ > 0) {
		ssize_t w = write(STDERR_FILENO, g_second, strlen(g_second));
		(void)w;
		_exit(130);
	}
	if (g_src)
		ingest_source_stop(g_src);
}

void capture_signals_install(const char *second)
{
	struct sigaction sa = {0};
	snprintf(g_second, sizeof(g_second), "%s%s", cli_log_prefix(CLI_WARN), second);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* a closed terminal: stop in order, lose nothing (under nohup: go on, as asked) */
	struct sigaction hup;
	if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
		sigaction(SIGHUP, &sa, NULL);
}

void capture_signals_source(struct ingest_source *src)
{
	g_src = src;
	if (src && g_signals > 0) /* one came while the pipeline was being set up */
		ingest_source_stop(src);
}

int capture_signalled(void)
{
	return g_signals > 0;
}

/* ---- setup ------------------------------------------------------------------------------- */

int capture_source_open(const struct record_opts *o, const char *cmd, struct ingest_source **src,
                        struct ingest_source_info *info)
{
	char err[INGEST_ERRBUF_SIZE];
	int r;
	if (o->read) {
		r = ingest_file_open(o->read, 0, src, err);
		if (r == 0)
			ingest_file_set_speed(*src, o->replay_speed);
	} else if (o->dpdk) {
		r = ingest_dpdk_open(o->dpdk, (uint16_t)o->dpdk_port, (unsigned)o->rx_queues, 0,
		                     src, err);
	} else if (o->afpacket) {
		r = ingest_afpacket_open(o->afpacket, (unsigned)o->rx_queues, 0, src, err);
	} else {
		r = ingest_live_open(o->live, 0, src, err);
	}
	if (r) {
		cli_error(cmd, "%s", err[0] ? err : ingest_strerror(r));
		return EXIT_FAIL;
	}
	ingest_source_info(*src, info);
	return 0;
}

/*
 * The flow tables of `engines` analyzers (flow tracking's own and one per
 * module, --max-flows flows each) must fit in the memory the machine has, as
 * the QQ must (--qq-size): a table is faulted in whole when it is created, and
 * one too big would be found by the OOM killer, not by malloc.  0, or
 * EXIT_USAGE with the line printed.
 */
static int flow_tables_fit(const struct record_opts *o, const char *cmd, unsigned engines,
                           const struct ft_modset *mods)
{
	uint64_t per = ft_table_bytes(o->max_flows, o->ipfix ? FT_IPFIX_STATE_SIZE : 0) +
	               ft_engine_bytes(mods, o->max_flows);
	uint64_t need = per * engines, avail = qq_memory_available();
	if (!avail || need <= avail)
		return 0;
	cli_error(cmd,
	          "--max-flows %" PRIu64 ": the flow tables would take %.1f MiB (%u analyzer(s) x "
	          "%u table(s): flow tracking%s), this machine has %.1f MiB available: give a "
	          "smaller --max-flows",
	          o->max_flows, (double)need / 1048576, engines,
	          1 + (mods ? ft_modset_count(mods) : 0), mods ? " and one per module" : "",
	          (double)avail / 1048576);
	return EXIT_USAGE;
}

int capture_modules_create(const struct record_opts *o, const char *cmd, unsigned engines,
                           struct ft_modset **out)
{
	char err[512];
	*out = NULL;
	if (o->nmodules == 0)
		return flow_tables_fit(o, cmd, engines, NULL);
	if (ft_modset_create((const char *const *)o->modules, o->nmodules, engines, out, err,
	                     sizeof(err)) != 0) {
		cli_error(cmd, "%s", err);
		return EXIT_USAGE;
	}
	ft_modset_set_strict(*out, o->strict_modules);
	int r = flow_tables_fit(o, cmd, engines, *out);
	if (r) {
		ft_modset_destroy(*out);
		*out = NULL;
	}
	return r;
}

int capture_analyzers_open(struct record_analyzer *ana, unsigned n, const struct record_opts *o,
                           const char *cmd)
{
	for (unsigned i = 0; i < n; i++) {
		ana[i].id = i;
		ana[i].ipfix_fd = -1;
		/* record --ipfix: each flow keeps what was exported of it (ft_ipfix_expire) */
		int r = ft_table_create(o->max_flows, o->ipfix ? FT_IPFIX_STATE_SIZE : 0, NULL,
		                        &ana[i].flows);
		if (r) {
			cli_error(cmd, "flow table of %" PRIu64 " flows: %s", o->max_flows,
			          ft_strerror(r));
			return EXIT_FAIL;
		}
	}
	return 0;
}

/* ---- analysis ---------------------------------------------------------------------------- */

/*
 * The analyzer's own flow table: every packet's bidirectional 5-tuple with both VLAN tags
 * (the archive's key, archive_flow_key_of(): kind FT_KEY_BIDIRECTIONAL, flags 0; its hash is
 * the one the writer's flow table prefetches with), and each packet's hash for the QQ record.
 */
static void track_burst(struct record_analyzer *a, struct capture_burst *b)
{
	uint64_t h[FT_ENGINE_BURST];
	uint8_t is_new[FT_ENGINE_BURST];
	for (unsigned j = 0; j < b->n; j++)
		h[j] = b->hash_out[j] ? *b->hash_out[j] : 0; /* left alone without a flow */
	ft_table_track_burst(a->flows, b->ctx, b->n, FT_KEY_BIDIRECTIONAL, 0, h,
	                     a->triggers ? is_new : NULL);
	if (a->triggers) /* new flows against triggers kept for them (record --listen) */
		ft_trigger_new_flows(a->triggers, a->id, a->flows, b->ctx, is_new, b->n);
	for (unsigned j = 0; j < b->n; j++)
		if (b->hash_out[j])
			*b->hash_out[j] = (uint32_t)h[j];
}

void capture_analyze(struct record_analyzer *a, struct capture_burst *b, int linktype,
                     uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t *data,
                     uint32_t *hash_out, struct ft_packet *parsed_out)
{
	struct ft_packet *pkt = parsed_out ? parsed_out : &b->pkt[b->n];
	a->packets++;
	if (ft_parse(linktype, data, caplen, pkt) != 0)
		return;
	b->ctx[b->n] = (struct ft_packet_ctx){.ts_ns = ts_ns,
	                                      .caplen = caplen,
	                                      .wirelen = wirelen,
	                                      .linktype = linktype,
	                                      .data = data,
	                                      .pkt = pkt};
	b->hash_out[b->n] = hash_out;
	if (++b->n == FT_ENGINE_BURST)
		capture_analyze_flush(a, b);
}

void capture_analyze_flush(struct record_analyzer *a, struct capture_burst *b)
{
	if (b->n == 0)
		return;
	track_burst(a, b);
	if (a->engine)
		ft_engine_packets(a->engine, b->ctx, b->n);
	b->n = 0;
}

/* ---- flow affinity check ------------------------------------------------------------------ */

struct split_ctx {
	struct ft_table *seen; /* state: 1 byte, the analyzer id + 1 */
	unsigned id;
	uint64_t split;
};

static void split_visit(struct ft_flow *f, void *arg)
{
	struct split_ctx *c = arg;
	int is_new;
	struct ft_flow *s = ft_table_lookup(c->seen, &f->key, ft_flow_key_hash(&f->key), &is_new);
	if (is_new)
		s->state[0] = (uint8_t)(c->id + 1);
	else if (s->state[0] != c->id + 1)
		c->split++;
}

uint64_t capture_split_flows(const struct record_analyzer *ana, unsigned n)
{
	if (n < 2)
		return 0;
	size_t total = 0;
	for (unsigned i = 0; i < n; i++) {
		struct ft_table_stats st;
		ft_table_stats(ana[i].flows, &st);
		total += st.flows;
	}
	struct split_ctx c = {0};
	if (total == 0 || ft_table_create(total, 1, NULL, &c.seen) != 0)
		return 0;
	for (c.id = 0; c.id < n; c.id++)
		ft_table_foreach(ana[c.id].flows, split_visit, &c);
	ft_table_destroy(c.seen);
	return c.split;
}

/* ---- status line and report ---------------------------------------------------------------- */

/* Appends the non-zero drop reasons of st to f: " (kernel 3, imissed 2)". */
static void drop_reasons(FILE *f, const struct ingest_stats *st)
{
	const struct {
		const char *name;
		uint64_t v;
	} r[] = {{"kernel", st->dropped_kernel}, {"iface", st->dropped_iface},
	         {"imissed", st->imissed},       {"ierrors", st->ierrors},
	         {"nombuf", st->rx_nombuf},      {"oversize", st->dropped_oversize},
	         {"time", st->dropped_time},     {"qq-stopped", st->dropped_qq}};
	const char *sep = " (";
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (r[i].v) {
			fprintf(f, "%s%s %" PRIu64, sep, r[i].name, r[i].v);
			sep = ", ";
		}
	if (sep[0] == ',')
		fputc(')', f);
}

/* The status line: on stderr, as an info line, and to the service manager (STATUS=). */
static void status_emit(struct capture_loop *l, struct capture_rates *last, double dt)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return;
	l->status(l->arg, f, last, dt);
	if (fclose(f) == 0 && text) {
		cli_log_to(stderr, CLI_INFO, l->cmd, "%s", text);
		service_status(text);
	}
	free(text);
}

void capture_wait(struct capture_loop *l)
{
	struct capture_rates last;
	memset(&last, 0, sizeof(last));
	uint64_t t = cli_mono_ns();
	while (atomic_load(l->running) > 0 && !atomic_load(l->failed) &&
	       !ft_modset_fatal(l->mods)) {
		usleep(CAPTURE_POLL_MS * 1000);
		uint64_t now = cli_mono_ns();
		service_watch_poll(&l->watch, now);
		if (l->status_ns && now - t >= l->status_ns) {
			status_emit(l, &last, (double)(now - t) / 1e9);
			t = now;
		}
	}
}

/* "q1 1200 pkt/s 9.6 Mbit/s drops 0" for queue q (-1: the whole source). */
static void rate_part(FILE *f, struct ingest_source *src, int q, struct capture_rates *last,
                      double dt)
{
	struct ingest_stats st;
	ingest_source_stats(src, q, &st);
	unsigned i = q < 0 ? INGEST_MAX_QUEUES : (unsigned)q;
	double pps = (double)(st.packets - last->pkts[i]) / dt;
	double bps = (double)(st.wire_bytes * 8 - last->bits[i]) / dt;
	if (q >= 0)
		fprintf(f, " q%d", q);
	fprintf(f, " %.0f pkt/s %.1f Mbit/s drops %" PRIu64, pps, bps / 1e6,
	        ingest_stats_drops(&st));
	drop_reasons(f, &st);
	last->pkts[i] = st.packets;
	last->bits[i] = st.wire_bytes * 8;
}

void capture_status_source(FILE *f, struct ingest_source *src,
                           const struct ingest_source_info *info, struct capture_rates *last,
                           double dt)
{
	struct ingest_stats st;
	ingest_source_stats(src, -1, &st);
	fprintf(f, "%s %s %" PRIu64 " pkts,", info->kind, info->name, st.packets);
	rate_part(f, src, -1, last, dt);
	for (unsigned q = 0; info->queues > 1 && q < info->queues; q++) {
		fputs(q ? ";" : " |", f);
		rate_part(f, src, (int)q, last, dt);
	}
}

int capture_queue_status(const char *cmd, int rc, const char *err, const char *kept, int *damaged)
{
	if (rc == INGEST_E_DAMAGED) {
		cli_error(cmd, "%s; %s", err, kept);
		*damaged = 1;
	} else if (rc) {
		cli_error(cmd, "%s", err[0] ? err : ingest_strerror(rc));
		return EXIT_FAIL;
	}
	return 0;
}

void capture_print_lines(FILE *f, const char *cmd, const char *text)
{
	for (const char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		cli_log_to(f, CLI_INFO, cmd, "%.*s", (int)(nl ? nl - line : (long)strlen(line)),
		           line);
		if (!nl)
			break;
	}
}

void capture_report_ingest(FILE *f, struct ingest_source *src,
                           const struct ingest_source_info *info)
{
	struct ingest_stats st;
	char prefix[64];
	for (unsigned q = 0; info->queues > 1 && q < info->queues; q++) {
		snprintf(prefix, sizeof(prefix), "ingest.%s.q%u", info->kind, q);
		ingest_source_stats(src, (int)q, &st);
		counters_print_line(f, prefix, counters_ingest, counters_ingest_n, &st);
	}
	snprintf(prefix, sizeof(prefix), "ingest.%s", info->kind);
	ingest_source_stats(src, -1, &st);
	counters_print_line(f, prefix, counters_ingest, counters_ingest_n, &st);
}

void capture_report_flows(FILE *f, const struct record_analyzer *ana, unsigned n)
{
	struct counters_flowtrack sum = {0};
	char prefix[64];
	for (unsigned i = 0; i < n; i++) {
		struct ft_table_stats st;
		ft_table_stats(ana[i].flows, &st);
		struct counters_flowtrack c = {
		    .packets = ana[i].packets, .flows = st.inserted, .evicted = st.evicted};
		snprintf(prefix, sizeof(prefix), "flowtrack.analyzer%u", i);
		counters_print(f, prefix, counters_analyzer, counters_analyzer_n, &c, i == 0);
		sum.packets += c.packets;
		sum.flows += c.flows;
		sum.evicted += c.evicted;
	}
	sum.split_across_analyzers = capture_split_flows(ana, n);
	counters_print(f, "flowtrack", counters_flows, counters_flows_n, &sum, n == 0);
	fputc('\n', f);
}

uint64_t capture_report_modules(FILE *f, const struct record_opts *o, const struct ft_modset *mods,
                                const struct record_analyzer *ana, unsigned n)
{
	uint64_t triggers = 0;
	for (unsigned m = 0; mods && m < ft_modset_count(mods); m++) {
		struct ft_engine_stats sum = {0}, st;
		for (unsigned i = 0; i < n; i++) {
			ft_engine_stats(ana[i].engine, m, &st);
			sum.packets += st.packets;
			sum.flows += st.flows;
			sum.triggers += st.triggers;
			sum.expired += st.expired;
			sum.evicted += st.evicted;
			sum.errors += st.errors;
			sum.bad_filters += st.bad_filters;
		}
		sum.errors += ft_modset_errors(mods, m);
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "module.%u", m);
		fprintf(f, "%s: %s\n", prefix, o->modules[m]); /* the name: on a line of its own */
		counters_print_line(f, prefix, counters_module, counters_module_n, &sum);
		triggers += sum.triggers;
	}
	return triggers;
}
