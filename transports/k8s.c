/* SPDX-License-Identifier: MIT */
/*
 * k8s/[NS/]POD[/CONTAINER] (see k8s.h).  Two ways in, both kubectl with
 * an argument vector:
 *
 *   the container's own wicketd:  kubectl exec -i POD -- wicketd --stdio
 *     (found by a first "wicketd --version" through the same exec);
 *   else an ephemeral debug container from --agent-image, an image holding
 *   only the static agent:  kubectl debug POD --image=IMAGE --target=C -i
 *     --attach ... -- /wicketd-static --stdio --session-root /proc/1/root
 *   It shares C's process namespace, so C's first process is PID 1 there
 *   and C's files are /proc/1/root: the agent chroots its sessions and
 *   sftp into that.  --greet-after-peer, because what a container writes
 *   before kubectl attaches is lost; --keep-labels=true, because newer
 *   kubectl strips the pod's labels (taking it out of its Service and
 *   ReplicaSet) unless told not to.
 *
 * kubectl exits 0 when a stream drops (kubectl#1208): nothing here trusts
 * its exit status for the session; the client's exit status comes from the
 * agent's exit-status, and a stream that ends without one is 255.
 */
#include "k8s.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctr.h"
#include "tp.h"

/* ---- the target ---- */

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A DNS-1123 label: 1-63 of [a-z0-9-], starting and ending alphanumeric. */
static bool dns_label(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* A DNS-1123 subdomain: labels joined by dots, 253 bytes at most. */
static bool dns_subdomain(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!dns_label(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

int k8s_parse(const char *spec, const char *label, struct k8s_target *t, char *err,
	      size_t errlen)
{
	static const char forms[] = "k8s/POD, k8s/NAMESPACE/POD or k8s/NAMESPACE/POD/CONTAINER";
	memset(t, 0, sizeof(*t));
	const char *part[4];
	size_t len[4];
	int n = 0;
	for (const char *p = spec;; n++) {
		if (n == 3) {
			snprintf(err, errlen, "%s: too many '/' parts (%s)", label, forms);
			return -1;
		}
		const char *slash = strchr(p, '/');
		part[n] = p;
		len[n] = slash ? (size_t)(slash - p) : strlen(p);
		if (!len[n]) {
			snprintf(err, errlen, "%s: an empty name (%s)", label, forms);
			return -1;
		}
		if (!slash) {
			n++;
			break;
		}
		p = slash + 1;
	}
	/* One part is the pod; with two or three the namespace comes first. */
	int ipod = n == 1 ? 0 : 1;
	struct {
		int i;
		const char *what, *rule;
		bool sub;
		char *dst;
		size_t cap;
	} f[] = {
		{ ipod, "pod", "lowercase letters, digits, '-' and '.', at most 253", true, t->pod,
		  sizeof(t->pod) },
		{ n > 1 ? 0 : -1, "namespace", "lowercase letters, digits and '-', at most 63",
		  false, t->ns, sizeof(t->ns) },
		{ n > 2 ? 2 : -1, "container", "lowercase letters, digits and '-', at most 63",
		  false, t->container, sizeof(t->container) },
	};
	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		int i = f[k].i;
		if (i < 0)
			continue;
		bool ok = f[k].sub ? dns_subdomain(part[i], len[i]) : dns_label(part[i], len[i]);
		if (!ok || len[i] >= f[k].cap) {
			snprintf(err, errlen, "%s: '%.*s' is not a %s name (%s)", label, (int)len[i],
				 part[i], f[k].what, f[k].rule);
			return -1;
		}
		memcpy(f[k].dst, part[i], len[i]);
		f[k].dst[len[i]] = 0;
	}
	return 0;
}

/* ---- argument vectors ---- */

static void arg(struct k8s_argv *a, const char *s)
{
	if (a->n >= K8S_ARGV_MAX) {
		a->overflow = true;
		return;
	}
	a->v[a->n++] = (char *)s;
	a->v[a->n] = NULL;
}

__attribute__((format(printf, 2, 3))) static void argf(struct k8s_argv *a, const char *fmt, ...)
{
	char *dst = a->buf + a->used;
	size_t room = sizeof(a->buf) - a->used;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= room) {
		a->overflow = true;
		return;
	}
	a->used += (size_t)w + 1;
	arg(a, dst);
}

/* Values go in --flag=VALUE form: nothing the user wrote can become a flag. */
int k8s_argv_build(enum k8s_cmd cmd, const struct k8s_target *t, const char *context,
		   const struct k8s_debug_opts *d, struct k8s_argv *a)
{
	memset(a, 0, sizeof(*a));
	arg(a, "kubectl");
	if (context)
		argf(a, "--context=%s", context);
	if (t->ns[0])
		argf(a, "--namespace=%s", t->ns);
	switch (cmd) {
	case K8S_PROBE:
	case K8S_EXEC:
		arg(a, "exec");
		if (cmd == K8S_EXEC)
			arg(a, "-i");
		arg(a, t->pod);
		if (t->container[0])
			argf(a, "--container=%s", t->container);
		arg(a, "--");
		arg(a, "wicketd");
		arg(a, cmd == K8S_EXEC ? "--stdio" : "--version");
		break;
	case K8S_GET:
		arg(a, "get");
		arg(a, "pod");
		arg(a, t->pod);
		arg(a, "--output=jsonpath={.spec.shareProcessNamespace}{\"\\n\"}"
		       "{.metadata.annotations.kubectl\\.kubernetes\\.io/default-container}{\"\\n\"}"
		       "{.spec.containers[0].name}{\"\\n\"}{.status.phase}{\"\\n\"}");
		break;
	case K8S_DEBUG:
		if (!d || !d->image || !d->target)
			return -1;
		arg(a, "debug");
		arg(a, t->pod);
		argf(a, "--image=%s", d->image);
		argf(a, "--target=%s", d->target);
		/* SYS_PTRACE: /proc/1/root of a target with capabilities we lack. */
		arg(a, "--profile=general");
		arg(a, "--keep-labels=true");
		arg(a, "--stdin=true");
		arg(a, "--tty=false");
		/* Without it kubectl prints notes on stdout: into the stream. */
		arg(a, "--quiet=true");
		arg(a, "--attach=true");
		arg(a, "--");
		arg(a, K8S_IMAGE_AGENT);
		arg(a, "--stdio");
		arg(a, "--session-root");
		arg(a, "/proc/1/root");
		arg(a, "--greet-after-peer");
		if (d->tools) {
			arg(a, "--toolbox");
			arg(a, K8S_IMAGE_TOOLBOX);
		}
		break;
	}
	return a->overflow ? -1 : 0;
}

int k8s_parse_pod_info(const char *out, struct k8s_pod_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	char lines[4][256] = { { 0 } };
	const char *p = out;
	for (int i = 0; i < 4; i++) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			return -1;
		size_t n = (size_t)(nl - p);
		if (n >= sizeof(lines[i]))
			return -1;
		memcpy(lines[i], p, n);
		p = nl + 1;
	}
	pi->share_pid = strcmp(lines[0], "true") == 0;
	const char *c = lines[1][0] ? lines[1] : lines[2];
	if (!dns_label(c, strlen(c)) || strlen(c) >= sizeof(pi->container))
		return -1;
	memcpy(pi->container, c, strlen(c) + 1);
	if (strlen(lines[3]) >= sizeof(pi->phase))
		return -1;
	memcpy(pi->phase, lines[3], strlen(lines[3]) + 1);
	return 0;
}

enum k8s_failure k8s_classify(const char *text, int status)
{
	if (strcasestr(text, "unknown flag"))
		return K8S_FAIL_OLD_KUBECTL;
	if (strcasestr(text, "ephemeral containers are disabled"))
		return K8S_FAIL_EPHEMERAL_DISABLED;
	if (strcasestr(text, "forbidden") &&
	    (strcasestr(text, "ephemeralcontainers") || strcasestr(text, "ephemeral container") ||
	     strcasestr(text, "podsecurity")))
		return K8S_FAIL_EPHEMERAL_FORBIDDEN;
	if (strcasestr(text, "executable file not found") ||
	    (strstr(text, "wicketd") &&
	     (strcasestr(text, "no such file") || strcasestr(text, "not found"))) ||
	    strstr(text, "exit code 126") || strstr(text, "exit code 127") || status == 126 ||
	    status == 127)
		return K8S_FAIL_NO_AGENT;
	return K8S_FAIL_OTHER;
}

void k8s_last_line(const char *text, char *out, size_t n)
{
	const char *end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	const char *start = end;
	while (start > text && start[-1] != '\n')
		start--;
	if (strncmp(start, "error: ", 7) == 0)
		start += 7;
	snprintf(out, n, "%.*s", (int)(end - start), start);
	if (!out[0])
		snprintf(out, n, "(no message)");
}

/* ---- running kubectl ---- */

/* How long a probe (exec --version, get pod) may take. */
#define K8S_RUN_TIMEOUT_MS 60000
/*
 * kubectl debug: a refusal (RBAC, admission, no such pod) comes back within
 * this, before the container could have started; we wait that long to
 * report it as our own error.  Later messages go through the relay.
 */
#define K8S_DEBUG_SETTLE_MS 2000

struct k8s_run {
	char out[4096];
	size_t outn;
	char err[8192]; /* the last bytes of kubectl's stderr */
	size_t errn;
	int status;	/* exit status, 128+N for a signal */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keep the last bytes: kubectl's error is its last line. */
static void keep_tail(char *buf, size_t cap, size_t *n, const char *p, size_t k)
{
	if (k >= cap - 1) {
		p += k - (cap - 1);
		k = cap - 1;
	}
	if (*n + k > cap - 1) {
		size_t drop = *n + k - (cap - 1);
		memmove(buf, buf + drop, *n - drop);
		*n -= drop;
	}
	memcpy(buf + *n, p, k);
	*n += k;
	buf[*n] = 0;
}

static bool kubectl_missing(int e, const char *label, char *err, size_t errlen)
{
	if (e != ENOENT)
		return false;
	snprintf(err, errlen,
		 "%s: kubectl is not installed (k8s/ targets run it; $KUBECONFIG and --context "
		 "pick the cluster)",
		 label);
	return true;
}

/* Run @argv to the end, stdin at EOF, stdout and stderr captured. */
static int k8s_run(char *const *argv, struct k8s_run *r, const char *label, char *err,
		   size_t errlen)
{
	memset(r, 0, sizeof(*r));
	int pe[2];
	if (pipe2(pe, O_CLOEXEC) < 0)
		goto fail;
	struct tp t;
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	/* tp_argv_spawn gives us stdin/stdout; stderr is ours to place. */
	if (saved < 0 || dup2(pe[1], 2) < 0) {
		int e = errno;
		close(pe[0]);
		close(pe[1]);
		if (saved >= 0)
			close(saved);
		errno = e;
		goto fail;
	}
	char tperr[256];
	int sr = tp_argv_spawn(argv, &t, tperr, sizeof(tperr));
	dup2(saved, 2);
	close(saved);
	close(pe[1]);
	if (sr < 0) {
		close(pe[0]);
		if (!kubectl_missing(-sr, label, err, errlen))
			snprintf(err, errlen, "%s: %s", label, tperr);
		return -1;
	}
	close(t.wfd); /* stdin: EOF at once */
	t.wfd = -1;
	int64_t deadline = now_ms() + K8S_RUN_TIMEOUT_MS;
	bool out_eof = false, err_eof = false;
	while (!out_eof || !err_eof) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			snprintf(err, errlen, "%s: kubectl did not answer within %d s", label,
				 K8S_RUN_TIMEOUT_MS / 1000);
			close(pe[0]);
			tp_close(&t);
			return -1;
		}
		struct pollfd p[2] = { { .fd = out_eof ? -1 : t.rfd, .events = POLLIN },
				       { .fd = err_eof ? -1 : pe[0], .events = POLLIN } };
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		char buf[4096];
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				*(i ? &err_eof : &out_eof) = true;
			} else if (i == 0) {
				size_t room = sizeof(r->out) - 1 - r->outn;
				size_t k = (size_t)n < room ? (size_t)n : room;
				memcpy(r->out + r->outn, buf, k);
				r->outn += k;
				r->out[r->outn] = 0;
			} else {
				keep_tail(r->err, sizeof(r->err), &r->errn, buf, (size_t)n);
			}
		}
	}
	close(pe[0]);
	close(t.rfd);
	t.rfd = -1;
	int st = 0;
	while (waitpid(t.pid, &st, 0) < 0 && errno == EINTR) {
	}
	t.pid = 0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot run kubectl: %s", label, strerror(errno));
	return -1;
}

/* "LABEL: WHAT: kubectl's last line", with the hint each failure deserves. */
static void report(const char *label, const char *what, const char *text, int status, char *err,
		   size_t errlen)
{
	char last[512];
	k8s_last_line(text, last, sizeof(last));
	const char *hint = "";
	switch (k8s_classify(text, status)) {
	case K8S_FAIL_EPHEMERAL_FORBIDDEN:
		hint = " -- the cluster does not let you add an ephemeral debug container to this "
		       "pod (you need 'patch' on pods/ephemeralcontainers, and the namespace's "
		       "Pod Security level must admit it); install wicketd in the image instead";
		break;
	case K8S_FAIL_EPHEMERAL_DISABLED:
		hint = " -- this cluster has no ephemeral containers (Kubernetes before 1.23, or "
		       "the feature is off); install wicketd in the image instead";
		break;
	case K8S_FAIL_OLD_KUBECTL:
		hint = " -- this kubectl is too old for a flag wicket passes (use kubectl 1.30 "
		       "or newer)";
		break;
	default:
		break;
	}
	snprintf(err, errlen, "%s: %s: %s%s", label, what, last, hint);
}

/*
 * After the settle time, kubectl's stderr goes through this process to
 * ours (the terminal, or the mux's log), and a refusal that comes late
 * still gets its explanation.  Double-forked: nobody need reap it.
 */
static void start_relay(int efd, const char *label, const char *early, size_t earlyn)
{
	pid_t pid = fork();
	if (pid < 0)
		return;
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		return;
	}
	if (tp_detach_helpers)
		setsid();
	if (fork() != 0)
		_exit(0);
	/* Only stderr and the pipe: the stream's descriptors and our caller's
	 * stdin and stdout must close with their real owners, not linger here. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (dup2(efd, 3) < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0)
		_exit(1);
	syscall(SYS_close_range, 4u, ~0u, 0u);
	signal(SIGPIPE, SIG_IGN);
	static char tail[8192];
	size_t tn = 0;
	if (earlyn) {
		ssize_t w = write(2, early, earlyn);
		(void)w;
		keep_tail(tail, sizeof(tail), &tn, early, earlyn);
	}
	char buf[4096];
	for (;;) {
		ssize_t n = read(3, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ssize_t w = write(2, buf, (size_t)n);
		(void)w;
		keep_tail(tail, sizeof(tail), &tn, buf, (size_t)n);
	}
	enum k8s_failure f = k8s_classify(tail, -1);
	if (f == K8S_FAIL_EPHEMERAL_FORBIDDEN || f == K8S_FAIL_EPHEMERAL_DISABLED ||
	    f == K8S_FAIL_OLD_KUBECTL) {
		char msg[1024];
		report(label, "kubectl debug failed", tail, -1, msg, sizeof(msg));
		dprintf(2, "wicket: %s\n", msg);
	}
	_exit(0);
}

/* The debug path: the static agent in an ephemeral container. */
static int k8s_debug(const struct k8s_target *t, const struct ctr_opts *o, struct tp *out,
		     char *err, size_t errlen)
{
	struct k8s_argv a;
	struct k8s_run r;
	if (k8s_argv_build(K8S_GET, t, o->context, NULL, &a) < 0 ||
	    k8s_run(a.v, &r, o->label, err, errlen) < 0)
		return -EIO;
	if (r.status != 0) {
		report(o->label, "cannot read the pod", r.err, r.status, err, errlen);
		return -EIO;
	}
	struct k8s_pod_info pi;
	if (k8s_parse_pod_info(r.out, &pi) < 0) {
		snprintf(err, errlen, "%s: kubectl get pod gave an answer wicket does not understand",
			 o->label);
		return -EPROTO;
	}
	if (strcmp(pi.phase, "Running") != 0) {
		snprintf(err, errlen, "%s: the pod is %s, not Running", o->label,
			 pi.phase[0] ? pi.phase : "in no phase yet");
		return -EAGAIN;
	}
	if (pi.share_pid) {
		/* One namespace for the whole pod: PID 1 is the pause container. */
		snprintf(err, errlen,
			 "%s: the pod shares one process namespace (shareProcessNamespace: true), so "
			 "the debug container cannot tell which root is the container's; not "
			 "supported (install wicketd in the image)",
			 o->label);
		return -ENOTSUP;
	}
	struct k8s_debug_opts d = { .image = o->agent_image,
				    .target = t->container[0] ? t->container : pi.container,
				    .tools = o->tools != NULL };
	if (k8s_argv_build(K8S_DEBUG, t, o->context, &d, &a) < 0) {
		snprintf(err, errlen, "%s: the kubectl command line is too long", o->label);
		return -E2BIG;
	}
	int pe[2];
	if (pipe2(pe, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: pipe: %s", o->label, strerror(errno));
		return -errno;
	}
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (saved < 0 || dup2(pe[1], 2) < 0) {
		snprintf(err, errlen, "%s: dup: %s", o->label, strerror(errno));
		close(pe[0]);
		close(pe[1]);
		if (saved >= 0)
			close(saved);
		return -EIO;
	}
	char tperr[256];
	int sr = tp_argv_spawn(a.v, out, tperr, sizeof(tperr));
	dup2(saved, 2);
	close(saved);
	close(pe[1]);
	if (sr < 0) {
		close(pe[0]);
		if (!kubectl_missing(-sr, o->label, err, errlen))
			snprintf(err, errlen, "%s: %s", o->label, tperr);
		return sr;
	}
	/* A refusal arrives quickly, and kubectl then exits: ours to report. */
	size_t en = 0;
	static char early[8192];
	early[0] = 0;
	int64_t deadline = now_ms() + K8S_DEBUG_SETTLE_MS;
	bool eof = false;
	for (int64_t left; !eof && (left = deadline - now_ms()) > 0;) {
		struct pollfd p = { .fd = pe[0], .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char buf[4096];
		ssize_t n = read(pe[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			eof = true;
		else
			keep_tail(early, sizeof(early), &en, buf, (size_t)n);
	}
	if (eof) {
		int st = 0;
		pid_t w = waitpid(out->pid, &st, WNOHANG);
		if (w == 0) {
			/* stderr closed but still running: give it a moment to exit. */
			struct timespec ts = { 0, 200 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			w = waitpid(out->pid, &st, WNOHANG);
		}
		if (w == out->pid) {
			out->pid = 0;
			close(pe[0]);
			tp_close(out);
			report(o->label, "kubectl debug failed", early,
			       WIFEXITED(st) ? WEXITSTATUS(st) : -1, err, errlen);
			return -EIO;
		}
	}
	start_relay(pe[0], o->label, early, en);
	close(pe[0]);
	return 0;
}

int ctr_k8s_open(const char *spec, const struct ctr_opts *o, struct tp *out, char *err,
		 size_t errlen)
{
	struct k8s_target t;
	if (k8s_parse(spec, o->label, &t, err, errlen) < 0)
		return -EINVAL;
	const char *why = NULL;
	char last[512] = "";
	if (o->tools) {
		why = "--tools needs the debug container";
	} else {
		struct k8s_argv a;
		struct k8s_run r;
		if (k8s_argv_build(K8S_PROBE, &t, o->context, NULL, &a) < 0 ||
		    k8s_run(a.v, &r, o->label, err, errlen) < 0)
			return -EIO;
		if (r.status == 0 && strncmp(r.out, "wicketd ", 8) == 0) {
			if (k8s_argv_build(K8S_EXEC, &t, o->context, NULL, &a) < 0)
				return -E2BIG;
			char tperr[256];
			int sr = tp_argv_spawn(a.v, out, tperr, sizeof(tperr));
			if (sr < 0 && !kubectl_missing(-sr, o->label, err, errlen))
				snprintf(err, errlen, "%s: %s", o->label, tperr);
			return sr;
		}
		if (k8s_classify(r.err, r.status) != K8S_FAIL_NO_AGENT) {
			report(o->label, "kubectl exec failed", r.err, r.status, err, errlen);
			return -EIO;
		}
		why = "the container has no wicketd";
		k8s_last_line(r.err, last, sizeof(last));
	}
	if (!o->agent_image) {
		snprintf(err, errlen,
			 "%s: %s%s%s%s, and there is no default image for the ephemeral debug "
			 "container that brings the static agent in: give --agent-image IMAGE, an "
			 "image holding %s%s (see README: Kubernetes)",
			 o->label, why, last[0] ? " (kubectl: " : "", last, last[0] ? ")" : "",
			 K8S_IMAGE_AGENT, o->tools ? " and " K8S_IMAGE_TOOLBOX : "");
		return -ENOENT;
	}
	return k8s_debug(&t, o, out, err, errlen);
}
