/*
 * flowscope record, private to tools/: the options and the pipeline shared
 * by record.c (command line, status, reports) and record_pipeline.c
 * (threads: sources, analyzers, dumper); and what monitor.c shares with
 * them through capture.c (source and analysis options, the source, the
 * analysis of a packet, the status and report lines).
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

#define RECORD_MAX_ANALYZERS 16
#define RECORD_MAX_MODULES 16
#define RECORD_MAX_DUMPERS 16
#define RECORD_SEGMENT_SIZE (256ull << 20) /* --segment-size default */

#define HIGH_WATER_DEFAULT (-2.0) /* --qq-high-water not given: 0.9 with modules, else QQ_NO_HOLD */
#define HOLD_MAX_DEFAULT UINT64_MAX /* --qq-hold-max not given: see record_hold_max() */

/* record's options; monitor uses the source and analysis ones (capture.c parses those). */
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
	double qq_high_water; /* fraction, QQ_NO_HOLD, or HIGH_WATER_DEFAULT (not given) */
	/* with a mark: the longest a packet stays (0: no limit), or HOLD_MAX_DEFAULT (not given) */
	uint64_t qq_hold_max_ns;
	uint64_t segment_size;
	uint64_t segment_age_ns;
	uint64_t max_disk;   /* retention: the archive's disk budget; 0 = none */
	uint64_t max_age_ns; /* retention: drop data older than this; 0 = none */
	uint64_t stats_ns;
	uint64_t max_flows;
	int zstd_level;
	int triggered;                     /* --capture triggered: archive only triggered flows */
	int strict_modules;                /* --strict-modules: a Lua module error is fatal */
	long archive_gid;                  /* --archive-group: readers' group; -1: none */
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

/*
 * One analyzer thread (in monitor: one queue's thread): a flow table of its
 * own (flows are partitioned by queue).  On a cache line of its own: each
 * thread counts its packets here.
 */
struct record_analyzer {
	struct record_pipeline *pl;
	unsigned id;
	pthread_t thread;
	struct ft_table *flows;
	struct ft_engine *engine; /* the modules, when any */
	uint64_t packets;         /* packets peeked (this thread only) */
} __attribute__((aligned(64)));

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

/* Starts every thread.  0, or an exit status (nothing started then). */
int record_pipeline_start(struct record_pipeline *pl);

/* Packets in the ring that no dumper is done with yet (a snapshot, for a message). */
uint64_t record_pipeline_pending(struct record_pipeline *pl);

/* After the sources ended: drains analyzers and the dumper, flushes the archive. */
void record_pipeline_finish(struct record_pipeline *pl);

/* Closes the writers (sealing their segments), then a last retention pass. */
void record_pipeline_seal(struct record_pipeline *pl);

/* Frees everything (closing the writer seals its segment). */
void record_pipeline_close(struct record_pipeline *pl);

/* ---- shared with flowscope monitor (capture.c) ----------------------------------------- */

/*
 * Parses option `c` (getopt value) if it is a source or analysis option:
 * --read 'r', --dpdk 'D', --afpacket 'A', --live 'L', --port 'p', --rx-queues
 * 'Q', --replay-speed 'S', --module 'M', --trigger 'T', --analyzers 'n',
 * --max-flows 'f', --stats-interval 'i', --strict-modules 'E'.  Returns 0, an exit status (a bad
 * value: one line "flowscope <cmd>: ..." printed), or -1: not one of those.
 */
int capture_parse_opt(struct record_opts *o, const char *cmd, int c, const char *arg);

struct option;

/*
 * Runs getopt_long over argv with longopts, handing every option to
 * parse(o, c, optarg) and returning its first non-zero result.  --help
 * (value 'h') prints usage(stdout) and returns -1; an unknown option, a
 * missing value or a stray argument prints one line and returns EXIT_USAGE.
 */
int capture_getopt(int argc, char **argv, const char *cmd, const struct option *longopts,
                   int (*parse)(struct record_opts *o, int c, const char *arg),
                   void (*usage)(FILE *f), struct record_opts *o);

/* Frees the module specs the options hold. */
void capture_opts_free(struct record_opts *o);

/* Exactly one source; --rx-queues and --replay-speed fit it.  0 or EXIT_USAGE (line printed). */
int capture_check_opts(const struct record_opts *o, const char *cmd);

/* Opens the source the options name.  0, or EXIT_FAIL with the line printed. */
int capture_source_open(const struct record_opts *o, const char *cmd, struct ingest_source **src,
                        struct ingest_source_info *info);

/*
 * SIGINT and SIGTERM: the first stops the source given to
 * capture_signals_source() (if any); a second writes `second` (a static
 * string) on stderr and exits at once with status 130.
 */
void capture_signals_install(const char *second);
void capture_signals_source(struct ingest_source *src);
int capture_signalled(void); /* a signal came */

/* Creates ana[0..n)'s flow tables (ids 0..n-1).  0, or EXIT_FAIL with the line printed. */
int capture_analyzers_open(struct record_analyzer *ana, unsigned n, const struct record_opts *o,
                           const char *cmd);

/* The module instances for `engines` engines (*out NULL without modules).  0 or EXIT_USAGE
 * (also when the flow tables of `engines` analyzers would not fit in memory). */
int capture_modules_create(const struct record_opts *o, const char *cmd, unsigned engines,
                           struct ft_modset **out);

/*
 * Parsed packets waiting for flow tracking and the modules (their bytes must
 * stay valid until the flush).
 */
struct capture_burst {
	struct ft_packet pkt[FT_ENGINE_BURST];
	struct ft_packet_ctx ctx[FT_ENGINE_BURST];
	uint32_t *hash_out[FT_ENGINE_BURST];
	unsigned n;
};

/*
 * One packet for analyzer a (its thread only): counted, parsed and queued in
 * b.  When b is full or on capture_analyze_flush(), the burst's flows are
 * tracked in a->flows (lookups prefetched a burst at a time: the table is
 * large and hit at random) and a->engine's modules run.  Then *hash_out (if
 * not NULL) gets the packet's 32-bit flow hash (ft_flow_key_hash of its
 * VLAN-aware bidirectional key); it is left alone for a packet without a
 * flow (not IP, or not parsed).
 */
void capture_analyze(struct record_analyzer *a, struct capture_burst *b, int linktype,
                     uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t *data,
                     uint32_t *hash_out);
void capture_analyze_flush(struct record_analyzer *a, struct capture_burst *b);

/* Flows seen by more than one of the n analyzers (0 when flow affinity holds). */
uint64_t capture_split_flows(const struct record_analyzer *ana, unsigned n);

/* Packets and bits at the last status line, per queue and (last slot) for the source. */
struct capture_rates {
	uint64_t pkts[INGEST_MAX_QUEUES + 1], bits[INGEST_MAX_QUEUES + 1];
};

/*
 * The source part of a status line, without the newline: "flowscope <cmd>:
 * afpacket veth0 120000 pkts, 24000 pkt/s 190.2 Mbit/s drops 0 | q0 ...; q1 ..."
 * (rates over dt seconds since *last, which it updates).
 */
void capture_status_source(FILE *f, const char *cmd, struct ingest_source *src,
                           const struct ingest_source_info *info, struct capture_rates *last,
                           double dt);

#define CAPTURE_POLL_MS 50

/*
 * Until *running is 0, *failed is set or a --strict-modules module failed
 * (ft_modset_fatal(mods); mods may be NULL): checks every CAPTURE_POLL_MS
 * and, every stats_ns (0: never), calls status(arg, last, seconds since the
 * last).
 */
void capture_wait(const atomic_uint *running, const atomic_int *failed,
                  const struct ft_modset *mods, uint64_t stats_ns,
                  void (*status)(void *arg, struct capture_rates *last, double dt), void *arg);

/*
 * What a queue's run returned, for the exit status: a failure prints its line
 * and returns EXIT_FAIL; damaged input (INGEST_E_DAMAGED) prints "<err>;
 * <kept>" and sets *damaged; else 0.
 */
int capture_queue_status(const char *cmd, int rc, const char *err, const char *kept, int *damaged);

/* Prints each line of text as "flowscope <cmd>: <line>". */
void capture_print_lines(FILE *f, const char *cmd, const char *text);

/* Report lines of name=value counters (tools/counters.h, docs/counters.md): ingest.KIND[.qN],
 * flowtrack, and per module a "module.N: NAME" line and its counters (returns the triggers
 * counted over every module and analyzer). */
void capture_report_ingest(FILE *f, struct ingest_source *src,
                           const struct ingest_source_info *info);
void capture_report_flows(FILE *f, const struct record_analyzer *ana, unsigned n);
uint64_t capture_report_modules(FILE *f, const struct record_opts *o, const struct ft_modset *mods,
                                const struct record_analyzer *ana, unsigned n);

#endif
