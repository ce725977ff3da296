/* SPDX-License-Identifier: MIT */
#include "sockchan.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "syscalls.h"

/* Peer data is bounded by our window; this only caps a broken invariant. */
#define SOCKCHAN_PEND_MAX (64u * 1024u * 1024u)

static const struct chan_ops sockchan_chan_ops;
static void sockchan_finish(struct sockchan *sc);

static short sockchan_want(struct watch *w)
{
	struct sockchan *sc = w->data;
	if (sc->fd < 0)
		return 0;
	if (sc->connecting)
		return POLLOUT;
	if (sc->draining)
		return POLLOUT;
	if (!sc->ch || sc->ch->state != CH_OPEN)
		return 0;
	short ev = 0;
	if (!sc->rd_eof && chan_send_room(sc->ch))
		ev |= POLLIN;
	if (!sc->wr_done && sink_pending(&sc->out))
		ev |= POLLOUT;
	return ev;
}

/* Half-close and close as the state now allows. */
static void sockchan_check(struct sockchan *sc)
{
	if (!sc->ch || sc->fd < 0)
		return;
	if (!sc->wr_done && sc->out.broken) {
		/* The socket's reader is gone: what the peer still sends is dropped. */
		sc->wr_done = true;
	}
	if (!sc->wr_done && sc->wr_eof && !sink_pending(&sc->out)) {
		shutdown(sc->fd, SHUT_WR);
		sc->wr_done = true;
	}
	if (sc->rd_eof && sc->wr_done && !sc->ch->sent_close) {
		chan_send_eof(sc->ch);
		chan_send_close(sc->ch);
	}
}

static void sockchan_read(struct sockchan *sc)
{
	ssize_t r = chan_send_from_fd(sc->ch, 0, sc->fd);
	if (r > 0 || r == -EAGAIN || r == -ENOMEM)
		return;
	if (r < 0) {
		log_debug("forwarded socket: read: %s", strerror((int)-r));
		/* A reset socket takes nothing more either. */
		sc->out.broken = true;
	}
	sc->rd_eof = true;
	chan_send_eof(sc->ch);
}

static void sockchan_ready(struct watch *w, short rev)
{
	struct sockchan *sc = w->data;
	if (sc->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(sc->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		else if (!err && (rev & (POLLERR | POLLHUP)) && !(rev & POLLOUT))
			err = ECONNREFUSED;
		sc->connecting = false;
		sc->hooks->connected(sc, err);
		return;
	}
	if (sc->draining) {
		sink_flush(&sc->out);
		if (!sink_pending(&sc->out) || sc->out.broken)
			sockchan_finish(sc);
		return;
	}
	if (!sc->ch)
		return;
	if (!sc->wr_done && sink_pending(&sc->out) && (rev & (POLLOUT | POLLERR | POLLHUP))) {
		size_t n = sink_flush(&sc->out);
		if (n)
			chan_consumed(sc->ch, n);
	}
	if (!sc->rd_eof && (rev & (POLLIN | POLLERR | POLLHUP)))
		sockchan_read(sc);
	sockchan_check(sc);
}

static const struct watch_ops sockchan_watch_ops = { sockchan_want, sockchan_ready };

void sockchan_init(struct sockchan *sc, struct loop *l, struct sockchan_list *list, int fd,
		   const struct sockchan_hooks *h, void *owner)
{
	*sc = (struct sockchan){ .loop = l, .fd = fd, .hooks = h, .owner = owner, .list = list };
	sc->next = list->head;
	if (sc->next)
		sc->next->pprev = &sc->next;
	sc->pprev = &list->head;
	list->head = sc;
	sink_init(&sc->out, fd, SOCKCHAN_PEND_MAX);
	sc->w = (struct watch){ .fd = fd, .ops = &sockchan_watch_ops, .data = sc };
}

void sockchan_free(struct sockchan *sc)
{
	if (sc->pprev) {
		*sc->pprev = sc->next;
		if (sc->next)
			sc->next->pprev = sc->pprev;
		sc->pprev = NULL;
	}
	if (sc->loop)
		loop_del(sc->loop, &sc->w);
	if (sc->fd >= 0)
		close(sc->fd);
	sc->fd = -1;
	sink_free(&sc->out);
}

/* The channel is gone: free everything and tell the owner. */
static void sockchan_finish(struct sockchan *sc)
{
	sc->ch = NULL;
	sockchan_free(sc);
	sc->hooks->release(sc);
}

int sockchan_open(struct sockchan *sc, struct conn *c, const char *type, const void *args,
		  size_t n)
{
	int r = loop_add(sc->loop, &sc->w);
	if (r < 0)
		return r;
	sc->ch = chan_open_ex(c, type, args, n, &sockchan_chan_ops, sc);
	if (!sc->ch) {
		loop_del(sc->loop, &sc->w);
		return -EAGAIN;
	}
	return 0;
}

void sockchan_attach(struct sockchan *sc, struct chan *ch)
{
	sc->ch = ch;
	ch->ops = &sockchan_chan_ops;
	ch->data = sc;
	loop_add(sc->loop, &sc->w);
}

void sockchan_connecting(struct sockchan *sc, int fd)
{
	sc->fd = sc->w.fd = sc->out.fd = fd;
	sc->connecting = true;
}

void sockchan_confirm(struct sockchan *sc)
{
	sc->connecting = false;
	chan_open_confirm(sc->ch);
}

void sockchan_reject(struct sockchan *sc, uint32_t reason, const char *msg)
{
	chan_open_reject(sc->ch, reason, msg);
	sockchan_finish(sc);
}

/* ---- channel callbacks ---- */

static void sc_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct sockchan *sc = ch->data;
	if (ext) {
		chan_consumed(ch, n); /* a socket has no second stream */
		return;
	}
	/* Once the reader is gone the sink drops data but still credits it. */
	chan_consumed(ch, sink_put(&sc->out, p, n));
	sockchan_check(sc);
}

static void sc_eof(struct chan *ch)
{
	struct sockchan *sc = ch->data;
	sc->wr_eof = true;
	sockchan_check(sc);
}

static void sc_closed(struct chan *ch)
{
	struct sockchan *sc = ch->data;
	if (!ch->c->ended && sc->fd >= 0 && !sc->wr_done && sink_pending(&sc->out) &&
	    !sc->out.broken) {
		/* What the peer sent before its CLOSE is still delivered. */
		sc->ch = NULL;
		sc->draining = true;
		return;
	}
	sockchan_finish(sc);
}

static void sc_open_failed(struct chan *ch, uint32_t reason, struct sv msg)
{
	struct sockchan *sc = ch->data;
	if (sc->hooks->open_failed)
		sc->hooks->open_failed(sc, reason, msg);
	sockchan_finish(sc);
}

static const struct chan_ops sockchan_chan_ops = {
	.name = "forward",
	.open_failed = sc_open_failed,
	.data = sc_data,
	.eof = sc_eof,
	.closed = sc_closed,
};

void sockchan_list_drop(struct sockchan_list *list)
{
	while (list->head)
		sockchan_finish(list->head);
}

/* Seccomp allowlist of this file: forwarded sockets. */
SYSCALLS(sockchan) = { SC("read"), SC("write"), SC("shutdown"), SC("getsockopt"), SC("close"),
		       SC_END };
