/* shard.h - which shard owns a key (specified in fp-keyby(1), SHARDING).
 *
 * shard = XXH3_64bits(canonical bytes of the key, seed 0) mod nshards, where
 * the canonical bytes of a msgpack str or bin are its bytes, and of an
 * integer (any msgpack int or uint encoding) its decimal text: the string
 * "42" and the integer 42 land on the same shard.  Other types (nil, bool,
 * float, array, map, ext) are not keys.
 */
#ifndef FP_SHARD_H
#define FP_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_CANON_BUF 24 /* room for any 64-bit integer's decimal text */

/* The canonical bytes of the key value p[0..n) (one msgpack object).  0 with
 * *canon, *clen pointing into p (str, bin) or into buf (integers); -1 when
 * the value is not a key type. */
int shard_key_canon(const uint8_t *p, size_t n, char buf[SHARD_CANON_BUF],
                    const uint8_t **canon, size_t *clen);

/* XXH3-64 (seed 0) of canonical key bytes. */
uint64_t shard_hash(const void *canon, size_t clen);

/* The shard (0..nshards-1, nshards > 0) of the key value p[0..n): 0 and
 * *shard, or -1 when the value is not a key type. */
int shard_of_key(const uint8_t *p, size_t n, uint32_t nshards, uint32_t *shard);

/* A short name for the type of the msgpack value p[0..n), for messages
 * ("nil", "float", "map", ...). */
const char *shard_type_name(const uint8_t *p, size_t n);

#endif
