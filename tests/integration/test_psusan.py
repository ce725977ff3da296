#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicket as the client of PuTTY's psusan (a real bare ssh-connection server).

psusan refuses exec-argv@wicket, so wicket must fall back to a quoted `exec`
string run by the user's shell, and still deliver the exact argv."""

import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Skip, expect, expect_eq, run, spawn, tap, wait_until, wicket  # noqa: E402


def ps(*args, opts=()):
    """wicket --proxy-command psusan exec [opts] x -- args"""
    if not shutil.which("psusan"):
        raise Skip("psusan (putty-tools) is not installed")
    return wicket("--proxy-command", "psusan", "exec", *opts, "x", "--", *args)


@tap.check("fallback quoting: printf '%s\\n' 'a b' \"it's\" '$HOME' '*' prints exactly those")
def _():
    r = run(ps("printf", "%s\\n", "a b", "it's", "$HOME", "*"), timeout=30)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"a b\nit's\n$HOME\n*\n", "stdout")
    expect_eq(r.err, b"", "stderr")


@tap.check("fallback quoting: nasty arguments arrive byte-exact (printf '%s\\0')")
def _():
    args = ["two words", "single'quote", 'double"quote', "$(id)", "`id`", "back\\slash",
            "trailing\\", "new\nline", "tab\there", "", "-n", "*", "?", "~", "a;b&c|d>e<f",
            "!", "#x", "{a,b}", "unicode h\u00e9llo \u2603 \U0001f600", "x=y", "'", "''",
            "last"]
    r = run(ps("printf", "%s\\0", *args), timeout=30)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect_eq(r.out, b"".join(a.encode() + b"\0" for a in args), "argv bytes")


# psusan 0.78 races: when the command's output pipes close before psusan has
# reaped it, it sends exit-status 0 (plink -ssh-connection -proxycmd psusan x
# 'exit 5' exits 0 about a third of the time).  A background `sleep` holding
# the pipes open past the exit lets psusan see the real status first.
HOLD = "sleep 0.3 & "


@tap.check("exit status propagated: sh -c 'exit 5' -> 5, true -> 0")
def _():
    r = run(ps("sh", "-c", HOLD + "exit 5"), timeout=30)
    expect_eq(r.rc, 5, "exit status\n" + r.describe())
    r = run(ps("true"), timeout=30)
    expect_eq(r.rc, 0, "exit status of true\n" + r.describe())


@tap.check("killed by a signal -> 128+N (SIGTERM -> 143)")
def _():
    r = run(ps("sh", "-c", HOLD + "kill -TERM $$"), timeout=30)
    expect_eq(r.rc, 143, "exit status\n" + r.describe())


@tap.check("stdout and stderr kept apart")
def _():
    r = run(ps("sh", "-c", "echo out; echo err >&2; echo out2"), timeout=30)
    expect_eq((r.rc, r.out, r.err), (0, b"out\nout2\n", b"err\n"), "result\n" + r.describe())


@tap.check("stdin reaches the command through psusan (4 KB random through cat)")
def _():
    # Small on purpose: psusan 0.78 itself loses or stalls stdin beyond its
    # 16 KiB window (plink -proxycmd psusan x cat shows the same), so a
    # large round trip would test psusan, not wicket.
    data = os.urandom(4096)
    r = run(ps("cat"), input=data, timeout=30)
    expect_eq(r.rc, 0, "exit status\n" + r.describe())
    expect(r.out == data, "output differs: %d bytes back of %d" % (len(r.out), len(data)))


@tap.check("-t gets a pty from psusan")
def _():
    # No exit status check: with a pty, psusan 0.78 sometimes reports
    # exit-status 0 for a command that exits non-zero (plink sees it too).
    # It also drops pty output still unread when the command exits (plink:
    # 1 in 20 runs), so the command lingers before exiting.
    r = run(ps("sh", "-c", "tty; test -t 0 && echo stdin-is-tty; sleep 0.3", opts=("-t",)),
            timeout=30)
    expect(re.search(rb"^/dev/pts/\d+\r?$", r.out, re.M) and b"stdin-is-tty" in r.out,
           "tty output\n" + r.describe())


@tap.check("wicket exec against psusan --listen over unix/ (exec-argv refused, fallback)")
def _():
    if not shutil.which("psusan"):
        raise Skip("psusan (putty-tools) is not installed")
    tmp = tap.tmpdir()
    path = os.path.join(tmp, "psusan.sock")
    # psusan --listen stops when its stdin closes: keep a pipe open.
    p = spawn(["psusan", "--listen", path], stdin=subprocess.PIPE,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: p.poll() is not None or os.path.exists(path), what="psusan to listen")
    expect(p.poll() is None, "psusan --listen exited with %s" % p.returncode)
    for i in range(3):
        r = run(wicket("exec", "unix/" + path, "--", "printf", "[%s]", "a b", "$x",
                       "it's"), timeout=30)
        expect_eq((r.rc, r.out, r.err), (0, b"[a b][$x][it's]", b""),
                  "run %d\n%s" % (i, r.describe()))
        r = run(wicket("exec", "unix/" + path, "--", "sh", "-c", HOLD + "exit 9"), timeout=30)
        expect_eq(r.rc, 9, "exit status, run %d\n%s" % (i, r.describe()))


if __name__ == "__main__":
    tap.main()
