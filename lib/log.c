/* log.c - diagnostics on stderr; see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FP_VERSION
#define FP_VERSION "0.0.0"
#endif

static char prog[64] = "featpipe";

void
fp_log_init(const char *name)
{
	const char *shard = getenv("FP_SHARD");
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (shard && *shard && strlen(shard) < 8)
		snprintf(prog, sizeof prog, "%s[%s]", base, shard);
	else
		snprintf(prog, sizeof prog, "%s", base);
}

const char *
fp_prog(void)
{
	return prog;
}

void
fp_vwarn(const char *fmt, va_list ap)
{
	char msg[1024];
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		return;
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	/* One write, so lines from processes sharing stderr do not interleave. */
	char line[1200];
	int len = snprintf(line, sizeof line, "%s: %s\n", prog, msg);
	if (len > (int)sizeof line - 1)
		len = sizeof line - 1, line[len - 1] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)len);
	(void)w;
}

void
fp_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fp_vwarn(fmt, ap);
	va_end(ap);
}

void
fp_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fp_vwarn(fmt, ap);
	va_end(ap);
	exit(code);
}

void
fp_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fp_vwarn(fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	exit(FP_EXIT_USAGE);
}

void
fp_tool_init(const char *name)
{
	fp_log_init(name);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}

void
fp_std_options(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			fp_close_stdout();
			exit(0);
		}
		if (strcmp(argv[i], "--version") == 0) {
			const char *base = strrchr(argv[0], '/');
			printf("%s (featpipe) %s\n", base ? base + 1 : argv[0],
			       FP_VERSION);
			fp_close_stdout();
			exit(0);
		}
	}
}

void
fp_close_stdout(void)
{
	int err = 0;
	if (fflush(stdout) != 0 || ferror(stdout))
		err = errno ? errno : EIO;
	if (fclose(stdout) != 0 && !err)
		err = errno;
	if (err && err != EPIPE)
		fp_die(FP_EXIT_IO, "error writing standard output: %s",
		       strerror(err));
}
