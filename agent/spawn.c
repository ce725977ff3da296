/* SPDX-License-Identifier: MIT */
/*
 * Worker side of the monitor protocol (monitor.h).  Requests are
 * synchronous: send, then read datagrams until the reply; child exits
 * that arrive meanwhile are queued for spawn_next_exit().
 */
#include "spawn.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "monitor.h"

/* Seccomp allowlist of this file: datagrams with SCM_RIGHTS to the monitor. */
SYSCALLS(spawn) = { SC("sendmsg"), SC("recvmsg"), SC("close"), SC_END };

#define SPAWN_MAX_FDS 3

struct exit_ev {
	pid_t pid;
	int status;
};

static int mon_fd = -1;
static bool mon_gone;
static struct exit_ev *exits;
static size_t nexits, capexits;

void spawn_init(int fd)
{
	mon_fd = fd;
	mon_gone = false;
	nexits = 0;
}

static void queue_exit(pid_t pid, int status)
{
	if (nexits == capexits) {
		size_t nc = capexits ? capexits * 2 : 16;
		struct exit_ev *ne = realloc(exits, nc * sizeof(*ne));
		if (!ne) {
			log_err("out of memory queueing a child exit");
			return;
		}
		exits = ne;
		capexits = nc;
	}
	exits[nexits++] = (struct exit_ev){ pid, status };
}

bool spawn_next_exit(pid_t *pid, int *wstatus)
{
	if (!nexits)
		return false;
	*pid = exits[0].pid;
	*wstatus = exits[0].status;
	memmove(exits, exits + 1, --nexits * sizeof(*exits));
	return true;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Receive one datagram into @m/@data; fds into @fds (the rest are
 * closed).  Returns the number of fds, 0 with nothing (@flags
 * MSG_DONTWAIT), or -errno; -EPIPE when the monitor is gone.
 */
static int mon_recv(struct mon_msg *m, void *data, size_t cap, int *fds, int maxfds, int flags,
		    bool *got)
{
	uint8_t buf[MON_DGRAM_MAX];
	union fdpass_buf cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_expect(&mh, &cm);
	*got = false;
	ssize_t n;
	do
		n = recvmsg(mon_fd, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0) {
		mon_gone = true;
		return -EPIPE;
	}
	int tmp[SPAWN_MAX_FDS];
	int nfds = fdpass_take(&mh, tmp, SPAWN_MAX_FDS);
	if (nfds > SPAWN_MAX_FDS)
		nfds = SPAWN_MAX_FDS; /* the rest were closed */
	if ((size_t)n < sizeof(*m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		close_fds(tmp, nfds);
		log_err("malformed message from the monitor");
		return -EPROTO;
	}
	memcpy(m, buf, sizeof(*m));
	size_t dn = (size_t)n - sizeof(*m);
	if (m->n != dn)
		m->n = (uint32_t)dn;
	if (data)
		memcpy(data, buf + sizeof(*m), dn < cap ? dn : cap);
	*got = true;
	if (m->type == MON_EXITED) {
		close_fds(tmp, nfds);
		queue_exit((pid_t)m->v[0], (int)m->v[1]);
		return 0;
	}
	int keep = nfds < maxfds ? nfds : maxfds;
	for (int i = 0; i < keep; i++)
		fds[i] = tmp[i];
	close_fds(tmp + keep, nfds - keep);
	return keep;
}

bool spawn_poll(void)
{
	while (!mon_gone && mon_fd >= 0) {
		struct mon_msg m;
		bool got;
		int r = mon_recv(&m, NULL, 0, NULL, 0, MSG_DONTWAIT, &got);
		if (r < 0) {
			mon_gone = true;
			break;
		}
		if (!got)
			break;
		if (m.type != MON_EXITED)
			log_err("unexpected message %u from the monitor", m.type);
	}
	return !mon_gone;
}

static int mon_send(const struct mon_msg *m, const void *data, const int *fds, int nfds)
{
	struct iovec iov[2] = { { (void *)m, sizeof(*m) }, { (void *)data, m->n } };
	union fdpass_buf cm;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = m->n ? 2 : 1 };
	fdpass_attach(&mh, &cm, fds, nfds);
	for (;;) {
		ssize_t n = sendmsg(mon_fd, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Wait for the reply to the request just sent.  @rdata gets up to @rcap
 * bytes of its data, @rfds up to @maxfds of its fds (*@nrfds of them).
 * Returns 0 (the reply's own err is in @rep) or a transport error.
 */
static int mon_wait_reply(struct mon_msg *rep, void *rdata, size_t rcap, int *rfds, int maxfds,
			  int *nrfds)
{
	if (nrfds)
		*nrfds = 0;
	for (;;) {
		bool got;
		int got_fds[SPAWN_MAX_FDS];
		int r = mon_recv(rep, rdata, rcap, got_fds, SPAWN_MAX_FDS, 0, &got);
		if (r < 0)
			return r;
		if (!got || rep->type == MON_EXITED)
			continue;
		if (rep->type != MON_REPLY) {
			close_fds(got_fds, r);
			log_err("unexpected message %u from the monitor", rep->type);
			return -EPROTO;
		}
		int keep = r < maxfds ? r : maxfds;
		for (int i = 0; i < keep; i++)
			rfds[i] = got_fds[i];
		close_fds(got_fds + keep, r - keep);
		if (nrfds)
			*nrfds = keep;
		return 0;
	}
}

/* One request (no fds) and its reply. */
static int mon_call(struct mon_msg *req, const void *data, struct mon_msg *rep, void *rdata,
		    size_t rcap, int *rfds, int maxfds, int *nrfds)
{
	if (mon_fd < 0 || mon_gone)
		return -EPIPE;
	int r = mon_send(req, data, NULL, 0);
	return r < 0 ? r : mon_wait_reply(rep, rdata, rcap, rfds, maxfds, nrfds);
}

/* Append a NUL-terminated string to a growing blob. */
static int blob_add(char **b, size_t *n, size_t *cap, const char *s)
{
	size_t l = strlen(s) + 1;
	if (*n + l > MON_SPAWN_MAX)
		return -E2BIG;
	if (*n + l > *cap) {
		size_t nc = *cap ? *cap : 4096;
		while (nc < *n + l)
			nc *= 2;
		char *nb = realloc(*b, nc);
		if (!nb)
			return -ENOMEM;
		*b = nb;
		*cap = nc;
	}
	memcpy(*b + *n, s, l);
	*n += l;
	return 0;
}

int spawn_start(const struct spawn_req *req, struct spawn_res *res)
{
	*res = (struct spawn_res){ .pid = -1, .in = -1, .out = -1, .err = -1 };
	char *blob = NULL;
	size_t n = 0, cap = 0;
	int argc = 0, envc = 0;
	int e = blob_add(&blob, &n, &cap, req->path);
	if (!e)
		e = blob_add(&blob, &n, &cap, req->cwd ? req->cwd : "/");
	for (; !e && req->argv[argc]; argc++)
		e = argc < MON_MAX_ARGS ? blob_add(&blob, &n, &cap, req->argv[argc]) : -E2BIG;
	for (; !e && req->envp && req->envp[envc]; envc++)
		e = envc < MON_MAX_ENV ? blob_add(&blob, &n, &cap, req->envp[envc]) : -E2BIG;
	if (e) {
		free(blob);
		return e;
	}
	static const enum mon_spawn_kind kinds[] = { [SPAWN_EXEC] = MON_SPAWN_EXEC,
						     [SPAWN_SHELL] = MON_SPAWN_SHELL,
						     [SPAWN_SFTP] = MON_SPAWN_SFTP };
	struct mon_msg m = { .type = MON_SPAWN, .v = { kinds[req->kind], argc, envc, (int64_t)n } };
	int fd = req->pty_slave;
	if (mon_fd < 0 || mon_gone) {
		free(blob);
		return -EPIPE;
	}
	e = mon_send(&m, NULL, &fd, fd >= 0 ? 1 : 0);
	for (size_t off = 0; !e && off < n; off += MON_DATA_MAX) {
		struct mon_msg b = { .type = MON_BLOB };
		b.n = (uint32_t)(n - off < MON_DATA_MAX ? n - off : MON_DATA_MAX);
		e = mon_send(&b, blob + off, NULL, 0);
	}
	free(blob);
	if (e)
		return e;
	struct mon_msg rep;
	int fds[3] = { -1, -1, -1 };
	int nfds = 0;
	e = mon_wait_reply(&rep, NULL, 0, fds, 3, &nfds);
	if (e)
		return e;
	if (rep.err) {
		close_fds(fds, nfds);
		return -rep.err;
	}
	if (req->pty_slave < 0 && nfds != 3) {
		close_fds(fds, nfds);
		return -EPROTO;
	}
	res->pid = (pid_t)rep.v[0];
	res->exec_errno = (int)rep.v[1];
	if (req->pty_slave < 0) {
		res->in = fds[0];
		res->out = fds[1];
		res->err = fds[2];
	} else {
		close_fds(fds, nfds);
	}
	return 0;
}

int spawn_openpty(int *master, int *slave)
{
	struct mon_msg m = { .type = MON_OPENPTY }, rep;
	int fds[2], nfds;
	int r = mon_call(&m, NULL, &rep, NULL, 0, fds, 2, &nfds);
	if (r < 0)
		return r;
	if (rep.err || nfds != 2) {
		close_fds(fds, nfds);
		return rep.err ? -rep.err : -EPROTO;
	}
	*master = fds[0];
	*slave = fds[1];
	return 0;
}

int spawn_kill(pid_t pid, int sig, bool group)
{
	struct mon_msg m = { .type = MON_KILL, .v = { pid, sig, group } }, rep;
	int r = mon_call(&m, NULL, &rep, NULL, 0, NULL, 0, NULL);
	return r < 0 ? r : -rep.err;
}

int spawn_getaddrinfo(const char *node, const char *serv, const struct addrinfo *hints,
		      struct addrinfo **res)
{
	char data[1024];
	size_t nl = node ? strlen(node) + 1 : 1, sl = strlen(serv) + 1;
	*res = NULL;
	if (nl + sl > sizeof(data))
		return EAI_NONAME;
	memcpy(data, node ? node : "", nl);
	memcpy(data + nl, serv, sl);
	struct mon_msg m = { .type = MON_RESOLVE,
			     .v = { hints->ai_flags, hints->ai_family, hints->ai_socktype, node != NULL },
			     .n = (uint32_t)(nl + sl) },
		       rep;
	struct mon_addr addrs[MON_MAX_ADDRS];
	int r = mon_call(&m, data, &rep, addrs, sizeof(addrs), NULL, 0, NULL);
	if (r < 0) {
		errno = -r;
		return EAI_SYSTEM;
	}
	if (rep.err) {
		if (rep.err == EAI_SYSTEM)
			errno = (int)rep.v[0];
		return rep.err;
	}
	size_t na = rep.n / sizeof(struct mon_addr);
	if (na > MON_MAX_ADDRS)
		na = MON_MAX_ADDRS;
	struct addrinfo *head = NULL, **tail = &head;
	for (size_t i = 0; i < na; i++) {
		if (addrs[i].addrlen > sizeof(addrs[i].addr))
			continue;
		struct addrinfo *a = calloc(1, sizeof(*a) + sizeof(addrs[i].addr));
		if (!a) {
			spawn_freeaddrinfo(head);
			return EAI_MEMORY;
		}
		a->ai_family = addrs[i].family;
		a->ai_socktype = addrs[i].socktype;
		a->ai_protocol = addrs[i].protocol;
		a->ai_addrlen = addrs[i].addrlen;
		a->ai_addr = (struct sockaddr *)(a + 1);
		memcpy(a->ai_addr, addrs[i].addr, addrs[i].addrlen);
		*tail = a;
		tail = &a->ai_next;
	}
	if (!head)
		return EAI_NONAME;
	*res = head;
	return 0;
}

void spawn_freeaddrinfo(struct addrinfo *ai)
{
	while (ai) {
		struct addrinfo *next = ai->ai_next;
		free(ai);
		ai = next;
	}
}

static int path_call(struct mon_msg *m, const char *path, int *fd)
{
	size_t l = strlen(path) + 1;
	if (l > sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	m->n = (uint32_t)l;
	struct mon_msg rep;
	int fds[1] = { -1 }, nfds = 0;
	int r = mon_call(m, path, &rep, NULL, 0, fds, fd ? 1 : 0, &nfds);
	if (r < 0)
		return r;
	if (rep.err) {
		close_fds(fds, nfds);
		return -rep.err;
	}
	if (fd) {
		if (nfds != 1)
			return -EPROTO;
		*fd = fds[0];
	}
	m->v[0] = rep.v[0];
	m->v[1] = rep.v[1];
	return 0;
}

int spawn_unix_connect(const char *path)
{
	struct mon_msg m = { .type = MON_UNIX_CONNECT };
	int fd = -1;
	int r = path_call(&m, path, &fd);
	return r < 0 ? r : fd;
}

int spawn_unix_listen(const char *path, int backlog, dev_t *dev, ino_t *ino)
{
	struct mon_msg m = { .type = MON_UNIX_LISTEN, .v = { backlog } };
	int fd = -1;
	int r = path_call(&m, path, &fd);
	if (r < 0)
		return r;
	*dev = (dev_t)m.v[0];
	*ino = (ino_t)m.v[1];
	return fd;
}

int spawn_unix_unlink(const char *path, dev_t dev, ino_t ino)
{
	struct mon_msg m = { .type = MON_UNIX_UNLINK, .v = { (int64_t)dev, (int64_t)ino } };
	return path_call(&m, path, NULL);
}

int spawn_mkdir_private(const char *path, dev_t *dev, ino_t *ino)
{
	struct mon_msg m = { .type = MON_MKDIR_PRIVATE };
	int r = path_call(&m, path, NULL);
	if (r < 0)
		return r;
	*dev = (dev_t)m.v[0];
	*ino = (ino_t)m.v[1];
	return 0;
}

int spawn_rmdir(const char *path, dev_t dev, ino_t ino)
{
	struct mon_msg m = { .type = MON_RMDIR, .v = { (int64_t)dev, (int64_t)ino } };
	return path_call(&m, path, NULL);
}
