/* SPDX-License-Identifier: MIT */
/* wicketd: the guest agent's command line and listeners. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "agent.h"
#include "log.h"
#include "conffile.h"
#include "guest.h"
#include "options.h"
#include "sandbox.h"
#include "tp.h"

#define MAX_LISTEN 16

static const char usage[] =
	"Usage: wicketd --stdio [OPTION...]\n"
	"       wicketd --fd N [OPTION...]\n"
	"       wicketd --listen ADDR [--listen ADDR...] [OPTION...]\n"
	"       wicketd --config FILE [OPTION...]\n"
	"\n"
	"Guest agent speaking PuTTY's bare ssh-connection protocol.\n"
	"\n"
	"  --stdio               serve one connection on stdin/stdout\n"
	"  --fd N                serve one connection on inherited descriptor N (a\n"
	"                        socket; e.g. from podman exec --preserve-fds)\n"
	"  --use-installed       with --fd: if a wicketd other than this program is\n"
	"                        in PATH, /usr/sbin or /usr/local/sbin, run it on the\n"
	"                        stream (as --stdio) instead (wicket brings the static\n"
	"                        agent into containers with this)\n"
	"  --listen ADDR         serve ADDR (repeatable):\n"
	"                          unix/PATH        Unix socket, one process per connection\n"
	"                          vsock/PORT       AF_VSOCK (default port 9022); only the\n"
	"                                           host (CID 2) unless allowed below\n"
	"                          virtio/NAME      virtio-serial port (default name\n"
	"                                           org.wicket.agent.0), one host at a time\n"
	"                          serial/DEV[@BAUD] serial tty in raw mode, one host at a time\n"
	"                        with systemd socket activation (LISTEN_FDS) no --listen\n"
	"                        is needed\n"
	"  --vsock-allow-cid CID also accept vsock peers with this CID (repeatable;\n"
	"                        1 = in-guest loopback)\n"
	"  --vsock-allow-any     accept vsock peers of any CID\n"
	"  --accept-env PATTERN  also accept env requests matching PATTERN (fnmatch);\n"
	"                        default: LANG LC_* TERM COLORTERM TZ\n"
	"  --no-accept-env       accept no env requests\n"
	"  --deny FEATURE        refuse FEATURE: exec, shell, sftp, forwarding (port\n"
	"                        and Unix-socket forwarding, both directions)\n"
	"  --sftp-server PATH    sftp subsystem program (default: wicket-sftp-server\n"
	"                        next to wicketd, then " WICKET_LIBEXECDIR ")\n"
	"  --sftp-read-only      sftp sessions may not change anything\n"
	"  --max-channels N      cap on channels per connection (default 1024)\n"
	"  --user USER           run sessions (and the protocol worker) as USER; HOME,\n"
	"                        SHELL and groups from its passwd entry\n"
	"  --handshake-timeout N the peer's greeting must arrive within N seconds\n"
	"                        (default 30; 0 = wait forever); on virtio and serial\n"
	"                        ports the clock starts with the host's first byte\n"
	"  --toolbox-fd N        exec and shell sessions run the program open on\n"
	"                        descriptor N (a static busybox) with argv[0] naming\n"
	"                        the applet: a shell is its \"sh -l\", a command string\n"
	"                        \"sh -c STRING\"; sftp is unchanged\n"
	"  --toolbox PATH        the same with the program at PATH, opened at start\n"
	"  --session-root DIR    sessions and sftp run chrooted to DIR, users and groups\n"
	"                        from its etc/passwd and etc/group (a debug container\n"
	"                        sharing the target's PID namespace: /proc/1/root)\n"
	"  --greet-after-peer    send our greeting only after the peer's (streams that\n"
	"                        drop output written before the peer attaches, such as\n"
	"                        kubectl debug --attach)\n"
	"  --no-sandbox          debugging: no seccomp filter, NO_NEW_PRIVS or rlimits\n"
	"                        for the protocol worker\n"
	"  --print-syscalls      print the seccomp allowlist of each process profile\n"
	"  --packet-log FILE     append a readable log of every packet\n"
	"  --config FILE         session policy per listen address: [listen ADDR]\n"
	"                        sections of the options above without '--' (user,\n"
	"                        deny, accept-env, ...); keys before any section\n"
	"                        apply to every listener\n"
	"  -v, --verbose         more log output on stderr (repeatable)\n"
	"  -q, --quiet           errors only\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n";

/* @fd moved to 3 or above (stdio may become a session's) and close-on-exec. */
static int fd_high(int fd)
{
	if (fd > 2)
		return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : fd;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return h;
}

/*
 * --toolbox-fd N / --toolbox PATH: a program the monitor executes by
 * descriptor.  Checked now so a bad one fails at start, not per session.
 */
static int toolbox_open(const char *opt, const char *v, char *err, size_t errlen)
{
	int fd;
	if (strcmp(opt, "toolbox-fd") == 0) {
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (!*v || *end || errno || n < 3 || n > 1024 * 1024) {
			snprintf(err, errlen, "--toolbox-fd: '%s' is not a descriptor number of 3 or more",
				 v);
			return -1;
		}
		fd = (int)n;
		if (fcntl(fd, F_GETFD) < 0) {
			snprintf(err, errlen, "--toolbox-fd %s: descriptor not open", v);
			return -1;
		}
	} else {
		fd = open(v, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "--toolbox %s: %s", v, strerror(errno));
			return -1;
		}
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    faccessat(fd, "", X_OK, AT_EMPTY_PATH) < 0) {
		snprintf(err, errlen, "--%s %s: not an executable file", opt, v);
		return -1;
	}
	return fd_high(fd);
}

/* --session-root DIR, kept open: every session is chrooted to this one. */
static int session_root_open(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "--session-root %s: %s%s", dir, strerror(e),
			 e == EACCES && strncmp(dir, "/proc/", 6) == 0
				 ? " (another process's root needs its uid or CAP_SYS_PTRACE)"
				 : "");
		return -1;
	}
	return fd_high(fd);
}

/* wicket-sftp-server beside our own binary (build tree, or one install
 * directory), else the configured libexec directory. */
static const char *agent_find_sftp_server(char *buf, size_t len)
{
#ifdef WICKETD_MULTICALL
	/* wicketd-static is its own sftp server (argv[0] picks the role): it
	 * may run from a memfd in a container that has no file of ours. */
	snprintf(buf, len, "/proc/self/exe");
	return buf;
#endif
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		snprintf(buf, len, "%s/wicket-sftp-server", dirname(self));
		if (access(buf, X_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "%s/wicket-sftp-server", WICKET_LIBEXECDIR);
	return buf;
}

enum listen_kind { L_UNIX, L_VSOCK, L_PORT_VIRTIO, L_PORT_SERIAL, L_INHERITED };

struct listener {
	enum listen_kind kind;
	int fd;
	const char *addr;
	const struct agent_cfg *cfg; /* its session policy */
};

static bool vsock_allowed(const struct agent_cfg *cfg, uint32_t cid)
{
	if (cfg->vsock_any || cid == 2 /* VMADDR_CID_HOST */)
		return true;
	for (int i = 0; i < cfg->nvsock_cids; i++)
		if (cfg->vsock_cids[i] == cid)
			return true;
	return false;
}

static int accept_one(const struct listener *l)
{
	const struct agent_cfg *cfg = l->cfg;
	if (l->kind != L_VSOCK)
		return tp_accept(l->fd);
	uint32_t cid;
	int fd = tp_vsock_accept(l->fd, &cid);
	if (fd >= 0 && !vsock_allowed(cfg, cid)) {
		log_warn("refused vsock connection from CID %u (allow it with --vsock-allow-cid)",
			 cid);
		close(fd);
		return -EPERM;
	}
	return fd;
}

static int serve_listeners(struct listener *ls, int n)
{
	struct pollfd pfd[MAX_LISTEN];
	/* Connection processes are reaped by the kernel: no zombies here. */
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = ls[i].fd, .events = POLLIN };
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			int fd = accept_one(&ls[i]);
			if (fd < 0) {
				if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED && fd != -EPERM)
					log_warn("accept: %s", strerror(-fd));
				continue;
			}
			pid_t pid = fork();
			if (pid < 0) {
				log_warn("fork: %s", strerror(errno));
				close(fd);
				continue;
			}
			if (pid == 0) {
				for (int k = 0; k < n; k++)
					close(ls[k].fd);
				_exit(agent_serve(fd, fd, ls[i].cfg, NULL));
			}
			close(fd);
		}
	}
}

/* Parse and open one --listen address. */
static int open_listen(const char *addr, struct listener *l, char *err, size_t errlen)
{
	l->addr = addr;
	if (strncmp(addr, "unix/", 5) == 0) {
		l->kind = L_UNIX;
		l->fd = tp_unix_listen(addr + 5, err, errlen);
	} else if (strncmp(addr, "vsock/", 6) == 0 || strcmp(addr, "vsock") == 0) {
		unsigned long port = TP_VSOCK_DEFAULT_PORT;
		if (addr[5] == '/' && addr[6]) {
			char *end;
			port = strtoul(addr + 6, &end, 10);
			if (*end || port > UINT32_MAX) {
				snprintf(err, errlen, "--listen %s: bad vsock port", addr);
				return -EINVAL;
			}
		}
		l->kind = L_VSOCK;
		l->fd = tp_vsock_listen((uint32_t)port, err, errlen);
	} else if (strncmp(addr, "virtio/", 7) == 0 || strcmp(addr, "virtio") == 0) {
		const char *name = addr[6] == '/' && addr[7] ? addr + 7 : TP_VIRTIO_DEFAULT_NAME;
		char path[PATH_MAX];
		l->kind = L_PORT_VIRTIO;
		l->fd = tp_virtio_open(name, path, sizeof(path), err, errlen);
	} else if (strncmp(addr, "serial/", 7) == 0 && addr[7]) {
		char dev[PATH_MAX];
		snprintf(dev, sizeof(dev), "%s", addr + 7);
		unsigned long baud = 0;
		char *at = strrchr(dev, '@');
		if (at) {
			char *end;
			*at = 0;
			baud = strtoul(at + 1, &end, 10);
			if (*end || !baud) {
				snprintf(err, errlen, "--listen %s: bad baud rate '%s'", addr, at + 1);
				return -EINVAL;
			}
		}
		l->kind = L_PORT_SERIAL;
		l->fd = tp_serial_open(dev, (unsigned)baud, err, errlen);
	} else {
		snprintf(err, errlen,
			 "--listen: unsupported address '%s' (unix/PATH, vsock/PORT, virtio/NAME, "
			 "serial/DEVICE[@BAUD])",
			 addr);
		return -EINVAL;
	}
	return l->fd < 0 ? l->fd : 0;
}

/*
 * Ports each get a supervisor process; listeners are served here.  With
 * only ports, we wait for the supervisors (they run until killed).
 */
static int serve_all(struct listener *ls, int n)
{
	struct listener socks[MAX_LISTEN];
	int nsocks = 0, nports = 0;
	for (int i = 0; i < n; i++) {
		if (ls[i].kind == L_PORT_VIRTIO || ls[i].kind == L_PORT_SERIAL) {
			nports++;
			if (n == 1)
				return agent_serve_port(ls[i].fd, ls[i].kind == L_PORT_VIRTIO,
							ls[i].cfg);
			pid_t pid = fork();
			if (pid < 0) {
				log_err("fork: %s", strerror(errno));
				return 1;
			}
			if (pid == 0)
				_exit(agent_serve_port(ls[i].fd, ls[i].kind == L_PORT_VIRTIO,
						       ls[i].cfg));
			close(ls[i].fd);
		} else {
			socks[nsocks++] = ls[i];
		}
	}
	if (nsocks)
		return serve_listeners(socks, nsocks);
	int st = 0;
	while (nports && wait(&st) > 0)
		nports--;
	return 1;
}

int main(int argc, char **argv)
{
	/* OPT_POLICY: agent/options.c applies it, as it does the config file's keys. */
	enum { OPT_STDIO = 256, OPT_LISTEN, OPT_POLICY, OPT_PKTLOG, OPT_CONFIG, OPT_NO_SANDBOX,
	       OPT_PRINT_SYSCALLS, OPT_TOOLBOX, OPT_SESSION_ROOT, OPT_GREET_AFTER, OPT_FD,
	       OPT_USE_INSTALLED };
	static const struct option opts[] = {
		{ "stdio", no_argument, NULL, OPT_STDIO },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "use-installed", no_argument, NULL, OPT_USE_INSTALLED },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "accept-env", required_argument, NULL, OPT_POLICY },
		{ "no-accept-env", no_argument, NULL, OPT_POLICY },
		{ "deny", required_argument, NULL, OPT_POLICY },
		{ "max-channels", required_argument, NULL, OPT_POLICY },
		{ "packet-log", required_argument, NULL, OPT_PKTLOG },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "sftp-server", required_argument, NULL, OPT_POLICY },
		{ "sftp-read-only", no_argument, NULL, OPT_POLICY },
		{ "vsock-allow-cid", required_argument, NULL, OPT_POLICY },
		{ "vsock-allow-any", no_argument, NULL, OPT_POLICY },
		{ "user", required_argument, NULL, OPT_POLICY },
		{ "handshake-timeout", required_argument, NULL, OPT_POLICY },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "print-syscalls", no_argument, NULL, OPT_PRINT_SYSCALLS },
		{ "toolbox-fd", required_argument, NULL, OPT_TOOLBOX },
		{ "toolbox", required_argument, NULL, OPT_TOOLBOX },
		{ "session-root", required_argument, NULL, OPT_SESSION_ROOT },
		{ "greet-after-peer", no_argument, NULL, OPT_GREET_AFTER },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct agent_cfg cfg;
	agent_cfg_defaults(&cfg);
	const char *listen[MAX_LISTEN];
	int nlisten = 0;
	bool use_stdio = false, print_syscalls = false, use_installed = false;
	int stream_fd = -1; /* --fd N: the one connection, instead of stdin/stdout */
	static char pktlog_buf[BUFSIZ];
	log_set_ident("wicketd");
	umask(077);

	AGENT_CONF_AUTO struct agent_conf conf = { 0 };
	char err[1024];
	int o, idx = 0;
	while ((o = getopt_long(argc, argv, "vqhV", opts, &idx)) != -1) {
		switch (o) {
		case OPT_STDIO:
			use_stdio = true;
			break;
		case OPT_FD: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 3 || n > 1023 ||
			    fcntl((int)n, F_GETFD) < 0) {
				fprintf(stderr, "wicketd: --fd %s: not an inherited descriptor\n",
					optarg);
				return 2;
			}
			/* Ours alone: no session may inherit it. */
			fcntl((int)n, F_SETFD, FD_CLOEXEC);
			stream_fd = (int)n;
			use_stdio = true;
			break;
		}
		case OPT_USE_INSTALLED:
			use_installed = true;
			break;
		case OPT_LISTEN:
			if (nlisten == MAX_LISTEN) {
				fprintf(stderr, "wicketd: at most %d --listen addresses\n", MAX_LISTEN);
				return 2;
			}
			listen[nlisten++] = optarg;
			break;
		case OPT_POLICY:
			if (agent_opt_apply(&cfg, opts[idx].name, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "wicketd: %s\n", err);
				return 2;
			}
			break;
		case OPT_CONFIG:
			if (conf.path) {
				fprintf(stderr, "wicketd: --config given twice\n");
				return 2;
			}
			/* Its top-level keys count from here, as options would. */
			if (agent_conf_load(optarg, &conf, err, sizeof(err)) < 0 ||
			    agent_conf_apply(&conf, conf.top, conf.ntop, &cfg, err, sizeof(err)) < 0) {
				fprintf(stderr, "wicketd: --config %s\n", err);
				return 2;
			}
			break;
		case OPT_NO_SANDBOX:
			cfg.no_sandbox = true;
			break;
		case OPT_PRINT_SYSCALLS:
			print_syscalls = true;
			break;
		case OPT_TOOLBOX:
			if (cfg.toolbox_fd >= 0) {
				fprintf(stderr, "wicketd: one --toolbox or --toolbox-fd only\n");
				return 2;
			}
			cfg.toolbox_fd = toolbox_open(opts[idx].name, optarg, err, sizeof(err));
			if (cfg.toolbox_fd < 0) {
				fprintf(stderr, "wicketd: %s\n", err);
				return 2;
			}
			break;
		case OPT_SESSION_ROOT:
			if (cfg.root_fd >= 0)
				close(cfg.root_fd);
			cfg.root_fd = session_root_open(optarg, err, sizeof(err));
			if (cfg.root_fd < 0) {
				fprintf(stderr, "wicketd: %s\n", err);
				return 2;
			}
			break;
		case OPT_GREET_AFTER:
			cfg.greet_after_peer = true;
			break;
		case OPT_PKTLOG:
			cfg.pktlog = fopen(optarg, "ae");
			if (!cfg.pktlog) {
				fprintf(stderr, "wicketd: --packet-log %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			/* Our own buffer: stdio need not fstat() it inside the sandbox. */
			setvbuf(cfg.pktlog, pktlog_buf, _IOLBF, sizeof(pktlog_buf));
			break;
		case 'v':
			log_level++;
			break;
		case 'q':
			log_level = LOG_ERR;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("wicketd %s\n", WICKET_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wicketd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	char sftp_path[PATH_MAX];
	if (!cfg.sftp_server)
		cfg.sftp_server = agent_find_sftp_server(sftp_path, sizeof(sftp_path));
	if (cfg.root_fd >= 0) {
		/* Chrooted sessions cannot reach our sftp server by name. */
		int fd = open(cfg.sftp_server, O_PATH | O_CLOEXEC);
		cfg.sftp_fd = fd < 0 ? -1 : fd_high(fd);
	}
	if (print_syscalls) {
		extern const struct sandbox_profile agent_worker_profile;
		sandbox_print(stdout, &agent_worker_profile);
		fflush(stdout);
		/* wicket-sftp-server prints its own. */
		if (access(cfg.sftp_server, X_OK) == 0) {
			execl(cfg.sftp_server, "wicket-sftp-server", "--print-syscalls", (char *)NULL);
			fprintf(stderr, "wicketd: %s: %s\n", cfg.sftp_server, strerror(errno));
		}
		return 0;
	}
	if (agent_opt_check_user(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "wicketd: %s\n", err);
		return 2;
	}
	/* Each [listen ADDR] section: the command line's policy, then its keys. */
	static struct agent_cfg sec_cfg[MAX_LISTEN];
	if (conf.nsec + (size_t)nlisten > MAX_LISTEN) {
		fprintf(stderr, "wicketd: at most %d listen addresses (--listen and [listen])\n",
			MAX_LISTEN);
		return 2;
	}
	for (size_t i = 0; i < conf.nsec; i++) {
		sec_cfg[i] = cfg;
		if (agent_conf_apply(&conf, conf.sec[i].e, conf.sec[i].n, &sec_cfg[i], err,
				     sizeof(err)) < 0) {
			fprintf(stderr, "wicketd: --config %s\n", err);
			return 2;
		}
		if (agent_opt_check_user(&sec_cfg[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "wicketd: --config %s:%u: [listen %s]: %s\n", conf.path,
				conf.sec[i].line, conf.sec[i].addr, err);
			return 2;
		}
		if (!sec_cfg[i].sftp_server)
			sec_cfg[i].sftp_server = cfg.sftp_server;
	}

	struct listener ls[MAX_LISTEN];
	int nls = 0;
	int nsd = use_stdio || nlisten || conf.nsec ? 0 : tp_sd_listen_fds();
	if (use_stdio == (nlisten > 0 || nsd > 0 || conf.nsec > 0)) {
		fprintf(stderr,
			"wicketd: give exactly one of --stdio or --listen ADDR (or --config with "
			"[listen] sections)\n%s",
			usage);
		return 2;
	}
	if (use_installed && stream_fd < 0) {
		fprintf(stderr, "wicketd: --use-installed needs --fd N\n");
		return 2;
	}
	/* A toolbox session wants this agent, whatever the container has. */
	if (use_installed && cfg.toolbox_fd < 0)
		agent_use_installed(stream_fd);
	if (use_stdio && stream_fd >= 0)
		return agent_serve(stream_fd, stream_fd, &cfg, NULL);
	if (use_stdio)
		return agent_serve(0, 1, &cfg, NULL);
	for (int i = 0; i < nsd && nls < MAX_LISTEN; i++) {
		int fd = 3 + i;
		if (!tp_is_listener(fd)) {
			/* Accept=yes: systemd handed us one connection. */
			return agent_serve(fd, fd, &cfg, NULL);
		}
		/* A vsock socket from systemd gets the same CID policy as ours. */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		bool vs = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_VSOCK;
		ls[nls++] = (struct listener){ .kind = vs ? L_VSOCK : L_INHERITED, .fd = fd,
					       .addr = "systemd", .cfg = &cfg };
	}

	for (size_t i = 0; i < (size_t)nlisten + conf.nsec; i++) {
		bool sec = i >= (size_t)nlisten;
		const char *addr = sec ? conf.sec[i - (size_t)nlisten].addr : listen[i];
		int r = open_listen(addr, &ls[nls], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "wicketd: %s\n", err);
			return r == -EINVAL ? 2 : 1;
		}
		ls[nls].cfg = sec ? &sec_cfg[i - (size_t)nlisten] : &cfg;
		log_info("listening on %s%s", addr, sec ? " (policy from --config)" : "");
		nls++;
	}
	if (!cfg.no_sandbox && !sandbox_available())
		log_warn("built without libseccomp: protocol workers run without a syscall "
			 "filter (NO_NEW_PRIVS and rlimits only)");
	if (!cfg.no_sandbox) {
		/* Connection processes inherit the compiled filter. */
		extern const struct sandbox_profile agent_worker_profile;
		sandbox_prepare(&agent_worker_profile);
	}
	return serve_all(ls, nls);
}
