#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""k8s/[NS/]POD[/CONTAINER] targets.

(a) Against a real cluster only when WICKET_TEST_KUBECONFIG names its
    kubeconfig (WICKET_TEST_K8S_TARGET, default k8s/default/wicket-test, a
    running pod; WICKET_TEST_AGENT_IMAGE for the debug path).  No cluster
    can run on the machines these tests were written on: there it skips.

(b) Always: a FAKE kubectl (fake_kubectl.py) first on PATH.  The fake is
    only the argv checker in front of a real agent: it verifies every
    kubectl command line wicket builds and then runs the real wicketd
    --stdio (exec path) or the real static agent (debug path: its own mount
    namespace holding only the image's files, in the PID namespace of a
    real bubblewrap "container", reading that container's files through
    /proc/1/root).  Refusals (ephemeral containers forbidden or disabled)
    are kubectl's real error texts; the connection-drop case has the fake
    exit 0 mid-session as kubectl does (kubectl#1208).  The real kubectl is
    used too, against an API server that is not there.
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (BUILDDIR, WICKETD, Failure, Skip, expect, expect_eq, run, spawn,  # noqa: E402
                    tap, wait_until, wicket)

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.environ.get("WICKETD_STATIC") or os.path.join(BUILDDIR, "agent", "wicketd-static")
BUSYBOX = "/bin/busybox"
IMAGE = "registry.example/wicket-agent:test"
S = {}


def is_static(path):
    r = subprocess.run(["file", "-L", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return b"statically linked" in r.stdout or b"static-pie" in r.stdout


def setup():
    S["tmp"] = tap.tmpdir()
    tmp = S["tmp"]
    # kubeconfig: the namespace of its context is what k8s/POD means.
    S["kubeconfig"] = os.path.join(tmp, "kubeconfig")
    with open(S["kubeconfig"], "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: test\ncontexts:\n"
                "- name: test\n  context: {cluster: none, user: none, namespace: shop}\n")
    S["bin"] = os.path.join(tmp, "bin")
    os.mkdir(S["bin"])
    os.symlink(os.path.join(HERE, "fake_kubectl.py"), os.path.join(S["bin"], "kubectl"))
    S["log"] = os.path.join(tmp, "kubectl.log")
    S["state"] = os.path.join(tmp, "state")
    os.mkdir(S["state"])
    S["env"] = dict(os.environ, PATH=S["bin"] + ":" + os.environ["PATH"],
                    KUBECONFIG=S["kubeconfig"], FAKE_KUBECTL_LOG=S["log"],
                    FAKE_K8S_STATE=S["state"], FAKE_K8S_IMAGE=IMAGE,
                    FAKE_K8S_BUSYBOX=BUSYBOX, WICKETD=WICKETD, WICKETD_STATIC=STATIC)
    S["env"].pop("FAKE_K8S_CONTEXT", None)
    why = debug_missing()
    if why:
        S["no_debug"] = why
        return
    # The "scratch" pod's container: a root of its own with one program
    # (its app) and no shell, PID 1 of its own PID namespace.
    root = os.path.join(tmp, "scratch-root")
    for d in ("app", "etc", "proc", "dev"):
        os.makedirs(os.path.join(root, d))
    shutil.copy(BUSYBOX, os.path.join(root, "app", "busybox"))
    with open(os.path.join(root, "etc", "marker"), "w") as f:
        f.write("the scratch container's own file\n")
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/etc:/app/nologin\n")
    S["root"] = root
    info_r, info_w = os.pipe()
    spawn(["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
           "--die-with-parent", "--as-pid-1", "--info-fd", str(info_w), "--bind", root, "/",
           "--proc", "/proc", "--dev", "/dev", "--", "/app/busybox", "sleep", "3600"],
          pass_fds=(info_w,), stdin=subprocess.DEVNULL)
    os.close(info_w)
    with os.fdopen(info_r) as f:
        info = json.loads(f.read().split("}")[0] + "}")
    S["env"]["FAKE_K8S_TARGET_PID"] = str(info["child-pid"])
    wait_until(lambda: os.path.exists("/proc/%d/root/etc/marker" % info["child-pid"]),
               what="the scratch container to start")


def debug_missing():
    if os.geteuid() != 0:
        return "the debug-container stand-in needs root (namespaces, mounts)"
    for tool in ("bwrap", "nsenter", "unshare", "file"):
        if not shutil.which(tool):
            return "%s is not installed" % tool
    if not os.access(STATIC, os.X_OK):
        return "wicketd-static is not built (meson option static_agent)"
    if not os.access(BUSYBOX, os.X_OK) or not is_static(BUSYBOX):
        return "%s is not a static busybox (Debian: busybox-static)" % BUSYBOX
    return None


def snapshot(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            out.append((os.path.relpath(p, root), st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(out)


def need_debug():
    if "no_debug" in S:
        raise Skip(S["no_debug"])


def k(*args, env=None, timeout=60, input=None):
    """wicket with the fake kubectl first on PATH."""
    return run(wicket(*args), env=env or S["env"], timeout=timeout, input=input)


def kubectl_calls(since=0):
    try:
        with open(S["log"]) as f:
            return [json.loads(ln) for ln in f.read().splitlines()][since:]
    except FileNotFoundError:
        return []


def mark():
    return len(kubectl_calls())


def err_has(r, text):
    expect(text.encode() in r.err, "stderr lacks %r\n%s" % (text, r.describe()))


# ---------------------------------------------------------------- a real cluster


@tap.check("a real cluster (WICKET_TEST_KUBECONFIG): exec through the pod's agent")
def _():
    kc = os.environ.get("WICKET_TEST_KUBECONFIG")
    if not kc:
        raise Skip("WICKET_TEST_KUBECONFIG is not set: no Kubernetes cluster here")
    if not shutil.which("kubectl"):
        raise Skip("kubectl is not installed")
    target = os.environ.get("WICKET_TEST_K8S_TARGET", "k8s/default/wicket-test")
    env = dict(os.environ, KUBECONFIG=kc)
    extra = []
    if os.environ.get("WICKET_TEST_AGENT_IMAGE"):
        extra = ["--agent-image", os.environ["WICKET_TEST_AGENT_IMAGE"]]
    r = run(wicket(*extra, "exec", target, "--", "sh", "-c", "echo k8s-ok; exit 5"), env=env,
            timeout=300)
    expect_eq(r.out, b"k8s-ok\n", "stdout from the pod")
    expect_eq(r.rc, 5, "the remote exit status")
    r = run(wicket(*extra, "mux", "status", target), env=env, timeout=60)
    expect(b"keepalive: every" in r.out, "the pod's mux sends keepalives\n" + r.describe())


# ---------------------------------------------------------------- the real kubectl


@tap.check("the real kubectl, no API server: its reason, exit 255")
def _():
    real = shutil.which("kubectl")
    if not real:
        raise Skip("kubectl is not installed")
    kc = os.path.join(S["tmp"], "unreachable.kubeconfig")
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n"
                "- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n"
                "- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n"
                "  user: {token: t}\n")
    env = dict(os.environ, KUBECONFIG=kc)
    r = run(wicket("exec", "k8s/shop/web", "--", "true"), env=env, timeout=60)
    expect_eq(r.rc, 255, "exit status")
    err_has(r, "wicket: k8s/shop/web: kubectl exec failed: The connection to the server "
               "127.0.0.1:1 was refused")
    r = run(wicket("--context", "elsewhere", "exec", "k8s/web", "--", "true"), env=env)
    expect_eq(r.rc, 255, "exit status with an unknown context")
    err_has(r, "wicket: k8s/web: kubectl exec failed: Error in configuration: context was not "
               "found for specified context: elsewhere")


@tap.check("no kubectl on PATH: said so")
def _():
    env = dict(S["env"], PATH=os.path.join(S["tmp"], "nothing-here"))
    r = k("--share", "no", "exec", "k8s/shop/web", "--", "true", env=env)
    expect_eq(r.rc, 255, "exit status")
    err_has(r, "wicket: k8s/shop/web: kubectl is not installed")


# ---------------------------------------------------------------- the exec path


@tap.check("exec path: probe, then kubectl exec -i POD -- wicketd --stdio; argv and status")
def _():
    m = mark()
    r = k("--share", "no", "exec", "k8s/shop/has-agent", "--", "sh", "-c",
          "echo out; echo err >&2; exit 7")
    expect_eq((r.rc, r.out, r.err), (7, b"out\n", b"err\n"), "status, stdout, stderr")
    expect_eq(kubectl_calls(m), [
        ["--namespace=shop", "exec", "has-agent", "--", "wicketd", "--version"],
        ["--namespace=shop", "exec", "-i", "has-agent", "--", "wicketd", "--stdio"],
    ], "kubectl command lines")


@tap.check("--context CTX and k8s/NS/POD/CONTAINER reach kubectl as --context= / --container=")
def _():
    env = dict(S["env"], FAKE_K8S_CONTEXT="prod-eu")
    m = mark()
    r = k("--context", "prod-eu", "--share", "no", "exec", "k8s/shop/has-agent/app", "--",
          "echo", "ctx", env=env)
    expect_eq((r.rc, r.out), (0, b"ctx\n"), "status, stdout\n" + r.describe())
    expect_eq(kubectl_calls(m)[-1], ["--context=prod-eu", "--namespace=shop", "exec", "-i",
                                     "has-agent", "--container=app", "--", "wicketd",
                                     "--stdio"], "kubectl command line")
    r = k("--context=nope", "--share", "no", "exec", "k8s/shop/has-agent", "--", "true",
          env=env)
    expect_eq(r.rc, 255, "exit status with a context kubectl does not know")
    err_has(r, "wicket: k8s/shop/has-agent: kubectl exec failed: Error in configuration: "
               "context was not found for specified context: nope")


@tap.check("k8s/POD: no --namespace, kubectl takes the namespace from $KUBECONFIG")
def _():
    m = mark()
    r = k("exec", "k8s/has-agent", "--", "echo", "from-kubeconfig")
    expect_eq((r.rc, r.out), (0, b"from-kubeconfig\n"), "status, stdout\n" + r.describe())
    calls = kubectl_calls(m)
    expect(calls and all(not a[0].startswith("--namespace") for a in calls),
           "no --namespace in %r" % calls)


@tap.check("k8s streams go through the mux and get its keepalives")
def _():
    pktlog = os.path.join(S["tmp"], "keepalive.pktlog")
    env = dict(S["env"], FAKE_K8S_AGENT_PKTLOG=pktlog)
    r = k("--keepalive", "1", "exec", "k8s/shop/has-agent/app", "--", "sleep", "3.5", env=env)
    expect_eq(r.rc, 0, "an idle session of 3.5 s\n" + r.describe())
    r = k("mux", "status", "k8s/shop/has-agent/app", env=env)
    expect(b"keepalive: every 1 s" in r.out, "mux status\n" + r.describe())
    with open(pktlog, "rb") as f:
        n = f.read().count(b"keepalive@openssh.com")
    expect(n >= 2, "the agent saw %d keepalive requests during the idle session" % n)
    k("mux", "stop", "k8s/shop/has-agent/app", env=env)


@tap.check("a direct k8s stream (--share no) is not idle either: IGNOREs every --keepalive S")
def _():
    pktlog = os.path.join(S["tmp"], "direct.pktlog")
    env = dict(S["env"], FAKE_K8S_AGENT_PKTLOG=pktlog)
    r = k("--keepalive", "1", "--share", "no", "exec", "k8s/shop/has-agent", "--", "sleep",
          "3.5", env=env)
    expect_eq(r.rc, 0, "an idle session of 3.5 s\n" + r.describe())
    with open(pktlog, "rb") as f:
        n = f.read().count(b"< IGNORE")
    expect(n >= 2, "the agent saw %d IGNOREs during the idle session" % n)


@tap.check("a missing pod: kubectl's NotFound, exit 255")
def _():
    r = k("--share", "no", "exec", "k8s/shop/nosuch", "--", "true")
    expect_eq(r.rc, 255, "exit status")
    err_has(r, 'wicket: k8s/shop/nosuch: kubectl exec failed: Error from server (NotFound): '
               'pods "nosuch" not found')


@tap.check("bad targets: clear messages, kubectl never runs")
def _():
    m = mark()
    for t, msg in [("k8s/Shop/web", "'Shop' is not a namespace name"),
                   ("k8s/shop/web/app/x", "too many '/' parts"),
                   ("k8s/shop//app", "an empty name"),
                   ("k8s/--kubeconfig=x", "'--kubeconfig=x' is not a pod name")]:
        r = k("exec", t, "--", "true")
        expect_eq(r.rc, 255, "exit status for " + t)
        err_has(r, "wicket: %s: %s" % (t, msg))
    expect_eq(kubectl_calls(m), [], "kubectl calls")


@tap.check("the connection drops, kubectl exits 0: wicket exits 255 (direct and through the mux)")
def _():
    for share in ("no", "auto"):
        r = k("--share", share, "exec", "k8s/shop/flaky", "--", "sleep", "30")
        expect_eq(r.rc, 255, "exit status with --share %s\n%s" % (share, r.describe()))
        expect(r.elapsed < 20, "it ended when the stream did (%.1f s)" % r.elapsed)
        k("mux", "stop", "k8s/shop/flaky")


# ---------------------------------------------------------------- the debug path


@tap.check("no wicketd in the container and no --agent-image: there is no default image")
def _():
    r = k("--share", "no", "exec", "k8s/shop/scratch", "--", "true")
    expect_eq(r.rc, 255, "exit status")
    err_has(r, "wicket: k8s/shop/scratch: the container has no wicketd (kubectl: Internal error")
    err_has(r, "there is no default image for the ephemeral debug container")
    err_has(r, "give --agent-image IMAGE, an image holding /wicketd-static")


@tap.check("debug path: the static agent in a debug container serves the container's own root")
def _():
    need_debug()
    m = mark()
    r = k("--agent-image", IMAGE, "--share", "no", "exec", "k8s/shop/scratch", "--",
          "/app/busybox", "cat", "/etc/marker")
    expect_eq((r.rc, r.out), (0, b"the scratch container's own file\n"),
              "status and stdout\n" + r.describe())
    calls = kubectl_calls(m)
    expect_eq(calls[-2:], [
        ["--namespace=shop", "get", "pod", "scratch",
         '--output=jsonpath={.spec.shareProcessNamespace}{"\\n"}'
         '{.metadata.annotations.kubectl\\.kubernetes\\.io/default-container}{"\\n"}'
         '{.spec.containers[0].name}{"\\n"}{.status.phase}{"\\n"}'],
        ["--namespace=shop", "debug", "scratch", "--image=" + IMAGE, "--target=app",
         "--profile=general", "--keep-labels=true", "--stdin=true", "--tty=false",
         "--quiet=true", "--attach=true", "--", "/wicketd-static", "--stdio",
         "--session-root", "/proc/1/root", "--greet-after-peer"],
    ], "kubectl command lines")
    r = k("--agent-image", IMAGE, "--share", "no", "exec", "k8s/shop/scratch", "--",
          "/app/busybox", "sh", "-c", "exit 9")
    expect_eq(r.rc, 9, "exit status through the debug container")


@tap.check("debug path: wicket cp reads and writes the container's files (sftp in its root)")
def _():
    need_debug()
    dst = os.path.join(S["tmp"], "marker.copy")
    r = k("--agent-image", IMAGE, "cp", "k8s/shop/scratch:/etc/marker", dst)
    expect_eq(r.rc, 0, "download\n" + r.describe())
    with open(dst) as f:
        expect_eq(f.read(), "the scratch container's own file\n", "downloaded file")
    src = os.path.join(S["tmp"], "upload.txt")
    with open(src, "w") as f:
        f.write("uploaded\n")
    r = k("--agent-image", IMAGE, "cp", src, "k8s/shop/scratch:/etc/uploaded.txt")
    expect_eq(r.rc, 0, "upload\n" + r.describe())
    path = os.path.join(S["root"], "etc", "uploaded.txt")
    with open(path) as f:
        expect_eq(f.read(), "uploaded\n", "the file in the container's root")
    os.unlink(path)
    k("mux", "stop", "k8s/shop/scratch")


@tap.check("debug path with --tools: the image's busybox runs in the container's root, "
           "nothing written there")
def _():
    need_debug()
    before = snapshot(S["root"])
    m = mark()
    r = k("--agent-image", IMAGE, "exec", "--tools", "k8s/shop/scratch", "--", "sh", "-c",
          "ls /; cat /etc/marker; echo $((6*7)); ps -o args | grep -cx '/app/busybox sleep 3600'")
    expect_eq(r.rc, 0, "status\n" + r.describe())
    expect_eq(r.out, b"app\ndev\netc\nproc\nthe scratch container's own file\n42\n1\n",
              "ls /, cat, arithmetic, ps")
    calls = kubectl_calls(m)
    expect_eq([c[1] for c in calls], ["get", "debug"], "no exec probe with --tools")
    expect_eq(calls[-1][-2:], ["--toolbox", "/busybox"], "the agent gets the image's busybox")
    expect_eq(snapshot(S["root"]), before, "the container's root after the session")


@tap.check("ephemeral containers forbidden: said clearly, at once, exit 255")
def _():
    need_debug()
    r = k("--agent-image", IMAGE, "--share", "no", "exec", "k8s/shop/locked", "--", "true")
    expect_eq(r.rc, 255, "exit status")
    err_has(r, 'wicket: k8s/shop/locked: kubectl debug failed: Error from server (Forbidden): '
               'pods "locked" is forbidden: User "alice" cannot patch resource '
               '"pods/ephemeralcontainers"')
    err_has(r, "the cluster does not let you add an ephemeral debug container to this pod")
    expect(r.elapsed < 10, "took %.1f s" % r.elapsed)


@tap.check("ephemeral containers disabled, shared PID namespace, a pending pod: each said")
def _():
    need_debug()
    for pod, msg in [("old", "this cluster has no ephemeral containers"),
                     ("shared", "the pod shares one process namespace"),
                     ("pending", "the pod is Pending, not Running")]:
        r = k("--agent-image", IMAGE, "--share", "no", "exec", "k8s/shop/" + pod, "--", "true")
        expect_eq(r.rc, 255, "exit status for " + pod)
        err_has(r, "wicket: k8s/shop/%s: " % pod)
        err_has(r, msg)


@tap.check("an image the cluster cannot pull: kubectl's words reach the user")
def _():
    need_debug()
    r = k("--agent-image", "registry.example/nope:1", "--share", "no", "exec",
          "k8s/shop/scratch", "--", "true")
    expect_eq(r.rc, 255, "exit status")
    err_has(r, 'Back-off pulling image "registry.example/nope:1"')


if __name__ == "__main__":
    tap.main(setup)
