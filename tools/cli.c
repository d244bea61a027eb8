/*
 * Parsers for the values users type, and the log lines: one line per event,
 * with a level journald reads when stderr is the journal (cli.h).
 *
 * Every parser accepts the whole string or nothing: "10x", "5 m", "" and
 * out-of-range numbers are errors, so a typo never silently becomes a default.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

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

/* stderr is the journal's stream: JOURNAL_STREAM holds its "device:inode" (systemd.exec(5)).
 * A child whose stderr went elsewhere inherits the variable, so it is compared, not trusted. */
static int g_journal;

static void journal_check(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;
	if (!js || isatty(STDERR_FILENO) || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return;
	g_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

const char *cli_log_prefix(enum cli_level level)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, journal_check);
	if (!g_journal)
		return "";
	return level == CLI_ERR ? SD_ERR : level == CLI_WARN ? SD_WARNING : SD_INFO;
}

/* The one way a log line is written: level prefix, command, where, message on one line. */
static void log_write(FILE *f, enum cli_level level, const char *cmd, char *msg)
{
	for (char *p = msg; *p; p++) /* one line, always */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(f, "%sflowscope %s: %s%s%s\n", cli_log_prefix(level), cmd, g_where ? g_where : "",
	        g_where ? ": " : "", msg);
}

static void cli_log(enum cli_level level, const char *cmd, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_write(stderr, level, cmd, msg);
}

void cli_log_to(FILE *f, enum cli_level level, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap); /* whole: status and report lines can be long */
	va_end(ap);
	if (n < 0) {
		va_start(ap, fmt);
		cli_log(level, cmd, fmt, ap); /* no memory: the line cut at 1 KiB, on stderr */
		va_end(ap);
		return;
	}
	log_write(f, level, cmd, msg);
	free(msg);
}

void cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_log(CLI_ERR, cmd, fmt, ap);
	va_end(ap);
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_log(CLI_WARN, cmd, fmt, ap);
	va_end(ap);
}

void cli_info(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_log(CLI_INFO, cmd, fmt, ap);
	va_end(ap);
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
		return ft_parse_rfc3339(s, out);
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

void cli_name_thread(pthread_t t, const char *role, int i)
{
	char name[16];
	if (i >= 0)
		snprintf(name, sizeof(name), "%s%d", role, i);
	else
		snprintf(name, sizeof(name), "%s", role);
	pthread_setname_np(t, name);
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
