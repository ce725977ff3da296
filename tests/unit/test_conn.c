/* SPDX-License-Identifier: MIT */
/*
 * lib/conn: the connection layer driven end to end.  Two struct conn share
 * one loop over a socketpair ("server" accepts session channels, "client"
 * opens them); hostile input is injected by writing raw bare-framing bytes
 * into the socket from the test and parsing what the conn writes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "tap.h"
#include "wire.h"

#define RXMAX (256u * 1024u)
#define MAXCH 8
#define MAXREQ 8

static int seq_counter; /* orders callbacks across channels and conns */

struct tchan {
	struct chan *ch;
	int opened, open_failed, closed, eofs;
	int closed_seq, eof_seq;
	uint32_t fail_reason;
	char fail_msg[128];
	bool auto_consume;
	uint8_t rx[RXMAX];
	size_t rxn;
	uint8_t rx_ext[RXMAX];
	size_t rx_extn;
	uint32_t last_ext;
	size_t chunks, max_chunk, eof_at_rx;
	/* Requests received and the answers to give. */
	int nreq;
	bool answers[MAXREQ];
	char req_type[MAXREQ][32];
	bool req_want[MAXREQ];
	char req_arg[MAXREQ][32];
	/* Replies received to our requests. */
	int nreply;
	uint32_t reply_tag[MAXREQ];
	bool reply_ok[MAXREQ];
	/* Direct input (chan_set_direct): payloads come through pfd. */
	int pfd[2];
	size_t exact_ask;   /* nonzero: every other direct() asks for this much via data() */
	unsigned ndirect;   /* direct() calls */
	int refuse_fd;	    /* > 2: every other direct() offers this full or closed pipe */
	size_t piped;	    /* bytes that came through the pipe */
	bool hold;	    /* data_piped() leaves them there: a reader that is behind */
	uint8_t *big;	    /* when set: everything received (data and piped) in order */
	size_t bign, bigcap;
};

struct side {
	struct conn c;
	bool inited;
	int greeted, ended, ended_seq;
	bool auto_consume;
	int nacc;
	struct tchan acc[MAXCH]; /* channels the peer opened to us */
	int global_reqs;
};

struct fx {
	struct loop l;
	int sp[2];
	struct side srv, cli;
	bool raw; /* no client conn: sp[1] is driven by the test */
	/* Raw peer input. */
	struct buf rin;
	bool rgreeted;
	char rgreeting[128];
};

/* ---- callbacks ---- */

static void t_opened(struct chan *ch)
{
	struct tchan *t = ch->data;
	t->opened++;
}

static void t_open_failed(struct chan *ch, uint32_t reason, struct sv msg)
{
	struct tchan *t = ch->data;
	t->open_failed++;
	t->fail_reason = reason;
	sv_printable(msg, t->fail_msg, sizeof(t->fail_msg));
	t->ch = NULL;
}

static void t_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct tchan *t = ch->data;
	uint8_t *dst = ext ? t->rx_ext : t->rx;
	size_t *dn = ext ? &t->rx_extn : &t->rxn;
	if (*dn + n <= RXMAX)
		memcpy(dst + *dn, p, n);
	*dn += n;
	t->last_ext = ext;
	if (t->big && !ext && t->bign + n <= t->bigcap)
		memcpy(t->big + t->bign, p, n);
	if (t->big && !ext)
		t->bign += n;
	t->chunks++;
	if (n > t->max_chunk)
		t->max_chunk = n;
	if (t->auto_consume)
		chan_consumed(ch, n);
}

static void t_eof(struct chan *ch)
{
	struct tchan *t = ch->data;
	t->eofs++;
	t->eof_seq = ++seq_counter;
	t->eof_at_rx = t->rxn;
}

static void t_closed(struct chan *ch)
{
	struct tchan *t = ch->data;
	t->closed++;
	t->closed_seq = ++seq_counter;
	t->ch = NULL;
}

static bool t_request(struct chan *ch, struct sv type, bool want_reply, struct rd *args)
{
	struct tchan *t = ch->data;
	int i = t->nreq++;
	if (i >= MAXREQ)
		return false;
	sv_printable(type, t->req_type[i], sizeof(t->req_type[i]));
	t->req_want[i] = want_reply;
	struct sv a = rd_rest(args);
	sv_printable(a, t->req_arg[i], sizeof(t->req_arg[i]));
	return t->answers[i];
}

static void t_reply(struct chan *ch, uint32_t tag, bool okv)
{
	struct tchan *t = ch->data;
	int i = t->nreply++;
	if (i >= MAXREQ)
		return;
	t->reply_tag[i] = tag;
	t->reply_ok[i] = okv;
}

static size_t t_direct(struct chan *ch, size_t n, int *pipe_w, size_t *exact)
{
	struct tchan *t = ch->data;
	if (t->exact_ask && (++t->ndirect & 1)) {
		*exact = t->exact_ask;
		return 0;
	}
	*pipe_w = t->pfd[1];
	if (t->refuse_fd > 2 && (++t->ndirect & 1))
		*pipe_w = t->refuse_fd; /* the splice fails: conn must read instead */
	return n < 65536 ? n : 65536; /* what an empty default pipe holds */
}

static void t_piped(struct chan *ch, size_t n)
{
	struct tchan *t = ch->data;
	size_t got = 0;
	if (t->hold)
		got = n;
	while (got < n) {
		uint8_t tmp[65536];
		ssize_t k = read(t->pfd[0], tmp, n - got < sizeof(tmp) ? n - got : sizeof(tmp));
		if (k <= 0)
			bail_out("t_piped: the pipe holds less than announced");
		if (t->big && t->bign + (size_t)k <= t->bigcap)
			memcpy(t->big + t->bign, tmp, (size_t)k);
		t->bign += (size_t)k;
		got += (size_t)k;
	}
	t->piped += n;
	if (t->auto_consume)
		chan_consumed(ch, n);
}

static const struct chan_ops tops = {
	.name = "test",
	.opened = t_opened,
	.open_failed = t_open_failed,
	.data = t_data,
	.eof = t_eof,
	.closed = t_closed,
	.request = t_request,
	.reply = t_reply,
	.direct = t_direct,
	.data_piped = t_piped,
};

static uint32_t s_open(struct conn *c, struct chan *ch, struct sv type, struct rd *args,
		       const char **msg)
{
	struct side *s = c->data;
	(void)args;
	if (!sv_eq(type, "session")) {
		*msg = "only session here";
		return OPEN_UNKNOWN_CHANNEL_TYPE;
	}
	if (s->nacc >= MAXCH) {
		*msg = "test pool full";
		return OPEN_RESOURCE_SHORTAGE;
	}
	struct tchan *t = &s->acc[s->nacc++];
	t->ch = ch;
	t->auto_consume = s->auto_consume;
	ch->ops = &tops;
	ch->data = t;
	return 0;
}

static bool s_global(struct conn *c, struct sv name, bool want_reply, struct rd *args)
{
	struct side *s = c->data;
	(void)want_reply;
	(void)args;
	s->global_reqs++;
	return sv_eq(name, "yes@test");
}

static void s_greeted(struct conn *c)
{
	struct side *s = c->data;
	s->greeted++;
}

static void s_ended(struct conn *c)
{
	struct side *s = c->data;
	s->ended++;
	s->ended_seq = ++seq_counter;
}

static const struct conn_ops sops = {
	.open = s_open,
	.global_request = s_global,
	.greeted = s_greeted,
	.ended = s_ended,
};

/* ---- fixture ---- */

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct fx *fx_new(const struct conn_cfg *scfg, const struct conn_cfg *ccfg)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		bail_out("out of memory");
	loop_init(&f->l);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sp) < 0)
		bail_out("socketpair failed");
	set_nonblock(f->sp[0]);
	f->srv.auto_consume = true;
	f->cli.auto_consume = true;
	struct conn_cfg sc = { .software = "test-server" };
	if (scfg)
		sc = *scfg;
	if (conn_init(&f->srv.c, &f->l, f->sp[0], f->sp[0], &sc, &sops, &f->srv) < 0)
		bail_out("conn_init server failed");
	f->srv.inited = true;
	if (!ccfg) {
		f->raw = true;
		set_nonblock(f->sp[1]);
		buf_init(&f->rin, 4u * 1024 * 1024);
		return f;
	}
	set_nonblock(f->sp[1]);
	struct conn_cfg cc = *ccfg;
	if (conn_init(&f->cli.c, &f->l, f->sp[1], f->sp[1], &cc, &sops, &f->cli) < 0)
		bail_out("conn_init client failed");
	f->cli.inited = true;
	return f;
}

/* A server conn on a pty slave (raw mode), the test on the master. */
static struct fx *fx_new_pty(const struct conn_cfg *scfg)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		bail_out("out of memory");
	loop_init(&f->l);
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		bail_out("no pty");
	int sl = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios t;
	if (sl < 0 || tcgetattr(sl, &t) < 0)
		bail_out("cannot open the pty slave");
	cfmakeraw(&t);
	tcsetattr(sl, TCSANOW, &t);
	f->sp[0] = sl;
	f->sp[1] = m;
	set_nonblock(sl);
	set_nonblock(m);
	f->srv.auto_consume = true;
	if (conn_init(&f->srv.c, &f->l, sl, sl, scfg, &sops, &f->srv) < 0)
		bail_out("conn_init on the pty failed");
	f->srv.inited = true;
	f->raw = true;
	buf_init(&f->rin, 4u * 1024 * 1024);
	return f;
}

static void fx_free(struct fx *f)
{
	if (f->srv.inited)
		conn_free(&f->srv.c);
	if (f->cli.inited)
		conn_free(&f->cli.c);
	buf_free(&f->rin);
	loop_free(&f->l);
	close(f->sp[0]);
	close(f->sp[1]);
	free(f);
}

static void pump_once(struct fx *f, int timeout)
{
	loop_once(&f->l, timeout);
	conn_service(&f->srv.c);
	if (f->cli.inited)
		conn_service(&f->cli.c);
}

/* Pump until @cond holds (bounded); the caller asserts @cond afterwards. */
#define PUMP_UNTIL(f, cond)                                             \
	do {                                                            \
		for (int pump_i_ = 0; pump_i_ < 300 && !(cond); pump_i_++) \
			pump_once((f), 20);                             \
	} while (0)

/* Let whatever is in flight settle. */
static void pump_idle(struct fx *f, int rounds)
{
	for (int i = 0; i < rounds; i++)
		pump_once(f, 5);
}

static struct chan *cli_open(struct fx *f, struct tchan *t, const char *type)
{
	memset(t, 0, sizeof(*t));
	t->auto_consume = true;
	t->ch = chan_open(&f->cli.c, type, &tops, t);
	return t->ch;
}

/* Open a session from the client and wait for both sides to see it. */
static bool open_session(struct fx *f, struct tchan *t)
{
	if (!cli_open(f, t, "session"))
		return false;
	int before = f->srv.nacc;
	PUMP_UNTIL(f, t->opened || t->open_failed);
	return t->opened == 1 && f->srv.nacc == before + 1 && f->srv.acc[before].opened == 1;
}

/* ---- raw peer ---- */

static void raw_write(struct fx *f, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(f->sp[1], b, n); /* socket or pty master; SIGPIPE ignored */
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			pump_once(f, 5);
			continue;
		}
		if (w <= 0)
			bail_out("raw write failed");
		b += w;
		n -= (size_t)w;
	}
}

static void raw_greet(struct fx *f)
{
	static const char g[] = "SSHCONNECTION@putty.projects.tartarus.org-2.0-test\r\n";
	raw_write(f, g, sizeof(g) - 1);
}

/* Send @pk (payload incl. message number) as one packet, then free it. */
static void raw_send(struct fx *f, struct buf *pk)
{
	uint8_t hdr[4];
	put_be32(hdr, (uint32_t)buf_used(pk));
	raw_write(f, hdr, 4);
	raw_write(f, buf_data(pk), buf_used(pk));
	buf_free(pk);
}

static struct buf pk_begin(uint8_t type)
{
	struct buf b;
	buf_init(&b, 1u << 20);
	buf_u8(&b, type);
	return b;
}

static void raw_recv(struct fx *f)
{
	for (;;) {
		uint8_t *w = buf_reserve(&f->rin, 65536);
		if (!w)
			return;
		ssize_t n = read(f->sp[1], w, 65536);
		if (n <= 0)
			return;
		buf_commit(&f->rin, (size_t)n);
	}
}

/* Try to take one packet out of the raw input (own parser, not lib/wire). */
static bool raw_take(struct fx *f, struct buf *out)
{
	if (!f->rgreeted) {
		const uint8_t *d = buf_data(&f->rin);
		const uint8_t *nl = memchr(d, '\n', buf_used(&f->rin));
		if (!nl)
			return false;
		size_t ln = (size_t)(nl - d) + 1;
		size_t cp = ln < sizeof(f->rgreeting) - 1 ? ln : sizeof(f->rgreeting) - 1;
		memcpy(f->rgreeting, d, cp);
		f->rgreeting[cp] = 0;
		buf_consume(&f->rin, ln);
		f->rgreeted = true;
	}
	if (buf_used(&f->rin) < 4)
		return false;
	uint32_t len = get_be32(buf_data(&f->rin));
	if (buf_used(&f->rin) - 4 < len)
		return false;
	buf_reset(out);
	buf_put(out, buf_data(&f->rin) + 4, len);
	buf_consume(&f->rin, 4 + (size_t)len);
	return true;
}

/* Next packet the server conn wrote to us, pumping the loop as needed. */
static bool raw_next(struct fx *f, struct buf *out)
{
	for (int i = 0; i < 200; i++) {
		raw_recv(f);
		if (raw_take(f, out))
			return true;
		pump_once(f, 10);
	}
	raw_recv(f);
	return raw_take(f, out);
}

static int pk_type(const struct buf *p)
{
	return buf_used(p) ? buf_data(p)[0] : -1;
}

/* Open a session from the raw side; return the server's channel id or -1. */
static long raw_open(struct fx *f, uint32_t our_id, uint32_t win, uint32_t maxpkt)
{
	struct buf pk = pk_begin(MSG_CHANNEL_OPEN);
	buf_cstr(&pk, "session");
	buf_u32(&pk, our_id);
	buf_u32(&pk, win);
	buf_u32(&pk, maxpkt);
	raw_send(f, &pk);
	struct buf in;
	buf_init(&in, 1u << 20);
	long id = -1;
	if (raw_next(f, &in) && pk_type(&in) == MSG_CHANNEL_OPEN_CONFIRMATION) {
		struct rd r;
		rd_init(&r, buf_data(&in), buf_used(&in));
		rd_u8(&r);
		uint32_t recip = rd_u32(&r);
		uint32_t sid = rd_u32(&r);
		rd_u32(&r);
		rd_u32(&r);
		if (rd_end(&r) && recip == our_id)
			id = sid;
	}
	buf_free(&in);
	return id;
}

/*
 * Read packets until a DISCONNECT; check it has code @code and a reason
 * containing @needle.  Returns true when all of that holds.
 */
static bool raw_expect_disconnect(struct fx *f, uint32_t code, const char *needle,
				  const char *what)
{
	struct buf in;
	buf_init(&in, 1u << 20);
	bool got = false;
	int others = 0;
	while (raw_next(f, &in)) {
		if (pk_type(&in) == MSG_DISCONNECT) {
			got = true;
			break;
		}
		others++;
	}
	if (!ok(got, "%s: DISCONNECT (type 1) arrived", what)) {
		buf_free(&in);
		return false;
	}
	struct rd r;
	rd_init(&r, buf_data(&in), buf_used(&in));
	rd_u8(&r);
	uint32_t c = rd_u32(&r);
	struct sv why = rd_str(&r);
	struct sv lang = rd_str(&r);
	(void)lang;
	char txt[256];
	sv_printable(why, txt, sizeof(txt));
	bool good = ok(rd_end(&r), "%s: DISCONNECT is well formed", what);
	good &= is_int(c, code, "%s: reason code %u", what, code);
	good &= ok(strstr(txt, needle) != NULL, "%s: reason [%s] mentions [%s]", what, txt, needle);
	buf_free(&in);
	return good;
}

/* ---- tests over two conns ---- */

static const struct conn_cfg cli_cfg_default = { .software = "test-client" };

static void test_open_confirm(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	ok(open_session(f, ct), "session channel opened and confirmed");
	is_int(ct->opened, 1, "client opened() called once");
	is_int(f->srv.nacc, 1, "server accepted one channel");
	is_int(f->srv.acc[0].opened, 1, "server-side opened() called once");
	is_int(f->srv.greeted, 1, "server saw the client's greeting once");
	is_int(f->cli.greeted, 1, "client saw the server's greeting once");
	is_str(f->srv.c.peer_version, "test-client", "server recorded the client version");
	is_str(f->cli.c.peer_version, "test-server", "client recorded the server version");
	struct chan *cch = ct->ch, *sch = f->srv.acc[0].ch;
	ok(cch && sch, "both channel objects exist");
	if (cch && sch) {
		is_int(cch->state, CH_OPEN, "client channel state OPEN");
		is_int(cch->rid, sch->id, "client knows the server's channel id");
		is_int(sch->rid, cch->id, "server knows the client's channel id");
		is_int(cch->rwin, sch->lwin, "client's send window is the server's advertised window");
		is_int(cch->rmaxpkt, sch->lmaxpkt, "client's max packet is the server's advertised one");
		is_int(sch->rwin, 4u * 1024 * 1024, "default window 4 MiB");
		ok(chan_send_room(cch) > 0, "room to send on an open channel");
	}
	is_int(f->srv.c.nopen, 1, "server nopen 1");
	is_int(f->cli.c.nopen, 1, "client nopen 1");
	ok(!f->srv.c.dead && !f->cli.c.dead, "no one disconnected");
	free(ct);
	fx_free(f);
}

static void test_open_unknown(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	ok(cli_open(f, ct, "x11-bogus@test") != NULL, "chan_open of an unknown type queued");
	ok(chan_send_room(ct->ch) == 0, "no room before confirmation");
	PUMP_UNTIL(f, ct->open_failed || ct->opened);
	is_int(ct->open_failed, 1, "open_failed() called once");
	is_int(ct->opened, 0, "opened() not called");
	is_int(ct->fail_reason, OPEN_UNKNOWN_CHANNEL_TYPE, "reason 3 (unknown channel type)");
	is_str(ct->fail_msg, "only session here", "failure message carried over");
	is_int(ct->closed, 0, "closed() not called for a refused open");
	is_int(f->cli.c.nopen, 0, "client slot freed");
	ok(f->cli.c.nch > 0 && f->cli.c.ch[0] == NULL, "client channel table entry cleared");
	is_int(f->srv.c.nopen, 0, "server holds no channel for the refusal");
	is_int(f->srv.nacc, 0, "server open handler accepted nothing");
	ok(!f->srv.c.dead && !f->cli.c.dead, "refusal is not a protocol error");

	/* The connection keeps working and the id is reused. */
	ok(open_session(f, ct), "session opens after a refusal");
	ok(ct->ch && ct->ch->id == 0, "freed id 0 reused");
	free(ct);
	fx_free(f);

	/* No open handler at all: still reason 3. */
	static const struct conn_ops noopen = { .ended = s_ended };
	struct fx *g = fx_new(NULL, &cli_cfg_default);
	g->srv.c.ops = &noopen;
	struct tchan *t2 = calloc(1, sizeof(*t2));
	cli_open(g, t2, "session");
	PUMP_UNTIL(g, t2->open_failed || t2->opened);
	is_int(t2->fail_reason, OPEN_UNKNOWN_CHANNEL_TYPE, "no open handler: reason 3");
	free(t2);
	fx_free(g);

	/* Channel cap: the second open gets RESOURCE_SHORTAGE. */
	struct conn_cfg sc = { .software = "s", .max_channels = 1 };
	struct fx *h = fx_new(&sc, &cli_cfg_default);
	struct tchan *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	ok(open_session(h, a), "first channel under a cap of 1");
	cli_open(h, b, "session");
	PUMP_UNTIL(h, b->open_failed || b->opened);
	is_int(b->fail_reason, OPEN_RESOURCE_SHORTAGE, "over the cap: reason 4");
	is_int(h->srv.c.nopen, 1, "server still has exactly one channel");
	free(a);
	free(b);
	fx_free(h);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
}

static void test_data_both_ways(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open for data test")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	static uint8_t up[100000], down[70000], err[3000];
	fill_pattern(up, sizeof(up), 1);
	fill_pattern(down, sizeof(down), 2);
	fill_pattern(err, sizeof(err), 3);

	size_t sent = 0;
	for (int i = 0; i < 500 && sent < sizeof(up); i++) {
		sent += chan_send(ct->ch, 0, up + sent, sizeof(up) - sent);
		pump_once(f, 5);
	}
	is_int(sent, sizeof(up), "client queued all %zu bytes", sizeof(up));
	PUMP_UNTIL(f, st->rxn >= sizeof(up));
	is_mem(st->rx, st->rxn, up, sizeof(up), "client->server data intact");

	sent = chan_send(st->ch, 0, down, sizeof(down));
	is_int(sent, sizeof(down), "server queued all bytes at once");
	size_t esent = chan_send(st->ch, SSH_EXTENDED_DATA_STDERR, err, sizeof(err));
	is_int(esent, sizeof(err), "server queued stderr bytes");
	PUMP_UNTIL(f, ct->rxn >= sizeof(down) && ct->rx_extn >= sizeof(err));
	is_mem(ct->rx, ct->rxn, down, sizeof(down), "server->client data intact");
	is_mem(ct->rx_ext, ct->rx_extn, err, sizeof(err), "server->client stderr intact");
	is_int(ct->last_ext, SSH_EXTENDED_DATA_STDERR, "extended data type 1 delivered");
	is_int(st->rx_extn, 0, "no stray extended data at the server");
	ok(!f->srv.c.dead && !f->cli.c.dead, "no protocol error in bulk transfer");

	/* Zero-length send is a no-op. */
	is_int(chan_send(ct->ch, 0, "", 0), 0, "chan_send of 0 bytes returns 0");
	free(ct);
	fx_free(f);
}

static void test_window(void)
{
	struct conn_cfg sc = { .software = "s", .window = 1000 };
	struct fx *f = fx_new(&sc, &cli_cfg_default);
	f->srv.auto_consume = false;
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open with a 1000-byte window")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	struct chan *cch = ct->ch, *sch = st->ch;
	static uint8_t data[3000];
	fill_pattern(data, sizeof(data), 7);

	is_int(chan_send_room(cch), 1000, "room equals the peer's window");
	size_t n = chan_send(cch, 0, data, 1500);
	is_int(n, 1000, "chan_send returns less than asked: exactly the window");
	is_int(chan_send_room(cch), 0, "chan_send_room hits 0");
	is_int(cch->rwin, 0, "client send window 0");
	is_int(chan_send(cch, 0, data + 1000, 500), 0, "further chan_send sends nothing");
	PUMP_UNTIL(f, st->rxn >= 1000);
	pump_idle(f, 5);
	is_int(st->rxn, 1000, "server received exactly the window");
	is_int(sch->lwin, 0, "server's receive window used up");
	is_int(chan_send_room(cch), 0, "no room while the receiver has not consumed");
	ok(!f->srv.c.dead, "sender respected the window (no disconnect)");

	chan_consumed(sch, 499);
	pump_idle(f, 5);
	ok(chan_send_room(cch) <= 499, "after consuming 499, room %zu <= 499",
	   chan_send_room(cch));
	ok(sch->lwin + sch->lunacked == 499, "server: window + unacked = consumed (%u + %u)",
	   sch->lwin, sch->lunacked);
	chan_consumed(sch, 501);
	PUMP_UNTIL(f, chan_send_room(cch) == 1000);
	is_int(chan_send_room(cch), 1000, "window adjust reopened the full window");
	is_int(sch->lwin, 1000, "server's window topped up to 1000");
	is_int(sch->lunacked, 0, "nothing left unacknowledged");

	n = chan_send(cch, 0, data + 1000, 2000);
	is_int(n, 1000, "second round sends exactly one more window");
	PUMP_UNTIL(f, st->rxn >= 2000);
	chan_consumed(sch, 1000);
	PUMP_UNTIL(f, chan_send_room(cch) == 1000);
	n = chan_send(cch, 0, data + 2000, 1000);
	is_int(n, 1000, "third round");
	PUMP_UNTIL(f, st->rxn >= 3000);
	is_mem(st->rx, st->rxn, data, sizeof(data), "3000 bytes intact through window stalls");
	ok(!f->srv.c.dead && !f->cli.c.dead, "no protocol error");

	/* The window counts extended data too. */
	chan_consumed(sch, 1000);
	PUMP_UNTIL(f, chan_send_room(cch) == 1000);
	n = chan_send(cch, 1, data, 600);
	is_int(n, 600, "600 stderr bytes");
	is_int(chan_send_room(cch), 400, "extended data reduces the window too");
	free(ct);
	fx_free(f);
}

static void test_maxpkt(void)
{
	struct conn_cfg sc = { .software = "s", .maxpkt = 100 };
	struct conn_cfg cc = { .software = "c", .maxpkt = 37 };
	struct fx *f = fx_new(&sc, &cc);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open with small max packets")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	is_int(ct->ch->rmaxpkt, 100, "client sees the server's max packet 100");
	is_int(st->ch->rmaxpkt, 37, "server sees the client's max packet 37");
	ok(chan_send_room(ct->ch) <= 100, "room capped by max packet (%zu)",
	   chan_send_room(ct->ch));

	static uint8_t data[1000];
	fill_pattern(data, sizeof(data), 9);
	is_int(chan_send(ct->ch, 0, data, sizeof(data)), 1000, "client queued 1000 bytes");
	PUMP_UNTIL(f, st->rxn >= 1000);
	is_mem(st->rx, st->rxn, data, 1000, "data intact in small packets");
	ok(st->max_chunk <= 100, "no packet over the peer's max (largest %zu)", st->max_chunk);
	is_int(st->chunks, 10, "1000 bytes in 10 packets of 100");

	is_int(chan_send(st->ch, 0, data, sizeof(data)), 1000, "server queued 1000 bytes");
	is_int(chan_send(st->ch, 1, data, 100), 100, "server queued 100 stderr bytes");
	PUMP_UNTIL(f, ct->rxn >= 1000 && ct->rx_extn >= 100);
	is_mem(ct->rx, ct->rxn, data, 1000, "reverse data intact");
	ok(ct->max_chunk <= 37, "no packet over 37 (largest %zu)", ct->max_chunk);
	is_int(ct->chunks, 28 + 3, "ceil(1000/37) + ceil(100/37) packets");
	ok(!f->srv.c.dead && !f->cli.c.dead, "peers accepted every packet");
	free(ct);
	fx_free(f);
}

static void test_eof_close(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open for EOF/CLOSE test")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	uint32_t sid = st->ch->id, cid = ct->ch->id;
	is_int(chan_send(ct->ch, 0, "abc", 3), 3, "data before EOF");
	chan_send_eof(ct->ch);
	ok(ct->ch->sent_eof, "EOF marked sent");
	is_int(chan_send_room(ct->ch), 0, "chan_send_room 0 after our EOF");
	is_int(chan_send(ct->ch, 0, "late", 4), 0, "data after EOF refused");
	chan_send_eof(ct->ch); /* second EOF must be a no-op */
	PUMP_UNTIL(f, st->eofs > 0);
	pump_idle(f, 3);
	is_int(st->eofs, 1, "server eof() once (duplicate EOF not sent)");
	is_int(st->eof_at_rx, 3, "EOF after the data it followed");
	is_mem(st->rx, st->rxn, "abc", 3, "no data after EOF reached the server");
	ok(st->ch && st->ch->rcvd_eof, "server channel saw EOF");

	/* Half-close: the other direction still works. */
	is_int(chan_send(st->ch, 0, "reply", 5), 5, "server can still send after peer EOF");
	PUMP_UNTIL(f, ct->rxn >= 5);
	is_mem(ct->rx, ct->rxn, "reply", 5, "reply after EOF arrived");

	/* Server ends its side: EOF then CLOSE. */
	chan_send_eof(st->ch);
	chan_send_close(st->ch);
	is_int(chan_send_room(st->ch), 0, "no room after our CLOSE");
	PUMP_UNTIL(f, ct->closed && st->closed);
	pump_idle(f, 5);
	is_int(ct->eofs, 1, "client eof() once");
	is_int(ct->closed, 1, "client closed() exactly once");
	is_int(st->closed, 1, "server closed() exactly once (CLOSE answered)");
	ok(ct->eof_seq < ct->closed_seq, "client: eof() before closed()");
	is_int(f->cli.c.nopen, 0, "client slot freed");
	is_int(f->srv.c.nopen, 0, "server slot freed");
	ok(f->cli.c.ch[cid] == NULL, "client table entry cleared");
	ok(f->srv.c.ch[sid] == NULL, "server table entry cleared");
	ok(!f->srv.c.dead && !f->cli.c.dead, "clean channel close, connection lives on");
	is_int(f->srv.ended + f->cli.ended, 0, "no conn ended");

	/* Simultaneous CLOSE from both ends. */
	ok(open_session(f, ct), "second channel");
	st = &f->srv.acc[1];
	chan_send_close(ct->ch);
	chan_send_close(st->ch);
	chan_send_close(st->ch); /* repeated: no-op */
	PUMP_UNTIL(f, ct->closed && st->closed);
	pump_idle(f, 5);
	is_int(ct->closed, 1, "crossing CLOSEs: client closed() once");
	is_int(st->closed, 1, "crossing CLOSEs: server closed() once");
	ok(!f->srv.c.dead && !f->cli.c.dead, "crossing CLOSEs are not a protocol error");
	is_int(f->srv.c.nopen + f->cli.c.nopen, 0, "all slots freed");

	/* Closing without EOF first; data in flight when we closed is dropped. */
	ok(open_session(f, ct), "third channel");
	st = &f->srv.acc[2];
	chan_send(ct->ch, 0, "xyz", 3);
	chan_send_close(st->ch);
	PUMP_UNTIL(f, ct->closed && st->closed);
	pump_idle(f, 3);
	is_int(st->closed, 1, "server closed() once");
	is_int(st->eofs, 0, "no EOF callback when none was sent");
	ok(!f->srv.c.dead && !f->cli.c.dead, "data crossing a CLOSE is no error");
	free(ct);
	fx_free(f);
}

static void test_requests(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open for request test")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	st->answers[0] = true;
	st->answers[1] = true; /* no reply wanted */
	st->answers[2] = false;
	st->answers[3] = true;
	struct conn *c = &f->cli.c;
	size_t s = chan_request_begin(ct->ch, "one@test", true, 101);
	buf_cstr(&c->out, "arg1");
	conn_pkt_end(c, s);
	s = chan_request_begin(ct->ch, "quiet@test", false, 999);
	conn_pkt_end(c, s);
	s = chan_request_begin(ct->ch, "two@test", true, 102);
	conn_pkt_end(c, s);
	s = chan_request_begin(ct->ch, "three@test", true, 103);
	buf_u32(&c->out, 7);
	conn_pkt_end(c, s);
	PUMP_UNTIL(f, ct->nreply >= 3);
	pump_idle(f, 3);
	is_int(st->nreq, 4, "server saw 4 requests");
	is_str(st->req_type[0], "one@test", "request 1 type");
	is_str(st->req_type[1], "quiet@test", "request 2 type");
	is_str(st->req_type[2], "two@test", "request 3 type");
	is_str(st->req_type[3], "three@test", "request 4 type");
	ok(st->req_want[0] && !st->req_want[1] && st->req_want[2] && st->req_want[3],
	   "want-reply flags as sent");
	is_mem(st->req_arg[0], strlen(st->req_arg[0]), "????arg1", 8,
	       "args positioned after want-reply (string arg1)");
	is_int(ct->nreply, 3, "exactly 3 replies (none for the no-reply request)");
	is_int(ct->reply_tag[0], 101, "reply 1 tag 101");
	is_int(ct->reply_ok[0], true, "reply 1 success");
	is_int(ct->reply_tag[1], 102, "reply 2 tag 102");
	is_int(ct->reply_ok[1], false, "reply 2 failure");
	is_int(ct->reply_tag[2], 103, "reply 3 tag 103");
	is_int(ct->reply_ok[2], true, "reply 3 success");
	is_int(ct->ch->tag_n, 0, "no replies outstanding");
	ok(!f->srv.c.dead && !f->cli.c.dead, "no protocol error");

	/* Many outstanding requests wrap the tag ring correctly. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++) {
			s = chan_request_begin(ct->ch, "bulk@test", true, (uint32_t)(1000 + round * 20 + i));
			conn_pkt_end(c, s);
		}
		ct->nreply = 0;
		PUMP_UNTIL(f, ct->nreply >= 20);
	}
	ok(ct->nreply == 20 && ct->reply_tag[0] == 1040 && ct->reply_tag[7] == 1047,
	   "tags still in order after the ring wrapped (first %u)", ct->reply_tag[0]);
	ok(!f->srv.c.dead && !f->cli.c.dead, "no protocol error after 60 more requests");
	free(ct);
	fx_free(f);
}

static void test_disconnect_two_conns(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open before disconnect")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	conn_disconnect(&f->cli.c, "test over");
	ok(f->cli.c.dead, "client dead after conn_disconnect");
	is_str(f->cli.c.reason, "test over", "client reason set");
	ok(chan_open(&f->cli.c, "session", &tops, ct) == NULL, "no chan_open after disconnect");
	PUMP_UNTIL(f, f->srv.ended && f->cli.ended);
	is_int(f->srv.ended, 1, "server ended() once");
	is_int(f->cli.ended, 1, "client ended() once");
	ok(strstr(f->srv.c.reason, "test over") != NULL, "server reason carries the text: %s",
	   f->srv.c.reason);
	ok(strstr(f->srv.c.reason, "11") != NULL, "server reason carries code 11: %s",
	   f->srv.c.reason);
	is_int(st->closed, 1, "server channel closed() once on disconnect");
	is_int(ct->closed, 1, "client channel closed() once on disconnect");
	ok(st->closed_seq < f->srv.ended_seq, "server: closed() before ended()");
	ok(ct->closed_seq < f->cli.ended_seq, "client: closed() before ended()");
	is_int(f->srv.c.nopen + f->cli.c.nopen, 0, "no channels left");
	pump_idle(f, 3);
	is_int(f->srv.ended + f->cli.ended, 2, "ended() not repeated");
	free(ct);
	fx_free(f);
}

static void test_global_request(void)
{
	struct fx *f = fx_new(NULL, NULL);
	raw_greet(f);
	struct buf pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "yes@test");
	buf_bool(&pk, true);
	raw_send(f, &pk);
	pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "no@test");
	buf_bool(&pk, true);
	raw_send(f, &pk);
	pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "quiet@test");
	buf_bool(&pk, false);
	raw_send(f, &pk);
	struct buf in;
	buf_init(&in, 1u << 20);
	ok(raw_next(f, &in) && pk_type(&in) == MSG_REQUEST_SUCCESS && buf_used(&in) == 1,
	   "global request 1: REQUEST_SUCCESS");
	ok(raw_next(f, &in) && pk_type(&in) == MSG_REQUEST_FAILURE && buf_used(&in) == 1,
	   "global request 2: REQUEST_FAILURE");
	pump_idle(f, 3);
	raw_recv(f);
	ok(!raw_take(f, &in), "no reply for want_reply=false");
	is_int(f->srv.global_reqs, 3, "handler saw 3 global requests");
	is_str(f->rgreeting, "SSHCONNECTION@putty.projects.tartarus.org-2.0-test-server\r\n",
	       "conn's greeting line");
	buf_free(&in);
	fx_free(f);
}

static void test_send_from_fd(void)
{
	struct conn_cfg sc = { .software = "s", .maxpkt = 100, .window = 250 };
	struct fx *f = fx_new(&sc, &cli_cfg_default);
	f->srv.auto_consume = false;
	struct tchan *ct = calloc(1, sizeof(*ct));
	int p[2];
	if (!ok(open_session(f, ct), "open for chan_send_from_fd") || pipe(p) < 0) {
		free(ct);
		fx_free(f);
		return;
	}
	set_nonblock(p[0]);
	struct tchan *st = &f->srv.acc[0];
	static uint8_t data[400];
	fill_pattern(data, sizeof(data), 11);
	ssize_t w = write(p[1], data, sizeof(data));
	is_int(w, sizeof(data), "400 bytes into the pipe");
	ssize_t r1 = chan_send_from_fd(ct->ch, 0, p[0]);
	is_int(r1, 100, "first read capped at the peer's max packet");
	ssize_t r2 = chan_send_from_fd(ct->ch, SSH_EXTENDED_DATA_STDERR, p[0]);
	is_int(r2, 100, "second read (stderr) capped at max packet");
	ssize_t r3 = chan_send_from_fd(ct->ch, 0, p[0]);
	is_int(r3, 50, "third read capped by the remaining window");
	is_int(chan_send_from_fd(ct->ch, 0, p[0]), -EAGAIN, "no window: -EAGAIN");
	PUMP_UNTIL(f, st->rxn + st->rx_extn >= 250);
	is_mem(st->rx, 100, data, 100, "fd data part 1");
	ok(st->rxn == 150 && memcmp(st->rx + 100, data + 200, 50) == 0, "fd data part 3");
	is_mem(st->rx_ext, st->rx_extn, data + 100, 100, "fd stderr data");
	ok(!f->srv.c.dead, "fd-sourced packets accepted by the peer");
	chan_consumed(st->ch, 250);
	PUMP_UNTIL(f, chan_send_room(ct->ch) > 0);
	is_int(chan_send_from_fd(ct->ch, 0, p[0]), 100, "after adjust: 100 more");
	is_int(chan_send_from_fd(ct->ch, 0, p[0]), 50, "the last 50 bytes");
	is_int(chan_send_from_fd(ct->ch, 0, p[0]), -EAGAIN, "empty pipe: -EAGAIN");
	close(p[1]);
	is_int(chan_send_from_fd(ct->ch, 0, p[0]), 0, "closed pipe: 0 (EOF)");
	PUMP_UNTIL(f, st->rxn >= 300);
	ok(st->rxn == 300 && memcmp(st->rx + 150, data + 250, 150) == 0, "fd data after adjust");
	close(p[0]);
	free(ct);
	fx_free(f);
}

/* Pipe payloads are spliced to the stream in order with queued packets. */
static void test_send_from_pipe(void)
{
	struct conn_cfg sc = { .software = "s", .maxpkt = 32768, .window = 1u << 20 };
	struct fx *f = fx_new(&sc, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	int p[2];
	if (!ok(open_session(f, ct), "open for chan_send_from_pipe") || pipe(p) < 0) {
		free(ct);
		fx_free(f);
		return;
	}
	set_nonblock(p[0]);
	struct tchan *st = &f->srv.acc[0];
	static uint8_t data[100000];
	fill_pattern(data, sizeof(data), 23);
	is_int(chan_send(ct->ch, 0, "before", 6), 6, "a queued packet first");
	is_int(write(p[1], data, 50000), 50000, "50000 bytes into the pipe");
	ssize_t r = chan_send_from_pipe(ct->ch, 0, p[0]);
	is_int(r, 32768, "one packet's worth, capped at the peer's max packet");
	ok(f->cli.c.sp_left == 32768 && f->cli.c.sp_fd >= 0, "payload left in the pipe, not copied");
	is_int(chan_send_room(ct->ch), 0, "no room while a pipe payload is queued");
	is_int(chan_send_from_pipe(ct->ch, 0, p[0]), -EAGAIN, "second one waits: -EAGAIN");
	PUMP_UNTIL(f, f->cli.c.sp_left == 0);
	ok(f->cli.c.sp_fd < 0, "duplicate closed once the payload is out");
	r = chan_send_from_pipe(ct->ch, 0, p[0]);
	is_int(r, 50000 - 32768, "the rest of the pipe");
	/* Bytes queued behind a pipe payload stay behind it. */
	is_int(chan_send(ct->ch, 0, "x", 1), 0, "nothing queued on the channel meanwhile");
	PUMP_UNTIL(f, chan_send_room(ct->ch) > 0);
	is_int(write(p[1], data + 50000, 300), 300, "300 more into the pipe");
	is_int(chan_send_pipe(ct->ch, 0, "pre", 3, p[0], 300), 0, "packet of 3 bytes + 300 from the pipe");
	PUMP_UNTIL(f, chan_send_room(ct->ch) > 0);
	is_int(chan_send(ct->ch, 0, "after", 5), 5, "a packet behind it");
	PUMP_UNTIL(f, st->rxn >= 6 + 50000 + 3 + 300 + 5);
	ok(st->rxn == 6 + 50000 + 3 + 300 + 5, "every byte arrived once (%zu)", st->rxn);
	ok(memcmp(st->rx, "before", 6) == 0, "queued packet first");
	ok(memcmp(st->rx + 6, data, 50000) == 0, "then the pipe data, in order");
	ok(memcmp(st->rx + 50006, "pre", 3) == 0 && memcmp(st->rx + 50009, data + 50000, 300) == 0,
	   "then prefix and pipe payload");
	ok(memcmp(st->rx + 50309, "after", 5) == 0, "then the packet queued behind");
	ok(!f->srv.c.dead, "the peer accepted every packet");
	is_int(chan_send_pipe(ct->ch, 0, NULL, 0, p[0], 0), -EINVAL, "empty payload refused");
	is_int(chan_send_from_pipe(ct->ch, 0, p[0]), -EAGAIN, "empty pipe: -EAGAIN");
	close(p[1]);
	is_int(chan_send_from_pipe(ct->ch, 0, p[0]), 0, "closed pipe: 0 (EOF)");
	close(p[0]);
	free(ct);
	fx_free(f);
}

static void test_out_high(void)
{
	struct conn_cfg cc = { .software = "c", .out_high = 2000 };
	struct conn_cfg sc = { .software = "s", .maxpkt = 500 };
	struct fx *f = fx_new(&sc, &cc);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "open for back-pressure test")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	static uint8_t data[10000];
	fill_pattern(data, sizeof(data), 5);
	ok(conn_can_queue(&f->cli.c), "queue empty: can queue");
	size_t n = chan_send(ct->ch, 0, data, 1500);
	is_int(n, 1500, "1500 bytes under the 2000 mark");
	n = chan_send(ct->ch, 0, data + 1500, 8500);
	ok(n > 0 && n < 8500, "second send stops at the high-water mark (%zu)", n);
	ok(!conn_can_queue(&f->cli.c), "over the mark: cannot queue");
	is_int(chan_send_room(ct->ch), 0, "no room while the queue is over the mark");
	size_t sent = 1500 + n;
	PUMP_UNTIL(f, conn_can_queue(&f->cli.c));
	ok(chan_send_room(ct->ch) > 0, "room back after the queue drained");
	for (int i = 0; i < 100 && sent < sizeof(data); i++) {
		sent += chan_send(ct->ch, 0, data + sent, sizeof(data) - sent);
		pump_once(f, 5);
	}
	PUMP_UNTIL(f, st->rxn >= sizeof(data));
	is_mem(st->rx, st->rxn, data, sizeof(data), "all data intact through back-pressure");
	free(ct);
	fx_free(f);
}

static void test_raw_big_packets(void)
{
	/* A packet of exactly WIRE_MAX_PACKET is read across several reads. */
	struct fx *f = fx_new(NULL, NULL);
	raw_greet(f);
	struct buf pk = pk_begin(MSG_IGNORE);
	uint8_t *w = buf_reserve(&pk, WIRE_MAX_PACKET - 1);
	memset(w, 'i', WIRE_MAX_PACKET - 1);
	buf_commit(&pk, WIRE_MAX_PACKET - 1);
	raw_send(f, &pk);
	pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "yes@test");
	buf_bool(&pk, true);
	raw_send(f, &pk);
	struct buf in;
	buf_init(&in, 1u << 20);
	ok(raw_next(f, &in) && pk_type(&in) == MSG_REQUEST_SUCCESS,
	   "a WIRE_MAX_PACKET IGNORE is accepted and the next packet handled");
	ok(!f->srv.c.dead, "no disconnect for a maximal packet");
	buf_free(&in);

	/* One byte more is refused, as soon as the length is seen. */
	raw_write(f, "\x00\x04\x00\x01", 4);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "262145", "length WIRE_MAX_PACKET+1");
	fx_free(f);
}

/* ---- hostile input via raw bytes ---- */

static void test_raw_window_overflow(void)
{
	struct fx *f = fx_new(NULL, NULL);
	raw_greet(f);
	long sid = raw_open(f, 5, 0xFFFFFF00u, 32768);
	if (!ok(sid >= 0, "raw open confirmed (server id %ld)", sid)) {
		fx_free(f);
		return;
	}
	struct chan *sch = f->srv.acc[0].ch;
	struct buf pk = pk_begin(MSG_CHANNEL_WINDOW_ADJUST);
	buf_u32(&pk, (uint32_t)sid);
	buf_u32(&pk, 0xFF);
	raw_send(f, &pk);
	pump_idle(f, 5);
	ok(!f->srv.c.dead, "adjust to exactly 2^32-1 accepted");
	is_int(sch->rwin, 0xFFFFFFFFu, "window is 2^32-1");
	pk = pk_begin(MSG_CHANNEL_WINDOW_ADJUST);
	buf_u32(&pk, (uint32_t)sid);
	buf_u32(&pk, 1);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "overflow", "window overflow");
	PUMP_UNTIL(f, f->srv.ended);
	is_int(f->srv.ended, 1, "window overflow: ended() called");
	ok(strstr(f->srv.c.reason, "overflow") != NULL, "c->reason set: %s", f->srv.c.reason);
	is_int(f->srv.acc[0].closed, 1, "channel closed() on the way out");
	fx_free(f);

	/* A huge single adjust on a fresh window overflows too. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 1, 32768);
	pk = pk_begin(MSG_CHANNEL_WINDOW_ADJUST);
	buf_u32(&pk, (uint32_t)sid);
	buf_u32(&pk, 0xFFFFFFFFu);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "overflow", "adjust 0xFFFFFFFF on window 1");
	fx_free(f);
}

static void test_raw_data_over_window(void)
{
	struct conn_cfg sc = { .software = "s", .window = 1000 };
	struct fx *f = fx_new(&sc, NULL);
	f->srv.auto_consume = false;
	raw_greet(f);
	long sid = raw_open(f, 0, 65536, 32768);
	if (!ok(sid >= 0, "raw open on a 1000-byte window")) {
		fx_free(f);
		return;
	}
	static uint8_t blob[1001];
	memset(blob, 'w', sizeof(blob));
	struct buf pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_str(&pk, blob, 1000);
	raw_send(f, &pk);
	PUMP_UNTIL(f, f->srv.acc[0].rxn >= 1000 || f->srv.c.dead);
	is_int(f->srv.acc[0].rxn, 1000, "exactly a window of data accepted");
	ok(!f->srv.c.dead, "no disconnect at exactly the window");
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_str(&pk, blob, 1);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "window", "1 byte over the window");
	PUMP_UNTIL(f, f->srv.ended);
	is_int(f->srv.ended, 1, "over window: ended()");
	is_int(f->srv.acc[0].rxn, 1000, "excess byte not delivered");
	fx_free(f);

	/* One packet larger than the whole window. */
	f = fx_new(&sc, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_str(&pk, blob, 1001);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "window", "1001 bytes on a 1000 window");
	is_int(f->srv.acc[0].rxn, 0, "nothing delivered");
	fx_free(f);

	/* Extended data counts against the window too. */
	f = fx_new(&sc, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_EXTENDED_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_u32(&pk, 1);
	buf_str(&pk, blob, 1001);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "window", "1001 stderr bytes on a 1000 window");
	fx_free(f);

	/* Over the advertised max packet, within the window. */
	struct conn_cfg mc = { .software = "s", .maxpkt = 100 };
	f = fx_new(&mc, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_str(&pk, blob, 101);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "maximum packet", "101 bytes over maxpkt 100");
	fx_free(f);
}

/* Make @t take payloads through a pipe, collecting up to @cap bytes. */
static void direct_on(struct tchan *t, size_t cap)
{
	if (pipe2(t->pfd, O_CLOEXEC | O_NONBLOCK) < 0)
		bail_out("pipe2 failed");
	t->big = malloc(cap);
	t->bigcap = cap;
	if (!t->big)
		bail_out("out of memory");
	chan_set_direct(t->ch, true);
}

static void direct_off(struct tchan *t)
{
	close(t->pfd[0]);
	close(t->pfd[1]);
	free(t->big);
	t->big = NULL;
}

/*
 * Big payloads through ops->direct: every byte arrives in order whether
 * spliced or (exact_ask) partly read through data(), and the windows of
 * both ends agree afterwards.
 */
/* refuse: 1 a full pipe, 2 a pipe nobody reads, offered to every other splice. */
static void test_direct(size_t exact_ask, int refuse)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct));
	if (!ok(open_session(f, ct), "direct: open")) {
		free(ct);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0];
	const size_t total = 3u * 1024 * 1024 + 4321; /* not a multiple of any packet size */
	uint8_t *src = malloc(total);
	if (!src)
		bail_out("out of memory");
	fill_pattern(src, total, 9);
	ct->exact_ask = exact_ask;
	ct->refuse_fd = -1;
	int rp[2] = { -1, -1 };
	if (refuse) {
		if (pipe2(rp, O_CLOEXEC | O_NONBLOCK) < 0)
			bail_out("pipe2 failed");
		static const uint8_t junk[4096];
		while (refuse == 1 && write(rp[1], junk, sizeof(junk)) > 0)
			;
		if (refuse == 2) {
			close(rp[0]);
			rp[0] = -1;
		}
		ct->refuse_fd = rp[1];
	}
	direct_on(ct, total + 16);
	size_t sent = 0;
	for (int i = 0; i < 5000 && (sent < total || ct->bign < total); i++) {
		if (sent < total)
			sent += chan_send(st->ch, 0, src + sent, total - sent);
		pump_once(f, 5);
	}
	is_int(sent, total, "direct (exact %zu): all queued", exact_ask);
	is_mem(ct->big, ct->bign, src, total, "direct (exact %zu): bytes intact and in order",
	       exact_ask);
	ok(f->cli.c.dx_spliced > 0, "direct (exact %zu): payload was spliced (%llu bytes)",
	   exact_ask, (unsigned long long)f->cli.c.dx_spliced);
	is_int(ct->piped, f->cli.c.dx_spliced, "direct (exact %zu): handler saw every spliced byte",
	       exact_ask);
	if (exact_ask || refuse)
		ok(ct->piped < total, "direct (exact %zu, refuse %d): some bytes went through data()",
		   exact_ask, refuse);
	pump_idle(f, 5);
	is_int(ct->ch->lwin + ct->ch->lunacked, ct->ch->lwin_max,
	       "direct (exact %zu): receiver window exact", exact_ask);
	is_int(st->ch->rwin, ct->ch->lwin, "direct (exact %zu): sender's view of it agrees",
	       exact_ask);
	ok(!f->srv.c.dead && !f->cli.c.dead, "direct (exact %zu): no protocol error", exact_ask);
	/* Small packets after the bulk still work, with direct on or off. */
	chan_send(st->ch, 0, "tail", 4);
	PUMP_UNTIL(f, ct->bign >= total + 4);
	is_mem(ct->big + total, ct->bign - total, "tail", 4, "direct: small packet after bulk");
	chan_set_direct(ct->ch, false);
	is_int(f->cli.c.ndirect, 0, "direct off: no channel left");
	direct_off(ct);
	if (rp[0] >= 0)
		close(rp[0]);
	if (rp[1] >= 0)
		close(rp[1]);
	free(src);
	free(ct);
	fx_free(f);
}

/* The lagging reader of a held direct pipe: take what it holds, in order. */
static size_t drain(struct tchan *t, uint8_t *dst, size_t *dn, size_t cap)
{
	size_t got = 0;
	for (;;) {
		uint8_t tmp[65536];
		ssize_t k = read(t->pfd[0], tmp, sizeof(tmp));
		if (k <= 0)
			return got;
		if (*dn + (size_t)k <= cap)
			memcpy(dst + *dn, tmp, (size_t)k);
		*dn += (size_t)k;
		got += (size_t)k;
	}
}

/*
 * A direct pipe found full (its reader is behind): the stream is not read,
 * so nothing is copied through data(), until the pipe has room.  A reader
 * that stops for good holds the connection's other channels up once, for
 * CONN_DIRECT_STALL_MS; then its data is queued through data() as before.
 */
static void test_direct_wait(void)
{
	struct fx *f = fx_new(NULL, &cli_cfg_default);
	struct tchan *ct = calloc(1, sizeof(*ct)), *ct2 = calloc(1, sizeof(*ct2));
	if (!ok(open_session(f, ct) && open_session(f, ct2), "direct wait: open")) {
		free(ct);
		free(ct2);
		fx_free(f);
		return;
	}
	struct tchan *st = &f->srv.acc[0], *st2 = &f->srv.acc[1];
	const size_t total = 1u << 20, pipe_sz = 65536;
	uint8_t *src = malloc(total), *got = malloc(total);
	if (!src || !got)
		bail_out("out of memory");
	fill_pattern(src, total, 5);
	direct_on(ct, total);
	ct->hold = true;
	if (fcntl(ct->pfd[1], F_SETPIPE_SZ, (int)pipe_sz) != (int)pipe_sz)
		bail_out("F_SETPIPE_SZ failed");

	/* Packets of 128 KiB: each big enough to be taken directly. */
	const size_t pkt = 128u * 1024;
	size_t sent = 0;
	while (sent < total && chan_send(st->ch, 0, src + sent, pkt) == pkt)
		sent += pkt;
	is_int(sent, total, "direct wait: all queued (the window allows it)");
	pump_idle(f, 20); /* 100 ms: well inside the stall limit */
	ok(f->cli.c.dx_waits > 0, "direct wait: the full pipe stopped the stream (%llu waits)",
	   (unsigned long long)f->cli.c.dx_waits);
	is_int(ct->rxn, 0, "direct wait: nothing copied through data() meanwhile");
	ok(ct->piped < total, "direct wait: only part taken (%zu bytes)", ct->piped);
	ok(f->cli.c.dx_left > 0, "direct wait: the rest of the payload is still in the stream");

	/* The reader catches up: everything comes through the pipe, in order. */
	size_t gn = 0;
	for (int i = 0; i < 2000 && gn < total; i++) {
		drain(ct, got, &gn, total);
		pump_once(f, 5);
	}
	is_mem(got, gn, src, total, "direct wait: bytes intact and in order");
	is_int(ct->rxn, 0, "direct wait: all spliced, none copied");
	ok(!ct->ch->dx_stalled, "direct wait: a reader that keeps up is not marked stalled");

	/* The reader stops for good while another channel has data behind it. */
	const size_t total2 = 2 * pkt;
	ct->bign = 0; /* data() bytes go here from now on; the pipe's are read below */
	uint64_t waits = f->cli.c.dx_waits;
	size_t piped1 = ct->piped;
	is_int(chan_send(st->ch, 0, src, pkt) + chan_send(st->ch, 0, src + pkt, pkt), total2,
	       "direct stall: queued");
	pump_idle(f, 5);
	chan_send(st2->ch, 0, "ping", 4);
	PUMP_UNTIL(f, ct2->rxn >= 4);
	is_mem(ct2->rx, ct2->rxn, "ping", 4, "direct stall: the other channel's data arrives");
	ok(f->cli.c.dx_waits > waits, "direct stall: it had waited");
	ok(ct->ch->dx_stalled, "direct stall: the channel is marked stalled");
	PUMP_UNTIL(f, ct->piped + ct->bign >= total2);
	ok(ct->bign > 0, "direct stall: its data came through data() (%zu bytes)", ct->bign);
	gn = 0;
	drain(ct, got, &gn, total);
	is_int(gn, ct->piped - piped1, "direct stall: the pipe holds what was spliced");
	if (gn + ct->bign == total2 && gn <= total) {
		ok(memcmp(got, src, gn) == 0 && memcmp(ct->big, src + gn, ct->bign) == 0,
		   "direct stall: pipe bytes then data() bytes, in order");
	} else {
		ok(false, "direct stall: %zu piped + %zu copied, expected %zu", gn, ct->bign, total2);
	}
	pump_idle(f, 5);
	is_int(ct->ch->lwin + ct->ch->lunacked, ct->ch->lwin_max, "direct wait: receiver window exact");
	ok(!f->srv.c.dead && !f->cli.c.dead, "direct wait: no protocol error");
	direct_off(ct);
	free(src);
	free(got);
	free(ct);
	free(ct2);
	fx_free(f);
}

/* A big CHANNEL_DATA header from a raw peer to a direct channel. */
static struct fx *raw_direct(const struct conn_cfg *sc, uint32_t len, uint32_t dlen, size_t body,
			     long *sid)
{
	struct fx *f = fx_new(sc, NULL);
	raw_greet(f);
	*sid = raw_open(f, 0, 65536, 32768);
	if (*sid < 0)
		return f;
	direct_on(&f->srv.acc[0], 1u << 20);
	uint8_t h[13];
	put_be32(h, len);
	h[4] = MSG_CHANNEL_DATA;
	put_be32(h + 5, (uint32_t)*sid);
	put_be32(h + 9, dlen);
	raw_write(f, h, sizeof(h));
	static uint8_t blob[256 * 1024];
	memset(blob, 'd', sizeof(blob));
	raw_write(f, blob, body);
	return f;
}

static void test_raw_direct(void)
{
	struct conn_cfg sc = { .software = "s", .window = 200000 };
	long sid;
	/* Length and data length disagree. */
	struct fx *f = raw_direct(&sc, 9 + 100000, 99999, 1000, &sid);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "malformed", "direct: length mismatch");
	is_int(f->srv.acc[0].bign, 0, "direct: nothing delivered from a malformed packet");
	direct_off(&f->srv.acc[0]);
	fx_free(f);

	/* Over the window (200000), under the maximum packet. */
	f = raw_direct(&sc, 9 + 210000, 210000, 1000, &sid);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "window", "direct: over the window");
	is_int(f->srv.acc[0].bign, 0, "direct: nothing delivered over the window");
	direct_off(&f->srv.acc[0]);
	fx_free(f);

	/* Over WIRE_MAX_PACKET: the ordinary check still answers. */
	f = raw_direct(&sc, WIRE_MAX_PACKET + 1, WIRE_MAX_PACKET - 8, 10, &sid);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "exceeds", "direct: over the packet limit");
	direct_off(&f->srv.acc[0]);
	fx_free(f);

	/* A well-formed packet arriving in pieces, then an EOF. */
	f = raw_direct(&sc, 9 + 150000, 150000, 70000, &sid);
	struct tchan *t = &f->srv.acc[0];
	PUMP_UNTIL(f, t->bign >= 70000);
	ok(conn_partial_input(&f->srv.c), "direct: a packet half in the stream is partial input");
	static uint8_t rest[80000];
	memset(rest, 'd', sizeof(rest));
	raw_write(f, rest, sizeof(rest));
	struct buf pk = pk_begin(MSG_CHANNEL_EOF);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	PUMP_UNTIL(f, t->eofs);
	is_int(t->bign, 150000, "direct: whole payload delivered");
	ok(t->piped > 0, "direct: spliced from a raw peer's packet");
	is_int(t->eofs, 1, "direct: EOF after it parsed");
	ok(!f->srv.c.dead, "direct: no protocol error");
	direct_off(t);
	fx_free(f);

	/* Peer hangs up mid-payload: the connection ends cleanly. */
	f = raw_direct(&sc, 9 + 150000, 150000, 90000, &sid);
	t = &f->srv.acc[0];
	PUMP_UNTIL(f, t->bign >= 90000);
	shutdown(f->sp[1], SHUT_WR);
	PUMP_UNTIL(f, f->srv.ended);
	is_int(f->srv.ended, 1, "direct: hang-up mid-payload ends the connection");
	is_int(t->bign, 90000, "direct: what arrived was delivered, nothing more");
	direct_off(t);
	fx_free(f);
}

static void test_raw_forbidden_types(void)
{
	static const uint8_t types[] = { 20, 21, 5, 6, 50, 60, 7, 30, 128, 255, 0 };
	for (size_t i = 0; i < sizeof(types); i++) {
		struct fx *f = fx_new(NULL, NULL);
		raw_greet(f);
		struct buf pk = pk_begin(types[i]);
		for (int k = 0; k < 16; k++)
			buf_u8(&pk, (uint8_t)k);
		raw_send(f, &pk);
		char what[64], needle[16];
		snprintf(what, sizeof(what), "message type %u", (unsigned)types[i]);
		snprintf(needle, sizeof(needle), "%u", (unsigned)types[i]);
		raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, needle, what);
		PUMP_UNTIL(f, f->srv.ended);
		is_int(f->srv.ended, 1, "%s: ended() called", what);
		ok(strstr(f->srv.c.reason, needle) != NULL, "%s: c->reason [%s]", what,
		   f->srv.c.reason);
		fx_free(f);
	}
}

static void test_raw_close_gets_close(void)
{
	struct fx *f = fx_new(NULL, NULL);
	raw_greet(f);
	long sid = raw_open(f, 42, 65536, 32768);
	if (!ok(sid >= 0, "raw open for CLOSE test")) {
		fx_free(f);
		return;
	}
	struct buf pk = pk_begin(MSG_CHANNEL_CLOSE);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	struct buf in;
	buf_init(&in, 1u << 20);
	bool got = raw_next(f, &in);
	ok(got && pk_type(&in) == MSG_CHANNEL_CLOSE, "CLOSE answered with CLOSE (type %d)",
	   pk_type(&in));
	ok(buf_used(&in) == 5 && get_be32(buf_data(&in) + 1) == 42, "CLOSE names our channel 42");
	PUMP_UNTIL(f, f->srv.acc[0].closed);
	is_int(f->srv.acc[0].closed, 1, "server closed() once");
	is_int(f->srv.c.nopen, 0, "server slot freed");
	ok(!f->srv.c.dead, "connection alive after a channel CLOSE");

	/* A second CLOSE for the same (now free) channel is a protocol error. */
	pk = pk_begin(MSG_CHANNEL_CLOSE);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "not open", "CLOSE of a closed channel");
	buf_free(&in);
	fx_free(f);

	/* Peer CLOSE after its EOF and our EOF: still exactly one CLOSE back. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 7, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_EOF);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	PUMP_UNTIL(f, f->srv.acc[0].eofs);
	chan_send_eof(f->srv.acc[0].ch);
	pk = pk_begin(MSG_CHANNEL_CLOSE);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	buf_init(&in, 1u << 20);
	got = raw_next(f, &in);
	ok(got && pk_type(&in) == MSG_CHANNEL_EOF, "our EOF first");
	got = raw_next(f, &in);
	ok(got && pk_type(&in) == MSG_CHANNEL_CLOSE, "then CLOSE in answer to the peer's");
	pump_idle(f, 3);
	raw_recv(f);
	ok(!raw_take(f, &in), "nothing more (a single CLOSE)");
	is_int(f->srv.acc[0].eofs, 1, "eof() once");
	is_int(f->srv.acc[0].closed, 1, "closed() once");
	buf_free(&in);
	fx_free(f);
}

static void test_raw_peer_disconnect(void)
{
	struct fx *f = fx_new(NULL, NULL);
	raw_greet(f);
	long sid = raw_open(f, 0, 65536, 32768);
	ok(sid >= 0, "raw open before DISCONNECT");
	struct buf pk = pk_begin(MSG_DISCONNECT);
	buf_u32(&pk, DISC_BY_APPLICATION);
	buf_cstr(&pk, "bye\x01now");
	buf_cstr(&pk, "");
	raw_send(f, &pk);
	PUMP_UNTIL(f, f->srv.ended);
	is_int(f->srv.ended, 1, "peer DISCONNECT: ended() called once");
	ok(f->srv.c.reason[0] != 0, "c->reason set: %s", f->srv.c.reason);
	ok(strstr(f->srv.c.reason, "bye?now") != NULL, "reason carries the peer's text, sanitised");
	is_int(f->srv.acc[0].closed, 1, "channel closed() before the end");
	ok(f->srv.acc[0].closed_seq < f->srv.ended_seq, "closed() before ended()");
	pump_idle(f, 3);
	raw_recv(f);
	struct buf in;
	buf_init(&in, 1u << 20);
	ok(!raw_take(f, &in), "nothing sent back after the peer's DISCONNECT");
	buf_free(&in);
	fx_free(f);

	/* The peer just closing the socket ends the connection too. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	shutdown(f->sp[1], SHUT_WR);
	PUMP_UNTIL(f, f->srv.ended);
	is_int(f->srv.ended, 1, "peer EOF: ended()");
	ok(strstr(f->srv.c.reason, "closed") != NULL, "peer EOF reason: %s", f->srv.c.reason);
	is_int(f->srv.acc[0].closed, 1, "peer EOF: channel closed()");
	fx_free(f);
}

static void test_raw_misc(void)
{
	/* Stale bytes before the greeting are discarded; IGNORE/DEBUG are fine. */
	struct fx *f = fx_new(NULL, NULL);
	raw_write(f, "stale\x00\xff junk SSHCONN\r\n", 22);
	raw_greet(f);
	struct buf pk = pk_begin(MSG_IGNORE);
	buf_cstr(&pk, "padding");
	raw_send(f, &pk);
	pk = pk_begin(MSG_DEBUG);
	buf_bool(&pk, false);
	buf_cstr(&pk, "dbg");
	buf_cstr(&pk, "");
	raw_send(f, &pk);
	/* Unknown connection-layer number: UNIMPLEMENTED with its sequence number. */
	pk = pk_begin(110);
	buf_u32(&pk, 1);
	raw_send(f, &pk);
	struct buf in;
	buf_init(&in, 1u << 20);
	bool got = raw_next(f, &in);
	ok(got && pk_type(&in) == MSG_UNIMPLEMENTED, "type 110 gets UNIMPLEMENTED (%d)",
	   pk_type(&in));
	ok(buf_used(&in) == 5 && get_be32(buf_data(&in) + 1) == 2,
	   "UNIMPLEMENTED names sequence number 2 (third packet)");
	is_int(f->srv.greeted, 1, "greeting found after stale bytes");
	long sid = raw_open(f, 0, 65536, 32768);
	ok(sid >= 0, "connection works after stale bytes/IGNORE/DEBUG/unknown");
	ok(!f->srv.c.dead, "no disconnect");
	buf_free(&in);
	fx_free(f);

	/* Zero-length packet. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	raw_write(f, "\0\0\0\0", 4);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "zero", "zero-length packet");
	fx_free(f);

	/* Oversized length field. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	raw_write(f, "\xff\xff\xff\xff", 4);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "4294967295", "length 0xFFFFFFFF");
	fx_free(f);

	/* Data for a channel that was never opened. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, 3);
	buf_cstr(&pk, "x");
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "not open", "data for channel 3");
	fx_free(f);

	/* Trailing garbage in a fixed-size message. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_EOF);
	buf_u32(&pk, (uint32_t)sid);
	buf_u8(&pk, 0);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "malformed", "EOF with a trailing byte");
	fx_free(f);

	/* Data after the peer's own EOF. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_EOF);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_cstr(&pk, "late");
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "EOF", "data after EOF");
	fx_free(f);

	/* A reply with no request outstanding. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_SUCCESS);
	buf_u32(&pk, (uint32_t)sid);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "no request", "unsolicited CHANNEL_SUCCESS");
	fx_free(f);

	/* CHANNEL_OPEN with max packet 0. */
	f = fx_new(NULL, NULL);
	raw_greet(f);
	pk = pk_begin(MSG_CHANNEL_OPEN);
	buf_cstr(&pk, "session");
	buf_u32(&pk, 0);
	buf_u32(&pk, 1000);
	buf_u32(&pk, 0);
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "zero maximum packet", "open with maxpkt 0");
	is_int(f->srv.nacc, 0, "open handler not called for a bad open");
	fx_free(f);

	/* Over-long greeting line. */
	f = fx_new(NULL, NULL);
	char line[400];
	memcpy(line, WIRE_GREETING_PREFIX, sizeof(WIRE_GREETING_PREFIX) - 1);
	memset(line + sizeof(WIRE_GREETING_PREFIX) - 1, 'v', 300);
	raw_write(f, line, sizeof(WIRE_GREETING_PREFIX) - 1 + 300);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "greeting", "over-long greeting");
	fx_free(f);
}

/* ---- ports: greetings of hosts that are gone (greet_after_peer) ---- */

static const struct conn_cfg port_cfg = { .software = "port", .greet_after_peer = true };

static void raw_greet_as(struct fx *f, const char *software)
{
	struct buf g;
	buf_init(&g, 1024);
	wire_put_greeting(&g, software);
	raw_write(f, buf_data(&g), buf_used(&g));
	buf_free(&g);
}

/* A whole packet (length + payload) appended to @out; @pk is freed. */
static void pk_append(struct buf *out, struct buf *pk)
{
	buf_u32(out, (uint32_t)buf_used(pk));
	buf_put(out, buf_data(pk), buf_used(pk));
	buf_free(pk);
}

static void put_open(struct buf *out, uint32_t id)
{
	struct buf pk = pk_begin(MSG_CHANNEL_OPEN);
	buf_cstr(&pk, "session");
	buf_u32(&pk, id);
	buf_u32(&pk, 65536);
	buf_u32(&pk, 32768);
	pk_append(out, &pk);
}

static void put_disconnect(struct buf *out, const char *why)
{
	struct buf pk = pk_begin(MSG_DISCONNECT);
	buf_u32(&pk, DISC_BY_APPLICATION);
	buf_cstr(&pk, why);
	buf_cstr(&pk, "");
	pk_append(out, &pk);
}

/* Count the OPEN_CONFIRMATIONs the server sends within a few rounds. */
static int count_confirmations(struct fx *f)
{
	struct buf in;
	buf_init(&in, 1u << 20);
	int n = 0;
	pump_idle(f, 5);
	raw_recv(f);
	while (raw_take(f, &in))
		n += pk_type(&in) == MSG_CHANNEL_OPEN_CONFIRMATION;
	buf_free(&in);
	return n;
}

static void test_port_stale_greetings(void)
{
	/* Three hosts' bytes in one read: only the last greeting is answered. */
	struct fx *f = fx_new(&port_cfg, NULL);
	struct buf w;
	buf_init(&w, 1u << 20);
	wire_put_greeting(&w, "dead1");
	put_open(&w, 0);
	wire_put_greeting(&w, "dead2");
	put_open(&w, 0);
	wire_put_greeting_ex(&w, "live", "nonce@wicket=abc");
	put_open(&w, 0);
	raw_write(f, buf_data(&w), buf_used(&w));
	buf_free(&w);
	is_int(count_confirmations(f), 1, "one OPEN_CONFIRMATION: the stale opens were skipped");
	is_int(f->srv.greeted, 1, "greeted once");
	is_str(f->srv.c.peer_version, "live nonce@wicket=abc", "the last host's greeting was taken");
	is_int(f->srv.c.skips.later, 2, "two greetings skipped for a later one");
	ok(strstr(f->rgreeting, "reply@wicket=abc\r\n") != NULL, "our greeting names the host: %s",
	   f->rgreeting);
	fx_free(f);

	/* A host that gave up: its DISCONNECT is already behind its greeting. */
	f = fx_new(&port_cfg, NULL);
	buf_init(&w, 1u << 20);
	wire_put_greeting(&w, "gaveup");
	put_open(&w, 0);
	put_disconnect(&w, "client gave up");
	raw_write(f, buf_data(&w), buf_used(&w));
	pump_idle(f, 5);
	raw_recv(f);
	is_int(buf_used(&f->rin), 0, "nothing sent to a host that had already disconnected");
	ok(!f->srv.c.greeted && !f->srv.c.ended, "still waiting for a greeting");
	is_int(f->srv.c.skips.over, 1, "one greeting skipped with its DISCONNECT");
	ok(f->srv.c.skips.bytes == buf_used(&w), "all its bytes counted as discarded (%llu of %zu)",
	   (unsigned long long)f->srv.c.skips.bytes, buf_used(&w));
	buf_free(&w);
	raw_greet_as(f, "next");
	is_int(raw_open(f, 0, 65536, 32768), 0, "the next host gets a session");
	ok(strstr(f->rgreeting, "reply@wicket=-\r\n") != NULL,
	   "an untagged host is answered with reply@wicket=-: %s", f->rgreeting);
	fx_free(f);

	/* Half a greeting, then a whole one (a host killed while greeting). */
	f = fx_new(&port_cfg, NULL);
	raw_write(f, WIRE_GREETING_PREFIX "hal", sizeof(WIRE_GREETING_PREFIX) - 1 + 3);
	raw_greet_as(f, "whole");
	is_int(raw_open(f, 0, 65536, 32768), 0, "a session after a cut-off greeting");
	is_str(f->srv.c.peer_version, "whole", "the whole greeting was taken");
	fx_free(f);

	/* Over-long greeting lines on a port are garbage, not an error. */
	f = fx_new(&port_cfg, NULL);
	char line[400];
	memcpy(line, WIRE_GREETING_PREFIX, sizeof(WIRE_GREETING_PREFIX) - 1);
	memset(line + sizeof(WIRE_GREETING_PREFIX) - 1, 'v', 300);
	raw_write(f, line, sizeof(WIRE_GREETING_PREFIX) - 1 + 300);
	pump_idle(f, 3);
	ok(!f->srv.c.dead, "an over-long line does not end a port's session");
	raw_write(f, "\n", 1);
	raw_greet_as(f, "after-long");
	is_int(raw_open(f, 0, 65536, 32768), 0, "the next greeting gets a session");
	fx_free(f);
}

static void test_port_restart(void)
{
	/* A greeting where a packet should start: the session is handed over. */
	struct fx *f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	is_int(raw_open(f, 0, 65536, 32768), 0, "old host's session");
	raw_greet_as(f, "new");
	PUMP_UNTIL(f, f->srv.ended);
	ok(f->srv.ended && f->srv.c.restarted, "ended as a restart");
	raw_recv(f);
	struct buf in;
	buf_init(&in, 1u << 20);
	ok(!raw_take(f, &in), "no DISCONNECT sent for the old host");
	uint8_t tail[512];
	size_t n = conn_resync_tail(&f->srv.c, tail, sizeof(tail));
	const size_t plen = sizeof(WIRE_GREETING_PREFIX) - 1;
	ok(n == plen + 5 && memcmp(tail, WIRE_GREETING_PREFIX "new\r\n", n) == 0,
	   "the carried bytes are the new greeting, nothing older (%zu)", n);
	fx_free(f);

	/* Only four bytes of it so far are enough: no packet starts with 'S'. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	raw_open(f, 0, 65536, 32768);
	raw_write(f, "SSH", 3);
	pump_idle(f, 3);
	ok(!f->srv.c.dead, "three bytes: not yet");
	raw_write(f, "C", 1);
	PUMP_UNTIL(f, f->srv.ended);
	ok(f->srv.c.restarted, "four bytes of a prefix where a length should be: restart");
	fx_free(f);

	/* Garbage starting with 'S' is still a protocol error, with DISCONNECT. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	raw_open(f, 0, 65536, 32768);
	raw_write(f, "SSX\1", 4);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "exceeds", "'SSX' where a length should be");
	ok(!f->srv.c.restarted && f->srv.c.broke, "a protocol error, not a restart");
	buf_free(&in);
	fx_free(f);
}

static void test_port_partial_greeting(void)
{
	struct fx *f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	long sid = raw_open(f, 0, 65536, 32768);
	/* A dead host's packet announcing 100 bytes, 10 of them sent. */
	raw_write(f, "\0\0\0\x64\x5e\0\0\0\0\0", 10);
	pump_idle(f, 3);
	ok(conn_partial_input(&f->srv.c) && !conn_partial_greeting(&f->srv.c),
	   "half a packet: partial, no greeting in it");
	raw_write(f, WIRE_GREETING_PREFIX "ne", sizeof(WIRE_GREETING_PREFIX) - 1 + 2);
	pump_idle(f, 3);
	ok(!conn_partial_greeting(&f->srv.c), "a greeting line not yet ended: not yet");
	struct buf w;
	buf_init(&w, 1024);
	put_open(&w, 0);
	raw_write(f, "w\r\n", 3);
	raw_write(f, buf_data(&w), 9);
	pump_idle(f, 3);
	ok(!conn_partial_greeting(&f->srv.c), "greeting and half a CHANNEL_OPEN: not yet");
	raw_write(f, buf_data(&w) + 9, buf_used(&w) - 9);
	pump_idle(f, 3);
	ok(conn_partial_greeting(&f->srv.c), "greeting and a whole CHANNEL_OPEN: a host waiting");
	ok(!f->srv.c.dead, "the caller decides when to believe it");
	conn_restart(&f->srv.c, "test");
	PUMP_UNTIL(f, f->srv.ended);
	ok(f->srv.c.restarted, "conn_restart() ends it");
	uint8_t tail[512];
	size_t n = conn_resync_tail(&f->srv.c, tail, sizeof(tail));
	ok(n == 10 + sizeof(WIRE_GREETING_PREFIX) - 1 + 5 + buf_used(&w),
	   "half packet, greeting and open carried (%zu)", n);
	buf_free(&w);
	fx_free(f);

	/* An unfinished data packet quoting a greeting line among other text. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	raw_open(f, 0, 65536, 32768);
	static const char quote[] = "\0\0\x10\0\x5e\0\0\0\0\0\0\x0f\xf7 see: " WIRE_GREETING_PREFIX
				    "x\r\nand more text";
	raw_write(f, quote, sizeof(quote) - 1);
	pump_idle(f, 3);
	ok(conn_partial_input(&f->srv.c) && !conn_partial_greeting(&f->srv.c),
	   "a quoted greeting followed by text is no waiting host");
	fx_free(f);

	/* Data that quotes a greeting, in whole packets, changes nothing. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	sid = raw_open(f, 0, 65536, 32768);
	struct buf pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, (uint32_t)sid);
	buf_cstr(&pk, "x" WIRE_GREETING_PREFIX "quoted\r\n");
	raw_send(f, &pk);
	PUMP_UNTIL(f, f->srv.acc[0].rxn > 0);
	ok(!conn_partial_greeting(&f->srv.c) && !f->srv.c.dead, "quoted greeting in data: no effect");
	is_int(f->srv.acc[0].rxn, 1 + sizeof(WIRE_GREETING_PREFIX) - 1 + 8, "the data arrived");
	/* A normal end carries nothing parsed: the quote is not rescanned. */
	buf_init(&w, 1024);
	put_disconnect(&w, "bye");
	raw_write(f, buf_data(&w), buf_used(&w));
	buf_free(&w);
	PUMP_UNTIL(f, f->srv.ended);
	uint8_t tail2[512];
	is_int(conn_resync_tail(&f->srv.c, tail2, sizeof(tail2)), 0,
	       "after a DISCONNECT nothing is carried");
	fx_free(f);

	/* A broken session carries what it parsed last too. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	sid = raw_open(f, 0, 65536, 32768);
	pk = pk_begin(MSG_CHANNEL_DATA);
	buf_u32(&pk, 77); /* not open */
	buf_cstr(&pk, "SSHCONNEC");
	raw_send(f, &pk);
	raw_expect_disconnect(f, DISC_PROTOCOL_ERROR, "not open", "data for channel 77");
	n = conn_resync_tail(&f->srv.c, tail2, sizeof(tail2));
	ok(n > 9 && memmem(tail2, n, "SSHCONNEC", 9) != NULL,
	   "the breaking packet is carried for rescanning (%zu bytes)", n);
	fx_free(f);
}

static void test_port_cut_disconnect(void)
{
	/* The last host's DISCONNECT lost its tail; the next host's greeting
	 * completes it.  The greeting must survive for the next session. */
	struct fx *f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	raw_open(f, 0, 65536, 32768);
	struct buf w;
	buf_init(&w, 1024);
	put_disconnect(&w, "session finished");
	raw_write(f, buf_data(&w), 13); /* up to the reason's length */
	buf_free(&w);
	raw_greet_as(f, "next");
	PUMP_UNTIL(f, f->srv.ended);
	ok(f->srv.c.broke, "a malformed DISCONNECT counts as a break");
	uint8_t tail[1024];
	size_t n = conn_resync_tail(&f->srv.c, tail, sizeof(tail));
	size_t at = wire_find_greeting(tail, n);
	ok(at < n && n - at >= sizeof(WIRE_GREETING_PREFIX) - 1 + 6 &&
	       memcmp(tail + at, WIRE_GREETING_PREFIX "next\r\n", sizeof(WIRE_GREETING_PREFIX) - 1 + 6) == 0,
	   "the whole greeting is in the carried bytes (%zu at %zu)", n, at);
	fx_free(f);

	/* A well-formed DISCONNECT carries nothing. */
	f = fx_new(&port_cfg, NULL);
	raw_greet_as(f, "old");
	buf_init(&w, 1024);
	put_disconnect(&w, "session finished");
	raw_write(f, buf_data(&w), buf_used(&w));
	buf_free(&w);
	PUMP_UNTIL(f, f->srv.ended);
	ok(!f->srv.c.broke, "a whole DISCONNECT is a normal end");
	is_int(conn_resync_tail(&f->srv.c, tail, sizeof(tail)), 0, "nothing carried");
	fx_free(f);
}

static void test_host_nonce(void)
{
	/* The host side skips an answer meant for another host. */
	struct conn_cfg hc = { .software = "host", .nonce = "n1" };
	struct fx *f = fx_new(&hc, NULL);
	pump_idle(f, 2);
	raw_recv(f);
	struct buf in;
	buf_init(&in, 1u << 20);
	raw_take(f, &in);
	ok(strstr(f->rgreeting, "host nonce@wicket=n1\r\n") != NULL, "our greeting has the nonce: %s",
	   f->rgreeting);
	struct buf w;
	buf_init(&w, 1u << 20);
	wire_put_greeting_ex(&w, "agent", "reply@wicket=other");
	struct buf pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "yes@test");
	buf_bool(&pk, true);
	pk_append(&w, &pk);
	wire_put_greeting_ex(&w, "agent", "reply@wicket=-");
	wire_put_greeting_ex(&w, "agent", "reply@wicket=n1");
	pk = pk_begin(MSG_GLOBAL_REQUEST);
	buf_cstr(&pk, "yes@test");
	buf_bool(&pk, true);
	pk_append(&w, &pk);
	raw_write(f, buf_data(&w), buf_used(&w));
	buf_free(&w);
	PUMP_UNTIL(f, f->srv.global_reqs > 0);
	is_int(f->srv.global_reqs, 1, "only the packet after our own answer was handled");
	is_str(f->srv.c.peer_version, "agent reply@wicket=n1", "our answer taken");
	is_int(f->srv.c.skips.foreign, 2, "two answers for other hosts skipped");
	fx_free(f);

	/* A peer that does not answer nonces (psusan, a socket agent) is taken as is. */
	f = fx_new(&hc, NULL);
	raw_greet_as(f, "psusan");
	pump_idle(f, 3);
	is_int(f->srv.greeted, 1, "untagged greeting accepted by a host with a nonce");
	buf_free(&in);
	fx_free(f);
}


/* Slow line (tx_maxpkt): each channel ready in a loop round queues one packet. */
static void test_slow_round_robin(void)
{
	struct conn_cfg cc = { .software = "c", .out_high = 2000, .tx_maxpkt = 500 };
	struct conn_cfg sc = { .software = "s" };
	struct fx *f = fx_new(&sc, &cc);
	struct tchan *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	if (!ok(open_session(f, a) && open_session(f, b), "two sessions on a slow line")) {
		free(a);
		free(b);
		fx_free(f);
		return;
	}
	static uint8_t data[4000];
	fill_pattern(data, sizeof(data), 9);
	pump_once(f, 0); /* a new round */
	ok(chan_send_room(a->ch) > 0 && chan_send_room(b->ch) > 0, "both have room this round");
	is_int(chan_send(a->ch, 0, data, sizeof(data)), 500, "the first takes one packet");
	is_int(chan_send_room(a->ch), 0, "and no more this round");
	is_int(chan_send(b->ch, 0, data, sizeof(data)), 500, "the second still gets its packet");
	pump_once(f, 0);
	ok(chan_send_room(a->ch) > 0, "the next round: room again");
	size_t sa = 500, sb = 500;
	for (int i = 0; i < 400 && (sa < sizeof(data) || sb < sizeof(data)); i++) {
		sa += chan_send(a->ch, 0, data + sa, sizeof(data) - sa);
		sb += chan_send(b->ch, 0, data + sb, sizeof(data) - sb);
		pump_once(f, 5);
	}
	PUMP_UNTIL(f, f->srv.acc[0].rxn >= sizeof(data) && f->srv.acc[1].rxn >= sizeof(data));
	is_mem(f->srv.acc[0].rx, f->srv.acc[0].rxn, data, sizeof(data), "first channel intact");
	is_mem(f->srv.acc[1].rx, f->srv.acc[1].rxn, data, sizeof(data), "second channel intact");
	free(a);
	free(b);
	fx_free(f);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * On a pty (no TIOCOUTQ to watch) with a line rate, what reaches the other
 * end grows at that rate plus one CONN_LINE_QUEUE (1024), not at once.
 */
static void test_pty_rate_pace(void)
{
	const unsigned rate = 4000;
	struct conn_cfg sc = { .software = "s", .line_rate = rate, .tx_maxpkt = 512,
			       .out_high = 1024 };
	struct fx *f = fx_new_pty(&sc);
	ok(f->srv.c.rate_pace, "a pty slave with a line rate is paced by the rate");
	raw_greet(f);
	long sid = raw_open(f, 1, 1u << 20, 32768);
	if (!ok(sid >= 0, "session opened over the pty")) {
		fx_free(f);
		return;
	}
	struct chan *ch = f->srv.acc[0].ch;
	static uint8_t data[16000];
	fill_pattern(data, sizeof(data), 3);
	raw_recv(f);
	size_t base = buf_used(&f->rin), sent = 0;
	double t0 = now_s(), el = 0;
	while ((el = now_s() - t0) < 0.6) {
		sent += chan_send(ch, 0, data + sent, sizeof(data) - sent);
		pump_once(f, 5);
		raw_recv(f);
	}
	size_t got = buf_used(&f->rin) - base;
	double bound = 1024 + rate * el * 1.3 + 256;
	ok(got > 1000 && got <= bound, "%zu bytes crossed in %.2f s at %u B/s (bound %.0f; "
	   "%zu queued)", got, el, rate, bound, sent);
	fx_free(f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_level = LOG_ERR; /* protocol errors are expected here; keep stderr quiet */
	test_open_confirm();
	test_open_unknown();
	test_data_both_ways();
	test_window();
	test_maxpkt();
	test_eof_close();
	test_requests();
	test_disconnect_two_conns();
	test_global_request();
	test_send_from_fd();
	test_send_from_pipe();
	test_out_high();
	test_raw_big_packets();
	test_raw_window_overflow();
	test_raw_data_over_window();
	test_direct(0, 0);
	test_direct(7, 0);
	signal(SIGPIPE, SIG_IGN); /* as in wicketd: a closed pipe is EPIPE */
	test_direct(0, 1);
	test_direct(0, 2);
	test_direct_wait();
	test_raw_direct();
	test_raw_forbidden_types();
	test_raw_close_gets_close();
	test_raw_peer_disconnect();
	test_raw_misc();
	test_port_stale_greetings();
	test_port_restart();
	test_port_partial_greeting();
	test_port_cut_disconnect();
	test_host_nonce();
	test_slow_round_robin();
	test_pty_rate_pace();
	return done_testing();
}
