/* SPDX-License-Identifier: MIT */
/* Local terminal: raw mode restored on every exit path, size, escapes. */
#ifndef WICKET_TERM_H
#define WICKET_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

/* Put @fd in raw mode; the original mode comes back at exit. */
int term_raw(int fd);
void term_restore(void);
/* Window size of @fd, or 80x24 when it is not a terminal. */
void term_size(int fd, unsigned *cols, unsigned *rows, unsigned *wpx, unsigned *hpx);

/* ssh-style escape processing on keyboard input (~. ~~ ~?). */
struct term_escape {
	int ch;		/* escape character, or -1 for none */
	bool at_bol;	/* last byte ended a line */
	bool pending;	/* saw the escape character at line start */
};

enum { TERM_ESC_NONE, TERM_ESC_DISCONNECT, TERM_ESC_HELP };

void term_escape_init(struct term_escape *e, int ch);
/*
 * Filter @n bytes of @in into @out (room for 2*@n bytes).  *@outn gets the
 * count to send; the return value says whether an escape command was seen
 * (input after it is dropped).
 */
int term_escape_filter(struct term_escape *e, const unsigned char *in, size_t n,
		       unsigned char *out, size_t *outn);

#endif
