/*
 * record --ipfix HOST:PORT: the analyzers' flows to an IPFIX collector over
 * UDP (the messages are flowtrack/ipfix.c's; docs/ipfix.md).
 *
 * Each analyzer has an exporter and a socket of its own, so nothing is shared
 * between the threads but the counters: no lock, and the observation domain
 * is the analyzer's (its id + 1), each with its own templates and sequence.
 * A socket is connected and non-blocking: a send never waits, a send that
 * fails (a full socket buffer, ECONNREFUSED after the collector's host said
 * port unreachable) is counted and the message dropped, never retried.
 *
 * Clocks: a file's flows time out by capture time (the latest packet the
 * analyzer saw), so a file read flat out exports what it would have live;
 * a live source's by the wall clock, so flows on a quiet link still end.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/record.h"

#define CMD "record"
#define SNDBUF_BYTES (1 << 20) /* room for a burst of messages (the end of a large table) */

/* relaxed: counters only, read for reports */
static void count(atomic_ulong *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int bad_ipfix(const char *arg, const char *why)
{
	cli_error(
	    CMD, "--ipfix '%s': %s (expected HOST:PORT, e.g. 192.0.2.1:4739 or [2001:db8::1]:4739)",
	    arg, why);
	return EXIT_USAGE;
}

/* HOST:PORT or [V6]:PORT into host and port (host without brackets). */
static int split_host_port(const char *arg, char *host, size_t hostlen, const char **port)
{
	const char *colon;
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || close[1] != ':')
			return -1;
		if ((size_t)(close - arg - 1) >= hostlen)
			return -1;
		snprintf(host, hostlen, "%.*s", (int)(close - arg - 1), arg + 1);
		*port = close + 2;
		return 0;
	}
	colon = strrchr(arg, ':');
	if (!colon || colon == arg || memchr(arg, ':', (size_t)(colon - arg)) ||
	    (size_t)(colon - arg) >= hostlen)
		return -1;
	snprintf(host, hostlen, "%.*s", (int)(colon - arg), arg);
	*port = colon + 1;
	return 0;
}

int record_ipfix_parse(struct record_opts *o, const char *arg)
{
	char host[256];
	const char *port;
	uint64_t p;
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *ai;
	if (split_host_port(arg, host, sizeof(host), &port) != 0 || !host[0])
		return bad_ipfix(arg, "no HOST:PORT");
	if (cli_parse_uint(port, 1, 65535, &p) != 0)
		return bad_ipfix(arg, "the port is not 1..65535");
	int r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return bad_ipfix(arg, gai_strerror(r));
	memcpy(&o->ipfix_addr, ai->ai_addr, ai->ai_addrlen);
	o->ipfix_addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	o->ipfix = arg;
	return 0;
}

/* The exporter's send (analyzer thread, or main at the end): one datagram, never waiting. */
static void ipfix_send(void *arg, const uint8_t *msg, size_t len, const struct ft_ipfix_sent *what)
{
	struct record_analyzer *a = arg;
	struct record_pipeline *pl = a->pl;
	if (send(a->ipfix_fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len) {
		count(&pl->ipfix_send_errors, 1);
		return;
	}
	count(&pl->ipfix_messages, 1);
	count(&pl->ipfix_records, what->records);
	count(&pl->ipfix_templates, what->templates);
}

/* A flow the table evicts to make room: its records now (lack of resources). */
static void ipfix_evicted(struct ft_flow *f, void *arg)
{
	struct record_analyzer *a = arg;
	ft_ipfix_flow_end(a->ipfix, f, FT_IPFIX_END_RESOURCES, cli_now_ns());
}

static int socket_open(const struct record_opts *o)
{
	int fd = socket(o->ipfix_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int sndbuf = SNDBUF_BYTES;
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)); /* a wish */
	if (connect(fd, (const struct sockaddr *)&o->ipfix_addr, o->ipfix_addrlen) != 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int record_ipfix_open(struct record_pipeline *pl)
{
	if (!pl->o.ipfix)
		return 0;
	for (unsigned i = 0; i < pl->nanalyzers; i++) {
		struct record_analyzer *a = &pl->ana[i];
		struct ft_ipfix_config c = {.domain = i + 1,
		                            .active_ns = pl->o.ipfix_active_ns,
		                            .idle_ns = pl->o.ipfix_idle_ns,
		                            .send = ipfix_send,
		                            .arg = a};
		int r = socket_open(&pl->o);
		if (r < 0) {
			cli_error(CMD, "--ipfix %s: %s", pl->o.ipfix, strerror(-r));
			return EXIT_FAIL;
		}
		a->ipfix_fd = r;
		if ((r = ft_ipfix_create(&c, &a->ipfix)) != 0) {
			cli_error(CMD, "--ipfix %s: %s", pl->o.ipfix, ft_strerror(r));
			return EXIT_FAIL;
		}
		ft_table_set_evict_cb(a->flows, ipfix_evicted, a);
	}
	return 0;
}

void record_ipfix_tick(struct record_analyzer *a)
{
	if (!a->ipfix)
		return;
	uint64_t now = cli_now_ns();
	ft_ipfix_expire(a->ipfix, a->flows, a->pl->o.read ? a->clock_ns : now, now);
}

void record_ipfix_finish(struct record_pipeline *pl)
{
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		if (pl->ana[i].ipfix)
			ft_ipfix_finish(pl->ana[i].ipfix, pl->ana[i].flows, cli_now_ns());
}

void record_ipfix_close(struct record_pipeline *pl)
{
	for (unsigned i = 0; i < pl->nanalyzers; i++) {
		struct record_analyzer *a = &pl->ana[i];
		ft_ipfix_destroy(a->ipfix);
		a->ipfix = NULL;
		if (a->ipfix_fd > STDERR_FILENO) /* (0 in an analyzer never opened) */
			close(a->ipfix_fd);
		a->ipfix_fd = -1;
	}
}

void record_ipfix_counters(struct record_pipeline *pl, struct counters_ipfix *c)
{
	*c = (struct counters_ipfix){
	    .messages = atomic_load_explicit(&pl->ipfix_messages, memory_order_relaxed),
	    .records = atomic_load_explicit(&pl->ipfix_records, memory_order_relaxed),
	    .templates = atomic_load_explicit(&pl->ipfix_templates, memory_order_relaxed),
	    .send_errors = atomic_load_explicit(&pl->ipfix_send_errors, memory_order_relaxed)};
}
