/* bench_feat.c - cost of feat_apply (and emit + encode) per record for the
 * benchmark feature file, and memory per key; run by scripts/bench-feat.sh.
 * Baseline in the same run: mp_check_frame() on the same records (what every
 * stage pays per frame anyway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../lib/feat.h"
#include "../../lib/json.h"
#include "../../lib/mpraw.h"

static const char *file =
	"key user_id\n"
	"prefix \"u:\"\n"
	"time ts\n"
	"view_1h      = count()            where action == \"view\"  over 1h by 5m\n"
	"view_7d      = count()            where action == \"view\"  over 7d by 1h\n"
	"order_1d     = count()            where action == \"order\" over 1d by 1h\n"
	"spend        = sum(price)         where action == \"order\"\n"
	"price_avg_7d = avg(price)         over 7d by 1h\n"
	"price_max    = max(price)\n"
	"recent_cars  = last(car_id, 20)   where action == \"view\"\n"
	"top_brands   = topk(brand, 5)     over 7d by 1d\n"
	"uniq_cars    = distinct(car_id)\n"
	"last_city    = latest(city)\n";

static uint64_t rng = 7;
static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
	long users = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
	char err[256];
	if (getenv("BENCH_FILE"))
		file = getenv("BENCH_FILE");
	feat_spec *s = feat_spec_parse(file, strlen(file), "bench.fp", err, sizeof err);
	if (!s) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	static const char *actions[] = {"view", "view", "view", "view", "view", "view",
	                                "view", "view", "order", "click"};
	fp_buf recs = FP_BUF_INIT;
	size_t *off = malloc((size_t)(n + 1) * sizeof *off);
	int *user = malloc((size_t)n * sizeof *user);
	int64_t t0 = 1700000000000, step = 7 * 86400000LL / n;
	for (long i = 0; i < n; i++) {
		char j[512];
		int64_t ts = t0 + i * step - (rnd() % 10 == 0 ? (int64_t)(rnd() % 600000) : 0);
		user[i] = (int)(rnd() % (uint64_t)users);
		snprintf(j, sizeof j, "{\"user_id\":%d,\"action\":\"%s\",\"car_id\":\"c%d\",\"brand\":\"b%d\","
		         "\"price\":%d.%02d,\"city\":\"city%d\",\"ts\":%lld,\"@src\":[\"events\",%ld,%ld],"
		         "\"@ts\":%lld,\"@in\":%lld}", user[i], actions[rnd() % 10], (int)(rnd() % 5000),
		         (int)(rnd() % 30), (int)(1000 + rnd() % 59000), (int)(rnd() % 100),
		         (int)(rnd() % 50), (long long)ts, i % 8, i / 8, (long long)ts,
		         (long long)ts * 1000);
		json_error e;
		off[i] = recs.len;
		if (json_to_mp(j, strlen(j), &recs, 64, &e) < 0) {
			fprintf(stderr, "bad record: %s\n", e.msg);
			return 1;
		}
	}
	off[n] = recs.len;
	feat_state **st = calloc((size_t)users, sizeof *st);
	for (long u = 0; u < users; u++)
		st[u] = feat_state_new(s);

	mp_limits lim = {MP_DEFAULT_DEPTH, MP_DEFAULT_ELEMENTS};
	double t = now_s();
	long okc = 0;
	for (long i = 0; i < n; i++)
		okc += mp_check_frame(recs.p + off[i], off[i + 1] - off[i], &lim, NULL, 0) == 0;
	double base = now_s() - t;

	feat_stats stats = {0};
	t = now_s();
	for (long i = 0; i < n; i++)
		feat_apply(s, st[user[i]], recs.p + off[i], off[i + 1] - off[i], &stats);
	double apply = now_s() - t;

	/* the same (later: one more pass of every key), prefetching 8 records ahead */
	for (long u = 0; u < users; u++) {
		feat_state_free(st[u]);
		st[u] = feat_state_new(s);
	}
	t = now_s();
	for (long i = 0; i < n; i++) {
		if (i + 8 < n)
			feat_state_prefetch(st[user[i + 8]]);
		feat_apply(s, st[user[i]], recs.p + off[i], off[i + 1] - off[i], NULL);
	}
	double apply_pf = now_s() - t;

	/* a second pass of the same records (later in time) with emit + encode */
	fp_buf out = FP_BUF_INIT;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &out, fp_buf_pack_write);
	t = now_s();
	for (long i = 0; i < n; i++) {
		feat_state *x = st[user[i]];
		feat_apply(s, x, recs.p + off[i], off[i + 1] - off[i], &stats);
		out.len = 0;
		msgpack_pack_map(&pk, feat_spec_count(s));
		feat_emit_values(s, x, &pk);
		feat_state_encode(s, x, &out);
	}
	double full = now_s() - t;

	t = now_s();
	for (long i = 0; i < n; i++) {
		out.len = 0;
		msgpack_pack_map(&pk, feat_spec_count(s));
		feat_emit_values(s, st[user[i]], &pk);
	}
	double emit = now_s() - t;
	t = now_s();
	size_t bytes = 0;
	for (long i = 0; i < n; i++) {
		out.len = 0;
		feat_state_encode(s, st[user[i]], &out);
		bytes += out.len;
	}
	double enc = now_s() - t;

	size_t mem = 0, maxmem = 0;
	for (long u = 0; u < users; u++) {
		size_t m = feat_state_memory(st[u]);
		mem += m;
		if (m > maxmem)
			maxmem = m;
	}
	/* memory after one pass (10 events per key on average) */
	for (long u = 0; u < users; u++) {
		feat_state_free(st[u]);
		st[u] = feat_state_new(s);
	}
	for (long i = 0; i < n; i++)
		feat_apply(s, st[user[i]], recs.p + off[i], off[i + 1] - off[i], NULL);
	size_t mem1 = 0;
	for (long u = 0; u < users; u++) {
		mem1 += feat_state_memory(st[u]);
		feat_state_free(st[u]);
	}
	printf("records %ld, keys %ld, %ld checked\n", n, users, okc);
	printf("baseline mp_check_frame:       %7.1f ns/record\n", base / n * 1e9);
	printf("feat_apply:                    %7.1f ns/record  (%.2fx baseline)\n",
	       apply / n * 1e9, apply / base);
	printf("feat_apply, prefetching:       %7.1f ns/record  (%.2fx baseline)\n",
	       apply_pf / n * 1e9, apply_pf / base);
	printf("feat_apply + emit + encode:    %7.1f ns/record  (%.2fx baseline)\n",
	       full / n * 1e9, full / base);
	printf("  of which emit (20 events/key):  %7.1f ns/record\n", emit / n * 1e9);
	printf("  of which encode (20 events/key): %6.1f ns/record, %zu bytes of @state on average\n",
	       enc / n * 1e9, bytes / (size_t)n);
	printf("memory per key, %.0f events/key: %zu bytes average\n", (double)n / users, mem1 / (size_t)users);
	printf("memory per key, %.0f events/key: %zu bytes average, %zu max\n",
	       2.0 * n / users, mem / (size_t)users, maxmem);
	printf("stats: applied %llu filtered %llu bad_field %llu late %llu approx %llu\n",
	       (unsigned long long)stats.applied, (unsigned long long)stats.filtered,
	       (unsigned long long)stats.bad_field, (unsigned long long)stats.late,
	       (unsigned long long)stats.approx);
	free(st);
	free(off);
	free(user);
	fp_buf_release(&recs);
	fp_buf_release(&out);
	feat_spec_free(s);
	return 0;
}
