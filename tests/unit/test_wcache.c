/* test_wcache.c - the written-fields cache: hits, deadlines, drops, the two
 * generations bounding it, and a model check against a plain map.  TAP. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/wcache.h"
#include "tap.h"

static int
holds(wcache *c, uint64_t kh, int64_t now, const uint64_t *want, uint32_t n)
{
	uint32_t got = 0;
	int64_t until = 0;
	const uint64_t *fh = wcache_get(c, kh, now, &got, &until);
	return fh && got == n && !memcmp(fh, want, n * sizeof *fh);
}

static int
misses(wcache *c, uint64_t kh, int64_t now)
{
	uint32_t n = 0;
	int64_t until = 42;
	return !wcache_get(c, kh, now, &n, &until) && until == 42;
}

int
main(void)
{
	uint64_t a[3] = {11, 12, 13}, b[2] = {21, 22}, d[5] = {1, 2, 3, 4, 5};
	wcache *c = wcache_new(100);

	wcache_prefetch(c, 7, 2);
	wcache_prefetch(c, 7, 1);
	ok(misses(c, 7, 0), "an empty cache misses (after a prefetch of it)");
	ok(wcache_put(c, 7, 1000, a, 3) == 0 && holds(c, 7, 0, a, 3), "put, then get the same hashes");
	for (int st = 1; st <= 2; st++)
		wcache_prefetch(c, 7, st), wcache_prefetch(c, 8, st);
	ok(holds(c, 7, 0, a, 3) && misses(c, 8, 0), "a prefetch of a key held, and of one not, changes nothing");
	uint32_t n;
	int64_t until = 0;
	ok(wcache_get(c, 7, 999, &n, &until) && until == 1000, "the deadline comes back");
	ok(misses(c, 7, 1000), "at the deadline: a miss");
	ok(wcache_put(c, 7, 2000, b, 2) == 0 && holds(c, 7, 0, b, 2), "a put with fewer fields replaces the entry");
	ok(wcache_put(c, 7, 2000, d, 5) == 0 && holds(c, 7, 0, d, 5), "a put with more fields replaces the entry");
	ok(wcache_put(c, 8, INT64_MAX, a, 3) == 0 && holds(c, 8, INT64_MAX - 1, a, 3) && holds(c, 7, 0, d, 5),
	   "two keys side by side");
	wcache_drop(c, 7);
	ok(misses(c, 7, 0) && holds(c, 8, 0, a, 3), "drop forgets one key only");
	ok(wcache_put(c, 7, 10, a, 3) == 0 && holds(c, 7, 0, a, 3), "a dropped key is put again");
	ok(wcache_put(c, 9, 10, a, 0) == 0 && misses(c, 9, 0), "a key without fields is not held");
	ok(wcache_put(c, 7, 10, a, 0) == 0 && misses(c, 7, 0), "a put without fields drops the key");
	wcache_free(c);

	c = wcache_new(0);
	ok(wcache_put(c, 1, INT64_MAX, a, 3) == 0 && misses(c, 1, 0), "max_keys 0 holds nothing");
	wcache_free(c);

	/* Bounded: 1000 keys, 10 more put every step: never more than 1000
	 * held, and the newest always. */
	c = wcache_new(1000);
	int bounded = 1, newest = 1;
	for (uint64_t k = 1; k <= 100000; k++) {
		uint64_t h[2] = {k, k * 3};
		wcache_put(c, k * 0x9e3779b97f4a7c15ull, INT64_MAX, h, 2);
		if (wcache_size(c) > 1000)
			bounded = 0;
		if (!holds(c, k * 0x9e3779b97f4a7c15ull, 0, h, 2))
			newest = 0;
	}
	ok(bounded, "100000 keys through a cache of 1000: at most 1000 held (%zu at the end)",
	   wcache_size(c));
	ok(newest, "the key just put is always held");
	uint64_t h0[2] = {99501, 99501 * 3};
	ok(holds(c, 99501 * 0x9e3779b97f4a7c15ull, 0, h0, 2), "a key among the last 500 is still held");
	wcache_free(c);

	/* A model: random puts, drops and gets of 300 keys against an array;
	 * a hit must always equal the model (a miss is allowed only after the
	 * generations turned over). */
	enum { K = 300 };
	static uint64_t model[K][4];
	static uint32_t mn[K];
	static int64_t mu[K];
	c = wcache_new(4 * K);
	uint64_t x = 88172645463325252ull;
	int agree = 1, hits = 0;
	for (int step = 0; step < 200000 && agree; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int k = (int)(x % K), op = (int)(x >> 32) % 10;
		uint64_t kh = (uint64_t)k * 0xff51afd7ed558ccdull + 1;
		int64_t now = step;
		if (op < 4) {
			uint32_t nf = 1 + (uint32_t)(x >> 40) % 4;
			for (uint32_t i = 0; i < nf; i++)
				model[k][i] = x + i;
			mn[k] = nf;
			mu[k] = now + (int64_t)(x >> 50) % 5000;
			wcache_put(c, kh, mu[k], model[k], nf);
		} else if (op < 5) {
			mn[k] = 0;
			wcache_drop(c, kh);
		} else {
			uint32_t got;
			int64_t gu;
			const uint64_t *fh = wcache_get(c, kh, now, &got, &gu);
			if (fh) {
				hits++;
				if (!mn[k] || mu[k] <= now || got != mn[k] || gu != mu[k] ||
				    memcmp(fh, model[k], got * sizeof *fh))
					agree = 0;
			}
		}
	}
	ok(agree && hits > 10000, "200000 random operations agree with a model (%d hits)", hits);
	wcache_free(c);
	return tap_done();
}
