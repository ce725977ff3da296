/* SPDX-License-Identifier: MIT */
/*
 * The host-side mux: one process per target owns the guest stream and
 * serves bare ssh-connection on a Unix socket to every wicket command (and
 * to plink -ssh-connection, psftp, pscp) for that target, so sessions never
 * wait for or abort each other and a warm command pays a channel open, not
 * a connection.
 *
 * Where: $XDG_RUNTIME_DIR/wicket/, else /tmp/wicket-UID/ (a directory of
 * ours, mode 0700, checked before use), one NAME.sock, NAME.lock and
 * NAME.log per target.  NAME is readable (kind and name) plus a hash of the
 * resolved target (the key), all of it hashed when it would not fit
 * sun_path.  Only the owner's uid may connect (the directory, and
 * SO_PEERCRED on every accepted client).
 *
 * On the socket the mux first sends MUX_PREAMBLE (a line that bare
 * ssh-connection peers skip before the greeting, as they skip any stale
 * bytes), so an attaching wicket knows the mux is alive before it commits.
 */
#ifndef WICKET_MUX_H
#define WICKET_MUX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>

#include "cli.h"
#include "tp.h"

#define MUX_PREAMBLE "wicket-mux\r\n"
#define MUX_PREAMBLE_LEN 12

struct mux_key {
	char key[PATH_MAX + 512];   /* the target as resolved */
	char label[256];	    /* the target as the user wrote it */
	char dir[PATH_MAX];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock[PATH_MAX + 64];
	char log[PATH_MAX + 64];
	bool libvirt;		    /* vm/NAME: a stream someone else's open would steal */
};

/*
 * The key and paths of @target: 1 shared, 0 never shared (demo, unknown
 * kinds: opened directly), -1 when no safe directory exists (@err says why).
 */
int mux_key_make(const char *target, const struct globals *g, struct mux_key *k, char *err,
		 size_t errlen);
/* A 0700 directory of ours at @dir, created if missing; 0, or -1 with @err. */
int mux_dir_check(const char *dir, char *err, size_t errlen);

/* open_target() (cli.h): attach, start, or go direct, per g->share. */
int mux_open(const char *target, struct globals *g, struct tp *out);
/*
 * Connect to a running mux and read its preamble: 0 attached (@out is the
 * stream), -ENOENT none, -ECONNREFUSED stale socket, other -errno.
 */
int mux_attach(const struct mux_key *k, struct tp *out);

/* `wicket mux status|stop|start ...` */
int mux_cmd(int argc, char **argv, int i, struct globals *g);

/* The mux process itself (`wicket --mux-daemon ...`, started by mux_open). */
#define MUX_DAEMON_ARG "--mux-daemon"
int mux_daemon_main(int argc, char **argv);
/* Descriptors the daemon is started with. */
enum { MUX_FD_LISTEN = 3, MUX_FD_GUEST_IN = 4, MUX_FD_GUEST_OUT = 5 };

#endif
