/* test_prom.c - lib/prom: reading back what lib/stats writes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "../../lib/prom.h"

static int
parse(const char *line, prom_sample *s)
{
	return prom_parse_line(line, strlen(line), s);
}

int
main(void)
{
	prom_sample s;
	char v[64];
	ok(parse("# HELP x y", &s) == 0 && parse("", &s) == 0 && parse("  ", &s) == 0,
	   "comments and blank lines");
	ok(parse("up 1", &s) == 1 && strcmp(s.name, "up") == 0 && s.labels[0] == 0 && s.value == 1,
	   "no labels");
	ok(parse("a_total{tool=\"fp-x\",reason=\"q\\\"}\\\\\"} 42 1700000000000", &s) == 1 &&
	   strcmp(s.name, "a_total") == 0 && s.value == 42, "labels with escapes, timestamp");
	ok(prom_label(&s, "reason", v, sizeof v) == 1 && strcmp(v, "q\"}\\") == 0,
	   "label value unescaped");
	ok(prom_label(&s, "tool", v, sizeof v) == 1 && strcmp(v, "fp-x") == 0, "first label");
	ok(prom_label(&s, "shard", v, sizeof v) == 0, "missing label");
	ok(parse("x{quantile=\"0.99\"} NaN", &s) == 1 && isnan(s.value), "NaN");
	ok(parse("x +Inf", &s) == 1 && isinf(s.value), "+Inf");
	ok(parse("x{a=\"1\" 5", &s) == -1 && parse("x", &s) == -1 && parse("x 1x", &s) == -1,
	   "malformed lines");
	return tap_done();
}
