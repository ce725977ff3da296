/* SPDX-License-Identifier: MIT */
/*
 * The sftp client's core: the "subsystem sftp" session channel, the request
 * queue (WRITE data read from files straight into the channel), and strict
 * parsing of every reply, since the server is untrusted.
 */
#include "sftp_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "target.h"

enum { TAG_SUBSYSTEM = 1 };

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sftp_set_err(struct sftp *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

/* The session is over: remember why (first reason wins) and hang up. */
void sftp_fatal(struct sftp *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	log_debug("sftp: %s", s->err);
	conn_disconnect(&s->c, s->err);
}

const char *sftp_error(const struct sftp *s)
{
	return s->err[0] ? s->err : "unknown error";
}

bool sftp_dead(const struct sftp *s)
{
	return s->failed;
}

bool sftp_can_lock(const struct sftp *s)
{
	return s->ext.lock;
}

struct loop *sftp_loop(struct sftp *s)
{
	return &s->loop;
}

static void cancel_unsent(struct sftp *s);

void sftp_interrupt(struct sftp *s)
{
	s->intr = true;
	cancel_unsent(s);
}

void sftp_set_deadline(struct sftp *s, int ms)
{
	s->deadline = now_ms() + ms;
}

static const char *status_text(uint32_t code)
{
	static const char *const t[] = {
		"Success", "End of file", "No such file or directory", "Permission denied",
		"Failure", "Bad message", "No connection", "Connection lost",
		"Operation unsupported",
	};
	return code < sizeof(t) / sizeof(t[0]) ? t[code] : "Unknown error";
}

/* The server's own words for a failure (sanitised), else the code's name. */
void sftp_status_err(struct sftp *s, const struct reply *r)
{
	if (r->msg.n) {
		sv_printable(r->msg, s->err, sizeof(s->err));
		return;
	}
	snprintf(s->err, sizeof(s->err), "%s", status_text(r->status));
}

/* ---- output: request bytes from obuf, WRITE data straight from files ---- */

/*
 * Read @n bytes of @w's file at the current send offset into @p.  A read
 * error or a file that shrank is zero-filled so the framing stays exact;
 * the request is marked and fails when its reply comes.
 */
static void write_fill(struct sftp_req *w, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n && !w->rerr) {
		ssize_t r = pread(w->fd, p + got, n - got, (off_t)(w->off + w->sent + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			w->rerr = errno;
		else if (r == 0)
			w->rerr = -1;
		else
			got += (size_t)r;
	}
	if (got < n)
		memset(p + got, 0, n - got);
}

/*
 * One CHANNEL_DATA message: @a queued request bytes, then @f bytes of
 * @w's file read straight into the connection's output queue.
 */
static bool send_data(struct sftp *s, size_t a, struct sftp_req *w, size_t f)
{
	uint8_t *p = chan_data_reserve(s->ch, 0, a + f);
	if (!p) {
		sftp_fatal(s, "output queue overflow");
		return false;
	}
	memcpy(p, buf_data(&s->obuf), a);
	if (f)
		write_fill(w, p + a, f);
	chan_data_commit(s->ch, 0, a + f);
	buf_consume(&s->obuf, a);
	s->sent += a;
	if (f) {
		w->sent += (uint32_t)f;
		if (w->sent == w->len) {
			s->wq_head = w->wnext;
			if (!s->wq_head)
				s->wq_tail = NULL;
		}
	}
	return true;
}

/*
 * The same without copying: @f bytes of @w's file are spliced into the
 * staging pipe and from there to the stream.  Returns the file bytes sent
 * (0: send them the ordinary way, e.g. a file splice cannot read, or at
 * its end, where write_fill marks the request).
 */
static size_t send_spliced(struct sftp *s, size_t a, struct sftp_req *w, size_t f)
{
	loff_t off = (loff_t)(w->off + w->sent);
	ssize_t n;
	do
		n = splice(w->fd, &off, s->stage[1], NULL, f, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
			close(s->stage[0]);
			close(s->stage[1]);
			s->stage[0] = s->stage[1] = -1;
		}
		return 0;
	}
	int r = chan_send_pipe(s->ch, 0, buf_data(&s->obuf), a, s->stage[0], (size_t)n);
	if (r < 0) {
		sftp_fatal(s, "cannot queue file data: %s", strerror(-r));
		return 0;
	}
	buf_consume(&s->obuf, a);
	s->sent += a;
	w->sent += (uint32_t)n;
	if (w->sent == w->len) {
		s->wq_head = w->wnext;
		if (!s->wq_head)
			s->wq_tail = NULL;
	}
	return (size_t)n;
}

/*
 * File bytes to put behind @a request bytes now.  The connection's queue
 * slides its unsent bytes to the front when it runs out of tail room, which
 * for bulk data would be one more copy of everything; so file data only
 * goes where it fits as is, else we wait for the queue to drain (it then
 * restarts at the front for free).  Small pieces are not worth a packet.
 */
static size_t fit_queue(const struct conn *c, size_t a, size_t f)
{
	if (!buf_used(&c->out))
		return f;
	size_t tail = c->out.cap - c->out.len;
	size_t fit = tail > a + 64 ? tail - a - 64 : 0;
	if (fit >= f)
		return f;
	return fit >= 64 * 1024 ? fit : 0;
}

/* Move queued requests into the channel as far as window and queue allow. */
static void flush_out(struct sftp *s)
{
	while (s->ch && !s->failed) {
		size_t room = chan_send_room(s->ch);
		if (!room)
			return;
		struct sftp_req *w = s->wq_head;
		size_t a = buf_used(&s->obuf);
		if (w && w->at - s->sent < a)
			a = (size_t)(w->at - s->sent);
		if (a > room)
			a = room;
		size_t f = 0;
		if (w && s->sent + a == w->at) {
			f = w->len - w->sent;
			if (f > room - a)
				f = room - a;
			if (f && s->stage[1] >= 0 && send_spliced(s, a, w, f))
				continue;
			if (s->failed)
				return;
			f = fit_queue(&s->c, a, f);
		}
		if (!a && !f)
			return;
		if (!send_data(s, a, w, f))
			return;
	}
}

/*
 * Drop queued requests the server has not seen a byte of, so an
 * interrupted transfer only waits for what is already on its way.  Their
 * callbacks get a reply of type 0 ("cancelled").
 */
static void cancel_unsent(struct sftp *s)
{
	uint64_t cut = UINT64_MAX;
	for (unsigned i = 0; i < SFTP_SLOTS; i++)
		if (s->slots[i].used && s->slots[i].start >= s->sent && s->slots[i].start < cut)
			cut = s->slots[i].start;
	if (cut == UINT64_MAX)
		return;
	s->obuf.len = s->obuf.off + (size_t)(cut - s->sent);
	struct sftp_req **pp = &s->wq_head;
	s->wq_tail = NULL;
	while (*pp) {
		if ((*pp)->start >= cut) {
			*pp = (*pp)->wnext;
		} else {
			s->wq_tail = *pp;
			pp = &(*pp)->wnext;
		}
	}
	struct reply none = { .type = 0 };
	for (unsigned i = 0; i < SFTP_SLOTS; i++) {
		struct sftp_req *q = &s->slots[i];
		if (!q->used || q->start < cut)
			continue;
		struct sftp_req copy = *q;
		q->used = false;
		s->npending--;
		copy.done(s, &copy, &none);
	}
}

/* ---- requests ---- */

struct sftp_req *sftp_req_new(struct sftp *s, uint8_t op, req_done_fn done, void *arg)
{
	if (s->npending >= SFTP_SLOTS / 2 || s->state != ST_READY || s->failed)
		return NULL;
	struct sftp_req *q;
	uint32_t id;
	do {
		id = s->next_id++;
		q = &s->slots[id & (SFTP_SLOTS - 1)];
	} while (q->used);
	*q = (struct sftp_req){ .id = id, .used = true, .op = op, .done = done, .arg = arg,
				.fd = -1, .wfd = -1 };
	s->npending++;
	return q;
}

static void drop_done(struct sftp *s, const struct sftp_req *q, const struct reply *r)
{
	(void)s;
	(void)q;
	(void)r;
}

void sftp_req_abandon(struct sftp *s, void *arg)
{
	for (unsigned i = 0; i < SFTP_SLOTS; i++) {
		struct sftp_req *q = &s->slots[i];
		if (!q->used || q->arg != arg)
			continue;
		q->done = drop_done;
		q->arg = NULL;
		q->wfd = -1;
	}
}

/* Start a request packet in obuf: length (patched by sftp_req_end), type, id. */
size_t sftp_req_begin(struct sftp *s, struct sftp_req *q)
{
	size_t st = buf_used(&s->obuf);
	q->start = s->sent + st;
	buf_u32(&s->obuf, 0);
	buf_u8(&s->obuf, q->op);
	buf_u32(&s->obuf, q->id);
	return st;
}

void sftp_req_end(struct sftp *s, struct sftp_req *q, size_t st, size_t extra)
{
	if (s->obuf.err) {
		sftp_fatal(s, "request queue overflow");
		return;
	}
	put_be32(buf_data(&s->obuf) + st, (uint32_t)(buf_used(&s->obuf) - st - 4 + extra));
	q->at = s->sent + buf_used(&s->obuf);
}

void sftp_put_handle(struct buf *b, const struct sftp_handle *h)
{
	buf_str(b, h->b, h->len);
}

/* ---- input ---- */

static bool reply_type_ok(uint8_t op, uint8_t type)
{
	if (type == SSH_FXP_STATUS)
		return true;
	switch (op) {
	case SSH_FXP_OPEN:
	case SSH_FXP_OPENDIR:
		return type == SSH_FXP_HANDLE;
	case SSH_FXP_READ:
		return type == SSH_FXP_DATA;
	case SSH_FXP_READDIR:
	case SSH_FXP_REALPATH:
	case SSH_FXP_READLINK:
		return type == SSH_FXP_NAME;
	case SSH_FXP_STAT:
	case SSH_FXP_LSTAT:
	case SSH_FXP_FSTAT:
		return type == SSH_FXP_ATTRS;
	case SSH_FXP_EXTENDED:
		return type == SSH_FXP_EXTENDED_REPLY;
	default:
		return false;
	}
}

static const char *fxp_name(uint8_t t)
{
	switch (t) {
	case SSH_FXP_VERSION: return "VERSION";
	case SSH_FXP_STATUS: return "STATUS";
	case SSH_FXP_HANDLE: return "HANDLE";
	case SSH_FXP_DATA: return "DATA";
	case SSH_FXP_NAME: return "NAME";
	case SSH_FXP_ATTRS: return "ATTRS";
	case SSH_FXP_EXTENDED_REPLY: return "EXTENDED_REPLY";
	default: return "unknown";
	}
}

void sftp_name_get(struct rd *r, struct sftp_name *n)
{
	n->name = rd_str(r);
	n->longname = rd_str(r);
	sftp_attrs_get(r, &n->attrs);
}

static void handle_version(struct sftp *s, struct rd *r)
{
	uint32_t ver = rd_u32(r);
	if (r->err) {
		sftp_fatal(s, "malformed sftp VERSION from the server");
		return;
	}
	if (ver != SFTP_VERSION) {
		sftp_fatal(s, "the sftp server speaks version %u, not %u", ver, SFTP_VERSION);
		return;
	}
	/* Extension pairs: name, data. */
	while (rd_left(r)) {
		struct sv name = rd_str(r);
		struct sv data = rd_str(r);
		if (r->err)
			break;
		if (sv_eq(name, "posix-rename@openssh.com") && sv_eq(data, "1"))
			s->ext.posix_rename = true;
		else if (sv_eq(name, "limits@openssh.com") && sv_eq(data, "1"))
			s->ext.limits = true;
		else if (sv_eq(name, "fsync@openssh.com") && sv_eq(data, "1"))
			s->ext.fsync = true;
		else if (sv_eq(name, "lock@wicket") && sv_eq(data, "1"))
			s->ext.lock = true;
	}
	if (!rd_end(r)) {
		sftp_fatal(s, "malformed sftp VERSION from the server");
		return;
	}
	s->state = ST_READY;
}

/* A reply's request, if it is one the server may answer now. */
static struct sftp_req *reply_req(struct sftp *s, uint32_t id)
{
	struct sftp_req *q = &s->slots[id & (SFTP_SLOTS - 1)];
	if (!q->used || q->id != id) {
		sftp_fatal(s, "sftp server answered request id %u, which is not pending", id);
		return NULL;
	}
	if (s->sent < q->at || (q->fd >= 0 && q->sent < q->len)) {
		sftp_fatal(s, "sftp server answered request id %u before it was sent", id);
		return NULL;
	}
	return q;
}

/* One sftp packet from the server: parse all of it, check it, dispatch. */
static void dispatch(struct sftp *s, const uint8_t *p, size_t n)
{
	struct rd r;
	rd_init(&r, p, n);
	uint8_t type = rd_u8(&r);
	if (s->state != ST_READY) {
		if (s->state == ST_INIT && type == SSH_FXP_VERSION)
			handle_version(s, &r);
		else
			sftp_fatal(s, "sftp server sent %s (type %u) before VERSION", fxp_name(type),
				   type);
		return;
	}
	uint32_t id = rd_u32(&r);
	if (r.err) {
		sftp_fatal(s, "truncated sftp packet from the server");
		return;
	}
	struct sftp_req *q = reply_req(s, id);
	if (!q)
		return;
	struct reply rep = { .type = type };
	switch (type) {
	case SSH_FXP_STATUS:
		rep.status = rd_u32(&r);
		/* Message and language tag are v3 additions; some servers omit them. */
		if (rd_left(&r))
			rep.msg = rd_str(&r);
		if (rd_left(&r))
			rd_str(&r);
		break;
	case SSH_FXP_HANDLE:
		rep.handle = rd_str(&r);
		if (!r.err && (rep.handle.n == 0 || rep.handle.n > SFTP_HANDLE_MAX)) {
			sftp_fatal(s, "sftp server sent a handle of %zu bytes", rep.handle.n);
			return;
		}
		break;
	case SSH_FXP_DATA:
		rep.data = rd_str(&r);
		break;
	case SSH_FXP_NAME: {
		rep.count = rd_u32(&r);
		if (!r.err && rep.count > rd_left(&r) / SFTP_NAME_MIN) {
			sftp_fatal(s, "sftp NAME reply claims %u entries in %zu bytes", rep.count,
				   rd_left(&r));
			return;
		}
		size_t start = r.off;
		for (uint32_t i = 0; i < rep.count && !r.err; i++) {
			struct sftp_name nm;
			sftp_name_get(&r, &nm);
		}
		if (!r.err)
			rep.names = (struct sv){ p + start, r.off - start };
		break;
	}
	case SSH_FXP_ATTRS:
		sftp_attrs_get(&r, &rep.attrs);
		break;
	case SSH_FXP_EXTENDED_REPLY:
		rep.ext = rd_rest(&r);
		break;
	default:
		sftp_fatal(s, "sftp server sent unexpected message type %u", type);
		return;
	}
	if (!rd_end(&r)) {
		sftp_fatal(s, "malformed sftp %s reply from the server", fxp_name(type));
		return;
	}
	if (!reply_type_ok(q->op, type)) {
		sftp_fatal(s, "sftp server answered request type %u with %s", q->op,
			   fxp_name(type));
		return;
	}
	if (type == SSH_FXP_DATA && rep.data.n > q->len) {
		sftp_fatal(s, "sftp server sent %zu bytes of DATA for a READ of %u bytes",
			   rep.data.n, q->len);
		return;
	}
	/* Free the slot first: the callback may issue the next request. */
	struct sftp_req copy = *q;
	q->used = false;
	s->npending--;
	copy.done(s, &copy, &rep);
}

/*
 * The first 13 bytes of a packet that did not arrive whole: if it is DATA
 * for one of our READs, check it now and write its payload to the file as
 * it comes instead of collecting it (no copy for the bulk of a download).
 * Returns true when streaming started.
 */
static bool stream_begin(struct sftp *s, const uint8_t *h)
{
	uint32_t len = get_be32(h);
	if (h[4] != SSH_FXP_DATA || s->state != ST_READY)
		return false;
	uint32_t dlen = get_be32(h + 9);
	struct sftp_req *q = reply_req(s, get_be32(h + 5));
	if (!q)
		return false;
	if (q->op != SSH_FXP_READ || q->wfd < 0) {
		if (q->op != SSH_FXP_READ)
			sftp_fatal(s, "sftp server answered request type %u with DATA", q->op);
		return false;
	}
	if (len != 9 + (uint64_t)dlen) {
		sftp_fatal(s, "malformed sftp DATA reply from the server");
		return false;
	}
	if (dlen > q->len) {
		sftp_fatal(s, "sftp server sent %u bytes of DATA for a READ of %u bytes", dlen,
			   q->len);
		return false;
	}
	s->st_req = q;
	s->st_off = q->off;
	s->st_left = s->st_n = dlen;
	s->st_err = 0;
	return true;
}

void sftp_stream_write(struct sftp *s, const uint8_t *p, size_t n, uint64_t off)
{
	size_t w = 0;
	int fd = s->st_req->wfd; /* -1 once abandoned: the bytes are dropped */
	while (fd >= 0 && w < n && !s->st_err) {
		ssize_t k = pwrite(fd, p + w, n - w, (off_t)off + (off_t)w);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			s->st_err = k < 0 ? errno : EIO;
		else
			w += (size_t)k;
	}
}

void sftp_stream_advance(struct sftp *s, size_t n)
{
	s->st_off += n;
	s->st_left -= (uint32_t)n;
	if (s->st_left)
		return;
	struct sftp_req copy = *s->st_req;
	s->st_req->used = false;
	s->st_req = NULL;
	s->npending--;
	struct reply rep = { .type = SSH_FXP_DATA, .data = { NULL, s->st_n }, .written = true,
			     .werr = s->st_err };
	copy.done(s, &copy, &rep);
}

static void stream_data(struct sftp *s, const uint8_t *p, size_t n)
{
	sftp_stream_write(s, p, n, s->st_off);
	sftp_stream_advance(s, n);
}

size_t sftp_feed_need(const struct sftp *s)
{
	if (s->st_req)
		return s->st_left;
	size_t have = buf_used(&s->ibuf);
	/* A DATA payload starts after 13 bytes: up to there, whatever comes. */
	if (have < 13)
		return 13 - have;
	return 4 + (size_t)get_be32(buf_data(&s->ibuf)) - have;
}

/* Bytes of the sftp stream: packets complete in @p are handled in place. */
static void feed(struct sftp *s, const uint8_t *p, size_t n)
{
	while (n && !s->failed) {
		if (s->st_req) {
			size_t k = n < s->st_left ? n : s->st_left;
			stream_data(s, p, k);
			p += k;
			n -= k;
			continue;
		}
		size_t have = buf_used(&s->ibuf);
		if (!have && n >= 4) {
			uint32_t len = get_be32(p);
			if (len == 0 || len > SFTP_MAX_PACKET) {
				sftp_fatal(s, "sftp packet of %u bytes from the server (limit %u)",
					   len, SFTP_MAX_PACKET);
				return;
			}
			if (n - 4 >= len) {
				dispatch(s, p + 4, len);
				p += 4 + len;
				n -= 4 + len;
				continue;
			}
		}
		/* Incomplete: collect this packet's bytes (or a DATA header) in ibuf. */
		size_t need;
		if (have < 4) {
			need = 4 - have;
		} else {
			uint32_t len = get_be32(buf_data(&s->ibuf));
			need = have < 13 && len > 9 ? 13 - have : 4 + len - have;
		}
		size_t k = n < need ? n : need;
		buf_put(&s->ibuf, p, k);
		p += k;
		n -= k;
		have += k;
		if (have < 4)
			continue;
		uint32_t len = get_be32(buf_data(&s->ibuf));
		if (len == 0 || len > SFTP_MAX_PACKET) {
			sftp_fatal(s, "sftp packet of %u bytes from the server (limit %u)", len,
				   SFTP_MAX_PACKET);
			return;
		}
		if (s->ibuf.err) {
			sftp_fatal(s, "out of memory for an sftp packet");
			return;
		}
		if (have == 13 && len > 9 && stream_begin(s, buf_data(&s->ibuf))) {
			buf_reset(&s->ibuf);
			continue;
		}
		if (have == 4 + (size_t)len) {
			dispatch(s, buf_data(&s->ibuf) + 4, len);
			buf_reset(&s->ibuf);
		}
	}
}

/* ---- channel ---- */

static void ch_opened(struct chan *ch)
{
	struct sftp *s = ch->data;
	size_t st = chan_request_begin(ch, "subsystem", true, TAG_SUBSYSTEM);
	buf_cstr(&s->c.out, "sftp");
	conn_pkt_end(&s->c, st);
}

static void ch_open_failed(struct chan *ch, uint32_t reason, struct sv msg)
{
	struct sftp *s = ch->data;
	char m[200];
	sv_printable(msg, m, sizeof(m));
	s->ch = NULL;
	sftp_fatal(s, "%s refused a session (reason %u): %s", s->o.target, reason, m);
}

static void ch_reply(struct chan *ch, uint32_t tag, bool ok)
{
	struct sftp *s = ch->data;
	if (tag != TAG_SUBSYSTEM)
		return;
	if (!ok) {
		sftp_fatal(s, "%s refused the sftp subsystem", s->o.target);
		return;
	}
	/* INIT has no request id: uint32 length, type, version. */
	buf_u32(&s->obuf, 5);
	buf_u8(&s->obuf, SSH_FXP_INIT);
	buf_u32(&s->obuf, SFTP_VERSION);
	s->state = ST_INIT;
}

static void ch_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct sftp *s = ch->data;
	if (ext) {
		/* The server's stderr: untrusted bytes, not for our terminal. */
		char m[200];
		sv_printable((struct sv){ p, n }, m, sizeof(m));
		log_info("sftp server stderr: %s", m);
	} else {
		feed(s, p, n);
	}
	if (s->ch)
		chan_consumed(ch, n);
}

static void ch_eof(struct chan *ch)
{
	struct sftp *s = ch->data;
	if (!s->closing)
		sftp_fatal(s, "the sftp server on %s ended the session", s->o.target);
}

static void ch_closed(struct chan *ch)
{
	struct sftp *s = ch->data;
	s->ch = NULL;
	if (!s->closing)
		sftp_fatal(s, "the sftp server on %s closed the channel", s->o.target);
}

static const struct chan_ops sftp_chan_ops = {
	.name = "session",
	.opened = ch_opened,
	.open_failed = ch_open_failed,
	.data = ch_data,
	.eof = ch_eof,
	.closed = ch_closed,
	.reply = ch_reply,
	.direct = sftp_ch_direct,
	.data_piped = sftp_ch_data_piped,
};

static void conn_ended(struct conn *c)
{
	struct sftp *s = c->data;
	if (!s->closing && !s->failed) {
		s->failed = true;
		target_explain_loss(s->o.target, c->reason, sizeof(c->reason));
		sftp_set_err(s, "connection to %s lost: %s", s->o.target,
			c->reason[0] ? c->reason : "closed by the agent");
	}
}

static const struct conn_ops sftp_conn_ops = { .ended = conn_ended };

/* ---- running ---- */

/* One round: send what we can, poll, handle input, send again. */
void sftp_pump(struct sftp *s, int timeout)
{
	flush_out(s);
	if (s->c.ended) {
		if (!s->failed)
			conn_ended(&s->c);
		return;
	}
	int r = loop_once(&s->loop, timeout);
	if (r < 0 && !s->failed) {
		sftp_fatal(s, "poll: %s", strerror(-r));
		return;
	}
	conn_service(&s->c);
	flush_out(s);
	conn_service(&s->c);
}

bool sftp_past_deadline(struct sftp *s)
{
	if (!s->deadline || now_ms() < s->deadline)
		return false;
	if (!s->failed) {
		sftp_fatal(s, "%s", s->intr ? "interrupted" : "timed out waiting for the sftp server");
	}
	return true;
}

/* Run until *@flag is set; SFTP_E_FATAL when the session dies first. */
int sftp_wait_flag(struct sftp *s, const bool *flag)
{
	while (!*flag) {
		if (s->failed || sftp_past_deadline(s))
			return SFTP_E_FATAL;
		sftp_pump(s, SFTP_TICK_MS);
	}
	return s->failed ? SFTP_E_FATAL : SFTP_OK;
}

/* ---- set-up and tear-down ---- */

struct sftp *sftp_connect(struct tp *tp, const struct sftp_opts *o, char *err, size_t errlen)
{
	struct sftp *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->o = *o;
	loop_init(&s->loop);
	buf_init(&s->ibuf, SFTP_MAX_PACKET + 4);
	buf_init(&s->obuf, SFTP_OBUF_MAX);
	s->stage[0] = s->stage[1] = -1;
	/* Compressed payloads pass through zlib: no staging pipe to splice from. */
	if (!wicket_compress && pipe2(s->stage, O_CLOEXEC | O_NONBLOCK) == 0 &&
	    fcntl(s->stage[1], F_SETPIPE_SZ, SFTP_STAGE_PIPE) < (int)SFTP_MAX_PACKET) {
		close(s->stage[0]);
		close(s->stage[1]);
		s->stage[0] = s->stage[1] = -1;
	}
	sftp_splice_init(s);
	fcntl(tp->rfd, F_SETFL, fcntl(tp->rfd, F_GETFL) | O_NONBLOCK);
	if (tp->wfd != tp->rfd)
		fcntl(tp->wfd, F_SETFL, fcntl(tp->wfd, F_GETFL) | O_NONBLOCK);
	struct conn_cfg cfg = { .software = "wicket_" WICKET_VERSION, .window = SFTP_WINDOW,
				.compress = wicket_compress,
				.pktlog = o->pktlog, .out_high = 2u * 1024 * 1024,
				.nonce = client_nonce() };
	if (conn_init(&s->c, &s->loop, tp->rfd, tp->wfd, &cfg, &sftp_conn_ops, s) < 0) {
		snprintf(err, errlen, "out of memory");
		sftp_free(s);
		return NULL;
	}
	s->ch = chan_open(&s->c, "session", &sftp_chan_ops, s);
	if (!s->ch) {
		snprintf(err, errlen, "cannot open a channel to %s", o->target);
		sftp_free(s);
		return NULL;
	}
	while (s->state != ST_READY && !s->failed)
		sftp_pump(s, -1);
	if (!s->failed && s->ext.limits)
		sftp_query_limits(s);
	if (s->failed) {
		snprintf(err, errlen, "%s", s->err);
		sftp_free(s);
		return NULL;
	}
	log_debug("sftp: ready (posix-rename %d, limits %d: packet %llu read %llu write %llu)",
		  s->ext.posix_rename, s->ext.limits, (unsigned long long)s->ext.max_packet,
		  (unsigned long long)s->ext.max_read, (unsigned long long)s->ext.max_write);
	return s;
}

void sftp_free(struct sftp *s)
{
	if (!s)
		return;
	s->closing = true;
	if (!s->c.ended && s->c.loop) {
		if (s->ch) {
			chan_send_eof(s->ch);
			chan_send_close(s->ch);
		}
		conn_disconnect(&s->c, "copy finished");
		conn_service(&s->c);
		conn_abort(&s->c);
	}
	conn_free(&s->c);
	if (s->stage[0] >= 0) {
		close(s->stage[0]);
		close(s->stage[1]);
	}
	sftp_splice_free(s);
	loop_free(&s->loop);
	buf_free(&s->ibuf);
	buf_free(&s->obuf);
	free(s);
}
