/* SPDX-License-Identifier: MIT */
/*
 * The one table of target kinds.  Everything that lists kinds is made from
 * it: target_open()'s dispatch and its error text, `wicket cp`'s operand
 * split, the ssh_config snippet's Host patterns (`wicket ssh-config`, and
 * packaging/ssh/20-wicket.conf generated from it at build time), and the
 * KIND%NAME spelling `wicket proxy --ssh` accepts for scp, rsync and git.
 */
#ifndef WICKET_TARGET_KINDS_H
#define WICKET_TARGET_KINDS_H

#include <stdbool.h>
#include <stddef.h>

enum target_kind_id { TK_VM, TK_UNIX, TK_VSOCK, TK_SERIAL, TK_PODMAN, TK_DOCKER, TK_K8S, TK_PID, TK_DEMO };

enum {
	TK_BARE = 1,	  /* the whole target is the name ("demo"): no KIND/NAME */
	TK_CONTAINER = 2, /* podman, docker, k8s, pid: --tools applies */
	TK_PCT_ALL = 4,	  /* KIND%A%B: every '%' is a '/' (names that hold '/') */
};

struct target_kind {
	enum target_kind_id id;
	const char *name;   /* "vm" */
	const char *syntax; /* "vm/NAME", for messages */
	unsigned flags;
};

extern const struct target_kind target_kinds[];
extern const size_t target_kinds_count;

/*
 * The kind of @target ("vm/x": vm, "demo": demo), with *@rest set to what
 * follows "KIND/" (may be empty); NULL when it is of no kind.
 */
const struct target_kind *target_kind_find(const char *target, const char **rest);

/* "vm/NAME, unix/PATH, ..., demo, or --proxy-command CMD" into @buf. */
const char *target_kinds_syntax(char *buf, size_t len);

/* The ssh_config Host patterns ("vm/STAR ... vm%STAR ... demo") into @buf. */
const char *target_kinds_ssh_hosts(char *buf, size_t len);

/*
 * An ssh host name to a TARGET: KIND%NAME is KIND/NAME (scp, rsync and git
 * take "HOST:PATH" for a local name when a '/' comes before the ':').  For
 * unix, serial and k8s every '%' is a '/' (unix%%run%a.sock is
 * unix//run/a.sock, the socket /run/a.sock); for other kinds only the first.
 * Anything else is copied as it is.  -1 when @out is too small.
 */
int target_from_ssh_host(const char *host, char *out, size_t len);

#endif
