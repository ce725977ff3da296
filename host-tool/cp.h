/* SPDX-License-Identifier: MIT */
#ifndef WICKET_CP_H
#define WICKET_CP_H

#include <stdio.h>

#include "cli.h"
#include "tp.h"

/* `wicket cp [OPTION...] SRC... DST`; argv[i] is the first word after "cp". */
int cmd_cp(int argc, char **argv, int i, struct globals *g);

/*
 * --complete TARGET:PREFIX over @tp: print the remote names starting with
 * PREFIX, one a line, directories with a '/' (cp_complete.c).  Exit code.
 */
int cp_complete(struct tp *tp, const char *target, const char *prefix, FILE *pktlog);

#endif
