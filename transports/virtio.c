/* SPDX-License-Identifier: MIT */
/*
 * virtio-serial ports.  The driver reports POLLHUP while no host has the
 * port open and raises SIGIO when that changes, which is how we learn of
 * host connects and disconnects without udev or polling loops.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* /sys/class/virtio-ports/vportNpM/name holds the port name. */
static int virtio_find_sysfs(const char *name, char *path, size_t pathlen)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -ENOENT;
	struct dirent *e;
	int r = -ENOENT;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX], buf[256];
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		bool match = fgets(buf, sizeof(buf), f) && (buf[strcspn(buf, "\n")] = 0, 1) &&
			     strcmp(buf, name) == 0;
		fclose(f);
		if (match) {
			snprintf(path, pathlen, "/dev/%s", e->d_name);
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}

int tp_virtio_open(const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
	snprintf(path, pathlen, "/dev/virtio-ports/%s", name);
	if (access(path, F_OK) != 0 && virtio_find_sysfs(name, path, pathlen) < 0) {
		snprintf(err, errlen,
			 "virtio-serial port '%s' not found in /dev/virtio-ports or "
			 "/sys/class/virtio-ports (is virtio_console loaded and the channel "
			 "configured?)",
			 name);
		return -ENOENT;
	}
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	/* Ask the driver for SIGIO on host open/close -- blocked first: it is
	 * only ever waited for (sigtimedwait), and one arriving before the
	 * wait would otherwise kill the agent (SIGIO's default action). */
	sigset_t io;
	sigemptyset(&io);
	sigaddset(&io, SIGIO);
	sigprocmask(SIG_BLOCK, &io, NULL);
	fcntl(fd, F_SETOWN, getpid());
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
	return fd;
}

bool tp_virtio_host_connected(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int r = poll(&p, 1, 0);
	return r >= 0 && !(p.revents & POLLHUP);
}

int tp_virtio_wait_host(int fd)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	sigprocmask(SIG_BLOCK, &set, NULL);
	while (!tp_virtio_host_connected(fd)) {
		/* SIGIO wakes us at once; the timeout covers a lost signal. */
		struct timespec ts = { 1, 0 };
		int s = sigtimedwait(&set, NULL, &ts);
		if (s < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}
