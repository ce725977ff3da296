#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicketd --config: a session policy per listen address, real agent and host tool."""

import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (WICKETD, Failure, Skip, expect, expect_eq, run, socket_accepts,  # noqa: E402
                    spawn, tap, wait_until, wicket)

S = {}


def write_conf(name, text, mode=0o600):
    path = os.path.join(S["tmp"], name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def start(conf, *extra):
    """wicketd --config CONF; waits for every [listen unix/...] socket."""
    log = open(os.path.join(S["tmp"], os.path.basename(conf) + ".log"), "ab")
    tap.at_cleanup(log.close)
    p = spawn([WICKETD, "--config", conf] + list(extra), stdin=open(os.devnull), stdout=log,
              stderr=log)
    socks = [ln.split("unix/", 1)[1].rstrip("]\n") for ln in open(conf)
             if ln.strip().startswith("[listen unix/")]

    def ready():
        if p.poll() is not None:
            raise Failure("wicketd --config exited with %s" % p.returncode)
        return all(os.path.exists(s) and socket_accepts(s) for s in socks)
    wait_until(ready, timeout=10, what="wicketd's listeners")
    return p


def setup():
    S["tmp"] = tap.tmpdir()
    S["a"] = os.path.join(S["tmp"], "a.sock")
    S["b"] = os.path.join(S["tmp"], "b.sock")
    user = "nobody" if os.geteuid() == 0 else None
    S["user"] = user
    S["conf"] = write_conf("two.conf", "\n".join([
        "# each listener its own policy",
        "handshake-timeout = 20",
        "[listen unix/%s]" % S["a"],
        "deny exec",
        "[listen unix/%s]" % S["b"],
        "sftp-read-only",
        "user = %s" % user if user else "# (not root: no user switch)",
        "",
    ]))
    S["agent"] = start(S["conf"])


@tap.check("[listen A] deny exec: exec on A is refused, naming the target")
def _():
    r = run(wicket("exec", "unix/" + S["a"], "--", "true"), timeout=30)
    expect(r.rc != 0, "exec on A succeeded\n" + r.describe())
    expect(b"refused" in r.err, "stderr says it was refused\n" + r.describe())


@tap.check("[listen B]: exec works there, in the same agent")
def _():
    r = run(wicket("exec", "unix/" + S["b"], "--", "echo", "hello"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"hello\n"), "exec on B\n" + r.describe())


@tap.check("[listen B] user = nobody: B's sessions run as nobody, A's listener is not affected")
def _():
    if not S["user"]:
        raise Skip("not root: cannot switch users")
    r = run(wicket("exec", "unix/" + S["b"], "--", "id", "-un"), timeout=30)
    expect_eq((r.rc, r.out), (0, b"nobody\n"), "id -un on B\n" + r.describe())
    # A denies exec, but its sftp subsystem runs as the agent's own user.
    r = run(wicket("cp", "unix/%s:/proc/self/status" % S["a"], os.path.join(S["tmp"], "st")),
            timeout=30)
    expect_eq(r.rc, 0, "cp from A\n" + r.describe())
    uid = [ln for ln in open(os.path.join(S["tmp"], "st")) if ln.startswith("Uid:")][0]
    expect_eq(uid.split()[1], str(os.geteuid()), "A's sftp server uid")


@tap.check("[listen B] sftp-read-only: an upload to B is refused as read-only, to A it works")
def _():
    src = os.path.join(S["tmp"], "up.txt")
    with open(src, "w") as f:
        f.write("data\n")
    # A directory anyone may write to, so only the read-only policy can refuse.
    pub = tempfile.mkdtemp(prefix="wicket-cfg-", dir="/tmp")
    tap.at_cleanup(lambda: shutil.rmtree(pub, ignore_errors=True))
    os.chmod(pub, 0o1777)
    dst = os.path.join(pub, "up-b.txt")
    r = run(wicket("cp", src, "unix/%s:%s" % (S["b"], dst)), timeout=30)
    expect(r.rc != 0 and not os.path.exists(dst), "upload to B\n" + r.describe())
    expect(b"read-only session" in r.err, "the reason is given\n" + r.describe())
    dst = os.path.join(pub, "up-a.txt")
    r = run(wicket("cp", src, "unix/%s:%s" % (S["a"], dst)), timeout=30)
    expect(r.rc == 0 and os.path.exists(dst), "upload to A\n" + r.describe())


@tap.check("top-level keys apply to every listener; --listen next to --config uses them too")
def _():
    c = os.path.join(S["tmp"], "c.sock")
    d = os.path.join(S["tmp"], "d.sock")
    conf = write_conf("top.conf", "deny = exec\n[listen unix/%s]\n" % c)
    p = start(conf, "--listen", "unix/" + d)
    wait_until(lambda: os.path.exists(d) and socket_accepts(d), timeout=10, what=d)
    for sock in (c, d):
        r = run(wicket("exec", "unix/" + sock, "--", "true"), timeout=30)
        expect(r.rc != 0 and b"refused" in r.err, "exec on %s\n%s" % (sock, r.describe()))
    p.terminate()
    p.wait(10)


def config_error(text, want, mode=0o600, extra=()):
    conf = write_conf("bad.conf", text, mode)
    r = run([WICKETD, "--config", conf] + list(extra), timeout=10)
    expect_eq(r.rc, 2, "exit status\n" + r.describe())
    expect(want.encode() in r.err, "stderr names %r\n%s" % (want, r.describe()))


@tap.check("config errors exit 2 naming file and line: unknown key, bad value, missing value")
def _():
    config_error("[listen unix/%s/x]\n\nfrobnicate 1\n" % S["tmp"],
                 "bad.conf:3: unknown key 'frobnicate'")
    config_error("max-channels 0\n", "bad.conf:1: --max-channels: '0' is not 1..65536")
    config_error("[listen unix/%s/x]\ndeny\n" % S["tmp"], "bad.conf:2: 'deny' needs a value")
    config_error("[listen unix/%s/x]\nuser no-such-user-xyz\n" % S["tmp"],
                 "bad.conf:1: [listen unix/%s/x]: --user no-such-user-xyz" % S["tmp"])


@tap.check("a config file writable by others is refused; a missing one is named")
def _():
    config_error("[listen unix/%s/x]\n" % S["tmp"], "writable by group or others", mode=0o666)
    r = run([WICKETD, "--config", os.path.join(S["tmp"], "missing.conf")], timeout=10)
    expect(r.rc == 2 and b"missing.conf: No such file" in r.err, r.describe())


@tap.check("--stdio with [listen] sections is a usage error")
def _():
    config_error("[listen unix/%s/x]\n" % S["tmp"], "give exactly one of --stdio",
                 extra=["--stdio"])


@tap.check("the agent is still serving after all of the above")
def _():
    expect(S["agent"].poll() is None, "wicketd --config exited")
    r = run(wicket("exec", "unix/" + S["b"], "--", "true"), timeout=30)
    expect_eq(r.rc, 0, r.describe())


if __name__ == "__main__":
    tap.main(setup)
