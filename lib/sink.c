/* SPDX-License-Identifier: MIT */
#include "sink.h"

#include <errno.h>
#include <unistd.h>
#include "syscalls.h"

void sink_init(struct sink *s, int fd, size_t max)
{
	s->fd = fd;
	s->broken = false;
	buf_init(&s->pend, max);
}

void sink_free(struct sink *s)
{
	buf_free(&s->pend);
}

/* One write; the count disposed of (all of it once the reader is gone). */
static size_t sink_write(struct sink *s, const uint8_t *p, size_t n)
{
	if (s->broken || s->fd < 0)
		return n;
	for (;;) {
		ssize_t w = write(s->fd, p, n);
		if (w >= 0)
			return (size_t)w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		s->broken = true;
		return n;
	}
}

size_t sink_flush(struct sink *s)
{
	size_t total = 0;
	while (sink_pending(s)) {
		size_t w = sink_write(s, buf_data(&s->pend), buf_used(&s->pend));
		if (!w)
			break;
		buf_consume(&s->pend, w);
		total += w;
	}
	return total;
}

size_t sink_put(struct sink *s, const uint8_t *p, size_t n)
{
	size_t done = sink_pending(s) ? 0 : sink_write(s, p, n);
	if (done < n)
		buf_put(&s->pend, p + done, n - done);
	return done;
}

/* Seccomp allowlist of this file. */
SYSCALLS(sink) = { SC("write"), SC_END };
