# SPDX-License-Identifier: MIT
"""Hosts that give up (issue 15), for the VM and libvirt suites: quiet
processes killed by their timeouts or by the test, a host that keeps
streaming until it dies mid-packet, and how long after the port was free
the next host got an answer."""

import os
import signal
import subprocess
import threading
import time

from taplib import Failure, run


def spawn_quiet(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def reap(p):
    """Kill (if still running) and wait for a spawn_quiet() process."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    p.wait()
    p.stdout.close()
    p.stderr.close()


def feed_forever(p):
    """Write to p's stdin until it is gone (a thread): a host streaming data."""
    chunk = bytes(range(256)) * 64

    def pump():
        try:
            while True:
                p.stdin.write(chunk)
                p.stdin.flush()
        except (OSError, ValueError):
            pass
    threading.Thread(target=pump, daemon=True).start()


def answered_after(exec_argv, t_free, word, log):
    """EXEC_ARGV (a `wicket exec ... TARGET --`) + echo WORD, retried until it
    answers (at most 20 s); the seconds from t_free (the port became free)
    to the answer."""
    tries = []
    while True:
        left = t_free + 20 - time.monotonic()
        if left <= 0:
            raise Failure("no session within 20 s of the port being free:\n%s\n%s"
                          % ("\n".join(tries[-3:]), log()))
        try:
            r = run(exec_argv + ["echo", word], timeout=max(left, 1))
        except Failure as e:
            tries.append(str(e))
            continue
        if (r.rc, r.out) == (0, word.encode() + b"\n"):
            return time.monotonic() - t_free
        tries.append(r.describe())
        time.sleep(0.2)
