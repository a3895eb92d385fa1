/* merge_table.c - keys in memory with LRU order; see merge_table.h. */
#include "merge_table.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

int
merge_table_init(merge_table *t)
{
	memset(t, 0, sizeof *t);
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
	return t->buckets ? 0 : -1;
}

void
merge_table_release(merge_table *t)
{
	merge_entry *e = t->newest;
	while (e) {
		merge_entry *n = e->older;
		free(e);
		e = n;
	}
	free(t->buckets);
	memset(t, 0, sizeof *t);
}

uint64_t
merge_table_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

merge_entry *
merge_table_find(const merge_table *t, const void *key, size_t len, uint64_t hash)
{
	for (merge_entry *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == hash && e->klen == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static void
grow(merge_table *t)
{
	size_t n = t->nbuckets * 2;
	merge_entry **b = calloc(n, sizeof *b);
	if (!b)
		return; /* keep the longer chains; still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		merge_entry *e = t->buckets[i];
		while (e) {
			merge_entry *next = e->hnext;
			size_t j = e->hash & (n - 1);
			e->hnext = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static void
link_newest(merge_table *t, merge_entry *e)
{
	e->newer = NULL;
	e->older = t->newest;
	if (t->newest)
		t->newest->newer = e;
	t->newest = e;
	if (!t->oldest)
		t->oldest = e;
}

static void
unlink_lru(merge_table *t, merge_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
}

merge_entry *
merge_table_insert(merge_table *t, const void *key, size_t len, uint64_t hash)
{
	if (len > UINT32_MAX)
		return NULL;
	merge_entry *e = malloc(sizeof *e + len);
	if (!e)
		return NULL;
	memset(e, 0, sizeof *e);
	memcpy(e->key, key, len);
	e->klen = (uint32_t)len;
	e->hash = hash;
	if (t->count >= t->nbuckets)
		grow(t);
	size_t i = hash & (t->nbuckets - 1);
	e->hnext = t->buckets[i];
	t->buckets[i] = e;
	link_newest(t, e);
	t->count++;
	return e;
}

void
merge_table_touch(merge_table *t, merge_entry *e)
{
	if (t->newest == e)
		return;
	unlink_lru(t, e);
	link_newest(t, e);
}

void
merge_table_remove(merge_table *t, merge_entry *e)
{
	merge_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	unlink_lru(t, e);
	t->count--;
	free(e);
}
