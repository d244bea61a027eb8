/*
 * tools/fleet: a fleet of sensors for `query --fleet FILE` (docs/fleet.md):
 * the file (INI, read by libinih) names each sensor's API URL and the
 * client certificate to reach it; the query asks every sensor at once
 * (remote_query_many) and merges their answers by timestamp (query_merge),
 * saying which sensors failed.
 *
 * Lifecycle: fleet_load() -> fleet_query()... -> fleet_free().  One thread.
 * Errors: fleet_load returns 0 or EXIT_USAGE/EXIT_FAIL with one line printed.
 */
#ifndef FLOWSCOPE_TOOLS_FLEET_H
#define FLOWSCOPE_TOOLS_FLEET_H

#include <stddef.h>

#include "query/query.h"
#include "tools/remote.h"

struct fleet_sensor {
	char *name;
	char *url;
	struct remote_tls tls; /* its strings owned here */
};

struct fleet {
	struct fleet_sensor *v;
	size_t n;
	char *clickhouse; /* `clickhouse = URL` (the flow rows, docs/clickhouse.md), or NULL */
};

/* Reads the fleet file at path (cmd names the command in error lines). */
int fleet_load(const char *cmd, const char *path, struct fleet *f);

void fleet_free(struct fleet *f);

/*
 * Asks every sensor for opt's query (filter, from/to, community_id) and
 * writes the merged answer to opt->out in opt->format (pcap or pcapng: an
 * interface per sensor).  A sensor that fails is one line on stderr naming
 * it; its whole packets that arrived are kept.  Returns EXIT_OK, EXIT_DAMAGED
 * (some sensors failed: the answer is partial), EXIT_USAGE (every sensor
 * refused the query: a bad filter), or EXIT_FAIL (none answered; output
 * failed).
 */
int fleet_query(const char *cmd, const struct fleet *f, const struct query_options *opt,
                int all_sensors);

/*
 * The sensors a query must ask (ask[i] 1; docs/fleet.md): all, unless the
 * fleet's ClickHouse vouches that some hold no packet it selects (no
 * matching flow row, rows complete past the range's end); a line saying
 * which were left out.  Returns how many to ask.
 */
size_t fleet_narrow(const char *cmd, const struct fleet *f, const struct query_options *opt,
                    int *ask);

/*
 * `flows --fleet`: the flows of the fleet's ClickHouse rows that the filter
 * (NULL: all) selects in [from_ns, to_ns), merged per sensor and flow, as
 * `flows` prints them (json: one JSON object a line) with the sensor first.
 * Returns EXIT_OK, EXIT_USAGE (no clickhouse in the file; a filter the rows
 * cannot answer), EXIT_FAIL (ClickHouse failed: one line).
 */
int fleet_flows(const char *cmd, const struct fleet *f, const char *filter, uint64_t from_ns,
                uint64_t to_ns, int json, uint64_t top);

#endif
