/*
 * The web view's files (docs/web.md): index.html, app.js, app.css and the
 * icon, compiled into the binary (web_assets.c, generated at build time by
 * web/embed.cmake), served at / by the API's server with the same TLS and
 * client certificates.  Nothing is read from disk or fetched at run time.
 *
 * Caching: each file has a strong ETag (a hash of its bytes) and
 * "Cache-Control: no-cache": the browser keeps the file but asks each time,
 * and an unchanged one costs a 304 without a body; a new binary's page is
 * seen at once.  Security: the page runs only its own script and style
 * (Content-Security-Policy without 'unsafe-inline'), talks only to this
 * server, cannot be framed, and sends no Referer.
 */
#include <string.h>

#include "query/web_pvt.h"

#define WEB_CSP                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct web_asset *web_asset_find(const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (const struct web_asset *a = web_assets; a->path; a++)
		if (strcmp(url, a->path) == 0)
			return a;
	return NULL;
}

static void web_headers(struct MHD_Response *r, const struct web_asset *a)
{
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

enum MHD_Result web_asset(struct api_request *q, struct MHD_Connection *c)
{
	const struct web_asset *a = web_asset_find(q->url);
	if (!a)
		return api_error(c, 404, "no such file");
	const char *inm =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	int fresh = inm && strcmp(inm, a->etag) == 0;
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    fresh ? 0 : a->len, fresh ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	web_headers(r, a);
	if (!fresh)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	enum MHD_Result ret = MHD_queue_response(c, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}
