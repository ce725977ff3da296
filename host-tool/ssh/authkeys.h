/* SPDX-License-Identifier: MIT */
/*
 * authorized_keys for the host tool's SSH server, in sshd(8)'s format:
 *
 *   [options] keytype base64-key [comment]
 *
 * Key types: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa (verified only with
 * rsa-sha2-256/512 signatures).  Options (names case-insensitive, comma
 * separated, values in double quotes with \" for a quote), as sshd(8) 9.x:
 *   restrict, no-port-forwarding, port-forwarding, no-pty, pty,
 *   no-agent-forwarding, agent-forwarding, no-X11-forwarding, X11-forwarding,
 *   no-user-rc, user-rc, command="...", from="pattern-list",
 *   expiry-time="YYYYMMDD[HHMM[SS]][Z|UTC]" (local time without Z; the
 *   earliest of several wins; the key is refused once it has passed),
 *   environment="NAME=value" (several; the first of a name counts; applied
 *   only when the operator allows it, authkeys_env_filter),
 *   permitopen="host:port" and permitlisten="[host:]port" (several; port
 *   "*" is any, an IPv6 host in [brackets]; permitopen hosts are literal,
 *   "*" any host; permitlisten hosts are patterns), principals="..."
 *   (parsed and ignored: sshd uses it only on cert-authority lines, and a
 *   plain key never matches those).
 * Options apply in order, so "restrict,pty" allows a pty and
 * "pty,restrict" does not.  wicket never runs user rc files, so user-rc
 * grants nothing and no-user-rc holds by construction.
 *
 * Every other option (cert-authority, tunnel=, no-touch-required,
 * verify-required, typos) makes its line invalid: wicket cannot enforce
 * it, and a line whose restrictions cannot be honoured must not authorize
 * anything (a cert-authority line never authorizes a plain key in sshd
 * either).  Invalid lines are logged with file:line and the reason, and
 * skipped; the rest of the file still works.  A duplicated command=, from=
 * or principals= is invalid, as in sshd.
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
#include <stdint.h>

#include "buf.h"
#include "sshkey.h"

struct authkeys; /* a parsed authorized_keys file */

/* A permitopen= or permitlisten= entry. */
struct authkeys_permit {
	char *host; /* without [brackets]; "*" (permitopen) any host */
	int port;   /* 1..65535, or -1 for "*" */
};

struct authkeys_opts {	   /* what the matching line allows */
	bool restrict_all; /* "restrict" */
	bool no_port_forwarding, no_pty, no_agent_forwarding, no_x11_forwarding, no_user_rc;
	bool port_forwarding, pty; /* re-enabled after restrict */
	char *command;		   /* command="..." or NULL (forced command) */
	char comment[128];	   /* key comment for logs */
	uint64_t expiry;	   /* expiry-time= as a Unix time, 0: none */
	struct authkeys_permit *permitopen, *permitlisten;
	size_t npermitopen, npermitlisten; /* 0: no such limit */
	char **env;		   /* environment= "NAME=value" */
	size_t nenv;
};

/* Limits of one line's options (they must cross the privsep boundary). */
#define AUTHKEYS_OPTIONS_MAX 8192u
#define AUTHKEYS_MAX_LIST 64u /* permitopen, permitlisten, environment entries each */

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
/* The same at Unix time @now: lines whose expiry-time= has passed are
 * skipped (and logged), as sshd refuses them. */
int authkeys_match_at(const struct authkeys *ak, const struct sshkey *key,
		      const char *client_addr, uint64_t now, struct authkeys_opts *opts);
void authkeys_opts_clear(struct authkeys_opts *o);
/* Deep copy; 0 or -1 (out of memory, *dst then empty). */
int authkeys_opts_copy(struct authkeys_opts *dst, const struct authkeys_opts *src);
/* Effective permissions after restrict / no-* / re-enabling options. */
bool authkeys_allows_port_forwarding(const struct authkeys_opts *o);
bool authkeys_allows_pty(const struct authkeys_opts *o);
bool authkeys_allows_agent(const struct authkeys_opts *o);
bool authkeys_allows_x11(const struct authkeys_opts *o);
/*
 * permitopen=: may a direct-tcpip channel go to @host:@port?  (Literal
 * host text, as sshd compares it.)  Always true without permitopen=;
 * direct-streamlocal has no permitopen= form, so with any permitopen=
 * it is refused (authkeys_permits_open_path), as in sshd.
 */
bool authkeys_permits_open(const struct authkeys_opts *o, struct sv host, uint32_t port);
bool authkeys_permits_open_path(const struct authkeys_opts *o);
/* permitlisten=: may tcpip-forward listen on @host:@port?  (@host
 * lower-cased and matched against the patterns; port 0 only under "*".) */
bool authkeys_permits_listen(const struct authkeys_opts *o, struct sv host, uint32_t port);
/*
 * PermitUserEnvironment: keep only the environment= entries @permit
 * allows: NULL or "no" none, "yes" all, else a comma-separated list of
 * name patterns ('*', '?', a leading '!' denies).  The caller applies it.
 */
void authkeys_env_filter(struct authkeys_opts *o, const char *permit);
/* The expiry-time= syntax (sshd's): 0 with *@t set, or -1. */
int authkeys_parse_time(const char *s, uint64_t *t);

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
