/* SPDX-License-Identifier: MIT */
#include "sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>
#include <linux/capability.h>

#include "config.h"
#include "log.h"

#ifdef HAVE_SECCOMP
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/stat.h>
#endif

/*
 * What every C program here needs from the kernel: malloc (brk, anonymous
 * mmap without PROT_EXEC, mremap, madvise for trimming), exit, and the
 * return from a signal handler.  No mapping can ever become executable.
 */
SYSCALLS(libc) = {
	SC("brk"),
	SC_MASKED("mmap", 2, PROT_EXEC, 0),
	SC_MASKED("mprotect", 2, PROT_EXEC, 0),
	SC("munmap"),
	SC("mremap"),
	SC("madvise"),
	SC("exit"),
	SC("exit_group"),
	SC("rt_sigreturn"),
	SC("restart_syscall"),
	SC_END,
};

bool sandbox_available(void)
{
#ifdef HAVE_SECCOMP
	return true;
#else
	return false;
#endif
}

/* ---- profile bookkeeping (also without libseccomp, for --print-syscalls) ---- */

#define SANDBOX_MAX_NAMES 256

/* Distinct names of a profile, in first-seen order; returns the count. */
static unsigned profile_names(const struct sandbox_profile *p, const char **names, unsigned max)
{
	unsigned n = 0;
	for (const struct syscall_rule *const *l = p->lists; *l; l++) {
		for (const struct syscall_rule *r = *l; r->name; r++) {
#ifdef HAVE_SECCOMP
			if (seccomp_syscall_resolve_name(r->name) == __NR_SCMP_ERROR)
				continue; /* not on this architecture */
#endif
			bool seen = false;
			for (unsigned i = 0; i < n && !seen; i++)
				seen = strcmp(names[i], r->name) == 0;
			if (!seen && n < max)
				names[n++] = r->name;
		}
	}
	return n;
}

static void print_cond(FILE *f, const struct syscall_cond *c)
{
	if (c->cmp == SC_CMP_EQ)
		fprintf(f, "arg%u == %#llx", c->arg, c->a);
	else if (c->cmp == SC_CMP_GE)
		fprintf(f, "arg%u >= %llu", c->arg, c->a);
	else
		fprintf(f, "(arg%u & %#llx) == %#llx", c->arg, c->a, c->b);
}

void sandbox_print(FILE *f, const struct sandbox_profile *p)
{
	const char *names[SANDBOX_MAX_NAMES];
	unsigned n = profile_names(p, names, SANDBOX_MAX_NAMES);
	fprintf(f, "%s: %u syscalls%s\n", p->name, n,
		sandbox_available() ? "" : " (not enforced: built without libseccomp)");
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, "  %s", names[i]);
		/* Argument rules: alternatives, unless one rule has none. */
		bool any = false, first = true;
		for (const struct syscall_rule *const *l = p->lists; *l && !any; l++)
			for (const struct syscall_rule *r = *l; r->name && !any; r++)
				if (strcmp(r->name, names[i]) == 0 && !r->cond[0].cmp)
					any = true;
		if (!any) {
			for (const struct syscall_rule *const *l = p->lists; *l; l++) {
				for (const struct syscall_rule *r = *l; r->name; r++) {
					if (strcmp(r->name, names[i]) != 0)
						continue;
					fputs(first ? " only if " : " or ", f);
					first = false;
					print_cond(f, &r->cond[0]);
					if (r->cond[1].cmp) {
						fputs(" and ", f);
						print_cond(f, &r->cond[1]);
					}
				}
			}
		}
		fputc('\n', f);
	}
	if (p->refuse) {
		fprintf(f, "  refused with errno %d (not killed):", p->refuse_errno);
		for (const struct syscall_rule *r = p->refuse; r->name; r++)
			fprintf(f, " %s", r->name);
		fputc('\n', f);
	}
}

/* ---- isolation ---- */

static int set_limit(int res, rlim_t v)
{
	struct rlimit rl = { v, v };
	if (setrlimit(res, &rl) == 0)
		return 0;
	/* Cannot raise the hard limit (not root): take what there is. */
	struct rlimit cur;
	if (getrlimit(res, &cur) < 0)
		return -errno;
	if (cur.rlim_max < v) {
		rl.rlim_cur = rl.rlim_max = cur.rlim_max;
		if (setrlimit(res, &rl) == 0)
			return 0;
	}
	return -errno;
}

static int drop_caps(bool keep_bind)
{
	/* Bounding set first (needs CAP_SETPCAP), then the process's sets. */
	for (unsigned long cap = 0; cap <= 63; cap++) {
		if (keep_bind && cap == CAP_NET_BIND_SERVICE)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
			break; /* past the last capability */
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (keep_bind) {
		d[0].effective = d[0].permitted = 1u << CAP_NET_BIND_SERVICE;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

#ifdef HAVE_SECCOMP
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const struct syscall_rule *r)
{
	int nr = seccomp_syscall_resolve_name(r->name);
	if (nr == __NR_SCMP_ERROR)
		return 0;
	struct scmp_arg_cmp cmp[2];
	unsigned nc = 0;
	for (unsigned i = 0; i < 2 && r->cond[i].cmp; i++) {
		const struct syscall_cond *c = &r->cond[i];
		if (c->cmp == SC_CMP_EQ)
			cmp[nc++] = (struct scmp_arg_cmp){ c->arg, SCMP_CMP_EQ, c->a, 0 };
		else if (c->cmp == SC_CMP_GE)
			cmp[nc++] = (struct scmp_arg_cmp){ c->arg, SCMP_CMP_GE, c->a, 0 };
		else
			cmp[nc++] = (struct scmp_arg_cmp){ c->arg, SCMP_CMP_MASKED_EQ, c->a, c->b };
	}
	int e = seccomp_rule_add_array(ctx, action, nr, nc, cmp);
	if (e == -EEXIST)
		e = 0;
	if (e < 0)
		log_err("seccomp: rule for %s: %s", r->name, strerror(-e));
	return e;
}

/* Debug mode only (see sandbox.h): name the syscall, then die. */
static void sigsys_report(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char msg[64] = "sandbox: forbidden syscall number ";
	size_t n = strlen(msg);
	char digits[12];
	int k = 0;
	unsigned v = (unsigned)si->si_syscall;
	do
		digits[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < 11);
	while (k)
		msg[n++] = digits[--k];
	msg[n++] = '\n';
	ssize_t w = write(2, msg, n);
	(void)w;
	_exit(159);
}

static bool debug_mode(void)
{
	const char *t = getenv("WICKETD_TESTING"), *h = getenv("WICKET_TESTING");
	const char *d = getenv("WICKET_SECCOMP_DEBUG");
	bool testing = (t && strcmp(t, "1") == 0) || (h && strcmp(h, "1") == 0);
	return testing && d && strcmp(d, "1") == 0;
}

static scmp_filter_ctx build_filter(const struct sandbox_profile *p, int *err)
{
	scmp_filter_ctx ctx = seccomp_init(debug_mode() ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		*err = -ENOMEM;
		return NULL;
	}
	int e = 0;
	for (const struct syscall_rule *const *l = p->lists; *l && !e; l++)
		for (const struct syscall_rule *r = *l; r->name && !e; r++)
			e = add_rule(ctx, SCMP_ACT_ALLOW, r);
	for (const struct syscall_rule *r = p->refuse; r && r->name && !e; r++)
		e = add_rule(ctx, SCMP_ACT_ERRNO((uint32_t)p->refuse_errno), r);
	if (e) {
		seccomp_release(ctx);
		*err = e;
		return NULL;
	}
	return ctx;
}

/*
 * One profile's filter compiled to BPF ahead of time (sandbox_prepare()):
 * libseccomp's compiler costs milliseconds per process under emulation,
 * and every connection's worker would pay it again.
 */
static struct {
	const struct sandbox_profile *profile;
	struct sock_fprog prog;
} prepared;

void sandbox_prepare(const struct sandbox_profile *p)
{
	if (prepared.profile == p)
		return;
	int e = 0;
	scmp_filter_ctx ctx = build_filter(p, &e);
	if (!ctx)
		return; /* sandbox_isolate() reports it */
	int fd = memfd_create("wicketd-bpf", MFD_CLOEXEC);
	struct stat st;
	void *f = NULL;
	if (fd >= 0 && seccomp_export_bpf(ctx, fd) == 0 && fstat(fd, &st) == 0 &&
	    st.st_size > 0 && st.st_size % sizeof(struct sock_filter) == 0 &&
	    st.st_size / sizeof(struct sock_filter) <= USHRT_MAX && (f = malloc((size_t)st.st_size)) &&
	    pread(fd, f, (size_t)st.st_size, 0) == st.st_size) {
		free(prepared.prog.filter);
		prepared.profile = p;
		prepared.prog = (struct sock_fprog){
			.len = (unsigned short)(st.st_size / sizeof(struct sock_filter)), .filter = f
		};
		f = NULL;
	}
	free(f);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
}

static int load_filter(const struct sandbox_profile *p)
{
	if (debug_mode()) {
		struct sigaction sa = { .sa_sigaction = sigsys_report, .sa_flags = SA_SIGINFO };
		sigaction(SIGSYS, &sa, NULL);
	}
	/* NO_NEW_PRIVS is set: what seccomp_load() would do, minus compiling. */
	if (prepared.profile == p)
		return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prepared.prog, 0, 0) < 0 ? -errno
											      : 0;
	int e = 0;
	scmp_filter_ctx ctx = build_filter(p, &e);
	if (!ctx)
		return e;
	e = seccomp_load(ctx);
	seccomp_release(ctx);
	return e;
}
#else
void sandbox_prepare(const struct sandbox_profile *p)
{
	(void)p;
}
#endif

int sandbox_isolate(const struct sandbox_opts *o)
{
	int e;
	if (o->nofile && (e = set_limit(RLIMIT_NOFILE, o->nofile)) < 0) {
		log_err("sandbox: RLIMIT_NOFILE: %s", strerror(-e));
		return e;
	}
	set_limit(RLIMIT_CORE, 0);
	set_limit(RLIMIT_MEMLOCK, 0);
	set_limit(RLIMIT_MSGQUEUE, 0);
	set_limit(RLIMIT_LOCKS, 0);
	if (o->no_files)
		set_limit(RLIMIT_FSIZE, 0);
	if (o->drop_user && geteuid() == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
		    setresuid(o->uid, o->uid, o->uid) < 0) {
			e = -errno;
			log_err("sandbox: cannot become uid %u: %s", (unsigned)o->uid, strerror(errno));
			return e;
		}
	}
#ifndef __SANITIZE_ADDRESS__
	/* After the user switch: RLIMIT_NPROC would fail setresuid() otherwise.
	 * (Not under ASan: LeakSanitizer clones a tracer at exit.) */
	if (o->no_fork)
		set_limit(RLIMIT_NPROC, 0);
#endif
	if (o->drop_caps) {
		e = drop_caps(o->keep_bind_service && geteuid() == 0);
		if (e < 0 && e != -EPERM) {
			log_err("sandbox: dropping capabilities: %s", strerror(-e));
			return e;
		}
	}
#ifndef __SANITIZE_ADDRESS__
	/* Not under ASan: LeakSanitizer ptraces its own process at exit. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		e = -errno;
		log_err("sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return e;
	}
	if (!o->seccomp)
		return 0;
#ifdef HAVE_SECCOMP
	e = load_filter(o->profile);
	if (e < 0) {
		log_err("sandbox: loading the seccomp filter: %s", strerror(-e));
		return e;
	}
#endif
	return 0;
}
