/* SPDX-License-Identifier: MIT */
/*
 * wicketd-static: user and group lookups from /etc/passwd and /etc/group
 * only.  A static glibc still follows nsswitch.conf past "files" and
 * dlopen()s the modules listed there (libnss_systemd, sss, ...): shared
 * objects of whatever system it runs on, which a static program cannot
 * host (it crashes), and which inside a container are the container's.
 * The link (agent/meson.build) routes the agent's and the sftp server's
 * calls here with -Wl,--wrap; the files are read in the mount namespace
 * the agent runs in, so they are the container's own.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

struct passwd *__wrap_getpwuid(uid_t uid);
struct passwd *__wrap_getpwnam(const char *name);
struct group *__wrap_getgrgid(gid_t gid);
struct group *__wrap_getgrnam(const char *name);
int __wrap_getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups);
int __wrap_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len,
		      struct passwd **res);
int __wrap_getgrnam_r(const char *name, struct group *gr, char *buf, size_t len,
		      struct group **res);

/* One passwd entry matching @name (or @uid when @name is NULL). */
static struct passwd *pw_find(const char *name, uid_t uid)
{
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return NULL;
	struct passwd *pw;
	int saved = errno;
	while ((pw = fgetpwent(f)))
		if (name ? strcmp(pw->pw_name, name) == 0 : pw->pw_uid == uid)
			break;
	fclose(f);
	errno = saved; /* not found is not an error */
	return pw;	/* fgetpwent's static storage */
}

static struct group *gr_find(const char *name, gid_t gid)
{
	FILE *f = fopen("/etc/group", "re");
	if (!f)
		return NULL;
	struct group *gr;
	int saved = errno;
	while ((gr = fgetgrent(f)))
		if (name ? strcmp(gr->gr_name, name) == 0 : gr->gr_gid == gid)
			break;
	fclose(f);
	errno = saved;
	return gr;
}

struct passwd *__wrap_getpwuid(uid_t uid)
{
	return pw_find(NULL, uid);
}

struct passwd *__wrap_getpwnam(const char *name)
{
	return name ? pw_find(name, 0) : NULL;
}

struct group *__wrap_getgrgid(gid_t gid)
{
	return gr_find(NULL, gid);
}

struct group *__wrap_getgrnam(const char *name)
{
	return name ? gr_find(name, 0) : NULL;
}

/* As glibc's: @group first, then every group listing @user; -1 when more
 * than *@ngroups, which then says how many there are. */
int __wrap_getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	int n = 0, max = *ngroups;
	if (n < max)
		groups[n] = group;
	n++;
	FILE *f = fopen("/etc/group", "re");
	if (f) {
		struct group *gr;
		while ((gr = fgetgrent(f))) {
			if (gr->gr_gid == group)
				continue;
			for (char **m = gr->gr_mem; m && *m; m++)
				if (strcmp(*m, user) == 0) {
					if (n < max)
						groups[n] = gr->gr_gid;
					n++;
					break;
				}
		}
		fclose(f);
	}
	*ngroups = n;
	return n > max ? -1 : n;
}

int __wrap_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len,
		      struct passwd **res)
{
	*res = NULL;
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return errno == ENOENT ? 0 : errno;
	int r;
	while ((r = fgetpwent_r(f, pw, buf, len, res)) == 0)
		if (strcmp(pw->pw_name, name) == 0)
			break;
	fclose(f);
	if (r == ENOENT) {
		*res = NULL;
		r = 0;
	}
	return r;
}

int __wrap_getgrnam_r(const char *name, struct group *gr, char *buf, size_t len,
		      struct group **res)
{
	*res = NULL;
	FILE *f = fopen("/etc/group", "re");
	if (!f)
		return errno == ENOENT ? 0 : errno;
	int r;
	while ((r = fgetgrent_r(f, gr, buf, len, res)) == 0)
		if (strcmp(gr->gr_name, name) == 0)
			break;
	fclose(f);
	if (r == ENOENT) {
		*res = NULL;
		r = 0;
	}
	return r;
}
