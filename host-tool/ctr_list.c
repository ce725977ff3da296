/* SPDX-License-Identifier: MIT */
/*
 * `wicket list`, the containers: one section per engine (a function each),
 * every running container with the target to write and how it would be
 * reached.  An engine that is not installed is left out (said with -v).
 */
#include "ctr_list.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr.h"
#include "log.h"
#include "target.h"

/* Print @rows under one header; the widths fit the longest target. */
static void print_rows(const struct ctr_row *rows, size_t n, bool *header, bool after)
{
	int w = 9;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(rows[i].target) > w)
			w = (int)strlen(rows[i].target);
	if (!*header && n) {
		if (after)
			putchar('\n'); /* below the libvirt domains */
		printf("%-*s  %-12s  %-8s  %s\n", w, "CONTAINER", "ID", "STATE", "REACHED");
		*header = true;
	}
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-12s  %-8s  %s\n", w, rows[i].target, rows[i].id, rows[i].state,
		       rows[i].how);
}

/* 1 listed (maybe none running), 0 left out (not installed), -1 failed. */
static int list_podman(bool *header, bool after)
{
	char agent[PATH_MAX], err[1024];
	struct ctr_opts o = { .agent = target_find_static_agent(agent, sizeof(agent)),
			      .label = "podman" };
	struct ctr_row *rows;
	size_t n;
	int r = ctr_podman_list(&o, &rows, &n, err, sizeof(err));
	const char *why = strncmp(err, "podman: ", 8) == 0 ? err + 8 : err;
	if (r == -ENOENT) {
		log_info("list: no podman section: %s", why);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "wicket: list: podman: %s\n", why);
		return -1;
	}
	if (!n)
		log_info("list: no running podman containers");
	print_rows(rows, n, header, after);
	free(rows);
	return 1;
}

int ctr_list(bool *listed)
{
	bool header = false;
	int failed = 0;
	int r = list_podman(&header, *listed);
	if (r > 0)
		*listed = true;
	else if (r < 0)
		failed = 1;
	/* docker's lines (none when it is not installed), set apart as a section. */
	char *dk = NULL;
	size_t dkn = 0;
	FILE *mem = open_memstream(&dk, &dkn);
	if (mem) {
		ctr_list_docker(mem);
		fclose(mem);
		if (dkn)
			printf("%s%s", *listed || header ? "\n" : "", dk);
		free(dk);
	}
	fflush(stdout);
	return failed ? -1 : 0;
}
