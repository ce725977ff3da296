/* SPDX-License-Identifier: MIT */
/*
 * Host side, inside transports/: entering a process's namespaces
 * (nsenter.c), the relay process that carries the agent's output to the
 * host tool (ctr_relay.c), and what docker.c shares with `wicket list`.
 */
#ifndef WICKET_CTR_ENTER_H
#define WICKET_CTR_ENTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctr.h"

/* What a caller of ctr_enter() knows about the process it names. */
struct ctr_target {
	const char *label; /* "pid/123", "docker/web": first word of every error */
	/* Said (in a DISCONNECT) when the process ends mid-session. */
	const char *ended;
	/* docker: the container's full id, which must appear in the process's
	 * cgroup paths (it is then this machine's process of that container,
	 * not a reused pid or a remote daemon's); NULL: no such check. */
	const char *expect_id;
};

/*
 * ctr_enter() - start the static agent in the namespaces of process @pid.
 * The stream is the agent's stdin and (through a relay process, @out->pid)
 * its stdout.  See README "Containers" for what the session keeps of the
 * process's confinement.  0, or -errno with @err set (one line, starting
 * with @t->label).
 */
int ctr_enter(pid_t pid, const struct ctr_opts *o, const struct ctr_target *t, struct tp *out,
	      char *err, size_t errlen);

/*
 * ctr_enter_check() - could ctr_enter() start the agent there?  Everything
 * it does before it forks (the checks, the cgroups, the memfd), undone.
 * 0, or -errno with @err set as ctr_enter() would.
 */
int ctr_enter_check(pid_t pid, const struct ctr_opts *o, const struct ctr_target *t, char *err,
		    size_t errlen);

/*
 * The relay: the helper process between the agent (or `docker exec`) and
 * the host tool.  It forwards the agent's output in whole packets only, so
 * that when the process it entered ends (@watch, a pidfd, turns readable)
 * or the agent dies, a DISCONNECT naming the reason can follow on a packet
 * boundary.  The agent's stderr is copied to ours with control characters
 * replaced.  Returns the exit status for the helper.
 */
struct ctr_relay {
	int agent_out; /* read end: the agent's stdout */
	int host_out;  /* write end: what the host tool reads */
	int agent_err; /* read end: the agent's stderr, or -1 */
	int err_to;    /* where that goes (our stderr), or -1 */
	int watch;     /* pidfd of the entered process, or -1 */
	pid_t child;   /* the agent (or docker exec): our child */
	const char *ended;
	/* Without @watch: asked after the child failed, true when the
	 * container has ended (docker inspect), or NULL. */
	bool (*gone)(const char *name);
	const char *name;
};
int ctr_relay_run(const struct ctr_relay *r);

/* Close every fd but those in @keep (negative entries are ignored). */
void ctr_close_fds_except(const int *keep, size_t n);

/* pidfd_open(2), or -errno. */
int ctr_pidfd_open(pid_t pid);

/*
 * docker.c: run the docker CLI with @argv (argv[0] "docker"), stdin
 * /dev/null, capturing stdout into @out and the first line of stderr into
 * @errline.  The exit status, 127 when docker cannot be run (errno in
 * *@exec_errno), -1 on a timeout.
 */
int ctr_docker_run(char *const *argv, char *out, size_t outlen, char *errline, size_t errlen,
		   int *exec_errno, int timeout_s);

#endif
