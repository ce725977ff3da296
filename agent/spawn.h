/* SPDX-License-Identifier: MIT */
/*
 * The one narrow interface through which the agent starts processes.  A
 * later privilege-separated monitor implements the same call on the other
 * end of a socketpair; callers never fork themselves.
 */
#ifndef WICKET_SPAWN_H
#define WICKET_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

struct spawn_req {
	char *const *argv;	/* argv[0] is the program's name as it will see it */
	const char *path;	/* program to execute; looked up in PATH if no '/' */
	char *const *envp;
	const char *cwd;	/* falls back to "/" if it cannot be entered */
	int pty_slave;		/* >= 0: becomes the controlling tty and stdio */
};

struct spawn_res {
	pid_t pid;
	int in, out, err;	/* our ends of the child's stdio pipes; -1 with a pty */
	int exec_errno;		/* non-zero: execve failed, child exits 127/126 */
};

int spawn_start(const struct spawn_req *req, struct spawn_res *res);

#endif
