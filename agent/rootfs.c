/* SPDX-License-Identifier: MIT */
/*
 * --session-root: users and groups come from the session root's own
 * /etc/passwd and /etc/group.  The agent's C library would read the
 * agent's files (a debug container has none), and a static agent cannot
 * load the target's NSS modules anyway: plain files it is.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* @rel inside the root, resolved as if the root were "/". */
static FILE *root_fopen(int root_fd, const char *rel)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
	if (fd < 0)
		return NULL;
	FILE *f = fdopen((int)fd, "re");
	if (!f)
		close((int)fd);
	return f;
}

int agent_root_getpw(int root_fd, const char *name, uid_t uid, struct passwd *pw, char *buf,
		     size_t len)
{
	FILE *f = root_fopen(root_fd, "etc/passwd");
	if (!f)
		return -errno;
	struct passwd *r;
	int e;
	while ((e = fgetpwent_r(f, pw, buf, len, &r)) == 0) {
		if (name ? strcmp(r->pw_name, name) == 0 : r->pw_uid == uid) {
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return e == ENOENT ? -ENOENT : -e;
}

int agent_root_groups(int root_fd, const char *name, gid_t gid, gid_t *groups, int *n)
{
	int max = *n, k = 0;
	if (max > 0)
		groups[k++] = gid;
	FILE *f = root_fopen(root_fd, "etc/group");
	if (f) {
		char buf[16384];
		struct group g, *r;
		while (k < max && fgetgrent_r(f, &g, buf, sizeof(buf), &r) == 0) {
			if (r->gr_gid == gid)
				continue;
			for (char **m = r->gr_mem; m && *m; m++) {
				if (strcmp(*m, name) == 0) {
					groups[k++] = r->gr_gid;
					break;
				}
			}
		}
		fclose(f);
	}
	*n = k;
	return 0;
}
