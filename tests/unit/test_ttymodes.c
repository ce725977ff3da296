/* SPDX-License-Identifier: MIT */
/* lib/ttymodes: pty-req encoded terminal modes, encode and apply. */
#include <errno.h>
#include <string.h>
#include <termios.h>

#include "buf.h"
#include "tap.h"
#include "ttymodes.h"

/* Find opcode @op in an encoded string; return its argument or -1. */
static long long find_op(const struct buf *b, unsigned op)
{
	struct rd r;
	rd_init(&r, buf_data(b), buf_used(b));
	while (rd_left(&r)) {
		unsigned o = rd_u8(&r);
		if (o == 0 || o >= 160)
			return -1;
		uint32_t v = rd_u32(&r);
		if (r.err)
			return -1;
		if (o == op)
			return v;
	}
	return -1;
}

static void test_round_trip(void)
{
	struct termios src, dst;
	memset(&src, 0, sizeof(src));
	src.c_lflag = ICANON | ECHO | ISIG;
	src.c_oflag = OPOST | ONLCR;
	src.c_iflag = ICRNL | IXON;
	src.c_cflag = CS8 | CREAD;
	src.c_cc[VINTR] = 3;
	src.c_cc[VEOF] = 4;
	src.c_cc[VERASE] = 0x7f;
	/* glibc on Linux keeps a single speed: set both the same. */
	cfsetispeed(&src, B115200);
	cfsetospeed(&src, B115200);

	struct buf b;
	buf_init(&b, 4096);
	ttymodes_encode(&src, &b);
	ok(!b.err && buf_used(&b) > 0, "encode produced %zu bytes", buf_used(&b));
	is_int(buf_data(&b)[buf_used(&b) - 1], 0, "encoding ends with TTY_OP_END");
	ok((buf_used(&b) - 1) % 5 == 0, "encoding is a sequence of 5-byte opcode+uint32 entries");
	is_int(find_op(&b, 1), 3, "VINTR (op 1) encoded as 3");
	is_int(find_op(&b, 5), 4, "VEOF (op 5) encoded as 4");
	is_int(find_op(&b, 51), 1, "ICANON (op 51) encoded as 1");
	is_int(find_op(&b, 53), 1, "ECHO (op 53) encoded as 1");
	is_int(find_op(&b, 70), 1, "OPOST (op 70) encoded as 1");
	is_int(find_op(&b, 72), 1, "ONLCR (op 72) encoded as 1");
	is_int(find_op(&b, 90), 0, "CS7 (op 90) encoded as 0");
	is_int(find_op(&b, 91), 1, "CS8 (op 91) encoded as 1");
	is_int(find_op(&b, 54), 0, "ECHOE (op 54) encoded as 0");
	is_int(find_op(&b, 128), 115200, "ISPEED encoded in baud");
	is_int(find_op(&b, 129), 115200, "OSPEED encoded in baud");

	/* Apply onto a termios with everything inverted. */
	memset(&dst, 0, sizeof(dst));
	dst.c_lflag = ECHOE | ECHOK;
	dst.c_oflag = OCRNL;
	dst.c_cflag = CS7 | PARENB;
	dst.c_cc[VINTR] = 99;
	dst.c_cc[VEOF] = 98;
	int r = ttymodes_apply((struct sv){ buf_data(&b), buf_used(&b) }, &dst);
	is_int(r, 0, "apply returns 0");
	ok(dst.c_lflag & ICANON, "ICANON survives the round trip");
	ok(dst.c_lflag & ECHO, "ECHO survives the round trip");
	ok(dst.c_lflag & ISIG, "ISIG survives the round trip");
	ok(!(dst.c_lflag & ECHOE), "ECHOE cleared by the round trip");
	ok(!(dst.c_lflag & ECHOK), "ECHOK cleared by the round trip");
	ok(dst.c_oflag & OPOST, "OPOST survives the round trip");
	ok(dst.c_oflag & ONLCR, "ONLCR survives the round trip");
	ok(!(dst.c_oflag & OCRNL), "OCRNL cleared by the round trip");
	ok(dst.c_iflag & ICRNL, "ICRNL survives the round trip");
	is_int(dst.c_cflag & CSIZE, CS8, "CS8 survives the round trip");
	ok(!(dst.c_cflag & PARENB), "PARENB cleared by the round trip");
	is_int(dst.c_cc[VINTR], 3, "VINTR survives the round trip");
	is_int(dst.c_cc[VEOF], 4, "VEOF survives the round trip");
	is_int(dst.c_cc[VERASE], 0x7f, "VERASE survives the round trip");
	is_int(cfgetispeed(&dst), B115200, "input speed survives the round trip");
	is_int(cfgetospeed(&dst), B115200, "output speed survives the round trip");

	/* And the other way: flags off on the source clear them on the target. */
	memset(&src, 0, sizeof(src));
	src.c_cflag = CS7;
	buf_reset(&b);
	ttymodes_encode(&src, &b);
	struct termios d2;
	memset(&d2, 0, sizeof(d2));
	d2.c_lflag = ICANON | ECHO;
	d2.c_oflag = OPOST | ONLCR;
	d2.c_cflag = CS8;
	r = ttymodes_apply((struct sv){ buf_data(&b), buf_used(&b) }, &d2);
	is_int(r, 0, "apply of an all-off encoding");
	ok(!(d2.c_lflag & (ICANON | ECHO)), "ICANON/ECHO cleared");
	ok(!(d2.c_oflag & (OPOST | ONLCR)), "OPOST/ONLCR cleared");
	is_int(d2.c_cflag & CSIZE, CS7, "CS7 applied");
	buf_free(&b);
}

static void put_op(struct buf *b, uint8_t op, uint32_t v)
{
	buf_u8(b, op);
	buf_u32(b, v);
}

static int apply_buf(const struct buf *b, struct termios *t)
{
	return ttymodes_apply((struct sv){ buf_data(b), buf_used(b) }, t);
}

static void test_stop_and_errors(void)
{
	struct buf b;
	struct termios t;
	buf_init(&b, 4096);

	/* Opcode >= 160 stops parsing: later ops are not applied, even malformed ones. */
	memset(&t, 0, sizeof(t));
	put_op(&b, 53, 1);  /* ECHO on */
	buf_u8(&b, 160);    /* stop */
	put_op(&b, 51, 1);  /* ICANON on: must be ignored */
	buf_u8(&b, 1);      /* truncated: must not matter */
	is_int(apply_buf(&b, &t), 0, "opcode 160 ends parsing with success");
	ok(t.c_lflag & ECHO, "op before 160 applied");
	ok(!(t.c_lflag & ICANON), "op after 160 not applied");

	buf_reset(&b);
	memset(&t, 0, sizeof(t));
	put_op(&b, 53, 1);
	buf_u8(&b, 255);
	put_op(&b, 51, 1);
	is_int(apply_buf(&b, &t), 0, "opcode 255 ends parsing");
	ok(!(t.c_lflag & ICANON), "op after 255 not applied");

	/* TTY_OP_END stops too. */
	buf_reset(&b);
	memset(&t, 0, sizeof(t));
	buf_u8(&b, 0);
	put_op(&b, 51, 1);
	is_int(apply_buf(&b, &t), 0, "TTY_OP_END first");
	ok(!(t.c_lflag & ICANON), "op after TTY_OP_END not applied");

	/* No TTY_OP_END at all is accepted (end of string). */
	buf_reset(&b);
	memset(&t, 0, sizeof(t));
	put_op(&b, 51, 1);
	is_int(apply_buf(&b, &t), 0, "missing TTY_OP_END accepted");
	ok(t.c_lflag & ICANON, "op applied without TTY_OP_END");

	/* Empty string. */
	memset(&t, 0, sizeof(t));
	is_int(ttymodes_apply(SV_NULL, &t), 0, "empty modes string");

	/* Truncated argument: 0..3 bytes after a valid opcode. */
	for (int k = 0; k < 4; k++) {
		buf_reset(&b);
		buf_u8(&b, 53);
		for (int j = 0; j < k; j++)
			buf_u8(&b, 0);
		memset(&t, 0, sizeof(t));
		is_int(apply_buf(&b, &t), -EINVAL, "opcode with %d-byte argument gives -EINVAL", k);
	}
	/* Truncated argument after some valid ones. */
	buf_reset(&b);
	put_op(&b, 53, 1);
	buf_u8(&b, 51);
	buf_u8(&b, 0);
	buf_u8(&b, 0);
	memset(&t, 0, sizeof(t));
	is_int(apply_buf(&b, &t), -EINVAL, "truncated second opcode gives -EINVAL");

	/* Unknown opcodes 1..159 are skipped with their uint32. */
	buf_reset(&b);
	put_op(&b, 11, 0xffffffff);  /* VDSUSP: not on Linux */
	put_op(&b, 100, 0x35353535); /* unassigned; argument looks like opcodes */
	put_op(&b, 159, 0x33000000);
	put_op(&b, 53, 1);
	buf_u8(&b, 0);
	memset(&t, 0, sizeof(t));
	is_int(apply_buf(&b, &t), 0, "unknown opcodes 11/100/159 accepted");
	ok(t.c_lflag & ECHO, "known op after unknown ones applied");
	is_int(t.c_lflag, ECHO, "unknown ops changed nothing else (lflag)");
	is_int(t.c_iflag | t.c_oflag | t.c_cflag, 0, "unknown ops changed nothing else");

	/* Unknown opcode with a truncated argument is still an error. */
	buf_reset(&b);
	buf_u8(&b, 100);
	buf_u8(&b, 0);
	is_int(apply_buf(&b, &t), -EINVAL, "unknown opcode with truncated argument: -EINVAL");

	/* Speeds outside the table fall back to 38400. */
	buf_reset(&b);
	put_op(&b, 129, 12345);
	memset(&t, 0, sizeof(t));
	cfsetospeed(&t, B9600);
	is_int(apply_buf(&b, &t), 0, "unknown speed accepted");
	is_int(cfgetospeed(&t), B38400, "unknown baud rate becomes 38400");
	buf_reset(&b);
	put_op(&b, 129, 230400);
	is_int(apply_buf(&b, &t), 0, "speed applied");
	is_int(cfgetospeed(&t), B230400, "230400 baud applied");

	/* Control characters are truncated to cc_t, not rejected. */
	buf_reset(&b);
	put_op(&b, 1, 0x1ff);
	memset(&t, 0, sizeof(t));
	is_int(apply_buf(&b, &t), 0, "VINTR with big value");
	is_int(t.c_cc[VINTR], 0xff, "VINTR truncated to 8 bits");
	buf_free(&b);
}

int main(void)
{
	test_round_trip();
	test_stop_and_errors();
	return done_testing();
}
