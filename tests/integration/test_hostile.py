#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile input suite against wicketd's Unix listener, raw from Python.

Each case must end in a DISCONNECT carrying a readable reason (protocol
error), or in a polite answer after which the connection still works
(checked with a want-reply GLOBAL_REQUEST probe).  Memory stays bounded,
no worker dies of a signal, nothing is left behind, and connections
opened before the hostile ones keep working.

- packet lengths 0, 1, 4, 5, max-1, max, max+1, 2^31, 0xFFFFFFFF
- every message number (0-255), empty and with a channel-shaped body, in
  every state: before the greeting, no channel, a channel open, a command
  running, after our EOF
- truncation at every offset of a golden capture of `wicket exec`
- window-adjust overflow, data on channels never opened
- 5000 channel opens in a row (cap, "resource shortage", peak RSS)
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# These checks are about the agent's own connections: each wicket command
# opens its own (no mux; test_mux.py covers sharing).
os.environ["WICKET_SHARE"] = "no"
from taplib import (DISC_PROTOCOL_ERROR, GREETING_PREFIX, MSG_CHANNEL_CLOSE,  # noqa: E402
                    MSG_CHANNEL_EOF, MSG_CHANNEL_OPEN, MSG_CHANNEL_OPEN_CONFIRMATION,
                    MSG_CHANNEL_OPEN_FAILURE, MSG_CHANNEL_WINDOW_ADJUST, MSG_DISCONNECT,
                    MSG_GLOBAL_REQUEST, MSG_IGNORE, MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS,
                    WICKETD, Failure, RawConn, Reader, channel_data, channel_open_session,
                    channel_request, expect, expect_eq, parse_disconnect, run, show,
                    socket_accepts, spawn, sshstr, tap, u32, wait_until, wicket)
import proclib  # noqa: E402

MAX = 256 * 1024
S = {"bad": []}


class Agent:
    def __init__(self, name, extra=()):
        tmp = S["tmp"]
        self.path = os.path.join(tmp, name)
        self.target = "unix/" + self.path
        self.log = self.path + ".log"
        self.logf = open(self.log, "ab")
        tap.at_cleanup(self.logf.close)
        env = dict(os.environ)
        for k in ("WICKETD_TESTING", "WICKETD_TEST_FORBIDDEN_SYSCALL"):
            env.pop(k, None)
        self.proc = spawn([WICKETD, "--listen", self.target, "-q"] + list(extra),
                          stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf, env=env)
        self.pid = self.proc.pid
        wait_until(lambda: os.path.exists(self.path) and socket_accepts(self.path), timeout=10,
                   what="wicketd to accept")
        wait_until(lambda: not proclib.descendants(self.pid), timeout=10, what="the probe to end")
        self.idle_fds = proclib.fd_count(self.pid)

    def log_text(self, limit=3000):
        with open(self.log, "rb") as f:
            return f.read()[-limit:].decode("utf-8", "replace")


def setup():
    S["mem"] = 8 if proclib.sanitized(WICKETD) else 1  # ASan's shadow memory
    S["tmp"] = tap.tmpdir("wicket-hostile-")
    S["agent"] = Agent("agent.sock")
    # A witness opened before every hostile connection, kept to the end.
    w = RawConn(S["agent"].path, timeout=30)
    w.handshake()
    S["witness"] = w


def readable(desc):
    try:
        t = desc.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(t.strip()) >= 5 and all(c.isprintable() for c in t)


PROBE = bytes([MSG_GLOBAL_REQUEST]) + sshstr("probe@wicket") + b"\x01"


def outcome(c, probe=True, timeout=10):
    """What the agent made of what was sent on c.

    Returns ("disconnect", reason), ("polite", None) when the probe got its
    REQUEST_FAILURE, or ("closed", None) at EOF without a DISCONNECT."""
    c.s.settimeout(timeout)
    if probe:
        try:
            c.send_packet(PROBE)
        except OSError:
            pass
    while True:
        try:
            p = c.recv_packet()
        except Failure as e:
            return ("broken", str(e))
        except OSError as e:
            return ("broken", str(e))
        if p is None:
            return ("closed", None)
        if p[0] == MSG_DISCONNECT:
            code, desc, _ = parse_disconnect(p)
            rest = c.recv_until_eof()
            if rest:
                return ("broken", "packets after DISCONNECT: %s" % [x[0] for x in rest])
            if code != DISC_PROTOCOL_ERROR or not readable(desc):
                return ("broken", "DISCONNECT code %d reason %s" % (code, show(desc)))
            return ("disconnect", desc.decode())
        if probe and p[0] in (MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS):
            return ("polite", None)


def judge(label, res, allow_closed=False, want=None):
    """Record a misbehaving case (reported at the end) and fail this check."""
    kind, why = res
    ok = kind in ("disconnect", "polite") or (allow_closed and kind == "closed")
    if want and ok:
        ok = kind == want[0] and (len(want) < 2 or any(w in (why or "") for w in want[1]))
    if not ok:
        S["bad"].append("%s: %s %s" % (label, kind, why or ""))
    return ok


def pkt(payload):
    return u32(len(payload)) + payload


def witness_ok():
    out, err, status = S["witness"].exec_collect("echo witness")
    expect_eq((out, status), (b"witness\n", 0), "the witness connection")
    r = run(wicket("exec", S["agent"].target, "--", "echo", "fresh"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"fresh\n"), "a new connection\n" + r.describe())


def settle():
    """Every hostile connection gone: only the witness's processes remain."""
    a = S["agent"]

    def only_witness():
        d = proclib.descendants(a.pid)
        return len(d) <= 2 and not proclib.zombies(a.pid)
    try:
        wait_until(only_witness, timeout=15, what="hostile connections to be cleaned up")
    except Failure:
        d = proclib.descendants(a.pid)
        raise Failure("left below the listener: %s" % {p: (s, proclib.comm(p)) for p, s in d.items()})


# ---------------------------------------------------------------- packet lengths


LENGTHS = [
    (0, ("disconnect", ["zero"])),
    (1, None),
    (4, None),
    (5, None),
    (MAX - 1, ("polite",)),
    (MAX, ("polite",)),
    (MAX + 1, ("disconnect", ["exceeds"])),
    (1 << 31, ("disconnect", ["exceeds"])),
    (0xFFFFFFFF, ("disconnect", ["exceeds"])),
]


def length_case(n, kind):
    c = RawConn(S["agent"].path)
    c.handshake()
    if n > MAX:
        c.send(u32(n) + b"\x02" * 64)
        res = outcome(c, probe=False)
        c.close()
        return res, None
    if n == 0:
        c.send(u32(0))
        res = outcome(c, probe=False)
        c.close()
        return res, None
    if kind == "ignore":
        body = bytes([MSG_IGNORE]) + (sshstr(b"i" * (n - 5)) if n >= 5 else b"\0" * (n - 1))
    else:
        body = bytes([MSG_CHANNEL_OPEN]) + b"\xff" * (n - 1)
    before = proclib.workers(S["agent"].pid)
    c.send(u32(n) + body)
    w = None
    try:
        w = proclib.new_worker(S["agent"].pid, before, timeout=2)
    except Failure:
        pass
    res = outcome(c)
    hwm = proclib.vm_hwm_kib(w) if w else 0
    c.close()
    return res, hwm


for _n, _want in LENGTHS:
    def _make(n=_n, want=_want):
        @tap.check("packet length %d (%#x): DISCONNECT with a reason, or accepted" % (n, n))
        def _():
            kinds = ("ignore", "open") if 0 < n <= MAX else ("raw",)
            for kind in kinds:
                res, hwm = length_case(n, kind)
                w = want
                if kind == "open" and n >= 5:
                    w = ("disconnect", ["malformed"])
                print("# %d %s: %s%s" % (n, kind, res[0], (" (%s)" % res[1]) if res[1] else "")
                      + (" worker peak %d KiB" % hwm if hwm else ""))
                expect(judge("length %d/%s" % (n, kind), res, want=w),
                       "length %d (%s): %s" % (n, kind, res))
                expect(not hwm or hwm < 16 * 1024 * S["mem"], "worker peak RSS %s KiB" % hwm)
    _make()


@tap.check("after the length cases: the witness and new connections work, nothing left")
def _():
    witness_ok()
    settle()


# ---------------------------------------------------------------- every message number


def open_channel(c, run_cmd=False, eof=False):
    ours, theirs = c.open_session()
    if run_cmd:
        expect(c.request_reply(theirs, "exec", sshstr("exec sleep 30")), "exec refused")
        if eof:
            c.send_packet(bytes([MSG_CHANNEL_EOF]) + u32(theirs))
    return theirs


STATES = ["pre-greeting", "fresh", "open", "running", "after-eof"]


def number_case(state, n, shaped):
    a = S["agent"]
    c = RawConn(a.path)
    chan = 0
    if state == "pre-greeting":
        body = bytes([n]) + (u32(0) * 4 if shaped else b"")
        c.send(pkt(body))
        c.handshake()
        # Bytes before the greeting are garbage to discard: must be fully usable.
        res = outcome(c)
        if res[0] == "polite":
            out, err, status = c.exec_collect("echo pre")
            if (out, status) != (b"pre\n", 0):
                res = ("broken", "session failed")
        c.close()
        return res
    c.handshake()
    if state != "fresh":
        chan = open_channel(c, run_cmd=state in ("running", "after-eof"), eof=state == "after-eof")
    body = bytes([n]) + (u32(chan) + u32(0) * 3 if shaped else b"")
    c.send(pkt(body))
    res = outcome(c)
    c.close()
    return res


for _state in STATES:
    def _make(state=_state):
        @tap.check("every message number 0-255 (empty, channel-shaped) in state '%s'" % state)
        def _():
            kinds = {}
            bad = []
            for n in range(256):
                for shaped in (False, True):
                    res = number_case(state, n, shaped)
                    # A DISCONNECT from the peer (1) just ends the connection.
                    if not judge("msg %d %s in %s" % (n, "shaped" if shaped else "empty", state),
                                 res, allow_closed=n == 1):
                        bad.append((n, shaped, res))
                    kinds[res[0]] = kinds.get(res[0], 0) + 1
            print("# %s: %s" % (state, ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items()))))
            expect(not bad, "misbehaving: %s" % bad[:10])
            settle()
    _make()


@tap.check("after the message-number cases: the witness and new connections work")
def _():
    witness_ok()


# ---------------------------------------------------------------- golden capture


def capture_exec():
    """Client->agent bytes of a real `wicket exec` (stdin data, exit status)."""
    a = S["agent"]
    proxy = os.path.join(S["tmp"], "proxy.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(proxy)
    ls.listen(1)
    rec = bytearray()

    def pump(src, dst, record):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if record:
                    rec.extend(d)
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve():
        cl, _ = ls.accept()
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(a.path)
        t1 = threading.Thread(target=pump, args=(cl, up, True))
        t2 = threading.Thread(target=pump, args=(up, cl, False))
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        cl.close()
        up.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = run(wicket("exec", "unix/" + proxy, "--", "sh", "-c", "cat; echo golden; exit 3"),
            input=b"stdin-data\n", timeout=30)
    t.join(10)
    ls.close()
    expect_eq((r.rc, r.out), (3, b"stdin-data\ngolden\n"), "the captured exec\n" + r.describe())
    return bytes(rec)


@tap.check("truncation at every offset of a golden `wicket exec` capture: clean end each time")
def _():
    cap = capture_exec()
    expect(cap.startswith(GREETING_PREFIX), "capture starts with %s" % show(cap[:60]))
    print("# golden capture: %d bytes" % len(cap))
    counts = {}
    bad = []
    for k in range(len(cap) + 1):
        c = RawConn(S["agent"].path, timeout=15)
        c.read_greeting()
        c.send(cap[:k])
        try:
            c.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t0 = time.monotonic()
        res = outcome(c, probe=False, timeout=15)
        c.close()
        # A prefix that ends cleanly (the whole capture, a DISCONNECT in it) or
        # that the agent answers with DISCONNECT: all fine; hanging is not.
        ok = res[0] in ("closed", "disconnect") and time.monotonic() - t0 < 15
        if not ok:
            bad.append((k, res))
            S["bad"].append("truncation at %d: %s" % (k, res))
        counts[res[0]] = counts.get(res[0], 0) + 1
    print("# %s" % ", ".join("%d %s" % (v, kk) for kk, v in sorted(counts.items())))
    expect(not bad, "misbehaving offsets: %s" % bad[:10])
    settle()
    witness_ok()


# ---------------------------------------------------------------- channels and windows


@tap.check("WINDOW_ADJUST overflowing 2^32-1 -> DISCONNECT")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    ours, theirs = c.open_session()  # we gave the agent a 1 MiB window
    c.send_packet(bytes([MSG_CHANNEL_WINDOW_ADJUST]) + u32(theirs) + u32(0xFFFFFFFF))
    res = outcome(c)
    c.close()
    expect(judge("window overflow", res, want=("disconnect", ["overflow"])), "%s" % (res,))


@tap.check("WINDOW_ADJUST to exactly 2^32-1 is fine")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    c.send_packet(channel_open_session(0, window=0))
    p = c.recv_packet()
    expect_eq(p[0], MSG_CHANNEL_OPEN_CONFIRMATION, "open")
    theirs = Reader(p[5:]).u32()
    c.send_packet(bytes([MSG_CHANNEL_WINDOW_ADJUST]) + u32(theirs) + u32(0xFFFFFFFF))
    res = outcome(c)
    c.close()
    expect(judge("window exactly max", res, want=("polite",)), "%s" % (res,))


@tap.check("data on channels never opened (0, 7, 1023, 2^32-1) -> DISCONNECT")
def _():
    for chan in (0, 7, 1023, 0xFFFFFFFF):
        c = RawConn(S["agent"].path)
        c.handshake()
        c.send_packet(channel_data(chan, b"hello"))
        res = outcome(c)
        c.close()
        expect(judge("data on %d" % chan, res, want=("disconnect", ["not open"])),
               "channel %d: %s" % (chan, res))


@tap.check("data on a channel after its CLOSE, and a second CLOSE -> DISCONNECT")
def _():
    for second in (channel_data, lambda ch, d: bytes([MSG_CHANNEL_CLOSE]) + u32(ch)):
        c = RawConn(S["agent"].path)
        c.handshake()
        ours, theirs = c.open_session()
        c.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(theirs))
        c.send_packet(second(theirs, b"late"))
        res = outcome(c)
        c.close()
        expect(judge("after close", res, want=("disconnect",)), "%s" % (res,))


@tap.check("5000 CHANNEL_OPENs in a row: 1024 open, the rest 'resource shortage'; "
           "peak RSS bounded; the connection and the listener go on")
def _():
    a = S["agent"]
    before = proclib.workers(a.pid)
    c = RawConn(a.path, timeout=60)
    c.handshake()
    w = proclib.new_worker(a.pid, before)
    base = proclib.vm_hwm_kib(w)
    blob = b"".join(pkt(channel_open_session(i)) for i in range(5000))
    sender = threading.Thread(target=c.send, args=(blob,))
    sender.start()
    conf, fail, reasons, texts = [], 0, set(), set()
    while len(conf) + fail < 5000:
        p = c.recv_packet()
        expect(p is not None, "EOF after %d answers" % (len(conf) + fail))
        r = Reader(p)
        t = r.u8()
        if t == MSG_CHANNEL_OPEN_CONFIRMATION:
            r.u32()
            conf.append(r.u32())
        elif t == MSG_CHANNEL_OPEN_FAILURE:
            r.u32()
            reasons.add(r.u32())
            texts.add(r.str())
            fail += 1
        else:
            raise Failure("unexpected message %d during the flood" % t)
    sender.join()
    peak = proclib.vm_hwm_kib(w)
    print("# 5000 opens: %d confirmed, %d refused (reason %s, %s); worker peak RSS %d KiB "
          "(%d KiB before)" % (len(conf), fail, sorted(reasons), sorted(texts), peak, base))
    S["flood_peak"] = peak
    expect_eq((len(conf), fail), (1024, 3976), "confirmed, refused")
    expect_eq(reasons, {4}, "OPEN_FAILURE reason codes (4 = resource shortage)")
    expect(peak < 32 * 1024 * S["mem"], "worker peak RSS %d KiB" % peak)
    # Free one slot: the connection is still fully usable.
    c.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(conf[0]))
    while True:
        p = c.recv_packet()
        if p[0] == MSG_CHANNEL_CLOSE:
            break
    c.next_chan = 6000
    out, err, status = c.exec_collect("echo after-flood")
    expect_eq((out, status), (b"after-flood\n", 0), "a session after the flood")
    witness_ok()
    c.close()
    settle()


@tap.check("5000 opens, each closed right away: no growth (churn)")
def _():
    a = S["agent"]
    before = proclib.workers(a.pid)
    c = RawConn(a.path, timeout=60)
    c.handshake()
    w = proclib.new_worker(a.pid, before)
    # Open/close in lock-step batches so agent ids are known.
    n = 0
    for batch in range(50):
        c.send(b"".join(pkt(channel_open_session(batch * 100 + i)) for i in range(100)))
        ids = []
        while len(ids) < 100:
            p = c.recv_packet()
            expect(p is not None and p[0] == MSG_CHANNEL_OPEN_CONFIRMATION,
                   "open in batch %d: %s" % (batch, show(p)))
            ids.append(Reader(p[5:]).u32())
        c.send(b"".join(pkt(bytes([MSG_CHANNEL_CLOSE]) + u32(i)) for i in ids))
        got = 0
        while got < 100:
            p = c.recv_packet()
            expect(p is not None, "EOF")
            if p[0] == MSG_CHANNEL_CLOSE:
                got += 1
        n += 100
    peak = proclib.vm_hwm_kib(w)
    print("# %d opens and closes: worker peak RSS %d KiB" % (n, peak))
    expect(peak < 32 * 1024 * S["mem"], "worker peak RSS %d KiB" % peak)
    c.close()
    settle()


# ---------------------------------------------------------------- verdict


@tap.check("no worker died of a signal; the listener and the witness are fine; "
           "summary of misbehaving cases")
def _():
    a = S["agent"]
    expect(a.proc.poll() is None, "listener died:\n" + a.log_text())
    witness_ok()
    log = a.log_text(10 ** 7)
    expect("killed by signal" not in log, "a worker died of a signal:\n%s"
           % "\n".join(ln for ln in log.splitlines() if "killed by signal" in ln)[:2000])
    expect("malformed request" not in log, "the monitor saw a malformed request")
    print("# misbehaving hostile cases: %s" % (S["bad"] or "none"))
    expect(not S["bad"], "misbehaving: %s" % S["bad"][:20])


if __name__ == "__main__":
    tap.main(setup)
