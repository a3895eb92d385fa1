/* kvwrite.c - fp-merge updates to Redis in atomic epochs; see kvwrite.h. */
#include "clock.h"
#include "kvwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "json.h"
#include "mpraw.h"
#include "num.h"
#include "wcache.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* The commit goes to Redis as one pipeline:
 *   WATCH fence; EVAL CHECK_LUA; MULTI; the epoch's writes; HSET offsets;
 *   INCR fence; EXEC
 * CHECK_LUA checks, before anything is written, the type of every key the
 * epoch writes (HLEN, ZCARD or STRLEN: an integer, 0 when the key is
 * missing, or WRONGTYPE for another type; cheaper than TYPE's status reply)
 * and that this shard's offsets fields hold what this process
 * expects (the fence against an old pipeline's writer).  When one does not,
 * it sets the fence key -- a counter that every commit of this shard
 * increments -- which aborts the transaction it watches, and answers why.
 * A commit of another writer of the shard between the check and EXEC (a
 * zombie) moves the fence key and aborts it the same way; the next attempt
 * checks again.  So the writes land all together, after the check, or not
 * at all.  (A transaction instead of one script writing everything: Redis
 * does the same writes with half the CPU.)
 * A key whose other fields Redis already holds, as this process committed
 * them (the written-fields cache, wcache.h), is written in part: only the
 * fields that changed.  The check makes sure such a key still exists; when
 * one is gone (deleted by someone else, evicted) it answers FPGONE with
 * their indexes, and the epoch is built again with those keys whole.
 * KEYS: the offsets hash, the epoch's keys, the fence key.  ARGV[1] holds
 * one kind letter per epoch key ('h' hash, 'p' hash written in part, 'z'
 * sorted set), ARGV[2] the number m of fenced offsets fields and
 * ARGV[3..2+2m] m pairs (field, expected value; "" for a field that must be
 * missing). */
static const char CHECK_LUA[] =
	"local function check()\n"
	"  local kinds, n, call, pcall_, gone = ARGV[1], #KEYS, redis.call, redis.pcall, {}\n"
	"  for i = 1, n do\n"
	"    local c, cmd = 0, 'HLEN'\n"
	"    if i == n then cmd = 'STRLEN'\n"
	"    elseif i > 1 then\n"
	"      c = string.byte(kinds, i - 1)\n"
	"      if c == 122 then cmd = 'ZCARD' end\n"
	"    end\n"
	"    local r = pcall_(cmd, KEYS[i])\n"
	"    if type(r) == 'table' then return 'FPWRONGTYPE ' .. i .. ' ' .. call('TYPE', KEYS[i])['ok'] end\n"
	"    if r == 0 and c == 112 then gone[#gone + 1] = i end\n"
	"  end\n"
	"  local m = tonumber(ARGV[2])\n"
	"  if m > 0 then\n"
	"    local f = {}\n"
	"    for j = 1, m do f[j] = ARGV[1 + 2 * j] end\n"
	"    local got = call('HMGET', KEYS[1], unpack(f))\n"
	"    for j = 1, m do\n"
	"      local g, e = got[j], ARGV[2 + 2 * j]\n"
	"      if g == false then g = nil end\n"
	"      if e == '' then e = nil end\n"
	"      if g ~= e then return 'FPFENCE ' .. j .. ' ' .. (g and ('=' .. g) or '-') end\n"
	"    end\n"
	"  end\n"
	"  if #gone > 0 then return 'FPGONE ' .. table.concat(gone, ' ') end\n"
	"  return nil\n"
	"end\n"
	"local ok, bad = pcall(check)\n"
	"if not ok then bad = 'FPCHECK ' .. tostring(bad) end\n"
	"if bad then\n"
	"  redis.call('SET', KEYS[#KEYS], '0')\n"
	"  return redis.error_reply(bad)\n"
	"end\n"
	"return 0\n";

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WARN_EVERY_MS 10000

struct entry {
	uint8_t *body;          /* owned copy of the latest update */
	size_t len, cap;
	const uint8_t *key;     /* @key bytes, inside body */
	size_t klen;
	uint64_t hash;
	int64_t ttl;            /* @ttl, 0 for none */
	uint32_t nset, ndel;    /* fields stored, fields deleted (nil) */
	uint64_t *fh;           /* built: the hash of each field stored or deleted */
	uint32_t nfh, fhcap;
	int64_t until;          /* built: the cache's deadline for the key, or INT64_MAX */
	int expire;             /* built: its commit sets the TTL */
};

/* A hash with a TTL of at least 16 s is given ttl + ttl/8 (EXPIRE_SLACK),
 * and the written-fields cache holds it for ttl/16 after the commit that
 * set it (EXPIRE_KEEP): until then the key is written in part and without
 * EXPIRE (the check makes sure it still exists), then whole with EXPIRE
 * again.  So it expires between 17/16 and 9/8 of its TTL after its last
 * commit, and an EXPIRE per key write is saved.  Shorter TTLs are set as
 * they are, with every write. */
#define EXPIRE_MIN_S 16
#define EXPIRE_SLACK(ttl) ((ttl) >= EXPIRE_MIN_S ? (ttl) / 8 : 0)
#define EXPIRE_KEEP_MS(ttl) ((ttl) >= EXPIRE_MIN_S ? (ttl) * 1000 / 16 : 0)

struct ppos {                   /* one (topic, partition) of this shard */
	char *topic;            /* owned */
	size_t tlen;
	int32_t part;
	store_pos pending, committed, seen;
	store_pos inflight;     /* what the epoch in flight writes */
	int has_pending, has_committed, seen_ok, has_inflight;
};

struct span { size_t off, len; };
/* A piece of the commit's pipeline: bytes of out, arena or kbuf (SEG_*). */
enum { SEG_OUT, SEG_ARENA, SEG_KBUF };
struct seg { size_t src, off, len; };
struct spanv { struct span *v; size_t n, cap; };
struct sizev { size_t *v; size_t n, cap; };

/* A field of an update being built: name and value inside its body. */
struct fldref {
	const char *k;
	const uint8_t *v;
	uint32_t kl, vl;
	uint8_t changed, nil;
};

/* What an epoch holds: its entries (bodies kept for reuse by later
 * epochs), the @ts (ms) and @in (µs) of each update for the metrics
 * (INT64_MIN when absent), and the number of update frames.  kvw has two:
 * the epoch being read and the one in flight; they swap at each commit. */
struct epochbuf {
	struct entry *ent;
	size_t nent, entcap;
	int64_t (*stamp)[2];
	size_t nstamp, stampcap;
	uint64_t updates;
};

/* The room of the entries (bodies and field hashes) up to SLAB_PIECE
 * bytes, carved from blocks of SLAB_BLOCK bytes, 2 MiB aligned and marked
 * for huge pages: one malloc and, with huge pages, one page fault and one
 * TLB entry per 2 MiB, instead of a malloc per entry and a page fault and
 * a TLB entry per 4 KiB (16 entries).  A piece an entry has outgrown is not
 * reused: an entry's room grows by half at least each time, so what is left
 * behind is at most twice what the entries hold.  Larger rooms are malloc'd
 * and freed; the size of a room says which it is. */
#define SLAB_BLOCK ((size_t)4 << 20)
#define SLAB_ALIGN ((size_t)2 << 20)
#define SLAB_PIECE ((size_t)4096)
struct slab {
	uint8_t **blk;
	size_t nblk, blkcap;
	size_t used;            /* of the last block */
};

struct kvw {
	kvw_options o;
	char offkey[300];
	char fencekey[340];     /* fp:{pipeline}:fence:S/N */
	char errstr[512];

	struct slab slab;       /* room of the entries of rd and fl */
	struct epochbuf rd, fl; /* the epoch being read; the one in flight (built
	                         * again from it if keys of it are gone) */
	wcache *cache;          /* what Redis holds of each key; NULL: off */
	uint64_t *slots;        /* open addressing: the key's hash in the high 32
	                         * bits (no entry is touched on a mismatch), its
	                         * entry index + 1 in the low ones; 0 empty */
	size_t nslots;

	struct ppos *pos;
	size_t npos, poscap;

	int changed, barrier;   /* this epoch */
	int64_t first_change;   /* monotonic ms */

	/* the epoch being committed */
	/* The epoch being built, then in flight: its keys and its arguments
	 * as RESP bulk strings (kbuf, arena), spans locating each payload in
	 * them, and the kinds letters (ARGV[1]). */
	fp_buf kbuf, arena, kinds, scratch;
	struct spanv keys, args;
	struct sizev kent;      /* per key: the entry (in fl after the seal) it writes */
	struct fldref *fld;     /* the fields of the entry being built */
	size_t fldcap;
	uint64_t bfields, bskipped; /* fields the epoch writes; fields it leaves as they are */
	const char **argv;
	size_t *argl, argcap;

	redisContext *c;
	int started, ambiguous, landed;
	int origin;             /* an origin frame set the expected offsets */
	size_t nfence;          /* offsets fields the epoch being committed checks */
	int warned_config, warned_persist;
	int epipe;              /* the dry-run reader went away */
	int64_t out_start, out_warned, backoff;
	unsigned out_attempts;

	fp_buf dry;
	kvw_stats st;
	uint32_t *lat;          /* commit latencies, µs */
	size_t nlat, latcap;

	/* sync frames (fp-kvwrite(1)): after the first one, a commit starts
	 * only when no update was read since the last one */
	int sync_mode;
	uint64_t since_sync;

	/* The epoch in flight: built (arena, keys, args, kinds), its RESP in
	 * seg, written up to seg_i/seg_done; the key table is free for the next
	 * epoch. */
	int inflight;
	fp_buf out;             /* the commit's pipeline, as RESP, but for the
	                         * keys and arguments it takes from kbuf and arena
	                         * as they are: the pipeline is seg[0..nseg) */
	struct seg *seg;
	size_t nseg, segcap, out_mark; /* out bytes before out_mark are in seg */
	size_t seg_i, seg_done; /* sending: the piece, and its bytes sent
	                         * (seg_i == nseg: all sent) */
	struct sizev qkey;      /* per command inside MULTI: its key's index in keys */
	size_t nreplies, got;   /* replies the pipeline gets; received so far */
	redisReply *chk, *qerr; /* the check's reply; a command refused in MULTI */
	unsigned aborts;        /* attempts in a row aborted by the fence key */
	int64_t sent_at;        /* monotonic ms: the current attempt began */
	int64_t commit_t0;      /* monotonic µs: the commit began */
};

static int
fail(kvw *w, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->errstr, sizeof w->errstr, fmt, ap);
	va_end(ap);
	return code;
}

static void
warn(kvw *w, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	if (!w->o.warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	w->o.warn(w->o.warn_arg, msg);
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Keys (the key table, the written-fields cache) and fields (the cache). */
static uint64_t
hash_bytes(const uint8_t *p, size_t n)
{
	return XXH3_64bits(p, n);
}

/* Text of an object for display: control bytes as '?', at most 80 bytes. */
static const char *
shown(const void *p, size_t n, char *buf, size_t len)
{
	size_t j = 0;
	const uint8_t *s = p;
	for (size_t i = 0; i < n && j + 4 < len; i++) {
		if (j >= 80) {
			memcpy(buf + j, "...", 3);
			j += 3;
			break;
		}
		buf[j++] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i];
	}
	buf[j] = 0;
	return buf;
}

/* ---- top-level map iteration over a checked body ---- */

static int
map_next(const uint8_t *p, size_t n, size_t *off, const char **k, size_t *kl,
         const uint8_t **v, size_t *vl)
{
	size_t ks = mp_skip(p + *off, n - *off);
	if (!ks || mp_read_str(p + *off, ks, k, kl) < 0)
		return -1;
	size_t vs = mp_skip(p + *off + ks, n - *off - ks);
	if (!vs)
		return -1;
	*v = p + *off + ks;
	*vl = vs;
	*off += ks + vs;
	return 0;
}

static int
find(const uint8_t *body, size_t len, const char *key, const uint8_t **v, size_t *vl)
{
	return mp_map_find(body, len, key, strlen(key), v, vl);
}

static int
is_nil(const uint8_t *v, size_t vl)
{
	return vl == 1 && v[0] == 0xc0;
}

/* Bytes of a str or bin. */
static int
read_bytes(const uint8_t *v, size_t vl, const uint8_t **b, size_t *bl)
{
	const char *s;
	if (mp_read_str(v, vl, &s, bl) == 0) {
		*b = (const uint8_t *)s;
		return 0;
	}
	return mp_read_bin(v, vl, b, bl);
}


/* The Redis text of a feature value: numbers as decimal text, str and bin
 * as their bytes, true/false, arrays and maps as compact JSON. */
static int
value_text(fp_buf *a, const uint8_t *v, size_t vl)
{
	const uint8_t *b;
	size_t bl;
	if (read_bytes(v, vl, &b, &bl) == 0)
		return fp_buf_add(a, b, bl);
	if (v[0] == 0xc2 || v[0] == 0xc3)
		return fp_buf_adds(a, v[0] == 0xc3 ? "true" : "false");
	int64_t i;
	if (mp_read_int(v, vl, &i) == 0) { /* mp_to_json's text, without snprintf */
		char t[24];
		return fp_buf_add(a, t, fp_fmt_i64(t, i));
	}
	if (v[0] == 0xca || v[0] == 0xcb) {
		double d;
		if (mp_read_number(v, vl, &d) < 0)
			return -1;
		if (isnan(d))
			return fp_buf_adds(a, "nan");
		if (isinf(d))
			return fp_buf_adds(a, d > 0 ? "inf" : "-inf");
	}
	return mp_to_json(v, vl, a);
}

static int
is_number(const uint8_t *v, size_t vl)
{
	double d;
	return mp_read_number(v, vl, &d) == 0 && !isnan(d);
}

/* A top-k value: nil or an array of [value, count] pairs, value a scalar. */
static int
check_topk(const uint8_t *v, size_t vl)
{
	uint32_t n, m;
	size_t hdr, h2;
	if (is_nil(v, vl))
		return 0;
	if (mp_read_array(v, vl, &n, &hdr) < 0)
		return -1;
	size_t off = hdr;
	for (uint32_t i = 0; i < n; i++) {
		size_t es = mp_skip(v + off, vl - off);
		if (!es || mp_read_array(v + off, es, &m, &h2) < 0 || m != 2)
			return -1;
		const uint8_t *x = v + off + h2;
		size_t xs = mp_skip(x, es - h2);
		uint32_t dummy;
		size_t dh;
		if (!xs || mp_read_array(x, xs, &dummy, &dh) == 0 || mp_read_map(x, xs, &dummy, &dh) == 0)
			return -1;
		if (!is_number(x + xs, es - h2 - xs))
			return -1;
		off += es;
	}
	return 0;
}

/* ---- spans: arguments as RESP bulk strings in kbuf (keys) or arena ---- */

static int
spanv_push(struct spanv *sv, size_t off, size_t len)
{
	if (sv->n == sv->cap) {
		struct span *nv = fp_array_grow(sv->v, &sv->cap, sizeof *nv, 256);
		if (!nv)
			return -1;
		sv->v = nv;
	}
	sv->v[sv->n].off = off;
	sv->v[sv->n].len = len;
	sv->n++;
	return 0;
}

/* Append "$n\r\n" p "\r\n" to o; *off gets where p landed. */
static int
bulk_add(fp_buf *o, const void *p, size_t n, size_t *off)
{
	char t[32];
	size_t h;
	t[0] = '$';
	h = 1 + fp_fmt_i64(t + 1, (long long)n);
	t[h++] = '\r';
	t[h++] = '\n';
	if (fp_buf_reserve(o, h + n + 2) < 0)
		return -1;
	memcpy(o->p + o->len, t, h);
	*off = o->len + h;
	if (n)
		memcpy(o->p + *off, p, n);
	memcpy(o->p + *off + n, "\r\n", 2);
	o->len += h + n + 2;
	return 0;
}

static int
push_bytes(kvw *w, struct spanv *sv, const void *p, size_t n)
{
	size_t off;
	if (bulk_add(sv == &w->keys ? &w->kbuf : &w->arena, p, n, &off) < 0)
		return -1;
	return spanv_push(sv, off, n);
}

static int
push_num(kvw *w, struct spanv *sv, long long v)
{
	char t[24];
	return push_bytes(w, sv, t, fp_fmt_i64(t, v));
}


/* ---- creation ---- */

kvw *
kvw_new(const kvw_options *o)
{
	kvw *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->o = *o;
	if (!w->o.pipeline)
		w->o.pipeline = "default";
	if (w->o.nshards < 1)
		w->o.nshards = 1;
	if (!w->o.max_batch)
		w->o.max_batch = 10000;
	store_offsets_key(w->o.pipeline, w->offkey, sizeof w->offkey);
	/* fp:{pipeline}:offsets -> fp:{pipeline}:fence:S/N, the same hash tag */
	snprintf(w->fencekey, sizeof w->fencekey, "%.*sfence:%d/%d",
	         (int)(strlen(w->offkey) - strlen("offsets")), w->offkey, w->o.shard, w->o.nshards);
	w->nslots = 1024;
	w->slots = calloc(w->nslots, sizeof *w->slots);
	if (w->o.cache_keys && !(w->cache = wcache_new(w->o.cache_keys))) {
		free(w->slots);
		w->slots = NULL;
	}
	if (!w->slots) {
		free(w);
		return NULL;
	}
	w->backoff = BACKOFF_MIN_MS;
	return w;
}


/* n bytes (16-aligned) of room for an entry: from the slab up to
 * SLAB_PIECE, else malloc'd.  NULL when out of memory. */
static void *
room_get(struct slab *s, size_t n)
{
	if (n > SLAB_PIECE)
		return malloc(n);
	n = (n + 15) & ~(size_t)15;
	if (!s->nblk || s->used + n > SLAB_BLOCK) {
		if (s->nblk == s->blkcap) {
			uint8_t **nb = fp_array_grow(s->blk, &s->blkcap, sizeof *nb, 16);
			if (!nb)
				return NULL;
			s->blk = nb;
		}
		void *b;
		if (posix_memalign(&b, SLAB_ALIGN, SLAB_BLOCK) != 0)
			return NULL;
		fp_mem_huge(b, SLAB_BLOCK);
		s->blk[s->nblk++] = b;
		s->used = 0;
	}
	void *p = s->blk[s->nblk - 1] + s->used;
	s->used += n;
	return p;
}

/* The room p of old bytes, outgrown: freed when malloc'd. */
static void
room_put(void *p, size_t old)
{
	if (old > SLAB_PIECE)
		free(p);
}

static void
epochbuf_release(struct epochbuf *b)
{
	for (size_t i = 0; i < b->entcap; i++) {
		room_put(b->ent[i].body, b->ent[i].cap);
		room_put(b->ent[i].fh, (size_t)b->ent[i].fhcap * sizeof *b->ent[i].fh);
	}
	free(b->ent);
	free(b->stamp);
}

void
kvw_free(kvw *w)
{
	if (!w)
		return;
	epochbuf_release(&w->rd);
	epochbuf_release(&w->fl);
	for (size_t i = 0; i < w->slab.nblk; i++)
		free(w->slab.blk[i]);
	free(w->slab.blk);
	free(w->slots);
	wcache_free(w->cache);
	free(w->kent.v);
	free(w->fld);
	for (size_t i = 0; i < w->npos; i++)
		free(w->pos[i].topic);
	free(w->pos);
	fp_buf_release(&w->arena);
	fp_buf_release(&w->kbuf);
	fp_buf_release(&w->scratch);
	fp_buf_release(&w->kinds);
	fp_buf_release(&w->dry);
	free(w->keys.v);
	free(w->args.v);
	free(w->argv);
	free(w->argl);
	free(w->lat);
	fp_buf_release(&w->out);
	free(w->seg);
	free(w->qkey.v);
	if (w->chk)
		freeReplyObject(w->chk);
	if (w->qerr)
		freeReplyObject(w->qerr);
	if (w->c)
		redisFree(w->c);
	free(w);
}

const char *
kvw_errstr(const kvw *w)
{
	return w->errstr;
}

int
kvw_output_closed(const kvw *w)
{
	return w->epipe;
}

fp_buf *
kvw_dry_output(kvw *w)
{
	return &w->dry;
}

/* ---- positions ---- */

static struct ppos *
pos_get(kvw *w, const char *topic, size_t tlen, int32_t part)
{
	for (size_t i = 0; i < w->npos; i++) {
		struct ppos *p = &w->pos[i];
		if (p->part == part && p->tlen == tlen && !memcmp(p->topic, topic, tlen))
			return p;
	}
	if (w->npos == w->poscap) {
		struct ppos *np = fp_array_grow(w->pos, &w->poscap, sizeof *np, 16);
		if (!np)
			return NULL;
		w->pos = np;
	}
	struct ppos *p = &w->pos[w->npos];
	memset(p, 0, sizeof *p);
	if (!(p->topic = malloc(tlen + 1)))
		return NULL;
	memcpy(p->topic, topic, tlen);
	p->topic[tlen] = 0;
	p->tlen = tlen;
	p->part = part;
	w->npos++;
	return p;
}

static int
pos_dirty(const struct ppos *p)
{
	return p->has_pending && (!p->has_committed || store_pos_cmp(p->pending, p->committed) > 0);
}

static void
note_change(kvw *w)
{
	if (!w->changed) {
		w->changed = 1;
		w->first_change = fp_mono_ms();
	}
}

/* Move a position forward (never back). */
static int
pos_advance(kvw *w, const char *topic, size_t tlen, int32_t part, store_pos np)
{
	struct ppos *p = pos_get(w, topic, tlen, part);
	if (!p)
		return -1;
	store_pos cur = p->has_pending ? p->pending : p->committed;
	if ((!p->has_pending && !p->has_committed) || store_pos_cmp(np, cur) > 0) {
		p->pending = np;
		p->has_pending = 1;
		note_change(w);
	}
	return 0;
}

/* @src: [topic, partition, offset] or [topic, partition, offset, index]. */
static int
parse_src(const uint8_t *v, size_t vl, const char **topic, size_t *tlen, int32_t *part,
          store_pos *np)
{
	uint32_t n;
	size_t hdr, off;
	int64_t x[3] = {0, 0, 0};
	if (mp_read_array(v, vl, &n, &hdr) < 0 || (n != 3 && n != 4))
		return -1;
	off = hdr;
	size_t s = mp_skip(v + off, vl - off);
	if (!s || mp_read_str(v + off, s, topic, tlen) < 0 || *tlen == 0)
		return -1;
	off += s;
	for (uint32_t i = 0; i + 1 < n; i++) {
		s = mp_skip(v + off, vl - off);
		if (!s || mp_read_int(v + off, s, &x[i]) < 0 || x[i] < 0)
			return -1;
		off += s;
	}
	if (x[0] > INT32_MAX || x[1] == INT64_MAX)
		return -1;
	*part = (int32_t)x[0];
	if (n == 3) {
		np->offset = x[1] + 1;
		np->index = 0;
	} else {
		if (x[2] == INT64_MAX)
			return -1;
		np->offset = x[1];
		np->index = x[2] + 1;
	}
	return 0;
}

/* One element [topic, partition, X] of a barrier's or an origin's @pos at
 * v + off: *es its size, X's raw bytes in *x, *xl.  0, or -1 when malformed. */
static int
pos_elem(const uint8_t *v, size_t vl, size_t off, size_t *es, const char **topic, size_t *tlen,
         int64_t *part, const uint8_t **x, size_t *xl)
{
	uint32_t m;
	size_t h2, s;
	*es = mp_skip(v + off, vl - off);
	if (!*es || mp_read_array(v + off, *es, &m, &h2) < 0 || m != 3)
		return -1;
	off += h2;
	s = mp_skip(v + off, vl - off);
	if (!s || mp_read_str(v + off, s, topic, tlen) < 0 || !*tlen)
		return -1;
	off += s;
	s = mp_skip(v + off, vl - off);
	if (!s || mp_read_int(v + off, s, part) < 0 || *part < 0 || *part > INT32_MAX)
		return -1;
	off += s;
	*x = v + off;
	*xl = mp_skip(v + off, vl - off);
	return *xl ? 0 : -1;
}

static int
add_barrier(kvw *w, const uint8_t *body, size_t len, uint64_t frameno)
{
	const uint8_t *v, *x;
	size_t vl, hdr, off, xl;
	uint32_t n;
	if (!find(body, len, "@pos", &v, &vl) || mp_read_array(v, vl, &n, &hdr) < 0)
		return fail(w, KVW_DATA, "frame %llu: barrier without an @pos array",
		            (unsigned long long)frameno);
	/* check all, then apply */
	for (int apply = 0; apply < 2; apply++) {
		off = hdr;
		for (uint32_t i = 0; i < n; i++) {
			size_t es, tlen;
			const char *topic;
			int64_t part, next;
			if (pos_elem(v, vl, off, &es, &topic, &tlen, &part, &x, &xl) < 0 ||
			    mp_read_int(x, xl, &next) < 0 || next < 0)
				return fail(w, KVW_DATA,
				            "frame %llu: barrier @pos element %u is not [topic, partition, next_offset]",
				            (unsigned long long)frameno, i + 1);
			if (apply &&
			    pos_advance(w, topic, tlen, (int32_t)part, (store_pos){next, 0}) < 0)
				return fail(w, KVW_IO, "out of memory");
			off += es;
		}
	}
	w->barrier = 1;
	w->st.barriers++;
	return 0;
}

/* An origin frame (fp-merge, before any update): the stored positions its
 * state builds on.  They become what this shard's offsets fields must hold
 * at the first commit; a field it does not list must be missing. */
static int
add_origin(kvw *w, const uint8_t *body, size_t len, uint64_t frameno)
{
	unsigned long long fn = (unsigned long long)frameno;
	const uint8_t *v, *x;
	size_t vl, hdr, off, xl;
	uint32_t n;
	int64_t shard, nshards;
	if (w->origin)
		return 0; /* only the first one counts */
	if (!find(body, len, "@shard", &v, &vl) || mp_read_int(v, vl, &shard) < 0 ||
	    !find(body, len, "@shards", &v, &vl) || mp_read_int(v, vl, &nshards) < 0)
		return fail(w, KVW_DATA, "frame %llu: origin without integer @shard and @shards", fn);
	if (shard != w->o.shard || nshards != w->o.nshards)
		return fail(w, KVW_DATA,
		            "frame %llu: origin of shard %lld/%lld, but this fp-kvwrite writes shard "
		            "%d/%d (FP_SHARD, FP_SHARDS)", fn, (long long)shard, (long long)nshards,
		            w->o.shard, w->o.nshards);
	const char *pipe;
	size_t pipel;
	if (find(body, len, "@pipeline", &v, &vl) &&
	    (mp_read_str(v, vl, &pipe, &pipel) < 0 || pipel != strlen(w->o.pipeline) ||
	     memcmp(pipe, w->o.pipeline, pipel)))
		return fail(w, KVW_DATA, "frame %llu: origin of another pipeline than '%s' (FP_PIPELINE)",
		            fn, w->o.pipeline);
	if (w->st.updates || w->st.barriers || w->st.epochs)
		return fail(w, KVW_DATA, "frame %llu: origin after updates or barriers", fn);
	if (!find(body, len, "@pos", &v, &vl) || mp_read_array(v, vl, &n, &hdr) < 0)
		return fail(w, KVW_DATA, "frame %llu: origin without an @pos array", fn);
	for (int apply = 0; apply < 2; apply++) {
		if (apply)
			for (size_t i = 0; i < w->npos; i++)
				w->pos[i].has_committed = w->pos[i].has_pending = 0;
		off = hdr;
		for (uint32_t i = 0; i < n; i++) {
			size_t es, tlen, pl;
			const char *topic, *ps;
			int64_t part;
			store_pos sp;
			if (pos_elem(v, vl, off, &es, &topic, &tlen, &part, &x, &xl) < 0 ||
			    mp_read_str(x, xl, &ps, &pl) < 0 || store_pos_parse(ps, pl, &sp) < 0)
				return fail(w, KVW_DATA,
				            "frame %llu: origin @pos element %u is not [topic, partition, \"O\" or \"O:I\"]",
				            fn, i + 1);
			if (apply) {
				struct ppos *p = pos_get(w, topic, tlen, (int32_t)part);
				if (!p)
					return fail(w, KVW_IO, "out of memory");
				p->committed = p->pending = sp;
				p->has_committed = p->has_pending = 1;
			}
			off += es;
		}
	}
	w->origin = 1;
	return 0;
}

/* A sync frame (fp-merge, after each segment of coalesced updates): a
 * consistent point, and the positions the segment reached ("@pos", when
 * present: [topic, partition, "O" or "O:I"] each).  An update carries its
 * key's last record's @src only; records before it may come from other
 * partitions, whose positions only the sync gives. */
static int
add_sync(kvw *w, const uint8_t *body, size_t len, uint64_t frameno)
{
	const uint8_t *v, *x;
	size_t vl, hdr, off, xl;
	uint32_t n = 0;
	if (find(body, len, "@pos", &v, &vl) && mp_read_array(v, vl, &n, &hdr) < 0)
		return fail(w, KVW_DATA, "frame %llu: sync @pos is not an array", (unsigned long long)frameno);
	for (int apply = 0; apply < 2 && n; apply++) {
		off = hdr;
		for (uint32_t i = 0; i < n; i++) {
			size_t es, tlen, pl;
			const char *topic, *ps;
			int64_t part;
			store_pos sp;
			if (pos_elem(v, vl, off, &es, &topic, &tlen, &part, &x, &xl) < 0 ||
			    mp_read_str(x, xl, &ps, &pl) < 0 || store_pos_parse(ps, pl, &sp) < 0)
				return fail(w, KVW_DATA,
				            "frame %llu: sync @pos element %u is not [topic, partition, \"O\" or \"O:I\"]",
				            (unsigned long long)frameno, i + 1);
			if (apply && pos_advance(w, topic, tlen, (int32_t)part, sp) < 0)
				return fail(w, KVW_IO, "out of memory");
			off += es;
		}
	}
	w->sync_mode = 1; /* a consistent point: a commit may start */
	w->since_sync = 0;
	return 0;
}

/* ---- the key table ---- */

static uint64_t
slot_of(uint64_t h, size_t i)
{
	return (h & 0xffffffff00000000ull) | (uint64_t)(i + 1);
}

static int
table_grow(kvw *w)
{
	size_t ns = w->nslots * 2;
	uint64_t *s = calloc(ns, sizeof *s);
	if (!s)
		return -1;
	for (size_t i = 0; i < w->rd.nent; i++) {
		size_t j = w->rd.ent[i].hash & (ns - 1);
		while (s[j])
			j = (j + 1) & (ns - 1);
		s[j] = slot_of(w->rd.ent[i].hash, i);
	}
	free(w->slots);
	w->slots = s;
	w->nslots = ns;
	return 0;
}

/* The entry of key, or NULL; *slot gets where it is or would go. */
static struct entry *
table_find(kvw *w, const uint8_t *key, size_t klen, uint64_t h, size_t *slot)
{
	size_t j = h & (w->nslots - 1);
	uint64_t tag = h & 0xffffffff00000000ull;
	while (w->slots[j]) {
		if ((w->slots[j] & 0xffffffff00000000ull) == tag) {
			struct entry *e = &w->rd.ent[(uint32_t)w->slots[j] - 1];
			if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) {
				*slot = j;
				return e;
			}
		}
		j = (j + 1) & (w->nslots - 1);
	}
	*slot = j;
	return NULL;
}

/* Updates still in the reader's buffer, looked at before kvw_add() gets
 * them: with a key table far larger than the caches, the slot, the entry
 * and its body are three cache misses in a row for each update; fetched in
 * stages, one update ahead each, they overlap the work on the updates
 * before.  stage 3: the key's slot; 2: the entry it names; 1: the entry's
 * body (the key compared, then overwritten).  Only the usual layout is
 * looked at (fp-merge writes @key first), and nothing is trusted: the bytes
 * are not checked yet, and a wrong guess costs a useless prefetch. */
static void
prefetch_update(const kvw *w, const uint8_t *p, size_t n, int stage)
{
	/* fixmap or map16, then the fixstr "@key", then a fixstr or str8 */
	if (n < 10)
		return;
	size_t at = p[0] >= 0x80 && p[0] <= 0x8f ? 1 : p[0] == 0xde ? 3 : 0;
	if (!at || memcmp(p + at, "\xa4@key", 5))
		return;
	at += 5;
	size_t klen, c = p[at];
	if (c >= 0xa0 && c <= 0xbf)
		klen = c & 0x1f, at += 1;
	else if (c == 0xd9)
		klen = p[at + 1], at += 2;
	else
		return;
	if (klen > n - at)
		return;
	uint64_t h = hash_bytes(p + at, klen);
	const uint64_t *slot = &w->slots[h & (w->nslots - 1)];
	if (stage == 3) {
		__builtin_prefetch(slot);
		return;
	}
	if (!*slot || (*slot & 0xffffffff00000000ull) != (h & 0xffffffff00000000ull))
		return; /* a new key (or a collision further on: not worth it) */
	const struct entry *e = &w->rd.ent[(uint32_t)*slot - 1];
	if (stage == 2)
		__builtin_prefetch(e);
	else
		__builtin_prefetch(e->key);
}

static int
entry_set(struct slab *s, struct entry *e, const uint8_t *body, size_t len, size_t keyoff,
          size_t klen)
{
	if (e->cap < len) {
		/* slack: an entry serves other keys in later epochs */
		size_t nc = len < 256 ? 256 : (len + len / 2 + 63) & ~(size_t)63;
		uint8_t *nb = room_get(s, nc);
		if (!nb)
			return -1;
		room_put(e->body, e->cap);
		e->body = nb;
		e->cap = nc;
	}
	memcpy(e->body, body, len);
	e->len = len;
	e->key = e->body + keyoff;
	e->klen = klen;
	return 0;
}

/* The reserved fields of a frame, found in one pass over its top-level map;
 * also the first --zset feature that is not a top-k list. */
struct fields {
	const uint8_t *ctl, *key, *src, *ttl, *state, *ts, *in;
	size_t ctll, keyl, srcl, ttll, statel, tsl, inl;
	const char *bad_zset;
	uint32_t nset, ndel;    /* fields an update stores, and deletes (nil) */
};

/* A top-level field of an update that is not stored: @key, @src, @ts,
 * @in, @ttl (every reserved name but @state). */
static int
not_stored(const char *k, size_t kl)
{
	return kl && k[0] == '@' && !(kl == 6 && !memcmp(k, "@state", 6));
}


/* top: where the ntop top-level keys are (mp_check_frame_top()), or NULL
 * to find them here. */
static int
scan_fields(kvw *w, const uint8_t *body, size_t len, struct fields *f, const uint32_t *top,
            uint32_t ntop)
{
	uint32_t n;
	size_t off;
	memset(f, 0, sizeof *f);
	if (mp_read_map(body, len, &n, &off) < 0)
		return -1;
	if (top && ntop != n)
		top = NULL;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		const uint8_t *v;
		size_t kl, vl;
		if (top) {
			if (mp_read_str(body + top[i], len - top[i], &k, &kl) < 0)
				return -1;
			v = (const uint8_t *)k + kl;
			vl = (i + 1 < n ? body + top[i + 1] : body + len) - v;
		} else if (map_next(body, len, &off, &k, &kl, &v, &vl) < 0)
			return -1;
		if (!not_stored(k, kl))
			*(is_nil(v, vl) ? &f->ndel : &f->nset) += 1;
#define FIELD(name, p, l) \
	if (kl == sizeof name - 1 && !memcmp(k, name, kl)) { \
		if (!f->p) f->p = v, f->l = vl; \
		continue; \
	}
		if (kl && k[0] == '@') {
			FIELD("@ctl", ctl, ctll)
			FIELD("@key", key, keyl)
			FIELD("@src", src, srcl)
			FIELD("@ttl", ttl, ttll)
			FIELD("@state", state, statel)
			FIELD("@ts", ts, tsl)
			FIELD("@in", in, inl)
			continue;
		}
#undef FIELD
		for (size_t z = 0; z < w->o.nzset && !f->bad_zset; z++)
			if (strlen(w->o.zset[z]) == kl && !memcmp(w->o.zset[z], k, kl) &&
			    check_topk(v, vl) < 0)
				f->bad_zset = w->o.zset[z];
	}
	return 0;
}

/* Keep the update's @ts and @in until its commit is acknowledged. */
static void
note_stamps(kvw *w, const struct fields *f)
{
	if (w->rd.nstamp == w->rd.stampcap) {
		int64_t (*ns)[2] = fp_array_grow(w->rd.stamp, &w->rd.stampcap, sizeof *ns, 1024);
		if (!ns)
			return; /* out of memory: this update's latency is not observed */
		w->rd.stamp = ns;
	}
	int64_t *st = w->rd.stamp[w->rd.nstamp++];
	/* Kafka says -1 for no timestamp; a negative time is none */
	if (!f->ts || mp_read_int(f->ts, f->tsl, &st[0]) < 0 || st[0] < 0)
		st[0] = INT64_MIN;
	if (!f->in || mp_read_int(f->in, f->inl, &st[1]) < 0 || st[1] < 0)
		st[1] = INT64_MIN;
}

/* An epoch was acknowledged: latencies of its updates, its sizes. */
static void
observe_epoch(kvw *w, int64_t commit_us)
{
	kvw_metrics *m = w->o.metrics;
	if (!m)
		return;
	stats_add(m->records_out, w->fl.updates);
	stats_add(m->epochs, 1);
	stats_add(m->keys, w->fl.nent);
	stats_add(m->fields, w->bfields);
	stats_add(m->fields_skipped, w->bskipped);
	stats_observe(m->epoch_keys, w->fl.nent);
	stats_observe(m->epoch_updates, w->fl.updates);
	if (w->o.dry_run)
		return;
	stats_observe(m->commit_us, commit_us < 0 ? 0 : (uint64_t)commit_us);
	int64_t now_us = fp_wall_us();
	int64_t now_ms = now_us / 1000;
	for (size_t i = 0; i < w->fl.nstamp; i++) {
		int64_t t = w->fl.stamp[i][0], in = w->fl.stamp[i][1];
		/* ms precision for @ts; a future time (a skewed producer) is 0 */
		if (t != INT64_MIN)
			stats_observe(m->e2e_us, t >= now_ms ? 0 : (uint64_t)(now_ms - t) * 1000u);
		if (in != INT64_MIN)
			stats_observe(m->pipeline_us, in >= now_us ? 0 : (uint64_t)(now_us - in));
	}
}

/* The counters kept in w->st, into the metrics. */
static void
metrics_sync(kvw *w)
{
	kvw_metrics *m = w->o.metrics;
	m->records_in->v = w->st.updates;
	m->barriers->v = w->st.barriers;
	m->reconnects->v = w->st.reconnects;
}

/* kvw_add(); top and ntop as scan_fields() takes them. */
static int
add_frame(kvw *w, const uint8_t *body, size_t len, uint64_t frameno, const uint32_t *top,
          uint32_t ntop)
{
	unsigned long long fn = (unsigned long long)frameno;
	const uint8_t *key;
	size_t klen;
	char sh[100];
	struct fields f;

	if (scan_fields(w, body, len, &f, top, ntop) < 0)
		return fail(w, KVW_DATA, "frame %llu: not a valid frame body", fn);
	if (f.ctl) {
		const char *ctl;
		size_t cl;
		if (mp_read_str(f.ctl, f.ctll, &ctl, &cl) == 0 && cl == 7 && !memcmp(ctl, "barrier", 7))
			return add_barrier(w, body, len, frameno);
		if (mp_read_str(f.ctl, f.ctll, &ctl, &cl) == 0 && cl == 6 && !memcmp(ctl, "origin", 6))
			return add_origin(w, body, len, frameno);
		if (mp_read_str(f.ctl, f.ctll, &ctl, &cl) == 0 && cl == 4 && !memcmp(ctl, "sync", 4))
			return add_sync(w, body, len, frameno);
		return 0; /* other control frames mean nothing to a sink */
	}
	if (!f.key)
		return fail(w, KVW_DATA, "frame %llu: update has no @key (is the input fp-merge output?)", fn);
	if (read_bytes(f.key, f.keyl, &key, &klen) < 0 || klen == 0)
		return fail(w, KVW_DATA, "frame %llu: @key must be a non-empty str or bin", fn);
	if (klen == strlen(w->offkey) && !memcmp(key, w->offkey, klen))
		return fail(w, KVW_DATA, "frame %llu: @key '%s' is the offsets hash of this pipeline", fn,
		            w->offkey);
	size_t keyoff = (size_t)(key - body);

	const char *topic = NULL;
	size_t tlen = 0;
	int32_t part = 0;
	store_pos np = {0, 0};
	if (f.src && parse_src(f.src, f.srcl, &topic, &tlen, &part, &np) < 0)
		return fail(w, KVW_DATA,
		            "frame %llu: @src of '%s' is not [topic, partition, offset(, index)]", fn,
		            shown(key, klen, sh, sizeof sh));
	int64_t ttl = 0;
	if (f.ttl && !is_nil(f.ttl, f.ttll) &&
	    (mp_read_int(f.ttl, f.ttll, &ttl) < 0 || ttl < 0 || ttl > ((int64_t)1 << 40)))
		return fail(w, KVW_DATA, "frame %llu: @ttl of '%s' is not a number of seconds (0 to 2^40)", fn,
		            shown(key, klen, sh, sizeof sh));
	const uint8_t *b;
	size_t bl;
	if (f.state && !is_nil(f.state, f.statel) && read_bytes(f.state, f.statel, &b, &bl) < 0)
		return fail(w, KVW_DATA, "frame %llu: @state of '%s' is not bin", fn,
		            shown(key, klen, sh, sizeof sh));
	if (f.bad_zset)
		return fail(w, KVW_DATA,
		            "frame %llu: feature '%s' of '%s' is not a top-k list of [value, count] "
		            "pairs (--zset)", fn, f.bad_zset, shown(key, klen, sh, sizeof sh));

	uint64_t h = hash_bytes(key, klen);
	size_t slot;
	struct entry *e = table_find(w, key, klen, h, &slot);
	if (!e) {
		if ((w->rd.nent + 1) * 2 > w->nslots) {
			if (table_grow(w) < 0)
				return fail(w, KVW_IO, "out of memory");
			table_find(w, key, klen, h, &slot);
		}
		if (w->rd.nent == w->rd.entcap) {
			size_t oc = w->rd.entcap;
			struct entry *ne = fp_array_grow(w->rd.ent, &w->rd.entcap, sizeof *ne, 1024);
			if (!ne)
				return fail(w, KVW_IO, "out of memory");
			memset(ne + oc, 0, (w->rd.entcap - oc) * sizeof *ne);
			w->rd.ent = ne;
		}
		e = &w->rd.ent[w->rd.nent];
		w->slots[slot] = slot_of(h, w->rd.nent++);
		e->hash = h;
	}
	if (entry_set(&w->slab, e, body, len, keyoff, klen) < 0)
		return fail(w, KVW_IO, "out of memory");
	e->ttl = ttl;
	e->nset = f.nset;
	e->ndel = f.ndel;
	if (topic && pos_advance(w, topic, tlen, part, np) < 0)
		return fail(w, KVW_IO, "out of memory");
	note_change(w);
	w->st.updates++;
	w->rd.updates++;
	w->since_sync++;
	if (w->o.metrics && !w->o.dry_run)
		note_stamps(w, &f);
	return 0;
}

int
kvw_add(kvw *w, const uint8_t *body, size_t len, uint64_t frameno)
{
	return add_frame(w, body, len, frameno, NULL, 0);
}

/* The epoch must end here: a barrier, or max_batch keys. */
static int
full(const kvw *w)
{
	return w->barrier || w->rd.nent >= w->o.max_batch;
}

int
kvw_due(kvw *w)
{
	if (full(w))
		return 1;
	return w->changed && w->o.flush_ms > 0 && fp_mono_ms() - w->first_change >= w->o.flush_ms;
}

static int consistent(const kvw *w);

int64_t
kvw_wait_ms(kvw *w)
{
	/* In the middle of a batch only more input can let a commit start:
	 * a timeout of 0 there would spin, and take the CPU from fp-merge,
	 * which is making the rest of the batch. */
	if (!w->changed || w->o.flush_ms <= 0 || !consistent(w))
		return -1;
	int64_t left = w->first_change + w->o.flush_ms - fp_mono_ms();
	return left < 0 ? 0 : left;
}

/* ---- building an epoch ---- */

/* A feature value as an argument: str and bin as they are, the rest as
 * value_text() writes it. */
static int
push_value(kvw *w, const uint8_t *v, size_t vl)
{
	const uint8_t *b;
	size_t bl;
	if (read_bytes(v, vl, &b, &bl) == 0)
		return push_bytes(w, &w->args, b, bl);
	w->scratch.len = 0;
	if (value_text(&w->scratch, v, vl) < 0)
		return -1;
	return push_bytes(w, &w->args, w->scratch.p, w->scratch.len);
}

static int
sizev_push(struct sizev *sv, size_t x)
{
	if (sv->n == sv->cap) {
		size_t *nv = fp_array_grow(sv->v, &sv->cap, sizeof *nv, 1024);
		if (!nv)
			return -1;
		sv->v = nv;
	}
	sv->v[sv->n++] = x;
	return 0;
}

/* keys.v[keys.n - 1], just pushed, writes entry ei (SIZE_MAX: none). */
static int
kent_push(kvw *w, size_t ei)
{
	return sizev_push(&w->kent, ei);
}

/* Is field hash h among the n cached ones (at j, its place last time, first)? */
static int
fh_cached(const uint64_t *cf, uint32_t n, uint32_t j, uint64_t h)
{
	if (j < n && cf[j] == h)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		if (cf[i] == h)
			return 1;
	return 0;
}

/* The writes of entry ei (e) into the epoch being built: its key, kind and
 * arguments.  Every field stored or deleted is hashed into e->fh; with the
 * key in the written-fields cache (valid at now_ms) only the fields whose
 * hash is not there are written, and the key's kind is 'p'.  rebuild: the
 * epoch in flight is built again (the key table holds the next one). */
static int
build_entry(kvw *w, struct entry *e, size_t ei, int64_t now_ms, int rebuild)
{
	const uint8_t *body = e->body, *v;
	size_t len = e->len, vl, off, hdr, at;
	const char *k;
	size_t kl;
	uint32_t n, nf = e->nset + e->ndel, nset = 0, ndel = 0, cn = 0, j;
	int64_t ttl = e->ttl;

	if (e->fhcap < nf) {
		/* (no copy: every hash is written below) */
		uint32_t nc = nf < 8 ? 8 : nf + nf / 2;
		uint64_t *nh = room_get(&w->slab, (size_t)nc * sizeof *nh);
		if (!nh)
			return -1;
		room_put(e->fh, (size_t)e->fhcap * sizeof *nh);
		e->fh = nh;
		e->fhcap = nc;
	}
	if (w->fldcap < nf) {
		struct fldref *nr = realloc(w->fld, nf * sizeof *nr);
		if (!nr)
			return -1;
		w->fld = nr;
		w->fldcap = nf;
	}
	e->until = INT64_MAX;
	const uint64_t *cf = w->cache ? wcache_get(w->cache, e->hash, now_ms, &cn, &e->until) : NULL;
	if (mp_read_map(body, len, &n, &hdr) < 0)
		return -1;
	off = hdr;
	j = 0;
	for (uint32_t i = 0; i < n && j < nf; i++) {
		at = off;
		map_next(body, len, &off, &k, &kl, &v, &vl);
		if (not_stored(k, kl))
			continue;
		/* the name and the value, hashed for the cache only; not the
		 * @state, which changes with every event (its bytes are most of
		 * the update: hashing them costs more than the rare write of an
		 * unchanged one) */
		int state = kl == 6 && !memcmp(k, "@state", 6);
		uint64_t h = w->cache && !state ? hash_bytes(body + at, off - at) : 0;
		struct fldref *f = &w->fld[j];
		*f = (struct fldref){k, v, (uint32_t)kl, (uint32_t)vl,
		                     !cf || state || !fh_cached(cf, cn, j, h), is_nil(v, vl)};
		e->fh[j++] = h;
		if (f->changed)
			*(f->nil ? &ndel : &nset) += 1;
	}
	e->nfh = j;
	w->bfields += nset + ndel;
	w->bskipped += j - nset - ndel;
	/* the TTL is set unless the cache holds the key from a commit that set
	 * it (only those have a deadline); 'p': the key must exist, since what
	 * is not written, other fields or the TTL, must be there already */
	e->expire = ttl > 0 && !(cf && e->until != INT64_MAX);
	if (push_bytes(w, &w->keys, e->key, e->klen) < 0 || kent_push(w, ei) < 0 ||
	    fp_buf_addc(&w->kinds, cf && (nset + ndel < j || (ttl > 0 && !e->expire)) ? 'p' : 'h') < 0)
		return -1;
	/* the writes read nset, ndel and the TTL to set (0: none) first, then
	 * the fields set, then the fields deleted (nil) */
	if (push_num(w, &w->args, nset) < 0 || push_num(w, &w->args, ndel) < 0 ||
	    push_num(w, &w->args, e->expire ? ttl + EXPIRE_SLACK(ttl) : 0) < 0)
		return -1;
	for (uint32_t i = 0; i < j && nset; i++) {
		const struct fldref *f = &w->fld[i];
		if (f->changed && !f->nil &&
		    (push_bytes(w, &w->args, f->k, f->kl) < 0 || push_value(w, f->v, f->vl) < 0))
			return -1;
	}
	for (uint32_t i = 0; i < j && ndel; i++) {
		const struct fldref *f = &w->fld[i];
		if (f->changed && f->nil && push_bytes(w, &w->args, f->k, f->kl) < 0)
			return -1;
	}

	for (size_t z = 0; z < w->o.nzset; z++) {
		const char *f = w->o.zset[z];
		if (!find(body, len, f, &v, &vl))
			continue;
		fp_buf *zk = &w->scratch;
		zk->len = 0;
		if (fp_buf_add(zk, e->key, e->klen) < 0 || fp_buf_addc(zk, ':') < 0 ||
		    fp_buf_adds(zk, f) < 0 || push_bytes(w, &w->keys, zk->p, zk->len) < 0 ||
		    kent_push(w, ei) < 0 || fp_buf_addc(&w->kinds, 'z') < 0)
			return -1;
		size_t slot;
		/* (checked when the epoch was first built: the key table holds the
		 * next epoch now) */
		if (!rebuild && table_find(w, zk->p, zk->len, hash_bytes(zk->p, zk->len), &slot)) {
			char sh[100];
			return fail(w, KVW_DATA, "the sorted set '%s' of --zset %s is also the key of an update",
			            shown(zk->p, zk->len, sh, sizeof sh), f), -2;
		}
		uint32_t pairs = 0;
		if (is_nil(v, vl) || mp_read_array(v, vl, &pairs, &hdr) < 0)
			pairs = 0;
		if (push_num(w, &w->args, ttl) < 0 || push_num(w, &w->args, pairs) < 0)
			return -1;
		off = hdr;
		for (uint32_t i = 0; i < pairs; i++) {
			size_t es = mp_skip(v + off, vl - off), h2;
			uint32_t two;
			mp_read_array(v + off, es, &two, &h2);
			const uint8_t *x = v + off + h2;
			size_t xs = mp_skip(x, es - h2);
			double d;
			int64_t iv;
			char t[40];
			if (mp_read_int(x + xs, es - h2 - xs, &iv) == 0)
				snprintf(t, sizeof t, "%lld", (long long)iv);
			else {
				mp_read_number(x + xs, es - h2 - xs, &d);
				snprintf(t, sizeof t, "%.17g", d);
			}
			if (push_bytes(w, &w->args, t, strlen(t)) < 0 || push_value(w, x, xs) < 0)
				return -1;
			off += es;
		}
	}
	return 0;
}

/* Build the epoch: ARGV and KEYS of the check, the writes.  rebuild: the
 * epoch in flight again (its entries, its positions, the same fence), after
 * keys of it were dropped from the written-fields cache. */
static int
build_epoch(kvw *w, int rebuild)
{
	const struct epochbuf *b = rebuild ? &w->fl : &w->rd;
	w->arena.len = w->kbuf.len = 0;
	w->kinds.len = 0;
	w->keys.n = w->args.n = w->kent.n = 0;
	w->bfields = w->bskipped = 0;
	if (push_bytes(w, &w->keys, w->offkey, strlen(w->offkey)) < 0 || kent_push(w, SIZE_MAX) < 0 ||
	    spanv_push(&w->args, 0, 0) < 0)
		return fail(w, KVW_IO, "out of memory");
	/* the fence: every offsets field of this shard holds what this process
	 * expects (its origin, then its own last commit), or is missing */
	if (!rebuild)
		w->nfence = w->npos;
	if (push_num(w, &w->args, (long long)w->nfence) < 0)
		return fail(w, KVW_IO, "out of memory");
	for (size_t i = 0; i < w->nfence; i++) {
		struct ppos *p = &w->pos[i];
		char f[512], t[48] = "";
		if (store_offset_field(p->topic, p->tlen, p->part, w->o.shard, w->o.nshards, f, sizeof f) < 0)
			return fail(w, KVW_DATA, "topic name '%.60s...' too long", p->topic);
		if (p->has_committed)
			store_pos_format(p->committed, t, sizeof t);
		if (push_bytes(w, &w->args, f, strlen(f)) < 0 || push_bytes(w, &w->args, t, strlen(t)) < 0)
			return fail(w, KVW_IO, "out of memory");
	}
	int64_t now = fp_mono_ms();
	for (size_t i = 0; i < b->nent; i++) {
		/* what the entries a few ahead will read, scattered in memory:
		 * their cached field hashes (two steps), their bodies */
		if (w->cache && i + 6 < b->nent)
			wcache_prefetch(w->cache, b->ent[i + 6].hash, 2);
		if (w->cache && i + 3 < b->nent)
			wcache_prefetch(w->cache, b->ent[i + 3].hash, 1);
		if (i + 2 < b->nent) {
			__builtin_prefetch(b->ent[i + 2].body);
			__builtin_prefetch(b->ent[i + 2].body + 64);
		}
		int r = build_entry(w, &b->ent[i], i, now, rebuild);
		if (r == -2)
			return KVW_DATA;
		if (r < 0)
			return fail(w, KVW_IO, "out of memory");
	}
	for (size_t i = 0; i < w->npos; i++) {
		struct ppos *p = &w->pos[i];
		char f[512], t[48];
		if (rebuild ? !p->has_inflight : !pos_dirty(p))
			continue;
		if (store_offset_field(p->topic, p->tlen, p->part, w->o.shard, w->o.nshards, f, sizeof f) < 0)
			return fail(w, KVW_DATA, "topic name '%.60s...' too long", p->topic);
		store_pos_format(rebuild ? p->inflight : p->pending, t, sizeof t);
		if (push_bytes(w, &w->args, f, strlen(f)) < 0 || push_bytes(w, &w->args, t, strlen(t)) < 0)
			return fail(w, KVW_IO, "out of memory");
	}
	return 0; /* args.v[0], the kinds, is not in arena: format_epoch() sends it */
}

/* ---- dry run: the commands the script runs, as redis-cli lines ---- */

int
kvw_quote(fp_buf *o, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (fp_buf_addc(o, '"') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		char e[5] = {'\\', 0, 0, 0, 0};
		size_t el = 2;
		switch (c) {
		case '\\': e[1] = '\\'; break;
		case '"': e[1] = '"'; break;
		case '\n': e[1] = 'n'; break;
		case '\r': e[1] = 'r'; break;
		case '\t': e[1] = 't'; break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				e[0] = (char)c;
				el = 1;
			} else {
				e[1] = 'x';
				e[2] = hex[c >> 4];
				e[3] = hex[c & 15];
				el = 4;
			}
		}
		if (fp_buf_add(o, e, el) < 0)
			return -1;
	}
	return fp_buf_addc(o, '"');
}

static long long
span_num(kvw *w, const struct span *s)
{
	char t[24];
	int64_t v = 0;
	size_t n = s->len < sizeof t - 1 ? s->len : sizeof t - 1;
	memcpy(t, w->arena.p + s->off, n);
	t[n] = 0;
	fp_parse_i64(t, INT64_MIN, INT64_MAX, &v, NULL, 0);
	return (long long)v;
}

static int
render_cmd(kvw *w, const char *cmd, const struct span *key, const struct span *a, size_t n)
{
	fp_buf *o = &w->dry;
	if (fp_buf_adds(o, cmd) < 0 || fp_buf_addc(o, ' ') < 0 ||
	    kvw_quote(o, w->kbuf.p + key->off, key->len) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (fp_buf_addc(o, ' ') < 0 || kvw_quote(o, w->arena.p + a[i].off, a[i].len) < 0)
			return -1;
	return fp_buf_addc(o, '\n');
}

/* A write of the epoch: cmd on keys[k] with the arguments a[0..n). */
typedef int (*write_fn)(kvw *w, const char *cmd, size_t k, const struct span *a, size_t n);

/* Every write of the built epoch in order, through fn: walks the argument
 * layout of build_entry() (after the kinds and the fence), then the
 * offsets' HSET.  0, or the first failure of fn. */
static int
each_write(kvw *w, write_fn fn)
{
	const struct span *a = w->args.v;
	size_t i = 2 + 2 * w->nfence;
	for (size_t k = 1; k < w->keys.n; k++) {
		if (w->kinds.p[k - 1] == 'z') {
			long long ttl = span_num(w, &a[i]), n = span_num(w, &a[i + 1]);
			size_t ttl_at = i;
			i += 2;
			if (fn(w, "DEL", k, NULL, 0) < 0 || (n && fn(w, "ZADD", k, a + i, (size_t)n * 2) < 0))
				return -1;
			i += (size_t)n * 2;
			if (ttl > 0 && fn(w, "EXPIRE", k, a + ttl_at, 1) < 0)
				return -1;
			continue;
		}
		long long nset = span_num(w, &a[i]), ndel = span_num(w, &a[i + 1]);
		long long ttl = span_num(w, &a[i + 2]);
		size_t ttl_at = i + 2;
		i += 3;
		if (nset && fn(w, "HSET", k, a + i, (size_t)nset * 2) < 0)
			return -1;
		i += (size_t)nset * 2;
		if (ndel && fn(w, "HDEL", k, a + i, (size_t)ndel) < 0)
			return -1;
		i += (size_t)ndel;
		if (ttl > 0 && fn(w, "EXPIRE", k, a + ttl_at, 1) < 0)
			return -1;
	}
	if (i < w->args.n && fn(w, "HSET", 0, a + i, w->args.n - i) < 0)
		return -1;
	return 0;
}

static int
render_write(kvw *w, const char *cmd, size_t k, const struct span *a, size_t n)
{
	return render_cmd(w, cmd, &w->keys.v[k], a, n);
}

static int
render_epoch(kvw *w)
{
	if (fp_buf_adds(&w->dry, "MULTI\n") < 0 || each_write(w, render_write) < 0)
		return -1;
	if (fp_buf_adds(&w->dry, "INCR ") < 0 ||
	    kvw_quote(&w->dry, (const uint8_t *)w->fencekey, strlen(w->fencekey)) < 0)
		return -1;
	return fp_buf_adds(&w->dry, "\nEXEC\n");
}

/* ---- the connection ---- */

static int is_transient(const char *e);

static void
drop_conn(kvw *w)
{
	if (w->c)
		redisFree(w->c);
	w->c = NULL;
}

/* One more failed attempt in an outage: warn (rate-limited), back off, or
 * give up.  0 to retry, KVW_REMOTE to stop. */
static int
outage_wait(kvw *w, const char *what)
{
	int64_t now = fp_mono_ms();
	if (!w->out_start) {
		w->out_start = w->out_warned = now;
		w->out_attempts = 0;
		w->backoff = BACKOFF_MIN_MS;
		warn(w, "%s; retrying with backoff%s", what,
		     w->o.give_up_ms ? "" : " (no --give-up-after: until it works)");
	} else if (now - w->out_warned >= WARN_EVERY_MS) {
		w->out_warned = now;
		warn(w, "still failing after %.0fs and %u attempts: %s",
		     (double)(now - w->out_start) / 1000, w->out_attempts + 1, what);
	}
	w->out_attempts++;
	int64_t wait = w->backoff;
	if (w->o.give_up_ms) {
		int64_t left = w->out_start + w->o.give_up_ms - now;
		if (left <= 0)
			return fail(w, KVW_REMOTE, "giving up after %.1fs (--give-up-after): %s",
			            (double)(now - w->out_start) / 1000, what);
		if (wait > left)
			wait = left;
	}
	sleep_ms(wait);
	w->backoff = w->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff * 2;
	return 0;
}

static void
outage_end(kvw *w)
{
	if (w->out_start) {
		warn(w, "Redis is back after %.1fs and %u attempts",
		     (double)(fp_mono_ms() - w->out_start) / 1000, w->out_attempts);
		w->out_start = 0;
		w->st.reconnects++;
	}
	w->backoff = BACKOFF_MIN_MS;
}

/* CONFIG GET name: the value into buf; 1 ok, 0 CONFIG refused, -1 I/O,
 * -2 a transient error reply (errstr set). */
static int
config_get(kvw *w, const char *name, char *buf, size_t len)
{
	redisReply *r = redisCommand(w->c, "CONFIG GET %s", name);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR && is_transient(r->str)) {
		fail(w, -1, "CONFIG GET %s: %s", name, r->str);
		freeReplyObject(r);
		return -2;
	}
	int ok = 0;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		snprintf(buf, len, "%.*s", (int)r->element[1]->len, r->element[1]->str);
		ok = 1;
	}
	freeReplyObject(r);
	return ok;
}

/* The store must not evict; persistence off only warrants a warning.
 * 0, -1 transient (errstr), or KVW_CONFIG. */
static int
preflight(kvw *w)
{
	char policy[64], save[256], aof[16];
	int r = config_get(w, "maxmemory-policy", policy, sizeof policy);
	if (r == -2)
		return -1;
	if (r < 0)
		return fail(w, -1, "checking Redis configuration: %s", w->c->errstr), -1;
	if (r == 0) {
		if (!w->warned_config)
			warn(w, "CONFIG GET is refused by this Redis: cannot check that "
			     "maxmemory-policy is noeviction; make sure it is");
		w->warned_config = 1;
		return 0;
	}
	if (!strncmp(policy, "allkeys-", 8) || !strncmp(policy, "volatile-", 9))
		return fail(w, KVW_CONFIG,
		            "Redis maxmemory-policy is '%s': it would evict features or offsets "
		            "silently; set it to noeviction (CONFIG SET maxmemory-policy noeviction)",
		            policy);
	if (config_get(w, "save", save, sizeof save) == 1 &&
	    config_get(w, "appendonly", aof, sizeof aof) == 1 && !save[0] &&
	    !strcmp(aof, "no") && !w->warned_persist) {
		warn(w, "Redis persistence is off (save \"\", appendonly no): a Redis restart "
		     "loses features and offsets; fp-kvwrite then stops (exit 4) and the pipeline "
		     "must replay from Kafka");
		w->warned_persist = 1;
	}
	return 0;
}

static void
seen_offset(void *arg, const char *topic, size_t tlen, int32_t part, int shard, int nshards,
            store_pos pos)
{
	kvw *w = arg;
	if (shard != w->o.shard || nshards != w->o.nshards)
		return;
	struct ppos *p = pos_get(w, topic, tlen, part);
	if (!p)
		return; /* out of memory: caught as a missing offset below */
	p->seen = pos;
	p->seen_ok = 1;
	if (!w->started) {
		p->committed = p->pending = pos;
		p->has_committed = p->has_pending = 1;
	}
}

/* Compare the stored offsets with what this process committed.  Sets
 * w->landed when an ambiguous commit turns out to have landed.  0,
 * KVW_REMOTE when Redis went back (lost data) or another writer moved them. */
static int
verify_offsets(kvw *w)
{
	size_t landed = 0, missing = 0;
	char f[512], a[48], b[48];
	w->landed = 0;
	for (size_t i = 0; i < w->npos; i++) {
		struct ppos *p = &w->pos[i];
		store_offset_field(p->topic, p->tlen, p->part, w->o.shard, w->o.nshards, f, sizeof f);
		if (w->ambiguous && p->has_inflight) {
			if (p->seen_ok && store_pos_cmp(p->seen, p->inflight) == 0) {
				landed++;
				continue;
			}
			missing++;
		}
		if (p->has_committed && (!p->seen_ok || store_pos_cmp(p->seen, p->committed) < 0)) {
			store_pos_format(p->committed, a, sizeof a);
			if (p->seen_ok)
				store_pos_format(p->seen, b, sizeof b);
			return fail(w, KVW_REMOTE,
			            "Redis lost data: '%s' field '%s' holds %s but this process committed %s "
			            "(restarted without persistence, or rolled back?); stopping so that the "
			            "pipeline restarts from what the store holds",
			            w->offkey, f, p->seen_ok ? b : "nothing", a);
		}
		if (p->seen_ok && (!p->has_committed || store_pos_cmp(p->seen, p->committed) > 0)) {
			store_pos_format(p->seen, b, sizeof b);
			return fail(w, KVW_REMOTE,
			            "'%s' field '%s' moved to %s behind this process's back: is another "
			            "fp-kvwrite writing shard %d/%d of pipeline '%s'?",
			            w->offkey, f, b, w->o.shard, w->o.nshards, w->o.pipeline);
		}
	}
	if (landed && missing)
		return fail(w, KVW_REMOTE, "'%s': the stored offsets show part of an epoch; "
		            "is another fp-kvwrite writing shard %d/%d?", w->offkey, w->o.shard,
		            w->o.nshards);
	w->landed = landed > 0;
	return 0;
}

/* Connect, preflight, load the script, read and check the offsets.
 * 0, -1 transient (errstr), or a KVW_* code. */
static int
try_connect(kvw *w)
{
	w->c = store_connect(&w->o.url, w->o.connect_ms, w->o.command_ms, w->errstr, sizeof w->errstr);
	if (!w->c)
		return -1;
	/* A Redis loading its data set or running a long script answers every
	 * command with an error: wait for it like for one that is down. */
	redisReply *ping = redisCommand(w->c, "PING");
	int r = 0;
	if (!ping)
		r = fail(w, -1, "Redis does not answer PING: %s", w->c->errstr);
	else if (ping->type == REDIS_REPLY_ERROR)
		r = fail(w, is_transient(ping->str) ? -1 : KVW_REMOTE, "Redis answers PING with '%s'",
		         ping->str);
	if (ping)
		freeReplyObject(ping);
	if (r || (r = preflight(w)) != 0)
		goto out;
	for (size_t i = 0; i < w->npos; i++)
		w->pos[i].seen_ok = 0;
	if (store_read_offsets(w->c, w->o.pipeline, seen_offset, w, w->errstr, sizeof w->errstr) < 0) {
		r = w->c->err ? -1 : KVW_REMOTE;
		goto out;
	}
	if (w->started)
		r = verify_offsets(w);
out:
	if (r)
		drop_conn(w);
	return r;
}

static int
conn_ensure(kvw *w)
{
	while (!w->c) {
		int r = try_connect(w);
		if (r > 0)
			return r;
		char what[sizeof w->errstr];
		memcpy(what, w->errstr, sizeof what); /* fail() rewrites errstr */
		if (r < 0 && (r = outage_wait(w, what)) != 0)
			return r;
	}
	return 0;
}

int
kvw_start(kvw *w)
{
	if (w->o.dry_run) {
		w->started = 1;
		return 0;
	}
	int r = conn_ensure(w);
	if (r)
		return r;
	outage_end(w);
	w->started = 1;
	return 0;
}

/* ---- commit ---- */

static int
is_transient(const char *e)
{
	static const char *const codes[] = {"LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN",
	                                    "TRYAGAIN", "NOREPLICAS"};
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
		if (!strncmp(e, codes[i], strlen(codes[i])))
			return 1;
	return 0;
}

/* Where the RESP bytes of the bulk strings of spans a[0..n), consecutive
 * in their buffer, start; *len gets how many there are. */
static size_t
spans_at(const struct span *a, size_t n, size_t *len)
{
	char t[24];
	size_t start = a[0].off - (3 + fp_fmt_i64(t, (long long)a[0].len));
	*len = a[n - 1].off + a[n - 1].len + 2 - start;
	return start;
}

/* The RESP bytes of spans a[0..n) of b, appended to o. */
static int
out_spans(fp_buf *o, const fp_buf *b, const struct span *a, size_t n)
{
	size_t len;
	if (!n)
		return 0;
	size_t start = spans_at(a, n, &len);
	return fp_buf_add(o, b->p + start, len);
}

static int
seg_push(kvw *w, size_t src, size_t off, size_t len)
{
	struct seg *l = w->nseg ? &w->seg[w->nseg - 1] : NULL;
	if (!len)
		return 0;
	if (l && l->src == src && l->off + l->len == off) {
		l->len += len;
		return 0;
	}
	if (w->nseg == w->segcap) {
		struct seg *ns = fp_array_grow(w->seg, &w->segcap, sizeof *ns, 256);
		if (!ns)
			return -1;
		w->seg = ns;
	}
	w->seg[w->nseg++] = (struct seg){src, off, len};
	return 0;
}

/* The pipeline goes on with spans a[0..n) of arena or kbuf (src), after
 * what was added to out so far: no copy of them. */
static int
seg_spans(kvw *w, size_t src, const struct span *a, size_t n)
{
	size_t len;
	if (!n)
		return 0;
	size_t start = spans_at(a, n, &len);
	if (seg_push(w, SEG_OUT, w->out_mark, w->out.len - w->out_mark) < 0)
		return -1;
	w->out_mark = w->out.len;
	return seg_push(w, src, start, len);
}

static int
out_array(fp_buf *o, size_t n)
{
	char t[32];
	t[0] = '*';
	size_t h = 1 + fp_fmt_i64(t + 1, (long long)n);
	t[h++] = '\r';
	t[h++] = '\n';
	return fp_buf_add(o, t, h);
}

/* The next command inside MULTI writes keys[k] (k == keys.n: the fence). */
static int
qkey_push(kvw *w, size_t k)
{
	return sizev_push(&w->qkey, k);
}

/* A command inside MULTI: cmd, the key keys[k], n arguments from a. */
static int
out_queued(kvw *w, const char *cmd, size_t k, const struct span *a, size_t n)
{
	size_t off;
	if (qkey_push(w, k) < 0)
		return -1;
	if (out_array(&w->out, 2 + n) < 0 || bulk_add(&w->out, cmd, strlen(cmd), &off) < 0 ||
	    out_spans(&w->out, &w->kbuf, &w->keys.v[k], 1) < 0)
		return -1;
	return seg_spans(w, SEG_ARENA, a, n);
}

/* The built epoch as the RESP of its pipeline (see CHECK_LUA): w->seg, of
 * w->out and of the keys and arguments as they are in kbuf and arena
 * (already bulk strings; each write's key is copied, the rest is not).  The
 * writes walk the argument layout of build_entry(), as render_epoch() does
 * for --dry-run. */
static int
format_epoch(kvw *w)
{
	fp_buf *o = &w->out;
	const struct span *a = w->args.v;
	size_t off, fl = strlen(w->fencekey), head = 2 + 2 * w->nfence;
	char t[32];
	o->len = 0;
	w->nseg = w->out_mark = 0;
	w->qkey.n = 0;
	if (out_array(o, 2) < 0 || bulk_add(o, "WATCH", 5, &off) < 0 || bulk_add(o, w->fencekey, fl, &off) < 0)
		return -1;
	/* EVAL CHECK_LUA nkeys offsets keys... fence kinds m pairs... */
	if (out_array(o, 3 + w->keys.n + 1 + head) < 0 || bulk_add(o, "EVAL", 4, &off) < 0 ||
	    bulk_add(o, CHECK_LUA, sizeof CHECK_LUA - 1, &off) < 0 ||
	    bulk_add(o, t, fp_fmt_i64(t, (long long)w->keys.n + 1), &off) < 0 ||
	    seg_spans(w, SEG_KBUF, w->keys.v, w->keys.n) < 0 || bulk_add(o, w->fencekey, fl, &off) < 0 ||
	    bulk_add(o, w->kinds.p, w->kinds.len, &off) < 0 || out_spans(o, &w->arena, a + 1, head - 1) < 0)
		return -1;
	if (out_array(o, 1) < 0 || bulk_add(o, "MULTI", 5, &off) < 0 || each_write(w, out_queued) < 0)
		return -1;
	if (qkey_push(w, w->keys.n) < 0 || out_array(o, 2) < 0 || bulk_add(o, "INCR", 4, &off) < 0 ||
	    bulk_add(o, w->fencekey, fl, &off) < 0 || out_array(o, 1) < 0 ||
	    bulk_add(o, "EXEC", 4, &off) < 0 || seg_push(w, SEG_OUT, w->out_mark, o->len - w->out_mark) < 0)
		return -1;
	w->out_mark = o->len;
	w->nreplies = 3 + w->qkey.n + 1; /* WATCH, EVAL, MULTI, QUEUED..., EXEC */
	return 0;
}

/* The part of the commit's pipeline not written yet, as at most max
 * pieces; their number (0: all sent). */
static int
unsent(kvw *w, struct iovec *iov, int max)
{
	int n = 0;
	for (size_t i = w->seg_i; i < w->nseg && n < max; i++) {
		const struct seg *g = &w->seg[i];
		uint8_t *b = g->src == SEG_OUT ? w->out.p : g->src == SEG_ARENA ? w->arena.p : w->kbuf.p;
		size_t skip = i == w->seg_i ? w->seg_done : 0;
		iov[n].iov_base = b + g->off + skip;
		iov[n].iov_len = g->len - skip;
		n++;
	}
	return n;
}

/* n more bytes of the pipeline were written. */
static void
sent_more(kvw *w, size_t n)
{
	while (n && w->seg_i < w->nseg) {
		size_t left = w->seg[w->seg_i].len - w->seg_done;
		if (n < left) {
			w->seg_done += n;
			return;
		}
		n -= left;
		w->seg_i++;
		w->seg_done = 0;
	}
}

/* The built epoch goes in flight: its positions, counts and stamps move
 * aside, and the key table starts the next epoch. */
static void
epoch_seal(kvw *w)
{
	for (size_t i = 0; i < w->npos; i++) {
		struct ppos *p = &w->pos[i];
		if ((p->has_inflight = pos_dirty(p)) != 0)
			p->inflight = p->pending;
	}
	struct epochbuf t = w->fl;
	w->fl = w->rd;
	w->rd = t;
	w->rd.nent = w->rd.nstamp = 0;
	w->rd.updates = 0;
	memset(w->slots, 0, w->nslots * sizeof *w->slots);
	w->changed = w->barrier = 0;
	w->inflight = 1;
	w->commit_t0 = fp_mono_us();
}

static void
note_latency(kvw *w, int64_t us)
{
	if (w->nlat == w->latcap) {
		uint32_t *nl = fp_array_grow(w->lat, &w->latcap, sizeof *nl, 1024);
		if (!nl)
			return;
		w->lat = nl;
	}
	w->lat[w->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* The written-fields cache learns what the acknowledged epoch wrote.  A key
 * whose TTL this commit set is known for EXPIRE_KEEP_MS (measured from when
 * the commit was sent, before Redis ran it); the others until the deadline
 * they had (a key with a TTL is written in part only while its TTL is
 * fresh), or forever. */
static void
cache_epoch(kvw *w)
{
	int64_t t0 = w->o.dry_run ? fp_mono_ms() : w->sent_at;
	for (size_t i = 0; i < w->fl.nent; i++) {
		struct entry *e = &w->fl.ent[i];
		int64_t until = e->expire ? t0 + EXPIRE_KEEP_MS(e->ttl) : e->until;
		/* out of memory: the key is dropped, written whole next time */
		(void)wcache_put(w->cache, e->hash, until, e->fh, e->nfh);
	}
}

/* The epoch in flight is acknowledged (or, in dry-run mode, rendered). */
static void
epoch_acked(kvw *w)
{
	int64_t took = -1;
	if (!w->o.dry_run) {
		outage_end(w);
		w->ambiguous = 0;
		took = fp_mono_us() - w->commit_t0;
		note_latency(w, took);
	}
	observe_epoch(w, took);
	if (w->cache)
		cache_epoch(w);
	w->st.fields += w->bfields;
	w->st.fields_skipped += w->bskipped;
	for (size_t i = 0; i < w->npos; i++) {
		struct ppos *p = &w->pos[i];
		if (p->has_inflight) {
			p->committed = p->inflight;
			p->has_committed = 1;
			p->has_inflight = 0;
		}
	}
	w->st.epochs++;
	w->st.keys += w->fl.nent;
	w->inflight = 0;
}

/* The script refused the epoch: offsets field j (1-based, in w->pos order)
 * does not hold what this process expects.  what: "j =value" or "j -". */
static int
fence_failed(kvw *w, const char *what)
{
	char f[512] = "?", want[48] = "nothing", got[48] = "nothing";
	char *end;
	long j = strtol(what, &end, 10);
	const char *val = *end == ' ' ? end + 1 : "-";
	int back = 0;
	if (*val == '=')
		snprintf(got, sizeof got, "%.*s", (int)strcspn(val + 1, " \r\n"), val + 1);
	if (j >= 1 && (size_t)j <= w->npos) {
		struct ppos *p = &w->pos[j - 1];
		store_pos sp;
		store_offset_field(p->topic, p->tlen, p->part, w->o.shard, w->o.nshards, f, sizeof f);
		if (p->has_committed) {
			store_pos_format(p->committed, want, sizeof want);
			back = *val != '=' ||
			       (store_pos_parse(got, strlen(got), &sp) == 0 && store_pos_cmp(sp, p->committed) < 0);
		}
	}
	if (back)
		return fail(w, KVW_REMOTE,
		            "the stored offsets of shard %d/%d went back: '%s' field '%s' holds %s but "
		            "this process expected %s: Redis lost data (restarted without persistence, "
		            "or rolled back?), or another writer changed them; nothing of this epoch was "
		            "written; stopping so that the pipeline restarts from what the store holds",
		            w->o.shard, w->o.nshards, w->offkey, f, got, want);
	return fail(w, KVW_REMOTE,
	            "another writer changed the stored offsets of shard %d/%d of pipeline '%s': "
	            "field '%s' expected %s, found %s; is an old pipeline still running? nothing of "
	            "this epoch was written; stopping so that the pipeline restarts from what the "
	            "store holds", w->o.shard, w->o.nshards, w->o.pipeline, f, want, got);
}

enum { REPLY_ACK = -1, REPLY_AGAIN = -2, REPLY_TRANSIENT = -3 };

/* The check refused the epoch because keys it writes in part are gone from
 * Redis (list: their KEYS indexes): forget them in the cache and build the
 * epoch again, those keys whole.  REPLY_AGAIN or a KVW_* code. */
static int
rebuild_gone(kvw *w, const char *list)
{
	size_t n = 0;
	char *end;
	for (const char *p = list;; p = end) {
		long idx = strtol(p, &end, 10);
		if (end == p)
			break;
		/* KEYS[idx] is keys.v[idx - 1], of kind kinds[idx - 2] */
		if (w->cache && idx >= 2 && (size_t)idx <= w->keys.n && w->kinds.p[idx - 2] == 'p') {
			wcache_drop(w->cache, w->fl.ent[w->kent.v[idx - 1]].hash);
			n++;
		}
	}
	if (!n)
		return fail(w, KVW_REMOTE, "unexpected answer of the commit's check: FPGONE %.100s", list);
	if (++w->aborts > 100)
		return fail(w, KVW_REMOTE, "keys written in part were gone from Redis at 100 commits in "
		            "a row: is another client deleting this shard's keys?");
	warn(w, "%zu key%s of this epoch, known to hold the fields not written, %s gone from Redis "
	     "(deleted by another client? evicted?): writing %s whole", n, n == 1 ? "" : "s",
	     n == 1 ? "was" : "were", n == 1 ? "it" : "them");
	int r = build_epoch(w, 1);
	return r ? r : REPLY_AGAIN;
}

/* After a wrong-type or fence refusal: the key the check named. */
static int
wrongtype(kvw *w, const char *what)
{
	long idx = strtol(what, NULL, 10);
	char sh[100], type[32] = "";
	const char *sp = strchr(what, ' ');
	if (sp)
		snprintf(type, sizeof type, "%.*s", (int)strcspn(sp + 1, " \r\n"), sp + 1);
	if (idx == (long)w->keys.n + 1)
		return fail(w, KVW_REMOTE,
		            "key '%s' in Redis is a %s, not this shard's fence counter: nothing of this "
		            "epoch was written and the offsets did not move; delete or rename that key",
		            w->fencekey, type);
	const struct span *k = idx >= 1 && (size_t)idx <= w->keys.n ? &w->keys.v[idx - 1] : NULL;
	return fail(w, KVW_REMOTE,
	            "key '%s' in Redis is a %s, not a %s: nothing of this epoch was written "
	            "and the offsets did not move; delete or rename that key",
	            k ? shown(w->kbuf.p + k->off, k->len, sh, sizeof sh) : "?", type,
	            idx > 1 && w->kinds.p[idx - 2] == 'z' ? "sorted set" : "hash");
}

/* What the replies to the commit's pipeline say (exec: EXEC's; w->chk the
 * check's, w->qerr a command refused inside MULTI): REPLY_ACK, REPLY_AGAIN
 * (the fence key moved between the check and EXEC: check and send again),
 * REPLY_TRANSIENT (errstr: wait and send again), or a KVW_* code. */
static int
commit_reply(kvw *w, const redisReply *exec)
{
	const redisReply *chk = w->chk;
	if (exec->type == REDIS_REPLY_ARRAY) {
		/* it ran: every write must have succeeded */
		if (exec->elements != w->qkey.n)
			return fail(w, KVW_REMOTE, "unexpected reply to the commit (%zu results for %zu "
			            "commands)", exec->elements, w->qkey.n);
		for (size_t q = 0; q < exec->elements; q++) {
			const redisReply *e = exec->element[q];
			if (e->type != REDIS_REPLY_ERROR)
				continue;
			char sh[100];
			size_t k = w->qkey.v[q];
			const char *name = k < w->keys.n
			        ? shown(w->kbuf.p + w->keys.v[k].off, w->keys.v[k].len, sh, sizeof sh)
			        : w->fencekey;
			return fail(w, KVW_REMOTE,
			            "writing key '%s' failed inside the commit (%s): another client changed "
			            "it between the check and the transaction; the rest of the epoch and the "
			            "offsets were written, that key's update was not", name, e->str);
		}
		if (!chk || chk->type != REDIS_REPLY_INTEGER)
			warn(w, "a commit ran although its check was refused (%s)",
			     chk && chk->type == REDIS_REPLY_ERROR ? chk->str : "no reply");
		return REPLY_ACK;
	}
	/* it did not run: the check says why, or the fence key moved */
	const char *e = NULL;
	if (chk && chk->type == REDIS_REPLY_ERROR)
		e = chk->str;
	else if (w->qerr)
		e = w->qerr->str;
	else if (exec->type == REDIS_REPLY_ERROR)
		e = exec->str;
	else if (exec->type == REDIS_REPLY_NIL) {
		if (++w->aborts > 100)
			return fail(w, KVW_REMOTE, "the fence key '%s' of shard %d/%d moved under 100 "
			            "commits in a row: is another fp-kvwrite writing this shard?",
			            w->fencekey, w->o.shard, w->o.nshards);
		return REPLY_AGAIN;
	} else
		return fail(w, KVW_REMOTE, "unexpected reply to the commit (type %d)", exec->type);
	const char *wt = strstr(e, "FPWRONGTYPE ");
	if (wt)
		return wrongtype(w, wt + 12);
	const char *fe = strstr(e, "FPFENCE ");
	if (fe)
		return fence_failed(w, fe + 8);
	const char *gone = strstr(e, "FPGONE ");
	if (gone)
		return rebuild_gone(w, gone + 7);
	if (is_transient(e)) {
		fail(w, -1, "Redis refused the commit: %s", e);
		return REPLY_TRANSIENT;
	}
	return fail(w, KVW_REMOTE, "Redis refused the commit: %s", e);
}

/* Begin an attempt to send the epoch in flight on w->c, with the socket
 * non-blocking (nothing else is sent on this connection any more: a new
 * one is made after a failure).  0, or KVW_IO when out of memory. */
static int
attempt_begin(kvw *w)
{
	if (format_epoch(w) < 0)
		return fail(w, KVW_IO, "out of memory");
	int fl = fcntl(w->c->fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(w->c->fd, F_SETFL, fl | O_NONBLOCK);
	w->c->flags &= ~REDIS_BLOCK; /* redisBufferRead: EAGAIN means later */
	w->seg_i = w->seg_done = 0;
	w->sent_at = fp_mono_ms();
	w->got = 0;
	if (w->chk)
		freeReplyObject(w->chk);
	if (w->qerr)
		freeReplyObject(w->qerr);
	w->chk = w->qerr = NULL;
	return 0;
}

/* Milliseconds left for the reply to the attempt in flight (--timeout), or
 * -1: no limit. */
static int64_t
attempt_left(const kvw *w)
{
	if (w->o.command_ms <= 0)
		return -1;
	int64_t left = w->sent_at + w->o.command_ms - fp_mono_ms();
	return left < 0 ? 0 : left;
}

/* Progress on the attempt: write what the socket takes, read what came.
 * 1 a reply is in *rep, 0 nothing yet, -1 the connection failed or the
 * reply is late (what: why). */
static int
attempt_io(kvw *w, short revents, redisReply **rep, char *what, size_t wl)
{
	size_t want = w->keys.n - 1;
	*rep = NULL;
	struct iovec iov[1024]; /* IOV_MAX on Linux */
	int niov;
	while ((niov = unsent(w, iov, (int)(sizeof iov / sizeof *iov))) > 0) {
		ssize_t n = writev(w->c->fd, iov, niov);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			snprintf(what, wl, "no reply to the commit of %zu keys (%s)", want, strerror(errno));
			return -1;
		}
		sent_more(w, (size_t)n);
	}
	if (revents & (POLLIN | POLLERR | POLLHUP)) {
		if (redisBufferRead(w->c) != REDIS_OK) {
			snprintf(what, wl, "no reply to the commit of %zu keys (%s)", want, w->c->errstr);
			return -1;
		}
		for (;;) {
			void *r = NULL;
			if (redisGetReplyFromReader(w->c, &r) != REDIS_OK) {
				snprintf(what, wl, "no reply to the commit of %zu keys (%s)", want, w->c->errstr);
				return -1;
			}
			if (!r)
				break;
			redisReply *x = r;
			size_t i = w->got++;
			if (i + 1 == w->nreplies) { /* EXEC's */
				*rep = x;
				return 1;
			}
			if (i == 1 && !w->chk)
				w->chk = x;
			else if (i > 2 && x->type == REDIS_REPLY_ERROR && !w->qerr)
				w->qerr = x;
			else
				freeReplyObject(x);
		}
	}
	if (attempt_left(w) == 0) {
		snprintf(what, wl, "no reply to the commit of %zu keys (none within %dms, --timeout)",
		         want, w->o.command_ms);
		return -1;
	}
	return 0;
}

/* Drive the epoch in flight after poll() said revents about the Redis
 * socket (or the timeout passed).  Failures are handled here, blocking as
 * today: reconnect with backoff, settle a commit whose reply was lost by
 * reading the stored offsets, send it again.  0 (w->inflight says whether
 * it is still in flight) or a KVW_* code. */
static int
commit_io(kvw *w, short revents)
{
	for (;;) {
		char what[sizeof w->errstr];
		redisReply *rep;
		int r = attempt_io(w, revents, &rep, what, sizeof what);
		if (r == 0)
			return 0;
		if (r > 0) {
			r = commit_reply(w, rep);
			freeReplyObject(rep);
			if (r == REPLY_ACK) {
				w->aborts = 0;
				epoch_acked(w);
				return 0;
			}
			if (r == REPLY_TRANSIENT) {
				memcpy(what, w->errstr, sizeof what); /* fail() rewrites errstr */
				if ((r = outage_wait(w, what)) != 0)
					return r;
			}
			if (r > 0)
				return r;
			if ((r = attempt_begin(w)) != 0)
				return r;
			revents = 0;
			continue;
		}
		/* no reply: the script may or may not have run */
		drop_conn(w);
		w->ambiguous = 1;
		if ((r = outage_wait(w, what)) != 0 || (r = conn_ensure(w)) != 0)
			return r;
		outage_end(w);
		if (w->landed) {
			warn(w, "the commit whose reply was lost had been applied "
			     "(the stored offsets match it); not sending it again");
			epoch_acked(w);
			return 0;
		}
		warn(w, "the commit whose reply was lost had not been applied; sending it again");
		w->ambiguous = 0;
		if ((r = attempt_begin(w)) != 0)
			return r;
		revents = 0;
	}
}

/* Wait for the epoch in flight, if any, to be acknowledged.  0 or KVW_*. */
static int
commit_wait(kvw *w)
{
	while (w->inflight) {
		if (!w->c || w->o.dry_run)
			return KVW_REMOTE; /* an earlier failure left it so (errstr) */
		struct pollfd pfd = {w->c->fd, POLLIN, 0};
		if (w->seg_i < w->nseg)
			pfd.events |= POLLOUT;
		int pr = poll(&pfd, 1, (int)attempt_left(w));
		if (pr < 0 && errno != EINTR)
			return fail(w, KVW_IO, "poll: %s", strerror(errno));
		int r = commit_io(w, pr > 0 ? pfd.revents : 0);
		if (r)
			return r;
	}
	return 0;
}

/* Build the buffered epoch and send it (dry run: render it); it is in
 * flight when this returns 0 (nothing is when nothing changed).  KVW_*. */
static int
commit_start(kvw *w)
{
	int dirty = w->rd.nent > 0;
	for (size_t i = 0; i < w->npos && !dirty; i++)
		dirty = pos_dirty(&w->pos[i]);
	if (!dirty) {
		w->changed = w->barrier = 0;
		return 0;
	}
	int r = build_epoch(w, 0);
	if (r)
		return r;
	epoch_seal(w);
	if (w->o.dry_run) {
		if (render_epoch(w) < 0)
			return fail(w, KVW_IO, "out of memory");
		if (w->o.dry_fd >= 0) {
			if (fr_write_all(w->o.dry_fd, w->dry.p, w->dry.len) < 0) {
				w->epipe = errno == EPIPE;
				return fail(w, KVW_IO, "error writing standard output: %s", strerror(errno));
			}
			w->dry.len = 0;
		}
		epoch_acked(w);
		return 0;
	}
	if (!w->c) {
		if ((r = conn_ensure(w)) != 0)
			return r;
		outage_end(w);
	}
	if ((r = attempt_begin(w)) != 0)
		return r;
	return commit_io(w, 0);
}

int
kvw_commit(kvw *w)
{
	int r = commit_wait(w);
	if (!r)
		r = commit_start(w);
	if (!r)
		r = commit_wait(w);
	return r;
}

/* ---- the read loop ---- */

/* A commit may start now: no update read since the last sync frame (or
 * no sync frame ever: every whole update is a consistent point). */
static int
consistent(const kvw *w)
{
	return !w->sync_mode || !w->since_sync;
}

/* The input ended or broke (rc, errstr set) while updates since the last
 * sync frame are buffered: nothing buffered is committed (the pipeline
 * replays it from the stored offsets); the epoch in flight completes. */
static int
drop_open(kvw *w, int rc)
{
	char saved[sizeof w->errstr];
	memcpy(saved, w->errstr, sizeof saved);
	int r = commit_wait(w);
	if (r)
		return r;
	fail(w, rc, "%s; not committed: the %llu updates read since the last sync frame (fp-merge "
	     "stopped in the middle of a batch?) and %llu buffered before it; the pipeline replays "
	     "them from the stored offsets", saved,
	     (unsigned long long)w->since_sync, (unsigned long long)(w->rd.updates - w->since_sync));
	return rc;
}

/* The input ended or broke (rc, errstr set): commit what is buffered if
 * that is consistent, then report rc. */
static int
commit_then(kvw *w, int rc)
{
	char saved[sizeof w->errstr];
	if (!consistent(w))
		return drop_open(w, rc);
	memcpy(saved, w->errstr, sizeof saved);
	int r = kvw_commit(w);
	if (r)
		return r;
	memcpy(w->errstr, saved, sizeof saved);
	return rc;
}

int
kvw_run(kvw *w, int fd, const char *name)
{
	fr_reader rd;
	int r = 0;
	/* where the top-level entries of each frame are, found by the check
	 * (done here, not by the reader), so that they are walked only once */
	uint32_t top[64], ntop;
	const uint32_t maxtop = sizeof top / sizeof top[0];
	if (fr_reader_init(&rd, w->o.max_frame) < 0)
		return fail(w, KVW_CONFIG, "%s", rd.errstr);
	rd.check = 0;
	for (;;) {
		const uint8_t *body;
		size_t len;
		enum fr_status st = FR_NEED_MORE;
		int held = 0; /* the next epoch is full while one is in flight */
		for (;;) {
			if (!w->inflight && kvw_due(w) && consistent(w) && (r = commit_start(w)) != 0)
				goto out;
			/* backpressure: no more input until the commit in flight is
			 * acknowledged; the timer alone lets the epoch grow meanwhile */
			if ((held = w->inflight && full(w) && consistent(w)) != 0)
				break;
			if ((st = fr_reader_next(&rd, &body, &len)) != FR_OK)
				break;
			char e[200];
			if (mp_check_frame_top(body, len, &rd.lim, e, sizeof e, top, maxtop, &ntop) < 0) {
				/* what the reader's own check says */
				snprintf(rd.errstr, sizeof rd.errstr, "frame %llu at offset %llu: %s",
				         (unsigned long long)rd.frames, (unsigned long long)rd.frame_offset, e);
				st = FR_ERROR;
				break;
			}
			for (unsigned k = 0; k < 3; k++) {
				const uint8_t *pb;
				size_t pl;
				if (!fr_reader_peek(&rd, k, &pb, &pl))
					break;
				prefetch_update(w, pb, pl, (int)k + 1);
			}
			/* more fields than top holds: found again by add_frame() */
			if ((r = add_frame(w, body, len, rd.frames, ntop <= maxtop ? top : NULL, ntop)) != 0) {
				r = commit_then(w, r);
				goto out;
			}
		}
		if (st == FR_ERROR) {
			fail(w, KVW_DATA, "%s: %s", name, rd.errstr);
			r = commit_then(w, KVW_DATA);
			goto out;
		}
		if (w->o.metrics) {
			metrics_sync(w);
			if (w->o.metrics->tick)
				w->o.metrics->tick(w->o.metrics->tick_arg);
		}
		struct pollfd pfd[2] = {{fd, held ? 0 : POLLIN, 0}, {-1, POLLIN, 0}};
		int64_t wait = w->inflight ? -1 : kvw_wait_ms(w);
		if (w->inflight) {
			pfd[1].fd = w->c->fd;
			if (w->seg_i < w->nseg)
				pfd[1].events |= POLLOUT;
			wait = attempt_left(w);
		}
		if (w->o.metrics && (wait < 0 || wait > 1000))
			wait = 1000; /* metrics files keep coming while idle */
		int pr = poll(held ? pfd + 1 : pfd, held ? 1 : 2,
		              wait < 0 ? -1 : wait > INT32_MAX ? INT32_MAX : (int)wait);
		if (pr < 0 && errno != EINTR) {
			r = fail(w, KVW_IO, "poll: %s", strerror(errno));
			goto out;
		}
		if (w->inflight && (r = commit_io(w, pr > 0 ? pfd[1].revents : 0)) != 0)
			goto out;
		if (pr <= 0 || held || !pfd[0].revents)
			continue; /* the timer: kvw_due() says so above */
		ssize_t n = fr_reader_fill(&rd, fd);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0) {
			fail(w, KVW_IO, "error reading '%s': %s", name, strerror(errno));
			r = commit_then(w, KVW_IO);
			goto out;
		}
		if (n == 0) {
			if (fr_reader_eof(&rd) < 0) {
				fail(w, KVW_DATA, "%s: %s", name, rd.errstr);
				r = commit_then(w, KVW_DATA);
			} else if (!consistent(w)) {
				fail(w, KVW_DATA, "%s: end of input", name);
				r = drop_open(w, KVW_DATA);
			} else
				r = kvw_commit(w);
			goto out;
		}
	}
out:
	if (w->o.metrics)
		metrics_sync(w);
	fr_reader_release(&rd);
	return r;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void
kvw_get_stats(kvw *w, kvw_stats *s)
{
	*s = w->st;
	if (w->nlat) {
		qsort(w->lat, w->nlat, sizeof *w->lat, cmp_u32);
		s->commit_ms_p50 = w->lat[(w->nlat - 1) / 2] / 1000.0;
		s->commit_ms_p99 = w->lat[(size_t)((w->nlat - 1) * 0.99)] / 1000.0;
		s->commit_ms_max = w->lat[w->nlat - 1] / 1000.0;
	}
}
