/* SPDX-License-Identifier: MIT */
/*
 * The monitor: the privileged half of one connection (see monitor.h).
 * It trusts nothing the worker sends: every request is checked against the
 * table below and the agent's policy, a malformed one ends the worker, and
 * signals only ever reach the monitor's own children.
 */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "selinux.h"
#include "vspawn.h"

/*
 * Child stdio pipes this large mean fewer wakeups per MiB, and uploads to
 * a child's stdin do not ping-pong in 64 KiB steps (best effort: the size
 * is a request the kernel may refuse).
 */
#define SPAWN_PIPE_SIZE (1024 * 1024)
/* After the worker is gone: how long children get between SIGHUP and SIGKILL. */
#define HANGUP_GRACE_MS 2000
/* A SPAWN's blob must follow its header within this. */
#define BLOB_TIMEOUT_MS 10000

struct qmsg {
	struct qmsg *next;
	int fds[3];
	int nfds;
	size_t n;
	uint8_t data[];
};

struct mon {
	int sock, sigfd;
	pid_t worker;
	int worker_status;
	bool worker_reaped, sock_gone;
	const struct agent_cfg *cfg;
	const struct agent_user *u;
	pid_t *kids;
	size_t nkids, capkids;
	struct qmsg *qhead, **qtail;
	gid_t root_groups[AGENT_MAX_GROUPS];
	int nroot_groups;
	struct agent_se se; /* sessions' SELinux context */
};

/* ---- output: non-blocking, queued, so the monitor never waits on the worker ---- */

static void q_flush(struct mon *m)
{
	while (m->qhead && !m->sock_gone) {
		struct qmsg *q = m->qhead;
		struct iovec iov = { q->data, q->n };
		union fdpass_buf cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		fdpass_attach(&mh, &cm, q->fds, q->nfds);
		ssize_t r = sendmsg(m->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0)
			m->sock_gone = true;
		m->qhead = q->next;
		if (!m->qhead)
			m->qtail = &m->qhead;
		for (int i = 0; i < q->nfds; i++)
			close(q->fds[i]);
		free(q);
	}
}

/* Queue a message; the monitor's copies of @fds are closed once it is sent. */
static void q_send(struct mon *m, struct mon_msg *h, const void *data, const int *fds, int nfds)
{
	struct qmsg *q = malloc(sizeof(*q) + sizeof(*h) + h->n);
	if (!q) {
		log_err("monitor: out of memory");
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	q->next = NULL;
	q->nfds = nfds;
	for (int i = 0; i < nfds; i++)
		q->fds[i] = fds[i];
	q->n = sizeof(*h) + h->n;
	memcpy(q->data, h, sizeof(*h));
	if (h->n)
		memcpy(q->data + sizeof(*h), data, h->n);
	*m->qtail = q;
	m->qtail = &q->next;
	q_flush(m);
}

static void reply(struct mon *m, int err, int64_t v0, int64_t v1, const int *fds, int nfds)
{
	struct mon_msg h = { .type = MON_REPLY, .err = err, .v = { v0, v1 } };
	q_send(m, &h, NULL, fds, nfds);
}

/* ---- children ---- */

static bool kid_known(const struct mon *m, pid_t pid)
{
	for (size_t i = 0; i < m->nkids; i++)
		if (m->kids[i] == pid)
			return true;
	return false;
}

static int kid_add(struct mon *m, pid_t pid)
{
	if (m->nkids == m->capkids) {
		size_t nc = m->capkids ? m->capkids * 2 : 16;
		pid_t *nk = realloc(m->kids, nc * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		m->kids = nk;
		m->capkids = nc;
	}
	m->kids[m->nkids++] = pid;
	return 0;
}

static void reap(struct mon *m)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == m->worker) {
			m->worker_reaped = true;
			m->worker_status = st;
			continue;
		}
		for (size_t i = 0; i < m->nkids; i++) {
			if (m->kids[i] == pid) {
				m->kids[i] = m->kids[--m->nkids];
				struct mon_msg h = { .type = MON_EXITED, .v = { pid, st } };
				if (!m->sock_gone)
					q_send(m, &h, NULL, NULL, 0);
				break;
			}
		}
	}
}

static void drain_sigfd(struct mon *m)
{
	struct signalfd_siginfo si;
	while (read(m->sigfd, &si, sizeof(si)) > 0) {
	}
}

static void close_pairs(int *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0)
			close(p[i]);
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* execve() with a PATH search done against the session's own PATH. */
static void exec_search(const char *file, char *const *argv, char *const *envp)
{
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	const char *path = env_get(envp, "PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int saved = ENOENT;
	char buf[4096];
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dl = colon ? (size_t)(colon - path) : strlen(path);
		if (dl + strlen(file) + 2 <= sizeof(buf)) {
			memcpy(buf, path, dl);
			size_t k = dl;
			if (k == 0)
				buf[k++] = '.';
			buf[k++] = '/';
			strcpy(buf + k, file);
			execve(buf, argv, envp);
			if (errno == EACCES)
				saved = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		if (!colon)
			break;
		path = colon + 1;
	}
	errno = saved;
}

static void child_reset_signals(void)
{
	/* Defaults first: no handler of ours may run in the child. */
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/* In the child: become the session user (groups first, uid last). */
static int child_switch_user(const struct agent_user *u)
{
	if (!u->switch_user)
		return 0;
	if (setgroups((size_t)u->ngroups, u->groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
	    setresuid(u->uid, u->uid, u->uid) < 0)
		return -1;
	/* Paranoia: the switch must be irreversible. */
	if (u->uid != 0 && setuid(0) == 0)
		return -1;
	return 0;
}

struct spawn_args {
	enum mon_spawn_kind kind;
	const char *path, *cwd;
	char **argv, **envp;
	int pty_slave;
};

/* What the child of do_spawn() needs; it shares our memory until exec. */
struct spawn_child {
	const struct spawn_args *a;
	const struct agent_user *u;
	const struct agent_se *se;
	int exec_fd;		/* >= 0: execute this program, not a->path (toolbox, sftp) */
	int root_fd;		/* >= 0: chroot here first (--session-root) */
	int in, out, err;	/* become stdio (without a pty) */
	int report;		/* gets errno if exec fails */
	pid_t parent;
};

/* In the child (see vspawn.h: no malloc, no stdio): set up and exec. */
static int spawn_child(void *arg)
{
	const struct spawn_child *c = arg;
	child_reset_signals();
	/* Own session: no way to reach the agent's terminal (TIOCSTI). */
	setsid();
	if (c->a->pty_slave >= 0) {
		int s = c->a->pty_slave;
		ioctl(s, TIOCSCTTY, 0);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		if (s > 2)
			close(s);
	} else {
		dup2(c->in, 0);
		dup2(c->out, 1);
		dup2(c->err, 2);
	}
	/* Set while still root: the user's domain at execve(). */
	int e = agent_se_exec(c->se);
	/* The session root, while we still may (CAP_SYS_CHROOT); cwd is below. */
	if (!e && c->root_fd >= 0 && (fchdir(c->root_fd) < 0 || chroot(".") < 0))
		e = errno;
	if (!e && child_switch_user(c->u) < 0)
		e = errno ? errno : EPERM;
	/* Set after the switch (which clears it); the monitor gone = hang-up. */
	prctl(PR_SET_PDEATHSIG, SIGHUP);
	if (getppid() != c->parent)
		_exit(129);
	/* Nothing of the agent's but stdio crosses exec. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (!e) {
		if (!c->a->cwd || chdir(c->a->cwd) < 0) {
			if (chdir("/") < 0) {
				/* nothing better to do; run where we are */
			}
		}
		umask(022);
		/* A descriptor marked close-on-exec above still executes (an ELF
		 * program needs no path to itself): it is gone once we run. */
		if (c->exec_fd >= 0)
			execveat(c->exec_fd, "", c->a->argv, c->a->envp, AT_EMPTY_PATH);
		else
			exec_search(c->a->path, c->a->argv, c->a->envp);
		e = errno;
	}
	ssize_t w = write(c->report, &e, sizeof(e));
	(void)w;
	return e == ENOENT ? 127 : 126;
}

/* Start and exec; fills @pid, @exec_errno and (without a pty) @fds. */
static int do_spawn(struct mon *m, const struct spawn_args *a, int64_t kind, pid_t *pid_out,
		    int *exec_errno, int fds_out[3])
{
	int fds[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
	int *report = fds, *pin = fds + 2, *pout = fds + 4, *perr = fds + 6;
	int npipes = a->pty_slave < 0 ? 4 : 1;
	for (int i = 0; i < npipes; i++) {
		if (pipe2(fds + 2 * i, O_CLOEXEC) < 0) {
			int e = errno;
			close_pairs(fds, 8);
			return e;
		}
	}
	if (a->pty_slave < 0) {
		fcntl(pin[1], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
		fcntl(pout[0], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
		fcntl(perr[0], F_SETPIPE_SZ, SPAWN_PIPE_SIZE);
	}
	const struct agent_cfg *cfg = m->cfg;
	int exec_fd = -1;
	if (kind == MON_SPAWN_SFTP)
		exec_fd = cfg->root_fd >= 0 ? cfg->sftp_fd : -1;
	else
		exec_fd = cfg->toolbox_fd;
	struct spawn_child c = { .a = a, .u = m->u, .se = &m->se, .exec_fd = exec_fd,
				 .root_fd = cfg->root_fd, .in = pin[0], .out = pout[1],
				 .err = perr[1], .report = report[1], .parent = getpid() };
	pid_t pid = vspawn_run(spawn_child, &c);
	if (pid < 0) {
		int e = errno;
		close_pairs(fds, 8);
		return e;
	}

	close(report[1]);
	report[1] = -1;
	int e = 0;
	ssize_t n;
	do
		n = read(report[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(report[0]);
	report[0] = -1;
	if (kid_add(m, pid) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close_pairs(fds, 8);
		return ENOMEM;
	}
	*pid_out = pid;
	*exec_errno = n == (ssize_t)sizeof(e) ? e : 0;
	if (a->pty_slave < 0) {
		close(pin[0]);
		close(pout[1]);
		close(perr[1]);
		fds_out[0] = pin[1];
		fds_out[1] = pout[0];
		fds_out[2] = perr[0];
		for (int i = 0; i < 3; i++)
			fcntl(fds_out[i], F_SETFL, O_NONBLOCK);
	}
	return 0;
}

/* ---- requests ---- */

/* Receive one datagram (blocking when @timeout_ms >= 0 allows). */
static ssize_t recv_dgram(struct mon *m, uint8_t *buf, size_t cap, int *fds, int *nfds,
			  int timeout_ms)
{
	union fdpass_buf cm;
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_expect(&mh, &cm);
	*nfds = 0;
	if (timeout_ms >= 0) {
		struct pollfd p = { .fd = m->sock, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return -ETIMEDOUT;
	}
	ssize_t n;
	do
		n = recvmsg(m->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	*nfds = fdpass_take(&mh, fds, 4);
	if (*nfds > 4)
		*nfds = 4; /* the rest were closed */
	if (n > 0 && (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		close_pairs(fds, (size_t)*nfds);
		*nfds = 0;
		return -EMSGSIZE;
	}
	return n;
}

/*
 * Split a SPAWN blob into path, cwd, argv[argc], env[envc]; every string
 * NUL-terminated and nothing left over.
 */
static int parse_blob(char *blob, size_t n, int argc, int envc, struct spawn_args *a)
{
	if (argc < 1 || argc > MON_MAX_ARGS || envc < 0 || envc > MON_MAX_ENV)
		return -EINVAL;
	a->argv = calloc((size_t)argc + 1, sizeof(char *));
	a->envp = calloc((size_t)envc + 1, sizeof(char *));
	if (!a->argv || !a->envp)
		return -ENOMEM;
	size_t off = 0;
	int total = 2 + argc + envc;
	for (int i = 0; i < total; i++) {
		if (off >= n)
			return -EINVAL;
		char *s = blob + off;
		char *nul = memchr(s, 0, n - off);
		if (!nul)
			return -EINVAL;
		off = (size_t)(nul - blob) + 1;
		if (i == 0)
			a->path = s;
		else if (i == 1)
			a->cwd = s;
		else if (i < 2 + argc)
			a->argv[i - 2] = s;
		else
			a->envp[i - 2 - argc] = s;
	}
	if (off != n || !a->path[0])
		return -EINVAL;
	for (int i = 0; i < envc; i++)
		if (!strchr(a->envp[i], '=') || a->envp[i][0] == '=')
			return -EINVAL;
	return 0;
}

/* Returns false when the worker broke the protocol. */
static bool req_spawn(struct mon *m, const struct mon_msg *h, int *fds, int nfds)
{
	const struct agent_cfg *cfg = m->cfg;
	int64_t kind = h->v[0], argc = h->v[1], envc = h->v[2], len = h->v[3];
	if (nfds > 1 || len <= 0 || len > (int64_t)MON_SPAWN_MAX || argc < 1 ||
	    argc > MON_MAX_ARGS || envc < 0 || envc > MON_MAX_ENV) {
		close_pairs(fds, (size_t)nfds);
		return false;
	}
	char *blob = malloc((size_t)len);
	uint8_t *buf = malloc(MON_DGRAM_MAX);
	bool ok = blob && buf;
	size_t got = 0;
	while (ok && got < (size_t)len) {
		int f[4], nf;
		ssize_t r = recv_dgram(m, buf, MON_DGRAM_MAX, f, &nf, BLOB_TIMEOUT_MS);
		close_pairs(f, (size_t)nf);
		struct mon_msg b;
		if (r < (ssize_t)sizeof(b) || nf) {
			ok = false;
			break;
		}
		memcpy(&b, buf, sizeof(b));
		size_t dn = (size_t)r - sizeof(b);
		if (b.type != MON_BLOB || b.n != dn || dn > (size_t)len - got) {
			ok = false;
			break;
		}
		memcpy(blob + got, buf + sizeof(b), dn);
		got += dn;
	}
	free(buf);
	if (!ok) {
		free(blob);
		close_pairs(fds, (size_t)nfds);
		return false;
	}

	struct spawn_args a = { .pty_slave = nfds ? fds[0] : -1 };
	int err = parse_blob(blob, (size_t)len, (int)argc, (int)envc, &a);
	if (err == -EINVAL) {
		free(a.argv);
		free(a.envp);
		free(blob);
		close_pairs(fds, (size_t)nfds);
		return false;
	}
	/* Policy again, on this side: a subverted worker gets no more than a peer. */
	char *sftp_argv[] = { (char *)"wicket-sftp-server", cfg->sftp_read_only ? (char *)"-R" : NULL,
			      NULL };
	if (!err) {
		switch (kind) {
		case MON_SPAWN_EXEC:
			if (!cfg->allow_exec)
				err = -EPERM;
			break;
		case MON_SPAWN_SHELL:
			if (!cfg->allow_shell || strcmp(a.path, m->u->shell) != 0)
				err = -EPERM;
			break;
		case MON_SPAWN_SFTP:
			if (!cfg->allow_sftp || !cfg->sftp_server || a.pty_slave >= 0)
				err = -EPERM;
			else {
				a.path = cfg->sftp_server;
				a.argv = (free(a.argv), NULL);
			}
			break;
		default:
			err = -EINVAL;
		}
	}
	if (kind == MON_SPAWN_SFTP && !err) {
		a.argv = malloc(sizeof(sftp_argv));
		if (a.argv)
			memcpy(a.argv, sftp_argv, sizeof(sftp_argv));
		else
			err = -ENOMEM;
	}
	if (!err && m->nkids >= (size_t)cfg->max_channels + 16)
		err = -EAGAIN;
	pid_t pid = -1;
	int exec_errno = 0;
	int out[3] = { -1, -1, -1 };
	if (!err)
		err = -do_spawn(m, &a, kind, &pid, &exec_errno, out);
	if (a.pty_slave >= 0)
		close(a.pty_slave);
	if (err) {
		log_info("monitor: spawn %s refused: %s", a.path ? a.path : "?", strerror(-err));
		reply(m, -err, 0, 0, NULL, 0);
	} else {
		reply(m, 0, pid, exec_errno, a.pty_slave < 0 ? out : NULL, a.pty_slave < 0 ? 3 : 0);
	}
	free(a.argv);
	free(a.envp);
	free(blob);
	return true;
}

static void req_openpty(struct mon *m)
{
	int ms = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (ms < 0) {
		int e = errno;
		log_warn("cannot allocate a pty: %s", strerror(e));
		reply(m, e, 0, 0, NULL, 0);
		return;
	}
	char *sname = (grantpt(ms) == 0 && unlockpt(ms) == 0) ? ptsname(ms) : NULL;
	int sl = sname ? open(sname, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
	if (sl < 0) {
		int e = errno;
		log_warn("cannot open the pty slave: %s", strerror(e));
		close(ms);
		reply(m, e, 0, 0, NULL, 0);
		return;
	}
	/* The session user's terminal, as login(1) and sshd leave it. */
	if (m->u->switch_user && fchown(sl, m->u->uid, (gid_t)-1) < 0)
		log_warn("cannot give the pty to uid %u: %s", (unsigned)m->u->uid, strerror(errno));
	agent_se_pty(&m->se, sl);
	int fds[2] = { ms, sl };
	reply(m, 0, 0, 0, fds, 2);
}

static void req_kill(struct mon *m, const struct mon_msg *h)
{
	pid_t pid = (pid_t)h->v[0];
	int sig = (int)h->v[1];
	if (pid <= 0 || h->v[0] != pid || sig <= 0 || sig >= NSIG || !kid_known(m, pid)) {
		reply(m, ESRCH, 0, 0, NULL, 0);
		return;
	}
	int r = 0;
	if (h->v[2] && kill(-pid, sig) < 0 && errno != ESRCH)
		r = errno;
	if (kill(pid, sig) < 0 && !h->v[2])
		r = errno;
	reply(m, r, 0, 0, NULL, 0);
}

/* A NUL-terminated string of at most @max bytes starting the data. */
static const char *data_str(const uint8_t *d, size_t n, size_t max, size_t *len)
{
	const uint8_t *nul = memchr(d, 0, n < max + 1 ? n : max + 1);
	if (!nul)
		return NULL;
	*len = (size_t)(nul - d);
	return (const char *)d;
}

static void req_resolve(struct mon *m, const struct mon_msg *h, const uint8_t *d)
{
	size_t nl, sl;
	const char *node = data_str(d, h->n, 1024, &nl);
	const char *serv = node ? data_str(d + nl + 1, h->n - nl - 1, 64, &sl) : NULL;
	if (!m->cfg->allow_forwarding || !serv || nl + 1 + sl + 1 != h->n) {
		struct mon_msg r = { .type = MON_REPLY, .err = EAI_SYSTEM, .v = { EPERM } };
		q_send(m, &r, NULL, NULL, 0);
		return;
	}
	int fam = (int)h->v[1];
	if (fam != AF_UNSPEC && fam != AF_INET && fam != AF_INET6)
		fam = AF_UNSPEC;
	struct addrinfo hints = {
		.ai_flags = (int)h->v[0] & (AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST | AI_ADDRCONFIG),
		.ai_family = fam,
		.ai_socktype = h->v[2] == SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM,
	};
	struct addrinfo *res = NULL;
	int e = getaddrinfo(h->v[3] ? node : NULL, serv, &hints, &res);
	struct mon_msg r = { .type = MON_REPLY, .err = e, .v = { e == EAI_SYSTEM ? errno : 0 } };
	struct mon_addr out[MON_MAX_ADDRS];
	size_t na = 0;
	for (struct addrinfo *a = e ? NULL : res; a && na < MON_MAX_ADDRS; a = a->ai_next) {
		if (a->ai_addrlen > sizeof(out[na].addr))
			continue;
		out[na] = (struct mon_addr){ .family = a->ai_family, .socktype = a->ai_socktype,
					     .protocol = a->ai_protocol, .addrlen = a->ai_addrlen };
		memcpy(out[na].addr, a->ai_addr, a->ai_addrlen);
		na++;
	}
	if (res)
		freeaddrinfo(res);
	r.n = (uint32_t)(na * sizeof(out[0]));
	q_send(m, &r, out, NULL, 0);
}

/* File-system checks as the session user while we touch a socket path. */
static void as_user(struct mon *m, bool on)
{
	const struct agent_user *u = m->u;
	if (!u->switch_user)
		return;
	if (on) {
		if (setgroups((size_t)u->ngroups, u->groups) < 0)
			log_warn("setgroups: %s", strerror(errno));
		setfsgid(u->gid);
		setfsuid(u->uid);
	} else {
		setfsuid(0);
		setfsgid(0);
		if (setgroups((size_t)m->nroot_groups, m->root_groups) < 0)
			log_warn("setgroups: %s", strerror(errno));
	}
}

static void req_unix(struct mon *m, const struct mon_msg *h, const uint8_t *d)
{
	size_t pl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = data_str(d, h->n, sizeof(sun.sun_path) - 1, &pl);
	if (!path || !pl || pl + 1 != h->n) {
		reply(m, EINVAL, 0, 0, NULL, 0);
		return;
	}
	if (!m->cfg->allow_forwarding) {
		reply(m, EPERM, 0, 0, NULL, 0);
		return;
	}
	memcpy(sun.sun_path, path, pl + 1);
	as_user(m, true);
	int e = 0, fd = -1;
	struct stat st = { 0 };
	if (h->type == MON_MKDIR_PRIVATE) {
		/* Agent forwarding's directory: fails if anything is there already,
		 * and mkdir never follows a symlink. */
		if (mkdir(path, 0700) < 0 || lstat(path, &st) < 0)
			e = errno;
	} else if (h->type == MON_RMDIR) {
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == (dev_t)h->v[0] &&
		    st.st_ino == (ino_t)h->v[1]) {
			if (rmdir(path) < 0)
				e = errno;
		} else {
			e = ENOENT;
		}
	} else if (h->type == MON_UNIX_UNLINK) {
		/* Only the socket we made: not whatever replaced it since. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == (dev_t)h->v[0] &&
		    st.st_ino == (ino_t)h->v[1]) {
			if (unlink(path) < 0)
				e = errno;
		} else {
			e = ENOENT;
		}
	} else {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
		} else if (h->type == MON_UNIX_CONNECT) {
			if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
				e = errno;
		} else {
			int backlog = h->v[0] > 0 && h->v[0] < 4096 ? (int)h->v[0] : 128;
			if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
				e = errno;
			} else {
				if (lstat(path, &st) < 0)
					st = (struct stat){ 0 };
				if (listen(fd, backlog) < 0) {
					e = errno;
					if (st.st_ino)
						unlink(path);
				}
			}
		}
		if (e && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	as_user(m, false);
	reply(m, e, (int64_t)st.st_dev, (int64_t)st.st_ino, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

/* Handle one request; false when the worker broke the protocol. */
static bool handle_request(struct mon *m)
{
	uint8_t buf[MON_DGRAM_MAX];
	int fds[4], nfds;
	ssize_t n = recv_dgram(m, buf, sizeof(buf), fds, &nfds, -1);
	if (n == -EAGAIN)
		return true;
	if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
		m->sock_gone = true;
		return true;
	}
	struct mon_msg h;
	if (n < (ssize_t)sizeof(h)) {
		close_pairs(fds, (size_t)nfds);
		return false;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.n != (size_t)n - sizeof(h) || (nfds && h.type != MON_SPAWN)) {
		close_pairs(fds, (size_t)nfds);
		return false;
	}
	const uint8_t *d = buf + sizeof(h);
	switch (h.type) {
	case MON_SPAWN:
		return req_spawn(m, &h, fds, nfds);
	case MON_OPENPTY:
		req_openpty(m);
		return true;
	case MON_KILL:
		req_kill(m, &h);
		return true;
	case MON_RESOLVE:
		req_resolve(m, &h, d);
		return true;
	case MON_UNIX_CONNECT:
	case MON_UNIX_LISTEN:
	case MON_UNIX_UNLINK:
	case MON_MKDIR_PRIVATE:
	case MON_RMDIR:
		req_unix(m, &h, d);
		return true;
	default:
		return false;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Signal every child still running (and its process group). */
static void signal_kids(struct mon *m, int sig)
{
	for (size_t i = 0; i < m->nkids; i++) {
		kill(-m->kids[i], sig);
		kill(m->kids[i], sig);
	}
}

/* The worker is gone: hang up the children, give them a moment, then kill. */
static void wind_down(struct mon *m)
{
	if (m->nkids)
		signal_kids(m, SIGHUP);
	int64_t deadline = now_ms() + HANGUP_GRACE_MS;
	bool killed = false;
	for (;;) {
		reap(m);
		if (!m->nkids && m->worker_reaped)
			break;
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			if (killed) {
				/* SIGKILL cannot be ignored: this wait ends. */
				int st;
				pid_t pid = waitpid(-1, &st, 0);
				if (pid < 0)
					break;
				if (pid == m->worker) {
					m->worker_reaped = true;
					m->worker_status = st;
				}
				for (size_t i = 0; i < m->nkids; i++)
					if (m->kids[i] == pid)
						m->kids[i] = m->kids[--m->nkids];
				continue;
			}
			if (m->nkids)
				log_info("monitor: %zu session process(es) ignored SIGHUP: killing them",
					 m->nkids);
			signal_kids(m, SIGKILL);
			if (!m->worker_reaped)
				kill(m->worker, SIGKILL);
			killed = true;
			continue;
		}
		struct pollfd p = { .fd = m->sigfd, .events = POLLIN };
		poll(&p, 1, (int)(left < 100 ? left : 100));
		drain_sigfd(m);
	}
}

int monitor_run(int sock, pid_t worker, const struct agent_cfg *cfg, const struct agent_user *u)
{
	struct mon m = { .sock = sock, .worker = worker, .cfg = cfg, .u = u };
	m.qtail = &m.qhead;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m.sigfd < 0)
		log_err("monitor: signalfd: %s", strerror(errno));
	if (u->switch_user) {
		int n = getgroups(AGENT_MAX_GROUPS, m.root_groups);
		m.nroot_groups = n < 0 ? 0 : n;
	}
	agent_se_init(&m.se, agent_se_system(), u->name);
	while (!m.sock_gone && !m.worker_reaped) {
		struct pollfd p[2] = {
			{ .fd = m.sock, .events = (short)(POLLIN | (m.qhead ? POLLOUT : 0)) },
			{ .fd = m.sigfd, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("monitor: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents) {
			drain_sigfd(&m);
			reap(&m);
		}
		if (p[0].revents & POLLOUT)
			q_flush(&m);
		if (p[0].revents & POLLIN) {
			if (!handle_request(&m)) {
				log_err("monitor: malformed request from the protocol worker: ending it");
				kill(worker, SIGKILL);
				m.sock_gone = true;
			}
		} else if (p[0].revents & (POLLHUP | POLLERR)) {
			m.sock_gone = true;
		}
	}
	m.sock_gone = true; /* nothing more to tell the worker */
	while (m.qhead) {
		struct qmsg *q = m.qhead;
		m.qhead = q->next;
		close_pairs(q->fds, (size_t)q->nfds);
		free(q);
	}
	wind_down(&m);
	if (m.sigfd >= 0)
		close(m.sigfd);
	free(m.kids);
	agent_se_free(&m.se);
	return m.worker_status;
}

int agent_user_resolve(const char *name, const struct agent_cfg *cfg, struct agent_user *u)
{
	*u = (struct agent_user){ .uid = getuid(), .gid = getgid() };
	errno = 0;
	struct passwd *pw, pwbuf;
	static char pwmem[16384];
	if (cfg->root_fd >= 0) {
		/* The session root's users, not the agent's (rootfs.c). */
		int e = agent_root_getpw(cfg->root_fd, name, u->uid, &pwbuf, pwmem, sizeof(pwmem));
		if (name && e < 0)
			return e;
		pw = e < 0 ? NULL : &pwbuf;
	} else {
		pw = name ? getpwnam(name) : getpwuid(u->uid);
		if (name && !pw)
			return errno ? -errno : -ENOENT;
	}
	if (pw) {
		if (strlen(pw->pw_name) >= sizeof(u->name) || strlen(pw->pw_dir) >= sizeof(u->home) ||
		    strlen(pw->pw_shell) >= sizeof(u->shell))
			return -ENAMETOOLONG;
		strcpy(u->name, pw->pw_name);
		strcpy(u->home, pw->pw_dir[0] ? pw->pw_dir : "/");
		strcpy(u->shell, pw->pw_shell);
		u->uid = pw->pw_uid;
		u->gid = pw->pw_gid;
	} else {
		strcpy(u->home, "/");
	}
	if (!u->shell[0])
		strcpy(u->shell, "/bin/sh");
	if (name) {
		u->switch_user = true;
		u->ngroups = AGENT_MAX_GROUPS;
		if (cfg->root_fd >= 0)
			agent_root_groups(cfg->root_fd, pw->pw_name, pw->pw_gid, u->groups,
					  &u->ngroups);
		else if (getgrouplist(pw->pw_name, pw->pw_gid, u->groups, &u->ngroups) < 0) {
			/* More groups than we keep: the primary one and the first others. */
			u->ngroups = AGENT_MAX_GROUPS;
		}
	}
	u->sftp_errno = 0;
	if (cfg->sftp_server && access(cfg->sftp_server, X_OK) != 0)
		u->sftp_errno = errno;
	return 0;
}
