/* feat_sketch.c - the distinct-count sketches of feat.c.
 *
 * Without a window: HyperLogLog, 2^FEAT_HLL_BITS one-byte registers followed
 * by their histogram (feat_hll_histogram), estimated with Ertl's improved
 * raw estimator (arXiv:1702.01284; no bias tables, no range switches).
 *
 * Over a window: a sliding HyperLogLog (Chabchoub and Hebrail, 2010).  Each
 * register keeps, instead of one rank, the ranks that may still become its
 * maximum as buckets leave the window: (bucket, rank) pairs where a newer
 * pair has a smaller rank (an older pair with a smaller or equal rank can
 * never matter again and is dropped).  FEAT_SLIDE_SLOTS pairs per register;
 * when a register needs more (rare: that many strictly decreasing ranks in
 * one window), the second oldest pair gives way, which keeps the current
 * maximum exact.  The register's value is the largest rank of its pairs
 * inside the window; the histogram of those values follows every change,
 * so an estimate costs O(64), and is rebuilt when buckets leave the window.
 * A pair's bucket is stored modulo 2^16 (ages are below 2 * 4096).
 */
#include "feat_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double
hll_sigma(double x)
{
	if (x == 1.0)
		return INFINITY;
	double y = 1, z = x, zp;
	do {
		x *= x;
		zp = z;
		z += x * y;
		y += y;
	} while (z != zp);
	return z;
}

static double
hll_tau(double x)
{
	if (x == 0.0 || x == 1.0)
		return 0;
	double y = 1, z = 1 - x, zp;
	do {
		x = sqrt(x);
		zp = z;
		y *= 0.5;
		z -= (1 - x) * (1 - x) * y;
	} while (z != zp);
	return z / 3;
}

int64_t
feat_hll_estimate(const uint8_t *hist)
{
	uint16_t c[HLL_Q + 2];
	memcpy(c, hist, sizeof c);
	double m = HLL_M;
	double z = m * hll_tau(1 - c[HLL_Q + 1] / m);
	for (int k = HLL_Q; k >= 1; k--)
		z = 0.5 * (z + c[k]);
	z += m * hll_sigma(c[0] / m);
	return llround(m * m / (2 * log(2)) / z);
}

void
feat_hll_histogram(uint8_t *r)
{
	uint16_t c[HLL_Q + 2] = {0};
	for (uint32_t j = 0; j < HLL_M; j++)
		c[r[j]]++; /* at most 2^14 per value: fits */
	memcpy(r + HLL_M, c, sizeof c);
}

static void
hist_move(uint8_t *hist, uint8_t from, uint8_t to)
{
	uint16_t a, b;
	memcpy(&a, hist + 2 * from, 2);
	memcpy(&b, hist + 2 * to, 2);
	a--;
	b++;
	memcpy(hist + 2 * from, &a, 2);
	memcpy(hist + 2 * to, &b, 2);
}

void
feat_hll_add(uint8_t *r, uint64_t h)
{
	uint8_t x = feat_hll_rank(h);
	uint32_t j = (uint32_t)(h & (HLL_M - 1));
	if (x > r[j]) {
		hist_move(r + HLL_M, r[j], x);
		r[j] = x;
	}
}

/* ---- sliding ------------------------------------------------------------- */

#define SLOT 3 /* uint16 bucket, uint8 rank (0: empty) */
#define REG (FEAT_SLIDE_SLOTS * SLOT)

static inline uint16_t
s_bid(const uint8_t *s)
{
	uint16_t b;
	memcpy(&b, s, 2);
	return b;
}

/* The register's value: the largest rank of its pairs inside the window. */
static uint8_t
reg_value(const uint8_t *reg, uint16_t cb, uint32_t nb)
{
	uint8_t v = 0;
	for (int k = 0; k < FEAT_SLIDE_SLOTS; k++) {
		const uint8_t *s = reg + k * SLOT;
		if (s[2] > v && (uint16_t)(cb - s_bid(s)) < nb)
			v = s[2];
	}
	return v;
}

void
feat_slide_add(uint8_t *r, uint64_t h, uint32_t bid, uint32_t cb, uint32_t nb)
{
	uint8_t x = feat_hll_rank(h);
	uint8_t *reg = r + (size_t)(h & (HLL_M - 1)) * REG;
	uint16_t b16 = (uint16_t)bid, c16 = (uint16_t)cb, age = (uint16_t)(c16 - b16);
	int free_slot = -1;
	for (int k = 0; k < FEAT_SLIDE_SLOTS; k++) {
		uint8_t *s = reg + k * SLOT;
		if (!s[2]) {
			free_slot = k;
			continue;
		}
		uint16_t sa = (uint16_t)(c16 - s_bid(s));
		if (s[2] >= x && sa <= age)
			return; /* a pair as new with a rank as high: nothing to add */
	}
	uint8_t before = reg_value(reg, c16, nb);
	for (int k = 0; k < FEAT_SLIDE_SLOTS; k++) {
		uint8_t *s = reg + k * SLOT;
		if (s[2] && s[2] <= x && (uint16_t)(c16 - s_bid(s)) >= age) {
			s[2] = 0; /* older and no higher: never the maximum again */
			free_slot = k;
		}
	}
	if (free_slot < 0) { /* full: the second oldest pair gives way */
		int oldest = 0, second = -1;
		for (int k = 1; k < FEAT_SLIDE_SLOTS; k++)
			if ((uint16_t)(c16 - s_bid(reg + k * SLOT)) >
			    (uint16_t)(c16 - s_bid(reg + oldest * SLOT)))
				oldest = k;
		for (int k = 0; k < FEAT_SLIDE_SLOTS; k++)
			if (k != oldest && (second < 0 || (uint16_t)(c16 - s_bid(reg + k * SLOT)) >
			                                  (uint16_t)(c16 - s_bid(reg + second * SLOT))))
				second = k;
		free_slot = second;
	}
	uint8_t *s = reg + free_slot * SLOT;
	memcpy(s, &b16, 2);
	s[2] = x;
	uint8_t after = reg_value(reg, c16, nb);
	if (after != before)
		hist_move(r + FEAT_SLIDE_REGS, before, after);
}

void
feat_slide_expire(uint8_t *r, uint32_t cb, uint32_t nb)
{
	uint16_t c[HLL_Q + 2] = {0}, c16 = (uint16_t)cb;
	for (uint32_t j = 0; j < HLL_M; j++) {
		uint8_t *reg = r + (size_t)j * REG, v = 0;
		for (int k = 0; k < FEAT_SLIDE_SLOTS; k++) {
			uint8_t *s = reg + k * SLOT;
			if (!s[2])
				continue;
			if ((uint16_t)(c16 - s_bid(s)) >= nb)
				s[2] = 0;
			else if (s[2] > v)
				v = s[2];
		}
		c[v]++;
	}
	memcpy(r + FEAT_SLIDE_REGS, c, sizeof c);
}

int
feat_slide_check(const uint8_t *r)
{
	for (size_t k = 2; k < FEAT_SLIDE_REGS; k += SLOT)
		if (r[k] > HLL_Q + 1)
			return -1;
	return 0;
}
