/* lag.c - consumer lag status and alert rules; see lag.h. */
#define _POSIX_C_SOURCE 200809L
#include "lag.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "num.h"

const char *
lag_status_name(lag_status s)
{
	static const char *const names[] = {"OK", "WARN", "STALL", "STOP", "ERR"};
	return (unsigned)s < 5 ? names[s] : "ERR";
}

int64_t
lag_messages(const lag_sample *s)
{
	if (s->committed < 0)
		return -1;
	return s->end > s->committed ? s->end - s->committed : 0;
}

static const lag_sample *
nth(const lag_track *t, unsigned i)
{
	return &t->ring[(t->head + i) % LAG_MAX_WINDOW];
}

lag_status
lag_track_add(lag_track *t, const lag_sample *s, unsigned window, int64_t stop_ms)
{
	if (window < 2)
		window = 2;
	if (window > LAG_MAX_WINDOW)
		window = LAG_MAX_WINDOW;
	if (!s->known)
		return t->status = LAG_ERR;
	int64_t lag = lag_messages(s);
	if (t->n == 0 || nth(t, t->n - 1)->committed != s->committed || lag == 0)
		t->last_move_ms = s->time_ms;
	/* Keep the last `window` known samples. */
	if (t->n == window || t->n == LAG_MAX_WINDOW) {
		t->head = (t->head + 1) % LAG_MAX_WINDOW;
		t->n--;
	}
	while (t->n > window) { /* the window shrank */
		t->head = (t->head + 1) % LAG_MAX_WINDOW;
		t->n--;
	}
	t->ring[(t->head + t->n) % LAG_MAX_WINDOW] = *s;
	t->n++;

	if (s->committed < 0)
		return t->status = s->end > 0 ? LAG_STOP : LAG_OK;
	if (lag == 0)
		return t->status = LAG_OK;
	if (s->time_ms - t->last_move_ms >= stop_ms)
		return t->status = LAG_STOP;
	if (t->n < window)
		return t->status = LAG_OK;
	const lag_sample *first = nth(t, 0);
	if (first->committed == s->committed)
		return t->status = LAG_STALL;
	int growing = lag_messages(s) > lag_messages(first);
	for (unsigned i = 1; i < t->n && growing; i++)
		growing = lag_messages(nth(t, i)) >= lag_messages(nth(t, i - 1));
	return t->status = growing ? LAG_WARN : LAG_OK;
}

int
lag_rule_is_group(const lag_rule *r)
{
	return r->metric == LM_GROUP_LAG || r->metric == LM_GROUP_LAG_SECONDS;
}

static size_t
skip_ws(const char *s, size_t i)
{
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	return i;
}

static size_t
word_end(const char *s, size_t i)
{
	while (s[i] && s[i] != ' ' && s[i] != '\t')
		i++;
	return i;
}

int
lag_rule_parse(const char *s, lag_rule *r, char *errstr, size_t errlen)
{
	static const struct { const char *name; enum lag_metric m; } metrics[] = {
		{"lag", LM_LAG}, {"lag_seconds", LM_LAG_SECONDS},
		{"group_lag", LM_GROUP_LAG}, {"group_lag_seconds", LM_GROUP_LAG_SECONDS},
	};
	char word[64], err[100];
	size_t i = skip_ws(s, 0), j;
	memset(r, 0, sizeof *r);
	r->for_n = 1;

	j = i;
	while ((s[j] >= 'a' && s[j] <= 'z') || s[j] == '_')
		j++;
	size_t k;
	for (k = 0; k < sizeof metrics / sizeof metrics[0]; k++)
		if (j - i == strlen(metrics[k].name) && memcmp(s + i, metrics[k].name, j - i) == 0)
			break;
	if (k == sizeof metrics / sizeof metrics[0]) {
		snprintf(errstr, errlen, "column %zu: expected lag, lag_seconds, group_lag or "
		         "group_lag_seconds", i + 1);
		return -1;
	}
	r->metric = metrics[k].m;

	i = skip_ws(s, j);
	int two = s[i + 1] == '=';
	switch (s[i]) {
	case '>': r->op = two ? 'G' : '>'; break;
	case '<': r->op = two ? 'L' : '<'; break;
	case '=': r->op = two ? '=' : 0; break;
	case '!': r->op = two ? '!' : 0; break;
	default: r->op = 0;
	}
	if (!r->op) {
		snprintf(errstr, errlen, "column %zu: expected an operator (> >= < <= == !=)", i + 1);
		return -1;
	}
	i = skip_ws(s, i + ((r->op == '>' || r->op == '<') ? 1 : 2));

	j = word_end(s, i);
	if (j - i == 0 || j - i >= sizeof word) {
		snprintf(errstr, errlen, "column %zu: expected a number", i + 1);
		return -1;
	}
	memcpy(word, s + i, j - i);
	word[j - i] = 0;
	if (fp_parse_double(word, &r->value, err, sizeof err) < 0) {
		snprintf(errstr, errlen, "column %zu: expected a number, found '%s'", i + 1, word);
		return -1;
	}

	i = skip_ws(s, j);
	if (strncmp(s + i, "for", 3) == 0 && (s[i + 3] == ' ' || s[i + 3] == '\t')) {
		i = skip_ws(s, i + 3);
		j = word_end(s, i);
		uint64_t n;
		if (j - i == 0 || j - i >= sizeof word) {
			snprintf(errstr, errlen, "column %zu: expected a number of checks", i + 1);
			return -1;
		}
		memcpy(word, s + i, j - i);
		word[j - i] = 0;
		if (fp_parse_u64(word, 1, 1000000, &n, err, sizeof err) < 0) {
			snprintf(errstr, errlen, "column %zu: expected a number of checks "
			         "(1 to 1000000), found '%s'", i + 1, word);
			return -1;
		}
		r->for_n = (unsigned)n;
		i = skip_ws(s, j);
		j = word_end(s, i);
		if ((j - i == 6 && memcmp(s + i, "checks", 6) == 0) ||
		    (j - i == 5 && memcmp(s + i, "check", 5) == 0))
			i = skip_ws(s, j);
	}
	if (s[i]) {
		snprintf(errstr, errlen, "column %zu: unexpected '%s'", i + 1, s + i);
		return -1;
	}
	/* The text, white space collapsed. */
	size_t o = 0;
	for (i = skip_ws(s, 0); s[i] && o + 1 < sizeof r->text; i++) {
		if (s[i] == ' ' || s[i] == '\t') {
			i = skip_ws(s, i) - 1;
			if (s[i + 1])
				r->text[o++] = ' ';
			continue;
		}
		r->text[o++] = s[i];
	}
	r->text[o] = 0;
	return 0;
}

static int
holds(const lag_rule *r, double v)
{
	switch (r->op) {
	case '>': return v > r->value;
	case 'G': return v >= r->value;
	case '<': return v < r->value;
	case 'L': return v <= r->value;
	case '=': return v == r->value;
	case '!': return v != r->value;
	}
	return 0;
}

int
lag_rule_step(const lag_rule *r, lag_rule_state *st, double v)
{
	if (isnan(v))
		return 0;
	if (!holds(r, v)) {
		st->run = 0;
		if (st->firing) {
			st->firing = 0;
			return -1;
		}
		return 0;
	}
	if (st->run < r->for_n)
		st->run++;
	if (!st->firing && st->run >= r->for_n) {
		st->firing = 1;
		return 1;
	}
	return 0;
}
