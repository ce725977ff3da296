#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The full-SSH wrapper with real clients: OpenSSH ssh/scp/sftp/rsync through
`wicket proxy --ssh` (ProxyCommand) and against `wicket serve`; plink, pscp
and psftp; python3-asyncssh; and hostile clients (ssh_rawclient.py, a bit
flipped on the wire)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (echo_server, SRCDIR, Agent, Failure, Skip, expect, expect_eq, need_tool,  # noqa: E402
                    run, serve_port, spawn, tap, wait_until, wicket)

HERE = os.path.dirname(os.path.abspath(__file__))
SYS_PY = "/usr/bin/python3"  # Debian's, where python3-cryptography/asyncssh live
CIPHERS = ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com"]
S = {}


def setup():
    need = [t for t in ("ssh", "ssh-keygen") if not shutil.which(t)]
    if need:
        raise Skip("not installed: " + " ".join(need))
    tmp = S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(tmp)
    # Per-test state dir: the proxy keeps its host key there.
    S["env"] = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    os.symlink(S["agent"].path, os.path.join(tmp, "g.sock"))
    for t in ("ed25519", "ecdsa", "rsa", "bad", "host"):
        run(["ssh-keygen", "-q", "-t", "ed25519" if t in ("bad", "host") else t, "-N", "",
             "-C", t + "-key", "-f", os.path.join(tmp, "id_" + t)])
    pub = {t: open(os.path.join(tmp, "id_%s.pub" % t)).read().strip()
           for t in ("ed25519", "ecdsa", "rsa")}
    with open(os.path.join(tmp, "authorized_keys"), "w") as f:
        f.write("# test keys\n%s\nrestrict %s\nno-port-forwarding,from=\"127.0.0.1\" %s\n"
                % (pub["ed25519"], pub["ecdsa"], pub["rsa"]))
    os.chmod(os.path.join(tmp, "authorized_keys"), 0o600)
    W = wicket()[0]
    with open(os.path.join(tmp, "ssh_config"), "w") as f:
        f.write("Host g\n\tProxyCommand %s proxy --ssh unix/%s\n"
                "Host unix/* unix%%* g\n"
                "\tProxyCommand %s proxy --ssh %%n\n"
                "\tHostKeyAlias wicket-local-proxy\n"
                "\tStrictHostKeyChecking accept-new\n"
                "\tUserKnownHostsFile %s/known_hosts\n"
                "\tCheckHostIP no\n\tLogLevel error\n\tBatchMode yes\n"
                % (W, S["agent"].path, W, tmp))
    with open(os.path.join(tmp, "big"), "wb") as f:
        f.write(os.urandom(21 * 1024 * 1024))


def sshc(*args):
    return ["ssh", "-F", os.path.join(S["tmp"], "ssh_config")] + list(args)


def T():
    return S["agent"].target


def runp(argv, **kw):
    kw.setdefault("env", S["env"])
    kw.setdefault("cwd", S["tmp"])
    return run(argv, **kw)


def roundtrip(argv_prefix, timeout=120):
    src = os.path.join(S["tmp"], "big")
    out = os.path.join(S["tmp"], "big.out")
    with open(src, "rb") as fin, open(out, "wb") as fout:
        t0 = time.monotonic()
        p = subprocess.run(argv_prefix + ["cat"], stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                           env=S["env"], cwd=S["tmp"], timeout=timeout)
    dt = time.monotonic() - t0
    same = open(src, "rb").read() == open(out, "rb").read()
    os.unlink(out)
    if p.returncode != 0 or not same:
        raise Failure("round trip: exit %s, identical %s, stderr %r" % (p.returncode, same,
                                                                         p.stderr[-500:]))
    return dt, p.stderr


# ---------------------------------------------------------------- proxy --ssh


@tap.check("ssh-config prints packaging/ssh/20-wicket.conf")
def _():
    r = run(wicket("ssh-config"))
    want = open(os.path.join(SRCDIR, "packaging", "ssh", "20-wicket.conf"), "rb").read()
    expect_eq(r.out, want, "ssh-config output")


@tap.check("ssh via ProxyCommand: exec with exit status, stdout and stderr apart")
def _():
    r = runp(sshc(T(), "echo out; echo err >&2; exit 7"))
    expect_eq((r.rc, r.out, r.err), (7, b"out\n", b"err\n"), "exec\n" + r.describe())
    kh = open(os.path.join(S["tmp"], "known_hosts")).read()
    expect("wicket-local-proxy ssh-ed25519 " in kh, "host key pinned under the alias: %r" % kh)
    r = runp(sshc(T(), "true"))
    expect_eq(r.rc, 0, "second connection with the pinned key\n" + r.describe())


@tap.check("ssh -t: a pty")
def _():
    r = runp(sshc("-tt", T(), "tty; stty size"), input=b"")
    expect(r.rc == 0 and b"/dev/pts/" in r.out, "pty\n" + r.describe())


@tap.check("21 MiB binary round trip with each cipher, and with -C")
def _():
    for c in CIPHERS:
        roundtrip(sshc("-c", c, T()))
    roundtrip(sshc("-C", T()))


@tap.check("forced rekey (-o RekeyLimit=1M) during a 21 MiB transfer, also with -C")
def _():
    for extra in ([], ["-C"], ["-C", "-c", "aes128-gcm@openssh.com"]):
        _dt, err = roundtrip(sshc("-v", "-o", "RekeyLimit=1M", *extra, T()))
        n = err.count(b"SSH2_MSG_NEWKEYS received")
        expect(n >= 5, "only %d key exchanges with %s" % (n, extra))


@tap.check("scp and sftp both ways, rsync -e ssh (KIND%NAME form for scp/rsync)")
def _():
    tmp = S["tmp"]
    big = os.path.join(tmp, "big")
    h = "unix%g.sock"
    for argv, dst in (
            (["scp", "-F", tmp + "/ssh_config", big, h + ":" + tmp + "/up1"], "up1"),
            (["scp", "-F", tmp + "/ssh_config", h + ":" + tmp + "/up1", tmp + "/down1"], "down1"),
            (["scp", "-O", "-F", tmp + "/ssh_config", big, "g:" + tmp + "/up2"], "up2"),
            (["rsync", "-e", "ssh -F " + tmp + "/ssh_config", big, h + ":" + tmp + "/up3"], "up3")):
        if not shutil.which(argv[0]):
            continue
        r = runp(argv, timeout=120)
        expect(r.rc == 0 and open(os.path.join(tmp, dst), "rb").read() == open(big, "rb").read(),
               "copy\n" + r.describe())
    batch = "put %s %s/up4\nget %s/up4 %s/down4\n" % (big, tmp, tmp, tmp)
    r = runp(["sftp", "-F", tmp + "/ssh_config", "-b", "-", T()], input=batch.encode(), timeout=120)
    expect(r.rc == 0 and open(tmp + "/down4", "rb").read() == open(big, "rb").read(),
           "sftp\n" + r.describe())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_through(port, payload, timeout=30):
    """Connect (retrying while the forward comes up), send, half-close, read all."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise Failure("forward port %d never accepted" % port)
            time.sleep(0.1)
    with c:
        c.settimeout(timeout)
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                return got
            got += d


@tap.check("ssh -L, -R and -W through the relay carry data (agent-side forwarding)")
def _():
    echo = echo_server()
    payload = os.urandom(1024 * 1024)
    for flag in ("-L", "-R"):
        port = free_port()
        p = subprocess.Popen(sshc("-N", "-o", "ExitOnForwardFailure=yes", flag,
                                  "%d:127.0.0.1:%d" % (port, echo), "g"),
                             env=S["env"], cwd=S["tmp"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            got = echo_through(port, payload)
            expect(got == payload, "%s: %d of %d bytes echoed intact" % (flag, len(got),
                                                                      len(payload)))
        finally:
            p.terminate()
            p.wait(timeout=10)
    r = subprocess.run(sshc("-W", "127.0.0.1:%d" % echo, "g"), input=payload,
                       capture_output=True, env=S["env"], cwd=S["tmp"], timeout=60)
    expect(r.stdout == payload, "-W: exit %d, %d bytes back, stderr %r" % (
        r.returncode, len(r.stdout), r.stderr[-300:]))


@tap.check("proxy --ssh --authorized-keys: the key is required, a wrong one gets 255")
def _():
    tmp = S["tmp"]
    pc = "ProxyCommand=%s proxy --ssh --authorized-keys %s/authorized_keys %s" % (
        wicket()[0], tmp, T())
    base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o",
            "IdentitiesOnly=yes", "-o", pc]
    r = runp(base + ["-i", tmp + "/id_ed25519", "x", "echo in"])
    expect_eq((r.rc, r.out), (0, b"in\n"), "good key\n" + r.describe())
    r = runp(base + ["-i", tmp + "/id_bad", "x", "echo in"])
    expect_eq(r.rc, 255, "wrong key\n" + r.describe())


# ---------------------------------------------------------------- serve


def start_serve(*extra):
    tmp = S["tmp"]
    log = open(os.path.join(tmp, "serve%d.log" % len(S.setdefault("serves", []))), "w+b")
    p = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", tmp + "/id_host",
                     *extra, T()), stdin=subprocess.DEVNULL, stderr=log, env=S["env"])
    S["serves"].append(p)

    return serve_port(p, log), log


def serve_ssh(port, key, *args):
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=error", "-o", "IdentitiesOnly=yes", "-i",
            os.path.join(S["tmp"], "id_" + key)] + list(args)


def serve_default():
    if "serve" not in S:
        S["serve"] = start_serve("--authorized-keys", S["tmp"] + "/authorized_keys")
    return S["serve"]


@tap.check("serve: ed25519, ecdsa and rsa keys; a wrong key refused (255) while serving on")
def _():
    port, log = serve_default()
    for k in ("ed25519", "ecdsa", "rsa"):
        r = runp(serve_ssh(port, k, "root@127.0.0.1", "echo $0 %s; exit 3" % k))
        expect_eq((r.rc, r.out.split()[-1:]), (3, [k.encode()]), k + "\n" + r.describe())
    r = runp(serve_ssh(port, "bad", "root@127.0.0.1", "true"))
    expect_eq(r.rc, 255, "wrong key\n" + r.describe())
    r = runp(serve_ssh(port, "ed25519", "root@127.0.0.1", "echo still"))
    expect_eq((r.rc, r.out), (0, b"still\n"), "after a refusal\n" + r.describe())
    log.seek(0)
    text = log.read()
    expect(b"accepted publickey ecdsa-sha2-nistp256 SHA256:" in text and b"ecdsa-key" in text,
           "login log: %r" % text[-800:])


def log_since(log, mark):
    log.seek(mark)
    return log.read()


@tap.check("serve: authorized_keys is read at every login: a removed key is refused at once, "
           "an added one works, a broken file refuses all (no restart)")
def _():
    tmp = S["tmp"]
    ak = os.path.join(tmp, "authorized_keys.live")
    pub = {t: open(os.path.join(tmp, "id_%s.pub" % t)).read().strip() for t in ("ed25519", "rsa")}

    def write_keys(text, mode=0o600):
        # Replaced the way an operator's tools do: a new file renamed over the old one.
        with open(ak + ".new", "w") as f:
            f.write(text)
        os.chmod(ak + ".new", mode)
        os.rename(ak + ".new", ak)
    write_keys(pub["ed25519"] + "\n")
    port, log = start_serve("--authorized-keys", ak)
    r = runp(serve_ssh(port, "ed25519", "127.0.0.1", "echo in"))
    expect_eq((r.rc, r.out), (0, b"in\n"), "first login\n" + r.describe())
    r = runp(serve_ssh(port, "rsa", "127.0.0.1", "echo in"))
    expect_eq(r.rc, 255, "rsa key before it was added\n" + r.describe())
    # A session open while the key is revoked keeps running (as with sshd);
    # the next login with that key is refused.
    held = subprocess.Popen(serve_ssh(port, "ed25519", "127.0.0.1", "read x; echo held $x"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=S["env"])
    time.sleep(1.0)
    write_keys(pub["rsa"] + "\n")
    r = runp(serve_ssh(port, "ed25519", "127.0.0.1", "echo in"))
    expect_eq(r.rc, 255, "revoked key still logs in\n" + r.describe())
    r = runp(serve_ssh(port, "rsa", "127.0.0.1", "echo added"))
    expect_eq((r.rc, r.out), (0, b"added\n"), "added key\n" + r.describe())
    out, _ = held.communicate(b"on\n", timeout=60)
    expect_eq((held.returncode, out), (0, b"held on\n"), "open session")
    # A file others may write is refused as a whole (and says so), as at start-up.
    write_keys(pub["rsa"] + "\n", 0o666)
    mark = os.fstat(log.fileno()).st_size
    r = runp(serve_ssh(port, "rsa", "127.0.0.1", "echo in"))
    expect_eq(r.rc, 255, "group/world-writable authorized_keys\n" + r.describe())
    text = log_since(log, mark)
    expect(b"refused publickey" in text and b"authorized_keys.live" in text,
           "no reason logged for the unusable file: %r" % text[-800:])
    os.unlink(ak)
    r = runp(serve_ssh(port, "rsa", "127.0.0.1", "echo in"))
    expect_eq(r.rc, 255, "authorized_keys removed\n" + r.describe())
    write_keys(pub["rsa"] + "\n")
    r = runp(serve_ssh(port, "rsa", "127.0.0.1", "echo back"))
    expect_eq((r.rc, r.out), (0, b"back\n"), "file restored\n" + r.describe())


@tap.check("serve: every refused login and every close before authentication is logged "
           "with the address, the user and the reason")
def _():
    port, log = serve_default()
    mark = os.fstat(log.fileno()).st_size
    r = runp(serve_ssh(port, "bad", "mallory@127.0.0.1", "true"))
    expect_eq(r.rc, 255, "wrong key\n" + r.describe())
    fp = run(["ssh-keygen", "-l", "-f", os.path.join(S["tmp"], "id_bad.pub")]).out.split()[1]

    def seen():
        t = log_since(log, mark)
        return t if b"[preauth]" in t else None
    text = wait_until(seen, what="the [preauth] line", timeout=10)
    expect(re.search(rb"127\.0\.0\.1: refused publickey for user mallory: key ssh-ed25519 "
                     + re.escape(fp) + rb" is not authorized", text),
           "refusal line: %r" % text)
    expect(re.search(rb"127\.0\.0\.1: connection closed by authenticating user mallory "
                     rb"before authentication: .+ \[preauth\]", text),
           "closed line: %r" % text)
    # A client that connects and says nothing useful: address and reason.
    mark = os.fstat(log.fileno()).st_size
    c = socket.create_connection(("127.0.0.1", port))
    c.recv(100)
    c.sendall(b"SSH-2.0-probe\r\n")
    c.shutdown(socket.SHUT_WR)  # a clean close (unread data would make it a reset)
    c.settimeout(10)
    while c.recv(4096):
        pass
    c.close()
    text = wait_until(seen, what="the [preauth] line of a silent client", timeout=10)
    expect(re.search(rb"127\.0\.0\.1: connection closed before authentication: the client "
                     rb"closed the connection \[preauth\]", text), "silent client: %r" % text)
    # A wrong token is a refusal too.
    tok = os.path.join(S["tmp"], "token2")
    with open(tok, "w") as f:
        f.write("the-right-token-42\n")
    tport, tlog = start_serve("--token-file", tok)
    ask = os.path.join(S["tmp"], "askpass-wrong")
    with open(ask, "w") as f:
        f.write("#!/bin/sh\necho not-the-token\n")
    os.chmod(ask, 0o755)
    env = dict(S["env"], SSH_ASKPASS=ask, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    r = run(["ssh", "-F", "/dev/null", "-p", str(tport), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o",
             "PreferredAuthentications=keyboard-interactive", "-o", "NumberOfPasswordPrompts=1",
             "eve@127.0.0.1", "true"], env=env)
    expect_eq(r.rc, 255, "wrong token\n" + r.describe())
    log, mark = tlog, 0
    text = wait_until(seen, what="the token refusal", timeout=10)
    expect(b"refused keyboard-interactive for user eve: wrong or used one-time token" in text,
           "token refusal: %r" % text)


@tap.check("serve: many clients at once, each with a 21 MiB round trip")
def _():
    port, _log = serve_default()
    src = os.path.join(S["tmp"], "big")
    procs = []
    for i in range(4):
        fo = open(os.path.join(S["tmp"], "par%d" % i), "wb")
        procs.append((subprocess.Popen(serve_ssh(port, "ed25519", "127.0.0.1", "cat"),
                                       stdin=open(src, "rb"), stdout=fo, env=S["env"]), fo))
    for p, fo in procs:
        expect_eq(p.wait(timeout=180), 0, "exit status")
        fo.close()
    data = open(src, "rb").read()
    for i in range(4):
        expect(open(os.path.join(S["tmp"], "par%d" % i), "rb").read() == data, "copy %d" % i)


@tap.check("serve: restrict refuses a pty, no-port-forwarding refuses -R and -L")
def _():
    port, _log = serve_default()
    r = runp(serve_ssh(port, "ecdsa", "-tt", "127.0.0.1", "tty"), input=b"")
    expect(b"/dev/pts/" not in r.out, "restrict key got a pty\n" + r.describe())
    r = runp(serve_ssh(port, "rsa", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9",
                       "127.0.0.1", "true"))
    expect(r.rc == 255 and b"forwarding failed" in r.err, "-R allowed\n" + r.describe())
    r = runp(serve_ssh(port, "rsa", "-W", "127.0.0.1:9", "127.0.0.1"))
    expect(r.rc != 0 and b"forwarding failed" in r.err, "-W allowed\n" + r.describe())


@tap.check("serve: keyboard-interactive one-time token works once")
def _():
    tmp = S["tmp"]
    tok = os.path.join(tmp, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token-123\n")
    port, _log = start_serve("--token-file", tok)
    ask = os.path.join(tmp, "askpass")
    with open(ask, "w") as f:
        f.write("#!/bin/sh\necho s3cret-token-123\n")
    os.chmod(ask, 0o755)
    env = dict(S["env"], SSH_ASKPASS=ask, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    argv = ["ssh", "-F", "/dev/null", "-p", str(port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o",
            "PreferredAuthentications=keyboard-interactive", "-o", "NumberOfPasswordPrompts=1",
            "127.0.0.1", "echo tok"]
    r = run(argv, env=env)
    expect_eq((r.rc, r.out), (0, b"tok\n"), "token\n" + r.describe())
    expect(not os.path.exists(tok), "token file still there")
    r = run(argv, env=env)
    expect_eq(r.rc, 255, "token used twice\n" + r.describe())


@tap.check("serve: --max-unauth caps idle connections, --login-grace-time drops them")
def _():
    port, _log = start_serve("--authorized-keys", S["tmp"] + "/authorized_keys",
                             "--max-unauth", "2", "--login-grace-time", "2")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for s in idle:
        s.recv(100)
    time.sleep(0.3)
    s3 = socket.create_connection(("127.0.0.1", port))
    s3.settimeout(5)
    got = b""
    while True:
        d = s3.recv(1000)
        if not d:
            break
        got += d
    expect(got.startswith(b"SSH-2.0-") and got.count(b"\n") == 1, "third: %r" % got)
    for s in idle:
        s.settimeout(10)
        t0 = time.monotonic()
        while s.recv(1000):
            pass
        expect(time.monotonic() - t0 < 8, "idle connection kept too long")
    r = runp(serve_ssh(port, "ed25519", "127.0.0.1", "echo after"))
    expect_eq((r.rc, r.out), (0, b"after\n"), "after the cap\n" + r.describe())


# ---------------------------------------------------------------- other clients


def proxy_hostkey_fp():
    key = os.path.join(S["tmp"], "state", "wicket", "host_ed25519_key")
    runp(sshc(T(), "true"))
    r = run(["ssh-keygen", "-lf", key])
    return r.out.split()[1].decode()


@tap.check("plink, pscp and psftp in full SSH mode with -hostkey")
def _():
    need_tool("plink")
    fp = proxy_hostkey_fp()
    tmp = S["tmp"]
    pc = "%s proxy --ssh %s" % (wicket()[0], T())
    common = ["-batch", "-hostkey", fp, "-proxycmd", pc, "-l", "root"]
    r = runp(["plink", "-ssh"] + common + ["guest", "echo plink; exit 4"])
    expect_eq((r.rc, r.out), (4, b"plink\n"), "plink\n" + r.describe())
    r = runp(["pscp", "-q"] + common + [tmp + "/big", "guest:" + tmp + "/p1"], timeout=120)
    expect(r.rc == 0 and open(tmp + "/p1", "rb").read() == open(tmp + "/big", "rb").read(),
           "pscp\n" + r.describe())
    r = runp(["psftp"] + common + ["guest"], input=("get %s/p1 %s/p2\n" % (tmp, tmp)).encode(),
             timeout=120)
    expect(r.rc == 0 and open(tmp + "/p2", "rb").read() == open(tmp + "/big", "rb").read(),
           "psftp\n" + r.describe())


def need_sys_py(mod):
    if not os.access(SYS_PY, os.X_OK):
        raise Skip("no " + SYS_PY)
    r = run([SYS_PY, "-W", "ignore", "-c", "import " + mod])
    if r.rc != 0:
        raise Skip("%s lacks %s (Debian python3-%s)" % (SYS_PY, mod, mod))


@tap.check("python3-asyncssh: exec, binary stdin/stdout, sftp put against wicket serve")
def _():
    need_sys_py("asyncssh")
    port, _log = serve_default()
    tmp = S["tmp"]
    code = """
import asyncio, asyncssh, sys
async def main():
    async with asyncssh.connect('127.0.0.1', %d, username='root', known_hosts=None,
                                client_keys=['%s/id_ed25519']) as c:
        r = await c.run('echo asyncssh; exit 5', check=False)
        assert (r.stdout, r.exit_status) == ('asyncssh\\n', 5), r
        data = bytes(range(256)) * 8192
        r = await c.run('cat', input=data, encoding=None)
        assert r.stdout == data
        async with c.start_sftp_client() as s:
            await s.put('%s/big', '%s/as1')
    print('ok')
asyncio.run(main())
""" % (port, tmp, tmp, tmp)
    r = runp([SYS_PY, "-W", "ignore", "-c", code], timeout=120)
    expect_eq((r.rc, r.out), (0, b"ok\n"), "asyncssh\n" + r.describe())
    expect(open(tmp + "/as1", "rb").read() == open(tmp + "/big", "rb").read(), "sftp put")


# ---------------------------------------------------------------- hostile clients


def raw(scenario):
    need_sys_py("cryptography")
    r = runp([SYS_PY, "-W", "ignore", os.path.join(HERE, "ssh_rawclient.py"), scenario]
             + wicket("proxy", "--ssh", T()))
    return r.out.decode().strip(), r


@tap.check("raw client: a correct exchange relays (the hostile cases below mean something)")
def _():
    res, r = raw("ok")
    expect_eq(res, "OK relayed", "raw client\n" + r.describe())


@tap.check("strict kex: IGNORE during the first key exchange disconnects")
def _():
    res, r = raw("ignore-in-kex")
    expect(res.startswith("DISCONNECT 2 unexpected message 2"), r.describe())


@tap.check("USERAUTH_SUCCESS from a client, connection messages before auth disconnect")
def _():
    res, r = raw("userauth-success")
    expect(res.startswith("DISCONNECT 2"), r.describe())
    res, r = raw("conn-before-auth")
    expect(res.startswith("DISCONNECT 2 connection-layer message 90 before"), r.describe())


@tap.check("oversized packets disconnect, before and after the key exchange")
def _():
    for sc in ("oversize-in-kex", "oversize"):
        res, r = raw(sc)
        expect(res.startswith("DISCONNECT 2 bad packet length 300000"), sc + "\n" + r.describe())


@tap.check("a bit flipped after kex fails the integrity check for every cipher")
def _():
    flip = os.path.join(HERE, "ssh_flip.py")
    for c in CIPHERS:
        pc = "ProxyCommand=%s %s 200000 %s proxy --ssh %s" % (sys.executable, flip,
                                                               wicket()[0], T())
        argv = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
                "UserKnownHostsFile=/dev/null", "-o", pc, "-c", c, "x", "cat >/dev/null"]
        r = runp(argv, input=os.urandom(1 << 20), timeout=60)
        expect(r.rc == 255 and b"message authentication failed" in r.err,
               c + "\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
