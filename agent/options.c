/* SPDX-License-Identifier: MIT */
/* Session-policy options: one table for --OPTION and the config file. */
#include "options.h"

#include <errno.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

void agent_cfg_defaults(struct agent_cfg *cfg)
{
	static const char *const env_default[] = { "LANG", "LC_*", "TERM", "COLORTERM", "TZ" };
	*cfg = (struct agent_cfg){ .allow_exec = true, .allow_shell = true, .allow_sftp = true,
				   .allow_forwarding = true, .max_channels = 1024,
				   .handshake_timeout = 30, .toolbox_fd = -1, .root_fd = -1,
				   .sftp_fd = -1 };
	for (size_t i = 0; i < sizeof(env_default) / sizeof(env_default[0]); i++)
		cfg->env_allow[cfg->nenv_allow++] = env_default[i];
}

enum opt_id { O_ENV, O_NOENV, O_DENY, O_MAXCH, O_SFTP, O_SFTP_RO, O_CID, O_ANY, O_USER,
	      O_HS_TIMEOUT };

static const struct {
	const char *name;
	enum opt_id id;
	bool value;
} policy_opts[] = {
	{ "accept-env", O_ENV, true },	    { "no-accept-env", O_NOENV, false },
	{ "deny", O_DENY, true },	    { "max-channels", O_MAXCH, true },
	{ "sftp-server", O_SFTP, true },    { "sftp-read-only", O_SFTP_RO, false },
	{ "vsock-allow-cid", O_CID, true }, { "vsock-allow-any", O_ANY, false },
	{ "user", O_USER, true },	    { "handshake-timeout", O_HS_TIMEOUT, true },
};

static int find(const char *name)
{
	for (size_t i = 0; i < sizeof(policy_opts) / sizeof(policy_opts[0]); i++)
		if (strcmp(policy_opts[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool agent_opt_is_policy(const char *name, bool *takes_value)
{
	int i = find(name);
	if (i >= 0 && takes_value)
		*takes_value = policy_opts[i].value;
	return i >= 0;
}

/* A decimal number in [lo, hi], nothing else. */
static bool number(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int agent_opt_apply(struct agent_cfg *cfg, const char *name, const char *value, char *err,
		    size_t errlen)
{
	int i = find(name);
	if (i < 0) {
		snprintf(err, errlen, "unknown option '%s'", name);
		return -1;
	}
	unsigned long v;
	switch (policy_opts[i].id) {
	case O_ENV:
		if (cfg->nenv_allow == AGENT_MAX_ENV_PATTERNS) {
			snprintf(err, errlen, "too many --accept-env patterns (at most %d)",
				 AGENT_MAX_ENV_PATTERNS);
			return -1;
		}
		cfg->env_allow[cfg->nenv_allow++] = value;
		return 0;
	case O_NOENV:
		cfg->nenv_allow = 0;
		return 0;
	case O_DENY:
		if (strcmp(value, "exec") == 0)
			cfg->allow_exec = false;
		else if (strcmp(value, "shell") == 0)
			cfg->allow_shell = false;
		else if (strcmp(value, "sftp") == 0)
			cfg->allow_sftp = false;
		else if (strcmp(value, "forwarding") == 0)
			cfg->allow_forwarding = false;
		else {
			snprintf(err, errlen,
				 "--deny: unknown feature '%s' (exec, shell, sftp, forwarding)", value);
			return -1;
		}
		return 0;
	case O_MAXCH:
		if (!number(value, 1, 65536, &v)) {
			snprintf(err, errlen, "--max-channels: '%s' is not 1..65536", value);
			return -1;
		}
		cfg->max_channels = (unsigned)v;
		return 0;
	case O_SFTP:
		cfg->sftp_server = value;
		return 0;
	case O_SFTP_RO:
		cfg->sftp_read_only = true;
		return 0;
	case O_CID:
		if (!number(value, 0, UINT32_MAX, &v) || cfg->nvsock_cids == 16) {
			snprintf(err, errlen, "--vsock-allow-cid: bad CID '%s'%s", value,
				 cfg->nvsock_cids == 16 ? " (at most 16)" : "");
			return -1;
		}
		cfg->vsock_cids[cfg->nvsock_cids++] = (uint32_t)v;
		return 0;
	case O_ANY:
		cfg->vsock_any = true;
		return 0;
	case O_USER:
		cfg->user = value;
		return 0;
	case O_HS_TIMEOUT:
		if (!number(value, 0, 86400, &v)) {
			snprintf(err, errlen, "--handshake-timeout: '%s' is not 0..86400", value);
			return -1;
		}
		cfg->handshake_timeout = (unsigned)v;
		return 0;
	}
	return -1;
}

int agent_opt_check_user(struct agent_cfg *cfg, char *err, size_t errlen)
{
	if (!cfg->user)
		return 0;
	errno = 0;
	struct passwd *pw, pwbuf;
	char pwmem[16384];
	if (cfg->root_fd >= 0) {
		/* --session-root: its users (agent/rootfs.c). */
		int e = agent_root_getpw(cfg->root_fd, cfg->user, 0, &pwbuf, pwmem, sizeof(pwmem));
		pw = e < 0 ? NULL : &pwbuf;
		errno = e == -ENOENT ? 0 : -e;
	} else {
		pw = getpwnam(cfg->user);
	}
	if (!pw) {
		snprintf(err, errlen, "--user %s: %s%s", cfg->user,
			 errno ? strerror(errno) : "no such user",
			 cfg->root_fd >= 0 ? " in the session root" : "");
		return -1;
	}
	if (geteuid() != 0 && pw->pw_uid != geteuid()) {
		snprintf(err, errlen, "--user %s: only root can run sessions as another user",
			 cfg->user);
		return -1;
	}
	if (pw->pw_uid == geteuid() && geteuid() != 0)
		cfg->user = NULL; /* already that user: nothing to switch */
	return 0;
}
