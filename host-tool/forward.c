/* SPDX-License-Identifier: MIT */
/*
 * wicket forward TARGET -L [BIND:]PORT:HOST:HOSTPORT | -L [BIND:]PORT:/PATH ...
 *
 * Listen on the host; every accepted connection becomes a direct-tcpip (or
 * direct-streamlocal@openssh.com) channel on one bare connection to the
 * agent, which connects to HOST:HOSTPORT (or PATH) inside the guest.  Runs
 * until SIGINT/SIGTERM/SIGHUP (exit 0) or until the agent goes away (255).
 */
#include "forward.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "cli.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "sockchan.h"
#include "target.h"

#define LFWD_MAX 64
#define LFWD_MAX_SOCKS 8
#define LFWD_DEFAULT_BIND "127.0.0.1"

struct fwd_main;

/* One -L: its listening sockets and where connections go. */
struct lfwd {
	struct fwd_main *m;
	const char *spec;
	char *buf;		/* owns the strings below */
	const char *bind;	/* NULL: the default */
	const char *lport;
	const char *host;	/* remote TCP host, or NULL ... */
	uint32_t hport;
	const char *path;	/* ... remote Unix socket path */
	char dest[300];		/* for messages */
	struct watch w[LFWD_MAX_SOCKS];
	unsigned nsocks;
	struct loop_pause pause; /* accept() ran out of fds or memory */
};

struct fwd_main {
	struct loop loop;
	struct conn c;
	const char *target;
	struct lfwd l[LFWD_MAX];
	int nl;
	struct sockchan_list streams;
	struct watch wsig;
	int sigfd;
	bool interrupted;
};

/* One accepted connection. */
struct lconn {
	struct sockchan sc;
	struct lfwd *l;
};

/* ---- -L parsing ---- */

/*
 * Split @s at ':' into at most @max fields.  "[...]" is one field without
 * its brackets (IPv6 addresses); a field starting with '/' is a path and
 * takes the rest of the string, colons included.  -1 when malformed.
 */
static int split_spec(char *s, char **f, int max)
{
	int n = 0;
	char *p = s;
	for (;;) {
		if (n == max)
			return -1;
		if (*p == '/') {
			f[n++] = p;
			return n;
		}
		if (*p == '[') {
			char *e = strchr(p, ']');
			if (!e || (e[1] && e[1] != ':'))
				return -1;
			*e = 0;
			f[n++] = p + 1;
			if (!e[1])
				return n;
			p = e + 2;
			continue;
		}
		f[n++] = p;
		char *c = strchr(p, ':');
		if (!c)
			return n;
		*c = 0;
		p = c + 1;
	}
}

static bool parse_port(const char *s, bool zero_ok, uint32_t *out)
{
	char *end;
	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || v > 65535 || (!v && !zero_ok))
		return false;
	*out = (uint32_t)v;
	return true;
}

static int parse_l(struct lfwd *l, const char *spec)
{
	l->spec = spec;
	l->buf = strdup(spec);
	if (!l->buf)
		return usage_error("%s", "out of memory");
	char *f[4];
	int n = split_spec(l->buf, f, 4);
	uint32_t lp;
	const char *bad = "-L %s: expected [BIND:]PORT:HOST:HOSTPORT or [BIND:]PORT:/PATH";
	if (n < 2)
		return usage_error(bad, spec);
	if (f[n - 1][0] == '/') {
		if (n > 3)
			return usage_error(bad, spec);
		l->path = f[n - 1];
		if (strlen(l->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return usage_error("-L %s: socket path too long", spec);
		l->lport = f[n - 2];
		l->bind = n == 3 ? f[0] : NULL;
		snprintf(l->dest, sizeof(l->dest), "%s", l->path);
	} else {
		if (n < 3)
			return usage_error(bad, spec);
		l->bind = n == 4 ? f[0] : NULL;
		l->lport = f[n - 3];
		l->host = f[n - 2];
		if (!*l->host || strlen(l->host) > 255)
			return usage_error("-L %s: bad HOST", spec);
		if (!parse_port(f[n - 1], false, &l->hport))
			return usage_error("-L %s: HOSTPORT must be a number 1..65535", spec);
		snprintf(l->dest, sizeof(l->dest), strchr(l->host, ':') ? "[%s]:%u" : "%s:%u",
			 l->host, l->hport);
	}
	if (!parse_port(l->lport, true, &lp))
		return usage_error("-L %s: PORT must be a number 0..65535", spec);
	return 0;
}

/* ---- connections ---- */

static void lconn_open_failed(struct sockchan *sc, uint32_t reason, struct sv msg)
{
	struct lconn *lc = sc->owner;
	char m[200];
	sv_printable(msg, m, sizeof(m));
	fprintf(stderr, "wicket: %s: forwarding to %s failed: %s (reason %u)\n",
		lc->l->m->target, lc->l->dest, m, reason);
}

static void lconn_release(struct sockchan *sc)
{
	free(sc->owner);
}

static const struct sockchan_hooks lconn_hooks = {
	.open_failed = lconn_open_failed,
	.release = lconn_release,
};

/* Numeric host and port of a socket address. */
static void addr_name(const struct sockaddr *sa, socklen_t sl, char *host, size_t hl,
		      uint32_t *port)
{
	char serv[16];
	if (getnameinfo(sa, sl, host, (socklen_t)hl, serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hl, "%s", "0.0.0.0");
		*port = 0;
		return;
	}
	*port = (uint32_t)strtoul(serv, NULL, 10);
}

static short listen_want(struct watch *w)
{
	struct lfwd *l = w->data;
	if (loop_pause_active(&l->m->loop, &l->pause))
		return 0;
	return conn_can_queue(&l->m->c) ? POLLIN : 0;
}

static void listen_ready(struct watch *w, short rev)
{
	struct lfwd *l = w->data;
	struct fwd_main *m = l->m;
	(void)rev;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		loop_accept_failed(&l->pause, errno, l->spec);
		return;
	}
	struct lconn *lc = calloc(1, sizeof(*lc));
	if (!lc) {
		close(fd);
		return;
	}
	lc->l = l;
	sockchan_init(&lc->sc, &m->loop, &m->streams, fd, &lconn_hooks, lc);
	struct buf args;
	buf_init(&args, 1024);
	const char *type;
	if (l->path) {
		/* string socket path, string reserved, uint32 reserved */
		type = "direct-streamlocal@openssh.com";
		buf_cstr(&args, l->path);
		buf_cstr(&args, "");
		buf_u32(&args, 0);
	} else {
		/* string host, uint32 port, string originator address, uint32 originator port */
		char oh[NI_MAXHOST];
		uint32_t op;
		addr_name((struct sockaddr *)&ss, sl, oh, sizeof(oh), &op);
		type = "direct-tcpip";
		buf_cstr(&args, l->host);
		buf_u32(&args, l->hport);
		buf_cstr(&args, oh);
		buf_u32(&args, op);
	}
	int r = args.err ? -ENOMEM
			 : sockchan_open(&lc->sc, &m->c, type, buf_data(&args), buf_used(&args));
	buf_free(&args);
	if (r < 0) {
		fprintf(stderr, "wicket: %s: cannot open a channel for %s\n", m->target, l->dest);
		sockchan_free(&lc->sc);
		free(lc);
	}
}

static const struct watch_ops listen_ops = { listen_want, listen_ready };

static void set_port(struct sockaddr *sa, uint32_t port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* Listen on every address BIND stands for; prints one line per socket. */
static int lfwd_listen(struct lfwd *l)
{
	const char *node = l->bind ? l->bind : LFWD_DEFAULT_BIND;
	if (!*node || strcmp(node, "*") == 0)
		node = NULL;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	int e = getaddrinfo(node, l->lport, &hints, &res);
	if (e) {
		fprintf(stderr, "wicket: -L %s: %s: %s\n", l->spec, node ? node : "*",
			e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
		return -1;
	}
	int err = EADDRNOTAVAIL;
	uint32_t port = 0;
	for (struct addrinfo *a = res; a && l->nsocks < LFWD_MAX_SOCKS; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (port)
			set_port(a->ai_addr, port); /* PORT 0: the same port for every family */
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 128) < 0) {
			err = errno;
			close(fd);
			continue;
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char h[NI_MAXHOST];
		uint32_t p = 0;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			addr_name((struct sockaddr *)&ss, sl, h, sizeof(h), &p);
		port = p;
		fprintf(stderr, strchr(h, ':') ? "forwarding [%s]:%u -> %s in %s\n"
					       : "forwarding %s:%u -> %s in %s\n",
			h, p, l->dest, l->m->target);
		l->w[l->nsocks++] = (struct watch){ .fd = fd, .ops = &listen_ops, .data = l };
		loop_add(&l->m->loop, &l->w[l->nsocks - 1]);
	}
	freeaddrinfo(res);
	if (!l->nsocks) {
		fprintf(stderr, "wicket: -L %s: cannot listen: %s\n", l->spec, strerror(err));
		return -1;
	}
	return 0;
}

/* ---- signals and the connection ---- */

static short sig_want(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static void sig_ready(struct watch *w, short rev)
{
	struct fwd_main *m = w->data;
	struct signalfd_siginfo si;
	(void)rev;
	while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		m->interrupted = true;
}

static const struct watch_ops sig_ops = { sig_want, sig_ready };

static const struct conn_ops fwd_conn_ops = { 0 };

static int forward_run(struct fwd_main *m, struct tp *tp, FILE *pktlog)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sigfd < 0) {
		fprintf(stderr, "wicket: signalfd: %s\n", strerror(errno));
		return WICKET_EXIT_FAILURE;
	}
	m->wsig = (struct watch){ .fd = m->sigfd, .ops = &sig_ops, .data = m };
	loop_add(&m->loop, &m->wsig);

	fcntl(tp->rfd, F_SETFL, fcntl(tp->rfd, F_GETFL) | O_NONBLOCK);
	if (tp->wfd != tp->rfd)
		fcntl(tp->wfd, F_SETFL, fcntl(tp->wfd, F_GETFL) | O_NONBLOCK);
	struct conn_cfg ccfg = { .software = "wicket_" WICKET_VERSION, .pktlog = pktlog,
				.compress = wicket_compress, .nonce = client_nonce() };
	if (conn_init(&m->c, &m->loop, tp->rfd, tp->wfd, &ccfg, &fwd_conn_ops, m) < 0) {
		fprintf(stderr, "wicket: out of memory\n");
		return WICKET_EXIT_FAILURE;
	}
	int code = 0;
	for (int i = 0; i < m->nl && !code; i++)
		if (lfwd_listen(&m->l[i]) < 0)
			code = WICKET_EXIT_FAILURE;
	while (!code && !m->c.ended) {
		if (loop_once(&m->loop, -1) < 0)
			break;
		if (m->interrupted) {
			conn_disconnect(&m->c, "forwarding ended by signal");
			conn_service(&m->c);
			break;
		}
		conn_service(&m->c);
	}
	if (!code && !m->interrupted) {
		target_explain_loss(m->target, m->c.reason, sizeof(m->c.reason));
		fprintf(stderr, "wicket: %s: connection lost: %s\n", m->target,
			m->c.reason[0] ? m->c.reason : "closed by the agent");
		code = WICKET_EXIT_FAILURE;
	}
	conn_abort(&m->c); /* every channel's closed(): local sockets are closed */
	sockchan_list_drop(&m->streams);
	conn_free(&m->c);
	close(m->sigfd);
	return code;
}

int cmd_forward(int argc, char **argv, int i, struct globals *g)
{
	static struct fwd_main m;
	m = (struct fwd_main){ .sigfd = -1 };
	loop_init(&m.loop);
	int code = WICKET_EXIT_FAILURE;
	for (; i < argc; i++) {
		const char *a = argv[i];
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			goto out;
		if (r)
			continue;
		if (strncmp(a, "-L", 2) == 0) {
			const char *spec = a[2] ? a + 2 : NULL;
			if (!spec && i + 1 >= argc) {
				usage_error("%s needs an argument", a);
				goto out;
			}
			if (!spec)
				spec = argv[++i];
			if (m.nl == LFWD_MAX) {
				usage_error("at most %s -L forwards", "64");
				goto out;
			}
			m.l[m.nl].m = &m;
			if (parse_l(&m.l[m.nl++], spec))
				goto out;
			continue;
		}
		if (a[0] == '-') {
			usage_error("unknown option '%s'", a);
			goto out;
		}
		if (m.target) {
			usage_error("forward takes one TARGET; '%s' is extra", a);
			goto out;
		}
		m.target = a;
	}
	if (!m.target) {
		usage_error("%s needs a TARGET", "forward");
		goto out;
	}
	if (!m.nl) {
		usage_error("%s needs at least one -L [BIND:]PORT:HOST:HOSTPORT", "forward");
		goto out;
	}
	struct tp tp;
	if (open_target(m.target, g, &tp) < 0)
		goto out;
	code = forward_run(&m, &tp, g->pktlog);
	tp_close(&tp);
out:
	for (int k = 0; k < m.nl; k++) {
		for (unsigned s = 0; s < m.l[k].nsocks; s++) {
			loop_del(&m.loop, &m.l[k].w[s]);
			close(m.l[k].w[s].fd);
		}
		free(m.l[k].buf);
	}
	loop_free(&m.loop);
	return code;
}
