/* mpraw.h - MessagePack bytes checked and scanned without decoding.
 *
 * The frame rule (fp-frames(5)): a frame body is exactly one map; every map
 * key is a valid UTF-8 string; nesting is at most max_depth deep; a container holds at
 * most max_elements entries, and never more than the bytes left could
 * encode (checked before anything is allocated for it).
 */
#ifndef FP_MPRAW_H
#define FP_MPRAW_H

#include <stddef.h>
#include <stdint.h>

#define MP_DEFAULT_DEPTH 64
#define MP_MAX_DEPTH 256
#define MP_DEFAULT_ELEMENTS (1u << 20)

typedef struct mp_limits {
	unsigned max_depth;    /* <= MP_MAX_DEPTH */
	uint32_t max_elements; /* per container */
} mp_limits;

/* Check p[0..n) against the frame rule.  0 when it holds; -1 otherwise,
 * with errstr saying what is wrong and at which byte of the body. */
int mp_check_frame(const uint8_t *p, size_t n, const mp_limits *lim,
                   char *errstr, size_t errlen);

/* mp_check_frame(), also saying where the top-level entries are: *ntop
 * gets their number, and top[i] the offset of the i-th key for the first
 * maxtop of them (the value follows its key and ends where the next key,
 * or the body, does).  Bodies of at most 4 GiB. */
int mp_check_frame_top(const uint8_t *p, size_t n, const mp_limits *lim,
                       char *errstr, size_t errlen, uint32_t *top, uint32_t maxtop,
                       uint32_t *ntop);

/* The size of a container or long value at p: mp_skip()'s general case. */
size_t mp_skip_any(const uint8_t *p, size_t n);

/* The size in bytes of the one object at p, or 0 when it is truncated or
 * invalid.  Scalars and short strings, the hot path of every field lookup,
 * are sized inline; the rest iteratively (safe on unchecked input of any
 * depth). */
static inline size_t
mp_skip(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	uint8_t c = p[0];
	size_t s;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return 1;
	if (c >= 0xa0 && c <= 0xbf) {
		s = 1 + (size_t)(c & 0x1f);
	} else {
		switch (c) {
		case 0xcc: case 0xd0: s = 2; break;
		case 0xcd: case 0xd1: s = 3; break;
		case 0xca: case 0xce: case 0xd2: s = 5; break;
		case 0xcb: case 0xcf: case 0xd3: s = 9; break;
		case 0xd9:
			if (n < 2)
				return 0;
			s = 2 + (size_t)p[1];
			break;
		default:
			return mp_skip_any(p, n);
		}
	}
	return s <= n ? s : 0;
}

/* In a checked frame body, find the top-level entry whose key is key[0..klen).
 * 1 and the value's bytes in *val and *vlen when found, 0 when not. */
int mp_map_find(const uint8_t *p, size_t n, const char *key, size_t klen,
                const uint8_t **val, size_t *vlen);

/* 1 when the checked frame body is a control frame (has "@ctl"). */
int mp_is_control(const uint8_t *p, size_t n);

/* Readers of one object; 0 on success, -1 when the object is another type. */
int mp_read_str(const uint8_t *p, size_t n, const char **s, size_t *slen);
int mp_read_bin(const uint8_t *p, size_t n, const uint8_t **b, size_t *blen);
/* Any msgpack integer that fits int64. */
int mp_read_int(const uint8_t *p, size_t n, int64_t *v);
/* An unsigned integer, or a non-negative signed one. */
int mp_read_uint(const uint8_t *p, size_t n, uint64_t *v);
/* float32/float64, or an integer converted. */
int mp_read_number(const uint8_t *p, size_t n, double *v);

/* Header of a container: 0 and *count when p is a map (entries) or array. */
int mp_read_map(const uint8_t *p, size_t n, uint32_t *count, size_t *hdrlen);
int mp_read_array(const uint8_t *p, size_t n, uint32_t *count, size_t *hdrlen);

/* UTF-8: the length of the valid sequence at p (n bytes available), or 0;
 * and whether all of p[0..n) is valid. */
size_t utf8_seq_len(const uint8_t *p, size_t n);
int utf8_valid(const uint8_t *p, size_t n);

#endif
