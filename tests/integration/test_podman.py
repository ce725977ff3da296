#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""podman/NAME against real podman containers (runc, cgroupfs), in a
storage root and a containers.conf of this test's own (CONTAINERS_CONF,
CONTAINERS_STORAGE_CONF), removed at the end with every container and image.

The image holds one static program (tests/integration/ctr_prog.c) and a
data file: no shell, no tar, no wicketd.  It runs with --read-only
--network none, a tmpfs at /scratch and a volume at /vol, so the agent has
to be brought in (wicketd-static from a sealed memfd); a second image has
wicketd-static at /usr/sbin/wicketd and its own agent is used.  Rootless
podman runs as a user this test creates.  Everything skips, with the
reason, where podman cannot run containers."""

import errno
import fcntl
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (BUILDDIR, Failure, Skip, expect, expect_eq, read_until, run,  # noqa: E402
                    show, spawn, tap, wait_until, wicket)

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.environ.get("WICKETD_STATIC") or os.path.join(BUILDDIR, "agent", "wicketd-static")
TAG = "wicket-it-%d" % os.getpid()
IMG = "localhost/%s-prog:1" % TAG
IMG_IN = "localhost/%s-own:1" % TAG
RO = TAG + "-ro"       # the shell-less container, agent brought in
# The static agent as podman top shows it (it hands over to an installed one).
BROUGHT_IN = "/proc/self/fd/3 --fd 4 --use-installed"
OWN = TAG + "-own"     # the same with its own wicketd
USER = "wicket-podman-it"
DATA = b"wicket podman data file\n" * 100
S = {}


def containers_conf(path, tmp):
    with open(path, "w") as f:
        f.write('[containers]\n'
                '# the default nofile is above this machine\'s hard limit\n'
                'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                '[engine]\n'
                '# crun refuses the hybrid cgroup layout here\n'
                'runtime = "runc"\n'
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                'tmp_dir = "%s/libpod-tmp"\n' % tmp)


def storage_conf(path, tmp):
    with open(path, "w") as f:
        f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n'
                % (tmp, tmp))


def pm(*args, timeout=120, env=None, check=True):
    r = run(["podman"] + list(args), timeout=timeout, env=env)
    if check and r.rc != 0:
        raise Failure("podman %s failed\n%s" % (" ".join(args), r.describe()))
    return r


def make_rootfs(d, own_agent):
    os.makedirs(d)
    r = run(["cc", "-static", "-O2", "-o", os.path.join(d, "prog"),
             os.path.join(HERE, "ctr_prog.c")], timeout=120)
    if r.rc != 0:
        raise Failure("cc -static ctr_prog.c\n" + r.describe())
    with open(os.path.join(d, "data.txt"), "wb") as f:
        f.write(DATA)
    if own_agent:
        os.makedirs(os.path.join(d, "usr", "sbin"))
        shutil.copy(STATIC, os.path.join(d, "usr", "sbin", "wicketd"))
    tar = d + ".tar"
    r = run(["tar", "-C", d, "--owner=0", "--group=0", "-cf", tar, "."], timeout=60)
    if r.rc != 0:
        raise Failure("tar\n" + r.describe())
    return tar


def cleanup_podman(tmp):
    """Every container and image of ours, then any mount left under tmp."""
    names = [RO, OWN, TAG + "-stop", TAG + "-stop2"]
    subprocess.run(["podman", "rm", "-f", "-t", "0"] + names, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    subprocess.run(["podman", "rmi", "-f", IMG, IMG_IN], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for m in sorted((m for m in mounts if m.startswith(tmp + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)


def setup():
    for tool in ("podman", "runc", "cc", "tar"):
        if not shutil.which(tool):
            S["why"] = "%s is not installed" % tool
            return
    tmp = S["tmp"] = tap.tmpdir("wicket-podman-it-")
    os.chmod(tmp, 0o755)
    containers_conf(os.path.join(tmp, "containers.conf"), tmp)
    storage_conf(os.path.join(tmp, "storage.conf"), tmp)
    os.environ["CONTAINERS_CONF"] = os.path.join(tmp, "containers.conf")
    os.environ["CONTAINERS_STORAGE_CONF"] = os.path.join(tmp, "storage.conf")
    for v in ("CONTAINER_HOST", "CONTAINER_CONNECTION"):
        os.environ.pop(v, None)
    tap.at_cleanup(lambda: cleanup_podman(tmp))
    S["static"] = os.access(STATIC, os.X_OK)
    if not S["static"]:
        S["why"] = "wicketd-static was not built (%s): the image has no agent" % STATIC
        return
    S["tar"] = make_rootfs(os.path.join(tmp, "rootfs"), False)
    S["tar_in"] = make_rootfs(os.path.join(tmp, "rootfs-own"), True)
    r = pm("import", "-q", S["tar"], IMG, check=False)
    if r.rc != 0:
        S["why"] = "podman import does not work here: %s" % show(r.err)
        return
    pm("import", "-q", S["tar_in"], IMG_IN)
    S["vol"] = os.path.join(tmp, "vol")
    os.mkdir(S["vol"])
    r = pm("run", "-d", "--name", RO, "--read-only", "--network", "none", "--tmpfs", "/scratch",
           "-v", S["vol"] + ":/vol", IMG, "/prog", "sleep", check=False)
    if r.rc != 0:
        S["why"] = "podman cannot run containers here: %s" % show(r.err)
        return
    pm("run", "-d", "--name", OWN, "--read-only", "--network", "none", "--tmpfs", "/scratch",
       IMG_IN, "/prog", "sleep")
    S["diff"] = {n: pm("diff", n).out for n in (RO, OWN)}
    S["ok"] = True


def need():
    if "ok" not in S:
        raise Skip(S.get("why", "setup did not finish"))


def wk(*args, **kw):
    kw.setdefault("timeout", 120)
    return run(wicket(*args), **kw)


def top(name):
    """podman top: [(pid, args)] inside the container."""
    r = pm("top", name, "pid", "args")
    rows = []
    for ln in r.out.decode().splitlines()[1:]:
        parts = ln.split(None, 1)
        if len(parts) == 2:
            rows.append((parts[0], parts[1].strip()))
    return rows


def only_init_left(name):
    """After a session: nothing of ours runs there any more (the agent ends
    a moment after its stream), and nothing was written there."""
    last = [None]

    def alone():
        last[0] = top(name)
        return [a for _, a in last[0]] == ["/prog sleep"]
    try:
        wait_until(alone, timeout=15, interval=0.2, what="only /prog sleep in " + name)
    except Failure as e:
        raise Failure("%s: podman top shows %r" % (e, last[0]))
    expect_eq(pm("diff", name).out, S["diff"][name], "podman diff %s" % name)


def ok(r, what, out=None):
    expect_eq(r.rc, 0, what + "\n" + r.describe())
    if out is not None:
        expect_eq(r.out, out, what + ": stdout")


def held(target, mark, *extra):
    """A session that stays until its stdin closes (closed at the end of the
    check that started it, also when that check fails)."""
    p = spawn(wicket(*extra, "exec", target, "--", "/prog", "hold", mark),
              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    S.setdefault("held", []).append(p)
    read_until(p.stdout, b"held " + mark.encode(), timeout=60)
    return p


def end_held():
    for p in S.pop("held", []):
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def check(desc):
    """tap.check, ending the check's held sessions whatever happens."""
    def deco(fn):
        def run_it():
            try:
                fn()
            finally:
                end_held()
        return tap.check(desc)(run_it)
    return deco


def agent_pids(name, args):
    """Host pids of the processes in @name whose command line is @args and
    whose parent is not one of them (the agent, not its workers)."""
    r = pm("top", name, "hpid", "ppid", "pid", "args")
    rows = []
    for ln in r.out.decode().splitlines()[1:]:
        parts = ln.split(None, 3)
        if len(parts) == 4 and parts[3].strip() == args:
            rows.append((int(parts[0]), parts[1], parts[2]))
    inner = {pid for _, _, pid in rows}
    return [h for h, ppid, _ in rows if ppid not in inner]


def host_pid_of(name, args):
    pids = agent_pids(name, args)
    if len(pids) != 1:
        raise Failure("%d agents %r in podman top %s" % (len(pids), args, name))
    return pids[0]


def fd_link(pid, fd):
    try:
        return os.readlink("/proc/%d/fd/%d" % (pid, fd))
    except OSError:
        return ""


def status_of_quiet(pid):
    try:
        return status_of(pid)
    except OSError:
        return {}


def status_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)


# ---------------------------------------------------------------- sessions


@check("exec on a shell-less image: exact argv, exit status, signal -> 128+N, stderr "
           "apart, 127 with the reason for a missing command")
def _():
    need()
    T = "podman/" + RO
    argv = ["a b", "", "*", "$HOME", "'q'", "tab\there", "-n", "--", "\u00e9"]
    r = wk("exec", T, "--", "/prog", "args", *argv)
    ok(r, "args", "".join(a + "\n" for a in argv).encode())
    expect_eq(wk("exec", T, "--", "/prog", "exit", "7").rc, 7, "exit 7")
    expect_eq(wk("exec", T, "--", "/prog", "exit", "0").rc, 0, "exit 0")
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV):
        r = wk("exec", T, "--", "/prog", "kill", str(int(sig)))
        expect_eq(r.rc, 128 + int(sig), "status of a command killed by %s" % sig.name)
    r = wk("exec", T, "--", "/prog", "stderr")
    ok(r, "stderr apart", b"to-out\n")
    expect_eq(r.err, b"to-err\n", "stderr")
    r = wk("exec", T, "--", "/prog", "cat", "/data.txt")
    ok(r, "the image's data file", DATA)
    r = wk("exec", T, "--", "/no/such/program", "x")
    expect_eq(r.rc, 127, "status of a missing command\n" + r.describe())
    expect(b"/no/such/program" in r.err and b"No such file" in r.err,
           "reason for 127: %s" % show(r.err))
    wk("mux", "stop", T)
    only_init_left(RO)


@check("brought in: fd 3 is a sealed memfd of wicketd-static, the stream a socket; "
           "sessions inherit neither; the agent keeps the container's confinement")
def _():
    need()
    T = "podman/" + RO
    p = held(T, "fds", "--share", "no")
    hp = host_pid_of(RO, BROUGHT_IN)
    fd3 = os.readlink("/proc/%d/fd/3" % hp)
    expect(fd3.startswith("/memfd:wicketd"), "fd 3 of the agent: %r" % fd3)
    # The stream (fd 4) is parsed by the agent's protocol worker, its child.
    kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and
            status_of_quiet(int(d)).get("PPid") == str(hp)]
    socks = [k for k in kids if fd_link(k, 4).startswith("socket:")]
    expect(socks, "no process of the agent has the stream socket at fd 4")
    mfd = os.open("/proc/%d/fd/3" % hp, os.O_RDONLY)
    try:
        seals = fcntl.fcntl(mfd, fcntl.F_GET_SEALS)
        for s in (fcntl.F_SEAL_WRITE, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_SEAL):
            expect(seals & s, "memfd seals %#x lack %#x" % (seals, s))
        with open(STATIC, "rb") as f:
            expect(os.read(mfd, 1 << 16) == f.read(1 << 16), "the memfd is not wicketd-static")
    finally:
        os.close(mfd)
    try:
        os.close(os.open("/proc/%d/fd/3" % hp, os.O_WRONLY))
        raise Failure("the agent's memfd opened for writing")
    except OSError as e:
        expect(e.errno in (errno.EPERM, errno.EACCES, errno.ETXTBSY),
               "opening the memfd for writing: %s" % e)
    # Podman's confinement: as the container's init has it.
    ip = int(pm("inspect", "--format", "{{.State.Pid}}", RO).out)
    a, i = status_of(hp), status_of(ip)
    for k in ("Seccomp", "CapBnd", "NoNewPrivs"):
        expect_eq(a[k], i[k], "%s of the agent vs the container's init" % k)
    expect_eq(a["Seccomp"], "2", "the agent runs under podman's seccomp filter")
    for ns in ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup"):
        expect_eq(os.readlink("/proc/%d/ns/%s" % (hp, ns)),
                  os.readlink("/proc/%d/ns/%s" % (ip, ns)), "%s namespace" % ns)
    with open("/proc/%d/cgroup" % hp) as f1, open("/proc/%d/cgroup" % ip) as f2:
        expect_eq(f1.read(), f2.read(), "cgroups of the agent and the container's init")
    try:
        with open("/proc/%d/attr/current" % hp, "rb") as f1, \
                open("/proc/%d/attr/current" % ip, "rb") as f2:
            expect_eq(f1.read(), f2.read(), "LSM label")
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        tap._diag("no LSM labels here (attr/current: EINVAL): not compared")
    p.stdin.close()
    expect_eq(p.wait(timeout=60), 0, "held session status")
    r = wk("--share", "no", "exec", T, "--", "/prog", "fds")
    ok(r, "fds")
    fds = [ln.split()[0] for ln in r.out.decode().splitlines()]
    expect_eq(fds, ["0", "1", "2"], "descriptors of a session: %s" % r.out.decode())
    only_init_left(RO)


@check("--tools: the host's static busybox in the shell-less image (ls, cat, sh, ps), "
       "nothing of it left there (podman diff, podman top)")
def _():
    need()
    if not os.path.exists("/bin/busybox"):
        raise Skip("busybox-static is not installed")
    T = "podman/" + RO
    r = wk("exec", "--tools", T, "--", "ls", "/")
    names = r.out.split()
    expect(r.rc == 0 and b"prog" in names and b"data.txt" in names and b"bin" not in names,
           "ls / in the image\n" + r.describe())
    ok(wk("exec", "--tools", T, "--", "cat", "/data.txt"), "cat /data.txt", DATA)
    r = wk("exec", "--tools", T, "--", "sh", "-c", "echo $((6*7)); ps")
    expect(r.rc == 0 and r.out.startswith(b"42\n") and b"/prog sleep" in r.out,
           "sh and ps\n" + r.describe())
    r = wk("exec", "--tools", T, "--", "sh", "-c", "exit 5")
    expect_eq(r.rc, 5, "exit status through the toolbox's sh")
    only_init_left(RO)


def tmux_pane(name, line, cols, rows):
    """A tmux server of the check's own (status line off, TERM=xterm) whose
    cols x rows pane runs the sh command @line, then sleeps; killed at
    cleanup.  Returns (the tmux argv to drive it, its environment)."""
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    tmp = S["tmp"]
    conf = os.path.join(tmp, "tmux.conf")
    with open(conf, "w") as f:
        f.write("set -g status off\n")
    env = dict(os.environ, TERM="xterm")
    env.pop("TMUX", None)
    script = os.path.join(tmp, name + ".sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n%s\nexec sleep 60\n" % line)
    tmux = ["tmux", "-S", os.path.join(tmp, "tmux-%s.sock" % name), "-f", conf]
    r = run(tmux + ["new-session", "-d", "-x", str(cols), "-y", str(rows), "sh " + script],
            env=env)
    tap.at_cleanup(lambda: subprocess.run(tmux + ["kill-server"], stderr=subprocess.DEVNULL))
    expect_eq(r.rc, 0, "tmux\n" + r.describe())
    return tmux, env


@check("pty size under tmux: wicket exec -t sees the terminal's rows and columns")
def _():
    need()
    out = os.path.join(S["tmp"], "tty.out")
    tmux_pane("tty", "%s exec -t podman/%s -- /prog tty-size > %s.tmp 2>&1; "
              "echo rc=$? >> %s.tmp; mv %s.tmp %s"
              % (shlex.quote(wicket()[0]), RO, out, out, out, out), 101, 37)
    wait_until(lambda: os.path.exists(out), timeout=60, what="the tty-size output")
    text = open(out).read()
    expect("size 37 101" in text and "rc=0" in text, "under tmux: %r" % text)
    wk("mux", "stop", "podman/" + RO)
    only_init_left(RO)


@check("shell --tools under tmux: a login sh from the host's busybox in the shell-less "
       "image, the pane's size, exit 3 comes back")
def _():
    need()
    if not os.path.exists("/bin/busybox"):
        raise Skip("busybox-static is not installed")
    out = os.path.join(S["tmp"], "tools.rc")
    tmux, env = tmux_pane("tools", "%s shell --tools podman/%s; echo rc=$? > %s.tmp; mv %s.tmp %s"
                          % (shlex.quote(wicket()[0]), RO, out, out, out), 99, 31)

    def pane():
        return run(tmux + ["capture-pane", "-p"], env=env).out.decode("utf-8", "replace")
    wait_until(lambda: "$" in pane() or "#" in pane(), timeout=60, what="a prompt")
    run(tmux + ["send-keys", "echo $((6*7))x; stty size; ls /", "Enter"], env=env)
    wait_until(lambda: "42x" in pane() and "data.txt" in pane(), timeout=30,
               what="the shell's answers in the pane")
    expect("31 99" in pane(), "stty size in the pane:\n" + pane())
    run(tmux + ["send-keys", "exit 3", "Enter"], env=env)
    wait_until(lambda: os.path.exists(out), timeout=30, what="wicket shell to end")
    expect_eq(open(out).read().strip(), "rc=3", "wicket shell's status")
    wk("mux", "stop", "podman/" + RO)
    only_init_left(RO)


@check("cp both ways to the tmpfs and to the volume, byte-exact; the read-only root "
           "refuses writes with the server's reason")
def _():
    need()
    T = "podman/" + RO
    tmp = S["tmp"]
    src = os.path.join(tmp, "up.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(5 * 1024 * 1024 + 17))
    data = open(src, "rb").read()
    for where in ("/scratch/up.bin", "/vol/up.bin"):
        ok(wk("cp", "-q", src, T + ":" + where), "cp up to " + where)
        back = os.path.join(tmp, "back-" + where.replace("/", "_"))
        ok(wk("cp", "-q", T + ":" + where, back), "cp down from " + where)
        expect(open(back, "rb").read() == data, "%s: not byte-exact" % where)
    expect(open(os.path.join(S["vol"], "up.bin"), "rb").read() == data,
           "the volume's file on the host differs")
    r = wk("exec", T, "--", "/prog", "cat", "/scratch/up.bin")
    expect(r.rc == 0 and r.out == data, "cat of the uploaded file in the container")
    r = wk("cp", "-q", src, T + ":/up.bin")
    expect_eq(r.rc, 1, "cp to the read-only root\n" + r.describe())
    expect(b"Read-only file system" in r.err, "reason: %s" % show(r.err))
    wk("mux", "stop", T)
    only_init_left(RO)


@check("the container's own wicketd is used when it has one (-v says which; podman top "
           "shows it), the static one is brought in where there is none")
def _():
    need()
    r = wk("-v", "--share", "no", "exec", "podman/" + OWN, "--", "/prog", "args", "own")
    ok(r, "exec with its own agent", b"own\n")
    expect(b"has its own agent: /usr/sbin/wicketd" in r.err, "-v: %s" % show(r.err[-2000:]))
    r = wk("-v", "--share", "no", "exec", "podman/" + RO, "--", "/prog", "args", "in")
    ok(r, "exec with the agent brought in", b"in\n")
    expect(b"brought in" in r.err and b"has no wicketd of its own" in r.err,
           "-v: %s" % show(r.err[-2000:]))
    p = held("podman/" + OWN, "own", "--share", "no")
    expect_eq(len(agent_pids(OWN, "/usr/sbin/wicketd --stdio")), 1,
              "its own agent in podman top %s: %r" % (OWN, top(OWN)))
    p.stdin.close()
    p.wait(timeout=60)
    r = wk("cp", "-q", STATIC, "podman/%s:/scratch/x" % OWN)
    ok(r, "cp through its own agent (its sftp server is the same program)")
    r = wk("exec", "podman/" + OWN, "--", "/prog", "cat", "/scratch/x")
    expect(r.rc == 0 and r.out == open(STATIC, "rb").read(), "the copy differs")
    wk("mux", "stop", "podman/" + OWN)
    only_init_left(OWN)


@check("through the mux: two concurrent execs share one stream (mux status: 2 clients), "
           "one podman exec")
def _():
    need()
    T = "podman/" + RO
    wk("mux", "stop", T)
    a = held(T, "m1")
    b = held(T, "m2")
    r = wk("mux", "status", T)
    ok(r, "mux status")
    busy = re.findall(rb"^client \d+: pid \d+, ([1-9]\d*) channels", r.out, re.M)
    expect_eq(len(busy), 2, "clients with a channel:\n" + r.out.decode())
    expect_eq(len(agent_pids(RO, BROUGHT_IN)), 1,
              "agents in the container: %r" % top(RO))
    for p in (a, b):
        p.stdin.close()
        expect_eq(p.wait(timeout=60), 0, "held session status")
    ok(wk("exec", T, "--", "/prog", "args", "warm"), "a warm exec", b"warm\n")
    wk("mux", "stop", T)
    only_init_left(RO)


# ---------------------------------------------------------------- errors


def one_line(r, *needles):
    expect_eq(r.rc, 255, "status\n" + r.describe())
    expect_eq(r.err.count(b"\n"), 1, "one line on stderr: %s" % show(r.err))
    for n in needles:
        expect(n.encode() in r.err, "%r not in %s" % (n, show(r.err)))


@check("errors: missing container, not running, podman not installed, no agent to bring "
           "in, a bad name: one line 'podman/NAME: ...', exit 255")
def _():
    need()
    one_line(wk("exec", "podman/%s-nothere" % TAG, "--", "/prog"),
             "wicket: podman/%s-nothere: no container" % TAG, "root's (rootful) podman")
    name = TAG + "-stop"
    pm("create", "--name", name, "--network", "none", IMG, "/prog", "sleep")
    one_line(wk("exec", "podman/" + name, "--", "/prog"), "podman/%s: " % name,
             "not running (created)")
    pm("start", name)
    pm("stop", "-t", "5", name)
    one_line(wk("exec", "podman/" + name, "--", "/prog"), "not running (exited, exit code 0)")
    pm("rm", name)
    env = dict(os.environ, WICKET_PODMAN="podman-not-here-%d" % os.getpid())
    one_line(run(wicket("--share", "no", "exec", "podman/" + RO, "--", "/prog"), env=env,
                 timeout=60), "podman/%s: podman is not installed" % RO)
    env = dict(os.environ, WICKETD_STATIC="/nonexistent/wicketd-static")
    one_line(run(wicket("--share", "no", "exec", "podman/" + RO, "--", "/prog"), env=env,
                 timeout=60), "cannot bring the agent in", "/nonexistent/wicketd-static")
    one_line(wk("exec", "podman/--all", "--", "/prog"), "not a podman container name")
    only_init_left(RO)


@check("a container stopped mid-session: 255 and the reason, directly and through the mux")
def _():
    need()
    for share in ("no", "auto"):
        name = TAG + "-stop2"
        pm("rm", "-f", "-t", "0", name, check=False)
        pm("run", "-d", "--name", name, "--network", "none", "--read-only", IMG, "/prog",
           "sleep")
        p = held("podman/" + name, "mid", "--share", share)
        pm("kill", name)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise Failure("wicket did not end after the container stopped (--share %s)" % share)
        err = p.stderr.read()
        expect_eq(rc, 255, "status (--share %s): %s" % (share, show(err)))
        expect(b"connection lost" in err and b"the container stopped" in err,
               "reason (--share %s): %s" % (share, show(err)))
        pm("rm", "-f", "-t", "0", name)


# ---------------------------------------------------------------- list, ssh


@check("wicket list shows the running containers and how each is reached; without "
           "podman the section is left out (-v says so)")
def _():
    need()
    r = wk("list")
    text = r.out.decode()
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("podman/")}
    expect("podman/" + RO in rows and "brought in" in rows["podman/" + RO],
           "no 'brought in' row for %s:\n%s" % (RO, text))
    expect("podman/" + OWN in rows and "agent inside (/usr/sbin/wicketd)" in rows["podman/" + OWN],
           "no 'agent inside' row for %s:\n%s" % (OWN, text))
    expect_eq(r.rc, 0, "list status (containers listed)\n" + r.describe())
    env = dict(os.environ, WICKET_PODMAN="podman-not-here")
    r = run(wicket("-v", "list"), env=env, timeout=60)
    expect(b"podman/" not in r.out, "containers listed without podman:\n" + r.describe())
    expect(b"no podman section: podman is not installed" in r.err, "-v: %s" % show(r.err))


@check("ssh/sftp podman%NAME through the ssh-config snippet (wicket proxy --ssh "
           "podman/NAME); a command line needs a shell: 127 with the reason")
def _():
    need()
    if not shutil.which("ssh"):
        raise Skip("ssh is not installed")
    tmp = S["tmp"]
    r = wk("ssh-config")
    ok(r, "ssh-config")
    conf = r.out.decode().replace("ProxyCommand wicket ",
                                  "ProxyCommand %s " % wicket()[0]).replace(
        "~/.local/state/wicket/known_hosts", tmp + "/known_hosts")
    path = os.path.join(tmp, "ssh_config")
    with open(path, "w") as f:
        f.write(conf + "\tLogLevel error\n\tBatchMode yes\n")
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    # ssh sends a command line for the user's shell, and the image has none.
    r = run(["ssh", "-F", path, "podman%" + RO, "/prog", "args", "via-ssh"], env=env,
            timeout=120)
    expect_eq(r.rc, 127, "ssh podman%NAME CMD in a shell-less image\n" + r.describe())
    expect(b"/bin/sh" in r.err, "reason: %s" % show(r.err))
    src = os.path.join(tmp, "ssh.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(300000))
    batch = "put %s /scratch/ssh.bin\nget /scratch/ssh.bin %s.back\n" % (src, src)
    r = run(["sftp", "-F", path, "-b", "-", "podman%" + RO], input=batch.encode(), env=env,
            timeout=120)
    ok(r, "sftp podman%NAME")
    expect(open(src + ".back", "rb").read() == open(src, "rb").read(), "sftp copy differs")
    r = run(["ssh", "-F", path, "-s", "podman/" + RO, "sftp"], input=b"", env=env, timeout=120)
    expect_eq(r.rc, 0, "ssh -s podman/NAME sftp\n" + r.describe())
    wk("mux", "stop", "podman/" + RO)
    only_init_left(RO)


# ---------------------------------------------------------------- rootless


def rootless_env(home):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "USER": USER,
            "LOGNAME": USER, "XDG_RUNTIME_DIR": os.path.join(home, "xdg"),
            "CONTAINERS_CONF": os.path.join(home, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(home, "storage.conf"),
            "WICKETD_STATIC": STATIC}


def as_user(argv, home, timeout=120):
    env = rootless_env(home)
    return run(["setpriv", "--reuid", USER, "--regid", USER, "--init-groups",
                "--reset-env", "--"] + ["env"] + ["%s=%s" % kv for kv in env.items()] + argv,
               timeout=timeout, cwd=home)


def drop_user(home):
    if os.path.exists(home):
        as_user(["podman", "rm", "-a", "-f", "-t", "0"], home, timeout=120)
        as_user(["podman", "rmi", "-a", "-f"], home, timeout=120)
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        return
    # podman's pause process and any mux of the user's: ours, by pid.
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat("/proc/" + d).st_uid == uid:
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass
    subprocess.run(["userdel", "-r", USER], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


@check("rootless podman as an unprivileged user: exec (agent brought in), cp; root's "
           "containers are not its own; root's podman socket: permission denied, said so")
def _():
    need()
    for t in ("useradd", "setpriv", "newuidmap"):
        if not shutil.which(t):
            raise Skip("%s is not installed (uidmap, passwd, util-linux)" % t)
    r = run(["unshare", "--user", "--map-root-user", "true"])
    if r.rc != 0:
        raise Skip("user namespaces do not work here: %s" % show(r.err))
    home = os.path.join(S["tmp"], "user")
    try:
        pwd.getpwnam(USER)
        drop_user(home)
    except KeyError:
        pass
    r = run(["useradd", "-M", "-d", home, "-s", "/bin/sh", USER])
    expect_eq(r.rc, 0, "useradd\n" + r.describe())
    tap.at_cleanup(lambda: drop_user(home))
    uid = pwd.getpwnam(USER).pw_uid
    for f in ("/etc/subuid", "/etc/subgid"):
        with open(f) as fh:
            if not any(ln.startswith(USER + ":") for ln in fh):
                with open(f, "a") as fa:
                    fa.write("%s:%d:65536\n" % (USER, 200000 + 65536 * (uid % 100)))
    os.makedirs(os.path.join(home, "xdg"), mode=0o700)
    containers_conf(os.path.join(home, "containers.conf"), home)
    storage_conf(os.path.join(home, "storage.conf"), home)
    shutil.copy(S["tar"], os.path.join(home, "img.tar"))
    for dp, dn, fn in os.walk(home):
        for n in [dp] + [os.path.join(dp, x) for x in fn]:
            os.chown(n, uid, uid)
    r = as_user(["podman", "import", "-q", "img.tar", IMG], home)
    if r.rc != 0:
        raise Skip("rootless podman cannot import here: %s" % show(r.err))
    name = TAG + "-user"
    r = as_user(["podman", "run", "-d", "--name", name, "--read-only", "--network", "none",
                 "--tmpfs", "/scratch", IMG, "/prog", "sleep"], home)
    if r.rc != 0:
        raise Skip("rootless podman cannot run containers here: %s" % show(r.err))
    W = wicket()[0]
    r = as_user([W, "exec", "podman/" + name, "--", "/prog", "args", "rootless"], home)
    ok(r, "rootless exec", b"rootless\n")
    r = as_user([W, "-v", "--share", "no", "exec", "podman/" + name, "--", "/prog", "exit",
                 "3"], home)
    expect_eq(r.rc, 3, "rootless exit status\n" + r.describe())
    expect(b"brought in" in r.err, "rootless: agent not brought in: %s" % show(r.err[-1500:]))
    src = os.path.join(home, "f.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20))
    os.chown(src, uid, uid)
    ok(as_user([W, "cp", "-q", "f.bin", "podman/%s:/scratch/f.bin" % name], home), "cp up")
    ok(as_user([W, "cp", "-q", "podman/%s:/scratch/f.bin" % name, "g.bin"], home), "cp down")
    expect(open(os.path.join(home, "g.bin"), "rb").read() == open(src, "rb").read(),
           "rootless cp not byte-exact")
    # Root's container is not the user's (and the reverse).
    r = as_user([W, "exec", "podman/" + RO, "--", "/prog"], home)
    one_line(r, "no container '%s'" % RO, "rootless podman of user " + USER)
    r = wk("exec", "podman/" + name, "--", "/prog")
    one_line(r, "no container '%s'" % name, "root's (rootful) podman")
    as_user([W, "mux", "stop", "podman/" + name], home)
    as_user(["podman", "rm", "-f", "-t", "0", name], home)
    # A podman service socket only root may use (as /run/podman/podman.sock).
    d = os.path.join(S["tmp"], "rootonly")
    os.mkdir(d, 0o711)
    srv = socket.socket(socket.AF_UNIX)
    tap.at_cleanup(srv.close)
    srv.bind(os.path.join(d, "podman.sock"))
    srv.listen()
    os.chmod(os.path.join(d, "podman.sock"), 0o600)
    r = as_user(["env", "CONTAINER_HOST=unix://" + d + "/podman.sock", W, "--share", "no",
                 "exec", "podman/" + RO, "--", "/prog"], home)
    one_line(r, "podman/%s: permission denied by the podman service at CONTAINER_HOST=" % RO)


if __name__ == "__main__":
    tap.main(setup)
