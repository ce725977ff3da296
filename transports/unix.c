/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tp.h"

/* Fill @sa for @path and return a new stream socket, or -errno. */
static int tp_unix_socket(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (!*path || strlen(path) >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "unix socket path '%s' is empty or longer than %zu bytes",
			 path, sizeof(sa->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa->sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return r;
	}
	return fd;
}

int tp_unix_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int r;
	int fd = tp_unix_socket(path, &sa, err, errlen);
	if (fd < 0)
		return fd;
	/* Replace a stale socket, but never a file of another kind. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			snprintf(err, errlen, "%s: another agent is already listening there", path);
			close(fd);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	mode_t old = umask(077);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

/*
 * Bulk copies: with the default send buffer (~200 KiB) not even one full
 * data packet fits in the socket, so both ends wake for every piece of
 * it.  Ask for more (the kernel caps it at net.core.wmem_max); best effort.
 */
static void tp_unix_tune(int fd)
{
	int sz = 4 * 1024 * 1024;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

int tp_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	tp_unix_tune(fd);
	return fd;
}

int tp_unix_connect(const char *path, struct tp *out, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int r;
	int fd = tp_unix_socket(path, &sa, err, errlen);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	tp_unix_tune(fd);
	*out = (struct tp){ .rfd = fd, .wfd = fd };
	return 0;
}
