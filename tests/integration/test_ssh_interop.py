#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 14 with real OpenSSH clients against `wicket proxy --ssh` and
`wicket serve` in front of a real wicketd: SSH_CONNECTION / SSH_CLIENT in
the guest (and that a client cannot forge them), authorized_keys options
with sshd's semantics, and agent forwarding (`ssh -A`, a real ssh-agent)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (Agent, Failure, Skip, expect, expect_eq, need_tool,  # noqa: E402
                    run, spawn, tap, wait_until, wicket)

SYS_PY = "/usr/bin/python3"  # Debian's, where python3-asyncssh lives
S = {}


def setup():
    for t in ("ssh", "ssh-keygen"):
        need_tool(t)
    tmp = S["tmp"] = tap.tmpdir("wicket-sshint-")
    os.chmod(tmp, 0o755)
    # --accept-env '*': even an agent that takes every variable must not
    # take SSH_CONNECTION, SSH_CLIENT or SSH_AUTH_SOCK from a client.
    S["agent"] = Agent(tmp, extra=["--accept-env", "*"])
    S["env"] = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    for t in ("a", "b", "host"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "key-" + t,
             "-f", os.path.join(tmp, "id_" + t)])
    S["pub"] = {t: open(os.path.join(tmp, "id_%s.pub" % t)).read().strip() for t in ("a", "b")}
    S["ak"] = os.path.join(tmp, "authorized_keys")
    write_ak("%s\n" % S["pub"]["a"])


def write_ak(text):
    with open(S["ak"], "w") as f:
        f.write(text)
    os.chmod(S["ak"], 0o600)


def T():
    return S["agent"].target


def runp(argv, **kw):
    kw.setdefault("env", S["env"])
    kw.setdefault("cwd", S["tmp"])
    kw.setdefault("timeout", 60)
    return run(argv, **kw)


def proxy_ssh(*args, opts=()):
    return ["ssh", "-F", "/dev/null", "-o", "ProxyCommand=%s proxy --ssh %s"
            % (wicket()[0], T()), "-o", "UserKnownHostsFile=" + S["tmp"] + "/known_hosts",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes",
            "-o", "LogLevel=error"] + list(opts) + ["g"] + list(args)


def start_serve(*extra):
    tmp = S["tmp"]
    n = len(S.setdefault("serves", []))
    log = open(os.path.join(tmp, "serve%d.log" % n), "w+b")
    p = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", tmp + "/id_host",
                     "--authorized-keys", S["ak"], *extra, T()),
              stdin=subprocess.DEVNULL, stderr=log, env=S["env"])
    S["serves"].append(p)

    def port():
        log.seek(0)
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read())
        if p.poll() is not None:
            raise Failure("wicket serve exited:\n" + open(log.name, "rb").read().decode())
        return int(m.group(1)) if m else None
    return wait_until(port, what="wicket serve to listen"), log


def serve_default():
    if "serve" not in S:
        S["serve"] = start_serve()
    return S["serve"]


def serve_ssh(port, *args, key="a", opts=()):
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=error", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-i", os.path.join(S["tmp"], "id_" + key)] + list(opts) + ["127.0.0.1"] + list(args)


ECHO_CONN = 'echo "[$SSH_CONNECTION] [$SSH_CLIENT]"'


# ---------------------------------------------------------------- SSH_CONNECTION

@tap.check("proxy --ssh: SSH_CONNECTION/SSH_CLIENT are 'UNKNOWN 65535 ...' as for sshd -i; "
           "a client's SetEnv cannot replace them")
def check_conn_proxy():
    r = runp(proxy_ssh(ECHO_CONN))
    expect_eq((r.rc, r.out), (0, b"[UNKNOWN 65535 UNKNOWN 65535] [UNKNOWN 65535 65535]\n"),
              "ssh 'echo $SSH_CONNECTION'\n" + r.describe())
    r = runp(proxy_ssh(ECHO_CONN + '" [$FOO]"', opts=[
        "-o", "SetEnv=SSH_CONNECTION=evil SSH_CLIENT=evil FOO=bar"]))
    expect_eq((r.rc, r.out), (0, b"[UNKNOWN 65535 UNKNOWN 65535] [UNKNOWN 65535 65535] [bar]\n"),
              "SetEnv SSH_CONNECTION (FOO=bar is taken: the agent accepts '*')\n" + r.describe())
    # A pty session (shell path) gets them too.
    r = runp(proxy_ssh("-tt", "echo $SSH_CONNECTION"))
    expect(r.rc == 0 and b"UNKNOWN 65535 UNKNOWN 65535" in r.out, "with a pty\n" + r.describe())


@tap.check("serve: SSH_CONNECTION is 'CLIENT CPORT SERVER SPORT', SSH_CLIENT 'CLIENT CPORT SPORT'")
def check_conn_serve():
    port, _ = serve_default()
    r = runp(serve_ssh(port, ECHO_CONN))
    m = re.match(rb"\[127\.0\.0\.1 (\d+) 127\.0\.0\.1 (\d+)\] \[127\.0\.0\.1 (\d+) (\d+)\]\n$", r.out)
    expect(r.rc == 0 and m, "ssh 'echo $SSH_CONNECTION'\n" + r.describe())
    cport, sport, cport2, sport2 = (int(x) for x in m.groups())
    expect_eq((sport, sport2, cport2), (port, port, cport), "ports")
    expect(0 < cport < 65536 and cport != port, "client port %d" % cport)
    r2 = runp(serve_ssh(port, ECHO_CONN, opts=["-o", "SetEnv=SSH_CONNECTION=evil SSH_CLIENT=evil"]))
    expect(r2.rc == 0 and re.match(rb"\[127\.0\.0\.1 \d+ 127\.0\.0\.1 %d\]" % port, r2.out),
           "SetEnv through serve\n" + r2.describe())


@tap.check("a client's own ssh-connection@wicket request is refused by the wrapper "
           "(python3-asyncssh sends one before exec)")
def check_conn_forged():
    if run([SYS_PY, "-W", "ignore", "-c", "import asyncssh"]).rc != 0:
        raise Skip("no python3-asyncssh in " + SYS_PY)
    port, _ = serve_default()
    code = r"""
import asyncio, asyncssh, sys
from asyncssh.channel import SSHClientChannel
from asyncssh.packet import String, UInt32
orig = SSHClientChannel._send_request
answer = []
def forged(self, request, *args, want_reply=False):
    if request == b'exec':
        # want-reply: the guest would answer SUCCESS if the request reached it.
        w = self._loop.create_future()
        # before the waiter exec has just queued: this reply comes first
        self._request_waiters.insert(len(self._request_waiters) - 1, w)
        answer.append(w)
        orig(self, b'ssh-connection@wicket', String('6.6.6.6'), UInt32(1), String('6.6.6.6'),
             UInt32(2), want_reply=True)
    return orig(self, request, *args, want_reply=want_reply)
SSHClientChannel._send_request = forged
async def main():
    async with asyncssh.connect('127.0.0.1', %d, username='root', known_hosts=None,
                                client_keys=['%s/id_a'], agent_path=None) as c:
        r = await c.run('echo "[$SSH_CONNECTION]"', check=False)
        sys.stdout.write('reply %%s %%s' %% (answer[0].result(), r.stdout))
asyncio.run(main())
""" % (port, S["tmp"])
    r = runp([SYS_PY, "-W", "ignore", "-c", code], timeout=60)
    expect(r.rc == 0 and re.match(rb"reply False \[127\.0\.0\.1 \d+ 127\.0\.0\.1 %d\]\n$" % port,
                                  r.out), "forged request reached the guest\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
