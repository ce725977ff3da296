/* SPDX-License-Identifier: MIT */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "syscalls.h"

void loop_init(struct loop *l)
{
	*l = (struct loop){ 0 };
}

void loop_free(struct loop *l)
{
	free(l->w);
	free(l->pfd);
	*l = (struct loop){ 0 };
}

int loop_add(struct loop *l, struct watch *w)
{
	if (w->in_loop)
		return 0;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct watch **nw = realloc(l->w, nc * sizeof(*nw));
		if (!nw)
			return -ENOMEM;
		l->w = nw;
		l->cap = nc;
	}
	l->w[l->n++] = w;
	w->in_loop = true;
	return 0;
}

void loop_del(struct loop *l, struct watch *w)
{
	if (!w->in_loop)
		return;
	/* Leave a hole; loop_once compacts so deletion during dispatch is safe. */
	for (size_t i = 0; i < l->n; i++) {
		if (l->w[i] == w) {
			l->w[i] = NULL;
			break;
		}
	}
	w->in_loop = false;
}

static void loop_compact(struct loop *l)
{
	size_t j = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->w[i])
			l->w[j++] = l->w[i];
	l->n = j;
}

int loop_once(struct loop *l, int timeout_ms)
{
	loop_compact(l);
	size_t n = l->n;
	if (n > l->pcap) {
		struct pollfd *np = realloc(l->pfd, n * sizeof(*np));
		if (!np)
			return -ENOMEM;
		l->pfd = np;
		l->pcap = n;
	}
	struct pollfd *pfd = l->pfd;
	l->wake_ms = -1;
	l->round++;
	for (size_t i = 0; i < n; i++) {
		struct watch *w = l->w[i];
		pfd[i].fd = w->fd;
		pfd[i].events = w->ops->want ? w->ops->want(w) : POLLIN;
		pfd[i].revents = 0;
		if (!pfd[i].events || w->fd < 0)
			pfd[i].fd = -1;
	}
	if (l->wake_ms >= 0 && (timeout_ms < 0 || l->wake_ms < timeout_ms))
		timeout_ms = l->wake_ms;
	int r = poll(pfd, n, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	/* No compaction during dispatch: a removed watch leaves a NULL slot. */
	for (size_t i = 0; i < n && r > 0; i++) {
		if (!pfd[i].revents || pfd[i].fd < 0 || !l->w[i])
			continue;
		l->w[i]->ops->ready(l->w[i], pfd[i].revents);
	}
	return 0;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void loop_pause_for(struct loop_pause *p, int ms)
{
	p->until_ms = mono_ms() + ms;
}

bool loop_pause_active(struct loop *l, struct loop_pause *p)
{
	if (!p->until_ms)
		return false;
	long long left = p->until_ms - mono_ms();
	if (left <= 0) {
		p->until_ms = 0;
		return false;
	}
	if (l->wake_ms < 0 || left < l->wake_ms)
		l->wake_ms = (int)left;
	return true;
}

void loop_accept_failed(struct loop_pause *p, int err, const char *name)
{
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_warn("forward %s: accept: %s (pausing 1 s)", name, strerror(err));
		loop_pause_for(p, 1000);
	} else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
		log_warn("forward %s: accept: %s", name, strerror(err));
	}
}

/* Seccomp allowlist of this file (see syscalls.h); glibc's poll() is ppoll on some
 * architectures. */
SYSCALLS(loop) = { SC("poll"), SC("ppoll"), SC("clock_gettime"), SC_END };
