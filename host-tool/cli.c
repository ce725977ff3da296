/* SPDX-License-Identifier: MIT */
/*
 * What every command shares: global options, the one-TARGET argument
 * shape, usage errors, and reaching a target (through its mux unless
 * --share no; see mux/mux.h).
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "help.h"
#include "log.h"
#include "mux/mux.h"
#include "target.h"

int cli_one_target(int argc, char **argv, int i, struct globals *g, const char *cmd,
		   cli_opt_fn opt, void *ctx, int *target)
{
	for (; i < argc; i++) {
		int r = parse_global(g, argc, argv, &i);
		if (r == 0 && opt)
			r = opt(ctx, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (r)
			continue;
		if (argv[i][0] == '-')
			return usage_error("unknown option '%s'", argv[i]);
		break;
	}
	if (i >= argc)
		return usage_error("%s needs a TARGET", cmd);
	if (i + 1 < argc) {
		char what[256];
		snprintf(what, sizeof(what), "%s takes only a TARGET, not '%s'", cmd, argv[i + 1]);
		return usage_error("%s", what);
	}
	*target = i;
	return 0;
}

static const char *cli_cmd; /* the command word, for the hint */

void cli_set_command(const char *cmd)
{
	cli_cmd = cmd;
}

const char *cli_helper_path(const char *name, char *buf, size_t len)
{
	/* UBSan's nonnull check on access() makes GCC see a NULL buf below */
	if (!buf || !len)
		return NULL;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		snprintf(buf, len, "%s/%s", dirname(self), name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	snprintf(buf, len, "%s/%s", WICKET_LIBEXECDIR, name);
	return access(buf, X_OK) == 0 ? buf : NULL;
}

int usage_error(const char *fmt, const char *arg)
{
	fputs("wicket: ", stderr);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	if (cli_cmd)
		fprintf(stderr, " (see 'wicket %s --help')\n", cli_cmd);
	else
		fputs(" (see 'wicket --help')\n", stderr);
	return WICKET_EXIT_FAILURE;
}

static int parse_mux_global(struct globals *g, int argc, char **argv, int *i);
static int parse_ctr_global(struct globals *g, int argc, char **argv, int *i);

/* Global option at argv[*i]?  Consumes its argument.  -1 on error. */
int parse_global(struct globals *g, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		help_print(stdout, g->cmd);
		exit(fflush(stdout) == 0 ? 0 : WICKET_EXIT_FAILURE);
	}
	if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
		printf("wicket %s\n", WICKET_VERSION);
		exit(fflush(stdout) == 0 ? 0 : WICKET_EXIT_FAILURE);
	}
	if (strcmp(a, "--proxy-command") == 0 || strcmp(a, "--packet-log") == 0) {
		if (*i + 1 >= argc) {
			usage_error("%s needs an argument", a);
			return -1;
		}
		const char *v = argv[++*i];
		if (a[2] == 'p' && a[3] == 'r') {
			g->proxy_cmd = v;
		} else {
			if (g->pktlog && g->pktlog != stderr)
				fclose(g->pktlog);
			g->pktlog = fopen(v, "ae");
			if (!g->pktlog) {
				fprintf(stderr, "wicket: --packet-log %s: %s\n", v, strerror(errno));
				return -1;
			}
		}
		return 1;
	}
	if (strcmp(a, "-c") == 0 || strcmp(a, "--connect") == 0) {
		if (*i + 1 >= argc) {
			usage_error("%s needs a libvirt URI", a);
			return -1;
		}
		g->uri = argv[++*i];
		return 1;
	}
	if (strncmp(a, "--connect=", 10) == 0) {
		g->uri = a + 10;
		return 1;
	}
	if (strncmp(a, "--proxy-command=", 16) == 0) {
		g->proxy_cmd = a + 16;
		return 1;
	}
	int m = parse_mux_global(g, argc, argv, i);
	if (m)
		return m;
	if (strcmp(a, "-C") == 0 || strcmp(a, "--compress") == 0) {
		g->compress = 1;
		wicket_compress = true;
		return 1;
	}
	if (strcmp(a, "--no-compress") == 0) {
		g->compress = 0;
		wicket_compress = false;
		return 1;
	}
	m = parse_ctr_global(g, argc, argv, i);
	if (m)
		return m;
	if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
		log_level++;
		if (!g->pktlog)
			g->pktlog = stderr;
		return 1;
	}
	return 0;
}

bool wicket_compress;

int open_target_direct(const char *target, const struct globals *g, struct tp *tp)
{
	/* Without a mux the command's own connection compresses: on -C, and by
	 * default on serial lines. */
	if (g->compress < 0 && strncmp(target, "serial/", 7) == 0 && !g->proxy_cmd)
		wicket_compress = true;
	char err[512];
	if (target_open(target, g, tp, err, sizeof(err)) < 0) {
		fprintf(stderr, "wicket: %s\n", err);
		return -1;
	}
	return 0;
}

int open_target(const char *target, struct globals *g, struct tp *tp)
{
	return mux_open(target, g, tp);
}

static int parse_share(const char *v, enum share_mode *out)
{
	if (strcmp(v, "auto") == 0)
		*out = SHARE_AUTO;
	else if (strcmp(v, "no") == 0)
		*out = SHARE_NO;
	else if (strcmp(v, "only") == 0)
		*out = SHARE_ONLY;
	else
		return -1;
	return 0;
}

void globals_init(struct globals *g)
{
	*g = (struct globals){ .persist = MUX_DEFAULT_PERSIST, .keepalive = MUX_DEFAULT_KEEPALIVE,
			       .compress = -1 };
	const char *e = getenv("WICKET_SHARE");
	if (e && *e && parse_share(e, &g->share) < 0)
		fprintf(stderr, "wicket: ignoring WICKET_SHARE='%s' (auto, no or only)\n", e);
}

/* SECONDS (or "forever" where @forever_ok): 0 and up; -1 on error. */
static int parse_seconds(const char *opt, const char *v, bool forever_ok, int *out)
{
	if (forever_ok && strcmp(v, "forever") == 0) {
		*out = -1;
		return 0;
	}
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < 0 || n > 86400 * 365) {
		usage_error(forever_ok ? "%s needs a number of seconds or 'forever'"
				       : "%s needs a number of seconds",
			    opt);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* --share/--persist/--keepalive: 1 consumed, 0 not one of them, -1 error. */
static int parse_mux_global(struct globals *g, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "--share") != 0 && strcmp(a, "--persist") != 0 &&
	    strcmp(a, "--keepalive") != 0)
		return 0;
	if (*i + 1 >= argc) {
		usage_error("%s needs an argument", a);
		return -1;
	}
	const char *v = argv[++*i];
	if (a[2] == 's') {
		if (parse_share(v, &g->share) < 0) {
			fprintf(stderr, "wicket: --share '%s': expected auto, no or only (see "
					"'wicket --help')\n",
				v);
			return -1;
		}
		g->share_set = true;
		return 1;
	}
	if (a[2] == 'p')
		return parse_seconds(a, v, true, &g->persist) < 0 ? -1 : 1;
	return parse_seconds(a, v, false, &g->keepalive) < 0 ? -1 : 1;
}


/*
 * Container options: --context CTX, --agent-image IMAGE, --tools-path DIR
 * (also --OPT=VALUE).  1 consumed, 0 not one of them, -1 error.
 */
static int parse_ctr_global(struct globals *g, int argc, char **argv, int *i)
{
	static const struct {
		const char *name, *what;
		size_t off;
	} opts[] = {
		{ "--context", "a kubectl context", offsetof(struct globals, context) },
		{ "--agent-image", "an image", offsetof(struct globals, agent_image) },
		{ "--tools-path", "a directory", offsetof(struct globals, tools_path) },
	};
	const char *a = argv[*i];
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		size_t n = strlen(opts[k].name);
		if (strncmp(a, opts[k].name, n) != 0 || (a[n] && a[n] != '='))
			continue;
		const char *v;
		if (a[n] == '=') {
			v = a + n + 1;
		} else if (*i + 1 < argc) {
			v = argv[++*i];
		} else {
			char what[96];
			snprintf(what, sizeof(what), "%s needs %s", opts[k].name, opts[k].what);
			usage_error("%s", what);
			return -1;
		}
		if (!*v) {
			usage_error("%s: the value is empty", opts[k].name);
			return -1;
		}
		*(const char **)((char *)g + opts[k].off) = v;
		return 1;
	}
	return 0;
}
