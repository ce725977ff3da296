/* SPDX-License-Identifier: MIT */
/*
 * `wicket proxy --ssh` (a full SSH server on stdin/stdout, for OpenSSH's
 * ProxyCommand and plink -proxycmd) and `wicket serve` (the same on TCP,
 * one process per client).
 */
#include "ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "config.h"
#include "cli.h"
#include "client.h"
#include "log.h"

#if defined(HAVE_LIBCRYPTO) && !defined(WICKET_SSH_FRONT)
#include "privsep.h"
#include "sshs.h"
#include "target_kinds.h"

#define MAX_HOST_KEYS SSHKEY_NTYPES

struct ssh_opts {
	const char *host_key[MAX_HOST_KEYS]; /* --host-key, once per key type */
	int n_host_keys;
	const char *authorized_keys, *token_file, *listen, *target;
	const char *permit_user_env; /* --permit-user-environment */
	int grace, max_unauth, max_clients;
	unsigned long long rekey_bytes;
};

/* Options common to proxy --ssh and serve; 1 consumed, 0 not ours, -1 error. */
static int parse_ssh_opt(struct ssh_opts *o, int argc, char **argv, int *i)
{
	static const struct {
		const char *name;
		int kind; /* 0 string, 1 int, 2 ull, 3 host key (repeatable) */
		size_t off;
	} opts[] = {
		{ "--host-key", 3, 0 },
		{ "--authorized-keys", 0, offsetof(struct ssh_opts, authorized_keys) },
		{ "--token-file", 0, offsetof(struct ssh_opts, token_file) },
		{ "--listen", 0, offsetof(struct ssh_opts, listen) },
		{ "--permit-user-environment", 0, offsetof(struct ssh_opts, permit_user_env) },
		{ "--login-grace-time", 1, offsetof(struct ssh_opts, grace) },
		{ "--max-unauth", 1, offsetof(struct ssh_opts, max_unauth) },
		{ "--max-clients", 1, offsetof(struct ssh_opts, max_clients) },
		{ "--rekey-bytes", 2, offsetof(struct ssh_opts, rekey_bytes) },
	};
	const char *a = argv[*i];
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		size_t nl = strlen(opts[k].name);
		const char *v;
		if (strcmp(a, opts[k].name) == 0) {
			if (*i + 1 >= argc) {
				usage_error("%s needs an argument", a);
				return -1;
			}
			v = argv[++*i];
		} else if (strncmp(a, opts[k].name, nl) == 0 && a[nl] == '=') {
			v = a + nl + 1;
		} else {
			continue;
		}
		char *base = (char *)o + opts[k].off;
		if (opts[k].kind == 3) {
			if (o->n_host_keys == MAX_HOST_KEYS) {
				usage_error("at most three %s options (one per key type)", "--host-key");
				return -1;
			}
			o->host_key[o->n_host_keys++] = v;
			return 1;
		}
		if (opts[k].kind == 0) {
			*(const char **)(void *)base = v;
			return 1;
		}
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (errno || end == v || *end || (opts[k].kind == 1 && n > 1000000)) {
			usage_error("bad number '%s'", v);
			return -1;
		}
		if (opts[k].kind == 1)
			*(int *)(void *)base = (int)n;
		else
			*(unsigned long long *)(void *)base = n;
		return 1;
	}
	return 0;
}

static int serve_opt(void *ctx, int argc, char **argv, int *i)
{
	return parse_ssh_opt(ctx, argc, argv, i);
}

static int proxy_opt(void *ctx, int argc, char **argv, int *i)
{
	static const char *const serve_only[] = { "--listen", "--login-grace-time", "--max-unauth",
						  "--max-clients" };
	const char *a = argv[*i];
	if (strcmp(a, "--ssh") == 0)
		return 1;
	/* Accepted by serve alone: proxy --ssh has one client and no listener. */
	for (size_t k = 0; k < sizeof(serve_only) / sizeof(serve_only[0]); k++) {
		size_t n = strlen(serve_only[k]);
		if (strncmp(a, serve_only[k], n) == 0 && (!a[n] || a[n] == '=')) {
			usage_error("%s is for 'wicket serve'", serve_only[k]);
			return -1;
		}
	}
	return parse_ssh_opt(ctx, argc, argv, i);
}

struct open_ctx {
	const char *target;
	struct globals *g;
};

static int open_guest_cb(void *arg, struct tp *out)
{
	struct open_ctx *c = arg;
	return open_target(c->target, c->g, out);
}

struct host_keys {
	struct sshkey *k[SSHKEY_NTYPES]; /* by type */
	struct buf blob[SSHKEY_NTYPES];
};

static void host_keys_free(struct host_keys *h)
{
	for (int t = 0; t < SSHKEY_NTYPES; t++) {
		sshkey_free(h->k[t]);
		buf_free(&h->blob[t]);
		h->k[t] = NULL;
	}
}

/* The public blobs as the transport wants them. */
static void host_keys_cfg(const struct host_keys *h, struct sv out[SSHKEY_NTYPES])
{
	for (int t = 0; t < SSHKEY_NTYPES; t++)
		out[t] = h->k[t] ? (struct sv){ buf_data(&h->blob[t]), buf_used(&h->blob[t]) }
				 : SV_NULL;
}

/*
 * The host keys (each --host-key, at most one per type; without any, the
 * default ed25519 key, created when missing), and a first reading of
 * authorized_keys so that a bad file fails at start-up; the authority
 * reads it afresh at every attempt.  Prints the reason on failure.
 */
static int load_keys(const struct ssh_opts *o, struct host_keys *hk)
{
	char path[4096], err[512];
	memset(hk, 0, sizeof(*hk));
	const char *def[1] = { path };
	const char *const *paths = o->host_key;
	int n = o->n_host_keys;
	if (!n) {
		sshkey_default_host_key_path(path, sizeof(path));
		if (!path[0]) {
			fprintf(stderr, "wicket: no home directory for the host key; use --host-key\n");
			return -1;
		}
		paths = def;
		n = 1;
	}
	for (int i = 0; i < n; i++) {
		struct sshkey *k = sshkey_load_host_key(paths[i], !o->n_host_keys, err, sizeof(err));
		if (!k) {
			fprintf(stderr, "wicket: host key %s: %s\n", paths[i], err);
			host_keys_free(hk);
			return -1;
		}
		enum sshkey_type t = sshkey_type(k);
		if (hk->k[t]) {
			fprintf(stderr, "wicket: host key %s: a second %s host key (one per type)\n",
				paths[i], sshkey_type_name(k));
			sshkey_free(k);
			host_keys_free(hk);
			return -1;
		}
		hk->k[t] = k;
		buf_init(&hk->blob[t], 4096);
		sshkey_put_blob(k, &hk->blob[t]);
	}
	if (o->authorized_keys) {
		struct authkeys *ak = authkeys_load(o->authorized_keys, err, sizeof(err));
		if (!ak) {
			fprintf(stderr, "wicket: %s: %s\n", o->authorized_keys, err);
			host_keys_free(hk);
			return -1;
		}
		authkeys_free(ak);
	}
	return 0;
}

/* --print-syscalls anywhere among the options: the network process's allowlist. */
static bool print_syscalls(int argc, char **argv, int i)
{
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--print-syscalls") == 0) {
			sandbox_print(stdout, &ssh_net_profile);
			return true;
		}
	}
	return false;
}

bool ssh_proxy_wanted(int argc, char **argv, int i)
{
	for (; i < argc && argv[i][0] == '-'; i++)
		if (strcmp(argv[i], "--ssh") == 0)
			return true;
	return false;
}

int ssh_cmd_proxy(int argc, char **argv, int i, struct globals *g)
{
	struct ssh_opts o = { 0 };
	if (print_syscalls(argc, argv, i))
		return 0;
	int bad = cli_one_target(argc, argv, i, g, "proxy --ssh", proxy_opt, &o, &i);
	if (bad)
		return bad;
	/* KIND%NAME is KIND/NAME, for scp, rsync and git (target_kinds.h). */
	char tname[4096];
	if (target_from_ssh_host(argv[i], tname, sizeof(tname)) < 0)
		return usage_error("target '%.64s...' is too long", argv[i]);
	struct host_keys hk;
	if (load_keys(&o, &hk) < 0)
		return WICKET_EXIT_FAILURE;
	struct open_ctx oc = { tname, g };
	struct ssh_authority auth = {
		.host_keys = { hk.k[0], hk.k[1], hk.k[2] },
		.authkeys_file = o.authorized_keys,
		.token_file = o.token_file,
		.peer_addr = "UNKNOWN",
		.permit_user_env = o.permit_user_env,
		.allow_none = !o.authorized_keys && !o.token_file,
		.auth_notify_fd = -1,
		.open_guest = open_guest_cb,
		.open_arg = &oc,
	};
	authority_init(&auth);
	struct ssh_server_cfg cfg = {
		.has_authkeys = o.authorized_keys != NULL,
		.has_token = o.token_file != NULL,
		.allow_none = auth.allow_none,
		.pktlog = g->pktlog,
		.peer_addr = "UNKNOWN",
		.rekey_bytes = o.rekey_bytes,
	};
	host_keys_cfg(&hk, cfg.host_blob);
	/* stdin may be a TCP socket (inetd, systemd Accept=yes): then its addresses. */
	ssh_conn_info_of(0, &cfg.conn);
	/* Reach the guest while the key exchange runs: connecting is fast.
	 * The monitor hands it to the network process only after auth. */
	int code = 255;
	if (privsep_preopen(&auth) == 0)
		code = privsep_run(&auth, &cfg, 0, 1);
	host_keys_free(&hk);
	return code ? WICKET_EXIT_FAILURE : 0;
}

/* ---- serve ---- */

struct child {
	pid_t pid;
	int notify; /* read end: a byte once authenticated */
	bool authed;
	char addr[64];
};

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static int listen_on(const char *spec, char *shown, size_t shownlen)
{
	char host[256] = "", port[32];
	const char *colon = strrchr(spec, ':');
	if (colon) {
		size_t hl = (size_t)(colon - spec);
		if (hl >= sizeof(host))
			hl = sizeof(host) - 1;
		memcpy(host, spec, hl);
		host[hl] = 0;
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else {
		snprintf(port, sizeof(port), "%s", spec);
	}
	if (host[0] == '[') { /* [v6]:port */
		size_t hl = strlen(host);
		if (hl < 2 || host[hl - 1] != ']') {
			fprintf(stderr, "wicket: serve: bad address '%s'\n", spec);
			return -1;
		}
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	int e = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (e) {
		fprintf(stderr, "wicket: serve: %s: %s\n", spec, gai_strerror(e));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1, zero = 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "wicket: serve: cannot listen on %s: %s\n", spec, strerror(errno));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char h[NI_MAXHOST], p[NI_MAXSERV];
	if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(shown, shownlen, "%s%s%s:%s", strchr(h, ':') ? "[" : "", h,
			 strchr(h, ':') ? "]" : "", p);
	else
		snprintf(shown, shownlen, "%s", spec);
	return fd;
}

/* A numeric address and port of @sa; v4-mapped IPv6 shown as IPv4. */
static bool numeric_addr(const struct sockaddr_storage *ss, socklen_t sl, char *out, size_t n,
			 uint32_t *port)
{
	char h[NI_MAXHOST], p[NI_MAXSERV];
	if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
	    getnameinfo((const struct sockaddr *)ss, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV))
		return false;
	const char *a = strncmp(h, "::ffff:", 7) == 0 && strchr(h, '.') ? h + 7 : h;
	if (strlen(a) >= n)
		return false;
	snprintf(out, n, "%s", a);
	*port = (uint32_t)strtoul(p, NULL, 10);
	return true;
}

void ssh_conn_info_of(int fd, struct ssh_conn_info *ci)
{
	struct sockaddr_storage ps, ls;
	socklen_t pl = sizeof(ps), ll = sizeof(ls);
	if (getpeername(fd, (struct sockaddr *)&ps, &pl) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ls, &ll) == 0 &&
	    numeric_addr(&ps, pl, ci->caddr, sizeof(ci->caddr), &ci->cport) &&
	    numeric_addr(&ls, ll, ci->saddr, sizeof(ci->saddr), &ci->sport))
		return;
	/* A pipe (ProxyCommand), a Unix socket: what sshd -i says then. */
	*ci = (struct ssh_conn_info){ .caddr = "UNKNOWN", .saddr = "UNKNOWN", .cport = 65535,
				      .sport = 65535 };
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t sl, char *out, size_t n)
{
	char h[NI_MAXHOST];
	if (getnameinfo((const struct sockaddr *)ss, sl, h, sizeof(h), NULL, 0, NI_NUMERICHOST))
		snprintf(out, n, "UNKNOWN");
	else if (strncmp(h, "::ffff:", 7) == 0 && strchr(h, '.'))
		snprintf(out, n, "%.63s", h + 7); /* v4-mapped: as from= expects */
	else
		snprintf(out, n, "%.63s", h);
}

int ssh_cmd_serve(int argc, char **argv, int i, struct globals *g)
{
	struct ssh_opts o = { .grace = 120, .max_unauth = 10, .max_clients = 100 };
	if (print_syscalls(argc, argv, i))
		return 0;
	int bad = cli_one_target(argc, argv, i, g, "serve", serve_opt, &o, &i);
	if (bad)
		return bad;
	if (!o.listen)
		return usage_error("%s needs --listen [ADDR:]PORT", "serve");
	if (!o.authorized_keys && !o.token_file)
		return usage_error("%s needs --authorized-keys FILE and/or --token-file FILE",
				   "serve");
	struct host_keys hk;
	if (load_keys(&o, &hk) < 0)
		return WICKET_EXIT_FAILURE;
	char shown[1200];
	int lfd = listen_on(o.listen, shown, sizeof(shown));
	if (lfd < 0)
		return WICKET_EXIT_FAILURE;
	log_set_ident("wicket serve");
	static const char *const shown_type[SSHKEY_NTYPES] = { "ED25519", "ECDSA", "RSA" };
	fprintf(stderr, "wicket serve: listening on %s, host key", shown);
	for (int t = 0, n = 0; t < SSHKEY_NTYPES; t++) {
		char fp[SSHKEY_FP_LEN];
		if (!hk.k[t])
			continue;
		sshkey_fingerprint(hk.k[t], fp, sizeof(fp));
		fprintf(stderr, "%s %s %s", n++ ? "," : "", shown_type[t], fp);
	}
	fprintf(stderr, "\n");
	fflush(stderr);

	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct child *kids = calloc((size_t)o.max_clients + 1, sizeof(*kids));
	int nkids = 0;
	struct open_ctx oc = { argv[i], g };
	while (!got_term) {
		int st;
		pid_t pid;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (int k = 0; k < nkids; k++) {
				if (kids[k].pid != pid)
					continue;
				log_info("%s: session ended", kids[k].addr);
				close(kids[k].notify);
				kids[k] = kids[--nkids];
				break;
			}
		}
		struct pollfd p[1 + 1024];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int k = 0; k < nkids && np < 1025; k++)
			p[np++] = (struct pollfd){ .fd = kids[k].authed ? -1 : kids[k].notify,
						   .events = POLLIN };
		if (poll(p, (nfds_t)np, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k + 1 < np; k++) {
			if (!p[k + 1].revents)
				continue;
			char c;
			if (read(kids[k].notify, &c, 1) == 1)
				kids[k].authed = true;
			else
				kids[k].authed = true; /* ended: no longer counts as unauthenticated */
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		char addr[64];
		peer_name(&ss, sl, addr, sizeof(addr));
		int unauth = 0;
		for (int k = 0; k < nkids; k++)
			unauth += !kids[k].authed;
		if (unauth >= o.max_unauth || nkids >= o.max_clients) {
			log_warn("%s: refused: too many %s connections", addr,
				 nkids >= o.max_clients ? "" : "unauthenticated");
			static const char msg[] = "SSH-2.0-wicket_" WICKET_VERSION "\r\n";
			ssize_t w = write(fd, msg, sizeof(msg) - 1);
			(void)w;
			close(fd);
			continue;
		}
		int pp[2];
		if (pipe2(pp, O_CLOEXEC) < 0) {
			close(fd);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			close(lfd);
			close(pp[0]);
			for (int k = 0; k < nkids; k++)
				close(kids[k].notify);
			struct ssh_authority auth = {
				.host_keys = { hk.k[0], hk.k[1], hk.k[2] },
				.authkeys_file = o.authorized_keys,
				.token_file = o.token_file,
				.peer_addr = addr,
				.permit_user_env = o.permit_user_env,
				.log_logins = true,
				.auth_notify_fd = pp[1],
				.grace_seconds = o.grace,
				.open_guest = open_guest_cb,
				.open_arg = &oc,
			};
			authority_init(&auth);
			struct ssh_server_cfg cfg = {
				.has_authkeys = o.authorized_keys != NULL,
				.has_token = o.token_file != NULL,
				.pktlog = g->pktlog,
				.peer_addr = addr,
				.log_preauth = true,
				.grace_seconds = o.grace,
				.rekey_bytes = o.rekey_bytes,
			};
			host_keys_cfg(&hk, cfg.host_blob);
			ssh_conn_info_of(fd, &cfg.conn);
			int code = privsep_run(&auth, &cfg, fd, fd);
			_exit(code ? 1 : 0);
		}
		close(pp[1]);
		close(fd);
		if (pid < 0) {
			close(pp[0]);
			continue;
		}
		log_info("%s: connection (pid %d)", addr, (int)pid);
		kids[nkids++] = (struct child){ .pid = pid, .notify = pp[0] };
		snprintf(kids[nkids - 1].addr, sizeof(kids[0].addr), "%s", addr);
	}
	for (int k = 0; k < nkids; k++)
		kill(kids[k].pid, SIGTERM);
	free(kids);
	close(lfd);
	host_keys_free(&hk);
	return 0;
}

int ssh_net_child(int argc, char **argv)
{
	return privsep_net_child(argc, argv);
}

#else /* the front program, or no libcrypto */

bool ssh_proxy_wanted(int argc, char **argv, int i)
{
	for (; i < argc && argv[i][0] == '-'; i++)
		if (strcmp(argv[i], "--ssh") == 0)
			return true;
	return false;
}

#ifdef WICKET_SSH_FRONT
/*
 * The SSH commands are wicket-ssh's: run it with our whole command line
 * (it parses the same options).  Next to us in a build tree, else libexec.
 */
static int ssh_helper(char **argv)
{
	char path[PATH_MAX + 16];
	if (cli_helper_path("wicket-ssh", path, sizeof(path)))
		execv(path, argv);
	fprintf(stderr, "wicket: cannot run the SSH server %s: %s\n", path, strerror(errno));
	return WICKET_EXIT_FAILURE;
}

int ssh_net_child(int argc, char **argv)
{
	return ssh_helper(argv);
}

int ssh_cmd_proxy(int argc, char **argv, int i, struct globals *g)
{
	return ssh_helper(argv);
}

int ssh_cmd_serve(int argc, char **argv, int i, struct globals *g)
{
	return ssh_helper(argv);
}
#else
int ssh_net_child(int argc, char **argv)
{
	fprintf(stderr, "wicket: this wicket was built without SSH support (libcrypto)\n");
	return WICKET_EXIT_FAILURE;
}

int ssh_cmd_proxy(int argc, char **argv, int i, struct globals *g)
{
	fprintf(stderr, "wicket: this wicket was built without SSH support (libcrypto)\n");
	return WICKET_EXIT_FAILURE;
}

int ssh_cmd_serve(int argc, char **argv, int i, struct globals *g)
{
	return ssh_cmd_proxy(argc, argv, i, g);
}
#endif
#endif
