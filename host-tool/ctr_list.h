/* SPDX-License-Identifier: MIT */
/* `wicket list`: the running containers of each engine found here. */
#ifndef WICKET_CTR_LIST_H
#define WICKET_CTR_LIST_H

#include <stdbool.h>

/*
 * Print the container sections (after the libvirt domains when *listed
 * says they were printed); sets *listed when a section could be listed.
 * 0, or -1 when an installed engine failed (said on stderr).
 */
int ctr_list(bool *listed);

#include <stdio.h>

/*
 * One line per docker container: "docker/NAME  STATE  HOW", HOW being
 * "agent inside" (its own wicketd), "brought in" (the static agent can be
 * started in its namespaces) or "not reachable: WHY".  Nothing when docker
 * is not installed; one "docker  -  not reachable: WHY" line when its daemon
 * does not answer.
 */
void ctr_list_docker(FILE *out);

#endif
