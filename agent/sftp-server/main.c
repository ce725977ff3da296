/* SPDX-License-Identifier: MIT */
/*
 * wicket-sftp-server: SFTP version 3 on stdin/stdout.  wicketd runs it as
 * the session user for `subsystem sftp`; it also works alone
 * (`sftp -D wicket-sftp-server`).  The protocol lives in lib/sftp_server.c,
 * the filesystem in posix.c; this file is options and buffered I/O.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "posix.h"
#include "sandbox.h"
#include "sftp_server.h"
#include "syscalls.h"

/* Seccomp allowlist of this file: buffered I/O on stdin/stdout. */
/* rt_sigprocmask: libnss_systemd blocks signals around its lookups. */
/* splice: READ data moves from the staging pipe to stdout (zero copy). */
SYSCALLS(sftp_main) = { SC("read"), SC("write"), SC("poll"), SC("ppoll"), SC("rt_sigprocmask"),
			SC("splice"), SC_END };
SYSCALLS_DECLARE(posix);
SYSCALLS_DECLARE(log);

static const struct syscall_rule *const sftp_lists[] = {
	libc_syscalls, log_syscalls, sftp_main_syscalls, posix_syscalls, NULL,
};

/*
 * No exec, no sockets, no ptrace, no mount, no kill: the filesystem calls
 * of posix.c and the I/O above.  socket() fails with EACCES rather than
 * killing: the C library tries nscd's socket before reading /etc/passwd.
 */
static const struct syscall_rule sftp_refuse[] = {
	SC("socket"),
	/* A name service module the start-up lookups did not load stays unloaded. */
	SC_MASKED("mmap", 2, PROT_EXEC, PROT_EXEC), SC_MASKED("mprotect", 2, PROT_EXEC, PROT_EXEC),
	SC_END,
};

static const struct sandbox_profile sftp_profile = {
	.name = "wicket-sftp-server",
	.lists = sftp_lists,
	.refuse = sftp_refuse,
	.refuse_errno = EACCES,
};
/*
 * Big reads: every request already in the pipe is handled before replying,
 * so replies go out gathered in few writes.  Output is flushed once it holds
 * OUT_HIGH bytes, though: waiting for more delays the client's next requests
 * (measured: 1 MiB made downloads ~20% slower than 256 KiB; enlarging the
 * pipes with F_SETPIPE_SZ did not help either).
 */
#define READ_CHUNK (1024u * 1024u)
/* Reads go into the free tail once it has this much (see buf_reserve_read). */
#define READ_MIN (64u * 1024u)
/* The staging pipe: at least one whole DATA payload (SFTP_MAX_DATA). */
#define STAGE_PIPE_SIZE (512u * 1024u)

static int stage_rd = -1;
#define OUT_HIGH (256u * 1024u)

static const char usage[] =
	"Usage: wicket-sftp-server [OPTION...]\n"
	"\n"
	"SFTP version 3 server on standard input and output.\n"
	"\n"
	"  -R, --read-only        refuse every request that could change anything\n"
	"  -d, --start-dir DIR    start in DIR, as OpenSSH's sftp-server -d (%d home,\n"
	"                         %u user name, %% a '%'; inside the root with --root)\n"
	"      --root DIR         confine the session to DIR (openat2 RESOLVE_IN_ROOT);\n"
	"                         absolute paths are relative to DIR\n"
	"  -P REQ,...             deny these requests\n"
	"  -p REQ,...             allow only these requests\n"
	"  -Q requests            list the request names -P and -p know, and exit\n"
	"      --max-handles N    cap on open file and directory handles (default 256)\n"
	"      --no-sandbox       debugging: no seccomp filter after start-up\n"
	"      --print-syscalls   print the seccomp allowlist and exit\n"
	"  -u UMASK               set the file creation mask (octal)\n"
	"  -l LEVEL               log level on stderr: error, warn, info, debug\n"
	"                         (OpenSSH's QUIET..DEBUG3 are accepted too)\n"
	"  -e                     log to stderr (always; accepted for OpenSSH compatibility)\n"
	"  -f FACILITY            syslog facility: accepted for OpenSSH compatibility,\n"
	"                         ignored (the log goes to stderr)\n"
	"  -h, --help             this text\n"
	"  -V, --version          print the version\n"
	"Operands are ignored, as OpenSSH's sftp-server does (scp -s -D runs\n"
	"SERVER -- HOST sftp).\n";

/*
 * OpenSSH's -d tokens: %d the user's home, %u the user name, %% a '%'.
 * NULL for an unknown token or when out of memory (*@bad says which).
 */
static char *expand_start_dir(const char *s, const char **bad)
{
	struct passwd *pw = getpwuid(getuid());
	const char *home = pw ? pw->pw_dir : getenv("HOME");
	const char *user = pw ? pw->pw_name : NULL;
	size_t cap = strlen(s) + 1, len = 0;
	for (const char *p = s; *p; p++)
		if (*p == '%')
			cap += PATH_MAX;
	char *o = malloc(cap);
	if (!o)
		return NULL;
	for (const char *p = s; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, 0 };
		if (*p != '%') {
			add = one;
		} else if (p[1] == '%') {
			add = "%";
		} else if (p[1] == 'd' && home) {
			add = home;
		} else if (p[1] == 'u' && user) {
			add = user;
		} else {
			*bad = p;
			free(o);
			return NULL;
		}
		if (*p == '%')
			p++;
		size_t n = strlen(add);
		if (len + n >= cap) {
			free(o);
			return NULL;
		}
		memcpy(o + len, add, n);
		len += n;
	}
	o[len] = 0;
	return o;
}

static int parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "quiet", LOG_ERR },	 { "fatal", LOG_ERR },	  { "error", LOG_ERR },
		{ "err", LOG_ERR },	 { "warn", LOG_WARN },	  { "warning", LOG_WARN },
		{ "info", LOG_INFO },	 { "verbose", LOG_INFO }, { "debug", LOG_DEBUG },
		{ "debug1", LOG_DEBUG }, { "debug2", LOG_DEBUG }, { "debug3", LOG_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	if (s[0] >= '0' && s[0] <= '3' && !s[1])
		return s[0] - '0';
	return -1;
}

/*
 * READ replies leave the file's pages in this pipe (posix.c splices them
 * in) and go from there to stdout with splice: the data is never copied by
 * us.  Only when stdout is a pipe too, and this one holds a whole DATA.
 */
static int stage_open(void)
{
	struct stat st;
	int p[2];
	if (fstat(STDOUT_FILENO, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(p[1], F_SETPIPE_SZ, STAGE_PIPE_SIZE) < (int)SFTP_MAX_DATA) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	stage_rd = p[0];
	return p[1];
}

static int flush_out(struct buf *out)
{
	while (buf_used(out)) {
		ssize_t n = write(STDOUT_FILENO, buf_data(out), buf_used(out));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };
				poll(&p, 1, -1);
				continue;
			}
			return -errno;
		}
		buf_consume(out, (size_t)n);
	}
	return 0;
}

/* Move @n staged bytes to stdout, behind everything in @out. */
static int emit_staged(struct buf *out, size_t n)
{
	int rc = flush_out(out);
	while (!rc && n) {
		ssize_t k = splice(stage_rd, NULL, STDOUT_FILENO, NULL, n, SPLICE_F_MOVE);
		if (k > 0) {
			n -= (size_t)k;
		} else if (k == 0) {
			rc = -EIO; /* cannot happen: the bytes are in the pipe */
		} else if (errno == EAGAIN) {
			struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };
			poll(&p, 1, -1);
		} else if (errno != EINTR) {
			rc = -errno;
		}
	}
	return rc;
}

/* Serve until the client closes stdin; returns the exit status. */
static int serve(struct sftp_server *s)
{
	struct buf in, out;
	buf_init(&in, READ_CHUNK + SFTP_MAX_PACKET + 4);
	/* A packet is only handled below OUT_HIGH, and no reply is larger
	 * than a packet: this cap is never reached. */
	buf_init(&out, OUT_HIGH + 2 * SFTP_MAX_PACKET);
	bool eof = false;
	int status = 0;
	for (;;) {
		int rc = sftp_server_input(s, &in, &out, OUT_HIGH);
		if (rc == -EMSGSIZE) {
			log_err("packet of %u bytes exceeds the limit of %u: closing the session",
				get_be32(buf_data(&in)), SFTP_MAX_PACKET);
			flush_out(&out);
			status = 1;
			break;
		}
		if (rc) {
			log_err("reply buffer overflow: closing the session");
			status = 1;
			break;
		}
		if (sftp_server_staged(s)) {
			rc = emit_staged(&out, sftp_server_staged(s));
			sftp_server_staged_done(s);
			if (rc) {
				log_info("write to client: %s", strerror(-rc));
				status = rc == -EPIPE ? 0 : 1;
				break;
			}
			continue; /* more complete requests may be waiting in @in */
		}
		bool want_in = !eof && buf_used(&out) < OUT_HIGH;
		bool want_out = buf_used(&out) > 0;
		if (!want_in && !want_out)
			break;
		struct pollfd p[2];
		nfds_t np = 0;
		int iin = -1, iout = -1;
		if (want_in) {
			iin = (int)np;
			p[np++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (want_out) {
			iout = (int)np;
			p[np++] = (struct pollfd){ .fd = STDOUT_FILENO, .events = POLLOUT };
		}
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			status = 1;
			break;
		}
		if (iout >= 0 && p[iout].revents) {
			ssize_t n = write(STDOUT_FILENO, buf_data(&out), buf_used(&out));
			if (n < 0 && errno != EINTR && errno != EAGAIN) {
				log_info("write to client: %s", strerror(errno));
				status = errno == EPIPE ? 0 : 1;
				break;
			}
			if (n > 0)
				buf_consume(&out, (size_t)n);
		}
		/* A big WRITE's payload goes from stdin into the file by splice. */
		if (iin >= 0 && p[iin].revents && sftp_server_direct_left(s) && !buf_used(&in) &&
		    sftp_server_direct_pipe(s, STDIN_FILENO, &out) != 0)
			continue;
		if (iin >= 0 && p[iin].revents) {
			size_t room;
			uint8_t *w = buf_reserve_read(&in, READ_MIN, READ_CHUNK, &room);
			if (!w) {
				log_err("input buffer overflow");
				status = 1;
				break;
			}
			/* Uploading: no further than the next payload's start. */
			room = sftp_server_want(s, &in, room);
			ssize_t n = read(STDIN_FILENO, w, room);
			if (n > 0) {
				buf_commit(&in, (size_t)n);
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				if (n < 0)
					log_info("read from client: %s", strerror(errno));
				eof = true;
				if (buf_used(&in) || sftp_server_direct_left(s))
					log_warn("client closed inside a packet (%zu bytes dropped)",
						 buf_used(&in));
			}
		}
	}
	buf_free(&in);
	buf_free(&out);
	return status;
}

int main(int argc, char **argv)
{
	enum { OPT_MAX_HANDLES = 256, OPT_NO_SANDBOX, OPT_PRINT_SYSCALLS, OPT_ROOT };
	static const struct option opts[] = {
		{ "read-only", no_argument, NULL, 'R' },
		{ "start-dir", required_argument, NULL, 'd' },
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "max-handles", required_argument, NULL, OPT_MAX_HANDLES },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "print-syscalls", no_argument, NULL, OPT_PRINT_SYSCALLS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	log_set_ident("wicket-sftp-server");
	struct sftp_server_cfg cfg = { .max_handles = SFTP_DEFAULT_MAX_HANDLES };
	const char *root = NULL, *start_arg = NULL;
	const char *allow = NULL, *deny = NULL;
	bool no_sandbox = false;
	int c;
	while ((c = getopt_long(argc, argv, "Rd:P:p:Q:u:l:ef:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'R':
			cfg.read_only = true;
			break;
		case 'd':
			start_arg = optarg;
			break;
		case OPT_ROOT:
			root = optarg;
			break;
		case 'P':
			deny = optarg;
			break;
		case 'p':
			allow = optarg;
			break;
		case 'Q':
			if (strcmp(optarg, "requests") != 0) {
				fprintf(stderr, "wicket-sftp-server: -Q: unknown query '%s' (requests)\n",
					optarg);
				return 2;
			}
			for (size_t i = 0; sftp_server_request_name(i); i++)
				printf("%s\n", sftp_server_request_name(i));
			return 0;
		case 'u': {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			if (!*optarg || *end || m > 0777) {
				fprintf(stderr, "wicket-sftp-server: -u: bad umask '%s'\n", optarg);
				return 2;
			}
			umask((mode_t)m);
			break;
		}
		case 'l':
			log_level = parse_level(optarg);
			if (log_level < 0) {
				fprintf(stderr, "wicket-sftp-server: -l: unknown level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'e':
		case 'f': /* syslog facility: we always log to stderr */
			break;
		case OPT_MAX_HANDLES: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || n == 0 || n > 1000000) {
				fprintf(stderr, "wicket-sftp-server: --max-handles: bad number '%s'\n",
					optarg);
				return 2;
			}
			cfg.max_handles = (unsigned)n;
			break;
		}
		case OPT_NO_SANDBOX:
			no_sandbox = true;
			break;
		case OPT_PRINT_SYSCALLS:
			sandbox_print(stdout, &sftp_profile);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("wicket-sftp-server %s\n", WICKET_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	/* scp -s -D SERVER runs "SERVER -- HOST sftp": operands mean nothing here. */
	for (int i = optind; i < argc; i++)
		log_debug("operand '%s' ignored", argv[i]);
	char *start = NULL;
	if (start_arg) {
		const char *bad = NULL;
		start = expand_start_dir(start_arg, &bad);
		if (!start) {
			if (bad)
				fprintf(stderr, "wicket-sftp-server: -d %s: unknown token '%.2s' (%%d, %%u, %%%%)\n",
					start_arg, bad);
			else
				fprintf(stderr, "wicket-sftp-server: out of memory\n");
			return 2;
		}
	}
	const char *bad = NULL;
	if ((allow && sftp_server_filter(&cfg, allow, true, &bad) < 0) ||
	    (deny && sftp_server_filter(&cfg, deny, false, &bad) < 0)) {
		fprintf(stderr, "wicket-sftp-server: unknown request '%.*s' (see -Q requests)\n",
			(int)strcspn(bad, ","), bad);
		return 2;
	}

	/* A start directory that cannot be entered is logged and the session
	 * starts where it would have (OpenSSH does the same). */
	if (start && !root && chdir(start) < 0)
		log_err("-d %s: cannot change to it: %s", start, strerror(errno));
	struct px *px;
	int rc = px_new(root, root ? start : NULL, &px);
	if (rc && root && start && px_new(root, NULL, &px) == 0) {
		log_err("-d %s: not a directory inside --root %s: %s", start, root, strerror(-rc));
		rc = 0;
	}
	free(start);
	if (rc) {
		if (rc == -ENOSYS)
			log_err("--root %s: openat2(2) is not available, refusing to run unconfined",
				root);
		else
			log_err("--root %s: %s", root, strerror(-rc));
		return 1;
	}
	cfg.stage_fd = stage_open(); /* before the sandbox: pipe2, F_SETPIPE_SZ */
	/* WRITE payloads can be spliced from stdin when it is a pipe. */
	struct stat st_in;
	cfg.direct_in = fstat(STDIN_FILENO, &st_in) == 0 && S_ISFIFO(st_in.st_mode);
	/* A client that goes away shows up as EPIPE on write, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (!no_sandbox) {
		/*
		 * Name lookups load their NSS modules now, while mmap may still
		 * map code: a hit and a miss in each database (a miss goes past
		 * "files" to the other modules nsswitch.conf lists).
		 */
		static const char miss[] = "wicket-sftp-server-nss-preload";
		if (!getpwuid(getuid()) || !getpwnam(miss) || !getgrgid(getgid()) || !getgrnam(miss))
			log_debug("name service preloaded");
		struct sandbox_opts so = { .profile = &sftp_profile, .seccomp = sandbox_available(),
					   .no_fork = true };
		if (sandbox_isolate(&so) < 0) {
			log_err("cannot sandbox the sftp server: refusing to run (--no-sandbox to debug)");
			px_free(px);
			return 1;
		}
	}

	struct sftp_server *s = sftp_server_new(&px_ops, px, &cfg);
	if (!s) {
		log_err("out of memory");
		px_free(px);
		return 1;
	}
	log_info("session start%s%s%s", cfg.read_only ? " (read-only)" : "",
		 root ? ", root " : "", root ? root : "");
	int status = serve(s);
	sftp_server_free(s);
	px_free(px);
	log_info("session end");
	return status;
}
