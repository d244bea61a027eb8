/*
 * gen.c - `flowscope gen`: write a pcap file of synthetic, deterministic, realistic traffic.
 *
 * The idea: a table of --flows slots, each holding one flow (TCP, UDP or ICMP) that is a small
 * state machine emitting exactly one packet per step (gen_flows.c).  For every packet a seeded
 * PRNG picks a slot and steps its flow; a finished flow is replaced by a fresh one the next time
 * its slot is picked.  So up to --flows flows interleave like a real capture, and the run stops
 * at --packets packets or when the clock reaches --start + --duration, whichever comes first
 * (the flows then running are simply cut off wherever they are).
 *
 * Scripted events (--event) are the one exception to the cut: an evented flow is always
 * complete.  After the cut the run goes on with evented flows only (gen_drain) until each has
 * finished and every event asked for has been given to a flow, so --events-out names complete
 * flows; those packets come after --packets / --duration, and the summary counts them.
 *
 * Invariants:
 *  - Determinism: the only entropy is one splitmix64 stream seeded from --seed, consumed in an
 *    order fixed by the options; no clocks, no rand(), no pointer values, multi-byte fields
 *    written byte by byte.  Same options and seed => byte-identical file.
 *  - Constant memory: the flow table (64 bytes a slot), one frame buffer and the text block are
 *    allocated up front; packets stream out through one stdio buffer, so --packets 1e10 needs
 *    no more memory than --packets 1.  Nothing is allocated per packet.
 *  - Timestamps never go backwards; 5-tuples are unique over the whole file; checksums are
 *    right (gen_packets.c); no flow carries a RST unless --event rst asked for it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "tools/cli.h"
#include "tools/gen.h"

#define GEN_OUT_BUFFER (1u << 20) /* stdio buffer: few large writes instead of many small ones */
#define GEN_MAX_BIG (1ull << 40)  /* --event big: BYTES at most 1 TiB */
#define GEN_HUGE_PAGE (2u << 20)

/* ---- options -------------------------------------------------------------------------------- */

static const char *const event_names[GEN_EV_KINDS] = {"none", "ttl-change", "rst", "big"};

static int opt_uint(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (cli_parse_uint(s, lo, hi, out) == 0)
		return 0;
	cli_error("gen", "%s '%s': expected an integer in %" PRIu64 "..%" PRIu64, name, s, lo, hi);
	return EXIT_USAGE;
}

static int opt_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v = 0;
	int rc = opt_uint(name, s, lo, hi, &v);

	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* The decimal in s[0, n) in [lo, hi]: a copy, so cli_parse_uint sees the whole number. */
static bool parse_part(const char *s, size_t n, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char num[24];

	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n);
	num[n] = '\0';
	return cli_parse_uint(num, lo, hi, out) == 0;
}

/* "64", "imix", "1500" (presets), or "MIN-MAX" payload bytes. */
static int opt_size(struct gen_opts *o, const char *s)
{
	const char *dash = strchr(s, '-');
	uint64_t lo, hi;

	if (!strcmp(s, "64") || !strcmp(s, "imix") || !strcmp(s, "1500")) {
		o->sizes = s[0] == '6' ? GEN_SIZE_64 : s[0] == 'i' ? GEN_SIZE_IMIX : GEN_SIZE_1500;
		return 0;
	}
	if (!dash || !parse_part(s, (size_t)(dash - s), 0, GEN_MAX_PAYLOAD, &lo) ||
	    cli_parse_uint(dash + 1, 0, GEN_MAX_PAYLOAD, &hi) || lo > hi) {
		cli_error("gen",
		          "--size '%s': expected 64, imix, 1500, or MIN-MAX payload bytes with "
		          "0 <= MIN <= MAX <= %u",
		          s, GEN_MAX_PAYLOAD);
		return EXIT_USAGE;
	}
	o->sizes = GEN_SIZE_RANGE;
	o->size_min = (uint32_t)lo;
	o->size_max = (uint32_t)hi;
	return 0;
}

/* Epoch seconds with an optional fraction of up to 9 digits: "1795000000.25". */
static int opt_start(struct gen_opts *o, const char *s)
{
	const char *dot = strchr(s, '.');
	size_t nd = dot ? strlen(dot + 1) : 0; /* fraction digits */
	uint64_t sec, frac = 0;

	if (!parse_part(s, dot ? (size_t)(dot - s) : strlen(s), 0, UINT32_MAX, &sec) ||
	    (dot && (nd == 0 || nd > 9 || cli_parse_uint(dot + 1, 0, 999999999, &frac)))) {
		cli_error("gen",
		          "--start '%s': expected epoch seconds below 2^32 with at most 9 fraction "
		          "digits",
		          s);
		return EXIT_USAGE;
	}
	for (; dot && nd < 9; nd++)
		frac *= 10; /* ".25" is 250000000 ns */
	o->start_sec = sec;
	o->start_nsec = (uint32_t)frac;
	return 0;
}

static int opt_rate(struct gen_opts *o, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.001 && v <= 1e12)) {
		cli_error("gen", "--rate '%s': expected packets per second in 0.001..1e12", s);
		return EXIT_USAGE;
	}
	o->rate = v;
	return 0;
}

static int opt_duration(struct gen_opts *o, const char *s)
{
	if (cli_parse_duration(s, &o->duration_ns) || o->duration_ns == 0) {
		cli_error("gen", "--duration '%s': expected a positive duration such as 30s or 5m",
		          s);
		return EXIT_USAGE;
	}
	return 0;
}

static int opt_payload(struct gen_opts *o, const char *s)
{
	if (!strcmp(s, "zero"))
		o->payload = GEN_PAY_ZERO;
	else if (!strcmp(s, "text"))
		o->payload = GEN_PAY_TEXT;
	else if (!strcmp(s, "random"))
		o->payload = GEN_PAY_RANDOM;
	else {
		cli_error("gen", "--payload '%s': expected zero, text or random", s);
		return EXIT_USAGE;
	}
	return 0;
}

/* "ttl-change:N", "rst:N" or "big:N:BYTES"; repeated kinds add up. */
static int opt_event(struct gen_opts *o, const char *s)
{
	const char *colon = strchr(s, ':'), *num, *colon2;
	uint64_t n, bytes = 0;
	int e = GEN_EV_TTL;

	for (; colon && e < GEN_EV_KINDS; e++) {
		if ((size_t)(colon - s) == strlen(event_names[e]) &&
		    !strncmp(s, event_names[e], (size_t)(colon - s)))
			break;
	}
	num = colon ? colon + 1 : s;
	colon2 = strchr(num, ':');
	if (!colon || e == GEN_EV_KINDS || (e == GEN_EV_BIG) != (colon2 != NULL) ||
	    !parse_part(num, colon2 ? (size_t)(colon2 - num) : strlen(num), 1, GEN_MAX_EVENTS,
	                &n) ||
	    (colon2 && (cli_parse_size(colon2 + 1, &bytes) || bytes == 0 || bytes > GEN_MAX_BIG))) {
		cli_error("gen",
		          "--event '%s': expected ttl-change:N, rst:N or big:N:BYTES with N in "
		          "1..%u and BYTES up to 1T",
		          s, GEN_MAX_EVENTS);
		return EXIT_USAGE;
	}
	if (e == GEN_EV_BIG && o->big_bytes && o->big_bytes != bytes) {
		cli_error("gen", "--event '%s': every big event needs the same BYTES", s);
		return EXIT_USAGE;
	}
	if (o->events[e] + n > GEN_MAX_EVENTS) {
		cli_error("gen", "--event %s: more than %u flows in all", event_names[e],
		          GEN_MAX_EVENTS);
		return EXIT_USAGE;
	}
	o->events[e] += (uint32_t)n;
	if (e == GEN_EV_BIG)
		o->big_bytes = bytes;
	return 0;
}

enum {
	OPT_FLOWS = 256,
	OPT_PACKETS,
	OPT_DURATION,
	OPT_SEED,
	OPT_START,
	OPT_RATE,
	OPT_IPV6,
	OPT_VLAN,
	OPT_UDP,
	OPT_ICMP,
	OPT_SIZE,
	OPT_SNAPLEN,
	OPT_PAYLOAD,
	OPT_EVENT,
	OPT_EVENTS_OUT,
};

static const struct option gen_longopts[] = {
    {"write", required_argument, NULL, 'w'},
    {"flows", required_argument, NULL, OPT_FLOWS},
    {"packets", required_argument, NULL, OPT_PACKETS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"seed", required_argument, NULL, OPT_SEED},
    {"start", required_argument, NULL, OPT_START},
    {"rate", required_argument, NULL, OPT_RATE},
    {"ipv6", required_argument, NULL, OPT_IPV6},
    {"vlan", required_argument, NULL, OPT_VLAN},
    {"udp", required_argument, NULL, OPT_UDP},
    {"icmp", required_argument, NULL, OPT_ICMP},
    {"size", required_argument, NULL, OPT_SIZE},
    {"snaplen", required_argument, NULL, OPT_SNAPLEN},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"event", required_argument, NULL, OPT_EVENT},
    {"events-out", required_argument, NULL, OPT_EVENTS_OUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs(
	    "usage: flowscope gen -w FILE|- [options]\n"
	    "Write deterministic synthetic traffic (Ethernet, nanosecond pcap).\n"
	    "  -w, --write FILE   output file, '-' for stdout (required)\n"
	    "  --flows N          concurrent flows (default 50, at most 16000000; 64 bytes each)\n"
	    "  --packets N        total packets (default 10000, unlimited with --duration alone)\n"
	    "  --duration DUR     stop when capture time reaches --start + DUR (30s, 5m, ...);\n"
	    "                     with --packets, whichever comes first\n"
	    "  --seed N           PRNG seed (default 1); same options and seed, same bytes\n"
	    "  --start T          first timestamp, epoch seconds[.fraction] (default 1795000000)\n"
	    "  --rate PPS         mean packets per second of capture time (default 10000)\n"
	    "  --ipv6 PCT         percent of flows over IPv6 (default 25)\n"
	    "  --vlan PCT         percent of flows with an 802.1Q tag 100/200/300 (default 0)\n"
	    "  --udp PCT          percent of UDP flows (default 25)\n"
	    "  --icmp PCT         percent of ICMP echo flows (default 5); the rest is TCP\n"
	    "  --size SIZES       MIN-MAX payload bytes per packet (default 0-1400, at most\n"
	    "                     65495), or a preset for data packets: 64 (64-byte frames),\n"
	    "                     imix (7:4:1 of 64-byte frames, 576- and 1500-byte IP packets),\n"
	    "                     1500 (1500-byte IP packets)\n"
	    "  --snaplen N        capture length limit (default 262144)\n"
	    "  --payload KIND     zero, text (HTTP-like, default) or random (incompressible)\n"
	    "  --event EV         scripted TCP flows, repeatable: ttl-change:N, rst:N (no other\n"
	    "                     flow has a RST), big:N:BYTES (others stay below BYTES/2)\n"
	    "  --events-out FILE  one line per evented flow: EVENT tcp CLIENT PORT SERVER PORT\n"
	    "  -h, --help         this help\n",
	    out);
}

static int opt_one(struct gen_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'w':
		o->out = arg;
		return 0;
	case OPT_FLOWS:
		return opt_u32("--flows", arg, 1, GEN_MAX_FLOWS, &o->flows);
	case OPT_PACKETS:
		o->packets_set = true;
		return opt_uint("--packets", arg, 0, GEN_MAX_PACKETS, &o->packets);
	case OPT_DURATION:
		return opt_duration(o, arg);
	case OPT_SEED:
		return opt_uint("--seed", arg, 0, UINT64_MAX, &o->seed);
	case OPT_START:
		return opt_start(o, arg);
	case OPT_RATE:
		return opt_rate(o, arg);
	case OPT_IPV6:
		return opt_u32("--ipv6", arg, 0, 100, &o->ipv6_pct);
	case OPT_VLAN:
		return opt_u32("--vlan", arg, 0, 100, &o->vlan_pct);
	case OPT_UDP:
		return opt_u32("--udp", arg, 0, 100, &o->udp_pct);
	case OPT_ICMP:
		return opt_u32("--icmp", arg, 0, 100, &o->icmp_pct);
	case OPT_SIZE:
		return opt_size(o, arg);
	case OPT_SNAPLEN:
		return opt_u32("--snaplen", arg, 1, GEN_MAX_SNAPLEN, &o->snaplen);
	case OPT_EVENT:
		return opt_event(o, arg);
	case OPT_EVENTS_OUT:
		o->events_out = arg;
		return 0;
	default: /* OPT_PAYLOAD */
		return opt_payload(o, arg);
	}
}

/* Names the option getopt_long just rejected, short or long. */
static int opt_reject(int c, char **argv)
{
	const char *word = argv[optind - 1];

	if (c == ':')
		cli_error("gen", "option '%s' needs a value", word);
	else if (optopt && optopt < 256 && strncmp(word, "--", 2))
		cli_error("gen", "unknown option '-%c'", optopt);
	else
		cli_error("gen", "unknown option '%s'", word);
	return EXIT_USAGE;
}

/* Checks that need every option; returns -1 to go on, else EXIT_USAGE (reported). */
static int opts_check(struct gen_opts *o, int argc, char **argv)
{
	const char *why = NULL;

	if (optind < argc)
		cli_error("gen", "unexpected argument '%s'", argv[optind]);
	else if (!o->out)
		why = "missing -w FILE (use -w - for stdout)";
	else if (o->udp_pct + o->icmp_pct > 100)
		why = "--udp plus --icmp exceed 100 percent";
	else if (o->events_out && !strcmp(o->events_out, o->out) && strcmp(o->out, "-"))
		why = "--events-out and -w name the same file";
	else
		return -1;
	if (why)
		cli_error("gen", "%s", why);
	return EXIT_USAGE;
}

/* Returns -1 to go on, else the exit status (help, or a usage error already reported). */
static int opts_parse(struct gen_opts *o, int argc, char **argv)
{
	int c, rc;

	*o = (struct gen_opts){
	    .packets = 10000,
	    .seed = 1,
	    .start_sec = 1795000000,
	    .rate = 10000,
	    .flows = 50,
	    .snaplen = 262144,
	    .size_max = 1400,
	    .ipv6_pct = 25,
	    .udp_pct = 25,
	    .icmp_pct = 5,
	    .payload = GEN_PAY_TEXT,
	};
	optind = 0; /* glibc: full reinitialisation, gen_main may not be the first getopt user */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:h", gen_longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return EXIT_OK;
		}
		if (c == '?' || c == ':')
			return opt_reject(c, argv);
		rc = opt_one(o, c, optarg);
		if (rc)
			return rc;
	}
	if (o->duration_ns && !o->packets_set)
		o->packets = GEN_MAX_PACKETS; /* the duration alone decides */
	return opts_check(o, argc, argv);
}

/* ---- output --------------------------------------------------------------------------------- */

static const char *out_name(const struct gen *g)
{
	return strcmp(g->o.out, "-") ? g->o.out : "stdout";
}

static FILE *out_stdout(void)
{
	/* A duplicate, so closing the dump leaves the process' stdout open. */
	int fd = dup(STDOUT_FILENO);
	FILE *fp = fd < 0 ? NULL : fdopen(fd, "wb");

	if (!fp && fd >= 0)
		close(fd);
	return fp;
}

static int out_open(struct gen *g)
{
	g->pcap = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, (int)g->o.snaplen,
	                                               PCAP_TSTAMP_PRECISION_NANO);
	if (!g->pcap) {
		cli_error("gen", "cannot create a pcap handle");
		return EXIT_FAIL;
	}
	if (!strcmp(g->o.out, "-") && isatty(STDOUT_FILENO)) {
		cli_error("gen", "refusing to write pcap to a terminal");
		return EXIT_USAGE;
	}
	g->fp = strcmp(g->o.out, "-") ? fopen(g->o.out, "wb") : out_stdout();
	if (!g->fp) {
		cli_error("gen", "cannot write %s: %s", out_name(g), strerror(errno));
		return EXIT_FAIL;
	}
	setvbuf(g->fp, NULL, _IOFBF, GEN_OUT_BUFFER);
	g->dump = pcap_dump_fopen(g->pcap, g->fp);
	if (!g->dump) {
		cli_error("gen", "cannot write %s: %s", out_name(g), pcap_geterr(g->pcap));
		fclose(g->fp);
		g->fp = NULL;
		return EXIT_FAIL;
	}
	if (g->o.events_out && !(g->ev_fp = fopen(g->o.events_out, "w"))) {
		cli_error("gen", "cannot write %s: %s", g->o.events_out, strerror(errno));
		return EXIT_FAIL;
	}
	return 0;
}

/* Closes --events-out; a failed write is an error here. */
static int events_close(struct gen *g, int rc)
{
	if (!g->ev_fp)
		return rc;
	errno = 0;
	if ((ferror(g->ev_fp) | fclose(g->ev_fp)) && rc == 0) {
		cli_error("gen", "cannot write %s: %s", g->o.events_out,
		          strerror(errno ? errno : EIO));
		rc = EXIT_FAIL;
	}
	g->ev_fp = NULL;
	return rc;
}

/* Flushes and closes; a write that failed at any point (full disk) is an error here. */
static int out_close(struct gen *g, int rc)
{
	if (g->dump) {
		errno = 0;
		if ((pcap_dump_flush(g->dump) || ferror(g->fp)) && !g->write_errno)
			g->write_errno = errno ? errno : EIO;
		pcap_dump_close(g->dump); /* closes g->fp */
		if (g->write_errno && rc == 0) {
			cli_error("gen", "cannot write %s: %s", out_name(g),
			          strerror(g->write_errno));
			rc = EXIT_FAIL;
		}
	}
	if (g->pcap)
		pcap_close(g->pcap);
	return events_close(g, rc);
}

static void print_summary(const struct gen *g)
{
	char when[32], frac[16] = "", events[96] = "";
	struct tm tm;
	time_t t = (time_t)g->o.start_sec;
	double span = 0;

	if (g->packets)
		span = (double)(g->last_sec - g->o.start_sec) +
		       ((double)g->last_nsec - (double)g->o.start_nsec) / 1e9;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (g->o.start_nsec) {
		size_t n = (size_t)snprintf(frac, sizeof(frac), ".%09u", g->o.start_nsec);

		while (frac[n - 1] == '0')
			frac[--n] = '\0';
	}
	if (g->ev_flows)
		snprintf(events, sizeof(events),
		         "; %u evented flows, %" PRIu64 " packets after the cut to finish them",
		         g->ev_flows, g->packets - g->cut_packets);
	fprintf(stderr,
	        "gen: wrote %" PRIu64 " packets (%" PRIu64 " bytes) in %" PRIu64
	        " flows to %s, %s%sZ .. +%.3fs%s\n",
	        g->packets, g->wire_bytes, g->flows_started, out_name(g), when, frac, span, events);
}

/* ---- generation ----------------------------------------------------------------------------- */

/* Advances the clock by a uniform gap in [0, 2 * mean]: mean rate as asked, never backwards.
 * Then checks the output (a flag test): a full disk stops the run at once, and errno still holds
 * the reason, since pcap_dump() reports nothing itself.  -1 on a write error. */
static int gen_advance(struct gen *g)
{
	double u = (double)(rng_next(&g->rng) >> 11) * 0x1p-53;
	uint64_t gap = (uint64_t)(u * 2.0 * g->mean_fp) + g->frac;

	g->frac = (uint32_t)(gap & 0xffff);
	gap = (gap >> 16) + g->nsec;
	g->sec += gap / 1000000000u;
	g->nsec = (uint32_t)(gap % 1000000000u);
	if (ferror(g->fp)) {
		g->write_errno = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

/* --duration: true once the next packet's timestamp is at or past --start + DUR. */
static bool gen_past_end(const struct gen *g)
{
	return g->o.duration_ns && g->sec * 1000000000u + g->nsec >= g->end_ns;
}

/*
 * After the cut: finishes every evented flow and starts (in any slot not holding one) the
 * events no flow has taken yet.  Only evented flows send from here on, interleaved by the PRNG.
 */
static int gen_drain(struct gen *g)
{
	uint32_t n = 0, j, s;

	for (uint32_t i = 0; i < g->o.flows; i++) {
		if (g->flows[i].active && g->flows[i].event)
			g->ev_slots[n++] = i;
	}
	while (n || g->ev_left_all) {
		while (g->ev_left_all && n < g->o.flows) {
			do
				s = rng_below(&g->rng, g->o.flows);
			while (g->flows[s].active && g->flows[s].event);
			gen_flow_start(g, &g->flows[s], true);
			g->ev_slots[n++] = s;
		}
		j = rng_below(&g->rng, n);
		gen_flow_step(g, &g->flows[g->ev_slots[j]]);
		if (!g->flows[g->ev_slots[j]].active)
			g->ev_slots[j] = g->ev_slots[--n];
		if (gen_advance(g))
			return -1;
	}
	return 0;
}

/*
 * The slot of each packet is drawn one packet ahead and prefetched: with millions of flows the
 * table is far larger than the caches, and the miss would otherwise stall every packet.
 */
static int gen_run(struct gen *g)
{
	uint32_t next = rng_below(&g->rng, g->o.flows);

	while (g->packets < g->o.packets && !gen_past_end(g)) {
		struct gen_flow *f = &g->flows[next];

		next = rng_below(&g->rng, g->o.flows);
		__builtin_prefetch(&g->flows[next], 1);
		if (!f->active)
			gen_flow_start(g, f, false);
		gen_flow_step(g, f);
		if (gen_advance(g))
			return -1;
	}
	g->cut_packets = g->packets;
	return g->ev_slots ? gen_drain(g) : 0;
}

/* ---- setup ---------------------------------------------------------------------------------- */

/*
 * --event big: the budget of ordinary flows, (BYTES - 1) / 2 frame bytes, must hold a TCP
 * handshake, one request/response round and the close (gen_flows.c: tcp_round_fits), or one
 * UDP/ICMP exchange: at most 882 + 2 * pay_max bytes.
 */
static int events_prepare(struct gen *g)
{
	uint64_t total = 0, least = 2 * (1024 + 2 * (uint64_t)g->pay_max) + 2;

	for (int e = GEN_EV_TTL; e < GEN_EV_KINDS; e++) {
		g->ev_left[e] = g->o.events[e];
		total += g->o.events[e];
	}
	g->ev_left_all = (uint32_t)total;
	g->big_cap = g->o.events[GEN_EV_BIG] ? (g->o.big_bytes - 1) / 2 : UINT64_MAX;
	if (g->o.events[GEN_EV_BIG] && g->o.big_bytes < least) {
		cli_error("gen", "--event big: BYTES must be at least %" PRIu64 " with this --size",
		          least);
		return EXIT_USAGE;
	}
	if (total) {
		g->ev_slots = calloc(min_u32(g->o.flows, (uint32_t)total), sizeof(*g->ev_slots));
		if (!g->ev_slots) {
			cli_error("gen", "out of memory for %" PRIu64 " events", total);
			return EXIT_FAIL;
		}
	}
	return 0;
}

/* The pcap record keeps 32-bit seconds: refuse a run whose clock could pass them.  Evented
 * flows may run past the cut: each by a generous bound on its packets. */
static int time_check(const struct gen *g)
{
	double packets = (double)g->o.packets, span_s;

	if (g->o.duration_ns && (double)g->o.duration_ns / 1e9 * g->o.rate < packets)
		packets = (double)g->o.duration_ns / 1e9 * g->o.rate;
	packets += (double)g->ev_left_all * 1e5;
	packets += (double)g->o.events[GEN_EV_BIG] * ((double)g->o.big_bytes / 40.0);
	span_s = packets * 2.0 / g->o.rate;
	if ((double)g->o.start_sec + span_s + 1.0 > (double)UINT32_MAX) {
		cli_error("gen",
		          "--start plus --packets/--duration/--rate pass the pcap time limit "
		          "(2106-02-07)");
		return EXIT_USAGE;
	}
	return 0;
}

/* The flow table, zeroed: cache-line slots, and on 2 MB pages when it is that large, so random
 * picks in a big table miss the TLB less (advice only: without it the table still works). */
static struct gen_flow *flows_alloc(uint32_t n)
{
	size_t bytes = (size_t)n * sizeof(struct gen_flow), align = 64;
	struct gen_flow *t;

	if (bytes >= GEN_HUGE_PAGE) {
		align = GEN_HUGE_PAGE;
		bytes = (bytes + align - 1) / align * align;
	}
	t = aligned_alloc(align, bytes);
	if (!t)
		return NULL;
#ifdef MADV_HUGEPAGE
	if (align == GEN_HUGE_PAGE)
		(void)madvise(t, bytes, MADV_HUGEPAGE);
#endif
	memset(t, 0, bytes);
	return t;
}

/* Everything that can be decided before the first packet: buffers, seeds, clock limits. */
static int gen_prepare(struct gen *g)
{
	int rc;

	g->pay_max = g->o.sizes == GEN_SIZE_RANGE ? g->o.size_max : 1500 - 20 - 8;
	g->structured = g->o.payload != GEN_PAY_ZERO && g->o.sizes == GEN_SIZE_RANGE &&
	                g->o.size_min <= GEN_STRUCT_MIN && g->o.size_max >= GEN_STRUCT_MAX;
	g->mean_fp = 1e9 / g->o.rate * 65536.0;
	rc = events_prepare(g);
	if (rc == 0)
		rc = time_check(g);
	if (rc)
		return rc;
	g->rng.s = g->o.seed;
	g->host_key = (uint32_t)rng_next(&g->rng);
	g->port_next = rng_below(&g->rng, GEN_EPH_N);
	g->sec = g->o.start_sec;
	g->nsec = g->o.start_nsec;
	g->end_ns = g->o.start_sec * 1000000000u + g->o.start_nsec + g->o.duration_ns;
	g->flows = flows_alloc(g->o.flows);
	g->frame = calloc(1, GEN_FRAME_ROOM);
	if (g->o.payload == GEN_PAY_TEXT)
		g->text = malloc(GEN_TEXT_SPAN + g->pay_max);
	if (!g->flows || !g->frame || (g->o.payload == GEN_PAY_TEXT && !g->text)) {
		cli_error("gen", "out of memory for %u flows", g->o.flows);
		return EXIT_FAIL;
	}
	if (g->text)
		gen_text_build(g);
	return 0;
}

int gen_main(int argc, char **argv)
{
	struct gen g;
	int rc;

	memset(&g, 0, sizeof(g));
	rc = opts_parse(&g.o, argc, argv);
	if (rc >= 0)
		return rc;
	rc = gen_prepare(&g);
	if (rc == 0)
		rc = out_open(&g);
	if (rc == 0)
		(void)gen_run(&g); /* a write error is in write_errno; out_close reports it */
	rc = out_close(&g, rc);
	if (rc == 0)
		print_summary(&g);
	free(g.flows);
	free(g.frame);
	free(g.text);
	free(g.ev_slots);
	return rc;
}
