/* dict.c - the data dictionary parser and type coercion; see dict.h and
 * fp-dictionary(5). */
#include "dict.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expr.h"
#include "json.h"
#include "mpraw.h"
#include "num.h"

/* ---- coercion ---- */

static int
why_set(char *why, size_t wl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
	return -1;
}

/* Copy s[0..n) into a NUL-terminated buffer for the num.h parsers; -1 when
 * too long to be a number. */
static int
cstr(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char *s, size_t n, size_t at, size_t k, int *v)
{
	if (at + k > n)
		return -1;
	int x = 0;
	for (size_t i = 0; i < k; i++) {
		char c = s[at + i];
		if (c < '0' || c > '9')
			return -1;
		x = x * 10 + (c - '0');
	}
	*v = x;
	return 0;
}

int
dict_parse_iso8601(const char *s, size_t n, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0;
	int64_t frac_ms = 0;
	static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (digits(s, n, 0, 4, &y) < 0 || n < 10 || s[4] != '-' || digits(s, n, 5, 2, &mo) < 0 ||
	    s[7] != '-' || digits(s, n, 8, 2, &d) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
		return -1;
	size_t i = 10;
	int64_t off_min = 0;
	if (i < n) {
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
			return -1;
		i++;
		if (digits(s, n, i, 2, &h) < 0 || i + 2 >= n || s[i + 2] != ':' ||
		    digits(s, n, i + 3, 2, &mi) < 0)
			return -1;
		i += 5;
		if (i < n && s[i] == ':') {
			if (digits(s, n, i + 1, 2, &sec) < 0)
				return -1;
			i += 3;
			if (i < n && (s[i] == '.' || s[i] == ',')) {
				i++;
				size_t k = 0;
				int64_t scale = 100;
				while (i < n && s[i] >= '0' && s[i] <= '9') {
					frac_ms += (s[i] - '0') * scale;
					scale /= 10;
					i++, k++;
				}
				if (k == 0)
					return -1;
			}
		}
		if (h > 23 || mi > 59 || sec > 60)
			return -1;
		if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
			i++;
		} else if (i < n && (s[i] == '+' || s[i] == '-')) {
			int oh, om = 0, sign = s[i] == '-' ? -1 : 1;
			if (digits(s, n, i + 1, 2, &oh) < 0)
				return -1;
			i += 3;
			if (i < n && s[i] == ':')
				i++;
			if (i < n) {
				if (digits(s, n, i, 2, &om) < 0)
					return -1;
				i += 2;
			}
			if (oh > 23 || om > 59)
				return -1;
			off_min = sign * (oh * 60 + om);
		}
		if (i != n)
			return -1;
	}
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
	               mi * 60 + sec - off_min * 60;
	*ms = secs * 1000 + frac_ms;
	return 0;
}

/* A number of `unit` ms as ms; -1 when out of range. */
static int
time_from_double(double v, int64_t unit, int64_t *ms)
{
	double x = v * (double)unit;
	if (!isfinite(x) || x >= 9.2e18 || x <= -9.2e18)
		return -1;
	*ms = (int64_t)floor(x);
	return 0;
}

static int
time_from_int(int64_t v, int64_t unit, int64_t *ms)
{
	if (unit != 1 && (v > INT64_MAX / unit || v < INT64_MIN / unit))
		return -1;
	*ms = v * unit;
	return 0;
}

void
dict_show(char *dst, size_t cap, const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < cap; i++)
		dst[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > 0 && k + 4 >= cap) {
		memcpy(dst + k, "...", 3);
		k += 3;
	}
	dst[k] = 0;
}

int
dict_coerce_text(enum dict_type t, int64_t unit, const char *s, size_t n, fp_buf *out,
                 char *why, size_t wl)
{
	char tmp[64], shown[40];
	int64_t i;
	double d;
	switch (t) {
	case DT_STRING:
	case DT_ANY:
		if (!utf8_valid((const uint8_t *)s, n))
			return why_set(why, wl, "is not valid UTF-8");
		return mpw_str(out, s, n) < 0 ? why_set(why, wl, "out of memory") : 0;
	case DT_INT:
		if (cstr(tmp, sizeof tmp, s, n) == 0 &&
		    fp_parse_i64(tmp, INT64_MIN, INT64_MAX, &i, NULL, 0) == 0)
			return mpw_int(out, i) < 0 ? why_set(why, wl, "out of memory") : 0;
		dict_show(shown, sizeof shown, s, n);
		return why_set(why, wl, "\"%s\" is not an int", shown);
	case DT_FLOAT:
		if (cstr(tmp, sizeof tmp, s, n) == 0 && fp_parse_double(tmp, &d, NULL, 0) == 0)
			return mpw_double(out, d) < 0 ? why_set(why, wl, "out of memory") : 0;
		dict_show(shown, sizeof shown, s, n);
		return why_set(why, wl, "\"%s\" is not a float", shown);
	case DT_BOOL:
		if ((n == 4 && !memcmp(s, "true", 4)) || (n == 1 && s[0] == '1'))
			return mpw_bool(out, 1);
		if ((n == 5 && !memcmp(s, "false", 5)) || (n == 1 && s[0] == '0'))
			return mpw_bool(out, 0);
		dict_show(shown, sizeof shown, s, n);
		return why_set(why, wl, "\"%s\" is not a bool (true, false, 1 or 0)", shown);
	case DT_TIME: {
		int64_t ms;
		if (cstr(tmp, sizeof tmp, s, n) == 0) {
			if (fp_parse_i64(tmp, INT64_MIN, INT64_MAX, &i, NULL, 0) == 0) {
				if (time_from_int(i, unit, &ms) == 0)
					return mpw_int(out, ms);
			} else if (fp_parse_double(tmp, &d, NULL, 0) == 0) {
				if (time_from_double(d, unit, &ms) == 0)
					return mpw_int(out, ms);
			} else if (dict_parse_iso8601(s, n, &ms) == 0)
				return mpw_int(out, ms);
		}
		dict_show(shown, sizeof shown, s, n);
		return why_set(why, wl, "\"%s\" is not a time (a number of %s or ISO-8601)", shown,
		               unit == 1000 ? "seconds" : "milliseconds");
	}
	}
	return why_set(why, wl, "unknown type");
}

static const char *
mp_kind(uint8_t c)
{
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
		return "an int";
	if (c == 0xca || c == 0xcb)
		return "a float";
	if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb))
		return "a string";
	if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf)
		return "an object";
	if ((c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd)
		return "an array";
	if (c == 0xc2 || c == 0xc3)
		return "a bool";
	if (c == 0xc0)
		return "null";
	return "binary";
}

static int
is_int_byte(uint8_t c)
{
	return c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3);
}

int
dict_coerce_mp(enum dict_type t, int64_t unit, const uint8_t *v, size_t vlen, fp_buf *out,
               char *why, size_t wl)
{
	uint8_t c = v[0];
	const char *s;
	size_t sl;
	int64_t i;
	double d;
	/* the common cases: the value already has the type */
	if ((t == DT_STRING && ((c >= 0xa0 && c <= 0xbf) || c == 0xd9)) ||
	    (t == DT_INT && (c <= 0x7f || (c >= 0xcc && c <= 0xce) || (c >= 0xd0 && c <= 0xd3) || c >= 0xe0)) ||
	    (t == DT_FLOAT && c == 0xcb) || (t == DT_BOOL && (c == 0xc2 || c == 0xc3)))
		return fp_buf_add(out, v, vlen) < 0 ? why_set(why, wl, "out of memory") : 0;
	int isstr = mp_read_str(v, vlen, &s, &sl) == 0;
	switch (t) {
	case DT_ANY:
		return fp_buf_add(out, v, vlen) < 0 ? why_set(why, wl, "out of memory") : 0;
	case DT_STRING:
		if (isstr)
			return fp_buf_add(out, v, vlen) < 0 ? why_set(why, wl, "out of memory") : 0;
		if (is_int_byte(c) || c == 0xca || c == 0xcb) {
			/* ids written as numbers: their decimal text */
			fp_buf tmp = FP_BUF_INIT;
			int r = mp_to_json(v, vlen, &tmp);
			if (r == 0)
				r = mpw_str(out, tmp.p, tmp.len);
			fp_buf_release(&tmp);
			return r < 0 ? why_set(why, wl, "out of memory") : 0;
		}
		break;
	case DT_INT:
		if (is_int_byte(c)) {
			if (mp_read_int(v, vlen, &i) < 0)
				return why_set(why, wl, "is an int beyond int64");
			return fp_buf_add(out, v, vlen) < 0 ? why_set(why, wl, "out of memory") : 0;
		}
		if ((c == 0xca || c == 0xcb) && mp_read_number(v, vlen, &d) == 0) {
			if (d == floor(d) && d >= -9.2e18 && d <= 9.2e18)
				return mpw_int(out, (int64_t)d);
			return why_set(why, wl, "%.17g is not an int", d);
		}
		if (isstr)
			return dict_coerce_text(t, unit, s, sl, out, why, wl);
		break;
	case DT_FLOAT:
		if (c == 0xcb)
			return fp_buf_add(out, v, vlen) < 0 ? why_set(why, wl, "out of memory") : 0;
		if (mp_read_number(v, vlen, &d) == 0)
			return mpw_double(out, d);
		if (isstr)
			return dict_coerce_text(t, unit, s, sl, out, why, wl);
		break;
	case DT_BOOL:
		if (c == 0xc2 || c == 0xc3)
			return fp_buf_addc(out, c);
		if (is_int_byte(c) && mp_read_int(v, vlen, &i) == 0 && (i == 0 || i == 1))
			return mpw_bool(out, (int)i);
		if (isstr)
			return dict_coerce_text(t, unit, s, sl, out, why, wl);
		break;
	case DT_TIME: {
		int64_t ms;
		if (is_int_byte(c) && mp_read_int(v, vlen, &i) == 0) {
			if (time_from_int(i, unit, &ms) < 0)
				return why_set(why, wl, "time out of range");
			return mpw_int(out, ms);
		}
		if ((c == 0xca || c == 0xcb) && mp_read_number(v, vlen, &d) == 0) {
			if (time_from_double(d, unit, &ms) < 0)
				return why_set(why, wl, "time out of range");
			return mpw_int(out, ms);
		}
		if (isstr)
			return dict_coerce_text(t, unit, s, sl, out, why, wl);
		break;
	}
	}
	return why_set(why, wl, "is %s, not %s", mp_kind(c), dict_type_name(t, unit));
}

const char *
dict_type_name(enum dict_type t, int64_t unit)
{
	switch (t) {
	case DT_STRING: return "string";
	case DT_INT: return "int";
	case DT_FLOAT: return "float";
	case DT_BOOL: return "bool";
	case DT_TIME: return unit == 1000 ? "time(s)" : "time";
	case DT_ANY: return "any";
	}
	return "?";
}

const char *
dict_format_name(enum dict_format f)
{
	switch (f) {
	case DICT_JSON: return "json";
	case DICT_CSV: return "csv";
	case DICT_TSV: return "tsv";
	case DICT_KV: return "kv";
	}
	return "?";
}

/* ---- the parser ---- */

typedef struct dparser {
	const char *fname;
	const char *line, *p, *end;  /* current line [line, end) and cursor */
	unsigned lineno;
	char *err;
	size_t errlen;
	dict *d;
	dict_source *src;            /* the open source, or NULL */
	dict_shape *shape;           /* where fields go: &src->common or a `when` */
} dparser;

static int
perr_at(dparser *ps, const char *at, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%u:%zu: %s", ps->fname, ps->lineno,
	         (size_t)(at - ps->line) + 1, msg);
	return -1;
}

static void
skip_blank(dparser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
		ps->p++;
}

/* At the end of the meaningful text of the line (only a comment may follow). */
static int
at_eol(dparser *ps)
{
	skip_blank(ps);
	return ps->p >= ps->end || *ps->p == '#';
}

static const char *
found(dparser *ps)
{
	static _Thread_local char d[48];
	if (at_eol(ps))
		return "the end of the line";
	const char *q = ps->p;
	while (q < ps->end && q - ps->p < 30 && *q != ' ' && *q != '\t')
		q++;
	snprintf(d, sizeof d, "'%.*s'", (int)(q - ps->p), ps->p);
	return d;
}

/* A bare word: a run of characters other than blanks, '#' and stop. */
static int
word(dparser *ps, const char **w, size_t *n, const char *stop)
{
	skip_blank(ps);
	const char *s = ps->p;
	while (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t' && *ps->p != '\r' &&
	       *ps->p != '#' && !(stop && strchr(stop, *ps->p)))
		ps->p++;
	*w = s;
	*n = (size_t)(ps->p - s);
	return *n ? 0 : -1;
}

static int
is_word(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && memcmp(w, kw, n) == 0;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	if (r) {
		memcpy(r, s, n);
		r[n] = 0;
	}
	return r;
}

/* A "string" with JSON escapes at the cursor, decoded into out (NUL
 * terminated, length in *n). */
static int
quoted(dparser *ps, fp_buf *out)
{
	const char *start = ps->p;
	size_t e = 1;
	while (start + e < ps->end && start[e] != '"') {
		if (start[e] == '\\')
			e++;
		e++;
	}
	if (start + e >= ps->end)
		return perr_at(ps, start, "unterminated string");
	json_error je;
	fp_buf mp = FP_BUF_INIT;
	if (json_to_mp(start, e + 1, &mp, 1, &je) < 0) {
		fp_buf_release(&mp);
		return perr_at(ps, start + je.column - 1, "%s", je.msg);
	}
	const char *s;
	size_t sl;
	mp_read_str(mp.p, mp.len, &s, &sl);
	out->len = 0;
	int r = fp_buf_add(out, s, sl) < 0 || fp_buf_addc(out, 0) < 0 ? -1 : 0;
	out->len = sl;
	fp_buf_release(&mp);
	ps->p = start + e + 1;
	return r < 0 ? perr_at(ps, start, "out of memory") : 0;
}

/* A literal: "string" or a bare word (number, true, false), as text. */
static int
literal(dparser *ps, fp_buf *out, int *was_quoted)
{
	skip_blank(ps);
	*was_quoted = 0;
	if (ps->p < ps->end && *ps->p == '"') {
		*was_quoted = 1;
		return quoted(ps, out);
	}
	const char *w;
	size_t n;
	if (word(ps, &w, &n, NULL) < 0)
		return perr_at(ps, ps->p, "expected a value, found %s", found(ps));
	out->len = 0;
	if (fp_buf_add(out, w, n) < 0 || fp_buf_addc(out, 0) < 0)
		return perr_at(ps, w, "out of memory");
	out->len = n;
	return 0;
}

static int
name_char(char c, int first)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
	       (!first && ((c >= '0' && c <= '9') || c == '-'));
}

static void
path_release(dict_path *p)
{
	for (size_t i = 0; i < p->nsteps; i++)
		free(p->steps[i].name);
	free(p->steps);
	free(p->text);
	memset(p, 0, sizeof *p);
}

static int
path_add(dparser *ps, dict_path *p, const char *name, size_t len, uint32_t index)
{
	dict_step *s = realloc(p->steps, (p->nsteps + 1) * sizeof *s);
	if (!s)
		return perr_at(ps, ps->p, "out of memory");
	p->steps = s;
	s[p->nsteps].name = name ? xstrndup(name, len) : NULL;
	s[p->nsteps].len = len;
	s[p->nsteps].index = index;
	p->nsteps++;
	return 0;
}

/* A field path at the cursor: name(.name|[index])*, names bare or "quoted". */
static int
path_parse(dparser *ps, dict_path *p)
{
	memset(p, 0, sizeof *p);
	p->column = -1;
	skip_blank(ps);
	const char *start = ps->p;
	fp_buf q = FP_BUF_INIT;
	int expect_name = 1;
	for (;;) {
		if (expect_name) {
			if (ps->p < ps->end && *ps->p == '"') {
				if (quoted(ps, &q) < 0)
					goto fail;
				if (path_add(ps, p, (char *)q.p, q.len, 0) < 0)
					goto fail;
			} else {
				const char *n0 = ps->p;
				while (ps->p < ps->end && (name_char(*ps->p, ps->p == n0) || *ps->p == '@'))
					ps->p++;
				if (ps->p == n0) {
					perr_at(ps, ps->p, "expected a field name, found %s", found(ps));
					goto fail;
				}
				if (path_add(ps, p, n0, (size_t)(ps->p - n0), 0) < 0)
					goto fail;
			}
			expect_name = 0;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '.') {
			ps->p++;
			expect_name = 1;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '[') {
			const char *b = ++ps->p;
			uint64_t v = 0;
			while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9' && v < 100000000)
				v = v * 10 + (uint64_t)(*ps->p++ - '0');
			if (ps->p == b || ps->p >= ps->end || *ps->p != ']') {
				perr_at(ps, ps->p, "expected an array index and ']', found %s", found(ps));
				goto fail;
			}
			ps->p++;
			if (path_add(ps, p, NULL, 0, (uint32_t)v) < 0)
				goto fail;
			continue;
		}
		break;
	}
	fp_buf_release(&q);
	if (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t' && *ps->p != '#' && *ps->p != '\r')
		return perr_at(ps, ps->p, "unexpected '%c' in a field path", *ps->p);
	p->text = xstrndup(start, (size_t)(ps->p - start));
	return p->text ? 0 : perr_at(ps, start, "out of memory");
fail:
	fp_buf_release(&q);
	path_release(p);
	return -1;
}

/* A source of a value, by format: JSON path, CSV/TSV column name or number,
 * or a key=value key. */
static int
from_parse(dparser *ps, dict_path *p)
{
	skip_blank(ps);
	const char *at = ps->p;
	dict_source *s = ps->src;
	if (s->format == DICT_CSV || s->format == DICT_TSV) {
		const char *w;
		size_t n;
		int64_t col;
		char tmp[32];
		memset(p, 0, sizeof *p);
		p->column = -1;
		if (word(ps, &w, &n, NULL) < 0)
			return perr_at(ps, at, "expected a column name or number, found %s", found(ps));
		if (cstr(tmp, sizeof tmp, w, n) == 0 && w[0] >= '0' && w[0] <= '9') {
			if (fp_parse_i64(tmp, 1, 100000, &col, NULL, 0) < 0)
				return perr_at(ps, at, "column number out of range (1 to 100000)");
			p->column = (int)col - 1;
		} else if (s->ncolumns) {
			for (size_t i = 0; i < s->ncolumns; i++)
				if (is_word(w, n, s->columns[i]))
					p->column = (int)i;
			if (p->column < 0)
				return perr_at(ps, at, "no column '%.*s' in the column list", (int)n, w);
		} else if (!s->header)
			return perr_at(ps, at, "'columns' must come before fields that name columns");
		p->text = xstrndup(w, n);
		if (!p->text || path_add(ps, p, w, n, 0) < 0)
			return perr_at(ps, at, "out of memory");
		return 0;
	}
	if (path_parse(ps, p) < 0)
		return -1;
	if (s->format == DICT_KV && p->nsteps != 1) {
		path_release(p);
		return perr_at(ps, at, "a key=value source has no nested fields; name one key");
	}
	return 0;
}

static int
parse_type(dparser *ps, enum dict_type *t, int64_t *unit)
{
	const char *w;
	size_t n;
	const char *at = (skip_blank(ps), ps->p);
	*unit = 1;
	if (word(ps, &w, &n, NULL) < 0)
		goto bad;
	if (is_word(w, n, "string")) *t = DT_STRING;
	else if (is_word(w, n, "int")) *t = DT_INT;
	else if (is_word(w, n, "float")) *t = DT_FLOAT;
	else if (is_word(w, n, "bool")) *t = DT_BOOL;
	else if (is_word(w, n, "any")) *t = DT_ANY;
	else if (is_word(w, n, "time") || is_word(w, n, "time(ms)")) *t = DT_TIME;
	else if (is_word(w, n, "time(s)")) *t = DT_TIME, *unit = 1000;
	else goto bad;
	return 0;
bad:
	ps->p = at;
	return perr_at(ps, at, "expected a type (string, int, float, bool, time, time(ms), "
	               "time(s) or any), found %s", found(ps));
}

/* A default or constant: a literal coerced to the field's type into f->value. */
static int
field_literal(dparser *ps, dict_field *f, fp_buf *lit, const char *what)
{
	int q;
	const char *vat = (skip_blank(ps), ps->p);
	char why[160];
	if (literal(ps, lit, &q) < 0)
		return -1;
	if (dict_coerce_text(f->type, f->unit, (char *)lit->p, lit->len, &f->value, why, sizeof why) < 0)
		return perr_at(ps, vat, "%s %s", what, why);
	return 0;
}

static void
field_release(dict_field *f)
{
	free(f->name);
	fp_buf_release(&f->key);
	fp_buf_release(&f->value);
	path_release(&f->from);
}

static dict_field *
field_lookup(dict_shape *sh, const char *name, size_t n)
{
	for (size_t i = 0; i < sh->nfields; i++)
		if (sh->fields[i].nlen == n && !memcmp(sh->fields[i].name, name, n))
			return &sh->fields[i];
	return NULL;
}

/* field NAME TYPE [from PATH] [required] [default LITERAL]  |  field NAME TYPE = LITERAL */
static int
parse_field(dparser *ps)
{
	dict_field f;
	memset(&f, 0, sizeof f);
	f.line = ps->lineno;
	f.from.column = -1;
	skip_blank(ps);
	const char *at = ps->p, *w;
	size_t n;
	while (ps->p < ps->end && name_char(*ps->p, ps->p == at))
		ps->p++;
	n = (size_t)(ps->p - at);
	if (n == 0 || (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t'))
		return perr_at(ps, at, "expected a field name (letters, digits, '_' and '-', "
		               "not beginning with a digit or '@'), found %s", found(ps));
	if (field_lookup(&ps->src->common, at, n) || field_lookup(ps->shape, at, n))
		return perr_at(ps, at, "field '%.*s' is already defined in this source", (int)n, at);
	f.name = xstrndup(at, n);
	f.nlen = n;
	if (!f.name || mpw_str(&f.key, at, n) < 0)
		goto oom;
	if (parse_type(ps, &f.type, &f.unit) < 0)
		goto fail;
	int has_from = 0;
	fp_buf lit = FP_BUF_INIT;
	while (!at_eol(ps)) {
		const char *kw = ps->p;
		if (*ps->p == '=') {
			ps->p++;
			if (has_from || f.required || f.has_default) {
				perr_at(ps, kw, "a constant ('=') cannot have 'from', 'required' or 'default'");
				goto fail_lit;
			}
			if (field_literal(ps, &f, &lit, "constant") < 0)
				goto fail_lit;
			f.is_const = 1;
			if (!at_eol(ps)) {
				perr_at(ps, ps->p, "expected the end of the line after the constant, found %s", found(ps));
				goto fail_lit;
			}
			break;
		}
		if (word(ps, &w, &n, NULL) < 0)
			break;
		if (is_word(w, n, "from") && !has_from && !f.is_const) {
			if (from_parse(ps, &f.from) < 0)
				goto fail_lit;
			has_from = 1;
		} else if (is_word(w, n, "required") && !f.required && !f.has_default) {
			f.required = 1;
		} else if (is_word(w, n, "default") && !f.has_default && !f.required) {
			if (field_literal(ps, &f, &lit, "default") < 0)
				goto fail_lit;
			f.has_default = 1;
		} else if ((is_word(w, n, "required") && f.has_default) ||
		           (is_word(w, n, "default") && f.required)) {
			perr_at(ps, kw, "a field is either required or has a default, not both");
			goto fail_lit;
		} else {
			ps->p = kw;
			perr_at(ps, kw, "expected 'from', 'required', 'default' or '=', found %s", found(ps));
			goto fail_lit;
		}
	}
	fp_buf_release(&lit);
	if (!has_from && !f.is_const) {
		/* the source is the field's own name */
		const char *save = ps->p, *sl = ps->line, *se = ps->end;
		ps->line = ps->p = f.name;
		ps->end = f.name + f.nlen;
		int r = from_parse(ps, &f.from);
		ps->p = save, ps->line = sl, ps->end = se;
		if (r < 0) {
			snprintf(ps->err, ps->errlen, "%s:%u:%zu: field '%s' has no 'from' and %s",
			         ps->fname, ps->lineno, (size_t)(at - ps->line) + 1, f.name,
			         ps->src->format == DICT_JSON ? "its name is not a path"
			                                      : "no column has its name");
			goto fail;
		}
	}
	if (f.from.nsteps && ps->shape->alias && f.from.steps[0].name &&
	    !strcmp(f.from.steps[0].name, ps->shape->alias))
		f.from.elem = 1;
	else if (f.from.nsteps && ps->src->common.alias && f.from.steps[0].name &&
	         !strcmp(f.from.steps[0].name, ps->src->common.alias) && !ps->shape->has_explode)
		f.from.elem = 1;
	dict_field *nf = realloc(ps->shape->fields, (ps->shape->nfields + 1) * sizeof *nf);
	if (!nf)
		goto oom;
	ps->shape->fields = nf;
	nf[ps->shape->nfields++] = f;
	return 0;
fail_lit:
	fp_buf_release(&lit);
	goto fail;
oom:
	perr_at(ps, at, "out of memory");
fail:
	field_release(&f);
	return -1;
}

static void
shape_release(dict_shape *sh)
{
	for (size_t i = 0; i < sh->nvalues; i++)
		free(sh->values[i]);
	free(sh->values);
	for (size_t i = 0; i < sh->nfields; i++)
		field_release(&sh->fields[i]);
	free(sh->fields);
	if (sh->where)
		expr_free(sh->where);
	free(sh->where_text);
	path_release(&sh->explode);
	free(sh->alias);
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
strv_add(dparser *ps, char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (!nv)
		return perr_at(ps, ps->p, "out of memory");
	*v = nv;
	if (!(nv[*n] = xstrndup(s, len)))
		return perr_at(ps, ps->p, "out of memory");
	(*n)++;
	return 0;
}

static void
source_release(dict_source *s)
{
	free(s->name);
	strv_free(s->topics, s->ntopics);
	strv_free(s->columns, s->ncolumns);
	free(s->time_field);
	path_release(&s->shape_by);
	shape_release(&s->common);
	for (size_t i = 0; i < s->nshapes; i++)
		shape_release(&s->shapes[i]);
	free(s->shapes);
	strv_free(s->roots, s->nroots);
	free(s->rootlen);
}

void
dict_free(dict *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nsources; i++)
		source_release(&d->sources[i]);
	free(d->sources);
	free(d);
}

/* Settings that must come before any field, so that paths resolve. */
static int
no_fields_yet(dparser *ps, const char *at, const char *what)
{
	if (ps->src->common.nfields || ps->src->nshapes)
		return perr_at(ps, at, "'%s' must come before the source's fields and shapes", what);
	return 0;
}

static int
parse_where(dparser *ps, const char *kw)
{
	dict_shape *sh = ps->shape;
	if (sh->where)
		return perr_at(ps, kw, "a second 'where' (combine them with 'and')");
	skip_blank(ps);
	const char *at = ps->p;
	size_t used = 0;
	expr_error ee;
	memset(&ee, 0, sizeof ee);
	sh->where = expr_parse(at, (size_t)(ps->end - at), &used, &ee);
	if (!sh->where)
		return perr_at(ps, at + (ee.column ? ee.column - 1 : 0), "%s", ee.msg);
	ps->p = at + used;
	if (!at_eol(ps))
		return perr_at(ps, ps->p, "unexpected %s after the 'where' expression", found(ps));
	const char *e = at + used;
	while (e > at && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	sh->where_text = xstrndup(at, (size_t)(e - at));
	return sh->where_text ? 0 : perr_at(ps, at, "out of memory");
}

static int
parse_explode(dparser *ps, const char *kw)
{
	dict_shape *sh = ps->shape;
	if (ps->src->format != DICT_JSON)
		return perr_at(ps, kw, "'explode' needs format json");
	if (sh->has_explode)
		return perr_at(ps, kw, "a second 'explode'");
	if (sh->nfields)
		return perr_at(ps, kw, "'explode' must come before the fields it applies to");
	if (path_parse(ps, &sh->explode) < 0)
		return -1;
	sh->has_explode = 1;
	const char *w;
	size_t n;
	if (!at_eol(ps)) {
		const char *at = ps->p;
		if (word(ps, &w, &n, NULL) < 0 || !is_word(w, n, "as"))
			return perr_at(ps, at, "expected 'as NAME' or the end of the line, found %s",
			               (ps->p = at, found(ps)));
		at = (skip_blank(ps), ps->p);
		while (ps->p < ps->end && name_char(*ps->p, ps->p == at))
			ps->p++;
		if (ps->p == at)
			return perr_at(ps, at, "expected a name after 'as', found %s", found(ps));
		sh->alias = xstrndup(at, (size_t)(ps->p - at));
	} else {
		dict_step *last = &sh->explode.steps[sh->explode.nsteps - 1];
		if (!last->name)
			return perr_at(ps, ps->p, "name the element: 'explode PATH as NAME'");
		sh->alias = xstrndup(last->name, last->len);
	}
	if (!sh->alias)
		return perr_at(ps, kw, "out of memory");
	if (!at_eol(ps))
		return perr_at(ps, ps->p, "expected the end of the line, found %s", found(ps));
	return 0;
}

static int
parse_when(dparser *ps, const char *kw)
{
	dict_source *s = ps->src;
	if (!s->has_shape_by)
		return perr_at(ps, kw, "'when' needs a 'shape by FIELD' line before it");
	dict_shape *ns = realloc(s->shapes, (s->nshapes + 1) * sizeof *ns);
	if (!ns)
		return perr_at(ps, kw, "out of memory");
	s->shapes = ns;
	dict_shape *sh = &ns[s->nshapes++];
	memset(sh, 0, sizeof *sh);
	sh->line = ps->lineno;
	ps->shape = sh;
	fp_buf lit = FP_BUF_INIT;
	int r = 0;
	while (!at_eol(ps)) {
		const char *at = ps->p;
		int q;
		if (literal(ps, &lit, &q) < 0) {
			r = -1;
			break;
		}
		if (!q && lit.len == 1 && lit.p[0] == '*') {
			for (size_t i = 0; i + 1 < s->nshapes; i++)
				if (s->shapes[i].otherwise) {
					r = perr_at(ps, at, "a second 'when *'");
					break;
				}
			sh->otherwise = 1;
		} else if (!q && is_word((char *)lit.p, lit.len, "drop")) {
			sh->drop = 1;
			if (!at_eol(ps)) {
				r = perr_at(ps, ps->p, "expected the end of the line after 'drop', found %s", found(ps));
				break;
			}
		} else if (strv_add(ps, &sh->values, &sh->nvalues, (char *)lit.p, lit.len) < 0) {
			r = -1;
		}
		if (r < 0)
			break;
	}
	fp_buf_release(&lit);
	if (r == 0 && !sh->nvalues && !sh->otherwise)
		r = perr_at(ps, ps->p, "expected the discriminator's values (or '*'), found %s", found(ps));
	return r;
}

static int
parse_source(dparser *ps, const char *kw)
{
	const char *at = (skip_blank(ps), ps->p), *w;
	size_t n;
	while (ps->p < ps->end && (name_char(*ps->p, 0) || *ps->p == '.'))
		ps->p++;
	n = (size_t)(ps->p - at);
	w = at;
	if (n == 0 || !at_eol(ps))
		return perr_at(ps, n ? ps->p : at, "expected a source name (letters, digits, '_', '-', '.'), found %s",
		               found(ps));
	for (size_t i = 0; i < ps->d->nsources; i++)
		if (is_word(w, n, ps->d->sources[i].name))
			return perr_at(ps, at, "source '%.*s' is already defined on line %u", (int)n, w,
			               ps->d->sources[i].line);
	dict_source *ns = realloc(ps->d->sources, (ps->d->nsources + 1) * sizeof *ns);
	if (!ns)
		return perr_at(ps, kw, "out of memory");
	ps->d->sources = ns;
	dict_source *s = &ns[ps->d->nsources++];
	memset(s, 0, sizeof *s);
	s->line = ps->lineno;
	s->name = xstrndup(w, n);
	s->common.line = ps->lineno;
	ps->src = s;
	ps->shape = &s->common;
	return s->name ? 0 : perr_at(ps, kw, "out of memory");
}

static int
add_root(dict_source *s, dict_path *p)
{
	if (p->elem || !p->nsteps)
		return 0;
	dict_step *st = &p->steps[0];
	for (size_t i = 0; i < s->nroots; i++)
		if (s->rootlen[i] == st->len && !memcmp(s->roots[i], st->name, st->len)) {
			p->root = (unsigned)i;
			return 0;
		}
	char **nr = realloc(s->roots, (s->nroots + 1) * sizeof *nr);
	if (!nr)
		return -1;
	s->roots = nr;
	size_t *nl = realloc(s->rootlen, (s->nroots + 1) * sizeof *nl);
	if (!nl)
		return -1;
	s->rootlen = nl;
	if (!(nr[s->nroots] = xstrndup(st->name, st->len)))
		return -1;
	nl[s->nroots] = st->len;
	p->root = (unsigned)s->nroots++;
	return 0;
}

static int
shape_roots(dict_source *s, dict_shape *sh)
{
	if (sh->has_explode && add_root(s, &sh->explode) < 0)
		return -1;
	for (size_t i = 0; i < sh->nfields; i++)
		if (!sh->fields[i].is_const && add_root(s, &sh->fields[i].from) < 0)
			return -1;
	return 0;
}

static const dict_field *
shape_field(const dict_shape *sh, const char *name)
{
	for (size_t i = 0; i < sh->nfields; i++)
		if (!strcmp(sh->fields[i].name, name))
			return &sh->fields[i];
	return NULL;
}

/* Checks once a source's lines are all read. */
static int
source_end(dparser *ps)
{
	dict_source *s = ps->src;
	if (!s)
		return 0;
	char where[64];
	snprintf(where, sizeof where, "%s:%u:1: source '%.40s'", ps->fname, s->line, s->name);
	if ((s->format == DICT_CSV || s->format == DICT_TSV) && !s->ncolumns && !s->header) {
		snprintf(ps->err, ps->errlen, "%s: a %s source needs 'columns NAME...' or 'columns header'",
		         where, dict_format_name(s->format));
		return -1;
	}
	if (s->has_shape_by && !s->nshapes) {
		snprintf(ps->err, ps->errlen, "%s: 'shape by' but no 'when' shapes", where);
		return -1;
	}
	if (s->time_field) {
		int ok = 0;
		const dict_field *f = shape_field(&s->common, s->time_field);
		if (f)
			ok = f->type == DT_TIME;
		for (size_t i = 0; !f && i < s->nshapes; i++)
			if ((f = shape_field(&s->shapes[i], s->time_field)))
				ok = f->type == DT_TIME;
		if (!ok) {
			snprintf(ps->err, ps->errlen, "%s: 'time %s' names no field of type time", where,
			         s->time_field);
			return -1;
		}
	}
	if (!s->ntopics && strv_add(ps, &s->topics, &s->ntopics, s->name, strlen(s->name)) < 0)
		return -1;
	if (s->format == DICT_JSON) {
		if ((s->has_shape_by && add_root(s, &s->shape_by) < 0) || shape_roots(s, &s->common) < 0)
			goto oom;
		for (size_t i = 0; i < s->nshapes; i++)
			if (shape_roots(s, &s->shapes[i]) < 0)
				goto oom;
	}
	ps->src = NULL;
	return 0;
oom:
	snprintf(ps->err, ps->errlen, "%s: out of memory", where);
	return -1;
}

static int
parse_line(dparser *ps)
{
	if (at_eol(ps))
		return 0;
	const char *kw = ps->p, *w;
	size_t n;
	word(ps, &w, &n, NULL);
	if (is_word(w, n, "source")) {
		if (source_end(ps) < 0)
			return -1;
		return parse_source(ps, kw);
	}
	dict_source *s = ps->src;
	if (!s)
		return perr_at(ps, kw, "expected 'source NAME' to begin a source, found %s",
		               (ps->p = kw, found(ps)));
	if (is_word(w, n, "field"))
		return parse_field(ps);
	if (is_word(w, n, "where"))
		return parse_where(ps, kw);
	if (is_word(w, n, "explode"))
		return parse_explode(ps, kw);
	if (is_word(w, n, "when"))
		return parse_when(ps, kw);
	if (ps->shape != &s->common)
		return perr_at(ps, kw, "'%.*s' belongs to the source, before its first 'when'", (int)n, w);
	if (is_word(w, n, "topic")) {
		if (at_eol(ps))
			return perr_at(ps, ps->p, "expected a topic name or pattern");
		while (!at_eol(ps)) {
			word(ps, &w, &n, NULL);
			if (strv_add(ps, &s->topics, &s->ntopics, w, n) < 0)
				return -1;
		}
		return 0;
	}
	if (is_word(w, n, "format")) {
		if (no_fields_yet(ps, kw, "format") < 0)
			return -1;
		const char *at = (skip_blank(ps), ps->p);
		word(ps, &w, &n, NULL);
		if (is_word(w, n, "json")) s->format = DICT_JSON;
		else if (is_word(w, n, "csv")) s->format = DICT_CSV;
		else if (is_word(w, n, "tsv")) s->format = DICT_TSV;
		else if (is_word(w, n, "kv") || is_word(w, n, "logfmt")) s->format = DICT_KV;
		else
			return perr_at(ps, at, "expected json, csv, tsv or kv, found %s", (ps->p = at, found(ps)));
		if (!at_eol(ps))
			return perr_at(ps, ps->p, "expected the end of the line, found %s", found(ps));
		return 0;
	}
	if (is_word(w, n, "columns")) {
		if (no_fields_yet(ps, kw, "columns") < 0)
			return -1;
		if (s->format != DICT_CSV && s->format != DICT_TSV)
			return perr_at(ps, kw, "'columns' needs format csv or tsv before it");
		if (s->ncolumns || s->header)
			return perr_at(ps, kw, "a second 'columns' line");
		const char *at = (skip_blank(ps), ps->p);
		if (word(ps, &w, &n, NULL) == 0 && is_word(w, n, "header") && at_eol(ps)) {
			s->header = 1;
			return 0;
		}
		ps->p = at;
		while (!at_eol(ps)) {
			if (*ps->p == ',') {
				ps->p++;
				continue;
			}
			const char *c0 = ps->p;
			if (word(ps, &w, &n, ",") < 0)
				return perr_at(ps, c0, "expected a column name, found %s", found(ps));
			if (strv_add(ps, &s->columns, &s->ncolumns, w, n) < 0)
				return -1;
		}
		if (!s->ncolumns)
			return perr_at(ps, ps->p, "expected column names or 'header'");
		return 0;
	}
	if (is_word(w, n, "time")) {
		if (s->time_field)
			return perr_at(ps, kw, "a second 'time' line");
		const char *at = (skip_blank(ps), ps->p);
		if (word(ps, &w, &n, NULL) < 0)
			return perr_at(ps, at, "expected the name of a field of type time");
		if (!at_eol(ps))
			return perr_at(ps, ps->p, "expected the end of the line, found %s", found(ps));
		s->time_field = xstrndup(w, n);
		return s->time_field ? 0 : perr_at(ps, at, "out of memory");
	}
	if (is_word(w, n, "shape")) {
		if (no_fields_yet(ps, kw, "shape by") < 0)
			return -1;
		if (s->has_shape_by)
			return perr_at(ps, kw, "a second 'shape by' line");
		const char *at = (skip_blank(ps), ps->p);
		if (word(ps, &w, &n, NULL) < 0 || !is_word(w, n, "by"))
			return perr_at(ps, at, "expected 'shape by FIELD', found %s", (ps->p = at, found(ps)));
		if (from_parse(ps, &s->shape_by) < 0)
			return -1;
		s->has_shape_by = 1;
		if (!at_eol(ps))
			return perr_at(ps, ps->p, "expected the end of the line, found %s", found(ps));
		return 0;
	}
	return perr_at(ps, kw, "expected source, topic, format, columns, time, shape, where, "
	               "explode, when or field, found %s", (ps->p = kw, found(ps)));
}

dict *
dict_parse(const char *s, size_t n, const char *fname, char *err, size_t errlen)
{
	dparser ps;
	memset(&ps, 0, sizeof ps);
	ps.fname = fname;
	ps.err = err;
	ps.errlen = errlen;
	ps.d = calloc(1, sizeof *ps.d);
	if (!ps.d) {
		snprintf(err, errlen, "%s: out of memory", fname);
		return NULL;
	}
	const char *p = s, *end = s + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		ps.lineno++;
		ps.line = ps.p = p;
		ps.end = le;
		if (memchr(p, 0, (size_t)(le - p))) {
			perr_at(&ps, memchr(p, 0, (size_t)(le - p)), "NUL byte in the dictionary");
			goto fail;
		}
		if (parse_line(&ps) < 0)
			goto fail;
		if (!at_eol(&ps)) {
			perr_at(&ps, ps.p, "unexpected %s", found(&ps));
			goto fail;
		}
		p = nl ? nl + 1 : end;
	}
	if (source_end(&ps) < 0)
		goto fail;
	if (!ps.d->nsources) {
		snprintf(err, errlen, "%s: the dictionary defines no source", fname);
		goto fail;
	}
	return ps.d;
fail:
	dict_free(ps.d);
	return NULL;
}

dict *
dict_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(err, errlen, "unable to open '%s': %s", path, strerror(errno));
		return NULL;
	}
	fp_buf b = FP_BUF_INIT;
	for (;;) {
		if (fp_buf_reserve(&b, 1 << 16) < 0) {
			snprintf(err, errlen, "'%s': out of memory", path);
			goto fail;
		}
		ssize_t r = read(fd, b.p + b.len, b.cap - b.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "error reading '%s': %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		b.len += (size_t)r;
	}
	close(fd);
	dict *d = dict_parse((char *)b.p, b.len, path, err, errlen);
	fp_buf_release(&b);
	return d;
fail:
	close(fd);
	fp_buf_release(&b);
	return NULL;
}

const dict_source *
dict_find_topic(const dict *d, const char *topic, size_t len)
{
	char buf[256];
	if (len >= sizeof buf)
		return NULL;
	memcpy(buf, topic, len);
	buf[len] = 0;
	for (size_t i = 0; i < d->nsources; i++)
		for (size_t j = 0; j < d->sources[i].ntopics; j++)
			if (fnmatch(d->sources[i].topics[j], buf, 0) == 0)
				return &d->sources[i];
	return NULL;
}

const dict_source *
dict_find_source(const dict *d, const char *name)
{
	for (size_t i = 0; i < d->nsources; i++)
		if (!strcmp(d->sources[i].name, name))
			return &d->sources[i];
	return NULL;
}
