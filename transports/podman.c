/* SPDX-License-Identifier: MIT */
/*
 * podman/NAME: an agent inside a podman container, through podman's own CLI
 * (`podman`, or $WICKET_PODMAN), run as the calling user: rootless podman
 * for a user, root's for root, the service named by CONTAINER_HOST or
 * CONTAINER_CONNECTION when those are set.
 *
 * 0. Locally, with the static agent at hand and no --tools: one `podman
 *    exec` of the static agent (3. below) with --use-installed, nothing
 *    before it: inside the container it hands its stream over to the
 *    container's own wicketd if there is one (agent/installed.c), so the
 *    inspect and the look below cost nothing on the way in.  Only when that
 *    exec fails does an inspect say why (no such container, not running).
 *    Otherwise (a remote service, no static agent, --tools):
 * 1. `podman container inspect` says whether NAME exists and runs, and
 *    gives its id, its init process and its PATH.
 * 2. Does the container have its own wicketd?  With a local podman we look
 *    at the container's root as its init process sees it (/proc/PID/root,
 *    which needs the same uid or ptrace rights, i.e. the user whose podman
 *    runs it): each PATH directory (and /usr/sbin, /usr/local/sbin) is
 *    resolved inside that root (openat2 RESOLVE_IN_ROOT, so the container's
 *    symlinks cannot lead out of it), for an executable regular file
 *    "wicketd".  Opening O_PATH reads nothing and writes nothing, and no
 *    process is started in the container for it.  Where we cannot look (a
 *    remote podman service, /proc hidden) we ask `podman exec ID wicketd
 *    --version` instead, which also writes nothing there.
 * 3. Its own agent: `podman exec --preserve-fds=1 ID PATH --fd 3`.
 *    Otherwise the static agent is brought in: a sealed memfd copy of
 *    wicketd-static (ctr_program_fd) as descriptor 3 (CTR_FD_AGENT), with
 *    `podman exec --preserve-fds=2 ID /proc/self/fd/3 --fd 4` (with --tools
 *    the toolbox is 4, CTR_FD_TOOLS, the stream 5, and the agent gets
 *    --toolbox-fd 4).  runc passes preserved descriptors on as 3, 4, ... to
 *    the process it starts.  Either way the process is podman's exec
 *    process, with the container's namespaces, cgroup, seccomp filter,
 *    capabilities, LSM label and user.
 *
 *    The stream is the last preserved descriptor: one end of a socketpair
 *    of ours, so the bytes do not pass through podman's and conmon's stdio
 *    relay (which moves a few hundred MB/s, below `podman cp`); podman
 *    still starts, confines and reaps the agent, and relays only its log
 *    (stderr) to ours.  A wicketd of the container's own that knows no --fd
 *    (exit status 2, a usage error) gets `podman exec -i ID PATH --stdio`,
 *    the relay, instead; so does any wicketd behind a remote podman
 *    service, which passes no descriptors.
 *
 * The podman exec process is the stream's helper (tp.pid): tp_close() ends
 * it, and a mux keeps it for as long as it keeps the stream.
 */
#include "ctr.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define PODMAN_FIELDS                                                                    \
	"{{.Id}}\t{{.Name}}\t{{.State.Status}}\t{{.State.Pid}}\t{{.State.ConmonPid}}\t" \
	"{{.State.ExitCode}}\t{{json .Config.Env}}"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define OUT_MAX (4u << 20)
#define ERR_MAX 4096

/* One container as `podman container inspect` tells it. */
struct pinfo {
	char id[80];
	char name[256];
	char state[32];
	long pid, conmon;
	int exit_code;
	char path[4096]; /* PATH from its environment, else DEFAULT_PATH */
};

static const char *podman_bin(void)
{
	const char *p = getenv("WICKET_PODMAN");
	return p && *p ? p : "podman";
}

/* The podman we talk to is another machine's (or another user's) service. */
static bool podman_remote(void)
{
	const char *h = getenv("CONTAINER_HOST"), *c = getenv("CONTAINER_CONNECTION");
	const char *b = strrchr(podman_bin(), '/');
	b = b ? b + 1 : podman_bin();
	return (h && *h) || (c && *c) || strcmp(b, "podman-remote") == 0;
}

/* Which podman this is, for messages: rootless or rootful, or remote. */
static void podman_whose(char *buf, size_t len)
{
	const char *h = getenv("CONTAINER_HOST"), *c = getenv("CONTAINER_CONNECTION");
	if (h && *h) {
		snprintf(buf, len, "the podman service at CONTAINER_HOST=%s", h);
	} else if (c && *c) {
		snprintf(buf, len, "the podman service of connection '%s'", c);
	} else if (geteuid() == 0) {
		snprintf(buf, len, "root's (rootful) podman");
	} else {
		struct passwd *pw = getpwuid(geteuid());
		if (pw)
			snprintf(buf, len, "rootless podman of user %s", pw->pw_name);
		else
			snprintf(buf, len, "rootless podman of uid %u", (unsigned)geteuid());
	}
}

/* Names and ids podman accepts; nothing that podman could take for an option. */
static bool name_ok(const char *n)
{
	if (!isalnum((unsigned char)n[0]))
		return false;
	size_t i = 0;
	for (; n[i]; i++) {
		unsigned char c = (unsigned char)n[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return i < 254;
}

/* ---- running podman and reading what it says ---- */

struct capture {
	char *out;
	size_t nout;
	char err[ERR_MAX];
	int status; /* wait status */
	int exec_errno;
};

static void cap_free(struct capture *c)
{
	free(c->out);
	c->out = NULL;
}

/* Append what is readable on @fd; false at EOF. */
static bool drain(int fd, char **buf, size_t *n, size_t cap, bool grow)
{
	char tmp[65536];
	ssize_t r = read(fd, tmp, sizeof(tmp));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (r <= 0)
		return false;
	size_t take = (size_t)r;
	if (*n + take > cap - 1)
		take = cap - 1 - *n; /* keep the head; the rest is dropped */
	if (grow) {
		char *nb = realloc(*buf, *n + take + 1);
		if (!nb)
			return true;
		*buf = nb;
	}
	memcpy(*buf + *n, tmp, take);
	*n += take;
	(*buf)[*n] = 0;
	return true;
}

/*
 * Run podman with @argv (argv[0] is replaced by podman's path), stdin
 * /dev/null, capturing stdout and the head of stderr.  0, or -errno when
 * it could not be run at all (c->exec_errno).
 */
static int run_podman(const char *const *argv, struct capture *c)
{
	*c = (struct capture){ .out = calloc(1, 1) };
	int po[2], pe[2], rep[2];
	if (!c->out || pipe2(po, O_CLOEXEC) < 0)
		return -(c->exec_errno = errno ? errno : ENOMEM);
	if (pipe2(pe, O_CLOEXEC) < 0) {
		c->exec_errno = errno;
		close(po[0]);
		close(po[1]);
		return -c->exec_errno;
	}
	if (pipe2(rep, O_CLOEXEC) < 0) {
		c->exec_errno = errno;
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		return -c->exec_errno;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp(podman_bin(), (char *const *)argv);
		int e = errno;
		ssize_t w = write(rep[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	close(rep[1]);
	if (pid < 0) {
		c->exec_errno = errno;
		close(po[0]);
		close(pe[0]);
		close(rep[0]);
		return -c->exec_errno;
	}
	int e = 0;
	ssize_t n;
	do
		n = read(rep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(rep[0]);
	bool open_o = true, open_e = true;
	char *ebuf = c->err;
	size_t nerr = 0;
	while (open_o || open_e) {
		struct pollfd p[2] = { { .fd = open_o ? po[0] : -1, .events = POLLIN },
				       { .fd = open_e ? pe[0] : -1, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			open_o = drain(po[0], &c->out, &c->nout, OUT_MAX, true);
		if (p[1].revents)
			open_e = drain(pe[0], &ebuf, &nerr, sizeof(c->err), false);
	}
	close(po[0]);
	close(pe[0]);
	while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR) {
	}
	if (n == (ssize_t)sizeof(e)) {
		c->exec_errno = e;
		return -e;
	}
	return 0;
}

/* podman's error, one line without its "Error: " prefix. */
static const char *podman_said(struct capture *c)
{
	char *s = c->err;
	/* The last "Error: " line is the one that counts (warnings come first). */
	char *last = NULL;
	for (char *p = strstr(s, "Error: "); p; p = strstr(p + 1, "Error: "))
		last = p + 7;
	if (last)
		s = last;
	while (*s == ' ' || *s == '\n')
		s++;
	s[strcspn(s, "\n")] = 0;
	size_t l = strlen(s);
	while (l && (s[l - 1] == '\r' || s[l - 1] == ' '))
		s[--l] = 0;
	if (!*s)
		snprintf(c->err, sizeof(c->err), "podman exited with status %d",
			 WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status));
	return *s ? s : c->err;
}

static bool said(const struct capture *c, const char *what)
{
	return strcasestr(c->err, what) != NULL;
}

/* podman could not be run, or failed: one line in @err.  Returns -errno. */
static int podman_failed(const char *label, const char *name, struct capture *c, char *err,
			 size_t errlen)
{
	char whose[300];
	podman_whose(whose, sizeof(whose));
	if (c->exec_errno == ENOENT) {
		snprintf(err, errlen, "%s: podman is not installed (no '%s' in PATH)", label,
			 podman_bin());
		return -ENOENT;
	}
	if (c->exec_errno) {
		snprintf(err, errlen, "%s: cannot run %s: %s", label, podman_bin(),
			 strerror(c->exec_errno));
		return -c->exec_errno;
	}
	if (said(c, "no such container") || said(c, "no container with name or id")) {
		snprintf(err, errlen,
			 "%s: no container '%s' in %s%s", label, name, whose,
			 podman_remote() ? "" :
			 geteuid() == 0 ? " (a user's rootless containers are seen only by that "
					  "user's podman)" :
					  " (root's containers are seen only by root's podman)");
		return -ENOENT;
	}
	const char *why = podman_said(c);
	if (said(c, "permission denied") || said(c, "operation not permitted")) {
		snprintf(err, errlen, "%s: permission denied by %s: %s", label, whose, why);
		return -EACCES;
	}
	snprintf(err, errlen, "%s: %s: %s", label, whose, why);
	return -EIO;
}

/* Take one tab-separated field, in place. */
static char *field(char **s)
{
	char *f = *s;
	if (!f)
		return NULL;
	char *t = strchr(f, '\t');
	if (t) {
		*t = 0;
		*s = t + 1;
	} else {
		*s = NULL;
	}
	return f;
}

/*
 * The value of PATH in a JSON array of "K=V" strings (from {{json}}).  Only
 * the escapes Go's encoder writes are decoded; anything odd means no PATH.
 */
static void env_path(const char *j, char *out, size_t len)
{
	snprintf(out, len, "%s", DEFAULT_PATH);
	const char *p = strchr(j, '[');
	if (!p)
		return;
	p++;
	char val[4096];
	for (;;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p != '"')
			return;
		p++;
		size_t n = 0;
		while (*p && *p != '"') {
			char ch = *p++;
			if (ch == '\\') {
				ch = *p++;
				if (ch == 'u') {
					/* Go escapes <, >, & and controls: keep ASCII ones. */
					unsigned v = 0;
					for (int k = 0; k < 4; k++) {
						if (!isxdigit((unsigned char)*p))
							return;
						char h[2] = { *p++, 0 };
						v = v * 16 + (unsigned)strtoul(h, NULL, 16);
					}
					ch = v < 0x80 ? (char)v : '?';
				} else if (ch == 'n') {
					ch = '\n';
				} else if (ch == 't') {
					ch = '\t';
				} else if (ch == 'r') {
					ch = '\r';
				} else if (ch != '"' && ch != '\\' && ch != '/') {
					return;
				}
			}
			if (n + 1 < sizeof(val))
				val[n++] = ch;
		}
		if (*p != '"')
			return;
		p++;
		val[n] = 0;
		if (strncmp(val, "PATH=", 5) == 0) {
			snprintf(out, len, "%s", val + 5);
			return;
		}
	}
}

/* One line of PODMAN_FIELDS output. */
static int parse_info(char *line, struct pinfo *pi)
{
	*pi = (struct pinfo){ 0 };
	char *s = line;
	const char *id = field(&s), *name = field(&s), *state = field(&s), *pid = field(&s),
		   *conmon = field(&s), *code = field(&s), *env = field(&s);
	if (!env || !*id)
		return -1;
	snprintf(pi->id, sizeof(pi->id), "%s", id);
	snprintf(pi->name, sizeof(pi->name), "%s", name[0] == '/' ? name + 1 : name);
	snprintf(pi->state, sizeof(pi->state), "%s", state);
	pi->pid = strtol(pid, NULL, 10);
	pi->conmon = strtol(conmon, NULL, 10);
	pi->exit_code = (int)strtol(code, NULL, 10);
	env_path(env, pi->path, sizeof(pi->path));
	return 0;
}

/* Inspect one container.  0, or -errno with @err set. */
static int inspect_one(const char *label, const char *name, struct pinfo *pi, char *err,
		       size_t errlen)
{
	const char *argv[] = { "podman", "container", "inspect", "--format", PODMAN_FIELDS,
			       "--", name, NULL };
	struct capture c;
	int r = run_podman(argv, &c);
	if (r < 0 || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
		r = podman_failed(label, name, &c, err, errlen);
		cap_free(&c);
		return r;
	}
	c.out[strcspn(c.out, "\n")] = 0;
	if (parse_info(c.out, pi) < 0) {
		snprintf(err, errlen, "%s: cannot read what 'podman container inspect' says: '%.100s'",
			 label, c.out);
		cap_free(&c);
		return -EIO;
	}
	cap_free(&c);
	return 0;
}

/* ---- is there a wicketd inside? ---- */

static long status_ppid(int procdir)
{
	int fd = openat(procdir, "status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "\nPPid:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/* An executable regular file at @path inside the root @rootfd: 1, 0, or -1
 * when we may not look (or this kernel has no openat2). */
static int exec_in_root(int rootfd, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd < 0)
		return errno == EACCES || errno == EPERM || errno == ENOSYS ? -1 : 0;
	struct stat st;
	int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
	close(fd);
	return ok;
}

/*
 * Look for wicketd in the container's PATH directories (and the sbin ones)
 * from the host, in its init process's root.  1 found (@out), 0 not there,
 * -1 cannot tell from here.
 */
static int look_inside(const struct pinfo *pi, char *out, size_t len)
{
	if (podman_remote() || pi->pid <= 0)
		return -1;
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%ld", pi->pid);
	int pd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pd < 0)
		return -1;
	/* That pid is the container's init only while conmon is its parent. */
	if (pi->conmon > 0 && status_ppid(pd) != pi->conmon) {
		close(pd);
		return -1;
	}
	int root = openat(pd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	close(pd);
	if (root < 0)
		return -1;
	char path[4096 + 64];
	snprintf(path, sizeof(path), "%s:/usr/sbin:/usr/local/sbin", pi->path);
	int found = 0;
	bool unsure = false;
	for (char *save = NULL, *d = strtok_r(path, ":", &save); d && found <= 0;
	     d = strtok_r(NULL, ":", &save)) {
		if (d[0] != '/')
			continue; /* runc resolves only absolute PATH entries for us */
		char cand[PATH_MAX];
		int w = snprintf(cand, sizeof(cand), "%s%swicketd", d,
				 d[strlen(d) - 1] == '/' ? "" : "/");
		if (w <= 0 || (size_t)w >= sizeof(cand))
			continue;
		found = exec_in_root(root, cand);
		if (found > 0)
			snprintf(out, len, "%s", cand);
		else if (found < 0)
			unsure = true; /* a directory we may not read: maybe there */
	}
	close(root);
	return found > 0 ? 1 : unsure ? -1 : 0;
}

/* Where we cannot look: ask the container (runs `wicketd --version` there). */
static int ask_inside(const struct pinfo *pi, char *out, size_t len)
{
	const char *argv[] = { "podman", "exec", "--", pi->id, "wicketd", "--version", NULL };
	struct capture c;
	int r = run_podman(argv, &c);
	bool yes = r == 0 && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 &&
		   strncmp(c.out, "wicketd ", 8) == 0;
	cap_free(&c);
	if (yes)
		snprintf(out, len, "wicketd");
	return yes;
}

/* ---- the stream ---- */

/* How long a podman exec may take to start the agent before we stop waiting. */
#define AGENT_START_MS 60000

/*
 * Wait for the agent's first byte (its greeting) without taking it: 1 it
 * came, 0 the agent is gone (EOF), -1 still nothing after AGENT_START_MS.
 */
static int await_agent(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, AGENT_START_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	char c;
	ssize_t n = recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n > 0 ? 1 : n == 0 || errno != EAGAIN ? 0 : -1;
}

/* podman exec ended before the agent greeted: its exit status, for messages. */
static int helper_status(struct tp *t)
{
	int st = 0;
	pid_t p;
	while ((p = waitpid(t->pid, &st, 0)) < 0 && errno == EINTR) {
	}
	t->pid = 0;
	if (p < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Spawn @argv with @fds at 3, ... and a socketpair's end as the next one
 * (its number in *@sockfd_out); the stream is our end.  The agent's first
 * byte is awaited: 0 on its way, else -errno with @err set (*@status: how
 * podman exec ended, -1 when it was not started).
 */
static int spawn_on_socket(const char *label, char **argv, const int *fds, int nfds,
			   struct tp *out, int *status, char *err, size_t errlen)
{
	*status = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "%s: socketpair: %s", label, strerror(errno));
		return -errno;
	}
	int all[TP_SPAWN_MAX_FDS];
	for (int i = 0; i < nfds; i++)
		all[i] = fds[i];
	all[nfds] = sv[1];
	char why[600];
	int r = tp_argv_spawn_fds(argv, all, nfds + 1, sv[0], out, why, sizeof(why));
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		if (r == -ENOENT)
			snprintf(err, errlen, "%s: podman is not installed (no '%s' in PATH)", label,
				 argv[0]);
		else
			snprintf(err, errlen, "%s: %s", label, why);
		return r;
	}
	int a = await_agent(sv[0]);
	if (a == 0) {
		*status = helper_status(out);
		tp_close(out);
		snprintf(err, errlen, "%s: the agent ended before its greeting (podman exec exit "
				      "status %d; podman's message, if any, is above)",
			 label, *status);
		return -EPIPE;
	}
	return 0; /* greeted, or slow: the client's own greeting timeout decides */
}

static int bring_in(const char *label, const struct pinfo *pi, const struct ctr_opts *o,
		    bool use_installed, struct tp *out, char *err, size_t errlen)
{
	if (!o->agent) {
		snprintf(err, errlen,
			 "%s: the container has no wicketd of its own, and there is no static "
			 "agent to bring in: this wicket was built without wicketd-static "
			 "(meson -Dstatic_agent=enabled; needs static libc), or set WICKETD_STATIC",
			 label);
		return -ENOENT;
	}
	if (podman_remote()) {
		snprintf(err, errlen,
			 "%s: the container has no wicketd of its own, and the static agent cannot "
			 "be brought in through a remote podman service (descriptors do not cross "
			 "CONTAINER_HOST/CONTAINER_CONNECTION): install wicketd in the image",
			 label);
		return -EOPNOTSUPP;
	}
	char why[600];
	int fds[2] = { -1, -1 }, nfds = 0;
	fds[0] = ctr_program_fd(o->agent, "wicketd", why, sizeof(why));
	if (fds[0] < 0) {
		snprintf(err, errlen, "%s: cannot bring the agent in: %s", label, why);
		return fds[0];
	}
	nfds = 1;
	if (o->tools) {
		fds[1] = ctr_program_fd(o->tools, "wicket-tools", why, sizeof(why));
		if (fds[1] < 0) {
			snprintf(err, errlen, "%s: cannot bring the toolbox in: %s", label, why);
			close(fds[0]);
			return fds[1];
		}
		nfds = 2;
	}
	/* fd 3 the agent, 4 the toolbox (--tools), then the stream. */
	char pres[32], prog[32], tfd[16], sfd[16];
	snprintf(pres, sizeof(pres), "--preserve-fds=%d", nfds + 1);
	snprintf(prog, sizeof(prog), "/proc/self/fd/%d", CTR_FD_AGENT);
	snprintf(tfd, sizeof(tfd), "%d", CTR_FD_TOOLS);
	snprintf(sfd, sizeof(sfd), "%d", 3 + nfds);
	/* Our log level for the agent's lines (podman relays its stderr to ours). */
	const char *argv[12] = { podman_bin(), "exec", pres, "--", pi->id, prog, "--fd", sfd };
	int a = 8;
	if (o->tools) {
		argv[a++] = "--toolbox-fd";
		argv[a++] = tfd;
	} else if (use_installed) {
		argv[a++] = "--use-installed";
	}
	if (log_level >= LOG_INFO)
		argv[a++] = log_level >= LOG_DEBUG ? "-vv" : "-v";
	argv[a] = NULL;
	int st;
	int r = spawn_on_socket(label, (char **)argv, fds, nfds, out, &st, err, errlen);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (r < 0) {
		if (st == 126 || st == 127)
			snprintf(err, errlen,
				 "%s: the static agent cannot be brought in: the container may not "
				 "execute it from a descriptor (podman exec exit status %d: see "
				 "podman's message above)",
				 label, st);
		return r;
	}
	if (use_installed)
		log_info("%s: brought in %s (sealed memfd, fd %d); it hands over to the "
			 "container's own wicketd if it has one",
			 label, o->agent, CTR_FD_AGENT);
	else
		log_info("%s: container %.12s has no wicketd; brought in %s (sealed memfd, fd %d)%s",
			 label, pi->id, o->agent, CTR_FD_AGENT,
			 o->tools ? " with the toolbox at fd 4" : "");
	return 0;
}

/* The container's own wicketd at @path inside. */
static int own_agent(const char *label, const struct pinfo *pi, const char *path, struct tp *out,
		     char *err, size_t errlen)
{
	int r, st = -1;
	if (!podman_remote()) {
		/* Our socket as its fd 3: no podman relay in the data path. */
		const char *argv[] = { podman_bin(), "exec", "--preserve-fds=1", "--", pi->id, path,
				       "--fd", "3", NULL };
		r = spawn_on_socket(label, (char **)argv, NULL, 0, out, &st, err, errlen);
		if (r == 0) {
			log_info("%s: container %.12s has its own agent: %s", label, pi->id, path);
			return 0;
		}
		/* 2 is wicketd's usage error: one older than --fd.  Else it is hopeless. */
		if (st != 2)
			return r;
		log_info("%s: %s knows no --fd: through podman's stdio instead", label, path);
	}
	const char *argv[] = { podman_bin(), "exec", "-i", "--", pi->id, path, "--stdio", NULL };
	char why[600];
	r = tp_argv_spawn((char *const *)argv, out, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", label, why);
		return r;
	}
	log_info("%s: container %.12s has its own agent: %s (on podman exec's stdio)", label,
		 pi->id, path);
	return 0;
}

static int not_running(const char *label, const struct pinfo *pi, char *err, size_t errlen)
{
	if (strcmp(pi->state, "exited") == 0 || strcmp(pi->state, "stopped") == 0)
		snprintf(err, errlen, "%s: the container is not running (%s, exit code %d)", label,
			 pi->state, pi->exit_code);
	else
		snprintf(err, errlen, "%s: the container is not running (%s)", label, pi->state);
	return -ESRCH;
}

int ctr_podman_open(const char *name, const struct ctr_opts *o, struct tp *out, char *err,
		    size_t errlen)
{
	const char *label = o->label;
	if (!name_ok(name)) {
		snprintf(err, errlen, "%s: '%s' is not a podman container name or id", label, name);
		return -EINVAL;
	}
	struct pinfo pi;
	int r;
	if (o->agent && !o->tools && !podman_remote()) {
		/*
		 * One podman exec, no inspect first: the static agent comes in
		 * and hands over to the container's own wicketd if there is one
		 * (agent/installed.c).  Only when that fails does the
		 * container's state say why.
		 */
		pi = (struct pinfo){ 0 };
		snprintf(pi.id, sizeof(pi.id), "%s", name);
		r = bring_in(label, &pi, o, true, out, err, errlen);
		if (r == 0)
			return 0;
		char why[1024];
		int ir = inspect_one(label, name, &pi, why, sizeof(why));
		if (ir < 0) {
			snprintf(err, errlen, "%s", why);
			return ir;
		}
		if (strcmp(pi.state, "running") != 0)
			return not_running(label, &pi, err, errlen);
		return r;
	}
	r = inspect_one(label, name, &pi, err, errlen);
	if (r < 0)
		return r;
	if (strcmp(pi.state, "running") != 0)
		return not_running(label, &pi, err, errlen);
	/* --toolbox-fd is ours: with --tools the static agent, whatever the image has. */
	char inside[PATH_MAX] = "";
	int has = 0;
	if (!o->tools) {
		has = look_inside(&pi, inside, sizeof(inside));
		if (has < 0)
			has = ask_inside(&pi, inside, sizeof(inside));
	}
	if (has > 0)
		return own_agent(label, &pi, inside, out, err, errlen);
	return bring_in(label, &pi, o, false, out, err, errlen);
}

int ctr_podman_lost(const char *name, char *why, size_t len)
{
	if (!name_ok(name))
		return 0;
	/* The stream can end a moment before podman has seen the container stop. */
	for (int i = 0; i < 4; i++) {
		struct pinfo pi;
		char err[600];
		int r = inspect_one("", name, &pi, err, sizeof(err));
		if (r == -ENOENT && strstr(err, "no container")) {
			snprintf(why, len, "the container was removed");
			return 1;
		}
		if (r < 0)
			return 0;
		if (strcmp(pi.state, "running") != 0) {
			if (strcmp(pi.state, "exited") == 0 || strcmp(pi.state, "stopped") == 0)
				snprintf(why, len, "the container stopped (exit code %d)",
					 pi.exit_code);
			else
				snprintf(why, len, "the container is no longer running (%s)",
					 pi.state);
			return 1;
		}
		struct timespec ts = { 0, 250 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ---- wicket list ---- */

static void reach_of(const struct pinfo *pi, const struct ctr_opts *o, char *how, size_t len)
{
	char inside[PATH_MAX];
	int has = look_inside(pi, inside, sizeof(inside));
	if (has > 0)
		snprintf(how, len, "agent inside (%s)", inside);
	else if (has < 0 && podman_remote())
		snprintf(how, len, "agent inside if it has wicketd (remote podman: cannot look)");
	else if (has < 0)
		snprintf(how, len, "agent inside if it has wicketd, else brought in (cannot look)");
	else if (!o->agent)
		snprintf(how, len, "not reachable: no wicketd inside, no wicketd-static built");
	else
		snprintf(how, len, "brought in (wicketd-static)");
}

int ctr_podman_list(const struct ctr_opts *o, struct ctr_row **rows, size_t *nrows, char *err,
		    size_t errlen)
{
	*rows = NULL;
	*nrows = 0;
	const char *ps[] = { "podman", "ps", "-q", "--no-trunc", NULL };
	struct capture c;
	int r = run_podman(ps, &c);
	if (r < 0 || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
		r = podman_failed("podman", "", &c, err, errlen);
		cap_free(&c);
		return r;
	}
	/* One inspect for all of them. */
	size_t nid = 0;
	for (char *p = c.out; *p; p++)
		nid += *p == '\n';
	const char **argv = calloc(nid + 8, sizeof(*argv));
	if (!argv) {
		cap_free(&c);
		snprintf(err, errlen, "podman: out of memory");
		return -ENOMEM;
	}
	size_t a = 0;
	argv[a++] = "podman";
	argv[a++] = "container";
	argv[a++] = "inspect";
	argv[a++] = "--format";
	argv[a++] = PODMAN_FIELDS;
	argv[a++] = "--";
	size_t first = a;
	for (char *save = NULL, *id = strtok_r(c.out, "\n", &save); id;
	     id = strtok_r(NULL, "\n", &save))
		if (name_ok(id))
			argv[a++] = id;
	if (a == first) {
		free(argv);
		cap_free(&c);
		return 0;
	}
	struct capture ci;
	r = run_podman(argv, &ci);
	free(argv);
	cap_free(&c);
	/* A container gone between ps and inspect fails the whole call: fine, none. */
	if (r < 0) {
		r = podman_failed("podman", "", &ci, err, errlen);
		cap_free(&ci);
		return r;
	}
	size_t cap = 0;
	for (char *p = ci.out; *p; p++)
		cap += *p == '\n';
	struct ctr_row *out = calloc(cap + 1, sizeof(*out));
	if (!out) {
		cap_free(&ci);
		snprintf(err, errlen, "podman: out of memory");
		return -ENOMEM;
	}
	size_t n = 0;
	for (char *save = NULL, *ln = strtok_r(ci.out, "\n", &save); ln && n <= cap;
	     ln = strtok_r(NULL, "\n", &save)) {
		struct pinfo pi;
		if (parse_info(ln, &pi) < 0 || strcmp(pi.state, "running") != 0)
			continue;
		struct ctr_row *row = &out[n++];
		snprintf(row->target, sizeof(row->target), "podman/%s", pi.name);
		snprintf(row->id, sizeof(row->id), "%.12s", pi.id);
		snprintf(row->state, sizeof(row->state), "%s", pi.state);
		reach_of(&pi, o, row->how, sizeof(row->how));
	}
	cap_free(&ci);
	*rows = out;
	*nrows = n;
	return 0;
}
