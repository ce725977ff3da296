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
import struct
import subprocess
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (echo_server as tap_echo_server, Agent, Failure, RawConn, Reader, Skip,  # noqa: E402
                    expect, expect_eq, need_tool, run, serve_port, show, spawn, sshstr, tap,
                    u32, wait_until, wicket)

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


def start_serve(*extra, target=None):
    tmp = S["tmp"]
    n = len(S.setdefault("serves", []))
    log = open(os.path.join(tmp, "serve%d.log" % n), "w+b")
    p = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", tmp + "/id_host",
                     "--authorized-keys", S["ak"], *extra, target or T()),
              stdin=subprocess.DEVNULL, stderr=log, env=S["env"])
    S["serves"].append(p)

    return serve_port(p, log), log


def serve_default():
    if "serve" not in S:
        S["serve"] = start_serve()
    return S["serve"]


def serve_ssh(port, *args, key="a", opts=()):
    # @opts first: ssh takes the first value of an option.
    return ["ssh"] + list(opts) + ["-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=error", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-i", os.path.join(S["tmp"], "id_" + key), "127.0.0.1"] + list(args)


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



# ---------------------------------------------------------------- authorized_keys options

def echo_server():
    """One TCP echo server for all checks (taplib.echo_server)."""
    if "echo" not in S:
        S["echo"] = tap_echo_server()
    return S["echo"]


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def serve_log(log):
    log.seek(0)
    return log.read().decode("utf-8", "replace")


def with_ak(text, *serve_args):
    """authorized_keys := @text (key a as @0, key b as @1), then a serve for it
    (a fresh one when @serve_args are given)."""
    write_ak(text.replace("@0", S["pub"]["a"]).replace("@1", S["pub"]["b"]))
    return start_serve(*serve_args) if serve_args else serve_default()


@tap.check("expiry-time: a future time logs in, a past one is refused and logged (Z and local)")
def check_expiry():
    port, log = with_ak('expiry-time="20000101Z" @0 old\n'
                        'expiry-time="209901011200" @1 future\n')
    r = runp(serve_ssh(port, "echo", "in", key="a"))
    expect(r.rc == 255 and b"Permission denied" in r.err, "expired key a\n" + r.describe())
    expect("expired at 2000-01-01 00:00:00 UTC" in serve_log(log), "no expiry in the log:\n"
           + serve_log(log)[-1500:])
    r = runp(serve_ssh(port, "echo", "in", key="b"))
    expect_eq((r.rc, r.out), (0, b"in\n"), "unexpired key b\n" + r.describe())
    # The same key on a later line without expiry-time: that line counts, as in sshd.
    port, _ = with_ak('expiry-time="20000101Z" @0 old\nno-pty @0 new\n')
    r = runp(serve_ssh(port, "echo", "again"))
    expect_eq((r.rc, r.out), (0, b"again\n"), "a later line of the same key\n" + r.describe())


@tap.check("environment=: applied only with --permit-user-environment (yes / patterns), "
           "the first of a name, never SSH_CONNECTION; the guest's --accept-env does not filter it")
def check_environment():
    text = ('environment="WK_A=one",environment="WK_B=two words",environment="WK_A=dup",'
            'environment="SSH_CONNECTION=forged" @0\n')
    cmd = 'echo "[$WK_A] [$WK_B] [${SSH_CONNECTION%% *}]"'
    port, _ = with_ak(text)
    r = runp(serve_ssh(port, cmd))
    expect_eq((r.rc, r.out), (0, b"[] [] [127.0.0.1]\n"), "without the option\n" + r.describe())
    port, log = with_ak(text, "--permit-user-environment", "yes")
    r = runp(serve_ssh(port, cmd))
    expect_eq((r.rc, r.out), (0, b"[one] [two words] [127.0.0.1]\n"),
              "--permit-user-environment yes\n" + r.describe())
    # The key's word wins over the client's own SendEnv for the same name.
    r = runp(serve_ssh(port, cmd, opts=["-o", "SetEnv=WK_A=client"]))
    expect_eq(r.out, b"[one] [two words] [127.0.0.1]\n", "key env over SetEnv\n" + r.describe())
    port, _ = with_ak(text, "--permit-user-environment", "WK_B,!WK_A")
    r = runp(serve_ssh(port, cmd))
    expect_eq((r.rc, r.out), (0, b"[] [two words] [127.0.0.1]\n"), "patterns\n" + r.describe())
    # A guest agent with its default --accept-env (LANG, LC_*, ...) still takes them.
    plain = Agent(S["tmp"], name="plain.sock")
    port, _ = start_serve("--permit-user-environment", "yes", target=plain.target)
    r = runp(serve_ssh(port, cmd, opts=["-o", "SetEnv=WK_B=client"]))
    expect_eq((r.rc, r.out), (0, b"[one] [two words] [127.0.0.1]\n"),
              "default --accept-env agent\n" + r.describe())


def ssh_w(port, host, hport, key="a", data=b"ping\n"):
    """ssh -W HOST:PORT: one direct-tcpip channel, stdin to it."""
    return runp(serve_ssh(port, key=key, opts=["-o", "LogLevel=info", "-W", "%s:%d" % (host, hport)]),
                input=data)


@tap.check("permitopen=: -W/-L to a listed host:port works, others refused "
           "('administratively prohibited'), hosts literal, port *")
def check_permitopen():
    ep = echo_server()
    port, log = with_ak('permitopen="127.0.0.1:%d",permitopen="localhost:*" @0\n'
                        'restrict,port-forwarding,permitopen="127.0.0.1:1" @1\n' % ep)
    r = ssh_w(port, "127.0.0.1", ep)
    expect_eq((r.rc, r.out), (0, b"ping\n"), "-W to the listed one\n" + r.describe())
    r = ssh_w(port, "localhost", ep)
    expect_eq((r.rc, r.out), (0, b"ping\n"), "-W localhost:* (any port)\n" + r.describe())
    other = free_port()
    r = ssh_w(port, "127.0.0.1", other)
    expect(r.rc == 255 and b"administratively prohibited" in r.err and not r.out,
           "-W to an unlisted port\n" + r.describe())
    expect("refused direct-tcpip to 127.0.0.1:%d" % other in serve_log(log), "not logged")
    r = ssh_w(port, "127.0.0.2", ep)
    expect(r.rc == 255 and b"administratively prohibited" in r.err, "other host\n" + r.describe())
    # restrict,port-forwarding re-enables forwarding, still under permitopen=.
    r = ssh_w(port, "127.0.0.1", ep, key="b")
    expect(r.rc == 255 and b"administratively prohibited" in r.err, "key b\n" + r.describe())
    # -L: the listener is the client's; its channel is refused the same way.
    lp = free_port()
    p = spawn(serve_ssh(port, opts=["-N", "-o", "ExitOnForwardFailure=yes",
                                    "-L", "127.0.0.1:%d:127.0.0.1:%d" % (lp, ep)]),
              stdin=subprocess.DEVNULL, env=S["env"])

    def talk():
        try:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                c.sendall(b"via -L")
                c.shutdown(socket.SHUT_WR)
                return c.recv(100) or None
        except OSError:
            return None
    expect_eq(wait_until(talk, timeout=20, what="-L to echo"), b"via -L", "-L echo")
    p.kill()


@tap.check("permitlisten=: ssh -R on a listed port works (a connection comes back), others "
           "fail ('remote port forwarding failed'); port 0 only under *")
def check_permitlisten():
    ep = echo_server()
    rp, rp2 = free_port(), free_port()
    port, log = with_ak('permitlisten="%d",permitlisten="localhost:%d" @0\n' % (rp, rp2))
    probe = ("python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',%d));"
             "s.sendall(b'back');s.shutdown(1);print(s.recv(9).decode())\"")
    for lp in (rp, rp2):
        r = runp(serve_ssh(port, probe % lp, opts=["-o", "ExitOnForwardFailure=yes",
                                                   "-R", "%d:127.0.0.1:%d" % (lp, ep)]))
        expect_eq((r.rc, r.out), (0, b"back\n"), "-R %d\n%s" % (lp, r.describe()))
    other = free_port()
    r = runp(serve_ssh(port, "true", opts=["-o", "ExitOnForwardFailure=yes",
                                           "-R", "%d:127.0.0.1:%d" % (other, ep)]))
    expect(r.rc == 255 and b"remote port forwarding failed" in r.err, "-R unlisted\n" + r.describe())
    expect("refused tcpip-forward localhost:%d" % other in serve_log(log), "not logged:\n"
           + serve_log(log)[-1000:])
    # An explicit bind address other than localhost does not match localhost:PORT.
    r = runp(serve_ssh(port, "true", opts=["-o", "ExitOnForwardFailure=yes",
                                           "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rp2, ep)]))
    expect(r.rc == 255 and b"remote port forwarding failed" in r.err,
           "127.0.0.1 is not localhost\n" + r.describe())
    r = runp(serve_ssh(port, "true", opts=["-o", "ExitOnForwardFailure=yes",
                                           "-R", "0:127.0.0.1:%d" % ep]))
    expect(r.rc == 255, "-R 0 (dynamic port) without permitlisten=\"*\"\n" + r.describe())


@tap.check("restrict / pty / port-forwarding / no-user-rc / principals: sshd's semantics")
def check_restrict_family():
    ep = echo_server()
    port, _ = with_ak('restrict,pty,no-user-rc,principals="alice" @0\nrestrict @1\n')
    r = runp(serve_ssh(port, "-tt", "tty >/dev/null && echo tty || echo notty", key="a"))
    expect(r.rc == 0 and b"tty\r\n" in r.out and b"notty" not in r.out, "restrict,pty\n" + r.describe())
    # -tt makes a refused pty fatal in ssh, against sshd as here.
    r = runp(serve_ssh(port, "-tt", "tty", key="b", opts=["-o", "LogLevel=info"]))
    expect(r.rc == 255 and b"PTY allocation request failed" in r.err, "restrict: no pty\n" + r.describe())
    r = runp(serve_ssh(port, "tty >/dev/null && echo tty || echo notty", key="b"))
    expect_eq((r.rc, r.out), (0, b"notty\n"), "restrict, no -t\n" + r.describe())
    r = ssh_w(port, "127.0.0.1", ep, key="a")
    expect(r.rc == 255 and b"administratively prohibited" in r.err, "restrict: no -W\n" + r.describe())


@tap.check("unknown and unsupported options refuse the line, with the reason in the log")
def check_unknown_options():
    port, log = with_ak('bogus-option @0\ncert-authority @1\n')
    for k in ("a", "b"):
        r = runp(serve_ssh(port, "true", key=k))
        expect(r.rc == 255 and b"Permission denied" in r.err, "key %s\n%s" % (k, r.describe()))
    t = serve_log(log)
    expect('unsupported option "bogus-option"; line ignored' in t, "no reason logged:\n" + t[-1500:])
    expect("cert-authority: certificates are not supported" in t, "no cert-authority reason")



# ---------------------------------------------------------------- agent forwarding

def ssh_agent():
    """A real ssh-agent holding key a; its environment."""
    if "sa_env" in S:
        return S["sa_env"]
    need_tool("ssh-agent")
    need_tool("ssh-add")
    sock = os.path.join(S["tmp"], "ssh-agent.sock")
    spawn(["ssh-agent", "-D", "-a", sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_until(lambda: os.path.exists(sock), what="ssh-agent")
    env = dict(S["env"], SSH_AUTH_SOCK=sock)
    r = run(["ssh-add", os.path.join(S["tmp"], "id_a")], env=env)
    if r.rc != 0:
        raise Failure("ssh-add\n" + r.describe())
    S["sa_env"] = env
    return env


def fingerprint(key):
    r = run(["ssh-keygen", "-l", "-f", os.path.join(S["tmp"], "id_%s.pub" % key)])
    return r.out.split()[1]


# Inside the guest: the agent's keys, a signature made through it and checked.
# Only the public key is in $D: ssh-keygen -Y sign can sign only through the agent.
AGENT_PROBE = ('echo "sock=$SSH_AUTH_SOCK"; ssh-add -l; printf data > "$D/data.$$" && '
               'ssh-keygen -q -Y sign -n wicket -f "$D/key.pub" "$D/data.$$" && '
               'ssh-keygen -q -Y check-novalidate -n wicket -f "$D/key.pub" -s "$D/data.$$.sig" '
               '< "$D/data.$$" && echo signed-ok')


def agent_probe():
    d = os.path.join(S["tmp"], "pubonly")
    if not os.path.isdir(d):
        os.makedirs(d)
        shutil.copy(os.path.join(S["tmp"], "id_a.pub"), os.path.join(d, "key.pub"))
    return "D=%s; %s" % (d, AGENT_PROBE)


def agent_dirs():
    return sorted(d for d in os.listdir("/tmp") if d.startswith("wicket-agent-"))


def expect_agent_works(r, what):
    out = r.out.decode("utf-8", "replace")
    # A login shell on a pty: its terminal escapes and carriage returns go.
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r", "")
    m = re.search(r"^sock=(/tmp/wicket-agent-[^/]+/agent\.sock)$", out, re.M)
    expect(r.rc == 0 and m, "%s: no SSH_AUTH_SOCK\n%s" % (what, r.describe()))
    expect(fingerprint("a").decode() in out, "%s: ssh-add -l lacks the key\n%s" % (what, out))
    expect(re.search(r"^signed-ok$", out, re.M),  # not the echo of a shell's input
           "%s: no signature through the agent\n%s" % (what, r.describe()))


@tap.check("ssh -A through proxy --ssh (the mux) and --share no: ssh-add -l lists the key, "
           "a signature through the forwarded agent verifies; the socket is private and removed")
def check_agent_proxy():
    env = ssh_agent()
    before = agent_dirs()
    for share in ("auto", "no"):
        argv = ["ssh", "-A", "-F", "/dev/null", "-o", "ProxyCommand=%s --share %s proxy --ssh %s"
                % (wicket()[0], share, T()), "-o", "UserKnownHostsFile=" + S["tmp"] + "/known_hosts",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o",
                "LogLevel=error", "g",
                agent_probe() + '; d=$(dirname "$SSH_AUTH_SOCK"); stat -c "%a %U %F" "$d" "$SSH_AUTH_SOCK"']
        r = run(argv, env=env, cwd=S["tmp"], timeout=60)
        expect_agent_works(r, "--share " + share)
        out = r.out.decode()
        me = pwd_name()
        expect("700 %s directory" % me in out, "directory mode/owner\n" + out)
        expect(re.search(r"^7[0-7]{2} %s socket$" % me, out, re.M), "socket mode/owner\n" + out)
    wait_until(lambda: agent_dirs() == before, timeout=10, what="agent directories removed")


def pwd_name():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


@tap.check("without -A, or with wicketd --deny forwarding: no SSH_AUTH_SOCK, no socket")
def check_agent_absent():
    env = ssh_agent()
    before = agent_dirs()
    r = runp(proxy_ssh('echo "[$SSH_AUTH_SOCK]"'), env=env)
    expect_eq((r.rc, r.out), (0, b"[]\n"), "no -A\n" + r.describe())
    denied = Agent(S["tmp"], name="nofwd.sock", extra=["--deny", "forwarding"])
    argv = ["ssh", "-A", "-F", "/dev/null", "-o", "ProxyCommand=%s proxy --ssh %s"
            % (wicket()[0], denied.target), "-o", "UserKnownHostsFile=" + S["tmp"] + "/known_hosts",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "g",
            'echo "[$SSH_AUTH_SOCK]"']
    r = run(argv, env=env, cwd=S["tmp"], timeout=60)
    expect(r.rc == 0 and r.out == b"[]\n", "--deny forwarding\n" + r.describe())
    expect_eq(agent_dirs(), before, "no agent directory made")


@tap.check("wicket exec -A and shell -A (the mux and --share no): the guest lists and signs "
           "with the host's agent; without -A, or without SSH_AUTH_SOCK, it has none")
def check_agent_wicket():
    env = ssh_agent()
    before = agent_dirs()
    for share in ("auto", "no"):
        r = run(wicket("--share", share, "exec", "-A", T(), "--", "sh", "-c", agent_probe()),
                env=env, timeout=60)
        expect_agent_works(r, "exec -A --share " + share)
        # shell -A: a login shell reading its commands from our (non-tty) stdin.
        r = run(wicket("--share", share, "shell", "-A", T()), env=env, timeout=60,
                input=(agent_probe() + "\nexit\n").encode())
        expect_agent_works(r, "shell -A --share " + share)
    r = run(wicket("exec", T(), "--", "sh", "-c", 'echo "[$SSH_AUTH_SOCK]"'), env=env)
    expect_eq((r.rc, r.out), (0, b"[]\n"), "exec without -A\n" + r.describe())
    noagent = {k: v for k, v in env.items() if k != "SSH_AUTH_SOCK"}
    r = run(wicket("exec", "-A", T(), "--", "sh", "-c", 'echo "[$SSH_AUTH_SOCK]"'), env=noagent)
    expect_eq((r.rc, r.out), (0, b"[]\n"), "-A without SSH_AUTH_SOCK\n" + r.describe())
    expect(b"SSH_AUTH_SOCK is not set" in r.err, "no warning: %s" % show(r.err))
    wait_until(lambda: agent_dirs() == before, timeout=10, what="agent directories removed")


def fake_agent_opens_agent_channel(conn, answers):
    """A hostile (or merely eager) agent on @conn (a RawConn): it serves the
    host's session only to open an auth-agent@openssh.com channel back to it
    and ask the far end for its identities.  Into @answers: the host's
    answer to that open, the agent-protocol reply if it was confirmed, and
    the session requests the host sent."""
    conn.send_greeting("fake_0")
    conn.read_greeting()
    p = conn.recv_packet()
    expect(p and p[0] == 90, "the host opened no channel: %r" % p)
    r = Reader(p[1:])
    expect_eq(r.str(), b"session", "the host's channel type")
    host_id = r.u32()
    conn.send_packet(bytes([91]) + u32(host_id) + u32(0) + u32(1 << 20) + u32(32768))
    answers["requests"] = []
    while True:
        p = conn.recv_packet()
        expect(p is not None, "EOF before the host's command")
        if p[0] != 98:
            continue
        r = Reader(p[1:])
        r.u32()
        name = r.str()
        answers["requests"].append(name.decode())
        if r.bool():
            conn.send_packet(bytes([99]) + u32(host_id))
        if name == b"exec-argv@wicket":
            break
    conn.send_packet(bytes([90]) + sshstr(b"auth-agent@openssh.com") + u32(7) + u32(1 << 20) +
                     u32(32768))
    while True:
        p = conn.recv_packet()
        expect(p is not None, "EOF before the host answered the auth-agent open")
        if p[0] in (91, 92) and Reader(p[1:]).u32() == 7:
            break
    answers["open"] = p[0]
    if p[0] == 91:
        r = Reader(p[1:])
        r.u32()
        agent_ch = r.u32()
        conn.send_packet(bytes([94]) + u32(agent_ch) + sshstr(u32(1) + bytes([11])))
        while True:
            q = conn.recv_packet()
            expect(q is not None, "EOF before the agent's answer")
            if q[0] == 94 and Reader(q[1:]).u32() == 7:
                r = Reader(q[1:])
                r.u32()
                answers["reply"] = r.str()
                break
    conn.send_packet(bytes([98]) + u32(host_id) + sshstr(b"exit-status") + b"\0" + u32(0))
    conn.send_packet(bytes([96]) + u32(host_id))
    conn.send_packet(bytes([97]) + u32(host_id))
    conn.recv_until_eof()


@tap.check("an agent that opens auth-agent channels to a host that did not say -A is refused; "
           "with -A the host's own ssh-agent answers through it")
def check_agent_unasked():
    env = ssh_agent()
    path = os.path.join(S["tmp"], "eager-agent.sock")
    for minus_a in (False, True):
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)
        ls.settimeout(30)
        answers, errors = {}, []

        def serve():
            try:
                c, _ = ls.accept()
                fake_agent_opens_agent_channel(RawConn(sock=c), answers)
            except Exception as e:  # reported by the check below
                errors.append(e)
            finally:
                ls.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        opts = ["-A"] if minus_a else []
        r = run(wicket("--share", "no", "exec", *opts, "unix/" + path, "--", "x"), env=env,
                timeout=60)
        t.join(30)
        expect(not errors, "the fake agent: %s" % (errors[0] if errors else ""))
        expect_eq(r.rc, 0, "wicket's status\n" + r.describe())
        what = "with -A" if minus_a else "without -A"
        expect_eq("auth-agent-req@openssh.com" in answers["requests"], minus_a,
                  "%s: the host asked for agent forwarding (%r)" % (what, answers["requests"]))
        expect_eq(answers["open"], 91 if minus_a else 92, "%s: the host's answer" % what)
        if minus_a:
            rep = answers["reply"]
            # SSH_AGENT_IDENTITIES_ANSWER (12) with key a, from the real ssh-agent
            expect(rep[4:5] == bytes([12]) and struct.unpack(">I", rep[5:9])[0] == 1,
                   "the ssh-agent's reply through the host: %s" % show(rep))


@tap.check("serve: ssh -A works for a plain key and restrict,agent-forwarding; "
           "restrict and no-agent-forwarding get none")
def check_agent_serve():
    env = ssh_agent()
    port, _ = with_ak("@0\n")
    # serve_ssh says IdentityAgent=none, which -A would then forward: name the agent.
    fa = ["-A", "-o", "IdentityAgent=" + env["SSH_AUTH_SOCK"]]
    r = run(serve_ssh(port, agent_probe(), opts=fa), env=env, cwd=S["tmp"], timeout=60)
    expect_agent_works(r, "serve, plain key")
    port, _ = with_ak("restrict,agent-forwarding @0\n", "--login-grace-time", "60")
    r = run(serve_ssh(port, agent_probe(), opts=fa), env=env, cwd=S["tmp"], timeout=60)
    expect_agent_works(r, "restrict,agent-forwarding")
    for opt in ("restrict", "no-agent-forwarding"):
        port, _ = with_ak("%s @0\n" % opt, "--login-grace-time", "60")
        r = run(serve_ssh(port, 'echo "[$SSH_AUTH_SOCK]"', opts=fa), env=env, cwd=S["tmp"],
                timeout=60)
        expect_eq((r.rc, r.out), (0, b"[]\n"), "%s\n%s" % (opt, r.describe()))


if __name__ == "__main__":
    tap.main(setup)
