/* SPDX-License-Identifier: MIT */
/*
 * The verbatim relay: after user authentication, connection-layer
 * messages (80-127) pass between the SSH client and the guest's bare
 * ssh-connection stream unchanged, only re-framed.  The policy of the
 * authorized_keys line is applied on the way: requests it forbids are
 * renamed to a name the guest refuses (so replies stay in order), or
 * answered here with OPEN_FAILURE.
 */
#include "sshs.h"

#include <fcntl.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "syscalls.h"
#include "wire.h"

#define OUT_HIGH (1u << 20)
/* A request name no peer implements: the guest answers FAILURE. */
#define DENIED "denied@wicket"

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

SYSCALLS(sshs_relay) = { SC_EQ("fcntl", 1, F_GETFL), SC_EQ("fcntl", 1, F_SETFL), SC_END };

int relay_open_guest(struct sshs *s)
{
	bool greeted = false;
	if (s->cfg->priv->open_guest(s->cfg->priv_ctx, &s->guest, &greeted) < 0) {
		s->guest = TP_INIT;
		ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "cannot reach the guest");
		return -1;
	}
	nonblock(s->guest.rfd);
	nonblock(s->guest.wfd);
	/* A guest opened ahead of time has had our greeting already. */
	if (!greeted)
		wire_put_greeting(&s->gout, "wicket-ssh_" WICKET_VERSION);
	s->guest_open = true;
	return 0;
}

static bool allow_pf(const struct sshs *s)
{
	return !s->have_opts || authkeys_allows_port_forwarding(&s->opts);
}

static bool allow_pty(const struct sshs *s)
{
	return !s->have_opts || authkeys_allows_pty(&s->opts);
}

/* "restrict,agent-forwarding" allows it: the options apply in order. */
static bool allow_agent(const struct sshs *s)
{
	return !s->have_opts || authkeys_allows_agent(&s->opts);
}

static bool allow_x11(const struct sshs *s)
{
	return !s->have_opts || authkeys_allows_x11(&s->opts);
}

static void to_guest(struct sshs *s, const uint8_t *p, size_t n)
{
	uint8_t *w = buf_reserve(&s->gout, 4 + n);
	if (!w) {
		ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "guest queue overflow");
		return;
	}
	put_be32(w, (uint32_t)n);
	memcpy(w + 4, p, n);
	buf_commit(&s->gout, 4 + n);
}

static void to_guest_buf(struct sshs *s, struct buf *b)
{
	if (!b->err)
		to_guest(s, buf_data(b), buf_used(b));
	buf_free(b);
}

static void open_failure(struct sshs *s, bool to_client, uint32_t chan, const char *why)
{
	struct buf b;
	ssh_pkt_begin(&b, MSG_CHANNEL_OPEN_FAILURE);
	buf_u32(&b, chan);
	buf_u32(&b, OPEN_ADMINISTRATIVELY_PROHIBITED);
	buf_cstr(&b, why);
	buf_cstr(&b, "");
	if (to_client)
		ssh_send_buf(s, &b);
	else
		to_guest_buf(s, &b);
}

/*
 * Before a request that starts a session: ssh-connection@wicket on the same
 * channel (no reply wanted, so the replies the client waits for keep their
 * order), so the guest sets SSH_CONNECTION and SSH_CLIENT.  A guest that
 * does not know it ignores it.
 */
static void send_conn_info(struct sshs *s, uint32_t rch)
{
	const struct ssh_conn_info *ci = &s->cfg->conn;
	if (!ci->caddr[0])
		return;
	struct buf b;
	ssh_pkt_begin(&b, MSG_CHANNEL_REQUEST);
	buf_u32(&b, rch);
	buf_cstr(&b, "ssh-connection@wicket");
	buf_bool(&b, false);
	buf_cstr(&b, ci->caddr);
	buf_u32(&b, ci->cport);
	buf_cstr(&b, ci->saddr);
	buf_u32(&b, ci->sport);
	to_guest_buf(s, &b);
}

/*
 * The key's environment= options the operator allowed
 * (--permit-user-environment; filtered by the authority), as
 * key-env@wicket right before the session starts, after the client's own
 * env requests: they win over those, as the operator's word over the
 * client's.
 */
static void send_key_env(struct sshs *s, uint32_t rch)
{
	if (!s->have_opts)
		return;
	for (size_t i = 0; i < s->opts.nenv; i++) {
		const char *kv = s->opts.env[i];
		const char *eq = strchr(kv, '=');
		struct buf b;
		ssh_pkt_begin(&b, MSG_CHANNEL_REQUEST);
		buf_u32(&b, rch);
		buf_cstr(&b, "key-env@wicket");
		buf_bool(&b, false);
		buf_str(&b, kv, (size_t)(eq - kv));
		buf_cstr(&b, eq + 1);
		to_guest_buf(s, &b);
	}
}

/* Requests only the wrapper may send the guest (PROTOCOL.md). */
static bool wrapper_only(struct sv type)
{
	return sv_eq(type, "ssh-connection@wicket") || sv_eq(type, "key-env@wicket");
}

static bool is_session_start(struct sv type)
{
	return sv_eq(type, "shell") || sv_eq(type, "exec") || sv_eq(type, "subsystem") ||
	       sv_eq(type, "exec-argv@wicket");
}

static bool is_forward_request(struct sv name)
{
	return sv_eq(name, "tcpip-forward") || sv_eq(name, "cancel-tcpip-forward") ||
	       sv_eq(name, "streamlocal-forward@openssh.com") ||
	       sv_eq(name, "cancel-streamlocal-forward@openssh.com");
}

int relay_from_client(struct sshs *s, struct sv pl)
{
	struct rd r;
	rd_init(&r, pl.p + 1, pl.n - 1);
	switch (pl.p[0]) {
	case MSG_GLOBAL_REQUEST: {
		struct sv name = rd_str(&r); /* request name */
		bool want = rd_bool(&r);     /* want reply */
		bool listen_denied = false;
		if (!r.err && allow_pf(s) && s->have_opts && sv_eq(name, "tcpip-forward")) {
			struct sv addr = rd_str(&r); /* address to bind */
			uint32_t port = rd_u32(&r);  /* port to bind */
			listen_denied = !r.err && !authkeys_permits_listen(&s->opts, addr, port);
			if (listen_denied) {
				char shown[80];
				sv_printable(addr, shown, sizeof(shown));
				log_warn("ssh: refused tcpip-forward %s:%u (not in this key's permitlisten=)",
					 shown, port);
			}
		}
		if (!r.err && ((!allow_pf(s) && is_forward_request(name)) || listen_denied)) {
			if (!listen_denied)
				log_info("ssh: refused %.*s (no port forwarding for this key)",
					 (int)name.n, (const char *)name.p);
			struct buf b;
			ssh_pkt_begin(&b, MSG_GLOBAL_REQUEST);
			buf_cstr(&b, DENIED);
			buf_bool(&b, want);
			to_guest_buf(s, &b);
			return 0;
		}
		break;
	}
	case MSG_CHANNEL_OPEN: {
		struct sv type = rd_str(&r); /* channel type */
		uint32_t sender = rd_u32(&r); /* sender channel */
		bool tcp = sv_eq(type, "direct-tcpip");
		bool path = sv_eq(type, "direct-streamlocal@openssh.com");
		if (!r.err && !allow_pf(s) && (tcp || path)) {
			open_failure(s, true, sender, "port forwarding is not permitted for this key");
			return 0;
		}
		if (!r.err && s->have_opts && (tcp || path)) {
			rd_u32(&r);			 /* initial window */
			rd_u32(&r);			 /* maximum packet */
			struct sv host = rd_str(&r);	 /* host (or socket path) to connect to */
			uint32_t port = tcp ? rd_u32(&r) : 0; /* port */
			bool ok = r.err || (tcp ? authkeys_permits_open(&s->opts, host, port)
					       : authkeys_permits_open_path(&s->opts));
			if (!ok) {
				char shown[80];
				sv_printable(host, shown, sizeof(shown));
				if (tcp)
					log_warn("ssh: refused direct-tcpip to %s:%u (not in this key's "
						 "permitopen=)", shown, port);
				else
					log_warn("ssh: refused direct-streamlocal to %s (a key with "
						 "permitopen= opens no socket paths)", shown);
				open_failure(s, true, sender,
					     "this connection is not permitted by the key's permitopen=");
				return 0;
			}
		}
		break;
	}
	case MSG_CHANNEL_REQUEST: {
		uint32_t rch = rd_u32(&r);	/* recipient channel */
		struct sv type = rd_str(&r);	/* request type */
		bool want = rd_bool(&r);	/* want reply */
		if (r.err)
			break;
		/* ssh-connection@wicket is ours to send, never the client's. */
		bool deny = (sv_eq(type, "pty-req") && !allow_pty(s)) ||
			    (sv_eq(type, "x11-req") && !allow_x11(s)) ||
			    ((sv_eq(type, "auth-agent-req@openssh.com") ||
			      sv_eq(type, "auth-agent-req@wicket")) && !allow_agent(s)) ||
			    wrapper_only(type);
		bool forced = s->have_opts && s->opts.command && is_session_start(type);
		if (is_session_start(type)) {
			send_key_env(s, rch);
			send_conn_info(s, rch);
		}
		if (deny || forced) {
			struct buf b;
			ssh_pkt_begin(&b, MSG_CHANNEL_REQUEST);
			buf_u32(&b, rch);
			buf_cstr(&b, forced ? "exec" : DENIED);
			buf_bool(&b, want);
			if (forced)
				buf_cstr(&b, s->opts.command);
			to_guest_buf(s, &b);
			return 0;
		}
		break;
	}
	default:
		break;
	}
	to_guest(s, pl.p, pl.n);
	return s->closing ? -1 : 0;
}

/* A CHANNEL_OPEN from the guest that this key's options forbid? */
static bool guest_open_denied(struct sshs *s, struct sv pl, uint32_t *sender)
{
	struct rd r;
	rd_init(&r, pl.p + 1, pl.n - 1);
	struct sv type = rd_str(&r); /* channel type */
	*sender = rd_u32(&r);	     /* sender channel */
	if (r.err)
		return false;
	if (sv_eq(type, "x11"))
		return !allow_x11(s);
	if (sv_eq(type, "auth-agent@openssh.com") || sv_eq(type, "auth-agent@wicket"))
		return !allow_agent(s);
	if (sv_eq(type, "forwarded-tcpip") || sv_eq(type, "forwarded-streamlocal@openssh.com"))
		return !allow_pf(s);
	return false;
}

int relay_from_guest(struct sshs *s)
{
	if (!s->guest_greeted) {
		char ver[WIRE_MAX_VERSION + 1];
		int r = wire_scan_greeting(&s->gin, ver, sizeof(ver));
		if (r < 0) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "the guest sent a bad greeting");
			return -1;
		}
		if (r == 0)
			return 0;
		s->guest_greeted = true;
	}
	while (!s->closing && buf_used(&s->cout) <= OUT_HIGH && buf_used(&s->pending) <= OUT_HIGH) {
		struct sv pkt;
		uint32_t len = 0;
		int r = wire_next_packet(&s->gin, &pkt, &len);
		if (r == 0)
			return 0;
		if (r < 0 || pkt.n > SSH_MAX_PAYLOAD) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "the guest sent a bad packet length %u",
				       len);
			return -1;
		}
		uint8_t t = pkt.p[0];
		if (t >= 80 && t <= 127) {
			uint32_t sender;
			if (t == MSG_CHANNEL_OPEN && guest_open_denied(s, pkt, &sender)) {
				open_failure(s, false, sender, "not permitted for this key");
				continue;
			}
			ssh_send(s, pkt.p, pkt.n);
			continue;
		}
		if (t == MSG_DISCONNECT) {
			struct rd d;
			rd_init(&d, pkt.p + 1, pkt.n - 1);
			rd_u32(&d);
			char why[200];
			sv_printable(rd_str(&d), why, sizeof(why));
			ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "the guest disconnected: %s", why);
			return -1;
		}
		if (t == MSG_IGNORE || t == MSG_DEBUG || t == MSG_UNIMPLEMENTED)
			continue;
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR,
			       "the guest sent message %u, which is not connection layer", t);
		return -1;
	}
	return 0;
}
