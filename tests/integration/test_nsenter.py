#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pid/PID: the static agent brought into the namespaces of a running
process (transports/nsenter.c), against real sandboxes: bubblewrap with
every namespace unshared (in cgroups of its own), and `unshare --pid
--mount-proc` running a probe as nobody with a reduced bounding set.  The
session must see what the sandbox sees and hold no more than it does; a
hostile sandbox gets nothing of the host through the agent."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctrlib import (DATA, PASSWD_MARK, build_probe, check, expect_confined_like,  # noqa: E402
                    fd_targets, find_pid, guarded, make_rootfs, popen_wicket, sha256,
                    static_agent, status, wait_gone)
from taplib import (Failure, Skip, expect, expect_eq, need_tool, run, spawn, tap,  # noqa: E402
                    wicket)

S = {}
DIRECT = dict(os.environ, WICKET_SHARE="no")
INNER_PROBE = "/tmp/.probe"  # where the bwrap sandbox sees the probe


def make_cgroups(name):
    """Directories of our own in the v1 pids and the v2 hierarchy (when
    mounted and writable), so that joining them is visible."""
    made = []
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            left, _, right = ln.partition(" - ")
            fstype, _, sup = right.split()[:3]
            mp = left.split()[4]
            if (fstype == "cgroup" and "pids" in sup.split(",")) or fstype == "cgroup2":
                d = os.path.join(mp, name)
                try:
                    os.mkdir(d)
                except OSError:
                    continue
                made.append(d)

    def rm():
        for d in made:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)
    tap.at_cleanup(rm)
    return made


def bwrap_sandbox(tag, cg=(), root=None, extra=()):
    """A bwrap sandbox running `probe sleep 100000 TAG`: every namespace
    unshared, read-only root (the host's, or @root), a private /tmp.
    Returns (the bwrap process, the inner probe's host pid)."""
    if root:
        fs = ["--ro-bind", root, "/", "--tmpfs", "/tmp"]
        inner = "/probe"
    else:
        fs = ["--ro-bind", "/", "/", "--tmpfs", "/tmp", "--ro-bind", S["probe"], INNER_PROBE]
        inner = INNER_PROBE
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"] + fs + [
        "--proc", "/proc", "--dev", "/dev", "--hostname", "wicket-" + tag, "--chdir", "/"] + \
        list(extra) + ["--", inner, "sleep", "100000", tag]
    join = "".join('echo $$ > %s/cgroup.procs; ' % d for d in cg)
    p = spawn(["sh", "-c", join + 'exec "$@"', "sh"] + argv, stdin=subprocess.DEVNULL)
    pid = find_pid([inner, "sleep", "100000", tag])
    return p, pid


def setup():
    need_tool("bwrap")
    need_tool("unshare")
    need_tool("setpriv")
    S["tmp"] = tap.tmpdir("wicket-nsenter-it-")
    os.chmod(S["tmp"], 0o755)
    S["agent"] = static_agent()
    S["probe"] = build_probe(S["tmp"])
    S["cg"] = make_cgroups("wicket-nsenter-%d" % os.getpid())
    S["bw"], S["bwpid"] = bwrap_sandbox("sbx", S["cg"])
    # pid 1 of its own PID namespace, nobody, a bounding set of three.
    p = spawn(["unshare", "--fork", "--pid", "--mount-proc", "--uts", "--ipc", "sh", "-c",
               "hostname wicket-uns && exec setpriv --reuid=65534 --regid=65534 "
               "--clear-groups --bounding-set=-all,+chown,+kill,+setuid --inh-caps=-all "
               '"$0" sleep 100000 uns', S["probe"]], stdin=subprocess.DEVNULL)
    S["uns"] = p
    S["unspid"] = find_pid([S["probe"], "sleep", "100000", "uns"])


def T(key="bwpid"):
    return "pid/%d" % S[key]


def px(*args, target=None, env=DIRECT, timeout=60):
    """wicket exec TARGET -- probe ARGS."""
    probe = INNER_PROBE if (target or T()) == T() else S["probe"]
    return run(wicket("exec", target or T(), "--", probe, *args), env=env, timeout=timeout)


def session_pid(target, tag, probe):
    """Start `probe sleep 60 TAG` in @target; (wicket process, host pid)."""
    p = popen_wicket(wicket("exec", target, "--", probe, "sleep", "60", tag), env=DIRECT)
    tap.at_cleanup(lambda: (p.kill(), p.wait()))
    return p, find_pid([probe, "sleep", "60", tag])


@check("exact argv, exit status, 128+N for a signal, stderr apart, 127 with a reason "
           "for a command that does not exist inside")
def _():
    r = px("argv", "a b", "", "*", "$HOME", "-x")
    expect_eq((r.rc, r.out, r.err), (0, b"[a b]\n[]\n[*]\n[$HOME]\n[-x]\n", b""),
              "argv\n" + r.describe())
    r = px("exit", "7")
    expect_eq(r.rc, 7, "exit status\n" + r.describe())
    r = px("kill", "15")
    expect_eq(r.rc, 143, "signal\n" + r.describe())
    r = px("err")
    expect_eq((r.rc, r.out, r.err), (0, b"out\n", b"err\n"), "stderr apart\n" + r.describe())
    r = run(wicket("exec", T(), "--", "/no/such/program"), env=DIRECT)
    expect(r.rc == 127 and b"/no/such/program" in r.err, "missing command\n" + r.describe())
    r = run(wicket("exec", T(), "--", "sh", "-c", "read x; echo got $x"), input=b"line\n",
            env=DIRECT)
    expect_eq((r.rc, r.out), (0, b"got line\n"), "stdin\n" + r.describe())


@check("the session sees the sandbox's own PID namespace, hostname and mounts")
def _():
    r = px("ps")
    expect_eq(r.rc, 0, "ps\n" + r.describe())
    procs = dict(ln.split(" ", 1) for ln in r.out.decode().splitlines())
    expect(procs.get("1") == "bwrap" and procs.get("2") == ".probe",
           "pid 1 and 2 are not the sandbox's bwrap and probe: %r" % procs)
    expect(len(procs) <= 6 and all(int(p) < 50 for p in procs),
           "processes of another namespace are visible: %r" % procs)
    r = px("hostname")
    expect_eq(r.out, b"wicket-sbx\n", "hostname\n" + r.describe())
    r = px("hostname", target=T("unspid"))
    expect_eq(r.out, b"wicket-uns\n", "hostname (unshare)\n" + r.describe())
    r = px("cat", "/proc/self/mountinfo")
    tmp = [ln for ln in r.out.decode().splitlines() if ln.split()[4] == "/tmp"]
    expect(tmp and " - tmpfs " in tmp[0], "no tmpfs on /tmp inside:\n%s" % r.out.decode())
    with open("/proc/self/mountinfo") as f:
        expect(INNER_PROBE not in f.read(), "the sandbox's mount is visible on the host")
    r = px("cat", "/proc/1/cmdline", target=T("unspid"))
    expect(r.out.startswith(S["probe"].encode()), "unshare: pid 1 is not the probe\n"
           + r.describe())


@check("the session is in the sandbox's namespaces, root and cgroups, with its uid, "
           "groups and capabilities, no_new_privs; so is the agent (run from a memfd)")
def _():
    for key, probe in (("bwpid", INNER_PROBE), ("unspid", S["probe"])):
        p, sess = session_pid(T(key), "cg-" + key, probe)
        expect_confined_like(sess, S[key], "session in %s" % T(key))
        agent = int(status(sess)["PPid"])
        expect_confined_like(agent, S[key], "agent in %s" % T(key))
        exe = os.readlink("/proc/%d/exe" % agent)
        expect(exe.startswith("/memfd:"), "the agent runs from %r, not a memfd" % exe)
        if key == "bwpid" and S["cg"]:
            for d in S["cg"]:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    expect(str(sess) in f.read().split(), "session not in %s" % d)
        os.kill(sess, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        expect_eq(p.returncode, 128 + signal.SIGKILL, "killed session: stderr %r" % err)
    st = status(S["unspid"])
    expect(st["Uid"].split()[0] == "65534" and bin(int(st["CapBnd"], 16)).count("1") == 3,
           "the unshare target is not what the test meant: %r" % st)


@check("no fd of the host tool reaches the sandbox: neither the agent's processes "
           "nor the session hold anything but their own pipes")
def _():
    secret = os.path.join(S["tmp"], "host-secret-fd")
    with open(secret, "w") as f:
        f.write("secret")
    fd = os.open(secret, os.O_RDONLY)  # inheritable: wicket gets it as fd N
    try:
        p = popen_wicket(wicket("exec", T(), "--", INNER_PROBE, "allfds"), env=DIRECT,
                         pass_fds=(fd,))
        out, err = p.communicate(timeout=60)
    finally:
        os.close(fd)
    expect_eq(p.returncode, 0, "allfds: %r" % err)
    lines = out.decode().splitlines()
    expect(lines, "allfds printed nothing")
    bad = [ln for ln in lines if "host-secret" in ln or S["tmp"] in ln or "/dev/pts" in ln]
    expect(not bad, "host fds inside the sandbox:\n" + "\n".join(bad))
    p, sess = session_pid(T(), "fds", INNER_PROBE)
    agent = int(status(sess)["PPid"])
    for pid in (agent, sess):
        odd = [t for t in fd_targets(pid)
               if not t.startswith(("pipe:", "socket:", "anon_inode:", "/dev/null"))]
        expect(not odd, "process %d holds %r" % (pid, odd))
    os.kill(sess, signal.SIGKILL)
    p.communicate(timeout=30)


@check("wicket cp both ways into the sandbox's private /tmp (a tmpfs only it has)")
def _():
    src = os.path.join(S["tmp"], "up.bin")
    data = os.urandom(3 << 20)
    with open(src, "wb") as f:
        f.write(data)
    r = run(wicket("cp", src, T() + ":/tmp/up.bin"), env=DIRECT, timeout=120)
    expect_eq(r.rc, 0, "upload\n" + r.describe())
    expect(not os.path.exists("/tmp/up.bin"), "the upload landed in the host's /tmp")
    r = px("cat", "/tmp/up.bin")
    expect(r.out == data, "the file inside differs (%d bytes)" % len(r.out))
    dst = os.path.join(S["tmp"], "down.bin")
    r = run(wicket("cp", T() + ":/tmp/up.bin", dst), env=DIRECT, timeout=120)
    expect_eq(r.rc, 0, "download\n" + r.describe())
    with open(dst, "rb") as f:
        expect(f.read() == data, "download differs")
    # Through the mux as well.
    r = run(wicket("cp", T("unspid") + ":/proc/1/cmdline", dst), timeout=120)
    expect_eq(r.rc, 0, "download through the mux\n" + r.describe())
    with open(dst, "rb") as f:
        expect(f.read().startswith(S["probe"].encode()), "download through the mux differs")


@check("the process dying mid-session: 255 and the reason, direct and through the mux")
def _():
    for env, what in ((DIRECT, "direct"), (None, "mux")):
        bw, inner = bwrap_sandbox("dies-" + what)
        p = popen_wicket(wicket("exec", "pid/%d" % inner, "--", INNER_PROBE, "sleep", "100"),
                         env=env)
        find_pid([INNER_PROBE, "sleep", "100"])
        os.kill(inner, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        expect(p.returncode == 255 and b"the process ended" in err,
               "%s: rc %s, stderr %r" % (what, p.returncode, err))
        bw.wait(timeout=10)
    # A target that is not its namespace's init: its end ends the session too.
    child = subprocess.Popen(["sleep", "100"])
    tap.at_cleanup(lambda: (child.kill(), child.wait()))
    p = popen_wicket(wicket("exec", "pid/%d" % child.pid, "--", S["probe"], "sleep", "100",
                            "nested"), env=DIRECT)
    find_pid([S["probe"], "sleep", "100", "nested"])
    child.kill()
    child.wait()
    out, err = p.communicate(timeout=30)
    expect(p.returncode == 255 and b"the process ended" in err,
           "host process: rc %s, stderr %r" % (p.returncode, err))


@check("Ctrl-C (SIGINT to wicket's process group) reaches the remote command as a signal "
       "request: 130, the agent and its helper are not in that group")
def _():
    for env in (DIRECT, None):
        p = popen_wicket(wicket("exec", T(), "--", INNER_PROBE, "sleep", "100", "intr"), env=env)
        find_pid([INNER_PROBE, "sleep", "100", "intr"])
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
        expect(p.returncode == 130 and not err, "rc %s, stderr %r" % (p.returncode, err))


@check("errors: no such process, not a pid, permission denied (nobody), no static "
           "agent: one line each, 255; the owner of a user namespace gets in without root")
def _():
    cases = [
        (wicket("exec", "pid/999999999", "--", "true"), DIRECT, b"pid/999999999: no such process"),
        (wicket("exec", "pid/12x", "--", "true"), DIRECT, b"expected pid/PID"),
        (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
         + wicket("exec", T(), "--", "true"), DIRECT, b"permission denied"),
        (wicket("exec", T(), "--", "true"), dict(DIRECT, WICKETD_STATIC="/nonexistent"),
         b"cannot bring the agent in"),
    ]
    for argv, env, want in cases:
        r = run(argv, env=env)
        expect(r.rc == 255 and want in r.err and r.err.count(b"\n") == 1,
               "expected 255 and %r\n%s" % (want, r.describe()))
    # nobody's own user namespace (as rootless engines make): nobody may enter.
    nob = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    p = spawn(nob + ["unshare", "--user", "--map-root-user", "--fork", "--pid", "--mount-proc",
                     S["probe"], "sleep", "100000", "owned"], stdin=subprocess.DEVNULL)
    try:
        pid = find_pid([S["probe"], "sleep", "100000", "owned"])
    except Failure:
        p.poll()
        raise Skip("unprivileged user namespaces are not available here")
    r = run(nob + wicket("exec", "pid/%d" % pid, "--", S["probe"], "status"), env=DIRECT)
    expect_eq(r.rc, 0, "owner enters its user namespace\n" + r.describe())
    expect(b"Uid:\t0\t0\t0\t0" in r.out, "not root inside its namespace\n" + r.describe())
    r = run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
            + wicket("exec", "pid/%d" % pid, "--", "true"), env=DIRECT)
    expect(r.rc == 255 and b"permission denied" in r.err, "another user\n" + r.describe())


@check("hostile sandbox: symlinks out of its root in cp resolve inside it, the "
           "agent's /proc/PID/exe is a sealed memfd nobody can write, host files intact")
def _():
    root = os.path.join(S["tmp"], "rootfs")
    make_rootfs(root, S["probe"])
    bw, inner = bwrap_sandbox("hostile", root=root)
    t = "pid/%d" % inner
    victim = os.path.join(S["tmp"], "victim")
    with open(victim, "w") as f:
        f.write("original")
    for tgt, link in (("/etc/passwd", "/tmp/l1"), ("../../../../../../etc/shadow", "/tmp/l2"),
                      ("/proc/1/root/etc/passwd", "/tmp/l3"), (victim, "/tmp/l4"),
                      ("/proc/self/root/../../..", "/tmp/l5")):
        r = run(wicket("exec", t, "--", "/probe", "symlink", tgt, link), env=DIRECT)
        expect_eq(r.rc, 0, "symlink\n" + r.describe())
    dst = os.path.join(S["tmp"], "got")
    for link in ("/tmp/l1", "/tmp/l3"):
        r = run(wicket("cp", t + ":" + link, dst), env=DIRECT)
        expect_eq(r.rc, 0, "download %s\n%s" % (link, r.describe()))
        with open(dst) as f:
            got = f.read()
        expect(PASSWD_MARK in got, "%s gave the host's passwd, not the sandbox's" % link)
        os.unlink(dst)
    r = run(wicket("cp", t + ":/tmp/l2", dst), env=DIRECT)
    expect(r.rc != 0 and not os.path.exists(dst), "host /etc/shadow through l2\n" + r.describe())
    # A path through a symlinked directory resolves in the sandbox too.
    r = run(wicket("cp", t + ":/tmp/l5/etc/passwd", dst), env=DIRECT)
    expect_eq(r.rc, 0, "download through /tmp/l5\n" + r.describe())
    with open(dst) as f:
        expect(PASSWD_MARK in f.read(), "/tmp/l5/etc/passwd is the host's")
    os.unlink(dst)
    up = os.path.join(S["tmp"], "evil")
    with open(up, "w") as f:
        f.write("evil")
    run(wicket("cp", up, t + ":/tmp/l4"), env=DIRECT)
    with open(victim) as f:
        expect_eq(f.read(), "original", "the host file behind /tmp/l4")
    r = run(wicket("exec", t, "--", "/probe", "cat", "/data.txt"), env=DIRECT)
    expect_eq(r.out, DATA, "its data file")
    # The agent's executable: a memfd, no write access, whoever asks.
    before = sha256(S["agent"])
    p, sess = session_pid(t, "exe", "/probe")
    agent = int(status(sess)["PPid"])
    inside = status(agent)["NSpid"].split()[-1]  # its pid in the sandbox
    r = run(wicket("exec", t, "--", "/probe", "exe", inside), env=DIRECT)
    expect(r.out.startswith(b"/memfd:"), "agent %s runs %r" % (inside, r.out))
    r = run(wicket("exec", t, "--", "/probe", "openw", "/proc/%s/exe" % inside), env=DIRECT)
    expect(r.out.startswith(b"error "), "/proc/%s/exe opened for writing: %r" % (inside, r.out))
    os.kill(sess, signal.SIGKILL)
    p.communicate(timeout=30)
    expect_eq(sha256(S["agent"]), before, "wicketd-static on the host changed")
    bw.send_signal(signal.SIGTERM)
    wait_gone(inner)


@check("--tools: the host's static busybox runs inside a sandbox whose root has no shell "
       "(ls, sh, ps), and nothing of it lands there")
def _():
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        raise Skip("busybox-static is not installed")
    root = os.path.join(S["tmp"], "toolroot")
    for d in ("tmp", "proc", "dev"):  # mount points only: no /bin, no shell
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(S["probe"], os.path.join(root, "probe"))
    before = sorted(os.listdir(root))
    _p, pid = bwrap_sandbox("tools", root=root)
    t = "pid/%d" % pid
    r = run(wicket("exec", "--tools", t, "--", "ls", "/"), env=DIRECT)
    expect(r.rc == 0 and b"probe" in r.out and b"bin" not in r.out.split(), "ls /\n" + r.describe())
    r = run(wicket("exec", "--tools", t, "--", "sh", "-c", "echo $((6*7)); ps"), env=DIRECT)
    expect(r.rc == 0 and r.out.startswith(b"42\n") and b"sleep 100000 tools" in r.out,
           "sh and ps\n" + r.describe())
    expect_eq(sorted(os.listdir(root)), before, "the sandbox's root after the sessions")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("1..0 # SKIP entering namespaces is tested as root")
        sys.exit(0)
    tap.main(guarded(setup))
