/*
 * The fleet's ClickHouse (`clickhouse = URL` in the fleet file): which
 * sensors `query --fleet` needs to ask, and `flows --fleet`.
 *
 * A sensor may be left out of a query only when ClickHouse can vouch for
 * it: its flow rows match nothing of the filter in the range (the plan as a
 * condition, query_plan_sql) and its rows are complete past the range's end
 * (its recorder's flow_export.through_seconds counter rows: every packet
 * before that second is in a segment sent).  Anything less certain (no
 * ClickHouse, a filter the rows cannot tell, a sensor ClickHouse does not
 * know, a range reaching past what was sent, ClickHouse failing) asks the
 * sensor.
 */
#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"
#include "query/query.h"
#include "tools/cli.h"
#include "tools/clickhouse.h"
#include "tools/fleet.h"

#define WHERE_MAX 16384

/*
 * The condition of rows a query's filter and range select into where: 0, 1
 * (the filter narrows nothing: where holds the range only), -ENOSPC/-ENOMEM.
 */
static int rows_where(const char *filter, uint64_t from_ns, uint64_t to_ns, char *where, size_t len)
{
	struct query_plan *p;
	char *cond = malloc(WHERE_MAX);
	int r = cond ? query_plan_build(filter, &p) : -ENOMEM;
	if (r == 0) {
		r = query_plan_sql(p, cond, WHERE_MAX);
		query_plan_free(p);
	}
	if (r >= 0) {
		int n = snprintf(where, len, "(%s) AND last_ns >= %" PRIu64 "%s", r ? "1" : cond,
		                 from_ns, to_ns ? " AND first_ns < " : "");
		if (to_ns && n > 0 && (size_t)n < len)
			n += snprintf(where + n, len - (size_t)n, "%" PRIu64, to_ns);
		if (n < 0 || (size_t)n >= len)
			r = -ENOSPC;
	}
	free(cond);
	return r;
}

/* Runs sql at the fleet's ClickHouse; the answer (TabSeparated) in *ans, or one line in err. */
static int ch_ask(const struct ch_target *t, const char *sql, char **ans, char *err)
{
	struct ch *c;
	int r = ch_open(t, 60, &c);
	if (r == 0) {
		r = ch_exec(c, sql, NULL, 0, ans, err);
		ch_close(c);
	} else {
		snprintf(err, CH_ERRBUF, "%s: out of memory", t->name);
	}
	return r;
}

/* Index of sensor `name` (len bytes) in the fleet, or -1. */
static long sensor_index(const struct fleet *f, const char *name, size_t len)
{
	for (size_t i = 0; i < f->n; i++)
		if (strlen(f->v[i].name) == len && memcmp(f->v[i].name, name, len) == 0)
			return (long)i;
	return -1;
}

/* ask[i] = 0 for the sensors ClickHouse vouches for (answer: "sensor\tthrough_seconds" lines). */
static void vouched(const struct fleet *f, const char *complete, uint64_t end_ns, int *ask)
{
	for (const char *l = complete ? complete : ""; *l;) {
		size_t n = strcspn(l, "\t\n");
		long i = sensor_index(f, l, n);
		uint64_t through = l[n] == '\t' ? strtoull(l + n + 1, NULL, 10) : 0;
		if (i >= 0 && ask[i] == 2 && through && through * 1000000000ull >= end_ns)
			ask[i] = 0;
		l += strcspn(l, "\n");
		l += *l == '\n';
	}
	for (size_t i = 0; i < f->n; i++)
		ask[i] = ask[i] != 0;
}

/* ask[i] = 2 for the sensors without a matching row (1 for those with one). */
static void unmatched(const struct fleet *f, const char *matched, int *ask)
{
	for (size_t i = 0; i < f->n; i++)
		ask[i] = 2;
	for (const char *l = matched ? matched : ""; *l;) {
		size_t n = strcspn(l, "\n");
		long i = sensor_index(f, l, n);
		if (i >= 0)
			ask[i] = 1;
		l += n + (l[n] == '\n');
	}
}

static void narrow_note(const char *cmd, const struct fleet *f, const int *ask, uint64_t end_ns)
{
	char left[1024] = "", t[48];
	size_t asked = 0, used = 0;
	for (size_t i = 0; i < f->n; i++) {
		asked += ask[i] != 0;
		if (!ask[i] && used < sizeof(left))
			used += (size_t)snprintf(left + used, sizeof(left) - used, "%s%s",
			                         used ? ", " : "", f->v[i].name);
	}
	if (asked < f->n)
		cli_info(cmd,
		         "asking %zu of %zu sensors: ClickHouse has every flow of %s before %s, "
		         "none matching",
		         asked, f->n, left, cli_format_time(end_ns, t, sizeof(t)));
}

size_t fleet_narrow(const char *cmd, const struct fleet *f, const struct query_options *opt,
                    int *ask)
{
	struct ch_target t;
	char err[CH_ERRBUF], *where = malloc(WHERE_MAX + 256), *sql = malloc(WHERE_MAX + 512);
	char *matched = NULL, *complete = NULL;
	uint64_t end_ns = opt->to_ns ? opt->to_ns : cli_now_ns();
	for (size_t i = 0; i < f->n; i++)
		ask[i] = 1;
	if (!f->clickhouse || !where || !sql || opt->community_id ||
	    ch_target_parse(f->clickhouse, &t, err, sizeof(err)) != 0 ||
	    rows_where(opt->filter, opt->from_ns, opt->to_ns, where, WHERE_MAX + 256) != 0)
		goto out; /* (a Community ID query runs a filter the sensor builds) */
	snprintf(sql, WHERE_MAX + 512, "SELECT DISTINCT sensor FROM %s.%s WHERE %s", t.db, t.table,
	         where);
	if (ch_ask(&t, sql, &matched, err) == 0) {
		snprintf(sql, WHERE_MAX + 512,
		         "SELECT sensor, max(value) FROM %s.%s_counters WHERE name = "
		         "'flow_export.through_seconds' GROUP BY sensor",
		         t.db, t.table);
		if (ch_ask(&t, sql, &complete, err) != 0)
			free(matched), matched = NULL;
	}
	if (!matched) {
		cli_warn(cmd, "%s: asking every sensor", err);
		goto out;
	}
	unmatched(f, matched, ask);
	vouched(f, complete, end_ns, ask);
	narrow_note(cmd, f, ask, end_ns);
out:
	free(matched);
	free(complete);
	free(where);
	free(sql);
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += ask[i] != 0;
	return n;
}

/* ---- flows --fleet ------------------------------------------------------------------------ */

#define FLOWS_COLUMNS                                                                             \
	"sensor, proto, hex(addr_a), port_a, hex(addr_b), port_b, vlan, vlan_inner, "             \
	"min(first_ns) AS f, max(last_ns), sum(packets_ab), sum(packets_ba), sum(bytes_ab) AS "   \
	"ba, "                                                                                    \
	"sum(bytes_ba) AS bb, groupBitOr(tcp_flags_ab), groupBitOr(tcp_flags_ba), max(trigger), " \
	"max(reason)"

/* The 16 bytes of 32 hex digits. */
static int unhex16(const char *h, uint8_t *out)
{
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/*
 * A TabSeparated field's text as it was stored, in place: ClickHouse writes
 * \b \f \r \n \t \0 \' and \\ for those bytes (a NUL ends the text here).
 */
static char *tsv_unescape(char *s)
{
	static const char from[] = "bfrnt0", to[] = "\b\f\r\n\t";
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r == '\\' && r[1]) {
			const char *k = strchr(from, *++r);
			if (k && *k == '0')
				break;
			*w++ = k ? to[k - from] : *r;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return s;
}

/* A row's fields (tab-separated, as FLOWS_COLUMNS) into f, its sensor and trigger text. */
static int row_parse(char *line, struct archive_flow_info *f, char **sensor, char *trigger,
                     size_t tlen)
{
	char *col[18];
	int n = 0;
	for (char *p = line; n < 18; n++) {
		col[n] = p;
		p += strcspn(p, "\t");
		if (!*p) {
			n++;
			break;
		}
		*p++ = '\0';
	}
	if (n != 18 || unhex16(col[2], f->key.a) || unhex16(col[4], f->key.b))
		return -1;
	*sensor = col[0];
	f->key.proto = (uint8_t)strtoul(col[1], NULL, 10);
	f->key.port_a = (uint16_t)strtoul(col[3], NULL, 10);
	f->key.port_b = (uint16_t)strtoul(col[5], NULL, 10);
	f->key.vlan = (uint16_t)strtoul(col[6], NULL, 10);
	f->key.vlan_inner = (uint16_t)strtoul(col[7], NULL, 10);
	f->first_ns = strtoull(col[8], NULL, 10);
	f->last_ns = strtoull(col[9], NULL, 10);
	for (int d = 0; d < 2; d++) {
		f->packets[d] = strtoull(col[10 + d], NULL, 10);
		f->bytes[d] = strtoull(col[12 + d], NULL, 10);
		f->tcp_flags[d] = (uint8_t)strtoul(col[14 + d], NULL, 10);
	}
	snprintf(trigger, tlen, "%s%s%s", tsv_unescape(col[16]), col[17][0] ? ": " : "",
	         tsv_unescape(col[17]));
	return 0;
}

static void flow_print(const char *sensor, const struct archive_flow_info *f, const char *trig,
                       int json)
{
	struct query_flow_text x;
	query_flow_fields(NULL, f, &x);
	if (!json) {
		printf("%-12s %-30s %10.3f %-5s %-40s %-40s %-9s %8" PRIu64 " %8" PRIu64
		       " %11" PRIu64 " %11" PRIu64 " %-8s %s\n",
		       sensor, x.first, (double)(f->last_ns - f->first_ns) / 1e9, x.proto, x.a, x.b,
		       x.vlan, f->packets[0], f->packets[1], f->bytes[0], f->bytes[1], x.flags,
		       trig[0] ? trig : "-");
		return;
	}
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:f, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:s, s:s?, s:s}",
	    "sensor", sensor, "first", x.first, "last", x.last, "duration",
	    (double)(f->last_ns - f->first_ns) / 1e9, "proto", x.proto, "a", x.a, "b", x.b, "vlan",
	    (int)f->key.vlan, "vlan_inner", (int)f->key.vlan_inner, "packets_ab",
	    (json_int_t)f->packets[0], "packets_ba", (json_int_t)f->packets[1], "bytes_ab",
	    (json_int_t)f->bytes[0], "bytes_ba", (json_int_t)f->bytes[1], "tcp_flags", x.flags,
	    "community_id", strcmp(x.community_id, "-") ? x.community_id : NULL, "trigger", trig);
	if (o) {
		json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(o);
	}
}

int fleet_flows(const char *cmd, const struct fleet *f, const char *filter, uint64_t from_ns,
                uint64_t to_ns, int json, uint64_t top)
{
	struct ch_target t;
	char err[CH_ERRBUF], *where = malloc(WHERE_MAX + 256), *sql = malloc(WHERE_MAX + 1024),
	                     *ans = NULL, tail[64] = "ORDER BY f, sensor";
	int status = EXIT_FAIL, r;
	if (!f->clickhouse) {
		cli_error(cmd, "--fleet: the fleet file names no clickhouse = URL (docs/fleet.md)");
		status = EXIT_USAGE;
	} else if (!where || !sql || ch_target_parse(f->clickhouse, &t, err, 128) != 0) {
		cli_error(cmd, "out of memory");
	} else if ((r = rows_where(filter, from_ns, to_ns, where, WHERE_MAX + 256)) != 0 &&
	           (r < 0 || (filter && filter[0]))) {
		cli_error(cmd, r < 0
		                   ? "the filter is too long for ClickHouse"
		                   : "this filter cannot be answered from flow rows (hosts, nets, "
		                     "ports, ICMP/TCP/UDP/SCTP, VLANs can): use query --fleet");
		status = EXIT_USAGE;
	} else {
		if (top)
			snprintf(tail, sizeof(tail), "ORDER BY ba + bb DESC, f LIMIT %" PRIu64,
			         top);
		snprintf(sql, WHERE_MAX + 1024,
		         "SELECT " FLOWS_COLUMNS
		         " FROM %s.%s WHERE %s GROUP BY sensor, proto, addr_a, "
		         "port_a, addr_b, port_b, vlan, vlan_inner %s",
		         t.db, t.table, where, tail);
		if (ch_ask(&t, sql, &ans, err) != 0) {
			cli_error(cmd, "%s", err);
		} else {
			status = EXIT_OK;
			if (!json)
				printf("%-12s %-30s %10s %-5s %-40s %-40s %-9s %8s %8s %11s %11s "
				       "%-8s %s\n",
				       "sensor", "first", "duration", "proto", "a", "b", "vlan",
				       "pkts>", "pkts<", "bytes>", "bytes<", "flags", "trigger");
			for (char *l = strtok(ans, "\n"); l; l = strtok(NULL, "\n")) {
				struct archive_flow_info fl = {0};
				char *sensor, trig[512];
				if (row_parse(l, &fl, &sensor, trig, sizeof(trig)) == 0)
					flow_print(sensor, &fl, trig, json);
			}
		}
	}
	free(ans);
	free(where);
	free(sql);
	return status;
}
