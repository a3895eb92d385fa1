/* lag_report.h - what fp-lag makes of a check: the Prometheus text of
 * fp-lag(1)'s METRICS, and running the --alert-cmd hook. */
#ifndef FP_LAG_REPORT_H
#define FP_LAG_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "lag.h"
#include "lag_probe.h"

/* The value of a partition metric (LM_LAG or LM_LAG_SECONDS) at the last
 * check; NaN when unknown or when the group has no committed offset. */
double lag_part_value(const lag_part *q, enum lag_metric m);

/* One check, as the metrics show it. */
typedef struct lag_view {
	const char *group;
	const lag_part *parts;
	size_t nparts;
	int up;                     /* every figure known */
	uint64_t checks;
	double sum_lag, max_lag_seconds; /* NaN: unknown */
	lag_status status;          /* the group's */
	const lag_rule *rules;
	const lag_rule_state *group_rules;
	int nrules;
	const char *pipeline;       /* NULL without a store */
} lag_view;

/* Append the exposition text of v to b: featpipe_consumergroup_* gauges,
 * no sample for an unknown figure.  0, or -1 when out of memory. */
int lag_prom_render(const lag_view *v, fp_buf *b);

/* Run cmd with /bin/sh -c, without waiting, its standard output on our
 * standard error, with the environment plus vars (name, value pairs; any
 * other FP_LAG_* variable removed).  The caller reaps the child.  Returns
 * its pid, or -1 with errstr. */
pid_t lag_hook_run(const char *cmd, const char *const vars[][2], size_t nvars, char *errstr,
                   size_t errlen);

#endif
