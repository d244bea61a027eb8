/* Crash recovery and index rebuild: see archive_recover() and archive_rebuild() (being written). */
#include <errno.h>

#include "archive/archive_pvt.h"

int archive_recover(struct archive *a, archive_log_fn log, void *arg,
                    struct archive_recover_stats *st)
{
	(void)a, (void)log, (void)arg, (void)st;
	return 0;
}

int archive_rebuild(const char *dir, archive_log_fn log, void *arg,
                    struct archive_rebuild_stats *st)
{
	(void)dir, (void)log, (void)arg, (void)st;
	return -ENOSYS;
}
