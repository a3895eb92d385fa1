/* test_lag.c - lib/lag: status over a window, rule parsing and transitions. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "../../lib/lag.h"
#include "../../lib/lag_report.h"

static lag_status
feed(lag_track *t, int64_t ms, int64_t committed, int64_t end)
{
	lag_sample s = {ms, 1, committed, end};
	return lag_track_add(t, &s, 3, 10000);
}

static void
test_status(void)
{
	lag_track t = LAG_TRACK_INIT;
	ok(feed(&t, 0, 10, 10) == LAG_OK, "no lag: OK");
	ok(feed(&t, 1000, 10, 15) == LAG_OK, "lag with a window not yet full: OK");
	ok(feed(&t, 2000, 10, 16) == LAG_STALL, "committed still over 3 checks, lag > 0: STALL");
	ok(feed(&t, 4000, 12, 16) == LAG_OK, "committed moves, lag shrinks: OK");
	ok(feed(&t, 5000, 13, 18) == LAG_OK, "lag grew over part of the window: OK");
	ok(feed(&t, 6000, 14, 20) == LAG_WARN, "lag grew over the whole window: WARN");
	lag_sample unk = {7000, 0, 0, 0};
	ok(lag_track_add(&t, &unk, 3, 10000) == LAG_ERR, "unknown figures: ERR");
	ok(feed(&t, 8000, 15, 20) == LAG_OK, "known again: back from the window");
	ok(feed(&t, 12000, 15, 20) == LAG_OK, "committed moved within the window: OK");
	ok(feed(&t, 13000, 15, 20) == LAG_STALL, "stuck over the window: STALL");
	ok(feed(&t, 18000, 15, 20) == LAG_STOP, "no progress for stop_ms: STOP");
	ok(feed(&t, 19000, 20, 20) == LAG_OK, "caught up: OK");

	lag_track u = LAG_TRACK_INIT;
	ok(feed(&u, 0, -1, 5) == LAG_STOP, "messages and no committed offset: STOP");
	lag_track v = LAG_TRACK_INIT;
	ok(feed(&v, 0, -1, 0) == LAG_OK, "empty partition, no commit: OK");
	lag_sample s = {0, 1, 30, 20};
	ok(lag_messages(&s) == 0, "lag is never negative");
	s.committed = -1;
	ok(lag_messages(&s) == -1, "no committed offset: lag unknown");
	ok(strcmp(lag_status_name(LAG_STALL), "STALL") == 0, "status names");
}

static void
test_rules(void)
{
	lag_rule r;
	char err[200];
	ok(lag_rule_parse("lag > 2000 for 3", &r, err, sizeof err) == 0 && r.metric == LM_LAG &&
	   r.op == '>' && r.value == 2000 && r.for_n == 3 && !lag_rule_is_group(&r),
	   "lag > 2000 for 3");
	ok(lag_rule_parse("  lag_seconds>=5.5  ", &r, err, sizeof err) == 0 &&
	   r.metric == LM_LAG_SECONDS && r.op == 'G' && r.value == 5.5 && r.for_n == 1 &&
	   strcmp(r.text, "lag_seconds>=5.5") == 0, "lag_seconds>=5.5, text trimmed");
	ok(lag_rule_parse("group_lag  !=  0 for 2 checks", &r, err, sizeof err) == 0 &&
	   r.op == '!' && r.for_n == 2 && lag_rule_is_group(&r) &&
	   strcmp(r.text, "group_lag != 0 for 2 checks") == 0, "group rule, 'checks' accepted");
	ok(lag_rule_parse("lags > 1", &r, err, sizeof err) < 0 && strstr(err, "column 1:"),
	   "unknown metric names column 1");
	ok(lag_rule_parse("lag = 1", &r, err, sizeof err) < 0 && strstr(err, "column 5: expected an operator"),
	   "single = is not an operator");
	ok(lag_rule_parse("lag > x", &r, err, sizeof err) < 0 && strstr(err, "column 7: expected a number"),
	   "bad number");
	ok(lag_rule_parse("lag > 1 for 0", &r, err, sizeof err) < 0 && strstr(err, "column 13"),
	   "for 0 refused");
	ok(lag_rule_parse("lag > 1 extra", &r, err, sizeof err) < 0 && strstr(err, "unexpected 'extra'"),
	   "trailing text refused");

	lag_rule_parse("lag > 2000 for 3", &r, err, sizeof err);
	lag_rule_state st = {0, 0};
	int ev[8];
	double vals[8] = {2500, 2600, NAN, 2700, 2800, 2900, 100, 3000};
	for (int i = 0; i < 8; i++)
		ev[i] = lag_rule_step(&r, &st, vals[i]);
	ok(ev[0] == 0 && ev[1] == 0 && ev[2] == 0 && ev[3] == 1,
	   "fires on the third check in a row; unknown neither counts nor breaks");
	ok(ev[4] == 0 && ev[5] == 0, "fires once, not every check");
	ok(ev[6] == -1 && ev[7] == 0 && !st.firing, "resolves once; a new run starts over");
}

static void
test_prom(void)
{
	static lag_part parts[2];
	lag_rule rules[1];
	lag_rule_state group_rules[1] = {{0, 0}};
	char err[100];
	lag_rule_parse("lag > 10", &rules[0], err, sizeof err);
	snprintf(parts[0].topic, sizeof parts[0].topic, "t\"x");
	parts[0].partition = 0;
	parts[0].known = 1;
	parts[0].committed = 40;
	parts[0].end = 100;
	parts[0].lag_seconds = 60.5;
	parts[0].rules[0].firing = 1;
	parts[0].stored_known = 1;
	parts[0].stored.offset = 35;
	parts[1] = parts[0];
	parts[1].partition = 1;
	parts[1].known = 0;
	parts[1].lag_seconds = NAN;
	parts[1].track.status = LAG_ERR;
	lag_view v = {"g", parts, 2, 0, 7, NAN, 60.5, LAG_ERR, rules, group_rules, 1, "p"};
	fp_buf b = FP_BUF_INIT;
	ok(lag_prom_render(&v, &b) == 0 && fp_buf_addc(&b, 0) == 0, "render");
	const char *t = (const char *)b.p;
	ok(strstr(t, "featpipe_consumergroup_group_lag{group=\"g\",topic=\"t\\\"x\",partition=\"0\"} 60\n") &&
	   strstr(t, "featpipe_consumergroup_group_lag_seconds{group=\"g\",topic=\"t\\\"x\",partition=\"0\"} 60.5\n") &&
	   strstr(t, "featpipe_consumergroup_pipeline_offset{group=\"g\",topic=\"t\\\"x\",partition=\"0\",pipeline=\"p\"} 35\n"),
	   "known figures, labels escaped");
	ok(!strstr(t, "group_lag{group=\"g\",topic=\"t\\\"x\",partition=\"1\"}") &&
	   !strstr(t, "group_sum_lag{") && strstr(t, "partition=\"1\"} 4\n") &&
	   strstr(t, "featpipe_consumergroup_up{group=\"g\"} 0\n"),
	   "unknown figures have no sample; status ERR is 4");
	ok(strstr(t, "featpipe_consumergroup_alert_firing{group=\"g\",rule=\"lag > 10\"} 1\n") &&
	   strstr(t, "# TYPE featpipe_consumergroup_checks_total counter\n"), "rules and counter");
	fp_buf_release(&b);
}

int
main(void)
{
	test_status();
	test_rules();
	test_prom();
	return tap_done();
}
