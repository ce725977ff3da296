/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: bare framing (lib/wire.c) and the connection core
 * (lib/conn.c, lib/loop.c, lib/pktlog.c) in the server role.
 *
 * A struct conn sits on one end of a socketpair, with a session-like
 * acceptor: it confirms "session" channels, answers exec/shell/pty-req/
 * env/signal/window-change/subsystem/exec-argv@wicket requests, echoes data
 * back, finishes a "command" with exit-status + EOF + CLOSE, defers
 * "direct-tcpip" opens (confirmed or refused a round later), sends the
 * 300 KiB output of an exec of "big" from an fd with chan_send_from_fd()
 * (the agent's path for a child's output), and opens a
 * "forwarded-tcpip" channel of its own after a tcpip-forward request, so
 * both directions of CHANNEL_OPEN are exercised.  Nothing is spawned.
 *
 * The input is written into the other end of the socketpair in short
 * chunks, with loop_once() + conn_service() run after every chunk, so the
 * parser sees packets split at every possible place.  Input layout:
 *
 *   byte 0     largest chunk size - 1 (chunks of 1..256 bytes)
 *   byte 1     options: bit 0 greet_after_peer (port mode: stale greetings
 *              skipped, a new greeting ends the session), bit 1 small
 *              windows and packets (64 bytes), bit 2 at most 2 channels,
 *              bit 3 the acceptor does not consume data (no window
 *              adjusts), bit 4 packet log on (to /dev/null: lib/pktlog.c
 *              parses too), bit 5 a greeting nonce "fz" (the host side's
 *              skipping of answers for other hosts)
 *   bytes 2-3  seed of the chunk-size sequence
 *   rest       the byte stream from the "client"
 *
 * Oracle, besides the sanitizers: everything the conn writes back must be
 * its greeting line (its software-version, then the nonce or the reply
 * comment its options call for) followed by well-formed packets (length
 * 1..256 KiB, as wire_next_packet() accepts them; message allowed on a bare
 * stream) — checked as it is drained.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "wire.h"
#include "zpkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static FILE *devnull;

/* ---- the acceptor ---- */

struct fch {
	struct chan *ch;
	bool session, started, consume;
	struct fch *next_deferred;
	uint32_t deferred_arg;
	int fd;			/* "big" command output, sent with chan_send_from_fd */
	struct fch *next_src;
};

struct fsrv {
	struct conn c;
	bool consume;
	struct fch *deferred; /* opens answered at the next round */
	struct fch *sources;  /* channels with fd >= 0 */
	int own_opens;
};

/* Output of the "big" command: more than one maximum-size packet. */
#define BIG_OUTPUT (300u * 1024u)

static void f_opened(struct chan *ch)
{
	struct fch *f = ch->data;
	if (f->session)
		return;
	/* A forwarding channel (ours, or a confirmed direct-tcpip): say
	 * something, then EOF, like a server that answers and hangs up. */
	static const char hello[] = "forwarded hello\n";
	chan_send(ch, 0, hello, sizeof(hello) - 1);
	chan_send_eof(ch);
}

static void f_open_failed(struct chan *ch, uint32_t reason, struct sv msg)
{
	(void)reason;
	(void)msg;
	free(ch->data);
	ch->data = NULL;
}

static void f_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct fch *f = ch->data;
	/* Echo what fits (stdout for data, stderr for extended data). */
	chan_send(ch, ext ? SSH_EXTENDED_DATA_STDERR : 0, p, n);
	if (f->consume)
		chan_consumed(ch, n);
}

static void send_exit(struct chan *ch, uint32_t status)
{
	size_t s = chan_request_begin(ch, "exit-status", false, 0);
	buf_u32(&ch->c->out, status);
	conn_pkt_end(ch->c, s);
	chan_send_eof(ch);
	chan_send_close(ch);
}

static void f_eof(struct chan *ch)
{
	struct fch *f = ch->data;
	if (f->fd >= 0)
		return; /* "big" still writing: it exits when its output is sent */
	if (f->session && f->started)
		send_exit(ch, 0);
	else
		chan_send_eof(ch);
}

static void drop_source(struct fsrv *srv, struct fch *f)
{
	for (struct fch **pp = &srv->sources; *pp; pp = &(*pp)->next_src) {
		if (*pp == f) {
			*pp = f->next_src;
			break;
		}
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void f_closed(struct chan *ch)
{
	struct fch *f = ch->data;
	if (!f)
		return;
	struct fsrv *srv = ch->c->data;
	for (struct fch **pp = &srv->deferred; *pp; pp = &(*pp)->next_deferred) {
		if (*pp == f) {
			*pp = f->next_deferred;
			break;
		}
	}
	drop_source(srv, f);
	free(f);
	ch->data = NULL;
}

/* A tiny stand-in for agent/session.c's request table. */
static bool f_request(struct chan *ch, struct sv type, bool want_reply, struct rd *args)
{
	struct fch *f = ch->data;
	(void)want_reply;
	if (!f->session)
		return false;
	if (sv_eq(type, "pty-req")) {
		rd_str(args); /* TERM */
		rd_u32(args); /* columns */
		rd_u32(args); /* rows */
		rd_u32(args); /* width px */
		rd_u32(args); /* height px */
		struct sv modes = rd_str(args);
		(void)modes;
		return rd_end(args) && !f->started;
	}
	if (sv_eq(type, "env")) {
		struct sv name = rd_str(args);
		rd_str(args); /* value */
		return rd_end(args) && sv_eq(name, "LANG");
	}
	if (sv_eq(type, "window-change")) {
		for (int i = 0; i < 4; i++)
			rd_u32(args);
		return rd_end(args);
	}
	if (sv_eq(type, "signal")) {
		struct sv sig = rd_str(args);
		if (!rd_end(args) || !f->started)
			return false;
		if (sv_eq(sig, "TERM") || sv_eq(sig, "KILL")) {
			size_t s = chan_request_begin(ch, "exit-signal", false, 0);
			buf_sv(&ch->c->out, sig);
			buf_bool(&ch->c->out, false);
			buf_cstr(&ch->c->out, "");
			buf_cstr(&ch->c->out, "");
			conn_pkt_end(ch->c, s);
			chan_send_eof(ch);
			chan_send_close(ch);
		}
		return true;
	}
	bool exec = sv_eq(type, "exec"), shell = sv_eq(type, "shell"),
	     subsys = sv_eq(type, "subsystem"), argv = sv_eq(type, "exec-argv@wicket");
	if (!exec && !shell && !subsys && !argv)
		return false;
	struct sv cmd = SV_NULL;
	if (exec || subsys) {
		cmd = rd_str(args);
	} else if (argv) {
		uint32_t n = rd_u32(args);
		for (uint32_t i = 0; i < n && !args->err; i++)
			cmd = rd_str(args);
	}
	if (!rd_end(args) || f->started)
		return false;
	if (subsys && !sv_eq(cmd, "sftp"))
		return false;
	f->started = true;
	if (exec && sv_eq(cmd, "big")) {
		/* Like a child writing a lot: read straight from its fd into
		 * packets (the agent's path for session output). */
		struct fsrv *srv = ch->c->data;
		f->fd = memfd_create("fuzz-big", MFD_CLOEXEC);
		if (f->fd < 0 || ftruncate(f->fd, BIG_OUTPUT) < 0)
			abort();
		f->next_src = srv->sources;
		srv->sources = f;
		return true;
	}
	static const char out[] = "fuzz session output\n";
	chan_send(ch, 0, out, sizeof(out) - 1);
	chan_send(ch, SSH_EXTENDED_DATA_STDERR, out, 5);
	/* "true" finishes at once; anything else runs until the peer's EOF. */
	if (exec && sv_eq(cmd, "true"))
		send_exit(ch, 0);
	return true;
}

static const struct chan_ops fops = {
	.name = "fuzz",
	.opened = f_opened,
	.open_failed = f_open_failed,
	.data = f_data,
	.eof = f_eof,
	.closed = f_closed,
	.request = f_request,
};

static uint32_t f_open(struct conn *c, struct chan *ch, struct sv type, struct rd *args,
		       const char **msg)
{
	struct fsrv *srv = c->data;
	bool session = sv_eq(type, "session");
	bool direct = sv_eq(type, "direct-tcpip");
	if (!session && !direct) {
		*msg = "unknown channel type";
		return OPEN_UNKNOWN_CHANNEL_TYPE;
	}
	uint32_t port = 0;
	if (direct) {
		rd_str(args); /* host to connect */
		port = rd_u32(args);
		rd_str(args); /* originator address */
		rd_u32(args); /* originator port */
		if (!rd_end(args)) {
			*msg = "malformed direct-tcpip";
			return OPEN_CONNECT_FAILED;
		}
	} else if (!rd_end(args)) {
		*msg = "malformed session open";
		return OPEN_CONNECT_FAILED;
	}
	struct fch *f = calloc(1, sizeof(*f));
	if (!f) {
		*msg = "out of memory";
		return OPEN_RESOURCE_SHORTAGE;
	}
	f->ch = ch;
	f->session = session;
	f->consume = srv->consume;
	f->fd = -1;
	ch->ops = &fops;
	ch->data = f;
	if (direct) {
		/* Like a non-blocking connect: answered on the next round. */
		f->deferred_arg = port;
		f->next_deferred = srv->deferred;
		srv->deferred = f;
		return CHAN_OPEN_DEFERRED;
	}
	return 0;
}

static bool f_global(struct conn *c, struct sv name, bool want_reply, struct rd *args)
{
	struct fsrv *srv = c->data;
	(void)want_reply;
	if (sv_eq(name, "tcpip-forward")) {
		rd_str(args); /* bind address */
		uint32_t port = rd_u32(args);
		if (!rd_end(args))
			return false;
		if (port == 0) {
			uint8_t p[4];
			put_be32(p, 40000);
			conn_global_reply_data(c, p, 4);
		}
		/* A "connection" arrives on the forwarded port at once. */
		if (srv->own_opens < 4) {
			struct fch *f = calloc(1, sizeof(*f));
			if (f) {
				f->fd = -1;
				struct buf b;
				buf_init(&b, 256);
				buf_cstr(&b, "127.0.0.1");
				buf_u32(&b, port);
				buf_cstr(&b, "127.0.0.1");
				buf_u32(&b, 5555);
				f->consume = srv->consume;
				struct chan *ch = chan_open_ex(c, "forwarded-tcpip", buf_data(&b),
							       buf_used(&b), &fops, f);
				buf_free(&b);
				if (ch) {
					f->ch = ch;
					srv->own_opens++;
				} else {
					free(f);
				}
			}
		}
		return true;
	}
	if (sv_eq(name, "cancel-tcpip-forward"))
		return true;
	if (sv_eq(name, "no-more-sessions@openssh.com"))
		return rd_end(args);
	return false;
}

static void f_ended(struct conn *c)
{
	(void)c;
}

static const struct conn_ops fconn_ops = {
	.open = f_open,
	.global_request = f_global,
	.ended = f_ended,
};

/* Answer deferred opens: even ports are confirmed, odd ones refused. */
static void answer_deferred(struct fsrv *srv)
{
	while (srv->deferred) {
		struct fch *f = srv->deferred;
		srv->deferred = f->next_deferred;
		f->next_deferred = NULL;
		struct chan *ch = f->ch;
		if (f->deferred_arg % 2 == 0) {
			chan_open_confirm(ch);
		} else {
			ch->data = NULL;
			free(f);
			chan_open_reject(ch, OPEN_CONNECT_FAILED, "connection refused");
		}
	}
}

/* Send what the "big" commands have, as far as windows allow. */
static void pump_sources(struct fsrv *srv)
{
	struct fch *f = srv->sources;
	while (f) {
		struct fch *next = f->next_src;
		ssize_t r;
		do
			r = chan_send_from_fd(f->ch, 0, f->fd);
		while (r > 0);
		if (r == 0) {
			drop_source(srv, f);
			send_exit(f->ch, 0);
		} else if (r != -EAGAIN) {
			drop_source(srv, f);
		}
		f = next;
	}
}

/* ---- output oracle ---- */

struct outchk {
	struct buf b;
	bool greeted;
	const struct conn *c;
	uint64_t total;	 /* bytes drained */
	struct zpkt *z;	 /* the conn compresses: its packets are inflated here */
	struct buf plain;
	uint8_t opt;
};

/* Our own greeting's software-version and comment, as the options say. */
#define FUZZ_SOFTWARE "wicket-fuzz"

static bool own_version(const char *ver, uint8_t opt)
{
	if (!(opt & (1 | 32)))
		return strcmp(ver, FUZZ_SOFTWARE) == 0;
	if (strncmp(ver, FUZZ_SOFTWARE " ", sizeof(FUZZ_SOFTWARE)) != 0)
		return false;
	const char *comment = ver + sizeof(FUZZ_SOFTWARE);
	if (opt & 32)
		return strcmp(comment, WIRE_NONCE_KEY "=fz") == 0;
	char v[WIRE_TOKEN_MAX + 1];
	return strncmp(comment, WIRE_REPLY_KEY "=", sizeof(WIRE_REPLY_KEY)) == 0 &&
	       wire_greeting_token(ver, WIRE_REPLY_KEY, v, sizeof(v)) &&
	       strlen(comment) == sizeof(WIRE_REPLY_KEY) + strlen(v);
}

static void check_output(struct outchk *o)
{
	if (!o->greeted) {
		char ver[WIRE_MAX_VERSION + 1];
		int r = wire_scan_greeting(&o->b, ver, sizeof(ver));
		if (r < 0)
			abort();
		if (r == 0)
			return;
		if (!own_version(ver, o->opt))
			abort(); /* garbage before/inside our own greeting */
		o->greeted = true;
	}
	for (;;) {
		struct sv pkt;
		uint32_t len;
		/* zlib@wicket: from the byte the conn says on, packets are compressed. */
		if (!o->z && o->c->ztx && o->total - buf_used(&o->b) == o->c->z_raw_end) {
			o->z = zpkt_new(false);
			buf_init(&o->plain, WIRE_MAX_PACKET + 1);
		}
		int r = wire_next_packet(&o->b, &pkt, &len);
		if (r == 0)
			return;
		if (r < 0) {
			fprintf(stderr, "fuzz_conn: conn sent a bad packet length %u\n", len);
			abort();
		}
		if (o->z) {
			if (zpkt_inflate(o->z, pkt.p, pkt.n, &o->plain, WIRE_MAX_PACKET) < 0 ||
			    !buf_used(&o->plain)) {
				fprintf(stderr, "fuzz_conn: conn sent a bad compressed packet\n");
				abort();
			}
			pkt.p = buf_data(&o->plain);
			pkt.n = buf_used(&o->plain);
		}
		if (!msg_allowed(pkt.p[0])) {
			fprintf(stderr, "fuzz_conn: conn sent message %u\n", pkt.p[0]);
			abort();
		}
	}
}

static void drain(int fd, struct outchk *o)
{
	for (;;) {
		uint8_t *w = buf_reserve(&o->b, 65536);
		if (!w)
			abort(); /* the oracle keeps up: never more than a packet held */
		ssize_t n = read(fd, w, 65536);
		if (n <= 0)
			return;
		buf_commit(&o->b, (size_t)n);
		o->total += (uint64_t)n;
		check_output(o);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Quiet: protocol errors are the point.  WICKET_FUZZ_LOG=3 shows them. */
	log_level = getenv("WICKET_FUZZ_LOG") ? atoi(getenv("WICKET_FUZZ_LOG")) : -1;
	signal(SIGPIPE, SIG_IGN);
	devnull = fopen("/dev/null", "w");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	size_t maxchunk = (size_t)data[0] + 1;
	uint8_t opt = data[1];
	uint32_t rng = (uint32_t)data[2] << 8 | data[3];
	data += 4;
	size -= 4;

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
		abort();
	struct loop l;
	loop_init(&l);
	struct fsrv *srv = calloc(1, sizeof(*srv));
	if (!srv)
		abort();
	srv->consume = !(opt & 8);
	struct conn_cfg cfg = {
		.software = FUZZ_SOFTWARE,
		.window = (opt & 2) ? 64 : 0,
		.maxpkt = (opt & 2) ? 64 : 0,
		.max_channels = (opt & 4) ? 2 : 0,
		.pktlog = (opt & 16) ? devnull : NULL,
		.greet_after_peer = opt & 1,
		/* A client's zlib@wicket is granted: compressed input is parsed too. */
		.accept_compress = true,
		.nonce = (opt & 32) ? "fz" : NULL,
	};
	if (conn_init(&srv->c, &l, sp[0], sp[0], &cfg, &fconn_ops, srv) < 0)
		abort();
	struct outchk o = { .c = &srv->c };
	buf_init(&o.b, WIRE_MAX_PACKET + 65536 + 4);
	o.opt = opt;

	size_t pos = 0;
	bool shut = false;
	/* Every round either writes input or, after the shutdown, lets the
	 * conn see EOF: the bound is generous, hitting it is a hang. */
	size_t rounds = 0, max_rounds = size + 64;
	while (!srv->c.ended) {
		if (++rounds > max_rounds) {
			fprintf(stderr, "fuzz_conn: connection did not end after EOF\n");
			abort();
		}
		if (pos < size) {
			rng = rng * 1103515245u + 12345u;
			size_t k = 1 + (rng >> 16) % maxchunk;
			if (k > size - pos)
				k = size - pos;
			ssize_t w = write(sp[1], data + pos, k);
			if (w > 0)
				pos += (size_t)w;
			else
				max_rounds++; /* socket full: the conn is not reading (back-pressure) */
			if (max_rounds > 4 * size + 1024)
				break; /* it never reads again: a stall, not a crash */
		} else if (!shut) {
			shutdown(sp[1], SHUT_WR);
			shut = true;
		}
		loop_once(&l, 0);
		answer_deferred(srv);
		if (!srv->c.ended)
			pump_sources(srv);
		conn_service(&srv->c);
		drain(sp[1], &o);
	}
	if (!srv->c.ended)
		conn_abort(&srv->c);
	drain(sp[1], &o);
	answer_deferred(srv); /* nothing is left: ended() closed them all */
	conn_free(&srv->c);
	loop_free(&l);
	buf_free(&o.b);
	zpkt_free(o.z);
	buf_free(&o.plain);
	close(sp[0]);
	close(sp[1]);
	free(srv);
	return 0;
}
