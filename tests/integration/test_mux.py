#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The host-side mux (host-tool/mux/) against a real wicketd on a Unix
socket, with real clients: wicket exec/shell/cp/forward/proxy --ssh/serve,
plink and psftp on the mux socket, OpenSSH ssh, and raw clients that
misbehave.  Every command for one target shares one agent connection."""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (GREETING_PREFIX, tcp_server, MSG_CHANNEL_CLOSE, MSG_CHANNEL_DATA, MSG_CHANNEL_OPEN_CONFIRMATION,  # noqa: E402
                    MSG_DISCONNECT, MUX_RUNTIME, Agent, Failure, RawConn, Skip,
                    channel_open_session, channel_request, expect, expect_eq, mux_pids,
                    parse_disconnect, pids_with_argv, run, show, spawn, sshstr, tap, u32,
                    wait_until, wicket)

S = {}


def setup():
    S["tmp"] = tap.tmpdir("wicket-mux-it-")
    S["agent"] = Agent(S["tmp"])


def T():
    return S["agent"].target


def muxes_for(path):
    """Mux processes serving the agent at @path."""
    out = []
    for pid in mux_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if len(argv) > 2 and argv[2] == b"unix/" + path.encode():
            out.append(pid)
    return out


def children(pid):
    """Pids whose parent is @pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except OSError:
                pass
    return out


def fresh_agent(name):
    """An agent of its own, so a check starts without a mux."""
    return Agent(S["tmp"], name=name)


def sock_of(target):
    r = run(wicket("mux", "status", target))
    expect_eq(r.rc, 0, "mux status\n" + r.describe())
    m = re.search(rb"^socket: (.+)$", r.out, re.M)
    return m.group(1).decode()


def ok(r, what, out=None):
    expect_eq(r.rc, 0, what + "\n" + r.describe())
    if out is not None:
        expect_eq(r.out, out, what + ": stdout")


# ---------------------------------------------------------------- basics


@tap.check("the first command starts a mux, later ones attach: one agent connection; "
           "status shows socket, clients, channels, bytes, uptime")
def _():
    a = fresh_agent("basic.sock")
    r = run(wicket("mux", "status", a.target))
    expect_eq(r.rc, 1, "status before any command\n" + r.describe())
    ok(run(wicket("exec", a.target, "--", "echo", "one")), "first exec", b"one\n")
    expect_eq(len(muxes_for(a.path)), 1, "one mux after the first command")
    held = spawn(wicket("exec", a.target, "--", "sleep", "30"), stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    for i in range(3):
        ok(run(wicket("exec", a.target, "--", "echo", str(i))), "exec %d" % i,
           b"%d\n" % i)
    r = run(wicket("mux", "status", a.target))
    expect_eq(r.rc, 0, "status\n" + r.describe())
    for field in (b"socket: " + MUX_RUNTIME.encode(), b"clients: 2", b"channels: 1",
                  b"bytes: ", b"uptime: ", b"agent: wicketd_"):
        expect(field in r.out, "status lacks %r:\n%s" % (field, r.out.decode()))
    # One connection at the agent: its listener has one session monitor.
    expect_eq(len(children(a.proc.pid)), 1, "agent connections (session monitors)")
    held.kill()
    d = os.path.dirname(sock_of(a.target))
    expect_eq(os.stat(d).st_mode & 0o777, 0o700, "mux directory mode")


@tap.check("--share no opens the stream directly (no mux); --share only fails without "
           "one (255) and attaches to one")
def _():
    a = fresh_agent("share.sock")
    ok(run(wicket("--share", "no", "exec", a.target, "--", "echo", "direct")), "--share no",
       b"direct\n")
    expect_eq(muxes_for(a.path), [], "a mux after --share no")
    r = run(wicket("--share", "only", "exec", a.target, "--", "true"))
    expect(r.rc == 255 and b"no mux runs" in r.err, "--share only, none\n" + r.describe())
    r = run(wicket("exec", "--share", "bogus", a.target, "--", "true"))
    expect(r.rc == 255 and b"'bogus'" in r.err, "bad --share\n" + r.describe())
    ok(run(wicket("mux", "start", a.target)), "mux start")
    ok(run(wicket("--share", "only", "exec", a.target, "--", "echo", "shared")),
       "--share only with a mux", b"shared\n")
    env = dict(os.environ, WICKET_SHARE="only")
    ok(run(wicket("exec", a.target, "--", "true"), env=env), "WICKET_SHARE=only")


@tap.check("exact argv, exit status, signal, stderr apart and 20 MB both ways through "
           "the mux")
def _():
    r = run(wicket("exec", T(), "--", "sh", "-c", 'printf "%s|" "$@"; echo err >&2; exit 7',
                   "x", "a b", "", "*", "$HOME"))
    expect_eq((r.rc, r.out, r.err), (7, b"a b||*|$HOME|", b"err\n"), "argv\n" + r.describe())
    r = run(wicket("exec", T(), "--", "sh", "-c", "kill -TERM $$"))
    expect_eq(r.rc, 143, "signal\n" + r.describe())
    data = os.urandom(20 << 20)
    r = run(wicket("exec", T(), "--", "cat"), input=data, timeout=60)
    expect(r.rc == 0 and r.out == data, "20 MB round trip (rc %s, %d bytes)" % (r.rc, len(r.out)))


@tap.check("a command's stdout/stderr pipes close when it ends although the mux lingers "
           "(detached: OpenSSH bz#1988)")
def _():
    a = fresh_agent("detach.sock")
    t0 = time.monotonic()
    p = subprocess.Popen(wicket("exec", a.target, "--", "echo", "x"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = p.communicate(timeout=20)
    expect_eq((p.returncode, out), (0, b"x\n"), "exec")
    expect(time.monotonic() - t0 < 10, "pipes held open for %.1f s" % (time.monotonic() - t0))
    expect_eq(len(muxes_for(a.path)), 1, "the mux lingers")
    pid = muxes_for(a.path)[0]
    fds = [os.readlink("/proc/%d/fd/%s" % (pid, f)) for f in os.listdir("/proc/%d/fd" % pid)]
    expect(not any(f.startswith("pipe:") for f in fds), "mux holds pipes: %r" % fds)
    expect(os.getsid(pid) != os.getsid(0), "the mux is in our session")


@tap.check("eight commands starting at once for a new target make one mux; all succeed")
def _():
    a = fresh_agent("race.sock")
    procs = [subprocess.Popen(wicket("exec", a.target, "--", "echo", str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(8)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=30)
        expect_eq((p.returncode, out), (0, b"%d\n" % i), "exec %d: %r" % (i, err))
    expect_eq(len(muxes_for(a.path)), 1, "muxes for one target")


@tap.check("--persist: a mux leaves S seconds after its last client, not before")
def _():
    a = fresh_agent("persist.sock")
    ok(run(wicket("--persist", "2", "exec", a.target, "--", "true")), "exec")
    expect_eq(len(muxes_for(a.path)), 1, "mux right after")
    time.sleep(1.0)
    expect_eq(len(muxes_for(a.path)), 1, "mux after 1 s")
    wait_until(lambda: not muxes_for(a.path), timeout=10, what="the mux to leave")
    expect(not glob.glob(os.path.join(MUX_RUNTIME, "wicket", "unix-*persist*.sock")),
           "socket left behind")
    ok(run(wicket("exec", a.target, "--", "echo", "again")), "after it left", b"again\n")


# ---------------------------------------------------------------- clients


@tap.check("16 concurrent wicket exec while a wicket shell is open under tmux: all "
           "answer, the shell keeps working")
def _():
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    sess = "wmux%d" % os.getpid()
    sockname = "wmux-%d" % os.getpid()
    tm = ["tmux", "-L", sockname]
    run(tm + ["new-session", "-d", "-s", sess, "-x", "100", "-y", "30",
              " ".join(wicket("shell", T()))], env=dict(os.environ, TERM="xterm"))
    tap.at_cleanup(lambda: run(tm + ["kill-server"]))

    def pane():
        return run(tm + ["capture-pane", "-p", "-t", sess]).out

    def type_and_wait(text, want):
        run(tm + ["send-keys", "-t", sess, text, "Enter"])
        wait_until(lambda: want in pane(), timeout=20, what="%r in the shell" % want)
    type_and_wait("echo MARK-$((6*7))", b"MARK-42")
    procs = [subprocess.Popen(wicket("exec", T(), "--", "sh", "-c", "sleep 1; echo n%d" % i),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(16)]
    type_and_wait("echo DURING-$((5*5))", b"DURING-25")
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        expect_eq((p.returncode, out), (0, b"n%d\n" % i), "exec %d: %r" % (i, err))
    type_and_wait("echo AFTER-$((3*3))", b"AFTER-9")
    run(tm + ["send-keys", "-t", sess, "exit", "Enter"])


@tap.check("wicket cp both ways while a session is open, byte for byte")
def _():
    d = os.path.join(S["tmp"], "cpdir")
    os.makedirs(d)
    held = spawn(wicket("exec", T(), "--", "sleep", "60"), stdin=subprocess.DEVNULL)
    data = os.urandom(8 << 20)
    src = os.path.join(d, "src")
    with open(src, "wb") as f:
        f.write(data)
    ok(run(wicket("cp", "-q", src, "%s:%s/up" % (T(), d)), timeout=60), "upload")
    ok(run(wicket("cp", "-q", "%s:%s/up" % (T(), d), d + "/down"), timeout=60), "download")
    expect(open(d + "/down", "rb").read() == data, "content")
    expect(held.poll() is None, "the open session ended")
    held.kill()


@tap.check("plink -ssh-connection and psftp attach to the mux socket itself")
def _():
    if not shutil.which("plink") or not shutil.which("psftp"):
        raise Skip("putty-tools (plink, psftp) is not installed")
    sock = (run(wicket("mux", "start", T())).out.decode().strip())
    r = run(["plink", "-ssh-connection", "-batch", sock, "echo via-plink; exit 4"])
    expect_eq((r.rc, r.out), (4, b"via-plink\n"), "plink\n" + r.describe())
    d = os.path.join(S["tmp"], "psftp")
    os.makedirs(d)
    with open(os.path.join(d, "f"), "wb") as f:
        f.write(b"psftp data\n")
    r = run(["psftp", "-ssh-connection", "-batch", sock],
            input=("cd %s\nget f g\nquit\n" % d).encode(), timeout=30)
    expect(r.rc == 0, "psftp\n" + r.describe())
    expect_eq(open(os.path.join(os.getcwd(), "g"), "rb").read(), b"psftp data\n", "psftp get")
    os.unlink(os.path.join(os.getcwd(), "g"))


@tap.check("kill -9 of one client: its guest command is gone, the other client goes on")
def _():
    marker = "%d.25" % (600 + os.getpid() % 1000)  # a unique argv for sleep
    victim = subprocess.Popen(wicket("exec", T(), "--", "sleep", marker),
                              stdin=subprocess.DEVNULL)
    other = subprocess.Popen(wicket("exec", T(), "--", "sh", "-c", "read x; echo got $x"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_until(lambda: pids_with_argv(["sleep", marker]), timeout=15, what="the victim's sleep")
    victim.kill()
    victim.wait()
    wait_until(lambda: not pids_with_argv(["sleep", marker]), timeout=15,
               what="the victim's guest command to end")
    out, _ = other.communicate(b"still\n", timeout=20)
    expect_eq((other.returncode, out), (0, b"got still\n"), "the other client")


@tap.check("wicket mux stop: every client fails at once with one line and 255; status then 1")
def _():
    a = fresh_agent("stop.sock")
    procs = [subprocess.Popen(wicket("exec", a.target, "--", "sleep", "60"),
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(3)]
    wait_until(lambda: b"channels: 3" in run(wicket("mux", "status", a.target)).out,
               timeout=15, what="three channels")
    ok(run(wicket("mux", "stop", a.target)), "mux stop")
    for p in procs:
        _, err = p.communicate(timeout=10)
        expect_eq(p.returncode, 255, "client exit")
        lines = err.decode().strip().splitlines()
        expect(len(lines) == 1 and "stopped" in lines[0], "client message %r" % err)
    expect_eq(run(wicket("mux", "status", a.target)).rc, 1, "status after stop")
    expect_eq(run(wicket("mux", "stop", a.target)).rc, 1, "stop of none")


@tap.check("kill -9 of the mux: clients fail fast (255), the stale socket is replaced by "
           "the next command's mux")
def _():
    a = fresh_agent("kill.sock")
    procs = [subprocess.Popen(wicket("exec", a.target, "--", "sleep", "60"),
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    wait_until(lambda: b"channels: 2" in run(wicket("mux", "status", a.target)).out,
               timeout=15, what="two channels")
    sock = sock_of(a.target)
    for pid in muxes_for(a.path):
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    for p in procs:
        _, err = p.communicate(timeout=10)
        expect_eq(p.returncode, 255, "client exit (%r)" % err)
        expect(b"connection lost" in err, "client message %r" % err)
    expect(time.monotonic() - t0 < 5, "clients took %.1f s" % (time.monotonic() - t0))
    expect(os.path.exists(sock), "the killed mux's socket file should still be there")
    ok(run(wicket("exec", a.target, "--", "echo", "fresh")), "next command", b"fresh\n")
    expect_eq(len(muxes_for(a.path)), 1, "a new mux")


@tap.check("the agent killed under an open mux: clients end with 255 and a reason; the "
           "restarted agent serves the next command")
def _():
    a = fresh_agent("lost.sock")
    p = subprocess.Popen(wicket("exec", a.target, "--", "sleep", "60"), stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    wait_until(lambda: b"channels: 1" in run(wicket("mux", "status", a.target)).out,
               timeout=15, what="the channel")
    os.killpg(a.proc.pid, signal.SIGKILL)
    for pid in [int(x) for x in os.listdir("/proc") if x.isdigit()]:
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cl = f.read()
        except OSError:
            continue
        if comm.startswith("wicketd") and a.path.encode() in cl:
            os.kill(pid, signal.SIGKILL)
    _, err = p.communicate(timeout=15)
    expect(p.returncode == 255 and b"connection lost" in err, "client: %s %r" % (p.returncode,
                                                                               err))
    b = Agent(S["tmp"], name="lost.sock")
    ok(run(wicket("exec", b.target, "--", "echo", "back")), "restarted agent", b"back\n")


@tap.check("--keepalive: an agent that stops answering ends the mux's clients (255, "
           "the reason) within a few intervals")
def _():
    a = fresh_agent("keep.sock")
    p = subprocess.Popen(wicket("--keepalive", "1", "exec", a.target, "--", "sleep", "60"),
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_until(lambda: b"channels: 1" in run(wicket("mux", "status", a.target)).out,
               timeout=15, what="the channel")
    # The session's processes are children of the listener: stop its whole group.
    os.killpg(a.proc.pid, signal.SIGSTOP)
    tap.at_cleanup(lambda: os.killpg(a.proc.pid, signal.SIGCONT))
    t0 = time.monotonic()
    _, err = p.communicate(timeout=30)
    dt = time.monotonic() - t0
    os.killpg(a.proc.pid, signal.SIGCONT)
    expect(p.returncode == 255 and b"stopped answering" in err,
           "client: %s %r" % (p.returncode, err))
    expect(dt < 10, "took %.1f s" % dt)


@tap.check("an agent that never greets: the mux ends within its limit (255 and the reason), "
           "so later commands are not stuck on it")
def _():
    path = os.path.join(S["tmp"], "silent.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    tap.at_cleanup(ls.close)
    held = []

    def accept_and_sit():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            held.append(c)  # reads nothing, says nothing
    threading.Thread(target=accept_and_sit, daemon=True).start()
    t0 = time.monotonic()
    r = run(wicket("--keepalive", "1", "exec", "unix/" + path, "--", "true"), timeout=30)
    expect(r.rc == 255 and b"no greeting from the agent" in r.err, "silent agent\n" + r.describe())
    expect(time.monotonic() - t0 < 15, "took %.1f s" % (time.monotonic() - t0))
    wait_until(lambda: not muxes_for(path), timeout=10, what="the mux to end")


@tap.check("the mux tags its greeting with a nonce and skips an agent's answer to another "
           "host (with that session's bytes) before its own")
def _():
    agent = fresh_agent("answered.sock")
    path = os.path.join(S["tmp"], "foreign.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    tap.at_cleanup(ls.close)
    seen = {}

    def relay(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        try:
            c, _ = ls.accept()
        except OSError:
            return
        f = c.makefile("rb")
        seen["greeting"] = f.readline()
        # What a port can hold for a new host: the agent's answer to the
        # host before it and a packet of that host's session.
        old = bytes([MSG_CHANNEL_DATA]) + u32(0) + sshstr(b"old session")
        c.sendall(GREETING_PREFIX + b"wicketd_0 reply@wicket=00c0ffee00c0ffee\r\n" +
                  u32(len(old)) + old)
        g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        g.connect(agent.path)
        g.sendall(seen["greeting"])
        threading.Thread(target=relay, args=(g, c), daemon=True).start()
        relay(c, g)
    threading.Thread(target=serve, daemon=True).start()
    r = run(wicket("exec", "unix/" + path, "--", "echo", "ours"), timeout=30)
    ok(r, "exec through the mux after a foreign answer", b"ours\n")
    m = re.search(rb" nonce@wicket=([0-9a-f]{16})\r\n$", seen.get("greeting", b""))
    expect(m, "the mux's greeting has no nonce: %s" % show(seen.get("greeting", b"")))
    log = sock_of("unix/" + path)[:-len(".sock")] + ".log"
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    expect("skipped an agent's answer to another host" in text,
           "the mux's log does not say it skipped the foreign answer:\n" + text[-2000:])
    run(wicket("mux", "stop", "unix/" + path))


# ---------------------------------------------------------------- isolation


def raw_mux(target):
    sock = run(wicket("mux", "start", target)).out.decode().strip()
    c = RawConn(sock)
    c.handshake(skip_lines=True)
    return c


@tap.check("a client addressing another client's channel, or sending garbage, gets a "
           "DISCONNECT with the reason; the other client's session goes on")
def _():
    other = subprocess.Popen(wicket("exec", T(), "--", "sh", "-c", "read x; echo ok $x"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_until(lambda: re.search(rb"channels: [1-9]", run(wicket("mux", "status", T())).out),
               timeout=15, what="the other client's channel")
    bad = raw_mux(T())
    # Its own channels: none.  Number 0 is the lowest a mux hands out (the
    # other client's, or free): either way not this client's.
    bad.send_packet(bytes([MSG_CHANNEL_DATA]) + u32(0) + sshstr(b"intrusion"))
    code, desc = bad.expect_disconnect()
    expect(b"not one of this client's" in desc, "reason %r" % desc)
    bad2 = raw_mux(T())
    bad2.send(u32(1 << 30) + b"junk")
    code, desc = bad2.expect_disconnect()
    expect(b"exceeds the maximum" in desc, "reason %r" % desc)
    bad3 = raw_mux(T())
    bad3.send_packet(bytes([21]))  # NEWKEYS: not on a bare stream
    code, desc = bad3.expect_disconnect()
    expect(b"not allowed" in desc, "reason %r" % desc)
    out, _ = other.communicate(b"fine\n", timeout=20)
    expect_eq((other.returncode, out), (0, b"ok fine\n"), "the other client")


@tap.check("a client that opens a flood and stops reading stalls only itself: others "
           "answer, the mux's memory stays bounded")
def _():
    hog = raw_mux(T())
    pid = muxes_for(S["agent"].path)[0]

    def rss():
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    before = rss()
    hog.send_packet(channel_open_session(0, window=8 << 20, maxpkt=32768))
    while True:
        p = hog.recv_packet()
        if p[0] == MSG_CHANNEL_OPEN_CONFIRMATION:
            theirs = int.from_bytes(p[5:9], "big")
            break
    hog.send_packet(channel_request(theirs, "exec", False, sshstr("cat /dev/zero")))
    # ... and never reads again.
    time.sleep(2)
    for i in range(5):
        ok(run(wicket("exec", T(), "--", "echo", "alive%d" % i)), "exec while flooded",
           b"alive%d\n" % i)
    # What the hog granted (8 MiB) may wait for it, and a little more: not
    # what /dev/zero can produce.
    grown = rss() - before
    expect(grown < 24 * 1024, "mux RSS grew by %d KiB with a stalled 8 MiB window" % grown)
    hog.close()


@tap.check("only the owner: the directory is 0700, and a client of another uid is refused "
           "(SO_PEERCRED) even where it can reach the socket")
def _():
    if os.geteuid() != 0:
        raise Skip("needs root to act as another uid")
    sock = run(wicket("mux", "start", T())).out.decode().strip()
    d = os.path.dirname(sock)
    expect_eq(os.stat(d).st_mode & 0o777, 0o700, "directory mode")
    os.chmod(MUX_RUNTIME, 0o711)
    os.chmod(d, 0o711)
    os.chmod(sock, 0o777)
    try:
        code = ("import socket,os; os.setgid(65534); os.setuid(65534); s=socket.socket(1);"
                "s.settimeout(5); s.connect(%r); print(repr(s.recv(100)))" % sock)
        r = run([sys.executable, "-c", code], timeout=20)
    finally:
        os.chmod(MUX_RUNTIME, 0o700)
        os.chmod(d, 0o700)
        os.chmod(sock, 0o700)
    expect(r.rc == 0 and r.out.strip() == b"b''", "nobody got %r\n%s" % (r.out, r.describe()))
    # And wicket itself refuses a directory others can use.
    os.chmod(d, 0o755)
    try:
        r = run(wicket("--share", "only", "exec", T(), "--", "true"))
    finally:
        os.chmod(d, 0o700)
    expect(r.rc == 255 and b"mode" in r.err, "0755 directory\n" + r.describe())


# ---------------------------------------------------------------- forwards, ssh


def echo_server(tag):
    """A host TCP server answering TAG:(what it first reads), then closing."""
    def serve(c):
        with c:
            c.sendall(tag + b":" + c.recv(100))
    return tcp_server(serve)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@tap.check("per-client remote forwards: two plink -R at once each get their own "
           "connections; a leaving client's forward is cancelled")
def _():
    if not shutil.which("plink"):
        raise Skip("plink (putty-tools) is not installed")
    sock = run(wicket("mux", "start", T())).out.decode().strip()
    pa, pb = echo_server(b"A"), echo_server(b"B")
    ra, rb = free_port(), free_port()
    fa = spawn(["plink", "-ssh-connection", "-batch", "-N", "-R",
                "127.0.0.1:%d:127.0.0.1:%d" % (ra, pa), sock], stdin=subprocess.DEVNULL)
    spawn(["plink", "-ssh-connection", "-batch", "-N", "-R",
           "127.0.0.1:%d:127.0.0.1:%d" % (rb, pb), sock], stdin=subprocess.DEVNULL)
    probe = ("import socket,sys; s=socket.create_connection(('127.0.0.1',int(sys.argv[1])));"
             "s.sendall(b'hi'); print(s.recv(100).decode())")

    def through(port):
        r = run(wicket("exec", T(), "--", sys.executable, "-c", probe, str(port)))
        return r.out.strip() if r.rc == 0 else None
    wait_until(lambda: through(ra) == b"A:hi", timeout=20, what="forward A")
    wait_until(lambda: through(rb) == b"B:hi", timeout=20, what="forward B")
    fa.kill()
    wait_until(lambda: through(ra) is None, timeout=20, what="forward A to be cancelled")
    expect_eq(through(rb), b"B:hi", "forward B after A left")


@tap.check("two ssh sessions at once through proxy --ssh, and wicket forward -L beside "
           "them, all on one mux")
def _():
    if not shutil.which("ssh"):
        raise Skip("OpenSSH ssh is not installed")
    tmp = S["tmp"]
    cfg = os.path.join(tmp, "ssh_config")
    with open(cfg, "w") as f:
        f.write("Host g\n\tProxyCommand %s proxy --ssh %s\n\tStrictHostKeyChecking no\n"
                "\tUserKnownHostsFile /dev/null\n\tLogLevel error\n\tBatchMode yes\n"
                % (wicket()[0], T()))
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    a = subprocess.Popen(["ssh", "-F", cfg, "g", "read x; echo A $x"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
    b = subprocess.Popen(["ssh", "-F", cfg, "g", "read x; echo B $x"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
    pe = echo_server(b"E")
    lp = free_port()
    spawn(wicket("forward", T(), "-L", "%d:127.0.0.1:%d" % (lp, pe)), stdin=subprocess.DEVNULL)

    def via_forward():
        try:
            s = socket.create_connection(("127.0.0.1", lp), timeout=5)
            s.sendall(b"yo")
            got = s.recv(100)
            s.close()
            return got
        except OSError:
            return None
    wait_until(lambda: via_forward() == b"E:yo", timeout=20, what="wicket forward -L")
    time.sleep(1)
    oa, _ = a.communicate(b"1\n", timeout=60)
    ob, _ = b.communicate(b"2\n", timeout=60)
    expect_eq((a.returncode, oa, b.returncode, ob), (0, b"A 1\n", 0, b"B 2\n"), "ssh sessions")


@tap.check("wicket serve: three OpenSSH clients at once share one agent stream")
def _():
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        raise Skip("OpenSSH is not installed")
    tmp = S["tmp"]
    a = fresh_agent("serve.sock")
    key = os.path.join(tmp, "id_serve")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key + "_host"])
    ak = os.path.join(tmp, "ak_serve")
    shutil.copy(key + ".pub", ak)
    os.chmod(ak, 0o600)
    log = open(os.path.join(tmp, "serve.log"), "w+b")
    spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", key + "_host",
                 "--authorized-keys", ak, a.target), stdin=subprocess.DEVNULL, stderr=log)

    def port():
        log.seek(0)
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read())
        return int(m.group(1)) if m else None
    pt = wait_until(port, what="serve to listen")
    argv = ["ssh", "-F", "/dev/null", "-p", str(pt), "-i", key, "-o", "BatchMode=yes", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=error", "127.0.0.1"]
    ps = [subprocess.Popen(argv + ["read x; echo c%d $x" % i], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE) for i in range(3)]
    wait_until(lambda: b"channels: 3" in run(wicket("mux", "status", a.target)).out,
               timeout=60, what="three sessions on one mux")
    expect_eq(len(muxes_for(a.path)), 1, "one mux for three clients")
    for i, p in enumerate(ps):
        out, _ = p.communicate(b"x\n", timeout=60)
        expect_eq((p.returncode, out), (0, b"c%d x\n" % i), "client %d" % i)


if __name__ == "__main__":
    tap.main(setup)
