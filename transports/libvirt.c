/* SPDX-License-Identifier: MIT */
/*
 * Host side: relay a libvirt stream to a socket.  A virStream is not an fd,
 * so the host tool runs this pump in a helper process and uses the other end
 * of a socketpair as the transport.  Event-driven on libvirt's default event
 * loop (as `virsh console`): one buffer per direction, read a side only
 * while its buffer is empty, so each direction has back-pressure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libvirt.h"

#define PUMP_BUF (64 * 1024)
/* After the host side closed, give the stream this long to take the rest. */
#define PUMP_DRAIN_MS 5000

struct pump {
	virStreamPtr st;
	int fd;
	int watch;   /* socket handle, -1 once removed */
	int timer;   /* drain deadline, -1 when unset */
	/* socket → stream */
	char up[PUMP_BUF];
	size_t up_off, up_len;
	/* stream → socket */
	char down[PUMP_BUF];
	size_t down_off, down_len;
	bool sock_eof;  /* read() gave 0 or an error: the host side sends no more */
	bool sock_gone; /* the peer closed the socket entirely (HUP) or writing failed */
	bool st_eof;    /* the stream ended or failed: the guest side sends no more */
	bool st_dead;   /* sending to the stream failed */
	bool done;
};

static void pump_update(struct pump *p);

static void on_timeout(int timer, void *opaque)
{
	struct pump *p = opaque;
	p->done = true;
}

/* Socket → up buffer (only when empty); false when nothing was read. */
static bool sock_fill(struct pump *p)
{
	if (p->up_len > p->up_off || p->sock_eof)
		return false;
	ssize_t n;
	do
		n = read(p->fd, p->up, sizeof(p->up));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		p->up_off = 0;
		p->up_len = (size_t)n;
		return true;
	}
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		p->sock_eof = true;
	return false;
}

/* up buffer → stream. */
static void stream_flush(struct pump *p)
{
	while (p->up_off < p->up_len && !p->st_dead) {
		int n = virStreamSend(p->st, p->up + p->up_off, p->up_len - p->up_off);
		if (n == -2)
			return;
		if (n < 0) {
			p->st_dead = true;
			p->up_off = p->up_len = 0;
			return;
		}
		p->up_off += (size_t)n;
	}
	if (p->up_off == p->up_len)
		p->up_off = p->up_len = 0;
}

/* Stream → down buffer (only when empty). */
static bool stream_fill(struct pump *p)
{
	if (p->down_len > p->down_off || p->st_eof)
		return false;
	int n = virStreamRecv(p->st, p->down, sizeof(p->down));
	if (n > 0) {
		p->down_off = 0;
		p->down_len = (size_t)n;
		return true;
	}
	if (n != -2)
		p->st_eof = true; /* 0: end of stream; -1: error */
	return false;
}

/* down buffer → socket. */
static void sock_flush(struct pump *p)
{
	while (p->down_off < p->down_len && !p->sock_gone) {
		ssize_t n = send(p->fd, p->down + p->down_off, p->down_len - p->down_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			p->sock_gone = true;
			break;
		}
		p->down_off += (size_t)n;
	}
	if (p->down_off == p->down_len || p->sock_gone)
		p->down_off = p->down_len = 0;
}

static void on_sock(int watch, int fd, int events, void *opaque)
{
	struct pump *p = opaque;
	if (events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_HANGUP |
		      VIR_EVENT_HANDLE_ERROR)) {
		if (sock_fill(p))
			stream_flush(p);
	}
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		sock_flush(p);
	if (events & (VIR_EVENT_HANDLE_HANGUP | VIR_EVENT_HANDLE_ERROR))
		p->sock_gone = true;
	pump_update(p);
}

static void on_stream(virStreamPtr st, int events, void *opaque)
{
	struct pump *p = opaque;
	if (events & (VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_HANGUP |
		      VIR_STREAM_EVENT_ERROR)) {
		if (stream_fill(p))
			sock_flush(p);
	}
	if (events & VIR_STREAM_EVENT_WRITABLE) {
		stream_flush(p);
		/*
		 * Once the peer closed the socket it no longer has a watch (a
		 * hung-up socket polls ready forever); read the rest of it as
		 * the stream takes it.
		 */
		if (p->sock_gone && sock_fill(p))
			stream_flush(p);
	}
	if (events & VIR_STREAM_EVENT_ERROR)
		p->st_eof = p->st_dead = true;
	else if (events & VIR_STREAM_EVENT_HANGUP)
		p->st_eof = true;
	pump_update(p);
}

/* Recompute what each side waits for; decide whether we are done. */
static void pump_update(struct pump *p)
{
	bool up_pending = p->up_len > p->up_off;
	bool down_pending = p->down_len > p->down_off;

	if (p->sock_gone) {
		/* Nobody reads what the guest sends any more. */
		p->down_off = p->down_len = 0;
		down_pending = false;
		if (p->watch >= 0) {
			virEventRemoveHandle(p->watch);
			p->watch = -1;
		}
		if (p->timer < 0)
			p->timer = virEventAddTimeout(PUMP_DRAIN_MS, on_timeout, p, NULL);
	}
	if (p->st_dead)
		p->done = true;
	/*
	 * Host side finished and everything it wrote went to the guest.  A
	 * channel cannot be half-closed: the host's EOF (even a shutdown of
	 * its writing side only) ends the stream, as EOF ends a connection
	 * to wicketd on a socket.
	 */
	if (p->sock_eof && !up_pending)
		p->done = true;
	/* Guest side finished and everything it sent went to the host. */
	if (p->st_eof && !down_pending)
		p->done = true;
	if (p->done)
		return;

	if (p->watch >= 0) {
		int fe = 0;
		if (!up_pending && !p->sock_eof)
			fe |= VIR_EVENT_HANDLE_READABLE;
		if (down_pending)
			fe |= VIR_EVENT_HANDLE_WRITABLE;
		virEventUpdateHandle(p->watch, fe);
	}
	int se = 0;
	if (!down_pending && !p->st_eof)
		se |= VIR_STREAM_EVENT_READABLE;
	if (up_pending || (p->sock_gone && !p->sock_eof))
		se |= VIR_STREAM_EVENT_WRITABLE;
	virStreamEventUpdateCallback(p->st, se);
}

int tp_libvirt_pump(virStreamPtr st, int fd)
{
	static struct pump p; /* one per helper process; 128 KiB off the stack */
	memset(&p, 0, sizeof(p));
	p.st = st;
	p.fd = fd;
	p.timer = -1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	p.watch = virEventAddHandle(fd, VIR_EVENT_HANDLE_READABLE, on_sock, &p, NULL);
	if (p.watch < 0)
		return -1;
	if (virStreamEventAddCallback(st, VIR_STREAM_EVENT_READABLE, on_stream, &p, NULL) < 0) {
		virEventRemoveHandle(p.watch);
		return -1;
	}
	while (!p.done) {
		if (virEventRunDefaultImpl() < 0)
			break;
	}
	if (p.watch >= 0)
		virEventRemoveHandle(p.watch);
	if (p.timer >= 0)
		virEventRemoveTimeout(p.timer);
	virStreamEventRemoveCallback(st);
	/* Tell the guest side we are gone: shut the socket, end the stream. */
	shutdown(fd, SHUT_RDWR);
	if (p.st_dead || p.up_len > p.up_off || virStreamFinish(st) < 0) {
		virStreamAbort(st);
		return p.st_dead ? -1 : 0;
	}
	return 0;
}
