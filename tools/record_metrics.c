/*
 * record --listen's GET /metrics and /healthz (docs/metrics.md, docs/api.md).
 *
 * /metrics builds the report text the final report prints (the same dotted
 * counters, docs/counters.md) on demand, from what other threads own without
 * racing them: the source's and the ring's counters are atomics of their
 * libraries (ingest_source_stats, qq_stats: any thread), the analyzers' and
 * dumpers' are the copies their threads publish under live_lock after each
 * chunk (record_pipeline.c), retention's come from its keeper (its own
 * lock).  That text goes through counters_prometheus() as the final report
 * does for `info --metrics`, so a live counter and a stored one have one
 * name.  Around it: the archive's size and free disk (read now), the ring's
 * fill and window as gauges, and the API's own counters.
 *
 * Threading: called from the API's connection threads, several at once,
 * between api_start and query_api_stop (before the pipeline closes).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "tools/record.h"

/* The analyzers' and modules' lines, from the analyzers' published copies. */
static void live_flows(FILE *f, struct record_pipeline *pl)
{
	unsigned nm = pl->mods ? ft_modset_count(pl->mods) : 0;
	struct counters_flowtrack ana[RECORD_MAX_ANALYZERS], sum = {0};
	struct ft_engine_stats mod[RECORD_MAX_MODULES] = {{0}};
	char prefix[64];
	pthread_mutex_lock(&pl->live_lock);
	memcpy(ana, pl->live_ana, sizeof(ana));
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		for (unsigned m = 0; m < nm; m++) {
			const struct ft_engine_stats *st = &pl->live_mod[i][m];
			mod[m].packets += st->packets;
			mod[m].flows += st->flows;
			mod[m].triggers += st->triggers;
			mod[m].expired += st->expired;
			mod[m].evicted += st->evicted;
			mod[m].errors += st->errors;
			mod[m].bad_filters += st->bad_filters;
		}
	pthread_mutex_unlock(&pl->live_lock);
	for (unsigned i = 0; i < pl->nanalyzers; i++) {
		snprintf(prefix, sizeof(prefix), "flowtrack.analyzer%u", i);
		counters_print(f, prefix, counters_analyzer, counters_analyzer_n, &ana[i], i == 0);
		sum.packets += ana[i].packets;
		sum.flows += ana[i].flows;
		sum.evicted += ana[i].evicted;
	}
	/* the last row, split_across_analyzers, walks the tables at the end: not live */
	counters_print(f, "flowtrack", counters_flows, counters_flows_n - 1, &sum,
	               pl->nanalyzers == 0);
	fputc('\n', f);
	for (unsigned m = 0; m < nm; m++) {
		mod[m].errors += ft_modset_errors(pl->mods, m); /* an atomic */
		snprintf(prefix, sizeof(prefix), "module.%u", m);
		fprintf(f, "%s: %s\n", prefix, pl->o.modules[m]);
		counters_print_line(f, prefix, counters_module, counters_module_n, &mod[m]);
	}
}

/* The dumper and archive writer lines, from the dumpers' published copies. */
static void live_writer(FILE *f, struct record_pipeline *pl)
{
	struct counters_writer w = {0};
	struct counters_dumper d = {.rules_added = atomic_load(&pl->triggers)};
	pthread_mutex_lock(&pl->live_lock);
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		const struct record_dumper_live *l = &pl->live_dump[i];
		record_writer_add(&w.w, &l->w);
		w.dropped_oversize += l->oversize;
		w.dropped_time += l->untimed;
		d.triggered_packets += l->selected;
		d.unselected_packets += l->skipped;
	}
	pthread_mutex_unlock(&pl->live_lock);
	if (pl->mods || pl->trig)
		counters_print_line(f, "dumper", counters_dump, counters_dump_n, &d);
	if (pl->trig) {
		struct counters_trigger t;
		record_trigger_counters(pl, &t);
		counters_print_line(f, "trigger", counters_trig, counters_trig_n, &t);
	}
	if (pl->eve) {
		struct counters_eve e;
		record_eve_counters(pl, &e);
		counters_print_line(f, "eve", counters_eve, counters_eve_n, &e);
	}
	if (pl->o.ipfix) {
		struct counters_ipfix x;
		record_ipfix_counters(pl, &x);
		counters_print_line(f, "ipfix", counters_ipfix, counters_ipfix_n, &x);
	}
	counters_print_line(f, "archive.writer", counters_archive, counters_archive_n, &w);
	if (atomic_load(&pl->live_started) && pl->fx) {
		struct counters_flow_export x;
		record_flowexport_counters(pl, &x);
		counters_print_line(f, "flow_export", counters_fx, counters_fx_n, &x);
	}
	if (atomic_load(&pl->live_started) && pl->keeper) {
		struct archive_retention_totals t;
		archive_retention_keeper_totals(pl->keeper, &t);
		struct counters_retention r = {.dropped_segments = t.segments,
		                               .dropped_bytes = t.bytes,
		                               .archive_bytes = t.usage,
		                               .dropped_pinned_segments = t.pinned};
		counters_print_line(f, "retention", counters_ret, counters_ret_n, &r);
	}
}

/* The counters of the final report (record.c's report_write), as they are now. */
static void live_report(FILE *f, struct record_pipeline *pl, const struct qq_stats *qs)
{
	capture_report_ingest(f, pl->src, &pl->info);
	counters_print_line(f, "qq", counters_qq, counters_qq_n, qs);
	live_flows(f, pl);
	live_writer(f, pl);
}

int record_live_counters(struct record_pipeline *pl, char **text, size_t *len)
{
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	FILE *m = open_memstream(text, len);
	if (!m)
		return *text = NULL, -ENOMEM;
	live_report(m, pl, &qs);
	if (fclose(m) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int metrics_write(FILE *f, struct record_pipeline *pl)
{
	char *report = NULL, err[256];
	size_t len = 0;
	struct qq_stats qs;
	if (record_live_counters(pl, &report, &len) != 0)
		return -ENOMEM;
	qq_stats(pl->qq, &qs);
	int r = counters_prometheus_archive_now(f, pl->arch, 0);
	if (r == 0)
		r = counters_prometheus(f, report, err, sizeof(err)); /* -EINVAL: a missing row */
	free(report);
	if (r)
		return r;
	counters_prometheus_gauge_f(f, "flowscope_qq_fill_ratio",
	                            "how full the ring is now, from 0 to 1", qs.fill);
	counters_prometheus_gauge_f(
	    f, "flowscope_qq_window_seconds",
	    "capture time from the oldest to the newest packet in the ring now",
	    qs.newest_ns > qs.oldest_ns ? (double)(qs.newest_ns - qs.oldest_ns) / 1e9 : 0);
	struct query_api *api = atomic_load(&pl->api);
	if (api) {
		struct query_api_counters n;
		query_api_counters(api, &n);
		counters_prometheus_api(f, &n);
	}
	return 0;
}

int record_metrics(void *arg, char **text, size_t *len)
{
	FILE *f = open_memstream(text, len);
	if (!f)
		return *text = NULL, -ENOMEM;
	int r = metrics_write(f, arg);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r) {
		free(*text);
		*text = NULL;
	}
	return r;
}

/* Packets lost so far: the source's drops (every reason) and the ring's. */
static uint64_t packets_lost(struct record_pipeline *pl)
{
	struct ingest_stats st;
	struct qq_stats qs;
	ingest_source_stats(pl->src, -1, &st);
	qq_stats(pl->qq, &qs);
	return ingest_stats_drops(&st) + qs.overwritten_packets + qs.dropped_packets;
}

/*
 * 503 with the reason while the recorder cannot capture and store: it
 * failed, a disk is full, packets were lost since the previous /healthz
 * (by anyone; since the start for the first), or no source captures.
 */
int record_health(void *arg, char *reason, size_t len)
{
	struct record_pipeline *pl = arg;
	if (atomic_load(&pl->failed)) {
		snprintf(reason, len, "the recorder failed (its stderr says why)");
		return 1;
	}
	for (unsigned i = 0; i < pl->ndumpers; i++)
		if (atomic_load(&pl->dump[i].full)) {
			snprintf(reason, len,
			         "disk full: archive %s cannot store packets (they are dropped)",
			         pl->o.archive);
			return 1;
		}
	uint64_t lost = packets_lost(pl), before = atomic_exchange(&pl->health_lost, lost);
	if (lost > before) {
		snprintf(reason, len,
		         "dropping: %" PRIu64 " packets lost since the last /healthz (%" PRIu64
		         " in all; /metrics says by which reason)",
		         lost - before, lost);
		return 1;
	}
	if (atomic_load(&pl->queues_running) == 0) {
		snprintf(reason, len, "no source is capturing (not started yet, or stopped)");
		return 1;
	}
	return 0;
}
