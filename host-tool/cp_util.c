/* SPDX-License-Identifier: MIT */
/* wicket cp: failure messages, paths and temporary names. */
#include "cp_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "client.h"

/* ".NAME.wicket-XXXXXX": the NAME part is cut so the whole fits NAME_MAX. */
#define TMP_TAG ".wicket-"
#define TMP_NAME_MAX (NAME_MAX - 1 - (sizeof(TMP_TAG) - 1) - 6)

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

int cp_fail(struct cp *cp, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cp_report(cp, false, path, fmt, ap);
	va_end(ap);
	return r;
}

int cp_rfail(struct cp *cp, const char *rpath, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cp_report(cp, true, rpath, fmt, ap);
	va_end(ap);
	return r;
}

/* An sftp call on @path did not succeed: which kind of failure is it? */
int cp_sftp(struct cp *cp, int r, const char *path)
{
	if (r == SFTP_OK)
		return CP_OK;
	if (r == SFTP_E_FATAL || r == SFTP_E_INTR)
		return CP_STOP;
	return cp_rfail(cp, path, "%s", sftp_error(cp->s));
}

/* ---- names and paths ---- */

char *cp_path_join(const char *dir, const char *name)
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

char *cp_strdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		fprintf(stderr, "wicket: cp: out of memory\n");
		exit(WICKET_EXIT_FAILURE);
	}
	return p;
}

/* @path without trailing slashes ("/" stays "/"); heap copy. */
char *cp_strip_slashes(const char *path)
{
	char *p = cp_strdup(path);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0;
	return p;
}

/*
 * The name a source operand gets at the destination: its last component,
 * or NULL for "/", "." and ".." (then the contents merge into DST).
 */
const char *cp_top_name(const char *stripped)
{
	const char *b = strrchr(stripped, '/');
	b = b ? b + 1 : stripped;
	if (!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
		return NULL;
	return b;
}

/* Split a remote path into directory ("" = the server's cwd) and name. */
void cp_path_split(const char *path, char **dir, const char **base)
{
	const char *sl = strrchr(path, '/');
	if (!sl) {
		*dir = cp_strdup("");
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
void cp_temp_name(char out[NAME_MAX + 1], const char *name, bool resume)
{
	char sfx[7];
	if (resume)
		snprintf(sfx, sizeof(sfx), "part");
	else
		rand_suffix(sfx);
	snprintf(out, NAME_MAX + 1, ".%.*s" TMP_TAG "%s", (int)TMP_NAME_MAX, name, sfx);
}

mode_t cp_attr_type(const struct sftp_attrs *a)
{
	return (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) ? (mode_t)(a->perm & S_IFMT) : 0;
}

/* Mode for a new file: no set-id bits ever (the other side is not trusted to
 * hand us those), and the creator's umask unless -p. */
mode_t cp_final_mode(const struct cp *cp, uint32_t perm, bool dir)
{
	mode_t m = (mode_t)perm & (dir ? 01777 : 0777);
	return cp->preserve ? m : m & ~cp->umask;
}

/* ---- progress ---- */

void cp_progress(void *arg, uint64_t done)
{
	struct cp *cp = arg;
	progress_update(&cp->pr, done);
}

const char *cp_base_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b && b[1] ? b + 1 : path;
}

