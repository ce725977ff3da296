/* SPDX-License-Identifier: MIT */
/*
 * wicket cp, guest to host: remote files and trees to local paths.
 *
 * The guest is untrusted: every name from READDIR is checked, and local
 * files are only ever created relative to an already-open directory fd with
 * O_NOFOLLOW/O_EXCL (directories with mkdirat, entered with O_NOFOLLOW), so
 * nothing the server says can make us write outside the destination.
 */
#include "cp_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

/* What READDIR may not give us: empty, '/', NUL, control characters. */
static bool name_suspicious(struct sv n)
{
	if (n.n == 0)
		return true;
	for (size_t i = 0; i < n.n; i++)
		if (n.p[i] == '/' || n.p[i] < 0x20 || n.p[i] == 0x7f)
			return true;
	return false;
}

/* ---- remote directory listings ---- */

struct rent {
	char *name;	  /* NULL when suspicious */
	char shown[300];  /* printable form for messages */
	bool dot;	  /* "." or ".." */
	struct sftp_attrs attrs;
};

struct rlist {
	struct rent *v;
	size_t n, cap;
	bool overflow, nomem;
};

static void rlist_add(void *arg, const struct sftp_name *nm)
{
	struct rlist *l = arg;
	if (l->n >= CP_MAX_ENTRIES) {
		l->overflow = true;
		return;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		struct rent *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv) {
			l->nomem = true;
			return;
		}
		l->v = nv;
		l->cap = nc;
	}
	struct rent *e = &l->v[l->n];
	*e = (struct rent){ .attrs = nm->attrs };
	e->dot = sv_eq(nm->name, ".") || sv_eq(nm->name, "..");
	/* Escape every byte a terminal might act on, and quote. */
	size_t o = 0;
	for (size_t i = 0; i < nm->name.n && o + 5 < sizeof(e->shown); i++) {
		unsigned char ch = nm->name.p[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '\\' || ch == '"')
			o += (size_t)snprintf(e->shown + o, sizeof(e->shown) - o, "\\x%02x", ch);
		else
			e->shown[o++] = (char)ch;
	}
	e->shown[o] = 0;
	if (!name_suspicious(nm->name) && !(e->name = sv_strdup(nm->name))) {
		l->nomem = true;
		return;
	}
	l->n++;
}

static void rlist_free(struct rlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

static int cmp_rent(const void *a, const void *b)
{
	const struct rent *x = a, *y = b;
	return strcmp(x->name ? x->name : x->shown, y->name ? y->name : y->shown);
}

/* Whole listing of a remote directory (handle closed again before we recurse). */
static int remote_list(struct cp *cp, const char *rpath, struct rlist *l)
{
	struct sftp *s = cp->s;
	struct sftp_handle h;
	int r = sftp_opendir(s, rpath, &h);
	if (r != SFTP_OK)
		return cp_sftp(cp, r, rpath);
	do
		r = sftp_readdir(s, &h, rlist_add, l);
	while (r == SFTP_OK && !l->overflow && !l->nomem);
	int rc = sftp_close(s, &h);
	if (r < 0 || rc < 0)
		return CP_STOP;
	if (l->overflow)
		return cp_rfail(cp, rpath, "more than %u directory entries", CP_MAX_ENTRIES);
	if (l->nomem)
		return cp_rfail(cp, rpath, "out of memory");
	if (r != SSH_FX_EOF)
		return cp_sftp(cp, r, rpath);
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_rent);
	return CP_OK;
}

static int dl_item(struct cp *cp, const char *rpath, struct sftp_attrs *a, int dirfd,
		   const char *name, const char *lpath, int depth);

/*
 * The --resume temp file has a fixed name, so two runs to one destination
 * would write it at once: the first holds an exclusive flock (released when
 * it exits, however it exits) and the second gives up.  Closes @fd on failure.
 */
static int dl_lock_temp(struct cp *cp, int fd, const char *tmp, const char *lpath)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		cp_fail(cp, lpath, "%s is locked: another wicket cp --resume is writing it", tmp);
	else
		cp_fail(cp, lpath, "cannot lock %s: %s", tmp, strerror(errno));
	close(fd);
	return -1;
}

/*
 * Open the local temp file in @dirfd.  Returns the fd (*@off = bytes to
 * keep), -1 after reporting a failure, -2 when --resume finds the file complete.
 */
static int dl_open_temp(struct cp *cp, int dirfd, const char *name, const char *lpath,
			uint64_t size, char tmp[NAME_MAX + 1], uint64_t *off)
{
	*off = 0;
	int fd;
	if (!cp->resume) {
		for (int tries = 0; tries < 100; tries++) {
			cp_temp_name(tmp, name, false);
			fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				    0600);
			if (fd >= 0 || errno != EEXIST)
				break;
		}
		if (fd < 0)
			cp_fail(cp, lpath, "cannot create a temporary file: %s", strerror(errno));
		return fd;
	}
	cp_temp_name(tmp, name, true);
	struct stat st;
	fd = openat(dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			cp_fail(cp, lpath, "%s exists and is not a regular file", tmp);
			return -1;
		}
		if (dl_lock_temp(cp, fd, tmp, lpath) < 0)
			return -1;
		*off = (uint64_t)st.st_size;
		if (*off > size) {
			*off = 0;
			if (ftruncate(fd, 0) < 0) {
				cp_fail(cp, lpath, "%s", strerror(errno));
				close(fd);
				return -1;
			}
		}
		return fd;
	}
	if (errno != ENOENT) {
		cp_fail(cp, lpath, "%s: %s", tmp, errno == ELOOP ? "is a symlink" : strerror(errno));
		return -1;
	}
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size <= size) {
		if ((uint64_t)st.st_size == size)
			return -2;
		/* Keep the partial copy's bytes: it becomes the temp file. */
		if (renameat(dirfd, name, dirfd, tmp) < 0) {
			cp_fail(cp, lpath, "%s", strerror(errno));
			return -1;
		}
		fd = openat(dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			cp_fail(cp, lpath, "%s", strerror(errno ? errno : EINVAL));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (dl_lock_temp(cp, fd, tmp, lpath) < 0)
			return -1;
		*off = (uint64_t)st.st_size;
		return fd;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			cp_fail(cp, lpath, "%s appeared meanwhile: another wicket cp --resume "
				"is writing it", tmp);
		else
			cp_fail(cp, lpath, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (dl_lock_temp(cp, fd, tmp, lpath) < 0)
		return -1;
	return fd;
}

static void set_times(struct timespec ts[2], const struct sftp_attrs *a)
{
	ts[0] = (struct timespec){ .tv_sec = (time_t)a->atime };
	ts[1] = (struct timespec){ .tv_sec = (time_t)a->mtime };
}

static int dl_file(struct cp *cp, const char *rpath, const struct sftp_attrs *a, int dirfd,
		   const char *name, const char *lpath)
{
	struct sftp *s = cp->s;
	uint64_t size = (a->flags & SSH_FILEXFER_ATTR_SIZE) ? a->size : UINT64_MAX;
	bool have_times = cp->preserve && (a->flags & SSH_FILEXFER_ATTR_ACMODTIME);
	char tmp[NAME_MAX + 1];
	uint64_t off = 0;
	struct sftp_handle h;
	int r = sftp_open(s, rpath, SSH_FXF_READ, NULL, &h);
	if (r != SFTP_OK)
		return cp_sftp(cp, r, rpath);
	AUTOCLOSE int fd = dl_open_temp(cp, dirfd, name, lpath, size, tmp, &off);
	if (fd < 0) {
		int rc = sftp_close(s, &h);
		if (rc < 0)
			return CP_STOP;
		if (fd == -2 && have_times) {
			struct timespec ts[2];
			set_times(ts, a);
			if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
				return cp_fail(cp, lpath, "%s", strerror(errno));
		}
		return fd == -2 ? CP_OK : CP_FAILED;
	}
	progress_start(&cp->pr, name, size == UINT64_MAX ? 0 : size, off);
	uint64_t end = off;
	r = sftp_download(s, &h, fd, off, size, cp_progress, cp, &end);
	/* Report before closing: the close would overwrite the error text. */
	int res = CP_OK;
	if (r == SFTP_E_LOCAL)
		res = cp_fail(cp, lpath, "%s", sftp_error(s));
	else if (r != SFTP_OK)
		res = cp_sftp(cp, r, rpath);
	if (r != SFTP_E_INTR) {
		int rc = sftp_close(s, &h);
		if (res == CP_OK && rc != SFTP_OK)
			res = cp_sftp(cp, rc, rpath);
	}
	mode_t mode = (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)
			      ? cp_final_mode(cp, a->perm, false)
			      : (0666 & ~cp->umask);
	if (res == CP_OK && fchmod(fd, mode) < 0)
		res = cp_fail(cp, lpath, "%s", strerror(errno));
	if (res == CP_OK && have_times) {
		struct timespec ts[2];
		set_times(ts, a);
		if (futimens(fd, ts) < 0)
			res = cp_fail(cp, lpath, "%s", strerror(errno));
	}
	int cfd = fd;
	fd = -1;
	if (close(cfd) < 0 && res == CP_OK)
		res = cp_fail(cp, lpath, "%s", strerror(errno));
	if (res == CP_OK && renameat(dirfd, tmp, dirfd, name) < 0)
		res = cp_fail(cp, lpath, "%s", strerror(errno));
	if (res == CP_OK) {
		progress_done(&cp->pr);
		return CP_OK;
	}
	/* Under --resume a partial temp file is the point to continue from. */
	if (!cp->resume || end == 0)
		unlinkat(dirfd, tmp, 0);
	return res;
}

static int dl_symlink(struct cp *cp, const char *rpath, const struct sftp_attrs *a, int dirfd,
		      const char *name, const char *lpath)
{
	AUTOFREE char *target = NULL;
	int r = sftp_readlink(cp->s, rpath, &target);
	if (r != SFTP_OK)
		return cp_sftp(cp, r, rpath);
	if (!*target || strlen(target) >= PATH_MAX)
		return cp_rfail(cp, rpath, "bad symlink target from remote");
	char tmp[NAME_MAX + 1];
	int e = EEXIST;
	for (int tries = 0; tries < 100 && e == EEXIST; tries++) {
		cp_temp_name(tmp, name, false);
		e = symlinkat(target, dirfd, tmp) == 0 ? 0 : errno;
	}
	if (e)
		return cp_fail(cp, lpath, "%s", strerror(e));
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int res = cp_fail(cp, lpath, "%s", strerror(errno));
		unlinkat(dirfd, tmp, 0);
		return res;
	}
	if (cp->preserve && (a->flags & SSH_FILEXFER_ATTR_ACMODTIME)) {
		struct timespec ts[2];
		set_times(ts, a);
		utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
	}
	return CP_OK;
}

/* Fill the open local directory @sub from remote directory @rpath. */
static int dl_dir_into(struct cp *cp, const char *rpath, const struct sftp_attrs *a, int sub,
		       const char *lpath, bool created, int depth)
{
	if (depth > CP_MAX_DEPTH)
		return cp_rfail(cp, rpath, "directory tree too deep");
	struct rlist l = { 0 };
	int res = remote_list(cp, rpath, &l);
	for (size_t i = 0; i < l.n && res != CP_STOP; i++) {
		struct rent *e = &l.v[i];
		if (e->dot)
			continue;
		if (!e->name) {
			res = cp_rfail(cp, rpath, "refusing suspicious name from remote: \"%s\"",
				      e->shown);
			continue;
		}
		AUTOFREE char *rp = cp_path_join(rpath, e->name);
		AUTOFREE char *lp = cp_path_join(lpath, e->name);
		int r = dl_item(cp, rp, &e->attrs, sub, e->name, lp, depth + 1);
		if (r != CP_OK)
			res = r;
	}
	rlist_free(&l);
	if (res == CP_STOP)
		return res;
	if ((created || cp->preserve) && (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) &&
	    fchmod(sub, cp_final_mode(cp, a->perm, true)) < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	if (cp->preserve && (a->flags & SSH_FILEXFER_ATTR_ACMODTIME)) {
		struct timespec ts[2];
		set_times(ts, a);
		if (futimens(sub, ts) < 0)
			return cp_fail(cp, lpath, "%s", strerror(errno));
	}
	return res;
}

static int dl_dir(struct cp *cp, const char *rpath, const struct sftp_attrs *a, int dirfd,
		  const char *name, const char *lpath, int depth)
{
	bool created = mkdirat(dirfd, name, 0700) == 0;
	if (!created && errno != EEXIST)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	/* Never through a symlink: an existing entry must be a real directory. */
	AUTOCLOSE int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return cp_fail(cp, lpath, "%s", errno == ELOOP || errno == ENOTDIR
							 ? "exists and is not a directory"
							 : strerror(errno));
	return dl_dir_into(cp, rpath, a, sub, lpath, created, depth);
}

static int dl_item(struct cp *cp, const char *rpath, struct sftp_attrs *a, int dirfd,
		   const char *name, const char *lpath, int depth)
{
	if (!(a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)) {
		/* The listing did not say what it is: ask. */
		int r = sftp_stat(cp->s, rpath, false, a);
		if (r != SFTP_OK)
			return cp_sftp(cp, r, rpath);
	}
	switch (cp_attr_type(a)) {
	case S_IFREG:
		return dl_file(cp, rpath, a, dirfd, name, lpath);
	case S_IFDIR:
		if (!cp->recursive)
			return cp_rfail(cp, rpath, "is a directory (not copied; use -r)");
		return dl_dir(cp, rpath, a, dirfd, name, lpath, depth);
	case S_IFLNK:
		return dl_symlink(cp, rpath, a, dirfd, name, lpath);
	case 0:
		/* No type from the server at all: try it as a file. */
		return dl_file(cp, rpath, a, dirfd, name, lpath);
	default:
		return cp_rfail(cp, rpath, "not a regular file, directory or symlink (skipped)");
	}
}

static int open_dir(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int cp_download(struct cp *cp, char **srcs, int nsrc, const char *dst_arg)
{
	struct sftp *s = cp->s;
	AUTOFREE char *dst = cp_strip_slashes(dst_arg);
	bool slash = dst_arg[strlen(dst_arg) - 1] == '/';
	struct stat st;
	bool dst_dir = false, exists = stat(dst, &st) == 0;
	if (exists) {
		dst_dir = S_ISDIR(st.st_mode);
		if (!dst_dir && (nsrc > 1 || slash))
			return cp_fail(cp, dst_arg, "Not a directory");
	} else if (errno != ENOENT || nsrc > 1) {
		return cp_fail(cp, dst_arg, "%s", strerror(errno));
	}
	for (int i = 0; i < nsrc; i++) {
		AUTOFREE char *src = cp_strip_slashes(*srcs[i] ? srcs[i] : ".");
		struct sftp_attrs a;
		int r = sftp_stat(s, src, true, &a);
		if (r != SFTP_OK) {
			if (cp_sftp(cp, r, src) == CP_STOP)
				return CP_STOP;
			continue;
		}
		const char *nm = cp_top_name(src);
		bool is_dir = cp_attr_type(&a) == S_IFDIR;
		if (is_dir && !cp->recursive) {
			cp_rfail(cp, src, "is a directory (not copied; use -r)");
			continue;
		}
		if (!is_dir && slash && !exists) {
			cp_fail(cp, dst_arg, "No such file or directory");
			continue;
		}
		int res;
		if (dst_dir && !nm) {
			if (!is_dir) {
				cp_rfail(cp, src, "not a directory");
				continue;
			}
			AUTOCLOSE int sub = open_dir(dst);
			if (sub < 0) {
				cp_fail(cp, dst, "%s", strerror(errno));
				continue;
			}
			res = dl_dir_into(cp, src, &a, sub, dst, false, 0);
		} else if (dst_dir) {
			AUTOCLOSE int dfd = open_dir(dst);
			if (dfd < 0) {
				cp_fail(cp, dst, "%s", strerror(errno));
				continue;
			}
			AUTOFREE char *lpath = cp_path_join(dst, nm);
			res = dl_item(cp, src, &a, dfd, nm, lpath, 0);
		} else {
			AUTOFREE char *parent = NULL;
			const char *lname;
			cp_path_split(dst, &parent, &lname);
			if (!*lname || strcmp(lname, ".") == 0 || strcmp(lname, "..") == 0) {
				cp_fail(cp, dst_arg, "cannot write to this name");
				continue;
			}
			AUTOCLOSE int dfd = open_dir(*parent ? parent : ".");
			if (dfd < 0) {
				cp_fail(cp, *parent ? parent : ".", "%s", strerror(errno));
				continue;
			}
			res = dl_item(cp, src, &a, dfd, lname, dst, 0);
		}
		if (res == CP_STOP)
			return CP_STOP;
	}
	return CP_OK;
}

