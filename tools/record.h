/*
 * flowscope record, private to tools/: the options and the pipeline shared
 * by record.c (command line, status, reports) and record_pipeline.c
 * (threads: sources, analyzers, dumpers).  What record and monitor share
 * (the options, the source, the analysis of a packet, the status and report
 * lines) is tools/capture.h.
 */
#ifndef FLOWSCOPE_TOOLS_RECORD_H
#define FLOWSCOPE_TOOLS_RECORD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "ingest/ingest.h"
#include "qq/qq.h"
#include "tools/capture.h"
#include "tools/counters.h"

#define RECORD_MAX_DUMPERS 16
#define RECORD_SEGMENT_SIZE ARCHIVE_SEGMENT_SIZE /* --segment-size default */

#define HIGH_WATER_DEFAULT (-2.0) /* --qq-high-water not given: 0.9 with modules, else QQ_NO_HOLD */
#define HOLD_MAX_DEFAULT UINT64_MAX /* --qq-hold-max not given: see record_hold_max() */

/* One thread per source queue: it owns one QQ producer. */
struct record_queue {
	struct record_pipeline *pl;
	unsigned id;
	pthread_t thread;
	struct qq_producer *producer; /* opened before any thread starts; closed by the thread */
	int rc;
	char err[INGEST_ERRBUF_SIZE];
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
	atomic_ulong dumped;            /* packets of the chunks it is done with (archived or
	                                   not selected); written by its thread only */
	uint64_t untimed;               /* archive.writer.dropped_time: after ARCHIVE_MAX_TS_NS */
	int rc;
	char err[512];
	/* published for the housekeeping thread */
	atomic_ulong segments;             /* segments opened */
	uint64_t ret_seen;                 /* dumper thread: segments when it last ran retention */
	atomic_int full;                   /* its disk is full */
	uint64_t full_events, full_since;  /* dumper thread: for its log lines */
	struct archive_writer_stats final; /* the writer's counters when it was closed */
	atomic_ulong beat; /* its loop came round: service_beat(), for the watchdog */
};

/* A dumper's counters as its thread last published them (record --listen's GET /metrics). */
struct record_dumper_live {
	struct archive_writer_stats w;
	uint64_t selected, skipped, oversize, untimed;
};

struct query_api;

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
	struct archive_rules *rules;             /* with modules or --listen, else NULL */
	atomic_ulong triggers;                   /* rules added */
	/* record --listen: triggers from outside (record_trigger), or NULL */
	struct ft_trigger_hub *trig;
	pthread_mutex_t trig_lock;       /* the last trigger name and its id in the archive */
	char trig_name[256];             /* trig_lock */
	uint16_t trig_id;                /* trig_lock */
	atomic_ulong trig_api, trig_eve; /* triggers applied, by source (record_trigger) */
	atomic_ulong trig_marked;        /* index records marked after the fact (capture all) */
	/* record --eve: the alert log (record_eve.c); its counters written by its thread only,
	   read by any (relaxed: counters) */
	struct ingest_follow *eve;
	pthread_t eve_thread;
	int eve_running;     /* the thread runs (main thread) */
	atomic_int eve_stop; /* main thread: stop now */
	atomic_ulong eve_alerts, eve_skipped, eve_malformed, eve_filtered;
	/* record --ipfix: what the analyzers' exporters sent (record_ipfix.c); written by the
	   analyzer threads (and the main thread at the end), read by any: relaxed, counters */
	atomic_ulong ipfix_messages, ipfix_records, ipfix_templates, ipfix_send_errors;
	/* record --flow-export: the exporter thread and its counters (record_flowexport.c) */
	struct record_flowexport *fx;
	int dump_rc; /* the first dumper failure, after finish/close */
	char dump_err[512];
	/* housekeeping: retention */
	struct archive_retention_keeper *keeper; /* passes of dumpers and housekeeper; or NULL */
	pthread_t housekeeper;
	int housekeeping; /* the thread runs */
	atomic_int hk_stop;
	uint64_t ret_segments, ret_bytes; /* dropped (the keeper's totals, at the seal) */
	uint64_t ret_usage;
	atomic_uint queues_running;
	atomic_int failed;   /* a thread failed: stop everything */
	uint64_t t_start_ns; /* CLOCK_REALTIME at start, for the run report */
	/* record --listen: what the analyzer and dumper threads own, copied by them under
	   live_lock after each chunk and while idle, for GET /metrics (record_metrics.c) */
	pthread_mutex_t live_lock;
	struct counters_flowtrack live_ana[RECORD_MAX_ANALYZERS];
	struct ft_engine_stats live_mod[RECORD_MAX_ANALYZERS][RECORD_MAX_MODULES];
	struct record_dumper_live live_dump[RECORD_MAX_DUMPERS];
	atomic_int live_started;         /* record_pipeline_start() is done (keeper set) */
	_Atomic(struct query_api *) api; /* the API, once started: its own counters */
	atomic_ulong health_lost;        /* packets lost at the last /healthz */
	/* lines of the open (archive recovery, io note), held so that the line saying who
	   parses packets comes first: record_pipeline_notes() prints them */
	FILE *notes;
	char *notes_text;
	size_t notes_len;
};

/* QQ chunk size for a ring: a sixteenth of it, between 512 KiB and 4 MiB. */
size_t record_chunk_size(uint64_t qq_size);

/*
 * The ring's high-water mark for this recording: --qq-high-water, else 0.9
 * with modules (a trigger reaches back into the ring) and QQ_NO_HOLD without.
 */
double record_high_water(const struct record_pipeline *pl);

/*
 * The longest a packet stays in the ring (ns, 0: no limit): --qq-hold-max,
 * else none for a file read as fast as possible (its wall-clock time says
 * nothing about the traffic, and what it archives, down to the frame
 * boundaries, must not depend on the machine's speed), else 1 s without a
 * high-water mark (about the index commit interval) and 60 s with one.
 */
uint64_t record_hold_max(const struct record_pipeline *pl);

/* Opens source, QQ, flow tables and archive, in that order.  0 or an exit status. */
/* Dumper threads when --dumpers is not given: 2, or 1 on a one-core machine. */
unsigned record_default_dumpers(void);

int record_pipeline_open(struct record_pipeline *pl);

/* Prints the lines the open held back (archive recovery, io note) on stderr; once. */
void record_pipeline_notes(struct record_pipeline *pl);

/* Starts every thread.  0, or an exit status (nothing started then). */
int record_pipeline_start(struct record_pipeline *pl);

/* Packets in the ring that no dumper is done with yet (a snapshot, for a message). */
uint64_t record_pipeline_pending(struct record_pipeline *pl);

/* After the sources ended: drains analyzers and the dumper, flushes the archive. */
void record_pipeline_finish(struct record_pipeline *pl);

/* Closes the writers (sealing their segments), then a last retention pass. */
void record_pipeline_seal(struct record_pipeline *pl);

/* Adds a dumper's writer counters d into sum (io_max_inflight: the largest). */
void record_writer_add(struct archive_writer_stats *sum, const struct archive_writer_stats *d);

/* record --listen: GET /metrics (query_api_metrics_fn, arg the pipeline) and /healthz
   (query_api_health_fn): record_metrics.c, docs/metrics.md. */
int record_metrics(void *arg, char **text, size_t *len);
int record_health(void *arg, char *reason, size_t len);

/*
 * A trigger from outside the recorder (the API, an alert log): applies t in
 * every analyzer (ft_trigger_post, waiting up to RECORD_TRIGGER_WAIT_NS),
 * rules tagged `name` ("api: REASON", "eve: SIGNATURE": what `flows` shows).
 * Returns 0 with *res, or an FT_E_* / negative errno code with err filled
 * (-EINVAL: the filter; FT_E_STOPPING; -ENOSYS: no --listen).  Any thread;
 * arg is the pipeline (query_api_trigger_fn).
 */
#define RECORD_TRIGGER_WAIT_NS 2000000000ull
int record_trigger(void *arg, const struct ft_trigger *t, const char *name,
                   struct ft_trigger_result *res, char *err, size_t errlen);

/*
 * record --eve FILE (record_eve.c, docs/triggers.md): a detector's alert log,
 * Suricata's EVE JSON or Zeek's notice.log as JSON, followed as `tail -F`;
 * every alert (that --eve-filter passes) triggers its flow through
 * record_trigger(), named "eve: SIGNATURE" ("zeek: NOTE: MSG").  Open after
 * the privilege drop (the user who parses packets reads the log, at start and
 * after each rotation), before the threads: 0, or EXIT_FAIL (said).  Start
 * after the analyzers run (0, or -errno of pthread_create); stop (the thread
 * joined) after the trigger hub closed, so a post it waits on is answered;
 * close (the follower freed) after the API stopped, which reads its counters.
 * Main thread; the counters from any thread.
 */
int record_eve_open(struct record_pipeline *pl);
int record_eve_start(struct record_pipeline *pl);
void record_eve_stop(struct record_pipeline *pl);
void record_eve_close(struct record_pipeline *pl);
void record_eve_counters(struct record_pipeline *pl, struct counters_eve *c);

/*
 * record --ipfix HOST:PORT (record_ipfix.c, docs/ipfix.md): each analyzer exports its flow
 * table to the collector through a UDP socket of its own (non-blocking, connected: an ICMP
 * port unreachable comes back as a failed send, counted).  parse: the option's value
 * resolved into o (0, or EXIT_USAGE with one line said; main thread).  open: the sockets
 * and exporters, after the flow tables (0, or EXIT_FAIL said).  tick: the analyzer's
 * timeouts (its thread).  finish: every flow's last records, after the analyzers were
 * joined (main thread).  close: frees them.  counters: any thread.
 */
int record_ipfix_parse(struct record_opts *o, const char *arg);

/*
 * record --flow-export clickhouse://HOST:PORT/DB.TABLE (record_flowexport.c,
 * docs/clickhouse.md): a thread sends the closed segments' flow records and
 * the counters; parse: 0, EXIT_USAGE (said), -1 (not its option); start
 * after the archive opened; stop after the seal (a last pass); counters any
 * time between start and close.
 */
#define RECORD_OPT_FLOW_EXPORT 0x101
#define RECORD_OPT_SENSOR 0x102
#define RECORD_OPT_FLOW_EXPORT_INTERVAL 0x103
int record_flowexport_parse(struct record_opts *o, int c, const char *arg);
int record_flowexport_start(struct record_pipeline *pl);
void record_flowexport_stop(struct record_pipeline *pl);
void record_flowexport_close(struct record_pipeline *pl);
void record_flowexport_counters(struct record_pipeline *pl, struct counters_flow_export *c);

/* The counters of the final report as they are now (GET /metrics's source): *text malloc()ed. */
int record_live_counters(struct record_pipeline *pl, char **text, size_t *len);
int record_ipfix_open(struct record_pipeline *pl);
void record_ipfix_tick(struct record_analyzer *a);
void record_ipfix_finish(struct record_pipeline *pl);
void record_ipfix_close(struct record_pipeline *pl);
void record_ipfix_counters(struct record_pipeline *pl, struct counters_ipfix *c);

/* The trigger line's counters now (any thread; zeros without --listen). */
void record_trigger_counters(struct record_pipeline *pl, struct counters_trigger *c);

/* Frees everything (closing the writer seals its segment). */
void record_pipeline_close(struct record_pipeline *pl);

#endif
