#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A simulated serial line for wicket's tests and benchmarks (standard
library only).

    agent <-> pty slave ~~ pty master <-> relay <-> Unix socket <-> wicket

The relay stands for a UART and its cable: it moves bytes between a pty
master and one client of a Unix socket at a fixed byte rate each way (a
token bucket, default 11520 B/s: 115200 baud 8N1), and `wicketd --listen
serial/PTS@BAUD` serves the pty slave, so the agent learns the line's rate
from the termios speed, as on a real port.

Like QEMU's socket chardev the socket takes one client at a time (the next
waits in the listen backlog).  A client that goes away is a host hang-up on
a real line: the agent sees nothing, bytes just stop; whatever the relay
still held for either side is lost, and what the agent sends meanwhile
drains at line rate into the void.

Buffers are UART-sized: at most 4 KiB in the relay each way.  A pty has no
transmit queue of its own (TIOCOUTQ is always 0 and the kernel takes some
20 KiB before a writer blocks), so the relay keeps the slave's output
stopped (tcflow TCOOFF, as a UART with CTS low) while its buffer from the
agent is nearly full; the agent's writes then block as they would on a
full UART.  The accepted socket gets small SO_SNDBUF/SO_RCVBUF.

As a module:

    line = SlowLine(tmpdir)          # starts the relay (a child process)
    line.target                      # "unix/TMPDIR/line.sock"
    line.stats()                     # bytes each way, clients, peaks
    line.stop()

As a script (prints `READY pts=... agent=PID` once serving):

    python3 slowline.py --socket PATH [--rate B/S] [--baud N] [--buffer BYTES]
                        [--stats FILE] [--wicketd PATH | --no-agent] [-- AGENT-ARG...]

SIGUSR1 to the script cuts the line (drops the client) like a hang-up.
"""

import argparse
import errno
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("WICKET_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("WICKET_BUILDDIR") or os.path.join(SRCDIR, "build")
WICKETD = os.environ.get("WICKETD") or os.path.join(BUILDDIR, "agent", "wicketd")

DEFAULT_RATE = 11520          # bytes/s: 115200 baud, 8N1
DEFAULT_BAUD = 115200
RELAY_CAP = 4096              # bytes the relay holds per direction (a UART's buffer)
SOCK_BUF = 4096               # SO_SNDBUF / SO_RCVBUF of the accepted client

_SPEEDS = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400,
           57600: termios.B57600, 115200: termios.B115200, 230400: termios.B230400}


class Bucket:
    """A token bucket: @rate bytes/s, at most @burst at once."""

    def __init__(self, rate, burst):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens = 0.0
        self.t = time.monotonic()

    def refill(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now

    def take(self, n):
        self.tokens -= n

    def wait_for(self, n):
        """Seconds until @n bytes may go (0 when they may now)."""
        need = min(n, self.burst) - self.tokens
        return 0.0 if need <= 0 else need / self.rate


def _nonblock(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Relay:
    """The line: one pty, one listening socket, one client at a time."""

    def __init__(self, sock_path, rate=DEFAULT_RATE, baud=DEFAULT_BAUD, stats_path=None,
                 cap=RELAY_CAP):
        self.rate = rate
        self.cap = cap                            # bytes held per direction
        self.stop_at = max(cap - 1024, cap // 2)  # stop the agent's output here
        self.master, self.slave = os.openpty()
        # Raw both ends before the agent opens the slave: no echo of early bytes.
        tty.setraw(self.master)
        tty.setraw(self.slave)
        if baud in _SPEEDS:
            t = termios.tcgetattr(self.slave)
            t[4] = t[5] = _SPEEDS[baud]
            termios.tcsetattr(self.slave, termios.TCSANOW, t)
        self.pts = os.ttyname(self.slave)
        _nonblock(self.master)
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(sock_path)
        self.ls.listen(8)
        self.ls.setblocking(False)
        self.sock_path = sock_path
        self.stats_path = stats_path
        self.client = None
        self.up = bytearray()     # host -> agent, not yet on the line
        self.down = bytearray()   # agent -> host, not yet on the line
        burst = max(64, rate // 40)  # 25 ms of line time
        self.bup, self.bdown = Bucket(rate, burst), Bucket(rate, burst)
        self.stopped = False      # the slave's output (tcflow)
        self.st = {"rate": rate, "baud": baud, "pts": self.pts, "clients": 0, "hangups": 0,
                   "up_bytes": 0, "down_bytes": 0, "down_void": 0, "lost_up": 0,
                   "lost_down": 0, "peak_up": 0, "peak_down": 0, "flow_stops": 0}
        self.last_stats = 0.0

    # -- flow control on the agent's side

    def _flow(self, stop):
        if stop == self.stopped:
            return
        try:
            termios.tcflow(self.slave, termios.TCOOFF if stop else termios.TCOON)
        except termios.error:
            return
        self.stopped = stop
        if stop:
            self.st["flow_stops"] += 1

    # -- the client

    def _accept(self):
        try:
            c, _ = self.ls.accept()
        except (BlockingIOError, InterruptedError):
            return
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
        c.setblocking(False)
        self.client = c
        self.st["clients"] += 1

    def hangup(self):
        """The host is gone: what the line held is lost; the agent sees nothing."""
        if self.client is None:
            return
        try:
            self.client.close()
        except OSError:
            pass
        self.client = None
        self.st["hangups"] += 1
        self.st["lost_up"] += len(self.up)
        self.st["lost_down"] += len(self.down)
        self.up.clear()
        self.down.clear()

    # -- the loop

    def _write_stats(self, now, force=False):
        if not self.stats_path or (not force and now - self.last_stats < 0.5):
            return
        self.last_stats = now
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.st, f)
        os.replace(tmp, self.stats_path)

    def step(self, max_wait=0.5):
        now = time.monotonic()
        self.bup.refill(now)
        self.bdown.refill(now)
        # Agent -> host: onto the line as the bucket allows.
        if self.down and self.bdown.tokens >= 1:
            n = min(len(self.down), int(self.bdown.tokens))
            if self.client is None:
                self.st["down_void"] += n
                del self.down[:n]
                self.bdown.take(n)
            else:
                try:
                    w = self.client.send(self.down[:n])
                except (BlockingIOError, InterruptedError):
                    w = 0
                except OSError:
                    self.hangup()
                    w = 0
                if w:
                    del self.down[:w]
                    self.bdown.take(w)
                    self.st["down_bytes"] += w
        # Host -> agent.
        if self.up and self.bup.tokens >= 1:
            n = min(len(self.up), int(self.bup.tokens))
            try:
                w = os.write(self.master, self.up[:n])
            except (BlockingIOError, InterruptedError):
                w = 0
            if w:
                del self.up[:w]
                self.bup.take(w)
                self.st["up_bytes"] += w
        self._flow(len(self.down) >= self.stop_at)

        rd, wr = [], []
        if self.client is None:
            rd.append(self.ls)
        elif len(self.up) < self.cap:
            rd.append(self.client)
        if len(self.down) < self.cap:
            rd.append(self.master)
        timeout = max_wait
        if self.down:
            t = self.bdown.wait_for(min(len(self.down), 64))
            if t == 0 and self.client is not None:
                wr.append(self.client)  # blocked on the socket: wait for room
            else:
                timeout = min(timeout, max(t, 0.001))  # (no client: into the void)
        if self.up:
            t = self.bup.wait_for(min(len(self.up), 64))
            if t == 0:
                wr.append(self.master)
            else:
                timeout = min(timeout, max(t, 0.001))
        try:
            r, w, _ = select.select(rd, wr, [], timeout)
        except InterruptedError:
            return
        if self.ls in r:
            self._accept()
        if self.client is not None and self.client in r:
            try:
                d = self.client.recv(self.cap - len(self.up))
            except (BlockingIOError, InterruptedError):
                d = None
            except OSError:
                d = b""
            if d == b"":
                self.hangup()
            elif d:
                self.up += d
                self.st["peak_up"] = max(self.st["peak_up"], len(self.up))
        if self.master in r:
            try:
                d = os.read(self.master, self.cap - len(self.down))
            except (BlockingIOError, InterruptedError):
                d = b""
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: no slave opener (we hold one)
                    raise
                d = b""
            if d:
                self.down += d
                self.st["peak_down"] = max(self.st["peak_down"], len(self.down))
                self._flow(len(self.down) >= self.stop_at)
        self._write_stats(time.monotonic())

    def close(self):
        self._write_stats(time.monotonic(), force=True)
        self.hangup()
        self.ls.close()
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass


def _wait_agent_ready(proc, slave, baud, timeout=10):
    """The agent has opened the slave and set its speed (raw, @baud)."""
    deadline = time.monotonic() + timeout
    want = _SPEEDS.get(baud)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("wicketd exited with status %s at start-up" % proc.returncode)
        opened = False
        try:
            for fd in os.listdir("/proc/%d/fd" % proc.pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) == os.ttyname(slave):
                        opened = True
                except OSError:
                    pass
        except OSError:
            pass
        if opened and (want is None or termios.tcgetattr(slave)[5] == want):
            return
        time.sleep(0.02)
    raise RuntimeError("wicketd did not open %s within %d s" % (os.ttyname(slave), timeout))


def main(argv):
    p = argparse.ArgumentParser(description="A simulated serial line with wicketd behind it.")
    p.add_argument("--socket", required=True, help="Unix socket to serve the line on")
    p.add_argument("--rate", type=int, default=DEFAULT_RATE,
                   help="bytes/s each way (default %d)" % DEFAULT_RATE)
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help="termios speed the agent is told (default %d)" % DEFAULT_BAUD)
    p.add_argument("--wicketd", default=WICKETD, help="agent binary (default $WICKETD)")
    p.add_argument("--no-agent", action="store_true",
                   help="start no agent (print the pty slave and serve the line)")
    p.add_argument("--buffer", type=int, default=RELAY_CAP,
                   help="bytes the relay holds each way (default %d, a UART's buffer)"
                   % RELAY_CAP)
    p.add_argument("--stats", default=None, help="write counters (JSON) here")
    p.add_argument("agent_args", nargs="*", help="more wicketd options (after --)")
    a = p.parse_args(argv)

    def on_signal(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # SIGUSR1: cut the line (drop the client), as a host hang-up.
    cut = []
    signal.signal(signal.SIGUSR1, lambda s, f: cut.append(1))

    relay = Relay(a.socket, a.rate, a.baud, a.stats, a.buffer)
    agent = None
    try:
        if not a.no_agent:
            addr = "serial/%s@%d" % (relay.pts, a.baud)
            agent = subprocess.Popen([a.wicketd, "--listen", addr] + a.agent_args,
                                     stdin=subprocess.DEVNULL)
            _wait_agent_ready(agent, relay.slave, a.baud)
        print("READY pts=%s agent=%s" % (relay.pts, agent.pid if agent else 0), flush=True)
        while True:
            if cut:
                cut.clear()
                relay.hangup()
            if agent is not None and agent.poll() is not None:
                print("slowline: wicketd exited with status %s" % agent.returncode,
                      file=sys.stderr, flush=True)
                return 1
            relay.step()
    finally:
        relay.close()
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


# ---------------------------------------------------------------- test data


def real_text(size):
    """@size bytes of real English text: Debian changelogs
    (/usr/share/doc/*/changelog.Debian.gz) decompressed and joined in name
    order; None when the machine has fewer than @size bytes of them."""
    import glob
    import gzip
    out = []
    n = 0
    for f in sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz")):
        try:
            with gzip.open(f) as g:
                d = g.read()
        except (OSError, EOFError):
            continue
        out.append(d)
        n += len(d)
        if n >= size:
            return b"".join(out)[:size]
    return None


# ---------------------------------------------------------------- module use


class SlowLine:
    """The script above run as a child: a line at @rate with an agent behind it.

    tmpdir/NAME.sock is the line (target unix/...), tmpdir/NAME.log the
    relay's and the agent's stderr, tmpdir/NAME.stats its counters."""

    def __init__(self, tmpdir, name="line", rate=DEFAULT_RATE, baud=DEFAULT_BAUD,
                 agent_args=(), wicketd=None, timeout=15, buffer=RELAY_CAP):
        self.path = os.path.join(tmpdir, name + ".sock")
        self.target = "unix/" + self.path
        self.log = os.path.join(tmpdir, name + ".log")
        self.stats_path = os.path.join(tmpdir, name + ".stats")
        self.rate = rate
        argv = [sys.executable, os.path.abspath(__file__), "--socket", self.path,
                "--rate", str(rate), "--baud", str(baud), "--wicketd", wicketd or WICKETD,
                "--buffer", str(buffer), "--stats", self.stats_path, "--"] + list(agent_args)
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=logf, start_new_session=True)
        finally:
            logf.close()
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.stop()
                raise RuntimeError("the simulated line did not come up in %d s:\n%s"
                                   % (timeout, self.log_text()))
            d = os.read(self.proc.stdout.fileno(), 256)
            if not d:
                self.stop()
                raise RuntimeError("the simulated line exited at start-up:\n%s"
                                   % self.log_text())
            line += d
        f = dict(kv.split("=", 1) for kv in line.decode().split()[1:])
        self.pts, self.agent_pid = f["pts"], int(f["agent"])

    def alive(self):
        return self.proc.poll() is None

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def cut(self):
        """Hang up on the current client (its bytes in the line are lost)."""
        os.kill(self.proc.pid, signal.SIGUSR1)

    def log_text(self, limit=3000):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the agent's sessions too
        except OSError:
            pass
        self.proc.wait()
        self.proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
