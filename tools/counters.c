/*
 * The counter tables of counters.h and their printer.  Each entry names a
 * field of a statistics struct (offsetof and size), so a counter added to a
 * struct is printed once it has a row here, and a row here needs a row in
 * docs/counters.md (tests/e2e/counters.sh fails otherwise).
 */
#include <inttypes.h>
#include <string.h>

#include "tools/counters.h"

#define FIELD(type, name, field)                                              \
	{                                                                     \
		name, offsetof(type, field), sizeof(((type *)0)->field), NULL \
	}
#define DERIVED(name, fn)      \
	{                      \
		name, 0, 0, fn \
	}
#define COUNT(t) (sizeof(t) / sizeof((t)[0]))

static uint64_t ingest_drops(const void *stats)
{
	return ingest_stats_drops(stats);
}

#define I(name, field) FIELD(struct ingest_stats, name, field)
const struct counter counters_ingest[] = {
    I("packets", packets),
    I("wire_bytes", wire_bytes),
    I("captured_bytes", bytes),
    DERIVED("drops", ingest_drops),
    I("dropped_kernel", dropped_kernel),
    I("dropped_iface", dropped_iface),
    I("imissed", imissed),
    I("ierrors", ierrors),
    I("rx_nombuf", rx_nombuf),
    I("dropped_oversize", dropped_oversize),
    I("dropped_time", dropped_time),
    I("dropped_qq", dropped_qq),
    I("truncated_records", truncated_records),
};

#define Q(name, field) FIELD(struct qq_stats, name, field)
const struct counter counters_qq[] = {
    Q("size_bytes", capacity),
    Q("chunks", chunks),
    Q("packets", enqueued_packets),
    Q("captured_bytes", enqueued_bytes),
    Q("overwritten_packets", overwritten_packets),
    Q("overwritten_chunks", overwritten_chunks),
    Q("overwritten_bytes", overwritten_bytes),
    Q("dropped_busy", dropped_packets),
    Q("backpressure_waits", backpressure_waits),
    Q("prefaulted_bytes", prefaulted_bytes),
    Q("prefault_failed", prefault_failed),
};

#define F(name) FIELD(struct counters_flowtrack, #name, name)
const struct counter counters_analyzer[] = {F(packets), F(flows), F(evicted)};
const struct counter counters_flows[] = {F(packets), F(flows), F(evicted),
                                         F(split_across_analyzers)};

#define M(name) FIELD(struct ft_engine_stats, #name, name)
const struct counter counters_module[] = {
    M(packets), M(flows), M(triggers), M(expired), M(evicted), M(bad_filters), M(errors),
};

#define W(name, field) FIELD(struct counters_writer, name, field)
const struct counter counters_archive[] = {
    W("packets", w.packets),
    W("wire_bytes", w.wire_bytes),
    W("segments", w.segments),
    W("frames", w.frames),
    W("commits", w.commits),
    W("pcap_bytes", w.record_bytes),
    W("file_bytes", w.file_bytes),
    W("dropped_oversize", dropped_oversize),
    W("dropped_time", dropped_time),
    W("unstored_packets", w.unstored_packets),
    W("unstored_bytes", w.unstored_bytes),
    W("full_events", w.full_events),
    W("max_writes_in_flight", w.io_max_inflight),
};

#define D(name) FIELD(struct counters_dumper, #name, name)
const struct counter counters_dump[] = {D(rules_added), D(triggered_packets),
                                        D(unselected_packets)};

#define R(name) FIELD(struct counters_retention, #name, name)
const struct counter counters_ret[] = {R(dropped_segments), R(dropped_bytes), R(archive_bytes),
                                       R(dropped_pinned_segments)};

#define T(name) FIELD(struct counters_trigger, #name, name)
const struct counter counters_trig[] = {
    T(api_requests), T(eve_requests), T(refused), T(flows),         T(reached_back_packets),
    T(too_late),     T(pending),      T(active),  T(marked_records)};

#define E(name) FIELD(struct counters_eve, #name, name)
const struct counter counters_eve[] = {E(lines),     E(alerts),      E(skipped),
                                       E(malformed), E(filtered),    E(too_long),
                                       E(rotations), E(truncations), E(open_errors)};

#define X(name) FIELD(struct counters_ipfix, #name, name)
const struct counter counters_ipfix[] = {X(messages), X(records), X(templates), X(send_errors)};

#define FX(name) FIELD(struct counters_flow_export, #name, name)
const struct counter counters_fx[] = {FX(rows),
                                      FX(batches),
                                      FX(segments),
                                      FX(skipped_batches),
                                      FX(missed_segments),
                                      FX(pending_segments),
                                      FX(errors),
                                      FX(report_rows),
                                      FX(through_seconds)};

const struct counter counters_mon[] = {FIELD(struct counters_monitor, "triggers", triggers)};

const size_t counters_ingest_n = COUNT(counters_ingest), counters_qq_n = COUNT(counters_qq),
             counters_analyzer_n = COUNT(counters_analyzer),
             counters_flows_n = COUNT(counters_flows), counters_module_n = COUNT(counters_module),
             counters_archive_n = COUNT(counters_archive), counters_dump_n = COUNT(counters_dump),
             counters_ret_n = COUNT(counters_ret), counters_mon_n = COUNT(counters_mon),
             counters_trig_n = COUNT(counters_trig), counters_eve_n = COUNT(counters_eve),
             counters_ipfix_n = COUNT(counters_ipfix), counters_fx_n = COUNT(counters_fx);

uint64_t counter_value(const struct counter *c, const void *stats)
{
	const char *p = (const char *)stats + c->offset;
	if (c->size == sizeof(uint32_t)) {
		uint32_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	if (c->size == sizeof(uint64_t)) {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	return c->derived(stats);
}

void counters_print(FILE *f, const char *prefix, const struct counter *t, size_t n,
                    const void *stats, int first)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s.%s=%" PRIu64, first && i == 0 ? "" : " ", prefix, t[i].name,
		        counter_value(&t[i], stats));
}

void counters_print_line(FILE *f, const char *prefix, const struct counter *t, size_t n,
                         const void *stats)
{
	counters_print(f, prefix, t, n, stats, 1);
	fputc('\n', f);
}
