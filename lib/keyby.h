/* keyby.h - route a frame stream to N shards by key (fp-keyby(1)).
 *
 * kb_run() reads frames from in_fd and appends each data frame, as the
 * bytes received, to the buffer of the shard that owns its key (shard.h);
 * control frames go to every shard.  Buffers are written with one write()
 * per shard per input chunk, polled, never dropped: when any shard's buffer
 * holds more than shard_buffer bytes, input is not read until it drains.
 *
 * With a command, kb_run() starts the shards itself: nshards copies of
 * `/bin/sh -c command`, each in its own process group, with FP_SHARD and
 * FP_SHARDS set, SIGPIPE/SIGINT/SIGTERM at their defaults, and a pipe on
 * stdin.  Otherwise it writes to the caller's out_fds.
 *
 * It installs handlers for SIGCHLD, SIGTERM and SIGINT (the process must
 * have no other children).  Lifecycle: end of input -> every buffer
 * written, every pipe closed, every shard waited for.  A shard that exits or
 * stops reading before that, or SIGTERM/SIGINT -> the signal (SIGTERM for a
 * failure) goes to every shard's process group, SIGKILL after grace_ms.
 */
#ifndef FP_KEYBY_H
#define FP_KEYBY_H

#include <stddef.h>
#include <stdint.h>

#include "expr.h"

typedef struct kb_stats {
	uint64_t frames, control, dead;
	uint64_t bad_key;   /* frames without a usable key: dead letters, or the one that stopped the run */
	int signal; /* set when stopped by SIGTERM/SIGINT: the caller re-raises it */
} kb_stats;

typedef struct kb_config {
	const fp_path *key;
	uint32_t nshards;
	const char *command;     /* shards to start, or NULL: use out_fds */
	const int *out_fds;      /* without command: nshards fds, opened */
	const char *const *out_names; /* their names, for messages */
	int in_fd;
	size_t max_frame;        /* 0: FP_MAX_FRAME or the default */
	int dead_fd;             /* dead letters, or -1: a bad key stops the run */
	const char *dead_name;
	int64_t grace_ms;        /* SIGTERM to SIGKILL */
	size_t shard_buffer;     /* bytes buffered per shard before input pauses */
	/* Called for every diagnostic (one line, no newline). */
	void (*warn)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	/* Or NULL.  Called with the counts so far after every chunk of input
	 * and at least every tick_ms while waiting (metrics, stats.h). */
	void (*tick)(const kb_stats *st, void *arg);
	void *tick_arg;
	int64_t tick_ms;         /* <= 0: 1000 */
} kb_config;

/* Run until the end of input or a failure; returns the exit status (0 ok,
 * 1 bad data, 3 I/O or a shard stopped reading, else a shard's status:
 * its exit code, or 128 + the signal that killed it). */
int kb_run(const kb_config *c, kb_stats *st);

#endif
