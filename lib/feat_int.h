/* feat_int.h - internals shared by feat_parse.c and feat.c (not an API). */
#ifndef FP_FEAT_INT_H
#define FP_FEAT_INT_H

#include "feat.h"
#include "expr.h"

#include <string.h>

typedef struct feat_def {
	char name[FEAT_MAX_NAME + 1];
	size_t nlen;
	feat_agg agg;
	fp_path *field;     /* NULL for count() */
	int64_t param;      /* N of last(), K of topk(); 1 for first/latest */
	expr *where;        /* NULL when none */
	char *where_text;   /* as written, NULL when none */
	int64_t window_ms;  /* 0: no window */
	int64_t bucket_ms;
	uint32_t nbuckets;  /* window_ms / bucket_ms; 0 without a window */
	uint32_t capacity;  /* topk: values tracked (Space-Saving) */
	uint64_t fingerprint;
	int fidx;           /* index of field in spec->fields; -1 for count() */
	int widx;           /* index of where in spec->wheres; -1 when none */
	int bidx;           /* index of bucket_ms in spec->widths; -1: no window */
} feat_def;

/* A field read by feat_apply(): each distinct path once per record; a
 * top-level name is found in one scan of the record's map. */
typedef struct feat_field {
	const fp_path *path; /* borrowed from the spec; NULL for a field only a
	                        feat_where reads (always simple) */
	const char *name;    /* path text */
	size_t nlen;
	int simple;          /* a plain top-level name */
	uint16_t next;       /* 1 + index of the next simple field whose name
	                        starts with the same byte; 0: none */
} feat_field;

/* A distinct where expression, evaluated once per record.  When its text
 * is exactly NAME == "STRING" (a bare top-level name, a string without
 * escapes), feat_apply() decides it from the field it has already read:
 * true when fields[fidx] is a str or bin holding lit[0..llen) (expr.h: a
 * missing field or another type is unknown, which does not match).  Any
 * other expression has fidx -1 and goes to expr_match(). */
typedef struct feat_where {
	const expr *e;     /* borrowed from the feature */
	int fidx;
	const char *lit;   /* into the feature's where text */
	size_t llen;
} feat_where;

struct feat_spec {
	fp_path *key;
	fp_path *time;
	char *prefix;
	size_t prefix_len;
	int prefix_utf8;     /* the prefix is valid UTF-8 */
	int64_t ttl;
	size_t n;
	feat_def *f;
	feat_field *fields;  /* [0] is the time field; then the aggregated
	                        fields, then those only where clauses read */
	size_t nfields;
	uint16_t by_first[256]; /* 1 + index of the first simple field whose
	                           name starts with that byte; 0: none */
	feat_where *wheres;  /* distinct where expressions */
	size_t nwheres;
	int64_t *widths;     /* distinct bucket widths of the windows */
	size_t nwidths;
};

/* Canonical msgpack form of a stored value (smallest int/str/bin headers,
 * float32 widened): 0 and out[0..*olen), or -1 when p is not a str, bin,
 * int, float or bool, or the result is longer than FEAT_MAX_VALUE. */
int feat_value_canon(const uint8_t *p, size_t n, uint8_t *out, size_t *olen);

uint64_t feat_hash(const void *p, size_t n);

/* Tie-break order of canonical values: str/bin by their bytes, others by
 * their msgpack bytes, then the whole encoding. */
int feat_val_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* floor(t / w) */
static inline int64_t
feat_floor(int64_t t, int64_t w)
{
	return t / w - (t % w < 0);
}

/* b - a for bucket numbers a <= b; INT64_MAX when that does not fit. */
static inline int64_t
feat_age64(int64_t b, int64_t a)
{
	int64_t r;
	return __builtin_sub_overflow(b, a, &r) ? INT64_MAX : r;
}

/* How many buckets of width w the bucket of t lies before the bucket of
 * now (t <= now); INT64_MAX when that does not fit. */
static inline int64_t
feat_bucket_age(int64_t now, int64_t t, int64_t w)
{
	int64_t a = now / w - (now % w < 0), b = t / w - (t % w < 0), r;
	return __builtin_sub_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Bucket id of time t for bucket width w: floor(t / w), modulo 2^32. */
static inline uint32_t
feat_bucket(int64_t t, int64_t w)
{
	int64_t q = t / w;
	if (t % w < 0)
		q--;
	return (uint32_t)q;
}

/* Big-endian stores of 2, 4 and 8 bytes: one swap and one store each. */
static inline void
feat_be16(uint8_t *o, uint16_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap16(v);
#endif
	memcpy(o, &v, 2);
}

static inline void
feat_be32(uint8_t *o, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	memcpy(o, &v, 4);
}

static inline void
feat_be64(uint8_t *o, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(o, &v, 8);
}

/* Fast msgpack writers into a buffer the caller has reserved (smallest
 * encodings, like mpw_*); each returns the end of what it wrote. */
static inline size_t
feat_enc_int(uint8_t *o, int64_t v)
{
	if (v >= 0) {
		uint64_t u = (uint64_t)v;
		if (u <= 0x7f) { o[0] = (uint8_t)u; return 1; }
		if (u <= 0xff) { o[0] = 0xcc; o[1] = (uint8_t)u; return 2; }
		if (u <= 0xffff) { o[0] = 0xcd; feat_be16(o + 1, (uint16_t)u); return 3; }
		if (u <= 0xffffffff) { o[0] = 0xce; feat_be32(o + 1, (uint32_t)u); return 5; }
		o[0] = 0xcf;
		feat_be64(o + 1, u);
		return 9;
	}
	if (v >= -32) { o[0] = (uint8_t)(int8_t)v; return 1; }
	uint64_t u = (uint64_t)v;
	if (v >= INT8_MIN) { o[0] = 0xd0; o[1] = (uint8_t)u; return 2; }
	if (v >= INT16_MIN) { o[0] = 0xd1; feat_be16(o + 1, (uint16_t)u); return 3; }
	if (v >= INT32_MIN) { o[0] = 0xd2; feat_be32(o + 1, (uint32_t)u); return 5; }
	o[0] = 0xd3;
	feat_be64(o + 1, u);
	return 9;
}

static inline size_t
feat_enc_hdr(uint8_t *o, int bin, size_t n)
{
	if (!bin && n <= 31) { o[0] = (uint8_t)(0xa0 | n); return 1; }
	if (n <= 0xff) { o[0] = bin ? 0xc4 : 0xd9; o[1] = (uint8_t)n; return 2; }
	o[0] = bin ? 0xc5 : 0xda;
	feat_be16(o + 1, (uint16_t)n);
	return 3;
}

static inline uint8_t *
feat_put_int(uint8_t *o, int64_t v)
{
	return o + feat_enc_int(o, v);
}

static inline uint8_t *
feat_put_double(uint8_t *o, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, 8);
	o[0] = 0xcb;
	feat_be64(o + 1, bits);
	return o + 9;
}

static inline uint8_t *
feat_put_array(uint8_t *o, uint32_t n)
{
	if (n <= 15) {
		*o = (uint8_t)(0x90 | n);
		return o + 1;
	}
	if (n <= 0xffff) {
		o[0] = 0xdc;
		feat_be16(o + 1, (uint16_t)n);
		return o + 3;
	}
	o[0] = 0xdd;
	feat_be32(o + 1, n);
	return o + 5;
}

/* Copy p[0..n) to o (not overlapping).  Names and values are mostly
 * short: up to 32 bytes take two overlapping fixed-size moves, not a call
 * to memcpy. */
static inline uint8_t *
feat_put_bytes(uint8_t *o, const void *p, size_t n)
{
	const uint8_t *s = p;
	if (n > 32) {
		memcpy(o, s, n);
	} else if (n >= 16) {
		uint8_t a[16], b[16];
		memcpy(a, s, 16);
		memcpy(b, s + n - 16, 16);
		memcpy(o, a, 16);
		memcpy(o + n - 16, b, 16);
	} else if (n >= 8) {
		uint64_t a, b;
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(o, &a, 8);
		memcpy(o + n - 8, &b, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		memcpy(o, &a, 4);
		memcpy(o + n - 4, &b, 4);
	} else {
		for (size_t k = 0; k < n; k++)
			o[k] = s[k];
	}
	return o + n;
}

static inline uint8_t *
feat_put_str(uint8_t *o, const char *p, size_t n)
{
	o += feat_enc_hdr(o, 0, n);
	return feat_put_bytes(o, p, n);
}

#define ALLOC_OVERHEAD 16
#define HLL_M (1u << FEAT_HLL_BITS)
#define HLL_Q (64 - FEAT_HLL_BITS)
/* HLL region: HLL_M registers, then the count of registers holding each
 * value 0..HLL_Q+1 (uint16), kept up to date so estimates cost O(HLL_Q). */
#define HLL_BYTES (HLL_M + 2 * (HLL_Q + 2))
/* Sliding HLL (distinct over a window, past FEAT_DISTINCT_WINDOW values):
 * HLL_M registers of FEAT_SLIDE_SLOTS (bucket16, rank) pairs, then the
 * histogram of the registers' values in the window. */
#define FEAT_SLIDE_SLOTS 4
#define FEAT_SLIDE_REGS ((size_t)HLL_M * FEAT_SLIDE_SLOTS * 3)
#define SLIDE_BYTES (FEAT_SLIDE_REGS + 2 * (HLL_Q + 2))

static inline uint8_t
feat_hll_rank(uint64_t h)
{
	uint64_t w = h >> FEAT_HLL_BITS;
	return w ? (uint8_t)(__builtin_clzll(w) - FEAT_HLL_BITS + 1) : HLL_Q + 1;
}

/* feat_sketch.c */
int64_t feat_hll_estimate(const uint8_t *hist);
void feat_hll_add(uint8_t *r, uint64_t h);
void feat_slide_add(uint8_t *r, uint64_t h, uint32_t bid, uint32_t cb, uint32_t nb);
/* Drop pairs out of the window ending at bucket cb; rebuild the histogram. */
void feat_slide_expire(uint8_t *r, uint32_t cb, uint32_t nb);
/* 0 when every rank of the pairs is possible. */
int feat_slide_check(const uint8_t *r);
#define NF_FLOAT 0x80000000u
#define NF_COUNT 0x7fffffffu

typedef union fnum {
	int64_t i;
	double d;
} fnum;

typedef struct wbk {
	uint32_t bid;
	uint32_t nf;
	fnum v;
} wbk;

typedef struct dh {
	uint64_t h;
	uint32_t bid;
	uint32_t pad;
} dh;

/* One feature's state.  Its data lives in the key's arena st->mem at
 * [off, off + cap); the features' regions follow each other in file order,
 * so one key's state is one allocation, read front to back. */
typedef struct fst {
	int64_t n;
	fnum v;
	uint32_t off;
	uint32_t len;        /* elements, or bytes for blobs */
	uint32_t cap;        /* bytes */
	uint8_t isf;
	uint8_t mode;
} fst;

struct feat_state {
	const feat_spec *spec;
	int64_t now;
	uint8_t *mem;        /* arena: every feature's data */
	uint32_t used, size; /* bytes of mem given to features / allocated */
	uint32_t nf;
	fst f[];
};

#define FPTR(st, f) ((void *)((st)->mem + (f)->off))

/* Make feature f's region at least need bytes (moving the regions after
 * it).  0, or -1 when out of memory (nothing changed).  Pointers into the
 * arena are invalid afterwards. */
int feat_grow(feat_state *st, fst *f, size_t need);

/* Shared by feat.c and feat_codec.c. */
size_t feat_item_size(const uint8_t *e);   /* first/latest/last item */
/* A topk entry: [uint16 vl][uint16 k][uint32 total][value: vl bytes]
 * [k x (uint32 bid, uint32 count), oldest first].  Every stored bucket is
 * inside the window (prune() runs whenever now's bucket moves), so the
 * entry's count is the sum of its buckets' counts; total caches it, or is
 * UINT32_MAX when the sum does not fit in it. */
#define TK_HDR 8
size_t feat_tk_size(const uint8_t *e);
uint64_t feat_tk_total(const uint8_t *e);  /* the sum, from total when it fits */
void feat_tk_set_total(uint8_t *e);        /* recompute total from the buckets */
void feat_hll_histogram(uint8_t *r);       /* recompute after registers */

#endif
