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
} feat_def;

/* A field read by feat_apply(): each distinct path once per record; a
 * top-level name is found in one scan of the record's map. */
typedef struct feat_field {
	const fp_path *path; /* borrowed from the spec */
	const char *name;    /* path text */
	size_t nlen;
	int simple;          /* a plain top-level name */
} feat_field;

struct feat_spec {
	fp_path *key;
	fp_path *time;
	char *prefix;
	size_t prefix_len;
	int64_t ttl;
	size_t n;
	feat_def *f;
	feat_field *fields;  /* [0] is the time field */
	size_t nfields;
	const expr **wheres; /* distinct where expressions (borrowed) */
	size_t nwheres;
};

/* Canonical msgpack form of a stored value (smallest int/str/bin headers,
 * float32 widened): 0 and out[0..*olen), or -1 when p is not a str, bin,
 * int, float or bool, or the result is longer than FEAT_MAX_VALUE. */
int feat_value_canon(const uint8_t *p, size_t n, uint8_t *out, size_t *olen);

uint64_t feat_hash(const void *p, size_t n);

/* Tie-break order of canonical values: str/bin by their bytes, others by
 * their msgpack bytes, then the whole encoding. */
int feat_val_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* Bucket id of time t for bucket width w: floor(t / w), modulo 2^32. */
static inline uint32_t
feat_bucket(int64_t t, int64_t w)
{
	int64_t q = t / w;
	if (t % w < 0)
		q--;
	return (uint32_t)q;
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
		if (u <= 0xffff) { o[0] = 0xcd; o[1] = (uint8_t)(u >> 8); o[2] = (uint8_t)u; return 3; }
		if (u <= 0xffffffff) {
			o[0] = 0xce;
			for (int k = 0; k < 4; k++)
				o[1 + k] = (uint8_t)(u >> (24 - 8 * k));
			return 5;
		}
		o[0] = 0xcf;
		for (int k = 0; k < 8; k++)
			o[1 + k] = (uint8_t)(u >> (56 - 8 * k));
		return 9;
	}
	if (v >= -32) { o[0] = (uint8_t)(int8_t)v; return 1; }
	uint64_t u = (uint64_t)v;
	if (v >= INT8_MIN) { o[0] = 0xd0; o[1] = (uint8_t)u; return 2; }
	if (v >= INT16_MIN) { o[0] = 0xd1; o[1] = (uint8_t)(u >> 8); o[2] = (uint8_t)u; return 3; }
	if (v >= INT32_MIN) {
		o[0] = 0xd2;
		for (int k = 0; k < 4; k++)
			o[1 + k] = (uint8_t)(u >> (24 - 8 * k));
		return 5;
	}
	o[0] = 0xd3;
	for (int k = 0; k < 8; k++)
		o[1 + k] = (uint8_t)(u >> (56 - 8 * k));
	return 9;
}

static inline size_t
feat_enc_hdr(uint8_t *o, int bin, size_t n)
{
	if (!bin && n <= 31) { o[0] = (uint8_t)(0xa0 | n); return 1; }
	if (n <= 0xff) { o[0] = bin ? 0xc4 : 0xd9; o[1] = (uint8_t)n; return 2; }
	o[0] = bin ? 0xc5 : 0xda;
	o[1] = (uint8_t)(n >> 8);
	o[2] = (uint8_t)n;
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
	for (int k = 0; k < 8; k++)
		o[1 + k] = (uint8_t)(bits >> (56 - 8 * k));
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
		o[1] = (uint8_t)(n >> 8);
		o[2] = (uint8_t)n;
		return o + 3;
	}
	o[0] = 0xdd;
	for (int k = 0; k < 4; k++)
		o[1 + k] = (uint8_t)(n >> (24 - 8 * k));
	return o + 5;
}

static inline uint8_t *
feat_put_bytes(uint8_t *o, const void *p, size_t n)
{
	memcpy(o, p, n);
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
size_t feat_tk_size(const uint8_t *e);     /* topk entry */
void feat_hll_histogram(uint8_t *r);       /* recompute after registers */

#endif
