/* The benchmarks' machine line (machine.h): /proc/cpuinfo's model name, cores, uname. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "tools/bench/machine.h"

void bench_machine_line(const char *name)
{
	char model[256] = "unknown", line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
	struct utsname u;
	uname(&u);
	printf("# %s  machine: %s, %ld cores, Linux %s\n", name, model,
	       sysconf(_SC_NPROCESSORS_ONLN), u.release);
}
