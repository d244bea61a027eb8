/*
 * query API private: what the server (api.c) and its endpoints
 * (api_query.c) share: the server, one request's state, the JSON answers.
 */
#ifndef FLOWSCOPE_QUERY_API_PVT_H
#define FLOWSCOPE_QUERY_API_PVT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "query/query.h"
#include "query/query_pvt.h"

#define API_MAX_PARAMS 12             /* parameters a request may carry */
#define API_MAX_VALUE (64u << 10)     /* bytes of one parameter's value */
#define API_MAX_BODY (256u << 10)     /* bytes of a POST body (form-encoded) */
#define API_MAX_URL (16u << 10)       /* bytes of the URL with its query string */
#define API_MAX_HEADERS 64            /* request headers */
#define API_STREAM_BYTES (256u << 10) /* a query's stdio buffer, and MHD's for its answer */
#define API_RING_BYTES (1u << 20)     /* a query's answer between its thread and MHD's */

struct query_api {
	struct query_api_config c;
	struct MHD_Daemon *d;
	char *cert_pem, *key_pem, *ca_pem; /* what MHD was given: kept until it stops */
	unsigned port;
	/* the streaming queries (api_query.c's jobs), so that a stop wakes their readers */
	pthread_mutex_t jobs_mu;
	struct job *jobs;    /* under jobs_mu: linked through job.next */
	atomic_int stopping; /* set once by api_jobs_stop (then each job's mu is taken and its
	                        condition broadcast); read by the readers under their job's mu */
	int listen_fd;       /* bound and listening from query_api_open(); the daemon's after */
	int family;          /* AF_INET or AF_INET6: listen_fd's */
	atomic_uint queries; /* running now: only the request threads change it (acq_rel) */
	/* counters (relaxed: independent totals, read for reports) */
	atomic_ulong n_requests, n_2xx, n_4xx, n_5xx, n_busy, n_aborted;
	atomic_ulong n_queries, n_query_bytes, n_query_ns, n_query_le[QUERY_API_LATENCY_BUCKETS];
	atomic_ulong n_query_failed;
};

/* Lowers the calling thread's CPU priority to API_NICE (its own nice value; threads are
   scheduled apart on Linux): the API's connection and query threads then yield to the
   recorder's capture and dump threads on a busy machine.  Best effort (errors ignored). */
void api_thread_nice(void);
#define API_NICE 19

/* Counts a finished query stream of this duration and bytes. */
void api_count_query(struct query_api *s, uint64_t ns, uint64_t bytes);

struct api_param {
	char *name, *value; /* malloc'd; value is NUL-terminated (len bytes) */
	size_t len;
};

/* One request, from its first call of the access handler to its completion. */
struct api_request {
	struct query_api *s;
	const char *url; /* the path asked for (MHD's: valid until the request completes) */
	struct MHD_PostProcessor *pp;
	struct api_param p[API_MAX_PARAMS];
	size_t np;
	size_t body;  /* bytes of POST body seen */
	int raw_body; /* the route keeps its body as it is (raw), no form */
	char *raw;    /* a raw-body route's body (POST /query): malloc'd, raw_len bytes */
	size_t raw_len;
	int status; /* nonzero: answer this error (found while reading the request) */
	int is_query; /* a query (/api/v1/query, POST /query): counted in query_failed when it fails */
	char error[QUERY_ERRBUF_SIZE]; /* its message */
};

/* Answers {"error": msg} with this status.  MHD_YES / MHD_NO as MHD wants it. */
enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers a JSON body (copied) with this status. */
enum MHD_Result api_json(struct MHD_Connection *c, unsigned status, const char *json, size_t len);

/* Records a request error (the first one wins); 0 to go on reading, as MHD callbacks want. */
void api_request_fail(struct api_request *q, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a parameter (query string or POST body); a repeat, an unknown count, or a value over
   API_MAX_VALUE fails the request (400/413). */
void api_param_add(struct api_request *q, const char *name, const char *value, size_t len);

/* The value of a parameter, NULL if absent. */
const char *api_param(const struct api_request *q, const char *name);

/* The parameters of /api/v1/query, /api/v1/flows into their options: 0, or -1 with q->status
   and q->error set (a 4xx).  Pure: they read q only (and the time parser). */
int api_query_options(struct api_request *q, struct query_options *o);
int api_flows_options(struct api_request *q, struct query_flows_options *o);

/* Parameter checks (api_query.c), each 0 or -1 with q's 400: every parameter is one of names
   (NULL-terminated); name, if given, is a whole number of at least 1 / a time (the server's
   parser) into *out, left alone when absent. */
int api_params_known(struct api_request *q, const char *const *names);
int api_param_uint(struct api_request *q, const char *name, uint64_t *out);
int api_param_time(struct api_request *q, const char *name, uint64_t *out);

/* Takes one of --max-queries' slots: 0, or the running count when none is free (then answer
   429); api_slot_put gives a taken slot back. */
unsigned api_slot_take(struct query_api *s);
void api_slot_put(struct query_api *s);

/* The endpoints that read the archive (api_query.c).  q holds the parameters, all checked
   against the endpoint's list first. */
enum MHD_Result api_query(struct api_request *q, struct MHD_Connection *c);
enum MHD_Result api_explain(struct api_request *q, struct MHD_Connection *c);
enum MHD_Result api_flows(struct api_request *q, struct MHD_Connection *c);
/* POST /api/v1/trigger's parameters (a form, or the JSON object in q->raw) into *t and the
   trigger's name ("api: REASON", name of at least API_TRIGGER_NAME_MAX bytes): 0, or -1 with
   q->status and q->error set (400).  t->filter points into q.  Pure: reads q only. */
#define API_TRIGGER_REASON_MAX 200 /* bytes of a reason kept in the trigger's name */
#define API_TRIGGER_NAME_MAX (API_TRIGGER_REASON_MAX + 16)
int api_trigger_options(struct api_request *q, struct ft_trigger *t, char *name, size_t len);

/* POST /api/v1/trigger (api_trigger.c): a form, or JSON in q->raw. */
enum MHD_Result api_trigger(struct api_request *q, struct MHD_Connection *c);
/* Stenographer's POST /query (api_query.c): q->raw is the query, its headers the limits. */
enum MHD_Result api_steno(struct api_request *q, struct MHD_Connection *c);
/* The server stops (api.c, before MHD_stop_daemon): every streaming answer's reader wakes and
   ends its stream, so MHD can join the connections' threads. */
void api_jobs_stop(struct query_api *s);

#endif
