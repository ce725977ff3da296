/* SPDX-License-Identifier: MIT */
#include "agentfwd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "wire.h"

struct agentfwd {
	struct fwd_ctx *f;
	struct chan *ch; /* the session; its peer number tags the channels */
	bool tagged;
	struct watch w;
	char dir[64], path[80];
	dev_t ddev, sdev;
	ino_t dino, sino;
	struct loop_pause pause;
};

struct agentfwd_conn {
	struct sockchan sc;
};

static void conn_release(struct sockchan *sc)
{
	free(sc->owner);
}

static const struct sockchan_hooks conn_hooks = { .release = conn_release };

static short af_want(struct watch *w)
{
	struct agentfwd *a = w->data;
	return loop_pause_active(a->f->loop, &a->pause) ? 0 : POLLIN;
}

static void af_ready(struct watch *w, short rev)
{
	struct agentfwd *a = w->data;
	(void)rev;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		loop_accept_failed(&a->pause, errno, a->path);
		return;
	}
	struct agentfwd_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	sockchan_init(&c->sc, a->f->loop, &a->f->streams, fd, &conn_hooks, c);
	uint8_t tag[4];
	put_be32(tag, a->ch->rid); /* uint32 the session channel, as the peer numbers it */
	int r = a->tagged ? sockchan_open(&c->sc, a->f->c, "auth-agent@wicket", tag, sizeof(tag))
			  : sockchan_open(&c->sc, a->f->c, "auth-agent@openssh.com", NULL, 0);
	if (r < 0) {
		log_info("agent forwarding: cannot open a channel for a new connection");
		sockchan_free(&c->sc);
		free(c);
	}
}

static const struct watch_ops af_ops = { af_want, af_ready };

struct agentfwd *agentfwd_start(struct fwd_ctx *f, struct chan *ch, bool tagged)
{
	if (!f->cfg->allow_forwarding) {
		log_info("auth-agent-req refused by policy (--deny forwarding)");
		return NULL;
	}
	if (f->cfg->root_fd >= 0) {
		/* The monitor binds paths in the agent's own root, which sessions
		 * under --session-root do not see. */
		log_info("auth-agent-req refused: not supported with --session-root");
		return NULL;
	}
	struct agentfwd *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	*a = (struct agentfwd){ .f = f, .ch = ch, .tagged = tagged };
	/* mkdir fails on anything already there (and follows no symlink):
	 * a name taken by someone else is skipped, never used. */
	static unsigned seq;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int e = -EEXIST;
	for (int i = 0; i < 32 && e == -EEXIST; i++) {
		snprintf(a->dir, sizeof(a->dir), "/tmp/wicket-agent-%lx%x", (unsigned long)ts.tv_nsec,
			 seq++);
		e = spawn_mkdir_private(a->dir, &a->ddev, &a->dino);
	}
	if (e < 0) {
		log_warn("agent forwarding: cannot make a directory in /tmp: %s", strerror(-e));
		free(a);
		return NULL;
	}
	snprintf(a->path, sizeof(a->path), "%s/agent.sock", a->dir);
	int fd = spawn_unix_listen(a->path, 16, &a->sdev, &a->sino);
	if (fd < 0) {
		log_warn("agent forwarding: %s: %s", a->path, strerror(-fd));
		spawn_rmdir(a->dir, a->ddev, a->dino);
		free(a);
		return NULL;
	}
	a->w = (struct watch){ .fd = fd, .ops = &af_ops, .data = a };
	loop_add(f->loop, &a->w);
	log_info("agent forwarding: %s", a->path);
	return a;
}

const char *agentfwd_path(const struct agentfwd *a)
{
	return a->path;
}

void agentfwd_stop(struct agentfwd *a)
{
	if (!a)
		return;
	loop_del(a->f->loop, &a->w);
	close(a->w.fd);
	spawn_unix_unlink(a->path, a->sdev, a->sino);
	spawn_rmdir(a->dir, a->ddev, a->dino);
	free(a);
}
