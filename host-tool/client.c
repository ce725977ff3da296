/* SPDX-License-Identifier: MIT */
#include "client.h"
#include "client_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "quote.h"
#include "sig.h"
#include "sink.h"
#include "term.h"
#include "ttymodes.h"
#include "target.h"

enum { TAG_PTY = 1, TAG_ARGV, TAG_EXEC, TAG_SHELL };

/* How long a forwarded SIGTERM/SIGHUP may take before wicket leaves anyway. */
#define CLIENT_TERM_GRACE_MS 3000
/* Waiting for the agent's greeting: a hint after this long, an error after that. */
#define CLIENT_GREETING_HINT_MS 5000
#define CLIENT_GREETING_TIMEOUT_MS 60000

const char *client_nonce(void)
{
	static char hex[17];
	if (hex[0])
		return hex;
	uint8_t r[8];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* Unique is all it must be: no two live processes share both. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t v = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_sec << 20 ^
			     (uint64_t)ts.tv_nsec;
		for (int i = 0; i < 8; i++)
			r[i] = (uint8_t)(v >> (8 * i));
	}
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	return hex;
}

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One local output (stdout or stderr) with what it has not taken yet. */
struct out {
	struct sink sk;
	struct watch w;
	struct client *cl;
};

struct client {
	const struct client_opts *o;
	long long next_keepalive; /* monotonic ms; 0 before the first */
	struct loop loop;
	struct conn c;
	struct chan *ch;
	struct out out[2];
	struct watch win, wsig;
	int sigfd;
	bool started, stdin_eof, closed, lost, raw, stdout_broken;
	bool have_status;
	int status;
	int signals_seen;
	long long abort_at;	/* give up at this monotonic time (ms), 0 = never */
	long long hint_at, greet_deadline;
	struct term_escape esc;
	char err[300];
	int saved_fl[3];
	struct termios tio;
	bool have_tio;
	struct sockchan_list agents; /* -A: channels to our agent */
};

static void client_fatal(struct client *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void client_fatal(struct client *cl, const char *fmt, ...)
{
	if (cl->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->err, sizeof(cl->err), fmt, ap);
	va_end(ap);
	conn_disconnect(&cl->c, "client gave up");
}

/* ---- local outputs ---- */

static short out_want(struct watch *w)
{
	struct out *o = w->data;
	return sink_pending(&o->sk) ? POLLOUT : 0;
}

/*
 * Our stdout reader went away (`| head`): behave like a local command that
 * got SIGPIPE — end the channel so the remote command stops too.
 */
static void out_check_broken(struct out *o)
{
	struct client *cl = o->cl;
	if (!o->sk.broken || o != &cl->out[0] || cl->stdout_broken)
		return;
	cl->stdout_broken = true;
	if (cl->ch) {
		chan_send_eof(cl->ch);
		chan_send_close(cl->ch);
	}
}

static void out_ready(struct watch *w, short rev)
{
	struct out *o = w->data;
	(void)rev;
	size_t n = sink_flush(&o->sk);
	if (o->cl->ch)
		chan_consumed(o->cl->ch, n);
	out_check_broken(o);
}

static const struct watch_ops out_ops = { out_want, out_ready };

/* ---- channel ---- */

static void client_send_env(struct client *cl)
{
	extern char **environ;
	struct conn *c = &cl->c;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "LANG=", 5) != 0 && strncmp(*e, "LC_", 3) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		size_t s = chan_request_begin(cl->ch, "env", false, 0);
		buf_str(&c->out, *e, (size_t)(eq - *e));
		buf_cstr(&c->out, eq + 1);
		conn_pkt_end(c, s);
	}
}

static void client_send_pty(struct client *cl)
{
	struct conn *c = &cl->c;
	unsigned cols, rows, wpx, hpx;
	term_size(isatty(0) ? 0 : 1, &cols, &rows, &wpx, &hpx);
	const char *term = getenv("TERM");
	size_t s = chan_request_begin(cl->ch, "pty-req", true, TAG_PTY);
	buf_cstr(&c->out, term && *term ? term : "dumb");
	buf_u32(&c->out, cols);
	buf_u32(&c->out, rows);
	buf_u32(&c->out, wpx);
	buf_u32(&c->out, hpx);
	struct buf modes;
	buf_init(&modes, 4096);
	/* The modes from before we went raw: the remote pty does the cooking. */
	if (cl->have_tio)
		ttymodes_encode(&cl->tio, &modes);
	else
		buf_u8(&modes, 0);
	buf_str(&c->out, buf_data(&modes), buf_used(&modes));
	buf_free(&modes);
	conn_pkt_end(c, s);
}

static void client_send_exec_string(struct client *cl)
{
	struct conn *c = &cl->c;
	struct buf cmd;
	buf_init(&cmd, 1024 * 1024);
	quote_argv(&cmd, cl->o->argv, cl->o->argc);
	size_t s = chan_request_begin(cl->ch, "exec", true, TAG_EXEC);
	buf_str(&c->out, buf_data(&cmd), buf_used(&cmd));
	conn_pkt_end(c, s);
	buf_free(&cmd);
}

static void client_opened(struct chan *ch)
{
	struct client *cl = ch->data;
	struct conn *c = &cl->c;
	client_send_env(cl);
	if (cl->o->agent_sock) {
		/* As ssh -A: no reply wanted; an agent that refuses just has none. */
		size_t s = chan_request_begin(ch, "auth-agent-req@openssh.com", false, 0);
		conn_pkt_end(c, s);
	}
	if (cl->o->pty)
		client_send_pty(cl);
	if (!cl->o->argv) {
		size_t s = chan_request_begin(ch, "shell", true, TAG_SHELL);
		conn_pkt_end(c, s);
		return;
	}
	/* Exact argv without a shell; a peer that refuses gets a quoted string. */
	size_t s = chan_request_begin(ch, "exec-argv@wicket", true, TAG_ARGV);
	buf_u32(&c->out, (uint32_t)cl->o->argc);
	for (int i = 0; i < cl->o->argc; i++)
		buf_cstr(&c->out, cl->o->argv[i]);
	conn_pkt_end(c, s);
}

static void client_open_failed(struct chan *ch, uint32_t reason, struct sv msg)
{
	struct client *cl = ch->data;
	char m[200];
	sv_printable(msg, m, sizeof(m));
	cl->ch = NULL;
	client_fatal(cl, "%s refused a session (reason %u): %s", cl->o->target, reason, m);
}

static void client_reply(struct chan *ch, uint32_t tag, bool ok)
{
	struct client *cl = ch->data;
	switch (tag) {
	case TAG_PTY:
		if (!ok)
			fprintf(stderr, "wicket: %s refused a pty; continuing without\r\n",
				cl->o->target);
		break;
	case TAG_ARGV:
		if (ok)
			cl->started = true;
		else
			client_send_exec_string(cl);
		break;
	case TAG_EXEC:
	case TAG_SHELL:
		if (ok)
			cl->started = true;
		else
			client_fatal(cl, "%s refused to run %s", cl->o->target,
				     tag == TAG_SHELL ? "a shell" : "the command");
		break;
	}
	if (cl->started && cl->o->no_stdin && !cl->stdin_eof) {
		cl->stdin_eof = true;
		chan_send_eof(ch);
	}
}

static void client_data(struct chan *ch, uint32_t ext, const uint8_t *p, size_t n)
{
	struct client *cl = ch->data;
	struct out *o = &cl->out[ext == SSH_EXTENDED_DATA_STDERR ? 1 : 0];
	chan_consumed(ch, sink_put(&o->sk, p, n));
	out_check_broken(o);
}

static bool client_request(struct chan *ch, struct sv type, bool want_reply, struct rd *r)
{
	struct client *cl = ch->data;
	if (sv_eq(type, "exit-status")) {
		uint32_t st = rd_u32(r);
		if (!rd_end(r))
			return false;
		cl->have_status = true;
		cl->status = (int)(st & 0xff);
		return true;
	}
	if (sv_eq(type, "exit-signal")) {
		struct sv name = rd_str(r);
		bool core = rd_bool(r);
		struct sv msg = rd_str(r);
		rd_str(r);
		if (!rd_end(r))
			return false;
		char n[32], m[200];
		sv_printable(name, n, sizeof(n));
		sv_printable(msg, m, sizeof(m));
		int no = sig_number(n);
		cl->have_status = true;
		cl->status = 128 + (no ? no : 0x7f);
		log_info("remote command killed by signal %s%s%s%s", n, core ? " (core dumped)" : "",
			 m[0] ? ": " : "", m);
		return true;
	}
	return false;
}

static void client_closed(struct chan *ch)
{
	struct client *cl = ch->data;
	/* The connection ending takes its channels with it: that is a loss,
	 * not the remote command finishing. */
	if (ch->c->ended)
		cl->lost = true;
	else
		cl->closed = true;
	cl->ch = NULL;
}

static const struct chan_ops client_chan_ops = {
	.name = "session",
	.opened = client_opened,
	.open_failed = client_open_failed,
	.data = client_data,
	.closed = client_closed,
	.request = client_request,
	.reply = client_reply,
};

/* ---- stdin ---- */

static short stdin_want(struct watch *w)
{
	struct client *cl = w->data;
	if (!cl->started || cl->stdin_eof || !cl->ch)
		return 0;
	return chan_send_room(cl->ch) ? POLLIN : 0;
}

static void stdin_ready(struct watch *w, short rev)
{
	struct client *cl = w->data;
	(void)rev;
	if (!cl->raw) {
		ssize_t r = chan_send_from_fd(cl->ch, 0, 0);
		if (r > 0 || r == -EAGAIN)
			return;
		cl->stdin_eof = true;
		loop_del(&cl->loop, w);
		chan_send_eof(cl->ch);
		return;
	}
	/* Keyboard input: small reads, escape processing. */
	unsigned char in[1024], outb[2048];
	size_t room = chan_send_room(cl->ch);
	ssize_t r = read(0, in, room < sizeof(in) ? room : sizeof(in));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		cl->stdin_eof = true;
		loop_del(&cl->loop, w);
		return;
	}
	size_t n;
	int e = term_escape_filter(&cl->esc, in, (size_t)r, outb, &n);
	if (n)
		chan_send(cl->ch, 0, outb, n);
	if (e == TERM_ESC_DISCONNECT) {
		/* Deliberate: exit 255 like ssh, without an error line. */
		fprintf(stderr, "\r\n%c. - disconnected\r\n", cl->esc.ch);
		cl->status = WICKET_EXIT_FAILURE;
		cl->have_status = true;
		conn_disconnect(&cl->c, "disconnected by escape sequence");
	} else if (e == TERM_ESC_HELP) {
		fprintf(stderr, "\r\nSupported escape sequences:\r\n %c.  - disconnect\r\n"
				" %c?  - this message\r\n %c%c  - send the escape character\r\n",
			cl->esc.ch, cl->esc.ch, cl->esc.ch, cl->esc.ch);
	}
}

static const struct watch_ops stdin_ops = { stdin_want, stdin_ready };

/* ---- signals: SIGWINCH resizes; INT/TERM/HUP go to the remote first ---- */

static void sig_ready(struct watch *w, short rev)
{
	struct client *cl = w->data;
	struct signalfd_siginfo si;
	(void)rev;
	while (read(cl->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (!cl->ch)
			continue;
		struct conn *c = &cl->c;
		if (sig == SIGWINCH) {
			if (!cl->o->pty)
				continue;
			unsigned cols, rows, wpx, hpx;
			term_size(isatty(0) ? 0 : 1, &cols, &rows, &wpx, &hpx);
			size_t s = chan_request_begin(cl->ch, "window-change", false, 0);
			buf_u32(&c->out, cols);
			buf_u32(&c->out, rows);
			buf_u32(&c->out, wpx);
			buf_u32(&c->out, hpx);
			conn_pkt_end(c, s);
			continue;
		}
		if (++cl->signals_seen > 1 || !cl->started) {
			/* Give up now, even on a peer that no longer reads. */
			client_fatal(cl, "interrupted by signal %s", sig_name(sig));
			cl->abort_at = monotonic_ms();
			continue;
		}
		/* TERM/HUP ask us to go: the remote command gets a moment to
		 * finish (its exit status is worth having), then we leave. */
		if (sig != SIGINT)
			cl->abort_at = monotonic_ms() + CLIENT_TERM_GRACE_MS;
		size_t s = chan_request_begin(cl->ch, "signal", false, 0);
		buf_cstr(&c->out, sig_name(sig));
		conn_pkt_end(c, s);
	}
}

static short sig_want(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static const struct watch_ops sig_ops = { sig_want, sig_ready };

static void client_ended(struct conn *c)
{
	(void)c;
}

/* The only channels the agent may open to us: auth-agent ones, after -A. */
static uint32_t client_open(struct conn *c, struct chan *ch, struct sv type, struct rd *args,
			    const char **msg)
{
	struct client *cl = c->data;
	(void)args;
	if (!sv_eq(type, "auth-agent@openssh.com") || !cl->o->agent_sock) {
		*msg = "no such channels are opened to this host";
		return OPEN_ADMINISTRATIVELY_PROHIBITED;
	}
	return client_agent_open(&cl->loop, &cl->agents, cl->o->agent_sock, ch, msg);
}

static const struct conn_ops client_conn_ops = { .open = client_open, .ended = client_ended };

static void set_nonblock(struct client *cl, int fd)
{
	/* Only on pipes/sockets/files: a shared tty must stay blocking. */
	int fl = fcntl(fd, F_GETFL);
	cl->saved_fl[fd] = fl;
	if (fl >= 0 && !isatty(fd))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void restore_fl(struct client *cl)
{
	for (int fd = 0; fd < 3; fd++)
		if (cl->saved_fl[fd] >= 0)
			fcntl(fd, F_SETFL, cl->saved_fl[fd]);
}

int client_run(struct tp *tp, const struct client_opts *o)
{
	static struct client cl;
	cl = (struct client){ .o = o, .sigfd = -1, .saved_fl = { -1, -1, -1 } };
	loop_init(&cl.loop);
	signal(SIGPIPE, SIG_IGN);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	cl.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	cl.wsig = (struct watch){ .fd = cl.sigfd, .ops = &sig_ops, .data = &cl };
	loop_add(&cl.loop, &cl.wsig);

	fcntl(tp->rfd, F_SETFL, fcntl(tp->rfd, F_GETFL) | O_NONBLOCK);
	if (tp->wfd != tp->rfd)
		fcntl(tp->wfd, F_SETFL, fcntl(tp->wfd, F_GETFL) | O_NONBLOCK);

	for (int i = 0; i < 2; i++) {
		struct out *ou = &cl.out[i];
		ou->cl = &cl;
		sink_init(&ou->sk, i + 1, 64u * 1024 * 1024);
		ou->w = (struct watch){ .fd = i + 1, .ops = &out_ops, .data = ou };
		loop_add(&cl.loop, &ou->w);
		set_nonblock(&cl, i + 1);
	}
	if (o->pty)
		cl.have_tio = tcgetattr(isatty(0) ? 0 : 1, &cl.tio) == 0;
	if (o->pty && isatty(0)) {
		if (term_raw(0) == 0)
			cl.raw = true;
		term_escape_init(&cl.esc, o->escape);
	}
	if (!cl.raw)
		set_nonblock(&cl, 0);
	if (!o->no_stdin) {
		cl.win = (struct watch){ .fd = 0, .ops = &stdin_ops, .data = &cl };
		loop_add(&cl.loop, &cl.win);
	}

	struct conn_cfg ccfg = { .software = "wicket_" WICKET_VERSION, .pktlog = o->pktlog,
				.compress = wicket_compress, .nonce = client_nonce() };
	if (conn_init(&cl.c, &cl.loop, tp->rfd, tp->wfd, &ccfg, &client_conn_ops, &cl) < 0) {
		fprintf(stderr, "wicket: out of memory\n");
		return WICKET_EXIT_FAILURE;
	}
	cl.ch = chan_open(&cl.c, "session", &client_chan_ops, &cl);

	/* Run until the channel is closed and every byte is written out. */
	while (!cl.c.ended) {
		if (cl.closed && !sink_pending(&cl.out[0].sk) && !sink_pending(&cl.out[1].sk)) {
			conn_disconnect(&cl.c, "session finished");
			conn_service(&cl.c);
			conn_abort(&cl.c);
			break;
		}
		int timeout = -1;
		if (!cl.c.greeted && !cl.c.dead) {
			/* An agent that never greets (not running, wrong port, a
			 * stream that goes nowhere) gets a hint, then an error. */
			long long now = monotonic_ms();
			if (!cl.hint_at) {
				/* The hint is for a person; scripts get only the error. */
				cl.hint_at = isatty(2) ? now + CLIENT_GREETING_HINT_MS : -1;
				cl.greet_deadline = now + CLIENT_GREETING_TIMEOUT_MS;
			}
			if (cl.hint_at > 0 && now >= cl.hint_at) {
				fprintf(stderr, "wicket: %s: still waiting for the agent's greeting "
						"(is wicketd running there?)\r\n", o->target);
				cl.hint_at = -1;
			}
			if (now >= cl.greet_deadline) {
				snprintf(cl.err, sizeof(cl.err), "%s: no greeting from the agent within %d s",
					 o->target, CLIENT_GREETING_TIMEOUT_MS / 1000);
				conn_abort(&cl.c);
				break;
			}
			long long next = cl.hint_at > 0 ? cl.hint_at : cl.greet_deadline;
			timeout = (int)(next - now);
		}
		if (o->keepalive > 0 && cl.c.greeted && !cl.c.dead) {
			/*
			 * Traffic, not a liveness check (the mux probes the agent; a
			 * mux drops these): a stream opened directly -- --share no,
			 * --tools, a kubectl exec behind a load balancer that cuts
			 * idle connections -- is never idle for long.
			 */
			long long now = monotonic_ms(), every = o->keepalive * 1000LL;
			if (!cl.next_keepalive || now >= cl.next_keepalive) {
				if (cl.next_keepalive) {
					size_t s = conn_pkt_begin(&cl.c, MSG_IGNORE);
					buf_cstr(&cl.c.out, "");
					conn_pkt_end(&cl.c, s);
				}
				cl.next_keepalive = now + every;
			}
			long long left = cl.next_keepalive - now;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		if (cl.abort_at) {
			long long left = cl.abort_at - monotonic_ms();
			if (left <= 0) {
				if (!cl.err[0])
					snprintf(cl.err, sizeof(cl.err),
						 "%s: remote command did not finish after the signal",
						 o->target);
				conn_abort(&cl.c);
				break;
			}
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		if (loop_once(&cl.loop, timeout) < 0)
			break;
		conn_service(&cl.c);
	}
	/* Output that arrived before the end still goes out (blocking now). */
	term_restore();
	restore_fl(&cl);
	for (int i = 0; i < 2; i++) {
		struct out *ou = &cl.out[i];
		sink_flush(&ou->sk);
		sink_free(&ou->sk);
	}
	int code;
	if (cl.err[0]) {
		fprintf(stderr, "wicket: %s\n", cl.err);
		code = WICKET_EXIT_FAILURE;
	} else if (cl.stdout_broken) {
		code = 128 + SIGPIPE; /* what the shell reports for a local command */
	} else if (cl.have_status) {
		code = cl.status;
	} else if (cl.closed) {
		fprintf(stderr, "wicket: %s: remote command ended without an exit status\n",
			o->target);
		code = WICKET_EXIT_FAILURE;
	} else {
		target_explain_loss(o->target, cl.c.reason, sizeof(cl.c.reason));
		fprintf(stderr, "wicket: %s: connection lost: %s\n", o->target,
			cl.c.reason[0] ? cl.c.reason : "closed by the agent");
		code = WICKET_EXIT_FAILURE;
	}
	sockchan_list_drop(&cl.agents);
	conn_free(&cl.c);
	loop_free(&cl.loop);
	return code;
}
