/* SPDX-License-Identifier: MIT */
/*
 * pid/PID: what is read of the process with the host's view, before any
 * fork (nsenter.c): its /proc status, namespaces, cgroups (with the
 * cgroup.procs files to join them, found in our own mounts) and LSM
 * label.  Only kernel-made files are read, through the /proc/PID
 * directory fd that the pidfd proved to be the process.
 */
#include "nsenter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- reading /proc ---- */

/* Read all of @name under @dirfd (NUL-terminated).  Length, or -errno. */
ssize_t nse_read_at(int dirfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	return (ssize_t)got;
}

static const char *field(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ':')
			return p + n + 1;
	return NULL;
}

int nse_parse_status(const char *text, struct pstatus *s)
{
	const char *p;
	if (!(p = field(text, "State")))
		return -EINVAL;
	while (*p == ' ' || *p == '\t')
		p++;
	s->state = *p;
	const char *ug[2] = { field(text, "Uid"), field(text, "Gid") };
	for (int k = 0; k < 2; k++) {
		if (!ug[k])
			return -EINVAL;
		char *end;
		const char *q = ug[k];
		for (int i = 0; i < 4; i++, q = end) {
			unsigned long v = strtoul(q, &end, 10);
			if (end == q)
				return -EINVAL;
			(k ? s->gid : s->uid)[i] = v;
		}
	}
	if (!(p = field(text, "Groups")))
		return -EINVAL;
	s->ngroups = 0;
	for (;;) {
		char *end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			break;
		unsigned long v = strtoul(p, &end, 10);
		if (s->ngroups >= MAX_GROUPS)
			return -E2BIG;
		s->groups[s->ngroups++] = (gid_t)v;
		p = end;
	}
	const char *cn[4] = { "CapInh", "CapPrm", "CapEff", "CapBnd" };
	uint64_t *cv[4] = { &s->cap_inh, &s->cap_prm, &s->cap_eff, &s->cap_bnd };
	for (int i = 0; i < 4; i++) {
		if (!(p = field(text, cn[i])))
			return -EINVAL;
		*cv[i] = strtoull(p, NULL, 16);
	}
	return 0;
}

/* 1 when our namespace @name is the process's, 0 when not, -errno. */
int nse_ns_same(int procfd, const char *name)
{
	char path[64];
	struct stat a, b;
	snprintf(path, sizeof(path), "/proc/self/ns/%s", name);
	if (stat(path, &a) < 0)
		return errno == ENOENT ? 1 : -errno; /* a kind this kernel lacks */
	snprintf(path, sizeof(path), "ns/%s", name);
	if (fstatat(procfd, path, &b, 0) < 0)
		return -errno;
	return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static int open_beneath(int dirfd, const char *rel, int flags)
{
#ifdef SYS_openat2
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return fd;
#endif
	if (strstr(rel, "..")) {
		errno = EINVAL;
		return -1;
	}
	return openat(dirfd, rel, flags | O_CLOEXEC | O_NOFOLLOW);
}

/* mountinfo's octal escapes (\040 for a space) undone in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* Is every comma-separated word of @need among those of @have? */
static bool words_in(const char *need, const char *have)
{
	char nb[256];
	snprintf(nb, sizeof(nb), "%s", need);
	char *save = NULL;
	for (char *w = strtok_r(nb, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(w);
		bool found = false;
		for (const char *h = have; h && *h; h = strchr(h, ','), h = h ? h + 1 : NULL)
			if (strncmp(h, w, n) == 0 && (h[n] == ',' || h[n] == 0)) {
				found = true;
				break;
			}
		if (!found)
			return false;
	}
	return true;
}

__attribute__((format(printf, 4, 5))) int nse_fail(char *err, size_t errlen, int e,
						       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return e < 0 ? e : -e;
}

/*
 * The cgroup.procs file of each hierarchy the process is in, found in our
 * own mounts (v1 hierarchies by their controllers, the v2 one by type).
 * Opened now, with our credentials, written by the relay once the agent's
 * process exists.  Hierarchies not mounted here are left alone.
 */
int nse_open_cgroups(struct entry *e, const char *cg, char *err, size_t errlen)
{
	const char *L = e->t->label;
	size_t cap = 1 << 20;
	char *mi = malloc(cap);
	if (!mi)
		return nse_fail(err, errlen, ENOMEM, "%s: out of memory", L);
	int self = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	ssize_t n = self < 0 ? -errno : nse_read_at(self, "mountinfo", mi, cap);
	if (self >= 0)
		close(self);
	if (n < 0) {
		free(mi);
		return nse_fail(err, errlen, (int)n, "%s: reading our mountinfo: %s", L,
			    strerror((int)-n));
	}
	char *cgcopy = strdup(cg);
	char *save = NULL;
	int r = 0;
	/* A hierarchy named twice would be a cgroup whose name holds a line
	 * break, made to look like another: refuse rather than guess. */
	char seen[MAX_CGROUPS * 2][128];
	int nseen = 0;
	for (char *line = strtok_r(cgcopy, "\n", &save); line && !r;
	     line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = 0;
		const char *ctrls = c1 + 1, *path = c2 + 1;
		bool v2 = strcmp(line, "0") == 0 && !*ctrls;
		char id1[128], id2[128];
		snprintf(id1, sizeof(id1), "#%.100s", line);
		snprintf(id2, sizeof(id2), "=%.100s", ctrls);
		for (int i = 0; i < nseen && !r; i++)
			if (strcmp(seen[i], id1) == 0 || (*ctrls && strcmp(seen[i], id2) == 0))
				r = nse_fail(err, errlen, EPERM,
					 "%s: its /proc/PID/cgroup names hierarchy %s twice: refusing "
					 "to guess its cgroups",
					 L, line);
		if (r)
			break;
		if (nseen + 2 <= (int)(sizeof(seen) / sizeof(seen[0]))) {
			memcpy(seen[nseen++], id1, sizeof(id1));
			memcpy(seen[nseen++], id2, sizeof(id2));
		}
		if (path[0] != '/')
			continue;
		if (strncmp(path, "/..", 3) == 0) {
			r = nse_fail(err, errlen, EPERM,
				 "%s: its cgroup %s is outside our cgroup namespace", L, path);
			break;
		}
		/* Find the mount of this hierarchy that shows the path. */
		char mp[PATH_MAX] = "", rel[PATH_MAX] = "";
		char *ms = NULL;
		char *mcopy = mi; /* strtok_r on a private copy per hierarchy */
		char *mdup = strdup(mcopy);
		for (char *m = strtok_r(mdup, "\n", &ms); m; m = strtok_r(NULL, "\n", &ms)) {
			char *f[6];
			char *fs = NULL;
			int nf = 0;
			char *dash = strstr(m, " - ");
			if (!dash)
				continue;
			*dash = 0;
			for (char *w = strtok_r(m, " ", &fs); w && nf < 6; w = strtok_r(NULL, " ", &fs))
				f[nf++] = w;
			if (nf < 5)
				continue;
			char *tail = dash + 3, *ts = NULL;
			char *fstype = strtok_r(tail, " ", &ts);
			strtok_r(NULL, " ", &ts); /* source */
			char *super = strtok_r(NULL, " ", &ts);
			if (!fstype || !super)
				continue;
			if (v2 ? strcmp(fstype, "cgroup2") != 0
			       : (strcmp(fstype, "cgroup") != 0 || !words_in(ctrls, super)))
				continue;
			char root[PATH_MAX];
			snprintf(root, sizeof(root), "%s", f[3]);
			unescape(root);
			size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
			if (rl && (strncmp(path, root, rl) != 0 || (path[rl] && path[rl] != '/')))
				continue;
			snprintf(mp, sizeof(mp), "%s", f[4]);
			unescape(mp);
			snprintf(rel, sizeof(rel), "%s", path + rl);
			break;
		}
		free(mdup);
		if (!mp[0])
			continue; /* not mounted here: nothing to join */
		if (e->ncg >= MAX_CGROUPS) {
			r = nse_fail(err, errlen, E2BIG, "%s: too many cgroup hierarchies", L);
			break;
		}
		const char *sub = rel;
		while (*sub == '/')
			sub++;
		char procs[PATH_MAX];
		snprintf(procs, sizeof(procs), "%s%scgroup.procs", sub, *sub ? "/" : "");
		int dfd = open(mp, O_PATH | O_DIRECTORY | O_CLOEXEC);
		int fd = dfd < 0 ? -1 : open_beneath(dfd, procs, O_WRONLY);
		int oe = errno;
		if (dfd >= 0)
			close(dfd);
		snprintf(e->cgwhat[e->ncg], sizeof(e->cgwhat[0]), "%.60s (%.30s)", path,
			 v2 ? "v2" : ctrls);
		if (fd < 0) {
			if (e->privileged)
				r = nse_fail(err, errlen, oe, "%s: cannot join its cgroup %s: %s", L,
					 e->cgwhat[e->ncg], strerror(oe));
			continue; /* not ours to join: the session stays in our cgroup */
		}
		e->cgfd[e->ncg++] = fd;
	}
	free(cgcopy);
	free(mi);
	return r;
}

void nse_read_lsm(struct entry *e)
{
	char b[sizeof(e->label)];
	e->lsm = LSM_NONE;
	ssize_t n = nse_read_at(e->procfd, "attr/apparmor/current", b, sizeof(b));
	enum lsm_kind k = LSM_APPARMOR;
	if (n <= 0) {
		n = nse_read_at(e->procfd, "attr/current", b, sizeof(b));
		k = LSM_SELINUX;
	}
	if (n <= 0)
		return; /* no LSM that labels processes is active */
	while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == 0))
		b[--n] = 0;
	if (!n || strcmp(b, "unconfined") == 0)
		return;
	char *mode = strstr(b, " (");
	if (mode && b[n - 1] == ')') {
		*mode = 0; /* AppArmor: "profile (enforce)" */
		if (k == LSM_SELINUX)
			k = LSM_APPARMOR_LEGACY;
	}
	if (strcmp(b, "unconfined") == 0)
		return;
	e->lsm = k;
	snprintf(e->label, sizeof(e->label), "%s", b);
}
