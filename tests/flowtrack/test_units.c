/*
 * The strict number parsers (flowtrack/units.c) that module arguments and
 * the command line share: every unit, fractions, the 64-bit edges, and the
 * text strtod would take ("inf", "nan", "1e30", "0x10", "-1", " 5"); then the
 * built-in modules' arguments through ft_modset_create: each bad value is
 * refused with one message naming the module and the argument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "flowtrack/flowtrack.h"

/* Text a float parser would take, and other near-numbers: never a value. */
static const char *const not_numbers[] = {
    "",   "inf", "-inf", "nan", "NaN", "infinity", "1e30",  "1E3", "0x10", "-1",    "+1",
    " 5", "5 ",  "5\n",  ".5",  "5.",  "1..2",     "1.2.3", "10x", "k",    "1,000",
};

static void test_not_numbers(void **state)
{
	(void)state;
	uint64_t v = 77;
	for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
		const char *s = not_numbers[i];
		assert_int_equal(ft_parse_uint(s, 0, UINT64_MAX, &v), -EINVAL);
		assert_int_equal(ft_parse_count(s, &v), -EINVAL);
		assert_int_equal(ft_parse_size(s, &v), -EINVAL);
		/* "5" + a unit is a duration; the others are not */
		assert_int_equal(ft_parse_duration(s, &v), -EINVAL);
	}
	assert_int_equal(v, 77); /* untouched by every error */
	assert_int_equal(ft_parse_uint(NULL, 0, 1, &v), -EINVAL);
}

static void test_uint(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(ft_parse_uint("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(ft_parse_uint("007", 0, 10, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(ft_parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(ft_parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(ft_parse_uint("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(ft_parse_uint("11", 0, 10, &v), -ERANGE);
	assert_int_equal(ft_parse_uint("0", 1, 10, &v), -ERANGE);
	assert_int_equal(ft_parse_uint("1.5", 0, 10, &v), -EINVAL); /* no fraction, no suffix */
	assert_int_equal(ft_parse_uint("1k", 0, 10000, &v), -EINVAL);
}

static void test_count(void **state)
{
	(void)state;
	uint64_t v;
	const struct {
		const char *s;
		uint64_t want;
	} ok[] = {{"0", 0},
	          {"1500", 1500},
	          {"10k", 10000},
	          {"10K", 10000},
	          {"5M", 5000000},
	          {"2G", 2000000000},
	          {"1.5k", 1500},
	          {"2.5M", 2500000},
	          {"0.000000001G", 1},
	          {"1.0000000000000", 1},
	          {"18446744073709551615", UINT64_MAX},
	          {"18446744073.709551615G", UINT64_MAX}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(ft_parse_count(ok[i].s, &v), 0);
		assert_true(v == ok[i].want);
	}
	assert_int_equal(ft_parse_count("1.5", &v), -EINVAL);     /* not whole */
	assert_int_equal(ft_parse_count("1.0005k", &v), -EINVAL); /* 1000.5 */
	assert_int_equal(ft_parse_count("1.0000000001", &v), -EINVAL);
	assert_int_equal(ft_parse_count("5m", &v), -EINVAL); /* milli is no count */
	assert_int_equal(ft_parse_count("5T", &v), -EINVAL);
	assert_int_equal(ft_parse_count("5kk", &v), -EINVAL);
	assert_int_equal(ft_parse_count("18446744073709551616", &v), -ERANGE);
	assert_int_equal(ft_parse_count("18446744073709552k", &v), -ERANGE);
	assert_int_equal(ft_parse_count("18446744074G", &v), -ERANGE);
}

static void test_size(void **state)
{
	(void)state;
	uint64_t v;
	const struct {
		const char *s;
		uint64_t want;
	} ok[] = {{"1048576", 1048576},
	          {"64k", 65536},
	          {"512M", 512ull << 20},
	          {"4G", 4ull << 30},
	          {"1T", 1ull << 40},
	          {"2MiB", 2ull << 20},
	          {"2mb", 2ull << 20},
	          {"3Ki", 3072},
	          {"16777215T", 16777215ull << 40},
	          {"0", 0}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(ft_parse_size(ok[i].s, &v), 0);
		assert_true(v == ok[i].want);
	}
	assert_int_equal(ft_parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(ft_parse_size("5P", &v), -EINVAL);
	assert_int_equal(ft_parse_size("5B", &v), -EINVAL);
	assert_int_equal(ft_parse_size("5MBx", &v), -EINVAL);
	assert_int_equal(ft_parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(ft_parse_size("18446744073709551616", &v), -ERANGE);
}

static void test_duration(void **state)
{
	(void)state;
	uint64_t v;
	const struct {
		const char *s;
		uint64_t want;
	} ok[] = {{"30s", 30000000000ull},
	          {"30", 30000000000ull},
	          {"1.5s", 1500000000ull},
	          {"250ms", 250000000ull},
	          {"1.5m", 90000000000ull},
	          {"2h", 7200000000000ull},
	          {"7d", 604800000000000ull},
	          {"10us", 10000},
	          {"1ns", 1},
	          {"0.0000000001s", 0}, /* below a ns: rounded down */
	          {"0", 0},
	          {"18446744073.709551615", UINT64_MAX}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(ft_parse_duration(ok[i].s, &v), 0);
		assert_true(v == ok[i].want);
	}
	assert_int_equal(ft_parse_duration("5 s", &v), -EINVAL);
	assert_int_equal(ft_parse_duration("5sec", &v), -EINVAL);
	assert_int_equal(ft_parse_duration("5S", &v), -EINVAL);
	assert_int_equal(ft_parse_duration("1e3s", &v), -EINVAL);
	assert_int_equal(ft_parse_duration("18446744073.709551616", &v), -ERANGE);
	assert_int_equal(ft_parse_duration("213504d", &v), -ERANGE);
	assert_int_equal(ft_parse_duration("99999999999999999999999ns", &v), -ERANGE);
}

/* spec must be refused with `want` in its one-line message; 1 (said) if not. */
static int refused(const char *spec, const char *want)
{
	struct ft_modset *ms = NULL;
	char err[256] = "";
	const char *specs[] = {spec};
	int r = ft_modset_create(specs, 1, 1, &ms, err, sizeof(err));
	if (r == -EINVAL && strstr(err, want) && !strchr(err, '\n'))
		return 0;
	print_message("%s: %d '%s', want -EINVAL and '%s'\n", spec, r, r ? err : "accepted", want);
	ft_modset_destroy(ms);
	return 1;
}

static void test_module_arguments(void **state)
{
	(void)state;
	int bad = 0;
	bad += refused("stats:top=inf",
	               "module stats: bad argument 'top=inf': expected a whole count");
	bad +=
	    refused("stats:idle=nan", "module stats: bad argument 'idle=nan': expected a duration");
	bad += refused("stats:interval=-1s",
	               "module stats: bad argument 'interval=-1s': expected a duration");
	bad += refused("threshold:bytes=1e30",
	               "module threshold: bad argument 'bytes=1e30': expected a whole count");
	bad += refused("threshold:bytes=18446744073709551616",
	               "bad argument 'bytes=18446744073709551616': expected a whole count");
	bad +=
	    refused("threshold:packets=1.5", "bad argument 'packets=1.5': expected a whole count");
	bad += refused("threshold:rate=0x10", "bad argument 'rate=0x10': expected a whole count");
	bad += refused("threshold:packets=0", "bad argument 'packets=0': expected a whole count");
	bad += refused("stats:top=101", "module stats: bad argument 'top=101': expected a whole "
	                                "count such as 20, 10k or 2.5M, from 1 to 100");
	bad +=
	    refused("ttl:idle=99999999999999999999s", "bad argument 'idle=99999999999999999999s'");
	bad += refused("noop:idle=30 s", "bad argument 'idle=30 s': expected a duration");
	bad += refused("noop:speed=3", "bad argument 'speed=3': expected one of idle,");

	assert_int_equal(bad, 0);
	struct ft_modset *ms;
	char err[256];
	const char *good[] = {"stats:top=100,idle=1.5m,interval=250ms",
	                      "threshold:bytes=700k,packets=2.5k,rate=1G", "ttl:idle=1d"};
	assert_int_equal(ft_modset_create(good, 3, 1, &ms, err, sizeof(err)), 0);
	ft_modset_destroy(ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_not_numbers), cmocka_unit_test(test_uint),
	    cmocka_unit_test(test_count),       cmocka_unit_test(test_size),
	    cmocka_unit_test(test_duration),    cmocka_unit_test(test_module_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
