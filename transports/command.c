/* SPDX-License-Identifier: MIT */
/* Host side: a spawned command's stdin/stdout as the stream (ProxyCommand). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tp.h"

bool tp_detach_helpers;

/*
 * In the child: @fds at 3, 4, ... (over whatever is there) and, when there
 * are any, every other descriptor above them close-on-exec.  Done through copies above them all,
 * so no placement overwrites a descriptor still to be placed.
 */
static int place_fds(const int *fds, int nfds)
{
	int hi[TP_SPAWN_MAX_FDS];
	for (int i = 0; i < nfds; i++) {
		hi[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + TP_SPAWN_MAX_FDS + 16);
		if (fds[i] >= 0 && hi[i] < 0)
			return -1;
	}
	for (int i = 0; i < nfds; i++) {
		if (hi[i] < 0) { /* -1: that number stays closed */
			close(3 + i);
			continue;
		}
		if (dup2(hi[i], 3 + i) < 0) /* dup2 leaves the copy inheritable */
			return -1;
	}
	if (nfds > 0) /* a plain proxy command inherits what it always did */
		syscall(SYS_close_range, (unsigned)(3 + nfds), ~0u, (unsigned)CLOSE_RANGE_CLOEXEC);
	return 0;
}

int tp_argv_spawn(char *const *argv, struct tp *out, char *err, size_t errlen)
{
	return tp_argv_spawn_fds(argv, NULL, 0, -1, out, err, errlen);
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

int tp_argv_spawn_fds(char *const *argv, const int *fds, int nfds, int sock, struct tp *out,
		      char *err, size_t errlen)
{
	int to[2] = { -1, -1 }, from[2] = { -1, -1 }, rep[2] = { -1, -1 };
	if (nfds < 0 || nfds > TP_SPAWN_MAX_FDS) {
		snprintf(err, errlen, "cannot start the transport command: too many descriptors");
		return -EINVAL;
	}
	if ((sock < 0 && (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)) ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		int e = errno;
		close_pair(to);
		close_pair(from);
		snprintf(err, errlen, "cannot start the transport command: %s", strerror(e));
		return -e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close_pair(to);
		close_pair(from);
		close_pair(rep);
		snprintf(err, errlen, "cannot start the transport command: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (tp_detach_helpers)
			setsid();
		if (sock < 0) {
			dup2(to[0], 0);
			dup2(from[1], 1);
		} else {
			/* The stream is among @fds: stdio is only for messages. */
			int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (null >= 0)
				dup2(null, 0);
			dup2(2, 1);
		}
		/* The error pipe stays ours whatever lands on 3, 4, ... */
		int report = fcntl(rep[1], F_DUPFD_CLOEXEC, 3 + TP_SPAWN_MAX_FDS + 32);
		int e = 0;
		if (report < 0 || place_fds(fds, nfds) < 0) {
			e = errno;
		} else {
			execvp(argv[0], argv);
			e = errno;
		}
		ssize_t w = write(report >= 0 ? report : rep[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	if (sock < 0) {
		close(to[0]);
		close(from[1]);
	}
	close(rep[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(rep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(rep[0]);
	if (n == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(e));
		if (sock < 0) {
			close(to[1]);
			close(from[0]);
		}
		waitpid(pid, NULL, 0);
		return -e;
	}
	if (sock < 0)
		*out = (struct tp){ .rfd = from[0], .wfd = to[1], .pid = pid };
	else
		*out = (struct tp){ .rfd = sock, .wfd = sock, .pid = pid };
	return 0;
}

int tp_command_spawn(const char *cmd, struct tp *out, char *err, size_t errlen)
{
	return tp_command_spawn_fds(cmd, NULL, 0, out, err, errlen);
}

int tp_command_spawn_fds(const char *cmd, const int *fds, int nfds, struct tp *out, char *err,
			 size_t errlen)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };
	return tp_argv_spawn_fds(argv, fds, nfds, -1, out, err, errlen);
}

void tp_close(struct tp *t)
{
	if (t->rfd >= 0)
		close(t->rfd);
	if (t->wfd >= 0 && t->wfd != t->rfd)
		close(t->wfd);
	t->rfd = t->wfd = -1;
	if (t->pid > 0) {
		/* Give the helper a moment to leave on EOF, then insist. */
		for (int i = 0; i < 50; i++) {
			if (waitpid(t->pid, NULL, WNOHANG) != 0)
				goto done;
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		/* Same process group as us on purpose: a proxy command such as
		 * ssh may need the terminal for a password prompt. */
		kill(t->pid, SIGTERM);
		waitpid(t->pid, NULL, 0);
	}
done:
	t->pid = 0;
}
