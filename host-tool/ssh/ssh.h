/* SPDX-License-Identifier: MIT */
/* The SSH wrapper's commands: `proxy --ssh`, `serve`, `ssh-config`. */
#ifndef WICKET_SSH_SSH_H
#define WICKET_SSH_SSH_H

#include <stdbool.h>

struct globals;

/* True when argv[i..] (before TARGET) holds --ssh. */
bool ssh_proxy_wanted(int argc, char **argv, int i);
/* `wicket proxy --ssh [--host-key F] [--authorized-keys F] [--token-file F] TARGET` */
int ssh_cmd_proxy(int argc, char **argv, int i, struct globals *g);
/* `wicket serve --listen [ADDR:]PORT [--host-key F] --authorized-keys F ... TARGET` */
int ssh_cmd_serve(int argc, char **argv, int i, struct globals *g);
/* `wicket ssh-config`: print the ssh_config.d snippet. */
int ssh_cmd_config(int argc, char **argv, int i, struct globals *g);
/* Internal: argv[1] names the SSH server's network process (privsep.h). */
#define SSH_NET_CHILD_ARG "--ssh-net-child"
int ssh_net_child(int argc, char **argv);

#endif
