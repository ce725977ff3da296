/* SPDX-License-Identifier: MIT */
/* SELinux session contexts: the policy (permissive warns, enforcing refuses). */
#include "selinux.h"

#include <errno.h>
#include <string.h>

#include "log.h"

void agent_se_init(struct agent_se *se, const struct agent_se_ops *ops, const char *user)
{
	*se = (struct agent_se){ 0 };
	if (!ops || !ops->enabled())
		return;
	se->ops = ops;
	se->enforcing = ops->enforcing();
	const char *who = user && user[0] ? user : "root";
	if (ops->default_context(who, &se->ctx) == 0)
		return;
	int e = errno ? errno : ENOENT;
	se->ctx = NULL;
	/* sshd's rule: without a context, enforcing mode must not start sessions. */
	if (se->enforcing) {
		se->err = EACCES;
		log_err("SELinux: no default context for user %s (%s): sessions refused",
			who, strerror(e));
	} else {
		log_warn("SELinux: no default context for user %s (%s): sessions stay in "
			 "wicketd's domain (permissive)", who, strerror(e));
	}
}

int agent_se_exec(const struct agent_se *se)
{
	if (!se->ops)
		return 0;
	if (se->err)
		return se->err;
	if (!se->ctx || se->ops->set_exec(se->ctx) == 0)
		return 0;
	int e = errno ? errno : EACCES;
	return se->enforcing ? e : 0;
}

void agent_se_pty(const struct agent_se *se, int fd)
{
	if (!se->ops || !se->ctx)
		return;
	if (se->ops->label_pty(se->ctx, fd) < 0)
		log_warn("SELinux: cannot relabel the session's pty for %s: %s", se->ctx,
			 strerror(errno));
}

void agent_se_free(struct agent_se *se)
{
	if (se->ops && se->ctx)
		se->ops->free_context(se->ctx);
	se->ctx = NULL;
}
