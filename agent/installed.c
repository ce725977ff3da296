/* SPDX-License-Identifier: MIT */
/*
 * --use-installed: the static agent, brought into a container by wicket,
 * hands its stream to the container's own wicketd when there is one.  The
 * host then needs no look into the container before starting us (one
 * `podman exec` instead of an inspect and an exec), and a container that
 * ships its own agent (and its policy) is still served by it.
 *
 * We run inside the container already (its mount namespace and root, its
 * PATH from the engine), so the search and the exec are the container's
 * own: nothing of the host is looked at.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define INSTALLED_DIRS "/usr/sbin:/usr/local/sbin"

/* An executable regular file that is not this program (a memfd copy of it, say). */
static bool installed_candidate(const char *path, const struct stat *self)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return false;
	return !(self && st.st_dev == self->st_dev && st.st_ino == self->st_ino);
}

static bool installed_find(char *out, size_t len)
{
	const char *envp = getenv("PATH");
	char path[4096 + 64];
	snprintf(path, sizeof(path), "%s:%s", envp && *envp ? envp : "/usr/bin:/bin", INSTALLED_DIRS);
	struct stat self, *sp = stat("/proc/self/exe", &self) == 0 ? &self : NULL;
	for (char *save = NULL, *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (d[0] != '/')
			continue; /* a relative PATH entry names nothing fixed */
		int w = snprintf(out, len, "%s%swicketd", d, d[strlen(d) - 1] == '/' ? "" : "/");
		if (w > 0 && (size_t)w < len && installed_candidate(out, sp))
			return true;
	}
	return false;
}

void agent_use_installed(int fd)
{
	char path[PATH_MAX];
	if (!installed_find(path, sizeof(path))) {
		log_info("the container has no wicketd of its own: serving with this one");
		return;
	}
	log_info("the container has its own agent: %s (handing the stream over to it)", path);
	/* On stdin/stdout with --stdio: every wicketd version knows that. */
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) {
		log_warn("cannot hand the stream to %s: %s; serving with this one", path,
			 strerror(errno));
		return;
	}
	close(fd); /* --fd is 3 or above */
	char *argv[] = { path, (char *)"--stdio", NULL };
	execv(path, argv);
	log_warn("cannot run %s: %s; serving with this one", path, strerror(errno));
	/* Still ours, on the descriptor it came on. */
	if (dup3(0, fd, O_CLOEXEC) < 0)
		_exit(1);
}
