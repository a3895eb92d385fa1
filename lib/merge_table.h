/* merge_table.h - fp-merge's keys in memory: a hash table with LRU order.
 *
 * Each entry holds a key's bytes (without the feature file's prefix), an
 * opaque state pointer owned by the caller, and the stream position of the
 * key's last update (which fp-merge needs before it may evict the key).
 * Hashing is XXH3 (libxxhash).  Chaining keeps removal simple; the bucket
 * array doubles when the load passes 1.
 */
#ifndef FP_MERGE_TABLE_H
#define FP_MERGE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum {
	MERGE_CLEAN = 0,   /* the store holds this key's state (or it never changed) */
	MERGE_DIRTY = 1,   /* last update at (part, pos); committed once the store shows pos */
	MERGE_UNKNOWN = 2, /* last update had no @src: cannot prove it committed */
};

typedef struct merge_entry {
	struct merge_entry *hnext;         /* bucket chain */
	struct merge_entry *newer, *older; /* LRU list */
	void *state;                       /* the caller's; the table never frees it */
	store_pos pos;                     /* position after the last update (MERGE_DIRTY) */
	uint64_t hash;
	uint32_t part;                     /* caller's partition index (MERGE_DIRTY) */
	uint32_t klen;
	uint32_t mark;                     /* caller's: 0 when the table adds it */
	uint8_t flags;                     /* MERGE_CLEAN / DIRTY / UNKNOWN */
	uint8_t key[];
} merge_entry;

typedef struct merge_table {
	merge_entry **buckets; /* owned */
	size_t nbuckets;       /* a power of two */
	size_t count;
	merge_entry *newest, *oldest;
} merge_table;

/* An empty table.  0, or -1 when out of memory. */
int merge_table_init(merge_table *t);
/* Free every entry (not their states: take them out with merge_table_oldest()
 * and merge_table_remove() first if they need freeing) and the buckets. */
void merge_table_release(merge_table *t);

uint64_t merge_table_hash(const void *key, size_t len);

/* The entry for key, or NULL.  Does not change the LRU order. */
merge_entry *merge_table_find(const merge_table *t, const void *key, size_t len, uint64_t hash);
/* Add key (not present yet) as the newest entry, state NULL, flags CLEAN.
 * The entry is owned by the table; NULL when out of memory. */
merge_entry *merge_table_insert(merge_table *t, const void *key, size_t len, uint64_t hash);
/* Make e the newest entry. */
void merge_table_touch(merge_table *t, merge_entry *e);
/* The least recently used entry, or NULL when empty. */
static inline merge_entry *merge_table_oldest(const merge_table *t) { return t->oldest; }
/* Unlink e and free it (e->state is the caller's to free before). */
void merge_table_remove(merge_table *t, merge_entry *e);

#endif
