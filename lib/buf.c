/* buf.c - growable byte buffer; see buf.h. */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include "buf.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void
fp_mem_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	/* The whole pages of the block, not only its 2 MiB ones: a mapping
	 * split in parts could not be grown in place by mremap() any more,
	 * and realloc() would copy it. */
	long ps = sysconf(_SC_PAGESIZE);
	const uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
	uintptr_t a = (uintptr_t)p & ~(page - 1);
	uintptr_t z = ((uintptr_t)p + n + page - 1) & ~(page - 1);
	if (n >= FP_MEM_HUGE_MIN)
		(void)madvise((void *)a, z - a, MADV_HUGEPAGE); /* a hint: failure is harmless */
#else
	(void)p;
	(void)n;
#endif
}

void *
fp_array_grow(void *p, size_t *cap, size_t elem, size_t first)
{
	size_t nc = *cap ? *cap * 2 : first;
	if (nc < *cap || (elem && nc > SIZE_MAX / elem))
		return NULL;
	void *np = realloc(p, nc * elem);
	if (!np)
		return NULL;
	*cap = nc;
	fp_mem_huge(np, nc * elem);
	return np;
}

int
fp_buf_grow(fp_buf *b, size_t n)
{
	size_t need = b->len + n;
	if (need < b->len)
		return -1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	fp_mem_huge(p, cap);
	return 0;
}

void
fp_buf_release(fp_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int
fp_buf_pack_write(void *data, const char *p, size_t n)
{
	return fp_buf_add(data, p, n);
}
