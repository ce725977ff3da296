/* SPDX-License-Identifier: MIT */
#include "pktlog.h"

#include <sys/time.h>

#include "buf.h"
#include "msg.h"
#include "syscalls.h"

/* Print a string field safely: printable ASCII only, bounded. */
static void put_text(FILE *f, struct sv s)
{
	size_t n = s.n < 64 ? s.n : 64;
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s.p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	fputc('"', f);
	if (s.n > n)
		fprintf(f, "...(%zu bytes)", s.n);
}

void pktlog_write(FILE *f, char dir, const uint8_t *p, size_t n)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct rd r;
	rd_init(&r, p, n);
	unsigned t = rd_u8(&r);
	fprintf(f, "%ld.%06ld %c %s(%u) len=%zu", (long)tv.tv_sec, (long)tv.tv_usec, dir,
		msg_name(t), t, n);
	switch (t) {
	case MSG_DISCONNECT: {
		uint32_t code = rd_u32(&r);
		fprintf(f, " code=%u reason=", code);
		put_text(f, rd_str(&r));
		break;
	}
	case MSG_GLOBAL_REQUEST: {
		struct sv name = rd_str(&r);
		fprintf(f, " name=");
		put_text(f, name);
		fprintf(f, " want_reply=%u", rd_u8(&r));
		break;
	}
	case MSG_CHANNEL_OPEN: {
		struct sv type = rd_str(&r);
		fprintf(f, " type=");
		put_text(f, type);
		uint32_t a = rd_u32(&r), b = rd_u32(&r), c = rd_u32(&r);
		fprintf(f, " sender=%u window=%u maxpkt=%u", a, b, c);
		break;
	}
	case MSG_CHANNEL_OPEN_CONFIRMATION: {
		uint32_t a = rd_u32(&r), b = rd_u32(&r), c = rd_u32(&r), d = rd_u32(&r);
		fprintf(f, " recipient=%u sender=%u window=%u maxpkt=%u", a, b, c, d);
		break;
	}
	case MSG_CHANNEL_OPEN_FAILURE: {
		uint32_t a = rd_u32(&r), b = rd_u32(&r);
		fprintf(f, " recipient=%u reason=%u text=", a, b);
		put_text(f, rd_str(&r));
		break;
	}
	case MSG_CHANNEL_WINDOW_ADJUST: {
		uint32_t a = rd_u32(&r), b = rd_u32(&r);
		fprintf(f, " recipient=%u add=%u", a, b);
		break;
	}
	case MSG_CHANNEL_DATA: {
		uint32_t a = rd_u32(&r), b = rd_u32(&r);
		fprintf(f, " recipient=%u bytes=%u", a, b);
		break;
	}
	case MSG_CHANNEL_EXTENDED_DATA: {
		uint32_t a = rd_u32(&r), b = rd_u32(&r), c = rd_u32(&r);
		fprintf(f, " recipient=%u ext=%u bytes=%u", a, b, c);
		break;
	}
	case MSG_CHANNEL_EOF:
	case MSG_CHANNEL_CLOSE:
	case MSG_CHANNEL_SUCCESS:
	case MSG_CHANNEL_FAILURE:
		fprintf(f, " recipient=%u", rd_u32(&r));
		break;
	case MSG_CHANNEL_REQUEST: {
		uint32_t a = rd_u32(&r);
		struct sv type = rd_str(&r);
		fprintf(f, " recipient=%u type=", a);
		put_text(f, type);
		fprintf(f, " want_reply=%u", rd_u8(&r));
		if (sv_eq(type, "exec") || sv_eq(type, "subsystem") || sv_eq(type, "signal")) {
			fprintf(f, " arg=");
			put_text(f, rd_str(&r));
		} else if (sv_eq(type, "exit-status")) {
			fprintf(f, " status=%u", rd_u32(&r));
		} else if (sv_eq(type, "env")) {
			fprintf(f, " name=");
			put_text(f, rd_str(&r));
		}
		break;
	}
	default:
		break;
	}
	if (r.err)
		fprintf(f, " [truncated]");
	fputc('\n', f);
	fflush(f);
}

/* Seccomp allowlist of this file: stdio on an already open file (its buffer is
 * set up before any sandbox, so no fstat), timestamps when the vDSO is absent. */
SYSCALLS(pktlog) = { SC("write"), SC("lseek"), SC("gettimeofday"), SC("clock_gettime"), SC_END };
