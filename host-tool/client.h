/* SPDX-License-Identifier: MIT */
/* The host side of one session channel: exec and shell. */
#ifndef WICKET_CLIENT_H
#define WICKET_CLIENT_H

#include <stdbool.h>
#include <stdio.h>

#include "tp.h"

/* Exit code for wicket's own failures (as ssh). */
#define WICKET_EXIT_FAILURE 255

struct client_opts {
	char **argv;		/* command for exec; NULL for a login shell */
	int argc;
	bool pty;
	bool no_stdin;		/* -n: send EOF at once */
	int escape;		/* escape character, -1 for none */
	const char *target;	/* for messages */
	FILE *pktlog;
	int keepalive;		/* seconds between IGNOREs on an idle link; 0 off */
	const char *agent_sock;	/* -A: our agent's socket for the session, or NULL */
};

/* Run the session over @tp; returns the exit code wicket should exit with. */
int client_run(struct tp *tp, const struct client_opts *o);

/*
 * This process's greeting nonce (conn_cfg.nonce): 16 random hex digits, so
 * an agent's answer to another host (one that gave up before us on the
 * same port) is never taken for ours.
 */
const char *client_nonce(void);

#endif
