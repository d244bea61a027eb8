/*
 * The web view (docs/web.md): the page's assets, embedded in the binary at
 * build time (web/embed.cmake writes web_assets.c from query/web/), and the
 * two JSON endpoints only the page needed: the timeline from the index
 * (web_api.c) and a flow selection's totals with its top talkers and ports.
 * api.c routes to them; they share api_pvt.h's request and answers.
 */
#ifndef FLOWSCOPE_QUERY_WEB_PVT_H
#define FLOWSCOPE_QUERY_WEB_PVT_H

#include "query/api_pvt.h"

/* One embedded file: its URL path, type, strong ETag (a hash of its bytes) and bytes. */
struct web_asset {
	const char *path; /* "/index.html", "/app.js", ... */
	const char *type; /* Content-Type */
	const char *etag; /* "\"<16 hex digits>\"" */
	const unsigned char *data;
	size_t len;
};

/* The assets, ended by an entry with path NULL (web_assets.c, generated). */
extern const struct web_asset web_assets[];

/* The asset a URL names ("/" is "/index.html"), NULL for none.  Pure. */
const struct web_asset *web_asset_find(const char *url);

/* GET / and the assets: the bytes with their type, caching (ETag, no-cache: a new binary's
   page is fetched at once, an unchanged one answers 304) and the security headers (a strict
   Content-Security-Policy: scripts and styles from these files only). */
enum MHD_Result web_asset(struct api_request *q, struct MHD_Connection *c);

/* GET /api/v1/timeline: packets and wire bytes per time bucket, from the index alone. */
enum MHD_Result web_timeline(struct api_request *q, struct MHD_Connection *c);

/* GET /api/v1/flows/summary: the selected flows' count and totals, top talkers, top ports. */
enum MHD_Result web_flows_summary(struct api_request *q, struct MHD_Connection *c);

#endif
