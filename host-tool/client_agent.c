/* SPDX-License-Identifier: MIT */
#include "client_agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"

struct agent_conn {
	struct sockchan sc;
};

static void agent_release(struct sockchan *sc)
{
	free(sc->owner);
}

static const struct sockchan_hooks agent_hooks = { .release = agent_release };

const char *client_agent_sock(void)
{
	const char *p = getenv("SSH_AUTH_SOCK");
	if (!p || !*p) {
		fprintf(stderr, "wicket: -A: SSH_AUTH_SOCK is not set: no agent is forwarded\n");
		return NULL;
	}
	if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "wicket: -A: SSH_AUTH_SOCK '%s' is too long for a socket path: no agent is forwarded\n", p);
		return NULL;
	}
	return p;
}

uint32_t client_agent_open(struct loop *l, struct sockchan_list *list, const char *sock,
			   struct chan *ch, const char **msg)
{
	static char why[160];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	/* A local socket: connect() is done or refused at once. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		log_warn("-A: cannot reach the agent at %s: %s", sock, strerror(e));
		snprintf(why, sizeof(why), "the host's agent is unreachable: %s", strerror(e));
		*msg = why;
		return OPEN_CONNECT_FAILED;
	}
	struct agent_conn *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		*msg = "out of memory";
		return OPEN_RESOURCE_SHORTAGE;
	}
	sockchan_init(&a->sc, l, list, fd, &agent_hooks, a);
	sockchan_attach(&a->sc, ch);
	return 0;
}
