/* SPDX-License-Identifier: MIT */
/*
 * The network process of the SSH server (privsep.h): it forgets the
 * secrets it inherited, isolates itself, runs the transport, and asks the
 * monitor for everything the transport may not do itself (ssh_priv_ops).
 * Its seccomp profile is the union of the lists declared next to the code
 * it runs; a syscall added there without its declaration kills it.
 */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "fdpass.h"
#include "log.h"
#include "syscalls.h"

/* Requests to the monitor; close() for fds that arrive with a reply. */
SYSCALLS(privsep_net) = { SC("sendmsg"), SC("recvmsg"), SC("close"), SC_END };

SYSCALLS_DECLARE(log);
SYSCALLS_DECLARE(pktlog);
SYSCALLS_DECLARE(sshs_transport);
SYSCALLS_DECLARE(sshs_relay);

static const struct syscall_rule *const net_lists[] = {
	libc_syscalls,		  /* lib/sandbox.c */
	log_syscalls,		  /* lib/log.c */
	fdpass_syscalls,	  /* lib/fdpass.c */
	pktlog_syscalls,	  /* lib/pktlog.c: the same calls as --packet-log here */
	sshs_transport_syscalls,  /* host-tool/ssh/transport.c */
	sshs_relay_syscalls,	  /* host-tool/ssh/relay.c */
	privsep_net_syscalls,	  /* this file */
	NULL,
};

const struct sandbox_profile ssh_net_profile = {
	.name = "wicket ssh network process",
	.lists = net_lists,
};

/* Lowest fd numbers are free after the clean-up, so this is enough. */
#define NET_NOFILE 16

enum probe { PROBE_NONE, PROBE_OPENAT, PROBE_GUEST_EARLY, PROBE_BAD_REQUEST, PROBE_CLAIM_AUTH };

struct net {
	int sock;
	enum probe probe;
	bool probed;
};

/* ---- requests ---- */

/*
 * call() - send @req, wait for the reply to it.  The reply's fields start
 * at *body (a view into @reply); fds that came with it in @fds.  Returns the
 * result, or SSH_PRIV_FATAL when the monitor is gone or answered nonsense.
 */
static int call(struct net *n, struct buf *req, uint8_t *reply, size_t cap, struct rd *body,
		int *fds, int *nfds)
{
	int maxfds = nfds ? *nfds : 0;
	if (nfds)
		*nfds = 0;
	if (req->err)
		return SSH_PRIV_FATAL;
	struct iovec out = { buf_data(req), buf_used(req) };
	struct msghdr omh = { .msg_iov = &out, .msg_iovlen = 1 };
	ssize_t w;
	do
		w = sendmsg(n->sock, &omh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)buf_used(req))
		return SSH_PRIV_FATAL;
	union fdpass_buf cm;
	struct iovec iov = { reply, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_expect(&mh, &cm);
	ssize_t r;
	do
		r = recvmsg(n->sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	int tmp[2];
	int got = r > 0 ? fdpass_take(&mh, tmp, 2) : 0;
	bool ok = r >= 6 && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && got <= maxfds &&
		  reply[0] == PRIV_REPLY && reply[1] == buf_data(req)[0];
	if (!ok) {
		for (int i = 0; i < got && i < 2; i++)
			close(tmp[i]);
		return SSH_PRIV_FATAL;
	}
	for (int i = 0; i < got; i++)
		fds[i] = tmp[i];
	if (nfds)
		*nfds = got;
	rd_init(body, reply + 2, (size_t)r - 2);
	int32_t v = (int32_t)rd_u32(body); /* result */
	if (v < SSH_PRIV_FATAL || v > SSH_PRIV_OK)
		return SSH_PRIV_FATAL;
	return v;
}

/* A small request and its reply in one go, no reply fields expected. */
static int call_simple(struct net *n, struct buf *req)
{
	uint8_t reply[64];
	struct rd body;
	int v = call(n, req, reply, sizeof(reply), &body, NULL, NULL);
	buf_free(req);
	if (v != SSH_PRIV_FATAL && !rd_end(&body))
		return SSH_PRIV_FATAL;
	return v;
}

/* Test-only: misbehave once, as a compromised process would (privsep.h). */
static void run_probe(struct net *n)
{
	if (n->probed)
		return;
	n->probed = true;
	struct buf b;
	switch (n->probe) {
	case PROBE_OPENAT: {
		log_warn("test: the network process calls openat(2)");
		long r = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_CLOEXEC);
		log_warn("test: openat returned %ld: no seccomp filter in place", r);
		if (r >= 0)
			close((int)r);
		break;
	}
	case PROBE_GUEST_EARLY:
		log_warn("test: the network process asks for the guest before authentication");
		buf_init(&b, 16);
		buf_u8(&b, PRIV_GUEST);
		call_simple(n, &b);
		break;
	case PROBE_BAD_REQUEST:
		log_warn("test: the network process sends a request not in the table");
		buf_init(&b, 16);
		buf_u8(&b, 99);
		call_simple(n, &b);
		break;
	default:
		break;
	}
}

static int net_sign(void *ctx, struct sv algo, const uint8_t h[32], struct buf *sig)
{
	struct net *n = ctx;
	struct buf req;
	buf_init(&req, 128);
	buf_u8(&req, PRIV_SIGN);
	buf_sv(&req, algo);
	buf_put(&req, h, 32);
	uint8_t reply[4096];
	struct rd body;
	int v = call(n, &req, reply, sizeof(reply), &body, NULL, NULL);
	buf_free(&req);
	if (v != 0)
		return -1;
	struct sv s = rd_str(&body); /* signature blob */
	if (!rd_end(&body))
		return -1;
	buf_put(sig, s.p, s.n);
	run_probe(n);
	return sig->err ? -1 : 0;
}

/* Test-only "claim-auth": a refusal read as success. */
static int claim(struct net *n, int v, int ok)
{
	if (n->probe == PROBE_CLAIM_AUTH && v == SSH_PRIV_REFUSED) {
		log_warn("test: the network process ignores the monitor's refusal");
		return ok;
	}
	return v;
}

/* The lists privsep_put_lists() sent; -1 when malformed or out of memory. */
static int get_permits(struct rd *r, struct authkeys_permit **v, size_t *n)
{
	uint32_t c = rd_u32(r); /* entries */
	if (r->err || c > AUTHKEYS_MAX_LIST)
		return -1;
	*v = c ? calloc(c, sizeof(**v)) : NULL;
	if (c && !*v)
		return -1;
	for (uint32_t i = 0; i < c; i++, (*n)++) {
		struct sv h = rd_str(r);  /* host */
		uint32_t p = rd_u32(r);	  /* port, or (uint32_t)-1 for any */
		if (r->err || sv_has_nul(h) || (p != UINT32_MAX && (p < 1 || p > 65535)) ||
		    !((*v)[i].host = sv_strdup(h)))
			return -1;
		(*v)[i].port = p == UINT32_MAX ? -1 : (int)p;
	}
	return 0;
}

static int get_lists(struct rd *r, struct authkeys_opts *o)
{
	if (get_permits(r, &o->permitopen, &o->npermitopen) < 0 ||
	    get_permits(r, &o->permitlisten, &o->npermitlisten) < 0)
		return -1;
	uint32_t c = rd_u32(r); /* environment entries */
	if (r->err || c > AUTHKEYS_MAX_LIST)
		return -1;
	o->env = c ? calloc(c, sizeof(*o->env)) : NULL;
	if (c && !o->env)
		return -1;
	for (uint32_t i = 0; i < c; i++, o->nenv++) {
		struct sv e = rd_str(r); /* NAME=value */
		if (r->err || sv_has_nul(e) || !memchr(e.p, '=', e.n) || !(o->env[i] = sv_strdup(e)))
			return -1;
	}
	return 0;
}

static int net_pubkey(void *ctx, const struct ssh_pubkey_req *rq, struct authkeys_opts *opts)
{
	struct net *n = ctx;
	memset(opts, 0, sizeof(*opts));
	struct buf req;
	buf_init(&req, PRIV_MSG_MAX);
	buf_u8(&req, PRIV_PUBKEY);
	buf_sv(&req, rq->user);
	buf_sv(&req, rq->service);
	buf_sv(&req, rq->algo);
	buf_sv(&req, rq->blob);
	buf_bool(&req, rq->has_sig);
	if (rq->has_sig)
		buf_sv(&req, rq->sig);
	if (req.err) { /* larger than any key we accept */
		buf_free(&req);
		return SSH_PRIV_REFUSED;
	}
	uint8_t *reply = malloc(PRIV_MSG_MAX);
	if (!reply) {
		buf_free(&req);
		return SSH_PRIV_FATAL;
	}
	struct rd body;
	int v = call(n, &req, reply, PRIV_MSG_MAX, &body, NULL, NULL);
	buf_free(&req);
	if (v == SSH_PRIV_OK) {
		uint32_t f = rd_u32(&body);	/* option flags */
		bool has_cmd = rd_bool(&body);	/* command= present */
		struct sv cmd = rd_str(&body);	/* forced command */
		struct sv comment = rd_str(&body); /* key comment */
		if (get_lists(&body, opts) < 0 || !rd_end(&body) || sv_has_nul(cmd)) {
			authkeys_opts_clear(opts);
			v = SSH_PRIV_FATAL;
		} else {
			opts->restrict_all = f & PRIV_OPT_RESTRICT;
			opts->no_port_forwarding = f & PRIV_OPT_NO_PORT_FORWARDING;
			opts->no_pty = f & PRIV_OPT_NO_PTY;
			opts->no_agent_forwarding = f & PRIV_OPT_NO_AGENT;
			opts->no_x11_forwarding = f & PRIV_OPT_NO_X11;
			opts->no_user_rc = f & PRIV_OPT_NO_USER_RC;
			opts->port_forwarding = f & PRIV_OPT_PORT_FORWARDING;
			opts->pty = f & PRIV_OPT_PTY;
			sv_printable(comment, opts->comment, sizeof(opts->comment));
			if (has_cmd && !(opts->command = sv_strdup(cmd)))
				v = SSH_PRIV_FATAL;
		}
	} else if (v != SSH_PRIV_FATAL && !rd_end(&body)) {
		v = SSH_PRIV_FATAL;
	}
	free(reply);
	return claim(n, v, rq->has_sig ? SSH_PRIV_OK : SSH_PRIV_PK_OK);
}

static int net_token(void *ctx, struct sv user, struct sv response)
{
	struct net *n = ctx;
	struct buf req;
	buf_init(&req, PRIV_MSG_MAX);
	buf_u8(&req, PRIV_TOKEN);
	buf_sv(&req, user);
	buf_sv(&req, response);
	if (req.err) {
		buf_free(&req);
		return SSH_PRIV_REFUSED;
	}
	int v = call_simple(n, &req);
	return claim(n, v, SSH_PRIV_OK);
}

static int net_none(void *ctx, struct sv user)
{
	struct net *n = ctx;
	struct buf req;
	buf_init(&req, 1 + 4 + 1024);
	buf_u8(&req, PRIV_NONE);
	buf_sv(&req, user);
	if (req.err) {
		buf_free(&req);
		return SSH_PRIV_REFUSED;
	}
	return claim(n, call_simple(n, &req), SSH_PRIV_OK);
}

static int net_open_guest(void *ctx, struct tp *out, bool *greeted)
{
	struct net *n = ctx;
	struct buf req;
	buf_init(&req, 16);
	buf_u8(&req, PRIV_GUEST);
	uint8_t reply[64];
	struct rd body;
	int fds[2], nfds = 2;
	int v = call(n, &req, reply, sizeof(reply), &body, fds, &nfds);
	buf_free(&req);
	*greeted = v == SSH_PRIV_OK ? rd_bool(&body) : false; /* greeting already sent */
	if (v != SSH_PRIV_OK || !rd_end(&body) || nfds == 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return -1;
	}
	*out = (struct tp){ .rfd = fds[0], .wfd = fds[nfds - 1], .pid = 0 };
	return 0;
}

static const struct ssh_priv_ops net_ops = {
	.sign = net_sign,
	.pubkey = net_pubkey,
	.token = net_token,
	.none = net_none,
	.open_guest = net_open_guest,
};

/* ---- isolation ---- */

static enum probe probe_from_env(void)
{
	const char *t = getenv("WICKET_TESTING"), *p = getenv("WICKET_TEST_SANDBOX_PROBE");
	if (!t || strcmp(t, "1") != 0 || !p)
		return PROBE_NONE;
	static const struct {
		const char *name;
		enum probe probe;
	} probes[] = {
		{ "openat", PROBE_OPENAT },
		{ "guest-early", PROBE_GUEST_EARLY },
		{ "bad-request", PROBE_BAD_REQUEST },
		{ "claim-auth", PROBE_CLAIM_AUTH },
	};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		if (strcmp(p, probes[i].name) == 0)
			return probes[i].probe;
	return PROBE_NONE;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* Close every fd above 2 except @keep. */
static void close_others(int *keep, size_t n)
{
	qsort(keep, n, sizeof(*keep), cmp_int);
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	close_range(from, ~0u, 0);
}

static bool is_regular(int fd)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* One packet each way with @ci (and @mac). */
static int prewarm_one(const struct cipher_info *ci, const struct mac_info *mac)
{
	uint8_t key[64] = { 0 }, iv[16] = { 0 }, pkt[64 + 64] = { 0 };
	for (int enc = 0; enc < 2; enc++) {
		struct ssh_cipher c;
		memset(&c, 0, sizeof(c));
		if (cipher_init(&c, ci, key, iv, mac, key, enc) < 0)
			return -1;
		put_be32(pkt, 60);
		if (enc)
			cipher_seal(&c, 0, pkt, 64);
		else
			cipher_open(&c, 0, pkt, 64);
		cipher_free(&c);
	}
	return 0;
}

/* Make libcrypto and zlib load and allocate what they need, before the filter. */
static int prewarm(void)
{
	uint8_t key[64];
	if (kex_prewarm() < 0 || cipher_prewarm() < 0)
		return -1;
	for (const char *p = cipher_names; *p;) {
		size_t l = strcspn(p, ",");
		const struct cipher_info *ci = cipher_find(p, l);
		/* Every MAC with a cipher that needs one. */
		for (const char *m = mac_names; ci && cipher_needs_mac(ci) && *m;) {
			size_t ml = strcspn(m, ",");
			if (prewarm_one(ci, mac_find(m, ml)) < 0)
				return -1;
			m += ml + (m[ml] == ',');
		}
		if (ci && !cipher_needs_mac(ci) && prewarm_one(ci, NULL) < 0)
			return -1;
		p += l + (p[l] == ',');
	}
#ifdef HAVE_ZLIB
	for (int out = 0; out < 2; out++) {
		struct ssh_dir d;
		memset(&d, 0, sizeof(d));
		if (comp_start(&d, out) == 0)
			comp_end(&d);
	}
#endif
	return RAND_bytes(key, sizeof(key)) == 1 ? 0 : -1;
}

static int net_isolate(const struct ssh_server_cfg *cfg, int rfd, int wfd, int sock,
		       pid_t monitor, struct privsep_ids ids)
{
	/* Without the monitor there is nothing left to do. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != monitor)
		return -1;
	prctl(PR_SET_NAME, "wicket-ssh-net", 0, 0, 0);
	if (chdir("/") < 0)
		return -1;
	int keep[8], nk = 0;
	keep[nk++] = rfd;
	keep[nk++] = wfd;
	keep[nk++] = sock;
	if (cfg->pktlog)
		keep[nk++] = fileno(cfg->pktlog);
	close_others(keep, (size_t)nk);
	if (cfg->pktlog && cfg->pktlog != stderr) {
		/* Our own buffer: stdio need not fstat() the file inside the sandbox. */
		static char pbuf[BUFSIZ];
		setvbuf(cfg->pktlog, pbuf, _IOLBF, sizeof(pbuf));
	}
	if (prewarm() < 0) {
		log_err("ssh: libcrypto self-test failed");
		return -1;
	}
	struct sandbox_opts o = {
		.profile = &ssh_net_profile,
		.seccomp = sandbox_available(),
		.nofile = NET_NOFILE,
		/* Logs may go to a file we hold open; otherwise no file grows. */
		.no_files = !is_regular(2) && !(cfg->pktlog && is_regular(fileno(cfg->pktlog))),
		.no_fork = true,
		/* As root it becomes nobody: a way out of the filter is not uid 0. */
		.drop_user = geteuid() == 0,
		.uid = ids.uid,
		.gid = ids.gid,
		.drop_caps = true,
	};
	return sandbox_isolate(&o);
}

void privsep_net_main(const struct ssh_server_cfg *cfg, int rfd, int wfd, int sock,
		      pid_t monitor, struct privsep_ids ids)
{
	struct net n = { .sock = sock, .probe = probe_from_env() };
	if (net_isolate(cfg, rfd, wfd, sock, monitor, ids) < 0) {
		log_err("ssh: cannot sandbox the network process: refusing to serve");
		_exit(255);
	}
	struct ssh_server_cfg c = *cfg;
	c.priv = &net_ops;
	c.priv_ctx = &n;
	int code = sshs_run(&c, rfd, wfd);
	if (c.pktlog)
		fflush(c.pktlog);
	_exit(code);
}
