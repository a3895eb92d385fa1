/* lag_report.c - fp-lag's metrics text and alert hook; see lag_report.h. */
#define _POSIX_C_SOURCE 200809L
#include "lag_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats.h"

double
lag_part_value(const lag_part *q, enum lag_metric m)
{
	lag_sample s = {0, q->known, q->committed, q->end};
	if (!q->known || q->committed < 0)
		return NAN;
	return m == LM_LAG ? (double)lag_messages(&s) : q->lag_seconds;
}

/* One sample: name{group="..",topic="..",partition="..",lname="lval"} v.
 * A NaN value writes nothing: an unknown figure has no sample. */
static int
sample(fp_buf *b, const char *group, const char *name, const lag_part *q, const char *lname,
       const char *lval, double v)
{
	char num[64];
	if (isnan(v))
		return 0;
	if (fp_buf_adds(b, "featpipe_consumergroup_") < 0 || fp_buf_adds(b, name) < 0 ||
	    fp_buf_adds(b, "{group=\"") < 0 || stats_label_escape(b, group) < 0)
		return -1;
	if (q) {
		snprintf(num, sizeof num, "%d", (int)q->partition);
		if (fp_buf_adds(b, "\",topic=\"") < 0 || stats_label_escape(b, q->topic) < 0 ||
		    fp_buf_adds(b, "\",partition=\"") < 0 || fp_buf_adds(b, num) < 0)
			return -1;
	}
	if (lname && (fp_buf_adds(b, "\",") < 0 || fp_buf_adds(b, lname) < 0 ||
	              fp_buf_adds(b, "=\"") < 0 || stats_label_escape(b, lval) < 0))
		return -1;
	snprintf(num, sizeof num, "\"} %.15g\n", v);
	return fp_buf_adds(b, num);
}

static int
head(fp_buf *b, const char *name, const char *type, const char *help)
{
	char line[512];
	snprintf(line, sizeof line, "# HELP featpipe_consumergroup_%s %s\n"
	         "# TYPE featpipe_consumergroup_%s %s\n", name, help, name, type);
	return fp_buf_adds(b, line);
}

int
lag_prom_render(const lag_view *v, fp_buf *b)
{
	static const struct { const char *name, *help; } per[] = {
		{"group_offset", "Committed offset of the group."},
		{"partition_latest_offset", "Log end offset (high watermark)."},
		{"group_lag", "Lag in messages: log end - committed."},
		{"group_lag_seconds", "Now - timestamp of the first unconsumed message."},
		{"partition_status", "0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR."},
		{"pipeline_offset", "Smallest durable offset of the pipeline over its shards."},
	};
	const char *g = v->group;
	if (head(b, "up", "gauge", "1 when every figure of the last check is known.") < 0 ||
	    sample(b, g, "up", NULL, NULL, NULL, v->up) < 0 ||
	    head(b, "checks_total", "counter", "Checks made.") < 0 ||
	    sample(b, g, "checks_total", NULL, NULL, NULL, (double)v->checks) < 0)
		return -1;
	for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
		if (k == 5 && !v->pipeline)
			break;
		if (head(b, per[k].name, "gauge", per[k].help) < 0)
			return -1;
		for (size_t i = 0; i < v->nparts; i++) {
			const lag_part *q = &v->parts[i];
			double x = k == 0 ? (q->known && q->committed >= 0 ? (double)q->committed : NAN)
			         : k == 1 ? (q->known ? (double)q->end : NAN)
			         : k == 2 ? lag_part_value(q, LM_LAG)
			         : k == 3 ? lag_part_value(q, LM_LAG_SECONDS)
			         : k == 4 ? (double)q->track.status
			         : (q->stored_known ? (double)q->stored.offset : NAN);
			if (sample(b, g, per[k].name, q, k == 5 ? "pipeline" : NULL, v->pipeline, x) < 0)
				return -1;
		}
	}
	if (head(b, "group_sum_lag", "gauge", "Sum of the partitions' lag in messages.") < 0 ||
	    sample(b, g, "group_sum_lag", NULL, NULL, NULL, v->sum_lag) < 0 ||
	    head(b, "group_max_lag_seconds", "gauge", "Largest lag in seconds.") < 0 ||
	    sample(b, g, "group_max_lag_seconds", NULL, NULL, NULL, v->max_lag_seconds) < 0 ||
	    head(b, "group_status", "gauge", "0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR.") < 0 ||
	    sample(b, g, "group_status", NULL, NULL, NULL, v->status) < 0)
		return -1;
	if (v->nrules &&
	    head(b, "alert_firing", "gauge", "1 while the rule fires (any partition).") < 0)
		return -1;
	for (int r = 0; r < v->nrules; r++) {
		int firing = v->group_rules[r].firing;
		for (size_t i = 0; i < v->nparts && !firing; i++)
			firing = v->parts[i].rules[r].firing;
		if (sample(b, g, "alert_firing", NULL, "rule", v->rules[r].text, firing) < 0)
			return -1;
	}
	return 0;
}

pid_t
lag_hook_run(const char *cmd, const char *const vars[][2], size_t nvars, char *errstr,
             size_t errlen)
{
	extern char **environ;
	size_t n = 0, k = 0, made = 0;
	while (environ[n])
		n++;
	/* Built before fork(): the child only calls dup2() and execve(). */
	char **envp = calloc(n + nvars + 1, sizeof *envp);
	char **strs = calloc(nvars + 1, sizeof *strs);
	pid_t pid = -1;
	if (!envp || !strs) {
		snprintf(errstr, errlen, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "FP_LAG_", 7) != 0)
			envp[k++] = environ[i];
	for (; made < nvars; made++) {
		size_t len = strlen(vars[made][0]) + strlen(vars[made][1]) + 2;
		if (!(strs[made] = malloc(len))) {
			snprintf(errstr, errlen, "out of memory");
			goto done;
		}
		snprintf(strs[made], len, "%s=%s", vars[made][0], vars[made][1]);
		envp[k++] = strs[made];
	}
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	pid = fork();
	if (pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO); /* keep stdout for status lines */
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	if (pid < 0)
		snprintf(errstr, errlen, "%s", strerror(errno));
done:
	for (size_t i = 0; strs && i < made; i++)
		free(strs[i]);
	free(strs);
	free(envp);
	return pid;
}
