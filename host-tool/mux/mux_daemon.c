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
 *
 * Bulk data is not copied through here: a CHANNEL_DATA of MUX_SPLICE_MIN
 * or more payload bytes gets its 13-byte header read, checked and
 * rewritten (mux_core_guest_data(), mux_core_client_data()), and its
 * payload goes from one socket to the other through a pipe with splice(2)
 * (page references, as lib/conn.c does towards the agent's children).
 * The rewritten header goes into the pipe ahead of the payload when nothing
 * is queued before it, so one splice carries both.  The streams stay in
 * order: everything else for the destination waits in a hold queue behind
 * the payload, and the source stream is not parsed past it.  An upload is
 * gathered whole in the pipe before the guest's stream sees its header (so
 * a client stopped mid-packet holds up nobody, see up_pump()); a client
 * that takes nothing of a spliced download for MUX_SPLICE_STALL_MS has it
 * copied, like every later one, so it stops the guest stream that long
 * once at most.  Whatever cannot be spliced (a tty, a refusal) is copied.
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "wire.h"
#include "zpkt.h"
#include "target.h"
#include "client.h"

#define MUX_READ_CHUNK (256u * 1024u)
#define MUX_IN_MAX (WIRE_MAX_PACKET + 4 + 2 * MUX_READ_CHUNK)
#define MUX_GUEST_HIGH (1024u * 1024u)
#define MUX_GUEST_OUT_MAX (64u * 1024u * 1024u)
#define MUX_CLIENT_OUT_MAX (96u * 1024u * 1024u)
#define MUX_CLOSE_GRACE_MS 2000
/* Below this many bytes/s the agent's line is slow (115200 baud is 11520). */
#define MUX_SLOW_RATE (1024u * 1024u)
/* On a slow line: packets, the queue to the agent, and reads from clients. */
#define MUX_SLOW_PACKET 1024u
#define MUX_SLOW_GUEST_HIGH 2048u
#define MUX_SLOW_READ 4096u
/* ... and at most this much left for the kernel to hold below us (TIOCOUTQ). */
#define MUX_SLOW_OUTQ 2048u
/*
 * A packet at least this big goes out at once, from where it lies (the
 * input buffer it came in), when nothing is queued before it: no copy into
 * a queue.  Smaller ones are queued and written once per batch of input.
 */
#define MUX_WRITE_NOW_MIN (16u * 1024u)
/* Socket send buffer asked for each client (see tp_unix_tune()). */
#define MUX_SNDBUF (4 * 1024 * 1024)
/* Payloads of CHANNEL_DATA this big or bigger are spliced, not copied. */
#define MUX_SPLICE_MIN (64u * 1024u)
/* Each splice pipe (pipes are allocated in pages; pipe-max-size is 1 MiB). */
#define MUX_PIPE_SIZE (1024 * 1024)
/* A client that takes nothing of a spliced download this long gets copies. */
#define MUX_SPLICE_STALL_MS 500
/* Length, type, recipient channel, data length. */
#define MUX_DATA_HDR 13u
/*
 * After a bulk packet, reads stop at data headers for this many packets
 * (so that a window adjust or stderr between bulk packets does not make
 * the next read swallow a payload); then big reads again.
 */
#define MUX_EXACT_PACKETS 32
/*
 * During bulk transfers (header-exact reads) the next packet is nearly
 * always there already: go on reading for a while rather than poll first.
 */
#define MUX_READ_ROUNDS 8
/* Keepalives unanswered (and no other byte from the guest) this many intervals: lost. */
#define MUX_KEEPALIVE_MISSES 3

struct mclient {
	bool used, greeted, closing, overflow;
	int exact;	/* header-exact reads for this many more packets (bulk data came) */
	bool held;	/* a download payload for it is under way: output goes to hold */
	bool no_splice; /* it stalled a spliced download once: copies from now on */
	int fd;
	pid_t pid;
	struct buf in, out, hold;
	long long close_by; /* closing: give up flushing at this time */
};

enum pl_mode { PL_SPLICE, PL_COPY, PL_DROP };

/* One CHANNEL_DATA payload moved by the daemon itself (see the top). */
struct payload {
	bool active;
	bool pipe_full;	    /* download: the last splice into the pipe found no room */
	bool committed;	    /* upload: its header is queued for the guest */
	uint8_t mode;	    /* enum pl_mode */
	int cl;		    /* download: its client (-1: dropped); upload: the source (-1 once committed) */
	size_t left;	    /* bytes still in the source stream */
	size_t inpipe;	    /* bytes in the pipe */
	long long stall_at; /* download: since when the client takes nothing (0: it does) */
};

struct mux {
	const char *label, *sock, *lock;
	int persist, keepalive;
	pid_t helper;
	int lfd, grfd, gwfd;
	struct buf gin, gout;
	struct buf ghold;	 /* for the guest while an upload drains into its stream */
	struct buf ubuf;	 /* an upload gathered by copying */
	int dn_pipe[2], up_pipe[2];
	size_t dn_pipe_sz, up_pipe_sz;
	bool dn_pipe_bad, up_pipe_bad; /* none to be had, or one was lost */
	struct payload dn, up;	 /* guest -> client, client -> guest */
	bool g_splice_in, g_splice_out; /* the guest stream is a socket or pipe */
	int gexact;		 /* header-exact reads from the guest for this many more packets */
	uint64_t spliced_dn, spliced_up; /* payload bytes that went through the pipes */
	uint64_t g_in, c_in;	 /* bytes taken from the guest / from clients (progress) */
	bool guest_greeted;
	char guest_version[WIRE_MAX_VERSION + 1];
	struct mux_core core;
	struct mclient cl[MUX_MAX_CLIENTS];
	long long started, idle_since, last_rx, next_keepalive;
	long long now;		 /* ms, as of the last wake-up */
	unsigned hi;		 /* one past the highest client slot in use */
	uint64_t grx, gtx;
	bool ending;
	char end_why[512];
	struct stat sock_st;
	/*
	 * Before clients are served: line-rate@wicket, then (when wanted)
	 * zlib@wicket, each answered before anything else goes to the agent.
	 */
	enum { NEG_RATE, NEG_ZLIB, NEG_DONE } neg;
	int compress; /* -1 auto (serial/ targets, slow lines), 0 no, 1 yes */
	uint32_t line_rate;
	struct zpkt *ztx, *zrx;
	struct buf zin;
	size_t guest_high, read_chunk;
	long long pace_until; /* a slow line: no write to the agent before this */
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

static void begin_end(struct mux *m, const char *why);

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

static bool up_committed(const struct mux *m);
static struct buf *gq(struct mux *m);

/* Where output for @c goes now: behind a download under way for it, if any. */
static struct buf *cq(struct mclient *c)
{
	return c->held ? &c->hold : &c->out;
}

static void io_to_guest(void *ctx, const uint8_t *p, size_t n)
{
	struct mux *m = ctx;
	if (m->ztx) {
		/* Compressed: never written ahead from where it lies, nor spliced. */
		if (zpkt_deflate(m->ztx, p, n, gq(m)) < 0)
			begin_end(m, "compressing for the agent failed");
	} else {
		frame_out(m->ending || up_committed(m) ? -1 : m->gwfd, gq(m), p, n);
	}
	m->gtx += n;
}

/* One of our own global requests to the agent (nothing else is queued then). */
static void ask_agent(struct mux *m, const char *name)
{
	struct buf b;
	buf_init(&b, 256);
	buf_u8(&b, MSG_GLOBAL_REQUEST);
	buf_cstr(&b, name);
	buf_bool(&b, true);
	frame(&m->gout, buf_data(&b), buf_used(&b));
	buf_free(&b);
}

static void negotiated(struct mux *m)
{
	m->neg = NEG_DONE;
	bool slow = m->line_rate && m->line_rate < MUX_SLOW_RATE;
	m->guest_high = slow ? MUX_SLOW_GUEST_HIGH : MUX_GUEST_HIGH;
	m->read_chunk = slow ? MUX_SLOW_READ : MUX_READ_CHUNK;
	m->core.max_packet = slow ? MUX_SLOW_PACKET : 0;
	if (slow || m->ztx) {
		/* Payloads pass through zlib, or are too small to be worth it. */
		m->g_splice_in = m->g_splice_out = false;
	}
	log_info("agent line: %s%s", m->line_rate ? "slow" : "fast",
		 m->ztx ? ", compressed (zlib@wicket)" : "");
}

/*
 * The answer to one of our requests (@type SUCCESS or FAILURE, @rd after
 * it).  0, or -1 when the stream cannot go on.
 */
static int negotiate(struct mux *m, uint8_t type, struct rd *rd)
{
	bool ok = type == MSG_REQUEST_SUCCESS;
	if (m->neg == NEG_RATE) {
		m->line_rate = ok && rd_left(rd) >= 4 ? rd_u32(rd) : 0;
		bool slow = m->line_rate && m->line_rate < MUX_SLOW_RATE;
		bool want = m->compress > 0 ||
			    (m->compress < 0 && (slow || strncmp(m->label, "serial/", 7) == 0));
		if (m->line_rate)
			log_info("agent's line: %u bytes/s", m->line_rate);
		if (want && zpkt_available()) {
			ask_agent(m, "zlib@wicket");
			m->neg = NEG_ZLIB;
			return 0;
		}
		negotiated(m);
		return 0;
	}
	if (ok) {
		m->ztx = zpkt_new(true);
		m->zrx = zpkt_new(false);
		if (!m->ztx || !m->zrx) {
			begin_end(m, "out of memory for zlib@wicket");
			return -1;
		}
	} else {
		log_info("the agent does not compress (zlib@wicket refused)");
	}
	negotiated(m);
	return 0;
}

static void io_to_client(void *ctx, unsigned cl, const uint8_t *p, size_t n)
{
	struct mux *m = ctx;
	struct mclient *c = &m->cl[cl];
	if (!c->used || c->closing)
		return;
	frame_out(c->held ? -1 : c->fd, cq(c), p, n);
	if (cq(c)->err)
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
		wire_put_greeting(cq(c), "wicket-mux_" WICKET_VERSION); /* it must parse the DISCONNECT */
	disconnect_pkt(cq(c), code, why);
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
	uint64_t zi = 0, zo = 0, ri = 0, ro = 0;
	if (m->ztx)
		zpkt_counts(m->ztx, &zi, &zo);
	if (m->zrx)
		zpkt_counts(m->zrx, &ri, &ro);
	if (m->line_rate)
		n = snprintf(line, sizeof(line), "line: %u bytes/s; compression: %s", m->line_rate,
			     m->ztx ? "zlib@wicket" : "off");
	else
		n = snprintf(line, sizeof(line), "line: fast (not a tty, or its rate unknown); "
						 "compression: %s",
			     m->ztx ? "zlib@wicket" : "off");
	buf_put(t, line, (size_t)n);
	if (m->ztx) {
		n = snprintf(line, sizeof(line), " (out %llu -> %llu bytes, in %llu -> %llu bytes)",
			     (unsigned long long)zi, (unsigned long long)zo,
			     (unsigned long long)ri, (unsigned long long)ro);
		buf_put(t, line, (size_t)n);
	}
	buf_put(t, "\n", 1);
	n = snprintf(line, sizeof(line), "spliced: %llu bytes to clients, %llu bytes to the agent\n",
		     (unsigned long long)m->spliced_dn, (unsigned long long)m->spliced_up);
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

/* ---- payloads moved by the daemon (see the top) ---- */

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * A splice from @src into pipe @pw took nothing (EAGAIN).  1: both are
 * ready now, the bytes arrived just after it looked (try again); 0: the
 * source is empty (wait for it); -1: the pipe has no room in its pages.
 */
static int splice_blocked(int src, int pw)
{
	struct pollfd p[2] = { { .fd = pw, .events = POLLOUT }, { .fd = src, .events = POLLIN } };
	if (poll(p, 2, 0) < 0)
		return 0;
	if (!(p[0].revents & POLLOUT))
		return -1;
	return (p[1].revents & POLLIN) ? 1 : 0;
}

/* Move up to @n bytes that are in pipe @fd into @b; bytes moved. */
static size_t pipe_to_buf(int fd, struct buf *b, size_t n)
{
	size_t done = 0;
	while (done < n) {
		uint8_t *w = buf_reserve(b, n - done);
		if (!w)
			break;
		ssize_t r = read(fd, w, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf_commit(b, (size_t)r);
		done += (size_t)r;
	}
	return done;
}

/* Throw away up to @n bytes that are in pipe @fd; bytes gone. */
static size_t pipe_drop(int fd, size_t n)
{
	uint8_t junk[16384];
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, junk, min_sz(sizeof(junk), n - done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	return done;
}

/*
 * A splice pipe, made when the first bulk payload comes (an idle mux holds
 * none): true when @fds is usable.  Closed ends (-1) with *@bad set stay so.
 */
static bool pipe_ready(int fds[2], size_t *size, bool *bad)
{
	if (fds[0] >= 0)
		return true;
	if (*bad)
		return false;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		fds[0] = fds[1] = -1;
		*bad = true;
		return false;
	}
	(void)fcntl(fds[1], F_SETPIPE_SZ, MUX_PIPE_SIZE);
	int sz = fcntl(fds[1], F_GETPIPE_SZ);
	*size = sz > 0 ? (size_t)sz : 65536;
	return true;
}

/*
 * Header-exact: how much to read from @in's stream so that no payload that
 * could be spliced gets read (complete packets were parsed: @in holds the
 * start of one packet): up to its data header, else the rest of it.
 */
static size_t exact_want(const struct buf *in)
{
	size_t u = buf_used(in);
	if (u < MUX_DATA_HDR)
		return MUX_DATA_HDR - u;
	size_t whole = 4 + (size_t)get_be32(buf_data(in));
	return whole > u ? whole - u : 1;
}

/*
 * The CHANNEL_DATA whose start @in holds, when at least MUX_SPLICE_MIN of
 * its payload is still in the stream: 1 with @id, @dlen, @rest (payload
 * bytes not read yet) set; else 0 (complete, small, malformed, other
 * message: the core judges it once it is whole).
 */
static int bulk_header(const struct buf *in, uint32_t *id, uint32_t *dlen, size_t *rest)
{
	size_t u = buf_used(in);
	const uint8_t *p = buf_data(in);
	if (u < MUX_DATA_HDR || p[4] != MSG_CHANNEL_DATA)
		return 0;
	uint32_t len = get_be32(p);
	if (len > WIRE_MAX_PACKET || u >= 4 + (size_t)len || 4 + (size_t)len - u < MUX_SPLICE_MIN)
		return 0;
	*id = get_be32(p + 5);
	*dlen = get_be32(p + 9);
	if ((uint64_t)*dlen + 9 != len)
		return 0;
	*rest = 4 + (size_t)len - u;
	return 1;
}

/* Our own copy of the header at the start of @in, for recipient @to. */
static void put_header(struct buf *q, const struct buf *in, uint32_t to)
{
	uint8_t h[MUX_DATA_HDR];
	memcpy(h, buf_data(in), MUX_DATA_HDR);
	put_be32(h + 5, to);
	buf_put(q, h, MUX_DATA_HDR);
	buf_put(q, buf_data(in) + MUX_DATA_HDR, buf_used(in) - MUX_DATA_HDR);
}

static void client_free(struct mux *m, unsigned i);
static void client_drop(struct mux *m, unsigned i);
static void client_lost(struct mux *m, unsigned i);
static void check_overflow(struct mux *m);
static bool gout_write(struct mux *m);

static void guest_lost(struct mux *m, ssize_t n, int err)
{
	char why[300], lost[200];
	if (target_lost_reason(m->label, lost, sizeof(lost)))
		snprintf(why, sizeof(why), "the stream to the agent of %s ended: %s", m->label, lost);
	else
		snprintf(why, sizeof(why), "the stream to the agent of %s ended (%s)", m->label,
			 n < 0 ? strerror(err) : "the guest side closed it");
	begin_end(m, why);
}

/* The download is done: what waited behind it for its client follows. */
static void dn_done(struct mux *m)
{
	int i = m->dn.cl;
	m->dn = (struct payload){ .cl = -1 };
	if (i < 0)
		return;
	struct mclient *c = &m->cl[i];
	c->held = false;
	if (buf_used(&c->hold)) {
		buf_put(&c->out, buf_data(&c->hold), buf_used(&c->hold));
		if (c->out.err)
			c->overflow = true;
	}
	buf_reset(&c->hold);
	if (c->closing && !buf_used(&c->out))
		client_free(m, (unsigned)i);
}

/* The download's client cannot take spliced bytes: copy the rest (or drop it). */
static void dn_unsplice(struct mux *m)
{
	struct payload *d = &m->dn;
	if (d->cl >= 0) {
		struct mclient *c = &m->cl[d->cl];
		d->inpipe -= pipe_to_buf(m->dn_pipe[0], &c->out, d->inpipe);
		if (d->inpipe || c->out.err)
			c->overflow = true; /* check_overflow() drops it: d goes PL_DROP */
	}
	d->mode = d->cl >= 0 ? PL_COPY : PL_DROP;
	d->pipe_full = false;
	d->stall_at = 0;
}

/*
 * The guest's input buffer holds just the header (and maybe the start) of
 * a bulk CHANNEL_DATA: check it, queue the rewritten header for its client
 * and let dn_pump() move the payload.  1 taken, 0 parse as usual, -1 the
 * guest broke the protocol (ending).
 */
static int dn_begin(struct mux *m)
{
	uint32_t id, dlen, owner, cid;
	size_t rest;
	if (!m->g_splice_in || !bulk_header(&m->gin, &id, &dlen, &rest) ||
	    !pipe_ready(m->dn_pipe, &m->dn_pipe_sz, &m->dn_pipe_bad))
		return 0;
	if (mux_core_guest_data(&m->core, id, dlen, &owner, &cid) < 0) {
		char why[300];
		snprintf(why, sizeof(why), "%s: %s", m->label, m->core.why);
		begin_end(m, why);
		return -1;
	}
	m->grx += 9 + (uint64_t)dlen;
	m->dn = (struct payload){ .active = true, .mode = PL_DROP, .cl = -1, .left = rest };
	struct mclient *c = owner < MUX_MAX_CLIENTS ? &m->cl[owner] : NULL;
	if (c && c->used && !c->closing) {
		c->held = true;
		m->dn.cl = (int)owner;
		m->dn.mode = c->no_splice ? PL_COPY : PL_SPLICE;
		/* Nothing before it: the header goes through the pipe too, so one
		 * splice carries header and payload (a small write to an empty pipe
		 * is whole: PIPE_BUF). */
		size_t have = buf_used(&m->gin);
		if (m->dn.mode == PL_SPLICE && !buf_used(&c->out) && have <= 4096) {
			uint8_t h[4096];
			memcpy(h, buf_data(&m->gin), have);
			put_be32(h + 5, cid);
			if (write(m->dn_pipe[1], h, have) == (ssize_t)have)
				m->dn.inpipe = have;
		}
		if (!m->dn.inpipe)
			put_header(&c->out, &m->gin, cid);
		if (c->out.err)
			c->overflow = true;
	}
	buf_consume(&m->gin, buf_used(&m->gin));
	m->gexact = MUX_EXACT_PACKETS;
	return 1;
}

/* Move the download on as far as the guest and its client let it. */
static void dn_pump(struct mux *m)
{
	struct payload *d = &m->dn;
	int retries = 0;
	while (d->active && !m->ending) {
		bool moved = false;
		struct mclient *c = d->cl >= 0 ? &m->cl[d->cl] : NULL;
		if (d->mode == PL_SPLICE) {
			size_t room = m->dn_pipe_sz > d->inpipe ? m->dn_pipe_sz - d->inpipe : 0;
			if (d->left && !d->pipe_full && room) {
				ssize_t n = splice(m->grfd, NULL, m->dn_pipe[1], NULL, min_sz(d->left, room),
						   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
				int e = errno;
				if (n > 0) {
					d->left -= (size_t)n;
					m->g_in += (uint64_t)n;
					d->inpipe += (size_t)n;
					m->last_rx = m->now;
					moved = true;
				} else if (n == 0) {
					guest_lost(m, 0, 0);
					return;
				} else if (e == EAGAIN) {
					int b = splice_blocked(m->grfd, m->dn_pipe[1]);
					if (b > 0 && retries++ < 2)
						continue; /* raced with the bytes' arrival */
					if (b && !d->inpipe) {
						/* Refused with room and bytes both there: never spin on it. */
						m->g_splice_in = false;
						dn_unsplice(m);
						continue;
					}
					if (b)
						d->pipe_full = true; /* the client must take some first */
				} else if (e == EINVAL || e == ENOSYS) {
					m->g_splice_in = false;
					dn_unsplice(m);
					continue;
				} else if (e != EINTR) {
					guest_lost(m, n, e);
					return;
				}
			} else if (d->left && !room) {
				d->pipe_full = true;
			}
			/* Into the client's socket only after what was queued before. */
			if (c && d->inpipe && !buf_used(&c->out)) {
				ssize_t n = splice(m->dn_pipe[0], NULL, c->fd, NULL, d->inpipe,
						   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
				int e = errno;
				if (n > 0) {
					d->inpipe -= (size_t)n;
					d->pipe_full = false;
					d->stall_at = 0;
					m->spliced_dn += (uint64_t)n;
					moved = true;
				} else if (n < 0 && e == EAGAIN) {
					if (!d->stall_at)
						d->stall_at = m->now;
				} else if (n < 0 && (e == EINVAL || e == ENOSYS)) {
					c->no_splice = true;
					dn_unsplice(m);
					continue;
				} else if (n < 0 && e != EINTR) {
					client_lost(m, (unsigned)d->cl); /* d is PL_DROP now */
					continue;
				}
			}
		} else if (d->mode == PL_COPY && c) {
			/* Straight into the client's queue: one copy, as for small packets. */
			size_t want = min_sz(d->left, MUX_READ_CHUNK * 4);
			uint8_t *w = d->left ? buf_reserve(&c->out, want) : NULL;
			if (d->left && !w) {
				c->overflow = true;
				check_overflow(m); /* d is PL_DROP now */
				continue;
			}
			if (w) {
				ssize_t n = read(m->grfd, w, want);
				int e = errno;
				if (n > 0) {
					buf_commit(&c->out, (size_t)n);
					d->left -= (size_t)n;
					m->g_in += (uint64_t)n;
					m->last_rx = m->now;
					moved = true;
				} else if (n == 0 || (e != EAGAIN && e != EINTR)) {
					guest_lost(m, n, e);
					return;
				}
			}
		} else {
			/* PL_DROP: its client is gone; the stream must still pass it. */
			if (d->inpipe) {
				if (pipe_drop(m->dn_pipe[0], d->inpipe) < d->inpipe) {
					/* Never: bytes left there would open the next payload. */
					close(m->dn_pipe[0]);
					close(m->dn_pipe[1]);
					m->dn_pipe[0] = m->dn_pipe[1] = -1;
					m->dn_pipe_bad = true;
				}
				d->inpipe = 0;
				d->pipe_full = false;
				moved = true;
			}
			size_t room;
			uint8_t *w = d->left ? buf_reserve_read(&m->gin, 4096, MUX_READ_CHUNK, &room) : NULL;
			if (w) {
				ssize_t n = read(m->grfd, w, min_sz(d->left, room));
				int e = errno;
				if (n > 0) {
					d->left -= (size_t)n; /* never committed */
					m->g_in += (uint64_t)n;
					m->last_rx = m->now;
					moved = true;
				} else if (n == 0 || (e != EAGAIN && e != EINTR)) {
					guest_lost(m, n, e);
					return;
				}
			}
		}
		if (!d->left && !d->inpipe) {
			dn_done(m);
			return;
		}
		if (!moved) {
			/* Waiting for the client alone: how long (see dn_stalled()). */
			if (c && d->mode == PL_SPLICE && (d->pipe_full || !d->left) && !d->stall_at)
				d->stall_at = m->now;
			return;
		}
	}
}

/*
 * Uploads are gathered before they are committed to the guest's stream:
 * the header is checked by the core and rewritten into the pipe, the
 * payload follows it there from the client's socket (splice), and only
 * once the pipe holds the whole packet does it drain into the guest's
 * socket.  So a client that stops mid-packet holds up nobody (the guest's
 * stream has not seen the packet yet); while the pipe drains, other
 * output for the guest waits in ghold and other clients go unread, for as
 * long as the guest takes the payload.  When the pipe cannot be used the
 * packet is gathered the same way in ubuf instead (a copy).
 */

/* Is the upload in the guest's stream (draining)? */
static bool up_committed(const struct mux *m)
{
	return m->up.active && m->up.committed;
}

/* Output for the guest goes behind the committed upload, if any. */
static struct buf *gq(struct mux *m)
{
	return up_committed(m) ? &m->ghold : &m->gout;
}

/* The upload is all in the guest's queue or socket: what waited behind it follows. */
static void up_done(struct mux *m)
{
	m->up = (struct payload){ .cl = -1 };
	buf_reset(&m->ubuf);
	if (buf_used(&m->ghold))
		buf_put(&m->gout, buf_data(&m->ghold), buf_used(&m->ghold));
	buf_reset(&m->ghold);
}

/* Forget an upload that never entered the guest's stream (its client is gone). */
static void up_discard(struct mux *m)
{
	struct payload *d = &m->up;
	if (d->inpipe && pipe_drop(m->up_pipe[0], d->inpipe) < d->inpipe) {
		/* Never: bytes left there would open the next packet. */
		close(m->up_pipe[0]);
		close(m->up_pipe[1]);
		m->up_pipe[0] = m->up_pipe[1] = -1;
		m->up_pipe_bad = true;
	}
	m->up = (struct payload){ .cl = -1 };
	buf_reset(&m->ubuf);
}

/* The pipe's bytes into @b (ubuf while gathering, the guest's queue once committed). */
static bool up_unsplice(struct mux *m, struct buf *b)
{
	struct payload *d = &m->up;
	d->inpipe -= pipe_to_buf(m->up_pipe[0], b, d->inpipe);
	d->mode = PL_COPY;
	if (!d->inpipe)
		return true;
	begin_end(m, "the mux lost bytes of an upload (out of memory)");
	return false;
}

/*
 * Client @i's input buffer holds just the header (and maybe the start) of
 * a bulk CHANNEL_DATA: check it and gather the rest.  1 taken, 0 parse as
 * usual, -1 the client broke the protocol (failed).
 */
static int up_begin(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	uint32_t id, dlen, gid;
	size_t rest;
	if (m->up.active || !m->g_splice_out || c->no_splice ||
	    !bulk_header(&c->in, &id, &dlen, &rest) ||
	    !pipe_ready(m->up_pipe, &m->up_pipe_sz, &m->up_pipe_bad) || rest > m->up_pipe_sz)
		return 0;
	if (mux_core_client_data(&m->core, i, id, dlen, &gid) < 0)
		return -1;
	m->gtx += 9 + (uint64_t)dlen;
	struct payload *d = &m->up;
	*d = (struct payload){ .active = true, .mode = PL_SPLICE, .cl = (int)i, .left = rest };
	size_t have = buf_used(&c->in);
	/* A small write to an empty pipe is whole (PIPE_BUF). */
	if (have <= 4096) {
		uint8_t h[4096];
		memcpy(h, buf_data(&c->in), have);
		put_be32(h + 5, gid);
		if (write(m->up_pipe[1], h, have) == (ssize_t)have)
			d->inpipe = have;
		else
			d->mode = PL_COPY;
	} else {
		d->mode = PL_COPY;
	}
	if (d->mode == PL_COPY)
		put_header(&m->ubuf, &c->in, gid);
	buf_consume(&c->in, have);
	c->exact = MUX_EXACT_PACKETS;
	return 1;
}

/* Move the upload on as far as its client and the guest let it. */
static void up_pump(struct mux *m)
{
	struct payload *d = &m->up;
	int retries = 0;
	while (d->active && !m->ending) {
		bool moved = false;
		if (!d->committed) {
			unsigned i = (unsigned)d->cl;
			int fd = m->cl[i].fd;
			ssize_t n;
			int e;
			if (d->mode == PL_SPLICE) {
				n = splice(fd, NULL, m->up_pipe[1], NULL, d->left,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
				e = errno;
				if (n > 0)
					d->inpipe += (size_t)n;
			} else {
				uint8_t *w = buf_reserve(&m->ubuf, d->left);
				n = w ? read(fd, w, d->left) : -1;
				e = w ? errno : ENOMEM;
				if (n > 0)
					buf_commit(&m->ubuf, (size_t)n);
			}
			if (n > 0) {
				d->left -= (size_t)n;
				m->c_in += (uint64_t)n;
				moved = true;
			} else if (n == 0 || (d->mode == PL_COPY && e != EAGAIN && e != EINTR)) {
				up_discard(m); /* it went away mid-packet */
				client_drop(m, i);
				return;
			} else if (e != EINTR && !(e == EAGAIN && d->mode == PL_COPY)) {
				int b = e == EAGAIN ? splice_blocked(fd, m->up_pipe[1]) : -1;
				if (b > 0 && retries++ < 2)
					continue; /* raced with the bytes' arrival */
				if (b) {
					/* Refused, or no room in the pipe's pages: copy, never spin
					 * (a read tells what a refusal was). */
					m->cl[i].no_splice = true;
					if (!up_unsplice(m, &m->ubuf))
						return;
					continue;
				}
				/* else the rest of the packet is not there yet */
			}
			if (!d->left) {
				d->committed = true;
				d->cl = -1; /* its client may go now */
				if (d->mode == PL_COPY) {
					buf_put(&m->gout, buf_data(&m->ubuf), buf_used(&m->ubuf));
					up_done(m);
					gout_write(m);
					return;
				}
			}
		} else {
			moved = gout_write(m);
			if (m->ending)
				return;
			if (d->inpipe && !buf_used(&m->gout)) {
				ssize_t n = splice(m->up_pipe[0], NULL, m->gwfd, NULL, d->inpipe,
						   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
				int e = errno;
				if (n > 0) {
					d->inpipe -= (size_t)n;
					m->spliced_up += (uint64_t)n;
					moved = true;
				} else if (n < 0 && (e == EINVAL || e == ENOSYS)) {
					m->g_splice_out = false;
					if (up_unsplice(m, &m->gout))
						up_done(m);
					gout_write(m);
					return;
				} else if (n < 0 && e != EAGAIN && e != EINTR) {
					char why[300];
					snprintf(why, sizeof(why), "writing to the agent of %s failed: %s",
						 m->label, strerror(e));
					begin_end(m, why);
					return;
				}
			}
			if (!d->inpipe) {
				up_done(m);
				gout_write(m);
				return;
			}
		}
		if (!moved)
			return;
	}
}

/* ---- clients ---- */

static void client_free(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	if (!c->used)
		return;
	if (m->up.active && m->up.cl == (int)i)
		up_discard(m); /* still gathering: the guest never saw it */
	if (m->dn.active && m->dn.cl == (int)i) {
		m->dn.cl = -1;
		m->dn.mode = PL_DROP;
	}
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->hold);
	*c = (struct mclient){ 0 };
	while (m->hi && !m->cl[m->hi - 1].used)
		m->hi--;
}

/* The client's side of the core goes now; its socket may still flush. */
static void client_drop(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	mux_core_client_gone(&m->core, i);
	if (!c->closing || (!buf_used(&c->out) && !c->held)) {
		log_info("client pid %d left", (int)c->pid);
		client_free(m, i);
	}
}

/* Its socket failed (closed, reset). */
static void client_lost(struct mux *m, unsigned i)
{
	if (m->cl[i].closing)
		client_free(m, i);
	else
		client_drop(m, i);
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
	if ((unsigned)slot >= m->hi)
		m->hi = (unsigned)slot + 1;
	buf_init(&c->in, MUX_IN_MAX);
	buf_init(&c->out, MUX_CLIENT_OUT_MAX);
	buf_init(&c->hold, MUX_CLIENT_OUT_MAX);
	buf_put(&c->out, MUX_PREAMBLE, MUX_PREAMBLE_LEN);
	if (m->guest_greeted)
		client_greet(c);
	m->idle_since = 0;
	log_info("client pid %d attached", (int)c->pid);
	client_write(m, (unsigned)slot); /* it waits for the preamble: no poll round first */
}

static void client_read_once(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	if (m->up.active && m->up.cl == (int)i) {
		up_pump(m);
		return;
	}
	size_t room;
	uint8_t *w = buf_reserve_read(&c->in, 4096, m->read_chunk, &room);
	if (!w) {
		client_close_with(m, c, DISC_PROTOCOL_ERROR, "input buffer exhausted");
		client_drop(m, i);
		return;
	}
	if (c->exact && c->greeted)
		room = min_sz(room, exact_want(&c->in));
	ssize_t n = read(c->fd, w, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(m, i);
		return;
	}
	buf_commit(&c->in, (size_t)n);
	m->c_in += (uint64_t)n;
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
		int b = up_begin(m, i);
		if (b < 0) {
			client_drop(m, i);
			return;
		}
		if (b > 0) {
			up_pump(m);
			return;
		}
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
		if (pkt.p[0] == MSG_CHANNEL_DATA && pkt.n >= MUX_SPLICE_MIN && !m->up_pipe_bad &&
		    m->g_splice_out && !c->no_splice)
			c->exact = MUX_EXACT_PACKETS;
		else if (c->exact)
			c->exact--;
		if (mux_core_from_client(&m->core, i, (uint8_t *)pkt.p, pkt.n) < 0) {
			client_drop(m, i);
			return;
		}
	}
}

static void client_write(struct mux *m, unsigned i)
{
	struct mclient *c = &m->cl[i];
	if (buf_used(&c->out)) {
		ssize_t n = write(c->fd, buf_data(&c->out), buf_used(&c->out));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_lost(m, i);
			return;
		}
		buf_consume(&c->out, (size_t)n);
		if (m->dn.active && m->dn.cl == (int)i)
			m->dn.stall_at = 0; /* it reads */
	}
	if (!buf_used(&c->out) && m->dn.active && m->dn.cl == (int)i) {
		dn_pump(m); /* its spliced payload comes next */
		return;
	}
	if (c->closing && !buf_used(&c->out) && !c->held) {
		log_info("client pid %d left", (int)c->pid);
		client_free(m, i);
	}
}

static void client_read(struct mux *m, unsigned i)
{
	for (int k = 0; k < MUX_READ_ROUNDS && m->cl[i].used && !m->cl[i].closing && !m->ending;
	     k++) {
		uint64_t before = m->c_in;
		client_read_once(m, i);
		if (m->c_in == before || !m->cl[i].used || (!m->cl[i].exact && !m->up.active) ||
		    up_committed(m))
			break;
	}
}

/* After each batch of core work: clients that could not take their output. */
static void check_overflow(struct mux *m)
{
	for (unsigned i = 0; i < m->hi; i++) {
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

static void guest_read_once(struct mux *m)
{
	if (m->dn.active) {
		dn_pump(m);
		check_overflow(m);
		return;
	}
	size_t room;
	uint8_t *w = buf_reserve_read(&m->gin, 4096, MUX_READ_CHUNK * 4, &room);
	if (!w) {
		begin_end(m, "the agent's input buffer is exhausted");
		return;
	}
	if (m->gexact && m->guest_greeted)
		room = min_sz(room, exact_want(&m->gin));
	ssize_t n = read(m->grfd, w, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		guest_lost(m, n, errno);
		return;
	}
	buf_commit(&m->gin, (size_t)n);
	m->g_in += (uint64_t)n;
	m->last_rx = m->now;
	while (!m->guest_greeted) {
		int r = wire_scan_greeting(&m->gin, m->guest_version, sizeof(m->guest_version));
		if (r < 0) {
			begin_end(m, "the agent's greeting line is too long");
			return;
		}
		if (r == 0)
			return;
		/* An answer to a host that was on the port before us (a killed
		 * mux, a forced libvirt channel): its session's bytes follow it,
		 * and the scan skips them up to the greeting that names us. */
		char v[WIRE_TOKEN_MAX + 1];
		if (wire_greeting_token(m->guest_version, WIRE_REPLY_KEY, v, sizeof(v)) &&
		    strcmp(v, client_nonce()) != 0) {
			log_info("skipped an agent's answer to another host: %s", m->guest_version);
			continue;
		}
		m->guest_greeted = true;
		log_info("agent greeted: %s", m->guest_version);
		ask_agent(m, "line-rate@wicket");
		m->neg = NEG_RATE;
		for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++)
			if (m->cl[i].used && !m->cl[i].closing)
				client_greet(&m->cl[i]);
	}
	for (;;) {
		int b = dn_begin(m);
		if (b < 0)
			break;
		if (b > 0) {
			dn_pump(m);
			break;
		}
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
		if (m->zrx) {
			int zr = zpkt_inflate(m->zrx, pkt.p, pkt.n, &m->zin, WIRE_MAX_PACKET);
			if (zr < 0 || !buf_used(&m->zin)) {
				snprintf(why, sizeof(why), "protocol error from the agent of %s: %s",
					 m->label,
					 zr == -EMSGSIZE ? "compressed packet too large"
							 : "malformed compressed data");
				begin_end(m, why);
				break;
			}
			pkt.p = buf_data(&m->zin);
			pkt.n = buf_used(&m->zin);
		}
		if (m->neg != NEG_DONE && (pkt.p[0] == MSG_REQUEST_SUCCESS ||
					   pkt.p[0] == MSG_REQUEST_FAILURE)) {
			struct rd rd;
			rd_init(&rd, pkt.p + 1, pkt.n - 1);
			if (negotiate(m, pkt.p[0], &rd) < 0)
				break;
			continue;
		}
		if (pkt.p[0] == MSG_CHANNEL_DATA && pkt.n >= MUX_SPLICE_MIN && !m->dn_pipe_bad &&
		    m->g_splice_in)
			m->gexact = MUX_EXACT_PACKETS;
		else if (m->gexact)
			m->gexact--;
		if (mux_core_from_guest(&m->core, (uint8_t *)pkt.p, pkt.n) < 0) {
			snprintf(why, sizeof(why), "%s: %s", m->label, m->core.why);
			begin_end(m, why);
			break;
		}
	}
	check_overflow(m);
}

static void guest_read(struct mux *m)
{
	for (int k = 0; k < MUX_READ_ROUNDS && !m->ending; k++) {
		uint64_t before = m->g_in;
		guest_read_once(m);
		if (m->g_in == before || (!m->gexact && !m->dn.active))
			break;
	}
}

/* Write what is queued for the guest; true when something went. */
/*
 * A slow line: what the kernel still holds for the agent's side (the socket
 * or tty queue below us) is bytes a keystroke would wait behind.  How much
 * we may add now; 0 with a short pause when it holds enough already.
 */
static size_t line_room(struct mux *m)
{
	int q = 0;
	if (!m->core.max_packet || ioctl(m->gwfd, TIOCOUTQ, &q) < 0)
		return SIZE_MAX;
	if (q < (int)MUX_SLOW_OUTQ)
		return MUX_SLOW_OUTQ - (size_t)q;
	m->pace_until = m->now + 10;
	return 0;
}

static bool gout_write(struct mux *m)
{
	if (!buf_used(&m->gout) || m->ending)
		return false;
	size_t room = line_room(m);
	if (!room)
		return false;
	ssize_t n = write(m->gwfd, buf_data(&m->gout),
			  buf_used(&m->gout) < room ? buf_used(&m->gout) : room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		char why[300];
		snprintf(why, sizeof(why), "writing to the agent of %s failed: %s", m->label,
			 n < 0 ? strerror(errno) : "closed");
		buf_reset(&m->gout);
		begin_end(m, why);
		return false;
	}
	buf_consume(&m->gout, (size_t)n);
	return true;
}

static void guest_write(struct mux *m)
{
	if (up_committed(m))
		up_pump(m); /* the queue first, then the pipe */
	else
		gout_write(m);
}

/*
 * An agent that never greets (not started yet, restarted after our
 * greeting, a stream to nowhere) must not leave a mux that every later
 * command attaches to and waits on: end it, so the next command's mux
 * greets afresh.  As long as a command waits for a greeting without a mux
 * (60 s), or three keepalive intervals when those are shorter.
 */
#define MUX_GREET_TIMEOUT_MS 60000LL

static void greet_tick(struct mux *m, long long now)
{
	if (m->neg == NEG_DONE || m->ending)
		return;
	long long limit = MUX_GREET_TIMEOUT_MS;
	if (m->keepalive && MUX_KEEPALIVE_MISSES * m->keepalive * 1000LL < limit)
		limit = MUX_KEEPALIVE_MISSES * m->keepalive * 1000LL;
	if (now - m->started < limit)
		return;
	char why[400];
	snprintf(why, sizeof(why),
		 "%s from the agent of %s within %lld s (is wicketd running there?)",
		 m->guest_greeted ? "no answer" : "no greeting", m->label, limit / 1000);
	begin_end(m, why);
}

static void keepalive_tick(struct mux *m, long long now)
{
	if (!m->keepalive || m->neg != NEG_DONE || m->ending || now < m->next_keepalive)
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
	for (unsigned i = 0; i < m->hi; i++)
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
	/* The guest's stream gets the whole of an upload before its DISCONNECT
	 * (one still gathering never entered it); a client mid-download cannot
	 * parse one: it is just closed. */
	if (up_committed(m)) {
		if (up_unsplice(m, &m->gout))
			up_done(m);
	} else if (m->up.active) {
		up_discard(m);
	}
	if (m->dn.active && m->dn.cl >= 0) {
		unsigned i = (unsigned)m->dn.cl;
		m->dn = (struct payload){ .cl = -1 };
		client_free(m, i);
	}
	m->dn = (struct payload){ .cl = -1 };
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

/* A spliced download whose client took nothing for MUX_SPLICE_STALL_MS, the guest waiting. */
static bool dn_stalled(const struct mux *m, long long now)
{
	const struct payload *d = &m->dn;
	return d->active && d->mode == PL_SPLICE && d->cl >= 0 && d->stall_at &&
	       (d->pipe_full || !d->left) && now - d->stall_at >= MUX_SPLICE_STALL_MS;
}

/* Payload bytes are spliced only from and to sockets and pipes (see lib/conn.c). */
static bool splice_fd(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

static int mux_run(struct mux *m)
{
	for (;;) {
		long long now = m->now = now_ms();
		keepalive_tick(m, now);
		greet_tick(m, now);
		if (m->ending)
			break;
		unsigned ncl = 0;
		for (unsigned i = 0; i < m->hi; i++) {
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
		struct payload *dn = &m->dn, *up = &m->up;
		if (dn_stalled(m, now)) {
			struct mclient *c = &m->cl[dn->cl];
			log_info("client pid %d took nothing for %d ms: copying its data from now on",
				 (int)c->pid, MUX_SPLICE_STALL_MS);
			c->no_splice = true;
			dn_unsplice(m);
			check_overflow(m);
			dn_pump(m);
			check_overflow(m);
			flush_clients(m);
			continue;
		}
		struct pollfd p[MUX_MAX_CLIENTS + 3];
		unsigned idx[MUX_MAX_CLIENTS + 3];
		int np = 0;
		p[np] = (struct pollfd){ .fd = m->lfd, .events = POLLIN };
		idx[np++] = UINT32_MAX;
		/* Mid-download the guest is read only while the payload can move on. */
		bool g_in = !dn->active || (dn->left && !(dn->mode == PL_SPLICE && dn->pipe_full));
		bool g_out = (buf_used(&m->gout) || (up_committed(m) && up->inpipe)) &&
			     m->now >= m->pace_until;
		if (m->gwfd == m->grfd) {
			p[np] = (struct pollfd){ .fd = m->grfd,
						 .events = (short)((g_in ? POLLIN : 0) |
								   (g_out ? POLLOUT : 0)) };
			idx[np] = UINT32_MAX - 1;
			np += p[np].events != 0;
		} else {
			if (g_in) {
				p[np] = (struct pollfd){ .fd = m->grfd, .events = POLLIN };
				idx[np++] = UINT32_MAX - 1;
			}
			if (g_out) {
				p[np] = (struct pollfd){ .fd = m->gwfd, .events = POLLOUT };
				idx[np++] = UINT32_MAX - 2;
			}
		}
		/* A gathering upload's source is read for its payload only; while one
		 * drains into the guest's stream, nobody is read. */
		bool take_input = m->neg == NEG_DONE && buf_used(&m->gout) < m->guest_high &&
				  !up_committed(m);
		for (unsigned i = 0; i < m->hi; i++) {
			struct mclient *c = &m->cl[i];
			if (!c->used)
				continue;
			short ev = 0;
			if (!c->closing && take_input)
				ev |= POLLIN;
			if (buf_used(&c->out) ||
			    (dn->active && dn->cl == (int)i && dn->mode == PL_SPLICE && dn->inpipe))
				ev |= POLLOUT;
			if (!ev)
				continue;
			p[np] = (struct pollfd){ .fd = c->fd, .events = ev };
			idx[np++] = i;
		}
		int timeout = 1000;
		if (buf_used(&m->gout) && m->now < m->pace_until)
			timeout = (int)(m->pace_until - m->now);
		if (m->keepalive && m->guest_greeted) {
			long long t = m->next_keepalive - now;
			if (t < timeout)
				timeout = t < 0 ? 0 : (int)t;
		}
		if (dn->active && dn->stall_at) {
			long long t = dn->stall_at + MUX_SPLICE_STALL_MS - now;
			if (t < timeout)
				timeout = t < 0 ? 0 : (int)t;
		}
		if (poll(p, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			begin_end(m, "poll failed");
			break;
		}
		m->now = now_ms();
		for (int k = 0; k < np && !m->ending; k++) {
			short rev = p[k].revents, ev = p[k].events;
			if (!rev)
				continue;
			if (idx[k] == UINT32_MAX) {
				accept_one(m);
			} else if (idx[k] >= UINT32_MAX - 2) {
				if (rev & POLLOUT)
					guest_write(m);
				/* Hang-ups seen with only POLLOUT asked: the write tells. */
				if ((ev & POLLIN) && (rev & (POLLIN | POLLHUP | POLLERR)) &&
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
				if (m->cl[i].used && (ev & POLLIN) && (rev & (POLLIN | POLLHUP | POLLERR)) &&
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
	/* wicket --mux-daemon LABEL SOCK LOCK PERSIST KEEPALIVE HELPER-PID LOG-LEVEL COMPRESS OPENED */
	static struct mux m;
	int level = LOG_WARN, helper = 0;
	if (argc != 11 || parse_int(argv[5], &m.persist) || parse_int(argv[6], &m.keepalive) ||
	    parse_int(argv[7], &helper) || parse_int(argv[8], &level) ||
	    parse_int(argv[9], &m.compress)) {
		fprintf(stderr, "wicket: %s is for wicket's own use\n", MUX_DAEMON_ARG);
		return 2;
	}
	m.label = argv[2];
	m.sock = argv[3];
	m.lock = argv[4];
	m.helper = helper;
	/* "target": the stream is the target's own (no proxy command), so
	 * target_lost_reason() may ask the target why it ended. */
	if (strcmp(argv[10], "target") == 0)
		target_note_opened(m.label);
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
	buf_init(&m.zin, WIRE_MAX_PACKET + 1);
	m.guest_high = MUX_GUEST_HIGH;
	m.read_chunk = MUX_READ_CHUNK;
	buf_init(&m.gout, MUX_GUEST_OUT_MAX);
	buf_init(&m.ghold, MUX_GUEST_OUT_MAX);
	buf_init(&m.ubuf, WIRE_MAX_PACKET + 4);
	m.dn = m.up = (struct payload){ .cl = -1 };
	m.g_splice_in = splice_fd(m.grfd);
	m.g_splice_out = splice_fd(m.gwfd);
	m.dn_pipe[0] = m.dn_pipe[1] = m.up_pipe[0] = m.up_pipe[1] = -1;
	mux_core_init(&m.core, &mux_io, &m);
	m.started = m.last_rx = m.now = now_ms();
	m.next_keepalive = m.started + m.keepalive * 1000LL;
	log_info("serving %s on %s (persist %d, keepalive %d)", m.label, m.sock, m.persist,
		 m.keepalive);
	/* Tagged like a direct host's, so an answer meant for another host is
	 * told apart from ours (and the agent logs whom it answers). */
	char tag[sizeof(WIRE_NONCE_KEY) + 20];
	snprintf(tag, sizeof(tag), WIRE_NONCE_KEY "=%s", client_nonce());
	wire_put_greeting_ex(&m.gout, "wicket-mux_" WICKET_VERSION, tag);
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
	zpkt_free(m.ztx);
	zpkt_free(m.zrx);
	buf_free(&m.zin);
	buf_free(&m.gin);
	buf_free(&m.gout);
	buf_free(&m.ghold);
	buf_free(&m.ubuf);
	for (int k = 0; k < 2; k++) {
		if (m.dn_pipe[k] >= 0)
			close(m.dn_pipe[k]);
		if (m.up_pipe[k] >= 0)
			close(m.up_pipe[k]);
	}
	return r == 0 ? 0 : 1;
}
