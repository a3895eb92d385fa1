/* test_feat.c - the feature language, aggregates, windows and state (TAP). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/expr.h"
#include "../../lib/feat.h"
#include "../../lib/feat_int.h"
#include "../../lib/json.h"
#include "../../lib/mpraw.h"

static int ntest, nfail;

static void
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%sok %d - ", cond ? "" : "not ", ++ntest);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (!cond)
		nfail++;
}

static feat_spec *
spec(const char *text)
{
	char err[256];
	feat_spec *s = feat_spec_parse(text, strlen(text), "t.fp", err, sizeof err);
	if (!s)
		printf("# parse error: %s\n", err);
	return s;
}

/* A JSON record as msgpack; the caller releases b. */
static void
rec(fp_buf *b, const char *json)
{
	json_error e;
	b->len = 0;
	if (json_to_mp(json, strlen(json), b, 64, &e) < 0) {
		printf("# bad test record %s: %s\n", json, e.msg);
		exit(99);
	}
}

static void
apply(const feat_spec *s, feat_state *st, const char *json, feat_stats *stats)
{
	fp_buf b = FP_BUF_INIT;
	rec(&b, json);
	if (feat_apply(s, st, b.p, b.len, stats) < 0) {
		printf("# feat_apply out of memory\n");
		exit(99);
	}
	fp_buf_release(&b);
}

/* The emitted values as one line of JSON (static buffer). */
static const char *
values(const feat_spec *s, const feat_state *st)
{
	static char out[65536];
	fp_buf b = FP_BUF_INIT, j = FP_BUF_INIT;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &b, fp_buf_pack_write);
	msgpack_pack_map(&pk, feat_spec_count(s));
	if (feat_emit_values(s, st, &pk) < 0 || mp_to_json(b.p, b.len, &j) < 0)
		snprintf(out, sizeof out, "(emit failed)");
	else
		snprintf(out, sizeof out, "%.*s", (int)j.len, (const char *)j.p);
	fp_buf_release(&b);
	fp_buf_release(&j);
	return out;
}

static void
is_str(const char *got, const char *want, const char *name)
{
	int same = strcmp(got, want) == 0;
	ok(same, "%s", name);
	if (!same)
		printf("#   got:  %s\n#   want: %s\n", got, want);
}

/* ---- parsing ------------------------------------------------------------- */

static void
test_parse(void)
{
	feat_spec *s = spec("# a comment\n"
	                    "key   user_id   # the entity\n"
	                    "prefix \"u:\\x41\"\n"
	                    "time  ts\n"
	                    "ttl   30d\n"
	                    "\n"
	                    "views_1h = count() where action == \"view\" over 1h\n"
	                    "views_7d = count() over 7d by 1h\n"
	                    "spend    = sum(price)\n"
	                    "recent   = last(car_id, 20) # newest first\n"
	                    "top      = topk(brand, 5) over 1d\n"
	                    "time = latest(city)\n");
	ok(s != NULL, "parse: a full file");
	if (!s)
		return;
	size_t pl;
	const char *p = feat_spec_prefix(s, &pl);
	ok(pl == 3 && !memcmp(p, "u:A", 3), "parse: prefix with escapes");
	ok(!strcmp(fp_path_text(feat_spec_key(s)), "user_id"), "parse: key field");
	ok(!strcmp(fp_path_text(feat_spec_time(s)), "ts"), "parse: time field");
	ok(feat_spec_ttl(s) == 30 * 86400, "parse: ttl in seconds");
	ok(feat_spec_count(s) == 6, "parse: six features");
	ok(!strcmp(feat_spec_name(s, 0), "views_1h") && !strcmp(feat_spec_name(s, 5), "time"),
	   "parse: names in file order (a feature may be called 'time')");
	ok(feat_spec_agg(s, 3) == FEAT_LAST && feat_spec_agg(s, 4) == FEAT_TOPK, "parse: aggregates");
	ok(feat_spec_window_ms(s, 0) == 3600000 && feat_spec_bucket_ms(s, 0) == 60000,
	   "parse: default bucket of 1h is 1m");
	ok(feat_spec_bucket_ms(s, 1) == 3600000, "parse: explicit by");
	ok(feat_spec_bucket_ms(s, 4) == 1200000, "parse: default bucket of 1d is 20m");
	ok(feat_spec_window_ms(s, 2) == 0, "parse: no window");
	feat_spec_free(s);

	s = spec("key k\nc = count()");
	ok(s && !strcmp(fp_path_text(feat_spec_time(s)), "@ts") && feat_spec_ttl(s) == 0,
	   "parse: time defaults to @ts, no ttl, no final newline");
	size_t plen = 1;
	if (s)
		feat_spec_prefix(s, &plen);
	ok(plen == 0, "parse: empty prefix by default");
	feat_spec_free(s);

	static const struct { const char *text, *want; } bad[] = {
		{"c = count()\n", "t.fp:2:1: missing 'key FIELD' line"},
		{"key k\n", "t.fp:2:1: no features"},
		{"key k\nc = count(x)\n", "t.fp:2:11: expected ')': count() takes no argument"},
		{"key k\nc = cnt()\n", "t.fp:2:5: expected an aggregate"},
		{"key k\nc = sum()\n", "t.fp:2:9: expected a field"},
		{"key k\nc = last(x)\n", "t.fp:2:11: expected ',' and the number of values: last(FIELD, N)"},
		{"key k\nc = topk(x, 0)\n", "t.fp:2:13: expected K, a number from 1 to 1000"},
		{"key k\nc = count() over 1x\n", "t.fp:2:18: expected a window duration after 'over'"},
		{"key k\nc = count() over 60\n", "t.fp:2:18: expected a window duration after 'over' (a duration with a unit"},
		{"key k\nc = count() over 1h by 7m\n", "t.fp:2:24: the bucket must divide the window"},
		{"key k\nc = count() over 1h by 2h\n", "t.fp:2:24: the bucket must divide the window"},
		{"key k\nc = count() over 1d by 1s\n", "t.fp:2:18: window of more than 4096 buckets"},
		{"key k\nc = count() junk\n", "t.fp:2:13: expected 'where', 'over' or end of line"},
		{"key k\nc = count() over 1h junk\n", "t.fp:2:21: expected 'by' or end of line"},
		{"key k\nc = count()\nc = sum(x)\n", "t.fp:3:1: feature 'c' defined twice"},
		{"key k\nkey j\nc = count()\n", "t.fp:2:1: 'key' given twice"},
		{"key k\nbogus x\n", "t.fp:2:1: expected 'key', 'prefix', 'time', 'ttl' or NAME = AGGREGATE(...)"},
		{"key k\nprefix u\n", "t.fp:2:8: expected a \"string\""},
		{"key k\nprefix \"u\n", "t.fp:2:8: unterminated string"},
		{"key k\nttl 1500ms\n", "t.fp:2:5: ttl must be a whole number of seconds"},
		{"key k\nc = first(x) over 1h\n", "t.fp:2:19: first() cannot have a window"},
		{"key k\nc = count() where\n", "t.fp:2:18: expected a where expression"},
		{"key k\n  c count()\n", "t.fp:2:3: expected 'key', 'prefix', 'time', 'ttl' or NAME"},
		{"key k extra\nc = count()\n", "t.fp:1:7: expected end of line after the key field"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		feat_spec *b = feat_spec_parse(bad[i].text, strlen(bad[i].text), "t.fp", err, sizeof err);
		int good = !b && !strncmp(err, bad[i].want, strlen(bad[i].want));
		ok(good, "parse error %zu: %s", i, bad[i].want);
		if (!good)
			printf("#   got: %s\n", b ? "(parsed)" : err);
		feat_spec_free(b);
	}
	char err[256];
	ok(!feat_spec_parse_file("/nonexistent/x.fp", err, sizeof err) &&
	   !strcmp(err, "unable to open '/nonexistent/x.fp': No such file or directory"),
	   "parse_file: missing file named");
}

/* ---- aggregates ------------------------------------------------------------ */

static void
test_aggregates(void)
{
	feat_spec *s = spec("key u\n"
	                    "n = count()\n"
	                    "views = count() where action == \"view\"\n"
	                    "total = sum(price)\n"
	                    "fsum = sum(w)\n"
	                    "mean = avg(price)\n"
	                    "lo = min(price)\n"
	                    "hi = max(w)\n"
	                    "first_city = first(city)\n"
	                    "city = latest(city)\n"
	                    "recent = last(item, 3)\n"
	                    "top = topk(brand, 2)\n"
	                    "uniq = distinct(item)\n"
	                    "none = max(missing)\n");
	if (!s) {
		ok(0, "aggregates: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	is_str(values(s, st), "{\"n\":0,\"views\":0,\"total\":0,\"fsum\":0,\"mean\":null,\"lo\":null,"
	       "\"hi\":null,\"first_city\":null,\"city\":null,\"recent\":[],\"top\":[],\"uniq\":0,"
	       "\"none\":null}", "aggregates: empty state");
	feat_stats stats = {0};
	apply(s, st, "{\"@ts\":1000,\"u\":1,\"action\":\"view\",\"price\":10,\"w\":1.5,\"city\":\"Oslo\","
	      "\"item\":\"a\",\"brand\":\"bmw\"}", &stats);
	apply(s, st, "{\"@ts\":3000,\"u\":1,\"action\":\"order\",\"price\":5,\"w\":2,\"city\":\"Rome\","
	      "\"item\":\"b\",\"brand\":\"vw\"}", &stats);
	apply(s, st, "{\"@ts\":2000,\"u\":1,\"action\":\"view\",\"price\":\"x\",\"city\":\"Bonn\","
	      "\"item\":\"a\",\"brand\":\"vw\"}", &stats);
	apply(s, st, "{\"@ts\":4000,\"u\":1,\"action\":\"view\",\"price\":-3,\"w\":0.25,"
	      "\"item\":\"c\",\"brand\":\"audi\"}", &stats);
	apply(s, st, "{\"u\":1,\"action\":\"view\",\"price\":1000}", &stats);
	is_str(values(s, st), "{\"n\":4,\"views\":3,\"total\":12,\"fsum\":3.75,\"mean\":4.0,\"lo\":-3,"
	       "\"hi\":2,\"first_city\":\"Oslo\",\"city\":\"Rome\",\"recent\":[\"c\",\"b\",\"a\"],"
	       "\"top\":[[\"vw\",2],[\"audi\",1]],\"uniq\":3,\"none\":null}",
	       "aggregates: every aggregate, hand-computed");
	ok(stats.records == 5 && stats.no_time == 1, "stats: a record without time is ignored");
	/* price "x" (3 pairs: total, mean, lo), w missing (fsum, hi), city missing
	 * (first_city, city), none missing 4 times */
	ok(stats.bad_field == 3 + 2 + 2 + 4, "stats: missing or wrong-typed fields counted (%llu)",
	   (unsigned long long)stats.bad_field);
	ok(stats.filtered == 1, "stats: where mismatches counted");
	ok(feat_state_now(st) == 4000, "now is the greatest event time");
	feat_state_free(st);
	feat_spec_free(s);

	s = spec("key u\ns = sum(x)\nm = min(x)\nl = last(x, 2)\nd = distinct(x)\n");
	st = feat_state_new(s);
	apply(s, st, "{\"@ts\":1,\"x\":9223372036854775807}", NULL);
	apply(s, st, "{\"@ts\":1,\"x\":1}", NULL);
	apply(s, st, "{\"@ts\":1,\"x\":1.0}", NULL);
	apply(s, st, "{\"@ts\":1,\"x\":true}", NULL);
	is_str(values(s, st), "{\"s\":9.223372036854776e+18,\"m\":1,\"l\":[9223372036854775807,1.0],\"d\":4}",
	       "aggregates: int overflow turns the sum to float; ties broken by value bytes");
	feat_state_free(st);
	feat_spec_free(s);
}

static void
test_topk_capacity(void)
{
	/* topk(x, 1) tracks max(4K, K+8) = 9 values exactly */
	feat_spec *s = spec("key u\nt = topk(x, 1)\n");
	if (!s) {
		ok(0, "topk capacity: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	feat_stats stats = {0};
	char j[64];
	for (int i = 0; i < 5; i++)
		apply(s, st, "{\"@ts\":1,\"x\":\"a\"}", &stats);
	for (char c = 'b'; c <= 'i'; c++) {
		snprintf(j, sizeof j, "{\"@ts\":1,\"x\":\"%c\"}", c);
		apply(s, st, j, &stats);
	}
	ok(stats.approx == 0, "topk capacity: 9 values tracked exactly");
	apply(s, st, "{\"@ts\":1,\"x\":\"j\"}", &stats);
	is_str(values(s, st), "{\"t\":[[\"a\",5]]}", "topk capacity: a 10th value replaces one");
	ok(stats.approx == 1, "topk capacity: the replacement is counted approximate");
	for (int i = 0; i < 4; i++)
		apply(s, st, "{\"@ts\":1,\"x\":\"j\"}", &stats);
	is_str(values(s, st), "{\"t\":[[\"j\",6]]}",
	       "topk capacity: Space-Saving inherits the evicted count plus one (5 seen, 6 shown)");
	feat_state_free(st);
	feat_spec_free(s);
}

/* topk entries cache the sum of their buckets' counts in 32 bits; a sum
 * that does not fit is recounted.  Counts near 2^32 only come from a stored
 * state, so this one is written by hand. */
static void
test_topk_totals(void)
{
	feat_spec *s = spec("key u\nt = topk(x, 3)\nw = topk(x, 3) over 10s by 1s\n");
	if (!s) {
		ok(0, "topk totals: spec");
		return;
	}
	const uint32_t M = UINT32_MAX;
	fp_buf b = FP_BUF_INIT;
	mpw_array(&b, 3);
	mpw_int(&b, FEAT_STATE_VERSION);
	mpw_int(&b, 5000); /* now: bucket 5 */
	mpw_array(&b, 2);
	mpw_array(&b, 3);
	mpw_str(&b, "t", 1);
	mpw_uint(&b, s->f[0].fingerprint);
	mpw_array(&b, 6);
	mpw_str(&b, "a", 1), mpw_array(&b, 2), mpw_int(&b, 0), mpw_uint(&b, M);
	mpw_str(&b, "b", 1), mpw_array(&b, 2), mpw_int(&b, 0), mpw_uint(&b, M - 1);
	mpw_str(&b, "c", 1), mpw_array(&b, 2), mpw_int(&b, 0), mpw_uint(&b, 3);
	mpw_array(&b, 3);
	mpw_str(&b, "w", 1);
	mpw_uint(&b, s->f[1].fingerprint);
	mpw_array(&b, 6);
	mpw_str(&b, "a", 1), mpw_array(&b, 4), mpw_int(&b, 4), mpw_uint(&b, M), mpw_int(&b, 5),
		mpw_uint(&b, M);
	mpw_str(&b, "b", 1), mpw_array(&b, 4), mpw_int(&b, 4), mpw_uint(&b, M - 2), mpw_int(&b, 5),
		mpw_uint(&b, 1);
	mpw_str(&b, "c", 1), mpw_array(&b, 2), mpw_int(&b, 5), mpw_uint(&b, 7);
	feat_state *st = NULL;
	char err[256] = "";
	if (feat_state_decode(s, b.p, b.len, &st, NULL, err, sizeof err) < 0) {
		ok(0, "topk totals: the hand-written state decodes: %s", err);
		fp_buf_release(&b);
		feat_spec_free(s);
		return;
	}
	is_str(values(s, st), "{\"t\":[[\"a\",4294967295],[\"b\",4294967294],[\"c\",3]],"
	       "\"w\":[[\"a\",8589934590],[\"b\",4294967294],[\"c\",7]]}",
	       "topk totals: sums beyond 32 bits are recounted");
	apply(s, st, "{\"@ts\":5000,\"x\":\"b\"}", NULL); /* t: b reaches 2^32 - 1; w: b too */
	is_str(values(s, st), "{\"t\":[[\"a\",4294967295],[\"b\",4294967295],[\"c\",3]],"
	       "\"w\":[[\"a\",8589934590],[\"b\",4294967295],[\"c\",7]]}",
	       "topk totals: a total reaching 2^32 - 1");
	apply(s, st, "{\"@ts\":5000,\"x\":\"b\"}", NULL); /* t: b's bucket stays; w: b passes 2^32 */
	apply(s, st, "{\"@ts\":5000,\"x\":\"a\"}", NULL); /* saturated buckets stay */
	is_str(values(s, st), "{\"t\":[[\"a\",4294967295],[\"b\",4294967295],[\"c\",3]],"
	       "\"w\":[[\"a\",8589934590],[\"b\",4294967296],[\"c\",7]]}",
	       "topk totals: past 2^32 and saturated buckets");
	apply(s, st, "{\"@ts\":14000,\"x\":\"c\"}", NULL); /* bucket 4 leaves the window */
	is_str(values(s, st), "{\"t\":[[\"a\",4294967295],[\"b\",4294967295],[\"c\",4]],"
	       "\"w\":[[\"a\",4294967295],[\"c\",8],[\"b\",3]]}",
	       "topk totals: a bucket leaving the window takes its counts along");
	feat_state_free(st);
	fp_buf_release(&b);
	feat_spec_free(s);
}

static int
other_write(void *data, const char *p, size_t n)
{
	return fp_buf_add(data, p, n);
}

/* feat_emit_values writes in place into a packer's fp_buf, and through the
 * callback for any other packer: the same bytes, small and large. */
static void
test_emit_paths(void)
{
	feat_spec *s = spec("key u\nn = count()\nl = last(x, 1000)\nt = topk(x, 3)\n");
	if (!s) {
		ok(0, "emit paths: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	int same = 1;
	for (int i = 0; i < 400; i++) {
		char j[96];
		snprintf(j, sizeof j, "{\"@ts\":%d,\"x\":\"value number %06d\"}", i, i % 150);
		apply(s, st, j, NULL);
		if (i != 0 && i != 20 && i != 399)
			continue;
		fp_buf a = FP_BUF_INIT, b = FP_BUF_INIT;
		fp_buf_add(&a, "abc", 3);
		msgpack_packer pa, pb;
		msgpack_packer_init(&pa, &a, fp_buf_pack_write);
		msgpack_packer_init(&pb, &b, other_write);
		if (feat_emit_values(s, st, &pa) < 0 || feat_emit_values(s, st, &pb) < 0 ||
		    a.len != b.len + 3 || memcmp(a.p, "abc", 3) || memcmp(a.p + 3, b.p, b.len))
			same = 0;
		if (i == 399 && b.len < 4096)
			same = 0; /* must have passed the 4 KiB stack buffer */
		fp_buf_release(&a);
		fp_buf_release(&b);
	}
	ok(same, "emit paths: in place into an fp_buf, or through a callback: the same bytes");
	feat_state_free(st);
	feat_spec_free(s);
}

/* feat_val_cmp: string/binary bytes first, then the whole encoding; the
 * reference here strips headers by hand.  Pairs cover the inline path for
 * two short strings (prefixes, equal, high bytes) and the general one. */
static int
ref_val_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	const uint8_t *x[2] = {a, b};
	size_t n[2] = {al, bl}, h[2];
	for (int i = 0; i < 2; i++) {
		uint8_t c = x[i][0];
		h[i] = (c & 0xe0) == 0xa0 ? 1 : c == 0xd9 || c == 0xc4 ? 2 : c == 0xda || c == 0xc5 ? 3 : 0;
	}
	size_t m = n[0] - h[0] < n[1] - h[1] ? n[0] - h[0] : n[1] - h[1];
	int c = memcmp(a + h[0], b + h[1], m);
	if (!c)
		c = n[0] - h[0] < n[1] - h[1] ? -1 : n[0] - h[0] > n[1] - h[1];
	if (!c) {
		m = al < bl ? al : bl;
		c = memcmp(a, b, m);
		if (!c)
			c = al < bl ? -1 : al > bl;
	}
	return c < 0 ? -1 : c > 0;
}

static void
test_val_cmp(void)
{
	static const char *const strs[] = {"", "a", "ab", "abc", "b", "ba", "bmw", "audi", "\xff",
	                                   "\xff\x01", "a\x00", "abcdefghijklmnopqrstuvwxyz01234"};
	uint8_t v[64][48];
	size_t vl[64], nv = 0;
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		size_t n = strlen(strs[i]) + (i == 10); /* "a\0" */
		fp_buf b = FP_BUF_INIT;
		mpw_str(&b, strs[i], n); /* fixstr */
		memcpy(v[nv], b.p, b.len), vl[nv++] = b.len;
		b.len = 0;
		mpw_bin(&b, strs[i], n);
		memcpy(v[nv], b.p, b.len), vl[nv++] = b.len;
		v[nv][0] = 0xd9, v[nv][1] = (uint8_t)n, memcpy(v[nv] + 2, strs[i], n), vl[nv++] = n + 2;
		fp_buf_release(&b);
	}
	static const uint8_t other[][9] = {{0x01}, {0x7f}, {0xc3}, {0xcc, 0x80}, {0xe0}};
	for (size_t i = 0; i < 5; i++)
		memcpy(v[nv], other[i], 9), vl[nv++] = other[i][0] == 0xcc ? 2 : 1;
	int same = 1;
	for (size_t i = 0; i < nv; i++)
		for (size_t j = 0; j < nv; j++) {
			int got = feat_val_cmp(v[i], vl[i], v[j], vl[j]), want = ref_val_cmp(v[i], vl[i], v[j], vl[j]);
			got = got < 0 ? -1 : got > 0;
			if (got != want) {
				if (same)
					printf("# pair %zu, %zu: got %d, want %d\n", i, j, got, want);
				same = 0;
			}
		}
	ok(same, "value order: feat_val_cmp agrees with the reference on %zu x %zu pairs", nv, nv);
}

/* Values already canonical (fixstr, fixint, bool) are used as they are;
 * every other encoding is canonicalised: equal values in different
 * encodings must count as one. */
static void
test_canon_shortcut(void)
{
	feat_spec *s = spec("key u\nd = distinct(x)\nt = topk(x, 20)\nf = first(x)\n");
	if (!s) {
		ok(0, "canonical values: spec");
		return;
	}
	static const struct {
		const char *enc;
		size_t n;
	} xs[] = {
		{"\x05", 1}, {"\xcc\x05", 2}, {"\xd1\x00\x05", 3}, {"\xcf\0\0\0\0\0\0\0\x05", 9}, /* 5 */
		{"\xfb", 1}, {"\xd0\xfb", 2}, {"\xd3\xff\xff\xff\xff\xff\xff\xff\xfb", 9},           /* -5 */
		{"\xa2" "ab", 3}, {"\xd9\x02" "ab", 4}, {"\xda\x00\x02" "ab", 5},                 /* "ab" */
		{"\xc3", 1}, {"\xc3", 1},                                                          /* true */
		{"\xca\x3f\xc0\x00\x00", 5}, {"\xcb\x3f\xf8\0\0\0\0\0\0", 9},                       /* 1.5 */
		{"\xc4\x02" "ab", 4},                                                              /* bin */
	};
	feat_state *st = feat_state_new(s);
	for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
		fp_buf b = FP_BUF_INIT;
		mpw_map(&b, 2);
		mpw_str(&b, "@ts", 3);
		mpw_int(&b, (int64_t)(100 - i));
		mpw_str(&b, "x", 1);
		fp_buf_add(&b, xs[i].enc, xs[i].n);
		if (feat_apply(s, st, b.p, b.len, NULL) != 0)
			printf("# value %zu not applied\n", i);
		fp_buf_release(&b);
	}
	is_str(values(s, st), "{\"d\":6,\"t\":[[5,4],[\"ab\",3],[-5,3],[true,2],[1.5,2],"
	       "[{\"@bin\":\"ab\"},1]],\"f\":{\"@bin\":\"ab\"}}",
	       "canonical values: equal values in any encoding count as one");
	feat_state_free(st);
	feat_spec_free(s);
}

/* Integer keys in decimal (hand-written formatting, checked against
 * printf), and whether "@key" is UTF-8 with a valid or invalid prefix. */
static void
test_int_keys(void)
{
	static const int64_t is[] = {0, 7, -1, 9, 10, -10, 99, 100, 1234567890123, INT64_MAX, INT64_MIN};
	feat_spec *s = spec("key u\nprefix \"p:\"\nn = count()\n");
	feat_spec *bad = spec("key u\nprefix \"\xff\"\nn = count()\n");
	if (!s || !bad) {
		ok(0, "int keys: spec");
		feat_spec_free(s);
		feat_spec_free(bad);
		return;
	}
	int same = 1;
	fp_buf r = FP_BUF_INIT, k = FP_BUF_INIT;
	for (size_t i = 0; i <= sizeof is / sizeof is[0]; i++) {
		char want[40];
		r.len = 0;
		mpw_map(&r, 1);
		mpw_str(&r, "u", 1);
		if (i < sizeof is / sizeof is[0]) {
			mpw_int(&r, is[i]);
			snprintf(want, sizeof want, "p:%lld", (long long)is[i]);
		} else {
			mpw_uint(&r, UINT64_MAX);
			snprintf(want, sizeof want, "p:%llu", (unsigned long long)UINT64_MAX);
		}
		int utf8 = -1;
		k.len = 0;
		if (feat_record_key(s, r.p, r.len, &k, &utf8) < 0 || k.len != strlen(want) ||
		    memcmp(k.p, want, k.len) || utf8 != 1) {
			printf("# key %zu: got '%.*s' (utf8 %d), want '%s'\n", i, (int)k.len, (char *)k.p, utf8, want);
			same = 0;
		}
		k.len = 0;
		if (feat_record_key(bad, r.p, r.len, &k, &utf8) < 0 || utf8 != 0 || k.p[0] != 0xff ||
		    k.len != strlen(want) - 1 || memcmp(k.p + 1, want + 2, k.len - 1)) {
			printf("# key %zu after an invalid prefix: utf8 %d\n", i, utf8);
			same = 0;
		}
	}
	ok(same, "int keys: decimal text as printf writes it; UTF-8 only after a valid prefix");
	fp_buf_release(&r);
	fp_buf_release(&k);
	feat_spec_free(s);
	feat_spec_free(bad);
}

/* read_fields finds top-level names through chains of fields sharing a
 * first byte: every field of a chain must be found, in any key order, the
 * first of two equal keys winning (as fp_path_get does). */
static void
test_field_chains(void)
{
	feat_spec *s = spec("key u\na = sum(p)\nb = sum(pa)\nc = sum(pab)\nd = sum(q)\n"
	                    "e = count() where pb == \"x\"\nf = latest(p)\n");
	if (!s) {
		ok(0, "field chains: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	apply(s, st, "{\"pab\":100,\"@ts\":1,\"q\":1000,\"pb\":\"x\",\"pa\":10,\"p\":1,\"p\":2}", NULL);
	apply(s, st, "{\"p\":3,\"pa\":20,\"pb\":\"y\",\"@ts\":2,\"pab\":200,\"pab\":9}", NULL);
	apply(s, st, "{\"pb\":\"x\",\"pb\":\"y\",\"@ts\":3,\"\":5,\"pbx\":\"x\"}", NULL);
	is_str(values(s, st), "{\"a\":4,\"b\":30,\"c\":300,\"d\":1000,\"e\":2,\"f\":3}",
	       "field chains: names sharing a first byte, any order, the first of equal keys");
	feat_state_free(st);
	feat_spec_free(s);
}

/* An integer in one of several msgpack encodings (mode 0: smallest). */
static void
put_int_as(fp_buf *b, int64_t v, int mode)
{
	uint8_t o[9];
	uint64_t u = (uint64_t)v;
	if (mode == 0) {
		mpw_int(b, v);
		return;
	}
	o[0] = mode == 1 ? 0xd3 : 0xcf;
	for (int k = 0; k < 8; k++)
		o[1 + k] = (uint8_t)(u >> (56 - 8 * k));
	fp_buf_add(b, o, 9);
}

/* feat_state_decode reads the unsigned encodings inline and the rest
 * through mpraw: a state must decode the same in any integer encoding, and
 * an unsigned value beyond int64 is refused where an int is expected. */
static void
test_decode_ints(void)
{
	feat_spec *s = spec("key u\nn = sum(x)\nc = count() over 10s by 1s\nl = last(x, 3)\n");
	if (!s) {
		ok(0, "decode ints: spec");
		return;
	}
	fp_buf want = FP_BUF_INIT;
	int same = 1;
	for (int mode = 0; mode < 4; mode++) {
		fp_buf b = FP_BUF_INIT;
		int m = mode == 3 ? 2 : mode; /* mode 3: 2^63 as the stored now */
		mpw_array(&b, 3);
		put_int_as(&b, FEAT_STATE_VERSION, m);
		if (mode == 3)
			fp_buf_add(&b, "\xcf\x80\0\0\0\0\0\0\0", 9);
		else
			put_int_as(&b, 5000, m);
		mpw_array(&b, 3);
		mpw_array(&b, 3), mpw_str(&b, "n", 1), mpw_uint(&b, s->f[0].fingerprint);
		mpw_array(&b, 2), put_int_as(&b, 2, m), put_int_as(&b, 300, m);
		mpw_array(&b, 3), mpw_str(&b, "c", 1), mpw_uint(&b, s->f[1].fingerprint);
		mpw_array(&b, 3), put_int_as(&b, 5, m), put_int_as(&b, 2, m), put_int_as(&b, 0, m);
		mpw_array(&b, 3), mpw_str(&b, "l", 1), mpw_uint(&b, s->f[2].fingerprint);
		mpw_array(&b, 2), put_int_as(&b, 4000, m), put_int_as(&b, 7, 0);
		feat_state *st = NULL;
		char err[256] = "";
		int rc = feat_state_decode(s, b.p, b.len, &st, NULL, err, sizeof err);
		if (mode == 3) {
			ok(rc < 0 && strstr(err, "bad time"), "decode ints: a now beyond int64 is refused (%s)", err);
		} else if (rc < 0) {
			printf("# mode %d: %s\n", mode, err);
			same = 0;
		} else {
			fp_buf e = FP_BUF_INIT;
			feat_state_encode(s, st, &e);
			if (mode == 0 && (e.len != b.len || memcmp(e.p, b.p, b.len)))
				same = 0; /* smallest encodings round-trip byte for byte */
			if (mode == 0)
				fp_buf_add(&want, e.p, e.len);
			else if (e.len != want.len || memcmp(e.p, want.p, e.len))
				same = 0;
			if (strcmp(values(s, st), "{\"n\":300,\"c\":2,\"l\":[7]}"))
				same = 0;
			fp_buf_release(&e);
		}
		feat_state_free(st);
		fp_buf_release(&b);
	}
	ok(same, "decode ints: the same state from any integer encoding");
	fp_buf_release(&want);
	feat_spec_free(s);
}

static void
test_fields_and_keys(void)
{
	feat_spec *s = spec("key user.id\nprefix \"u:\"\ntime ev.ts\n"
	                    "spent = sum(order.items[1].price) where order.ok\n"
	                    "names = last(\"full name\", 2)\n");
	if (!s) {
		ok(0, "fields: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	feat_stats stats = {0};
	apply(s, st, "{\"user\":{\"id\":7},\"ev\":{\"ts\":5},\"full name\":\"Ann B\","
	      "\"order\":{\"ok\":true,\"items\":[{\"price\":1},{\"price\":20}]}}", &stats);
	apply(s, st, "{\"ev\":{\"ts\":6},\"full name\":\"Bo\","
	      "\"order\":{\"ok\":false,\"items\":[{\"price\":1},{\"price\":300}]}}", &stats);
	apply(s, st, "{\"ev\":{\"ts\":\"7\"},\"full name\":\"Cy\"}", &stats);
	apply(s, st, "{\"@ts\":8,\"full name\":\"Di\"}", &stats);
	is_str(values(s, st), "{\"spent\":20,\"names\":[\"Bo\",\"Ann B\"]}",
	       "fields: nested and quoted paths, a custom time field");
	ok(stats.no_time == 2 && stats.filtered == 1, "fields: a time that is not an integer or "
	   "missing ignores the record");
	fp_buf k = FP_BUF_INIT;
	fp_buf r = FP_BUF_INIT;
	int utf8 = -1;
	rec(&r, "{\"user\":{\"id\":-42}}");
	int a = feat_record_key(s, r.p, r.len, &k, &utf8);
	ok(a == 0 && k.len == 5 && !memcmp(k.p, "u:-42", 5) && utf8 == 1, "key: an integer in decimal");
	k.len = 0;
	rec(&r, "{\"user\":{\"id\":{\"@b64\":\"/w==\"}}}");
	a = feat_record_key(s, r.p, r.len, &k, &utf8);
	ok(a == 0 && k.len == 3 && k.p[2] == 0xff && utf8 == 0, "key: binary bytes, not UTF-8");
	k.len = 0;
	rec(&r, "{\"user\":{\"id\":1.5}}");
	ok(feat_record_key(s, r.p, r.len, &k, NULL) < 0 && k.len == 0, "key: a float is refused");
	rec(&r, "{\"user\":{}}");
	ok(feat_record_key(s, r.p, r.len, &k, NULL) < 0 && k.len == 0, "key: a missing key is refused");
	int64_t t = 0;
	rec(&r, "{\"ev\":{\"ts\":99}}");
	ok(feat_record_time(s, r.p, r.len, &t) == 0 && t == 99, "time: read from the time field");
	fp_buf_release(&k);
	fp_buf_release(&r);
	feat_state_free(st);
	feat_spec_free(s);
}

/* ---- windows ------------------------------------------------------------- */

static void
test_windows(void)
{
	feat_spec *s = spec("key u\n"
	                    "c = count() over 10s by 1s\n"
	                    "s = sum(x) over 10s by 1s\n"
	                    "a = avg(x) over 10s by 1s\n"
	                    "mx = max(x) over 10s by 1s\n"
	                    "mn = min(x) over 10s by 1s\n"
	                    "d = distinct(x) over 10s by 1s\n"
	                    "t = topk(x, 2) over 10s by 1s\n"
	                    "l = last(x, 3) over 10s by 1s\n"
	                    "z = latest(x) over 10s by 1s\n");
	if (!s) {
		ok(0, "windows: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	feat_stats stats = {0};
	apply(s, st, "{\"@ts\":0,\"x\":7}", &stats);
	apply(s, st, "{\"@ts\":999,\"x\":7}", &stats);
	apply(s, st, "{\"@ts\":1000,\"x\":1}", &stats);
	apply(s, st, "{\"@ts\":9999,\"x\":2}", &stats);
	is_str(values(s, st), "{\"c\":4,\"s\":17,\"a\":4.25,\"mx\":7,\"mn\":1,\"d\":3,"
	       "\"t\":[[7,2],[1,1]],\"l\":[2,1,7],\"z\":2}", "windows: all in the window at 9999");
	apply(s, st, "{\"@ts\":10000,\"x\":3}", &stats);
	is_str(values(s, st), "{\"c\":3,\"s\":6,\"a\":2.0,\"mx\":3,\"mn\":1,\"d\":3,"
	       "\"t\":[[1,1],[2,1]],\"l\":[3,2,1],\"z\":3}",
	       "windows: at 10000 bucket 0 (t 0 and 999) has left a 10s window");
	uint64_t late0 = stats.late;
	apply(s, st, "{\"@ts\":500,\"x\":100}", &stats);
	ok(stats.late == late0 + 9, "windows: a late event out of the window is counted late");
	apply(s, st, "{\"@ts\":1500,\"x\":2}", &stats);
	is_str(values(s, st), "{\"c\":4,\"s\":8,\"a\":2.0,\"mx\":3,\"mn\":1,\"d\":3,"
	       "\"t\":[[2,2],[1,1]],\"l\":[3,2,2],\"z\":3}",
	       "windows: a late event inside the window is added");
	apply(s, st, "{\"@ts\":25000,\"x\":5}", &stats);
	is_str(values(s, st), "{\"c\":1,\"s\":5,\"a\":5.0,\"mx\":5,\"mn\":5,\"d\":1,"
	       "\"t\":[[5,1]],\"l\":[5],\"z\":5}", "windows: a jump empties the window");
	apply(s, st, "{\"@ts\":16000,\"x\":4}", &stats);
	is_str(values(s, st), "{\"c\":2,\"s\":9,\"a\":4.5,\"mx\":5,\"mn\":4,\"d\":2,"
	       "\"t\":[[4,1],[5,1]],\"l\":[5,4],\"z\":5}",
	       "windows: the oldest bucket still inside (16s of a window ending at 25s)");
	apply(s, st, "{\"@ts\":15999,\"x\":4}", &stats);
	ok(!strstr(values(s, st), "\"c\":3"), "windows: 15999 is one bucket too old");
	feat_state_free(st);

	st = feat_state_new(s);
	apply(s, st, "{\"@ts\":-1,\"x\":1}", NULL);
	apply(s, st, "{\"@ts\":-10000,\"x\":1}", NULL);
	apply(s, st, "{\"@ts\":-10001,\"x\":1}", NULL);
	ok(!strncmp(values(s, st), "{\"c\":2,", 6), "windows: negative times bucket by floor");
	feat_state_free(st);

	st = feat_state_new(s);
	apply(s, st, "{\"@ts\":-9223372036854775808,\"x\":1}", NULL);
	apply(s, st, "{\"@ts\":9223372036854775807,\"x\":2}", NULL);
	apply(s, st, "{\"@ts\":-9223372036854775808,\"x\":3}", NULL);
	apply(s, st, "{\"@ts\":9223372036854775806,\"x\":4}", NULL);
	is_str(values(s, st), "{\"c\":2,\"s\":6,\"a\":3.0,\"mx\":4,\"mn\":2,\"d\":2,"
	       "\"t\":[[2,1],[4,1]],\"l\":[2,4],\"z\":2}", "windows: extreme times");
	/* the first event's buckets (at INT64_MIN) left every window: they must
	 * be gone from the state, or its encoding does not decode */
	fp_buf enc = FP_BUF_INIT;
	feat_state *back = NULL;
	char err[256] = "";
	ok(feat_state_encode(s, st, &enc) == 0 &&
	   feat_state_decode(s, enc.p, enc.len, &back, NULL, err, sizeof err) == 0 &&
	   !strcmp(values(s, back), "{\"c\":2,\"s\":6,\"a\":3.0,\"mx\":4,\"mn\":2,\"d\":2,"
	           "\"t\":[[2,1],[4,1]],\"l\":[2,4],\"z\":2}"),
	   "windows: extreme times: the state decodes to the same values %s", err);
	feat_state_free(back);
	fp_buf_release(&enc);
	feat_state_free(st);
	feat_spec_free(s);
}

/* ---- shared random events ------------------------------------------------ */

typedef struct ev {
	int64_t t;
	int view;
	int price;      /* -1: missing */
	int item;       /* 0..39 */
	int brand;      /* 0..5 */
} ev;

static uint64_t rng = 88172645463325252ull;
static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *brands[] = {"bmw", "vw", "audi", "fiat", "kia", "seat"};

static void
ev_json(const ev *e, char *out, size_t n)
{
	char price[32] = "";
	if (e->price >= 0)
		snprintf(price, sizeof price, ",\"price\":%d", e->price);
	snprintf(out, n, "{\"@ts\":%lld,\"u\":\"k\",\"action\":\"%s\"%s,\"item\":\"i%d\","
	         "\"brand\":\"%s\"}", (long long)e->t, e->view ? "view" : "order", price,
	         e->item, brands[e->brand]);
}

static const char *prop_file =
	"key u\n"
	"n = count()\n"
	"v10m = count() where action == \"view\" over 10m by 1m\n"
	"v1h = count() over 1h\n"
	"s = sum(price) over 30m by 5m\n"
	"stot = sum(price)\n"
	"a = avg(price) over 20m\n"
	"amax = max(price) over 7m by 1m\n"
	"amin = min(price)\n"
	"f = first(item)\n"
	"lt = latest(brand) over 15m by 1m\n"
	"l = last(item, 5) where action == \"view\"\n"
	"lw = last(item, 4) over 10m by 1m\n"
	"tk = topk(brand, 3) over 40m by 10m\n"
	"tka = topk(brand, 2)\n"
	"d = distinct(item)\n"
	"dw = distinct(item) over 25m by 5m\n";

static void
run_events(const feat_spec *s, feat_state *st, const ev *e, size_t n)
{
	char j[256];
	for (size_t i = 0; i < n; i++) {
		ev_json(&e[i], j, sizeof j);
		apply(s, st, j, NULL);
	}
}

static void
shuffle(ev *e, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t k = rnd() % i;
		ev t = e[i - 1];
		e[i - 1] = e[k];
		e[k] = t;
	}
}

static void
gen(ev *e, size_t n, int64_t span)
{
	for (size_t i = 0; i < n; i++) {
		e[i].t = 1700000000000 + (int64_t)(rnd() % (uint64_t)span);
		e[i].view = rnd() % 3 != 0;
		e[i].price = rnd() % 10 == 0 ? -1 : (int)(rnd() % 100);
		e[i].item = (int)(rnd() % 40);
		e[i].brand = (int)(rnd() % 6);
	}
}

/* ---- a brute-force recount, written from the man page, not the code ------ */

static int64_t
floordiv(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

/* in the window of w ms by b ms, as of now */
static int
inwin(int64_t t, int64_t now, int64_t w, int64_t b)
{
	if (!w)
		return 1;
	return floordiv(now, b) - floordiv(t, b) < w / b;
}

typedef struct val {
	int64_t t;
	char s[16];
} val;


/* newest first; equal times: the greater string first (fp-features(5)) */
static int
val_cmp_desc(const void *a, const void *b)
{
	const val *x = a, *y = b;
	if (x->t != y->t)
		return x->t > y->t ? -1 : 1;
	return -strcmp(x->s, y->s);
}

static void
put_s(fp_buf *out, const char *s)
{
	mpw_str(out, s, strlen(s));
}

typedef struct cnt {
	const char *v;
	int64_t n;
} cnt;

/* count descending, then value ascending */
static int
cnt_cmp(const void *a, const void *b)
{
	const cnt *x = a, *y = b;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->v, y->v);
}

static void
brute(const ev *e, size_t n, fp_buf *out)
{
	int64_t now = INT64_MIN;
	for (size_t i = 0; i < n; i++)
		if (e[i].t > now)
			now = e[i].t;
	const int64_t M = 60000;
	mpw_map(out, 16);
	/* n */
	mpw_str(out, "n", 1);
	mpw_int(out, (int64_t)n);
	/* v10m, v1h */
	int64_t c = 0, c2 = 0;
	for (size_t i = 0; i < n; i++) {
		c += e[i].view && inwin(e[i].t, now, 10 * M, M);
		c2 += inwin(e[i].t, now, 60 * M, M);
	}
	mpw_str(out, "v10m", 4);
	mpw_int(out, c);
	mpw_str(out, "v1h", 3);
	mpw_int(out, c2);
	/* s, stot, a, amax, amin */
	int64_t s = 0, stot = 0, asum = 0, an = 0, amax = -1, amin = -1;
	for (size_t i = 0; i < n; i++) {
		if (e[i].price < 0)
			continue;
		if (inwin(e[i].t, now, 30 * M, 5 * M))
			s += e[i].price;
		stot += e[i].price;
		if (inwin(e[i].t, now, 20 * M, 20000)) {
			asum += e[i].price;
			an++;
		}
		if (inwin(e[i].t, now, 7 * M, M) && e[i].price > amax)
			amax = e[i].price;
		if (amin < 0 || e[i].price < amin)
			amin = e[i].price;
	}
	mpw_str(out, "s", 1);
	mpw_int(out, s);
	mpw_str(out, "stot", 4);
	mpw_int(out, stot);
	mpw_str(out, "a", 1);
	if (an)
		mpw_double(out, (double)asum / (double)an);
	else
		mpw_nil(out);
	mpw_str(out, "amax", 4);
	if (amax >= 0)
		mpw_int(out, amax);
	else
		mpw_nil(out);
	mpw_str(out, "amin", 4);
	if (amin >= 0)
		mpw_int(out, amin);
	else
		mpw_nil(out);
	/* f: earliest (t, bytes) */
	val *vs = calloc(n + 1, sizeof *vs);
	for (size_t i = 0; i < n; i++) {
		snprintf(vs[i].s, sizeof vs[i].s, "i%d", e[i].item);
		vs[i].t = e[i].t;
	}
	qsort(vs, n, sizeof *vs, val_cmp_desc);
	mpw_str(out, "f", 1);
	put_s(out, vs[n - 1].s);
	/* lt: latest brand in 15m */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		vs[k].t = e[i].t;
		snprintf(vs[k].s, sizeof vs[k].s, "%s", brands[e[i].brand]);
		k++;
	}
	qsort(vs, k, sizeof *vs, val_cmp_desc);
	mpw_str(out, "lt", 2);
	put_s(out, vs[0].s); /* the newest is always in its window */
	/* l: last 5 views; lw: last 4 in 10m */
	for (int pass = 0; pass < 2; pass++) {
		k = 0;
		for (size_t i = 0; i < n; i++) {
			if (pass == 0 ? !e[i].view : !inwin(e[i].t, now, 10 * M, M))
				continue;
			snprintf(vs[k].s, sizeof vs[k].s, "i%d", e[i].item);
			vs[k].t = e[i].t;
			k++;
		}
		qsort(vs, k, sizeof *vs, val_cmp_desc);
		size_t lim = pass == 0 ? 5 : 4;
		if (k > lim)
			k = lim;
		mpw_str(out, pass == 0 ? "l" : "lw", pass == 0 ? 1 : 2);
		mpw_array(out, (uint32_t)k);
		for (size_t i = 0; i < k; i++)
			put_s(out, vs[i].s);
	}
	free(vs);
	/* tk (top 3 brands in 40m by 10m), tka (top 2 overall) */
	for (int pass = 0; pass < 2; pass++) {
		cnt cs[6];
		for (int b = 0; b < 6; b++) {
			cs[b].v = brands[b];
			cs[b].n = 0;
		}
		for (size_t i = 0; i < n; i++)
			if (pass == 1 || inwin(e[i].t, now, 40 * M, 10 * M))
				cs[e[i].brand].n++;
		qsort(cs, 6, sizeof cs[0], cnt_cmp);
		int lim = pass == 0 ? 3 : 2, m = 0;
		while (m < lim && cs[m].n)
			m++;
		mpw_str(out, pass == 0 ? "tk" : "tka", pass == 0 ? 2 : 3);
		mpw_array(out, (uint32_t)m);
		for (int i = 0; i < m; i++) {
			mpw_array(out, 2);
			mpw_str(out, cs[i].v, strlen(cs[i].v));
			mpw_int(out, cs[i].n);
		}
	}
	/* d, dw */
	int seen[40] = {0}, seenw[40] = {0};
	for (size_t i = 0; i < n; i++) {
		seen[e[i].item] = 1;
		if (inwin(e[i].t, now, 25 * M, 5 * M))
			seenw[e[i].item] = 1;
	}
	int64_t d = 0, dw = 0;
	for (int i = 0; i < 40; i++) {
		d += seen[i];
		dw += seenw[i];
	}
	mpw_str(out, "d", 1);
	mpw_int(out, d);
	mpw_str(out, "dw", 2);
	mpw_int(out, dw);
}

static void
test_property(void)
{
	feat_spec *s = spec(prop_file);
	if (!s) {
		ok(0, "property: spec");
		return;
	}
	int bad = 0, bad_order = 0, bad_state = 0;
	static ev e[2000], sh[2000];
	for (int round = 0; round < 60 && bad + bad_order + bad_state < 3; round++) {
		size_t n = 1 + rnd() % (round < 30 ? 60 : 1500);
		int64_t hours = (int64_t)(1 + rnd() % 3);
		int64_t span = hours * 3600000 / (int64_t)(1 + rnd() % 8);
		gen(e, n, span);
		feat_state *st = feat_state_new(s);
		run_events(s, st, e, n);
		char got[65536];
		snprintf(got, sizeof got, "%s", values(s, st));
		fp_buf b = FP_BUF_INIT, j = FP_BUF_INIT;
		brute(e, n, &b);
		mp_to_json(b.p, b.len, &j);
		fp_buf_addc(&j, 0);
		if (strcmp(got, (char *)j.p)) {
			if (!bad++)
				printf("# round %d, %zu events:\n#   got:  %s\n#   want: %s\n", round, n, got,
				       (char *)j.p);
		}
		/* the same events shuffled, half of them through an encoded state */
		memcpy(sh, e, n * sizeof *e);
		shuffle(sh, n);
		feat_state *a = feat_state_new(s), *c2 = NULL;
		run_events(s, a, sh, n / 2);
		fp_buf enc = FP_BUF_INIT;
		char err[256];
		size_t changed = 99;
		if (feat_state_encode(s, a, &enc) < 0 ||
		    feat_state_decode(s, enc.p, enc.len, &c2, &changed, err, sizeof err) < 0 ||
		    changed != 0) {
			if (!bad_state++)
				printf("# round %d: state round trip failed: %s\n", round, err);
		} else {
			run_events(s, c2, sh + n / 2, n - n / 2);
			if (strcmp(got, values(s, c2)) && !bad_order++)
				printf("# round %d shuffled:\n#   got:  %s\n#   want: %s\n", round,
				       values(s, c2), got);
		}
		fp_buf_release(&enc);
		feat_state_free(a);
		feat_state_free(c2);
		feat_state_free(st);
		fp_buf_release(&b);
		fp_buf_release(&j);
	}
	ok(!bad, "property: every feature equals a brute-force recount (60 random runs)");
	ok(!bad_order, "property: shuffled arrival gives the same final values");
	ok(!bad_state, "property: encode/decode half way, continue: same values");
	feat_spec_free(s);
}

/* ---- shortcuts of feat_apply, checked against the general path ------------- */

/* where clauses of the form NAME == "STRING" are decided from the field
 * read_fields() already found; every other one goes to expr_match().  Each
 * where below must give, on every record, what expr_match() says. */
static const char *const where_texts[] = {
	"action == \"view\"",      /* shortcut */
	"action==\"view\"",        /* shortcut, another entry of the same field */
	"action == \"vie\"",       /* shortcut: a prefix must not match */
	"action == \"\"",          /* shortcut: the empty string */
	"x-y == \"a b#c\"",        /* shortcut: '-' in the name, '#' in the string */
	"price == \"10\"",         /* shortcut on a field sum() also reads */
	"@kind == \"view\"",       /* shortcut on an @ name */
	"action == \"view\" or action == \"x\"",
	"\"action\" == \"view\"",  /* a quoted name: general path */
	"action == \"vi\\u0065w\"", /* an escape: general path */
	"action != \"view\"",
	"exists == \"view\"",      /* a keyword: general path */
	"action.k == \"view\"",    /* a nested path */
	"\"view\" == action",
};
#define NWHERE (sizeof where_texts / sizeof where_texts[0])
static const int where_fast[NWHERE] = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};

/* msgpack records: the action field in every encoding and type that matters */
static size_t
where_record(int i, uint8_t *out)
{
	static const uint8_t head[] = {0xa3, '@', 't', 's', 0x01};
	fp_buf b = FP_BUF_INIT;
	int n = 3;
	mpw_map(&b, (uint32_t)n);
	fp_buf_add(&b, head, sizeof head);
	mpw_str(&b, "price", 5);
	if (i % 3 == 0)
		mpw_str(&b, "10", 2);
	else
		mpw_int(&b, 10);
	mpw_str(&b, i % 2 ? "x-y" : "@kind", i % 2 ? 3 : 5);
	switch (i / 3 % 4) {
	case 0: mpw_str(&b, "a b#c", 5); break;
	case 1: mpw_str(&b, "view", 4); break;
	case 2: mpw_bin(&b, "a b#c", 5); break;
	default: mpw_nil(&b); break;
	}
	b.p[0] = 0x84; /* four fields with action, three without */
	static const uint8_t k[] = {0xa6, 'a', 'c', 't', 'i', 'o', 'n'};
	switch (i) {
	case 0: mpw_str(&b, "action", 6), mpw_str(&b, "view", 4); break;
	case 1: fp_buf_add(&b, k, 7), fp_buf_add(&b, "\xd9\x04view", 6); break;     /* str8 */
	case 2: fp_buf_add(&b, k, 7), fp_buf_add(&b, "\xda\x00\x04view", 7); break; /* str16 */
	case 3: fp_buf_add(&b, k, 7), fp_buf_add(&b, "\xdb\x00\x00\x00\x04view", 9); break;
	case 4: mpw_str(&b, "action", 6), mpw_bin(&b, "view", 4); break;
	case 5: mpw_str(&b, "action", 6), mpw_str(&b, "views", 5); break;
	case 6: mpw_str(&b, "action", 6), mpw_str(&b, "vie", 3); break;
	case 7: mpw_str(&b, "action", 6), mpw_str(&b, "", 0); break;
	case 8: mpw_str(&b, "action", 6), mpw_bin(&b, "", 0); break;
	case 9: mpw_str(&b, "action", 6), mpw_nil(&b); break;
	case 10: mpw_str(&b, "action", 6), mpw_int(&b, 4); break;
	case 11: mpw_str(&b, "action", 6), mpw_bool(&b, 1); break;
	case 12: mpw_str(&b, "action", 6), mpw_array(&b, 1), mpw_str(&b, "view", 4); break;
	case 13: mpw_str(&b, "action", 6), mpw_map(&b, 1), mpw_str(&b, "k", 1), mpw_str(&b, "view", 4); break;
	case 14: mpw_str(&b, "action", 6), mpw_str(&b, "VIEW", 4); break;
	case 15: fp_buf_add(&b, "\xd9\x06" "action", 8), mpw_str(&b, "view", 4); break; /* str8 key */
	default: b.p[0] = 0x83; break; /* no action */
	}
	memcpy(out, b.p, b.len);
	size_t n2 = b.len;
	fp_buf_release(&b);
	return n2;
}

static void
test_where_shortcut(void)
{
	fp_buf f = FP_BUF_INIT;
	const char *head = "key u\nsp = sum(price) where action == \"view\"\n";
	fp_buf_add(&f, head, strlen(head));
	for (size_t w = 0; w < NWHERE; w++) {
		char line[128];
		int n = snprintf(line, sizeof line, "c%zu = count() where %s\n", w, where_texts[w]);
		fp_buf_add(&f, line, (size_t)n);
	}
	fp_buf_addc(&f, 0);
	feat_spec *s = spec((const char *)f.p);
	fp_buf_release(&f);
	if (!s) {
		ok(0, "where shortcut: spec");
		return;
	}
	/* feature i + 1 is where_texts[i]; the sum shares where 0 */
	int taken = 1;
	for (size_t w = 0; w < NWHERE; w++) {
		const feat_where *fw = &s->wheres[s->f[w + 1].widx];
		if ((fw->fidx >= 0) != where_fast[w]) {
			printf("# '%s': shortcut %s\n", where_texts[w], fw->fidx >= 0 ? "taken" : "not taken");
			taken = 0;
		}
	}
	ok(taken, "where shortcut: taken exactly for NAME == \"STRING\"");
	ok(s->nwheres == NWHERE, "where shortcut: one entry per distinct where text (%zu)", s->nwheres);
	int same = 1, nrec = 0, matched = 0;
	for (int i = 0; i < 18; i++) {
		uint8_t r[256];
		size_t rl = where_record(i, r);
		char why[128];
		mp_limits lim = {64, 1000};
		if (mp_check_frame(r, rl, &lim, why, sizeof why) < 0) {
			printf("# record %d is no frame: %s\n", i, why);
			same = 0;
			continue;
		}
		feat_state *st = feat_state_new(s);
		if (feat_apply(s, st, r, rl, NULL) != 0) {
			printf("# record %d not applied\n", i);
			same = 0;
		}
		/* the values: {"sp": v, "c0": 0|1, ...} */
		const char *got = values(s, st);
		for (size_t w = 0; w < NWHERE; w++) {
			expr_error e;
			expr *x = expr_parse(where_texts[w], strlen(where_texts[w]), NULL, &e);
			int want = x && expr_match(x, r, rl);
			expr_free(x);
			char key[32];
			snprintf(key, sizeof key, "\"c%zu\":%d", w, want);
			matched += want;
			if (!strstr(got, key)) {
				printf("# record %d, '%s': want %d, got %s\n", i, where_texts[w], want, got);
				same = 0;
			}
		}
		nrec++;
		feat_state_free(st);
	}
	ok(same && nrec == 18, "where shortcut: every where equals expr_match() on %d records", nrec);
	ok(matched > 10, "where shortcut: the records match some wheres (%d pairs)", matched);
	feat_spec_free(s);
}

/* ---- state encoding ---------------------------------------------------------- */

static void
test_state(void)
{
	feat_spec *s = spec("key u\nc = count() over 1h\nl = last(x, 2)\nd = distinct(x)\n"
	                    "t = topk(x, 2) over 1d\n");
	feat_spec *s2 = spec("key u\nl = last(x, 2)\nc = count() over 2h\nnew = sum(x)\n"
	                     "d = distinct(x)\n");
	if (!s || !s2) {
		ok(0, "state: specs");
		return;
	}
	feat_state *st = feat_state_new(s), *o = NULL;
	fp_buf b = FP_BUF_INIT;
	char err[256] = "";
	size_t changed = 0;
	ok(feat_state_encode(s, st, &b) == 0 &&
	   feat_state_decode(s, b.p, b.len, &o, &changed, err, sizeof err) == 0 && changed == 0 &&
	   !strcmp(values(s, o), "{\"c\":0,\"l\":[],\"d\":0,\"t\":[]}"), "state: empty round trip");
	feat_state_free(o);
	apply(s, st, "{\"@ts\":5000,\"x\":\"a\"}", NULL);
	apply(s, st, "{\"@ts\":6000,\"x\":2.5}", NULL);
	b.len = 0;
	feat_state_encode(s, st, &b);
	char want[512];
	snprintf(want, sizeof want, "%s", values(s, st));
	ok(feat_state_decode(s, b.p, b.len, &o, NULL, err, sizeof err) == 0 &&
	   !strcmp(values(s, o), want) && feat_state_now(o) == 6000, "state: round trip");
	feat_state_free(o);
	o = NULL;
	ok(feat_state_decode(s2, b.p, b.len, &o, &changed, err, sizeof err) == 0 && changed == 2 &&
	   !strcmp(values(s2, o), "{\"l\":[2.5,\"a\"],\"c\":0,\"new\":0,\"d\":2}"),
	   "state: a changed file keeps unchanged features, starts changed and new ones empty");
	feat_state_free(o);
	for (size_t cut = 0; cut < b.len; cut++) {
		o = (feat_state *)1;
		if (feat_state_decode(s, b.p, cut, &o, NULL, err, sizeof err) == 0 || o) {
			ok(0, "state: truncated at %zu rejected", cut);
			break;
		}
		if (cut == b.len - 1)
			ok(1, "state: every truncation rejected (%s)", err);
	}
	static const char *junk[] = {"[2,0,[]]", "[1,0,[[\"c\"]]]", "{\"a\":1}", "[1,\"x\",[]]",
	                             "[1,0,[]]   "};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		fp_buf j = FP_BUF_INIT;
		json_error je;
		json_to_mp(junk[i], strlen(junk[i]), &j, 8, &je);
		if (i == 4)
			fp_buf_addc(&j, 0xc0);
		err[0] = 0;
		ok(feat_state_decode(s, j.p, j.len, &o, NULL, err, sizeof err) < 0 &&
		   !strncmp(err, "@state: ", 8), "state: malformed %s rejected (%s)", junk[i], err);
		fp_buf_release(&j);
	}
	/* corrupt one feature's data: a bucket list that is not oldest first */
	fp_buf j = FP_BUF_INIT;
	feat_state *x = feat_state_new(s);
	apply(s, x, "{\"@ts\":100000,\"x\":1}", NULL);
	apply(s, x, "{\"@ts\":200000,\"x\":1}", NULL);
	feat_state_encode(s, x, &j);
	fp_buf js = FP_BUF_INIT;
	mp_to_json(j.p, j.len, &js);
	fp_buf_addc(&js, 0);
	char *bad = strdup((char *)js.p), *p1 = strstr(bad, "[\"c\",");
	/* swap the two bucket numbers 1 and 3 (100000/60000, 200000/60000) */
	char *q = p1 ? strstr(p1, "[1,1,0,3,1,0]") : NULL;
	if (q)
		memcpy(q, "[3,1,0,1,1,0]", 13);
	fp_buf j2 = FP_BUF_INIT;
	json_error je;
	json_to_mp(bad, strlen(bad), &j2, 16, &je);
	ok(q && feat_state_decode(s, j2.p, j2.len, &o, NULL, err, sizeof err) < 0 &&
	   !strcmp(err, "@state: bad data of feature 'c'"), "state: bad bucket order names the feature");
	free(bad);
	fp_buf_release(&j);
	fp_buf_release(&j2);
	fp_buf_release(&js);
	feat_state_free(x);
	fp_buf_release(&b);
	feat_state_free(st);
	feat_spec_free(s);
	feat_spec_free(s2);
}

/* ---- robustness: mutated states and files ------------------------------- */

static void
test_mutations(void)
{
	feat_spec *s = spec(prop_file);
	if (!s) {
		ok(0, "mutations: spec");
		return;
	}
	static ev e[300];
	gen(e, 300, 3600000);
	feat_state *st = feat_state_new(s);
	run_events(s, st, e, 300);
	fp_buf enc = FP_BUF_INIT, m = FP_BUF_INIT, out = FP_BUF_INIT;
	feat_state_encode(s, st, &enc);
	int accepted = 0, crashed_values = 0;
	for (int round = 0; round < 3000; round++) {
		m.len = 0;
		fp_buf_add(&m, enc.p, enc.len);
		int flips = 1 + (int)(rnd() % 4);
		for (int k = 0; k < flips; k++)
			m.p[rnd() % m.len] ^= (uint8_t)(1u << (rnd() % 8));
		feat_state *x = NULL;
		char err[256];
		if (feat_state_decode(s, m.p, m.len, &x, NULL, err, sizeof err) == 0) {
			accepted++;
			run_events(s, x, e, 20); /* still usable */
			out.len = 0;
			if (feat_state_encode(s, x, &out) < 0 || !strcmp(values(s, x), "(emit failed)"))
				crashed_values++;
			feat_state_free(x);
		} else if (x || strncmp(err, "@state: ", 8)) {
			crashed_values++;
		}
	}
	ok(!crashed_values, "mutations: 3000 corrupted states rejected with a message or usable "
	   "(%d accepted)", accepted);
	feat_state_free(st);

	/* a feature file with random bytes changed: parses or names line:col */
	size_t fl = strlen(prop_file);
	char *buf = malloc(fl + 1);
	int bad_msg = 0;
	for (int round = 0; round < 2000; round++) {
		memcpy(buf, prop_file, fl + 1);
		buf[rnd() % fl] = (char)(rnd() % 128);
		char err[256] = "";
		feat_spec *x = feat_spec_parse(buf, fl, "m.fp", err, sizeof err);
		if (!x && strncmp(err, "m.fp:", 5))
			bad_msg++;
		feat_spec_free(x);
	}
	ok(!bad_msg, "mutations: 2000 corrupted feature files parse or give file:line:col");
	free(buf);
	fp_buf_release(&enc);
	fp_buf_release(&m);
	fp_buf_release(&out);
	feat_spec_free(s);
}

/* ---- distinct sketch ----------------------------------------------------------- */

static void
test_distinct(void)
{
	feat_spec *s = spec("key u\nd = distinct(x)\n");
	if (!s) {
		ok(0, "distinct: spec");
		return;
	}
	static const int ns[] = {FEAT_DISTINCT_EXACT, 1000, 5000, 20000, 50000, 100000, 300000, 1000000};
	double worst = 0;
	int exact_ok = 0;
	for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
		feat_state *st = feat_state_new(s);
		fp_buf b = FP_BUF_INIT;
		for (int i = 0; i < ns[k]; i++) {
			b.len = 0;
			mpw_map(&b, 2);
			mpw_str(&b, "@ts", 3);
			mpw_int(&b, i);
			mpw_str(&b, "x", 1);
			mpw_int(&b, (int64_t)(i * 2654435761u % 4000000007u));
			feat_apply(s, st, b.p, b.len, NULL);
			if (i % 3 == 0) /* repeats change nothing */
				feat_apply(s, st, b.p, b.len, NULL);
		}
		const char *v = values(s, st);
		long got = strtol(v + 5, NULL, 10);
		double err = fabs((double)got - ns[k]) / ns[k];
		if (k == 0)
			exact_ok = got == ns[k];
		if (err > worst)
			worst = err;
		printf("# distinct of %d values: %ld (%.2f%%)\n", ns[k], got, err * 100);
		fp_buf_release(&b);
		feat_state_free(st);
	}
	ok(exact_ok, "distinct: exact up to %d values", FEAT_DISTINCT_EXACT);
	ok(worst <= 0.02, "distinct: sketch within 2%% up to 1M values (worst %.2f%%)", worst * 100);
	feat_spec_free(s);
}

static void
test_distinct_window(void)
{
	feat_spec *s = spec("key u\nd = distinct(x) over 100s by 1s\n");
	if (!s) {
		ok(0, "distinct window: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	static const long spans[] = {50000, 120000, 300000, 600000};
	int64_t tmax = 0;
	long done = 0;
	double worst = 0;
	int bad_state = 0;
	fp_buf b = FP_BUF_INIT;
	static uint8_t seen[600000];
	for (size_t k = 0; k < sizeof spans / sizeof spans[0]; k++) {
		/* events done..spans[k]-1: event i at k * 1000s + (i * 7919) % 400s,
		 * in scattered order, value i % 200000; each step moves past the
		 * window, so the exact set restarts and turns into a sketch again */
		for (long i = done; i < spans[k]; i++) {
			int64_t t = (int64_t)k * 1000000 + (i * 7919) % 400000;
			int64_t x = i % 200000;
			b.len = 0;
			mpw_map(&b, 2);
			mpw_str(&b, "@ts", 3);
			mpw_int(&b, t);
			mpw_str(&b, "x", 1);
			mpw_int(&b, x);
			feat_apply(s, st, b.p, b.len, NULL);
			if (t > tmax)
				tmax = t;
		}
		done = spans[k];
		/* brute force: distinct x of the events in the last 100 buckets */
		memset(seen, 0, sizeof seen);
		long want = 0;
		for (long i = 0; i < done; i++) {
			size_t kk = 0;
			while (i >= spans[kk])
				kk++;
			int64_t t = (int64_t)kk * 1000000 + (i * 7919) % 400000;
			if (tmax / 1000 - t / 1000 < 100 && !seen[i % 200000]++)
				want++;
		}
		const char *v = values(s, st);
		long got = strtol(v + 5, NULL, 10);
		double err = want ? fabs((double)got - want) / want : (got != 0);
		if (err > worst)
			worst = err;
		printf("# distinct over 100s: %ld values in the window, estimate %ld (%.2f%%)\n", want, got,
		       err * 100);
		/* the state survives a round trip */
		fp_buf enc = FP_BUF_INIT;
		feat_state *o = NULL;
		char err2[256];
		char before[64];
		snprintf(before, sizeof before, "%s", v);
		if (feat_state_encode(s, st, &enc) < 0 ||
		    feat_state_decode(s, enc.p, enc.len, &o, NULL, err2, sizeof err2) < 0 ||
		    strcmp(values(s, o), before))
			bad_state++;
		feat_state_free(o);
		fp_buf_release(&enc);
	}
	ok(worst <= 0.02, "distinct over a window: exact, then a sliding sketch within 2%% "
	   "(worst %.2f%%)", worst * 100);
	ok(!bad_state, "distinct over a window: the sketch survives encode/decode");
	fp_buf_release(&b);
	feat_state_free(st);
	feat_spec_free(s);
}

/* ---- memory ---------------------------------------------------------------------- */

static void
test_memory(void)
{
	feat_spec *s = spec("key u\n"
	                    "views_1h = count() where action == \"view\" over 1h\n"
	                    "views_1d = count() where action == \"view\" over 1d\n"
	                    "orders_7d = count() where action == \"order\" over 7d\n"
	                    "spend = sum(price)\n"
	                    "price_avg_7d = avg(price) over 7d\n"
	                    "price_max = max(price)\n"
	                    "recent = last(item, 20)\n"
	                    "top_brands = topk(brand, 5)\n"
	                    "uniq_items = distinct(item)\n"
	                    "city = latest(city)\n");
	if (!s) {
		ok(0, "memory: spec");
		return;
	}
	feat_state *st = feat_state_new(s);
	char j[256];
	for (int i = 0; i < 10; i++) {
		snprintf(j, sizeof j, "{\"@ts\":%d,\"action\":\"%s\",\"price\":%d,\"item\":\"car%d\","
		         "\"brand\":\"b%d\",\"city\":\"c%d\"}", 1700000000 + i * 1234567,
		         i % 3 ? "view" : "order", i * 7, i * 13, i % 4, i % 3);
		apply(s, st, j, NULL);
	}
	size_t m = feat_state_memory(st);
	printf("# memory of a key with 10 events, benchmark file: %zu bytes\n", m);
	ok(m <= 2048, "memory: benchmark file, 10 events, <= 2 KiB (%zu)", m);
	feat_state_free(st);
	feat_spec_free(s);
}

/* ---- the man page's example --------------------------------------------- */

/* The n-th ".Bd -literal" block after ".Sh EXAMPLES" of man/fp-features.5
 * (make check runs from the top directory); static buffer. */
static const char *
man_block(const char *man, int nth)
{
	static char out[4096];
	const char *p = strstr(man, ".Sh EXAMPLES");
	for (int i = 0; p && i <= nth; i++) {
		p = strstr(p, ".Bd -literal");
		if (p)
			p = strchr(p, '\n') + 1;
	}
	const char *e = p ? strstr(p, ".Ed\n") : NULL;
	if (!e || (size_t)(e - p) >= sizeof out)
		return NULL;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
	return out;
}

static void
test_man_example(void)
{
	FILE *f = fopen("man/fp-features.5", "r");
	static char man[65536];
	size_t n = f ? fread(man, 1, sizeof man - 1, f) : 0;
	if (f)
		fclose(f);
	man[n] = 0;
	const char *file = man_block(man, 0);
	feat_spec *s = file ? spec(file) : NULL;
	ok(s != NULL, "man page: the example feature file parses");
	if (!s)
		return;
	char record[512], want[1024];
	const char *b = man_block(man, 2);
	snprintf(record, sizeof record, "%s", b ? b : "{}");
	b = man_block(man, 3);
	snprintf(want, sizeof want, "{%s}", b ? b : "");
	for (char *c = record; *c; c++)
		if (*c == '\n')
			*c = ' ';
	char *w = want;
	for (char *c = want; *c; c++)
		if (*c != '\n')
			*w++ = *c;
	*w = 0;
	feat_state *st = feat_state_new(s);
	apply(s, st, record, NULL);
	is_str(values(s, st), want, "man page: the example's values");
	feat_state_free(st);
	feat_spec_free(s);
}

int
main(void)
{
	test_man_example();
	test_parse();
	test_aggregates();
	test_windows();
	test_topk_capacity();
	test_topk_totals();
	test_emit_paths();
	test_val_cmp();
	test_canon_shortcut();
	test_int_keys();
	test_field_chains();
	test_decode_ints();
	test_fields_and_keys();
	test_state();
	test_property();
	test_where_shortcut();
	test_mutations();
	test_distinct();
	test_distinct_window();
	test_memory();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
