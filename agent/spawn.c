/* SPDX-License-Identifier: MIT */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/close_range.h>
#include <unistd.h>

/* Child stdout/stderr pipes this large mean fewer wakeups per MiB. */
#define SPAWN_PIPE_SIZE (1024 * 1024)

static void close_pairs(int *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0)
			close(p[i]);
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* execve() with a PATH search done against the session's own PATH. */
static void exec_search(const char *file, char *const *argv, char *const *envp)
{
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	const char *path = env_get(envp, "PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int saved = ENOENT;
	char buf[4096];
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dl = colon ? (size_t)(colon - path) : strlen(path);
		if (dl + strlen(file) + 2 <= sizeof(buf)) {
			memcpy(buf, path, dl);
			size_t k = dl;
			if (k == 0)
				buf[k++] = '.';
			buf[k++] = '/';
			strcpy(buf + k, file);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saved = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		if (!colon)
			break;
		path = colon + 1;
	}
	errno = saved;
}

static void child_reset_signals(void)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

int spawn_start(const struct spawn_req *req, struct spawn_res *res)
{
	/* All pipes in one array so every failure path closes them alike. */
	int fds[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
	int *report = fds, *pin = fds + 2, *pout = fds + 4, *perr = fds + 6;
	*res = (struct spawn_res){ .pid = -1, .in = -1, .out = -1, .err = -1 };

	int npipes = req->pty_slave < 0 ? 4 : 1;
	for (int i = 0; i < npipes; i++) {
		if (pipe2(fds + 2 * i, O_CLOEXEC) < 0) {
			int e = -errno;
			close_pairs(fds, 8);
			return e;
		}
	}
	if (req->pty_slave < 0) {
		fcntl(pout[0], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
		fcntl(perr[0], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
	}

	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close_pairs(fds, 8);
		return e;
	}
	if (pid == 0) {
		child_reset_signals();
		/* Own session: no way to reach the agent's terminal (TIOCSTI). */
		setsid();
		if (req->pty_slave >= 0) {
			int s = req->pty_slave;
			ioctl(s, TIOCSCTTY, 0);
			dup2(s, 0);
			dup2(s, 1);
			dup2(s, 2);
			if (s > 2)
				close(s);
		} else {
			dup2(pin[0], 0);
			dup2(pout[1], 1);
			dup2(perr[1], 2);
		}
		/* Nothing of the agent's but stdio crosses exec. */
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		if (!req->cwd || chdir(req->cwd) < 0) {
			if (chdir("/") < 0) {
				/* nothing better to do; run where we are */
			}
		}
		umask(022);
		exec_search(req->path, req->argv, req->envp);
		int e = errno;
		ssize_t w = write(report[1], &e, sizeof(e));
		(void)w;
		_exit(e == ENOENT ? 127 : 126);
	}

	close(report[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(report[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(report[0]);
	res->pid = pid;
	res->exec_errno = n == (ssize_t)sizeof(e) ? e : 0;
	if (req->pty_slave < 0) {
		close(pin[0]);
		close(pout[1]);
		close(perr[1]);
		res->in = pin[1];
		res->out = pout[0];
		res->err = perr[0];
		fcntl(res->in, F_SETFL, O_NONBLOCK);
		fcntl(res->out, F_SETFL, O_NONBLOCK);
		fcntl(res->err, F_SETFL, O_NONBLOCK);
	}
	return 0;
}
