/* kafka.h - shared Kafka helpers for fp-consume, fp-produce, fp-broker.
 *
 * Configuration from -X prop=val and -F files (kcat's format), offset
 * specifications (-o), message rendering (frames, kcat -f formats, -J
 * envelopes) and the start-offset resolution used when partitions are
 * assigned.  Nothing here prints or exits: functions return 0 or -1 and
 * fill errstr; librdkafka's log lines go to the function set with
 * fk_set_log().
 */
#ifndef FP_KAFKA_H
#define FP_KAFKA_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "buf.h"

/* Where librdkafka's log lines go (level is syslog's); set by the command. */
typedef void fk_log_fn(int level, const char *fac, const char *msg);
/* Send conf's log lines to fn, and client errors too, as warnings (level
 * 4: they are transient; fatal errors are checked by the caller). */
void fk_set_log(rd_kafka_conf_t *conf, fk_log_fn *fn);
/* Only lines of level <= max_level (syslog levels: 3 errors, 4 warnings,
 * 7 debug) reach fn; the default is 7, every line. */
void fk_set_log_level(int max_level);

/* A librdkafka configuration being built, and the properties the user set
 * (so that tool defaults never override them). */
typedef struct fk_conf {
	rd_kafka_conf_t *rk;  /* owned until handed to rd_kafka_new() */
	char **user;          /* owned: names set by the user */
	size_t nuser;
} fk_conf;

void fk_conf_init(fk_conf *c);
/* Frees the property list (and c->rk unless it was handed on: set it to
 * NULL after a successful rd_kafka_new()). */
void fk_conf_release(fk_conf *c);
/* Set one "prop=val" (as given to -X).  A "topic." prefix is dropped
 * (librdkafka 2.0 applies topic properties to the default topic
 * configuration).  -1 with errstr on a bad property or value. */
int fk_conf_set_kv(fk_conf *c, const char *kv, char *errstr, size_t errlen);
/* Read a kcat-style file of "prop=val" lines (# comments and blank lines
 * ignored).  Errors name path:line. */
int fk_conf_file(fk_conf *c, const char *path, char *errstr, size_t errlen);
/* Set prop to val unless the user set it: a default overridable by -X. */
int fk_conf_default(fk_conf *c, const char *prop, const char *val,
                    char *errstr, size_t errlen);
/* 1 when the user set prop. */
int fk_conf_user(const fk_conf *c, const char *prop);

/* -o forms. */
enum fk_offset_kind {
	FK_OFF_BEGINNING, /* earliest retained */
	FK_OFF_END,       /* the next message produced */
	FK_OFF_STORED,    /* the group's committed offset */
	FK_OFF_ABS,       /* value: an absolute offset */
	FK_OFF_TAIL,      /* value: that many messages before the end */
	FK_OFF_TIME,      /* value: first message with timestamp >= ms */
};
typedef struct fk_offset {
	enum fk_offset_kind kind;
	int64_t value;
} fk_offset;

/* Parse one -o argument.  Returns 0 and *start for a start form, 1 and
 * *stop_ms for "e@MS" (stop before the first message at or after MS);
 * -1 with errstr otherwise. */
int fk_offset_parse(const char *s, fk_offset *start, int64_t *stop_ms,
                    char *errstr, size_t errlen);

/* Replace each partition's .offset in parts by the absolute offset that
 * spec gives (watermarks, offsets for times), so that a consumer knows
 * where every partition starts before any message arrives.  Partitions
 * whose .offset is already >= 0 are left alone (e.g. a committed offset).
 * FK_OFF_STORED is resolved as FK_OFF_BEGINNING (callers fetch committed
 * offsets first).  -1 with errstr naming the partition on failure. */
int fk_resolve_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                       const fk_offset *spec, int timeout_ms, char *errstr, size_t errlen);

/* A hook the consumer calls when partitions are assigned, before
 * fk_resolve_offsets(): it may set parts->elems[i].offset to where the
 * partition must start (e.g. offsets kept in a store).  0, or -1 with
 * errstr (the consumer stops). */
typedef int fk_start_hook(void *ctx, rd_kafka_topic_partition_list_t *parts,
                          char *errstr, size_t errlen);

/* Decide where newly assigned partitions start, in this order: the group's
 * committed offsets (when group is 1), then hook (may be NULL), then spec
 * for every partition still without an absolute offset
 * (fk_resolve_offsets()).  -1 with errstr on failure. */
int fk_start_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int group,
                     fk_start_hook *hook, void *hook_ctx, const fk_offset *spec,
                     int timeout_ms, char *errstr, size_t errlen);

/* The partitions a consumer has been assigned, and where its output
 * stands in each. */
typedef struct fk_part {
	char *topic;             /* owned */
	int32_t partition;
	int64_t next;            /* offset of the next message not yet written */
	int eof, done;           /* reached the end / a stop condition */
} fk_part;

typedef struct fk_parts {
	fk_part *v;              /* owned */
	int n, last;             /* count; index of the last one found */
} fk_parts;

#define FK_PARTS_INIT {NULL, 0, 0}

void fk_parts_release(fk_parts *t);
/* Add every partition of list, with next = its .offset.  -1 when out of
 * memory. */
int fk_parts_add(fk_parts *t, const rd_kafka_topic_partition_list_t *list);
/* Remove the partitions of list (order of the rest may change). */
void fk_parts_remove(fk_parts *t, const rd_kafka_topic_partition_list_t *list);
/* The entry of topic/partition, or NULL.  Valid until the table changes. */
fk_part *fk_parts_find(fk_parts *t, const char *topic, int32_t partition);
/* Append the barrier control frame body for every partition of t:
 * {"@ctl":"barrier","@epoch":epoch,"@pos":[[topic,partition,next],...]}.
 * -1 when out of memory. */
int fk_barrier(const fk_parts *t, int64_t epoch, fp_buf *out);

/* Waking librdkafka's fetchers.  librdkafka 2.0.2 stops fetching once the
 * consumer queue holds queued.min.messages or queued.max.messages.kbytes,
 * and looks again only when its broker thread next wakes: up to a second
 * later (2.2 added fetch.queue.backoff.ms for this).  With a small queue a
 * slow reader would then starve half of the time.  fk_refill watches the
 * consumer queue: once it has been half full and has drained to a quarter,
 * a ListOffsets request for the assigned partitions (any request does)
 * wakes the broker thread of every leader, which fetches again at once. */
typedef struct fk_refill {
	rd_kafka_queue_t *q;     /* owned: the consumer queue */
	double max_bytes;        /* queued.max.messages.kbytes, in bytes */
	double max_msgs;         /* queued.min.messages */
	uint64_t msgs, bytes;    /* consumed so far (fk_refill_count), for the mean size */
	int full;                /* the queue was half full since the last wake */
	uint64_t wakes;          /* wakes sent */
} fk_refill;

/* Read rk's thresholds; call after rd_kafka_poll_set_consumer().  -1 with
 * errstr when they cannot be read. */
int fk_refill_init(fk_refill *r, rd_kafka_t *rk, char *errstr, size_t errlen);
void fk_refill_release(fk_refill *r);
/* Count a consumed message of n bytes (key and value). */
static inline void
fk_refill_count(fk_refill *r, size_t n)
{
	r->msgs++;
	r->bytes += n;
}
/* Look at the queue (a lock: call every few hundred messages and before
 * blocking) and wake the leaders of t's partitions when it is due, waiting
 * at most timeout_ms for their answers, which are not used (0: not at all;
 * the requests are queued all the same).  1 when it woke them, else 0. */
int fk_refill_check(fk_refill *r, rd_kafka_t *rk, const fk_parts *t, int timeout_ms);

/* Append the raw message frame body (fp-frames(5)) for m to out:
 * {"@src":[t,p,o],"@ts":ms,"@in":in_us,"key":bin|nil,"value":bin|nil,
 *  "headers":[[name,bin|nil],...]}.  -1 when out of memory. */
int fk_msg_frame(const rd_kafka_message_t *m, int64_t in_us, fp_buf *out);

/* Append m rendered with a kcat -f format (%s %S %k %K %t %p %o %T %h %%,
 * \n \r \t \\ \xHH).  fk_format_check() validates fmt first: -1 with
 * errstr naming the bad token. */
int fk_format_check(const char *fmt, char *errstr, size_t errlen);
int fk_msg_format(const rd_kafka_message_t *m, const char *fmt, fp_buf *out);

/* Append m as one kcat -J JSON envelope line (with newline):
 * {"topic","partition","offset","tstype","ts","broker","headers":[n,v,..],
 *  "key","payload"}; text that is not valid UTF-8 is written as
 * {"@b64":"..."} (fp-frames(5)). */
int fk_msg_json(const rd_kafka_message_t *m, fp_buf *out);

/* The bytes a msgpack value v[0..n) stands for as a Kafka key or value:
 * str and bin as they are, integers and floats as decimal text, anything
 * else (map, array, bool) as JSON text; *isnil set (and nothing appended)
 * for nil.  out is reset first.  -1 when out of memory. */
int fk_value_bytes(const uint8_t *v, size_t n, fp_buf *out, int *isnil);

/* 1 when a checked frame body is a raw message frame as fk_msg_frame()
 * writes it: only the keys @src, @ts, @in, key, value, headers, with @src
 * present and value bin or nil. */
int fk_is_raw_message(const uint8_t *body, size_t len);

/* The headers [[name, bin|nil], ...] of a raw message frame as librdkafka
 * headers in *hs (owned by the caller; NULL when the frame has none).
 * tmp is scratch space.  -1 with errstr when headers is malformed. */
int fk_raw_headers(const uint8_t *body, size_t len, rd_kafka_headers_t **hs,
                   fp_buf *tmp, char *errstr, size_t errlen);

/* The error name without its RD_KAFKA_RESP_ERR_ prefix, e.g.
 * "NOT_LEADER_FOR_PARTITION" or "_TRANSPORT"; and back (case-insensitive,
 * prefix optional, or a number).  -1 when unknown. */
const char *fk_err_name(rd_kafka_resp_err_t err);
int fk_err_parse(const char *name, rd_kafka_resp_err_t *err);

/* Kafka protocol API key by name ("Produce", "Fetch", ...; case-insensitive,
 * or a number), and back.  -1 / NULL when unknown. */
int fk_api_parse(const char *name, int16_t *key);
const char *fk_api_name(int16_t key);

/* Catch SIGTERM and SIGINT: each one increments *flag (the tool polls it
 * and stops cleanly; a second signal may mean "stop waiting"). */
void fk_catch_stop(volatile sig_atomic_t *flag);

/* Microseconds since the epoch (wall clock). */
int64_t fk_now_us(void);

#endif
