/* SPDX-License-Identifier: MIT */
/*
 * docker/NAME: what the docker CLI (with its DOCKER_HOST, DOCKER_CONTEXT
 * and contexts) tells about a container, shared by the opener and
 * `wicket list`.
 */
#ifndef WICKET_DOCKER_H
#define WICKET_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct docker_info {
	pid_t pid; /* its first process, as the daemon's machine numbers it */
	bool running, paused;
	char id[80];
};

/*
 * docker_inspect() - state of container @name.  0, or -errno with @err
 * set to one line starting with @label: docker missing (-ENOENT), daemon
 * unreachable (-ECONNREFUSED), no such container (-ESRCH).
 */
int docker_inspect(const char *label, const char *name, struct docker_info *di, char *err,
		   size_t errlen);

/* Does the container have a wicketd of its own (`docker exec NAME wicketd --version`)? */
bool docker_has_agent(const char *name);

/*
 * docker_names() - "NAME\tSTATE\n" per container (`docker ps -a`), into
 * @out.  0, or -errno with @err set as for docker_inspect().
 */
int docker_names(char *out, size_t outlen, char *err, size_t errlen);

/* Is @name something docker could call a container (and no option)? */
bool docker_name_ok(const char *name);

#endif
