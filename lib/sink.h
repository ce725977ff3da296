/* SPDX-License-Identifier: MIT */
/*
 * A local fd that channel data is written to (child stdin, our stdout):
 * write straight through when nothing is queued, queue the rest.  Every
 * function returns how many bytes were disposed of, which the caller hands
 * to chan_consumed() — the window reopens only as the fd takes data.
 */
#ifndef WICKET_SINK_H
#define WICKET_SINK_H

#include <stdbool.h>

#include "buf.h"

struct sink {
	int fd;
	struct buf pend;
	bool broken; /* the reader went away: data is dropped, still credited */
};

void sink_init(struct sink *s, int fd, size_t max);
void sink_free(struct sink *s);
size_t sink_put(struct sink *s, const uint8_t *p, size_t n);
size_t sink_flush(struct sink *s);
static inline bool sink_pending(const struct sink *s) { return buf_used(&s->pend) != 0; }

#endif
