/* SPDX-License-Identifier: MIT */
/* `wicket forward TARGET -L ...`: local port forwarding without ssh. */
#ifndef WICKET_FORWARD_H
#define WICKET_FORWARD_H

#include "cli.h"

/* argv[i] is the first word after "forward". */
int cmd_forward(int argc, char **argv, int i, struct globals *g);

#endif
