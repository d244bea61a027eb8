/*
 * Parsers for the values users type, and the error-line convention.
 *
 * Every parser accepts the whole string or nothing: "10x", "5 m", "" and
 * out-of-range numbers are errors, so a typo never silently becomes a default.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "flowtrack/flowtrack.h"
#include "qq/qq.h"
#include "tools/cli.h"

/* cli_error_where(): set by the main thread while it parses options, before any other
 * thread starts; NULL otherwise */
static const char *g_where;

void cli_error_where(const char *where)
{
	g_where = where;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++) /* one line, always */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "flowscope %s: %s%s%s\n", cmd, g_where ? g_where : "", g_where ? ": " : "",
	        msg);
}

int cli_usage_error(const char *cmd, char **argv, int optind_at_error, int optopt_val)
{
	/* argv[optind - 1] is the element getopt was looking at: "--from", "-w", "-x" */
	const char *arg = optind_at_error > 0 ? argv[optind_at_error - 1] : NULL;
	if (arg && arg[0] == '-' && arg[1] != '-' && optopt_val > 0 && optopt_val < 256 &&
	    isprint(optopt_val))
		cli_error(cmd,
		          "option '-%c': unknown, or missing its value (see flowscope %s --help)",
		          optopt_val, cmd);
	else
		cli_error(cmd,
		          "option '%s': unknown, or missing its value (see flowscope %s --help)",
		          arg ? arg : "?", cmd);
	return EXIT_USAGE;
}

/* The parsers of sizes, durations and counts are flowtrack's, shared with module arguments. */
int cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return ft_parse_uint(s, min, max, out);
}

int cli_parse_size(const char *s, uint64_t *out)
{
	return ft_parse_size(s, out);
}

int cli_parse_duration(const char *s, uint64_t *out)
{
	return ft_parse_duration(s, out);
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* "Z", "+hh:mm", "-hh:mm" -> offset east of UTC in seconds. */
static int parse_zone(const char *p, long *off)
{
	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		*off = 0;
		return 0;
	}
	int hh, mm;
	if ((p[0] != '+' && p[0] != '-') || (p++, digits(&p, 2, &hh)) || *p++ != ':' ||
	    digits(&p, 2, &mm) || *p || hh > 23 || mm > 59)
		return -EINVAL;
	*off = (hh * 3600L + mm * 60L) * (p[-6] == '-' ? -1 : 1);
	return 0;
}

static int parse_rfc3339(const char *s, uint64_t *out)
{
	struct tm tm = {0};
	const char *p = s;
	int y, mo, d, h, mi, sec;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') ||
	    (p++, digits(&p, 2, &h)) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	uint64_t frac = 0;
	if (*p == '.') {
		uint64_t scale = 1000000000u;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*p - '0') * scale;
			}
	}
	long zone;
	if (parse_zone(p, &zone))
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (tm.tm_mday != d) /* timegm normalised an impossible date such as 02-30 */
		return -EINVAL;
	long long secs = (long long)t - zone;
	/* ns since 1970 in a u64: to 2554-07-21T23:34:33.709551615Z, no wrapping */
	if (secs < 0 || (uint64_t)secs > (UINT64_MAX - frac) / 1000000000u)
		return -ERANGE;
	*out = (uint64_t)secs * 1000000000u + frac;
	return 0;
}

int cli_parse_time(const char *s, uint64_t now_ns, uint64_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "now") == 0) {
		*out = now_ns;
		return 0;
	}
	size_t n = strlen(s);
	if (n > 4 && strcmp(s + n - 4, " ago") == 0) {
		char d[64];
		uint64_t dur;
		if (n - 4 >= sizeof(d))
			return -EINVAL;
		memcpy(d, s, n - 4);
		d[n - 4] = '\0';
		if (cli_parse_duration(d, &dur) || dur > now_ns)
			return -EINVAL;
		*out = now_ns - dur;
		return 0;
	}
	if (strchr(s, '-') && strchr(s, ':'))
		return parse_rfc3339(s, out);
	if (s[strspn(s, "0123456789.")] != '\0')
		return -EINVAL;
	return ft_parse_duration(s, out); /* epoch seconds; -ERANGE if too large */
}

void cli_time_error(const char *cmd, const char *opt, const char *arg, int err)
{
	if (err == -ERANGE)
		cli_error(cmd,
		          "%s '%s': out of range: times run from 1970-01-01T00:00:00Z to "
		          "2554-07-21T23:34:33.709551615Z (ns since 1970 in 64 bits)",
		          opt, arg);
	else
		cli_error(cmd,
		          "%s '%s': not a time (use RFC 3339 such as 2026-11-27T14:02:00Z, epoch "
		          "seconds, 'now' or '15m ago')",
		          opt, arg);
}

char *cli_format_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000u));
	return buf;
}

int cli_parse_time_now(const char *s, uint64_t *out)
{
	return cli_parse_time(s, cli_now_ns(), out);
}

uint64_t cli_now_ns(void)
{
	return qq_clock_ns(CLOCK_REALTIME);
}

uint64_t cli_mono_ns(void)
{
	return qq_clock_ns(CLOCK_MONOTONIC);
}

char *cli_join_args(int argc, char **argv, int first)
{
	size_t len = 1;
	for (int i = first; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (int i = first; i < argc; i++) {
		if (i > first)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

struct files_check {
	struct archive *a;
	uint64_t bad;
	char first[512];
};

static int file_check(const struct archive_segment_info *s, void *arg)
{
	struct files_check *c = arg;
	struct archive_rtxn *now;
	struct archive_segment_info again;
	if (archive_segment_check_file(c->a, s) == 0)
		return 0;
	char why[512];
	snprintf(why, sizeof(why), "%s", archive_errmsg());
	if (archive_rtxn_begin(c->a, &now) == 0) { /* retention dropped it since the snapshot? */
		int gone = archive_segment_get(now, s->id, &again) == ARCHIVE_E_NOTFOUND;
		archive_rtxn_end(now);
		if (gone)
			return 0;
	}
	if (c->bad++ == 0)
		snprintf(c->first, sizeof(c->first), "%s", why);
	return 0;
}

uint64_t cli_check_segment_files(const char *cmd, struct archive *a, struct archive_rtxn *t,
                                 const char *dir)
{
	struct files_check c = {.a = a};
	if (archive_segments(t, 0, 0, file_check, &c) != 0 || c.bad == 0)
		return 0;
	cli_error(cmd,
	          "archive %s: %llu segment files missing or shorter than the index says (%s%s): "
	          "queries cannot read them; flowscope index verify checks every file",
	          dir, (unsigned long long)c.bad, c.first, c.bad > 1 ? ", ..." : "");
	return c.bad;
}
