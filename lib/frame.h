/* frame.h - length-framed MessagePack streams (fp-frames(5)).
 *
 * A frame is a 4-byte big-endian length N, 0 < N <= max, then N bytes
 * holding exactly one MessagePack map.
 *
 * Reading is feed/next: put bytes in with fr_reader_feed() or
 * fr_reader_fill(), then take frames out with fr_reader_next() until it
 * says FR_NEED_MORE.  Writing is buffered: frames accumulate and go out in
 * large writes; flush before blocking on input (fr_writer_flush()).
 */
#ifndef FP_FRAME_H
#define FP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "buf.h"
#include "mpraw.h"

#define FR_DEFAULT_MAX (16u << 20)
#define FR_HARD_MAX (1u << 30)

enum fr_status { FR_OK, FR_NEED_MORE, FR_ERROR };

typedef struct fr_reader {
	uint8_t *buf;           /* owned */
	size_t cap, start, end; /* unread bytes are buf[start..end) */
	size_t max_frame;
	mp_limits lim;
	int check;              /* check bodies against the frame rule (default 1) */
	uint64_t offset;        /* stream offset of the next frame */
	uint64_t frames;        /* frames returned so far */
	uint64_t frame_offset;  /* stream offset of the last frame returned */
	char errstr[256];
} fr_reader;

/* Initialise a reader.  max_frame 0 means FP_MAX_FRAME from the
 * environment, or FR_DEFAULT_MAX.  -1 (errstr set) when FP_MAX_FRAME is
 * invalid. */
int fr_reader_init(fr_reader *r, size_t max_frame);
void fr_reader_release(fr_reader *r);

/* Copy n bytes into the reader.  -1 when out of memory. */
int fr_reader_feed(fr_reader *r, const void *p, size_t n);

/* read() once from fd into the reader: >0 bytes read, 0 at EOF, -1 on
 * error (errno set; EINTR is retried, EAGAIN is returned). */
ssize_t fr_reader_fill(fr_reader *r, int fd);

/* The next frame.  FR_OK: *body and *len hold it, valid until the next call on
 * r.  FR_NEED_MORE: feed more.  FR_ERROR: errstr names the problem and the
 * frame's number and offset; the stream cannot be resynchronised. */
enum fr_status fr_reader_next(fr_reader *r, const uint8_t **body, size_t *len);

/* The body of the frame k frames after the one fr_reader_next() returns
 * next (k = 0: that one), when all of it is buffered already: 1, else 0.
 * Unchecked (a hint, e.g. for prefetching what it will touch); it does not
 * move the reader. */
static inline int
fr_reader_peek(const fr_reader *r, unsigned k, const uint8_t **body, size_t *len)
{
	size_t at = r->start;
	for (;;) {
		if (r->end - at < 4)
			return 0;
		const uint8_t *p = r->buf + at;
		size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		if (n > r->end - at - 4)
			return 0;
		if (k-- == 0) {
			*body = p + 4;
			*len = n;
			return 1;
		}
		at += 4 + n;
	}
}

/* At end of input: 0 when the stream ended on a frame boundary, -1 (errstr
 * set) when a frame was cut short. */
int fr_reader_eof(fr_reader *r);

/* Bytes buffered but not yet returned as frames. */
static inline size_t fr_reader_pending(const fr_reader *r) { return r->end - r->start; }

/* Read max_frame from FP_MAX_FRAME (a size, e.g. "16M"); 0 if unset. */
int fr_max_frame_env(size_t *out, char *errstr, size_t errlen);

typedef struct fr_writer {
	int fd;
	fp_buf buf;
	size_t flush_at;      /* write out once this many bytes are buffered */
	size_t frame_start;   /* offset of the open frame's length, or SIZE_MAX */
	size_t max_frame;
	int err;              /* errno of the first failed write; sticky */
	uint64_t frames;
	msgpack_packer pk;    /* packs into buf */
} fr_writer;

void fr_writer_init(fr_writer *w, int fd, size_t max_frame);
/* Releases the buffer without flushing. */
void fr_writer_release(fr_writer *w);

/* Append a whole frame body (copied).  -1 on a write error (w->err). */
int fr_writer_put(fr_writer *w, const void *body, size_t len);

/* Open a frame and return a packer that appends its body; close it with
 * fr_writer_end().  The packer is valid until fr_writer_release(). */
msgpack_packer *fr_writer_begin(fr_writer *w);
/* Close the open frame.  -1 when it is empty or larger than max_frame (the
 * frame is dropped; errno EMSGSIZE) or on a write error. */
int fr_writer_end(fr_writer *w);
/* Drop the open frame. */
void fr_writer_abort(fr_writer *w);

/* Write out everything buffered.  0, or -1 with w->err set (EPIPE when the
 * reader went away). */
int fr_writer_flush(fr_writer *w);

/* Write all of p[0..n) to fd, retrying short writes and EINTR. */
int fr_write_all(int fd, const void *p, size_t n);

#endif
