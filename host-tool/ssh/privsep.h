/* SPDX-License-Identifier: MIT */
/*
 * Privilege separation of the SSH server (`proxy --ssh`, `serve`), as the
 * agent does it (agent/monitor.h) and OpenSSH's privsep, smaller.
 *
 * privsep_run() starts the NETWORK process: everything that parses client
 * bytes (version exchange, binary packets, key exchange, userauth parsing
 * and, after authentication, the relay).  It is a fresh image of wicket
 * (privsep_exec.c: its own address-space layout, none of the monitor's
 * memory, its configuration in a PRIV_CONFIG datagram).  Before it reads a
 * byte it closes every other fd, moves to /, becomes nobody when started
 * as root, and isolates itself (lib/sandbox.h): rlimits
 * (RLIMIT_NOFILE 16, NPROC 0, CORE 0, FSIZE 0 unless its log is a file),
 * NO_NEW_PRIVS and a seccomp allowlist without open, exec, socket or
 * connect (profile in privsep_net.c).  The parent stays the MONITOR: it
 * keeps the host key, authorized_keys, the token file and the target, and
 * answers a fixed table of requests (struct ssh_authority decides):
 *
 *   SIGN    string host key algorithm, 32 bytes H
 *                                          -> string signature, made with the
 *                                             host key that has that algorithm
 *   PUBKEY  string user, service, algo, blob, bool has_sig [, string sig]
 *                                          -> result; on success the options
 *                                             of the authorized_keys line
 *   TOKEN   string user, string response   -> result
 *   NONE    string user                    -> result
 *   GUEST   (nothing)                      -> result, bool greeted; the
 *                                             guest's fd(s) with SCM_RIGHTS
 *
 * Each message is one SOCK_SEQPACKET datagram: u8 type, then the fields
 * in SSH encoding (RFC 4251), nothing after them.  A reply is u8
 * PRIV_REPLY, u8 the request's type, u32 result (SSH_PRIV_* as two's
 * complement), then the fields above.  The network process waits for each
 * reply before it sends anything else.
 *
 * A malformed or unknown request, fds sent to the monitor, or a request
 * out of order (authentication before the key exchange, the guest before
 * a success the monitor saw itself, ...) makes the monitor log the reason,
 * kill the network process and return 255.  So does a network process
 * that dies of a signal (SIGSYS: a syscall outside its allowlist).
 *
 * Test-only (WICKET_TESTING=1): WICKET_TEST_SANDBOX_PROBE makes the
 * network process misbehave once the first key exchange is signed:
 * "openat" calls openat(2), "guest-early" asks for the guest,
 * "bad-request" sends a request type not in the table, and "claim-auth"
 * treats every refused authentication as a success and asks for the guest.
 */
#ifndef WICKET_SSH_PRIVSEP_H
#define WICKET_SSH_PRIVSEP_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "authority.h"
#include "sandbox.h"
#include "ssh.h"
#include "sshs.h"

enum priv_type {
	PRIV_SIGN = 1,
	PRIV_PUBKEY,
	PRIV_TOKEN,
	PRIV_NONE,
	PRIV_GUEST,
	PRIV_REPLY = 0x80,
	PRIV_CONFIG = 0x81, /* monitor -> network process, its first datagram */
};

/* One datagram at most (a 16384-bit RSA key and signature fit easily). */
#define PRIV_MSG_MAX (32u * 1024u)

/* authorized_keys options on the wire (a publickey success). */
enum {
	PRIV_OPT_RESTRICT = 1u << 0,
	PRIV_OPT_NO_PORT_FORWARDING = 1u << 1,
	PRIV_OPT_NO_PTY = 1u << 2,
	PRIV_OPT_NO_AGENT = 1u << 3,
	PRIV_OPT_NO_X11 = 1u << 4,
	PRIV_OPT_NO_USER_RC = 1u << 5,
	PRIV_OPT_PORT_FORWARDING = 1u << 6,
	PRIV_OPT_PTY = 1u << 7,
};

/*
 * privsep_run() - serve one client on @rfd/@wfd with the transport in a
 * sandboxed child and @a in this process.  @cfg is the transport's
 * configuration (its priv ops are filled in here).  Returns the exit code:
 * 0 after a clean session, non-zero otherwise (255 when the monitor had
 * to end the network process).
 */
int privsep_run(struct ssh_authority *a, const struct ssh_server_cfg *cfg, int rfd, int wfd);

/*
 * Open the guest now and send our greeting, so the guest's answer is under
 * way while the client does its key exchange (it is handed over only after
 * authentication).  0, or -1 (error printed).
 */
int privsep_preopen(struct ssh_authority *a);

/* privsep_net.c: the network process. */
extern const struct sandbox_profile ssh_net_profile;
/* Who the network process becomes when started as root: nobody. */
struct privsep_ids {
	uid_t uid;
	gid_t gid;
};
/* Never returns: runs the transport under the sandbox, then _exit(). */
void privsep_net_main(const struct ssh_server_cfg *cfg, int rfd, int wfd, int sock,
		      pid_t monitor, struct privsep_ids ids) __attribute__((noreturn));

/* privsep_exec.c: the network process as a fresh image of this program. */
#define PRIVSEP_CHILD_ARG SSH_NET_CHILD_ARG
enum { PRIVSEP_FD_IN = 0, PRIVSEP_FD_OUT = 1, PRIVSEP_FD_MONITOR = 3, PRIVSEP_FD_PKTLOG = 4 };
/*
 * PRIV_CONFIG on @sock: flags (authkeys, token, none, packet log), log level,
 * grace seconds, rekey bytes (two u32), rekey seconds, uid, gid (@ids),
 * string host key blob for each enum sshkey_type (empty: none), string
 * peer address.  0, or -1.
 */
int privsep_send_config(int sock, const struct ssh_server_cfg *cfg, struct privsep_ids ids);
/* In the forked child: lay out the descriptors and execute the network process. */
void privsep_exec_net(int rfd, int wfd, int sock, FILE *pktlog, pid_t monitor)
	__attribute__((noreturn));
/* main() of `wicket --ssh-net-child MONITOR_PID`: the configuration, then the transport. */
int privsep_net_child(int argc, char **argv);

#endif
