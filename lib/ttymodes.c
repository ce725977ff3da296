/* SPDX-License-Identifier: MIT */
#include "ttymodes.h"

#include <errno.h>
#include <stddef.h>

#define TTY_OP_END 0
#define TTY_OP_ISPEED 128
#define TTY_OP_OSPEED 129

enum mode_kind { CC, IFLAG, LFLAG, OFLAG, CFLAG };

struct mode {
	unsigned char op;
	unsigned char kind;
	tcflag_t bit; /* flag bit, or index into c_cc for CC */
};

/* Opcode table from RFC 4254 section 8; only modes Linux has. */
static const struct mode modes[] = {
	{ 1, CC, VINTR },     { 2, CC, VQUIT },	     { 3, CC, VERASE },	   { 4, CC, VKILL },
	{ 5, CC, VEOF },      { 6, CC, VEOL },	     { 7, CC, VEOL2 },	   { 8, CC, VSTART },
	{ 9, CC, VSTOP },     { 10, CC, VSUSP },     { 12, CC, VREPRINT }, { 13, CC, VWERASE },
	{ 14, CC, VLNEXT },   { 18, CC, VDISCARD },  { 30, IFLAG, IGNPAR }, { 31, IFLAG, PARMRK },
	{ 32, IFLAG, INPCK }, { 33, IFLAG, ISTRIP }, { 34, IFLAG, INLCR }, { 35, IFLAG, IGNCR },
	{ 36, IFLAG, ICRNL }, { 37, IFLAG, IUCLC },  { 38, IFLAG, IXON },  { 39, IFLAG, IXANY },
	{ 40, IFLAG, IXOFF }, { 41, IFLAG, IMAXBEL }, { 42, IFLAG, IUTF8 }, { 50, LFLAG, ISIG },
	{ 51, LFLAG, ICANON }, { 52, LFLAG, XCASE }, { 53, LFLAG, ECHO },   { 54, LFLAG, ECHOE },
	{ 55, LFLAG, ECHOK }, { 56, LFLAG, ECHONL }, { 57, LFLAG, NOFLSH }, { 58, LFLAG, TOSTOP },
	{ 59, LFLAG, IEXTEN }, { 60, LFLAG, ECHOCTL }, { 61, LFLAG, ECHOKE }, { 62, LFLAG, PENDIN },
	{ 70, OFLAG, OPOST }, { 71, OFLAG, OLCUC },  { 72, OFLAG, ONLCR },  { 73, OFLAG, OCRNL },
	{ 74, OFLAG, ONOCR }, { 75, OFLAG, ONLRET }, { 90, CFLAG, CS7 },    { 91, CFLAG, CS8 },
	{ 92, CFLAG, PARENB }, { 93, CFLAG, PARODD },
};

static tcflag_t *mode_field(struct termios *t, unsigned kind)
{
	switch (kind) {
	case IFLAG:
		return &t->c_iflag;
	case LFLAG:
		return &t->c_lflag;
	case OFLAG:
		return &t->c_oflag;
	case CFLAG:
		return &t->c_cflag;
	default:
		return NULL;
	}
}

static const struct {
	speed_t code;
	unsigned baud;
} speeds[] = {
	{ B9600, 9600 },     { B19200, 19200 },	  { B38400, 38400 },   { B57600, 57600 },
	{ B115200, 115200 }, { B230400, 230400 }, { B460800, 460800 }, { B921600, 921600 },
};

static unsigned speed_to_baud(speed_t s)
{
	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++)
		if (speeds[i].code == s)
			return speeds[i].baud;
	return 38400;
}

static speed_t baud_to_speed(unsigned b)
{
	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++)
		if (speeds[i].baud == b)
			return speeds[i].code;
	return B38400;
}

void ttymodes_encode(const struct termios *t, struct buf *out)
{
	struct termios tc = *t;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const struct mode *m = &modes[i];
		uint32_t v;
		if (m->kind == CC) {
			v = tc.c_cc[m->bit];
		} else if (m->kind == CFLAG && (m->bit == CS7 || m->bit == CS8)) {
			v = (tc.c_cflag & CSIZE) == m->bit;
		} else {
			v = (*mode_field(&tc, m->kind) & m->bit) != 0;
		}
		buf_u8(out, m->op);
		buf_u32(out, v);
	}
	buf_u8(out, TTY_OP_ISPEED);
	buf_u32(out, speed_to_baud(cfgetispeed(&tc)));
	buf_u8(out, TTY_OP_OSPEED);
	buf_u32(out, speed_to_baud(cfgetospeed(&tc)));
	buf_u8(out, TTY_OP_END);
}

int ttymodes_apply(struct sv enc, struct termios *t)
{
	struct rd r;
	rd_init(&r, enc.p, enc.n);
	while (rd_left(&r)) {
		unsigned op = rd_u8(&r);
		if (op == TTY_OP_END || op >= 160)
			break;
		uint32_t v = rd_u32(&r);
		if (r.err)
			return -EINVAL;
		if (op == TTY_OP_ISPEED) {
			cfsetispeed(t, baud_to_speed(v));
			continue;
		}
		if (op == TTY_OP_OSPEED) {
			cfsetospeed(t, baud_to_speed(v));
			continue;
		}
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			const struct mode *m = &modes[i];
			if (m->op != op)
				continue;
			if (m->kind == CC) {
				t->c_cc[m->bit] = (cc_t)v;
			} else if (m->kind == CFLAG && (m->bit == CS7 || m->bit == CS8)) {
				if (v) {
					t->c_cflag &= ~(tcflag_t)CSIZE;
					t->c_cflag |= m->bit;
				}
			} else if (v) {
				*mode_field(t, m->kind) |= m->bit;
			} else {
				*mode_field(t, m->kind) &= ~m->bit;
			}
			break;
		}
	}
	return r.err ? -EINVAL : 0;
}
