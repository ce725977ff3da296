/* SPDX-License-Identifier: MIT */
/*
 * Host side: pid/PID, and the injection path of docker/NAME -- the static
 * agent started inside the namespaces of a running process.
 *
 * Three processes.  The host tool prepares everything that needs the
 * host's view (a pidfd and /proc/PID of the process, checked to be the same
 * process; its status, cgroups, LSM label and rlimits; the cgroup.procs
 * files; the agent as a sealed memfd), then forks the relay (ctr_relay.c),
 * which joins the process's PID namespace (first its user namespace when
 * we are only that namespace's owner) and forks the agent's process: a
 * process joining a PID namespace stays outside it, only its children are
 * inside.  The relay moves that child into the process's cgroups; the
 * child joins the other namespaces, takes the process's root, credentials,
 * capabilities and LSM label, closes every other fd and runs the agent from
 * the memfd.  Nothing of the container's filesystem is run or read on the
 * host side; /proc/PID files are read through the one directory fd opened
 * while the pidfd proved the process alive.
 */
#include "nsenter.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 30000

/* What the relay or the agent's process says when it cannot go on. */
struct report {
	int err;
	char msg[480];
};

/* The namespaces, in the order a process without pidfd setns joins them. */
static const struct {
	const char *name;
	int flag;
} ns_list[] = {
	{ "user", CLONE_NEWUSER }, { "pid", CLONE_NEWPID },	  { "cgroup", CLONE_NEWCGROUP },
	{ "ipc", CLONE_NEWIPC },   { "uts", CLONE_NEWUTS },	  { "net", CLONE_NEWNET },
	{ "mnt", CLONE_NEWNS },	   { "time", CLONE_NEWTIME },
};
_Static_assert(sizeof(ns_list) / sizeof(ns_list[0]) == N_NS, "N_NS");

/* ---- the agent's process (inside) ---- */

static int g_rep = -1;

__attribute__((format(printf, 2, 3), noreturn)) static void die(int e, const char *fmt, ...)
{
	struct report rp = { .err = e };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rp.msg, sizeof(rp.msg), fmt, ap);
	va_end(ap);
	if (g_rep >= 0) {
		ssize_t w = write(g_rep, &rp, sizeof(rp));
		(void)w;
	}
	_exit(255);
}

static int capget2(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	return (int)syscall(SYS_capget, &h, d);
}

static int capset3(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &h, d);
}

static void set_rlimits(const struct entry *e)
{
	for (int r = 0; e->have_rl && r < RLIM_NLIMITS; r++) {
		struct rlimit want = e->rl[r], cur;
		if (setrlimit(r, &want) == 0 || getrlimit(r, &cur) < 0)
			continue;
		/* Not allowed to raise: at least never above the process's. */
		if (want.rlim_max > cur.rlim_max)
			want.rlim_max = cur.rlim_max;
		if (want.rlim_cur > want.rlim_max)
			want.rlim_cur = want.rlim_max;
		setrlimit(r, &want);
	}
}

static bool same_groups(const gid_t *a, int na)
{
	gid_t cur[MAX_GROUPS];
	int n = getgroups(MAX_GROUPS, cur);
	if (n != na)
		return false;
	for (int i = 0; i < n; i++) {
		bool found = false;
		for (int j = 0; j < na && !found; j++)
			found = cur[i] == a[j];
		if (!found)
			return false;
	}
	return true;
}

static int join(const struct entry *e, int flags)
{
	if (!flags)
		return 0;
	if (e->pidfd >= 0 && e->nsfd[0] < 0)
		return setns(e->pidfd, flags);
	for (size_t i = 0; i < N_NS; i++)
		if ((flags & ns_list[i].flag) && setns(e->nsfd[i], ns_list[i].flag) < 0)
			return -1;
	return 0;
}

static int move_high(int fd)
{
	if (fd < 0)
		return -1;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 64);
	if (n < 0)
		die(errno, "%s: fcntl: %s", "agent", strerror(errno));
	return n;
}

struct bfds {
	int in_r, mid_w, err_w, sync_r;
};

__attribute__((noreturn)) static void agent_child(struct entry *e, const struct bfds *f,
						   int b_flags)
{
	const char *L = e->t->label;
	char c;
	if (read(f->sync_r, &c, 1) != 1)
		_exit(255); /* the relay has said why */
	close(f->sync_r);
	setsid(); /* no controlling terminal of the host's in there */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);

	/* With our own privileges still: what a user namespace would refuse. */
	if (e->privileged) {
		if (setgroups((size_t)e->st.ngroups, e->st.groups) < 0)
			die(errno, "%s: setgroups: %s", L, strerror(errno));
		set_rlimits(e);
	}
	if (join(e, b_flags) < 0)
		die(errno, "%s: cannot join its namespaces: %s", L, strerror(errno));
	if (fchdir(e->rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		die(errno, "%s: cannot take its root directory: %s", L, strerror(errno));

	/* Its ids as its own user namespace sees them. */
	static char text[65536];
	static gid_t groups[MAX_GROUPS];
	struct pstatus s = { .groups = groups };
	ssize_t n = nse_read_at(e->procfd, "status", text, sizeof(text));
	if (n < 0)
		die(-(int)n, "%s: %s", L, n == -ESRCH ? "the process has ended" : strerror((int)-n));
	if (nse_parse_status(text, &s) < 0)
		die(EINVAL, "%s: cannot parse its /proc status", L);
	if (!same_groups(s.groups, s.ngroups) && setgroups((size_t)s.ngroups, s.groups) < 0)
		die(errno, "%s: cannot take its supplementary groups: %s", L, strerror(errno));
	if (!e->privileged)
		set_rlimits(e);

	/* Capabilities: the bounding set first (needs CAP_SETPCAP), then the
	 * inheritable set while all of ours are effective, then the ids
	 * (keeping the permitted set), then the process's three sets. */
	int last = CAP_LAST_CAP;
	char lb[32];
	if (nse_read_at(e->hostproc, "sys/kernel/cap_last_cap", lb, sizeof(lb)) > 0)
		last = atoi(lb);
	for (int cap = 0; cap <= last && cap < 64; cap++)
		if (!(s.cap_bnd & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			die(errno, "%s: cannot drop capability %d from the bounding set: %s", L, cap,
			    strerror(errno));
	struct __user_cap_data_struct cur[2];
	if (capget2(cur) < 0)
		die(errno, "%s: capget: %s", L, strerror(errno));
	uint64_t prm = (uint64_t)cur[1].permitted << 32 | cur[0].permitted;
	if (capset3(prm, prm, s.cap_inh) < 0)
		die(errno, "%s: cannot take its inheritable capabilities: %s", L, strerror(errno));
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
	    setresgid((gid_t)s.gid[0], (gid_t)s.gid[1], (gid_t)s.gid[2]) < 0 ||
	    setresuid((uid_t)s.uid[0], (uid_t)s.uid[1], (uid_t)s.uid[2]) < 0)
		die(errno, "%s: cannot take its uid %lu / gid %lu: %s", L, s.uid[1], s.gid[1],
		    strerror(errno));
	if (capset3(s.cap_eff, s.cap_prm, s.cap_inh) < 0)
		die(errno, "%s: cannot take its capabilities: %s", L, strerror(errno));
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		die(errno, "%s: cannot clear the ambient capabilities: %s", L, strerror(errno));

	/* Its LSM label for what we execute, through the host's /proc (the
	 * container's /proc is its own to fake). */
	if (e->lsm != LSM_NONE) {
		char v[sizeof(e->label) + 8];
		const char *attr = e->lsm == LSM_APPARMOR ? "thread-self/attr/apparmor/exec"
							  : "thread-self/attr/exec";
		int len = e->lsm == LSM_SELINUX ? snprintf(v, sizeof(v), "%s", e->label)
						: snprintf(v, sizeof(v), "exec %s", e->label);
		int fd = openat(e->hostproc, attr, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, v, (size_t)len) != len)
			die(errno, "%s: cannot take its LSM label '%s': %s", L, e->label,
			    strerror(errno));
		close(fd);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die(errno, "%s: cannot set no_new_privs: %s", L, strerror(errno));
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* after the id change, which clears it */

	/* The fds: 0/1 the stream, 2 the relay's stderr pipe, 3 the agent
	 * (close-on-exec), 4 the toolbox; nothing else survives. */
	int fin = move_high(f->in_r), fout = move_high(f->mid_w), ferr = move_high(f->err_w);
	int fag = move_high(e->agentfd), ftl = move_high(e->toolsfd), frep = move_high(g_rep);
	int keep[] = { fin, fout, ferr, fag, ftl, frep };
	ctr_close_fds_except(keep, sizeof(keep) / sizeof(keep[0]));
	int rep_at = ftl >= 0 ? CTR_FD_TOOLS + 1 : CTR_FD_TOOLS;
	if (dup3(fin, 0, 0) < 0 || dup3(fout, 1, 0) < 0 || dup3(ferr, 2, 0) < 0 ||
	    dup3(fag, CTR_FD_AGENT, O_CLOEXEC) < 0 || (ftl >= 0 && dup3(ftl, CTR_FD_TOOLS, 0) < 0) ||
	    dup3(frep, rep_at, O_CLOEXEC) < 0)
		_exit(255);
	g_rep = rep_at;
	int keep2[] = { 0, 1, 2, CTR_FD_AGENT, ftl >= 0 ? CTR_FD_TOOLS : -1, rep_at };
	ctr_close_fds_except(keep2, sizeof(keep2) / sizeof(keep2[0]));

	char *argv[] = { (char *)"wicketd", (char *)"--stdio", (char *)"--quiet",
			 ftl >= 0 ? (char *)"--toolbox-fd" : NULL, (char *)"4", NULL };
	char *envp[] = { (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			 NULL };
	syscall(SYS_execveat, CTR_FD_AGENT, "", argv, envp, AT_EMPTY_PATH);
	int xe = errno;
	die(xe, "%s: cannot start the agent in it: %s%s", L, strerror(xe),
	    xe == EACCES || xe == EPERM ? " (executing a memfd is forbidden there?)" : "");
}

/* ---- the relay (outside the PID namespace) ---- */

struct afds {
	int in_r, mid_r, mid_w, out_w, err_r, err_w, rep_w;
};

__attribute__((noreturn)) static void relay_child(struct entry *e, const struct afds *f)
{
	/* Our own session: the terminal's Ctrl-C is the host tool's to forward. */
	setsid();
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* nothing inside may look at us */
	g_rep = f->rep_w;
	const char *L = e->t->label;
	int errout = fcntl(2, F_DUPFD_CLOEXEC, 64);
	int keep[16 + MAX_CGROUPS + N_NS];
	size_t nk = 0;
	int base[] = { f->in_r, f->mid_r, f->mid_w, f->out_w, f->err_r, f->err_w, f->rep_w,
		       e->pidfd, e->procfd, e->rootfd, e->hostproc, e->agentfd, e->toolsfd, errout };
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		keep[nk++] = base[i];
	for (int i = 0; i < e->ncg; i++)
		keep[nk++] = e->cgfd[i];
	for (size_t i = 0; i < N_NS; i++)
		keep[nk++] = e->nsfd[i];
	ctr_close_fds_except(keep, nk);

	/* An owner (not root) gets its rights there from the user namespace. */
	int a_flags = e->differ & CLONE_NEWPID;
	if (!e->privileged)
		a_flags |= e->differ & CLONE_NEWUSER;
	int b_flags = e->differ & ~a_flags & ~CLONE_NEWPID;
	if (join(e, a_flags) < 0) {
		int x = errno;
		die(x, "%s: %s", L,
		    x == EPERM ? "permission denied joining its namespaces (not root, and not the "
				 "owner of its user namespace)"
		    : x == ESRCH ? "the process has ended"
				 : strerror(x));
	}
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		die(errno, "%s: pipe: %s", L, strerror(errno));
	pid_t b = fork();
	if (b < 0)
		die(errno, "%s: cannot fork inside its PID namespace: %s", L, strerror(errno));
	if (b == 0) {
		close(sync[1]);
		close(f->mid_r);
		close(f->out_w);
		close(f->err_r);
		if (errout >= 0)
			close(errout);
		struct bfds bf = { f->in_r, f->mid_w, f->err_w, sync[0] };
		agent_child(e, &bf, b_flags);
	}
	close(sync[0]);
	close(f->in_r);
	close(f->mid_w);
	close(f->err_w);
	close(e->procfd);
	close(e->rootfd);
	close(e->hostproc);
	close(e->agentfd);
	if (e->toolsfd >= 0)
		close(e->toolsfd);
	for (size_t i = 0; i < N_NS; i++)
		if (e->nsfd[i] >= 0)
			close(e->nsfd[i]);
	for (int i = 0; i < e->ncg; i++) {
		char num[32];
		int len = snprintf(num, sizeof(num), "%d\n", (int)b);
		if (write(e->cgfd[i], num, (size_t)len) != len && e->privileged) {
			int x = errno;
			kill(b, SIGKILL);
			waitpid(b, NULL, 0);
			die(x, "%s: cannot join its cgroup %s: %s", L, e->cgwhat[i], strerror(x));
		}
		close(e->cgfd[i]);
	}
	if (write(sync[1], "g", 1) != 1) {
		kill(b, SIGKILL);
		_exit(255);
	}
	close(sync[1]);
	close(f->rep_w);
	g_rep = -1;
	struct ctr_relay r = { .agent_out = f->mid_r, .host_out = f->out_w, .agent_err = f->err_r,
			       .err_to = errout, .watch = e->pidfd, .child = b,
			       .ended = e->t->ended };
	_exit(ctr_relay_run(&r));
}

/* ---- the host tool ---- */

static bool has_cap(int cap)
{
	struct __user_cap_data_struct d[2];
	if (capget2(d) < 0)
		return false;
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static bool is_memfd(int fd)
{
	return fcntl(fd, F_GET_SEALS) >= 0;
}

static void entry_free(struct entry *e)
{
	int *fds[] = { &e->pidfd, &e->procfd, &e->rootfd, &e->hostproc, &e->agentfd, &e->toolsfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	for (size_t i = 0; i < N_NS; i++)
		if (e->nsfd[i] >= 0)
			close(e->nsfd[i]);
	for (int i = 0; i < e->ncg; i++)
		close(e->cgfd[i]);
	e->ncg = 0;
	free(e->st.groups);
	e->st.groups = NULL;
}

static bool alive(const struct entry *e)
{
#ifdef SYS_pidfd_send_signal
	if (e->pidfd >= 0)
		return syscall(SYS_pidfd_send_signal, e->pidfd, 0, NULL, 0) == 0 || errno == EPERM;
#endif
	return kill(e->pid, 0) == 0 || errno == EPERM;
}

/* Everything read or opened with the host's view, before any fork. */
static int prepare(struct entry *e, const struct ctr_opts *o, char *err, size_t errlen)
{
	const char *L = e->t->label;
	char path[64];
	e->privileged = has_cap(CAP_SYS_ADMIN);
	e->pidfd = ctr_pidfd_open(e->pid);
	if (e->pidfd == -ESRCH)
		return nse_fail(err, errlen, ESRCH, "%s: no such process", L);
	if (e->pidfd < 0 && e->pidfd != -ENOSYS)
		return nse_fail(err, errlen, e->pidfd, "%s: pidfd_open: %s", L, strerror(-e->pidfd));
	if (e->pidfd < 0)
		e->pidfd = -1;
	snprintf(path, sizeof(path), "/proc/%d", (int)e->pid);
	e->procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (e->procfd < 0)
		return nse_fail(err, errlen, errno == ENOENT ? ESRCH : errno, "%s: %s", L,
			    errno == ENOENT ? "no such process" : strerror(errno));
	if (!alive(e))
		return nse_fail(err, errlen, ESRCH, "%s: no such process", L);
	/* From here on procfd is the pidfd's process (or reads fail: ESRCH). */

	static char text[65536];
	e->st.groups = calloc(MAX_GROUPS, sizeof(gid_t));
	if (!e->st.groups)
		return nse_fail(err, errlen, ENOMEM, "%s: out of memory", L);
	ssize_t n = nse_read_at(e->procfd, "status", text, sizeof(text));
	if (n < 0 || nse_parse_status(text, &e->st) < 0)
		return nse_fail(err, errlen, ESRCH, "%s: %s", L,
			    n == -ESRCH || n >= 0 ? "the process has ended" : strerror((int)-n));
	if (e->st.state == 'Z' || e->st.state == 'X')
		return nse_fail(err, errlen, ESRCH, "%s: the process has ended (a zombie)", L);

	for (size_t i = 0; i < N_NS; i++) {
		e->nsfd[i] = -1;
		int same = nse_ns_same(e->procfd, ns_list[i].name);
		if (same == -EACCES || same == -EPERM)
			return nse_fail(err, errlen, EPERM, "%s: permission denied (%s)", L,
				    e->privileged ? "it holds capabilities we lack, or an LSM refuses "
						    "access to it"
						  : "not root, and not the owner of its user namespace");
		if (same == -ENOENT || same == -ESRCH)
			return nse_fail(err, errlen, ESRCH, "%s: the process has ended", L);
		if (same < 0)
			return nse_fail(err, errlen, same, "%s: ns/%s: %s", L, ns_list[i].name,
				    strerror(-same));
		if (!same)
			e->differ |= ns_list[i].flag;
	}
	if (!e->privileged) {
		if (!(e->differ & CLONE_NEWUSER))
			return nse_fail(err, errlen, EPERM,
				    "%s: permission denied: entering its namespaces needs root (it is "
				    "not in a user namespace of yours)",
				    L);
		int ufd = openat(e->procfd, "ns/user", O_RDONLY | O_CLOEXEC);
		uid_t owner = (uid_t)-1;
		if (ufd < 0 || ioctl(ufd, NS_GET_OWNER_UID, &owner) < 0 || owner != geteuid()) {
			if (ufd >= 0)
				close(ufd);
			return nse_fail(err, errlen, EPERM,
				    "%s: permission denied: its user namespace belongs to uid %ld "
				    "(entering needs root, or that user)",
				    L, (long)(int)owner);
		}
		close(ufd);
	}
	if (e->pidfd < 0) {
		/* No pidfd: the namespaces one by one, opened while it lives. */
		for (size_t i = 0; i < N_NS; i++) {
			snprintf(path, sizeof(path), "ns/%s", ns_list[i].name);
			if ((e->differ & ns_list[i].flag) &&
			    (e->nsfd[i] = openat(e->procfd, path, O_RDONLY | O_CLOEXEC)) < 0)
				return nse_fail(err, errlen, errno, "%s: %s: %s", L, path,
					    strerror(errno));
		}
	}
	e->rootfd = openat(e->procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (e->rootfd < 0)
		return nse_fail(err, errlen, errno, "%s: cannot open its root directory: %s", L,
			    strerror(errno));

	n = nse_read_at(e->procfd, "cgroup", text, sizeof(text));
	if (n < 0)
		return nse_fail(err, errlen, ESRCH, "%s: the process has ended", L);
	if (e->t->expect_id && !strstr(text, e->t->expect_id))
		return nse_fail(err, errlen, ESRCH,
			    "%s: process %d is not this container's on this machine (a daemon on "
			    "another host, or in another PID namespace?): cannot bring the agent "
			    "in",
			    L, (int)e->pid);
	int r = nse_open_cgroups(e, text, err, errlen);
	if (r < 0)
		return r;
	nse_read_lsm(e);
	e->have_rl = true;
	for (int i = 0; i < RLIM_NLIMITS && e->have_rl; i++)
		if (prlimit(e->pid, i, NULL, &e->rl[i]) < 0)
			e->have_rl = false;
	e->hostproc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (e->hostproc < 0)
		return nse_fail(err, errlen, errno, "%s: /proc: %s", L, strerror(errno));

	if (!o->agent)
		return nse_fail(err, errlen, ENOENT,
			    "%s: cannot bring the agent in: wicketd-static was not found (build "
			    "with -Dstatic_agent=enabled, or set WICKETD_STATIC=PATH)",
			    L);
	char perr[400];
	e->agentfd = ctr_program_fd(o->agent, "wicketd", perr, sizeof(perr));
	if (e->agentfd < 0)
		return nse_fail(err, errlen, e->agentfd, "%s: cannot bring the agent in: %s", L, perr);
	if (o->tools) {
		e->toolsfd = ctr_program_fd(o->tools, "wicket-tools", perr, sizeof(perr));
		if (e->toolsfd < 0)
			return nse_fail(err, errlen, e->toolsfd, "%s: cannot bring the toolbox in: %s", L,
				    perr);
	}
	/* A file of ours (not a memfd copy) would be the host's binary at
	 * /proc/PID/exe inside: only for a container whose root is not ours. */
	if ((!is_memfd(e->agentfd) || (e->toolsfd >= 0 && !is_memfd(e->toolsfd))) &&
	    !(e->differ & CLONE_NEWUSER))
		return nse_fail(err, errlen, EPERM,
			    "%s: cannot bring the agent in: executable memfds are forbidden here "
			    "(vm.memfd_noexec), and showing it the host's own file would let its "
			    "root rewrite it (CVE-2019-5736)",
			    L);
	if (!alive(e))
		return nse_fail(err, errlen, ESRCH, "%s: the process has ended", L);
	return 0;
}

int ctr_enter(pid_t pid, const struct ctr_opts *o, const struct ctr_target *t, struct tp *out,
	      char *err, size_t errlen)
{
	struct entry e = { .t = t, .pid = pid, .pidfd = -1, .procfd = -1, .rootfd = -1,
			   .hostproc = -1, .agentfd = -1, .toolsfd = -1 };
	for (size_t i = 0; i < N_NS; i++)
		e.nsfd[i] = -1;
	int r = prepare(&e, o, err, errlen);
	if (r < 0) {
		entry_free(&e);
		return r;
	}
	int in[2], mid[2], outp[2], errp[2], rep[2];
	int *pipes[] = { in, mid, outp, errp, rep };
	size_t made = 0;
	for (; made < 5; made++)
		if (pipe2(pipes[made], O_CLOEXEC) < 0)
			break;
	pid_t a = made == 5 ? fork() : -1;
	if (a == 0) {
		struct afds f = { in[0], mid[0], mid[1], outp[1], errp[0], errp[1], rep[1] };
		relay_child(&e, &f);
	}
	int fe = errno;
	if (a < 0) {
		for (size_t i = 0; i < made; i++) {
			close(pipes[i][0]);
			close(pipes[i][1]);
		}
		entry_free(&e);
		return nse_fail(err, errlen, fe, "%s: cannot start the helper: %s", t->label,
			    strerror(fe));
	}
	entry_free(&e);
	close(in[0]);
	close(mid[0]);
	close(mid[1]);
	close(outp[1]);
	close(errp[0]);
	close(errp[1]);
	close(rep[1]);
	/* Until the agent runs (or one of the two says why not). */
	struct report rp = { 0 };
	size_t got = 0;
	struct pollfd pf = { .fd = rep[0], .events = POLLIN };
	int pr;
	while ((pr = poll(&pf, 1, START_TIMEOUT_MS)) > 0 || (pr < 0 && errno == EINTR)) {
		if (pr < 0)
			continue;
		ssize_t n = read(rep[0], (char *)&rp + got, sizeof(rp) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(rp))
			break;
	}
	close(rep[0]);
	if (got == sizeof(rp) || pr == 0) {
		if (pr == 0)
			snprintf(rp.msg, sizeof(rp.msg), "%s: the agent did not start within %d s",
				 t->label, START_TIMEOUT_MS / 1000);
		snprintf(err, errlen, "%s", rp.msg);
		close(in[1]);
		close(outp[0]);
		kill(a, SIGTERM);
		if (pr != 0)
			waitpid(a, NULL, 0);
		return rp.err > 0 ? -rp.err : -EIO;
	}
	*out = (struct tp){ .rfd = outp[0], .wfd = in[1], .pid = a };
	return 0;
}

int ctr_enter_check(pid_t pid, const struct ctr_opts *o, const struct ctr_target *t, char *err,
		    size_t errlen)
{
	struct entry e = { .t = t, .pid = pid, .pidfd = -1, .procfd = -1, .rootfd = -1,
			   .hostproc = -1, .agentfd = -1, .toolsfd = -1 };
	for (size_t i = 0; i < N_NS; i++)
		e.nsfd[i] = -1;
	int r = prepare(&e, o, err, errlen);
	entry_free(&e);
	return r;
}

/* pid/PID */
int ctr_pid_open(const char *spec, const struct ctr_opts *o, struct tp *out, char *err,
		 size_t errlen)
{
	char *end;
	errno = 0;
	long v = strtol(spec, &end, 10);
	if (spec[0] < '1' || spec[0] > '9' || *end || errno || v <= 0 || v > INT_MAX) {
		snprintf(err, errlen, "%s: expected pid/PID with PID a process id", o->label);
		return -EINVAL;
	}
	struct ctr_target t = { .label = o->label, .ended = "the process ended" };
	return ctr_enter((pid_t)v, o, &t, out, err, errlen);
}
