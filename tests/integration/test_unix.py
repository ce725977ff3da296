#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicket exec/proxy against wicketd --listen unix/PATH."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (Failure, RawConn, Skip, WICKETD, Agent, expect, expect_eq,  # noqa: E402
                    kill_cmdline, need_tool, pids_with_argv, read_until, run, show, sshstr,
                    tap, wicket)

S = {}  # tmp, agent


def setup():
    S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(S["tmp"])


def target():
    return S["agent"].target


def ex(*args, **kw):
    """wicket exec TARGET -- args..."""
    return wicket("exec", target(), "--", *args)


NASTY = [
    "plain",
    "two words",
    "  leading and trailing  ",
    "single'quote",
    'double"quote',
    "$HOME",
    "${PATH}",
    "`id`",
    "$(id)",
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "",
    "-n",
    "--",
    "-e",
    "*",
    "?",
    "[a]",
    "~",
    "a;b&c|d>e<f",
    "!",
    "#comment",
    "unicode: h\u00e9llo \u2603 \u65e5\u672c \U0001f600",
    "=",
    "x=y",
]


@tap.check("exec-argv: nasty arguments arrive byte-exact (printf '%s\\0')")
def _():
    args = NASTY + [b"invalid utf-8 \xff\xfe", "last"]
    r = run(ex("printf", "%s\\0", *args), timeout=30)
    want = b"".join((a if isinstance(a, bytes) else a.encode()) + b"\0" for a in args)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, want, "argv bytes")
    expect_eq(r.err, b"", "stderr")


@tap.check("exec-argv: a leading '-' command argument and 4000 arguments")
def _():
    args = ["-%d" % i for i in range(4000)]
    r = run(ex("printf", "%s\\n", *args), timeout=30)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, "".join(a + "\n" for a in args).encode(), "output")


@tap.check("exit status 0")
def _():
    r = run(ex("true"), timeout=20)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())


@tap.check("exit status 3, 200, 254, 255 propagated")
def _():
    for code in (3, 200, 254, 255):
        r = run(ex("sh", "-c", "exit %d" % code), timeout=20)
        expect_eq(r.rc, code, "exit status of 'exit %d'\n%s" % (code, r.describe()))
        expect_eq(r.err, b"", "stderr for 'exit %d'" % code)


@tap.check("killed by SIGTERM -> 143")
def _():
    r = run(ex("sh", "-c", "kill -TERM $$"), timeout=20)
    expect_eq(r.rc, 143, "exit status\n" + r.describe())


@tap.check("killed by SIGKILL -> 137")
def _():
    r = run(ex("sh", "-c", "kill -KILL $$"), timeout=20)
    expect_eq(r.rc, 137, "exit status\n" + r.describe())


@tap.check("killed by SIGUSR1 -> 138, SIGHUP -> 129")
def _():
    r = run(ex("sh", "-c", "kill -USR1 $$"), timeout=20)
    expect_eq(r.rc, 138, "exit status for USR1\n" + r.describe())
    r = run(ex("sh", "-c", "kill -HUP $$"), timeout=20)
    expect_eq(r.rc, 129, "exit status for HUP\n" + r.describe())


@tap.check("stdout and stderr are kept apart")
def _():
    r = run(ex("sh", "-c", "printf 'to out\\n'; printf 'to err\\n' >&2; printf more-out"),
            timeout=20)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"to out\nmore-out", "stdout")
    expect_eq(r.err, b"to err\n", "stderr")


@tap.check("2 MB on stdout and 2 MB on stderr at once stay apart and complete")
def _():
    script = ("head -c 2000000 /dev/zero | tr '\\0' o & "
              "head -c 2000000 /dev/zero | tr '\\0' e >&2; wait")
    r = run(ex("sh", "-c", script), timeout=60)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect(r.out == b"o" * 2000000, "stdout: %d bytes, set %s" % (len(r.out), set(r.out)))
    expect(r.err == b"e" * 2000000, "stderr: %d bytes, set %s" % (len(r.err), set(r.err)))


@tap.check("nonexistent command -> 127 and a message naming it")
def _():
    r = run(ex("no-such-command-wkt42", "arg"), timeout=20)
    expect_eq(r.rc, 127, "exit status\n" + r.describe())
    expect(b"no-such-command-wkt42" in r.err, "stderr does not name the command\n" + r.describe())
    expect_eq(r.out, b"", "stdout")


@tap.check("non-executable file -> 126 and a message naming it")
def _():
    p = os.path.join(S["tmp"], "not-executable")
    with open(p, "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(p, 0o644)
    r = run(ex(p), timeout=20)
    expect_eq(r.rc, 126, "exit status\n" + r.describe())
    expect(p.encode() in r.err, "stderr does not name the file\n" + r.describe())


@tap.check("-n: remote stdin is EOF even while local stdin stays open")
def _():
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, b"must not be read\n")
        r = run(wicket("exec", "-n", target(), "--", "sh", "-c", "cat; echo done"),
                stdin=rfd, timeout=20)
    finally:
        os.close(rfd)
        os.close(wfd)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"done\n", "stdout")


@tap.check("without -n: stdin reaches the command, EOF ends it")
def _():
    r = run(ex("sh", "-c", "cat; echo done"), input=b"line 1\nline 2", timeout=20)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"line 1\nline 2done\n", "stdout")


@tap.check("10 MB random stdin -> cat -> stdout byte-exact")
def _():
    data = os.urandom(10 * 1024 * 1024 + 12345)
    r = run(ex("cat"), input=data, timeout=120)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    if r.out != data:
        i = next((k for k in range(min(len(r.out), len(data))) if r.out[k] != data[k]),
                 min(len(r.out), len(data)))
        raise Failure("output differs: %d bytes back of %d, first difference at %d"
                      % (len(r.out), len(data), i))
    expect_eq(r.err, b"", "stderr")


@tap.check("8 concurrent connections on one listener run in parallel")
def _():
    procs = []
    t0 = time.monotonic()
    try:
        for n in range(8):
            procs.append(subprocess.Popen(
                ex("sh", "-c", 'sleep 1; echo "$1"', "sh", "n%d" % n),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True))
        res = []
        for p in procs:
            out, err = p.communicate(timeout=30)
            res.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    dt = time.monotonic() - t0
    for n, (rc, out, err) in enumerate(res):
        expect_eq((rc, out), (0, b"n%d\n" % n), "connection %d (stderr %s)" % (n, show(err)))
    expect(dt < 5, "8 x 1 s took %.1f s: not concurrent" % dt)


@tap.check("unix/NONEXISTENT -> 255 with one 'wicket: ...' line naming the path")
def _():
    p = os.path.join(S["tmp"], "no-such.sock")
    r = run(wicket("exec", "unix/" + p, "--", "true"), timeout=20)
    expect_eq(r.rc, 255, "exit status\n" + r.describe())
    lines = r.err.decode("utf-8", "replace").splitlines()
    expect(len(lines) == 1 and lines[0].startswith("wicket: ") and p in lines[0],
           "stderr should be one 'wicket: ' line naming %s\n%s" % (p, r.describe()))


@tap.check("usage: 'wicket exec' (no target) -> 255 and a message")
def _():
    r = run(wicket("exec"), timeout=10)
    expect_eq(r.rc, 255, "exit status\n" + r.describe())
    expect(r.err.startswith(b"wicket: ") and b"TARGET" in r.err, "message\n" + r.describe())


@tap.check("usage: 'wicket frob x' -> 255 and a message naming frob")
def _():
    r = run(wicket("frob", "x"), timeout=10)
    expect_eq(r.rc, 255, "exit status\n" + r.describe())
    expect(r.err.startswith(b"wicket: ") and b"frob" in r.err, "message\n" + r.describe())


@tap.check("usage: 'wicket exec unix/S' (no command) -> 255 and a message")
def _():
    r = run(wicket("exec", target()), timeout=10)
    expect_eq(r.rc, 255, "exit status\n" + r.describe())
    expect(r.err.startswith(b"wicket: ") and b"command" in r.err, "message\n" + r.describe())
    r = run(wicket("exec", target(), "--"), timeout=10)
    expect_eq(r.rc, 255, "exit status with a bare '--'\n" + r.describe())


@tap.check("usage: no arguments, unknown option, shell with a command -> 255")
def _():
    for argv in ([], ["--frobnicate"], ["exec", "-Z", target(), "true"],
                 ["shell", target(), "ls"], ["proxy"], ["exec", "nokind", "true"]):
        r = run(wicket(*argv), timeout=10)
        expect_eq(r.rc, 255, "exit status of wicket %s\n%s" % (argv, r.describe()))
        expect(len(r.err.strip()) > 0, "no message for wicket %s" % argv)
        expect_eq(r.out, b"", "stdout of wicket %s" % argv)


@tap.check("--help exits 0 and mentions exec, shell, proxy; -V prints a version")
def _():
    r = run(wicket("--help"), timeout=10)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    for w in (b"exec", b"shell", b"proxy"):
        expect(w in r.out, "--help does not mention %s" % w.decode())
    r = run(wicket("-V"), timeout=10)
    expect(r.rc == 0 and re.match(rb"wicket \d", r.out), "-V\n" + r.describe())


@tap.check("wicket proxy unix/S as plink's -proxycmd")
def _():
    need_tool("plink")
    cmd = " ".join(shlex.quote(a) for a in wicket("proxy", target()))
    r = run(["plink", "-ssh-connection", "-batch", "-proxycmd", cmd, "x",
             "echo via-proxy; echo e >&2; exit 4"], timeout=30)
    expect_eq((r.rc, r.out, r.err), (4, b"via-proxy\n", b"e\n"), "plink via wicket proxy\n"
              + r.describe())


@tap.check("output into a closed pipe ('yes | head -1') terminates promptly")
def _():
    marker = "wkt-yes-%d" % os.getpid()
    cmd = '%s | head -1; echo "wicket-status=${PIPESTATUS[0]}"' % " ".join(
        shlex.quote(a) for a in ex("yes", marker))
    try:
        r = run(["bash", "-c", cmd], timeout=20)
        expect_eq(r.out, ("%s\nwicket-status=141\n" % marker).encode(),
                  "output and wicket's status (141 = 128+SIGPIPE, as for a local command)\n"
                  + r.describe())
        expect(r.elapsed < 10, "took %.1f s" % r.elapsed)
    finally:
        # The remote 'yes' must not keep running (and must not outlive us).
        deadline = time.monotonic() + 10
        while pids_with_argv(["yes", marker]) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = kill_cmdline(["yes", marker])
    expect(not left, "remote 'yes' still running 10 s after wicket ended: pids %s" % left)


@tap.check("env: LANG/LC_* reach the remote, other variables do not")
def _():
    env = dict(os.environ, LANG="C.UTF-8", LC_TIME="C", FOO="bar")
    r = run(ex("sh", "-c", 'printf "%s|%s|%s" "$LANG" "$LC_TIME" "${FOO-unset}"'),
            env=env, timeout=20)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"C.UTF-8|C|unset", "remote environment")


@tap.check("env requests (raw): LANG, TERM accepted; FOO, PATH, LD_PRELOAD refused")
def _():
    c = RawConn(S["agent"].path)
    c.handshake()
    ours, theirs = c.open_session()
    got = {}
    for k, v in (("LANG", "C.UTF-8"), ("TERM", "xterm-test"), ("FOO", "bar"),
                 ("PATH", "/evil"), ("LD_PRELOAD", "/evil.so")):
        got[k] = c.request_reply(theirs, "env", sshstr(k) + sshstr(v))
    expect_eq(got, {"LANG": True, "TERM": True, "FOO": False, "PATH": False,
                    "LD_PRELOAD": False}, "env replies")
    ok = c.request_reply(theirs, "exec", sshstr(
        'printf "%s|%s|%s|%s|%s" "$LANG" "$TERM" "${FOO-unset}" "${LD_PRELOAD-unset}" "$PATH"'))
    expect(ok, "exec refused")
    out, err, st = c.collect(ours)
    expect_eq(st, 0, "exit status (stderr %s)" % show(err))
    parts = out.split(b"|")
    expect_eq(parts[:4], [b"C.UTF-8", b"xterm-test", b"unset", b"unset"], "remote environment")
    expect(parts[4] != b"/evil", "PATH was overridden")


@tap.check("-t gets a pty (tty, test -t 0); without -t there is none")
def _():
    r = run(wicket("exec", "-t", target(), "--", "sh", "-c",
                   "tty; test -t 0 && echo stdin-is-tty; exit 3"), timeout=20)
    expect_eq(r.rc, 3, "exit status with -t\n" + r.describe())
    expect(re.search(rb"^/dev/pts/\d+\r?$", r.out, re.M) and b"stdin-is-tty" in r.out,
           "no pty with -t\n" + r.describe())
    r = run(ex("sh", "-c", "tty; test -t 0 && echo stdin-is-tty; exit 0"), timeout=20)
    expect(b"/dev/pts" not in r.out and b"stdin-is-tty" not in r.out,
           "pty without -t\n" + r.describe())


def start_and_signal(args, signals):
    """Run wicket exec args; after the remote prints 'started', send signals
    (a list of (signal, delay)) to wicket itself.  Returns (rc, out, err)."""
    p = subprocess.Popen(ex(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and p.kill())
    try:
        got = read_until(p.stdout, b"started\n")
        for sig, delay in signals:
            time.sleep(delay)
            p.send_signal(sig)
        out, err = p.communicate(timeout=20)
        return p.returncode, got + out, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@tap.check("SIGINT to wicket is forwarded: remote sleep dies of INT -> 130")
def _():
    rc, out, err = start_and_signal(["sh", "-c", "echo started; exec sleep 30"],
                                    [(signal.SIGINT, 0)])
    expect_eq((rc, out), (130, b"started\n"), "result (stderr %s)" % show(err))


@tap.check("SIGTERM to wicket reaches a remote trap; its exit status comes back")
def _():
    rc, out, err = start_and_signal(
        ["sh", "-c", "trap 'echo got-term; kill $!; exit 9' TERM; echo started; "
         "sleep 30 >/dev/null 2>&1 & wait"],
        [(signal.SIGTERM, 0)])
    expect_eq((rc, out), (9, b"started\ngot-term\n"), "result (stderr %s)" % show(err))


@tap.check("a second SIGINT makes wicket give up: 255 and a message")
def _():
    rc, out, err = start_and_signal(["sh", "-c", "trap '' INT; echo started; sleep 10"],
                                    [(signal.SIGINT, 0), (signal.SIGINT, 0.3)])
    expect_eq(rc, 255, "exit status (stderr %s)" % show(err))
    expect(err.startswith(b"wicket: ") and b"INT" in err, "message %s" % show(err))


@tap.check("agent dying mid-command -> 255 and 'connection lost'")
def _():
    # wicketd --stdio behind a proxy command that kills it after a moment.
    # (An async list's stdin is /dev/null in sh, hence the detour through fd 3.)
    pc = "exec 3<&0; %s --stdio <&3 3<&- & sleep 1; kill -9 $!" % shlex.quote(WICKETD)
    marker = "5.%d" % os.getpid()  # the orphaned remote sleep, to clean up after
    try:
        r = run(wicket("--proxy-command", pc, "exec", "x", "--", "sleep", marker), timeout=20)
    finally:
        kill_cmdline(["sleep", marker])
    expect_eq(r.rc, 255, "exit status\n" + r.describe())
    expect(r.err.startswith(b"wicket: ") and b"connection lost" in r.err,
           "message\n" + r.describe())


@tap.check("listener survives all of the above and still serves")
def _():
    expect(S["agent"].alive(), "wicketd listener exited:\n" + S["agent"].log_text())
    r = run(ex("echo", "alive"), timeout=20)
    expect_eq((r.rc, r.out), (0, b"alive\n"), "echo alive\n" + r.describe())


@tap.check("demo target (bubblewrap): runs, read-only root, own hostname")
def _():
    need_tool("bwrap")
    probe = run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                 "--dev", "/dev", "--proc", "/proc", "true"], timeout=20)
    if probe.rc != 0:
        raise Skip("bwrap cannot create a sandbox here: %s" % probe.err.decode().strip())
    r = run(wicket("exec", "demo", "--", "sh", "-c",
                   "hostname; touch /wkt-probe 2>/dev/null || echo read-only; exit 6"),
            env=dict(os.environ, WICKETD=WICKETD), timeout=30)
    expect_eq((r.rc, r.out), (6, b"wicket-demo\nread-only\n"), "demo\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
