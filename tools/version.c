/*
 * flowscope --version: the version, the git commit it was built from, and
 * the libraries it was built with (their pkg-config versions, passed in by
 * tools/CMakeLists.txt) next to the ones it runs with, where the library
 * can say so cheaply (DPDK, libpcap, zstd, LMDB: a shared library upgraded
 * under the binary shows here).  liburing and LuaJIT have no runtime
 * version call: only the build's.
 */
#include <lmdb.h>
#include <pcap/pcap.h>
#include <rte_version.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "tools/cli.h"
#include "tools/version_git.h" /* generated: FLOWSCOPE_COMMIT */

/* s without its prefix, when it starts with it ("libpcap version 1.10.3 ..." -> "1.10.3 ..."). */
static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 ? s + n : s;
}

void version_print(FILE *f)
{
	int maj, min, patch;
	mdb_version(&maj, &min, &patch);
	fprintf(f, "flowscope %s\n", FLOWSCOPE_VERSION);
	fprintf(f, "commit %s\n", FLOWSCOPE_COMMIT);
	fprintf(f, "library   built with   running with\n");
	fprintf(f, "DPDK      %-12s %s\n", FLOWSCOPE_DPDK_VERSION,
	        skip_prefix(rte_version(), "DPDK "));
	fprintf(f, "libpcap   %-12s %s\n", FLOWSCOPE_PCAP_VERSION,
	        skip_prefix(pcap_lib_version(), "libpcap version "));
	fprintf(f, "zstd      %-12s %s\n", FLOWSCOPE_ZSTD_VERSION, ZSTD_versionString());
	fprintf(f, "LMDB      %-12s %d.%d.%d\n", FLOWSCOPE_LMDB_VERSION, maj, min, patch);
	fprintf(f, "liburing  %-12s (no runtime query)\n", FLOWSCOPE_URING_VERSION);
	fprintf(f, "LuaJIT    %-12s (no runtime query)\n", FLOWSCOPE_LUAJIT_VERSION);
}
