/* test_shard.c - lib/shard: the key hash of fp-keyby(1) (TAP). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "../../lib/buf.h"
#include "../../lib/json.h"
#include "../../lib/shard.h"

static int ntest, nfail;

static void
ok(int cond, const char *name)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
}

/* shard of a key given as a msgpack encoding built by f */
static int
shard_str(const char *s, uint32_t n, uint32_t *k)
{
	fp_buf b = FP_BUF_INIT;
	mpw_str(&b, s, strlen(s));
	int r = shard_of_key(b.p, b.len, n, k);
	fp_buf_release(&b);
	return r;
}

static int
shard_int(int64_t v, uint32_t n, uint32_t *k)
{
	fp_buf b = FP_BUF_INIT;
	mpw_int(&b, v);
	int r = shard_of_key(b.p, b.len, n, k);
	fp_buf_release(&b);
	return r;
}

static void
test_worked_example(void)
{
	/* The example of fp-keyby(1), SHARDING: fixed forever. */
	ok(shard_hash("user-7", 6) == 0xb1de7a364def053eULL, "XXH3-64 of \"user-7\" is b1de7a364def053e");
	ok(shard_hash("42", 2) == 0x1217cb28c0ef2191ULL, "XXH3-64 of \"42\" is 1217cb28c0ef2191");
	uint32_t k2, k4;
	ok(shard_str("user-7", 2, &k2) == 0 && k2 == 0 && shard_str("user-7", 4, &k4) == 0 && k4 == 2,
	   "\"user-7\": shard 0 of 2, shard 2 of 4");
	ok(shard_int(42, 2, &k2) == 0 && k2 == 1 && shard_int(42, 4, &k4) == 0 && k4 == 1,
	   "42: shard 1 of 2, shard 1 of 4");
}

static void
test_canon(void)
{
	char buf[SHARD_CANON_BUF];
	const uint8_t *c;
	size_t cl;
	/* every integer encoding of 42 and the string "42" agree */
	static const uint8_t enc42[][9] = {
		{0x2a}, {0xcc, 42}, {0xcd, 0, 42}, {0xce, 0, 0, 0, 42},
		{0xcf, 0, 0, 0, 0, 0, 0, 0, 42}, {0xd0, 42}, {0xd1, 0, 42}, {0xd2, 0, 0, 0, 42},
		{0xd3, 0, 0, 0, 0, 0, 0, 0, 42}, {0xa2, '4', '2'}, {0xd9, 2, '4', '2'}, {0xc4, 2, '4', '2'},
	};
	int good = 1;
	for (size_t i = 0; i < sizeof enc42 / sizeof enc42[0]; i++)
		if (shard_key_canon(enc42[i], 9, buf, &c, &cl) < 0 || cl != 2 || memcmp(c, "42", 2))
			good = 0;
	ok(good, "42 as any int/uint encoding, str or bin: canonical \"42\"");

	static const struct { int64_t v; const char *text; } ints[] = {
		{0, "0"}, {-1, "-1"}, {-32, "-32"}, {-33, "-33"}, {127, "127"}, {128, "128"},
		{INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"},
	};
	good = 1;
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		fp_buf b = FP_BUF_INIT;
		mpw_int(&b, ints[i].v);
		if (shard_key_canon(b.p, b.len, buf, &c, &cl) < 0 || cl != strlen(ints[i].text) ||
		    memcmp(c, ints[i].text, cl))
			good = 0;
		fp_buf_release(&b);
	}
	ok(good, "integers canonical as decimal text (0, negatives, int64 limits)");
	static const uint8_t umax[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	ok(shard_key_canon(umax, 9, buf, &c, &cl) == 0 && cl == 20 &&
	   !memcmp(c, "18446744073709551615", 20), "uint64 max canonical as decimal text");

	static const uint8_t notkeys[][9] = {
		{0xc0}, {0xc2}, {0xc3}, {0xca, 0, 0, 0, 0}, {0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, {0x90}, {0x80},
		{0xd4, 1, 0},
	};
	static const char *const names[] = {"nil", "boolean", "boolean", "float", "float", "array",
	                                    "map", "ext"};
	good = 1;
	uint32_t k;
	for (size_t i = 0; i < sizeof notkeys / sizeof notkeys[0]; i++)
		if (shard_of_key(notkeys[i], 9, 4, &k) == 0 || strcmp(shard_type_name(notkeys[i], 9), names[i]))
			good = 0;
	ok(good, "nil, booleans, floats, arrays, maps, ext are not keys (and named so)");
	ok(shard_key_canon((const uint8_t *)"\xa5hi", 3, buf, &c, &cl) < 0, "a truncated string is not a key");
	ok(shard_str("", 4, &k) == 0 && k == shard_hash("", 0) % 4, "the empty string is a key");
}

static void
test_stable_across_n(void)
{
	/* hash % N: the same key always lands on the same shard for a given N,
	 * and shard(N) == hash % N for every N */
	int good = 1;
	for (int i = 0; i < 10000 && good; i++) {
		char key[32];
		snprintf(key, sizeof key, "user%d", i);
		uint64_t h = shard_hash(key, strlen(key));
		for (uint32_t n = 1; n <= 9; n++) {
			uint32_t a, b;
			if (shard_str(key, n, &a) < 0 || shard_str(key, n, &b) < 0 || a != b || a != h % n)
				good = 0;
		}
	}
	ok(good, "shard = hash mod N, same answer every time, N = 1..9");
}

static void
test_distribution(void)
{
	static const uint32_t ns[] = {2, 3, 4, 8, 16};
	for (size_t t = 0; t < 2; t++) {
		for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
			uint32_t n = ns[j], count[16] = {0}, k;
			const uint32_t keys = 1000000;
			for (uint32_t i = 0; i < keys; i++) {
				char key[32];
				if (t == 0) {
					snprintf(key, sizeof key, "user%u", i);
					shard_str(key, n, &k);
				} else {
					shard_int((int64_t)i, n, &k);
				}
				count[k]++;
			}
			double want = (double)keys / n;
			int good = 1;
			char name[120];
			uint32_t lo = keys, hi = 0;
			for (uint32_t s = 0; s < n; s++) {
				if (count[s] < want * 0.95 || count[s] > want * 1.05)
					good = 0;
				lo = count[s] < lo ? count[s] : lo;
				hi = count[s] > hi ? count[s] : hi;
			}
			snprintf(name, sizeof name, "1M %s keys over %u shards within 5%% (min %u max %u)",
			         t == 0 ? "string" : "integer", n, lo, hi);
			ok(good, name);
		}
	}
}

int
main(void)
{
	test_worked_example();
	test_canon();
	test_stable_across_n();
	test_distribution();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
