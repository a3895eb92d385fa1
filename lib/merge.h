/* merge.h - fp-merge's engine: keyed feature state merged with history.
 *
 * merge_run() reads behaviour records (frames) and, for each one, merges it
 * into its key's feature state (lib/feat.h) and writes one update frame:
 *   {"@key": prefix+key, "@src", "@ts", "@in" (copied from the record when
 *    present), "@ttl" (when the feature file sets one), every feature in
 *    file order, "@state": bin}
 * Control frames are forwarded in order, after the updates that precede
 * them.
 *
 * Keys live in memory (merge_table.h), at most max_keys of them in the
 * steady state.  With a store, a key not in memory is loaded from its hash
 * ("@state" field); loads are batched: every complete frame already
 * buffered on the input (up to batch_max frames) is read ahead, the keys
 * missing from memory are fetched in one pipelined round trip, then the
 * batch is processed in order.
 *
 * Exactly once (featpipe(7)): at start the engine reads this shard's stored
 * offsets (fp:{pipeline}:offsets, fields with this shard and shard count)
 * and drops every record whose @src position (offset, index) lies below
 * them: those records are already applied in the store.  A key is evicted
 * only once the store's offsets show its last update committed (fp-kvwrite
 * may still hold it); until then it stays in memory past max_keys.  Past
 * max_keys + batch_max keys the engine flushes its output and waits,
 * re-reading the offsets, for fp-kvwrite to commit.
 *
 * Without a store every key starts empty and none is ever evicted: more
 * than max_keys keys is an error.
 */
#ifndef FP_MERGE_H
#define FP_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "feat.h"
#include "stats.h"

/* Results of merge_run(); the values are the tools' exit codes. */
enum merge_status {
	MERGE_OK = 0,
	MERGE_DATA = 1,    /* bad input, undecodable stored state, --max-keys without a store */
	MERGE_IO = 3,      /* reading, writing, out of memory */
	MERGE_REMOTE = 4,  /* Redis error, or fp-kvwrite never committed */
	MERGE_STOPPED = 100, /* the reader of our output went away (EPIPE) */
};

typedef struct merge_stats merge_stats;

/* Metrics (stats.h) recorded per batch when merge_opts.metrics is set; the
 * histograms are owned by the caller's registry (all set). */
typedef struct merge_metrics {
	stats_hist *batch_size;   /* frames per input batch */
	stats_hist *batch_us;     /* a batch: read ahead to its updates written */
	stats_hist *load_us;      /* a round trip loading keys from the store */
	/* Called after every batch (for stats_tick()), or NULL. */
	void (*tick)(const merge_stats *st, void *arg);
	void *tick_arg;
} merge_metrics;

typedef struct merge_opts {
	const feat_spec *spec;   /* borrowed; outlives the engine */
	redisContext *store;     /* borrowed; NULL: start empty, never evict */
	size_t max_keys;         /* keys kept in memory (> 0) */
	size_t batch_max;        /* frames read ahead per batch; 0: 16384 */
	const char *pipeline;    /* names fp:{pipeline}:offsets */
	int shard, nshards;      /* this process's shard (FP_SHARD/FP_SHARDS) */
	int64_t commit_wait_ms;  /* longest wait for fp-kvwrite to commit; 0: 60 s */
	size_t max_frame;        /* 0: FP_MAX_FRAME or the default */
	int per_record;          /* one update per record, no sync frames */
	merge_metrics *metrics;  /* borrowed, or NULL */
} merge_opts;

struct merge_stats {
	uint64_t records;      /* data frames read */
	uint64_t updates;      /* update frames written */
	uint64_t syncs;        /* sync frames written */
	uint64_t control;      /* control frames forwarded */
	uint64_t skipped;      /* records below the stored offsets (already applied) */
	uint64_t no_key;       /* records without a usable key field: dropped */
	uint64_t no_time;      /* records without a usable time field: dropped */
	uint64_t batches;      /* input batches */
	uint64_t round_trips;  /* Redis round trips that loaded keys */
	uint64_t loads;        /* keys asked from the store */
	uint64_t loaded;       /* ... of which had a stored state */
	uint64_t reset;        /* features that started empty because their definition changed */
	uint64_t evicted;      /* keys evicted from memory */
	uint64_t offset_reads; /* times the stored offsets were read */
	uint64_t waits;        /* times input stopped until fp-kvwrite committed */
	size_t keys;           /* keys in memory now */
	size_t keys_peak;      /* most keys in memory at once */
	feat_stats feat;       /* from feat_apply() */
};

typedef struct merge merge;

/* A new engine for the options (copied; spec and store are borrowed).
 * NULL with err set when out of memory or the options are invalid. */
merge *merge_new(const merge_opts *o, char *err, size_t errlen);
void merge_free(merge *m);

/* Read frames from in_fd until EOF, write updates and control frames to
 * out_fd (flushed before returning).  With a store, first reads this
 * shard's stored offsets.  Returns a merge_status; merge_errstr() says what
 * went wrong.  Everything accepted before an error has been written. */
int merge_run(merge *m, int in_fd, int out_fd);

/* The message of the last failure ("" when none).  Valid until merge_free. */
const char *merge_errstr(const merge *m);
const merge_stats *merge_get_stats(const merge *m);

/* Bytes of memory held for the keys in memory: table entries, buckets and
 * feature states (feat_state_memory). Walks every key: for reports. */
size_t merge_memory(const merge *m);

/* Whether a record at position rec (offset, index; index 0 for a record
 * that was not exploded) is already applied when the store holds position
 * stored for its partition and shard: rec < stored. */
static inline int
merge_pos_applied(int64_t off, int64_t idx, int64_t stored_off, int64_t stored_idx)
{
	return off < stored_off || (off == stored_off && idx < stored_idx);
}

#endif
