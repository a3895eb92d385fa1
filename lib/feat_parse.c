/* feat_parse.c - the feature file language (fp-features(5)); see feat.h. */
#include "feat_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mpraw.h"
#include "num.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define FEAT_MAX_FILE (1u << 20)

uint64_t
feat_hash(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

typedef struct parser {
	const char *name;
	const char *s;
	size_t n, pos;
	size_t line, lstart;
	char *err;
	size_t errlen;
	feat_spec *spec;
	int have_prefix, have_time, have_ttl;
} parser;

static const char *const agg_names[] = {
	"count", "sum", "avg", "min", "max", "first", "latest", "last", "topk", "distinct",
};

__attribute__((format(printf, 3, 4))) static void
perr_at(parser *P, size_t pos, const char *fmt, ...)
{
	if (!P->err || !P->errlen)
		return;
	int k = snprintf(P->err, P->errlen, "%s:%zu:%zu: ", P->name, P->line,
	                 pos - P->lstart + 1);
	if (k < 0 || (size_t)k >= P->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(P->err + k, P->errlen - (size_t)k, fmt, ap);
	va_end(ap);
}

static void
skip_ws(parser *P)
{
	while (P->pos < P->n && (P->s[P->pos] == ' ' || P->s[P->pos] == '\t' ||
	                         P->s[P->pos] == '\r'))
		P->pos++;
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
is_alnum(int c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

/* Where the current line's content ends: at '\n', the end, or a '#' that
 * is not inside a "string". */
static size_t
content_end(const parser *P)
{
	size_t i = P->pos;
	int instr = 0;
	for (; i < P->n && P->s[i] != '\n'; i++) {
		char c = P->s[i];
		if (instr) {
			if (c == '\\' && i + 1 < P->n && P->s[i + 1] != '\n')
				i++;
			else if (c == '"')
				instr = 0;
		} else if (c == '"') {
			instr = 1;
		} else if (c == '#') {
			break;
		}
	}
	return i;
}

/* A word [A-Za-z_][A-Za-z0-9_]* at pos: its length, 0 when none. */
static size_t
word_len(const parser *P)
{
	size_t i = P->pos;
	if (i >= P->n || !is_alpha((unsigned char)P->s[i]))
		return 0;
	while (i < P->n && is_alnum((unsigned char)P->s[i]))
		i++;
	return i - P->pos;
}

static int
word_is(const parser *P, size_t len, const char *w)
{
	return len == strlen(w) && !memcmp(P->s + P->pos, w, len);
}

/* The rest of the line must be blank or a comment. */
static int
end_line(parser *P, const char *after)
{
	skip_ws(P);
	if (P->pos < P->n && P->s[P->pos] != '\n' && P->s[P->pos] != '#') {
		perr_at(P, P->pos, "expected end of line after %s", after);
		return -1;
	}
	while (P->pos < P->n && P->s[P->pos] != '\n')
		P->pos++;
	return 0;
}

static int
parse_path(parser *P, fp_path **out, const char *what)
{
	skip_ws(P);
	size_t end = content_end(P), used = 0;
	expr_error e = {0, ""};
	fp_path *p = fp_path_parse(P->s + P->pos, end - P->pos, &used, &e);
	if (!p) {
		perr_at(P, P->pos + (e.column ? e.column - 1 : 0), "expected %s: %s", what, e.msg);
		return -1;
	}
	P->pos += used;
	*out = p;
	return 0;
}

/* A duration with a unit, e.g. 30d, 15m, 500ms. */
static int
parse_duration(parser *P, int64_t *ms, const char *what)
{
	skip_ws(P);
	size_t i = P->pos;
	while (i < P->n && is_alnum((unsigned char)P->s[i]))
		i++;
	char tok[32], msg[128];
	size_t len = i - P->pos;
	if (len == 0 || len >= sizeof tok) {
		perr_at(P, P->pos, "expected %s (a duration such as 30s, 15m, 1h, 7d)", what);
		return -1;
	}
	memcpy(tok, P->s + P->pos, len);
	tok[len] = 0;
	if (!is_alpha((unsigned char)tok[len - 1]) ||
	    fp_parse_duration_ms(tok, 1000, 0, ms, msg, sizeof msg) < 0) {
		perr_at(P, P->pos, "expected %s (a duration with a unit: ms, s, m, h, d, w), not '%s'",
		        what, tok);
		return -1;
	}
	P->pos = i;
	return 0;
}

static int
parse_string(parser *P, char **out, size_t *outlen)
{
	skip_ws(P);
	if (P->pos >= P->n || P->s[P->pos] != '"') {
		perr_at(P, P->pos, "expected a \"string\"");
		return -1;
	}
	size_t start = P->pos++;
	fp_buf b = FP_BUF_INIT;
	for (;;) {
		if (P->pos >= P->n || P->s[P->pos] == '\n') {
			perr_at(P, start, "unterminated string");
			goto fail;
		}
		char c = P->s[P->pos++];
		if (c == '"')
			break;
		if (c == '\\') {
			char e = P->pos < P->n ? P->s[P->pos] : 0;
			P->pos++;
			switch (e) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'x': {
				unsigned v = 0;
				for (int k = 0; k < 2; k++, P->pos++) {
					char h = P->pos < P->n ? P->s[P->pos] : 0;
					int d = h >= '0' && h <= '9' ? h - '0' :
					        h >= 'a' && h <= 'f' ? h - 'a' + 10 :
					        h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
					if (d < 0) {
						perr_at(P, P->pos, "expected two hex digits after \\x");
						goto fail;
					}
					v = v * 16 + (unsigned)d;
				}
				c = (char)v;
				break;
			}
			default:
				perr_at(P, P->pos - 2, "unknown escape in string (use \\\" \\\\ \\n \\t \\r \\xHH)");
				goto fail;
			}
		}
		if (fp_buf_addc(&b, (uint8_t)c) < 0)
			goto oom;
	}
	if (fp_buf_addc(&b, 0) < 0)
		goto oom;
	*out = (char *)b.p;
	*outlen = b.len - 1;
	return 0;
oom:
	perr_at(P, start, "out of memory");
fail:
	fp_buf_release(&b);
	return -1;
}

static int
parse_directive(parser *P, size_t wlen)
{
	feat_spec *s = P->spec;
	size_t at = P->pos;
	if (word_is(P, wlen, "key")) {
		P->pos += wlen;
		if (s->key) {
			perr_at(P, at, "'key' given twice");
			return -1;
		}
		if (parse_path(P, &s->key, "the key field") < 0)
			return -1;
		return end_line(P, "the key field");
	}
	if (word_is(P, wlen, "time")) {
		P->pos += wlen;
		if (P->have_time) {
			perr_at(P, at, "'time' given twice");
			return -1;
		}
		fp_path *t;
		if (parse_path(P, &t, "the event-time field") < 0)
			return -1;
		fp_path_free(s->time);
		s->time = t;
		P->have_time = 1;
		return end_line(P, "the time field");
	}
	if (word_is(P, wlen, "prefix")) {
		P->pos += wlen;
		if (P->have_prefix) {
			perr_at(P, at, "'prefix' given twice");
			return -1;
		}
		free(s->prefix);
		s->prefix = NULL;
		if (parse_string(P, &s->prefix, &s->prefix_len) < 0)
			return -1;
		P->have_prefix = 1;
		return end_line(P, "the prefix");
	}
	if (word_is(P, wlen, "ttl")) {
		P->pos += wlen;
		if (P->have_ttl) {
			perr_at(P, at, "'ttl' given twice");
			return -1;
		}
		size_t dpos;
		skip_ws(P);
		dpos = P->pos;
		int64_t ms;
		if (parse_duration(P, &ms, "a ttl") < 0)
			return -1;
		if (ms % 1000) {
			perr_at(P, dpos, "ttl must be a whole number of seconds");
			return -1;
		}
		s->ttl = ms / 1000;
		P->have_ttl = 1;
		return end_line(P, "the ttl");
	}
	perr_at(P, at, "expected 'key', 'prefix', 'time', 'ttl' or NAME = AGGREGATE(...)");
	return -1;
}

static int
expect_char(parser *P, char c, const char *what)
{
	skip_ws(P);
	if (P->pos >= P->n || P->s[P->pos] != c) {
		perr_at(P, P->pos, "expected %s", what);
		return -1;
	}
	P->pos++;
	return 0;
}

/* The default bucket: the largest of a list of round widths that is at most
 * window/60 and divides the window (1ms at worst). */
static int64_t
default_bucket(int64_t window)
{
	static const int64_t w[] = {
		604800000, 86400000, 43200000, 28800000, 21600000, 14400000, 10800000,
		7200000, 3600000, 1800000, 1200000, 900000, 600000, 300000, 120000,
		60000, 30000, 20000, 15000, 10000, 5000, 1000, 100, 10, 1,
	};
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
		if (w[i] <= window / 60 && window % w[i] == 0)
			return w[i];
	return 1;
}

static int
parse_feature(parser *P, size_t wlen)
{
	feat_spec *s = P->spec;
	size_t name_at = P->pos;
	if (wlen > FEAT_MAX_NAME) {
		perr_at(P, name_at, "feature name longer than %d bytes", FEAT_MAX_NAME);
		return -1;
	}
	if (s->n >= FEAT_MAX_FEATURES) {
		perr_at(P, name_at, "more than %d features", FEAT_MAX_FEATURES);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		if (word_is(P, wlen, s->f[i].name)) {
			perr_at(P, name_at, "feature '%s' defined twice", s->f[i].name);
			return -1;
		}
	feat_def *d = &s->f[s->n++];
	memset(d, 0, sizeof *d);
	memcpy(d->name, P->s + P->pos, wlen);
	d->nlen = wlen;
	P->pos += wlen;
	if (expect_char(P, '=', "'='") < 0)
		return -1;
	skip_ws(P);
	size_t agg_at = P->pos, alen = word_len(P);
	size_t a = 0;
	for (; a < sizeof agg_names / sizeof agg_names[0]; a++)
		if (word_is(P, alen, agg_names[a]))
			break;
	if (a == sizeof agg_names / sizeof agg_names[0]) {
		perr_at(P, agg_at, "expected an aggregate: count, sum, avg, min, max, first, "
		        "latest, last, topk or distinct");
		return -1;
	}
	d->agg = (feat_agg)a;
	P->pos += alen;
	if (expect_char(P, '(', "'(' after the aggregate") < 0)
		return -1;
	d->param = 1;
	if (d->agg != FEAT_COUNT) {
		if (parse_path(P, &d->field, "a field") < 0)
			return -1;
		if (d->agg == FEAT_LAST || d->agg == FEAT_TOPK) {
			const char *pn = d->agg == FEAT_LAST ? "N" : "K";
			if (expect_char(P, ',', d->agg == FEAT_LAST ?
			                "',' and the number of values: last(FIELD, N)" :
			                "',' and the number of values: topk(FIELD, K)") < 0)
				return -1;
			skip_ws(P);
			size_t i = P->pos;
			while (i < P->n && P->s[i] >= '0' && P->s[i] <= '9')
				i++;
			char tok[24];
			if (i == P->pos || i - P->pos >= sizeof tok) {
				perr_at(P, P->pos, "expected %s, a number from 1 to %d", pn, FEAT_MAX_PARAM);
				return -1;
			}
			memcpy(tok, P->s + P->pos, i - P->pos);
			tok[i - P->pos] = 0;
			if (fp_parse_i64(tok, 1, FEAT_MAX_PARAM, &d->param, NULL, 0) < 0) {
				perr_at(P, P->pos, "expected %s, a number from 1 to %d", pn, FEAT_MAX_PARAM);
				return -1;
			}
			P->pos = i;
		}
	}
	if (expect_char(P, ')', d->agg == FEAT_COUNT ? "')': count() takes no argument" :
	                d->agg == FEAT_LAST || d->agg == FEAT_TOPK ? "')'" :
	                "')' after the field") < 0)
		return -1;
	skip_ws(P);
	size_t kw = word_len(P);
	if (word_is(P, kw, "where")) {
		P->pos += kw;
		skip_ws(P);
		size_t end = content_end(P), used = 0;
		expr_error e = {0, ""};
		d->where = expr_parse(P->s + P->pos, end - P->pos, &used, &e);
		if (!d->where || used == 0) {
			perr_at(P, P->pos + (e.column ? e.column - 1 : 0), "expected a where expression%s%s",
			        d->where ? "" : ": ", d->where ? "" : e.msg);
			return -1;
		}
		size_t tl = used;
		while (tl && (P->s[P->pos + tl - 1] == ' ' || P->s[P->pos + tl - 1] == '\t'))
			tl--;
		d->where_text = strndup(P->s + P->pos, tl);
		if (!d->where_text) {
			perr_at(P, P->pos, "out of memory");
			return -1;
		}
		P->pos += used;
		skip_ws(P);
		kw = word_len(P);
	}
	if (word_is(P, kw, "over")) {
		P->pos += kw;
		skip_ws(P);
		size_t over_at = P->pos;
		if (parse_duration(P, &d->window_ms, "a window duration after 'over'") < 0)
			return -1;
		if (d->agg == FEAT_FIRST) {
			perr_at(P, over_at, "first() cannot have a window (use min() of a time field)");
			return -1;
		}
		skip_ws(P);
		kw = word_len(P);
		if (word_is(P, kw, "by")) {
			P->pos += kw;
			skip_ws(P);
			size_t by_at = P->pos;
			if (parse_duration(P, &d->bucket_ms, "a bucket duration after 'by'") < 0)
				return -1;
			if (d->bucket_ms > d->window_ms || d->window_ms % d->bucket_ms) {
				perr_at(P, by_at, "the bucket must divide the window");
				return -1;
			}
		} else {
			d->bucket_ms = default_bucket(d->window_ms);
		}
		if (d->window_ms / d->bucket_ms > FEAT_MAX_BUCKETS) {
			perr_at(P, over_at, "window of more than %d buckets (use a larger 'by')",
			        FEAT_MAX_BUCKETS);
			return -1;
		}
		d->nbuckets = (uint32_t)(d->window_ms / d->bucket_ms);
		kw = 0;
	}
	skip_ws(P);
	if (P->pos < P->n && P->s[P->pos] != '\n' && P->s[P->pos] != '#') {
		perr_at(P, P->pos, "expected %send of line",
		        d->window_ms ? "'by' or " : d->where ? "'over' or " : "'where', 'over' or ");
		return -1;
	}
	if (d->agg == FEAT_TOPK) {
		int64_t c = d->param * 4 > d->param + 8 ? d->param * 4 : d->param + 8;
		d->capacity = (uint32_t)c;
	}
	return end_line(P, "the feature");
}

static void
fingerprint(const feat_spec *s, feat_def *d)
{
	fp_buf b = FP_BUF_INIT;
	char num[96];
	snprintf(num, sizeof num, "%d|%lld|%lld|%lld|", (int)d->agg, (long long)d->param,
	         (long long)d->window_ms, (long long)d->bucket_ms);
	fp_buf_adds(&b, num);
	fp_buf_adds(&b, d->field ? fp_path_text(d->field) : "");
	fp_buf_addc(&b, '|');
	fp_buf_adds(&b, fp_path_text(s->time));
	fp_buf_addc(&b, '|');
	if (d->where_text) /* white space collapsed */
		for (const char *c = d->where_text; *c; c++)
			if (*c != ' ' && *c != '\t')
				fp_buf_addc(&b, (uint8_t)*c);
	d->fingerprint = b.p ? feat_hash(b.p, b.len) : 0;
	fp_buf_release(&b);
}

/* The index of the field with path text t[0..n) in s->fields, added (with
 * path p, NULL for a simple name) when new. */
static int
field_index_text(feat_spec *s, const fp_path *p, const char *t, size_t n)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (s->fields[i].nlen == n && !memcmp(s->fields[i].name, t, n))
			return (int)i;
	feat_field *f = &s->fields[s->nfields];
	f->path = p;
	f->name = t;
	f->nlen = n;
	f->simple = n > 0;
	for (size_t k = 0; k < n; k++)
		if (!is_alnum((unsigned char)t[k]) && t[k] != '@' && t[k] != '-')
			f->simple = 0;
	return (int)s->nfields++;
}

static int
field_index(feat_spec *s, const fp_path *p)
{
	const char *t = fp_path_text(p);
	return field_index_text(s, p, t, strlen(t));
}

/* Whether where text w is exactly NAME == "STRING" (see feat_where): the
 * name in w[*name, *name + *nl), the string's bytes in [*lit, *lit + *ll).
 * Conservative: a name must be bare and no keyword, the string free of
 * escapes; anything else is left to expr_match(). */
static int
where_is_eq(const char *w, size_t *name, size_t *nl, size_t *lit, size_t *ll)
{
	static const char *const kw[] = {"and", "or", "not", "in", "true", "false", "null", "exists"};
	size_t i = 0;
	while (w[i] == ' ' || w[i] == '\t')
		i++;
	if (!is_alpha((unsigned char)w[i]) && w[i] != '@')
		return 0;
	*name = i;
	while (is_alnum((unsigned char)w[i]) || w[i] == '@' || w[i] == '-')
		i++;
	*nl = i - *name;
	for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
		if (strlen(kw[k]) == *nl && !memcmp(w + *name, kw[k], *nl))
			return 0;
	while (w[i] == ' ' || w[i] == '\t')
		i++;
	if (w[i] != '=' || w[i + 1] != '=')
		return 0;
	i += 2;
	while (w[i] == ' ' || w[i] == '\t')
		i++;
	if (w[i++] != '"')
		return 0;
	*lit = i;
	while (w[i] && w[i] != '"' && w[i] != '\\' && (unsigned char)w[i] >= 0x20)
		i++;
	if (w[i] != '"')
		return 0;
	*ll = i - *lit;
	i++;
	while (w[i] == ' ' || w[i] == '\t')
		i++;
	return w[i] == 0;
}

/* Distinct fields and where expressions, so that feat_apply() reads each
 * field and evaluates each condition once per record. */
static int
index_fields(feat_spec *s)
{
	s->fields = calloc(2 * s->n + 1, sizeof *s->fields);
	s->wheres = calloc(s->n + 1, sizeof *s->wheres);
	s->widths = calloc(s->n + 1, sizeof *s->widths);
	const char **wt = calloc(s->n + 1, sizeof *wt);
	if (!s->fields || !s->wheres || !s->widths || !wt) {
		free(wt);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++) {
		feat_def *d = &s->f[i];
		d->bidx = -1;
		if (!d->nbuckets)
			continue;
		for (size_t k = 0; k < s->nwidths; k++)
			if (s->widths[k] == d->bucket_ms)
				d->bidx = (int)k;
		if (d->bidx < 0) {
			s->widths[s->nwidths] = d->bucket_ms;
			d->bidx = (int)s->nwidths++;
		}
	}
	field_index(s, s->time);
	for (size_t i = 0; i < s->n; i++) {
		feat_def *d = &s->f[i];
		d->fidx = d->field ? field_index(s, d->field) : -1;
		d->widx = -1;
		if (!d->where)
			continue;
		for (size_t k = 0; k < s->nwheres; k++)
			if (!strcmp(wt[k], d->where_text))
				d->widx = (int)k;
		if (d->widx < 0) {
			wt[s->nwheres] = d->where_text;
			s->wheres[s->nwheres] = (feat_where){.e = d->where, .fidx = -1};
			d->widx = (int)s->nwheres++;
		}
	}
	for (size_t k = 0; k < s->nwheres; k++) { /* after the aggregated fields */
		feat_where *w = &s->wheres[k];
		size_t name, nl, lit, ll;
		if (!where_is_eq(wt[k], &name, &nl, &lit, &ll))
			continue;
		w->fidx = field_index_text(s, NULL, wt[k] + name, nl);
		w->lit = wt[k] + lit;
		w->llen = ll;
	}
	free(wt);
	for (size_t i = s->nfields; i-- > 0;) { /* chains by first byte, in index order */
		feat_field *f = &s->fields[i];
		if (!f->simple)
			continue;
		uint8_t c = (uint8_t)f->name[0];
		f->next = s->by_first[c];
		s->by_first[c] = (uint16_t)(i + 1);
	}
	return 0;
}

feat_spec *
feat_spec_parse(const char *text, size_t n, const char *name, char *err, size_t errlen)
{
	parser P = {
		.name = name && strcmp(name, "-") ? name : "<input>",
		.s = text, .n = n, .line = 1, .err = err, .errlen = errlen,
	};
	if (err && errlen)
		err[0] = 0;
	feat_spec *s = calloc(1, sizeof *s);
	if (!s || !(s->f = calloc(FEAT_MAX_FEATURES, sizeof *s->f)) || !(s->prefix = strdup(""))) {
		perr_at(&P, 0, "out of memory");
		feat_spec_free(s);
		return NULL;
	}
	P.spec = s;
	expr_error e;
	size_t used;
	if (!(s->time = fp_path_parse("@ts", 3, &used, &e))) {
		perr_at(&P, 0, "cannot parse the default time field: %s", e.msg);
		goto fail;
	}
	while (P.pos < n) {
		skip_ws(&P);
		if (P.pos >= n)
			break;
		char c = text[P.pos];
		if (c == '\n') {
			P.pos++;
			P.line++;
			P.lstart = P.pos;
			continue;
		}
		if (c == '#') {
			if (end_line(&P, "") < 0)
				goto fail;
			continue;
		}
		size_t wlen = word_len(&P);
		if (!wlen) {
			perr_at(&P, P.pos, "expected 'key', 'prefix', 'time', 'ttl' or NAME = AGGREGATE(...)");
			goto fail;
		}
		size_t save = P.pos;
		P.pos += wlen;
		skip_ws(&P);
		int feature = P.pos < n && text[P.pos] == '=';
		P.pos = save;
		if ((feature ? parse_feature(&P, wlen) : parse_directive(&P, wlen)) < 0)
			goto fail;
	}
	if (!s->key) {
		perr_at(&P, P.pos, "missing 'key FIELD' line");
		goto fail;
	}
	if (!s->n) {
		perr_at(&P, P.pos, "no features (expected NAME = AGGREGATE(...) lines)");
		goto fail;
	}
	for (size_t i = 0; i < s->n; i++)
		fingerprint(s, &s->f[i]);
	s->prefix_utf8 = utf8_valid((const uint8_t *)s->prefix, s->prefix_len);
	if (index_fields(s) < 0) {
		perr_at(&P, P.pos, "out of memory");
		goto fail;
	}
	return s;
fail:
	feat_spec_free(s);
	return NULL;
}

feat_spec *
feat_spec_parse_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "unable to open '%s': %s", path, strerror(errno));
		return NULL;
	}
	fp_buf b = FP_BUF_INIT;
	for (;;) {
		if (fp_buf_reserve(&b, 65536) < 0) {
			snprintf(err, errlen, "unable to read '%s': out of memory", path);
			goto fail;
		}
		size_t k = fread(b.p + b.len, 1, b.cap - b.len, f);
		b.len += k;
		if (b.len > FEAT_MAX_FILE) {
			snprintf(err, errlen, "unable to read '%s': larger than %u bytes", path,
			         FEAT_MAX_FILE);
			goto fail;
		}
		if (k == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "unable to read '%s': %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	feat_spec *s = feat_spec_parse(b.p ? (const char *)b.p : "", b.len, path, err, errlen);
	fp_buf_release(&b);
	return s;
fail:
	fclose(f);
	fp_buf_release(&b);
	return NULL;
}

void
feat_spec_free(feat_spec *s)
{
	if (!s)
		return;
	fp_path_free(s->key);
	fp_path_free(s->time);
	free(s->prefix);
	if (s->f)
		for (size_t i = 0; i < s->n; i++) {
			fp_path_free(s->f[i].field);
			expr_free(s->f[i].where);
			free(s->f[i].where_text);
		}
	free(s->f);
	free(s->fields);
	free(s->wheres);
	free(s->widths);
	free(s);
}

const struct fp_path *feat_spec_key(const feat_spec *s) { return s->key; }
const struct fp_path *feat_spec_time(const feat_spec *s) { return s->time; }
int64_t feat_spec_ttl(const feat_spec *s) { return s->ttl; }
size_t feat_spec_count(const feat_spec *s) { return s->n; }
const char *feat_spec_name(const feat_spec *s, size_t i) { return s->f[i].name; }
feat_agg feat_spec_agg(const feat_spec *s, size_t i) { return s->f[i].agg; }
int64_t feat_spec_window_ms(const feat_spec *s, size_t i) { return s->f[i].window_ms; }
int64_t feat_spec_bucket_ms(const feat_spec *s, size_t i) { return s->f[i].bucket_ms; }

const char *
feat_spec_prefix(const feat_spec *s, size_t *len)
{
	*len = s->prefix_len;
	return s->prefix;
}

int
feat_record_key(const feat_spec *s, const uint8_t *rec, size_t len, fp_buf *out, int *is_utf8)
{
	const uint8_t *v;
	size_t vlen;
	if (!fp_path_get(s->key, rec, len, &v, &vlen))
		return -1;
	const char *str;
	const uint8_t *bin;
	size_t sl;
	char num[FP_DEC_MAX];
	int64_t i;
	uint64_t u;
	int digits = 0;
	if (mp_read_str(v, vlen, &str, &sl) == 0) {
		bin = (const uint8_t *)str;
	} else if (mp_read_bin(v, vlen, &bin, &sl) == 0) {
	} else if (mp_read_int(v, vlen, &i) == 0) {
		bin = (const uint8_t *)num;
		sl = fp_fmt_i64(num, i);
		digits = 1;
	} else if (mp_read_uint(v, vlen, &u) == 0) {
		bin = (const uint8_t *)num;
		sl = fp_fmt_dec(num, u, 0);
		digits = 1;
	} else {
		return -1;
	}
	size_t start = out->len;
	if (fp_buf_add(out, s->prefix, s->prefix_len) < 0 || fp_buf_add(out, bin, sl) < 0) {
		out->len = start;
		return -1;
	}
	if (is_utf8) /* a valid prefix and digits need no second look */
		*is_utf8 = digits && s->prefix_utf8 ? 1 : utf8_valid(out->p + start, out->len - start);
	return 0;
}

int
feat_record_time(const feat_spec *s, const uint8_t *rec, size_t len, int64_t *t)
{
	const uint8_t *v;
	size_t vlen;
	if (!fp_path_get(s->time, rec, len, &v, &vlen))
		return -1;
	return mp_read_int(v, vlen, t);
}
