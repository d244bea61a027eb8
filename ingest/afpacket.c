/*
 * AF_PACKET source: one TPACKET_V3 receive ring per queue, the queues' sockets
 * joined in one PACKET_FANOUT_HASH group, each ring read by its own thread.
 *
 * Flow affinity: the fanout hash is the kernel's symmetric flow hash, so both
 * directions of a flow land on the same socket, hence the same queue, QQ
 * producer and analyzer.  No rollover flag (it would move a flow to another
 * socket when its ring is full) and no defrag flag (it would hand us the
 * reassembled datagram instead of the frames on the wire).  Without defrag,
 * IP fragments hash on addresses and protocol only, so the fragments of a
 * datagram may reach a different queue than the unfragmented packets of the
 * same 5-tuple.
 *
 * Start-up without stray packets: a socket created with protocol 0 receives
 * nothing until it is bound, and it gets a drop-everything BPF filter before
 * it is bound.  Only when every socket of the source is bound and in the
 * fanout group is that filter replaced by the snaplen filter (keep 262144
 * bytes): no ring ever holds a packet from another interface, or one that
 * the fanout group distributed before all its members joined.
 * Both directions are captured (outgoing packets too, as tcpdump does).
 *
 * Ring walk: blocks are filled by the kernel and read by us in the same
 * cyclic order.  A block belongs to us while its status has TP_STATUS_USER;
 * each frame in it is stored into the QQ (a VLAN tag the kernel stripped put
 * back from the frame's metadata, the frame cut so that it still fits the
 * snaplen), then the block is handed back with TP_STATUS_KERNEL.  In burst
 * mode the frames are handed over where they are, before the block goes back.
 * A block is retired by the kernel after AFP_RETIRE_MS even when not full, so
 * low-rate traffic arrives promptly.
 *
 * Link changes: an interface taken down and up again is captured on again
 * (the kernel re-attaches the sockets and their fanout group; flows may be
 * spread over the queues differently afterwards); a removed interface ends
 * run() with -ENODEV.
 *
 * Counters: PACKET_STATISTICS resets the kernel's counters when read, so only
 * queue q's run thread reads its socket's, and adds tp_drops to its
 * dropped_kernel (every INGEST_STATS_EVERY_NS and once more when run returns).
 */
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include "ingest/ingest_pvt.h"

#define AFP_SNAPLEN 262144u
#define AFP_VLAN_LEN 4u
#define AFP_BLOCK_SIZE (1u << 20) /* one block holds any frame up to the snaplen */
#define AFP_BLOCKS 32u            /* 32 MiB per queue, like libpcap's default buffer */
#define AFP_FRAME_SIZE 2048u      /* V3 packs frames; the kernel only checks the arithmetic */
#define AFP_RETIRE_MS 4u          /* hand over a partly filled block after this */
#define AFP_POLL_MS 100           /* longest wait, so a stop request is seen quickly */
#define AFP_BUSY_POLL_MS 2        /* wait shortly after traffic, so the QQ flushes promptly */
#define AFP_RECENT_NS 100000000u  /* "shortly after traffic" */

struct afp_queue {
	int fd;
	uint8_t *ring; /* AFP_BLOCKS blocks of AFP_BLOCK_SIZE, mmap'ed; NULL if not */
	unsigned cur;  /* next block to read; run thread only */
	int netdown;   /* the interface went down, nothing since; run thread only */
};

struct afp_source {
	struct ingest_source base;
	char name[IFNAMSIZ];
	unsigned ifindex;
	struct afp_queue q[INGEST_MAX_QUEUES];
};

/* ---- set-up ------------------------------------------------------------------------- */

/* One line "<if>: <what>: <strerror>" in errbuf; returns -e. */
static int afp_fail(const struct afp_source *a, char *errbuf, int e, const char *what)
{
	snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %s: %s", a->name, what, strerror(e));
	return -e;
}

static int afp_filter_set(int fd, uint32_t keep_bytes)
{
	struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, keep_bytes)};
	struct sock_fprog prog = {.len = 1, .filter = code};
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

/* An unbound TPACKET_V3 socket that drops everything it will receive. */
static int afp_socket_create(struct afp_source *a, struct afp_queue *q, char *errbuf)
{
	q->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* protocol 0: receives nothing */
	if (q->fd < 0) {
		int e = errno;
		if (e == EPERM || e == EACCES) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE,
			         "AF_PACKET on %s: %s (needs root or CAP_NET_RAW)", a->name,
			         strerror(EPERM));
			return -EPERM;
		}
		return afp_fail(a, errbuf, e, "AF_PACKET socket");
	}
	int v = TPACKET_V3;
	if (setsockopt(q->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) != 0)
		return afp_fail(a, errbuf, errno, "TPACKET_V3");
	if (afp_filter_set(q->fd, 0) != 0)
		return afp_fail(a, errbuf, errno, "SO_ATTACH_FILTER");
	return 0;
}

/* Refuses interfaces that are down or whose frames are not Ethernet. */
static int afp_link_check(struct afp_source *a, int fd, char *errbuf)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, a->name, sizeof(a->name));
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
		return afp_fail(a, errbuf, errno, "SIOCGIFHWADDR");
	unsigned type = ifr.ifr_hwaddr.sa_family;
	if (type != ARPHRD_ETHER && type != ARPHRD_LOOPBACK) { /* lo has Ethernet headers */
		snprintf(errbuf, INGEST_ERRBUF_SIZE,
		         "%s: not an Ethernet interface (ARPHRD %u); use libpcap live capture",
		         a->name, type);
		return -ENOTSUP;
	}
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		return afp_fail(a, errbuf, errno, "SIOCGIFFLAGS");
	if (!(ifr.ifr_flags & IFF_UP)) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: interface is down", a->name);
		return -ENETDOWN;
	}
	return 0;
}

static int afp_ring_map(struct afp_source *a, struct afp_queue *q, char *errbuf)
{
	struct tpacket_req3 req = {
	    .tp_block_size = AFP_BLOCK_SIZE,
	    .tp_block_nr = AFP_BLOCKS,
	    .tp_frame_size = AFP_FRAME_SIZE,
	    .tp_frame_nr = AFP_BLOCK_SIZE / AFP_FRAME_SIZE * AFP_BLOCKS,
	    .tp_retire_blk_tov = AFP_RETIRE_MS,
	};
	if (setsockopt(q->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0)
		return afp_fail(a, errbuf, errno, "PACKET_RX_RING (32 MiB)");
	void *m = mmap(NULL, (size_t)AFP_BLOCK_SIZE * AFP_BLOCKS, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_POPULATE, q->fd, 0);
	if (m == MAP_FAILED)
		return afp_fail(a, errbuf, errno, "mmap of the receive ring");
	q->ring = m;
	return 0;
}

/* Binds to the interface for every protocol, promiscuous. */
static int afp_bind(struct afp_source *a, struct afp_queue *q, char *errbuf)
{
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(ETH_P_ALL),
	    .sll_ifindex = (int)a->ifindex,
	};
	if (bind(q->fd, (struct sockaddr *)&sll, sizeof(sll)) != 0)
		return afp_fail(a, errbuf, errno, "bind");
	struct packet_mreq mr = {.mr_ifindex = (int)a->ifindex, .mr_type = PACKET_MR_PROMISC};
	if (setsockopt(q->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0)
		return afp_fail(a, errbuf, errno, "promiscuous mode");
	return 0;
}

static int afp_queue_open(struct afp_source *a, unsigned i, char *errbuf)
{
	struct afp_queue *q = &a->q[i];
	int r = afp_socket_create(a, q, errbuf);
	if (!r && i == 0)
		r = afp_link_check(a, q->fd, errbuf);
	if (!r)
		r = afp_ring_map(a, q, errbuf);
	if (!r)
		r = afp_bind(a, q, errbuf);
	return r;
}

/*
 * Joins every socket into one hash fanout group.  The kernel picks an id no
 * other group in this network namespace uses (PACKET_FANOUT_FLAG_UNIQUEID,
 * Linux 4.1), so two sources or two processes never share a group by chance.
 */
static int afp_fanout_join(struct afp_source *a, char *errbuf)
{
	unsigned n = a->base.info.queues;
	if (n == 1)
		return 0;
	int v = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
	socklen_t len = sizeof(v);
	if (setsockopt(a->q[0].fd, SOL_PACKET, PACKET_FANOUT, &v, sizeof(v)) != 0 ||
	    getsockopt(a->q[0].fd, SOL_PACKET, PACKET_FANOUT, &v, &len) != 0)
		return afp_fail(a, errbuf, errno, "PACKET_FANOUT");
	int join = (PACKET_FANOUT_HASH << 16) | (v & 0xffff);
	for (unsigned i = 1; i < n; i++) {
		if (setsockopt(a->q[i].fd, SOL_PACKET, PACKET_FANOUT, &join, sizeof(join)) != 0)
			return afp_fail(a, errbuf, errno, "PACKET_FANOUT join");
	}
	return 0;
}

/* ---- receiving ---------------------------------------------------------------------- */

static struct tpacket_block_desc *afp_block(const struct afp_queue *q)
{
	return (struct tpacket_block_desc *)(q->ring + (size_t)q->cur * AFP_BLOCK_SIZE);
}

static int afp_block_ready(const struct tpacket_block_desc *bd)
{
	uint32_t st = *(const volatile uint32_t *)&bd->hdr.bh1.block_status;
	/* acquire: pairs with the kernel's smp_wmb() before it sets TP_STATUS_USER
	 * (prb_close_block): the frames are complete once we see the status */
	atomic_thread_fence(memory_order_acquire);
	return (st & TP_STATUS_USER) != 0;
}

static void afp_block_release(struct tpacket_block_desc *bd)
{
	/* release: our reads of the frames are done before the kernel, which checks
	 * this status before it refills the block (prb_dispatch_next_block), sees it */
	atomic_thread_fence(memory_order_release);
	*(volatile uint32_t *)&bd->hdr.bh1.block_status = TP_STATUS_KERNEL;
}

/* Stores one frame, putting back the VLAN tag the kernel stripped into metadata. */
static int afp_frame_store(struct ingest_sink *k, const struct tpacket3_hdr *h)
{
	const uint8_t *data = (const uint8_t *)h + h->tp_mac;
	uint64_t ts = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec;
	uint32_t cap = h->tp_snaplen;

	if (!(h->tp_status & TP_STATUS_VLAN_VALID))
		return ingest__store(k, ts, cap, h->tp_len, data, INGEST_KEEP);
	uint16_t tpid =
	    (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
	if (cap + AFP_VLAN_LEN > AFP_SNAPLEN) /* the tag must not push it past the snaplen */
		cap = AFP_SNAPLEN - AFP_VLAN_LEN;
	return ingest__store_vlan(k, ts, cap, h->tp_len, data, tpid, h->hv1.tp_vlan_tci);
}

static int afp_block_store(struct afp_source *a, struct ingest_sink *k,
                           const struct tpacket_block_desc *bd, char *errbuf)
{
	const uint8_t *pos = (const uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
	for (uint32_t i = 0; i < bd->hdr.bh1.num_pkts; i++) {
		const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)pos;
		if (afp_frame_store(k, h) != 0) {
			snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: stopped: the QQ refused packets",
			         a->name);
			return INGEST_E_QQ;
		}
		pos += h->tp_next_offset;
	}
	ingest__sink_deliver(k); /* burst mode: before the block goes back to the kernel */
	return 0;
}

/* Adds the drops since the last read (reading resets the kernel's counters). */
static void afp_stats_read(struct afp_source *a, unsigned queue)
{
	struct tpacket_stats_v3 st;
	socklen_t len = sizeof(st);
	if (getsockopt(a->q[queue].fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
		ingest__count_add(&a->base.q[queue].dropped_kernel, st.tp_drops);
}

/* The interface was removed (or replaced by another of the same name). */
static int afp_gone(const struct afp_source *a, char *errbuf)
{
	if (if_nametoindex(a->name) == a->ifindex)
		return 0;
	snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: the interface went away", a->name);
	return -ENODEV;
}

/*
 * POLLERR: the kernel sets ENETDOWN on the socket when the interface goes
 * down or is removed.  Down is not an error: the kernel puts the socket back
 * on the interface (and in its fanout group) when it comes up, as libpcap
 * lets a capture continue.  Removal ends the capture; as the removal may come
 * after the error, the run loop keeps checking while the link is down.
 */
static int afp_socket_error(struct afp_source *a, struct afp_queue *q, char *errbuf)
{
	int e = 0;
	socklen_t len = sizeof(e);
	if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		e = errno;
	if (e == 0)
		return 0;
	if (e != ENETDOWN)
		return afp_fail(a, errbuf, e, "capture socket");
	q->netdown = 1;
	return afp_gone(a, errbuf);
}

static int afp_wait(struct afp_source *a, struct afp_queue *q, int timeout_ms, char *errbuf)
{
	struct pollfd pfd = {.fd = q->fd, .events = POLLIN | POLLERR};
	int n = poll(&pfd, 1, timeout_ms);
	if (n < 0 && errno != EINTR)
		return afp_fail(a, errbuf, errno, "poll");
	if (n > 0 && (pfd.revents & POLLERR))
		return afp_socket_error(a, q, errbuf);
	return 0;
}

static int afp_run(struct ingest_source *s, struct ingest_sink *k, char *errbuf)
{
	struct afp_source *a = (struct afp_source *)s;
	unsigned queue = k->queue;
	struct afp_queue *q = &a->q[queue];
	uint64_t now = ingest__mono_ns(), stats_due = now + INGEST_STATS_EVERY_NS;
	uint64_t last_block = 0; /* when we last stored a block */
	int r = 0;

	while (!r && !ingest__stopping(s)) {
		struct tpacket_block_desc *bd = afp_block(q);
		if (afp_block_ready(bd)) {
			r = afp_block_store(a, k, bd, errbuf);
			afp_block_release(bd);
			q->cur = (q->cur + 1) % AFP_BLOCKS;
			last_block = now;
			q->netdown = 0;
		} else {
			/* idle: publish the partly filled QQ chunk, which happens only once
			 * it is flush_ns old, so after traffic look again soon rather than
			 * after AFP_POLL_MS.  (Under load no pass is idle: chunks fill.) */
			ingest__sink_idle(k, now);
			int ms = now - last_block < AFP_RECENT_NS ? AFP_BUSY_POLL_MS : AFP_POLL_MS;
			r = afp_wait(a, q, ms, errbuf);
		}
		now = ingest__mono_ns();
		if (!r && now >= stats_due) {
			afp_stats_read(a, queue);
			stats_due = now + INGEST_STATS_EVERY_NS;
			if (q->netdown)
				r = afp_gone(a, errbuf);
		}
	}
	afp_stats_read(a, queue);
	return r;
}

/* ---- open and close ----------------------------------------------------------------- */

static void afp_close(struct ingest_source *s)
{
	struct afp_source *a = (struct afp_source *)s;
	for (unsigned i = 0; i < INGEST_MAX_QUEUES; i++) {
		if (a->q[i].ring)
			munmap(a->q[i].ring, (size_t)AFP_BLOCK_SIZE * AFP_BLOCKS);
		if (a->q[i].fd >= 0)
			close(a->q[i].fd);
	}
	free(a);
}

static const struct ingest_ops afp_ops = {.run = afp_run, .close = afp_close};

/* Opens every queue's socket, joins the fanout group, then lets packets in. */
static int afp_setup(struct afp_source *a, char *errbuf)
{
	int r = 0;
	for (unsigned i = 0; !r && i < a->base.info.queues; i++)
		r = afp_queue_open(a, i, errbuf);
	if (!r)
		r = afp_fanout_join(a, errbuf);
	for (unsigned i = 0; !r && i < a->base.info.queues; i++) {
		if (afp_filter_set(a->q[i].fd, AFP_SNAPLEN) != 0)
			r = afp_fail(a, errbuf, errno, "SO_ATTACH_FILTER");
	}
	return r;
}

int ingest_afpacket_open(const char *ifname, unsigned rx_queues, uint16_t port,
                         struct ingest_source **out, char *errbuf)
{
	errno = ENODEV;
	unsigned ifindex = strlen(ifname) < IFNAMSIZ ? if_nametoindex(ifname) : 0;
	if (!ifindex && errno != ENODEV) { /* out of descriptors, say */
		int e = errno;
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: interface lookup: %s", ifname,
		         strerror(e));
		return -e;
	}
	if (!ifindex) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "no such interface: %s", ifname);
		return -ENODEV;
	}
	if (rx_queues < 1 || rx_queues > INGEST_MAX_QUEUES) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: %u receive queues (1..%u)", ifname,
		         rx_queues, (unsigned)INGEST_MAX_QUEUES);
		return -EINVAL;
	}
	struct afp_source *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(errbuf, INGEST_ERRBUF_SIZE, "%s: out of memory", ifname);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < INGEST_MAX_QUEUES; i++)
		a->q[i].fd = -1;
	a->base.ops = &afp_ops;
	memcpy(a->name, ifname, strlen(ifname) + 1);
	a->ifindex = ifindex;
	a->base.info = (struct ingest_source_info){
	    .name = a->name,
	    .kind = "afpacket",
	    .linktype = 1, /* LINKTYPE_ETHERNET */
	    .snaplen = AFP_SNAPLEN,
	    .queues = rx_queues,
	    .port = port,
	};
	int r = afp_setup(a, errbuf);
	if (r) {
		afp_close(&a->base);
		return r;
	}
	*out = &a->base;
	return 0;
}
