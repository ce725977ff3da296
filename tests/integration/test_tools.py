#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""exec --tools / shell --tools: a static toolbox from the host runs inside a
sandbox that has no programs at all.

The "container" is bubblewrap with every namespace unshared and, as its
root, an empty directory (only the mount points /proc and /dev).  The
static agent starts there from a descriptor (/proc/self/fd/3); wicket hands
the --proxy-command the toolbox (Debian's busybox-static) as descriptor 4,
a sealed memfd, exactly as the container openers do (transports/ctr.h),
and the agent runs every exec and shell from it (wicketd --toolbox-fd 4).
Checked: ls, cat, ps, sh arithmetic, the exec-string form (plink), exit
statuses, an interactive shell in tmux, that the toolbox descriptor leaks
into no session, that no mux shares a --tools stream, and that nothing is
written into the sandbox's root.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (BUILDDIR, WICKETD, Failure, Skip, expect, expect_eq, mux_pids,  # noqa: E402
                    run, tap, wait_until, wicket)

STATIC = os.environ.get("WICKETD_STATIC") or os.path.join(BUILDDIR, "agent", "wicketd-static")
BUSYBOX = "/bin/busybox"
S = {}


def is_static(path):
    r = subprocess.run(["file", "-L", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return b"statically linked" in r.stdout or b"static-pie" in r.stdout


def setup():
    S["tmp"] = tap.tmpdir()
    for tool in ("bwrap", "file"):
        if not shutil.which(tool):
            S["skip"] = "%s is not installed" % tool
            return
    if not os.access(STATIC, os.X_OK):
        S["skip"] = "wicketd-static is not built (meson option static_agent)"
        return
    if not os.access(BUSYBOX, os.X_OK) or not is_static(BUSYBOX):
        S["skip"] = "%s is not a static busybox (Debian: busybox-static)" % BUSYBOX
        return
    root = os.path.join(S["tmp"], "root")
    for d in ("proc", "dev"):
        os.makedirs(os.path.join(root, d))
    S["root"] = root
    S["before"] = snapshot(root)
    S["proxy"] = proxy_cmd(root)


def proxy_cmd(root, agent_args="--toolbox-fd 4", extra=""):
    q = shlex.quote
    return ("exec bwrap --unshare-all --die-with-parent --new-session --bind %s / "
            "--proc /proc --dev /dev -- /proc/self/fd/3 --stdio %s 3<%s %s"
            % (q(root), agent_args, q(STATIC), extra))


def snapshot(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            out.append((os.path.relpath(p, root), st.st_mode, st.st_size, st.st_mtime_ns))
    out.append((".", os.lstat(root).st_mtime_ns))
    return sorted(out, key=repr)


def need():
    if "skip" in S:
        raise Skip(S["skip"])


def tools(*cmd, input=None, extra=(), timeout=30):
    return run(wicket("--proxy-command", S["proxy"], *extra, "exec", "--tools", "box", "--",
                      *cmd), input=input, timeout=timeout)


@tap.check("ls / in an empty root: only its mount points")
def _():
    need()
    r = tools("ls", "/")
    expect_eq((r.rc, r.out, r.err), (0, b"dev\nproc\n", b""), "status, stdout, stderr")
    r = tools("ls", "/bin", "/usr")
    expect(r.rc != 0 and b"No such file" in r.err, "no /bin, no /usr\n" + r.describe())


@tap.check("cat: stdin through, and a file (argv[0] picks the applet; /bin/cat also works)")
def _():
    need()
    r = tools("cat", input=b"through cat\n")
    expect_eq((r.rc, r.out), (0, b"through cat\n"), "cat from stdin")
    r = tools("/bin/cat", "/proc/self/cmdline")
    expect_eq((r.rc, r.out), (0, b"/bin/cat\0/proc/self/cmdline\0"),
              "/bin/cat runs the cat applet, by name")


@tap.check("ps sees the sandbox's processes, the agent among them")
def _():
    need()
    r = tools("ps", "-o", "pid,args")
    expect_eq(r.rc, 0, "status\n" + r.describe())
    expect(b"--toolbox-fd 4" in r.out and b"ps -o pid,args" in r.out, "ps output\n" + show(r))


def show(r):
    return r.out.decode("utf-8", "replace")


@tap.check("sh -c 'echo $((6*7))', applets inside the shell, exit statuses")
def _():
    need()
    r = tools("sh", "-c", "echo $((6*7)); ls / | wc -l; exit 3")
    expect_eq((r.rc, r.out), (3, b"42\n2\n"), "status and stdout")
    r = tools("false")
    expect_eq(r.rc, 1, "false")
    r = tools("python3", "-c", "1")
    expect_eq(r.rc, 127, "a program the toolbox does not have\n" + r.describe())
    expect(b"applet not found" in r.err, "busybox says so\n" + r.describe())


@tap.check("applets run through /proc/self/exe, which is the sealed memfd")
def _():
    need()
    r = tools("sh", "-c", "readlink /proc/self/exe; readlink /proc/$$/exe; "
              "cat /proc/self/comm")
    expect_eq(r.rc, 0, "status\n" + r.describe())
    lines = r.out.decode().split("\n")
    expect(lines[0].startswith("/memfd:busybox"), "exe of an applet: %r" % lines[0])
    expect(lines[1].startswith("/memfd:busybox"), "exe of the shell: %r" % lines[1])
    expect_eq(lines[2], "cat", "a forked and exec'd applet")


@tap.check("the toolbox descriptor leaks into no session (only 0, 1, 2 and ls's own)")
def _():
    need()
    r = tools("ls", "/proc/self/fd")
    expect_eq((r.rc, r.out), (0, b"0\n1\n2\n3\n"), "descriptors of ls")
    r = tools("sh", "-c", "ls /proc/$$/fd; true")  # not the last command: no exec
    expect_eq((r.rc, r.out), (0, b"0\n1\n2\n"), "descriptors of the shell")


@tap.check("an exec string (plink, no exec-argv@wicket) runs as sh -c STRING")
def _():
    need()
    if not shutil.which("plink"):
        raise Skip("plink is not installed")
    pc = proxy_cmd(S["root"], extra="4<" + shlex.quote(BUSYBOX))
    r = run(["plink", "-batch", "-ssh-connection", "-proxycmd", pc, "box",
             "echo $((6*7)) $0; exit 5"], timeout=30)
    expect_eq((r.rc, r.out), (5, b"42 sh\n"), "status and stdout\n" + r.describe())


@tap.check("shell --tools in tmux: a login sh, ls, exit 3")
def _():
    need()
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    q = shlex.quote
    sock = os.path.join(S["tmp"], "tmux.sock")
    conf = os.path.join(S["tmp"], "tmux.conf")
    with open(conf, "w") as f:
        f.write("set -g status off\n")
    base = os.path.join(S["tmp"], "shell")
    with open(base + ".sh", "w") as f:
        f.write("#!/bin/sh\n%s --proxy-command %s shell --tools box\n"
                "echo $? > %s.rc.tmp && mv %s.rc.tmp %s.rc\nexec sleep 600\n"
                % (q(wicket()[0]), q(S["proxy"]), q(base), q(base), q(base)))
    env = dict(os.environ, TERM="xterm")
    env.pop("TMUX", None)

    def tmux(*a):
        return run(["tmux", "-S", sock, "-f", conf] + list(a), env=env, timeout=15)
    tap.at_cleanup(lambda: subprocess.run(["tmux", "-S", sock, "kill-server"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "sh " + q(base + ".sh"))

    def pane():
        return tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-").out.decode("utf-8", "replace")

    def wait_pane(pattern):
        try:
            wait_until(lambda: re.search(pattern, pane(), re.M), timeout=20, interval=0.1,
                       what=pattern)
        except Failure as e:
            raise Failure("%s\npane:\n%s" % (e, pane()[-1500:]))
    tmux("send-keys", "-t", "t", "echo wkt''ready $0", "Enter")
    wait_pane(r"^wktready -?sh\s*$")
    tmux("send-keys", "-t", "t", "ls", "Enter")  # in /: no home in an empty root
    wait_pane(r"^dev\s+proc\s*$")
    tmux("send-keys", "-t", "t", "tty; stty size", "Enter")
    wait_pane(r"^30 100\s*$")
    tmux("send-keys", "-t", "t", "exit 3", "Enter")
    wait_until(lambda: os.path.exists(base + ".rc"), timeout=15, what="wicket to exit")
    with open(base + ".rc") as f:
        expect_eq(f.read().strip(), "3", "wicket shell's exit status")


@tap.check("a --tools stream is never shared: no mux is started")
def _():
    need()
    before = set(mux_pids())
    r = tools("true")
    expect_eq(r.rc, 0, "status")
    expect_eq(set(mux_pids()) - before, set(), "muxes started by a --tools command")


@tap.check("nothing was written into the sandbox's root")
def _():
    need()
    expect_eq(snapshot(S["root"]), S["before"], "the root directory, after every session")


@tap.check("host side: a missing or dynamic toolbox, a target that takes none")
def _():
    d = os.path.join(S["tmp"], "tb")
    os.makedirs(d, exist_ok=True)
    r = run(wicket("--tools-path", d, "--proxy-command", "true", "exec", "--tools", "x", "--",
                   "ls"))
    expect_eq(r.rc, 255, "exit status")
    expect(("wicket: --tools: %s/busybox: No such file or directory" % d).encode() in r.err,
           r.describe())
    dyn = shutil.which("ls")
    os.symlink(dyn, os.path.join(d, "busybox"))
    r = run(wicket("exec", "--tools", "--tools-path=" + d, "--proxy-command", "true", "x",
                   "--", "ls"))
    expect_eq(r.rc, 255, "exit status")
    expect(b"is dynamically linked: a container may have no loader" in r.err, r.describe())
    if os.access(BUSYBOX, os.X_OK) and is_static(BUSYBOX):
        r = run(wicket("exec", "--tools", "unix/" + os.path.join(S["tmp"], "none.sock"), "--",
                       "ls"))
        expect_eq(r.rc, 255, "exit status")
        expect(b"--tools needs a container target (podman/, docker/, k8s/, pid/) or "
               b"--proxy-command" in r.err, r.describe())


@tap.check("agent side: bad --toolbox-fd / --toolbox / --session-root are refused at start")
def _():
    plain = os.path.join(S["tmp"], "plain-file")
    with open(plain, "w") as f:
        f.write("not a program\n")
    os.chmod(plain, 0o644)
    for args, msg in [(["--toolbox-fd", "9"], b"--toolbox-fd 9: descriptor not open"),
                      (["--toolbox-fd", "1"], b"is not a descriptor number of 3 or more"),
                      (["--toolbox", "/nonexistent"], b"--toolbox /nonexistent: No such file"),
                      (["--toolbox", plain], b"--toolbox %s: not an executable file"
                                             % plain.encode()),
                      (["--toolbox", "/"], b"--toolbox /: not an executable file"),
                      (["--session-root", "/nonexistent"], b"--session-root /nonexistent: No "
                                                           b"such file")]:
        r = run([WICKETD, "--stdio"] + args, timeout=10)
        expect_eq(r.rc, 2, "exit status of wicketd %s" % " ".join(args))
        expect(msg in r.err, r.describe())


if __name__ == "__main__":
    tap.main(setup)
