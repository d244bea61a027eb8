/*
 * query: answers "which packets match this BPF filter in this time range"
 * from an archive, reading only the frames the index says can match.
 *
 * Purpose
 *   A filter is any libpcap filter expression.  The planner extracts what the
 *   index can answer (hosts, nets, ports, protocols, VLANs, ethertypes, with
 *   and/or/not and parentheses) into a plan whose candidate frames are a
 *   superset of the frames holding matching packets; every packet of a
 *   candidate frame is then matched exactly with pcap_offline_filter().
 *   Whatever the planner does not understand widens the plan (to "all
 *   frames"), never narrows it, so the answer is always exact.
 *
 * Lifecycle
 *   query_plan_build() -> query_plan_format() / query_run() -> query_plan_free();
 *   query_run() builds its own plan.  query_steno_translate() ->
 *   query_steno_free() turns a Stenographer query into query_options' filter,
 *   from_ns and to_ns.
 *   The HTTP API (query_api_*, api.c):
 *   query_api_start() -> query_api_port() -> query_api_stop().
 *
 * Threading
 *   Plans are immutable after building and may be shared.  query_run() uses
 *   one read transaction of its own and, for the frames it reads, a pool of
 *   query_options.workers - 1 threads of its own (started and joined inside
 *   the call; frame readers of their own) beside the caller's, which
 *   decompresses too while it waits.  The API server runs
 *   its own threads (one per connection, one per running query) over a shared
 *   struct archive; its callbacks (metrics, health, parse_time) are called from
 *   them, concurrently.
 *
 * Errors
 *   0 on success, negative errno, or QUERY_E_* (-10400..-10499);
 *   query_strerror().  query_run() leaves a one-line reason in errbuf.
 */
#ifndef FLOWSCOPE_QUERY_H
#define FLOWSCOPE_QUERY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "archive/archive.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QUERY_E_BASE (-10400)
#define QUERY_E_FILTER (QUERY_E_BASE - 1)    /* libpcap rejected the filter */
#define QUERY_E_LINKTYPES (QUERY_E_BASE - 2) /* matches span link types a pcap cannot hold */
#define QUERY_E_OUTPUT (QUERY_E_BASE - 3)    /* writing the output failed */
#define QUERY_E_STENO (QUERY_E_BASE - 10)    /* not a Stenographer query flowscope translates */
#define QUERY_E_TLS (QUERY_E_BASE - 4)       /* API: TLS setup failed (certificate, key, CA) */
#define QUERY_E_LISTEN (QUERY_E_BASE - 5)    /* API: cannot listen there (or not allowed) */
#define QUERY_E_LAST (QUERY_E_BASE - 99)

const char *query_strerror(int err);

#define QUERY_ERRBUF_SIZE 512

/* ---- plans ----------------------------------------------------------------------- */

enum query_plan_op {
	QUERY_PLAN_ALL = 1, /* every frame is a candidate (not indexable) */
	QUERY_PLAN_NONE,    /* no frame is a candidate */
	QUERY_PLAN_TERM,    /* frames holding a term in [lo, hi] of one type */
	QUERY_PLAN_AND,     /* intersection of left and right */
	QUERY_PLAN_OR,      /* union of left and right */
};

struct query_plan {
	enum query_plan_op op;
	enum archive_term_type type;     /* QUERY_PLAN_TERM */
	uint8_t lo[ARCHIVE_TERM_MAXLEN]; /* QUERY_PLAN_TERM: inclusive bounds, */
	uint8_t hi[ARCHIVE_TERM_MAXLEN]; /*   archive_term_len(type) bytes each */
	struct query_plan *left, *right; /* QUERY_PLAN_AND / QUERY_PLAN_OR */
};

/*
 * Builds the index plan for a libpcap filter expression (NULL or "" = match
 * everything: QUERY_PLAN_ALL).  The expression must already be accepted by
 * pcap_compile(); parts the planner does not understand become
 * QUERY_PLAN_ALL.  The plan is simplified (ALL absorbs OR, is the identity of
 * AND).  Returns 0 and *out (free with query_plan_free), or -ENOMEM.
 */
int query_plan_build(const char *filter, struct query_plan **out);

void query_plan_free(struct query_plan *p);

/* Writes a one-line rendering, e.g. "(host 10.0.0.1 AND port 80)"; returns buf. */
char *query_plan_format(const struct query_plan *p, char *buf, size_t len);

/*
 * The plan as a ClickHouse condition on flow rows (docs/clickhouse.md's flows
 * table): a row matches when its flow can hold a packet the plan's frames
 * hold, so the sensors without a matching row hold no matching IP packet
 * (packets of no flow, ARP naming a host, are not in the rows).  Terms the
 * rows cannot tell (ethertypes, protocols other than ICMP, TCP, UDP,
 * ICMPv6, SCTP: an IPv6 extension header is a term, not a row's protocol)
 * are "1".  Returns 0 with the condition in buf, 1 when it narrows nothing
 * (buf ""), -ENOSPC when buf is too short.
 */
int query_plan_sql(const struct query_plan *p, char *buf, size_t len);

/* ---- running ---------------------------------------------------------------------- */

enum query_format {
	QUERY_FORMAT_PCAP = 0, /* pcap, nanosecond timestamps (microsecond with ts_micro) */
	QUERY_FORMAT_PCAPNG,   /* pcapng: one interface per link type, the query as comment */
	QUERY_FORMAT_JSON,     /* one JSON object per packet (time, addresses, ports, ...) */
};

struct query_options {
	const char *filter; /* libpcap expression; NULL/"" = everything */
	uint64_t from_ns;   /* inclusive; 0 = from the start */
	uint64_t to_ns;     /* exclusive; 0 = to the end */
	enum query_format format;
	int ts_micro;           /* pcap: microsecond timestamps (truncated) */
	uint64_t limit_packets; /* stop after this many packets; 0 = no limit */
	uint64_t limit_bytes;   /* stop before the output would exceed this; 0 = no limit */
	const char *comment;    /* pcapng: section comment (e.g. the command line) */
	FILE *out;              /* output stream; flushed after every frame */
	FILE *notices;          /* if not NULL: one-line notices ("not indexable: scanning
	                            N bytes") before reading; prefixed with notice_prefix */
	const char *notice_prefix;
	int explain;      /* 1: describe the plan on out, read no frame */
	int skip_damaged; /* 1: a frame that cannot be read (damaged, its file missing or cut
	                     short) is left out with a line on notices and counted in
	                     query_result; 0: the query fails there (ARCHIVE_E_CORRUPT or
	                     -errno, errbuf names archive, segment, frame and file) */
	/* if not NULL: every matching packet is handed to on_packet (with its segment)
	   instead of being written: out, format, ts_micro, comment and limit_bytes are
	   unused, nothing is written.  A negative return (the caller's error)
	   stops the query, which returns it with errbuf empty; 0 goes on */
	int (*on_packet)(const struct archive_segment_info *seg, const struct archive_record *rec,
	                 void *arg);
	void *on_packet_arg;
	/* if not NULL: called once the query is known to run (filter compiled, time range
	   planned), before its first output byte; a query that fails earlier never calls it */
	void (*on_start)(void *arg);
	void *on_start_arg;
	/* if not NULL: set nonzero (by another thread) to stop the query before its next
	   frame: it returns -ECANCELED.  Read relaxed: a frame late is fine */
	const atomic_int *stop;
	/* if not NULL: a Community ID v1 (seed 0; ft_community_id): only the packets of the
	   flows with that ID active in [from, to), both directions, any VLAN tags (an ID has
	   none), and-ed with filter.  No such flow: an empty answer (query_result.no_flow);
	   not a Community ID: QUERY_E_FILTER */
	const char *community_id;
	/* threads that decompress and match frames (readahead.c), the query's own (which
	   also merges and writes) included: 0 = one per online CPU, 1 = the query's thread
	   alone (no pool); at most QUERY_MAX_WORKERS.  The answer is the same bytes
	   whatever the number */
	unsigned workers;
};

#define QUERY_MAX_WORKERS 64

struct query_result {
	uint64_t packets;          /* packets written */
	uint64_t bytes;            /* output bytes written */
	uint64_t segments;         /* segments in the time range */
	uint64_t frames_read;      /* frames decompressed */
	uint64_t frames_total;     /* frames in the time range */
	uint64_t bytes_read;       /* compressed bytes read */
	int indexed;               /* 1 if the index narrowed the frames */
	int limited;               /* 1 if a limit stopped the answer before its end */
	uint64_t segments_removed; /* segments retention removed while the query ran */
	uint64_t frames_damaged;   /* frames left out as unreadable (skip_damaged) */
	uint64_t packets_damaged;  /* their packets, as the index counts them */
	int no_flow;               /* no flow has query_options.community_id: nothing read */
};

/* One answer query_merge() takes: a server's pcap answer. */
struct query_merge_input {
	const char *name; /* pcapng: the if_name of its packets' interfaces (the sensor's name) */
	FILE *in;         /* its pcap (nanosecond or microsecond), read from the start and
	                     closed by query_merge; NULL or not a capture: no packets */
	uint64_t packets; /* out: the packets taken from it */
	int truncated;    /* out: it ended inside a packet (a stream cut short) */
};

/*
 * Writes the packets of in[0..n) to opt->out ordered by timestamp (stable:
 * on a tie, the earlier input first) in opt->format: pcap (nanosecond, or
 * microsecond with ts_micro), or pcapng with opt->comment and one interface
 * per input and link type, named after the input.  Every input's whole
 * packets are written, a truncated one's too.  Returns 0, QUERY_E_LINKTYPES
 * (pcap: inputs with packets of different link types; nothing written),
 * QUERY_E_OUTPUT, -EINVAL (JSON), -ENOMEM; errbuf (QUERY_ERRBUF_SIZE) gets
 * one line.  Pure but for the files: any thread.
 */
int query_merge(struct query_merge_input *in, size_t n, const struct query_options *opt,
                char *errbuf);

/*
 * The bytes an answer without packets takes in opt's format (and, for
 * pcapng, with opt's comment): the pcap file header (24), the pcapng Section
 * Header Block, nothing for JSON.  A limit_bytes below it cannot be kept.
 */
uint64_t query_header_size(const struct query_options *opt);

/*
 * Runs a query against an open archive, writing the matching packets: each
 * recording in the order the recorder took its packets (QQ chunk order:
 * capture order for one queue, even where timestamps step back), several
 * recordings merged packet by packet by timestamp, ties by recording (run
 * id), then segment id.  Segments of a link type the filter cannot be
 * compiled for are left out with a warning on notices.  Returns 0 (also for
 * an empty answer, which is a valid empty pcap, and when skip_damaged left
 * frames out: see query_result), QUERY_E_FILTER, QUERY_E_LINKTYPES,
 * QUERY_E_OUTPUT, or ARCHIVE_E_*; errbuf gets one line.
 */
int query_run(struct archive *a, const struct query_options *opt, struct query_result *res,
              char *errbuf);

/* ---- Stenographer's query language (steno.c; docs/api.md) ----------------------------- */

/* Bounds (beyond: QUERY_E_STENO).  libpcap's optimizer takes time cubic in the
   terms (0.02 s for 64 ports, 1.1 s for 256), so a query's size is bounded. */
#define QUERY_STENO_MAX_LEN 4096 /* bytes of query text */
#define QUERY_STENO_MAX_DEPTH 64 /* nested parentheses */
#define QUERY_STENO_MAX_TERMS 64 /* primitives (host, port, after, ...) */

/* A Stenographer query as query_run() takes it. */
struct query_steno {
	char *filter;     /* libpcap expression (malloc'd); "" = every packet */
	uint64_t from_ns; /* inclusive ("after T": T); 0 = from the start */
	uint64_t to_ns;   /* exclusive ("before T": T); 0 = to the end */
};

/*
 * Translates a query in Stenographer's language ("host 10.0.0.1 and port 53
 * and after 2h ago"; text of len bytes, not NUL-terminated, at most
 * QUERY_STENO_MAX_LEN) into a libpcap filter that pcap_compile() parses
 * (its optimizer still refuses one that can match nothing, "udp and tcp",
 * as it does for tcpdump and query_run) and a time range.  host/net become ip or ip6 host/net (no ARP), port becomes
 * tcp or udp port, ip proto/icmp match IPv4 and IPv6; "and" and "or" have
 * equal precedence, left to right, as in Stenographer and libpcap.
 * "before"/"after" take RFC 3339 with a zone or "N[mhd] ago" (from now_ns,
 * ns since 1970) and must be conjuncts of the whole query (not under "or").
 * Pure and thread-safe.  Returns 0 and *out (query_steno_free it), or
 * QUERY_E_STENO with one line in errbuf (QUERY_ERRBUF_SIZE bytes) giving the
 * 1-based column and what was expected there, or -ENOMEM; *out is then
 * zeroed.
 */
int query_steno_translate(const char *text, size_t len, uint64_t now_ns, struct query_steno *out,
                          char *errbuf);

/* Frees out->filter (NULL is fine); the struct itself is the caller's. */
void query_steno_free(struct query_steno *s);
/* ---- flows (flows.c): what `flowscope flows` and GET /api/v1/flows list ----------------- */

enum query_flows_sort {
	QUERY_FLOWS_BY_TIME = 0, /* first packet time, earliest first */
	QUERY_FLOWS_BY_BYTES,    /* then largest first (ties by time) */
	QUERY_FLOWS_BY_PACKETS,
	QUERY_FLOWS_BY_DURATION,
};

struct query_flows_options {
	const char *filter; /* a flow is listed when one of its packets matches; NULL/"" = all */
	uint64_t from_ns, to_ns;    /* flows active in [from, to); 0 = open */
	int triggered;              /* only flows a trigger archived */
	enum query_flows_sort sort; /* BY_TIME with top: by bytes */
	uint64_t offset;            /* leave out the first offset flows of that order (paging) */
	uint64_t top;               /* then keep at most top; 0 = all */
	uint64_t limit;             /* then at most limit, the order kept (a page); 0 = all */
	uint64_t *total;            /* if set: the flows selected before offset/top/limit */
	FILE *notices;              /* as query_options.notices (for the filter's query) */
	const char *notice_prefix;
	const atomic_int *stop; /* as query_options.stop */
};

/*
 * Lists the flows of the archive (read snapshot t): records of one flow in
 * several segments merged, then selected, ordered, paged.  Returns 0 with
 * *flows (malloc'd, the caller frees) of *n, and *frames_damaged the frames
 * the filter's query left out as unreadable (their flows may be missing);
 * or QUERY_E_FILTER, ARCHIVE_E_*, -ENOMEM, -ECANCELED; errbuf gets one line.
 * Thread-safe (one t per thread).
 */
int query_flows(struct archive *a, struct archive_rtxn *t, const struct query_flows_options *o,
                struct archive_flow_info **flows, size_t *n, uint64_t *frames_damaged,
                char *errbuf);

/* A flow's fields as text, as `flowscope flows` shows them. */
struct query_flow_text {
	char first[48], last[48]; /* RFC 3339, ns */
	char proto[16];
	char a[64], b[64]; /* ADDR:PORT, [ADDR6]:PORT */
	char vlan[16];     /* "300/42", "42", "-" */
	char flags[16];    /* TCP flags seen, FSRPAUEC letters, "-" for none */
	/* Community ID v1 (seed 0); "-" for ICMP flows, which have none (ft_community_id) */
	char community_id[FT_COMMUNITY_ID_LEN];
	char trigger[256]; /* the trigger's name, "" for none */
};
void query_flow_fields(struct archive_rtxn *t, const struct archive_flow_info *f,
                       struct query_flow_text *x); /* t NULL: trigger "" */
/* A flow's VLAN ids as query_flow_text.vlan shows them (ids of 0-4095). */
void query_vlan_text(unsigned vlan, unsigned inner, char *buf, size_t len);

/*
 * Writes the flow as one JSON line (`flows --json`, /api/v1/flows);
 * "community_id" is null for ICMP flows.
 */
void query_flow_json(FILE *out, struct archive_rtxn *t, const struct archive_flow_info *f);

/* ---- the HTTP API (api.c; docs/api.md) ------------------------------------------------------ */

/*
 * GET /metrics: the Prometheus text exposition (format 0.0.4) of the caller's
 * counters.  Called from a connection thread, possibly several at once.
 * Returns 0 with *text (malloc'd, the server frees it) of *len bytes, or a
 * negative errno (the answer is then 503 with a JSON error).  NULL in
 * query_api_config: /metrics answers 404.
 */
typedef int (*query_api_metrics_fn)(void *arg, char **text, size_t *len);

/*
 * GET /healthz: 0 when healthy (200), else nonzero with a one-line reason in
 * reason (503).  NULL: healthy while the archive can be read.
 */
typedef int (*query_api_health_fn)(void *arg, char *reason, size_t len);

/*
 * POST /api/v1/trigger (docs/api.md): a recorder's triggers from outside.
 * t is the parsed request (its filter valid for the call only), name the
 * trigger's name for the index ("api: REASON").  Returns 0 with *res, or an
 * error with a line in err: -EINVAL (400: the filter), FT_E_STOPPING or
 * FT_E_TIMEDOUT or -EBUSY (503), others 500.  NULL in query_api_config: the
 * endpoint answers 404 (flowscope serve has no recorder).
 */
typedef int (*query_api_trigger_fn)(void *arg, const struct ft_trigger *t, const char *name,
                                    struct ft_trigger_result *res, char *err, size_t errlen);

/* from/to as the command line takes them: 0 and *ns, or nonzero (400). */
typedef int (*query_api_time_fn)(const char *text, uint64_t *ns);

struct query_api_config {
	struct archive *archive;     /* read only, shared; outlives the server */
	const char *listen;          /* "ADDR:PORT" or "[ADDR6]:PORT"; port 0 = any free one */
	const char *tls_cert;        /* PEM server certificate chain; NULL = plain HTTP, which */
	const char *tls_key;         /*   only a loopback address may serve (else QUERY_E_LISTEN) */
	const char *client_ca;       /* PEM CA(s): clients must present a certificate it signed
	                            (refused in the TLS handshake); NULL = no client auth */
	unsigned max_queries;        /* queries at once; more answer 429; 0 = 4 */
	unsigned max_connections;    /* 0 = 64 */
	unsigned per_ip_connections; /* 0 = 16 */
	unsigned idle_timeout_s;     /* a connection idle this long is closed; 0 = 30 */
	unsigned query_timeout_s;    /* a query running longer is cut off; 0 = 600 */
	uint64_t max_answer_bytes;   /* a query's answer stops before this (as limit_bytes, the
	                                smaller wins: whole packets, a valid file); 0 = none */
	unsigned query_workers;      /* query_options.workers of each query; 0 = one per CPU */
	query_api_time_fn parse_time; /* required */
	query_api_metrics_fn metrics;
	void *metrics_arg;
	query_api_health_fn health;
	void *health_arg;
	query_api_trigger_fn trigger; /* record --listen: POST /api/v1/trigger; NULL: 404 */
	void *trigger_arg;
};

struct query_api;

/*
 * In two steps, for a caller that drops privileges between them (record
 * --listen): query_api_open() checks the config, reads the certificate, key
 * and CA files and binds the listening socket, as the caller is (root may
 * read a key only root reads and bind a port below 1024), starting no
 * thread; query_api_serve() starts serving (its own threads, which hold what
 * the process holds then).  query_api_start() does both.  Each returns 0
 * (and *out), or QUERY_E_TLS, QUERY_E_LISTEN, -ENOMEM, -EINVAL (a config
 * field out of range); errbuf gets one line naming the file or address at
 * fault.  After a failed serve, query_api_stop() frees the server.  The
 * caller should ignore SIGPIPE (stdio output).
 */
int query_api_open(const struct query_api_config *c, struct query_api **out, char *errbuf);
int query_api_serve(struct query_api *s, char *errbuf);
int query_api_start(const struct query_api_config *c, struct query_api **out, char *errbuf);

/* The TCP port the server listens on (the one picked when listen asked for port 0). */
unsigned query_api_port(const struct query_api *s);

/* What the server did, counted since it started (docs/api.md, "Counters"). */
#define QUERY_API_LATENCY_BUCKETS 5 /* query durations: <= 10 ms, 100 ms, 1 s, 10 s, 60 s */
struct query_api_counters {
	uint64_t requests;      /* requests ended (answered, refused or cut off) */
	uint64_t responses_2xx; /* by the status answered */
	uint64_t responses_4xx;
	uint64_t responses_5xx;
	uint64_t refused_busy; /* 429: --max-queries reached (also in responses_4xx) */
	uint64_t aborted;      /* ended before their answer was whole: client gone, a timeout,
	                           a stream cut off, the server stopping */
	uint64_t queries;      /* /api/v1/query, POST /query answers started (200) */
	uint64_t query_bytes;  /* their bytes handed to the connections */
	uint64_t query_ns;     /* their durations, added up (start to end of the stream) */
	uint64_t query_le[QUERY_API_LATENCY_BUCKETS]; /* queries that took at most 10 ms, ... */
	uint64_t query_failed;    /* /api/v1/query requests answered 4xx/5xx (429 too) or cut off */
	uint64_t queries_running; /* gauges, now: queries streaming */
	uint64_t connections;     /* connections open */
};

/* The upper bounds of query_le's buckets, in ns. */
extern const uint64_t query_api_latency_le_ns[QUERY_API_LATENCY_BUCKETS];

/* A copy of the counters (relaxed reads: each value is current, not all at one instant).
   Any thread, while the server runs or after query_api_stop's MHD part... until it returns. */
void query_api_counters(const struct query_api *s, struct query_api_counters *out);

/*
 * Stops accepting, ends running queries and connections, frees.  NULL is a
 * no-op.  If final is not NULL it gets the counters as they end.
 */
void query_api_stop_counted(struct query_api *s, struct query_api_counters *final);

/* Stops accepting, ends running queries and connections, frees.  NULL is a no-op. */
void query_api_stop(struct query_api *s);

#ifdef __cplusplus
}
#endif
#endif
