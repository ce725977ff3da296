#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Slow links (issue 12): zlib@wicket and line-rate@wicket.

Most checks run over a simulated 115200-baud serial line (slowline.py: a
relay at 11520 B/s each way between a Unix socket and a pty, with
`wicketd --listen serial/PTS@115200` behind it), so the agent reports its
line rate and the mux compresses on its own.  Also: -C against psusan (it
refuses, everything still works), plink and psftp on the mux socket of a
compressed link, a mux killed with SIGKILL in the middle of a compressed
copy, the inflate bound and malformed compressed data from a raw client, a
shell and an exec that stay responsive while a bulk copy fills the line,
and copies over the QEMU guest's real serial port with -C.  The figures
(throughput against the line rate, latencies) are bench/bench_slow.py's."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
from taplib import (MSG_DISCONNECT, MSG_GLOBAL_REQUEST, MSG_IGNORE,  # noqa: E402
                    MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS, WICKET, Agent, Failure, RawConn,
                    Skip, expect, expect_eq, mux_pids, parse_disconnect, run, show, spawn,
                    sshbool, sshstr, tap, wait_until, wicket)
import slowline  # noqa: E402

S = {}
RATE = slowline.DEFAULT_RATE
TEXT_SIZE = 192 * 1024
RANDOM_SIZE = 48 * 1024
WIRE_MAX_PACKET = 256 * 1024


def setup():
    S["tmp"] = tap.tmpdir("wicket-slow-it-")
    line = slowline.SlowLine(S["tmp"])
    tap.at_cleanup(line.stop)
    S["line"] = line
    text = slowline.real_text(TEXT_SIZE)
    if text is None:
        raise Failure("fewer than %d bytes of /usr/share/doc/*/changelog.Debian.gz here"
                      % TEXT_SIZE)
    S["text"] = text


def L():
    line = S["line"]
    if not line.alive():
        raise Failure("the simulated line died:\n" + line.log_text())
    return line


def T():
    return L().target


def ok(r, what, out=None):
    expect_eq(r.rc, 0, what + "\n" + r.describe())
    if out is not None:
        expect_eq(r.out, out, what + ": stdout")


def status(target, *glob):
    r = run(wicket(*glob, "mux", "status", target))
    expect_eq(r.rc, 0, "mux status\n" + r.describe())
    return r.out.decode()


def zcounts(st):
    """(out in, out wire, in wire, in out) of a status' compression line."""
    m = re.search(r"compression: zlib@wicket \(out (\d+) -> (\d+) bytes, in (\d+) -> (\d+) "
                  r"bytes\)", st)
    expect(m, "status shows no zlib@wicket counters:\n" + st)
    return tuple(int(x) for x in m.groups())


def mux_log(st):
    """The tail of the mux log named by a status text (beside its socket)."""
    m = re.search(r"^socket: (.+)\.sock$", st, re.M)
    if not m:
        return "(no mux socket in the status)"
    try:
        with open(m.group(1) + ".log", "rb") as f:
            return "mux log %s.log (tail):\n%s" % (m.group(1),
                                                 f.read()[-2000:].decode("utf-8", "replace"))
    except OSError as e:
        return "(mux log: %s)" % e


def line_diag():
    line = S.get("line")
    if not line:
        return ""
    return "line stats %s\nline/agent log (tail):\n%s" % (line.stats(), line.log_text(1500))


def put(name, data):
    p = os.path.join(S["tmp"], name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def read(p):
    with open(p, "rb") as f:
        return f.read()


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def same(got, want, what):
    if got != want:
        raise Failure("%s: %d bytes, want %d; first difference at byte %d"
                      % (what, len(got), len(want), first_diff(got, want)))


def copy_both_ways(target, data, name, timeout, glob=()):
    """Upload @data to the agent's side and download it again, byte-exact;
    returns (upload s, download s)."""
    src = put(name, data)
    up = src + ".up"
    down = src + ".down"
    r = run(wicket(*glob, "cp", "-q", src, "%s:%s" % (target, up)), timeout=timeout)
    ok(r, "upload of %s" % name)
    same(read(up), data, "uploaded %s" % name)
    r2 = run(wicket(*glob, "cp", "-q", "%s:%s" % (target, up), down), timeout=timeout)
    ok(r2, "download of %s" % name)
    same(read(down), data, "downloaded %s" % name)
    return r.elapsed, r2.elapsed


# ---------------------------------------------------------------- the simulated line


@tap.check("simulated 115200 line: wicket exec -- echo hi works; mux status shows "
           "'line: 11520 bytes/s' and zlib@wicket (on its own: the agent reports a slow line)")
def _():
    r = run(wicket("exec", T(), "--", "echo", "hi"), timeout=60)
    expect_eq((r.rc, r.out, r.err), (0, b"hi\n", b""), "exec\n" + r.describe() + "\n"
              + line_diag())
    st = status(T())
    expect("line: %d bytes/s" % RATE in st, "status lacks the line rate:\n" + st)
    expect("compression: zlib@wicket" in st, "status: not compressed:\n" + st)
    zcounts(st)
    # The relay writes its counters twice a second.
    wait_until(lambda: L().stats().get("down_bytes", 0) > 0, timeout=5,
               what="the line's counters to show traffic (%s)" % L().stats())


@tap.check("cp both ways over the line, compressed: %d KiB of real text (Debian changelogs) "
           "byte-exact, and the line carries well under half of it each way" % (TEXT_SIZE >> 10))
def _():
    text = S["text"]
    st0 = zcounts(status(T()))
    s0 = L().stats()
    # At the bare line rate one way takes ~17 s; compressed it should be far less.
    tu, td = copy_both_ways(T(), text, "text", timeout=120)
    s1 = L().stats()
    st1 = zcounts(status(T()))
    up = s1["up_bytes"] - s0["up_bytes"]
    down = s1["down_bytes"] - s0["down_bytes"]
    tap._diag("text: up %.1f s, down %.1f s (the bare line needs %.1f s); on the line %d up, "
              "%d down for %d bytes each way; mux zlib out %d -> %d, in %d -> %d"
              % (tu, td, len(text) / RATE, up, down, len(text), st1[0] - st0[0],
                 st1[1] - st0[1], st1[2] - st0[2], st1[3] - st0[3]))
    expect(up < len(text) / 2 and down < len(text) / 2,
           "the line carried %d up and %d down for %d bytes of text each way: not compressed?"
           % (up, down, len(text)))
    expect(st1[1] - st0[1] < (st1[0] - st0[0]) / 2, "mux deflate counters: %r -> %r"
           % (st0, st1))


@tap.check("cp both ways over the line, compressed: %d KiB of random data byte-exact, "
           "paced by the line (not faster than 11520 B/s)" % (RANDOM_SIZE >> 10))
def _():
    data = os.urandom(RANDOM_SIZE)
    tu, td = copy_both_ways(T(), data, "random", timeout=120)
    floor = len(data) / RATE
    tap._diag("random: up %.1f s, down %.1f s (%.0f and %.0f B/s; line floor %.1f s)"
              % (tu, td, len(data) / tu, len(data) / td, floor))
    # The simulation itself: random data cannot beat the line.
    expect(tu > 0.9 * floor and td > 0.9 * floor,
           "copies faster than the line allows (%.1f/%.1f s < %.1f s): is the relay in the "
           "path?" % (tu, td, floor))


@tap.check("8-bit clean through the compressed line: every byte value through cat, "
           "and stdout/stderr/exit status apart")
def _():
    data = bytes(range(256)) * 64
    r = run(wicket("exec", T(), "--", "cat"), input=data, timeout=60)
    expect_eq(r.rc, 0, "cat\n" + r.describe())
    same(r.out, data, "cat's output")
    r = run(wicket("exec", T(), "--", "sh", "-c", "echo out; echo err >&2; exit 3"), timeout=60)
    expect_eq((r.rc, r.out, r.err), (3, b"out\n", b"err\n"), "status\n" + r.describe())


# ---------------------------------------------------------------- peers that do not compress


def need_psusan():
    if not shutil.which("psusan"):
        raise Skip("psusan (putty-tools) is not installed")


@tap.check("-C against psusan through the mux: zlib@wicket refused, no compression, "
           "commands still work")
def _():
    need_psusan()
    g = ("-C", "--proxy-command", "psusan")
    r = run(wicket(*g, "exec", "slow-psusan", "--", "sh", "-c",
                   "sleep 0.3 & printf '%s|' \"$@\"", "x", "a b", "*"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"a b|*|"), "exec via psusan\n" + r.describe())
    data = os.urandom(4096)  # psusan 0.78 stalls beyond its 16 KiB window (test_psusan)
    r = run(wicket(*g, "exec", "slow-psusan", "--", "cat"), input=data, timeout=30)
    expect(r.rc == 0 and r.out == data, "cat via psusan\n" + r.describe())
    st = status("slow-psusan", *g)
    expect("agent: PSUSAN" in st and "compression: off" in st,
           "status of the psusan mux:\n" + st)


@tap.check("--share no -C against psusan: the command's own connection asks, is refused, "
           "works uncompressed")
def _():
    need_psusan()
    r = run(wicket("--share", "no", "-C", "-v", "--proxy-command", "psusan", "exec",
                   "slow-psusan-direct", "--", "echo", "direct"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"direct\n"), "exec\n" + r.describe())
    expect(b'"zlib@wicket"' in r.err, "-v shows no zlib@wicket request:\n" + r.describe())
    expect(b"zlib@wicket refused" in r.err, "-v shows no refusal:\n" + r.describe())
    expect(b"zlib@wicket on" not in r.err, "compression claimed on:\n" + r.describe())


@tap.check("--share no -C to wicketd (Unix socket): the command's own connection "
           "compresses; exec and a 2 MB round trip through cat work")
def _():
    a = Agent(S["tmp"], name="direct.sock")
    r = run(wicket("--share", "no", "-C", "-v", "exec", a.target, "--", "echo", "z"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"z\n"), "exec\n" + r.describe())
    expect(b"zlib@wicket on" in r.err, "compression not on:\n" + show(r.err, 2000))
    data = os.urandom(1 << 20) + S["text"] * 5
    r = run(wicket("--share", "no", "-C", "exec", a.target, "--", "cat"), input=data,
            timeout=60)
    expect(r.rc == 0, "cat\n" + r.describe())
    same(r.out, data, "cat round trip")
    expect(mux_of(a.target) is None, "a mux started for --share no")


@tap.check("plink and psftp on the mux socket of the compressed line work; the mux "
           "still compresses")
def _():
    if not shutil.which("plink") or not shutil.which("psftp"):
        raise Skip("putty-tools (plink, psftp) is not installed")
    r = run(wicket("mux", "start", T()))
    ok(r, "mux start")
    sock = r.out.decode().strip()
    z0 = zcounts(status(T()))
    r = run(["plink", "-ssh-connection", "-batch", sock, "echo via-plink; exit 4"], timeout=60)
    expect_eq((r.rc, r.out), (4, b"via-plink\n"), "plink\n" + r.describe())
    d = os.path.join(S["tmp"], "psftp")
    os.makedirs(d)
    data = S["text"][:32768]
    with open(os.path.join(d, "f"), "wb") as f:
        f.write(data)
    r = run(["psftp", "-ssh-connection", "-batch", sock],
            input=("lcd %s\ncd %s\nget f g\nquit\n" % (d, d)).encode(), timeout=60)
    expect(r.rc == 0, "psftp\n" + r.describe())
    same(read(os.path.join(d, "g")), data, "psftp get")
    z1 = zcounts(status(T()))
    expect(z1[2] > z0[2] and z1[0] > z0[0], "compressed counters did not move: %r -> %r"
           % (z0, z1))


# ---------------------------------------------------------------- a killed mux


def mux_of(target):
    want = target.encode()
    for pid in mux_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[2] == want:
            return pid
    return None


def kill_mux_during(argv, what, after_bytes):
    """Start a copy, SIGKILL its mux once the line has carried @after_bytes
    more bytes (either way), then check the next commands are clean."""
    ok(run(wicket("exec", T(), "--", "true"), timeout=60), "exec before")
    pid = mux_of(T())
    expect(pid, "no mux for %s" % T())
    s0 = L().stats()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)

    def moved():
        s = L().stats()
        return (s["up_bytes"] + s["down_bytes"] - s0["up_bytes"] - s0["down_bytes"]
                >= after_bytes)
    try:
        wait_until(moved, timeout=60, interval=0.1, what="the copy to get going")
        st = status(T())
        expect("zlib@wicket" in st, "not compressed before the kill:\n" + st)
        os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    expect(p.returncode != 0, "the %s survived its mux's SIGKILL?\n%s" % (what, err))
    t0 = time.monotonic()
    try:
        r = run(wicket("exec", T(), "--", "echo", "after-kill"), timeout=60)
    except Failure as e:
        raise Failure("AGENT RESYNC? the first command after the kill hung: %s\n%s"
                      % (e, line_diag()))
    took = time.monotonic() - t0
    expect_eq((r.rc, r.out, r.err), (0, b"after-kill\n", b""),
              "AGENT RESYNC? the first command after the kill (the agent must resynchronise "
              "on the new mux's greeting)\n" + r.describe() + "\n" + line_diag())
    st = status(T())
    expect("zlib@wicket" in st and mux_of(T()) != pid, "the new mux:\n" + st)
    for i in range(3):
        r = run(wicket("exec", T(), "--", "sh", "-c", "echo again-%d; echo e >&2" % i),
                timeout=60)
        expect_eq((r.rc, r.out, r.err), (0, b"again-%d\n" % i, b"e\n"),
                  "command %d after the kill\n%s\n%s" % (i, r.describe(), line_diag()))
    data = os.urandom(8192)
    copy_both_ways(T(), data, "after-kill-%s" % what.split()[0], timeout=60)
    tap._diag("%s: next command answered %.1f s after the kill" % (what, took))


@tap.check("SIGKILL of the mux in the middle of a compressed download; the next commands "
           "are clean (the agent resynchronises on the new greeting)")
def _():
    src = put("kill-down", os.urandom(160 * 1024))
    kill_mux_during(wicket("cp", "-q", "%s:%s" % (T(), src), src + ".got"), "download",
                    32 * 1024)


@tap.check("SIGKILL of the mux in the middle of a compressed upload; the next commands "
           "are clean (a truncated compressed packet at the agent)")
def _():
    src = put("kill-up", os.urandom(96 * 1024))
    kill_mux_during(wicket("cp", "-q", src, "%s:%s.got" % (T(), src)), "upload", 16 * 1024)


# ---------------------------------------------------------------- hostile compressed input


def deflated(payloads):
    """Each payload as a zlib@wicket packet body: one raw deflate stream, a
    sync flush per packet, its 00 00 ff ff tail left out."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = []
    for p in payloads:
        d = c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH)
        assert d.endswith(b"\x00\x00\xff\xff")
        out.append(d[:-4])
    return out


def z_conn(agent):
    """A raw client that switched zlib@wicket on; returns (conn, inflater)."""
    c = RawConn(agent.path)
    c.handshake()
    c.send_packet(bytes([MSG_GLOBAL_REQUEST]) + sshstr("zlib@wicket") + sshbool(True))
    p = c.recv_packet()
    expect(p is not None and p[0] == MSG_REQUEST_SUCCESS,
           "zlib@wicket not granted: %s\n%s" % (show(p), agent.log_text()))
    return c, zlib.decompressobj(-15)


def z_recv(c, inflater):
    p = c.recv_packet()
    if p is None:
        return None
    try:
        return inflater.decompress(p + b"\x00\x00\xff\xff")
    except zlib.error as e:
        raise Failure("the agent's compressed packet does not inflate (%s): %s" % (e, show(p)))


def z_expect_disconnect(c, inflater, want):
    pkts = []
    while True:
        p = z_recv(c, inflater)
        if p is None:
            break
        pkts.append(p)
    types = [p[0] for p in pkts]
    expect(types and types[-1] == MSG_DISCONNECT and types.count(MSG_DISCONNECT) == 1,
           "want one DISCONNECT, last; got %s" % [show(p, 80) for p in pkts])
    code, desc, _ = parse_disconnect(pkts[-1])
    expect_eq((code, desc), (2, want.encode()), "DISCONNECT")


@tap.check("inflate bound: a compressed packet inflating to exactly 256 KiB is taken; one "
           "byte more (and a 1 MiB zlib bomb) gets DISCONNECT 'compressed packet too large' "
           "(itself compressed)")
def _():
    a = Agent(S["tmp"], name="hostile.sock")
    # Exactly the packet limit: an IGNORE whose payload is WIRE_MAX_PACKET bytes.
    c, z = z_conn(a)
    big = bytes([MSG_IGNORE]) + sshstr(b"\0" * (WIRE_MAX_PACKET - 5))
    probe = bytes([MSG_GLOBAL_REQUEST]) + sshstr("nonesuch@example") + sshbool(True)
    for p in deflated([big, probe]):
        c.send_packet(p)
    r = z_recv(c, z)
    expect(r is not None and r[0] == MSG_REQUEST_FAILURE,
           "after a %d-byte packet: %s\n%s" % (len(big), show(r), a.log_text()))
    c.close()
    for size, what in ((WIRE_MAX_PACKET + 1 - 5, "one byte over"), ((1 << 20), "1 MiB bomb")):
        c, z = z_conn(a)
        pkt = deflated([bytes([MSG_IGNORE]) + sshstr(b"\0" * size)])[0]
        expect(len(pkt) < 4096, "not a bomb: %d bytes" % len(pkt))
        c.send_packet(pkt)
        try:
            z_expect_disconnect(c, z, "compressed packet too large")
        except Failure as e:
            raise Failure("%s: %s\n%s" % (what, e, a.log_text()))
        c.close()
    r = run(wicket("--share", "no", "exec", a.target, "--", "echo", "still"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"still\n"), "the agent after the bombs\n" + r.describe())


@tap.check("malformed compressed data (garbage, a packet cut short, a stream broken "
           "midway) gets DISCONNECT 'malformed compressed data' (compressed); the agent "
           "serves on")
def _():
    a = Agent(S["tmp"], name="garbage.sock")
    good = bytes([MSG_GLOBAL_REQUEST]) + sshstr("nonesuch@example") + sshbool(True)
    first, second = deflated([good, good])
    cases = [
        ("garbage (reserved block type)", [b"\xff" * 40]),
        ("random bytes", [bytes([0x07]) + os.urandom(200)]),
        # an empty packet inflates to nothing: no message number
        ("a packet that inflates to nothing", [deflated([b""])[0] or b"\x00"]),
        ("a stream broken after a good packet", [first, b"\xfe" + second[1:]]),
    ]
    for what, pkts in cases:
        c, z = z_conn(a)
        for p in pkts:
            c.send_packet(p)
        try:
            if len(pkts) > 1:
                r = z_recv(c, z)
                expect(r is not None and r[0] == MSG_REQUEST_FAILURE,
                       "the good packet's answer: %s" % show(r))
            z_expect_disconnect(c, z, "malformed compressed data")
        except Failure as e:
            raise Failure("%s: %s\n%s" % (what, e, a.log_text()))
        c.close()
    r = run(wicket("--share", "no", "exec", a.target, "--", "echo", "still"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"still\n"), "the agent after garbage\n" + r.describe())


# ---------------------------------------------------------------- responsiveness

BULK_SIZE = 384 * 1024  # random: ~34 s at the line rate
EXEC_BOUND = 10.0
STATUS_BOUND = 5.0


def responsive_during(direction):
    """While a copy of BULK_SIZE random bytes runs (@direction "down" or
    "up"), execs answer within EXEC_BOUND s, (down) a wicket shell under tmux
    echoes a command, and `wicket mux status` answers within STATUS_BOUND s."""
    data = os.urandom(BULK_SIZE)
    src = put("bulk-" + direction, data)
    if direction == "down":
        argv = wicket("cp", "-q", "%s:%s" % (T(), src), src + ".got")
        got = src + ".got"
    else:
        argv = wicket("cp", "-q", src, "%s:%s.got" % (T(), src))
        got = src + ".got"
    ok(run(wicket("exec", T(), "--", "true"), timeout=60), "exec before")
    st0 = status(T())
    s0 = L().stats()
    t_start = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
    key = "down_bytes" if direction == "down" else "up_bytes"
    times, problems = [], []
    try:
        wait_until(lambda: L().stats()[key] - s0[key] > 24 * 1024, timeout=60, interval=0.1,
                   what="the bulk copy to fill the line")
        for i in range(3):
            t0 = time.monotonic()
            try:
                r = run(wicket("exec", T(), "--", "echo", "quick%d" % i), timeout=EXEC_BOUND)
            except Failure as e:
                problems.append("exec %d did not answer within %.0f s during the %s: %s"
                                % (i, EXEC_BOUND, direction, str(e).splitlines()[0]))
                break
            times.append(time.monotonic() - t0)
            if (r.rc, r.out) != (0, b"quick%d\n" % i):
                problems.append("exec %d: %s" % (i, r.describe()))
            time.sleep(1)
        if direction == "down" and shutil.which("tmux") and not problems:
            problems += shell_echo_during()
        # mux-status@wicket is the mux's own: it must not wait for the line.
        t0 = time.monotonic()
        r = run(wicket("mux", "status", T()), timeout=30)
        st = r.out.decode("utf-8", "replace")
        tap._diag("%s: mux status during the copy answered in %.2f s" % (
            direction, time.monotonic() - t0))
        if r.rc != 0 or r.elapsed > STATUS_BOUND:
            problems.append("wicket mux status during the %s took %.1f s (bound %.0f s):\n%s"
                            % (direction, r.elapsed, STATUS_BOUND, r.describe()))
        expect(p.poll() is None, "the copy ended before the checks (%.0f KiB in %.0f s): the "
               "line is faster than it should be" % (BULK_SIZE / 1024, time.monotonic() - t_start))
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    expect_eq(p.returncode, 0, "the bulk copy: %s" % show(err))
    same(read(got), data, "the bulk copy")
    tap._diag("%s: exec during the copy answered in %s" % (
        direction, ", ".join("%.2f s" % t for t in times) or "(none answered)"))
    if problems:
        raise Failure("\n".join(problems) + "\n" + st + "\n" + mux_log(st0) + "\n"
                      + line_diag())


def shell_echo_during():
    sess = "wslow%d" % os.getpid()
    tm = ["tmux", "-L", "wslow-%d" % os.getpid()]
    run(tm + ["new-session", "-d", "-s", sess, "-x", "100", "-y", "30",
              " ".join(wicket("shell", T()))], env=dict(os.environ, TERM="xterm"))
    tap.at_cleanup(lambda: run(tm + ["kill-server"]))

    def pane():
        return run(tm + ["capture-pane", "-p", "-t", sess]).out
    problems = []
    for i, (cmd, want) in enumerate((("echo SLOW-$((6*7))", b"SLOW-42"),
                                     ("echo LINE-$((5*5))", b"LINE-25"))):
        t0 = time.monotonic()
        run(tm + ["send-keys", "-t", sess, cmd, "Enter"])
        try:
            wait_until(lambda: want in pane(), timeout=EXEC_BOUND + (20 if i == 0 else 0),
                       interval=0.05, what="%r in the shell" % want)
        except Failure as e:
            problems.append("shell during the copy: %s\npane:\n%s"
                            % (e, pane().decode("utf-8", "replace")))
            break
        tap._diag("shell: %r answered in %.2f s%s" % (cmd, time.monotonic() - t0,
                                                      " (includes the login)" if i == 0 else ""))
    run(tm + ["send-keys", "-t", sess, "exit", "Enter"])
    return problems


@tap.check("responsive while a download fills the line: exec answers within %.0f s, a "
           "shell under tmux echoes, mux status answers, during a %d KiB random copy (~%.0f s "
           "at line rate)" % (EXEC_BOUND, BULK_SIZE >> 10, BULK_SIZE / RATE))
def _():
    responsive_during("down")


@tap.check("responsive while an upload fills the line: exec answers within %.0f s and mux "
           "status answers during a %d KiB random copy (~%.0f s at line rate)"
           % (EXEC_BOUND, BULK_SIZE >> 10, BULK_SIZE / RATE))
def _():
    responsive_during("up")


STDIN_SIZE = 480 * 1024  # ~43 s at the line rate, one way


@tap.check("a long stdin upload through exec (%d KiB, ~%.0f s at line rate, nothing back "
           "until the end) completes: the mux's keepalive does not give the agent up"
           % (STDIN_SIZE >> 10, STDIN_SIZE / RATE))
def _():
    data = os.urandom(STDIN_SIZE)
    dst = os.path.join(S["tmp"], "stdin-up")
    st0 = status(T())
    r = run(wicket("exec", T(), "--", "sh", "-c", 'cat > "$1"; sha256sum "$1"', "x", dst),
            input=data, timeout=STDIN_SIZE / RATE * 3)
    if r.rc != 0:
        raise Failure("exec with %d bytes of stdin\n%s\n%s\n%s"
                      % (len(data), r.describe(), mux_log(st0), line_diag()))
    expect_eq(r.out.split()[0].decode(), hashlib.sha256(data).hexdigest(), "sha256 of stdin")
    tap._diag("%d bytes of stdin in %.1f s" % (len(data), r.elapsed))


# ---------------------------------------------------------------- a real serial port


def need_vm():
    import vmlib
    if "vm" in S:
        return S["vm"]
    if "vm_why" in S:
        raise Skip(S["vm_why"])
    why = vmlib.missing()
    if why:
        S["vm_why"] = why
        print("# no QEMU guest: %s" % why, flush=True)
        raise Skip(why)
    if not os.access(WICKET, os.X_OK):
        raise Failure("WICKET is not built: %s" % WICKET)
    tmp = tap.tmpdir("wicket-slow-vm-")
    t0 = time.monotonic()
    try:
        vm = vmlib.boot(tmp, serial=True)
    except vmlib.VMError as e:
        S["vm_why"] = "the guest did not boot: %s" % str(e).splitlines()[0]
        raise Failure(str(e))
    tap.at_cleanup(vm.stop)
    S["vm"] = vm
    tap._diag("guest booted with %s in %.1f s" % (vm.accel.upper(), time.monotonic() - t0))
    return vm


@tap.check("QEMU guest's serial port (ttyS1) with -C: cp of text and random data both "
           "ways byte-exact; the mux compresses; the virtio agent sees the same bytes")
def _():
    vm = need_vm()
    t = vm.serial_target
    r = run(wicket("-C", "exec", t, "--", "echo", "serial-hi"), timeout=120)
    expect_eq((r.rc, r.out), (0, b"serial-hi\n"), "exec over serial\n" + r.describe())
    st = status(t, "-C")
    expect("compression: zlib@wicket" in st, "serial mux not compressed:\n" + st)
    for name, data in (("vm-text", S["text"]), ("vm-random", os.urandom(RANDOM_SIZE))):
        src = put(name, data)
        gpath = "/tmp/" + name
        r = run(wicket("-C", "cp", "-q", src, "%s:%s" % (t, gpath)), timeout=300)
        ok(r, "upload of %s over serial" % name)
        tu = r.elapsed
        # Through the other agent (virtio-serial, no compression): what landed.
        r = run(wicket("exec", vm.target, "--", "sha256sum", gpath), timeout=60)
        ok(r, "sha256sum in the guest")
        expect_eq(r.out.split()[0].decode(), hashlib.sha256(data).hexdigest(),
                  "sha256 of %s in the guest" % name)
        r = run(wicket("-C", "cp", "-q", "%s:%s" % (t, gpath), src + ".down"), timeout=300)
        ok(r, "download of %s over serial" % name)
        same(read(src + ".down"), data, "%s downloaded over serial" % name)
        tap._diag("%s: %d bytes, up %.1f s, down %.1f s" % (name, len(data), tu, r.elapsed))
    z = zcounts(status(t, "-C"))
    expect(z[1] < z[0] and z[2] < z[3], "compression counters %r" % (z,))


if __name__ == "__main__":
    tap.main(setup)
