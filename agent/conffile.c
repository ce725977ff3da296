/* SPDX-License-Identifier: MIT */
/* wicketd --config: a line-oriented file; parsing never exits, errors say where. */
#include "conffile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "options.h"

#define CONF_MAX_BYTES (1 << 20)
#define CONF_MAX_SECTIONS 16 /* wicketd's listener cap */

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errlen,
							 const char *path, unsigned line,
							 const char *fmt, ...)
{
	char what[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%u: %s", path, line, what);
	return -1;
}

static int add_entry(struct agent_conf_entry **v, size_t *n, struct agent_conf_entry e)
{
	struct agent_conf_entry *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -1;
	nv[(*n)++] = e;
	*v = nv;
	return 0;
}

/* "[listen ADDR]" → ADDR, or NULL with the reason in @why. */
static char *section_addr(char *s, const char **why)
{
	size_t n = strlen(s);
	if (s[n - 1] != ']') {
		*why = "section header without a closing ']'";
		return NULL;
	}
	s[n - 1] = 0;
	s = trim(s + 1);
	if (strncmp(s, "listen", 6) != 0 || (s[6] && !isspace((unsigned char)s[6]))) {
		*why = "sections are [listen ADDR]";
		return NULL;
	}
	s = trim(s + 6);
	if (!*s || strpbrk(s, " \t")) {
		*why = "[listen ADDR] needs one address (unix/PATH, vsock/PORT, virtio/NAME, "
		       "serial/DEV)";
		return NULL;
	}
	return s;
}

int agent_conf_parse(char *text, const char *path, struct agent_conf *c, char *err,
		     size_t errlen)
{
	*c = (struct agent_conf){ .path = path, .text = text };
	unsigned line = 0;
	char *next = text;
	while (next && *next) {
		char *s = next;
		next = strchr(s, '\n');
		if (next)
			*next++ = 0;
		line++;
		s = trim(s);
		if (!*s || *s == '#')
			continue;
		if (*s == '[') {
			const char *why;
			char *addr = section_addr(s, &why);
			if (!addr)
				return fail(err, errlen, path, line, "%s", why);
			for (size_t i = 0; i < c->nsec; i++)
				if (strcmp(c->sec[i].addr, addr) == 0)
					return fail(err, errlen, path, line,
						    "[listen %s] appears twice", addr);
			if (c->nsec == CONF_MAX_SECTIONS)
				return fail(err, errlen, path, line, "more than %d listen sections",
					    CONF_MAX_SECTIONS);
			struct agent_conf_section *ns =
				realloc(c->sec, (c->nsec + 1) * sizeof(*ns));
			if (!ns)
				return fail(err, errlen, path, line, "%s", strerror(ENOMEM));
			c->sec = ns;
			c->sec[c->nsec++] = (struct agent_conf_section){ .addr = addr, .line = line };
			continue;
		}
		/* key [=] value */
		char *key = s, *val = s + strcspn(s, " \t=");
		bool sep = *val != 0;
		if (sep)
			*val++ = 0;
		val = trim(val);
		if (sep && *val == '=')
			val = trim(val + 1);
		bool takes;
		if (!agent_opt_is_policy(key, &takes)) {
			if (strcmp(key, "listen") == 0)
				return fail(err, errlen, path, line, "%s",
					    "'listen' is a section: [listen ADDR]");
			return fail(err, errlen, path, line,
				    "unknown key '%s' (policy options without '--': accept-env, "
				    "no-accept-env, deny, max-channels, sftp-server, sftp-read-only, "
				    "vsock-allow-cid, vsock-allow-any, user, handshake-timeout)",
				    key);
		}
		if (takes && !*val)
			return fail(err, errlen, path, line, "'%s' needs a value", key);
		if (!takes && *val)
			return fail(err, errlen, path, line, "'%s' takes no value", key);
		struct agent_conf_entry e = { key, takes ? val : NULL, line };
		int r = c->nsec ? add_entry(&c->sec[c->nsec - 1].e, &c->sec[c->nsec - 1].n, e)
				: add_entry(&c->top, &c->ntop, e);
		if (r < 0)
			return fail(err, errlen, path, line, "%s", strerror(ENOMEM));
	}
	return 0;
}

int agent_conf_load(const char *path, struct agent_conf *c, char *err, size_t errlen)
{
	*c = (struct agent_conf){ .path = path };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	const char *why = NULL;
	if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > CONF_MAX_BYTES)
		why = "larger than 1 MiB";
	/* It decides who sessions run as: only its owner (root) may change it. */
	else if (geteuid() == 0 && st.st_uid != 0)
		why = "not owned by root";
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		why = "writable by group or others";
	if (why) {
		snprintf(err, errlen, "%s: %s: refusing it", path, why);
		close(fd);
		return -1;
	}
	char *text = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (text && got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	int e = errno;
	close(fd);
	if (!text || got != (size_t)st.st_size) {
		snprintf(err, errlen, "%s: %s", path, text ? strerror(e ? e : EIO) : strerror(ENOMEM));
		free(text);
		return -1;
	}
	text[got] = 0;
	if (strlen(text) != got) {
		snprintf(err, errlen, "%s: NUL byte in the file", path);
		free(text);
		return -1;
	}
	return agent_conf_parse(text, path, c, err, errlen);
}

int agent_conf_apply(const struct agent_conf *c, const struct agent_conf_entry *e, size_t n,
		     struct agent_cfg *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		char why[512];
		if (agent_opt_apply(cfg, e[i].name, e[i].value, why, sizeof(why)) < 0)
			return fail(err, errlen, c->path, e[i].line, "%s", why);
	}
	return 0;
}

void agent_conf_free(struct agent_conf *c)
{
	for (size_t i = 0; i < c->nsec; i++)
		free(c->sec[i].e);
	free(c->sec);
	free(c->top);
	free(c->text);
	*c = (struct agent_conf){ 0 };
}
