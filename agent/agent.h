/* SPDX-License-Identifier: MIT */
/* wicketd: configuration and the per-connection server. */
#ifndef WICKET_AGENT_H
#define WICKET_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "buf.h"

#define AGENT_MAX_ENV_PATTERNS 32

struct agent_cfg {
	const char *env_allow[AGENT_MAX_ENV_PATTERNS]; /* fnmatch patterns */
	int nenv_allow;
	bool allow_exec, allow_shell, allow_sftp;
	bool allow_forwarding;		/* direct-*, tcpip-forward, streamlocal-forward */
	const char *sftp_server;	/* path of wicket-sftp-server */
	bool sftp_read_only;
	FILE *pktlog;
	unsigned max_channels;
	uint32_t vsock_cids[16];	/* peers allowed on vsock listeners */
	int nvsock_cids;
	bool vsock_any;
	const char *user;		/* --user: sessions run as this user */
	unsigned handshake_timeout;	/* seconds for the peer's greeting; 0 = none */
	bool no_sandbox;		/* --no-sandbox: no seccomp, NO_NEW_PRIVS, rlimits */
	/*
	 * Process-wide, from the command line only.  The descriptors are
	 * O_CLOEXEC, used by the monitor's spawn path alone (the protocol
	 * worker closes them) and reach a session only as the program it
	 * executes.
	 */
	int toolbox_fd;		/* --toolbox-fd/--toolbox: exec and shell sessions run this
				 * program (busybox: argv[0] names the applet); -1 none */
	int root_fd;		/* --session-root: sessions and sftp are chrooted here; -1 none */
	int sftp_fd;		/* with root_fd: the sftp server, opened before any chroot */
	bool greet_after_peer;	/* --greet-after-peer: our greeting waits for the peer's */
};

#define AGENT_MAX_GROUPS 256

/*
 * Who sessions run as, resolved per connection before the protocol worker
 * is sandboxed (it cannot read /etc/passwd afterwards).
 */
struct agent_user {
	bool switch_user;	/* --user given: the monitor switches in each child */
	uid_t uid;
	gid_t gid;
	gid_t groups[AGENT_MAX_GROUPS];
	int ngroups;
	char name[256];		/* "" when the uid has no passwd entry */
	char home[4096];
	char shell[4096];
	int sftp_errno;		/* access(sftp_server, X_OK) failed with this */
};

/* Fill @u for @name (NULL: the user we run as).  0 or -errno. */
int agent_user_resolve(const char *name, const struct agent_cfg *cfg, struct agent_user *u);

void agent_cfg_defaults(struct agent_cfg *cfg);

struct passwd;
struct group;
/*
 * Look-ups in the session root's own /etc/passwd and /etc/group (read
 * with RESOLVE_IN_ROOT: its symlinks cannot lead out of it), for
 * --session-root, where the agent's C library would read its own files.
 * agent_root_getpw: by @name, or by @uid when @name is NULL; 0, -ENOENT
 * or -errno.  agent_root_groups: @gid and every group listing @name, at
 * most *@n; sets *@n.
 */
int agent_root_getpw(int root_fd, const char *name, uid_t uid, struct passwd *pw, char *buf,
		     size_t len);
int agent_root_groups(int root_fd, const char *name, gid_t gid, gid_t *groups, int *n);

/*
 * Serve one bare ssh-connection stream until it ends.  Returns 0, or 1 if
 * it ended with a protocol error.  With @carry (ports that outlive host
 * connections): bytes in it are processed first, we greet only after the
 * host does, and unparsed input is left in it for the next session.
 */
int agent_serve(int rfd, int wfd, const struct agent_cfg *cfg, struct buf *carry);
/* --use-installed: exec the container's own wicketd on @fd (as --stdio) if
 * there is one; returns when there is none or it cannot run. */
void agent_use_installed(int fd);
/*
 * The same, but the protocol worker is forked and sandboxed while
 * @wait_peer(@rfd) waits for a peer (0, or -errno: returned as is), so a
 * host that connects does not wait for that.
 */
int agent_serve_ahead(int rfd, int wfd, const struct agent_cfg *cfg, struct buf *carry,
		      int (*wait_peer)(int fd));

/* Serve a virtio-serial or serial port forever, one host at a time. */
int agent_serve_port(int fd, bool is_virtio, const struct agent_cfg *cfg);

#endif
