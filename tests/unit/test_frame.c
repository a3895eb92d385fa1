/* Unit tests: frame reader/writer, frame rule checks, sizes at the edges. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/frame.h"
#include "../../lib/json.h"
#include "../../lib/mpraw.h"
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

/* ---- mp_check_frame against a plain recursive reading of the rule ---- */

static uint64_t
be(const uint8_t *p, int k)
{
	uint64_t v = 0;
	for (int i = 0; i < k; i++)
		v = v << 8 | p[i];
	return v;
}

/* The object at *off (a map key when key): 0 and *off past it when it
 * keeps the frame rule at the default limits, -1 when it does not. */
static int
ref_obj(const uint8_t *p, size_t n, size_t *off, int depth, int key)
{
	if (*off >= n)
		return -1;
	uint8_t c = p[*off];
	size_t i = *off + 1;
	uint64_t len = 0, cnt = 0;
	int kind = 0, str = 0, lk = 0; /* kind 1 map, 2 array; lk: length bytes */
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		;
	else if (c <= 0x8f)
		kind = 1, cnt = c & 15;
	else if (c <= 0x9f)
		kind = 2, cnt = c & 15;
	else if (c <= 0xbf)
		str = 1, len = c & 31;
	else {
		switch (c) {
		case 0xd9: str = 1; /* fall through */
		case 0xc4: lk = 1; break;
		case 0xda: str = 1; /* fall through */
		case 0xc5: lk = 2; break;
		case 0xdb: str = 1; /* fall through */
		case 0xc6: lk = 4; break;
		case 0xc7: lk = 1; len = 1; break;
		case 0xc8: lk = 2; len = 1; break;
		case 0xc9: lk = 4; len = 1; break;
		case 0xcc: case 0xd0: len = 1; break;
		case 0xcd: case 0xd1: case 0xd4: len = 2; break;
		case 0xd5: len = 3; break;
		case 0xca: case 0xce: case 0xd2: len = 4; break;
		case 0xd6: len = 5; break;
		case 0xcb: case 0xcf: case 0xd3: len = 8; break;
		case 0xd7: len = 9; break;
		case 0xd8: len = 17; break;
		case 0xdc: kind = 2; lk = 2; break;
		case 0xdd: kind = 2; lk = 4; break;
		case 0xde: kind = 1; lk = 2; break;
		case 0xdf: kind = 1; lk = 4; break;
		default: return -1; /* 0xc1 */
		}
		if ((size_t)lk > n - i)
			return -1;
		if (kind)
			cnt = be(p + i, lk);
		else if (lk)
			len += be(p + i, lk);
		i += lk;
	}
	if (key && !str)
		return -1;
	if (len > n - i || (key && !utf8_valid(p + i, len)))
		return -1;
	i += len;
	*off = i;
	if (!kind)
		return 0;
	uint64_t items = kind == 1 ? 2 * cnt : cnt;
	if (cnt > MP_DEFAULT_ELEMENTS || items > n - i || depth + 1 > MP_DEFAULT_DEPTH)
		return -1;
	for (uint64_t j = 0; j < items; j++)
		if (ref_obj(p, n, off, depth + 1, kind == 1 && j % 2 == 0) < 0)
			return -1;
	return 0;
}

static int
ref_check(const uint8_t *p, size_t n)
{
	size_t off = 0;
	if (n == 0 || !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
		return -1;
	return ref_obj(p, n, &off, 0, 0) == 0 && off == n ? 0 : -1;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t
rnd(uint32_t m)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % m);
}

/* A random object of every kind the writer makes. */
static void
rand_obj(fp_buf *b, int depth)
{
	static const char *keys[] = {"@key", "views_1h", "k", "caf\xc3\xa9", "", "a_rather_long_key_of_over_31_bytes"};
	switch (rnd(depth > 3 ? 8 : 10)) {
	case 0: mpw_int(b, (int64_t)rnd(300) - 150); break;
	case 1: mpw_int(b, (int64_t)rnd(1u << 31) * (int64_t)rnd(1u << 31) - (1ll << 40)); break;
	case 2: mpw_double(b, rnd(1000) / 7.0); break;
	case 3: mpw_nil(b); break;
	case 4: mpw_bool(b, (int)rnd(2)); break;
	case 5: { char t[300]; size_t l = rnd(4) ? rnd(32) : rnd(300); memset(t, 'x', l); mpw_str(b, t, l); break; }
	case 6: { uint8_t t[70]; size_t l = rnd(70); memset(t, 0xff, l); mpw_bin(b, t, l); break; }
	case 7: { static const uint8_t ext[] = {0xd6, 0xff, 0, 0, 0, 1}; fp_buf_add(b, ext, sizeof ext); break; }
	case 8: { uint32_t k = rnd(5); mpw_array(b, k); while (k--) rand_obj(b, depth + 1); break; }
	default: {
		uint32_t k = rnd(5);
		mpw_map(b, k);
		while (k--) {
			const char *s = keys[rnd(6)];
			mpw_str(b, s, strlen(s));
			rand_obj(b, depth + 1);
		}
	}
	}
}

static void
test_check_model(void)
{
	fp_buf b = FP_BUF_INIT;
	char err[200];
	long cases = 0, valid = 0, wrong = 0;
	for (int it = 0; it < 40000; it++) {
		b.len = 0;
		uint32_t k = 1 + rnd(12);
		mpw_map(&b, k);
		for (uint32_t i = 0; i < k; i++) {
			char key[8];
			int kl = snprintf(key, sizeof key, "f%u", i);
			mpw_str(&b, key, (size_t)kl);
			rand_obj(&b, 1);
		}
		/* the frame as written, then damaged: bytes changed, cut, added */
		for (int m = 0; m < 6; m++) {
			fp_buf d = FP_BUF_INIT;
			fp_buf_add(&d, b.p, b.len);
			if (m == 1)
				d.p[rnd((uint32_t)d.len)] = (uint8_t)rnd(256);
			else if (m == 2)
				d.len = rnd((uint32_t)d.len);
			else if (m == 3)
				fp_buf_addc(&d, (char)rnd(256));
			else if (m >= 4)
				for (int x = 0; x < 3; x++)
					d.p[rnd((uint32_t)d.len)] = (uint8_t)(0xc0 + rnd(0x20));
			int want = ref_check(d.p, d.len);
			int got = mp_check_frame(d.p, d.len, NULL, err, sizeof err);
			uint32_t top[4], ntop = 0;
			int got_top = mp_check_frame_top(d.p, d.len, NULL, err, sizeof err, top, 4, &ntop);
			cases++;
			valid += want == 0;
			if (got != want || got_top != want) {
				if (wrong++ < 3)
					printf("# case %ld: reference %d, mp_check_frame %d, _top %d (%s)\n",
					       cases, want, got, got_top, err);
			}
			fp_buf_release(&d);
		}
	}
	ok(wrong == 0 && valid > cases / 5 && cases - valid > cases / 5,
	   "mp_check_frame agrees with a recursive reading of the rule on %ld frames (%ld valid): %ld differ",
	   cases, valid, wrong);
	fp_buf_release(&b);
}

/* Where the top-level entries are, and peeking at frames ahead. */
static void
test_check_top(void)
{
	fp_buf b = FP_BUF_INIT, s = FP_BUF_INIT;
	char err[200];
	int good = 1;
	for (int it = 0; it < 2000 && good; it++) {
		b.len = 0;
		uint32_t k = rnd(20), at[20];
		mpw_map(&b, k);
		for (uint32_t i = 0; i < k; i++) {
			at[i] = (uint32_t)b.len;
			char key[8];
			int kl = snprintf(key, sizeof key, "f%u", i);
			mpw_str(&b, key, (size_t)kl);
			rand_obj(&b, 1);
		}
		uint32_t top[20], ntop = 99;
		uint32_t max = rnd(21);
		if (mp_check_frame_top(b.p, b.len, NULL, err, sizeof err, top, max, &ntop) < 0 || ntop != k)
			good = 0;
		for (uint32_t i = 0; i < k && i < max && good; i++)
			good = top[i] == at[i];
	}
	ok(good, "mp_check_frame_top: the offset of every top-level key, the first maxtop of them");

	/* three frames in a reader; the third cut short */
	static const uint8_t f1[] = {0x81, 0xa1, 'a', 1}, f2[] = {0x80};
	put_len(&s, sizeof f1);
	fp_buf_add(&s, f1, sizeof f1);
	put_len(&s, sizeof f2);
	fp_buf_add(&s, f2, sizeof f2);
	put_len(&s, 9);
	fp_buf_add(&s, f1, sizeof f1);
	fr_reader r;
	fr_reader_init(&r, 0);
	fr_reader_feed(&r, s.p, s.len);
	const uint8_t *body;
	size_t len;
	ok(fr_reader_peek(&r, 0, &body, &len) == 1 && len == sizeof f1 && body[0] == 0x81 &&
	   fr_reader_peek(&r, 1, &body, &len) == 1 && len == 1 && body[0] == 0x80 &&
	   fr_reader_peek(&r, 2, &body, &len) == 0 && fr_reader_peek(&r, 7, &body, &len) == 0,
	   "fr_reader_peek: the frames ahead that are whole, not the one cut short");
	ok(fr_reader_next(&r, &body, &len) == FR_OK && len == sizeof f1 &&
	   fr_reader_peek(&r, 0, &body, &len) == 1 && len == 1,
	   "fr_reader_peek does not move the reader");
	fr_reader_release(&r);
	fp_buf_release(&b);
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
	test_check_model();
	test_check_top();
	test_writer();
	return tap_done();
}
