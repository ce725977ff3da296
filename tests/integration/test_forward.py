#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Port forwarding: wicket forward -L, raw direct-tcpip / tcpip-forward /
streamlocal requests against wicketd, and plink -L / -R over bare
ssh-connection.  Echo servers (TCP on 127.0.0.1, Unix socket) run in this
process on threads."""

import hashlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (MSG_CHANNEL_CLOSE, MSG_CHANNEL_DATA, MSG_CHANNEL_EOF,  # noqa: E402
                    MSG_CHANNEL_OPEN, MSG_CHANNEL_OPEN_CONFIRMATION, MSG_CHANNEL_OPEN_FAILURE,
                    MSG_CHANNEL_WINDOW_ADJUST, MSG_DEBUG, MSG_DISCONNECT, MSG_GLOBAL_REQUEST,
                    MSG_IGNORE, MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS, Agent, Failure,
                    RawConn, Reader, Skip, expect, expect_eq, parse_disconnect, read_until,
                    WICKETD, run, show, spawn, sshbool, sshstr, tap, u32, wait_until, wicket)

S = {}  # tmp, agent, denied, echo_port, count_port, unix_echo


# ---------------------------------------------------------------- local servers


class Server:
    """A threaded stream server: handler(conn) per connection."""

    def __init__(self, sock, handler):
        self.sock = sock
        self.handler = handler
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()
        tap.at_cleanup(self.close)

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def echo_handler(c):
    """Echo until EOF, then half-close (the client still reads the rest)."""
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)


def count_handler(c):
    """Read to EOF, then answer with the length and sha256 of what came."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        n += len(d)
        h.update(d)
    c.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))


def tcp_server(handler):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    Server(s, handler)
    return s.getsockname()[1]


def unix_server(path, handler):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)
    Server(s, handler)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def closed_port():
    """A port nothing listens on (bound, never listening, so nobody takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    tap.at_cleanup(s.close)
    return s.getsockname()[1]


def port_listening(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def exchange(sock, data, timeout=60):
    """Send data, shut down our write side, read to EOF (concurrently)."""
    sock.settimeout(timeout)
    got = []

    def reader():
        b = bytearray()
        try:
            while True:
                d = sock.recv(1 << 20)
                if not d:
                    break
                b += d
        except OSError as e:
            got.append(e)
        got.append(bytes(b))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    t.join(timeout)
    if t.is_alive():
        raise Failure("no EOF from the forwarded connection within %s s" % timeout)
    return got[-1]


def setup():
    S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(S["tmp"])
    S["denied"] = Agent(S["tmp"], name="denied.sock", extra=["--deny", "forwarding"])
    S["echo_port"] = tcp_server(echo_handler)
    S["count_port"] = tcp_server(count_handler)
    S["unix_echo"] = os.path.join(S["tmp"], "echo.sock")
    unix_server(S["unix_echo"], echo_handler)


# ---------------------------------------------------------------- wicket forward


class Forward:
    """`wicket forward TARGET -L ...` running; ports from its stderr lines."""

    def __init__(self, target, *specs, proxy=None):
        pre = ["--proxy-command", proxy] if proxy else []
        args = []
        for s in specs:
            args += ["-L", s]
        self.errpath = os.path.join(S["tmp"], "forward-%d.err" % time.monotonic_ns())
        self.errf = open(self.errpath, "w+b")
        tap.at_cleanup(self.errf.close)
        self.p = spawn(wicket(*(pre + ["forward", target] + args)), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=self.errf)
        self.ports = []

        def ready():
            if self.p.poll() is not None:
                raise Failure("wicket forward exited with %s:\n%s" % (self.p.returncode,
                                                                      self.err()))
            lines = [ln for ln in self.err().splitlines() if ln.startswith("forwarding ")]
            return lines if len(lines) >= len(specs) else None
        for ln in wait_until(ready, timeout=10, what="wicket forward to listen"):
            # forwarding 127.0.0.1:PORT -> DEST in TARGET
            self.ports.append(int(ln.split(" ")[1].rsplit(":", 1)[1]))
        self.lines = ready()

    def err(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self, i=0):
        return socket.create_connection(("127.0.0.1", self.ports[i]), timeout=15)

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure("wicket forward did not exit within 10 s of signal %d" % sig)


def fwd():
    if "fwd" not in S:
        S["fwd"] = Forward(S["agent"].target, "0:127.0.0.1:%d" % S["echo_port"],
                           "0:127.0.0.1:%d" % S["count_port"],
                           "0:127.0.0.1:%d" % closed_port(),
                           "127.0.0.1:0:%s" % S["unix_echo"])
    return S["fwd"]


@tap.check("wicket forward -L 0:...: prints 'forwarding 127.0.0.1:PORT -> HOST:PORT in TARGET'")
def _():
    f = fwd()
    expect_eq(f.lines[0], "forwarding 127.0.0.1:%d -> 127.0.0.1:%d in %s"
              % (f.ports[0], S["echo_port"], S["agent"].target), "first line")
    expect(f.lines[3].endswith("-> %s in %s" % (S["unix_echo"], S["agent"].target)),
           "unix line: %s" % f.lines[3])
    expect(all(p > 0 for p in f.ports), "ports %s" % f.ports)


@tap.check("10 MB through -L to an echo server, byte-exact; half-close keeps the echo coming")
def _():
    data = os.urandom(10 * 1024 * 1024 + 123)
    s = fwd().connect(0)
    got = exchange(s, data)
    s.close()
    expect(isinstance(got, bytes), "read error %r" % got)
    expect_eq(len(got), len(data), "echoed length")
    expect(got == data, "echoed bytes differ")


@tap.check("10 MB in, then EOF; the server answers only after EOF (shutdown reaches it)")
def _():
    data = os.urandom(10 * 1024 * 1024 + 1)
    s = fwd().connect(1)
    got = exchange(s, data)
    s.close()
    want = b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    expect_eq(got, want, "server's summary")


@tap.check("10 MB echoed to a slow reader: back-pressure, nothing lost")
def _():
    data = os.urandom(10 * 1024 * 1024)
    s = fwd().connect(0)
    s.settimeout(60)
    got = bytearray()
    sent = 0
    # Send everything while reading slowly: windows and socket buffers fill.
    while True:
        r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 30)
        if not r and not w:
            raise Failure("stalled at sent=%d got=%d" % (sent, len(got)))
        if w:
            sent += s.send(data[sent:sent + 65536])
            if sent == len(data):
                s.shutdown(socket.SHUT_WR)
        if r:
            d = s.recv(4096)
            if not d:
                break
            got += d
            if len(got) < 2 * 1024 * 1024:
                time.sleep(0.0005)
    s.close()
    expect_eq(len(got), len(data), "echoed length")
    expect(bytes(got) == data, "echoed bytes differ")


@tap.check("connecting to a closed port: the local connection is closed promptly")
def _():
    f = fwd()
    s = f.connect(2)
    s.settimeout(10)
    t0 = time.monotonic()
    try:
        d = s.recv(100)
    except ConnectionResetError:
        d = b""
    dt = time.monotonic() - t0
    s.close()
    expect_eq(d, b"", "data from a refused forward")
    expect(dt < 5, "closed only after %.1f s" % dt)
    wait_until(lambda: "connect failed" in f.err(), timeout=5, what="the reason on stderr")
    expect("Connection refused" in f.err(), "stderr:\n" + f.err())


@tap.check("... and wicket forward keeps running and serves the next connection")
def _():
    f = fwd()
    expect(f.p.poll() is None, "wicket forward exited: %s\n%s" % (f.p.returncode, f.err()))
    s = f.connect(0)
    expect_eq(exchange(s, b"still here"), b"still here", "echo")
    s.close()


@tap.check("20 concurrent connections, 512 KiB each, byte-exact")
def _():
    f = fwd()
    results = [None] * 20
    datas = [os.urandom(512 * 1024 + i) for i in range(20)]

    def one(i):
        try:
            s = f.connect(0)
            results[i] = exchange(s, datas[i])
            s.close()
        except Exception as e:  # reported below
            results[i] = e
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    bad = [i for i in range(20) if results[i] != datas[i]]
    expect(not bad, "connections %s failed: %s" % (bad, [
        results[i] if not isinstance(results[i], bytes) else "%d bytes" % len(results[i])
        for i in bad]))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@tap.check("out of fds (EMFILE): wicket forward pauses instead of spinning, then serves the queue")
def _():
    if not shutil.which("prlimit"):
        raise Skip("prlimit (util-linux) is not installed")
    f = Forward(S["agent"].target, "0:127.0.0.1:%d" % S["echo_port"])
    try:
        nfds = len(os.listdir("/proc/%d/fd" % f.p.pid))
        # Room for exactly one accepted connection.
        run(["prlimit", "--pid", str(f.p.pid), "--nofile=%d:%d" % (nfds + 1, nfds + 1)])
        first = f.connect(0)
        expect_eq(exchange(first, b"one"), b"one", "first connection echo")
        waiting = [f.connect(0) for _ in range(3)]  # queued: accept() gets EMFILE
        wait_until(lambda: "pausing" in f.err(), timeout=10, what="the EMFILE warning")
        c0 = cpu_seconds(f.p.pid)
        time.sleep(2)
        used = cpu_seconds(f.p.pid) - c0
        expect(used < 0.5, "wicket forward used %.2f s of CPU in 2 s while out of fds" % used)
        first.close()
        # One at a time, as fds free up: each queued connection is served.
        for i, s in enumerate(waiting):
            expect_eq(exchange(s, b"queued %d" % i), b"queued %d" % i, "queued connection %d" % i)
            s.close()
        expect(f.p.poll() is None, "wicket forward exited:\n" + f.err())
    finally:
        f.stop()


@tap.check("-L 127.0.0.1:0:/PATH: direct-streamlocal to a Unix echo server, 2 MB byte-exact")
def _():
    data = os.urandom(2 * 1024 * 1024 + 5)
    s = fwd().connect(3)
    got = exchange(s, data)
    s.close()
    expect(got == data, "echo differs (%s bytes)" % (len(got) if isinstance(got, bytes) else got))


@tap.check("SIGINT ends wicket forward with status 0 and closes its port")
def _():
    f = Forward(S["agent"].target, "0:127.0.0.1:%d" % S["echo_port"])
    s = f.connect(0)
    expect_eq(exchange(s, b"x" * 1000), b"x" * 1000, "echo before the signal")
    s.close()
    rc = f.stop(signal.SIGINT)
    expect_eq(rc, 0, "exit status\n" + f.err())
    expect(not port_listening(f.ports[0]), "port %d still listening" % f.ports[0])


@tap.check("SIGTERM with a connection open: exit 0")
def _():
    f = Forward(S["agent"].target, "0:127.0.0.1:%d" % S["echo_port"])
    s = f.connect(0)
    s.sendall(b"hello")
    expect_eq(s.recv(5), b"hello", "echo")
    rc = f.stop(signal.SIGTERM)
    s.close()
    expect_eq(rc, 0, "exit status\n" + f.err())


@tap.check("wicket forward: bad -L specs and missing TARGET are usage errors (255)")
def _():
    for args in (["forward", S["agent"].target, "-L", "80:host"],
                 ["forward", S["agent"].target, "-L", "x:host:80"],
                 ["forward", S["agent"].target, "-L", "0:host:0"],
                 ["forward", S["agent"].target, "-L", "0:host:99999"],
                 ["forward", S["agent"].target],
                 ["forward", "-L", "0:host:80"]):
        r = run(wicket(*args), timeout=10)
        expect_eq(r.rc, 255, "exit status\n" + r.describe())
        expect(r.err.startswith(b"wicket: "), "message\n" + r.describe())


@tap.check("wicketd --deny forwarding: wicket forward's connections are refused")
def _():
    f = Forward(S["denied"].target, "0:127.0.0.1:%d" % S["echo_port"])
    s = f.connect(0)
    s.settimeout(10)
    try:
        d = s.recv(100)
    except ConnectionResetError:
        d = b""
    s.close()
    expect_eq(d, b"", "data through a denied forward")
    wait_until(lambda: "administratively prohibited" in f.err(), timeout=5,
               what="'administratively prohibited' on stderr")
    expect_eq(f.stop(), 0, "exit status")


# ---------------------------------------------------------------- raw protocol


def raw(agent=None):
    c = RawConn((agent or S["agent"]).path)
    c.handshake()
    return c


def next_pkt(c, what):
    while True:
        p = c.recv_packet()
        if p is None:
            raise Failure("EOF while waiting for %s" % what)
        if p[0] in (MSG_IGNORE, MSG_DEBUG, MSG_CHANNEL_WINDOW_ADJUST):
            continue
        if p[0] == MSG_DISCONNECT:
            raise Failure("agent disconnected while waiting for %s: %r"
                          % (what, parse_disconnect(p)))
        return p


def global_request(c, name, data, want=True):
    c.send_packet(bytes([MSG_GLOBAL_REQUEST]) + sshstr(name) + sshbool(want) + data)
    if not want:
        return None
    p = next_pkt(c, "the reply to " + name)
    while p[0] in (MSG_CHANNEL_DATA, MSG_CHANNEL_EOF, MSG_CHANNEL_CLOSE):
        p = next_pkt(c, "the reply to " + name)  # a channel winding down
    expect(p[0] in (MSG_REQUEST_SUCCESS, MSG_REQUEST_FAILURE),
           "reply to %s is message %d" % (name, p[0]))
    return p


def open_direct(c, ours, ctype, fields, window=1 << 20, maxpkt=32768):
    c.send_packet(bytes([MSG_CHANNEL_OPEN]) + sshstr(ctype) + u32(ours) + u32(window)
                  + u32(maxpkt) + fields)
    p = next_pkt(c, "the answer to " + ctype)
    r = Reader(p)
    t = r.u8()
    expect_eq(r.u32(), ours, "recipient channel")
    if t == MSG_CHANNEL_OPEN_CONFIRMATION:
        return ("ok", r.u32())
    expect_eq(t, MSG_CHANNEL_OPEN_FAILURE, "answer type")
    code = r.u32()
    msg = r.str()
    r.str()
    expect(r.end(), "junk after OPEN_FAILURE")
    return ("fail", code, msg)


def chan_roundtrip(c, ours, theirs, data):
    """Send data + EOF on a channel, read data to EOF+CLOSE, answer CLOSE."""
    for i in range(0, len(data), 32768):
        c.send_packet(bytes([MSG_CHANNEL_DATA]) + u32(theirs) + sshstr(data[i:i + 32768]))
    c.send_packet(bytes([MSG_CHANNEL_EOF]) + u32(theirs))
    got = b""
    eof = False
    while True:
        p = next_pkt(c, "channel data")
        r = Reader(p)
        t = r.u8()
        expect_eq(r.u32(), ours, "recipient of message %d" % t)
        if t == MSG_CHANNEL_DATA:
            expect(not eof, "data after EOF")
            d = r.str()
            got += d
            # Consumed: reopen the window as a real client does.
            c.send_packet(bytes([MSG_CHANNEL_WINDOW_ADJUST]) + u32(theirs) + u32(len(d)))
        elif t == MSG_CHANNEL_EOF:
            eof = True
        elif t == MSG_CHANNEL_CLOSE:
            break
        else:
            raise Failure("unexpected message %d on the channel" % t)
    c.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(theirs))
    expect(eof, "CLOSE without EOF")
    return got


@tap.check("raw direct-tcpip: confirmed, 1 MB echoed with EOF then CLOSE")
def _():
    c = raw()
    a = open_direct(c, 0, "direct-tcpip", sshstr("127.0.0.1") + u32(S["echo_port"])
                    + sshstr("192.0.2.1") + u32(1234))
    expect_eq(a[0], "ok", "open result %r" % (a,))
    data = os.urandom(1 << 20)
    expect(chan_roundtrip(c, 0, a[1], data) == data, "echo differs")
    c.close()


@tap.check("raw direct-tcpip to a closed port: OPEN_FAILURE 2 'connect failed: ...'")
def _():
    c = raw()
    a = open_direct(c, 0, "direct-tcpip", sshstr("127.0.0.1") + u32(closed_port())
                    + sshstr("127.0.0.1") + u32(1))
    expect_eq(a[:2], ("fail", 2), "answer %r" % (a,))
    expect_eq(a[2], b"connect failed: Connection refused", "message")
    # The connection goes on.
    b = open_direct(c, 1, "direct-tcpip", sshstr("localhost") + u32(S["echo_port"])
                    + sshstr("127.0.0.1") + u32(1))
    expect_eq(b[0], "ok", "next open %r" % (b,))
    expect_eq(chan_roundtrip(c, 1, b[1], b"again"), b"again", "echo")
    c.close()


@tap.check("raw direct-tcpip: bad name, bad port, malformed fields -> OPEN_FAILURE 2")
def _():
    c = raw()
    cases = [sshstr("no-such-host.invalid") + u32(80) + sshstr("x") + u32(1),
             sshstr("127.0.0.1") + u32(70000) + sshstr("x") + u32(1),
             sshstr("127.0.0.1") + u32(80),
             sshstr("a\0b") + u32(80) + sshstr("x") + u32(1)]
    for i, fields in enumerate(cases):
        a = open_direct(c, i, "direct-tcpip", fields)
        expect_eq(a[:2], ("fail", 2), "answer to case %d: %r" % (i, a))
    c.close()


@tap.check("raw direct-streamlocal@openssh.com: echo; a missing socket fails with reason 2")
def _():
    c = raw()
    a = open_direct(c, 0, "direct-streamlocal@openssh.com", sshstr(S["unix_echo"]) + sshstr("")
                    + u32(0))
    expect_eq(a[0], "ok", "open %r" % (a,))
    expect_eq(chan_roundtrip(c, 0, a[1], b"unix!" * 1000), b"unix!" * 1000, "echo")
    b = open_direct(c, 1, "direct-streamlocal@openssh.com",
                    sshstr(os.path.join(S["tmp"], "nope.sock")) + sshstr("") + u32(0))
    expect_eq(b[:2], ("fail", 2), "answer %r" % (b,))
    expect_eq(b[2], b"connect failed: No such file or directory", "message")
    c.close()


def read_forwarded_open(c, ctype):
    p = next_pkt(c, "CHANNEL_OPEN " + ctype)
    r = Reader(p)
    expect_eq(r.u8(), MSG_CHANNEL_OPEN, "message type")
    expect_eq(r.str(), ctype.encode(), "channel type")
    sender = r.u32()
    window = r.u32()
    maxpkt = r.u32()
    expect(window > 0 and maxpkt > 0, "window %d maxpkt %d" % (window, maxpkt))
    return r, sender


@tap.check("raw tcpip-forward 127.0.0.1:0 -> REQUEST_SUCCESS with the port; forwarded-tcpip")
def _():
    c = raw()
    p = global_request(c, "tcpip-forward", sshstr("127.0.0.1") + u32(0))
    expect_eq(p[0], MSG_REQUEST_SUCCESS, "reply")
    expect_eq(len(p), 5, "REQUEST_SUCCESS carries one uint32 (%s)" % show(p))
    port = struct.unpack(">I", p[1:5])[0]
    expect(0 < port < 65536, "port %d" % port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    r, sender = read_forwarded_open(c, "forwarded-tcpip")
    expect_eq(r.str(), b"127.0.0.1", "address that was connected")
    expect_eq(r.u32(), port, "port that was connected")
    expect_eq(r.str(), b"127.0.0.1", "originator address")
    expect_eq(r.u32(), s.getsockname()[1], "originator port")
    expect(r.end(), "junk after the forwarded-tcpip fields")
    c.send_packet(bytes([MSG_CHANNEL_OPEN_CONFIRMATION]) + u32(sender) + u32(7)
                  + u32(1 << 20) + u32(32768))
    # Data both ways: socket -> channel, channel -> socket, with half-close.
    s.sendall(b"from the guest side")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        q = next_pkt(c, "data from the forwarded connection")
        rr = Reader(q)
        t = rr.u8()
        expect_eq(rr.u32(), 7, "recipient")
        if t == MSG_CHANNEL_DATA:
            got += rr.str()
        elif t == MSG_CHANNEL_EOF:
            break
        else:
            raise Failure("unexpected message %d" % t)
    expect_eq(got, b"from the guest side", "data")
    c.send_packet(bytes([MSG_CHANNEL_DATA]) + u32(sender) + sshstr(b"answer"))
    c.send_packet(bytes([MSG_CHANNEL_EOF]) + u32(sender))
    s.settimeout(10)
    back = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        back += d
    expect_eq(back, b"answer", "data to the guest side socket")
    q = next_pkt(c, "CLOSE")
    expect_eq(q[0], MSG_CHANNEL_CLOSE, "message after both EOFs")
    c.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(sender))
    s.close()
    # Cancel: the port stops listening.
    p = global_request(c, "cancel-tcpip-forward", sshstr("127.0.0.1") + u32(port))
    expect_eq(p, bytes([MSG_REQUEST_SUCCESS]), "cancel reply")
    wait_until(lambda: not port_listening(port), timeout=5, what="port %d to close" % port)
    p = global_request(c, "cancel-tcpip-forward", sshstr("127.0.0.1") + u32(port))
    expect_eq(p, bytes([MSG_REQUEST_FAILURE]), "second cancel")
    c.close()


@tap.check("raw tcpip-forward on a fixed port: empty REQUEST_SUCCESS; refused forwarded-tcpip")
def _():
    c = raw()
    port = free_port()
    p = global_request(c, "tcpip-forward", sshstr("localhost") + u32(port))
    expect_eq(p, bytes([MSG_REQUEST_SUCCESS]), "reply (no port for a fixed port)")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    r, sender = read_forwarded_open(c, "forwarded-tcpip")
    expect_eq(r.str(), b"localhost", "address as requested")
    expect_eq(r.u32(), port, "port")
    c.send_packet(bytes([MSG_CHANNEL_OPEN_FAILURE]) + u32(sender) + u32(1) + sshstr("no")
                  + sshstr(""))
    s.settimeout(10)
    try:
        d = s.recv(10)
    except ConnectionResetError:
        d = b""
    expect_eq(d, b"", "refused connection closed")
    s.close()
    # Same port again while it is taken: failure, the connection goes on.
    p = global_request(c, "tcpip-forward", sshstr("127.0.0.1") + u32(port))
    expect_eq(p, bytes([MSG_REQUEST_FAILURE]), "second bind of the same port")
    c.close()
    # Connection gone: the listener is removed.
    wait_until(lambda: not port_listening(port), timeout=5,
               what="port %d to close with the connection" % port)


@tap.check("at most 64 listening forwards per connection")
def _():
    c = raw()
    for i in range(64):
        p = global_request(c, "tcpip-forward", sshstr("127.0.0.1") + u32(0))
        expect_eq(p[0], MSG_REQUEST_SUCCESS, "forward %d" % i)
    p = global_request(c, "tcpip-forward", sshstr("127.0.0.1") + u32(0))
    expect_eq(p, bytes([MSG_REQUEST_FAILURE]), "65th forward")
    c.close()


@tap.check("raw streamlocal-forward@openssh.com: forwarded-streamlocal; cancel removes the socket")
def _():
    c = raw()
    path = os.path.join(S["tmp"], "rfwd.sock")
    p = global_request(c, "streamlocal-forward@openssh.com", sshstr(path))
    expect_eq(p, bytes([MSG_REQUEST_SUCCESS]), "reply")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    r, sender = read_forwarded_open(c, "forwarded-streamlocal@openssh.com")
    expect_eq(r.str(), path.encode(), "socket path")
    r.str()
    expect(r.end(), "junk after the forwarded-streamlocal fields")
    c.send_packet(bytes([MSG_CHANNEL_OPEN_CONFIRMATION]) + u32(sender) + u32(3)
                  + u32(1 << 20) + u32(32768))
    s.sendall(b"ping")
    q = next_pkt(c, "data")
    expect_eq(q, bytes([MSG_CHANNEL_DATA]) + u32(3) + sshstr(b"ping"), "data packet")
    c.send_packet(bytes([MSG_CHANNEL_DATA]) + u32(sender) + sshstr(b"pong"))
    expect_eq(s.recv(4), b"pong", "reply through the socket")
    s.close()
    c.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(sender))
    p = global_request(c, "cancel-streamlocal-forward@openssh.com", sshstr(path))
    expect_eq(p, bytes([MSG_REQUEST_SUCCESS]), "cancel reply")
    wait_until(lambda: not os.path.exists(path), timeout=5, what="the socket file to go")
    c.close()


@tap.check("--deny forwarding: direct-* OPEN_FAILURE 1, forward requests REQUEST_FAILURE")
def _():
    c = raw(S["denied"])
    a = open_direct(c, 0, "direct-tcpip", sshstr("127.0.0.1") + u32(S["echo_port"])
                    + sshstr("127.0.0.1") + u32(1))
    expect_eq(a, ("fail", 1, b"administratively prohibited"), "direct-tcpip")
    a = open_direct(c, 1, "direct-streamlocal@openssh.com", sshstr(S["unix_echo"]) + sshstr("")
                    + u32(0))
    expect_eq(a, ("fail", 1, b"administratively prohibited"), "direct-streamlocal")
    p = global_request(c, "tcpip-forward", sshstr("127.0.0.1") + u32(0))
    expect_eq(p, bytes([MSG_REQUEST_FAILURE]), "tcpip-forward")
    p = global_request(c, "streamlocal-forward@openssh.com",
                       sshstr(os.path.join(S["tmp"], "denied-fwd.sock")))
    expect_eq(p, bytes([MSG_REQUEST_FAILURE]), "streamlocal-forward")
    c.close()


# ---------------------------------------------------------------- plink


def need_plink():
    if not shutil.which("plink"):
        raise Skip("plink (putty-tools) is not installed")


@tap.check("plink -ssh-connection -L through wicketd: 1 MB echoed")
def _():
    need_plink()
    port = free_port()
    p = spawn(["plink", "-batch", "-ssh-connection", "-L",
               "127.0.0.1:%d:127.0.0.1:%d" % (port, S["echo_port"]), "-N", S["agent"].path],
              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: p.poll() is not None or port_listening(port), timeout=10,
               what="plink to listen on %d" % port)
    if p.poll() is not None:
        raise Failure("plink exited with %s: %s" % (p.returncode, show(p.stderr.read())))
    data = os.urandom(1 << 20)
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    got = exchange(s, data)
    s.close()
    expect(got == data, "echo differs (%s)" % (len(got) if isinstance(got, bytes) else got))
    p.terminate()


@tap.check("plink -ssh-connection -R through wicketd: listening in the 'guest', 1 MB echoed")
def _():
    need_plink()
    port = free_port()
    p = spawn(["plink", "-batch", "-ssh-connection", "-R",
               "127.0.0.1:%d:127.0.0.1:%d" % (port, S["echo_port"]), "-N", S["agent"].path],
              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: p.poll() is not None or port_listening(port), timeout=10,
               what="wicketd to listen on %d for plink" % port)
    if p.poll() is not None:
        raise Failure("plink exited with %s: %s" % (p.returncode, show(p.stderr.read())))
    data = os.urandom(1 << 20)
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    got = exchange(s, data)
    s.close()
    expect(got == data, "echo differs (%s)" % (len(got) if isinstance(got, bytes) else got))
    p.terminate()
    p.wait(10)
    wait_until(lambda: not port_listening(port), timeout=5,
               what="the forward to go with plink's connection")


@tap.check("wicket forward against psusan (a real bare ssh-connection server): 1 MB echoed")
def _():
    if not shutil.which("psusan"):
        raise Skip("psusan (putty-tools) is not installed")
    f = Forward("x", "0:127.0.0.1:%d" % S["echo_port"], proxy="psusan")
    data = os.urandom(1 << 20)
    s = f.connect(0)
    got = exchange(s, data)
    s.close()
    expect(got == data, "echo differs (%s)" % (len(got) if isinstance(got, bytes) else got))
    expect_eq(f.stop(signal.SIGINT), 0, "exit status\n" + f.err())


@tap.check("the agent going away ends wicket forward with 255 and a reason")
def _():
    # Use an agent that exits 1 s after starting (wicketd --stdio under timeout).
    f = Forward("x", "0:127.0.0.1:%d" % S["echo_port"],
                proxy="timeout 1 %s --stdio" % WICKETD)
    try:
        rc = f.p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise Failure("wicket forward still running after its agent exited")
    expect_eq(rc, 255, "exit status\n" + f.err())
    expect("connection lost" in f.err(), "stderr:\n" + f.err())
    expect(not port_listening(f.ports[0]), "port still listening")


@tap.check("the agents are still alive")
def _():
    expect(S["agent"].alive(), "wicketd died:\n" + S["agent"].log_text())
    expect(S["denied"].alive(), "denied wicketd died:\n" + S["denied"].log_text())


if __name__ == "__main__":
    tap.main(setup)
