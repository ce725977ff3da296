/* SPDX-License-Identifier: MIT */
/* The mux's translation table (host-tool/mux/mux_core.c) against a fake I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "msg.h"
#include "mux/mux_core.h"
#include "tap.h"

#define GUEST -1
#define MAXREC 64

struct rec {
	int to;
	uint8_t p[512];
	size_t n;
};

static struct rec recs[MAXREC];
static int nrec;
static char failed_why[MUX_MAX_CLIENTS][200];
static int nfail;

static void io_to_guest(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (nrec < MAXREC && n <= sizeof(recs[0].p)) {
		recs[nrec].to = GUEST;
		memcpy(recs[nrec].p, p, n);
		recs[nrec++].n = n;
	}
}

static void io_to_client(void *ctx, unsigned cl, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (nrec < MAXREC && n <= sizeof(recs[0].p)) {
		recs[nrec].to = (int)cl;
		memcpy(recs[nrec].p, p, n);
		recs[nrec++].n = n;
	}
}

static void io_client_fail(void *ctx, unsigned cl, const char *why)
{
	(void)ctx;
	snprintf(failed_why[cl], sizeof(failed_why[cl]), "%s", why);
	nfail++;
}

static bool io_local(void *ctx, unsigned cl, struct sv name, struct rd *args, struct buf *reply)
{
	(void)ctx;
	(void)cl;
	(void)args;
	if (!sv_eq(name, "mux-status@wicket"))
		return false;
	buf_cstr(reply, "status text");
	return true;
}

static const struct mux_io io = { io_to_guest, io_to_client, io_client_fail, io_local };

static void reset(void)
{
	nrec = 0;
	nfail = 0;
	memset(failed_why, 0, sizeof(failed_why));
}

static uint32_t be32(const uint8_t *p)
{
	return get_be32(p);
}

/* A message in a buffer; mux_core_* rewrite in place, so each call gets a copy. */
struct msg {
	uint8_t p[512];
	size_t n;
};

static struct msg m_open(const char *type, uint32_t sender, uint32_t win, uint32_t max)
{
	struct buf b;
	buf_init(&b, 512);
	buf_u8(&b, MSG_CHANNEL_OPEN);
	buf_cstr(&b, type);
	buf_u32(&b, sender);
	buf_u32(&b, win);
	buf_u32(&b, max);
	struct msg m = { .n = buf_used(&b) };
	memcpy(m.p, buf_data(&b), m.n);
	buf_free(&b);
	return m;
}

static struct msg m_confirm(uint32_t rcpt, uint32_t sender, uint32_t win, uint32_t max)
{
	struct msg m = { .n = 17 };
	m.p[0] = MSG_CHANNEL_OPEN_CONFIRMATION;
	put_be32(m.p + 1, rcpt);
	put_be32(m.p + 5, sender);
	put_be32(m.p + 9, win);
	put_be32(m.p + 13, max);
	return m;
}

static struct msg m_chan(uint8_t type, uint32_t rcpt)
{
	struct msg m = { .n = 5 };
	m.p[0] = type;
	put_be32(m.p + 1, rcpt);
	return m;
}

static struct msg m_data(uint32_t rcpt, const char *s)
{
	struct msg m = { .n = 9 + strlen(s) };
	m.p[0] = MSG_CHANNEL_DATA;
	put_be32(m.p + 1, rcpt);
	put_be32(m.p + 5, (uint32_t)strlen(s));
	memcpy(m.p + 9, s, strlen(s));
	return m;
}

static struct msg m_global(const char *name, bool want, const char *addr, int port)
{
	struct buf b;
	buf_init(&b, 512);
	buf_u8(&b, MSG_GLOBAL_REQUEST);
	buf_cstr(&b, name);
	buf_bool(&b, want);
	if (addr)
		buf_cstr(&b, addr);
	if (port >= 0)
		buf_u32(&b, (uint32_t)port);
	struct msg m = { .n = buf_used(&b) };
	memcpy(m.p, buf_data(&b), m.n);
	buf_free(&b);
	return m;
}

static int from_client(struct mux_core *c, unsigned cl, struct msg m)
{
	return mux_core_from_client(c, cl, m.p, m.n);
}

static int from_guest(struct mux_core *c, struct msg m)
{
	return mux_core_from_guest(c, m.p, m.n);
}

/* Open a channel for @cl (its number @cid) and confirm it as guest number @gid. */
static uint32_t open_chan(struct mux_core *c, unsigned cl, uint32_t cid, uint32_t gid)
{
	reset();
	from_client(c, cl, m_open("session", cid, 1000, 100));
	uint32_t id = be32(recs[0].p + 1 + 4 + 7);
	reset();
	from_guest(c, m_confirm(id, gid, 500, 64));
	return id;
}

static void test_translation(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	int a = mux_core_client_add(&c), b = mux_core_client_add(&c);
	ok(a == 0 && b == 1, "two client slots");
	reset();
	from_client(&c, 0, m_open("session", 5, 1000, 100));
	is_int(nrec, 1, "open forwarded");
	is_int(recs[0].to, GUEST, "... to the guest");
	uint32_t ma = be32(recs[0].p + 1 + 4 + 7);
	reset();
	from_client(&c, 1, m_open("session", 5, 1000, 100));
	uint32_t mb = be32(recs[0].p + 1 + 4 + 7);
	ok(ma != mb, "the same client number gets two mux numbers (%u, %u)", ma, mb);
	reset();
	is_int(from_guest(&c, m_confirm(ma, 77, 500, 64)), 0, "guest confirms A");
	is_int(recs[0].to, 0, "confirmation goes to A");
	is_int(be32(recs[0].p + 1), 5, "recipient is A's own number");
	is_int(be32(recs[0].p + 5), ma, "sender is the mux number");
	reset();
	from_guest(&c, m_confirm(mb, 88, 500, 64));
	is_int(recs[0].to, 1, "confirmation goes to B");
	reset();
	from_client(&c, 0, m_data(ma, "hello"));
	is_int(recs[0].to, GUEST, "A's data to the guest");
	is_int(be32(recs[0].p + 1), 77, "... for the guest's number");
	reset();
	from_guest(&c, m_data(mb, "to-b"));
	is_int(recs[0].to, 1, "guest data for B reaches B");
	is_int(be32(recs[0].p + 1), 5, "... with B's number");
	/* B names A's channel: B alone is dropped, nothing reaches the guest. */
	reset();
	is_int(from_client(&c, 1, m_data(ma, "intrusion")), -1, "B addressing A's channel fails");
	is_int(nrec, 0, "nothing forwarded");
	ok(strstr(failed_why[1], "not one of this client's") != NULL, "reason: %s", failed_why[1]);
	mux_core_client_gone(&c, 1);
	reset();
	from_client(&c, 0, m_data(ma, "still"));
	is_int(recs[0].to, GUEST, "A goes on");
	is_int(mux_core_channels(&c, 0), 1, "A has one channel");
	mux_core_free(&c);
}

static void test_checks(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	mux_core_client_add(&c);
	uint32_t m = open_chan(&c, 0, 1, 9);
	/* The guest granted 500 bytes in packets of 64. */
	char big[70];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	reset();
	is_int(from_client(&c, 0, m_data(m, big)), -1, "data over the maximum packet");
	ok(strstr(failed_why[0], "maximum packet") != NULL, "reason: %s", failed_why[0]);
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	m = open_chan(&c, 0, 1, 10);
	reset();
	for (int i = 0; i < 8; i++) /* 488 of the 500 bytes */
		from_client(&c, 0, m_data(m, "0123456789012345678901234567890123456789012345678901234567890"));
	is_int(from_client(&c, 0, m_data(m, "0123456789012345678901234567890123456789012345678901234567890")),
	       -1, "data over the window");
	ok(strstr(failed_why[0], "window") != NULL, "reason: %s", failed_why[0]);
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	m = open_chan(&c, 0, 1, 11);
	from_client(&c, 0, m_chan(MSG_CHANNEL_EOF, m));
	reset();
	is_int(from_client(&c, 0, m_data(m, "late")), -1, "data after EOF");
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	m = open_chan(&c, 0, 1, 12);
	struct msg trailing = m_chan(MSG_CHANNEL_EOF, m);
	trailing.n++;
	reset();
	is_int(from_client(&c, 0, trailing), -1, "EOF with trailing bytes");
	is_int(nrec, 0, "... not forwarded");
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	m = open_chan(&c, 0, 1, 13);
	reset();
	is_int(from_client(&c, 0, m_chan(MSG_CHANNEL_SUCCESS, m)), -1,
	       "a reply to no request of the guest");
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	reset();
	uint8_t kex[] = { 20, 0, 0 };
	is_int(mux_core_from_client(&c, 0, kex, sizeof(kex)), -1, "KEXINIT is not allowed");
	mux_core_client_gone(&c, 0);
	/* The guest too: data over what the client granted is its error. */
	mux_core_client_add(&c);
	m = open_chan(&c, 0, 1, 14);
	char over[1100];
	memset(over, 'y', 500);
	over[500] = 0;
	from_guest(&c, m_data(m, over));
	from_guest(&c, m_data(m, over));
	is_int(from_guest(&c, m_data(m, over)), -1, "guest data over the client's window");
	ok(strstr(c.why, "window") != NULL, "guest reason: %s", c.why);
	mux_core_free(&c);
}

static void test_close_and_reuse(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	mux_core_client_add(&c);
	uint32_t m = open_chan(&c, 0, 3, 30);
	reset();
	from_client(&c, 0, m_chan(MSG_CHANNEL_CLOSE, m));
	is_int(be32(recs[0].p + 1), 30, "CLOSE to the guest's number");
	is_int(mux_core_channels(&c, MUX_NONE), 1, "half closed: still live");
	reset();
	is_int(from_client(&c, 0, m_data(m, "x")), -1, "data after its own CLOSE fails");
	mux_core_client_gone(&c, 0);
	mux_core_client_add(&c);
	reset();
	from_guest(&c, m_chan(MSG_CHANNEL_CLOSE, m));
	is_int(nrec, 0, "the guest's CLOSE of an orphan goes nowhere");
	is_int(mux_core_channels(&c, MUX_NONE), 0, "both closed: released");
	uint32_t again = open_chan(&c, 0, 3, 31);
	is_int(again, m, "the number is reused");
	mux_core_free(&c);
}

static void test_gone(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	mux_core_client_add(&c);
	mux_core_client_add(&c);
	uint32_t open_a = open_chan(&c, 0, 1, 40);
	uint32_t open_b = open_chan(&c, 1, 1, 41);
	reset();
	from_client(&c, 0, m_open("session", 2, 1000, 100)); /* pending at the guest */
	uint32_t pend = be32(recs[0].p + 1 + 4 + 7);
	reset();
	mux_core_client_gone(&c, 0);
	is_int(nrec, 1, "one message for A's open channel");
	is_int(recs[0].p[0], MSG_CHANNEL_CLOSE, "... CLOSE");
	is_int(be32(recs[0].p + 1), 40, "... of the guest's number");
	reset();
	from_guest(&c, m_confirm(pend, 42, 100, 100));
	is_int(nrec, 1, "the late confirmation of A's open");
	is_int(recs[0].p[0], MSG_CHANNEL_CLOSE, "... is answered with CLOSE");
	is_int(recs[0].to, GUEST, "... to the guest");
	reset();
	from_guest(&c, m_data(open_a, "for the dead"));
	is_int(nrec, 0, "data for A's old channel is dropped");
	from_guest(&c, m_data(open_b, "for b"));
	is_int(recs[0].to, 1, "B unaffected");
	mux_core_free(&c);
}

static void test_replies_and_forwards(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	mux_core_client_add(&c);
	mux_core_client_add(&c);
	reset();
	from_client(&c, 0, m_global("tcpip-forward", true, "127.0.0.1", 0));
	from_client(&c, 1, m_global("tcpip-forward", false, "127.0.0.1", 5555));
	from_client(&c, 0, m_global("keepalive@openssh.com", true, NULL, -1));
	from_client(&c, 1, m_global("mux-status@wicket", true, NULL, -1));
	is_int(nrec, 3, "three requests to the guest, the status one kept local");
	ok(recs[1].p[1 + 4 + 13] == 1, "want-reply forced on for B's request");
	reset();
	uint8_t succ_port[] = { MSG_REQUEST_SUCCESS, 0, 0, 0x11, 0x5c }; /* port 4444 */
	uint8_t succ[] = { MSG_REQUEST_SUCCESS };
	uint8_t fail[] = { MSG_REQUEST_FAILURE };
	mux_core_from_guest(&c, succ_port, sizeof(succ_port));
	is_int(nrec, 1, "first reply");
	is_int(recs[0].to, 0, "... to A");
	reset();
	mux_core_from_guest(&c, succ, sizeof(succ));
	is_int(nrec, 0, "B did not want its reply");
	mux_core_from_guest(&c, fail, sizeof(fail));
	is_int(nrec, 2, "A's keepalive reply, then B's status answer in its turn");
	is_int(recs[0].to, 0, "... A first");
	is_int(recs[1].to, 1, "... then B");
	is_int(recs[1].p[0], MSG_REQUEST_SUCCESS, "status answered");
	/* The guest's forwarded opens reach who asked. */
	struct buf b;
	buf_init(&b, 512);
	buf_u8(&b, MSG_CHANNEL_OPEN);
	buf_cstr(&b, "forwarded-tcpip");
	buf_u32(&b, 60);
	buf_u32(&b, 100);
	buf_u32(&b, 100);
	buf_cstr(&b, "127.0.0.1");
	buf_u32(&b, 4444);
	buf_cstr(&b, "10.0.0.1");
	buf_u32(&b, 1);
	struct msg o = { .n = buf_used(&b) };
	memcpy(o.p, buf_data(&b), o.n);
	struct msg o2 = o;
	put_be32(o2.p + 1 + 4 + 15 + 12 + 4 + 9, 5555);
	put_be32(o2.p + 1 + 4 + 15, 61);
	struct msg o3 = o;
	put_be32(o3.p + 1 + 4 + 15 + 12 + 4 + 9, 6666);
	buf_free(&b);
	reset();
	from_guest(&c, o);
	is_int(recs[0].to, 0, "port 4444 (allocated for A's port 0) reaches A");
	reset();
	from_guest(&c, o2);
	is_int(recs[0].to, 1, "port 5555 reaches B");
	reset();
	from_guest(&c, o3);
	is_int(recs[0].to, GUEST, "port 6666: nobody's");
	is_int(recs[0].p[0], MSG_CHANNEL_OPEN_FAILURE, "... refused to the guest");
	/* A leaves: its pending incoming open is refused, its forward cancelled. */
	reset();
	mux_core_client_gone(&c, 0);
	bool refused = false, cancelled = false;
	for (int i = 0; i < nrec; i++) {
		refused |= recs[i].p[0] == MSG_CHANNEL_OPEN_FAILURE && be32(recs[i].p + 1) == 60;
		cancelled |= recs[i].p[0] == MSG_GLOBAL_REQUEST &&
			     memmem(recs[i].p, recs[i].n, "cancel-tcpip-forward", 20) != NULL &&
			     be32(recs[i].p + recs[i].n - 4) == 4444;
	}
	ok(refused, "A's pending forwarded open refused to the guest");
	ok(cancelled, "A's forward of port 4444 cancelled");
	reset();
	from_guest(&c, o);
	is_int(recs[0].p[0], MSG_CHANNEL_OPEN_FAILURE, "port 4444 is nobody's now");
	/* A reply when none is outstanding is the guest's protocol error. */
	is_int(mux_core_from_guest(&c, succ, sizeof(succ)), -1, "stray reply from the guest");
	mux_core_free(&c);
}

static struct msg m_req(uint32_t rcpt, const char *name, bool want)
{
	struct buf b;
	buf_init(&b, 512);
	buf_u8(&b, MSG_CHANNEL_REQUEST);
	buf_u32(&b, rcpt);
	buf_cstr(&b, name);
	buf_bool(&b, want);
	struct msg m = { .n = buf_used(&b) };
	memcpy(m.p, buf_data(&b), m.n);
	buf_free(&b);
	return m;
}

/* The guest's auth-agent@wicket open naming session @sid (a mux number). */
static struct msg m_agent_open(uint32_t sender, uint32_t sid)
{
	struct msg m = m_open("auth-agent@wicket", sender, 4096, 1024);
	put_be32(m.p + m.n, sid);
	m.n += 4;
	return m;
}

/* Agent forwarding: asked as auth-agent-req@wicket, opens go to that client only. */
static void test_agent(void)
{
	struct mux_core c;
	mux_core_init(&c, &io, NULL);
	mux_core_client_add(&c);
	mux_core_client_add(&c);
	uint32_t sa = open_chan(&c, 0, 3, 30), sb = open_chan(&c, 1, 4, 40);
	reset();
	is_int(from_client(&c, 0, m_req(sa, "auth-agent-req@openssh.com", true)), 0, "A asks");
	is_int(nrec, 1, "one message to the guest");
	struct rd r;
	rd_init(&r, recs[0].p + 1, recs[0].n - 1);
	uint32_t rcpt = rd_u32(&r);
	struct sv name = rd_str(&r);
	bool want = rd_bool(&r);
	ok(recs[0].to == GUEST && rcpt == 30 && sv_eq(name, "auth-agent-req@wicket") && want &&
		   rd_end(&r),
	   "the guest gets auth-agent-req@wicket on its own number, want-reply kept");
	/* An open naming A's session reaches A as OpenSSH's type. */
	reset();
	is_int(from_guest(&c, m_agent_open(900, sa)), 0, "guest opens an agent channel for A's session");
	ok(nrec == 1 && recs[0].to == 0, "... it goes to A");
	rd_init(&r, recs[0].p + 1, recs[0].n - 1);
	name = rd_str(&r);
	uint32_t id = rd_u32(&r);
	rd_u32(&r);
	rd_u32(&r);
	ok(sv_eq(name, "auth-agent@openssh.com") && rd_end(&r), "... as auth-agent@openssh.com, no tag");
	reset();
	from_client(&c, 0, m_confirm(id, 7, 1000, 100));
	ok(nrec == 1 && recs[0].to == GUEST && be32(recs[0].p + 1) == 900,
	   "A's confirmation reaches the guest's channel");
	/* B never asked: an open naming B's session, or a channel that is no session,
	 * is refused; so is OpenSSH's untagged type (it says no session). */
	struct msg bad[] = { m_agent_open(901, sb), m_agent_open(902, 999),
			     m_agent_open(903, id), m_open("auth-agent@openssh.com", 904, 10, 10) };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		is_int(from_guest(&c, bad[i]), 0, "hostile agent open %zu: the mux goes on", i);
		ok(nrec == 1 && recs[0].to == GUEST && recs[0].p[0] == MSG_CHANNEL_OPEN_FAILURE,
		   "hostile agent open %zu: OPEN_FAILURE to the guest, nothing to a client", i);
	}
	/* A's session closed by A: later opens naming it are refused. */
	reset();
	from_client(&c, 0, m_chan(MSG_CHANNEL_CLOSE, sa));
	reset();
	from_guest(&c, m_agent_open(905, sa));
	ok(nrec == 1 && recs[0].p[0] == MSG_CHANNEL_OPEN_FAILURE, "closed session: refused");
	mux_core_free(&c);
}

int main(void)
{
	test_translation();
	test_checks();
	test_close_and_reuse();
	test_gone();
	test_replies_and_forwards();
	test_agent();
	return done_testing();
}
