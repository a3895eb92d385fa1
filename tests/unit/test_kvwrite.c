/* test_kvwrite.c - the epoch engine in dry-run mode (no Redis): coalescing,
 * positions, value text, quoting, commit triggers, bad updates.  TAP. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../lib/json.h"
#include "../../lib/kvwrite.h"
#include "../../lib/mpraw.h"
#include "tap.h"

static kvw *
writer(size_t max_batch)
{
	static const char *zs[] = {"top"};
	kvw_options o = {.pipeline = "t", .shard = 0, .nshards = 1, .max_batch = max_batch,
	                 .flush_ms = 0, .zset = zs, .nzset = 1, .dry_run = 1, .dry_fd = -1};
	kvw *w = kvw_new(&o);
	kvw_start(w);
	return w;
}

/* Add one JSON line as a frame; the kvw_add status. */
static int
add(kvw *w, const char *json, uint64_t frameno)
{
	fp_buf b = FP_BUF_INIT;
	json_error e;
	if (json_to_mp(json, strlen(json), &b, 64, &e) < 0) {
		printf("# bad JSON in test: %s\n", e.msg);
		return -1;
	}
	int r = kvw_add(w, b.p, b.len, frameno);
	fp_buf_release(&b);
	return r;
}

/* Commit and return the dry-run text (NUL-terminated, static). */
static const char *
commit(kvw *w)
{
	static char out[4096];
	fp_buf *d = kvw_dry_output(w);
	d->len = 0;
	if (kvw_commit(w) != 0)
		return kvw_errstr(w);
	size_t n = d->len < sizeof out - 1 ? d->len : sizeof out - 1;
	memcpy(out, d->p ? (char *)d->p : "", n);
	out[n] = 0;
	return out;
}

static int
same(const char *got, const char *want)
{
	if (strcmp(got, want) == 0)
		return 1;
	printf("# want:\n# %s\n# got:\n# %s\n", want, got);
	return 0;
}

/* Every commit ends by moving this shard's fence key (kvwrite.c). */
#define FENCE "INCR \"fp:t:fence:0/1\"\n"

int
main(void)
{
	fp_buf q = FP_BUF_INIT;
	kvw_quote(&q, (const uint8_t *)"a \"b\"\\\n\x01\xff", 9);
	static const char want_q[] = "\"a \\\"b\\\"\\\\\\n\\x01\\xff\"";
	ok(q.len == sizeof want_q - 1 && !memcmp(q.p, want_q, q.len), "quote");
	fp_buf_release(&q);

	kvw *w = writer(100);
	add(w, "{\"@key\":\"k\",\"@src\":[\"ev\",0,1],\"n\":1}", 1);
	add(w, "{\"@key\":\"k\",\"@src\":[\"ev\",0,2],\"n\":2,\"f\":3.0,\"g\":{\"@float\":\"NaN\"},"
	       "\"b\":true,\"s\":{\"@b64\":\"AP8=\"},\"x\":null,\"l\":[1,\"a\"]}", 2);
	ok(same(commit(w),
	        "MULTI\n"
	        "HSET \"k\" \"n\" \"2\" \"f\" \"3.0\" \"g\" \"nan\" \"b\" \"true\" \"s\" \"\\x00\\xff\" "
	        "\"l\" \"[1,\\\"a\\\"]\"\n"
	        "HDEL \"k\" \"x\"\n"
	        "HSET \"fp:t:offsets\" \"ev/0/0/1\" \"3\"\n"
	        FENCE
	        "EXEC\n"),
	   "coalescing keeps the latest update; value text; nil deletes");
	ok(same(commit(w), ""), "nothing changed: no commit");

	add(w, "{\"@key\":\"k\",\"@src\":[\"ev\",0,7,2],\"@ttl\":60,\"top\":[[\"a\",2],[\"b\",1.5]]}", 3);
	ok(same(commit(w),
	        "MULTI\n"
	        "HSET \"k\" \"top\" \"[[\\\"a\\\",2],[\\\"b\\\",1.5]]\"\n"
	        "EXPIRE \"k\" \"67\"\n" /* a hash: ttl + ttl/8; the sorted set: ttl */
	        "DEL \"k:top\"\n"
	        "ZADD \"k:top\" \"2\" \"a\" \"1.5\" \"b\"\n"
	        "EXPIRE \"k:top\" \"60\"\n"
	        "HSET \"fp:t:offsets\" \"ev/0/0/1\" \"7:3\"\n"
	        FENCE
	        "EXEC\n"),
	   "exploded record position o:i+1, ttl, zset");

	add(w, "{\"@ctl\":\"barrier\",\"@epoch\":3,\"@pos\":[[\"ev\",0,5],[\"ev\",1,9]]}", 4);
	ok(kvw_due(w), "a barrier makes a commit due");
	ok(same(commit(w),
	        "MULTI\nHSET \"fp:t:offsets\" \"ev/1/0/1\" \"9\"\n" FENCE "EXEC\n"),
	   "a barrier never moves a position back");
	kvw_free(w);

	w = writer(2);
	add(w, "{\"@key\":\"a\",\"v\":1}", 1);
	ok(!kvw_due(w), "one key: not due");
	add(w, "{\"@key\":\"a\",\"v\":2}", 2);
	ok(!kvw_due(w), "the same key again: not due");
	add(w, "{\"@key\":\"b\",\"v\":1}", 3);
	ok(kvw_due(w), "--max-batch distinct keys: due");
	ok(kvw_wait_ms(w) == -1, "no timer with flush_ms 0");
	commit(w);
	kvw_free(w);

	/* The timer, and sync frames: in the middle of a batch the timer waits
	 * for input (-1), never 0, which would make the read loop spin. */
	{
		kvw_options o = {.pipeline = "t", .shard = 0, .nshards = 1, .max_batch = 100,
		                 .flush_ms = 1, .dry_run = 1, .dry_fd = -1};
		w = kvw_new(&o);
		kvw_start(w);
	}
	add(w, "{\"@ctl\":\"sync\",\"@pos\":[]}", 1);
	add(w, "{\"@key\":\"a\",\"@src\":[\"ev\",0,1],\"v\":1}", 2);
	struct timespec ms2 = {0, 2000000};
	nanosleep(&ms2, NULL);
	ok(kvw_wait_ms(w) == -1, "the timer is past, in the middle of a batch: wait for input");
	ok(add(w, "{\"@ctl\":\"sync\",\"@pos\":[[\"ev\",0,\"2\"]]}", 3) == 0 &&
	   kvw_wait_ms(w) == 0 && kvw_due(w), "the batch complete: the commit is due now");
	ok(same(commit(w), "MULTI\nHSET \"a\" \"v\" \"1\"\n"
	                   "HSET \"fp:t:offsets\" \"ev/0/0/1\" \"2\"\n" FENCE "EXEC\n"),
	   "the batch is committed with the sync's position");
	kvw_free(w);
	w = writer(2);

	ok(add(w, "{\"v\":1}", 7) == KVW_DATA && strstr(kvw_errstr(w), "frame 7: update has no @key"),
	   "an update without @key");
	ok(add(w, "{\"@key\":\"a\",\"@src\":[\"ev\",-1,2]}", 8) == KVW_DATA &&
	   strstr(kvw_errstr(w), "frame 8: @src of 'a'"), "a bad @src");
	ok(add(w, "{\"@key\":\"a\",\"top\":[1,2]}", 9) == KVW_DATA &&
	   strstr(kvw_errstr(w), "frame 9: feature 'top'"), "a bad --zset feature");
	ok(add(w, "{\"@key\":\"fp:t:offsets\"}", 10) == KVW_DATA, "@key naming the offsets hash");
	ok(add(w, "{\"@key\":{\"@b64\":\"AA==\"},\"v\":1}", 11) == 0 &&
	   same(commit(w), "MULTI\nHSET \"\\x00\" \"v\" \"1\"\n" FENCE "EXEC\n"), "a binary key");
	kvw_free(w);

	/* Float text: the same as mp_to_json() (fp-cat), fast path or not. */
	w = writer(1000000);
	uint64_t seed = 88172645463325252ull;
	int same_text = 1;
	for (int i = 0; i < 20000 && same_text; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		double d;
		static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e6, 1e9, 1e15};
		if (i % 3 == 0)
			memcpy(&d, &seed, sizeof d);
		else
			d = (double)(int64_t)(seed % 2000000000000000ull - 1000000000000000ull) / p10[i % 8];
		if (d != d || d - d != 0)
			d = 0.25;
		fp_buf b = FP_BUF_INIT, want = FP_BUF_INIT;
		mpw_map(&b, 2);
		mpw_str(&b, "@key", 4);
		mpw_str(&b, "k", 1);
		mpw_str(&b, "x", 1);
		size_t at = b.len;
		mpw_double(&b, d);
		mp_to_json(b.p + at, b.len - at, &want);
		fp_buf *dry = kvw_dry_output(w);
		dry->len = 0;
		kvw_add(w, b.p, b.len, 1);
		kvw_commit(w);
		/* MULTI\nHSET "k" "x" "<text>"\n... */
		const char *t = (const char *)dry->p + strlen("MULTI\nHSET \"k\" \"x\" \"");
		if (want.len >= dry->len || memcmp(t, want.p, want.len) || t[want.len] != '"') {
			printf("# %.17g: want %.*s\n", d, (int)want.len, (char *)want.p);
			same_text = 0;
		}
		fp_buf_release(&b);
		fp_buf_release(&want);
	}
	ok(same_text, "float text equals mp_to_json() over 20000 values");
	kvw_free(w);

	return tap_done();
}
