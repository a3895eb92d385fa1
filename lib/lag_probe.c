/* lag_probe.c - measure a consumer group's lag; see lag_probe.h. */
#define _POSIX_C_SOURCE 200809L
#include "lag_probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

struct lag_probe {
	rd_kafka_t *group;     /* group.id = the watched group; committed() only */
	rd_kafka_t *fetch;     /* watermarks and the first unconsumed message */
	char **topics;
	size_t ntopics;
	int timeout_ms;
	lag_part *parts;
	size_t nparts, cap;
};

static int
set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
         size_t errlen)
{
	char e[256];
	if (rd_kafka_conf_set(conf, name, value, e, sizeof e) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errlen, "%s", e);
		return -1;
	}
	return 0;
}

/* A consumer from the user's configuration; never subscribes or commits. */
static rd_kafka_t *
make_consumer(const fk_conf *base, const char *group, int fetcher, char *errstr,
              size_t errlen)
{
	static const char *const forced[][2] = {
		{"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"},
		{"enable.partition.eof", "false"}, {"auto.offset.reset", "earliest"},
	};
	/* Fetch as little as possible: one message per partition is wanted.
	 * (Not queued.min.messages=1: librdkafka 2.0.2 then backs off a whole
	 * second once the queue holds a message.) */
	static const char *const small[][2] = {
		{"message.max.bytes", "1000"}, {"fetch.message.max.bytes", "1024"},
		{"fetch.max.bytes", "1024"}, {"fetch.wait.max.ms", "10"},
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_dup(base->rk);
	char e[512];
	if (set_prop(conf, "group.id", group, errstr, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof forced / sizeof forced[0]; i++)
		if (set_prop(conf, forced[i][0], forced[i][1], errstr, errlen) < 0)
			goto fail;
	if (!fk_conf_user(base, "client.id") && set_prop(conf, "client.id", "fp-lag", errstr, errlen) < 0)
		goto fail;
	for (size_t i = 0; fetcher && i < sizeof small / sizeof small[0]; i++)
		if (!fk_conf_user(base, small[i][0]) &&
		    set_prop(conf, small[i][0], small[i][1], errstr, errlen) < 0)
			goto fail;
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
	if (!rk) {
		snprintf(errstr, errlen, "%s", e);
		goto fail;
	}
	return rk;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

lag_probe *
lag_probe_new(const lag_probe_conf *c, char *errstr, size_t errlen)
{
	lag_probe *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(errstr, errlen, "out of memory");
		return NULL;
	}
	p->topics = c->topics;
	p->ntopics = c->ntopics;
	p->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 5000;
	if (!(p->group = make_consumer(c->conf, c->group, 0, errstr, errlen)) ||
	    !(p->fetch = make_consumer(c->conf, "fp-lag-probe", 1, errstr, errlen))) {
		lag_probe_free(p);
		return NULL;
	}
	return p;
}

void
lag_probe_free(lag_probe *p)
{
	if (!p)
		return;
	if (p->fetch) {
		rd_kafka_consumer_close(p->fetch);
		rd_kafka_destroy(p->fetch);
	}
	if (p->group) {
		rd_kafka_consumer_close(p->group);
		rd_kafka_destroy(p->group);
	}
	free(p->parts);
	free(p);
}

static int
part_cmp(const void *a, const void *b)
{
	const lag_part *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static lag_part *
part_find(lag_probe *p, const char *topic, int32_t partition)
{
	lag_part key;
	if (p->nparts == 0)
		return NULL;
	snprintf(key.topic, sizeof key.topic, "%s", topic);
	key.partition = partition;
	return bsearch(&key, p->parts, p->nparts, sizeof *p->parts, part_cmp);
}

static int
part_add(lag_probe *p, const char *topic, int32_t partition)
{
	if (strlen(topic) >= sizeof p->parts->topic || part_find(p, topic, partition))
		return 0;
	if (p->nparts == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		lag_part *np = realloc(p->parts, cap * sizeof *np);
		if (!np)
			return -1;
		p->parts = np;
		p->cap = cap;
	}
	lag_part *q = &p->parts[p->nparts++];
	memset(q, 0, sizeof *q);
	snprintf(q->topic, sizeof q->topic, "%s", topic);
	q->partition = partition;
	q->lag_seconds = NAN;
	q->track = (lag_track)LAG_TRACK_INIT;
	qsort(p->parts, p->nparts, sizeof *p->parts, part_cmp);
	return 0;
}

lag_part *
lag_probe_parts(lag_probe *p, size_t *n)
{
	*n = p->nparts;
	return p->parts;
}

static int
wanted(const lag_probe *p, const char *topic)
{
	if (p->ntopics == 0)
		return strncmp(topic, "__", 2) != 0; /* not __consumer_offsets & co */
	for (size_t i = 0; i < p->ntopics; i++)
		if (strcmp(p->topics[i], topic) == 0)
			return 1;
	return 0;
}

/* The partitions to look at: every partition of the wanted topics, from
 * the metadata.  Returns a list (caller destroys) or NULL with errstr. */
static rd_kafka_topic_partition_list_t *
discover(lag_probe *p, char *errstr, size_t errlen)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err = rd_kafka_metadata(p->fetch, 1, NULL, &md, p->timeout_ms);
	if (err) {
		snprintf(errstr, errlen, "metadata: %s", rd_kafka_err2str(err));
		return NULL;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (int i = 0; i < md->topic_cnt; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		if (t->err || !wanted(p, t->topic))
			continue;
		for (int j = 0; j < t->partition_cnt; j++)
			rd_kafka_topic_partition_list_add(l, t->topic, t->partitions[j].id);
	}
	for (size_t i = 0; i < p->ntopics; i++) {
		int found = 0;
		for (int k = 0; k < md->topic_cnt && !found; k++)
			found = !md->topics[k].err && strcmp(md->topics[k].topic, p->topics[i]) == 0;
		if (!found) {
			snprintf(errstr, errlen, "topic '%s' not found", p->topics[i]);
			rd_kafka_metadata_destroy(md);
			rd_kafka_topic_partition_list_destroy(l);
			return NULL;
		}
	}
	rd_kafka_metadata_destroy(md);
	return l;
}

static void
mark_unknown(lag_probe *p)
{
	for (size_t i = 0; i < p->nparts; i++) {
		p->parts[i].known = 0;
		p->parts[i].lag_seconds = NAN;
	}
}

/* Timestamps of the first unconsumed message of each part behind. */
static void
fetch_first(lag_probe *p, int64_t now_ms)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < p->nparts; i++) {
		lag_part *q = &p->parts[i];
		if (!q->known || q->committed < 0)
			continue;
		if (q->end <= q->committed) {
			q->lag_seconds = 0;
			continue;
		}
		rd_kafka_topic_partition_list_add(l, q->topic, q->partition)->offset = q->committed;
	}
	int pending = l->cnt;
	if (pending == 0 || rd_kafka_assign(p->fetch, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_topic_partition_list_destroy(l);
		return;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (pending > 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long waited = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (waited >= p->timeout_ms)
			break;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(p->fetch, (int)(p->timeout_ms - waited));
		if (!m)
			continue;
		if (!m->err && m->rkt) {
			lag_part *q = part_find(p, rd_kafka_topic_name(m->rkt), m->partition);
			rd_kafka_timestamp_type_t tt;
			int64_t ts = rd_kafka_message_timestamp(m, &tt);
			if (q && isnan(q->lag_seconds) && m->offset >= q->committed) {
				if (tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts >= 0)
					q->lag_seconds = now_ms > ts ? (double)(now_ms - ts) / 1000.0 : 0.0;
				else
					q->lag_seconds = NAN; /* no timestamp: unknown, but done */
				pending--;
			}
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_assign(p->fetch, NULL);
	rd_kafka_topic_partition_list_destroy(l);
}

int
lag_probe_check(lag_probe *p, int64_t now_ms, char *errstr, size_t errlen)
{
	*errstr = 0;
	mark_unknown(p);
	rd_kafka_topic_partition_list_t *l = discover(p, errstr, errlen);
	if (!l)
		return -1;
	rd_kafka_resp_err_t err = l->cnt ? rd_kafka_committed(p->group, l, p->timeout_ms) : 0;
	if (err) {
		snprintf(errstr, errlen, "committed offsets of the group: %s", rd_kafka_err2str(err));
		rd_kafka_topic_partition_list_destroy(l);
		return -1;
	}
	/* Track every partition of the topics asked for, or of the topics where
	 * the group committed on some partition (a partition it never committed
	 * on may hold a backlog too). */
	for (int i = 0; i < l->cnt; i++) {
		rd_kafka_topic_partition_t *e = &l->elems[i];
		int want = p->ntopics > 0;
		for (int k = 0; k < l->cnt && !want; k++)
			want = strcmp(l->elems[k].topic, e->topic) == 0 && !l->elems[k].err &&
			       l->elems[k].offset >= 0;
		if (want && part_add(p, e->topic, e->partition) < 0) {
			snprintf(errstr, errlen, "out of memory");
			rd_kafka_topic_partition_list_destroy(l);
			return -1;
		}
	}
	int unknown = 0;
	rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_new(l->cnt + 1);
	for (int i = 0; i < l->cnt; i++) {
		rd_kafka_topic_partition_t *e = &l->elems[i];
		lag_part *q = part_find(p, e->topic, e->partition);
		if (!q)
			continue;
		if (e->err) {
			snprintf(errstr, errlen, "committed offset of %s [%d]: %s", e->topic,
			         (int)e->partition, rd_kafka_err2str(e->err));
			unknown = 1;
			continue;
		}
		q->committed = e->offset >= 0 ? e->offset : -1;
		rd_kafka_topic_partition_list_add(ends, e->topic, e->partition)->offset =
			RD_KAFKA_OFFSET_END; /* ListOffsets "latest" */
	}
	rd_kafka_topic_partition_list_destroy(l);
	err = ends->cnt ? rd_kafka_offsets_for_times(p->fetch, ends, p->timeout_ms) : 0;
	if (err) {
		snprintf(errstr, errlen, "log end offsets: %s", rd_kafka_err2str(err));
		rd_kafka_topic_partition_list_destroy(ends);
		return -1;
	}
	for (int i = 0; i < ends->cnt; i++) {
		rd_kafka_topic_partition_t *e = &ends->elems[i];
		lag_part *q = part_find(p, e->topic, e->partition);
		if (e->err || e->offset < 0) {
			snprintf(errstr, errlen, "log end offset of %s [%d]: %s", e->topic,
			         (int)e->partition, e->err ? rd_kafka_err2str(e->err) : "none");
			unknown = 1;
			continue;
		}
		q->end = e->offset;
		q->known = 1;
	}
	rd_kafka_topic_partition_list_destroy(ends);
	fetch_first(p, now_ms);
	for (size_t i = 0; i < p->nparts; i++)
		if (!p->parts[i].known)
			unknown = 1;
	if (unknown && !*errstr)
		snprintf(errstr, errlen, "some figures are unknown");
	return unknown ? -1 : 0;
}

static void
store_cb(void *arg, const char *topic, size_t tlen, int32_t partition, int shard,
         int nshards, store_pos pos)
{
	lag_probe *p = arg;
	char t[256];
	if (tlen >= sizeof t)
		return;
	memcpy(t, topic, tlen);
	t[tlen] = 0;
	lag_part *q = part_find(p, t, partition);
	if (!q)
		return;
	if (q->stored_count == 0 || store_pos_cmp(pos, q->stored) < 0)
		q->stored = pos;
	if (nshards > q->stored_nshards)
		q->stored_nshards = nshards;
	q->stored_count++;
	(void)shard;
}

int
lag_probe_read_store(lag_probe *p, redisContext *c, const char *pipeline, char *errstr,
                     size_t errlen)
{
	for (size_t i = 0; i < p->nparts; i++) {
		p->parts[i].stored_known = 0;
		p->parts[i].stored_count = p->parts[i].stored_nshards = 0;
	}
	if (store_read_offsets(c, pipeline, store_cb, p, errstr, errlen) < 0)
		return -1;
	for (size_t i = 0; i < p->nparts; i++) {
		lag_part *q = &p->parts[i];
		q->stored_known = q->stored_count > 0 && q->stored_count >= q->stored_nshards;
	}
	return 0;
}
