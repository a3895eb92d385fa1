/* keyby.c - route frames to shards by key; see keyby.h. */
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#include "clock.h"
#include "keyby.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "json.h"
#include "log.h" /* exit codes only */
#include "mpraw.h"
#include "shard.h"

#define KB_PIPE_SIZE (1 << 20) /* asked for each shard's pipe */
#define KB_DEAD_REPORTED 10    /* dead letters reported one by one */

typedef struct shard {
	int fd;        /* our end; -1 once closed */
	pid_t pid;     /* the shard's /bin/sh, 0 without a command */
	int reaped;
	int status;    /* wait status once reaped */
	fp_buf buf;
	size_t off;    /* bytes of buf already written */
} shard;

typedef struct run {
	const kb_config *c;
	kb_stats *st;
	shard *sh;
	uint32_t n;
	int alive;     /* shards started and not reaped */
	int fail;      /* exit status of the first failure; 0 while none */
	int data_err;  /* bad input seen: exit at least 1 */
	int stopping;  /* shards are being stopped on purpose */
	fp_buf dl;     /* dead-letter frame being built */
} run;

static int sigfd[2] = {-1, -1};
static volatile sig_atomic_t got_chld, got_term;

static void
on_signal(int sig)
{
	int e = errno;
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (!got_term)
		got_term = sig;
	ssize_t w = write(sigfd[1], "", 1);
	(void)w;
	errno = e;
}

static int
status_code(int s)
{
	return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}

static const char *
status_text(int s, char *buf, size_t len)
{
	if (WIFEXITED(s))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(s));
	else
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(s), strsignal(WTERMSIG(s)));
	return buf;
}

static void
set_fail(run *r, int code)
{
	if (!r->fail)
		r->fail = code ? code : FP_EXIT_IO;
}

/* Collect exited shards.  One that exits while its pipe is still open
 * (before the end of input was handed to it) fails the run. */
static void
reap(run *r)
{
	char b[80];
	pid_t pid;
	int s;
	got_chld = 0;
	while ((pid = waitpid(-1, &s, WNOHANG)) > 0) {
		for (uint32_t i = 0; i < r->n; i++) {
			shard *sh = &r->sh[i];
			if (sh->pid != pid || sh->reaped)
				continue;
			sh->reaped = 1;
			sh->status = s;
			r->alive--;
			if (r->stopping)
				break;
			if (sh->fd >= 0) {
				r->c->warn("shard %u (pid %ld) %s before the end of its input; stopping every shard",
				           i, (long)pid, status_text(s, b, sizeof b));
				set_fail(r, status_code(s));
			} else if (s != 0) {
				r->c->warn("shard %u (pid %ld) %s", i, (long)pid, status_text(s, b, sizeof b));
			}
			break;
		}
	}
}

static void
drain_sigfd(void)
{
	char b[64];
	while (read(sigfd[0], b, sizeof b) > 0)
		;
}

/* Wait for a signal or a child for at most ms (-1: no limit). */
static void
wait_event(run *r, int ms)
{
	struct pollfd p = {sigfd[0], POLLIN, 0};
	if (poll(&p, 1, ms) > 0)
		drain_sigfd();
	if (got_chld)
		reap(r);
}

static void
close_shard(run *r, shard *sh)
{
	if (sh->fd < 0)
		return;
	if (close(sh->fd) < 0 && !r->c->command && !r->stopping) {
		r->c->warn("error closing '%s': %s", r->c->out_names[sh - r->sh], strerror(errno));
		set_fail(r, FP_EXIT_IO);
	}
	sh->fd = -1;
	sh->off = sh->buf.len = 0;
}

/* One write() of what shard i holds.  A failure fails the run. */
static void
shard_write(run *r, uint32_t i)
{
	shard *sh = &r->sh[i];
	if (sh->fd < 0 || sh->off == sh->buf.len)
		return;
	ssize_t w;
	do
		w = write(sh->fd, sh->buf.p + sh->off, sh->buf.len - sh->off);
	while (w < 0 && errno == EINTR);
	if (w >= 0) {
		sh->off += (size_t)w;
		if (sh->off == sh->buf.len)
			sh->off = sh->buf.len = 0;
		else if (sh->off >= (256u << 10) && sh->off >= sh->buf.len / 2) {
			memmove(sh->buf.p, sh->buf.p + sh->off, sh->buf.len - sh->off);
			sh->buf.len -= sh->off;
			sh->off = 0;
		}
		return;
	}
	if (errno == EAGAIN)
		return;
	int e = errno;
	if (!r->c->command) {
		r->c->warn("error writing '%s': %s", r->c->out_names[i], strerror(e));
		set_fail(r, FP_EXIT_IO);
		return;
	}
	/* The shard closed its input: give it a moment to exit, so that its
	 * own status is the one reported. */
	int64_t until = fp_mono_ms() + (r->c->grace_ms < 1000 ? r->c->grace_ms : 1000);
	while (!sh->reaped && !r->fail && !got_term) {
		int64_t left = until - fp_mono_ms();
		if (left <= 0)
			break;
		wait_event(r, (int)left);
	}
	if (!r->fail) {
		r->c->warn("shard %u (pid %ld) stopped reading its input (%s); stopping every shard",
		           i, (long)sh->pid, strerror(e));
		set_fail(r, FP_EXIT_IO);
	}
}

static int
shard_add(run *r, shard *sh, const uint8_t *p, size_t n)
{
	if (fp_buf_add(&sh->buf, p, n) < 0) {
		r->c->warn("out of memory");
		set_fail(r, FP_EXIT_IO);
		return -1;
	}
	return 0;
}

/* A frame without a usable key: a dead letter, or the end of the run. */
static int
bad_frame(run *r, const fr_reader *rd, const uint8_t *body, size_t len, const char *why)
{
	const kb_config *c = r->c;
	unsigned long long fno = rd->frames, off = rd->frame_offset;
	r->st->bad_key++;
	if (c->dead_fd < 0) {
		c->warn("frame %llu at offset %llu: %s", fno, off, why);
		r->data_err = 1;
		return -1;
	}
	const uint8_t *src;
	size_t srclen;
	int has_src = mp_map_find(body, len, "@src", 4, &src, &srclen);
	fp_buf *b = &r->dl;
	b->len = 0;
	uint8_t hdr[4] = {0};
	if (fp_buf_add(b, hdr, 4) < 0 || mpw_map(b, has_src ? 4 : 3) < 0 ||
	    (has_src && (mpw_str(b, "@src", 4) < 0 || fp_buf_add(b, src, srclen) < 0)) ||
	    mpw_str(b, "reason", 6) < 0 || mpw_str(b, why, strlen(why)) < 0 ||
	    mpw_str(b, "offset", 6) < 0 || mpw_uint(b, off) < 0 ||
	    mpw_str(b, "frame", 5) < 0 || mpw_bin(b, body, len) < 0) {
		c->warn("out of memory");
		set_fail(r, FP_EXIT_IO);
		return -1;
	}
	uint32_t bl = (uint32_t)(b->len - 4);
	b->p[0] = (uint8_t)(bl >> 24);
	b->p[1] = (uint8_t)(bl >> 16);
	b->p[2] = (uint8_t)(bl >> 8);
	b->p[3] = (uint8_t)bl;
	if (fr_write_all(c->dead_fd, b->p, b->len) < 0) {
		c->warn("error writing dead letters to '%s': %s", c->dead_name, strerror(errno));
		set_fail(r, FP_EXIT_IO);
		return -1;
	}
	r->st->dead++;
	if (r->st->dead <= KB_DEAD_REPORTED)
		c->warn("frame %llu at offset %llu: %s; written to '%s'%s", fno, off, why, c->dead_name,
		        r->st->dead == KB_DEAD_REPORTED ? " (further dead letters are only counted)" : "");
	return 0;
}

/* 1 when the bytes "@ctl" occur in p[0..n): a cheap test that a frame is
 * not a control frame (faster than memmem for this needle). */
static int
has_ctl_bytes(const uint8_t *p, size_t n)
{
	if (n < 4)
		return 0;
	const uint8_t *end = p + n - 3; /* a match starts before end */
	while ((p = memchr(p, '@', (size_t)(end - p))) != NULL) {
		if (p[1] == 'c' && p[2] == 't' && p[3] == 'l')
			return 1;
		p++;
	}
	return 0;
}

/* Route every complete frame buffered in rd.  -1 to stop reading. */
static int
route(run *r, fr_reader *rd)
{
	const kb_config *c = r->c;
	const uint8_t *body;
	size_t len;
	enum fr_status fs;
	char why[200];
	while ((fs = fr_reader_next(rd, &body, &len)) == FR_OK) {
		const uint8_t *raw = body - 4; /* the frame as received */
		r->st->frames++;
		/* a control frame has a key "@ctl": look for the bytes first */
		if (has_ctl_bytes(body, len) && mp_is_control(body, len)) {
			r->st->control++;
			for (uint32_t i = 0; i < r->n; i++)
				if (shard_add(r, &r->sh[i], raw, len + 4) < 0)
					return -1;
			continue;
		}
		const uint8_t *v;
		size_t vl;
		uint32_t k;
		if (!fp_path_get(c->key, body, len, &v, &vl)) {
			snprintf(why, sizeof why, "the key field '%s' is missing", fp_path_text(c->key));
			if (bad_frame(r, rd, body, len, why) < 0)
				return -1;
			continue;
		}
		if (shard_of_key(v, vl, r->n, &k) < 0) {
			snprintf(why, sizeof why, "the key field '%s' is %s, not a string or an integer",
			         fp_path_text(c->key), shard_type_name(v, vl));
			if (bad_frame(r, rd, body, len, why) < 0)
				return -1;
			continue;
		}
		if (shard_add(r, &r->sh[k], raw, len + 4) < 0)
			return -1;
	}
	if (fs == FR_ERROR) {
		c->warn("%s", rd->errstr);
		r->data_err = 1;
		return -1;
	}
	return 0;
}

static void
spawn(run *r, uint32_t i)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		r->c->warn("unable to create a pipe: %s", strerror(errno));
		set_fail(r, FP_EXIT_IO);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r->c->warn("unable to start shard %u: %s", i, strerror(errno));
		close(p[0]);
		close(p[1]);
		set_fail(r, FP_EXIT_IO);
		return;
	}
	if (pid == 0) {
		char v[16];
		sigset_t none;
		setpgid(0, 0);
		if (dup2(p[0], STDIN_FILENO) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		snprintf(v, sizeof v, "%u", i);
		setenv("FP_SHARD", v, 1);
		snprintf(v, sizeof v, "%u", r->n);
		setenv("FP_SHARDS", v, 1);
		execl("/bin/sh", "sh", "-c", r->c->command, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* also done by the child: whichever runs first */
	close(p[0]);
	r->sh[i].pid = pid;
	r->sh[i].fd = p[1];
	r->alive++;
	fcntl(p[1], F_SETPIPE_SZ, KB_PIPE_SIZE); /* a hint: failure is harmless */
}

/* Stop every shard: close the pipes, send sig to each process group, and
 * SIGKILL what is left after the grace period. */
static void
stop_all(run *r, int sig)
{
	r->stopping = 1;
	for (uint32_t i = 0; i < r->n; i++)
		close_shard(r, &r->sh[i]);
	if (!r->c->command)
		return;
	if (got_chld)
		reap(r);
	for (uint32_t i = 0; i < r->n; i++)
		if (r->sh[i].pid && !r->sh[i].reaped)
			kill(-r->sh[i].pid, sig);
	int64_t until = fp_mono_ms() + r->c->grace_ms;
	while (r->alive > 0) {
		int64_t left = until - fp_mono_ms();
		if (left <= 0)
			break;
		wait_event(r, (int)left);
	}
	for (uint32_t i = 0; i < r->n; i++) {
		shard *sh = &r->sh[i];
		if (!sh->pid || sh->reaped)
			continue;
		r->c->warn("shard %u (pid %ld) still running after %lld ms; killing it", i,
		           (long)sh->pid, (long long)r->c->grace_ms);
		kill(-sh->pid, SIGKILL);
		while (waitpid(sh->pid, &sh->status, 0) < 0 && errno == EINTR)
			;
		sh->reaped = 1;
		r->alive--;
	}
}

static int
any_full(const run *r)
{
	for (uint32_t i = 0; i < r->n; i++)
		if (r->sh[i].buf.len - r->sh[i].off > r->c->shard_buffer)
			return 1;
	return 0;
}

/* Read and route until the end of input (0) or a reason to stop (-1). */
static int
route_all(run *r, fr_reader *rd, struct pollfd *pfd, uint32_t *who)
{
	const kb_config *c = r->c;
	for (;;) {
		if (got_chld)
			reap(r);
		if (r->fail || got_term)
			return -1;
		nfds_t np = 0;
		pfd[np++] = (struct pollfd){sigfd[0], POLLIN, 0};
		int want_in = !any_full(r);
		if (want_in)
			pfd[np++] = (struct pollfd){c->in_fd, POLLIN, 0};
		nfds_t first = np;
		for (uint32_t i = 0; i < r->n; i++)
			if (r->sh[i].off < r->sh[i].buf.len) {
				who[np] = i;
				pfd[np++] = (struct pollfd){r->sh[i].fd, POLLOUT, 0};
			}
		if (c->tick)
			c->tick(r->st, c->tick_arg);
		if (poll(pfd, np, c->tick ? (c->tick_ms > 0 ? (int)c->tick_ms : 1000) : -1) < 0) {
			if (errno == EINTR)
				continue;
			c->warn("poll: %s", strerror(errno));
			set_fail(r, FP_EXIT_IO);
			return -1;
		}
		if (pfd[0].revents)
			drain_sigfd();
		for (nfds_t k = first; k < np && !r->fail; k++)
			if (pfd[k].revents)
				shard_write(r, who[k]);
		if (r->fail || !want_in || !pfd[1].revents)
			continue;
		ssize_t got = fr_reader_fill(rd, c->in_fd);
		if (got < 0) {
			c->warn("error reading standard input: %s", strerror(errno));
			set_fail(r, FP_EXIT_IO);
			return -1;
		}
		if (got == 0) {
			if (fr_reader_eof(rd) < 0) {
				c->warn("%s", rd->errstr);
				r->data_err = 1;
			}
			return 0;
		}
		int stop = route(r, rd);
		for (uint32_t i = 0; i < r->n && !r->fail; i++)
			shard_write(r, i);
		if (stop < 0)
			return r->fail ? -1 : 0; /* bad data: hand on what was routed */
	}
}

/* Write out every buffer and close every output. */
static void
drain_all(run *r, struct pollfd *pfd, uint32_t *who)
{
	for (;;) {
		if (got_chld)
			reap(r);
		if (r->fail || got_term)
			return;
		nfds_t np = 0;
		pfd[np++] = (struct pollfd){sigfd[0], POLLIN, 0};
		for (uint32_t i = 0; i < r->n; i++) {
			shard *sh = &r->sh[i];
			if (sh->fd < 0)
				continue;
			if (sh->off == sh->buf.len) {
				close_shard(r, sh);
				continue;
			}
			who[np] = i;
			pfd[np++] = (struct pollfd){sh->fd, POLLOUT, 0};
		}
		if (np == 1 || r->fail)
			return;
		if (r->c->tick)
			r->c->tick(r->st, r->c->tick_arg);
		if (poll(pfd, np, r->c->tick ? (r->c->tick_ms > 0 ? (int)r->c->tick_ms : 1000) : -1) < 0 &&
		    errno != EINTR) {
			r->c->warn("poll: %s", strerror(errno));
			set_fail(r, FP_EXIT_IO);
			return;
		}
		if (pfd[0].revents)
			drain_sigfd();
		for (nfds_t k = 1; k < np && !r->fail; k++)
			if (pfd[k].revents)
				shard_write(r, who[k]);
	}
}

int
kb_run(const kb_config *c, kb_stats *st)
{
	run r = {.c = c, .st = st, .n = c->nshards};
	fr_reader rd;
	memset(st, 0, sizeof *st);
	if (fr_reader_init(&rd, c->max_frame) < 0) {
		c->warn("%s", rd.errstr);
		return FP_EXIT_USAGE;
	}
	/* Only lengths, the map and the key are read here; each shard's own
	 * reader checks the rest of every frame it gets. */
	rd.check = 0;
	r.sh = calloc(r.n, sizeof *r.sh);
	struct pollfd *pfd = calloc(r.n + 2, sizeof *pfd);
	uint32_t *who = calloc(r.n + 2, sizeof *who);
	if (!r.sh || !pfd || !who || pipe2(sigfd, O_CLOEXEC | O_NONBLOCK) < 0) {
		c->warn("unable to start: %s", strerror(errno ? errno : ENOMEM));
		free(r.sh);
		free(pfd);
		free(who);
		fr_reader_release(&rd);
		return FP_EXIT_IO;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (uint32_t i = 0; i < r.n; i++) {
		r.sh[i].fd = -1;
		if (!c->command) {
			r.sh[i].fd = c->out_fds[i];
			fcntl(r.sh[i].fd, F_SETFL, fcntl(r.sh[i].fd, F_GETFL) | O_NONBLOCK);
		}
	}
	for (uint32_t i = 0; c->command && i < r.n && !r.fail; i++)
		spawn(&r, i);

	if (!r.fail && route_all(&r, &rd, pfd, who) == 0)
		drain_all(&r, pfd, who);
	while (!r.fail && !got_term && r.alive > 0)
		wait_event(&r, -1);
	if (r.fail || got_term)
		stop_all(&r, got_term ? got_term : SIGTERM);

	int code = r.data_err ? FP_EXIT_DATA : 0;
	for (uint32_t i = 0; i < r.n; i++)
		if (r.sh[i].reaped && status_code(r.sh[i].status) > code)
			code = status_code(r.sh[i].status);
	if (r.fail)
		code = r.fail;
	if (got_term) {
		st->signal = got_term;
		code = 128 + got_term;
	}

	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	for (uint32_t i = 0; i < r.n; i++)
		fp_buf_release(&r.sh[i].buf);
	fp_buf_release(&r.dl);
	free(r.sh);
	free(pfd);
	free(who);
	close(sigfd[0]);
	close(sigfd[1]);
	sigfd[0] = sigfd[1] = -1;
	fr_reader_release(&rd);
	return code;
}
