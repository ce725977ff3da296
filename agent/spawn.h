/* SPDX-License-Identifier: MIT */
/*
 * The one narrow interface through which the protocol worker starts
 * processes or does anything else it is not allowed to do itself: each
 * call is a request to the privileged monitor (monitor.h) over the
 * socketpair set up by spawn_init().  Callers never fork themselves.
 */
#ifndef WICKET_SPAWN_H
#define WICKET_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "syscalls.h"

struct addrinfo;

enum spawn_kind {
	SPAWN_EXEC,	/* a command (exec, exec-argv@wicket) */
	SPAWN_SHELL,	/* the session user's login shell */
	SPAWN_SFTP,	/* the sftp subsystem (the monitor picks argv) */
};

struct spawn_req {
	char *const *argv;	/* argv[0] is the program's name as it will see it */
	const char *path;	/* program to execute; looked up in PATH if no '/' */
	char *const *envp;
	const char *cwd;	/* falls back to "/" if it cannot be entered */
	int pty_slave;		/* >= 0: becomes the controlling tty and stdio */
	enum spawn_kind kind;
};

struct spawn_res {
	pid_t pid;
	int in, out, err;	/* our ends of the child's stdio pipes; -1 with a pty */
	int exec_errno;		/* non-zero: execve failed, child exits 127/126 */
};

/* Worker side: talk to the monitor on @fd from now on. */
void spawn_init(int fd);
/* Read what the monitor sent; false once it is gone. */
bool spawn_poll(void);
/* Next reported child exit; false when none is queued. */
bool spawn_next_exit(pid_t *pid, int *wstatus);

int spawn_start(const struct spawn_req *req, struct spawn_res *res);
/* A pty pair, both O_CLOEXEC; 0 or -errno. */
int spawn_openpty(int *master, int *slave);
/* Signal a child spawn_start() started (@group: its process group too). */
int spawn_kill(pid_t pid, int sig, bool group);

/* getaddrinfo() done by the monitor; free with spawn_freeaddrinfo(). */
int spawn_getaddrinfo(const char *node, const char *serv, const struct addrinfo *hints,
		      struct addrinfo **res);
void spawn_freeaddrinfo(struct addrinfo *ai);
/* Unix-socket forwarding, done by the monitor as the session user. */
int spawn_unix_connect(const char *path);	/* fd (non-blocking) or -errno */
int spawn_unix_listen(const char *path, int backlog, dev_t *dev, ino_t *ino);
int spawn_unix_unlink(const char *path, dev_t dev, ino_t ino);
/* A directory of mode 0700 owned by the session user (agent forwarding);
 * removed again only while it is still that directory. */
int spawn_mkdir_private(const char *path, dev_t *dev, ino_t *ino);
int spawn_rmdir(const char *path, dev_t dev, ino_t ino);

SYSCALLS_DECLARE(spawn);

#endif
