/* buf.h - a growable byte buffer. */
#ifndef FP_BUF_H
#define FP_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct fp_buf {
	uint8_t *p;   /* owned; NULL until the first reserve */
	size_t len;
	size_t cap;
} fp_buf;

#define FP_BUF_INIT {NULL, 0, 0}

/* A block of memory of n bytes (malloc'd or not) is asked to be backed by
 * transparent huge pages, where the kernel leaves that to madvise(2)
 * (/sys/kernel/mm/transparent_hugepage/enabled: madvise): the first write
 * of a large buffer then takes a page fault per 2 MiB, not per 4 KiB.
 * Only from FP_MEM_HUGE_MIN bytes; a hint, never an error.  fp_buf_grow()
 * does it. */
#define FP_MEM_HUGE_MIN ((size_t)4 << 20)
void fp_mem_huge(void *p, size_t n);

/* An array p of *cap elements of elem bytes, grown to twice as many
 * (first when *cap is 0) and passed to fp_mem_huge(): the new array, with
 * *cap updated; NULL when out of memory (p and *cap as they were). */
void *fp_array_grow(void *p, size_t *cap, size_t elem, size_t first);

/* Make room for n more bytes.  0, or -1 when out of memory. */
int fp_buf_grow(fp_buf *b, size_t n);
void fp_buf_release(fp_buf *b);

static inline int
fp_buf_reserve(fp_buf *b, size_t n)
{
	return b->cap - b->len >= n ? 0 : fp_buf_grow(b, n);
}

static inline int
fp_buf_add(fp_buf *b, const void *p, size_t n)
{
	if (fp_buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static inline int
fp_buf_addc(fp_buf *b, uint8_t c)
{
	if (fp_buf_reserve(b, 1) < 0)
		return -1;
	b->p[b->len++] = c;
	return 0;
}

static inline int
fp_buf_adds(fp_buf *b, const char *s)
{
	return fp_buf_add(b, s, strlen(s));
}

/* msgpack-c packer write callback appending to an fp_buf (data = fp_buf *):
 * msgpack_packer_init(&pk, &buf, fp_buf_pack_write). */
int fp_buf_pack_write(void *data, const char *p, size_t n);

#endif
