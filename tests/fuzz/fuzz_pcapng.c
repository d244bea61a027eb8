/*
 * libFuzzer target: the file source (ingest/file.c) on arbitrary bytes:
 * plain pcap files (either byte order, micro- or nanosecond) as libpcap reads
 * them, and pcapng, above all the block walk (ingest/pcapng_links.c) that
 * hands libpcap files whose interfaces differ; the seeds (corpus/fuzz_pcapng)
 * hold both.  The input goes to a memfd read as a file; when its
 * first byte is odd, a section header and two interface blocks of different
 * link types come first, so the fuzzer starts inside a valid pcapng.  Every
 * packet's bytes are read: a read past them is a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t head[] = {
    /* SHB, little-endian, 28 bytes */
    0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
    /* IDB: Ethernet, snaplen 96 */
    1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 96, 0, 0, 0, 20, 0, 0, 0,
    /* IDB: Linux cooked, snaplen 0 */
    1, 0, 0, 0, 20, 0, 0, 0, 113, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0};

static volatile uint8_t sink;

static void burst(void *arg, const struct ingest_burst *b)
{
	(void)arg;
	for (unsigned i = 0; i < b->n; i++)
		for (uint32_t j = 0; j < b->pkt[i].caplen; j++)
			sink ^= b->pkt[i].data[j];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if ((data[0] & 1) && write(fd, head, sizeof(head)) != (ssize_t)sizeof(head))
		abort();
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	char path[64], err[INGEST_ERRBUF_SIZE];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct ingest_source *s;
	if (ingest_file_open(path, 0, &s, err) == 0) {
		ingest_source_run_burst(s, 0, burst, NULL, err);
		ingest_source_close(s);
	}
	close(fd);
	return 0;
}
