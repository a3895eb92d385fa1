/* wcache.h - what fp-kvwrite last committed of each key: a 64-bit hash of
 * every field (name and value) it wrote, so that the next commit of the key
 * sends only the fields that changed (fp-kvwrite(1), --cache-keys).
 *
 * Keys are named by a 64-bit hash of their bytes, fields by a 64-bit hash of
 * their name and value: a false match needs two 64-bit collisions at once.
 * An entry is valid until a deadline (the key's TTL in Redis, less a
 * margin), after which it is a miss.  Memory is bounded by max_keys: the
 * entries live in two generations; when the newer one holds max_keys / 2
 * keys, the older one is dropped (the keys written since stay, an
 * approximate LRU).  A miss costs a full write, never a wrong one.
 *
 * lib code: nothing printed, nothing exits; allocation failures are -1.
 */
#ifndef FP_WCACHE_H
#define FP_WCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wcache wcache;

/* A cache of at most max_keys keys (0: a cache that holds nothing).  NULL
 * when out of memory. */
wcache *wcache_new(size_t max_keys);
void wcache_free(wcache *c);

/* The field hashes committed for key hash kh, if still valid at now_ms;
 * *n gets their number and *until the entry's deadline.  NULL on a miss
 * (*until untouched).  The array is borrowed until the next wcache_put() or
 * wcache_drop(). */
const uint64_t *wcache_get(wcache *c, uint64_t kh, int64_t now_ms, uint32_t *n, int64_t *until);

/* Record the n field hashes just committed for kh, valid before until_ms.
 * 0, or -1 when out of memory: kh is then dropped (an entry left behind
 * would be older than Redis). */
int wcache_put(wcache *c, uint64_t kh, int64_t until_ms, const uint64_t *fh, uint32_t n);

/* Forget kh (Redis no longer holds what the entry says). */
void wcache_drop(wcache *c, uint64_t kh);

/* Ask the CPU for what wcache_get(c, kh, ...) will read, a few keys ahead
 * of it: stage 2 the slots of kh, stage 1 (later, once those are in cache)
 * its field hashes.  Reads nothing else and changes nothing. */
void wcache_prefetch(const wcache *c, uint64_t kh, int stage);

/* Keys held (both generations; a key may count twice). */
size_t wcache_size(const wcache *c);

#endif
