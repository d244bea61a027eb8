/*
 * tools/listen: the HTTP API's options, one parser for the two commands that
 * serve it (`flowscope serve` and `flowscope record --listen`): --listen,
 * the TLS files and the limits, with the same names, checks, defaults and
 * help text in both (docs/api.md, "Limits").
 *
 * Lifecycle: the values parsed point into argv (or the config file's
 * strings); the caller's struct query_api_config keeps them.  Threading: the
 * command line's thread.  Errors: one line through cli_error() naming the
 * option, and EXIT_USAGE.
 */
#ifndef FLOWSCOPE_TOOLS_LISTEN_H
#define FLOWSCOPE_TOOLS_LISTEN_H

#include <getopt.h>

#include "query/query.h"

/* getopt values (letters: tools/config.c keeps one flag per byte), free in both commands */
#define LISTEN_OPT_LETTERS "lkKVmNPIWB"

/* The rows of a getopt_long table, for both commands' tables (one row a line: kept out of
   clang-format, which would fold the macro's braces) */
/* clang-format off */
#define LISTEN_LONGOPTS \
	{"listen", required_argument, NULL, 'l'}, \
	{"tls-cert", required_argument, NULL, 'k'}, \
	{"tls-key", required_argument, NULL, 'K'}, \
	{"client-ca", required_argument, NULL, 'V'}, \
	{"max-queries", required_argument, NULL, 'm'}, \
	{"max-connections", required_argument, NULL, 'N'}, \
	{"per-ip-connections", required_argument, NULL, 'P'}, \
	{"idle-timeout", required_argument, NULL, 'I'}, \
	{"query-timeout", required_argument, NULL, 'W'}, \
	{"max-answer-bytes", required_argument, NULL, 'B'}
/* clang-format on */

/* Their help lines, as both commands print them. */
extern const char listen_usage[];

/* Option c's value into cfg: 0, EXIT_USAGE (said, as cmd), or -1 when c is not one of them. */
int listen_parse_opt(const char *cmd, int c, const char *arg, struct query_api_config *cfg);

/* After the options: the TLS files go together, and the rest need --listen; 0 or
   EXIT_USAGE (said). */
int listen_check(const char *cmd, const struct query_api_config *cfg);

#endif
