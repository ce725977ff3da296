/* SPDX-License-Identifier: MIT */
/* One connection: the event loop, channel-open policy and child reaping. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "agent.h"
#include "conn.h"
#include "forward.h"
#include "log.h"
#include "msg.h"
#include "session.h"

struct agent_conn {
	struct conn c;
	struct session_ctx sessions;
	struct fwd_ctx fwd;
	const struct agent_cfg *cfg;
	struct watch sigw;
	bool failed;
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
	if (c->reason[0] && strncmp(c->reason, "peer", 4) != 0)
		ac->failed = true;
}

static const struct conn_ops agent_conn_ops = {
	.open = agent_open,
	.global_request = agent_global_request,
	.ended = agent_ended,
};

static void agent_reap(struct watch *w, short rev)
{
	struct agent_conn *ac = w->data;
	struct signalfd_siginfo si;
	(void)rev;
	while (read(w->fd, &si, sizeof(si)) > 0) {
	}
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		session_child_exited(&ac->sessions, pid, st);
}

static short agent_want_sig(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static const struct watch_ops agent_sig_ops = { agent_want_sig, agent_reap };

int agent_serve(int rfd, int wfd, const struct agent_cfg *cfg, struct buf *carry)
{
	struct loop l;
	loop_init(&l);
	static struct agent_conn ac;
	ac = (struct agent_conn){ .cfg = cfg };
	ac.sessions = (struct session_ctx){ .loop = &l, .cfg = cfg };
	fwd_init(&ac.fwd, &l, &ac.c, cfg);

	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}
	ac.sigw = (struct watch){ .fd = sfd, .ops = &agent_sig_ops, .data = &ac };
	loop_add(&l, &ac.sigw);

	fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	if (wfd != rfd)
		fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);

	struct conn_cfg ccfg = {
		.software = "wicketd_" WICKET_VERSION,
		.max_channels = cfg->max_channels,
		.pktlog = cfg->pktlog,
		.greet_after_peer = carry != NULL,
	};
	if (conn_init(&ac.c, &l, rfd, wfd, &ccfg, &agent_conn_ops, &ac) < 0) {
		log_err("out of memory");
		return 1;
	}
	if (carry && buf_used(carry)) {
		conn_feed(&ac.c, buf_data(carry), buf_used(carry));
		buf_reset(carry);
	}
	while (!ac.c.ended) {
		int r = loop_once(&l, -1);
		if (r < 0) {
			log_err("poll: %s", strerror(-r));
			break;
		}
		session_tick(&ac.sessions);
		conn_service(&ac.c);
	}
	if (carry) {
		/* What a broken session could not parse may hold the next greeting. */
		buf_put(carry, buf_data(&ac.c.in), buf_used(&ac.c.in));
		if (carry->err)
			buf_reset(carry);
	}
	conn_free(&ac.c);
	close(sfd);
	loop_free(&l);
	return ac.failed ? 1 : 0;
}
