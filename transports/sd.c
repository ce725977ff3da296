/* SPDX-License-Identifier: MIT */
/* systemd socket activation (sd_listen_fds(3) protocol, without libsystemd). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "guest.h"

int tp_sd_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	int n = 0;
	if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
		n = (int)strtol(fds, NULL, 10);
		if (n < 0 || n > 64)
			n = 0;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (int i = 0; i < n; i++)
		fcntl(3 + i, F_SETFD, FD_CLOEXEC);
	return n;
}

bool tp_is_listener(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v;
}
