/* SPDX-License-Identifier: MIT */
/* "session" channels: pty, env, exec/shell/exec-argv@wicket, signals. */
#ifndef WICKET_SESSION_H
#define WICKET_SESSION_H

#include <sys/types.h>

#include "agent.h"
#include "conn.h"
#include "forward.h"
#include "loop.h"
#include "syscalls.h"

struct session_ctx {
	struct loop *loop;
	const struct agent_cfg *cfg;
	const struct agent_user *user; /* who sessions run as */
	struct fwd_ctx *fwd;	       /* agent forwarding's channels go with the forwards' */
	struct session *list;
};

/* Accept a session channel: sets ch->ops and ch->data. */
int session_open(struct session_ctx *ctx, struct chan *ch);
/* A child was reaped. */
void session_child_exited(struct session_ctx *ctx, pid_t pid, int wstatus);
/* Per loop round: finish sessions whose child and output are done. */
void session_tick(struct session_ctx *ctx);

SYSCALLS_DECLARE(session);

#endif
