/* frame.c - frame reader and writer; see frame.h. */
#define _POSIX_C_SOURCE 200809L
#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "num.h"

#define READ_CHUNK (64u << 10)

int
fr_max_frame_env(size_t *out, char *errstr, size_t errlen)
{
	const char *s = getenv("FP_MAX_FRAME");
	*out = 0;
	if (!s || !*s)
		return 0;
	uint64_t v;
	char e[160];
	if (fp_parse_size(s, 1, FR_HARD_MAX, &v, e, sizeof e) < 0) {
		snprintf(errstr, errlen, "FP_MAX_FRAME: %s", e);
		return -1;
	}
	*out = v;
	return 0;
}

int
fr_reader_init(fr_reader *r, size_t max_frame)
{
	memset(r, 0, sizeof *r);
	r->check = 1;
	r->lim.max_depth = MP_DEFAULT_DEPTH;
	r->lim.max_elements = MP_DEFAULT_ELEMENTS;
	if (!max_frame && fr_max_frame_env(&max_frame, r->errstr, sizeof r->errstr) < 0)
		return -1;
	r->max_frame = max_frame ? max_frame : FR_DEFAULT_MAX;
	return 0;
}

void
fr_reader_release(fr_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->start = r->end = 0;
}

/* Make room for n more bytes after end, compacting first. */
static int
reserve(fr_reader *r, size_t n)
{
	if (r->start > 0 && (r->cap - r->end < n || r->start >= r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end >= n)
		return 0;
	size_t cap = r->cap ? r->cap : READ_CHUNK;
	while (cap - r->end < n)
		cap *= 2;
	uint8_t *p = realloc(r->buf, cap);
	if (!p)
		return -1;
	r->buf = p;
	r->cap = cap;
	return 0;
}

int
fr_reader_feed(fr_reader *r, const void *p, size_t n)
{
	if (reserve(r, n) < 0) {
		snprintf(r->errstr, sizeof r->errstr, "out of memory");
		return -1;
	}
	memcpy(r->buf + r->end, p, n);
	r->end += n;
	return 0;
}

ssize_t
fr_reader_fill(fr_reader *r, int fd)
{
	if (reserve(r, READ_CHUNK) < 0) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n;
	do
		n = read(fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->end += (size_t)n;
	return n;
}

static int
looks_like_text(const uint8_t *p)
{
	for (int i = 0; i < 4; i++)
		if (!((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
			return 0;
	return 1;
}

enum fr_status
fr_reader_next(fr_reader *r, const uint8_t **body, size_t *len)
{
	size_t avail = r->end - r->start;
	if (avail < 4)
		return FR_NEED_MORE;
	const uint8_t *p = r->buf + r->start;
	uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	uint64_t fno = r->frames + 1;
	if (n == 0 || n > r->max_frame) {
		if (looks_like_text(p)) {
			if (p[0] == '{' || p[0] == '[')
				snprintf(r->errstr, sizeof r->errstr,
				         "frame %llu at offset %llu: input looks like JSON lines; "
				         "pipe it through 'fp-cat -r'",
				         (unsigned long long)fno, (unsigned long long)r->offset);
			else
				snprintf(r->errstr, sizeof r->errstr,
				         "frame %llu at offset %llu: input looks like text, not frames "
				         "(for JSON lines use 'fp-cat -r')",
				         (unsigned long long)fno, (unsigned long long)r->offset);
		} else if (n == 0)
			snprintf(r->errstr, sizeof r->errstr,
			         "frame %llu at offset %llu: zero-length frame",
			         (unsigned long long)fno, (unsigned long long)r->offset);
		else
			snprintf(r->errstr, sizeof r->errstr,
			         "frame %llu at offset %llu: length %u exceeds the maximum frame size %zu",
			         (unsigned long long)fno, (unsigned long long)r->offset, n, r->max_frame);
		return FR_ERROR;
	}
	if (avail - 4 < n) {
		if (reserve(r, (size_t)n + 4 - avail) < 0) {
			snprintf(r->errstr, sizeof r->errstr, "out of memory for a %u-byte frame", n);
			return FR_ERROR;
		}
		return FR_NEED_MORE;
	}
	const uint8_t *b = p + 4;
	if (r->check) {
		char e[200];
		if (mp_check_frame(b, n, &r->lim, e, sizeof e) < 0) {
			snprintf(r->errstr, sizeof r->errstr, "frame %llu at offset %llu: %s",
			         (unsigned long long)fno, (unsigned long long)r->offset, e);
			return FR_ERROR;
		}
	}
	*body = b;
	*len = n;
	r->frame_offset = r->offset;
	r->offset += 4 + (uint64_t)n;
	r->start += 4 + (size_t)n;
	r->frames = fno;
	return FR_OK;
}

int
fr_reader_eof(fr_reader *r)
{
	size_t avail = r->end - r->start;
	if (avail == 0)
		return 0;
	if (avail < 4) {
		snprintf(r->errstr, sizeof r->errstr,
		         "truncated frame %llu at offset %llu: %zu bytes of a 4-byte length",
		         (unsigned long long)r->frames + 1, (unsigned long long)r->offset, avail);
		return -1;
	}
	const uint8_t *p = r->buf + r->start;
	uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	snprintf(r->errstr, sizeof r->errstr,
	         "truncated frame %llu at offset %llu: length %u, only %zu bytes follow",
	         (unsigned long long)r->frames + 1, (unsigned long long)r->offset, n, avail - 4);
	return -1;
}

int
fr_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n > 0) {
		ssize_t w = write(fd, q, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

void
fr_writer_init(fr_writer *w, int fd, size_t max_frame)
{
	memset(w, 0, sizeof *w);
	w->fd = fd;
	w->flush_at = 64u << 10;
	w->frame_start = SIZE_MAX;
	if (!max_frame) {
		char e[8];
		if (fr_max_frame_env(&max_frame, e, sizeof e) < 0)
			max_frame = 0;
	}
	w->max_frame = max_frame ? max_frame : FR_DEFAULT_MAX;
	msgpack_packer_init(&w->pk, &w->buf, fp_buf_pack_write);
}

void
fr_writer_release(fr_writer *w)
{
	fp_buf_release(&w->buf);
}

int
fr_writer_flush(fr_writer *w)
{
	if (w->err)
		return -1;
	size_t n = w->frame_start == SIZE_MAX ? w->buf.len : w->frame_start;
	if (n == 0)
		return 0;
	if (fr_write_all(w->fd, w->buf.p, n) < 0) {
		w->err = errno;
		return -1;
	}
	memmove(w->buf.p, w->buf.p + n, w->buf.len - n);
	w->buf.len -= n;
	if (w->frame_start != SIZE_MAX)
		w->frame_start = 0;
	return 0;
}

static inline void
put_len(uint8_t *p, uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

int
fr_writer_put(fr_writer *w, const void *body, size_t len)
{
	if (w->err)
		return -1;
	if (len == 0 || len > w->max_frame) {
		errno = EMSGSIZE;
		return -1;
	}
	if (fp_buf_reserve(&w->buf, len + 4) < 0) {
		w->err = ENOMEM;
		return -1;
	}
	put_len(w->buf.p + w->buf.len, (uint32_t)len);
	memcpy(w->buf.p + w->buf.len + 4, body, len);
	w->buf.len += len + 4;
	w->frames++;
	if (w->buf.len >= w->flush_at)
		return fr_writer_flush(w);
	return 0;
}

msgpack_packer *
fr_writer_begin(fr_writer *w)
{
	w->frame_start = w->buf.len;
	static const uint8_t zero[4];
	if (fp_buf_add(&w->buf, zero, 4) < 0)
		w->err = ENOMEM;
	return &w->pk;
}

void
fr_writer_abort(fr_writer *w)
{
	if (w->frame_start != SIZE_MAX) {
		w->buf.len = w->frame_start;
		w->frame_start = SIZE_MAX;
	}
}

int
fr_writer_end(fr_writer *w)
{
	if (w->frame_start == SIZE_MAX)
		return -1;
	size_t len = w->buf.len - w->frame_start - 4;
	if (w->err) {
		fr_writer_abort(w);
		return -1;
	}
	if (len == 0 || len > w->max_frame) {
		fr_writer_abort(w);
		errno = EMSGSIZE;
		return -1;
	}
	put_len(w->buf.p + w->frame_start, (uint32_t)len);
	w->frame_start = SIZE_MAX;
	w->frames++;
	if (w->buf.len >= w->flush_at)
		return fr_writer_flush(w);
	return 0;
}
