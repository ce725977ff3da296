/* SPDX-License-Identifier: MIT */
/*
 * wicket cp, host to guest: local files and trees to remote paths.  Each
 * file is written to a temporary name beside its final one and renamed into
 * place (posix-rename@openssh.com when offered).
 */
#include "cp_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int up_item(struct cp *cp, int dirfd, const char *name, const char *lpath,
		   const char *rpath, bool top, int depth);

/*
 * --resume appends to a fixed temp name, so two runs to one destination
 * would write it at once.  With lock@wicket (wicket-sftp-server) the first
 * holds a lock on it until its handle closes, however its session ends; the
 * second gives up here.  Only the lock holder trusts the size, so it is
 * taken again under the lock: *@off = bytes to keep.  Only called when the
 * server offers the lock; others have none and nothing changes there.
 */
static int up_lock_temp(struct cp *cp, const char *rpath, const char *tmp, uint64_t size,
			struct sftp_handle *h, uint64_t *off)
{
	struct sftp *s = cp->s;
	int r = sftp_lock(s, h);
	if (r == SSH_FX_FAILURE && strcmp(sftp_error(s), "locked by another client") == 0)
		r = cp_rfail(cp, rpath, "%s is locked: another wicket cp --resume is writing it",
			     tmp);
	else if (r == SFTP_OK) {
		struct sftp_attrs a;
		r = sftp_stat(s, tmp, false, &a);
		if (r == SFTP_OK) {
			*off = (a.flags & SSH_FILEXFER_ATTR_SIZE) && a.size <= size ? a.size : 0;
			struct sftp_attrs z = { .flags = SSH_FILEXFER_ATTR_SIZE, .size = 0 };
			if (!*off && (a.flags & SSH_FILEXFER_ATTR_SIZE) && a.size)
				r = sftp_fsetstat(s, h, &z); /* longer than the source: start over */
		}
		if (r == SFTP_OK)
			return CP_OK;
		r = cp_sftp(cp, r, tmp);
	} else {
		r = cp_sftp(cp, r, tmp);
	}
	if (!sftp_dead(s))
		sftp_close(s, h);
	return r;
}

/*
 * Open the remote temp file.  Returns CP_OK with *@off = bytes to keep,
 * 2 when --resume finds the copy already complete, or a failure.
 */
static int up_open_temp(struct cp *cp, const char *rpath, const char *rdir, const char *tmp,
			uint64_t size, uint32_t perm, struct sftp_handle *h, uint64_t *off)
{
	struct sftp *s = cp->s;
	struct sftp_attrs ca = { .flags = SSH_FILEXFER_ATTR_PERMISSIONS, .perm = perm | 0600 };
	uint32_t pflags = SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL;
	*off = 0;
	if (cp->resume) {
		struct sftp_attrs a;
		int r = sftp_stat(s, tmp, false, &a);
		if (r == SFTP_OK) {
			if (cp_attr_type(&a) && cp_attr_type(&a) != S_IFREG)
				return cp_rfail(cp, tmp, "exists and is not a regular file");
			*off = (a.flags & SSH_FILEXFER_ATTR_SIZE) ? a.size : 0;
		} else if (r == SSH_FX_NO_SUCH_FILE) {
			r = sftp_stat(s, rpath, false, &a);
			if (r < 0)
				return CP_STOP;
			if (r == SFTP_OK && (a.flags & SSH_FILEXFER_ATTR_SIZE) &&
			    (!cp_attr_type(&a) || cp_attr_type(&a) == S_IFREG) && a.size <= size) {
				if (a.size == size)
					return 2;
				/* Keep the partial copy's bytes: it becomes the temp file. */
				r = sftp_rename(s, rpath, tmp);
				if (r != SFTP_OK)
					return cp_sftp(cp, r, rpath);
				*off = a.size;
			}
		} else {
			return cp_sftp(cp, r, tmp);
		}
		if (*off > size)
			*off = 0;
		/* Truncating before the lock could cut a running copy's file. */
		pflags = SSH_FXF_WRITE | SSH_FXF_CREAT |
			 (*off || sftp_can_lock(s) ? 0 : SSH_FXF_TRUNC);
	}
	int r = sftp_open(s, tmp, pflags, &ca, h);
	if (r == SSH_FX_NO_SUCH_FILE) {
		/* Name the missing directory rather than our temp file. */
		struct sftp_attrs a;
		int rr = sftp_stat(s, *rdir ? rdir : ".", true, &a);
		if (rr < 0)
			return CP_STOP;
		if (rr != SFTP_OK)
			return cp_rfail(cp, *rdir ? rdir : ".", "%s", sftp_error(s));
		return cp_rfail(cp, rpath, "No such file or directory");
	}
	if (r != SFTP_OK)
		return cp_sftp(cp, r, rpath);
	return cp->resume && sftp_can_lock(s) ? up_lock_temp(cp, rpath, tmp, size, h, off) : CP_OK;
}

static int up_file(struct cp *cp, int dirfd, const char *name, const char *lpath,
		   const char *rpath, bool top)
{
	struct sftp *s = cp->s;
	AUTOCLOSE int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | (top ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cp_fail(cp, lpath, "not a regular file");
	AUTOFREE char *rdir = NULL;
	const char *rbase;
	cp_path_split(rpath, &rdir, &rbase);
	char tn[NAME_MAX + 1];
	cp_temp_name(tn, rbase, cp->resume);
	AUTOFREE char *tmp = cp_path_join(rdir, tn);
	uint64_t size = (uint64_t)st.st_size, off = 0;
	uint32_t perm = (uint32_t)cp_final_mode(cp, (uint32_t)st.st_mode, false);
	struct sftp_handle h;
	int r = up_open_temp(cp, rpath, rdir, tmp, size, perm, &h, &off);
	struct sftp_attrs fa = { .flags = SSH_FILEXFER_ATTR_PERMISSIONS, .perm = perm };
	if (cp->preserve) {
		fa.flags |= SSH_FILEXFER_ATTR_ACMODTIME;
		fa.atime = (uint32_t)st.st_atim.tv_sec;
		fa.mtime = (uint32_t)st.st_mtim.tv_sec;
	}
	if (r == 2) {
		/* --resume: already complete. */
		if (cp->preserve)
			return cp_sftp(cp, sftp_setstat(s, rpath, &fa), rpath);
		return CP_OK;
	}
	if (r != CP_OK)
		return r;
	progress_start(&cp->pr, cp_base_of(lpath), size, off);
	r = sftp_upload(s, &h, fd, off, size, cp_progress, cp);
	/* Only when the created mode (perm | 0600) or a resumed file's may differ. */
	if (r == SFTP_OK && (cp->preserve || off || (perm & 0600) != 0600))
		r = sftp_fsetstat(s, &h, &fa);
	int res = CP_OK;
	if (r != SFTP_OK) {
		/* Report first: the clean-up calls below overwrite the error text. */
		res = r == SFTP_E_LOCAL ? cp_fail(cp, lpath, "%s", sftp_error(s))
					: cp_sftp(cp, r, rpath);
		sftp_close(s, &h);
	} else {
		r = sftp_close(s, &h);
		if (r == SFTP_OK)
			r = sftp_rename(s, tmp, rpath);
		if (r != SFTP_OK)
			res = cp_sftp(cp, r, rpath);
	}
	if (res == CP_OK) {
		progress_done(&cp->pr);
		return CP_OK;
	}
	/* Under --resume a partial temp file is the point to continue from. */
	if (!cp->resume && !sftp_dead(s))
		sftp_remove(s, tmp);
	return res;
}

static int up_symlink(struct cp *cp, int dirfd, const char *name, const char *lpath,
		      const char *rpath)
{
	struct sftp *s = cp->s;
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	target[n] = 0;
	AUTOFREE char *rdir = NULL;
	const char *rbase;
	cp_path_split(rpath, &rdir, &rbase);
	char tn[NAME_MAX + 1];
	cp_temp_name(tn, rbase, false);
	AUTOFREE char *tmp = cp_path_join(rdir, tn);
	int r = sftp_symlink(s, target, tmp);
	if (r != SFTP_OK)
		return cp_sftp(cp, r, rpath);
	r = sftp_rename(s, tmp, rpath);
	if (r != SFTP_OK) {
		int res = cp_sftp(cp, r, rpath);
		sftp_remove(s, tmp);
		return res;
	}
	return CP_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Names in an open local directory, sorted; NULL with errno on failure. */
static char **local_list(int dfd, size_t *count)
{
	int d2 = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (d2 < 0)
		return NULL;
	AUTOCLOSEDIR DIR *d = fdopendir(d2);
	if (!d) {
		close(d2);
		return NULL;
	}
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			char **nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				goto fail;
			v = nv;
			cap = nc;
		}
		if (!(v[n] = strdup(e->d_name)))
			goto fail;
		n++;
		errno = 0;
	}
	if (errno)
		goto fail;
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*count = n;
	return v ? v : calloc(1, sizeof(*v));
fail:;
	int e2 = errno ? errno : ENOMEM;
	free_names(v, n);
	errno = e2;
	return NULL;
}

static int up_dir(struct cp *cp, int dirfd, const char *name, const char *lpath,
		  const char *rpath, bool top, int depth)
{
	struct sftp *s = cp->s;
	AUTOCLOSE int dfd =
		openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (top ? 0 : O_NOFOLLOW));
	if (dfd < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	struct stat st;
	if (fstat(dfd, &st) < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	if (depth > CP_MAX_DEPTH)
		return cp_fail(cp, lpath, "directory tree too deep");
	struct sftp_attrs a;
	bool created = false;
	uint32_t perm = (uint32_t)cp_final_mode(cp, (uint32_t)st.st_mode, true);
	int r = sftp_stat(s, rpath, true, &a);
	if (r == SFTP_OK) {
		if (cp_attr_type(&a) != S_IFDIR)
			return cp_rfail(cp, rpath, "exists and is not a directory");
	} else if (r == SSH_FX_NO_SUCH_FILE) {
		/* Writable for us until its contents are in; final mode at the end. */
		struct sftp_attrs ma = { .flags = SSH_FILEXFER_ATTR_PERMISSIONS,
					 .perm = perm | 0700 };
		r = sftp_mkdir(s, rpath, &ma);
		if (r != SFTP_OK)
			return cp_sftp(cp, r, rpath);
		created = true;
	} else {
		return cp_sftp(cp, r, rpath);
	}
	size_t n = 0;
	char **names = local_list(dfd, &n);
	if (!names)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	int res = CP_OK;
	for (size_t i = 0; i < n && res != CP_STOP; i++) {
		AUTOFREE char *lp = cp_path_join(lpath, names[i]);
		AUTOFREE char *rp = cp_path_join(rpath, names[i]);
		int rr = up_item(cp, dfd, names[i], lp, rp, false, depth + 1);
		if (rr != CP_OK)
			res = rr;
	}
	free_names(names, n);
	if (res == CP_STOP)
		return res;
	if (created || cp->preserve) {
		struct sftp_attrs fa = { .flags = SSH_FILEXFER_ATTR_PERMISSIONS, .perm = perm };
		if (cp->preserve) {
			fa.flags |= SSH_FILEXFER_ATTR_ACMODTIME;
			fa.atime = (uint32_t)st.st_atim.tv_sec;
			fa.mtime = (uint32_t)st.st_mtim.tv_sec;
		}
		if (cp->preserve || (perm | 0700) != perm) {
			int rr = cp_sftp(cp, sftp_setstat(s, rpath, &fa), rpath);
			if (rr != CP_OK)
				return rr;
		}
	}
	return res;
}

static int up_item(struct cp *cp, int dirfd, const char *name, const char *lpath,
		   const char *rpath, bool top, int depth)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, top ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
		return cp_fail(cp, lpath, "%s", strerror(errno));
	if (S_ISREG(st.st_mode))
		return up_file(cp, dirfd, name, lpath, rpath, top);
	if (S_ISDIR(st.st_mode)) {
		if (!cp->recursive)
			return cp_fail(cp, lpath, "is a directory (not copied; use -r)");
		return up_dir(cp, dirfd, name, lpath, rpath, top, depth);
	}
	if (S_ISLNK(st.st_mode))
		return up_symlink(cp, dirfd, name, lpath, rpath);
	return cp_fail(cp, lpath, "not a regular file, directory or symlink (skipped)");
}

int cp_upload(struct cp *cp, char **srcs, int nsrc, const char *dst_arg)
{
	struct sftp *s = cp->s;
	AUTOFREE char *dst = cp_strip_slashes(*dst_arg ? dst_arg : ".");
	bool slash = dst_arg[0] && dst_arg[strlen(dst_arg) - 1] == '/';
	struct sftp_attrs a;
	bool dst_dir = false;
	int r = sftp_stat(s, dst, true, &a);
	if (r == SFTP_OK) {
		dst_dir = cp_attr_type(&a) == S_IFDIR;
		if (!dst_dir && (nsrc > 1 || slash))
			return cp_rfail(cp, dst_arg, "Not a directory");
	} else if (r == SSH_FX_NO_SUCH_FILE) {
		if (nsrc > 1)
			return cp_rfail(cp, dst_arg, "%s", sftp_error(s));
	} else {
		return cp_sftp(cp, r, dst_arg);
	}
	for (int i = 0; i < nsrc; i++) {
		AUTOFREE char *src = cp_strip_slashes(srcs[i]);
		const char *nm = cp_top_name(src);
		AUTOFREE char *rpath = dst_dir && nm ? cp_path_join(dst, nm) : cp_strdup(dst);
		struct stat st;
		if (stat(srcs[i], &st) < 0) {
			cp_fail(cp, srcs[i], "%s", strerror(errno));
			continue;
		}
		if (!S_ISDIR(st.st_mode) && slash && r != SFTP_OK) {
			cp_rfail(cp, dst_arg, "No such file or directory");
			continue;
		}
		if (up_item(cp, AT_FDCWD, srcs[i], srcs[i], rpath, true, 0) == CP_STOP)
			return CP_STOP;
	}
	return CP_OK;
}

