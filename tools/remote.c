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

char *remote_time(uint64_t ns, char *buf)
{
	snprintf(buf, 32, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
	return buf;
}

/* The query's parameters (name, value pairs in *p, at most 16); their count. */
static int query_params(const struct query_options *o, char bufs[4][32], const char **p)
{
	static const char *const formats[] = {[QUERY_FORMAT_PCAP] = "pcap",
	                                      [QUERY_FORMAT_PCAPNG] = "pcapng",
	                                      [QUERY_FORMAT_JSON] = "json"};
	int n = 0;
	if (o->filter && o->filter[0])
		p[n++] = "filter", p[n++] = o->filter;
	if (o->from_ns)
		p[n++] = "from", p[n++] = remote_time(o->from_ns, bufs[0]);
	if (o->to_ns)
		p[n++] = "to", p[n++] = remote_time(o->to_ns, bufs[1]);
	if (o->community_id) /* GET /explain has no such parameter: refused there (400) */
		p[n++] = "community_id", p[n++] = o->community_id;
	if (o->explain)
		return n;
	p[n++] = "format", p[n++] = formats[o->format];
	if (o->ts_micro)
		p[n++] = "ts", p[n++] = "micro";
	if (o->limit_packets) {
		snprintf(bufs[2], 32, "%" PRIu64, o->limit_packets);
		p[n++] = "limit_packets", p[n++] = bufs[2];
	}
	if (o->limit_bytes) {
		snprintf(bufs[3], 32, "%" PRIu64, o->limit_bytes);
		p[n++] = "limit_bytes", p[n++] = bufs[3];
	}
	if (o->comment && o->format == QUERY_FORMAT_PCAPNG)
		p[n++] = "comment", p[n++] = o->comment;
	return n;
}

/* base + "/api/v1/" + path + the parameters (n names and values); NULL when out of memory. */
static char *request_url(CURL *c, const char *base, const char *path, const char *const *p, int n)
{
	size_t bl = strlen(base);
	char *url = NULL;
	if (asprintf(&url, "%.*s/api/v1/%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base,
	             path) < 0)
		return NULL;
	for (int i = 0; i + 1 < n; i += 2)
		if (add_param(c, &url, p[i], p[i + 1]) != 0) {
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
	if (tls->cacert) { /* that CA alone: the system's directory is not read (140 files, 30 ms) */
		curl_easy_setopt(c, CURLOPT_CAINFO, tls->cacert);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
}

int remote_query(const char *base, const struct remote_tls *tls, const struct query_options *opt,
                 long *http, char *errbuf)
{
	char bufs[4][32];
	const char *p[32];
	int n = query_params(opt, bufs, p);
	return remote_get(base, opt->explain ? "explain" : "query", p, n, tls, opt->out, http,
	                  errbuf);
}

/* A POST's form body: the URL's parameters after its '?' (libcurl copies it). */
static void set_post(CURL *c, const char *url)
{
	const char *q = strchr(url, '?');
	curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, q ? q + 1 : "");
}

/* An easy handle writing into s (s->c set), its URL not yet; 0 or REMOTE_E_TRANSFER. */
static int easy_setup(struct sink *s, const struct remote_tls *tls, char *cerr)
{
	if (!(s->c = curl_easy_init()))
		return REMOTE_E_TRANSFER;
	curl_easy_setopt(s->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(s->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->c, CURLOPT_CONNECTTIMEOUT, REMOTE_CONNECT_S);
	curl_easy_setopt(s->c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(s->c, CURLOPT_LOW_SPEED_TIME, REMOTE_STALL_S);
	curl_easy_setopt(s->c, CURLOPT_PROTOCOLS_STR, "http,https");
	set_tls(s->c, tls);
	return 0;
}

/* A finished transfer's outcome (rc: libcurl's): 0 or as remote_get, errbuf one line. */
static int easy_outcome(struct sink *s, CURLcode rc, const char *base, const char *cerr, long *http,
                        char *errbuf)
{
	curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	*http = s->status;
	if (s->write_failed) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot write the output: %s", strerror(errno));
		return QUERY_E_OUTPUT;
	}
	if (rc != CURLE_OK) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "%s: %s", base,
		         cerr[0] ? cerr : curl_easy_strerror(rc));
		return REMOTE_E_TRANSFER;
	}
	if (s->status != 200) {
		error_message(s, errbuf);
		return REMOTE_E_REFUSED;
	}
	return 0;
}

/* GET, or POST with the parameters as a form (post); as remote_get. */
static int transfer(const char *base, const char *path, const char *const *params, int nparams,
                    int post, const struct remote_tls *tls, FILE *out, long *http, char *errbuf)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct sink s = {.out = out};
	*http = 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || easy_setup(&s, tls, cerr) != 0) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot start libcurl");
		return REMOTE_E_TRANSFER;
	}
	char *url = request_url(s.c, base, path, params, nparams);
	int e;
	if (!url) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory");
		e = -ENOMEM;
	} else {
		if (post) {
			set_post(s.c, url);
			*strchrnul(url, '?') = '\0';
		}
		curl_easy_setopt(s.c, CURLOPT_URL, url);
		e = easy_outcome(&s, curl_easy_perform(s.c), base, cerr, http, errbuf);
	}
	free(url);
	curl_easy_cleanup(s.c);
	curl_global_cleanup();
	return e;
}

int remote_get(const char *base, const char *path, const char *const *params, int nparams,
               const struct remote_tls *tls, FILE *out, long *http, char *errbuf)
{
	return transfer(base, path, params, nparams, 0, tls, out, http, errbuf);
}

int remote_post(const char *base, const char *path, const char *const *params, int nparams,
                const struct remote_tls *tls, FILE *out, long *http, char *errbuf)
{
	return transfer(base, path, params, nparams, 1, tls, out, http, errbuf);
}

/* ---- several servers at once (query --fleet) ------------------------------------------------ */

struct many {
	struct sink s;
	char cerr[CURL_ERROR_SIZE];
	char *url;
};

/* Adds job i's transfer to m; 0, or the job's error set. */
static int many_add(CURLM *m, struct many *x, struct remote_job *j, const char *const *p, int n)
{
	x->s.out = j->out;
	if (easy_setup(&x->s, &j->tls, x->cerr) != 0 ||
	    !(x->url = request_url(x->s.c, j->url, "query", p, n))) {
		snprintf(j->errbuf, sizeof(j->errbuf), "cannot start libcurl");
		return j->err = REMOTE_E_TRANSFER;
	}
	curl_easy_setopt(x->s.c, CURLOPT_URL, x->url);
	curl_easy_setopt(x->s.c, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(m, x->s.c) != CURLM_OK) {
		snprintf(j->errbuf, sizeof(j->errbuf), "cannot start libcurl");
		return j->err = REMOTE_E_TRANSFER;
	}
	return 0;
}

/* Runs m until every transfer ended, taking each one's outcome into its job. */
static void many_run(CURLM *m, struct many *x, struct remote_job *jobs, size_t n)
{
	int running = 1, left;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct many *one = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&one);
			size_t i = (size_t)(one - x);
			if (i < n)
				jobs[i].err =
				    easy_outcome(&one->s, msg->data.result, jobs[i].url, one->cerr,
				                 &jobs[i].http, jobs[i].errbuf);
		}
	}
}

int remote_query_many(struct remote_job *jobs, size_t n, const struct query_options *opt)
{
	char bufs[4][32];
	const char *p[32];
	int np = query_params(opt, bufs, p), failed = 0;
	struct many *x = calloc(n ? n : 1, sizeof(*x));
	CURLM *m = NULL;
	for (size_t i = 0; i < n; i++)
		jobs[i].err = REMOTE_E_TRANSFER, jobs[i].http = 0, jobs[i].errbuf[0] = '\0';
	if (!x || curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(m = curl_multi_init())) {
		for (size_t i = 0; i < n; i++)
			snprintf(jobs[i].errbuf, sizeof(jobs[i].errbuf), "cannot start libcurl");
		free(x);
		return (int)n;
	}
	for (size_t i = 0; i < n; i++)
		if (many_add(m, &x[i], &jobs[i], p, np) == 0)
			jobs[i].err = 0;
	many_run(m, x, jobs, n);
	for (size_t i = 0; i < n; i++) {
		if (x[i].s.c) {
			curl_multi_remove_handle(m, x[i].s.c);
			curl_easy_cleanup(x[i].s.c);
		}
		free(x[i].url);
		failed += jobs[i].err != 0;
	}
	curl_multi_cleanup(m);
	curl_global_cleanup();
	free(x);
	return failed;
}
