/* imp.h - fp-import's engine: one raw message in, behaviour records out,
 * as the data dictionary (dict.h, fp-dictionary(5)) says.
 *
 * The engine neither reads nor writes files: it appends finished frames
 * (4-byte length + body) to a caller's buffer, and when a message cannot be
 * imported it appends nothing and says why in imp.reason (the caller writes
 * the dead letter).  A message is all or nothing: when one element of an
 * exploded array fails, none of its records is kept.
 */
#ifndef FP_IMP_H
#define FP_IMP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dict.h"

/* A message split into text columns (CSV, TSV) or key/value pairs (kv:
 * entries 2i and 2i+1). */
typedef struct imp_cols {
	fp_buf text;        /* unquoted bytes; col i is text.p[off[i] .. off[i]+len[i]) */
	size_t *off, *len;  /* owned */
	size_t n, cap;
} imp_cols;

/* Split s[0..n) (one trailing newline ignored) in format f (DICT_CSV: RFC
 * 4180 quoting; DICT_TSV: tabs, no quoting; DICT_KV: logfmt key=value).
 * 0, or -1 with why (bad quoting, out of memory). */
int imp_split(imp_cols *c, enum dict_format f, const char *s, size_t n, char *why, size_t wl);
void imp_cols_release(imp_cols *c);

/* Where a message came from, as raw msgpack values of the input frame. */
typedef struct imp_meta {
	const uint8_t *src; size_t srclen;  /* @src array; required */
	const uint8_t *ts; size_t tslen;    /* @ts, or NULL (then none, unless: */
	const uint8_t *in; size_t inlen;    /* @in, or NULL */
	int ts_from_field;   /* take it from the source's time field ... */
	int64_t now_ms;      /* ... or, without one, this */
} imp_meta;

typedef struct imp {
	size_t max_frame;
	fp_buf mp;              /* the message as msgpack (JSON) */
	fp_buf rec;             /* typed fields of the record being built */
	imp_cols cols;          /* the message's columns (CSV, TSV, kv) */
	imp_cols header;        /* CSV/TSV column names from a header line */
	const uint8_t **rootv;  /* JSON: top-level values by the source's root index */
	size_t *rootl;
	size_t rootcap;
	char reason[320];       /* why the last message failed */
	uint64_t records, filtered, dropped;
} imp;

/* One pass over a raw message frame body, which need not have been checked:
 * @src, @ts, @in (into meta, the rest of it zeroed), "value" (raw msgpack,
 * or NULL) and whether it is a control frame.  0: the body is a map of
 * string keys and well-formed values that fills it exactly, every value a
 * scalar but @src, an array of scalars (what fp-consume writes) - safe to
 * use.  1: it has other containers; check it with mp_check_frame() before
 * using it.  -1: it is not valid. */
int imp_frame_scan(const uint8_t *p, size_t n, imp_meta *meta, const uint8_t **value,
                   size_t *vlen, int *control);

void imp_init(imp *m, size_t max_frame);
void imp_release(imp *m);

/* Use the columns of header line s[0..n) for the CSV/TSV source s (those
 * with `columns header`).  0, or -1 with m->reason. */
int imp_set_header(imp *m, const dict_source *s, const char *line, size_t n);

/* Import one message v[0..n) of source s.  0: its records (possibly none:
 * filtered or a dropped shape, counted in m) are appended to out.  1: the
 * message is a dead letter, m->reason says why, out is unchanged.  -1: out
 * of memory. */
int imp_message(imp *m, const dict_source *s, const imp_meta *meta, const uint8_t *v,
                size_t n, fp_buf *out);

#endif
