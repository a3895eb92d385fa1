/* clock.h - the clocks every stage reads: monotonic for timeouts and
 * intervals, wall clock for timestamps (@in, latency against @ts). */
#ifndef FP_CLOCK_H
#define FP_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
fp_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t fp_mono_ms(void) { return fp_mono_us() / 1000; }

static inline int64_t
fp_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t fp_wall_ms(void) { return fp_wall_us() / 1000; }

#endif
