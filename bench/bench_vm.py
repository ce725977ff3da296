#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark wicket against qemu-guest-agent inside one QEMU guest.

Boots one throwaway guest (tests/vm/vmlib.py; TCG by default) that runs both
wicketd (virtio-serial port org.wicket.agent.0, host socket agent.sock) and
Debian's qemu-ga (port org.qemu.guest_agent.0, host socket qga.sock), writes a
file of random bytes in the guest, then measures, alternating the contenders
in every round so that noise from this shared machine hits both alike:

  round trip  a) wicket exec unix/agent.sock -- true        (whole command)
              b) on qga.sock, from Python: connect, guest-sync, guest-exec
                 /bin/true, guest-exec-status until "exited": true, close
  throughput  a) wicket cp unix/agent.sock:/tmp/f DEST        (whole command)
              b) on qga.sock: connect, guest-sync, guest-file-open /tmp/f,
                 guest-file-read (largest count qemu-ga accepts) until eof,
                 base64-decode and write to DEST, guest-file-close, close

Every copy is checked against the guest's `sha256sum /tmp/f`.  Exit status is
0 whenever the figures were taken (targets met or not), non-zero when
something broke, 77 when a prerequisite (QEMU, kernel, busybox, qemu-ga) is
missing.

Standard library only.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "vm"))

MIB = 1024 * 1024
# qemu-ga's GUEST_FILE_READ_COUNT_MAX (qga/commands.c): larger counts are refused.
QGA_READ_MAX_MIB = 48
QGA_BINARY = "/usr/sbin/qemu-ga"
GUEST_FILE = "/tmp/f"

# Issue 4: wicket >= 5x qemu-ga's throughput, <= 0.5x its exec round trip.
TARGETS = {
    "throughput_wicket_vs_qga": ("min", 5.0),   # speed ratio, higher is better
    "roundtrip_wicket_vs_qga": ("max", 0.5),    # time ratio, lower is better
}


class BenchError(Exception):
    """Something broke: the figures would be meaningless."""


class Terminated(BaseException):
    pass


def _on_signal(signum, _frame):
    raise Terminated(f"signal {signum}")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark wicket against qemu-ga in one guest.")
    p.add_argument("--builddir", default=os.environ.get("WICKET_BUILDDIR")
                   or os.path.normpath(os.path.join(HERE, "..", "build")),
                   help="meson build dir with wicket and wicketd (default ../build)")
    p.add_argument("--wicket", default=None,
                   help="host wicket binary (default $WICKET or BUILDDIR/host-tool/wicket)")
    p.add_argument("--size-mib", type=int, default=64, help="guest file size (default 64)")
    p.add_argument("--rounds", type=int, default=3,
                   help="throughput rounds, each copies once with both (default 3)")
    p.add_argument("--exec-rounds", type=int, default=20,
                   help="round-trip rounds, each runs both once (default 20)")
    p.add_argument("--chunk-mib", type=int, default=QGA_READ_MAX_MIB,
                   help="guest-file-read count in MiB (default and max %d)" % QGA_READ_MAX_MIB)
    p.add_argument("--poll-sleep", type=float, default=0.0,
                   help="sleep between guest-exec-status polls, seconds (default 0: none)")
    p.add_argument("--settle", type=float, default=0.0,
                   help="idle pause before each timed round trip, seconds (default 0: back "
                        "to back, as scripts run them), so that work one contender leaves "
                        "running in the guest does not land in the other's time")
    p.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"),
                   help="QEMU accelerator (default tcg, as in the issue)")
    p.add_argument("--memory", type=int, default=1024, help="guest RAM in MiB (default 1024)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="per-operation timeout in seconds (default 600)")
    p.add_argument("--tmpdir", default=None, help="parent of the private temp dir")
    a = p.parse_args(argv)
    if min(a.size_mib, a.rounds, a.exec_rounds, a.chunk_mib) < 1:
        p.error("--size-mib, --rounds, --exec-rounds and --chunk-mib must be at least 1")
    if a.chunk_mib > QGA_READ_MAX_MIB:
        p.error("qemu-ga refuses guest-file-read counts above %d MiB" % QGA_READ_MAX_MIB)
    return a


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MIB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- qemu-ga client


class QgaError(Exception):
    pass


class Qga:
    """One connection to qemu-ga's virtio-serial chardev socket (QMP-style JSON)."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rf = self.sock.makefile("rb", buffering=1 << 20)
        self.polls = 0

    def close(self):
        try:
            self.rf.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def _recv(self):
        while True:
            line = self.rf.readline()
            if not line:
                raise QgaError("qemu-ga closed the connection")
            line = line.strip(b"\xff \r\n")
            if line:
                return json.loads(line)

    def call(self, cmd, args=None):
        self._send(cmd, args)
        r = self._recv()
        if "error" in r:
            raise QgaError(f"{cmd}: {r['error']}")
        return r["return"]

    def sync(self, ident):
        """guest-sync: resynchronise; drop stale replies until ours arrives."""
        self._send("guest-sync", {"id": ident})
        while True:
            try:
                r = self._recv()
            except json.JSONDecodeError:
                continue
            if r.get("return") == ident:
                return


_sync_id = [int(time.time()) % 100000 * 1000]


def next_id():
    _sync_id[0] += 1
    return _sync_id[0]


def qga_exec_true(path, timeout, poll_sleep):
    """connect + guest-sync + guest-exec /bin/true + poll status; returns #polls."""
    with Qga(path, timeout) as q:
        q.sync(next_id())
        pid = q.call("guest-exec", {"path": "/bin/true", "capture-output": True})["pid"]
        polls = 0
        while True:
            polls += 1
            st = q.call("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                if st.get("exitcode") != 0:
                    raise QgaError(f"/bin/true exited with {st}")
                return polls
            if poll_sleep:
                time.sleep(poll_sleep)


def qga_read_file(path, gpath, dest, chunk, timeout):
    """connect + guest-sync + open/read*/close; writes dest; returns (#reads, bytes)."""
    with Qga(path, timeout) as q:
        q.sync(next_id())
        h = q.call("guest-file-open", {"path": gpath, "mode": "r"})
        reads = n = 0
        try:
            with open(dest, "wb") as out:
                while True:
                    r = q.call("guest-file-read", {"handle": h, "count": chunk})
                    reads += 1
                    data = base64.b64decode(r.get("buf-b64", ""))
                    if len(data) != r["count"]:
                        raise QgaError(f"guest-file-read: count {r['count']} but "
                                       f"{len(data)} bytes decoded")
                    out.write(data)
                    n += len(data)
                    if r.get("eof") or not data:
                        break
        finally:
            q.call("guest-file-close", {"handle": h})
    return reads, n


# ---------------------------------------------------------------- wicket


def run_cmd(argv, timeout, capture=False):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit status {r.returncode}\n"
                         f"{r.stderr.decode('utf-8', 'replace')[-2000:]}")
    return r.stdout


def timed(fn, *a):
    t0 = time.perf_counter()
    v = fn(*a)
    return time.perf_counter() - t0, v


def med(xs):
    return statistics.median(xs)


def main(argv):
    args = parse_args(argv)
    os.environ["WICKET_BUILDDIR"] = os.path.abspath(args.builddir)
    if args.wicket:
        os.environ["WICKET"] = os.path.abspath(args.wicket)
    import vmlib  # after the environment is set (it reads WICKET/WICKET_BUILDDIR)

    why = vmlib.missing()
    if why:
        log(f"cannot boot a guest here: {why}; skipping")
        return 77
    if not os.access(QGA_BINARY, os.X_OK):
        log(f"{QGA_BINARY} not found (Debian package qemu-guest-agent); skipping")
        return 77
    wicket = vmlib.wicket_binary()
    if not os.access(wicket, os.X_OK):
        log(f"{wicket} is not built (ninja -C {args.builddir})")
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    tmp = tempfile.mkdtemp(prefix="wicket-bvm.", dir=args.tmpdir)
    vm = None
    try:
        log(f"temp dir {tmp}; booting guest ({args.accel}) with wicketd and qemu-ga")
        vm = vmlib.boot(os.path.join(tmp, "vm"), serial=False, qga=True, memory=args.memory,
                        accel=None if args.accel == "auto" else args.accel,
                        timeout=300)
        log(f"guest up after {vm.boot_seconds:.1f}s ({vm.accel})")
        target = vm.target
        to = args.timeout

        # qemu-ga comes up independently of wicketd: wait until it answers.
        deadline = time.monotonic() + 120
        while True:
            try:
                with Qga(vm.qga_sock, 10) as q:
                    q.sync(next_id())
                    info = q.call("guest-info")
                break
            except (OSError, QgaError, ValueError) as e:
                if time.monotonic() > deadline or not vm.alive():
                    raise BenchError(f"qemu-ga does not answer on {vm.qga_sock}: {e}\n"
                                     f"console:\n{vm.console(3000)}")
                time.sleep(0.5)
        log(f"qemu-ga {info.get('version')} answers")

        log(f"writing {args.size_mib} MiB of random bytes to {GUEST_FILE} in the guest")
        run_cmd([wicket, "exec", "-n", target, "--", "dd", "if=/dev/urandom",
                 f"of={GUEST_FILE}", "bs=1M", f"count={args.size_mib}"], to)
        out = run_cmd([wicket, "exec", "-n", target, "--", "sha256sum", GUEST_FILE], to,
                      capture=True)
        guest_sha = out.split()[0].decode()
        size = args.size_mib * MIB
        log(f"guest sha256 {guest_sha}")

        dest_w = os.path.join(tmp, "copy-wicket")
        dest_q = os.path.join(tmp, "copy-qga")
        chunk = args.chunk_mib * MIB
        cp_w = [wicket, "cp", "-q", f"{target}:{GUEST_FILE}", dest_w]

        def wicket_cp():
            run_cmd(cp_w, to)

        def check(dest, who):
            st = os.stat(dest)
            got = sha256_file(dest)
            if st.st_size != size or got != guest_sha:
                raise BenchError(f"{who}: copy is corrupt: {st.st_size} bytes sha256 {got}, "
                                 f"expected {size} bytes sha256 {guest_sha}")
            os.unlink(dest)

        # Warm-up (untimed) and a first correctness check of each path.
        log("warm-up copies (verified)")
        wicket_cp()
        check(dest_w, "wicket cp")
        reads, _ = qga_read_file(vm.qga_sock, GUEST_FILE, dest_q, chunk, to)
        check(dest_q, "qemu-ga")

        tp = {"wicket": [], "qga": []}
        qga_reads = []
        for i in range(args.rounds):
            t, _ = timed(wicket_cp)
            check(dest_w, "wicket cp")
            tp["wicket"].append(t)
            t, (reads, _) = timed(qga_read_file, vm.qga_sock, GUEST_FILE, dest_q, chunk, to)
            check(dest_q, "qemu-ga")
            tp["qga"].append(t)
            qga_reads.append(reads)
            log(f"throughput round {i + 1}/{args.rounds}: wicket cp {tp['wicket'][-1]:.3f}s  "
                f"qemu-ga {tp['qga'][-1]:.3f}s ({reads} reads)")
            if not vm.alive():
                raise BenchError("QEMU died")

        rt_w = [wicket, "exec", "-n", target, "--", "true"]
        run_cmd(rt_w, to)
        qga_exec_true(vm.qga_sock, to, args.poll_sleep)
        rt = {"wicket": [], "qga": []}
        polls = []
        for i in range(args.exec_rounds):
            time.sleep(args.settle)
            t, _ = timed(run_cmd, rt_w, to)
            rt["wicket"].append(t)
            time.sleep(args.settle)
            t, n = timed(qga_exec_true, vm.qga_sock, to, args.poll_sleep)
            rt["qga"].append(t)
            polls.append(n)
        if not vm.alive():
            raise BenchError("QEMU died")
        log(f"round trip: {args.exec_rounds} rounds done")
        accel = vm.accel
    except (BenchError, QgaError, vmlib.VMError, OSError,
            subprocess.TimeoutExpired, ValueError) as e:
        log(f"ERROR: {type(e).__name__}: {e}")
        if vm is not None:
            log("console tail:\n" + vm.console(1500))
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if vm is not None:
            vm.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report ------------------------------------------------------------
    tp_med = {k: med(v) for k, v in tp.items()}
    mibs = {k: args.size_mib / v for k, v in tp_med.items()}
    rt_med = {k: med(v) for k, v in rt.items()}
    ratios = {
        # speed ratio: wicket MiB/s / qemu-ga MiB/s (higher is better)
        "throughput_wicket_vs_qga": mibs["wicket"] / mibs["qga"],
        # time ratio: wicket / qemu-ga (lower is better)
        "roundtrip_wicket_vs_qga": rt_med["wicket"] / rt_med["qga"],
    }
    labels = {"wicket": "wicket", "qga": "qemu-ga (Python client)"}
    poll_desc = ("no sleep between polls" if not args.poll_sleep
                 else f"{args.poll_sleep * 1e3:g} ms sleep between polls")

    print()
    print(f"Guest: QEMU {accel}, {args.memory} MiB, 1 vCPU; wicketd and qemu-ga on two "
          f"virtio-serial ports of one device")
    print()
    print(f"Throughput: copy the guest's {args.size_mib} MiB {GUEST_FILE} to a host file, "
          f"{args.rounds} rounds (alternating), sha256 verified against the guest's")
    print(f"  wicket: `wicket cp -q TARGET:{GUEST_FILE} DEST`; qemu-ga: sync + open + "
          f"guest-file-read count {args.chunk_mib} MiB ({qga_reads[0]} reads) + base64 "
          f"decode + close")
    print(f"  {'contender':<26} {'median s':>9} {'min s':>8} {'max s':>8} {'MiB/s':>9}")
    for k in ("wicket", "qga"):
        v = tp[k]
        print(f"  {labels[k]:<26} {tp_med[k]:>9.3f} {min(v):>8.3f} {max(v):>8.3f} "
              f"{mibs[k]:>9.2f}")
    print()
    print(f"Round trip: `true`, {args.exec_rounds} rounds (alternating, {args.settle * 1e3:g} ms "
          f"idle before each)")
    print(f"  wicket: `wicket exec -n TARGET -- true` (whole command); qemu-ga: connect + "
          f"guest-sync + guest-exec /bin/true + guest-exec-status until exited ({poll_desc}; "
          f"polls median {med(polls):g}, max {max(polls)})")
    print(f"  {'contender':<26} {'median ms':>9} {'min ms':>8} {'max ms':>8}")
    for k in ("wicket", "qga"):
        v = rt[k]
        print(f"  {labels[k]:<26} {rt_med[k] * 1e3:>9.2f} {min(v) * 1e3:>8.2f} "
              f"{max(v) * 1e3:>8.2f}")
    print()
    names = {
        "throughput_wicket_vs_qga": "throughput  wicket / qemu-ga (MiB/s, higher better)",
        "roundtrip_wicket_vs_qga": "round trip  wicket / qemu-ga (time, lower better)",
    }
    print("Ratios:")
    for k, r in ratios.items():
        print(f"  {names[k]:<52} {r:7.3f}")
    print()
    print("targets:")
    met = {}
    for k, r in ratios.items():
        kind, t = TARGETS[k]
        met[k] = r >= t if kind == "min" else r <= t
        op = ">=" if kind == "min" else "<="
        print(f"  {names[k]:<52} {r:7.3f} {op} {t:<4} {'met' if met[k] else 'missed'}")
    print()
    result = {
        "accel": accel,
        "memory_mib": args.memory,
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "exec_rounds": args.exec_rounds,
        "qga_chunk_mib": args.chunk_mib,
        "qga_reads_per_copy": qga_reads,
        "qga_poll_sleep_s": args.poll_sleep,
        "settle_s": args.settle,
        "qga_status_polls": polls,
        "verified_sha256": True,
        "guest_sha256": guest_sha,
        "cpus": os.cpu_count(),
        "throughput": {k: {"median_s": tp_med[k], "mib_per_s": mibs[k], "samples_s": tp[k]}
                       for k in tp},
        "roundtrip": {k: {"median_s": rt_med[k], "samples_s": rt[k]} for k in rt},
        "ratios": ratios,
        "targets": {k: {TARGETS[k][0]: TARGETS[k][1], "value": ratios[k], "met": met[k]}
                    for k in TARGETS},
    }
    print("BENCH-JSON " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
