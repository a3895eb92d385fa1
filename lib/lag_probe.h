/* lag_probe.h - measure a consumer group's lag from Kafka (and the store).
 *
 * Two librdkafka consumer handles, neither of which ever subscribes or
 * commits: one configured with the watched group.id, used only to read the
 * group's committed offsets (OffsetFetch); one that reads watermarks
 * (ListOffsets) and, for each partition behind, fetches the single message
 * at the committed offset (assign(), small fetch sizes) to take its
 * timestamp: lag in seconds = now - timestamp of the first unconsumed
 * message, exactly, not an estimate.  A figure the brokers did not give
 * within the timeout is unknown, never carried over from an earlier check.
 */
#ifndef FP_LAG_PROBE_H
#define FP_LAG_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "kafka.h"
#include "lag.h"
#include "store.h"

#define LAG_MAX_RULES 16

typedef struct lag_part {
	char topic[256];
	int32_t partition;
	int known;             /* committed and end answered at the last check */
	int64_t committed;     /* -1: the group has no committed offset */
	int64_t end;           /* log end offset (high watermark) */
	double lag_seconds;    /* NaN: unknown; 0 when nothing is unconsumed */
	int stored_known;      /* the store holds a position for every shard */
	store_pos stored;      /* the smallest over the shards */
	int stored_count, stored_nshards;
	lag_track track;       /* for the caller: status history */
	lag_rule_state rules[LAG_MAX_RULES]; /* for the caller */
} lag_part;

typedef struct lag_probe_conf {
	const fk_conf *conf;   /* -X/-F properties and bootstrap.servers; copied */
	const char *group;
	char **topics;         /* none: every topic where the group committed */
	size_t ntopics;
	int timeout_ms;        /* per step of a check */
} lag_probe_conf;

typedef struct lag_probe lag_probe;

/* Create the two consumer handles.  Owned by the caller (lag_probe_free).
 * NULL with errstr on a bad property or when librdkafka fails. */
lag_probe *lag_probe_new(const lag_probe_conf *c, char *errstr, size_t errlen);
void lag_probe_free(lag_probe *p);

/* Measure every partition once (now_ms: wall clock, for lag_seconds).
 * 0 when every figure is known; -1 with errstr when some or all are
 * unknown (their parts then have known = 0 / lag_seconds NaN). */
int lag_probe_check(lag_probe *p, int64_t now_ms, char *errstr, size_t errlen);

/* The partitions seen so far, sorted by topic and partition; the array is
 * owned by p and valid until the next lag_probe_check(). */
lag_part *lag_probe_parts(lag_probe *p, size_t *n);

/* Read the pipeline's durable offsets (store_read_offsets) into the parts:
 * stored = the smallest position over the shards of each partition, known
 * only when every shard 0..nshards-1 has one.  0, or -1 with errstr (then
 * every stored_known is 0). */
int lag_probe_read_store(lag_probe *p, redisContext *c, const char *pipeline,
                         char *errstr, size_t errlen);

#endif
