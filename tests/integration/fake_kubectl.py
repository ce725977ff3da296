#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for kubectl in front of a REAL agent (test_k8s.py only).

It checks that its argv is exactly what wicket must send (flag forms,
order, the command after "--"), logs it, and then does what the cluster
would, with real parts:

  exec -i POD -- wicketd --stdio   runs the real wicketd on our stdio
  exec POD -- wicketd --version    runs the real wicketd --version, or says
                                   what containerd says when it is missing
  get pod POD --output=jsonpath=   answers the four lines wicket asks for
  get pods|namespaces --output=name  the lists bash completion asks for
  debug POD --image=... -- CMD     runs CMD (the static agent) in a "debug
                                   container": its own mount namespace whose
                                   root holds only the image's files, inside
                                   the PID namespace of the target process
                                   (FAKE_K8S_TARGET_PID), as the kubelet does
                                   with --target.  Like kubectl attach, what
                                   the container writes before we "attach"
                                   (FAKE_K8S_ATTACH_DELAY s) is lost, and our
                                   stdin reaches it only from then on.

Pods (namespace "shop"; without --namespace the namespace comes from
$KUBECONFIG, which is how kubectl behaves): has-agent, scratch, locked
(ephemeral containers forbidden), old (ephemeral containers disabled),
shared (shareProcessNamespace), pending, flaky (the stream drops after
FAKE_K8S_DROP_AFTER s and kubectl exits 0, as kubectl#1208 describes).
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

E = os.environ
PODS = {"has-agent", "scratch", "locked", "old", "shared", "pending", "flaky"}
NO_AGENT = {"scratch", "locked", "old", "shared", "pending"}
GET_TEMPLATE = ('--output=jsonpath={.spec.shareProcessNamespace}{"\\n"}'
                '{.metadata.annotations.kubectl\\.kubernetes\\.io/default-container}{"\\n"}'
                '{.spec.containers[0].name}{"\\n"}{.status.phase}{"\\n"}')
DEBUG_FLAGS = ["--profile=general", "--keep-labels=true", "--stdin=true", "--tty=false",
               "--quiet=true", "--attach=true"]


def die(msg, code=99):
    sys.stderr.write("fake kubectl: %s\n" % msg)
    sys.exit(code)


def log(argv):
    path = E.get("FAKE_KUBECTL_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(argv) + "\n")


def kubeconfig_namespace():
    path = E.get("KUBECONFIG")
    if not path:
        die("KUBECONFIG is not set: wicket must leave kubectl's environment alone")
    with open(path) as f:
        m = re.search(r"namespace:\s*([a-z0-9-]+)", f.read())
    return m.group(1) if m else "default"


def main(argv):
    log(argv)
    args = list(argv)
    want_ctx = E.get("FAKE_K8S_CONTEXT")
    if args and args[0].startswith("--context="):
        ctx = args.pop(0)[len("--context="):]
        if ctx != want_ctx:
            sys.stderr.write("Error in configuration: context was not found for specified "
                             "context: %s\n" % ctx)
            sys.exit(1)
    elif want_ctx:
        die("expected --context=%s first" % want_ctx)
    ns = None
    if args and args[0].startswith("--namespace="):
        ns = args.pop(0)[len("--namespace="):]
    if ns is None:
        ns = kubeconfig_namespace()
    if not args:
        die("no subcommand")
    sub = args.pop(0)
    if sub == "exec":
        return do_exec(ns, args)
    if sub == "get":
        return do_get(ns, args)
    if sub == "debug":
        return do_debug(ns, args)
    die("unexpected subcommand %r" % sub)


def find_pod(ns, pod):
    if ns != "shop" or pod not in PODS:
        sys.stderr.write('Error from server (NotFound): pods "%s" not found\n' % pod)
        sys.exit(1)


def do_exec(ns, args):
    interactive = bool(args) and args[0] == "-i"
    if interactive:
        args.pop(0)
    if not args:
        die("exec without a pod")
    pod = args.pop(0)
    if args and args[0].startswith("--container="):
        c = args.pop(0)[len("--container="):]
        if c != "app":
            die('container %s is not valid for pod %s' % (c, pod), 1)
    if args[:1] != ["--"]:
        die("exec: expected -- before the command, got %r" % args)
    cmd = args[1:]
    if cmd not in (["wicketd", "--stdio"], ["wicketd", "--version"]):
        die("exec: unexpected command %r" % cmd)
    if (cmd[1] == "--stdio") != interactive:
        die("exec: --stdio needs -i and --version must not have it")
    find_pod(ns, pod)
    if pod in NO_AGENT:
        sys.stderr.write(
            'error: Internal error occurred: error executing command in container: failed to '
            'exec in container: failed to start exec "5f1d": OCI runtime exec failed: exec '
            'failed: unable to start container process: exec: "wicketd": executable file not '
            'found in $PATH: unknown\n')
        return 1
    wicketd = E["WICKETD"]
    if E.get("FAKE_K8S_AGENT_PKTLOG") and cmd[1] == "--stdio":
        cmd = cmd + ["--packet-log", E["FAKE_K8S_AGENT_PKTLOG"]]
    if pod == "flaky":
        # The agent runs; then the connection drops and kubectl says 0.
        p = subprocess.Popen([wicketd] + cmd[1:])
        time.sleep(float(E.get("FAKE_K8S_DROP_AFTER", "1.5")))
        p.kill()
        p.wait()
        os.close(0)
        os.close(1)
        return 0
    os.execv(wicketd, [wicketd] + cmd[1:])


def do_get(ns, args):
    # The completion's lists (completion/wicket.bash).
    if args in (["pods", "--output=name", "--request-timeout=2s"],
                ["namespaces", "--output=name", "--request-timeout=2s"]):
        if args[0] == "namespaces":
            sys.stdout.write("namespace/default\nnamespace/shop\n")
        elif ns == "shop":
            sys.stdout.write("".join("pod/%s\n" % p for p in sorted(PODS)))
        return 0
    if len(args) != 3 or args[0] != "pod" or args[2] != GET_TEMPLATE:
        die("get: unexpected arguments %r" % args)
    pod = args[1]
    find_pod(ns, pod)
    share = "true" if pod == "shared" else ""
    phase = "Pending" if pod == "pending" else "Running"
    sys.stdout.write("%s\n\napp\n%s\n" % (share, phase))
    return 0


def do_debug(ns, args):
    if not args:
        die("debug without a pod")
    pod = args.pop(0)
    image = target = None
    if args and args[0].startswith("--image="):
        image = args.pop(0)[len("--image="):]
    if args and args[0].startswith("--target="):
        target = args.pop(0)[len("--target="):]
    if image is None or target is None:
        die("debug: --image= and --target= must follow the pod, got %r" % args)
    if args[:len(DEBUG_FLAGS)] != DEBUG_FLAGS:
        die("debug: expected %r, got %r" % (DEBUG_FLAGS, args))
    args = args[len(DEBUG_FLAGS):]
    if args[:1] != ["--"]:
        die("debug: expected -- before the command, got %r" % args)
    cmd = args[1:]
    want = ["/wicketd-static", "--stdio", "--session-root", "/proc/1/root", "--greet-after-peer"]
    if cmd != want and cmd != want + ["--toolbox", "/busybox"]:
        die("debug: unexpected command %r" % cmd)
    find_pod(ns, pod)
    if target != "app":
        die('container "%s" not found in pod "%s"' % (target, pod), 1)
    if image != E.get("FAKE_K8S_IMAGE"):
        sys.stderr.write('Warning: container %s: Back-off pulling image "%s"\n' % (pod, image))
        return 1
    if pod == "locked":
        sys.stderr.write(
            'Error from server (Forbidden): pods "locked" is forbidden: User "alice" cannot '
            'patch resource "pods/ephemeralcontainers" in API group "" in the namespace '
            '"shop"\n')
        return 1
    if pod == "old":
        sys.stderr.write(
            'error: ephemeral containers are disabled for this cluster (error from server: '
            '"the server could not find the requested resource").\n')
        return 1
    return run_debug_container(cmd)


def write_all(fd, d):
    while d:
        d = d[os.write(fd, d):]


def feed(f, d):
    try:
        f.write(d)
        f.flush()
    except BrokenPipeError:
        pass


def run_debug_container(cmd):
    """The image's files (static agent, busybox) in a root of their own, in
    the target's PID namespace; stdio relayed as kubectl attach would."""
    root = tempfile.mkdtemp(prefix="fake-debug-", dir=E["FAKE_K8S_STATE"])
    for d in ("proc", "dev"):
        os.mkdir(os.path.join(root, d))
    image = {"wicketd-static": E["WICKETD_STATIC"], "busybox": E["FAKE_K8S_BUSYBOX"]}
    for name in image:
        open(os.path.join(root, name), "w").close()
    mounts = " && ".join(
        ["mount -t proc proc %s/proc" % root, "mount --rbind /dev %s/dev" % root] +
        ["mount --bind -o ro %s %s/%s" % (src, root, name) for name, src in image.items()])
    inner = "%s && exec chroot %s \"$@\"" % (mounts, root)
    argv = ["nsenter", "-t", E["FAKE_K8S_TARGET_PID"], "-p", "--",
            "unshare", "-m", "--propagation", "private", "sh", "-c", inner, "sh"] + cmd
    agent = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    attach_at = time.monotonic() + float(E.get("FAKE_K8S_ATTACH_DELAY", "0.5"))
    attached = False
    pending = b""
    fin = 0
    a_in, a_out = agent.stdin, agent.stdout
    while True:
        now = time.monotonic()
        if not attached and now >= attach_at:
            attached = True
            if pending:
                feed(a_in, pending)
                pending = b""
            if fin is None:
                a_in.close()
        rl = [a_out]
        if fin is not None:
            rl.append(fin)
        r, _, _ = select.select(rl, [], [], None if attached else max(0, attach_at - now))
        if a_out in r:
            d = os.read(a_out.fileno(), 65536)
            if not d:
                break
            if attached:  # before attaching, the output only goes to the log
                write_all(1, d)
        if fin is not None and fin in r:
            d = os.read(fin, 65536)
            if not d:
                fin = None
                if attached:
                    a_in.close()
            elif attached:
                feed(a_in, d)
            else:
                pending += d
    agent.wait()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]) or 0)
