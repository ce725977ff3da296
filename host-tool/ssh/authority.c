/* SPDX-License-Identifier: MIT */
/*
 * The decisions of one SSH connection (see authority.h): host key
 * signatures, publickey against authorized_keys, the one-time token,
 * "none" for the local proxy, and the guest after success.
 */
#include "authority.h"

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"

/* More than a correct transport ever asks (it disconnects after 20 failures). */
#define AUTHORITY_MAX_ATTEMPTS 64

void authority_init(struct ssh_authority *a)
{
	a->guest = TP_INIT;
	a->guest_greeted = false;
	OPENSSL_cleanse(a->session_id, sizeof(a->session_id));
	a->have_session_id = a->authed = a->guest_given = false;
	a->attempts = 0;
	a->why[0] = 0;
}

static int fatal(struct ssh_authority *a, const char *why)
{
	snprintf(a->why, sizeof(a->why), "%s", why);
	return SSH_PRIV_FATAL;
}

int authority_sign(struct ssh_authority *a, struct sv algo, const uint8_t h[32], struct buf *sig)
{
	const struct sshkey *k = NULL;
	for (int t = 0; t < SSHKEY_NTYPES && !k; t++)
		if (a->host_keys[t] && sshkey_algo_allowed(a->host_keys[t], algo))
			k = a->host_keys[t];
	if (!k)
		return fatal(a, "a signature with a host key algorithm we do not have");
	/* RFC 4253 7.2: the first exchange hash is the session id for good. */
	if (!a->have_session_id) {
		memcpy(a->session_id, h, 32);
		a->have_session_id = true;
	}
	if (sshkey_sign_alg(k, algo, h, 32, sig) < 0)
		return fatal(a, "signing the exchange hash failed");
	return 0;
}

/* May an authentication attempt come now?  0, or SSH_PRIV_FATAL. */
static int attempt_allowed(struct ssh_authority *a, bool configured, const char *method)
{
	char why[128];
	if (!a->have_session_id)
		snprintf(why, sizeof(why), "%s before the key exchange", method);
	else if (a->authed)
		snprintf(why, sizeof(why), "%s after a successful authentication", method);
	else if (!configured)
		snprintf(why, sizeof(why), "%s, which is not configured", method);
	else if (++a->attempts > AUTHORITY_MAX_ATTEMPTS)
		snprintf(why, sizeof(why), "more than %d authentication attempts",
			 AUTHORITY_MAX_ATTEMPTS);
	else
		return 0;
	return fatal(a, why);
}

/* A refusal: who, from where, why; 'serve' logs it at warning level. */
__attribute__((format(printf, 4, 5))) static int refused(struct ssh_authority *a, struct sv user,
							   const char *method, const char *fmt, ...)
{
	char u[128], why[400];
	sv_printable(user, u, sizeof(u));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_msg(a->log_logins ? LOG_WARN : LOG_INFO, "ssh: %s: refused %s for user %s: %s",
		a->peer_addr, method, u, why);
	return SSH_PRIV_REFUSED;
}

/* Success: log it, tell `serve` (it counts unauthenticated connections). */
static int succeeded(struct ssh_authority *a, struct sv user, const char *how)
{
	char u[128];
	sv_printable(user, u, sizeof(u));
	a->authed = true;
	if (a->log_logins || log_level >= LOG_INFO)
		log_msg(LOG_WARN, "ssh: %s: accepted %s for user %s", a->peer_addr, how, u);
	if (a->auth_notify_fd >= 0) {
		ssize_t w = write(a->auth_notify_fd, "A", 1);
		(void)w;
	}
	return SSH_PRIV_OK;
}

/* The authorized_keys to match against: the parsed one, or the file afresh. */
static const struct authkeys *current_authkeys(struct ssh_authority *a, struct authkeys **fresh,
					       char *err, size_t errlen)
{
	*fresh = NULL;
	if (!a->authkeys_file)
		return a->authkeys;
	*fresh = authkeys_load(a->authkeys_file, err, errlen);
	return *fresh;
}

static void free_authkeys(struct authkeys **ak)
{
	authkeys_free(*ak);
}

static void free_key(struct sshkey **k)
{
	sshkey_free(*k);
}

int authority_pubkey(struct ssh_authority *a, const struct ssh_pubkey_req *rq,
		     struct authkeys_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	int e = attempt_allowed(a, a->authkeys || a->authkeys_file, "publickey");
	if (e)
		return e;
	if (!sv_eq(rq->service, "ssh-connection"))
		return fatal(a, "publickey for a service other than ssh-connection");
	__attribute__((cleanup(free_key))) struct sshkey *key = sshkey_from_blob(rq->blob);
	if (!key)
		return refused(a, rq->user, "publickey", "unusable key blob");
	if (!sshkey_algo_allowed(key, rq->algo))
		return refused(a, rq->user, "publickey", "algorithm not allowed for a %s key",
			       sshkey_type_name(key));
	char fp[SSHKEY_FP_LEN], err[512];
	sshkey_fingerprint(key, fp, sizeof(fp));
	__attribute__((cleanup(free_authkeys))) struct authkeys *fresh = NULL;
	const struct authkeys *ak = current_authkeys(a, &fresh, err, sizeof(err));
	if (!ak)
		return refused(a, rq->user, "publickey", "key %s %s: %s: %s", sshkey_type_name(key),
			       fp, a->authkeys_file, err);
	struct authkeys_opts o;
	memset(&o, 0, sizeof(o));
	if (authkeys_match(ak, key, a->peer_addr, &o) != 0)
		return refused(a, rq->user, "publickey", "key %s %s is not authorized",
			       sshkey_type_name(key), fp);
	if (!rq->has_sig) {
		authkeys_opts_clear(&o);
		return SSH_PRIV_PK_OK;
	}
	/* RFC 4252 7: what the client signed, with our own session id. */
	struct buf d;
	buf_init(&d, SSH_MAX_PACKET);
	buf_str(&d, a->session_id, 32);
	buf_u8(&d, SSH_MSG_USERAUTH_REQUEST);
	buf_sv(&d, rq->user);
	buf_sv(&d, rq->service);
	buf_cstr(&d, "publickey");
	buf_bool(&d, true);
	buf_sv(&d, rq->algo);
	buf_sv(&d, rq->blob);
	bool ok = !d.err && sshkey_verify(key, rq->algo, rq->sig, buf_data(&d), buf_used(&d)) == 0;
	buf_free(&d);
	if (!ok) {
		authkeys_opts_clear(&o);
		return refused(a, rq->user, "publickey", "bad signature for key %s %s",
			       sshkey_type_name(key), fp);
	}
	size_t had_env = o.nenv;
	authkeys_env_filter(&o, a->permit_user_env);
	if (had_env != o.nenv)
		log_info("ssh: %zu of %zu environment= options of key %s ignored "
			 "(--permit-user-environment)", had_env - o.nenv, had_env, fp);
	char how[300];
	snprintf(how, sizeof(how), "publickey %s %s%s%s", sshkey_type_name(key), fp,
		 o.comment[0] ? " " : "", o.comment);
	*opts = o;
	return succeeded(a, rq->user, how);
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

int authority_token(struct ssh_authority *a, struct sv user, struct sv response)
{
	int e = attempt_allowed(a, a->token_file != NULL, "keyboard-interactive");
	if (e)
		return e;
	char tok[256];
	bool ok = false;
	if (read_token(a->token_file, tok, sizeof(tok)) == 0) {
		size_t tl = strlen(tok);
		ok = response.n == tl && CRYPTO_memcmp(response.p, tok, tl) == 0;
		/* One-time: whoever removes the file first has used it. */
		if (ok && unlink(a->token_file) < 0)
			ok = false;
	}
	OPENSSL_cleanse(tok, sizeof(tok));
	if (!ok)
		return refused(a, user, "keyboard-interactive", "wrong or used one-time token");
	return succeeded(a, user, "keyboard-interactive one-time token");
}

int authority_none(struct ssh_authority *a, struct sv user)
{
	int e = attempt_allowed(a, a->allow_none, "none");
	if (e)
		return e;
	return succeeded(a, user, "none (local proxy)");
}

int authority_open_guest(struct ssh_authority *a, struct tp *out, bool *greeted)
{
	if (!a->authed)
		return fatal(a, "the guest was asked for before authentication");
	if (a->guest_given)
		return fatal(a, "the guest was asked for twice");
	a->guest_given = true;
	*greeted = false;
	if (a->guest.rfd >= 0) {
		*out = a->guest;
		*greeted = a->guest_greeted;
		a->guest.rfd = a->guest.wfd = -1;
	} else if (a->open_guest(a->open_arg, out) < 0) {
		*out = TP_INIT;
		return -1;
	} else {
		a->guest.pid = out->pid;
	}
	out->pid = 0;
	return 0;
}

/* ---- in process (the fuzzer) ---- */

static int ops_sign(void *ctx, struct sv algo, const uint8_t h[32], struct buf *sig)
{
	return authority_sign(ctx, algo, h, sig);
}

static int ops_pubkey(void *ctx, const struct ssh_pubkey_req *rq, struct authkeys_opts *opts)
{
	return authority_pubkey(ctx, rq, opts);
}

static int ops_token(void *ctx, struct sv user, struct sv response)
{
	return authority_token(ctx, user, response);
}

static int ops_none(void *ctx, struct sv user)
{
	return authority_none(ctx, user);
}

static int ops_open_guest(void *ctx, struct tp *out, bool *greeted)
{
	return authority_open_guest(ctx, out, greeted) == 0 ? 0 : -1;
}

const struct ssh_priv_ops authority_ops = {
	.sign = ops_sign,
	.pubkey = ops_pubkey,
	.token = ops_token,
	.none = ops_none,
	.open_guest = ops_open_guest,
};
