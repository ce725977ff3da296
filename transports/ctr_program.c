/* SPDX-License-Identifier: MIT */
/* The program a container target brings in, as a descriptor (see ctr.h). */
#include "ctr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* O_PATH of a file only root can change: safe to hand to a container. */
static int path_fd(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		snprintf(err, errlen,
			 "%s: executable memfds are not allowed here (vm.memfd_noexec), and the file "
			 "is not a root-owned one nobody else can write",
			 path);
		close(fd);
		return -EPERM;
	}
	return fd;
}

int ctr_program_fd(const char *path, const char *name, char *err, size_t errlen)
{
	int src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && errno == EINVAL) /* kernels before MFD_EXEC */
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		close(src);
		return path_fd(path, err, errlen);
	}
	struct stat st;
	if (fstat(src, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		close(src);
		close(fd);
		return -e;
	}
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t n = copy_file_range(src, NULL, fd, NULL, (size_t)left, 0);
		if (n <= 0) {
			/* copy_file_range may refuse across filesystems: read/write. */
			char buf[65536];
			n = read(src, buf, sizeof(buf));
			if (n <= 0 || write(fd, buf, (size_t)n) != n) {
				snprintf(err, errlen, "%s: copying into a memfd failed", path);
				close(src);
				close(fd);
				return -EIO;
			}
		}
		left -= n;
	}
	close(src);
	if (fchmod(fd, 0555) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		int e = errno;
		snprintf(err, errlen, "sealing the memfd of %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	/* vm.memfd_noexec=2 makes the kernel refuse exec later: test it now. */
	if (faccessat(fd, "", X_OK, AT_EMPTY_PATH) < 0) {
		close(fd);
		return path_fd(path, err, errlen);
	}
	return fd;
}
