/*
 * The service manager's side of record and monitor (service.h): sd_notify(3)
 * messages, and the watchdog that pings only while every watched thread's
 * loop comes round.
 *
 * sd_notify() returns at once without NOTIFY_SOCKET, so the calls cost
 * nothing in a shell.  The environment is left as it is (unset_environment
 * 0): modules that start programs are not our business to hide it from,
 * and sd_watchdog_enabled() already checks WATCHDOG_PID against our pid.
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "tools/service.h"

void service_watch_init(struct service_watch *w, uint64_t now_ns)
{
	uint64_t usec = 0;
	*w = (struct service_watch){.last_ns = now_ns};
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		w->every_ns = usec * 1000 / 2; /* sd_watchdog_enabled(3): ping at half the time */
}

void service_watch_add(struct service_watch *w, const atomic_ulong *beat)
{
	if (w->n == SERVICE_MAX_WATCHED)
		return; /* more threads than any configuration makes: the first ones vouch */
	w->seen[w->n] = atomic_load_explicit(beat, memory_order_relaxed);
	w->beat[w->n++] = beat;
}

/* Every watched thread's loop came round since the last ping. */
static int all_moved(const struct service_watch *w)
{
	for (unsigned i = 0; i < w->n; i++)
		if (atomic_load_explicit(w->beat[i], memory_order_relaxed) == w->seen[i])
			return 0;
	return 1;
}

int service_watch_poll(struct service_watch *w, uint64_t now_ns)
{
	if (!w->every_ns || now_ns - w->last_ns < w->every_ns || !all_moved(w))
		return 0;
	for (unsigned i = 0; i < w->n; i++)
		w->seen[i] = atomic_load_explicit(w->beat[i], memory_order_relaxed);
	w->last_ns = now_ns;
	w->pings++;
	sd_notify(0, "WATCHDOG=1");
	return 1;
}

void service_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void service_status(const char *line)
{
	sd_notifyf(0, "STATUS=%s", line);
}

void service_stopping(const char *status)
{
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}
