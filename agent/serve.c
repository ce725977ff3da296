/* SPDX-License-Identifier: MIT */
/*
 * One connection: the monitor/worker split, the worker's event loop,
 * channel-open policy and child exits (reported by the monitor).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "agent.h"
#include "conn.h"
#include "forward.h"
#include "log.h"
#include "monitor.h"
#include "msg.h"
#include "sandbox.h"
#include "session.h"
#include "spawn.h"
#include "syscalls.h"
#include "wire.h"

/* A half-received packet with no new byte for this long on a port means
 * its sender is gone (the stall check only runs once greeted). */
#define AGENT_PORT_STALL_MS 2000
/* The same when a new host's greeting is already inside that packet: the
 * new host sent it and now waits for our answer, so a short pause is
 * enough to tell it from payload that merely quotes a greeting. */
#define AGENT_PORT_RESYNC_MS 250

/* Seccomp allowlist of this file: the handshake clock, the carry pipe. */
SYSCALLS(serve) = { SC("clock_gettime"), SC("write"), SC("close"), SC_END };

extern const struct sandbox_profile agent_worker_profile;

struct agent_conn {
	struct conn c;
	struct session_ctx sessions;
	struct fwd_ctx fwd;
	const struct agent_cfg *cfg;
	struct watch monw;
	bool failed;
	bool test_forbidden; /* WICKETD_TEST_FORBIDDEN_SYSCALL */
};

static uint32_t agent_open(struct conn *c, struct chan *ch, struct sv type, struct rd *args,
			   const char **msg)
{
	struct agent_conn *ac = c->data;
	if (sv_eq(type, "session")) {
		if (!rd_end(args)) {
			*msg = "malformed session open";
			return OPEN_CONNECT_FAILED;
		}
		if (session_open(&ac->sessions, ch) < 0) {
			*msg = "out of memory";
			return OPEN_RESOURCE_SHORTAGE;
		}
		return 0;
	}
	if (fwd_is_channel(type))
		return fwd_open(&ac->fwd, ch, type, args, msg);
	*msg = "unknown channel type";
	return OPEN_UNKNOWN_CHANNEL_TYPE;
}

static bool agent_global_request(struct conn *c, struct sv name, bool want_reply, struct rd *args)
{
	struct agent_conn *ac = c->data;
	bool ok = false;
	(void)want_reply;
	fwd_global_request(&ac->fwd, name, args, &ok);
	return ok;
}

static void agent_ended(struct conn *c)
{
	struct agent_conn *ac = c->data;
	fwd_cleanup(&ac->fwd); /* listening forwards end with the connection */
	/*
	 * Failed: ended by us, not by the peer.  On a port, neither a session
	 * handed over to a new host (conn_restart) nor one that broke on what
	 * a dead host left (it had input, so the next one has no reason to
	 * back off) counts: the port goes straight back to its greeting scan.
	 */
	bool port = c->cfg.greet_after_peer;
	if (c->reason[0] && strncmp(c->reason, "peer", 4) != 0 && !c->restarted &&
	    !(port && c->rx_bytes))
		ac->failed = true;
}

/*
 * Test-only (WICKETD_TESTING=1 and WICKETD_TEST_FORBIDDEN_SYSCALL=1): once
 * the greetings are exchanged, make a syscall outside the allowlist, so
 * tests can watch the filter kill the worker.
 */
static void agent_test_forbidden(struct agent_conn *ac)
{
	if (!ac->test_forbidden || !ac->c.greeted || buf_used(&ac->c.out))
		return;
	ac->test_forbidden = false;
	log_warn("test: calling a forbidden syscall (openat)");
	long r = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_CLOEXEC);
	log_warn("test: openat returned %ld: no seccomp filter in place", r);
	if (r >= 0)
		close((int)r);
}

static const struct conn_ops agent_conn_ops = {
	.open = agent_open,
	.global_request = agent_global_request,
	.ended = agent_ended,
};

/* The monitor reported child exits (or went away). */
static void agent_monitor_ready(struct watch *w, short rev)
{
	struct agent_conn *ac = w->data;
	(void)rev;
	if (!spawn_poll()) {
		loop_del(ac->sessions.loop, w);
		conn_disconnect(&ac->c, "wicketd: the agent's monitor process is gone");
	}
}

static short agent_want_monitor(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static const struct watch_ops agent_monitor_ops = { agent_want_monitor, agent_monitor_ready };

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_regular(int fd)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* NO_NEW_PRIVS, rlimits, the session user, seccomp: see sandbox.h. */
static int worker_isolate(const struct agent_cfg *cfg, const struct agent_user *u)
{
	if (cfg->no_sandbox) {
		log_info("--no-sandbox: the protocol worker runs unconfined");
		return 0;
	}
	if (!sandbox_available())
		log_info("built without libseccomp: the protocol worker gets NO_NEW_PRIVS and "
			 "rlimits but no syscall filter");
	/* Every channel may hold a pty master and its duplicate or three pipe
	 * ends; listening forwards up to 8 sockets each. */
	unsigned long nofile = 32 + 4ul * cfg->max_channels + 8ul * 64;
	struct sandbox_opts o = {
		.profile = &agent_worker_profile,
		.seccomp = sandbox_available(),
		.nofile = nofile,
		/* Logs may go to a file we hold open; otherwise no file grows. */
		.no_files = !is_regular(2) && !(cfg->pktlog && is_regular(fileno(cfg->pktlog))),
		.no_fork = true,
		.drop_user = u->switch_user && geteuid() == 0,
		.uid = u->uid,
		.gid = u->gid,
		.drop_caps = true,
		.keep_bind_service = !u->switch_user,
	};
	return sandbox_isolate(&o);
}

/* Close @fd, or point it at /dev/null if it is one of 0-2 (never reused). */
static void release_stream_fd(int fd)
{
	if (fd > 2) {
		close(fd);
		return;
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, fd);
		if (null != fd)
			close(null);
	}
}

/* Block until the monitor says the peer is there; false: it never will be. */
static bool worker_wait_go(int gofd)
{
	char go;
	ssize_t n;
	do
		n = read(gofd, &go, 1);
	while (n < 0 && errno == EINTR);
	close(gofd);
	return n == 1;
}

/* Below this many bytes/s a line counts as slow (115200 baud is 11520). */
#define SLOW_LINE_RATE (1024u * 1024u)
#define SLOW_LINE_PACKET 1024u

/* A tty's rate in bytes per second (8N1: a tenth of the baud rate), else 0. */
static uint32_t line_rate_of(int fd)
{
	struct termios t;
	if (!isatty(fd) || tcgetattr(fd, &t) < 0)
		return 0;
	static const struct {
		speed_t s;
		uint32_t baud;
	} rates[] = {
		{ B1200, 1200 },     { B2400, 2400 },	  { B4800, 4800 },     { B9600, 9600 },
		{ B19200, 19200 },   { B38400, 38400 },	  { B57600, 57600 },   { B115200, 115200 },
		{ B230400, 230400 }, { B460800, 460800 }, { B921600, 921600 }, { B1000000, 1000000 },
		{ B2000000, 2000000 }, { B4000000, 4000000 },
	};
	speed_t sp = cfgetospeed(&t);
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (rates[i].s == sp)
			return rates[i].baud / 10;
	return 0;
}

/*
 * The protocol worker: parse the stream, ask the monitor for the rest.
 * With @gofd >= 0 it was started ahead of its peer: it isolates itself,
 * then waits for the monitor's go before it touches the stream.
 */
static int worker_main(int rfd, int wfd, const struct agent_cfg *cfg, const struct agent_user *u,
		       int monfd, struct buf *carry, int carryfd, int gofd)
{
	prctl(PR_SET_NAME, "wicketd-worker", 0, 0, 0);
	struct loop l;
	loop_init(&l);
	static struct agent_conn ac;
	ac = (struct agent_conn){ .cfg = cfg };
	ac.sessions = (struct session_ctx){ .loop = &l, .cfg = cfg, .user = u, .fwd = &ac.fwd };
	fwd_init(&ac.fwd, &l, &ac.c, cfg);
	const char *t = getenv("WICKETD_TESTING");
	const char *tf = getenv("WICKETD_TEST_FORBIDDEN_SYSCALL");
	ac.test_forbidden = t && strcmp(t, "1") == 0 && tf && strcmp(tf, "1") == 0;

	signal(SIGPIPE, SIG_IGN);
	/* stdin and stdout, unless they are the stream, may be the agent's
	 * terminal: the worker keeps only stderr, for logging. */
	for (int fd = 0; fd <= 1; fd++)
		if (fd != rfd && fd != wfd)
			release_stream_fd(fd);
	/* The monitor's alone: the worker never executes or opens anything. */
	int mon_only[] = { cfg->toolbox_fd, cfg->root_fd, cfg->sftp_fd };
	for (size_t i = 0; i < sizeof(mon_only) / sizeof(mon_only[0]); i++)
		if (mon_only[i] > 2)
			close(mon_only[i]);
	spawn_init(monfd);
	ac.monw = (struct watch){ .fd = monfd, .ops = &agent_monitor_ops, .data = &ac };
	loop_add(&l, &ac.monw);

	fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	if (wfd != rfd)
		fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);

	struct conn_cfg ccfg = {
		.software = "wicketd_" WICKET_VERSION,
		.max_channels = cfg->max_channels,
		.pktlog = cfg->pktlog,
		.greet_after_peer = carry != NULL || cfg->greet_after_peer,
		.accept_compress = true,
		.line_rate = line_rate_of(rfd),
	};
	if (ccfg.line_rate && ccfg.line_rate < SLOW_LINE_RATE) {
		/* A slow line: small packets and a short queue, so what another
		 * channel sends never waits behind seconds of bulk data. */
		ccfg.tx_maxpkt = SLOW_LINE_PACKET;
		ccfg.out_high = 2 * SLOW_LINE_PACKET;
		log_info("serial line at %u bytes/s: packets of at most %u bytes", ccfg.line_rate,
			 SLOW_LINE_PACKET);
	}
	if (conn_init(&ac.c, &l, rfd, wfd, &ccfg, &agent_conn_ops, &ac) < 0) {
		log_err("out of memory");
		return 1;
	}
	if (worker_isolate(cfg, u) < 0) {
		log_err("cannot sandbox the protocol worker: refusing to serve (--no-sandbox to debug)");
		return 1;
	}
	if (gofd >= 0 && !worker_wait_go(gofd))
		return 0;
	if (carry && buf_used(carry)) {
		conn_feed(&ac.c, buf_data(carry), buf_used(carry));
		buf_reset(carry);
	}
	/*
	 * The greeting must come within --handshake-timeout; on a port that
	 * outlives hosts the clock starts with the host's first byte.
	 */
	int64_t deadline = 0, limit = (int64_t)cfg->handshake_timeout * 1000;
	/* Ports: a packet left half-sent by a dead host must not wait forever
	 * for bytes that are really the next host's greeting. */
	uint64_t seen_rx = 0;
	int64_t rx_at = 0;
	while (!ac.c.ended) {
		int timeout = -1;
		if (carry && conn_partial_input(&ac.c) && !ac.c.dead) {
			if (ac.c.rx_bytes != seen_rx || !rx_at) {
				seen_rx = ac.c.rx_bytes;
				rx_at = mono_ms();
			}
			bool greeting = conn_partial_greeting(&ac.c);
			int64_t left =
				rx_at + (greeting ? AGENT_PORT_RESYNC_MS : AGENT_PORT_STALL_MS) - mono_ms();
			if (left > 0) {
				timeout = (int)left;
			} else if (greeting) {
				conn_restart(&ac.c, "a new host's greeting inside an unfinished packet");
				rx_at = 0;
			} else {
				conn_fail(&ac.c, DISC_PROTOCOL_ERROR,
					  "incomplete packet stalled; resynchronising on the next greeting");
				rx_at = 0;
			}
		} else {
			rx_at = 0;
		}
		if (limit && !ac.c.greeted && !ac.c.dead) {
			if (!deadline && (!carry || ac.c.rx_bytes))
				deadline = mono_ms() + limit;
			if (deadline) {
				int64_t left = deadline - mono_ms();
				timeout = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
			}
		}
		/* An end decided outside the loop's callbacks (the carried bytes
		 * held a whole stale session, a restart above) must not wait for
		 * an event that may never come. */
		if (ac.c.want_finish)
			timeout = 0;
		int r = loop_once(&l, timeout);
		if (r < 0) {
			log_err("poll: %s", strerror(-r));
			break;
		}
		if (deadline && !ac.c.greeted && !ac.c.dead && mono_ms() >= deadline) {
			if (carry) {
				/* We never greeted: nothing to tell; start clean. */
				log_info("no greeting within %u s of the host's first byte",
					 cfg->handshake_timeout);
				buf_reset(&ac.c.in);
				conn_abort(&ac.c);
			} else {
				conn_fail(&ac.c, DISC_PROTOCOL_ERROR, "no greeting within %u seconds",
					  cfg->handshake_timeout);
			}
		}
		pid_t pid;
		int st;
		while (spawn_next_exit(&pid, &st))
			session_child_exited(&ac.sessions, pid, st);
		session_tick(&ac.sessions);
		conn_service(&ac.c);
		agent_test_forbidden(&ac);
	}
	if (carry && carryfd >= 0) {
		/* What the session could not parse (and, if it broke, what it
		 * parsed last) may hold the next host's greeting. */
		static uint8_t tail[WIRE_MAX_PACKET + 512];
		size_t n = conn_resync_tail(&ac.c, tail, sizeof(tail));
		const uint8_t *p = tail;
		while (n) {
			ssize_t w = write(carryfd, p, n);
			if (w <= 0)
				break;
			p += w;
			n -= (size_t)w;
		}
	}
	return ac.failed ? 1 : 0;
}

int agent_serve(int rfd, int wfd, const struct agent_cfg *cfg, struct buf *carry)
{
	return agent_serve_ahead(rfd, wfd, cfg, carry, NULL);
}

/* Close those of @fds that are open. */
static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int agent_serve_ahead(int rfd, int wfd, const struct agent_cfg *cfg, struct buf *carry,
		      int (*wait_peer)(int fd))
{
	static struct agent_user user;
	int e = agent_user_resolve(cfg->user, cfg, &user);
	if (e < 0) {
		log_err("session user %s: %s", cfg->user ? cfg->user : "(self)", strerror(-e));
		return 1;
	}
	/* Compiled once per agent process, not once per worker. */
	if (!cfg->no_sandbox)
		sandbox_prepare(&agent_worker_profile);
	/* sp: the monitor's socket; cp: the carry back to us; gp: the go signal. */
	int fds[6] = { -1, -1, -1, -1, -1, -1 };
	int *sp = fds, *cp = fds + 2, *gp = fds + 4;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_err("socketpair: %s", strerror(errno));
		return 1;
	}
	if ((carry && pipe2(cp, O_CLOEXEC | O_NONBLOCK) < 0) ||
	    (wait_peer && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gp) < 0)) {
		log_err("pipe: %s", strerror(errno));
		close_fds(fds, 6);
		return 1;
	}
	if (carry)
		fcntl(cp[1], F_SETPIPE_SZ, 1024 * 1024);
	/* The monitor hears of children through a signalfd. */
	signal(SIGCHLD, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);

	pid_t pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		close_fds(fds, 6);
		return 1;
	}
	if (pid == 0) {
		close(sp[0]);
		if (carry)
			close(cp[0]);
		if (wait_peer)
			close(gp[1]);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		_exit(worker_main(rfd, wfd, cfg, &user, sp[1], carry, cp[1], gp[0]));
	}
	close(sp[1]);
	if (carry) {
		close(cp[1]);
		buf_reset(carry);
	} else {
		release_stream_fd(rfd);
		if (wfd != rfd)
			release_stream_fd(wfd);
	}
	int werr = 0;
	if (wait_peer) {
		/* The worker forks and sandboxes itself meanwhile. */
		close(gp[0]);
		werr = wait_peer(rfd);
		if (!werr) {
			/* If the worker is already gone, monitor_run() says why. */
			ssize_t w = send(gp[1], "g", 1, MSG_NOSIGNAL);
			(void)w;
		}
		close(gp[1]);
	}
	int st = monitor_run(sp[0], pid, cfg, &user);
	close(sp[0]);
	if (carry) {
		uint8_t tmp[65536];
		ssize_t n;
		while ((n = read(cp[0], tmp, sizeof(tmp))) > 0)
			buf_put(carry, tmp, (size_t)n);
		if (carry->err)
			buf_reset(carry);
		close(cp[0]);
	}
	if (werr < 0)
		return werr;
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		log_err("protocol worker killed by signal %d (%s)%s", sig, strsignal(sig),
			sig == SIGSYS ? ": a syscall outside its seccomp allowlist" : "");
		return 1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
