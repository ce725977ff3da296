/* SPDX-License-Identifier: MIT */
/*
 * wicket cp: scp-style copies between the host and a guest over SFTP.
 * Operands, recursion, temp-file-and-rename, resume, progress; the sftp
 * protocol itself lives in sftp_client.c.
 *
 * The guest is untrusted: in downloads every name from READDIR is checked,
 * and local files are only ever created relative to an already-open
 * directory fd with O_NOFOLLOW/O_EXCL, so nothing the server says can make
 * us write outside the destination.
 */
#include "cp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "loop.h"
#include "progress.h"
#include "sftp_client.h"
#include "target.h"

/* A remote tree deeper than this is refused (a server can fake depth). */
#define CP_MAX_DEPTH 128
/* Entries kept per remote directory listing. */
#define CP_MAX_ENTRIES (1u << 20)
/* ".NAME.wicket-XXXXXX": the NAME part is cut so the whole fits NAME_MAX. */
#define TMP_TAG ".wicket-"
#define TMP_NAME_MAX (NAME_MAX - 1 - (sizeof(TMP_TAG) - 1) - 6)

static void freep(void *p)
{
	free(*(void **)p);
}

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define AUTOFREE __attribute__((cleanup(freep)))
#define AUTOCLOSE __attribute__((cleanup(closep)))

struct cp {
	struct sftp *s;
	const char *target;
	bool recursive, preserve, quiet, resume;
	mode_t umask;
	struct progress pr;
	int failures;
	bool fatal_reported;
	int sigfd;
	int signo;
	struct watch wsig;
};

/* Result of one item: CP_OK, CP_FAILED (reported, go on), CP_STOP (session over). */
enum { CP_OK = 0, CP_FAILED = 1, CP_STOP = -1 };

/* ---- messages ---- */

static void msg_path(char *out, size_t len, const char *path)
{
	sv_printable(sv_from_cstr(path), out, len);
}

static int cp_report(struct cp *cp, bool remote, const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* "wicket: cp: PATH: REASON" (remote paths as TARGET:PATH); the copy goes on. */
static int cp_report(struct cp *cp, bool remote, const char *path, const char *fmt, va_list ap)
{
	char p[PATH_MAX], m[600];
	vsnprintf(m, sizeof(m), fmt, ap);
	msg_path(p, sizeof(p), path);
	progress_clear(&cp->pr);
	fprintf(stderr, "wicket: cp: %s%s%s: %s\n", remote ? cp->target : "", remote ? ":" : "", p,
		m);
	cp->failures++;
	return CP_FAILED;
}

static int cp_fail(struct cp *cp, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cp_rfail(struct cp *cp, const char *rpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int cp_fail(struct cp *cp, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cp_report(cp, false, path, fmt, ap);
	va_end(ap);
	return r;
}

static int cp_rfail(struct cp *cp, const char *rpath, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cp_report(cp, true, rpath, fmt, ap);
	va_end(ap);
	return r;
}

/* An sftp call on @path did not succeed: which kind of failure is it? */
static int cp_sftp(struct cp *cp, int r, const char *path)
{
	if (r == SFTP_OK)
		return CP_OK;
	if (r == SFTP_E_FATAL || r == SFTP_E_INTR)
		return CP_STOP;
	return cp_rfail(cp, path, "%s", sftp_error(cp->s));
}

/* ---- names and paths ---- */

static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	char *p = NULL;
	if (dl == 0)
		p = strdup(name);
	else if (dir[dl - 1] == '/')
		(void)!asprintf(&p, "%s%s", dir, name);
	else
		(void)!asprintf(&p, "%s/%s", dir, name);
	if (!p) {
		fprintf(stderr, "wicket: cp: out of memory\n");
		exit(WICKET_EXIT_FAILURE);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		fprintf(stderr, "wicket: cp: out of memory\n");
		exit(WICKET_EXIT_FAILURE);
	}
	return p;
}

/* @path without trailing slashes ("/" stays "/"); heap copy. */
static char *strip_slashes(const char *path)
{
	char *p = xstrdup(path);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0;
	return p;
}

/*
 * The name a source operand gets at the destination: its last component,
 * or NULL for "/", "." and ".." (then the contents merge into DST).
 */
static const char *top_name(const char *stripped)
{
	const char *b = strrchr(stripped, '/');
	b = b ? b + 1 : stripped;
	if (!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
		return NULL;
	return b;
}

/* Split a remote path into directory ("" = the server's cwd) and name. */
static void remote_split(const char *path, char **dir, const char **base)
{
	const char *sl = strrchr(path, '/');
	if (!sl) {
		*dir = xstrdup("");
		*base = path;
		return;
	}
	*base = sl + 1;
	size_t n = (size_t)(sl - path);
	*dir = strndup(path, n ? n : 1); /* "/x" lives in "/" */
	if (!*dir) {
		fprintf(stderr, "wicket: cp: out of memory\n");
		exit(WICKET_EXIT_FAILURE);
	}
}

static void rand_suffix(char out[7])
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[6];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long v = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
		for (int i = 0; i < 6; i++, v >>= 5)
			r[i] = (unsigned char)v;
	}
	for (int i = 0; i < 6; i++)
		out[i] = al[r[i] % (sizeof(al) - 1)];
	out[6] = 0;
}

/*
 * Temporary name beside the final one: ".NAME.wicket-XXXXXX" (random), or
 * ".NAME.wicket-part" under --resume so a later run finds it again.
 */
static void temp_name(char out[NAME_MAX + 1], const char *name, bool resume)
{
	char sfx[7];
	if (resume)
		snprintf(sfx, sizeof(sfx), "part");
	else
		rand_suffix(sfx);
	snprintf(out, NAME_MAX + 1, ".%.*s" TMP_TAG "%s", (int)TMP_NAME_MAX, name, sfx);
}

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

static mode_t attr_type(const struct sftp_attrs *a)
{
	return (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) ? (mode_t)(a->perm & S_IFMT) : 0;
}

/* Mode for a new file: no set-id bits ever (the other side is not trusted to
 * hand us those), and the creator's umask unless -p. */
static mode_t final_mode(const struct cp *cp, uint32_t perm, bool dir)
{
	mode_t m = (mode_t)perm & (dir ? 01777 : 0777);
	return cp->preserve ? m : m & ~cp->umask;
}

/* ---- progress ---- */

static void on_progress(void *arg, uint64_t done)
{
	struct cp *cp = arg;
	progress_update(&cp->pr, done);
}

static const char *base_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b && b[1] ? b + 1 : path;
}

/* ================================================================ upload */

static int up_item(struct cp *cp, int dirfd, const char *name, const char *lpath,
		   const char *rpath, bool top, int depth);

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
			if (attr_type(&a) && attr_type(&a) != S_IFREG)
				return cp_rfail(cp, tmp, "exists and is not a regular file");
			*off = (a.flags & SSH_FILEXFER_ATTR_SIZE) ? a.size : 0;
		} else if (r == SSH_FX_NO_SUCH_FILE) {
			r = sftp_stat(s, rpath, false, &a);
			if (r < 0)
				return CP_STOP;
			if (r == SFTP_OK && (a.flags & SSH_FILEXFER_ATTR_SIZE) &&
			    (!attr_type(&a) || attr_type(&a) == S_IFREG) && a.size <= size) {
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
		pflags = SSH_FXF_WRITE | SSH_FXF_CREAT | (*off ? 0 : SSH_FXF_TRUNC);
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
	return CP_OK;
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
	remote_split(rpath, &rdir, &rbase);
	char tn[NAME_MAX + 1];
	temp_name(tn, rbase, cp->resume);
	AUTOFREE char *tmp = path_join(rdir, tn);
	uint64_t size = (uint64_t)st.st_size, off = 0;
	uint32_t perm = (uint32_t)final_mode(cp, (uint32_t)st.st_mode, false);
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
	progress_start(&cp->pr, base_of(lpath), size, off);
	r = sftp_upload(s, &h, fd, off, size, on_progress, cp);
	/* Only when the created mode (perm | 0600) or a resumed file's may differ. */
	if (r == SFTP_OK && (cp->preserve || off || (perm & 0600) != 0600))
		r = sftp_fsetstat(s, &h, &fa);
	int rc = sftp_close(s, &h);
	if (r == SFTP_OK)
		r = rc;
	if (r == SFTP_OK) {
		r = sftp_rename(s, tmp, rpath);
		if (r != SFTP_OK) {
			int res = cp_sftp(cp, r, rpath);
			sftp_remove(s, tmp);
			return res;
		}
		progress_done(&cp->pr);
		return CP_OK;
	}
	int res;
	if (r == SFTP_E_LOCAL)
		res = cp_fail(cp, lpath, "%s", sftp_error(s));
	else
		res = cp_sftp(cp, r, rpath);
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
	remote_split(rpath, &rdir, &rbase);
	char tn[NAME_MAX + 1];
	temp_name(tn, rbase, false);
	AUTOFREE char *tmp = path_join(rdir, tn);
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
	__attribute__((cleanup(closedirp))) DIR *d = fdopendir(d2);
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
	uint32_t perm = (uint32_t)final_mode(cp, (uint32_t)st.st_mode, true);
	int r = sftp_stat(s, rpath, true, &a);
	if (r == SFTP_OK) {
		if (attr_type(&a) != S_IFDIR)
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
		AUTOFREE char *lp = path_join(lpath, names[i]);
		AUTOFREE char *rp = path_join(rpath, names[i]);
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

static int upload(struct cp *cp, char **srcs, int nsrc, const char *dst_arg)
{
	struct sftp *s = cp->s;
	AUTOFREE char *dst = strip_slashes(*dst_arg ? dst_arg : ".");
	bool slash = dst_arg[0] && dst_arg[strlen(dst_arg) - 1] == '/';
	struct sftp_attrs a;
	bool dst_dir = false;
	int r = sftp_stat(s, dst, true, &a);
	if (r == SFTP_OK) {
		dst_dir = attr_type(&a) == S_IFDIR;
		if (!dst_dir && (nsrc > 1 || slash))
			return cp_rfail(cp, dst_arg, "Not a directory");
	} else if (r == SSH_FX_NO_SUCH_FILE) {
		if (nsrc > 1)
			return cp_rfail(cp, dst_arg, "%s", sftp_error(s));
	} else {
		return cp_sftp(cp, r, dst_arg);
	}
	for (int i = 0; i < nsrc; i++) {
		AUTOFREE char *src = strip_slashes(srcs[i]);
		const char *nm = top_name(src);
		AUTOFREE char *rpath = dst_dir && nm ? path_join(dst, nm) : xstrdup(dst);
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

/* ============================================================== download */

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
			temp_name(tmp, name, false);
			fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				    0600);
			if (fd >= 0 || errno != EEXIST)
				break;
		}
		if (fd < 0)
			cp_fail(cp, lpath, "cannot create a temporary file: %s", strerror(errno));
		return fd;
	}
	temp_name(tmp, name, true);
	struct stat st;
	fd = openat(dirfd, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			cp_fail(cp, lpath, "%s exists and is not a regular file", tmp);
			return -1;
		}
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
		*off = (uint64_t)st.st_size;
		return fd;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		cp_fail(cp, lpath, "cannot create %s: %s", tmp, strerror(errno));
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
	r = sftp_download(s, &h, fd, off, size, on_progress, cp, &end);
	int rc = sftp_close(s, &h);
	if (r == SFTP_OK && rc < 0)
		r = rc;
	int res = CP_OK;
	if (r == SFTP_E_LOCAL)
		res = cp_fail(cp, lpath, "%s", sftp_error(s));
	else if (r != SFTP_OK)
		res = cp_sftp(cp, r, rpath);
	mode_t mode = (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS)
			      ? final_mode(cp, a->perm, false)
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
		temp_name(tmp, name, false);
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
		AUTOFREE char *rp = path_join(rpath, e->name);
		AUTOFREE char *lp = path_join(lpath, e->name);
		int r = dl_item(cp, rp, &e->attrs, sub, e->name, lp, depth + 1);
		if (r != CP_OK)
			res = r;
	}
	rlist_free(&l);
	if (res == CP_STOP)
		return res;
	if ((created || cp->preserve) && (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) &&
	    fchmod(sub, final_mode(cp, a->perm, true)) < 0)
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
	switch (attr_type(a)) {
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

static int download(struct cp *cp, char **srcs, int nsrc, const char *dst_arg)
{
	struct sftp *s = cp->s;
	AUTOFREE char *dst = strip_slashes(dst_arg);
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
		AUTOFREE char *src = strip_slashes(*srcs[i] ? srcs[i] : ".");
		struct sftp_attrs a;
		int r = sftp_stat(s, src, true, &a);
		if (r != SFTP_OK) {
			if (cp_sftp(cp, r, src) == CP_STOP)
				return CP_STOP;
			continue;
		}
		const char *nm = top_name(src);
		bool is_dir = attr_type(&a) == S_IFDIR;
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
			AUTOFREE char *lpath = path_join(dst, nm);
			res = dl_item(cp, src, &a, dfd, nm, lpath, 0);
		} else {
			AUTOFREE char *parent = NULL;
			const char *lname;
			remote_split(dst, &parent, &lname);
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

/* ============================================================ operands */

/*
 * Length of the TARGET part of a remote operand TARGET:PATH, or 0 for a
 * local path.  Unix targets hold '/', so the split is at the first ':'
 * after something that is a target: unix/..., demo, a known KIND/..., or
 * (with --proxy-command) any label without '/'.  ./a:b is always local.
 */
static size_t remote_target_len(const char *arg, bool proxy)
{
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg)
		return 0;
	size_t n = (size_t)(colon - arg);
	if (n == 4 && memcmp(arg, "demo", 4) == 0)
		return n;
	static const char *const kinds[] = { "unix/", "vm/", "vsock/", "serial/", "podman/",
					     "docker/" };
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t kl = strlen(kinds[k]);
		if (n <= kl || strncmp(arg, kinds[k], kl) != 0)
			continue;
		if (kl == 6 && colon[1] >= '0' && colon[1] <= '9') {
			/* vsock/CID:PORT:PATH */
			const char *q = colon + 1;
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q == ':')
				n = (size_t)(q - arg);
		}
		return n;
	}
	if (proxy && !memchr(arg, '/', n))
		return n;
	return 0;
}

static int parse_size(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* ---- signals: the first INT/TERM/HUP stops the copy and cleans up ---- */

static short sig_want(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static void sig_ready(struct watch *w, short rev)
{
	struct cp *cp = w->data;
	struct signalfd_siginfo si;
	(void)rev;
	while (read(cp->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (!cp->signo) {
			cp->signo = (int)si.ssi_signo;
			sftp_interrupt(cp->s);
			/* Time to remove temp files, then give up. */
			sftp_set_deadline(cp->s, 5000);
		} else {
			sftp_set_deadline(cp->s, 0);
		}
	}
}

static const struct watch_ops sig_ops = { sig_want, sig_ready };

static const char cp_usage[] =
	"usage: wicket cp [-r] [-p] [-q] [--resume] SRC... DST   (see 'wicket --help')";

int cmd_cp(int argc, char **argv, int i, struct globals *g)
{
	static struct cp cp;
	cp = (struct cp){ .sigfd = -1 };
	struct sftp_opts so = { .pktlog = NULL };
	for (; i < argc; i++) {
		const char *a = argv[i];
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (r)
			continue;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || !a[1])
			break;
		if (strcmp(a, "--resume") == 0) {
			cp.resume = true;
		} else if (strcmp(a, "--recursive") == 0) {
			cp.recursive = true;
		} else if (strcmp(a, "--preserve") == 0) {
			cp.preserve = true;
		} else if (strcmp(a, "--quiet") == 0) {
			cp.quiet = true;
		} else if (strcmp(a, "--requests") == 0 || strcmp(a, "--buffer-size") == 0) {
			unsigned long long v;
			if (i + 1 >= argc)
				return usage_error("%s needs an argument", a);
			if (parse_size(argv[++i], &v) < 0 || v == 0)
				return usage_error("bad number '%s'", argv[i]);
			if (a[2] == 'r') {
				if (v > 1024)
					return usage_error("--requests: at most 1024, not '%s'",
							   argv[i]);
				so.requests = (unsigned)v;
			} else {
				if (v > SFTP_MAX_DATA)
					return usage_error("--buffer-size: at most 255K, not '%s'",
							   argv[i]);
				so.chunk = (uint32_t)v;
			}
		} else if (a[1] != '-') {
			for (const char *f = a + 1; *f; f++) {
				if (*f == 'r' || *f == 'R')
					cp.recursive = true;
				else if (*f == 'p')
					cp.preserve = true;
				else if (*f == 'q')
					cp.quiet = true;
				else
					return usage_error("cp: unknown option '%s'", a);
			}
		} else {
			return usage_error("cp: unknown option '%s'", a);
		}
	}
	int nops = argc - i;
	if (nops < 2) {
		fprintf(stderr, "wicket: cp needs a source and a destination\n%s\n", cp_usage);
		return WICKET_EXIT_FAILURE;
	}
	char **ops = argv + i;
	/* Classify operands; every remote one must name the same target. */
	bool proxy = g->proxy_cmd != NULL;
	size_t tl_dst = remote_target_len(ops[nops - 1], proxy);
	int nremote_src = 0;
	AUTOFREE char *target = NULL;
	for (int k = 0; k < nops; k++) {
		size_t tl = remote_target_len(ops[k], proxy);
		if (!tl)
			continue;
		if (k < nops - 1)
			nremote_src++;
		if (!target) {
			target = strndup(ops[k], tl);
			if (!target)
				return WICKET_EXIT_FAILURE;
		} else if (strlen(target) != tl || strncmp(target, ops[k], tl) != 0) {
			return usage_error("cp: all remote operands must name the same target "
					   "('%s' differs)", ops[k]);
		}
	}
	if (!target)
		return usage_error("cp: no remote operand (TARGET:PATH) in '%s ...'; use cp(1) "
				   "for local copies",
				   ops[0]);
	bool up = tl_dst != 0;
	if (up && nremote_src)
		return usage_error("cp: copies between two remote operands are not supported "
				   "('%s')",
				   ops[0]);
	if (!up && nremote_src != nops - 1)
		return usage_error("cp: mixed local and remote sources ('%s'); copy one way at "
				   "a time",
				   ops[0]);
	/* Paths without the TARGET: prefix. */
	size_t tlen = strlen(target);
	char **srcs = ops;
	for (int k = 0; k < nops; k++)
		if ((up && k == nops - 1) || (!up && k < nops - 1))
			ops[k] += tlen + 1;
	const char *dst = ops[nops - 1];
	if (!up && !*dst)
		return usage_error("cp: empty local destination%s", "");

	cp.target = target;
	mode_t um = umask(0);
	umask(um);
	cp.umask = um;
	progress_init(&cp.pr, !cp.quiet && isatty(2));
	signal(SIGPIPE, SIG_IGN);

	struct tp tp;
	if (open_target(target, g, &tp) < 0)
		return WICKET_EXIT_FAILURE;
	so.target = target;
	so.pktlog = g->pktlog;
	char err[600];
	cp.s = sftp_connect(&tp, &so, err, sizeof(err));
	if (!cp.s) {
		fprintf(stderr, "wicket: cp: %s\n", err);
		tp_close(&tp);
		return WICKET_EXIT_FAILURE;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	cp.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (cp.sigfd >= 0) {
		cp.wsig = (struct watch){ .fd = cp.sigfd, .ops = &sig_ops, .data = &cp };
		loop_add(sftp_loop(cp.s), &cp.wsig);
	}

	int res = up ? upload(&cp, srcs, nops - 1, dst) : download(&cp, srcs, nops - 1, dst);
	progress_clear(&cp.pr);
	int code = cp.failures ? 1 : 0;
	if (res == CP_STOP && !cp.signo) {
		fprintf(stderr, "wicket: cp: %s\n", sftp_error(cp.s));
		code = WICKET_EXIT_FAILURE;
	}
	loop_del(sftp_loop(cp.s), &cp.wsig);
	sftp_free(cp.s);
	tp_close(&tp);
	if (cp.sigfd >= 0)
		close(cp.sigfd);
	if (cp.signo) {
		/* Die of the signal, as the shell expects, now that temp files are gone. */
		signal(cp.signo, SIG_DFL);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(cp.signo);
		return 128 + cp.signo;
	}
	return code;
}
