/* SPDX-License-Identifier: MIT */
/*
 * A channel bridged to a stream socket: the data path of every port forward
 * (direct-tcpip, forwarded-tcpip and their streamlocal twins), on both sides.
 *
 * Back-pressure both ways: the socket is read only while the channel has
 * room (window, packet size, output queue), and peer data is credited with
 * chan_consumed() only as the socket takes it (lib/sink).  Half-close: the
 * peer's EOF becomes shutdown(SHUT_WR) once everything queued is written;
 * the socket's EOF becomes our CHANNEL_EOF.  With both directions done we
 * send CLOSE.  Data that came before the peer's CLOSE is still written out
 * after the channel is gone (draining), unless the whole connection ended.
 */
#ifndef WICKET_SOCKCHAN_H
#define WICKET_SOCKCHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "loop.h"
#include "sink.h"

struct sockchan;

/* Every sockchan of one owner, so the owner can drop them all at the end. */
struct sockchan_list {
	struct sockchan *head;
};

struct sockchan_hooks {
	/* sockchan_connecting() finished: 0, or the connect's errno. */
	void (*connected)(struct sockchan *sc, int err);
	/* Our CHANNEL_OPEN was refused (release() follows).  Optional. */
	void (*open_failed)(struct sockchan *sc, uint32_t reason, struct sv msg);
	/* Finished: the fd is closed and the channel gone; free the owner. */
	void (*release)(struct sockchan *sc);
};

struct sockchan {
	struct loop *loop;
	struct chan *ch;
	int fd;
	struct watch w;
	struct sink out;	/* peer data the socket has not taken yet */
	bool connecting;	/* a non-blocking connect is in progress */
	bool rd_eof;		/* the socket is read to its end; our EOF is sent */
	bool wr_eof;		/* the peer's EOF came */
	bool wr_done;		/* shut down for writing, or the socket's reader is gone */
	bool draining;		/* channel gone, writing out what it delivered */
	struct sockchan_list *list;
	struct sockchan *next, **pprev;
	const struct sockchan_hooks *hooks;
	void *owner;
};

/* Set up with @fd (may be -1 until sockchan_connecting()); nothing is sent. */
void sockchan_init(struct sockchan *sc, struct loop *l, struct sockchan_list *list, int fd,
		   const struct sockchan_hooks *h, void *owner);
/* Open a channel of @type with type-specific @args; -errno when none can be opened
 * (the caller still owns @sc and its fd then: sockchan_free() it). */
int sockchan_open(struct sockchan *sc, struct conn *c, const char *type, const void *args,
		  size_t n);
/* Take over @ch from conn_ops.open (return CHAN_OPEN_DEFERRED or 0 after this). */
void sockchan_attach(struct sockchan *sc, struct chan *ch);
/* Wait for the non-blocking connect on @fd (EINPROGRESS); hooks->connected follows. */
void sockchan_connecting(struct sockchan *sc, int fd);
/* Answer an attached, deferred open. */
void sockchan_confirm(struct sockchan *sc);
/* Refuse it: sends OPEN_FAILURE, closes the fd, then hooks->release(). */
void sockchan_reject(struct sockchan *sc, uint32_t reason, const char *msg);
/* Close the fd and free buffers (no hooks); for a sockchan never attached. */
void sockchan_free(struct sockchan *sc);
/* After the connection ended: finish every sockchan still draining. */
void sockchan_list_drop(struct sockchan_list *list);

#endif
