/* SPDX-License-Identifier: MIT */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"

#define PROXY_BUF (256 * 1024)

/* One direction of the bridge. */
struct pipe_dir {
	int from, to;
	unsigned char *buf;
	size_t off, len;
	bool eof;
};

static void shut_write(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0 && errno == ENOTSOCK)
		close(fd);
}

int proxy_run(struct tp *tp, const char *target)
{
	signal(SIGPIPE, SIG_IGN);
	struct pipe_dir d[2] = {
		{ .from = 0, .to = tp->wfd },
		{ .from = tp->rfd, .to = 1 },
	};
	for (int i = 0; i < 2; i++) {
		d[i].buf = malloc(PROXY_BUF);
		if (!d[i].buf) {
			fprintf(stderr, "wicket: out of memory\n");
			return WICKET_EXIT_FAILURE;
		}
	}
	/* Down direction ended = the agent is gone: we are done. */
	while (!(d[1].eof && d[1].len == d[1].off)) {
		struct pollfd p[4];
		int np = 0, idx[4];
		for (int i = 0; i < 2; i++) {
			if (d[i].len == d[i].off && !d[i].eof) {
				p[np] = (struct pollfd){ .fd = d[i].from, .events = POLLIN };
				idx[np++] = i;
			} else if (d[i].len > d[i].off) {
				p[np] = (struct pollfd){ .fd = d[i].to, .events = POLLOUT };
				idx[np++] = i + 2;
			}
		}
		if (np == 0)
			break;
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k < np; k++) {
			if (!p[k].revents)
				continue;
			struct pipe_dir *x = &d[idx[k] % 2];
			if (idx[k] < 2) {
				ssize_t n = read(x->from, x->buf, PROXY_BUF);
				if (n < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				if (n <= 0) {
					x->eof = true;
					if (x == &d[0])
						shut_write(x->to);
					continue;
				}
				x->off = 0;
				x->len = (size_t)n;
			} else {
				ssize_t n = write(x->to, x->buf + x->off, x->len - x->off);
				if (n < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				if (n < 0) {
					if (x == &d[1]) {
						/* Our reader is gone: nothing left to do. */
						free(d[0].buf);
						free(d[1].buf);
						return 0;
					}
					x->eof = true;
					x->off = x->len;
					continue;
				}
				x->off += (size_t)n;
			}
		}
	}
	free(d[0].buf);
	free(d[1].buf);
	(void)target;
	return 0;
}
