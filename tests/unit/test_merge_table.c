/* test_merge_table - the key table of fp-merge: find, insert, LRU, remove. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/merge_table.h"

static int ntest, nfail;

static void
ok(int cond, const char *name)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
}

static merge_entry *
put(merge_table *t, const char *k)
{
	return merge_table_insert(t, k, strlen(k), merge_table_hash(k, strlen(k)));
}

static merge_entry *
get(merge_table *t, const char *k)
{
	return merge_table_find(t, k, strlen(k), merge_table_hash(k, strlen(k)));
}

int
main(void)
{
	merge_table t;
	ok(merge_table_init(&t) == 0, "init");
	ok(get(&t, "a") == NULL, "empty table finds nothing");
	merge_entry *a = put(&t, "a"), *b = put(&t, "b"), *c = put(&t, "c");
	ok(a && b && c && t.count == 3, "three inserted");
	ok(get(&t, "b") == b && get(&t, "") == NULL, "find by bytes");
	ok(merge_table_oldest(&t) == a && t.newest == c, "LRU order is insertion order");
	merge_table_touch(&t, a);
	ok(merge_table_oldest(&t) == b && t.newest == a, "touch makes newest");
	merge_table_remove(&t, b);
	ok(get(&t, "b") == NULL && merge_table_oldest(&t) == c && t.count == 2, "remove oldest");

	/* Binary keys with NUL bytes, and growth past the initial buckets. */
	char k[8];
	int found = 1;
	for (int i = 0; i < 5000; i++) {
		memcpy(k, "\0key", 4);
		memcpy(k + 4, &i, 4);
		if (!merge_table_insert(&t, k, 8, merge_table_hash(k, 8)))
			found = 0;
	}
	for (int i = 0; i < 5000 && found; i++) {
		memcpy(k + 4, &i, 4);
		merge_entry *e = merge_table_find(&t, k, 8, merge_table_hash(k, 8));
		found = e && e->klen == 8 && memcmp(e->key, k, 8) == 0;
	}
	ok(found && t.count == 5002 && t.nbuckets >= 4096, "5000 binary keys after growth");
	ok(get(&t, "a") == a && get(&t, "c") == c, "old keys survive growth");
	/* Drain from the oldest end: every entry comes out once. */
	size_t n = 0;
	merge_entry *e;
	while ((e = merge_table_oldest(&t)) != NULL) {
		merge_table_remove(&t, e);
		n++;
	}
	ok(n == 5002 && t.count == 0 && t.newest == NULL, "drain in LRU order");
	merge_table_release(&t);
	printf("1..%d\n", ntest);
	return nfail != 0;
}
