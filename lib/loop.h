/* SPDX-License-Identifier: MIT */
/*
 * A small poll(2) loop.  Each watch computes the events it wants right before
 * every poll through its want() hook, so flow control is expressed as state,
 * never as a forgotten enable/disable call.
 */
#ifndef WICKET_LOOP_H
#define WICKET_LOOP_H

#include <stdbool.h>
#include <stdint.h>
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
	int wake_ms; /* set by want() hooks through loop_pause_active(); -1: none */
	uint64_t round; /* counts loop_once() calls: "this round" for fairness */
};

/*
 * A watch that must stay quiet for a while, e.g. a listener whose accept()
 * failed with EMFILE: its socket stays readable, so polling it again at once
 * would spin.  want() returns 0 while loop_pause_active() is true; the loop
 * wakes up in time to poll it again.
 */
struct loop_pause {
	long long until_ms; /* CLOCK_MONOTONIC; 0: not paused */
};

void loop_init(struct loop *l);
void loop_free(struct loop *l);
int loop_add(struct loop *l, struct watch *w);
void loop_del(struct loop *l, struct watch *w);
/* One poll + dispatch.  timeout_ms as poll(2).  -errno on poll failure. */
int loop_once(struct loop *l, int timeout_ms);

void loop_pause_for(struct loop_pause *p, int ms);
/* For want() hooks: still paused?  (Shortens this round's poll to the end.) */
bool loop_pause_active(struct loop *l, struct loop_pause *p);
/*
 * A listener's accept() failed with @err: out of fds or memory pauses @p for
 * a second (the connection stays queued; polling again at once would spin),
 * real errors are logged as "forward NAME: accept: ...", transient ones ignored.
 */
void loop_accept_failed(struct loop_pause *p, int err, const char *name);

#endif
