/* SPDX-License-Identifier: MIT */
#include "fdpass.h"

#include <string.h>
#include <unistd.h>

void fdpass_attach(struct msghdr *mh, union fdpass_buf *b, const int *fds, int nfds)
{
	if (nfds <= 0)
		return;
	if (nfds > FDPASS_MAX)
		nfds = FDPASS_MAX; /* our own bug; the receiver sees fewer */
	memset(b, 0, sizeof(*b));
	mh->msg_control = b->space;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
}

void fdpass_expect(struct msghdr *mh, union fdpass_buf *b)
{
	mh->msg_control = b->space;
	mh->msg_controllen = sizeof(b->space);
}

int fdpass_take(const struct msghdr *mh, int *fds, int max)
{
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++, got++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < max)
				fds[got] = fd;
			else
				close(fd);
		}
	}
	return got;
}

/* Seccomp allowlist of this file: descriptors nobody asked for are closed. */
SYSCALLS(fdpass) = { SC("close"), SC_END };
