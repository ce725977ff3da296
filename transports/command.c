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
		hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + TP_SPAWN_MAX_FDS + 16);
		if (hi[i] < 0)
			return -1;
	}
	for (int i = 0; i < nfds; i++)
		if (dup2(hi[i], 3 + i) < 0) /* dup2 leaves the copy inheritable */
			return -1;
	if (nfds > 0) /* a plain proxy command inherits what it always did */
		syscall(SYS_close_range, (unsigned)(3 + nfds), ~0u, (unsigned)CLOSE_RANGE_CLOEXEC);
	return 0;
}

int tp_argv_spawn(char *const *argv, struct tp *out, char *err, size_t errlen)
{
	return tp_argv_spawn_fds(argv, NULL, 0, out, err, errlen);
}

int tp_argv_spawn_fds(char *const *argv, const int *fds, int nfds, struct tp *out, char *err,
		      size_t errlen)
{
	int to[2], from[2], rep[2];
	if (nfds < 0 || nfds > TP_SPAWN_MAX_FDS) {
		snprintf(err, errlen, "cannot start the transport command: too many descriptors");
		return -EINVAL;
	}
	if (pipe2(to, O_CLOEXEC) < 0)
		goto fail0;
	if (pipe2(from, O_CLOEXEC) < 0)
		goto fail1;
	if (pipe2(rep, O_CLOEXEC) < 0)
		goto fail2;
	pid_t pid = fork();
	if (pid < 0)
		goto fail3;
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (tp_detach_helpers)
			setsid();
		dup2(to[0], 0);
		dup2(from[1], 1);
		/* The error pipe stays ours whatever lands on 3, 4, ... */
		int report = fcntl(rep[1], F_DUPFD_CLOEXEC, 3 + TP_SPAWN_MAX_FDS + 32);
		if (report < 0 || place_fds(fds, nfds) < 0) {
			int e = errno;
			ssize_t w = write(report >= 0 ? report : rep[1], &e, sizeof(e));
			(void)w;
			_exit(127);
		}
		execvp(argv[0], argv);
		int e = errno;
		rep[1] = report;
		ssize_t w = write(rep[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	close(rep[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(rep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(rep[0]);
	if (n == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(e));
		close(to[1]);
		close(from[0]);
		waitpid(pid, NULL, 0);
		return -e;
	}
	*out = (struct tp){ .rfd = from[0], .wfd = to[1], .pid = pid };
	return 0;
fail3:
	close(rep[0]);
	close(rep[1]);
fail2:
	close(from[0]);
	close(from[1]);
fail1:
	close(to[0]);
	close(to[1]);
fail0:
	snprintf(err, errlen, "cannot start the transport command: %s", strerror(errno));
	return -errno;
}

int tp_command_spawn(const char *cmd, struct tp *out, char *err, size_t errlen)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };
	return tp_argv_spawn(argv, out, err, errlen);
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
