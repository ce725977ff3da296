#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PuTTY's plink -ssh-connection as the client of wicketd.

Both ways plink reaches a bare ssh-connection server: a proxy command
(`-proxycmd "wicketd --stdio" x`) and a Unix socket given as the host name
(`wicketd --listen unix/PATH`)."""

import os
import re
import shlex
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import Agent, Failure, Skip, WICKETD, expect, expect_eq, run, show, tap  # noqa: E402

S = {}


def setup():
    S["tmp"] = tap.tmpdir()
    if shutil.which("plink"):
        S["agent"] = Agent(S["tmp"])


def plink(mode, *args):
    """plink argv reaching wicketd in @mode, then the remote command words."""
    if not shutil.which("plink"):
        raise Skip("plink (putty-tools) is not installed")
    base = ["plink", "-ssh-connection", "-batch"]
    if mode == "stdio":
        # The proxy command goes through a shell: quote the agent's path.
        base += ["-proxycmd", shlex.quote(WICKETD) + " --stdio", "x"]
    else:
        base += [S["agent"].path]
    return base + list(args)


MODES = (("stdio", "-proxycmd 'wicketd --stdio'"), ("socket", "unix socket as host"))


def add_checks(mode, label):
    @tap.check("%s: -batch exec, stdout and stderr apart, exit 0" % label)
    def _():
        r = run(plink(mode, "printf 'out 1\\n'; printf 'err 1\\n' >&2; printf 'out 2'"),
                timeout=30)
        expect_eq(r.rc, 0, "exit status\n" + r.describe())
        expect_eq(r.out, b"out 1\nout 2", "stdout")
        expect_eq(r.err, b"err 1\n", "stderr")

    @tap.check("%s: exit status 7" % label)
    def _():
        r = run(plink(mode, "echo seven; exit 7"), timeout=30)
        expect_eq((r.rc, r.out), (7, b"seven\n"), "exit status and output\n" + r.describe())

    @tap.check("%s: 10 MB random stdin -> cat -> stdout byte-exact, with EOF" % label)
    def _():
        data = os.urandom(10 * 1024 * 1024 + 777)
        r = run(plink(mode, "cat"), input=data, timeout=120)
        expect_eq(r.rc, 0, "exit status\n" + r.describe())
        if r.out != data:
            n = min(len(r.out), len(data))
            i = next((k for k in range(n) if r.out[k] != data[k]), n)
            raise Failure("output differs: %d bytes back of %d, first difference at %d"
                          % (len(r.out), len(data), i))

    @tap.check("%s: a command killed by SIGKILL is not reported as success" % label)
    def _():
        r = run(plink(mode, "echo before; kill -9 $$; echo after"), timeout=30)
        expect(r.rc is not None and r.rc != 0, "exit status should be nonzero\n" + r.describe())
        expect_eq(r.out, b"before\n", "stdout")

    @tap.check("%s: -t gets a pty (tty prints /dev/pts/N, test -t 0)" % label)
    def _():
        r = run(plink(mode, "-t", "tty; test -t 0 && echo stdin-is-tty; exit 3"), timeout=30)
        expect_eq(r.rc, 3, "exit status\n" + r.describe())
        expect(re.search(rb"^/dev/pts/\d+\r?$", r.out, re.M), "tty output\n" + r.describe())
        expect(b"stdin-is-tty" in r.out, "test -t 0 failed\n" + r.describe())

    @tap.check("%s: without -t there is no pty" % label)
    def _():
        r = run(plink(mode, "-T", "tty; test -t 0 && echo stdin-is-tty; exit 0"), timeout=30)
        expect_eq(r.rc, 0, "exit status\n" + r.describe())
        expect(b"/dev/pts" not in r.out and b"stdin-is-tty" not in r.out,
               "pty without -t: stdout %s" % show(r.out))
        expect(b"not a tty" in r.out, "tty output\n" + r.describe())


for m, lbl in MODES:
    add_checks(m, lbl)


@tap.check("listener still alive and serving after all plink sessions")
def _():
    if "agent" not in S:
        raise Skip("plink (putty-tools) is not installed")
    expect(S["agent"].alive(), "wicketd exited:\n" + S["agent"].log_text())
    r = run(plink("socket", "echo alive"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"alive\n"), "echo alive\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
