/* stats.h - per-stage metrics: counters, gauges, latency histograms, written
 * as Prometheus text (node_exporter textfile convention).
 *
 * One registry per process.  Metrics are registered at start-up (allocation
 * happens there); recording on the hot path is an add to a field of a struct
 * the caller holds a pointer to: no lookup, no allocation, no lock.  The
 * module is single-threaded; it needs no thread and no timer: the tool's
 * loop calls stats_tick() with the current time, which
 *   - writes $FP_STATS_DIR/TOOL[-SHARD].prom atomically (a temporary file in
 *     the same directory, then rename) every interval (default 5 s), and
 *   - dumps the same text to stderr when SIGUSR1 arrived since the last
 *     tick (after stats_catch_sigusr1()).
 * Without FP_STATS_DIR nothing is written, but SIGUSR1 dumps still work.
 *
 * Exposition: every metric is named featpipe_<tool>_<name>, where <tool> is
 * the tool name without "fp-" and with '-' as '_' (fp-kvwrite -> kvwrite),
 * and carries the labels tool="fp-kvwrite", shard="N" (FP_SHARD, default
 * 0), pipeline="P" (FP_PIPELINE, default "default"), plus at most one
 * label of its own (errors_total{reason="bad_json"}).  Conventional names:
 *   records_in_total, records_out_total    counters
 *   errors_total{reason=...}               counter (stats_error())
 *   skipped_replays_total                  counter
 *   batch_size                             histogram of counts
 *   ..._latency_microseconds               histogram of microseconds
 *
 * Histograms record unsigned integers (microseconds, or counts) into fixed
 * log-scale buckets: exact below 16, then 8 buckets per power of two up to
 * 2^40 (about 12.7 days in microseconds); a quantile is reported as the
 * middle of its bucket, within 6.25% of the true value.  They are written
 * as a Prometheus summary: {quantile="0.5"|"0.99"|"0.999"} over a sliding
 * window of the last one to two windows (default window 60 s; NaN when it
 * saw nothing), and _sum and _count since start.
 *
 * Wiring a tool (errors in stats_new() are out of memory: warn and go on
 * without metrics, or die):
 *
 *	stats *st = stats_new("fp-kvwrite", err, sizeof err);
 *	stats_counter *in = stats_counter_new(st, "records_in_total", "Records read.", NULL, NULL);
 *	stats_hist *lat = stats_hist_new(st, "commit_latency_microseconds",
 *	                                 "@in to commit, per record.", NULL, NULL);
 *	if (stats_register_errstr(st)) fp_die(FP_EXIT_USAGE, "%s", stats_register_errstr(st));
 *	stats_catch_sigusr1();
 *	for (;;) {                                   (the tool's read loop)
 *		... stats_add(in, 1); ... stats_add(stats_error(st, "bad_frame"), 1);
 *		... stats_observe(lat, now_us - in_us);
 *		if (stats_tick(st, stats_clock_ms()) < 0) fp_warn("%s", stats_errstr(st));
 *	}
 *	stats_final(st); stats_free(st);             (at exit: the last figures)
 */
#ifndef FP_STATS_H
#define FP_STATS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"

#define STATS_HIST_BUCKETS (16 + 37 * 8)  /* 16 exact, then 2^4 .. 2^40 */

typedef struct stats stats;

typedef struct stats_counter {
	uint64_t v;
} stats_counter;

typedef struct stats_gauge {
	double v;
} stats_gauge;

typedef struct stats_hist {
	uint64_t count;                     /* since start */
	uint64_t sum;                       /* since start */
	uint32_t cur;                       /* which of win[] records now */
	uint64_t win[2][STATS_HIST_BUCKETS]; /* current and previous window */
} stats_hist;

/* Create the registry of tool (e.g. "fp-merge").  Reads FP_STATS_DIR,
 * FP_SHARD, FP_PIPELINE.  Owned by the caller (stats_free).  NULL with errstr
 * when out of memory or a name is unusable. */
stats *stats_new(const char *tool, char *errstr, size_t errlen);
void stats_free(stats *s);

/* Change the file interval and the quantile window (ms; defaults 5000 and
 * 60000).  Values <= 0 keep the current setting. */
void stats_set_interval(stats *s, int64_t write_ms, int64_t window_ms);

/* The path written (NULL without FP_STATS_DIR).  Owned by s. */
const char *stats_path(const stats *s);

/* Register a metric.  name is the part after "featpipe_<tool>_", made of
 * [a-zA-Z0-9_:]; help is one line; label_name/label_value add one label of
 * its own (both NULL for none).  Registering the same name and label twice
 * returns the same metric.  The returned pointer is owned by s and valid
 * until stats_free().  Never NULL: when out of memory, when the name or
 * label name is invalid, or the name is already registered with another
 * type, it returns a stand-in that is never written, and
 * stats_register_errstr() says so (check it once after registering). */
stats_counter *stats_counter_new(stats *s, const char *name, const char *help,
                                 const char *label_name, const char *label_value);
stats_gauge *stats_gauge_new(stats *s, const char *name, const char *help,
                             const char *label_name, const char *label_value);
stats_hist *stats_hist_new(stats *s, const char *name, const char *help,
                           const char *label_name, const char *label_value);

/* The counter errors_total{reason=reason}, created on first use (a lookup:
 * meant for errors, which are rare, not for every record).  Never NULL, as
 * above. */
stats_counter *stats_error(stats *s, const char *reason);

/* Hot path. */
static inline void
stats_add(stats_counter *c, uint64_t n)
{
	c->v += n;
}

static inline void
stats_set(stats_gauge *g, double v)
{
	g->v = v;
}

/* The bucket of v: exact below 16, then 8 per power of two. */
static inline unsigned
stats_bucket(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 4..63 */
	if (e > 40)
		return STATS_HIST_BUCKETS - 1;
	return 16u + (e - 4u) * 8u + (unsigned)((v >> (e - 3u)) & 7u);
}

static inline void
stats_observe(stats_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	h->win[h->cur][stats_bucket(v)]++;
}

/* The q-quantile (0 < q <= 1) of what h saw in its window: the middle of
 * the bucket holding it (exact below 16); NaN when the window is empty. */
double stats_hist_quantile(const stats_hist *h, double q);

/* The current time for stats_tick(): CLOCK_MONOTONIC in ms. */
int64_t stats_clock_ms(void);

/* Call from the tool's loop, as often as convenient (every record is fine:
 * it is a comparison unless something is due).  Writes the file when the
 * interval passed, dumps to stderr when SIGUSR1 was caught, rotates the
 * quantile window.  0, or -1 with stats_errstr() when the file could not
 * be written (the tool warns and carries on; the next tick tries again). */
int stats_tick(stats *s, int64_t now_ms);

/* Write the file now (e.g. at exit, so the last figures are seen).  0, or
 * -1 with stats_errstr(); 0 and nothing written without FP_STATS_DIR. */
int stats_write(stats *s);

/* At exit: the dump to stderr when SIGUSR1 arrived since the last tick,
 * then stats_write() (the last figures).  0, or -1 with stats_errstr(). */
int stats_final(stats *s);

/* Write p[0..n) to path atomically: a temporary file beside it (named
 * path.PID.tmp, which the textfile collector ignores), then rename.  For
 * tools that render their own text (fp-lag).  0, or -1 with errstr. */
int stats_write_text(const char *path, const void *p, size_t n, char *errstr, size_t errlen);

/* Append label value v escaped for the text format (\\, \", \n).  0, or -1
 * when out of memory. */
int stats_label_escape(fp_buf *b, const char *v);

/* Append the exposition text to f (stderr for SIGUSR1).  0 or -1. */
int stats_dump(stats *s, FILE *f);

/* The last error of stats_tick()/stats_write(); owned by s. */
const char *stats_errstr(const stats *s);
/* The first registration that failed ("stats: cannot register 'NAME':
 * why"), or NULL when every one succeeded.  Owned by s. */
const char *stats_register_errstr(const stats *s);

/* Install a SIGUSR1 handler (SA_RESTART, so blocking reads are not
 * disturbed) that sets stats_dump_requested; stats_tick() dumps and clears
 * it.  A tool blocked on input dumps at its next tick.  0 or -1 (errno). */
int stats_catch_sigusr1(void);
extern volatile sig_atomic_t stats_dump_requested;

#endif
