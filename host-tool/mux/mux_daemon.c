/* SPDX-License-Identifier: MIT */
/*
 * The mux process (`wicket --mux-daemon`, started by mux_open()): owns one
 * guest stream, serves its clients on the socket, and ends when the stream
 * is lost, on `wicket mux stop`, or --persist seconds after its last client.
 *
 * Memory is bounded: client input is read only while the guest's output
 * queue is under MUX_GUEST_HIGH, and a client whose queue passes
 * MUX_CLIENT_OUT_MAX (it granted windows it does not read) is dropped alone.
 * The guest stream is always read, so one stalled client never stops the
 * others; windows are end to end, so a client that stops reading stalls
 * only its own channels.
 */
#include "mux.h"
#include "mux_core.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "wire.h"

#define MUX_READ_CHUNK (256u * 1024u)
#define MUX_IN_MAX (WIRE_MAX_PACKET + 4 + 2 * MUX_READ_CHUNK)
#define MUX_GUEST_HIGH (1024u * 1024u)
#define MUX_GUEST_OUT_MAX (64u * 1024u * 1024u)
#define MUX_CLIENT_OUT_MAX (96u * 1024u * 1024u)
#define MUX_CLOSE_GRACE_MS 2000
/*
 * A packet at least this big goes out at once, from where it lies (the
 * input buffer it came in), when nothing is queued before it: no copy into
 * a queue.  Smaller ones are queued and written once per batch of input.
 */
#define MUX_WRITE_NOW_MIN (16u * 1024u)
/* Socket send buffer asked for each client (see tp_unix_tune()). */
#define MUX_SNDBUF (4 * 1024 * 1024)
/* Keepalives unanswered (and no other byte from the guest) this many intervals: lost. */
#define MUX_KEEPALIVE_MISSES 3

struct mclient {
	bool used, greeted, closing, overflow;
	int fd;
	pid_t pid;
	struct buf in, out;
	long long close_by; /* closing: give up flushing at this time */
};

struct mux {
	const char *label, *sock, *lock;
	int persist, keepalive;
	pid_t helper;
	int lfd, grfd, gwfd;
	struct buf gin, gout;
	bool guest_greeted;
	char guest_version[WIRE_MAX_VERSION + 1];
	struct mux_core core;
	struct mclient cl[MUX_MAX_CLIENTS];
	long long started, idle_since, last_rx, next_keepalive;
	uint64_t grx, gtx;
	bool ending;
	char end_why[512];
	struct stat sock_st;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- output ---- */

static void frame(struct buf *b, const uint8_t *p, size_t n)
{
	buf_u32(b, (uint32_t)n);
	buf_put(b, p, n);
}

/*
 * Frame @p into @q, writing as much as the socket takes right away when
 * @q is empty and the packet is big; only the rest is copied into @q.  A
 * failed write is left for the next write from @q to notice.
 */
static void frame_out(int fd, struct buf *q, const uint8_t *p, size_t n)
{
	if (fd < 0 || buf_used(q) || n < MUX_WRITE_NOW_MIN) {
		frame(q, p, n);
		return;
	}
	uint8_t len[4];
	put_be32(len, (uint32_t)n);
	struct iovec iov[2] = { { len, 4 }, { (void *)p, n } };
	ssize_t w = writev(fd, iov, 2);
	size_t done = w > 0 ? (size_t)w : 0;
	if (done < 4) {
		buf_put(q, len + done, 4 - done);
		buf_put(q, p, n);
	} else if (done < 4 + n) {
		buf_put(q, p + (done - 4), n - (done - 4));
	}
}

static void disconnect_pkt(struct buf *b, uint32_t code, const char *why)
{
	struct buf d;
	buf_init(&d, 1024);
	buf_u8(&d, MSG_DISCONNECT);
	buf_u32(&d, code);
	buf_cstr(&d, why);
	buf_cstr(&d, "");
	frame(b, buf_data(&d), buf_used(&d));
	buf_free(&d);
}

static void io_to_guest(void *ctx, const uint8_t *p, size_t n)
{
	struct mux *m = ctx;
	frame_out(m->ending ? -1 : m->gwfd, &m->gout, p, n);
	m->gtx += n;
}

static void io_to_client(void *ctx, unsigned cl, const uint8_t *p, size_t n)
{
	struct mux *m = ctx;
	struct mclient *c = &m->cl[cl];
	if (!c->used || c->closing)
		return;
	frame_out(c->fd, &c->out, p, n);
	if (c->out.err)
		c->overflow = true;
}

static void client_greet(struct mclient *c)
{
	wire_put_greeting(&c->out, "wicket-mux_" WICKET_VERSION);
}

/* Queue DISCONNECT and stop reading @c; it is closed once that is written. */
static void client_close_with(struct mux *m, struct mclient *c, uint32_t code, const char *why)
{
	if (c->closing)
		return;
	if (!c->greeted || !m->guest_greeted)
		client_greet(c); /* it must parse the DISCONNECT */
	disconnect_pkt(&c->out, code, why);
	c->closing = true;
	c->close_by = now_ms() + MUX_CLOSE_GRACE_MS;
}

static void io_client_fail(void *ctx, unsigned cl, const char *why)
{
	struct mux *m = ctx;
	struct mclient *c = &m->cl[cl];
	log_warn("client pid %d: %s; disconnecting it", (int)c->pid, why);
	client_close_with(m, c, DISC_PROTOCOL_ERROR, why);
}

static void status_text(struct mux *m, struct buf *t)
{
	char line[600];
	long long up = (now_ms() - m->started) / 1000;
	unsigned ncl = 0;
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++)
		ncl += m->cl[i].used && !m->cl[i].closing;
	int n = snprintf(line, sizeof(line),
			 "target: %s\nsocket: %s\npid: %d\nuptime: %lld s\nagent: %s\n"
			 "clients: %u (this status request included)\nchannels: %u\n"
			 "bytes: %llu to the agent, %llu from the agent\n",
			 m->label, m->sock, (int)getpid(), up,
			 m->guest_greeted ? m->guest_version : "(no greeting yet)", ncl,
			 mux_core_channels(&m->core, MUX_NONE), (unsigned long long)m->gtx,
			 (unsigned long long)m->grx);
	buf_put(t, line, (size_t)n);
	if (m->persist < 0)
		n = snprintf(line, sizeof(line), "persist: forever\n");
	else
		n = snprintf(line, sizeof(line), "persist: %d s after the last client\n",
			     m->persist);
	buf_put(t, line, (size_t)n);
	n = m->keepalive ? snprintf(line, sizeof(line), "keepalive: every %d s\n", m->keepalive)
			 : snprintf(line, sizeof(line), "keepalive: off\n");
	buf_put(t, line, (size_t)n);
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
		const struct mclient *c = &m->cl[i];
		if (!c->used || c->closing)
			continue;
		const struct mux_client_st *s = &m->core.cl[i];
		n = snprintf(line, sizeof(line),
			     "client %u: pid %d, %u channels, %llu bytes in, %llu bytes out\n", i,
			     (int)c->pid, mux_core_channels(&m->core, i), (unsigned long long)s->rx,
			     (unsigned long long)s->tx);
		buf_put(t, line, (size_t)n);
	}
}

static void begin_end(struct mux *m, const char *why)
{
	if (m->ending)
		return;
	m->ending = true;
	snprintf(m->end_why, sizeof(m->end_why), "%s", why);
}

static bool io_local_request(void *ctx, unsigned cl, struct sv name, struct rd *args,
			     struct buf *reply)
{
	struct mux *m = ctx;
	(void)cl;
	if (sv_eq(name, "mux-status@wicket") && rd_end(args)) {
		struct buf t;
		buf_init(&t, 64 * 1024);
		status_text(m, &t);
		buf_str(reply, buf_data(&t), buf_used(&t));
		buf_free(&t);
		return !t.err;
	}
	if (sv_eq(name, "mux-stop@wicket") && rd_end(args)) {
		char why[400];
		snprintf(why, sizeof(why), "the mux for %s was stopped ('wicket mux stop')", m->label);
		log_warn("stopped by 'wicket mux stop' (client pid %d)", (int)m->cl[cl].pid);
		begin_end(m, why);
		return true;
	}
	return false;
}

static const struct mux_io mux_io = {
	.to_guest = io_to_guest,
	.to_client = io_to_client,
	.client_fail = io_client_fail,
	.local_request = io_local_request,
};

/* ---- clients ---- */

static void client_free(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	if (!c->used)
		return;
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	*c = (struct mclient){ 0 };
	(void)m;
}

/* The client's side of the core goes now; its socket may still flush. */
static void client_drop(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	mux_core_client_gone(&m->core, i);
	if (!c->closing || !buf_used(&c->out)) {
		log_info("client pid %d left", (int)c->pid);
		client_free(m, i);
	}
}

static void client_write(struct mux *m, unsigned i);

static void accept_one(struct mux *m)
{
	int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.uid != geteuid()) {
		log_warn("refused a client of uid %d: only uid %u may use this mux",
			 ul == sizeof(uc) ? (int)uc.uid : -1, (unsigned)geteuid());
		close(fd);
		return;
	}
	int slot = mux_core_client_add(&m->core);
	if (slot < 0) {
		struct buf b;
		buf_init(&b, 4096);
		buf_put(&b, MUX_PREAMBLE, MUX_PREAMBLE_LEN);
		wire_put_greeting(&b, "wicket-mux_" WICKET_VERSION);
		disconnect_pkt(&b, DISC_TOO_MANY_CONNECTIONS, "too many clients of this mux");
		ssize_t w = write(fd, buf_data(&b), buf_used(&b));
		(void)w;
		buf_free(&b);
		close(fd);
		return;
	}
	int sz = MUX_SNDBUF;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	struct mclient *c = &m->cl[slot];
	*c = (struct mclient){ .used = true, .fd = fd, .pid = uc.pid };
	buf_init(&c->in, MUX_IN_MAX);
	buf_init(&c->out, MUX_CLIENT_OUT_MAX);
	buf_put(&c->out, MUX_PREAMBLE, MUX_PREAMBLE_LEN);
	if (m->guest_greeted)
		client_greet(c);
	m->idle_since = 0;
	log_info("client pid %d attached", (int)c->pid);
	client_write(m, (unsigned)slot); /* it waits for the preamble: no poll round first */
}

static void client_read(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	size_t room;
	uint8_t *w = buf_reserve_read(&c->in, 4096, MUX_READ_CHUNK, &room);
	if (!w) {
		client_close_with(m, c, DISC_PROTOCOL_ERROR, "input buffer exhausted");
		client_drop(m, i);
		return;
	}
	ssize_t n = read(c->fd, w, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(m, i);
		return;
	}
	buf_commit(&c->in, (size_t)n);
	if (!c->greeted) {
		char ver[WIRE_MAX_VERSION + 1];
		int r = wire_scan_greeting(&c->in, ver, sizeof(ver));
		if (r < 0) {
			client_close_with(m, c, DISC_PROTOCOL_ERROR, "greeting line too long");
			client_drop(m, i);
			return;
		}
		if (r == 0)
			return;
		c->greeted = true;
	}
	for (;;) {
		struct sv pkt;
		uint32_t len = 0;
		int r = wire_next_packet(&c->in, &pkt, &len);
		if (r == 0)
			return;
		if (r < 0) {
			char why[120];
			snprintf(why, sizeof(why), "packet length %u %s", len,
				 r == -EMSGSIZE ? "exceeds the maximum" : "is not allowed");
			log_warn("client pid %d: %s; disconnecting it", (int)c->pid, why);
			client_close_with(m, c, DISC_PROTOCOL_ERROR, why);
			client_drop(m, i);
			return;
		}
		if (mux_core_from_client(&m->core, i, (uint8_t *)pkt.p, pkt.n) < 0) {
			client_drop(m, i);
			return;
		}
	}
}

static void client_write(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	if (!buf_used(&c->out))
		return; /* flushed since poll() said it was writable */
	ssize_t n = write(c->fd, buf_data(&c->out), buf_used(&c->out));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->closing)
			client_free(m, i);
		else
			client_drop(m, i);
		return;
	}
	buf_consume(&c->out, (size_t)n);
	if (c->closing && !buf_used(&c->out)) {
		log_info("client pid %d left", (int)c->pid);
		client_free(m, i);
	}
}

/* After each batch of core work: clients that could not take their output. */
static void check_overflow(struct mux *m)
{
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
		struct mclient *c = &m->cl[i];
		if (!c->used || !c->overflow)
			continue;
		/* Its queue ends mid-packet: no DISCONNECT can follow, just close. */
		log_warn("client pid %d does not read (over %u MiB queued for it); dropping it",
			 (int)c->pid, MUX_CLIENT_OUT_MAX >> 20);
		if (!c->closing)
			mux_core_client_gone(&m->core, i);
		client_free(m, i);
	}
}

/* ---- the guest ---- */

static void guest_read(struct mux *m)
{
	size_t room;
	uint8_t *w = buf_reserve_read(&m->gin, 4096, MUX_READ_CHUNK * 4, &room);
	if (!w) {
		begin_end(m, "the agent's input buffer is exhausted");
		return;
	}
	ssize_t n = read(m->grfd, w, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		char why[300];
		snprintf(why, sizeof(why), "the stream to the agent of %s ended (%s)", m->label,
			 n < 0 ? strerror(errno) : "the guest side closed it");
		begin_end(m, why);
		return;
	}
	buf_commit(&m->gin, (size_t)n);
	m->last_rx = now_ms();
	if (!m->guest_greeted) {
		int r = wire_scan_greeting(&m->gin, m->guest_version, sizeof(m->guest_version));
		if (r < 0) {
			begin_end(m, "the agent's greeting line is too long");
			return;
		}
		if (r == 0)
			return;
		m->guest_greeted = true;
		log_info("agent greeted: %s", m->guest_version);
		for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++)
			if (m->cl[i].used && !m->cl[i].closing)
				client_greet(&m->cl[i]);
	}
	for (;;) {
		struct sv pkt;
		uint32_t len = 0;
		int r = wire_next_packet(&m->gin, &pkt, &len);
		if (r == 0)
			break;
		char why[300];
		if (r < 0) {
			snprintf(why, sizeof(why), "protocol error from the agent of %s: packet length %u",
				 m->label, len);
			begin_end(m, why);
			break;
		}
		m->grx += pkt.n;
		if (mux_core_from_guest(&m->core, (uint8_t *)pkt.p, pkt.n) < 0) {
			snprintf(why, sizeof(why), "%s: %s", m->label, m->core.why);
			begin_end(m, why);
			break;
		}
	}
	check_overflow(m);
}

static void guest_write(struct mux *m)
{
	if (!buf_used(&m->gout))
		return; /* flushed since poll() said it was writable */
	ssize_t n = write(m->gwfd, buf_data(&m->gout), buf_used(&m->gout));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		char why[300];
		snprintf(why, sizeof(why), "writing to the agent of %s failed: %s", m->label,
			 n < 0 ? strerror(errno) : "closed");
		buf_reset(&m->gout);
		begin_end(m, why);
		return;
	}
	buf_consume(&m->gout, (size_t)n);
}

static void keepalive_tick(struct mux *m, long long now)
{
	if (!m->keepalive || !m->guest_greeted || m->ending || now < m->next_keepalive)
		return;
	m->next_keepalive = now + m->keepalive * 1000LL;
	uint64_t out = m->core.keepalive_sent - m->core.keepalive_answered;
	if (out && now - m->last_rx >= MUX_KEEPALIVE_MISSES * m->keepalive * 1000LL) {
		char why[400];
		snprintf(why, sizeof(why),
			 "the agent of %s stopped answering (nothing for %lld s, keepalive every "
			 "%d s): the guest may have rebooted, or the line is dead",
			 m->label, (now - m->last_rx) / 1000, m->keepalive);
		begin_end(m, why);
		return;
	}
	if (out < MUX_KEEPALIVE_MISSES + 1)
		mux_core_keepalive(&m->core);
}

/*
 * After a batch of input: write what it queued now rather than after
 * another poll (the socket is nearly always writable), one write per peer.
 */
static void flush_clients(struct mux *m)
{
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++)
		if (m->cl[i].used && buf_used(&m->cl[i].out))
			client_write(m, i);
}

static void flush_guest(struct mux *m)
{
	if (!m->ending && buf_used(&m->gout))
		guest_write(m);
}

/* ---- ending ---- */

/* Is the socket at our path still ours (and not a newer mux's)? */
static bool sock_is_ours(const struct mux *m)
{
	struct stat st;
	return stat(m->sock, &st) == 0 && st.st_ino == m->sock_st.st_ino &&
	       st.st_dev == m->sock_st.st_dev;
}

/*
 * Idle past --persist: leave unless a client is connecting right now.  The
 * start lock keeps a starting command from racing our unlink.  1 leave,
 * 0 stay.
 */
static int idle_exit_ok(struct mux *m)
{
	int lk = open(m->lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0) {
		if (lk >= 0)
			close(lk);
		return lk < 0; /* no lock file: nobody to race with */
	}
	struct pollfd p = { .fd = m->lfd, .events = POLLIN };
	if (poll(&p, 1, 0) > 0) {
		close(lk);
		return 0;
	}
	if (sock_is_ours(m))
		unlink(m->sock);
	close(m->lfd);
	m->lfd = -1;
	close(lk); /* releases the lock */
	return 1;
}

/* Tell every client why, flush for a moment, say goodbye to the agent. */
static void finish(struct mux *m, const char *why)
{
	if (m->lfd >= 0) {
		if (sock_is_ours(m))
			unlink(m->sock);
		close(m->lfd);
		m->lfd = -1;
	}
	log_warn("ending: %s", why);
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
		struct mclient *c = &m->cl[i];
		if (!c->used)
			continue;
		if (!c->closing && !c->overflow)
			client_close_with(m, c, DISC_BY_APPLICATION, why);
	}
	if (m->guest_greeted)
		disconnect_pkt(&m->gout, DISC_BY_APPLICATION, "wicket mux ending");
	long long deadline = now_ms() + MUX_CLOSE_GRACE_MS;
	for (;;) {
		struct pollfd p[MUX_MAX_CLIENTS + 1];
		unsigned idx[MUX_MAX_CLIENTS];
		int np = 0;
		for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
			if (m->cl[i].used && buf_used(&m->cl[i].out)) {
				idx[np] = i;
				p[np++] = (struct pollfd){ .fd = m->cl[i].fd, .events = POLLOUT };
			}
		}
		int gi = -1;
		if (buf_used(&m->gout) && m->gwfd >= 0) {
			gi = np;
			p[np++] = (struct pollfd){ .fd = m->gwfd, .events = POLLOUT };
		}
		long long left = deadline - now_ms();
		if (!np || left <= 0)
			break;
		if (poll(p, (nfds_t)np, (int)left) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < np; k++) {
			if (!p[k].revents)
				continue;
			if (k == gi) {
				ssize_t n = write(m->gwfd, buf_data(&m->gout), buf_used(&m->gout));
				if (n <= 0)
					buf_reset(&m->gout);
				else
					buf_consume(&m->gout, (size_t)n);
				continue;
			}
			struct mclient *c = &m->cl[idx[k]];
			ssize_t n = write(c->fd, buf_data(&c->out), buf_used(&c->out));
			if (n <= 0)
				buf_reset(&c->out);
			else
				buf_consume(&c->out, (size_t)n);
		}
	}
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++)
		client_free(m, i);
}

/* ---- main ---- */

static int parse_int(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end)
		return -1;
	*out = (int)v;
	return 0;
}

static int mux_run(struct mux *m)
{
	for (;;) {
		long long now = now_ms();
		keepalive_tick(m, now);
		if (m->ending)
			break;
		unsigned ncl = 0;
		for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
			struct mclient *c = &m->cl[i];
			if (c->used && c->closing && now >= c->close_by)
				client_free(m, i);
			ncl += c->used && !c->closing;
		}
		if (!ncl) {
			if (!m->idle_since)
				m->idle_since = now;
			if (m->persist >= 0 && now - m->idle_since >= m->persist * 1000LL &&
			    idle_exit_ok(m)) {
				log_info("no client for %d s: leaving", m->persist);
				finish(m, "no client left (--persist)");
				return 0;
			}
		}
		struct pollfd p[MUX_MAX_CLIENTS + 3];
		unsigned idx[MUX_MAX_CLIENTS + 3];
		int np = 0;
		p[np] = (struct pollfd){ .fd = m->lfd, .events = POLLIN };
		idx[np++] = UINT32_MAX;
		p[np] = (struct pollfd){ .fd = m->grfd, .events = POLLIN };
		idx[np++] = UINT32_MAX - 1;
		if (buf_used(&m->gout)) {
			if (m->gwfd == m->grfd) {
				p[1].events |= POLLOUT;
			} else {
				p[np] = (struct pollfd){ .fd = m->gwfd, .events = POLLOUT };
				idx[np++] = UINT32_MAX - 2;
			}
		}
		bool take_input = m->guest_greeted && buf_used(&m->gout) < MUX_GUEST_HIGH;
		for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
			struct mclient *c = &m->cl[i];
			if (!c->used)
				continue;
			short ev = 0;
			if (take_input && !c->closing)
				ev |= POLLIN;
			if (buf_used(&c->out))
				ev |= POLLOUT;
			if (!ev)
				continue;
			p[np] = (struct pollfd){ .fd = c->fd, .events = ev };
			idx[np++] = i;
		}
		int timeout = 1000;
		if (m->keepalive && m->guest_greeted) {
			long long t = m->next_keepalive - now;
			if (t < timeout)
				timeout = t < 0 ? 0 : (int)t;
		}
		if (poll(p, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			begin_end(m, "poll failed");
			break;
		}
		for (int k = 0; k < np && !m->ending; k++) {
			short rev = p[k].revents;
			if (!rev)
				continue;
			if (idx[k] == UINT32_MAX) {
				accept_one(m);
			} else if (idx[k] >= UINT32_MAX - 2) {
				if (rev & POLLOUT)
					guest_write(m);
				if ((rev & (POLLIN | POLLHUP | POLLERR)) && p[k].fd == m->grfd &&
				    idx[k] == UINT32_MAX - 1) {
					guest_read(m);
					flush_clients(m);
					flush_guest(m); /* the core's own answers */
				}
			} else {
				unsigned i = idx[k];
				if (!m->cl[i].used)
					continue;
				if (rev & POLLOUT)
					client_write(m, i);
				if (m->cl[i].used && (rev & (POLLIN | POLLHUP | POLLERR)) &&
				    !m->cl[i].closing) {
					client_read(m, i);
					flush_guest(m);
					flush_clients(m); /* local answers, DISCONNECTs */
				} else if (m->cl[i].used && (rev & (POLLHUP | POLLERR)) &&
					 m->cl[i].closing)
					client_free(m, i);
				check_overflow(m);
			}
		}
	}
	finish(m, m->end_why);
	return 1;
}

int mux_daemon_main(int argc, char **argv)
{
	/* wicket --mux-daemon LABEL SOCK LOCK PERSIST KEEPALIVE HELPER-PID LOG-LEVEL */
	static struct mux m;
	int level = LOG_WARN, helper = 0;
	if (argc != 9 || parse_int(argv[5], &m.persist) || parse_int(argv[6], &m.keepalive) ||
	    parse_int(argv[7], &helper) || parse_int(argv[8], &level)) {
		fprintf(stderr, "wicket: %s is for wicket's own use\n", MUX_DAEMON_ARG);
		return 2;
	}
	m.label = argv[2];
	m.sock = argv[3];
	m.lock = argv[4];
	m.helper = helper;
	log_level = level > LOG_INFO ? level : LOG_INFO;
	char ident[32];
	snprintf(ident, sizeof(ident), "wicket mux %d", (int)getpid());
	log_set_ident(ident);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	m.lfd = MUX_FD_LISTEN;
	m.grfd = MUX_FD_GUEST_IN;
	m.gwfd = MUX_FD_GUEST_OUT;
	if (fstat(m.lfd, &m.sock_st) < 0) {
		log_err("no listening socket: %s", strerror(errno));
		return 1;
	}
	/* The inode of the socket file, to unlink only our own. */
	stat(m.sock, &m.sock_st);
	set_nonblock(m.lfd);
	set_nonblock(m.grfd);
	set_nonblock(m.gwfd);
	buf_init(&m.gin, MUX_IN_MAX * 4);
	buf_init(&m.gout, MUX_GUEST_OUT_MAX);
	mux_core_init(&m.core, &mux_io, &m);
	m.started = m.last_rx = now_ms();
	m.next_keepalive = m.started + m.keepalive * 1000LL;
	log_info("serving %s on %s (persist %d, keepalive %d)", m.label, m.sock, m.persist,
		 m.keepalive);
	wire_put_greeting(&m.gout, "wicket-mux_" WICKET_VERSION);
	int r = mux_run(&m);
	close(m.grfd);
	if (m.gwfd != m.grfd)
		close(m.gwfd);
	if (m.helper > 0) {
		/* A proxy command or the libvirt helper: ours now, gone with us.  It
		 * leads its own session (tp_detach_helpers), which a reused pid
		 * would not. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (getsid(m.helper) == m.helper)
			kill(m.helper, SIGTERM);
	}
	mux_core_free(&m.core);
	buf_free(&m.gin);
	buf_free(&m.gout);
	return r == 0 ? 0 : 1;
}
