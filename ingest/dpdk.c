/*
 * DPDK ethdev source: any PMD (a NIC, or a vdev such as net_pcap or
 * net_af_packet), one thread per RX queue, bursts straight into the QQ.
 *
 * Flow affinity: with several RX queues the port runs RSS with a symmetric
 * Toeplitz key (0x6d5a repeated), so both directions of a flow hash to the
 * same queue, hence the same QQ producer and the same analyzer.  A PMD
 * without RSS is refused for several queues unless it spreads flows itself
 * (net_af_packet: the kernel's PACKET_FANOUT_HASH, also symmetric).
 *
 * Hot path: rte_eth_rx_burst of INGEST_BURST mbufs, one copy of each frame
 * into the QQ (burst mode: none, the burst is handed over before its mbufs
 * are freed; only chained mbufs are linearised), the mbufs freed in bulk: no
 * allocation, no syscall, no lock per packet.  Threads that run queues register as DPDK lcores so the
 * mempool's per-lcore caches work.
 *
 * Timestamps, in order of preference: the PMD's own timestamp when it sets
 * the mbuf's timestamp field and we know its unit (net_pcap: microseconds
 * since the epoch from the file, which it opens with pcap_open_offline, so a
 * nanosecond file loses its last three digits: the run line says so; NICs
 * with RX timestamp offload: their clock, calibrated against CLOCK_REALTIME
 * through rte_eth_read_clock), else the TSC calibrated against
 * CLOCK_REALTIME when the port starts, read once per burst.
 *
 * Logging: during initialisation EAL's output goes to a temporary file so a
 * failure is reported as one line (with EAL's last message); afterwards
 * DPDK logs to stderr at error level only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "ingest/ingest_pvt.h"

#define MAX_EAL_ARGS 64
#define NB_RXD 1024
#define MBUF_CACHE 256
#define IDLE_SPINS 256 /* empty bursts before the loop starts napping */

enum ts_mode { TS_TSC, TS_PMD_USEC, TS_DEVICE_CLOCK };

struct dpdk_source {
	struct ingest_source base;
	char name[64];
	uint16_t port_id;
	struct rte_mempool *pool;
	int ts_off;       /* mbuf dynfield offset of the RX timestamp, or -1 */
	uint64_t ts_flag; /* ol_flags bit saying the field is set */
	enum ts_mode ts_mode;
	uint64_t tsc0, tsc_hz; /* TSC at real0, and its frequency */
	uint64_t real0;        /* CLOCK_REALTIME (ns) at tsc0 / dev0 */
	uint64_t dev0, dev_hz; /* device clock at real0, and its frequency */
};

static int eal_initialised; /* rte_eal_init() succeeded once in this process */

/* The symmetric Toeplitz key: any (src, dst) and (dst, src) hash alike. */
static uint8_t sym_rss_key[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

/* ---- EAL ------------------------------------------------------------------------------ */

/* The last non-empty line of the EAL log captured in memory, for error messages. */
static void last_log_line(const char *log, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	while (len > 0 && (log[len - 1] == '\n' || log[len - 1] == ' '))
		len--;
	size_t start = len;
	while (start > 0 && log[start - 1] != '\n')
		start--;
	snprintf(out, outlen, "%.*s", (int)(len - start), log + start);
}

/* Splits args at whitespace into argv (argv[0] = "flowscope"); returns argc or -1. */
static int split_args(char *args, char **argv, int max)
{
	int argc = 0;
	argv[argc++] = "flowscope";
	for (char *tok = strtok(args, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
		if (argc == max - 1)
			return -1;
		argv[argc++] = tok;
	}
	argv[argc] = NULL;
	return argc;
}

/*
 * Runs rte_eal_init with stderr (and DPDK's log stream) redirected to a
 * temporary file: EAL writes its complaints there (some, such as
 * "EAL: FATAL", bypass the log stream), and a failure becomes one line.
 */
static int eal_init_quiet(int argc, char **argv, char *last, size_t lastlen)
{
	FILE *cap = tmpfile();
	int saved = dup(STDERR_FILENO);
	if (cap && saved >= 0) {
		fflush(stderr);
		dup2(fileno(cap), STDERR_FILENO);
		rte_openlog_stream(cap);
	}
	int r = rte_eal_init(argc, argv);
	int err = rte_errno;
	last[0] = '\0';
	if (cap && saved >= 0) {
		fflush(stderr);
		fflush(cap);
		dup2(saved, STDERR_FILENO);
		rte_openlog_stream(stderr);
		char *log = NULL;
		size_t cap_len = 0;
		long n = ftell(cap);
		if (n > 0 && (log = malloc((size_t)n)) && fseek(cap, 0, SEEK_SET) == 0)
			cap_len = fread(log, 1, (size_t)n, cap);
		last_log_line(log ? log : "", cap_len, last, lastlen);
		free(log);
	}
	if (saved >= 0)
		close(saved);
	if (cap)
		fclose(cap);
	rte_log_set_global_level(RTE_LOG_ERR);
	rte_errno = err;
	return r;
}

static int eal_init(const char *eal_args, char *errbuf)
{
	char *copy = strdup(eal_args), *argv[MAX_EAL_ARGS + 1], last[256];
	if (!copy)
		return -ENOMEM;
	int argc = split_args(copy, argv, MAX_EAL_ARGS + 1);
	if (argc < 0) {
		free(copy);
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "--dpdk: more than %d EAL arguments",
		         MAX_EAL_ARGS);
		return INGEST_E_DPDK;
	}
	int r = eal_init_quiet(argc, argv, last, sizeof(last));
	int err = rte_errno;
	free(copy); /* EAL keeps its own copy of the arguments */
	if (r < 0) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "DPDK EAL initialisation failed (--dpdk '%s'): %s%s%s", eal_args,
		         rte_strerror(err), last[0] ? "; EAL said: " : "", last);
		return INGEST_E_DPDK;
	}
	eal_initialised = 1;
	return 0;
}

/* ---- port --------------------------------------------------------------------------------- */

/* PMDs whose queues are fed by a symmetric flow hash of their own. */
static int spreads_flows_itself(const char *driver)
{
	return strcmp(driver, "net_af_packet") == 0;
}

static int port_conf(struct dpdk_source *d, const struct rte_eth_dev_info *info, unsigned rxq,
                     struct rte_eth_conf *conf, char *errbuf)
{
	memset(conf, 0, sizeof(*conf));
	if (rxq > info->max_rx_queues) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "DPDK port %u (%s) has %u RX queues; --rx-queues asks for %u", d->port_id,
		         info->driver_name, info->max_rx_queues, rxq);
		return INGEST_E_DPDK;
	}
	if (rxq > 1 && info->flow_type_rss_offloads) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		if (info->hash_key_size == sizeof(sym_rss_key)) {
			conf->rx_adv_conf.rss_conf.rss_key = sym_rss_key;
			conf->rx_adv_conf.rss_conf.rss_key_len = sizeof(sym_rss_key);
		}
		conf->rx_adv_conf.rss_conf.rss_hf =
		    (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_SCTP) &
		    info->flow_type_rss_offloads;
		if (info->hash_key_size != sizeof(sym_rss_key)) {
			snprintf(
			    errbuf, INGEST_ERRBUF_SIZE,
			    "DPDK port %u (%s): RSS key of %u bytes, the symmetric key needs 40: "
			    "use --rx-queues 1",
			    d->port_id, info->driver_name, info->hash_key_size);
			return INGEST_E_DPDK;
		}
	} else if (rxq > 1 && !spreads_flows_itself(info->driver_name)) {
		snprintf(
		    errbuf, INGEST_ERRBUF_SIZE,
		    "DPDK port %u (%s) has no RSS to keep flows on one queue: use --rx-queues 1",
		    d->port_id, info->driver_name);
		return INGEST_E_DPDK;
	}
	if (info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP)
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
	if (info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
		conf->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	return 0;
}

/* Picks the timestamp source and calibrates it against CLOCK_REALTIME. */
static void timestamps_init(struct dpdk_source *d, const struct rte_eth_dev_info *info)
{
	d->ts_off = -1;
	if (rte_mbuf_dyn_rx_timestamp_register(&d->ts_off, &d->ts_flag) != 0)
		d->ts_off = -1;
	d->tsc_hz = rte_get_tsc_hz();
	d->tsc0 = rte_rdtsc();
	d->real0 = ingest__real_ns();
	d->ts_mode = TS_TSC;
	if (d->ts_off < 0)
		return;
	if (strcmp(info->driver_name, "net_pcap") == 0) {
		d->ts_mode = TS_PMD_USEC; /* the capture file's own timestamps */
		return;
	}
	uint64_t c0, c1;
	if (!(info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) ||
	    rte_eth_read_clock(d->port_id, &c0) != 0)
		return;
	uint64_t t0 = ingest__real_ns();
	rte_delay_us_sleep(100000);
	if (rte_eth_read_clock(d->port_id, &c1) != 0 || c1 <= c0)
		return;
	uint64_t t1 = ingest__real_ns();
	d->dev_hz = (uint64_t)((double)(c1 - c0) * 1e9 / (double)(t1 - t0));
	d->dev0 = c1;
	d->real0 = t1;
	d->ts_mode = TS_DEVICE_CLOCK;
}

/* TX queues 0..n-1, never used: for a PMD that will not run RX queues without them. */
static int tx_queues_setup(struct dpdk_source *d, unsigned n, uint16_t nb_txd, int sock)
{
	for (unsigned q = 0; q < n; q++) {
		int r = rte_eth_tx_queue_setup(d->port_id, (uint16_t)q, nb_txd ? nb_txd : 64,
		                               (unsigned)sock, NULL);
		if (r != 0)
			return r;
	}
	return 0;
}

static int port_setup(struct dpdk_source *d, unsigned rxq, char *errbuf)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	uint16_t nb_rxd = NB_RXD, nb_txd = 0;
	int r, sock = rte_eth_dev_socket_id(d->port_id);
	if ((r = rte_eth_dev_info_get(d->port_id, &info)) != 0 ||
	    (r = port_conf(d, &info, rxq, &conf, errbuf)) != 0)
		return r == INGEST_E_DPDK ? r : INGEST_E_DPDK;
	snprintf(d->name, sizeof(d->name), "port %u (%s)", d->port_id, info.driver_name);
	d->pool = rte_pktmbuf_pool_create(
	    "flowscope_rx", rxq * (NB_RXD + 2 * MBUF_CACHE + 1024) - 1, MBUF_CACHE, 0,
	    RTE_MBUF_DEFAULT_BUF_SIZE, sock < 0 ? (int)rte_socket_id() : sock);
	if (!d->pool) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: cannot create the mbuf pool: %s (more -m?)", d->name,
		         rte_strerror(rte_errno));
		return INGEST_E_DPDK;
	}
	/* no TX queue, unless the PMD pairs them (net_af_xdp, net_tap: -EINVAL without) */
	unsigned txq = 0;
	if ((r = rte_eth_dev_configure(d->port_id, (uint16_t)rxq, 0, &conf)) == -EINVAL)
		r = rte_eth_dev_configure(d->port_id, (uint16_t)rxq, (uint16_t)(txq = rxq), &conf);
	if (r != 0 || (r = rte_eth_dev_adjust_nb_rx_tx_desc(d->port_id, &nb_rxd, &nb_txd)) != 0 ||
	    (r = tx_queues_setup(d, txq, nb_txd, sock)) != 0) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: configure with %u RX queues: %s", d->name,
		         rxq, rte_strerror(-r));
		return INGEST_E_DPDK;
	}
	for (unsigned q = 0; q < rxq; q++)
		if ((r = rte_eth_rx_queue_setup(d->port_id, (uint16_t)q, nb_rxd, (unsigned)sock,
		                                NULL, d->pool)) != 0) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: RX queue %u: %s", d->name, q,
			         rte_strerror(-r));
			return INGEST_E_DPDK;
		}
	timestamps_init(d, &info);
	rte_eth_promiscuous_enable(d->port_id); /* some PMDs cannot: not an error */
	if ((r = rte_eth_dev_start(d->port_id)) != 0) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: start: %s", d->name, rte_strerror(-r));
		return INGEST_E_DPDK;
	}
	return 0;
}

/* ---- receiving ------------------------------------------------------------------------------ */

static inline uint64_t tsc_to_ns(const struct dpdk_source *d, uint64_t tsc)
{
	uint64_t dt = tsc - d->tsc0;
	return d->real0 + dt / d->tsc_hz * 1000000000u + dt % d->tsc_hz * 1000000000u / d->tsc_hz;
}

/* A packet's timestamp: the PMD's when it set one we understand, else the burst's. */
static inline uint64_t mbuf_ts(const struct dpdk_source *d, const struct rte_mbuf *m,
                               uint64_t burst_ns)
{
	if (d->ts_mode == TS_TSC || !(m->ol_flags & d->ts_flag))
		return burst_ns;
	uint64_t v = *RTE_MBUF_DYNFIELD(m, d->ts_off, const rte_mbuf_timestamp_t *);
	if (d->ts_mode == TS_PMD_USEC)
		return v * 1000u;
	uint64_t dv = v - d->dev0; /* TS_DEVICE_CLOCK */
	return d->real0 + dv / d->dev_hz * 1000000000u + dv % d->dev_hz * 1000000000u / d->dev_hz;
}

/*
 * Copies a burst into the QQ, or hands it to the burst callback.  Returns 0
 * or INGEST_E_QQ.
 */
static int store_burst(struct dpdk_source *d, struct ingest_sink *k, struct rte_mbuf **m,
                       uint16_t n)
{
	static _Thread_local uint8_t linear[262144];
	uint64_t burst_ns = d->ts_mode == TS_PMD_USEC ? 0 : tsc_to_ns(d, rte_rdtsc());
	for (uint16_t i = 0; i < n; i++) {
		uint32_t len = rte_pktmbuf_pkt_len(m[i]);
		uint32_t cap = len < sizeof(linear) ? len : (uint32_t)sizeof(linear);
		/* a chain is linearised: in burst mode where the callback will read it, else
		   into `linear`, which the next one reuses */
		uint8_t *room = rte_pktmbuf_is_contiguous(m[i]) ? NULL : ingest__sink_room(k, cap);
		const uint8_t *data = rte_pktmbuf_read(m[i], 0, cap, room ? room : linear);
		enum ingest_data how = room             ? INGEST_STAGED
		                       : data == linear ? INGEST_COPY
		                                        : INGEST_KEEP;
		uint64_t ts = mbuf_ts(d, m[i], burst_ns);
		if (!ts)
			ts = tsc_to_ns(d, rte_rdtsc());
		if (data && ingest__store(k, ts, cap, len, data, how) != 0)
			return INGEST_E_QQ;
	}
	ingest__sink_deliver(k); /* before the caller frees the mbufs */
	return 0;
}

/* Port-level drop counters, kept by queue 0's thread (see ingest_pvt.h). */
static void port_stats_refresh(struct dpdk_source *d)
{
	struct rte_eth_stats st;
	if (rte_eth_stats_get(d->port_id, &st) != 0)
		return;
	ingest__count_set(&d->base.dev.imissed, st.imissed);
	ingest__count_set(&d->base.dev.ierrors, st.ierrors);
	ingest__count_set(&d->base.dev.rx_nombuf, st.rx_nombuf);
}

static int dpdk_run(struct ingest_source *s, struct ingest_sink *k, char *errbuf)
{
	struct dpdk_source *d = (struct dpdk_source *)s;
	unsigned q = k->queue;
	struct rte_mbuf *m[INGEST_BURST];
	unsigned idle = 0;
	uint64_t next_stats = 0;
	int r = 0;
	int registered = rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() == 0;

	while (!ingest__stopping(s)) {
		uint16_t n = rte_eth_rx_burst(d->port_id, (uint16_t)q, m, INGEST_BURST);
		if (n > 0) {
			idle = 0;
			r = store_burst(d, k, m, n);
			rte_pktmbuf_free_bulk(m, n);
			if (r) {
				snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: the QQ refused packets",
				         d->name);
				break;
			}
			continue;
		}
		uint64_t now = ingest__mono_ns();
		ingest__sink_idle(k, now);
		if (q == 0 && now >= next_stats) {
			port_stats_refresh(d);
			next_stats = now + INGEST_STATS_EVERY_NS;
		}
		if (++idle > IDLE_SPINS) /* quiet link: nap instead of burning the core */
			usleep(idle > 100 * IDLE_SPINS ? 1000 : 50);
	}
	if (q == 0)
		port_stats_refresh(d);
	if (registered)
		rte_thread_unregister();
	return r;
}

static void dpdk_close(struct ingest_source *s)
{
	struct dpdk_source *d = (struct dpdk_source *)s;
	rte_eth_dev_stop(d->port_id);
	rte_eth_dev_close(d->port_id);
	rte_mempool_free(d->pool);
	free(d);
	rte_eal_cleanup();
	eal_initialised = 0;
}

static const struct ingest_ops dpdk_ops = {.run = dpdk_run, .close = dpdk_close};

int ingest_dpdk_open(const char *eal_args, uint16_t port_id, unsigned rx_queues, uint16_t port,
                     struct ingest_source **out, char *errbuf)
{
	if (rx_queues == 0 || rx_queues > INGEST_MAX_QUEUES) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "--rx-queues %u: expected 1..%d", rx_queues,
		         INGEST_MAX_QUEUES);
		return -EINVAL;
	}
	if (eal_initialised) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "only one DPDK source per process");
		return -EBUSY;
	}
	int r = eal_init(eal_args, errbuf);
	if (r)
		return r;
	if (!rte_eth_dev_is_valid_port(port_id)) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "DPDK port %u does not exist (%u ports: give --vdev or a NIC to EAL)",
		         port_id, rte_eth_dev_count_avail());
		rte_eal_cleanup();
		eal_initialised = 0;
		return INGEST_E_DPDK;
	}
	struct dpdk_source *d = calloc(1, sizeof(*d));
	if (!d) {
		rte_eal_cleanup();
		eal_initialised = 0;
		return -ENOMEM;
	}
	d->base.ops = &dpdk_ops;
	d->port_id = port_id;
	if ((r = port_setup(d, rx_queues, errbuf)) != 0) {
		dpdk_close(&d->base);
		return r;
	}
	d->base.info = (struct ingest_source_info){.name = d->name,
	                                           .kind = "dpdk",
	                                           .linktype = 1, /* LINKTYPE_ETHERNET */
	                                           .snaplen = 262144,
	                                           .queues = rx_queues,
	                                           .port = port};
	if (d->ts_mode == TS_PMD_USEC) /* it opens files with pcap_open_offline: microseconds */
		d->base.info.ts_note =
		    "timestamps in microseconds: DPDK's net_pcap delivers no nanoseconds";
	*out = &d->base;
	return 0;
}
