/* SPDX-License-Identifier: MIT */
/* host-tool/term: ssh-style ~ escapes on keyboard input. */
#include <string.h>

#include "tap.h"
#include "term.h"

struct res {
	int rc;
	size_t n;
	unsigned char out[256];
};

static struct res filt(struct term_escape *e, const char *in, size_t n)
{
	struct res r;
	memset(&r, 0, sizeof(r));
	r.n = 9999;
	r.rc = term_escape_filter(e, (const unsigned char *)in, n, r.out, &r.n);
	return r;
}

#define FILT(e, lit) filt((e), (lit), sizeof(lit) - 1)

static void test_basic(void)
{
	struct term_escape e;
	struct res r;

	term_escape_init(&e, '~');
	r = FILT(&e, "~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "~. at start: DISCONNECT");
	is_int(r.n, 0, "~. at start: nothing to send");

	term_escape_init(&e, '~');
	r = FILT(&e, "ls\r~.junk");
	is_int(r.rc, TERM_ESC_DISCONNECT, "\\r~.: DISCONNECT");
	is_mem(r.out, r.n, "ls\r", 3, "\\r~.: bytes before the escape are sent");

	term_escape_init(&e, '~');
	r = FILT(&e, "ls\n~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "\\n~.: DISCONNECT");
	is_mem(r.out, r.n, "ls\n", 3, "\\n~.: bytes before the escape are sent");

	term_escape_init(&e, '~');
	r = FILT(&e, "a~.");
	is_int(r.rc, TERM_ESC_NONE, "a~. mid-line: no escape");
	is_mem(r.out, r.n, "a~.", 3, "a~. passes through");

	term_escape_init(&e, '~');
	r = FILT(&e, "~~");
	is_int(r.rc, TERM_ESC_NONE, "~~: no command");
	is_mem(r.out, r.n, "~", 1, "~~ sends a single ~");
	r = FILT(&e, ".");
	is_int(r.rc, TERM_ESC_NONE, "~~ then .: not an escape (not at line start)");
	is_mem(r.out, r.n, ".", 1, "~~ then . passes the dot");

	term_escape_init(&e, '~');
	r = FILT(&e, "~x");
	is_int(r.rc, TERM_ESC_NONE, "~x: no command");
	is_mem(r.out, r.n, "~x", 2, "~x passes both bytes");

	term_escape_init(&e, '~');
	r = FILT(&e, "~?");
	is_int(r.rc, TERM_ESC_HELP, "~?: HELP");
	is_int(r.n, 0, "~?: nothing sent");
	r = FILT(&e, "~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "after ~? the next ~ is at line start");

	term_escape_init(&e, '~');
	r = FILT(&e, "~\r~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "~\\r~.: escape after an escaped CR");
	is_mem(r.out, r.n, "~\r", 2, "~\\r passes through before the escape");

	term_escape_init(&e, '~');
	r = FILT(&e, "\r\r~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "\\r\\r~.: DISCONNECT");
	is_mem(r.out, r.n, "\r\r", 2, "blank lines before the escape sent");
}

static void test_split(void)
{
	struct term_escape e;
	struct res r;

	term_escape_init(&e, '~');
	r = FILT(&e, "echo hi\r~");
	is_int(r.rc, TERM_ESC_NONE, "~ at end of buffer: no command yet");
	is_mem(r.out, r.n, "echo hi\r", 8, "~ held back at end of buffer");
	r = FILT(&e, ".");
	is_int(r.rc, TERM_ESC_DISCONNECT, "~ | . across two calls: DISCONNECT");
	is_int(r.n, 0, "nothing sent for the split escape");

	term_escape_init(&e, '~');
	r = FILT(&e, "~");
	is_int(r.n, 0, "lone ~ held");
	r = FILT(&e, "x");
	is_mem(r.out, r.n, "~x", 2, "~ | x across calls: both bytes sent (2 out for 1 in)");

	term_escape_init(&e, '~');
	r = FILT(&e, "~");
	r = FILT(&e, "~");
	is_mem(r.out, r.n, "~", 1, "~ | ~ across calls: one ~");

	term_escape_init(&e, '~');
	r = FILT(&e, "abc\r");
	r = FILT(&e, "~.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "line start remembered across calls");

	term_escape_init(&e, '~');
	r = FILT(&e, "abc");
	r = FILT(&e, "~.");
	is_int(r.rc, TERM_ESC_NONE, "mid-line remembered across calls");
	is_mem(r.out, r.n, "~.", 2, "mid-line ~. passes");

	r = filt(&e, "", 0);
	ok(r.rc == TERM_ESC_NONE && r.n == 0, "empty input: nothing, outn set to 0");
}

static void test_other_chars(void)
{
	struct term_escape e;
	struct res r;

	term_escape_init(&e, -1);
	r = FILT(&e, "~.\r~.~~~?");
	is_int(r.rc, TERM_ESC_NONE, "escape -1: never a command");
	is_mem(r.out, r.n, "~.\r~.~~~?", 9, "escape -1: everything passes");

	/* Escape -1 with every byte value, including 0xff. */
	unsigned char all[256], out[512];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	size_t n = 0;
	term_escape_init(&e, -1);
	int rc = term_escape_filter(&e, all, 256, out, &n);
	ok(rc == TERM_ESC_NONE, "escape -1: all byte values, no command");
	is_mem(out, n, all, 256, "escape -1: all 256 byte values pass");

	term_escape_init(&e, '#');
	r = FILT(&e, "~.");
	is_mem(r.out, r.n, "~.", 2, "escape '#': ~. passes");
	r = FILT(&e, "\r#.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "escape '#': \\r#. disconnects");

	/* A high-bit escape character. */
	term_escape_init(&e, 0xff);
	r = FILT(&e, "\xff\xff");
	is_mem(r.out, r.n, "\xff", 1, "escape 0xff: doubled sends one");
	term_escape_init(&e, 0xff);
	r = FILT(&e, "\xff.");
	is_int(r.rc, TERM_ESC_DISCONNECT, "escape 0xff: 0xff . disconnects");
}

int main(void)
{
	test_basic();
	test_split();
	test_other_chars();
	return done_testing();
}
