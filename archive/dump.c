/*
 * The dumper's loop: one QQ chunk into an archive writer.  The recorder's dumper threads
 * take whole chunks from the QQ (in publication order, tools/record_pipeline.c) and hand
 * each here; this is everything between the chunk and the writer: the triggered-flow rules
 * brought up to the chunk's ring position, each packet matched and tagged, the writer's
 * flow table and posting lists prefetched a few packets ahead by the flow hash the analyzers
 * left in each record (the table is large and hit at random: without it every packet waits
 * for memory several times in a row).  It prints nothing: the counts go to the caller.
 */
#include "archive/archive.h"
#include "qq/qq.h"

#define DUMP_AHEAD 8 /* packets: how far ahead a dumper prefetches their flows */

/* The record i packets ahead, its flow fetched in four stages, nearer each time. */
static void dump_prefetch(struct archive_writer *w, const struct qq_chunk *c, uint32_t i,
                          uint32_t n)
{
	/* how far ahead each archive_writer_prefetch() stage looks, in packets */
	static const uint32_t ahead[] = {2 * DUMP_AHEAD, DUMP_AHEAD, DUMP_AHEAD / 2,
	                                 DUMP_AHEAD / 4};
	/* before the flow, the record itself (it comes from memory, page by page) */
	if (i + 4 * DUMP_AHEAD < n)
		__builtin_prefetch(qq_chunk_record(c, i + 4 * DUMP_AHEAD));
	for (int s = 0; s < 4; s++)
		if (i + ahead[s] < n)
			archive_writer_prefetch(w, qq_chunk_record(c, i + ahead[s])->flow_hash, s);
}

int archive_writer_dump_chunk(struct archive_writer *w, const struct qq_chunk *c,
                              const struct archive_dump_opts *o, struct archive_dump_stats *st)
{
	uint32_t n = qq_chunk_count(c);
	struct archive_dump_link link = o->link(o->link_arg, 0);
	unsigned link_no = 0;
	if (o->view)
		archive_rule_view_update(o->view, qq_chunk_seq(c));
	int r = archive_writer_set_chunk(w, qq_chunk_seq(c));
	if (r)
		return r;
	for (uint32_t i = 0; i < n; i++) {
		dump_prefetch(w, c, i, n);
		struct qq_record *rec = qq_chunk_record(c, i);
		if (rec->link != link_no) /* a pcapng file's interfaces: each its own link type */
			link = o->link(o->link_arg, link_no = rec->link);
		struct archive_packet p = {.linktype = link.linktype,
		                           .snaplen = link.snaplen,
		                           .ts_ns = rec->ts_ns,
		                           .caplen = rec->caplen,
		                           .wirelen = rec->wirelen,
		                           .data = rec->data,
		                           .parsed = o->parsed ? qq_record_note(rec) : NULL};
		p.trigger = o->view ? archive_rule_view_match(o->view, &p) : 0;
		if (o->triggered_only && !p.trigger) {
			st->skipped++;
			continue;
		}
		st->selected += p.trigger != 0;
		r = archive_writer_add_packet(w, &p);
		if (r == ARCHIVE_E_TOOBIG)
			st->oversize++;
		else if (r == ARCHIVE_E_TIME)
			st->untimed++;
		else if (r)
			return r;
	}
	return 0;
}
