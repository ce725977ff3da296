/* SPDX-License-Identifier: MIT */
/* wicket: the host command line. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "client.h"
#include "client_agent.h"
#include "cli.h"
#include "cp.h"
#include "ctr_list.h"
#include "forward.h"
#include "help.h"
#include "log.h"
#include "mux/mux.h"
#include "proxy.h"
#include "ssh/ssh.h"
#include "target.h"
#include "tp.h"
#include "vm.h"

static int cmd_session(int argc, char **argv, int i, struct globals *g, bool shell)
{
	struct client_opts o = { .escape = shell ? '~' : -1 };
	bool tools = false, agent = false;
	for (; i < argc; i++) {
		const char *a = argv[i];
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (r)
			continue;
		if (a[0] != '-' || strcmp(a, "--") == 0 || strcmp(a, "-") == 0)
			break;
		if (!shell && strcmp(a, "-t") == 0) {
			o.pty = true;
			o.escape = '~';
		} else if (!shell && strcmp(a, "-n") == 0) {
			o.no_stdin = true;
		} else if (strcmp(a, "--tools") == 0) {
			tools = true;
		} else if (strcmp(a, "-A") == 0) {
			agent = true;
		} else if (strcmp(a, "-e") == 0) {
			if (i + 1 >= argc)
				return usage_error("%s needs an argument", a);
			const char *e = argv[++i];
			if (strcmp(e, "none") == 0)
				o.escape = -1;
			else if (strlen(e) == 1)
				o.escape = (unsigned char)e[0];
			else
				return usage_error("-e: '%s' is not one character or 'none'", e);
		} else {
			return usage_error("unknown option '%s'", a);
		}
	}
	if (i >= argc || strcmp(argv[i], "--") == 0)
		return usage_error("%s needs a TARGET", shell ? "shell" : "exec");
	o.target = argv[i++];
	if (shell) {
		if (i < argc)
			return usage_error("shell takes no command; use 'wicket exec -t' for '%s'",
					   argv[i]);
		o.pty = true;
	} else {
		if (i < argc && strcmp(argv[i], "--") == 0)
			i++;
		if (i >= argc)
			return usage_error("exec needs a command after %s", o.target);
		o.argv = argv + i;
		o.argc = argc - i;
	}
	o.pktlog = g->pktlog;
	o.keepalive = g->keepalive;
	if (agent) /* as ssh -A: without an agent the session goes on without one */
		o.agent_sock = client_agent_sock();
	static char toolbox[PATH_MAX];
	if (tools) {
		char err[PATH_MAX + 256];
		g->tools = target_find_toolbox(g->tools_path, toolbox, sizeof(toolbox), err,
					       sizeof(err));
		if (!g->tools) {
			fprintf(stderr, "wicket: %s\n", err);
			return WICKET_EXIT_FAILURE;
		}
	}
	struct tp tp;
	if (open_target(o.target, g, &tp) < 0)
		return WICKET_EXIT_FAILURE;
	int code = client_run(&tp, &o);
	tp_close(&tp);
	return code;
}

static int cmd_proxy(int argc, char **argv, int i, struct globals *g)
{
	if (ssh_proxy_wanted(argc, argv, i))
		return ssh_cmd_proxy(argc, argv, i, g);
	int code = cli_one_target(argc, argv, i, g, "proxy", NULL, NULL, &i);
	if (code)
		return code;
	struct tp tp;
	if (open_target(argv[i], g, &tp) < 0)
		return WICKET_EXIT_FAILURE;
	code = proxy_run(&tp, argv[i]);
	tp_close(&tp);
	return code;
}

static int cmd_list(int argc, char **argv, int i, struct globals *g)
{
	for (; i < argc; i++) {
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (!r)
			return usage_error("list takes no argument '%s'", argv[i]);
	}
	/* Each section that can be listed is; exit 0 when one could be. */
	bool listed = vm_list(g->uri) == 0;
	int r = ctr_list(&listed);
	return listed && r == 0 ? 0 : WICKET_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	struct globals g;
	globals_init(&g);
	/* Our SSH server's network process, re-executed (ssh/privsep.h). */
	if (argc >= 2 && strcmp(argv[1], SSH_NET_CHILD_ARG) == 0)
		return ssh_net_child(argc, argv);
	/* A target's mux, started by the first command for it (mux/mux.h). */
	if (argc >= 2 && strcmp(argv[1], MUX_DAEMON_ARG) == 0)
		return mux_daemon_main(argc, argv);
	log_set_ident("wicket");
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		int r = parse_global(&g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (r)
			continue;
		if (a[0] == '-')
			return usage_error("unknown option '%s'", a);
		break;
	}
	if (i >= argc) {
		help_print(stderr, NULL);
		return WICKET_EXIT_FAILURE;
	}
	const char *cmd = argv[i++];
	if (help_known(cmd)) {
		g.cmd = cmd;
		cli_set_command(cmd);
	}
	if (strcmp(cmd, "exec") == 0)
		return cmd_session(argc, argv, i, &g, false);
	if (strcmp(cmd, "shell") == 0)
		return cmd_session(argc, argv, i, &g, true);
	if (strcmp(cmd, "proxy") == 0)
		return cmd_proxy(argc, argv, i, &g);
	if (strcmp(cmd, "serve") == 0)
		return ssh_cmd_serve(argc, argv, i, &g);
	if (strcmp(cmd, "ssh-config") == 0)
		return ssh_cmd_config(argc, argv, i, &g);
	if (strcmp(cmd, "cp") == 0)
		return cmd_cp(argc, argv, i, &g);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(argc, argv, i, &g);
	if (strcmp(cmd, "forward") == 0)
		return cmd_forward(argc, argv, i, &g);
	if (strcmp(cmd, "mux") == 0)
		return mux_cmd(argc, argv, i, &g);
	if (strcmp(cmd, "help") == 0) {
		/* wicket help [COMMAND] */
		if (i < argc && !help_known(argv[i]))
			return usage_error("help: unknown command '%s'", argv[i]);
		if (i + 1 < argc)
			return usage_error("help takes one COMMAND, not '%s'", argv[i + 1]);
		help_print(stdout, i < argc ? argv[i] : NULL);
		return 0;
	}
	return usage_error("unknown command '%s' (exec, shell, cp, forward, proxy, serve, "
			   "ssh-config, list, mux, help)",
			   cmd);
}
