/* SPDX-License-Identifier: MIT */
/*
 * SELinux for sessions: each child runs in the session user's default
 * context (as sshd and login do), and its pty is relabelled to match.
 * The decision logic is here; the libselinux calls sit behind a const
 * vtable so the logic is unit-tested without an SELinux kernel.
 */
#ifndef WICKET_AGENT_SELINUX_H
#define WICKET_AGENT_SELINUX_H

#include <stdbool.h>

struct agent_se_ops {
	bool (*enabled)(void);
	bool (*enforcing)(void);
	/* The user's default context for a session started by us; 0 or -1 + errno. */
	int (*default_context)(const char *user, char **ctx);
	/* Next execve() of this thread lands in @ctx; 0 or -1 + errno. */
	int (*set_exec)(const char *ctx);
	/* Relabel the pty @fd for a session in @ctx; 0 or -1 + errno. */
	int (*label_pty)(const char *ctx, int fd);
	void (*free_context)(char *ctx);
};

/* libselinux's, or NULL when built without it. */
const struct agent_se_ops *agent_se_system(void);

struct agent_se {
	const struct agent_se_ops *ops; /* NULL: SELinux off, nothing to do */
	char *ctx;			/* sessions' exec context; NULL: the policy's transitions */
	int err;			/* non-zero: enforcing and no context, refuse sessions */
	bool enforcing;
};

/* Work out the context for @user's sessions (NULL user: "root"). */
void agent_se_init(struct agent_se *se, const struct agent_se_ops *ops, const char *user);
/* In the forked child, just before execve(): 0 or an errno to fail with. */
int agent_se_exec(const struct agent_se *se);
/* On a freshly opened pty slave for a session. */
void agent_se_pty(const struct agent_se *se, int fd);
void agent_se_free(struct agent_se *se);

#endif
