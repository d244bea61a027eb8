/*
 * /api/v1/query, /api/v1/explain, /api/v1/flows and Stenographer's POST /query:
 * the parameters (or the Stenographer query) into query_options, and
 * the streaming answer.
 *
 * query_run() writes to a FILE; the HTTP answer is pulled by libmicrohttpd
 * from a content-reader callback.  A query thread runs query_run() into the
 * write end of a pipe; the connection's thread (thread per connection: it may
 * block) reads the other end into the chunked answer.  The pipe is the
 * bounded buffer: a slow client stalls only its own query thread, and no lock
 * is held while either writes.  The status is chosen before the first byte:
 * the handler waits until the query starts (filter compiled, range planned:
 * query_options.on_start) or ends; a query that fails before it starts is a
 * JSON error, one that fails after is an aborted chunked stream.  When the
 * client goes away (or the deadline passes), MHD frees the response: the read
 * end closes, the query's next write fails (EPIPE; SIGPIPE is blocked in its
 * thread), the stop flag ends a scan that writes nothing, and the thread is
 * joined before the memory goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "qq/qq.h"
#include "query/api_pvt.h"

/* ---- parameters ---------------------------------------------------------------------------- */

static const char *const query_params[] = {
    "filter",        "from",        "to",      "format",       "ts",
    "limit_packets", "limit_bytes", "comment", "community_id", NULL};

/* 0 if every parameter is one of names; else the request's 400. */
static int params_known(struct api_request *q, const char *const *names)
{
	for (size_t i = 0; i < q->np; i++) {
		size_t k = 0;
		while (names[k] && strcmp(names[k], q->p[i].name) != 0)
			k++;
		if (!names[k]) {
			api_request_fail(q, 400, "unknown parameter '%s'", q->p[i].name);
			return -1;
		}
	}
	return 0;
}

static int param_uint(struct api_request *q, const char *name, uint64_t *out)
{
	const char *v = api_param(q, name);
	char *end;
	if (!v)
		return 0;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end || errno || n == 0) {
		api_request_fail(q, 400, "%s '%s': expected a whole number of at least 1", name, v);
		return -1;
	}
	*out = n;
	return 0;
}

static int param_time(struct api_request *q, const char *name, uint64_t *out)
{
	const char *v = api_param(q, name);
	if (v && q->s->c.parse_time(v, out) != 0) {
		api_request_fail(
		    q, 400, "%s '%s': expected RFC 3339, epoch seconds, 'now' or 'N[smhd] ago'",
		    name, v);
		return -1;
	}
	return 0;
}

static int param_format(struct api_request *q, struct query_options *o)
{
	const char *f = api_param(q, "format"), *ts = api_param(q, "ts");
	if (!f || strcmp(f, "pcap") == 0)
		o->format = QUERY_FORMAT_PCAP;
	else if (strcmp(f, "pcapng") == 0)
		o->format = QUERY_FORMAT_PCAPNG;
	else if (strcmp(f, "json") == 0)
		o->format = QUERY_FORMAT_JSON;
	else
		return api_request_fail(q, 400, "format '%s': expected pcap, pcapng or json", f),
		       -1;
	if (ts && strcmp(ts, "nano") != 0 && strcmp(ts, "micro") != 0)
		return api_request_fail(q, 400, "ts '%s': expected nano or micro", ts), -1;
	o->ts_micro = ts && ts[0] == 'm';
	if (o->ts_micro && o->format != QUERY_FORMAT_PCAP)
		return api_request_fail(q, 400, "ts=micro is for format=pcap"), -1;
	return 0;
}

/* The checks and bounds every query's options get, however they were asked for. */
static int query_options_bound(struct api_request *q, struct query_options *o)
{
	if (o->to_ns && o->from_ns >= o->to_ns)
		return api_request_fail(q, 400, "from is not before to: the time range is empty"),
		       -1;
	uint64_t header = query_header_size(o);
	if (o->limit_bytes && o->limit_bytes < header) {
		api_request_fail(q, 400,
		                 "limit_bytes %" PRIu64 ": less than the file header (%" PRIu64
		                 " bytes)",
		                 o->limit_bytes, header);
		return -1;
	}
	uint64_t cap = q->s->c.max_answer_bytes;
	if (cap && cap >= header && (!o->limit_bytes || o->limit_bytes > cap))
		o->limit_bytes = cap; /* the server's bound: as if the client had asked for it */
	o->skip_damaged = 1; /* a stream, as `query -w -`: what was sent cannot be taken back */
	return 0;
}

/* The request's query options (as `flowscope query` builds them); 0 or -1 with q's error. */
static int query_options_from(struct api_request *q, const char *const *names,
                              struct query_options *o)
{
	*o = (struct query_options){.filter = api_param(q, "filter"),
	                            .community_id = api_param(q, "community_id"),
	                            .comment = api_param(q, "comment")};
	if (params_known(q, names) || param_time(q, "from", &o->from_ns) ||
	    param_time(q, "to", &o->to_ns) || param_format(q, o) ||
	    param_uint(q, "limit_packets", &o->limit_packets) ||
	    param_uint(q, "limit_bytes", &o->limit_bytes))
		return -1;
	return query_options_bound(q, o);
}

int api_query_options(struct api_request *q, struct query_options *o)
{
	return query_options_from(q, query_params, o);
}

/* The status for a query that failed before its first byte. */
static unsigned query_status(int err)
{
	switch (err) {
	case QUERY_E_FILTER:
	case QUERY_E_LINKTYPES:
	case -EINVAL:
		return 400;
	case -ECANCELED:
		return 503;
	default:
		return 500;
	}
}

/* Takes one of --max-queries' slots: 0, or the running count when none is free. */
static unsigned slot_take(struct query_api *s)
{
	unsigned running = atomic_fetch_add_explicit(&s->queries, 1, memory_order_acq_rel);
	if (running < s->c.max_queries)
		return 0;
	atomic_fetch_sub_explicit(&s->queries, 1, memory_order_acq_rel);
	return running;
}

static void slot_put(struct query_api *s)
{
	atomic_fetch_sub_explicit(&s->queries, 1, memory_order_acq_rel);
}

/* ---- the query thread ------------------------------------------------------------------------ */

struct job {
	struct query_api *s;
	struct query_options o;
	struct query_result res;
	char err[QUERY_ERRBUF_SIZE];
	int rd;   /* the pipe's read end (the connection's side) */
	FILE *wr; /* its write end (the query's side) */
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, done; /* under mu */
	int rc;            /* query_run's return, once done */
	atomic_int stop;
	uint64_t t0_ns, sent; /* the stream's start (CLOCK_MONOTONIC) and bytes: the MHD thread's */
	struct timespec deadline; /* CLOCK_MONOTONIC */
	struct query_steno steno; /* POST /query's translation: o.filter points into it */
};

static void job_mark(struct job *j, int *flag)
{
	pthread_mutex_lock(&j->mu);
	*flag = 1;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

static void job_started(void *arg)
{
	struct job *j = arg;
	job_mark(j, &j->started);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	sigset_t pipe;
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE); /* a client gone: the write fails with EPIPE instead */
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	api_thread_nice();
	j->rc = query_run(j->s->c.archive, &j->o, &j->res, j->err);
	fclose(j->wr); /* EOF for the reader, after rc is set (the mutex below publishes it) */
	job_mark(j, &j->done);
	return NULL;
}

static void job_free(struct job *j)
{
	atomic_store_explicit(&j->stop, 1, memory_order_relaxed);
	close(j->rd); /* the query's next write fails: it ends */
	pthread_join(j->t, NULL);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	slot_put(j->s);
	query_steno_free(&j->steno);
	free(j);
}

static int deadline_ms(const struct job *j)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ms = (int64_t)(j->deadline.tv_sec - now.tv_sec) * 1000 +
	             (j->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 1 << 30 ? 1 << 30 : (int)ms;
}

/* MHD pulls the answer: blocks (its own thread) until the query wrote some or ended. */
static ssize_t job_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct job *j = cls;
	(void)pos;
	for (;;) {
		struct pollfd p[2] = {{.fd = j->rd, .events = POLLIN},
		                      {.fd = j->s->stop_fd, .events = POLLIN}};
		int n = poll(p, 2, deadline_ms(j));
		if (n == 0 || (n > 0 && p[1].revents))
			return MHD_CONTENT_READER_END_WITH_ERROR; /* past the deadline, or stopping */
		if (n < 0 && errno == EINTR)
			continue;
		ssize_t got = n < 0 ? -1 : read(j->rd, buf, max);
		if (got > 0) {
			j->sent += (uint64_t)got;
			return got;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		pthread_mutex_lock(&j->mu); /* EOF: the query ended; done and rc are set */
		while (!j->done)
			pthread_cond_wait(&j->cv, &j->mu);
		pthread_mutex_unlock(&j->mu);
		return j->rc ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	}
}

/* MHD is done with the stream (whole, or cut off): counted, then the job ends. */
static void job_release(void *cls)
{
	struct job *j = cls;
	api_count_query(j->s, qq_clock_ns(CLOCK_MONOTONIC) - j->t0_ns, j->sent);
	job_free(j);
}

/* Starts the query thread; 0 or -errno (j is freed then). */
static int job_start(struct job *j)
{
	int fds[2];
	pthread_condattr_t ca;
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	j->rd = fds[0];
	j->wr = fdopen(fds[1], "w");
	if (!j->wr) {
		close(fds[0]);
		close(fds[1]);
		return -ENOMEM;
	}
	/* bigger than stdio's 4 KiB for a pipe and the pipe's 64 KiB: fewer writes, reads and
	   wake-ups per answer (a larger pipe may be refused: the default then) */
	setvbuf(j->wr, NULL, _IOFBF, API_PIPE_BYTES / 4);
	fcntl(fds[1], F_SETPIPE_SZ, (int)API_PIPE_BYTES);
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->o.out = j->wr;
	j->o.on_start = job_started;
	j->o.on_start_arg = j;
	j->o.stop = &j->stop;
	int e = pthread_create(&j->t, NULL, job_main, j);
	if (e) {
		fclose(j->wr);
		close(j->rd);
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		return -e;
	}
	return 0;
}

/* Waits until the query started or ended (bounded by its deadline); 1 if it started, and
   *done whether it ended (then j->rc is its result). */
static int job_wait_start(struct job *j, int *done)
{
	pthread_mutex_lock(&j->mu);
	while (!j->started && !j->done)
		if (pthread_cond_timedwait(&j->cv, &j->mu, &j->deadline) == ETIMEDOUT)
			break;
	int started = j->started;
	*done = j->done;
	pthread_mutex_unlock(&j->mu);
	return started;
}

static const char *const content_types[] = {
    [QUERY_FORMAT_PCAP] = "application/vnd.tcpdump.pcap",
    [QUERY_FORMAT_PCAPNG] = "application/x-pcapng",
    [QUERY_FORMAT_JSON] = "application/x-ndjson",
};

/* The answer of a job that did not start: its error (the thread is joined and freed). */
static enum MHD_Result job_failed(struct job *j, int done, struct MHD_Connection *c)
{
	atomic_store_explicit(&j->stop, 1, memory_order_relaxed);
	close(j->rd);             /* its writes fail now */
	pthread_join(j->t, NULL); /* it ends: stopped, or at its next write */
	int rc = done ? j->rc : -ECANCELED;
	char msg[QUERY_ERRBUF_SIZE];
	snprintf(msg, sizeof(msg), "%s",
	         rc == -ECANCELED ? "the query timed out before it started"
	         : j->err[0]      ? j->err
	                          : query_strerror(rc));
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	slot_put(j->s);
	query_steno_free(&j->steno);
	free(j);
	return api_error(c, query_status(rc), "%s", msg);
}

/* Runs j's query (its options set) in a --max-queries slot and streams its answer. */
static enum MHD_Result query_stream(struct api_request *q, struct MHD_Connection *c, struct job *j)
{
	unsigned running = slot_take(q->s);
	if (running) {
		query_steno_free(&j->steno);
		free(j);
		return api_error(c, 429, "%u queries are running (the server's --max-queries)",
		                 running);
	}
	j->s = q->s;
	j->t0_ns = qq_clock_ns(CLOCK_MONOTONIC); /* the query's duration: planning included */
	clock_gettime(CLOCK_MONOTONIC, &j->deadline);
	j->deadline.tv_sec += q->s->c.query_timeout_s;
	int e = job_start(j);
	if (e) {
		slot_put(q->s);
		query_steno_free(&j->steno);
		free(j);
		return api_error(c, 503, "cannot start the query: %s", strerror(-e));
	}
	int done, avail = 0, started = job_wait_start(j, &done);
	if (!started || (done && j->rc && (ioctl(j->rd, FIONREAD, &avail) != 0 || avail == 0)))
		return job_failed(j, done, c);
	struct MHD_Response *r = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, API_PIPE_BYTES / 4, job_read, j, job_release);
	if (!r) {
		job_free(j);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_types[j->o.format]);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r); /* MHD holds it (and frees the job through job_release) */
	return ret;
}

enum MHD_Result api_query(struct api_request *q, struct MHD_Connection *c)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return api_error(c, 503, "out of memory");
	if (api_query_options(q, &j->o) != 0) {
		free(j);
		return api_error(c, q->status, "%s", q->error);
	}
	return query_stream(q, c, j);
}

/* ---- Stenographer's POST /query: its query in the body, its limits in headers ------------- */

static const char *const steno_params[] = {NULL}; /* none: everything is in the body */

/* A Steno-Limit-* header into *out: absent or 0 is no limit (as in Stenographer); 0 or -1 with
   q's error. */
static int steno_limit(struct api_request *q, struct MHD_Connection *c, const char *name,
                       uint64_t *out)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	char *end;
	if (!v || !v[0])
		return 0;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end || errno) {
		api_request_fail(q, 400, "header %s: expected a whole number (0: no limit)", name);
		return -1;
	}
	*out = n;
	return 0;
}

/* The body's query and the headers' limits into j's options; 0 or -1 with q's error. */
static int steno_options(struct api_request *q, struct MHD_Connection *c, struct job *j)
{
	char err[QUERY_ERRBUF_SIZE];
	if (params_known(q, steno_params))
		return -1;
	int e = query_steno_translate(q->raw ? q->raw : "", q->raw_len, qq_clock_ns(CLOCK_REALTIME),
	                              &j->steno, err);
	if (e) {
		api_request_fail(q, e == -ENOMEM ? 503 : 400, "%s", err);
		return -1;
	}
	j->o = (struct query_options){.filter = j->steno.filter[0] ? j->steno.filter : NULL,
	                              .from_ns = j->steno.from_ns,
	                              .to_ns = j->steno.to_ns,
	                              .format = QUERY_FORMAT_PCAP};
	if (steno_limit(q, c, "Steno-Limit-Packets", &j->o.limit_packets) ||
	    steno_limit(q, c, "Steno-Limit-Bytes", &j->o.limit_bytes))
		return -1;
	return query_options_bound(q, &j->o);
}

enum MHD_Result api_steno(struct api_request *q, struct MHD_Connection *c)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return api_error(c, 503, "out of memory");
	if (steno_options(q, c, j) != 0) {
		query_steno_free(&j->steno);
		free(j);
		return api_error(c, q->status, "%s", q->error);
	}
	return query_stream(q, c, j);
}

/* ---- explain: the plan and what the query would read, as JSON -------------------------------- */

static const char *const explain_params[] = {"filter", "from", "to", NULL};

enum MHD_Result api_explain(struct api_request *q, struct MHD_Connection *c)
{
	struct query_options o;
	struct query_result res;
	struct query_plan *plan = NULL;
	char err[QUERY_ERRBUF_SIZE], planbuf[1024];
	char *text = NULL;
	size_t len = 0;
	if (query_options_from(q, explain_params, &o) != 0)
		return api_error(c, q->status, "%s", q->error);
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return api_error(c, 503, "out of memory");
	o.out = f;
	o.explain = 1;
	int rc = query_run(q->s->c.archive, &o, &res, err);
	if (rc == 0 && (rc = query_plan_build(o.filter, &plan)) != 0)
		snprintf(err, sizeof(err), "out of memory");
	fclose(f);
	free(text); /* the command line's text: the JSON below says the same, in fields */
	if (rc) {
		query_plan_free(plan);
		return api_error(c, query_status(rc), "%s", err[0] ? err : query_strerror(rc));
	}
	f = open_memstream(&text, &len);
	if (!f) {
		query_plan_free(plan);
		return api_error(c, 503, "out of memory");
	}
	fprintf(f, "{\"filter\": ");
	api_json_string(f, o.filter ? o.filter : "");
	fprintf(f, ", \"plan\": ");
	api_json_string(f, query_plan_format(plan, planbuf, sizeof(planbuf)));
	fprintf(f,
	        ", \"indexed\": %s, \"segments\": %" PRIu64 ", \"frames_to_read\": %" PRIu64
	        ", \"frames_total\": %" PRIu64 ", \"compressed_bytes_to_read\": %" PRIu64 "}\n",
	        res.indexed ? "true" : "false", res.segments, res.frames_read, res.frames_total,
	        res.bytes_read);
	fclose(f);
	query_plan_free(plan);
	enum MHD_Result ret = api_json(c, 200, text, len);
	free(text);
	return ret;
}

/* ---- flows: `flowscope flows --json`'s lines ------------------------------------------------- */

static const char *const flows_params[] = {"filter", "from", "to",     "triggered",
                                           "sort",   "top",  "offset", NULL};

int api_flows_options(struct api_request *q, struct query_flows_options *o)
{
	const char *sort = api_param(q, "sort"), *trig = api_param(q, "triggered");
	*o = (struct query_flows_options){.filter = api_param(q, "filter")};
	if (params_known(q, flows_params) || param_time(q, "from", &o->from_ns) ||
	    param_time(q, "to", &o->to_ns) || param_uint(q, "top", &o->top))
		return -1;
	const char *off = api_param(q, "offset");
	if (off && strcmp(off, "0") != 0 && param_uint(q, "offset", &o->offset))
		return -1;
	if (o->to_ns && o->from_ns >= o->to_ns)
		return api_request_fail(q, 400, "from is not before to: the time range is empty"),
		       -1;
	if (trig && strcmp(trig, "1") != 0 && strcmp(trig, "true") != 0 && strcmp(trig, "0") != 0 &&
	    strcmp(trig, "false") != 0)
		return api_request_fail(q, 400, "triggered '%s': expected true or false", trig), -1;
	o->triggered = trig && (trig[0] == '1' || trig[0] == 't');
	if (!sort || strcmp(sort, "time") == 0)
		o->sort = QUERY_FLOWS_BY_TIME;
	else if (strcmp(sort, "bytes") == 0)
		o->sort = QUERY_FLOWS_BY_BYTES;
	else if (strcmp(sort, "packets") == 0)
		o->sort = QUERY_FLOWS_BY_PACKETS;
	else if (strcmp(sort, "duration") == 0)
		o->sort = QUERY_FLOWS_BY_DURATION;
	else
		return api_request_fail(
		           q, 400, "sort '%s': expected time, bytes, packets or duration", sort),
		       -1;
	return 0;
}

/* The flows' JSON lines as one answer; its X-Flowscope-Frames-Damaged header when the filter's
   query had to leave frames out. */
static enum MHD_Result flows_answer(struct MHD_Connection *c, struct archive_rtxn *t,
                                    const struct archive_flow_info *f, size_t n, uint64_t damaged)
{
	char *text = NULL, num[24];
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (!out)
		return api_error(c, 503, "out of memory");
	for (size_t i = 0; i < n; i++)
		query_flow_json(out, t, &f[i]);
	if (fclose(out) != 0) {
		free(text);
		return api_error(c, 503, "out of memory");
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	snprintf(num, sizeof(num), "%" PRIu64, damaged);
	if (damaged)
		MHD_add_response_header(r, "X-Flowscope-Frames-Damaged", num);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result api_flows(struct api_request *q, struct MHD_Connection *c)
{
	struct query_flows_options o;
	struct archive_rtxn *t;
	struct archive_flow_info *f;
	size_t n;
	uint64_t damaged;
	char err[QUERY_ERRBUF_SIZE];
	if (api_flows_options(q, &o) != 0)
		return api_error(c, q->status, "%s", q->error);
	unsigned running = slot_take(q->s);
	if (running)
		return api_error(c, 429, "%u queries are running (the server's --max-queries)",
		                 running);
	int rc = archive_rtxn_begin(q->s->c.archive, &t);
	if (rc) {
		slot_put(q->s);
		return api_error(c, 500, "cannot read the archive: %s", archive_strerror(rc));
	}
	rc = query_flows(q->s->c.archive, t, &o, &f, &n, &damaged, err);
	slot_put(q->s);
	enum MHD_Result ret =
	    rc ? api_error(c, query_status(rc), "%s", err[0] ? err : query_strerror(rc))
	       : flows_answer(c, t, f, n, damaged);
	if (!rc)
		free(f);
	archive_rtxn_end(t);
	return ret;
}
