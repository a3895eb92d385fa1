/* expr.c - field paths and `where` conditions on raw msgpack; see expr.h. */
#include "expr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mpraw.h"

#define EXPR_MAX_DEPTH 100 /* nested parentheses and `not` */

/* ---- values ---------------------------------------------------------- */

enum vtype { V_NIL, V_BOOL, V_INT, V_UINT, V_FLOAT, V_STR, V_OTHER };

typedef struct xval {
	enum vtype t;
	int b;
	int64_t i;
	uint64_t u;        /* V_UINT: above INT64_MAX */
	double d;
	const uint8_t *s;  /* V_STR: str or bin bytes */
	size_t slen;
} xval;

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Classify the (checked) msgpack object p[0..n). */
static void
decode(const uint8_t *p, size_t n, xval *v)
{
	uint8_t c = p[0];
	if (c <= 0x7f) { v->t = V_INT; v->i = c; return; }
	if (c >= 0xe0) { v->t = V_INT; v->i = (int8_t)c; return; }
	if (c >= 0xa0 && c <= 0xbf) { v->t = V_STR; v->s = p + 1; v->slen = c & 0x1f; return; }
	switch (c) {
	case 0xc0: v->t = V_NIL; return;
	case 0xc2: case 0xc3: v->t = V_BOOL; v->b = c == 0xc3; return;
	case 0xd9: v->t = V_STR; v->s = p + 2; v->slen = p[1]; return;
	case 0xda: v->t = V_STR; v->s = p + 3; v->slen = be16(p + 1); return;
	case 0xdb: v->t = V_STR; v->s = p + 5; v->slen = be32(p + 1); return;
	case 0xc4: case 0xc5: case 0xc6: {
		const uint8_t *b;
		size_t bl;
		if (mp_read_bin(p, n, &b, &bl) < 0)
			break;
		v->t = V_STR; v->s = b; v->slen = bl;
		return;
	}
	case 0xca: case 0xcb:
		if (mp_read_number(p, n, &v->d) < 0)
			break;
		v->t = V_FLOAT;
		return;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		if (mp_read_int(p, n, &v->i) == 0) { v->t = V_INT; return; }
		if (mp_read_uint(p, n, &v->u) == 0) { v->t = V_UINT; return; }
		break;
	default:
		break;
	}
	v->t = V_OTHER;
}

/* Three-way results: -1, 0, 1, or 2 when unordered (NaN). */
static int
cmp_i_d(int64_t i, double d)
{
	if (isnan(d))
		return 2;
	if (d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	int64_t t = (int64_t)d; /* exact: |d| < 2^63, truncated */
	if (i != t)
		return i < t ? -1 : 1;
	return d > (double)t ? -1 : d < (double)t ? 1 : 0;
}

static int
cmp_u_d(uint64_t u, double d)
{
	if (isnan(d))
		return 2;
	if (d >= 18446744073709551616.0)
		return -1;
	if (d < 0)
		return 1;
	uint64_t t = (uint64_t)d;
	if (u != t)
		return u < t ? -1 : 1;
	return d > (double)t ? -1 : d < (double)t ? 1 : 0;
}

static int
num_cmp(const xval *a, const xval *b)
{
	switch (a->t) {
	case V_INT:
		if (b->t == V_INT)
			return a->i < b->i ? -1 : a->i > b->i;
		if (b->t == V_UINT)
			return -1;
		return cmp_i_d(a->i, b->d);
	case V_UINT:
		if (b->t == V_INT)
			return 1;
		if (b->t == V_UINT)
			return a->u < b->u ? -1 : a->u > b->u;
		return cmp_u_d(a->u, b->d);
	default: /* V_FLOAT */
		if (b->t == V_FLOAT) {
			if (isnan(a->d) || isnan(b->d))
				return 2;
			return a->d < b->d ? -1 : a->d > b->d;
		}
		int c = b->t == V_INT ? cmp_i_d(b->i, a->d) : cmp_u_d(b->u, a->d);
		return c == 2 ? 2 : -c;
	}
}

enum { F = 0, T = 1, U = 2 }; /* three-valued logic */
enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

static int
is_num(enum vtype t)
{
	return t == V_INT || t == V_UINT || t == V_FLOAT;
}

static int
compare(int op, const xval *a, const xval *b)
{
	int c;
	if (a->t == V_NIL || b->t == V_NIL) {
		/* nil equals only nil; ordering nil is unknown */
		if (op == OP_EQ)
			return a->t == b->t ? T : F;
		if (op == OP_NE)
			return a->t == b->t ? F : T;
		return U;
	}
	if (is_num(a->t) && is_num(b->t)) {
		c = num_cmp(a, b);
		if (c == 2)
			return U;
	} else if (a->t == V_STR && b->t == V_STR) {
		size_t m = a->slen < b->slen ? a->slen : b->slen;
		c = m ? memcmp(a->s, b->s, m) : 0;
		if (c == 0)
			c = a->slen < b->slen ? -1 : a->slen > b->slen;
	} else if (a->t == V_BOOL && b->t == V_BOOL) {
		if (op == OP_EQ)
			return a->b == b->b ? T : F;
		if (op == OP_NE)
			return a->b != b->b ? T : F;
		return U;
	} else {
		return U;
	}
	switch (op) {
	case OP_EQ: return c == 0 ? T : F;
	case OP_NE: return c != 0 ? T : F;
	case OP_LT: return c < 0 ? T : F;
	case OP_LE: return c <= 0 ? T : F;
	case OP_GT: return c > 0 ? T : F;
	default:    return c >= 0 ? T : F;
	}
}

/* ---- paths ----------------------------------------------------------- */

typedef struct step {
	const char *name; /* into fp_path.names; NULL for an index */
	size_t nlen;
	uint32_t index;
} step;

struct fp_path {
	size_t nsteps;
	step *steps;
	char *names; /* decoded names, back to back */
	char *text;  /* as written */
};

void
fp_path_free(fp_path *p)
{
	if (!p)
		return;
	free(p->steps);
	free(p->names);
	free(p->text);
	free(p);
}

const char *
fp_path_text(const fp_path *p)
{
	return p->text;
}

int
fp_path_get(const fp_path *p, const uint8_t *rec, size_t len,
            const uint8_t **val, size_t *vlen)
{
	const uint8_t *cur = rec;
	size_t n = len;
	for (size_t i = 0; i < p->nsteps; i++) {
		const step *s = &p->steps[i];
		if (s->name) {
			if (!mp_map_find(cur, n, s->name, s->nlen, &cur, &n))
				return 0;
			continue;
		}
		uint32_t count;
		size_t hdr;
		if (mp_read_array(cur, n, &count, &hdr) < 0 || s->index >= count)
			return 0;
		cur += hdr;
		n -= hdr;
		for (uint32_t k = 0; k < s->index; k++) {
			size_t sk = mp_skip(cur, n);
			if (!sk)
				return 0;
			cur += sk;
			n -= sk;
		}
		size_t sk = mp_skip(cur, n);
		if (!sk)
			return 0;
		n = sk;
	}
	*val = cur;
	*vlen = n;
	return 1;
}

/* ---- parser ---------------------------------------------------------- */

typedef struct parser {
	const char *s;
	size_t n;
	size_t pos;   /* just after the last token consumed */
	int depth;
	expr_error *err;
	int failed;
} parser;

static void __attribute__((format(printf, 3, 4)))
fail(parser *p, size_t at, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = 1;
	p->err->column = at + 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
	va_end(ap);
}

static int
is_name_start(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '@';
}

static int
is_name_char(int c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static size_t
skip_ws(const parser *p, size_t i)
{
	while (i < p->n && (p->s[i] == ' ' || p->s[i] == '\t' || p->s[i] == '\n' || p->s[i] == '\r'))
		i++;
	return i;
}

static int
peek(const parser *p, size_t i)
{
	return i < p->n ? (unsigned char)p->s[i] : -1;
}

/* Length of the bare word at i (0 when none). */
static size_t
word_len(const parser *p, size_t i)
{
	if (i >= p->n || !is_name_start((unsigned char)p->s[i]))
		return 0;
	size_t j = i + 1;
	while (j < p->n && is_name_char((unsigned char)p->s[j]))
		j++;
	return j - i;
}

static int
word_is(const parser *p, size_t i, const char *w)
{
	size_t l = strlen(w);
	return word_len(p, i) == l && memcmp(p->s + i, w, l) == 0;
}

/* What stands at i, for messages: 'word', '<char>' or end of input. */
static const char *
found(const parser *p, size_t i, char *buf, size_t len)
{
	if (i >= p->n)
		return "the end";
	size_t w = word_len(p, i);
	if (w == 0) {
		unsigned char c = (unsigned char)p->s[i];
		if (c < 0x20 || c >= 0x7f)
			snprintf(buf, len, "byte 0x%02x", c);
		else
			snprintf(buf, len, "'%c'", c);
	} else {
		snprintf(buf, len, "'%.*s%s'", (int)(w > 24 ? 24 : w), p->s + i, w > 24 ? "..." : "");
	}
	return buf;
}

static int
hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		int c = (unsigned char)s[k];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
		else return -1;
	}
	*out = v;
	return 0;
}

static int
put_utf8(fp_buf *b, unsigned cp)
{
	uint8_t u[4];
	size_t l;
	if (cp < 0x80) { u[0] = (uint8_t)cp; l = 1; }
	else if (cp < 0x800) { u[0] = (uint8_t)(0xc0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 0x3f)); l = 2; }
	else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12); u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f)); l = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18); u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (uint8_t)(0x80 | (cp & 0x3f)); l = 4;
	}
	return fp_buf_add(b, u, l);
}

/* The JSON string starting with '"' at i, decoded and appended to out.
 * Returns the index after the closing quote, or 0 on error. */
static size_t
parse_string(parser *p, size_t i, fp_buf *out)
{
	size_t start = i++;
	while (i < p->n) {
		unsigned char c = (unsigned char)p->s[i];
		if (c == '"')
			return i + 1;
		if (c < 0x20) {
			fail(p, i, "control byte 0x%02x in a string (write it as an escape)", c);
			return 0;
		}
		if (c != '\\') {
			size_t j = i;
			while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20)
				j++;
			if (fp_buf_add(out, p->s + i, j - i) < 0)
				goto oom;
			i = j;
			continue;
		}
		if (i + 1 >= p->n)
			break;
		char e = p->s[i + 1];
		const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
		const char *m = NULL;
		for (const char *q = map; *q; q += 2)
			if (*q == e) { m = q; break; }
		if (m) {
			if (fp_buf_addc(out, (uint8_t)m[1]) < 0)
				goto oom;
			i += 2;
			continue;
		}
		if (e != 'u') {
			fail(p, i, "invalid escape '\\%c' in a string", e >= 0x20 && e < 0x7f ? e : '?');
			return 0;
		}
		unsigned cp, lo;
		if (i + 6 > p->n || hex4(p->s + i + 2, &cp) < 0) {
			fail(p, i, "invalid \\u escape in a string (want four hex digits)");
			return 0;
		}
		size_t at = i;
		i += 6;
		if (cp >= 0xdc00 && cp <= 0xdfff) {
			fail(p, at, "lone low surrogate \\u%04x in a string", cp);
			return 0;
		}
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (i + 6 > p->n || p->s[i] != '\\' || p->s[i + 1] != 'u' ||
			    hex4(p->s + i + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
				fail(p, at, "high surrogate \\u%04x not followed by a low one", cp);
				return 0;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			i += 6;
		}
		if (put_utf8(out, cp) < 0)
			goto oom;
	}
	fail(p, start, "unterminated string");
	return 0;
oom:
	fail(p, i, "out of memory");
	return 0;
}

/* A field path at i (no white space before).  *end: index after it. */
static fp_path *
parse_path_at(parser *p, size_t i, size_t *end)
{
	fp_buf names = FP_BUF_INIT;
	struct { size_t off, len; uint32_t index; int is_index; } *st = NULL;
	size_t nst = 0, cap = 0;
	size_t start = i;
	fp_path *path = NULL;
	int first = 1;

	for (;;) {
		int is_index = 0;
		uint32_t index = 0;
		size_t noff = names.len;
		if (!first && peek(p, i) == '[') {
			size_t at = i++;
			if (!is_digit(peek(p, i))) {
				fail(p, i, "expected an array index (a non-negative integer) after '['");
				goto err;
			}
			uint64_t v = 0;
			while (is_digit(peek(p, i))) {
				v = v * 10 + (uint64_t)(p->s[i] - '0');
				if (v > UINT32_MAX) {
					fail(p, at + 1, "array index too large");
					goto err;
				}
				i++;
			}
			if (peek(p, i) != ']') {
				fail(p, i, "expected ']' after the array index");
				goto err;
			}
			i++;
			is_index = 1;
			index = (uint32_t)v;
		} else {
			if (!first) {
				if (peek(p, i) != '.')
					break;
				i++;
			}
			if (peek(p, i) == '"') {
				i = parse_string(p, i, &names);
				if (!i)
					goto err;
			} else if (word_len(p, i)) {
				size_t w = word_len(p, i);
				if (fp_buf_add(&names, p->s + i, w) < 0) {
					fail(p, i, "out of memory");
					goto err;
				}
				i += w;
			} else {
				char b[40];
				fail(p, i, first ? "expected a field name, found %s"
				                 : "expected a field name after '.', found %s",
				     found(p, i, b, sizeof b));
				goto err;
			}
		}
		if (nst == cap) {
			cap = cap ? 2 * cap : 4;
			void *ns = realloc(st, cap * sizeof *st);
			if (!ns) {
				fail(p, i, "out of memory");
				goto err;
			}
			st = ns;
		}
		st[nst].off = noff;
		st[nst].len = names.len - noff;
		st[nst].index = index;
		st[nst].is_index = is_index;
		nst++;
		first = 0;
	}

	path = calloc(1, sizeof *path);
	if (!path || !(path->steps = calloc(nst, sizeof *path->steps)) ||
	    !(path->names = malloc(names.len + 1)) || !(path->text = malloc(i - start + 1))) {
		fail(p, start, "out of memory");
		goto err;
	}
	if (names.len)
		memcpy(path->names, names.p, names.len);
	memcpy(path->text, p->s + start, i - start);
	path->text[i - start] = '\0';
	path->nsteps = nst;
	for (size_t k = 0; k < nst; k++) {
		path->steps[k].index = st[k].index;
		path->steps[k].name = st[k].is_index ? NULL : path->names + st[k].off;
		path->steps[k].nlen = st[k].len;
	}
	free(st);
	fp_buf_release(&names);
	*end = i;
	return path;
err:
	free(st);
	fp_buf_release(&names);
	fp_path_free(path);
	return NULL;
}

fp_path *
fp_path_parse(const char *src, size_t n, size_t *consumed, expr_error *err)
{
	expr_error dummy;
	parser p = {src, n, 0, 0, err ? err : &dummy, 0};
	size_t end;
	fp_path *path = parse_path_at(&p, 0, &end);
	if (path && consumed)
		*consumed = end;
	return path;
}

/* ---- conditions ------------------------------------------------------ */

enum nkind { N_OR, N_AND, N_NOT, N_CMP, N_IN, N_TRUTH, N_EXISTS };

typedef struct operand {
	fp_path *path; /* NULL: the literal */
	xval lit;
} operand;

typedef struct node node;
struct node {
	enum nkind k;
	int op;          /* N_CMP */
	int negate;      /* N_IN: not in */
	node **kids;     /* N_OR, N_AND (nkids), N_NOT (1) */
	size_t nkids;
	operand l, r;    /* N_CMP: both; N_IN, N_TRUTH, N_EXISTS: l.path */
	xval *list;       /* N_IN */
	size_t nlist;
};

struct expr {
	node *root;
};

static void
lit_release(xval *v)
{
	if (v->t == V_STR)
		free((void *)v->s);
}

static void
node_free(node *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nkids; i++)
		node_free(x->kids[i]);
	free(x->kids);
	fp_path_free(x->l.path);
	fp_path_free(x->r.path);
	if (!x->l.path)
		lit_release(&x->l.lit);
	if (!x->r.path)
		lit_release(&x->r.lit);
	for (size_t i = 0; i < x->nlist; i++)
		lit_release(&x->list[i]);
	free(x->list);
	free(x);
}

void
expr_free(expr *e)
{
	if (!e)
		return;
	node_free(e->root);
	free(e);
}

static node *
node_new(parser *p, enum nkind k)
{
	node *x = calloc(1, sizeof *x);
	if (!x) {
		fail(p, p->pos, "out of memory");
		return NULL;
	}
	x->k = k;
	x->l.lit.t = x->r.lit.t = V_OTHER;
	return x;
}

static int
node_add(parser *p, node *x, node *kid)
{
	node **nk = realloc(x->kids, (x->nkids + 1) * sizeof *nk);
	if (!nk) {
		fail(p, p->pos, "out of memory");
		return -1;
	}
	x->kids = nk;
	x->kids[x->nkids++] = kid;
	return 0;
}

/* A number at i into *v.  Returns the index after it, or 0. */
static size_t
parse_number(parser *p, size_t i, xval *v)
{
	size_t start = i;
	int isfloat = 0;
	if (peek(p, i) == '-')
		i++;
	if (!is_digit(peek(p, i))) {
		fail(p, start, "invalid number");
		return 0;
	}
	while (is_digit(peek(p, i)))
		i++;
	if (peek(p, i) == '.') {
		isfloat = 1;
		i++;
		if (!is_digit(peek(p, i))) {
			fail(p, i, "expected a digit after the decimal point");
			return 0;
		}
		while (is_digit(peek(p, i)))
			i++;
	}
	if (peek(p, i) == 'e' || peek(p, i) == 'E') {
		isfloat = 1;
		i++;
		if (peek(p, i) == '+' || peek(p, i) == '-')
			i++;
		if (!is_digit(peek(p, i))) {
			fail(p, i, "expected a digit in the exponent");
			return 0;
		}
		while (is_digit(peek(p, i)))
			i++;
	}
	if (is_name_char(peek(p, i)) || peek(p, i) == '.') {
		fail(p, start, "invalid number '%.*s'", (int)(word_len(p, i) + i - start > 32 ? 32 : word_len(p, i) + i - start),
		     p->s + start);
		return 0;
	}
	char b[400];
	if (i - start >= sizeof b) {
		fail(p, start, "number too long");
		return 0;
	}
	memcpy(b, p->s + start, i - start);
	b[i - start] = '\0';
	char *e;
	errno = 0;
	if (isfloat) {
		v->t = V_FLOAT;
		v->d = strtod(b, &e);
		if (!isfinite(v->d)) {
			fail(p, start, "number out of range");
			return 0;
		}
	} else if (b[0] == '-') {
		v->t = V_INT;
		v->i = strtoll(b, &e, 10);
		if (errno == ERANGE) {
			fail(p, start, "integer out of range (below -9223372036854775808)");
			return 0;
		}
	} else {
		unsigned long long u = strtoull(b, &e, 10);
		if (errno == ERANGE) {
			fail(p, start, "integer out of range (above 18446744073709551615)");
			return 0;
		}
		if (u > INT64_MAX) {
			v->t = V_UINT;
			v->u = u;
		} else {
			v->t = V_INT;
			v->i = (int64_t)u;
		}
	}
	return i;
}

/* A literal at i (a number, a "string", true, false, null).  Returns the
 * index after it, or 0 (with an error unless quiet and nothing matched). */
static size_t
parse_literal(parser *p, size_t i, xval *v)
{
	int c = peek(p, i);
	if (c == '-' || is_digit(c))
		return parse_number(p, i, v);
	if (c == '"') {
		fp_buf b = FP_BUF_INIT;
		size_t e = parse_string(p, i, &b);
		if (!e) {
			fp_buf_release(&b);
			return 0;
		}
		/* own the bytes (a 1-byte allocation for "") */
		if (fp_buf_reserve(&b, 1) < 0) {
			fp_buf_release(&b);
			fail(p, i, "out of memory");
			return 0;
		}
		v->t = V_STR;
		v->s = b.p;
		v->slen = b.len;
		return e;
	}
	if (word_is(p, i, "true") || word_is(p, i, "false")) {
		v->t = V_BOOL;
		v->b = p->s[i] == 't';
		return i + word_len(p, i);
	}
	if (word_is(p, i, "null")) {
		v->t = V_NIL;
		return i + 4;
	}
	char b[40];
	fail(p, i, "expected a literal (number, \"string\", true, false or null), found %s",
	     found(p, i, b, sizeof b));
	return 0;
}

static int
is_keyword(const parser *p, size_t i)
{
	static const char *const kw[] = {"and", "or", "not", "in", NULL};
	for (int k = 0; kw[k]; k++)
		if (word_is(p, i, kw[k]))
			return 1;
	return 0;
}

/* An operand at i.  *ambiguous: a lone "quoted" string, kept as a literal in
 * o->lit, that may still become a path (see expr.h). */
static size_t
parse_operand(parser *p, size_t i, operand *o, int *ambiguous, size_t *at, const char *after)
{
	*ambiguous = 0;
	*at = i;
	int c = peek(p, i);
	if (c == '"') {
		size_t e = parse_literal(p, i, &o->lit);
		if (!e)
			return 0;
		if (peek(p, e) == '.' || peek(p, e) == '[') {
			lit_release(&o->lit);
			o->lit.t = V_OTHER;
			o->path = parse_path_at(p, i, &e);
			return o->path ? e : 0;
		}
		*ambiguous = 1;
		return e;
	}
	if (c == '-' || is_digit(c) || word_is(p, i, "true") || word_is(p, i, "false") ||
	    word_is(p, i, "null"))
		return parse_literal(p, i, &o->lit);
	if (word_len(p, i) && !is_keyword(p, i)) {
		size_t e;
		o->path = parse_path_at(p, i, &e);
		return o->path ? e : 0;
	}
	char b[40];
	if (after)
		fail(p, i, "expected a field or a literal after '%s', found %s", after,
		     found(p, i, b, sizeof b));
	else
		fail(p, i, "expected a condition (a field, a comparison, exists(...) or '('), found %s",
		     found(p, i, b, sizeof b));
	return 0;
}

/* Turn an ambiguous operand into the field named by its quoted string. */
static int
make_path(parser *p, operand *o, size_t at)
{
	size_t e;
	lit_release(&o->lit);
	o->lit.t = V_OTHER;
	o->path = parse_path_at(p, at, &e);
	return o->path ? 0 : -1;
}

/* Comparison operator at i: its length (0 when none). */
static size_t
parse_op(const parser *p, size_t i, int *op)
{
	int c = peek(p, i), d = peek(p, i + 1);
	if (c == '=' && d == '=') { *op = OP_EQ; return 2; }
	if (c == '!' && d == '=') { *op = OP_NE; return 2; }
	if (c == '<') { *op = d == '=' ? OP_LE : OP_LT; return d == '=' ? 2 : 1; }
	if (c == '>') { *op = d == '=' ? OP_GE : OP_GT; return d == '=' ? 2 : 1; }
	return 0;
}

static node *parse_or(parser *p);

/* "[" lit ("," lit)* "]" at i, into x->list.  Returns the index after it. */
static size_t
parse_list(parser *p, size_t i, node *x)
{
	if (peek(p, i) != '[') {
		char b[40];
		fail(p, i, "expected '[' after 'in', found %s", found(p, i, b, sizeof b));
		return 0;
	}
	i = skip_ws(p, i + 1);
	if (peek(p, i) == ']')
		return i + 1;
	for (;;) {
		xval v = {.t = V_OTHER};
		size_t e = parse_literal(p, i, &v);
		if (!e)
			return 0;
		xval *nl = realloc(x->list, (x->nlist + 1) * sizeof *nl);
		if (!nl) {
			lit_release(&v);
			fail(p, i, "out of memory");
			return 0;
		}
		x->list = nl;
		x->list[x->nlist++] = v;
		i = skip_ws(p, e);
		if (peek(p, i) == ']')
			return i + 1;
		if (peek(p, i) != ',') {
			char b[40];
			fail(p, i, "expected ',' or ']' in the list, found %s", found(p, i, b, sizeof b));
			return 0;
		}
		i = skip_ws(p, i + 1);
	}
}

static node *
parse_prim(parser *p)
{
	size_t i = skip_ws(p, p->pos);
	char b[40];
	if (peek(p, i) == '(') {
		if (++p->depth > EXPR_MAX_DEPTH) {
			fail(p, i, "condition nested more than %d deep", EXPR_MAX_DEPTH);
			return NULL;
		}
		p->pos = i + 1;
		node *x = parse_or(p);
		if (!x)
			return NULL;
		p->depth--;
		size_t j = skip_ws(p, p->pos);
		if (peek(p, j) != ')') {
			fail(p, j, "expected ')' (or 'and', 'or'), found %s", found(p, j, b, sizeof b));
			node_free(x);
			return NULL;
		}
		p->pos = j + 1;
		return x;
	}
	if (word_is(p, i, "exists") && peek(p, skip_ws(p, i + 6)) == '(') {
		node *x = node_new(p, N_EXISTS);
		if (!x)
			return NULL;
		size_t j = skip_ws(p, skip_ws(p, i + 6) + 1), e;
		x->l.path = parse_path_at(p, j, &e);
		if (!x->l.path) {
			node_free(x);
			return NULL;
		}
		j = skip_ws(p, e);
		if (peek(p, j) != ')') {
			fail(p, j, "expected ')' after the field of exists(), found %s", found(p, j, b, sizeof b));
			node_free(x);
			return NULL;
		}
		p->pos = j + 1;
		return x;
	}

	node *x = node_new(p, N_CMP);
	if (!x)
		return NULL;
	int lamb, ramb;
	size_t lat, rat;
	size_t e = parse_operand(p, i, &x->l, &lamb, &lat, NULL);
	if (!e)
		goto err;
	p->pos = e;
	size_t j = skip_ws(p, e);
	int op;
	size_t ol = parse_op(p, j, &op);
	if (ol) {
		x->op = op;
		size_t k = skip_ws(p, j + ol);
		static const char *const opname[] = {"==", "!=", "<", "<=", ">", ">="};
		e = parse_operand(p, k, &x->r, &ramb, &rat, opname[op]);
		if (!e)
			goto err;
		p->pos = e;
		int lpath = x->l.path || lamb, rpath = x->r.path != NULL;
		if (!lpath && !rpath && !ramb) {
			fail(p, lat, "a comparison needs a field on one side");
			goto err;
		}
		/* ambiguous quoted operands: a field unless the other side is one */
		if (lamb && (x->r.path == NULL) && make_path(p, &x->l, lat) < 0)
			goto err;
		if (ramb && !x->l.path && make_path(p, &x->r, rat) < 0)
			goto err;
		return x;
	}
	if (peek(p, j) == '=') {
		fail(p, j, "'=' is not an operator; use '==' to compare");
		goto err;
	}
	int negate = 0;
	size_t k = j;
	if (word_is(p, j, "not")) {
		size_t q = skip_ws(p, j + 3);
		if (word_is(p, q, "in")) {
			negate = 1;
			k = q;
		}
	}
	if (word_is(p, k, "in")) {
		if (!x->l.path && !lamb) {
			fail(p, lat, "the left side of 'in' must be a field");
			goto err;
		}
		if (lamb && make_path(p, &x->l, lat) < 0)
			goto err;
		x->k = N_IN;
		x->negate = negate;
		e = parse_list(p, skip_ws(p, k + 2), x);
		if (!e)
			goto err;
		p->pos = e;
		return x;
	}
	if (!x->l.path && !lamb) {
		fail(p, lat, "a literal alone is not a condition (compare it with a field)");
		goto err;
	}
	if (lamb && make_path(p, &x->l, lat) < 0)
		goto err;
	x->k = N_TRUTH;
	return x;
err:
	node_free(x);
	return NULL;
}

static node *
parse_not(parser *p)
{
	size_t i = skip_ws(p, p->pos);
	if (!word_is(p, i, "not"))
		return parse_prim(p);
	if (++p->depth > EXPR_MAX_DEPTH) {
		fail(p, i, "condition nested more than %d deep", EXPR_MAX_DEPTH);
		return NULL;
	}
	p->pos = i + 3;
	node *kid = parse_not(p);
	if (!kid)
		return NULL;
	p->depth--;
	node *x = node_new(p, N_NOT);
	if (!x || node_add(p, x, kid) < 0) {
		node_free(kid);
		node_free(x);
		return NULL;
	}
	return x;
}

/* kind N_OR over parse_and, or N_AND over parse_not. */
static node *
parse_chain(parser *p, enum nkind k)
{
	const char *w = k == N_OR ? "or" : "and";
	node *(*sub)(parser *) = k == N_OR ? NULL : parse_not;
	node *first = sub ? sub(p) : parse_chain(p, N_AND);
	if (!first)
		return NULL;
	size_t i = skip_ws(p, p->pos);
	if (!word_is(p, i, w))
		return first;
	node *x = node_new(p, k);
	if (!x || node_add(p, x, first) < 0) {
		node_free(first);
		node_free(x);
		return NULL;
	}
	while (word_is(p, i, w)) {
		p->pos = i + strlen(w);
		node *kid = sub ? sub(p) : parse_chain(p, N_AND);
		if (!kid || node_add(p, x, kid) < 0) {
			node_free(kid);
			node_free(x);
			return NULL;
		}
		i = skip_ws(p, p->pos);
	}
	return x;
}

static node *
parse_or(parser *p)
{
	return parse_chain(p, N_OR);
}

expr *
expr_parse(const char *src, size_t n, size_t *consumed, expr_error *err)
{
	expr_error dummy;
	parser p = {src, n, 0, 0, err ? err : &dummy, 0};
	node *root = parse_or(&p);
	if (!root)
		return NULL;
	expr *e = malloc(sizeof *e);
	if (!e) {
		fail(&p, 0, "out of memory");
		node_free(root);
		return NULL;
	}
	e->root = root;
	if (consumed)
		*consumed = p.pos;
	return e;
}

/* ---- evaluation ------------------------------------------------------ */

/* The value of an operand: 1, or 0 when its field is missing. */
static inline int
operand_value(const operand *o, const uint8_t *rec, size_t len, xval *v)
{
	if (!o->path) {
		*v = o->lit;
		return 1;
	}
	const uint8_t *p;
	size_t n;
	if (!fp_path_get(o->path, rec, len, &p, &n))
		return 0;
	decode(p, n, v);
	return 1;
}

static int
eval(const node *x, const uint8_t *rec, size_t len)
{
	xval a, b;
	int r;
	switch (x->k) {
	case N_OR:
		r = F;
		for (size_t i = 0; i < x->nkids; i++) {
			int v = eval(x->kids[i], rec, len);
			if (v == T)
				return T;
			if (v == U)
				r = U;
		}
		return r;
	case N_AND:
		r = T;
		for (size_t i = 0; i < x->nkids; i++) {
			int v = eval(x->kids[i], rec, len);
			if (v == F)
				return F;
			if (v == U)
				r = U;
		}
		return r;
	case N_NOT:
		r = eval(x->kids[0], rec, len);
		return r == U ? U : !r;
	case N_CMP:
		if (!operand_value(&x->l, rec, len, &a) || !operand_value(&x->r, rec, len, &b))
			return U;
		return compare(x->op, &a, &b);
	case N_IN:
		if (!operand_value(&x->l, rec, len, &a))
			return U;
		r = F;
		for (size_t i = 0; i < x->nlist; i++) {
			int v = compare(OP_EQ, &a, &x->list[i]);
			if (v == T) {
				r = T;
				break;
			}
			if (v == U)
				r = U;
		}
		return r == U || !x->negate ? r : !r;
	case N_TRUTH:
		if (!operand_value(&x->l, rec, len, &a) || a.t != V_BOOL)
			return U;
		return a.b ? T : F;
	default: /* N_EXISTS */
		return operand_value(&x->l, rec, len, &a) ? T : F;
	}
}

int
expr_match(const expr *e, const uint8_t *rec, size_t len)
{
	return eval(e->root, rec, len) == T;
}
