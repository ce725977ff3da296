/* SPDX-License-Identifier: MIT */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Redraw interval: at most ~10 updates per second. */
#define PROGRESS_MS 100

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void progress_init(struct progress *p, bool on)
{
	memset(p, 0, sizeof(*p));
	p->on = on;
	p->last = mono_ms() - PROGRESS_MS;
}

void progress_start(struct progress *p, const char *name, uint64_t total, uint64_t base)
{
	if (!p->on)
		return;
	/* Names are shown sanitised: they may come from the remote side. */
	size_t i = 0;
	for (; name[i] && i < sizeof(p->name) - 1; i++) {
		unsigned char ch = (unsigned char)name[i];
		p->name[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	p->name[i] = 0;
	p->total = total;
	p->base = base;
	p->done = 0;
	p->shown = false;
	p->t0 = p->rate_t = mono_ms();
	p->rate_done = 0;
	p->rate = 0;
}

static void human(char *out, size_t len, double v, const char *suffix)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	unsigned u = 0;
	while (v >= 1024 && u < sizeof(unit) / sizeof(unit[0]) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%.0f%s%s", v, unit[u], suffix);
	else
		snprintf(out, len, "%.1f%s%s", v, unit[u], suffix);
}

static void hms(char *out, size_t len, double secs)
{
	if (secs < 0 || secs > 99 * 3600.0) {
		snprintf(out, len, "--:--");
		return;
	}
	unsigned s = (unsigned)(secs + 0.5);
	if (s >= 3600)
		snprintf(out, len, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, len, "%02u:%02u", s / 60, s % 60);
}

static unsigned term_cols(void)
{
	struct winsize ws;
	if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

static void draw(struct progress *p, int64_t now, bool final)
{
	uint64_t have = p->base + p->done;
	double el = (double)(now - p->t0) / 1000.0;
	/* Rate: smoothed over samples at least half a second apart. */
	if (now - p->rate_t >= 500 || (final && el > 0)) {
		double inst = (double)(p->done - p->rate_done) * 1000.0 / (double)(now - p->rate_t + 1);
		p->rate = p->rate > 0 ? 0.6 * p->rate + 0.4 * inst : inst;
		p->rate_t = now;
		p->rate_done = p->done;
	}
	double rate = p->rate;
	if ((final || rate <= 0) && el > 0)
		rate = (double)p->done / el; /* no sample yet, or the whole run */
	char size[32], rs[32], eta[32];
	human(size, sizeof(size), (double)have, "");
	human(rs, sizeof(rs), rate, "/s");
	if (final)
		hms(eta, sizeof(eta), el);
	else if (rate > 0 && p->total > have)
		hms(eta, sizeof(eta), (double)(p->total - have) / rate);
	else
		snprintf(eta, sizeof(eta), "--:--");
	unsigned pct = p->total ? (unsigned)(have >= p->total ? 100 : have * 100 / p->total) : 100;
	char right[128];
	int rn = snprintf(right, sizeof(right), " %3u%% %10s %12s %8s%s", pct, size, rs, eta,
			  final ? "    " : " ETA");
	unsigned cols = term_cols() - 1;
	int namew = (int)cols - rn;
	if (namew < 8)
		namew = 8;
	int nl = (int)strlen(p->name);
	const char *nm = p->name;
	char cut[260];
	if (nl > namew) {
		/* Keep the end of the name: it is the distinctive part. */
		snprintf(cut, sizeof(cut), "...%s", p->name + nl - (namew - 3));
		nm = cut;
	}
	fprintf(stderr, "\r%-*s%s%s", namew, nm, right, final ? "\n" : "");
	fflush(stderr);
	p->dirty = !final;
	p->last = now;
	p->shown = true;
}

void progress_update(struct progress *p, uint64_t done)
{
	if (!p->on)
		return;
	p->done = done;
	int64_t now = mono_ms();
	/* Not in the first tick of a file: no rate to show yet. */
	if (now - p->last >= PROGRESS_MS && now - p->t0 >= PROGRESS_MS)
		draw(p, now, false);
}

void progress_done(struct progress *p)
{
	if (!p->on)
		return;
	int64_t now = mono_ms();
	if (p->shown || now - p->last >= PROGRESS_MS)
		draw(p, now, true);
}

void progress_clear(struct progress *p)
{
	if (!p->on || !p->dirty)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->dirty = false;
}
