/* SPDX-License-Identifier: MIT */
/*
 * wicketd --config FILE: session policy per listen address.
 *
 *   # comment
 *   handshake-timeout 60          keys before any section: every listener
 *   [listen vsock/9022]
 *   user = ci                     "key value" or "key = value"
 *   deny = shell
 *   sftp-read-only                flags take no value
 *
 * Keys are wicketd's policy options without "--" (agent/options.h).
 */
#ifndef WICKET_AGENT_CONFFILE_H
#define WICKET_AGENT_CONFFILE_H

#include <stddef.h>

struct agent_cfg;

struct agent_conf_entry {
	const char *name, *value; /* value NULL for flags */
	unsigned line;
};

struct agent_conf_section {
	const char *addr;
	unsigned line;
	struct agent_conf_entry *e;
	size_t n;
};

struct agent_conf {
	const char *path;
	char *text; /* owns every string above */
	struct agent_conf_entry *top;
	size_t ntop;
	struct agent_conf_section *sec;
	size_t nsec;
};

/* Read and parse @path (a regular file; as root, root's and not writable by
 * others).  0, or -1 with "PATH:LINE: why" in @err. */
int agent_conf_load(const char *path, struct agent_conf *c, char *err, size_t errlen);
/* Parse @text (taken over: freed by agent_conf_free). */
int agent_conf_parse(char *text, const char *path, struct agent_conf *c, char *err,
		     size_t errlen);
/* Apply @n entries to @cfg; -1 with "PATH:LINE: why" in @err. */
int agent_conf_apply(const struct agent_conf *c, const struct agent_conf_entry *e, size_t n,
		     struct agent_cfg *cfg, char *err, size_t errlen);
void agent_conf_free(struct agent_conf *c);
/* For __attribute__((cleanup)): the strings live as long as the variable. */
#define AGENT_CONF_AUTO __attribute__((cleanup(agent_conf_free)))

#endif
