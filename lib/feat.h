/* feat.h - the feature language (fp-features(5)) and per-key feature state.
 *
 * A feat_spec is a parsed feature file: the key field, the Redis key prefix,
 * the event-time field, the ttl, and the features in file order.  It is
 * immutable after parsing and may be shared by any number of states.
 *
 * A feat_state holds one key's features: counters, window buckets, value
 * lists and sketches.  feat_apply() merges one behaviour record into it;
 * feat_emit_values() packs every feature's current value; feat_state_encode()
 * and feat_state_decode() turn it into the "@state" bytes kept in the store
 * and back.
 *
 * Windows (feature "over D by B") are event-time sliding windows made of
 * buckets of B ms.  A key's "now" is the greatest event time it has seen
 * (over every record applied to it, whatever the where filters say).  A
 * window holds the events whose bucket is one of the D/B buckets ending
 * with now's bucket.  A late event whose bucket is still inside the window
 * is added to it; one whose bucket is already out is ignored and counted
 * (feat_stats.late).  Final values therefore do not depend on arrival order
 * (sums of floats up to rounding).
 *
 * Values (fp-merge update frame): count, sum of integers, min/max of
 * integers: int; avg, and sums/min/max involving a float: float; first,
 * latest: the record's value (string, binary, number, boolean; integers in
 * their smallest encoding, float32 widened to float64); last: array newest
 * first; topk: array of [value, count] pairs, count descending (ties: value
 * bytes ascending); distinct: int.  A feature with no value yet is nil,
 * except count, sum and distinct (0) and last and topk ([]).
 *
 * Thread safety: a spec may be used by several threads at once; a state by
 * one at a time.
 *
 * lib/ rule: nothing here prints or exits; failures return -1 (or NULL) and
 * fill err[0..errlen) when an err buffer is given.
 */
#ifndef FP_FEAT_H
#define FP_FEAT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "buf.h"

struct fp_path; /* lib/expr.h */

typedef struct feat_spec feat_spec;
typedef struct feat_state feat_state;

/* The aggregates, in the order fp-features(5) lists them. */
typedef enum feat_agg {
	FEAT_COUNT,
	FEAT_SUM,
	FEAT_AVG,
	FEAT_MIN,
	FEAT_MAX,
	FEAT_FIRST,
	FEAT_LATEST,
	FEAT_LAST,
	FEAT_TOPK,
	FEAT_DISTINCT,
} feat_agg;

/* Limits (documented in fp-features(5)). */
#define FEAT_MAX_FEATURES 256      /* features per file */
#define FEAT_MAX_NAME 64           /* bytes in a feature name */
#define FEAT_MAX_PARAM 1000        /* N of last(f, N), K of topk(f, K) */
#define FEAT_MAX_BUCKETS 4096      /* buckets per window (D / B) */
#define FEAT_MAX_VALUE 256         /* bytes of one stored value (msgpack) */
#define FEAT_DISTINCT_EXACT 128    /* distinct(): exact up to this many values */
#define FEAT_HLL_BITS 14           /* then HyperLogLog, 2^14 registers */
#define FEAT_DISTINCT_WINDOW 12288 /* distinct() over a window: exact up to
                                      this many values in the window, then
                                      a sliding HyperLogLog (2^14 registers) */
#define FEAT_STATE_VERSION 1       /* first element of every encoded state */

/* Counters kept by feat_apply(); the caller zeroes the struct and reads it
 * for metrics.  "pairs" are (record, feature) pairs. */
typedef struct feat_stats {
	uint64_t records;   /* records given to feat_apply() */
	uint64_t no_time;   /* records without a usable time field: ignored */
	uint64_t applied;   /* pairs: the record was aggregated by the feature */
	uint64_t filtered;  /* pairs: the where expression did not match */
	uint64_t bad_field; /* pairs: aggregated field missing, nil, of the
	                       wrong type, or longer than FEAT_MAX_VALUE */
	uint64_t late;      /* pairs: the record's bucket was already out of
	                       the feature's window */
	uint64_t approx;    /* pairs: absorbed by a sketch (distinct past its
	                       exact cap, topk past its tracked-value capacity) */
} feat_stats;

/* ---- the feature file ---------------------------------------------- */

/* Parse a feature file held in text[0..n).  name is used in messages
 * ("name:line:col: ..."; "-" or NULL gives "<input>").  Returns a new spec
 * owned by the caller (feat_spec_free), or NULL with err set to
 * "name:line:col: what was expected / what is wrong" (out of memory too). */
feat_spec *feat_spec_parse(const char *text, size_t n, const char *name,
                           char *err, size_t errlen);

/* Read and parse the file at path.  NULL with err set when it cannot be read
 * ("unable to read 'path': reason") or does not parse. */
feat_spec *feat_spec_parse_file(const char *path, char *err, size_t errlen);

void feat_spec_free(feat_spec *s);

/* Accessors; returned pointers are borrowed and live as long as the spec. */
const struct fp_path *feat_spec_key(const feat_spec *s);  /* never NULL */
const struct fp_path *feat_spec_time(const feat_spec *s); /* "@ts" unless set */
/* The Redis key prefix (may be empty, may hold any bytes); *len its size. */
const char *feat_spec_prefix(const feat_spec *s, size_t *len);
/* ttl in seconds; 0 when the file sets none. */
int64_t feat_spec_ttl(const feat_spec *s);
size_t feat_spec_count(const feat_spec *s);
/* Feature i (0 <= i < count), in file order: its name (NUL-terminated),
 * its aggregate, and its window in ms (0 when it has no "over"). */
const char *feat_spec_name(const feat_spec *s, size_t i);
feat_agg feat_spec_agg(const feat_spec *s, size_t i);
int64_t feat_spec_window_ms(const feat_spec *s, size_t i);
int64_t feat_spec_bucket_ms(const feat_spec *s, size_t i);

/* Append prefix + key of the checked record rec[0..len) to out: a string or
 * binary key as its bytes, an integer in decimal.  0, or -1 when the key
 * field is missing or of another type (nothing appended) or out of memory.
 * *is_utf8 (if not NULL) says whether the appended bytes are valid UTF-8,
 * i.e. whether "@key" should be packed as str rather than bin. */
int feat_record_key(const feat_spec *s, const uint8_t *rec, size_t len,
                    fp_buf *out, int *is_utf8);

/* The record's event time (ms) from the time field: 0 and *t, or -1 when the
 * field is missing or not an integer. */
int feat_record_time(const feat_spec *s, const uint8_t *rec, size_t len,
                     int64_t *t);

/* ---- one key's state ------------------------------------------------ */

/* A new empty state for spec s (borrowed: s must outlive the state).
 * NULL when out of memory. */
feat_state *feat_state_new(const feat_spec *s);
void feat_state_free(feat_state *st);

/* The greatest event time applied to the state; INT64_MIN when empty. */
int64_t feat_state_now(const feat_state *st);

/* Merge one checked behaviour record rec[0..len) (a frame body) into st:
 * the time comes from the spec's time field; each feature whose where
 * expression matches aggregates its field.  Returns 0 when the record was
 * applied (even if no feature took it), 1 when it has no usable time field
 * (state untouched, counted in stats->no_time), -1 when out of memory (the
 * state stays valid but may hold part of the record).  stats may be NULL. */
int feat_apply(const feat_spec *s, feat_state *st, const uint8_t *rec,
               size_t len, feat_stats *stats);

/* Pack 2 * feat_spec_count(s) objects into pk: each feature's name (str)
 * then its current value, in file order (the caller has opened the map).
 * Windowed values are evaluated as of feat_state_now().  A packer that
 * appends to an fp_buf (callback fp_buf_pack_write) is written in place;
 * any other gets one call of its callback.  0, or -1 when out of memory or
 * the callback fails. */
int feat_emit_values(const feat_spec *s, const feat_state *st,
                     msgpack_packer *pk);

/* Append the msgpack encoding of st (the "@state" bytes) to out.  It holds
 * FEAT_STATE_VERSION, now, and per feature its name, a fingerprint of its
 * definition, and its data.  0, or -1 when out of memory. */
int feat_state_encode(const feat_spec *s, const feat_state *st, fp_buf *out);

/* Decode "@state" bytes p[0..n) written by feat_state_encode() into a new
 * state for s (owned by the caller, *out).  A feature of s whose name and
 * definition (aggregate, field, parameter, where, window, bucket, time
 * field) are unchanged keeps its stored data; a feature that is new or whose
 * definition changed starts empty; stored features no longer in s are
 * dropped.  *changed (if not NULL) is set to the number of features of s
 * that started empty for that reason.  -1 with err set (e.g. "@state: bad
 * bucket list of feature 'views_1h'") when the bytes are not a state of
 * this version, are malformed, or out of memory; *out is then NULL. */
int feat_state_decode(const feat_spec *s, const uint8_t *p, size_t n,
                      feat_state **out, size_t *changed,
                      char *err, size_t errlen);

/* Hint that st is about to be used (feat_apply, feat_emit_values): issues
 * prefetches for its memory so that a caller holding a batch of records
 * can overlap the cache misses of the next keys with the current one. */
void feat_state_prefetch(const feat_state *st);

/* Bytes of memory the state occupies (the struct and its one data
 * allocation, with 16 bytes of allocator overhead counted per allocation). */
size_t feat_state_memory(const feat_state *st);

#endif
