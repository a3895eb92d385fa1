/* Unit tests: JSON <-> msgpack exactness and errors; number parsing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/json.h"
#include "../../lib/mpraw.h"
#include "../../lib/num.h"
#include "../../lib/store.h"
#include "tap.h"

static int
roundtrip(const char *in, const char *want)
{
	fp_buf mp = FP_BUF_INIT, out = FP_BUF_INIT;
	json_error e;
	int good = 0;
	if (json_to_mp(in, strlen(in), &mp, 0, &e) == 0 && mp_to_json(mp.p, mp.len, &out) == 0) {
		fp_buf_addc(&out, 0);
		good = strcmp((char *)out.p, want ? want : in) == 0;
		if (!good)
			printf("# got %s\n", out.p);
	} else
		printf("# error at %zu: %s\n", e.column, e.msg);
	fp_buf_release(&mp);
	fp_buf_release(&out);
	return good;
}

static int
bad(const char *in, size_t col, const char *msg)
{
	fp_buf mp = FP_BUF_INIT;
	json_error e;
	int rc = json_to_mp(in, strlen(in), &mp, 0, &e);
	int good = rc == -1 && e.column == col && strstr(e.msg, msg) && mp.len == 0;
	if (!good)
		printf("# rc=%d col=%zu msg=%s\n", rc, e.column, rc ? e.msg : "");
	fp_buf_release(&mp);
	return good;
}

static int
encodes_as(const char *in, const char *hex)
{
	fp_buf mp = FP_BUF_INIT;
	json_error e;
	char got[256] = "";
	if (json_to_mp(in, strlen(in), &mp, 0, &e) == 0)
		for (size_t i = 0; i < mp.len && i < 120; i++)
			sprintf(got + 2 * i, "%02x", mp.p[i]);
	fp_buf_release(&mp);
	if (strcmp(got, hex))
		printf("# %s encoded as %s, want %s\n", in, got, hex);
	return strcmp(got, hex) == 0;
}

/* Significant digits of a printed number (sign, point, exponent and
 * leading/trailing zeros dropped). */
static int
sig_digits(const char *t)
{
	char d[64];
	int n = 0;
	for (; *t && *t != 'e'; t++)
		if (*t >= '0' && *t <= '9')
			d[n++] = *t;
	int a = 0;
	while (a < n && d[a] == '0')
		a++;
	while (n > a && d[n - 1] == '0')
		n--;
	return n > a ? n - a : 1;
}

/* Every printed double reads back exactly and uses the fewest significant
 * digits that do (the reference: the least %.*g precision that reads back). */
static void
test_doubles(void)
{
	srand(7);
	int bad = 0;
	for (int i = 0; i < 20000 && bad < 5; i++) {
		double d;
		switch (i % 4) {
		case 0: d = (rand() % 100000000) / 100.0; break;           /* prices */
		case 1: d = (double)rand() / RAND_MAX * 1000; break;       /* any digits */
		case 2: d = ldexp((double)rand(), (rand() % 200) - 100); break;
		default: d = -(rand() % 1000) / 1000.0; break;
		}
		fp_buf mp = FP_BUF_INIT, out = FP_BUF_INIT;
		mpw_map(&mp, 1);
		mpw_str(&mp, "d", 1);
		mpw_double(&mp, d);
		mp_to_json(mp.p, mp.len, &out);
		fp_buf_addc(&out, 0);
		const char *t = (const char *)out.p + 5; /* after {"d": */
		int p = 1;
		char ref[40];
		for (; p <= 17; p++) {
			snprintf(ref, sizeof ref, "%.*g", p, d);
			if (strtod(ref, NULL) == d)
				break;
		}
		if (strtod(t, NULL) != d || sig_digits(t) != p || !strpbrk(t, ".e")) {
			printf("# %.17g printed as %s (want %d digits)\n", d, t, p);
			bad++;
		}
		fp_buf_release(&mp);
		fp_buf_release(&out);
	}
	ok(bad == 0, "20000 doubles print in the fewest digits that read back exactly, always as floats");
}

/* The text mp_to_json() gave every double before its exact 16/17-digit
 * path: the least %.*g precision that reads back, then plain notation for
 * 1e-5 <= |d| < 2^53 (a fixed copy, the reference for the fast paths). */
static void
ref_double_text(double d, char *t, size_t tl)
{
	int lo = 1;
	for (; lo < 17; lo++) {
		snprintf(t, tl, "%.*g", lo, d);
		if (strtod(t, NULL) == d)
			break;
	}
	snprintf(t, tl, "%.*e", lo - 1, d);
	int e10 = atoi(strchr(t, 'e') + 1);
	if (e10 >= -5 && fabs(d) < 9007199254740992.0)
		snprintf(t, tl, "%.*f", lo - 1 - e10 > 0 ? lo - 1 - e10 : 0, d);
	else
		snprintf(t, tl, "%.*g", lo, d);
	if (!strpbrk(t, ".eEn"))
		strcat(t, ".0");
}

static int
same_double_text(double d)
{
	fp_buf mp = FP_BUF_INIT, out = FP_BUF_INIT;
	char ref[64];
	mpw_map(&mp, 1);
	mpw_str(&mp, "d", 1);
	mpw_double(&mp, d);
	mp_to_json(mp.p, mp.len, &out);
	ref_double_text(d, ref, sizeof ref);
	int same = out.len == 6 + strlen(ref) && !memcmp(out.p + 5, ref, strlen(ref));
	if (!same)
		printf("# %.17g: printed %.*s, reference %s\n", d, (int)out.len - 6, (const char *)out.p + 5, ref);
	fp_buf_release(&mp);
	fp_buf_release(&out);
	return same;
}

/* The same text as the reference for doubles of every kind the fast paths
 * take or leave: random bits in and around [1e-5, 2^53), averages (which
 * need 16 or 17 digits), neighbours of powers of ten and of two. */
static void
test_double_text(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int bad = 0, n = 0;
	for (int i = 0; i < 300000 && bad < 5; i++, n++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		double d;
		switch (i % 6) {
		case 0: { /* any bits with an exponent from 2^-20 to 2^56 */
			uint64_t bits = (x & 0x800fffffffffffffull) | (uint64_t)(1003 + (x >> 52) % 77) << 52;
			memcpy(&d, &bits, sizeof d);
			break;
		}
		case 1: d = (double)(x % 100000000) / (double)(3 + x % 11); break;
		case 2: d = (double)(x % 1000000) / 100.0 / (double)(1 + (x >> 32) % 97); break;
		case 3: d = nextafter(pow(10, (int)(x % 23) - 6), (x & 1) ? 0 : 1e300); break;
		case 4: d = ldexp(1.0, (int)(x % 70) - 17) * ((x & 2) ? 1 : -1); break;
		default: d = nextafter(ldexp(1.0, (int)(x % 70) - 17), (x & 4) ? 0 : 1e300); break;
		}
		bad += !same_double_text(d);
	}
	ok(bad == 0, "%d doubles print as the reference (least %%.*g that reads back, plain notation)", n);
}

int
main(void)
{
	test_doubles();
	test_double_text();
	ok(roundtrip("{\"a\":1,\"b\":1.0,\"c\":-1,\"d\":0.1}", NULL), "ints stay ints, floats stay floats");
	ok(roundtrip("{\"max\":18446744073709551615,\"min\":-9223372036854775808}", NULL), "64-bit extremes exact");
	ok(roundtrip("{\"z\":1,\"a\":2,\"m\":3}", NULL), "map key order kept");
	ok(roundtrip("{\"s\":\"\\u00e9\\n\\t\\\"\\\\\\u0001\"}", "{\"s\":\"é\\n\\t\\\"\\\\\\u0001\"}"), "string escapes");
	ok(roundtrip("{\"e\":\"\\ud83d\\ude00\"}", "{\"e\":\"😀\"}"), "surrogate pair");
	ok(roundtrip("{\"b\":{\"@bin\":\"raw\"},\"x\":{\"@b64\":\"AP8=\"}}", NULL), "binary forms");
	ok(roundtrip("{\"x\":{\"@ext\":[-3,\"AQID\"]}}", NULL), "ext form");
	ok(roundtrip("{\"n\":{\"@float\":\"NaN\"},\"i\":{\"@float\":\"-Infinity\"}}", NULL), "NaN and infinity");
	ok(roundtrip("{\"@bin\":1}", NULL), "a reserved key with another shape is an ordinary object");
	ok(roundtrip("{\"a\":{\"@bin\":\"x\",\"y\":1}}", NULL), "a reserved key among others is ordinary");
	ok(roundtrip(" { \"a\" : [ 1 , [ ] , { } , null , true , false ] } ", "{\"a\":[1,[],{},null,true,false]}"), "white space");
	ok(roundtrip("{\"f\":1e300,\"g\":1.5e-7,\"h\":123456789.125}", "{\"f\":1e+300,\"g\":1.5e-07,\"h\":123456789.125}"), "exponents");
	ok(roundtrip("{\"big\":123456789012345678901234}", "{\"big\":1.2345678901234569e+23}"), "beyond 64 bits becomes a float");
	ok(encodes_as("{\"a\":1}", "81a16101"), "smallest encodings");
	ok(encodes_as("{\"a\":-33,\"b\":256}", "82a161d0dfa162cd0100"), "int8 and uint16");
	ok(encodes_as("{\"a\":1.0}", "81a161cb3ff0000000000000"), "1.0 is float64");
	ok(bad("{\"a\":1,}", 8, "expected a string key, found '}'"), "trailing comma: column");
	ok(bad("{\"a\" 1}", 6, "expected ':'"), "missing colon");
	ok(bad("{\"a\":01}", 6, "leading zero"), "leading zero");
	ok(bad("{\"a\":tru}", 6, "expected a JSON value"), "bad literal");
	ok(bad("{\"a\":\"x\ty\"}", 8, "control character"), "raw tab in string");
	ok(bad("{\"a\":\"\xff\"}", 7, "invalid UTF-8"), "invalid UTF-8");
	ok(bad("{\"a\":\"\\ud800\"}", 13, "unpaired"), "lone surrogate");
	ok(bad("{\"a\":1} x", 9, "unexpected 'x'"), "junk after the value");
	ok(bad("{\"a\":\"abc", 10, "unterminated string"), "unterminated string");
	ok(bad("{\"a\":{\"@b64\":\"!!\"}}", 14, "invalid base64"), "bad base64");
	char deep[200];
	strcpy(deep, "{\"a\":");
	for (int i = 0; i < 70; i++)
		strcat(deep, "[");
	ok(bad(deep, 69, "nesting deeper"), "nesting limit");

	int64_t i;
	uint64_t u;
	double d;
	char err[160];
	ok(fp_parse_i64("42", 0, 100, &i, err, sizeof err) == 0 && i == 42, "parse i64");
	ok(fp_parse_i64("42x", 0, 100, &i, err, sizeof err) == -1 && strstr(err, "not a whole number"), "trailing junk");
	ok(fp_parse_i64("101", 0, 100, &i, err, sizeof err) == -1 && strstr(err, "out of range"), "range");
	ok(fp_parse_u64("-1", 0, 100, &u, err, sizeof err) == -1, "negative unsigned refused");
	ok(fp_parse_double("2.5", &d, err, sizeof err) == 0 && d == 2.5, "double");
	ok(fp_parse_double("inf", &d, err, sizeof err) == -1, "infinite refused");
	ok(fp_parse_duration_ms("30d", 1000, 0, &i, err, sizeof err) == 0 && i == 30LL * 86400000, "30d");
	ok(fp_parse_duration_ms("250ms", 1000, 0, &i, err, sizeof err) == 0 && i == 250, "250ms");
	ok(fp_parse_duration_ms("5", 1000, 0, &i, err, sizeof err) == 0 && i == 5000, "bare seconds");
	ok(fp_parse_duration_ms("5y", 1000, 0, &i, err, sizeof err) == -1 && strstr(err, "unknown duration unit"), "bad unit");
	ok(fp_parse_size("16M", 1, UINT64_MAX, &u, err, sizeof err) == 0 && u == 16u << 20, "16M");

	store_pos p;
	char pb[48];
	ok(store_pos_parse("12:3", 4, &p) == 0 && p.offset == 12 && p.index == 3, "position O:I");
	store_pos_format((store_pos){7, 0}, pb, sizeof pb);
	ok(strcmp(pb, "7") == 0, "position O formats without index");
	ok(store_pos_cmp((store_pos){5, 2}, (store_pos){6, 0}) < 0, "position order");
	const char *t;
	size_t tl;
	int32_t part;
	int sh, ns;
	ok(store_offset_field_parse("views/3/1/2", 11, &t, &tl, &part, &sh, &ns) == 0 && tl == 5 &&
	   part == 3 && sh == 1 && ns == 2, "offset field parse");
	ok(store_offset_field_parse("views/3/2/2", 11, &t, &tl, &part, &sh, &ns) == -1, "shard >= nshards refused");
	store_url su;
	ok(store_url_parse("redis://:s3cret@127.0.0.1:6380/2", &su, err, sizeof err) == 0 &&
	   su.port == 6380 && su.db == 2 && !strcmp(su.password, "s3cret"), "store URL");
	ok(store_url_parse("http://x", &su, err, sizeof err) == -1 && strstr(err, "redis://"), "bad URL scheme");
	return tap_done();
}
