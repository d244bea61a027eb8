/*
 * libFuzzer target: the index's record decoders (archive/index.c, terms.c)
 * on arbitrary bytes, as a damaged or hostile LMDB file would hand them.
 * The first byte picks the record: segment, frame, flow (49-, 47- or
 * 25-byte key) or posting list; the rest is key then value.  The decoders are
 * strict, so the oracle is exact: what one accepts re-encodes to the very
 * bytes it read (reserved bytes zero, varints in their shortest form,
 * nothing after the last field, runs maximal), with no unknown flag, a last
 * timestamp not before the first, and VLAN ids of 12 bits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_pvt.h"
#include "archive/terms_pvt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PLIST_FRAMES_MAX 4096u /* frames re-encoded per list: a hostile run stops there */

/* An exact-size copy: the sanitizer sees a read one byte past it. */
static MDB_val copy(const uint8_t *p, size_t n)
{
	MDB_val v = {.mv_size = n, .mv_data = malloc(n ? n : 1)};
	if (!v.mv_data)
		abort();
	memcpy(v.mv_data, p, n);
	return v;
}

static void same(const void *a, const MDB_val *v, size_t n)
{
	if (v->mv_size != n || (n && memcmp(a, v->mv_data, n) != 0))
		abort(); /* accepted, yet not what the encoder writes */
}

static void segment(const uint8_t *p, size_t n)
{
	MDB_val v = copy(p, n);
	struct archive_segment_info s;
	uint8_t out[SEG_REC_LEN];
	if (archive__seg_decode(7, &v, &s) == 0) {
		if ((s.flags & ~ARCHIVE_SEG_UNINDEXED) ||
		    (s.state != ARCHIVE_SEG_OPEN && s.state != ARCHIVE_SEG_CLOSED))
			abort();
		archive__seg_encode(&s, s.created_ns, out);
		same(out, &v, sizeof(out));
	}
	free(v.mv_data);
}

static void frame(const uint8_t *p, size_t n)
{
	size_t kn = n < FRAME_KEY_LEN ? n : FRAME_KEY_LEN;
	MDB_val k = copy(p, kn), v = copy(p + kn, n - kn);
	struct archive_frame_info f;
	uint8_t out[FRAME_REC_LEN];
	if (archive__frame_decode(&k, &v, &f) == 0) {
		if (f.flags & ~ARCHIVE_FRAME_UNINDEXED)
			abort();
		archive__frame_encode(&f, out);
		same(out, &v, sizeof(out));
	}
	free(k.mv_data);
	free(v.mv_data);
}

static void flow(const uint8_t *p, size_t n, size_t keylen)
{
	size_t kn = n < keylen ? n : keylen;
	MDB_val k = copy(p, kn), v = copy(p + kn, n - kn);
	struct archive_flow_info f;
	uint8_t out[FLOW_REC_MAX], key[FLOW_KEY_LEN];
	if (archive__flow_decode(&k, &v, &f) == 0) {
		if (f.last_ns < f.first_ns || f.key.vlan > 0xfff || f.key.vlan_inner > 0xfff)
			abort(); /* time runs forwards; VLAN ids are 12 bits */
		same(out, &v, archive__flow_encode(&f, out));
		if (keylen == FLOW_KEY_LEN_V2 && f.key.vlan_inner != 0)
			abort(); /* a format 2 key has no inner tag */
		/* the key again, as long as it was read (format 2's: the long one but its end) */
		size_t kl = archive__flow_key_put(f.seg, &f.key, keylen != FLOW_KEY_LEN_IP4, key);
		same(key, &k, keylen < kl ? keylen : kl);
		MDB_val again = {.mv_size = archive__flow_key_put(f.seg, &f.key, 0, key),
		                 .mv_data = key};
		struct ft_flow_key back;
		archive__flow_key_get(&again, &back);
		if (memcmp(&back, &f.key, sizeof(back)) != 0)
			abort(); /* format 4's key read back is not the flow it was written for */
	}
	free(k.mv_data);
	free(v.mv_data);
}

struct replay {
	struct plist pl;
	uint32_t n;
	int err;
};

static int replay_add(uint32_t f, void *arg)
{
	struct replay *r = arg;
	if (++r->n > PLIST_FRAMES_MAX)
		return 1;
	if (r->pl.len && f < r->pl.end)
		abort(); /* frames come in increasing order */
	r->err = archive__plist_add(&r->pl, f);
	return r->err;
}

static void postings(const uint8_t *p, size_t n)
{
	MDB_val v = copy(p, n);
	struct replay r = {.n = 0};
	if (archive__plist_decode(v.mv_data, v.mv_size, replay_add, &r) == 0 && !r.err)
		same(r.pl.buf, &v, r.pl.len);
	free(r.pl.buf);
	free(v.mv_data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 6) {
	case 0:
		segment(p, n);
		break;
	case 1:
		frame(p, n);
		break;
	case 2:
		flow(p, n, FLOW_KEY_LEN);
		break;
	case 3:
		flow(p, n, FLOW_KEY_LEN_V2);
		break;
	case 5:
		flow(p, n, FLOW_KEY_LEN_IP4);
		break;
	default:
		postings(p, n);
		break;
	}
	return 0;
}
