/* test_stats.c - lib/stats: buckets, quantiles, registry, exposition, tick. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "../../lib/stats.h"

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void
test_buckets(void)
{
	int good = 1;
	for (uint64_t v = 0; v < 16; v++)
		good &= stats_bucket(v) == v;
	ok(good, "values below 16 have exact buckets");
	ok(stats_bucket(16) == 16 && stats_bucket(17) == 16 && stats_bucket(18) == 17 &&
	   stats_bucket(31) == 23 && stats_bucket(32) == 24, "8 buckets per power of two");
	ok(stats_bucket(UINT64_MAX) == STATS_HIST_BUCKETS - 1 &&
	   stats_bucket((uint64_t)1 << 41) == STATS_HIST_BUCKETS - 1 &&
	   stats_bucket(((uint64_t)1 << 41) - 1) == STATS_HIST_BUCKETS - 1,
	   "huge values land in the last bucket");
	unsigned prev = 0;
	good = 1;
	for (uint64_t v = 1; v < (1u << 20); v++) {
		unsigned b = stats_bucket(v);
		good &= b == prev || b == prev + 1;
		prev = b;
	}
	ok(good, "buckets are monotonic and contiguous");
}

static void
test_quantiles(void)
{
	static stats_hist h;
	ok(isnan(stats_hist_quantile(&h, 0.5)), "empty histogram: quantile is NaN");
	for (uint64_t v = 1; v <= 100000; v++)
		stats_observe(&h, v);
	double p50 = stats_hist_quantile(&h, 0.5), p99 = stats_hist_quantile(&h, 0.99),
	       p999 = stats_hist_quantile(&h, 0.999);
	ok(fabs(p50 - 50000) / 50000 <= 0.0625, "p50 of 1..100000 within 6.25%%");
	ok(fabs(p99 - 99000) / 99000 <= 0.0625, "p99 within 6.25%%");
	ok(fabs(p999 - 99900) / 99900 <= 0.0625, "p999 within 6.25%%");
	ok(h.count == 100000 && h.sum == 5000050000ull, "count and sum are exact");
	memset(&h, 0, sizeof h);
	stats_observe(&h, 7);
	stats_observe(&h, 7);
	stats_observe(&h, 3);
	ok(stats_hist_quantile(&h, 0.5) == 7 && stats_hist_quantile(&h, 0.3) == 3,
	   "small values are exact");
}

static void
test_registry(void)
{
	char err[200];
	unsetenv("FP_STATS_DIR");
	stats *s = stats_new("fp-merge", err, sizeof err);
	ok(s != NULL && stats_path(s) == NULL, "no FP_STATS_DIR: no path");
	stats_counter *a = stats_counter_new(s, "records_in_total", "Records read.", NULL, NULL);
	stats_counter *b = stats_counter_new(s, "records_in_total", "Records read.", NULL, NULL);
	ok(a && a == b, "registering twice gives the same counter");
	ok(stats_register_errstr(s) == NULL, "no registration error yet");
	stats_gauge *g = stats_gauge_new(s, "records_in_total", "x", NULL, NULL);
	ok(g != NULL && (void *)g != (void *)a && stats_register_errstr(s) &&
	   strcmp(stats_register_errstr(s), "stats: cannot register "
	          "'featpipe_merge_records_in_total': already registered with another type") == 0,
	   "same name with another type: a stand-in, and the error says why");
	stats_set(g, 1); /* the stand-in takes records */
	ok(stats_counter_new(s, "bad name", "x", NULL, NULL) != NULL &&
	   stats_counter_new(s, "ok", "x", "bad-label", "v") != NULL &&
	   stats_hist_new(s, "ok", "x", "label", NULL) != NULL &&
	   strstr(stats_register_errstr(s), "records_in_total"), "invalid names: stand-ins; the first error kept");
	stats_observe(stats_hist_new(s, "b c", "x", NULL, NULL), 5);
	stats_counter *e1 = stats_error(s, "bad_json"), *e2 = stats_error(s, "too_big");
	ok(e1 && e2 && e1 != e2 && stats_error(s, "bad_json") == e1, "errors by reason");
	ok(stats_write(s) == 0, "stats_write without a directory is a no-op");
	stats_free(s);
}

static void
test_file(void)
{
	char err[200], dir[] = "/tmp/test_stats.XXXXXX", path[300];
	ok(mkdtemp(dir) != NULL, "temp dir");
	setenv("FP_STATS_DIR", dir, 1);
	setenv("FP_SHARD", "2", 1);
	setenv("FP_PIPELINE", "p\"1", 1);
	stats *s = stats_new("fp-kv-write", err, sizeof err);
	snprintf(path, sizeof path, "%s/fp-kv-write-2.prom", dir);
	ok(s && strcmp(stats_path(s), path) == 0, "path is DIR/TOOL-SHARD.prom");
	stats_counter *in = stats_counter_new(s, "records_in_total", "Records read.", NULL, NULL);
	stats_gauge *g = stats_gauge_new(s, "buffered_keys", "Keys waiting.", NULL, NULL);
	stats_hist *h = stats_hist_new(s, "commit_latency_microseconds", "Latency.", NULL, NULL);
	stats_add(in, 41);
	stats_add(in, 1);
	stats_add(stats_error(s, "bad_json"), 3);
	stats_add(stats_error(s, "x\\y"), 1);
	stats_set(g, 2.5);
	stats_observe(h, 5);

	int64_t t0 = 1000000;
	ok(stats_tick(s, t0) == 0 && access(path, F_OK) != 0, "first tick writes nothing yet");
	ok(stats_tick(s, t0 + 4999) == 0 && access(path, F_OK) != 0, "nor before the interval");
	ok(stats_tick(s, t0 + 5000) == 0 && access(path, F_OK) == 0, "the interval writes the file");
	ok(count_files(dir) == 1, "no temporary file left behind");
	char *txt = slurp(path);
	const char *L = "{tool=\"fp-kv-write\",shard=\"2\",pipeline=\"p\\\"1\"";
	char want[4096];
	snprintf(want, sizeof want,
	         "# HELP featpipe_kv_write_records_in_total Records read.\n"
	         "# TYPE featpipe_kv_write_records_in_total counter\n"
	         "featpipe_kv_write_records_in_total%s} 42\n"
	         "# HELP featpipe_kv_write_buffered_keys Keys waiting.\n"
	         "# TYPE featpipe_kv_write_buffered_keys gauge\n"
	         "featpipe_kv_write_buffered_keys%s} 2.5\n"
	         "# HELP featpipe_kv_write_commit_latency_microseconds Latency.\n"
	         "# TYPE featpipe_kv_write_commit_latency_microseconds summary\n"
	         "featpipe_kv_write_commit_latency_microseconds%s,quantile=\"0.5\"} 5\n"
	         "featpipe_kv_write_commit_latency_microseconds%s,quantile=\"0.99\"} 5\n"
	         "featpipe_kv_write_commit_latency_microseconds%s,quantile=\"0.999\"} 5\n"
	         "featpipe_kv_write_commit_latency_microseconds_sum%s} 5\n"
	         "featpipe_kv_write_commit_latency_microseconds_count%s} 1\n"
	         "# HELP featpipe_kv_write_errors_total Records refused, by reason.\n"
	         "# TYPE featpipe_kv_write_errors_total counter\n"
	         "featpipe_kv_write_errors_total%s,reason=\"bad_json\"} 3\n"
	         "featpipe_kv_write_errors_total%s,reason=\"x\\\\y\"} 1\n",
	         L, L, L, L, L, L, L, L, L);
	ok(txt && strcmp(txt, want) == 0, "exposition text: names, labels, escaping, grouping");
	if (txt && strcmp(txt, want) != 0)
		printf("# got:\n%s# want:\n%s", txt, want);

	/* The quantile window: after two rotations the old observation is gone. */
	ok(stats_tick(s, t0 + 60000) == 0 && stats_hist_quantile(h, 0.5) == 5,
	   "one rotation keeps the previous window");
	ok(stats_tick(s, t0 + 120000) == 0 && isnan(stats_hist_quantile(h, 0.5)) &&
	   h->count == 1, "two rotations forget it; count stays");

	/* SIGUSR1 dumps to stderr at the next tick. */
	ok(stats_catch_sigusr1() == 0, "SIGUSR1 handler installed");
	raise(SIGUSR1);
	ok(stats_dump_requested == 1, "SIGUSR1 sets the flag");
	fflush(stderr);
	char dump[300];
	snprintf(dump, sizeof dump, "%s/dump.txt", dir);
	FILE *saved = stderr;
	stderr = fopen(dump, "w");
	stats_tick(s, t0 + 120001);
	fclose(stderr);
	stderr = saved;
	ok(stats_dump_requested == 0, "the tick clears it");
	txt = slurp(dump);
	ok(txt && strstr(txt, "featpipe_kv_write_records_in_total{") != NULL, "and dumps the text");
	unlink(dump);

	/* At exit: a pending dump, then the file, whatever the interval. */
	unlink(path);
	stats_add(in, 1);
	raise(SIGUSR1);
	fflush(stderr);
	stderr = fopen(dump, "w");
	int fr = stats_final(s);
	fclose(stderr);
	stderr = saved;
	txt = slurp(dump);
	ok(fr == 0 && stats_dump_requested == 0 && txt &&
	   strstr(txt, "featpipe_kv_write_records_in_total{") != NULL,
	   "stats_final dumps when SIGUSR1 is pending");
	txt = slurp(path);
	ok(txt && strstr(txt, "featpipe_kv_write_records_in_total{") && strstr(txt, "} 43\n"),
	   "and writes the file with the last figures");
	unlink(dump);

	/* A directory that is not there is an error the tool can report. */
	char missing[300];
	snprintf(missing, sizeof missing, "%s/missing", dir);
	setenv("FP_STATS_DIR", missing, 1);
	stats *s2 = stats_new("fp-x", err, sizeof err);
	ok(s2 && stats_write(s2) == -1 && strstr(stats_errstr(s2), "unable to write '") &&
	   strstr(stats_errstr(s2), "No such file or directory"), "a missing directory is reported");
	ok(s2 && stats_tick(s2, 0) == 0 && stats_tick(s2, 5000) == -1, "also by stats_tick");
	stats_free(s2);
	stats_free(s);
	unlink(path);
	rmdir(dir);
	unsetenv("FP_STATS_DIR");
	unsetenv("FP_SHARD");
	unsetenv("FP_PIPELINE");
}

int
main(void)
{
	test_buckets();
	test_quantiles();
	test_registry();
	test_file();
	return tap_done();
}
