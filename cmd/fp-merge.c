/* fp-merge - keyed feature state merged with history: records in, updates out. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/feat.h"
#include "../lib/frame.h"
#include "../lib/log.h"
#include "../lib/merge.h"
#include "../lib/num.h"
#include "../lib/stats.h"
#include "../lib/store.h"

static const char USAGE[] =
	"usage: fp-merge -f file [--store url | --no-store] [--max-keys n] [--batch n] "
	"[--per-record] [--commit-wait duration] [--max-frame size] [-v]\n";

#define CONNECT_MS 5000
#define COMMAND_MS 30000

/* FP_SHARD / FP_SHARDS, as fp-keyby sets them. */
static void
shard_env(int *shard, int *nshards)
{
	const char *s = getenv("FP_SHARD"), *n = getenv("FP_SHARDS");
	int64_t v;
	char err[100];
	*shard = 0;
	*nshards = 1;
	if (n && *n) {
		if (fp_parse_i64(n, 1, 65536, &v, err, sizeof err) < 0)
			fp_usage_error(USAGE, "FP_SHARDS '%s': %s", n, err);
		*nshards = (int)v;
	}
	if (s && *s) {
		if (fp_parse_i64(s, 0, *nshards - 1, &v, err, sizeof err) < 0)
			fp_usage_error(USAGE, "FP_SHARD '%s' with FP_SHARDS %d: %s", s, *nshards, err);
		*shard = (int)v;
	}
}

/* Metrics: the engine's counts copied at every tick, its histograms. */
static struct {
	stats *s;
	stats_counter *in, *out, *control, *skipped, *no_key, *no_time, *bad_field, *late;
	stats_counter *loads, *evicted, *waits;
	stats_gauge *keys;
} mt;

static void
metrics_sync(const merge_stats *st)
{
	mt.in->v = st->records;
	mt.out->v = st->updates;
	mt.control->v = st->control;
	mt.skipped->v = st->skipped;
	mt.no_key->v = st->no_key;
	mt.no_time->v = st->no_time;
	mt.bad_field->v = st->feat.bad_field;
	mt.late->v = st->feat.late;
	mt.loads->v = st->loads;
	mt.evicted->v = st->evicted;
	mt.waits->v = st->waits;
	stats_set(mt.keys, (double)st->keys);
}

static void
metrics_tick(const merge_stats *st, void *arg)
{
	(void)arg;
	metrics_sync(st);
	if (stats_tick(mt.s, stats_clock_ms()) < 0)
		fp_warn("%s", stats_errstr(mt.s));
}

static void
metrics_start(merge_metrics *mm)
{
	char err[300];
	stats *s = mt.s = stats_new("fp-merge", err, sizeof err);
	if (!s)
		fp_die(FP_EXIT_IO, "%s", err);
	mt.in = stats_counter_new(s, "records_in_total", "Data frames read.", NULL, NULL);
	mt.out = stats_counter_new(s, "records_out_total", "Update frames written.", NULL, NULL);
	mt.control = stats_counter_new(s, "control_frames_total", "Control frames forwarded.",
	                               NULL, NULL);
	mt.skipped = stats_counter_new(s, "skipped_replays_total",
	                               "Records below the stored offsets (already applied).", NULL, NULL);
	mt.no_key = stats_error(s, "no_key");
	mt.no_time = stats_error(s, "no_time");
	mt.bad_field = stats_counter_new(s, "bad_fields_total",
	                                 "Feature inputs missing or of the wrong type (record, feature pairs).",
	                                 NULL, NULL);
	mt.late = stats_counter_new(s, "late_total",
	                            "Feature inputs already out of the window (record, feature pairs).",
	                            NULL, NULL);
	mt.loads = stats_counter_new(s, "keys_loaded_total", "Keys asked from the store.", NULL, NULL);
	mt.evicted = stats_counter_new(s, "keys_evicted_total", "Keys evicted from memory.", NULL, NULL);
	mt.waits = stats_counter_new(s, "commit_waits_total",
	                             "Times input stopped until fp-kvwrite committed.", NULL, NULL);
	mt.keys = stats_gauge_new(s, "keys", "Keys in memory.", NULL, NULL);
	mm->batch_size = stats_hist_new(s, "batch_size", "Frames per input batch.", NULL, NULL);
	mm->batch_us = stats_hist_new(s, "batch_latency_microseconds",
	                              "A batch: keys loaded, features merged, updates written.", NULL, NULL);
	mm->load_us = stats_hist_new(s, "load_latency_microseconds",
	                             "A round trip loading a batch's keys from the store.", NULL, NULL);
	mm->tick = metrics_tick;
	if (stats_register_errstr(s))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(s));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
}

static void
report(const merge *m, int verbose)
{
	const merge_stats *s = merge_get_stats(m);
	if (s->skipped)
		fp_warn("skipped %llu records already applied (below the stored offsets)",
		        (unsigned long long)s->skipped);
	if (s->no_key)
		fp_warn("dropped %llu records without a usable key field",
		        (unsigned long long)s->no_key);
	if (s->no_time)
		fp_warn("dropped %llu records without a usable time field",
		        (unsigned long long)s->no_time);
	if (s->reset)
		fp_warn("%llu stored features started empty because their definition changed",
		        (unsigned long long)s->reset);
	if (!verbose)
		return;
	fp_warn("records=%llu updates=%llu syncs=%llu control=%llu skipped=%llu no_key=%llu no_time=%llu "
	        "batches=%llu round_trips=%llu loads=%llu loaded=%llu evicted=%llu "
	        "offset_reads=%llu waits=%llu keys=%zu keys_peak=%zu key_bytes=%zu "
	        "bad_field=%llu late=%llu",
	        (unsigned long long)s->records, (unsigned long long)s->updates,
	        (unsigned long long)s->syncs, (unsigned long long)s->control, (unsigned long long)s->skipped,
	        (unsigned long long)s->no_key, (unsigned long long)s->no_time,
	        (unsigned long long)s->batches, (unsigned long long)s->round_trips,
	        (unsigned long long)s->loads, (unsigned long long)s->loaded,
	        (unsigned long long)s->evicted, (unsigned long long)s->offset_reads,
	        (unsigned long long)s->waits, s->keys, s->keys_peak, merge_memory(m),
	        (unsigned long long)s->feat.bad_field, (unsigned long long)s->feat.late);
}

int
main(int argc, char **argv)
{
	enum { OPT_STORE = 256, OPT_NO_STORE, OPT_MAX_KEYS, OPT_BATCH, OPT_PER_RECORD, OPT_COMMIT_WAIT,
	       OPT_MAX_FRAME };
	static const struct option longopts[] = {
		{"store", required_argument, NULL, OPT_STORE},
		{"no-store", no_argument, NULL, OPT_NO_STORE},
		{"max-keys", required_argument, NULL, OPT_MAX_KEYS},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"per-record", no_argument, NULL, OPT_PER_RECORD},
		{"commit-wait", required_argument, NULL, OPT_COMMIT_WAIT},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL, *store_flag = NULL;
	int no_store = 0, verbose = 0, c;
	merge_opts o = {.max_keys = 1000000, .batch_max = 16384};
	char err[600];
	uint64_t v;

	fp_tool_init("fp-merge");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt_long(argc, argv, "f:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case OPT_STORE:
			store_flag = optarg;
			break;
		case OPT_NO_STORE:
			no_store = 1;
			break;
		case OPT_MAX_KEYS:
			if (fp_parse_u64(optarg, 1, (uint64_t)1 << 40, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-keys: %s", err);
			o.max_keys = (size_t)v;
			break;
		case OPT_BATCH:
			if (fp_parse_u64(optarg, 1, 1u << 20, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--batch: %s", err);
			o.batch_max = (size_t)v;
			break;
		case OPT_PER_RECORD:
			o.per_record = 1;
			break;
		case OPT_COMMIT_WAIT:
			if (fp_parse_duration_ms(optarg, 1000, 0, &o.commit_wait_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--commit-wait: %s", err);
			break;
		case OPT_MAX_FRAME:
			if (fp_parse_size(optarg, 1, FR_HARD_MAX, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-frame: %s", err);
			o.max_frame = (size_t)v;
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (optind < argc)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind]);
	if (!file)
		fp_usage_error(USAGE, "a feature file is required (-f file)");
	if (no_store && store_flag)
		fp_usage_error(USAGE, "--store and --no-store exclude each other");
	const char *url = no_store ? NULL : store_url_default(store_flag);
	if (!no_store && !url)
		fp_usage_error(USAGE, "no store: give --store url, set FP_REDIS, or use --no-store");
	if (!o.max_frame && fr_max_frame_env(&o.max_frame, err, sizeof err) < 0)
		fp_usage_error(USAGE, "%s", err);
	if (isatty(STDOUT_FILENO))
		fp_die(FP_EXIT_USAGE, "refusing to write binary frames to a terminal; "
		       "pipe into fp-kvwrite or fp-cat");
	shard_env(&o.shard, &o.nshards);
	o.pipeline = store_pipeline();

	feat_spec *spec = feat_spec_parse_file(file, err, sizeof err);
	if (!spec)
		fp_die(FP_EXIT_USAGE, "%s", err);
	o.spec = spec;
	redisContext *rc = NULL;
	if (url) {
		store_url u;
		if (store_url_parse(url, &u, err, sizeof err) < 0)
			fp_usage_error(USAGE, "%s", err);
		if (!(rc = store_connect(&u, CONNECT_MS, COMMAND_MS, err, sizeof err)))
			fp_die(FP_EXIT_REMOTE, "%s", err);
		o.store = rc;
	}
	merge_metrics mm = {0};
	metrics_start(&mm);
	o.metrics = &mm;
	merge *m = merge_new(&o, err, sizeof err);
	if (!m)
		fp_die(FP_EXIT_IO, "%s", err);
	int status = merge_run(m, STDIN_FILENO, STDOUT_FILENO);
	if (status == MERGE_STOPPED)
		status = FP_EXIT_OK; /* the reader went away: a quiet stop */
	else if (status != MERGE_OK)
		fp_warn("%s", merge_errstr(m));
	report(m, verbose);
	metrics_sync(merge_get_stats(m));
	if (stats_final(mt.s) < 0)
		fp_warn("%s", stats_errstr(mt.s));
	stats_free(mt.s);
	merge_free(m);
	if (rc)
		redisFree(rc);
	feat_spec_free(spec);
	return status;
}
