/* SPDX-License-Identifier: MIT */
/*
 * `wicket cp --complete TARGET:PREFIX`: the remote names that start with
 * PREFIX, for shell completion (completion/wicket.bash).  Asked of the
 * agent's sftp server, so it works in containers without a shell or ls.
 * The guest is untrusted: names holding '/', control characters or
 * newlines are left out, and the listing is capped.
 */
#include "cp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client.h"
#include "sftp_client.h"

#define COMPLETE_MAX_NAMES 10000
#define COMPLETE_DEADLINE_MS 3000

struct complete {
	const char *dir;  /* what the printed names start with ("" or "DIR/") */
	const char *base; /* the name's prefix inside dir */
	size_t baselen;
	unsigned n;
};

static bool name_printable(struct sv s)
{
	if (s.n == 0 || s.n > 4096)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] < 0x20 || s.p[i] == 0x7f || s.p[i] == '/')
			return false;
	return true;
}

static void complete_one(void *arg, const struct sftp_name *n)
{
	struct complete *c = arg;
	struct sv s = n->name;
	if (c->n >= COMPLETE_MAX_NAMES || !name_printable(s))
		return;
	if ((s.n == 1 && s.p[0] == '.') || (s.n == 2 && s.p[0] == '.' && s.p[1] == '.'))
		return;
	/* Hidden names only when asked for, as shells do. */
	if (s.p[0] == '.' && (c->baselen == 0 || c->base[0] != '.'))
		return;
	if (s.n < c->baselen || memcmp(s.p, c->base, c->baselen) != 0)
		return;
	bool dir = (n->attrs.flags & SSH_FILEXFER_ATTR_PERMISSIONS) && S_ISDIR(n->attrs.perm);
	printf("%s%.*s%s\n", c->dir, (int)s.n, (const char *)s.p, dir ? "/" : "");
	c->n++;
}

int cp_complete(struct tp *tp, const char *target, const char *prefix, FILE *pktlog)
{
	/* PREFIX "a/b/c" lists "a/b/" for names starting "c"; "" lists ".". */
	char *dir = strdup(prefix);
	if (!dir)
		return WICKET_EXIT_FAILURE;
	char *slash = strrchr(dir, '/');
	struct complete c = { .dir = "", .base = prefix };
	const char *rdir = ".";
	if (slash) {
		c.base = prefix + (slash - dir) + 1;
		slash[1] = 0;
		c.dir = dir;
		rdir = dir;
	}
	c.baselen = strlen(c.base);
	struct sftp_opts so = { .target = target, .pktlog = pktlog };
	char err[600];
	struct sftp *s = sftp_connect(tp, &so, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "wicket: cp: %s\n", err);
		free(dir);
		return WICKET_EXIT_FAILURE;
	}
	sftp_set_deadline(s, COMPLETE_DEADLINE_MS);
	struct sftp_handle h;
	int r = sftp_opendir(s, rdir, &h);
	int code = 0;
	if (r == SFTP_OK) {
		do
			r = sftp_readdir(s, &h, complete_one, &c);
		while (r == SFTP_OK && c.n < COMPLETE_MAX_NAMES);
		if (sftp_close(s, &h) < 0 && r == SSH_FX_EOF)
			r = SFTP_E_FATAL;
	}
	if (r != SSH_FX_EOF && r != SFTP_OK) {
		/* A missing directory just completes to nothing: exit 1, quietly. */
		code = r > 0 ? 1 : WICKET_EXIT_FAILURE;
		if (r < 0)
			fprintf(stderr, "wicket: cp: %s\n", sftp_error(s));
	}
	sftp_free(s);
	free(dir);
	return fflush(stdout) == 0 ? code : WICKET_EXIT_FAILURE;
}
