/*
 * The API's client (libcurl): the query's options become the parameters of
 * GET /api/v1/query (times as epoch seconds with nine decimals, so the server
 * reads the very nanoseconds this command parsed, whatever its clock says);
 * a 200 answer is written to the output as it arrives; any other status is
 * the server's JSON error, kept (up to a bound) for the one-line message.
 * Every transfer is bounded: a connect timeout, and an answer that moves
 * less than a byte per second for REMOTE_STALL_S seconds is cut off.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/remote.h"

#define REMOTE_CONNECT_S 30L
#define REMOTE_STALL_S 120L
#define REMOTE_ERRBODY 4096

struct sink {
	CURL *c;
	FILE *out;
	long status; /* 0 until the first byte of the body */
	char err[REMOTE_ERRBODY];
	size_t errlen;
	int write_failed;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	if (!s->status)
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status != 200) { /* the error's JSON: kept for the message, bounded */
		size_t room = sizeof(s->err) - 1 - s->errlen;
		memcpy(s->err + s->errlen, p, len < room ? len : room);
		s->errlen += len < room ? len : room;
		s->err[s->errlen] = '\0';
		return len;
	}
	if (fwrite(p, 1, len, s->out) != len || fflush(s->out) != 0) {
		s->write_failed = 1;
		return 0; /* libcurl stops the transfer */
	}
	return len;
}

/* Appends "&name=value" (value escaped) to *url; 0 or -ENOMEM. */
static int add_param(CURL *c, char **url, const char *name, const char *value)
{
	char *v = curl_easy_escape(c, value, 0), *u = NULL;
	int e = v && asprintf(&u, "%s%c%s=%s", *url, strchr(*url, '?') ? '&' : '?', name, v) >= 0;
	curl_free(v);
	if (!e)
		return -ENOMEM;
	free(*url);
	*url = u;
	return 0;
}

static int add_uint(CURL *c, char **url, const char *name, uint64_t v, int ns)
{
	char buf[32];
	if (ns)
		snprintf(buf, sizeof(buf), "%" PRIu64 ".%09" PRIu64, v / 1000000000u,
		         v % 1000000000u);
	else
		snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return add_param(c, url, name, buf);
}

/* The request's URL; NULL when out of memory. */
static char *request_url(CURL *c, const char *base, const struct query_options *o)
{
	static const char *const formats[] = {[QUERY_FORMAT_PCAP] = "pcap",
	                                      [QUERY_FORMAT_PCAPNG] = "pcapng",
	                                      [QUERY_FORMAT_JSON] = "json"};
	size_t bl = strlen(base);
	char *url = NULL;
	if (asprintf(&url, "%.*s/api/v1/%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base,
	             o->explain ? "explain" : "query") < 0)
		return NULL;
	int e = o->filter && o->filter[0] ? add_param(c, &url, "filter", o->filter) : 0;
	if (!e && o->from_ns)
		e = add_uint(c, &url, "from", o->from_ns, 1);
	if (!e && o->to_ns)
		e = add_uint(c, &url, "to", o->to_ns, 1);
	if (!e && !o->explain) {
		e = add_param(c, &url, "format", formats[o->format]);
		if (!e && o->ts_micro)
			e = add_param(c, &url, "ts", "micro");
		if (!e && o->limit_packets)
			e = add_uint(c, &url, "limit_packets", o->limit_packets, 0);
		if (!e && o->limit_bytes)
			e = add_uint(c, &url, "limit_bytes", o->limit_bytes, 0);
		if (!e && o->comment && o->format == QUERY_FORMAT_PCAPNG)
			e = add_param(c, &url, "comment", o->comment);
	}
	if (e) {
		free(url);
		return NULL;
	}
	return url;
}

/* The message of the server's {"error": "..."} (its JSON escapes undone where simple). */
static void error_message(const struct sink *s, char *errbuf)
{
	const char *m = strstr(s->err, "\"error\": \"");
	size_t n = 0;
	if (!m) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "the server answered HTTP %ld", s->status);
		return;
	}
	for (m += 10; *m && *m != '"' && n < QUERY_ERRBUF_SIZE - 1; m++) {
		if (*m == '\\' && m[1])
			m++;
		errbuf[n++] = *m;
	}
	errbuf[n] = '\0';
}

static void set_tls(CURL *c, const struct remote_tls *tls)
{
	if (tls->cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, tls->cert);
	if (tls->key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, tls->key);
	if (tls->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, tls->cacert);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
}

int remote_query(const char *base, const struct remote_tls *tls, const struct query_options *opt,
                 long *http, char *errbuf)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct sink s = {.out = opt->out};
	*http = 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(s.c = curl_easy_init())) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot start libcurl");
		return REMOTE_E_TRANSFER;
	}
	char *url = request_url(s.c, base, opt);
	int e = 0;
	if (!url) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory");
		e = -ENOMEM;
	} else {
		curl_easy_setopt(s.c, CURLOPT_URL, url);
		curl_easy_setopt(s.c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(s.c, CURLOPT_WRITEDATA, &s);
		curl_easy_setopt(s.c, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(s.c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s.c, CURLOPT_CONNECTTIMEOUT, REMOTE_CONNECT_S);
		curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_TIME, REMOTE_STALL_S);
		curl_easy_setopt(s.c, CURLOPT_PROTOCOLS_STR, "http,https");
		set_tls(s.c, tls);
		CURLcode rc = curl_easy_perform(s.c);
		curl_easy_getinfo(s.c, CURLINFO_RESPONSE_CODE, &s.status);
		*http = s.status;
		if (s.write_failed) {
			snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot write the output: %s",
			         strerror(errno));
			e = QUERY_E_OUTPUT;
		} else if (rc != CURLE_OK) {
			snprintf(errbuf, QUERY_ERRBUF_SIZE, "%s: %s", base,
			         cerr[0] ? cerr : curl_easy_strerror(rc));
			e = REMOTE_E_TRANSFER;
		} else if (s.status != 200) {
			error_message(&s, errbuf);
			e = REMOTE_E_REFUSED;
		}
	}
	free(url);
	curl_easy_cleanup(s.c);
	curl_global_cleanup();
	return e;
}
