/* SPDX-License-Identifier: MIT */
/*
 * Downloads without copying through our memory: the payload of a big DATA
 * reply goes from the stream into the sink pipe (page references, when the
 * stream is a Unix socket or pipe) and from there into the file at its
 * offset, the only copy.  lib/conn reads the stream header-exactly while
 * this is on and asks sftp_ch_direct() how to take each payload; anything
 * unusual (abandoned request, a file splice refuses) goes through data().
 */
#include "cli.h"
#include "sftp_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* The sink holds one channel packet's payload at most (CHAN_DATA_MAX). */
#define SFTP_SINK_PIPE (1024u * 1024u)
/* Smaller remainders of a DATA payload are not worth a splice. */
#define SFTP_SINK_MIN 4096u

static void sink_close(struct sftp *s)
{
	if (s->sink[0] >= 0) {
		close(s->sink[0]);
		close(s->sink[1]);
	}
	s->sink[0] = s->sink[1] = -1;
}

void sftp_splice_init(struct sftp *s)
{
	s->sink[0] = s->sink[1] = -1;
	/* A packet log shows payloads: conn never splices then, so no pipe. */
	if (s->o.pktlog || wicket_compress || pipe2(s->sink, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	if (fcntl(s->sink[1], F_SETPIPE_SZ, SFTP_SINK_PIPE) < (int)SFTP_SINK_MIN)
		sink_close(s);
}

void sftp_splice_free(struct sftp *s)
{
	sink_close(s);
}

void sftp_splice_enable(struct sftp *s, bool on)
{
	if (s->ch && (s->sink[0] >= 0 || !on))
		chan_set_direct(s->ch, on);
}

size_t sftp_ch_direct(struct chan *ch, size_t n, int *pipe_w, size_t *exact)
{
	struct sftp *s = ch->data;
	size_t need = sftp_feed_need(s);
	*exact = need;
	if (s->failed || !s->st_req || s->st_req->wfd < 0 || s->st_err || s->sink[0] < 0 ||
	    need < SFTP_SINK_MIN)
		return 0;
	*pipe_w = s->sink[1];
	return need < n ? need : n;
}

/* Empty the sink of @n bytes into the streamed request's file; errno or 0. */
static int sink_to_file(struct sftp *s, size_t n)
{
	loff_t off = (loff_t)s->st_off;
	size_t done = 0;
	while (done < n) {
		ssize_t k = splice(s->sink[0], NULL, s->st_req->wfd, &off, n - done, SPLICE_F_MOVE);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		done += (size_t)k;
		sftp_stream_advance(s, (size_t)k);
	}
	return 0;
}

/*
 * What the file would not take by splice: read it out of the sink and
 * write it the ordinary way (or drop it once the request failed), so the
 * sink is empty again and every byte is accounted for.
 */
static void sink_copy(struct sftp *s, size_t n)
{
	uint8_t tmp[64 * 1024];
	while (n) {
		ssize_t k = read(s->sink[0], tmp, n < sizeof(tmp) ? n : sizeof(tmp));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			/* conn put them there: cannot happen; the stream is lost. */
			sftp_fatal(s, "sink pipe: %s", k < 0 ? strerror(errno) : "short");
			return;
		}
		sftp_stream_write(s, tmp, (size_t)k, s->st_off);
		sftp_stream_advance(s, (size_t)k);
		n -= (size_t)k;
	}
}

void sftp_ch_data_piped(struct chan *ch, size_t n)
{
	struct sftp *s = ch->data;
	uint32_t before = s->st_left; /* n <= st_left: direct() asked for no more */
	int err = sink_to_file(s, n);
	size_t moved = before - s->st_left;
	bool refused = err == EINVAL || err == ENOSYS || err == ESPIPE;
	s->sunk += moved;
	if (err && !refused)
		s->st_err = err; /* the request fails; the rest is dropped */
	sink_copy(s, n - moved);
	if (refused)
		sink_close(s); /* this file takes no splice: copies from now on */
	if (s->ch)
		chan_consumed(ch, n);
}
