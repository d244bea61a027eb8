/*
 * query --fleet: the fleet file, and one query over every sensor in it.
 *
 * The file is INI (libinih): a [sensor NAME] section per sensor with its
 * url, and cert, key and cacert for its TLS; keys before the first section
 * are defaults for every sensor.  Anything else is refused with its line.
 * Each sensor's answer goes to an unlinked temporary file as it streams
 * (the transfers run at once), then the answers are merged by timestamp:
 * the files keep a slow sensor from holding back the others' transfers,
 * and cost the answer's size on disk for the time of the query.
 */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/clickhouse.h"
#include "tools/fleet.h"

struct load {
	const char *cmd, *path;
	struct fleet *f;
	struct remote_tls defaults; /* strings owned here until fleet_load ends */
	int failed;                 /* a line printed */
};

static int set_str(char **dst, const char *v)
{
	free(*dst);
	return (*dst = strdup(v)) ? 0 : -ENOMEM;
}

static const char *const tls_keys[] = {"cert", "key", "cacert"};

/* The index of TLS key `name` in tls_keys, or -1. */
static int tls_index(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(name, tls_keys[i]) == 0)
			return i;
	return -1;
}

/* TLS key i of t (an owned string). */
static char **tls_field(struct remote_tls *t, int i)
{
	return (char **)(i == 0 ? &t->cert : i == 1 ? &t->key : &t->cacert);
}

/* The sensor of section "sensor NAME", added when new; NULL when out of memory. */
static struct fleet_sensor *sensor_of(struct load *l, const char *name)
{
	struct fleet *f = l->f;
	if (f->n && strcmp(f->v[f->n - 1].name, name) == 0)
		return &f->v[f->n - 1];
	struct fleet_sensor *v = realloc(f->v, (f->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	f->v = v;
	memset(&v[f->n], 0, sizeof(v[0]));
	if (!(v[f->n].name = strdup(name)))
		return NULL;
	return &v[f->n++];
}

/* The file's first problem, one line naming it; 0 (inih: stop). */
static int load_fail(struct load *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int load_fail(struct load *l, const char *fmt, ...)
{
	if (!l->failed) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cli_error(l->cmd, "%s: %s", l->path, msg);
	}
	l->failed = 1;
	return 0; /* inih: stop */
}

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
	struct load *l = arg;
	int k = tls_index(name);
	if (!section[0] && strcmp(name, "clickhouse") == 0) {
		struct ch_target t;
		char err[128];
		if (ch_target_parse(value, &t, err, sizeof(err)) != 0)
			return load_fail(l, "clickhouse = %s: %s", value, err);
		return set_str(&l->f->clickhouse, value) == 0 ? 1 : load_fail(l, "out of memory");
	}
	if (!section[0]) { /* defaults */
		if (k < 0)
			return load_fail(
			    l, "'%s' before any [sensor NAME]: only cert, key, cacert, clickhouse",
			    name);
		return set_str(tls_field(&l->defaults, k), value) == 0
		           ? 1
		           : load_fail(l, "out of memory");
	}
	if (strncmp(section, "sensor ", 7) != 0 || !section[7])
		return load_fail(l, "[%s]: expected [sensor NAME]", section);
	if (k < 0 && strcmp(name, "url") != 0)
		return load_fail(l, "[%s]: unknown key '%s' (url, cert, key, cacert)", section,
		                 name);
	struct fleet_sensor *s = sensor_of(l, section + 7);
	if (!s || set_str(k < 0 ? &s->url : tls_field(&s->tls, k), value) != 0)
		return load_fail(l, "out of memory");
	return 1;
}

/* Each sensor has a url and a unique name; defaults fill its TLS keys. */
static int check(struct load *l)
{
	struct fleet *f = l->f;
	if (f->n == 0)
		return load_fail(l, "no [sensor NAME] section"), EXIT_USAGE;
	for (size_t i = 0; i < f->n; i++) {
		struct fleet_sensor *s = &f->v[i];
		if (!s->url)
			return load_fail(l, "[sensor %s]: no url", s->name), EXIT_USAGE;
		for (size_t j = 0; j < i; j++)
			if (strcmp(f->v[j].name, s->name) == 0)
				return load_fail(l, "[sensor %s] twice (not one after the other)",
				                 s->name),
				       EXIT_USAGE;
		for (int k = 0; k < 3; k++) {
			char **d = tls_field(&s->tls, k), **def = tls_field(&l->defaults, k);
			if (!*d && *def && set_str(d, *def) != 0)
				return load_fail(l, "out of memory"), EXIT_FAIL;
		}
		if (!s->tls.cert != !s->tls.key)
			return load_fail(l, "[sensor %s]: cert and key go together", s->name),
			       EXIT_USAGE;
	}
	return 0;
}

int fleet_load(const char *cmd, const char *path, struct fleet *f)
{
	struct load l = {.cmd = cmd, .path = path, .f = f};
	memset(f, 0, sizeof(*f));
	FILE *in = fopen(path, "re");
	if (!in) {
		cli_error(cmd, "cannot read the fleet file %s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	int line = ini_parse_file(in, on_key, &l), r = 0;
	fclose(in);
	if (line > 0 && !l.failed) {
		load_fail(&l, "line %d: not 'key = value', a [section] or a comment", line);
	}
	r = l.failed ? EXIT_USAGE : check(&l);
	for (int k = 0; k < 3; k++)
		free(*tls_field(&l.defaults, k));
	if (r)
		fleet_free(f);
	return r;
}

void fleet_free(struct fleet *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].url);
		free((char *)f->v[i].tls.cert);
		free((char *)f->v[i].tls.key);
		free((char *)f->v[i].tls.cacert);
	}
	free(f->v);
	free(f->clickhouse);
	memset(f, 0, sizeof(*f));
}

/* ---- the query ---------------------------------------------------------------------------- */

/* One line per failed sensor; the status the failures make. */
static int report(const char *cmd, const struct fleet *f, const struct remote_job *j,
                  const struct query_merge_input *in)
{
	size_t failed = 0, refused400 = 0;
	for (size_t i = 0; i < f->n; i++) {
		if (!j[i].err)
			continue;
		failed++;
		refused400 += j[i].err == REMOTE_E_REFUSED && j[i].http == 400;
		if (j[i].err == REMOTE_E_REFUSED)
			cli_error(cmd, "sensor %s (%s): %s (HTTP %ld): its packets are missing",
			          f->v[i].name, f->v[i].url, j[i].errbuf, j[i].http);
		else
			cli_error(cmd,
			          "sensor %s: %s: the answer is partial (%llu whole packets of it "
			          "kept)",
			          f->v[i].name, j[i].errbuf, (unsigned long long)in[i].packets);
	}
	if (!failed)
		return EXIT_OK;
	if (refused400 == f->n)
		return EXIT_USAGE;
	return failed == f->n ? EXIT_FAIL : EXIT_DAMAGED;
}

static int query_all(const char *cmd, const struct fleet *f, const struct query_options *opt);

/* No sensor holds a packet of the query: an empty capture. */
static int query_none(const char *cmd, const struct query_options *opt)
{
	char err[QUERY_ERRBUF_SIZE];
	if (query_merge(NULL, 0, opt, err) != 0) {
		cli_error(cmd, "%s", err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int fleet_query(const char *cmd, const struct fleet *f, const struct query_options *opt,
                int all_sensors)
{
	int *ask = calloc(f->n, sizeof(*ask));
	struct fleet sub = {.v = calloc(f->n, sizeof(*sub.v))};
	int status = EXIT_FAIL;
	if (!ask || !sub.v) {
		cli_error(cmd, "out of memory");
	} else {
		if (all_sensors)
			for (size_t i = 0; i < f->n; i++)
				ask[i] = 1;
		else
			fleet_narrow(cmd, f, opt, ask);
		for (size_t i = 0; i < f->n; i++)
			if (ask[i])
				sub.v[sub.n++] = f->v[i]; /* (borrowed: not freed) */
		status = sub.n ? query_all(cmd, &sub, opt) : query_none(cmd, opt);
	}
	free(ask);
	free(sub.v);
	return status;
}

/* Asks every sensor of f; merges their answers into opt->out. */
static int query_all(const char *cmd, const struct fleet *f, const struct query_options *opt)
{
	struct remote_job *j = calloc(f->n, sizeof(*j));
	struct query_merge_input *in = calloc(f->n, sizeof(*in));
	int status = EXIT_FAIL;
	size_t i;
	for (i = 0; j && in && i < f->n; i++) {
		j[i] =
		    (struct remote_job){.url = f->v[i].url, .tls = f->v[i].tls, .out = tmpfile()};
		in[i] = (struct query_merge_input){.name = f->v[i].name, .in = j[i].out};
		if (!j[i].out)
			break;
	}
	if (!j || !in || i < f->n) {
		cli_error(cmd, "cannot make a temporary file for the sensors' answers: %s",
		          strerror(errno ? errno : ENOMEM));
	} else {
		struct query_options each = *opt; /* nanosecond pcap from every sensor */
		each.format = QUERY_FORMAT_PCAP, each.ts_micro = 0, each.comment = NULL;
		remote_query_many(j, f->n, &each);
		char err[QUERY_ERRBUF_SIZE];
		int r = query_merge(in, f->n, opt, err); /* closes the files */
		status = report(cmd, f, j, in);
		if (r) {
			cli_error(cmd, "%s", err);
			status = r == QUERY_E_LINKTYPES ? EXIT_USAGE : EXIT_FAIL;
		}
	}
	for (i = 0; in && j && i < f->n; i++)
		if (in[i].in) /* not handed to query_merge */
			fclose(in[i].in);
	free(j);
	free(in);
	return status;
}
