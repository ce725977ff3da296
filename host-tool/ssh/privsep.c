/* SPDX-License-Identifier: MIT */
/*
 * The monitor half of the SSH server's privilege separation (privsep.h):
 * fork the network process, then answer its requests from a fixed table
 * until it is gone.  Nothing it sends is trusted: lengths are checked
 * against the table, every message is parsed whole, and the decisions are
 * the authority's.  Any violation ends the network process.
 */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fdpass.h"
#include "log.h"
#include "wire.h"

/* The transport disconnects at the grace time itself; the monitor a bit later. */
#define GRACE_SLACK 10

struct mon {
	struct ssh_authority *a;
	int sock;
	pid_t net;
	char why[200]; /* a violation (the authority's why, or a framing error) */
};

/* A handler appends its reply fields to @out; returns SSH_PRIV_* (FATAL: violation). */
typedef int (*priv_fn)(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds);

static int violation(struct mon *m, const char *why)
{
	snprintf(m->why, sizeof(m->why), "%s", why);
	return SSH_PRIV_FATAL;
}

/* The authority said FATAL: its reason becomes ours. */
static int from_authority(struct mon *m, int r)
{
	if (r == SSH_PRIV_FATAL)
		snprintf(m->why, sizeof(m->why), "%s", m->a->why);
	return r;
}

static int on_sign(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds)
{
	struct sv algo = rd_str(r);    /* host key algorithm */
	struct sv h = rd_bytes(r, 32); /* the exchange hash */
	if (!rd_end(r))
		return violation(m, "malformed SIGN");
	struct buf sig;
	buf_init(&sig, 4096);
	int v = authority_sign(m->a, algo, h.p, &sig);
	if (v == 0)
		buf_str(out, buf_data(&sig), buf_used(&sig));
	buf_free(&sig);
	return from_authority(m, v);
}

static uint32_t opt_flags(const struct authkeys_opts *o)
{
	return (o->restrict_all ? PRIV_OPT_RESTRICT : 0) |
	       (o->no_port_forwarding ? PRIV_OPT_NO_PORT_FORWARDING : 0) |
	       (o->no_pty ? PRIV_OPT_NO_PTY : 0) | (o->no_agent_forwarding ? PRIV_OPT_NO_AGENT : 0) |
	       (o->no_x11_forwarding ? PRIV_OPT_NO_X11 : 0) |
	       (o->no_user_rc ? PRIV_OPT_NO_USER_RC : 0) |
	       (o->port_forwarding ? PRIV_OPT_PORT_FORWARDING : 0) | (o->pty ? PRIV_OPT_PTY : 0);
}

/* permitopen=, permitlisten=, environment= (bounded by AUTHKEYS_OPTIONS_MAX). */
static void privsep_put_lists(struct buf *out, const struct authkeys_opts *o)
{
	buf_u32(out, (uint32_t)o->npermitopen);
	for (size_t i = 0; i < o->npermitopen; i++) {
		buf_cstr(out, o->permitopen[i].host);
		buf_u32(out, (uint32_t)o->permitopen[i].port);
	}
	buf_u32(out, (uint32_t)o->npermitlisten);
	for (size_t i = 0; i < o->npermitlisten; i++) {
		buf_cstr(out, o->permitlisten[i].host);
		buf_u32(out, (uint32_t)o->permitlisten[i].port);
	}
	buf_u32(out, (uint32_t)o->nenv);
	for (size_t i = 0; i < o->nenv; i++)
		buf_cstr(out, o->env[i]);
}

static int on_pubkey(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds)
{
	struct ssh_pubkey_req rq;
	rq.user = rd_str(r);			   /* user name */
	rq.service = rd_str(r);			   /* service name */
	rq.algo = rd_str(r);			   /* public key algorithm */
	rq.blob = rd_str(r);			   /* public key blob */
	rq.has_sig = rd_bool(r);		   /* a signature follows */
	rq.sig = rq.has_sig ? rd_str(r) : SV_NULL; /* signature */
	if (!rd_end(r))
		return violation(m, "malformed PUBKEY");
	struct authkeys_opts o;
	int v = from_authority(m, authority_pubkey(m->a, &rq, &o));
	if (v == SSH_PRIV_OK) {
		buf_u32(out, opt_flags(&o));
		buf_bool(out, o.command != NULL);
		buf_cstr(out, o.command ? o.command : "");
		buf_cstr(out, o.comment);
		privsep_put_lists(out, &o);
	}
	authkeys_opts_clear(&o);
	return v;
}

static int on_token(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds)
{
	struct sv user = rd_str(r); /* user name */
	struct sv resp = rd_str(r); /* the client's answer */
	if (!rd_end(r))
		return violation(m, "malformed TOKEN");
	return from_authority(m, authority_token(m->a, user, resp));
}

static int on_none(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds)
{
	struct sv user = rd_str(r); /* user name */
	if (!rd_end(r))
		return violation(m, "malformed NONE");
	return from_authority(m, authority_none(m->a, user));
}

static int on_guest(struct mon *m, struct rd *r, struct buf *out, int *fds, int *nfds)
{
	if (!rd_end(r))
		return violation(m, "malformed GUEST");
	struct tp g;
	bool greeted = false;
	int v = from_authority(m, authority_open_guest(m->a, &g, &greeted));
	if (v == SSH_PRIV_FATAL)
		return v;
	if (v < 0)
		return SSH_PRIV_REFUSED; /* cannot reach it: the transport says so */
	fds[(*nfds)++] = g.rfd;
	if (g.wfd != g.rfd)
		fds[(*nfds)++] = g.wfd;
	buf_bool(out, greeted);
	return SSH_PRIV_OK;
}

static const struct priv_entry {
	uint8_t type;
	size_t min, max; /* datagram length, type byte included */
	priv_fn fn;
} priv_table[] = {
	{ PRIV_SIGN, 1 + 4 + 32, 1 + 4 + 64 + 32, on_sign },
	{ PRIV_PUBKEY, 1 + 4 * 4 + 1, PRIV_MSG_MAX, on_pubkey },
	{ PRIV_TOKEN, 1 + 2 * 4, PRIV_MSG_MAX, on_token },
	{ PRIV_NONE, 1 + 4, 1 + 4 + 1024, on_none },
	{ PRIV_GUEST, 1, 1, on_guest },
};

/* Send one reply (and @fds, closed here once sent).  0, or -1. */
static int send_reply(struct mon *m, struct buf *b, int *fds, int nfds)
{
	struct iovec iov = { buf_data(b), buf_used(b) };
	union fdpass_buf cm;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_attach(&mh, &cm, fds, nfds);
	ssize_t n;
	do
		n = sendmsg(m->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return n == (ssize_t)buf_used(b) ? 0 : -1;
}

/* One request: 1 answered, 0 the network process is gone, -1 violation. */
static int serve_one(struct mon *m, uint8_t *msg)
{
	union fdpass_buf cm;
	struct iovec iov = { msg, PRIV_MSG_MAX + 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_expect(&mh, &cm);
	ssize_t n;
	do
		n = recvmsg(m->sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	bool had_fds = fdpass_take(&mh, NULL, 0) > 0; /* closed: requests carry none */
	if (had_fds || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return violation(m, "a request with fds attached, or oversized"), -1;
	const struct priv_entry *e = NULL;
	for (size_t i = 0; i < sizeof(priv_table) / sizeof(priv_table[0]); i++)
		if (priv_table[i].type == msg[0])
			e = &priv_table[i];
	if (!e) {
		char why[64];
		snprintf(why, sizeof(why), "request type %u is not in the table", msg[0]);
		return violation(m, why), -1;
	}
	if ((size_t)n < e->min || (size_t)n > e->max) {
		char why[64];
		snprintf(why, sizeof(why), "request type %u with a bad length %zd", msg[0], n);
		return violation(m, why), -1;
	}
	struct rd r;
	rd_init(&r, msg + 1, (size_t)n - 1);
	struct buf out;
	buf_init(&out, PRIV_MSG_MAX);
	buf_u8(&out, PRIV_REPLY);
	buf_u8(&out, e->type);
	size_t at = buf_used(&out);
	buf_u32(&out, 0); /* result, filled in below */
	int fds[2], nfds = 0;
	int v = e->fn(m, &r, &out, fds, &nfds);
	int rc = 1;
	if (v == SSH_PRIV_FATAL || out.err) {
		if (out.err)
			violation(m, "reply too large");
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		rc = -1;
	} else {
		put_be32(buf_data(&out) + at, (uint32_t)v);
		if (send_reply(m, &out, fds, nfds) < 0)
			rc = 0; /* gone */
	}
	OPENSSL_cleanse(out.p, out.cap);
	buf_free(&out);
	return rc;
}

/* Close @fd, or point it at /dev/null if it is one of 0-2 (never reused). */
static void release_fd(int fd)
{
	if (fd > 2) {
		close(fd);
		return;
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0 && null != fd) {
		dup2(null, fd);
		close(null);
	}
}

static int wait_net(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return 255;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		if (sig == SIGSYS)
			log_err("ssh: the network process was killed by SIGSYS: it made a system "
				"call outside its seccomp allowlist");
		else
			log_err("ssh: the network process was killed by signal %d (%s)", sig,
				strsignal(sig));
	}
	return 255;
}

/*
 * Until a success, a request must come before the login grace time is up
 * (a network process that stalls forever would hold a `serve` slot).
 * 1 readable, 0 gone, -1 too late.
 */
static int await_request(struct mon *m, time_t deadline)
{
	while (!m->a->authed && m->a->grace_seconds) {
		time_t now = time(NULL);
		if (now >= deadline)
			return violation(m, "no authentication within the login grace time"), -1;
		struct pollfd p = { .fd = m->sock, .events = POLLIN };
		int n = poll(&p, 1, (int)(deadline - now) * 1000);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return 0;
	}
	return 1;
}

int privsep_preopen(struct ssh_authority *a)
{
	if (a->open_guest(a->open_arg, &a->guest) < 0) {
		a->guest = TP_INIT;
		return -1;
	}
	struct buf g;
	buf_init(&g, 512);
	wire_put_greeting(&g, "wicket-ssh_" WICKET_VERSION);
	/* A fresh stream takes one short line without blocking. */
	while (buf_used(&g)) {
		ssize_t n = write(a->guest.wfd, buf_data(&g), buf_used(&g));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_consume(&g, (size_t)n);
		a->guest_greeted = true;
	}
	buf_free(&g);
	return 0;
}

int privsep_run(struct ssh_authority *a, const struct ssh_server_cfg *cfg, int rfd, int wfd)
{
	int sp[2];
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_err("ssh: socketpair: %s", strerror(errno));
		return 255;
	}
	/* Nothing buffered may be written twice. */
	fflush(stderr);
	if (cfg->pktlog)
		fflush(cfg->pktlog);
	/* Looked up here: nothing NSS loads or opens reaches the network process. */
	struct privsep_ids ids = { 65534, 65534 };
	const struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
	if (pw)
		ids = (struct privsep_ids){ pw->pw_uid, pw->pw_gid };
	pid_t monitor = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_err("ssh: fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return 255;
	}
	if (pid == 0) {
		close(sp[0]);
		privsep_exec_net(rfd, wfd, sp[1], cfg->pktlog, monitor);
	}
	close(sp[1]);
	if (privsep_send_config(sp[0], cfg, ids) < 0)
		log_err("ssh: cannot configure the network process: %s", strerror(errno));
	/* Only the network process talks to the client. */
	release_fd(rfd);
	if (wfd != rfd)
		release_fd(wfd);
	struct mon m = { .a = a, .sock = sp[0], .net = pid };
	uint8_t *msg = malloc(PRIV_MSG_MAX + 1);
	int r = msg ? 1 : -1;
	if (!msg)
		violation(&m, "out of memory");
	time_t deadline = time(NULL) + a->grace_seconds + GRACE_SLACK;
	while (r > 0) {
		r = await_request(&m, deadline);
		if (r > 0)
			r = serve_one(&m, msg);
	}
	free(msg);
	int code;
	if (r < 0) {
		log_err("ssh: %s: monitor: %s: ending the network process",
			a->peer_addr ? a->peer_addr : "", m.why);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		code = 255;
	} else {
		code = wait_net(pid);
	}
	close(sp[0]);
	tp_close(&a->guest);
	return code;
}
