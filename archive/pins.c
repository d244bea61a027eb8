/*
 * Triggered flows kept: a trigger that comes after a flow's packets were
 * written (capture all: the ring held them a second or so) marks the flow's
 * records in the segments already closed or committed, and retention with
 * pins (archive_retention.pin_triggered) tells the segments that hold a
 * triggered flow from the others by those records.
 *
 * A mark is one write transaction over the segments whose packets reach the
 * flow's first packet time: each one's record of the flow, when it has one
 * and no trigger yet, gets the trigger.  LMDB orders it with the writer's
 * own commits, and the writer keeps a trigger it finds in a record it adds
 * to (put_flow), so neither undoes the other.  A trigger once in a record
 * is never taken out of it: a segment found pinned stays pinned.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_pvt.h"

/* ---- which segments hold a triggered flow ---------------------------------------------- */

static int stop_at_trigger(const struct archive_flow_info *f, void *arg)
{
	(void)arg;
	return f->trigger ? 1 : 0;
}

int archive__seg_pinned(struct archive *a, uint64_t id)
{
	struct archive_rtxn *t;
	int r = archive_rtxn_begin(a, &t);
	if (r)
		return r;
	r = archive_flows(t, id, stop_at_trigger, NULL); /* 1: a trigger found */
	archive_rtxn_end(t);
	return r;
}

/* ---- marking a flow after the fact ------------------------------------------------------- */

struct mark {
	struct archive *a;
	MDB_txn *txn;
	const struct ft_flow_key *keys; /* canonical */
	const uint64_t *from_ns;
	size_t n;
	uint16_t trigger;
	uint64_t marked;
};

/*
 * Gives segment seg's record of flow `key` the trigger, if it has one and no trigger yet.
 * An IPv4 flow's record in a segment that format 3 wrote has the long key.
 */
static int mark_segment(struct mark *m, uint64_t seg, const struct ft_flow_key *key)
{
	uint8_t kb[FLOW_KEY_LEN], vb[FLOW_REC_MAX];
	MDB_val k = {.mv_size = archive__flow_key_put(seg, key, 0, kb), .mv_data = kb}, v;
	int rc = mdb_get(m->txn, m->a->db_flows, &k, &v);
	if (rc == MDB_NOTFOUND && k.mv_size != FLOW_KEY_LEN) {
		k.mv_size = archive__flow_key_put(seg, key, 1, kb);
		rc = mdb_get(m->txn, m->a->db_flows, &k, &v);
	}
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return archive__lmdb_fail(rc, "read flow");
	struct archive_flow_info f;
	int r = archive__flow_decode(&k, &v, &f);
	if (r || f.trigger)
		return r;
	f.trigger = m->trigger;
	v.mv_size = archive__flow_encode(&f, vb);
	v.mv_data = vb;
	if ((rc = mdb_put(m->txn, m->a->db_flows, &k, &v, 0)) != 0)
		return archive__lmdb_fail(rc, "write flow");
	m->marked++;
	return 0;
}

/* Segment s's records of the flows whose first packet it reaches. */
static int mark_in(const struct archive_segment_info *s, void *arg)
{
	struct mark *m = arg;
	int r = 0;
	for (size_t i = 0; i < m->n && r == 0; i++)
		if (s->max_ns >= m->from_ns[i])
			r = mark_segment(m, s->id, &m->keys[i]);
	return r;
}

int archive_flows_mark(struct archive *a, const struct ft_flow_key *keys, const uint64_t *from_ns,
                       size_t n, uint16_t trigger, uint64_t *marked)
{
	*marked = 0;
	if (!a->writable)
		return archive__fail(-EPERM, "%s: marking flows needs the archive open for writing",
		                     a->dir);
	struct ft_flow_key *canon = malloc((n ? n : 1) * sizeof(*canon));
	if (!canon)
		return archive__fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		canon[i] = keys[i];
		ft_flow_key_canonical(&canon[i]);
	}
	struct mark m = {.a = a, .keys = canon, .from_ns = from_ns, .n = n, .trigger = trigger};
	int rc = mdb_txn_begin(a->env, NULL, 0, &m.txn), r;
	if (rc) {
		free(canon);
		return archive__lmdb_fail(rc, "begin write");
	}
	struct archive_rtxn t = {.a = a, .txn = m.txn}; /* the walk, in this transaction */
	if ((r = archive_segments(&t, 0, 0, mark_in, &m)) != 0)
		mdb_txn_abort(m.txn);
	else if ((rc = mdb_txn_commit(m.txn)) != 0)
		r = archive__lmdb_fail(rc, "commit");
	free(canon);
	if (r)
		return r;
	*marked = m.marked;
	return 0;
}
