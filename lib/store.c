/* store.c - Redis URL, connection, stored offsets; see store.h. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

#define SETERR(...) snprintf(errstr, errlen, __VA_ARGS__)

static int
copy_part(char *dst, size_t dlen, const char *s, size_t n)
{
	if (n >= dlen)
		return -1;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

int
store_url_parse(const char *s, store_url *u, char *errstr, size_t errlen)
{
	memset(u, 0, sizeof *u);
	u->port = 6379;
	if (!strncmp(s, "unix://", 7)) {
		const char *p = s + 7, *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || p[0] != '/' || copy_part(u->path, sizeof u->path, p, n) < 0) {
			SETERR("invalid store URL '%s': expected unix:///path/to/socket", s);
			return -1;
		}
		if (q) {
			int64_t db;
			if (strncmp(q, "?db=", 4) || fp_parse_i64(q + 4, 0, 1 << 20, &db, NULL, 0) < 0) {
				SETERR("invalid store URL '%s': expected ?db=N after the path", s);
				return -1;
			}
			u->db = (int)db;
		}
		return 0;
	}
	if (strncmp(s, "redis://", 8)) {
		SETERR("invalid store URL '%s': expected redis://host:port/db or unix:///path", s);
		return -1;
	}
	const char *p = s + 8;
	const char *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon) {
			SETERR("invalid store URL: expected [user]:password@ before the host");
			return -1;
		}
		if (copy_part(u->user, sizeof u->user, p, (size_t)(colon - p)) < 0 ||
		    copy_part(u->password, sizeof u->password, colon + 1, (size_t)(at - colon - 1)) < 0) {
			SETERR("invalid store URL: user or password too long");
			return -1;
		}
		p = at + 1;
	}
	const char *slash = strchr(p, '/');
	size_t hl = slash ? (size_t)(slash - p) : strlen(p);
	const char *colon = memchr(p, ':', hl);
	size_t hostlen = colon ? (size_t)(colon - p) : hl;
	if (hostlen == 0 || copy_part(u->host, sizeof u->host, p, hostlen) < 0) {
		SETERR("invalid store URL '%s': missing host", s);
		return -1;
	}
	if (colon) {
		char port[16];
		int64_t v;
		if (copy_part(port, sizeof port, colon + 1, hl - hostlen - 1) < 0 ||
		    fp_parse_i64(port, 1, 65535, &v, NULL, 0) < 0) {
			SETERR("invalid store URL '%s': bad port", s);
			return -1;
		}
		u->port = (int)v;
	}
	if (slash && slash[1]) {
		int64_t db;
		if (fp_parse_i64(slash + 1, 0, 1 << 20, &db, NULL, 0) < 0) {
			SETERR("invalid store URL '%s': bad database number", s);
			return -1;
		}
		u->db = (int)db;
	}
	return 0;
}

const char *
store_url_default(const char *flag)
{
	if (flag && *flag)
		return flag;
	const char *e = getenv("FP_REDIS");
	return e && *e ? e : NULL;
}

redisContext *
store_connect(const store_url *u, int connect_ms, int command_ms, char *errstr, size_t errlen)
{
	struct timeval ct = {connect_ms / 1000, (connect_ms % 1000) * 1000};
	struct timeval tv = {command_ms / 1000, (command_ms % 1000) * 1000};
	redisContext *c = u->path[0] ? redisConnectUnixWithTimeout(u->path, ct)
	                             : redisConnectWithTimeout(u->host, u->port, ct);
	if (!c) {
		SETERR("out of memory connecting to Redis");
		return NULL;
	}
	if (c->err) {
		if (u->path[0])
			SETERR("unable to connect to Redis at '%s': %s", u->path, c->errstr);
		else
			SETERR("unable to connect to Redis at %s:%d: %s", u->host, u->port, c->errstr);
		redisFree(c);
		return NULL;
	}
	if (command_ms > 0 && redisSetTimeout(c, tv) != REDIS_OK) {
		SETERR("unable to set the Redis command timeout: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	redisReply *r;
	if (u->password[0]) {
		if (u->user[0])
			r = redisCommand(c, "AUTH %s %s", u->user, u->password);
		else
			r = redisCommand(c, "AUTH %s", u->password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			SETERR("Redis AUTH failed: %s", r ? r->str : c->errstr);
			if (r)
				freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	if (u->db) {
		r = redisCommand(c, "SELECT %d", u->db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			SETERR("Redis SELECT %d failed: %s", u->db, r ? r->str : c->errstr);
			if (r)
				freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

int
store_pos_parse(const char *s, size_t n, store_pos *p)
{
	char buf[48];
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *colon = strchr(buf, ':');
	p->index = 0;
	if (colon) {
		*colon = 0;
		if (fp_parse_i64(colon + 1, 0, INT64_MAX, &p->index, NULL, 0) < 0)
			return -1;
	}
	return fp_parse_i64(buf, 0, INT64_MAX, &p->offset, NULL, 0);
}

void
store_pos_format(store_pos p, char *buf, size_t len)
{
	if (p.index)
		snprintf(buf, len, "%lld:%lld", (long long)p.offset, (long long)p.index);
	else
		snprintf(buf, len, "%lld", (long long)p.offset);
}

const char *
store_pipeline(void)
{
	const char *e = getenv("FP_PIPELINE");
	return e && *e ? e : "default";
}

void
store_offsets_key(const char *pipeline, char *buf, size_t len)
{
	snprintf(buf, len, "fp:%s:offsets", pipeline);
}

int
store_offset_field(const char *topic, size_t tlen, int32_t partition, int shard,
                   int nshards, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%.*s/%d/%d/%d", (int)tlen, topic, (int)partition, shard, nshards);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

int
store_offset_field_parse(const char *field, size_t flen, const char **topic, size_t *tlen,
                         int32_t *partition, int *shard, int *nshards)
{
	/* The topic may contain '/'? Kafka topic names cannot ([a-zA-Z0-9._-]),
	 * but parse from the right to be safe. */
	const char *end = field + flen, *s[3];
	const char *p = end;
	for (int i = 2; i >= 0; i--) {
		while (p > field && p[-1] != '/')
			p--;
		if (p == field)
			return -1;
		s[i] = p;
		p--;
	}
	*topic = field;
	*tlen = (size_t)(p - field);
	int64_t v[3];
	for (int i = 0; i < 3; i++) {
		const char *e = i < 2 ? s[i + 1] - 1 : end;
		char num[24];
		size_t n = (size_t)(e - s[i]);
		if (n == 0 || n >= sizeof num)
			return -1;
		memcpy(num, s[i], n);
		num[n] = 0;
		if (fp_parse_i64(num, 0, INT32_MAX, &v[i], NULL, 0) < 0)
			return -1;
	}
	if (*tlen == 0 || v[2] < 1 || v[1] >= v[2])
		return -1;
	*partition = (int32_t)v[0];
	*shard = (int)v[1];
	*nshards = (int)v[2];
	return 0;
}

int
store_read_offsets(redisContext *c, const char *pipeline, store_offset_fn fn, void *arg,
                   char *errstr, size_t errlen)
{
	char key[300];
	store_offsets_key(pipeline, key, sizeof key);
	redisReply *r = redisCommand(c, "HGETALL %b", key, strlen(key));
	if (!r) {
		SETERR("reading '%s' from Redis: %s", key, c->errstr);
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		SETERR("reading '%s' from Redis: %s", key,
		       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return -1;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		redisReply *f = r->element[i], *v = r->element[i + 1];
		const char *topic;
		size_t tlen;
		int32_t part;
		int shard, nshards;
		store_pos pos;
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (store_offset_field_parse(f->str, f->len, &topic, &tlen, &part, &shard, &nshards) < 0)
			continue; /* not ours */
		if (store_pos_parse(v->str, v->len, &pos) < 0) {
			SETERR("'%s' field '%.*s' holds '%.*s', not an offset position", key,
			       (int)f->len, f->str, (int)v->len, v->str);
			freeReplyObject(r);
			return -1;
		}
		fn(arg, topic, tlen, part, shard, nshards, pos);
	}
	freeReplyObject(r);
	return 0;
}
