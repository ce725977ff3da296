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

from taplib import Failure, read_until, run, show


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


def impatient_behind_holder(exec_argv, n, log, streaming=False, spacing=0.0):
    """One host (EXEC_ARGV, a `wicket exec ... TARGET --`) holds the port:
    sleep 60, or with @streaming cat from a stdin kept full, so that it dies
    in the middle of a packet.  Then @n `timeout 5` hosts (@spacing s apart)
    try the same port and end, by their timeouts or otherwise; then the
    holder is killed with SIGKILL (if it still runs).  Returns the queued
    hosts' exit statuses (sorted, each once) and the time of that kill."""
    cmd = "echo held; exec cat >/dev/null" if streaming else "echo held; exec sleep 60"
    holder = subprocess.Popen(exec_argv + ["sh", "-c", cmd],
                              stdin=subprocess.PIPE if streaming else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    if streaming:
        feed_forever(holder)
    queued = []
    try:
        try:
            read_until(holder.stdout, b"held\n", timeout=60)
        except Failure as e:
            holder.kill()
            raise Failure("the holding session did not start: %s\nstderr %s\n%s"
                          % (e, show(holder.stderr.read()), log()))
        for _ in range(n):
            queued.append(spawn_quiet(["timeout", "5"] + exec_argv + ["echo", "x"]))
            if spacing:
                time.sleep(spacing)
        deadline = time.monotonic() + 60
        for q in queued:
            try:
                q.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                raise Failure("a queued client outlived its 5 s timeout by a minute")
        rcs = sorted(set(q.returncode for q in queued))
    finally:
        for q in queued:
            reap(q)
        try:
            os.killpg(holder.pid, signal.SIGKILL)
        except OSError:
            pass
        t_free = time.monotonic()
        reap(holder)
        if holder.stdin:
            try:
                holder.stdin.close()
            except OSError:
                pass
    return rcs, t_free
