/* prom.c - read Prometheus text lines; see prom.h. */
#define _POSIX_C_SOURCE 200809L
#include "prom.h"

#include <math.h>
#include <string.h>

#include "num.h"

int
prom_parse_line(const char *line, size_t len, prom_sample *s)
{
	size_t i = 0, j;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#')
		return 0;
	for (j = i; j < len && line[j] != '{' && line[j] != ' ' && line[j] != '\t'; j++)
		;
	if (j == i || j - i >= sizeof s->name)
		return -1;
	memcpy(s->name, line + i, j - i);
	s->name[j - i] = 0;
	s->labels[0] = 0;
	i = j;
	if (i < len && line[i] == '{') {
		/* Up to the closing brace outside quotes. */
		int quoted = 0;
		for (j = i + 1; j < len; j++) {
			if (quoted && line[j] == '\\')
				j++;
			else if (line[j] == '"')
				quoted = !quoted;
			else if (!quoted && line[j] == '}')
				break;
		}
		if (j >= len || j - i - 1 >= sizeof s->labels)
			return -1;
		memcpy(s->labels, line + i + 1, j - i - 1);
		s->labels[j - i - 1] = 0;
		i = j + 1;
	}
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	for (j = i; j < len && line[j] != ' ' && line[j] != '\t'; j++)
		;
	char num[64];
	if (j == i || j - i >= sizeof num)
		return -1;
	memcpy(num, line + i, j - i);
	num[j - i] = 0;
	if (strcmp(num, "NaN") == 0)
		s->value = NAN;
	else if (strcmp(num, "+Inf") == 0 || strcmp(num, "Inf") == 0)
		s->value = INFINITY;
	else if (strcmp(num, "-Inf") == 0)
		s->value = -INFINITY;
	else if (fp_parse_double(num, &s->value, NULL, 0) < 0)
		return -1;
	return 1; /* a timestamp may follow; it is not used */
}

int
prom_label(const prom_sample *s, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);
	const char *p = s->labels;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *eq = strchr(p, '=');
		if (!eq || eq[1] != '"')
			return 0;
		int match = (size_t)(eq - p) == n && memcmp(p, name, n) == 0;
		size_t o = 0;
		for (p = eq + 2; *p && *p != '"'; p++) {
			char c = *p;
			if (c == '\\' && p[1]) {
				p++;
				c = *p == 'n' ? '\n' : *p;
			}
			if (match) {
				if (o + 1 >= len)
					return 0;
				buf[o++] = c;
			}
		}
		if (match) {
			buf[o] = 0;
			return 1;
		}
		if (*p == '"')
			p++;
	}
	return 0;
}
