/* test_dict.c - lib/dict (parser, coercion, ISO-8601) and lib/imp's
 * splitters (TAP). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/dict.h"
#include "../../lib/imp.h"
#include "../../lib/json.h"
#include "../../lib/mpraw.h"

static int ntest, nfail;

static void
ok(int cond, const char *name, const char *detail)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s%s%s\n", cond ? "" : "not ", ntest, name, detail ? ": " : "",
	       detail ? detail : "");
}

/* The coerced value as JSON text, or "ERR why". */
static const char *
coerce(enum dict_type t, int64_t unit, const char *json_or_text, int text)
{
	static char res[300];
	fp_buf in = FP_BUF_INIT, out = FP_BUF_INIT, js = FP_BUF_INIT;
	char why[200];
	json_error je;
	int r;
	if (text)
		r = dict_coerce_text(t, unit, json_or_text, strlen(json_or_text), &out, why, sizeof why);
	else {
		if (json_to_mp(json_or_text, strlen(json_or_text), &in, 8, &je) < 0) {
			printf("Bail out! bad fixture %s\n", json_or_text);
			exit(2);
		}
		r = dict_coerce_mp(t, unit, in.p, in.len, &out, why, sizeof why);
	}
	if (r < 0)
		snprintf(res, sizeof res, "ERR %s", why);
	else {
		mp_to_json(out.p, out.len, &js);
		snprintf(res, sizeof res, "%.*s", (int)js.len, (char *)js.p);
	}
	fp_buf_release(&in);
	fp_buf_release(&out);
	fp_buf_release(&js);
	return res;
}

static const struct {
	enum dict_type t;
	int64_t unit;
	int text;
	const char *in, *want;
} coercions[] = {
	{DT_INT, 1, 0, "42", "42"},
	{DT_INT, 1, 0, "-7", "-7"},
	{DT_INT, 1, 0, "\"42\"", "42"},
	{DT_INT, 1, 0, "3.0", "3"},
	{DT_INT, 1, 0, "3.5", "ERR 3.5 is not an int"},
	{DT_INT, 1, 0, "\"4x\"", "ERR \"4x\" is not an int"},
	{DT_INT, 1, 0, "true", "ERR is a bool, not int"},
	{DT_INT, 1, 0, "[1]", "ERR is an array, not int"},
	{DT_INT, 1, 0, "18446744073709551615", "ERR is an int beyond int64"},
	{DT_FLOAT, 1, 0, "1.5", "1.5"},
	{DT_FLOAT, 1, 0, "2", "2.0"},
	{DT_FLOAT, 1, 0, "\"2.25\"", "2.25"},
	{DT_FLOAT, 1, 0, "\"abc\"", "ERR \"abc\" is not a float"},
	{DT_STRING, 1, 0, "\"x\"", "\"x\""},
	{DT_STRING, 1, 0, "12345", "\"12345\""},
	{DT_STRING, 1, 0, "1.5", "\"1.5\""},
	{DT_STRING, 1, 0, "{\"a\":1}", "ERR is an object, not string"},
	{DT_BOOL, 1, 0, "true", "true"},
	{DT_BOOL, 1, 0, "0", "false"},
	{DT_BOOL, 1, 0, "\"true\"", "true"},
	{DT_BOOL, 1, 0, "2", "ERR is an int, not bool"},
	{DT_BOOL, 1, 0, "\"yes\"", "ERR \"yes\" is not a bool (true, false, 1 or 0)"},
	{DT_TIME, 1, 0, "1700000000000", "1700000000000"},
	{DT_TIME, 1000, 0, "1700000000", "1700000000000"},
	{DT_TIME, 1000, 0, "1700000000.25", "1700000000250"},
	{DT_TIME, 1, 0, "\"1700000000000\"", "1700000000000"},
	{DT_TIME, 1, 0, "\"2023-11-14T22:13:20Z\"", "1700000000000"},
	{DT_TIME, 1000, 0, "\"2023-11-14T22:13:20.123Z\"", "1700000000123"},
	{DT_TIME, 1, 0, "\"2023-11-14 23:13:20+01:00\"", "1700000000000"},
	{DT_TIME, 1, 0, "\"2023-11-14T17:13:20-0500\"", "1700000000000"},
	{DT_TIME, 1, 0, "\"2023-11-14\"", "1699920000000"},
	{DT_TIME, 1, 0, "\"2023-02-29\"", "ERR \"2023-02-29\" is not a time (a number of milliseconds or ISO-8601)"},
	{DT_TIME, 1, 0, "\"yesterday\"", "ERR \"yesterday\" is not a time (a number of milliseconds or ISO-8601)"},
	{DT_TIME, 1000, 0, "9e30", "ERR time out of range"},
	{DT_ANY, 1, 0, "[1,{\"a\":2}]", "[1,{\"a\":2}]"},
	{DT_INT, 1, 1, "-12", "-12"},
	{DT_INT, 1, 1, " 12", "ERR \" 12\" is not an int"},
	{DT_FLOAT, 1, 1, "1e3", "1000.0"},
	{DT_BOOL, 1, 1, "1", "true"},
	{DT_STRING, 1, 1, "caf\xc3\xa9", "\"caf\xc3\xa9\""},
	{DT_STRING, 1, 1, "bad\xff", "ERR is not valid UTF-8"},
	{DT_TIME, 1000, 1, "1700000000", "1700000000000"},
	{DT_TIME, 1, 1, "2024-02-29T00:00:00Z", "1709164800000"},
	{DT_TIME, 1, 1, "1969-12-31T23:59:59Z", "-1000"},
};

/* Parse text; "" when it parses, else the error. */
static const char *
parse_err(const char *text)
{
	static char err[400];
	dict *d = dict_parse(text, strlen(text), "t.dict", err, sizeof err);
	if (d) {
		dict_free(d);
		return "";
	}
	return err;
}

static const struct { const char *text, *want; } errors[] = {
	{"source a\n", ""},
	{"source a\n  format json\n  field x int from a.b[2].\"c d\" required\n", ""},
	{"field x int\n", "t.dict:1:1: expected 'source NAME' to begin a source, found 'field'"},
	{"source a\n  field x int from\n", "t.dict:2:19: expected a field name, found the end of the line"},
	{"source a\n  field x int from a[x]\n", "t.dict:2:22: expected an array index and ']', found 'x]'"},
	{"source a\n  field x int from a b\n", "t.dict:2:22: expected 'from', 'required', 'default' or '=', found 'b'"},
	{"source a\n  field x string = \"unterminated\n", "t.dict:2:20: unterminated string"},
	{"source a\n  field x bool = maybe\n", "t.dict:2:18: constant \"maybe\" is not a bool (true, false, 1 or 0)"},
	{"source a\n  field x int = 1 required\n", "t.dict:2:19: expected the end of the line after the constant, found 'required'"},
	{"source a\n  field x int required = 1\n", "t.dict:2:24: a constant ('=') cannot have 'from', 'required' or 'default'"},
	{"source a\n  field x time(h)\n", "t.dict:2:11: expected a type (string, int, float, bool, time, time(ms), time(s) or any), found 'time(h)'"},
	{"source a\n  columns a,b\n", "t.dict:2:3: 'columns' needs format csv or tsv before it"},
	{"source a\n  format csv\n  columns a b\n  columns c\n", "t.dict:4:3: a second 'columns' line"},
	{"source a\n  format csv\n", "t.dict:1:1: source 'a': a csv source needs 'columns NAME...' or 'columns header'"},
	{"source a\n  format csv\n  columns a\n  field x int from 0\n", "t.dict:4:20: column number out of range (1 to 100000)"},
	{"source a\n  format kv\n  field x int from a.b\n", "t.dict:3:20: a key=value source has no nested fields; name one key"},
	{"source a\n  field x int\n  format kv\n", "t.dict:3:3: 'format' must come before the source's fields and shapes"},
	{"source a\n  shape by t\n", "t.dict:1:1: source 'a': 'shape by' but no 'when' shapes"},
	{"source a\n  shape t\n", "t.dict:2:9: expected 'shape by FIELD', found 't'"},
	{"source a\n  shape by t\n  when\n", "t.dict:3:7: expected the discriminator's values (or '*'), found the end of the line"},
	{"source a\n  shape by t\n  when *\n  when *\n", "t.dict:4:8: a second 'when *'"},
	{"source a\n  shape by t\n  when 1\n  topic x\n", "t.dict:4:3: 'topic' belongs to the source, before its first 'when'"},
	{"source a\n  shape by t\n  when 1 drop extra\n", "t.dict:3:15: expected the end of the line after 'drop', found 'extra'"},
	{"source a\n  explode items[0]\n", "t.dict:2:19: name the element: 'explode PATH as NAME'"},
	{"source a\n  explode items of x\n", "t.dict:2:17: expected 'as NAME' or the end of the line, found 'of'"},
	{"source a\n  field x int\n  explode items\n", "t.dict:3:3: 'explode' must come before the fields it applies to"},
	{"source a\n  where x == 1\n  where y == 2\n", "t.dict:3:3: a second 'where' (combine them with 'and')"},
	{"source a\n  where x == 1 over\n", "t.dict:2:16: unexpected 'over' after the 'where' expression"},
	{"source a\n  where x == 1 # a comment\n", ""},
	{"source a\n  time\n", "t.dict:2:7: expected the name of a field of type time"},
	{"source a b\n", "t.dict:1:10: expected a source name (letters, digits, '_', '-', '.'), found 'b'"},
	{"source a\n  bogus\n", "t.dict:2:3: expected source, topic, format, columns, time, shape, where, explode, when or field, found 'bogus'"},
};

static void
test_structure(void)
{
	static const char text[] =
		"# comment\n"
		"source ev   # trailing comment\n"
		"  topic ev web.*\n"
		"  format json\n"
		"  time ts\n"
		"  shape by kind\n"
		"  explode items as it\n"
		"  field user int from u.id required\n"
		"  field ts time(s)\n"
		"  field site string = \"w#1\"\n"
		"  where user > 0\n"
		"  when \"view\" 3\n"
		"    field item int from it.id default -1\n"
		"  when * drop\n"
		"source csv\n"
		"  format csv\n"
		"  columns a, b ,c\n"
		"  field b2 float from b\n"
		"  field c3 string from 3\n";
	char err[300];
	dict *d = dict_parse(text, sizeof text - 1, "s.dict", err, sizeof err);
	ok(d != NULL, "a full dictionary parses", d ? NULL : err);
	if (!d)
		return;
	const dict_source *s = dict_find_topic(d, "web.views", 9);
	ok(s && !strcmp(s->name, "ev"), "topic pattern web.* finds source ev", NULL);
	ok(dict_find_topic(d, "csv", 3) == dict_find_source(d, "csv"), "default topic is the source name", NULL);
	ok(!dict_find_topic(d, "other", 5), "an unknown topic finds nothing", NULL);
	ok(s->common.nfields == 3 && s->nshapes == 2, "common fields and shapes counted", NULL);
	ok(s->common.fields[0].required && s->common.fields[0].from.nsteps == 2,
	   "required, nested path", NULL);
	ok(s->common.fields[1].type == DT_TIME && s->common.fields[1].unit == 1000, "time(s)", NULL);
	ok(s->common.fields[2].is_const && s->common.fields[2].value.len == 4,
	   "a constant with '#' inside quotes", NULL);
	ok(s->common.where && !strcmp(s->common.where_text, "user > 0"), "where text", NULL);
	ok(s->shapes[0].nvalues == 2 && !strcmp(s->shapes[0].values[1], "3"), "when values", NULL);
	ok(s->shapes[0].fields[0].from.elem && s->shapes[0].fields[0].has_default,
	   "a field from the exploded element, with a default", NULL);
	ok(s->shapes[1].otherwise && s->shapes[1].drop, "when * drop", NULL);
	ok(!strcmp(s->common.alias, "it"), "explode alias", NULL);
	ok(s->nroots == 4, "root names: kind, items, u, ts", NULL);
	const dict_source *c = dict_find_source(d, "csv");
	ok(c->ncolumns == 3 && !strcmp(c->columns[1], "b"), "column list with blanks and commas", NULL);
	ok(c->common.fields[0].from.column == 1 && c->common.fields[1].from.column == 2,
	   "columns by name and by number", NULL);
	dict_free(d);
}

static const struct { enum dict_format f; const char *in; const char *want; } splits[] = {
	{DICT_CSV, "a,b,c\n", "[a][b][c]"},
	{DICT_CSV, "a,,\r\n", "[a][][]"},
	{DICT_CSV, "\"x,y\",\"say \"\"hi\"\"\"", "[x,y][say \"hi\"]"},
	{DICT_CSV, "\"multi\nline\",2", "[multi\nline][2]"},
	{DICT_CSV, "\"open", "ERR unterminated quoted field at column 1"},
	{DICT_CSV, "\"a\"b", "ERR unexpected 'b' after a quoted field at column 4"},
	{DICT_TSV, "a\t\"b\"\tc", "[a][\"b\"][c]"},
	{DICT_KV, "a=1 b=\"x y\" c d=\"q\\\"\"", "[a][1][b][x y][c][true][d][q\"]"},
	{DICT_KV, "=1", "ERR empty key at column 1"},
	{DICT_KV, "a=\"x", "ERR unterminated quoted value at column 3"},
};

static void
test_split(void)
{
	imp_cols c;
	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
		char got[300], why[160];
		size_t k = 0;
		if (imp_split(&c, splits[i].f, splits[i].in, strlen(splits[i].in), why, sizeof why) < 0)
			snprintf(got, sizeof got, "ERR %s", why);
		else
			for (size_t j = 0; j < c.n; j++)
				k += (size_t)snprintf(got + k, sizeof got - k, "[%.*s]", (int)c.len[j],
				                      (char *)c.text.p + c.off[j]);
		if (!c.n && k == 0 && strncmp(got, "ERR", 3))
			got[0] = 0;
		char name[200];
		snprintf(name, sizeof name, "split %s %.40s", dict_format_name(splits[i].f), splits[i].in);
		for (char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '|';
		ok(!strcmp(got, splits[i].want), name, strcmp(got, splits[i].want) ? got : NULL);
	}
	imp_cols_release(&c);
}

/* Random damage to a raw frame and a dictionary: the scanner and the parser
 * must answer (no crash; under SAN=1 no bad access), and whatever the scan
 * accepts (0) must satisfy the frame rule but for key text. */
static void
test_damage(void)
{
	static const char frame_json[] =
		"{\"@src\":[\"views\",3,123456],\"@ts\":1700000000000,\"@in\":1700000000000123,"
		"\"key\":null,\"value\":{\"@bin\":\"{\\\"user\\\":{\\\"id\\\":42}}\"}}";
	static const char dict_text[] =
		"source v\n topic v w.*\n format json\n time ts\n shape by t\n explode a as e\n"
		" field u int from user.id required\n field ts time(s) default 0\n"
		" where u > 1 and exists(ts)\n when \"x\" 2\n field i int from e.id\n when * drop\n"
		"source c\n format csv\n columns a,b\n field a string from 2\n";
	fp_buf f = FP_BUF_INIT;
	json_error je;
	if (json_to_mp(frame_json, sizeof frame_json - 1, &f, 8, &je) < 0) {
		printf("Bail out! bad fixture: %s\n", je.msg);
		exit(2);
	}
	unsigned seed = 12345, bad = 0, accepted = 0;
	uint8_t buf[256];
	char text[sizeof dict_text], err[300];
	for (int i = 0; i < 20000; i++) {
		memcpy(buf, f.p, f.len);
		size_t n = f.len;
		for (int k = 0; k < 1 + i % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % n] = (uint8_t)(seed >> 20);
		}
		if (i % 7 == 0)
			n -= (seed >> 4) % n;
		imp_meta meta;
		const uint8_t *v;
		size_t vl;
		int control;
		if (n && imp_frame_scan(buf, n, &meta, &v, &vl, &control) == 0) {
			accepted++;
			if (mp_check_frame(buf, n, NULL, err, sizeof err) < 0 && !strstr(err, "UTF-8"))
				bad++;
		}
		memcpy(text, dict_text, sizeof text);
		for (int k = 0; k < 1 + i % 3; k++) {
			seed = seed * 1103515245u + 12345u;
			text[(seed >> 8) % (sizeof text - 1)] = " \n\"#.[]=*a1(x"[(seed >> 20) % 14];
		}
		dict_free(dict_parse(text, sizeof text - 1, "r.fpd", err, sizeof err));
	}
	char d[80];
	snprintf(d, sizeof d, "%u of %u accepted frames break the frame rule", bad, accepted);
	ok(bad == 0 && accepted > 100, "damaged frames and dictionaries", d);
	fp_buf_release(&f);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof coercions / sizeof coercions[0]; i++) {
		const char *got = coerce(coercions[i].t, coercions[i].unit, coercions[i].in,
		                         coercions[i].text);
		char name[200];
		snprintf(name, sizeof name, "%s %s %s", coercions[i].text ? "text" : "json",
		         dict_type_name(coercions[i].t, coercions[i].unit), coercions[i].in);
		for (char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		ok(!strcmp(got, coercions[i].want), name, strcmp(got, coercions[i].want) ? got : NULL);
	}
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		char name[200];
		const char *got = parse_err(errors[i].text);
		snprintf(name, sizeof name, "dictionary %s", errors[i].text);
		for (char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '|';
		ok(!strcmp(got, errors[i].want), name, strcmp(got, errors[i].want) ? got : NULL);
	}
	{
		static const char nul[] = "source a\n  field x int\0\n";
		char err[300];
		dict *d = dict_parse(nul, sizeof nul - 1, "t.dict", err, sizeof err);
		ok(!d && !strcmp(err, "t.dict:2:14: NUL byte in the dictionary"), "a NUL byte is an error",
		   d ? "parsed" : err);
		dict_free(d);
	}
	test_structure();
	test_split();
	test_damage();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
