/*
 * The counters of `flowscope record` and `flowscope monitor`, by name: one
 * table per component, naming each counter and where its value lies in the
 * component's statistics struct.  The final reports print them from these
 * tables, and so will the metrics endpoint: a name is written once, here,
 * and documented in docs/counters.md (tests/e2e/counters.sh checks that the
 * two agree).
 *
 * Names are dotted, lib.component.metric: "qq.overwritten_packets".  A
 * component with several instances carries its instance in the prefix the
 * caller gives: "ingest.file", "ingest.dpdk.q1", "flowtrack.analyzer0",
 * "module.2" (modules by their position on the command line, from 0: a
 * module's name may hold dots, slashes and spaces, so it is printed on a
 * line of its own, "module.2: NAME").
 *
 * Printed form (counters_print): "prefix.name=value" words separated by
 * single spaces, values in decimal, no other words on the line; a report
 * line whose first word holds '=' is a line of counters.
 *
 * Threading: the tables are constant; counters_print reads the struct it is
 * given, which the caller has copied out (ingest_source_stats, qq_stats ...).
 */
#ifndef FLOWSCOPE_TOOLS_COUNTERS_H
#define FLOWSCOPE_TOOLS_COUNTERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "ingest/ingest.h"
#include "qq/qq.h"

/* One counter: its name after the prefix, and a uint64_t or uint32_t field (or a sum). */
struct counter {
	const char *name;
	size_t offset; /* of the field in the component's struct */
	size_t size;   /* of the field: 4 or 8 bytes; 0: derived(stats) gives the value */
	uint64_t (*derived)(const void *stats);
};

/* Flow tracking, per analyzer and in total (split_across_analyzers in total only). */
struct counters_flowtrack {
	uint64_t packets, flows, evicted, split_across_analyzers;
};

/* What record's dumpers add to the archive writers' counters. */
struct counters_writer {
	struct archive_writer_stats w; /* added up over the dumpers */
	uint64_t dropped_oversize;     /* packets larger than the archive stores */
	uint64_t dropped_time;         /* packets after 2106-02-07 (a pcap record's u32 seconds) */
};

/* record's trigger dumping (dumper threads). */
struct counters_dumper {
	uint64_t rules_added, triggered_packets, unselected_packets;
};

/* record's triggers from outside (--listen: POST /api/v1/trigger; an alert log). */
struct counters_trigger {
	uint64_t api_requests, eve_requests, refused, flows, reached_back_packets, too_late,
	    pending, active, marked_records;
};

/* record --eve: the alert log followed (docs/triggers.md). */
struct counters_eve {
	uint64_t lines, alerts, skipped, malformed, filtered, too_long, rotations, truncations,
	    open_errors;
};

/* record --ipfix: the exporters' messages (docs/ipfix.md). */
struct counters_ipfix {
	uint64_t messages, records, templates, send_errors;
};

/* record --flow-export: rows sent to ClickHouse (docs/clickhouse.md). */
struct counters_flow_export {
	uint64_t rows, batches, segments, skipped_batches, missed_segments, pending_segments,
	    errors, report_rows, through_seconds;
};

/* record's retention (--max-disk, --max-age). */
struct counters_retention {
	uint64_t dropped_segments, dropped_bytes, archive_bytes, dropped_pinned_segments;
};

/* monitor's trigger lines. */
struct counters_monitor {
	uint64_t triggers;
};

/* The tables (their element counts in the _n constants), one per struct above. */
extern const struct counter counters_ingest[];   /* struct ingest_stats, "ingest.KIND[.qN]" */
extern const struct counter counters_qq[];       /* struct qq_stats, "qq" */
extern const struct counter counters_analyzer[]; /* counters_flowtrack, "flowtrack.analyzerN" */
extern const struct counter counters_flows[];    /* counters_flowtrack, "flowtrack" */
extern const struct counter counters_module[];   /* struct ft_engine_stats, "module.N" */
extern const struct counter counters_archive[];  /* counters_writer, "archive.writer" */
extern const struct counter counters_dump[];     /* counters_dumper, "dumper" */
extern const struct counter counters_ret[];      /* counters_retention, "retention" */
extern const struct counter counters_trig[];     /* counters_trigger, "trigger" */
extern const struct counter counters_eve[];      /* counters_eve, "eve" */
extern const struct counter counters_ipfix[];    /* counters_ipfix, "ipfix" */
extern const struct counter counters_fx[];       /* counters_flow_export, "flow_export" */
extern const struct counter counters_mon[];      /* counters_monitor, "monitor" */
extern const size_t counters_ingest_n, counters_qq_n, counters_analyzer_n, counters_flows_n,
    counters_module_n, counters_archive_n, counters_dump_n, counters_ret_n, counters_mon_n,
    counters_trig_n, counters_eve_n, counters_ipfix_n, counters_fx_n;

/* The value of counter c in stats (a struct of c's table). */
uint64_t counter_value(const struct counter *c, const void *stats);

/*
 * Appends " prefix.name=value" for each of the n counters of table t to f
 * (no space before the first when first is set): a line is built by one or
 * more calls and ended by the caller.
 */
void counters_print(FILE *f, const char *prefix, const struct counter *t, size_t n,
                    const void *stats, int first);

/* A whole line: counters_print(..., 1) and a newline. */
void counters_print_line(FILE *f, const char *prefix, const struct counter *t, size_t n,
                         const void *stats);

/*
 * Writes the counters of a report (the text counters_print lines make, with
 * "module.N: NAME" lines before module N's counters; other lines are skipped)
 * to out in Prometheus's text exposition format 0.0.4 (tools/metrics.c;
 * names in docs/counters.md).  Returns 0; -EINVAL with one line in err when
 * a counter has no metric (nothing is written then); -ENOMEM.
 */
int counters_prometheus(FILE *out, const char *report, char *err, size_t errlen);

/* One gauge family of one sample, with its HELP and TYPE lines. */
void counters_prometheus_gauge(FILE *out, const char *name, const char *help, uint64_t value);

/*
 * An archive's metrics: its size (s, from archive_summary) as flowscope_archive_*
 * gauges, then last_run's counters (archive_run_report; NULL: none) as
 * counters_prometheus() writes them.  A report with a counter that has no
 * metric (stored by another flowscope version) is left out with a comment
 * line saying why ("# flowscope: ...").  0, or -ENOMEM.
 */
int counters_prometheus_archive(FILE *out, const struct archive_summary *s, const char *last_run,
                                char *err, size_t errlen);

/* The last run's part of that: its counters, or the comment line saying why they are left out. */
int counters_prometheus_archive_run(FILE *out, const char *last_run, char *err, size_t errlen);

/* A gauge of a fractional value (a ratio, seconds). */
void counters_prometheus_gauge_f(FILE *out, const char *name, const char *help, double value);

/*
 * An open archive's metrics, read now (a read transaction of its own:
 * thread-safe): the flowscope_archive_* gauges, the free bytes of its
 * filesystem (flowscope_archive_disk_free_bytes), then, when last_run is
 * set, the last run's counters (a recorder, whose own run is live, leaves
 * them out).  0, ARCHIVE_E_* or -ENOMEM.
 */
int counters_prometheus_archive_now(FILE *out, struct archive *a, int last_run);

struct query_api_counters;

/*
 * The HTTP API's counters (query_api_counters()) as flowscope_api_* families:
 * requests and responses by status class, 429s, aborted requests, queries,
 * failed queries, bytes sent, the query duration histogram (seconds), and
 * the running queries and open connections as gauges (docs/metrics.md).
 */
void counters_prometheus_api(FILE *out, const struct query_api_counters *n);

/*
 * The same for an open archive (a struct archive *), in the shape of the HTTP
 * API's GET /metrics callback (query.h: query_api_config.metrics), so
 * `flowscope serve` can pass it with the archive as its argument: *text is
 * malloc'd (the caller frees it), *len its length.  Thread-safe (a read
 * transaction of its own per call).  0, ARCHIVE_E_* or a negative errno,
 * *text NULL then.
 */
int counters_metrics_archive(void *archive, char **text, size_t *len);

#endif
