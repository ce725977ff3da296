/* SPDX-License-Identifier: MIT */
/*
 * `wicket ssh-config`: the ssh_config.d snippet.  Its Host patterns come
 * from the table of target kinds (target_kinds.c), so a new kind is in it
 * at once.  The installed packaging/ssh/20-wicket.conf is this output,
 * made at build time; the checked-in copy is tested to be the same
 * (tests/integration/test_ssh_config.py).
 */
#include "ssh.h"

#include <stdio.h>

#include "cli.h"
#include "client.h"
#include "target_kinds.h"

static const char head[] =
	"# wicket: reach guests with plain ssh, scp, sftp and rsync.\n"
	"# Install as /etc/ssh/ssh_config.d/20-wicket.conf, or Include it from\n"
	"# ~/.ssh/config.  `wicket ssh-config` prints this text.\n"
	"#\n"
	"#   ssh vm/NAME     sftp vm/NAME     scp FILE vm%NAME:/tmp/\n"
	"#   rsync -e ssh -a DIR/ vm%NAME:/tmp/DIR/     ssh -t demo uptime\n"
	"#\n"
	"# scp and rsync read \"HOST:PATH\" as a local file name when a '/' comes\n"
	"# before the ':', so every KIND/NAME can also be written KIND%NAME (as\n"
	"# systemd-ssh-proxy accepts vsock%CID); for unix, serial and k8s every\n"
	"# '%' is a '/': unix%%run%wicket%agent.sock is unix//run/wicket/agent.sock.\n";
static const char tail[] =
	"\t# %n is the host exactly as typed, i.e. the wicket TARGET.\n"
	"\tProxyCommand wicket proxy --ssh %n\n"
	"\t# The SSH server is a local process of the same user, reached through\n"
	"\t# a pipe: there is no network peer whose identity could be in doubt.\n"
	"\t# Its host key is made once per user (~/.local/state/wicket/) and is\n"
	"\t# the same for every guest, so it is pinned under one alias in a file\n"
	"\t# of its own: the first connection records it, a changed key is an error.\n"
	"\tHostKeyAlias wicket-local-proxy\n"
	"\tStrictHostKeyChecking accept-new\n"
	"\tUserKnownHostsFile ~/.local/state/wicket/known_hosts\n"
	"\tCheckHostIP no\n"
	"\t# Guests run sessions as the agent's user; the name sent does not matter.\n"
	"\tUser root\n"
	"\t# A guest may be hostile: your agent only when you ask (ssh -A).\n"
	"\tForwardAgent no\n"
	"\tForwardX11 no\n";

int ssh_cmd_config(int argc, char **argv, int i, struct globals *g)
{
	for (; i < argc; i++) {
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (!r)
			return usage_error("ssh-config takes no arguments ('%s')", argv[i]);
	}
	char hosts[1024];
	fputs(head, stdout);
	printf("Host %s\n", target_kinds_ssh_hosts(hosts, sizeof(hosts)));
	fputs(tail, stdout);
	return 0;
}
