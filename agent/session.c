/* SPDX-License-Identifier: MIT */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "sig.h"
#include "sink.h"
#include "agentfwd.h"
#include "spawn.h"
#include "syscalls.h"
#include "ttymodes.h"

#define SESSION_MAX_ENV 128
#define SESSION_MAX_ARGV 4096
#define SESSION_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct session {
	struct session *next;
	struct session_ctx *ctx;
	struct chan *ch;
	pid_t pid;
	int fd_in, fd_out, fd_err; /* fd_in is also in.fd while it is open */
	int ptym, ptys;
	char *term;
	char *ssh_connection, *ssh_client; /* from ssh-connection@wicket, or NULL */
	struct agentfwd *agent;		   /* auth-agent-req: the socket, or NULL */
	char *env[SESSION_MAX_ENV];
	unsigned nenv;
	struct watch w_in, w_out, w_err;
	struct sink in;		/* child stdin and the peer data it has not taken */
	bool started, in_eof, out_eof, err_eof, exited, finished;
	int wstatus;
};

static void session_close_fd(struct session *s, int *fd)
{
	if (*fd < 0)
		return;
	/* fd_in and fd_out may share a pty master; close it once. */
	int v = *fd;
	*fd = -1;
	if (v != s->fd_in && v != s->fd_out && v != s->fd_err && v != s->ptym)
		close(v);
}

/* ---- child stdin ---- */

static void session_flush_in(struct session *s)
{
	if (s->fd_in < 0)
		return;
	chan_consumed(s->ch, sink_flush(&s->in));
	if (!sink_pending(&s->in) && s->in_eof && s->ptym < 0) {
		loop_del(s->ctx->loop, &s->w_in);
		session_close_fd(s, &s->fd_in);
		s->in.fd = -1;
		chan_set_direct(s->ch, false);
	}
}

static short session_want_in(struct watch *w)
{
	struct session *s = w->data;
	return s->fd_in >= 0 && sink_pending(&s->in) ? POLLOUT : 0;
}

static void session_ready_in(struct watch *w, short rev)
{
	(void)rev;
	session_flush_in(w->data);
}

static const struct watch_ops session_in_ops = { session_want_in, session_ready_in };

/* ---- child stdout / stderr ---- */

static short session_want_out(struct watch *w)
{
	struct session *s = w->data;
	bool is_err = w == &s->w_err;
	int fd = is_err ? s->fd_err : s->fd_out;
	if (fd < 0 || s->finished)
		return 0;
	return chan_send_room(s->ch) ? POLLIN : 0;
}

static void session_read_out(struct session *s, bool is_err)
{
	int *fd = is_err ? &s->fd_err : &s->fd_out;
	uint32_t ext = is_err ? SSH_EXTENDED_DATA_STDERR : 0;
	/* Pipes (no pty): the output is spliced to the stream, not copied. */
	ssize_t r = s->ptym < 0 ? chan_send_from_pipe(s->ch, ext, *fd)
				: chan_send_from_fd(s->ch, ext, *fd);
	if (r > 0 || r == -EAGAIN)
		return;
	/* EOF, or EIO from a pty master once the slave side is gone. */
	if (r < 0 && r != -EIO)
		log_info("reading session output: %s", strerror((int)-r));
	loop_del(s->ctx->loop, is_err ? &s->w_err : &s->w_out);
	session_close_fd(s, fd);
	if (is_err)
		s->err_eof = true;
	else
		s->out_eof = true;
}

static void session_ready_out(struct watch *w, short rev)
{
	struct session *s = w->data;
	(void)rev;
	session_read_out(s, w == &s->w_err);
}

static const struct watch_ops session_out_ops = { session_want_out, session_ready_out };

/* ---- channel callbacks ---- */

static void session_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct session *s = ch->data;
	if (ext) {
		chan_consumed(ch, n); /* nothing reads extended data on our side */
		return;
	}
	if (!s->started) {
		/* Before exec: keep it for the child (bounded by our window). */
		buf_put(&s->in.pend, p, n);
		return;
	}
	/* After stdin is closed the sink drops data but still credits it. */
	chan_consumed(ch, sink_put(&s->in, p, n));
}

/*
 * Big payloads go from the stream straight into the child's stdin pipe
 * (page references, no copy through us) while nothing is queued for it;
 * whatever the pipe cannot take comes through session_data() in order.
 */
static size_t session_direct(struct chan *ch, size_t n, int *pipe_w, size_t *exact)
{
	struct session *s = ch->data;
	*exact = 0;
	/* What a full pipe made us queue goes first; often it fits by now. */
	if (s->started && sink_pending(&s->in))
		session_flush_in(s);
	if (!s->started || s->fd_in < 0 || s->ptym >= 0 || s->in.broken)
		return 0;
	*pipe_w = s->fd_in;
	return sink_pending(&s->in) ? 0 : n; /* the queue first: wait for room */
}

static void session_data_piped(struct chan *ch, size_t n)
{
	chan_consumed(ch, n); /* the child has them: the window reopens */
}

static void session_eof(struct chan *ch)
{
	struct session *s = ch->data;
	s->in_eof = true;
	if (s->started)
		session_flush_in(s);
}

static void session_free(struct session *s)
{
	struct session_ctx *ctx = s->ctx;
	loop_del(ctx->loop, &s->w_in);
	loop_del(ctx->loop, &s->w_out);
	loop_del(ctx->loop, &s->w_err);
	int fds[] = { s->fd_in, s->fd_out, s->fd_err, s->ptym, s->ptys };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		bool dup = false;
		for (size_t k = 0; k < i; k++)
			dup |= fds[k] == fds[i];
		if (fds[i] >= 0 && !dup)
			close(fds[i]);
	}
	if (s->started && !s->exited && s->pid > 0) {
		/* Channel gone under a running command: hang it up like a tty would. */
		spawn_kill(s->pid, SIGHUP, true);
	}
	for (unsigned i = 0; i < s->nenv; i++)
		free(s->env[i]);
	free(s->ssh_connection);
	free(s->ssh_client);
	agentfwd_stop(s->agent);
	free(s->term);
	sink_free(&s->in);
	for (struct session **pp = &ctx->list; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s);
}

static void session_closed(struct chan *ch)
{
	session_free(ch->data);
}

/* ---- requests ---- */

/*
 * Names only the agent sets, whatever --accept-env allows: SSH_CONNECTION
 * and SSH_CLIENT come from ssh-connection@wicket (the SSH wrapper, which
 * never lets its own client send that request), SSH_AUTH_SOCK from agent
 * forwarding.  A client of the wrapper, maybe limited to a forced command,
 * must not be able to pose as another address to what runs in the guest.
 */
static bool env_reserved(const char *name)
{
	return strcmp(name, "SSH_CONNECTION") == 0 || strcmp(name, "SSH_CLIENT") == 0 ||
	       strcmp(name, "SSH_AUTH_SOCK") == 0;
}

static bool env_allowed(const struct agent_cfg *cfg, const char *name)
{
	if (env_reserved(name))
		return false;
	for (int i = 0; i < cfg->nenv_allow; i++)
		if (fnmatch(cfg->env_allow[i], name, 0) == 0)
			return true;
	return false;
}

static bool valid_env_name(struct sv n)
{
	if (!n.n || n.n > 256)
		return false;
	for (size_t i = 0; i < n.n; i++) {
		uint8_t c = n.p[i];
		if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (i && c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static void session_setenv(struct session *s, const char *name, const char *val)
{
	size_t nl = strlen(name);
	char *e = malloc(nl + strlen(val) + 2);
	if (!e)
		return;
	sprintf(e, "%s=%s", name, val);
	for (unsigned i = 0; i < s->nenv; i++) {
		if (strncmp(s->env[i], name, nl) == 0 && s->env[i][nl] == '=') {
			free(s->env[i]);
			s->env[i] = e;
			return;
		}
	}
	if (s->nenv + 1 >= SESSION_MAX_ENV) {
		free(e);
		return;
	}
	s->env[s->nenv++] = e;
}

/* An address as ssh-connection@wicket carries it: IPv4, IPv6 (maybe with a
 * zone) or UNKNOWN; nothing a shell or a log line could misread. */
static bool valid_conn_addr(struct sv a)
{
	if (!a.n || a.n > 64)
		return false;
	for (size_t i = 0; i < a.n; i++) {
		uint8_t c = a.p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '.' || c == ':' || c == '%' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * ssh-connection@wicket: the SSH wrapper tells the session where its client
 * came from (PROTOCOL.md), for SSH_CONNECTION and SSH_CLIENT as sshd sets
 * them.  Only before the session starts.
 */
static bool req_ssh_connection(struct session *s, struct rd *r)
{
	struct sv caddr = rd_str(r);  /* client address */
	uint32_t cport = rd_u32(r);   /* client port */
	struct sv saddr = rd_str(r);  /* server address */
	uint32_t sport = rd_u32(r);   /* server port */
	if (!rd_end(r) || s->started || !valid_conn_addr(caddr) || !valid_conn_addr(saddr) ||
	    cport > 65535 || sport > 65535)
		return false;
	char conn[200], client[160];
	snprintf(conn, sizeof(conn), "%.*s %u %.*s %u", (int)caddr.n, (const char *)caddr.p, cport,
		 (int)saddr.n, (const char *)saddr.p, sport);
	snprintf(client, sizeof(client), "%.*s %u %u", (int)caddr.n, (const char *)caddr.p, cport,
		 sport);
	char *c1 = strdup(conn), *c2 = strdup(client);
	if (!c1 || !c2) {
		free(c1);
		free(c2);
		return false;
	}
	free(s->ssh_connection);
	free(s->ssh_client);
	s->ssh_connection = c1;
	s->ssh_client = c2;
	return true;
}

/*
 * key-env@wicket: an environment= option of the authorized_keys line the
 * SSH wrapper's client logged in with, which its operator allowed
 * (PROTOCOL.md).  The host side's word: no --accept-env filter, but never
 * a reserved name.  Only before the session starts.
 */
static bool req_key_env(struct session *s, struct rd *r)
{
	struct sv name = rd_str(r); /* variable name */
	struct sv val = rd_str(r);  /* value */
	if (!rd_end(r) || s->started || !valid_env_name(name) || sv_has_nul(val) ||
	    val.n > 65536 || s->nenv + 8 >= SESSION_MAX_ENV)
		return false;
	char *n = sv_strdup(name), *v = sv_strdup(val);
	bool ok = n && v && !env_reserved(n);
	if (ok)
		session_setenv(s, n, v);
	else if (n)
		log_info("key-env %s refused (a name only the agent sets)", n);
	free(n);
	free(v);
	return ok;
}

static bool req_env(struct session *s, struct rd *r)
{
	struct sv name = rd_str(r);
	struct sv val = rd_str(r);
	if (!rd_end(r) || !valid_env_name(name) || sv_has_nul(val) || val.n > 65536)
		return false;
	char *n = sv_strdup(name), *v = sv_strdup(val);
	bool ok = n && v && env_allowed(s->ctx->cfg, n) && s->nenv + 8 < SESSION_MAX_ENV;
	if (ok)
		session_setenv(s, n, v);
	else if (n)
		log_info("env %s refused by policy", n);
	free(n);
	free(v);
	return ok;
}

static bool req_pty(struct session *s, struct rd *r)
{
	struct sv term = rd_str(r);
	uint32_t cols = rd_u32(r), rows = rd_u32(r), wpx = rd_u32(r), hpx = rd_u32(r);
	struct sv modes = rd_str(r);
	if (!rd_end(r) || sv_has_nul(term) || term.n > 256 || s->ptym >= 0 || s->started)
		return false;
	/* The monitor allocates it (we cannot open /dev/ptmx). */
	int m, sl;
	int e = spawn_openpty(&m, &sl);
	if (e < 0) {
		log_warn("cannot allocate a pty: %s", strerror(-e));
		return false;
	}
	struct termios t;
	if (tcgetattr(sl, &t) == 0) {
		if (ttymodes_apply(modes, &t) < 0)
			log_info("malformed terminal modes ignored");
		tcsetattr(sl, TCSANOW, &t);
	}
	struct winsize ws = { .ws_row = (unsigned short)(rows > 0xffff ? 0xffff : rows),
			      .ws_col = (unsigned short)(cols > 0xffff ? 0xffff : cols),
			      .ws_xpixel = (unsigned short)(wpx > 0xffff ? 0 : wpx),
			      .ws_ypixel = (unsigned short)(hpx > 0xffff ? 0 : hpx) };
	ioctl(m, TIOCSWINSZ, &ws);
	s->ptym = m;
	s->ptys = sl;
	s->term = sv_strdup(term);
	return true;
}

static bool req_window_change(struct session *s, struct rd *r)
{
	uint32_t cols = rd_u32(r), rows = rd_u32(r), wpx = rd_u32(r), hpx = rd_u32(r);
	if (!rd_end(r) || s->ptym < 0)
		return false;
	struct winsize ws = { .ws_row = (unsigned short)(rows > 0xffff ? 0xffff : rows),
			      .ws_col = (unsigned short)(cols > 0xffff ? 0xffff : cols),
			      .ws_xpixel = (unsigned short)(wpx > 0xffff ? 0 : wpx),
			      .ws_ypixel = (unsigned short)(hpx > 0xffff ? 0 : hpx) };
	return ioctl(s->ptym, TIOCSWINSZ, &ws) == 0;
}

static bool req_signal(struct session *s, struct rd *r)
{
	struct sv name = rd_str(r);
	if (!rd_end(r) || !s->started || s->exited)
		return false;
	char *n = sv_strdup(name);
	int sig = n ? sig_number(n) : 0;
	free(n);
	if (!sig)
		return false;
	return spawn_kill(s->pid, sig, false) == 0;
}

/* Environment every session gets, before the peer's accepted variables. */
static void session_base_env(struct session *s, const struct agent_user *u)
{
	session_setenv(s, "PATH", SESSION_DEFAULT_PATH);
	if (u->name[0]) {
		session_setenv(s, "HOME", u->home);
		session_setenv(s, "USER", u->name);
		session_setenv(s, "LOGNAME", u->name);
	}
	session_setenv(s, "SHELL", u->shell);
	if (s->term)
		session_setenv(s, "TERM", s->term);
}

static void session_start_io(struct session *s)
{
	struct loop *l = s->ctx->loop;
	s->w_in = (struct watch){ .fd = s->fd_in, .ops = &session_in_ops, .data = s };
	s->w_out = (struct watch){ .fd = s->fd_out, .ops = &session_out_ops, .data = s };
	loop_add(l, &s->w_in);
	loop_add(l, &s->w_out);
	if (s->fd_err >= 0) {
		s->w_err = (struct watch){ .fd = s->fd_err, .ops = &session_out_ops, .data = s };
		loop_add(l, &s->w_err);
	} else {
		s->err_eof = true;
	}
}

/*
 * Run @argv (argv[0] as the program sees it, @path what to execute).  The
 * request succeeds even when exec fails, like a shell: the reason goes to
 * the channel's stderr and the exit status is 127 or 126.
 */
static bool session_run(struct session *s, const char *path, char **argv, enum spawn_kind kind)
{
	/* Resolved before the sandbox: no /etc/passwd from here. */
	const struct agent_user *u = s->ctx->user;
	const char *shell = u->shell;
	/* Peer-supplied variables win except over the ones we set for it. */
	char *peer_env[SESSION_MAX_ENV];
	unsigned npeer = s->nenv;
	memcpy(peer_env, s->env, npeer * sizeof(char *));
	s->nenv = 0;
	session_base_env(s, u);
	for (unsigned i = 0; i < npeer; i++) {
		char *eq = strchr(peer_env[i], '=');
		*eq = 0;
		session_setenv(s, peer_env[i], eq + 1);
		free(peer_env[i]);
	}
	if (s->ssh_connection) {
		session_setenv(s, "SSH_CONNECTION", s->ssh_connection);
		session_setenv(s, "SSH_CLIENT", s->ssh_client);
	}
	if (s->agent)
		session_setenv(s, "SSH_AUTH_SOCK", agentfwd_path(s->agent));
	s->env[s->nenv] = NULL;

	char *login_argv[3];
	char dash[sizeof(((struct agent_user *)0)->shell) + 1];
	if (s->ctx->cfg->toolbox_fd >= 0 && (!path || strcmp(path, "@shell") == 0)) {
		/*
		 * The monitor executes the toolbox (busybox), which picks its
		 * applet by argv[0]: the shell is its sh, "sh -l" for a login.
		 */
		if (!path) {
			login_argv[0] = (char *)"sh";
			login_argv[1] = (char *)"-l";
			login_argv[2] = NULL;
			argv = login_argv;
		} else {
			argv[0] = (char *)"sh";
		}
		path = shell;
	} else if (!path) {
		/* Login shell: argv[0] is "-" + basename, as login(1) does. */
		const char *base = strrchr(shell, '/');
		snprintf(dash, sizeof(dash), "-%s", base ? base + 1 : shell);
		login_argv[0] = dash;
		login_argv[1] = NULL;
		argv = login_argv;
		path = shell;
	} else if (strcmp(path, "@shell") == 0) {
		path = shell;
		argv[0] = (char *)shell;
	}
	struct spawn_req req = { .argv = argv, .path = path, .envp = s->env,
				 .cwd = u->name[0] ? u->home : "/", .pty_slave = s->ptys,
				 .kind = kind };
	struct spawn_res res;
	int e = spawn_start(&req, &res);
	if (e < 0) {
		log_warn("cannot start %s: %s", path, strerror(-e));
		return false;
	}
	s->pid = res.pid;
	s->started = true;
	if (s->ptys >= 0) {
		close(s->ptys);
		s->ptys = -1;
		fcntl(s->ptym, F_SETFL, O_NONBLOCK);
		s->fd_in = s->ptym;
		s->in.fd = s->fd_in;
		s->fd_out = fcntl(s->ptym, F_DUPFD_CLOEXEC, 3);
		s->fd_err = -1;
	} else {
		s->fd_in = s->in.fd = res.in;
		s->fd_out = res.out;
		s->fd_err = res.err;
		chan_set_direct(s->ch, true); /* stdin is a pipe: splice into it */
	}
	if (res.exec_errno) {
		char msg[512];
		int n = snprintf(msg, sizeof(msg), "wicketd: cannot execute '%s': %s\r\n",
				 argv[0], strerror(res.exec_errno));
		chan_send(s->ch, SSH_EXTENDED_DATA_STDERR, msg, (size_t)n);
	}
	session_start_io(s);
	session_flush_in(s);
	return true;
}

static bool req_exec(struct session *s, struct rd *r)
{
	struct sv cmd = rd_str(r);
	if (!rd_end(r) || sv_has_nul(cmd))
		return false;
	char *c = sv_strdup(cmd);
	if (!c)
		return false;
	char *argv[] = { NULL, (char *)"-c", c, NULL };
	bool ok = session_run(s, "@shell", argv, SPAWN_EXEC);
	free(c);
	return ok;
}

/* exec-argv@wicket: uint32 count, then count strings; no shell involved. */
static bool req_exec_argv(struct session *s, struct rd *r)
{
	uint32_t n = rd_u32(r);
	if (r->err || n == 0 || n > SESSION_MAX_ARGV || n > rd_left(r) / 4)
		return false;
	char **argv = calloc(n + 1, sizeof(char *));
	if (!argv)
		return false;
	bool ok = true;
	for (uint32_t i = 0; i < n && ok; i++) {
		struct sv a = rd_str(r);
		argv[i] = r->err ? NULL : sv_strdup(a);
		ok = argv[i] != NULL;
	}
	ok = ok && rd_end(r) && argv[0][0];
	if (ok)
		ok = session_run(s, argv[0], argv, SPAWN_EXEC);
	for (uint32_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return ok;
}

static bool req_subsystem(struct session *s, struct rd *r)
{
	const struct agent_cfg *cfg = s->ctx->cfg;
	struct sv name = rd_str(r);
	if (!rd_end(r) || !sv_eq(name, "sftp") || !cfg->allow_sftp || !cfg->sftp_server)
		return false;
	char *argv[] = { (char *)"wicket-sftp-server", cfg->sftp_read_only ? (char *)"-R" : NULL,
			 NULL };
	/* The sftp stream is binary: never through a pty. */
	if (s->ptym >= 0)
		return false;
	if (s->ctx->user->sftp_errno) {
		log_warn("sftp subsystem: %s: %s", cfg->sftp_server, strerror(s->ctx->user->sftp_errno));
		return false;
	}
	return session_run(s, cfg->sftp_server, argv, SPAWN_SFTP);
}

static bool session_request(struct chan *ch, struct sv type, bool want_reply, struct rd *r)
{
	struct session *s = ch->data;
	const struct agent_cfg *cfg = s->ctx->cfg;
	bool startable = !s->started;
	if (sv_eq(type, "env"))
		return !s->started && req_env(s, r);
	if (sv_eq(type, "ssh-connection@wicket"))
		return req_ssh_connection(s, r);
	if (sv_eq(type, "key-env@wicket"))
		return req_key_env(s, r);
	if (sv_eq(type, "auth-agent-req@openssh.com") || sv_eq(type, "auth-agent-req@wicket")) {
		/* Before the session starts (its environment is made then); once. */
		if (!rd_end(r) || s->started || !s->ctx->fwd)
			return false;
		if (!s->agent)
			s->agent = agentfwd_start(s->ctx->fwd, ch, sv_eq(type, "auth-agent-req@wicket"));
		return s->agent != NULL;
	}
	if (sv_eq(type, "pty-req"))
		return req_pty(s, r);
	if (sv_eq(type, "window-change"))
		return req_window_change(s, r);
	if (sv_eq(type, "signal"))
		return req_signal(s, r);
	if (sv_eq(type, "exec"))
		return startable && cfg->allow_exec && req_exec(s, r);
	if (sv_eq(type, "exec-argv@wicket"))
		return startable && cfg->allow_exec && req_exec_argv(s, r);
	if (sv_eq(type, "subsystem"))
		return startable && req_subsystem(s, r);
	if (sv_eq(type, "shell"))
		return startable && cfg->allow_shell && rd_end(r) && session_run(s, NULL, NULL, SPAWN_SHELL);
	return false;
}

static const struct chan_ops session_ops = {
	.name = "session",
	.data = session_data,
	.eof = session_eof,
	.closed = session_closed,
	.request = session_request,
	.direct = session_direct,
	.data_piped = session_data_piped,
};

int session_open(struct session_ctx *ctx, struct chan *ch)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ctx = ctx;
	s->ch = ch;
	s->fd_in = s->fd_out = s->fd_err = s->ptym = s->ptys = -1;
	s->w_in.fd = s->w_out.fd = s->w_err.fd = -1;
	sink_init(&s->in, -1, ch->lwin_max + 1);
	s->next = ctx->list;
	ctx->list = s;
	ch->ops = &session_ops;
	ch->data = s;
	return 0;
}

void session_child_exited(struct session_ctx *ctx, pid_t pid, int wstatus)
{
	for (struct session *s = ctx->list; s; s = s->next) {
		if (s->started && s->pid == pid && !s->exited) {
			s->exited = true;
			s->wstatus = wstatus;
			return;
		}
	}
}

static void session_finish(struct session *s)
{
	struct chan *ch = s->ch;
	struct conn *c = ch->c;
	s->finished = true;
	size_t st;
	if (WIFSIGNALED(s->wstatus)) {
		int sig = WTERMSIG(s->wstatus);
		const char *name = sig_name(sig);
		st = chan_request_begin(ch, "exit-signal", false, 0);
		buf_cstr(&c->out, name ? name : "KILL");
		buf_bool(&c->out, WCOREDUMP(s->wstatus));
		buf_cstr(&c->out, "");
		buf_cstr(&c->out, "");
		conn_pkt_end(c, st);
	} else {
		st = chan_request_begin(ch, "exit-status", false, 0);
		buf_u32(&c->out, (uint32_t)WEXITSTATUS(s->wstatus));
		conn_pkt_end(c, st);
	}
	chan_send_eof(ch);
	chan_send_close(ch);
}

void session_tick(struct session_ctx *ctx)
{
	for (struct session *s = ctx->list; s; s = s->next) {
		if (!s->started || s->finished || !s->exited)
			continue;
		/*
		 * A pty has no EOF while a background job holds the slave; once
		 * the command is gone, send what is buffered and stop (as sshd).
		 */
		if (s->ptym >= 0 && !s->out_eof) {
			while (!s->out_eof && chan_send_room(s->ch)) {
				ssize_t r = chan_send_from_fd(s->ch, 0, s->fd_out);
				if (r > 0)
					continue;
				loop_del(ctx->loop, &s->w_out);
				session_close_fd(s, &s->fd_out);
				s->out_eof = true;
			}
		}
		if (s->out_eof && s->err_eof)
			session_finish(s);
	}
}

/* Seccomp allowlist of this file: terminal settings on the pty pair the
 * monitor handed us (tcgetattr, tcsetattr, window size; never on fds 0-2,
 * which may be the agent's own terminal), non-blocking mode and the
 * master's duplicate. */
SYSCALLS(session) = {
	SC_GE_EQ("ioctl", 0, 3, 1, TCGETS), SC_GE_EQ("ioctl", 0, 3, 1, TCSETS),
	SC_GE_EQ("ioctl", 0, 3, 1, TIOCSWINSZ),
	SC_EQ("fcntl", 1, F_GETFL), SC_EQ("fcntl", 1, F_SETFL), SC_EQ("fcntl", 1, F_DUPFD_CLOEXEC),
	SC("close"), SC_END,
};
