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
#include "../lib/store.h"

static const char USAGE[] =
	"usage: fp-merge -f file [--store url | --no-store] [--max-keys n] [--batch n] "
	"[--commit-wait duration] [--max-frame size] [-v]\n";

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
	fp_warn("records=%llu updates=%llu control=%llu skipped=%llu no_key=%llu no_time=%llu "
	        "batches=%llu round_trips=%llu loads=%llu loaded=%llu evicted=%llu "
	        "offset_reads=%llu waits=%llu keys=%zu keys_peak=%zu key_bytes=%zu "
	        "bad_field=%llu late=%llu",
	        (unsigned long long)s->records, (unsigned long long)s->updates,
	        (unsigned long long)s->control, (unsigned long long)s->skipped,
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
	enum { OPT_STORE = 256, OPT_NO_STORE, OPT_MAX_KEYS, OPT_BATCH, OPT_COMMIT_WAIT, OPT_MAX_FRAME };
	static const struct option longopts[] = {
		{"store", required_argument, NULL, OPT_STORE},
		{"no-store", no_argument, NULL, OPT_NO_STORE},
		{"max-keys", required_argument, NULL, OPT_MAX_KEYS},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"commit-wait", required_argument, NULL, OPT_COMMIT_WAIT},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL, *store_flag = NULL;
	int no_store = 0, verbose = 0, c;
	merge_opts o = {.max_keys = 1000000, .batch_max = 4096};
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
	merge *m = merge_new(&o, err, sizeof err);
	if (!m)
		fp_die(FP_EXIT_IO, "%s", err);
	int status = merge_run(m, STDIN_FILENO, STDOUT_FILENO);
	if (status == MERGE_STOPPED)
		status = FP_EXIT_OK; /* the reader went away: a quiet stop */
	else if (status != MERGE_OK)
		fp_warn("%s", merge_errstr(m));
	report(m, verbose);
	merge_free(m);
	if (rc)
		redisFree(rc);
	feat_spec_free(spec);
	return status;
}
