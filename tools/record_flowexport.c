/*
 * record --flow-export clickhouse://HOST:PORT/DB.TABLE: the archive's flow
 * records into ClickHouse (docs/clickhouse.md), and the recorder's counters
 * beside them (DB.TABLE_counters).
 *
 * One thread of its own, so capture never waits on ClickHouse: every
 * --flow-export-interval it runs archive_export_pass() (the closed segments
 * past the index's cursor, in order, each batch counted in the table before
 * it is sent) and inserts a row per counter.  The spool is the archive
 * itself: while ClickHouse is down or slow the segments wait in the index
 * (bounded by retention: a segment dropped before it was sent is counted in
 * flow_export.missed_segments), and passes are retried with back-off, 1 s
 * doubling to a minute.  At the end of the recording (the segments closed)
 * one last pass; what it cannot send goes with the next run.
 *
 * Threading: the thread owns the ClickHouse handle and its pass statistics;
 * the counters others read (the report, /metrics) are a copy it publishes
 * under fx->lock, which also carries stop and the wake-up.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/clickhouse.h"
#include "tools/record.h"

#define CMD "record"
#define BACKOFF_MIN_NS 1000000000ull
#define BACKOFF_MAX_NS 60000000000ull
#define DEFAULT_INTERVAL_NS 10000000000ull
#define CH_TIMEOUT_S 60L

struct record_flowexport {
	struct record_pipeline *pl;
	struct ch_target target;
	char sensor[64];
	char cursor[512]; /* the index's cursor name: the target and the sensor */
	struct ch *ch;    /* the thread's (and the main thread's after the join) */
	pthread_t thread;
	int running; /* main thread */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;                        /* lock: main -> thread */
	struct counters_flow_export pub; /* lock: thread writes, any reads */
	struct archive_export_stats st;  /* the thread's */
	uint64_t errors, report_rows;    /* the thread's */
	int failing;                     /* the thread's: the last pass failed (logged) */
	char err[CH_ERRBUF];             /* the thread's: the sink's last failure */
};

static int bad(const char *opt, const char *arg, const char *why)
{
	cli_error(CMD, "%s '%s': %s", opt, arg, why);
	return EXIT_USAGE;
}

int record_flowexport_parse(struct record_opts *o, int c, const char *arg)
{
	struct ch_target t;
	char err[128];
	switch (c) {
	case RECORD_OPT_FLOW_EXPORT:
		if (ch_target_parse(arg, &t, err, sizeof(err)) != 0)
			return bad("--flow-export", arg, err);
		o->flow_export = arg;
		return 0;
	case RECORD_OPT_SENSOR:
		if (!ch_name_ok(arg))
			return bad("--sensor", arg, "1..63 of A-Z a-z 0-9 . _ -");
		o->sensor = arg;
		return 0;
	case RECORD_OPT_FLOW_EXPORT_INTERVAL:
		if (cli_parse_duration(arg, &o->flow_export_ns) != 0 ||
		    o->flow_export_ns < 100000000ull)
			return bad("--flow-export-interval", arg, "a duration of at least 100ms");
		return 0;
	}
	return -1;
}

/* ---- the sink: ClickHouse -------------------------------------------------------------- */

static int sink_count(void *arg, const struct archive_export_batch *b, uint64_t *have)
{
	struct record_flowexport *fx = arg;
	char sql[512], err[CH_ERRBUF], *ans = NULL;
	snprintf(sql, sizeof(sql),
	         "SELECT count() FROM %s.%s WHERE sensor = '%s' AND segment = %" PRIu64
	         " AND segment_created_ns = %" PRIu64 " AND seq >= %u AND seq < %" PRIu64,
	         fx->target.db, fx->target.table, fx->sensor, b->seg, b->seg_created_ns, b->first,
	         (uint64_t)b->first + b->n);
	int r = ch_exec(fx->ch, sql, NULL, 0, &ans, err);
	if (r == 0) {
		char *end;
		*have = strtoull(ans, &end, 10);
		if (end == ans || (*end && *end != '\n')) {
			snprintf(fx->err, sizeof(fx->err), "%s: count() answered '%.40s'",
			         fx->target.name, ans);
			r = CH_E_REFUSED;
		}
	} else {
		snprintf(fx->err, sizeof(fx->err), "%s", err);
	}
	free(ans);
	return r;
}

static int sink_insert(void *arg, const uint8_t *rows, size_t len, uint32_t n)
{
	struct record_flowexport *fx = arg;
	char sql[512], err[CH_ERRBUF];
	(void)n;
	/* insert_distributed_sync: a Distributed table has the rows when the answer comes */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO %s.%s (" ARCHIVE_EXPORT_COLUMNS ") FORMAT RowBinary", fx->target.db,
	         fx->target.table);
	int r = ch_exec(fx->ch, sql, rows, len, NULL, err);
	if (r)
		snprintf(fx->err, sizeof(fx->err), "%s", err);
	return r;
}

/* The recorder's counters now as JSONEachRow rows (name: the dotted counter, docs/counters.md). */
static int report_rows(struct record_flowexport *fx, char **body, size_t *len, uint64_t *n)
{
	char *report = NULL;
	size_t rlen = 0;
	FILE *f = open_memstream(body, len);
	if (!f || record_live_counters(fx->pl, &report, &rlen) != 0) {
		if (f)
			fclose(f);
		free(report);
		return -ENOMEM;
	}
	uint64_t now = cli_now_ns();
	*n = 0;
	for (char *w = strtok(report, " \n"); w; w = strtok(NULL, " \n")) {
		char *eq = strchr(w, '='), *end;
		unsigned long long v = eq ? strtoull(eq + 1, &end, 10) : 0;
		if (!eq || eq == w || end == eq + 1 || *end)
			continue; /* a human line's words */
		fprintf(f,
		        "{\"sensor\":\"%s\",\"ts_ns\":%" PRIu64
		        ",\"name\":\"%.*s\",\"value\":%llu}\n",
		        fx->sensor, now, (int)(eq - w), w, v);
		++*n;
	}
	free(report);
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

static int counters_send(struct record_flowexport *fx)
{
	char sql[256], *body = NULL;
	size_t len = 0;
	uint64_t n = 0;
	int r = report_rows(fx, &body, &len, &n);
	snprintf(sql, sizeof(sql), "INSERT INTO %s.%s_counters FORMAT JSONEachRow", fx->target.db,
	         fx->target.table);
	if (r == 0 && (r = ch_exec(fx->ch, sql, body, len, NULL, fx->err)) == 0)
		fx->report_rows += n;
	free(body);
	return r;
}

/* ---- the thread -------------------------------------------------------------------------- */

static void publish(struct record_flowexport *fx)
{
	struct counters_flow_export c = {.rows = fx->st.rows,
	                                 .batches = fx->st.batches,
	                                 .segments = fx->st.segments,
	                                 .skipped_batches = fx->st.skipped_batches,
	                                 .missed_segments = fx->st.missed_segments,
	                                 .pending_segments = fx->st.pending_segments,
	                                 .errors = fx->errors,
	                                 .report_rows = fx->report_rows,
	                                 .through_seconds = fx->st.through_ns / 1000000000ull};
	pthread_mutex_lock(&fx->lock);
	fx->pub = c;
	pthread_mutex_unlock(&fx->lock);
}

/* A pass and the counters: 0, or the error (logged when failing starts, and when it ends). */
static int pass(struct record_flowexport *fx)
{
	struct archive_export e = {.target = fx->cursor,
	                           .sensor = fx->sensor,
	                           .count = sink_count,
	                           .insert = sink_insert,
	                           .arg = fx};
	fx->err[0] = '\0';
	int r = archive_export_pass(fx->pl->arch, &e, &fx->st);
	if (r && !fx->err[0])
		snprintf(fx->err, sizeof(fx->err), "archive %s: %s", fx->pl->o.archive,
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	publish(fx); /* the counters rows carry this pass's */
	if (r == 0)
		r = counters_send(fx);
	if (r) {
		fx->errors++;
		if (!fx->failing)
			cli_warn(CMD,
			         "--flow-export: %s (retrying with back-off; the flow records wait "
			         "in the archive's index)",
			         fx->err);
	} else if (fx->failing) {
		cli_info(CMD, "--flow-export: %s answers again", fx->target.name);
	}
	fx->failing = r != 0;
	publish(fx);
	return r;
}

/* Waits until `ns` from now or stop; returns stop. */
static int wait_for(struct record_flowexport *fx, uint64_t ns)
{
	uint64_t at = cli_mono_ns() + ns; /* CLOCK_MONOTONIC, as the condition's clock */
	struct timespec ts = {.tv_sec = (time_t)(at / 1000000000ull),
	                      .tv_nsec = (long)(at % 1000000000ull)};
	pthread_mutex_lock(&fx->lock);
	while (!fx->stop && pthread_cond_timedwait(&fx->wake, &fx->lock, &ts) != ETIMEDOUT)
		;
	int stop = fx->stop;
	pthread_mutex_unlock(&fx->lock);
	return stop;
}

static void *exporter_thread(void *arg)
{
	struct record_flowexport *fx = arg;
	uint64_t interval =
	             fx->pl->o.flow_export_ns ? fx->pl->o.flow_export_ns : DEFAULT_INTERVAL_NS,
	         backoff = 0;
	while (!wait_for(fx, backoff ? backoff : interval)) {
		if (pass(fx) == 0)
			backoff = fx->st.more ? 1 : 0;
		else
			backoff = backoff < BACKOFF_MIN_NS       ? BACKOFF_MIN_NS
			          : backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS
			                                         : backoff * 2;
	}
	return NULL;
}

int record_flowexport_start(struct record_pipeline *pl)
{
	if (!pl->o.flow_export)
		return 0;
	struct record_flowexport *fx = calloc(1, sizeof(*fx));
	char err[128];
	if (!fx)
		return -ENOMEM;
	fx->pl = pl;
	(void)ch_target_parse(pl->o.flow_export, &fx->target, err, sizeof(err)); /* parsed before */
	if (pl->o.sensor)
		snprintf(fx->sensor, sizeof(fx->sensor), "%s", pl->o.sensor);
	else if (gethostname(fx->sensor, sizeof(fx->sensor)) != 0 || !ch_name_ok(fx->sensor))
		snprintf(fx->sensor, sizeof(fx->sensor), "sensor");
	/* a cursor per target and sensor: rows under another name are other rows */
	snprintf(fx->cursor, sizeof(fx->cursor), "%s sensor=%s", fx->target.name, fx->sensor);
	pthread_mutex_init(&fx->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fx->wake, &ca);
	pthread_condattr_destroy(&ca);
	pl->fx = fx;
	int r = ch_open(&fx->target, CH_TIMEOUT_S, &fx->ch);
	if (r)
		return r;
	if ((r = pthread_create(&fx->thread, NULL, exporter_thread, fx)) != 0)
		return -r;
	fx->running = 1;
	return 0;
}

void record_flowexport_stop(struct record_pipeline *pl)
{
	struct record_flowexport *fx = pl->fx;
	if (!fx || !fx->running)
		return;
	pthread_mutex_lock(&fx->lock);
	fx->stop = 1;
	pthread_cond_signal(&fx->wake);
	pthread_mutex_unlock(&fx->lock);
	pthread_join(fx->thread, NULL);
	fx->running = 0;
	/* the segments are closed now: the last pass sends them all, or leaves them to the next run */
	do
		if (pass(fx) != 0)
			break;
	while (fx->st.more);
	if (fx->st.pending_segments)
		cli_info(CMD,
		         "--flow-export: %" PRIu64 " segment(s) not sent yet: the next recording "
		         "with --flow-export %s sends them",
		         fx->st.pending_segments, fx->target.name);
}

void record_flowexport_counters(struct record_pipeline *pl, struct counters_flow_export *c)
{
	struct record_flowexport *fx = pl->fx;
	pthread_mutex_lock(&fx->lock);
	*c = fx->pub;
	pthread_mutex_unlock(&fx->lock);
}

void record_flowexport_close(struct record_pipeline *pl)
{
	struct record_flowexport *fx = pl->fx;
	if (!fx)
		return;
	record_flowexport_stop(pl);
	ch_close(fx->ch);
	pthread_cond_destroy(&fx->wake);
	pthread_mutex_destroy(&fx->lock);
	free(fx);
	pl->fx = NULL;
}
