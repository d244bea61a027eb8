/*
 * What `flowscope record` and `flowscope monitor` share (capture.c), private
 * to tools/: the source and analysis options, opening the source and the
 * modules, the analysis of one packet (flow tracking and the modules, a
 * burst at a time), and the ingest, flowtrack and module lines of the status
 * line and the final report.
 *
 * Lifecycle: capture_getopt() (capture_parse_opt() per option) ->
 * capture_check_opts() -> capture_source_open() -> capture_modules_create()
 * -> capture_analyzers_open() -> capture_analyze()... / capture_analyze_flush()
 * per analyzer -> capture_report_*() -> capture_opts_free().
 *
 * Threading: an analyzer and its burst belong to one thread; the option,
 * open and report functions run on the main thread; the signal functions are
 * for the main thread and the signal handler.
 *
 * Errors: functions that can fail print one line "flowscope <cmd>: ..." and
 * return an exit status (docs/cli.md), 0 on success.
 */
#ifndef FLOWSCOPE_TOOLS_CAPTURE_H
#define FLOWSCOPE_TOOLS_CAPTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>

#include "flowtrack/flowtrack.h"
#include "ingest/ingest.h"
#include "query/query.h"
#include "tools/config.h"
#include "tools/service.h"

#define RECORD_MAX_ANALYZERS 16
#define RECORD_MAX_MODULES 16

struct record_pipeline;

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
	int pin_triggered;   /* --pin-triggered: retention drops triggered flows' segments last */
	uint64_t stats_ns;
	uint64_t max_flows;
	int zstd_level;
	int triggered;      /* --capture triggered: archive only triggered flows */
	int strict_modules; /* --strict-modules: a Lua module error is fatal */
	long archive_gid;   /* --archive-group: readers' group; -1: none */
	const char *user;   /* --user: who parses packets; NULL: the default (privdrop.h) */
	char *modules[RECORD_MAX_MODULES]; /* "NAME[:ARGS]" from --module and --trigger */
	unsigned nmodules;
	struct config_argv config; /* --config FILE: the arguments parsed (values point there) */
	/* record --listen: the HTTP API served from the recorder (docs/api.md); NULL = none */
	struct query_api_config api; /* its options only (tools/listen.h); api.listen NULL = none */
	/* record --eve: a detector's alert log followed for triggers (record_eve.c); NULL = none */
	const char *eve;
	int eve_from_start;                   /* --eve-from-start */
	struct ingest_eve_filter *eve_filter; /* --eve-filter's terms; NULL: every alert */
	/* record --ipfix HOST:PORT: the flows to an IPFIX collector (record_ipfix.c); NULL = none */
	const char *ipfix;
	struct sockaddr_storage ipfix_addr; /* its address, resolved when the option is parsed */
	socklen_t ipfix_addrlen;
	uint64_t ipfix_active_ns, ipfix_idle_ns; /* --ipfix-active-timeout, --ipfix-idle-timeout */
	/* record --flow-export URL: flow rows to ClickHouse (record_flowexport.c); NULL = none */
	const char *flow_export;
	const char *sensor;      /* --sensor NAME: the rows' sensor column (default: hostname) */
	uint64_t flow_export_ns; /* --flow-export-interval: between passes and counters rows */
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
	struct ft_engine *engine;        /* the modules, when any */
	struct ft_trigger_hub *triggers; /* record: triggers from outside, or NULL */
	uint64_t packets;                /* packets peeked (this thread only) */
	struct ft_ipfix *ipfix;          /* record --ipfix: the exporter of flows, or NULL */
	int ipfix_fd;                    /* its UDP socket (connected), or -1 */
	uint64_t clock_ns;               /* the latest packet time seen (this thread only) */
	atomic_ulong beat;               /* its loop came round: service_beat(), for the watchdog */
} __attribute__((aligned(64)));

/*
 * Parses option `c` (getopt value) if it is a source or analysis option:
 * --read 'r', --dpdk 'D', --afpacket 'A', --live 'L', --port 'p', --rx-queues
 * 'Q', --replay-speed 'S', --module 'M', --trigger 'T', --analyzers 'n',
 * --max-flows 'f', --status-interval (or --stats-interval) 'i', --strict-modules 'E', --user 'U'.  Returns 0, an exit status (a bad
 * value: one line "flowscope <cmd>: ..." printed), or -1: not one of those.
 */
int capture_parse_opt(struct record_opts *o, const char *cmd, int c, const char *arg);

struct option;

/* getopt value of --config FILE (record and monitor): capture_getopt() reads the file. */
#define CAPTURE_CONFIG 'C'

/*
 * Runs getopt_long over argv with longopts, handing every option to
 * parse(o, c, optarg) and returning its first non-zero result.  --help
 * (value 'h') prints usage(stdout) and returns -1; an unknown option, a
 * missing value or a stray argument prints one line and returns EXIT_USAGE.
 * With --config FILE (longopts has it as CAPTURE_CONFIG), the file's keys
 * come first (tools/config.h: the command line overrides them; --module and
 * --trigger are each one list, --read, --dpdk, --afpacket and --live one
 * choice, which on the command line also replaces the file's --port,
 * --rx-queues and --replay-speed), and a bad value from the file is reported
 * with "FILE:LINE: ".
 */
int capture_getopt(int argc, char **argv, const char *cmd, const struct option *longopts,
                   int (*parse)(struct record_opts *o, int c, const char *arg),
                   void (*usage)(FILE *f), struct record_opts *o);

/* Frees the module specs the options hold, and the config file's arguments. */
void capture_opts_free(struct record_opts *o);

/* Exactly one source; --rx-queues and --replay-speed fit it.  0 or EXIT_USAGE (line printed). */
int capture_check_opts(const struct record_opts *o, const char *cmd);

/* Opens the source the options name.  0, or EXIT_FAIL with the line printed. */
int capture_source_open(const struct record_opts *o, const char *cmd, struct ingest_source **src,
                        struct ingest_source_info *info);

/*
 * SIGINT and SIGTERM: the first stops the source given to
 * capture_signals_source() (if any); a second writes `second` (a line of
 * up to 250 bytes, copied; a warning, cli.h) on stderr and exits at once with
 * status 130.
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
 * One packet for analyzer a (its thread only): counted, parsed (into *parsed_out when
 * not NULL: the QQ record's note, so that the dumper does not parse it again; else into
 * b) and queued in b.  When b is full or on capture_analyze_flush(), the burst's flows
 * are tracked in a->flows (lookups prefetched a burst at a time: the table is large and
 * hit at random) and a->engine's modules run.  Then *hash_out (if not NULL) gets the
 * packet's 32-bit flow hash (ft_flow_key_hash of its VLAN-aware bidirectional key); it
 * is left alone for a packet without a flow (not IP, or not parsed).
 */
void capture_analyze(struct record_analyzer *a, struct capture_burst *b, int linktype,
                     uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t *data,
                     uint32_t *hash_out, struct ft_packet *parsed_out);
void capture_analyze_flush(struct record_analyzer *a, struct capture_burst *b);

/* Flows seen by more than one of the n analyzers (0 when flow affinity holds). */
uint64_t capture_split_flows(const struct record_analyzer *ana, unsigned n);

/* Packets and bits at the last status line, per queue and (last slot) for the source. */
struct capture_rates {
	uint64_t pkts[INGEST_MAX_QUEUES + 1], bits[INGEST_MAX_QUEUES + 1];
};

/*
 * The source part of a status line, without a prefix or newline: "afpacket
 * veth0 120000 pkts, 24000 pkt/s 190.2 Mbit/s drops 0 | q0 ...; q1 ..."
 * (rates over dt seconds since *last, which it updates).
 */
void capture_status_source(FILE *f, struct ingest_source *src,
                           const struct ingest_source_info *info, struct capture_rates *last,
                           double dt);

#define CAPTURE_POLL_MS 50

/* What capture_wait() waits on, and what it does meanwhile. */
struct capture_loop {
	const char *cmd;
	const atomic_uint *running; /* source queues still running */
	const atomic_int *failed;   /* a thread failed */
	const struct ft_modset *mods;
	uint64_t status_ns; /* --status-interval; 0: no status lines */
	/* writes the status line into f, without "flowscope CMD: " or a newline */
	void (*status)(void *arg, FILE *f, struct capture_rates *last, double dt);
	void *arg;
	struct service_watch watch; /* the threads WATCHDOG=1 vouches for (service.h) */
};

/*
 * The main thread while the sources run: until *running is 0, *failed is set
 * or a --strict-modules module failed (ft_modset_fatal(mods); mods may be
 * NULL), every CAPTURE_POLL_MS it pings the watchdog if every watched thread
 * moved (service_watch_poll), and every status_ns it prints the status line
 * on stderr (an info line, cli.h) and hands it to the service manager
 * (STATUS=).
 */
void capture_wait(struct capture_loop *l);

/*
 * What a queue's run returned, for the exit status: a failure prints its line
 * and returns EXIT_FAIL; damaged input (INGEST_E_DAMAGED) prints "<err>;
 * <kept>" and sets *damaged; else 0.
 */
int capture_queue_status(const char *cmd, int rc, const char *err, const char *kept, int *damaged);

/* Prints each line of text as "flowscope <cmd>: <line>", an info line (cli.h). */
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
