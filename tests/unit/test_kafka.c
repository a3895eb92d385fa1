/* test_kafka.c - lib/kafka.c: configuration, offsets, formats, names (TAP). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/kafka.h"

static int n, failed;

static void
ok(int cond, const char *name)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++n, name);
	if (!cond)
		failed = 1;
}

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
	ok(fk_format_check("abc%", e, sizeof e) < 0, "trailing % refused");
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

int
main(void)
{
	test_offsets();
	test_conf();
	test_format();
	test_names();
	printf("1..%d\n", n);
	return failed;
}
