/* SPDX-License-Identifier: MIT */
/*
 * Every wicket help text, in one place: `wicket --help` (commands, targets,
 * global options) and `wicket COMMAND --help` (that command's own options).
 * doc/man/wicket.1 says the same in mdoc; tests/integration/test_docs.py
 * checks that both list the same options, command by command.
 */
#include "help.h"

#include <stdio.h>
#include <string.h>

struct cmd_help {
	const char *name;
	const char *synopsis; /* after "wicket [GLOBAL-OPTION...] " */
	const char *summary;  /* one line in `wicket --help` */
	const char *text;     /* description, then "Options:" lines if any */
};

/* Options proxy --ssh and serve share, worded once. */
#define HELP_TOKEN_FILE                                                                   \
	"  --token-file FILE\n"                                                           \
	"                accept the one-time token on its first line\n"                   \
	"                (keyboard-interactive); the file is removed when used\n"
#define HELP_SSH_SERVER_TAIL                                                              \
	"  --rekey-bytes N\n"                                                             \
	"                rekey after N bytes either way (default 1 GiB)\n"                \
	"  --permit-user-environment yes|no|PATTERNS\n"                                   \
	"                apply the keys' environment=\"NAME=VALUE\" options (all, none,\n" \
	"                or names matching the comma-separated patterns), as sshd's\n"    \
	"                PermitUserEnvironment; default no\n"                             \
	"  --print-syscalls\n"                                                            \
	"                print the seccomp allowlist of the network process and exit\n"

static const struct cmd_help cmds[] = {
	{ "exec", "exec [-t] [-n] [-A] [-e CHAR|none] [--tools] TARGET [--] CMD [ARG...]",
	  "run a command with exactly these arguments",
	  "Run CMD in TARGET with exactly these arguments (no remote shell when the\n"
	  "agent is wicketd); stdin, stdout and stderr stay apart.  Exit with its\n"
	  "status, 128+N when it was killed by signal N, 255 on wicket's own failure.\n"
	  "\n"
	  "Options:\n"
	  "  -t            allocate a pseudo-terminal ('~.' escapes as in shell)\n"
	  "  -n            do not read stdin (the command sees EOF)\n"
	  "  -A            forward the agent of $SSH_AUTH_SOCK to the command (as ssh\n"
	  "                -A: the guest can use its keys while the session lasts)\n"
	  "  -e CHAR|none  escape character with -t (default ~); none: no escapes\n"
	  "  --tools       run CMD from the host's static toolbox (busybox: ls, cat,\n"
	  "                ps, sh ...) inside a container target's namespaces, with\n"
	  "                the container's root as /; nothing is written into it\n"
	  "                (see --tools-path)\n" },
	{ "shell", "shell [-A] [-e CHAR|none] [--tools] TARGET", "interactive login shell with a pty",
	  "Open a login shell in TARGET with a pty; the local terminal is in raw mode\n"
	  "until it ends, window size changes are forwarded.  At the start of a line\n"
	  "'~.' disconnects, '~?' lists the escapes, '~~' sends a '~'.\n"
	  "\n"
	  "Options:\n"
	  "  -A            forward the agent of $SSH_AUTH_SOCK to the shell (as ssh -A)\n"
	  "  -e CHAR|none  escape character (default ~); none: no escapes\n"
	  "  --tools       the toolbox's sh -l instead of the container's shell\n" },
	{ "cp", "cp [-r] [-p] [-q] [--resume] [--requests N] [--buffer-size BYTES] SRC... DST",
	  "copy files to or from a guest over sftp, like scp",
	  "Copy between the host and a guest over the agent's sftp subsystem.  Remote\n"
	  "operands are TARGET:PATH (unix/SOCK:PATH, demo:PATH, k8s/NS/POD:PATH, any\n"
	  "LABEL:PATH with --proxy-command); write ./a:b for a local name holding ':'.\n"
	  "One side local, one remote; several SRCs need DST to be a directory.  Files\n"
	  "are written to .NAME.wicket-XXXXXX beside DST and renamed into place, so an\n"
	  "interrupted copy never leaves a truncated DST.  Exit 0, 1 when some files\n"
	  "failed (each named), 255 on wicket's own failure.\n"
	  "\n"
	  "Options:\n"
	  "  -r, -R, --recursive\n"
	  "                recurse into directories; symlinks inside are copied as\n"
	  "                symlinks (operands themselves are followed)\n"
	  "  -p, --preserve\n"
	  "                keep modes and access/modification times (without -p, new\n"
	  "                files get the source's mode minus the umask; set-id bits\n"
	  "                are never copied)\n"
	  "  -q, --quiet   no progress bar (drawn only when stderr is a terminal)\n"
	  "  --resume      continue partial copies: a DST shorter than SRC, or a\n"
	  "                leftover .NAME.wicket-part, keeps its bytes (trusted as a\n"
	  "                prefix, not verified) and gets the rest; a DST as long as\n"
	  "                SRC counts as done; failed copies keep .NAME.wicket-part\n"
	  "  --requests N  READ/WRITE requests in flight (default 64, at most 1024)\n"
	  "  --buffer-size BYTES\n"
	  "                bytes per READ/WRITE (default 252K, at most 255K)\n"
	  "  --complete TARGET:PREFIX\n"
	  "                copy nothing: print the remote names starting with PREFIX,\n"
	  "                one a line, directories with a trailing '/' (for shell\n"
	  "                completion; exit 1 when the directory cannot be read)\n" },
	{ "forward", "forward TARGET -L [BIND:]PORT:HOST:HOSTPORT [-L ...]",
	  "forward local TCP ports into the guest, without ssh",
	  "Listen on BIND:PORT (default bind 127.0.0.1; PORT 0 picks one) and connect\n"
	  "each connection to HOST:HOSTPORT inside the guest (direct-tcpip).  Runs\n"
	  "until interrupted (exit 0).\n"
	  "\n"
	  "Options:\n"
	  "  -L [BIND:]PORT:HOST:HOSTPORT\n"
	  "                a forward (repeatable, at most 64); -L [BIND:]PORT:/PATH\n"
	  "                connects to a Unix socket in the guest instead\n" },
	{ "proxy", "proxy [--ssh [OPTION...]] TARGET",
	  "the guest's stream on stdin/stdout (bare, or as an SSH server)",
	  "Without --ssh: bare ssh-connection on stdin/stdout, e.g. for\n"
	  "  plink -ssh-connection -proxycmd \"wicket proxy TARGET\" x\n"
	  "With --ssh: a full SSH server on stdin/stdout for ssh's ProxyCommand (see\n"
	  "'wicket ssh-config'); it accepts the none method unless --authorized-keys\n"
	  "or --token-file is given.\n"
	  "\n"
	  "Options (the others only with --ssh):\n"
	  "  --ssh         speak full SSH (transport and user authentication)\n"
	  "  --host-key FILE\n"
	  "                host key (ssh-keygen's format), once per type: ed25519,\n"
	  "                ecdsa (nistp256), rsa (offered as rsa-sha2-512/256);\n"
	  "                default: an ed25519 key made once in\n"
	  "                $XDG_STATE_HOME/wicket/host_ed25519_key, else\n"
	  "                ~/.local/state/wicket/host_ed25519_key\n"
	  "  --authorized-keys FILE\n"
	  "                require a key from this OpenSSH authorized_keys file\n"
	  HELP_TOKEN_FILE
	  HELP_SSH_SERVER_TAIL },
	{ "serve",
	  "serve --listen [ADDR:]PORT --authorized-keys FILE|--token-file FILE [OPTION...] "
	  "TARGET",
	  "SSH server on TCP for remote operators",
	  "An SSH server on TCP, one process (and one guest connection) per client.\n"
	  "\n"
	  "Options:\n"
	  "  --listen [ADDR:]PORT\n"
	  "                where to listen (ADDR may be [IPv6]; default all addresses)\n"
	  "  --authorized-keys FILE\n"
	  "                OpenSSH authorized_keys file, read afresh at every attempt\n"
	  HELP_TOKEN_FILE
	  "  --host-key FILE\n"
	  "                host key, once per type (as for proxy --ssh)\n"
	  "  --login-grace-time S\n"
	  "                drop a client not logged in after S seconds (default 120)\n"
	  "  --max-unauth N\n"
	  "                connections not yet logged in (default 10)\n"
	  "  --max-clients N\n"
	  "                connections in all (default 100)\n"
	  HELP_SSH_SERVER_TAIL },
	{ "ssh-config", "ssh-config", "print the ssh_config.d snippet for 'ssh vm/NAME'",
	  "Print the ssh_config snippet that makes ssh, scp, sftp and rsync reach every\n"
	  "target kind through 'wicket proxy --ssh' (ssh vm/NAME, scp F vm%NAME:/tmp).\n" },
	{ "list", "list", "libvirt domains and containers, and how each can be reached",
	  "List the libvirt domains (see -c) and the running podman and docker\n"
	  "containers, and how each can be reached.  Exit 0 when any section could be\n"
	  "listed.\n" },
	{ "mux", "mux status|stop|start TARGET", "the target's shared stream",
	  "Every command for a target shares one stream through the target's mux,\n"
	  "started by the first command (see --share, --persist, --keepalive).\n"
	  "  status    show the mux of TARGET: socket, clients, channels, bytes, uptime\n"
	  "            (exit 0 when one runs, 1 when none)\n"
	  "  stop      end the mux of TARGET; its clients fail with the reason (exit 255)\n"
	  "            (exit 0 when it stopped, 1 when none ran)\n"
	  "  start     start the mux of TARGET now, if none runs, and print its socket\n"
	  "            (exit 0), so later commands find the stream warm\n" },
};

static const char targets[] =
	"Targets:\n"
	"  vm/NAME           libvirt domain NAME: its vsock CID when that connects, else\n"
	"                    its virtio-serial channel org.wicket.agent.0 (see -c)\n"
	"  podman/NAME       podman container (name or id): its own wicketd, else the\n"
	"                    static agent brought in from a sealed memfd\n"
	"  docker/NAME       docker container: its own wicketd (docker exec -i), else\n"
	"                    the static agent in its namespaces\n"
	"  pid/PID           the namespaces of a running process (a sandbox), with the\n"
	"                    static agent brought in\n"
	"  k8s/POD, k8s/NAMESPACE/POD, k8s/NAMESPACE/POD/CONTAINER\n"
	"                    a Kubernetes pod through kubectl ($KUBECONFIG, --context):\n"
	"                    its wicketd, else an ephemeral debug container\n"
	"                    (--agent-image)\n"
	"  unix/PATH         an agent listening on a Unix socket (wicketd --listen unix/PATH)\n"
	"  serial/DEV[@BAUD] an agent on a serial line (compressed by default)\n"
	"  demo              a throwaway sandbox: wicketd in bubblewrap, no network,\n"
	"                    read-only root\n"
	"  KIND%NAME spells KIND/NAME where ssh needs a host name.  Nothing is ever\n"
	"  written into a container.\n";

static const char globals[] =
	"Global options (before or after COMMAND):\n"
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
	"                       intervals (default 10; 0 off); exec and shell on a\n"
	"                       stream of their own send an IGNORE every S seconds\n"
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
	"  -h, --help           this text; after COMMAND, that command's help\n"
	"  -V, --version        print the version\n";

static const struct cmd_help *find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

bool help_known(const char *cmd)
{
	return find(cmd) != NULL;
}

void help_print(FILE *f, const char *cmd)
{
	const struct cmd_help *h = find(cmd);
	if (h) {
		fprintf(f, "Usage: wicket [GLOBAL-OPTION...] %s\n\n%s\n", h->synopsis, h->text);
		fprintf(f, "Global options and targets: 'wicket --help'; more in wicket(1).\n");
		return;
	}
	fputs("Usage: wicket [GLOBAL-OPTION...] COMMAND [OPTION...] TARGET [ARG...]\n\n"
	      "Commands ('wicket COMMAND --help' shows one's options):\n",
	      f);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
	fputc('\n', f);
	fputs(targets, f);
	fputc('\n', f);
	fputs(globals, f);
}

const char *help_synopsis(const char *cmd)
{
	const struct cmd_help *h = find(cmd);
	return h ? h->synopsis : "";
}
