/*
 * The counters of counters.h in Prometheus's text exposition format (0.0.4):
 * a final report's dotted "name=value" lines become metric families named
 * flowscope_<component>_<metric>, counters ending in _total, sizes in bytes,
 * instances as labels (source and queue, analyzer, module and its name) and
 * drop reasons as a "reason" label.  docs/counters.md lists every name.
 *
 * The input is the report text (what record prints at exit, stores in the
 * archive and could print at any moment), so one function serves an
 * archive's last run (flowscope info --metrics) and a live recorder alike.
 * A totals line and its instances (ingest.file and ingest.file.q0) go to
 * different families (flowscope_ingest_* and flowscope_ingest_queue_*), so
 * sum() over a family never counts a packet twice.  A counter without a row
 * in the table below is an error, so a counter added to counters.c cannot
 * go missing here (tests/e2e/metrics.sh runs every component).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "archive/archive.h"
#include "query/query.h"
#include "tools/counters.h"

enum metric_type { GAUGE, COUNTER, OMIT };

#define LABELS_MAX 640

/* One counter of a component: its metric (after flowscope_<family>_) and meaning. */
struct metric_row {
	const char *counter; /* the dotted name's last part */
	const char *metric;  /* without the family prefix; counters end in _total */
	enum metric_type type;
	const char *reason; /* not NULL: a "reason" label value */
	const char *help;
};

#define DROP_HELP "packets lost, by reason (docs/counters.md)"
static const struct metric_row ingest_rows[] = {
    {"packets", "packets_total", COUNTER, NULL, "packets the source delivered"},
    {"wire_bytes", "wire_bytes_total", COUNTER, NULL, "their lengths on the wire"},
    {"captured_bytes", "captured_bytes_total", COUNTER, NULL, "their captured bytes"},
    {"drops", NULL, OMIT, NULL, NULL}, /* the sum of the reasons: sum without (reason) */
    {"dropped_kernel", "dropped_packets_total", COUNTER, "kernel", DROP_HELP},
    {"dropped_iface", "dropped_packets_total", COUNTER, "iface", DROP_HELP},
    {"imissed", "dropped_packets_total", COUNTER, "imissed", DROP_HELP},
    {"ierrors", "dropped_packets_total", COUNTER, "ierrors", DROP_HELP},
    {"rx_nombuf", "dropped_packets_total", COUNTER, "rx_nombuf", DROP_HELP},
    {"dropped_oversize", "dropped_packets_total", COUNTER, "oversize", DROP_HELP},
    {"dropped_time", "dropped_packets_total", COUNTER, "time", DROP_HELP},
    {"dropped_qq", "dropped_packets_total", COUNTER, "qq", DROP_HELP},
    {"truncated_records", "truncated_records_total", COUNTER, NULL,
     "records cut short by the end of the file"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row qq_rows[] = {
    {"size_bytes", "size_bytes", GAUGE, NULL, "the ring's size"},
    {"chunks", "chunks", GAUGE, NULL, "the ring's chunks"},
    {"packets", "packets_total", COUNTER, NULL, "packets enqueued into the ring"},
    {"captured_bytes", "captured_bytes_total", COUNTER, NULL, "their captured bytes"},
    {"overwritten_packets", "overwritten_packets_total", COUNTER, NULL,
     "packets lost in chunks overwritten before the dumpers took them"},
    {"overwritten_chunks", "overwritten_chunks_total", COUNTER, NULL, "chunks overwritten"},
    {"overwritten_bytes", "overwritten_bytes_total", COUNTER, NULL,
     "captured bytes of the packets overwritten"},
    {"dropped_busy", "dropped_busy_packets_total", COUNTER, NULL,
     "packets lost: the ring full and its oldest chunk being read"},
    {"backpressure_waits", "backpressure_waits_total", COUNTER, NULL,
     "times a file source waited for room"},
    {"prefaulted_bytes", "prefaulted_bytes", GAUGE, NULL,
     "ring bytes populated so far by the background pre-fault"},
    {"prefault_failed", "prefault_failed", GAUGE, NULL,
     "1 if the kernel could not back the rest of the ring"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row flowtrack_rows[] = {
    {"packets", "packets_total", COUNTER, NULL, "packets the analyzers looked at"},
    {"flows", "flows_total", COUNTER, NULL, "flows inserted into the flow tables"},
    {"evicted", "evicted_flows_total", COUNTER, NULL, "flows evicted to make room"},
    {"split_across_analyzers", "split_flows", GAUGE, NULL,
     "flows seen by more than one analyzer (computed at the end)"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row module_rows[] = {
    {"packets", "packets_total", COUNTER, NULL, "packets the module was given"},
    {"flows", "flows_total", COUNTER, NULL, "flows the module saw"},
    {"triggers", "triggers_total", COUNTER, NULL, "flows the module triggered on"},
    {"expired", "expired_flows_total", COUNTER, NULL, "flows the module's checker expired"},
    {"evicted", "evicted_flows_total", COUNTER, NULL, "flows evicted from the module's table"},
    {"bad_filters", "bad_filters_total", COUNTER, NULL,
     "triggered flows whose module-built filter did not compile"},
    {"errors", "errors_total", COUNTER, NULL, "runtime errors of the module"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row dumper_rows[] = {
    {"rules_added", "rules_added_total", COUNTER, NULL, "dump rules added (one per trigger)"},
    {"triggered_packets", "triggered_packets_total", COUNTER, NULL, "packets a dump rule selected"},
    {"unselected_packets", "unselected_packets_total", COUNTER, NULL,
     "packets not archived: no trigger selected them (--capture triggered)"},
    {NULL, NULL, OMIT, NULL, NULL},
};

#define WDROP_HELP "packets the archive writers could not store, by reason"
static const struct metric_row writer_rows[] = {
    {"packets", "packets_total", COUNTER, NULL, "packets stored in segments"},
    {"wire_bytes", "wire_bytes_total", COUNTER, NULL, "their lengths on the wire"},
    {"segments", "segments_total", COUNTER, NULL, "segment files started"},
    {"frames", "frames_total", COUNTER, NULL, "compressed frames written"},
    {"commits", "commits_total", COUNTER, NULL, "index transactions committed"},
    {"pcap_bytes", "pcap_bytes_total", COUNTER, NULL, "uncompressed pcap bytes of the segments"},
    {"file_bytes", "file_bytes_total", COUNTER, NULL, "compressed frame bytes written"},
    {"dropped_oversize", "dropped_packets_total", COUNTER, "oversize", WDROP_HELP},
    {"dropped_time", "dropped_packets_total", COUNTER, "time", WDROP_HELP},
    {"unstored_packets", "unstored_packets_total", COUNTER, NULL,
     "packets not stored because the disk was full"},
    {"unstored_bytes", "unstored_bytes_total", COUNTER, NULL, "their lengths on the wire"},
    {"full_events", "disk_full_events_total", COUNTER, NULL, "times a writer found its disk full"},
    {"max_writes_in_flight", "max_writes_in_flight", GAUGE, NULL,
     "the most segment writes in flight at once"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row retention_rows[] = {
    {"dropped_segments", "dropped_segments_total", COUNTER, NULL,
     "closed segments retention dropped"},
    {"dropped_bytes", "dropped_bytes_total", COUNTER, NULL, "their file bytes"},
    {"archive_bytes", "archive_bytes", GAUGE, NULL, "what the archive used at the last pass"},
    {"dropped_pinned_segments", "dropped_pinned_segments_total", COUNTER, NULL,
     "of the dropped segments, those holding triggered flows (--pin-triggered: for room)"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row trigger_rows[] = {
    {"api_requests", "api_requests_total", COUNTER, NULL,
     "triggers from POST /api/v1/trigger applied"},
    {"eve_requests", "eve_requests_total", COUNTER, NULL, "triggers from an alert log applied"},
    {"refused", "refused_total", COUNTER, NULL,
     "triggers not applied: the recorder stopping, or its analyzers too slow to answer"},
    {"flows", "flows_total", COUNTER, NULL, "flows the triggers found"},
    {"reached_back_packets", "reached_back_packets_total", COUNTER, NULL,
     "packets of those flows from before their trigger"},
    {"too_late", "too_late_flows_total", COUNTER, NULL,
     "flows found whose first packet had left the ring"},
    {"pending", "pending", GAUGE, NULL, "triggers waiting for new flows (for), per analyzer"},
    {"active", "active_flows", GAUGE, NULL, "triggered flows that have not ended"},
    {"marked_records", "marked_records_total", COUNTER, NULL,
     "index records of flows written before their trigger given it (--capture all)"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row ipfix_rows[] = {
    {"messages", "messages_total", COUNTER, NULL, "IPFIX messages sent to the collector (--ipfix)"},
    {"records", "records_total", COUNTER, NULL, "flow (data) records in those messages"},
    {"templates", "templates_total", COUNTER, NULL, "template records in those messages"},
    {"send_errors", "send_errors_total", COUNTER, NULL,
     "messages not sent: the socket buffer full, or the collector's port unreachable"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row flow_export_rows[] = {
    {"rows", "rows_total", COUNTER, NULL, "flow rows inserted into ClickHouse (--flow-export)"},
    {"batches", "batches_total", COUNTER, NULL, "inserts of those rows (at most 65536 rows each)"},
    {"segments", "segments_total", COUNTER, NULL, "segments whose flow rows are all in ClickHouse"},
    {"skipped_batches", "skipped_batches_total", COUNTER, NULL,
     "batches found in ClickHouse already (sent before a failure), not sent again"},
    {"missed_segments", "missed_segments_total", COUNTER, NULL,
     "segments gone from the archive before their rows were sent (retention)"},
    {"pending_segments", "pending_segments", GAUGE, NULL,
     "closed segments whose rows are not sent yet"},
    {"errors", "errors_total", COUNTER, NULL,
     "export passes that failed (ClickHouse unreachable or refusing): retried with back-off"},
    {"report_rows", "report_rows_total", COUNTER, NULL,
     "counter rows inserted into the _counters table"},
    {"through_seconds", "through_seconds", GAUGE, NULL,
     "every packet before this time (seconds since the epoch) is in a segment sent"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row eve_rows[] = {
    {"lines", "lines_total", COUNTER, NULL, "complete lines read from the alert log (--eve)"},
    {"alerts", "alerts_total", COUNTER, NULL, "alert lines parsed (passed or filtered)"},
    {"skipped", "skipped_lines_total", COUNTER, NULL,
     "lines of other event types, notices about no flow"},
    {"malformed", "malformed_lines_total", COUNTER, NULL, "lines refused (logged with the reason)"},
    {"filtered", "filtered_alerts_total", COUNTER, NULL, "alerts --eve-filter did not pass"},
    {"too_long", "too_long_lines_total", COUNTER, NULL, "lines over 1 MiB, skipped unread"},
    {"rotations", "rotations_total", COUNTER, NULL, "switches to a new file at the path"},
    {"truncations", "truncations_total", COUNTER, NULL, "times the file shrank: read again from 0"},
    {"open_errors", "open_errors_total", COUNTER, NULL,
     "files at the path that could not be opened (permissions): retried"},
    {NULL, NULL, OMIT, NULL, NULL},
};

static const struct metric_row monitor_rows[] = {
    {"triggers", "triggers_total", COUNTER, NULL, "trigger lines printed"},
    {NULL, NULL, OMIT, NULL, NULL},
};

/* One sample, ready to print: its family, labels and value. */
struct metric_sample {
	char family[96]; /* flowscope_..., the metric's full name */
	const struct metric_row *row;
	char labels[LABELS_MAX]; /* 'k="v",...' without braces; may be empty */
	uint64_t value;
};

struct metric_set {
	struct metric_sample *s;
	size_t n, cap;
	char names[64][256]; /* module N's name (from its "module.N: NAME" line) */
};

/* Appends k="v" to labels, v escaped as the format wants (\\, \", \n). */
static void label_add(char *labels, size_t cap, const char *k, const char *v, size_t vlen)
{
	size_t n = strlen(labels);
	int w = snprintf(labels + n, cap - n, "%s%s=\"", n ? "," : "", k);
	if (w < 0 || (size_t)w + 2 > cap - n) { /* no room: the label is left out whole */
		labels[n] = '\0';
		return;
	}
	n += (size_t)w;
	for (size_t i = 0; i < vlen && n + 4 < cap; i++) { /* room for \x, '"' and NUL */
		char c = v[i];
		if (c == '\\' || c == '"' || c == '\n')
			labels[n++] = '\\';
		labels[n++] = c == '\n' ? 'n' : c;
	}
	labels[n++] = '"';
	labels[n] = '\0';
}

/* A dotted word's component: family name, rows, and its labels; the counter's name. */
static int classify(struct metric_set *ms, const char *word, size_t len, char *family,
                    const struct metric_row **rows, char *labels, const char **counter)
{
	const char *dot = memchr(word, '.', len), *end = word + len;
	if (!dot)
		return -EINVAL;
	size_t clen = (size_t)(dot - word);
	const char *rest = dot + 1, *d2 = memchr(rest, '.', (size_t)(end - rest));
	unsigned n;
	int used;
	*counter = d2 ? d2 + 1 : rest;
	labels[0] = '\0';
	if (clen == 6 && memcmp(word, "ingest", 6) == 0 && d2) {
		label_add(labels, LABELS_MAX, "source", rest, (size_t)(d2 - rest));
		const char *d3 = memchr(d2 + 1, '.', (size_t)(end - d2 - 1));
		*rows = ingest_rows;
		if (d3 && sscanf(d2 + 1, "q%u%n", &n, &used) == 1 && d2 + 1 + used == d3) {
			char q[16];
			snprintf(q, sizeof(q), "%u", n);
			label_add(labels, LABELS_MAX, "queue", q, strlen(q));
			*counter = d3 + 1;
			strcpy(family, "flowscope_ingest_queue_");
		} else {
			strcpy(family, "flowscope_ingest_");
		}
	} else if (clen == 2 && memcmp(word, "qq", 2) == 0) {
		*rows = qq_rows;
		strcpy(family, "flowscope_qq_");
	} else if (clen == 9 && memcmp(word, "flowtrack", 9) == 0) {
		*rows = flowtrack_rows;
		if (d2 && sscanf(rest, "analyzer%u%n", &n, &used) == 1 && rest + used == d2) {
			char a[16];
			snprintf(a, sizeof(a), "%u", n);
			label_add(labels, LABELS_MAX, "analyzer", a, strlen(a));
			strcpy(family, "flowscope_flowtrack_analyzer_");
		} else {
			*counter = rest;
			strcpy(family, "flowscope_flowtrack_");
		}
	} else if (clen == 6 && memcmp(word, "module", 6) == 0 && d2 &&
	           sscanf(rest, "%u%n", &n, &used) == 1 && rest + used == d2) {
		char m[16];
		snprintf(m, sizeof(m), "%u", n);
		label_add(labels, LABELS_MAX, "module", m, strlen(m));
		const char *name = n < 64 ? ms->names[n] : "";
		label_add(labels, LABELS_MAX, "name", name, strlen(name));
		*rows = module_rows;
		strcpy(family, "flowscope_module_");
	} else if (clen == 6 && memcmp(word, "dumper", 6) == 0) {
		*rows = dumper_rows;
		strcpy(family, "flowscope_dumper_");
	} else if (clen == 7 && memcmp(word, "archive", 7) == 0 && d2 && (size_t)(d2 - rest) == 6 &&
	           memcmp(rest, "writer", 6) == 0) {
		*rows = writer_rows;
		strcpy(family, "flowscope_archive_writer_");
	} else if (clen == 9 && memcmp(word, "retention", 9) == 0) {
		*counter = rest;
		*rows = retention_rows;
		strcpy(family, "flowscope_retention_");
	} else if (clen == 7 && memcmp(word, "trigger", 7) == 0) {
		*counter = rest;
		*rows = trigger_rows;
		strcpy(family, "flowscope_trigger_");
	} else if (clen == 5 && memcmp(word, "ipfix", 5) == 0) {
		*counter = rest;
		*rows = ipfix_rows;
		strcpy(family, "flowscope_ipfix_");
	} else if (clen == 11 && memcmp(word, "flow_export", 11) == 0) {
		*counter = rest;
		*rows = flow_export_rows;
		strcpy(family, "flowscope_flow_export_");
	} else if (clen == 3 && memcmp(word, "eve", 3) == 0) {
		*counter = rest;
		*rows = eve_rows;
		strcpy(family, "flowscope_eve_");
	} else if (clen == 7 && memcmp(word, "monitor", 7) == 0) {
		*counter = rest;
		*rows = monitor_rows;
		strcpy(family, "flowscope_monitor_");
	} else {
		return -EINVAL;
	}
	if (*rows == qq_rows || *rows == dumper_rows)
		*counter = rest;
	return 0;
}

static int sample_add(struct metric_set *ms, const char *word, size_t len, char *err, size_t errlen)
{
	const char *eq = memchr(word, '=', len);
	char family[96], labels[LABELS_MAX];
	const struct metric_row *rows, *row = NULL;
	const char *counter;
	if (!eq || classify(ms, word, (size_t)(eq - word), family, &rows, labels, &counter) != 0)
		goto unknown;
	for (const struct metric_row *r = rows; r->counter; r++)
		if (strlen(r->counter) == (size_t)(eq - counter) &&
		    memcmp(r->counter, counter, (size_t)(eq - counter)) == 0)
			row = r;
	if (!row)
		goto unknown;
	if (row->type == OMIT)
		return 0;
	char *end;
	uint64_t v = strtoull(eq + 1, &end, 10);
	if (end != word + len || !isdigit((unsigned char)eq[1]))
		goto unknown;
	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? ms->cap * 2 : 64;
		struct metric_sample *s = realloc(ms->s, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		ms->s = s;
		ms->cap = cap;
	}
	struct metric_sample *s = &ms->s[ms->n++];
	snprintf(s->family, sizeof(s->family), "%s%s", family, row->metric);
	strcpy(s->labels, labels);
	if (row->reason)
		label_add(s->labels, sizeof(s->labels), "reason", row->reason, strlen(row->reason));
	s->row = row;
	s->value = v;
	return 0;
unknown:
	snprintf(err, errlen, "counter '%.*s' has no Prometheus metric (tools/metrics.c)", (int)len,
	         word);
	return -EINVAL;
}

/* One report line: counters (first word holds '='), a module's name, or a human line. */
static int line_add(struct metric_set *ms, const char *line, size_t len, char *err, size_t errlen)
{
	unsigned m;
	int used = 0;
	size_t w = strcspn(line, " \n");
	if (w > len)
		w = len;
	if (sscanf(line, "module.%u:%n", &m, &used) == 1 && used && (size_t)used == w) {
		if (m < 64)
			snprintf(ms->names[m], sizeof(ms->names[m]), "%.*s",
			         (int)(len > w + 1 ? len - w - 1 : 0), line + w + 1);
		return 0;
	}
	if (!memchr(line, '=', w))
		return 0; /* a human line */
	for (size_t i = 0; i < len;) {
		size_t n = strcspn(line + i, " \n");
		if (n > len - i)
			n = len - i;
		int r = n ? sample_add(ms, line + i, n, err, errlen) : 0;
		if (r)
			return r;
		i += n + 1;
	}
	return 0;
}

/* Families in order of first appearance, each: HELP, TYPE, then its samples. */
static void exposition_write(FILE *out, const struct metric_set *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		size_t j = 0;
		while (j < i && strcmp(ms->s[j].family, ms->s[i].family) != 0)
			j++;
		if (j < i)
			continue; /* printed with its family */
		const struct metric_sample *f = &ms->s[i];
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->family, f->row->help, f->family,
		        f->row->type == COUNTER ? "counter" : "gauge");
		for (size_t k = i; k < ms->n; k++)
			if (strcmp(ms->s[k].family, f->family) == 0)
				fprintf(out, "%s%s%s%s %" PRIu64 "\n", f->family,
				        ms->s[k].labels[0] ? "{" : "", ms->s[k].labels,
				        ms->s[k].labels[0] ? "}" : "", ms->s[k].value);
	}
}

void counters_prometheus_gauge(FILE *out, const char *name, const char *help, uint64_t value)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name,
	        value);
}

int counters_prometheus(FILE *out, const char *report, char *err, size_t errlen)
{
	struct metric_set *ms = calloc(1, sizeof(*ms));
	int r = 0;
	if (!ms)
		return -ENOMEM;
	/* a module's name line comes before its counters (docs/counters.md) */
	for (const char *line = report, *nl; line && *line && !r; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		r = line_add(ms, line, nl ? (size_t)(nl - line) : strlen(line), err, errlen);
	}
	if (!r)
		exposition_write(out, ms);
	free(ms->s);
	free(ms);
	return r;
}

int counters_prometheus_archive(FILE *out, const struct archive_summary *s, const char *last_run,
                                char *err, size_t errlen)
{
	counters_prometheus_gauge(out, "flowscope_archive_segments", "segments in the archive",
	                          s->segments);
	counters_prometheus_gauge(out, "flowscope_archive_packets", "packets in the archive",
	                          s->packets);
	counters_prometheus_gauge(out, "flowscope_archive_wire_bytes", "their lengths on the wire",
	                          s->wire_bytes);
	counters_prometheus_gauge(out, "flowscope_archive_stored_bytes", "compressed segment bytes",
	                          s->file_bytes);
	counters_prometheus_gauge(out, "flowscope_archive_index_bytes", "index bytes in use",
	                          s->index_used);
	return last_run ? counters_prometheus_archive_run(out, last_run, err, errlen) : 0;
}

int counters_prometheus_archive_run(FILE *out, const char *last_run, char *err, size_t errlen)
{
	int r = counters_prometheus(out, last_run, err, errlen);
	if (r == -EINVAL) /* a report of an older (or newer) flowscope: said, not failed */
		fprintf(out, "# flowscope: the last run's counters are left out: %s\n", err);
	return r == -EINVAL ? 0 : r;
}

void counters_prometheus_gauge_f(FILE *out, const char *name, const char *help, double value)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.9g\n", name, help, name, name, value);
}

int counters_prometheus_archive_now(FILE *out, struct archive *a, int last_run)
{
	struct archive_rtxn *t = NULL;
	struct archive_summary s;
	struct statvfs v;
	char *report = NULL, err[256];
	int r = archive_rtxn_begin(a, &t);
	if (r == 0 && (r = archive_summary(t, &s)) == 0 && last_run)
		r = archive_run_report(t, &report);
	archive_rtxn_end(t);
	if (r == 0)
		r = counters_prometheus_archive(out, &s, NULL, err, sizeof(err));
	if (r == 0 && statvfs(archive_dir(a), &v) == 0) /* unknown: left out */
		counters_prometheus_gauge(out, "flowscope_archive_disk_free_bytes",
		                          "bytes free for the recorder on the archive's filesystem",
		                          (uint64_t)v.f_bavail * v.f_frsize);
	if (r == 0 && report)
		r = counters_prometheus_archive_run(out, report, err, sizeof(err));
	free(report);
	return r;
}

int counters_metrics_archive(void *archive, char **text, size_t *len)
{
	FILE *f = open_memstream(text, len);
	if (!f) {
		*text = NULL;
		return -ENOMEM;
	}
	int r = counters_prometheus_archive_now(f, archive, 1);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r) {
		free(*text);
		*text = NULL;
	}
	return r;
}

/* ---- the HTTP API's counters ----------------------------------------------------------------- */

static void api_family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void api_value(FILE *out, const char *name, const char *type, const char *help, uint64_t v)
{
	api_family(out, name, type, help);
	fprintf(out, "%s %" PRIu64 "\n", name, v);
}

/* Query durations as a histogram in seconds: cumulative buckets, +Inf equal to _count.  The
 * counters are read one by one (relaxed): a query ending between two reads is evened out so
 * that the buckets never decrease. */
static void api_histogram(FILE *out, const struct query_api_counters *n)
{
	static const char *const le[QUERY_API_LATENCY_BUCKETS] = {"0.01", "0.1", "1", "10", "60"};
	static const char name[] = "flowscope_api_query_duration_seconds";
	uint64_t b[QUERY_API_LATENCY_BUCKETS] = {0}, count = n->queries; /* filled from the top */
	for (int i = QUERY_API_LATENCY_BUCKETS - 1; i >= 0; i--) {
		uint64_t up = i == QUERY_API_LATENCY_BUCKETS - 1 ? count : b[i + 1];
		b[i] = n->query_le[i] < up ? n->query_le[i] : up;
	}
	api_family(out, name, "histogram",
	           "/api/v1/query answers, from their start to the end of the stream");
	for (int i = 0; i < QUERY_API_LATENCY_BUCKETS; i++)
		fprintf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le[i], b[i]);
	fprintf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.9f\n%s_count %" PRIu64 "\n",
	        name, count, name, (double)n->query_ns / 1e9, name, count);
}

void counters_prometheus_api(FILE *out, const struct query_api_counters *n)
{
	api_value(out, "flowscope_api_requests_total", "counter",
	          "requests ended (answered, refused or cut off)", n->requests);
	api_family(out, "flowscope_api_responses_total", "counter",
	           "requests answered, by the class of their status");
	fprintf(out,
	        "flowscope_api_responses_total{code=\"2xx\"} %" PRIu64 "\n"
	        "flowscope_api_responses_total{code=\"4xx\"} %" PRIu64 "\n"
	        "flowscope_api_responses_total{code=\"5xx\"} %" PRIu64 "\n",
	        n->responses_2xx, n->responses_4xx, n->responses_5xx);
	api_value(out, "flowscope_api_busy_responses_total", "counter",
	          "requests refused with 429: --max-queries reached", n->refused_busy);
	api_value(out, "flowscope_api_aborted_requests_total", "counter",
	          "requests ended before their answer was whole", n->aborted);
	api_value(out, "flowscope_api_queries_total", "counter",
	          "/api/v1/query answers started (status 200)", n->queries);
	api_value(out, "flowscope_api_failed_queries_total", "counter",
	          "/api/v1/query requests answered with an error or cut off", n->query_failed);
	api_value(out, "flowscope_api_query_sent_bytes_total", "counter",
	          "bytes of /api/v1/query answers handed to the connections", n->query_bytes);
	api_histogram(out, n);
	api_value(out, "flowscope_api_queries_running", "gauge",
	          "queries and flow listings running now", n->queries_running);
	api_value(out, "flowscope_api_connections", "gauge", "connections open now",
	          n->connections);
}
