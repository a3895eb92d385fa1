/* kvwrite.h - fp-merge updates to Redis, one atomic epoch at a time.
 *
 * Updates are buffered, the latest per key (@key), together with the
 * position reached in every (topic, partition) (@src, barriers, syncs).  A
 * commit writes every buffered key and this shard's offsets in one
 * MULTI/EXEC, gated by a check (a Lua script run just before it, under
 * WATCH of this shard's fence key) of the type of every key it touches and
 * of the stored offsets: when one is wrong nothing is written.  The
 * features and the offsets that cover them land together or not at all
 * (fp-kvwrite(1), DESIGN §3).
 *
 * Group commit: kvw_run() sends a commit on a non-blocking socket and goes
 * on reading into the next epoch while it is in flight, until that one is
 * full (a barrier, max_batch keys).  After a sync control frame (fp-merge's
 * batches) a commit starts only at a consistent point: no update read since
 * the last sync frame.
 *
 * The written-fields cache (wcache.h, cache_keys): a key this process
 * committed is written again with only the fields that changed since; the
 * check makes sure it still exists, and when it does not, the epoch is
 * built again with that key whole.
 *
 * Failures: connection and command timeouts, reconnect with exponential
 * backoff, and a commit whose reply never came is resolved by reading the
 * stored offsets back.  Stored offsets behind what this process committed
 * mean Redis lost data: that is an error (KVW_REMOTE), never papered over.
 *
 * lib code: nothing is printed here except through the warn callback; every
 * function returns 0 or a KVW_* code with errstr set.
 */
#ifndef FP_KVWRITE_H
#define FP_KVWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "stats.h"
#include "store.h"

/* Status codes, equal to the exit codes of featpipe(7). */
enum {
	KVW_OK = 0,
	KVW_DATA = 1,    /* bad input */
	KVW_CONFIG = 2,  /* the store is configured so that data could be lost */
	KVW_IO = 3,      /* local I/O */
	KVW_REMOTE = 4,  /* Redis failed, lost data, or holds a key of the wrong type */
};

/* Metrics (stats.h) the writer records into when kvw_options.metrics is
 * set; every pointer is owned by the caller's registry.  Latencies are per
 * update frame, observed when the commit that holds it is acknowledged
 * (one wall-clock read per epoch, none per update): e2e from its @ts
 * (event time, ms) and pipeline from its @in (when fp-consume read it, µs);
 * an update without the field (or with a negative one: Kafka's -1 for no
 * timestamp) is not observed, a timestamp in the future counts as 0.  --dry-run commits nothing: no latency is observed. */
typedef struct kvw_metrics {
	stats_counter *records_in;     /* update frames read */
	stats_counter *records_out;    /* update frames committed */
	stats_counter *barriers, *epochs, *keys, *reconnects;
	stats_counter *fields, *fields_skipped; /* fields written; left unchanged */
	stats_hist *e2e_us;            /* @ts -> commit acknowledged */
	stats_hist *pipeline_us;       /* @in -> commit acknowledged */
	stats_hist *commit_us;         /* per epoch: the commit, retries included */
	stats_hist *epoch_keys;        /* per epoch: keys written */
	stats_hist *epoch_updates;     /* per epoch: update frames */
	/* Called by kvw_run() after every chunk of input and at least every
	 * second while it waits (for stats_tick()); or NULL. */
	void (*tick)(void *arg);
	void *tick_arg;
} kvw_metrics;

typedef struct kvw_options {
	const char *pipeline;     /* names fp:{pipeline}:offsets */
	int shard, nshards;
	size_t max_batch;         /* commit when this many keys are buffered */
	int64_t flush_ms;         /* due when the oldest buffered change is this old */
	const char *const *zset;  /* features also written as sorted sets */
	size_t nzset;
	int dry_run;              /* render commands as text, no Redis */
	int dry_fd;               /* dry-run text goes here after each epoch;
	                           * -1: kept in kvw_dry_output() */
	store_url url;
	int connect_ms, command_ms;
	int64_t give_up_ms;       /* 0: retry forever */
	size_t max_frame;         /* 0: FP_MAX_FRAME or the default */
	size_t cache_keys;        /* keys the written-fields cache holds; 0: off */
	/* Called with a warning to show the user (reconnects, persistence off). */
	void (*warn)(void *arg, const char *msg);
	void *warn_arg;
	kvw_metrics *metrics;     /* or NULL; every member set (stats_*_new never
	                           * returns NULL) but tick */
} kvw_options;

typedef struct kvw_stats {
	uint64_t updates;         /* update frames read */
	uint64_t barriers;
	uint64_t epochs;          /* commits sent and acknowledged */
	uint64_t keys;            /* keys written (after coalescing) */
	uint64_t fields;          /* fields written (HSET, HDEL) */
	uint64_t fields_skipped;  /* fields left as Redis holds them (unchanged) */
	uint64_t reconnects;
	double commit_ms_p50, commit_ms_p99, commit_ms_max;
} kvw_stats;

typedef struct kvw kvw;

/* A writer with a copy of o (strings in o must outlive it).  NULL when out
 * of memory. */
kvw *kvw_new(const kvw_options *o);
void kvw_free(kvw *w);

/* Connect, check the store's configuration and read this shard's stored
 * offsets (nothing in dry-run mode).  0 or a KVW_* code. */
int kvw_start(kvw *w);

/* Take one checked frame body: an update, or a control frame (a barrier
 * moves positions and asks for a commit; a sync frame marks a consistent
 * point; other control frames are ignored).  frameno (1-based) names the frame in errors.  0, or KVW_DATA. */
int kvw_add(kvw *w, const uint8_t *body, size_t len, uint64_t frameno);

/* 1 when a commit is due now: a barrier arrived, max_batch keys are buffered,
 * or the oldest buffered change is flush_ms old. */
int kvw_due(kvw *w);

/* Milliseconds until the timer makes a commit due, or -1 when nothing is
 * buffered or, with sync frames, updates were read since the last one
 * (only input can then let a commit start). */
int64_t kvw_wait_ms(kvw *w);

/* Wait for the commit in flight, if any, then commit everything buffered
 * (nothing when nothing changed) and wait for it.  Blocks while Redis is
 * unreachable, up to give_up_ms.  0 or a KVW_* code. */
int kvw_commit(kvw *w);

/* Read frames from fd until end of input, committing as due (one commit
 * in flight while the next epoch is read); at the end commit what is
 * buffered.  A bad or truncated frame: the whole updates before it are
 * committed, then KVW_DATA.  After a sync frame, an end of input, bad or
 * truncated frame with updates read since the last sync frame commits
 * nothing buffered: KVW_DATA.  0 or a KVW_* code. */
int kvw_run(kvw *w, int fd, const char *name);

/* The message of the last failure. */
const char *kvw_errstr(const kvw *w);
/* 1 when the last failure was the dry-run reader going away (EPIPE): a
 * quiet, orderly stop. */
int kvw_output_closed(const kvw *w);
/* Dry-run output accumulated so far (the caller may write and empty it). */
fp_buf *kvw_dry_output(kvw *w);
void kvw_get_stats(kvw *w, kvw_stats *s);

/* Append s[0..n) quoted as redis-cli reads it back ("..." with \\, \",
 * \n, \r, \t and \xHH escapes).  -1 when out of memory. */
int kvw_quote(fp_buf *out, const uint8_t *s, size_t n);

#endif
