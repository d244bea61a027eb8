/*
 * ingest: packet sources that write captured packets straight into the QQ,
 * or hand them in bursts to a callback (immediate mode).
 *
 * Purpose
 *   One small interface over every kind of source.  A source has one or more
 *   receive queues; each queue is served by one thread that either owns one
 *   QQ producer handle and calls ingest_source_run() for its queue, or calls
 *   ingest_source_run_burst() with a callback that gets every burst of
 *   packets as the source receives it (no QQ: `flowscope monitor`).
 *
 * Sources
 *   pcap/pcapng file (libpcap): ingest_file_open().  One queue.  Timestamps
 *   are read in nanoseconds whatever the file's resolution.  As fast as
 *   possible, or paced at the recorded speed times a factor.  A record cut
 *   short by the end of the file is stored up to the cut and counted
 *   (ingest.file.truncated_records); damage elsewhere stops reading with an
 *   error that names the file and the byte offset.
 *   DPDK ethdev: ingest_dpdk_open().  Any PMD (NICs, net_pcap, net_af_packet
 *   ...); one queue per RX queue, RSS with a symmetric Toeplitz key when there
 *   are several; bursts of 32, no per-packet allocation or syscall.  net_pcap
 *   (22.11) opens its files with pcap_open_offline and so delivers microseconds
 *   (info.ts_note says so).
 *   AF_PACKET: ingest_afpacket_open().  A TPACKET_V3 ring per queue, queues
 *   joined in a PACKET_FANOUT_HASH group (the kernel's symmetric flow hash).
 *   libpcap live capture: ingest_live_open().  One queue.
 *
 *   Every source hands the QQ whole frames as captured, with VLAN tags that
 *   the kernel or NIC stripped put back, and nanosecond timestamps.
 *
 * Lifecycle
 *   ingest_*_open() -> ingest_source_info() -> ingest_source_run() or
 *   ingest_source_run_burst() on each queue (one thread each) ->
 *   ingest_source_stats() -> ingest_source_close().
 *
 * Threading
 *   ingest_source_run() / ingest_source_run_burst() for queue q is called by
 *   one thread at a time (the burst callback runs on that thread);
 *   ingest_source_stop() and ingest_source_stats() may be called from any
 *   thread (counters are read with relaxed atomics: each is exact, the set
 *   may be mid-update).
 *
 * Errors
 *   0 on success, negative errno, or INGEST_E_* (-10100..-10199);
 *   ingest_strerror().  Open functions write a one-line reason into errbuf
 *   (INGEST_ERRBUF_SIZE bytes) that names the input at fault.
 */
#ifndef FLOWSCOPE_INGEST_H
#define FLOWSCOPE_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "qq/qq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INGEST_E_BASE (-10100)
#define INGEST_E_FORMAT (INGEST_E_BASE - 1)  /* not a capture file libpcap can read */
#define INGEST_E_DAMAGED (INGEST_E_BASE - 2) /* input damaged mid-file; errbuf says where */
#define INGEST_E_QQ (INGEST_E_BASE - 3)      /* the QQ refused a packet (see qq error) */
#define INGEST_E_DPDK (INGEST_E_BASE - 4)    /* DPDK EAL or port setup failed; errbuf says why */
#define INGEST_E_LIVE (INGEST_E_BASE - 5)    /* libpcap could not capture; errbuf says why */
#define INGEST_E_LAST (INGEST_E_BASE - 99)

const char *ingest_strerror(int err);

#define INGEST_ERRBUF_SIZE 512

struct ingest_source;

#define INGEST_MAX_QUEUES 64

struct ingest_source_info {
	const char *name; /* file path, interface or DPDK port, for messages */
	const char *kind; /* "file", "dpdk", "afpacket", "live": counter names use it */
	int linktype;     /* LINKTYPE_ value, as pcap files store it (not the DLT_ value) */
	uint32_t snaplen;
	unsigned queues; /* receive queues: call ingest_source_run() once per queue */
	uint16_t port;   /* source number stamped on every record */
	/* What limits the timestamps, a phrase for the run line; NULL: nothing (nanoseconds
	 * where the input has them).  DPDK net_pcap: "timestamps in microseconds: ...". */
	const char *ts_note;
};

/*
 * Counters of one queue, or of the whole source (queue -1: the queues summed,
 * plus what only the device knows).  Names as printed: ingest.<kind>.<field>.
 */
struct ingest_stats {
	uint64_t packets;           /* stored in the QQ (or handed to the burst callback) */
	uint64_t bytes;             /* captured bytes stored */
	uint64_t wire_bytes;        /* sum of wire lengths stored */
	uint64_t truncated_records; /* file: a record cut by the end of the file */
	uint64_t dropped_qq;        /* refused by the QQ (it was stopped) */
	uint64_t dropped_oversize;  /* larger than a QQ chunk can hold */
	uint64_t dropped_time;      /* file: a time ns since the epoch in a u64 cannot hold
	                               (before 1970 or after 2554-07-21T23:34:33Z) */
	uint64_t dropped_kernel;    /* afpacket: tp_drops; live: libpcap ps_drop */
	uint64_t dropped_iface;     /* live: libpcap ps_ifdrop */
	uint64_t imissed;           /* dpdk: no RX descriptor (port level) */
	uint64_t ierrors;           /* dpdk: erroneous packets (port level) */
	uint64_t rx_nombuf;         /* dpdk: no mbuf (port level) */
	uint64_t first_ns, last_ns; /* capture time of first and last packet stored */
};

/* Every packet the source lost, whatever the reason (the sum of the dropped_* and
 * device counters above). */
uint64_t ingest_stats_drops(const struct ingest_stats *st);

/*
 * Opens a pcap or pcapng file ("-" = standard input; pipes work too) for
 * replay as source number `port`.
 * Returns 0 and *out; -errno (no such file, permission) or INGEST_E_FORMAT,
 * each with a line in errbuf naming the file.
 */
int ingest_file_open(const char *path, uint16_t port, struct ingest_source **out, char *errbuf);

/*
 * File replay pacing: 0 = as fast as possible (default); X > 0 = at the
 * recorded speed times X (2.0: twice as fast).  Call before running.
 */
void ingest_file_set_speed(struct ingest_source *s, double speed);

/*
 * DPDK: initialises the EAL with `eal_args` (split at whitespace, as a
 * shell would without quotes), then configures `port_id` with `rx_queues`
 * RX queues (RSS with a symmetric key when > 1; a port whose PMD has no RSS
 * is refused unless it spreads flows itself, as net_af_packet does with its
 * kernel fanout), promiscuous, started.  Threads that run its queues register
 * with DPDK as lcores.  Returns 0, or INGEST_E_DPDK / -errno with errbuf
 * naming the cause (EAL failure, no such port, too few queues, no RSS).
 * Only one DPDK source per process.
 */
int ingest_dpdk_open(const char *eal_args, uint16_t port_id, unsigned rx_queues, uint16_t port,
                     struct ingest_source **out, char *errbuf);

/*
 * AF_PACKET: `rx_queues` TPACKET_V3 sockets on interface `ifname` in one
 * PACKET_FANOUT_HASH group, promiscuous.  Returns 0, -ENODEV (no such
 * interface), -EPERM (needs CAP_NET_RAW), or another -errno; errbuf names it.
 */
int ingest_afpacket_open(const char *ifname, unsigned rx_queues, uint16_t port,
                         struct ingest_source **out, char *errbuf);

/*
 * libpcap live capture on any interface libpcap can open (snaplen 262144,
 * promiscuous, nanosecond timestamps where the platform has them).  Returns
 * 0, -ENODEV, -EPERM, or INGEST_E_LIVE; errbuf has libpcap's reason.
 */
int ingest_live_open(const char *ifname, uint16_t port, struct ingest_source **out, char *errbuf);

void ingest_source_info(const struct ingest_source *s, struct ingest_source_info *out);

/*
 * Links: a source's packets may come with several link types (a pcapng file
 * whose interfaces differ, as mergecap writes it).  Each packet carries the
 * number of its link (qq_record.link; a burst's linktype is its link's):
 * link 0 is info.linktype and info.snaplen, a file source adds the others
 * (up to INGEST_MAX_LINKS distinct link type and snaplen pairs) as it reads.
 */
#define INGEST_MAX_LINKS 256

struct ingest_link {
	int linktype;     /* LINKTYPE_ value */
	uint32_t snaplen; /* no captured length exceeds it */
};

/*
 * Link `link` of the source.  Any thread, for a link number a packet it got
 * carries: the source writes the entry before it stores the first packet of
 * that link, and the QQ's publication (or the burst call) orders the two.
 */
struct ingest_link ingest_source_link(const struct ingest_source *s, unsigned link);

/*
 * Receives packets on `queue` into producer p until the source ends or
 * ingest_source_stop() is called.  Publishes partly filled chunks when the
 * source is idle (qq_producer_flush).  Returns 0 at the end of the input or
 * when stopped; INGEST_E_DAMAGED (errbuf names file and offset; everything
 * before was stored); INGEST_E_QQ when the QQ stopped; -errno when the
 * capture failed (errbuf says why).
 */
int ingest_source_run(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf);

/* ---- immediate mode: bursts to a callback instead of the QQ ---------------------------- */

/* One received packet.  `data` is valid only during the callback that gets it. */
struct ingest_pkt {
	uint64_t ts_ns; /* capture time, ns since the epoch */
	uint32_t caplen;
	uint32_t wirelen;
	const uint8_t *data; /* caplen bytes: the whole frame as captured (VLAN tags put back) */
};

/*
 * A burst of packets of one queue, in receive order.  n = 0 says the queue is
 * idle: nothing arrived, nothing is pending; it comes at least every 100 ms
 * while the source waits (a file read flat out never waits), so the consumer
 * can run its timers.
 */
struct ingest_burst {
	unsigned queue;
	int linktype; /* LINKTYPE_ value of every packet (its link's: ingest_source_link) */
	unsigned n;   /* 0..INGEST_BURST_MAX */
	const struct ingest_pkt *pkt;
};

#define INGEST_BURST_MAX 32

/*
 * Called on the queue's thread for every burst.  It cannot refuse packets: a
 * consumer that wants to stop calls ingest_source_stop().  It must not call
 * ingest_source_run*() or ingest_source_close().
 */
typedef void (*ingest_burst_fn)(void *arg, const struct ingest_burst *b);

/*
 * As ingest_source_run(), but hands every packet of `queue` to fn(arg, ...)
 * in bursts of at most INGEST_BURST_MAX, without the QQ: a DPDK burst is
 * handed over as received, before its mbufs are freed; an AF_PACKET ring
 * block's frames before the block goes back to the kernel; packets whose
 * bytes the source reuses at once (libpcap's file and live reads) are first
 * copied into a per-queue staging area of 128 KiB (a larger one is handed
 * over alone, uncopied), where frames whose VLAN tag is put back and
 * chained mbufs are also built: every packet is copied once at most.  Packets are counted (ingest_source_stats) as they are queued
 * for the callback, with the same drop counters as ingest_source_run()
 * (dropped_qq and dropped_oversize stay 0).  Pending packets are handed over
 * when the burst is full, when the source has nothing more at the moment
 * (idle), and before it returns.  Stops, ends and fails as ingest_source_run()
 * (never INGEST_E_QQ).  Returns 0, INGEST_E_DAMAGED, -ENOMEM (no staging
 * area) or -errno, with errbuf as ingest_source_run().
 */
int ingest_source_run_burst(struct ingest_source *s, unsigned queue, ingest_burst_fn fn, void *arg,
                            char *errbuf);

/* Asks every queue's ingest_source_run*() to return soon.  Async-signal-safe. */
void ingest_source_stop(struct ingest_source *s);

/* Counters of queue `queue`, or of the whole source for queue -1. */
void ingest_source_stats(const struct ingest_source *s, int queue, struct ingest_stats *out);

void ingest_source_close(struct ingest_source *s);

/* ---- detector logs: following a text log, Suricata EVE alerts, Zeek notices ------------
 *
 * Purpose
 *   Alerts that another program writes to a log file (Suricata's EVE JSON,
 *   Zeek's notice.log as JSON) become flows to trigger.  Three pieces, kept
 *   apart so each can be tested alone: a follower of a growing text file
 *   (as `tail -F`), a parser of one line into struct ingest_eve_alert, and a
 *   filter on signature id and severity (record --eve-filter).  The mapping
 *   and the counters are documented in docs/triggers.md.
 *
 * Lifecycle
 *   ingest_follow_open() -> ingest_follow_next() in a loop (one thread) ->
 *   ingest_follow_close().  ingest_eve_parse() / ingest_zeek_notice_parse()
 *   on each line; ingest_eve_filter_parse() once per --eve-filter option,
 *   ingest_eve_filter_match() per alert, ingest_eve_filter_free().
 *
 * Threading
 *   A follower is used by one thread at a time; ingest_follow_stats() may be
 *   called from any thread (relaxed atomics: each counter exact, the set may
 *   be mid-update).  The parsers are pure functions (reentrant).  A filter is
 *   immutable once parsed: any number of threads may match against it.
 *
 * Errors
 *   Malformed input: INGEST_E_MALFORMED with a one-line reason in err.
 *   System failures: -errno.
 */
/* a line or a filter text that cannot be used; err says why */
#define INGEST_E_MALFORMED (INGEST_E_BASE - 6)

struct ingest_follow;

/* Longest line delivered by default; a longer one is skipped to its newline and counted. */
#define INGEST_FOLLOW_MAX_LINE (1u << 20)
/* Longest wait between two checks of the path (rotation, truncation, creation), whatever
 * inotify says: the follower stays correct where inotify misses events (NFS, overlay). */
#define INGEST_FOLLOW_POLL_MS 200

struct ingest_follow_opts {
	int from_start;  /* 1: read the file present at open from its first byte; 0: from its end */
	size_t max_line; /* longest line delivered (no newline); 0: INGEST_FOLLOW_MAX_LINE */
};

/* Counters of a follower.  Proposed record counter names in brackets (docs/triggers.md). */
struct ingest_follow_stats {
	uint64_t lines;       /* complete lines delivered [eve.lines] */
	uint64_t bytes;       /* bytes read from the files, skipped ones included */
	uint64_t rotations;   /* switches to another file at the path (rename or delete, then
	                         a new file) [eve.rotations] */
	uint64_t truncations; /* the file shrank below the read position: read again from 0
	                         [eve.truncations] */
	uint64_t too_long;    /* lines over max_line, skipped to their newline [eve.too_long] */
	uint64_t open_errors; /* the path exists but could not be opened (permission, not a
	                         regular file): retried at the next check */
};

/*
 * Follows the text file at `path` as `tail -F` does: a file that does not
 * exist yet is waited for (ingest_follow_next() opens it when it appears, and
 * reads it from its start: all of it is new); an existing file is read from
 * its end (the part of a line before the end is skipped) unless
 * opts->from_start.  Rotation (the path renamed or deleted, then a new file
 * created): the old file is read to its end first, then the new one from its
 * start.  Truncation (the size falls below the read position, logrotate's
 * copytruncate): reading restarts at 0, the partial line held is dropped.
 * A line longer than max_line is never held whole: it is skipped to its
 * newline and counted (too_long).  A last line without its newline is held
 * until the newline arrives; when the file is rotated away with such a line
 * at its end, that line is delivered as it is (its writer has moved on).
 * Waiting: inotify on the file and its directory wakes the follower at once;
 * the path is also checked every INGEST_FOLLOW_POLL_MS (no inotify needed).
 * `opts` may be NULL (defaults).  Returns 0 and *out; -ENOENT (the directory
 * does not exist), -EISDIR / -EINVAL (path is a directory / not a regular
 * file), -EACCES, -ENOMEM, or another -errno; errbuf (INGEST_ERRBUF_SIZE) names
 * the path.  The file itself may be missing.
 */
int ingest_follow_open(const char *path, const struct ingest_follow_opts *opts,
                       struct ingest_follow **out, char *errbuf);

/*
 * The next complete line, without its newline: returns 1 with *line (not
 * NUL-terminated, valid until the next call on f) and *len; 0 when no line
 * came within timeout_ms (0: do not wait; never waits longer, so a thread can
 * check its stop flag between calls).  Never fails: trouble with the file
 * (unreadable, vanished) is waited out and counted.  Lines may be empty.
 */
int ingest_follow_next(struct ingest_follow *f, const char **line, size_t *len, int timeout_ms);

void ingest_follow_stats(const struct ingest_follow *f, struct ingest_follow_stats *out);

void ingest_follow_close(struct ingest_follow *f);

/* Bounds of the strings an alert keeps (bytes, the NUL included); longer ones are cut at
 * a UTF-8 character boundary. */
#define INGEST_EVE_SIGNATURE_MAX 256
#define INGEST_EVE_CATEGORY_MAX 128
#define INGEST_EVE_COMMUNITY_ID_MAX 32 /* "1:" + 28 base64 characters + NUL */

enum ingest_eve_source {
	INGEST_EVE_SURICATA = 1, /* a Suricata EVE alert */
	INGEST_EVE_ZEEK = 2,     /* a Zeek notice (no sid, no severity, no VLAN) */
};

/* One alert, as the parsers fill it.  Ports and ids in host byte order. */
struct ingest_eve_alert {
	enum ingest_eve_source source;
	/* The flow: family AF_INET or AF_INET6, addresses as struct ft_flow_key holds them
	 * (16 bytes, network order, IPv4 as IPv4-mapped ::ffff:a.b.c.d); AF_UNSPEC when the
	 * line names no 5-tuple and community_id alone identifies the flow. */
	int family;
	uint8_t src[16], dest[16];
	uint16_t src_port, dest_port; /* 0 for protocols without ports (all but TCP, UDP, SCTP) */
	uint8_t proto;                /* IP protocol number */
	int icmp_type, icmp_code;     /* ICMP / ICMPv6 type and code; -1 when absent */
	/* VLAN: vlan_known 1 (EVE): n_vlan is the number of tags the alert's `vlan` array
	 * lists (0: untagged), vlan[] the first two, outer first.  vlan_known 0 (Zeek): the
	 * line says nothing about VLANs. */
	int vlan_known;
	unsigned n_vlan;
	uint16_t vlan[2];
	int has_flow_id;
	uint64_t flow_id;                               /* Suricata's flow_id */
	char community_id[INGEST_EVE_COMMUNITY_ID_MAX]; /* "" when absent */
	uint64_t ts_ns;                                 /* the alert's time, ns since the epoch */
	int has_sid;                                    /* EVE: 1; Zeek: 0 */
	uint32_t sid;                                   /* alert.signature_id */
	int has_severity;                               /* EVE: 1; Zeek: 0 */
	unsigned severity;                              /* alert.severity 0..255, 1 the highest */
	char signature[INGEST_EVE_SIGNATURE_MAX];       /* alert.signature; Zeek: "note: msg" */
	char category[INGEST_EVE_CATEGORY_MAX];         /* alert.category; "" when absent */
};

/*
 * Parses one EVE JSON line (`len` bytes, no NUL needed; a trailing newline
 * is fine).  Returns 1 and fills *out for an event_type "alert"; 0 for any
 * other event type (skipped, not an error; *out undefined); INGEST_E_MALFORMED
 * with a one-line reason in err (errlen bytes, may be 0) for a line that is
 * not an EVE record or an alert that cannot be used: invalid JSON (jansson's
 * message and column), missing or mistyped fields, a bad address, port,
 * protocol, VLAN id, timestamp or community_id.  The fields read and their
 * mapping are in docs/triggers.md.  Thread-safe.
 */
int ingest_eve_parse(const char *line, size_t len, struct ingest_eve_alert *out, char *err,
                     size_t errlen);

/*
 * Parses one line of Zeek's notice.log written as JSON (LogAscii::use_json):
 * id.orig_h/id.orig_p/id.resp_h/id.resp_p, proto, note, msg, ts (epoch
 * seconds, or an ISO 8601 string), optional community_id.  Returns 1 for a
 * notice about a flow (signature = "note: msg"); 0 for a notice that names no
 * flow (no id.* fields and no community_id: a scan summary, a host notice);
 * INGEST_E_MALFORMED with err as ingest_eve_parse().  Thread-safe.
 */
int ingest_zeek_notice_parse(const char *line, size_t len, struct ingest_eve_alert *out, char *err,
                             size_t errlen);

/*
 * Filter on alerts (record --eve-filter TEXT, docs/triggers.md):
 *   TEXT  = TERM *( "," TERM )      a term starts with a field name
 *   TERM  = FIELD OP VALUE *( "," VALUE )
 *   FIELD = "sid" | "severity"
 *   OP    = "=" | "!=" | "<" | "<=" | ">" | ">="   (lists and ranges only with = and !=)
 *   VALUE = NUMBER | NUMBER "-" NUMBER               (an inclusive range)
 * e.g. "sid=2010935,2010936", "severity<=2", "sid!=2200000-2299999,severity<=2".
 * Values in one term: any of them ("=") / none of them ("!="); terms: all of
 * them.  Several texts given to the same filter add terms (all must hold).  A
 * term on a field the alert lacks (a Zeek notice has no sid) does not hold.
 */
struct ingest_eve_filter;

/*
 * Adds the terms of `text` to *f (a new filter when *f is NULL).  Returns 0;
 * INGEST_E_MALFORMED with err naming the bad part (then *f is as before);
 * -ENOMEM.
 */
int ingest_eve_filter_parse(struct ingest_eve_filter **f, const char *text, char *err,
                            size_t errlen);

/* 1 when alert a passes f (a NULL filter passes everything), else 0. */
int ingest_eve_filter_match(const struct ingest_eve_filter *f, const struct ingest_eve_alert *a);

void ingest_eve_filter_free(struct ingest_eve_filter *f);

#ifdef __cplusplus
}
#endif
#endif
