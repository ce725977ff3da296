/* SPDX-License-Identifier: MIT */
/*
 * The SSH connection layer (RFC 4254) over bare framing, shared by the agent
 * and the host tool.  One struct conn per byte stream; channels are handled
 * by const vtables supplied by the side that opens or accepts them.
 */
#ifndef WICKET_CONN_H
#define WICKET_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "loop.h"

struct conn;
struct chan;

struct chan_ops {
	const char *name;
	/* Our CHANNEL_OPEN was confirmed / refused. */
	void (*opened)(struct chan *ch);
	void (*open_failed)(struct chan *ch, uint32_t reason, struct sv msg);
	/*
	 * Data from the peer (ext 0 = normal, else the extended type).  The
	 * handler must call chan_consumed() once it has disposed of the bytes;
	 * the window only reopens then, which is the back-pressure.
	 */
	void (*data)(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n);
	void (*eof)(struct chan *ch);
	/* Peer closed or the connection ended: release everything.  The
	 * channel is freed right after this returns. */
	void (*closed)(struct chan *ch);
	/* Return true for success.  @args is positioned after want-reply. */
	bool (*request)(struct chan *ch, struct sv type, bool want_reply, struct rd *args);
	/* Reply to one of our want-reply requests, in order. */
	void (*reply)(struct chan *ch, uint32_t tag, bool ok);
	/*
	 * Optional bulk input, only while chan_set_direct() is on: @n bytes of
	 * a big CHANNEL_DATA payload (already counted against the window) are
	 * still unread in the stream.  Return how many of them to splice into
	 * the pipe *@pipe_w (then data_piped() gets what it took), or 0 to take
	 * the next *@exact of them (0: all @n) through data() -- the stream is
	 * read exactly that far, so what follows can still be spliced.  A pipe
	 * that takes nothing gets that read instead -- except a full one: then
	 * the stream waits (up to CONN_DIRECT_STALL_MS) until the pipe has
	 * room, so its reader must be draining it on its own.  Returning 0
	 * with *@pipe_w set says the same: that pipe is busy (bytes the handler
	 * queued for it go first), wait for room rather than take data().
	 */
	size_t (*direct)(struct chan *ch, size_t n, int *pipe_w, size_t *exact);
	/* @n payload bytes wait in direct()'s pipe: empty it, chan_consumed(). */
	void (*data_piped)(struct chan *ch, size_t n);
};

/*
 * CH_OPENING: we sent CHANNEL_OPEN, no answer yet.  CH_ACCEPTING: the peer's
 * CHANNEL_OPEN is answered later (chan_open_confirm/chan_open_reject), e.g.
 * once a non-blocking connect finishes; the peer cannot address it yet.
 */
enum chan_state { CH_OPENING, CH_ACCEPTING, CH_OPEN };

#define CHAN_MAX_PENDING_REPLIES 32

struct chan {
	struct conn *c;
	const struct chan_ops *ops;
	void *data;
	uint32_t id;  /* ours */
	uint32_t rid; /* the peer's */
	enum chan_state state;
	bool sent_eof, rcvd_eof, sent_close, rcvd_close;
	uint32_t lwin;     /* bytes the peer may still send us */
	uint32_t lwin_max; /* window we keep topping up to */
	uint32_t lunacked; /* consumed, not yet returned by WINDOW_ADJUST */
	uint32_t lmaxpkt;
	uint32_t rwin;     /* bytes we may still send */
	uint64_t sent_round; /* slow line: the loop round of our last data packet */
	uint32_t rmaxpkt;
	uint32_t tags[CHAN_MAX_PENDING_REPLIES];
	unsigned tag_head, tag_n;
	bool direct; /* chan_set_direct(): big payloads may bypass data() */
	bool dx_stalled; /* its pipe stayed full too long: copies, never waits again */
};

/* conn_ops.open: answer later with chan_open_confirm() or chan_open_reject(). */
#define CHAN_OPEN_DEFERRED UINT32_MAX

struct conn_ops {
	/*
	 * Incoming CHANNEL_OPEN of @type.  Set ch->ops/data and return 0 to
	 * confirm, or return an OPEN_* reason and set *msg, or set ch->ops/data
	 * and return CHAN_OPEN_DEFERRED (closed() still runs if the connection
	 * ends first).
	 */
	uint32_t (*open)(struct conn *c, struct chan *ch, struct sv type, struct rd *args,
			 const char **msg);
	/* Return true for success; conn_global_reply_data() adds reply fields. */
	bool (*global_request)(struct conn *c, struct sv name, bool want_reply, struct rd *args);
	/* Peer greeting arrived. */
	void (*greeted)(struct conn *c);
	/* The connection is over (after every channel's closed()). */
	void (*ended)(struct conn *c);
};

struct conn_cfg {
	const char *software;	 /* our greeting's software-version */
	uint32_t window;	 /* initial window for our side of each channel */
	uint32_t maxpkt;	 /* max packet we advertise */
	uint32_t max_channels;	 /* cap on open channels */
	size_t out_high;	 /* output queue high-water mark */
	FILE *pktlog;		 /* readable packet log, or NULL */
	/*
	 * Send our greeting only after the peer's: on a port that outlives
	 * host connections (virtio-serial, serial) nothing we send can then
	 * land in a previous host's stream or in a port with nobody on it.
	 */
	bool greet_after_peer;
	/*
	 * zlib@wicket (PROTOCOL.md): @compress asks the peer for it right
	 * after our greeting (and sends nothing more until the answer);
	 * @accept_compress grants a peer's request (the agent).
	 */
	bool compress, accept_compress;
	/* Line rate in bytes/s the agent reports for line-rate@wicket (0: not a line). */
	uint32_t line_rate;
	/* Largest data payload we send, below the peer's limit (0: the peer's). */
	uint32_t tx_maxpkt;
	/*
	 * Host side: tag our greeting with this nonce (WIRE_NONCE_KEY) and
	 * skip a peer greeting that answers another host's (WIRE_REPLY_KEY
	 * with another value), with everything up to the next greeting: on a
	 * port an agent may have answered a host that has gone before ours.
	 */
	const char *nonce;
};

/*
 * Port mode (greet_after_peer): what was thrown away before a greeting
 * was taken, for the one log line that says so.
 */
struct conn_skips {
	uint64_t bytes;	    /* everything discarded, greetings included */
	unsigned later;	    /* greetings followed by another one already here */
	unsigned over;	    /* greetings whose own packets held a DISCONNECT */
	unsigned nobody;    /* greetings read while nobody had the port open */
	unsigned foreign;   /* host side: greetings answering another host */
	bool logged;
};

struct conn {
	int rfd, wfd;
	struct watch rw, ww;
	struct loop *loop;
	struct buf in, out;
	struct conn_cfg cfg;
	const struct conn_ops *ops;
	void *data;
	bool greeted;
	bool dead;	/* no more input processing; flushing what is queued */
	bool ended;
	bool want_finish; /* end at the next conn_service() */
	/*
	 * Ports: ended for a new host (conn_restart(): its greeting is in
	 * @in), or broken by a protocol error or a malformed DISCONNECT (then
	 * the packet that did it is back in @in, and the parsed bytes in @hist
	 * are worth rescanning too).
	 */
	bool restarted, broke;
	struct conn_skips skips;
	uint32_t rx_seq;
	uint64_t rx_bytes; /* bytes received, greeting and garbage included */
	/*
	 * greet_after_peer (ports): the last bytes of parsed packets.  When a
	 * dead host's half-sent packet swallowed the start of the next host's
	 * greeting, the greeting is in here (see conn_resync_tail()).
	 */
	uint8_t hist[256];
	size_t hist_n;
	char peer_version[256];
	struct chan **ch;
	uint32_t nch;	/* table size */
	uint32_t nopen; /* live channels */
	char reason[256];
	uint8_t greply[64]; /* request-specific data for the REQUEST_SUCCESS being built */
	size_t greply_n;
	/*
	 * A data packet whose payload is still in a pipe (chan_send_pipe):
	 * out's first sp_at bytes go before it, the rest after; sp_fd is our
	 * own duplicate of the pipe, closed once sp_left reaches 0.
	 */
	int sp_fd;
	size_t sp_at, sp_left;
	bool no_splice; /* wfd refused splice(2): payloads are copied */
	/*
	 * Direct input (chan_set_direct): while a channel wants it, the stream
	 * is read header-exactly, and the payload of a big CHANNEL_DATA still
	 * in the stream (dx_left bytes, for dx_ch) goes to its handler.
	 */
	bool dx_ok;	/* rfd is a socket or pipe; no packet log, no port */
	unsigned ndirect; /* channels with direct on */
	struct chan *dx_ch;
	size_t dx_left;
	uint64_t dx_spliced; /* payload bytes that went by splice (tests, logs) */
	/*
	 * dx_ch's pipe was full: the stream is not read (watch dxw polls the
	 * pipe instead) until it has room or dx_stall runs out.
	 */
	struct watch dxw;
	struct loop_pause dx_stall;
	uint64_t dx_waits; /* times that happened (tests, logs) */
	/*
	 * zlib@wicket (lib/conn_z.c): once on, what we queue in out is
	 * compressed packet by packet into zout, the real wire queue, and
	 * what we read is inflated packet by packet through zin.  While our
	 * request is unanswered only z_hold more bytes of out may go.
	 */
	struct zpkt *ztx, *zrx;
	struct buf zout, zin;
	bool z_asked;
	size_t z_hold;
	uint64_t tx_bytes;  /* bytes written to the stream */
	/*
	 * A slow tty (cfg.line_rate): write only while the kernel holds less
	 * than about one packet for the line (TIOCOUTQ), so nothing we queue
	 * later waits behind seconds of older bytes down there.
	 */
	bool tty_pace;
	struct loop_pause line_wait;
	/*
	 * A pty reports no queue (TIOCOUTQ is 0) although a relay behind it
	 * may stand for a slow line: there we pace ourselves at line_rate, a
	 * token bucket of pace_credit bytes (at most one CONN_LINE_QUEUE).
	 */
	bool rate_pace;
	/*
	 * Slow line (cfg.tx_maxpkt): whether the queue had room when this
	 * loop round began; then every channel ready in the round may queue
	 * one packet, so the first watch in the loop cannot take all of it.
	 */
	uint64_t room_round;
	bool round_room;
	double pace_credit;
	long long pace_ns;
	uint64_t pace_tx;
	uint64_t z_raw_end; /* ztx: the stream is compressed from this byte on */
};

/* Initialise on (rfd, wfd), queue our greeting and add the watches. */
int conn_init(struct conn *c, struct loop *l, int rfd, int wfd, const struct conn_cfg *cfg,
	      const struct conn_ops *ops, void *data);
/*
 * Bytes to rescan for the next host's greeting once a port session ended:
 * whatever is still unparsed, after (when a protocol error or a malformed
 * DISCONNECT ended the session) the recently parsed packet bytes, which may
 * hold the start of a greeting a dead host's half packet swallowed.  Writes at most @max bytes
 * to @out and returns the count.
 */
size_t conn_resync_tail(const struct conn *c, uint8_t *out, size_t max);
/* True when a packet has started arriving but is not complete. */
static inline bool conn_partial_input(const struct conn *c)
{
	return c->greeted && (buf_used(&c->in) || c->dx_left);
}
/*
 * True when the unfinished packet in the input holds, after its first byte,
 * a whole greeting line followed by nothing but whole packets: on a port,
 * a new host that sent its greeting (and perhaps a CHANNEL_OPEN) into a
 * dead host's half packet and now waits for our answer.  The caller decides
 * when to believe it (no more input for a while).
 */
bool conn_partial_greeting(const struct conn *c);
/*
 * Ports: a new host has greeted inside this session, so the host it served
 * is gone.  End the session without a DISCONNECT (nobody it was meant for
 * would read it), dropping queued output and keeping the unparsed input
 * for the next session's greeting scan; logs @why.
 */
void conn_restart(struct conn *c, const char *why);
/* Process bytes read elsewhere as if they had come from the stream. */
void conn_feed(struct conn *c, const void *p, size_t n);
/* Release memory; closes nothing (fds belong to the caller). */
void conn_free(struct conn *c);
/* True once zlib@wicket is on in both directions. */
bool conn_compressing(const struct conn *c);

/* Protocol error: log, queue DISCONNECT with @fmt as reason, stop input. */
void conn_fail(struct conn *c, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Orderly end from our side (DISCONNECT by application). */
void conn_disconnect(struct conn *c, const char *why);
/* Write what we can of the output queue now (never ends the connection). */
void conn_flush(struct conn *c);
/*
 * Call at top level after every loop round: flushes, and performs a pending
 * end (every channel's closed(), then ended()).  Never called from inside a
 * handler, so handlers never see their channel vanish under them.
 */
void conn_service(struct conn *c);
/* End now, dropping whatever could not be written (owner's deadline). */
void conn_abort(struct conn *c);
/* True while the output queue is under its high-water mark. */
bool conn_can_queue(const struct conn *c);

/* Packet building straight into the output queue. */
size_t conn_pkt_begin(struct conn *c, uint8_t type);
void conn_pkt_end(struct conn *c, size_t start);

/*
 * From inside conn_ops.global_request: bytes to append to REQUEST_SUCCESS
 * (e.g. the port a "tcpip-forward" for port 0 got, RFC 4254 7.1).
 */
void conn_global_reply_data(struct conn *c, const void *p, size_t n);

/* Channels */
struct chan *chan_open(struct conn *c, const char *type, const struct chan_ops *ops, void *data);
/* The same with type-specific fields (@args, @n bytes) after the common ones. */
struct chan *chan_open_ex(struct conn *c, const char *type, const void *args, size_t n,
			  const struct chan_ops *ops, void *data);
/* Answer a CHAN_OPEN_DEFERRED open: confirm (then ops->opened runs) ... */
void chan_open_confirm(struct chan *ch);
/* ... or refuse it; the channel is released without ops->closed. */
void chan_open_reject(struct chan *ch, uint32_t reason, const char *msg);
/* Bytes we may send right now on @ch (window, packet size, queue room). */
size_t chan_send_room(const struct chan *ch);
/*
 * Largest data payload of one packet on @ch: ours to the peer (@inbound
 * false), or the peer's to us, assuming a peer built like us (@inbound).
 */
size_t chan_packet_max(const struct chan *ch, bool inbound);
/* Send up to @n bytes; returns how many were queued. */
size_t chan_send(struct chan *ch, uint32_t ext, const void *p, size_t n);
/*
 * Read from @fd straight into a data packet in the output queue (no extra
 * copy).  Return: bytes read, 0 at EOF, -errno (-EAGAIN when nothing to do).
 */
ssize_t chan_send_from_fd(struct chan *ch, uint32_t ext, int fd);
/*
 * Like chan_send_from_fd, for a pipe: the payload goes from @fd to the
 * stream with splice(2), never through our memory, when the stream
 * takes it (else it falls back to a copy).  Only this side may read @fd.
 */
ssize_t chan_send_from_pipe(struct chan *ch, uint32_t ext, int fd);
/*
 * Queue a data packet of @a bytes from @pre followed by @f bytes that are
 * already waiting in pipe @fd (only we read it): they are spliced to the
 * stream when the queue gets there.  @a + @f at most chan_send_room().
 * 0, or -errno with nothing queued.
 */
int chan_send_pipe(struct chan *ch, uint32_t ext, const void *pre, size_t a, int fd, size_t f);
/*
 * Build a data packet in place: reserve room for @n payload bytes (n at most
 * chan_send_room()), fill them, then commit the count actually written.
 * Nothing may be queued in between.  NULL when the queue cannot grow.
 */
uint8_t *chan_data_reserve(struct chan *ch, uint32_t ext, size_t n);
void chan_data_commit(struct chan *ch, uint32_t ext, size_t n);
void chan_consumed(struct chan *ch, size_t n);
/*
 * Let ops->direct take big CHANNEL_DATA payloads straight from the stream
 * (where the stream is a socket or pipe and no packet log is written);
 * while on, input is read header-exactly.
 */
void chan_set_direct(struct chan *ch, bool on);
void chan_send_eof(struct chan *ch);
void chan_send_close(struct chan *ch);
/* Start a CHANNEL_REQUEST; append type-specific fields, then conn_pkt_end(). */
size_t chan_request_begin(struct chan *ch, const char *type, bool want_reply, uint32_t tag);

#endif
