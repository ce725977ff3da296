/* SPDX-License-Identifier: MIT */
/*
 * vm/NAME targets and `wicket list`: the wicket side.  Every libvirt call
 * is made by the wicket-libvirt program (host-tool/libvirt-helper.c, which
 * documents the status lines); a virStream is not an fd, so for vm/NAME it
 * relays the channel to its end of a socketpair and we use the other end.
 */
#include "vm.h"

#include "client.h" /* WICKET_EXIT_FAILURE */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vm_uri(const char *uri)
{
	if (uri && *uri)
		return uri;
	const char *env = getenv("LIBVIRT_DEFAULT_URI");
	if (env && *env)
		return env;
	return "qemu:///system";
}

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"
#include "cli.h"
#include "log.h"

#define NO_LIBVIRT "this wicket was built without libvirt support (install libvirt-dev and rebuild)"

/* In the child when exec failed: say so the way the helper would. */
static void __attribute__((noreturn)) status_exec_failed(int fd, const char *helper)
{
	char line[PATH_MAX + 64];
	int n = snprintf(line, sizeof(line), "E cannot run %s: %s\n", helper, strerror(errno));
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	_exit(1);
}

/* Read one status line (byte by byte: stream bytes may follow it) and any
 * fd passed with it.  Returns the line length, 0 on EOF, -errno. */
static ssize_t status_read(int fd, char *line, size_t len, int *passed)
{
	size_t n = 0;
	while (n + 1 < len) {
		char c;
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		union fdpass_buf cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		fdpass_expect(&mh, &cm);
		ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		int f;
		if (fdpass_take(&mh, &f, 1) > 0) {
			if (*passed >= 0)
				close(*passed);
			*passed = f;
		}
		if (c == '\n')
			break;
		line[n++] = c;
	}
	line[n] = 0;
	return (ssize_t)n;
}

static void vm_reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

int vm_target_open(const char *name, const char *uri, struct tp *out, char *err, size_t errlen)
{
	uri = vm_uri(uri);
	if (!*name) {
		snprintf(err, errlen, "target 'vm/': expected vm/NAME (a libvirt domain)");
		return -EINVAL;
	}
	char helper[PATH_MAX];
	if (!cli_helper_path("wicket-libvirt", helper, sizeof(helper))) {
		snprintf(err, errlen, "target 'vm/%s': %s", name, NO_LIBVIRT);
		return -ENOTSUP;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		snprintf(err, errlen, "vm/%s: socketpair: %s", name, strerror(e));
		return -e;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		snprintf(err, errlen, "vm/%s: fork: %s", name, strerror(e));
		return -e;
	}
	if (pid == 0) {
		close(sv[0]);
		/* Leave with the parent; terminal signals are the parent's to forward.
		 * A mux's helper outlives the command that opened it instead. */
		if (tp_detach_helpers) {
			setsid();
		} else {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(1);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_IGN);
		signal(SIGQUIT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		/* Never hold the parent's stdout (a proxy's stream) open; keep a
		 * terminal on stdin for libvirt's credential prompts. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			if (!isatty(0))
				dup2(null, 0);
			dup2(isatty(2) ? 2 : null, 1);
			close(null);
		}
		/* The socket crosses exec; everything else of ours does not. */
		fcntl(sv[1], F_SETFD, 0);
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
		execl(helper, "wicket-libvirt", "open", fdarg, name, uri, (char *)NULL);
		status_exec_failed(sv[1], helper);
	}
	close(sv[1]);
	char line[1024];
	int passed = -1;
	for (;;) {
		ssize_t n = status_read(sv[0], line, sizeof(line), &passed);
		if (n > 0 && line[0] == 'W') {
			fprintf(stderr, "wicket: warning: %s\n", line + (n > 1 ? 2 : 1));
			continue;
		}
		if (n > 0 && line[0] == 'C') {
			*out = (struct tp){ .rfd = sv[0], .wfd = sv[0], .pid = pid };
			return 0;
		}
		if (n > 0 && line[0] == 'V' && passed >= 0) {
			close(sv[0]);
			vm_reap(pid, NULL);
			log_info("vm/%s: connected over vsock CID %s", name, line + 2);
			*out = (struct tp){ .rfd = passed, .wfd = passed, .pid = 0 };
			return 0;
		}
		int status = 0;
		if (passed >= 0)
			close(passed);
		close(sv[0]);
		vm_reap(pid, &status);
		if (n > 0 && line[0] == 'E') {
			snprintf(err, errlen, "vm/%s: %s", name, line + (n > 1 ? 2 : 1));
			return -ENOENT;
		}
		if (WIFSIGNALED(status))
			snprintf(err, errlen, "vm/%s: the libvirt helper was killed by signal %d",
				 name, WTERMSIG(status));
		else
			snprintf(err, errlen, "vm/%s: the libvirt helper ended without a status%s%s",
				 name, n < 0 ? ": " : "", n < 0 ? strerror((int)-n) : "");
		return -EIO;
	}
}


int vm_list(const char *uri)
{
	char helper[PATH_MAX];
	if (!cli_helper_path("wicket-libvirt", helper, sizeof(helper))) {
		fprintf(stderr, "wicket: list: %s\n", NO_LIBVIRT);
		return WICKET_EXIT_FAILURE;
	}
	fflush(NULL);
	/* A child, not exec: `wicket list` goes on with the containers. */
	pid_t pid = fork();
	if (pid == 0) {
		execl(helper, "wicket-libvirt", "list", vm_uri(uri), (char *)NULL);
		fprintf(stderr, "wicket: list: cannot run %s: %s\n", helper, strerror(errno));
		_exit(WICKET_EXIT_FAILURE);
	}
	int st;
	if (pid < 0) {
		fprintf(stderr, "wicket: list: fork: %s\n", strerror(errno));
		return WICKET_EXIT_FAILURE;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return WICKET_EXIT_FAILURE;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : WICKET_EXIT_FAILURE;
}
