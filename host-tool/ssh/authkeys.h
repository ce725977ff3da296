/* SPDX-License-Identifier: MIT */
/*
 * authorized_keys for the host tool's SSH server, in sshd(8)'s format:
 *
 *   [options] keytype base64-key [comment]
 *
 * Key types: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa (verified only with
 * rsa-sha2-256/512 signatures).  Options (names case-insensitive, comma
 * separated, values in double quotes with \" for a quote):
 *   restrict, no-port-forwarding, port-forwarding, no-pty, pty,
 *   no-agent-forwarding, agent-forwarding, no-X11-forwarding, X11-forwarding,
 *   no-user-rc, user-rc, command="...", from="pattern-list".
 * Options apply in order, so "restrict,pty" allows a pty and
 * "pty,restrict" does not.  wicket never offers agent or X11 forwarding or
 * user rc files, so their permitting forms are accepted but grant nothing.
 *
 * Every other option, permitopen= included, makes its line invalid: wicket
 * cannot enforce it, and a line whose restrictions cannot be honoured must
 * not authorize anything.  Invalid lines are logged with file:line and
 * skipped; the rest of the file still works.  A duplicated command= or from=
 * is invalid, as in sshd.
 *
 * from= entries: '*' and '?' wildcards matched against the client address
 * text, IPv4/IPv6 literals and CIDR address/bits, '!' negation (a negated
 * match denies the line).  A CIDR with host bits set is invalid.
 * IPv4-mapped IPv6 client addresses are matched as IPv4.  Host names are
 * never resolved, so name patterns only ever match address text.
 *
 * authkeys_load() refuses a file that is not a regular file, is writable by
 * group or others, or is owned by anyone but the caller or root (sshd's
 * StrictModes, for the file itself).
 */
#ifndef WICKET_SSH_AUTHKEYS_H
#define WICKET_SSH_AUTHKEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "sshkey.h"

struct authkeys; /* a parsed authorized_keys file */

struct authkeys_opts {	   /* what the matching line allows */
	bool restrict_all; /* "restrict" */
	bool no_port_forwarding, no_pty, no_agent_forwarding, no_x11_forwarding, no_user_rc;
	bool port_forwarding, pty; /* re-enabled after restrict */
	char *command;		   /* command="..." or NULL (forced command) */
	char comment[128];	   /* key comment for logs */
};

/*
 * Load and parse; unknown options make that line invalid (logged with
 * file:line and skipped), never the whole file.  NULL + err when unreadable.
 */
struct authkeys *authkeys_load(const char *path, char *err, size_t errlen);
void authkeys_free(struct authkeys *ak);
/*
 * Find the line whose key equals @key and whose from="pattern-list" (if any)
 * matches @client_addr (IPv4/IPv6 literal or NULL for a local stdio client:
 * then from= lines never match; so do they for anything that is not an
 * address literal); fills *opts (caller frees opts->command with
 * authkeys_opts_clear).  Lines are tried in file order.  0 found, -1 not
 * authorized (*opts then zeroed).
 */
int authkeys_match(const struct authkeys *ak, const struct sshkey *key,
		   const char *client_addr, struct authkeys_opts *opts);
void authkeys_opts_clear(struct authkeys_opts *o);
/* Effective permissions after restrict / no-* / re-enabling options. */
bool authkeys_allows_port_forwarding(const struct authkeys_opts *o);
bool authkeys_allows_pty(const struct authkeys_opts *o);

/* ---- additions ---- */

/*
 * Parse authorized_keys text held in memory (the fuzz entry point); @origin
 * names it in log messages.  NULL only when out of memory.
 */
struct authkeys *authkeys_parse(const char *origin, struct sv text);
/* Number of usable lines, and of lines rejected as invalid. */
size_t authkeys_count(const struct authkeys *ak);
size_t authkeys_invalid(const struct authkeys *ak);

#endif
