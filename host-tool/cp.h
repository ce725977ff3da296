/* SPDX-License-Identifier: MIT */
#ifndef WICKET_CP_H
#define WICKET_CP_H

#include "cli.h"

/* `wicket cp [OPTION...] SRC... DST`; argv[i] is the first word after "cp". */
int cmd_cp(int argc, char **argv, int i, struct globals *g);

#endif
