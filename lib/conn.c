/* SPDX-License-Identifier: MIT */
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "pktlog.h"
#include "syscalls.h"
#include "wire.h"
#include "conn_z.h"

/*
 * Input is read in large slices to keep syscalls per byte low, into
 * whatever tail the buffer has once that is at least CONN_READ_MIN: the
 * partial packet at the end is then slid to the front about once per
 * megabyte rather than on every read.
 */
#define CONN_READ_SIZE (1024u * 1024u)
#define CONN_READ_MIN (64u * 1024u)
#define CONN_IN_MAX (WIRE_MAX_PACKET + 4 + CONN_READ_SIZE)
#define CONN_OUT_MAX (64u * 1024u * 1024u)
/* Largest data payload in one read-into-packet. */
#define CHAN_READ_MAX (256u * 1024u)
/*
 * Direct input: a CHANNEL_DATA payload goes to the channel's direct() when at
 * least this much of it is still in the stream once its header is read.
 */
#define CONN_DIRECT_MIN (64u * 1024u)
/*
 * A direct pipe found full stops the stream this long at most: long enough
 * for a reader held up by its disk (dirty-page throttling sleeps up to
 * 200 ms), short enough that the connection's other channels barely notice
 * a reader that stopped for good.
 */
#define CONN_DIRECT_STALL_MS 500
/* Length, type, recipient channel, data length. */
#define CONN_DATA_HDR 13u
/* Largest data payload in any packet we send. */
#define CHAN_DATA_MAX (WIRE_MAX_PACKET - 2048u) /* fits the SSH relay too */

static void conn_finish(struct conn *c);
static void conn_greet(struct conn *c);
static void conn_log_skips(struct conn *c, const char *before);

static void conn_direct_unwait(struct conn *c)
{
	c->dxw.fd = -1;
}

static short conn_want_read(struct watch *w)
{
	struct conn *c = w->data;
	if (c->dead || c->ended || c->want_finish)
		return 0;
	if (c->dxw.fd >= 0) {
		if (c->dx_ch && loop_pause_active(c->loop, &c->dx_stall))
			return 0;
		if (c->dx_ch) {
			/* Its reader stopped: queue its data as before, never wait again. */
			c->dx_ch->dx_stalled = true;
			log_debug("channel %u: pipe full for %d ms, copying its data from now on",
				  c->dx_ch->id, CONN_DIRECT_STALL_MS);
		}
		conn_direct_unwait(c);
	}
	/* A peer that does not read our replies cannot make us queue more. */
	if (buf_used(&c->out) + buf_used(&c->zout) > 2 * c->cfg.out_high)
		return 0;
	return POLLIN;
}

static short conn_want_write(struct watch *w)
{
	struct conn *c = w->data;
	if (c->ended)
		return 0;
	if (c->tty_pace && loop_pause_active(c->loop, &c->line_wait))
		return 0;
	if (c->sp_left || buf_used(&c->zout))
		return POLLOUT;
	return buf_used(&c->out) && conn_z_writable(c) ? POLLOUT : 0;
}

static void conn_read_ready(struct watch *w, short rev);
static void conn_write_ready(struct watch *w, short rev);

static short conn_want_pipe(struct watch *w)
{
	struct conn *c = w->data;
	return c->dead || c->ended || c->want_finish ? 0 : POLLOUT;
}

/* The full direct pipe has room again (or lost its reader): read on. */
static void conn_pipe_ready(struct watch *w, short rev)
{
	struct conn *c = w->data;
	(void)rev;
	conn_direct_unwait(c);
	conn_read_ready(&c->rw, POLLIN);
}

static const struct watch_ops conn_read_ops = { .want = conn_want_read, .ready = conn_read_ready };
static const struct watch_ops conn_write_ops = { .want = conn_want_write, .ready = conn_write_ready };
static const struct watch_ops conn_pipe_ops = { .want = conn_want_pipe, .ready = conn_pipe_ready };

int conn_init(struct conn *c, struct loop *l, int rfd, int wfd, const struct conn_cfg *cfg,
	      const struct conn_ops *ops, void *data)
{
	*c = (struct conn){ .rfd = rfd, .wfd = wfd, .loop = l, .cfg = *cfg, .ops = ops, .data = data,
			    .sp_fd = -1 };
	if (!c->cfg.window)
		c->cfg.window = 4u * 1024 * 1024;
	if (!c->cfg.maxpkt || c->cfg.maxpkt > WIRE_MAX_PACKET - 512)
		c->cfg.maxpkt = WIRE_MAX_PACKET - 512;
	if (!c->cfg.max_channels)
		c->cfg.max_channels = 1024;
	if (!c->cfg.out_high)
		c->cfg.out_high = 1024 * 1024;
	buf_init(&c->in, CONN_IN_MAX);
	buf_init(&c->out, CONN_OUT_MAX);
	/*
	 * Pipe payloads are spliced only into sockets and pipes, whose
	 * splice_write we know; character devices (virtio-serial ports,
	 * ttys) get copies.  Decided here, before any sandbox (fstat).
	 */
	struct stat st;
	bool wst = fstat(wfd, &st) == 0;
	if (!wst || !(S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)))
		c->no_splice = true;
	c->tty_pace = c->cfg.line_rate && isatty(wfd);
	/* Unix98 pty slaves (majors 136-143) keep no transmit queue we could see. */
	c->rate_pace = c->tty_pace && wst && S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 &&
		       major(st.st_rdev) <= 143;
	/* The same for splicing input out of the stream; a packet log shows
	 * every payload and a port keeps parsed bytes (hist), so not there. */
	c->dx_ok = fstat(rfd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)) &&
		   !c->cfg.pktlog && !c->cfg.greet_after_peer;
	if (!c->cfg.greet_after_peer)
		conn_greet(c);
	if (c->cfg.compress && !c->cfg.greet_after_peer)
		conn_z_ask(c);
	c->rw = (struct watch){ .fd = rfd, .ops = &conn_read_ops, .data = c };
	c->ww = (struct watch){ .fd = wfd, .ops = &conn_write_ops, .data = c };
	c->dxw = (struct watch){ .fd = -1, .ops = &conn_pipe_ops, .data = c };
	if (loop_add(l, &c->rw) < 0 || loop_add(l, &c->ww) < 0 || loop_add(l, &c->dxw) < 0)
		return -ENOMEM;
	return 0;
}

void conn_free(struct conn *c)
{
	if (c->loop) {
		loop_del(c->loop, &c->rw);
		loop_del(c->loop, &c->ww);
		loop_del(c->loop, &c->dxw);
	}
	for (uint32_t i = 0; i < c->nch; i++)
		free(c->ch[i]);
	free(c->ch);
	if (c->sp_fd >= 0)
		close(c->sp_fd);
	c->sp_fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
	conn_z_free(c);
}

bool conn_compressing(const struct conn *c)
{
	return c->ztx && c->zrx;
}

bool conn_can_queue(const struct conn *c)
{
	return !c->dead && !c->ended && buf_used(&c->out) + buf_used(&c->zout) < c->cfg.out_high;
}

size_t conn_pkt_begin(struct conn *c, uint8_t type)
{
	size_t start = buf_used(&c->out);
	buf_u32(&c->out, 0);
	buf_u8(&c->out, type);
	return start;
}

void conn_pkt_end(struct conn *c, size_t start)
{
	if (c->out.err)
		return;
	uint8_t *p = buf_data(&c->out) + start;
	size_t len = buf_used(&c->out) - start - 4;
	put_be32(p, (uint32_t)len);
	if (c->cfg.pktlog)
		pktlog_write(c->cfg.pktlog, '>', p + 4, len);
}

static void conn_put_disconnect(struct conn *c, uint32_t code, const char *why)
{
	size_t s = conn_pkt_begin(c, MSG_DISCONNECT);
	buf_u32(&c->out, code);
	buf_cstr(&c->out, why);
	buf_cstr(&c->out, "");
	conn_pkt_end(c, s);
}

void conn_fail(struct conn *c, uint32_t code, const char *fmt, ...)
{
	if (c->dead || c->ended)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	log_warn("protocol error from peer: %s", c->reason);
	c->dead = true;
	c->broke = true;
	conn_put_disconnect(c, code, c->reason);
}

static void conn_splice_end(struct conn *c);

/* Drop what is queued for the peer: nobody will read it. */
static void conn_drop_output(struct conn *c)
{
	buf_reset(&c->out);
	if (c->sp_fd >= 0)
		conn_splice_end(c);
}

void conn_restart(struct conn *c, const char *why)
{
	if (c->dead || c->ended)
		return;
	snprintf(c->reason, sizeof(c->reason), "%s", why);
	log_warn("%s: the host of this session is gone; ending it for the new one (%zu bytes of "
		 "output for the old host dropped)",
		 why, buf_used(&c->out) + c->sp_left);
	c->dead = true;
	c->restarted = true;
	conn_drop_output(c);
	c->want_finish = true;
}

void conn_disconnect(struct conn *c, const char *why)
{
	if (c->dead || c->ended)
		return;
	snprintf(c->reason, sizeof(c->reason), "%s", why);
	c->dead = true;
	conn_put_disconnect(c, DISC_BY_APPLICATION, why);
}

static void conn_splice_end(struct conn *c)
{
	close(c->sp_fd);
	c->sp_fd = -1;
	c->sp_left = 0;
	c->sp_at = 0;
}

/*
 * The stream refused splice (a tty, say): put the pipe's bytes in front
 * of the queue, where they belong, and copy from now on.  Rare: once per
 * connection at most.
 */
static int conn_splice_unsplice(struct conn *c)
{
	size_t n = c->sp_left, used = buf_used(&c->out);
	c->no_splice = true;
	if (!buf_reserve(&c->out, n))
		return -ENOMEM;
	uint8_t *p = buf_data(&c->out);
	memmove(p + n, p, used);
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(c->sp_fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	buf_commit(&c->out, n);
	conn_splice_end(c);
	return 0;
}

/* Bytes the kernel may hold for a slow line before we add more. */
#define CONN_LINE_QUEUE 1024

static long long conn_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * A pty: what the line's rate allows now.  Credit grows at line_rate up to
 * one CONN_LINE_QUEUE and shrinks by what we wrote since the last look, so
 * whatever stands behind the pty never holds more than that for us.
 */
static size_t conn_rate_room(struct conn *c)
{
	long long now = conn_mono_ns();
	if (!c->pace_ns)
		c->pace_credit = CONN_LINE_QUEUE;
	else
		c->pace_credit += (double)(now - c->pace_ns) * c->cfg.line_rate / 1e9;
	c->pace_credit -= (double)(c->tx_bytes - c->pace_tx);
	if (c->pace_credit > CONN_LINE_QUEUE)
		c->pace_credit = CONN_LINE_QUEUE;
	c->pace_ns = now;
	c->pace_tx = c->tx_bytes;
	if (c->pace_credit >= 1)
		return (size_t)c->pace_credit;
	/* Wait for a quarter of the queue's worth (at most 10 ms). */
	long long ms = (long long)(CONN_LINE_QUEUE / 4 - c->pace_credit) * 1000 / c->cfg.line_rate;
	loop_pause_for(&c->line_wait, ms < 1 ? 1 : ms > 10 ? 10 : (int)ms);
	return 0;
}

/*
 * A slow tty: how much of the kernel's queue is free for us now, or 0 with
 * the write paused until the line has taken enough of it.
 */
static size_t conn_line_room(struct conn *c)
{
	int q = 0;
	if (c->rate_pace)
		return conn_rate_room(c);
	if (!c->tty_pace || ioctl(c->wfd, TIOCOUTQ, &q) < 0)
		return SIZE_MAX;
	if (q < CONN_LINE_QUEUE)
		return (size_t)(CONN_LINE_QUEUE - q);
	long long ms = (long long)(q - CONN_LINE_QUEUE / 2) * 1000 / c->cfg.line_rate;
	/* Look again soon: a line faster than its termios speed (an emulated
	 * UART) drains sooner than the rate says. */
	loop_pause_for(&c->line_wait, ms < 1 ? 1 : ms > 10 ? 10 : (int)ms);
	return 0;
}

/* Write queued bytes up to the pipe payload, then it: 1 while blocked. */
static int conn_flush_some(struct conn *c)
{
	if (c->ztx) {
		/* Compressed: whole packets through zlib, then the wire queue. */
		if (conn_z_pump(c) < 0)
			return -ENOMEM;
		while (buf_used(&c->zout)) {
			size_t lr = conn_line_room(c);
			if (!lr)
				return 1;
			size_t want = buf_used(&c->zout) < lr ? buf_used(&c->zout) : lr;
			ssize_t n = write(c->wfd, buf_data(&c->zout), want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return errno == EAGAIN ? 1 : -errno;
			}
			buf_consume(&c->zout, (size_t)n);
			c->tx_bytes += (uint64_t)n;
		}
		return 0;
	}
	size_t lim = c->sp_left ? c->sp_at : buf_used(&c->out);
	size_t hold = conn_z_writable(c);
	if (lim > hold)
		lim = hold;
	while (lim) {
		size_t lr = conn_line_room(c);
		if (!lr)
			return 1;
		ssize_t n = write(c->wfd, buf_data(&c->out), lim < lr ? lim : lr);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -errno;
		}
		buf_consume(&c->out, (size_t)n);
		c->tx_bytes += (uint64_t)n;
		lim -= (size_t)n;
		if (c->sp_left)
			c->sp_at -= (size_t)n;
		if (c->z_asked)
			c->z_hold -= (size_t)n;
	}
	if (c->z_asked && buf_used(&c->out))
		return 1; /* the rest waits for the peer's answer */
	while (c->sp_left) {
		ssize_t n = splice(c->sp_fd, NULL, c->wfd, NULL, c->sp_left,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS))
			return conn_splice_unsplice(c);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		c->sp_left -= (size_t)n;
		c->tx_bytes += (uint64_t)n;
		if (!c->sp_left)
			conn_splice_end(c);
	}
	return 0;
}

void conn_flush(struct conn *c)
{
	if (c->ended)
		return;
	while (buf_used(&c->out) || c->sp_left || buf_used(&c->zout)) {
		int r = conn_flush_some(c);
		if (r == 1)
			return;
		if (r < 0) {
			log_info("write to peer: %s", strerror(-r));
			buf_reset(&c->out);
			buf_reset(&c->zout);
			if (c->sp_fd >= 0)
				conn_splice_end(c);
			c->want_finish = true;
			return;
		}
	}
	if (c->out.err || c->zout.err) {
		log_err("output queue overflow");
		c->want_finish = true;
		return;
	}
	if (c->dead)
		c->want_finish = true;
}

void conn_service(struct conn *c)
{
	if (c->ended)
		return;
	conn_flush(c);
	if (c->want_finish)
		conn_finish(c);
}

void conn_abort(struct conn *c)
{
	c->want_finish = true;
	conn_service(c);
}

static void conn_write_ready(struct watch *w, short rev)
{
	struct conn *c = w->data;
	/*
	 * A virtio-serial port with nobody on the host side polls as hung up
	 * and not writable.  Whatever we queued was for a host that has gone;
	 * waiting to write it would only hand it to the next host (or wait
	 * forever), so the session ends here.
	 */
	if (c->cfg.greet_after_peer && (rev & POLLHUP) && !(rev & POLLOUT)) {
		snprintf(c->reason, sizeof(c->reason), "peer hung up (nobody has the port open)");
		log_info("%s: dropping %zu bytes of output", c->reason, buf_used(&c->out));
		conn_drop_output(c);
		c->dead = true;
		c->want_finish = true;
		return;
	}
	conn_flush(c);
}

/* ---- channel table ---- */

static struct chan *chan_alloc(struct conn *c)
{
	if (c->nopen >= c->cfg.max_channels)
		return NULL;
	uint32_t id = 0;
	while (id < c->nch && c->ch[id])
		id++;
	if (id == c->nch) {
		uint32_t nn = c->nch ? c->nch * 2 : 8;
		struct chan **nt = realloc(c->ch, nn * sizeof(*nt));
		if (!nt)
			return NULL;
		memset(nt + c->nch, 0, (nn - c->nch) * sizeof(*nt));
		c->ch = nt;
		c->nch = nn;
	}
	struct chan *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->c = c;
	ch->id = id;
	ch->lwin = ch->lwin_max = c->cfg.window;
	ch->lmaxpkt = c->cfg.maxpkt;
	c->ch[id] = ch;
	c->nopen++;
	return ch;
}

static void chan_release(struct chan *ch)
{
	struct conn *c = ch->c;
	if (ch->direct)
		c->ndirect--;
	if (c->dx_ch == ch) {
		c->dx_ch = NULL; /* the rest of its payload is dropped */
		conn_direct_unwait(c);
	}
	c->ch[ch->id] = NULL;
	c->nopen--;
	free(ch);
}

static void chan_closed(struct chan *ch)
{
	if (ch->ops && ch->ops->closed)
		ch->ops->closed(ch);
	chan_release(ch);
}

static void conn_finish(struct conn *c)
{
	if (c->ended)
		return;
	c->ended = true;
	c->dead = true;
	if (!c->greeted)
		conn_log_skips(c, "the port went quiet");
	for (uint32_t i = 0; i < c->nch; i++) {
		if (c->ch[i]) {
			c->ch[i]->rcvd_close = true;
			chan_closed(c->ch[i]);
		}
	}
	loop_del(c->loop, &c->rw);
	loop_del(c->loop, &c->ww);
	loop_del(c->loop, &c->dxw);
	if (c->ops->ended)
		c->ops->ended(c);
}

struct chan *chan_open(struct conn *c, const char *type, const struct chan_ops *ops, void *data)
{
	return chan_open_ex(c, type, NULL, 0, ops, data);
}

struct chan *chan_open_ex(struct conn *c, const char *type, const void *args, size_t n,
			  const struct chan_ops *ops, void *data)
{
	if (!conn_can_queue(c) && (c->dead || c->ended))
		return NULL;
	struct chan *ch = chan_alloc(c);
	if (!ch)
		return NULL;
	ch->ops = ops;
	ch->data = data;
	ch->state = CH_OPENING;
	size_t s = conn_pkt_begin(c, MSG_CHANNEL_OPEN);
	buf_cstr(&c->out, type);
	buf_u32(&c->out, ch->id);
	buf_u32(&c->out, ch->lwin);
	buf_u32(&c->out, ch->lmaxpkt);
	if (n)
		buf_put(&c->out, args, n);
	conn_pkt_end(c, s);
	return ch;
}

size_t chan_packet_max(const struct chan *ch, bool inbound)
{
	uint32_t max = inbound ? ch->lmaxpkt : ch->rmaxpkt;
	return max < CHAN_DATA_MAX ? max : CHAN_DATA_MAX;
}

/* Slow line: one packet per channel per loop round while the round had room. */
static bool chan_round_turn(const struct chan *ch)
{
	struct conn *c = ch->c;
	if (c->room_round != c->loop->round) {
		c->room_round = c->loop->round;
		c->round_room = conn_can_queue(c);
	}
	return c->round_room && ch->sent_round != c->loop->round && !c->dead && !c->ended;
}

size_t chan_send_room(const struct chan *ch)
{
	if (ch->state != CH_OPEN || ch->sent_eof || ch->sent_close)
		return 0;
	if (ch->c->cfg.tx_maxpkt ? !chan_round_turn(ch) : !conn_can_queue(ch->c))
		return 0;
	/* One pipe payload in the queue at a time: wait until it is out. */
	if (ch->c->sp_left)
		return 0;
	size_t room = ch->rwin;
	if (room > ch->rmaxpkt)
		room = ch->rmaxpkt;
	/* Whatever the peer advertises, no packet of ours exceeds the limit we
	 * hold peers to (header: at most 17 bytes). */
	if (room > CHAN_DATA_MAX)
		room = CHAN_DATA_MAX;
	if (ch->c->cfg.tx_maxpkt && room > ch->c->cfg.tx_maxpkt)
		room = ch->c->cfg.tx_maxpkt; /* a slow line: small packets interleave */
	return room;
}

static size_t chan_data_header(struct chan *ch, uint32_t ext, uint8_t *h, size_t n)
{
	size_t hl = 0;
	put_be32(h, 0);
	hl = 4;
	h[hl++] = ext ? MSG_CHANNEL_EXTENDED_DATA : MSG_CHANNEL_DATA;
	put_be32(h + hl, ch->rid);
	hl += 4;
	if (ext) {
		put_be32(h + hl, ext);
		hl += 4;
	}
	put_be32(h + hl, (uint32_t)n);
	hl += 4;
	put_be32(h, (uint32_t)(hl - 4 + n));
	return hl;
}

/* Header bytes of a data packet: length, type, recipient, [ext type], data length. */
static size_t chan_data_hlen(uint32_t ext)
{
	return ext ? 17 : 13;
}

uint8_t *chan_data_reserve(struct chan *ch, uint32_t ext, size_t n)
{
	uint8_t *w = buf_reserve(&ch->c->out, chan_data_hlen(ext) + n);
	return w ? w + chan_data_hlen(ext) : NULL;
}

void chan_data_commit(struct chan *ch, uint32_t ext, size_t n)
{
	struct conn *c = ch->c;
	uint8_t *w = c->out.p + c->out.len; /* where chan_data_reserve() put it */
	size_t hl = chan_data_header(ch, ext, w, n);
	if (c->cfg.pktlog)
		pktlog_write(c->cfg.pktlog, '>', w + 4, hl - 4 + n);
	buf_commit(&c->out, hl + n);
	ch->rwin -= (uint32_t)n;
	ch->sent_round = c->loop->round;
}

size_t chan_send(struct chan *ch, uint32_t ext, const void *p, size_t n)
{
	const uint8_t *src = p;
	size_t done = 0;
	while (done < n) {
		size_t room = chan_send_room(ch);
		if (!room)
			break;
		size_t k = n - done < room ? n - done : room;
		uint8_t *w = chan_data_reserve(ch, ext, k);
		if (!w)
			break;
		memcpy(w, src + done, k);
		chan_data_commit(ch, ext, k);
		done += k;
	}
	return done;
}

ssize_t chan_send_from_fd(struct chan *ch, uint32_t ext, int fd)
{
	size_t room = chan_send_room(ch);
	if (!room)
		return -EAGAIN;
	if (room > CHAN_READ_MAX)
		room = CHAN_READ_MAX;
	uint8_t *w = chan_data_reserve(ch, ext, room);
	if (!w)
		return -ENOMEM;
	ssize_t r;
	do
		r = read(fd, w, room);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	chan_data_commit(ch, ext, (size_t)r);
	return r;
}

/* chan_send_pipe() where payloads may not be spliced (zlib@wicket): copy them. */
static int chan_send_pipe_copy(struct chan *ch, uint32_t ext, const void *pre, size_t a, int fd,
			       size_t f)
{
	struct conn *c = ch->c;
	uint8_t *w = buf_reserve(&c->out, chan_data_hlen(ext) + a + f);
	if (!w)
		return -ENOMEM;
	size_t hl = chan_data_hlen(ext);
	if (a)
		memcpy(w + hl, pre, a);
	size_t got = 0;
	while (got < f) {
		ssize_t r = read(fd, w + hl + a + got, f - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO; /* the caller said @f bytes wait there */
		got += (size_t)r;
	}
	chan_data_commit(ch, ext, a + f);
	return 0;
}

int chan_send_pipe(struct chan *ch, uint32_t ext, const void *pre, size_t a, int fd, size_t f)
{
	struct conn *c = ch->c;
	if (c->sp_left || !f)
		return -EINVAL;
	if (c->ztx || c->z_asked)
		return chan_send_pipe_copy(ch, ext, pre, a, fd, f);
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return -errno;
	uint8_t *w = buf_reserve(&c->out, chan_data_hlen(ext) + a);
	if (!w) {
		close(dfd);
		return -ENOMEM;
	}
	size_t hl = chan_data_header(ch, ext, w, a + f);
	if (a)
		memcpy(w + hl, pre, a);
	buf_commit(&c->out, hl + a);
	ch->rwin -= (uint32_t)(a + f);
	ch->sent_round = c->loop->round;
	c->sp_fd = dfd;
	c->sp_at = buf_used(&c->out);
	c->sp_left = f;
	return 0;
}

ssize_t chan_send_from_pipe(struct chan *ch, uint32_t ext, int fd)
{
	struct conn *c = ch->c;
	size_t room = chan_send_room(ch);
	int avail = 0;
	/* The packet log shows payloads, which it could not here. */
	if (!room || c->no_splice || c->cfg.pktlog || ioctl(fd, FIONREAD, &avail) < 0 ||
	    avail <= 0)
		return chan_send_from_fd(ch, ext, fd); /* nothing there: EOF, or copy */
	size_t n = (size_t)avail < room ? (size_t)avail : room;
	if (n > CHAN_READ_MAX)
		n = CHAN_READ_MAX;
	int r = chan_send_pipe(ch, ext, NULL, 0, fd, n);
	return r < 0 ? r : (ssize_t)n;
}

void chan_consumed(struct chan *ch, size_t n)
{
	struct conn *c = ch->c;
	ch->lunacked += (uint32_t)n;
	if (ch->rcvd_eof || ch->sent_close || c->dead)
		return;
	/* Top up once half the window is used: few adjusts, no stalls. */
	if (ch->lunacked >= ch->lwin_max / 2) {
		size_t s = conn_pkt_begin(c, MSG_CHANNEL_WINDOW_ADJUST);
		buf_u32(&c->out, ch->rid);
		buf_u32(&c->out, ch->lunacked);
		conn_pkt_end(c, s);
		ch->lwin += ch->lunacked;
		ch->lunacked = 0;
	}
}

void chan_set_direct(struct chan *ch, bool on)
{
	if (ch->direct == on)
		return;
	ch->direct = on;
	if (on)
		ch->c->ndirect++;
	else
		ch->c->ndirect--;
}

void chan_send_eof(struct chan *ch)
{
	struct conn *c = ch->c;
	if (ch->state != CH_OPEN || ch->sent_eof || ch->sent_close || c->dead)
		return;
	ch->sent_eof = true;
	size_t s = conn_pkt_begin(c, MSG_CHANNEL_EOF);
	buf_u32(&c->out, ch->rid);
	conn_pkt_end(c, s);
}

void chan_send_close(struct chan *ch)
{
	struct conn *c = ch->c;
	if (ch->state != CH_OPEN || ch->sent_close || c->dead)
		return;
	ch->sent_close = true;
	size_t s = conn_pkt_begin(c, MSG_CHANNEL_CLOSE);
	buf_u32(&c->out, ch->rid);
	conn_pkt_end(c, s);
}

size_t chan_request_begin(struct chan *ch, const char *type, bool want_reply, uint32_t tag)
{
	struct conn *c = ch->c;
	if (want_reply) {
		if (ch->tag_n == CHAN_MAX_PENDING_REPLIES) {
			/* Our own bug, not the peer's: end visibly rather than desync. */
			log_err("channel %u: more than %u requests awaiting replies", ch->id,
				CHAN_MAX_PENDING_REPLIES);
			conn_disconnect(c, "internal error: too many outstanding requests");
			want_reply = false;
		} else {
			ch->tags[(ch->tag_head + ch->tag_n++) % CHAN_MAX_PENDING_REPLIES] = tag;
		}
	}
	size_t s = conn_pkt_begin(c, MSG_CHANNEL_REQUEST);
	buf_u32(&c->out, ch->rid);
	buf_cstr(&c->out, type);
	buf_bool(&c->out, want_reply);
	return s;
}

/* ---- input ---- */

/* Look up the channel a message names; NULL after failing the connection. */
static struct chan *chan_lookup(struct conn *c, uint32_t id, unsigned type, bool opening_ok)
{
	struct chan *ch = id < c->nch ? c->ch[id] : NULL;
	if (!ch) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s for channel %u, which is not open",
			  msg_name(type), id);
		return NULL;
	}
	if (ch->state == CH_ACCEPTING) {
		/* Not confirmed yet: the peer cannot know this number. */
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s for channel %u, which is not open",
			  msg_name(type), id);
		return NULL;
	}
	if ((ch->state == CH_OPENING) != opening_ok) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s for channel %u in the wrong state",
			  msg_name(type), id);
		return NULL;
	}
	if (ch->rcvd_close) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s for channel %u after its CLOSE",
			  msg_name(type), id);
		return NULL;
	}
	return ch;
}

#define NEED_END(r, c, type)                                                              \
	do {                                                                              \
		if (!rd_end(r)) {                                                         \
			conn_fail(c, DISC_PROTOCOL_ERROR, "malformed %s message",         \
				  msg_name(type));                                        \
			return;                                                           \
		}                                                                         \
	} while (0)

static void conn_send_open_failure(struct conn *c, uint32_t rid, uint32_t reason, const char *msg)
{
	size_t s = conn_pkt_begin(c, MSG_CHANNEL_OPEN_FAILURE);
	buf_u32(&c->out, rid);
	buf_u32(&c->out, reason);
	buf_cstr(&c->out, msg);
	buf_cstr(&c->out, "");
	conn_pkt_end(c, s);
}

static void handle_channel_open(struct conn *c, struct rd *r)
{
	struct sv type = rd_str(r);
	uint32_t rid = rd_u32(r);
	uint32_t win = rd_u32(r);
	uint32_t maxpkt = rd_u32(r);
	if (r->err) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed CHANNEL_OPEN message");
		return;
	}
	if (maxpkt == 0) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "CHANNEL_OPEN with a zero maximum packet size");
		return;
	}
	struct chan *ch = chan_alloc(c);
	if (!ch) {
		conn_send_open_failure(c, rid, OPEN_RESOURCE_SHORTAGE, "too many channels");
		return;
	}
	ch->rid = rid;
	ch->rwin = win;
	ch->rmaxpkt = maxpkt;
	ch->state = CH_ACCEPTING;
	const char *msg = "unknown channel type";
	uint32_t reason = OPEN_UNKNOWN_CHANNEL_TYPE;
	if (c->ops->open)
		reason = c->ops->open(c, ch, type, r, &msg);
	if (!reason && !ch->ops) {
		reason = OPEN_CONNECT_FAILED;
		msg = "no handler for this channel";
	}
	if (reason == CHAN_OPEN_DEFERRED && ch->ops)
		return; /* answered by chan_open_confirm/chan_open_reject */
	if (reason == CHAN_OPEN_DEFERRED) {
		reason = OPEN_CONNECT_FAILED;
		msg = "no handler for this channel";
	}
	if (reason) {
		conn_send_open_failure(c, rid, reason, msg ? msg : "refused");
		ch->ops = NULL;
		chan_release(ch);
		return;
	}
	chan_open_confirm(ch);
}

void chan_open_confirm(struct chan *ch)
{
	struct conn *c = ch->c;
	if (ch->state != CH_ACCEPTING)
		return;
	ch->state = CH_OPEN;
	if (!c->dead) {
		size_t s = conn_pkt_begin(c, MSG_CHANNEL_OPEN_CONFIRMATION);
		buf_u32(&c->out, ch->rid);
		buf_u32(&c->out, ch->id);
		buf_u32(&c->out, ch->lwin);
		buf_u32(&c->out, ch->lmaxpkt);
		conn_pkt_end(c, s);
	}
	if (ch->ops && ch->ops->opened)
		ch->ops->opened(ch);
}

void chan_open_reject(struct chan *ch, uint32_t reason, const char *msg)
{
	if (ch->state != CH_ACCEPTING)
		return;
	if (!ch->c->dead)
		conn_send_open_failure(ch->c, ch->rid, reason, msg ? msg : "refused");
	ch->ops = NULL;
	chan_release(ch);
}

static void handle_open_confirmation(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	uint32_t rid = rd_u32(r);
	uint32_t win = rd_u32(r);
	uint32_t maxpkt = rd_u32(r);
	if (r->err) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed CHANNEL_OPEN_CONFIRMATION message");
		return;
	}
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_OPEN_CONFIRMATION, true);
	if (!ch)
		return;
	if (maxpkt == 0) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "channel confirmed with a zero maximum packet size");
		return;
	}
	ch->rid = rid;
	ch->rwin = win;
	ch->rmaxpkt = maxpkt;
	ch->state = CH_OPEN;
	if (ch->ops->opened)
		ch->ops->opened(ch);
}

static void handle_open_failure(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	uint32_t reason = rd_u32(r);
	struct sv msg = rd_str(r);
	rd_str(r); /* language tag */
	NEED_END(r, c, MSG_CHANNEL_OPEN_FAILURE);
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_OPEN_FAILURE, true);
	if (!ch)
		return;
	if (ch->ops->open_failed)
		ch->ops->open_failed(ch, reason, msg);
	ch->ops = NULL;
	chan_release(ch);
}

/*
 * Admit @n bytes of data on channel @id against its state, window and
 * maximum packet, and take them off the window.  NULL after failing.
 */
static struct chan *chan_data_admit(struct conn *c, uint32_t id, size_t n, unsigned type)
{
	struct chan *ch = chan_lookup(c, id, type, false);
	if (!ch)
		return NULL;
	if (ch->rcvd_eof) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "data on channel %u after its EOF", id);
		return NULL;
	}
	if (n > ch->lwin) {
		conn_fail(c, DISC_PROTOCOL_ERROR,
			  "%zu bytes on channel %u exceed the window of %u", n, id, ch->lwin);
		return NULL;
	}
	if (n > ch->lmaxpkt) {
		conn_fail(c, DISC_PROTOCOL_ERROR,
			  "%zu bytes on channel %u exceed the maximum packet of %u", n, id,
			  ch->lmaxpkt);
		return NULL;
	}
	ch->lwin -= (uint32_t)n;
	return ch;
}

static void handle_data(struct conn *c, struct rd *r, unsigned type)
{
	uint32_t id = rd_u32(r);
	uint32_t ext = 0;
	if (type == MSG_CHANNEL_EXTENDED_DATA)
		ext = rd_u32(r);
	struct sv d = rd_str(r);
	NEED_END(r, c, type);
	struct chan *ch = chan_data_admit(c, id, d.n, type);
	if (!ch)
		return;
	if (ch->sent_close || !ch->ops->data) {
		/* In flight when we closed: drop it. */
		return;
	}
	if (d.n)
		ch->ops->data(ch, ext, d.p, d.n);
}

static void handle_window_adjust(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	uint32_t add = rd_u32(r);
	NEED_END(r, c, MSG_CHANNEL_WINDOW_ADJUST);
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_WINDOW_ADJUST, false);
	if (!ch)
		return;
	if ((uint64_t)ch->rwin + add > UINT32_MAX) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "window of channel %u overflows 2^32-1", id);
		return;
	}
	ch->rwin += add;
}

static void handle_eof(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	NEED_END(r, c, MSG_CHANNEL_EOF);
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_EOF, false);
	if (!ch)
		return;
	if (ch->rcvd_eof)
		return; /* duplicate EOF is harmless */
	ch->rcvd_eof = true;
	if (!ch->sent_close && ch->ops->eof)
		ch->ops->eof(ch);
}

static void handle_close(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	NEED_END(r, c, MSG_CHANNEL_CLOSE);
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_CLOSE, false);
	if (!ch)
		return;
	ch->rcvd_close = true;
	/* Answer before the handler runs so a CLOSE always gets a CLOSE. */
	if (!ch->sent_close) {
		ch->sent_close = true;
		size_t s = conn_pkt_begin(c, MSG_CHANNEL_CLOSE);
		buf_u32(&c->out, ch->rid);
		conn_pkt_end(c, s);
	}
	chan_closed(ch);
}

static void handle_channel_request(struct conn *c, struct rd *r)
{
	uint32_t id = rd_u32(r);
	struct sv type = rd_str(r);
	bool want = rd_bool(r);
	if (r->err) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed CHANNEL_REQUEST message");
		return;
	}
	struct chan *ch = chan_lookup(c, id, MSG_CHANNEL_REQUEST, false);
	if (!ch)
		return;
	bool ok = false;
	if (!ch->sent_close && ch->ops->request)
		ok = ch->ops->request(ch, type, want, r);
	if (c->dead)
		return;
	if (want && !ch->sent_close) {
		size_t s = conn_pkt_begin(c, ok ? MSG_CHANNEL_SUCCESS : MSG_CHANNEL_FAILURE);
		buf_u32(&c->out, ch->rid);
		conn_pkt_end(c, s);
	}
}

static void handle_channel_reply(struct conn *c, struct rd *r, unsigned type)
{
	uint32_t id = rd_u32(r);
	NEED_END(r, c, type);
	struct chan *ch = chan_lookup(c, id, type, false);
	if (!ch)
		return;
	if (!ch->tag_n) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s on channel %u with no request outstanding",
			  msg_name(type), id);
		return;
	}
	uint32_t tag = ch->tags[ch->tag_head];
	ch->tag_head = (ch->tag_head + 1) % CHAN_MAX_PENDING_REPLIES;
	ch->tag_n--;
	if (ch->ops->reply && !ch->sent_close)
		ch->ops->reply(ch, tag, type == MSG_CHANNEL_SUCCESS);
}

static void handle_global_request(struct conn *c, struct rd *r)
{
	struct sv name = rd_str(r);
	bool want = rd_bool(r);
	if (r->err) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed GLOBAL_REQUEST message");
		return;
	}
	if (sv_eq(name, CONN_Z_REQUEST)) {
		conn_z_grant(c, want);
		return;
	}
	bool ok = false;
	c->greply_n = 0;
	if (sv_eq(name, CONN_LINE_RATE_REQUEST)) {
		/* What this side knows of its line: bytes per second, 0 for none. */
		uint8_t rate[4];
		put_be32(rate, c->cfg.line_rate);
		conn_global_reply_data(c, rate, sizeof(rate));
		ok = true;
	} else if (c->ops->global_request) {
		ok = c->ops->global_request(c, name, want, r);
	}
	if (want && !c->dead) {
		size_t s = conn_pkt_begin(c, ok ? MSG_REQUEST_SUCCESS : MSG_REQUEST_FAILURE);
		if (ok && c->greply_n)
			buf_put(&c->out, c->greply, c->greply_n);
		conn_pkt_end(c, s);
	}
	c->greply_n = 0;
}

void conn_global_reply_data(struct conn *c, const void *p, size_t n)
{
	if (n > sizeof(c->greply) - c->greply_n)
		n = sizeof(c->greply) - c->greply_n;
	memcpy(c->greply + c->greply_n, p, n);
	c->greply_n += n;
}

static void handle_disconnect(struct conn *c, struct rd *r)
{
	uint32_t code = rd_u32(r);
	struct sv why = rd_str(r);
	rd_str(r); /* language tag */
	char txt[200];
	sv_printable(why, txt, sizeof(txt));
	snprintf(c->reason, sizeof(c->reason), "peer disconnected (code %u): %s", code, txt);
	log_info("%s", c->reason);
	/*
	 * On a port, a DISCONNECT that does not parse is most likely a dead
	 * host's last packet, cut short and completed by the start of the next
	 * host's greeting: keep it (and what was parsed before it) for the next
	 * greeting scan, as for a packet that broke the session.
	 */
	if (c->cfg.greet_after_peer && !rd_end(r)) {
		log_info("that DISCONNECT was malformed: rescanning it for a greeting");
		c->broke = true;
	}
	buf_reset(&c->out);
	if (c->sp_fd >= 0)
		conn_splice_end(c);
	c->dead = true;
	c->want_finish = true;
}

static void conn_handle_packet(struct conn *c, struct sv pkt)
{
	struct rd r;
	rd_init(&r, pkt.p, pkt.n);
	unsigned type = rd_u8(&r);
	if (c->cfg.pktlog)
		pktlog_write(c->cfg.pktlog, '<', pkt.p, pkt.n);
	if (!msg_allowed(type)) {
		conn_fail(c, DISC_PROTOCOL_ERROR,
			  "message type %u is not allowed on a bare ssh-connection stream", type);
		return;
	}
	switch (type) {
	case MSG_DISCONNECT:
		handle_disconnect(c, &r);
		break;
	case MSG_IGNORE:
	case MSG_UNIMPLEMENTED:
	case MSG_DEBUG:
		break;
	case MSG_GLOBAL_REQUEST:
		handle_global_request(c, &r);
		break;
	case MSG_REQUEST_SUCCESS:
	case MSG_REQUEST_FAILURE:
		if (c->z_asked) {
			conn_z_answer(c, type == MSG_REQUEST_SUCCESS);
			break;
		}
		conn_fail(c, DISC_PROTOCOL_ERROR, "%s with no global request outstanding",
			  msg_name(type));
		break;
	case MSG_CHANNEL_OPEN:
		handle_channel_open(c, &r);
		break;
	case MSG_CHANNEL_OPEN_CONFIRMATION:
		handle_open_confirmation(c, &r);
		break;
	case MSG_CHANNEL_OPEN_FAILURE:
		handle_open_failure(c, &r);
		break;
	case MSG_CHANNEL_WINDOW_ADJUST:
		handle_window_adjust(c, &r);
		break;
	case MSG_CHANNEL_DATA:
	case MSG_CHANNEL_EXTENDED_DATA:
		handle_data(c, &r, type);
		break;
	case MSG_CHANNEL_EOF:
		handle_eof(c, &r);
		break;
	case MSG_CHANNEL_CLOSE:
		handle_close(c, &r);
		break;
	case MSG_CHANNEL_REQUEST:
		handle_channel_request(c, &r);
		break;
	case MSG_CHANNEL_SUCCESS:
	case MSG_CHANNEL_FAILURE:
		handle_channel_reply(c, &r, type);
		break;
	default: {
		/* Connection-layer number we do not know: RFC 4253 11.4. */
		size_t s = conn_pkt_begin(c, MSG_UNIMPLEMENTED);
		buf_u32(&c->out, c->rx_seq);
		conn_pkt_end(c, s);
		break;
	}
	}
}

/* Keep the last sizeof(hist) bytes of parsed packets (ports only). */
static void conn_remember(struct conn *c, const uint8_t *p, size_t n)
{
	const size_t cap = sizeof(c->hist);
	if (n >= cap) {
		memcpy(c->hist, p + n - cap, cap);
		c->hist_n = cap;
		return;
	}
	if (c->hist_n + n > cap) {
		size_t drop = c->hist_n + n - cap;
		memmove(c->hist, c->hist + drop, c->hist_n - drop);
		c->hist_n -= drop;
	}
	memcpy(c->hist + c->hist_n, p, n);
	c->hist_n += n;
}

size_t conn_resync_tail(const struct conn *c, uint8_t *out, size_t max)
{
	/* Only a broken session (a protocol error, a malformed DISCONNECT) may
	 * have swallowed a greeting into a packet; after any other end,
	 * rescanning parsed bytes could only find text that was data (a file
	 * that quotes a greeting). */
	size_t keep = c->broke ? c->hist_n : 0;
	size_t h = keep < max ? keep : max;
	memcpy(out, c->hist + c->hist_n - h, h);
	size_t u = buf_used(&c->in);
	if (u > max - h)
		u = max - h;
	memcpy(out + h, buf_data(&c->in), u);
	return h + u;
}

/* Header-exact reading: some channel takes payloads from the stream. */
static bool conn_exact(const struct conn *c)
{
	return c->dx_ok && c->ndirect && c->greeted;
}

/*
 * The input buffer ends in the header of a CHANNEL_DATA packet for a
 * direct channel with at least CONN_DIRECT_MIN payload bytes still in the
 * stream: check the header as handle_data() would, admit the whole payload
 * against the window, hand over the part already read, and leave the rest
 * in the stream for conn_direct_step().  1 when taken, 0 to parse the
 * packet as usual, -1 after failing the connection.
 */
static int conn_direct_begin(struct conn *c)
{
	size_t u = buf_used(&c->in);
	const uint8_t *p = buf_data(&c->in);
	if (!conn_exact(c) || u < CONN_DATA_HDR || p[4] != MSG_CHANNEL_DATA)
		return 0;
	uint32_t len = get_be32(p);
	if (len > WIRE_MAX_PACKET || u >= 4 + (size_t)len ||
	    4 + (size_t)len - u < CONN_DIRECT_MIN)
		return 0; /* complete, small or bad: wire_next_packet() judges */
	uint32_t id = get_be32(p + 5), dlen = get_be32(p + 9);
	struct chan *ch = id < c->nch ? c->ch[id] : NULL;
	if (!ch || !ch->direct)
		return 0;
	if (len != CONN_DATA_HDR - 4 + (uint64_t)dlen) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "malformed %s message", msg_name(MSG_CHANNEL_DATA));
		return -1;
	}
	if (!chan_data_admit(c, id, dlen, MSG_CHANNEL_DATA))
		return -1;
	c->rx_seq++;
	buf_consume(&c->in, CONN_DATA_HDR);
	size_t have = u - CONN_DATA_HDR;
	/* In flight when we closed: dropped, as in handle_data(). */
	c->dx_ch = ch->sent_close || !ch->ops->data ? NULL : ch;
	c->dx_left = dlen - have;
	if (have && c->dx_ch)
		ch->ops->data(ch, 0, buf_data(&c->in), have);
	buf_consume(&c->in, have);
	return 1;
}

/* Our greeting: tagged with our nonce (host side), or, on a port, naming
 * the host it answers ("-": one that sent no nonce). */
static void conn_greet(struct conn *c)
{
	char comment[sizeof(WIRE_REPLY_KEY) + WIRE_TOKEN_MAX + 2] = "";
	char v[WIRE_TOKEN_MAX + 1];
	if (c->cfg.nonce) {
		snprintf(comment, sizeof(comment), WIRE_NONCE_KEY "=%s", c->cfg.nonce);
	} else if (c->cfg.greet_after_peer) {
		if (!wire_greeting_token(c->peer_version, WIRE_NONCE_KEY, v, sizeof(v)))
			snprintf(v, sizeof(v), "-");
		snprintf(comment, sizeof(comment), WIRE_REPLY_KEY "=%s", v);
	}
	wire_put_greeting_ex(&c->out, c->cfg.software, comment);
}

/* Port mode: one line saying what hosts that are gone left and we threw away. */
static void conn_log_skips(struct conn *c, const char *before)
{
	struct conn_skips *k = &c->skips;
	if (!c->cfg.greet_after_peer || !k->bytes || k->logged)
		return;
	k->logged = true;
	unsigned greetings = k->later + k->over + k->nobody;
	char why[160] = "";
	size_t w = 0;
	const struct {
		unsigned n;
		const char *what;
	} part[] = {
		{ k->later, "followed by a later one" },
		{ k->over, "with their own DISCONNECT" },
		{ k->nobody, "while nobody had the port open" },
	};
	for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++)
		if (part[i].n && w < sizeof(why))
			w += (size_t)snprintf(why + w, sizeof(why) - w, "%s%u %s", w ? ", " : "",
					      part[i].n, part[i].what);
	log_warn("discarded %llu bytes left by hosts that are gone, before %s: %u whole "
		 "greeting(s)%s%s%s, the rest fragments (half packets, cut-off greetings, garbage)",
		 (unsigned long long)k->bytes, before, greetings, w ? " (" : "", why, w ? ")" : "");
}

/* True when nobody is at the other end of a port (virtio: no host has it open). */
static bool conn_nobody_there(const struct conn *c)
{
	struct pollfd p = { .fd = c->wfd, .events = POLLOUT };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) && !(p.revents & POLLOUT);
}

/*
 * The greeting just taken is stale, so its host will never read an answer:
 * on a port, when a later greeting is already buffered, when its own
 * packets already hold its DISCONNECT (it gave up waiting), or when nobody
 * has the port open; on the host side, when it answers another host's
 * nonce.  *@drop: bytes after the line that belong to it and go too.
 */
static bool conn_greeting_stale(struct conn *c, size_t *drop)
{
	const uint8_t *p = buf_data(&c->in);
	size_t n = buf_used(&c->in);
	*drop = 0;
	if (c->cfg.nonce) {
		char v[WIRE_TOKEN_MAX + 1];
		if (!wire_greeting_token(c->peer_version, WIRE_REPLY_KEY, v, sizeof(v)) ||
		    strcmp(v, c->cfg.nonce) == 0)
			return false;
		log_debug("skipping a greeting that answers another host: %s", c->peer_version);
		c->skips.foreign++;
		return true;
	}
	if (!c->cfg.greet_after_peer)
		return false;
	size_t later = wire_find_greeting(p, n);
	if (later < n) {
		*drop = later;
		c->skips.later++;
	} else if (wire_disconnect_ahead(p, n, drop)) {
		c->skips.over++;
	} else if (conn_nobody_there(c)) {
		c->skips.nobody++;
	} else {
		return false;
	}
	log_debug("skipping a stale greeting: %s", c->peer_version);
	return true;
}

/*
 * Before the peer's greeting: find it, skipping stale ones (see
 * conn_greeting_stale()).  1 when taken, 0 for more bytes, -1 after
 * failing the connection.
 */
static int conn_take_greeting(struct conn *c)
{
	for (;;) {
		size_t before = buf_used(&c->in), skipped = 0;
		int r = wire_scan_greeting_skip(&c->in, c->peer_version, sizeof(c->peer_version),
						&skipped);
		c->skips.bytes += skipped;
		if (r < 0 && c->cfg.greet_after_peer) {
			/* An over-long line on a port is a dead host's garbage:
			 * drop its prefix and look further. */
			buf_consume(&c->in, sizeof(WIRE_GREETING_PREFIX) - 1);
			c->skips.bytes += sizeof(WIRE_GREETING_PREFIX) - 1;
			continue;
		}
		if (r < 0) {
			conn_fail(c, DISC_PROTOCOL_ERROR, "greeting line too long");
			return -1;
		}
		if (r == 0)
			return 0;
		size_t drop;
		if (!conn_greeting_stale(c, &drop))
			return 1;
		c->skips.bytes += before - skipped - buf_used(&c->in) + drop;
		buf_consume(&c->in, drop);
		c->peer_version[0] = 0;
	}
}

/*
 * Port mode, at a packet boundary: a greeting prefix (as far as it has
 * arrived) where a length should be.  No valid packet starts with 'S'
 * (0x53... is far over WIRE_MAX_PACKET), so this is a new host.
 */
static bool conn_greeting_at_boundary(const struct conn *c)
{
	const size_t plen = sizeof(WIRE_GREETING_PREFIX) - 1;
	size_t n = buf_used(&c->in);
	if (n < 4)
		return false;
	return memcmp(buf_data(&c->in), WIRE_GREETING_PREFIX, n < plen ? n : plen) == 0;
}

bool conn_partial_greeting(const struct conn *c)
{
	const uint8_t *p = buf_data(&c->in);
	size_t n = buf_used(&c->in), at = n;
	if (!c->greeted || n < 2)
		return false;
	/* The last prefix after the packet's first byte: with a burst of dead
	 * hosts before it, the one that is waiting for us is the last. */
	for (size_t i = 1; i < n;) {
		size_t k = wire_find_greeting(p + i, n - i);
		if (k == n - i)
			break;
		at = i + k;
		i = at + 1;
	}
	if (at == n)
		return false;
	/* Its whole line, then only whole packets: a host waiting for our
	 * answer, not payload that happens to quote a greeting. */
	const uint8_t *nl = memchr(p + at, '\n', n - at);
	return nl && wire_packets_whole(nl + 1, (size_t)(p + n - (nl + 1)));
}

/* Parse everything complete in the input buffer. */
static void conn_process(struct conn *c)
{
	if (!c->greeted) {
		if (conn_take_greeting(c) <= 0)
			return;
		c->greeted = true;
		log_debug("peer software: %s", c->peer_version);
		conn_log_skips(c, "this host's greeting");
		if (c->cfg.greet_after_peer)
			conn_greet(c);
		if (c->ops->greeted)
			c->ops->greeted(c);
	}
	while (!c->dead && !c->ended) {
		struct sv pkt;
		uint32_t len = 0;
		/* Kept so a packet that breaks the session stays in the buffer: on a
		 * serial line it may hold the next host's greeting (see agent/port.c). */
		size_t off = c->in.off, end = c->in.len;
		if (c->cfg.greet_after_peer && conn_greeting_at_boundary(c)) {
			conn_restart(c, "a new host's greeting where a packet should start");
			break;
		}
		if (conn_direct_begin(c))
			break; /* the buffer is empty: the payload is in the stream */
		int r = wire_next_packet(&c->in, &pkt, &len);
		if (r == 0)
			break;
		if (r == -EMSGSIZE) {
			conn_fail(c, DISC_PROTOCOL_ERROR,
				  "packet length %u exceeds the maximum of %u", len, WIRE_MAX_PACKET);
			return;
		}
		if (r < 0) {
			conn_fail(c, DISC_PROTOCOL_ERROR, "zero-length packet");
			return;
		}
		if (c->cfg.greet_after_peer)
			conn_remember(c, c->in.p + off, 4 + (size_t)len);
		if (c->zrx && conn_z_inflate(c, &pkt) < 0)
			return;
		conn_handle_packet(c, pkt);
		c->rx_seq++;
		if (c->broke && !c->ended) {
			c->in.off = off;
			c->in.len = end;
		}
	}
}

void conn_feed(struct conn *c, const void *p, size_t n)
{
	c->rx_bytes += n;
	buf_put(&c->in, p, n);
	if (c->in.err) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "input buffer exhausted");
		return;
	}
	conn_process(c);
}

/* A read from the stream returned @n (errno @err when negative). */
static void conn_read_stop(struct conn *c, ssize_t n, int err)
{
	if (n < 0) {
		if (err == EINTR || err == EAGAIN)
			return;
		snprintf(c->reason, sizeof(c->reason), "read from peer: %s", strerror(err));
		log_info("%s", c->reason);
		c->want_finish = true;
		return;
	}
	if (!c->reason[0])
		snprintf(c->reason, sizeof(c->reason), "%s",
			 c->greeted ? "peer closed the connection"
				    : "peer closed the connection before its greeting");
	log_debug("%s", c->reason);
	c->dead = true;
	c->want_finish = true;
}

/* Read at most @max bytes into the input buffer and parse; bytes read, or 0. */
static size_t conn_read_some(struct conn *c, size_t max)
{
	size_t room;
	uint8_t *p = buf_reserve_read(&c->in, CONN_READ_MIN, CONN_READ_SIZE, &room);
	if (!p) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "input buffer exhausted");
		return 0;
	}
	if (room > max)
		room = max;
	ssize_t n = read(c->rfd, p, room);
	if (n <= 0) {
		conn_read_stop(c, n, errno);
		return 0;
	}
	c->rx_bytes += (uint64_t)n;
	buf_commit(&c->in, (size_t)n);
	conn_process(c);
	return (size_t)n;
}

/*
 * Header-exact: how much to read so that no payload a channel could take
 * from the stream is read.  Complete packets were parsed, so the buffer
 * holds the start of one packet: up to its data header, else all of it.
 */
static size_t conn_exact_want(const struct conn *c)
{
	size_t u = buf_used(&c->in);
	if (u < CONN_DATA_HDR)
		return CONN_DATA_HDR - u;
	size_t whole = 4 + (size_t)get_be32(buf_data(&c->in));
	return whole > u ? whole - u : 1;
}

enum dx_next { DX_READ, DX_WAIT, DX_RETRY };

/*
 * A splice into @pw took nothing.  DX_WAIT: the pipe is full (its reader is
 * behind), so the stream is not read until the pipe has room rather than
 * copy the payload through our memory; or only the stream was empty (wait
 * for it as usual).  DX_RETRY: both are ready now (the payload arrived
 * just after the splice looked).  DX_READ: let a read tell (no reader
 * left, or this channel's reader stalled once already).  @busy: the
 * handler still has bytes queued for the pipe, which go first: wait for
 * room without asking.
 */
static enum dx_next conn_direct_wait(struct conn *c, struct chan *ch, int pw, bool busy)
{
	struct pollfd p[2] = { { .fd = pw, .events = POLLOUT }, { .fd = c->rfd, .events = POLLIN } };
	if (ch->dx_stalled)
		return DX_READ;
	if (!busy) {
		if (poll(p, 2, 0) < 0 || (p[0].revents & ~POLLOUT))
			return DX_READ;
		if (p[0].revents & POLLOUT)
			return p[1].revents & POLLIN ? DX_RETRY : DX_WAIT;
	}
	c->dxw.fd = pw;
	c->dx_waits++;
	loop_pause_for(&c->dx_stall, CONN_DIRECT_STALL_MS);
	return DX_WAIT;
}

/*
 * Part of a payload that is still in the stream: spliced into the
 * handler's pipe when its direct() asks, else read (exactly as far as it
 * asks) and passed to data(); dropped when the channel went away.
 * Bytes moved, or 0 when nothing could be.
 */
static size_t conn_direct_step(struct conn *c)
{
	struct chan *ch = c->dx_ch;
	size_t k = 0, exact = 0;
	int pw = -1;
	if (ch && ch->direct && c->dx_ok && ch->ops->direct && !ch->sent_close)
		k = ch->ops->direct(ch, c->dx_left, &pw, &exact);
	if (!k && pw >= 0 && conn_direct_wait(c, ch, pw, true) == DX_WAIT)
		return 0;
	/* One retry when a splice raced with the payload's arrival. */
	for (int tries = 0; k && pw >= 0; tries++) {
		if (k > c->dx_left)
			k = c->dx_left;
		ssize_t n = splice(c->rfd, NULL, pw, NULL, k, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			c->rx_bytes += (uint64_t)n;
			c->dx_left -= (size_t)n;
			c->dx_spliced += (uint64_t)n;
			if (!c->dx_left)
				c->dx_ch = NULL;
			ch->ops->data_piped(ch, (size_t)n);
			return (size_t)n;
		}
		int err = errno;
		if (n == 0 || err == EINTR) {
			conn_read_stop(c, n, err);
			return 0;
		}
		enum dx_next next = err == EAGAIN ? conn_direct_wait(c, ch, pw, false) : DX_READ;
		if (next == DX_WAIT)
			return 0;
		if (next == DX_RETRY && !tries)
			continue;
		if (err == EINVAL || err == ENOSYS)
			c->dx_ok = false; /* copies from now on */
		/*
		 * Either end may have refused: a closed or stalled pipe (a
		 * child that stopped reading) or a broken stream.  A read
		 * tells them apart; the bytes it gets go through data(), which
		 * queues them against the window (no spinning on a full pipe).
		 */
		break;
	}
	size_t want = exact && exact < c->dx_left ? exact : c->dx_left, room;
	uint8_t *p = buf_reserve_read(&c->in, CONN_READ_MIN, CONN_READ_SIZE, &room);
	if (!p) {
		conn_fail(c, DISC_PROTOCOL_ERROR, "input buffer exhausted");
		return 0;
	}
	ssize_t n = read(c->rfd, p, want < room ? want : room);
	if (n <= 0) {
		conn_read_stop(c, n, errno);
		return 0;
	}
	c->rx_bytes += (uint64_t)n;
	c->dx_left -= (size_t)n;
	if (!c->dx_left)
		c->dx_ch = NULL;
	if (ch && !ch->sent_close)
		ch->ops->data(ch, 0, p, (size_t)n); /* never committed: the buffer stays empty */
	return (size_t)n;
}

static void conn_read_ready(struct watch *w, short rev)
{
	struct conn *c = w->data;
	(void)rev;
	if (c->dxw.fd >= 0)
		return; /* waiting for a direct pipe */
	if (!c->dx_left && !conn_exact(c)) {
		conn_read_some(c, CONN_READ_SIZE);
		return;
	}
	/* Several small reads per packet: go on while the stream has bytes. */
	for (size_t budget = CONN_READ_SIZE; budget && conn_want_read(&c->rw);) {
		size_t n = c->dx_left ? conn_direct_step(c) : conn_read_some(c, conn_exact_want(c));
		if (!n)
			break;
		budget -= n < budget ? n : budget;
	}
}

/*
 * Seccomp allowlist of this file: stream input and output; pipe payloads
 * spliced to the stream from a duplicate of the pipe (how much is waiting:
 * FIONREAD); poll: is a direct pipe full, or the stream empty?  TIOCOUTQ:
 * how much a slow tty still holds.
 */
SYSCALLS(conn) = { SC("read"), SC("write"), SC("splice"), SC("poll"), SC("ppoll"),
		   SC_GE_EQ("ioctl", 0, 3, 1, FIONREAD), SC_GE_EQ("ioctl", 0, 3, 1, TIOCOUTQ),
		   SC_EQ("fcntl", 1, F_DUPFD_CLOEXEC),
		   SC("close"), SC_END };
