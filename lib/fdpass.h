/* SPDX-License-Identifier: MIT */
/*
 * File descriptors over Unix sockets (SCM_RIGHTS) between the halves of
 * our privilege-separated pairs: wicketd's worker and monitor, the SSH
 * wrapper's network process and monitor, the libvirt helper and wicket.
 * The caller builds the msghdr and makes the sendmsg/recvmsg call itself;
 * these fill and empty only its control part.
 */
#ifndef WICKET_FDPASS_H
#define WICKET_FDPASS_H

#include <sys/socket.h>

#include "syscalls.h"

/* The most descriptors any of our messages carries. */
#define FDPASS_MAX 4

/* Control buffer for up to FDPASS_MAX descriptors, aligned for cmsghdr. */
union fdpass_buf {
	struct cmsghdr h;
	char space[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
};

/* Before sendmsg: attach @nfds (0..FDPASS_MAX) of @fds to @mh, using @b. */
void fdpass_attach(struct msghdr *mh, union fdpass_buf *b, const int *fds, int nfds);

/* Before recvmsg: let @mh take up to FDPASS_MAX descriptors into @b. */
void fdpass_expect(struct msghdr *mh, union fdpass_buf *b);

/*
 * After recvmsg: of the descriptors that came with @mh, the first @max go
 * to @fds and the rest are closed.  Returns how many came (it may exceed
 * @max); with MSG_CTRUNC set more were sent than fit, and are lost.
 */
int fdpass_take(const struct msghdr *mh, int *fds, int max);

SYSCALLS_DECLARE(fdpass);

#endif
