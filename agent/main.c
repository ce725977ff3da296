/* SPDX-License-Identifier: MIT */
/* wicketd: the guest agent's command line and listeners. */
#include <errno.h>
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
#include "guest.h"
#include "sandbox.h"
#include "tp.h"

#define MAX_LISTEN 16

static const char usage[] =
	"Usage: wicketd --stdio [OPTION...]\n"
	"       wicketd --listen ADDR [--listen ADDR...] [OPTION...]\n"
	"\n"
	"Guest agent speaking PuTTY's bare ssh-connection protocol.\n"
	"\n"
	"  --stdio               serve one connection on stdin/stdout\n"
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
	"  --no-sandbox          debugging: no seccomp filter, NO_NEW_PRIVS or rlimits\n"
	"                        for the protocol worker\n"
	"  --print-syscalls      print the seccomp allowlist of each process profile\n"
	"  --packet-log FILE     append a readable log of every packet\n"
	"  -v, --verbose         more log output on stderr (repeatable)\n"
	"  -q, --quiet           errors only\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n";

void agent_cfg_defaults(struct agent_cfg *cfg)
{
	static const char *const env_default[] = { "LANG", "LC_*", "TERM", "COLORTERM", "TZ" };
	*cfg = (struct agent_cfg){ .allow_exec = true, .allow_shell = true, .allow_sftp = true,
				   .allow_forwarding = true, .max_channels = 1024,
				   .handshake_timeout = 30 };
	for (size_t i = 0; i < sizeof(env_default) / sizeof(env_default[0]); i++)
		cfg->env_allow[cfg->nenv_allow++] = env_default[i];
}

/* wicket-sftp-server beside our own binary (build tree, or one install
 * directory), else the configured libexec directory. */
static const char *agent_find_sftp_server(char *buf, size_t len)
{
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

static int accept_one(const struct listener *l, const struct agent_cfg *cfg)
{
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

static int serve_listeners(struct listener *ls, int n, const struct agent_cfg *cfg)
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
			int fd = accept_one(&ls[i], cfg);
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
				_exit(agent_serve(fd, fd, cfg, NULL));
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
static int serve_all(struct listener *ls, int n, const struct agent_cfg *cfg)
{
	struct listener socks[MAX_LISTEN];
	int nsocks = 0, nports = 0;
	for (int i = 0; i < n; i++) {
		if (ls[i].kind == L_PORT_VIRTIO || ls[i].kind == L_PORT_SERIAL) {
			nports++;
			if (n == 1)
				return agent_serve_port(ls[i].fd, ls[i].kind == L_PORT_VIRTIO, cfg);
			pid_t pid = fork();
			if (pid < 0) {
				log_err("fork: %s", strerror(errno));
				return 1;
			}
			if (pid == 0)
				_exit(agent_serve_port(ls[i].fd, ls[i].kind == L_PORT_VIRTIO, cfg));
			close(ls[i].fd);
		} else {
			socks[nsocks++] = ls[i];
		}
	}
	if (nsocks)
		return serve_listeners(socks, nsocks, cfg);
	int st = 0;
	while (nports && wait(&st) > 0)
		nports--;
	return 1;
}

int main(int argc, char **argv)
{
	enum { OPT_STDIO = 256, OPT_LISTEN, OPT_ENV, OPT_NOENV, OPT_DENY, OPT_MAXCH, OPT_PKTLOG,
	       OPT_SFTP, OPT_SFTP_RO, OPT_VSOCK_CID, OPT_VSOCK_ANY, OPT_USER, OPT_HS_TIMEOUT,
	       OPT_NO_SANDBOX, OPT_PRINT_SYSCALLS };
	static const struct option opts[] = {
		{ "stdio", no_argument, NULL, OPT_STDIO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "accept-env", required_argument, NULL, OPT_ENV },
		{ "no-accept-env", no_argument, NULL, OPT_NOENV },
		{ "deny", required_argument, NULL, OPT_DENY },
		{ "max-channels", required_argument, NULL, OPT_MAXCH },
		{ "packet-log", required_argument, NULL, OPT_PKTLOG },
		{ "sftp-server", required_argument, NULL, OPT_SFTP },
		{ "sftp-read-only", no_argument, NULL, OPT_SFTP_RO },
		{ "vsock-allow-cid", required_argument, NULL, OPT_VSOCK_CID },
		{ "vsock-allow-any", no_argument, NULL, OPT_VSOCK_ANY },
		{ "user", required_argument, NULL, OPT_USER },
		{ "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "print-syscalls", no_argument, NULL, OPT_PRINT_SYSCALLS },
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
	bool use_stdio = false, print_syscalls = false;
	static char pktlog_buf[BUFSIZ];
	log_set_ident("wicketd");
	umask(077);

	int o;
	while ((o = getopt_long(argc, argv, "vqhV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_STDIO:
			use_stdio = true;
			break;
		case OPT_LISTEN:
			if (nlisten == MAX_LISTEN) {
				fprintf(stderr, "wicketd: at most %d --listen addresses\n", MAX_LISTEN);
				return 2;
			}
			listen[nlisten++] = optarg;
			break;
		case OPT_ENV:
			if (cfg.nenv_allow == AGENT_MAX_ENV_PATTERNS) {
				fprintf(stderr, "wicketd: too many --accept-env patterns\n");
				return 2;
			}
			cfg.env_allow[cfg.nenv_allow++] = optarg;
			break;
		case OPT_NOENV:
			cfg.nenv_allow = 0;
			break;
		case OPT_DENY:
			if (strcmp(optarg, "exec") == 0) {
				cfg.allow_exec = false;
			} else if (strcmp(optarg, "shell") == 0) {
				cfg.allow_shell = false;
			} else if (strcmp(optarg, "sftp") == 0) {
				cfg.allow_sftp = false;
			} else if (strcmp(optarg, "forwarding") == 0) {
				cfg.allow_forwarding = false;
			} else {
				fprintf(stderr,
					"wicketd: --deny: unknown feature '%s' (exec, shell, sftp, "
					"forwarding)\n",
					optarg);
				return 2;
			}
			break;
		case OPT_MAXCH: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 65536) {
				fprintf(stderr, "wicketd: --max-channels: '%s' is not 1..65536\n",
					optarg);
				return 2;
			}
			cfg.max_channels = (unsigned)v;
			break;
		}
		case OPT_SFTP:
			cfg.sftp_server = optarg;
			break;
		case OPT_SFTP_RO:
			cfg.sftp_read_only = true;
			break;
		case OPT_VSOCK_CID: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v > UINT32_MAX || cfg.nvsock_cids == 16) {
				fprintf(stderr, "wicketd: --vsock-allow-cid: bad CID '%s'\n", optarg);
				return 2;
			}
			cfg.vsock_cids[cfg.nvsock_cids++] = (uint32_t)v;
			break;
		}
		case OPT_VSOCK_ANY:
			cfg.vsock_any = true;
			break;
		case OPT_USER:
			cfg.user = optarg;
			break;
		case OPT_HS_TIMEOUT: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v > 86400) {
				fprintf(stderr, "wicketd: --handshake-timeout: '%s' is not 0..86400\n",
					optarg);
				return 2;
			}
			cfg.handshake_timeout = (unsigned)v;
			break;
		}
		case OPT_NO_SANDBOX:
			cfg.no_sandbox = true;
			break;
		case OPT_PRINT_SYSCALLS:
			print_syscalls = true;
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
	if (cfg.user) {
		errno = 0;
		struct passwd *pw = getpwnam(cfg.user);
		if (!pw) {
			fprintf(stderr, "wicketd: --user %s: %s\n", cfg.user,
				errno ? strerror(errno) : "no such user");
			return 2;
		}
		if (geteuid() != 0 && pw->pw_uid != geteuid()) {
			fprintf(stderr, "wicketd: --user %s: only root can run sessions as another user\n",
				cfg.user);
			return 2;
		}
		if (pw->pw_uid == geteuid() && geteuid() != 0)
			cfg.user = NULL; /* already that user: nothing to switch */
	}

	struct listener ls[MAX_LISTEN];
	int nls = 0;
	int nsd = use_stdio || nlisten ? 0 : tp_sd_listen_fds();
	if (use_stdio == (nlisten > 0 || nsd > 0)) {
		fprintf(stderr, "wicketd: give exactly one of --stdio or --listen ADDR\n%s", usage);
		return 2;
	}
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
					       .addr = "systemd" };
	}

	for (int i = 0; i < nlisten; i++) {
		char err[512];
		int r = open_listen(listen[i], &ls[nls], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "wicketd: %s\n", err);
			return r == -EINVAL ? 2 : 1;
		}
		log_info("listening on %s", listen[i]);
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
	return serve_all(ls, nls, &cfg);
}
