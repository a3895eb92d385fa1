/* infer.c - a proposed dictionary entry from samples; see infer.h. */
#include "infer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "imp.h"
#include "json.h"
#include "mpraw.h"
#include "num.h"

enum { K_INT = 1, K_FLOAT = 2, K_BOOL = 4, K_STR = 8, K_ISO = 16, K_ARRAY = 32, K_NULL = 64 };

typedef struct ifield {
	char *path;       /* dictionary path text */
	char *name;       /* proposed field name */
	unsigned kinds;
	size_t seen;      /* samples where it is present and not null */
	int64_t min, max; /* of integers */
} ifield;

typedef struct infer {
	ifield *f;
	size_t n, cap;
	size_t samples;
} infer;

static int
name_ok(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9') || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' ||
		      (c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

static ifield *
field_get(infer *in, const char *path)
{
	for (size_t i = 0; i < in->n; i++)
		if (!strcmp(in->f[i].path, path))
			return &in->f[i];
	if (in->n == in->cap) {
		size_t nc = in->cap ? in->cap * 2 : 32;
		ifield *nf = realloc(in->f, nc * sizeof *nf);
		if (!nf)
			return NULL;
		in->f = nf;
		in->cap = nc;
	}
	ifield *f = &in->f[in->n];
	memset(f, 0, sizeof *f);
	if (!(f->path = strdup(path)))
		return NULL;
	in->n++;
	return f;
}

static void
note_int(ifield *f, int64_t v)
{
	if (!(f->kinds & K_INT) || v < f->min)
		f->min = v;
	if (!(f->kinds & K_INT) || v > f->max)
		f->max = v;
	f->kinds |= K_INT;
}

static void
note_text(ifield *f, const char *s, size_t n)
{
	char tmp[64];
	int64_t i, ms;
	double d;
	if (n == 0)
		return;
	if (n < sizeof tmp) {
		memcpy(tmp, s, n);
		tmp[n] = 0;
		if (fp_parse_i64(tmp, INT64_MIN, INT64_MAX, &i, NULL, 0) == 0) {
			note_int(f, i);
			f->seen++;
			return;
		}
		if (fp_parse_double(tmp, &d, NULL, 0) == 0) {
			f->kinds |= K_FLOAT;
			f->seen++;
			return;
		}
		if (!strcmp(tmp, "true") || !strcmp(tmp, "false")) {
			f->kinds |= K_BOOL;
			f->seen++;
			return;
		}
	}
	f->kinds |= dict_parse_iso8601(s, n, &ms) == 0 ? K_ISO : K_STR;
	f->seen++;
}

/* Record the value v at path (a dictionary path text in pb). */
static int
walk(infer *in, fp_buf *pb, const uint8_t *v, size_t vl, unsigned depth)
{
	uint32_t count;
	size_t hdr;
	if (mp_read_map(v, vl, &count, &hdr) == 0 && depth < 6) {
		size_t base = pb->len, off = hdr;
		for (uint32_t i = 0; i < count; i++) {
			const char *k;
			size_t kl, ks = mp_skip(v + off, vl - off);
			mp_read_str(v + off, ks, &k, &kl);
			off += ks;
			size_t vs = mp_skip(v + off, vl - off);
			pb->len = base;
			if (base && fp_buf_addc(pb, '.') < 0)
				return -1;
			int q = !name_ok(k, kl) || memchr(k, '"', kl) || memchr(k, '\\', kl);
			if (q && (memchr(k, '"', kl) || memchr(k, '\\', kl) || memchr(k, '\n', kl)))
				q = 2; /* leave keys needing escapes out */
			if (kl && k[0] != '@' && q < 2 &&
			    ((q && fp_buf_addc(pb, '"') < 0) || fp_buf_add(pb, k, kl) < 0 ||
			     (q && fp_buf_addc(pb, '"') < 0) || walk(in, pb, v + off, vs, depth + 1) < 0))
				return -1;
			off += vs;
		}
		pb->len = base;
		return 0;
	}
	if (fp_buf_addc(pb, 0) < 0)
		return -1;
	pb->len--;
	ifield *f = field_get(in, (char *)pb->p);
	if (!f)
		return -1;
	const char *s;
	size_t sl;
	int64_t i;
	uint8_t c = v[0];
	if (c == 0xc0) {
		f->kinds |= K_NULL;
		return 0;
	}
	f->seen++;
	if (mp_read_str(v, vl, &s, &sl) == 0) {
		int64_t ms;
		f->kinds |= dict_parse_iso8601(s, sl, &ms) == 0 ? K_ISO : K_STR;
	} else if (c == 0xc2 || c == 0xc3)
		f->kinds |= K_BOOL;
	else if (c == 0xca || c == 0xcb)
		f->kinds |= K_FLOAT;
	else if (mp_read_int(v, vl, &i) == 0)
		note_int(f, i);
	else
		f->kinds |= K_ARRAY;
	return 0;
}

static int
timeish(const char *name)
{
	size_t n = strlen(name);
	static const char *const ends[] = {"ts", "time", "timestamp", "_at", "date"};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		size_t k = strlen(ends[i]);
		if (n >= k && !strcmp(name + n - k, ends[i]))
			return 1;
	}
	return 0;
}

static const char *
type_of(const ifield *f)
{
	unsigned k = f->kinds & ~(unsigned)K_NULL;
	if (k & K_ARRAY)
		return "any";
	if (k == K_ISO)
		return "time";
	if (k == K_BOOL)
		return "bool";
	if (k == K_INT && timeish(f->name)) {
		if (f->min >= 100000000000LL && f->max < 10000000000000LL)
			return "time";
		if (f->min >= 100000000LL && f->max < 10000000000LL)
			return "time(s)";
	}
	if (k == K_INT)
		return "int";
	if (k == K_FLOAT || k == (K_INT | K_FLOAT))
		return "float";
	return "string";
}

/* Field names: the path with '.' as '_', other odd characters as '_'. */
static int
make_names(infer *in)
{
	for (size_t i = 0; i < in->n; i++) {
		ifield *f = &in->f[i];
		size_t n = strlen(f->path), k = 0;
		char *nm = malloc(n + 16);
		if (!nm)
			return -1;
		if (f->path[0] >= '0' && f->path[0] <= '9')
			k = (size_t)sprintf(nm, "f_");
		for (size_t j = 0; j < n; j++) {
			char c = f->path[j];
			if (c == '"')
				continue;
			int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
			         (c >= '0' && c <= '9') || c == '-';
			nm[k++] = ok ? c : '_';
		}
		nm[k] = 0;
		if (k == 0 || nm[0] == '-')
			sprintf(nm, "f_%zu", i + 1);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(in->f[j].name, nm)) {
				sprintf(nm + strlen(nm), "_%zu", i + 1);
				break;
			}
		f->name = nm;
	}
	return 0;
}

static int
fmt(fp_buf *o, const char *f, ...) __attribute__((format(printf, 2, 3)));

static int
fmt(fp_buf *o, const char *f, ...)
{
	char line[1200];
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(line, sizeof line, f, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return fp_buf_add(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void
infer_release(infer *in)
{
	for (size_t i = 0; i < in->n; i++) {
		free(in->f[i].path);
		free(in->f[i].name);
	}
	free(in->f);
}

int
infer_dict(const char *name, const char *s, size_t n, fp_buf *out, char *err, size_t errlen)
{
	infer in;
	memset(&in, 0, sizeof in);
	fp_buf mp = FP_BUF_INIT, pb = FP_BUF_INIT;
	imp_cols cols, header;
	memset(&cols, 0, sizeof cols);
	memset(&header, 0, sizeof header);
	enum dict_format format = DICT_JSON;
	int have_format = 0, rc = -1;
	size_t lineno = 0;
	char why[200];
	const char *p = s, *end = s + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		size_t len = (size_t)(le - p);
		p = nl ? nl + 1 : end;
		lineno++;
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == len)
			continue;
		if (!have_format) {
			have_format = 1;
			const char *eq = memchr(line, '=', len), *cm = memchr(line, ',', len);
			if (line[k] == '{')
				format = DICT_JSON;
			else if (memchr(line, '\t', len))
				format = DICT_TSV;
			else if (eq && (!cm || eq < cm) && !memchr(line, '"', (size_t)(eq - line)))
				format = DICT_KV;
			else
				format = DICT_CSV;
			if (format == DICT_CSV || format == DICT_TSV) {
				if (imp_split(&header, format, line, len, why, sizeof why) < 0) {
					snprintf(err, errlen, "line %zu: bad header: %s", lineno, why);
					goto done;
				}
				for (size_t i = 0; i < header.n; i++) {
					char col[256];
					size_t cl = header.len[i] < 255 ? header.len[i] : 255;
					memcpy(col, header.text.p + header.off[i], cl);
					col[cl] = 0;
					if (!name_ok(col, cl)) {
						snprintf(err, errlen, "line %zu: column name '%s' cannot be a field "
						         "name; rename it in the header", lineno, col);
						goto done;
					}
					if (!field_get(&in, col))
						goto oom;
				}
				continue;
			}
		}
		in.samples++;
		if (format == DICT_JSON) {
			json_error e;
			mp.len = 0;
			if (json_to_mp(line, len, &mp, MP_DEFAULT_DEPTH, &e) < 0) {
				snprintf(err, errlen, "line %zu:%zu: %s", lineno, e.column, e.msg);
				goto done;
			}
			if (mp_read_map(mp.p, mp.len, &(uint32_t){0}, &(size_t){0}) < 0) {
				snprintf(err, errlen, "line %zu: not a JSON object", lineno);
				goto done;
			}
			pb.len = 0;
			if (walk(&in, &pb, mp.p, mp.len, 0) < 0)
				goto oom;
			continue;
		}
		if (imp_split(&cols, format, line, len, why, sizeof why) < 0) {
			snprintf(err, errlen, "line %zu: %s", lineno, why);
			goto done;
		}
		if (format == DICT_KV) {
			for (size_t i = 0; i + 1 < cols.n; i += 2) {
				char key[256];
				size_t kl = cols.len[i] < 255 ? cols.len[i] : 255;
				memcpy(key, cols.text.p + cols.off[i], kl);
				key[kl] = 0;
				if (!name_ok(key, kl))
					continue;
				ifield *f = field_get(&in, key);
				if (!f)
					goto oom;
				note_text(f, (char *)cols.text.p + cols.off[i + 1], cols.len[i + 1]);
			}
		} else {
			for (size_t i = 0; i < cols.n && i < in.n; i++)
				note_text(&in.f[i], (char *)cols.text.p + cols.off[i], cols.len[i]);
		}
	}
	if (!in.samples) {
		snprintf(err, errlen, "no samples to infer from");
		goto done;
	}
	if (make_names(&in) < 0)
		goto oom;
	size_t wn = 4, wt = 6;
	const char *time_field = NULL;
	for (size_t i = 0; i < in.n; i++) {
		size_t l = strlen(in.f[i].name);
		wn = l > wn ? l : wn;
		if (!time_field && !strncmp(type_of(&in.f[i]), "time", 4))
			time_field = in.f[i].name;
		wt = strlen(type_of(&in.f[i])) > wt ? strlen(type_of(&in.f[i])) : wt;
	}
	int r = fmt(out, "# proposed by fp-import --infer from %zu samples: check the types,\n"
	                 "# 'required', the names and the topic before use (fp-dictionary(5))\n"
	                 "source %s\n  topic %s\n  format %s\n",
	            in.samples, name, name, dict_format_name(format));
	if (format == DICT_CSV || format == DICT_TSV) {
		r |= fmt(out, "  # a stream has no header line: list the columns instead:\n  # columns ");
		for (size_t i = 0; i < in.n; i++)
			r |= fmt(out, "%s%s", i ? "," : "", in.f[i].path);
		r |= fmt(out, "\n  columns header\n");
	}
	if (time_field)
		r |= fmt(out, "  time %s\n", time_field);
	for (size_t i = 0; i < in.n; i++) {
		const ifield *f = &in.f[i];
		const char *t = type_of(f);
		if (!f->seen) {
			r |= fmt(out, "  # '%s' was null or empty in every sample\n", f->path);
		} else if (f->kinds & K_ARRAY) {
			r |= fmt(out, "  # '%s' is an array or mixed: 'explode %s as item' makes one "
			         "record per element\n", f->path, f->path);
		}
		int same = !strcmp(f->name, f->path), req = f->seen == in.samples;
		r |= fmt(out, "  field %-*s %-*s", (int)wn, f->name, !same || req ? (int)wt : 0, t);
		if (!same)
			r |= fmt(out, " from %s", f->path);
		if (req)
			r |= fmt(out, " required");
		r |= fmt(out, "\n");
	}
	if (r < 0)
		goto oom;
	rc = 0;
	goto done;
oom:
	snprintf(err, errlen, "out of memory");
done:
	infer_release(&in);
	fp_buf_release(&mp);
	fp_buf_release(&pb);
	imp_cols_release(&cols);
	imp_cols_release(&header);
	return rc;
}
