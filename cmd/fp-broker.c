/* fp-broker - a Kafka-protocol broker in one process (librdkafka's mock
 * cluster), with fault injection through a control FIFO. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "../lib/buf.h"
#include "../lib/kafka.h"
#include "../lib/log.h"
#include "../lib/num.h"

static const char USAGE[] =
	"usage: fp-broker [--brokers count] [--topic name:partitions] ... "
	"[--bootstrap-file path] [--control path] [-q]\n";

static volatile sig_atomic_t stop;
static int quiet;

static void
log_line(int level, const char *fac, const char *msg)
{
	(void)level;
	fp_warn("%s: %s", fac, msg);
}

static void
ack(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
ack(const char *fmt, ...)
{
	if (quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fp_vwarn(fmt, ap);
	va_end(ap);
}

static int
parse_id(const char *s, int nbrokers, int32_t *id)
{
	int64_t v;
	if (!s || fp_parse_i64(s, 1, nbrokers, &v, NULL, 0) < 0)
		return -1;
	*id = (int32_t)v;
	return 0;
}

/* One control line: a command and its words.  Complaints go to stderr. */
static void
control(rd_kafka_mock_cluster_t *mc, int nbrokers, char *line)
{
	char *w[8];
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r", &save); t && n < 8; t = strtok_r(NULL, " \t\r", &save))
		w[n++] = t;
	for (int i = n; i < 8; i++)
		w[i] = NULL;
	if (n == 0 || w[0][0] == '#')
		return;
	int32_t id;
	int64_t v;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	const char *cmd = w[0];
	if ((!strcmp(cmd, "down") || !strcmp(cmd, "up")) && n == 2) {
		if (parse_id(w[1], nbrokers, &id) < 0)
			goto bad_id;
		err = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
		                    : rd_kafka_mock_broker_set_up(mc, id);
		if (!err)
			ack("broker %d %s", (int)id, cmd);
	} else if (!strcmp(cmd, "rtt") && n == 3) {
		if (parse_id(w[1], nbrokers, &id) < 0)
			goto bad_id;
		if (fp_parse_i64(w[2], 0, 3600000, &v, NULL, 0) < 0)
			goto bad;
		err = rd_kafka_mock_broker_set_rtt(mc, id, (int)v);
		if (!err)
			ack("broker %d rtt %d ms", (int)id, (int)v);
	} else if (!strcmp(cmd, "error") && (n == 3 || n == 4)) {
		int16_t api;
		rd_kafka_resp_err_t e;
		v = 1;
		if (fk_api_parse(w[1], &api) < 0) {
			fp_warn("control: unknown API '%s' (e.g. Produce, Fetch, ListOffsets, Metadata, "
			        "OffsetCommit, JoinGroup)", w[1]);
			return;
		}
		if (fk_err_parse(w[2], &e) < 0) {
			fp_warn("control: unknown error '%s' (e.g. NOT_LEADER_FOR_PARTITION)", w[2]);
			return;
		}
		if (n == 4 && fp_parse_i64(w[3], 1, 100000, &v, NULL, 0) < 0)
			goto bad;
		rd_kafka_resp_err_t *errs = malloc((size_t)v * sizeof *errs);
		if (!errs)
			fp_die(FP_EXIT_IO, "out of memory");
		for (int64_t i = 0; i < v; i++)
			errs[i] = e;
		rd_kafka_mock_push_request_errors_array(mc, api, (size_t)v, errs);
		free(errs);
		ack("next %d %s request(s) fail with %s", (int)v, w[1], fk_err_name(e));
	} else if (!strcmp(cmd, "clear") && n == 2) {
		int16_t api;
		if (fk_api_parse(w[1], &api) < 0) {
			fp_warn("control: unknown API '%s'", w[1]);
			return;
		}
		rd_kafka_mock_clear_request_errors(mc, api);
		ack("%s errors cleared", w[1]);
	} else if (!strcmp(cmd, "leader") && n == 4) {
		if (fp_parse_i64(w[2], 0, INT32_MAX, &v, NULL, 0) < 0)
			goto bad;
		if (parse_id(w[3], nbrokers, &id) < 0)
			goto bad_id;
		err = rd_kafka_mock_partition_set_leader(mc, w[1], (int32_t)v, id);
		if (!err)
			ack("'%s' [%d] leader is broker %d", w[1], (int)v, (int)id);
	} else if (!strcmp(cmd, "topic") && n == 3) {
		if (fp_parse_i64(w[2], 1, 100000, &v, NULL, 0) < 0)
			goto bad;
		err = rd_kafka_mock_topic_create(mc, w[1], (int)v, 1);
		if (!err)
			ack("topic '%s' created with %d partitions", w[1], (int)v);
	} else {
		fp_warn("control: unknown command '%s' with %d argument(s); commands: down ID, up ID, "
		        "rtt ID MS, error API ERROR [COUNT], clear API, leader TOPIC PARTITION ID, "
		        "topic NAME PARTITIONS", cmd, n - 1);
		return;
	}
	if (err)
		fp_warn("control: %s failed: %s", cmd, rd_kafka_err2str(err));
	return;
bad_id:
	fp_warn("control: %s: bad broker id (1..%d)", cmd, nbrokers);
	return;
bad:
	fp_warn("control: %s: bad number", cmd);
}

/* Write addr to path atomically: a poller sees nothing or the whole line. */
static void
write_bootstrap(const char *path, const char *addr)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + 16);
	if (!tmp)
		fp_die(FP_EXIT_IO, "out of memory");
	snprintf(tmp, n + 16, "%s.tmp%d", path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f)
		fp_die(FP_EXIT_IO, "unable to create '%s': %s", tmp, strerror(errno));
	fprintf(f, "%s\n", addr);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		fp_die(FP_EXIT_IO, "unable to write '%s': %s", path, strerror(e));
	}
	free(tmp);
}

int
main(int argc, char **argv)
{
	enum { OPT_BROKERS = 256, OPT_TOPIC, OPT_BOOTSTRAP, OPT_CONTROL };
	static const struct option longopts[] = {
		{"brokers", required_argument, NULL, OPT_BROKERS},
		{"topic", required_argument, NULL, OPT_TOPIC},
		{"bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP},
		{"control", required_argument, NULL, OPT_CONTROL},
		{NULL, 0, NULL, 0},
	};
	char err[512];
	int64_t nbrokers = 1;
	const char *bootstrap_file = NULL, *control_path = NULL;
	char **topics = calloc((size_t)argc, sizeof *topics);
	int ntopics = 0, c;

	fp_tool_init("fp-broker");
	fp_std_options(argc, argv, USAGE);
	if (!topics)
		fp_die(FP_EXIT_IO, "out of memory");
	while ((c = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BROKERS:
			if (fp_parse_i64(optarg, 1, 64, &nbrokers, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--brokers: %s", err);
			break;
		case OPT_TOPIC: {
			const char *colon = strrchr(optarg, ':');
			int64_t np;
			if (!colon || colon == optarg ||
			    fp_parse_i64(colon + 1, 1, 100000, &np, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--topic: expected name:partitions, got '%s'", optarg);
			topics[ntopics++] = optarg;
			break;
		}
		case OPT_BOOTSTRAP:
			bootstrap_file = optarg;
			break;
		case OPT_CONTROL:
			control_path = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (optind < argc)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind]);

	int ctl = -1;
	if (control_path) {
		if (mkfifo(control_path, 0600) < 0 && errno != EEXIST)
			fp_die(FP_EXIT_IO, "unable to create FIFO '%s': %s", control_path, strerror(errno));
		/* O_RDWR: writers may come and go without us ever seeing EOF. */
		if ((ctl = open(control_path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", control_path, strerror(errno));
		struct stat st;
		if (fstat(ctl, &st) < 0 || !S_ISFIFO(st.st_mode))
			fp_die(FP_EXIT_USAGE, "'%s' exists and is not a FIFO", control_path);
	}

	fk_catch_stop(&stop);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	fk_set_log_level(4);
	fk_set_log(conf, log_line);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!rk)
		fp_die(FP_EXIT_IO, "unable to create a Kafka handle: %s", err);
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)nbrokers);
	if (!mc)
		fp_die(FP_EXIT_IO, "unable to start the mock cluster");
	for (int i = 0; i < ntopics; i++) {
		char *colon = strrchr(topics[i], ':');
		*colon = 0;
		int64_t np;
		fp_parse_i64(colon + 1, 1, 100000, &np, NULL, 0);
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topics[i], (int)np, 1);
		if (e)
			fp_die(FP_EXIT_USAGE, "unable to create topic '%s': %s", topics[i],
			       rd_kafka_err2str(e));
	}
	const char *addr = rd_kafka_mock_cluster_bootstraps(mc);
	if (bootstrap_file)
		write_bootstrap(bootstrap_file, addr);
	printf("%s\n", addr);
	if (fflush(stdout) != 0 && errno != EPIPE)
		fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(errno));

	fp_buf line = FP_BUF_INIT;
	while (!stop) {
		struct pollfd pfd = {ctl, POLLIN, 0};
		int r = poll(&pfd, ctl >= 0 ? 1 : 0, 200);
		if (r <= 0)
			continue;
		if (fp_buf_reserve(&line, 4096) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
		ssize_t got = read(ctl, line.p + line.len, line.cap - line.len);
		if (got <= 0)
			continue;
		line.len += (size_t)got;
		char *nl;
		while ((nl = memchr(line.p, '\n', line.len)) != NULL) {
			*nl = 0;
			control(mc, (int)nbrokers, (char *)line.p);
			size_t used = (size_t)(nl - (char *)line.p) + 1;
			memmove(line.p, line.p + used, line.len - used);
			line.len -= used;
		}
		if (line.len > 65536) {
			fp_warn("control: line longer than 64 KiB dropped");
			line.len = 0;
		}
	}
	fp_buf_release(&line);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	if (ctl >= 0)
		close(ctl);
	free(topics);
	return 0;
}
