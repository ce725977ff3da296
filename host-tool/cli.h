/* SPDX-License-Identifier: MIT */
/* Command-line pieces shared by every wicket command. */
#ifndef WICKET_CLI_H
#define WICKET_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "tp.h"

enum share_mode { SHARE_AUTO = 0, SHARE_NO, SHARE_ONLY };

/* Defaults of the mux options (stated in --help). */
#define MUX_DEFAULT_PERSIST 60
#define MUX_DEFAULT_KEEPALIVE 10

/* Options that may appear before or after the command word. */
struct globals {
	const char *cmd; /* the command word, for -h/--help after it (NULL before) */
	const char *proxy_cmd;
	const char *uri; /* -c/--connect: libvirt URI for vm/NAME and list */
	FILE *pktlog;
	enum share_mode share; /* --share, else $WICKET_SHARE, else auto */
	bool share_set;
	int persist;	       /* --persist SECONDS for a mux we start; -1 forever */
	int keepalive;	       /* --keepalive SECONDS on a mux's link; 0 off */
	int compress;	       /* -C/--compress 1, --no-compress 0, else -1: serial/ and slow lines */
	/* containers (transports/ctr.h) */
	const char *tools;	 /* exec/shell --tools: the toolbox program, else NULL */
	const char *tools_path;	 /* --tools-path: where the toolbox is looked for */
	const char *context;	 /* --context: kubectl context */
	const char *agent_image; /* --agent-image: k8s debug container image */
};

/*
 * Whether a command's own connection (no mux) asks the agent for
 * zlib@wicket: -C, or a serial/ target (see open_target_direct).
 */
extern bool wicket_compress;

/* The defaults above, and $WICKET_SHARE. */
void globals_init(struct globals *g);

/*
 * Global option at argv[*i]?  Consumes its argument; 1 yes, 0 no, -1 error.
 * -h/--help (g->cmd's help) and -V/--version print and exit 0.
 */
int parse_global(struct globals *g, int argc, char **argv, int *i);
/* The command word usage_error's hint names. */
void cli_set_command(const char *cmd);
/* Print "wicket: <fmt>" and a hint; returns the failure exit code. */
int usage_error(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
/*
 * Our helper program @name (wicket-libvirt, wicket-ssh): next to this
 * program (a build tree, or one install dir), else in libexec.  @buf, or
 * NULL when neither is executable (@buf then holds the libexec path).
 */
const char *cli_helper_path(const char *name, char *buf, size_t len);
/* A command's own option at argv[*i]: 1 consumed, 0 not ours, -1 error (reported). */
typedef int (*cli_opt_fn)(void *ctx, int argc, char **argv, int *i);
/*
 * "CMD [OPTION...] TARGET": global options, then @opt's (may be NULL), then
 * exactly one TARGET, whose index goes to @target.  0, or the exit code
 * after the error was printed.
 */
int cli_one_target(int argc, char **argv, int i, struct globals *g, const char *cmd,
		   cli_opt_fn opt, void *ctx, int *target);
/*
 * Reach TARGET (or the proxy command): through its mux, started when none
 * runs (--share auto), or directly (--share no, or a target that is not
 * shared).  Prints the reason and returns -1 on failure.
 */
int open_target(const char *target, struct globals *g, struct tp *tp);
/* The stream itself, never through a mux; prints the reason, -1 on failure. */
int open_target_direct(const char *target, const struct globals *g, struct tp *tp);

#endif
