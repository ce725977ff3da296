/* SPDX-License-Identifier: MIT */
/*
 * k8s/[NS/]POD[/CONTAINER]: an agent in a Kubernetes pod, reached with
 * kubectl (which reads $KUBECONFIG and --context itself).  The opener is
 * ctr_k8s_open() (ctr.h); these are its pure parts, for tests: the target
 * spec, the kubectl argument vectors (never a shell), and what kubectl's
 * error text means.
 */
#ifndef WICKET_K8S_H
#define WICKET_K8S_H

#include <stdbool.h>
#include <stddef.h>

struct k8s_target {
	char ns[64];	    /* "" = kubectl's default (the context's namespace) */
	char pod[254];
	char container[64]; /* "" = the pod's default container */
};

/*
 * k8s/POD, k8s/NS/POD or k8s/NS/POD/CONTAINER (@spec is what follows
 * "k8s/").  Names are checked as Kubernetes checks them (lowercase
 * DNS labels; a pod name may hold dots), so none can pass for a kubectl
 * option.  0, or -1 with a message starting with @label in @err.
 */
int k8s_parse(const char *spec, const char *label, struct k8s_target *t, char *err,
	      size_t errlen);

/* Where an --agent-image keeps its programs (the image holds nothing else). */
#define K8S_IMAGE_AGENT "/wicketd-static"
#define K8S_IMAGE_TOOLBOX "/busybox"

enum k8s_cmd {
	K8S_PROBE, /* exec POD -- wicketd --version: has the container an agent? */
	K8S_EXEC,  /* exec -i POD -- wicketd --stdio: the stream */
	K8S_GET,   /* get pod POD -o jsonpath=...: what the debug path needs */
	K8S_DEBUG, /* debug POD --image=... -i --attach: the static agent, brought in */
};

struct k8s_debug_opts {
	const char *image;  /* --agent-image */
	const char *target; /* the container whose processes (and root) to share */
	bool tools;	    /* --tools: the image's K8S_IMAGE_TOOLBOX as the toolbox */
};

#define K8S_ARGV_MAX 40
struct k8s_argv {
	char *v[K8S_ARGV_MAX + 1]; /* NULL-terminated */
	int n;
	char buf[2048]; /* the strings v points into that are not constants */
	size_t used;
	bool overflow;
};

/* The kubectl argv of @cmd (@d only for K8S_DEBUG); 0, or -1 if it did not fit. */
int k8s_argv_build(enum k8s_cmd cmd, const struct k8s_target *t, const char *context,
		   const struct k8s_debug_opts *d, struct k8s_argv *a);

/* The K8S_GET answer, one field a line. */
struct k8s_pod_info {
	bool share_pid;	    /* spec.shareProcessNamespace */
	char container[64]; /* the annotated default container, else the first one */
	char phase[32];
};
int k8s_parse_pod_info(const char *out, struct k8s_pod_info *pi);

enum k8s_failure {
	K8S_FAIL_OTHER,
	K8S_FAIL_NO_AGENT,		/* exec: the container has no wicketd */
	K8S_FAIL_EPHEMERAL_FORBIDDEN,	/* debug: RBAC or admission refused it */
	K8S_FAIL_EPHEMERAL_DISABLED,	/* debug: the cluster has no ephemeral containers */
	K8S_FAIL_OLD_KUBECTL,		/* a flag we use is unknown to this kubectl */
};
/* What kubectl's stderr @text (and its exit @status, -1 unknown) means. */
enum k8s_failure k8s_classify(const char *text, int status);
/* The last non-empty line of @text, without kubectl's "error: " prefix. */
void k8s_last_line(const char *text, char *out, size_t n);

#endif
