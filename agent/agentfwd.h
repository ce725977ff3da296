/* SPDX-License-Identifier: MIT */
/*
 * Agent forwarding (OpenSSH PROTOCOL 2.2, auth-agent-req@openssh.com): a
 * session that asked gets a Unix socket in a private directory (0700, the
 * session user's, made by the monitor) and SSH_AUTH_SOCK naming it; every
 * connection to it becomes an auth-agent@openssh.com channel to the peer,
 * whose ssh-agent answers.  Behind wicket's mux the request comes as
 * auth-agent-req@wicket and the channels as auth-agent@wicket naming the
 * session, so the mux can give them to the client that asked (PROTOCOL.md).
 */
#ifndef WICKET_AGENT_AGENTFWD_H
#define WICKET_AGENT_AGENTFWD_H

#include <stdbool.h>
#include <stdint.h>

#include "forward.h"

struct agentfwd;

/*
 * Listen for session channel @ch (its peer number goes into auth-agent@wicket
 * when @tagged).  NULL (reason logged) when it cannot.
 */
struct agentfwd *agentfwd_start(struct fwd_ctx *f, struct chan *ch, bool tagged);
/* The socket's path, for SSH_AUTH_SOCK. */
const char *agentfwd_path(const struct agentfwd *a);
/* The session is over: stop listening, remove the socket and its directory
 * (connections already made go on until they close). */
void agentfwd_stop(struct agentfwd *a);

#endif
