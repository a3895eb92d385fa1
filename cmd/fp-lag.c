/* fp-lag - consumer lag in messages and seconds, status, alerts, metrics. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../lib/clock.h"
#include "../lib/frame.h"
#include "../lib/json.h"
#include "../lib/kafka.h"
#include "../lib/lag.h"
#include "../lib/lag_probe.h"
#include "../lib/lag_report.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"
#include "../lib/store.h"

static const char USAGE[] =
	"usage: fp-lag [-b brokers] -G group [-t topic] ... [-X prop=val] ... [-F file] "
	"[-i interval] [-w checks] [--stop-after duration] [--timeout duration] "
	"[-a rule] ... [--alert-cmd command] [-f format] [--once] "
	"[--listen address:port] [--store url]\n";

static struct {
	const char *brokers, *group, *alert_cmd, *listen, *store;
	char **topics;
	int ntopics, frames, once;
	int64_t interval_ms, stop_ms, timeout_ms;
	unsigned window;
	lag_rule rules[LAG_MAX_RULES];
	lag_rule_state group_rules[LAG_MAX_RULES];
	int nrules;
} opt = {.interval_ms = 5000, .stop_ms = 300000, .timeout_ms = 5000, .window = 5};

static volatile sig_atomic_t stop;
static lag_probe *probe;
static fr_writer fw;
static fp_buf out = FP_BUF_INIT, rec = FP_BUF_INIT;
static lag_status group_status = LAG_OK;
static int children;

/* /metrics: the text of the last check, swapped in under the lock. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static fp_buf metrics = FP_BUF_INIT;
static uint64_t checks;
static char *stats_file; /* $FP_STATS_DIR/fp-lag-GROUP.prom, or NULL */

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
log_line(int level, const char *fac, const char *msg)
{
	if (level <= 2)
		fp_warn("%s: %s", fac, msg);
}

static void
oom(void)
{
	fp_die(FP_EXIT_IO, "out of memory");
}

static void
emit(void)
{
	if (opt.frames) {
		if (fr_writer_put(&fw, rec.p, rec.len) < 0) {
			if (fw.err == EPIPE)
				exit(0);
			fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(fw.err));
		}
	} else if (mp_to_json(rec.p, rec.len, &out) < 0 || fp_buf_addc(&out, '\n') < 0) {
		oom();
	}
}

static void
flush_out(void)
{
	int rc = opt.frames ? fr_writer_flush(&fw) : (out.len ? fr_write_all(1, out.p, out.len) : 0);
	int e = opt.frames ? fw.err : errno;
	out.len = 0;
	if (rc < 0 && e == EPIPE)
		exit(0);
	if (rc < 0)
		fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(e));
}

static void
w_str(const char *k, const char *v)
{
	if (mpw_str(&rec, k, strlen(k)) < 0 ||
	    (v ? mpw_str(&rec, v, strlen(v)) : mpw_nil(&rec)) < 0)
		oom();
}

static void
w_int(const char *k, int64_t v, int known)
{
	if (mpw_str(&rec, k, strlen(k)) < 0 || (known ? mpw_int(&rec, v) : mpw_nil(&rec)) < 0)
		oom();
}

static void
w_num(const char *k, double v)
{
	if (mpw_str(&rec, k, strlen(k)) < 0 ||
	    (isnan(v) ? mpw_nil(&rec) : mpw_double(&rec, round(v * 1000) / 1000)) < 0)
		oom();
}

/* An alert or status event: a line on stdout and --alert-cmd. */
static void
event(int64_t now, const char *kind, const lag_part *q, const lag_rule *r, double value,
      lag_status status, lag_status prev)
{
	char part[16], val[64];
	rec.len = 0;
	if (mpw_map(&rec, 9) < 0)
		oom();
	w_int("time", now, 1);
	w_str("event", kind);
	w_str("group", opt.group);
	w_str("topic", q ? q->topic : NULL);
	w_int("partition", q ? q->partition : 0, q != NULL);
	w_str("rule", r ? r->text : NULL);
	w_num("value", value);
	w_str("status", lag_status_name(status));
	w_str("previous", lag_status_name(prev));
	emit();
	if (!opt.alert_cmd)
		return;

	fp_buf json = FP_BUF_INIT;
	if (mp_to_json(rec.p, rec.len, &json) < 0 || fp_buf_addc(&json, 0) < 0)
		oom();
	snprintf(part, sizeof part, "%d", q ? (int)q->partition : 0);
	snprintf(val, sizeof val, "%.17g", value);
	const char *const vars[][2] = {
		{"FP_LAG_EVENT", kind}, {"FP_LAG_GROUP", opt.group},
		{"FP_LAG_TOPIC", q ? q->topic : ""}, {"FP_LAG_PARTITION", q ? part : ""},
		{"FP_LAG_RULE", r ? r->text : ""}, {"FP_LAG_VALUE", isnan(value) ? "" : val},
		{"FP_LAG_STATUS", lag_status_name(status)},
		{"FP_LAG_PREVIOUS", lag_status_name(prev)}, {"FP_LAG_JSON", (char *)json.p},
	};
	flush_out(); /* the event line comes before what the command prints */
	char err[256];
	if (lag_hook_run(opt.alert_cmd, vars, sizeof vars / sizeof vars[0], err, sizeof err) < 0)
		fp_warn("unable to run --alert-cmd: %s", err);
	else
		children++;
	fp_buf_release(&json);
}

static void
reap(int block)
{
	int st;
	pid_t pid;
	while (children > 0 && (pid = waitpid(-1, &st, block ? 0 : WNOHANG)) > 0) {
		children--;
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			fp_warn("--alert-cmd exited with status %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			fp_warn("--alert-cmd killed by signal %d", WTERMSIG(st));
	}
}

/* Publish the check to /metrics and $FP_STATS_DIR. */
static void
update_metrics(const lag_view *v)
{
	fp_buf b = FP_BUF_INIT;
	if (lag_prom_render(v, &b) < 0)
		oom();
	if (stats_file) {
		char err[512];
		if (stats_write_text(stats_file, b.p ? (void *)b.p : "", b.len, err, sizeof err) < 0)
			fp_warn("%s", err);
	}
	pthread_mutex_lock(&metrics_lock);
	fp_buf old = metrics;
	metrics = b;
	pthread_mutex_unlock(&metrics_lock);
	fp_buf_release(&old);
}

static enum MHD_Result
serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct MHD_Response *r;
	unsigned code = MHD_HTTP_OK;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") != 0) {
		static const char msg[] = "fp-lag: see /metrics\n";
		code = MHD_HTTP_NOT_FOUND;
		r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
	} else {
		pthread_mutex_lock(&metrics_lock);
		r = MHD_create_response_from_buffer(metrics.len, metrics.p ? metrics.p : (void *)"",
		                                    MHD_RESPMEM_MUST_COPY);
		pthread_mutex_unlock(&metrics_lock);
		if (r)
			MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
	}
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static struct MHD_Daemon *
listen_on(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host || !colon[1])
		fp_usage_error(USAGE, "--listen: expected address:port, got '%s'", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc)
		fp_usage_error(USAGE, "--listen: '%s': %s", spec, gai_strerror(rc));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, serve, NULL,
	                                        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                                        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!d)
		fp_die(FP_EXIT_IO, "unable to listen on '%s'", spec);
	return d;
}

/* One check: measure, decide statuses and rules, print, publish. */
static int
check(redisContext **rc, const store_url *su, int *failed)
{
	char err[512];
	static char last_err[512];
	int64_t now = fp_wall_ms();
	int bad = lag_probe_check(probe, now, err, sizeof err) < 0;
	checks++;
	if (bad && strcmp(err, last_err) != 0)
		fp_warn("figures unknown: %s", err);
	else if (!bad && *last_err)
		fp_warn("figures known again");
	snprintf(last_err, sizeof last_err, "%s", bad ? err : "");
	*failed = bad;

	size_t n;
	lag_part *parts = lag_probe_parts(probe, &n);
	int store = su != NULL;
	if (store) {
		if (!*rc && !(*rc = store_connect(su, 2000, 2000, err, sizeof err)))
			fp_warn("store: %s", err);
		if (*rc && lag_probe_read_store(probe, *rc, store_pipeline(), err, sizeof err) < 0) {
			fp_warn("store: %s", err);
			redisFree(*rc);
			*rc = NULL;
		}
	}
	lag_status worst = bad && n == 0 ? LAG_ERR : LAG_OK;
	double sum = 0, max_s = 0;
	for (size_t i = 0; i < n; i++) {
		lag_part *q = &parts[i];
		lag_sample s = {now, q->known, q->committed, q->end};
		lag_status st = lag_track_add(&q->track, &s, opt.window, opt.stop_ms);
		if (st > worst)
			worst = st;
		double lag = lag_part_value(q, LM_LAG), secs = lag_part_value(q, LM_LAG_SECONDS);
		if (!q->known)
			sum = NAN;
		else if (!isnan(lag))
			sum += lag;
		if (!q->known || (q->committed >= 0 && q->end > q->committed && isnan(secs)))
			max_s = NAN;
		else if (!isnan(secs) && secs > max_s)
			max_s = secs;
		rec.len = 0;
		if (mpw_map(&rec, store ? 11 : 9) < 0)
			oom();
		w_int("time", now, 1);
		w_str("group", opt.group);
		w_str("topic", q->topic);
		w_int("partition", q->partition, 1);
		w_int("committed", q->committed, q->known && q->committed >= 0);
		w_int("end", q->end, q->known);
		w_int("lag", (int64_t)lag, !isnan(lag));
		w_num("lag_seconds", secs);
		w_str("status", lag_status_name(st));
		if (store) {
			w_int("stored", q->stored.offset, q->stored_known);
			w_int("stored_lag", q->end > q->stored.offset ? q->end - q->stored.offset : 0,
			      q->stored_known && q->known);
		}
		emit();
		for (int r = 0; r < opt.nrules; r++) {
			if (lag_rule_is_group(&opt.rules[r]))
				continue;
			double v = lag_part_value(q, opt.rules[r].metric);
			int t = lag_rule_step(&opt.rules[r], &q->rules[r], v);
			if (t)
				event(now, t > 0 ? "alert" : "resolved", q, &opt.rules[r], v, st, st);
		}
	}
	if (bad)
		sum = max_s = NAN; /* some partition (or the list itself) is unknown */
	if (worst != group_status)
		event(now, "status", NULL, NULL, NAN, worst, group_status);
	group_status = worst;
	int firing = 0;
	for (int r = 0; r < opt.nrules; r++) {
		if (lag_rule_is_group(&opt.rules[r])) {
			double v = opt.rules[r].metric == LM_GROUP_LAG ? sum : max_s;
			int t = lag_rule_step(&opt.rules[r], &opt.group_rules[r], v);
			if (t)
				event(now, t > 0 ? "alert" : "resolved", NULL, &opt.rules[r], v, worst, worst);
			firing |= opt.group_rules[r].firing;
		}
		for (size_t i = 0; i < n; i++)
			firing |= parts[i].rules[r].firing;
	}
	rec.len = 0;
	if (mpw_map(&rec, 7) < 0)
		oom();
	w_int("time", now, 1);
	w_str("group", opt.group);
	w_int("partitions", (int64_t)n, 1);
	w_int("lag", (int64_t)sum, !isnan(sum));
	w_num("lag_seconds", max_s);
	w_str("status", lag_status_name(worst));
	w_int("firing", firing, 1);
	emit();
	flush_out();
	if (opt.listen || stats_file) {
		lag_view v = {opt.group, parts, n, !bad, checks, sum, max_s, worst, opt.rules,
		              opt.group_rules, opt.nrules, store ? store_pipeline() : NULL};
		update_metrics(&v);
	}
	return firing;
}

/* Sleep ms, or less when a signal asks to stop. */
static void
nap(int64_t ms)
{
	while (ms > 0 && !stop) {
		int64_t step = ms > 100 ? 100 : ms;
		struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000};
		nanosleep(&ts, NULL);
		ms -= step;
		reap(0);
	}
}

int
main(int argc, char **argv)
{
	enum { OPT_STOP = 256, OPT_TIMEOUT, OPT_ALERT_CMD, OPT_ONCE, OPT_LISTEN, OPT_STORE };
	static const struct option longopts[] = {
		{"interval", required_argument, NULL, 'i'},
		{"window", required_argument, NULL, 'w'},
		{"alert", required_argument, NULL, 'a'},
		{"stop-after", required_argument, NULL, OPT_STOP},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"alert-cmd", required_argument, NULL, OPT_ALERT_CMD},
		{"once", no_argument, NULL, OPT_ONCE},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"store", required_argument, NULL, OPT_STORE},
		{NULL, 0, NULL, 0},
	};
	char err[512];
	const char *file = NULL;
	char **xs = calloc((size_t)argc + 1, sizeof *xs);
	int nx = 0, c;
	uint64_t u;
	fk_conf kc;

	fp_tool_init("fp-lag");
	fp_std_options(argc, argv, USAGE);
	opt.topics = calloc((size_t)argc + 1, sizeof *opt.topics);
	if (!xs || !opt.topics)
		oom();
	while ((c = getopt_long(argc, argv, "b:G:t:X:F:i:w:a:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': opt.brokers = optarg; break;
		case 'G': opt.group = optarg; break;
		case 't': opt.topics[opt.ntopics++] = optarg; break;
		case 'X': xs[nx++] = optarg; break;
		case 'F': file = optarg; break;
		case 'i':
			if (fp_parse_duration_ms(optarg, 1000, 0, &opt.interval_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-i: %s", err);
			break;
		case 'w':
			if (fp_parse_u64(optarg, 2, LAG_MAX_WINDOW, &u, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-w: %s", err);
			opt.window = (unsigned)u;
			break;
		case 'a':
			if (opt.nrules == LAG_MAX_RULES)
				fp_usage_error(USAGE, "-a: at most %d rules", LAG_MAX_RULES);
			if (lag_rule_parse(optarg, &opt.rules[opt.nrules], err, sizeof err) < 0)
				fp_usage_error(USAGE, "-a '%s': %s", optarg, err);
			opt.nrules++;
			break;
		case 'f':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "frames") != 0)
				fp_usage_error(USAGE, "-f: expected json or frames, got '%s'", optarg);
			opt.frames = optarg[0] == 'f';
			break;
		case OPT_STOP:
			if (fp_parse_duration_ms(optarg, 1000, 0, &opt.stop_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--stop-after: %s", err);
			break;
		case OPT_TIMEOUT:
			if (fp_parse_duration_ms(optarg, 1000, 0, &opt.timeout_ms, err, sizeof err) < 0 ||
			    opt.timeout_ms > 3600000)
				fp_usage_error(USAGE, "--timeout: %s", *err ? err : "at most 1h");
			break;
		case OPT_ALERT_CMD: opt.alert_cmd = optarg; break;
		case OPT_ONCE: opt.once = 1; break;
		case OPT_LISTEN: opt.listen = optarg; break;
		case OPT_STORE: opt.store = optarg; break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (optind < argc)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind]);
	if (!opt.group)
		fp_usage_error(USAGE, "no group given (-G)");
	if (!opt.brokers && !(opt.brokers = getenv("FP_BROKERS")))
		fp_usage_error(USAGE, "no brokers given (-b or FP_BROKERS)");
	if (opt.frames && isatty(STDOUT_FILENO))
		fp_die(FP_EXIT_USAGE, "refusing to write binary frames to a terminal; "
		       "pipe into another tool (e.g. '| fp-cat') or use -f json");

	store_url su;
	const char *url = store_url_default(opt.store);
	if (url && store_url_parse(url, &su, err, sizeof err) < 0)
		fp_usage_error(USAGE, "--store: %s", err);

	fk_conf_init(&kc);
	if (file && fk_conf_file(&kc, file, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "-F: %s", err);
	for (int i = 0; i < nx; i++)
		if (fk_conf_set_kv(&kc, xs[i], err, sizeof err) < 0)
			fp_usage_error(USAGE, "-X %s: %s", xs[i], err);
	free(xs);
	if (fk_conf_default(&kc, "bootstrap.servers", opt.brokers, err, sizeof err) < 0)
		fp_die(FP_EXIT_USAGE, "bootstrap.servers: %s", err);
	fk_set_log(kc.rk, log_line);
	lag_probe_conf pc = {&kc, opt.group, opt.topics, (size_t)opt.ntopics, (int)opt.timeout_ms};
	if (!(probe = lag_probe_new(&pc, err, sizeof err)))
		fp_die(FP_EXIT_USAGE, "unable to create the Kafka client: %s", err);
	fk_conf_release(&kc);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (opt.frames)
		fr_writer_init(&fw, STDOUT_FILENO, 0);
	struct MHD_Daemon *httpd = opt.listen ? listen_on(opt.listen) : NULL;
	const char *dir = getenv("FP_STATS_DIR");
	if (dir && *dir) {
		size_t len = strlen(dir) + strlen(opt.group) + 16;
		if (!(stats_file = malloc(len)))
			oom();
		int k = snprintf(stats_file, len, "%s/fp-lag-", dir);
		for (const char *g = opt.group; *g; g++) /* a group name is any text */
			stats_file[k++] = (*g >= 'a' && *g <= 'z') || (*g >= 'A' && *g <= 'Z') ||
			                  (*g >= '0' && *g <= '9') || *g == '.' || *g == '-' ? *g : '_';
		snprintf(stats_file + k, len - (size_t)k, ".prom");
	}

	/* --once: as many checks as the longest "for N" needs. */
	unsigned need = 1;
	for (int r = 0; r < opt.nrules; r++)
		if (opt.rules[r].for_n > need)
			need = opt.rules[r].for_n;
	redisContext *rc = NULL;
	int firing = 0, failed = 0;
	for (unsigned k = 0; !stop; k++) {
		int64_t t0 = stats_clock_ms();
		firing = check(&rc, url ? &su : NULL, &failed);
		reap(0);
		if (opt.once && k + 1 >= need)
			break;
		nap(opt.interval_ms - (stats_clock_ms() - t0));
	}
	reap(1);
	if (httpd)
		MHD_stop_daemon(httpd);
	if (rc)
		redisFree(rc);
	lag_probe_free(probe);
	if (opt.frames)
		fr_writer_release(&fw);
	fp_buf_release(&out);
	fp_buf_release(&rec);
	fp_buf_release(&metrics);
	free(stats_file);
	free(opt.topics);
	fp_close_stdout();
	if (opt.once)
		return firing ? FP_EXIT_THRESHOLD : failed ? FP_EXIT_REMOTE : FP_EXIT_OK;
	return FP_EXIT_OK;
}
