/*
 * The configuration file: INI lines read by libinih (Debian libinih-dev),
 * turned into "--key=value" arguments for the command's own option parser
 * (config.h; the syntax is docs/config.md).
 *
 * libinih does the parsing; this file feeds it lines through a reader of its
 * own, which counts them (inih's handler gets no line number) and holds the
 * grammar to one form: leading blanks are dropped before inih sees a line
 * (inih would take an indented line as the continuation of the previous
 * value), and a line that is not blank, a comment, a [section] or
 * "key = value" is refused with its text (inih would only give its number;
 * "key: value", which inih also takes, is refused too).  The handler checks
 * each key against the command's long options and each flag's value, then
 * keeps the argument unless the command line gives that key.
 *
 * Option values are checked later by the command's parser, as on the command
 * line; config_argv_where() lets its error line name the file and line.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/cli.h"
#include "tools/config.h"

/* Sections of the commands that read config files: a command skips the others' sections. */
static const char *const known_sections[] = {"record", "monitor", "serve"};

struct config_state {
	const struct config_spec *spec;
	struct config_argv *out;
	FILE *f;
	char *buf; /* getline()'s */
	size_t cap;
	unsigned line;
	int read_errno;           /* getline() failed */
	int failed;               /* an exit status: a line printed, stop reading */
	unsigned char given[256]; /* options the command line gives */
	unsigned seen_line[256];  /* the line of each key in the file (0: none yet) */
};

static int in(const char *vals, int c)
{
	return vals && c > 0 && c < 256 && strchr(vals, c) != NULL;
}

/* Prints "flowscope CMD: FILE:LINE: <message>" once and stops the reading; returns 0
 * (inih's "error" for a handler). */
static int line_error(struct config_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int line_error(struct config_state *st, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!st->failed)
		cli_error(st->spec->cmd, "%s:%u: %s", st->out->path, st->line, msg);
	st->failed = EXIT_USAGE;
	return 0;
}

/* ---- the reader: one line at a time, counted and held to one form ------------------------- */

/* s: a line without leading blanks or newline.  0, or -1 with the error printed. */
static int check_form(struct config_state *st, const char *s)
{
	size_t key = strcspn(s, " \t=:");
	const char *eq = strchr(s, '='), *colon = strchr(s, ':');
	if (!*s || *s == '#' || *s == ';' || (*s == '[' && strchr(s, ']')))
		return 0;
	if (*s == '[')
		line_error(st, "'%s': a section is written [record], [monitor] or [serve]", s);
	else if (!eq && !colon)
		line_error(st,
		           "'%.*s': not 'key = value': write %.*s = VALUE (a flag: %.*s = true)",
		           (int)key, s, (int)key, s, (int)key, s);
	else if (colon && (!eq || colon < eq))
		line_error(st, "'%.*s': write %.*s = VALUE ('=', not ':')", (int)key, s, (int)key,
		           s);
	else
		return 0;
	return -1;
}

/* inih's reader (fgets-like): the next line into buf[0..n), NULL at the end or on error. */
static char *read_line(char *buf, int n, void *arg)
{
	struct config_state *st = arg;
	if (st->failed)
		return NULL;
	errno = 0;
	ssize_t len = getline(&st->buf, &st->cap, st->f);
	if (len < 0) {
		st->read_errno = ferror(st->f) ? (errno ? errno : EIO) : 0;
		return NULL;
	}
	st->line++;
	while (len > 0 && (st->buf[len - 1] == '\n' || st->buf[len - 1] == '\r'))
		st->buf[--len] = '\0';
	char *s = st->buf + strspn(st->buf, " \t");
	if (strlen(s) >= (size_t)n) {
		line_error(st,
		           "'%.*s': line longer than %d characters: shorten it (long values such "
		           "as BPF filters can go on the command line)",
		           (int)strcspn(s, " \t=:"), s, n - 1);
		return NULL;
	}
	if (check_form(st, s) != 0)
		return NULL;
	memcpy(buf, s, strlen(s) + 1);
	return buf;
}

/* ---- the handler: one key = value ---------------------------------------------------------- */

/* 1 true, 0 false, -1 neither. */
static int parse_bool(const char *v)
{
	static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
	                                                                            "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* 1: the section is this command's (or none), 0: another command's, -1: unknown (printed). */
static int section_is_ours(struct config_state *st, const char *section)
{
	if (!*section || strcmp(section, st->spec->cmd) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(known_sections) / sizeof(known_sections[0]); i++)
		if (strcmp(section, known_sections[i]) == 0)
			return 0;
	line_error(st, "[%s]: unknown section: use [record], [monitor] or [serve], or none",
	           section);
	return -1;
}

static const struct option *find_key(const struct config_spec *spec, const char *name)
{
	for (const struct option *o = spec->longopts; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* The key may be given here: not twice, not beside another key of spec->one_of.  0, or -1
 * with the error printed. */
static int check_once(struct config_state *st, const struct option *opt)
{
	int c = opt->val;
	if (st->seen_line[c] && !in(st->spec->repeatable, c)) {
		line_error(st, "%s: given twice (also on line %u): keep one", opt->name,
		           st->seen_line[c]);
		return -1;
	}
	for (const struct option *o = st->spec->longopts; in(st->spec->one_of, c) && o->name; o++)
		if (o->val != c && in(st->spec->one_of, o->val) && st->seen_line[o->val]) {
			line_error(st, "%s: %s is given on line %u: give one of them", opt->name,
			           o->name, st->seen_line[o->val]);
			return -1;
		}
	st->seen_line[c] = st->line;
	return 0;
}

/* The command line gives this key, or (spec->one_of) another choice of it, or a choice of
 * which this key is a parameter (spec->one_of_params). */
static int overridden(const struct config_state *st, int c)
{
	if (st->given[c])
		return 1;
	int choice = in(st->spec->one_of, c) || in(st->spec->one_of_params, c);
	for (const char *p = st->spec->one_of; choice && *p; p++)
		if (st->given[(unsigned char)*p])
			return 1;
	return 0;
}

static int add_arg(struct config_state *st, const struct option *opt, const char *value)
{
	struct config_argv *out = st->out;
	struct config_arg *a = realloc(out->args, (out->nargs + 1) * sizeof(*a));
	if (!a) {
		st->failed = EXIT_FAIL;
		return 0;
	}
	out->args = a;
	a = &out->args[out->nargs];
	a->line = st->line;
	if (value ? asprintf(&a->arg, "--%s=%s", opt->name, value) < 0
	          : asprintf(&a->arg, "--%s", opt->name) < 0) {
		st->failed = EXIT_FAIL;
		return 0;
	}
	out->nargs++;
	return 1;
}

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
	struct config_state *st = arg;
	int ours = section_is_ours(st, section);
	if (ours <= 0)
		return ours == 0;
	const struct option *opt = find_key(st->spec, name);
	if (opt && opt->val == st->spec->config_val)
		return line_error(st, "config: a config file cannot name another: give --config "
		                      "on the command line only");
	if (!opt || opt->val == 'h' || opt->val <= 0 || opt->val >= 256)
		return line_error(st,
		                  "%s: unknown key: the keys are the long options of "
		                  "flowscope %s --help, without the dashes",
		                  name, st->spec->cmd);
	if (!*value)
		return line_error(st, "%s: no value: write %s = VALUE, or remove the line", name,
		                  name);
	int flag = opt->has_arg == no_argument ? parse_bool(value) : 1;
	if (flag < 0)
		return line_error(st, "%s = %s: a flag: write %s = true or %s = false", name, value,
		                  name, name);
	if (check_once(st, opt) != 0 || flag == 0 || overridden(st, opt->val))
		return !st->failed;
	return add_arg(st, opt, opt->has_arg == no_argument ? NULL : value);
}

/* ---- building argv -------------------------------------------------------------------------- */

/*
 * The options argv gives (given[getopt value]) and its --config FILE.  Unknown options and
 * missing values are left for the command's parse to report.  0 or EXIT_USAGE (printed).
 */
static int scan_argv(const struct config_spec *spec, int argc, char **argv, unsigned char *given,
                     const char **path)
{
	char **copy = malloc((size_t)(argc + 1) * sizeof(*copy));
	if (!copy)
		return EXIT_FAIL;
	memcpy(copy, argv, (size_t)argc * sizeof(*copy));
	copy[argc] = NULL;
	int c, r = 0;
	optind = 0; /* glibc: a full new scan */
	opterr = 0;
	*path = NULL;
	while ((c = getopt_long(argc, copy, ":h", spec->longopts, NULL)) != -1) {
		if (c <= 0 || c >= 256 || c == '?' || c == ':')
			continue;
		if (c == spec->config_val && given[c] && !r) {
			cli_error(spec->cmd, "--config given twice (%s and %s): give one file",
			          *path, optarg);
			r = EXIT_USAGE;
		}
		if (c == spec->config_val)
			*path = optarg;
		given[c] = 1;
	}
	optind = 0;
	free(copy);
	return r;
}

/* Reads the file's arguments into out->args.  0 or an exit status (printed). */
static int read_file(struct config_state *st)
{
	const char *path = st->out->path;
	st->f = fopen(path, "r");
	if (!st->f) {
		cli_error(st->spec->cmd,
		          "%s: cannot open the config file: %s: give a readable file", path,
		          strerror(errno));
		return EXIT_USAGE;
	}
	int rc = ini_parse_stream(read_line, st, on_key, st);
	fclose(st->f);
	free(st->buf);
	if (st->failed)
		return st->failed;
	if (st->read_errno) {
		cli_error(st->spec->cmd,
		          "%s: cannot read the config file: %s: give a readable file", path,
		          strerror(st->read_errno));
		return EXIT_USAGE;
	}
	if (rc == -2)
		return EXIT_FAIL;
	if (rc != 0) { /* a form check_form() lets through but inih refuses */
		cli_error(st->spec->cmd, "%s:%d: not 'key = value' or '[section]': fix the line",
		          path, rc);
		return EXIT_USAGE;
	}
	return 0;
}

int config_argv_build(const struct config_spec *spec, int argc, char **argv,
                      struct config_argv *out)
{
	*out = (struct config_argv){.argc = argc, .argv = argv};
	struct config_state *st = calloc(1, sizeof(*st));
	if (!st)
		return EXIT_FAIL;
	st->spec = spec;
	st->out = out;
	int r = scan_argv(spec, argc, argv, st->given, &out->path);
	if (r || !out->path || st->given['h']) {
		out->path = NULL;
		free(st);
		return r;
	}
	r = read_file(st);
	free(st);
	char **v = r ? NULL : malloc((size_t)(argc + out->nargs + 1) * sizeof(*v));
	if (!v) {
		out->path = NULL; /* out->argv is still the caller's */
		config_argv_free(out);
		return r ? r : EXIT_FAIL;
	}
	v[0] = argv[0];
	for (unsigned i = 0; i < out->nargs; i++)
		v[1 + i] = out->args[i].arg;
	memcpy(v + 1 + out->nargs, argv + 1, (size_t)(argc - 1) * sizeof(*v));
	v[argc + out->nargs] = NULL;
	out->argv = v;
	out->argc = argc + (int)out->nargs;
	return 0;
}

const char *config_argv_where(const struct config_argv *c, const char *elem, char *buf, size_t len)
{
	for (unsigned i = 0; c->path && i < c->nargs; i++)
		if (c->args[i].arg == elem) {
			snprintf(buf, len, "%s:%u", c->path, c->args[i].line);
			return buf;
		}
	return NULL;
}

void config_argv_free(struct config_argv *c)
{
	for (unsigned i = 0; i < c->nargs; i++)
		free(c->args[i].arg);
	free(c->args);
	if (c->path) /* argv was built here (its strings are the caller's and args') */
		free(c->argv);
	*c = (struct config_argv){0};
}
