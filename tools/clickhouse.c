/*
 * ClickHouse over HTTP (tools/clickhouse.h): one curl easy handle per
 * connection, kept alive between statements; the statement in the URL's
 * query parameter, its data (RowBinary rows) as the POST body.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/clickhouse.h"

struct ch {
	CURL *curl;
	const struct ch_target *t;
	char *ans;
	size_t len, cap;
	int oom;
};

static int ident_ok(const char *s, size_t n)
{
	if (n == 0 || n >= 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

int ch_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '.' || s[i] == '-' || ident_ok(s + i, 1)))
			return 0;
	return 1;
}

/* USER[:PASSWORD]@ off the front of the authority, into t. */
static const char *parse_user(const char *p, struct ch_target *t)
{
	const char *at = strchr(p, '@'), *slash = strchr(p, '/');
	if (!at || (slash && at > slash))
		return p;
	const char *colon = memchr(p, ':', (size_t)(at - p));
	size_t ulen = (size_t)((colon ? colon : at) - p);
	snprintf(t->user, sizeof(t->user), "%.*s", (int)ulen, p);
	if (colon)
		snprintf(t->password, sizeof(t->password), "%.*s", (int)(at - colon - 1),
		         colon + 1);
	return at + 1;
}

int ch_target_parse(const char *arg, struct ch_target *t, char *err, size_t errlen)
{
	static const char scheme[] = "clickhouse://";
	*t = (struct ch_target){0};
	if (strncmp(arg, scheme, sizeof(scheme) - 1) != 0)
		return snprintf(err, errlen, "not a clickhouse:// URL"), -1;
	const char *host = parse_user(arg + sizeof(scheme) - 1, t);
	const char *slash = strchr(host, '/'), *colon;
	if (!slash || slash == host)
		return snprintf(err, errlen, "no HOST:PORT/"), -1;
	colon = memrchr(host, ':', (size_t)(slash - host));
	if (!colon || colon + 1 == slash ||
	    strspn(colon + 1, "0123456789") != (size_t)(slash - colon - 1))
		return snprintf(err, errlen, "no :PORT after the host"), -1;
	const char *dot = strchr(slash + 1, '.');
	if (!dot || !ident_ok(slash + 1, (size_t)(dot - slash - 1)) ||
	    !ident_ok(dot + 1, strlen(dot + 1)))
		return snprintf(err, errlen, "no /DB.TABLE (letters, digits, _)"), -1;
	snprintf(t->url, sizeof(t->url), "http://%.*s/", (int)(slash - host), host);
	snprintf(t->db, sizeof(t->db), "%.*s", (int)(dot - slash - 1), slash + 1);
	snprintf(t->table, sizeof(t->table), "%s", dot + 1);
	snprintf(t->name, sizeof(t->name), "clickhouse://%.*s/%s.%s", (int)(slash - host), host,
	         t->db, t->table);
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct ch *c = arg;
	size_t len = size * n;
	if (c->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4096;
		while (cap < c->len + len + 1)
			cap *= 2;
		char *a = realloc(c->ans, cap);
		if (!a)
			return c->oom = 1, 0;
		c->ans = a;
		c->cap = cap;
	}
	memcpy(c->ans + c->len, p, len);
	c->len += len;
	c->ans[c->len] = '\0';
	return len;
}

int ch_open(const struct ch_target *t, long timeout_s, struct ch **out)
{
	struct ch *c = calloc(1, sizeof(*c));
	if (!c || curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(c->curl = curl_easy_init())) {
		free(c);
		return -ENOMEM;
	}
	c->t = t;
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	if (t->user[0]) {
		curl_easy_setopt(c->curl, CURLOPT_USERNAME, t->user);
		curl_easy_setopt(c->curl, CURLOPT_PASSWORD, t->password);
	}
	*out = c;
	return 0;
}

void ch_close(struct ch *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c->ans);
	free(c);
}

/* ClickHouse's exception, one line ("Code: 60, e.displayText() = DB::Exception: ..."). */
static void refused(const struct ch *c, long http, char *errbuf)
{
	const char *a = c->ans ? c->ans : "";
	size_t n = strcspn(a, "\n");
	snprintf(errbuf, CH_ERRBUF, "%s: HTTP %ld: %.*s", c->t->name, http,
	         (int)(n > 400 ? 400 : n), a);
}

int ch_exec(struct ch *c, const char *sql, const void *body, size_t len, char **answer,
            char *errbuf)
{
	char *q = curl_easy_escape(c->curl, sql, 0), *url;
	if (!q || asprintf(&url, "%s?query=%s", c->t->url, q) < 0) {
		curl_free(q);
		return -ENOMEM;
	}
	curl_free(q);
	c->len = 0;
	c->oom = 0;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	CURLcode rc = curl_easy_perform(c->curl);
	free(url);
	long http = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http);
	if (c->oom)
		return -ENOMEM;
	if (rc != CURLE_OK) {
		snprintf(errbuf, CH_ERRBUF, "%s: %s", c->t->name, curl_easy_strerror(rc));
		return CH_E_TRANSFER;
	}
	if (http != 200) {
		refused(c, http, errbuf);
		return CH_E_REFUSED;
	}
	if (answer) {
		*answer = c->ans ? c->ans : strdup("");
		c->ans = NULL;
		c->cap = 0;
		if (!*answer)
			return -ENOMEM;
	}
	return 0;
}
