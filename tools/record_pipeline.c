/*
 * The recording pipeline's threads.
 *
 *   queue threads (one per source RX queue): ingest_source_run() -> QQ producer
 *   analyzer threads: QQ peek -> parse -> flow key -> own flow table
 *                     (producer q's chunks go to analyzer q % analyzers, so
 *                     with symmetric RSS/fanout every flow has one analyzer)
 *   dumper threads:   QQ dequeue (above the high-water mark, or draining) ->
 *                     archive_writer_dump_chunk() (rules, writer) -> segments + index
 *
 * Order: every QQ producer is opened before any thread starts (the QQ counts
 * "no producer open" as finished).  Shutdown keeps every packet: sources stop
 * and their threads close their producers (publishing the last chunks), the
 * analyzers finish every chunk, the QQ is drained to the dumper, the writer
 * flushes (sync + commit) and finally seals its segment.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/record.h"

#define CMD "record"
#define WAIT_MS 50
/* an idle analyzer's wait with triggers from outside: how long a trigger may wait for it */
#define TRIGGER_WAIT_MS 5

/* ---- threads ------------------------------------------------------------------------------ */

static void *queue_thread(void *arg)
{
	struct record_queue *q = arg;
	struct record_pipeline *pl = q->pl;
	q->rc = ingest_source_run(pl->src, q->id, q->producer, q->err);
	qq_producer_close(q->producer); /* publishes the last chunk */
	q->producer = NULL;
	if (q->rc && q->rc != INGEST_E_DAMAGED)
		atomic_store(&pl->failed, 1);
	atomic_fetch_sub(&pl->queues_running, 1);
	return NULL;
}

/* A range of records: flow tracking per packet, the modules a burst at a time. */
static void analyze_range(struct record_analyzer *a, const struct qq_peek *pk)
{
	struct capture_burst b;
	b.n = 0;
	for (uint32_t i = pk->first; i < pk->end; i++) {
		struct qq_record *rec = qq_chunk_record(pk->chunk, i);
		int linktype = ingest_source_link(a->pl->src, rec->link).linktype;
		if (rec->ts_ns > a->clock_ns) /* capture time, for a file's --ipfix timeouts */
			a->clock_ns = rec->ts_ns;
		capture_analyze(a, &b, linktype, rec->ts_ns, rec->caplen, rec->wirelen, rec->data,
		                &rec->flow_hash, qq_record_note(rec));
	}
	capture_analyze_flush(a, &b);
}

/*
 * The checker's clock: capture time, and for live sources also the wall
 * clock, so flows on a quiet link still expire.
 */
static void analyzer_tick(struct record_analyzer *a)
{
	if (a->engine)
		ft_engine_tick(a->engine, a->pl->o.read ? 0 : cli_now_ns());
	if (a->triggers) /* a file's flows end with the recording (ft_trigger_poll) */
		ft_trigger_poll(a->triggers, a->id, a->flows, cli_now_ns(),
		                a->pl->o.read ? 0 : FT_TRIGGER_IDLE_NS);
	record_ipfix_tick(a); /* --ipfix: flows past their timeouts to the collector */
}

/* record --listen: a copy of what this analyzer counts, for GET /metrics (record.h). */
static void analyzer_publish(struct record_analyzer *a)
{
	struct record_pipeline *pl = a->pl;
	struct ft_table_stats ts;
	struct ft_engine_stats m[RECORD_MAX_MODULES];
	unsigned nm = pl->mods ? ft_modset_count(pl->mods) : 0;
	if (!pl->o.api.listen && !pl->o.flow_export) /* for GET /metrics, the counters rows */
		return;
	ft_table_stats(a->flows, &ts);
	for (unsigned i = 0; i < nm; i++)
		ft_engine_stats(a->engine, i, &m[i]);
	pthread_mutex_lock(&pl->live_lock);
	pl->live_ana[a->id] = (struct counters_flowtrack){
	    .packets = a->packets, .flows = ts.inserted, .evicted = ts.evicted};
	memcpy(pl->live_mod[a->id], m, nm * sizeof(m[0]));
	pthread_mutex_unlock(&pl->live_lock);
}

static void *analyzer_thread(void *arg)
{
	struct record_analyzer *a = arg;
	for (;;) {
		struct qq_peek pk;
		int r = qq_analyzer_next(a->pl->qq, a->id, &pk,
		                         a->triggers ? TRIGGER_WAIT_MS : WAIT_MS);
		service_beat(&a->beat);
		if (r == QQ_E_TIMEDOUT) {
			analyzer_tick(a);
			analyzer_publish(a);
			continue;
		}
		if (r)
			return NULL; /* drained, or stopped after a failure */
		analyze_range(a, &pk);
		qq_analyzer_done(a->pl->qq, &pk);
		analyzer_tick(a);
		analyzer_publish(a);
	}
}

static struct archive_dump_link dump_link(void *arg, unsigned no)
{
	struct ingest_link l = ingest_source_link(arg, no);
	return (struct archive_dump_link){.linktype = l.linktype, .snaplen = l.snaplen};
}

/* Every packet of the chunk into the dumper's writer (archive_writer_dump_chunk). */
static int dump_chunk(struct record_dumper *d, struct qq_chunk *c)
{
	struct record_pipeline *pl = d->pl;
	struct archive_dump_opts o = {.view = d->view,
	                              .triggered_only = pl->o.triggered,
	                              .link = dump_link,
	                              .link_arg = pl->src,
	                              .parsed = 1};
	struct archive_dump_stats st = {0};
	int r = archive_writer_dump_chunk(d->writer, c, &o, &st);
	d->selected += st.selected;
	d->skipped += st.skipped;
	d->oversize += st.oversize;
	d->untimed += st.untimed;
	return r;
}

static void dumper_retention(struct record_dumper *d);

/* Publishes the writer's state; says when its disk filled up or has room again. */
static void dumper_publish(struct record_dumper *d)
{
	struct archive_writer_stats ws;
	archive_writer_stats(d->writer, &ws);
	atomic_store_explicit(&d->segments, ws.segments, memory_order_relaxed);
	atomic_store_explicit(&d->full, ws.full, memory_order_relaxed);
	if (d->pl->o.api.listen || d->pl->o.flow_export) { /* GET /metrics, counters rows */
		struct record_dumper_live l = {.w = ws,
		                               .selected = d->selected,
		                               .skipped = d->skipped,
		                               .oversize = d->oversize,
		                               .untimed = d->untimed};
		pthread_mutex_lock(&d->pl->live_lock);
		d->pl->live_dump[d->id] = l;
		pthread_mutex_unlock(&d->pl->live_lock);
	}
	if (ws.full_events > d->full_events) {
		d->full_events = ws.full_events;
		d->full_since = cli_mono_ns();
		cli_warn(CMD,
		         "archive: disk full (dumper %u): not storing packets until there is "
		         "room again; capture and analysis go on",
		         d->id);
	} else if (!ws.full && d->full_since) {
		cli_info(CMD,
		         "archive: room again (dumper %u) after %.1f s: storing again; %" PRIu64
		         " packets (%" PRIu64 " bytes) could not be stored so far",
		         d->id, (double)(cli_mono_ns() - d->full_since) / 1e9, ws.unstored_packets,
		         ws.unstored_bytes);
		d->full_since = 0;
	}
}

/* Keeps the dumper's error for the report; the first one stops the pipeline. */
static void dumper_failed(struct record_dumper *d, int r)
{
	struct record_pipeline *pl = d->pl;
	snprintf(d->err, sizeof(d->err), "archive %s: %s", pl->o.archive,
	         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
	d->rc = r;
	atomic_store(&pl->failed, 1);
	qq_stop(pl->qq); /* nothing more can be stored: unblock everyone */
}

static void *dumper_thread(void *arg)
{
	struct record_dumper *d = arg;
	struct record_pipeline *pl = d->pl;
	int r = 0;
	while (r == 0) {
		struct qq_chunk *c;
		r = qq_dumper_next(pl->qq, &c, WAIT_MS);
		service_beat(&d->beat);
		if (r == QQ_E_TIMEDOUT) {
			r = archive_writer_tick(d->writer, cli_mono_ns());
			dumper_publish(d);
			continue;
		}
		if (r)
			break;
		uint32_t n = qq_chunk_count(c);
		r = dump_chunk(d, c);
		qq_dumper_release(pl->qq, c);
		/* relaxed: only record_pipeline_pending() reads it, for a message */
		atomic_fetch_add_explicit(&d->dumped, n, memory_order_relaxed);
		dumper_publish(d);
		dumper_retention(d);
	}
	if (r == QQ_E_DRAINED || r == QQ_E_STOPPED)
		r = 0;
	/* the rest of what this dumper took is durable and indexed before it ends */
	if (r == 0)
		r = archive_writer_flush(d->writer);
	dumper_publish(d);
	if (r)
		dumper_failed(d, r);
	return NULL;
}

unsigned record_default_dumpers(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1;
}

/* ---- housekeeping: retention ------------------------------------------------------------------- */

#define HK_POLL_US 100000

static int retention_on(const struct record_pipeline *pl)
{
	return pl->o.max_disk || pl->o.max_age_ns;
}

/* One retention pass (archive_retention_keeper_pass); its first failure said once. */
static void retention_pass(struct record_pipeline *pl, int make_room)
{
	int first;
	int r = archive_retention_keeper_pass(pl->keeper, make_room, &first);
	if (first) /* once: it will be tried again */
		cli_warn(CMD, "archive: retention: %s",
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
}

/* Any dumper's disk full. */
static int any_full(struct record_pipeline *pl)
{
	int full = 0;
	for (unsigned i = 0; i < pl->ndumpers; i++)
		full |= atomic_load_explicit(&pl->dump[i].full, memory_order_relaxed);
	return full;
}

/* A dumper that just started a segment makes room first (bounding the overshoot). */
static void dumper_retention(struct record_dumper *d)
{
	struct record_pipeline *pl = d->pl;
	uint64_t segs = atomic_load_explicit(&d->segments, memory_order_relaxed);
	if (!retention_on(pl) || segs == d->ret_seen)
		return;
	d->ret_seen = segs;
	retention_pass(pl, 1);
}

/* Runs retention when the keeper says (every second), and every HK_POLL_US while a disk is
 * full, besides the dumpers' passes. */
static void *housekeeper_thread(void *arg)
{
	struct record_pipeline *pl = arg;
	while (!atomic_load(&pl->hk_stop)) {
		usleep(HK_POLL_US);
		if (archive_retention_keeper_due(pl->keeper, cli_mono_ns(), any_full(pl)))
			retention_pass(pl, 1);
	}
	return NULL;
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Chunks: a sixteenth of the ring, between 512 KiB (fits any packet) and 4 MiB. */
size_t record_chunk_size(uint64_t qq_size)
{
	uint64_t c = qq_size / 16;
	c = c < (512u << 10) ? (512u << 10) : c > (4u << 20) ? (4u << 20) : c;
	return (size_t)(c & ~(uint64_t)4095);
}

/*
 * The ring holds packets back for the modules: a trigger reaches the earlier
 * packets of its flow that are still there.  With no module nothing looks
 * back (nor a trigger from outside, record --listen in triggered capture),
 * and holding packets would only keep them from the archive (from
 * queries, and from the disk when the machine dies): on a quiet link a 90 %
 * mark can take hours to reach.
 */
/* Triggered capture with triggers from outside (the API, --eve): the ring holds packets back
   as with modules. */
static int record_listens_triggered(const struct record_pipeline *pl)
{
	return pl->o.triggered && (pl->o.api.listen || pl->o.eve);
}

double record_high_water(const struct record_pipeline *pl)
{
	if (pl->o.qq_high_water != HIGH_WATER_DEFAULT)
		return pl->o.qq_high_water;
	return pl->mods || record_listens_triggered(pl) ? 0.9 : QQ_NO_HOLD;
}

uint64_t record_hold_max(const struct record_pipeline *pl)
{
	if (pl->o.qq_hold_max_ns != HOLD_MAX_DEFAULT)
		return pl->o.qq_hold_max_ns;
	if (pl->o.read && !pl->o.replay_speed)
		return 0; /* chunk (so frame) boundaries must not depend on the clock */
	return record_high_water(pl) == QQ_NO_HOLD ? 1000000000ull : 60000000000ull;
}

static int qq_open(struct record_pipeline *pl)
{
	struct qq_config qc = {
	    .size = pl->o.qq_size,
	    .chunk_size = record_chunk_size(pl->o.qq_size),
	    .producers = pl->info.queues,
	    .analyzers = pl->nanalyzers,
	    .high_water = record_high_water(pl),
	    .flush_ns = pl->o.qq_flush_ns,
	    /* a file can wait; a wire cannot: live sources overwrite */
	    .mode = pl->o.read ? QQ_MODE_BACKPRESSURE : QQ_MODE_OVERWRITE,
	    .hugepages = 1,
	    .lazy = pl->o.read != NULL, /* a file can wait for a page fault */
	    /* the analyzers' parse, for the dumpers (archive_dump_opts.parsed) */
	    .note_size = sizeof(struct ft_packet)};
	/* held back by nothing: a file needs a few chunks in flight per thread */
	if (qc.high_water == QQ_NO_HOLD && pl->o.read)
		qc.max_used = 2 * (pl->info.queues + pl->nanalyzers + pl->ndumpers) + 2;
	qc.max_hold_ns = record_hold_max(pl);
	int r = qq_create(&qc, &pl->qq);
	if (r == QQ_E_NOMEM) {
		cli_error(CMD, "--qq-size %.1f MiB: cannot have that much RAM (%.1f MiB available)",
		          (double)pl->o.qq_size / 1048576, (double)qq_memory_available() / 1048576);
		return EXIT_FAIL;
	}
	if (r) {
		cli_error(CMD, "QQ: %s", qq_strerror(r));
		return EXIT_FAIL;
	}
	for (unsigned q = 0; q < pl->info.queues; q++) {
		pl->queue[q] = (struct record_queue){.pl = pl, .id = q};
		if ((r = qq_producer_open(pl->qq, q, &pl->queue[q].producer)) != 0) {
			cli_error(CMD, "QQ producer %u: %s", q, qq_strerror(r));
			return EXIT_FAIL;
		}
	}
	return 0;
}

/* ---- modules and dump rules ---------------------------------------------------------------- */

static void on_trigger(void *arg, unsigned module, const struct ft_flow_key *key,
                       enum ft_key_kind kind, unsigned key_flags, const char *filter,
                       uint64_t ts_ns)
{
	struct record_pipeline *pl = arg;
	(void)ts_ns;
	if (archive_rules_add(pl->rules, key, kind, key_flags, filter, pl->trigger_id[module]) == 0)
		atomic_fetch_add_explicit(&pl->triggers, 1, memory_order_relaxed);
}

static void on_expire(void *arg, unsigned module, const struct ft_flow_key *key,
                      enum ft_key_kind kind, unsigned key_flags, uint64_t last_seen_ns)
{
	struct record_pipeline *pl = arg;
	(void)module;
	/* every packet up to last_seen is in a chunk published before this point */
	archive_rules_expire(pl->rules, key, kind, key_flags, last_seen_ns, qq_published(pl->qq));
}

/* ---- triggers from outside (record --listen) ------------------------------------------------ */

static void on_outside_add(void *arg, const struct ft_flow_key *key, uint16_t tag)
{
	struct record_pipeline *pl = arg;
	if (archive_rules_add(pl->rules, key, FT_KEY_BIDIRECTIONAL, 0, NULL, tag) == 0)
		atomic_fetch_add_explicit(&pl->triggers, 1, memory_order_relaxed);
}

static void on_outside_expire(void *arg, const struct ft_flow_key *key, uint64_t last_seen_ns)
{
	struct record_pipeline *pl = arg;
	/* as on_expire: every packet up to last_seen is in a published chunk */
	archive_rules_expire(pl->rules, key, FT_KEY_BIDIRECTIONAL, 0, last_seen_ns,
	                     qq_published(pl->qq));
}

static void on_outside_window(void *arg, uint64_t *oldest_ns, uint64_t *newest_ns)
{
	struct record_pipeline *pl = arg;
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	*oldest_ns = qs.oldest_ns;
	*newest_ns = qs.newest_ns;
}

/* The hub of the analyzers' inboxes, when the API listens or an alert log is followed. */
static int triggers_open(struct record_pipeline *pl)
{
	struct ft_trigger_events ev = {.arg = pl,
	                               .add = on_outside_add,
	                               .expire = on_outside_expire,
	                               .window = on_outside_window};
	pthread_mutex_init(&pl->trig_lock, NULL);
	if (!pl->o.api.listen && !pl->o.eve)
		return 0;
	if (ft_trigger_hub_create(pl->nanalyzers, &ev, &pl->trig) != 0) {
		cli_error(CMD, "triggers: out of memory");
		return EXIT_FAIL;
	}
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		pl->ana[i].triggers = pl->trig;
	return 0;
}

/* The archive's id for trigger name `name` (the last one kept: most come in a row). */
static int trigger_tag(struct record_pipeline *pl, const char *name, uint16_t *tag)
{
	int r = 0;
	pthread_mutex_lock(&pl->trig_lock);
	if (!pl->trig_id || strcmp(pl->trig_name, name) != 0) {
		r = archive_trigger_id(pl->arch, name, &pl->trig_id);
		snprintf(pl->trig_name, sizeof(pl->trig_name), "%s", r ? "" : name);
		if (r)
			pl->trig_id = 0;
	}
	*tag = pl->trig_id;
	pthread_mutex_unlock(&pl->trig_lock);
	return r;
}

/*
 * Capture all: the flows' packets written before the trigger (the ring holds them a second
 * or so) are in records the writers committed without it: those get it now (the flows
 * listed in the answer, FT_TRIGGER_LISTED at most).  A failure is one warning line; the
 * trigger stands: its flows' later packets are tagged all the same.
 */
static void mark_written(struct record_pipeline *pl, const struct ft_trigger_result *res,
                         uint16_t tag)
{
	struct ft_flow_key keys[FT_TRIGGER_LISTED];
	uint64_t from[FT_TRIGGER_LISTED], marked = 0;
	unsigned n = 0;
	for (unsigned i = 0; i < res->listed && i < FT_TRIGGER_LISTED; i++) {
		keys[n] = res->match[i].key;
		from[n++] = res->match[i].first_ns;
	}
	if (n && archive_flows_mark(pl->arch, keys, from, n, tag, &marked) != 0)
		cli_warn(CMD, "trigger: the flows' records written before it are not marked: %s",
		         archive_errmsg());
	atomic_fetch_add_explicit(&pl->trig_marked, marked, memory_order_relaxed);
}

int record_trigger(void *arg, const struct ft_trigger *t, const char *name,
                   struct ft_trigger_result *res, char *err, size_t errlen)
{
	struct record_pipeline *pl = arg;
	struct ft_trigger req = *t;
	memset(res, 0, sizeof(*res));
	if (!pl->trig) {
		snprintf(err, errlen, "this recorder takes no triggers");
		return -ENOSYS;
	}
	int r = trigger_tag(pl, name, &req.tag);
	if (r) {
		snprintf(err, errlen, "archive: %s",
		         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		return -EIO;
	}
	r = ft_trigger_post(pl->trig, &req, cli_now_ns(), RECORD_TRIGGER_WAIT_NS, res, err, errlen);
	if (r == 0 && !pl->o.triggered)
		mark_written(pl, res, req.tag);
	if (r == 0) /* relaxed: counters */
		atomic_fetch_add_explicit(strncmp(name, "api", 3) == 0 ? &pl->trig_api
		                                                       : &pl->trig_eve,
		                          1, memory_order_relaxed);
	return r;
}

void record_trigger_counters(struct record_pipeline *pl, struct counters_trigger *c)
{
	struct ft_trigger_stats st;
	ft_trigger_stats(pl->trig, &st);
	*c = (struct counters_trigger){.api_requests = atomic_load(&pl->trig_api),
	                               .eve_requests = atomic_load(&pl->trig_eve),
	                               .refused = st.refused,
	                               .flows = st.flows,
	                               .reached_back_packets = st.packets,
	                               .too_late = st.too_late,
	                               .pending = st.pending,
	                               .active = st.active,
	                               .marked_records = atomic_load(&pl->trig_marked)};
}

/* Flow tables, and the modules' engines (their tables): all allocated before the archive is
 * touched, so that memory that is not there never leaves a half-made archive. */
static int analyzers_open(struct record_pipeline *pl)
{
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		pl->ana[i].pl = pl;
	int r = capture_analyzers_open(pl->ana, pl->nanalyzers, &pl->o, CMD);
	struct ft_engine_events ev = {.arg = pl, .trigger = on_trigger, .expire = on_expire};
	for (unsigned i = 0; r == 0 && pl->mods && i < pl->nanalyzers; i++)
		if ((r = ft_engine_create(pl->mods, i, pl->o.max_flows, &ev, &pl->ana[i].engine))) {
			cli_error(CMD, "modules: flow tables of %" PRIu64 " flows: %s",
			          pl->o.max_flows, ft_strerror(r));
			r = EXIT_FAIL;
		}
	return r ? r : triggers_open(pl);
}

/* Instances first: a bad module or filter must fail before the archive is touched. */
static int modules_create(struct record_pipeline *pl)
{
	unsigned want = pl->o.analyzers ? (unsigned)pl->o.analyzers : pl->info.queues;
	return capture_modules_create(
	    &pl->o, CMD, want > RECORD_MAX_ANALYZERS ? RECORD_MAX_ANALYZERS : want, &pl->mods);
}

/* Trigger ids in the archive, the rule table, the dumpers' views (the engines are made). */
static int modules_start(struct record_pipeline *pl)
{
	if (!pl->mods && !pl->trig)
		return 0; /* no rule will ever be added */
	int r = archive_rules_create(&pl->rules);
	for (unsigned i = 0; r == 0 && i < pl->ndumpers; i++)
		r = archive_rule_view_create(pl->rules, &pl->dump[i].view);
	if (r) {
		cli_error(CMD, "modules: dump rules: %s", strerror(-r));
		return EXIT_FAIL;
	}
	for (unsigned i = 0; r == 0 && i < pl->o.nmodules; i++)
		r = archive_trigger_id(pl->arch, pl->o.modules[i], &pl->trigger_id[i]);
	if (r) {
		cli_error(CMD, "modules: %s",
		          archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		return EXIT_FAIL;
	}
	return 0;
}

/* Where the open's lines go: held until record_pipeline_notes(), or stderr. */
static FILE *notes(struct record_pipeline *pl)
{
	return pl->notes ? pl->notes : stderr;
}

static void recover_log(const char *line, void *arg)
{
	/* what a crash left, and what became of it: a warning */
	cli_log_to(notes(arg), CLI_WARN, CMD, "archive: %s", line);
}

static int archive_setup(struct record_pipeline *pl)
{
	int r = archive_open(pl->o.archive, ARCHIVE_WRITE | ARCHIVE_CREATE, &pl->arch);
	struct archive_writer_config wc = {.segment_size = pl->o.segment_size,
	                                   .segment_age_ns = pl->o.segment_age_ns,
	                                   .zstd_level = pl->o.zstd_level};
	if (r == 0 && pl->o.archive_gid >= 0)
		r = archive_share(pl->arch, (gid_t)pl->o.archive_gid);
	if (r == 0)
		r = archive_recover(pl->arch, recover_log, pl, NULL); /* what a crash left */
	if (r == 0)
		r = archive_new_run(pl->arch, &wc.run);
	for (unsigned i = 0; r == 0 && i < pl->ndumpers; i++) {
		pl->dump[i] = (struct record_dumper){.pl = pl, .id = i};
		r = archive_writer_create(pl->arch, &wc, &pl->dump[i].writer);
	}
	if (r) {
		cli_error(CMD, "%s", archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		return EXIT_FAIL;
	}
	const char *note = archive_writer_io_note(pl->dump[0].writer);
	if (note)
		cli_log_to(notes(pl), CLI_INFO, CMD, "archive: %s", note);
	return 0;
}

int record_pipeline_open(struct record_pipeline *pl)
{
	pthread_mutex_init(&pl->live_lock, NULL);
	pl->notes = open_memstream(&pl->notes_text, &pl->notes_len); /* NULL: on stderr */
	/* the source first: a bad input must fail before the archive is touched */
	int r = capture_source_open(&pl->o, CMD, &pl->src, &pl->info);
	if (r)
		return r;
	unsigned want = pl->o.analyzers ? (unsigned)pl->o.analyzers : pl->info.queues;
	pl->nanalyzers = want > RECORD_MAX_ANALYZERS ? RECORD_MAX_ANALYZERS : want;
	/* compression is the dumpers' work: two overlap it with everything else (record_bench) */
	pl->ndumpers = pl->o.dumpers ? (unsigned)pl->o.dumpers : record_default_dumpers();
	if ((r = modules_create(pl)) != 0 || (r = qq_open(pl)) != 0 ||
	    (r = analyzers_open(pl)) != 0 || (r = record_ipfix_open(pl)) != 0)
		return r;
	if ((r = archive_setup(pl)) != 0 || (r = modules_start(pl)) != 0) {
		/* nothing recorded yet: an archive this run created goes again (writers first:
		   they use it) */
		record_pipeline_seal(pl);
		archive_close_discard(pl->arch);
		pl->arch = NULL;
	}
	return r;
}

int record_pipeline_start(struct record_pipeline *pl)
{
	uint64_t seg = pl->o.segment_size ? pl->o.segment_size : RECORD_SEGMENT_SIZE;
	if (retention_on(pl) &&
	    archive_retention_keeper_create(pl->arch, pl->o.max_disk, pl->o.max_age_ns,
	                                    pl->o.pin_triggered, seg, &pl->keeper) != 0) {
		cli_error(CMD, "cannot start retention: out of memory");
		return EXIT_FAIL;
	}
	pl->t_start_ns = cli_now_ns();
	atomic_store(&pl->queues_running, pl->info.queues);
	for (unsigned i = 0; i < pl->nanalyzers; i++)
		if (pthread_create(&pl->ana[i].thread, NULL, analyzer_thread, &pl->ana[i]) != 0)
			goto fail;
		else
			cli_name_thread(pl->ana[i].thread, "analyzer", (int)i);
	for (unsigned i = 0; i < pl->ndumpers; i++)
		if (pthread_create(&pl->dump[i].thread, NULL, dumper_thread, &pl->dump[i]) != 0)
			goto fail;
		else
			cli_name_thread(pl->dump[i].thread, "dumper", (int)i);
	if (retention_on(pl)) {
		if (pthread_create(&pl->housekeeper, NULL, housekeeper_thread, pl) != 0)
			goto fail;
		cli_name_thread(pl->housekeeper, "housekeeper", -1);
		pl->housekeeping = 1;
	}
	for (unsigned q = 0; q < pl->info.queues; q++)
		if (pthread_create(&pl->queue[q].thread, NULL, queue_thread, &pl->queue[q]) != 0)
			goto fail;
		else
			cli_name_thread(pl->queue[q].thread, "rx", (int)q);
	if ((errno = -record_eve_start(pl)) != 0 || (errno = -record_flowexport_start(pl)) != 0)
		goto fail;
	atomic_store(&pl->live_started, 1);
	return 0;
fail:
	cli_error(CMD, "cannot start threads: %s", strerror(errno));
	_exit(EXIT_FAIL); /* threads that did start may be blocked in the QQ */
}

uint64_t record_pipeline_pending(struct record_pipeline *pl)
{
	struct qq_stats qs;
	qq_stats(pl->qq, &qs);
	uint64_t done = qs.overwritten_packets;
	for (unsigned i = 0; i < pl->ndumpers; i++)
		done += atomic_load_explicit(&pl->dump[i].dumped, memory_order_relaxed);
	return qs.enqueued_packets > done ? qs.enqueued_packets - done : 0;
}

void record_pipeline_finish(struct record_pipeline *pl)
{
	for (unsigned q = 0; q < pl->info.queues; q++)
		pthread_join(pl->queue[q].thread, NULL);
	for (unsigned i = 0; i < pl->nanalyzers; i++) {
		pthread_join(pl->ana[i].thread, NULL);
		if (pl->ana[i].engine)
			ft_engine_finish(pl->ana[i].engine); /* last reports (stats) */
		analyzer_publish(&pl->ana[i]);
	}
	record_ipfix_finish(pl); /* the flows' last records: the analyzers are done with them */
	ft_trigger_hub_close(pl->trig); /* triggers from now on: 503, the recorder is stopping */
	record_eve_stop(pl);            /* (a trigger it waited on was answered) */
	qq_drain(pl->qq);
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		struct record_dumper *d = &pl->dump[i];
		pthread_join(d->thread, NULL);
		if (d->rc && !pl->dump_rc) {
			pl->dump_rc = d->rc;
			snprintf(pl->dump_err, sizeof(pl->dump_err), "%s", d->err);
		}
	}
	if (pl->housekeeping) {
		atomic_store(&pl->hk_stop, 1);
		pthread_join(pl->housekeeper, NULL);
		pl->housekeeping = 0;
	}
}

void record_pipeline_seal(struct record_pipeline *pl)
{
	int any = 0;
	for (unsigned i = 0; i < pl->ndumpers; i++) {
		struct record_dumper *d = &pl->dump[i];
		if (!d->writer)
			continue;
		any = 1;
		archive_writer_stats(d->writer, &d->final);
		int r = archive_writer_close(d->writer);
		if (r && !pl->dump_rc) {
			pl->dump_rc = r;
			snprintf(pl->dump_err, sizeof(pl->dump_err), "archive %s: %s",
			         pl->o.archive,
			         archive_errmsg()[0] ? archive_errmsg() : archive_strerror(r));
		}
		d->writer = NULL;
		archive_rule_view_destroy(d->view);
		d->view = NULL;
	}
	if (any && pl->keeper)
		retention_pass(pl, 0); /* the last segments are closed: they count now */
	if (pl->keeper) {
		struct archive_retention_totals t;
		archive_retention_keeper_totals(pl->keeper, &t);
		pl->ret_segments = t.segments;
		pl->ret_bytes = t.bytes;
		pl->ret_usage = t.usage;
	}
}

void record_pipeline_notes(struct record_pipeline *pl)
{
	if (!pl->notes)
		return;
	fclose(pl->notes);
	pl->notes = NULL;
	fputs(pl->notes_text, stderr);
	free(pl->notes_text);
	pl->notes_text = NULL;
}

void record_pipeline_close(struct record_pipeline *pl)
{
	record_pipeline_notes(pl);
	record_pipeline_seal(pl);
	record_flowexport_close(pl); /* (stopped already unless a failure came first) */
	archive_retention_keeper_destroy(pl->keeper);
	pl->keeper = NULL;
	archive_close(pl->arch);
	for (unsigned q = 0; q < INGEST_MAX_QUEUES; q++)
		if (pl->queue[q].producer)
			qq_producer_close(pl->queue[q].producer);
	record_ipfix_close(pl);
	for (unsigned i = 0; i < pl->nanalyzers; i++) {
		ft_table_destroy(pl->ana[i].flows);
		ft_engine_destroy(pl->ana[i].engine);
	}
	record_eve_close(pl);
	ft_trigger_hub_destroy(pl->trig);
	pl->trig = NULL;
	archive_rules_destroy(pl->rules);
	ft_modset_destroy(pl->mods);
	qq_destroy(pl->qq);
	ingest_source_close(pl->src);
}
