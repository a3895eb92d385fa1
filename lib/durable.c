/* durable.c - a pipeline's durable positions; see durable.h. */
#include "durable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
durable_init(durable *d)
{
	memset(d, 0, sizeof *d);
}

void
durable_reset(durable *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].topic);
	d->n = 0;
	d->nlayouts = 0;
	d->oom = 0;
}

void
durable_release(durable *d)
{
	durable_reset(d);
	free(d->v);
	durable_init(d);
}

static durable_part *
find(const durable *d, const char *topic, size_t tlen, int32_t partition)
{
	for (size_t i = 0; i < d->n; i++) {
		durable_part *p = &d->v[i];
		if (p->partition == partition && !strncmp(p->topic, topic, tlen) && !p->topic[tlen])
			return p;
	}
	return NULL;
}

static void
add_layout(durable *d, int nshards)
{
	int n = d->nlayouts < DURABLE_MAX_LAYOUTS ? d->nlayouts : DURABLE_MAX_LAYOUTS, i;
	for (i = 0; i < n && d->nshards[i] < nshards; i++)
		;
	if (i < n && d->nshards[i] == nshards)
		return;
	if (i < DURABLE_MAX_LAYOUTS) {
		int keep = n < DURABLE_MAX_LAYOUTS ? n : DURABLE_MAX_LAYOUTS - 1;
		memmove(&d->nshards[i + 1], &d->nshards[i], (size_t)(keep - i) * sizeof d->nshards[0]);
		d->nshards[i] = nshards;
	}
	d->nlayouts++;
}

void
durable_add(void *arg, const char *topic, size_t tlen, int32_t partition, int shard,
            int nshards, store_pos pos)
{
	durable *d = arg;
	(void)shard; /* a hash holds each {topic}/{partition}/{shard}/{nshards} once */
	add_layout(d, nshards);
	durable_part *p = find(d, topic, tlen, partition);
	if (!p) {
		if (d->n == d->cap) {
			size_t cap = d->cap ? 2 * d->cap : 16;
			durable_part *v = realloc(d->v, cap * sizeof *v);
			if (!v) {
				d->oom = 1;
				return;
			}
			d->v = v;
			d->cap = cap;
		}
		p = &d->v[d->n];
		if (!(p->topic = malloc(tlen + 1))) {
			d->oom = 1;
			return;
		}
		memcpy(p->topic, topic, tlen);
		p->topic[tlen] = 0;
		p->partition = partition;
		p->shards = 0;
		p->min = pos;
		d->n++;
	}
	if (p->shards == 0 || store_pos_cmp(pos, p->min) < 0)
		p->min = pos;
	p->shards++;
}

int
durable_check(const durable *d, const char *key, char *errstr, size_t errlen)
{
	if (d->oom) {
		snprintf(errstr, errlen, "out of memory reading '%s'", key);
		return -1;
	}
	if (d->nlayouts <= 1)
		return 0;
	char list[160] = "";
	size_t len = 0;
	int n = d->nlayouts < DURABLE_MAX_LAYOUTS ? d->nlayouts : DURABLE_MAX_LAYOUTS;
	for (int i = 0; i < n && len < sizeof list; i++)
		len += (size_t)snprintf(list + len, sizeof list - len, "%s%d",
		                        i == 0 ? "" : i == n - 1 && n == d->nlayouts ? " and " : ", ",
		                        d->nshards[i]);
	snprintf(errstr, errlen, "'%s' holds positions for %d shard layouts (%s%s shards): "
	         "re-sharding a pipeline is not supported; delete the positions of the "
	         "layouts no longer in use", key, d->nlayouts, list,
	         n < d->nlayouts ? ", ..." : "");
	return -1;
}

int
durable_read(durable *d, redisContext *c, const char *pipeline, char *errstr, size_t errlen)
{
	char key[300];
	durable_reset(d);
	if (store_read_offsets(c, pipeline, durable_add, d, errstr, errlen) < 0)
		return -1;
	store_offsets_key(pipeline, key, sizeof key);
	if (durable_check(d, key, errstr, errlen) < 0)
		return d->oom ? -1 : -2;
	return 0;
}

int
durable_find(const durable *d, const char *topic, int32_t partition, store_pos *pos)
{
	const durable_part *p = find(d, topic, strlen(topic), partition);
	if (!p || d->nlayouts != 1 || p->shards < d->nshards[0])
		return 0;
	*pos = p->min;
	return 1;
}
