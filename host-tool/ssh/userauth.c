/* SPDX-License-Identifier: MIT */
/*
 * User authentication, server side (RFC 4252, RFC 4256): "none" only in
 * stdio proxy mode, "publickey" against an OpenSSH authorized_keys file,
 * "keyboard-interactive" with a one-time token read from a file that is
 * deleted when it is used.  Nothing of the connection layer passes before
 * success (transport.c checks s->authed).
 */
#include "sshs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"

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
	if (s->cfg->authkeys || !s->cfg->token_file)
		strcat(methods, "publickey");
	if (s->cfg->token_file)
		strcat(methods, methods[0] ? ",keyboard-interactive" : "keyboard-interactive");
	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_USERAUTH_FAILURE);
	buf_cstr(&b, methods);
	buf_bool(&b, false); /* partial success */
	ssh_send_buf(s, &b);
	return 0;
}

static int auth_success(struct sshs *s, const char *how)
{
	if (s->cfg->log_logins || log_level >= LOG_INFO)
		log_msg(LOG_WARN, "ssh: %s: accepted %s for user %s", s->cfg->peer_addr, how,
			s->user);
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
	if (s->cfg->auth_notify_fd >= 0) {
		ssize_t w = write(s->cfg->auth_notify_fd, "A", 1);
		(void)w;
	}
	if (!s->guest_open && relay_open_guest(s) < 0)
		return -1;
	return 0;
}

static int auth_publickey(struct sshs *s, struct rd *r, struct sv user, struct sv service)
{
	bool has_sig = rd_bool(r);	/* a signature follows */
	struct sv algo = rd_str(r);	/* public key algorithm name */
	struct sv blob = rd_str(r);	/* public key blob */
	struct sv sig = has_sig ? rd_str(r) : SV_NULL; /* signature */
	if (!rd_end(r)) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed publickey request");
		return -1;
	}
	if (!s->cfg->authkeys)
		return auth_failure(s);
	struct sshkey *key = sshkey_from_blob(blob);
	if (!key || !sshkey_algo_allowed(key, algo)) {
		sshkey_free(key);
		return auth_failure(s);
	}
	struct authkeys_opts o;
	memset(&o, 0, sizeof(o));
	char fp[SSHKEY_FP_LEN];
	sshkey_fingerprint(key, fp, sizeof(fp));
	if (authkeys_match(s->cfg->authkeys, key, s->cfg->peer_addr, &o) != 0) {
		log_info("ssh: %s: key %s %s not authorized", s->cfg->peer_addr,
			 sshkey_type_name(key), fp);
		authkeys_opts_clear(&o);
		sshkey_free(key);
		return auth_failure(s);
	}
	if (!has_sig) {
		authkeys_opts_clear(&o);
		sshkey_free(key);
		struct buf b;
		ssh_pkt_begin(&b, SSH_MSG_USERAUTH_PK_OK);
		buf_sv(&b, algo);
		buf_sv(&b, blob);
		ssh_send_buf(s, &b);
		return 0;
	}
	/* RFC 4252 7: what the client signed. */
	struct buf d;
	buf_init(&d, SSH_MAX_PACKET);
	buf_str(&d, s->session_id, 32);
	buf_u8(&d, SSH_MSG_USERAUTH_REQUEST);
	buf_sv(&d, user);
	buf_sv(&d, service);
	buf_cstr(&d, "publickey");
	buf_bool(&d, true);
	buf_sv(&d, algo);
	buf_sv(&d, blob);
	int ok = !d.err && sshkey_verify(key, algo, sig, buf_data(&d), buf_used(&d)) == 0;
	buf_free(&d);
	if (!ok) {
		log_info("ssh: %s: bad signature for key %s", s->cfg->peer_addr, fp);
		authkeys_opts_clear(&o);
		sshkey_free(key);
		return auth_failure(s);
	}
	if (s->have_opts)
		authkeys_opts_clear(&s->opts);
	s->opts = o;
	s->have_opts = true;
	char how[300];
	snprintf(how, sizeof(how), "publickey %s %s%s%s", sshkey_type_name(key), fp,
		 o.comment[0] ? " " : "", o.comment);
	sshkey_free(key);
	return auth_success(s, how);
}

static int auth_kbd_start(struct sshs *s, struct rd *r)
{
	rd_str(r); /* language tag */
	rd_str(r); /* submethods */
	if (!rd_end(r)) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed keyboard-interactive request");
		return -1;
	}
	if (!s->cfg->token_file)
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
		if (s->cfg->allow_none && rd_end(r))
			return auth_success(s, "none (local proxy)");
		return auth_failure(s);
	}
	if (sv_eq(method, "publickey"))
		return auth_publickey(s, r, user, service);
	if (sv_eq(method, "keyboard-interactive"))
		return auth_kbd_start(s, r);
	return auth_failure(s);
}

/* The token: first line of the file, surrounding blanks removed. */
static int read_token(const char *path, char *out, size_t outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, outlen - 1);
	close(fd);
	if (n <= 0)
		return -1;
	out[n] = 0;
	char *nl = strpbrk(out, "\r\n");
	if (nl)
		*nl = 0;
	size_t l = strlen(out);
	while (l && (out[l - 1] == ' ' || out[l - 1] == '\t'))
		out[--l] = 0;
	return l >= 8 ? 0 : -1; /* refuse trivially short tokens */
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
	char tok[256];
	bool ok = false;
	if (read_token(s->cfg->token_file, tok, sizeof(tok)) == 0) {
		size_t tl = strlen(tok);
		ok = resp.n == tl && CRYPTO_memcmp(resp.p, tok, tl) == 0;
		/* One-time: whoever removes the file first has used it. */
		if (ok && unlink(s->cfg->token_file) < 0)
			ok = false;
	}
	OPENSSL_cleanse(tok, sizeof(tok));
	if (!ok) {
		log_info("ssh: %s: wrong or used one-time token", s->cfg->peer_addr);
		return auth_failure(s);
	}
	return auth_success(s, "keyboard-interactive one-time token");
}

void auth_wipe(struct sshs *s)
{
	if (s->have_opts)
		authkeys_opts_clear(&s->opts);
	s->have_opts = false;
}
