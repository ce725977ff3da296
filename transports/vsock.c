/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "guest.h"
#include "tp.h"

int tp_vsock_listen(uint32_t port, char *err, size_t errlen)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "vsock: %s (is the vsock module loaded?)", strerror(e));
		return -e;
	}
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				  .svm_port = port };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		snprintf(err, errlen, "vsock port %u: %s", port, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

int tp_vsock_accept(int lfd, uint32_t *cid)
{
	struct sockaddr_vm sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	*cid = sa.svm_cid;
	return fd;
}

int tp_vsock_connect(uint32_t cid, uint32_t port, struct tp *out, char *err, size_t errlen)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "vsock: %s (no vsock support on this host?)", strerror(e));
		return -e;
	}
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot connect to vsock CID %u port %u: %s", cid, port,
			 strerror(e));
		close(fd);
		return -e;
	}
	*out = (struct tp){ .rfd = fd, .wfd = fd };
	return 0;
}
