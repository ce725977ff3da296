/* SPDX-License-Identifier: MIT */
/*
 * Byte-stream endpoints.  Every transport ends up as a pair of fds (the same
 * fd twice for sockets) that carry the bare ssh-connection stream.
 */
#ifndef WICKET_TP_H
#define WICKET_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tp {
	int rfd, wfd;
	pid_t pid; /* helper process (proxy command), or 0 */
};

#define TP_INIT ((struct tp){ .rfd = -1, .wfd = -1, .pid = 0 })

/* Guest side: listen on a Unix socket path (replacing a stale socket). */
int tp_unix_listen(const char *path, char *err, size_t errlen);
/* Accept one connection with CLOEXEC set; -errno on failure. */
int tp_accept(int lfd);

/* Host side. */
int tp_unix_connect(const char *path, struct tp *out, char *err, size_t errlen);
/* Connect to an agent over AF_VSOCK. */
int tp_vsock_connect(uint32_t cid, uint32_t port, struct tp *out, char *err, size_t errlen);
/* Run `sh -c CMD` with its stdin/stdout as the stream. */
int tp_command_spawn(const char *cmd, struct tp *out, char *err, size_t errlen);
/* Run argv directly (no shell) with its stdin/stdout as the stream. */
int tp_argv_spawn(char *const *argv, struct tp *out, char *err, size_t errlen);
/*
 * The same, with @fds (at most TP_SPAWN_MAX_FDS) placed at 3, 4, ... in the
 * child and no other descriptor of ours inherited (podman exec
 * --preserve-fds).  @sock >= 0: the stream is that socket instead (the
 * child got its peer among @fds), and the child's stdin is /dev/null, its
 * stdout our stderr.
 */
#define TP_SPAWN_MAX_FDS 8
int tp_argv_spawn_fds(char *const *argv, const int *fds, int nfds, int sock, struct tp *out,
		      char *err, size_t errlen);
int tp_command_spawn_fds(const char *cmd, const int *fds, int nfds, struct tp *out, char *err,
			 size_t errlen);
/*
 * Helpers spawned while this is set (a stream being opened for a mux that
 * outlives the command) get their own session and do not die with us: a
 * Ctrl-C or the end of the command that started the mux must not end them.
 */
extern bool tp_detach_helpers;
/* Close fds and reap the helper (terminating it if still running). */
void tp_close(struct tp *t);

#endif
