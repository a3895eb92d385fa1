/* buf.c - growable byte buffer; see buf.h. */
#include "buf.h"

#include <stdlib.h>

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
