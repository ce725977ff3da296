/* SPDX-License-Identifier: MIT */
#ifndef WICKET_CP_H
#define WICKET_CP_H

#include <stdio.h>

/* Options shared with every command (see main.c). */
struct globals {
	const char *proxy_cmd;
	FILE *pktlog;
};

/* Global option at argv[*i]?  Consumes its argument; 1 yes, 0 no, -1 error. */
int parse_global(struct globals *g, int argc, char **argv, int *i);

/* `wicket cp [OPTION...] SRC... DST`; argv[i] is the first word after "cp". */
int cmd_cp(int argc, char **argv, int i, struct globals *g);

#endif
