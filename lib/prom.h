/* prom.h - read the Prometheus text exposition format, one line at a time
 * (what lib/stats.c and fp-lag write; enough for fp-top, not a full
 * parser: no timestamps are used, HELP and TYPE lines are skipped). */
#ifndef FP_PROM_H
#define FP_PROM_H

#include <stddef.h>

typedef struct prom_sample {
	char name[128];
	char labels[512];   /* the text between { and }, unescaped values kept as written */
	double value;       /* NaN, +Inf and -Inf as such */
} prom_sample;

/* Parse one line (without its newline).  1 and *s for a sample, 0 for a
 * comment or blank line, -1 when the line is malformed or too long. */
int prom_parse_line(const char *line, size_t len, prom_sample *s);

/* The value of label name in s->labels into buf (unescaped).  1 when
 * present, 0 when not (or it does not fit). */
int prom_label(const prom_sample *s, const char *name, char *buf, size_t len);

#endif
