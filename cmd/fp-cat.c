/* fp-cat - frames <-> JSON lines; validate a frame stream. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdnoreturn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/frame.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/num.h"

static const char USAGE[] =
	"usage: fp-cat [-u] [-n count] [--max-frame size] [file ...]\n"
	"       fp-cat -r [-u] [-n count] [--max-frame size] [file ...]\n"
	"       fp-cat --check [--max-frame size] [file ...]\n";

static struct {
	int reverse, check, unbuffered;
	uint64_t limit; /* 0: no limit */
	size_t max_frame;
} opt;

static struct {
	uint64_t frames, control, bytes;
} total;

static fp_buf out = FP_BUF_INIT;     /* JSON output */
static fr_writer fw;                 /* frame output */

static int
out_flush(void)
{
	if (opt.reverse)
		return fr_writer_flush(&fw);
	if (out.len && fr_write_all(STDOUT_FILENO, out.p, out.len) < 0)
		return -1;
	out.len = 0;
	return 0;
}

/* Bad input: flush what is already accepted, then say why and exit 1. */
__attribute__((format(printf, 1, 2))) static noreturn void
bad_input(const char *fmt, ...)
{
	int failed = out_flush() < 0;
	int e = opt.reverse ? fw.err : errno;
	va_list ap;
	va_start(ap, fmt);
	fp_vwarn(fmt, ap);
	va_end(ap);
	if (failed && e != EPIPE)
		fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(e));
	exit(FP_EXIT_DATA);
}

static void
write_failed(void)
{
	int e = opt.reverse ? fw.err : errno;
	if (e == EPIPE)
		exit(0); /* the reader went away: a quiet, orderly stop */
	fp_die(FP_EXIT_IO, "error writing standard output: %s", strerror(e));
}

static int
done(void)
{
	return opt.limit && total.frames >= opt.limit;
}

/* Frames in: JSON lines or counts out. */
static void
cat_frames(int fd, const char *name)
{
	fr_reader r;
	if (fr_reader_init(&r, opt.max_frame) < 0)
		fp_die(FP_EXIT_USAGE, "%s", r.errstr);
	for (;;) {
		const uint8_t *body;
		size_t len;
		enum fr_status st = fr_reader_next(&r, &body, &len);
		if (st == FR_OK) {
			total.frames++;
			total.bytes += len + 4;
			if (mp_is_control(body, len))
				total.control++;
			if (!opt.check) {
				if (mp_to_json(body, len, &out) < 0 || fp_buf_addc(&out, '\n') < 0)
					fp_die(FP_EXIT_IO, "out of memory");
				if ((opt.unbuffered || out.len >= (64u << 10)) && out_flush() < 0)
					write_failed();
			}
			if (done())
				break;
			continue;
		}
		if (st == FR_ERROR) {
			bad_input("%s: %s", name, r.errstr);
		}
		if (out_flush() < 0)
			write_failed();
		ssize_t n = fr_reader_fill(&r, fd);
		if (n < 0)
			fp_die(FP_EXIT_IO, "error reading '%s': %s", name, strerror(errno));
		if (n == 0) {
			if (fr_reader_eof(&r) < 0) {
				bad_input("%s: %s", name, r.errstr);
			}
			break;
		}
	}
	fr_reader_release(&r);
}

/* One JSON line (without its newline) to a frame. */
static void
line_to_frame(const char *name, uint64_t lineno, const char *s, size_t n, fp_buf *tmp)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i == n)
		return; /* blank lines are skipped */
	if (s[i] != '{') {
		bad_input("%s:%llu:%zu: a frame must be a JSON object, found '%c'", name,
		        (unsigned long long)lineno, i + 1, s[i]);
	}
	json_error e;
	tmp->len = 0;
	if (json_to_mp(s, n, tmp, fw.max_frame > 0 ? MP_DEFAULT_DEPTH : 0, &e) < 0) {
		bad_input("%s:%llu:%zu: %s", name, (unsigned long long)lineno, e.column, e.msg);
	}
	if (tmp->p[0] < 0x80 || (tmp->p[0] > 0x8f && tmp->p[0] != 0xde && tmp->p[0] != 0xdf)) {
		/* a reserved form such as {"@bin":...} at the root is not a map */
		bad_input("%s:%llu:%zu: a frame must be a JSON object, not a reserved %s form",
		        name, (unsigned long long)lineno, i + 1, "\"@...\"");
	}
	if (tmp->len > fw.max_frame) {
		bad_input("%s:%llu: the record is %zu bytes as msgpack, more than the maximum frame size %zu",
		        name, (unsigned long long)lineno, tmp->len, fw.max_frame);
	}
	if (fr_writer_put(&fw, tmp->p, tmp->len) < 0)
		write_failed();
	if (opt.unbuffered && fr_writer_flush(&fw) < 0)
		write_failed();
	total.frames++;
}

static void
cat_lines(int fd, const char *name)
{
	fp_buf in = FP_BUF_INIT, tmp = FP_BUF_INIT;
	size_t start = 0;
	uint64_t lineno = 0;
	size_t max_line = fw.max_frame * 4 + (1u << 20);
	for (;;) {
		/* Hand out every complete line buffered. */
		char *nl;
		while (!done() && in.len > start &&
		       (nl = memchr(in.p + start, '\n', in.len - start)) != NULL) {
			size_t n = (size_t)(nl - (char *)in.p) - start;
			lineno++;
			line_to_frame(name, lineno, (char *)in.p + start, n, &tmp);
			start += n + 1;
		}
		if (done())
			break;
		if (start > 0) {
			memmove(in.p, in.p + start, in.len - start);
			in.len -= start;
			start = 0;
		}
		if (in.len > max_line) {
			bad_input("%s:%llu: line longer than %zu bytes", name,
			        (unsigned long long)lineno + 1, max_line);
		}
		if (fr_writer_flush(&fw) < 0)
			write_failed();
		if (fp_buf_reserve(&in, 64u << 10) < 0)
			fp_die(FP_EXIT_IO, "out of memory");
		ssize_t n;
		do
			n = read(fd, in.p + in.len, in.cap - in.len);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			fp_die(FP_EXIT_IO, "error reading '%s': %s", name, strerror(errno));
		if (n == 0) {
			if (in.len > 0) /* a last line without a newline */
				line_to_frame(name, lineno + 1, (char *)in.p, in.len, &tmp);
			break;
		}
		in.len += (size_t)n;
	}
	fp_buf_release(&in);
	fp_buf_release(&tmp);
}

int
main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_MAX_FRAME };
	static const struct option longopts[] = {
		{"check", no_argument, NULL, OPT_CHECK},
		{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
		{NULL, 0, NULL, 0},
	};
	char err[200];
	int c;

	fp_tool_init("fp-cat");
	fp_std_options(argc, argv, USAGE);
	while ((c = getopt_long(argc, argv, "rn:u", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			opt.reverse = 1;
			break;
		case 'u':
			opt.unbuffered = 1;
			break;
		case 'n':
			if (fp_parse_u64(optarg, 1, UINT64_MAX, &opt.limit, err, sizeof err) < 0)
				fp_usage_error(USAGE, "-n: %s", err);
			break;
		case OPT_CHECK:
			opt.check = 1;
			break;
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
	if (opt.check && opt.reverse)
		fp_usage_error(USAGE, "--check reads frames; it cannot be combined with -r");
	if (!opt.max_frame && fr_max_frame_env(&opt.max_frame, err, sizeof err) < 0)
		fp_usage_error(USAGE, "%s", err);
	if (opt.reverse && isatty(STDOUT_FILENO))
		fp_die(FP_EXIT_USAGE, "refusing to write binary frames to a terminal; "
		       "redirect to a file or pipe into another tool (e.g. '| fp-cat')");
	if (opt.reverse)
		fr_writer_init(&fw, STDOUT_FILENO, opt.max_frame);
	if (!opt.reverse && isatty(STDOUT_FILENO))
		opt.unbuffered = 1; /* a person is watching */

	char **files = argv + optind;
	int nfiles = argc - optind;
	static char *dash[] = {"-"};
	if (nfiles == 0)
		files = dash, nfiles = 1;
	for (int i = 0; i < nfiles && !done(); i++) {
		const char *name = files[i];
		int fd = STDIN_FILENO;
		if (strcmp(name, "-") == 0)
			name = "<stdin>";
		else if ((fd = open(name, O_RDONLY)) < 0)
			fp_die(FP_EXIT_IO, "unable to open '%s': %s", name, strerror(errno));
		if (opt.reverse)
			cat_lines(fd, name);
		else
			cat_frames(fd, name);
		if (fd != STDIN_FILENO)
			close(fd);
	}
	if (opt.check) {
		printf("frames=%llu data=%llu control=%llu bytes=%llu\n",
		       (unsigned long long)total.frames,
		       (unsigned long long)(total.frames - total.control),
		       (unsigned long long)total.control, (unsigned long long)total.bytes);
		fp_close_stdout();
	}
	if (out_flush() < 0)
		write_failed();
	if (opt.reverse)
		fr_writer_release(&fw);
	fp_buf_release(&out);
	return 0;
}
