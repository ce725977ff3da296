/* SPDX-License-Identifier: MIT */
/*
 * transports/k8s: k8s/[NS/]POD[/CONTAINER] parsing, the kubectl argument
 * vectors of every form, the pod query's answer, and what kubectl's error
 * text is taken to mean.
 */
#include <string.h>

#include "k8s.h"
#include "tap.h"

/* The vector joined with '|', so a misplaced split shows. */
static const char *joined(const struct k8s_argv *a)
{
	static char out[4096];
	size_t n = 0;
	out[0] = 0;
	for (int i = 0; i < a->n && n < sizeof(out) - 1; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "|" : "", a->v[i]);
	return out;
}

static void parse_ok(const char *spec, const char *ns, const char *pod, const char *ctr)
{
	struct k8s_target t;
	char err[512] = "";
	int r = k8s_parse(spec, "k8s/x", &t, err, sizeof(err));
	is_int(r, 0, "k8s/%s parses", spec);
	if (r) {
		diag("%s", err);
		return;
	}
	is_str(t.ns, ns, "k8s/%s: namespace", spec);
	is_str(t.pod, pod, "k8s/%s: pod", spec);
	is_str(t.container, ctr, "k8s/%s: container", spec);
}

static void parse_bad(const char *spec, const char *msg)
{
	struct k8s_target t;
	char err[512] = "", label[512];
	snprintf(label, sizeof(label), "k8s/%s", spec);
	is_int(k8s_parse(spec, label, &t, err, sizeof(err)), -1, "k8s/%s is refused", spec);
	is_str(err, msg, "k8s/%s: message", spec);
}

static void test_parse(void)
{
	parse_ok("web-0", "", "web-0", "");
	parse_ok("shop/web-0", "shop", "web-0", "");
	parse_ok("shop/web-0/app", "shop", "web-0", "app");
	parse_ok("kube-system/coredns-5d78c9869d-4xv8q/coredns", "kube-system",
		 "coredns-5d78c9869d-4xv8q", "coredns");
	/* Pod names are DNS subdomains: dots allowed, namespaces and containers not. */
	parse_ok("a/web.v2.example", "a", "web.v2.example", "");
	parse_ok("0/1/2", "0", "1", "2");

	char longpod[300];
	memset(longpod, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		longpod[i] = '.';
	longpod[253] = 0;
	parse_ok(longpod, "", longpod, "");
	char ns63[80];
	memset(ns63, 'n', 63);
	snprintf(ns63 + 63, sizeof(ns63) - 63, "/p");
	struct k8s_target t;
	char err[512];
	is_int(k8s_parse(ns63, "l", &t, err, sizeof(err)), 0, "a 63-byte namespace");

	static const char forms[] = "(k8s/POD, k8s/NAMESPACE/POD or k8s/NAMESPACE/POD/CONTAINER)";
	char want[512];
	snprintf(want, sizeof(want), "k8s/: an empty name %s", forms);
	parse_bad("", want);
	snprintf(want, sizeof(want), "k8s/shop/: an empty name %s", forms);
	parse_bad("shop/", want);
	snprintf(want, sizeof(want), "k8s//web: an empty name %s", forms);
	parse_bad("/web", want);
	snprintf(want, sizeof(want), "k8s/shop//app: an empty name %s", forms);
	parse_bad("shop//app", want);
	snprintf(want, sizeof(want), "k8s/a/b/c/d: too many '/' parts %s", forms);
	parse_bad("a/b/c/d", want);
	parse_bad("Web", "k8s/Web: 'Web' is not a pod name (lowercase letters, digits, '-' and "
			 "'.', at most 253)");
	/* Nothing can pass for a kubectl option. */
	parse_bad("--kubeconfig=x", "k8s/--kubeconfig=x: '--kubeconfig=x' is not a pod name "
				    "(lowercase letters, digits, '-' and '.', at most 253)");
	parse_bad("-n/web", "k8s/-n/web: '-n' is not a namespace name (lowercase letters, digits "
			    "and '-', at most 63)");
	parse_bad("shop/web/-c", "k8s/shop/web/-c: '-c' is not a container name (lowercase "
				 "letters, digits and '-', at most 63)");
	parse_bad("shop.eu/web", "k8s/shop.eu/web: 'shop.eu' is not a namespace name (lowercase "
				 "letters, digits and '-', at most 63)");
	parse_bad("shop/web/app.main", "k8s/shop/web/app.main: 'app.main' is not a container name "
				       "(lowercase letters, digits and '-', at most 63)");
	parse_bad("web-", "k8s/web-: 'web-' is not a pod name (lowercase letters, digits, '-' and "
			  "'.', at most 253)");
	parse_bad("a..b", "k8s/a..b: 'a..b' is not a pod name (lowercase letters, digits, '-' and "
			  "'.', at most 253)");
	parse_bad("web_0", "k8s/web_0: 'web_0' is not a pod name (lowercase letters, digits, '-' "
			   "and '.', at most 253)");
	parse_bad("we b", "k8s/we b: 'we b' is not a pod name (lowercase letters, digits, '-' and "
			  "'.', at most 253)");

	char pod254[300];
	memset(pod254, 'a', 254);
	for (int i = 63; i < 254; i += 64)
		pod254[i] = '.';
	pod254[254] = 0;
	is_int(k8s_parse(pod254, "l", &t, err, sizeof(err)), -1, "a 254-byte pod name is refused");
	char ns64[80];
	memset(ns64, 'n', 64);
	snprintf(ns64 + 64, sizeof(ns64) - 64, "/p");
	is_int(k8s_parse(ns64, "l", &t, err, sizeof(err)), -1, "a 64-byte namespace is refused");
	char label64[80];
	memset(label64, 'p', 64);
	label64[64] = 0;
	is_int(k8s_parse(label64, "l", &t, err, sizeof(err)), -1,
	       "a pod name with a 64-byte label is refused");
}

static void argv_is(enum k8s_cmd cmd, const char *spec, const char *ctx,
		    const struct k8s_debug_opts *d, const char *want, const char *what)
{
	struct k8s_target t;
	char err[512];
	if (k8s_parse(spec, "l", &t, err, sizeof(err)) < 0) {
		ok(0, "%s: %s", what, err);
		return;
	}
	struct k8s_argv a;
	is_int(k8s_argv_build(cmd, &t, ctx, d, &a), 0, "%s: builds", what);
	is_str(joined(&a), want, "%s", what);
	ok(a.v[a.n] == NULL, "%s: NULL-terminated", what);
}

static void test_argv(void)
{
	argv_is(K8S_EXEC, "web", NULL, NULL, "kubectl|exec|-i|web|--|wicketd|--stdio",
		"exec k8s/POD: kubectl's namespace");
	argv_is(K8S_EXEC, "shop/web", NULL, NULL,
		"kubectl|--namespace=shop|exec|-i|web|--|wicketd|--stdio", "exec k8s/NS/POD");
	argv_is(K8S_EXEC, "shop/web/app", NULL, NULL,
		"kubectl|--namespace=shop|exec|-i|web|--container=app|--|wicketd|--stdio",
		"exec k8s/NS/POD/CONTAINER");
	argv_is(K8S_EXEC, "shop/web/app", "prod-eu", NULL,
		"kubectl|--context=prod-eu|--namespace=shop|exec|-i|web|--container=app|--|"
		"wicketd|--stdio",
		"exec with --context");
	/* Context names are anything kubeconfig holds (EKS: an ARN with ':' and '/'). */
	argv_is(K8S_EXEC, "web", "arn:aws:eks:eu-west-1:1234:cluster/prod", NULL,
		"kubectl|--context=arn:aws:eks:eu-west-1:1234:cluster/prod|exec|-i|web|--|"
		"wicketd|--stdio",
		"exec with an ARN context");
	argv_is(K8S_EXEC, "web", "-n", NULL, "kubectl|--context=-n|exec|-i|web|--|wicketd|--stdio",
		"a context that looks like a flag stays a value");
	argv_is(K8S_PROBE, "shop/web/app", "c", NULL,
		"kubectl|--context=c|--namespace=shop|exec|web|--container=app|--|wicketd|"
		"--version",
		"probe: no stdin");
	argv_is(K8S_PROBE, "web", NULL, NULL, "kubectl|exec|web|--|wicketd|--version",
		"probe k8s/POD");
	argv_is(K8S_GET, "shop/web", NULL, NULL,
		"kubectl|--namespace=shop|get|pod|web|--output=jsonpath={.spec.shareProcessNamespace}"
		"{\"\\n\"}{.metadata.annotations.kubectl\\.kubernetes\\.io/default-container}"
		"{\"\\n\"}{.spec.containers[0].name}{\"\\n\"}{.status.phase}{\"\\n\"}",
		"get pod");

	struct k8s_debug_opts d = { .image = "registry.example/wicket-agent:1", .target = "app" };
	argv_is(K8S_DEBUG, "shop/web/app", NULL, &d,
		"kubectl|--namespace=shop|debug|web|--image=registry.example/wicket-agent:1|"
		"--target=app|--profile=general|--keep-labels=true|--stdin=true|--tty=false|"
		"--quiet=true|--attach=true|--|/wicketd-static|--stdio|--session-root|/proc/1/root|"
		"--greet-after-peer",
		"debug k8s/NS/POD/CONTAINER");
	d.tools = true;
	d.target = "main";
	argv_is(K8S_DEBUG, "web", "ctx", &d,
		"kubectl|--context=ctx|debug|web|--image=registry.example/wicket-agent:1|"
		"--target=main|--profile=general|--keep-labels=true|--stdin=true|--tty=false|"
		"--quiet=true|--attach=true|--|/wicketd-static|--stdio|--session-root|/proc/1/root|"
		"--greet-after-peer|--toolbox|/busybox",
		"debug with --tools: the image's busybox");

	struct k8s_target t;
	char err[64];
	k8s_parse("web", "l", &t, err, sizeof(err));
	struct k8s_argv a;
	is_int(k8s_argv_build(K8S_DEBUG, &t, NULL, NULL, &a), -1, "debug without options fails");
	struct k8s_debug_opts noimg = { .target = "app" };
	is_int(k8s_argv_build(K8S_DEBUG, &t, NULL, &noimg, &a), -1, "debug without an image fails");
	char huge[3000];
	memset(huge, 'c', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = 0;
	is_int(k8s_argv_build(K8S_EXEC, &t, huge, NULL, &a), -1,
	       "a context longer than the buffer fails cleanly");
}

static void test_pod_info(void)
{
	struct k8s_pod_info pi;
	is_int(k8s_parse_pod_info("\n\napp\nRunning\n", &pi), 0, "pod info: plain");
	ok(!pi.share_pid, "no shareProcessNamespace");
	is_str(pi.container, "app", "first container");
	is_str(pi.phase, "Running", "phase");
	is_int(k8s_parse_pod_info("true\nsidecar\napp\nPending\n", &pi), 0, "pod info: annotated");
	ok(pi.share_pid, "shareProcessNamespace: true");
	is_str(pi.container, "sidecar", "the default-container annotation wins");
	is_str(pi.phase, "Pending", "phase Pending");
	is_int(k8s_parse_pod_info("false\n\napp\n", &pi), -1, "three lines: refused");
	is_int(k8s_parse_pod_info("\n\n\nRunning\n", &pi), -1, "no container name: refused");
	is_int(k8s_parse_pod_info("\n--evil\napp\nRunning\n", &pi), -1,
	       "a container name that is no DNS label: refused");
}

static void classify_is(const char *text, int status, enum k8s_failure want, const char *what)
{
	is_int((int)k8s_classify(text, status), (int)want, "%s", what);
}

static void test_classify(void)
{
	classify_is("error: Internal error occurred: error executing command in container: failed "
		    "to exec in container: failed to start exec \"0f3\": OCI runtime exec failed: "
		    "exec failed: unable to start container process: exec: \"wicketd\": executable "
		    "file not found in $PATH: unknown\n",
		    1, K8S_FAIL_NO_AGENT, "containerd/runc: executable file not found");
	classify_is("OCI runtime exec failed: exec failed: container_linux.go:380: starting "
		    "container process caused: exec: \"wicketd\": stat wicketd: no such file or "
		    "directory: unknown\ncommand terminated with exit code 126\n",
		    126, K8S_FAIL_NO_AGENT, "older runc: no such file, exit code 126");
	classify_is("command terminated with exit code 127\n", 127, K8S_FAIL_NO_AGENT,
		    "a shell wrapper's 127");
	classify_is("Error from server (NotFound): pods \"web\" not found\n", 1, K8S_FAIL_OTHER,
		    "a missing pod is not a missing agent");
	classify_is("error: stat /root/.kube/missing: no such file or directory\n", 1,
		    K8S_FAIL_OTHER, "a missing kubeconfig is not a missing agent");
	classify_is("Error from server (Forbidden): pods \"web\" is forbidden: User \"alice\" cannot "
		    "patch resource \"pods/ephemeralcontainers\" in API group \"\" in the namespace "
		    "\"shop\"\n",
		    1, K8S_FAIL_EPHEMERAL_FORBIDDEN, "RBAC refuses pods/ephemeralcontainers");
	classify_is("Error from server (Forbidden): pods \"web\" is forbidden: violates PodSecurity "
		    "\"restricted:latest\": allowPrivilegeEscalation != false\n",
		    1, K8S_FAIL_EPHEMERAL_FORBIDDEN, "Pod Security admission refuses it");
	classify_is("error: ephemeral containers are disabled for this cluster (error from server: "
		    "\"the server could not find the requested resource\").\n",
		    1, K8S_FAIL_EPHEMERAL_DISABLED, "no ephemeral containers in this cluster");
	classify_is("Error from server (Forbidden): pods \"web\" is forbidden: User \"bob\" cannot "
		    "create resource \"pods/exec\" in API group \"\" in the namespace \"shop\"\n",
		    1, K8S_FAIL_OTHER, "exec forbidden is not about ephemeral containers");
	classify_is("error: unknown flag: --keep-labels\nSee 'kubectl debug --help' for usage.\n", 1,
		    K8S_FAIL_OLD_KUBECTL, "an old kubectl");
	classify_is("The connection to the server 127.0.0.1:1 was refused - did you specify the "
		    "right host or port?\n",
		    1, K8S_FAIL_OTHER, "no cluster");
	classify_is("", 0, K8S_FAIL_OTHER, "nothing at all");
}

static void test_last_line(void)
{
	char out[128];
	k8s_last_line("E1202 memcache.go:265] couldn't get current server API group list\n"
		      "error: You must be logged in to the server (Unauthorized)\n\n",
		      out, sizeof(out));
	is_str(out, "You must be logged in to the server (Unauthorized)",
	       "the last line, without 'error: '");
	k8s_last_line("", out, sizeof(out));
	is_str(out, "(no message)", "nothing said");
	k8s_last_line("one line without newline", out, sizeof(out));
	is_str(out, "one line without newline", "a single line");
	k8s_last_line("a\r\n", out, sizeof(out));
	is_str(out, "a", "CRLF");
	char small[8];
	k8s_last_line("a rather long line", small, sizeof(small));
	is_str(small, "a rathe", "truncated to the buffer");
}

int main(void)
{
	test_parse();
	test_argv();
	test_pod_info();
	test_classify();
	test_last_line();
	return done_testing();
}
