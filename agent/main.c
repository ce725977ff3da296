/* SPDX-License-Identifier: MIT */
/* wicketd: the guest agent's command line and listeners. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "agent.h"
#include "log.h"
#include "tp.h"

#define MAX_LISTEN 16

static const char usage[] =
	"Usage: wicketd --stdio [OPTION...]\n"
	"       wicketd --listen ADDR [--listen ADDR...] [OPTION...]\n"
	"\n"
	"Guest agent speaking PuTTY's bare ssh-connection protocol.\n"
	"\n"
	"  --stdio               serve one connection on stdin/stdout\n"
	"  --listen ADDR         listen on ADDR; one process per connection\n"
	"                        ADDR: unix/PATH\n"
	"  --accept-env PATTERN  also accept env requests matching PATTERN (fnmatch);\n"
	"                        default: LANG LC_* TERM COLORTERM TZ\n"
	"  --no-accept-env       accept no env requests\n"
	"  --deny FEATURE        refuse FEATURE: exec, shell, sftp\n"
	"  --sftp-server PATH    sftp subsystem program (default: wicket-sftp-server\n"
	"                        next to wicketd, then " WICKET_LIBEXECDIR ")\n"
	"  --sftp-read-only      sftp sessions may not change anything\n"
	"  --max-channels N      cap on channels per connection (default 1024)\n"
	"  --packet-log FILE     append a readable log of every packet\n"
	"  -v, --verbose         more log output on stderr (repeatable)\n"
	"  -q, --quiet           errors only\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n";

void agent_cfg_defaults(struct agent_cfg *cfg)
{
	static const char *const env_default[] = { "LANG", "LC_*", "TERM", "COLORTERM", "TZ" };
	*cfg = (struct agent_cfg){ .allow_exec = true, .allow_shell = true, .allow_sftp = true,
				   .max_channels = 1024 };
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

static int serve_listeners(int *lfd, int n, const struct agent_cfg *cfg)
{
	struct pollfd pfd[MAX_LISTEN];
	/* Connection processes reap themselves through init: no zombies here. */
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = lfd[i], .events = POLLIN };
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			int fd = tp_accept(lfd[i]);
			if (fd < 0) {
				if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED)
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
					close(lfd[k]);
				_exit(agent_serve(fd, fd, cfg));
			}
			close(fd);
		}
	}
}

int main(int argc, char **argv)
{
	enum { OPT_STDIO = 256, OPT_LISTEN, OPT_ENV, OPT_NOENV, OPT_DENY, OPT_MAXCH, OPT_PKTLOG,
	       OPT_SFTP, OPT_SFTP_RO };
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
	bool use_stdio = false;
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
			} else {
				fprintf(stderr,
					"wicketd: --deny: unknown feature '%s' (exec, shell, sftp)\n",
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
		case OPT_PKTLOG:
			cfg.pktlog = fopen(optarg, "ae");
			if (!cfg.pktlog) {
				fprintf(stderr, "wicketd: --packet-log %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			setvbuf(cfg.pktlog, NULL, _IOLBF, 0);
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
	if (use_stdio == (nlisten > 0)) {
		fprintf(stderr, "wicketd: give exactly one of --stdio or --listen ADDR\n%s", usage);
		return 2;
	}
	char sftp_path[PATH_MAX];
	if (!cfg.sftp_server)
		cfg.sftp_server = agent_find_sftp_server(sftp_path, sizeof(sftp_path));
	if (use_stdio)
		return agent_serve(0, 1, &cfg);

	int lfd[MAX_LISTEN];
	for (int i = 0; i < nlisten; i++) {
		char err[256];
		if (strncmp(listen[i], "unix/", 5) == 0) {
			lfd[i] = tp_unix_listen(listen[i] + 5, err, sizeof(err));
		} else {
			fprintf(stderr, "wicketd: --listen: unsupported address '%s' (use unix/PATH)\n",
				listen[i]);
			return 2;
		}
		if (lfd[i] < 0) {
			fprintf(stderr, "wicketd: %s\n", err);
			return 1;
		}
		log_info("listening on %s", listen[i]);
	}
	return serve_listeners(lfd, nlisten, &cfg);
}
