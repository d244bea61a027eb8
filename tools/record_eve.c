/*
 * record --eve FILE: an IDS reaches back in time.  A thread follows the
 * detector's alert log as `tail -F` does (ingest_follow_*), parses each line
 * as a Suricata EVE record or, failing that, a Zeek notice (ingest/eve.c),
 * and hands every alert --eve-filter passes to record_trigger() as a
 * trigger from outside: the flow's packets still in the ring, from before
 * the alert, are archived with its later ones.  A line that cannot be used
 * is counted and logged (the first few), never fatal.  The mapping of an
 * alert to a flow is docs/triggers.md's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/record.h"

#define CMD "record"
#define EVE_WAIT_MS 100      /* the thread looks at its stop flag this often */
#define EVE_LOGGED_ERRORS 10 /* malformed lines logged with their reason; later ones counted */

/* relaxed: counters */
static void count(atomic_ulong *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The alert's 5-tuple as a canonical key (VLAN ids as the alert lists them). */
static void alert_key(const struct ingest_eve_alert *a, struct ft_flow_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->a, a->src, 16);
	memcpy(k->b, a->dest, 16);
	k->port_a = a->src_port;
	k->port_b = a->dest_port;
	k->proto = a->proto;
	k->vlan = a->n_vlan > 0 ? a->vlan[0] : 0;
	k->vlan_inner = a->n_vlan > 1 ? a->vlan[1] : 0;
	ft_flow_key_canonical(k);
}

/*
 * The trigger an alert asks for: its 5-tuple with the VLAN ids it lists; a
 * Zeek notice (no VLAN said) by the 5-tuple's Community ID, which matches
 * the flow on any VLAN (ICMP, which a Community ID trigger does not take:
 * untagged); only a community_id: that.
 */
static void alert_trigger(const struct ingest_eve_alert *a, struct ft_trigger *t,
                          char cid[FT_COMMUNITY_ID_LEN])
{
	memset(t, 0, sizeof(*t));
	if (a->family == AF_UNSPEC) {
		t->community_id = a->community_id;
		return;
	}
	alert_key(a, &t->key);
	t->has_key = 1;
	if (!a->vlan_known && a->proto != 1 && a->proto != 58 &&
	    ft_community_id(&t->key, 0, cid) == 0) {
		t->has_key = 0;
		t->community_id = cid;
	}
}

static void eve_trigger(struct record_pipeline *pl, const struct ingest_eve_alert *a)
{
	struct ft_trigger t;
	struct ft_trigger_result res;
	char cid[FT_COMMUNITY_ID_LEN], name[INGEST_EVE_SIGNATURE_MAX + 32], err[256];
	alert_trigger(a, &t, cid);
	if (a->source == INGEST_EVE_ZEEK)
		snprintf(name, sizeof(name), "zeek: %s", a->signature);
	else if (a->signature[0])
		snprintf(name, sizeof(name), "eve: %s", a->signature);
	else
		snprintf(name, sizeof(name), "eve: sid %u", a->sid);
	int r = record_trigger(pl, &t, name, &res, err, sizeof(err));
	if (r && r != FT_E_STOPPING) /* refusals are counted (trigger.refused) */
		cli_warn(CMD, "eve %s: the alert '%s' could not trigger: %s", pl->o.eve, name, err);
}

static void eve_malformed(struct record_pipeline *pl, const char *why)
{
	unsigned long n = atomic_fetch_add_explicit(&pl->eve_malformed, 1, memory_order_relaxed);
	if (n < EVE_LOGGED_ERRORS)
		cli_warn(CMD, "eve %s: a line skipped: %s%s", pl->o.eve, why,
		         n + 1 == EVE_LOGGED_ERRORS
		             ? " (further ones are only counted: eve.malformed)"
		             : "");
}

/* One line: an EVE record, else a Zeek notice; the EVE parser's reason when neither. */
static void eve_line(struct record_pipeline *pl, const char *line, size_t len)
{
	struct ingest_eve_alert a;
	char err[256], zerr[256];
	int r = ingest_eve_parse(line, len, &a, err, sizeof(err));
	if (r == INGEST_E_MALFORMED) {
		int z = ingest_zeek_notice_parse(line, len, &a, zerr, sizeof(zerr));
		if (z >= 0)
			r = z;
	}
	if (r < 0)
		eve_malformed(pl, err);
	else if (r == 0)
		count(&pl->eve_skipped);
	else {
		count(&pl->eve_alerts);
		if (ingest_eve_filter_match(pl->o.eve_filter, &a))
			eve_trigger(pl, &a);
		else
			count(&pl->eve_filtered);
	}
}

static void *eve_thread(void *arg)
{
	struct record_pipeline *pl = arg;
	const char *line;
	size_t len;
	while (!atomic_load(&pl->eve_stop)) /* seq_cst: pairs with record_eve_stop's store */
		if (ingest_follow_next(pl->eve, &line, &len, EVE_WAIT_MS) == 1)
			eve_line(pl, line, len);
	return NULL;
}

int record_eve_open(struct record_pipeline *pl)
{
	char err[INGEST_ERRBUF_SIZE];
	if (!pl->o.eve)
		return 0;
	struct ingest_follow_opts fo = {.from_start = pl->o.eve_from_start};
	int r = ingest_follow_open(pl->o.eve, &fo, &pl->eve, err);
	if (r) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s: %s", pl->o.eve, strerror(-r));
		cli_error(CMD,
		          "--eve: %s: give a file in a directory the user who parses packets "
		          "can read",
		          err);
		return EXIT_FAIL;
	}
	return 0;
}

int record_eve_start(struct record_pipeline *pl)
{
	if (!pl->eve)
		return 0;
	int r = pthread_create(&pl->eve_thread, NULL, eve_thread, pl);
	if (r)
		return -r;
	pl->eve_running = 1;
	return 0;
}

void record_eve_stop(struct record_pipeline *pl)
{
	if (!pl->eve_running)
		return;
	atomic_store(&pl->eve_stop, 1);
	pthread_join(pl->eve_thread, NULL);
	pl->eve_running = 0;
}

void record_eve_close(struct record_pipeline *pl)
{
	record_eve_stop(pl);
	ingest_follow_close(pl->eve);
	pl->eve = NULL;
}

void record_eve_counters(struct record_pipeline *pl, struct counters_eve *c)
{
	struct ingest_follow_stats st = {0};
	if (pl->eve)
		ingest_follow_stats(pl->eve, &st);
	*c = (struct counters_eve){
	    .lines = st.lines,
	    .alerts = atomic_load_explicit(&pl->eve_alerts, memory_order_relaxed),
	    .skipped = atomic_load_explicit(&pl->eve_skipped, memory_order_relaxed),
	    .malformed = atomic_load_explicit(&pl->eve_malformed, memory_order_relaxed),
	    .filtered = atomic_load_explicit(&pl->eve_filtered, memory_order_relaxed),
	    .too_long = st.too_long,
	    .rotations = st.rotations,
	    .truncations = st.truncations,
	    .open_errors = st.open_errors};
}
