/* SPDX-License-Identifier: MIT */
/*
 * Host side: reaching an agent inside a container (podman/NAME,
 * docker/NAME, k8s/[NS/]POD[/CONTAINER], pid/PID).  Each opener ends with
 * a stream (struct tp) to a wicketd inside the container: the container's
 * own wicketd when it has one, else the static agent (wicketd-static)
 * brought in from a sealed memfd -- nothing is written into the container.
 *
 * Errors are one line in @err, without the "wicket: " prefix, starting
 * with the target as the user wrote it ("podman/web: container is not
 * running").
 */
#ifndef WICKET_CTR_H
#define WICKET_CTR_H

#include <stdbool.h>
#include <stddef.h>

#include "tp.h"

struct ctr_opts {
	const char *agent;	 /* wicketd-static to bring in (found by the caller) */
	const char *tools;	 /* --tools: the toolbox program (busybox), else NULL */
	const char *context;	 /* k8s: --context, else NULL */
	const char *agent_image; /* k8s: image holding only the static agent */
	const char *label;	 /* the target as written, for messages */
};

/*
 * Fd layout of an agent brought in: stdin/stdout are the stream (podman:
 * the descriptor after the programs, given to the agent as "--fd N"); the
 * agent program is CTR_FD_AGENT while it starts; with --tools the toolbox
 * is CTR_FD_TOOLS and the agent gets "--toolbox-fd 4".
 */
enum { CTR_FD_AGENT = 3, CTR_FD_TOOLS = 4 };

int ctr_podman_open(const char *name, const struct ctr_opts *o, struct tp *out, char *err,
		    size_t errlen);
int ctr_docker_open(const char *name, const struct ctr_opts *o, struct tp *out, char *err,
		    size_t errlen);
int ctr_k8s_open(const char *spec, const struct ctr_opts *o, struct tp *out, char *err,
		 size_t errlen);
int ctr_pid_open(const char *pid, const struct ctr_opts *o, struct tp *out, char *err,
		 size_t errlen);

/*
 * After the stream to podman/@name ended: why, when the container can tell
 * (it stopped, or was removed): 1 with @why set, else 0.
 */
int ctr_podman_lost(const char *name, char *why, size_t len);

/* `wicket list`: one running container and how it would be reached. */
struct ctr_row {
	char target[272]; /* podman/NAME */
	char id[16];
	char state[32];
	char how[4200]; /* "agent inside (PATH)", "brought in (...)", "not reachable: why" */
};
/*
 * The running podman containers (@rows malloc'ed, free() it).  0, or
 * -errno with @err set (-ENOENT: podman is not installed).
 */
int ctr_podman_list(const struct ctr_opts *o, struct ctr_row **rows, size_t *nrows, char *err,
		    size_t errlen);

/*
 * A sealed, executable memfd holding a copy of the program at @path (what a
 * container may run but never change; CVE-2019-5736), or, where memfds may
 * not be executed (vm.memfd_noexec), an O_PATH descriptor of @path itself,
 * which must then be a root-owned file nobody else may write.  Either way
 * O_CLOEXEC.  The fd, or -errno with @err set.
 */
int ctr_program_fd(const char *path, const char *name, char *err, size_t errlen);

#endif
