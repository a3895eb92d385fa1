/* fp-import - raw messages to behaviour records, as a data dictionary says. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/dict.h"
#include "../lib/frame.h"
#include "../lib/imp.h"
#include "../lib/infer.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/num.h"
#include "../lib/stats.h"

static const char USAGE[] =
	"usage: fp-import -d dict [--dead-letter path] [--strict] [--max-frame size] [file ...]\n"
	"       fp-import -d dict --lines -s source [--dead-letter path] [--strict] [--max-frame size] [file ...]\n"
	"       fp-import -d dict --check\n"
	"       fp-import --infer [-s name] [file ...]\n";

static struct {
	const char *dict, *source, *dead_path;
	int strict, lines, check, infer;
	size_t max_frame;
} opt;

static dict *dct;
static imp eng;
static fp_buf out = FP_BUF_INIT;   /* finished frames for stdout */
static fr_writer dlw;              /* dead letters */
static int dl_fd = -1;
static uint64_t n_msgs, n_dead;
static stats *sts;                 /* metrics (stats.h); never NULL after start-up */
static stats_counter *m_in, *m_out, *m_filtered, *m_dropped;

/* The metrics' figures from the counts kept anyway (nothing per record). */
static void
stats_sync(void)
{
	m_in->v = n_msgs;
	m_out->v = eng.records;
	m_filtered->v = eng.filtered;
	m_dropped->v = eng.dropped;
}

/* Due metrics file or SIGUSR1 dump: called once per input chunk. */
static void
stats_due(void)
{
	stats_sync();
	if (stats_tick(sts, stats_clock_ms()) < 0)
		fp_warn("%s", stats_errstr(sts));
}

/* At exit, whatever the exit: the last figures. */
static void
stats_last(void)
{
	if (!sts)
		return;
	stats_sync();
	if (stats_final(sts) < 0)
		fp_warn("%s", stats_errstr(sts));
}

/* The errors_total label of a reason from imp.c or raw_frame(): a small,
 * fixed set (the full text goes to the dead letter). */
static const char *
reason_label(const char *why)
{
	static const struct { const char *prefix, *label; } map[] = {
		{"not a raw message frame", "bad_src"},
		{"@src is not", "bad_src"},
		{"no source in the dictionary", "unknown_topic"},
		{"no value", "no_value"},
		{"bad JSON", "bad_payload"},
		{"the JSON value is not", "bad_payload"},
		{"bad ", "bad_payload"},           /* bad csv/tsv/kv: ... */
		{"source '", "no_header"},
		{"no shape", "no_shape"},
		{"explode:", "bad_explode"},
		{"the record is", "too_large"},
		{"field '", "bad_field"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strncmp(why, map[i].prefix, strlen(map[i].prefix)) == 0)
			return strstr(why, "is required but missing") ? "missing_field" : map[i].label;
	return "other";
}

static void
summary(void)
{
	fp_warn("%llu messages, %llu records, %llu filtered, %llu dropped, %llu dead letters",
	        (unsigned long long)n_msgs, (unsigned long long)eng.records,
	        (unsigned long long)eng.filtered, (unsigned long long)eng.dropped,
	        (unsigned long long)n_dead);
}

/* Write out everything accepted so far: dead letters first, then records. */
static void
flush_all(void)
{
	if (dl_fd >= 0 && fr_writer_flush(&dlw) < 0)
		fp_die(FP_EXIT_IO, "error writing dead letters to '%s': %s", opt.dead_path,
		       strerror(dlw.err));
	if (out.len && fr_write_all(STDOUT_FILENO, out.p, out.len) < 0) {
		if (errno == EPIPE)
			exit(FP_EXIT_OK); /* the reader went away: a quiet stop */
		fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(errno));
	}
	out.len = 0;
}

static void
oom(void)
{
	fp_die(FP_EXIT_IO, "out of memory");
}

/* A dead letter: the input frame's entries (or @src and the line as
 * "value") plus "reason". */
static void
dead_letter(const char *where, const uint8_t *frame, size_t flen, const uint8_t *src,
            size_t srclen, const uint8_t *line, size_t llen)
{
	n_dead++;
	stats_add(stats_error(sts, reason_label(eng.reason)), 1);
	char e[200];
	if (frame && mp_check_frame(frame, flen, NULL, e, sizeof e) < 0) {
		flush_all();
		fp_die(FP_EXIT_DATA, "%s: invalid frame: %s", where, e);
	}
	if (dl_fd >= 0) {
		fp_buf b = FP_BUF_INIT;
		int r;
		if (frame) {
			uint32_t count;
			size_t hdr;
			mp_read_map(frame, flen, &count, &hdr);
			r = mpw_map(&b, count + 1) | fp_buf_add(&b, frame + hdr, flen - hdr);
		} else {
			r = mpw_map(&b, 3) | mpw_str(&b, "@src", 4) | fp_buf_add(&b, src, srclen) |
			    mpw_str(&b, "value", 5) | mpw_bin(&b, line, llen);
		}
		r |= mpw_str(&b, "reason", 6) | mpw_str(&b, eng.reason, strlen(eng.reason));
		if (r < 0)
			oom();
		if (b.len > dlw.max_frame) { /* keep where and why, lose the bytes */
			const uint8_t *v = src;
			size_t vl = srclen;
			if (frame && !mp_map_find(frame, flen, "@src", 4, &v, &vl))
				v = NULL;
			b.len = 0;
			r = mpw_map(&b, v ? 2 : 1) | mpw_str(&b, "reason", 6) |
			    mpw_str(&b, eng.reason, strlen(eng.reason));
			if (v)
				r |= mpw_str(&b, "@src", 4) | fp_buf_add(&b, v, vl);
			if (r < 0)
				oom();
			fp_warn("%s: the dead letter is too large for a frame; written without its bytes",
			        where);
		}
		if (fr_writer_put(&dlw, b.p, b.len) < 0)
			fp_die(FP_EXIT_IO, "error writing dead letters to '%s': %s", opt.dead_path,
			       strerror(dlw.err));
		fp_buf_release(&b);
	}
	if (opt.strict || dl_fd < 0)
		fp_warn("%s: %s", where, eng.reason);
	if (opt.strict) {
		flush_all();
		summary();
		exit(FP_EXIT_DATA);
	}
}

/* "topic/partition/offset" of a raw frame, for messages. */
static void
src_text(const uint8_t *src, size_t n, char *buf, size_t cap)
{
	uint32_t cnt;
	size_t hdr, k;
	const char *t;
	size_t tl;
	int64_t part, off;
	if (!src || mp_read_array(src, n, &cnt, &hdr) < 0 || cnt < 3 ||
	    mp_read_str(src + hdr, n - hdr, &t, &tl) < 0) {
		snprintf(buf, cap, "frame");
		return;
	}
	k = hdr + mp_skip(src + hdr, n - hdr);
	if (mp_read_int(src + k, n - k, &part) < 0)
		part = -1;
	k += mp_skip(src + k, n - k);
	if (mp_read_int(src + k, n - k, &off) < 0)
		off = -1;
	snprintf(buf, cap, "%.*s/%lld/%lld", (int)(tl > 100 ? 100 : tl), t, (long long)part,
	         (long long)off);
}

static struct { char topic[256]; size_t len; const dict_source *s; } cache[64];
static size_t ncache;

static const dict_source *
source_of(const char *t, size_t tl)
{
	for (size_t i = 0; i < ncache; i++)
		if (cache[i].len == tl && !memcmp(cache[i].topic, t, tl))
			return cache[i].s;
	const dict_source *s = dict_find_topic(dct, t, tl);
	if (tl < sizeof cache[0].topic) {
		size_t i = ncache < 64 ? ncache++ : (size_t)(t[0] & 63);
		memcpy(cache[i].topic, t, tl);
		cache[i].len = tl;
		cache[i].s = s;
	}
	return s;
}

/* One raw message frame (stream mode). */
static void
raw_frame(const uint8_t *body, size_t len, const imp_meta *meta, const uint8_t *val, size_t vlen)
{
	uint32_t cnt;
	size_t hdr;
	const char *topic;
	size_t tl;
	const dict_source *s = NULL;
	n_msgs++;
	if (!meta->src)
		snprintf(eng.reason, sizeof eng.reason, "not a raw message frame: no @src");
	else if (mp_read_array(meta->src, meta->srclen, &cnt, &hdr) < 0 || cnt < 1 ||
	         mp_read_str(meta->src + hdr, meta->srclen - hdr, &topic, &tl) < 0)
		snprintf(eng.reason, sizeof eng.reason, "@src is not [topic, partition, offset]");
	else if (!(s = source_of(topic, tl)))
		snprintf(eng.reason, sizeof eng.reason, "no source in the dictionary for topic '%.*s'",
		         (int)(tl > 100 ? 100 : tl), topic);
	else if (!val || (mp_read_bin(val, vlen, &val, &vlen) < 0 &&
	                  mp_read_str(val, vlen, (const char **)&val, &vlen) < 0)) {
		s = NULL;
		snprintf(eng.reason, sizeof eng.reason, "no value (nil, or not binary or a string)");
	}
	if (s) {
		int r = imp_message(&eng, s, meta, val, vlen, &out);
		if (r < 0)
			oom();
		if (r == 0)
			return;
	}
	char where[160];
	src_text(meta->src, meta->srclen, where, sizeof where);
	dead_letter(where, body, len, NULL, 0, NULL, 0);
}

static void
import_frames(int fd, const char *name)
{
	fr_reader r;
	if (fr_reader_init(&r, opt.max_frame) < 0)
		fp_die(FP_EXIT_USAGE, "%s", r.errstr);
	r.check = 0; /* imp_frame_scan() checks the common frames faster */
	for (;;) {
		const uint8_t *body;
		size_t len;
		enum fr_status st = fr_reader_next(&r, &body, &len);
		if (st == FR_OK) {
			imp_meta meta;
			const uint8_t *val;
			size_t vlen;
			int control;
			if (imp_frame_scan(body, len, &meta, &val, &vlen, &control) != 0 || control) {
				char e[200];
				if (mp_check_frame(body, len, &r.lim, e, sizeof e) < 0) {
					flush_all();
					fp_die(FP_EXIT_DATA, "%s: frame %llu at offset %llu: %s", name,
					       (unsigned long long)r.frames,
					       (unsigned long long)r.frame_offset, e);
				}
			}
			if (control) {
				if (fp_buf_add(&out, "\0\0\0\0", 4) < 0 || fp_buf_add(&out, body, len) < 0)
					oom();
				uint8_t *h = out.p + out.len - len - 4;
				h[0] = (uint8_t)(len >> 24), h[1] = (uint8_t)(len >> 16);
				h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len;
			} else
				raw_frame(body, len, &meta, val, vlen);
			if (out.len >= (256u << 10))
				flush_all();
			continue;
		}
		if (st == FR_ERROR) {
			flush_all();
			fp_die(FP_EXIT_DATA, "%s: %s", name, r.errstr);
		}
		flush_all();
		stats_due();
		ssize_t n = fr_reader_fill(&r, fd);
		if (n < 0)
			fp_die(FP_EXIT_IO, "error reading '%s': %s", name, strerror(errno));
		if (n == 0) {
			if (fr_reader_eof(&r) < 0) {
				flush_all();
				fp_die(FP_EXIT_DATA, "%s: %s", name, r.errstr);
			}
			break;
		}
	}
	fr_reader_release(&r);
}

/* --lines: one message per line, @src = [name, 0, line number]. */
static void
import_lines(int fd, const char *name, const dict_source *s)
{
	fp_buf in = FP_BUF_INIT, src = FP_BUF_INIT, in_us = FP_BUF_INIT;
	size_t start = 0, max_line = opt.max_frame * 4 + (1u << 20);
	uint64_t lineno = 0;
	int eof = 0, need_header = s->header;
	imp_meta meta;
	memset(&meta, 0, sizeof meta);
	meta.ts_from_field = 1;
	while (!eof) {
		if (start > 0) {
			memmove(in.p, in.p + start, in.len - start);
			in.len -= start;
			start = 0;
		}
		flush_all();
		stats_due();
		if (fp_buf_reserve(&in, 64u << 10) < 0)
			oom();
		ssize_t n;
		do
			n = read(fd, in.p + in.len, in.cap - in.len);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			fp_die(FP_EXIT_IO, "error reading '%s': %s", name, strerror(errno));
		in.len += (size_t)n;
		eof = n == 0;
		int64_t t = fp_wall_us();
		meta.now_ms = t / 1000;
		in_us.len = 0;
		if (mpw_int(&in_us, t) < 0)
			oom();
		meta.in = in_us.p;
		meta.inlen = in_us.len;
		for (;;) {
			char *nl = memchr(in.p + start, '\n', in.len - start);
			if (!nl && !(eof && start < in.len))
				break;
			size_t len = nl ? (size_t)(nl - (char *)in.p) - start : in.len - start;
			const uint8_t *line = in.p + start;
			start += len + (nl != NULL);
			lineno++;
			size_t k = 0;
			while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
				k++;
			if (k == len)
				continue;
			if (need_header) {
				need_header = 0;
				if (imp_set_header(&eng, s, (const char *)line, len) < 0)
					fp_die(FP_EXIT_DATA, "%s:%llu: %s", name, (unsigned long long)lineno,
					       eng.reason);
				continue;
			}
			n_msgs++;
			src.len = 0;
			if (mpw_array(&src, 3) < 0 || mpw_str(&src, name, strlen(name)) < 0 ||
			    mpw_uint(&src, 0) < 0 || mpw_uint(&src, lineno) < 0)
				oom();
			meta.src = src.p;
			meta.srclen = src.len;
			int r = imp_message(&eng, s, &meta, line, len, &out);
			if (r < 0)
				oom();
			if (r == 1) {
				char where[300];
				snprintf(where, sizeof where, "%s:%llu", name, (unsigned long long)lineno);
				dead_letter(where, NULL, 0, src.p, src.len, line, len);
			}
			if (out.len >= (256u << 10))
				flush_all();
		}
		if (in.len - start > max_line)
			fp_die(FP_EXIT_DATA, "%s:%llu: line longer than %zu bytes", name,
			       (unsigned long long)lineno + 1, max_line);
	}
	fp_buf_release(&in);
	fp_buf_release(&src);
	fp_buf_release(&in_us);
}

static int
run_infer(char **files, int nfiles)
{
	fp_buf text = FP_BUF_INIT, res = FP_BUF_INIT;
	char err[300];
	for (int i = 0; i < nfiles; i++) {
		int fd = STDIN_FILENO;
		if (strcmp(files[i], "-") && (fd = open(files[i], O_RDONLY)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", files[i], strerror(errno));
		for (;;) {
			if (fp_buf_reserve(&text, 64u << 10) < 0)
				oom();
			ssize_t n = read(fd, text.p + text.len, text.cap - text.len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				fp_die(FP_EXIT_IO, "error reading '%s': %s", files[i], strerror(errno));
			if (n == 0)
				break;
			text.len += (size_t)n;
		}
		if (fd != STDIN_FILENO)
			close(fd);
	}
	if (infer_dict(opt.source ? opt.source : "NAME", (char *)text.p, text.len, &res, err,
	               sizeof err) < 0)
		fp_die(FP_EXIT_DATA, "%s", err);
	fwrite(res.p, 1, res.len, stdout);
	fp_buf_release(&text);
	fp_buf_release(&res);
	fp_close_stdout();
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_DEAD = 256, OPT_STRICT, OPT_MAX_FRAME, OPT_LINES, OPT_CHECK, OPT_INFER };
	static const struct option longopts[] = {
		{"dead-letter", required_argument, NULL, OPT_DEAD},
		{"strict", no_argument, NULL, OPT_STRICT},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{"lines", no_argument, NULL, OPT_LINES},
		{"check", no_argument, NULL, OPT_CHECK},
		{"infer", no_argument, NULL, OPT_INFER},
		{NULL, 0, NULL, 0},
	};
	char err[400];
	int c;

	fp_tool_init("fp-import");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt_long(argc, argv, "d:s:", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': opt.dict = optarg; break;
		case 's': opt.source = optarg; break;
		case OPT_DEAD: opt.dead_path = optarg; break;
		case OPT_STRICT: opt.strict = 1; break;
		case OPT_LINES: opt.lines = 1; break;
		case OPT_CHECK: opt.check = 1; break;
		case OPT_INFER: opt.infer = 1; break;
		case OPT_MAX_FRAME: {
			uint64_t v;
			if (fp_parse_size(optarg, 1, FR_HARD_MAX, &v, err, sizeof err) < 0)
				fp_usage_error(USAGE, "--max-frame: %s", err);
			opt.max_frame = v;
			break;
		}
		default:
			fputs(USAGE, stderr);
			return FP_EXIT_USAGE;
		}
	}
	char **files = argv + optind;
	int nfiles = argc - optind;
	static char *dash[] = {"-"};
	if (nfiles == 0)
		files = dash, nfiles = 1;
	if (opt.infer) {
		if (opt.dict || opt.check || opt.strict || opt.dead_path)
			fp_usage_error(USAGE, "--infer takes only -s and files");
		return run_infer(files, nfiles);
	}
	if (!opt.dict)
		fp_usage_error(USAGE, "-d dict is required");
	if (opt.check && (opt.lines || opt.strict || opt.dead_path || opt.source || argc > optind))
		fp_usage_error(USAGE, "--check takes only -d");
	if (opt.lines != (opt.source != NULL))
		fp_usage_error(USAGE, opt.lines ? "--lines needs -s source" : "-s needs --lines or --infer");
	if (!opt.max_frame && fr_max_frame_env(&opt.max_frame, err, sizeof err) < 0)
		fp_usage_error(USAGE, "%s", err);
	if (!opt.max_frame)
		opt.max_frame = FR_DEFAULT_MAX;
	if (!(dct = dict_load(opt.dict, err, sizeof err)))
		fp_die(FP_EXIT_USAGE, "%s", err);
	if (opt.check) {
		printf("%s: %zu sources\n", opt.dict, dct->nsources);
		dict_free(dct);
		fp_close_stdout();
		return 0;
	}
	const dict_source *src = NULL;
	if (opt.lines && !(src = dict_find_source(dct, opt.source)))
		fp_die(FP_EXIT_USAGE, "no source '%s' in '%s'", opt.source, opt.dict);
	if (isatty(STDOUT_FILENO))
		fp_die(FP_EXIT_USAGE, "refusing to write binary frames to a terminal; "
		       "redirect to a file or pipe into another tool (e.g. '| fp-cat')");
	if (opt.dead_path) {
		if ((dl_fd = open(opt.dead_path, O_WRONLY | O_CREAT | O_APPEND, 0666)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", opt.dead_path, strerror(errno));
		fr_writer_init(&dlw, dl_fd, opt.max_frame);
	}
	imp_init(&eng, opt.max_frame);
	if (!(sts = stats_new("fp-import", err, sizeof err)))
		fp_die(FP_EXIT_IO, "%s", err);
	m_in = stats_counter_new(sts, "records_in_total", "Messages read (raw frames or lines).",
	                         NULL, NULL);
	m_out = stats_counter_new(sts, "records_out_total", "Behaviour records written.", NULL, NULL);
	m_filtered = stats_counter_new(sts, "records_filtered_total",
	                               "Records left out by a where clause.", NULL, NULL);
	m_dropped = stats_counter_new(sts, "messages_dropped_total",
	                              "Messages of a shape the dictionary drops.", NULL, NULL);
	if (stats_register_errstr(sts))
		fp_die(FP_EXIT_IO, "%s", stats_register_errstr(sts));
	if (stats_catch_sigusr1() < 0)
		fp_die(FP_EXIT_IO, "sigaction: %s", strerror(errno));
	atexit(stats_last);
	for (int i = 0; i < nfiles; i++) {
		const char *name = files[i];
		int fd = STDIN_FILENO;
		if (strcmp(name, "-") == 0)
			name = opt.lines ? opt.source : "<stdin>";
		else if ((fd = open(name, O_RDONLY)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", name, strerror(errno));
		if (opt.lines)
			import_lines(fd, name, src);
		else
			import_frames(fd, name);
		if (fd != STDIN_FILENO)
			close(fd);
	}
	flush_all();
	if (dl_fd >= 0) {
		if (close(dl_fd) < 0)
			fp_die(FP_EXIT_IO, "error writing dead letters to '%s': %s", opt.dead_path,
			       strerror(errno));
		fr_writer_release(&dlw);
	}
	summary();
	stats_last();
	stats_free(sts);
	sts = NULL;
	imp_release(&eng);
	dict_free(dct);
	fp_buf_release(&out);
	return 0;
}
