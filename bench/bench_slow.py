#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark wicket on a slow serial line (issue 12): zlib@wicket and the
slow-line mode of the mux and the agent.

Starts the simulated 115200-baud line of tests/integration/slowline.py (a
relay at 11520 B/s each way between a Unix socket and a pty, with
`wicketd --listen serial/PTS@115200` on the pty slave), starts the target's
mux with -C, and measures in one run:

  text      `wicket -C cp` of --text-kib KiB of real text (Debian
            changelogs), upload and download, against the line-rate floor
            (size / 11520 B/s): throughput as a multiple of the line rate
  random    the same with --random-kib KiB of random bytes (compression
            can only cost here)
  exec      `wicket exec TARGET -- echo hi` through the mux: on an idle
            line, and while a bulk random copy fills the line (download,
            then upload)
  echo      keystroke echo in `wicket shell TARGET` under tmux: from
            send-keys of one character to its appearance in capture-pane,
            on an idle line and during the same bulk copies

Every copy is compared byte for byte.  Medians are reported against the
targets below, then a `targets:` section and a `BENCH-JSON` line.  Exit 0
when the figures were taken (targets met or not), 1 when something broke, 77
when the machine lacks what the line needs (no changelogs).  A latency
sample that times out is recorded as its timeout (a lower bound) and listed.
Standard library only.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from bench_exec import BenchError, Terminated, _on_signal, default_binary, own_binaries  # noqa
import slowline  # noqa: E402

KIB = 1024
# Minimums for the throughput multiples (of the line rate), maximums (s) for latencies.
TARGETS = {
    "text_x_line_rate": (">=", 3.0),
    "random_x_line_rate": (">=", 0.95),
    "exec_during_copy_s": ("<=", 3.0),
    "echo_during_copy_s": ("<=", 1.0),
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark wicket over a simulated 115200 line.")
    p.add_argument("--wicket", default=default_binary("WICKET", "host-tool/wicket"),
                   help="wicket binary (default: $WICKET or ../build/host-tool/wicket)")
    p.add_argument("--wicketd", default=default_binary("WICKETD", "agent/wicketd"),
                   help="wicketd binary (default: $WICKETD or ../build/agent/wicketd)")
    p.add_argument("--rate", type=int, default=slowline.DEFAULT_RATE,
                   help="line rate in bytes/s each way (default 11520: 115200 baud)")
    p.add_argument("--baud", type=int, default=slowline.DEFAULT_BAUD,
                   help="termios speed the agent sees (default 115200)")
    p.add_argument("--buffer", type=int, default=slowline.RELAY_CAP,
                   help="bytes the simulated UART holds each way (default 4096)")
    p.add_argument("--text-kib", type=int, default=256, help="text size (default 256 KiB)")
    p.add_argument("--random-kib", type=int, default=1000,
                   help="random size (default 1000 KiB, ~1 MB: ~89 s a copy)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the four copies (default 3)")
    p.add_argument("--bulk-kib", type=int, default=384,
                   help="random bulk copy under the latency samples (default 384 KiB, "
                        "~34 s at the line rate)")
    p.add_argument("--samples", type=int, default=8,
                   help="latency samples per kind and phase (default 8)")
    p.add_argument("--sample-timeout", type=float, default=60.0,
                   help="a latency sample that takes longer counts as this (default 60 s)")
    p.add_argument("--tmpdir", default=None, help="parent of the private temp dir")
    a = p.parse_args(argv)
    if min(a.text_kib, a.random_kib, a.rounds, a.bulk_kib, a.samples) < 1:
        p.error("sizes, --rounds and --samples must be at least 1")
    return a


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Bench:
    def __init__(self, args, tmp, wicket):
        self.a, self.tmp, self.w = args, tmp, wicket
        self.timeouts = []     # latency samples that hit --sample-timeout
        self.line = None
        self.tmux = None

    # -- helpers

    def wk(self, *args):
        return [self.w, "-C"] + list(args)

    def run(self, argv, timeout, input=None):
        """(rc, stdout, stderr, seconds); a timeout kills and raises BenchError."""
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else
                             subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise BenchError(f"{' '.join(argv)}: hung, killed after {timeout:.0f} s")
        return p.returncode, out, err, time.perf_counter() - t0

    def status(self):
        rc, out, err, _ = self.run(self.wk("mux", "status", self.line.target), 120)
        if rc != 0:
            raise BenchError(f"mux status: {err.decode('utf-8', 'replace')}")
        return out.decode()

    def copy(self, direction, src_data, name, on_exit=None):
        """One timed cp (up: local -> line, down: line -> local), verified;
        @on_exit() runs as soon as the cp process has ended."""
        src = os.path.join(self.tmp, name)
        dst = src + "." + direction
        if not os.path.exists(src):
            with open(src, "wb") as f:
                f.write(src_data)
        if os.path.exists(dst):
            os.unlink(dst)
        t = self.line.target
        argv = (self.wk("cp", "-q", src, f"{t}:{dst}") if direction == "up"
                else self.wk("cp", "-q", f"{t}:{src}", dst))
        floor = len(src_data) / self.a.rate
        try:
            rc, _, err, dt = self.run(argv, timeout=max(120.0, 5 * floor))
        finally:
            if on_exit:
                on_exit()
        if rc != 0:
            raise BenchError(f"{name} {direction}: exit {rc}: {err.decode('utf-8', 'replace')}"
                             f"\n{self.diag()}")
        with open(dst, "rb") as f:
            got = f.read()
        if got != src_data:
            raise BenchError(f"{name} {direction}: copy differs ({len(got)} bytes, sha256 "
                             f"{sha(got)}; want {len(src_data)}, {sha(src_data)})")
        os.unlink(dst)
        return dt

    def diag(self):
        return (f"line stats {self.line.stats()}\nline/agent log:\n{self.line.log_text(1500)}"
                if self.line else "")

    # -- latency probes

    def exec_once(self):
        t0 = time.perf_counter()
        try:
            rc, out, err, _ = self.run([self.w, "exec", self.line.target, "--", "echo", "hi"],
                                       timeout=self.a.sample_timeout)
        except BenchError as e:
            self.timeouts.append(f"exec: {e}")
            return self.a.sample_timeout
        dt = time.perf_counter() - t0
        if rc != 0 or out != b"hi\n":
            raise BenchError(f"exec during the bench: exit {rc}, out {out!r}, "
                             f"err {err.decode('utf-8', 'replace')}")
        return dt

    def tm(self, *args):
        return subprocess.run(["tmux", "-L", self.tmux] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)

    def pane_line(self):
        """The pane's last non-empty line."""
        lines = [ln for ln in self.tm("capture-pane", "-p", "-t", "b").stdout.decode(
            "utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def wait_pane(self, pred, timeout):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if pred(self.pane_line()):
                return True
            time.sleep(0.01)
        return False

    def shell_start(self):
        if not shutil.which("tmux"):
            return False
        self.tmux = f"wbench-slow-{os.getpid()}"
        env = dict(os.environ, TERM="xterm")
        subprocess.run(["tmux", "-L", self.tmux, "new-session", "-d", "-s", "b", "-x", "120",
                        "-y", "20", f"{self.w} -C shell {self.line.target}"], env=env,
                       check=True, timeout=30)
        self.tm("send-keys", "-t", "b", "PS1='slow$ '; echo READY-$((6*7))", "Enter")
        if not self.wait_pane(lambda ln: ln.startswith("slow$"), 60):
            raise BenchError("wicket shell under tmux: no prompt within 60 s:\n"
                             + self.tm("capture-pane", "-p", "-t", "b").stdout.decode())
        self.typed = ""
        return True

    def echo_once(self):
        """One keystroke: send-keys of a character until it shows."""
        if len(self.typed) >= 12:
            self.tm("send-keys", "-t", "b", "C-u")
            if not self.wait_pane(lambda ln: ln.rstrip() == "slow$", self.a.sample_timeout):
                raise BenchError("the shell's line did not clear (C-u)")
            self.typed = ""
        c = "abcdefghijkl"[len(self.typed)]
        want = "slow$ " + self.typed + c
        t0 = time.perf_counter()
        self.tm("send-keys", "-t", "b", "-l", c)
        if not self.wait_pane(lambda ln: ln.rstrip() == want, self.a.sample_timeout):
            self.timeouts.append(f"echo: {c!r} did not show within {self.a.sample_timeout:.0f} s")
            return self.a.sample_timeout
        dt = time.perf_counter() - t0
        self.typed += c
        return dt

    def shell_stop(self):
        if self.tmux:
            subprocess.run(["tmux", "-L", self.tmux, "kill-server"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            self.tmux = None

    def latencies(self, direction, bulk, have_shell):
        """exec and echo samples; while a bulk copy runs when @direction is set."""
        res = {"exec": [], "echo": []}
        th = None
        box = {}
        copying = threading.Event()
        if direction:
            line0 = self.line.stats()
            key = "down_bytes" if direction == "down" else "up_bytes"

            def bg():
                try:
                    box["t"] = self.copy(direction, bulk, "bulk", on_exit=copying.clear)
                except BaseException as e:  # reported by the main thread
                    box["e"] = e
            copying.set()
            th = threading.Thread(target=bg, daemon=True)
            th.start()
            # Until the copy has filled the line (and the queues behind it).
            deadline = time.monotonic() + 60
            while self.line.stats().get(key, 0) - line0.get(key, 0) < 16 * KIB:
                if time.monotonic() > deadline or not copying.is_set():
                    raise BenchError(f"the bulk {direction} copy did not get going "
                                     f"({box.get('e')})\n{self.diag()}")
                time.sleep(0.1)
        probes = [("exec", self.exec_once)] + ([("echo", self.echo_once)] if have_shell else [])
        for i in range(self.a.samples):
            if th and not copying.is_set():
                log(f"  the bulk copy ended after {i} rounds of samples")
                break
            # Both probes at once: one stuck behind the line must not keep
            # the other from measuring while the copy runs.
            got = {}
            ts = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f()), daemon=True)
                  for k, f in probes]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for k, _ in probes:
                if k not in got:
                    raise BenchError(f"the {k} probe failed (see above)")
                res[k].append(got[k])
            time.sleep(0.5)
        if th:
            th.join()
            if "e" in box:
                raise BenchError(f"bulk {direction} copy: {box['e']}")
            res["bulk_s"] = box["t"]
        return res


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(v, unit="s"):
    return "-" if v is None else f"{v:.2f} {unit}"


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    found = own_binaries(args)
    if found is None:
        return 2
    wicket, wicketd = found
    text = slowline.real_text(args.text_kib * KIB)
    if text is None:
        log(f"fewer than {args.text_kib} KiB of /usr/share/doc/*/changelog.Debian.gz; skipping")
        return 77
    random_data = os.urandom(args.random_kib * KIB)
    bulk = os.urandom(args.bulk_kib * KIB)

    tmp = tempfile.mkdtemp(prefix="wicket-bench-slow.", dir=args.tmpdir)
    rt = os.path.join(tmp, "run")
    os.mkdir(rt, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = rt  # our own mux, stopped at the end
    b = Bench(args, tmp, wicket)
    tp = {"text_up": [], "text_down": [], "random_up": [], "random_down": []}
    lat = {}
    have_shell = False
    try:
        log(f"temp dir {tmp}; line at {args.rate} B/s, agent told {args.baud} baud")
        b.line = slowline.SlowLine(tmp, rate=args.rate, baud=args.baud, wicketd=wicketd,
                                   buffer=args.buffer)
        rc, out, err, _ = b.run(b.wk("mux", "start", b.line.target), 60)
        if rc != 0:
            raise BenchError(f"mux start: {err.decode('utf-8', 'replace')}\n{b.diag()}")
        st = b.status()
        if "zlib@wicket" not in st:
            raise BenchError("the mux does not compress:\n" + st)
        log("line up: " + next(ln for ln in st.splitlines() if ln.startswith("line:")))
        z_text = []
        for i in range(args.rounds):
            for key, data, d in (("text_up", text, "up"), ("text_down", text, "down"),
                                 ("random_up", random_data, "up"),
                                 ("random_down", random_data, "down")):
                s0 = b.line.stats()
                tp[key].append(b.copy(d, data, key.split("_")[0]))
                if key.startswith("text"):
                    s1 = b.line.stats()
                    k = "up_bytes" if d == "up" else "down_bytes"
                    z_text.append((s1.get(k, 0) - s0.get(k, 0)) / len(text))
            log(f"round {i + 1}/{args.rounds}: " + "  ".join(
                f"{k} {v[-1]:.1f}s" for k, v in tp.items()))
        have_shell = b.shell_start()
        if not have_shell:
            log("tmux is not installed: no keystroke echo figures")
        for phase, d in (("idle", None), ("download", "down"), ("upload", "up")):
            log(f"latency samples: {phase}")
            lat[phase] = b.latencies(d, bulk, have_shell)
            log(f"  exec {[round(x, 2) for x in lat[phase]['exec']]}"
                f"  echo {[round(x, 2) for x in lat[phase]['echo']]}")
        final_status = b.status()
    except BenchError as e:
        log(f"ERROR: {e}")
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            b.shell_stop()
        except Exception:
            pass
        if b.line:
            subprocess.run([wicket, "mux", "stop", b.line.target], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            b.line.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report ------------------------------------------------------------
    rate = args.rate
    sizes = {"text": len(text), "random": len(random_data)}
    x = {k: sizes[k.split("_")[0]] / rate / med(v) for k, v in tp.items()}
    figures = {
        "text_x_line_rate": min(x["text_up"], x["text_down"]),
        "random_x_line_rate": min(x["random_up"], x["random_down"]),
        "exec_during_copy_s": max(med(lat["download"]["exec"]), med(lat["upload"]["exec"])),
        "echo_during_copy_s": (max(med(lat["download"]["echo"]), med(lat["upload"]["echo"]))
                               if have_shell else None),
    }

    print()
    print(f"Simulated serial line: {rate} B/s each way, {args.buffer} B buffers (agent at "
          f"{args.baud} baud), "
          f"wicket -C through the mux; {args.rounds} rounds, every copy verified")
    print(f"  {'copy':<14} {'size':>9} {'floor s':>8} {'median s':>9} {'min s':>7} "
          f"{'max s':>7} {'x line rate':>12}")
    for k, v in tp.items():
        n = sizes[k.split("_")[0]]
        print(f"  {k.replace('_', ' '):<14} {n // KIB:>5} KiB {n / rate:>8.1f} {med(v):>9.2f} "
              f"{min(v):>7.2f} {max(v):>7.2f} {x[k]:>11.2f}x")
    print(f"  text on the line: {statistics.median(z_text) * 100:.1f} % of its size "
          f"(median of {len(z_text)} copies)")
    print()
    print(f"Latency (median / max of {args.samples} samples; bulk copy {args.bulk_kib} KiB "
          f"random, ~{args.bulk_kib * KIB / rate:.0f} s at the line rate)")
    print(f"  {'line':<34} {'exec echo hi':>20} {'keystroke echo':>20}")
    for phase, label in (("idle", "idle"), ("download", "during a download (cp)"),
                         ("upload", "during an upload (cp)")):
        e, k = lat[phase]["exec"], lat[phase]["echo"]
        ee = f"{fmt(med(e))} / {fmt(max(e) if e else None)}"
        kk = f"{fmt(med(k))} / {fmt(max(k) if k else None)}" if have_shell else "-"
        print(f"  {label:<34} {ee:>20} {kk:>20}")
    if b.timeouts:
        print(f"  samples that hit --sample-timeout ({args.sample_timeout:.0f} s, counted as "
              f"that): {len(b.timeouts)}")
        for t in b.timeouts:
            print(f"    {t}")
    print()
    zl = next((ln for ln in final_status.splitlines() if ln.startswith("line:")), "")
    print(f"mux at the end: {zl}")
    print()
    print("targets (throughput: the slower direction; latency: the worse direction's median):")
    met = {}
    for k, (op, t) in TARGETS.items():
        v = figures[k]
        if v is None:
            print(f"  {k:<22} not measured")
            met[k] = None
            continue
        met[k] = v >= t if op == ">=" else v <= t
        print(f"  {k:<22} {v:8.2f} {op} {t:<5} {'met' if met[k] else 'missed'}")
    print()
    result = {
        "rate": rate, "baud": args.baud, "buffer": args.buffer, "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "sizes": sizes, "bulk_bytes": len(bulk), "samples": args.samples,
        "copies_s": tp, "x_line_rate": x, "text_wire_fraction": z_text,
        "latency_s": lat, "sample_timeouts": b.timeouts,
        "figures": figures,
        "targets": {k: {"op": op, "limit": t, "value": figures[k], "met": met[k]}
                    for k, (op, t) in TARGETS.items()},
    }
    print("BENCH-JSON " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
