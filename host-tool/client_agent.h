/* SPDX-License-Identifier: MIT */
/*
 * `wicket exec/shell -A`: the agent's auth-agent@openssh.com channels (one
 * per connection to SSH_AUTH_SOCK in the session, agent/agentfwd.c) are
 * bridged to our own $SSH_AUTH_SOCK, as ssh -A does.  The guest can then
 * ask our agent to sign for as long as the session lasts.
 */
#ifndef WICKET_CLIENT_AGENT_H
#define WICKET_CLIENT_AGENT_H

#include "conn.h"
#include "loop.h"
#include "sockchan.h"

/* The local agent's socket for -A, or NULL (with a warning: the session goes on). */
const char *client_agent_sock(void);
/*
 * Take an incoming auth-agent channel: 0 with @ch bridged to @sock, else an
 * OPEN_* reason with *@msg.
 */
uint32_t client_agent_open(struct loop *l, struct sockchan_list *list, const char *sock,
			   struct chan *ch, const char **msg);

#endif
