/*
 * ingest_bench: one packet source straight into the QQ, nothing else (an
 * analyzer thread hands chunks back at once; no dumper: the ring overwrites
 * its oldest chunks).  Runs until the source ends, or has been idle for a
 * second after its first packet, then prints one line:
 *
 *   packets N bytes N drops N seconds S mpps X gbps Y
 *
 * where seconds is wall-clock time from the first packet stored to the last
 * (for a file: from the start to the end of the file).
 * Driven by tools/bench/ingest_bench.sh, which supplies the traffic and the
 * tcpdump baseline.  A benchmark, not a test.
 *
 *   ingest_bench file PATH | dpdk 'EAL ARGS' | afpacket IFACE QUEUES | live IFACE
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "qq/qq.h"

struct qthread {
	struct ingest_source *src;
	struct qq_producer *p;
	unsigned q;
	pthread_t t;
	int rc;
	char err[INGEST_ERRBUF_SIZE];
};

static atomic_int running;
static struct qq *g_qq;

static void *queue_main(void *v)
{
	struct qthread *t = v;
	t->rc = ingest_source_run(t->src, t->q, t->p, t->err);
	qq_producer_close(t->p);
	atomic_fetch_sub(&running, 1);
	return NULL;
}

static void *analyzer_main(void *v)
{
	unsigned id = (unsigned)(uintptr_t)v;
	struct qq_peek pk;
	int r;
	while ((r = qq_analyzer_next(g_qq, id, &pk, 50)) != QQ_E_DRAINED && r != QQ_E_STOPPED)
		if (r == 0)
			qq_analyzer_done(g_qq, &pk);
	return NULL;
}

static int open_source(int argc, char **argv, struct ingest_source **src, char *err)
{
	if (argc == 3 && strcmp(argv[1], "file") == 0)
		return ingest_file_open(argv[2], 0, src, err);
	if (argc == 3 && strcmp(argv[1], "dpdk") == 0)
		return ingest_dpdk_open(argv[2], 0, 1, 0, src, err);
	if (argc == 4 && strcmp(argv[1], "afpacket") == 0)
		return ingest_afpacket_open(argv[2], (unsigned)atoi(argv[3]), 0, src, err);
	if (argc == 3 && strcmp(argv[1], "live") == 0)
		return ingest_live_open(argv[2], 0, src, err);
	snprintf(err, INGEST_ERRBUF_SIZE,
	         "usage: ingest_bench file PATH | dpdk 'EAL' | afpacket IF QUEUES | live IF");
	return -1;
}

/*
 * Waits until the source ends, or is idle for a second after its first
 * packet; returns the wall-clock seconds from the first packet seen to the
 * last (sampled every 2 ms).
 */
static double wait_idle(struct ingest_source *src, uint64_t t_start)
{
	uint64_t seen = 0, t_first = 0, t_last = 0;
	for (;;) {
		int live = atomic_load(&running) > 0;
		usleep(2000);
		struct ingest_stats st;
		ingest_source_stats(src, -1, &st);
		uint64_t now = qq_clock_ns(CLOCK_MONOTONIC),
		         n = st.packets + ingest_stats_drops(&st);
		if (n != seen) {
			if (!seen)
				t_first = t_start ? t_start : now; /* a file starts at once */
			seen = n;
			t_last = now;
		} else if ((seen && now - t_last > 1000000000u) || !live) {
			break;
		}
	}
	ingest_source_stop(src);
	return t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
}

int main(int argc, char **argv)
{
	char err[INGEST_ERRBUF_SIZE];
	struct ingest_source *src;
	if (open_source(argc, argv, &src, err) != 0) {
		fprintf(stderr, "ingest_bench: %s\n", err);
		return 1;
	}
	struct ingest_source_info info;
	ingest_source_info(src, &info);
	int is_file = strcmp(info.kind, "file") == 0;
	struct qq_config qc = {.size = 256u << 20,
	                       .producers = info.queues,
	                       .analyzers = info.queues,
	                       .mode = QQ_MODE_OVERWRITE};
	if (qq_create(&qc, &g_qq) != 0)
		return 1;
	struct qthread t[INGEST_MAX_QUEUES];
	pthread_t at[INGEST_MAX_QUEUES];
	atomic_store(&running, (int)info.queues);
	uint64_t t0 = qq_clock_ns(CLOCK_MONOTONIC);
	for (unsigned q = 0; q < info.queues; q++) {
		t[q] = (struct qthread){.src = src, .q = q};
		qq_producer_open(g_qq, q, &t[q].p);
	}
	for (unsigned q = 0; q < info.queues; q++) {
		pthread_create(&at[q], NULL, analyzer_main, (void *)(uintptr_t)q);
		pthread_create(&t[q].t, NULL, queue_main, &t[q]);
	}
	double secs = wait_idle(src, is_file ? t0 : 0);
	for (unsigned q = 0; q < info.queues; q++)
		pthread_join(t[q].t, NULL);
	qq_stop(g_qq);
	for (unsigned q = 0; q < info.queues; q++)
		pthread_join(at[q], NULL);
	struct ingest_stats st;
	ingest_source_stats(src, -1, &st);
	printf("packets %" PRIu64 " bytes %" PRIu64 " drops %" PRIu64
	       " seconds %.3f mpps %.3f gbps "
	       "%.3f\n",
	       st.packets, st.wire_bytes, ingest_stats_drops(&st), secs,
	       secs > 0 ? (double)st.packets / secs / 1e6 : 0,
	       secs > 0 ? (double)st.wire_bytes * 8 / secs / 1e9 : 0);
	ingest_source_close(src);
	qq_destroy(g_qq);
	return 0;
}
