/* imp.c - fp-import's engine; see imp.h. */
#include "imp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "json.h"
#include "mpraw.h"

/* ---- splitting text messages ---- */

static int
col_add(imp_cols *c, size_t off, size_t len)
{
	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 16;
		size_t *o = realloc(c->off, nc * sizeof *o);
		if (!o)
			return -1;
		c->off = o;
		size_t *l = realloc(c->len, nc * sizeof *l);
		if (!l)
			return -1;
		c->len = l;
		c->cap = nc;
	}
	c->off[c->n] = off;
	c->len[c->n] = len;
	c->n++;
	return 0;
}

void
imp_cols_release(imp_cols *c)
{
	fp_buf_release(&c->text);
	free(c->off);
	free(c->len);
	memset(c, 0, sizeof *c);
}

static int
split_csv(imp_cols *c, const char *s, size_t n, char sep, int quoting, char *why, size_t wl)
{
	size_t i = 0;
	for (;;) {
		size_t start = c->text.len;
		if (quoting && i < n && s[i] == '"') {
			size_t q = i;
			i++;
			for (;;) {
				if (i >= n) {
					snprintf(why, wl, "unterminated quoted field at column %zu", q + 1);
					return -1;
				}
				if (s[i] == '"') {
					if (i + 1 < n && s[i + 1] == '"') {
						if (fp_buf_addc(&c->text, '"') < 0)
							goto oom;
						i += 2;
						continue;
					}
					i++;
					break;
				}
				if (fp_buf_addc(&c->text, (uint8_t)s[i++]) < 0)
					goto oom;
			}
			if (i < n && s[i] != sep) {
				snprintf(why, wl, "unexpected '%c' after a quoted field at column %zu",
				         s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?', i + 1);
				return -1;
			}
		} else {
			const char *e = memchr(s + i, sep, n - i);
			size_t k = e ? (size_t)(e - (s + i)) : n - i;
			if (fp_buf_add(&c->text, s + i, k) < 0)
				goto oom;
			i += k;
		}
		if (col_add(c, start, c->text.len - start) < 0)
			goto oom;
		if (i >= n)
			return 0;
		i++; /* the separator */
	}
oom:
	snprintf(why, wl, "out of memory");
	return -1;
}

/* logfmt: key=value pairs separated by blanks; values bare or "quoted" with
 * backslash escapes; a bare key is the value true. */
static int
split_kv(imp_cols *c, const char *s, size_t n, char *why, size_t wl)
{
	size_t i = 0;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i >= n)
			return 0;
		size_t k0 = i;
		while (i < n && s[i] != '=' && s[i] != ' ' && s[i] != '\t')
			i++;
		if (i == k0) {
			snprintf(why, wl, "empty key at column %zu", i + 1);
			return -1;
		}
		size_t ko = c->text.len;
		if (fp_buf_add(&c->text, s + k0, i - k0) < 0 || col_add(c, ko, i - k0) < 0)
			goto oom;
		size_t vo = c->text.len;
		if (i >= n || s[i] != '=') {
			if (fp_buf_add(&c->text, "true", 4) < 0 || col_add(c, vo, 4) < 0)
				goto oom;
			continue;
		}
		i++;
		if (i < n && s[i] == '"') {
			size_t q = i++;
			for (;;) {
				if (i >= n) {
					snprintf(why, wl, "unterminated quoted value at column %zu", q + 1);
					return -1;
				}
				char ch = s[i];
				if (ch == '"') {
					i++;
					break;
				}
				if (ch == '\\' && i + 1 < n) {
					ch = s[++i];
					ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch;
				}
				if (fp_buf_addc(&c->text, (uint8_t)ch) < 0)
					goto oom;
				i++;
			}
			if (i < n && s[i] != ' ' && s[i] != '\t') {
				snprintf(why, wl, "unexpected '%c' after a quoted value at column %zu",
				         s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?', i + 1);
				return -1;
			}
		} else {
			size_t v0 = i;
			while (i < n && s[i] != ' ' && s[i] != '\t')
				i++;
			if (fp_buf_add(&c->text, s + v0, i - v0) < 0)
				goto oom;
		}
		if (col_add(c, vo, c->text.len - vo) < 0)
			goto oom;
	}
oom:
	snprintf(why, wl, "out of memory");
	return -1;
}

int
imp_split(imp_cols *c, enum dict_format f, const char *s, size_t n, char *why, size_t wl)
{
	c->text.len = 0;
	c->n = 0;
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	if (f == DICT_KV)
		return split_kv(c, s, n, why, wl);
	return split_csv(c, s, n, f == DICT_TSV ? '\t' : ',', f == DICT_CSV, why, wl);
}

/* ---- values ---- */

enum { V_MISSING, V_MP, V_TEXT };

typedef struct ival {
	int kind;
	const uint8_t *p;
	size_t n;
} ival;

static int
dead(imp *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->reason, sizeof m->reason, fmt, ap);
	va_end(ap);
	return 1;
}

/* Follow steps[from..] inside the msgpack value v. */
static ival
walk(const dict_path *p, size_t from, const uint8_t *v, size_t vl)
{
	ival r = {V_MISSING, NULL, 0};
	for (size_t i = from; i < p->nsteps; i++) {
		const dict_step *st = &p->steps[i];
		if (st->name) {
			if (!mp_map_find(v, vl, st->name, st->len, &v, &vl))
				return r;
		} else {
			uint32_t count;
			size_t hdr;
			if (mp_read_array(v, vl, &count, &hdr) < 0 || st->index >= count)
				return r;
			const uint8_t *e = v + hdr;
			size_t left = vl - hdr;
			for (uint32_t k = 0; k < st->index; k++) {
				size_t sk = mp_skip(e, left);
				e += sk;
				left -= sk;
			}
			v = e;
			vl = mp_skip(e, left);
		}
	}
	if (vl == 0 || v[0] == 0xc0)
		return r;
	r.kind = V_MP;
	r.p = v;
	r.n = vl;
	return r;
}

static ival
text_value(imp *m, const uint8_t *p, size_t n)
{
	(void)m;
	ival r = {n ? V_TEXT : V_MISSING, p, n};
	return r;
}

/* The value at path p of the current message (elem: the exploded element,
 * or NULL). */
static ival
get(imp *m, const dict_source *s, const dict_path *p, const uint8_t *elem, size_t elen)
{
	ival none = {V_MISSING, NULL, 0};
	switch (s->format) {
	case DICT_JSON: {
		if (p->elem)
			return walk(p, 1, elem, elen);
		const uint8_t *v = m->rootv[p->root];
		if (!v || v[0] == 0xc0)
			return none;
		if (p->nsteps == 1) {
			ival r = {V_MP, v, m->rootl[p->root]};
			return r;
		}
		return walk(p, 1, v, m->rootl[p->root]);
	}
	case DICT_CSV:
	case DICT_TSV: {
		int col = p->column;
		if (col < 0) {
			const imp_cols *h = &m->header;
			for (size_t i = 0; i < h->n; i++)
				if (h->len[i] == p->steps[0].len &&
				    !memcmp(h->text.p + h->off[i], p->steps[0].name, h->len[i])) {
					col = (int)i;
					break;
				}
		}
		if (col < 0 || (size_t)col >= m->cols.n)
			return none;
		return text_value(m, m->cols.text.p + m->cols.off[col], m->cols.len[col]);
	}
	case DICT_KV: {
		const imp_cols *c = &m->cols;
		for (size_t i = 0; i + 1 < c->n; i += 2)
			if (c->len[i] == p->steps[0].len &&
			    !memcmp(c->text.p + c->off[i], p->steps[0].name, c->len[i]))
				return text_value(m, c->text.p + c->off[i + 1], c->len[i + 1]);
		return none;
	}
	}
	return none;
}

/* The value as text for discriminator matching: strings as their bytes,
 * numbers and booleans as JSON text. */
static int
value_text(const ival *v, fp_buf *tmp, const char **s, size_t *n)
{
	if (v->kind == V_TEXT) {
		*s = (const char *)v->p;
		*n = v->n;
		return 0;
	}
	if (mp_read_str(v->p, v->n, s, n) == 0)
		return 0;
	tmp->len = 0;
	if (mp_to_json(v->p, v->n, tmp) < 0)
		return -1;
	*s = (const char *)tmp->p;
	*n = tmp->len;
	return 0;
}

static int
shape_matches(const dict_shape *sh, const char *s, size_t n)
{
	for (size_t i = 0; i < sh->nvalues; i++)
		if (strlen(sh->values[i]) == n && !memcmp(sh->values[i], s, n))
			return 1;
	return 0;
}

/* ---- records ---- */

static const uint8_t K_SRC[] = "\xa4@src", K_TS[] = "\xa3@ts", K_IN[] = "\xa3@in";

/* Append the typed fields of sh to m->rec; *nf counts them.  *tsv gets the
 * time field's bytes (offset into rec) when tf names one.  1 on a dead
 * letter. */
static int
add_fields(imp *m, const dict_source *s, const dict_shape *sh, const uint8_t *elem, size_t elen,
           uint32_t *nf, const char *tf, size_t *tsoff, size_t *tslen)
{
	char why[200];
	for (size_t i = 0; i < sh->nfields; i++) {
		const dict_field *f = &sh->fields[i];
		size_t at;
		if (f->is_const || (f->from.elem && !elem)) {
			if (!f->is_const)
				continue; /* an element field of an explode this shape does not have */
			if (fp_buf_add(&m->rec, f->key.p, f->key.len) < 0)
				return -1;
			at = m->rec.len;
			if (fp_buf_add(&m->rec, f->value.p, f->value.len) < 0)
				return -1;
		} else {
			ival v = get(m, s, &f->from, elem, elen);
			if (v.kind == V_MISSING && !f->has_default) {
				if (f->required)
					return dead(m, "field '%s' (from %s) is required but missing", f->name,
					            f->from.text);
				continue;
			}
			if (fp_buf_add(&m->rec, f->key.p, f->key.len) < 0)
				return -1;
			at = m->rec.len;
			int r;
			if (v.kind == V_MISSING)
				r = fp_buf_add(&m->rec, f->value.p, f->value.len);
			else if (v.kind == V_MP)
				r = dict_coerce_mp(f->type, f->unit, v.p, v.n, &m->rec, why, sizeof why);
			else
				r = dict_coerce_text(f->type, f->unit, (const char *)v.p, v.n, &m->rec, why,
				                     sizeof why);
			if (r < 0)
				return dead(m, "field '%s' (from %s): %s", f->name, f->from.text, why);
		}
		if (tf && !strcmp(tf, f->name)) {
			*tsoff = at;
			*tslen = m->rec.len - at;
		}
		(*nf)++;
	}
	return 0;
}

static int
put_be32(fp_buf *b, size_t at, size_t v)
{
	b->p[at] = (uint8_t)(v >> 24);
	b->p[at + 1] = (uint8_t)(v >> 16);
	b->p[at + 2] = (uint8_t)(v >> 8);
	b->p[at + 3] = (uint8_t)v;
	return 0;
}

/* Build one record (element index idx, or -1 when not exploded) and append
 * it to out unless the filters reject it. */
static int
one_record(imp *m, const dict_source *s, const dict_shape *sh, const imp_meta *meta,
           const uint8_t *elem, size_t elen, int64_t idx, fp_buf *out)
{
	uint32_t nf = 0;
	size_t tsoff = 0, tslen = 0;
	const char *tf = !meta->ts && meta->ts_from_field ? s->time_field : NULL;
	m->rec.len = 0;
	int r = add_fields(m, s, &s->common, elem, elen, &nf, tf, &tsoff, &tslen);
	if (r == 0 && sh != &s->common)
		r = add_fields(m, s, sh, elem, elen, &nf, tf, &tsoff, &tslen);
	if (r)
		return r;
	size_t start = out->len;
	int has_ts = meta->ts || meta->ts_from_field;
	uint32_t nmeta = 1 + (uint32_t)has_ts + (meta->in != NULL);
	if (fp_buf_add(out, "\0\0\0\0", 4) < 0 || mpw_map(out, nf + nmeta) < 0 ||
	    fp_buf_add(out, K_SRC, 5) < 0)
		return -1;
	if (idx < 0) {
		if (fp_buf_add(out, meta->src, meta->srclen) < 0)
			return -1;
	} else {
		uint32_t count;
		size_t hdr;
		if (mp_read_array(meta->src, meta->srclen, &count, &hdr) < 0 || count != 3) {
			out->len = start;
			return dead(m, "@src is not [topic, partition, offset]");
		}
		if (fp_buf_addc(out, 0x94) < 0 ||
		    fp_buf_add(out, meta->src + hdr, meta->srclen - hdr) < 0 ||
		    mpw_uint(out, (uint64_t)idx) < 0)
			return -1;
	}
	if (has_ts && fp_buf_add(out, K_TS, 4) < 0)
		return -1;
	if (meta->ts)
		r = fp_buf_add(out, meta->ts, meta->tslen);
	else if (tslen)
		r = fp_buf_add(out, m->rec.p + tsoff, tslen);
	else if (has_ts)
		r = mpw_int(out, meta->now_ms);
	if (r < 0)
		return -1;
	if (meta->in && (fp_buf_add(out, K_IN, 4) < 0 || fp_buf_add(out, meta->in, meta->inlen) < 0))
		return -1;
	if (fp_buf_add(out, m->rec.p, m->rec.len) < 0)
		return -1;
	const uint8_t *body = out->p + start + 4;
	size_t blen = out->len - start - 4;
	if ((s->common.where && expr_match(s->common.where, body, blen) != 1) ||
	    (sh != &s->common && sh->where && expr_match(sh->where, body, blen) != 1)) {
		out->len = start;
		m->filtered++;
		return 0;
	}
	if (blen > m->max_frame) {
		out->len = start;
		return dead(m, "the record is %zu bytes, more than the maximum frame size %zu", blen,
		            m->max_frame);
	}
	put_be32(out, start, blen);
	m->records++;
	return 0;
}

/* mp_skip with the common scalars inline (the hot path of every message). */
static inline size_t
skip1(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t k;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		k = 1;
	else if (c >= 0xa0 && c <= 0xbf)
		k = 1 + (size_t)(c & 0x1f);
	else if (c == 0xd9 && n >= 2)
		k = 2 + (size_t)p[1];
	else if (c == 0xcb || c == 0xcf || c == 0xd3)
		k = 9;
	else if (c == 0xcc || c == 0xd0)
		k = 2;
	else if (c == 0xcd || c == 0xd1)
		k = 3;
	else if (c == 0xce || c == 0xd2 || c == 0xca)
		k = 5;
	else
		return mp_skip(p, n);
	return k <= n ? k : 0;
}

/* A str key at p: its bytes in *k, *kl; the key's total size, 0 if not a
 * short string (the caller then falls back). */
static inline size_t
key1(const uint8_t *p, size_t n, const char **k, size_t *kl)
{
	if (p[0] >= 0xa0 && p[0] <= 0xbf) {
		*kl = p[0] & 0x1f;
		*k = (const char *)p + 1;
		return 1 + *kl <= n ? 1 + *kl : 0;
	}
	return 0;
}

/* Equal bytes, for the short keys of the hot path (cheaper than memcmp). */
static inline int
same(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static inline int
is_container(uint8_t c)
{
	return (c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf);
}

/* An array (of at most 15 entries) holding only scalars. */
static int
flat_array(const uint8_t *v, size_t n)
{
	if (v[0] < 0x90 || v[0] > 0x9f)
		return 0;
	const uint8_t *p = v + 1, *end = v + n;
	for (unsigned i = 0; i < (v[0] & 0x0fu); i++) {
		if (p >= end || is_container(p[0]))
			return 0;
		size_t k = skip1(p, (size_t)(end - p));
		if (!k)
			return 0;
		p += k;
	}
	return p == end;
}

/* The next key/value of a map at *p (before end): key bytes in *k, *kl,
 * value in *v, *vl; *p moves past them.  -1 when malformed. */
static inline int
next_entry(const uint8_t **p, const uint8_t *end, const char **k, size_t *kl,
           const uint8_t **v, size_t *vl)
{
	size_t ks = key1(*p, (size_t)(end - *p), k, kl);
	if (!ks) {
		ks = mp_skip(*p, (size_t)(end - *p));
		if (!ks || mp_read_str(*p, ks, k, kl) < 0)
			return -1;
	}
	*p += ks;
	*vl = skip1(*p, (size_t)(end - *p));
	*v = *p;
	*p += *vl;
	return *vl ? 0 : -1;
}

int
imp_frame_scan(const uint8_t *p, size_t n, imp_meta *meta, const uint8_t **value,
               size_t *vlen, int *control)
{
	uint32_t count;
	size_t hdr;
	memset(meta, 0, sizeof *meta);
	*value = NULL;
	*vlen = 0;
	*control = 0;
	if (mp_read_map(p, n, &count, &hdr) < 0)
		return -1;
	const uint8_t *end = p + n;
	p += hdr;
	int deep = 0;
	if (count > n)
		return -1;
	for (uint32_t i = 0; i < count; i++) {
		const char *k;
		size_t kl, vs;
		const uint8_t *v;
		if (next_entry(&p, end, &k, &kl, &v, &vs) < 0)
			return -1;
		if (is_container(v[0]))
			deep |= !(kl == 4 && same(k, "@src", 4)) || !flat_array(v, vs);
		if (kl == 5 && same(k, "value", 5)) {
			*value = v;
			*vlen = vs;
		} else if (kl == 4 && k[0] == '@') {
			if (same(k, "@src", 4))
				meta->src = v, meta->srclen = vs;
			else if (same(k, "@ctl", 4))
				*control = 1;
		} else if (kl == 3 && k[0] == '@') {
			if (k[1] == 't' && k[2] == 's')
				meta->ts = v, meta->tslen = vs;
			else if (k[1] == 'i' && k[2] == 'n')
				meta->in = v, meta->inlen = vs;
		}
	}
	if (p != end)
		return -1;
	return deep;
}

static int
gather_roots(imp *m, const dict_source *s)
{
	if (m->rootcap < s->nroots) {
		const uint8_t **v = realloc(m->rootv, s->nroots * sizeof *v);
		if (!v)
			return -1;
		m->rootv = v;
		size_t *l = realloc(m->rootl, s->nroots * sizeof *l);
		if (!l)
			return -1;
		m->rootl = l;
		m->rootcap = s->nroots;
	}
	for (size_t i = 0; i < s->nroots; i++)
		m->rootv[i] = NULL;
	const uint8_t *p = m->mp.p, *end = m->mp.p + m->mp.len;
	uint32_t count;
	size_t hdr;
	mp_read_map(p, m->mp.len, &count, &hdr);
	p += hdr;
	size_t guess = 0;
	if (!s->nroots)
		return 0;
	for (uint32_t i = 0; i < count; i++) {
		const char *k;
		size_t kl, vs;
		const uint8_t *v;
		if (next_entry(&p, end, &k, &kl, &v, &vs) < 0)
			break; /* cannot happen: json_to_mp wrote it */
		/* messages mostly keep their key order: try the root after the
		 * last one found first */
		for (size_t j = 0, r = guess; j < s->nroots; j++, r = r + 1 == s->nroots ? 0 : r + 1)
			if (s->rootlen[r] == kl && same(s->roots[r], k, kl)) {
				m->rootv[r] = v;
				m->rootl[r] = vs;
				guess = r + 1 == s->nroots ? 0 : r + 1;
				break;
			}
	}
	return 0;
}

static int
parse_message(imp *m, const dict_source *s, const uint8_t *v, size_t n)
{
	char why[160];
	if (s->format == DICT_JSON) {
		json_error e;
		m->mp.len = 0;
		if (json_to_mp((const char *)v, n, &m->mp, MP_DEFAULT_DEPTH, &e) < 0) {
			if (!strcmp(e.msg, "out of memory"))
				return -1;
			return dead(m, "bad JSON at column %zu: %s", e.column, e.msg);
		}
		uint8_t c = m->mp.p[0];
		if (!((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf))
			return dead(m, "the JSON value is not an object");
		return gather_roots(m, s) < 0 ? -1 : 0;
	}
	if (imp_split(&m->cols, s->format, (const char *)v, n, why, sizeof why) < 0)
		return dead(m, "bad %s: %s", dict_format_name(s->format), why);
	if (s->header && !m->header.n)
		return dead(m, "source '%s' takes its columns from a header line, which only "
		            "--lines reads; list them with 'columns' to read a stream", s->name);
	return 0;
}

int
imp_message(imp *m, const dict_source *s, const imp_meta *meta, const uint8_t *v, size_t n,
            fp_buf *out)
{
	int r = parse_message(m, s, v, n);
	if (r)
		return r;
	const dict_shape *sh = &s->common;
	if (s->has_shape_by) {
		ival d = get(m, s, &s->shape_by, NULL, 0);
		const dict_shape *other = NULL;
		sh = NULL;
		const char *t = NULL;
		size_t tl = 0;
		fp_buf tmp = FP_BUF_INIT;
		if (d.kind != V_MISSING && value_text(&d, &tmp, &t, &tl) < 0) {
			fp_buf_release(&tmp);
			return -1;
		}
		for (size_t i = 0; i < s->nshapes && !sh; i++) {
			if (s->shapes[i].otherwise)
				other = &s->shapes[i];
			else if (t && shape_matches(&s->shapes[i], t, tl))
				sh = &s->shapes[i];
		}
		if (!sh)
			sh = other;
		if (!sh) {
			char shown[64];
			if (t)
				dict_show(shown, sizeof shown, t, tl);
			fp_buf_release(&tmp);
			if (!t)
				return dead(m, "no shape: '%s' is missing", s->shape_by.text);
			return dead(m, "no shape for %s = \"%s\"", s->shape_by.text, shown);
		}
		fp_buf_release(&tmp);
		if (sh->drop) {
			m->dropped++;
			return 0;
		}
	}
	const dict_shape *ex = sh->has_explode ? sh : s->common.has_explode ? &s->common : NULL;
	size_t save = out->len;
	uint64_t rec0 = m->records, filt0 = m->filtered;
	if (!ex) {
		r = one_record(m, s, sh, meta, NULL, 0, -1, out);
	} else {
		ival a = get(m, s, &ex->explode, NULL, 0);
		uint32_t count;
		size_t hdr;
		if (a.kind == V_MISSING)
			return dead(m, "explode: '%s' is missing", ex->explode.text);
		if (mp_read_array(a.p, a.n, &count, &hdr) < 0)
			return dead(m, "explode: '%s' is not an array", ex->explode.text);
		const uint8_t *e = a.p + hdr;
		size_t left = a.n - hdr;
		for (uint32_t i = 0; i < count && r == 0; i++) {
			size_t es = mp_skip(e, left);
			r = one_record(m, s, sh, meta, e, es, i, out);
			if (r == 1) {
				char msg[sizeof m->reason];
				int k = snprintf(msg, sizeof msg, "%.60s[%u]: ", ex->explode.text, i);
				if (k > 0 && (size_t)k < sizeof msg) {
					size_t rl = strnlen(m->reason, sizeof msg - (size_t)k - 1);
					memcpy(msg + k, m->reason, rl);
					msg[(size_t)k + rl] = 0;
				}
				memcpy(m->reason, msg, sizeof msg);
			}
			e += es;
			left -= es;
		}
	}
	if (r) {
		out->len = save;
		m->records = rec0;
		m->filtered = filt0;
	}
	return r;
}

int
imp_set_header(imp *m, const dict_source *s, const char *line, size_t n)
{
	char why[160];
	if (imp_split(&m->header, s->format, line, n, why, sizeof why) < 0) {
		snprintf(m->reason, sizeof m->reason, "bad header line: %s", why);
		return -1;
	}
	return 0;
}

void
imp_init(imp *m, size_t max_frame)
{
	memset(m, 0, sizeof *m);
	m->max_frame = max_frame;
}

void
imp_release(imp *m)
{
	fp_buf_release(&m->mp);
	fp_buf_release(&m->rec);
	imp_cols_release(&m->cols);
	imp_cols_release(&m->header);
	free(m->rootv);
	free(m->rootl);
}
