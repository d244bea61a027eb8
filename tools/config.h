/*
 * The configuration file of a command (docs/config.md, flowscope.conf(5)),
 * private to tools/: `--config FILE` names an INI file (read by libinih)
 * whose keys are the command's long options, `archive = /var/lib/flowscope`
 * for `--archive /var/lib/flowscope`.
 *
 * The file is turned into arguments for the command's own option parser: one
 * "--key=value" (a flag set true: "--key") per line, placed after argv[0]
 * and before the command line's arguments, so every value is checked by the
 * same code as on the command line.  The file's lines of a key the command
 * line gives are left out: the command line overrides the file, and its list
 * of a repeatable key (--module) replaces the file's.  Each argument from the
 * file remembers its line, so an error names the file, the line and the key.
 *
 * Lifecycle: config_argv_build() -> the command parses out->argv (its option
 * values may point into those strings) -> config_argv_free() when the values
 * are no longer used.
 *
 * Threading: main thread only; config_argv_build() runs getopt_long (global
 * state) over a copy of argv and leaves optind for a new scan (0).
 *
 * Errors: config_argv_build() prints one line "flowscope CMD: FILE:LINE: KEY:
 * what to do" (or "FILE: ..." when the file cannot be read) and returns an
 * exit status (docs/cli.md): EXIT_USAGE, or EXIT_FAIL when memory ran out.
 */
#ifndef FLOWSCOPE_TOOLS_CONFIG_H
#define FLOWSCOPE_TOOLS_CONFIG_H

#include <stddef.h>

struct option;

/* What the file may hold for one command. */
struct config_spec {
	const char *cmd;               /* "record": also the name of its [record] section */
	const struct option *longopts; /* the command's options: the keys (exact names) */
	int config_val;                /* getopt value of --config in longopts */
	const char *repeatable;        /* getopt values of keys that may be given several times */
	const char *one_of;            /* getopt values of keys of which one may be given (the
	                                   source); the command line's choice replaces the file's */
	const char *one_of_params;     /* getopt values of keys that go with that choice (the
	                                   source's queues): the command line's choice replaces
	                                   them too */
};

/* One argument the file gave, and where. */
struct config_arg {
	char *arg;     /* "--key=value" or "--key", malloc()ed */
	unsigned line; /* its line in the file, from 1 */
};

struct config_argv {
	int argc;
	char **argv;             /* what to parse: NULL-terminated */
	const char *path;        /* the --config FILE, or NULL: argv is the command line's */
	struct config_arg *args; /* the file's arguments in argv (those not overridden) */
	unsigned nargs;
};

/*
 * Finds --config FILE in argv (getopt_long with spec->longopts) and, when
 * given, reads FILE and builds out->argv: argv[0], the file's arguments
 * (in the file's order), then argv[1..argc).  Without --config (or with
 * --help) out->argv is argv itself.  0, or an exit status with the line
 * printed: --config given twice, the file unreadable, a line that is not
 * "key = value" or "[section]", an unknown key or section, an empty value,
 * a flag whose value is not true/false/yes/no/on/off/1/0, a key given twice
 * (not repeatable) or two keys of spec->one_of, `config` in the file.
 */
int config_argv_build(const struct config_spec *spec, int argc, char **argv,
                      struct config_argv *out);

/*
 * "FILE:LINE" when the argv element `elem` came from the file (compared by
 * address: getopt_long may reorder argv), else NULL.  buf: at least PATH_MAX
 * + 16 bytes to hold any path.
 */
const char *config_argv_where(const struct config_argv *c, const char *elem, char *buf, size_t len);

/* Frees what config_argv_build() allocated (any time: after a failure too); zeroes *c. */
void config_argv_free(struct config_argv *c);

#endif
