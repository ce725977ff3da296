/* SPDX-License-Identifier: MIT */
/*
 * The protocol worker's seccomp profile: the union of the allowlists
 * declared beside the code the worker runs (SYSCALLS(...) in each file).
 * A syscall added to that code without its declaration kills the worker
 * with SIGSYS in the tests.  wicket-sftp-server has its own profile.
 */
#include "sandbox.h"
#include "session.h"
#include "spawn.h"
#include "syscalls.h"

SYSCALLS_DECLARE(loop);
SYSCALLS_DECLARE(conn);
SYSCALLS_DECLARE(fdpass);
SYSCALLS_DECLARE(sink);
SYSCALLS_DECLARE(log);
SYSCALLS_DECLARE(pktlog);
SYSCALLS_DECLARE(sockchan);
SYSCALLS_DECLARE(forward);
SYSCALLS_DECLARE(serve);

static const struct syscall_rule *const worker_lists[] = {
	libc_syscalls,	  /* lib/sandbox.c */
	loop_syscalls,	  /* lib/loop.c */
	conn_syscalls,	  /* lib/conn.c */
	fdpass_syscalls,  /* lib/fdpass.c */
	sink_syscalls,	  /* lib/sink.c */
	log_syscalls,	  /* lib/log.c */
	pktlog_syscalls,  /* lib/pktlog.c */
	sockchan_syscalls, /* lib/sockchan.c */
	serve_syscalls,	  /* agent/serve.c */
	session_syscalls, /* agent/session.c */
	spawn_syscalls,	  /* agent/spawn.c */
	forward_syscalls, /* agent/forward.c */
	NULL,
};

const struct sandbox_profile agent_worker_profile = {
	.name = "wicketd protocol worker",
	.lists = worker_lists,
};
