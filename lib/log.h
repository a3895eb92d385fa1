/* log.h - the one module that prints diagnostics (used by cmd/ only).
 *
 * Messages look like "fp-merge[1]: unable to open 'x.fp': No such file or
 * directory": program name, the shard from FP_SHARD when set, lower case, no
 * final period.  Control bytes in a message (they may come from data) are
 * shown as '?'.  lib/ modules never call these; they fill an errstr instead.
 */
#ifndef FP_LOG_H
#define FP_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

/* Exit codes shared by every tool (featpipe(7), EXIT STATUS). */
enum {
	FP_EXIT_OK = 0,
	FP_EXIT_DATA = 1,      /* bad input data */
	FP_EXIT_USAGE = 2,     /* usage or configuration error */
	FP_EXIT_IO = 3,        /* local I/O or system call failure */
	FP_EXIT_REMOTE = 4,    /* Kafka or Redis failure */
	FP_EXIT_THRESHOLD = 5, /* a monitored threshold was crossed (fp-lag) */
};

/* Set the program name used as the message prefix; reads FP_SHARD. */
void fp_log_init(const char *prog);
/* The program name given to fp_log_init(). */
const char *fp_prog(void);

/* Print "prog[shard]: message" on stderr. */
void fp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fp_vwarn(const char *fmt, va_list ap);
/* fp_warn(), then exit(code). */
noreturn void fp_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A usage error: the reason, then the usage text, on stderr; exit 2. */
noreturn void fp_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Common start-up for every tool: name, SIGPIPE ignored (so writes see
 * EPIPE), SIGINT/SIGTERM at their defaults.  Tools that handle those
 * signals install their handlers afterwards. */
void fp_tool_init(const char *prog);

/* --help/--version handling shared by the tools: if argv holds "-h",
 * "--help" or "--version" before "--", print and exit 0. */
void fp_std_options(int argc, char **argv, const char *usage);

/* Flush and close stdout at exit; a failed write is exit 3, except EPIPE,
 * which is a quiet stop (returns normally). */
void fp_close_stdout(void);

#endif
