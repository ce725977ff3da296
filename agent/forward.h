/* SPDX-License-Identifier: MIT */
/*
 * Port forwarding inside the guest (RFC 4254 section 7, OpenSSH PROTOCOL
 * 2.4): direct-tcpip and direct-streamlocal@openssh.com channels connect
 * out; tcpip-forward and streamlocal-forward@openssh.com global requests
 * listen, and each accepted connection becomes a forwarded-tcpip or
 * forwarded-streamlocal@openssh.com channel to the peer.
 */
#ifndef WICKET_AGENT_FORWARD_H
#define WICKET_AGENT_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "conn.h"
#include "loop.h"
#include "sockchan.h"

/* Listening forwards per connection. */
#define FWD_MAX_LISTENERS 64

struct fwd_listener;

struct fwd_ctx {
	struct loop *loop;
	struct conn *c;
	const struct agent_cfg *cfg;
	struct fwd_listener *listeners;
	unsigned nlisteners;
	struct sockchan_list streams;
	char msg[256]; /* OPEN_FAILURE text being returned */
};

void fwd_init(struct fwd_ctx *f, struct loop *l, struct conn *c, const struct agent_cfg *cfg);
/* Is @type a channel type fwd_open() serves? */
bool fwd_is_channel(struct sv type);
/* conn_ops.open for those types. */
uint32_t fwd_open(struct fwd_ctx *f, struct chan *ch, struct sv type, struct rd *args,
		  const char **msg);
/* A global request: true if it is ours (then *ok is the answer). */
bool fwd_global_request(struct fwd_ctx *f, struct sv name, struct rd *args, bool *ok);
/* The connection is over: stop every listener and leftover stream. */
void fwd_cleanup(struct fwd_ctx *f);

#endif
