/*
 * ingest: packet sources that write captured packets straight into the QQ.
 *
 * Purpose
 *   One small interface over every kind of source.  A source has one or more
 *   receive queues; each queue is served by one thread that owns one QQ
 *   producer handle and calls ingest_source_run() for its queue.
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
 *   are several; bursts of 32, no per-packet allocation or syscall.
 *   AF_PACKET: ingest_afpacket_open().  A TPACKET_V3 ring per queue, queues
 *   joined in a PACKET_FANOUT_HASH group (the kernel's symmetric flow hash).
 *   libpcap live capture: ingest_live_open().  One queue.
 *
 *   Every source hands the QQ whole frames as captured, with VLAN tags that
 *   the kernel or NIC stripped put back, and nanosecond timestamps.
 *
 * Lifecycle
 *   ingest_*_open() -> ingest_source_info() -> ingest_source_run() on each
 *   queue (one thread each) -> ingest_source_stats() -> ingest_source_close().
 *
 * Threading
 *   ingest_source_run() for queue q is called by one thread at a time;
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
};

/*
 * Counters of one queue, or of the whole source (queue -1: the queues summed,
 * plus what only the device knows).  Names as printed: ingest.<kind>.<field>.
 */
struct ingest_stats {
	uint64_t packets;           /* stored in the QQ */
	uint64_t bytes;             /* captured bytes stored */
	uint64_t wire_bytes;        /* sum of wire lengths stored */
	uint64_t truncated_records; /* file: a record cut by the end of the file */
	uint64_t dropped_qq;        /* refused by the QQ (it was stopped) */
	uint64_t dropped_oversize;  /* larger than a QQ chunk can hold */
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
 * Receives packets on `queue` into producer p until the source ends or
 * ingest_source_stop() is called.  Publishes partly filled chunks when the
 * source is idle (qq_producer_flush).  Returns 0 at the end of the input or
 * when stopped; INGEST_E_DAMAGED (errbuf names file and offset; everything
 * before was stored); INGEST_E_QQ when the QQ stopped; -errno when the
 * capture failed (errbuf says why).
 */
int ingest_source_run(struct ingest_source *s, unsigned queue, struct qq_producer *p, char *errbuf);

/* Asks every queue's ingest_source_run() to return soon.  Async-signal-safe. */
void ingest_source_stop(struct ingest_source *s);

/* Counters of queue `queue`, or of the whole source for queue -1. */
void ingest_source_stats(const struct ingest_source *s, int queue, struct ingest_stats *out);

void ingest_source_close(struct ingest_source *s);

#ifdef __cplusplus
}
#endif
#endif
