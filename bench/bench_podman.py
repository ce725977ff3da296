#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark podman/NAME against podman's own exec and cp.

Builds two images from a static program (tests/integration/ctr_prog.c; no
shell): one without wicketd (wicket brings wicketd-static in) and one with
wicketd-static at /usr/sbin/wicketd (its own agent), runs a container of
each in a podman storage and containers.conf of its own (runc, cgroupfs,
removed at the end), then measures, alternating the contenders in every
round so that noise from this shared machine hits all of them alike:

  exec   wicket --share no exec podman/B -- /prog exit 0   (brought in, cold)
         wicket --share no exec podman/O -- /prog exit 0   (agent inside, cold)
         wicket exec podman/B -- /prog exit 0              (warm: through a running mux)
         podman exec B /prog exit 0
  cp     wicket --share no cp FILE podman/B:/tmp/w   against  podman cp FILE B:/tmp/p
         wicket --share no cp podman/B:/tmp/w OUT    against  podman cp B:/tmp/p OUT

and reports medians and ratios against the targets below, and for each
copy the CPU seconds it cost (the command with its children and the
container's cgroup, where wicket's agent works).  Exit 0 when
the figures were taken (targets met or not), 77 when podman cannot run
containers here, else 1.  Standard library only.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
TAG = "wicket-bench-%d" % os.getpid()
IMG, IMG_OWN = "localhost/%s:1" % TAG, "localhost/%s-own:1" % TAG
B, O = TAG + "-b", TAG + "-o"
# exec: time ratios (wicket / podman exec), lower is better.
# cp: throughput ratios (wicket's MB/s / podman cp's), higher is better.
TARGETS = {
    "exec_cold_brought_in_vs_podman_exec": ("<=", 1.2),
    "exec_cold_agent_inside_vs_podman_exec": ("<=", 1.2),
    "exec_warm_mux_vs_podman_exec": ("<=", 0.2),
    "cp_upload_throughput_vs_podman_cp": (">=", 1.0),
    "cp_download_throughput_vs_podman_cp": (">=", 1.0),
}


class BenchError(Exception):
    pass


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def here(*p):
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *p))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wicket", default=os.environ.get("WICKET") or
                   here("..", "build", "host-tool", "wicket"))
    p.add_argument("--wicketd-static", default=os.environ.get("WICKETD_STATIC") or
                   here("..", "build", "agent", "wicketd-static"))
    p.add_argument("--size-mib", type=int, default=512, help="cp file size (default 512)")
    p.add_argument("--rounds", type=int, default=5, help="cp rounds (default 5)")
    p.add_argument("--exec-rounds", type=int, default=20, help="exec rounds (default 20)")
    p.add_argument("--tmpdir", default=None, help="parent of the private temp dir")
    a = p.parse_args(argv)
    if a.size_mib < 1 or a.rounds < 1 or a.exec_rounds < 1:
        p.error("sizes and rounds must be at least 1")
    return a


def run(argv, timeout=600, env=None, check=True):
    t0 = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    dt = time.monotonic() - t0
    if check and r.returncode != 0:
        raise BenchError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                               r.stderr.decode("utf-8", "replace")[-800:]))
    return dt, r


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(MIB), b""):
            h.update(blk)
    return h.hexdigest()


def setup(a, tmp):
    with open(os.path.join(tmp, "containers.conf"), "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\ntmp_dir = "%s/libpod-tmp"\n' % tmp)
    with open(os.path.join(tmp, "storage.conf"), "w") as f:
        f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n'
                % (tmp, tmp))
    os.environ["CONTAINERS_CONF"] = os.path.join(tmp, "containers.conf")
    os.environ["CONTAINERS_STORAGE_CONF"] = os.path.join(tmp, "storage.conf")
    os.environ["XDG_RUNTIME_DIR"] = os.path.join(tmp, "xdg")
    os.mkdir(os.environ["XDG_RUNTIME_DIR"], 0o700)
    for v in ("CONTAINER_HOST", "CONTAINER_CONNECTION"):
        os.environ.pop(v, None)
    for own, img in ((False, IMG), (True, IMG_OWN)):
        d = os.path.join(tmp, "rootfs-own" if own else "rootfs")
        os.makedirs(os.path.join(d, "tmp"))
        run(["cc", "-static", "-O2", "-o", os.path.join(d, "prog"),
             here("..", "tests", "integration", "ctr_prog.c")])
        if own:
            os.makedirs(os.path.join(d, "usr", "sbin"))
            shutil.copy(a.wicketd_static, os.path.join(d, "usr", "sbin", "wicketd"))
        run(["tar", "-C", d, "--owner=0", "--group=0", "-cf", d + ".tar", "."])
        run(["podman", "import", "-q", d + ".tar", img])
    for name, img in ((B, IMG), (O, IMG_OWN)):
        run(["podman", "run", "-d", "--name", name, "--network", "none", img, "/prog", "sleep"])


def cleanup(a):
    subprocess.run([a.wicket, "mux", "stop", "podman/" + B], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    subprocess.run(["podman", "rm", "-f", "-t", "0", B, O], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    subprocess.run(["podman", "rmi", "-f", IMG, IMG_OWN], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)


def med(xs):
    return statistics.median(xs)


def ctr_cpu_reader(name):
    """A function giving the CPU seconds container @name's cgroup has used
    (what wicket's agent and sftp server spend inside it), or None where
    the cgroup is not found (cgroup v1 cpuacct or v2 cpu.stat)."""
    cid = run(["podman", "inspect", "--format", "{{.Id}}", name])[1].stdout.decode().strip()
    for pat, v2 in (("/sys/fs/cgroup/cpuacct/**/*%s*/cpuacct.usage", False),
                    ("/sys/fs/cgroup/**/*%s*/cpu.stat", True)):
        hits = glob.glob(pat % cid, recursive=True)
        if hits:
            path = min(hits, key=len)  # the container's own, not a child's
            if v2:
                return lambda: int(re.search(r"usage_usec (\d+)", open(path).read()).group(1)) / 1e6
            return lambda: int(open(path).read()) / 1e9
    return None


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv):
    a = parse_args(argv)
    for tool in ("podman", "runc", "cc", "tar"):
        if not shutil.which(tool):
            log("%s is not installed: skipped" % tool)
            return 77
    if not os.access(a.wicketd_static, os.X_OK):
        log("no wicketd-static at %s: skipped" % a.wicketd_static)
        return 77
    tmp = tempfile.mkdtemp(prefix="wicket-bench-podman-", dir=a.tmpdir)
    try:
        try:
            setup(a, tmp)
        except BenchError as e:
            log("podman cannot run containers here: %s" % e)
            return 77
        return measure(a, tmp)
    except BenchError as e:
        log("broken: %s" % e)
        return 1
    finally:
        cleanup(a)
        shutil.rmtree(tmp, ignore_errors=True)


def measure(a, tmp):
    W = a.wicket
    true = ["--", "/prog", "exit", "0"]
    contenders = {
        "wicket_cold_brought_in": [W, "--share", "no", "exec", "podman/" + B] + true,
        "wicket_cold_agent_inside": [W, "--share", "no", "exec", "podman/" + O] + true,
        "wicket_warm_mux": [W, "exec", "podman/" + B] + true,
        "podman_exec": ["podman", "exec", B, "/prog", "exit", "0"],
    }
    run([W, "mux", "start", "--persist", "forever", "podman/" + B])
    for argv in contenders.values():  # warm-up (and a check that each works)
        run(argv, timeout=120)
    ex = {k: [] for k in contenders}
    log("exec: %d rounds" % a.exec_rounds)
    for _ in range(a.exec_rounds):
        for k, argv in contenders.items():
            ex[k].append(run(argv, timeout=120)[0])

    src = os.path.join(tmp, "file")
    with open(src, "wb") as f:
        for _ in range(a.size_mib):
            f.write(os.urandom(MIB))
    want = sha(src)
    cps = {
        "wicket_up": [W, "--share", "no", "cp", "-q", src, "podman/%s:/tmp/w" % B],
        "podman_up": ["podman", "cp", src, "%s:/tmp/p" % B],
        "wicket_down": [W, "--share", "no", "cp", "-q", "podman/%s:/tmp/w" % B, src + ".w"],
        "podman_down": ["podman", "cp", "%s:/tmp/p" % B, src + ".p"],
    }
    for k, argv in cps.items():  # first round checked byte for byte
        run(argv)
    for out in (src + ".w", src + ".p"):
        if sha(out) != want:
            raise BenchError("%s differs from the source" % out)
    cp = {k: [] for k in cps}
    # CPU seconds per copy: the command and its children (wicket, podman
    # exec's client; podman cp), plus the container's cgroup (wicket's agent
    # and sftp server run there; podman cp spends nothing in it).
    cpu = {k: [] for k in cps}
    in_ctr = ctr_cpu_reader(B)
    log("cp: %d rounds of %d MiB" % (a.rounds, a.size_mib))
    for _ in range(a.rounds):
        for k, argv in cps.items():
            c0, g0 = child_cpu(), in_ctr() if in_ctr else 0.0
            cp[k].append(run(argv)[0])
            cpu[k].append(child_cpu() - c0 + ((in_ctr() - g0) if in_ctr else 0.0))
            if k.endswith("_down"):
                os.unlink(argv[-1])

    pe = med(ex["podman_exec"])
    ratios = {
        "exec_cold_brought_in_vs_podman_exec": med(ex["wicket_cold_brought_in"]) / pe,
        "exec_cold_agent_inside_vs_podman_exec": med(ex["wicket_cold_agent_inside"]) / pe,
        "exec_warm_mux_vs_podman_exec": med(ex["wicket_warm_mux"]) / pe,
        "cp_upload_throughput_vs_podman_cp": med(cp["podman_up"]) / med(cp["wicket_up"]),
        "cp_download_throughput_vs_podman_cp": med(cp["podman_down"]) / med(cp["wicket_down"]),
    }
    print("exec (%d rounds, alternating):" % a.exec_rounds)
    for k, xs in ex.items():
        print("  %-26s median %7.1f ms  min %7.1f  max %7.1f" %
              (k, med(xs) * 1e3, min(xs) * 1e3, max(xs) * 1e3))
    print("cp %d MiB (%d rounds, alternating):" % (a.size_mib, a.rounds))
    for k, xs in cp.items():
        print("  %-26s median %6.2f s  %7.1f MiB/s  min %6.2f  max %6.2f  cpu %5.2f s" %
              (k, med(xs), a.size_mib / med(xs), min(xs), max(xs), med(cpu[k])))
    if not in_ctr:
        print("  (cpu: the container's cgroup was not found; its share is left out)")
    print("targets:")
    for k, (op, t) in TARGETS.items():
        v = ratios[k]
        met = v <= t if op == "<=" else v >= t
        print("  %-40s %5.2f  (target %s %.1f)  %s" % (k, v, op, t, "met" if met else "MISSED"))
    targets = {k: {"op": op, "limit": t, "value": ratios[k],
                   "met": ratios[k] <= t if op == "<=" else ratios[k] >= t}
               for k, (op, t) in TARGETS.items()}
    print("BENCH-JSON " + json.dumps({"exec": ex, "cp": cp, "cp_cpu": cpu, "ratios": ratios,
                                      "size_mib": a.size_mib, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
