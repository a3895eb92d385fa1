/* Unit tests: frame reader/writer, frame rule checks, sizes at the edges. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/frame.h"
#include "../../lib/json.h"
#include "tap.h"

/* A frame body: a map {"k": bin of n-? bytes} sized to exactly total bytes. */
static void
body_of_size(fp_buf *b, size_t total)
{
	b->len = 0;
	mpw_map(b, 1);
	mpw_str(b, "k", 1);
	/* bin header is 2, 3 or 5 bytes depending on the length */
	size_t left = total - b->len;
	size_t hdr = left - 2 <= 0xff ? 2 : left - 3 <= 0xffff ? 3 : 5;
	size_t n = left - hdr;
	uint8_t *tmp = malloc(n ? n : 1);
	memset(tmp, 'x', n);
	mpw_bin(b, tmp, n);
	free(tmp);
}

static void
put_len(fp_buf *b, uint32_t n)
{
	uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	fp_buf_add(b, h, 4);
}

/* Feed stream s to a fresh reader in chunks of `chunk` bytes; count frames;
 * return the final status: 0 clean end, 1 error (errstr copied). */
static int
read_all(const uint8_t *s, size_t n, size_t chunk, size_t max, uint64_t *frames, char *err)
{
	fr_reader r;
	fr_reader_init(&r, max);
	size_t off = 0;
	int rc = 0;
	*frames = 0;
	for (;;) {
		const uint8_t *b;
		size_t len;
		enum fr_status st = fr_reader_next(&r, &b, &len);
		if (st == FR_OK) {
			(*frames)++;
			continue;
		}
		if (st == FR_ERROR) {
			strcpy(err, r.errstr);
			rc = 1;
			break;
		}
		if (off >= n) {
			if (fr_reader_eof(&r) < 0) {
				strcpy(err, r.errstr);
				rc = 1;
			}
			break;
		}
		size_t k = n - off < chunk ? n - off : chunk;
		fr_reader_feed(&r, s + off, k);
		off += k;
	}
	fr_reader_release(&r);
	return rc;
}

static int
contains(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

static void
test_sizes(void)
{
	size_t sizes[] = {1 + 1 + 2 + 1, 4095, 4096, 4097, 65536, 1u << 20};
	fp_buf body = FP_BUF_INIT, stream = FP_BUF_INIT;
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		body_of_size(&body, sizes[i]);
		stream.len = 0;
		for (int k = 0; k < 3; k++) {
			put_len(&stream, (uint32_t)body.len);
			fp_buf_add(&stream, body.p, body.len);
		}
		uint64_t frames;
		char err[256] = "";
		int rc = read_all(stream.p, stream.len, 1000, 0, &frames, err);
		ok(body.len == sizes[i] && rc == 0 && frames == 3,
		   "3 frames of %zu bytes read back in 1000-byte chunks (%s)", sizes[i], err);
		rc = read_all(stream.p, stream.len, stream.len, 0, &frames, err);
		ok(rc == 0 && frames == 3, "3 frames of %zu bytes read back in one feed", sizes[i]);
	}
	/* the cap and cap+1 */
	size_t cap = 70000;
	body_of_size(&body, cap);
	stream.len = 0;
	put_len(&stream, (uint32_t)body.len);
	fp_buf_add(&stream, body.p, body.len);
	uint64_t frames;
	char err[256] = "";
	ok(read_all(stream.p, stream.len, 4096, cap, &frames, err) == 0 && frames == 1,
	   "a frame of exactly the maximum size is accepted");
	body_of_size(&body, cap + 1);
	stream.len = 0;
	put_len(&stream, (uint32_t)body.len);
	fp_buf_add(&stream, body.p, body.len);
	ok(read_all(stream.p, stream.len, 4096, cap, &frames, err) == 1 &&
	   contains(err, "exceeds the maximum frame size 70000"),
	   "a frame one byte over the maximum is refused: %s", err);
	/* the default cap, 16 MiB, and one byte more */
	body_of_size(&body, FR_DEFAULT_MAX);
	stream.len = 0;
	put_len(&stream, (uint32_t)body.len);
	fp_buf_add(&stream, body.p, body.len);
	ok(read_all(stream.p, stream.len, 1u << 20, 0, &frames, err) == 0 && frames == 1,
	   "a frame of exactly 16 MiB (the default cap) is accepted");
	body_of_size(&body, FR_DEFAULT_MAX + 1);
	stream.len = 0;
	put_len(&stream, (uint32_t)body.len);
	fp_buf_add(&stream, body.p, body.len);
	ok(read_all(stream.p, stream.len, 1u << 20, 0, &frames, err) == 1 &&
	   contains(err, "length 16777217 exceeds the maximum frame size 16777216"),
	   "16 MiB + 1 is refused: %s", err);
	fp_buf_release(&body);
	fp_buf_release(&stream);
}

static int
malformed(const char *json_or_null, const uint8_t *raw, size_t rawlen, const char *want)
{
	fp_buf s = FP_BUF_INIT;
	if (json_or_null) {
		fp_buf body = FP_BUF_INIT;
		json_error e;
		json_to_mp(json_or_null, strlen(json_or_null), &body, 0, &e);
		put_len(&s, (uint32_t)body.len);
		fp_buf_add(&s, body.p, body.len);
		fp_buf_release(&body);
	}
	fp_buf_add(&s, raw, rawlen);
	uint64_t frames;
	char err[256] = "";
	int rc = read_all(s.p, s.len, 7, 0, &frames, err);
	fp_buf_release(&s);
	int good = rc == 1 && contains(err, want) && frames == (json_or_null ? 1u : 0u);
	if (!good)
		printf("# got rc=%d frames=%llu err='%s' want '%s'\n", rc,
		       (unsigned long long)frames, err, want);
	return good;
}

static void
test_malformed(void)
{
	static const uint8_t trunc_len[] = {0, 0};
	ok(malformed("{\"a\":1}", trunc_len, 2, "truncated frame 2 at offset 8: 2 bytes of a 4-byte length"),
	   "truncated length prefix after a good frame");
	static const uint8_t trunc_body[] = {0, 0, 0, 5, 0x81, 0xa1};
	ok(malformed(NULL, trunc_body, sizeof trunc_body, "truncated frame 1 at offset 0: length 5, only 2 bytes follow"),
	   "truncated body");
	static const uint8_t zero[] = {0, 0, 0, 0};
	ok(malformed(NULL, zero, 4, "zero-length frame"), "zero length");
	static const uint8_t huge[] = {0x7f, 0, 0, 0, 1};
	ok(malformed(NULL, huge, 5, "exceeds the maximum frame size"), "oversize length");
	static const uint8_t arr[] = {0, 0, 0, 2, 0x91, 0x01};
	ok(malformed(NULL, arr, sizeof arr, "root is not a map"), "array root");
	static const uint8_t trail[] = {0, 0, 0, 3, 0x80, 0x01, 0x02};
	ok(malformed(NULL, trail, sizeof trail, "2 trailing bytes after the map"), "trailing bytes inside a frame");
	static const uint8_t c1[] = {0, 0, 0, 4, 0x81, 0xa1, 'k', 0xc1};
	ok(malformed(NULL, c1, sizeof c1, "invalid type byte"), "invalid msgpack type 0xc1");
	static const uint8_t shortstr[] = {0, 0, 0, 4, 0x81, 0xa1, 'k', 0xa5};
	ok(malformed(NULL, shortstr, sizeof shortstr, "truncated"), "string longer than the frame");
	static const uint8_t badkey[] = {0, 0, 0, 4, 0x81, 0xa1, 0xff, 0xc0};
	ok(malformed(NULL, badkey, sizeof badkey, "map key at byte 1 is not valid UTF-8"), "non-UTF-8 map key");
	static const uint8_t intkey[] = {0, 0, 0, 3, 0x81, 0x01, 0x02};
	ok(malformed(NULL, intkey, sizeof intkey, "map key at byte 1 is not a string"), "integer map key");
	/* map32 claiming 2^32-1 entries in a 9-byte body: refused before any allocation */
	static const uint8_t bigcount[] = {0, 0, 0, 9, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k', 0xc0, 0xc0};
	ok(malformed(NULL, bigcount, sizeof bigcount, "holds 4294967295 entries, more than the limit"),
	   "huge map count refused");
	static const uint8_t arrcount[] = {0, 0, 0, 9, 0x81, 0xa1, 'k', 0xdd, 0, 0, 0x10, 0, 0xc0};
	ok(malformed(NULL, arrcount, sizeof arrcount, "claims 4096 entries but only 1 bytes are left"),
	   "array count larger than the bytes left");
	static const uint8_t text[] = "{\"user\":1}\n";
	ok(malformed(NULL, text, sizeof text - 1, "input looks like JSON lines; pipe it through 'fp-cat -r'"),
	   "JSON text where frames should be");
	static const uint8_t words[] = "hello world\n";
	ok(malformed(NULL, words, sizeof words - 1, "looks like text"), "plain text where frames should be");
	/* nesting: 65 nested arrays inside the map */
	fp_buf s = FP_BUF_INIT;
	uint8_t deep[80];
	size_t n = 0;
	deep[n++] = 0x81;
	deep[n++] = 0xa1;
	deep[n++] = 'k';
	for (int i = 0; i < 64; i++)
		deep[n++] = 0x91;
	deep[n++] = 0xc0;
	put_len(&s, (uint32_t)n);
	fp_buf_add(&s, deep, n);
	ok(malformed(NULL, s.p, s.len, "nesting deeper than 64"), "nesting over the depth limit");
	s.len = 0;
	put_len(&s, (uint32_t)n - 1);
	deep[n - 2] = 0xc0; /* 63 arrays + the map = depth 64: fine */
	fp_buf_add(&s, deep, n - 1);
	uint64_t frames;
	char err[256] = "";
	ok(read_all(s.p, s.len, 5, 0, &frames, err) == 0 && frames == 1, "nesting at the depth limit accepted (%s)", err);
	fp_buf_release(&s);
}

static void
test_writer(void)
{
	int p[2];
	if (pipe(p) < 0)
		abort();
	fr_writer w;
	fr_writer_init(&w, p[1], 0);
	msgpack_packer *pk = fr_writer_begin(&w);
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "a", 1);
	msgpack_pack_int(pk, 7);
	ok(fr_writer_end(&w) == 0, "packer frame closed");
	ok(fr_writer_put(&w, "\x80", 1) == 0, "raw frame put");
	fr_writer_begin(&w);
	ok(fr_writer_end(&w) == -1 && errno == EMSGSIZE, "an empty frame is refused");
	ok(w.buf.len == 4 + 4 + 4 + 1, "nothing written before flush (%zu buffered)", w.buf.len);
	ok(fr_writer_flush(&w) == 0 && w.buf.len == 0, "flush writes everything");
	uint8_t got[64];
	ssize_t n = read(p[0], got, sizeof got);
	static const uint8_t want[] = {0, 0, 0, 4, 0x81, 0xa1, 'a', 7, 0, 0, 0, 1, 0x80};
	ok(n == sizeof want && memcmp(got, want, sizeof want) == 0, "bytes on the pipe are the two frames");
	close(p[0]);
	ok(fr_writer_put(&w, "\x80", 1) == 0 && fr_writer_flush(&w) == -1 && w.err == EPIPE,
	   "a closed reader gives EPIPE (not a signal)");
	close(p[1]);
	fr_writer_release(&w);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_sizes();
	test_malformed();
	test_writer();
	return tap_done();
}
