/* SPDX-License-Identifier: MIT */
/*
 * The relay between an agent in a container and the host tool (see
 * ctr_enter.h).  It never interprets the agent's packets: it finds their
 * boundaries (the greeting line, then uint32 lengths) so that it forwards
 * whole packets only and can append a DISCONNECT with the reason when the
 * container's process ends under the session.  Anything that does not look
 * like the framing is passed through untouched for the host tool to judge.
 */
#include "ctr_enter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define RELAY_CAP (4 + WIRE_MAX_PACKET + 65536)
#define GREETING_MAX 1024
#define MSG_DISCONNECT_NO 1
#define DISCONNECT_CONNECTION_LOST 10

int ctr_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
#else
	(void)pid;
	return -ENOSYS;
#endif
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static void close_range_fds(unsigned lo, unsigned hi)
{
	if (lo > hi)
		return;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lo, hi, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (long fd = lo; fd <= (long)hi && fd < max; fd++)
		close((int)fd);
}

void ctr_close_fds_except(const int *keep, size_t n)
{
	int k[128];
	size_t m = 0;
	for (size_t i = 0; i < n && m < sizeof(k) / sizeof(k[0]); i++)
		if (keep[i] >= 0)
			k[m++] = keep[i];
	qsort(k, m, sizeof(k[0]), cmp_int);
	unsigned lo = 0;
	for (size_t i = 0; i < m; i++) {
		if ((unsigned)k[i] > lo)
			close_range_fds(lo, (unsigned)k[i] - 1);
		lo = (unsigned)k[i] + 1;
	}
	close_range_fds(lo, UINT_MAX);
}

enum phase { PH_GREETING, PH_PACKETS, PH_PASSTHROUGH };

struct relay {
	const struct ctr_relay *r;
	uint8_t *buf;
	size_t len;  /* bytes held */
	size_t done; /* of which complete (whole packets) */
	size_t sent; /* of which written to the host */
	enum phase ph;
	bool greeted; /* a greeting line has gone to the host */
	bool agent_eof, host_gone, err_eof;
	int status; /* the child's, once reaped; -1 before */
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Advance rl->done over whatever has become complete. */
static void scan(struct relay *rl)
{
	if (rl->ph == PH_GREETING) {
		uint8_t *nl = memchr(rl->buf + rl->done, '\n', rl->len - rl->done);
		if (nl) {
			rl->done = (size_t)(nl - rl->buf) + 1;
			rl->ph = PH_PACKETS;
			rl->greeted = true;
		} else if (rl->len - rl->done > GREETING_MAX) {
			rl->ph = PH_PASSTHROUGH;
		}
	}
	while (rl->ph == PH_PACKETS && rl->len - rl->done >= 4) {
		uint32_t n = be32(rl->buf + rl->done);
		if (n == 0 || n > WIRE_MAX_PACKET) {
			rl->ph = PH_PASSTHROUGH; /* the host tool will say what is wrong */
			break;
		}
		if (rl->len - rl->done < 4 + (size_t)n)
			break;
		rl->done += 4 + (size_t)n;
	}
	if (rl->ph == PH_PASSTHROUGH)
		rl->done = rl->len;
}

static void put_all(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			/* Wait for the reader as long as it is there. */
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			if (poll(&pf, 1, -1) < 0 && errno != EINTR)
				return;
			if (pf.revents & (POLLERR | POLLHUP | POLLNVAL))
				return;
			continue;
		}
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

/* Whole packets still held go out, then (at a boundary) the DISCONNECT. */
static void finish_with(struct relay *rl, const char *why)
{
	if (rl->host_gone)
		return;
	int fd = rl->r->host_out;
	if (rl->ph == PH_PASSTHROUGH) {
		/* No boundary to speak at: what the agent sent is all there is. */
		put_all(fd, rl->buf + rl->sent, rl->len - rl->sent);
		return;
	}
	put_all(fd, rl->buf + rl->sent, rl->done - rl->sent);
	rl->sent = rl->done;
	if (!rl->greeted) {
		static const char g[] = WIRE_GREETING_PREFIX "wicket-relay\r\n";
		put_all(fd, g, sizeof(g) - 1);
	}
	uint8_t pkt[4 + 1 + 4 + 4 + 300 + 4];
	size_t wl = strlen(why);
	if (wl > 300)
		wl = 300;
	uint32_t plen = (uint32_t)(1 + 4 + 4 + wl + 4);
	uint8_t *p = pkt;
	*p++ = (uint8_t)(plen >> 24), *p++ = (uint8_t)(plen >> 16), *p++ = (uint8_t)(plen >> 8),
	*p++ = (uint8_t)plen;
	*p++ = MSG_DISCONNECT_NO;
	*p++ = 0, *p++ = 0, *p++ = 0, *p++ = DISCONNECT_CONNECTION_LOST;
	*p++ = 0, *p++ = 0, *p++ = (uint8_t)(wl >> 8), *p++ = (uint8_t)wl;
	memcpy(p, why, wl);
	p += wl;
	*p++ = 0, *p++ = 0, *p++ = 0, *p++ = 0; /* language tag */
	put_all(fd, pkt, (size_t)(p - pkt));
}

/* The agent's stderr, made harmless for a terminal, to ours. */
static void copy_stderr(struct relay *rl)
{
	char in[4096], out[4096];
	ssize_t n = read(rl->r->agent_err, in, sizeof(in));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		rl->err_eof = true;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		out[i] = (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
	}
	if (rl->r->err_to >= 0)
		put_all(rl->r->err_to, out, (size_t)n);
}

static bool watch_fired(int fd, int ms)
{
	if (fd < 0)
		return false;
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	return poll(&pf, 1, ms) > 0 && (pf.revents & (POLLIN | POLLHUP | POLLERR));
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reap the child, SIGKILL after @ms.  Its wait status. */
static int reap(pid_t pid, int ms)
{
	long long end = now_ms() + ms;
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return w == pid ? st : 0;
		if (now_ms() >= end) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return st;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static int exit_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int ctr_relay_run(const struct ctr_relay *r)
{
	struct relay rl = { .r = r, .ph = PH_GREETING, .status = -1,
			    .err_eof = r->agent_err < 0 };
	rl.buf = malloc(RELAY_CAP);
	if (!rl.buf)
		return 255;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN); /* the host tool forwards Ctrl-C as a request */
	signal(SIGHUP, SIG_IGN);
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGCHLD);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	fcntl(r->agent_out, F_SETFL, fcntl(r->agent_out, F_GETFL) | O_NONBLOCK);
	fcntl(r->host_out, F_SETFL, fcntl(r->host_out, F_GETFL) | O_NONBLOCK);
	if (r->agent_err >= 0)
		fcntl(r->agent_err, F_SETFL, fcntl(r->agent_err, F_GETFL) | O_NONBLOCK);
	int terms = 0;
	const char *why = NULL;

	while (!rl.agent_eof) {
		struct pollfd pf[5];
		int np = 0, i_out = -1, i_host = -1, i_err = -1, i_watch = -1, i_sig = -1;
		if (!rl.agent_eof && rl.len < RELAY_CAP) {
			i_out = np;
			pf[np++] = (struct pollfd){ .fd = r->agent_out, .events = POLLIN };
		}
		if (!rl.host_gone && rl.sent < rl.done) {
			i_host = np;
			pf[np++] = (struct pollfd){ .fd = r->host_out, .events = POLLOUT };
		}
		if (!rl.err_eof) {
			i_err = np;
			pf[np++] = (struct pollfd){ .fd = r->agent_err, .events = POLLIN };
		}
		if (r->watch >= 0) {
			i_watch = np;
			pf[np++] = (struct pollfd){ .fd = r->watch, .events = POLLIN };
		}
		if (sfd >= 0) {
			i_sig = np;
			pf[np++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		}
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (i_sig >= 0 && pf[i_sig].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo == SIGTERM)
					kill(r->child, terms++ ? SIGKILL : SIGTERM);
		}
		if (i_watch >= 0 && pf[i_watch].revents) {
			/* What the agent wrote before counts: take it in first. */
			ssize_t n;
			while (rl.len < RELAY_CAP &&
			       (n = read(r->agent_out, rl.buf + rl.len, RELAY_CAP - rl.len)) > 0)
				rl.len += (size_t)n;
			scan(&rl);
			why = r->ended;
			break;
		}
		if (i_err >= 0 && pf[i_err].revents)
			copy_stderr(&rl);
		if (i_out >= 0 && pf[i_out].revents) {
			ssize_t n = read(r->agent_out, rl.buf + rl.len, RELAY_CAP - rl.len);
			if (n > 0) {
				rl.len += (size_t)n;
				scan(&rl);
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				rl.agent_eof = true;
			}
		}
		if (i_host >= 0 && pf[i_host].revents) {
			ssize_t n = write(r->host_out, rl.buf + rl.sent, rl.done - rl.sent);
			if (n > 0) {
				rl.sent += (size_t)n;
			} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
				rl.host_gone = true; /* the host tool has left: drain and wait */
				rl.sent = rl.done;
			}
		}
		if (rl.sent == rl.done && rl.sent > 0) {
			memmove(rl.buf, rl.buf + rl.sent, rl.len - rl.sent);
			rl.len -= rl.sent;
			rl.done = rl.sent = 0;
		}
		if (rl.host_gone) {
			rl.len = rl.done = rl.sent = 0;
			if (rl.ph == PH_PACKETS)
				rl.ph = PH_PASSTHROUGH; /* keep draining without framing */
		}
	}

	if (!rl.err_eof)
		copy_stderr(&rl); /* its last words, if any are waiting */
	int st;
	if (why) {
		/* The process is gone: say so now, then end the agent. */
		finish_with(&rl, why);
		close(r->host_out);
		kill(r->child, SIGTERM);
		st = reap(r->child, 3000);
	} else {
		/* The agent's output ended: was it killed with its container? */
		st = reap(r->child, 5000);
		bool odd = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
		if (watch_fired(r->watch, odd ? 1500 : 0) ||
		    (odd && r->watch < 0 && r->gone && r->gone(r->name))) {
			finish_with(&rl, r->ended);
		} else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM) {
			char m[128];
			snprintf(m, sizeof(m), "the agent was killed by signal %d (%s)", WTERMSIG(st),
				 strsignal(WTERMSIG(st)));
			finish_with(&rl, m);
		} else {
			put_all(r->host_out, rl.buf + rl.sent, rl.len - rl.sent);
		}
		close(r->host_out);
	}
	free(rl.buf);
	return exit_code(st);
}
