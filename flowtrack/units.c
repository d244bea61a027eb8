/*
 * The numbers people type, parsed strictly: module arguments
 * ("stats:top=20,idle=30s") and the command line's values (tools/cli.c
 * calls these) go through the same functions, so both accept and refuse
 * the same text.  RFC 3339 times are here too, for the command line and for
 * the query library (Stenographer's "after 2026-12-02T10:00:00Z").
 *
 * A parser takes the whole string or nothing.  Numbers are decimal digits
 * with, where allowed, a fraction, and are computed in integers: no strtod,
 * so "inf", "nan", "1e30", "0x10", "-1", " 5" and "10x" are errors, and a
 * value beyond 64 bits is -ERANGE, never a wrapped value or a float cast out
 * of range.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "flowtrack/flowtrack.h"

#define FRAC_DIGITS 9 /* fraction digits kept: ns of a second; later ones must be 0 to be exact */

/* A decimal "<digits>[.<digits>]" at s, read up to the first other character (*end). */
struct decimal {
	uint64_t whole;
	uint64_t frac, scale; /* the fraction is frac / scale (scale a power of 10, <= 10^9) */
	int dropped;          /* a non-zero fraction digit beyond FRAC_DIGITS was dropped */
	int overflow;         /* whole does not fit 64 bits */
};

static int decimal_read(const char *s, int allow_frac, struct decimal *d, const char **end)
{
	const char *p = s;
	*d = (struct decimal){.scale = 1};
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned dig = (unsigned)(*p - '0');
		if (d->whole > (UINT64_MAX - dig) / 10)
			d->overflow = 1;
		else
			d->whole = d->whole * 10 + dig;
	}
	if (*p == '.' && allow_frac) {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (int n = 0; isdigit((unsigned char)*p); p++, n++)
			if (n < FRAC_DIGITS) {
				d->frac = d->frac * 10 + (uint64_t)(*p - '0');
				d->scale *= 10;
			} else if (*p != '0') {
				d->dropped = 1;
			}
	}
	*end = p;
	return 0;
}

/*
 * d x unit (> 0), rounded down, in *out: 0, or -ERANGE beyond 64 bits.  *exact
 * (if not NULL) says whether nothing was rounded away.
 */
static int decimal_scale(const struct decimal *d, uint64_t unit, uint64_t *out, int *exact)
{
	__uint128_t part = (__uint128_t)d->frac * unit;
	if (d->overflow || d->whole > UINT64_MAX / unit)
		return -ERANGE;
	uint64_t whole = d->whole * unit, fpart = (uint64_t)(part / d->scale);
	if (whole > UINT64_MAX - fpart)
		return -ERANGE;
	if (exact)
		*exact = !d->dropped && part % d->scale == 0;
	*out = whole + fpart;
	return 0;
}

int ft_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	struct decimal d;
	const char *end;
	if (!s || decimal_read(s, 0, &d, &end) != 0 || *end)
		return -EINVAL;
	if (d.overflow || d.whole < min || d.whole > max)
		return -ERANGE;
	*out = d.whole;
	return 0;
}

int ft_parse_count(const char *s, uint64_t *out)
{
	struct decimal d;
	const char *end;
	if (!s || decimal_read(s, 1, &d, &end) != 0)
		return -EINVAL;
	uint64_t unit = strcmp(end, "") == 0                             ? 1
	                : strcmp(end, "k") == 0 || strcmp(end, "K") == 0 ? 1000
	                : strcmp(end, "M") == 0                          ? 1000000
	                : strcmp(end, "G") == 0                          ? 1000000000
	                                                                 : 0;
	int exact, r;
	if (!unit)
		return -EINVAL;
	if ((r = decimal_scale(&d, unit, out, &exact)) != 0)
		return r;
	return exact ? 0 : -EINVAL; /* "1.5" or "1.0005k": not a whole count */
}

/* "K", "M", "G", "T" in any case, then an optional "i" and "B": the power of 2; -1 if none. */
static int size_shift(const char *u)
{
	static const char letters[] = "KMGT";
	if (!*u)
		return 0;
	const char *l = strchr(letters, toupper((unsigned char)*u));
	if (!l)
		return -1;
	u++;
	if (toupper((unsigned char)*u) == 'I')
		u++;
	if (toupper((unsigned char)*u) == 'B')
		u++;
	return *u ? -1 : 10 * (int)(l - letters + 1);
}

int ft_parse_size(const char *s, uint64_t *out)
{
	struct decimal d;
	const char *end;
	if (!s || decimal_read(s, 0, &d, &end) != 0)
		return -EINVAL;
	int shift = size_shift(end);
	if (shift < 0)
		return -EINVAL;
	if (d.overflow || (shift && d.whole > (UINT64_MAX >> shift)))
		return -ERANGE;
	*out = d.whole << shift;
	return 0;
}

/* ns per unit name, 0 if not a unit. */
static uint64_t duration_unit(const char *u)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {{"ns", 1},
	             {"us", 1000},
	             {"ms", 1000000},
	             {"s", 1000000000ull},
	             {"m", 60000000000ull},
	             {"h", 3600000000000ull},
	             {"d", 86400000000000ull}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(u, units[i].name) == 0)
			return units[i].ns;
	return 0;
}

int ft_parse_duration(const char *s, uint64_t *out)
{
	struct decimal d;
	const char *end;
	if (!s || decimal_read(s, 1, &d, &end) != 0)
		return -EINVAL;
	uint64_t unit = *end ? duration_unit(end) : 1000000000ull; /* bare number: seconds */
	if (!unit)
		return -EINVAL;
	return decimal_scale(&d, unit, out, NULL);
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* "Z", "+hh:mm", "-hh:mm" -> offset east of UTC in seconds. */
static int parse_zone(const char *p, long *off)
{
	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		*off = 0;
		return 0;
	}
	int hh, mm;
	if ((p[0] != '+' && p[0] != '-') || (p++, digits(&p, 2, &hh)) || *p++ != ':' ||
	    digits(&p, 2, &mm) || *p || hh > 23 || mm > 59)
		return -EINVAL;
	*off = (hh * 3600L + mm * 60L) * (p[-6] == '-' ? -1 : 1);
	return 0;
}

int ft_parse_rfc3339(const char *s, uint64_t *out)
{
	struct tm tm = {0};
	const char *p = s;
	int y, mo, d, h, mi, sec;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') ||
	    (p++, digits(&p, 2, &h)) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	uint64_t frac = 0;
	if (*p == '.') {
		uint64_t scale = 1000000000u;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*p - '0') * scale;
			}
	}
	long zone;
	if (parse_zone(p, &zone))
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (tm.tm_mday != d) /* timegm normalised an impossible date such as 02-30 */
		return -EINVAL;
	long long secs = (long long)t - zone;
	/* ns since 1970 in a u64: to 2554-07-21T23:34:33.709551615Z, no wrapping */
	if (secs < 0 || (uint64_t)secs > (UINT64_MAX - frac) / 1000000000u)
		return -ERANGE;
	*out = (uint64_t)secs * 1000000000u + frac;
	return 0;
}
