/* SPDX-License-Identifier: MIT */
/* `wicket list`, docker's part (see ctr_list.h). */
#include "ctr_list.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctr_enter.h"
#include "docker.h"
#include "target.h"

/* @err without its leading "LABEL: ". */
static const char *why_of(const char *err, const char *label)
{
	size_t n = strlen(label);
	if (strncmp(err, label, n) == 0 && err[n] == ':' && err[n + 1] == ' ')
		return err + n + 2;
	return err;
}

static void one(FILE *out, const char *name, const char *state, const char *agent)
{
	char label[300], err[512];
	snprintf(label, sizeof(label), "docker/%s", name);
	if (strcmp(state, "running") != 0) {
		fprintf(out, "%s  %s  not reachable: not running\n", label, state);
		return;
	}
	if (docker_has_agent(name)) {
		fprintf(out, "%s  %s  agent inside\n", label, state);
		return;
	}
	struct docker_info di;
	if (docker_inspect(label, name, &di, err, sizeof(err)) < 0) {
		fprintf(out, "%s  %s  not reachable: %s\n", label, state, why_of(err, label));
		return;
	}
	struct ctr_opts o = { .agent = agent, .label = label };
	struct ctr_target t = { .label = label, .ended = "", .expect_id = di.id };
	if (ctr_enter_check(di.pid, &o, &t, err, sizeof(err)) < 0)
		fprintf(out, "%s  %s  not reachable: %s\n", label, state, why_of(err, label));
	else
		fprintf(out, "%s  %s  brought in\n", label, state);
}

void ctr_list_docker(FILE *out)
{
	size_t cap = 1 << 20;
	char *names = malloc(cap), err[512];
	if (!names)
		return;
	int r = docker_names(names, cap, err, sizeof(err));
	if (r == -ENOENT) {
		free(names); /* no docker here: nothing to say */
		return;
	}
	if (r < 0) {
		fprintf(out, "docker  -  not reachable: %s\n", why_of(err, "docker"));
		free(names);
		return;
	}
	char buf[PATH_MAX];
	const char *agent = target_find_static_agent(buf, sizeof(buf));
	char *save = NULL;
	for (char *ln = strtok_r(names, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(ln, '\t');
		if (!tab)
			continue;
		*tab = 0;
		one(out, ln, tab + 1, agent);
	}
	free(names);
}
