/* SPDX-License-Identifier: MIT */
/*
 * The network process is a fresh image of this program, not a fork of the
 * monitor: its own address-space layout (a layout learnt from one client
 * says nothing about the next one's, nor about the monitor's), and no
 * memory of the monitor's at all, so there are no secrets to forget.
 *
 * The monitor's child lays out its descriptors (PRIVSEP_FD_*) and executes
 * /proc/self/exe as "wicket-ssh-net --ssh-net-child MONITOR_PID"; main()
 * hands that to privsep_net_child(), which reads its configuration from the
 * monitor (PRIV_CONFIG, the first datagram) and runs privsep_net_main().
 */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

enum { CFG_AUTHKEYS = 1u << 0, CFG_TOKEN = 1u << 1, CFG_NONE = 1u << 2, CFG_PKTLOG = 1u << 3,
       CFG_LOG_PREAUTH = 1u << 4 };

int privsep_send_config(int sock, const struct ssh_server_cfg *cfg, struct privsep_ids ids)
{
	struct buf b;
	buf_init(&b, PRIV_MSG_MAX);
	uint32_t flags = (cfg->has_authkeys ? CFG_AUTHKEYS : 0) | (cfg->has_token ? CFG_TOKEN : 0) |
			 (cfg->allow_none ? CFG_NONE : 0) | (cfg->pktlog ? CFG_PKTLOG : 0) |
			 (cfg->log_preauth ? CFG_LOG_PREAUTH : 0);
	buf_u8(&b, PRIV_CONFIG);
	buf_u32(&b, flags);
	buf_u32(&b, (uint32_t)log_level);
	buf_u32(&b, (uint32_t)cfg->grace_seconds);
	buf_u32(&b, (uint32_t)(cfg->rekey_bytes >> 32));
	buf_u32(&b, (uint32_t)cfg->rekey_bytes);
	buf_u32(&b, cfg->rekey_seconds);
	buf_u32(&b, (uint32_t)ids.uid);
	buf_u32(&b, (uint32_t)ids.gid);
	for (int t = 0; t < SSHKEY_NTYPES; t++)
		buf_sv(&b, cfg->host_blob[t]);
	buf_cstr(&b, cfg->peer_addr ? cfg->peer_addr : "UNKNOWN");
	buf_cstr(&b, cfg->conn.caddr);
	buf_u32(&b, cfg->conn.cport);
	buf_cstr(&b, cfg->conn.saddr);
	buf_u32(&b, cfg->conn.sport);
	ssize_t n = -1;
	if (!b.err) {
		do
			n = send(sock, buf_data(&b), buf_used(&b), MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
	}
	int ok = n == (ssize_t)buf_used(&b);
	buf_free(&b);
	return ok ? 0 : -1;
}

/* Move @from to @to, whatever else sits there (all are above 4 by now). */
static int place(int from, int to)
{
	return from < 0 || dup2(from, to) == to ? 0 : -1;
}

void privsep_exec_net(int rfd, int wfd, int sock, FILE *pktlog, pid_t monitor)
{
	/* Up out of the way first: the sources may sit on each other's targets. */
	int hr = fcntl(rfd, F_DUPFD, 10), hw = fcntl(wfd, F_DUPFD, 10);
	int hs = fcntl(sock, F_DUPFD, 10), hp = pktlog ? fcntl(fileno(pktlog), F_DUPFD, 10) : -1;
	if (hr < 0 || hw < 0 || hs < 0 || (pktlog && hp < 0) || place(hr, PRIVSEP_FD_IN) < 0 ||
	    place(hw, PRIVSEP_FD_OUT) < 0 || place(hs, PRIVSEP_FD_MONITOR) < 0 ||
	    place(hp, PRIVSEP_FD_PKTLOG) < 0) {
		log_err("ssh: cannot set up the network process: %s", strerror(errno));
		_exit(255);
	}
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)monitor);
	char *const argv[] = { "wicket-ssh-net", PRIVSEP_CHILD_ARG, pid, NULL };
	extern char **environ;
	execve("/proc/self/exe", argv, environ);
	log_err("ssh: cannot start the network process (/proc/self/exe): %s", strerror(errno));
	_exit(255);
}

int privsep_net_child(int argc, char **argv)
{
	log_set_ident("wicket");
	char *end;
	long mon = argc == 3 ? strtol(argv[2], &end, 10) : 0;
	if (mon <= 1 || *end || getppid() != (pid_t)mon) {
		log_err("--ssh-net-child is wicket's own: its SSH server starts it");
		return 255;
	}
	uint8_t msg[PRIV_MSG_MAX];
	ssize_t n;
	do
		n = recv(PRIVSEP_FD_MONITOR, msg, sizeof(msg), 0);
	while (n < 0 && errno == EINTR);
	struct rd r;
	rd_init(&r, msg, n > 0 ? (size_t)n : 0);
	uint8_t type = rd_u8(&r);
	uint32_t flags = rd_u32(&r), level = rd_u32(&r), grace = rd_u32(&r);
	uint64_t rekey_bytes = (uint64_t)rd_u32(&r) << 32;
	rekey_bytes |= rd_u32(&r);
	uint32_t rekey_seconds = rd_u32(&r);
	struct privsep_ids ids = { (uid_t)rd_u32(&r), (gid_t)rd_u32(&r) };
	struct sv blob[SSHKEY_NTYPES];
	for (int t = 0; t < SSHKEY_NTYPES; t++)
		blob[t] = rd_str(&r);
	char peer[256];
	struct sv pv = rd_str(&r);
	struct ssh_conn_info conn;
	struct sv ca = rd_str(&r);
	conn.cport = rd_u32(&r);
	struct sv sa = rd_str(&r);
	conn.sport = rd_u32(&r);
	if (n <= 0 || type != PRIV_CONFIG || !rd_end(&r) || pv.n >= sizeof(peer) ||
	    memchr(pv.p, 0, pv.n) || ca.n >= sizeof(conn.caddr) || sa.n >= sizeof(conn.saddr)) {
		log_err("ssh: the network process got no configuration from the monitor");
		return 255;
	}
	memcpy(peer, pv.p, pv.n);
	peer[pv.n] = 0;
	memcpy(conn.caddr, ca.p, ca.n);
	conn.caddr[ca.n] = 0;
	memcpy(conn.saddr, sa.p, sa.n);
	conn.saddr[sa.n] = 0;
	log_level = (int)level;
	struct ssh_server_cfg cfg = {
		.host_blob = { blob[0], blob[1], blob[2] },
		.has_authkeys = flags & CFG_AUTHKEYS,
		.has_token = flags & CFG_TOKEN,
		.allow_none = flags & CFG_NONE,
		.log_preauth = flags & CFG_LOG_PREAUTH,
		.peer_addr = peer,
		.conn = conn,
		.grace_seconds = (int)grace,
		.rekey_bytes = rekey_bytes,
		.rekey_seconds = rekey_seconds,
	};
	if ((flags & CFG_PKTLOG) && !(cfg.pktlog = fdopen(PRIVSEP_FD_PKTLOG, "a"))) {
		log_err("ssh: packet log: %s", strerror(errno));
		return 255;
	}
	privsep_net_main(&cfg, PRIVSEP_FD_IN, PRIVSEP_FD_OUT, PRIVSEP_FD_MONITOR, (pid_t)mon, ids);
}
