/* SPDX-License-Identifier: MIT */
/*
 * A command reaching its target through the mux: attach to a running one,
 * or open the stream ourselves and hand it to a new mux process (so errors
 * opening the target are reported exactly as without a mux).
 */
#include "mux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "target.h"

/* How long a running mux may take to answer a new client. */
#define MUX_ATTACH_TIMEOUT_MS 10000

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static int sock_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int mux_attach(const struct mux_key *k, struct tp *out)
{
	__attribute__((cleanup(close_fd))) int fd = sock_connect(k->sock);
	if (fd < 0)
		return fd;
	/* Room for a whole bulk packet, so the mux can splice it (mux_daemon.c). */
	int sz = 4 * 1024 * 1024;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	/* The preamble, exactly: what follows is the mux's greeting. */
	char got[MUX_PREAMBLE_LEN];
	size_t have = 0;
	while (have < sizeof(got)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, MUX_ATTACH_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, got + have, sizeof(got) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -ECONNRESET; /* a mux on its way out */
		have += (size_t)n;
	}
	if (memcmp(got, MUX_PREAMBLE, MUX_PREAMBLE_LEN) != 0)
		return -EPROTO;
	*out = (struct tp){ .rfd = fd, .wfd = fd };
	fd = -1;
	return 0;
}

/* Move @fd to exactly @to (no CLOEXEC); the old number is left as it was. */
static int place_fd(int fd, int to)
{
	if (fd == to)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, to) < 0 ? -1 : 0;
}

static int listen_at(const char *path, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path); /* stale: we hold the lock and nothing answered there */
	mode_t old = umask(077);
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The mux process: detached from us entirely (its own session, stdin and
 * stdout /dev/null, stderr its log file — it must not keep the caller's
 * terminal or pipes open, OpenSSH bz#1988), a fresh image of wicket with
 * the listener and the stream at fixed descriptors and nothing else.
 */
static int spawn_daemon(const struct mux_key *k, const struct globals *g, int lfd, int logfd,
			const struct tp *guest, char *err, size_t errlen)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0) {
		snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	char persist[16], keepalive[16], helper[16], level[16], compress[8];
	snprintf(compress, sizeof(compress), "%d", g->compress);
	snprintf(persist, sizeof(persist), "%d", g->persist);
	snprintf(keepalive, sizeof(keepalive), "%d", g->keepalive);
	snprintf(helper, sizeof(helper), "%d", (int)guest->pid);
	snprintf(level, sizeof(level), "%d", log_level);
	char *argv[] = { (char *)"wicket-mux", (char *)MUX_DAEMON_ARG, (char *)k->label,
			 (char *)k->sock, (char *)k->lock, persist, keepalive, helper, level,
			 compress, (char *)(g->proxy_cmd ? "cmd" : "target"), NULL };
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(logfd);
		close(null);
		return -1;
	}
	if (pid == 0) {
		setsid();
		pid_t again = fork();
		if (again != 0)
			_exit(again < 0 ? 1 : 0);
		/* Above the fixed numbers first, so no placement overwrites another. */
		int fds[] = { lfd, guest->rfd, guest->wfd, null, logfd };
		int hi[5];
		for (int i = 0; i < 5; i++)
			hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
		if (place_fd(hi[3], 0) || place_fd(hi[3], 1) || place_fd(hi[4], 2) ||
		    place_fd(hi[0], MUX_FD_LISTEN) || place_fd(hi[1], MUX_FD_GUEST_IN) ||
		    place_fd(hi[2], MUX_FD_GUEST_OUT))
			_exit(127);
		syscall(SYS_close_range, 6u, ~0u, 0u);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(logfd);
	close(null);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	return 0;
}

/*
 * The stream for a new mux: helpers (a proxy command, the libvirt helper)
 * get the mux's log as stderr and their own session, since they outlive us.
 * Our own error messages still go to our stderr.
 */
static int open_for_mux(const char *target, const struct globals *g, int logfd, struct tp *out)
{
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (saved < 0 || dup2(logfd, 2) < 0) {
		if (saved >= 0)
			close(saved);
		return open_target_direct(target, g, out);
	}
	char err[512];
	tp_detach_helpers = true;
	int r = target_open(target, g, out, err, sizeof(err));
	tp_detach_helpers = false;
	dup2(saved, 2);
	close(saved);
	if (r < 0) {
		fprintf(stderr, "wicket: %s\n", err);
		return -1;
	}
	return 0;
}

static void unlock_fd(int *fd)
{
	if (*fd >= 0) {
		flock(*fd, LOCK_UN);
		close(*fd);
	}
}

static int report_attach_error(const struct mux_key *k, int e)
{
	if (e == -ETIMEDOUT)
		fprintf(stderr, "wicket: %s: its mux (%s) does not answer; see 'wicket mux status %s'\n",
			k->label, k->sock, k->label);
	else
		fprintf(stderr, "wicket: %s: cannot attach to its mux %s: %s\n", k->label, k->sock,
			strerror(-e));
	return -1;
}

/* Start a mux under the start lock (two commands at once make one). */
static int start_and_attach(const struct mux_key *k, struct globals *g, const char *target,
			    struct tp *out)
{
	__attribute__((cleanup(unlock_fd))) int lk =
		open(k->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lk < 0 || flock(lk, LOCK_EX) < 0) {
		fprintf(stderr, "wicket: %s: %s\n", k->lock, strerror(errno));
		return -1;
	}
	int r = mux_attach(k, out);
	if (r == 0)
		return 0; /* someone else started it meanwhile */
	int logfd = open(k->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0) {
		fprintf(stderr, "wicket: %s: %s\n", k->log, strerror(errno));
		return -1;
	}
	struct tp guest;
	if (open_for_mux(target, g, logfd, &guest) < 0) {
		close(logfd);
		return -1;
	}
	char err[600];
	int lfd = listen_at(k->sock, err, sizeof(err));
	if (lfd < 0 || spawn_daemon(k, g, lfd, logfd, &guest, err, sizeof(err)) < 0) {
		fprintf(stderr, "wicket: %s: cannot start its mux: %s\n", k->label, err);
		if (lfd >= 0) {
			unlink(k->sock);
			close(lfd);
		} else {
			close(logfd);
		}
		tp_close(&guest);
		return -1;
	}
	/* The stream and any helper are the mux's now. */
	close(lfd);
	close(guest.rfd);
	if (guest.wfd != guest.rfd)
		close(guest.wfd);
	log_debug("%s: started its mux on %s", k->label, k->sock);
	r = mux_attach(k, out);
	return r == 0 ? 0 : report_attach_error(k, r);
}

/* --share no on vm/NAME: libvirt would abort the mux's session to let us in. */
static int direct_allowed(const struct mux_key *k)
{
	if (!k->libvirt)
		return 0;
	struct tp t;
	if (mux_attach(k, &t) < 0)
		return 0;
	tp_close(&t);
	fprintf(stderr,
		"wicket: %s: the channel is held by wicket's mux for it; opening it directly "
		"would abort every session there (use --share auto, or 'wicket mux stop %s')\n",
		k->label, k->label);
	return -1;
}

int mux_open(const char *target, struct globals *g, struct tp *out)
{
	*out = TP_INIT;
	struct mux_key k;
	char err[600];
	int shared = mux_key_make(target, g, &k, err, sizeof(err));
	if (shared < 0) {
		if (g->share == SHARE_ONLY) {
			fprintf(stderr, "wicket: %s: no mux: %s\n", target, err);
			return -1;
		}
		/* No safe place for a socket: work as without a mux, and say why. */
		fprintf(stderr, "wicket: not sharing the stream to %s: %s\n", target, err);
		return open_target_direct(target, g, out);
	}
	if (!shared || g->share == SHARE_NO) {
		if (shared && direct_allowed(&k) < 0)
			return -1;
		return open_target_direct(target, g, out);
	}
	int r = mux_attach(&k, out);
	if (r == 0)
		return 0;
	if (g->share == SHARE_ONLY) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			fprintf(stderr, "wicket: %s: no mux runs for it (--share only; start one with "
					"'wicket mux start %s')\n",
				target, target);
		else
			report_attach_error(&k, r);
		return -1;
	}
	if (r != -ENOENT && r != -ECONNREFUSED && r != -ECONNRESET)
		return report_attach_error(&k, r);
	return start_and_attach(&k, g, target, out);
}
