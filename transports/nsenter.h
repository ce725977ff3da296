/* SPDX-License-Identifier: MIT */
/*
 * Inside transports/: what nsenter.c (the processes) and nsenter_proc.c
 * (reading the process's /proc, cgroups and LSM label with the host's
 * view) share.
 */
#ifndef WICKET_NSENTER_H
#define WICKET_NSENTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "ctr_enter.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define MAX_GROUPS 4096
#define MAX_CGROUPS 24

struct pstatus {
	char state;
	unsigned long uid[4], gid[4]; /* real, effective, saved, fs */
	gid_t *groups;
	int ngroups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd;
};

enum lsm_kind { LSM_NONE, LSM_APPARMOR, LSM_APPARMOR_LEGACY, LSM_SELINUX };

#define N_NS 8 /* ns_list in nsenter.c */

struct entry {
	const struct ctr_target *t;
	pid_t pid;
	int pidfd, procfd, rootfd, hostproc, agentfd, toolsfd;
	int nsfd[N_NS];	 /* only without pidfd setns */
	int differ;	 /* CLONE_NEW* flags of the namespaces not ours */
	bool privileged; /* CAP_SYS_ADMIN here: root */
	struct pstatus st; /* as we see it (host ids) */
	int cgfd[MAX_CGROUPS];
	char cgwhat[MAX_CGROUPS][96];
	int ncg;
	enum lsm_kind lsm;
	char label[512];
	bool have_rl;
	struct rlimit rl[RLIM_NLIMITS];
};

/* Read all of @name under @dirfd (NUL-terminated).  Length, or -errno. */
ssize_t nse_read_at(int dirfd, const char *name, char *buf, size_t len);
/* /proc/PID/status text: state, ids, groups, capability sets. */
int nse_parse_status(const char *text, struct pstatus *s);
/* 1 when our namespace @name is the process's (or the kernel has no such
 * kind), 0 when not, -errno. */
int nse_ns_same(int procfd, const char *name);
/* The cgroup.procs file of each hierarchy the process is in (see there). */
int nse_open_cgroups(struct entry *e, const char *cg, char *err, size_t errlen);
/* Its AppArmor profile or SELinux context, when an LSM labels it. */
void nse_read_lsm(struct entry *e);
/* @err set from @fmt; returns -@e. */
__attribute__((format(printf, 4, 5))) int nse_fail(char *err, size_t errlen, int e,
						   const char *fmt, ...);

#endif
