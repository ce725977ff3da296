#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile bytes on wicketd's Unix socket, spoken raw from Python.

Every protocol violation must get a DISCONNECT (protocol error, with a
readable reason) and the end of that connection only: the listener keeps
accepting, and connections opened before the bad one keep working."""

import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (DISC_PROTOCOL_ERROR, MSG_CHANNEL_EOF,  # noqa: E402
                    MSG_CHANNEL_OPEN, MSG_IGNORE, MSG_KEXINIT, MSG_UNIMPLEMENTED,
                    MSG_USERAUTH_REQUEST, WICKETD, Agent, Failure, RawConn, Reader,
                    channel_data, expect, expect_eq, kill_cmdline, pids_with_argv, read_until,
                    run, show, spawn, sshstr, tap, u32, wicket)

S = {}


def setup():
    S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(S["tmp"])


def readable(desc):
    try:
        t = desc.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(t.strip()) >= 5 and all(c.isprintable() for c in t)


def check_disconnect(c, want_in=None):
    code, desc = c.expect_disconnect()
    expect_eq(code, DISC_PROTOCOL_ERROR, "DISCONNECT reason code (description %s)" % show(desc))
    if os.environ.get("TAP_VERBOSE"):
        print("# DISCONNECT: %s" % desc.decode("utf-8", "replace"))
    expect(readable(desc), "DISCONNECT description is not a readable reason: %s" % show(desc))
    if want_in:
        expect(any(w.lower() in desc.lower() for w in want_in),
               "DISCONNECT description %s mentions none of %s" % (show(desc), want_in))
    return desc


def alive_check():
    expect(S["agent"].alive(), "wicketd listener exited:\n" + S["agent"].log_text())
    r = run(wicket("exec", S["agent"].target, "--", "echo", "alive"), timeout=20)
    expect_eq((r.rc, r.out, r.err), (0, b"alive\n", b""), "new connection\n" + r.describe())


def pkt(payload):
    return u32(len(payload)) + payload


# Bad payloads, sent right after a correct greeting exchange.
CASES = [
    ("a", "garbage after the greeting (absurd length 0xdeadbeef)",
     b"\xde\xad\xbe\xef" + os.urandom(64), [b"length", b"exceed"]),
    ("b", "huge length field 0x7fffffff",
     u32(0x7fffffff) + b"\x5e" * 16, [b"length", b"exceed"]),
    ("c1", "transport-layer message KEXINIT (20)",
     pkt(bytes([MSG_KEXINIT]) + os.urandom(16)), [b"20", b"not allowed"]),
    ("c2", "user-auth message USERAUTH_REQUEST (50)",
     pkt(bytes([MSG_USERAUTH_REQUEST]) + sshstr("root") + sshstr("ssh-connection")
         + sshstr("none")), [b"50", b"not allowed"]),
    ("d", "zero-length packet", u32(0), [b"zero", b"length"]),
    ("e", "CHANNEL_DATA on a channel never opened",
     None, [b"channel", b"not open"]),
    ("g", "length just over the 256 KiB maximum (262145)",
     u32(256 * 1024 + 1) + b"\x02" * 100, [b"length", b"exceed"]),
    ("h", "truncated CHANNEL_OPEN",
     None, [b"malformed", b"channel_open"]),
    ("i", "CHANNEL_DATA beyond the channel's maximum packet",
     None, [b"maximum", b"exceed", b"window"]),
    ("j", "greeting line that never ends (no newline)",
     None, [b"greeting"]),
]


def bad_bytes(key, payload):
    if key == "e":
        return pkt(channel_data(7, b"hello"))
    if key == "h":
        # sender channel present, window and maximum packet missing
        return pkt(bytes([MSG_CHANNEL_OPEN]) + sshstr("session") + u32(0))
    return payload


def add_case(key, label, payload, words):
    st = {}

    @tap.check("(%s) %s: DISCONNECT, protocol error, readable reason, then close" % (key, label))
    def _():
        # Witnesses opened before the bad connection, kept open across it.
        a = RawConn(S["agent"].path)
        a.handshake()
        st["a"] = a
        st["slow"] = subprocess.Popen(
            wicket("exec", S["agent"].target, "--", "sh", "-c",
                   "echo started; sleep 1.5; echo still"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        tap.at_cleanup(lambda p=st["slow"]: p.poll() is None and p.kill())
        st["slow_out"] = read_until(st["slow"].stdout, b"started\n")
        c = RawConn(S["agent"].path)
        if key == "j":
            c.send(b"SSHCONNECTION@putty.projects.tartarus.org-2.0-" + b"x" * 5000)
            c.read_greeting()
        elif key == "i":
            c.handshake()
            ours, theirs = c.open_session()
            big = 256 * 1024 - 512 + 1  # one more than the agent's advertised maxpkt
            c.send_packet(channel_data(theirs, b"z" * big))
        else:
            c.handshake()
            c.send(bad_bytes(key, payload))
        check_disconnect(c, words)

    @tap.check("(%s) afterwards the listener serves a new connection" % key)
    def _():
        alive_check()

    @tap.check("(%s) connections opened before it still work" % key)
    def _():
        a, slow = st.get("a"), st.get("slow")
        expect(a and slow, "witnesses were not set up")
        out, err, status = a.exec_collect("echo still-raw")
        expect_eq((out, err, status), (b"still-raw\n", b"", 0), "raw witness session")
        try:
            sout, serr = slow.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            slow.kill()
            raise Failure("slow wicket exec did not finish")
        expect_eq((slow.returncode, st["slow_out"] + sout, serr), (0, b"started\nstill\n", b""),
                  "slow wicket exec")
        a.close()


for k, lbl, pl, w in CASES:
    add_case(k, lbl, pl, w)


@tap.check("(f) stale garbage before the greeting is discarded; the session works")
def _():
    c = RawConn(S["agent"].path)
    junk = (os.urandom(3000).replace(b"S", b"s") + b"\r\nSSHCONNECTION@putty\r\n"
            + b"SSH-2.0-OpenSSH_9.2\r\n" + b"\x00\x00\x00\x05\x5e\x00\x00\x00\x00"
            + b"SSHCONNECTION@putty.projects.tartarus")  # truncated prefix, then the real one
    c.send(junk)
    time.sleep(0.05)
    c.send_greeting()
    c.read_greeting()
    out, err, status = c.exec_collect("echo ok")
    expect_eq((out, err, status), (b"ok\n", b"", 0), "echo ok after stale bytes")
    out, err, status = c.exec_collect("echo second")
    expect_eq((out, err, status), (b"second\n", b"", 0), "second session on the connection")


@tap.check("(f) stale garbage before the greeting over wicketd --stdio")
def _():
    a, b = socket.socketpair()
    p = spawn([WICKETD, "--stdio", "--quiet"], stdin=b.fileno(), stdout=b.fileno(),
              stderr=subprocess.DEVNULL)
    b.close()
    c = RawConn(sock=a)
    c.send(os.urandom(100000).replace(b"S", b"_"))
    c.handshake()
    out, err, status = c.exec_collect("printf '%s' stdio-ok")
    expect_eq((out, err, status), (b"stdio-ok", b"", 0), "exec after stale bytes")
    c.close()
    p.wait(timeout=10)
    expect_eq(p.returncode, 0, "wicketd --stdio exit status after a clean close")


@tap.check("a 256 KiB IGNORE packet (the maximum) is accepted")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    c.send_packet(bytes([MSG_IGNORE]) + sshstr(b"i" * (256 * 1024 - 5)))
    out, err, status = c.exec_collect("echo after-big-ignore")
    expect_eq((out, status), (b"after-big-ignore\n", 0), "session after the big IGNORE")


@tap.check("an unknown connection-layer message (127) gets UNIMPLEMENTED, not a disconnect")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    c.send_packet(bytes([MSG_IGNORE]) + sshstr("x"))  # seq 0
    c.send_packet(bytes([127]) + b"whatever")          # seq 1
    p = c.recv_packet()
    expect(p is not None, "EOF instead of UNIMPLEMENTED")
    r = Reader(p)
    expect_eq(r.u8(), MSG_UNIMPLEMENTED, "reply type")
    expect_eq(r.u32(), 1, "sequence number in UNIMPLEMENTED")
    out, err, status = c.exec_collect("echo still-fine")
    expect_eq((out, status), (b"still-fine\n", 0), "session afterwards")


@tap.check("data after our own EOF on a channel -> DISCONNECT")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    ours, theirs = c.open_session()
    c.send_packet(bytes([MSG_CHANNEL_EOF]) + u32(theirs))
    c.send_packet(channel_data(theirs, b"late"))
    check_disconnect(c, [b"eof"])


@tap.check("bad input mid-session: DISCONNECT and the running command is hung up")
def _():
    marker = "%d.%d" % (1000 + os.getpid() % 1000, os.getpid())

    def running():
        return len(pids_with_argv(["sleep", marker]))
    c = RawConn(S["agent"].path)
    c.handshake()
    ours, theirs = c.open_session()
    expect(c.request_reply(theirs, "exec", sshstr("exec sleep " + marker)), "exec refused")
    deadline = time.monotonic() + 10
    while not running() and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(running(), "the remote sleep never started")
    c.send(u32(0x7fffffff))
    check_disconnect(c)
    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = kill_cmdline(["sleep", marker])
    expect(not left, "the command of the dropped connection still runs 10 s later")


@tap.check("listener alive after everything; its log names the protocol errors")
def _():
    alive_check()
    log = S["agent"].log_text(100000)
    expect("protocol error" in log or "DISCONNECT" in log or "not allowed" in log,
           "wicketd logged nothing about the protocol errors:\n" + log[-2000:])


if __name__ == "__main__":
    tap.main(setup)
