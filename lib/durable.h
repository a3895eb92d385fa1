/* durable.h - a pipeline's durable positions, read back from the store.
 *
 * fp-kvwrite stores, per shard, how far each partition has been applied
 * (store.h).  A partition's durable position is the smallest of those over
 * every shard 0..nshards-1 of the layout: everything before it has been
 * applied by every shard, so a consumer may resume there (DESIGN §3).  A
 * partition without a position for every shard has none yet.  Positions
 * stored for several shard counts (a pipeline re-sharded) are refused:
 * which of them is the truth cannot be told from the store alone.
 */
#ifndef FP_DURABLE_H
#define FP_DURABLE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store.h"

typedef struct durable_part {
	char *topic;           /* owned */
	int32_t partition;
	int shards;            /* shards with a stored position */
	store_pos min;         /* the smallest of them */
} durable_part;

#define DURABLE_MAX_LAYOUTS 8

typedef struct durable {
	durable_part *v;       /* owned */
	size_t n, cap;
	int nshards[DURABLE_MAX_LAYOUTS]; /* distinct shard counts seen, ascending */
	int nlayouts;          /* how many (may exceed DURABLE_MAX_LAYOUTS) */
	int oom;               /* an allocation failed while adding */
} durable;

void durable_init(durable *d);
void durable_release(durable *d);
/* Forget every position (keeps the memory). */
void durable_reset(durable *d);

/* Add one stored position (a store_offset_fn: arg is the durable). */
void durable_add(void *arg, const char *topic, size_t tlen, int32_t partition, int shard,
                 int nshards, store_pos pos);

/* 0 when at most one layout was seen; -1 with errstr naming the shard
 * counts found in key (several layouts) or when out of memory. */
int durable_check(const durable *d, const char *key, char *errstr, size_t errlen);

/* Replace d by the pipeline's stored positions.  0; -1 with errstr on a
 * Redis error (c->err is set when the connection is lost) or out of memory;
 * -2 with errstr when
 * several layouts are stored. */
int durable_read(durable *d, redisContext *c, const char *pipeline, char *errstr,
                 size_t errlen);

/* 1 and *pos when every shard of the layout has a position for
 * topic/partition (*pos the smallest); 0 when it has none. */
int durable_find(const durable *d, const char *topic, int32_t partition, store_pos *pos);

#endif
