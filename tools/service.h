/*
 * tools: telling systemd how `record` and `monitor` are doing, through
 * libsystemd's sd_notify(3) (packaging/flowscope@.service is Type=notify).
 *
 * Purpose: READY=1 once the sources are open, the archive is recovered and
 * the threads run (systemctl start returns then, and units ordered after
 * ours start); STATUS= carrying the status line (systemctl status shows it);
 * WATCHDOG=1 only while the pipeline makes progress, so that systemd
 * restarts a recorder that hangs (WatchdogSec=); STOPPING=1 when the sources
 * stop and the drain begins.  Without NOTIFY_SOCKET (a shell) every call
 * does nothing.
 *
 * Progress: each thread the watchdog vouches for (record's analyzers and
 * dumpers, monitor's queue threads) counts its loops in an atomic "beat"
 * (service_beat()).  Their loops come round at least every 100 ms even with
 * nothing to do (they wait with a timeout), so an idle pipeline beats; a
 * thread stuck in a module, a write or a lock does not.  The capture loop
 * (capture_wait(), the main thread) calls service_watch_poll(): once half
 * of WATCHDOG_USEC has passed since the last ping, it pings if every watched
 * beat moved since then, and otherwise keeps checking, so one stuck thread
 * stops the pings and systemd acts after WatchdogSec.  Pings never come from
 * a side thread.  (Source threads are not watched: an idle link and a stuck
 * read look the same from outside; their waits are bounded by the sources.)
 *
 * Lifecycle: service_watch_init() -> service_watch_add() per thread (before
 * the threads start) -> service_ready() -> service_watch_poll() and
 * service_status() from the loop -> service_stopping().
 *
 * Threading: service_beat() on the watched thread, lock-free; everything
 * else on the main thread.
 *
 * Errors: none reported: a notification that cannot be sent is dropped (the
 * service manager then sees no READY=1, or no pings, and acts on it).
 */
#ifndef FLOWSCOPE_TOOLS_SERVICE_H
#define FLOWSCOPE_TOOLS_SERVICE_H

#include <stdatomic.h>
#include <stdint.h>

#define SERVICE_MAX_WATCHED 96 /* record: 16 analyzers + 16 dumpers; monitor: 64 queues */

struct service_watch {
	const atomic_ulong *beat[SERVICE_MAX_WATCHED];
	unsigned long seen[SERVICE_MAX_WATCHED]; /* each beat at the last ping */
	unsigned n;
	uint64_t every_ns; /* half of WATCHDOG_USEC; 0: no watchdog asked for */
	uint64_t last_ns;  /* CLOCK_MONOTONIC of the last ping (or of service_watch_init) */
	uint64_t pings;    /* WATCHDOG=1 sent */
};

/* Reads WATCHDOG_USEC / WATCHDOG_PID (sd_watchdog_enabled(3)); no threads watched yet. */
void service_watch_init(struct service_watch *w, uint64_t now_ns);

/* Watches one thread's beat (held by the caller, alive until the watch is no longer polled). */
void service_watch_add(struct service_watch *w, const atomic_ulong *beat);

/* The watched thread's loop came round.  Relaxed: one writer (this thread); the reader
 * only asks whether the value moved, no data is published with it. */
static inline void service_beat(atomic_ulong *beat)
{
	atomic_store_explicit(beat, atomic_load_explicit(beat, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* From the capture loop: WATCHDOG=1 when due and every watched beat moved since the last
 * one.  Returns 1 when it pinged. */
int service_watch_poll(struct service_watch *w, uint64_t now_ns);

/* READY=1 with STATUS=<status> (one line). */
void service_ready(const char *status);

/* STATUS=<line>: the status line, without its "flowscope CMD: " prefix. */
void service_status(const char *line);

/* STOPPING=1 with STATUS=<status>. */
void service_stopping(const char *status);

#endif
