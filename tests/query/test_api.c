/*
 * query API unit test: the streaming answer's threads (a query thread per
 * answer writing into the ring its connection's thread empties), run again
 * under ThreadSanitizer (label "tsan").  A plain-HTTP server on loopback
 * serves an archive written here; clients (libcurl, and a raw socket that
 * stops reading) ask for the whole archive at once: every complete answer is
 * byte for byte query_run()'s, a client that hangs up mid-stream and one that
 * stalls do not stop the others, and the server stops at once with a stalled
 * stream and with a query still running; its counters add up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "archive/archive.h"
#include "query/query.h"

#define PACKETS 20000 /* 200 bytes each: a 4.6 MB answer, several ring lengths */
#define CLIENTS 6

struct fixture {
	char dir[256];
	struct archive *a;
	char *expect; /* query_run's answer for everything */
	size_t expect_len;
	struct query_api *s;
	char url[64];
	unsigned port;
};

/* An Ethernet/IPv4/UDP packet from 10.0.0.<host>:<sport> to 10.0.1.1:53, 200 bytes. */
static void make_udp(uint8_t *b, uint8_t host, uint16_t sport)
{
	memset(b, 0, 200);
	b[12] = 0x08;
	uint8_t *ip = b + 14;
	ip[0] = 0x45, ip[8] = 64, ip[9] = 17;
	ip[12] = 10, ip[15] = host;
	ip[16] = 10, ip[18] = 1, ip[19] = 1;
	ip[20] = (uint8_t)(sport >> 8), ip[21] = (uint8_t)sport, ip[23] = 53;
	for (unsigned i = 42; i < 200; i++)
		b[i] = (uint8_t)(i * 31 + host);
}

static void write_archive(struct archive *a)
{
	struct archive_writer *w;
	struct archive_writer_config c = {0};
	assert_int_equal(archive_writer_create(a, &c, &w), 0);
	uint8_t b[200];
	for (uint32_t i = 0; i < PACKETS; i++) {
		make_udp(b, (uint8_t)(i % 4 + 1), (uint16_t)(1000 + i % 5000));
		assert_int_equal(archive_writer_add(w, 1, 65535,
		                                    1700000000000000000ull + i * 1000ull, 200, 200,
		                                    b),
		                 0);
	}
	assert_int_equal(archive_writer_close(w), 0);
}

static int parse_time(const char *text, uint64_t *ns)
{
	(void)text;
	*ns = 0;
	return -1;
}

/* A setup step that failed: say which and why (cmocka prints only "Test setup failed"). */
static int setup_failed(struct fixture *f, const char *step, const char *why)
{
	print_error("setup: %s: %s\n", step, why);
	if (f->a)
		archive_close(f->a);
	free(f->expect);
	free(f);
	return -1;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[QUERY_ERRBUF_SIZE];
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/flowscope-test-api.XXXXXX");
	if (!mkdtemp(f->dir))
		return setup_failed(f, "mkdtemp", strerror(errno));
	int rc = archive_open(f->dir, ARCHIVE_WRITE | ARCHIVE_CREATE, &f->a);
	if (rc != 0)
		return setup_failed(f, archive_strerror(rc), archive_errmsg());
	write_archive(f->a);
	FILE *m = open_memstream(&f->expect, &f->expect_len);
	struct query_options o = {.out = m};
	struct query_result res;
	if (query_run(f->a, &o, &res, err) != 0 || fclose(m) != 0)
		return setup_failed(f, "query_run", err);
	struct query_api_config c = {.archive = f->a,
	                             .listen = "127.0.0.1:0",
	                             .max_queries = CLIENTS + 2,
	                             .parse_time = parse_time};
	if (query_api_start(&c, &f->s, err) != 0)
		return setup_failed(f, "query_api_start", err);
	f->port = query_api_port(f->s);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/api/v1/query", f->port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[512];
	query_api_stop(f->s); /* NULL when the test stopped it */
	archive_close(f->a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	free(f->expect);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- clients ---------------------------------------------------------------------------- */

struct client {
	const char *url;
	size_t hang_up_after; /* 0: read it all */
	char *body;
	size_t len;
	long status;
	CURLcode rc;
};

static size_t client_write(char *p, size_t size, size_t n, void *arg)
{
	struct client *c = arg;
	n *= size; /* size is 1 */
	if (c->hang_up_after && c->len >= c->hang_up_after)
		return 0; /* curl ends the transfer: the connection closes mid-stream */
	char *b = realloc(c->body, c->len + n);
	assert_non_null(b);
	memcpy(b + c->len, p, n);
	c->body = b;
	c->len += n;
	return n;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L); /* a bound, not a measure */
	c->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_cleanup(h);
	return NULL;
}

/* A raw connection that asks for the whole archive, reads the status line, and reads no more. */
static int stalled_client(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	int small = 4096; /* a small window: the server's sends block soon */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	static const char get[] = "GET /api/v1/query HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, get, sizeof(get) - 1), (ssize_t)(sizeof(get) - 1));
	char line[16];
	assert_int_equal(read(fd, line, sizeof(line)), (ssize_t)sizeof(line));
	assert_memory_equal(line, "HTTP/1.1 200 OK\r", 16);
	return fd;
}

/* Clients at once, one hanging up mid-stream and one stalled: the others get it all. */
static void test_concurrent_streams(void **state)
{
	struct fixture *f = *state;
	struct client c[CLIENTS] = {0};
	pthread_t t[CLIENTS];
	int stalled = stalled_client(f->port);
	for (unsigned i = 0; i < CLIENTS; i++) {
		c[i].url = f->url;
		c[i].hang_up_after = i == 0 ? 300000 : 0;
		assert_int_equal(pthread_create(&t[i], NULL, client_main, &c[i]), 0);
	}
	for (unsigned i = 0; i < CLIENTS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(c[i].status, 200);
		if (i == 0) {
			assert_int_equal(c[i].rc, CURLE_WRITE_ERROR);
			assert_memory_equal(c[i].body, f->expect, c[i].len);
		} else {
			assert_int_equal(c[i].rc, CURLE_OK);
			assert_int_equal(c[i].len, f->expect_len);
			assert_memory_equal(c[i].body, f->expect, f->expect_len);
		}
		free(c[i].body);
	}
	/* the server stops at once with a stream stalled on its client */
	struct query_api_counters k;
	query_api_stop_counted(f->s, &k);
	f->s = NULL;
	close(stalled);
	assert_int_equal(k.queries, CLIENTS + 1);
	assert_int_equal(k.aborted, 2); /* the one that hung up, the stalled one */
	assert_int_equal(k.queries_running, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_concurrent_streams, setup, teardown),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
