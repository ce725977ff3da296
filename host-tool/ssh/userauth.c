/* SPDX-License-Identifier: MIT */
/*
 * User authentication, server side (RFC 4252, RFC 4256): "none" only in
 * stdio proxy mode, "publickey" against an OpenSSH authorized_keys file,
 * "keyboard-interactive" with a one-time token read from a file that is
 * deleted when it is used.  This file only parses and answers the client:
 * every decision is the authority's (authority.c, behind the monitor in
 * privsep.h).  Nothing of the connection layer passes before success
 * (transport.c checks s->authed).
 */
#include "sshs.h"

#include <string.h>

#define MAX_AUTH_FAILURES 20

int auth_on_service_request(struct sshs *s, struct rd *r)
{
	struct sv name = rd_str(r); /* service name */
	if (!rd_end(r) || s->service_ok || !sv_eq(name, "ssh-userauth")) {
		ssh_disconnect(s, SSH_DISC_SERVICE_NOT_AVAILABLE, "service not available");
		return -1;
	}
	s->service_ok = true;
	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_SERVICE_ACCEPT);
	buf_cstr(&b, "ssh-userauth");
	ssh_send_buf(s, &b);
	return 0;
}

static int auth_failure(struct sshs *s)
{
	if (++s->auth_failures > MAX_AUTH_FAILURES) {
		ssh_disconnect(s, SSH_DISC_NO_MORE_AUTH_METHODS, "too many authentication failures");
		return -1;
	}
	char methods[64] = "";
	if (s->cfg->has_authkeys || !s->cfg->has_token)
		strcat(methods, "publickey");
	if (s->cfg->has_token)
		strcat(methods, methods[0] ? ",keyboard-interactive" : "keyboard-interactive");
	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_USERAUTH_FAILURE);
	buf_cstr(&b, methods);
	buf_bool(&b, false); /* partial success */
	ssh_send_buf(s, &b);
	return 0;
}

/* The authority's answer to an attempt: failure, or it has gone (end). */
static int auth_refused(struct sshs *s, int r)
{
	if (r == SSH_PRIV_FATAL) {
		ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "internal error");
		return -1;
	}
	return auth_failure(s);
}

/* The authority said yes (it logged the login and counted it). */
static int auth_success(struct sshs *s)
{
	uint8_t t = SSH_MSG_USERAUTH_SUCCESS;
	ssh_send(s, &t, 1);
	s->authed = true;
	s->kbd_pending = false;
#ifdef HAVE_ZLIB
	/* Delayed compression: from the packet after USERAUTH_SUCCESS on. */
	if (s->tx.zlib && !s->tx.zon && !ssh_in_kex(s) && comp_start(&s->tx, true) == 0)
		s->tx.zon = true;
	if (s->rx.zlib && !s->rx.zon && comp_start(&s->rx, false) == 0)
		s->rx.zon = true;
#endif
	if (!s->guest_open && relay_open_guest(s) < 0)
		return -1;
	return 0;
}

static int auth_publickey(struct sshs *s, struct rd *r, struct sv user, struct sv service)
{
	struct ssh_pubkey_req rq = { .user = user, .service = service };
	rq.has_sig = rd_bool(r);		   /* a signature follows */
	rq.algo = rd_str(r);			   /* public key algorithm name */
	rq.blob = rd_str(r);			   /* public key blob */
	rq.sig = rq.has_sig ? rd_str(r) : SV_NULL; /* signature */
	if (!rd_end(r)) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed publickey request");
		return -1;
	}
	if (!s->cfg->has_authkeys)
		return auth_failure(s);
	/* The authority parses the key, matches authorized_keys and checks the
	 * signature over data it builds from the session id it remembers. */
	struct authkeys_opts o;
	memset(&o, 0, sizeof(o));
	int v = s->cfg->priv->pubkey(s->cfg->priv_ctx, &rq, &o);
	if (v == SSH_PRIV_PK_OK && !rq.has_sig) {
		struct buf b;
		ssh_pkt_begin(&b, SSH_MSG_USERAUTH_PK_OK);
		buf_sv(&b, rq.algo);
		buf_sv(&b, rq.blob);
		ssh_send_buf(s, &b);
		return 0;
	}
	if (v != SSH_PRIV_OK || !rq.has_sig) {
		authkeys_opts_clear(&o);
		return auth_refused(s, v == SSH_PRIV_FATAL ? v : SSH_PRIV_REFUSED);
	}
	if (s->have_opts)
		authkeys_opts_clear(&s->opts);
	s->opts = o;
	s->have_opts = true;
	return auth_success(s);
}

static int auth_kbd_start(struct sshs *s, struct rd *r)
{
	rd_str(r); /* language tag */
	rd_str(r); /* submethods */
	if (!rd_end(r)) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed keyboard-interactive request");
		return -1;
	}
	if (!s->cfg->has_token)
		return auth_failure(s);
	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_USERAUTH_INFO_REQUEST);
	buf_cstr(&b, "wicket");			  /* name */
	buf_cstr(&b, "Enter the one-time token."); /* instruction */
	buf_cstr(&b, "");			  /* language tag */
	buf_u32(&b, 1);				  /* num-prompts */
	buf_cstr(&b, "Token: ");
	buf_bool(&b, false); /* echo */
	ssh_send_buf(s, &b);
	s->kbd_pending = true;
	return 0;
}

int auth_on_request(struct sshs *s, struct rd *r)
{
	if (!s->service_ok) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "userauth before service request");
		return -1;
	}
	struct sv user = rd_str(r);	/* user name */
	struct sv service = rd_str(r);	/* service name */
	struct sv method = rd_str(r);	/* method name */
	if (r->err) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed userauth request");
		return -1;
	}
	if (!sv_eq(service, "ssh-connection")) {
		ssh_disconnect(s, SSH_DISC_SERVICE_NOT_AVAILABLE, "service not available");
		return -1;
	}
	sv_printable(user, s->user, sizeof(s->user));
	s->kbd_pending = false;
	if (sv_eq(method, "none")) {
		if (!s->cfg->allow_none || !rd_end(r))
			return auth_failure(s);
		int v = s->cfg->priv->none(s->cfg->priv_ctx, user);
		return v == SSH_PRIV_OK ? auth_success(s) : auth_refused(s, v);
	}
	if (sv_eq(method, "publickey"))
		return auth_publickey(s, r, user, service);
	if (sv_eq(method, "keyboard-interactive"))
		return auth_kbd_start(s, r);
	return auth_failure(s);
}

int auth_on_info_response(struct sshs *s, struct rd *r)
{
	uint32_t n = rd_u32(r);	      /* num-responses */
	struct sv resp = rd_str(r);   /* the token */
	if (!rd_end(r) || n != 1) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed keyboard-interactive response");
		return -1;
	}
	s->kbd_pending = false;
	/* The authority reads, compares and removes the token file. */
	int v = s->cfg->priv->token(s->cfg->priv_ctx, sv_from_cstr(s->user), resp);
	return v == SSH_PRIV_OK ? auth_success(s) : auth_refused(s, v);
}

void auth_wipe(struct sshs *s)
{
	if (s->have_opts)
		authkeys_opts_clear(&s->opts);
	s->have_opts = false;
}
