/*
 * tools/remote: the command line's client of the HTTP API (docs/api.md)
 * through libcurl: `flowscope query --remote URL` asks a `flowscope serve`
 * for what `flowscope query --archive` would write, and writes its bytes as
 * they come.
 *
 * Lifecycle: one call per query; libcurl's global init happens in it (the
 * command line is one thread).  Errors: 0; REMOTE_E_REFUSED (the server
 * answered an HTTP error: its JSON message in errbuf, its status in *http);
 * REMOTE_E_TRANSFER (no answer, TLS refused, or the stream cut short:
 * libcurl's message in errbuf); QUERY_E_OUTPUT (writing out failed).
 */
#ifndef FLOWSCOPE_TOOLS_REMOTE_H
#define FLOWSCOPE_TOOLS_REMOTE_H

#include "query/query.h"

#define REMOTE_E_REFUSED (-10901)
#define REMOTE_E_TRANSFER (-10902)

struct remote_tls {
	const char *cert;   /* PEM client certificate, or NULL */
	const char *key;    /* its key */
	const char *cacert; /* PEM CA that signed the server's certificate; NULL = the system's */
};

/*
 * Runs opt's query (filter, from_ns, to_ns, format, ts_micro, limits, comment;
 * explain asks /api/v1/explain) at the server whose base URL is url
 * ("https://host:8443"), writing the answer's bytes to opt->out as they
 * arrive.  errbuf (QUERY_ERRBUF_SIZE) gets one line on failure.
 */
int remote_query(const char *url, const struct remote_tls *tls, const struct query_options *opt,
                 long *http, char *errbuf);

/*
 * GET url/api/v1/path with the parameters (nparams strings: name, value,
 * name, value...; escaped here), writing a 200 answer's bytes to out as they
 * arrive.  Returns as remote_query.
 */
int remote_get(const char *url, const char *path, const char *const *params, int nparams,
               const struct remote_tls *tls, FILE *out, long *http, char *errbuf);

/* The same as a POST of the parameters as a form (application/x-www-form-urlencoded). */
int remote_post(const char *url, const char *path, const char *const *params, int nparams,
                const struct remote_tls *tls, FILE *out, long *http, char *errbuf);

/* One server's part of remote_query_many(). */
struct remote_job {
	const char *url;                /* the server's base URL */
	struct remote_tls tls;          /* its client certificate and CA */
	FILE *out;                      /* its answer's bytes */
	long http;                      /* out: the HTTP status (0: none) */
	int err;                        /* out: 0 or as remote_query */
	char errbuf[QUERY_ERRBUF_SIZE]; /* out: one line when err */
};

/*
 * Runs opt's query (as remote_query; not explain) at every job's server at
 * once (libcurl's multi interface, one thread), each answer written to its
 * job's out as it arrives.  Returns how many jobs failed (their err, errbuf).
 */
int remote_query_many(struct remote_job *jobs, size_t n, const struct query_options *opt);

/* ns as the API's time parameter: epoch seconds with nine decimals; buf >= 32 bytes. */
char *remote_time(uint64_t ns, char *buf);

#endif
