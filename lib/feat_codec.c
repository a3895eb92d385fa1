/* feat_codec.c - the "@state" bytes of a key: feat_state_encode/decode.
 *
 * [FEAT_STATE_VERSION, now (int, nil when empty),
 *  [[name, fingerprint (uint), data], ...]]   one entry per feature
 * data by aggregate:
 *   count/sum/avg/min/max:  [n, v]                       (no window)
 *                           [bid, n, v, bid, n, v, ...]  (window, oldest first)
 *   first/latest/last:      [t, value, t, value, ...]    best first
 *   topk:                   [value, [bid, n, ...], ...]
 *   distinct:               [mode, bin]  mode 0: sorted big-endian uint64
 *                           hashes; 1: HLL registers; 2: (hash, bid) pairs
 * bid: a bucket number modulo 2^32 (floor(t / bucket)); n: events; v: int
 * or float.
 */
#include "feat_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mpraw.h"

static uint8_t *
put_num(uint8_t *o, fnum v, int isf)
{
	return isf ? feat_put_double(o, v.d) : feat_put_int(o, v.i);
}

static uint64_t
be_get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static uint32_t
be_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

/* An upper bound of the bytes enc_feature() writes. */
static size_t
enc_bound(const feat_def *d, const fst *f)
{
	switch (d->agg) {
	case FEAT_COUNT: case FEAT_SUM: case FEAT_AVG: case FEAT_MIN: case FEAT_MAX:
		return 5 + (d->nbuckets ? (size_t)f->len * 19 : 18);
	case FEAT_FIRST: case FEAT_LATEST: case FEAT_LAST:
		return 5 + (size_t)f->n * 9 + f->len;
	case FEAT_TOPK:
		return 5 + 2 * (size_t)f->len + 16 * (size_t)f->n;
	case FEAT_DISTINCT:
		return 16 + (f->mode == 1 ? HLL_M : f->mode == 3 ? FEAT_SLIDE_REGS : (size_t)f->len * 12);
	}
	return 0;
}

static uint8_t *
enc_feature(const feat_def *d, const feat_state *st, const fst *f, uint8_t *o)
{
	const uint8_t *p = FPTR(st, f);
	switch (d->agg) {
	case FEAT_COUNT: case FEAT_SUM: case FEAT_AVG: case FEAT_MIN: case FEAT_MAX:
		if (!d->nbuckets) {
			*o++ = 0x92;
			o = feat_put_int(o, f->n);
			return put_num(o, f->v, f->isf);
		}
		o = feat_put_array(o, f->len * 3);
		for (uint32_t k = 0; k < f->len; k++) {
			const wbk *w = &((const wbk *)p)[k];
			o = feat_put_int(o, w->bid);
			o = feat_put_int(o, w->nf & NF_COUNT);
			o = put_num(o, w->v, (w->nf & NF_FLOAT) != 0);
		}
		return o;
	case FEAT_FIRST: case FEAT_LATEST: case FEAT_LAST:
		o = feat_put_array(o, (uint32_t)f->n * 2);
		for (size_t off = 0; off < f->len; off += feat_item_size(p + off)) {
			int64_t t;
			uint16_t vl;
			memcpy(&t, p + off, 8);
			memcpy(&vl, p + off + 8, 2);
			o = feat_put_int(o, t);
			o = feat_put_bytes(o, p + off + 10, vl);
		}
		return o;
	case FEAT_TOPK:
		o = feat_put_array(o, (uint32_t)f->n * 2);
		for (size_t off = 0; off < f->len; off += feat_tk_size(p + off)) {
			uint16_t vl, k;
			memcpy(&vl, p + off, 2);
			memcpy(&k, p + off + 2, 2);
			o = feat_put_bytes(o, p + off + TK_HDR, vl);
			o = feat_put_array(o, (uint32_t)k * 2);
			for (uint16_t j = 0; j < k; j++) {
				uint32_t bk[2];
				memcpy(bk, p + off + TK_HDR + vl + (size_t)j * 8, 8);
				o = feat_put_int(o, bk[0]);
				o = feat_put_int(o, bk[1]);
			}
		}
		return o;
	case FEAT_DISTINCT: {
		int mode = d->nbuckets && f->mode != 3 ? 2 : f->mode;
		*o++ = 0x92;
		o = feat_put_int(o, mode);
		size_t w = mode == 0 ? 8 : 12;
		size_t n = mode == 1 ? HLL_M : mode == 3 ? FEAT_SLIDE_REGS : f->len * w;
		*o++ = 0xc6; /* bin 32 */
		feat_be32(o, (uint32_t)n);
		o += 4;
		if (mode == 1 || mode == 3)
			return feat_put_bytes(o, p, n);
		for (uint32_t k = 0; k < f->len; k++, o += w) {
			if (mode == 0) {
				feat_be64(o, ((const uint64_t *)p)[k]);
			} else {
				const dh *h = &((const dh *)p)[k];
				feat_be64(o, h->h);
				feat_be32(o + 8, h->bid);
			}
		}
		return o;
	}
	}
	return o;
}

int
feat_state_encode(const feat_spec *s, const feat_state *st, fp_buf *out)
{
	size_t bound = 32;
	for (size_t i = 0; i < s->n; i++)
		bound += 12 + FEAT_MAX_NAME + enc_bound(&s->f[i], &st->f[i]);
	if (fp_buf_reserve(out, bound) < 0)
		return -1;
	uint8_t *o = out->p + out->len;
	*o++ = 0x93;
	o = feat_put_int(o, FEAT_STATE_VERSION);
	if (st->now == INT64_MIN)
		*o++ = 0xc0;
	else
		o = feat_put_int(o, st->now);
	o = feat_put_array(o, (uint32_t)s->n);
	for (size_t i = 0; i < s->n; i++) {
		const feat_def *d = &s->f[i];
		*o++ = 0x93;
		o = feat_put_str(o, d->name, d->nlen);
		*o++ = 0xcf; /* uint 64 */
		feat_be64(o, d->fingerprint);
		o += 8;
		o = enc_feature(d, st, &st->f[i], o);
	}
	out->len = (size_t)(o - out->p);
	return 0;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct cur {
	const uint8_t *p;
	size_t n;
} cur;

static int
c_take(cur *c, const uint8_t **obj, size_t *olen)
{
	size_t k = mp_skip(c->p, c->n);
	if (!k)
		return -1;
	*obj = c->p;
	*olen = k;
	c->p += k;
	c->n -= k;
	return 0;
}

static int
c_array(cur *c, uint32_t *count)
{
	size_t h;
	if (mp_read_array(c->p, c->n, count, &h) < 0 || *count > c->n)
		return -1;
	c->p += h;
	c->n -= h;
	return 0;
}

/* The unsigned encodings the encoder writes (fixint, uint 8/16/32/64),
 * read inline: 0, *v and the cursor moved past, or -1 and nothing moved
 * (another encoding, or too short) for the general path to decide. */
static inline int
c_fast_uint(cur *c, uint64_t *v)
{
	static const uint8_t width[4] = {1, 2, 4, 8};
	if (!c->n)
		return -1;
	uint8_t b = c->p[0];
	if (b <= 0x7f) {
		*v = b;
		c->p++;
		c->n--;
		return 0;
	}
	if (b < 0xcc || b > 0xcf)
		return -1;
	size_t w = width[b - 0xcc];
	if (c->n < 1 + w)
		return -1;
	uint64_t u = 0;
	for (size_t k = 1; k <= w; k++)
		u = u << 8 | c->p[k];
	*v = u;
	c->p += 1 + w;
	c->n -= 1 + w;
	return 0;
}

static int
c_int(cur *c, int64_t *v)
{
	uint64_t u;
	if (c_fast_uint(c, &u) == 0) {
		*v = (int64_t)u;
		return u <= INT64_MAX ? 0 : -1; /* as mp_read_int() */
	}
	const uint8_t *o;
	size_t ol;
	return c_take(c, &o, &ol) < 0 ? -1 : mp_read_int(o, ol, v);
}

static int
c_uint(cur *c, uint64_t *v, uint64_t max)
{
	if (c_fast_uint(c, v) == 0)
		return *v <= max ? 0 : -1;
	const uint8_t *o;
	size_t ol;
	if (c_take(c, &o, &ol) < 0 || mp_read_uint(o, ol, v) < 0)
		return -1;
	return *v <= max ? 0 : -1;
}

static int
c_num(cur *c, fnum *v, uint8_t *isf)
{
	const uint8_t *o;
	size_t ol;
	if (c_take(c, &o, &ol) < 0)
		return -1;
	if (o[0] == 0xca || o[0] == 0xcb) {
		*isf = 1;
		return mp_read_number(o, ol, &v->d);
	}
	*isf = 0;
	return mp_read_int(o, ol, &v->i);
}

/* A stored value, canonicalised into out. */
static int
c_value(cur *c, uint8_t *out, size_t *olen)
{
	const uint8_t *o;
	size_t ol;
	if (c_take(c, &o, &ol) < 0)
		return -1;
	return feat_value_canon(o, ol, out, olen);
}

static int
fst_add(feat_state *st, fst *f, const void *p, size_t n)
{
	if (f->len + n > f->cap && feat_grow(st, f, f->len + n) < 0)
		return -1;
	memcpy((uint8_t *)FPTR(st, f) + f->len, p, n);
	f->len += (uint32_t)n;
	return 0;
}

static int
dec_feature(const feat_def *d, feat_state *st, fst *f, cur *c, int64_t now)
{
	uint32_t cnt, cb = d->nbuckets ? feat_bucket(now, d->bucket_ms) : 0;
	if (c_array(c, &cnt) < 0)
		return -1;
	switch (d->agg) {
	case FEAT_COUNT: case FEAT_SUM: case FEAT_AVG: case FEAT_MIN: case FEAT_MAX:
		if (!d->nbuckets) {
			if (cnt != 2 || c_int(c, &f->n) < 0 || f->n < 0 || c_num(c, &f->v, &f->isf) < 0)
				return -1;
			return 0;
		}
		if (cnt % 3 || cnt / 3 > d->nbuckets || (cnt && now == INT64_MIN))
			return -1;
		if (feat_grow(st, f, cnt / 3 * sizeof(wbk)) < 0)
			return -1;
		for (uint32_t k = 0; k < cnt / 3; k++) {
			uint64_t bid, n;
			fnum v;
			uint8_t isf;
			if (c_uint(c, &bid, UINT32_MAX) < 0 || c_uint(c, &n, NF_COUNT) < 0 || n == 0 ||
			    c_num(c, &v, &isf) < 0)
				return -1;
			wbk *b = FPTR(st, f);
			if (f->len && (cb - b[f->len - 1].bid) <= (cb - (uint32_t)bid))
				return -1; /* not oldest first */
			if (cb - (uint32_t)bid >= d->nbuckets)
				continue;
			b[f->len++] = (wbk){(uint32_t)bid, (uint32_t)n | (isf ? NF_FLOAT : 0), v};
		}
		return 0;
	case FEAT_FIRST: case FEAT_LATEST: case FEAT_LAST: {
		if (cnt % 2 || cnt / 2 > d->param)
			return -1;
		int64_t pt = 0;
		uint8_t pv[FEAT_MAX_VALUE];
		size_t pl = 0;
		for (uint32_t k = 0; k < cnt / 2; k++) {
			int64_t t;
			uint8_t v[FEAT_MAX_VALUE];
			size_t vl;
			if (c_int(c, &t) < 0 || c_value(c, v, &vl) < 0)
				return -1;
			if (k) {
				int cmp = t != pt ? (t < pt ? -1 : 1) : feat_val_cmp(v, vl, pv, pl);
				if (d->agg == FEAT_FIRST ? cmp < 0 : cmp > 0)
					return -1; /* not in order */
			}
			if (d->nbuckets && (now == INT64_MIN ||
			                    t > now || feat_bucket_age(now, t, d->bucket_ms) >= d->nbuckets))
				return -1;
			uint16_t l16 = (uint16_t)vl;
			if (fst_add(st, f, &t, 8) < 0 || fst_add(st, f, &l16, 2) < 0 || fst_add(st, f, v, vl) < 0)
				return -1;
			f->n++;
			pt = t;
			memcpy(pv, v, vl);
			pl = vl;
		}
		return 0;
	}
	case FEAT_TOPK:
		if (cnt % 2 || cnt / 2 > d->capacity)
			return -1;
		for (uint32_t k = 0; k < cnt / 2; k++) {
			uint8_t v[FEAT_MAX_VALUE];
			size_t vl;
			uint32_t nb;
			if (c_value(c, v, &vl) < 0 || c_array(c, &nb) < 0 || nb % 2 || nb == 0 ||
			    nb / 2 > (d->nbuckets ? d->nbuckets : 1))
				return -1;
			size_t sz = TK_HDR + vl + (size_t)nb / 2 * 8;
			if (feat_grow(st, f, f->len + sz) < 0)
				return -1;
			uint8_t *e = (uint8_t *)FPTR(st, f) + f->len, *bk = e + TK_HDR + vl;
			uint16_t hdr[2] = {(uint16_t)vl, (uint16_t)(nb / 2)};
			memcpy(e, hdr, 4);
			memcpy(e + TK_HDR, v, vl);
			uint32_t prev_age = UINT32_MAX;
			for (uint32_t j = 0; j < nb / 2; j++) {
				uint64_t bid, n;
				if (c_uint(c, &bid, UINT32_MAX) < 0 || c_uint(c, &n, UINT32_MAX) < 0 || !n)
					return -1;
				uint32_t b[2] = {(uint32_t)bid, (uint32_t)n};
				if (d->nbuckets) {
					uint32_t age = cb - b[0];
					if (now == INT64_MIN || age >= d->nbuckets || (j && age >= prev_age))
						return -1;
					prev_age = age;
				} else if (bid != 0) {
					return -1;
				}
				memcpy(bk + (size_t)j * 8, b, 8);
			}
			feat_tk_set_total(e);
			f->len += (uint32_t)sz;
			f->n++;
		}
		return 0;
	case FEAT_DISTINCT: {
		int64_t mode;
		const uint8_t *o, *bin;
		size_t ol, bl;
		if (cnt != 2 || c_int(c, &mode) < 0 || c_take(c, &o, &ol) < 0 ||
		    mp_read_bin(o, ol, &bin, &bl) < 0)
			return -1;
		if (d->nbuckets ? mode != 2 && mode != 3 : mode != 0 && mode != 1)
			return -1;
		if (mode == 3) {
			if (bl != FEAT_SLIDE_REGS || now == INT64_MIN || feat_slide_check(bin) < 0 ||
			    feat_grow(st, f, SLIDE_BYTES) < 0)
				return -1;
			memcpy(FPTR(st, f), bin, FEAT_SLIDE_REGS);
			feat_slide_expire(FPTR(st, f), cb, d->nbuckets);
			f->len = SLIDE_BYTES;
			f->mode = 3;
			return 0;
		}
		if (mode == 1) {
			if (bl != HLL_M)
				return -1;
			for (size_t k = 0; k < bl; k++)
				if (bin[k] > HLL_Q + 1)
					return -1;
			if (feat_grow(st, f, HLL_BYTES) < 0)
				return -1;
			memcpy(FPTR(st, f), bin, HLL_M);
			feat_hll_histogram(FPTR(st, f));
			f->len = HLL_BYTES;
			f->mode = 1;
			return 0;
		}
		size_t w = mode == 0 ? 8 : 12;
		if (bl % w || bl / w > (mode == 0 ? FEAT_DISTINCT_EXACT : FEAT_DISTINCT_WINDOW))
			return -1;
		f->mode = (uint8_t)mode;
		size_t n = bl / w, esz = mode == 0 ? sizeof(uint64_t) : sizeof(dh);
		if (feat_grow(st, f, n * esz) < 0)
			return -1;
		uint64_t prev = 0;
		for (size_t k = 0; k < n; k++) {
			uint64_t h = be_get64(bin + k * w);
			if (k && h <= prev)
				return -1;
			prev = h;
			if (mode == 0) {
				((uint64_t *)FPTR(st, f))[f->len++] = h;
			} else {
				uint32_t bid = be_get32(bin + k * w + 8);
				if (now == INT64_MIN || cb - bid >= d->nbuckets)
					return -1;
				((dh *)FPTR(st, f))[f->len++] = (dh){h, bid, 0};
			}
		}
		return 0;
	}
	}
	return -1;
}

__attribute__((format(printf, 3, 4))) static int
derr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
feat_state_decode(const feat_spec *s, const uint8_t *p, size_t n, feat_state **out,
                  size_t *changed, char *err, size_t errlen)
{
	*out = NULL;
	cur c = {p, n};
	uint32_t cnt, nf;
	int64_t ver, now;
	if (c_array(&c, &cnt) < 0 || cnt != 3 || c_int(&c, &ver) < 0)
		return derr(err, errlen, "@state: not a feature state");
	if (ver != FEAT_STATE_VERSION)
		return derr(err, errlen, "@state: version %lld, expected %d", (long long)ver,
		            FEAT_STATE_VERSION);
	if (c.n && c.p[0] == 0xc0) {
		now = INT64_MIN;
		c.p++;
		c.n--;
	} else if (c_int(&c, &now) < 0) {
		return derr(err, errlen, "@state: bad time");
	}
	if (c_array(&c, &nf) < 0 || nf > FEAT_MAX_FEATURES)
		return derr(err, errlen, "@state: bad feature list");
	feat_state *st = feat_state_new(s);
	if (!st)
		return derr(err, errlen, "@state: out of memory");
	st->now = now;
	uint8_t *seen = calloc(s->n + 1, 1);
	if (!seen) {
		feat_state_free(st);
		return derr(err, errlen, "@state: out of memory");
	}
	for (uint32_t k = 0; k < nf; k++) {
		uint32_t three;
		const uint8_t *o;
		size_t ol, nl;
		const char *name;
		uint64_t fpr;
		if (c_array(&c, &three) < 0 || three != 3 || c_take(&c, &o, &ol) < 0 ||
		    mp_read_str(o, ol, &name, &nl) < 0 || c_uint(&c, &fpr, UINT64_MAX) < 0) {
			derr(err, errlen, "@state: bad entry %u of the feature list", k);
			goto fail;
		}
		size_t i = k < s->n ? k : 0; /* stored in the spec's order, mostly */
		if (s->f[i].nlen != nl || memcmp(s->f[i].name, name, nl))
			for (i = 0; i < s->n && (s->f[i].nlen != nl || memcmp(s->f[i].name, name, nl)); i++)
				;
		if (i == s->n || s->f[i].fingerprint != fpr || seen[i]) {
			if (c_take(&c, &o, &ol) < 0) { /* dropped or redefined */
				derr(err, errlen, "@state: bad data of feature '%.*s'", (int)(nl > 64 ? 64 : nl),
				     name);
				goto fail;
			}
			continue;
		}
		seen[i] = 1;
		if (dec_feature(&s->f[i], st, &st->f[i], &c, now) < 0) {
			derr(err, errlen, "@state: bad data of feature '%s'", s->f[i].name);
			goto fail;
		}
	}
	if (c.n) {
		derr(err, errlen, "@state: %zu bytes after the state", c.n);
		goto fail;
	}
	size_t ch = 0;
	for (size_t i = 0; i < s->n; i++)
		ch += !seen[i];
	if (changed)
		*changed = ch;
	free(seen);
	*out = st;
	return 0;
fail:
	free(seen);
	feat_state_free(st);
	return -1;
}
