/* libFuzzer harness: the frame reader, the frame rule check, and the
 * msgpack -> JSON -> msgpack round trip on whatever it accepts.
 * Build and run with `make fuzz`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/frame.h"
#include "../../lib/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fr_reader r;
	fr_reader_init(&r, 1u << 16);
	/* Feed in two pieces to exercise NEED_MORE across a boundary. */
	size_t half = size / 2;
	fr_reader_feed(&r, data, half);
	int fed_all = 0;
	for (;;) {
		const uint8_t *body;
		size_t len;
		enum fr_status st = fr_reader_next(&r, &body, &len);
		if (st == FR_OK) {
			fp_buf js = FP_BUF_INIT, back = FP_BUF_INIT;
			if (mp_to_json(body, len, &js) != 0)
				abort(); /* a checked frame must always print */
			json_error e;
			if (json_to_mp((const char *)js.p, js.len, &back, MP_MAX_DEPTH, &e) != 0) {
				fprintf(stderr, "printed JSON does not parse: %.*s\nat column %zu: %s\n",
				        (int)js.len, js.p, e.column, e.msg);
				abort(); /* and what it prints must parse */
			}
			fp_buf js2 = FP_BUF_INIT;
			if (mp_to_json(back.p, back.len, &js2) != 0 || js2.len != js.len ||
			    memcmp(js.p, js2.p, js.len) != 0)
				abort(); /* and print the same again */
			fp_buf_release(&js);
			fp_buf_release(&js2);
			fp_buf_release(&back);
			mp_is_control(body, len);
			continue;
		}
		if (st == FR_ERROR)
			break;
		if (fed_all) {
			fr_reader_eof(&r);
			break;
		}
		fr_reader_feed(&r, data + half, size - half);
		fed_all = 1;
	}
	fr_reader_release(&r);
	/* The JSON parser on the raw bytes too. */
	fp_buf mp = FP_BUF_INIT;
	json_error e;
	if (json_to_mp((const char *)data, size, &mp, 0, &e) == 0) {
		fp_buf js = FP_BUF_INIT;
		if (mp_to_json(mp.p, mp.len, &js) != 0)
			abort();
		fp_buf_release(&js);
	}
	fp_buf_release(&mp);
	return 0;
}
