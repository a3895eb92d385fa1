/* test_expr.c - lib/expr: paths, `where` parsing and evaluation (TAP). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../lib/expr.h"
#include "../../lib/json.h"
#include "../../lib/mpraw.h"

static int ntest, nfail;

static void __attribute__((format(printf, 2, 0)))
ok(int cond, const char *fmt, const char *a, const char *b)
{
	ntest++;
	if (!cond)
		nfail++;
	char name[512];
	snprintf(name, sizeof name, fmt, a, b);
	for (char *c = name; *c; c++) /* one line per test, whatever the source holds */
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
}

/* A checked msgpack map from JSON; exits on a broken fixture. */
static fp_buf
rec(const char *json)
{
	fp_buf b = FP_BUF_INIT;
	json_error je;
	char es[200];
	if (json_to_mp(json, strlen(json), &b, 64, &je) < 0 ||
	    mp_check_frame(b.p, b.len, NULL, es, sizeof es) < 0) {
		printf("Bail out! bad fixture %s\n", json);
		exit(2);
	}
	return b;
}

static const char R[] =
	"{\"a\":1,\"f\":1.5,\"s\":\"view\",\"t\":true,\"fl\":false,\"n\":null,"
	"\"user\":{\"id\":42,\"name\":\"bob\",\"tags\":[\"x\",\"y\"]},\"ids\":[10,20,30],"
	"\"big\":18446744073709551615,\"neg\":-5,\"esc\":\"a\\\"b\\\\c\\n\\u00e9\","
	"\"@ts\":1700000000000,\"and\":7,\"user name\":\"al\",\"bin\":{\"@bin\":\"view\"},"
	"\"arr\":[[1,2],[3]],\"nan\":{\"@float\":\"NaN\"},\"exists\":1,\"em\":\"\\ud83d\\ude00\","
	"\"min\":-9223372036854775808,\"i53\":9007199254740993}";

static const struct { const char *cond; int want; } cases[] = {
	/* precedence and parentheses */
	{"a == 1 or a == 2 and a == 3", 1},
	{"(a == 1 or a == 2) and a == 3", 0},
	{"a == 3 and a == 2 or a == 1", 1},
	{"a == 3 and (a == 2 or a == 1)", 0},
	{"not a == 2", 1},
	{"not a == 1 or a == 1", 1},
	{"not (a == 1 or a == 2)", 0},
	{"not not a == 1", 1},
	{"a == 2 or not a == 2 and t", 1},
	{"((((a == 1))))", 1},
	{"  a==1\n and\ts==\"view\"  ", 1},
	/* every operator, ints */
	{"a == 1", 1}, {"a != 1", 0}, {"a < 2", 1}, {"a < 1", 0}, {"a <= 1", 1}, {"a <= 0", 0},
	{"a > 0", 1}, {"a > 1", 0}, {"a >= 1", 1}, {"a >= 2", 0}, {"a != 2", 1},
	{"2 > a", 1}, {"1 <= a", 1}, {"0 >= a", 0}, {"neg < 0", 1}, {"neg == -5", 1},
	/* int/float mixing */
	{"f > 1", 1}, {"f < 2", 1}, {"f == 1.5", 1}, {"f >= 1.5", 1}, {"f != 1.5", 0},
	{"a == 1.0", 1}, {"a < 1.5", 1}, {"a > 0.5", 1}, {"a == 1.0000001", 0}, {"1.5 == f", 1},
	{"neg == -5.0", 1}, {"neg < -4.5", 1}, {"a == 1e0", 1}, {"f == 15e-1", 1},
	{"big == 18446744073709551615", 1}, {"big > 9223372036854775807", 1}, {"big > -1", 1},
	{"big < 1e30", 1}, {"big > 1e30", 0}, {"big > 1e19", 1}, {"big >= 18446744073709551615.0", 0},
	{"min == -9223372036854775808", 1}, {"min < -9.2e18", 1}, {"min > -1e19", 1},
	{"i53 > 9007199254740992.0", 1}, {"i53 != 9007199254740992.0", 1},
	{"nan == nan", 0}, {"nan != 1", 0}, {"not nan == 1", 0}, {"nan < 1.0", 0},
	/* strings, escapes, bin */
	{"s == \"view\"", 1}, {"s != \"view\"", 0}, {"s < \"viex\"", 1}, {"s > \"vie\"", 1},
	{"s < \"view2\"", 1}, {"s >= \"view\"", 1}, {"\"view\" == s", 1}, {"\"vie\" < s", 1},
	{"s == \"View\"", 0}, {"s == \"\"", 0},
	{"esc == \"a\\\"b\\\\c\\n\\u00e9\"", 1}, {"esc == \"a\\\"b\\\\c\\n\xc3\xa9\"", 1},
	{"esc == \"a\\\"b\\\\c\\n\\u00E9\"", 1}, {"em == \"\\ud83d\\ude00\"", 1},
	{"s == \"\\u0076iew\"", 1}, {"s == \"vi\\/ew\"", 0},
	{"bin == \"view\"", 1}, {"bin == s", 1},
	/* nested paths and array indexes */
	{"user.id == 42", 1}, {"user.name == \"bob\"", 1}, {"user.tags[1] == \"y\"", 1},
	{"user.tags[0] == \"x\"", 1}, {"ids[0] == 10", 1}, {"ids[2] == 30", 1},
	{"ids[3] == 30", 0}, {"not ids[3] == 30", 0}, {"arr[0][1] == 2", 1}, {"arr[1][0] == 3", 1},
	{"arr[1][1] == 3", 0}, {"user.id.x == 1", 0}, {"ids.x == 1", 0}, {"a[0] == 1", 0},
	{"@ts > 1600000000000", 1},
	/* quoted names */
	{"\"user name\" == \"al\"", 1}, {"\"and\" == 7", 1}, {"user.\"name\" == \"bob\"", 1},
	{"\"user\".\"id\" == 42", 1}, {"\"user\".tags[1] == \"y\"", 1}, {"exists(\"user name\")", 1},
	{"\"user name\" in [\"al\", \"x\"]", 1}, {"\"t\"", 1}, {"\"fl\"", 0}, {"exists == 1", 1},
	/* path against path */
	{"a == neg", 0}, {"a > neg", 1}, {"user.id == user.id", 1}, {"s == user.name", 0},
	{"s == bin", 1}, {"a == f", 0}, {"a < f", 1}, {"a == missing", 0}, {"a != missing", 0},
	/* in / not in */
	{"a in [1, 2]", 1}, {"a in [2, 3]", 0}, {"a not in [2, 3]", 1}, {"a not in [1]", 0},
	{"s in [\"x\", \"view\"]", 1}, {"a in [1.0]", 1}, {"a in []", 0}, {"a not in []", 1},
	{"missing in [1]", 0}, {"missing not in [1]", 0}, {"not missing in [1]", 0},
	{"a in [\"x\"]", 0}, {"a not in [\"x\"]", 0}, {"a not in [2, \"x\"]", 0},
	{"a in [1, \"x\"]", 1}, {"n in [null]", 1}, {"a in [null, 1]", 1}, {"a not in [null]", 1},
	{"a  not   in[2]", 1}, {"user.tags[1] in [\"y\"]", 1},
	/* missing fields: three-valued logic */
	{"missing == 1", 0}, {"missing != 1", 0}, {"not missing == 1", 0},
	{"missing == 1 or a == 1", 1}, {"a == 1 or missing == 1", 1},
	{"missing == 1 and a == 1", 0}, {"not (missing == 1 and a == 2)", 1},
	{"not (missing == 1 and a == 1)", 0}, {"not (missing == 1 or a == 2)", 0},
	{"not (missing == 1 or a == 1)", 0}, {"missing.x.y[3] == 1", 0},
	/* bare paths */
	{"t", 1}, {"fl", 0}, {"not fl", 1}, {"not t", 0}, {"a", 0}, {"not a", 0},
	{"missing", 0}, {"not missing", 0}, {"user.tags", 0}, {"t and a == 1", 1},
	/* exists() */
	{"exists(a)", 1}, {"exists(missing)", 0}, {"not exists(missing)", 1}, {"exists(n)", 1},
	{"exists(user.tags[1])", 1}, {"exists(user.tags[2])", 0}, {"exists( a )", 1},
	{"exists (a)", 1}, {"not exists(a)", 0}, {"exists(missing) or missing == 1", 0},
	{"not exists(missing) or missing == 1", 1},
	/* type mismatch */
	{"s == 1", 0}, {"s != 1", 0}, {"not s == 1", 0}, {"a == \"1\"", 0}, {"a != \"1\"", 0},
	{"t == 1", 0}, {"t == true", 1}, {"fl == false", 1}, {"t != false", 1}, {"t < true", 0},
	{"not t < true", 0}, {"user == 1", 0}, {"not user == 1", 0}, {"ids != 1", 0},
	{"s < 5", 0}, {"not s < 5", 0},
	/* null */
	{"n == null", 1}, {"n != null", 0}, {"a == null", 0}, {"a != null", 1},
	{"missing == null", 0}, {"missing != null", 0}, {"n < 1", 0}, {"not n < 1", 0},
	{"user != null", 1}, {"null == n", 1},
};

static int
match(const char *cond, const fp_buf *r, expr_error *err)
{
	size_t used;
	expr *e = expr_parse(cond, strlen(cond), &used, err);
	if (!e)
		return -1;
	int m = expr_match(e, r->p, r->len);
	/* the whole condition must be consumed (trailing white space aside) */
	for (size_t i = used; i < strlen(cond); i++)
		if (!strchr(" \t\n", cond[i]))
			m = -2;
	expr_free(e);
	return m;
}

static void
test_cases(void)
{
	fp_buf r = rec(R);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		expr_error err = {0, ""};
		int m = match(cases[i].cond, &r, &err);
		char why[200];
		if (m == -1)
			snprintf(why, sizeof why, " (parse error col %zu: %s)", err.column, err.msg);
		else if (m == -2)
			snprintf(why, sizeof why, " (not all consumed)");
		else
			snprintf(why, sizeof why, "%s", m == cases[i].want ? "" : " (wrong result)");
		ok(m == cases[i].want, "match %s%s", cases[i].cond, why);
	}
	fp_buf_release(&r);
}

static const struct { const char *src; size_t col; const char *msg; } errors[] = {
	{"", 1, "expected a condition"},
	{"   ", 4, "expected a condition"},
	{"a ==", 5, "after '=='"},
	{"a >= ", 6, "after '>='"},
	{"a == 1 and", 11, "expected a condition"},
	{"a == 1 or or", 11, "found 'or'"},
	{"(a == 1", 8, "expected ')'"},
	{"(a == 1 over", 9, "found 'over'"},
	{"a = 1", 3, "'=' is not an operator"},
	{"a in [1, 2", 11, "expected ',' or ']'"},
	{"a in 1", 6, "expected '['"},
	{"a in [b]", 7, "expected a literal"},
	{"a not in (1)", 10, "expected '['"},
	{"1 == 2", 1, "needs a field"},
	{"\"x\" == \"y\" == 1", 1, ""}, /* parses "x" == "y"; see consumed tests */
	{"5", 1, "literal alone"},
	{"true and a", 1, "literal alone"},
	{"5 in [5]", 1, "left side of 'in'"},
	{"s == \"abc", 6, "unterminated string"},
	{"s == \"a\\qb\"", 8, "invalid escape"},
	{"s == \"a\\u12\"", 8, "\\u escape"},
	{"s == \"\\ud800\"", 7, "surrogate"},
	{"s == \"\\udc00x\"", 7, "surrogate"},
	{"s == \"a\tb\"", 8, "control byte"},
	{"a == 12abc", 6, "invalid number"},
	{"a == 1.x", 8, "expected a digit"},
	{"a == 1e", 8, "exponent"},
	{"a == -", 6, "invalid number"},
	{"a == 99999999999999999999", 6, "out of range"},
	{"a == -9999999999999999999", 6, "out of range"},
	{"a == 1e999", 6, "out of range"},
	{"user. == 1", 6, "after '.'"},
	{"ids[x] == 1", 5, "array index"},
	{"ids[1 == 1", 6, "expected ']'"},
	{"ids[99999999999] == 1", 5, "too large"},
	{"exists(a", 9, "expected ')'"},
	{"exists()", 8, "expected a field name"},
	{"and == 1", 1, "expected a condition"},
	{"not", 4, "expected a condition"},
	{"a in [1] or (b", 15, "expected ')'"},
	{"a == )", 6, "found ')'"},
	{"a == 1 and \x01", 12, "byte 0x01"},
};

static void
test_errors(void)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		expr_error err = {0, ""};
		size_t used = 12345;
		const char *s = errors[i].src;
		expr *e = expr_parse(s, strlen(s), &used, &err);
		if (!*errors[i].msg) { /* a case that must parse */
			ok(e != NULL, "parses %s%s", s, "");
			expr_free(e);
			continue;
		}
		char d[300];
		snprintf(d, sizeof d, " -> col %zu: %s", err.column, err.msg);
		ok(!e && err.column == errors[i].col && strstr(err.msg, errors[i].msg) && used == 12345,
		   "error %s%s", s, d);
		expr_free(e);
	}
	/* nesting is bounded */
	char deep[1000];
	size_t k = 0;
	for (int i = 0; i < 300; i++)
		deep[k++] = '(';
	deep[k++] = 't';
	for (int i = 0; i < 300; i++)
		deep[k++] = ')';
	expr_error err;
	expr *e = expr_parse(deep, k, NULL, &err);
	ok(!e && strstr(err.msg, "nested") && err.column == 101, "error %s%s", "300 parentheses", "");
	memset(deep, ' ', sizeof deep);
	for (int i = 0; i < 200; i++)
		memcpy(deep + 4 * i, "not ", 4);
	deep[800] = 't';
	e = expr_parse(deep, 801, NULL, &err);
	ok(!e && strstr(err.msg, "nested"), "error %s%s", "200 nots", "");
	/* 90 levels still fine */
	k = 0;
	for (int i = 0; i < 90; i++)
		deep[k++] = '(';
	deep[k++] = 't';
	for (int i = 0; i < 90; i++)
		deep[k++] = ')';
	e = expr_parse(deep, k, NULL, &err);
	ok(e != NULL, "parses %s%s", "90 parentheses", "");
	expr_free(e);
	/* the source need not be NUL-terminated: parse a prefix */
	e = expr_parse("a == 12345", 6, NULL, &err);
	fp_buf r = rec("{\"a\":1}");
	ok(e && expr_match(e, r.p, r.len), "prefix of %s%s", "a == 12345", " is a == 1");
	expr_free(e);
	fp_buf_release(&r);
}

static const struct { const char *src; size_t used; } consumed[] = {
	{"x == 1 over 1h by 5m", 6},
	{"a where b", 1},
	{"action == \"view\"  where", 16},
	{"exists(a) over 1h", 9},
	{"a in [1,2] over", 10},
	{"a not in [1] x", 12},
	{"(a == 1) by 5m", 8},
	{"a not b", 1},
	{"a == 1 order by", 6},
	{"a == 1 or b == 2 andy", 16},
	{"a == 1 and b == 2 ornot", 17},
	{"   a", 4},
	{"a == 1\n", 6},
	{"t over", 1},
	{"\"x\" == \"y\" == 1", 10},
	{"a == 1 ! b", 6},
	{"ids [0]", 3},
	{"not a over 1h", 5},
};

static void
test_consumed(void)
{
	for (size_t i = 0; i < sizeof consumed / sizeof consumed[0]; i++) {
		expr_error err = {0, ""};
		size_t used = 0;
		const char *s = consumed[i].src;
		expr *e = expr_parse(s, strlen(s), &used, &err);
		char d[300];
		snprintf(d, sizeof d, " -> %zu (%s)", used, e ? "" : err.msg);
		ok(e && used == consumed[i].used, "consumed %s%s", s, d);
		expr_free(e);
	}
}

static void
test_paths(void)
{
	fp_buf r = rec(R);
	expr_error err;
	size_t used;
	const uint8_t *v;
	size_t vl;
	int64_t iv;
	const char *sv;
	size_t sl;

	fp_path *p = fp_path_parse("user.id", 7, &used, &err);
	ok(p && used == 7 && !strcmp(fp_path_text(p), "user.id") && fp_path_get(p, r.p, r.len, &v, &vl) &&
	   mp_read_int(v, vl, &iv) == 0 && iv == 42 && vl == 1, "path %s%s", "user.id", "");
	fp_path_free(p);

	p = fp_path_parse("ids[1] rest", 11, &used, &err);
	ok(p && used == 6 && !strcmp(fp_path_text(p), "ids[1]") && fp_path_get(p, r.p, r.len, &v, &vl) &&
	   mp_read_int(v, vl, &iv) == 0 && iv == 20, "path %s%s", "ids[1] rest", "");
	fp_path_free(p);

	p = fp_path_parse("\"user name\"", 11, &used, &err);
	ok(p && used == 11 && fp_path_get(p, r.p, r.len, &v, &vl) && mp_read_str(v, vl, &sv, &sl) == 0 &&
	   sl == 2 && !memcmp(sv, "al", 2), "path %s%s", "\"user name\"", "");
	fp_path_free(p);

	p = fp_path_parse("user", 4, &used, &err);
	ok(p && fp_path_get(p, r.p, r.len, &v, &vl) && vl == mp_skip(v, r.len - (size_t)(v - r.p)) &&
	   v[0] == 0x83, "path %s%s", "user", " (whole map, exact length)");
	fp_path_free(p);

	p = fp_path_parse("arr[1][0]", 9, &used, &err);
	ok(p && fp_path_get(p, r.p, r.len, &v, &vl) && mp_read_int(v, vl, &iv) == 0 && iv == 3,
	   "path %s%s", "arr[1][0]", "");
	fp_path_free(p);

	static const char *const missing[] = {"nope", "user.nope", "ids[3]", "a.b", "a[0]", "user[0]",
	                                      "ids.x", "user.tags[9]"};
	for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
		p = fp_path_parse(missing[i], strlen(missing[i]), &used, &err);
		ok(p && !fp_path_get(p, r.p, r.len, &v, &vl), "path %s%s", missing[i], " missing");
		fp_path_free(p);
	}

	p = fp_path_parse("@src", 4, &used, &err);
	ok(p && used == 4, "path %s%s", "@src", " parses");
	fp_path_free(p);
	p = fp_path_parse("in", 2, &used, &err); /* keywords mean nothing here */
	ok(p && used == 2, "path %s%s", "in", " parses");
	fp_path_free(p);
	p = fp_path_parse("a-b_c.d", 7, &used, &err);
	ok(p && used == 7, "path %s%s", "a-b_c.d", " parses");
	fp_path_free(p);

	static const struct { const char *src; size_t col; } bad[] = {
		{"", 1}, {"a..b", 3}, {"[0]", 1}, {"a.\"x", 3}, {"a[", 3}, {"a[-1]", 3}, {" a", 1},
		{"1a", 1}, {"a.", 3},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err.column = 0;
		p = fp_path_parse(bad[i].src, strlen(bad[i].src), &used, &err);
		char d[200];
		snprintf(d, sizeof d, " -> col %zu: %s", err.column, err.msg);
		ok(!p && err.column == bad[i].col, "bad path '%s'%s", bad[i].src, d);
		fp_path_free(p);
	}
	fp_buf_release(&r);
}

/* Every prefix of some conditions either parses or fails with a column in
 * range (under ASan this also checks no read past n). */
static void
test_prefixes(void)
{
	static const char *const srcs[] = {
		"not (a == 1 or s in [\"x\", 2.5e3, -1, null, true]) and exists(user.tags[1])",
		"\"user name\".x[3] != \"\\ud83d\\ude00\\u00e9\\n\" or t",
		"a not in [1,2] and b >= -0.5e-3",
	};
	int good = 1;
	fp_buf r = rec(R);
	for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
		size_t n = strlen(srcs[i]);
		for (size_t k = 0; k <= n; k++) {
			char *copy = malloc(k ? k : 1);
			memcpy(copy, srcs[i], k);
			expr_error err = {0, ""};
			size_t used = 0;
			expr *e = expr_parse(copy, k, &used, &err);
			if (e) {
				if (used > k)
					good = 0;
				(void)expr_match(e, r.p, r.len);
			} else if (err.column < 1 || err.column > k + 1 || !err.msg[0]) {
				good = 0;
			}
			expr_free(e);
			free(copy);
		}
	}
	fp_buf_release(&r);
	ok(good, "every prefix parses or fails in range%s%s", "", "");
}

/* Lookups past every kind of value and key encoding (the inline fast
 * paths and their fallbacks). */
static void
test_encodings(void)
{
	char json[2000];
	char long_s[400];
	memset(long_s, 's', 300);
	long_s[300] = '\0';
	snprintf(json, sizeof json,
	         "{\"k_str8_value\":\"%.40s\",\"k16\":\"%s\",\"bin\":{\"@b64\":\"AAEC\"},"
	         "\"f\":1.5,\"i8\":-100,\"i16\":-1000,\"i32\":-100000,\"i64\":-10000000000,"
	         "\"u8\":200,\"u16\":60000,\"u32\":4000000000,\"u64\":10000000000,"
	         "\"nil\":null,\"t\":true,\"m\":{\"a\":[1,{\"b\":2}]},\"arr\":[1,2,3],"
	         "\"ext\":{\"@ext\":[1,\"AAE=\"]},"
	         "\"a_rather_long_field_name_of_forty_bytes_\":7,\"last\":\"here\"}",
	         long_s, long_s);
	fp_buf r = rec(json);
	static const char *const conds[] = {
		"last == \"here\"", "a_rather_long_field_name_of_forty_bytes_ == 7", "m.a[1].b == 2",
		"u64 == 10000000000", "i64 == -10000000000", "u32 > i32", "i16 < i8", "u16 > u8",
		"exists(ext)", "not exists(nope)", "arr[2] == 3", "nil == null", "t",
	};
	int good = 1;
	for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++) {
		expr_error err;
		expr *e = expr_parse(conds[i], strlen(conds[i]), NULL, &err);
		if (!e || !expr_match(e, r.p, r.len)) {
			printf("# failed: %s\n", conds[i]);
			good = 0;
		}
		expr_free(e);
	}
	ok(good, "lookups past every encoding of keys and values%s%s", "", "");
	fp_buf_release(&r);
}

static void
bench(void)
{
	fp_buf r = rec("{\"@src\":[\"events\",3,123456789],\"@ts\":1700000000000,\"@in\":1700000000000123,"
	               "\"user\":\"u123456\",\"action\":\"view\",\"price\":12345.5,\"car\":{\"brand\":\"vw\","
	               "\"id\":991},\"city\":\"berlin\"}");
	const char *c = "action == \"view\" and price > 1000 and car.brand in [\"vw\", \"bmw\"]";
	expr_error err;
	expr *e = expr_parse(c, strlen(c), NULL, &err);
	struct timespec t0, t1;
	long n = 1000000, hits = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++)
		hits += expr_match(e, r.p, r.len);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(hits == n, "benchmark condition matches%s%s", "", "");
	printf("# %.1fM evaluations/s of: %s\n", (double)n / s / 1e6, c);
	expr_free(e);
	fp_buf_release(&r);
}

int
main(void)
{
	test_cases();
	test_errors();
	test_consumed();
	test_paths();
	test_prefixes();
	test_encodings();
	bench();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
