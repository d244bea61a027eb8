/*
 * The QQ ring buffer: chunks of packed records, handed between producers,
 * analyzers and dumpers as whole chunks.
 *
 * Synchronisation: one mutex (`lock`) protects the outer ring (ring[],
 * head_seq, tail_seq), the free stack, every chunk's bookkeeping fields
 * (state, in_ring, sealed, visible, peeked, peeking, vis_*), the analyzer
 * cursors and the totals.  It is taken once per chunk transition and once
 * per flush interval, never per packet.  A chunk's memory and its fill
 * fields (count, used, bytes, min/max ts) are written only by the producer
 * that owns it; records [0, visible) are published by the mutex release in
 * chunk_publish_locked() and acquired by the mutex acquisition in
 * qq_analyzer_next()/qq_dumper_next() (pthread mutexes are full acquire/
 * release barriers), so readers see complete records without atomics, and
 * the producer never touches a record once it is visible.
 *
 * Incremental publication: a chunk enters the outer ring the first time it
 * is flushed (or when full), while its producer may still be appending to
 * it; each flush makes more of its records visible.  The analyzer peeks
 * [peeked, visible) and comes back for the rest; the chunk is sealed when its
 * producer moves on.  So a slow link wastes no ring space: a chunk published
 * after a millisecond keeps filling.
 *
 * Chunk lifecycle (under `lock`): FREE -> ACTIVE (owned by a producer; in the
 * ring once published; sealed when the producer leaves it) -> DUMPING
 * (dequeued: sealed and fully peeked) -> FREE.  In overwrite mode a sealed
 * chunk at the head that no analyzer holds goes from ACTIVE straight to a
 * producer (its packets counted as overwritten).
 *
 * Pre-fault: qq_create() populates only the first chunk (the one producers
 * take first) and returns; a background thread (prefault_run) populates the
 * rest chunk by chunk in the order the free stack hands chunks out, so
 * capture starts at once and, the pre-fault running ahead of the producers,
 * they rarely meet an untouched page.  The two may meet on the same page:
 * MADV_POPULATE_WRITE never changes a page's contents, so that costs a fault,
 * never a record.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "qq/qq.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

enum chunk_state { CH_FREE, CH_ACTIVE, CH_DUMPING };

struct qq_chunk {
	uint8_t *base;
	uint32_t size; /* bytes, constant */
	/* written by the owning producer only (see file comment) */
	uint32_t count;
	uint32_t used;
	uint64_t min_ns, max_ns;
	uint64_t bytes;           /* captured bytes in the chunk */
	uint64_t last_publish_ns; /* monotonic time of the last publication (or take) */
	uint64_t taken_ns;        /* monotonic time its producer took it */
	/* protected by qq.lock */
	enum chunk_state state;
	unsigned producer;
	unsigned analyzer;
	int in_ring;      /* published: in ring[] */
	int sealed;       /* its producer moved on: count is final */
	int peeking;      /* an analyzer holds [peeked, visible) */
	uint32_t visible; /* records the analyzer may read */
	uint32_t peeked;  /* records the analyzer is done with */
	uint64_t seq;     /* position in publication order (set when first published) */
	uint64_t vis_min_ns, vis_max_ns; /* min/max ts of the visible records */
};

struct qq_producer {
	struct qq *q;
	unsigned id;
	struct qq_chunk *cur;   /* owned chunk or NULL (taken lazily) */
	uint64_t dropped;       /* drops not yet folded into q->totals */
	uint64_t busy_until_ns; /* overwrite mode: ring found busy, retry after this */
	uint8_t link;           /* stamped on each record: qq_producer_set_link() */
};

struct qq {
	uint8_t *mem;
	size_t mem_len;
	uint32_t chunk_size;
	uint32_t note_size; /* bytes after each record's padded data (qq_record_note) */
	uint32_t nchunks;
	uint32_t hw_chunks;   /* dumpers take chunks while used > hw_chunks */
	uint32_t max_used;    /* backpressure: producers wait at this many used chunks */
	uint64_t max_hold_ns; /* a chunk goes to the dumpers this long after it was taken */
	unsigned nproducers, nanalyzers;
	uint64_t flush_ns;
	enum qq_mode mode;
	int hugepages;
	size_t page_size; /* backing page size: 1 GiB, 2 MiB, or the base page */
	struct qq_chunk *chunks;
	uint64_t prefault_rate; /* bytes per second for prefault_run, 0: unpaced; constant */
	pthread_t prefaulter;   /* written and joined by the creating/destroying thread only */
	int prefaulter_started; /* idem */

	pthread_mutex_t lock;
	pthread_cond_t cond_producer; /* a chunk became free */
	pthread_cond_t cond_analyzer; /* a chunk was published, or state change */
	pthread_cond_t cond_dumper;   /* a chunk was peeked, or drain/stop */
	pthread_cond_t cond_prefault; /* qq_destroy: prefault_quit was set */
	/* everything below: protected by lock */
	size_t prefaulted; /* bytes populated from mem: written by prefault_run, read by qq_stats */
	int prefault_quit; /* written by qq_destroy, read by prefault_run (which then returns) */
	struct qq_chunk **ring; /* published chunks, ring[seq % nchunks] */
	uint64_t head_seq, tail_seq;
	struct qq_chunk **free_stack;
	uint32_t nfree;
	uint64_t *cursor; /* per analyzer: next seq to look at */
	struct qq_producer **producers;
	unsigned open_producers;
	int draining, stopped;
	uint64_t newest_ns;
	struct qq_stats totals; /* counters only */
};

uint64_t qq_clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	return qq_clock_ns(CLOCK_MONOTONIC);
}

int qq_grow(void **buf, size_t *cap, size_t need, size_t el)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return -ENOMEM;
		nc *= 2;
	}
	if (el && nc > SIZE_MAX / el)
		return -ENOMEM;
	void *n = realloc(*buf, nc * el);
	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = nc;
	return 0;
}

const char *qq_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case QQ_E_TIMEDOUT:
		return "timed out";
	case QQ_E_DRAINED:
		return "drained";
	case QQ_E_STOPPED:
		return "stopped";
	case QQ_E_TOOBIG:
		return "record larger than a QQ chunk";
	case QQ_E_NOMEM:
		return "cannot allocate the QQ ring memory";
	default:
		if (err < 0 && err > -4096)
			return strerror(-err);
		return "unknown qq error";
	}
}

/* ---- memory --------------------------------------------------------------------- */

uint64_t qq_memory_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	unsigned long long kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kb << 10;
}

/*
 * Populates [mem, mem + len) so no packet pays for a page fault.  Returns 0,
 * QQ_E_NOMEM when the kernel cannot back every page (MADV_POPULATE_WRITE
 * reports that instead of letting the OOM killer find out later), or -EINVAL
 * on a kernel before 5.14 (no MADV_POPULATE_WRITE).
 */
static int populate(uint8_t *mem, size_t len)
{
	if (madvise(mem, len, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno == ENOMEM || errno == EFAULT || errno == EHWPOISON)
		return QQ_E_NOMEM;
	return -EINVAL;
}

/* Kernels before 5.14: touch every page, before any producer may write in one. */
static void touch_pages(uint8_t *mem, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	for (size_t off = 0; off < len; off += (size_t)page)
		((volatile uint8_t *)mem)[off] = 0;
}

/* Lock held: waits until prefault_run's pace lets it populate up to `done` bytes. */
static void prefault_pace_locked(struct qq *q, uint64_t t0_ns, size_t done)
{
	if (!q->prefault_rate)
		return;
	double at = (double)t0_ns + (double)done / (double)q->prefault_rate * 1e9;
	uint64_t until = at >= 0x1p63 ? (uint64_t)1 << 63 : (uint64_t)at;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
	                      .tv_nsec = (long)(until % 1000000000u)};
	while (!q->prefault_quit && mono_ns() < until)
		pthread_cond_timedwait(&q->cond_prefault, &q->lock, &ts);
}

/*
 * The background pre-fault: populates chunk after chunk from q->prefaulted
 * on, the lock dropped around each madvise.  A failure (the kernel cannot
 * back the pages) stops it and is counted: the rest faults in when first
 * used.
 */
static void *prefault_run(void *arg)
{
	struct qq *q = arg;
	uint64_t t0 = mono_ns();
	pthread_mutex_lock(&q->lock);
	while (!q->prefault_quit && q->prefaulted < q->mem_len) {
		size_t off = q->prefaulted;
		size_t len = q->mem_len - off < q->chunk_size ? q->mem_len - off : q->chunk_size;
		prefault_pace_locked(q, t0, off + len);
		if (q->prefault_quit)
			break;
		pthread_mutex_unlock(&q->lock);
		int r = populate(q->mem + off, len);
		pthread_mutex_lock(&q->lock);
		if (r) {
			q->totals.prefault_failed = 1;
			break;
		}
		q->prefaulted = off + len;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/*
 * Populates the first chunk now (and the whole ring on a kernel without
 * MADV_POPULATE_WRITE), the rest in prefault_run.  Returns 0 or QQ_E_NOMEM.
 */
static int prefault_start(struct qq *q)
{
	int r = populate(q->mem, q->chunk_size);
	if (r == -EINVAL) {
		touch_pages(q->mem, q->mem_len);
		q->prefaulted = q->mem_len;
		return 0;
	}
	if (r)
		return r;
	q->prefaulted = q->chunk_size;
	if (q->prefaulted == q->mem_len)
		return 0;
	if (pthread_create(&q->prefaulter, NULL, prefault_run, q) != 0)
		return QQ_E_NOMEM;
	pthread_setname_np(q->prefaulter, "qq-prefault"); /* for ps and /proc: best effort */
	q->prefaulter_started = 1;
	return 0;
}

/*
 * A mapping of reserved huge pages of 1 << shift bytes, or NULL.  The pool's
 * pages are reserved by mmap (all-or-nothing), so it needs no MAP_POPULATE:
 * prefault_run zeroes them in the background.
 */
static void *map_huge(size_t len, unsigned shift)
{
	if (len % ((size_t)1 << shift) != 0)
		return NULL;
	void *m =
	    mmap(NULL, len, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (int)(shift << MAP_HUGE_SHIFT), -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

/*
 * One mapping for the whole ring: reserved 1 GiB pages, else reserved 2 MiB
 * pages (hugetlbfs pool, all-or-nothing at mmap time), else normal pages
 * with transparent huge pages requested, checked against MemAvailable.
 * Not populated: prefault_start() does that.
 */
static int ring_map(struct qq *q, int try_huge)
{
	static const unsigned shifts[] = {30, 21};
	for (size_t i = 0; try_huge && i < sizeof(shifts) / sizeof(shifts[0]); i++) {
		void *m = map_huge(q->mem_len, shifts[i]);
		if (m) {
			q->mem = m;
			q->hugepages = 1;
			q->page_size = (size_t)1 << shifts[i];
			return 0;
		}
	}
	uint64_t avail = qq_memory_available();
	if (avail && q->mem_len > avail)
		return QQ_E_NOMEM;
	void *m =
	    mmap(NULL, q->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return QQ_E_NOMEM;
	madvise(m, q->mem_len, MADV_HUGEPAGE); /* best effort: transparent huge pages */
	q->mem = m;
	q->page_size = (size_t)sysconf(_SC_PAGESIZE);
	return 0;
}

/* ---- create / destroy -------------------------------------------------------------- */

static int config_check(const struct qq_config *cfg, size_t *chunk, uint32_t *n)
{
	*chunk = cfg->chunk_size ? cfg->chunk_size : QQ_DEFAULT_CHUNK;
	if (*chunk < 4096 || *chunk > (1u << 30) || *chunk % 8 != 0)
		return -EINVAL;
	if (cfg->producers == 0 || cfg->analyzers == 0 || cfg->producers > 4096 ||
	    cfg->analyzers > 4096)
		return -EINVAL;
	if ((cfg->high_water < 0 && cfg->high_water != QQ_NO_HOLD) || cfg->high_water >= 1)
		return -EINVAL;
	if (cfg->note_size > QQ_MAX_NOTE)
		return -EINVAL;
	size_t nch = cfg->size / *chunk;
	if (nch < 4 || nch < (size_t)cfg->producers + 2 || nch > (1u << 24))
		return -EINVAL;
	*n = (uint32_t)nch;
	return 0;
}

static int sync_init(struct qq *q)
{
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC))
		return -ENOMEM;
	int r = pthread_mutex_init(&q->lock, NULL) || pthread_cond_init(&q->cond_producer, &ca) ||
	        pthread_cond_init(&q->cond_analyzer, &ca) ||
	        pthread_cond_init(&q->cond_dumper, &ca) ||
	        pthread_cond_init(&q->cond_prefault, &ca);
	pthread_condattr_destroy(&ca);
	return r ? -ENOMEM : 0;
}

int qq_create(const struct qq_config *cfg, struct qq **out)
{
	size_t chunk;
	uint32_t n;
	int r = config_check(cfg, &chunk, &n);
	if (r)
		return r;

	struct qq *q = calloc(1, sizeof(*q));
	if (!q)
		return QQ_E_NOMEM;
	q->chunk_size = (uint32_t)chunk;
	q->note_size = (cfg->note_size + 7u) & ~7u;
	q->nchunks = n;
	q->mem_len = (size_t)n * chunk;
	q->nproducers = cfg->producers;
	q->nanalyzers = cfg->analyzers;
	q->flush_ns = cfg->flush_ns ? cfg->flush_ns : 1000000u;
	q->mode = cfg->mode;
	double hw = cfg->high_water == QQ_NO_HOLD ? 0 : cfg->high_water > 0 ? cfg->high_water : 0.9;
	q->hw_chunks = (uint32_t)(hw * n);
	if (q->hw_chunks > n - 1)
		q->hw_chunks = n - 1;
	q->max_used = cfg->mode == QQ_MODE_BACKPRESSURE && cfg->max_used ? cfg->max_used : n;
	if (q->max_used < q->nproducers + 2)
		q->max_used = q->nproducers + 2;
	if (q->max_used <= q->hw_chunks) /* dumpers must be able to take one */
		q->max_used = q->hw_chunks + 1;
	q->max_hold_ns = cfg->max_hold_ns;
	q->prefault_rate = cfg->prefault_rate;

	q->chunks = calloc(n, sizeof(*q->chunks));
	q->ring = calloc(n, sizeof(*q->ring));
	q->free_stack = calloc(n, sizeof(*q->free_stack));
	q->cursor = calloc(cfg->analyzers, sizeof(*q->cursor));
	q->producers = calloc(cfg->producers, sizeof(*q->producers));
	if (!q->chunks || !q->ring || !q->free_stack || !q->cursor || !q->producers ||
	    sync_init(q) != 0) {
		qq_destroy(q);
		return QQ_E_NOMEM;
	}
	r = ring_map(q, cfg->hugepages);
	if (r == 0 && !cfg->lazy)
		r = prefault_start(q);
	if (r) {
		qq_destroy(q);
		return r;
	}
	for (uint32_t i = 0; i < n; i++) {
		q->chunks[i].base = q->mem + (size_t)i * chunk;
		q->chunks[i].size = (uint32_t)chunk;
		q->chunks[i].state = CH_FREE;
		q->free_stack[n - 1 - i] = &q->chunks[i];
	}
	q->nfree = n;
	q->totals.capacity = q->mem_len;
	q->totals.chunks = n;
	q->totals.hugepages = q->hugepages;
	q->totals.page_size = q->page_size;
	*out = q;
	return 0;
}

void qq_destroy(struct qq *q)
{
	if (!q)
		return;
	if (q->prefaulter_started) {
		pthread_mutex_lock(&q->lock);
		q->prefault_quit = 1; /* prefault_run reads it under the lock */
		pthread_cond_signal(&q->cond_prefault);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->prefaulter, NULL);
	}
	if (q->mem)
		munmap(q->mem, q->mem_len);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond_producer);
	pthread_cond_destroy(&q->cond_analyzer);
	pthread_cond_destroy(&q->cond_dumper);
	pthread_cond_destroy(&q->cond_prefault);
	free(q->chunks);
	free(q->ring);
	free(q->free_stack);
	free(q->cursor);
	free(q->producers);
	free(q);
}

/* ---- chunk layout --------------------------------------------------------------------- */

/* Offsets of records grow down from the end of the chunk: slot i at end - 4*(i+1). */
static inline uint32_t *offset_slot(const struct qq_chunk *c, uint32_t i)
{
	return (uint32_t *)(c->base + c->size - 4u * (i + 1));
}

static inline uint32_t record_size(const struct qq *q, uint32_t caplen)
{
	return ((QQ_RECORD_HDR + caplen + 7u) & ~7u) + q->note_size;
}

uint32_t qq_chunk_count(const struct qq_chunk *c)
{
	return c->count;
}

uint64_t qq_chunk_seq(const struct qq_chunk *c)
{
	return c->seq;
}

uint64_t qq_published(struct qq *q)
{
	pthread_mutex_lock(&q->lock);
	uint64_t s = q->tail_seq;
	pthread_mutex_unlock(&q->lock);
	return s;
}

unsigned qq_chunk_producer(const struct qq_chunk *c)
{
	return c->producer;
}

struct qq_record *qq_chunk_record(const struct qq_chunk *c, uint32_t i)
{
	return (struct qq_record *)(c->base + *offset_slot(c, i));
}

/* ---- waiting ------------------------------------------------------------------------- */

/* A CLOCK_MONOTONIC time in ns as a timespec (for pthread_cond_timedwait). */
static struct timespec ns_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
	                         .tv_nsec = (long)(ns % 1000000000u)};
}

static struct timespec deadline_after(int timeout_ms)
{
	return ns_ts(mono_ns() + (uint64_t)timeout_ms * 1000000u);
}

/* Waits on cond with q->lock held; returns ETIMEDOUT when the deadline passed. */
static int wait_until(struct qq *q, pthread_cond_t *cond, const struct timespec *dl)
{
	return pthread_cond_timedwait(cond, &q->lock, dl);
}

/* ---- producers ------------------------------------------------------------------------ */

int qq_producer_open(struct qq *q, unsigned id, struct qq_producer **out)
{
	if (id >= q->nproducers)
		return -EINVAL;
	struct qq_producer *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->q = q;
	p->id = id;
	pthread_mutex_lock(&q->lock);
	if (q->producers[id]) {
		pthread_mutex_unlock(&q->lock);
		free(p);
		return -EBUSY;
	}
	q->producers[id] = p;
	q->open_producers++;
	pthread_mutex_unlock(&q->lock);
	*out = p;
	return 0;
}

/*
 * Makes every record written so far visible to the chunk's analyzer, putting
 * the chunk into the ring on its first publication.  Lock held.
 */
static void chunk_publish_locked(struct qq *q, struct qq_chunk *c)
{
	if (!c->in_ring) {
		c->in_ring = 1;
		c->seq = q->tail_seq;
		q->ring[q->tail_seq % q->nchunks] = c;
		q->tail_seq++;
	}
	c->visible = c->count;
	c->vis_min_ns = c->min_ns;
	c->vis_max_ns = c->max_ns;
	if (c->max_ns > q->newest_ns)
		q->newest_ns = c->max_ns;
	pthread_cond_broadcast(&q->cond_analyzer);
}

/* The producer leaves the chunk: publish the rest, count it final.  Lock held. */
static void chunk_seal_locked(struct qq *q, struct qq_chunk *c)
{
	chunk_publish_locked(q, c);
	c->sealed = 1;
	q->totals.enqueued_packets += c->count;
	q->totals.enqueued_bytes += c->bytes;
	if (!c->peeking &&
	    c->peeked == c->count) /* complete already: else qq_analyzer_done wakes */
		pthread_cond_broadcast(&q->cond_dumper);
}

static void chunk_reset(struct qq_chunk *c, unsigned producer, unsigned analyzer)
{
	c->count = 0;
	c->used = 0;
	c->bytes = 0;
	c->min_ns = UINT64_MAX;
	c->max_ns = 0;
	c->producer = producer;
	c->analyzer = analyzer;
	c->last_publish_ns = c->taken_ns = mono_ns();
	c->state = CH_ACTIVE;
	c->in_ring = c->sealed = c->peeking = 0;
	c->visible = c->peeked = 0;
	c->vis_min_ns = c->vis_max_ns = 0;
}

/* A sealed chunk no analyzer or dumper is using: it may be overwritten or dequeued. */
static inline int chunk_idle_sealed(const struct qq_chunk *c)
{
	return c->state == CH_ACTIVE && c->sealed && !c->peeking;
}

/*
 * Overwrite mode, no free chunk: takes the oldest published chunk if it is
 * sealed and no analyzer holds it, counting what is lost.  Lock held.
 */
static struct qq_chunk *chunk_steal_oldest_locked(struct qq *q)
{
	if (q->head_seq == q->tail_seq)
		return NULL;
	struct qq_chunk *c = q->ring[q->head_seq % q->nchunks];
	if (!chunk_idle_sealed(c))
		return NULL; /* an analyzer is on it, or it is still filling: drop the packet */
	q->head_seq++;
	q->totals.overwritten_chunks++;
	q->totals.overwritten_packets += c->count;
	q->totals.overwritten_bytes += c->bytes;
	return c;
}

/*
 * Seals the producer's full chunk and gives it a new one: 0, QQ_E_STOPPED,
 * or -EAGAIN (overwrite mode, ring full and its oldest chunk in use: the
 * caller drops the packet).
 */
static int producer_take_chunk(struct qq_producer *p)
{
	struct qq *q = p->q;
	struct qq_chunk *c = NULL;
	int counted_wait = 0;

	pthread_mutex_lock(&q->lock);
	q->totals.dropped_packets += p->dropped;
	p->dropped = 0;
	if (p->cur) {
		chunk_seal_locked(q, p->cur); /* never empty: a record did not fit */
		p->cur = NULL;
	}
	while (!c && !q->stopped) {
		if (q->nfree > 0 && q->nchunks - q->nfree < q->max_used) {
			c = q->free_stack[--q->nfree];
		} else if (q->mode == QQ_MODE_OVERWRITE) {
			c = chunk_steal_oldest_locked(q);
			if (!c)
				break;
		} else {
			if (!counted_wait++)
				q->totals.backpressure_waits++;
			pthread_cond_broadcast(&q->cond_dumper);
			struct timespec dl = deadline_after(100);
			wait_until(q, &q->cond_producer, &dl);
		}
	}
	int stopped = q->stopped;
	if (c)
		chunk_reset(c, p->id, p->id % q->nanalyzers);
	pthread_mutex_unlock(&q->lock);
	p->cur = c;
	if (c)
		return 0;
	return stopped ? QQ_E_STOPPED : -EAGAIN;
}

static inline int chunk_fits(const struct qq_chunk *c, uint32_t rsize)
{
	return (uint64_t)c->used + rsize + 4u * ((uint64_t)c->count + 1) <= c->size;
}

int qq_producer_append(struct qq_producer *p, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen,
                       uint16_t port, uint16_t queue, const void *data)
{
	uint32_t rsize = record_size(p->q, caplen);
	if (caplen > p->q->chunk_size || rsize + 4u > p->q->chunk_size)
		return QQ_E_TOOBIG;

	struct qq_chunk *c = p->cur;
	if (!c || !chunk_fits(c, rsize)) {
		if (p->busy_until_ns && mono_ns() < p->busy_until_ns) {
			p->dropped++; /* still full and busy: do not take the lock per packet */
			return 0;
		}
		int r = producer_take_chunk(p);
		if (r == -EAGAIN) {
			p->dropped++;
			p->busy_until_ns = mono_ns() + p->q->flush_ns;
			return 0;
		}
		if (r)
			return r;
		p->busy_until_ns = 0;
		c = p->cur;
	}
	struct qq_record *rec = (struct qq_record *)(c->base + c->used);
	rec->ts_ns = ts_ns;
	rec->caplen = caplen;
	rec->wirelen = wirelen;
	rec->port = port;
	rec->queue = (uint8_t)queue;
	rec->link = p->link;
	rec->flow_hash = 0;
	memcpy(rec->data, data, caplen);
	if (p->q->note_size)
		memset(qq_record_note(rec), 0, p->q->note_size);
	*offset_slot(c, c->count) = c->used;
	c->used += rsize;
	c->count++;
	c->bytes += caplen;
	if (ts_ns < c->min_ns)
		c->min_ns = ts_ns;
	if (ts_ns > c->max_ns)
		c->max_ns = ts_ns;
	return 0;
}

void qq_producer_set_link(struct qq_producer *p, uint8_t link)
{
	p->link = link;
}

void qq_producer_flush(struct qq_producer *p, uint64_t now_ns)
{
	struct qq_chunk *c = p->cur;
	struct qq *q = p->q;
	if (c && c->count > 0 && q->max_hold_ns && now_ns >= c->taken_ns + q->max_hold_ns) {
		pthread_mutex_lock(&q->lock); /* old enough: to the dumpers, full or not */
		chunk_seal_locked(q, c);
		pthread_mutex_unlock(&q->lock);
		p->cur = NULL; /* the next packet takes a new chunk */
		return;
	}
	/* c->visible is only ever written by this thread (under the lock): reading it here is safe */
	if (!c || c->count == c->visible || now_ns < c->last_publish_ns + q->flush_ns)
		return;
	pthread_mutex_lock(&p->q->lock);
	chunk_publish_locked(p->q, c);
	pthread_mutex_unlock(&p->q->lock);
	c->last_publish_ns = now_ns;
}

void qq_producer_close(struct qq_producer *p)
{
	struct qq *q = p->q;
	pthread_mutex_lock(&q->lock);
	q->totals.dropped_packets += p->dropped;
	if (p->cur) {
		if (p->cur->count > 0) {
			chunk_seal_locked(q, p->cur);
		} else {
			p->cur->state = CH_FREE;
			q->free_stack[q->nfree++] = p->cur;
		}
	}
	q->producers[p->id] = NULL;
	q->open_producers--;
	pthread_cond_broadcast(&q->cond_analyzer);
	pthread_cond_broadcast(&q->cond_dumper);
	pthread_mutex_unlock(&q->lock);
	free(p);
}

/* ---- analyzers ------------------------------------------------------------------------ */

/* 1 if analyzer a has nothing more to do with the chunk at ring position s.  Lock held. */
static inline int chunk_done_for(const struct qq_chunk *c, unsigned a)
{
	return c->analyzer != a || (c->sealed && c->peeked == c->count);
}

/*
 * The oldest chunk with records analyzer a has not peeked, or NULL.  The
 * cursor skips only chunks a is done with; a chunk still filling keeps it
 * there, so a producer's later records are never handed out before its
 * earlier ones.  Lock held.
 */
static struct qq_chunk *analyzer_find_locked(struct qq *q, unsigned a)
{
	uint64_t s = q->cursor[a] > q->head_seq ? q->cursor[a] : q->head_seq;
	while (s < q->tail_seq && chunk_done_for(q->ring[s % q->nchunks], a))
		s++;
	q->cursor[a] = s;
	for (; s < q->tail_seq; s++) {
		struct qq_chunk *c = q->ring[s % q->nchunks];
		if (c->analyzer == a && !c->peeking && c->peeked < c->visible)
			return c;
	}
	return NULL;
}

int qq_analyzer_next(struct qq *q, unsigned analyzer, struct qq_peek *out, int timeout_ms)
{
	if (analyzer >= q->nanalyzers)
		return -EINVAL;
	struct timespec dl = deadline_after(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->stopped) {
			r = QQ_E_STOPPED;
			break;
		}
		struct qq_chunk *c = analyzer_find_locked(q, analyzer);
		if (c) {
			c->peeking = 1;
			*out = (struct qq_peek){.chunk = c, .first = c->peeked, .end = c->visible};
			break;
		}
		if (q->open_producers == 0 && q->cursor[analyzer] == q->tail_seq) {
			r = QQ_E_DRAINED;
			break;
		}
		if (wait_until(q, &q->cond_analyzer, &dl) == ETIMEDOUT) {
			r = QQ_E_TIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

void qq_analyzer_done(struct qq *q, const struct qq_peek *pk)
{
	struct qq_chunk *c = pk->chunk;
	pthread_mutex_lock(&q->lock);
	c->peeked = pk->end;
	c->peeking = 0;
	/*
	 * Wake only whom this can unblock: a dumper waits for a sealed, fully
	 * peeked chunk (qq_dumper_next), and chunk_seal_locked wakes it if the
	 * seal comes last; an analyzer for records made visible meanwhile.  Waking
	 * every dumper on each peek cost two futex wake-ups and context switches
	 * per analyzer batch (one a millisecond on a live link) for nothing.
	 */
	if (c->sealed && c->peeked == c->count)
		pthread_cond_broadcast(&q->cond_dumper);
	if (c->peeked < c->visible)
		pthread_cond_broadcast(&q->cond_analyzer);
	pthread_mutex_unlock(&q->lock);
}

/* ---- dumpers ---------------------------------------------------------------------------- */

int qq_dumper_next(struct qq *q, struct qq_chunk **out, int timeout_ms)
{
	uint64_t dl = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	int r = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->stopped) {
			r = QQ_E_STOPPED;
			break;
		}
		uint64_t until = dl;
		if (q->head_seq < q->tail_seq) {
			struct qq_chunk *c = q->ring[q->head_seq % q->nchunks];
			uint32_t used = q->nchunks - q->nfree;
			int ready = chunk_idle_sealed(c) && c->peeked == c->count;
			uint64_t due = q->max_hold_ns ? c->taken_ns + q->max_hold_ns : UINT64_MAX;
			if (ready && (q->draining || used > q->hw_chunks ||
			              (q->max_hold_ns && mono_ns() >= due))) {
				q->head_seq++;
				c->state = CH_DUMPING;
				*out = c;
				break;
			}
			if (ready && due < dl)
				until = due; /* held only for its age: look again then */
		} else if (q->draining && q->open_producers == 0) {
			r = QQ_E_DRAINED;
			break;
		}
		struct timespec ts = ns_ts(until);
		if (wait_until(q, &q->cond_dumper, &ts) == ETIMEDOUT && until == dl) {
			r = QQ_E_TIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

void qq_dumper_release(struct qq *q, struct qq_chunk *c)
{
	pthread_mutex_lock(&q->lock);
	c->state = CH_FREE;
	q->free_stack[q->nfree++] = c;
	pthread_cond_signal(&q->cond_producer);
	pthread_cond_broadcast(&q->cond_dumper); /* fill level changed */
	pthread_mutex_unlock(&q->lock);
}

/* ---- control and statistics ---------------------------------------------------------------- */

void qq_drain(struct qq *q)
{
	pthread_mutex_lock(&q->lock);
	q->draining = 1;
	pthread_cond_broadcast(&q->cond_dumper);
	pthread_mutex_unlock(&q->lock);
}

void qq_stop(struct qq *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopped = 1;
	pthread_cond_broadcast(&q->cond_producer);
	pthread_cond_broadcast(&q->cond_analyzer);
	pthread_cond_broadcast(&q->cond_dumper);
	pthread_mutex_unlock(&q->lock);
}

void qq_stats(struct qq *q, struct qq_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->totals;
	out->chunks_used = q->nchunks - q->nfree;
	out->fill = (double)out->chunks_used / q->nchunks;
	out->newest_ns = q->newest_ns;
	out->prefaulted_bytes = q->prefaulted;
	out->oldest_ns = 0;
	if (q->head_seq < q->tail_seq)
		out->oldest_ns = q->ring[q->head_seq % q->nchunks]->vis_min_ns;
	else
		out->newest_ns = 0;
	pthread_mutex_unlock(&q->lock);
}
