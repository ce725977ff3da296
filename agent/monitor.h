/* SPDX-License-Identifier: MIT */
/*
 * Privilege separation of one connection (OpenSSH privsep, smaller).
 *
 * The connection's first process becomes the MONITOR: it keeps the
 * agent's privileges, never reads a byte of the stream, and answers a
 * fixed table of requests from the protocol WORKER (its child) over a
 * SOCK_SEQPACKET socketpair.  The worker parses the stream under a seccomp
 * allowlist with no filesystem and asks the monitor for everything else:
 *
 *   SPAWN        fork, setsid, pty as controlling tty or three pipes, switch
 *                to the session user, execve; the pipe ends come back with
 *                SCM_RIGHTS.  A pty slave travels the other way.
 *   OPENPTY      a pty pair (master, slave), the slave owned by the session user
 *   KILL         a signal to one of the monitor's own children (or its group)
 *   RESOLVE      getaddrinfo() (reads /etc/hosts, talks DNS)
 *   UNIX_*       connect/bind/unlink a Unix socket path, as the session user
 *
 * and the monitor reports each child's exit (EXITED) instead of SIGCHLD.
 * Every message is one datagram: struct mon_msg, then n bytes of data.
 */
#ifndef WICKET_AGENT_MONITOR_H
#define WICKET_AGENT_MONITOR_H

#include <stdint.h>
#include <sys/types.h>

#include "agent.h"

enum mon_type {
	MON_SPAWN = 1,	 /* v: kind, argc, envc, blob length; fd: pty slave or none */
	MON_BLOB,	 /* part of the SPAWN blob: path, cwd, argv..., env... (NUL-ended) */
	MON_OPENPTY,	 /* -> fds: master, slave */
	MON_KILL,	 /* v: pid, signal, whole process group */
	MON_RESOLVE,	 /* v: ai_flags, ai_family, ai_socktype, has node; data: node, serv
			  * -> err = EAI_* code, v[0] errno for EAI_SYSTEM; data: mon_addr[] */
	MON_UNIX_CONNECT, /* data: path -> fd (non-blocking) */
	MON_UNIX_LISTEN, /* v: backlog; data: path -> fd, v: st_dev, st_ino */
	MON_UNIX_UNLINK, /* v: st_dev, st_ino; data: path (removed only if still that socket) */
	MON_MKDIR_PRIVATE, /* data: path -> v: st_dev, st_ino (mode 0700, the session user's) */
	MON_RMDIR,	 /* v: st_dev, st_ino; data: path (removed only if still that directory) */
	MON_REPLY = 64,	 /* err: 0 or an errno value; request-specific v, data, fds */
	MON_EXITED,	 /* v: pid, wait status */
};

enum mon_spawn_kind {
	MON_SPAWN_EXEC,	 /* exec, exec-argv@wicket: needs the exec feature */
	MON_SPAWN_SHELL, /* the login shell: needs the shell feature */
	MON_SPAWN_SFTP,	 /* the sftp subsystem: argv is the monitor's own */
};

struct mon_msg {
	uint32_t type;
	int32_t err;
	int64_t v[4];
	uint32_t n; /* bytes of data after this header */
	uint32_t pad;
};

/* One datagram at most; SPAWN blobs come in MON_BLOB pieces of this. */
#define MON_DGRAM_MAX (32u * 1024u)
#define MON_DATA_MAX (MON_DGRAM_MAX - sizeof(struct mon_msg))
/* argv + environment of one SPAWN (execve's own limit is about 2 MiB). */
#define MON_SPAWN_MAX (4u * 1024u * 1024u)
#define MON_MAX_ARGS 4096
#define MON_MAX_ENV 256
/* RESOLVE answers at most this many addresses. */
#define MON_MAX_ADDRS 16

struct mon_addr {
	int32_t family, socktype, protocol;
	uint32_t addrlen;
	uint8_t addr[128]; /* struct sockaddr_storage */
};

/*
 * monitor_run() - serve the worker @worker on @sock until it is gone.
 * Then hang up every child still running (SIGHUP to its process group, a
 * grace period, then SIGKILL), reap them all and return the worker's
 * wait status.
 */
int monitor_run(int sock, pid_t worker, const struct agent_cfg *cfg, const struct agent_user *u);

#endif
