/* SPDX-License-Identifier: MIT */
/* agent/selinux: which context sessions get, and when they are refused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "selinux.h"
#include "tap.h"

static struct {
	bool enabled, enforcing, have_ctx, set_fails, label_fails;
	char user[64], set[64], labelled[64];
	int set_calls, label_fd, freed;
} f;

static bool f_enabled(void) { return f.enabled; }
static bool f_enforcing(void) { return f.enforcing; }
static int f_default_context(const char *user, char **ctx)
{
	snprintf(f.user, sizeof(f.user), "%s", user);
	if (!f.have_ctx) {
		errno = ENOENT;
		return -1;
	}
	*ctx = strdup("user_u:user_r:user_t:s0");
	return 0;
}
static int f_set_exec(const char *ctx)
{
	f.set_calls++;
	snprintf(f.set, sizeof(f.set), "%s", ctx);
	if (f.set_fails) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}
static int f_label_pty(const char *ctx, int fd)
{
	snprintf(f.labelled, sizeof(f.labelled), "%s", ctx);
	f.label_fd = fd;
	if (f.label_fails) {
		errno = EPERM;
		return -1;
	}
	return 0;
}
static void f_free(char *ctx) { f.freed++; free(ctx); }

static const struct agent_se_ops fake = {
	f_enabled, f_enforcing, f_default_context, f_set_exec, f_label_pty, f_free,
};

static void reset(bool enabled, bool enforcing, bool have_ctx)
{
	memset(&f, 0, sizeof(f));
	f.enabled = enabled;
	f.enforcing = enforcing;
	f.have_ctx = have_ctx;
	f.label_fd = -1;
}

int main(void)
{
	struct agent_se se;

	agent_se_init(&se, NULL, "alice");
	is_int(agent_se_exec(&se), 0, "built without SELinux: exec goes ahead");
	agent_se_pty(&se, 5);
	agent_se_free(&se);

	reset(false, false, true);
	agent_se_init(&se, &fake, "alice");
	ok(f.user[0] == 0, "SELinux disabled: no context looked up");
	is_int(agent_se_exec(&se), 0, "SELinux disabled: exec goes ahead");
	is_int(f.set_calls, 0, "SELinux disabled: exec context untouched");
	agent_se_pty(&se, 5);
	is_int(f.label_fd, -1, "SELinux disabled: pty not relabelled");
	agent_se_free(&se);

	reset(true, true, true);
	agent_se_init(&se, &fake, "alice");
	is_str(f.user, "alice", "context looked up for the session user");
	is_int(agent_se_exec(&se), 0, "enforcing with a context: exec goes ahead");
	is_str(f.set, "user_u:user_r:user_t:s0", "exec context is the user's default");
	agent_se_pty(&se, 7);
	is_int(f.label_fd, 7, "the session's pty is relabelled");
	is_str(f.labelled, "user_u:user_r:user_t:s0", "pty relabelled for the user's context");
	f.label_fails = true;
	agent_se_pty(&se, 8);
	is_int(agent_se_exec(&se), 0, "a failed pty relabel only warns");
	agent_se_free(&se);
	is_int(f.freed, 1, "context freed once");

	reset(true, true, true);
	agent_se_init(&se, &fake, NULL);
	is_str(f.user, "root", "no user name: root's context");
	agent_se_free(&se);
	reset(true, true, true);
	agent_se_init(&se, &fake, "");
	is_str(f.user, "root", "empty user name: root's context");
	agent_se_free(&se);

	reset(true, true, false);
	agent_se_init(&se, &fake, "alice");
	is_int(agent_se_exec(&se), EACCES, "enforcing without a context: sessions refused");
	is_int(f.set_calls, 0, "refused before touching the exec context");
	agent_se_pty(&se, 5);
	is_int(f.label_fd, -1, "no context: pty left alone");
	agent_se_free(&se);
	is_int(f.freed, 0, "nothing to free");

	reset(true, false, false);
	agent_se_init(&se, &fake, "alice");
	is_int(agent_se_exec(&se), 0, "permissive without a context: sessions start (warned)");
	is_int(f.set_calls, 0, "permissive without a context: policy transitions apply");
	agent_se_free(&se);

	reset(true, true, true);
	f.set_fails = true;
	agent_se_init(&se, &fake, "alice");
	is_int(agent_se_exec(&se), EINVAL, "enforcing: a failed setexeccon fails the exec");
	agent_se_free(&se);
	reset(true, false, true);
	f.set_fails = true;
	agent_se_init(&se, &fake, "alice");
	is_int(agent_se_exec(&se), 0, "permissive: a failed setexeccon is ignored");
	agent_se_free(&se);

	/* The real backend on this machine: whatever it says, init must cope. */
	const struct agent_se_ops *sys = agent_se_system();
	if (sys && !sys->enabled()) {
		agent_se_init(&se, sys, "root");
		ok(se.ops == NULL && agent_se_exec(&se) == 0, "libselinux, SELinux off: no-op");
		agent_se_free(&se);
	} else if (sys) {
		agent_se_init(&se, sys, "root");
		ok(se.err == 0 || se.enforcing, "libselinux, SELinux on: refuses only when enforcing");
		agent_se_free(&se);
	} else {
		ok(1, "built without libselinux: agent_se_system() is NULL");
	}
	return done_testing();
}
