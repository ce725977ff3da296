/* SPDX-License-Identifier: MIT */
/* The mux's translation table (see mux_core.h). */
#include "mux_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define SCRATCH_MAX 4096

void mux_core_init(struct mux_core *m, const struct mux_io *io, void *ctx)
{
	memset(m, 0, sizeof(*m));
	m->io = io;
	m->ctx = ctx;
	buf_init(&m->scratch, SCRATCH_MAX);
}

static void greq_clear(struct mux_greq *e)
{
	free(e->addr);
	free(e->reply);
	memset(e, 0, sizeof(*e));
}

void mux_core_free(struct mux_core *m)
{
	for (unsigned i = 0; i < m->gq_n; i++)
		greq_clear(&m->greq[(m->gq_head + i) % MUX_MAX_GREQ]);
	for (unsigned i = 0; i < m->nfwd; i++)
		free(m->fwd[i].addr);
	free(m->ch);
	buf_free(&m->scratch);
	memset(m, 0, sizeof(*m));
}

/* ---- output ---- */

static void to_client(struct mux_core *m, unsigned cl, const uint8_t *p, size_t n)
{
	m->cl[cl].tx += n;
	m->io->to_client(m->ctx, cl, p, n);
}

/* A small message built in scratch: begin, fields, then send. */
static struct buf *msg_begin(struct mux_core *m, uint8_t type)
{
	buf_reset(&m->scratch);
	buf_u8(&m->scratch, type);
	return &m->scratch;
}

static void msg_to_guest(struct mux_core *m)
{
	if (!m->scratch.err)
		m->io->to_guest(m->ctx, buf_data(&m->scratch), buf_used(&m->scratch));
}

static void msg_to_client(struct mux_core *m, unsigned cl)
{
	if (!m->scratch.err)
		to_client(m, cl, buf_data(&m->scratch), buf_used(&m->scratch));
}

static void open_failure(struct mux_core *m, uint32_t rid, uint32_t reason, const char *why,
			 int cl)
{
	struct buf *b = msg_begin(m, MSG_CHANNEL_OPEN_FAILURE);
	buf_u32(b, rid);
	buf_u32(b, reason);
	buf_cstr(b, why);
	buf_cstr(b, "");
	if (cl < 0)
		msg_to_guest(m);
	else
		msg_to_client(m, (unsigned)cl);
}

__attribute__((format(printf, 3, 4))) static int client_fail(struct mux_core *m, unsigned cl,
							      const char *fmt, ...)
{
	char why[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	m->cl[cl].failed = true;
	m->io->client_fail(m->ctx, cl, why);
	return -1;
}

__attribute__((format(printf, 2, 3))) static int guest_fail(struct mux_core *m, const char *fmt,
							     ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- the channel table ---- */

static int chan_alloc(struct mux_core *m)
{
	for (uint32_t i = 0; i < m->nch; i++)
		if (m->ch[i].state == MC_FREE)
			return (int)i;
	if (m->nch >= MUX_MAX_CHANNELS)
		return -1;
	uint32_t n = m->nch ? m->nch * 2 : 16;
	if (n > MUX_MAX_CHANNELS)
		n = MUX_MAX_CHANNELS;
	struct mux_chan *t = realloc(m->ch, n * sizeof(*t));
	if (!t)
		return -1;
	memset(t + m->nch, 0, (n - m->nch) * sizeof(*t));
	m->ch = t;
	int id = (int)m->nch;
	m->nch = n;
	return id;
}

static struct mux_chan *chan_new(struct mux_core *m, uint32_t owner, enum mux_cstate st,
				 uint32_t *id)
{
	int i = chan_alloc(m);
	if (i < 0)
		return NULL;
	struct mux_chan *c = &m->ch[i];
	*c = (struct mux_chan){ .state = (uint8_t)st, .owner = owner };
	m->nlive++;
	m->cl[owner].nchan++;
	*id = (uint32_t)i;
	return c;
}

static void chan_release(struct mux_core *m, struct mux_chan *c)
{
	if (!c->orphan && m->cl[c->owner].nchan)
		m->cl[c->owner].nchan--;
	memset(c, 0, sizeof(*c));
	m->nlive--;
}

uint32_t mux_core_channels(const struct mux_core *m, uint32_t cl)
{
	return cl == MUX_NONE ? m->nlive : m->cl[cl].nchan;
}

/* ---- global requests ---- */

static struct mux_greq *greq_push(struct mux_core *m)
{
	if (m->gq_n >= MUX_MAX_GREQ)
		return NULL;
	struct mux_greq *e = &m->greq[(m->gq_head + m->gq_n++) % MUX_MAX_GREQ];
	memset(e, 0, sizeof(*e));
	return e;
}

static void send_cancel(struct mux_core *m, bool streamlocal, const char *addr, uint32_t port)
{
	struct buf *b = msg_begin(m, MSG_GLOBAL_REQUEST);
	buf_cstr(b, streamlocal ? "cancel-streamlocal-forward@openssh.com" : "cancel-tcpip-forward");
	buf_bool(b, false);
	buf_cstr(b, addr);
	if (!streamlocal)
		buf_u32(b, port);
	msg_to_guest(m);
}

static void fwd_add(struct mux_core *m, uint32_t owner, bool sl, const char *addr, uint32_t port)
{
	if (m->nfwd >= MUX_MAX_FWD) {
		/* Unroutable: better cancelled than leaking the guest's listener. */
		send_cancel(m, sl, addr, port);
		return;
	}
	char *a = strdup(addr);
	if (!a) {
		send_cancel(m, sl, addr, port);
		return;
	}
	m->fwd[m->nfwd++] = (struct mux_fwd){ .owner = owner, .streamlocal = sl, .addr = a,
					      .port = port };
}

static void fwd_del(struct mux_core *m, unsigned i)
{
	free(m->fwd[i].addr);
	m->fwd[i] = m->fwd[--m->nfwd];
}

static void fwd_remove(struct mux_core *m, uint32_t owner, bool sl, const char *addr,
		       uint32_t port)
{
	for (unsigned i = 0; i < m->nfwd; i++) {
		struct mux_fwd *f = &m->fwd[i];
		if (f->owner == owner && f->streamlocal == sl && strcmp(f->addr, addr) == 0 &&
		    (sl || f->port == port)) {
			fwd_del(m, i);
			return;
		}
	}
}

/*
 * Who asked for the forward a guest's open arrived on: the exact address and
 * port first, then the port alone (a guest may report the address it bound).
 */
static uint32_t fwd_route(const struct mux_core *m, bool sl, struct sv addr, uint32_t port)
{
	uint32_t by_port = MUX_NONE;
	for (unsigned i = 0; i < m->nfwd; i++) {
		const struct mux_fwd *f = &m->fwd[i];
		if (f->streamlocal != sl)
			continue;
		if (sv_eq(addr, f->addr) && (sl || f->port == port))
			return f->owner;
		if (!sl && f->port == port && by_port == MUX_NONE)
			by_port = f->owner;
	}
	return by_port;
}

/* Answers of the mux's own requests whose turn has come. */
static void greq_flush_local(struct mux_core *m)
{
	while (m->gq_n && m->greq[m->gq_head].kind == MG_LOCAL) {
		struct mux_greq *e = &m->greq[m->gq_head];
		if (e->owner != MUX_NONE) {
			if (m->cl[e->owner].ngreq)
				m->cl[e->owner].ngreq--;
			if (e->want && e->reply)
				to_client(m, e->owner, e->reply, e->reply_n);
		}
		greq_clear(e);
		m->gq_head = (m->gq_head + 1) % MUX_MAX_GREQ;
		m->gq_n--;
	}
}

static bool is_local_request(struct sv name)
{
	static const char pre[] = "mux-", post[] = "@wicket";
	return name.n > 4 + 7 && memcmp(name.p, pre, 4) == 0 &&
	       memcmp(name.p + name.n - 7, post, 7) == 0;
}

static int client_global_local(struct mux_core *m, unsigned cl, struct sv name, bool want,
			       struct rd *r)
{
	struct buf reply;
	buf_init(&reply, SCRATCH_MAX);
	buf_u8(&reply, MSG_REQUEST_SUCCESS);
	bool ok = m->io->local_request && m->io->local_request(m->ctx, cl, name, r, &reply);
	if (!ok || reply.err) {
		buf_reset(&reply);
		buf_u8(&reply, MSG_REQUEST_FAILURE);
	}
	if (!m->cl[cl].ngreq) {
		/* Order is per client: others' requests (or our keepalive) still
		 * waiting for the guest need not hold this answer back. */
		if (want)
			to_client(m, cl, buf_data(&reply), buf_used(&reply));
		buf_free(&reply);
		return 0;
	}
	/* This client's earlier requests still wait for the guest: answer in order. */
	struct mux_greq *e = greq_push(m);
	if (!e) {
		buf_free(&reply);
		return client_fail(m, cl, "too many global requests outstanding");
	}
	e->owner = cl;
	e->kind = MG_LOCAL;
	e->want = want;
	e->reply_n = buf_used(&reply);
	e->reply = malloc(e->reply_n);
	if (e->reply)
		memcpy(e->reply, buf_data(&reply), e->reply_n);
	m->cl[cl].ngreq++;
	buf_free(&reply);
	return 0;
}

static int client_global(struct mux_core *m, unsigned cl, uint8_t *p, size_t n, struct rd *r)
{
	struct sv name = rd_str(r);
	size_t want_at = 1 + r->off;
	bool want = rd_bool(r);
	if (r->err)
		return client_fail(m, cl, "malformed GLOBAL_REQUEST message");
	if (is_local_request(name) || sv_eq(name, "zlib@wicket"))
		return client_global_local(m, cl, name, want, r);
	uint8_t kind = MG_PLAIN;
	struct sv addr = { 0 };
	uint32_t port = 0;
	if (sv_eq(name, "tcpip-forward") || sv_eq(name, "cancel-tcpip-forward")) {
		kind = name.p[0] == 'c' ? MG_CANCEL_TCPIP : MG_TCPIP;
		addr = rd_str(r);
		port = rd_u32(r);
	} else if (sv_eq(name, "streamlocal-forward@openssh.com") ||
		   sv_eq(name, "cancel-streamlocal-forward@openssh.com")) {
		kind = name.p[0] == 'c' ? MG_CANCEL_STREAMLOCAL : MG_STREAMLOCAL;
		addr = rd_str(r);
	}
	if (kind != MG_PLAIN && (!rd_end(r) || sv_has_nul(addr)))
		return client_fail(m, cl, "malformed %.*s request", (int)name.n, (const char *)name.p);
	struct mux_greq *e = greq_push(m);
	if (!e)
		return client_fail(m, cl, "too many global requests outstanding");
	e->owner = cl;
	e->kind = kind;
	e->want = want;
	e->port = port;
	if (kind != MG_PLAIN)
		e->addr = sv_strdup(addr);
	m->cl[cl].ngreq++;
	/* Always a reply from the guest, so replies can be routed by order. */
	p[want_at] = 1;
	m->io->to_guest(m->ctx, p, n);
	return 0;
}

/* A slow line: advertise small packets either way, so channels interleave. */
static uint32_t clamp_max(struct mux_core *m, uint8_t *field)
{
	uint32_t v = get_be32(field);
	if (m->max_packet && v > m->max_packet) {
		v = m->max_packet;
		put_be32(field, v);
	}
	return v;
}

/* ---- from a client ---- */

/*
 * The channel @id names, which must be @cl's, in state @st, and not closed by
 * the client.  NULL after failing the client.
 */
static struct mux_chan *own(struct mux_core *m, unsigned cl, uint32_t id, uint8_t type,
			    enum mux_cstate st)
{
	struct mux_chan *c = id < m->nch ? &m->ch[id] : NULL;
	if (!c || c->state == MC_FREE || c->orphan || c->owner != cl) {
		client_fail(m, cl, "%s for channel %u, which is not one of this client's",
			    msg_name(type), id);
		return NULL;
	}
	if (c->state != st) {
		client_fail(m, cl, "%s for channel %u in the wrong state", msg_name(type), id);
		return NULL;
	}
	if (c->c_close) {
		client_fail(m, cl, "%s for channel %u after its CLOSE", msg_name(type), id);
		return NULL;
	}
	return c;
}

/*
 * @n bytes of data from @cl on channel @id: its own, open, not after its EOF,
 * within the window and maximum packet the guest granted; taken off the
 * window.  NULL after failing the client.
 */
static struct mux_chan *client_data_admit(struct mux_core *m, unsigned cl, uint32_t id,
					  uint8_t type, size_t n)
{
	struct mux_chan *c = own(m, cl, id, type, MC_OPEN);
	if (!c)
		return NULL;
	if (c->c_eof) {
		client_fail(m, cl, "data on channel %u after its EOF", id);
		return NULL;
	}
	if (n > c->gwin) {
		client_fail(m, cl, "%zu bytes on channel %u exceed the window of %u", n, id, c->gwin);
		return NULL;
	}
	if (n > c->gmax) {
		client_fail(m, cl, "%zu bytes on channel %u exceed the maximum packet of %u", n, id,
			    c->gmax);
		return NULL;
	}
	c->gwin -= (uint32_t)n;
	return c;
}

static int client_open(struct mux_core *m, unsigned cl, uint8_t *p, size_t n, struct rd *r)
{
	rd_str(r);
	size_t at = 1 + r->off;
	uint32_t cid = rd_u32(r), win = rd_u32(r), max = rd_u32(r);
	if (r->err)
		return client_fail(m, cl, "malformed CHANNEL_OPEN message");
	if (!max)
		return client_fail(m, cl, "CHANNEL_OPEN with a zero maximum packet size");
	uint32_t id;
	struct mux_chan *c = chan_new(m, cl, MC_OPENING, &id);
	if (!c) {
		open_failure(m, cid, OPEN_RESOURCE_SHORTAGE, "too many channels through the mux",
			     (int)cl);
		return 0;
	}
	c->cid = cid;
	c->cwin = win;
	(void)max;
	clamp_max(m, p + at + 8);
	put_be32(p + at, id);
	m->io->to_guest(m->ctx, p, n);
	return 0;
}

static int client_channel(struct mux_core *m, unsigned cl, uint8_t type, uint8_t *p, size_t n,
			  struct rd *r)
{
	uint32_t id = rd_u32(r);
	struct mux_chan *c;
	switch (type) {
	case MSG_CHANNEL_OPEN_CONFIRMATION: {
		uint32_t cid = rd_u32(r), win = rd_u32(r), max = rd_u32(r);
		if (r->err)
			return client_fail(m, cl, "malformed CHANNEL_OPEN_CONFIRMATION message");
		if (!max)
			return client_fail(m, cl, "channel confirmed with a zero maximum packet size");
		if (!(c = own(m, cl, id, type, MC_INCOMING)))
			return -1;
		c->cid = cid;
		c->cwin = win;
		c->state = MC_OPEN;
		clamp_max(m, p + 13);
		put_be32(p + 1, c->gid);
		put_be32(p + 5, id);
		m->io->to_guest(m->ctx, p, n);
		return 0;
	}
	case MSG_CHANNEL_OPEN_FAILURE:
		rd_u32(r);
		rd_str(r);
		rd_str(r);
		if (!rd_end(r))
			return client_fail(m, cl, "malformed CHANNEL_OPEN_FAILURE message");
		if (!(c = own(m, cl, id, type, MC_INCOMING)))
			return -1;
		put_be32(p + 1, c->gid);
		m->io->to_guest(m->ctx, p, n);
		chan_release(m, c);
		return 0;
	case MSG_CHANNEL_WINDOW_ADJUST: {
		uint32_t add = rd_u32(r);
		if (!rd_end(r))
			return client_fail(m, cl, "malformed CHANNEL_WINDOW_ADJUST message");
		if (!(c = own(m, cl, id, type, MC_OPEN)))
			return -1;
		if ((uint64_t)c->cwin + add > UINT32_MAX)
			return client_fail(m, cl, "window of channel %u overflows 2^32-1", id);
		c->cwin += add;
		break;
	}
	case MSG_CHANNEL_DATA:
	case MSG_CHANNEL_EXTENDED_DATA: {
		if (type == MSG_CHANNEL_EXTENDED_DATA)
			rd_u32(r);
		struct sv d = rd_str(r);
		if (!rd_end(r))
			return client_fail(m, cl, "malformed %s message", msg_name(type));
		if (!(c = client_data_admit(m, cl, id, type, d.n)))
			return -1;
		break;
	}
	case MSG_CHANNEL_EOF:
		if (!rd_end(r))
			return client_fail(m, cl, "malformed CHANNEL_EOF message");
		if (!(c = own(m, cl, id, type, MC_OPEN)))
			return -1;
		c->c_eof = true;
		break;
	case MSG_CHANNEL_CLOSE:
		if (!rd_end(r))
			return client_fail(m, cl, "malformed CHANNEL_CLOSE message");
		if (!(c = own(m, cl, id, type, MC_OPEN)))
			return -1;
		c->c_close = true;
		put_be32(p + 1, c->gid);
		m->io->to_guest(m->ctx, p, n);
		if (c->g_close)
			chan_release(m, c);
		return 0;
	case MSG_CHANNEL_REQUEST: {
		struct sv name = rd_str(r); /* request type */
		bool want = rd_bool(r);	    /* want reply */
		if (r->err)
			return client_fail(m, cl, "malformed CHANNEL_REQUEST message");
		if (!(c = own(m, cl, id, type, MC_OPEN)))
			return -1;
		if (sv_eq(name, "auth-agent-req@openssh.com") || sv_eq(name, "auth-agent-req@wicket")) {
			/*
			 * Agent forwarding: the agent's auth-agent@openssh.com opens
			 * would not say whose they are.  Asked as auth-agent-req@wicket,
			 * it names this channel in each (auth-agent@wicket), so they go
			 * to this client and no other (PROTOCOL.md).
			 */
			c->agent = true;
			struct buf *b = msg_begin(m, MSG_CHANNEL_REQUEST);
			buf_u32(b, c->gid);
			buf_cstr(b, "auth-agent-req@wicket");
			buf_bool(b, want);
			buf_put(b, r->p + r->off, rd_left(r));
			msg_to_guest(m);
			return 0;
		}
		break;
	}
	case MSG_CHANNEL_SUCCESS:
	case MSG_CHANNEL_FAILURE:
		if (!rd_end(r))
			return client_fail(m, cl, "malformed %s message", msg_name(type));
		if (!(c = own(m, cl, id, type, MC_OPEN)))
			return -1;
		if (!c->g_asks)
			return client_fail(m, cl, "%s on channel %u with no request outstanding",
					   msg_name(type), id);
		c->g_asks--;
		break;
	default:
		return client_fail(m, cl, "message type %u is not allowed", type);
	}
	if (r->err)
		return client_fail(m, cl, "malformed %s message", msg_name(type));
	put_be32(p + 1, c->gid);
	m->io->to_guest(m->ctx, p, n);
	return 0;
}

int mux_core_from_client(struct mux_core *m, unsigned cl, uint8_t *p, size_t n)
{
	if (cl >= MUX_MAX_CLIENTS || !m->cl[cl].used || m->cl[cl].failed || !n)
		return -1;
	m->cl[cl].rx += n;
	struct rd r;
	rd_init(&r, p + 1, n - 1);
	uint8_t type = p[0];
	switch (type) {
	case MSG_DISCONNECT:
		return -1;
	case MSG_IGNORE:
	case MSG_UNIMPLEMENTED:
	case MSG_DEBUG:
		return 0;
	case MSG_GLOBAL_REQUEST:
		return client_global(m, cl, p, n, &r);
	case MSG_REQUEST_SUCCESS:
	case MSG_REQUEST_FAILURE:
		return client_fail(m, cl, "%s with no global request outstanding", msg_name(type));
	case MSG_CHANNEL_OPEN:
		return client_open(m, cl, p, n, &r);
	default:
		if (type >= MSG_CHANNEL_OPEN_CONFIRMATION && type <= MSG_CHANNEL_FAILURE)
			return client_channel(m, cl, type, p, n, &r);
		return client_fail(m, cl,
				   "message type %u is not allowed on a bare ssh-connection stream",
				   type);
	}
}

/* ---- clients come and go ---- */

int mux_core_client_add(struct mux_core *m)
{
	for (unsigned i = 0; i < MUX_MAX_CLIENTS; i++) {
		if (!m->cl[i].used) {
			m->cl[i] = (struct mux_client_st){ .used = true };
			m->ncl++;
			return (int)i;
		}
	}
	return -1;
}

void mux_core_client_gone(struct mux_core *m, unsigned cl)
{
	if (cl >= MUX_MAX_CLIENTS || !m->cl[cl].used)
		return;
	for (uint32_t i = 0; i < m->nch; i++) {
		struct mux_chan *c = &m->ch[i];
		if (c->state == MC_FREE || c->orphan || c->owner != cl)
			continue;
		c->orphan = true;
		if (c->state == MC_INCOMING) {
			open_failure(m, c->gid, OPEN_CONNECT_FAILED, "the mux client went away", -1);
			chan_release(m, c);
		} else if (c->state == MC_OPEN) {
			/* As if its host had hung up: the guest ends what runs there. */
			if (!c->c_close) {
				struct buf *b = msg_begin(m, MSG_CHANNEL_CLOSE);
				buf_u32(b, c->gid);
				msg_to_guest(m);
				c->c_close = true;
			}
			if (c->g_close)
				chan_release(m, c);
		}
		/* MC_OPENING: closed (or released) when the guest answers. */
	}
	for (unsigned i = 0; i < m->gq_n; i++) {
		struct mux_greq *e = &m->greq[(m->gq_head + i) % MUX_MAX_GREQ];
		if (e->owner == cl)
			e->owner = MUX_NONE;
	}
	for (unsigned i = 0; i < m->nfwd;) {
		struct mux_fwd *f = &m->fwd[i];
		if (f->owner != cl) {
			i++;
			continue;
		}
		send_cancel(m, f->streamlocal, f->addr, f->port);
		fwd_del(m, i);
	}
	m->cl[cl] = (struct mux_client_st){ 0 };
	m->ncl--;
	greq_flush_local(m);
}

/* ---- from the guest ---- */

static int guest_reply(struct mux_core *m, uint8_t type, const uint8_t *p, size_t n,
		       struct rd *r)
{
	if (!m->gq_n || m->greq[m->gq_head].kind == MG_LOCAL)
		return guest_fail(m, "%s with no global request outstanding", msg_name(type));
	struct mux_greq *e = &m->greq[m->gq_head];
	bool ok = type == MSG_REQUEST_SUCCESS;
	if (e->kind == MG_KEEPALIVE)
		m->keepalive_answered++;
	if (ok && (e->kind == MG_TCPIP || e->kind == MG_STREAMLOCAL)) {
		bool sl = e->kind == MG_STREAMLOCAL;
		uint32_t port = e->port;
		/* RFC 4254 7.1: port 0 gets the bound port in the reply. */
		if (!sl && !port && rd_left(r) >= 4)
			port = rd_u32(r);
		if (e->owner == MUX_NONE)
			send_cancel(m, sl, e->addr, port); /* its client left meanwhile */
		else
			fwd_add(m, e->owner, sl, e->addr, port);
	} else if (ok && e->owner != MUX_NONE &&
		   (e->kind == MG_CANCEL_TCPIP || e->kind == MG_CANCEL_STREAMLOCAL)) {
		fwd_remove(m, e->owner, e->kind == MG_CANCEL_STREAMLOCAL, e->addr, e->port);
	}
	if (e->owner != MUX_NONE) {
		if (m->cl[e->owner].ngreq)
			m->cl[e->owner].ngreq--;
		if (e->want)
			to_client(m, e->owner, p, n);
	}
	greq_clear(e);
	m->gq_head = (m->gq_head + 1) % MUX_MAX_GREQ;
	m->gq_n--;
	greq_flush_local(m);
	return 0;
}

static int guest_open(struct mux_core *m, uint8_t *p, size_t n, struct rd *r)
{
	struct sv type = rd_str(r);
	size_t at = 1 + r->off;
	uint32_t gid = rd_u32(r), win = rd_u32(r), max = rd_u32(r);
	if (r->err)
		return guest_fail(m, "malformed CHANNEL_OPEN message");
	if (!max)
		return guest_fail(m, "CHANNEL_OPEN with a zero maximum packet size");
	uint32_t owner = MUX_NONE;
	if (sv_eq(type, "forwarded-tcpip")) {
		struct sv addr = rd_str(r);
		uint32_t port = rd_u32(r);
		if (!r->err)
			owner = fwd_route(m, false, addr, port);
	} else if (sv_eq(type, "forwarded-streamlocal@openssh.com")) {
		struct sv path = rd_str(r);
		if (!r->err)
			owner = fwd_route(m, true, path, 0);
	} else if (sv_eq(type, "auth-agent@wicket")) {
		/* uint32 the session channel (our number) whose client forwards its agent */
		uint32_t sid = rd_u32(r);
		const struct mux_chan *sc = !r->err && sid < m->nch ? &m->ch[sid] : NULL;
		if (sc && sc->state == MC_OPEN && sc->agent && !sc->orphan && !sc->c_close)
			owner = sc->owner;
	}
	if (owner == MUX_NONE) {
		open_failure(m, gid, OPEN_ADMINISTRATIVELY_PROHIBITED,
			     "no client of the mux asked for this", -1);
		return 0;
	}
	uint32_t id;
	struct mux_chan *c = chan_new(m, owner, MC_INCOMING, &id);
	if (!c) {
		open_failure(m, gid, OPEN_RESOURCE_SHORTAGE, "too many channels through the mux", -1);
		return 0;
	}
	c->gid = gid;
	c->gwin = win;
	c->gmax = clamp_max(m, p + at + 8);
	(void)max;
	if (sv_eq(type, "auth-agent@wicket")) {
		/* The client sees OpenSSH's own channel type (PROTOCOL 2.2). */
		struct buf *b = msg_begin(m, MSG_CHANNEL_OPEN);
		buf_cstr(b, "auth-agent@openssh.com");
		buf_u32(b, id);
		buf_u32(b, win);
		buf_u32(b, c->gmax);
		if (!b->err)
			to_client(m, owner, buf_data(b), buf_used(b));
		return 0;
	}
	put_be32(p + at, id);
	to_client(m, owner, p, n);
	return 0;
}

/* The channel a guest message names, in state @st.  NULL after failing. */
static struct mux_chan *guest_chan(struct mux_core *m, uint32_t id, uint8_t type,
				   enum mux_cstate st)
{
	struct mux_chan *c = id < m->nch ? &m->ch[id] : NULL;
	if (!c || c->state != st || c->g_close) {
		guest_fail(m, "%s for channel %u, which is not open", msg_name(type), id);
		return NULL;
	}
	return c;
}

/* @n bytes of data from the guest on @id, within what its client granted.  NULL after failing. */
static struct mux_chan *guest_data_admit(struct mux_core *m, uint32_t id, uint8_t type, size_t n)
{
	struct mux_chan *c = guest_chan(m, id, type, MC_OPEN);
	if (!c)
		return NULL;
	if (n > c->cwin) {
		guest_fail(m, "%zu bytes on channel %u exceed the window of %u", n, id, c->cwin);
		return NULL;
	}
	c->cwin -= (uint32_t)n;
	return c;
}

static int guest_channel(struct mux_core *m, uint8_t type, uint8_t *p, size_t n, struct rd *r)
{
	uint32_t id = rd_u32(r);
	struct mux_chan *c;
	switch (type) {
	case MSG_CHANNEL_OPEN_CONFIRMATION: {
		uint32_t gid = rd_u32(r), win = rd_u32(r), max = rd_u32(r);
		if (r->err)
			return guest_fail(m, "malformed CHANNEL_OPEN_CONFIRMATION message");
		if (!max)
			return guest_fail(m, "channel confirmed with a zero maximum packet size");
		if (!(c = guest_chan(m, id, type, MC_OPENING)))
			return -1;
		c->gid = gid;
		c->gwin = win;
		c->gmax = clamp_max(m, p + 13);
		(void)max;
		c->state = MC_OPEN;
		if (c->orphan) {
			struct buf *b = msg_begin(m, MSG_CHANNEL_CLOSE);
			buf_u32(b, gid);
			msg_to_guest(m);
			c->c_close = true;
			return 0;
		}
		put_be32(p + 1, c->cid);
		put_be32(p + 5, id);
		to_client(m, c->owner, p, n);
		return 0;
	}
	case MSG_CHANNEL_OPEN_FAILURE:
		if (r->err)
			return guest_fail(m, "malformed CHANNEL_OPEN_FAILURE message");
		if (!(c = guest_chan(m, id, type, MC_OPENING)))
			return -1;
		if (!c->orphan) {
			put_be32(p + 1, c->cid);
			to_client(m, c->owner, p, n);
		}
		chan_release(m, c);
		return 0;
	case MSG_CHANNEL_WINDOW_ADJUST: {
		uint32_t add = rd_u32(r);
		if (r->err)
			return guest_fail(m, "malformed CHANNEL_WINDOW_ADJUST message");
		if (!(c = guest_chan(m, id, type, MC_OPEN)))
			return -1;
		if ((uint64_t)c->gwin + add > UINT32_MAX)
			return guest_fail(m, "window of channel %u overflows 2^32-1", id);
		c->gwin += add;
		break;
	}
	case MSG_CHANNEL_DATA:
	case MSG_CHANNEL_EXTENDED_DATA: {
		if (type == MSG_CHANNEL_EXTENDED_DATA)
			rd_u32(r);
		struct sv d = rd_str(r);
		if (r->err)
			return guest_fail(m, "malformed %s message", msg_name(type));
		if (!(c = guest_data_admit(m, id, type, d.n)))
			return -1;
		break;
	}
	case MSG_CHANNEL_EOF:
	case MSG_CHANNEL_SUCCESS:
	case MSG_CHANNEL_FAILURE:
		if (!(c = guest_chan(m, id, type, MC_OPEN)))
			return -1;
		break;
	case MSG_CHANNEL_CLOSE:
		if (!(c = guest_chan(m, id, type, MC_OPEN)))
			return -1;
		c->g_close = true;
		if (!c->orphan) {
			put_be32(p + 1, c->cid);
			to_client(m, c->owner, p, n);
		}
		if (c->c_close)
			chan_release(m, c);
		return 0;
	case MSG_CHANNEL_REQUEST: {
		rd_str(r);
		bool want = rd_bool(r);
		if (r->err)
			return guest_fail(m, "malformed CHANNEL_REQUEST message");
		if (!(c = guest_chan(m, id, type, MC_OPEN)))
			return -1;
		if (want)
			c->g_asks++;
		break;
	}
	default:
		return guest_fail(m, "message type %u is not allowed", type);
	}
	if (r->err)
		return guest_fail(m, "malformed %s message", msg_name(type));
	if (c->orphan)
		return 0; /* its client is gone: the CLOSE we sent is on its way */
	put_be32(p + 1, c->cid);
	to_client(m, c->owner, p, n);
	return 0;
}

int mux_core_from_guest(struct mux_core *m, uint8_t *p, size_t n)
{
	if (!n)
		return guest_fail(m, "zero-length packet");
	struct rd r;
	rd_init(&r, p + 1, n - 1);
	uint8_t type = p[0];
	switch (type) {
	case MSG_DISCONNECT: {
		uint32_t code = rd_u32(&r);
		char txt[160];
		sv_printable(rd_str(&r), txt, sizeof(txt));
		return guest_fail(m, "the agent disconnected (code %u): %s", code, txt);
	}
	case MSG_IGNORE:
	case MSG_UNIMPLEMENTED:
	case MSG_DEBUG:
		return 0;
	case MSG_GLOBAL_REQUEST: {
		rd_str(&r);
		bool want = rd_bool(&r);
		if (r.err)
			return guest_fail(m, "malformed GLOBAL_REQUEST message");
		if (want) {
			msg_begin(m, MSG_REQUEST_FAILURE);
			msg_to_guest(m);
		}
		return 0;
	}
	case MSG_REQUEST_SUCCESS:
	case MSG_REQUEST_FAILURE:
		return guest_reply(m, type, p, n, &r);
	case MSG_CHANNEL_OPEN:
		return guest_open(m, p, n, &r);
	default:
		if (type >= MSG_CHANNEL_OPEN_CONFIRMATION && type <= MSG_CHANNEL_FAILURE)
			return guest_channel(m, type, p, n, &r);
		return guest_fail(m, "message type %u is not allowed on a bare ssh-connection stream",
				  type);
	}
}

void mux_core_keepalive(struct mux_core *m)
{
	struct mux_greq *e = greq_push(m);
	if (!e)
		return;
	e->owner = MUX_NONE;
	e->kind = MG_KEEPALIVE;
	struct buf *b = msg_begin(m, MSG_GLOBAL_REQUEST);
	buf_cstr(b, "keepalive@openssh.com");
	buf_bool(b, true);
	msg_to_guest(m);
	m->keepalive_sent++;
}

/* ---- payloads the caller moves itself (see mux_core.h) ---- */

int mux_core_guest_data(struct mux_core *m, uint32_t id, uint32_t dlen, uint32_t *owner,
			uint32_t *cid)
{
	struct mux_chan *c = guest_data_admit(m, id, MSG_CHANNEL_DATA, dlen);
	if (!c)
		return -1;
	*owner = c->orphan ? MUX_NONE : c->owner;
	*cid = c->cid;
	if (!c->orphan)
		m->cl[c->owner].tx += 9 + (uint64_t)dlen;
	return 0;
}

int mux_core_client_data(struct mux_core *m, unsigned cl, uint32_t id, uint32_t dlen,
			 uint32_t *gid)
{
	if (cl >= MUX_MAX_CLIENTS || !m->cl[cl].used || m->cl[cl].failed)
		return -1;
	m->cl[cl].rx += 9 + (uint64_t)dlen;
	struct mux_chan *c = client_data_admit(m, cl, id, MSG_CHANNEL_DATA, dlen);
	if (!c)
		return -1;
	*gid = c->gid;
	return 0;
}
