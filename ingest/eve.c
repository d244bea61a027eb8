/*
 * Detector alerts from JSON lines: Suricata EVE (ingest_eve_parse), Zeek
 * notice.log (ingest_zeek_notice_parse), and the --eve-filter on them.
 *
 * jansson parses the line (it rejects invalid UTF-8, duplicate keys and
 * integers beyond 64 bits); this file only maps fields.  Every field read is
 * type-checked and range-checked before it is used, so a line either fills
 * the whole struct or is refused with one reason.  Addresses become the 16
 * bytes a flow key holds (IPv4 as IPv4-mapped), the protocol a number, the
 * timestamp ns since the epoch.  The mapping is documented in
 * docs/triggers.md; changing one means changing the other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "ingest/ingest.h"

__attribute__((format(printf, 3, 4))) static int malformed(char *err, size_t errlen,
                                                           const char *fmt, ...)
{
	if (errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return INGEST_E_MALFORMED;
}

/* ---- field helpers: 0 = read, 1 = absent, INGEST_E_MALFORMED = present but wrong ---- */

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *v, char *err,
                    size_t errlen)
{
	json_t *j = json_object_get(obj, key);
	if (!j)
		return 1;
	if (!json_is_integer(j) || json_integer_value(j) < 0 ||
	    (uint64_t)json_integer_value(j) > max)
		return malformed(err, errlen, "bad %s: not an integer 0..%llu", key,
		                 (unsigned long long)max);
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int get_string(json_t *obj, const char *key, const char **s, char *err, size_t errlen)
{
	json_t *j = json_object_get(obj, key);
	if (!j)
		return 1;
	if (!json_is_string(j))
		return malformed(err, errlen, "bad %s: not a string", key);
	*s = json_string_value(j);
	return 0;
}

/* Copies at most cap - 1 bytes, cut at a UTF-8 character boundary (jansson checked the rest). */
static void copy_utf8(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* A textual address into 16 bytes (IPv4 as ::ffff:a.b.c.d).  Returns the family, or 0. */
static int parse_addr(const char *s, uint8_t out[16])
{
	uint8_t v4[4];
	if (inet_pton(AF_INET, s, v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return AF_INET;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? AF_INET6 : 0;
}

/* ---- time: ISO 8601 as Suricata (and Zeek's JSON::TS_ISO8601) write it ---- */

static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return dm[m - 1] + (m == 2 && leap);
}

/* Fraction ".d{1,9}" (more digits are read and dropped) into ns; none is 0. */
static int parse_frac(const char **p, uint64_t *ns)
{
	*ns = 0;
	if (**p != '.')
		return 0;
	(*p)++;
	int n = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++, n++) {
		if (n < 9)
			*ns = *ns * 10 + (uint64_t)(**p - '0');
	}
	for (int i = n; i < 9; i++)
		*ns *= 10;
	return n > 0 ? 0 : -1;
}

/* Zone: "Z", "+hhmm", "+hh:mm", "+hh" (or '-'); none: UTC.  Offset in seconds east. */
static int parse_zone(const char *p, int64_t *off)
{
	int hh = 0, mm = 0, sign;
	*off = 0;
	if (*p == '\0' || (*p == 'Z' && p[1] == '\0'))
		return 0;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (digits(&p, 2, &hh))
		return -1;
	if (*p == ':')
		p++;
	if (*p && digits(&p, 2, &mm))
		return -1;
	if (*p || hh > 23 || mm > 59)
		return -1;
	*off = sign * (hh * 3600 + mm * 60);
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.frac][zone]" into ns since the epoch (1970 .. 9999). */
static int parse_iso_time(const char *s, uint64_t *ns)
{
	int y, mo, d, h, mi, sec;
	uint64_t frac;
	int64_t off;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != ' ') || !*p++ || digits(&p, 2, &h) ||
	    *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec) ||
	    parse_frac(&p, &frac) || parse_zone(p, &off))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	if (t < 0)
		return -1;
	*ns = (uint64_t)t * 1000000000u + frac;
	return 0;
}

/* ---- protocols ---- */

static const struct {
	const char *name;
	uint8_t num;
} proto_names[] = {
    /* names as Suricata writes them (IANA's keywords), matched without case */
    {"HOPOPT", 0},     {"ICMP", 1},      {"IGMP", 2},        {"IPv4", 4},       {"TCP", 6},
    {"UDP", 17},       {"IPv6", 41},     {"IPv6-Route", 43}, {"IPv6-Frag", 44}, {"GRE", 47},
    {"ESP", 50},       {"AH", 51},       {"IPv6-ICMP", 58},  {"ICMPv6", 58},    {"IPv6-NoNxt", 59},
    {"IPv6-Opts", 60}, {"OSPF", 89},     {"PIM", 103},       {"VRRP", 112},     {"L2TP", 115},
    {"SCTP", 132},     {"UDPLite", 136},
};

/* "TCP", "ipv6-icmp", "47" or the JSON integer 47 into *num.  0, or -1. */
static int parse_proto(json_t *j, uint8_t *num)
{
	if (json_is_integer(j)) {
		json_int_t v = json_integer_value(j);
		if (v < 0 || v > 255)
			return -1;
		*num = (uint8_t)v;
		return 0;
	}
	if (!json_is_string(j))
		return -1;
	const char *s = json_string_value(j);
	int v = 0, n = 0;
	for (; s[n] >= '0' && s[n] <= '9' && n < 4; n++)
		v = v * 10 + (s[n] - '0');
	if (n > 0 && s[n] == '\0' && n <= 3 && v <= 255) {
		*num = (uint8_t)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++) {
		if (strcasecmp(s, proto_names[i].name) == 0) {
			*num = proto_names[i].num;
			return 0;
		}
	}
	return -1;
}

static int has_ports(uint8_t proto)
{
	return proto == 6 || proto == 17 || proto == 132;
}

/* ---- the parts of an EVE alert ---- */

static void alert_init(struct ingest_eve_alert *a, enum ingest_eve_source src)
{
	memset(a, 0, sizeof(*a));
	a->source = src;
	a->family = AF_UNSPEC;
	a->icmp_type = a->icmp_code = -1;
}

/* "1:" and the base64 of a SHA-1 (27 characters and one '='): Community ID v1. */
static int community_id_valid(const char *s)
{
	if (strncmp(s, "1:", 2) != 0 || strlen(s) != 30 || s[29] != '=')
		return 0;
	for (int i = 2; i < 29; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return 0;
	}
	return 1;
}

static int read_community_id(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	const char *s = "";
	int r = get_string(o, "community_id", &s, err, errlen);
	if (r)
		return r == 1 ? 0 : r;
	if (!community_id_valid(s))
		return malformed(err, errlen,
		                 "bad community_id: not \"1:\" and 28 base64 characters");
	_Static_assert(INGEST_EVE_COMMUNITY_ID_MAX >= 31, "room for a Community ID v1");
	memcpy(a->community_id, s, 31);
	return 0;
}

/* src_ip and dest_ip: both, or neither when community_id names the flow. */
static int read_addrs(json_t *o, const char *ks, const char *kd, struct ingest_eve_alert *a,
                      char *err, size_t errlen)
{
	const char *s = "", *d = "";
	int rs = get_string(o, ks, &s, err, errlen), rd;
	if (rs < 0 || (rd = get_string(o, kd, &d, err, errlen)) < 0)
		return INGEST_E_MALFORMED;
	if (rs == 1 && rd == 1 && a->community_id[0])
		return 1;
	if (rs == 1 || rd == 1)
		return malformed(err, errlen, "missing %s", rs == 1 ? ks : kd);
	int fs = parse_addr(s, a->src), fd = parse_addr(d, a->dest);
	if (!fs || !fd)
		return malformed(err, errlen, "bad %s: not an IPv4 or IPv6 address", !fs ? ks : kd);
	if (fs != fd)
		return malformed(err, errlen, "%s and %s are of different address families", ks,
		                 kd);
	a->family = fs;
	return 0;
}

static int read_ports(json_t *o, const char *ks, const char *kd, struct ingest_eve_alert *a,
                      char *err, size_t errlen)
{
	uint64_t sp = 0, dp = 0;
	int rs = get_uint(o, ks, 65535, &sp, err, errlen), rd;
	if (rs < 0 || (rd = get_uint(o, kd, 65535, &dp, err, errlen)) < 0)
		return INGEST_E_MALFORMED;
	if (!has_ports(a->proto))
		return 0; /* ICMP and others: Suricata writes 0 or nothing; a flow key has 0 */
	if (rs == 1 || rd == 1)
		return malformed(err, errlen, "missing %s", rs == 1 ? ks : kd);
	a->src_port = (uint16_t)sp;
	a->dest_port = (uint16_t)dp;
	return 0;
}

static int read_icmp(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	uint64_t t = 0, c = 0;
	int r = get_uint(o, "icmp_type", 255, &t, err, errlen);
	if (r < 0)
		return r;
	if (r == 0)
		a->icmp_type = (int)t;
	r = get_uint(o, "icmp_code", 255, &c, err, errlen);
	if (r < 0)
		return r;
	if (r == 0)
		a->icmp_code = (int)c;
	return 0;
}

static int read_vlan(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, "vlan"), *e;
	size_t i;
	a->vlan_known = 1;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return malformed(err, errlen, "bad vlan: not an array");
	json_array_foreach(v, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) > 4095)
			return malformed(err, errlen, "bad vlan[%zu]: not a VLAN id 0..4095", i);
		if (i < 2)
			a->vlan[i] = (uint16_t)json_integer_value(e);
	}
	a->n_vlan = (unsigned)(json_array_size(v) > 255 ? 255 : json_array_size(v));
	return 0;
}

/* The 5-tuple (or community_id alone), protocol, ICMP type and code. */
static int read_flow(json_t *o, const char *ks, const char *kd, struct ingest_eve_alert *a,
                     char *err, size_t errlen)
{
	int r = read_community_id(o, a, err, errlen);
	if (r == 0)
		r = read_addrs(o, ks, kd, a, err, errlen);
	if (r)
		return r == 1 ? 0 : r; /* 1: community_id alone */
	json_t *p = json_object_get(o, "proto");
	if (!p)
		return malformed(err, errlen, "missing proto");
	if (parse_proto(p, &a->proto))
		return malformed(err, errlen, "bad proto: not a protocol name or number 0..255");
	return 0;
}

static int read_eve_time(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	const char *s = "";
	int r = get_string(o, "timestamp", &s, err, errlen);
	if (r == 1)
		return malformed(err, errlen, "missing timestamp");
	if (r == 0 && parse_iso_time(s, &a->ts_ns))
		return malformed(err, errlen, "bad timestamp: not YYYY-MM-DDTHH:MM:SS.ffffff+hhmm");
	return r;
}

static int read_alert(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	json_t *al = json_object_get(o, "alert");
	uint64_t sid = 0, sev = 0;
	const char *s = "";
	int r;
	if (!al)
		return malformed(err, errlen, "missing alert");
	if (!json_is_object(al))
		return malformed(err, errlen, "bad alert: not an object");
	if ((r = get_uint(al, "signature_id", UINT32_MAX, &sid, err, errlen)) != 0)
		return r == 1 ? malformed(err, errlen, "missing alert.signature_id") : r;
	if ((r = get_uint(al, "severity", 255, &sev, err, errlen)) != 0)
		return r == 1 ? malformed(err, errlen, "missing alert.severity") : r;
	a->has_sid = a->has_severity = 1;
	a->sid = (uint32_t)sid;
	a->severity = (unsigned)sev;
	if ((r = get_string(al, "signature", &s, err, errlen)) < 0)
		return r;
	if (r == 0)
		copy_utf8(a->signature, sizeof(a->signature), s);
	if ((r = get_string(al, "category", &s, err, errlen)) < 0)
		return r;
	if (r == 0)
		copy_utf8(a->category, sizeof(a->category), s);
	return 0;
}

static json_t *load_object(const char *line, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		malformed(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		malformed(err, errlen, "not a JSON object");
		json_decref(o);
		return NULL;
	}
	return o;
}

static int eve_fields(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	const char *type = "";
	uint64_t fid = 0;
	int r = get_string(o, "event_type", &type, err, errlen);
	if (r)
		return r == 1 ? malformed(err, errlen, "missing event_type") : r;
	if (strcmp(type, "alert") != 0)
		return 0;
	if ((r = read_eve_time(o, a, err, errlen)) ||
	    (r = read_flow(o, "src_ip", "dest_ip", a, err, errlen)) ||
	    (r = read_ports(o, "src_port", "dest_port", a, err, errlen)) ||
	    (r = read_icmp(o, a, err, errlen)) || (r = read_vlan(o, a, err, errlen)) ||
	    (r = read_alert(o, a, err, errlen)))
		return r;
	if ((r = get_uint(o, "flow_id", INT64_MAX, &fid, err, errlen)) < 0)
		return r;
	a->has_flow_id = r == 0;
	a->flow_id = r == 0 ? fid : 0;
	return 1;
}

int ingest_eve_parse(const char *line, size_t len, struct ingest_eve_alert *out, char *err,
                     size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	alert_init(out, INGEST_EVE_SURICATA);
	json_t *o = load_object(line, len, err, errlen);
	if (!o)
		return INGEST_E_MALFORMED;
	int r = eve_fields(o, out, err, errlen);
	json_decref(o);
	return r;
}

/* ---- Zeek notice.log ---- */

/* Zeek writes record fields flattened ("id.orig_h"); forwarders may nest them ("id": {...}). */
static json_t *zeek_get(json_t *o, const char *key)
{
	json_t *j = json_object_get(o, key);
	json_t *id = json_object_get(o, "id");
	if (j || strncmp(key, "id.", 3) != 0 || !json_is_object(id))
		return j;
	return json_object_get(id, key + 3);
}

/* ts: epoch seconds (default, microseconds kept) or an ISO 8601 string. */
static int read_zeek_time(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	json_t *t = json_object_get(o, "ts");
	if (!t)
		return malformed(err, errlen, "missing ts");
	if (json_is_string(t)) {
		if (parse_iso_time(json_string_value(t), &a->ts_ns))
			return malformed(err, errlen, "bad ts: not an ISO 8601 time");
		return 0;
	}
	double v = json_is_number(t) ? json_number_value(t) : -1;
	if (!(v >= 0 && v < 1.8e10))
		return malformed(err, errlen, "bad ts: not epoch seconds");
	double sec = floor(v);
	uint64_t us = (uint64_t)llround((v - sec) * 1e6);
	a->ts_ns = (uint64_t)sec * 1000000000u + us * 1000u;
	return 0;
}

/* Zeek's ports of an ICMP "connection" are its type (orig_p) and code (resp_p). */
static int zeek_ports(json_t *o, const char *proto, struct ingest_eve_alert *a, char *err,
                      size_t errlen)
{
	json_t *sp = zeek_get(o, "id.orig_p"), *dp = zeek_get(o, "id.resp_p");
	int icmp = strcmp(proto, "icmp") == 0;
	json_int_t max = icmp ? 255 : 65535;
	if (!sp || !dp)
		return malformed(err, errlen, "missing %s", !sp ? "id.orig_p" : "id.resp_p");
	if (!json_is_integer(sp) || !json_is_integer(dp) || json_integer_value(sp) < 0 ||
	    json_integer_value(dp) < 0 || json_integer_value(sp) > max ||
	    json_integer_value(dp) > max)
		return malformed(err, errlen, "bad id.orig_p or id.resp_p: not a port 0..%d",
		                 (int)max);
	if (icmp) {
		a->proto = a->family == AF_INET6 ? 58 : 1;
		a->icmp_type = (int)json_integer_value(sp);
		a->icmp_code = (int)json_integer_value(dp);
		return 0;
	}
	a->proto = strcmp(proto, "tcp") == 0 ? 6 : 17;
	a->src_port = (uint16_t)json_integer_value(sp);
	a->dest_port = (uint16_t)json_integer_value(dp);
	return 0;
}

/* 1: a flow; 0: a notice about no flow (skipped). */
static int zeek_flow(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	json_t *h = zeek_get(o, "id.orig_h"), *r = zeek_get(o, "id.resp_h");
	int rc = read_community_id(o, a, err, errlen);
	if (rc)
		return rc;
	if (!h && !r)
		return a->community_id[0] ? 1 : 0;
	if (!h || !r || !json_is_string(h) || !json_is_string(r))
		return malformed(err, errlen,
		                 "bad id.orig_h or id.resp_h: missing or not a string");
	int fs = parse_addr(json_string_value(h), a->src),
	    fd = parse_addr(json_string_value(r), a->dest);
	if (!fs || fs != fd)
		return malformed(err, errlen,
		                 "bad id.orig_h or id.resp_h: not two addresses of one family");
	a->family = fs;
	const char *proto = "";
	if ((rc = get_string(o, "proto", &proto, err, errlen)) != 0)
		return rc == 1 ? malformed(err, errlen, "missing proto") : rc;
	if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "icmp")) {
		if (strcmp(proto, "unknown_transport") == 0 && !a->community_id[0])
			return 0;
		if (strcmp(proto, "unknown_transport") != 0)
			return malformed(err, errlen,
			                 "bad proto: not tcp, udp, icmp or unknown_transport");
		a->family = AF_UNSPEC; /* the community_id alone */
		memset(a->src, 0, sizeof(a->src));
		memset(a->dest, 0, sizeof(a->dest));
		return 1;
	}
	rc = zeek_ports(o, proto, a, err, errlen);
	return rc ? rc : 1;
}

static int zeek_fields(json_t *o, struct ingest_eve_alert *a, char *err, size_t errlen)
{
	const char *note = "", *msg = NULL;
	int r = get_string(o, "note", &note, err, errlen);
	if (r)
		return r == 1 ? malformed(err, errlen, "missing note") : r;
	if ((r = get_string(o, "msg", &msg, err, errlen)) < 0 ||
	    (r = read_zeek_time(o, a, err, errlen)) != 0)
		return r;
	if ((r = zeek_flow(o, a, err, errlen)) != 1)
		return r;
	copy_utf8(a->signature, sizeof(a->signature), note);
	size_t n = strlen(a->signature);
	if (msg && n + 2 < sizeof(a->signature)) {
		memcpy(a->signature + n, ": ", 3);
		copy_utf8(a->signature + n + 2, sizeof(a->signature) - n - 2, msg);
	}
	return 1;
}

int ingest_zeek_notice_parse(const char *line, size_t len, struct ingest_eve_alert *out, char *err,
                             size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	alert_init(out, INGEST_EVE_ZEEK);
	json_t *o = load_object(line, len, err, errlen);
	if (!o)
		return INGEST_E_MALFORMED;
	int r = zeek_fields(o, out, err, errlen);
	json_decref(o);
	return r;
}

/* ---- --eve-filter ---- */

enum filter_field { FIELD_SID, FIELD_SEVERITY };
enum filter_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

/* bounds that keep a filter small whatever text it is given */
#define FILTER_MAX_TERMS 1024
#define FILTER_MAX_RANGES 65536

struct filter_range {
	uint64_t lo, hi;
};

struct filter_term {
	enum filter_field field;
	enum filter_op op;
	size_t first, n; /* its values: ranges[first .. first + n); one for <, <=, >, >= */
};

struct ingest_eve_filter {
	struct filter_term *terms;
	size_t n_terms, cap_terms;
	struct filter_range *ranges;
	size_t n_ranges, cap_ranges;
};

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static int read_number(const char **p, uint64_t max, uint64_t *v)
{
	const char *s = *p;
	*v = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		*v = *v * 10 + (uint64_t)(**p - '0');
		if (*v > max)
			return -1;
	}
	return *p > s ? 0 : -1;
}

static int read_field(const char **p, enum filter_field *f, uint64_t *max)
{
	static const struct {
		const char *name;
		enum filter_field field;
		uint64_t max;
	} fields[] = {{"severity", FIELD_SEVERITY, 255}, {"sid", FIELD_SID, UINT32_MAX}};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		size_t n = strlen(fields[i].name);
		if (strncmp(*p, fields[i].name, n) == 0) {
			*p += n;
			*f = fields[i].field;
			*max = fields[i].max;
			return 0;
		}
	}
	return -1;
}

static int read_op(const char **p, enum filter_op *op)
{
	static const struct {
		const char *s;
		enum filter_op op;
	} ops[] = {{"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE},
	           {"=", OP_EQ},  {"<", OP_LT},  {">", OP_GT}};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = strlen(ops[i].s);
		if (strncmp(*p, ops[i].s, n) == 0) {
			*p += n;
			*op = ops[i].op;
			return 0;
		}
	}
	return -1;
}

/* One VALUE: NUMBER or NUMBER-NUMBER (ranges only with = and !=). */
static int read_value(const char **p, uint64_t max, enum filter_op op, struct filter_range *v,
                      char *err, size_t errlen)
{
	const char *at = *p;
	if (read_number(p, max, &v->lo))
		return malformed(err, errlen, "at \"%.20s\": expected a number 0..%llu", at,
		                 (unsigned long long)max);
	v->hi = v->lo;
	skip_space(p);
	if (**p != '-')
		return 0;
	(*p)++;
	skip_space(p);
	if (op != OP_EQ && op != OP_NE)
		return malformed(err, errlen, "at \"%.20s\": a range needs = or !=", at);
	if (read_number(p, max, &v->hi) || v->hi < v->lo)
		return malformed(err, errlen, "at \"%.20s\": expected a range LOW-HIGH", at);
	return 0;
}

static int add_range(struct ingest_eve_filter *f, struct filter_range v, char *err, size_t errlen)
{
	if (f->n_ranges >= FILTER_MAX_RANGES)
		return malformed(err, errlen, "more than %d values", FILTER_MAX_RANGES);
	if (qq_grow((void **)&f->ranges, &f->cap_ranges, f->n_ranges + 1, sizeof(*f->ranges)))
		return -ENOMEM;
	f->ranges[f->n_ranges++] = v;
	return 0;
}

/* A comma followed by a digit continues the term's values; anything else ends the term. */
static int more_values(const char **p)
{
	const char *q = *p;
	skip_space(&q);
	if (*q != ',')
		return 0;
	q++;
	skip_space(&q);
	if (*q < '0' || *q > '9')
		return 0;
	*p = q;
	return 1;
}

static int read_term(struct ingest_eve_filter *f, const char **p, char *err, size_t errlen)
{
	struct filter_term t = {.first = f->n_ranges};
	struct filter_range v = {0, 0};
	uint64_t max;
	const char *at = *p;
	int r;
	if (f->n_terms >= FILTER_MAX_TERMS)
		return malformed(err, errlen, "more than %d terms", FILTER_MAX_TERMS);
	if (read_field(p, &t.field, &max))
		return malformed(err, errlen, "at \"%.20s\": expected sid or severity", at);
	skip_space(p);
	if (read_op(p, &t.op))
		return malformed(err, errlen, "at \"%.20s\": expected =, !=, <, <=, > or >=", at);
	do {
		skip_space(p);
		if ((r = read_value(p, max, t.op, &v, err, errlen)) ||
		    (r = add_range(f, v, err, errlen)))
			return r;
		t.n++;
	} while ((t.op == OP_EQ || t.op == OP_NE) && more_values(p));
	if (qq_grow((void **)&f->terms, &f->cap_terms, f->n_terms + 1, sizeof(*f->terms)))
		return -ENOMEM;
	f->terms[f->n_terms++] = t;
	return 0;
}

static int filter_text(struct ingest_eve_filter *f, const char *text, char *err, size_t errlen)
{
	const char *p = text;
	for (;;) {
		skip_space(&p);
		int r = read_term(f, &p, err, errlen);
		if (r)
			return r;
		skip_space(&p);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return malformed(err, errlen, "at \"%.20s\": expected , or the end", p);
		p++;
	}
}

int ingest_eve_filter_parse(struct ingest_eve_filter **f, const char *text, char *err,
                            size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	struct ingest_eve_filter *nf = *f ? *f : calloc(1, sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	size_t n_terms = nf->n_terms, n_ranges = nf->n_ranges;
	int r = filter_text(nf, text, err, errlen);
	if (r == -ENOMEM)
		malformed(err, errlen, "no memory");
	if (r && !*f)
		ingest_eve_filter_free(nf);
	else if (r) {
		nf->n_terms = n_terms; /* as before: the text added nothing */
		nf->n_ranges = n_ranges;
	} else
		*f = nf;
	return r;
}

static int term_holds(const struct ingest_eve_filter *f, const struct filter_term *t, uint64_t v)
{
	const struct filter_range *rg = f->ranges + t->first;
	int in = 0;
	for (size_t i = 0; i < t->n && !in; i++)
		in = v >= rg[i].lo && v <= rg[i].hi;
	switch (t->op) {
	case OP_EQ:
		return in;
	case OP_NE:
		return !in;
	case OP_LT:
		return v < rg->lo;
	case OP_LE:
		return v <= rg->lo;
	case OP_GT:
		return v > rg->lo;
	default:
		return v >= rg->lo;
	}
}

int ingest_eve_filter_match(const struct ingest_eve_filter *f, const struct ingest_eve_alert *a)
{
	for (size_t i = 0; f && i < f->n_terms; i++) {
		const struct filter_term *t = &f->terms[i];
		int has = t->field == FIELD_SID ? a->has_sid : a->has_severity;
		uint64_t v = t->field == FIELD_SID ? a->sid : a->severity;
		if (!has || !term_holds(f, t, v))
			return 0;
	}
	return 1;
}

void ingest_eve_filter_free(struct ingest_eve_filter *f)
{
	if (!f)
		return;
	free(f->terms);
	free(f->ranges);
	free(f);
}
