/*
 * The HTTP API server: libmicrohttpd (with GnuTLS) serves an archive read
 * only.  This file holds the daemon (listen address, TLS, limits), the
 * client-certificate check, the request's parameters and the routing; the
 * archive endpoints that run queries are in api_query.c (docs/api.md).
 * Bodies: /api/v1/query's POST is a form (MHD's post processor); Stenographer's
 * POST /query is kept as it is (curl -d labels it a form, but it is query
 * text), at most QUERY_STENO_MAX_LEN bytes; POST /api/v1/trigger takes a form,
 * or JSON (Content-Type application/json) kept as it is for api_trigger.c.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION), so a handler
 * may block (a query's answer is pulled from a pipe) without stalling other
 * clients; the connection limits bound how many.  Each connection's thread,
 * and each query's (api_query.c), lowers its own priority to nice 19: the API
 * yields the CPU to the recorder it may be part of.  Mutual TLS: with a client
 * CA, every connection's GnuTLS session is told, before its handshake starts
 * (MHD's connection-started notification), to require a client certificate
 * and verify it against the CA (gnutls_session_set_verify_cert), so a client
 * without one signed by that CA fails in the handshake and never reaches
 * HTTP; the handler checks the verification again before anything else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "query/api_pvt.h"
#include "query/web_pvt.h"

/* ---- JSON answers ---------------------------------------------------------------------------- */

enum MHD_Result api_json(struct MHD_Connection *c, unsigned status, const char *json, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result api_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[1024], *text = NULL;
	size_t len = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return MHD_NO;
	fprintf(f, "{\"error\": ");
	export_json_string(f, msg);
	fprintf(f, "}\n");
	fclose(f);
	enum MHD_Result ret = api_json(c, status, text, len);
	free(text);
	return ret;
}

void api_request_fail(struct api_request *q, unsigned status, const char *fmt, ...)
{
	if (q->status)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
	q->status = status;
}

/* ---- parameters ------------------------------------------------------------------------------ */

/* 1 if s[0..len) is well-formed UTF-8 without NUL (RFC 3629: no overlongs, no surrogates). */
static int utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char b = s[i];
		size_t n = b < 0x80             ? 0
		           : (b & 0xe0) == 0xc0 ? 1
		           : (b & 0xf0) == 0xe0 ? 2
		           : (b & 0xf8) == 0xf0 ? 3
		                                : 9;
		if (b == 0 || n == 9 || i + n >= len + (n == 0) || (b == 0xc0 || b == 0xc1) ||
		    b > 0xf4)
			return 0;
		for (size_t k = 1; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		if ((b == 0xe0 && s[i + 1] < 0xa0) || (b == 0xed && s[i + 1] >= 0xa0) ||
		    (b == 0xf0 && s[i + 1] < 0x90) || (b == 0xf4 && s[i + 1] >= 0x90))
			return 0;
		i += n + 1;
	}
	return 1;
}

void api_param_add(struct api_request *q, const char *name, const char *value, size_t len)
{
	if (q->status)
		return;
	if (!utf8_valid((const unsigned char *)name, strlen(name)) ||
	    !utf8_valid((const unsigned char *)value, len))
		return api_request_fail(q, 400, "a parameter is not UTF-8 text");
	if (len > API_MAX_VALUE)
		return api_request_fail(q, 413, "parameter '%s' is longer than %u bytes", name,
		                        API_MAX_VALUE);
	if (api_param(q, name))
		return api_request_fail(q, 400, "parameter '%s' is given twice", name);
	if (q->np == API_MAX_PARAMS)
		return api_request_fail(q, 400, "more than %d parameters", API_MAX_PARAMS);
	struct api_param *p = &q->p[q->np];
	p->name = strdup(name);
	p->value = malloc(len + 1);
	if (!p->name || !p->value) {
		free(p->name);
		free(p->value);
		return api_request_fail(q, 503, "out of memory");
	}
	memcpy(p->value, value, len);
	p->value[len] = '\0';
	p->len = len;
	q->np++;
}

const char *api_param(const struct api_request *q, const char *name)
{
	for (size_t i = 0; i < q->np; i++)
		if (strcmp(q->p[i].name, name) == 0)
			return q->p[i].value;
	return NULL;
}

static enum MHD_Result get_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                               const char *value, size_t value_size)
{
	(void)kind;
	if (strlen(key) != key_size)
		api_request_fail(cls, 400, "a parameter name holds a NUL byte");
	api_param_add(cls, key, value ? value : "", value ? value_size : 0);
	return MHD_YES;
}

/* A POST body's form field, maybe in pieces (off > 0 continues the last one). */
static enum MHD_Result post_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
	struct api_request *q = cls;
	(void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
	if (q->status)
		return MHD_YES;
	if (off == 0) {
		api_param_add(q, key, data, size);
		return MHD_YES;
	}
	struct api_param *p = &q->p[q->np - 1];
	if (q->np == 0 || strcmp(p->name, key) != 0 || p->len + size > API_MAX_VALUE) {
		api_request_fail(q, 413, "parameter '%s' is longer than %u bytes", key,
		                 API_MAX_VALUE);
		return MHD_YES;
	}
	char *v = realloc(p->value, p->len + size + 1);
	if (!v) {
		api_request_fail(q, 503, "out of memory");
		return MHD_YES;
	}
	memcpy(v + p->len, data, size);
	p->len += size;
	v[p->len] = '\0';
	p->value = v;
	if (!utf8_valid((const unsigned char *)v, p->len))
		api_request_fail(q, 400, "a parameter is not UTF-8 text");
	return MHD_YES;
}

static void request_free(struct api_request *q)
{
	if (q->pp)
		MHD_destroy_post_processor(q->pp);
	free(q->raw);
	for (size_t i = 0; i < q->np; i++) {
		free(q->p[i].name);
		free(q->p[i].value);
	}
	free(q);
}

void api_thread_nice(void)
{
	if (getpriority(PRIO_PROCESS, (id_t)gettid()) < API_NICE)
		setpriority(PRIO_PROCESS, (id_t)gettid(), API_NICE);
}

#define ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)

const uint64_t query_api_latency_le_ns[QUERY_API_LATENCY_BUCKETS] = {
    10000000ull, 100000000ull, 1000000000ull, 10000000000ull, 60000000000ull};

void api_count_query(struct query_api *s, uint64_t ns, uint64_t bytes)
{
	ADD(s->n_queries, 1);
	ADD(s->n_query_bytes, bytes);
	ADD(s->n_query_ns, ns);
	for (int i = 0; i < QUERY_API_LATENCY_BUCKETS; i++)
		if (ns <= query_api_latency_le_ns[i])
			ADD(s->n_query_le[i], 1);
}

static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                              enum MHD_RequestTerminationCode toe)
{
	struct query_api *s = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
	unsigned status = ci ? ci->http_status : 0;
	ADD(s->n_requests, 1);
	if (status >= 200 && status < 300)
		ADD(s->n_2xx, 1);
	else if (status >= 400 && status < 500)
		ADD(s->n_4xx, 1);
	else if (status >= 500)
		ADD(s->n_5xx, 1);
	if (status == 429)
		ADD(s->n_busy, 1);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		ADD(s->n_aborted, 1);
	struct api_request *q = *req_cls;
	if (q && q->is_query && (status >= 400 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK))
		ADD(s->n_query_failed, 1);
	if (*req_cls)
		request_free(*req_cls);
	*req_cls = NULL;
}

/* ---- endpoints that need no query ------------------------------------------------------------ */

static enum MHD_Result api_healthz(struct api_request *q, struct MHD_Connection *c)
{
	char reason[256] = "";
	struct archive_rtxn *t;
	if (q->s->c.health && q->s->c.health(q->s->c.health_arg, reason, sizeof(reason)) != 0)
		return api_error(c, 503, "%s", reason[0] ? reason : "unhealthy");
	if (!q->s->c.health) {
		int e = archive_rtxn_begin(q->s->c.archive, &t);
		if (e)
			return api_error(c, 503, "cannot read the archive's index: %s",
			                 archive_strerror(e));
		archive_rtxn_end(t);
	}
	static const char ok[] = "{\"status\": \"ok\"}\n";
	return api_json(c, 200, ok, sizeof(ok) - 1);
}

static enum MHD_Result api_metrics(struct api_request *q, struct MHD_Connection *c)
{
	char *text = NULL;
	size_t len = 0;
	if (!q->s->c.metrics)
		return api_error(c, 404, "this server has no metrics");
	int e = q->s->c.metrics(q->s->c.metrics_arg, &text, &len);
	if (e)
		return api_error(c, 503, "metrics unavailable: %s", strerror(-e));
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result api_info(struct api_request *q, struct MHD_Connection *c)
{
	struct archive_rtxn *t;
	struct archive_summary s;
	char *text = NULL;
	size_t len = 0;
	int e = archive_rtxn_begin(q->s->c.archive, &t);
	if (e == 0) {
		e = archive_summary(t, &s);
		archive_rtxn_end(t);
	}
	if (e)
		return api_error(c, 503, "cannot read the archive: %s", archive_strerror(e));
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return api_error(c, 503, "out of memory");
	fprintf(f, "{\"archive\": ");
	export_json_string(f, archive_dir(q->s->c.archive));
	fprintf(f,
	        ", \"format\": %u, \"first_ns\": %" PRIu64 ", \"last_ns\": %" PRIu64
	        ", \"segments\": %" PRIu64 ", \"segments_open\": %" PRIu64 ", \"frames\": %" PRIu64
	        ", \"packets\": %" PRIu64 ", \"wire_bytes\": %" PRIu64
	        ", \"record_bytes\": %" PRIu64 ", \"file_bytes\": %" PRIu64
	        ", \"flow_records\": %" PRIu64 ", \"index_bytes\": %" PRIu64
	        ", \"index_used_bytes\": %" PRIu64 "}\n",
	        archive_format(q->s->c.archive), s.packets ? s.min_ns : 0, s.packets ? s.max_ns : 0,
	        s.segments, s.segments_open, s.frames, s.packets, s.wire_bytes, s.record_bytes,
	        s.file_bytes, s.flow_records, s.index_bytes, s.index_used);
	fclose(f);
	enum MHD_Result ret = api_json(c, 200, text, len);
	free(text);
	return ret;
}

/* ---- routing --------------------------------------------------------------------------------- */

enum route_methods {
	GET_ONLY,      /* GET (and HEAD) */
	GET_POST,      /* also POST, its body a form of parameters */
	POST_RAW_BODY, /* POST only, its body kept as it is (q->raw) */
	POST_JSON_FORM /* POST only, a form, or JSON kept as it is (q->raw) */
};

static const struct route {
	const char *path;
	enum route_methods methods;
	enum MHD_Result (*fn)(struct api_request *q, struct MHD_Connection *c);
} routes[] = {
    {"/api/v1/query", GET_POST, api_query},
    {"/api/v1/explain", GET_ONLY, api_explain},
    {"/api/v1/info", GET_ONLY, api_info},
    {"/healthz", GET_ONLY, api_healthz},
    {"/metrics", GET_ONLY, api_metrics},
    {"/api/v1/flows", GET_ONLY, api_flows},
    {"/query", POST_RAW_BODY, api_steno}, /* Stenographer's (docs/api.md) */
    {"/api/v1/trigger", POST_JSON_FORM, api_trigger},
    /* the web view's (web.c, web_api.c; docs/web.md) */
    {"/api/v1/timeline", GET_ONLY, web_timeline},
    {"/api/v1/flows/summary", GET_ONLY, web_flows_summary},
};
static const struct route web_files = {"/", GET_ONLY, web_asset}; /* its files: web_asset_find */

static const struct route *route_find(const char *url)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			return &routes[i];
	return web_asset_find(url) ? &web_files : NULL;
}

/* 0 if the connection's client certificate verified against the client CA (or none is
   asked for). */
static int client_verified(const struct query_api *s, struct MHD_Connection *c)
{
	if (!s->c.client_ca)
		return 0;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned status = 1;
	if (!ci || !ci->tls_session ||
	    gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) != 0)
		return -1;
	return status == 0 && gnutls_certificate_get_peers(ci->tls_session, &(unsigned){0}) ? 0
	                                                                                    : -1;
}

static int method_allowed(enum route_methods m, const char *method)
{
	if (strcmp(method, "POST") == 0)
		return m != GET_ONLY;
	return m <= GET_POST && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
}

/* A piece of a raw body, kept up to QUERY_STENO_MAX_LEN bytes (beyond: 413). */
static void raw_add(struct api_request *q, const char *data, size_t size)
{
	if (q->raw_len + size > QUERY_STENO_MAX_LEN)
		return api_request_fail(q, 413, "the %s is longer than %d bytes",
		                        q->is_query ? "Stenographer query" : "request body",
		                        QUERY_STENO_MAX_LEN);
	char *r = realloc(q->raw, q->raw_len + size + 1);
	if (!r)
		return api_request_fail(q, 503, "out of memory");
	memcpy(r + q->raw_len, data, size);
	q->raw_len += size;
	r[q->raw_len] = '\0';
	q->raw = r;
}

/* The request's body is JSON (Content-Type application/json, parameters after ';' aside). */
static int is_json(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	size_t n = strlen("application/json");
	return ct && strncasecmp(ct, "application/json", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/*
 * A browser's POST made by a page of another site (which would use the user's browser, and
 * its client certificate, to trigger or to query): its Origin is not this server's Host.
 * Browsers send Origin with every POST; curl and the other clients send none.
 */
static int cross_site(struct MHD_Connection *c)
{
	const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *p = o ? strstr(o, "://") : NULL;
	return o && (!h || !p || strcasecmp(p + 3, h) != 0);
}

/* The first call for a request: the certificate, the method, the URL, the query string. */
static enum MHD_Result request_begin(struct query_api *s, struct MHD_Connection *c, const char *url,
                                     const char *method, void **req_cls)
{
	api_thread_nice(); /* the connection's own thread (MHD's thread per connection) */
	struct api_request *q = calloc(1, sizeof(*q));
	if (!q)
		return MHD_NO;
	q->s = s;
	q->url = url;
	*req_cls = q;
	const struct route *rt = route_find(url);
	q->is_query = rt && (rt->fn == api_query || rt->fn == api_steno);
	if (client_verified(s, c) != 0)
		api_request_fail(q, 403, "no verified client certificate");
	else if (MHD_get_connection_values(c, MHD_HEADER_KIND, NULL, NULL) > API_MAX_HEADERS)
		api_request_fail(q, 431, "more than %d request headers", API_MAX_HEADERS);
	else if (strlen(url) > API_MAX_URL)
		api_request_fail(q, 414, "the URL is longer than %u bytes", API_MAX_URL);
	else if (!rt)
		api_request_fail(q, 404, "no such endpoint (see docs/api.md)");
	else if (!method_allowed(rt->methods, method))
		api_request_fail(q, 405, "%s is not allowed here", method);
	else if (strcmp(method, "POST") == 0 && cross_site(c))
		api_request_fail(q, 403, "a POST from another site's page (Origin %.100s): refused",
		                 MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"));
	if (q->status || !rt) /* !rt: failed above (404) */
		return MHD_YES;
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, get_arg, q);
	if (rt->methods == POST_RAW_BODY || (rt->methods == POST_JSON_FORM && is_json(c)))
		q->raw_body = 1;
	else if (strcmp(method, "POST") == 0) {
		q->pp = MHD_create_post_processor(c, 16 << 10, post_field, q);
		if (!q->pp)
			api_request_fail(q, 415,
			                 "a POST body must be application/x-www-form-urlencoded");
	}
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
	struct query_api *s = cls;
	(void)version;
	if (!*req_cls)
		return request_begin(s, c, url, method, req_cls);
	struct api_request *q = *req_cls;
	if (*upload_size) { /* a piece of the body */
		q->body += *upload_size;
		if (q->body > API_MAX_BODY)
			api_request_fail(q, 413, "the request body is larger than %u bytes",
			                 API_MAX_BODY);
		if (!q->status && q->raw_body)
			raw_add(q, upload, *upload_size);
		if (!q->status && q->pp && MHD_post_process(q->pp, upload, *upload_size) != MHD_YES)
			api_request_fail(q, 400, "the request body is not a valid form");
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->status)
		return api_error(c, q->status, "%s", q->error);
	return route_find(url)->fn(q, c);
}

/* ---- the daemon ------------------------------------------------------------------------------ */

/* Before a TLS connection's handshake: require a client certificate the CA verifies. */
static void connection_started(void *cls, struct MHD_Connection *c, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe)
{
	struct query_api *s = cls;
	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED || !s->c.client_ca)
		return;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return; /* the handler refuses it (403) */
	gnutls_certificate_server_set_request(ci->tls_session, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_verify_cert(ci->tls_session, NULL, 0);
}

static char *read_file(const char *path, char *errbuf, const char *what)
{
	gnutls_datum_t d;
	int e = gnutls_load_file(path, &d);
	if (e < 0) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot read the %s %s: %s", what, path,
		         gnutls_strerror(e));
		return NULL;
	}
	char *s = malloc(d.size + 1);
	if (s) {
		memcpy(s, d.data, d.size);
		s[d.size] = '\0';
	}
	gnutls_free(d.data);
	if (!s)
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "out of memory");
	return s;
}

/* Checks the files with GnuTLS (for a message naming the one at fault) and keeps their text. */
static int tls_load(struct query_api *s, char *errbuf)
{
	const struct query_api_config *c = &s->c;
	gnutls_certificate_credentials_t cred;
	if (!c->tls_key) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "--tls-cert needs --tls-key");
		return QUERY_E_TLS;
	}
	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return -ENOMEM;
	int e = gnutls_certificate_set_x509_key_file(cred, c->tls_cert, c->tls_key,
	                                             GNUTLS_X509_FMT_PEM);
	if (e < 0)
		snprintf(errbuf, QUERY_ERRBUF_SIZE,
		         "the certificate %s and key %s cannot be used: %s", c->tls_cert,
		         c->tls_key, gnutls_strerror(e));
	if (e >= 0 && c->client_ca &&
	    (e = gnutls_certificate_set_x509_trust_file(cred, c->client_ca, GNUTLS_X509_FMT_PEM)) <=
	        0) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE,
		         "the client CA %s holds no usable certificate%s%s", c->client_ca,
		         e < 0 ? ": " : "", e < 0 ? gnutls_strerror(e) : "");
		e = -1;
	}
	gnutls_certificate_free_credentials(cred);
	if (e < 0)
		return QUERY_E_TLS;
	if (!(s->cert_pem = read_file(c->tls_cert, errbuf, "certificate")) ||
	    !(s->key_pem = read_file(c->tls_key, errbuf, "key")) ||
	    (c->client_ca && !(s->ca_pem = read_file(c->client_ca, errbuf, "client CA"))))
		return QUERY_E_TLS;
	return 0;
}

/* "ADDR:PORT" or "[ADDR6]:PORT" (numeric) into sa; 0 or QUERY_E_LISTEN. */
static int parse_listen(const char *listen, struct sockaddr_storage *sa, int *loopback,
                        char *errbuf)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	char *end;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	size_t hl = colon ? (size_t)(colon - listen) : 0;
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
		listen++, hl -= 2;
	if (!colon || !colon[1] || *end || port > 65535 || hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	memset(sa, 0, sizeof(*sa));
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
		return 0;
	}
bad:
	snprintf(errbuf, QUERY_ERRBUF_SIZE,
	         "listen address '%s': expected ADDR:PORT or [ADDR6]:PORT with a numeric address",
	         listen);
	return QUERY_E_LISTEN;
}

static void server_free(struct query_api *s)
{
	pthread_mutex_destroy(&s->jobs_mu);
	if (s->listen_fd >= 0) /* not handed to a daemon (query_api_stop_counted) */
		close(s->listen_fd);
	free(s->cert_pem);
	free(s->key_pem);
	free(s->ca_pem);
	free(s);
}

static void config_defaults(struct query_api_config *c)
{
	c->max_queries = c->max_queries ? c->max_queries : 4;
	c->max_connections = c->max_connections ? c->max_connections : 64;
	c->per_ip_connections = c->per_ip_connections ? c->per_ip_connections : 16;
	c->idle_timeout_s = c->idle_timeout_s ? c->idle_timeout_s : 30;
	c->query_timeout_s = c->query_timeout_s ? c->query_timeout_s : 600;
}

static struct MHD_Daemon *daemon_start(struct query_api *s)
{
	const struct query_api_config *c = &s->c;
	unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                 (s->family == AF_INET6 ? MHD_USE_IPv6 : 0) |
	                 (s->cert_pem ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls[] = {
	    {s->cert_pem ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->cert_pem},
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem},
	    {MHD_OPTION_HTTPS_PRIORITIES, 0, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
	    {s->ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, s->ca_pem},
	    {MHD_OPTION_END, 0, NULL},
	};
	return MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
	    MHD_OPTION_CONNECTION_LIMIT, c->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    c->per_ip_connections, MHD_OPTION_CONNECTION_TIMEOUT, c->idle_timeout_s,
	    /* room for a long URL to reach the handler (its own 414) rather than MHD's HTML one */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2u << 20), MHD_OPTION_NOTIFY_COMPLETED,
	    request_completed, s, MHD_OPTION_NOTIFY_CONNECTION, connection_started, s,
	    MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

/* The listening socket, bound as the caller is (a port below 1024 needs root). */
static int listen_open(struct query_api *s, const struct sockaddr_storage *sa, char *errbuf)
{
	socklen_t len =
	    sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int one = 1, fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)sa, len) != 0 || listen(fd, 64) != 0) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot listen on %s: %s", s->c.listen,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		return QUERY_E_LISTEN;
	}
	union {
		struct sockaddr a;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
		struct sockaddr_storage any;
	} got;
	memset(&got, 0, sizeof(got));
	socklen_t glen = sizeof(got);
	if (getsockname(fd, &got.a, &glen) == 0)
		s->port = ntohs(got.a.sa_family == AF_INET6 ? got.v6.sin6_port : got.v4.sin_port);
	s->listen_fd = fd;
	s->family = sa->ss_family;
	return 0;
}

int query_api_open(const struct query_api_config *c, struct query_api **out, char *errbuf)
{
	struct sockaddr_storage sa = {0};
	int loopback = 0, e;
	errbuf[0] = '\0';
	if (!c->archive || !c->listen || !c->parse_time || (c->client_ca && !c->tls_cert))
		return snprintf(errbuf, QUERY_ERRBUF_SIZE, "%s",
		                c->client_ca
		                    ? "--client-ca needs --tls-cert and --tls-key"
		                    : "the API needs an archive, an address and a time parser"),
		       -EINVAL;
	if ((e = parse_listen(c->listen, &sa, &loopback, errbuf)) != 0)
		return e;
	if (!c->tls_cert && !loopback) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE,
		         "refusing plain HTTP on %s: only a loopback address may serve without TLS "
		         "(give --tls-cert and --tls-key, and --client-ca)",
		         c->listen);
		return QUERY_E_LISTEN;
	}
	struct query_api *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = *c;
	s->listen_fd = -1;
	config_defaults(&s->c);
	pthread_mutex_init(&s->jobs_mu, NULL);
	if ((c->tls_cert && (e = tls_load(s, errbuf)) != 0) ||
	    (e = listen_open(s, &sa, errbuf)) != 0) {
		server_free(s);
		return e;
	}
	*out = s;
	return 0;
}

int query_api_serve(struct query_api *s, char *errbuf)
{
	errbuf[0] = '\0';
	if (!(s->d = daemon_start(s))) {
		snprintf(errbuf, QUERY_ERRBUF_SIZE, "cannot serve on %s: %s", s->c.listen,
		         errno ? strerror(errno) : "libmicrohttpd refused to start");
		return QUERY_E_LISTEN;
	}
	return 0;
}

int query_api_start(const struct query_api_config *c, struct query_api **out, char *errbuf)
{
	int e = query_api_open(c, out, errbuf);
	if (e == 0 && (e = query_api_serve(*out, errbuf)) != 0) {
		query_api_stop(*out);
		*out = NULL;
	}
	return e;
}

unsigned query_api_port(const struct query_api *s)
{
	return s->port;
}

#define GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

void query_api_counters(const struct query_api *s, struct query_api_counters *o)
{
	struct query_api *m = (struct query_api *)s; /* atomic loads take non-const pointers */
	*o = (struct query_api_counters){.requests = GET(m->n_requests),
	                                 .responses_2xx = GET(m->n_2xx),
	                                 .responses_4xx = GET(m->n_4xx),
	                                 .responses_5xx = GET(m->n_5xx),
	                                 .refused_busy = GET(m->n_busy),
	                                 .aborted = GET(m->n_aborted),
	                                 .queries = GET(m->n_queries),
	                                 .query_bytes = GET(m->n_query_bytes),
	                                 .query_ns = GET(m->n_query_ns),
	                                 .query_failed = GET(m->n_query_failed),
	                                 .queries_running = atomic_load(&m->queries)};
	for (int i = 0; i < QUERY_API_LATENCY_BUCKETS; i++)
		o->query_le[i] = GET(m->n_query_le[i]);
	const union MHD_DaemonInfo *di =
	    m->d ? MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
	o->connections = di ? di->num_connections : 0;
}

void query_api_stop(struct query_api *s)
{
	query_api_stop_counted(s, NULL);
}

void query_api_stop_counted(struct query_api *s, struct query_api_counters *final)
{
	if (!s)
		return;
	api_jobs_stop(s); /* streams waiting for their query end */
	if (s->d) {
		MHD_stop_daemon(s->d); /* closes listen_fd too */
		s->listen_fd = -1;
	}
	s->d = NULL;
	if (final)
		query_api_counters(s, final);
	server_free(s);
}
