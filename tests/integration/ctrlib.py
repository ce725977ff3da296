# SPDX-License-Identifier: MIT
"""Helpers for the container tests (test_nsenter.py, test_docker.py): the
static probe program, a minimal root filesystem holding only it and a data
file, and the host's view of a process (status, cgroups, fds)."""

import hashlib
import os
import shutil
import subprocess
import time

from taplib import BUILDDIR, SRCDIR, Failure, Skip, expect, run, wait_until

PASSWD_MARK = "wicket-container-passwd"
DATA = b"the container's own data file\n"


def static_agent():
    p = os.environ.get("WICKETD_STATIC") or os.path.join(BUILDDIR, "agent", "wicketd-static")
    if not os.access(p, os.X_OK):
        raise Skip("wicketd-static is not built (meson -Dstatic_agent=enabled)")
    return p


def build_probe(tmpdir):
    """tests/integration/ctr_probe.c, linked statically, at tmpdir/probe."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        raise Skip("no C compiler to build the probe program")
    out = os.path.join(tmpdir, "probe")
    src = os.path.join(SRCDIR, "tests", "integration", "ctr_probe.c")
    r = run([cc, "-static", "-O1", "-o", out, src], timeout=120)
    if r.rc != 0:
        raise Skip("cannot link a static program here: %s" % r.err.decode(errors="replace")[:200])
    os.chmod(out, 0o755)
    return out


def make_rootfs(root, probe, extra=()):
    """A root with /probe, /data.txt, /etc/passwd and /etc/group (ours, with
    a marker), empty /tmp /proc /dev /vol: no shell, no tar, no wicketd."""
    for d in ("etc", "tmp", "proc", "dev", "sys", "vol"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(probe, os.path.join(root, "probe"))
    os.chmod(os.path.join(root, "probe"), 0o755)
    with open(os.path.join(root, "data.txt"), "wb") as f:
        f.write(DATA)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:%s:/:/probe\nnobody:x:65534:65534:nobody:/:/probe\n" % PASSWD_MARK)
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    for src, dst in extra:
        full = os.path.join(root, dst.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        shutil.copy(src, full)
        os.chmod(full, 0o755)
    os.chmod(root, 0o755)


def status(pid):
    """/proc/PID/status as a dict of stripped strings."""
    d = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            d[k] = v.strip()
    return d


def cgroups(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return sorted(f.read().split())


def fd_targets(pid):
    """readlink of every fd of @pid, from the host."""
    out = []
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, n)))
        except OSError:
            pass
    return out


def find_pid(argv, timeout=15):
    """The one process whose cmdline is exactly @argv."""
    want = b"".join(os.fsencode(a) + b"\0" for a in argv)

    def look():
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        if f.read() == want:
                            return int(d)
                except OSError:
                    pass
        return None
    return wait_until(look, timeout=timeout, what="a process %r" % (argv,))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def expect_confined_like(sess, target, what):
    """A session process (host pid) has the target's ids, capabilities
    (effective = the target's permitted set), no_new_privs and cgroups."""
    s, t = status(sess), status(target)
    for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapBnd"):
        expect(s[k] == t[k], "%s: %s %r, the target's %r" % (what, k, s[k], t[k]))
    expect(s["CapEff"] == t["CapPrm"], "%s: CapEff %r, the target's CapPrm %r"
           % (what, s["CapEff"], t["CapPrm"]))
    expect(s["CapAmb"] == "0000000000000000", "%s: ambient caps %r" % (what, s["CapAmb"]))
    expect(s["NoNewPrivs"] == "1", "%s: NoNewPrivs %r" % (what, s["NoNewPrivs"]))
    expect(cgroups(sess) == cgroups(target), "%s: cgroups %r, the target's %r"
           % (what, cgroups(sess), cgroups(target)))
    for ns in ("mnt", "pid", "uts", "ipc", "net", "user", "cgroup", "time"):
        a = os.readlink("/proc/%d/ns/%s" % (sess, ns))
        b = os.readlink("/proc/%d/ns/%s" % (target, ns))
        expect(a == b, "%s: namespace %s %s, the target's %s" % (what, ns, a, b))
    a, b = os.stat("/proc/%d/root" % sess), os.stat("/proc/%d/root" % target)
    expect((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino), "%s: another root directory" % what)


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid):
            return
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)
    raise Failure("process %d still there after %s s" % (pid, timeout))


def popen_wicket(argv, env=None, pass_fds=()):
    """A background wicket command, stdout/stderr captured."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, pass_fds=pass_fds,
                            start_new_session=True)


# A setup that cannot run here (no dockerd, no bwrap...) skips every check
# with its reason instead of failing them.
_WHY = {}


def guarded(setup):
    def run_setup():
        try:
            setup()
        except Skip as e:
            _WHY["why"] = str(e)
    return run_setup


def check(desc):
    from taplib import tap

    def deco(fn):
        def wrapped():
            if "why" in _WHY:
                raise Skip(_WHY["why"])
            fn()
        tap.check(desc)(wrapped)
        return fn
    return deco
