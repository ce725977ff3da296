/* SPDX-License-Identifier: MIT */
/*
 * wicket cp: scp-style copies between the host and a guest over SFTP.
 * This file: options, operands, signals; the copies themselves are in
 * cp_upload.c and cp_download.c, the sftp protocol in sftp_client.c.
 */
#include "cp.h"
#include "target_kinds.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>

#include "client.h"
#include "cp_priv.h"
#include "help.h"
#include "target.h"

/*
 * Length of the TARGET part of a remote operand TARGET:PATH, or 0 for a
 * local path.  Unix targets hold '/', so the split is at the first ':'
 * after something that is a target: unix/..., demo, a known KIND/..., or
 * (with --proxy-command) any label without '/'.  ./a:b is always local.
 */
static size_t remote_target_len(const char *arg, bool proxy)
{
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg)
		return 0;
	size_t n = (size_t)(colon - arg);
	char head[256];
	if (n >= sizeof(head))
		n = sizeof(head) - 1; /* a kind is short: the prefix is enough */
	memcpy(head, arg, n);
	head[n] = 0;
	const char *rest;
	const struct target_kind *k = target_kind_find(head, &rest);
	if (k && ((k->flags & TK_BARE) || *rest)) {
		n = (size_t)(colon - arg);
		if (k->id == TK_VSOCK && colon[1] >= '0' && colon[1] <= '9') {
			/* vsock/CID:PORT:PATH */
			const char *q = colon + 1;
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q == ':')
				n = (size_t)(q - arg);
		}
		return n;
	}
	n = (size_t)(colon - arg);
	if (proxy && !memchr(arg, '/', n))
		return n;
	return 0;
}

static int parse_size(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* ---- signals: the first INT/TERM/HUP stops the copy and cleans up ---- */

static short sig_want(struct watch *w)
{
	(void)w;
	return POLLIN;
}

static void sig_ready(struct watch *w, short rev)
{
	struct cp *cp = w->data;
	struct signalfd_siginfo si;
	(void)rev;
	while (read(cp->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (!cp->signo) {
			cp->signo = (int)si.ssi_signo;
			sftp_interrupt(cp->s);
			/* Time to remove temp files, then give up. */
			sftp_set_deadline(cp->s, 5000);
		} else {
			sftp_set_deadline(cp->s, 0);
		}
	}
}

static const struct watch_ops sig_ops = { sig_want, sig_ready };

/* --complete TARGET:PREFIX (for shell completion). */
static int cp_complete_cmd(int nops, char **ops, struct globals *g)
{
	if (nops != 1)
		return usage_error("cp --complete takes one TARGET:PREFIX%s", "");
	size_t tl = remote_target_len(ops[0], g->proxy_cmd != NULL);
	if (!tl)
		return usage_error("cp --complete: '%s' is not TARGET:PREFIX", ops[0]);
	AUTOFREE char *target = strndup(ops[0], tl);
	if (!target)
		return WICKET_EXIT_FAILURE;
	struct tp tp;
	if (open_target(target, g, &tp) < 0)
		return WICKET_EXIT_FAILURE;
	signal(SIGPIPE, SIG_IGN);
	int code = cp_complete(&tp, target, ops[0] + tl + 1, g->pktlog);
	tp_close(&tp);
	return code;
}

int cmd_cp(int argc, char **argv, int i, struct globals *g)
{
	static struct cp cp;
	cp = (struct cp){ .sigfd = -1 };
	struct sftp_opts so = { .pktlog = NULL };
	bool complete = false;
	for (; i < argc; i++) {
		const char *a = argv[i];
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (r)
			continue;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || !a[1])
			break;
		if (strcmp(a, "--complete") == 0) {
			complete = true;
		} else if (strcmp(a, "--resume") == 0) {
			cp.resume = true;
		} else if (strcmp(a, "--recursive") == 0) {
			cp.recursive = true;
		} else if (strcmp(a, "--preserve") == 0) {
			cp.preserve = true;
		} else if (strcmp(a, "--quiet") == 0) {
			cp.quiet = true;
		} else if (strcmp(a, "--requests") == 0 || strcmp(a, "--buffer-size") == 0) {
			unsigned long long v;
			if (i + 1 >= argc)
				return usage_error("%s needs an argument", a);
			if (parse_size(argv[++i], &v) < 0 || v == 0)
				return usage_error("bad number '%s'", argv[i]);
			if (a[2] == 'r') {
				if (v > 1024)
					return usage_error("--requests: at most 1024, not '%s'",
							   argv[i]);
				so.requests = (unsigned)v;
			} else {
				if (v > SFTP_MAX_DATA)
					return usage_error("--buffer-size: at most 255K, not '%s'",
							   argv[i]);
				so.chunk = (uint32_t)v;
			}
		} else if (a[1] != '-') {
			for (const char *f = a + 1; *f; f++) {
				if (*f == 'r' || *f == 'R')
					cp.recursive = true;
				else if (*f == 'p')
					cp.preserve = true;
				else if (*f == 'q')
					cp.quiet = true;
				else
					return usage_error("cp: unknown option '%s'", a);
			}
		} else {
			return usage_error("cp: unknown option '%s'", a);
		}
	}
	int nops = argc - i;
	if (complete)
		return cp_complete_cmd(argc - i, argv + i, g);
	if (nops < 2) {
		fprintf(stderr, "wicket: cp needs a source and a destination\nusage: wicket %s\n",
			help_synopsis("cp"));
		return WICKET_EXIT_FAILURE;
	}
	char **ops = argv + i;
	/* Classify operands; every remote one must name the same target. */
	bool proxy = g->proxy_cmd != NULL;
	size_t tl_dst = remote_target_len(ops[nops - 1], proxy);
	int nremote_src = 0;
	AUTOFREE char *target = NULL;
	for (int k = 0; k < nops; k++) {
		size_t tl = remote_target_len(ops[k], proxy);
		if (!tl)
			continue;
		if (k < nops - 1)
			nremote_src++;
		if (!target) {
			target = strndup(ops[k], tl);
			if (!target)
				return WICKET_EXIT_FAILURE;
		} else if (strlen(target) != tl || strncmp(target, ops[k], tl) != 0) {
			return usage_error("cp: all remote operands must name the same target "
					   "('%s' differs)", ops[k]);
		}
	}
	if (!target)
		return usage_error("cp: no remote operand (TARGET:PATH) in '%s ...'; use cp(1) "
				   "for local copies",
				   ops[0]);
	bool up = tl_dst != 0;
	if (up && nremote_src)
		return usage_error("cp: copies between two remote operands are not supported "
				   "('%s')",
				   ops[0]);
	if (!up && nremote_src != nops - 1)
		return usage_error("cp: mixed local and remote sources ('%s'); copy one way at "
				   "a time",
				   ops[0]);
	/* Paths without the TARGET: prefix. */
	size_t tlen = strlen(target);
	char **srcs = ops;
	for (int k = 0; k < nops; k++)
		if ((up && k == nops - 1) || (!up && k < nops - 1))
			ops[k] += tlen + 1;
	const char *dst = ops[nops - 1];
	if (!up && !*dst)
		return usage_error("cp: empty local destination%s", "");

	cp.target = target;
	mode_t um = umask(0);
	umask(um);
	cp.umask = um;
	progress_init(&cp.pr, !cp.quiet && isatty(2));
	signal(SIGPIPE, SIG_IGN);

	struct tp tp;
	if (open_target(target, g, &tp) < 0)
		return WICKET_EXIT_FAILURE;
	so.target = target;
	so.pktlog = g->pktlog;
	char err[600];
	cp.s = sftp_connect(&tp, &so, err, sizeof(err));
	if (!cp.s) {
		fprintf(stderr, "wicket: cp: %s\n", err);
		tp_close(&tp);
		return WICKET_EXIT_FAILURE;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	cp.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (cp.sigfd >= 0) {
		cp.wsig = (struct watch){ .fd = cp.sigfd, .ops = &sig_ops, .data = &cp };
		loop_add(sftp_loop(cp.s), &cp.wsig);
	}

	int res = up ? cp_upload(&cp, srcs, nops - 1, dst) : cp_download(&cp, srcs, nops - 1, dst);
	progress_clear(&cp.pr);
	int code = cp.failures ? 1 : 0;
	if (res == CP_STOP && !cp.signo) {
		fprintf(stderr, "wicket: cp: %s\n", sftp_error(cp.s));
		code = WICKET_EXIT_FAILURE;
	}
	loop_del(sftp_loop(cp.s), &cp.wsig);
	sftp_free(cp.s);
	tp_close(&tp);
	if (cp.sigfd >= 0)
		close(cp.sigfd);
	if (cp.signo) {
		/* Die of the signal, as the shell expects, now that temp files are gone. */
		signal(cp.signo, SIG_DFL);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(cp.signo);
		return 128 + cp.signo;
	}
	return code;
}
