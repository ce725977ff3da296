/* SPDX-License-Identifier: MIT */
/*
 * POSIX backend for the sftp server core.
 *
 * Confinement (--root): a path is never handed to a path-taking syscall
 * whole.  Operations on an existing object open it with openat2(2) under
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS and then work on the fd
 * (AT_EMPTY_PATH); operations on a name (mkdir, unlink, rename, link,
 * symlink) open the parent directory that way and use *at() on the last
 * component, which is never "." or "..".  Without --root the same code runs
 * with plain openat() from the working directory.
 */
#include "posix.h"
#include "syscalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* same number on every architecture */
#endif

#define PX_RESOLVE (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/* Name lookups are cached: a READDIR of 100 entries would otherwise read
 * /etc/passwd and /etc/group 200 times. */
#define PX_NAME_CACHE 64

struct px_name {
	uint32_t id;
	bool used, found;
	char name[64];
};

/* Our pipe between stdin and the file: one WRITE payload at once. */
#define PX_WPIPE_SIZE (256 * 1024)

struct px {
	int root;	 /* O_PATH fd of the confinement directory, or -1 */
	char *root_real; /* its canonical path */
	char *start;	 /* under a root: the start directory (-d) as seen inside it, or NULL */
	struct px_name users[PX_NAME_CACHE], groups[PX_NAME_CACHE];
	int wpipe[2]; /* WRITE payloads pass through it (px_write_pipe), or -1 */
};

struct px_fh {
	int fd;
};

struct px_dh {
	DIR *d;
};

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static int px_openat2(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = PX_RESOLVE,
	};
	long fd;
	do
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? neg_errno() : (int)fd;
}

/*
 * Under a root, relative paths are relative to the start directory (-d),
 * which is only a name inside the root: join it in front, so ".." still
 * stops at the root and not at the start directory.  Without a root the
 * process's working directory is the start directory (chdir at start-up).
 * Returns @path itself or a joined copy left in *@tmp; NULL when out of memory.
 */
static const char *px_path(const struct px *px, const char *path, char **tmp)
{
	*tmp = NULL;
	if (px->root < 0 || !px->start || path[0] == '/')
		return path;
	size_t sl = strlen(px->start), pl = strlen(path);
	*tmp = malloc(sl + pl + 2);
	if (!*tmp)
		return NULL;
	memcpy(*tmp, px->start, sl);
	(*tmp)[sl] = '/';
	memcpy(*tmp + sl + 1, path, pl + 1);
	return *tmp;
}

/* Open a whole path: inside the root when there is one. */
static int px_open_path(struct px *px, const char *path, int flags, mode_t mode)
{
	if (px->root >= 0) {
		char *tmp;
		const char *p = px_path(px, path, &tmp);
		if (!p)
			return -ENOMEM;
		int fd = px_openat2(px->root, p, flags, mode);
		free(tmp);
		return fd;
	}
	int fd;
	do
		fd = openat(AT_FDCWD, path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? neg_errno() : fd;
}

/* A parent directory fd plus the last component, for *at() calls. */
struct px_at {
	int dirfd;
	const char *name;
	int owned; /* fd to close, or -1 */
	char *copy;
};

static void px_at_done(struct px_at *at)
{
	if (at->owned >= 0)
		close(at->owned);
	free(at->copy);
	at->owned = -1;
	at->copy = NULL;
}

static int px_parent(struct px *px, const char *path, struct px_at *at)
{
	*at = (struct px_at){ .dirfd = AT_FDCWD, .name = path, .owned = -1 };
	if (px->root < 0)
		return 0;
	if (!path[0])
		return -ENOENT;
	char *tmp;
	const char *p = px_path(px, path, &tmp);
	char *c = p ? (tmp ? tmp : strdup(p)) : NULL;
	if (!c)
		return -ENOMEM;
	size_t n = strlen(c);
	while (n > 1 && c[n - 1] == '/')
		c[--n] = 0;
	char *slash = strrchr(c, '/');
	const char *dir = ".";
	const char *name = c;
	if (slash) {
		name = slash + 1;
		if (slash == c) {
			dir = "/";
		} else {
			*slash = 0;
			dir = c;
		}
	}
	/* The root's ".." is outside it: never let a bare *at() see one. */
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		free(c);
		return -EINVAL;
	}
	int fd = px_openat2(px->root, dir, O_PATH | O_DIRECTORY, 0);
	if (fd < 0) {
		free(c);
		return fd;
	}
	*at = (struct px_at){ .dirfd = fd, .name = name, .owned = fd, .copy = c };
	return 0;
}

static void px_attrs(const struct stat *st, struct sftp_attrs *a)
{
	*a = (struct sftp_attrs){
		.flags = SSH_FILEXFER_ATTR_SIZE | SSH_FILEXFER_ATTR_UIDGID |
			 SSH_FILEXFER_ATTR_PERMISSIONS | SSH_FILEXFER_ATTR_ACMODTIME,
		.size = (uint64_t)st->st_size,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.perm = st->st_mode,
		.atime = (uint32_t)st->st_atime,
		.mtime = (uint32_t)st->st_mtime,
	};
}

/* ------------------------------------------------------------------ attrs */

static int px_chmod_fd(int fd, mode_t mode)
{
	if (syscall(SYS_fchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOSYS)
		return neg_errno();
	/* Kernels before 6.6: through the fd's /proc entry (same object). */
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return chmod(p, mode) == 0 ? 0 : neg_errno();
}

/*
 * Apply attributes to the object behind fd (any kind of fd, O_PATH too),
 * in OpenSSH's order: size, permissions, times, owner.  wfd is a writable
 * fd for the size change, or -1 when none was requested.
 */
static int px_apply(int fd, int wfd, const struct sftp_attrs *a)
{
	if ((a->flags & SSH_FILEXFER_ATTR_SIZE) && ftruncate(wfd, (off_t)a->size) < 0)
		return neg_errno();
	if (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) {
		int rc = px_chmod_fd(fd, a->perm & 07777);
		if (rc)
			return rc;
	}
	if (a->flags & SSH_FILEXFER_ATTR_ACMODTIME) {
		struct timespec ts[2] = { { .tv_sec = a->atime }, { .tv_sec = a->mtime } };
		if (utimensat(fd, "", ts, AT_EMPTY_PATH) < 0)
			return neg_errno();
	}
	if ((a->flags & SSH_FILEXFER_ATTR_UIDGID) &&
	    fchownat(fd, "", a->uid, a->gid, AT_EMPTY_PATH) < 0)
		return neg_errno();
	return 0;
}

static void px_vfs(const struct statvfs *v, struct sftp_statvfs *o)
{
	*o = (struct sftp_statvfs){
		.bsize = v->f_bsize, .frsize = v->f_frsize, .blocks = v->f_blocks,
		.bfree = v->f_bfree, .bavail = v->f_bavail, .files = v->f_files,
		.ffree = v->f_ffree, .favail = v->f_favail, .fsid = v->f_fsid,
		.flag = ((v->f_flag & ST_RDONLY) ? SSH_FXE_STATVFS_ST_RDONLY : 0) |
			((v->f_flag & ST_NOSUID) ? SSH_FXE_STATVFS_ST_NOSUID : 0),
		.namemax = v->f_namemax,
	};
}

/* ------------------------------------------------------------------ files */

static int px_open(void *be, const char *path, uint32_t pf, const struct sftp_attrs *a, void **fh)
{
	struct px *px = be;
	int fl = O_RDONLY;
	if ((pf & SSH_FXF_READ) && (pf & SSH_FXF_WRITE))
		fl = O_RDWR;
	else if (pf & SSH_FXF_WRITE)
		fl = O_WRONLY;
	if (pf & SSH_FXF_APPEND)
		fl |= O_APPEND;
	if (pf & SSH_FXF_CREAT)
		fl |= O_CREAT;
	if (pf & SSH_FXF_TRUNC)
		fl |= O_TRUNC;
	if (pf & SSH_FXF_EXCL)
		fl |= O_EXCL;
	mode_t mode = (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) ? (a->perm & 07777) : 0666;
	struct px_fh *f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = px_open_path(px, path, fl | O_NOCTTY, mode);
	if (f->fd < 0) {
		int rc = f->fd;
		free(f);
		return rc;
	}
	*fh = f;
	return 0;
}

static int px_close(void *be, void *fh)
{
	struct px_fh *f = fh;
	int rc = close(f->fd) == 0 ? 0 : neg_errno();
	free(f);
	/* close(2) failing with EINTR still closed the fd on Linux. */
	return rc == -EINTR ? 0 : rc;
}

static int px_read(void *be, void *fh, uint64_t off, void *buf, size_t len, size_t *got)
{
	struct px_fh *f = fh;
	if (off > (uint64_t)INT64_MAX)
		return -EINVAL;
	ssize_t n;
	do
		n = pread(f->fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return neg_errno();
	*got = (size_t)n;
	return 0;
}

/* The file range goes into the pipe as page references: no copy here. */
static int px_read_pipe(void *be, void *fh, uint64_t off, size_t len, int pipefd, size_t *got)
{
	struct px_fh *f = fh;
	*got = 0;
	if (off > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	while (*got < len) {
		loff_t o = (loff_t)(off + *got);
		/* Never waits for the pipe: a full one makes this a short read. */
		ssize_t n = splice(f->fd, &o, pipefd, NULL, len - *got,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && *got)
			break;
		if (n < 0)
			return neg_errno();
		if (n == 0)
			break; /* end of file */
		*got += (size_t)n;
	}
	return 0;
}

static int px_write(void *be, void *fh, uint64_t off, const void *buf, size_t len)
{
	struct px_fh *f = fh;
	const uint8_t *p = buf;
	if (off > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	while (len) {
		ssize_t n = pwrite(f->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno();
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Move @n bytes waiting in px->wpipe into the file at @off: spliced, else
 * (a file that takes no splice) copied; after an error the rest is read
 * and dropped, so the pipe is always empty again.
 */
static int px_wpipe_drain(struct px *px, struct px_fh *f, uint64_t off, size_t n)
{
	int rc = 0;
	bool copy = false;
	while (n) {
		ssize_t k = 0;
		if (!copy && !rc) {
			loff_t o = (loff_t)off;
			k = splice(px->wpipe[0], NULL, f->fd, &o, n, SPLICE_F_MOVE);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && (errno == EINVAL || errno == ENOSYS)) {
				copy = true;
				continue;
			}
			if (k <= 0) {
				rc = k < 0 ? neg_errno() : -EIO;
				continue;
			}
		} else {
			uint8_t tmp[64 * 1024];
			k = read(px->wpipe[0], tmp, n < sizeof(tmp) ? n : sizeof(tmp));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				/* Cannot happen: the bytes are in the pipe.  Stop using it. */
				close(px->wpipe[0]);
				close(px->wpipe[1]);
				px->wpipe[0] = px->wpipe[1] = -1;
				return rc ? rc : -EIO;
			}
			if (!rc)
				rc = px_write(px, f, off, tmp, (size_t)k);
		}
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	return rc;
}

/*
 * Upload payloads: stdin's pipe pages go into the file, no copy through
 * us.  They pass through our own pipe first: splicing into a file holds
 * the source pipe's lock for the whole file write, and the worker filling
 * stdin would spin on it meanwhile; from pipe to pipe only page references
 * move.
 */
static int px_write_pipe(void *be, void *fh, uint64_t off, int pipefd, size_t len, size_t *got)
{
	struct px *px = be;
	struct px_fh *f = fh;
	*got = 0;
	if (off > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	while (*got < len) {
		loff_t o = (loff_t)(off + *got);
		bool via = px->wpipe[0] >= 0;
		/* Never waits for the pipe: an empty one ends this early. */
		ssize_t n = splice(pipefd, NULL, via ? px->wpipe[1] : f->fd, via ? NULL : &o,
				   len - *got, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && *got)
			break;
		if (n < 0)
			return neg_errno();
		if (n == 0)
			break; /* the writer is gone */
		*got += (size_t)n;
		int rc = via ? px_wpipe_drain(px, f, (uint64_t)o, (size_t)n) : 0;
		if (rc)
			return rc;
	}
	return 0;
}

static int px_fstat(void *be, void *fh, struct sftp_attrs *a)
{
	struct px_fh *f = fh;
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return neg_errno();
	px_attrs(&st, a);
	return 0;
}

static int px_fsetstat(void *be, void *fh, const struct sftp_attrs *a)
{
	struct px_fh *f = fh;
	return px_apply(f->fd, f->fd, a);
}

static int px_fsync(void *be, void *fh)
{
	struct px_fh *f = fh;
	return fsync(f->fd) == 0 ? 0 : neg_errno();
}

static int px_lock(void *be, void *fh)
{
	struct px_fh *f = fh;
	return flock(f->fd, LOCK_EX | LOCK_NB) == 0 ? 0 : neg_errno();
}

static int px_fstatvfs(void *be, void *fh, struct sftp_statvfs *o)
{
	struct px_fh *f = fh;
	struct statvfs v;
	if (fstatvfs(f->fd, &v) < 0)
		return neg_errno();
	px_vfs(&v, o);
	return 0;
}

/* The portable way when copy_file_range cannot (other filesystems, old kernels). */
static int px_copy_rw(int in, uint64_t ioff, uint64_t len, int out, uint64_t ooff)
{
	enum { CHUNK = 256 * 1024 };
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	while (len) {
		size_t want = CHUNK;
		if (len < want)
			want = (size_t)len;
		ssize_t n = pread(in, buf, want, (off_t)ioff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? neg_errno() : 0;
			break;
		}
		struct px_fh of = { .fd = out };
		rc = px_write(NULL, &of, ooff, buf, (size_t)n);
		if (rc)
			break;
		ioff += (uint64_t)n;
		ooff += (uint64_t)n;
		len -= (uint64_t)n;
	}
	free(buf);
	return rc;
}

static int px_copy(void *be, void *from, uint64_t from_off, uint64_t len, void *to,
		   uint64_t to_off)
{
	int in = ((struct px_fh *)from)->fd, out = ((struct px_fh *)to)->fd;
	if (from_off > (uint64_t)INT64_MAX || to_off > (uint64_t)INT64_MAX)
		return -EINVAL;
	/*
	 * Never past the source's end as it is now (length 0: up to it): a copy
	 * within one file would chase its own growing end, a byte at a time.
	 */
	struct stat si, so;
	if (fstat(in, &si) < 0 || fstat(out, &so) < 0)
		return neg_errno();
	if (S_ISREG(si.st_mode) || len == 0) {
		if ((uint64_t)si.st_size <= from_off)
			return 0;
		if (len == 0 || len > (uint64_t)si.st_size - from_off)
			len = (uint64_t)si.st_size - from_off;
	}
	/* Overlapping ranges of one file: what copy_file_range refuses too. */
	if (si.st_dev == so.st_dev && si.st_ino == so.st_ino && from_off < to_off + len &&
	    to_off < from_off + len)
		return -EINVAL;
	while (len) {
		loff_t io = (loff_t)from_off, oo = (loff_t)to_off;
		size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = copy_file_range(in, &io, out, &oo, want, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			    errno == EOPNOTSUPP)
				return px_copy_rw(in, from_off, len, out, to_off);
			return neg_errno();
		}
		if (n == 0)
			break; /* end of the source */
		from_off += (uint64_t)n;
		to_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------ directories */

static int px_opendir(void *be, const char *path, void **dh)
{
	int fd = px_open_path(be, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	struct px_dh *d = malloc(sizeof(*d));
	if (!d || !(d->d = fdopendir(fd))) {
		int rc = d ? neg_errno() : -ENOMEM;
		free(d);
		close(fd);
		return rc;
	}
	*dh = d;
	return 0;
}

static int px_readdir(void *be, void *dh, struct sftp_dirent *e)
{
	struct px_dh *d = dh;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d->d);
		if (!de)
			return errno ? -errno : 0;
		struct stat st;
		/* Relative to the directory fd and never following: no escape. */
		if (fstatat(dirfd(d->d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone since: leave it out, like OpenSSH */
		e->name = de->d_name;
		px_attrs(&st, &e->a);
		e->nlink = (uint32_t)st.st_nlink;
		return 1;
	}
}

static int px_closedir(void *be, void *dh)
{
	struct px_dh *d = dh;
	int rc = closedir(d->d) == 0 ? 0 : neg_errno();
	free(d);
	return rc;
}

/* ------------------------------------------------------------------ paths */

static int px_stat(void *be, const char *path, bool follow, struct sftp_attrs *a)
{
	struct px *px = be;
	struct stat st;
	int rc;
	if (px->root < 0) {
		/* Unconfined: one syscall instead of open + fstat + close. */
		rc = fstatat(AT_FDCWD, path, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW);
		rc = rc == 0 ? 0 : neg_errno();
	} else {
		int fd = px_open_path(px, path, O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
		if (fd < 0)
			return fd;
		rc = fstat(fd, &st) == 0 ? 0 : neg_errno();
		close(fd);
	}
	if (rc == 0)
		px_attrs(&st, a);
	return rc;
}

static int px_setstat(void *be, const char *path, bool follow, const struct sftp_attrs *a)
{
	int nf = follow ? 0 : O_NOFOLLOW;
	int fd = px_open_path(be, path, O_PATH | nf, 0);
	if (fd < 0)
		return fd;
	int wfd = -1;
	if (a->flags & SSH_FILEXFER_ATTR_SIZE) {
		wfd = px_open_path(be, path, O_WRONLY | O_NONBLOCK | O_NOCTTY | nf, 0);
		if (wfd < 0) {
			close(fd);
			return wfd;
		}
	}
	int rc = px_apply(fd, wfd, a);
	if (wfd >= 0)
		close(wfd);
	close(fd);
	return rc;
}

static int px_statvfs(void *be, const char *path, struct sftp_statvfs *o)
{
	int fd = px_open_path(be, path, O_PATH, 0);
	if (fd < 0)
		return fd;
	struct statvfs v;
	int rc = fstatvfs(fd, &v) == 0 ? 0 : neg_errno();
	close(fd);
	if (rc == 0)
		px_vfs(&v, o);
	return rc;
}

static int px_remove(void *be, const char *path)
{
	struct px_at at;
	int rc = px_parent(be, path, &at);
	if (rc)
		return rc;
	rc = unlinkat(at.dirfd, at.name, 0) == 0 ? 0 : neg_errno();
	px_at_done(&at);
	return rc;
}

static int px_mkdir(void *be, const char *path, const struct sftp_attrs *a)
{
	mode_t mode = (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) ? (a->perm & 07777) : 0777;
	struct px_at at;
	int rc = px_parent(be, path, &at);
	if (rc)
		return rc;
	rc = mkdirat(at.dirfd, at.name, mode) == 0 ? 0 : neg_errno();
	px_at_done(&at);
	return rc;
}

static int px_rmdir(void *be, const char *path)
{
	struct px_at at;
	int rc = px_parent(be, path, &at);
	if (rc)
		return rc;
	rc = unlinkat(at.dirfd, at.name, AT_REMOVEDIR) == 0 ? 0 : neg_errno();
	px_at_done(&at);
	return rc;
}

static int px_rename(void *be, const char *from, const char *to, bool posix)
{
	struct px_at a, b;
	int rc = px_parent(be, from, &a);
	if (rc)
		return rc;
	rc = px_parent(be, to, &b);
	if (rc) {
		px_at_done(&a);
		return rc;
	}
	/* SSH_FXP_RENAME must not replace an existing file; posix-rename does. */
	rc = renameat2(a.dirfd, a.name, b.dirfd, b.name, posix ? 0 : RENAME_NOREPLACE);
	if (rc < 0 && !posix && errno == EINVAL) {
		/* Filesystem without RENAME_NOREPLACE: check, then rename. */
		struct stat st;
		if (fstatat(b.dirfd, b.name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			errno = EEXIST;
		else
			rc = renameat(a.dirfd, a.name, b.dirfd, b.name);
	}
	rc = rc == 0 ? 0 : neg_errno();
	px_at_done(&a);
	px_at_done(&b);
	return rc;
}

static int px_link(void *be, const char *from, const char *to)
{
	struct px_at a, b;
	int rc = px_parent(be, from, &a);
	if (rc)
		return rc;
	rc = px_parent(be, to, &b);
	if (rc) {
		px_at_done(&a);
		return rc;
	}
	/* No AT_SYMLINK_FOLLOW: following could name a file outside the root. */
	rc = linkat(a.dirfd, a.name, b.dirfd, b.name, 0) == 0 ? 0 : neg_errno();
	px_at_done(&a);
	px_at_done(&b);
	return rc;
}

static int px_symlink(void *be, const char *target, const char *linkpath)
{
	struct px_at at;
	int rc = px_parent(be, linkpath, &at);
	if (rc)
		return rc;
	/* The target is stored as text; under a root it resolves inside it. */
	rc = symlinkat(target, at.dirfd, at.name) == 0 ? 0 : neg_errno();
	px_at_done(&at);
	return rc;
}

static int px_readlink(void *be, const char *path, char **out)
{
	int fd = px_open_path(be, path, O_PATH | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	char buf[PATH_MAX];
	ssize_t n = readlinkat(fd, "", buf, sizeof(buf));
	int rc = n < 0 ? neg_errno() : 0;
	close(fd);
	if (rc)
		return rc == -ENOENT ? -EINVAL : rc; /* "" on a non-link: not a link */
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	*out = strndup(buf, (size_t)n);
	return *out ? 0 : -ENOMEM;
}

/* "/a/./b/../c" → "/a/c"; ".." at the top stays at the top. */
static char *px_lexical(const char *path)
{
	size_t n = strlen(path);
	char *o = malloc(n + 2);
	if (!o)
		return NULL;
	size_t len = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		size_t c = strcspn(p, "/");
		if (c == 0)
			break;
		if (c == 1 && p[0] == '.') {
			/* nothing */
		} else if (c == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && o[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			o[len++] = '/';
			memcpy(o + len, p, c);
			len += c;
		}
		p += c;
	}
	if (len == 0)
		o[len++] = '/';
	o[len] = 0;
	return o;
}

/* Canonical path of an existing object, as the client sees it. */
static int px_canon(struct px *px, const char *path, char **out)
{
	if (px->root < 0) {
		*out = realpath(path, NULL);
		return *out ? 0 : neg_errno();
	}
	char *tmp;
	path = px_path(px, path, &tmp);
	if (!path)
		return -ENOMEM;
	int fd = px_openat2(px->root, path, O_PATH, 0);
	if (fd < 0) {
		free(tmp);
		return fd;
	}
	char link[64], buf[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);
	close(fd);
	size_t rl = strlen(px->root_real);
	if (n > 0 && buf[0] == '/') {
		buf[n] = 0;
		if (strcmp(px->root_real, "/") == 0) {
			free(tmp);
			*out = strdup(buf);
			return *out ? 0 : -ENOMEM;
		}
		if (strncmp(buf, px->root_real, rl) == 0 && (buf[rl] == '/' || buf[rl] == 0)) {
			free(tmp);
			*out = strdup(buf[rl] ? buf + rl : "/");
			return *out ? 0 : -ENOMEM;
		}
	}
	/* No /proc (or a path we cannot map): the kernel said it exists, and
	 * a lexical answer is good enough to show; every later use of it is
	 * resolved inside the root again anyway. */
	char *abs = malloc(strlen(path) + 2);
	if (abs)
		sprintf(abs, "/%s", path);
	free(tmp);
	if (!abs)
		return -ENOMEM;
	*out = px_lexical(abs);
	free(abs);
	return *out ? 0 : -ENOMEM;
}

static int px_realpath(void *be, const char *path, char **out)
{
	struct px *px = be;
	int rc = px_canon(px, path, out);
	if (rc != -ENOENT)
		return rc;
	/* A name that does not exist yet (an upload's destination): canonicalise
	 * its directory and append it, as clients expect. */
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return rc;
	char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return -ENOMEM;
	char *cdir = NULL;
	rc = px_canon(px, dir[0] ? dir : "/", &cdir);
	free(dir);
	if (rc)
		return rc;
	size_t dl = strlen(cdir);
	char *full = malloc(dl + strlen(name) + 2);
	if (!full) {
		free(cdir);
		return -ENOMEM;
	}
	sprintf(full, "%s%s%s", cdir, cdir[dl - 1] == '/' ? "" : "/", name);
	free(cdir);
	*out = full;
	return 0;
}

static int px_home(void *be, const char *user, char **out)
{
	struct px *px = be;
	struct passwd *pw = user ? getpwnam(user) : getpwuid(getuid());
	if (px->root >= 0) {
		/* Inside a root the session user's home is its top; other homes
		 * are not reachable. */
		if (user && (!pw || pw->pw_uid != getuid()))
			return -ENOENT;
		*out = strdup("/");
		return *out ? 0 : -ENOMEM;
	}
	const char *h = pw ? pw->pw_dir : NULL;
	if (!h && !user)
		h = getenv("HOME");
	if (!h || !h[0])
		return -ENOENT;
	*out = strdup(h);
	return *out ? 0 : -ENOMEM;
}

static bool px_name_lookup(struct px_name *cache, uint32_t id, bool group, char *buf, size_t len)
{
	struct px_name *c = &cache[id % PX_NAME_CACHE];
	if (!c->used || c->id != id) {
		*c = (struct px_name){ .id = id, .used = true };
		const char *name = NULL;
		if (group) {
			struct group *g = getgrgid(id);
			name = g ? g->gr_name : NULL;
		} else {
			struct passwd *p = getpwuid(id);
			name = p ? p->pw_name : NULL;
		}
		if (name && strlen(name) < sizeof(c->name)) {
			strcpy(c->name, name);
			c->found = true;
		}
	}
	if (!c->found)
		return false;
	snprintf(buf, len, "%s", c->name);
	return true;
}

static bool px_user_name(void *be, uint32_t uid, char *buf, size_t len)
{
	return px_name_lookup(((struct px *)be)->users, uid, false, buf, len);
}

static bool px_group_name(void *be, uint32_t gid, char *buf, size_t len)
{
	return px_name_lookup(((struct px *)be)->groups, gid, true, buf, len);
}

static int64_t px_now(void *be)
{
	return (int64_t)time(NULL);
}

const struct sftp_backend_ops px_ops = {
	.open = px_open,
	.close = px_close,
	.read = px_read,
	.read_pipe = px_read_pipe,
	.write = px_write,
	.write_pipe = px_write_pipe,
	.fstat = px_fstat,
	.fsetstat = px_fsetstat,
	.fsync = px_fsync,
	.lock = px_lock,
	.fstatvfs = px_fstatvfs,
	.copy = px_copy,
	.opendir = px_opendir,
	.readdir = px_readdir,
	.closedir = px_closedir,
	.stat = px_stat,
	.setstat = px_setstat,
	.statvfs = px_statvfs,
	.remove = px_remove,
	.mkdir = px_mkdir,
	.rmdir = px_rmdir,
	.rename = px_rename,
	.link = px_link,
	.symlink = px_symlink,
	.readlink = px_readlink,
	.realpath = px_realpath,
	.home = px_home,
	.user_name = px_user_name,
	.group_name = px_group_name,
	.now = px_now,
};

int px_new(const char *root, const char *start, struct px **out)
{
	struct px *px = calloc(1, sizeof(*px));
	if (!px)
		return -ENOMEM;
	px->root = -1;
	/* Best effort: without it payloads are spliced from stdin directly. */
	px->wpipe[0] = px->wpipe[1] = -1;
	if (pipe2(px->wpipe, O_CLOEXEC | O_NONBLOCK) == 0)
		fcntl(px->wpipe[1], F_SETPIPE_SZ, PX_WPIPE_SIZE);
	else
		px->wpipe[0] = px->wpipe[1] = -1;
	if (root) {
		px->root = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		px->root_real = realpath(root, NULL);
		if (px->root < 0 || !px->root_real) {
			int rc = neg_errno();
			px_free(px);
			return rc;
		}
		/* Fail closed: without openat2 there is no confinement. */
		int fd = px_openat2(px->root, ".", O_PATH | O_DIRECTORY, 0);
		if (fd < 0) {
			px_free(px);
			return fd;
		}
		close(fd);
		if (start) {
			/* The start directory must exist inside the root; it is
			 * kept as its canonical name there. */
			int rc = px_canon(px, start, &px->start);
			struct stat st;
			fd = rc ? rc : px_openat2(px->root, px->start, O_PATH | O_DIRECTORY, 0);
			if (fd < 0 || fstat(fd, &st) < 0) {
				rc = fd < 0 ? fd : neg_errno();
				if (fd >= 0)
					close(fd);
				px_free(px);
				return rc;
			}
			close(fd);
			if (strcmp(px->start, "/") == 0) {
				free(px->start); /* the root itself: nothing to join */
				px->start = NULL;
			}
		}
	}
	*out = px;
	return 0;
}

void px_free(struct px *px)
{
	if (!px)
		return;
	if (px->root >= 0)
		close(px->root);
	if (px->wpipe[0] >= 0) {
		close(px->wpipe[0]);
		close(px->wpipe[1]);
	}
	free(px->root_real);
	free(px->start);
	free(px);
}

/*
 * Seccomp allowlist of this file (wicket-sftp-server's profile): the
 * filesystem calls above, what fdopendir/readdir, realpath and the
 * passwd/group lookups for long names make, and nothing that executes,
 * signals, traces, mounts or talks to the network.
 */
SYSCALLS(posix) = {
	SC("openat"), SC("openat2"), SC("open"), SC("close"), SC("read"), SC("lseek"),
	SC("pread64"), SC("pwrite64"), SC("ftruncate"), SC("fsync"), SC("fdatasync"), SC("flock"),
	SC("copy_file_range"), SC("splice"), SC("fstat"), SC("newfstatat"), SC("statx"), SC("lstat"),
	SC("stat"), SC("fstatfs"), SC("statfs"), SC("getdents64"), SC("mkdirat"), SC("mkdir"),
	SC("unlinkat"), SC("unlink"), SC("rmdir"), SC("renameat"), SC("renameat2"),
	SC("rename"), SC("symlinkat"), SC("symlink"), SC("linkat"), SC("link"),
	SC("readlinkat"), SC("readlink"), SC("faccessat2"), SC("faccessat"), SC("access"), SC("fchmodat"), SC("fchmodat2"), SC("chmod"),
	SC("fchmod"), SC("fchownat"), SC("utimensat"), SC("getcwd"), SC("getuid"),
	SC("getgid"), SC("geteuid"), SC("getegid"), SC("time"), SC("clock_gettime"),
	SC("gettimeofday"), SC_EQ("fcntl", 1, F_GETFD), SC_EQ("fcntl", 1, F_GETFL),
	SC_EQ("fcntl", 1, F_SETFD), SC_END,
};
