/* SPDX-License-Identifier: MIT */
/* The libselinux backend of agent/selinux.h. */
#include "selinux.h"

#include "config.h"

#ifdef HAVE_SELINUX
#include <errno.h>
#include <fcntl.h>
#include <selinux/get_context_list.h>
#include <selinux/selinux.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool lib_enabled(void)
{
	return is_selinux_enabled() > 0;
}

static bool lib_enforcing(void)
{
	return security_getenforce() != 0; /* unknown counts as enforcing */
}

static int lib_default_context(const char *user, char **ctx)
{
	char *seuser = NULL, *level = NULL;
	/* Linux user → SELinux user and MLS level (seusers), then the context. */
	if (getseuserbyname(user, &seuser, &level) < 0)
		return -1;
	char *con = NULL;
	int r = get_default_context_with_level(seuser, level, NULL, &con);
	/* Raw now: the child writes it to the kernel as is (see lib_set_exec). */
	if (r == 0)
		r = selinux_trans_to_raw_context(con, ctx);
	int e = errno;
	freecon(con);
	free(seuser);
	free(level);
	errno = e;
	return r < 0 ? -1 : 0;
}

/*
 * setexeccon() by hand: the child shares the monitor's memory until execve
 * (agent/vspawn.c), and libselinux's version may allocate.
 */
static int lib_set_exec(const char *ctx)
{
	int fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = strlen(ctx) + 1;
	ssize_t w = write(fd, ctx, n);
	int e = errno;
	close(fd);
	if (w == (ssize_t)n)
		return 0;
	errno = w < 0 ? e : EIO;
	return -1;
}

static int lib_label_pty(const char *ctx, int fd)
{
	char *cur = NULL, *want = NULL;
	if (fgetfilecon(fd, &cur) < 0)
		return -1;
	security_class_t cls = string_to_security_class("chr_file");
	int r = cls ? security_compute_relabel(ctx, cur, cls, &want) : -1;
	if (r == 0)
		r = fsetfilecon(fd, want);
	int e = errno;
	freecon(cur);
	freecon(want);
	errno = e;
	return r;
}

static void lib_free(char *ctx)
{
	freecon(ctx);
}

static const struct agent_se_ops lib_ops = {
	.enabled = lib_enabled,
	.enforcing = lib_enforcing,
	.default_context = lib_default_context,
	.set_exec = lib_set_exec,
	.label_pty = lib_label_pty,
	.free_context = lib_free,
};

const struct agent_se_ops *agent_se_system(void)
{
	return &lib_ops;
}
#else
const struct agent_se_ops *agent_se_system(void)
{
	return NULL;
}
#endif
