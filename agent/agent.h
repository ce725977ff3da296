/* SPDX-License-Identifier: MIT */
/* wicketd: configuration and the per-connection server. */
#ifndef WICKET_AGENT_H
#define WICKET_AGENT_H

#include <stdbool.h>
#include <stdio.h>

#define AGENT_MAX_ENV_PATTERNS 32

struct agent_cfg {
	const char *env_allow[AGENT_MAX_ENV_PATTERNS]; /* fnmatch patterns */
	int nenv_allow;
	bool allow_exec, allow_shell, allow_sftp;
	const char *sftp_server;	/* path of wicket-sftp-server */
	bool sftp_read_only;
	FILE *pktlog;
	unsigned max_channels;
};

void agent_cfg_defaults(struct agent_cfg *cfg);

/* Serve one bare ssh-connection stream until it ends.  Returns 0, or 1 if
 * the connection ended with a protocol error. */
int agent_serve(int rfd, int wfd, const struct agent_cfg *cfg);

#endif
