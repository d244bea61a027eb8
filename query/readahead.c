/*
 * Frames read ahead: a small worker pool that decompresses a query's
 * candidate frames and matches their records (time range, BPF) while the
 * query's own thread merges and writes the frames before them.
 *
 * The query's thread (the consumer) submits frames in the order it will take
 * them; workers run the oldest queued one; the consumer waits for the one it
 * needs next and runs it itself if no worker has taken it yet, or, while a
 * worker runs it, runs the oldest queued frame meanwhile: the consumer is
 * one of the threads that decompress, so a pool of N - 1 workers keeps N
 * cores busy.  A frame's result (its reader holding the decompressed bytes and the
 * list of matching records pointing into them) stays in its slot until the
 * consumer releases it.  The pool only changes which thread decompresses a
 * frame, never what is written or in which order: that stays run.c's merge.
 *
 * Concurrency: one mutex (pool.mu) guards the queue, the free list and
 * every slot's state; a slot's result fields are written by the one thread
 * that runs it (state RUNNING, taken under mu) and read by the consumer after
 * it saw state DONE under mu: the unlock after the run and the lock before
 * the read pair up (release/acquire), so no atomics are needed.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qq/qq.h"
#include "query/query_pvt.h"

enum { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

struct query_readahead {
	pthread_mutex_t mu;
	pthread_cond_t work; /* signalled (under mu) by submit and destroy; workers wait */
	pthread_cond_t
	    done; /* broadcast (under mu) by a worker ending a frame; the consumer waits */
	struct query_frame *slots;
	size_t nslots;
	struct query_frame *head, *tail; /* queued frames, oldest first (mu) */
	struct query_frame *free;        /* free slots (mu) */
	int stopping;                    /* set by destroy (mu): workers leave */
	pthread_t *threads;
	unsigned nthreads; /* started */
};

/* Copies the thread's archive_errmsg() beside the error, for the consumer's thread. */
static void frame_error(struct query_frame *f, int err)
{
	f->err = err;
	snprintf(f->msg, sizeof(f->msg), "%s", archive_errmsg());
}

int query__frame_match(struct query_frame *f)
{
	struct archive_record rec;
	f->nm = 0;
	f->err = 0;
	f->msg[0] = '\0';
	int e = archive_frame_load(f->rd, f->seg, f->f);
	if (e) {
		frame_error(f, e);
		return e;
	}
	while (archive_frame_next(f->rd, &rec)) {
		if (rec.ts_ns < f->from_ns || (f->to_ns && rec.ts_ns >= f->to_ns))
			continue;
		struct pcap_pkthdr h = {.caplen = rec.caplen, .len = rec.wirelen};
		if (!pcap_offline_filter(f->prog, &h, rec.data))
			continue;
		if (qq_grow((void **)&f->m, &f->mcap, f->nm + 1, sizeof(*f->m)) != 0) {
			snprintf(f->msg, sizeof(f->msg), "out of memory");
			return f->err = -ENOMEM;
		}
		f->m[f->nm++] = rec;
	}
	return 0;
}

static struct query_frame *queue_pop(struct query_readahead *p)
{
	struct query_frame *f = p->head;
	if (f && !(p->head = f->next))
		p->tail = NULL;
	return f;
}

/* Takes f out of the queue (it is there: state QUEUED).  Called with mu held. */
static void queue_remove(struct query_readahead *p, struct query_frame *f)
{
	struct query_frame **pp = &p->head, *prev = NULL;
	while (*pp != f) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = f->next;
	if (p->tail == f)
		p->tail = prev;
}

static void slot_free(struct query_readahead *p, struct query_frame *f)
{
	f->state = SLOT_FREE;
	f->next = p->free;
	p->free = f;
}

/* Runs f outside the lock; back under it, marks it done (or frees it, released meanwhile). */
static void run_unlocked(struct query_readahead *p, struct query_frame *f)
{
	f->state = SLOT_RUNNING;
	pthread_mutex_unlock(&p->mu); /* release: pairs with the lock in which queue_pop took f */
	query__frame_match(f);
	pthread_mutex_lock(&p->mu); /* pairs with the consumer's lock in query__readahead_wait */
	if (f->dropped)
		slot_free(p, f);
	else
		f->state = SLOT_DONE;
	pthread_cond_broadcast(&p->done);
}

static void *worker(void *arg)
{
	struct query_readahead *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct query_frame *f = queue_pop(p);
		if (f) {
			run_unlocked(p, f);
			continue;
		}
		if (p->stopping)
			break;
		pthread_cond_wait(&p->work, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int slots_create(struct archive *a, struct query_readahead *p, size_t n)
{
	if (!(p->slots = calloc(n, sizeof(*p->slots))))
		return -ENOMEM;
	p->nslots = n;
	for (size_t i = 0; i < n; i++) {
		if (archive_frame_reader_create(a, &p->slots[i].rd) != 0)
			return -ENOMEM;
		slot_free(p, &p->slots[i]);
	}
	return 0;
}

int query__readahead_create(struct archive *a, unsigned workers, size_t slots,
                            struct query_readahead **out)
{
	struct query_readahead *p = calloc(1, sizeof(*p));
	*out = NULL;
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	int e = slots_create(a, p, slots);
	if (e == 0 && !(p->threads = calloc(workers, sizeof(*p->threads))))
		e = -ENOMEM;
	for (; e == 0 && p->nthreads < workers; p->nthreads++)
		if ((e = -pthread_create(&p->threads[p->nthreads], NULL, worker, p)) != 0)
			break;
	if (e) {
		query__readahead_destroy(p);
		return e;
	}
	*out = p;
	return 0;
}

struct query_frame *query__readahead_submit(struct query_readahead *p,
                                            const struct query_frame *want)
{
	pthread_mutex_lock(&p->mu);
	struct query_frame *f = p->free;
	if (f) {
		p->free = f->next;
		f->seg = want->seg;
		f->f = want->f;
		f->prog = want->prog;
		f->from_ns = want->from_ns;
		f->to_ns = want->to_ns;
		f->dropped = 0;
		f->next = NULL;
		f->state = SLOT_QUEUED;
		if (p->tail)
			p->tail->next = f;
		else
			p->head = f;
		p->tail = f;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	return f;
}

void query__readahead_wait(struct query_readahead *p, struct query_frame *f)
{
	pthread_mutex_lock(&p->mu);
	if (f->state == SLOT_QUEUED) { /* no worker took it: run it here rather than idle */
		queue_remove(p, f);
		run_unlocked(p, f);
	}
	while (f->state != SLOT_DONE) {
		struct query_frame *next = queue_pop(p);
		if (next) /* f is running: help with a later frame meanwhile */
			run_unlocked(p, next);
		else
			pthread_cond_wait(&p->done, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

void query__readahead_release(struct query_readahead *p, struct query_frame *f)
{
	pthread_mutex_lock(&p->mu);
	if (f->state == SLOT_QUEUED)
		queue_remove(p, f);
	if (f->state == SLOT_RUNNING)
		f->dropped = 1; /* its runner frees it */
	else
		slot_free(p, f);
	pthread_mutex_unlock(&p->mu);
}

void query__readahead_destroy(struct query_readahead *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	while (p->head) /* left unread: the query stopped early */
		slot_free(p, queue_pop(p));
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (size_t i = 0; i < p->nslots; i++) {
		archive_frame_reader_destroy(p->slots[i].rd);
		free(p->slots[i].m);
	}
	free(p->slots);
	free(p->threads);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
