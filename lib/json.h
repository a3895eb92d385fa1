/* json.h - JSON text <-> MessagePack, exact both ways (fp-frames(5)).
 *
 * JSON -> msgpack is one pass with no tree: integers (no '.', no exponent)
 * become msgpack integers (int64/uint64; beyond 64 bits, float64), other
 * numbers float64; map key order is kept; strings must be valid UTF-8.
 * Reserved single-key objects carry what JSON cannot:
 *   {"@bin":"text"}        bin whose bytes are that UTF-8 text
 *   {"@b64":"base64"}      bin with any bytes
 *   {"@ext":[type,"b64"]}  msgpack ext
 *   {"@float":"NaN"}       also "Infinity", "-Infinity"
 * msgpack -> JSON writes those forms back, so a round trip is exact (a
 * float32 comes back as float64; a str that is not valid UTF-8 comes back
 * as bin).
 */
#ifndef FP_JSON_H
#define FP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mpraw.h"

typedef struct json_error {
	size_t column;   /* 1-based byte column of the problem in the text */
	char msg[160];
} json_error;

/* Transcode one JSON value s[0..n) (surrounding white space allowed) to
 * msgpack appended to out.  max_depth bounds nesting.  0, or -1 with *e set
 * (out is then left as it was). */
int json_to_mp(const char *s, size_t n, fp_buf *out, unsigned max_depth, json_error *e);

/* Write the msgpack object p[0..n) (checked with mp_check_frame() or
 * otherwise known valid) as one line of compact JSON appended to out (no
 * newline).  -1 when out of memory or p is invalid. */
int mp_to_json(const uint8_t *p, size_t n, fp_buf *out);

/* Base64 (RFC 4648, padded) into out; decode returns -1 on bad input. */
int b64_encode(const uint8_t *p, size_t n, fp_buf *out);
int b64_decode(const char *s, size_t n, fp_buf *out);

/* Append msgpack encodings to a buffer (smallest form). */
int mpw_int(fp_buf *b, int64_t v);
int mpw_uint(fp_buf *b, uint64_t v);
int mpw_double(fp_buf *b, double v);
int mpw_str(fp_buf *b, const void *p, size_t n);
int mpw_bin(fp_buf *b, const void *p, size_t n);
int mpw_map(fp_buf *b, uint32_t n);
int mpw_array(fp_buf *b, uint32_t n);
int mpw_nil(fp_buf *b);
int mpw_bool(fp_buf *b, int v);

#endif
