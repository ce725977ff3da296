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
#include "cli.h"
#include "cp.h"
#include "ctr_list.h"
#include "forward.h"
#include "log.h"
#include "mux/mux.h"
#include "proxy.h"
#include "ssh/ssh.h"
#include "target.h"
#include "tp.h"
#include "vm.h"

static const char usage[] =
	"Usage: wicket [GLOBAL-OPTION...] COMMAND [OPTION...] TARGET [ARG...]\n"
	"\n"
	"Commands:\n"
	"  exec [-t] [-n] TARGET [--] CMD [ARG...]\n"
	"                    run CMD with exactly these arguments (no remote shell\n"
	"                    when the agent is wicketd); exit with its status,\n"
	"                    128+N when killed by signal N, 255 on wicket's own failure\n"
	"      -t            allocate a pseudo-terminal\n"
	"      -n            do not read stdin (the command sees EOF)\n"
	"      --tools       run CMD from the host's static toolbox (busybox: ls, cat,\n"
	"                    ps, sh ...) inside a container target's namespaces, with\n"
	"                    the container's root as /; nothing is written into it\n"
	"  shell TARGET      interactive login shell with a pty; '~.' at the start of\n"
	"                    a line disconnects, '~?' lists escapes\n"
	"      -e CHAR|none  escape character (default ~)\n"
	"      --tools       the toolbox's sh -l instead of the container's shell\n"
	"  cp [-r] [-p] [-q] [--resume] SRC... DST\n"
	"                    copy between the host and a guest over sftp, like scp;\n"
	"                    remote operands are TARGET:PATH (unix/SOCK:PATH, demo:PATH,\n"
	"                    k8s/NS/POD:PATH, any LABEL:PATH with --proxy-command);\n"
	"                    write ./a:b for a local name holding ':'.  One side local,\n"
	"                    one remote; several SRCs need DST to be a directory.  Files\n"
	"                    are written to .NAME.wicket-XXXXXX beside DST and renamed\n"
	"                    into place, so an interrupted copy never leaves a truncated\n"
	"                    DST.  Exit 0, 1 when some files failed (each named), 255 on\n"
	"                    wicket's own failure\n"
	"      -r            recurse into directories; symlinks inside are copied as\n"
	"                    symlinks (operands themselves are followed)\n"
	"      -p            keep modes and access/modification times (without -p, new\n"
	"                    files get the source's mode minus the umask; set-id bits\n"
	"                    are never copied)\n"
	"      -q            no progress bar (drawn only when stderr is a terminal)\n"
	"      --resume      continue partial copies: a DST shorter than SRC, or a\n"
	"                    leftover .NAME.wicket-part, keeps its bytes (trusted as a\n"
	"                    prefix, not verified) and gets the rest; a DST as long as\n"
	"                    SRC counts as done; failed copies keep .NAME.wicket-part\n"
	"      --requests N  READ/WRITE requests in flight (default 64, at most 1024)\n"
	"      --buffer-size BYTES\n"
	"                    bytes per READ/WRITE (default 252K, at most 255K)\n"
	"  forward TARGET -L [BIND:]PORT:HOST:HOSTPORT [-L ...]\n"
	"                    listen on BIND:PORT (default bind 127.0.0.1; PORT 0 picks\n"
	"                    one) and connect each connection to HOST:HOSTPORT inside\n"
	"                    the guest (direct-tcpip); -L [BIND:]PORT:/PATH connects to\n"
	"                    a Unix socket there.  Runs until interrupted (exit 0)\n"
	"  proxy TARGET      bare ssh-connection on stdin/stdout, e.g. for\n"
	"                    plink -ssh-connection -proxycmd \"wicket proxy TARGET\" x\n"
	"  proxy --ssh [--host-key F] [--authorized-keys F] TARGET\n"
	"                    SSH server on stdio for ssh's ProxyCommand\n"
	"  serve --listen [ADDR:]PORT --authorized-keys F [--token-file F] TARGET\n"
	"                    SSH server on TCP (see README: Through plain ssh)\n"
	"                    (both: --permit-user-environment yes|no|PATTERNS applies\n"
	"                    the keys' environment= options, as sshd's\n"
	"                    PermitUserEnvironment, default no; --print-syscalls shows\n"
	"                    the seccomp allowlist of the sandboxed process that talks\n"
	"                    to the client)\n"
	"  ssh-config        print the ssh_config.d snippet for 'ssh vm/NAME',\n"
	"                    'ssh podman/NAME' (also written podman%NAME; every kind)\n"
	"  list              libvirt domains and running podman containers, and how\n"
	"                    each can be reached\n"
	"  mux status|stop|start [--persist S] TARGET\n"
	"                    the target's mux: every command for a target shares one\n"
	"                    stream through it (see 'wicket mux --help')\n"
	"\n";

static const char usage_more[] =
	"Targets:\n"
	"  vm/NAME           libvirt domain NAME: its vsock CID when that connects, else\n"
	"                    its virtio-serial channel org.wicket.agent.0 (see -c)\n"
	"  podman/NAME       podman container NAME (name or id), through podman's CLI run\n"
	"                    as you (rootless for a user; CONTAINER_HOST honoured): its\n"
	"                    own wicketd, else wicketd-static brought in from a sealed\n"
	"                    memfd (podman exec --preserve-fds); nothing is written\n"
	"                    into the container\n"
	"  unix/PATH         an agent listening on a Unix socket (wicketd --listen unix/PATH)\n"
	"  demo              a throwaway sandbox: wicketd in bubblewrap, no network,\n"
	"                    read-only root\n"
	"  k8s/POD, k8s/NAMESPACE/POD, k8s/NAMESPACE/POD/CONTAINER\n"
	"                    a Kubernetes pod through kubectl ($KUBECONFIG, --context):\n"
	"                    the container's wicketd (kubectl exec), else the static\n"
	"                    agent in an ephemeral debug container (--agent-image)\n"
	"\n"
	"Global options:\n"
	"  -c, --connect URI    libvirt URI for vm/NAME and list (default:\n"
	"                       $LIBVIRT_DEFAULT_URI, else qemu:///system)\n"
	"  --proxy-command CMD  use CMD's stdin/stdout as the stream (TARGET is a label)\n"
	"  --share auto|no|only share the target's stream through its mux (auto, the\n"
	"                       default: attach, or start one; no: open the stream\n"
	"                       directly; only: fail unless a mux runs); also\n"
	"                       $WICKET_SHARE.  demo and --tools sessions are never\n"
	"                       shared\n"
	"  --persist S|forever  a mux started by this command lingers S seconds after\n"
	"                       its last client (default 60)\n"
	"  --keepalive S        a mux started by this command probes the agent every S\n"
	"                       seconds and ends its clients (exit 255) after 3 silent\n"
	"                       intervals (default 10; 0 off)\n"
	"                       (exec and shell on a stream of their own: an IGNORE\n"
	"                       every S seconds, so idle links are not cut)\n"
	"  --context CTX        kubectl context for k8s/ targets (default: kubeconfig's)\n"
	"  --agent-image IMAGE  k8s/: image holding only /wicketd-static (and /busybox\n"
	"                       for --tools) for the ephemeral debug container, used\n"
	"                       when the container has no wicketd; there is no default\n"
	"  --tools-path DIR     --tools runs DIR/busybox (default /bin/busybox, Debian's\n"
	"                       busybox-static; it must be a static program)\n"
	"  -C, --compress       compress the stream to the agent (zlib@wicket; by\n"
	"                       default on serial/ targets and slow lines only)\n"
	"  --no-compress        never compress it\n"
	"  --packet-log FILE    append a readable log of every packet to FILE\n"
	"  -v, --verbose        log packets and progress to stderr\n"
	"  -h, --help           this text\n"
	"  -V, --version        print the version\n";

static int cmd_session(int argc, char **argv, int i, struct globals *g, bool shell)
{
	struct client_opts o = { .escape = shell ? '~' : -1 };
	bool tools = false;
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
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			fputs(usage_more, stdout);
			return 0;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("wicket %s\n", WICKET_VERSION);
			return 0;
		}
		if (a[0] == '-')
			return usage_error("unknown option '%s'", a);
		break;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		fputs(usage_more, stderr);
		return WICKET_EXIT_FAILURE;
	}
	const char *cmd = argv[i++];
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
		fputs(usage, stdout);
		fputs(usage_more, stdout);
		return 0;
	}
	return usage_error("unknown command '%s' (exec, shell, cp, forward, proxy, serve, list, mux)", cmd);
}
