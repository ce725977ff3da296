/* SPDX-License-Identifier: MIT */
/*
 * A small poll(2) loop.  Each watch computes the events it wants right before
 * every poll through its want() hook, so flow control is expressed as state,
 * never as a forgotten enable/disable call.
 */
#ifndef WICKET_LOOP_H
#define WICKET_LOOP_H

#include <stdbool.h>
#include <stddef.h>

struct pollfd;

struct watch;

struct watch_ops {
	/* Events to poll for now (0 = not polled this round). */
	short (*want)(struct watch *w);
	void (*ready)(struct watch *w, short revents);
};

struct watch {
	int fd;
	const struct watch_ops *ops;
	void *data;
	bool in_loop;
};

struct loop {
	struct watch **w;
	size_t n, cap;
	struct pollfd *pfd;
	size_t pcap;
	bool stop;
};

void loop_init(struct loop *l);
void loop_free(struct loop *l);
int loop_add(struct loop *l, struct watch *w);
void loop_del(struct loop *l, struct watch *w);
/* One poll + dispatch.  timeout_ms as poll(2).  -errno on poll failure. */
int loop_once(struct loop *l, int timeout_ms);

#endif
