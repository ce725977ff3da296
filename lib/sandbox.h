/* SPDX-License-Identifier: MIT */
/*
 * Isolation of a process that handles untrusted bytes: the protocol worker
 * of wicketd, wicket-sftp-server, and the network process of the host
 * tool's SSH server (host-tool/ssh/privsep.h).  One call does it all, in this order:
 * rlimits, the switch to an unprivileged user, dropping capabilities,
 * PR_SET_DUMPABLE 0, NO_NEW_PRIVS, then the seccomp allowlist of the
 * process's profile (a list of the per-file lists in lib/syscalls.h).
 * Anything outside the allowlist kills the whole process
 * (SECCOMP_RET_KILL_PROCESS): SIGSYS, no handler can intervene.
 *
 * For developers only: with WICKETD_TESTING=1 (or WICKET_TESTING=1) and WICKET_SECCOMP_DEBUG=1 in
 * the environment a forbidden syscall traps instead, its number is written
 * to stderr, and the process exits with status 159.
 */
#ifndef WICKET_SANDBOX_H
#define WICKET_SANDBOX_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "syscalls.h"

struct sandbox_profile {
	const char *name;
	const struct syscall_rule *const *lists; /* NULL-terminated */
	/* Syscalls that fail with this errno instead of killing (0: none). */
	const struct syscall_rule *refuse;
	int refuse_errno;
};

struct sandbox_opts {
	const struct sandbox_profile *profile;
	bool seccomp;		/* false: rlimits and privileges only (--no-sandbox skips all) */
	unsigned long nofile;	/* RLIMIT_NOFILE (0: leave it) */
	bool no_files;		/* RLIMIT_FSIZE 0: the process writes no regular file */
	bool no_fork;		/* RLIMIT_NPROC 0 */
	bool drop_user;		/* become uid/gid (from root) */
	uid_t uid;
	gid_t gid;
	bool drop_caps;		/* drop every capability (bounding set too) */
	bool keep_bind_service; /* ... except CAP_NET_BIND_SERVICE when staying uid 0 */
};

/* The C library itself: memory, exit, signal return. */
SYSCALLS_DECLARE(libc);

/*
 * Compile @p's filter now, in a parent, so that children isolating
 * themselves with it only install it.  Best effort: on failure they
 * compile it themselves.
 */
void sandbox_prepare(const struct sandbox_profile *p);
/* Isolate this process now.  0, or -errno (the process is then unusable). */
int sandbox_isolate(const struct sandbox_opts *o);
/* "name: N syscalls" and the list, argument rules shown. */
void sandbox_print(FILE *f, const struct sandbox_profile *p);
/* Is seccomp filtering compiled in? */
bool sandbox_available(void);

#endif
