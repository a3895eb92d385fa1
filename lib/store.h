/* store.h - the Redis online store: URL, connection, and stored offsets.
 *
 * Layout (fp-kvwrite(1), featpipe(7)):
 *   {prefix}{key}            hash: one field per feature, plus "@state"
 *   fp:{pipeline}:offsets    hash: field "{topic}/{partition}/{shard}/{nshards}",
 *                            value a position "O" or "O:I" (see below)
 *
 * A position (offset O, index I) means: every record of that partition
 * before (O, I) in (offset, index) order has been applied by that shard.
 * "O" is (O, 0).  A plain record at offset o, once applied, gives (o+1, 0);
 * element i of a record at offset o that was exploded into several gives
 * (o, i+1).  A barrier's next_offset N gives (N, 0).
 */
#ifndef FP_STORE_H
#define FP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct store_url {
	char host[256];       /* TCP host, or "" for a unix socket */
	int port;
	char path[256];       /* unix socket path */
	char password[256];   /* "" for none */
	char user[128];       /* ACL user, "" for none */
	int db;
} store_url;

/* Parse "redis://[[user]:password@]host[:port][/db]" or "unix:///path[?db=N]".
 * 0, or -1 with errstr. */
int store_url_parse(const char *s, store_url *u, char *errstr, size_t errlen);

/* The store URL from flag (if not NULL) or FP_REDIS; NULL when neither. */
const char *store_url_default(const char *flag);

/* Connect, apply the command timeout, AUTH and SELECT.  Returns a context
 * owned by the caller (redisFree), or NULL with errstr set.  timeouts in ms. */
redisContext *store_connect(const store_url *u, int connect_ms, int command_ms,
                            char *errstr, size_t errlen);

typedef struct store_pos {
	int64_t offset;
	int64_t index;
} store_pos;

/* (O,I) order: <0, 0, >0. */
static inline int
store_pos_cmp(store_pos a, store_pos b)
{
	if (a.offset != b.offset)
		return a.offset < b.offset ? -1 : 1;
	return a.index < b.index ? -1 : a.index > b.index;
}

/* "O" or "O:I" <-> position.  format writes at most 42 bytes + NUL. */
int store_pos_parse(const char *s, size_t n, store_pos *p);
void store_pos_format(store_pos p, char *buf, size_t len);

/* The pipeline name: FP_PIPELINE, or "default". */
const char *store_pipeline(void);
/* "fp:{pipeline}:offsets" into buf. */
void store_offsets_key(const char *pipeline, char *buf, size_t len);
/* "{topic}/{partition}/{shard}/{nshards}" into buf; -1 when it does not fit. */
int store_offset_field(const char *topic, size_t tlen, int32_t partition, int shard,
                       int nshards, char *buf, size_t len);
/* Split a field back; topic points into field.  -1 when malformed. */
int store_offset_field_parse(const char *field, size_t flen, const char **topic,
                             size_t *tlen, int32_t *partition, int *shard, int *nshards);

/* Read every stored offset of the pipeline (HGETALL) and call fn for each
 * well-formed one.  0, or -1 with errstr (Redis error or malformed value). */
typedef void (*store_offset_fn)(void *arg, const char *topic, size_t tlen, int32_t partition,
                                int shard, int nshards, store_pos pos);
int store_read_offsets(redisContext *c, const char *pipeline, store_offset_fn fn,
                       void *arg, char *errstr, size_t errlen);

#endif
