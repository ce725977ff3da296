#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark `wicket exec` against psusan+plink and a raw pipe.

Starts a private `wicketd --listen unix/S` and `psusan --listen S2` in a
temporary directory, then measures, alternating the contenders in every round
so that noise from this shared machine hits all of them alike:

  throughput  a) wicket exec unix/S -- cat FILE          > /dev/null
              b) plink -batch -ssh-connection S2 'cat FILE' > /dev/null
              c) sh -c 'cat FILE | cat | cat > /dev/null'
  round trip  wicket exec unix/S -- true
              plink -batch -ssh-connection S2 true

and reports medians, MiB/s and time ratios against the targets below.  Exit
status is 0 whenever the measurement itself worked (targets missed or not); it
is non-zero only when something broke (a command failed, a transfer was
corrupt, a server did not come up).  77 means a required peer is not installed.

Standard library only.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# psusan runs commands through $SHELL and exits 127 without it (cron, CI).
os.environ.setdefault("SHELL", "/bin/sh")

# Time ratios (wicket time / other time); lower is better.
TARGETS = {
    "throughput_wicket_vs_rawpipe": 1.2,
    "throughput_wicket_vs_psusan_plink": 0.75,
    "roundtrip_wicket_vs_psusan_plink": 0.25,
}

MIB = 1024 * 1024


class BenchError(Exception):
    """Something broke: the figures would be meaningless."""


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived; unwinds like KeyboardInterrupt."""


def _on_signal(signum, _frame):
    raise Terminated(f"signal {signum}")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def default_binary(env_name, rel):
    env = os.environ.get(env_name)
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "build", rel))


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark `wicket exec` against psusan+plink and a raw pipe.")
    p.add_argument("--wicket", default=default_binary("WICKET", "host-tool/wicket"),
                   help="wicket binary (default: $WICKET or ../build/host-tool/wicket)")
    p.add_argument("--wicketd", default=default_binary("WICKETD", "agent/wicketd"),
                   help="wicketd binary (default: $WICKETD or ../build/agent/wicketd)")
    p.add_argument("--psusan", default=os.environ.get("PSUSAN", "psusan"),
                   help="psusan binary (default: $PSUSAN or psusan on PATH)")
    p.add_argument("--plink", default=os.environ.get("PLINK", "plink"),
                   help="plink binary (default: $PLINK or plink on PATH)")
    p.add_argument("--size-mib", type=int, default=256,
                   help="size of the test file in MiB (default 256)")
    p.add_argument("--rounds", type=int, default=5,
                   help="throughput rounds, each runs all three contenders (default 5)")
    p.add_argument("--exec-rounds", type=int, default=30,
                   help="round-trip rounds, each runs wicket and plink once (default 30)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-command hang timeout in seconds (default: 600 for the "
                        "first transfers, then 10x the slowest of them, at least 60; "
                        "30 for round trips)")
    p.add_argument("--stall-timeout", type=float, default=10.0,
                   help="kill a client whose read/write byte counts stand still this "
                        "many seconds (default 10)")
    p.add_argument("--peer-retries", type=int, default=40,
                   help="re-runs allowed per psusan+plink sample that fails or hangs "
                        "(a known psusan flake; default 40). wicket gets none")
    p.add_argument("--tmpdir", default=None,
                   help="parent directory for the private temp dir (default: system temp)")
    a = p.parse_args(argv)
    if a.size_mib < 1 or a.rounds < 1 or a.exec_rounds < 1:
        p.error("--size-mib, --rounds and --exec-rounds must be at least 1")
    return a


def resolve_exe(name):
    """Absolute path of an executable given as a path or a name on PATH."""
    if os.sep in name:
        return os.path.abspath(name) if os.access(name, os.X_OK) else None
    return shutil.which(name)


def own_binaries(args):
    """(wicket, wicketd) from --wicket/--wicketd, or None with the reason logged."""
    wicket, wicketd = resolve_exe(args.wicket), resolve_exe(args.wicketd)
    for name, path, given in (("wicket", wicket, args.wicket), ("wicketd", wicketd, args.wicketd)):
        if path is None:
            log(f"{name} not found or not executable: {given} (build first, or pass --{name})")
            return None
    return wicket, wicketd


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class Server:
    """A listening daemon in its own session, killed with its children at the end."""

    def __init__(self, label, argv, sock_path, log_path):
        self.label = label
        self.argv = argv
        self.sock_path = sock_path
        self.log_path = log_path
        self.proc = None

    def start(self, timeout=10.0):
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited with status {self.proc.returncode} "
                                 f"before listening:\n{self.tail_log()}")
            if _is_socket(self.sock_path):
                # bind() creates the path just before listen(); let it settle.
                # (No probe connection: psusan --listen exits when a client
                # closes before its greeting.)
                time.sleep(0.1)
                self.check_alive()
                return
            time.sleep(0.02)
        raise BenchError(f"{self.label} did not listen on {self.sock_path} within "
                         f"{timeout:.0f}s:\n{self.tail_log()}")

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.label} died (status {self.proc.returncode}):\n"
                             f"{self.tail_log()}")

    def tail_log(self, limit=2000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no log)"
        return data[-limit:].decode("utf-8", "replace") or "(empty log)"

    def stop(self):
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: pid == pgid
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        # Per-connection children may outlive the listener; they share its group.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None


def make_file(path, size_mib):
    """Write size_mib MiB of incompressible data (fresh random bytes per MiB)."""
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MIB))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MIB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class Failed(Exception):
    """One run of a command failed (status, timeout, short or wrong output)."""


def _proc_io(pid):
    """(rchar, wchar) of a live or not yet reaped process, or None."""
    try:
        with open(f"/proc/{pid}/io") as f:
            fields = dict(line.split(": ", 1) for line in f.read().splitlines())
        return int(fields["rchar"]), int(fields["wchar"])
    except (OSError, KeyError, ValueError):
        return None


class Watchdog:
    """SIGKILLs a child that runs too long or whose I/O counters stop moving.

    A client stuck on a wedged connection sits in poll() for ever (and need not
    honour SIGTERM), so a stall of its read/write byte counts is the signal.
    Runs in a thread so the caller can block in waitpid and time the exit
    exactly.  stall=None disables stall detection (e.g. for `sh -c` pipelines,
    whose shell is idle while its children work).
    """

    def __init__(self, proc, timeout, stall):
        self.proc = proc
        self.timeout = timeout
        self.stall = stall
        self.reason = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        start = last_move = time.monotonic()
        last = None
        while not self._stop.wait(0.2):
            now = time.monotonic()
            io = _proc_io(self.proc.pid) if self.stall else None
            if io is not None and io != last:
                last, last_move = io, now
            if now - start > self.timeout:
                self.reason = f"hung, killed after {self.timeout:.0f}s"
            elif self.stall and now - last_move > self.stall:
                self.reason = f"stalled (no I/O for {self.stall:.0f}s), killed"
            else:
                continue
            try:
                self.proc.kill()
            except OSError:
                pass
            return

    def stop(self):
        self._stop.set()
        self._thread.join()


def _wait_exit(proc):
    """Block until proc exits without reaping it; return (seconds-clock, wchar)."""
    while True:
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            break
        except InterruptedError:
            continue
    t1 = time.perf_counter()
    io = _proc_io(proc.pid)
    return t1, (io[1] if io else None)


def run_timed(label, argv, timeout, stall, expect_out=None):
    """Run argv with stdout to /dev/null; return wall seconds; raise Failed.

    expect_out: if set, the child must have written at least this many bytes
    (its wchar: stdout to /dev/null plus any stderr), so a transfer that ends
    early with status 0 is caught even though its output is thrown away.
    """
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errf)
        dog = Watchdog(proc, timeout, stall)
        try:
            t1, wchar = _wait_exit(proc)
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
        if expect_out is not None and wchar is not None and wchar < expect_out:
            raise Failed(f"{label}: ended early with status 0: wrote {wchar} bytes, "
                         f"expected {expect_out}")
    return t1 - t0


def run_hashed(label, argv, timeout, stall):
    """Run argv, hash what it writes to stdout; return (sha256, nbytes, seconds)."""
    h = hashlib.sha256()
    n = 0
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errf)
        dog = Watchdog(proc, timeout, stall)
        try:
            while True:
                b = proc.stdout.read1(MIB)
                if not b:
                    break
                h.update(b)
                n += len(b)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            dog.stop()
            proc.stdout.close()
        dt = time.perf_counter() - t0
        if rc == -signal.SIGKILL and dog.reason:
            raise Failed(f"{label}: {dog.reason} ({n} bytes received)")
        if rc != 0:
            errf.seek(0)
            raise Failed(f"{label}: exit status {rc}\n"
                         f"{errf.read().decode('utf-8', 'replace')[-2000:]}")
    return h.hexdigest(), n, dt


class Runner:
    """Runs the contenders; a failure of wicket is fatal, the peer gets retries.

    psusan (PuTTY 0.78, Debian bookworm) wedges some bulk transfers: psusan
    and its client (plink or wicket alike) both sit idle with part of the
    output undelivered, or the channel closes a few KiB short with status 0.
    On this machine that hit 3-6% of 16 MiB and about two thirds of 64 MiB
    transfers.  A failed sample of the peer is thrown away and re-run, and
    every discarded run is listed in the report.
    """

    def __init__(self, timeout, stall, peer_retries):
        self.timeout = timeout
        self.stall = stall
        self.peer_retries = peer_retries
        self.peer_failures = []

    def _attempts(self, peer):
        return 1 + (self.peer_retries if peer else 0)

    def _failed(self, peer, attempt, err):
        first = str(err).splitlines()[0]
        if not peer:
            raise BenchError(str(err))
        self.peer_failures.append(first)
        if attempt + 1 >= self._attempts(peer):
            raise BenchError(f"{err}\n(psusan+plink failed {self._attempts(peer)} times "
                             f"in a row; raise --peer-retries or use a smaller --size-mib)")
        log(f"peer failure, retrying: {first}")

    def timed(self, label, argv, peer=False, timeout=None, stall=True, expect_out=None):
        for attempt in range(self._attempts(peer)):
            try:
                return run_timed(label, argv, timeout or self.timeout,
                                 self.stall if stall else None, expect_out)
            except Failed as e:
                self._failed(peer, attempt, e)

    def verify(self, label, argv, want_sha, want_len, peer=False, timeout=None):
        """Run argv once with its output hashed; return seconds taken."""
        for attempt in range(self._attempts(peer)):
            try:
                got, n, dt = run_hashed(label, argv, timeout or self.timeout, self.stall)
                if got != want_sha or n != want_len:
                    raise Failed(f"{label}: transfer is corrupt: got {n} bytes sha256 {got}, "
                                 f"expected {want_len} bytes sha256 {want_sha}")
                return dt
            except Failed as e:
                self._failed(peer, attempt, e)


def med(xs):
    return statistics.median(xs)


def verdict(ratio, target):
    return "met" if ratio <= target else "missed"


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

    tmp = tempfile.mkdtemp(prefix="wicket-bench.", dir=args.tmpdir)
    servers = []
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

        size = args.size_mib * MIB
        log(f"writing {args.size_mib} MiB test file")
        file_sha = make_file(data, args.size_mib)

        cmd_w = [wicket, "exec", "unix/" + sock_w, "--", "cat", data]
        cmd_p = [plink, "-batch", "-ssh-connection", sock_p, "cat " + data]
        cmd_r = ["sh", "-c", f"cat {data} | cat | cat > /dev/null"]
        rt_w = [wicket, "exec", "unix/" + sock_w, "--", "true"]
        rt_p = [plink, "-batch", "-ssh-connection", sock_p, "true"]

        # Correctness (and page-cache warm-up): the measured transfers must be
        # whole.  The first runs also size the hang timeout for the samples.
        log("verifying transfers (sha256)")
        first = args.timeout or 600.0
        run = Runner(first, args.stall_timeout, args.peer_retries)
        t_w = run.verify("wicket verify", cmd_w, file_sha, size, timeout=first)
        t_p = run.verify("psusan+plink verify", cmd_p, file_sha, size, peer=True,
                         timeout=first)
        t_r = run.timed("raw pipe warm-up", cmd_r, timeout=first, stall=False)
        if not args.timeout:
            run.timeout = max(60.0, 10 * max(t_w, t_p, t_r))
        verified = True

        tp = {"wicket": [], "psusan_plink": [], "raw_pipe": []}
        # (key, argv, is the flaky peer, stall detection, bytes it must write)
        order = (("wicket", cmd_w, False, True, size),
                 ("psusan_plink", cmd_p, True, True, size),
                 ("raw_pipe", cmd_r, False, False, None))
        for i in range(args.rounds):
            for key, cmd, peer, stall, out in order:
                tp[key].append(run.timed(f"throughput {key}", cmd, peer=peer,
                                         stall=stall, expect_out=out))
            for s in servers:
                s.check_alive()
            log(f"throughput round {i + 1}/{args.rounds}: "
                + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in tp.items()))

        # One untimed warm-up each so the first sample does not pay for cold caches.
        rt_timeout = args.timeout or 30.0
        run.timed("round-trip warm-up wicket", rt_w, timeout=rt_timeout)
        run.timed("round-trip warm-up plink", rt_p, peer=True, timeout=rt_timeout)
        rt = {"wicket": [], "psusan_plink": []}
        for i in range(args.exec_rounds):
            rt["wicket"].append(run.timed("round trip wicket", rt_w, timeout=rt_timeout))
            rt["psusan_plink"].append(run.timed("round trip plink", rt_p, peer=True,
                                                timeout=rt_timeout))
        for s in servers:
            s.check_alive()
        log(f"round trip: {args.exec_rounds} rounds done")
    except BenchError as e:
        log(f"ERROR: {e}")
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        # A second Ctrl-C/SIGTERM must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report ------------------------------------------------------------
    tp_med = {k: med(v) for k, v in tp.items()}
    tp_mibs = {k: args.size_mib / v for k, v in tp_med.items()}
    rt_med = {k: med(v) for k, v in rt.items()}
    ratios = {
        "throughput_wicket_vs_rawpipe": tp_med["wicket"] / tp_med["raw_pipe"],
        "throughput_wicket_vs_psusan_plink": tp_med["wicket"] / tp_med["psusan_plink"],
        "roundtrip_wicket_vs_psusan_plink": rt_med["wicket"] / rt_med["psusan_plink"],
    }
    labels = {
        "wicket": "wicket exec",
        "psusan_plink": "psusan+plink",
        "raw_pipe": "raw pipe (cat|cat|cat)",
    }

    print()
    print(f"Throughput: cat of a {args.size_mib} MiB file to /dev/null, "
          f"{args.rounds} rounds (alternating), sha256 verified")
    print(f"  {'contender':<24} {'median s':>9} {'min s':>8} {'max s':>8} {'MiB/s':>9}")
    for k in ("wicket", "psusan_plink", "raw_pipe"):
        v = tp[k]
        print(f"  {labels[k]:<24} {tp_med[k]:>9.3f} {min(v):>8.3f} {max(v):>8.3f} "
              f"{tp_mibs[k]:>9.1f}")
    print()
    print(f"Round trip: `true`, {args.exec_rounds} rounds (alternating)")
    print(f"  {'contender':<24} {'median ms':>9} {'min ms':>8} {'max ms':>8}")
    for k in ("wicket", "psusan_plink"):
        v = rt[k]
        print(f"  {labels[k]:<24} {rt_med[k] * 1e3:>9.2f} {min(v) * 1e3:>8.2f} "
              f"{max(v) * 1e3:>8.2f}")
    print()
    print("Ratios (time of wicket / time of other; lower is better):")
    names = {
        "throughput_wicket_vs_rawpipe": "throughput  wicket / raw pipe",
        "throughput_wicket_vs_psusan_plink": "throughput  wicket / psusan+plink",
        "roundtrip_wicket_vs_psusan_plink": "round trip  wicket / psusan+plink",
    }
    for k, r in ratios.items():
        print(f"  {names[k]:<36} {r:6.3f}")
    print()
    if run.peer_failures:
        print(f"psusan+plink runs that failed or hung and were re-run: "
              f"{len(run.peer_failures)}")
        for f in run.peer_failures:
            print(f"  {f}")
        print()
    print("targets:")
    for k, r in ratios.items():
        t = TARGETS[k]
        print(f"  {names[k]:<36} {r:6.3f} <= {t:<5} {verdict(r, t)}")
    print()

    result = {
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "exec_rounds": args.exec_rounds,
        "verified_sha256": verified,
        "peer_failures": run.peer_failures,
        "cpus": os.cpu_count(),
        "throughput": {
            k: {"median_s": tp_med[k], "mib_per_s": tp_mibs[k], "samples_s": tp[k]}
            for k in tp
        },
        "roundtrip": {
            k: {"median_s": rt_med[k], "samples_s": rt[k]} for k in rt
        },
        "ratios": ratios,
        "targets": {k: {"max": TARGETS[k], "value": ratios[k],
                        "met": ratios[k] <= TARGETS[k]} for k in TARGETS},
    }
    print("BENCH-JSON " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
