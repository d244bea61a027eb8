/*
 * tools/clickhouse: a ClickHouse server's HTTP interface through libcurl
 * (docs/clickhouse.md): the flow rows `record --flow-export` sends, the
 * counters beside them, and the SELECTs of `query --fleet` and
 * `flows --fleet`.
 *
 * A target is clickhouse://[USER[:PASSWORD]@]HOST:PORT/DB.TABLE: HTTP (8123
 * is ClickHouse's port); the counters go to DB.TABLE_counters.  A statement
 * is a POST of ?query=SQL (its data, if any, as the body); an answer other
 * than 200 is ClickHouse's one-line exception text.
 *
 * Lifecycle: ch_open() -> ch_exec()... -> ch_close(); one handle per thread.
 * Errors: 0, CH_E_TRANSFER (no answer: libcurl's message), CH_E_REFUSED
 * (ClickHouse answered an error: its text), -ENOMEM; errbuf gets one line.
 */
#ifndef FLOWSCOPE_TOOLS_CLICKHOUSE_H
#define FLOWSCOPE_TOOLS_CLICKHOUSE_H

#include <stddef.h>
#include <stdint.h>

#define CH_E_TRANSFER (-10951)
#define CH_E_REFUSED (-10952)
#define CH_ERRBUF 1024

struct ch_target {
	char url[300]; /* http://HOST:PORT/ */
	char user[64], password[128];
	char db[64], table[64];
	char name[400]; /* the target as given, without the password (the export cursor) */
};

/* Parses a clickhouse:// URL; -1 and one line in err (the reason) when malformed. */
int ch_target_parse(const char *arg, struct ch_target *t, char *err, size_t errlen);

/* A sensor name that can go into a statement as it is: [A-Za-z0-9._-], 1..63 bytes. */
int ch_name_ok(const char *s);

struct ch;
int ch_open(const struct ch_target *t, long timeout_s, struct ch **out);
void ch_close(struct ch *c);

/*
 * Runs sql with body[0..len) as its data (NULL: none); the answer's bytes in
 * *answer (malloc()ed, NUL-terminated; NULL not wanted).
 */
int ch_exec(struct ch *c, const char *sql, const void *body, size_t len, char **answer,
            char *errbuf);

#endif
