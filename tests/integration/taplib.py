# SPDX-License-Identifier: MIT
"""Small shared helpers for wicket's integration tests.

- TAP output: register checks with @tap.check("description"); tap.main()
  prints the plan, runs every check (an exception is a `not ok` with the
  reason as `#` diagnostics; raise Skip("why") for `ok N - ... # SKIP why`)
  and always runs the cleanups, also on SIGTERM/SIGINT from meson.
- Processes: run() with a timeout (a hang is a failure, the whole process
  group is killed), spawn() for long-lived ones (killed at cleanup).
- Agents: Agent(tmpdir) starts `wicketd --listen unix/PATH` and waits until
  the socket accepts a connection.
- RawConn: a tiny bare ssh-connection client for speaking raw packets.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# meson sets these (tests/meson.build); by hand they default to ./build.
SRCDIR = os.environ.get("WICKET_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILDDIR = os.environ.get("WICKET_BUILDDIR") or os.path.join(SRCDIR, "build")
WICKET = os.environ.get("WICKET") or os.path.join(BUILDDIR, "host-tool", "wicket")
WICKETD = os.environ.get("WICKETD") or os.path.join(BUILDDIR, "agent", "wicketd")

# psusan runs every command through $SHELL and exits 127 when it is unset,
# as it is under CI (no login shell).  Our own agent reads the passwd entry.
os.environ.setdefault("SHELL", "/bin/sh")

GREETING_PREFIX = b"SSHCONNECTION@putty.projects.tartarus.org-2.0-"

# Message numbers (RFC 4253/4254).
MSG_DISCONNECT = 1
MSG_IGNORE = 2
MSG_UNIMPLEMENTED = 3
MSG_DEBUG = 4
MSG_KEXINIT = 20
MSG_USERAUTH_REQUEST = 50
MSG_GLOBAL_REQUEST = 80
MSG_REQUEST_SUCCESS = 81
MSG_REQUEST_FAILURE = 82
MSG_CHANNEL_OPEN = 90
MSG_CHANNEL_OPEN_CONFIRMATION = 91
MSG_CHANNEL_OPEN_FAILURE = 92
MSG_CHANNEL_WINDOW_ADJUST = 93
MSG_CHANNEL_DATA = 94
MSG_CHANNEL_EXTENDED_DATA = 95
MSG_CHANNEL_EOF = 96
MSG_CHANNEL_CLOSE = 97
MSG_CHANNEL_REQUEST = 98
MSG_CHANNEL_SUCCESS = 99
MSG_CHANNEL_FAILURE = 100

DISC_PROTOCOL_ERROR = 2


class Failure(Exception):
    """A check failed; the message (may be multi-line) becomes diagnostics."""


class Skip(Exception):
    """The check cannot run here (missing tool...)."""


def fail(msg):
    raise Failure(msg)


def show(b, limit=300):
    """A bytes value for a diagnostic line, shortened."""
    if isinstance(b, str):
        b = b.encode("utf-8", "replace")
    r = repr(b)
    if len(r) > limit:
        r = r[:limit] + "...(%d bytes)" % len(b)
    return r


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise Failure("%s:\n  expected %s\n  actual   %s" % (what, show(expected), show(actual)))


def need_tool(name):
    path = shutil.which(name)
    if not path:
        raise Skip("%s is not installed" % name)
    return path


# ---------------------------------------------------------------- TAP


class Tap:
    def __init__(self):
        self.checks = []
        self.cleanups = []
        self.failed = 0

    def check(self, desc):
        def deco(fn):
            self.checks.append((desc, fn))
            return fn
        return deco

    def at_cleanup(self, fn):
        """Run fn() at the end (last registered first), even on failure."""
        self.cleanups.append(fn)
        return fn

    def tmpdir(self, prefix="wicket-it-"):
        d = tempfile.mkdtemp(prefix=prefix)
        self.at_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
        return d

    def _out(self, line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _diag(self, text):
        for ln in str(text).splitlines() or [""]:
            self._out("# " + ln)

    def run_cleanups(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception:  # cleanup must go on
                self._diag("cleanup error: " + traceback.format_exc())

    def main(self, setup=None):
        def on_signal(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        os.mkdir(MUX_RUNTIME, 0o700)  # the muxes' (stop_muxes() removes it)
        self._out("1..%d" % len(self.checks))
        try:
            setup_error = None
            if setup:
                try:
                    setup()
                except Failure as e:
                    setup_error = str(e)
                except Exception:
                    setup_error = traceback.format_exc()
            for i, (desc, fn) in enumerate(self.checks, 1):
                if setup_error:
                    self.failed += 1
                    self._out("not ok %d - %s" % (i, desc))
                    self._diag("setup failed: " + setup_error if i == 1 else
                               "setup failed (see check 1)")
                    continue
                t0 = time.monotonic()
                try:
                    fn()
                except Skip as e:
                    self._out("ok %d - %s # SKIP %s" % (i, desc, e))
                    continue
                except Failure as e:
                    self.failed += 1
                    self._out("not ok %d - %s" % (i, desc))
                    self._diag(e)
                    continue
                except Exception:
                    self.failed += 1
                    self._out("not ok %d - %s" % (i, desc))
                    self._diag(traceback.format_exc())
                    continue
                self._out("ok %d - %s" % (i, desc))
                dt = time.monotonic() - t0
                if dt > 5:
                    self._diag("took %.1f s" % dt)
        finally:
            self.run_cleanups()
        sys.exit(1 if self.failed else 0)


tap = Tap()


# ---------------------------------------------------------------- muxes

# Every wicket command shares its target's stream through a mux that
# lingers after it (host-tool/mux/mux.h).  Each test program gets its own
# runtime directory for them, and stops every mux started there when it ends.
# Made by tap.main(), not at import: programs that import this module only
# to serve as a helper (a --relay, a fake line) must leave nothing behind.
MUX_RUNTIME = os.path.join(tempfile.gettempdir(), "wicket-mux-" + secrets.token_hex(8))
os.environ["XDG_RUNTIME_DIR"] = MUX_RUNTIME


def mux_pids(runtime=MUX_RUNTIME):
    """Pids of the mux processes whose socket is under @runtime."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[1] == b"--mux-daemon" and \
                argv[3].startswith(runtime.encode() + b"/"):
            pids.append(int(d))
    return pids


def stop_muxes():
    for pid in mux_pids():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while mux_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in mux_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(MUX_RUNTIME, ignore_errors=True)


tap.at_cleanup(stop_muxes)


# ---------------------------------------------------------------- processes


class Result:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed

    def describe(self):
        if isinstance(self.argv, (list, tuple)):
            cmd = b" ".join(os.fsencode(a) for a in self.argv)
        else:
            cmd = self.argv
        return "command %s\n  exit %s after %.1f s\n  stdout %s\n  stderr %s" % (
            show(cmd, 400), self.rc, self.elapsed, show(self.out), show(self.err))


def _killpg(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def strace_env():
    """Environment for a command run under strace: LeakSanitizer cannot work
    under ptrace, so an ASan build must not try (it aborts instead)."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return env


def run(argv, input=None, timeout=30, env=None, stdin=None, shell=False, cwd=None):
    """Run to completion with stdout/stderr captured apart.

    input: bytes for stdin (then EOF).  stdin: an fd/file to use instead;
    default /dev/null.  On timeout the process group is killed and Failure
    raised.  Any leftover process of the group is killed afterwards."""
    if input is not None:
        sin = subprocess.PIPE
    elif stdin is not None:
        sin = stdin
    else:
        sin = subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=sin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, shell=shell, cwd=cwd, start_new_session=True)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(p.pid)
        out, err = p.communicate()
        r = Result(argv, None, out, err, time.monotonic() - t0)
        raise Failure("timed out after %s s (process group killed)\n%s" % (timeout, r.describe()))
    finally:
        _killpg(p.pid)
    return Result(argv, p.returncode, out, err, time.monotonic() - t0)


def spawn(argv, **kw):
    """Start a long-lived process in its own process group; killed at cleanup."""
    kw.setdefault("start_new_session", True)
    p = subprocess.Popen(argv, **kw)

    def stop():
        _killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _killpg(p.pid)
            p.wait(timeout=5)
    tap.at_cleanup(stop)
    return p


def wait_until(pred, timeout=10, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(interval)


def serve_port(p, log):
    """The TCP port `wicket serve --listen 127.0.0.1:0` (process @p, its
    stderr in the file @log, opened w+b) says it listens on; Failure with
    its log if it exits first."""
    def port():
        log.seek(0)
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read())
        if p.poll() is not None:
            log.seek(0)
            raise Failure("wicket serve exited: %s" % show(log.read()[-800:], 800))
        return int(m.group(1)) if m else None
    return wait_until(port, what="wicket serve to listen")


def read_until(f, token, timeout=15):
    """Read a pipe (file object) until token shows up; returns what was read."""
    import select
    got = b""
    deadline = time.monotonic() + timeout
    while token not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([f], [], [], left)[0]:
            raise Failure("timed out waiting for %s (read %s)" % (show(token), show(got)))
        d = os.read(f.fileno(), 65536)
        if not d:
            raise Failure("EOF while waiting for %s (read %s)" % (show(token), show(got)))
        got += d
    return got


def pids_with_argv(argv):
    """Pids of processes whose argv is exactly argv (a unique marker in it
    lets a test find the remote commands it started)."""
    want = b"".join(os.fsencode(a) + b"\0" for a in argv)
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if f.read() == want:
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def kill_cmdline(argv):
    """SIGKILL the processes pids_with_argv(argv) finds; returns their pids."""
    pids = pids_with_argv(argv)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids


def socket_accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Agent:
    """wicketd --listen unix/DIR/agent.sock, logging to DIR/wicketd.log."""

    def __init__(self, tmpdir, name="agent.sock", extra=()):
        if not WICKETD or not os.access(WICKETD, os.X_OK):
            raise Failure("WICKETD is not set to an executable (%r)" % WICKETD)
        self.path = os.path.join(tmpdir, name)
        self.target = "unix/" + self.path
        self.log = os.path.join(tmpdir, name + ".log")
        self.logf = open(self.log, "ab")
        tap.at_cleanup(self.logf.close)
        self.proc = spawn([WICKETD, "--listen", self.target] + list(extra),
                          stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)

        def ready():
            if self.proc.poll() is not None:
                raise Failure("wicketd exited with %s at start-up:\n%s"
                              % (self.proc.returncode, self.log_text()))
            return os.path.exists(self.path) and socket_accepts(self.path)
        wait_until(ready, timeout=10, what="wicketd to accept on " + self.path)

    def alive(self):
        return self.proc.poll() is None

    def log_text(self, limit=3000):
        try:
            with open(self.log, "rb") as f:
                t = f.read()
        except OSError:
            return ""
        return t[-limit:].decode("utf-8", "replace")


# ---------------------------------------------------------------- raw client


def u32(v):
    return struct.pack(">I", v)


def sshstr(s):
    if isinstance(s, str):
        s = s.encode()
    return u32(len(s)) + s


def sshbool(b):
    return b"\x01" if b else b"\x00"


class Reader:
    """Cursor over a packet payload."""

    def __init__(self, data):
        self.d, self.i = data, 0

    def u8(self):
        if self.i + 1 > len(self.d):
            raise Failure("truncated packet %s" % show(self.d))
        v = self.d[self.i]
        self.i += 1
        return v

    def u32(self):
        if self.i + 4 > len(self.d):
            raise Failure("truncated packet %s" % show(self.d))
        v = struct.unpack(">I", self.d[self.i:self.i + 4])[0]
        self.i += 4
        return v

    def str(self):
        n = self.u32()
        if self.i + n > len(self.d):
            raise Failure("truncated string in packet %s" % show(self.d))
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def bool(self):
        return self.u8() != 0

    def end(self):
        return self.i == len(self.d)


def parse_disconnect(payload):
    """(code, description, language) of a DISCONNECT payload."""
    r = Reader(payload)
    expect_eq(r.u8(), MSG_DISCONNECT, "message type")
    code = r.u32()
    desc = r.str()
    lang = r.str()
    expect(r.end(), "junk after DISCONNECT fields: %s" % show(payload))
    return code, desc, lang


def channel_open_session(sender, window=1 << 20, maxpkt=32768):
    return bytes([MSG_CHANNEL_OPEN]) + sshstr("session") + u32(sender) + u32(window) + u32(maxpkt)


def channel_request(recipient, rtype, want_reply, data=b""):
    return bytes([MSG_CHANNEL_REQUEST]) + u32(recipient) + sshstr(rtype) + sshbool(want_reply) + data


def channel_data(recipient, data):
    return bytes([MSG_CHANNEL_DATA]) + u32(recipient) + sshstr(data)


class RawConn:
    """A bare ssh-connection client over a Unix socket (or any socket)."""

    def __init__(self, path=None, sock=None, timeout=15):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(path)
        else:
            sock.settimeout(timeout)
        self.s = sock
        self.buf = b""
        self.peer_version = None
        self.next_chan = 0
        tap.at_cleanup(self.close)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, data):
        self.s.sendall(data)

    def send_greeting(self, version="taplib_0"):
        self.send(GREETING_PREFIX + version.encode() + b"\r\n")

    def _fill(self):
        try:
            d = self.s.recv(1 << 16)
        except socket.timeout:
            raise Failure("timed out reading from the agent (have %s)" % show(self.buf))
        except ConnectionResetError:
            d = b""
        if not d:
            return False
        self.buf += d
        return True

    def read_greeting(self, skip_lines=False):
        """The peer's greeting; @skip_lines: first skip other lines, as a
        mux's preamble (real peers skip anything before the greeting)."""
        while True:
            while b"\n" not in self.buf:
                if not self._fill():
                    raise Failure("EOF before the agent's greeting (got %s)" % show(self.buf))
            line, self.buf = self.buf.split(b"\n", 1)
            if line.startswith(GREETING_PREFIX) or not skip_lines:
                break
        if not line.startswith(GREETING_PREFIX):
            raise Failure("bad greeting line %s" % show(line))
        self.peer_version = line[len(GREETING_PREFIX):].rstrip(b"\r")
        return line

    def handshake(self, version="taplib_0", skip_lines=False):
        self.send_greeting(version)
        return self.read_greeting(skip_lines)

    def send_packet(self, payload):
        self.send(u32(len(payload)) + payload)

    def recv_packet(self):
        """Next payload, or None at EOF."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if n == 0 or n > 256 * 1024:
                    raise Failure("agent sent a packet of bad length %d" % n)
                if len(self.buf) >= 4 + n:
                    p = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return p
            if not self._fill():
                if self.buf:
                    raise Failure("EOF inside a packet (have %s)" % show(self.buf))
                return None

    def recv_until_eof(self):
        """All remaining payloads until the agent closes."""
        pkts = []
        while True:
            p = self.recv_packet()
            if p is None:
                return pkts
            pkts.append(p)

    def expect_disconnect(self):
        """Read to EOF; the agent must send exactly one DISCONNECT, last.

        Returns (code, description)."""
        pkts = self.recv_until_eof()
        types = [p[0] for p in pkts]
        if MSG_DISCONNECT not in types:
            raise Failure("connection closed without DISCONNECT; packets: %s" % types)
        if types[-1] != MSG_DISCONNECT or types.count(MSG_DISCONNECT) != 1:
            raise Failure("DISCONNECT was not the single last packet: %s" % types)
        code, desc, _ = parse_disconnect(pkts[-1])
        return code, desc

    # -- a session channel, driven synchronously

    def open_session(self):
        """Open a session; returns (our id, the agent's id)."""
        ours = self.next_chan
        self.next_chan += 1
        self.send_packet(channel_open_session(ours))
        while True:
            p = self.recv_packet()
            if p is None:
                raise Failure("EOF while waiting for CHANNEL_OPEN_CONFIRMATION")
            t = p[0]
            if t in (MSG_IGNORE, MSG_DEBUG):
                continue
            r = Reader(p)
            r.u8()
            if t == MSG_CHANNEL_OPEN_CONFIRMATION:
                expect_eq(r.u32(), ours, "recipient channel in OPEN_CONFIRMATION")
                theirs = r.u32()
                return ours, theirs
            if t == MSG_CHANNEL_OPEN_FAILURE:
                r.u32()
                code = r.u32()
                raise Failure("session refused: %d %s" % (code, show(r.str())))
            if t == MSG_DISCONNECT:
                raise Failure("agent disconnected: %r" % (parse_disconnect(p),))
            raise Failure("unexpected message %d while opening a session" % t)

    def request_reply(self, theirs, rtype, data=b""):
        """Send a want-reply request; returns True on SUCCESS, False on FAILURE."""
        self.send_packet(channel_request(theirs, rtype, True, data))
        while True:
            p = self.recv_packet()
            if p is None:
                raise Failure("EOF while waiting for the reply to %s" % rtype)
            t = p[0]
            if t in (MSG_CHANNEL_SUCCESS, MSG_CHANNEL_FAILURE):
                return t == MSG_CHANNEL_SUCCESS
            if t in (MSG_IGNORE, MSG_DEBUG, MSG_CHANNEL_WINDOW_ADJUST):
                continue
            if t == MSG_DISCONNECT:
                raise Failure("agent disconnected: %r" % (parse_disconnect(p),))
            raise Failure("unexpected message %d while waiting for a reply to %s" % (t, rtype))

    def collect(self, ours):
        """Read the channel to CLOSE: (stdout, stderr, exit status or ('signal', name))."""
        out, err, status = b"", b"", None
        got_close = False
        while not got_close:
            p = self.recv_packet()
            if p is None:
                raise Failure("EOF before CHANNEL_CLOSE (stdout %s, stderr %s)"
                              % (show(out), show(err)))
            t = p[0]
            r = Reader(p)
            r.u8()
            if t in (MSG_IGNORE, MSG_DEBUG, MSG_CHANNEL_WINDOW_ADJUST):
                continue
            if t == MSG_DISCONNECT:
                raise Failure("agent disconnected: %r" % (parse_disconnect(p),))
            ch = r.u32()
            expect_eq(ch, ours, "recipient channel of message %d" % t)
            if t == MSG_CHANNEL_DATA:
                out += r.str()
            elif t == MSG_CHANNEL_EXTENDED_DATA:
                r.u32()
                err += r.str()
            elif t == MSG_CHANNEL_EOF:
                pass
            elif t == MSG_CHANNEL_REQUEST:
                name = r.str()
                r.bool()
                if name == b"exit-status":
                    status = r.u32()
                elif name == b"exit-signal":
                    status = ("signal", r.str().decode())
            elif t == MSG_CHANNEL_CLOSE:
                got_close = True
            else:
                raise Failure("unexpected message %d on the channel" % t)
        return out, err, status

    def close_channel(self, theirs):
        self.send_packet(bytes([MSG_CHANNEL_CLOSE]) + u32(theirs))

    def exec_collect(self, command, env=()):
        """Open a session, `exec` command (a shell string), read everything.

        Returns (stdout, stderr, status)."""
        ours, theirs = self.open_session()
        for k, v in env:
            self.send_packet(channel_request(theirs, "env", False, sshstr(k) + sshstr(v)))
        ok = self.request_reply(theirs, "exec", sshstr(command))
        expect(ok, "exec %r was refused" % command)
        self.send_packet(bytes([MSG_CHANNEL_EOF]) + u32(theirs))
        res = self.collect(ours)
        self.close_channel(theirs)
        return res


def wicket(*args):
    if not WICKET or not os.access(WICKET, os.X_OK):
        raise Failure("WICKET is not set to an executable (%r)" % WICKET)
    return [WICKET] + list(args)


def tcp_server(handle):
    """A TCP server on 127.0.0.1 (closed at the end) that runs handle(conn)
    for each connection in a thread of its own; its port."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    tap.at_cleanup(ls.close)

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


def echo_server():
    """A TCP echo server on 127.0.0.1 (closed at the end); its port."""
    def serve_one(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
    return tcp_server(serve_one)
