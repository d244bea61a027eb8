/*
 * tools: the flowscope command line.  Each subcommand is a *_main(argc, argv)
 * returning the process exit status; cli.c holds the parsers for the values
 * users type (sizes, durations, times) and the one-line error convention.
 *
 * Exit status (docs/cli.md): 0 success; 1 failure (the line on stderr says
 * what); 2 usage error (bad flag or value); 3 the input was damaged: the
 * archive holds everything that could be read, the line says what was lost.
 */
#ifndef FLOWSCOPE_TOOLS_CLI_H
#define FLOWSCOPE_TOOLS_CLI_H

#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_DAMAGED 3
#define EXIT_UNSTORED 4 /* record --read: not every packet could be stored (a full disk) */

int record_main(int argc, char **argv);
int monitor_main(int argc, char **argv);
int query_main(int argc, char **argv);
int info_main(int argc, char **argv);
int flows_main(int argc, char **argv);
int gen_main(int argc, char **argv);
int index_main(int argc, char **argv);
int serve_main(int argc, char **argv);
int trigger_main(int argc, char **argv);
int extcap_main(int argc, char **argv);

/*
 * flowscope --version: the version, the git commit and the libraries built
 * with and running with, one per line (docs/cli.md shows the output).
 */
void version_print(FILE *f);

/*
 * Where the value at fault came from, for the cli_error() lines that follow
 * (until cli_error_where(NULL)): "FILE:LINE" of a config file (tools/config.h),
 * printed after the command as "flowscope <cmd>: FILE:LINE: <message>".  The
 * string must stay valid until then.  Main thread only.
 */
void cli_error_where(const char *where);

/*
 * The log: every line flowscope writes on stderr is one event, "flowscope
 * <cmd>: <message>" (newlines in the message become spaces), with a
 * severity.  Under systemd, when stderr is the journal's stream (JOURNAL_STREAM
 * names stderr's device and inode, as systemd.exec(5) says to check), each
 * line starts with the kernel-style level prefix journald reads: "<3>"
 * error, "<4>" warning, "<6>" info (sd-daemon.h's SD_ERR, SD_WARNING,
 * SD_INFO); anywhere else (a terminal, a file, a pipe) lines carry none.
 * Nothing we print holds ANSI codes.  Thread-safe: one fprintf per line.
 */
enum cli_level { CLI_ERR = 3, CLI_WARN = 4, CLI_INFO = 6 };

/* Prints "flowscope <cmd>: <message>" as one line on stderr: an error. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same line, as a warning (something is wrong, work goes on) or as information. */
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_info(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The same line, of any length, on f (stderr, or a stream holding lines back for it:
 * record's recovery notes), for lines that are not errors: status, report, notes.
 */
void cli_log_to(FILE *f, enum cli_level level, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The prefix of a line of that level on stderr: "<3>".."<6>" for the journal, else "". */
const char *cli_log_prefix(enum cli_level level);

/* Reports an unknown option / missing argument from getopt; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, char **argv, int optind_at_error, int optopt_val);

/*
 * Sizes, durations and whole numbers: flowtrack's ft_parse_size,
 * ft_parse_duration and ft_parse_uint (flowtrack.h), the parsers of module
 * arguments too.  Each returns 0 and *out, -EINVAL (not such a value) or
 * -ERANGE (beyond 64 bits, or outside [min, max]).
 */

/* "512M", "4G", "1048576", "64k": bytes with optional K/M/G/T suffix (powers of 1024). */
int cli_parse_size(const char *s, uint64_t *out);

/* "60s", "5m", "2h", "7d", "1.5s", "250ms": nanoseconds (a bare number is seconds). */
int cli_parse_duration(const char *s, uint64_t *out);

/*
 * A point in time, nanoseconds since the epoch:
 *   RFC 3339 with zone ("2026-11-27T14:02:00Z", "...+01:00", fraction allowed),
 *   epoch seconds with optional fraction ("1795000000.25"),
 *   "now", or "<duration> ago" ("15m ago", "2h ago", "1d ago").
 * now_ns is the reference for relative forms.  0, -EINVAL (not a time), or
 * -ERANGE (before 1970 or after 2554-07-21T23:34:33.709551615Z: ns in a u64).
 */
int cli_parse_time(const char *s, uint64_t now_ns, uint64_t *out);

/* cli_parse_time() against the clock now (the API's time parser, query_api_time_fn). */
int cli_parse_time_now(const char *s, uint64_t *out);

/* The one-line usage error for option opt's value arg, err from cli_parse_time(). */
void cli_time_error(const char *cmd, const char *opt, const char *arg, int err);

/* A non-negative whole number in [min, max] ("1500"; no suffix, sign or fraction). */
int cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Formats ns since the epoch as RFC 3339 UTC with nanoseconds; returns buf (>= 40 bytes). */
char *cli_format_time(uint64_t ns, char *buf, size_t len);

/* Current CLOCK_REALTIME / CLOCK_MONOTONIC in ns. */
uint64_t cli_now_ns(void);
uint64_t cli_mono_ns(void);

/*
 * Names thread t "ROLE" or "ROLE<i>" (i >= 0) for ps, top and /proc/PID/task/
 * (tools/bench/live_bench.sh sums CPU by it); best effort, 15 bytes at most.
 */
void cli_name_thread(pthread_t t, const char *role, int i);

/* Joins argv[first..argc) with spaces (a filter given as several words); malloc()ed. */
char *cli_join_args(int argc, char **argv, int first);

struct archive;
struct archive_rtxn;

/*
 * Checks with stat() alone that every segment file of the index (snapshot t)
 * exists and is as long as the index says; when some are not, one line
 * `flowscope CMD: archive DIR: N segment files missing or shorter ...`.
 * Returns N.
 */
uint64_t cli_check_segment_files(const char *cmd, struct archive *a, struct archive_rtxn *t,
                                 const char *dir);

#endif
