/* SPDX-License-Identifier: MIT */
/* `wicket list`: the containers each engine knows, and how each is reached. */
#ifndef WICKET_CTR_LIST_H
#define WICKET_CTR_LIST_H

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
