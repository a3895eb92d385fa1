/* kafka.c - shared Kafka helpers; see kafka.h. */
#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include "kafka.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json.h"
#include "mpraw.h"
#include "num.h"

static fk_log_fn *log_fn;
static int log_max = 7;

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *msg)
{
	(void)rk;
	if (log_fn && level <= log_max)
		log_fn(level, fac, msg);
}

/* Client errors (brokers down, timeouts) are transient: warnings. */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk, (void)opaque;
	if (!log_fn || log_max < 4)
		return;
	log_fn(4, "error", err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? "all brokers are down" : reason);
}

void
fk_set_log_level(int max_level)
{
	log_max = max_level;
}

void
fk_set_log(rd_kafka_conf_t *conf, fk_log_fn *fn)
{
	log_fn = fn;
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
}

void
fk_conf_init(fk_conf *c)
{
	c->rk = rd_kafka_conf_new();
	c->user = NULL;
	c->nuser = 0;
}

void
fk_conf_release(fk_conf *c)
{
	if (c->rk)
		rd_kafka_conf_destroy(c->rk);
	c->rk = NULL;
	for (size_t i = 0; i < c->nuser; i++)
		free(c->user[i]);
	free(c->user);
	c->user = NULL;
	c->nuser = 0;
}

int
fk_conf_user(const fk_conf *c, const char *prop)
{
	for (size_t i = 0; i < c->nuser; i++)
		if (strcmp(c->user[i], prop) == 0)
			return 1;
	return 0;
}

static int
conf_set(fk_conf *c, const char *name, const char *val, int user, char *errstr, size_t errlen)
{
	char e[512];
	if (strncmp(name, "topic.", 6) == 0)
		name += 6;
	if (rd_kafka_conf_set(c->rk, name, val, e, sizeof e) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errlen, "%s", e);
		return -1;
	}
	if (user && !fk_conf_user(c, name)) {
		char **u = realloc(c->user, (c->nuser + 1) * sizeof *u);
		if (!u || !(u[c->nuser] = strdup(name))) {
			if (u)
				c->user = u;
			snprintf(errstr, errlen, "out of memory");
			return -1;
		}
		c->user = u;
		c->nuser++;
	}
	return 0;
}

int
fk_conf_set_kv(fk_conf *c, const char *kv, char *errstr, size_t errlen)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		snprintf(errstr, errlen, "expected prop=val, got '%s'", kv);
		return -1;
	}
	char name[256];
	size_t n = (size_t)(eq - kv);
	if (n >= sizeof name) {
		snprintf(errstr, errlen, "property name too long");
		return -1;
	}
	memcpy(name, kv, n);
	name[n] = 0;
	return conf_set(c, name, eq + 1, 1, errstr, errlen);
}

int
fk_conf_default(fk_conf *c, const char *prop, const char *val, char *errstr, size_t errlen)
{
	if (fk_conf_user(c, prop))
		return 0;
	return conf_set(c, prop, val, 0, errstr, errlen);
}

int
fk_conf_file(fk_conf *c, const char *path, char *errstr, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(errstr, errlen, "unable to open '%s': %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int rc = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = 0;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == 0 || *s == '#')
			continue;
		/* "name = value": blanks around the '=' are not part of either */
		char *eq = strchr(s, '='), *ne = eq;
		if (eq) {
			while (ne > s && isspace((unsigned char)ne[-1]))
				ne--;
			char *v = eq + 1;
			while (isspace((unsigned char)*v))
				v++;
			*ne++ = '=';
			memmove(ne, v, strlen(v) + 1);
		}
		char e[400];
		if (fk_conf_set_kv(c, s, e, sizeof e) < 0) {
			snprintf(errstr, errlen, "%s:%lu: %s", path, lineno, e);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(errstr, errlen, "error reading '%s': %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

int
fk_offset_parse(const char *s, fk_offset *start, int64_t *stop_ms, char *errstr, size_t errlen)
{
	char e[160];
	if (strcmp(s, "beginning") == 0) {
		*start = (fk_offset){FK_OFF_BEGINNING, 0};
		return 0;
	}
	if (strcmp(s, "end") == 0) {
		*start = (fk_offset){FK_OFF_END, 0};
		return 0;
	}
	if (strcmp(s, "stored") == 0) {
		*start = (fk_offset){FK_OFF_STORED, 0};
		return 0;
	}
	if ((s[0] == 's' || s[0] == 'e') && s[1] == '@') {
		int64_t ms;
		if (fp_parse_i64(s + 2, 0, INT64_MAX, &ms, e, sizeof e) < 0) {
			snprintf(errstr, errlen, "bad timestamp in '%s': %s", s, e);
			return -1;
		}
		if (s[0] == 'e') {
			*stop_ms = ms;
			return 1;
		}
		*start = (fk_offset){FK_OFF_TIME, ms};
		return 0;
	}
	if (s[0] == '-') {
		int64_t v;
		if (fp_parse_i64(s + 1, 1, INT64_MAX / 2, &v, e, sizeof e) < 0) {
			snprintf(errstr, errlen, "bad relative offset '%s': %s", s, e);
			return -1;
		}
		*start = (fk_offset){FK_OFF_TAIL, v};
		return 0;
	}
	int64_t v;
	if (fp_parse_i64(s, 0, INT64_MAX / 2, &v, e, sizeof e) < 0) {
		snprintf(errstr, errlen, "bad offset '%s' (expected beginning, end, stored, N, -N, "
		         "s@MS or e@MS)", s);
		return -1;
	}
	*start = (fk_offset){FK_OFF_ABS, v};
	return 0;
}

int
fk_resolve_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                   const fk_offset *spec, int timeout_ms, char *errstr, size_t errlen)
{
	rd_kafka_resp_err_t err;
	if (spec->kind == FK_OFF_TIME) {
		rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(parts->cnt);
		for (int i = 0; i < parts->cnt; i++)
			if (parts->elems[i].offset < 0)
				rd_kafka_topic_partition_list_add(q, parts->elems[i].topic,
				                                  parts->elems[i].partition)->offset = spec->value;
		err = q->cnt ? rd_kafka_offsets_for_times(rk, q, timeout_ms) : RD_KAFKA_RESP_ERR_NO_ERROR;
		if (err) {
			snprintf(errstr, errlen, "unable to look up offsets for time %" PRId64 ": %s",
			         spec->value, rd_kafka_err2str(err));
			rd_kafka_topic_partition_list_destroy(q);
			return -1;
		}
		for (int i = 0; i < q->cnt; i++) {
			rd_kafka_topic_partition_t *e = &q->elems[i];
			if (e->err) {
				snprintf(errstr, errlen, "unable to look up the offset for time %" PRId64
				         " in '%s' [%" PRId32 "]: %s", spec->value, e->topic,
				         e->partition, rd_kafka_err2str(e->err));
				rd_kafka_topic_partition_list_destroy(q);
				return -1;
			}
			int64_t off = e->offset;
			if (off < 0) { /* no message that late: start at the end */
				int64_t lo, hi;
				err = rd_kafka_query_watermark_offsets(rk, e->topic, e->partition,
				                                       &lo, &hi, timeout_ms);
				if (err) {
					snprintf(errstr, errlen, "unable to query offsets of '%s' [%" PRId32
					         "]: %s", e->topic, e->partition, rd_kafka_err2str(err));
					rd_kafka_topic_partition_list_destroy(q);
					return -1;
				}
				off = hi;
			}
			rd_kafka_topic_partition_list_find(parts, e->topic, e->partition)->offset = off;
		}
		rd_kafka_topic_partition_list_destroy(q);
		return 0;
	}
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		if (p->offset >= 0)
			continue;
		if (spec->kind == FK_OFF_ABS) {
			p->offset = spec->value;
			continue;
		}
		int64_t lo, hi;
		err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, timeout_ms);
		if (err) {
			snprintf(errstr, errlen, "unable to query offsets of '%s' [%" PRId32 "]: %s",
			         p->topic, p->partition, rd_kafka_err2str(err));
			return -1;
		}
		switch (spec->kind) {
		case FK_OFF_END:
			p->offset = hi;
			break;
		case FK_OFF_TAIL:
			p->offset = hi - spec->value > lo ? hi - spec->value : lo;
			break;
		default:
			p->offset = lo;
			break;
		}
	}
	return 0;
}

int
fk_start_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int group,
                 fk_start_hook *hook, void *hook_ctx, const fk_offset *spec,
                 int timeout_ms, char *errstr, size_t errlen)
{
	for (int i = 0; i < parts->cnt; i++)
		parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
	if (group && parts->cnt) {
		rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, timeout_ms);
		if (err) {
			snprintf(errstr, errlen, "unable to fetch the group's committed offsets: %s",
			         rd_kafka_err2str(err));
			return -1;
		}
		for (int i = 0; i < parts->cnt; i++) {
			rd_kafka_topic_partition_t *p = &parts->elems[i];
			if (p->err) {
				snprintf(errstr, errlen, "unable to fetch the committed offset of '%s' [%"
				         PRId32 "]: %s", p->topic, p->partition, rd_kafka_err2str(p->err));
				return -1;
			}
		}
	}
	if (hook && hook(hook_ctx, parts, errstr, errlen) < 0)
		return -1;
	return fk_resolve_offsets(rk, parts, spec, timeout_ms, errstr, errlen);
}

void
fk_parts_release(fk_parts *t)
{
	for (int i = 0; i < t->n; i++)
		free(t->v[i].topic);
	free(t->v);
	t->v = NULL;
	t->n = t->last = 0;
}

int
fk_parts_add(fk_parts *t, const rd_kafka_topic_partition_list_t *list)
{
	fk_part *nv = realloc(t->v, (size_t)(t->n + list->cnt + 1) * sizeof *nv);
	if (!nv)
		return -1;
	t->v = nv;
	for (int i = 0; i < list->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &list->elems[i];
		fk_part *p = &t->v[t->n];
		if (!(p->topic = strdup(e->topic)))
			return -1;
		p->partition = e->partition;
		p->next = e->offset;
		p->eof = p->done = 0;
		t->n++;
	}
	return 0;
}

void
fk_parts_remove(fk_parts *t, const rd_kafka_topic_partition_list_t *list)
{
	for (int i = 0; i < list->cnt; i++) {
		fk_part *p = fk_parts_find(t, list->elems[i].topic, list->elems[i].partition);
		if (p) {
			free(p->topic);
			*p = t->v[--t->n];
		}
	}
	t->last = 0;
}

fk_part *
fk_parts_find(fk_parts *t, const char *topic, int32_t partition)
{
	if (t->last < t->n && t->v[t->last].partition == partition &&
	    strcmp(t->v[t->last].topic, topic) == 0)
		return &t->v[t->last];
	for (int i = 0; i < t->n; i++)
		if (t->v[i].partition == partition && strcmp(t->v[i].topic, topic) == 0) {
			t->last = i;
			return &t->v[i];
		}
	return NULL;
}

int
fk_barrier(const fk_parts *t, int64_t epoch, fp_buf *b)
{
	int rc = mpw_map(b, 3) | mpw_str(b, "@ctl", 4) | mpw_str(b, "barrier", 7) |
	         mpw_str(b, "@epoch", 6) | mpw_int(b, epoch) |
	         mpw_str(b, "@pos", 4) | mpw_array(b, (uint32_t)t->n);
	for (int i = 0; i < t->n; i++) {
		const fk_part *p = &t->v[i];
		rc |= mpw_array(b, 3) | mpw_str(b, p->topic, strlen(p->topic)) |
		      mpw_int(b, p->partition) | mpw_int(b, p->next);
	}
	return rc ? -1 : 0;
}

/* Smallest msgpack encodings (as json.h's mpw_*), written into space
 * reserved beforehand: one reservation per frame. */
static uint8_t *
enc_be(uint8_t *p, uint8_t tag, uint64_t v, int n)
{
	*p++ = tag;
	for (int i = n - 1; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *
enc_int(uint8_t *p, int64_t v)
{
	if (v >= 0) {
		uint64_t u = (uint64_t)v;
		if (u <= 0x7f) {
			*p++ = (uint8_t)u;
			return p;
		}
		return u <= 0xff ? enc_be(p, 0xcc, u, 1) : u <= 0xffff ? enc_be(p, 0xcd, u, 2)
		       : u <= 0xffffffffu ? enc_be(p, 0xce, u, 4) : enc_be(p, 0xcf, u, 8);
	}
	if (v >= -32) {
		*p++ = (uint8_t)(int8_t)v;
		return p;
	}
	return v >= INT8_MIN ? enc_be(p, 0xd0, (uint8_t)(int8_t)v, 1)
	       : v >= INT16_MIN ? enc_be(p, 0xd1, (uint16_t)(int16_t)v, 2)
	       : v >= INT32_MIN ? enc_be(p, 0xd2, (uint32_t)(int32_t)v, 4)
	       : enc_be(p, 0xd3, (uint64_t)v, 8);
}

static uint8_t *
enc_raw(uint8_t *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static uint8_t *
enc_str(uint8_t *p, const char *s, size_t n)
{
	if (n <= 31)
		*p++ = (uint8_t)(0xa0 | n);
	else
		p = n <= 0xff ? enc_be(p, 0xd9, n, 1) : n <= 0xffff ? enc_be(p, 0xda, n, 2)
		    : enc_be(p, 0xdb, n, 4);
	return enc_raw(p, s, n);
}

/* bin, or nil for a NULL pointer. */
static uint8_t *
enc_bin_or_nil(uint8_t *p, const void *s, size_t n)
{
	if (!s) {
		*p++ = 0xc0;
		return p;
	}
	p = n <= 0xff ? enc_be(p, 0xc4, n, 1) : n <= 0xffff ? enc_be(p, 0xc5, n, 2)
	    : enc_be(p, 0xc6, n, 4);
	return enc_raw(p, s, n);
}

static int
put_bytes_or_nil(fp_buf *out, const void *p, size_t n)
{
	return p ? mpw_bin(out, p, n) : mpw_nil(out);
}

int
fk_msg_frame(const rd_kafka_message_t *m, int64_t in_us, fp_buf *out)
{
	rd_kafka_headers_t *hdrs = NULL;
	size_t nh = 0;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
		nh = rd_kafka_header_cnt(hdrs);
	const char *topic = rd_kafka_topic_name(m->rkt);
	size_t tlen = strlen(topic);
	size_t klen = m->key ? m->key_len : 0, vlen = m->payload ? m->len : 0;
	if (tlen > 0xffffffffu || klen > 0xffffffffu || vlen > 0xffffffffu)
		return -1;
	/* map 1, keys 25, array 1, 4 ints of at most 9 and 3 length prefixes
	 * of at most 5 bytes: 78 */
	if (fp_buf_reserve(out, 80 + tlen + klen + vlen) < 0)
		return -1;
	uint8_t *p = out->p + out->len;
	*p++ = (uint8_t)(0x80 | (nh ? 6 : 5));
	p = enc_raw(p, "\xa4@src\x93", 6);
	p = enc_str(p, topic, tlen);
	p = enc_int(p, m->partition);
	p = enc_int(p, m->offset);
	p = enc_raw(p, "\xa3@ts", 4);
	p = enc_int(p, rd_kafka_message_timestamp(m, NULL));
	p = enc_raw(p, "\xa3@in", 4);
	p = enc_int(p, in_us);
	p = enc_raw(p, "\xa3key", 4);
	p = enc_bin_or_nil(p, m->key, klen);
	p = enc_raw(p, "\xa5value", 6);
	p = enc_bin_or_nil(p, m->payload, vlen);
	out->len = (size_t)(p - out->p);
	if (!nh)
		return 0;
	int rc = mpw_str(out, "headers", 7) | mpw_array(out, (uint32_t)nh);
	for (size_t i = 0; i < nh; i++) {
		const char *name;
		const void *val;
		size_t hlen;
		rd_kafka_header_get_all(hdrs, i, &name, &val, &hlen);
		rc |= mpw_array(out, 2) | mpw_str(out, name, strlen(name)) |
		      put_bytes_or_nil(out, val, hlen);
	}
	return rc ? -1 : 0;
}

/* A numeric property of a running client's configuration. */
static int
conf_number(rd_kafka_t *rk, const char *name, double *v, char *errstr, size_t errlen)
{
	char s[64];
	size_t n = sizeof s;
	char *end;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, s, &n) != RD_KAFKA_CONF_OK ||
	    (*v = strtod(s, &end), end == s || *end)) {
		snprintf(errstr, errlen, "unable to read the property '%s'", name);
		return -1;
	}
	return 0;
}

int
fk_refill_init(fk_refill *r, rd_kafka_t *rk, char *errstr, size_t errlen)
{
	memset(r, 0, sizeof *r);
	if (conf_number(rk, "queued.max.messages.kbytes", &r->max_bytes, errstr, errlen) < 0 ||
	    conf_number(rk, "queued.min.messages", &r->max_msgs, errstr, errlen) < 0)
		return -1;
	r->max_bytes *= 1024;
	r->q = rd_kafka_queue_get_consumer(rk);
	return 0;
}

void
fk_refill_release(fk_refill *r)
{
	if (r->q)
		rd_kafka_queue_destroy(r->q);
	r->q = NULL;
}

int
fk_refill_check(fk_refill *r, rd_kafka_t *rk, const fk_parts *t, int timeout_ms)
{
	if (!r->q || t->n == 0)
		return 0;
	double len = (double)rd_kafka_queue_length(r->q);
	/* the queue's size in bytes, estimated from the mean message so far */
	double bytes = len * (r->msgs ? (double)r->bytes / (double)r->msgs : 0);
	if (bytes >= 0.5 * r->max_bytes || len >= 0.5 * r->max_msgs) {
		r->full = 1;
		return 0;
	}
	if (!r->full || bytes >= 0.25 * r->max_bytes || len >= 0.25 * r->max_msgs)
		return 0;
	r->full = 0;
	r->wakes++;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->n);
	for (int i = 0; i < t->n; i++)
		rd_kafka_topic_partition_list_add(l, t->v[i].topic, t->v[i].partition)->offset =
			RD_KAFKA_OFFSET_END; /* as a time: the latest offset */
	/* Errors (a broker down, a timeout) do not matter: the request was
	 * queued to each leader's thread, and that is what wakes it. */
	rd_kafka_offsets_for_times(rk, l, timeout_ms);
	rd_kafka_topic_partition_list_destroy(l);
	return 1;
}

/* The value of a hex digit, -1 for anything else. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
fk_format_check(const char *fmt, char *errstr, size_t errlen)
{
	for (size_t i = 0; fmt[i]; i++) {
		if (fmt[i] == '%') {
			if (!fmt[i + 1] || !strchr("sSkKtpoTh%", fmt[i + 1])) {
				snprintf(errstr, errlen, "unknown format token '%%%.1s' at column %zu "
				         "(known: %%s %%S %%k %%K %%t %%p %%o %%T %%h %%%%)", fmt + i + 1, i + 1);
				return -1;
			}
			i++;
		} else if (fmt[i] == '\\') {
			char c = fmt[i + 1];
			if (c == 'x') {
				if (hexval(fmt[i + 2]) < 0) {
					snprintf(errstr, errlen, "bad \\x escape at column %zu", i + 1);
					return -1;
				}
			} else if (!c || !strchr("nrt\\", c)) {
				snprintf(errstr, errlen, "unknown escape '\\%.1s' at column %zu", fmt + i + 1, i + 1);
				return -1;
			}
			i++;
		}
	}
	return 0;
}

static int
add_i64(fp_buf *out, int64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
	return fp_buf_add(out, tmp, (size_t)n);
}

int
fk_msg_format(const rd_kafka_message_t *m, const char *fmt, fp_buf *out)
{
	int rc = 0;
	for (size_t i = 0; fmt[i] && rc == 0; i++) {
		char c = fmt[i];
		if (c == '\\' && fmt[i + 1]) {
			c = fmt[++i];
			if (c == 'n')
				rc = fp_buf_addc(out, '\n');
			else if (c == 'r')
				rc = fp_buf_addc(out, '\r');
			else if (c == 't')
				rc = fp_buf_addc(out, '\t');
			else if (c == 'x') {
				int v = 0, d;
				while ((d = hexval(fmt[i + 1])) >= 0 && v < 16)
					v = v * 16 + d, i++;
				rc = fp_buf_addc(out, (uint8_t)v);
			} else
				rc = fp_buf_addc(out, (uint8_t)c);
			continue;
		}
		if (c != '%' || !fmt[i + 1]) {
			rc = fp_buf_addc(out, (uint8_t)c);
			continue;
		}
		switch (fmt[++i]) {
		case 's':
			rc = fp_buf_add(out, m->payload, m->payload ? m->len : 0);
			break;
		case 'S':
			rc = add_i64(out, m->payload ? (int64_t)m->len : -1);
			break;
		case 'k':
			rc = fp_buf_add(out, m->key, m->key ? m->key_len : 0);
			break;
		case 'K':
			rc = add_i64(out, m->key ? (int64_t)m->key_len : -1);
			break;
		case 't':
			rc = fp_buf_adds(out, rd_kafka_topic_name(m->rkt));
			break;
		case 'p':
			rc = add_i64(out, m->partition);
			break;
		case 'o':
			rc = add_i64(out, m->offset);
			break;
		case 'T':
			rc = add_i64(out, rd_kafka_message_timestamp(m, NULL));
			break;
		case 'h': {
			rd_kafka_headers_t *hdrs = NULL;
			if (rd_kafka_message_headers(m, &hdrs) || !hdrs)
				break;
			for (size_t h = 0; h < rd_kafka_header_cnt(hdrs) && rc == 0; h++) {
				const char *name;
				const void *val;
				size_t vlen;
				rd_kafka_header_get_all(hdrs, h, &name, &val, &vlen);
				if (h)
					rc |= fp_buf_addc(out, ',');
				rc |= fp_buf_adds(out, name) | fp_buf_addc(out, '=');
				rc |= val ? fp_buf_add(out, val, vlen) : fp_buf_adds(out, "NULL"); /* as kcat */
			}
			break;
		}
		default:
			rc = fp_buf_addc(out, (uint8_t)fmt[i]);
			break;
		}
	}
	return rc ? -1 : 0;
}

static int
put_text_or_bin(fp_buf *b, const void *p, size_t n)
{
	if (!p)
		return mpw_nil(b);
	return utf8_valid(p, n) ? mpw_str(b, p, n) : mpw_bin(b, p, n);
}

int
fk_msg_json(const rd_kafka_message_t *m, fp_buf *out)
{
	fp_buf b = FP_BUF_INIT;
	rd_kafka_timestamp_type_t tst;
	int64_t ts = rd_kafka_message_timestamp(m, &tst);
	const char *topic = rd_kafka_topic_name(m->rkt);
	const char *tstype = tst == RD_KAFKA_TIMESTAMP_CREATE_TIME ? "create"
	                     : tst == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "logappend" : "unknown";
	rd_kafka_headers_t *hdrs = NULL;
	size_t nh = 0;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
		nh = rd_kafka_header_cnt(hdrs);
	int rc = mpw_map(&b, nh ? 9 : 8) |
	         mpw_str(&b, "topic", 5) | mpw_str(&b, topic, strlen(topic)) |
	         mpw_str(&b, "partition", 9) | mpw_int(&b, m->partition) |
	         mpw_str(&b, "offset", 6) | mpw_int(&b, m->offset) |
	         mpw_str(&b, "tstype", 6) | mpw_str(&b, tstype, strlen(tstype)) |
	         mpw_str(&b, "ts", 2) | mpw_int(&b, ts) |
	         mpw_str(&b, "broker", 6) | mpw_int(&b, rd_kafka_message_broker_id(m));
	if (nh) {
		rc |= mpw_str(&b, "headers", 7) | mpw_array(&b, (uint32_t)(2 * nh));
		for (size_t i = 0; i < nh; i++) {
			const char *name;
			const void *val;
			size_t vlen;
			rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen);
			rc |= mpw_str(&b, name, strlen(name)) | put_text_or_bin(&b, val, vlen);
		}
	}
	rc |= mpw_str(&b, "key", 3) | put_text_or_bin(&b, m->key, m->key_len) |
	      mpw_str(&b, "payload", 7) | put_text_or_bin(&b, m->payload, m->len);
	if (rc == 0)
		rc = mp_to_json(b.p, b.len, out) | fp_buf_addc(out, '\n');
	fp_buf_release(&b);
	return rc ? -1 : 0;
}

int
fk_value_bytes(const uint8_t *v, size_t n, fp_buf *out, int *isnil)
{
	const char *s;
	const uint8_t *b;
	size_t len;
	int64_t i;
	uint64_t u;
	double d;
	char num[40];
	out->len = 0;
	*isnil = n > 0 && v[0] == 0xc0;
	if (*isnil)
		return 0;
	if (mp_read_str(v, n, &s, &len) == 0)
		return fp_buf_add(out, s, len);
	if (mp_read_bin(v, n, &b, &len) == 0)
		return fp_buf_add(out, b, len);
	if (mp_read_int(v, n, &i) == 0)
		return fp_buf_add(out, num, (size_t)snprintf(num, sizeof num, "%" PRId64, i));
	if (mp_read_uint(v, n, &u) == 0)
		return fp_buf_add(out, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, u));
	if (n > 0 && (v[0] == 0xca || v[0] == 0xcb) && mp_read_number(v, n, &d) == 0)
		return fp_buf_add(out, num, (size_t)snprintf(num, sizeof num, "%.17g", d));
	return mp_to_json(v, n, out);
}

int
fk_is_raw_message(const uint8_t *body, size_t len)
{
	static const char *const keys[] = {"@src", "@ts", "@in", "key", "value", "headers"};
	uint32_t cnt;
	size_t hdr, vlen;
	const uint8_t *v;
	if (mp_read_map(body, len, &cnt, &hdr) < 0 || cnt > 6 ||
	    !mp_map_find(body, len, "@src", 4, &v, &vlen) ||
	    !mp_map_find(body, len, "value", 5, &v, &vlen) ||
	    !(v[0] == 0xc0 || v[0] == 0xc4 || v[0] == 0xc5 || v[0] == 0xc6))
		return 0;
	size_t off = hdr;
	for (uint32_t i = 0; i < cnt; i++) {
		const char *k;
		size_t klen;
		int known = 0;
		if (mp_read_str(body + off, len - off, &k, &klen) < 0)
			return 0;
		for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
			known |= strlen(keys[j]) == klen && memcmp(keys[j], k, klen) == 0;
		if (!known)
			return 0;
		off += mp_skip(body + off, len - off);
		off += mp_skip(body + off, len - off);
	}
	return 1;
}

int
fk_raw_headers(const uint8_t *body, size_t len, rd_kafka_headers_t **hs, fp_buf *tmp,
               char *errstr, size_t errlen)
{
	const uint8_t *v;
	size_t vlen, hdr;
	uint32_t cnt;
	*hs = NULL;
	if (!mp_map_find(body, len, "headers", 7, &v, &vlen))
		return 0;
	if (mp_read_array(v, vlen, &cnt, &hdr) < 0)
		goto bad;
	*hs = rd_kafka_headers_new(cnt);
	size_t off = hdr;
	for (uint32_t i = 0; i < cnt; i++) {
		uint32_t two;
		size_t h2, nlen;
		const char *name;
		int isnil;
		if (mp_read_array(v + off, vlen - off, &two, &h2) < 0 || two != 2 ||
		    mp_read_str(v + off + h2, vlen - off - h2, &name, &nlen) < 0)
			goto bad;
		const uint8_t *hv = v + off + h2 + mp_skip(v + off + h2, vlen - off - h2);
		if (fk_value_bytes(hv, vlen - (size_t)(hv - v), tmp, &isnil) < 0) {
			snprintf(errstr, errlen, "out of memory");
			rd_kafka_headers_destroy(*hs);
			*hs = NULL;
			return -1;
		}
		rd_kafka_header_add(*hs, name, (ssize_t)nlen, isnil ? NULL : tmp->p,
		                    isnil ? 0 : (ssize_t)tmp->len);
		off += mp_skip(v + off, vlen - off);
	}
	return 0;
bad:
	if (*hs)
		rd_kafka_headers_destroy(*hs);
	*hs = NULL;
	snprintf(errstr, errlen, "headers must be [[name, value], ...]");
	return -1;
}

const char *
fk_err_name(rd_kafka_resp_err_t err)
{
	const struct rd_kafka_err_desc *d;
	size_t n;
	rd_kafka_get_err_descs(&d, &n);
	for (size_t i = 0; i < n; i++)
		if (d[i].name && d[i].code == err)
			return d[i].name;
	return "UNKNOWN";
}

int
fk_err_parse(const char *name, rd_kafka_resp_err_t *err)
{
	int64_t v;
	if (fp_parse_i64(name, -200, 1000, &v, NULL, 0) == 0) {
		*err = (rd_kafka_resp_err_t)v;
		return 0;
	}
	if (strncasecmp(name, "RD_KAFKA_RESP_ERR_", 18) == 0)
		name += 18;
	const struct rd_kafka_err_desc *d;
	size_t n;
	rd_kafka_get_err_descs(&d, &n);
	for (size_t i = 0; i < n; i++)
		if (d[i].name && strcasecmp(d[i].name, name) == 0) {
			*err = d[i].code;
			return 0;
		}
	return -1;
}

/* Kafka protocol API keys (KIP-4 and the protocol guide). */
static const char *const api_names[] = {
	"Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica",
	"UpdateMetadata", "ControlledShutdown", "OffsetCommit", "OffsetFetch",
	"FindCoordinator", "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup",
	"DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions", "CreateTopics",
	"DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch",
	"AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers",
	"TxnOffsetCommit", "DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs",
	"AlterConfigs",
};
#define NAPI (sizeof api_names / sizeof api_names[0])

int
fk_api_parse(const char *name, int16_t *key)
{
	int64_t v;
	if (fp_parse_i64(name, 0, 1000, &v, NULL, 0) == 0) {
		*key = (int16_t)v;
		return 0;
	}
	for (size_t i = 0; i < NAPI; i++)
		if (strcasecmp(api_names[i], name) == 0) {
			*key = (int16_t)i;
			return 0;
		}
	return -1;
}

const char *
fk_api_name(int16_t key)
{
	return key >= 0 && (size_t)key < NAPI ? api_names[key] : NULL;
}

static volatile sig_atomic_t *stop_flag;

static void
on_stop(int sig)
{
	(void)sig;
	if (stop_flag)
		(*stop_flag)++;
}

void
fk_catch_stop(volatile sig_atomic_t *flag)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	stop_flag = flag;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int64_t
fk_now_us(void)
{
	return fp_wall_us();
}
