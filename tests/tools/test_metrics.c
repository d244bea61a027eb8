/*
 * test_metrics: unit tests of the Prometheus exposition (tools/metrics.c) on
 * report texts a file recording cannot make: several RX queues (per-queue
 * families), monitor's line, a module name that needs escaping; and the
 * refusals: a counter without a metric, a value that is not a number; and
 * the GET /metrics callback on a real archive.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "tools/counters.h"

/* The exposition of report (0 expected), malloc'd. */
static char *expose(const char *report)
{
	char *text = NULL, err[256] = "";
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	int r = counters_prometheus(f, report, err, sizeof(err));
	fclose(f);
	if (r)
		fail_msg("counters_prometheus: %d: %s", r, err);
	return text;
}

static void expect_line(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_queues(void **state)
{
	(void)state;
	char *t = expose("run: ... 2 queue(s)\n"
	                 "ingest.dpdk.q0.packets=5 ingest.dpdk.q0.imissed=0\n"
	                 "ingest.dpdk.q1.packets=7 ingest.dpdk.q1.imissed=0\n"
	                 "ingest.dpdk.packets=12 ingest.dpdk.drops=3 ingest.dpdk.imissed=3\n"
	                 "flowtrack.analyzer0.packets=5 flowtrack.analyzer1.packets=7 "
	                 "flowtrack.packets=12 flowtrack.split_across_analyzers=0\n");
	expect_line(t, "# TYPE flowscope_ingest_queue_packets_total counter");
	expect_line(t, "flowscope_ingest_queue_packets_total{source=\"dpdk\",queue=\"0\"} 5");
	expect_line(t, "flowscope_ingest_queue_packets_total{source=\"dpdk\",queue=\"1\"} 7");
	expect_line(t, "flowscope_ingest_packets_total{source=\"dpdk\"} 12");
	expect_line(t,
	            "flowscope_ingest_dropped_packets_total{source=\"dpdk\",reason=\"imissed\"} 3");
	expect_line(t, "flowscope_flowtrack_analyzer_packets_total{analyzer=\"1\"} 7");
	expect_line(t, "flowscope_flowtrack_packets_total 12");
	expect_line(t, "# TYPE flowscope_flowtrack_split_flows gauge");
	assert_null(strstr(t, "drops")); /* the sum of the reasons: no sample */
	/* a family's samples are together, after one HELP and one TYPE */
	assert_non_null(
	    strstr(t, "# TYPE flowscope_ingest_queue_packets_total counter\n"
	              "flowscope_ingest_queue_packets_total{source=\"dpdk\",queue=\"0\"} 5\n"
	              "flowscope_ingest_queue_packets_total{source=\"dpdk\",queue=\"1\"} 7\n"));
	free(t);
}

static void test_monitor_and_names(void **state)
{
	(void)state;
	char *t = expose("module.0: ./m.lua:q=\"a\\b\"\n"
	                 "module.0.triggers=2 module.0.errors=0\n"
	                 "monitor.triggers=2\n");
	expect_line(
	    t, "flowscope_module_triggers_total{module=\"0\",name=\"./m.lua:q=\\\"a\\\\b\\\"\"} 2");
	expect_line(t, "flowscope_monitor_triggers_total 2");
	free(t);
	/* a name longer than a label holds is cut, still a well-formed label */
	char report[1024] = "module.1: ";
	memset(report + 10, '"', 600);
	strcpy(report + 610, "\nmodule.1.errors=4\n");
	t = expose(report);
	const char *s = strstr(t, "\nflowscope_module_errors_total{module=\"1\",name=\"\\\"");
	assert_non_null(s);
	assert_non_null(strstr(s, "\\\"\"} 4\n"));
	free(t);
}

static void test_refused(void **state)
{
	(void)state;
	static const char *bad[] = {"qq.new_counter=1\n", "qq.packets=x\n", "qq.packets=\n",
	                            "nosuch.packets=1\n", "qq.packets=1 module.x.packets=1\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL, err[256] = "";
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		assert_non_null(f);
		assert_int_equal(counters_prometheus(f, bad[i], err, sizeof(err)), -EINVAL);
		fclose(f);
		assert_non_null(strstr(err, "has no Prometheus metric"));
		assert_int_equal(len, 0); /* nothing written */
		free(text);
	}
}

/* The GET /metrics callback's shape on a real (empty) archive with a stored report. */
static void test_archive_callback(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_metrics.XXXXXX", *text = NULL;
	size_t len = 0;
	struct archive *a = NULL;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(archive_open(dir, ARCHIVE_WRITE | ARCHIVE_CREATE, &a), 0);
	assert_int_equal(counters_metrics_archive(a, &text, &len), 0); /* no run yet */
	assert_non_null(strstr(text, "\nflowscope_archive_packets 0\n"));
	assert_int_equal(len, strlen(text));
	assert_null(strstr(text, "flowscope_qq"));
	free(text);
	assert_int_equal(archive_set_run_report(a, "run: ...\nqq.packets=3 qq.chunks=2\n"), 0);
	assert_int_equal(counters_metrics_archive(a, &text, &len), 0);
	assert_non_null(strstr(text, "\nflowscope_qq_packets_total 3\n"));
	assert_non_null(strstr(text, "\nflowscope_qq_chunks 2\n"));
	free(text);
	assert_int_equal(archive_set_run_report(a, "qq.packets=3 qq.from_the_future=1\n"), 0);
	assert_int_equal(counters_metrics_archive(a, &text, &len), 0); /* another version's */
	assert_non_null(strstr(text, "\n# flowscope: the last run's counters are left out: counter "
	                             "'qq.from_the_future=1' has no Prometheus metric"));
	assert_null(strstr(text, "flowscope_qq"));
	assert_non_null(strstr(text, "\nflowscope_archive_packets 0\n"));
	free(text);
	archive_close(a);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The API's counters: the histogram in seconds, cumulative, +Inf = _count, even when a query
 * ended between the reads of its counters (a bucket read after _count). */
static void test_api(void **state)
{
	(void)state;
	struct query_api_counters n = {.requests = 7,
	                               .responses_2xx = 5,
	                               .responses_4xx = 2,
	                               .refused_busy = 1,
	                               .queries = 3,
	                               .query_bytes = 4096,
	                               .query_ns = 1500000000,
	                               .query_le = {1, 2, 4, 4, 4},
	                               .connections = 2};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	counters_prometheus_api(f, &n);
	fclose(f);
	static const char *const want[] = {
	    "\nflowscope_api_requests_total 7\n",
	    "\nflowscope_api_responses_total{code=\"4xx\"} 2\n",
	    "\nflowscope_api_busy_responses_total 1\n",
	    "\nflowscope_api_query_sent_bytes_total 4096\n",
	    "\n# TYPE flowscope_api_query_duration_seconds histogram\n",
	    "\nflowscope_api_query_duration_seconds_bucket{le=\"0.01\"} 1\n",
	    "\nflowscope_api_query_duration_seconds_bucket{le=\"0.1\"} 2\n",
	    "\nflowscope_api_query_duration_seconds_bucket{le=\"1\"} 3\n", /* 4 > _count: 3 */
	    "\nflowscope_api_query_duration_seconds_bucket{le=\"60\"} 3\n",
	    "\nflowscope_api_query_duration_seconds_bucket{le=\"+Inf\"} 3\n",
	    "\nflowscope_api_query_duration_seconds_sum 1.500000000\n",
	    "\nflowscope_api_query_duration_seconds_count 3\n",
	    "\nflowscope_api_connections 2\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			fail_msg("missing %s in:\n%s", want[i], text);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queues),  cmocka_unit_test(test_monitor_and_names),
	    cmocka_unit_test(test_refused), cmocka_unit_test(test_archive_callback),
	    cmocka_unit_test(test_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
