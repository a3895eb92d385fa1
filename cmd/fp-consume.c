/* fp-consume - a kcat-like Kafka consumer writing raw message frames. */
#define _POSIX_C_SOURCE 200809L
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../lib/durable.h"
#include "../lib/frame.h"
#include "../lib/json.h"
#include "../lib/kafka.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"
#include "../lib/store.h"

static const char USAGE[] =
	"usage: fp-consume [-b brokers] -t topic ... [-G group] [-o offset] [-o e@ms] [-e] [-c count] "
	"[-X prop=val] ... [-F file] [-q] [-f format | -J] [--barrier-ms ms] "
	"[--store url | --store -] [--commit-ms ms]\n";

#define META_TIMEOUT_MS 10000
#define STORE_TIMEOUT_MS 5000
#define OUT_CHUNK (256u << 10)   /* output goes out in writes of about this size */
#define PIPE_SIZE (1u << 20)     /* asked for the pipe on standard output */
#define CLOCK_EVERY 64           /* messages between two readings of the clock */
#define REFILL_EVERY 256         /* messages between two looks at the fetch queue */
#define REFILL_TIMEOUT_MS 0      /* the wake-up is sent; its answer is not awaited */

static struct {
	const char *brokers, *group, *format;
	const char **topics;
	int ntopics, exit_eof, quiet, json;
	uint64_t count;          /* 0: no limit */
	fk_offset start;
	int64_t stop_ms;         /* -1: none */
	int64_t barrier_ms;
	const char *store;       /* --store: resume from the store's positions */
	int64_t commit_ms;       /* how often durable positions go to the group */
} opt = {.start = {FK_OFF_BEGINNING, 0}, .stop_ms = -1, .barrier_ms = 1000, .commit_ms = 5000};

static struct {
	rd_kafka_t *rk;
	fk_parts parts;           /* every assigned partition */
	fr_writer fw;            /* frames */
	fk_refill refill;        /* wakes librdkafka's fetchers */
	fp_buf text;             /* -f / -J output */
	int64_t epoch;
	uint64_t msgs;
	int fatal;               /* exit code of an error raised in a callback */
	int clock_stale;         /* a callback took time: read the clock again */
	store_url su;            /* --store */
	redisContext *rc;        /* NULL without --store */
	durable dur;             /* the store's positions, last read */
	int store_code;          /* exit code of the last store failure */
	char errstr[512];
} c;

static volatile sig_atomic_t stop;

/* Metrics (fp-consume(1) METRICS). */
static struct {
	stats *s;
	stats_counter *in, *out, *bytes, *barriers, *rebalances, *wakes;
	stats_gauge *parts;
	stats_hist *epoch;
	uint64_t epoch_msgs0;   /* c.msgs at the last barrier */
} mt;

static void
metrics_start(void)
{
	char err[300];
	stats *s = mt.s = stats_new("fp-consume", err, sizeof err);
	if (!s)
		fp_die(FP_EXIT_IO, "%s", err);
	mt.in = stats_counter_new(s, "records_in_total", "Messages consumed.", NULL, NULL);
	mt.out = stats_counter_new(s, "records_out_total", "Messages written.", NULL, NULL);
	mt.bytes = stats_counter_new(s, "bytes_total", "Bytes of message keys and values consumed.",
	                             NULL, NULL);
	mt.barriers = stats_counter_new(s, "barriers_total", "Barriers written.", NULL, NULL);
	mt.rebalances = stats_counter_new(s, "rebalances_total",
	                                  "Partitions assigned or revoked by the group.", NULL, NULL);
	mt.wakes = stats_counter_new(s, "fetch_wakes_total",
	                             "Wake-ups sent to librdkafka's fetchers (queue refills).", NULL, NULL);
	mt.parts = stats_gauge_new(s, "partitions_assigned", "Partitions assigned now.", NULL, NULL);
	mt.epoch = stats_hist_new(s, "batch_size", "Messages between two barriers.", NULL, NULL);
	stats_error(s, "consumer_error");
	if (stats_register_errstr(s))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(s));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
}

static void
metrics_sync(void)
{
	mt.in->v = c.msgs;
	mt.out->v = c.msgs;
	mt.wakes->v = c.refill.wakes;
	stats_set(mt.parts, c.parts.n);
}

static void
metrics_last(void)
{
	if (!mt.s)
		return;
	metrics_sync();
	if (stats_final(mt.s) < 0)
		fp_warn("%s", stats_errstr(mt.s));
}

static void
log_line(int level, const char *fac, const char *msg)
{
	(void)level;
	fp_warn("%s: %s", fac, msg);
}

static void
write_failed(int e)
{
	if (e == EPIPE)
		exit(0); /* the reader went away: a quiet, orderly stop */
	fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(e));
}

static void
out_flush(void)
{
	if (opt.format || opt.json) {
		if (c.text.len && fr_write_all(STDOUT_FILENO, c.text.p, c.text.len) < 0)
			write_failed(errno);
		c.text.len = 0;
	} else if (fr_writer_flush(&c.fw) < 0) {
		write_failed(c.fw.err);
	}
}

static int
text_mode(void)
{
	return opt.format || opt.json;
}

/* {"@ctl":"barrier","@epoch":E,"@pos":[[topic,partition,next],...]} */
static void
barrier(void)
{
	if (text_mode())
		return;
	fr_writer_begin(&c.fw);
	if (fk_barrier(&c.parts, ++c.epoch, &c.fw.buf) < 0)
		fp_die(FP_EXIT_IO, "out of memory");
	if (fr_writer_end(&c.fw) < 0)
		write_failed(c.fw.err);
	stats_add(mt.barriers, 1);
	stats_observe(mt.epoch, c.msgs - mt.epoch_msgs0);
	mt.epoch_msgs0 = c.msgs;
}

/* Read the store's positions into c.dur, reconnecting once when the
 * connection was lost.  0, or -1 with errstr and c.store_code (2 for
 * several layouts, 4 for Redis). */
static int
store_read(char *errstr, size_t errlen)
{
	char err[512];
	int r = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!c.rc && !(c.rc = store_connect(&c.su, STORE_TIMEOUT_MS, STORE_TIMEOUT_MS,
		                                     err, sizeof err)))
			break;
		r = durable_read(&c.dur, c.rc, store_pipeline(), err, sizeof err);
		if (r != -1 || !c.rc->err)
			break;
		redisFree(c.rc); /* a context is dead after an error: reconnect */
		c.rc = NULL;
	}
	if (r == 0)
		return 0;
	snprintf(errstr, errlen, "store: %s", err);
	c.store_code = r == -2 ? FP_EXIT_USAGE : FP_EXIT_REMOTE;
	return -1;
}

/* fk_start_hook: start each partition at its durable position; one
 * without falls back to -o (and ignores the group's committed offset,
 * which only mirrors the store, unless -o stored asks for it). */
static int
resume_hook(void *ctx, rd_kafka_topic_partition_list_t *parts, char *errstr, size_t errlen)
{
	(void)ctx;
	if (parts->cnt == 0)
		return 0; /* a cooperative rebalance that brought nothing */
	if (store_read(errstr, errlen) < 0)
		return -1;
	int n = 0;
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		store_pos pos;
		if (durable_find(&c.dur, p->topic, p->partition, &pos))
			p->offset = pos.offset, n++;
		else if (opt.start.kind != FK_OFF_STORED)
			p->offset = RD_KAFKA_OFFSET_INVALID;
	}
	if (!opt.quiet)
		fp_warn("resuming %d of %d partition(s) at their stored positions (pipeline '%s')",
		        n, parts->cnt, store_pipeline());
	return 0;
}

/* Commit the durable positions of the assigned partitions to the group,
 * so that kcat, kafka-consumer-groups and fp-lag see the progress the
 * store holds, never more.  0, or -1 with c.errstr on a store failure. */
static int
commit_durable(int async)
{
	if (!opt.store || !opt.group || c.parts.n == 0)
		return 0;
	if (store_read(c.errstr, sizeof c.errstr) < 0)
		return -1;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(c.parts.n);
	for (int i = 0; i < c.parts.n; i++) {
		store_pos pos;
		if (durable_find(&c.dur, c.parts.v[i].topic, c.parts.v[i].partition, &pos))
			rd_kafka_topic_partition_list_add(l, c.parts.v[i].topic,
			                                  c.parts.v[i].partition)->offset = pos.offset;
	}
	rd_kafka_resp_err_t err = l->cnt ? rd_kafka_commit(c.rk, l, async) : 0;
	if (err && !opt.quiet)
		fp_warn("unable to commit offsets to group '%s': %s", opt.group, rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
	return 0;
}

/* At the end (-e, -c, e@): the stages downstream commit the final barrier
 * shortly after it.  Wait, at most --commit-ms, until the store holds
 * every position written, so the group's last commit shows the whole run.
 * A store error is left for commit_durable() to report. */
static void
wait_durable(void)
{
	if (!opt.store || !opt.group)
		return;
	int64_t deadline = fk_now_us() + opt.commit_ms * 1000;
	for (;;) {
		if (store_read(c.errstr, sizeof c.errstr) < 0)
			return;
		int behind = 0;
		for (int i = 0; i < c.parts.n && !behind; i++) {
			store_pos pos;
			behind = !durable_find(&c.dur, c.parts.v[i].topic, c.parts.v[i].partition, &pos) ||
			         pos.offset < c.parts.v[i].next;
		}
		if (!behind || fk_now_us() >= deadline)
			return;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* An asynchronous commit's outcome. */
static void
committed(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
          void *opaque)
{
	(void)rk, (void)l, (void)opaque;
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET && !opt.quiet)
		fp_warn("unable to commit offsets to group '%s': %s", opt.group, rd_kafka_err2str(err));
}

/* Remember an assignment (offsets absolute) and hand it to librdkafka. */
static int
assign(rd_kafka_topic_partition_list_t *list, int incremental)
{
	if (fk_parts_add(&c.parts, list) < 0)
		fp_die(FP_EXIT_IO, "out of memory");
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (incremental) {
		rd_kafka_error_t *e = rd_kafka_incremental_assign(c.rk, list);
		if (e) {
			snprintf(c.errstr, sizeof c.errstr, "unable to assign partitions: %s",
			         rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			return -1;
		}
	} else if ((err = rd_kafka_assign(c.rk, list)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(c.errstr, sizeof c.errstr, "unable to assign partitions: %s",
		         rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

static void
rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *list,
          void *opaque)
{
	(void)opaque;
	c.clock_stale = 1; /* store reads, offset lookups, commits */
	int incremental = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		c.store_code = 0;
		if (fk_start_offsets(rk, list, !opt.store || opt.start.kind == FK_OFF_STORED,
		                     opt.store ? resume_hook : NULL, NULL, &opt.start,
		                     META_TIMEOUT_MS, c.errstr, sizeof c.errstr) < 0 ||
		    assign(list, incremental) < 0) {
			c.fatal = c.store_code ? c.store_code : FP_EXIT_REMOTE;
			stop = 1;
		} else if (!opt.quiet) {
			fp_warn("assigned %d partition(s), %d in all", list->cnt, c.parts.n);
		}
		stats_add(mt.rebalances, 1);
		return;
	}
	stats_add(mt.rebalances, 1);
	/* Revoked: everything written so far is covered; say so before letting go. */
	barrier();
	out_flush();
	if (commit_durable(0) < 0) {
		c.fatal = c.store_code;
		stop = 1;
	}
	if (incremental) {
		fk_parts_remove(&c.parts, list);
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, list);
		if (e)
			rd_kafka_error_destroy(e);
	} else {
		fk_parts_release(&c.parts);
		rd_kafka_assign(rk, NULL);
	}
}

static fk_part *
find_part(const rd_kafka_message_t *m)
{
	return fk_parts_find(&c.parts, rd_kafka_topic_name(m->rkt), m->partition);
}

/* 1 when every assigned partition is finished (-e or e@). */
static int
all_done(void)
{
	if (c.parts.n == 0)
		return 0;
	for (int i = 0; i < c.parts.n; i++)
		if (!c.parts.v[i].done && !(opt.exit_eof && c.parts.v[i].eof))
			return 0;
	return 1;
}

static void
consume_error(rd_kafka_message_t *m)
{
	const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		fk_part *p = find_part(m);
		if (p && !p->eof) {
			p->eof = 1;
			if (m->offset > p->next)
				p->next = m->offset;
		}
		return;
	}
	if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
	    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
		fk_part *p = topic ? find_part(m) : NULL;
		int64_t lo = -1, hi = -1;
		if (topic)
			rd_kafka_get_watermark_offsets(c.rk, topic, m->partition, &lo, &hi);
		snprintf(c.errstr, sizeof c.errstr, "'%s' [%" PRId32 "]: offset %" PRId64
		         " is out of range (the broker keeps %" PRId64 "..%" PRId64 "); refusing to "
		         "skip data: set -X auto.offset.reset=earliest or latest to allow it",
		         topic ? topic : "?", m->partition, p ? p->next : m->offset, lo, hi);
		c.fatal = FP_EXIT_REMOTE;
		stop = 1;
		return;
	}
	char e[256];
	if (rd_kafka_fatal_error(c.rk, e, sizeof e)) {
		snprintf(c.errstr, sizeof c.errstr, "fatal consumer error: %s", e);
		c.fatal = FP_EXIT_REMOTE;
		stop = 1;
		return;
	}
	if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
	    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
		snprintf(c.errstr, sizeof c.errstr, "%s%s%s%s", topic ? "'" : "", topic ? topic : "",
		         topic ? "': " : "", rd_kafka_message_errstr(m));
		c.fatal = FP_EXIT_REMOTE;
		stop = 1;
		return;
	}
	stats_add(stats_error(mt.s, "consumer_error"), 1);
	if (!opt.quiet)
		fp_warn("%s", rd_kafka_message_errstr(m));
}

static void
message(rd_kafka_message_t *m, int64_t now_us)
{
	fk_part *p = find_part(m);
	if (p && p->done)
		return;
	if (p && opt.stop_ms >= 0 && rd_kafka_message_timestamp(m, NULL) >= opt.stop_ms) {
		p->done = 1;
		p->next = m->offset;
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
		rd_kafka_pause_partitions(c.rk, l);
		rd_kafka_topic_partition_list_destroy(l);
		return;
	}
	int rc;
	if (opt.json) {
		rc = fk_msg_json(m, &c.text);
	} else if (opt.format) {
		rc = fk_msg_format(m, opt.format, &c.text);
	} else {
		fr_writer_begin(&c.fw);
		if (fk_msg_frame(m, now_us, &c.fw.buf) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
		if (fr_writer_end(&c.fw) < 0) {
			if (!c.fw.err && errno == EMSGSIZE)
				fp_die(FP_EXIT_DATA, "'%s' [%" PRId32 "] offset %" PRId64 ": the message "
				       "is larger than the maximum frame size %zu (FP_MAX_FRAME)",
				       rd_kafka_topic_name(m->rkt), m->partition, m->offset, c.fw.max_frame);
			write_failed(c.fw.err);
		}
		rc = 0;
	}
	if (rc < 0)
		fp_die(FP_EXIT_IO, "out of memory");
	if (p) {
		p->next = m->offset + 1;
		p->eof = 0;
	}
	c.msgs++;
	stats_add(mt.bytes, m->len + m->key_len);
	fk_refill_count(&c.refill, m->len + m->key_len);
}

/* Bytes buffered for standard output. */
static size_t
out_pending(void)
{
	return text_mode() ? c.text.len : c.fw.buf.len;
}

/* Assign mode: every partition of every topic, from -o. */
static void
assign_all(void)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
	for (int t = 0; t < opt.ntopics; t++) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(c.rk, opt.topics[t], NULL);
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err = rkt ? rd_kafka_metadata(c.rk, 0, rkt, &md, META_TIMEOUT_MS)
		                              : rd_kafka_last_error();
		if (!err && md->topic_cnt == 1 && md->topics[0].err)
			err = md->topics[0].err;
		if (err)
			fp_die(FP_EXIT_REMOTE, "unable to get metadata of topic '%s': %s", opt.topics[t],
			       rd_kafka_err2str(err));
		for (int i = 0; i < md->topics[0].partition_cnt; i++)
			rd_kafka_topic_partition_list_add(list, opt.topics[t],
			                                  md->topics[0].partitions[i].id);
		rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
	}
	if (opt.start.kind == FK_OFF_STORED)
		fp_usage_error(USAGE, "-o stored needs a group (-G)");
	c.store_code = 0;
	if (fk_start_offsets(c.rk, list, 0, opt.store ? resume_hook : NULL, NULL, &opt.start,
	                     META_TIMEOUT_MS, c.errstr, sizeof c.errstr) < 0 ||
	    assign(list, 0) < 0)
		fp_die(c.store_code ? c.store_code : FP_EXIT_REMOTE, "%s", c.errstr);
	rd_kafka_topic_partition_list_destroy(list);
}

/* fetch.max.bytes: 8 MiB (librdkafka's 50 MiB would all be queued at
 * once), but never below message.max.bytes nor above what
 * receive.message.max.bytes allows, which librdkafka would refuse. */
static void
fetch_max_default(fk_conf *kc)
{
	char v[32], err[512];
	size_t vn = sizeof v;
	int64_t fetch = 8 << 20, mm = 0, rm = INT64_MAX;
	if (rd_kafka_conf_get(kc->rk, "message.max.bytes", v, &vn) == RD_KAFKA_CONF_OK &&
	    fp_parse_i64(v, 0, INT32_MAX, &mm, NULL, 0) == 0 && mm > fetch)
		fetch = mm;
	vn = sizeof v;
	if (fk_conf_user(kc, "receive.message.max.bytes") &&
	    rd_kafka_conf_get(kc->rk, "receive.message.max.bytes", v, &vn) == RD_KAFKA_CONF_OK &&
	    fp_parse_i64(v, 0, INT32_MAX, &rm, NULL, 0) == 0 && rm - 512 < fetch && rm - 512 >= mm)
		fetch = rm - 512;
	snprintf(v, sizeof v, "%" PRId64, fetch);
	if (fk_conf_default(kc, "fetch.max.bytes", v, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "fetch.max.bytes=%s: %s", v, err);
}

static void
configure(fk_conf *kc, int argc, char **argv)
{
	char err[512];
	int ch;
	const char **xs = calloc((size_t)argc, sizeof *xs);
	const char *file = NULL;
	int nx = 0, nstart = 0;
	opt.topics = calloc((size_t)argc, sizeof *opt.topics);
	if (!xs || !opt.topics)
		fp_die(FP_EXIT_IO, "out of memory");
	int commit_set = 0;
	enum { OPT_BARRIER = 256, OPT_STORE, OPT_COMMIT };
	static const struct option longopts[] = {
		{"barrier-ms", required_argument, NULL, OPT_BARRIER},
		{"store", required_argument, NULL, OPT_STORE},
		{"commit-ms", required_argument, NULL, OPT_COMMIT},
		{NULL, 0, NULL, 0},
	};
	while ((ch = getopt_long(argc, argv, "b:t:G:o:ec:X:F:qf:J", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': opt.brokers = optarg; break;
		case 't': opt.topics[opt.ntopics++] = optarg; break;
		case 'G': opt.group = optarg; break;
		case 'e': opt.exit_eof = 1; break;
		case 'q': opt.quiet = 1; break;
		case 'J': opt.json = 1; break;
		case 'X': xs[nx++] = optarg; break;
		case 'F': file = optarg; break;
		case 'f':
			if (fk_format_check(optarg, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-f: %s", err);
			opt.format = optarg;
			break;
		case 'c':
			if (fp_parse_u64(optarg, 1, UINT64_MAX, &opt.count, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-c: %s", err);
			break;
		case 'o': {
			fk_offset o;
			int64_t ms;
			int r = fk_offset_parse(optarg, &o, &ms, err, sizeof err);
			if (r < 0)
				fp_usage_error(USAGE, "-o: %s", err);
			if (r == 1)
				opt.stop_ms = ms;
			else if (nstart++)
				fp_usage_error(USAGE, "-o: only one start offset may be given");
			else
				opt.start = o;
			break;
		}
		case OPT_BARRIER:
			if (fp_parse_duration_ms(optarg, 1, 0, &opt.barrier_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--barrier-ms: %s", err);
			break;
		case OPT_STORE:
			opt.store = optarg;
			break;
		case OPT_COMMIT:
			if (fp_parse_duration_ms(optarg, 1, 0, &opt.commit_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--commit-ms: %s", err);
			commit_set = 1;
			break;
		default:
			fputs(USAGE, stderr);
			exit(FP_EXIT_USAGE);
		}
	}
	if (optind < argc)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind]);
	if (opt.ntopics == 0)
		fp_usage_error(USAGE, "no topic given (-t)");
	if (opt.format && opt.json)
		fp_usage_error(USAGE, "-f and -J cannot be combined");
	if (!opt.brokers && !(opt.brokers = getenv("FP_BROKERS")))
		fp_usage_error(USAGE, "no brokers given (-b or FP_BROKERS)");
	if (opt.store && !strcmp(opt.store, "-") && !(opt.store = getenv("FP_REDIS")))
		fp_usage_error(USAGE, "--store -: FP_REDIS is not set");
	if (opt.store && store_url_parse(opt.store, &c.su, err, sizeof err) < 0)
		fp_usage_error(USAGE, "--store: %s", err);
	if (commit_set && !(opt.store && opt.group))
		fp_usage_error(USAGE, "--commit-ms needs --store and a group (-G)");
	if (!text_mode() && isatty(STDOUT_FILENO))
		fp_die(FP_EXIT_USAGE, "refusing to write binary frames to a terminal; "
		       "pipe into another tool (e.g. '| fp-cat') or use -f or -J");

	/* -F first, then -X in order: the command line wins. */
	if (file && fk_conf_file(kc, file, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "-F: %s", err);
	for (int i = 0; i < nx; i++)
		if (fk_conf_set_kv(kc, xs[i], err, sizeof err) < 0)
			fp_usage_error(USAGE, "-X %s: %s", xs[i], err);
	free(xs);
	static const char *const defaults[][2] = {
		/* A small prefetch queue (RSS is about 3 times the bytes counted:
		 * librdkafka keeps ~250 bytes per message), refilled as it drains
		 * (fk_refill: librdkafka 2.0.2 would wait up to a second). */
		{"queued.min.messages", "100000"},
		{"queued.max.messages.kbytes", "8192"},
		{"fetch.wait.max.ms", "10"},
		{"fetch.error.backoff.ms", "100"},
		/* Never skip data silently: out of range is an error unless asked. */
		{"auto.offset.reset", "error"},
	};
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (fk_conf_default(kc, defaults[i][0], defaults[i][1], err, sizeof err) < 0)
			fp_die(FP_EXIT_USAGE, "%s=%s: %s", defaults[i][0], defaults[i][1], err);
	fetch_max_default(kc);
	const char *must[][2] = {
		{"bootstrap.servers", opt.brokers},
		{"group.id", opt.group ? opt.group : "fp-consume"},
		{"enable.partition.eof", opt.exit_eof ? "true" : "false"},
	};
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
		if (fk_conf_default(kc, must[i][0], must[i][1], err, sizeof err) < 0)
			fp_die(FP_EXIT_USAGE, "%s: %s", must[i][0], err);
	if (opt.store && fk_conf_user(kc, "enable.auto.commit")) {
		char v[16];
		size_t vn = sizeof v;
		if (rd_kafka_conf_get(kc->rk, "enable.auto.commit", v, &vn) != RD_KAFKA_CONF_OK ||
		    strcmp(v, "false"))
			fp_usage_error(USAGE, "--store: enable.auto.commit must stay false: the group's "
			               "offsets follow the store");
	}
	if ((!opt.group || opt.store) &&
	    fk_conf_default(kc, "enable.auto.commit", "false", err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "%s", err);
	fk_set_log_level(fk_conf_user(kc, "debug") ? 7 : opt.quiet ? 3 : 4);
	fk_set_log(kc->rk, log_line);
	if (opt.group)
		rd_kafka_conf_set_rebalance_cb(kc->rk, rebalance);
	if (opt.group && opt.store)
		rd_kafka_conf_set_offset_commit_cb(kc->rk, committed);
}

int
main(int argc, char **argv)
{
	fk_conf kc;
	char err[512];

	fp_tool_init("fp-consume");
	fp_std_options(argc, argv, USAGE);
	fk_conf_init(&kc);
	configure(&kc, argc, argv);

	fk_catch_stop(&stop);
	metrics_start();
	atexit(metrics_last);
	durable_init(&c.dur);
	if (opt.store && store_read(c.errstr, sizeof c.errstr) < 0)
		fp_die(c.store_code, "%s", c.errstr); /* fail early: Redis down, several layouts */

	if (!(c.rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc.rk, err, sizeof err)))
		fp_die(FP_EXIT_USAGE, "unable to create the consumer: %s", err);
	kc.rk = NULL;
	fk_conf_release(&kc);
	rd_kafka_poll_set_consumer(c.rk);
	if (fk_refill_init(&c.refill, c.rk, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "%s", err);
	fr_writer_init(&c.fw, STDOUT_FILENO, 0);
	c.fw.flush_at = SIZE_MAX; /* the loop flushes, then reads the clock */
#ifdef F_SETPIPE_SZ
	/* A larger pipe lets each write go out without waiting for the reader
	 * to drain it in pieces: fewer wake-ups on both sides.  Best effort. */
	int pipe_size = fcntl(STDOUT_FILENO, F_GETPIPE_SZ);
	if (pipe_size > 0 && pipe_size < (int)PIPE_SIZE)
		(void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, (int)PIPE_SIZE);
#endif

	if (opt.group) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(opt.ntopics);
		for (int i = 0; i < opt.ntopics; i++)
			rd_kafka_topic_partition_list_add(l, opt.topics[i], RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = rd_kafka_subscribe(c.rk, l);
		rd_kafka_topic_partition_list_destroy(l);
		if (e)
			fp_die(FP_EXIT_REMOTE, "unable to subscribe: %s", rd_kafka_err2str(e));
	} else {
		assign_all();
	}

	/* The clock is read once per batch: before blocking for messages,
	 * after each write, and every CLOCK_EVERY messages, so @in is when
	 * fp-consume read the message, to within that batch. */
	int64_t now = fk_now_us();
	int64_t next_barrier = now + opt.barrier_ms * 1000;
	int64_t next_commit = now + opt.commit_ms * 1000;
	int pending = 0;    /* output buffered since the last flush */
	unsigned batch = 0; /* messages since the clock was read */
	while (!stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 0);
		if (!m) {
			/* Nothing queued: flush before blocking for more. */
			if (pending)
				out_flush(), pending = 0;
			fk_refill_check(&c.refill, c.rk, &c.parts, REFILL_TIMEOUT_MS);
			int64_t until = next_barrier < next_commit ? next_barrier : next_commit;
			int64_t wait = (until - fk_now_us()) / 1000;
			m = rd_kafka_consumer_poll(c.rk, wait < 0 ? 0 : wait > 100 ? 100 : (int)wait);
			batch = CLOCK_EVERY;
		}
		if (out_pending() >= OUT_CHUNK) {
			out_flush(); /* may block on a slow reader */
			batch = CLOCK_EVERY;
		}
		if (batch >= CLOCK_EVERY || c.clock_stale) {
			now = fk_now_us();
			batch = 0;
			c.clock_stale = 0;
			metrics_sync();
			if (stats_tick(mt.s, now / 1000) < 0)
				fp_warn("%s", stats_errstr(mt.s));
		}
		if (m) {
			if (m->err) {
				consume_error(m);
			} else {
				message(m, now);
				pending = 1;
				batch++;
				if (c.msgs % REFILL_EVERY == 0)
					fk_refill_check(&c.refill, c.rk, &c.parts, REFILL_TIMEOUT_MS);
			}
			rd_kafka_message_destroy(m);
			if (opt.count && c.msgs >= opt.count)
				break;
			if ((opt.exit_eof || opt.stop_ms >= 0) && all_done())
				break;
		}
		if (now >= next_barrier) {
			barrier();
			pending = 1;
			next_barrier = now + opt.barrier_ms * 1000;
		}
		if (now >= next_commit) {
			if (commit_durable(1) < 0 && !c.fatal)
				c.fatal = c.store_code, stop = 1;
			next_commit = now + opt.commit_ms * 1000;
			batch = CLOCK_EVERY;
		}
	}
	metrics_sync();
	if (c.fatal) {
		out_flush();
		fp_die(c.fatal, "%s", c.errstr);
	}
	barrier();
	out_flush();
	wait_durable();
	if (commit_durable(0) < 0)
		fp_die(c.store_code, "%s", c.errstr);
	if (!opt.quiet && (opt.exit_eof || opt.count))
		fp_warn("%" PRIu64 " message(s) from %d partition(s)", c.msgs, c.parts.n);
	fk_refill_release(&c.refill);
	rd_kafka_consumer_close(c.rk);
	rd_kafka_destroy(c.rk);
	fk_parts_release(&c.parts);
	durable_release(&c.dur);
	if (c.rc)
		redisFree(c.rc);
	fr_writer_release(&c.fw);
	fp_buf_release(&c.text);
	free(opt.topics);
	fp_close_stdout();
	metrics_last();
	stats_free(mt.s);
	mt.s = NULL;
	return 0;
}
