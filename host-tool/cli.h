/* SPDX-License-Identifier: MIT */
/* Command-line pieces shared by every wicket command. */
#ifndef WICKET_CLI_H
#define WICKET_CLI_H

#include <stdio.h>

#include "tp.h"

/* Options that may appear before or after the command word. */
struct globals {
	const char *proxy_cmd;
	const char *uri; /* -c/--connect: libvirt URI for vm/NAME and list */
	FILE *pktlog;
};

/* Global option at argv[*i]?  Consumes its argument; 1 yes, 0 no, -1 error. */
int parse_global(struct globals *g, int argc, char **argv, int *i);
/* Print "wicket: <fmt>" and a hint; returns the failure exit code. */
int usage_error(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
/* A command's own option at argv[*i]: 1 consumed, 0 not ours, -1 error (reported). */
typedef int (*cli_opt_fn)(void *ctx, int argc, char **argv, int *i);
/*
 * "CMD [OPTION...] TARGET": global options, then @opt's (may be NULL), then
 * exactly one TARGET, whose index goes to @target.  0, or the exit code
 * after the error was printed.
 */
int cli_one_target(int argc, char **argv, int i, struct globals *g, const char *cmd,
		   cli_opt_fn opt, void *ctx, int *target);
/* Open TARGET (or the proxy command); prints the reason and returns -1 on failure. */
int open_target(const char *target, struct globals *g, struct tp *tp);

#endif
