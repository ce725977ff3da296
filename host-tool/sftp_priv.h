/* SPDX-License-Identifier: MIT */
/*
 * Inside the sftp client: shared by sftp_client.c (channel, request queue,
 * reply parsing), sftp_calls.c (blocking calls) and sftp_xfer.c (pipelined
 * transfers).  Not for other users: they have sftp_client.h.
 */
#ifndef WICKET_SFTP_PRIV_H
#define WICKET_SFTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "loop.h"
#include "sftp_client.h"

/* Request slots: a reply's id must name a slot holding that very id. */
#define SFTP_SLOTS 2048u
#define SFTP_MAX_REQUESTS 1024u
#define SFTP_DEFAULT_REQUESTS 64u
/* Queued request bytes (file data is not staged here, only headers). */
#define SFTP_OBUF_MAX (8u * 1024 * 1024)
/* Our channel window: enough for a deep READ pipeline. */
#define SFTP_WINDOW (16u * 1024 * 1024)
/* Directory entries are at least name + longname + attr flags. */
#define SFTP_NAME_MIN 12u
/* WRITE header around the data: type, id, handle string, offset, length. */
#define SFTP_WRITE_HDR(hlen) (1u + 4 + 4 + (hlen) + 8 + 4)
/* The staging pipe holds one packet's file data (at most CHAN_DATA_MAX). */
#define SFTP_STAGE_PIPE (1024u * 1024u)
/* Poll tick so progress and deadlines advance while nothing arrives. */
#define SFTP_TICK_MS 100

enum sftp_state { ST_OPENING, ST_INIT, ST_READY };

struct sftp_req;
struct reply;
/* Completion: @q is a copy (its slot is already free), @r the parsed reply;
 * r->type 0 means the request was cancelled before it was sent. */
typedef void (*req_done_fn)(struct sftp *s, const struct sftp_req *q, const struct reply *r);

struct sftp_req {
	uint32_t id;
	bool used;
	uint8_t op;	  /* our request type: decides which replies are valid */
	req_done_fn done;
	void *arg;
	uint64_t start;	  /* stream position of our first byte in obuf */
	uint64_t at;	  /* stream position right after our bytes in obuf */
	uint64_t off;	  /* READ/WRITE file offset */
	uint32_t len;	  /* READ: asked; WRITE: carried */
	int wfd;	  /* READ: local file DATA is streamed into, or -1 */
	/* WRITE with data from a local file, spliced into the stream at @at */
	int fd;
	uint32_t sent;	  /* file bytes already in the channel */
	int rerr;	  /* local read failure while sending: errno, or -1 = file shrank */
	struct sftp_req *wnext;
};

/* A parsed reply; views point into the packet. */
struct reply {
	uint8_t type;
	uint32_t status;
	struct sv msg;
	struct sv handle;
	struct sv data;
	struct sftp_attrs attrs;
	uint32_t count;
	struct sv names; /* @count validated entries */
	struct sv ext;
	bool written;	 /* DATA already streamed to the READ's fd (data.p NULL) */
	int werr;	 /* errno of that write, 0 if fine */
};

struct sftp {
	struct loop loop;
	struct conn c;
	struct chan *ch;
	struct sftp_opts o;
	struct sftp_exts ext;
	enum sftp_state state;
	struct buf ibuf; /* one incomplete sftp packet */
	struct buf obuf; /* request bytes not yet in the channel */
	uint64_t sent;	 /* obuf bytes handed to the channel so far */
	struct sftp_req *wq_head, *wq_tail; /* WRITEs whose file data is pending */
	/* WRITE data goes file -> stage -> stream by splice; -1 when not usable. */
	int stage[2];
	/* A big DATA reply being written to its file as it arrives. */
	struct sftp_req *st_req;
	uint64_t st_off;
	uint32_t st_left, st_n;
	int st_err;
	/* DATA payloads go stream -> sink -> file by splice; -1 when not usable. */
	int sink[2];
	uint64_t sunk; /* payload bytes that went that way (sftp_splice.c) */
	uint32_t next_id;
	unsigned npending;
	bool failed, closing, intr;
	int64_t deadline; /* monotonic ms, 0 = none */
	char err[512];
	struct sftp_req slots[SFTP_SLOTS];
};

void sftp_set_err(struct sftp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The session is over: remember why (first reason wins) and hang up. */
void sftp_fatal(struct sftp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The server's own words for a failed STATUS (sanitised), else the code's name. */
void sftp_status_err(struct sftp *s, const struct reply *r);
/* A STATUS code as a positive int for the SFTP_OK/status return convention. */
static inline int sftp_status_code(const struct reply *r)
{
	return (int)(r->status > 0x7fffffffu ? SSH_FX_FAILURE : r->status);
}

/* A new request in a free slot; NULL when the session is not usable. */
struct sftp_req *sftp_req_new(struct sftp *s, uint8_t op, req_done_fn done, void *arg);
/*
 * Forget the requests with callback argument @arg (a transfer that gives
 * up without waiting): their replies are checked as usual, then dropped,
 * and DATA no longer reaches any file.
 */
void sftp_req_abandon(struct sftp *s, void *arg);
/* Start its packet in obuf (length, type, id); append fields, then sftp_req_end(). */
size_t sftp_req_begin(struct sftp *s, struct sftp_req *q);
/* @extra: bytes of the packet that follow outside obuf (WRITE data). */
void sftp_req_end(struct sftp *s, struct sftp_req *q, size_t st, size_t extra);
void sftp_put_handle(struct buf *b, const struct sftp_handle *h);
void sftp_name_get(struct rd *r, struct sftp_name *n);

/* One round: send what we can, poll (at most @timeout ms), handle input. */
void sftp_pump(struct sftp *s, int timeout);
/* True (and the session failed) once a deadline set by sftp_set_deadline passed. */
bool sftp_past_deadline(struct sftp *s);
/* Run until *@flag is set; SFTP_E_FATAL when the session dies first. */
int sftp_wait_flag(struct sftp *s, const bool *flag);
int sftp_query_limits(struct sftp *s);

/* A big DATA reply being streamed to its file (st_req): @n bytes at @off ... */
void sftp_stream_write(struct sftp *s, const uint8_t *p, size_t n, uint64_t off);
/* ... and the count of them, completing the request at its end. */
void sftp_stream_advance(struct sftp *s, size_t n);
/* How many sftp stream bytes to take next without reading into a DATA payload. */
size_t sftp_feed_need(const struct sftp *s);

/* sftp_splice.c: DATA payloads spliced from the stream into the file. */
void sftp_splice_init(struct sftp *s);
void sftp_splice_free(struct sftp *s);
/* Download on/off: the channel's big payloads may bypass data(). */
void sftp_splice_enable(struct sftp *s, bool on);
size_t sftp_ch_direct(struct chan *ch, size_t n, int *pipe_w, size_t *exact);
void sftp_ch_data_piped(struct chan *ch, size_t n);

#endif
