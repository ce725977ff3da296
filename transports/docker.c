/* SPDX-License-Identifier: MIT */
/*
 * Host side: docker/NAME.  The docker CLI resolves the name (so DOCKER_HOST,
 * DOCKER_CONTEXT and `docker context use` are honoured).  A container with
 * a wicketd of its own is reached with `docker exec -i NAME wicketd
 * --stdio`, through the relay so that a container stopping under the
 * session is said as such.  Otherwise the static agent is brought in by
 * entering the namespaces of the container's first process (nsenter.c):
 * docker exec cannot pass it a descriptor, and nothing may be written into
 * the container.
 */
#include "docker.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctr_enter.h"

#define INSPECT_TIMEOUT_S 30
#define PROBE_TIMEOUT_S 20

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctr_docker_run(char *const *argv, char *out, size_t outlen, char *errline, size_t errlen,
		   int *exec_errno, int timeout_s)
{
	int po[2], pe[2], px[2];
	*exec_errno = 0;
	if (outlen)
		out[0] = 0;
	if (errlen)
		errline[0] = 0;
	if (pipe2(po, O_CLOEXEC) < 0)
		return *exec_errno = errno, 127;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]), close(po[1]);
		return *exec_errno = errno, 127;
	}
	if (pipe2(px, O_CLOEXEC) < 0) {
		close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
		return *exec_errno = errno, 127;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
			_exit(127);
		int keep[] = { 0, 1, 2, px[1] };
		ctr_close_fds_except(keep, 4);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		int e = errno;
		ssize_t w = write(px[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	close(px[1]);
	if (pid < 0) {
		*exec_errno = errno;
		close(po[0]), close(pe[0]), close(px[0]);
		return 127;
	}
	size_t no = 0, ne = 0;
	char ebuf[2048];
	bool oe = false, ee = false;
	long long end = now_ms() + timeout_s * 1000LL;
	bool timed_out = false;
	while (!oe || !ee) {
		struct pollfd pf[2] = { { .fd = oe ? -1 : po[0], .events = POLLIN },
					{ .fd = ee ? -1 : pe[0], .events = POLLIN } };
		long long left = end - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int r = poll(pf, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (pf[0].revents) {
			char tmp[4096];
			ssize_t n = read(po[0], tmp, sizeof(tmp));
			if (n <= 0) {
				oe = true;
			} else if (outlen) {
				size_t k = (size_t)n < outlen - 1 - no ? (size_t)n : outlen - 1 - no;
				memcpy(out + no, tmp, k);
				no += k;
				out[no] = 0;
			}
		}
		if (pf[1].revents) {
			ssize_t n = read(pe[0], ebuf + ne, sizeof(ebuf) - 1 - ne);
			if (n <= 0)
				ee = true;
			else
				ne += (size_t)n;
			ebuf[ne] = 0;
			if (ne == sizeof(ebuf) - 1)
				ee = true;
		}
	}
	close(po[0]);
	close(pe[0]);
	int xe = 0;
	if (read(px[0], &xe, sizeof(xe)) == (ssize_t)sizeof(xe))
		*exec_errno = xe;
	close(px[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* The first line of stderr, printable, for messages. */
	ebuf[ne] = 0;
	char *nl = strchr(ebuf, '\n');
	if (nl)
		*nl = 0;
	if (errlen) {
		size_t j = 0;
		for (size_t i = 0; ebuf[i] && j + 1 < errlen; i++)
			errline[j++] = isprint((unsigned char)ebuf[i]) ? ebuf[i] : '?';
		errline[j] = 0;
	}
	if (timed_out)
		return -1;
	if (*exec_errno)
		return 127;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

bool docker_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (!n || n > 255 || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return false;
	return true;
}

/* One line for a failed docker command. */
static int docker_failed(const char *label, const char *what, int status, int xe,
			 const char *eline, char *err, size_t errlen)
{
	if (status == 127 && xe) {
		if (xe == ENOENT) {
			snprintf(err, errlen, "%s: docker is not installed (no 'docker' command in PATH)",
				 label);
			return -ENOENT;
		}
		snprintf(err, errlen, "%s: cannot run docker: %s", label, strerror(xe));
		return -xe;
	}
	if (status < 0) {
		snprintf(err, errlen, "%s: docker %s did not answer within %d s", label, what,
			 INSPECT_TIMEOUT_S);
		return -ETIMEDOUT;
	}
	if (strstr(eline, "No such container") || strstr(eline, "No such object")) {
		snprintf(err, errlen, "%s: no such container", label);
		return -ESRCH;
	}
	if (strstr(eline, "Cannot connect to the Docker daemon") ||
	    strstr(eline, "error during connect") || strstr(eline, "connect: ") ||
	    strstr(eline, "permission denied while trying to connect") ||
	    strstr(eline, "context") || strstr(eline, "Is the docker daemon running")) {
		snprintf(err, errlen, "%s: the docker daemon is unreachable: %s", label, eline);
		return -ECONNREFUSED;
	}
	snprintf(err, errlen, "%s: docker %s failed (status %d)%s%s", label, what, status,
		 eline[0] ? ": " : "", eline);
	return -EIO;
}

int docker_inspect(const char *label, const char *name, struct docker_info *di, char *err,
		   size_t errlen)
{
	memset(di, 0, sizeof(*di));
	if (!docker_name_ok(name)) {
		snprintf(err, errlen, "%s: '%s' is not a docker container name", label, name);
		return -EINVAL;
	}
	char *argv[] = { (char *)"docker", (char *)"inspect", (char *)"--type", (char *)"container",
			 (char *)"--format",
			 (char *)"{{.State.Pid}} {{.State.Running}} {{.State.Paused}} {{.Id}}",
			 (char *)name, NULL };
	char out[512], eline[300];
	int xe;
	int st = ctr_docker_run(argv, out, sizeof(out), eline, sizeof(eline), &xe,
				INSPECT_TIMEOUT_S);
	if (st != 0)
		return docker_failed(label, "inspect", st, xe, eline, err, errlen);
	long pid = 0;
	char run[16] = "", paused[16] = "";
	if (sscanf(out, "%ld %15s %15s %79s", &pid, run, paused, di->id) != 4 || pid < 0 ||
	    strspn(di->id, "0123456789abcdef") != strlen(di->id) || strlen(di->id) < 12) {
		snprintf(err, errlen, "%s: unexpected answer from docker inspect: %.80s", label, out);
		return -EPROTO;
	}
	di->pid = (pid_t)pid;
	di->running = strcmp(run, "true") == 0 && pid > 0;
	di->paused = strcmp(paused, "true") == 0;
	return 0;
}

bool docker_has_agent(const char *name)
{
	if (!docker_name_ok(name))
		return false;
	char *argv[] = { (char *)"docker", (char *)"exec", (char *)name, (char *)"wicketd",
			 (char *)"--version", NULL };
	char out[256], eline[200];
	int xe;
	int st = ctr_docker_run(argv, out, sizeof(out), eline, sizeof(eline), &xe, PROBE_TIMEOUT_S);
	return st == 0 && strncmp(out, "wicketd ", 8) == 0;
}

int docker_names(char *out, size_t outlen, char *err, size_t errlen)
{
	char *argv[] = { (char *)"docker", (char *)"ps", (char *)"-a", (char *)"--format",
			 (char *)"{{.Names}}\t{{.State}}", NULL };
	char eline[300];
	int xe;
	int st = ctr_docker_run(argv, out, outlen, eline, sizeof(eline), &xe, INSPECT_TIMEOUT_S);
	if (st != 0)
		return docker_failed("docker", "ps", st, xe, eline, err, errlen);
	return 0;
}

/* A pidfd of @pid when it is this machine's process of container @id. */
static int local_pidfd(pid_t pid, const char *id)
{
	int fd = ctr_pidfd_open(pid);
	if (fd < 0)
		return -1;
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	int cf = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = cf < 0 ? -1 : read(cf, buf, sizeof(buf) - 1);
	if (cf >= 0)
		close(cf);
	if (n <= 0 || (buf[n] = 0, !strstr(buf, id))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Has container @name stopped (or gone)?  For a daemon we cannot watch. */
static bool docker_gone(const char *name)
{
	struct docker_info di;
	char err[300];
	int r = docker_inspect(name, name, &di, err, sizeof(err));
	return r == -ESRCH || (r == 0 && !di.running);
}

/* `docker exec -i NAME wicketd --stdio`, its output through the relay. */
static int docker_exec_agent(const char *name, const struct ctr_opts *o,
			     const struct docker_info *di, struct tp *out, char *err,
			     size_t errlen)
{
	int in[2], mid[2], outp[2], errp[2];
	int *pipes[] = { in, mid, outp, errp };
	size_t made = 0;
	for (; made < 4; made++)
		if (pipe2(pipes[made], O_CLOEXEC) < 0)
			break;
	int watch = made == 4 ? local_pidfd(di->pid, di->id) : -1;
	pid_t a = made == 4 ? fork() : -1;
	if (a == 0) {
		setsid(); /* the terminal's Ctrl-C is the host tool's to forward */
		int errout = fcntl(2, F_DUPFD_CLOEXEC, 64);
		int keep[] = { in[0], mid[0], mid[1], outp[1], errp[0], errp[1], watch, errout };
		ctr_close_fds_except(keep, sizeof(keep) / sizeof(keep[0]));
		pid_t c = fork();
		if (c == 0) {
			if (dup2(in[0], 0) < 0 || dup2(mid[1], 1) < 0 || dup2(errp[1], 2) < 0)
				_exit(127);
			int k2[] = { 0, 1, 2 };
			ctr_close_fds_except(k2, 3);
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGPIPE, SIG_DFL);
			prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
			char *argv[] = { (char *)"docker", (char *)"exec", (char *)"-i", (char *)name,
					 (char *)"wicketd", (char *)"--stdio", (char *)"--quiet", NULL };
			execvp(argv[0], argv);
			_exit(127);
		}
		close(in[0]);
		close(mid[1]);
		close(errp[1]);
		if (c < 0)
			_exit(255);
		struct ctr_relay r = { .agent_out = mid[0], .host_out = outp[1], .agent_err = errp[0],
				       .err_to = errout, .watch = watch, .child = c,
				       .ended = "the container stopped", .gone = docker_gone,
				       .name = name };
		_exit(ctr_relay_run(&r));
	}
	int fe = errno;
	if (watch >= 0)
		close(watch);
	if (a < 0) {
		for (size_t i = 0; i < made; i++)
			close(pipes[i][0]), close(pipes[i][1]);
		snprintf(err, errlen, "%s: cannot start docker exec: %s", o->label, strerror(fe));
		return -fe;
	}
	close(in[0]);
	close(mid[0]);
	close(mid[1]);
	close(outp[1]);
	close(errp[0]);
	close(errp[1]);
	*out = (struct tp){ .rfd = outp[0], .wfd = in[1], .pid = a };
	return 0;
}

int ctr_docker_open(const char *name, const struct ctr_opts *o, struct tp *out, char *err,
		    size_t errlen)
{
	struct docker_info di;
	int r = docker_inspect(o->label, name, &di, err, errlen);
	if (r < 0)
		return r;
	if (!di.running) {
		snprintf(err, errlen, "%s: the container is not running", o->label);
		return -ESRCH;
	}
	if (di.paused) {
		snprintf(err, errlen, "%s: the container is paused", o->label);
		return -EAGAIN;
	}
	/* Its own agent, unless the toolbox must come along (an fd docker
	 * exec cannot pass). */
	if (!o->tools && docker_has_agent(name))
		return docker_exec_agent(name, o, &di, out, err, errlen);
	struct ctr_target t = { .label = o->label, .ended = "the container stopped",
				.expect_id = di.id };
	return ctr_enter(di.pid, o, &t, out, err, errlen);
}
