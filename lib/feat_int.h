/* feat_int.h - internals shared by feat_parse.c and feat.c (not an API). */
#ifndef FP_FEAT_INT_H
#define FP_FEAT_INT_H

#include "feat.h"
#include "expr.h"

typedef struct feat_def {
	char name[FEAT_MAX_NAME + 1];
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

#define ALLOC_OVERHEAD 16
#define HLL_M (1u << FEAT_HLL_BITS)
#define HLL_Q (64 - FEAT_HLL_BITS)
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

typedef struct fst {
	void *p;
	uint32_t len, cap;   /* elements, or bytes for blobs */
	int64_t n;
	fnum v;
	uint8_t isf;
	uint8_t mode;
} fst;

struct feat_state {
	const feat_spec *spec;
	int64_t now;
	size_t nf;
	fst f[];
};

/* Shared by feat.c and feat_codec.c. */
size_t feat_item_size(const uint8_t *e);   /* first/latest/last item */
size_t feat_tk_size(const uint8_t *e);     /* topk entry */

#endif
