/* SPDX-License-Identifier: MIT */
/*
 * Pipelined file transfers: many READ or WRITE requests in flight so the
 * throughput is not bound by round trips; DATA goes to the file with pwrite,
 * WRITE data comes from the file with pread straight into the channel.
 */
#include "sftp_priv.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

struct xfer {
	struct sftp *s;
	const struct sftp_handle *h;
	int fd;
	uint64_t next;	 /* next offset to ask for / send */
	uint64_t size;
	uint64_t start;
	uint64_t done;	 /* bytes completed */
	uint64_t end;	 /* highest offset written (download) */
	uint64_t eof_at; /* lowest offset the server called EOF */
	bool eof;
	bool reading;	 /* a download */
	unsigned inflight, max;
	uint32_t chunk;
	int rc;
};

static unsigned xfer_depth(const struct sftp *s)
{
	unsigned n = s->o.requests ? s->o.requests : SFTP_DEFAULT_REQUESTS;
	return n > SFTP_MAX_REQUESTS ? SFTP_MAX_REQUESTS : n;
}

static uint32_t chunk_limit(uint32_t chunk, uint64_t lim)
{
	return lim && lim < chunk ? (uint32_t)lim : chunk;
}

/*
 * Bytes per READ/WRITE unless --buffer-size said: the most that keeps a
 * WRITE (or the DATA reply to a READ) with its @overhead bytes inside one
 * channel packet, in whole pages (252K with wicketd).  A message split into a big and a small packet costs a
 * copy of the small one on both sides, and file offsets off page bounds
 * make every splice start and end in a partial page.  Peers with small
 * packets gain nothing from this: SFTP_MAX_DATA then.
 */
static uint32_t xfer_chunk(const struct sftp *s, bool reading, uint32_t overhead)
{
	if (s->o.chunk)
		return s->o.chunk < SFTP_MAX_DATA ? s->o.chunk : SFTP_MAX_DATA;
	size_t pkt = s->ch ? chan_packet_max(s->ch, reading) : 0;
	if (pkt < overhead + SFTP_MAX_DATA / 2)
		return SFTP_MAX_DATA;
	size_t fit = (pkt - overhead) & ~(size_t)4095;
	return fit < SFTP_MAX_DATA ? (uint32_t)fit : SFTP_MAX_DATA;
}

static void xfer_fail(struct xfer *x, int rc)
{
	if (!x->rc)
		x->rc = rc;
}

static void read_done(struct sftp *s, const struct sftp_req *q, const struct reply *r);

static void read_send(struct xfer *x, uint64_t off, uint32_t len)
{
	struct sftp *s = x->s;
	struct sftp_req *q = sftp_req_new(s, SSH_FXP_READ, read_done, x);
	if (!q) {
		sftp_fatal(s, "too many sftp requests pending");
		return;
	}
	q->off = off;
	q->len = len;
	q->wfd = x->fd;
	size_t st = sftp_req_begin(s, q);
	sftp_put_handle(&s->obuf, x->h);
	sftp_buf_u64(&s->obuf, off);
	buf_u32(&s->obuf, len);
	sftp_req_end(s, q, st, 0);
	x->inflight++;
}

/*
 * Keep the pipeline full up to the expected size; past it, one READ at a
 * time until the server says EOF (the file may have grown).
 */
static void read_issue(struct xfer *x)
{
	while (!x->rc && !x->eof && !x->s->intr && !x->s->failed && x->inflight < x->max) {
		if (x->next >= x->size && x->inflight)
			break;
		uint32_t len = x->chunk;
		if (x->next < x->size && x->size - x->next < len)
			len = (uint32_t)(x->size - x->next);
		read_send(x, x->next, len);
		x->next += len;
	}
}

static void read_done(struct sftp *s, const struct sftp_req *q, const struct reply *r)
{
	struct xfer *x = q->arg;
	x->inflight--;
	if (r->type == 0)
		return;
	if (r->type == SSH_FXP_STATUS) {
		if (r->status == SSH_FX_EOF) {
			x->eof = true;
			if (q->off < x->eof_at)
				x->eof_at = q->off;
		} else if (r->status == SSH_FX_OK) {
			sftp_fatal(s, "sftp server answered READ with status OK and no data");
		} else if (!x->rc) {
			sftp_status_err(s, r);
			xfer_fail(x, sftp_status_code(r));
		}
		read_issue(x);
		return;
	}
	size_t n = r->data.n;
	if (r->written) {
		if (r->werr && !x->rc) {
			sftp_set_err(s, "%s", strerror(r->werr));
			xfer_fail(x, SFTP_E_LOCAL);
		}
	} else if (!x->rc && n) {
		size_t w = 0;
		while (w < n) {
			ssize_t k = pwrite(x->fd, r->data.p + w, n - w, (off_t)(q->off + w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				sftp_set_err(s, "%s", strerror(k < 0 ? errno : EIO));
				xfer_fail(x, SFTP_E_LOCAL);
				break;
			}
			w += (size_t)k;
		}
	}
	if (n) {
		x->done += n;
		if (q->off + n > x->end)
			x->end = q->off + n;
	}
	if (n == 0) {
		/* Nothing at all: no progress possible there, as good as EOF. */
		x->eof = true;
		if (q->off < x->eof_at)
			x->eof_at = q->off;
	} else if (n < q->len && !x->rc && !s->intr && q->off + n < x->eof_at) {
		/* Short read: ask for the rest of this range again. */
		read_send(x, q->off + n, q->len - (uint32_t)n);
	}
	read_issue(x);
}

static int xfer_run(struct xfer *x, sftp_progress_fn fn, void *arg)
{
	struct sftp *s = x->s;
	while (x->inflight) {
		if (s->failed || sftp_past_deadline(s))
			return SFTP_E_FATAL;
		if (s->intr && x->reading) {
			/* Nothing to clean up remotely: stop without draining. */
			sftp_req_abandon(s, x);
			return SFTP_E_INTR;
		}
		sftp_pump(s, SFTP_TICK_MS);
		if (fn)
			fn(arg, x->done);
	}
	if (s->failed)
		return SFTP_E_FATAL;
	if (x->rc)
		return x->rc;
	return s->intr ? SFTP_E_INTR : SFTP_OK;
}

int sftp_download(struct sftp *s, const struct sftp_handle *h, int fd, uint64_t off,
		  uint64_t size, sftp_progress_fn fn, void *arg, uint64_t *end)
{
	struct xfer x = {
		.s = s, .h = h, .fd = fd, .next = off, .size = size, .start = off, .end = off,
		.eof_at = UINT64_MAX, .reading = true, .max = xfer_depth(s),
		/* DATA reply: length, type, id, data length. */
		.chunk = chunk_limit(xfer_chunk(s, true, 4 + 1 + 4 + 4), s->ext.max_read),
	};
	if (s->intr)
		return SFTP_E_INTR;
	sftp_splice_enable(s, true);
	read_issue(&x);
	int r = xfer_run(&x, fn, arg);
	sftp_splice_enable(s, false);
	*end = x.end;
	return r;
}

static void write_done(struct sftp *s, const struct sftp_req *q, const struct reply *r);

static void write_issue(struct xfer *x)
{
	struct sftp *s = x->s;
	while (!x->rc && !s->intr && !s->failed && x->inflight < x->max && x->next < x->size) {
		uint32_t len = x->chunk;
		if (x->size - x->next < len)
			len = (uint32_t)(x->size - x->next);
		struct sftp_req *q = sftp_req_new(s, SSH_FXP_WRITE, write_done, x);
		if (!q) {
			sftp_fatal(s, "too many sftp requests pending");
			return;
		}
		q->off = x->next;
		q->len = len;
		q->fd = x->fd;
		size_t st = sftp_req_begin(s, q);
		sftp_put_handle(&s->obuf, x->h);
		sftp_buf_u64(&s->obuf, x->next);
		buf_u32(&s->obuf, len);
		sftp_req_end(s, q, st, len);
		if (s->wq_tail)
			s->wq_tail->wnext = q;
		else
			s->wq_head = q;
		s->wq_tail = q;
		x->next += len;
		x->inflight++;
	}
}

static void write_done(struct sftp *s, const struct sftp_req *q, const struct reply *r)
{
	struct xfer *x = q->arg;
	x->inflight--;
	if (r->type == 0)
		return;
	if (q->rerr) {
		if (!x->rc)
			sftp_set_err(s, "%s", q->rerr < 0 ? "file shrank while being copied"
						     : strerror(q->rerr));
		xfer_fail(x, SFTP_E_LOCAL);
	} else if (r->status != SSH_FX_OK) {
		if (!x->rc)
			sftp_status_err(s, r);
		xfer_fail(x, sftp_status_code(r));
	} else {
		x->done += q->len;
	}
	write_issue(x);
}

int sftp_upload(struct sftp *s, const struct sftp_handle *h, int fd, uint64_t off, uint64_t size,
		sftp_progress_fn fn, void *arg)
{
	uint64_t hdr = 4 + SFTP_WRITE_HDR(h->len);
	uint32_t chunk = chunk_limit(xfer_chunk(s, false, (uint32_t)hdr), s->ext.max_write);
	if (s->ext.max_packet && s->ext.max_packet > hdr)
		chunk = chunk_limit(chunk, s->ext.max_packet - hdr);
	struct xfer x = { .s = s, .h = h, .fd = fd, .next = off, .size = size, .start = off,
			  .max = xfer_depth(s), .chunk = chunk };
	if (s->intr)
		return SFTP_E_INTR;
	write_issue(&x);
	return xfer_run(&x, fn, arg);
}

