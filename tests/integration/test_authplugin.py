#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicket-auth-plugin, the PuTTY authentication plugin (protocol version 2,
PuTTY manual appendix H) that answers `wicket serve --token-file`'s
keyboard-interactive token prompt: driven message by message from Python
(happy path, version negotiation, prompts forwarded to the user, malformed
input), then for real by plink with a saved session's AuthPlugin setting
against `wicket serve` and wicketd."""

import os
import random
import re
import shutil
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (BUILDDIR, Agent, Failure, Skip, expect, expect_eq, need_tool,  # noqa: E402
                    run, serve_port, show, spawn, sshbool, sshstr, tap, u32, wicket)

PLUGIN = os.environ.get("WICKET_AUTH_PLUGIN") or os.path.join(BUILDDIR, "host-tool",
                                                                "wicket-auth-plugin")
# Message numbers (appendix H.6).
INIT, INIT_RESPONSE, PROTOCOL, PROTOCOL_ACCEPT, PROTOCOL_REJECT = 1, 2, 3, 4, 5
AUTH_SUCCESS, AUTH_FAILURE, INIT_FAILURE = 6, 7, 8
KI_SERVER_REQUEST, KI_SERVER_RESPONSE, KI_USER_REQUEST, KI_USER_RESPONSE = 20, 21, 22, 23

TOKEN = "plug-token-4711"
S = {}


def setup():
    if not os.access(PLUGIN, os.X_OK):
        raise Failure("no executable %s" % PLUGIN)
    tmp = S["tmp"] = tap.tmpdir()
    S["tok"] = os.path.join(tmp, "client-token")
    with open(S["tok"], "w") as f:
        f.write(TOKEN + "  \nsecond line is ignored\n")


# ---------------------------------------------------------------- messages


def msg(t, body=b""):
    return u32(1 + len(body)) + bytes([t]) + body


def init_msg(version=2, host="example", port=22, user="alice"):
    return msg(INIT, u32(version) + sshstr(host) + u32(port) + sshstr(user))


def ki_body(name, instruction, prompts):
    b = sshstr(name) + sshstr(instruction) + sshstr("") + u32(len(prompts))
    for text, echo in prompts:
        b += sshstr(text) + sshbool(echo)
    return b


WICKET_PROMPT = ki_body("wicket", "Enter the one-time token.", [("Token: ", False)])


def responses(*answers):
    return u32(len(answers)) + b"".join(sshstr(a) for a in answers)


class Plugin:
    """The plugin on a pipe pair; send() and recv() whole messages."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([PLUGIN] + list(args), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env if env is not None else os.environ.copy(),
                                  start_new_session=True)
        tap.at_cleanup(self.kill)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def _read(self, n):
        got = b""
        while len(got) < n:
            d = self.p.stdout.read(n - len(got))
            if not d:
                raise Failure("plugin closed its output after %s; stderr %s"
                              % (show(got), show(self.p.stderr.read())))
            got += d
        return got

    def recv(self):
        n = struct.unpack(">I", self._read(4))[0]
        expect(1 <= n < 65536, "plugin sent a message of length %d" % n)
        d = self._read(n)
        return d[0], d[1:]

    def expect(self, t, body=None):
        got_t, got_b = self.recv()
        expect_eq(got_t, t, "message type (body %s)" % show(got_b))
        if body is not None:
            expect_eq(got_b, body, "body of message %d" % t)
        return got_b

    def finish(self, timeout=10):
        """Close its input; returns (exit status, stderr)."""
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("plugin did not exit after its input closed")
        rest = self.p.stdout.read()
        return rc, rest, self.p.stderr.read()


def feed(data, *args, env=None):
    """Run the plugin on fixed input; returns the Result."""
    return run([PLUGIN] + list(args), input=data, env=env, timeout=10)


def init_ok(pl, user="alice"):
    pl.send(init_msg(user=user))
    pl.expect(INIT_RESPONSE, u32(2) + sshstr(user))


# ---------------------------------------------------------------- protocol


@tap.check("protocol: INIT, publickey rejected, token answered, AUTH_SUCCESS, EOF -> exit 0")
def _():
    pl = Plugin("--token-file", S["tok"])
    init_ok(pl)
    pl.send(msg(PROTOCOL, sshstr("publickey")))
    pl.expect(PROTOCOL_REJECT, sshstr(""))
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    pl.expect(PROTOCOL_ACCEPT, b"")
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_SERVER_RESPONSE, responses(TOKEN))
    pl.send(msg(AUTH_SUCCESS))
    rc, rest, err = pl.finish()
    expect_eq((rc, rest), (0, b""), "exit after EOF (stderr %s)" % show(err))


@tap.check("protocol: --user overrides the name, WICKET_TOKEN_FILE, version 3 offered -> 2")
def _():
    env = dict(os.environ, WICKET_TOKEN_FILE=S["tok"])
    pl = Plugin("--user", "bob", env=env)
    pl.send(init_msg(version=3, user="alice"))
    pl.expect(INIT_RESPONSE, u32(2) + sshstr("bob"))
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    pl.expect(PROTOCOL_ACCEPT, b"")
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_SERVER_RESPONSE, responses(TOKEN))
    pl.send(msg(AUTH_FAILURE))
    # A further method after the first phase ended: still served.
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    pl.expect(PROTOCOL_ACCEPT, b"")
    # The token was refused: the same prompt now goes to the user.
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_USER_REQUEST, WICKET_PROMPT)
    pl.send(msg(KI_USER_RESPONSE, responses("typed")))
    pl.expect(KI_SERVER_RESPONSE, responses("typed"))
    pl.send(msg(AUTH_FAILURE))
    rc, _rest, err = pl.finish()
    expect_eq(rc, 0, "exit (stderr %s)" % show(err))
    expect(b"refused the token" in err, "stderr %s" % show(err))


@tap.check("protocol: client version 1 gets INIT_FAILURE and a non-zero exit")
def _():
    r = feed(init_msg(version=1), "--token-file", S["tok"])
    expect(r.rc not in (0, None) and r.rc > 0, "exit\n" + r.describe())
    expect(len(r.out) > 5 and r.out[4] == INIT_FAILURE, "output\n" + r.describe())
    n = struct.unpack(">I", r.out[:4])[0]
    expect_eq(len(r.out), 4 + n, "one message")
    expect(b"version" in r.out and b"version" in r.err, "message\n" + r.describe())


@tap.check("protocol: other prompts are forwarded as KI_USER_REQUEST, answers relayed")
def _():
    pl = Plugin("--token-file", S["tok"])
    init_ok(pl, user="")
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    pl.expect(PROTOCOL_ACCEPT, b"")
    other = ki_body("OTP", "Two things.", [("Password: ", False), ("Code: ", True)])
    pl.send(msg(KI_SERVER_REQUEST, other))
    pl.expect(KI_USER_REQUEST, other)
    pl.send(msg(KI_USER_RESPONSE, responses("pw", "123456")))
    pl.expect(KI_SERVER_RESPONSE, responses("pw", "123456"))
    # Zero prompts (an informational round) are forwarded too.
    empty = ki_body("", "just text", [])
    pl.send(msg(KI_SERVER_REQUEST, empty))
    pl.expect(KI_USER_REQUEST, empty)
    pl.send(msg(KI_USER_RESPONSE, responses()))
    pl.expect(KI_SERVER_RESPONSE, responses())
    # The token prompt in the same phase is still answered by the plugin.
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_SERVER_RESPONSE, responses(TOKEN))
    # ... but a second one in the same phase goes to the user.
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_USER_REQUEST, WICKET_PROMPT)
    pl.send(msg(KI_USER_RESPONSE, responses("x")))
    pl.expect(KI_SERVER_RESPONSE, responses("x"))
    pl.send(msg(AUTH_SUCCESS))
    rc, _rest, err = pl.finish()
    expect_eq(rc, 0, "exit (stderr %s)" % show(err))


@tap.check("protocol: unreadable token file -> prompt goes to the user; no file -> REJECT")
def _():
    pl = Plugin("--token-file", os.path.join(S["tmp"], "missing"))
    init_ok(pl)
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    pl.expect(PROTOCOL_ACCEPT, b"")
    pl.send(msg(KI_SERVER_REQUEST, WICKET_PROMPT))
    pl.expect(KI_USER_REQUEST, WICKET_PROMPT)
    pl.send(msg(KI_USER_RESPONSE, responses("t")))
    pl.expect(KI_SERVER_RESPONSE, responses("t"))
    pl.send(msg(AUTH_SUCCESS))
    rc, _rest, err = pl.finish()
    expect(rc == 0 and b"missing" in err, "exit %s stderr %s" % (rc, show(err)))
    env = dict(os.environ)
    env.pop("WICKET_TOKEN_FILE", None)
    pl = Plugin(env=env)
    init_ok(pl)
    pl.send(msg(PROTOCOL, sshstr("keyboard-interactive")))
    body = pl.expect(PROTOCOL_REJECT)
    expect(b"token-file" in body, "reject message %s" % show(body))
    rc, _rest, _err = pl.finish()
    expect_eq(rc, 0, "exit")


def good_prefix():
    return init_msg() + msg(PROTOCOL, sshstr("keyboard-interactive"))


MALFORMED = {
    "nothing at all": b"",
    "zero-length message": u32(0),
    "truncated length": b"\x00\x00",
    "truncated body": u32(50) + bytes([INIT]) + b"\x00\x00",
    "length 4 GiB - 1": b"\xff\xff\xff\xff" + bytes([INIT]),
    "first message not INIT": msg(PROTOCOL, sshstr("keyboard-interactive")),
    "INIT with trailing bytes": init_msg() + b"",  # patched below
    "INIT cut short": msg(INIT, u32(2) + sshstr("h")),
    "INIT string overruns": msg(INIT, u32(2) + u32(1000) + b"abc"),
    "unknown type after INIT": init_msg() + msg(99),
    "PROTOCOL with trailing bytes": init_msg() + msg(PROTOCOL, sshstr("keyboard-interactive")
                                                     + b"x"),
    "KI request, huge prompt count": good_prefix() + msg(
        KI_SERVER_REQUEST, sshstr("a") + sshstr("b") + sshstr("") + u32(0xFFFFFFFF)),
    "KI request, prompt count beyond data": good_prefix() + msg(
        KI_SERVER_REQUEST, sshstr("a") + sshstr("b") + sshstr("") + u32(3) + sshstr("P")
        + b"\x00"),
    "KI request with trailing bytes": good_prefix() + msg(KI_SERVER_REQUEST,
                                                          WICKET_PROMPT + b"\x00"),
    "unexpected INIT during KI": good_prefix() + init_msg(),
    "KI user response count mismatch": good_prefix() + msg(
        KI_SERVER_REQUEST, ki_body("x", "", [("P: ", False)])) + msg(
        KI_USER_RESPONSE, responses("a", "b")),
    "KI user response of the wrong type": good_prefix() + msg(
        KI_SERVER_REQUEST, ki_body("x", "", [("P: ", False)])) + msg(AUTH_SUCCESS),
    "AUTH_SUCCESS with a body": good_prefix() + msg(AUTH_SUCCESS, b"\x01"),
    "EOF inside the KI phase": good_prefix(),
}
MALFORMED["INIT with trailing bytes"] = msg(
    INIT, u32(2) + sshstr("h") + u32(22) + sshstr("u") + b"\x00")


@tap.check("protocol: %d malformed or out-of-order inputs -> stderr + exit 2, no crash"
           % len(MALFORMED))
def _():
    bad = []
    for what, data in MALFORMED.items():
        r = feed(data, "--token-file", S["tok"])
        if r.rc != 2 or b"wicket-auth-plugin:" not in r.err:
            bad.append("%s:\n%s" % (what, r.describe()))
    expect(not bad, "\n".join(bad))


@tap.check("protocol: 400 random mutations of a valid conversation never crash it")
def _():
    rng = random.Random(4711)
    conv = (good_prefix() + msg(KI_SERVER_REQUEST, ki_body("x", "i", [("P: ", True)]))
            + msg(KI_USER_RESPONSE, responses("a")) + msg(KI_SERVER_REQUEST, WICKET_PROMPT)
            + msg(AUTH_SUCCESS))
    r = feed(conv, "--token-file", S["tok"])
    expect_eq(r.rc, 0, "unmutated conversation\n" + r.describe())
    bad = []
    for _ in range(400):
        d = bytearray(conv)
        for _k in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(d))
            if op == 0:
                d[i] = rng.randrange(256)
            elif op == 1:
                del d[i:i + rng.randint(1, 8)]
            else:
                d[i:i] = os.urandom(rng.randint(1, 8))
        r = feed(bytes(d), "--token-file", S["tok"])
        if r.rc not in (0, 2):
            bad.append(r.describe())
    expect(not bad, "%d bad exits, first:\n%s" % (len(bad), bad[:1]))


# ---------------------------------------------------------------- plink


def plink_supports_plugins():
    """PuTTY gained authentication plugins (the AuthPlugin setting) in 0.77."""
    need_tool("plink")
    need_tool("ssh-keygen")
    r = run(["plink", "-V"])
    m = re.search(rb"Release (\d+)\.(\d+)", r.out + r.err)
    if not m:
        raise Skip("cannot tell plink's version from %s" % show(r.out + r.err))
    ver = (int(m.group(1)), int(m.group(2)))
    if ver < (0, 77):
        raise Skip("plink %d.%d predates authentication plugins (0.77)" % ver)


def serve_env():
    if "serve" in S:
        return S["serve"]
    tmp = S["tmp"]
    agent = Agent(tmp)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp + "/host_key"])
    fp = run(["ssh-keygen", "-lf", tmp + "/host_key"]).out.split()[1].decode()
    open(tmp + "/authorized_keys", "w").close()  # no key logs in
    stok = tmp + "/server-token"
    log = open(os.path.join(tmp, "serve.log"), "w+b")
    p = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", tmp + "/host_key",
                     "--authorized-keys", tmp + "/authorized_keys", "--token-file", stok,
                     agent.target), stdin=subprocess.DEVNULL, stderr=log)

    S["serve"] = (serve_port(p, log), fp, stok, log)
    return S["serve"]


def plink_session(name, token_file):
    """A saved session in a private HOME: ~/.putty/sessions/NAME, Key=Value lines."""
    home = os.path.join(S["tmp"], "home")
    sess = os.path.join(home, ".putty", "sessions")
    os.makedirs(sess, exist_ok=True)
    with open(os.path.join(sess, name), "w") as f:
        f.write("UserName=guest\nAuthPlugin=%s --token-file %s\n" % (PLUGIN, token_file))
    return dict(os.environ, HOME=home)


def plink(name, env, port, fp):
    return run(["plink", "-batch", "-load", name, "-hostkey", fp, "-P", str(port), "127.0.0.1",
                "echo hi"], env=env, timeout=60)


@tap.check("plink -load SESSION (AuthPlugin=wicket-auth-plugin --token-file F) logs in")
def _():
    plink_supports_plugins()
    port, fp, stok, log = serve_env()
    with open(stok, "w") as f:
        f.write("srv-token-0123456789\n")
    ptok = os.path.join(S["tmp"], "plink-token")
    with open(ptok, "w") as f:
        f.write("srv-token-0123456789\n")
    env = plink_session("wicket-tok", ptok)
    r = plink("wicket-tok", env, port, fp)
    log.seek(0)
    expect_eq((r.rc, r.out), (0, b"hi\n"), "plink\n%s\nserve log %s" % (r.describe(),
                                                                       show(log.read())))
    expect(not os.path.exists(stok), "the server's token file is still there")
    log.seek(0)
    expect(b"accepted keyboard-interactive one-time token" in log.read(), "serve log")


@tap.check("plink with the plugin and a wrong token fails (non-zero exit, token unused)")
def _():
    plink_supports_plugins()
    port, fp, stok, _log = serve_env()
    with open(stok, "w") as f:
        f.write("srv-token-right-42\n")
    ptok = os.path.join(S["tmp"], "plink-wrong")
    with open(ptok, "w") as f:
        f.write("srv-token-wrong-42\n")
    env = plink_session("wicket-wrong", ptok)
    r = plink("wicket-wrong", env, port, fp)
    expect(r.rc not in (0, None) and b"hi" not in r.out, "wrong token\n" + r.describe())
    expect(os.path.exists(stok), "the server's token file was consumed")


if __name__ == "__main__":
    tap.main(setup)
