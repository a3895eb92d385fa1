/* fp-kvwrite - fp-merge updates to Redis, one atomic epoch at a time. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/frame.h"
#include "../lib/kvwrite.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"

static const char USAGE[] =
	"usage: fp-kvwrite [-v] [--store url] [--max-batch keys] [--flush-ms ms] [--zset feature] [--cache-keys n] [--connect-timeout duration] [--timeout duration] [--give-up-after duration] [--max-frame size] [file]\n"
	"       fp-kvwrite --dry-run [-v] [--max-batch keys] [--flush-ms ms] [--zset feature] [--cache-keys n] [--max-frame size] [file]\n";

#define MAX_ZSET 64

static void
warn_cb(void *arg, const char *msg)
{
	(void)arg;
	fp_warn("%s", msg);
}

static void
metrics_tick(void *arg)
{
	stats *st = arg;
	if (stats_tick(st, stats_clock_ms()) < 0)
		fp_warn("%s", stats_errstr(st));
}

/* Register fp-kvwrite's metrics (fp-kvwrite(1), FP_STATS_DIR). */
static stats *
metrics_start(kvw_metrics *m)
{
	char err[300];
	stats *st = stats_new("fp-kvwrite", err, sizeof err);
	if (!st)
		fp_die(FP_EXIT_IO, "%s", err);
	m->records_in = stats_counter_new(st, "records_in_total", "Update frames read.", NULL, NULL);
	m->records_out = stats_counter_new(st, "records_out_total",
	                                   "Update frames committed (acknowledged by Redis).", NULL, NULL);
	m->barriers = stats_counter_new(st, "barriers_total", "Barriers read.", NULL, NULL);
	m->epochs = stats_counter_new(st, "epochs_total", "Epochs committed.", NULL, NULL);
	m->keys = stats_counter_new(st, "keys_written_total", "Keys written (after coalescing).",
	                            NULL, NULL);
	m->fields = stats_counter_new(st, "fields_written_total",
	                              "Fields written (set or deleted) by committed epochs.", NULL, NULL);
	m->fields_skipped = stats_counter_new(st, "fields_skipped_total",
	                                      "Fields left as Redis holds them: unchanged since "
	                                      "this process committed them (--cache-keys).", NULL, NULL);
	m->reconnects = stats_counter_new(st, "reconnects_total", "Connections to Redis re-made.",
	                                  NULL, NULL);
	m->e2e_us = stats_hist_new(st, "e2e_latency_microseconds",
	                           "Event time (@ts) to commit, per update.", NULL, NULL);
	m->pipeline_us = stats_hist_new(st, "pipeline_latency_microseconds",
	                                "Read from Kafka (@in) to commit, per update.", NULL, NULL);
	m->commit_us = stats_hist_new(st, "commit_latency_microseconds",
	                              "Commit of an epoch, retries included.", NULL, NULL);
	m->epoch_keys = stats_hist_new(st, "batch_size", "Keys written per epoch.", NULL, NULL);
	m->epoch_updates = stats_hist_new(st, "batch_updates", "Update frames per epoch.", NULL, NULL);
	if (stats_register_errstr(st))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(st));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
	m->tick = metrics_tick;
	m->tick_arg = st;
	return st;
}

static int64_t
duration(const char *flag, const char *s, int64_t bare_unit, int allow_zero)
{
	char err[200];
	int64_t v;
	if (fp_parse_duration_ms(s, bare_unit, allow_zero, &v, err, sizeof err) < 0)
		fp_usage_error(USAGE, "%s: %s", flag, err);
	return v;
}

static int
env_int(const char *name, int64_t min, int64_t max, int64_t def)
{
	const char *s = getenv(name);
	char err[200];
	int64_t v;
	if (!s || !*s)
		return (int)def;
	if (fp_parse_i64(s, min, max, &v, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "%s='%s': %s", name, s, err);
	return (int)v;
}

int
main(int argc, char **argv)
{
	enum { OPT_STORE = 256, OPT_MAX_BATCH, OPT_FLUSH, OPT_ZSET, OPT_CACHE, OPT_CONNECT,
	       OPT_TIMEOUT, OPT_GIVE_UP, OPT_MAX_FRAME, OPT_DRY };
	static const struct option longopts[] = {
		{"store", required_argument, NULL, OPT_STORE},
		{"max-batch", required_argument, NULL, OPT_MAX_BATCH},
		{"flush-ms", required_argument, NULL, OPT_FLUSH},
		{"zset", required_argument, NULL, OPT_ZSET},
		{"cache-keys", required_argument, NULL, OPT_CACHE},
		{"connect-timeout", required_argument, NULL, OPT_CONNECT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"give-up-after", required_argument, NULL, OPT_GIVE_UP},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{"dry-run", no_argument, NULL, OPT_DRY},
		{NULL, 0, NULL, 0},
	};
	static const char *zset[MAX_ZSET];
	kvw_options o = {
		.max_batch = 2000,
		.flush_ms = 3,
		.cache_keys = 1000000,
		.zset = zset,
		.connect_ms = 2000,
		.command_ms = 10000,
		.dry_fd = STDOUT_FILENO,
		.warn = warn_cb,
	};
	const char *store = NULL;
	const char *redis_flag = NULL; /* a Redis option, meaningless with --dry-run */
	int verbose = 0;
	char err[200];
	int c;

	fp_tool_init("fp-kvwrite");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose = 1;
			break;
		case OPT_STORE:
			store = optarg;
			redis_flag = "--store";
			break;
		case OPT_MAX_BATCH: {
			uint64_t v;
			if (fp_parse_u64(optarg, 1, 100000000, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-batch: %s", err);
			o.max_batch = v;
			break;
		}
		case OPT_FLUSH:
			o.flush_ms = duration("--flush-ms", optarg, 1, 1);
			break;
		case OPT_ZSET:
			if (o.nzset == MAX_ZSET)
				fp_usage_error(USAGE, "--zset: at most %d features", MAX_ZSET);
			if (!*optarg || optarg[0] == '@')
				fp_usage_error(USAGE, "--zset: '%s' is not a feature name", optarg);
			zset[o.nzset++] = optarg;
			break;
		case OPT_CACHE: {
			uint64_t v;
			if (fp_parse_u64(optarg, 0, 1000000000, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--cache-keys: %s", err);
			o.cache_keys = v;
			break;
		}
		case OPT_CONNECT:
			o.connect_ms = (int)duration("--connect-timeout", optarg, 1000, 0);
			redis_flag = "--connect-timeout";
			break;
		case OPT_TIMEOUT:
			o.command_ms = (int)duration("--timeout", optarg, 1000, 1);
			redis_flag = "--timeout";
			break;
		case OPT_GIVE_UP:
			o.give_up_ms = duration("--give-up-after", optarg, 1000, 0);
			redis_flag = "--give-up-after";
			break;
		case OPT_MAX_FRAME: {
			uint64_t v;
			if (fp_parse_size(optarg, 1, FR_HARD_MAX, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-frame: %s", err);
			o.max_frame = v;
			break;
		}
		case OPT_DRY:
			o.dry_run = 1;
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (o.dry_run && redis_flag)
		fp_usage_error(USAGE, "%s has no use with --dry-run, which connects to nothing", redis_flag);
	if (argc - optind > 1)
		fp_usage_error(USAGE, "at most one input file");
	if (o.connect_ms > 3600000 || o.command_ms > 3600000)
		fp_usage_error(USAGE, "timeouts are limited to 1h");
	o.nshards = env_int("FP_SHARDS", 1, 1 << 20, 1);
	o.shard = env_int("FP_SHARD", 0, o.nshards - 1, 0);
	o.pipeline = store_pipeline();
	if (!o.dry_run) {
		const char *url = store_url_default(store);
		if (!url)
			fp_usage_error(USAGE, "no store: give --store redis://host:port/db or set FP_REDIS");
		if (store_url_parse(url, &o.url, err, sizeof err) < 0)
			fp_usage_error(USAGE, "--store: %s", err);
	}

	const char *name = "<stdin>";
	int fd = STDIN_FILENO;
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		name = argv[optind];
		if ((fd = open(name, O_RDONLY)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", name, strerror(errno));
	}

	kvw_metrics metrics = {0};
	stats *st = metrics_start(&metrics);
	o.metrics = &metrics;
	kvw *w = kvw_new(&o);
	if (!w)
		fp_die(FP_EXIT_IO, "out of memory");
	int r = kvw_start(w);
	if (!r)
		r = kvw_run(w, fd, name);
	if (r == FP_EXIT_IO && kvw_output_closed(w))
		r = 0; /* the reader of --dry-run went away: a quiet stop */
	if (r)
		fp_warn("%s", kvw_errstr(w));
	if (verbose) {
		kvw_stats s;
		kvw_get_stats(w, &s);
		fp_warn("updates=%llu barriers=%llu epochs=%llu keys=%llu fields=%llu skipped=%llu "
		        "reconnects=%llu commit_ms_p50=%.2f commit_ms_p99=%.2f commit_ms_max=%.2f",
		        (unsigned long long)s.updates, (unsigned long long)s.barriers,
		        (unsigned long long)s.epochs, (unsigned long long)s.keys,
		        (unsigned long long)s.fields, (unsigned long long)s.fields_skipped,
		        (unsigned long long)s.reconnects, s.commit_ms_p50, s.commit_ms_p99,
		        s.commit_ms_max);
	}
	if (stats_final(st) < 0)
		fp_warn("%s", stats_errstr(st));
	stats_free(st);
	kvw_free(w);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}
