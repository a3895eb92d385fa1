/* fp-produce - frames (or lines) in, one Kafka message per data frame. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../lib/frame.h"
#include "../lib/json.h"
#include "../lib/kafka.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"

static const char USAGE[] =
	"usage: fp-produce [-b brokers] -t topic [-k field] [-p partition] "
	"[--value auto|json|msgpack|field:name] [-X prop=val] ... [-F file] [-q]\n"
	"       fp-produce --lines [-b brokers] -t topic [-p partition] [-X prop=val] ... [-F file] [-q]\n";

enum value_mode { V_AUTO, V_JSON, V_MSGPACK, V_FIELD };

static struct {
	const char *brokers, *topic, *key_field, *value_field;
	enum value_mode value;
	int32_t partition;
	int lines, quiet;
} opt = {.partition = RD_KAFKA_PARTITION_UA};

static struct {
	rd_kafka_t *rk;
	uint64_t sent, failed;
	char first_err[256];
	fp_buf val, key, tmp;
} p;

static volatile sig_atomic_t stop;

/* Metrics (fp-produce(1) METRICS). */
static struct {
	stats *s;
	stats_counter *in, *out, *bytes, *failed;
	stats_hist *latency;
} mt;

static void
metrics_start(void)
{
	char err[300];
	stats *s = mt.s = stats_new("fp-produce", err, sizeof err);
	if (!s)
		fp_die(FP_EXIT_IO, "%s", err);
	mt.in = stats_counter_new(s, "records_in_total", "Messages handed to the producer.", NULL, NULL);
	mt.out = stats_counter_new(s, "records_out_total", "Messages acknowledged by the broker.",
	                           NULL, NULL);
	mt.bytes = stats_counter_new(s, "bytes_total", "Bytes of keys and values acknowledged.",
	                             NULL, NULL);
	mt.failed = stats_error(s, "delivery_failed");
	mt.latency = stats_hist_new(s, "delivery_latency_microseconds",
	                            "A message from produce to its acknowledgement.", NULL, NULL);
	if (stats_register_errstr(s))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(s));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
}

static void
metrics_tick(void)
{
	mt.in->v = p.sent;
	if (stats_tick(mt.s, stats_clock_ms()) < 0)
		fp_warn("%s", stats_errstr(mt.s));
}

/* The last figures: from finish(), or at an exit through fp_die(). */
static void
metrics_last(void)
{
	if (!mt.s)
		return;
	mt.in->v = p.sent;
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
delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk, (void)opaque;
	if (m->err) {
		stats_add(mt.failed, 1);
		if (p.failed++ == 0)
			snprintf(p.first_err, sizeof p.first_err, "%s", rd_kafka_err2str(m->err));
		return;
	}
	stats_add(mt.out, 1);
	stats_add(mt.bytes, m->len + m->key_len);
	int64_t us = rd_kafka_message_latency(m); /* kept by librdkafka: no clock read here */
	if (us >= 0)
		stats_observe(mt.latency, (uint64_t)us);
}

/* Wait for every message to be acknowledged (or to fail), then exit. */
static noreturn void
finish(int code)
{
	while (rd_kafka_outq_len(p.rk) > 0 && stop < 2) {
		rd_kafka_flush(p.rk, 200);
		metrics_tick();
	}
	uint64_t lost = p.failed + (uint64_t)rd_kafka_outq_len(p.rk);
	char e[256];
	if (rd_kafka_fatal_error(p.rk, e, sizeof e))
		fp_die(FP_EXIT_REMOTE, "fatal producer error: %s; %" PRIu64 " of %" PRIu64
		       " message(s) not delivered", e, lost, p.sent);
	if (lost)
		fp_die(FP_EXIT_REMOTE, "%" PRIu64 " of %" PRIu64 " message(s) not delivered%s%s", lost,
		       p.sent, p.failed ? ": " : " (interrupted)", p.first_err);
	if (!opt.quiet)
		fp_warn("%" PRIu64 " message(s) delivered to '%s'", p.sent, opt.topic);
	metrics_last();
	rd_kafka_destroy(p.rk);
	stats_free(mt.s);
	mt.s = NULL;
	fp_buf_release(&p.val);
	fp_buf_release(&p.key);
	fp_buf_release(&p.tmp);
	exit(code);
}

static void
produce(const void *val, size_t vlen, int val_nil, const void *key, size_t klen,
        rd_kafka_headers_t *hs, int64_t ts)
{
	for (;;) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			p.rk, RD_KAFKA_V_TOPIC(opt.topic), RD_KAFKA_V_PARTITION(opt.partition),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_VALUE(val_nil ? NULL : (void *)val, val_nil ? 0 : vlen),
			RD_KAFKA_V_KEY(key, key ? klen : 0), RD_KAFKA_V_TIMESTAMP(ts),
			RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			if (hs)
				rd_kafka_headers_destroy(hs);
			fp_warn("unable to produce to '%s': %s", opt.topic, rd_kafka_err2str(err));
			finish(FP_EXIT_REMOTE);
		}
		rd_kafka_poll(p.rk, 100); /* queue full: wait for acknowledgements */
		if (stop)
			finish(FP_EXIT_OK);
	}
	p.sent++;
	rd_kafka_poll(p.rk, 0);
}

static void
produce_frame(const uint8_t *body, size_t len, uint64_t frame)
{
	const uint8_t *v, *key = NULL;
	size_t vlen, klen = 0;
	int isnil;
	rd_kafka_headers_t *hs = NULL;
	int64_t ts = 0;
	if (mp_is_control(body, len))
		return;
	int raw = opt.value == V_AUTO && fk_is_raw_message(body, len);
	const char *kf = opt.key_field ? opt.key_field : raw ? "key" : NULL;
	if (kf) {
		if (!mp_map_find(body, len, kf, strlen(kf), &v, &vlen)) {
			if (opt.key_field) {
				fp_warn("frame %" PRIu64 ": no key field '%s'", frame, kf);
				finish(FP_EXIT_DATA);
			}
		} else {
			if (fk_value_bytes(v, vlen, &p.key, &isnil) < 0)
				fp_die(FP_EXIT_IO, "out of memory");
			if (!isnil)
				key = p.key.p ? p.key.p : (const uint8_t *)"", klen = p.key.len;
		}
	}
	p.val.len = 0;
	isnil = 0;
	if (raw) {
		mp_map_find(body, len, "value", 5, &v, &vlen);
		if (fk_value_bytes(v, vlen, &p.val, &isnil) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
		char e[100];
		if (fk_raw_headers(body, len, &hs, &p.tmp, e, sizeof e) < 0) {
			fp_warn("frame %" PRIu64 ": %s", frame, e);
			finish(FP_EXIT_DATA);
		}
		if (mp_map_find(body, len, "@ts", 3, &v, &vlen) && mp_read_int(v, vlen, &ts) < 0)
			ts = 0;
	} else if (opt.value == V_FIELD) {
		if (!mp_map_find(body, len, opt.value_field, strlen(opt.value_field), &v, &vlen)) {
			fp_warn("frame %" PRIu64 ": no value field '%s'", frame, opt.value_field);
			finish(FP_EXIT_DATA);
		}
		if (fk_value_bytes(v, vlen, &p.val, &isnil) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
	} else if (opt.value == V_MSGPACK) {
		if (fp_buf_add(&p.val, body, len) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
	} else if (mp_to_json(body, len, &p.val) < 0) {
		fp_die(FP_EXIT_IO, "out of memory");
	}
	produce(p.val.p ? p.val.p : (const uint8_t *)"", p.val.len, isnil, key, klen, hs, ts);
}

static void
read_frames(void)
{
	fr_reader r;
	if (fr_reader_init(&r, 0) < 0)
		fp_die(FP_EXIT_USAGE, "%s", r.errstr);
	while (!stop) {
		const uint8_t *body;
		size_t len;
		enum fr_status st = fr_reader_next(&r, &body, &len);
		if (st == FR_OK) {
			produce_frame(body, len, r.frames);
			continue;
		}
		if (st == FR_ERROR) {
			fp_warn("<stdin>: %s", r.errstr);
			fr_reader_release(&r);
			finish(FP_EXIT_DATA);
		}
		rd_kafka_poll(p.rk, 0);
		metrics_tick();
		ssize_t n = fr_reader_fill(&r, STDIN_FILENO);
		if (n < 0 && errno != EINTR)
			fp_die(FP_EXIT_IO, "error reading standard input: %s", strerror(errno));
		if (n == 0) {
			if (fr_reader_eof(&r) < 0) {
				fp_warn("<stdin>: %s", r.errstr);
				fr_reader_release(&r);
				finish(FP_EXIT_DATA);
			}
			break;
		}
	}
	fr_reader_release(&r);
}

static void
read_lines(void)
{
	fp_buf in = FP_BUF_INIT;
	size_t start = 0;
	for (;;) {
		char *nl;
		while (in.len > start && (nl = memchr(in.p + start, '\n', in.len - start)) != NULL) {
			size_t n = (size_t)(nl - (char *)in.p) - start;
			produce(in.p + start, n, 0, NULL, 0, NULL, 0);
			start += n + 1;
		}
		if (start) {
			memmove(in.p, in.p + start, in.len - start);
			in.len -= start;
			start = 0;
		}
		if (stop)
			break;
		if (fp_buf_reserve(&in, 64u << 10) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
		rd_kafka_poll(p.rk, 0);
		metrics_tick();
		ssize_t n = read(STDIN_FILENO, in.p + in.len, in.cap - in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fp_die(FP_EXIT_IO, "error reading standard input: %s", strerror(errno));
		if (n == 0) {
			if (in.len) /* a last line without a newline */
				produce(in.p, in.len, 0, NULL, 0, NULL, 0);
			break;
		}
		in.len += (size_t)n;
	}
	fp_buf_release(&in);
}

int
main(int argc, char **argv)
{
	enum { OPT_VALUE = 256, OPT_LINES };
	static const struct option longopts[] = {
		{"value", required_argument, NULL, OPT_VALUE},
		{"lines", no_argument, NULL, OPT_LINES},
		{NULL, 0, NULL, 0},
	};
	char err[512];
	const char *file = NULL;
	const char **xs;
	int nx = 0, ch;
	fk_conf kc;

	fp_tool_init("fp-produce");
	fp_std_options(argc, argv, USAGE);
	if (!(xs = calloc((size_t)argc, sizeof *xs)))
		fp_die(FP_EXIT_IO, "out of memory");
	while ((ch = getopt_long(argc, argv, "b:t:k:p:X:F:q", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': opt.brokers = optarg; break;
		case 't': opt.topic = optarg; break;
		case 'k': opt.key_field = optarg; break;
		case 'q': opt.quiet = 1; break;
		case 'X': xs[nx++] = optarg; break;
		case 'F': file = optarg; break;
		case OPT_LINES: opt.lines = 1; break;
		case 'p': {
			int64_t v;
			if (fp_parse_i64(optarg, 0, INT32_MAX, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-p: %s", err);
			opt.partition = (int32_t)v;
			break;
		}
		case OPT_VALUE:
			if (!strcmp(optarg, "auto"))
				opt.value = V_AUTO;
			else if (!strcmp(optarg, "json"))
				opt.value = V_JSON;
			else if (!strcmp(optarg, "msgpack"))
				opt.value = V_MSGPACK;
			else if (!strncmp(optarg, "field:", 6) && optarg[6])
				opt.value = V_FIELD, opt.value_field = optarg + 6;
			else
				fp_usage_error(USAGE, "--value: expected auto, json, msgpack or field:NAME, "
				               "got '%s'", optarg);
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (optind < argc)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind]);
	if (!opt.topic)
		fp_usage_error(USAGE, "no topic given (-t)");
	if (opt.lines && (opt.key_field || opt.value != V_AUTO))
		fp_usage_error(USAGE, "--lines takes no -k or --value: each line is a value");
	if (!opt.brokers && !(opt.brokers = getenv("FP_BROKERS")))
		fp_usage_error(USAGE, "no brokers given (-b or FP_BROKERS)");

	fk_conf_init(&kc);
	if (file && fk_conf_file(&kc, file, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "-F: %s", err);
	for (int i = 0; i < nx; i++)
		if (fk_conf_set_kv(&kc, xs[i], err, sizeof err) < 0)
			fp_usage_error(USAGE, "-X %s: %s", xs[i], err);
	free(xs);
	if (fk_conf_default(&kc, "bootstrap.servers", opt.brokers, err, sizeof err) < 0 ||
	    fk_conf_default(&kc, "enable.idempotence", "true", err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "%s", err);
	fk_set_log_level(fk_conf_user(&kc, "debug") ? 7 : opt.quiet ? 3 : 4);
	fk_set_log(kc.rk, log_line);
	rd_kafka_conf_set_dr_msg_cb(kc.rk, delivered);
	if (!(p.rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc.rk, err, sizeof err)))
		fp_die(FP_EXIT_USAGE, "unable to create the producer: %s", err);
	kc.rk = NULL;
	fk_conf_release(&kc);

	fk_catch_stop(&stop);
	metrics_start();
	atexit(metrics_last);

	if (opt.lines)
		read_lines();
	else
		read_frames();
	finish(FP_EXIT_OK);
}
