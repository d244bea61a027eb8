/*
 * /api/v1/query, /api/v1/explain, /api/v1/flows and Stenographer's POST /query:
 * the parameters (or the Stenographer query) into query_options, and
 * the streaming answer.
 *
 * query_run() writes to a FILE; the HTTP answer is pulled by libmicrohttpd
 * from a content-reader callback.  A query thread runs query_run() into a
 * stdio stream of its own (fopencookie) whose buffer, each time it is full, is
 * copied into a ring (API_RING_BYTES) that the connection's thread empties
 * into MHD's buffer, so the query goes on while MHD encrypts and sends.  The
 * ring is the bound: a slow client stalls only its own query thread, and no
 * lock is held while either copies or writes (the ring's mutex guards its
 * offsets; each side copies its own part of the ring outside it).  The
 * status is chosen before the first byte: the handler waits until the query
 * starts (filter compiled, range planned: query_options.on_start) or ends; a
 * query that fails before it starts is a JSON error, one that fails after is
 * an aborted chunked stream.  When the client goes away (or the deadline
 * passes, or the server stops), MHD frees the response: the job is marked
 * gone, the query's next write fails (EPIPE), the stop flag ends a scan that
 * writes nothing, and the thread is joined before the memory goes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qq/qq.h"
#include "query/api_pvt.h"

/* ---- parameters ---------------------------------------------------------------------------- */

static const char *const query_params[] = {
    "filter",        "from",        "to",      "format",       "ts",
    "limit_packets", "limit_bytes", "comment", "community_id", NULL};

/* 0 if every parameter is one of names; else the request's 400. */
int api_params_known(struct api_request *q, const char *const *names)
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

int api_param_uint(struct api_request *q, const char *name, uint64_t *out)
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

int api_param_time(struct api_request *q, const char *name, uint64_t *out)
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
	o->workers = q->s->c.query_workers;
	return 0;
}

/* The request's query options (as `flowscope query` builds them); 0 or -1 with q's error. */
static int query_options_from(struct api_request *q, const char *const *names,
                              struct query_options *o)
{
	*o = (struct query_options){.filter = api_param(q, "filter"),
	                            .community_id = api_param(q, "community_id"),
	                            .comment = api_param(q, "comment")};
	if (api_params_known(q, names) || api_param_time(q, "from", &o->from_ns) ||
	    api_param_time(q, "to", &o->to_ns) || param_format(q, o) ||
	    api_param_uint(q, "limit_packets", &o->limit_packets) ||
	    api_param_uint(q, "limit_bytes", &o->limit_bytes))
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
unsigned api_slot_take(struct query_api *s)
{
	unsigned running = atomic_fetch_add_explicit(&s->queries, 1, memory_order_acq_rel);
	if (running < s->c.max_queries)
		return 0;
	atomic_fetch_sub_explicit(&s->queries, 1, memory_order_acq_rel);
	return running;
}

void api_slot_put(struct query_api *s)
{
	atomic_fetch_sub_explicit(&s->queries, 1, memory_order_acq_rel);
}

/* ---- the query thread ------------------------------------------------------------------------ */

struct job {
	struct query_api *s;
	struct query_options o;
	struct query_result res;
	char err[QUERY_ERRBUF_SIZE];
	FILE *wr;   /* the query's output (fopencookie: job_write) */
	char *ring; /* API_RING_BYTES: the answer between the query (writes) and MHD (reads) */
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* any change below; both threads wait on it */
	/* under mu: */
	size_t head, len; /* the ring's oldest unread byte and how many: the writer adds to
	                     len, the reader moves head and takes from len; each copies its
	                     part of the ring outside the lock (the parts never overlap) */
	int writer_waits, reader_waits; /* for space, for bytes: the other side broadcasts */
	int started, done;              /* the query: planned (o.on_start), ended (rc set) */
	int gone; /* the reader: the stream is over; the query's writes fail */
	int rc;   /* query_run's return, once done */
	atomic_int stop;
	uint64_t t0_ns, sent; /* the stream's start (CLOCK_MONOTONIC) and bytes: the MHD thread's */
	struct timespec deadline; /* CLOCK_MONOTONIC */
	struct query_steno steno; /* POST /query's translation: o.filter points into it */
	struct job *prev, *next;  /* the server's list of streams: under s->jobs_mu */
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

/* Under j->mu: waits for space in the ring; 0, or -1 once the stream is over. */
static int job_wait_space(struct job *j)
{
	while (j->len == API_RING_BYTES && !j->gone) {
		j->writer_waits = 1;
		pthread_cond_wait(&j->cv, &j->mu);
		j->writer_waits = 0;
	}
	return j->gone ? -1 : 0;
}

/* The query's stdio flushes (fopencookie): its bytes into the ring, waiting for space while
   the client reads slower than the query writes.  All of them or an error (stdio takes a
   short write as one): EPIPE once the stream is over, and the query ends. */
static ssize_t job_write(void *cookie, const char *buf, size_t len)
{
	struct job *j = cookie;
	for (size_t done = 0; done < len;) {
		pthread_mutex_lock(&j->mu);
		if (job_wait_space(j) != 0) {
			pthread_mutex_unlock(&j->mu);
			errno = EPIPE;
			return 0;
		}
		size_t tail = (j->head + j->len) % API_RING_BYTES;
		size_t n = API_RING_BYTES - j->len;
		pthread_mutex_unlock(&j->mu);
		n = n < API_RING_BYTES - tail ? n : API_RING_BYTES - tail;
		n = n < len - done ? n : len - done;
		memcpy(j->ring + tail, buf + done,
		       n); /* free space: the reader does not touch it */
		done += n;
		pthread_mutex_lock(&j->mu);
		j->len += n;
		if (j->reader_waits)
			pthread_cond_broadcast(&j->cv);
		pthread_mutex_unlock(&j->mu);
	}
	return (ssize_t)len;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	api_thread_nice();
	j->rc = query_run(j->s->c.archive, &j->o, &j->res, j->err);
	fclose(j->wr); /* its last bytes to the reader, after rc is set (done publishes it) */
	job_mark(j, &j->done);
	return NULL;
}

/* The stream is over for the reader: the query's writes fail from now on. */
static void job_gone(struct job *j)
{
	atomic_store_explicit(&j->stop, 1, memory_order_relaxed); /* a scan that writes nothing */
	job_mark(j, &j->gone);
}

static void job_unlist(struct job *j)
{
	struct query_api *s = j->s;
	pthread_mutex_lock(&s->jobs_mu);
	if (j->prev)
		j->prev->next = j->next;
	else
		s->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	pthread_mutex_unlock(&s->jobs_mu);
}

/* After its thread was joined: the job's memory goes, and its --max-queries slot. */
static void job_end(struct job *j)
{
	job_unlist(j);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	api_slot_put(j->s);
	query_steno_free(&j->steno);
	free(j->ring);
	free(j);
}

/* The query thread ends (it was told job_gone) and the job's memory goes. */
static void job_free(struct job *j)
{
	job_gone(j);
	pthread_join(j->t, NULL);
	job_end(j);
}

/* Waits on j's condition until its deadline or the server's stop; 0, or -1 past either. */
static int job_wait(struct job *j)
{
	/* a stop after this check broadcasts j->cv under j->mu (api_jobs_stop), which the
	   caller holds until it waits: not missed */
	if (atomic_load(&j->s->stopping))
		return -1;
	return pthread_cond_timedwait(&j->cv, &j->mu, &j->deadline) == ETIMEDOUT ? -1 : 0;
}

/* Under j->mu: waits for bytes in the ring or the query's end; 0, or -1 past the deadline
   or once the server stops. */
static int job_wait_bytes(struct job *j)
{
	while (!j->len && !j->done) {
		j->reader_waits = 1;
		int e = job_wait(j);
		j->reader_waits = 0;
		if (e)
			return -1;
	}
	return 0;
}

/* MHD pulls the answer: blocks (its own thread) until the query wrote some or ended. */
static ssize_t job_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct job *j = cls;
	(void)pos;
	pthread_mutex_lock(&j->mu);
	if (job_wait_bytes(j) != 0 || (!j->len && j->rc)) {
		pthread_mutex_unlock(&j->mu);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (!j->len) {
		pthread_mutex_unlock(&j->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t head = j->head, n = j->len < max ? j->len : max;
	pthread_mutex_unlock(&j->mu);
	n = n < API_RING_BYTES - head ? n : API_RING_BYTES - head;
	memcpy(buf, j->ring + head, n); /* written bytes: the writer does not touch them */
	pthread_mutex_lock(&j->mu);
	j->head = (head + n) % API_RING_BYTES;
	j->len -= n;
	if (j->writer_waits)
		pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	j->sent += n;
	return (ssize_t)n;
}

void api_jobs_stop(struct query_api *s)
{
	atomic_store(&s->stopping, 1);
	pthread_mutex_lock(&s->jobs_mu);
	for (struct job *j = s->jobs; j; j = j->next) {
		pthread_mutex_lock(&j->mu); /* its reader is waiting, or sees stopping next */
		pthread_cond_broadcast(&j->cv);
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&s->jobs_mu);
}

/* MHD is done with the stream (whole, or cut off): counted, then the job ends. */
static void job_release(void *cls)
{
	struct job *j = cls;
	api_count_query(j->s, qq_clock_ns(CLOCK_MONOTONIC) - j->t0_ns, j->sent);
	job_free(j);
}

static void job_list(struct job *j)
{
	struct query_api *s = j->s;
	pthread_mutex_lock(&s->jobs_mu);
	j->next = s->jobs;
	if (s->jobs)
		s->jobs->prev = j;
	s->jobs = j;
	pthread_mutex_unlock(&s->jobs_mu);
}

/* Starts the query thread; 0 or -errno (j is freed then). */
static int job_start(struct job *j)
{
	pthread_condattr_t ca;
	if (!(j->ring = malloc(API_RING_BYTES)))
		return -ENOMEM;
	j->wr = fopencookie(j, "w", (cookie_io_functions_t){.write = job_write});
	if (!j->wr) {
		free(j->ring);
		return -ENOMEM;
	}
	setvbuf(j->wr, NULL, _IOFBF, API_STREAM_BYTES); /* stdio's 4 KiB: too many flushes */
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->o.out = j->wr;
	j->o.on_start = job_started;
	j->o.on_start_arg = j;
	j->o.stop = &j->stop;
	job_list(j);
	int e = pthread_create(&j->t, NULL, job_main, j);
	if (e) {
		job_unlist(j);
		fclose(j->wr);
		free(j->ring);
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		return -e;
	}
	return 0;
}

/* Waits until the query started or ended (bounded by its deadline); 1 if it started, and
   *failed whether it ended with an error before writing (its error is then the answer). */
static int job_wait_start(struct job *j, int *failed)
{
	pthread_mutex_lock(&j->mu);
	while (!j->started && !j->done)
		if (pthread_cond_timedwait(&j->cv, &j->mu, &j->deadline) == ETIMEDOUT)
			break;
	int started = j->started;
	/* an error after bytes were written is an aborted stream: only the status line
	   (nothing sent yet) can still carry it */
	*failed = j->done && j->rc && !j->len;
	pthread_mutex_unlock(&j->mu);
	return started;
}

static const char *const content_types[] = {
    [QUERY_FORMAT_PCAP] = "application/vnd.tcpdump.pcap",
    [QUERY_FORMAT_PCAPNG] = "application/x-pcapng",
    [QUERY_FORMAT_JSON] = "application/x-ndjson",
};

/* The answer of a job that did not start or failed before writing: its error (the thread
   is joined and the job freed). */
static enum MHD_Result job_failed(struct job *j, struct MHD_Connection *c)
{
	job_gone(j);
	pthread_join(j->t, NULL); /* it ends: stopped, or at its next write */
	int rc = j->done ? j->rc : -ECANCELED;
	char msg[QUERY_ERRBUF_SIZE];
	snprintf(msg, sizeof(msg), "%s",
	         rc == -ECANCELED ? "the query timed out before it started"
	         : j->err[0]      ? j->err
	                          : query_strerror(rc));
	job_end(j);
	return api_error(c, query_status(rc), "%s", msg);
}

/* Runs j's query (its options set) in a --max-queries slot and streams its answer. */
static enum MHD_Result query_stream(struct api_request *q, struct MHD_Connection *c, struct job *j)
{
	unsigned running = api_slot_take(q->s);
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
		api_slot_put(q->s);
		query_steno_free(&j->steno);
		free(j);
		return api_error(c, 503, "cannot start the query: %s", strerror(-e));
	}
	int failed, started = job_wait_start(j, &failed);
	if (!started || failed)
		return job_failed(j, c);
	struct MHD_Response *r = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, API_STREAM_BYTES, job_read, j, job_release);
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
	if (api_params_known(q, steno_params))
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
	export_json_string(f, o.filter ? o.filter : "");
	fprintf(f, ", \"plan\": ");
	export_json_string(f, query_plan_format(plan, planbuf, sizeof(planbuf)));
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

static const char *const flows_params[] = {"filter", "from",   "to",    "triggered", "sort",
                                           "top",    "offset", "limit", NULL};

int api_flows_options(struct api_request *q, struct query_flows_options *o)
{
	const char *sort = api_param(q, "sort"), *trig = api_param(q, "triggered");
	*o = (struct query_flows_options){.filter = api_param(q, "filter")};
	if (api_params_known(q, flows_params) || api_param_time(q, "from", &o->from_ns) ||
	    api_param_time(q, "to", &o->to_ns) || api_param_uint(q, "top", &o->top) ||
	    api_param_uint(q, "limit", &o->limit))
		return -1;
	const char *off = api_param(q, "offset");
	if (off && strcmp(off, "0") != 0 && api_param_uint(q, "offset", &o->offset))
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
                                    const struct archive_flow_info *f, size_t n, uint64_t damaged,
                                    uint64_t total)
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
	snprintf(num, sizeof(num), "%" PRIu64, total);
	MHD_add_response_header(r, "X-Flowscope-Flows-Total", num); /* before the page's cut */
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
	uint64_t damaged, total = 0;
	char err[QUERY_ERRBUF_SIZE];
	if (api_flows_options(q, &o) != 0)
		return api_error(c, q->status, "%s", q->error);
	o.total = &total;
	unsigned running = api_slot_take(q->s);
	if (running)
		return api_error(c, 429, "%u queries are running (the server's --max-queries)",
		                 running);
	int rc = archive_rtxn_begin(q->s->c.archive, &t);
	if (rc) {
		api_slot_put(q->s);
		return api_error(c, 500, "cannot read the archive: %s", archive_strerror(rc));
	}
	rc = query_flows(q->s->c.archive, t, &o, &f, &n, &damaged, err);
	api_slot_put(q->s);
	enum MHD_Result ret =
	    rc ? api_error(c, query_status(rc), "%s", err[0] ? err : query_strerror(rc))
	       : flows_answer(c, t, f, n, damaged, total);
	if (!rc)
		free(f);
	archive_rtxn_end(t);
	return ret;
}
