/* stats.c - per-stage metrics as Prometheus text; see stats.h. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

volatile sig_atomic_t stats_dump_requested;

enum stats_type { ST_COUNTER, ST_GAUGE, ST_HIST };

typedef struct stats_metric {
	enum stats_type type;
	char *name;         /* full: featpipe_<tool>_<name> */
	char *help;
	char *label_name;   /* NULL for none */
	char *label_value;
	union {
		stats_counter c;
		stats_gauge g;
		stats_hist *h;  /* large: allocated on its own */
	} u;
} stats_metric;

struct stats {
	char *tool;
	char *prefix;       /* "featpipe_<tool>_" */
	char *labels;       /* tool="..",shard="..",pipeline=".." (escaped) */
	char *path;         /* NULL without FP_STATS_DIR */
	stats_metric **m;   /* pointers: metrics never move once registered */
	size_t n, cap;
	int64_t write_ms, window_ms;
	int64_t next_write, next_rotate; /* 0: not yet started */
	/* Handed out when a registration fails: recorded into, never written. */
	stats_counter dummy;
	stats_gauge dummy_g;
	stats_hist *dummy_h;
	char regerr[256];   /* the first registration error, "" for none */
	fp_buf out;
	char errstr[256];
};

static void
seterr(stats *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->errstr, sizeof s->errstr, fmt, ap);
	va_end(ap);
}

int
stats_label_escape(fp_buf *b, const char *v)
{
	for (; *v; v++) {
		int r;
		if (*v == '\\')
			r = fp_buf_adds(b, "\\\\");
		else if (*v == '"')
			r = fp_buf_adds(b, "\\\"");
		else if (*v == '\n')
			r = fp_buf_adds(b, "\\n");
		else
			r = fp_buf_addc(b, (uint8_t)*v);
		if (r < 0)
			return -1;
	}
	return 0;
}

static char *
buf_take(fp_buf *b)
{
	if (fp_buf_addc(b, 0) < 0) {
		fp_buf_release(b);
		return NULL;
	}
	return (char *)b->p;
}

static int
valid_name(const char *s, int colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
			return 0;
	return 1;
}

stats *
stats_new(const char *tool, char *errstr, size_t errlen)
{
	stats *s = calloc(1, sizeof *s);
	fp_buf b = FP_BUF_INIT;
	if (!s)
		goto oom;
	s->write_ms = 5000;
	s->window_ms = 60000;
	if (!(s->dummy_h = calloc(1, sizeof *s->dummy_h)))
		goto oom;
	if (!(s->tool = strdup(tool)))
		goto oom;
	/* featpipe_<tool>_ */
	const char *t = strncmp(tool, "fp-", 3) == 0 ? tool + 3 : tool;
	if (fp_buf_adds(&b, "featpipe_") < 0)
		goto oom;
	for (; *t; t++) {
		char c = *t == '-' ? '_' : *t;
		if (fp_buf_addc(&b, (uint8_t)c) < 0)
			goto oom;
	}
	if (fp_buf_addc(&b, '_') < 0 || !(s->prefix = buf_take(&b)))
		goto oom;
	if (!valid_name(s->prefix, 1)) {
		snprintf(errstr, errlen, "stats: '%s' cannot name a metric", tool);
		stats_free(s);
		return NULL;
	}
	b = (fp_buf)FP_BUF_INIT;
	const char *shard = getenv("FP_SHARD"), *pipeline = getenv("FP_PIPELINE");
	int has_shard = shard && *shard;
	if (fp_buf_adds(&b, "tool=\"") < 0 || stats_label_escape(&b, tool) < 0 ||
	    fp_buf_adds(&b, "\",shard=\"") < 0 || stats_label_escape(&b, has_shard ? shard : "0") < 0 ||
	    fp_buf_adds(&b, "\",pipeline=\"") < 0 ||
	    stats_label_escape(&b, pipeline && *pipeline ? pipeline : "default") < 0 ||
	    fp_buf_addc(&b, '"') < 0 || !(s->labels = buf_take(&b)))
		goto oom;
	const char *dir = getenv("FP_STATS_DIR");
	if (dir && *dir) {
		b = (fp_buf)FP_BUF_INIT;
		if (fp_buf_adds(&b, dir) < 0 || fp_buf_addc(&b, '/') < 0 ||
		    fp_buf_adds(&b, tool) < 0 ||
		    (has_shard && (fp_buf_addc(&b, '-') < 0 || fp_buf_adds(&b, shard) < 0)) ||
		    fp_buf_adds(&b, ".prom") < 0 || !(s->path = buf_take(&b)))
			goto oom;
	}
	return s;
oom:
	fp_buf_release(&b);
	snprintf(errstr, errlen, "stats: out of memory");
	stats_free(s);
	return NULL;
}

void
stats_free(stats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		stats_metric *m = s->m[i];
		free(m->name);
		free(m->help);
		free(m->label_name);
		free(m->label_value);
		if (m->type == ST_HIST)
			free(m->u.h);
		free(m);
	}
	free(s->m);
	free(s->dummy_h);
	free(s->tool);
	free(s->prefix);
	free(s->labels);
	free(s->path);
	fp_buf_release(&s->out);
	free(s);
}

void
stats_set_interval(stats *s, int64_t write_ms, int64_t window_ms)
{
	if (write_ms > 0)
		s->write_ms = write_ms;
	if (window_ms > 0)
		s->window_ms = window_ms;
	s->next_write = s->next_rotate = 0;
}

const char *
stats_path(const stats *s)
{
	return s->path;
}

const char *
stats_errstr(const stats *s)
{
	return s->errstr;
}

const char *
stats_register_errstr(const stats *s)
{
	return s->regerr[0] ? s->regerr : NULL;
}

static int
same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static stats_metric *
metric_add(stats *s, enum stats_type type, const char *name, const char *help,
           const char *label_name, const char *label_value, const char **why);

static stats_metric *
metric_new(stats *s, enum stats_type type, const char *name, const char *help,
           const char *label_name, const char *label_value)
{
	const char *why = "";
	stats_metric *m = metric_add(s, type, name, help, label_name, label_value, &why);
	if (!m && !s->regerr[0])
		snprintf(s->regerr, sizeof s->regerr, "stats: cannot register '%.100s%.60s': %s",
		         s->prefix, name ? name : "(null)", why);
	return m;
}

/* metric_new() without the error bookkeeping; *why says what failed. */
static stats_metric *
metric_add(stats *s, enum stats_type type, const char *name, const char *help,
           const char *label_name, const char *label_value, const char **why)
{
	if (!valid_name(name, 1) || (label_name && !valid_name(label_name, 0)) ||
	    (!label_name) != (!label_value)) {
		*why = "invalid name or label";
		return NULL;
	}
	size_t plen = strlen(s->prefix);
	for (size_t i = 0; i < s->n; i++) {
		stats_metric *m = s->m[i];
		if (strcmp(m->name + plen, name) != 0)
			continue;
		if (m->type != type) {
			*why = "already registered with another type";
			return NULL;
		}
		if (same_str(m->label_name, label_name) && same_str(m->label_value, label_value))
			return m;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		stats_metric **nm = realloc(s->m, cap * sizeof *nm);
		if (!nm) {
			*why = "out of memory";
			return NULL;
		}
		s->m = nm;
		s->cap = cap;
	}
	stats_metric *m = calloc(1, sizeof *m);
	if (!m) {
		*why = "out of memory";
		return NULL;
	}
	m->type = type;
	size_t n = plen + strlen(name) + 1;
	m->name = malloc(n);
	m->help = strdup(help ? help : "");
	m->label_name = label_name ? strdup(label_name) : NULL;
	m->label_value = label_value ? strdup(label_value) : NULL;
	if (type == ST_HIST)
		m->u.h = calloc(1, sizeof *m->u.h);
	if (!m->name || !m->help || (label_name && (!m->label_name || !m->label_value)) ||
	    (type == ST_HIST && !m->u.h)) {
		free(m->name);
		free(m->help);
		free(m->label_name);
		free(m->label_value);
		if (type == ST_HIST)
			free(m->u.h);
		free(m);
		*why = "out of memory";
		return NULL;
	}
	snprintf(m->name, n, "%s%s", s->prefix, name);
	for (char *p = m->help; *p; p++)
		if (*p == '\n')
			*p = ' ';
	s->m[s->n++] = m;
	return m;
}

stats_counter *
stats_counter_new(stats *s, const char *name, const char *help, const char *label_name,
                  const char *label_value)
{
	stats_metric *m = metric_new(s, ST_COUNTER, name, help, label_name, label_value);
	return m ? &m->u.c : &s->dummy;
}

stats_gauge *
stats_gauge_new(stats *s, const char *name, const char *help, const char *label_name,
                const char *label_value)
{
	stats_metric *m = metric_new(s, ST_GAUGE, name, help, label_name, label_value);
	return m ? &m->u.g : &s->dummy_g;
}

stats_hist *
stats_hist_new(stats *s, const char *name, const char *help, const char *label_name,
               const char *label_value)
{
	stats_metric *m = metric_new(s, ST_HIST, name, help, label_name, label_value);
	return m ? m->u.h : s->dummy_h;
}

stats_counter *
stats_error(stats *s, const char *reason)
{
	return stats_counter_new(s, "errors_total", "Records refused, by reason.", "reason", reason);
}

/* The middle of bucket i (its value when exact). */
static double
bucket_mid(unsigned i)
{
	if (i < 16)
		return i;
	unsigned e = 4 + (i - 16) / 8, k = (i - 16) % 8;
	double lo = ldexp(1.0, (int)e) + k * ldexp(1.0, (int)e - 3);
	return lo + ldexp(1.0, (int)e - 4);
}

double
stats_hist_quantile(const stats_hist *h, double q)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++)
		total += h->win[0][i] + h->win[1][i];
	if (total == 0)
		return NAN;
	/* The smallest value with at least q of the observations at or below. */
	double want = ceil(q * (double)total);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < STATS_HIST_BUCKETS; i++) {
		seen += h->win[0][i] + h->win[1][i];
		if ((double)seen >= want)
			return bucket_mid(i);
	}
	return bucket_mid(STATS_HIST_BUCKETS - 1);
}

int64_t
stats_clock_ms(void)
{
	return fp_mono_ms();
}

static int
addf(fp_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	return fp_buf_add(b, tmp, (size_t)n);
}

/* Prometheus text of a double: NaN, +Inf, -Inf, or %.17g trimmed. */
static int
add_double(fp_buf *b, double v)
{
	if (isnan(v))
		return fp_buf_adds(b, "NaN");
	if (isinf(v))
		return fp_buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	return addf(b, "%.15g", v);
}

static int
add_series(stats *s, fp_buf *b, const stats_metric *m, const char *suffix,
           const char *quantile)
{
	if (fp_buf_adds(b, m->name) < 0 || fp_buf_adds(b, suffix) < 0 ||
	    fp_buf_addc(b, '{') < 0 || fp_buf_adds(b, s->labels) < 0)
		return -1;
	if (m->label_name && (fp_buf_addc(b, ',') < 0 || fp_buf_adds(b, m->label_name) < 0 ||
	                      fp_buf_adds(b, "=\"") < 0 || stats_label_escape(b, m->label_value) < 0 ||
	                      fp_buf_addc(b, '"') < 0))
		return -1;
	if (quantile && addf(b, ",quantile=\"%s\"", quantile) < 0)
		return -1;
	return fp_buf_adds(b, "} ");
}

static int
render_metric(stats *s, fp_buf *b, const stats_metric *m)
{
	static const char *const qs[] = {"0.5", "0.99", "0.999"};
	static const double qv[] = {0.5, 0.99, 0.999};
	switch (m->type) {
	case ST_COUNTER:
		return add_series(s, b, m, "", NULL) < 0 ? -1 :
		       addf(b, "%llu\n", (unsigned long long)m->u.c.v);
	case ST_GAUGE:
		return add_series(s, b, m, "", NULL) < 0 || add_double(b, m->u.g.v) < 0 ? -1 :
		       fp_buf_addc(b, '\n');
	case ST_HIST:
		for (int i = 0; i < 3; i++)
			if (add_series(s, b, m, "", qs[i]) < 0 ||
			    add_double(b, stats_hist_quantile(m->u.h, qv[i])) < 0 ||
			    fp_buf_addc(b, '\n') < 0)
				return -1;
		return add_series(s, b, m, "_sum", NULL) < 0 ||
		       addf(b, "%llu\n", (unsigned long long)m->u.h->sum) < 0 ||
		       add_series(s, b, m, "_count", NULL) < 0 ||
		       addf(b, "%llu\n", (unsigned long long)m->u.h->count) < 0 ? -1 : 0;
	}
	return -1;
}

/* The whole exposition into s->out: metrics grouped by name, one HELP and
 * TYPE line per name, in registration order. */
static int
render(stats *s)
{
	static const char *const types[] = {"counter", "gauge", "summary"};
	fp_buf *b = &s->out;
	b->len = 0;
	for (size_t i = 0; i < s->n; i++) {
		const stats_metric *m = s->m[i];
		size_t j;
		for (j = 0; j < i; j++)
			if (strcmp(s->m[j]->name, m->name) == 0)
				break;
		if (j < i)
			continue; /* written with the first of its name */
		if (addf(b, "# HELP %s ", m->name) < 0 || fp_buf_adds(b, m->help) < 0 ||
		    addf(b, "\n# TYPE %s %s\n", m->name, types[m->type]) < 0)
			return -1;
		for (j = i; j < s->n; j++)
			if (strcmp(s->m[j]->name, m->name) == 0 && render_metric(s, b, s->m[j]) < 0)
				return -1;
	}
	return 0;
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
stats_write_text(const char *path, const void *p, size_t n, char *errstr, size_t errlen)
{
	char tmp[4096];
	/* Not *.prom, so the textfile collector never reads a partial file. */
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp) {
		snprintf(errstr, errlen, "unable to write '%s': name too long", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(errstr, errlen, "unable to write '%s': %s", tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, p, n) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		snprintf(errstr, errlen, "unable to write '%s': %s", tmp, strerror(e));
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		snprintf(errstr, errlen, "unable to write '%s': %s", path, strerror(e));
		return -1;
	}
	return 0;
}

int
stats_write(stats *s)
{
	if (!s->path)
		return 0;
	if (render(s) < 0) {
		seterr(s, "stats: out of memory");
		return -1;
	}
	return stats_write_text(s->path, s->out.p, s->out.len, s->errstr, sizeof s->errstr);
}

int
stats_final(stats *s)
{
	if (stats_dump_requested) {
		stats_dump_requested = 0;
		stats_dump(s, stderr);
	}
	return stats_write(s);
}

int
stats_dump(stats *s, FILE *f)
{
	if (render(s) < 0)
		return -1;
	if (s->out.len && fwrite(s->out.p, 1, s->out.len, f) != s->out.len)
		return -1;
	return fflush(f) == 0 ? 0 : -1;
}

int
stats_tick(stats *s, int64_t now_ms)
{
	int rc = 0;
	if (s->next_rotate == 0)
		s->next_rotate = now_ms + s->window_ms;
	if (s->next_write == 0)
		s->next_write = now_ms + s->write_ms;
	if (now_ms >= s->next_rotate) {
		for (size_t i = 0; i < s->n; i++)
			if (s->m[i]->type == ST_HIST) {
				stats_hist *h = s->m[i]->u.h;
				h->cur ^= 1;
				memset(h->win[h->cur], 0, sizeof h->win[h->cur]);
			}
		s->next_rotate = now_ms + s->window_ms;
	}
	if (stats_dump_requested) {
		stats_dump_requested = 0;
		stats_dump(s, stderr);
	}
	if (now_ms >= s->next_write) {
		s->next_write = now_ms + s->write_ms;
		rc = stats_write(s);
	}
	return rc;
}

static void
on_sigusr1(int sig)
{
	(void)sig;
	stats_dump_requested = 1;
}

int
stats_catch_sigusr1(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGUSR1, &sa, NULL);
}
