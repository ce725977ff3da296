/* SPDX-License-Identifier: MIT */
#include "term.h"

#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct termios saved;
static int saved_fd = -1;

void term_restore(void)
{
	if (saved_fd >= 0) {
		tcsetattr(saved_fd, TCSADRAIN, &saved);
		saved_fd = -1;
	}
}

int term_raw(int fd)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return -1;
	if (saved_fd < 0) {
		saved = t;
		saved_fd = fd;
		atexit(term_restore);
	}
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	return tcsetattr(fd, TCSADRAIN, &t);
}

void term_size(int fd, unsigned *cols, unsigned *rows, unsigned *wpx, unsigned *hpx)
{
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
		*wpx = ws.ws_xpixel;
		*hpx = ws.ws_ypixel;
		return;
	}
	*cols = 80;
	*rows = 24;
	*wpx = *hpx = 0;
}

void term_escape_init(struct term_escape *e, int ch)
{
	*e = (struct term_escape){ .ch = ch, .at_bol = true };
}

int term_escape_filter(struct term_escape *e, const unsigned char *in, size_t n,
		       unsigned char *out, size_t *outn)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		if (e->ch < 0) {
			out[o++] = c;
			continue;
		}
		if (e->pending) {
			e->pending = false;
			if (c == '.') {
				*outn = o;
				return TERM_ESC_DISCONNECT;
			}
			if (c == '?') {
				*outn = o;
				e->at_bol = true;
				return TERM_ESC_HELP;
			}
			if (c != (unsigned char)e->ch)
				out[o++] = (unsigned char)e->ch;
			out[o++] = c;
			e->at_bol = c == '\r' || c == '\n';
			continue;
		}
		if (e->at_bol && c == (unsigned char)e->ch) {
			e->pending = true;
			continue;
		}
		out[o++] = c;
		e->at_bol = c == '\r' || c == '\n';
	}
	*outn = o;
	return TERM_ESC_NONE;
}
