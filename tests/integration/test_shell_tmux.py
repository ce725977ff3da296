#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`wicket shell` on a real terminal: a detached tmux session.

Checks the remote pty size and its resize, TERM, the login shell, raw mode
(^C goes to the remote), `~.` (exit 255), a remote exit status, and that the
local terminal modes are restored when wicket exits."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (WICKET, Agent, Failure, Skip, expect, expect_eq, run, tap,  # noqa: E402
                    wait_until)

S = {}


def tmux(*args, timeout=15, check=True):
    r = run(["tmux", "-S", S["sock"], "-f", S["conf"]] + list(args), timeout=timeout,
            env=S["env"])
    if check and r.rc != 0:
        raise Failure("tmux %s failed\n%s" % (" ".join(args), r.describe()))
    return r


def setup():
    if not shutil.which("tmux"):
        return
    S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(S["tmp"])
    # A private server: its socket lives (and dies) in our temp dir.
    S["sock"] = os.path.join(S["tmp"], "tmux.sock")
    S["conf"] = os.path.join(S["tmp"], "tmux.conf")
    with open(S["conf"], "w") as f:
        # No status line: the pane is exactly the window size.
        f.write("set -g status off\nset -g history-limit 5000\n")
    env = dict(os.environ)
    env.setdefault("TERM", "xterm")
    env.pop("TMUX", None)
    S["env"] = env
    tap.at_cleanup(lambda: subprocess.run(
        ["tmux", "-S", S["sock"], "kill-server"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=15))


def start_shell(name, cols, rows):
    """A tmux session running `wicket shell`; files land in TMP/NAME.*"""
    base = os.path.join(S["tmp"], name)
    script = base + ".sh"
    q = shlex.quote
    with open(script, "w") as f:
        f.write("""#!/bin/sh
echo "$TERM" > {b}.localterm
stty -a > {b}.stty-before
stty size > {b}.localsize
{w} shell {t}
echo $? > {b}.rc.tmp && mv {b}.rc.tmp {b}.rc
stty -a > {b}.stty-after.tmp && mv {b}.stty-after.tmp {b}.stty-after
exec sleep 600
""".format(b=q(base), w=q(WICKET), t=q(S["agent"].target)))
    tmux("new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows), "sh " + q(script))
    return base


def pane(name):
    return tmux("capture-pane", "-p", "-J", "-t", name, "-S", "-").out.decode("utf-8", "replace")


def wait_pane(name, pattern, timeout=20, what=None):
    rx = re.compile(pattern, re.M)
    last = [""]

    def found():
        last[0] = pane(name)
        return rx.search(last[0])
    try:
        return wait_until(found, timeout=timeout, interval=0.1, what=what or pattern)
    except Failure as e:
        raise Failure("%s\npane now:\n%s" % (e, last[0].rstrip()[-1500:]))


def keys(name, *k):
    tmux("send-keys", "-t", name, *k)


def read_file(path, timeout=20):
    wait_until(lambda: os.path.exists(path), timeout=timeout, what=path)
    with open(path) as f:
        return f.read()


def need_tmux():
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    if "main" not in S:
        raise Skip("the tmux session did not start (see the first check)")


def stty_flags(text):
    """Mode tokens of `stty -a`, without the size and the speed."""
    toks = set(re.split(r"[\s;]+", text))
    return {t for t in toks if t and not re.match(r"^\d+$", t)} - {"rows", "columns", "speed",
                                                                  "baud", "line", "="}


@tap.check("wicket shell starts a remote shell in tmux")
def _():
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    S["main"] = start_shell("main", 100, 37)
    expect_eq(read_file(S["main"] + ".localsize").strip(), "37 100", "local pane size")
    keys("main", "echo wkt''ready", "Enter")
    wait_pane("main", r"^wktready\s*$", what="the remote shell to answer")


@tap.check("remote stty size is the pane size (37 100)")
def _():
    need_tmux()
    keys("main", "stty size", "Enter")
    wait_pane("main", r"^37 100\s*$")


@tap.check("tmux resize-window -x 120 -y 40 reaches the remote (40 120)")
def _():
    need_tmux()
    tmux("resize-window", "-t", "main", "-x", "120", "-y", "40")
    wait_until(lambda: tmux("display", "-p", "-t", "main", "#{pane_width} #{pane_height}")
               .out.strip() == b"120 40", timeout=10, what="tmux to resize the pane")
    # SIGWINCH -> wicket -> window-change -> agent has no ack: ask until seen.
    deadline = time.monotonic() + 15
    while True:
        keys("main", "stty size", "Enter")
        try:
            wait_pane("main", r"^40 120\s*$", timeout=1)
            break
        except Failure:
            if time.monotonic() > deadline:
                raise


@tap.check("remote TERM is tmux's TERM")
def _():
    need_tmux()
    local = read_file(S["main"] + ".localterm").strip()
    expect(local, "the pane has no TERM")
    keys("main", "echo wkt''term=$TERM", "Enter")
    wait_pane("main", r"^wktterm=%s\s*$" % re.escape(local))


@tap.check("the remote shell is a login shell ($0 starts with '-')")
def _():
    need_tmux()
    keys("main", "echo wkt''zero=$0", "Enter")
    wait_pane("main", r"^wktzero=-\S+\s*$")


@tap.check("raw mode: ^C interrupts the remote command, not wicket")
def _():
    need_tmux()
    keys("main", "echo wkt''sleeping; sleep 30; echo wkt''slept", "Enter")
    wait_pane("main", r"^wktsleeping\s*$")
    time.sleep(0.1)
    keys("main", "C-c")
    keys("main", "echo wkt''afterint", "Enter")
    wait_pane("main", r"^wktafterint\s*$", timeout=10)
    expect(not os.path.exists(S["main"] + ".rc"), "wicket exited on ^C")
    expect("wktslept" not in pane("main"), "sleep was not interrupted")


@tap.check("Enter ~. disconnects; wicket exits 255")
def _():
    need_tmux()
    keys("main", "Enter")
    keys("main", "~")
    keys("main", ".")
    rc = read_file(S["main"] + ".rc", timeout=15).strip()
    expect_eq(rc, "255", "wicket's exit status after ~.")


@tap.check("local terminal restored after exit (icanon, echo; same modes as before)")
def _():
    need_tmux()
    after = read_file(S["main"] + ".stty-after", timeout=15)
    before = read_file(S["main"] + ".stty-before")
    fa = stty_flags(after)
    for f in ("icanon", "echo", "isig", "icrnl", "opost"):
        expect(f in fa and "-" + f not in fa, "%s is not on after exit:\n%s" % (f, after))
    fb = stty_flags(before)
    expect_eq(sorted(fa ^ fb), [], "terminal modes that differ from before wicket ran")


@tap.check("remote 'exit 3' ends wicket shell with status 3, terminal restored")
def _():
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    b = start_shell("second", 90, 30)
    keys("second", "echo wkt''ready", "Enter")
    wait_pane("second", r"^wktready\s*$", what="the remote shell to answer")
    keys("second", "stty size", "Enter")
    wait_pane("second", r"^30 90\s*$")
    keys("second", "exit 3", "Enter")
    expect_eq(read_file(b + ".rc", timeout=15).strip(), "3", "wicket's exit status")
    after = stty_flags(read_file(b + ".stty-after", timeout=15))
    expect_eq(sorted(after ^ stty_flags(read_file(b + ".stty-before"))), [],
              "terminal modes that differ from before")


@tap.check("agent listener still alive")
def _():
    if "agent" not in S:
        raise Skip("tmux is not installed")
    expect(S["agent"].alive(), "wicketd exited:\n" + S["agent"].log_text())
    r = run([WICKET, "exec", S["agent"].target, "--", "echo", "alive"], timeout=20)
    expect_eq((r.rc, r.out), (0, b"alive\n"), "echo alive\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
