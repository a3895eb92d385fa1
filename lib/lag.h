/* lag.h - consumer lag status and alert rules (fp-lag(1)), without Kafka.
 *
 * The caller (fp-lag) measures each partition at every check and feeds the
 * figures in; this module keeps the recent history of a partition, decides
 * its status, and runs the threshold rules, reporting transitions only.
 *
 * Status of a partition, in the spirit of Burrow, worst last:
 *   OK     no lag, or the consumer commits and the lag is not growing
 *   WARN   the committed offset moves but the lag grew over the whole window
 *          (each of the last W checks >= the one before, the last > the first)
 *   STALL  lag > 0 and the committed offset has not moved over the window
 *   STOP   lag > 0 and the committed offset has not moved for stop_ms
 *          (Kafka does not tell when an offset was committed, so "no commits
 *          for a while" is seen as "no progress for a while"); also a
 *          partition with messages and no committed offset at all
 *   ERR    the figures are unknown (a broker did not answer)
 * A group's status is the worst of its partitions'.
 */
#ifndef FP_LAG_H
#define FP_LAG_H

#include <stddef.h>
#include <stdint.h>

typedef enum lag_status { LAG_OK, LAG_WARN, LAG_STALL, LAG_STOP, LAG_ERR } lag_status;

/* "OK", "WARN", "STALL", "STOP", "ERR". */
const char *lag_status_name(lag_status s);

#define LAG_MAX_WINDOW 64

/* One partition at one check.  known = 0: the broker did not answer (the
 * other fields are ignored).  committed < 0: the group has no committed
 * offset.  end: the log end offset (high watermark). */
typedef struct lag_sample {
	int64_t time_ms;
	int known;
	int64_t committed;
	int64_t end;
} lag_sample;

typedef struct lag_track {
	lag_sample ring[LAG_MAX_WINDOW]; /* known samples, oldest first from head */
	unsigned n, head;
	int64_t last_move_ms;            /* when committed last changed (or lag was 0) */
	lag_status status;
} lag_track;

#define LAG_TRACK_INIT {{{0, 0, 0, 0}}, 0, 0, 0, LAG_OK}

/* Lag in messages of a known sample with a committed offset: end - committed,
 * never negative; -1 when there is no committed offset. */
int64_t lag_messages(const lag_sample *s);

/* Add this check's sample and return the partition's new status (also
 * kept in t->status).  window: checks looked at for WARN and STALL (2 ..
 * LAG_MAX_WINDOW); stop_ms: no progress for this long is STOP. */
lag_status lag_track_add(lag_track *t, const lag_sample *s, unsigned window, int64_t stop_ms);

/* Threshold rules: "METRIC OP NUMBER [for N [checks]]".
 * METRIC: lag, lag_seconds (each partition), group_lag (sum over the
 * partitions), group_lag_seconds (the largest).  OP: > >= < <= == !=.
 * The rule fires when the condition held for N checks in a row (default 1)
 * and resolves at the first check where it does not hold; a check where the
 * value is unknown neither counts nor breaks the run. */
enum lag_metric { LM_LAG, LM_LAG_SECONDS, LM_GROUP_LAG, LM_GROUP_LAG_SECONDS };

typedef struct lag_rule {
	char text[128];     /* as written, white space collapsed */
	enum lag_metric metric;
	int op;             /* '>', 'G' (>=), '<', 'L' (<=), '=', '!' */
	double value;
	unsigned for_n;
} lag_rule;

/* 1 for a group metric, 0 for a per-partition one. */
int lag_rule_is_group(const lag_rule *r);

/* Parse a rule.  0, or -1 with errstr naming the column and what was
 * expected. */
int lag_rule_parse(const char *s, lag_rule *r, char *errstr, size_t errlen);

typedef struct lag_rule_state {
	unsigned run;       /* checks in a row the condition held */
	int firing;
} lag_rule_state;

/* Feed this check's value (NaN: unknown).  Returns 1 when the rule starts
 * firing, -1 when it resolves, 0 when nothing changed. */
int lag_rule_step(const lag_rule *r, lag_rule_state *st, double v);

#endif
