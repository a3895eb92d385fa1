/* wcache.c - field hashes of what fp-kvwrite committed; see wcache.h. */
#include "wcache.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* A slot: empty (n == 0), a key's entry (fh[off..off+n) in the arena), or a
 * dropped key (until == INT64_MIN: a miss that hides the older generation). */
struct slot {
	uint64_t kh;
	int64_t until;
	uint32_t off, n;
};

struct gen {
	struct slot *s;
	size_t cap, used;       /* slots, and slots not empty */
	uint64_t *fh;           /* the arena */
	size_t nfh, fhcap, live; /* hashes stored; held by entries */
};

struct wcache {
	size_t per_gen;         /* keys in the newer generation before it becomes the older */
	struct gen g[2];        /* g[0] the newer */
};

#define DROPPED INT64_MIN

static void
gen_release(struct gen *g)
{
	free(g->s);
	free(g->fh);
	memset(g, 0, sizeof *g);
}

wcache *
wcache_new(size_t max_keys)
{
	wcache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->per_gen = max_keys ? (max_keys / 2 ? max_keys / 2 : 1) : 0;
	return c;
}

void
wcache_free(wcache *c)
{
	if (!c)
		return;
	gen_release(&c->g[0]);
	gen_release(&c->g[1]);
	free(c);
}

/* Where kh's probe starts in g (g->cap > 0). */
static size_t
gen_home(const struct gen *g, uint64_t kh)
{
	return (size_t)(kh ^ kh >> 29) & (g->cap - 1);
}

/* The slot of kh in g, or the empty one it would take; NULL when g has no
 * slots. */
static struct slot *
gen_slot(const struct gen *g, uint64_t kh)
{
	if (!g->cap)
		return NULL;
	size_t j = gen_home(g, kh);
	while (g->s[j].n && g->s[j].kh != kh)
		j = (j + 1) & (g->cap - 1);
	return &g->s[j];
}

static int
gen_grow(struct gen *g)
{
	size_t nc = g->cap ? g->cap * 2 : 1024;
	struct slot *ns = calloc(nc, sizeof *ns);
	if (!ns)
		return -1;
	fp_mem_huge(ns, nc * sizeof *ns);
	struct gen t = *g;
	t.s = ns;
	t.cap = nc;
	for (size_t i = 0; i < g->cap; i++)
		if (g->s[i].n)
			*gen_slot(&t, g->s[i].kh) = g->s[i];
	free(g->s);
	g->s = ns;
	g->cap = nc;
	return 0;
}

/* The newer generation becomes the older; the older is dropped. */
static void
rotate(wcache *c)
{
	gen_release(&c->g[1]);
	c->g[1] = c->g[0];
	memset(&c->g[0], 0, sizeof c->g[0]);
}

const uint64_t *
wcache_get(wcache *c, uint64_t kh, int64_t now_ms, uint32_t *n, int64_t *until)
{
	for (int i = 0; i < 2; i++) {
		const struct gen *g = &c->g[i];
		const struct slot *s = gen_slot(g, kh);
		if (!s || !s->n)
			continue;
		if (s->until == DROPPED || s->until <= now_ms)
			return NULL;
		*n = s->n;
		*until = s->until;
		return g->fh + s->off;
	}
	return NULL;
}

void
wcache_prefetch(const wcache *c, uint64_t kh, int stage)
{
	for (int i = 0; i < 2; i++) {
		const struct gen *g = &c->g[i];
		if (!g->cap)
			continue;
		const struct slot *s = &g->s[gen_home(g, kh)];
		if (stage == 2)
			__builtin_prefetch(s);
		else if (s->n && s->kh == kh) {
			__builtin_prefetch(g->fh + s->off);
			return;
		}
	}
}

void
wcache_drop(wcache *c, uint64_t kh)
{
	for (int i = 0; i < 2; i++) {
		struct gen *g = &c->g[i];
		struct slot *s = gen_slot(g, kh);
		if (s && s->n && s->until != DROPPED) {
			s->until = DROPPED;
			g->live -= s->n;
		}
	}
}

int
wcache_put(wcache *c, uint64_t kh, int64_t until_ms, const uint64_t *fh, uint32_t n)
{
	if (!c->per_gen || !n) {
		wcache_drop(c, kh);
		return 0;
	}
	struct gen *g = &c->g[0];
	struct slot *s = gen_slot(g, kh);
	if (!s || !s->n) {
		/* a new key in the newer generation */
		if (g->used >= c->per_gen || g->nfh + n > UINT32_MAX ||
		    g->nfh > 2 * g->live + 65536) { /* its arena mostly holds replaced entries */
			rotate(c);
			s = NULL;
		}
		if (!s || (g->used + 1) * 2 > g->cap) {
			if ((g->used + 1) * 2 > g->cap && gen_grow(g) < 0)
				goto oom;
			s = gen_slot(g, kh);
		}
		g->used++;
		s->kh = kh;
		s->n = 0;
		s->until = DROPPED;
	}
	if (s->until != DROPPED)
		g->live -= s->n;
	if (s->n != n) {
		/* the arena grows; a replaced entry's room is reclaimed with its generation */
		if (g->nfh + n > UINT32_MAX)
			goto dropped;
		if (g->nfh + n > g->fhcap) {
			size_t nc = g->fhcap ? g->fhcap * 2 : 16384;
			while (nc < g->nfh + n)
				nc *= 2;
			uint64_t *nf = realloc(g->fh, nc * sizeof *nf);
			if (!nf)
				goto dropped;
			g->fh = nf;
			g->fhcap = nc;
			fp_mem_huge(nf, nc * sizeof *nf);
		}
		s->off = (uint32_t)g->nfh;
		g->nfh += n;
	}
	memcpy(g->fh + s->off, fh, n * sizeof *fh);
	s->n = n;
	s->until = until_ms;
	g->live += n;
	return 0;
dropped:
	s->until = DROPPED;
	if (!s->n)
		s->n = n, s->off = 0; /* a dropped slot, not an empty one: it is counted in used */
oom:
	wcache_drop(c, kh);
	return -1;
}

size_t
wcache_size(const wcache *c)
{
	size_t n = 0;
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < c->g[i].cap; j++)
			n += c->g[i].s[j].n && c->g[i].s[j].until != DROPPED;
	return n;
}
