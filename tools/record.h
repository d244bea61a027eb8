/*
 * flowscope record, private to tools/: the options and the pipeline shared
 * by record.c (command line, status, reports) and record_pipeline.c
 * (threads: sources, analyzers, dumper).
 */
#ifndef FLOWSCOPE_TOOLS_RECORD_H
#define FLOWSCOPE_TOOLS_RECORD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "ingest/ingest.h"
#include "qq/qq.h"

#define RECORD_MAX_ANALYZERS 16
#define RECORD_MAX_MODULES 16
#define RECORD_MAX_DUMPERS 16
#define RECORD_SEGMENT_SIZE (256ull << 20) /* --segment-size default */

struct record_opts {
	const char *archive;
	const char *read; /* exactly one source: --read, --dpdk, --afpacket, --live */
	const char *dpdk; /* EAL arguments */
	const char *afpacket;
	const char *live;
	uint64_t dpdk_port;
	uint64_t rx_queues;
	double replay_speed; /* --read only; 0 = as fast as possible */
	uint64_t analyzers;  /* 0 = one per RX queue */
	uint64_t dumpers;    /* dumper threads, each with its own open segment */
	uint64_t qq_size;
	uint64_t qq_flush_ns;
	double qq_high_water;
	uint64_t segment_size;
	uint64_t segment_age_ns;
	uint64_t max_disk;   /* retention: the archive's disk budget; 0 = none */
	uint64_t max_age_ns; /* retention: drop data older than this; 0 = none */
	uint64_t stats_ns;
	uint64_t max_flows;
	int zstd_level;
	int triggered;                     /* --capture triggered: archive only triggered flows */
	int strict_modules;                /* --strict-modules: a Lua module error is fatal */
	char *modules[RECORD_MAX_MODULES]; /* "NAME[:ARGS]" from --module and --trigger */
	unsigned nmodules;
};

/* One thread per source queue: it owns one QQ producer. */
struct record_queue {
	struct record_pipeline *pl;
	unsigned id;
	pthread_t thread;
	struct qq_producer *producer; /* opened before any thread starts; closed by the thread */
	int rc;
	char err[INGEST_ERRBUF_SIZE];
};

/* One analyzer thread: a flow table of its own (flows are partitioned by queue). */
struct record_analyzer {
	struct record_pipeline *pl;
	unsigned id;
	pthread_t thread;
	struct ft_table *flows;
	struct ft_engine *engine; /* the modules, when any */
	uint64_t packets;         /* packets peeked (this thread only) */
};

/* One dumper thread: its own writer (open segment) and view of the dump rules. */
struct record_dumper {
	struct record_pipeline *pl;
	unsigned id;
	pthread_t thread;
	struct archive_writer *writer;
	struct archive_rule_view *view; /* triggers: which flows to archive */
	uint64_t selected, skipped;     /* packets of triggered flows; others (triggered mode) */
	uint64_t oversize;              /* archive.writer.dropped_oversize */
	int rc;
	char err[512];
	/* published for the housekeeping thread */
	atomic_ulong segments;             /* segments opened */
	uint64_t ret_seen;                 /* dumper thread: segments when it last ran retention */
	atomic_int full;                   /* its disk is full */
	uint64_t full_events, full_since;  /* dumper thread: for its log lines */
	struct archive_writer_stats final; /* the writer's counters when it was closed */
};

struct record_pipeline {
	struct record_opts o;
	struct qq *qq;
	struct ingest_source *src;
	struct ingest_source_info info;
	struct record_queue queue[INGEST_MAX_QUEUES];
	struct record_analyzer ana[RECORD_MAX_ANALYZERS];
	unsigned nanalyzers;
	struct archive *arch;
	struct record_dumper dump[RECORD_MAX_DUMPERS];
	unsigned ndumpers;
	struct ft_modset *mods; /* module instances shared by the analyzers, or NULL */
	uint16_t trigger_id[RECORD_MAX_MODULES]; /* index tag of each module's triggers */
	struct archive_rules *rules;
	atomic_ulong triggers; /* rules added */
	int dump_rc;           /* the first dumper failure, after finish/close */
	char dump_err[512];
	/* housekeeping: retention */
	pthread_mutex_t ret_lock; /* one pass at a time: dumpers (at segment close), housekeeper */
	pthread_t housekeeper;
	int housekeeping; /* the thread runs */
	atomic_int hk_stop;
	uint64_t ret_segments, ret_bytes; /* dropped so far (housekeeper, then main) */
	uint64_t ret_usage, ret_runs;
	int ret_err;
	atomic_uint queues_running;
	atomic_int failed;   /* a thread failed: stop everything */
	uint64_t t_start_ns; /* CLOCK_REALTIME at start, for the run report */
};

/* QQ chunk size for a ring: a sixteenth of it, between 512 KiB and 4 MiB. */
size_t record_chunk_size(uint64_t qq_size);

/* Opens source, QQ, flow tables and archive, in that order.  0 or an exit status. */
/* Dumper threads when --dumpers is not given: 2, or 1 on a one-core machine. */
unsigned record_default_dumpers(void);

int record_pipeline_open(struct record_pipeline *pl);

/* Starts every thread.  0, or an exit status (nothing started then). */
int record_pipeline_start(struct record_pipeline *pl);

/* After the sources ended: drains analyzers and the dumper, flushes the archive. */
void record_pipeline_finish(struct record_pipeline *pl);

/* Closes the writers (sealing their segments), then a last retention pass. */
void record_pipeline_seal(struct record_pipeline *pl);

/* Frees everything (closing the writer seals its segment). */
void record_pipeline_close(struct record_pipeline *pl);

/* Flows seen by more than one analyzer (0 when flow affinity holds). */
uint64_t record_pipeline_split_flows(const struct record_pipeline *pl);

#endif
