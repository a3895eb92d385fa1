/* fp-top - one view of a running pipeline from its metrics files: rate per
 * stage, errors, p99 latency, and fp-lag's lag. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/lag.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/prom.h"
#include "../lib/stats.h"

static const char USAGE[] = "usage: fp-top [-i interval] [-n count] [dir]\n";

static volatile sig_atomic_t stop;

/* What one file says. */
typedef struct row {
	char file[256];
	int lag;                    /* an fp-lag file */
	double in, out, errors, skipped, p99_us;
	double sum_lag, max_lag_s, status, up;
	char group[128];
	time_t mtime;
	int64_t seen_ms;            /* the refresh that last read it */
	/* Rates between the last two versions of the file (by its mtime, so
	 * they span the writer's interval, whatever ours is). */
	int64_t mtime_ns, prev_mtime_ns;
	double prev_in, prev_out, rate_in, rate_out;
} row;

static row *rows;
static size_t nrows;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static row *
row_for(const char *file)
{
	for (size_t i = 0; i < nrows; i++)
		if (strcmp(rows[i].file, file) == 0)
			return &rows[i];
	row *r = realloc(rows, (nrows + 1) * sizeof *rows);
	if (!r)
		fp_die(FP_EXIT_IO, "out of memory");
	rows = r;
	r = &rows[nrows++];
	memset(r, 0, sizeof *r);
	snprintf(r->file, sizeof r->file, "%s", file);
	r->prev_in = r->prev_out = r->rate_in = r->rate_out = NAN;
	r->prev_mtime_ns = -1;
	return r;
}

static void
add_sample(row *r, const prom_sample *s)
{
	char q[32];
	if (strncmp(s->name, "featpipe_consumergroup_", 23) == 0) {
		const char *n = s->name + 23;
		r->lag = 1;
		if (!r->group[0])
			prom_label(s, "group", r->group, sizeof r->group);
		if (!strcmp(n, "group_sum_lag"))
			r->sum_lag = s->value;
		else if (!strcmp(n, "group_max_lag_seconds"))
			r->max_lag_s = s->value;
		else if (!strcmp(n, "group_status"))
			r->status = s->value;
		else if (!strcmp(n, "up"))
			r->up = s->value;
	} else if (ends_with(s->name, "_records_in_total")) {
		r->in += s->value;
	} else if (ends_with(s->name, "_records_out_total")) {
		r->out += s->value;
	} else if (ends_with(s->name, "_errors_total")) {
		r->errors += s->value;
	} else if (ends_with(s->name, "_skipped_replays_total")) {
		r->skipped += s->value;
	} else if (ends_with(s->name, "_microseconds") && prom_label(s, "quantile", q, sizeof q) &&
	           !strcmp(q, "0.99") && !isnan(s->value) &&
	           (isnan(r->p99_us) || s->value > r->p99_us)) {
		r->p99_us = s->value;
	}
}

/* Read one file into its row; 0, or -1 when it vanished or is unreadable. */
static int
read_file(const char *dir, const char *name, int64_t now)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	struct stat st;
	row *r = row_for(name);
	if (fstat(fileno(f), &st) < 0) {
		fclose(f);
		return -1;
	}
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (r->seen_ms && mt == r->mtime_ns) { /* unchanged since the last refresh */
		r->seen_ms = now;
		fclose(f);
		return 0;
	}
	if (r->seen_ms) {
		r->prev_in = r->in;
		r->prev_out = r->out;
		r->prev_mtime_ns = r->mtime_ns;
	}
	r->mtime_ns = mt;
	r->mtime = st.st_mtime;
	r->in = r->out = r->errors = r->skipped = 0;
	r->p99_us = r->sum_lag = r->max_lag_s = r->status = r->up = NAN;
	r->lag = 0;
	r->group[0] = 0;
	r->seen_ms = now;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	prom_sample s;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		if (prom_parse_line(line, (size_t)n, &s) == 1)
			add_sample(r, &s);
	}
	free(line);
	fclose(f);
	double dt = (double)(r->mtime_ns - r->prev_mtime_ns) / 1e9;
	int ok = r->prev_mtime_ns >= 0 && dt > 0 && r->in >= r->prev_in && r->out >= r->prev_out;
	r->rate_in = ok ? (r->in - r->prev_in) / dt : NAN;   /* NaN also after a restart */
	r->rate_out = ok ? (r->out - r->prev_out) / dt : NAN;
	return 0;
}

static void
num(char *buf, size_t len, double v, const char *fmt)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, fmt, v);
}

static void
show(int64_t now)
{
	char in[32], out[32], p99[32], lag[32], secs[32];
	time_t wall = time(NULL);
	int header = 0;
	for (size_t i = 0; i < nrows; i++) {
		row *r = &rows[i];
		if (r->seen_ms != now || r->lag)
			continue;
		if (!header++)
			printf("%-24s %10s %10s %8s %8s %9s %5s\n", "STAGE", "IN/s", "OUT/s", "ERRORS",
			       "SKIPPED", "P99_MS", "AGE");
		num(in, sizeof in, r->rate_in, "%.1f");
		num(out, sizeof out, r->rate_out, "%.1f");
		num(p99, sizeof p99, r->p99_us / 1000.0, "%.3f");
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(strlen(r->file) - 5), r->file);
		printf("%-24s %10s %10s %8.0f %8.0f %9s %4lds\n", name, in, out, r->errors, r->skipped,
		       p99, r->mtime ? (long)(wall - r->mtime) : 0L);
	}
	header = 0;
	for (size_t i = 0; i < nrows; i++) {
		row *r = &rows[i];
		if (r->seen_ms != now || !r->lag)
			continue;
		if (!header++)
			printf("%-24s %10s %10s %8s %5s\n", "GROUP", "LAG", "LAG_S", "STATUS", "AGE");
		num(lag, sizeof lag, r->sum_lag, "%.0f");
		num(secs, sizeof secs, r->max_lag_s, "%.3f");
		const char *status = isnan(r->status) ? "-" : lag_status_name((lag_status)r->status);
		printf("%-24s %10s %10s %8s %4lds\n", r->group[0] ? r->group : r->file, lag, secs,
		       status, r->mtime ? (long)(wall - r->mtime) : 0L);
	}
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
refresh(const char *dir, int tty)
{
	DIR *d = opendir(dir);
	if (!d)
		fp_die(FP_EXIT_IO, "unable to open '%s': %s", dir, strerror(errno));
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !ends_with(e->d_name, ".prom") || strlen(e->d_name) >= 256)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof *names);
		if (!nn || !(nn[n] = strdup(e->d_name)))
			fp_die(FP_EXIT_IO, "out of memory");
		names = nn;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, name_cmp);
	int64_t now = stats_clock_ms();
	for (size_t i = 0; i < n; i++) {
		read_file(dir, names[i], now);
		free(names[i]);
	}
	free(names);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	show(now);
	if (!tty)
		putchar('\n');
	if (fflush(stdout) != 0)
		fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	char err[200];
	int64_t interval = 2000;
	uint64_t count = 0;
	int c;

	fp_tool_init("fp-top");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt(argc, argv, "i:n:")) != -1) {
		switch (c) {
		case 'i':
			if (fp_parse_duration_ms(optarg, 1000, 0, &interval, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-i: %s", err);
			break;
		case 'n':
			if (fp_parse_u64(optarg, 1, UINT64_MAX, &count, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-n: %s", err);
			break;
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	if (argc - optind > 1)
		fp_usage_error(USAGE, "unexpected argument '%s'", argv[optind + 1]);
	const char *dir = optind < argc ? argv[optind] : getenv("FP_STATS_DIR");
	if (!dir || !*dir)
		fp_usage_error(USAGE, "no directory given (argument or FP_STATS_DIR)");

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int tty = isatty(STDOUT_FILENO);
	for (uint64_t k = 0; !stop && (!count || k < count); k++) {
		if (k > 0) {
			for (int64_t left = interval; left > 0 && !stop; left -= 100) {
				struct timespec ts = {0, (long)(left < 100 ? left : 100) * 1000000};
				nanosleep(&ts, NULL);
			}
			if (stop)
				break;
		}
		refresh(dir, tty);
	}
	free(rows);
	fp_close_stdout();
	return 0;
}
