/* test_merge - fp-merge's engine: the key table, the skip rule, and merge_run() on a small
 * stream without a store (one update per keyed record, control frames in
 * place, a state that decodes back, --max-keys without a store). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/frame.h"
#include "../../lib/json.h"
#include "../../lib/merge.h"
#include "../../lib/merge_table.h"
#include "tap.h"

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

/* The key table: find, insert, LRU order, growth, remove. */
static void
test_table(void)
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
}

static const char SPEC[] =
	"key user_id\n"
	"prefix \"u:\"\n"
	"time ts\n"
	"n = count()\n"
	"s = sum(x) where kind == \"a\"\n";

/* JSON lines -> frames in a temp file; returns a fd positioned at 0. */
static int
frames_fd(const char *const *lines)
{
	char path[] = "/tmp/test_merge.XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	fp_buf mp = FP_BUF_INIT;
	for (; *lines; lines++) {
		json_error e;
		mp.len = 0;
		if (json_to_mp(*lines, strlen(*lines), &mp, MP_DEFAULT_DEPTH, &e) < 0)
			abort();
		uint8_t len[4] = {(uint8_t)(mp.len >> 24), (uint8_t)(mp.len >> 16),
		                  (uint8_t)(mp.len >> 8), (uint8_t)mp.len};
		if (fr_write_all(fd, len, 4) < 0 || fr_write_all(fd, mp.p, mp.len) < 0)
			abort();
	}
	fp_buf_release(&mp);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static size_t states, bad_states, max_state;

/* Run the engine; the output frames as JSON lines in out.  Every @state
 * must be a bin in its smallest form that decodes back (bad_states). */
static int
run(const feat_spec *spec, size_t max_keys, const char *const *in, fp_buf *out, merge_stats *st,
    int per_record)
{
	merge_opts o = {.spec = spec, .max_keys = max_keys, .batch_max = 2, .nshards = 1,
	                .per_record = per_record};
	char err[200];
	merge *m = merge_new(&o, err, sizeof err);
	int ifd = frames_fd(in);
	char path[] = "/tmp/test_merge.XXXXXX";
	int ofd = mkstemp(path);
	unlink(path);
	int rc = merge_run(m, ifd, ofd);
	*st = *merge_get_stats(m);
	merge_free(m);
	lseek(ofd, 0, SEEK_SET);
	fr_reader r;
	fr_reader_init(&r, 0);
	out->len = 0;
	while (fr_reader_fill(&r, ofd) > 0)
		;
	const uint8_t *b;
	size_t n;
	while (fr_reader_next(&r, &b, &n) == FR_OK) {
		const uint8_t *v, *bin;
		size_t vlen, blen;
		if (mp_map_find(b, n, "@state", 6, &v, &vlen)) {
			feat_state *fs = NULL;
			char e[200];
			states++;
			if (mp_read_bin(v, vlen, &bin, &blen) < 0 || vlen != blen + (blen < 256 ? 2 : blen < 65536 ? 3 : 5) ||
			    feat_state_decode(spec, bin, blen, &fs, NULL, e, sizeof e) < 0)
				bad_states++;
			feat_state_free(fs);
			if (blen > max_state)
				max_state = blen;
		}
		mp_to_json(b, n, out);
		fp_buf_addc(out, '\n');
	}
	fp_buf_addc(out, 0);
	fr_reader_release(&r);
	close(ifd);
	close(ofd);
	return rc;
}

int
main(void)
{
	test_table();
	ok(merge_pos_applied(4, 0, 5, 0) && !merge_pos_applied(5, 0, 5, 0), "plain record below / at the stored offset");
	ok(merge_pos_applied(5, 1, 5, 2) && !merge_pos_applied(5, 2, 5, 2), "exploded element below / at the stored index");
	ok(merge_pos_applied(5, 7, 6, 0) && !merge_pos_applied(6, 0, 5, 9), "an index never outweighs the offset");

	char err[300];
	feat_spec *spec = feat_spec_parse(SPEC, strlen(SPEC), "t.fp", err, sizeof err);
	ok(spec != NULL, "spec parses");
	if (!spec) {
		printf("# %s\n", err);
		return tap_done();
	}
	static const char *const in[] = {
		"{\"user_id\":1,\"kind\":\"a\",\"x\":2,\"ts\":10,\"@src\":[\"t\",0,0]}",
		"{\"@ctl\":\"barrier\",\"@epoch\":1,\"@pos\":[[\"t\",0,1]]}",
		"{\"user_id\":\"b\",\"kind\":\"b\",\"x\":5,\"ts\":11}",
		"{\"kind\":\"a\",\"ts\":12}",
		"{\"user_id\":1,\"kind\":\"a\",\"x\":3,\"ts\":13,\"@ts\":13}",
		NULL,
	};
	fp_buf out = FP_BUF_INIT;
	merge_stats st;
	int rc = run(spec, 10, in, &out, &st, 1);
	ok(rc == MERGE_OK, "runs to the end");
	const char *want =
		"{\"@key\":\"u:1\",\"@src\":[\"t\",0,0],\"n\":1,\"s\":2,\"@state\":";
	ok(strncmp((char *)out.p, want, strlen(want)) == 0, "first update: @key, @src, features in order, @state");
	char *l2 = strchr((char *)out.p, '\n') + 1;
	ok(strncmp(l2, "{\"@ctl\":\"barrier\"", 17) == 0, "the barrier keeps its place");
	char *l4 = strchr(strchr(l2, '\n') + 1, '\n') + 1;
	ok(strncmp(l4, "{\"@key\":\"u:1\",\"@ts\":13,\"n\":2,\"s\":5,", 35) == 0, "the key's state carries over");
	ok(st.records == 4 && st.updates == 3 && st.control == 1 && st.no_key == 1 && st.keys == 2,
	   "counters: records, updates, control, no key, keys");

	ok(states == 3 && bad_states == 0, "every @state is a bin8 that decodes");

	/* coalescing, two frames per batch: [r1, barrier] [b, no key] [r5] */
	rc = run(spec, 10, in, &out, &st, 0);
	/* a sync lists the positions its segment applied; records without
	 * @src (b, the second u:1) give none */
	static const char *const kinds[] = {"{\"@ctl\":\"sync\"}", "{\"@key\":\"u:1\"",
	                                    "{\"@ctl\":\"sync\",\"@pos\":[[\"t\",0,\"1\"]]}",
	                                    "{\"@ctl\":\"barrier\"", "{\"@key\":\"u:b\"", "{\"@ctl\":\"sync\"}",
	                                    "{\"@key\":\"u:1\",\"@ts\":13,\"n\":2", "{\"@ctl\":\"sync\"}"};
	int order = rc == MERGE_OK;
	const char *line = (const char *)out.p;
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds && order; i++) {
		order = strncmp(line, kinds[i], strlen(kinds[i])) == 0;
		if (!order)
			printf("# line %zu: %.60s\n", i + 1, line);
		line = strchr(line, '\n') + 1;
	}
	ok(order && *line == 0, "coalesced: a sync first, then each segment's updates and a sync");
	ok(st.updates == 3 && st.syncs == 4 && st.control == 1, "coalesced counters: updates, syncs");
	static const char *const same[] = {
		"{\"user_id\":1,\"kind\":\"a\",\"x\":2,\"ts\":10,\"@in\":7}",
		"{\"user_id\":1,\"kind\":\"a\",\"x\":3,\"ts\":11,\"@in\":9,\"@src\":[\"t\",0,4]}",
		NULL,
	};
	rc = run(spec, 10, same, &out, &st, 0);
	want = "{\"@ctl\":\"sync\"}\n{\"@key\":\"u:1\",\"@src\":[\"t\",0,4],\"@in\":7,\"n\":2,\"s\":5,";
	ok(rc == MERGE_OK && st.updates == 1 && strncmp((char *)out.p, want, strlen(want)) == 0,
	   "one key twice in a batch: one update, the last @src, the first @in");

	rc = run(spec, 1, in, &out, &st, 1);
	ok(rc == MERGE_DATA, "more keys than max_keys without a store is an error");

	/* A state past 64 KiB: last(v, 1000) of 200-byte strings. */
	static const char BIG[] = "key user_id\ntime ts\nl = last(v, 1000)\n";
	feat_spec *big = feat_spec_parse(BIG, strlen(BIG), "big.fp", err, sizeof err);
	static char lines[400][300];
	static const char *biginput[401];
	for (int i = 0; i < 400; i++) {
		snprintf(lines[i], sizeof lines[i], "{\"user_id\":1,\"ts\":%d,\"v\":\"%0200d\"}", i, i);
		biginput[i] = lines[i];
	}
	states = bad_states = max_state = 0;
	rc = run(big, 10, biginput, &out, &st, 1);
	ok(big && rc == MERGE_OK && states == 400 && bad_states == 0 && max_state > 65536,
	   "states from bin8 through bin16 to bin32 decode");
	feat_spec_free(big);

	fp_buf_release(&out);
	feat_spec_free(spec);
	return tap_done();
}
