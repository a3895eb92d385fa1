/* json.c - JSON <-> MessagePack; see json.h.
 *
 * Written by hand rather than on a Debian JSON library: cJSON (fastest of
 * them here) stores every number as a double, so 1 and 1.0 are the same and
 * integers above 2^53 are corrupted; json-c and json-parser keep integers
 * but parse at 0.5M and 0.76M records/s, and all three build a tree that
 * must then be walked again to produce msgpack.  This transcoder writes
 * msgpack in the same pass as it parses.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpraw.h"
#include "num.h"

/* ---- msgpack writers ---- */

static inline int
put_be(fp_buf *b, uint8_t tag, uint64_t v, int bytes)
{
	if (fp_buf_reserve(b, 1 + (size_t)bytes) < 0)
		return -1;
	uint8_t *p = b->p + b->len;
	*p++ = tag;
	for (int i = bytes - 1; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	b->len += 1 + (size_t)bytes;
	return 0;
}

int
mpw_uint(fp_buf *b, uint64_t v)
{
	if (v <= 0x7f)
		return fp_buf_addc(b, (uint8_t)v);
	if (v <= 0xff)
		return put_be(b, 0xcc, v, 1);
	if (v <= 0xffff)
		return put_be(b, 0xcd, v, 2);
	if (v <= 0xffffffffu)
		return put_be(b, 0xce, v, 4);
	return put_be(b, 0xcf, v, 8);
}

int
mpw_int(fp_buf *b, int64_t v)
{
	if (v >= 0)
		return mpw_uint(b, (uint64_t)v);
	if (v >= -32)
		return fp_buf_addc(b, (uint8_t)(int8_t)v);
	if (v >= INT8_MIN)
		return put_be(b, 0xd0, (uint8_t)(int8_t)v, 1);
	if (v >= INT16_MIN)
		return put_be(b, 0xd1, (uint16_t)(int16_t)v, 2);
	if (v >= INT32_MIN)
		return put_be(b, 0xd2, (uint32_t)(int32_t)v, 4);
	return put_be(b, 0xd3, (uint64_t)v, 8);
}

int
mpw_double(fp_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	return put_be(b, 0xcb, u, 8);
}

static int
str_header(fp_buf *b, size_t n)
{
	if (n <= 31)
		return fp_buf_addc(b, (uint8_t)(0xa0 | n));
	if (n <= 0xff)
		return put_be(b, 0xd9, n, 1);
	if (n <= 0xffff)
		return put_be(b, 0xda, n, 2);
	return put_be(b, 0xdb, n, 4);
}

int
mpw_str(fp_buf *b, const void *p, size_t n)
{
	if (n > 0xffffffffu || str_header(b, n) < 0)
		return -1;
	return fp_buf_add(b, p, n);
}

int
mpw_bin(fp_buf *b, const void *p, size_t n)
{
	int r;
	if (n > 0xffffffffu)
		return -1;
	if (n <= 0xff)
		r = put_be(b, 0xc4, n, 1);
	else if (n <= 0xffff)
		r = put_be(b, 0xc5, n, 2);
	else
		r = put_be(b, 0xc6, n, 4);
	return r < 0 ? -1 : fp_buf_add(b, p, n);
}

int
mpw_map(fp_buf *b, uint32_t n)
{
	if (n <= 15)
		return fp_buf_addc(b, (uint8_t)(0x80 | n));
	if (n <= 0xffff)
		return put_be(b, 0xde, n, 2);
	return put_be(b, 0xdf, n, 4);
}

int
mpw_array(fp_buf *b, uint32_t n)
{
	if (n <= 15)
		return fp_buf_addc(b, (uint8_t)(0x90 | n));
	if (n <= 0xffff)
		return put_be(b, 0xdc, n, 2);
	return put_be(b, 0xdd, n, 4);
}

int mpw_nil(fp_buf *b) { return fp_buf_addc(b, 0xc0); }
int mpw_bool(fp_buf *b, int v) { return fp_buf_addc(b, v ? 0xc3 : 0xc2); }

/* ---- base64 ---- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
b64_encode(const uint8_t *p, size_t n, fp_buf *out)
{
	if (fp_buf_reserve(out, (n + 2) / 3 * 4) < 0)
		return -1;
	char *o = (char *)out->p + out->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = b64chars[(v >> 6) & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len = (size_t)((uint8_t *)o - out->p);
	return 0;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int
b64_decode(const char *s, size_t n, fp_buf *out)
{
	if (n % 4)
		return -1;
	size_t save = out->len;
	if (fp_buf_reserve(out, n / 4 * 3) < 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]);
		int pad2 = s[i + 2] == '=', pad3 = s[i + 3] == '=';
		int c = pad2 ? 0 : b64val(s[i + 2]), d = pad3 ? 0 : b64val(s[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0 || (pad2 && !pad3) ||
		    ((pad2 || pad3) && i + 4 != n))
			goto bad;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out->p[out->len++] = (uint8_t)(v >> 16);
		if (!pad2)
			out->p[out->len++] = (uint8_t)(v >> 8);
		if (!pad3)
			out->p[out->len++] = (uint8_t)v;
	}
	return 0;
bad:
	out->len = save;
	return -1;
}

/* ---- JSON -> msgpack ---- */

typedef struct jparser {
	const char *s, *p, *end;
	fp_buf *out;
	unsigned depth, max_depth;
	json_error *e;
} jparser;

static int
jfail(jparser *j, const char *at, const char *fmt, const char *what)
{
	j->e->column = (size_t)(at - j->s) + 1;
	snprintf(j->e->msg, sizeof j->e->msg, fmt, what);
	return -1;
}

static inline void
skip_ws(jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static const char *
describe(jparser *j)
{
	if (j->p >= j->end)
		return "end of input";
	static _Thread_local char d[16];
	unsigned char c = (unsigned char)*j->p;
	if (c >= 0x20 && c < 0x7f)
		snprintf(d, sizeof d, "'%c'", c);
	else
		snprintf(d, sizeof d, "byte 0x%02x", c);
	return d;
}

/* Replace the 5-byte placeholder header at hdr (followed by the body up to
 * out->len) with the smallest header for count/len. kind: 0 map, 1 array,
 * 2 str. */
static void
patch_header(fp_buf *b, size_t hdr, int kind, uint64_t n)
{
	uint8_t h[5];
	size_t hl;
	if (kind == 2 && n <= 31) { h[0] = (uint8_t)(0xa0 | n); hl = 1; }
	else if (kind == 2 && n <= 0xff) { h[0] = 0xd9; h[1] = (uint8_t)n; hl = 2; }
	else if (kind != 2 && n <= 15) { h[0] = (uint8_t)((kind ? 0x90 : 0x80) | n); hl = 1; }
	else if (n <= 0xffff) {
		h[0] = kind == 2 ? 0xda : kind ? 0xdc : 0xde;
		h[1] = (uint8_t)(n >> 8); h[2] = (uint8_t)n; hl = 3;
	} else {
		h[0] = kind == 2 ? 0xdb : kind ? 0xdd : 0xdf;
		h[1] = (uint8_t)(n >> 24); h[2] = (uint8_t)(n >> 16);
		h[3] = (uint8_t)(n >> 8); h[4] = (uint8_t)n; hl = 5;
	}
	if (hl < 5) {
		memmove(b->p + hdr + hl, b->p + hdr + 5, b->len - hdr - 5);
		b->len -= 5 - hl;
	}
	memcpy(b->p + hdr, h, hl);
}

static int
hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9') *v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') *v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') *v |= (unsigned)(c - 'A' + 10);
		else return -1;
	}
	return 0;
}

/* Parse a string at j->p (on the opening quote); append its bytes (no
 * header) to dst. */
static int
parse_string_bytes(jparser *j, fp_buf *dst)
{
	const char *p = j->p + 1, *end = j->end;
	for (;;) {
		const char *run = p;
		while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\' &&
		       (unsigned char)*p < 0x80)
			p++;
		if (p > run && fp_buf_add(dst, run, (size_t)(p - run)) < 0)
			return jfail(j, p, "out of memory%s", "");
		if (p >= end)
			return jfail(j, p, "unterminated string%s", "");
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			j->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return jfail(j, p, "control character in string (escape it as \\u00XX)%s", "");
		if (c >= 0x80) {
			size_t k = utf8_seq_len((const uint8_t *)p, (size_t)(end - p));
			if (!k)
				return jfail(j, p, "invalid UTF-8 in string%s", "");
			if (fp_buf_add(dst, p, k) < 0)
				return jfail(j, p, "out of memory%s", "");
			p += k;
			continue;
		}
		/* backslash */
		if (p + 1 >= end)
			return jfail(j, p, "unterminated string%s", "");
		char e = p[1], o;
		switch (e) {
		case '"': o = '"'; break;
		case '\\': o = '\\'; break;
		case '/': o = '/'; break;
		case 'b': o = '\b'; break;
		case 'f': o = '\f'; break;
		case 'n': o = '\n'; break;
		case 'r': o = '\r'; break;
		case 't': o = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (end - p < 6 || hex4(p + 2, &cp) < 0)
				return jfail(j, p, "invalid \\u escape%s", "");
			p += 6;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return jfail(j, p, "unpaired UTF-16 surrogate in \\u escape%s", "");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xdc00 && cp <= 0xdfff)
				return jfail(j, p - 6, "unpaired UTF-16 surrogate in \\u escape%s", "");
			uint8_t u[4];
			size_t ul;
			if (cp < 0x80) { u[0] = (uint8_t)cp; ul = 1; }
			else if (cp < 0x800) { u[0] = (uint8_t)(0xc0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 63)); ul = 2; }
			else if (cp < 0x10000) {
				u[0] = (uint8_t)(0xe0 | cp >> 12); u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
				u[2] = (uint8_t)(0x80 | (cp & 63)); ul = 3;
			} else {
				u[0] = (uint8_t)(0xf0 | cp >> 18); u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
				u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); u[3] = (uint8_t)(0x80 | (cp & 63)); ul = 4;
			}
			if (fp_buf_add(dst, u, ul) < 0)
				return jfail(j, p, "out of memory%s", "");
			continue;
		}
		default:
			return jfail(j, p, "invalid escape in string%s", "");
		}
		if (fp_buf_addc(dst, (uint8_t)o) < 0)
			return jfail(j, p, "out of memory%s", "");
		p += 2;
	}
}

static int
parse_string(jparser *j)
{
	fp_buf *b = j->out;
	/* Fast path: plain ASCII, no escape, under 32 bytes (most keys and
	 * values): the header is known before the bytes, nothing moves. */
	const char *s0 = j->p + 1, *q = s0;
	const char *lim = j->end - s0 > 32 ? s0 + 32 : j->end;
	while (q < lim && (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80 && *q != '"' &&
	       *q != '\\')
		q++;
	if (q < lim && *q == '"') {
		size_t n = (size_t)(q - s0);
		if (fp_buf_reserve(b, n + 1) < 0)
			return jfail(j, j->p, "out of memory%s", "");
		b->p[b->len++] = (uint8_t)(0xa0 | n);
		memcpy(b->p + b->len, s0, n);
		b->len += n;
		j->p = q + 1;
		return 0;
	}
	size_t hdr = b->len;
	if (fp_buf_add(b, "\0\0\0\0\0", 5) < 0)
		return jfail(j, j->p, "out of memory%s", "");
	if (parse_string_bytes(j, b) < 0)
		return -1;
	patch_header(b, hdr, 2, b->len - hdr - 5);
	return 0;
}

static int
parse_number(jparser *j)
{
	const char *p = j->p, *start = p, *end = j->end;
	int neg = 0, isfloat = 0;
	if (p < end && *p == '-')
		neg = 1, p++;
	if (p >= end || !(*p >= '0' && *p <= '9'))
		return jfail(j, start, "invalid number%s", "");
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return jfail(j, start, "invalid number: leading zero%s", "");
	} else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		isfloat = 1;
		p++;
		if (p >= end || !(*p >= '0' && *p <= '9'))
			return jfail(j, p, "invalid number: digit expected after '.'%s", "");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		isfloat = 1;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !(*p >= '0' && *p <= '9'))
			return jfail(j, p, "invalid number: digit expected in exponent%s", "");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	j->p = p;
	if (!isfloat) {
		/* Integer fast path: accumulate with overflow checks. */
		const char *d = start + neg;
		uint64_t v = 0;
		int over = 0;
		for (; d < p; d++) {
			unsigned dig = (unsigned)(*d - '0');
			if (v > (UINT64_MAX - dig) / 10) { over = 1; break; }
			v = v * 10 + dig;
		}
		if (!over && !neg)
			return mpw_uint(j->out, v) < 0 ? jfail(j, start, "out of memory%s", "") : 0;
		if (!over && v <= (uint64_t)INT64_MAX + 1)
			return mpw_int(j->out, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) < 0
			       ? jfail(j, start, "out of memory%s", "") : 0;
		/* beyond 64 bits: a float, as jq does */
	}
	char tmp[512];
	size_t len = (size_t)(p - start);
	if (len >= sizeof tmp)
		return jfail(j, start, "number too long%s", "");
	memcpy(tmp, start, len);
	tmp[len] = 0;
	errno = 0;
	double dv = strtod(tmp, NULL);
	if (!isfinite(dv))
		return jfail(j, start, "number out of range%s", "");
	return mpw_double(j->out, dv) < 0 ? jfail(j, start, "out of memory%s", "") : 0;
}

static int parse_value(jparser *j);

/* At '{': if the object is one of the reserved single-key forms, emit it
 * and return 1; 0 when it is an ordinary object (nothing consumed); -1 on
 * error inside a reserved form. */
static int
parse_special(jparser *j)
{
	const char *save = j->p;
	j->p++;
	skip_ws(j);
	if (j->end - j->p < 6 || j->p[0] != '"' || j->p[1] != '@')
		goto plain;
	const char *kstart = j->p;
	int form;
	if (!strncmp(kstart, "\"@bin\"", 6)) form = 0;
	else if (!strncmp(kstart, "\"@b64\"", 6)) form = 1;
	else if (j->end - j->p >= 6 && !strncmp(kstart, "\"@ext\"", 6)) form = 2;
	else if (j->end - j->p >= 8 && !strncmp(kstart, "\"@float\"", 8)) form = 3;
	else goto plain;
	j->p += form == 3 ? 8 : 6;
	skip_ws(j);
	if (j->p >= j->end || *j->p != ':')
		goto plain;
	j->p++;
	skip_ws(j);
	/* Find the end of the object to confirm a single key; if it is not a
	 * single-key object of the right shape, treat it as plain. */
	fp_buf tmp = FP_BUF_INIT;
	int64_t ext_type = 0;
	const char *vstart = j->p;
	if (form == 2) {
		if (j->p >= j->end || *j->p != '[')
			goto plain_free;
		j->p++;
		skip_ws(j);
		const char *ts = j->p;
		int neg = 0;
		if (j->p < j->end && *j->p == '-') neg = 1, j->p++;
		if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9'))
			goto plain_free;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9' && ext_type < 1000)
			ext_type = ext_type * 10 + (*j->p++ - '0');
		if (neg) ext_type = -ext_type;
		(void)ts;
		skip_ws(j);
		if (j->p >= j->end || *j->p != ',')
			goto plain_free;
		j->p++;
		skip_ws(j);
	}
	if (j->p >= j->end || *j->p != '"')
		goto plain_free;
	vstart = j->p;
	if (parse_string_bytes(j, &tmp) < 0) {
		fp_buf_release(&tmp);
		return -1;
	}
	skip_ws(j);
	if (form == 2) {
		if (j->p >= j->end || *j->p != ']')
			goto plain_free;
		j->p++;
		skip_ws(j);
	}
	if (j->p >= j->end || *j->p != '}')
		goto plain_free;
	j->p++;
	/* It is a reserved form: emit it. */
	int r = 0;
	if (form == 0) {
		r = mpw_bin(j->out, tmp.p, tmp.len);
	} else if (form == 1 || form == 2) {
		fp_buf raw = FP_BUF_INIT;
		if (b64_decode((const char *)tmp.p, tmp.len, &raw) < 0) {
			fp_buf_release(&tmp);
			fp_buf_release(&raw);
			return jfail(j, vstart, "invalid base64 in %s form", form == 1 ? "\"@b64\"" : "\"@ext\"");
		}
		if (form == 1)
			r = mpw_bin(j->out, raw.p, raw.len);
		else {
			if (ext_type < -128 || ext_type > 127 || raw.len > 0xffffffffu) {
				fp_buf_release(&tmp);
				fp_buf_release(&raw);
				return jfail(j, vstart, "ext type out of range in %s form", "\"@ext\"");
			}
			size_t l = raw.len;
			uint8_t h[6];
			size_t hl;
			if (l == 1) { h[0] = 0xd4; hl = 1; }
			else if (l == 2) { h[0] = 0xd5; hl = 1; }
			else if (l == 4) { h[0] = 0xd6; hl = 1; }
			else if (l == 8) { h[0] = 0xd7; hl = 1; }
			else if (l == 16) { h[0] = 0xd8; hl = 1; }
			else if (l <= 0xff) { h[0] = 0xc7; h[1] = (uint8_t)l; hl = 2; }
			else if (l <= 0xffff) { h[0] = 0xc8; h[1] = (uint8_t)(l >> 8); h[2] = (uint8_t)l; hl = 3; }
			else { h[0] = 0xc9; h[1] = (uint8_t)(l >> 24); h[2] = (uint8_t)(l >> 16);
			       h[3] = (uint8_t)(l >> 8); h[4] = (uint8_t)l; hl = 5; }
			h[hl++] = (uint8_t)(int8_t)ext_type;
			r = fp_buf_add(j->out, h, hl) < 0 || fp_buf_add(j->out, raw.p, raw.len) < 0 ? -1 : 0;
		}
		fp_buf_release(&raw);
	} else {
		double d;
		if (tmp.len == 3 && !memcmp(tmp.p, "NaN", 3)) d = NAN;
		else if (tmp.len == 8 && !memcmp(tmp.p, "Infinity", 8)) d = INFINITY;
		else if (tmp.len == 9 && !memcmp(tmp.p, "-Infinity", 9)) d = -INFINITY;
		else {
			fp_buf_release(&tmp);
			return jfail(j, vstart, "%s must be \"NaN\", \"Infinity\" or \"-Infinity\"", "\"@float\"");
		}
		r = mpw_double(j->out, d);
	}
	fp_buf_release(&tmp);
	if (r < 0)
		return jfail(j, save, "out of memory%s", "");
	return 1;
plain_free:
	fp_buf_release(&tmp);
plain:
	j->p = save;
	return 0;
}

static int
parse_object(jparser *j)
{
	int sp = parse_special(j);
	if (sp != 0)
		return sp < 0 ? -1 : 0;
	if (++j->depth > j->max_depth)
		return jfail(j, j->p, "nesting deeper than the limit%s", "");
	fp_buf *b = j->out;
	size_t hdr = b->len;
	if (fp_buf_add(b, "\0\0\0\0\0", 5) < 0)
		return jfail(j, j->p, "out of memory%s", "");
	j->p++;
	uint64_t count = 0;
	skip_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
	} else {
		for (;;) {
			skip_ws(j);
			if (j->p >= j->end || *j->p != '"')
				return jfail(j, j->p, "expected a string key, found %s", describe(j));
			if (parse_string(j) < 0)
				return -1;
			skip_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return jfail(j, j->p, "expected ':' after an object key, found %s", describe(j));
			j->p++;
			if (parse_value(j) < 0)
				return -1;
			count++;
			skip_ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == '}') {
				j->p++;
				break;
			}
			return jfail(j, j->p, "expected ',' or '}' in an object, found %s", describe(j));
		}
	}
	if (count > 0xffffffffu)
		return jfail(j, j->p, "object too large%s", "");
	patch_header(b, hdr, 0, count);
	j->depth--;
	return 0;
}

static int
parse_array(jparser *j)
{
	if (++j->depth > j->max_depth)
		return jfail(j, j->p, "nesting deeper than the limit%s", "");
	fp_buf *b = j->out;
	size_t hdr = b->len;
	if (fp_buf_add(b, "\0\0\0\0\0", 5) < 0)
		return jfail(j, j->p, "out of memory%s", "");
	j->p++;
	uint64_t count = 0;
	skip_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
	} else {
		for (;;) {
			if (parse_value(j) < 0)
				return -1;
			count++;
			skip_ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == ']') {
				j->p++;
				break;
			}
			return jfail(j, j->p, "expected ',' or ']' in an array, found %s", describe(j));
		}
	}
	if (count > 0xffffffffu)
		return jfail(j, j->p, "array too large%s", "");
	patch_header(b, hdr, 1, count);
	j->depth--;
	return 0;
}

static int
parse_lit(jparser *j, const char *lit, size_t n, uint8_t byte)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return jfail(j, j->p, "expected a JSON value, found %s", describe(j));
	j->p += n;
	return fp_buf_addc(j->out, byte) < 0 ? jfail(j, j->p, "out of memory%s", "") : 0;
}

static int
parse_value(jparser *j)
{
	skip_ws(j);
	if (j->p >= j->end)
		return jfail(j, j->p, "expected a JSON value, found %s", "end of input");
	switch (*j->p) {
	case '{': return parse_object(j);
	case '[': return parse_array(j);
	case '"': return parse_string(j);
	case 't': return parse_lit(j, "true", 4, 0xc3);
	case 'f': return parse_lit(j, "false", 5, 0xc2);
	case 'n': return parse_lit(j, "null", 4, 0xc0);
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return parse_number(j);
		return jfail(j, j->p, "expected a JSON value, found %s", describe(j));
	}
}

int
json_to_mp(const char *s, size_t n, fp_buf *out, unsigned max_depth, json_error *e)
{
	jparser j = { s, s, s + n, out, 0, max_depth ? max_depth : MP_DEFAULT_DEPTH, e };
	size_t save = out->len;
	if (parse_value(&j) < 0)
		goto fail;
	skip_ws(&j);
	if (j.p < j.end) {
		jfail(&j, j.p, "unexpected %s after the JSON value", describe(&j));
		goto fail;
	}
	return 0;
fail:
	out->len = save;
	return -1;
}

/* ---- msgpack -> JSON ---- */

static int
put_json_string(fp_buf *o, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (fp_buf_reserve(o, n + 2) < 0 || fp_buf_addc(o, '"') < 0)
		return -1;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
			i++;
		if (fp_buf_add(o, s + run, i - run) < 0)
			return -1;
		if (i >= n)
			break;
		uint8_t c = s[i++];
		char esc[7] = {'\\', 0};
		size_t el = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		if (fp_buf_add(o, esc, el) < 0)
			return -1;
	}
	return fp_buf_addc(o, '"');
}

/* m / 10^k in plain decimal notation, '-' first when neg: k decimals, ".0"
 * when there are none (m < 10^18, k <= 22). */
static int
put_scaled(fp_buf *o, int neg, uint64_t m, int k)
{
	char dig[FP_DEC_MAX], out[64];
	int n = (int)fp_fmt_dec(dig, m, 0), j = 0;
	if (neg)
		out[j++] = '-';
	if (k == 0) {
		memcpy(out + j, dig, (size_t)n);
		j += n;
		memcpy(out + j, ".0", 2);
		j += 2;
	} else if (n > k) {
		memcpy(out + j, dig, (size_t)(n - k));
		j += n - k;
		out[j++] = '.';
		memcpy(out + j, dig + n - k, (size_t)k);
		j += k;
	} else {
		out[j++] = '0';
		out[j++] = '.';
		for (int z = 0; z < k - n; z++)
			out[j++] = '0';
		memcpy(out + j, dig, (size_t)n);
		j += n;
	}
	return fp_buf_add(o, out, (size_t)j);
}

/* A double as the shortest plain decimal that reads back as the same value,
 * for the everyday case: at most 17 decimals, |d| in [1e-5, 1e17), the
 * digits fitting 53 bits.  m / 10^k with both exact is correctly rounded,
 * just as strtod() of the text is, so the check is exact.  0, or -1 when the
 * caller must take the general path (put_double). */
static int
put_double_fast(fp_buf *a, double d)
{
	static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	                             1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
	double ad = fabs(d);
	if (!(ad >= 1e-5 && ad < 1e17) && d != 0)
		return -1;
	for (int k = 0; k < 18; k++) {
		double t = d * p10[k];
		if (fabs(t) >= 9007199254740992.0)
			return -1;
		long long m = llround(t);
		if ((double)m / p10[k] != d)
			continue;
		unsigned long long um = m < 0 ? 0ull - (unsigned long long)m : (unsigned long long)m;
		return put_scaled(a, m < 0 || (m == 0 && signbit(d)), um, k);
	}
	return -1;
}

typedef unsigned __int128 u128;

static u128
pow10_u128(int k)
{
	u128 p = 1;
	while (k-- > 0)
		p *= 10;
	return p;
}

/* N = |d| * 10^k correctly rounded (ties to even), for d = m * 2^-s
 * (0 <= s <= 70, 0 <= k <= 22: every product fits 128 bits). */
static u128
scaled_round(uint64_t m, int s, int k)
{
	u128 num = (u128)m * pow10_u128(k);
	if (!s)
		return num;
	u128 n = num >> s, rem = num & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
	return rem > half || (rem == half && (n & 1)) ? n + 1 : n;
}

/* Does N / 10^k read back as m * 2^-s (strtod's rounding: to nearest, ties
 * to even)?  Compared exactly, everything scaled by 10^k * 2^(s+2). */
static int
reads_back(uint64_t m, int s, u128 n, int k)
{
	u128 p = pow10_u128(k), a = n << (s + 2), b = (u128)m * p * 4;
	u128 hi = 2 * p, lo = m == (uint64_t)1 << 52 ? p : 2 * p; /* the gap below a power of 2 is half */
	if (a > b)
		return a - b < hi || (a - b == hi && !(m & 1));
	return b - a < lo || (b - a == lo && !(m & 1));
}

/* A double that needs 16 or 17 significant digits, 1e-5 <= |d| < 2^53, as
 * the general path below prints it (the least precision that reads back,
 * in plain decimal notation), from exact integer arithmetic instead of
 * printing and parsing it up to six times.  0, or -1 (nothing written)
 * when d is not such a double: the general path then takes it. */
static int
put_double_exact(fp_buf *o, double d)
{
	double ad = fabs(d);
	if (!(ad >= 1e-5 && ad < 9007199254740992.0))
		return -1;
	int e2;
	double fr = frexp(ad, &e2);                  /* ad = fr * 2^e2, fr in [0.5, 1) */
	uint64_t m = (uint64_t)ldexp(fr, 53);        /* exact: 53 bits */
	int s = 53 - e2;                             /* ad = m * 2^-s */
	if (s < 0 || s > 70)
		return -1;
	/* e10 = floor(log10(ad)), exactly: N17 must have 17 digits */
	int e10 = (int)floor(log10(ad));
	const u128 p16 = pow10_u128(16), p17 = pow10_u128(17);
	u128 n = 0;
	for (int tries = 0; tries < 3; tries++) {
		if (16 - e10 < 0 || 16 - e10 > 22)
			return -1;
		n = scaled_round(m, s, 16 - e10);
		if (n >= p17)
			e10++;
		else if (n < p16)
			e10--;
		else
			break;
	}
	if (n < p16 || n >= p17 || e10 < -5)
		return -1;
	/* fewer digits: 15 (or less) is the general path's; 16 if it reads back
	 * without carrying into a 17th digit */
	u128 n15 = scaled_round(m, s, 14 - e10 < 0 ? 0 : 14 - e10);
	if (14 - e10 >= 0 && reads_back(m, s, n15, 14 - e10))
		return -1;
	int k = 16 - e10;
	u128 n16 = scaled_round(m, s, 15 - e10);
	if (n16 < p16 && reads_back(m, s, n16, 15 - e10))
		n = n16, k = 15 - e10;
	else if (!reads_back(m, s, n, k))
		return -1;                           /* cannot happen: 17 digits read back */
	return put_scaled(o, signbit(d) != 0, (uint64_t)n, k); /* n < 10^17 */
}

static int
put_double(fp_buf *o, double d, int is32)
{
	char t[40];
	if (!is32 && isfinite(d) && (put_double_fast(o, d) == 0 || put_double_exact(o, d) == 0))
		return 0;
	if (isnan(d))
		return fp_buf_adds(o, "{\"@float\":\"NaN\"}");
	if (isinf(d))
		return fp_buf_adds(o, d > 0 ? "{\"@float\":\"Infinity\"}" : "{\"@float\":\"-Infinity\"}");
	/* The shortest text that reads back as the same value: if p digits
	 * read back exactly, so do p+1, so search for the least p. */
	int lo = 1, hi = is32 ? 9 : 17;
	if (!is32) { /* most doubles put_double_fast() leaves need 16 or 17 digits */
		snprintf(t, sizeof t, "%.15g", d);
		if (strtod(t, NULL) == d)
			hi = 15;
		else
			lo = 16;
	}
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		snprintf(t, sizeof t, "%.*g", mid, d);
		if (is32 ? (float)strtod(t, NULL) == (float)d : strtod(t, NULL) == d)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* Plain decimal notation for everyday magnitudes (JavaScript-like):
	 * 18000.0, not 1.8e+04. */
	snprintf(t, sizeof t, "%.*e", lo - 1, d);
	int e10 = atoi(strchr(t, 'e') + 1);
	if (e10 >= -5 && fabs(d) < 9007199254740992.0) /* 2^53: integers exact */
		snprintf(t, sizeof t, "%.*f", lo - 1 - e10 > 0 ? lo - 1 - e10 : 0, d);
	else
		snprintf(t, sizeof t, "%.*g", lo, d);
	if (!strpbrk(t, ".eEn"))
		strcat(t, ".0");
	return fp_buf_adds(o, t);
}

static int
put_b64_form(fp_buf *o, const char *form, const uint8_t *p, size_t n)
{
	if (fp_buf_adds(o, form) < 0 || fp_buf_addc(o, '"') < 0 || b64_encode(p, n, o) < 0)
		return -1;
	return fp_buf_adds(o, "\"}");
}


/* Write one object; returns bytes consumed, 0 on error. */
static size_t
emit(const uint8_t *p, size_t n, fp_buf *o, unsigned depth)
{
	if (n < 1 || depth > MP_MAX_DEPTH)
		return 0;
	uint8_t c = p[0];
	uint32_t count;
	size_t hdr;
	const char *s;
	const uint8_t *b;
	size_t len;
	if (mp_read_map(p, n, &count, &hdr) == 0 || mp_read_array(p, n, &count, &hdr) == 0) {
		int map = (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
		size_t off = hdr;
		if (fp_buf_addc(o, map ? '{' : '[') < 0)
			return 0;
		for (uint32_t i = 0; i < count; i++) {
			if (i && fp_buf_addc(o, ',') < 0)
				return 0;
			size_t k;
			if (map) {
				if (mp_read_str(p + off, n - off, &s, &len) < 0)
					return 0;
				if (put_json_string(o, (const uint8_t *)s, len) < 0 || fp_buf_addc(o, ':') < 0)
					return 0;
				off += mp_skip(p + off, n - off);
			}
			if (!(k = emit(p + off, n - off, o, depth + 1)))
				return 0;
			off += k;
		}
		if (fp_buf_addc(o, map ? '}' : ']') < 0)
			return 0;
		return off;
	}
	size_t whole = mp_skip(p, n);
	if (!whole)
		return 0;
	int r;
	if (mp_read_str(p, n, &s, &len) == 0) {
		if (utf8_valid((const uint8_t *)s, len))
			r = put_json_string(o, (const uint8_t *)s, len);
		else
			r = put_b64_form(o, "{\"@b64\":", (const uint8_t *)s, len);
	} else if (mp_read_bin(p, n, &b, &len) == 0) {
		if (utf8_valid(b, len)) {
			r = fp_buf_adds(o, "{\"@bin\":") < 0 || put_json_string(o, b, len) < 0 ||
			    fp_buf_addc(o, '}') < 0 ? -1 : 0;
		} else
			r = put_b64_form(o, "{\"@b64\":", b, len);
	} else if (c == 0xc0) {
		r = fp_buf_adds(o, "null");
	} else if (c == 0xc2 || c == 0xc3) {
		r = fp_buf_adds(o, c == 0xc3 ? "true" : "false");
	} else if (c == 0xca || c == 0xcb) {
		double d;
		mp_read_number(p, n, &d);
		r = put_double(o, d, c == 0xca);
	} else if (c == 0xcf) {
		uint64_t u;
		char t[FP_DEC_MAX];
		mp_read_uint(p, n, &u);
		r = fp_buf_add(o, t, fp_fmt_dec(t, u, 0));
	} else if ((c >= 0xd4 && c <= 0xd8) || (c >= 0xc7 && c <= 0xc9)) {
		size_t h = c >= 0xd4 ? 1 : c == 0xc7 ? 2 : c == 0xc8 ? 3 : 5;
		int8_t type = (int8_t)p[h];
		char t[32];
		snprintf(t, sizeof t, "{\"@ext\":[%d,\"", type);
		r = fp_buf_adds(o, t) < 0 || b64_encode(p + h + 1, whole - h - 1, o) < 0 ||
		    fp_buf_adds(o, "\"]}") < 0 ? -1 : 0;
	} else {
		int64_t i;
		char t[FP_DEC_MAX];
		if (mp_read_int(p, n, &i) < 0)
			return 0;
		r = fp_buf_add(o, t, fp_fmt_i64(t, i));
	}
	return r < 0 ? 0 : whole;
}

int
mp_to_json(const uint8_t *p, size_t n, fp_buf *out)
{
	size_t save = out->len;
	if (!emit(p, n, out, 0)) {
		out->len = save;
		return -1;
	}
	return 0;
}
