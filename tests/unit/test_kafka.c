/* test_kafka.c - lib/kafka.c: configuration, offsets, formats, names (TAP). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/json.h"
#include "../../lib/kafka.h"
#include "tap.h"

static int
offset_is(const char *s, int rc, enum fk_offset_kind kind, int64_t value)
{
	fk_offset o = {FK_OFF_END, -7};
	int64_t stop = -7;
	char e[200];
	int r = fk_offset_parse(s, &o, &stop, e, sizeof e);
	if (r != rc)
		return 0;
	if (rc == 0)
		return o.kind == kind && o.value == value;
	if (rc == 1)
		return stop == value;
	return 1;
}

static void
test_offsets(void)
{
	ok(offset_is("beginning", 0, FK_OFF_BEGINNING, 0), "-o beginning");
	ok(offset_is("end", 0, FK_OFF_END, 0), "-o end");
	ok(offset_is("stored", 0, FK_OFF_STORED, 0), "-o stored");
	ok(offset_is("42", 0, FK_OFF_ABS, 42), "-o N");
	ok(offset_is("-5", 0, FK_OFF_TAIL, 5), "-o -N");
	ok(offset_is("s@1700000000000", 0, FK_OFF_TIME, 1700000000000), "-o s@MS");
	ok(offset_is("e@99", 1, FK_OFF_END, 99), "-o e@MS is a stop time");
	ok(offset_is("-0", -1, 0, 0) && offset_is("x", -1, 0, 0) && offset_is("12x", -1, 0, 0) &&
	   offset_is("s@", -1, 0, 0) && offset_is("e@-1", -1, 0, 0) && offset_is("", -1, 0, 0),
	   "bad offsets are refused");
}

static void
test_conf(void)
{
	fk_conf c;
	char e[512], v[64];
	size_t vn = sizeof v;
	fk_conf_init(&c);
	ok(fk_conf_set_kv(&c, "fetch.wait.max.ms=7", e, sizeof e) == 0 && fk_conf_user(&c, "fetch.wait.max.ms"),
	   "-X sets a property and remembers the user set it");
	ok(fk_conf_default(&c, "fetch.wait.max.ms", "100", e, sizeof e) == 0 &&
	   rd_kafka_conf_get(c.rk, "fetch.wait.max.ms", v, &vn) == RD_KAFKA_CONF_OK && strcmp(v, "7") == 0,
	   "a default does not override the user");
	vn = sizeof v;
	ok(fk_conf_default(&c, "queued.min.messages", "1000000", e, sizeof e) == 0 &&
	   !fk_conf_user(&c, "queued.min.messages") &&
	   rd_kafka_conf_get(c.rk, "queued.min.messages", v, &vn) == RD_KAFKA_CONF_OK &&
	   strcmp(v, "1000000") == 0, "a default applies when the user is silent");
	ok(fk_conf_set_kv(&c, "topic.auto.offset.reset=earliest", e, sizeof e) == 0 &&
	   fk_conf_user(&c, "auto.offset.reset"), "topic. prefix is dropped");
	ok(fk_conf_set_kv(&c, "no.such.prop=1", e, sizeof e) < 0 && strstr(e, "No such configuration"),
	   "unknown property refused");
	ok(fk_conf_set_kv(&c, "novalue", e, sizeof e) < 0 && strstr(e, "expected prop=val"),
	   "missing = refused");
	char path[] = "/tmp/test_kafka.XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fputs("# secrets\n\n  client.id = x\nclient.id=fromfile\n  \nsocket.timeout.ms=nope\n", f);
	fclose(f);
	ok(fk_conf_file(&c, path, e, sizeof e) < 0 && strstr(e, ":6: "), "file errors name the line");
	f = fopen(path, "w");
	fputs("# secrets\n\nclient.id = fromfile\n  session.timeout.ms=6000  \n", f);
	fclose(f);
	vn = sizeof v;
	ok(fk_conf_file(&c, path, e, sizeof e) == 0 && fk_conf_user(&c, "session.timeout.ms") &&
	   rd_kafka_conf_get(c.rk, "client.id", v, &vn) == RD_KAFKA_CONF_OK && strcmp(v, "fromfile") == 0,
	   "-F file: comments, blanks and spaces around a line");
	unlink(path);
	ok(fk_conf_file(&c, "/nonexistent/x.conf", e, sizeof e) < 0 && strstr(e, "unable to open"),
	   "missing file");
	fk_conf_release(&c);
}

static void
test_format(void)
{
	char e[200];
	ok(fk_format_check("%t %p %o %k %K %s %S %T %h %% \\n\\t\\r\\\\ \\x41", e, sizeof e) == 0,
	   "every kcat token is accepted");
	ok(fk_format_check("%z", e, sizeof e) < 0 && strstr(e, "'%z'"), "unknown token refused");
	ok(fk_format_check("abc%", e, sizeof e) < 0, "trailing %% refused");
	ok(fk_format_check("\\q", e, sizeof e) < 0 && fk_format_check("\\xg", e, sizeof e) < 0,
	   "bad escapes refused");
}

static void
test_names(void)
{
	rd_kafka_resp_err_t err;
	int16_t api;
	ok(fk_err_parse("NOT_LEADER_FOR_PARTITION", &err) == 0 &&
	   err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, "error by name");
	ok(fk_err_parse("rd_kafka_resp_err_request_timed_out", &err) == 0 &&
	   err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, "error with prefix, any case");
	ok(fk_err_parse("7", &err) == 0 && err == 7 && fk_err_parse("NOPE", &err) < 0,
	   "error by number; unknown refused");
	ok(strcmp(fk_err_name(RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE), "OFFSET_OUT_OF_RANGE") == 0,
	   "error name");
	ok(fk_api_parse("fetch", &api) == 0 && api == 1 && fk_api_parse("InitProducerId", &api) == 0 &&
	   api == 22 && fk_api_parse("19", &api) == 0 && api == 19 && fk_api_parse("Nope", &api) < 0,
	   "API keys by name and number");
	ok(strcmp(fk_api_name(3), "Metadata") == 0 && fk_api_name(999) == NULL, "API names");
}

/* JSON text -> msgpack into b (reset first). */
static void
mp_of(const char *json, fp_buf *b)
{
	json_error e;
	b->len = 0;
	if (json_to_mp(json, strlen(json), b, 64, &e) < 0) {
		printf("# bad fixture %s: %s\n", json, e.msg);
		exit(2);
	}
}

static int
bytes_are(const char *json, const char *want, int want_nil)
{
	fp_buf in = FP_BUF_INIT, out = FP_BUF_INIT;
	int isnil = -1;
	mp_of(json, &in);
	int r = fk_value_bytes(in.p, in.len, &out, &isnil) == 0 && isnil == want_nil &&
	        out.len == strlen(want) && memcmp(out.p ? (char *)out.p : "", want, out.len) == 0;
	if (!r)
		printf("# %s gave '%.*s' nil=%d\n", json, (int)out.len, out.p ? (char *)out.p : "", isnil);
	fp_buf_release(&in);
	fp_buf_release(&out);
	return r;
}

static int
raw_is(const char *json, int want)
{
	fp_buf b = FP_BUF_INIT;
	mp_of(json, &b);
	int r = fk_is_raw_message(b.p, b.len) == want;
	fp_buf_release(&b);
	return r;
}

static void
test_values(void)
{
	ok(bytes_are("\"abc\"", "abc", 0) && bytes_are("{\"@b64\":\"/wE=\"}", "\xff\x01", 0) &&
	   bytes_are("\"\"", "", 0), "str and bin as bytes");
	ok(bytes_are("-42", "-42", 0) && bytes_are("18446744073709551615", "18446744073709551615", 0) &&
	   bytes_are("2.5", "2.5", 0), "numbers as decimal text");
	ok(bytes_are("null", "", 1), "nil is a null");
	ok(bytes_are("[1,\"a\"]", "[1,\"a\"]", 0) && bytes_are("{\"k\":true}", "{\"k\":true}", 0) &&
	   bytes_are("false", "false", 0), "other values as JSON");
	ok(raw_is("{\"@src\":[\"t\",0,1],\"@ts\":1,\"@in\":2,\"key\":null,\"value\":{\"@bin\":\"v\"}}", 1) &&
	   raw_is("{\"@src\":[\"t\",0,1],\"value\":null,\"headers\":[]}", 1),
	   "raw message frames are recognised");
	ok(raw_is("{\"@src\":[\"t\",0,1],\"value\":\"text\"}", 0) &&
	   raw_is("{\"value\":{\"@bin\":\"v\"}}", 0) &&
	   raw_is("{\"@src\":[\"t\",0,1],\"value\":{\"@bin\":\"v\"},\"user\":1}", 0),
	   "records are not raw messages (str value, no @src, extra field)");

	fp_buf b = FP_BUF_INIT, tmp = FP_BUF_INIT;
	rd_kafka_headers_t *hs;
	char e[100];
	const void *v;
	size_t vn;
	mp_of("{\"@src\":[\"t\",0,1],\"value\":null,\"headers\":[[\"a\",{\"@bin\":\"1\"}],[\"b\",null],[\"a\",\"2\"]]}", &b);
	ok(fk_raw_headers(b.p, b.len, &hs, &tmp, e, sizeof e) == 0 && hs && rd_kafka_header_cnt(hs) == 3 &&
	   rd_kafka_header_get_last(hs, "a", &v, &vn) == 0 && vn == 1 && memcmp(v, "2", 1) == 0 &&
	   rd_kafka_header_get_last(hs, "b", &v, &vn) == 0 && v == NULL, "headers, null values, repeats");
	rd_kafka_headers_destroy(hs);
	mp_of("{\"@src\":[\"t\",0,1],\"value\":null}", &b);
	ok(fk_raw_headers(b.p, b.len, &hs, &tmp, e, sizeof e) == 0 && hs == NULL, "no headers");
	mp_of("{\"@src\":[\"t\",0,1],\"value\":null,\"headers\":[[\"a\"]]}", &b);
	ok(fk_raw_headers(b.p, b.len, &hs, &tmp, e, sizeof e) < 0 && hs == NULL && strstr(e, "[[name, value]"),
	   "malformed headers");
	fp_buf_release(&b);
	fp_buf_release(&tmp);
}

static void
test_parts(void)
{
	fk_parts t = FK_PARTS_INIT;
	fp_buf b = FP_BUF_INIT, j = FP_BUF_INIT;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
	rd_kafka_topic_partition_list_add(l, "a", 0)->offset = 5;
	rd_kafka_topic_partition_list_add(l, "a", 1)->offset = 0;
	rd_kafka_topic_partition_list_add(l, "bb", 0)->offset = 7;
	ok(fk_parts_add(&t, l) == 0 && t.n == 3 && fk_parts_find(&t, "bb", 0)->next == 7 &&
	   fk_parts_find(&t, "a", 1)->next == 0 && fk_parts_find(&t, "a", 2) == NULL &&
	   fk_parts_find(&t, "b", 0) == NULL, "partitions added and found");
	fk_parts_find(&t, "a", 1)->next = 12;
	ok(fk_barrier(&t, 4, &b) == 0 && mp_to_json(b.p, b.len, &j) == 0 &&
	   j.len == strlen("{\"@ctl\":\"barrier\",\"@epoch\":4,\"@pos\":[[\"a\",0,5],[\"a\",1,12],[\"bb\",0,7]]}") &&
	   memcmp(j.p, "{\"@ctl\":\"barrier\",\"@epoch\":4,\"@pos\":[[\"a\",0,5],[\"a\",1,12],[\"bb\",0,7]]}", j.len) == 0,
	   "barrier lists every partition");
	rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(r, "a", 0);
	fk_parts_remove(&t, r);
	ok(t.n == 2 && fk_parts_find(&t, "a", 0) == NULL && fk_parts_find(&t, "bb", 0)->next == 7 &&
	   fk_parts_find(&t, "a", 1)->next == 12, "revoked partitions removed");
	b.len = j.len = 0;
	fk_parts_release(&t);
	ok(t.n == 0 && fk_barrier(&t, 5, &b) == 0 && mp_to_json(b.p, b.len, &j) == 0 &&
	   memcmp(j.p, "{\"@ctl\":\"barrier\",\"@epoch\":5,\"@pos\":[]}", j.len) == 0,
	   "empty barrier");
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_topic_partition_list_destroy(r);
	fp_buf_release(&b);
	fp_buf_release(&j);
}

int
main(void)
{
	test_values();
	test_parts();
	test_offsets();
	test_conf();
	test_format();
	test_names();
	return tap_done();
}
