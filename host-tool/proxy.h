/* SPDX-License-Identifier: MIT */
#ifndef WICKET_PROXY_H
#define WICKET_PROXY_H

#include "tp.h"

/*
 * Copy bytes both ways between our stdin/stdout and @tp until the agent's
 * side ends, so `plink -ssh-connection -proxycmd "wicket proxy T"` works.
 * Returns an exit code.
 */
int proxy_run(struct tp *tp, const char *target);

#endif
