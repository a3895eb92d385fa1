/* merge.c - fp-merge's engine; see merge.h. */
#include "clock.h"
#include "merge.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "json.h"
#include "merge_table.h"
#include "mpraw.h"
#include "store.h"

#define READAHEAD_BYTES (4u << 20) /* stop reading ahead past this much buffered */

/* One partition seen in @src or in the stored offsets. */
typedef struct mpart {
	char *topic; /* owned */
	size_t tlen;
	int32_t partition;
	int has_start, has_committed, has_passed;
	store_pos start;     /* stored at start: records below it are skipped */
	store_pos committed; /* stored when last read */
	store_pos passed;    /* the furthest position passed downstream (start,
	                      * updates, barriers): our writer stores no more */
	uint64_t seen;       /* the offsets read that last showed it */
	store_pos seg;       /* after the segment's last applied record (in_seg) */
	int in_seg;
} mpart;

enum { K_DATA, K_CTL, K_SKIP, K_NOKEY };

/* One frame of the current batch. */
typedef struct mframe {
	const uint8_t *body; /* in the reader's buffer: valid until the next fill */
	size_t len;
	merge_entry *e;
	size_t koff, klen;   /* prefix+key in m->keys */
	store_pos after;     /* position after this record (has_src) */
	uint64_t hash;       /* of the key */
	uint32_t part;
	uint8_t kind, has_src, utf8;
	uint8_t emit;        /* the key's last applied record of its segment */
	const uint8_t *src, *ts, *in; /* raw values, or NULL */
	size_t srclen, tslen, inlen;
	const uint8_t *in0;  /* the earliest @in of the key's records in the segment */
	size_t in0len;
} mframe;

struct merge {
	merge_opts o;
	merge_table t;
	mpart *parts;
	size_t nparts, partcap;
	uint32_t *pidx;     /* open addressing over parts: index + 1, 0 empty */
	size_t pidxcap;     /* a power of two */
	mframe *batch;
	uint32_t *segparts; /* partitions with a record applied in this segment */
	size_t nsegparts, segpartcap;
	fp_buf keys;        /* prefix+key bytes of the batch's records */
	merge_entry **loads; /* keys of the batch to load from the store */
	size_t nloads;
	fr_reader r;
	fr_writer w;
	int in_fd;
	int eof;
	int64_t last_read_ms; /* monotonic time of the last offsets read */
	merge_stats st;
	char errstr[512];
};

static int
fail(merge *m, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->errstr, sizeof m->errstr, fmt, ap);
	va_end(ap);
	return status;
}

/* A key for messages: at most 200 bytes (log.c shows control bytes as '?'). */
static const char *
key_text(const uint8_t *k, size_t n, char *buf, size_t len)
{
	size_t max = len - 4 < n ? len - 4 : n;
	memcpy(buf, k, max);
	if (max < n)
		memcpy(buf + max, "...", 4);
	else
		buf[max] = 0;
	for (size_t i = 0; i < max; i++)
		if (buf[i] == 0)
			buf[i] = '?';
	return buf;
}

merge *
merge_new(const merge_opts *o, char *err, size_t errlen)
{
	if (!o->spec || o->max_keys == 0 || o->nshards < 1 || o->shard < 0 ||
	    o->shard >= o->nshards) {
		snprintf(err, errlen, "invalid merge options");
		return NULL;
	}
	merge *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->o = *o;
	if (!m->o.batch_max)
		m->o.batch_max = 16384;
	if (!m->o.commit_wait_ms)
		m->o.commit_wait_ms = 60000;
	if (!m->o.pipeline)
		m->o.pipeline = "default";
	m->batch = calloc(m->o.batch_max, sizeof *m->batch);
	m->loads = calloc(m->o.batch_max, sizeof *m->loads);
	if (!m->batch || !m->loads || merge_table_init(&m->t) < 0) {
		snprintf(err, errlen, "out of memory");
		merge_free(m);
		return NULL;
	}
	if (fr_reader_init(&m->r, m->o.max_frame) < 0) {
		snprintf(err, errlen, "%s", m->r.errstr);
		merge_free(m);
		return NULL;
	}
	return m;
}

void
merge_free(merge *m)
{
	if (!m)
		return;
	merge_entry *e;
	while (m->t.buckets && (e = merge_table_oldest(&m->t)) != NULL) {
		feat_state_free(e->state);
		merge_table_remove(&m->t, e);
	}
	merge_table_release(&m->t);
	for (size_t i = 0; i < m->nparts; i++)
		free(m->parts[i].topic);
	free(m->parts);
	free(m->pidx);
	free(m->segparts);
	free(m->batch);
	free(m->loads);
	fp_buf_release(&m->keys);
	fr_reader_release(&m->r);
	free(m);
}

const char *
merge_errstr(const merge *m)
{
	return m->errstr;
}

const merge_stats *
merge_get_stats(const merge *m)
{
	return &m->st;
}

size_t
merge_memory(const merge *m)
{
	size_t n = m->t.nbuckets * sizeof *m->t.buckets;
	for (merge_entry *e = m->t.newest; e; e = e->older)
		n += sizeof *e + e->klen + 16 + (e->state ? feat_state_memory(e->state) : 0);
	return n;
}

/* ---- partitions ----------------------------------------------------- */

static uint64_t
part_hash(const char *topic, size_t tlen, int32_t partition)
{
	return merge_table_hash(topic, tlen) ^ ((uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15ull);
}

/* The index of (topic, partition), added when new; -1 when out of memory. */
static int64_t
part_index(merge *m, const char *topic, size_t tlen, int32_t partition)
{
	if (m->pidxcap) {
		size_t mask = m->pidxcap - 1;
		for (size_t i = part_hash(topic, tlen, partition) & mask;; i = (i + 1) & mask) {
			uint32_t v = m->pidx[i];
			if (!v)
				break;
			mpart *p = &m->parts[v - 1];
			if (p->partition == partition && p->tlen == tlen && !memcmp(p->topic, topic, tlen))
				return v - 1;
		}
	}
	if (m->nparts == m->partcap) {
		size_t cap = m->partcap ? m->partcap * 2 : 16;
		mpart *np = realloc(m->parts, cap * sizeof *np);
		if (!np)
			return -1;
		m->parts = np;
		m->partcap = cap;
	}
	if ((m->nparts + 1) * 2 > m->pidxcap) {
		size_t cap = m->pidxcap ? m->pidxcap * 2 : 64;
		uint32_t *ni = calloc(cap, sizeof *ni);
		if (!ni)
			return -1;
		for (size_t j = 0; j < m->nparts; j++) {
			mpart *p = &m->parts[j];
			size_t i = part_hash(p->topic, p->tlen, p->partition) & (cap - 1);
			while (ni[i])
				i = (i + 1) & (cap - 1);
			ni[i] = (uint32_t)j + 1;
		}
		free(m->pidx);
		m->pidx = ni;
		m->pidxcap = cap;
	}
	mpart *p = &m->parts[m->nparts];
	memset(p, 0, sizeof *p);
	if (!(p->topic = malloc(tlen ? tlen : 1)))
		return -1;
	memcpy(p->topic, topic, tlen);
	p->tlen = tlen;
	p->partition = partition;
	size_t i = part_hash(topic, tlen, partition) & (m->pidxcap - 1);
	while (m->pidx[i])
		i = (i + 1) & (m->pidxcap - 1);
	m->pidx[i] = (uint32_t)m->nparts + 1;
	return (int64_t)m->nparts++;
}

struct offsets_arg {
	merge *m;
	int start;
	int oom;
	int64_t back;        /* index of a partition whose offset went back, or -1 */
	int64_t ahead;       /* index of one moved past what we passed on, or -1 */
	store_pos was, now, beyond;
};

static void
offset_cb(void *arg, const char *topic, size_t tlen, int32_t partition, int shard,
          int nshards, store_pos pos)
{
	struct offsets_arg *a = arg;
	merge *m = a->m;
	if (shard != m->o.shard || nshards != m->o.nshards)
		return;
	int64_t i = part_index(m, topic, tlen, partition);
	if (i < 0) {
		a->oom = 1;
		return;
	}
	mpart *p = &m->parts[i];
	if (p->has_committed && store_pos_cmp(pos, p->committed) < 0 && a->back < 0) {
		a->back = i;
		a->was = p->committed;
		a->now = pos;
	}
	if (!a->start && a->ahead < 0 && (!p->has_passed || store_pos_cmp(pos, p->passed) > 0)) {
		a->ahead = i;
		a->beyond = pos;
	}
	p->has_committed = 1;
	p->committed = pos;
	p->seen = m->st.offset_reads;
	if (a->start) {
		p->has_start = p->has_passed = 1;
		p->start = p->passed = pos;
	}
}

/* Our own pipeline passed position pos of partition i downstream. */
static void
note_passed(merge *m, size_t i, store_pos pos)
{
	mpart *p = &m->parts[i];
	if (!p->has_passed || store_pos_cmp(pos, p->passed) > 0) {
		p->passed = pos;
		p->has_passed = 1;
	}
}

/* Read this shard's stored offsets (start: also as the skip positions).
 * Stored offsets never go back while we run: if one does, or vanishes, Redis
 * lost data (a restart without persistence, a failover), and a key loaded
 * now could miss updates: stop, so that the pipeline replays. */
static int
read_offsets(merge *m, int start)
{
	char err[400];
	struct offsets_arg a = {m, start, 0, -1, -1, {0, 0}, {0, 0}, {0, 0}};
	m->st.offset_reads++;
	m->last_read_ms = fp_mono_ms();
	if (store_read_offsets(m->o.store, m->o.pipeline, offset_cb, &a, err, sizeof err) < 0)
		return fail(m, MERGE_REMOTE, "%s", err);
	if (a.oom)
		return fail(m, MERGE_IO, "out of memory");
	for (size_t i = 0; a.back < 0 && i < m->nparts; i++)
		if (m->parts[i].has_committed && m->parts[i].seen != m->st.offset_reads)
			a.back = (int64_t)i;
	if (a.back >= 0) {
		const mpart *p = &m->parts[a.back];
		char was[48], now[48] = "nothing";
		store_pos_format(p->seen == m->st.offset_reads ? a.was : p->committed, was, sizeof was);
		if (p->seen == m->st.offset_reads)
			store_pos_format(a.now, now, sizeof now);
		return fail(m, MERGE_REMOTE,
		            "the store's offset for %.*s/%d went back from %s to %s: Redis lost data; "
		            "restart the pipeline to replay from the stored offsets",
		            (int)p->tlen, p->topic, (int)p->partition, was, now);
	}
	/* Foreign progress: a position our own fp-kvwrite cannot have stored,
	 * as nothing this process passed on reaches it.  Keys evicted on its
	 * word would be reloaded with records applied twice. */
	if (a.ahead >= 0) {
		const mpart *p = &m->parts[a.ahead];
		char now[48], passed[48] = "nothing";
		store_pos_format(a.beyond, now, sizeof now);
		if (p->has_passed)
			store_pos_format(p->passed, passed, sizeof passed);
		return fail(m, MERGE_REMOTE,
		            "another writer changed the stored offsets of shard %d/%d: %.*s/%d is at %s, "
		            "but this fp-merge has passed on only %s; is an old pipeline still running? "
		            "restart the pipeline to resume from what the store holds",
		            m->o.shard, m->o.nshards, (int)p->tlen, p->topic, (int)p->partition, now,
		            passed);
	}
	return MERGE_OK;
}

static int write_failed(merge *m);

/* The origin control frame: the stored positions this process builds on,
 * before any update (fp-frames(5)); fp-kvwrite fences its commits on it. */
static int
emit_origin(merge *m)
{
	fp_buf *b = &m->w.buf;
	uint32_t n = 0;
	for (size_t i = 0; i < m->nparts; i++)
		n += m->parts[i].has_start;
	fr_writer_begin(&m->w);
	int rc = mpw_map(b, 5) | mpw_str(b, "@ctl", 4) | mpw_str(b, "origin", 6) |
	         mpw_str(b, "@pipeline", 9) | mpw_str(b, m->o.pipeline, strlen(m->o.pipeline)) |
	         mpw_str(b, "@shard", 6) | mpw_int(b, m->o.shard) | mpw_str(b, "@shards", 7) |
	         mpw_int(b, m->o.nshards) | mpw_str(b, "@pos", 4) | mpw_array(b, n);
	for (size_t i = 0; i < m->nparts; i++) {
		const mpart *p = &m->parts[i];
		char t[48];
		if (!p->has_start)
			continue;
		store_pos_format(p->start, t, sizeof t);
		rc |= mpw_array(b, 3) | mpw_str(b, p->topic, p->tlen) | mpw_int(b, p->partition) |
		      mpw_str(b, t, strlen(t));
	}
	if (rc) {
		fr_writer_abort(&m->w);
		return fail(m, MERGE_IO, "out of memory");
	}
	if (fr_writer_end(&m->w) < 0) {
		if (!m->w.err && errno == EMSGSIZE)
			return fail(m, MERGE_DATA, "the origin frame (%u positions) is larger than the "
			            "maximum frame size %zu", n, m->w.max_frame);
		return write_failed(m);
	}
	return MERGE_OK;
}

/* A barrier passed on: fp-kvwrite moves every partition it lists. */
static int
note_barrier(merge *m, const uint8_t *body, size_t len)
{
	const uint8_t *v;
	const char *ctl, *topic;
	size_t vl, cl, hdr, off, tlen;
	uint32_t n, k;
	if (!mp_map_find(body, len, "@ctl", 4, &v, &vl) || mp_read_str(v, vl, &ctl, &cl) < 0 ||
	    cl != 7 || memcmp(ctl, "barrier", 7) ||
	    !mp_map_find(body, len, "@pos", 4, &v, &vl) || mp_read_array(v, vl, &n, &hdr) < 0)
		return MERGE_OK;
	off = hdr;
	for (uint32_t i = 0; i < n; i++) {
		size_t es = mp_skip(v + off, vl - off), h2, o2, s;
		int64_t part, next;
		if (!es)
			return MERGE_OK;
		/* fp-kvwrite rejects a malformed barrier: nothing to note then */
		if (mp_read_array(v + off, es, &k, &h2) < 0 || k != 3)
			goto next;
		o2 = off + h2;
		if (!(s = mp_skip(v + o2, vl - o2)) || mp_read_str(v + o2, s, &topic, &tlen) < 0)
			goto next;
		o2 += s;
		if (!(s = mp_skip(v + o2, vl - o2)) || mp_read_int(v + o2, s, &part) < 0 || part < 0 ||
		    part > INT32_MAX)
			goto next;
		o2 += s;
		if (!(s = mp_skip(v + o2, vl - o2)) || mp_read_int(v + o2, s, &next) < 0 || next < 0)
			goto next;
		int64_t pi = part_index(m, topic, tlen, (int32_t)part);
		if (pi < 0)
			return fail(m, MERGE_IO, "out of memory");
		note_passed(m, (size_t)pi, (store_pos){next, 0});
	next:
		off += es;
	}
	return MERGE_OK;
}

/* ---- input ---------------------------------------------------------- */

/* 1 when the reader holds a complete frame (or a bad length that
 * fr_reader_next() will report), so that fr_reader_next() never asks for
 * more and never moves its buffer under the batch. */
static int
frame_ready(const fr_reader *r)
{
	size_t avail = fr_reader_pending(r);
	if (avail < 4)
		return 0;
	const uint8_t *p = r->buf + r->start;
	uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return n == 0 || n > r->max_frame || avail - 4 >= n;
}

static int
readable_now(int fd)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP));
}

/* Fill the reader: block until a frame is complete (or EOF), then take
 * whatever else the input already holds, up to READAHEAD_BYTES. */
static int
fill_input(merge *m)
{
	while (!m->eof && !frame_ready(&m->r)) {
		if (fr_writer_flush(&m->w) < 0)
			return m->w.err == EPIPE ? MERGE_STOPPED
			       : fail(m, MERGE_IO, "error writing standard output: %s", strerror(m->w.err));
		ssize_t n = fr_reader_fill(&m->r, m->in_fd);
		if (n < 0)
			return fail(m, MERGE_IO, "error reading standard input: %s", strerror(errno));
		if (n == 0)
			m->eof = 1;
	}
	/* read ahead for a store's batched loads, and for coalescing */
	while ((m->o.store || !m->o.per_record) && !m->eof &&
	       fr_reader_pending(&m->r) < READAHEAD_BYTES &&
	       readable_now(m->in_fd)) {
		ssize_t n = fr_reader_fill(&m->r, m->in_fd);
		if (n < 0)
			return fail(m, MERGE_IO, "error reading standard input: %s", strerror(errno));
		if (n == 0)
			m->eof = 1;
	}
	return MERGE_OK;
}

/* ---- one batch ------------------------------------------------------ */

/* The size of the object at p in a checked frame: scalars inline, the rest
 * through mp_skip(). */
static inline size_t
skip_value(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3))
		return 1; /* fixint, nil, bool */
	if ((c & 0xe0) == 0xa0)
		return 1 + (size_t)(c & 0x1f); /* fixstr */
	switch (c) {
	case 0xcc: case 0xd0: return 2;
	case 0xcd: case 0xd1: return 3;
	case 0xca: case 0xce: case 0xd2: return 5;
	case 0xcb: case 0xcf: case 0xd3: return 9;
	case 0xd9: return n >= 2 ? 2 + (size_t)p[1] : 0; /* str8 */
	}
	return mp_skip(p, n);
}

/* @src, @ts and @in of a record, in one pass over its top-level map.
 * 1 when the frame is a control frame (has "@ctl"). */
static int
find_reserved(mframe *f)
{
	uint32_t count;
	size_t hdr;
	const uint8_t *p = f->body;
	size_t n = f->len, off;
	f->src = f->ts = f->in = NULL;
	if (mp_read_map(p, n, &count, &hdr) < 0)
		return 0;
	off = hdr;
	for (uint32_t i = 0; i < count; i++) {
		const char *k = NULL;
		size_t kl = 0, ks;
		/* keys are strings (checked frames); short ones are fixstr */
		if ((p[off] & 0xe0) == 0xa0) {
			kl = p[off] & 0x1f;
			k = (const char *)p + off + 1;
			ks = 1 + kl;
		} else {
			ks = mp_skip(p + off, n - off);
			if (!ks)
				return 0;
		}
		off += ks;
		size_t vs = skip_value(p + off, n - off);
		if (!vs || vs > n - off)
			return 0;
		if (k && (kl == 3 || kl == 4) && k[0] == '@') {
			if (kl == 3 && !memcmp(k, "@ts", 3))
				f->ts = p + off, f->tslen = vs;
			else if (kl == 3 && !memcmp(k, "@in", 3))
				f->in = p + off, f->inlen = vs;
			else if (kl == 4 && !memcmp(k, "@src", 4))
				f->src = p + off, f->srclen = vs;
			else if (kl == 4 && !memcmp(k, "@ctl", 4))
				return 1;
		}
		off += vs;
	}
	return 0;
}

/* Parse @src: [topic, partition, offset] or [topic, partition, offset, index]. */
static int
parse_src(merge *m, mframe *f, uint64_t fno)
{
	const uint8_t *p = f->src;
	size_t n = f->srclen, hdr, off;
	uint32_t count;
	const char *topic;
	size_t tlen;
	int64_t part, o, idx = 0;
	if (mp_read_array(p, n, &count, &hdr) < 0 || (count != 3 && count != 4))
		goto bad;
	off = hdr;
	if (mp_read_str(p + off, n - off, &topic, &tlen) < 0)
		goto bad;
	off += mp_skip(p + off, n - off);
	if (mp_read_int(p + off, n - off, &part) < 0 || part < 0 || part > INT32_MAX)
		goto bad;
	off += mp_skip(p + off, n - off);
	if (mp_read_int(p + off, n - off, &o) < 0 || o < 0 || o == INT64_MAX)
		goto bad;
	off += mp_skip(p + off, n - off);
	if (count == 4 && (mp_read_int(p + off, n - off, &idx) < 0 || idx < 0 || idx == INT64_MAX))
		goto bad;
	int64_t i = part_index(m, topic, tlen, (int32_t)part);
	if (i < 0)
		return fail(m, MERGE_IO, "out of memory");
	f->part = (uint32_t)i;
	f->has_src = 1;
	mpart *mp = &m->parts[i];
	if (mp->has_start && merge_pos_applied(o, idx, mp->start.offset, mp->start.index))
		f->kind = K_SKIP;
	if (count == 4)
		f->after = (store_pos){o, idx + 1};
	else
		f->after = (store_pos){o + 1, 0};
	return MERGE_OK;
bad:
	return fail(m, MERGE_DATA,
	            "frame %llu: @src is not [topic, partition, offset] or [topic, partition, offset, index]",
	            (unsigned long long)fno);
}

/* Classify the frames, find their keys, and queue the keys to load
 * (m->nloads).  On bad input, *n is cut to the frames before it, which are
 * still prepared, and the error returned. */
static int
prepare(merge *m, size_t *n, uint64_t fno0)
{
	int status = MERGE_OK;
	m->keys.len = 0;
	m->nloads = 0;
	for (size_t i = 0; i < *n; i++) {
		mframe *f = &m->batch[i];
		f->e = NULL;
		f->has_src = 0;
		f->emit = 0;
		if (find_reserved(f)) {
			f->kind = K_CTL;
			continue;
		}
		f->kind = K_DATA;
		if (f->src) {
			if ((status = parse_src(m, f, fno0 + i)) != MERGE_OK) {
				*n = i;
				break;
			}
			if (f->kind == K_SKIP)
				continue;
		}
		int utf8 = 0;
		f->koff = m->keys.len;
		if (feat_record_key(m->o.spec, f->body, f->len, &m->keys, &utf8) < 0) {
			m->keys.len = f->koff;
			f->kind = K_NOKEY;
			continue;
		}
		f->klen = m->keys.len - f->koff;
		f->utf8 = (uint8_t)utf8;
	}
	/* Keys point into m->keys only now that it no longer grows.  Hash them
	 * all and prefetch their buckets: lookups in a large table miss the
	 * cache, and a batch lets those misses overlap. */
	size_t mask = m->t.nbuckets - 1;
	for (size_t i = 0; i < *n; i++) {
		mframe *f = &m->batch[i];
		if (f->kind != K_DATA)
			continue;
		f->hash = merge_table_hash(m->keys.p + f->koff, f->klen);
		__builtin_prefetch(&m->t.buckets[f->hash & mask]);
	}
	for (size_t i = 0; i < *n; i++) {
		mframe *f = &m->batch[i];
		if (f->kind == K_DATA && m->t.buckets[f->hash & mask])
			__builtin_prefetch(m->t.buckets[f->hash & mask]);
	}
	for (size_t i = 0; i < *n; i++) {
		mframe *f = &m->batch[i];
		if (f->kind != K_DATA)
			continue;
		const uint8_t *k = m->keys.p + f->koff;
		uint64_t h = f->hash;
		merge_entry *e = merge_table_find(&m->t, k, f->klen, h);
		if (!e) {
			if (!(e = merge_table_insert(&m->t, k, f->klen, h)))
				return fail(m, MERGE_IO, "out of memory");
			if (m->o.store)
				m->loads[m->nloads++] = e; /* state NULL until loaded */
			else if (!(e->state = feat_state_new(m->o.spec)))
				return fail(m, MERGE_IO, "out of memory");
		} else {
			merge_table_touch(&m->t, e);
		}
		f->e = e;
	}
	if (m->t.count > m->st.keys_peak)
		m->st.keys_peak = m->t.count;
	return status;
}

/* Fetch the queued keys' "@state" in one pipelined round trip. */
static int
load_keys(merge *m, size_t nloads)
{
	redisContext *c = m->o.store;
	char kt[220];
	for (size_t i = 0; i < nloads; i++) {
		merge_entry *e = m->loads[i];
		if (redisAppendCommand(c, "HGET %b %s", e->key, (size_t)e->klen, "@state") != REDIS_OK)
			return fail(m, MERGE_REMOTE, "Redis: %s", c->errstr);
	}
	m->st.round_trips++;
	m->st.loads += nloads;
	int status = MERGE_OK;
	for (size_t i = 0; i < nloads; i++) {
		merge_entry *e = m->loads[i];
		redisReply *r = NULL;
		if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
			return fail(m, MERGE_REMOTE, "Redis: loading key '%s': %s",
			            key_text(e->key, e->klen, kt, sizeof kt), c->errstr);
		if (status != MERGE_OK) {
			/* read every reply so the context stays usable; report the first error */
		} else if (r->type == REDIS_REPLY_NIL) {
			if (!(e->state = feat_state_new(m->o.spec)))
				status = fail(m, MERGE_IO, "out of memory");
		} else if (r->type == REDIS_REPLY_STRING) {
			char err[300];
			size_t changed = 0;
			feat_state *st;
			if (feat_state_decode(m->o.spec, (const uint8_t *)r->str, r->len, &st, &changed,
			                      err, sizeof err) < 0) {
				status = fail(m, MERGE_DATA,
				              "key '%s': the stored @state cannot be decoded (%s); "
				              "refusing to start this key over",
				              key_text(e->key, e->klen, kt, sizeof kt), err);
			} else {
				e->state = st;
				m->st.loaded++;
				m->st.reset += changed;
			}
		} else {
			status = fail(m, MERGE_REMOTE, "Redis: HGET '%s' @state: %s",
			              key_text(e->key, e->klen, kt, sizeof kt),
			              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
		}
		freeReplyObject(r);
	}
	return status;
}

static int
write_failed(merge *m)
{
	if (m->w.err == EPIPE)
		return MERGE_STOPPED;
	if (m->w.err)
		return fail(m, MERGE_IO, "error writing standard output: %s", strerror(m->w.err));
	return fail(m, MERGE_IO, "out of memory");
}

/* Append "@state" and the state's encoding as a msgpack bin to b, encoding
 * in place: a bin16 header is reserved (most states are 256 B..64 KiB) and
 * fixed up afterwards, so the bytes are not copied once more. */
static int
pack_state(fp_buf *b, const feat_spec *s, const feat_state *st)
{
	if (mpw_str(b, "@state", 6) < 0 || fp_buf_reserve(b, 3) < 0)
		return -1;
	size_t h = b->len;
	b->len += 3;
	if (feat_state_encode(s, st, b) < 0)
		return -1;
	size_t n = b->len - h - 3;
	uint8_t *p = b->p + h;
	if (n < 256) {
		memmove(p + 2, p + 3, n);
		p[0] = 0xc4;
		p[1] = (uint8_t)n;
		b->len--;
	} else if (n < 65536) {
		p[0] = 0xc5;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
	} else {
		if (n > UINT32_MAX || fp_buf_reserve(b, 2) < 0)
			return -1;
		p = b->p + h;
		memmove(p + 5, p + 3, n);
		p[0] = 0xc6;
		p[1] = (uint8_t)(n >> 24);
		p[2] = (uint8_t)(n >> 16);
		p[3] = (uint8_t)(n >> 8);
		p[4] = (uint8_t)n;
		b->len += 2;
	}
	return 0;
}

/* One update frame for record f: its key's state now, f's @src and @ts,
 * and the @in of f->in0. */
static int
emit_update(merge *m, const mframe *f)
{
	const feat_spec *s = m->o.spec;
	fr_writer *w = &m->w;
	fp_buf *b = &w->buf;
	int64_t ttl = feat_spec_ttl(s);
	size_t nfeat = feat_spec_count(s);
	uint32_t count = 2 + (f->src != NULL) + (f->ts != NULL) + (f->in0 != NULL) + (ttl > 0) +
	                 (uint32_t)nfeat;
	msgpack_packer *pk = fr_writer_begin(w);
	const uint8_t *key = m->keys.p + f->koff;
	int rc = mpw_map(b, count) | mpw_str(b, "@key", 4) |
	         (f->utf8 ? mpw_str(b, key, f->klen) : mpw_bin(b, key, f->klen));
	if (f->src)
		rc |= mpw_str(b, "@src", 4) | fp_buf_add(b, f->src, f->srclen);
	if (f->ts)
		rc |= mpw_str(b, "@ts", 3) | fp_buf_add(b, f->ts, f->tslen);
	if (f->in0)
		rc |= mpw_str(b, "@in", 3) | fp_buf_add(b, f->in0, f->in0len);
	if (ttl > 0)
		rc |= mpw_str(b, "@ttl", 4) | mpw_int(b, ttl);
	rc |= feat_emit_values(s, f->e->state, pk);
	if (rc || pack_state(b, s, f->e->state) < 0) {
		fr_writer_abort(w);
		return fail(m, MERGE_IO, "out of memory");
	}
	if (fr_writer_end(w) < 0) {
		if (!w->err && errno == EMSGSIZE) {
			char kt[220];
			return fail(m, MERGE_DATA, "the update of key '%s' is larger than the maximum frame size %zu",
			            key_text(key, f->klen, kt, sizeof kt), w->max_frame);
		}
		return write_failed(m);
	}
	m->st.updates++;
	return MERGE_OK;
}

/* How far ahead apply_batch() prefetches a key's state: far enough for the
 * cache misses of a large key set to overlap with the work on the records
 * before it (feat_state_prefetch(), lib/feat.h). */
#define PREFETCH_AHEAD 8

/* A record at position after of partition i was applied in this segment. */
static int
note_segment(merge *m, uint32_t i, store_pos after)
{
	mpart *p = &m->parts[i];
	if (p->in_seg) {
		if (store_pos_cmp(after, p->seg) > 0)
			p->seg = after;
		return MERGE_OK;
	}
	if (m->nsegparts == m->segpartcap) {
		size_t cap = m->segpartcap ? m->segpartcap * 2 : 16;
		uint32_t *np = realloc(m->segparts, cap * sizeof *np);
		if (!np)
			return fail(m, MERGE_IO, "out of memory");
		m->segparts = np;
		m->segpartcap = cap;
	}
	m->segparts[m->nsegparts++] = i;
	p->in_seg = 1;
	p->seg = after;
	return MERGE_OK;
}

/* The sync control frame: the updates before it hold every record applied
 * up to the positions it lists, one per partition with a record applied in
 * the segment (fp-frames(5)).  A key's update carries only its last
 * record's @src: the others it holds may come from other partitions. */
static int
emit_sync(merge *m)
{
	fp_buf *b = &m->w.buf;
	fr_writer_begin(&m->w);
	int rc = mpw_map(b, m->nsegparts ? 2 : 1) | mpw_str(b, "@ctl", 4) | mpw_str(b, "sync", 4);
	if (m->nsegparts)
		rc |= mpw_str(b, "@pos", 4) | mpw_array(b, (uint32_t)m->nsegparts);
	for (size_t i = 0; i < m->nsegparts; i++) {
		mpart *p = &m->parts[m->segparts[i]];
		char t[48];
		store_pos_format(p->seg, t, sizeof t);
		rc |= mpw_array(b, 3) | mpw_str(b, p->topic, p->tlen) | mpw_int(b, p->partition) |
		      mpw_str(b, t, strlen(t));
		p->in_seg = 0;
	}
	m->nsegparts = 0;
	if (rc) {
		fr_writer_abort(&m->w);
		return fail(m, MERGE_IO, "out of memory");
	}
	if (fr_writer_end(&m->w) < 0) {
		if (!m->w.err && errno == EMSGSIZE)
			return fail(m, MERGE_DATA, "a sync frame is larger than the maximum frame size %zu",
			            m->w.max_frame);
		return write_failed(m);
	}
	m->st.syncs++;
	return MERGE_OK;
}

/* The updates of the segment batch[from..to): one per key, for its last
 * applied record, in the order of those records; then a sync frame. */
static int
flush_segment(merge *m, size_t from, size_t to)
{
	size_t n = 0;
	for (size_t i = from; i < to; i++)
		if (m->batch[i].emit)
			m->batch[i].e->mark = 0;
	for (size_t i = from; i < to; i++) {
		mframe *f = &m->batch[i];
		if (!f->emit)
			continue;
		int rc = emit_update(m, f);
		if (rc != MERGE_OK)
			return rc;
		n++;
	}
	return n ? emit_sync(m) : MERGE_OK;
}

/* How far ahead apply_batch() prefetches a key's state: far enough for the
 * cache misses of a large key set to overlap with the work on the records
 * before it (feat_state_prefetch(), lib/feat.h). */
#define PREFETCH_AHEAD 8

/* Apply the batch's records in order.  Coalescing (the default), a key's
 * update is written once per segment (the records between two control
 * frames), after the segment; with per_record, after every record. */
static int
apply_batch(merge *m, size_t n)
{
	size_t seg = 0;
	int rc;
	for (size_t i = 0; i < n; i++) {
		mframe *f = &m->batch[i];
		if (i + PREFETCH_AHEAD < n) {
			const mframe *a = &m->batch[i + PREFETCH_AHEAD];
			if (a->kind == K_DATA && a->e && a->e->state)
				feat_state_prefetch(a->e->state);
		}
		switch (f->kind) {
		case K_CTL:
			if ((rc = flush_segment(m, seg, i)) != MERGE_OK)
				return rc;
			seg = i + 1;
			m->st.control++;
			if (m->o.store && (rc = note_barrier(m, f->body, f->len)) != MERGE_OK)
				return rc;
			if (fr_writer_put(&m->w, f->body, f->len) < 0)
				return write_failed(m);
			continue;
		case K_SKIP:
			m->st.records++;
			m->st.skipped++;
			continue;
		case K_NOKEY:
			m->st.records++;
			m->st.no_key++;
			continue;
		}
		m->st.records++;
		rc = feat_apply(m->o.spec, f->e->state, f->body, f->len, &m->st.feat);
		if (rc < 0)
			return fail(m, MERGE_IO, "out of memory");
		if (rc == 1) {
			m->st.no_time++;
			continue;
		}
		if (f->has_src) {
			f->e->flags = MERGE_DIRTY;
			f->e->part = f->part;
			f->e->pos = f->after;
			note_passed(m, f->part, f->after);
			if (!m->o.per_record && (rc = note_segment(m, f->part, f->after)) != MERGE_OK)
				return rc;
		} else {
			f->e->flags = MERGE_UNKNOWN;
		}
		f->in0 = f->in;
		f->in0len = f->inlen;
		if (m->o.per_record) {
			if ((rc = emit_update(m, f)) != MERGE_OK)
				return rc;
			continue;
		}
		if (f->e->mark) {
			mframe *prev = &m->batch[f->e->mark - 1];
			prev->emit = 0;
			if (prev->in0) {
				f->in0 = prev->in0;
				f->in0len = prev->in0len;
			}
		}
		f->emit = 1;
		f->e->mark = (uint32_t)i + 1;
	}
	return flush_segment(m, seg, n);
}

/* ---- eviction ------------------------------------------------------- */

static int
committed(const merge *m, const merge_entry *e)
{
	if (e->flags == MERGE_CLEAN)
		return 1;
	if (e->flags != MERGE_DIRTY)
		return 0;
	const mpart *p = &m->parts[e->part];
	return p->has_committed && store_pos_cmp(e->pos, p->committed) <= 0;
}

static void
evict_committed(merge *m)
{
	merge_entry *e;
	while (m->t.count > m->o.max_keys && (e = merge_table_oldest(&m->t)) != NULL &&
	       committed(m, e)) {
		feat_state_free(e->state);
		merge_table_remove(&m->t, e);
		m->st.evicted++;
	}
}

static int
evict(merge *m)
{
	char kt[220];
	if (m->t.count <= m->o.max_keys)
		return MERGE_OK;
	if (!m->o.store)
		return fail(m, MERGE_DATA,
		            "more than %zu keys (--max-keys) in memory, and without a store a key "
		            "cannot be evicted without losing its history; raise --max-keys",
		            m->o.max_keys);
	evict_committed(m);
	if (m->t.count <= m->o.max_keys)
		return MERGE_OK;
	/* The oldest key's last update may still be in fp-kvwrite's buffer.
	 * Look at the store's offsets again, at most every few ms. */
	if (fp_mono_ms() - m->last_read_ms >= 5) {
		int rc = read_offsets(m, 0);
		if (rc != MERGE_OK)
			return rc;
		evict_committed(m);
	}
	if (m->t.count <= m->o.max_keys + m->o.batch_max)
		return MERGE_OK; /* keep them a while: the writer commits soon */
	/* Too far over: stop reading until the writer has committed. */
	m->st.waits++;
	if (fr_writer_flush(&m->w) < 0)
		return write_failed(m);
	int64_t start = fp_mono_ms(), sleep_ms = 2;
	while (m->t.count > m->o.max_keys) {
		merge_entry *e = merge_table_oldest(&m->t);
		if (e->flags == MERGE_UNKNOWN)
			return fail(m, MERGE_DATA,
			            "key '%s' cannot be evicted: its last record has no @src, so the "
			            "store cannot show its update committed (raise --max-keys)",
			            key_text(e->key, e->klen, kt, sizeof kt));
		if (fp_mono_ms() - start > m->o.commit_wait_ms) {
			const mpart *p = &m->parts[e->part];
			char want[48];
			store_pos_format(e->pos, want, sizeof want);
			return fail(m, MERGE_REMOTE,
			            "waited %lld ms for the store's offsets to show the last update of key "
			            "'%s' committed (%.*s/%d at %s); is fp-kvwrite running?",
			            (long long)m->o.commit_wait_ms, key_text(e->key, e->klen, kt, sizeof kt),
			            (int)p->tlen, p->topic, (int)p->partition, want);
		}
		/* A writer that has exited will never commit: stop as on EPIPE
		 * rather than wait out --commit-wait. */
		struct pollfd out = {m->w.fd, POLLOUT, 0};
		if (poll(&out, 1, 0) == 1 && (out.revents & POLLERR)) {
			m->w.err = EPIPE;
			return write_failed(m);
		}
		struct timespec ts = {0, (long)sleep_ms * 1000000};
		nanosleep(&ts, NULL);
		if (sleep_ms < 100)
			sleep_ms *= 2;
		int rc = read_offsets(m, 0);
		if (rc != MERGE_OK)
			return rc;
		evict_committed(m);
	}
	return MERGE_OK;
}

/* ---- the loop ------------------------------------------------------- */

static int
run(merge *m)
{
	int rc;
	if (m->o.store && ((rc = read_offsets(m, 1)) != MERGE_OK || (rc = emit_origin(m)) != MERGE_OK))
		return rc;
	/* coalesced updates come in segments that each end with a sync: one
	 * before the first tells the writer so (fp-kvwrite(1)) */
	if (!m->o.per_record && (rc = emit_sync(m)) != MERGE_OK)
		return rc;
	for (;;) {
		if ((rc = fill_input(m)) != MERGE_OK)
			return rc;
		size_t n = 0;
		int bad = 0;
		uint64_t fno0 = m->r.frames + 1;
		while (n < m->o.batch_max && frame_ready(&m->r)) {
			mframe *f = &m->batch[n];
			if (fr_reader_next(&m->r, &f->body, &f->len) != FR_OK) {
				bad = 1;
				break;
			}
			n++;
		}
		if (n == 0 && !bad) {
			if (!m->eof)
				continue;
			if (fr_reader_eof(&m->r) < 0)
				return fail(m, MERGE_DATA, "%s", m->r.errstr);
			return MERGE_OK;
		}
		m->st.batches++;
		merge_metrics *mm = m->o.metrics;
		int64_t t0 = mm ? fp_mono_us() : 0, t1 = 0;
		size_t nread = n;
		int prc = prepare(m, &n, fno0);
		if (prc == MERGE_IO)
			return prc;
		if (m->nloads) {
			if (mm)
				t1 = fp_mono_us();
			if ((rc = load_keys(m, m->nloads)) != MERGE_OK)
				return rc;
			if (mm)
				stats_observe(mm->load_us, (uint64_t)(fp_mono_us() - t1));
		}
		if ((rc = apply_batch(m, n)) != MERGE_OK)
			return rc;
		if (mm) {
			stats_observe(mm->batch_size, nread);
			stats_observe(mm->batch_us, (uint64_t)(fp_mono_us() - t0));
			m->st.keys = m->t.count;
			if (mm->tick)
				mm->tick(&m->st, mm->tick_arg);
		}
		if (prc != MERGE_OK)
			return prc;
		if ((rc = evict(m)) != MERGE_OK)
			return rc;
		if (bad)
			return fail(m, MERGE_DATA, "%s", m->r.errstr);
	}
}

int
merge_run(merge *m, int in_fd, int out_fd)
{
	m->in_fd = in_fd;
	m->eof = 0;
	m->errstr[0] = 0;
	fr_writer_init(&m->w, out_fd, m->o.max_frame);
	int rc = run(m);
	m->st.keys = m->t.count;
	if (rc != MERGE_STOPPED && fr_writer_flush(&m->w) < 0) {
		int frc = write_failed(m);
		if (rc == MERGE_OK)
			rc = frc;
	}
	fr_writer_release(&m->w);
	return rc;
}
