#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark wicket's host-side mux (host-tool/mux/) against the direct path.

Starts a private `wicketd --listen unix/S` and `psusan --listen S2` in a
temporary directory, points XDG_RUNTIME_DIR at a private directory there (so
the mux sockets are ours alone), starts the mux of unix/S with `wicket mux
start`, then measures, alternating the contenders in every round so that
noise from this shared machine hits all of them alike:

  round trip  a) wicket --share auto exec unix/S -- true      (warm: the mux runs)
              b) wicket --share no exec unix/S -- true        (own connection)
              c) plink -batch -ssh-connection S2 true         (psusan)
              floor: wicket --version, a static `true`, /bin/true
  download    wicket [--share no] exec unix/S -- cat FILE > /dev/null
  upload      wicket [--share no] exec unix/S -- sh -c 'cat > /dev/null' < FILE
  guest       in a TCG guest (tests/vm/vmlib.py): warm `wicket exec TARGET --
              true` (mux started just before) against cold (`--share no`, the
              mux stopped first: QEMU's chardev takes one client)

and reports medians and time ratios against the targets below.  Exit status
is 0 whenever the measurement itself worked (targets missed or not); non-zero
only when something broke (a command failed, a transfer was corrupt, a server
or the mux did not come up).  77 means psusan/plink are not installed.  The
guest part is skipped with a printed reason when QEMU (or a kernel, busybox)
is missing, or with --no-vm.

Standard library only.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from bench_exec import (BenchError, Failed, Server, Terminated, Watchdog, run_hashed,  # noqa: E402
                        _on_signal, _proc_io, _wait_exit, default_binary, make_file,
                        own_binaries, resolve_exe)

MIB = 1024 * 1024

# "max": a time ratio (or time) that must not be exceeded; lower is better.
TARGETS = {
    "warm_exec_ms": 1.0,
    "warm_exec_vs_psusan_plink": 0.1,
    "download_mux_vs_direct": 1.1,
    "upload_mux_vs_direct": 1.1,
    "vm_warm_vs_cold": 0.5,
}
TARGET_NAMES = {
    "warm_exec_ms": "warm exec, absolute (ms)",
    "warm_exec_vs_psusan_plink": "warm exec / psusan+plink",
    "download_mux_vs_direct": "download  mux / direct",
    "upload_mux_vs_direct": "upload    mux / direct",
    "vm_warm_vs_cold": "guest exec  warm / cold",
}

RT_KEYS = ("warm", "direct", "psusan_plink", "wicket_version", "static_true", "bin_true")
RT_LABELS = {
    "warm": "wicket exec (warm mux)",
    "direct": "wicket --share no exec",
    "psusan_plink": "psusan+plink",
    "wicket_version": "floor: wicket --version",
    "static_true": "floor: static true",
    "bin_true": "floor: /bin/true (dynamic)",
}
BULK_KEYS = ("download_mux", "download_direct", "upload_mux", "upload_direct")
BULK_LABELS = {
    "download_mux": "download via mux",
    "download_direct": "download --share no",
    "upload_mux": "upload via mux",
    "upload_direct": "upload --share no",
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark wicket's mux: warm exec, bulk through the mux, warm/cold in a guest.")
    p.add_argument("--wicket", default=default_binary("WICKET", "host-tool/wicket"),
                   help="wicket binary (default: $WICKET or ../build/host-tool/wicket)")
    p.add_argument("--wicketd", default=default_binary("WICKETD", "agent/wicketd"),
                   help="wicketd binary (default: $WICKETD or ../build/agent/wicketd)")
    p.add_argument("--psusan", default=os.environ.get("PSUSAN", "psusan"))
    p.add_argument("--plink", default=os.environ.get("PLINK", "plink"))
    p.add_argument("--builddir", default=os.environ.get("WICKET_BUILDDIR"),
                   help="meson build dir for the guest image (default: the one of --wicket)")
    p.add_argument("--size-mib", type=int, default=256,
                   help="size of the bulk test file in MiB (default 256)")
    p.add_argument("--rounds", type=int, default=5,
                   help="bulk rounds, each runs all four transfers (default 5)")
    p.add_argument("--exec-rounds", type=int, default=30,
                   help="round-trip rounds, each runs every round-trip contender (default 30)")
    p.add_argument("--vm-rounds", type=int, default=15,
                   help="guest rounds, each runs warm and cold once (default 15)")
    p.add_argument("--vm-settle", type=float, default=0.2,
                   help="idle pause before each timed guest command, seconds (default 0.2: "
                        "the one vCPU finishes the mux start/stop and the previous session)")
    p.add_argument("--no-vm", action="store_true", help="skip the guest part")
    p.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"),
                   help="QEMU accelerator for the guest part (default tcg)")
    p.add_argument("--memory", type=int, default=512, help="guest RAM in MiB (default 512)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-command hang timeout in seconds (default: 600 for the first "
                        "transfers, then 10x the slowest of them, at least 60; 30 for round "
                        "trips, 120 in the guest)")
    p.add_argument("--stall-timeout", type=float, default=10.0,
                   help="kill a transfer whose read/write byte counts stand still this many "
                        "seconds (default 10)")
    p.add_argument("--peer-retries", type=int, default=40,
                   help="re-runs allowed per psusan+plink round trip that fails (default 40)")
    p.add_argument("--tmpdir", default=None,
                   help="parent directory for the private temp dir (default: system temp)")
    a = p.parse_args(argv)
    if min(a.size_mib, a.rounds, a.exec_rounds, a.vm_rounds) < 1:
        p.error("--size-mib, --rounds, --exec-rounds and --vm-rounds must be at least 1")
    return a


# ---------------------------------------------------------------- a static `true`

def static_true_elf():
    """A minimal static executable that exits 0, for this machine, or None.

    Nothing to load or relocate: what it costs is fork/exec/exit/wait alone,
    the floor of any command started by this harness.
    """
    arch = platform.machine()
    if arch == "x86_64":
        machine = 62
        code = bytes.fromhex("b83c000000" "31ff" "0f05")  # mov eax,60; xor edi,edi; syscall
    elif arch == "aarch64":
        machine = 183
        # mov x8,#93; mov x0,#0; svc #0
        code = struct.pack("<III", 0xd2800ba8, 0xd2800000, 0xd4000001)
    else:
        return None
    base, ehsize, phsize = 0x400000, 64, 56
    size = ehsize + phsize + len(code)
    ehdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
            + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, base + ehsize + phsize, ehsize, 0,
                          0, ehsize, phsize, 1, 0, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


def busybox_static():
    """busybox when it is a static executable (no PT_INTERP), else None."""
    bb = shutil.which("busybox")
    if not bb:
        return None
    try:
        with open(bb, "rb") as f:
            h = f.read(64)
            if h[:4] != b"\x7fELF" or h[4] != 2:
                return None
            phoff, = struct.unpack_from("<Q", h, 32)
            phentsize, phnum = struct.unpack_from("<HH", h, 54)
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
        for i in range(phnum):
            if struct.unpack_from("<I", ph, i * phentsize)[0] == 3:  # PT_INTERP
                return None
    except (OSError, struct.error):
        return None
    return bb


# ---------------------------------------------------------------- timing

class _Alarm(Exception):
    pass


def _on_alarm(_signum, _frame):
    raise _Alarm()


def spawn_timed(argv, timeout, env=None):
    """Wall seconds of one short command (stdio /dev/null, stderr kept).

    posix_spawn (vfork + exec in glibc) and a blocking waitid, a timer for
    the hang timeout: no thread and no polling, so the harness adds as
    little as it can to sub-millisecond figures, and the same to every
    contender (the floor rows show how much).  Raises Failed.
    """
    with tempfile.TemporaryFile() as errf, open(os.devnull, "r+b") as null:
        acts = [(os.POSIX_SPAWN_DUP2, null.fileno(), 0), (os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, errf.fileno(), 2)]
        old = signal.signal(signal.SIGALRM, _on_alarm)
        pid = None
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            t0 = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                                 file_actions=acts)
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            t1 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, 0)
            _, status = os.waitpid(pid, 0)
            pid = None
        except _Alarm:
            raise Failed(f"{argv[0]} {' '.join(argv[1:])}: hung, killed after {timeout:.0f}s")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            errf.seek(0)
            raise Failed(f"{' '.join(argv)}: exit status {rc}\n"
                         f"{errf.read().decode('utf-8', 'replace')[-2000:]}")
    return t1 - t0


def bulk_timed(label, argv, timeout, stall, stdin_path=None, want_read=None, want_write=None):
    """Wall seconds of one transfer with the stall watchdog; raises Failed.

    want_read / want_write: the client's kernel counts of bytes read
    (rchar: the uploaded file) / written (wchar: stdout to /dev/null) must
    reach these, so a transfer that ends early with status 0 is caught.
    """
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        with tempfile.TemporaryFile() as errf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=errf)
            dog = Watchdog(proc, timeout, stall)
            try:
                t1, _ = _wait_exit(proc)
                io = _proc_io(proc.pid)
                rc = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                dog.stop()
            if rc == -signal.SIGKILL and dog.reason:
                raise Failed(f"{label}: {dog.reason}")
            if rc != 0:
                errf.seek(0)
                raise Failed(f"{label}: exit status {rc}\n"
                             f"{errf.read().decode('utf-8', 'replace')[-2000:]}")
            if io is not None:
                if want_read is not None and io[0] < want_read:
                    raise Failed(f"{label}: ended early with status 0: read {io[0]} bytes, "
                                 f"expected at least {want_read}")
                if want_write is not None and io[1] < want_write:
                    raise Failed(f"{label}: ended early with status 0: wrote {io[1]} bytes, "
                                 f"expected at least {want_write}")
    finally:
        if stdin_path:
            stdin.close()
    return t1 - t0


def run_out(argv, timeout, stdin_path=None, env=None):
    """Run argv, return its stdout; raises Failed on a non-zero status or a hang."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        r = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Failed(f"{' '.join(argv)}: hung, killed after {timeout:.0f}s")
    finally:
        if stdin_path:
            stdin.close()
    if r.returncode != 0:
        raise Failed(f"{' '.join(argv)}: exit status {r.returncode}\n"
                     f"{r.stderr.decode('utf-8', 'replace')[-2000:]}")
    return r.stdout


# ---------------------------------------------------------------- muxes

def mux_pids(runtime):
    """Pids of the mux processes whose socket lies under @runtime (ours alone)."""
    pids = []
    prefix = runtime.encode() + b"/"
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[1] == b"--mux-daemon" and argv[3].startswith(prefix):
            pids.append(int(d))
    return pids


def mux_status(wicket, target, timeout=10):
    """`wicket mux status` parsed: {'pid': int, 'to_agent': int, 'from_agent': int}, or None."""
    r = subprocess.run([wicket, "mux", "status", target], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        return None
    st = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(": ")
        if k == "pid":
            st["pid"] = int(v)
        elif k == "bytes":
            # "N to the agent, M from the agent"
            parts = v.replace(",", "").split()
            st["to_agent"], st["from_agent"] = int(parts[0]), int(parts[4])
    return st if "pid" in st else None


def mux_start(wicket, target, timeout=30):
    run_out([wicket, "mux", "start", "--persist", "forever", target], timeout)
    st = mux_status(wicket, target)
    if not st:
        raise BenchError(f"`wicket mux start {target}` succeeded but no mux answers status")
    return st


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return True
        time.sleep(0.005)
    return False


def mux_stop(wicket, target, pid, timeout=10):
    """`wicket mux stop`, then wait until that mux process has exited."""
    run_out([wicket, "mux", "stop", target], timeout)
    if pid and not wait_gone(pid, timeout):
        raise BenchError(f"the mux (pid {pid}) of {target} did not exit after `wicket mux stop`")


def stop_all_muxes(wicket, runtime, targets):
    """Clean-up: ask politely, then end by pid the muxes whose socket is under @runtime."""
    for t in targets:
        try:
            subprocess.run([wicket, "mux", "stop", t], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = mux_pids(runtime)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        while mux_pids(runtime) and time.monotonic() < deadline:
            time.sleep(0.02)


# ---------------------------------------------------------------- helpers

def med(xs):
    return statistics.median(xs)


class Retry:
    """Samples of the flaky peer (psusan) get re-runs; everyone else's failures are fatal."""

    def __init__(self, retries):
        self.retries = retries
        self.peer_failures = []

    def run(self, fn, peer):
        for attempt in range(1 + (self.retries if peer else 0)):
            try:
                return fn()
            except Failed as e:
                if not peer:
                    raise BenchError(str(e))
                first = str(e).splitlines()[0]
                self.peer_failures.append(first)
                log(f"peer failure, retrying: {first}")
        raise BenchError(f"psusan+plink failed {1 + self.retries} times in a row")


def summary(samples):
    return {"median_s": med(samples), "min_s": min(samples), "max_s": max(samples),
            "samples_s": samples}


# ---------------------------------------------------------------- the guest

def vm_part(args, wicket, tmp):
    """Boot a TCG guest; alternate warm (mux) and cold (--share no) `exec -- true`.

    Returns (result dict, None) or (None, reason skipped).  Raises BenchError.
    """
    os.environ["WICKET_BUILDDIR"] = os.path.abspath(
        args.builddir or os.path.join(os.path.dirname(wicket), ".."))
    os.environ["WICKET"] = wicket
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "vm"))
    import vmlib  # after the environment is set (it reads WICKET/WICKET_BUILDDIR)

    why = vmlib.missing()
    if why:
        return None, f"cannot boot a guest here: {why}"
    vm = None
    runtime = os.environ["XDG_RUNTIME_DIR"]
    target = None
    try:
        log(f"booting a guest ({args.accel}) for warm/cold exec")
        # vmlib's readiness probe is a wicket exec: no mux may keep the chardev.
        os.environ["WICKET_SHARE"] = "no"
        try:
            vm = vmlib.boot(os.path.join(tmp, "vm"), serial=False, memory=args.memory,
                            accel=None if args.accel == "auto" else args.accel, timeout=300)
        except vmlib.VMError as e:
            raise BenchError(f"guest did not boot: {e}")
        finally:
            del os.environ["WICKET_SHARE"]
        log(f"guest up after {vm.boot_seconds:.1f}s ({vm.accel})")
        target = vm.target
        to = args.timeout or 120.0
        warm_cmd = [wicket, "--share", "auto", "exec", "-n", target, "--", "true"]
        cold_cmd = [wicket, "--share", "no", "exec", "-n", target, "--", "true"]
        # Untimed warm-up of both paths.
        st = mux_start(wicket, target)
        spawn_timed(warm_cmd, to)
        mux_stop(wicket, target, st["pid"])
        spawn_timed(cold_cmd, to)
        res = {"warm": [], "cold": []}
        for i in range(args.vm_rounds):
            st = mux_start(wicket, target)
            time.sleep(args.vm_settle)
            try:
                res["warm"].append(spawn_timed(warm_cmd, to))
            except Failed as e:
                raise BenchError(f"guest warm exec: {e}")
            after = mux_status(wicket, target)
            if not after or after["pid"] != st["pid"]:
                raise BenchError("the guest's mux changed or vanished during a warm exec")
            mux_stop(wicket, target, st["pid"])
            time.sleep(args.vm_settle)
            try:
                res["cold"].append(spawn_timed(cold_cmd, to))
            except Failed as e:
                raise BenchError(f"guest cold exec: {e}")
            if not vm.alive():
                raise BenchError("QEMU died")
            log(f"guest round {i + 1}/{args.vm_rounds}: warm {res['warm'][-1] * 1e3:.1f} ms  "
                f"cold {res['cold'][-1] * 1e3:.1f} ms")
        return {"accel": vm.accel, "memory_mib": args.memory, "settle_s": args.vm_settle,
                "boot_s": vm.boot_seconds,
                **{k: summary(v) for k, v in res.items()}}, None
    finally:
        if target:
            stop_all_muxes(wicket, runtime, [target])
        if vm is not None:
            vm.stop()


# ---------------------------------------------------------------- main

def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    found = own_binaries(args)
    if found is None:
        return 2
    wicket, wicketd = found
    psusan = resolve_exe(args.psusan)
    plink = resolve_exe(args.plink)
    if psusan is None or plink is None:
        log("psusan/plink not found (Debian package putty-tools); skipping")
        return 77

    tmp = tempfile.mkdtemp(prefix="wicket-bmux.", dir=args.tmpdir)
    runtime = os.path.join(tmp, "run")
    os.mkdir(runtime, 0o700)
    # Our muxes live here, and every command decides sharing from its own
    # --share, not from the caller's environment.
    os.environ["XDG_RUNTIME_DIR"] = runtime
    os.environ.pop("WICKET_SHARE", None)
    servers = []
    mux_targets = []
    vm_res, vm_skip = None, None
    retry = Retry(args.peer_retries)
    try:
        sock_w = os.path.join(tmp, "wicketd.sock")
        sock_p = os.path.join(tmp, "psusan.sock")
        data = os.path.join(tmp, "data.bin")
        log(f"temp dir {tmp}")
        wd = Server("wicketd", [wicketd, "--listen", "unix/" + sock_w, "-q"],
                    sock_w, os.path.join(tmp, "wicketd.log"))
        ps = Server("psusan", [psusan, "--listen", sock_p],
                    sock_p, os.path.join(tmp, "psusan.log"))
        servers = [wd, ps]
        for s in servers:
            s.start()
        target = "unix/" + sock_w

        floor = {}
        st_path = os.path.join(tmp, "static-true")
        elf = static_true_elf()
        if elf:
            with open(st_path, "wb") as f:
                f.write(elf)
            os.chmod(st_path, 0o755)
            floor["static_true"] = [st_path]
        elif busybox_static():
            floor["static_true"] = [busybox_static(), "true"]
        bin_true = shutil.which("true")
        if bin_true:
            floor["bin_true"] = [bin_true]
        floor["wicket_version"] = [wicket, "--version"]

        size = args.size_mib * MIB
        log(f"writing {args.size_mib} MiB test file")
        file_sha = make_file(data, args.size_mib)

        log(f"starting the mux of {target}")
        mux_targets.append(target)
        st0 = mux_start(wicket, target)
        log(f"mux pid {st0['pid']}")

        warm = [wicket, "--share", "auto", "exec", target, "--", "true"]
        direct = [wicket, "--share", "no", "exec", target, "--", "true"]
        plink_rt = [plink, "-batch", "-ssh-connection", sock_p, "true"]
        dl = {"download_mux": [wicket, "--share", "auto", "exec", target, "--", "cat", data],
              "download_direct": [wicket, "--share", "no", "exec", target, "--", "cat", data]}
        ul = {"upload_mux": [wicket, "--share", "auto", "exec", target, "--",
                             "sh", "-c", "cat > /dev/null"],
              "upload_direct": [wicket, "--share", "no", "exec", target, "--",
                                "sh", "-c", "cat > /dev/null"]}

        # Correctness (and page-cache warm-up) of every transfer path.
        log("verifying transfers (sha256), both ways, through the mux and directly")
        first = args.timeout or 600.0
        t_first = []
        for key, cmd in dl.items():
            t0 = time.perf_counter()
            try:
                got, n, _ = run_hashed(" ".join(cmd), cmd, first, args.stall_timeout)
            except Failed as e:
                raise BenchError(f"{key} verify: {e}")
            t_first.append(time.perf_counter() - t0)
            if got != file_sha or n != size:
                raise BenchError(f"{key}: transfer is corrupt: got {n} bytes sha256 {got}, "
                                 f"expected {size} bytes sha256 {file_sha}")
        for key, share in (("upload_mux", "auto"), ("upload_direct", "no")):
            t0 = time.perf_counter()
            try:
                out = run_out([wicket, "--share", share, "exec", target, "--", "sha256sum"],
                              first, stdin_path=data)
            except Failed as e:
                raise BenchError(f"{key} verify: {e}")
            t_first.append(time.perf_counter() - t0)
            got = out.split()[0].decode() if out.split() else ""
            if got != file_sha:
                raise BenchError(f"{key}: the agent's sha256 of the upload is {got!r}, "
                                 f"expected {file_sha}")
        bulk_to = args.timeout or max(60.0, 10 * max(t_first))

        bulk = {k: [] for k in BULK_KEYS}
        for i in range(args.rounds):
            for key in BULK_KEYS:
                try:
                    if key in dl:
                        t = bulk_timed(key, dl[key], bulk_to, args.stall_timeout,
                                       want_write=size)
                    else:
                        t = bulk_timed(key, ul[key], bulk_to, args.stall_timeout,
                                       stdin_path=data, want_read=size)
                except Failed as e:
                    raise BenchError(str(e))
                bulk[key].append(t)
            for s in servers:
                s.check_alive()
            log(f"bulk round {i + 1}/{args.rounds}: "
                + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in bulk.items()))

        rt_to = args.timeout or 30.0
        rt_cmds = {"warm": warm, "direct": direct, "psusan_plink": plink_rt, **floor}
        for key, cmd in rt_cmds.items():  # untimed warm-up of each
            retry.run(lambda c=cmd: spawn_timed(c, rt_to), key == "psusan_plink")
        rt = {k: [] for k in rt_cmds}
        for i in range(args.exec_rounds):
            for key, cmd in rt_cmds.items():
                rt[key].append(retry.run(lambda c=cmd: spawn_timed(c, rt_to),
                                         key == "psusan_plink"))
        for s in servers:
            s.check_alive()
        log(f"round trip: {args.exec_rounds} rounds done")

        st1 = mux_status(wicket, target)
        if not st1 or st1["pid"] != st0["pid"]:
            raise BenchError("the mux of unix/S vanished or was replaced during the run")
        through = st1["from_agent"] - st0["from_agent"]
        if through < args.rounds * size or st1["to_agent"] - st0["to_agent"] < args.rounds * size:
            raise BenchError(f"the mux carried less than the transfers it should have "
                             f"({through} bytes from the agent)")
        stop_all_muxes(wicket, runtime, [target])
        mux_targets.remove(target)

        if args.no_vm:
            vm_skip = "--no-vm"
        else:
            vm_res, vm_skip = vm_part(args, wicket, tmp)
            if vm_skip:
                log(f"guest part skipped: {vm_skip}")
    except BenchError as e:
        log(f"ERROR: {e}")
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stop_all_muxes(wicket, runtime, mux_targets)
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report ------------------------------------------------------------
    rt_med = {k: med(v) for k, v in rt.items()}
    bulk_med = {k: med(v) for k, v in bulk.items()}
    values = {
        "warm_exec_ms": rt_med["warm"] * 1e3,
        "warm_exec_vs_psusan_plink": rt_med["warm"] / rt_med["psusan_plink"],
        "download_mux_vs_direct": bulk_med["download_mux"] / bulk_med["download_direct"],
        "upload_mux_vs_direct": bulk_med["upload_mux"] / bulk_med["upload_direct"],
    }
    if vm_res:
        values["vm_warm_vs_cold"] = vm_res["warm"]["median_s"] / vm_res["cold"]["median_s"]
    extra = {"warm_vs_direct": rt_med["warm"] / rt_med["direct"]}
    for k in ("wicket_version", "static_true"):
        if k in rt_med:
            extra[f"warm_minus_{k}_ms"] = (rt_med["warm"] - rt_med[k]) * 1e3

    print()
    print(f"Round trip: `true`, {args.exec_rounds} rounds (alternating; posix_spawn + waitid, "
          f"stdio /dev/null)")
    print(f"  {'contender':<30} {'median ms':>9} {'min ms':>8} {'max ms':>8}")
    for k in rt:
        v = rt[k]
        print(f"  {RT_LABELS[k]:<30} {rt_med[k] * 1e3:>9.3f} {min(v) * 1e3:>8.3f} "
              f"{max(v) * 1e3:>8.3f}")
    print(f"  warm / --share no: {extra['warm_vs_direct']:.3f}")
    for k in ("wicket_version", "static_true"):
        if f"warm_minus_{k}_ms" in extra:
            print(f"  warm minus {RT_LABELS[k].split(': ')[1]}: "
                  f"{extra[f'warm_minus_{k}_ms']:.3f} ms")
    print()
    print(f"Bulk: {args.size_mib} MiB, {args.rounds} rounds (alternating), sha256 verified")
    print(f"  download: `wicket exec unix/S -- cat FILE > /dev/null`; upload: `wicket exec "
          f"unix/S -- sh -c 'cat > /dev/null' < FILE`")
    print(f"  {'contender':<30} {'median s':>9} {'min s':>8} {'max s':>8} {'MiB/s':>9}")
    for k in BULK_KEYS:
        v = bulk[k]
        print(f"  {BULK_LABELS[k]:<30} {bulk_med[k]:>9.3f} {min(v):>8.3f} {max(v):>8.3f} "
              f"{args.size_mib / bulk_med[k]:>9.1f}")
    print()
    if vm_res:
        print(f"Guest: QEMU {vm_res['accel']}, {vm_res['memory_mib']} MiB, 1 vCPU; `wicket exec "
              f"-n TARGET -- true`, {args.vm_rounds} rounds (alternating, "
              f"{args.vm_settle * 1e3:g} ms idle before each)")
        print(f"  {'contender':<30} {'median ms':>9} {'min ms':>8} {'max ms':>8}")
        for k, label in (("warm", "warm (mux started before)"), ("cold", "cold (--share no)")):
            s = vm_res[k]
            print(f"  {label:<30} {s['median_s'] * 1e3:>9.2f} {s['min_s'] * 1e3:>8.2f} "
                  f"{s['max_s'] * 1e3:>8.2f}")
    else:
        print(f"Guest: skipped ({vm_skip})")
    print()
    if retry.peer_failures:
        print(f"psusan+plink runs that failed and were re-run: {len(retry.peer_failures)}")
        for f in retry.peer_failures:
            print(f"  {f}")
        print()
    print("targets:")
    for k, t in TARGETS.items():
        if k in values:
            ok = "met" if values[k] <= t else "missed"
            print(f"  {TARGET_NAMES[k]:<30} {values[k]:8.3f} <= {t:<5} {ok}")
        else:
            print(f"  {TARGET_NAMES[k]:<30} {'n/a':>8}    {t:<5} not measured ({vm_skip})")
    print()

    result = {
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "exec_rounds": args.exec_rounds,
        "vm_rounds": args.vm_rounds if vm_res else 0,
        "verified_sha256": True,
        "cpus": os.cpu_count(),
        "peer_failures": retry.peer_failures,
        "roundtrip": {k: summary(v) for k, v in rt.items()},
        "bulk": {k: dict(summary(v), mib_per_s=args.size_mib / bulk_med[k])
                 for k, v in bulk.items()},
        "vm": vm_res,
        "vm_skipped": vm_skip,
        "ratios": {**values, **extra},
        "targets": {k: {"max": t, "value": values.get(k),
                        "met": (values[k] <= t) if k in values else None}
                    for k, t in TARGETS.items()},
    }
    print("BENCH-JSON " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
