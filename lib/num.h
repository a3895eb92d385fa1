/* num.h - checked number parsing: range and trailing junk, never atoi. */
#ifndef FP_NUM_H
#define FP_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Parse a whole decimal integer in [min, max].  0 on success, -1 when the
 * text is empty, has trailing junk or is out of range; errstr (if not NULL)
 * then says which. */
int fp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
                 char *errstr, size_t errlen);
int fp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                 char *errstr, size_t errlen);
/* Room for the decimal text of any 64-bit integer, sign included. */
#define FP_DEC_MAX 21

/* The decimal text of u, '-' first when neg (u is then the magnitude),
 * written at t (FP_DEC_MAX bytes of room; no NUL); returns its length.
 * Without snprintf: it is on every hot path that prints a number. */
static inline size_t
fp_fmt_dec(char *t, uint64_t u, int neg)
{
	char r[FP_DEC_MAX];
	size_t n = 0, j = 0;
	do
		r[n++] = (char)('0' + u % 10);
	while (u /= 10);
	if (neg)
		t[j++] = '-';
	while (n)
		t[j++] = r[--n];
	return j;
}

/* fp_fmt_dec() of a signed integer. */
static inline size_t
fp_fmt_i64(char *t, int64_t v)
{
	return fp_fmt_dec(t, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0);
}

/* A finite double, whole string. */
int fp_parse_double(const char *s, double *out, char *errstr, size_t errlen);

/* A duration: an integer with a unit ms, s, m, h, d or w ("250ms", "30d";
 * a bare number is seconds when bare_unit_ms is 1000, milliseconds when 1).
 * Result in milliseconds, > 0 unless allow_zero. */
int fp_parse_duration_ms(const char *s, int64_t bare_unit_ms, int allow_zero,
                         int64_t *out, char *errstr, size_t errlen);

/* A size: an integer with an optional suffix k/K/KiB, M/MiB, G/GiB (powers
 * of 1024), in [min, max]. */
int fp_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  char *errstr, size_t errlen);

#endif
