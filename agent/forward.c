/* SPDX-License-Identifier: MIT */
#include "forward.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "sockchan.h"
#include "spawn.h"
#include "syscalls.h"

/* Sockets behind one tcpip-forward ("" or "localhost" bind several families). */
#define FWD_MAX_SOCKS 8
#define FWD_MAX_HOST 255
#define FWD_BACKLOG 128

static const char prohibited[] = "administratively prohibited";

/* ---- outgoing connections: direct-tcpip, direct-streamlocal@openssh.com ---- */

struct fwd_direct {
	struct sockchan sc;
	struct fwd_ctx *f;
	struct addrinfo *ai, *next; /* addresses still to try */
	int err;		    /* errno of the last failed attempt */
	char what[FWD_MAX_HOST + 16];
};

static void direct_release(struct sockchan *sc)
{
	struct fwd_direct *d = sc->owner;
	if (d->ai)
		spawn_freeaddrinfo(d->ai);
	free(d);
}

/*
 * Start connecting to the next address.  1: connected, 0: in progress,
 * -1: none left (d->err says why).
 */
static int direct_try(struct fwd_direct *d)
{
	while (d->next) {
		struct addrinfo *a = d->next;
		d->next = a->ai_next;
		if (a->ai_family == AF_UNIX) {
			/* A path: the monitor connects (as the session user). */
			int ufd = spawn_unix_connect(((struct sockaddr_un *)a->ai_addr)->sun_path);
			if (ufd < 0) {
				d->err = -ufd;
				continue;
			}
			sockchan_connecting(&d->sc, ufd);
			d->sc.connecting = false;
			return 1;
		}
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		if (fd < 0) {
			d->err = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			sockchan_connecting(&d->sc, fd);
			d->sc.connecting = false;
			return 1;
		}
		if (errno == EINPROGRESS) {
			sockchan_connecting(&d->sc, fd);
			return 0;
		}
		d->err = errno;
		close(fd);
	}
	return -1;
}

static void direct_connected(struct sockchan *sc, int err)
{
	struct fwd_direct *d = sc->owner;
	if (!err) {
		log_debug("forward: connected to %s", d->what);
		spawn_freeaddrinfo(d->ai);
		d->ai = d->next = NULL;
		sockchan_confirm(sc);
		return;
	}
	d->err = err;
	close(sc->fd);
	sc->fd = sc->w.fd = sc->out.fd = -1;
	int r = direct_try(d);
	if (r == 1) {
		sockchan_confirm(sc);
		return;
	}
	if (r == 0)
		return;
	char msg[300];
	snprintf(msg, sizeof(msg), "connect failed: %s", strerror(d->err));
	log_info("forward to %s: %s", d->what, msg);
	sockchan_reject(sc, OPEN_CONNECT_FAILED, msg);
}

static const struct sockchan_hooks direct_hooks = {
	.connected = direct_connected,
	.release = direct_release,
};

/* Copy a wire string that must be a C string of at most @max bytes. */
static bool sv_to_cstr(struct sv s, char *out, size_t max)
{
	if (s.n > max || sv_has_nul(s))
		return false;
	if (s.n)
		memcpy(out, s.p, s.n);
	out[s.n] = 0;
	return true;
}

static uint32_t fail_msg(struct fwd_ctx *f, const char **msg, uint32_t reason, const char *fmt,
			 const char *arg)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(f->msg, sizeof(f->msg), fmt, arg);
#pragma GCC diagnostic pop
	*msg = f->msg;
	return reason;
}

static struct fwd_direct *direct_new(struct fwd_ctx *f)
{
	struct fwd_direct *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->f = f;
	sockchan_init(&d->sc, f->loop, &f->streams, -1, &direct_hooks, d);
	d->err = ECONNREFUSED;
	return d;
}

/* After the first attempt: confirm now, answer later, or refuse. */
static uint32_t direct_start(struct fwd_ctx *f, struct fwd_direct *d, struct chan *ch,
			     const char **msg)
{
	int r = direct_try(d);
	if (r < 0) {
		log_info("forward to %s: connect failed: %s", d->what, strerror(d->err));
		fail_msg(f, msg, OPEN_CONNECT_FAILED, "connect failed: %s", strerror(d->err));
		sockchan_free(&d->sc);
		direct_release(&d->sc);
		return OPEN_CONNECT_FAILED;
	}
	sockchan_attach(&d->sc, ch);
	if (r == 1) {
		spawn_freeaddrinfo(d->ai);
		d->ai = d->next = NULL;
		return 0;
	}
	return CHAN_OPEN_DEFERRED;
}

/* direct-tcpip: string host, uint32 port, string originator address, uint32 originator port. */
static uint32_t open_direct_tcpip(struct fwd_ctx *f, struct chan *ch, struct rd *r,
				  const char **msg)
{
	struct sv host = rd_str(r);
	uint32_t port = rd_u32(r);
	struct sv orig = rd_str(r);
	uint32_t oport = rd_u32(r);
	char h[FWD_MAX_HOST + 1], o[64];
	if (!rd_end(r))
		return fail_msg(f, msg, OPEN_CONNECT_FAILED, "%s", "malformed direct-tcpip open");
	if (!sv_to_cstr(host, h, FWD_MAX_HOST) || !h[0] || port > 65535)
		return fail_msg(f, msg, OPEN_CONNECT_FAILED, "%s", "bad host or port to connect to");
	sv_printable(orig, o, sizeof(o));
	log_debug("direct-tcpip to %s port %u from %s port %u", h, port, o, oport);
	struct fwd_direct *d = direct_new(f);
	if (!d)
		return fail_msg(f, msg, OPEN_RESOURCE_SHORTAGE, "%s", "out of memory");
	snprintf(d->what, sizeof(d->what), "%s port %u", h, port);
	char ps[16];
	snprintf(ps, sizeof(ps), "%u", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	int e = spawn_getaddrinfo(h, ps, &hints, &d->ai);
	if (e) {
		const char *why = e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e);
		log_info("forward to %s: %s", d->what, why);
		sockchan_free(&d->sc);
		direct_release(&d->sc);
		return fail_msg(f, msg, OPEN_CONNECT_FAILED, "connect failed: %s", why);
	}
	d->next = d->ai;
	return direct_start(f, d, ch, msg);
}

/* direct-streamlocal@openssh.com: string path, string reserved, uint32 reserved. */
static uint32_t open_direct_streamlocal(struct fwd_ctx *f, struct chan *ch, struct rd *r,
					const char **msg)
{
	struct sv path = rd_str(r);
	rd_str(r);
	rd_u32(r);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!rd_end(r))
		return fail_msg(f, msg, OPEN_CONNECT_FAILED, "%s",
				"malformed direct-streamlocal@openssh.com open");
	if (!sv_to_cstr(path, sun.sun_path, sizeof(sun.sun_path) - 1) || !sun.sun_path[0])
		return fail_msg(f, msg, OPEN_CONNECT_FAILED, "%s", "bad socket path");
	struct fwd_direct *d = direct_new(f);
	if (!d)
		return fail_msg(f, msg, OPEN_RESOURCE_SHORTAGE, "%s", "out of memory");
	snprintf(d->what, sizeof(d->what), "%s", sun.sun_path);
	/* One synthetic address so the TCP path does the rest. */
	struct addrinfo *a = calloc(1, sizeof(*a) + sizeof(sun));
	if (!a) {
		sockchan_free(&d->sc);
		direct_release(&d->sc);
		return fail_msg(f, msg, OPEN_RESOURCE_SHORTAGE, "%s", "out of memory");
	}
	a->ai_family = AF_UNIX;
	a->ai_socktype = SOCK_STREAM;
	a->ai_addr = (struct sockaddr *)(a + 1);
	a->ai_addrlen = sizeof(sun);
	memcpy(a->ai_addr, &sun, sizeof(sun));
	d->next = a;
	int r2 = direct_try(d);
	free(a);
	d->next = NULL;
	if (r2 < 0) {
		log_info("forward to %s: connect failed: %s", d->what, strerror(d->err));
		fail_msg(f, msg, OPEN_CONNECT_FAILED, "connect failed: %s", strerror(d->err));
		sockchan_free(&d->sc);
		direct_release(&d->sc);
		return OPEN_CONNECT_FAILED;
	}
	sockchan_attach(&d->sc, ch);
	return r2 == 1 ? 0 : CHAN_OPEN_DEFERRED;
}

bool fwd_is_channel(struct sv type)
{
	return sv_eq(type, "direct-tcpip") || sv_eq(type, "direct-streamlocal@openssh.com");
}

uint32_t fwd_open(struct fwd_ctx *f, struct chan *ch, struct sv type, struct rd *args,
		  const char **msg)
{
	if (!f->cfg->allow_forwarding) {
		log_info("forwarding refused by policy");
		*msg = prohibited;
		return OPEN_ADMINISTRATIVELY_PROHIBITED;
	}
	if (sv_eq(type, "direct-tcpip"))
		return open_direct_tcpip(f, ch, args, msg);
	return open_direct_streamlocal(f, ch, args, msg);
}

/* ---- listening forwards ---- */

struct fwd_listener {
	struct fwd_listener *next;
	struct fwd_ctx *f;
	bool is_unix;
	char addr[FWD_MAX_HOST + 1]; /* bind address as requested, or the socket path */
	uint32_t req_port, port;
	struct watch w[FWD_MAX_SOCKS];
	unsigned nsocks;
	dev_t dev;		/* the socket file we created (unlinked at the end) */
	ino_t ino;
	struct loop_pause pause; /* accept() ran out of fds or memory */
};

struct fwd_accepted {
	struct sockchan sc;
};

static void accepted_release(struct sockchan *sc)
{
	free(sc->owner);
}

static const struct sockchan_hooks accepted_hooks = { .release = accepted_release };

static short listener_want(struct watch *w)
{
	struct fwd_listener *l = w->data;
	return loop_pause_active(l->f->loop, &l->pause) ? 0 : POLLIN;
}

/* Numeric address and port of a connected socket's peer. */
static void peer_name(int fd, char *host, size_t hl, uint32_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char serv[16];
	*port = 0;
	snprintf(host, hl, "%s", "0.0.0.0");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, (socklen_t)hl, serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hl, "%s", "0.0.0.0");
		return;
	}
	*port = (uint32_t)strtoul(serv, NULL, 10);
}

static void listener_ready(struct watch *w, short rev)
{
	struct fwd_listener *l = w->data;
	struct fwd_ctx *f = l->f;
	(void)rev;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		loop_accept_failed(&l->pause, errno, l->addr);
		return;
	}
	struct fwd_accepted *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	sockchan_init(&a->sc, f->loop, &f->streams, fd, &accepted_hooks, a);
	struct buf args;
	buf_init(&args, 1024);
	const char *type;
	if (l->is_unix) {
		/* string socket path, string reserved */
		type = "forwarded-streamlocal@openssh.com";
		buf_cstr(&args, l->addr);
		buf_cstr(&args, "");
	} else {
		/* string address connected, uint32 port connected,
		 * string originator address, uint32 originator port */
		char oh[NI_MAXHOST];
		uint32_t op;
		peer_name(fd, oh, sizeof(oh), &op);
		type = "forwarded-tcpip";
		buf_cstr(&args, l->addr);
		buf_u32(&args, l->port);
		buf_cstr(&args, oh);
		buf_u32(&args, op);
		log_debug("forwarded-tcpip %s port %u from %s port %u", l->addr, l->port, oh, op);
	}
	int r = args.err ? -ENOMEM
			 : sockchan_open(&a->sc, f->c, type, buf_data(&args), buf_used(&args));
	buf_free(&args);
	if (r < 0) {
		log_info("forward %s: cannot open a channel for a new connection", l->addr);
		sockchan_free(&a->sc);
		free(a);
	}
}

static const struct watch_ops listener_ops = { listener_want, listener_ready };

static void listener_free(struct fwd_ctx *f, struct fwd_listener *l)
{
	for (unsigned i = 0; i < l->nsocks; i++) {
		loop_del(f->loop, &l->w[i]);
		close(l->w[i].fd);
	}
	if (l->is_unix && l->ino) {
		/* Remove the socket file only if it is still the one we made. */
		spawn_unix_unlink(l->addr, l->dev, l->ino);
	}
	for (struct fwd_listener **pp = &f->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	f->nlisteners--;
	free(l);
}

static void listener_add_sock(struct fwd_listener *l, int fd)
{
	l->w[l->nsocks++] = (struct watch){ .fd = fd, .ops = &listener_ops, .data = l };
}

static uint32_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static void set_port(struct sockaddr *sa, uint32_t port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/*
 * Bind every address @l->addr stands for (RFC 4254 7.1: "" all families,
 * "0.0.0.0"/"::" one family's wildcard, "localhost" the loopback of every
 * family, else a literal address or a name).  Port 0 picks one port, used
 * for every family.  Returns 0 or a negative errno.
 */
static int listener_bind_tcp(struct fwd_listener *l)
{
	const char *node = l->addr;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	if (!node[0] || strcmp(node, "*") == 0) {
		node = NULL;
	} else if (strcmp(node, "localhost") == 0) {
		node = NULL;
		hints.ai_flags &= ~AI_PASSIVE;
	}
	char ps[16];
	snprintf(ps, sizeof(ps), "%u", l->req_port);
	struct addrinfo *res;
	int e = spawn_getaddrinfo(node, ps, &hints, &res);
	if (e) {
		log_info("tcpip-forward %s: %s", l->addr,
			 e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
		return -EADDRNOTAVAIL;
	}
	int err = -EADDRNOTAVAIL;
	uint32_t port = l->req_port;
	for (struct addrinfo *a = res; a && l->nsocks < FWD_MAX_SOCKS; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (port)
			set_port(a->ai_addr, port);
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, FWD_BACKLOG) < 0) {
			err = -errno;
			close(fd);
			continue;
		}
		if (!port)
			port = sock_port(fd);
		listener_add_sock(l, fd);
	}
	spawn_freeaddrinfo(res);
	if (!l->nsocks)
		return err;
	l->port = port;
	return 0;
}

static int listener_bind_unix(struct fwd_listener *l)
{
	if (strlen(l->addr) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	/* A path: the monitor binds it (as the session user) and hands it over. */
	int fd = spawn_unix_listen(l->addr, FWD_BACKLOG, &l->dev, &l->ino);
	if (fd < 0)
		return fd;
	listener_add_sock(l, fd);
	return 0;
}

static struct fwd_listener *listener_find(struct fwd_ctx *f, bool is_unix, const char *addr,
					  uint32_t port)
{
	for (struct fwd_listener *l = f->listeners; l; l = l->next) {
		if (l->is_unix != is_unix || strcmp(l->addr, addr) != 0)
			continue;
		/* A port-0 forward is cancelled with the port it got (or 0). */
		if (is_unix || l->port == port || (port == 0 && l->req_port == 0))
			return l;
	}
	return NULL;
}

static bool req_forward(struct fwd_ctx *f, bool is_unix, struct rd *r)
{
	const char *what = is_unix ? "streamlocal-forward@openssh.com" : "tcpip-forward";
	struct sv addr = rd_str(r);
	uint32_t port = is_unix ? 0 : rd_u32(r);
	if (!rd_end(r) || port > 65535) {
		log_info("%s: malformed request", what);
		return false;
	}
	if (!f->cfg->allow_forwarding) {
		log_info("%s refused by policy", what);
		return false;
	}
	if (f->nlisteners >= FWD_MAX_LISTENERS) {
		log_info("%s refused: already %u listening forwards", what, f->nlisteners);
		return false;
	}
	struct fwd_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return false;
	size_t max = is_unix ? sizeof(((struct sockaddr_un *)0)->sun_path) - 1 : FWD_MAX_HOST;
	if (!sv_to_cstr(addr, l->addr, max) || (is_unix && !l->addr[0])) {
		log_info("%s: bad address", what);
		free(l);
		return false;
	}
	l->f = f;
	l->is_unix = is_unix;
	l->req_port = port;
	int e = is_unix ? listener_bind_unix(l) : listener_bind_tcp(l);
	if (e < 0) {
		log_info("%s %s port %u: %s", what, l->addr, port, strerror(-e));
		free(l);
		return false;
	}
	for (unsigned i = 0; i < l->nsocks; i++)
		loop_add(f->loop, &l->w[i]);
	l->next = f->listeners;
	f->listeners = l;
	f->nlisteners++;
	if (is_unix) {
		log_info("forwarding connections to %s", l->addr);
	} else {
		log_info("forwarding connections to %s port %u", l->addr, l->port);
		if (port == 0) {
			/* RFC 4254 7.1: the port we picked goes in REQUEST_SUCCESS. */
			uint8_t p[4];
			put_be32(p, l->port);
			conn_global_reply_data(f->c, p, sizeof(p));
		}
	}
	return true;
}

static bool req_cancel(struct fwd_ctx *f, bool is_unix, struct rd *r)
{
	struct sv addr = rd_str(r);
	uint32_t port = is_unix ? 0 : rd_u32(r);
	char a[sizeof(((struct fwd_listener *)0)->addr)];
	if (!rd_end(r) || !sv_to_cstr(addr, a, sizeof(a) - 1))
		return false;
	struct fwd_listener *l = listener_find(f, is_unix, a, port);
	if (!l)
		return false;
	log_info("forwarding to %s port %u cancelled", l->addr, l->port);
	listener_free(f, l);
	return true;
}

bool fwd_global_request(struct fwd_ctx *f, struct sv name, struct rd *args, bool *ok)
{
	if (sv_eq(name, "tcpip-forward"))
		*ok = req_forward(f, false, args);
	else if (sv_eq(name, "cancel-tcpip-forward"))
		*ok = req_cancel(f, false, args);
	else if (sv_eq(name, "streamlocal-forward@openssh.com"))
		*ok = req_forward(f, true, args);
	else if (sv_eq(name, "cancel-streamlocal-forward@openssh.com"))
		*ok = req_cancel(f, true, args);
	else
		return false;
	return true;
}

void fwd_init(struct fwd_ctx *f, struct loop *l, struct conn *c, const struct agent_cfg *cfg)
{
	*f = (struct fwd_ctx){ .loop = l, .c = c, .cfg = cfg };
}

void fwd_cleanup(struct fwd_ctx *f)
{
	while (f->listeners)
		listener_free(f, f->listeners);
	sockchan_list_drop(&f->streams);
}

/*
 * Seccomp allowlist of this file: TCP sockets (never raw ones, never a
 * path: name lookups and Unix sockets go through the monitor).
 */
SYSCALLS(forward) = {
	SC_EQ_MASKED("socket", 0, AF_INET, 1, 0xf, SOCK_STREAM),
	SC_EQ_MASKED("socket", 0, AF_INET6, 1, 0xf, SOCK_STREAM),
	SC("connect"), SC("bind"), SC("listen"), SC("accept4"), SC("setsockopt"),
	SC("getsockopt"), SC("getsockname"), SC("getpeername"), SC("close"), SC_END,
};
