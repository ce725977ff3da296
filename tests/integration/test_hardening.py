#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicketd's privilege separation and limits, checked from /proc.

- The protocol worker (the process that parses the stream) really is
  sandboxed: Seccomp 2, NoNewPrivs 1, no capabilities, tight rlimits, no
  file open but its log; a forbidden syscall kills it (test-only trigger).
- Its monitor does the privileged work: sessions are its children, each in
  its own session (no TIOCSTI into the agent's terminal), --user switches
  them (and forwarding to Unix sockets) to another user.
- Faults: kill -9 of the client, the worker, the monitor, or the whole
  agent mid-transfer leaves no process, zombie, pty or fd behind.
- Handshake timeout (sockets; ports only after the host's first byte) and
  back-pressure (a peer that stops reading never grows the worker).
"""

import fcntl
import os
import pty
import pwd
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# These checks are about the agent's own connections: each wicket command
# opens its own (no mux; test_mux.py covers sharing).
os.environ["WICKET_SHARE"] = "no"
from taplib import (DISC_PROTOCOL_ERROR, MSG_CHANNEL_DATA,  # noqa: E402
                    MSG_CHANNEL_OPEN, MSG_CHANNEL_OPEN_CONFIRMATION, MSG_CHANNEL_OPEN_FAILURE,
                    MSG_CHANNEL_WINDOW_ADJUST, MSG_DISCONNECT, WICKETD, Failure, RawConn,
                    Reader, Skip, channel_data, expect, expect_eq, parse_disconnect, run, show,
                    socket_accepts, spawn, sshstr, tap, u32, wait_until, wicket)
import proclib  # noqa: E402

S = {}


class Agent:
    """wicketd --listen unix/DIR/NAME with its own environment and options."""

    def __init__(self, name, extra=(), env=None):
        tmp = S["tmp"]
        self.path = os.path.join(tmp, name)
        self.target = "unix/" + self.path
        self.log = self.path + ".log"
        self.logf = open(self.log, "ab")
        tap.at_cleanup(self.logf.close)
        e = dict(os.environ)
        for k in ("WICKETD_TESTING", "WICKETD_TEST_FORBIDDEN_SYSCALL", "WICKET_SECCOMP_DEBUG"):
            e.pop(k, None)
        e.update(env or {})
        self.argv = [WICKETD, "--listen", self.target] + list(extra)
        self.env = e
        self.start()

    def start(self):
        self.proc = spawn(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
                          env=self.env)
        self.pid = self.proc.pid

        def ready():
            if self.proc.poll() is not None:
                raise Failure("wicketd exited with %s at start-up:\n%s"
                              % (self.proc.returncode, self.log_text()))
            return os.path.exists(self.path) and socket_accepts(self.path)
        wait_until(ready, timeout=10, what="wicketd to accept on " + self.path)
        # socket_accepts() connected once: let that connection's processes go.
        # "No children" alone can be seen between accept() and fork() (slow
        # under ASan), while the listener still holds the accepted fd, so the
        # idle fd count must also hold still for a while.
        seen = []

        def settled():
            if proclib.descendants(self.pid):
                seen.clear()
                return False
            seen.append(proclib.fd_count(self.pid))
            return len(seen) >= 10 and len(set(seen[-10:])) == 1
        wait_until(settled, timeout=15, interval=0.05, what="the probe connection to end")
        self.idle_fds = seen[-1]

    def alive(self):
        return self.proc.poll() is None

    def log_text(self, limit=4000):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def exec_ok(self, *argv):
        r = run(wicket("exec", self.target, "--") + list(argv), timeout=30)
        expect(r.rc == 0, "wicket exec %s failed:\n%s\nagent log:\n%s"
               % (argv, r.describe(), self.log_text()))
        return r.out

    def connect(self):
        """A RawConn after the handshake, and its protocol worker's pid."""
        before = proclib.workers(self.pid)
        c = RawConn(self.path)
        c.handshake()
        return c, proclib.new_worker(self.pid, before)


def setup():
    S["seccomp"] = proclib.seccomp_enforced(WICKETD)
    S["asan"] = proclib.sanitized(WICKETD)
    S["mem"] = 8 if S["asan"] else 1  # ASan's shadow memory and quarantine
    S["tmp"] = tap.tmpdir("wicket-hard-")
    os.chmod(S["tmp"], 0o755)
    S["agent"] = Agent("agent.sock")


def marker():
    S["n"] = S.get("n", 0) + 1
    return "wicket-hard-%d-%d" % (os.getpid(), S["n"])


# ---------------------------------------------------------------- profiles


@tap.check("--print-syscalls: the allowed syscall count of each profile")
def _():
    r = run([WICKETD, "--print-syscalls"], timeout=10)
    expect(r.rc == 0, r.describe())
    counts = dict((m.group(1), int(m.group(2)))
                  for m in re.finditer(rb"^(\S.*?): (\d+) syscalls", r.out, re.M))
    for k, v in counts.items():
        print("# %s: %d syscalls" % (k.decode(), v))
    w = counts.get(b"wicketd protocol worker")
    s = counts.get(b"wicket-sftp-server")
    expect(w and s, "both profiles printed:\n" + r.describe())
    expect(w <= 40, "the worker's allowlist grew to %d syscalls" % w)
    for bad in (b"execve", b"open\n", b"openat", b"fork", b"clone", b"ptrace", b"kill"):
        expect(bad not in r.out.split(b"wicket-sftp-server")[0],
               "the worker profile allows %s" % bad)
    sftp = r.out.split(b"wicket-sftp-server")[1]
    for bad in (b"execve", b"ptrace", b"clone", b"fork", b"kill", b"connect", b"mount"):
        expect(b"\n  " + bad + b"\n" not in sftp, "the sftp profile allows %s" % bad)


# ---------------------------------------------------------------- the worker


@tap.check("the protocol worker: Seccomp 2, NoNewPrivs 1, no capabilities, tight rlimits")
def _():
    a = S["agent"]
    c, w = a.connect()
    st = proclib.status(w)
    if S["seccomp"]:
        expect_eq(st.get("Seccomp"), "2", "Seccomp mode of the worker %d" % w)
    else:
        print("# built without libseccomp: no filter to check (Seccomp %s)" % st.get("Seccomp"))
    expect_eq(st.get("NoNewPrivs"), "1", "NoNewPrivs of the worker")
    expect(int(st.get("CapEff", "1"), 16) & ~(1 << 10) == 0,
           "worker capabilities: CapEff %s" % st.get("CapEff"))
    expect(int(st.get("CapBnd", "1"), 16) & ~(1 << 10) == 0,
           "worker bounding set: CapBnd %s" % st.get("CapBnd"))
    lim = proclib.limits(w)
    if not S["asan"]:  # LeakSanitizer needs to clone at exit
        expect_eq(lim.get("Max processes"), ("0", "0"), "RLIMIT_NPROC")
    expect_eq(lim.get("Max core file size"), ("0", "0"), "RLIMIT_CORE")
    nofile = lim.get("Max open files")
    expect(nofile and nofile[0] == nofile[1] and int(nofile[0]) <= 8192,
           "RLIMIT_NOFILE %s" % (nofile,))
    # The monitor (its parent) keeps the privileges and is not filtered.
    mon = int(st["PPid"])
    expect_eq(proclib.status(mon).get("Seccomp"), "0", "Seccomp mode of the monitor")
    expect_eq(proclib.comm(mon), "wicketd", "the worker's parent is the monitor")
    expect_eq(int(proclib.status(mon)["PPid"]), a.pid, "the monitor's parent (the listener)")
    # Files: nothing but sockets, pipes, /dev/null and its log (stderr).
    for fd, t in proclib.fd_targets(w).items():
        ok = (t.startswith("socket:") or t.startswith("pipe:") or t == "/dev/null"
              or (fd == 2 and t == a.log))
        expect(ok, "worker fd %d is %s" % (fd, t))
    out, err, status = c.exec_collect("echo sandboxed")
    expect_eq((out, status), (b"sandboxed\n", 0), "a session through the sandboxed worker")
    # Sessions are the monitor's children, not the worker's.
    c.close()


@tap.check("a forbidden syscall kills the worker (SIGSYS); the listener and others go on")
def _():
    if not S["seccomp"]:
        raise Skip("wicketd was built without libseccomp")
    b = Agent("forbidden.sock", env={"WICKETD_TESTING": "1", "WICKETD_TEST_FORBIDDEN_SYSCALL": "1"})
    c = RawConn(b.path)
    c.handshake()
    pkts = c.recv_until_eof()
    expect(MSG_DISCONNECT not in [p[0] for p in pkts],
           "the worker survived its forbidden syscall (got %s)" % [p[0] for p in pkts])
    wait_until(lambda: "killed by signal %d" % signal.SIGSYS in b.log_text(), timeout=10,
               what="the monitor to report SIGSYS")
    expect("seccomp" in b.log_text(), "the log does not say why:\n" + b.log_text())
    expect(b.alive(), "the listener died")
    proclib.no_leftovers(b.pid, b.idle_fds)
    # Another agent on the same machine is unaffected; so is ours, for the next peer.
    expect_eq(S["agent"].exec_ok("echo", "fine"), b"fine\n", "the other agent")
    expect(socket_accepts(b.path), "the listener no longer accepts")


@tap.check("the test trigger needs WICKETD_TESTING=1 as well")
def _():
    b = Agent("trigger-only.sock", env={"WICKETD_TEST_FORBIDDEN_SYSCALL": "1"})
    expect_eq(b.exec_ok("echo", "ignored"), b"ignored\n", "exec with the lone trigger variable")


@tap.check("--no-sandbox: the worker runs unfiltered (and the trigger shows it)")
def _():
    b = Agent("nosandbox.sock", extra=["--no-sandbox", "-v"],
              env={"WICKETD_TESTING": "1", "WICKETD_TEST_FORBIDDEN_SYSCALL": "1"})
    c, w = b.connect()
    st = proclib.status(w)
    expect_eq((st.get("Seccomp"), st.get("NoNewPrivs")), ("0", "0"), "worker under --no-sandbox")
    out, err, status = c.exec_collect("echo unconfined")
    expect_eq((out, status), (b"unconfined\n", 0), "session")
    expect("no seccomp filter in place" in b.log_text(), "log:\n" + b.log_text())


# ---------------------------------------------------------------- session policy


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@tap.check("--user nobody: sessions and the worker run as nobody, HOME/SHELL from passwd, "
           "the pty belongs to nobody")
def _():
    if os.geteuid() != 0:
        raise_skip("needs root")
    pw = nobody()
    if not pw:
        raise_skip("no user 'nobody'")
    b = Agent("user.sock", extra=["--user", "nobody"])
    S["user_agent"] = b
    out = b.exec_ok("sh", "-c", 'id -un; id -u; echo "$HOME"; echo "$SHELL"; echo "$USER"')
    expect_eq(out.decode().split("\n")[:5],
              ["nobody", str(pw.pw_uid), pw.pw_dir, pw.pw_shell, "nobody"], "id and environment")
    c, w = b.connect()
    st = proclib.status(w)
    expect(st.get("Uid", "").split()[0] == str(pw.pw_uid), "worker Uid line %s" % st.get("Uid"))
    c.close()
    r = run(wicket("exec", "-t", b.target, "--", "sh", "-c", 'stat -c %U "$(tty)"'), timeout=30)
    expect_eq((r.rc, r.out.strip()), (0, b"nobody"), "pty owner\n" + r.describe())


def raise_skip(why):
    raise Skip(why)


def open_streamlocal(c, path):
    """CHANNEL_OPEN direct-streamlocal@openssh.com; returns (type, reply reader)."""
    c.send_packet(bytes([MSG_CHANNEL_OPEN]) + sshstr("direct-streamlocal@openssh.com") + u32(7)
                  + u32(65536) + u32(32768) + sshstr(path) + sshstr("") + u32(0))
    while True:
        p = c.recv_packet()
        expect(p is not None, "EOF instead of an answer to the channel open")
        if p[0] in (MSG_CHANNEL_OPEN_CONFIRMATION, MSG_CHANNEL_OPEN_FAILURE):
            return p


@tap.check("--user: Unix-socket forwarding is done with the session user's permissions")
def _():
    b = S.get("user_agent")
    if not b:
        raise_skip("needs the --user agent of the previous check")
    d = os.path.join(S["tmp"], "private")
    os.mkdir(d, 0o700)
    path = os.path.join(d, "svc.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    tap.at_cleanup(srv.close)
    c, _ = b.connect()
    p = open_streamlocal(c, path)
    expect_eq(p[0], MSG_CHANNEL_OPEN_FAILURE, "open of a root-only socket as nobody")
    expect(b"ermission denied" in p, "reason: %s" % show(p))
    # The same agent as root reaches it.
    c2, _ = S["agent"].connect()
    p = open_streamlocal(c2, path)
    expect_eq(p[0], MSG_CHANNEL_OPEN_CONFIRMATION, "open of the socket as root: %s" % show(p))
    c.close()
    c2.close()


@tap.check("each session runs in its own session: no controlling tty but its own pty")
def _():
    a = S["agent"]
    # field 6 of /proc/self/stat is the session id, 7 the tty (0: none).
    prog = "read -r l < /proc/$$/stat; set -- ${l##*) }; echo $$ $4 $5"
    out = a.exec_ok("sh", "-c", prog).split()
    expect_eq(out[0], out[1], "a pipe session's shell is its session's leader")
    expect_eq(out[2], b"0", "a pipe session has no controlling tty")
    r = run(wicket("exec", "-t", a.target, "--", "sh", "-c", prog + "; tty"), timeout=30)
    f = r.out.split()
    expect(r.rc == 0 and f[0] == f[1] and f[2] != b"0", "pty session: %s" % r.describe())


TIOCSTI_PROG = r"""
import fcntl, os, sys, termios
res = []
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"X")
        res.append("fd%d:injected" % fd)
    except OSError as e:
        res.append("fd%d:%s" % (fd, e.errno))
try:
    t = os.open("/dev/tty", os.O_RDWR)
    fcntl.ioctl(t, termios.TIOCSTI, b"X")
    res.append("tty:injected")
except OSError as e:
    res.append("tty:%s" % e.errno)
print(" ".join(res))
"""


@tap.check("TIOCSTI: a session cannot inject into the terminal wicketd runs on")
def _():
    master, slave = pty.openpty()
    tap.at_cleanup(lambda: [os.close(f) for f in (master, slave)])
    tty = termios.tcgetattr(slave)
    tty[3] &= ~(termios.ICANON | termios.ECHO)
    termios.tcsetattr(slave, termios.TCSANOW, tty)
    path = os.path.join(S["tmp"], "ctty.sock")
    log = open(path + ".log", "ab")
    tap.at_cleanup(log.close)

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = spawn([WICKETD, "--listen", "unix/" + path], stdin=slave, stdout=log, stderr=log,
              preexec_fn=ctty)
    wait_until(lambda: os.path.exists(path) and socket_accepts(path), timeout=10,
               what="the agent on a terminal")
    tpgid = os.tcgetpgrp(master)
    expect_eq(os.getsid(p.pid), p.pid, "the agent leads the terminal's session")
    r = run(wicket("exec", "unix/" + path, "--", "python3", "-c", TIOCSTI_PROG), timeout=30)
    expect(r.rc == 0, r.describe())
    expect(b"injected" not in r.out, "TIOCSTI worked: %s" % r.out)
    r2 = run(wicket("exec", "-t", "unix/" + path, "--", "python3", "-c", TIOCSTI_PROG), timeout=30)
    expect(r2.rc == 0, r2.describe())
    # With a pty, TIOCSTI can only reach the session's own terminal.
    time.sleep(0.2)
    fl = fcntl.fcntl(slave, fcntl.F_GETFL)
    fcntl.fcntl(slave, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    try:
        got = os.read(slave, 4096)
    except BlockingIOError:
        got = b""
    expect_eq(got, b"", "input that appeared on the agent's terminal")
    expect_eq(os.tcgetpgrp(master), tpgid, "the terminal's foreground group")
    print("# pipes: %s; pty: %s" % (r.out.decode().strip(), r2.out.decode().strip()))


# ---------------------------------------------------------------- faults


def start_transfer(a, tty=False):
    """A session streaming output; returns (client process, marker, pts path or None)."""
    m = marker()
    ttyfile = os.path.join(S["tmp"], m + ".tty")
    script = "tty > %s; exec 2>/dev/null; while :; do cat /dev/zero; done" % ttyfile
    argv = wicket("exec") + (["-t"] if tty else []) + [a.target, "--", "sh", "-c", script, m]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and p.kill())
    got = 0
    deadline = time.monotonic() + 15
    while got < 1 << 20:
        expect(time.monotonic() < deadline, "the transfer did not start")
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            d = os.read(p.stdout.fileno(), 1 << 16)
            expect(d, "EOF before the transfer got going")
            got += len(d)
    pts = None
    if tty:
        pts = open(ttyfile).read().strip()
        expect(pts.startswith("/dev/pts/"), "tty printed %r" % pts)
    expect(proclib.pids_with_marker(m), "no process with the marker")
    return p, m, pts


def drain(p):
    """Keep reading the client's stdout in the background until it ends."""
    import threading

    def loop():
        try:
            while os.read(p.stdout.fileno(), 1 << 16):
                pass
        except OSError:
            pass
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def expect_clean(a, m, pts):
    proclib.wait_dead(proclib.pids_with_marker(m), timeout=10,
                      what="the session's processes (%s) to end" % m)
    if pts:
        wait_until(lambda: not proclib.holders(pts), timeout=10,
                   what="nobody to hold %s" % pts)
    proclib.no_leftovers(a.pid, a.idle_fds)


def fault_check(victim, tty):
    a = S["agent"]
    before = proclib.workers(a.pid)
    p, m, pts = start_transfer(a, tty)
    w = proclib.new_worker(a.pid, before)
    mon = int(proclib.status(w)["PPid"])
    drain(p)
    target = {"client": p.pid, "worker": w, "monitor": mon}[victim]
    os.kill(target, signal.SIGKILL)
    t0 = time.monotonic()
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise Failure("the client did not end within 15 s of the kill")
    if victim != "client":
        expect_eq(p.returncode, 255, "client exit status after the agent side was killed")
    expect_clean(a, m, pts)
    print("# clean %.1f s after kill -9 of the %s" % (time.monotonic() - t0, victim))
    expect_eq(a.exec_ok("echo", "next"), b"next\n", "the listener serves the next connection")


for _victim in ("client", "worker", "monitor"):
    for _tty in (False, True):
        def _make(victim=_victim, tty=_tty):
            @tap.check("kill -9 of the %s mid-transfer (%s): no process, zombie, pty or fd left"
                       % (victim, "pty" if tty else "pipes"))
            def _():
                fault_check(victim, tty)
        _make()


@tap.check("agent restarted mid-transfer (kill -9 of every wicketd process): nothing left, "
           "the new agent serves")
def _():
    b = Agent("restart.sock")
    p1, m1, _ = start_transfer(b)
    p2, m2, pts = start_transfer(b, tty=True)
    drain(p1)
    drain(p2)
    pids = [b.pid] + list(proclib.descendants(b.pid))
    wicketd_pids = [x for x in pids if proclib.comm(x).startswith("wicketd")]
    os.killpg(b.pid, signal.SIGKILL)
    for x in wicketd_pids:
        try:
            os.kill(x, signal.SIGKILL)
        except ProcessLookupError:
            pass
    b.proc.wait(timeout=10)
    for p in (p1, p2):
        p.wait(timeout=15)
        expect_eq(p.returncode, 255, "client exit status")
    proclib.wait_dead(proclib.pids_with_marker(m1) + proclib.pids_with_marker(m2), timeout=10,
                      what="the sessions of the killed agent to end")
    wait_until(lambda: not proclib.holders(pts), timeout=10, what="nobody to hold " + pts)
    proclib.wait_dead(wicketd_pids, timeout=10, what="every old wicketd process to end")
    b.start()
    expect_eq(b.exec_ok("echo", "restarted"), b"restarted\n", "exec on the restarted agent")
    p3, m3, _ = start_transfer(b)
    p3.kill()
    p3.wait()
    expect_clean(b, m3, None)


# ---------------------------------------------------------------- limits


@tap.check("--handshake-timeout: no greeting within N s -> DISCONNECT with the reason")
def _():
    r = run([WICKETD, "--help"], timeout=10)
    expect(b"--handshake-timeout" in r.out and b"default 30" in r.out, "--help:\n" + r.describe())
    b = Agent("hs.sock", extra=["--handshake-timeout", "1"])
    c = RawConn(b.path)
    t0 = time.monotonic()
    c.read_greeting()
    # Bytes that are not a greeting do not stop the clock.
    c.send(b"SSH-2.0-OpenSSH\r\n")
    code, desc = c.expect_disconnect()
    dt = time.monotonic() - t0
    expect_eq(code, DISC_PROTOCOL_ERROR, "reason code")
    expect(b"greeting" in desc and b"1 second" in desc, "reason %s" % show(desc))
    expect(0.8 < dt < 5, "disconnected after %.1f s" % dt)
    # A peer that greets in time is not affected, however long it then idles.
    c2 = RawConn(b.path)
    time.sleep(0.5)
    c2.handshake()
    time.sleep(1.5)
    out, err, status = c2.exec_collect("echo in-time")
    expect_eq((out, status), (b"in-time\n", 0), "session after a timely greeting")
    c2.close()
    proclib.no_leftovers(b.pid, b.idle_fds)


class PtyStream:
    """The socket calls RawConn needs, on a pty master (the host's end of a serial line)."""

    def __init__(self, fd):
        self.fd = fd
        self.timeout = 15

    def settimeout(self, t):
        self.timeout = t

    def sendall(self, data):
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def recv(self, n):
        r, _, _ = select.select([self.fd], [], [], self.timeout)
        if not r:
            raise socket.timeout()
        try:
            return os.read(self.fd, n)
        except OSError:
            return b""

    def close(self):
        pass


@tap.check("--handshake-timeout on a serial port: the clock starts with the host's first byte")
def _():
    master, slave = pty.openpty()
    tap.at_cleanup(lambda: os.close(master))
    name = os.ttyname(slave)
    os.close(slave)
    log = os.path.join(S["tmp"], "serial.log")
    logf = open(log, "ab")
    tap.at_cleanup(logf.close)
    p = spawn([WICKETD, "--listen", "serial/" + name, "--handshake-timeout", "1", "-v"],
              stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)

    def text():
        return open(log, "rb").read().decode("utf-8", "replace")
    wait_until(lambda: "listening" in text() or p.poll() is not None, timeout=10,
               what="the serial agent to start")
    expect(p.poll() is None, "wicketd on %s exited:\n%s" % (name, text()))
    time.sleep(2.5)
    expect("no greeting" not in text(), "the clock ran before any byte:\n" + text())
    os.write(master, b"garbage, no greeting")
    wait_until(lambda: "no greeting within 1 s" in text(), timeout=10,
               what="the port session to time out after the first byte")
    c = RawConn(sock=PtyStream(master))
    c.handshake()
    out, err, status = c.exec_collect("echo serial-ok")
    expect_eq((out, status), (b"serial-ok\n", 0), "session on the port after the timeout")


@tap.check("a peer that stops reading: the worker's memory stays bounded, the child is held back")
def _():
    a = S["agent"]
    c, w = a.connect()
    c.send_packet(bytes([MSG_CHANNEL_OPEN]) + sshstr("session") + u32(0) + u32(0xFFFFFFFF)
                  + u32(32768))
    p = c.recv_packet()
    expect_eq(p[0], MSG_CHANNEL_OPEN_CONFIRMATION, "open")
    theirs = Reader(p[5:]).u32()
    m = marker()
    c.send_packet(bytes([98]) + u32(theirs) + sshstr("exec") + b"\x00"
                  + sshstr("exec cat /dev/zero # " + m))
    time.sleep(3)  # we read nothing: the agent fills the socket, then must stop
    rss1 = proclib.vm_rss_kib(w)
    cat = [x for x in proclib.pids_with_marker("/dev/zero") if x in proclib.descendants(a.pid)]
    time.sleep(2)
    rss2 = proclib.vm_rss_kib(w)
    print("# worker RSS %d KiB, then %d KiB; peak %d KiB" % (rss1, rss2, proclib.vm_hwm_kib(w)))
    expect(rss2 < 32 * 1024 * S["mem"], "worker RSS %d KiB with a peer that does not read" % rss2)
    expect(rss2 - rss1 < 1024 * S["mem"], "worker RSS still growing: %d -> %d KiB" % (rss1, rss2))
    for x in cat:
        st = proclib.status(x).get("State", "")
        expect(st.startswith("S"), "cat is not blocked on its full pipe: %s" % st)
    c.close()
    proclib.no_leftovers(a.pid, a.idle_fds)


@tap.check("a child that does not read stdin: the peer may fill the window, not one byte more")
def _():
    a = S["agent"]
    c, w = a.connect()
    ours, theirs = c.open_session()
    expect(c.request_reply(theirs, "exec", sshstr("exec sleep 100")), "exec refused")
    # The window we were given, from the OPEN_CONFIRMATION (open_session does
    # not keep it): the agent's default is 4 MiB.
    window = 4 * 1024 * 1024
    chunk = b"w" * 32768
    for _ in range(window // len(chunk)):
        c.send_packet(channel_data(theirs, chunk))
    time.sleep(1)
    rss = proclib.vm_rss_kib(w)
    print("# worker RSS %d KiB holding a full 4 MiB window" % rss)
    expect(rss < 32 * 1024 * S["mem"], "worker RSS %d KiB" % rss)
    c.send_packet(channel_data(theirs, b"!"))
    while True:
        p = c.recv_packet()
        expect(p is not None, "EOF without DISCONNECT")
        if p[0] == MSG_DISCONNECT:
            code, desc, _ = parse_disconnect(p)
            expect(b"window" in desc, "reason %s" % show(desc))
            break
        expect(p[0] in (MSG_CHANNEL_WINDOW_ADJUST, MSG_CHANNEL_DATA, 99),
               "unexpected message %d" % p[0])
    proclib.no_leftovers(a.pid, a.idle_fds)


@tap.check("listener alive after everything, nothing left below it")
def _():
    a = S["agent"]
    expect(a.alive(), "listener died:\n" + a.log_text())
    expect_eq(a.exec_ok("echo", "alive"), b"alive\n", "exec")
    proclib.no_leftovers(a.pid, a.idle_fds)
    # Workers killed on purpose above died of SIGKILL; none of SIGSYS.
    expect("killed by signal %d " % signal.SIGSYS not in a.log_text(1000000),
           "a worker of the main agent hit its seccomp filter:\n" + a.log_text())


if __name__ == "__main__":
    tap.main(setup)
