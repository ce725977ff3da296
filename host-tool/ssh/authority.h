/* SPDX-License-Identifier: MIT */
/*
 * The authority of one SSH connection: the only code that holds the host
 * private key, authorized_keys, the token file and the guest, and the only
 * one that decides "authenticated".  Every refusal is logged with the peer
 * address and the reason (at warning level with log_logins, as `serve`
 * sets it, for fail2ban and auditors).  It runs in the monitor (privsep.h);
 * the fuzzer calls it in process through authority_ops.
 *
 * It trusts nothing its caller says: a publickey signature is checked over
 * data built here from the session id remembered from the first signed
 * exchange hash, and the guest is handed out once, after a success seen
 * here.  A request that a correct transport never makes (authentication
 * before the key exchange or after success, a method that is not
 * configured, the guest before authentication) returns SSH_PRIV_FATAL
 * with the reason in @why: the monitor then kills the network process.
 */
#ifndef WICKET_SSH_AUTHORITY_H
#define WICKET_SSH_AUTHORITY_H

#include <stdbool.h>
#include <stdint.h>

#include "sshs.h"

struct ssh_authority {
	/* configuration (not owned) */
	const struct sshkey *host_keys[SSHKEY_NTYPES]; /* by type; NULL: none */
	const struct authkeys *authkeys; /* parsed once (the fuzzer), or NULL */
	const char *authkeys_file;	 /* or read afresh at every publickey attempt,
					  * as sshd does: a key removed from the file
					  * is refused from the next attempt on */
	const char *token_file;		 /* NULL: no keyboard-interactive */
	const char *peer_addr;		 /* for from= and logs */
	const char *permit_user_env;	 /* environment= allowed: NULL/"no", "yes",
					  * or name patterns (PermitUserEnvironment) */
	bool allow_none;
	bool log_logins;		 /* successes and refusals at warning level */
	int auth_notify_fd;		 /* -1, or a byte is written here after success */
	int grace_seconds;		 /* 0, or the monitor ends a process not
					  * authenticated this long after it started
					  * (plus slack: the transport says so first) */
	/* Open the stream to the guest; prints its own error, -1 on failure. */
	int (*open_guest)(void *arg, struct tp *out);
	void *open_arg;

	/* state */
	struct tp guest;		 /* opened ahead of time (authority_preopen) */
	bool guest_greeted;		 /* ... and our greeting line already sent */
	uint8_t session_id[32];
	bool have_session_id;
	bool authed, guest_given;
	unsigned attempts;
	char why[160];			 /* reason of the last SSH_PRIV_FATAL */
};

/* Reset the state (the configuration fields are the caller's). */
void authority_init(struct ssh_authority *a);

/* Sign H as host key algorithm @algo with the host key that has it. */
int authority_sign(struct ssh_authority *a, struct sv algo, const uint8_t h[32], struct buf *sig);
int authority_pubkey(struct ssh_authority *a, const struct ssh_pubkey_req *rq,
		     struct authkeys_opts *opts);
int authority_token(struct ssh_authority *a, struct sv user, struct sv response);
int authority_none(struct ssh_authority *a, struct sv user);
/*
 * The guest, once per connection, after success: 0, -1 (cannot open it:
 * error printed) or SSH_PRIV_FATAL.  A helper process stays the
 * authority's (a->guest.pid, for its owner to reap): out->pid is 0.
 */
int authority_open_guest(struct ssh_authority *a, struct tp *out, bool *greeted);

/* The same, as a transport's ssh_priv_ops (ctx: struct ssh_authority). */
extern const struct ssh_priv_ops authority_ops;

#endif
