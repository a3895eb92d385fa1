/* fp-keyby - shard a frame stream by key across processes or outputs. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/expr.h"
#include "../lib/frame.h"
#include "../lib/keyby.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"

static const char USAGE[] =
	"usage: fp-keyby -k field -n shards [--dead-letter path] [--grace duration] [--max-frame size] -- command\n"
	"       fp-keyby -k field -n shards [--dead-letter path] [--max-frame size] -o pattern\n";

#define MAX_SHARDS 1024

/* Metrics: copied from kb_run()'s counts at every tick. */
static struct {
	stats *s;
	stats_counter *in, *out, *control, *bad_key;
	stats_hist *batch;
	uint64_t last_frames;
} m;

static void
metrics_sync(const kb_stats *st)
{
	m.in->v = st->frames;
	m.out->v = st->frames - st->bad_key;
	m.control->v = st->control;
	m.bad_key->v = st->bad_key;
	if (st->frames > m.last_frames)
		stats_observe(m.batch, st->frames - m.last_frames);
	m.last_frames = st->frames;
}

static void
metrics_tick(const kb_stats *st, void *arg)
{
	(void)arg;
	metrics_sync(st);
	if (stats_tick(m.s, stats_clock_ms()) < 0)
		fp_warn("%s", stats_errstr(m.s));
}

static void
metrics_start(void)
{
	char err[300];
	if (!(m.s = stats_new("fp-keyby", err, sizeof err)))
		fp_die(FP_EXIT_IO, "%s", err);
	m.in = stats_counter_new(m.s, "records_in_total", "Frames read, control frames included.",
	                         NULL, NULL);
	m.out = stats_counter_new(m.s, "records_out_total",
	                          "Frames handed to the shards (a control frame once).", NULL, NULL);
	m.control = stats_counter_new(m.s, "control_frames_total",
	                              "Control frames read (each goes to every shard).", NULL, NULL);
	m.bad_key = stats_error(m.s, "bad_key");
	m.batch = stats_hist_new(m.s, "batch_size", "Frames routed per chunk of input.", NULL, NULL);
	if (stats_register_errstr(m.s))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(m.s));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
}

/* pattern with its one %d replaced by i ("%%" is a '%').  NULL with errstr
 * set when the pattern does not hold exactly one %d. */
static char *
expand(const char *pattern, unsigned i, char *errstr, size_t errlen)
{
	size_t n = strlen(pattern);
	char *out = malloc(n + 16);
	int seen = 0;
	size_t k = 0;
	if (!out) {
		snprintf(errstr, errlen, "out of memory");
		return NULL;
	}
	for (size_t j = 0; j < n; j++) {
		if (pattern[j] != '%') {
			out[k++] = pattern[j];
			continue;
		}
		char c = pattern[++j];
		if (c == '%') {
			out[k++] = '%';
		} else if (c == 'd' && !seen) {
			k += (size_t)snprintf(out + k, 16, "%u", i);
			seen = 1;
		} else {
			snprintf(errstr, errlen, "-o: '%s' must hold exactly one %%d (write %%%% for a %%)",
			         pattern);
			free(out);
			return NULL;
		}
	}
	out[k] = '\0';
	if (!seen) {
		snprintf(errstr, errlen, "-o: '%s' must hold exactly one %%d (the shard number)", pattern);
		free(out);
		return NULL;
	}
	return out;
}

int
main(int argc, char **argv)
{
	enum { OPT_DEAD = 256, OPT_GRACE, OPT_MAX_FRAME };
	static const struct option longopts[] = {
		{"dead-letter", required_argument, NULL, OPT_DEAD},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{NULL, 0, NULL, 0},
	};
	const char *keytext = NULL, *pattern = NULL, *dead = NULL;
	uint64_t nshards = 0, v;
	int64_t grace_ms = 5000;
	size_t max_frame = 0;
	char err[300];
	int c;

	fp_tool_init("fp-keyby");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt_long(argc, argv, "+k:n:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keytext = optarg;
			break;
		case 'n':
			if (fp_parse_u64(optarg, 1, MAX_SHARDS, &nshards, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-n: %s", err);
			break;
		case 'o':
			pattern = optarg;
			break;
		case OPT_DEAD:
			dead = optarg;
			break;
		case OPT_GRACE:
			if (fp_parse_duration_ms(optarg, 1000, 1, &grace_ms, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--grace: %s", err);
			break;
		case OPT_MAX_FRAME:
			if (fp_parse_size(optarg, 1, FR_HARD_MAX, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-frame: %s", err);
			max_frame = v;
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (!keytext)
		fp_usage_error(USAGE, "the key field is missing (-k field)");
	if (!nshards)
		fp_usage_error(USAGE, "the number of shards is missing (-n shards)");
	int nargs = argc - optind;
	if (pattern && nargs > 0)
		fp_usage_error(USAGE, "give either -o pattern or a command, not both");
	if (!pattern && nargs == 0)
		fp_usage_error(USAGE, "give a command for the shards (after --) or -o pattern");
	if (nargs > 1)
		fp_usage_error(USAGE, "give the command as one argument (quote it): fp-keyby ... -- '%s ...'",
		               argv[optind]);
	if (!max_frame && fr_max_frame_env(&max_frame, err, sizeof err) < 0)
		fp_usage_error(USAGE, "%s", err);

	expr_error pe;
	size_t used;
	fp_path *key = fp_path_parse(keytext, strlen(keytext), &used, &pe);
	if (key && used != strlen(keytext)) {
		pe.column = used + 1;
		snprintf(pe.msg, sizeof pe.msg, "unexpected '%c' after the field path", keytext[used]);
		fp_path_free(key);
		key = NULL;
	}
	if (!key)
		fp_usage_error(USAGE, "-k: '%s', column %zu: %s", keytext, pe.column, pe.msg);

	kb_config cfg = {
		.key = key, .nshards = (uint32_t)nshards, .in_fd = STDIN_FILENO,
		.max_frame = max_frame, .dead_fd = -1, .dead_name = dead, .grace_ms = grace_ms,
		.shard_buffer = 1u << 20, .warn = fp_warn, .tick = metrics_tick,
	};
	int *fds = NULL;
	char **names = NULL;
	if (pattern) {
		fds = calloc(nshards, sizeof *fds);
		names = calloc(nshards, sizeof *names);
		if (!fds || !names)
			fp_die(FP_EXIT_IO, "out of memory");
		for (unsigned i = 0; i < nshards; i++)
			if (!(names[i] = expand(pattern, i, err, sizeof err)))
				fp_usage_error(USAGE, "%s", err);
		/* In order; opening a FIFO waits for its reader. */
		for (unsigned i = 0; i < nshards; i++) {
			fds[i] = open(names[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
			if (fds[i] < 0)
				fp_die(FP_EXIT_IO, "unable to open '%s': %s", names[i], strerror(errno));
			if (isatty(fds[i]))
				fp_die(FP_EXIT_USAGE, "refusing to write binary frames to the terminal '%s'",
				       names[i]);
		}
		cfg.out_fds = fds;
		cfg.out_names = (const char *const *)names;
	} else {
		cfg.command = argv[optind];
	}
	if (dead) {
		cfg.dead_fd = open(dead, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
		if (cfg.dead_fd < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", dead, strerror(errno));
	}

	kb_stats st;
	metrics_start();
	int code = kb_run(&cfg, &st);
	metrics_sync(&st);
	if (stats_final(m.s) < 0)
		fp_warn("%s", stats_errstr(m.s));
	stats_free(m.s);
	if (st.dead)
		fp_warn("%llu frame%s without a usable key written to '%s'",
		        (unsigned long long)st.dead, st.dead == 1 ? "" : "s", dead);
	if (cfg.dead_fd >= 0 && close(cfg.dead_fd) < 0) {
		fp_warn("error writing '%s': %s", dead, strerror(errno));
		if (!code)
			code = FP_EXIT_IO;
	}
	for (unsigned i = 0; names && i < nshards; i++)
		free(names[i]);
	free(names);
	free(fds);
	fp_path_free(key);
	if (st.signal) {
		signal(st.signal, SIG_DFL);
		raise(st.signal);
	}
	return code;
}
