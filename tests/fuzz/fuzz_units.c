/*
 * libFuzzer target: the values people type (flowtrack/units.c's sizes,
 * durations, counts and whole numbers, and the command line's times,
 * tools/cli.c) on arbitrary text.  The first byte picks the parser, the rest
 * is the text.  A parser returns 0, -EINVAL or -ERANGE and nothing else; what
 * it accepts, printed back in the plainest form, parses to the same value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtrack/flowtrack.h"
#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS 1796000000000000000ull /* 2026-11-29: "15m ago" and "now" resolve against it */

static void check_rc(int r)
{
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		abort();
}

/* v printed as decimal digits (and unit) parses back to v. */
static void round_trip(int (*parse)(const char *, uint64_t *), uint64_t v, const char *unit)
{
	char buf[64];
	uint64_t back = ~v;
	snprintf(buf, sizeof(buf), "%" PRIu64 "%s", v, unit);
	if (parse(buf, &back) != 0 || back != v)
		abort();
}

static void time_check(const char *s)
{
	uint64_t t = 0, back = 1;
	char buf[64];
	int r = cli_parse_time(s, NOW_NS, &t);
	check_rc(r);
	if (r != 0)
		return;
	/* RFC 3339 printing covers years 1970..9999: beyond, it is not a time to type */
	if (t / 1000000000u > 253402300799ull)
		return;
	cli_format_time(t, buf, sizeof(buf));
	if (cli_parse_time(buf, NOW_NS, &back) != 0 || back != t)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 256)
		return 0;
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	uint64_t v = 0, lo = data[0] >> 3, hi = lo * 1000;
	int r;
	switch (data[0] % 5) {
	case 0:
		check_rc(r = ft_parse_size(s, &v));
		if (r == 0)
			round_trip(ft_parse_size, v, "");
		break;
	case 1:
		check_rc(r = ft_parse_duration(s, &v));
		if (r == 0)
			round_trip(ft_parse_duration, v, "ns");
		break;
	case 2:
		check_rc(r = ft_parse_count(s, &v));
		if (r == 0)
			round_trip(ft_parse_count, v, "");
		break;
	case 3:
		check_rc(r = ft_parse_uint(s, lo, hi, &v));
		if (r == 0 && (v < lo || v > hi))
			abort();
		break;
	default:
		time_check(s);
		break;
	}
	free(s);
	return 0;
}
