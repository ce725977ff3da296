# SPDX-License-Identifier: MIT
"""Process-tree inspection for the hardening and hostile-input tests.

Everything comes from /proc: the agent's process tree (listener ->
connection monitor -> protocol worker, monitor -> session children),
status fields, fds, zombies, and who holds a given pty."""

import os
import subprocess
import time

from taplib import Failure, wait_until


def read(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


def status(pid):
    """/proc/PID/status as a dict (empty when the process is gone)."""
    d = {}
    t = read("/proc/%d/status" % pid, b"").decode("utf-8", "replace")
    for ln in t.splitlines():
        k, _, v = ln.partition(":")
        d[k] = v.strip()
    return d


def comm(pid):
    return (read("/proc/%d/comm" % pid, b"") or b"").decode("utf-8", "replace").strip()


def exe_base(pid):
    """Lowest address /proc/PID/maps shows for the process's own executable
    (OSError when the maps are unreadable, e.g. not dumpable and not root)."""
    exe = os.readlink("/proc/%d/exe" % pid)
    with open("/proc/%d/maps" % pid) as f:
        for ln in f:
            if ln.rstrip().endswith(" " + exe):
                return int(ln.split("-", 1)[0], 16)
    raise OSError("no mapping of %s in /proc/%d/maps" % (exe, pid))


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def ppid_map():
    m = {}
    for pid in all_pids():
        st = read("/proc/%d/stat" % pid)
        if not st:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        rest = st[st.rfind(b")") + 2:].split()
        m[pid] = (int(rest[1]), rest[0].decode())
    return m


def descendants(root):
    """Pids below root (not root itself), with their state letter."""
    m = ppid_map()
    kids = {}
    for pid, (pp, _) in m.items():
        kids.setdefault(pp, []).append(pid)
    out, todo = {}, [root]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            if k not in out:
                out[k] = m[k][1]
                todo.append(k)
    return out


def workers(root):
    """Protocol workers (comm wicketd-worker) below root."""
    return sorted(p for p in descendants(root) if comm(p) == "wicketd-worker")


def new_worker(root, before, timeout=10):
    """The one worker below root that is not in before."""
    def find():
        w = [p for p in workers(root) if p not in before]
        return w[0] if len(w) == 1 else None
    return wait_until(find, timeout=timeout, what="a new protocol worker")


def zombies(root):
    return [p for p, s in descendants(root).items() if s == "Z"]


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def fd_targets(pid):
    out = {}
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                pass
    except OSError:
        pass
    return out


def holders(path):
    """Pids with an fd open on path (e.g. /dev/pts/N)."""
    out = []
    for pid in all_pids():
        if path in fd_targets(pid).values():
            out.append(pid)
    return out


def pids_with_marker(marker):
    """Processes whose command line contains marker (bytes or str)."""
    if isinstance(marker, str):
        marker = marker.encode()
    out = []
    for pid in all_pids():
        c = read("/proc/%d/cmdline" % pid, b"") or b""
        if marker in c and pid != os.getpid():
            out.append(pid)
    return out


def vm_hwm_kib(pid):
    v = status(pid).get("VmHWM", "0 kB").split()[0]
    return int(v)


def vm_rss_kib(pid):
    v = status(pid).get("VmRSS", "0 kB").split()[0]
    return int(v)


def limits(pid):
    """/proc/PID/limits: name -> (soft, hard) strings."""
    t = (read("/proc/%d/limits" % pid, b"") or b"").decode()
    out = {}
    for ln in t.splitlines()[1:]:
        name = ln[:26].strip()
        parts = ln[26:].split()
        if len(parts) >= 2:
            out[name] = (parts[0], parts[1])
    return out


def dead(pid):
    """Gone, or a zombie (exited; reaping is its parent's business)."""
    st = status(pid).get("State", "")
    return not st or st.startswith("Z")


def wait_dead(pids, timeout=10, what="processes to exit"):
    wait_until(lambda: all(dead(p) for p in pids), timeout=timeout, what=what)


def no_leftovers(root, baseline_fds, timeout=10):
    """Wait until no process (zombies included) is left below the listener
    root and it holds baseline_fds fds again."""
    def clean():
        d = descendants(root)
        return not d and fd_count(root) == baseline_fds
    try:
        wait_until(clean, timeout=timeout, what="the agent to be back to its idle state")
    except Failure:
        d = descendants(root)
        raise Failure("left behind below the listener %d: %s; listener fds %d (idle: %d)\n%s"
                      % (root, {p: (s, comm(p)) for p, s in d.items()}, fd_count(root),
                         baseline_fds, fd_targets(root)))


def sanitized(binary):
    """Built with ASan/UBSan? (Their runtimes need more memory and syscalls.)"""
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"libasan" in out or b"libubsan" in out


def seccomp_enforced(wicketd):
    """Was wicketd built with libseccomp (its --print-syscalls says so)?"""
    out = subprocess.run([wicketd, "--print-syscalls"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=10).stdout
    return b"not enforced" not in out
