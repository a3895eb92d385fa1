/* feat.c - per-key feature state: apply, emit, encode, decode; see feat.h.
 *
 * Layout of one feature's state (struct fst):
 *   count/sum/avg/min/max without a window: n (events) and v (sum or
 *     extreme; isf when v is a double).
 *   the same with a window: p = wbk[len], buckets sorted oldest first;
 *     wbk.nf = events (31 bits) | v-is-double (bit 31), wbk.v = sum/extreme.
 *   first/latest/last: p = blob of n items [int64 t][uint16 len][value],
 *     best first (latest/last: greatest (t, value) first; first: least).
 *   topk: p = blob of n entries [uint16 len][uint16 k][uint32 total][value]
 *     [k x (uint32 bid, uint32 count)], buckets oldest first; unwindowed
 *     entries have k = 1 and bid 0.  total caches the sum of the counts
 *     (feat_tk_total()).
 *   distinct: mode 0: p = uint64 hashes[len], sorted; mode 1: p = HLL
 *     registers (2^FEAT_HLL_BITS bytes); mode 2 (window): p = dh[len]
 *     sorted by hash, each with the bucket it was last seen in.
 * Values are stored in canonical msgpack (feat_value_canon) so equal values
 * compare and hash equal whatever encoding the record used.
 */
#include "feat_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mpraw.h"

/* ---- small helpers ---------------------------------------------------- */

/* Age in buckets of bucket bid relative to now's bucket; valid when the
 * true age is below 2^32 (guaranteed for stored buckets, see advance()). */
static uint32_t
age_of(uint32_t cb, uint32_t bid)
{
	return cb - bid;
}

int
feat_grow(feat_state *st, fst *f, size_t need)
{
	if (need <= f->cap)
		return 0;
	size_t cap = f->cap + f->cap / 2;
	if (cap < need)
		cap = need;
	if (cap < 16)
		cap = 16;
	cap = (cap + 7) & ~(size_t)7;
	size_t delta = cap - f->cap;
	if ((size_t)st->used + delta > UINT32_MAX)
		return -1;
	if (st->used + delta > st->size) {
		size_t size = st->size + st->size / 4;
		if (size < st->used + delta)
			size = st->used + delta;
		size = (size + 63) & ~(size_t)63;
		uint8_t *m = realloc(st->mem, size);
		if (!m)
			return -1;
		st->mem = m;
		st->size = (uint32_t)size;
	}
	uint32_t end = f->off + f->cap;
	memmove(st->mem + end + delta, st->mem + end, st->used - end);
	for (fst *g = f + 1; g < st->f + st->nf; g++)
		g->off += (uint32_t)delta;
	f->cap = (uint32_t)cap;
	st->used += (uint32_t)delta;
	return 0;
}

static inline int
grow(feat_state *st, fst *f, size_t need, size_t elem)
{
	return need * elem <= f->cap ? 0 : feat_grow(st, f, need * elem);
}

static void
fst_clear(fst *f)
{
	f->len = 0;
	f->n = 0;
	f->v.i = 0;
	f->isf = 0;
	f->mode = 0;
}

static inline uint16_t
rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline void
wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline int64_t
rd64(const uint8_t *p)
{
	int64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int
raw_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

/* Header bytes of a canonical str or bin value, 0 for other values. */
static size_t
val_hdr(const uint8_t *v)
{
	if ((v[0] & 0xe0) == 0xa0)
		return 1;
	if (v[0] == 0xd9 || v[0] == 0xc4)
		return 2;
	if (v[0] == 0xda || v[0] == 0xc5)
		return 3;
	return 0;
}

/* The order used to break ties between canonical values: strings and
 * binaries by their bytes, other values by their msgpack bytes; then the
 * whole encoding (a str before a bin with the same bytes). */
int
feat_val_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	if ((a[0] & 0xe0) == 0xa0 && (b[0] & 0xe0) == 0xa0) {
		/* two short strings (most values): the first differing byte,
		 * inline; equal bytes mean equal encodings */
		size_t m = al < bl ? al : bl;
		for (size_t k = 1; k < m; k++)
			if (a[k] != b[k])
				return a[k] < b[k] ? -1 : 1;
		return al < bl ? -1 : al > bl;
	}
	size_t ha = val_hdr(a), hb = val_hdr(b);
	int c = raw_cmp(a + ha, al - ha, b + hb, bl - hb);
	return c ? c : raw_cmp(a, al, b, bl);
}

/* ---- canonical values --------------------------------------------------- */

int
feat_value_canon(const uint8_t *p, size_t n, uint8_t *out, size_t *olen)
{
	if (n == 0)
		return -1;
	uint8_t c = p[0];
	const char *s;
	const uint8_t *b;
	size_t sl;
	int64_t i;
	uint64_t u;
	double d;
	if (c == 0xc2 || c == 0xc3) {
		out[0] = c;
		*olen = 1;
		return 0;
	}
	if (c == 0xca || c == 0xcb) {
		if (mp_read_number(p, n, &d) < 0)
			return -1;
		feat_put_double(out, d);
		*olen = 9;
		return 0;
	}
	if (mp_read_int(p, n, &i) == 0) {
		*olen = feat_enc_int(out, i);
		return 0;
	}
	if (mp_read_uint(p, n, &u) == 0) { /* beyond INT64_MAX */
		out[0] = 0xcf;
		feat_be64(out + 1, u);
		*olen = 9;
		return 0;
	}
	int bin = 0;
	if (mp_read_str(p, n, &s, &sl) == 0) {
		b = (const uint8_t *)s;
	} else if (mp_read_bin(p, n, &b, &sl) == 0) {
		bin = 1;
	} else {
		return -1;
	}
	if (sl + 3 > FEAT_MAX_VALUE)
		return -1;
	size_t h = feat_enc_hdr(out, bin, sl);
	if (h + sl > FEAT_MAX_VALUE)
		return -1;
	memcpy(out + h, b, sl);
	*olen = h + sl;
	return 0;
}

/* The record's value v[0..vl) (one whole object) in canonical form: v
 * itself when it already is one (a fixstr, a fixint, a boolean: most
 * values), otherwise its canonical copy in buf; NULL when it has none. */
static const uint8_t *
canon_value(const uint8_t *v, size_t vl, uint8_t *buf, size_t *cl)
{
	uint8_t c = v[0];
	if ((c & 0xe0) == 0xa0 || c <= 0x7f || c >= 0xe0 || c == 0xc2 || c == 0xc3) {
		*cl = vl;
		return v;
	}
	return feat_value_canon(v, vl, buf, cl) < 0 ? NULL : buf;
}

/* A number for sum/avg/min/max: 0 and *v, *isf; -1 when not a finite
 * number. */
static int
read_num(const uint8_t *p, size_t n, fnum *v, uint8_t *isf)
{
	if (n && (p[0] == 0xca || p[0] == 0xcb)) {
		if (mp_read_number(p, n, &v->d) < 0 || !isfinite(v->d))
			return -1;
		*isf = 1;
		return 0;
	}
	if (mp_read_int(p, n, &v->i) == 0) {
		*isf = 0;
		return 0;
	}
	if (mp_read_number(p, n, &v->d) == 0) { /* uint64 beyond INT64_MAX */
		*isf = 1;
		return 0;
	}
	return -1;
}

static double
as_d(fnum v, int isf)
{
	return isf ? v.d : (double)v.i;
}

static void
num_add(fnum *acc, uint8_t *accf, fnum x, int xf)
{
	if (!*accf && !xf) {
		int64_t r;
		if (!__builtin_add_overflow(acc->i, x.i, &r)) {
			acc->i = r;
			return;
		}
	}
	acc->d = as_d(*acc, *accf) + as_d(x, xf);
	*accf = 1;
}

/* <0, 0, >0 as a < b numerically; equal values: an int sorts first. */
static int
num_cmp(fnum a, int af, fnum b, int bf)
{
	if (!af && !bf)
		return a.i < b.i ? -1 : a.i > b.i;
	double x = as_d(a, af), y = as_d(b, bf);
	if (x != y)
		return x < y ? -1 : 1;
	return af - bf;
}

/* ---- state lifetime ---------------------------------------------------- */

feat_state *
feat_state_new(const feat_spec *s)
{
	feat_state *st = calloc(1, sizeof *st + s->n * sizeof(fst));
	if (!st)
		return NULL;
	st->spec = s;
	st->now = INT64_MIN;
	st->nf = s->n;
	return st;
}

void
feat_state_free(feat_state *st)
{
	if (!st)
		return;
	free(st->mem);
	free(st);
}

int64_t
feat_state_now(const feat_state *st)
{
	return st->now;
}

size_t
feat_state_memory(const feat_state *st)
{
	return sizeof *st + st->nf * sizeof(fst) + ALLOC_OVERHEAD +
	       (st->size ? st->size + ALLOC_OVERHEAD : 0);
}

void
feat_state_prefetch(const feat_state *st)
{
	const char *p = (const char *)st, *end = (const char *)(st->f + st->nf);
	for (; p < end; p += 64)
		__builtin_prefetch(p);
	p = (const char *)st->mem;
	end = p + (st->used < 2048 ? st->used : 2048);
	for (; p < end; p += 64)
		__builtin_prefetch(p);
}

/* ---- windows ------------------------------------------------------------ */

static int
is_num(feat_agg a)
{
	return a <= FEAT_MAX;
}

size_t
feat_tk_size(const uint8_t *e)
{
	return TK_HDR + rd16(e) + (size_t)rd16(e + 2) * 8;
}

static inline uint32_t
rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline void
wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* The sum of the counts of topk entry e's buckets, from its buckets. */
static uint64_t
tk_recount(const uint8_t *e)
{
	const uint8_t *bk = e + TK_HDR + rd16(e);
	uint16_t k = rd16(e + 2);
	uint64_t tot = 0;
	for (uint16_t j = 0; j < k; j++)
		tot += rd32(bk + (size_t)j * 8 + 4);
	return tot;
}

uint64_t
feat_tk_total(const uint8_t *e)
{
	uint32_t t = rd32(e + 4);
	return t < UINT32_MAX ? t : tk_recount(e);
}

void
feat_tk_set_total(uint8_t *e)
{
	uint64_t t = tk_recount(e);
	wr32(e + 4, t < UINT32_MAX ? (uint32_t)t : UINT32_MAX);
}

/* Add one to the cached total of topk entry e. */
static void
tk_inc_total(uint8_t *e)
{
	uint32_t t = rd32(e + 4);
	if (t < UINT32_MAX)
		wr32(e + 4, t + 1);
}

size_t
feat_item_size(const uint8_t *e)
{
	return 10 + rd16(e + 8);
}

/* Drop what is no longer inside the window ending at bucket cb. */
static void
prune(const feat_def *d, feat_state *st, fst *f, int64_t now)
{
	uint32_t cb = feat_bucket(now, d->bucket_ms), nb = d->nbuckets;
	if (is_num(d->agg)) {
		wbk *b = FPTR(st, f);
		uint32_t k = 0;
		while (k < f->len && age_of(cb, b[k].bid) >= nb)
			k++;
		if (k) {
			memmove(b, b + k, (f->len - k) * sizeof *b);
			f->len -= k;
		}
	} else if (d->agg == FEAT_LATEST || d->agg == FEAT_LAST) {
		uint8_t *p = FPTR(st, f);
		size_t off = 0;
		int64_t cnt = 0;
		while (off < f->len && feat_bucket_age(now, rd64(p + off), d->bucket_ms) < nb) {
			off += feat_item_size(p + off);
			cnt++;
		}
		f->len = (uint32_t)off;
		f->n = cnt;
	} else if (d->agg == FEAT_TOPK) {
		uint8_t *p = FPTR(st, f);
		size_t in = 0, out = 0;
		int64_t cnt = 0;
		while (in < f->len) {
			size_t sz = feat_tk_size(p + in), vl = rd16(p + in);
			uint16_t k = rd16(p + in + 2), j = 0;
			const uint8_t *bk = p + in + TK_HDR + vl;
			while (j < k && age_of(cb, rd32(bk + (size_t)j * 8)) >= nb) /* oldest first */
				j++;
			if (j < k) {
				size_t keep = (size_t)(k - j) * 8;
				memmove(p + out, p + in, TK_HDR + vl);
				wr16(p + out + 2, (uint16_t)(k - j));
				memmove(p + out + TK_HDR + vl, bk + (size_t)j * 8, keep);
				if (j)
					feat_tk_set_total(p + out);
				out += TK_HDR + vl + keep;
				cnt++;
			}
			in += sz;
		}
		f->len = (uint32_t)out;
		f->n = cnt;
	} else if (d->agg == FEAT_DISTINCT && f->mode == 3) {
		feat_slide_expire(FPTR(st, f), cb, nb);
	} else if (d->agg == FEAT_DISTINCT && f->mode == 2) {
		dh *h = FPTR(st, f);
		uint32_t out = 0;
		for (uint32_t k = 0; k < f->len; k++)
			if (age_of(cb, h[k].bid) < nb)
				h[out++] = h[k];
		f->len = out;
	}
}

/* now moved from old to st->now: prune the windows whose bucket changed. */
static void
advance(const feat_spec *s, feat_state *st, int64_t old, const int64_t *bn)
{
	int64_t bo[FEAT_MAX_FEATURES];
	for (size_t k = 0; k < s->nwidths; k++)
		bo[k] = feat_floor(old, s->widths[k]);
	for (size_t i = 0; i < s->n; i++) {
		const feat_def *d = &s->f[i];
		if (!d->nbuckets || !st->f[i].len)
			continue;
		int64_t moved = feat_age64(bn[d->bidx], bo[d->bidx]);
		if (moved == 0)
			continue;
		if (moved >= d->nbuckets) { /* everything left the window */
			fst_clear(&st->f[i]);
			continue;
		}
		prune(d, st, &st->f[i], st->now);
	}
}

/* ---- aggregation -------------------------------------------------------- */

static int
num_apply(const feat_def *d, feat_state *st, fst *f, fnum x, uint8_t xf, uint32_t bid, uint32_t cb)
{
	if (!d->nbuckets) {
		int first = f->n == 0;
		f->n++;
		switch (d->agg) {
		case FEAT_SUM: case FEAT_AVG:
			num_add(&f->v, &f->isf, x, xf);
			break;
		case FEAT_MIN:
			if (first || num_cmp(x, xf, f->v, f->isf) < 0)
				f->v = x, f->isf = xf;
			break;
		case FEAT_MAX:
			if (first || num_cmp(x, xf, f->v, f->isf) > 0)
				f->v = x, f->isf = xf;
			break;
		default:
			break;
		}
		return 0;
	}
	wbk *b = FPTR(st, f);
	uint32_t age = age_of(cb, bid), k = f->len;
	while (k > 0 && age_of(cb, b[k - 1].bid) < age)
		k--;
	if (k > 0 && b[k - 1].bid == bid) {
		wbk *e = &b[k - 1];
		uint8_t ef = (e->nf & NF_FLOAT) != 0;
		if ((e->nf & NF_COUNT) != NF_COUNT)
			e->nf++;
		switch (d->agg) {
		case FEAT_SUM: case FEAT_AVG:
			num_add(&e->v, &ef, x, xf);
			break;
		case FEAT_MIN:
			if (num_cmp(x, xf, e->v, ef) < 0)
				e->v = x, ef = xf;
			break;
		case FEAT_MAX:
			if (num_cmp(x, xf, e->v, ef) > 0)
				e->v = x, ef = xf;
			break;
		default:
			break;
		}
		e->nf = (e->nf & NF_COUNT) | (ef ? NF_FLOAT : 0);
		return 0;
	}
	if (grow(st, f, (size_t)f->len + 1, sizeof(wbk)) < 0)
		return -1;
	b = FPTR(st, f);
	memmove(b + k + 1, b + k, (f->len - k) * sizeof *b);
	b[k].bid = bid;
	b[k].nf = 1 | (xf ? NF_FLOAT : 0);
	b[k].v = d->agg == FEAT_COUNT ? (fnum){.i = 0} : x;
	if (d->agg == FEAT_COUNT)
		b[k].nf = 1;
	f->len++;
	return 0;
}

static int
item_cmp(int64_t t, const uint8_t *v, size_t vl, const uint8_t *item)
{
	int64_t it = rd64(item);
	if (t != it)
		return t < it ? -1 : 1;
	return feat_val_cmp(v, vl, item + 10, rd16(item + 8));
}

static int
list_apply(const feat_def *d, feat_state *st, fst *f, int64_t t, const uint8_t *v, size_t vl)
{
	int want = d->agg == FEAT_FIRST ? -1 : 1;
	uint8_t *p = FPTR(st, f);
	size_t off = 0;
	int64_t idx = 0;
	while (off < f->len) {
		int c = item_cmp(t, v, vl, p + off);
		if ((c > 0 && want > 0) || (c < 0 && want < 0))
			break;
		off += feat_item_size(p + off);
		idx++;
	}
	if (idx >= d->param)
		return 0;
	size_t sz = 10 + vl;
	if (grow(st, f, (size_t)f->len + sz, 1) < 0)
		return -1;
	p = FPTR(st, f);
	memmove(p + off + sz, p + off, f->len - off);
	memcpy(p + off, &t, 8);
	wr16(p + off + 8, (uint16_t)vl);
	memcpy(p + off + 10, v, vl);
	f->len += (uint32_t)sz;
	if (++f->n > d->param) { /* drop the last item */
		size_t o = 0;
		for (int64_t k = 0; k < d->param; k++)
			o += feat_item_size(p + o);
		f->len = (uint32_t)o;
		f->n = d->param;
	}
	return 0;
}

/* Replace p[off..off+oldsz) by new[0..newsz) in the blob of f. */
static int
splice(feat_state *st, fst *f, size_t off, size_t oldsz, const uint8_t *nw, size_t newsz)
{
	if (newsz > oldsz && grow(st, f, (size_t)f->len + newsz - oldsz, 1) < 0)
		return -1;
	uint8_t *p = FPTR(st, f);
	memmove(p + off + newsz, p + off + oldsz, f->len - off - oldsz);
	if (newsz)
		memcpy(p + off, nw, newsz);
	f->len = (uint32_t)(f->len - oldsz + newsz);
	return 0;
}

static int
topk_apply(const feat_def *d, feat_state *st, fst *f, const uint8_t *v, size_t vl, uint32_t bid,
           uint32_t cb, feat_stats *stats)
{
	uint8_t *p = FPTR(st, f);
	size_t off = 0, victim = SIZE_MAX;
	uint64_t vmin = UINT64_MAX;
	while (off < f->len) {
		size_t el = rd16(p + off);
		if (el == vl && !memcmp(p + off + TK_HDR, v, vl))
			break;
		off += feat_tk_size(p + off);
	}
	if (off >= f->len && f->n >= d->capacity) { /* the least frequent gives way */
		for (size_t o = 0; o < f->len; o += feat_tk_size(p + o)) {
			uint64_t tot = feat_tk_total(p + o);
			if (tot < vmin || (tot == vmin && feat_val_cmp(p + o + TK_HDR, rd16(p + o),
			                                               p + victim + TK_HDR, rd16(p + victim)) > 0)) {
				vmin = tot;
				victim = o;
			}
		}
	}
	uint8_t tmp[TK_HDR + FEAT_MAX_VALUE + 8];
	if (off < f->len) { /* known value: add to its bucket */
		uint16_t k = rd16(p + off + 2);
		uint8_t *bk = p + off + TK_HDR + vl;
		uint32_t age = age_of(cb, bid);
		uint16_t j = k;
		uint32_t b[2];
		while (j > 0) {
			memcpy(b, bk + (size_t)(j - 1) * 8, 8);
			if (!d->nbuckets || age_of(cb, b[0]) >= age)
				break;
			j--;
		}
		if (j > 0) {
			memcpy(b, bk + (size_t)(j - 1) * 8, 8);
			if (!d->nbuckets || b[0] == bid) {
				if (b[1] < UINT32_MAX) {
					b[1]++;
					tk_inc_total(p + off);
				}
				memcpy(bk + (size_t)(j - 1) * 8, b, 8);
				return 0;
			}
		}
		if (k == UINT16_MAX)
			return 0;
		b[0] = bid;
		b[1] = 1;
		if (splice(st, f, off + TK_HDR + vl + (size_t)j * 8, 0, (uint8_t *)b, 8) < 0)
			return -1;
		p = FPTR(st, f);
		wr16(p + off + 2, (uint16_t)(k + 1));
		tk_inc_total(p + off);
		return 0;
	}
	uint32_t start = 1;
	if (f->n >= d->capacity && victim != SIZE_MAX) { /* Space-Saving */
		if (!d->nbuckets)
			start = vmin >= UINT32_MAX ? UINT32_MAX : (uint32_t)vmin + 1;
		if (splice(st, f, victim, feat_tk_size(p + victim), NULL, 0) < 0)
			return -1;
		f->n--;
		if (stats)
			stats->approx++;
	}
	wr16(tmp, (uint16_t)vl);
	wr16(tmp + 2, 1);
	wr32(tmp + 4, start);
	memcpy(tmp + TK_HDR, v, vl);
	uint32_t b[2] = {d->nbuckets ? bid : 0, start};
	memcpy(tmp + TK_HDR + vl, b, 8);
	if (splice(st, f, f->len, 0, tmp, TK_HDR + vl + 8) < 0)
		return -1;
	f->n++;
	return 0;
}

static int
to_hll(feat_state *st, fst *f)
{
	uint64_t h[FEAT_DISTINCT_EXACT];
	uint32_t n = f->len;
	memcpy(h, FPTR(st, f), n * sizeof h[0]);
	if (feat_grow(st, f, HLL_BYTES) < 0)
		return -1;
	uint8_t *r = FPTR(st, f);
	memset(r, 0, HLL_M);
	for (uint32_t k = 0; k < n; k++) {
		uint8_t x = feat_hll_rank(h[k]);
		uint32_t j = (uint32_t)(h[k] & (HLL_M - 1));
		if (x > r[j])
			r[j] = x;
	}
	feat_hll_histogram(r);
	f->len = HLL_BYTES;
	f->mode = 1;
	return 0;
}

/* The exact windowed set has reached its cap: replay it into a sliding
 * HyperLogLog. */
static int
to_slide(feat_state *st, fst *f, uint32_t cb, uint32_t nb)
{
	size_t n = f->len;
	dh *tmp = malloc(n * sizeof *tmp + 1);
	if (!tmp)
		return -1;
	memcpy(tmp, FPTR(st, f), n * sizeof *tmp);
	if (feat_grow(st, f, SLIDE_BYTES) < 0) {
		free(tmp);
		return -1;
	}
	uint8_t *r = FPTR(st, f);
	memset(r, 0, SLIDE_BYTES);
	uint16_t all = HLL_M;
	memcpy(r + FEAT_SLIDE_REGS, &all, 2);
	for (size_t k = 0; k < n; k++)
		feat_slide_add(r, tmp[k].h, tmp[k].bid, cb, nb);
	free(tmp);
	f->len = SLIDE_BYTES;
	f->mode = 3;
	return 0;
}

static int
distinct_apply(const feat_def *d, feat_state *st, fst *f, const uint8_t *v, size_t vl, uint32_t bid,
               uint32_t cb, feat_stats *stats)
{
	uint64_t h = feat_hash(v, vl);
	if (f->mode == 1 || f->mode == 3) {
		if (f->mode == 1)
			feat_hll_add(FPTR(st, f), h);
		else
			feat_slide_add(FPTR(st, f), h, bid, cb, d->nbuckets);
		if (stats)
			stats->approx++;
		return 0;
	}
	if (d->nbuckets) {
		f->mode = 2;
		dh *a = FPTR(st, f);
		uint32_t lo = 0, hi = f->len;
		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;
			if (a[mid].h < h)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < f->len && a[lo].h == h) {
			if (age_of(cb, bid) < age_of(cb, a[lo].bid))
				a[lo].bid = bid;
			return 0;
		}
		if (f->len >= FEAT_DISTINCT_WINDOW) {
			if (to_slide(st, f, cb, d->nbuckets) < 0)
				return -1;
			return distinct_apply(d, st, f, v, vl, bid, cb, stats);
		}
		if (grow(st, f, (size_t)f->len + 1, sizeof(dh)) < 0)
			return -1;
		a = FPTR(st, f);
		memmove(a + lo + 1, a + lo, (f->len - lo) * sizeof *a);
		a[lo] = (dh){h, bid, 0};
		f->len++;
		return 0;
	}
	uint64_t *a = FPTR(st, f);
	uint32_t lo = 0, hi = f->len;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (a[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->len && a[lo] == h)
		return 0;
	if (f->len >= FEAT_DISTINCT_EXACT) {
		if (to_hll(st, f) < 0)
			return -1;
		return distinct_apply(d, st, f, v, vl, bid, cb, stats);
	}
	if (grow(st, f, (size_t)f->len + 1, sizeof(uint64_t)) < 0)
		return -1;
	a = FPTR(st, f);
	memmove(a + lo + 1, a + lo, (f->len - lo) * sizeof *a);
	a[lo] = h;
	f->len++;
	return 0;
}

/* The value of every field of the spec in the checked map rec[0..len):
 * top-level names in one scan, other paths with fp_path_get(); NULL when
 * missing. */
static void
read_fields(const feat_spec *s, const uint8_t *rec, size_t len, const uint8_t **fv,
            size_t *fl)
{
	size_t want = 0;
	for (size_t i = 0; i < s->nfields; i++) {
		fv[i] = NULL;
		fl[i] = 0;
		if (!s->fields[i].simple)
			fp_path_get(s->fields[i].path, rec, len, &fv[i], &fl[i]);
		else
			want++;
	}
	uint32_t cnt;
	size_t h;
	if (!want || mp_read_map(rec, len, &cnt, &h) < 0)
		return;
	const uint8_t *p = rec + h, *end = rec + len;
	for (uint32_t k = 0; k < cnt && want; k++) {
		const char *name;
		size_t nl, ks;
		if ((p[0] & 0xe0) == 0xa0) { /* fixstr: most keys */
			name = (const char *)p + 1;
			nl = p[0] & 0x1f;
			ks = 1 + nl;
			if (ks > (size_t)(end - p))
				return;
		} else if (!(ks = mp_skip(p, (size_t)(end - p))) ||
		           mp_read_str(p, (size_t)(end - p), &name, &nl) < 0) {
			return;
		}
		p += ks;
		size_t vs = mp_skip(p, (size_t)(end - p));
		if (!vs)
			return;
		for (unsigned i = nl ? s->by_first[(uint8_t)name[0]] : 0; i; i = s->fields[i - 1].next) {
			const feat_field *f = &s->fields[i - 1];
			if (f->nlen == nl && !memcmp(f->name, name, nl)) {
				if (!fv[i - 1]) { /* the first of equal keys */
					fv[i - 1] = p;
					fl[i - 1] = vs;
					want--;
				}
				break; /* names are distinct */
			}
		}
		p += vs;
	}
}

/* Whether where expression w matches the record, whose fields read_fields()
 * put in fv, fl. */
static int
where_match(const feat_where *w, const uint8_t *rec, size_t len, const uint8_t *const *fv,
            const size_t *fl)
{
	if (w->fidx < 0)
		return expr_match(w->e, rec, len);
	const uint8_t *v = fv[w->fidx], *b;
	const char *str;
	size_t bl;
	if (!v)
		return 0;
	if ((v[0] & 0xe0) == 0xa0) /* fixstr */
		return (size_t)(v[0] & 0x1f) == w->llen && !memcmp(v + 1, w->lit, w->llen);
	if (mp_read_str(v, fl[w->fidx], &str, &bl) == 0)
		b = (const uint8_t *)str;
	else if (mp_read_bin(v, fl[w->fidx], &b, &bl) < 0)
		return 0;
	return bl == w->llen && !memcmp(b, w->lit, bl);
}

int
feat_apply(const feat_spec *s, feat_state *st, const uint8_t *rec, size_t len,
           feat_stats *stats)
{
	feat_stats dummy;
	if (!stats)
		stats = &dummy;
	stats->records++;
	feat_state_prefetch(st); /* overlap the state's cache misses with the scan */
	const uint8_t *fv[2 * FEAT_MAX_FEATURES + 1];
	size_t fl[2 * FEAT_MAX_FEATURES + 1];
	signed char wr[FEAT_MAX_FEATURES];
	read_fields(s, rec, len, fv, fl);
	memset(wr, -1, s->nwheres);
	int64_t t;
	if (!fv[0] || mp_read_int(fv[0], fl[0], &t) < 0) {
		stats->no_time++;
		return 1;
	}
	/* bucket numbers of t and now, once per distinct bucket width */
	int64_t bt[FEAT_MAX_FEATURES], bn[FEAT_MAX_FEATURES];
	int newest = t >= st->now;
	for (size_t k = 0; k < s->nwidths; k++) {
		bt[k] = feat_floor(t, s->widths[k]);
		bn[k] = newest ? bt[k] : feat_floor(st->now, s->widths[k]);
	}
	if (t > st->now) { /* also from INT64_MIN: a first event may lie there */
		int64_t old = st->now;
		st->now = t;
		advance(s, st, old, bn);
	}
	int rc = 0;
	for (size_t i = 0; i < s->n; i++) {
		const feat_def *d = &s->f[i];
		fst *f = &st->f[i];
		if (d->widx >= 0) {
			if (wr[d->widx] < 0)
				wr[d->widx] = (signed char)where_match(&s->wheres[d->widx], rec, len, fv, fl);
			if (!wr[d->widx]) {
				stats->filtered++;
				continue;
			}
		}
		uint32_t bid = 0, cb = 0;
		if (d->nbuckets) {
			if (feat_age64(bn[d->bidx], bt[d->bidx]) >= d->nbuckets) {
				stats->late++;
				continue;
			}
			bid = (uint32_t)bt[d->bidx];
			cb = (uint32_t)bn[d->bidx];
		}
		const uint8_t *v = NULL;
		size_t vl = 0;
		if (d->fidx >= 0) {
			v = fv[d->fidx];
			vl = fl[d->fidx];
			if (!v) {
				stats->bad_field++;
				continue;
			}
		}
		int r = 0;
		if (is_num(d->agg)) {
			fnum x = {.i = 0};
			uint8_t xf = 0;
			if (d->agg != FEAT_COUNT && read_num(v, vl, &x, &xf) < 0) {
				stats->bad_field++;
				continue;
			}
			r = num_apply(d, st, f, x, xf, bid, cb);
		} else {
			uint8_t buf[FEAT_MAX_VALUE];
			size_t cl;
			const uint8_t *cv = canon_value(v, vl, buf, &cl);
			if (!cv) {
				stats->bad_field++;
				continue;
			}
			if (d->agg == FEAT_TOPK)
				r = topk_apply(d, st, f, cv, cl, bid, cb, stats);
			else if (d->agg == FEAT_DISTINCT)
				r = distinct_apply(d, st, f, cv, cl, bid, cb, stats);
			else
				r = list_apply(d, st, f, t, cv, cl);
		}
		if (r < 0)
			rc = -1;
		else
			stats->applied++;
	}
	return rc;
}

/* ---- values ------------------------------------------------------------- */

typedef struct tkv {
	const uint8_t *v;
	size_t vl;
	uint64_t n;
} tkv;

static int
tkv_cmp(const void *a, const void *b)
{
	const tkv *x = a, *y = b;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return feat_val_cmp(x->v, x->vl, y->v, y->vl);
}

/* Move the best k of a[0..n) (tkv_cmp order, k <= n) to a[0..k), sorted;
 * returns k.  One pass that keeps the best so far in order: most values
 * lose to the k-th at once, so top-5 of 20 costs about 20 comparisons where
 * a full insertion sort costs about 100. */
static size_t
tkv_best(tkv *a, size_t n, size_t k)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		tkv x = a[i];
		if (m == k && tkv_cmp(&x, &a[k - 1]) >= 0)
			continue;
		size_t y = m < k ? m++ : k - 1;
		for (; y > 0 && tkv_cmp(&a[y - 1], &x) > 0; y--)
			a[y] = a[y - 1];
		a[y] = x;
	}
	return m;
}

static uint8_t *
put_num(uint8_t *o, fnum v, int isf)
{
	return isf ? feat_put_double(o, v.d) : feat_put_int(o, v.i);
}

/* Fold the buckets b[0..len) inside the window ending at bucket cb: *n
 * events and, but for count(), their sum or extreme in *v (*isf when a
 * double).  One loop per aggregate: count() only adds the counts. */
static void
win_fold(const feat_def *d, const wbk *b, uint32_t len, uint32_t cb, int64_t *n, fnum *v,
         uint8_t *isf)
{
	uint32_t nb = d->nbuckets;
	int64_t cnt = 0;
	if (d->agg == FEAT_COUNT) {
		for (uint32_t k = 0; k < len; k++)
			cnt += age_of(cb, b[k].bid) < nb ? b[k].nf & NF_COUNT : 0;
		*n = cnt;
		return;
	}
	int sum = d->agg == FEAT_SUM || d->agg == FEAT_AVG, dir = d->agg == FEAT_MIN ? -1 : 1;
	for (uint32_t k = 0; k < len; k++) {
		if (age_of(cb, b[k].bid) >= nb)
			continue;
		uint8_t bf = (b[k].nf & NF_FLOAT) != 0;
		if (sum)
			num_add(v, isf, b[k].v, bf);
		else if (cnt == 0 || num_cmp(b[k].v, bf, *v, *isf) * dir > 0)
			*v = b[k].v, *isf = bf;
		cnt += b[k].nf & NF_COUNT;
	}
	*n = cnt;
}

/* An upper bound of the bytes emit_one() writes. */
static size_t
emit_bound(const feat_def *d, const fst *f)
{
	switch (d->agg) {
	case FEAT_FIRST: case FEAT_LATEST:
		return FEAT_MAX_VALUE + 9;
	case FEAT_LAST:
		return 5 + (size_t)f->len;
	case FEAT_TOPK:
		return 5 + (size_t)f->len + 10 * (size_t)f->n;
	default:
		return 9;
	}
}

/* Write feature f's value at o (room for emit_bound()); the end, or NULL
 * when out of memory. */
static uint8_t *
emit_one(const feat_def *d, const feat_state *st, const fst *f, int64_t now, uint8_t *o)
{
	uint32_t cb = d->nbuckets ? feat_bucket(now, d->bucket_ms) : 0;
	if (is_num(d->agg)) {
		int64_t n = 0;
		fnum v = {.i = 0};
		uint8_t isf = 0;
		if (!d->nbuckets) {
			n = f->n;
			v = f->v;
			isf = f->isf;
		} else {
			win_fold(d, FPTR(st, f), f->len, cb, &n, &v, &isf);
		}
		switch (d->agg) {
		case FEAT_COUNT:
			return feat_put_int(o, n);
		case FEAT_SUM:
			return put_num(o, v, isf);
		case FEAT_AVG:
			if (!n)
				break;
			return feat_put_double(o, as_d(v, isf) / (double)n);
		default:
			if (!n)
				break;
			return put_num(o, v, isf);
		}
		*o = 0xc0;
		return o + 1;
	}
	const uint8_t *p = FPTR(st, f);

	switch (d->agg) {
	case FEAT_FIRST: case FEAT_LATEST:
		if (f->len && (!d->nbuckets || feat_bucket_age(now, rd64(p), d->bucket_ms) < d->nbuckets))
			return feat_put_bytes(o, p + 10, rd16(p + 8));
		break;
	case FEAT_LAST: {
		size_t off = 0, cnt = 0;
		while (off < f->len && (!d->nbuckets ||
		                        feat_bucket_age(now, rd64(p + off), d->bucket_ms) < d->nbuckets)) {
			off += feat_item_size(p + off);
			cnt++;
		}
		o = feat_put_array(o, (uint32_t)cnt);
		for (size_t at = 0; at < off; at += feat_item_size(p + at))
			o = feat_put_bytes(o, p + at + 10, rd16(p + at + 8));
		return o;
	}
	case FEAT_TOPK: {
		tkv small[32], *a = small;
		size_t cnt = 0;
		if (f->n > 32 && !(a = malloc((size_t)f->n * sizeof *a)))
			return NULL;
		for (size_t off = 0; off < f->len; off += feat_tk_size(p + off)) {
			uint64_t tot = feat_tk_total(p + off);
			if (tot && cnt < (size_t)f->n)
				a[cnt++] = (tkv){p + off + TK_HDR, rd16(p + off), tot};
		}
		if (cnt > (size_t)d->param && d->param <= 32) {
			cnt = tkv_best(a, cnt, (size_t)d->param);
		} else if (cnt > 32) {
			qsort(a, cnt, sizeof *a, tkv_cmp);
		} else {
			tkv_best(a, cnt, cnt);
		}
		if (cnt > (size_t)d->param)
			cnt = (size_t)d->param;
		o = feat_put_array(o, (uint32_t)cnt);
		for (size_t k = 0; k < cnt; k++) {
			*o++ = 0x92;
			o = feat_put_bytes(o, a[k].v, a[k].vl);
			o = feat_put_int(o, a[k].n > INT64_MAX ? INT64_MAX : (int64_t)a[k].n);
		}
		if (a != small)
			free(a);
		return o;
	}
	case FEAT_DISTINCT: {
		if (f->mode == 1)
			return feat_put_int(o, feat_hll_estimate(p + HLL_M));
		if (f->mode == 3)
			return feat_put_int(o, feat_hll_estimate(p + FEAT_SLIDE_REGS));
		if (f->mode == 2) {
			const dh *h = FPTR(st, f);
			int64_t n = 0;
			for (uint32_t k = 0; k < f->len; k++)
				n += age_of(cb, h[k].bid) < d->nbuckets;
			return feat_put_int(o, n);
		}
		return feat_put_int(o, f->len);
	}
	default:
		break;
	}
	*o = 0xc0;
	return o + 1;
}

int
feat_emit_values(const feat_spec *s, const feat_state *st, msgpack_packer *pk)
{
	size_t bound = 0;
	for (size_t i = 0; i < s->n; i++)
		bound += 2 + FEAT_MAX_NAME + emit_bound(&s->f[i], &st->f[i]);
	/* A packer that appends to an fp_buf (fp_buf_pack_write, as fr_writer's
	 * does) gets the values written in place; any other gets them through
	 * one call of its callback. */
	fp_buf *into = pk->callback == fp_buf_pack_write ? pk->data : NULL;
	uint8_t small[4096], *buf = small;
	if (into) {
		if (fp_buf_reserve(into, bound) < 0)
			return -1;
		buf = into->p + into->len;
	} else if (bound > sizeof small && !(buf = malloc(bound))) {
		return -1;
	}
	uint8_t *o = buf;
	for (size_t i = 0; i < s->n && o; i++) {
		o = feat_put_str(o, s->f[i].name, s->f[i].nlen);
		o = emit_one(&s->f[i], st, &st->f[i], st->now, o);
	}
	int r = -1;
	if (o && o > buf) {
		if (into) {
			into->len += (size_t)(o - buf);
			r = 0;
		} else {
			r = pk->callback(pk->data, (const char *)buf, (size_t)(o - buf));
		}
	}
	if (buf != small && !into)
		free(buf);
	return r < 0 ? -1 : 0;
}
