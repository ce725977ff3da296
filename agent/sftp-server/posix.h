/* SPDX-License-Identifier: MIT */
/*
 * The POSIX filesystem backend of wicket-sftp-server.  With a root
 * directory every path is resolved by openat2(2) with RESOLVE_IN_ROOT, so
 * "..", absolute paths and symlinks (absolute or relative) stay inside it;
 * without one, paths are the kernel's, relative to the working directory.
 */
#ifndef WICKET_SFTP_POSIX_H
#define WICKET_SFTP_POSIX_H

#include "sftp_server.h"

struct px;

extern const struct sftp_backend_ops px_ops;

/* root NULL: no confinement; start: with a root, the directory inside it
 * that relative paths start from (without a root the caller chdirs).
 * Returns 0 or a negative errno (ENOSYS when the kernel lacks openat2, so
 * confinement fails closed). */
int px_new(const char *root, const char *start, struct px **out);
void px_free(struct px *px);

#endif
