/* test_durable.c - lib/durable.c: smallest position over a layout (TAP). */
#include <string.h>

#include "../../lib/durable.h"
#include "tap.h"

static void
add(durable *d, const char *topic, int32_t partition, int shard, int nshards, int64_t o,
    int64_t i)
{
	durable_add(d, topic, strlen(topic), partition, shard, nshards, (store_pos){o, i});
}

static int
has(const durable *d, const char *topic, int32_t partition, int64_t o, int64_t i)
{
	store_pos p;
	return durable_find(d, topic, partition, &p) == 1 && p.offset == o && p.index == i;
}

int
main(void)
{
	durable d;
	char err[300];
	store_pos p;

	durable_init(&d);
	add(&d, "t", 0, 0, 2, 10, 0);
	add(&d, "t", 0, 1, 2, 7, 0);
	add(&d, "t", 1, 1, 2, 5, 0);
	add(&d, "tt", 0, 0, 2, 3, 2);
	add(&d, "tt", 0, 1, 2, 3, 1);
	ok(durable_check(&d, "k", err, sizeof err) == 0, "one layout is accepted");
	ok(has(&d, "t", 0, 7, 0), "the smallest position over the shards");
	ok(durable_find(&d, "t", 1, &p) == 0, "a partition missing a shard has no position");
	ok(durable_find(&d, "t", 2, &p) == 0 && durable_find(&d, "x", 0, &p) == 0,
	   "an unknown partition has no position");
	ok(has(&d, "tt", 0, 3, 1), "positions compare by (offset, index)");

	durable_reset(&d);
	ok(durable_find(&d, "t", 0, &p) == 0, "reset forgets every position");
	add(&d, "t", 0, 0, 1, 4, 0);
	add(&d, "t", 0, 0, 4, 2, 0);
	add(&d, "t", 0, 1, 2, 2, 0);
	ok(durable_check(&d, "fp:x:offsets", err, sizeof err) == -1 &&
	   strstr(err, "'fp:x:offsets' holds positions for 3 shard layouts (1, 2 and 4 shards)"),
	   "several layouts are refused, naming them: %s", err);
	ok(durable_find(&d, "t", 0, &p) == 0, "no position while layouts conflict");

	durable_reset(&d);
	for (int n = 12; n >= 1; n--)
		add(&d, "t", 0, 0, n, 1, 0);
	ok(durable_check(&d, "k", err, sizeof err) == -1 &&
	   strstr(err, "12 shard layouts (1, 2, 3, 4, 5, 6, 7, 8, ... shards)"),
	   "many layouts are counted and the first listed: %s", err);
	durable_release(&d);
	return tap_done();
}
