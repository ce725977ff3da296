#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The SSH wrapper's algorithms and its first bytes, with the clients that
need them: aes128-ctr/aes256-ctr with every hmac-sha2 MAC (OpenSSH ssh for
each pair, python3-paramiko 2.12 which has no AEAD cipher, curl's sftp://
on libssh2 1.10), ecdsa-sha2-nistp256 and rsa-sha2-512/256 host keys next to
ed25519 (ssh-keyscan, ssh -o HostKeyAlgorithms with the key pinned), and bad
identification lines / IGNORE before KEXINIT (raw bytes, ssh_rawclient.py)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (Agent, Failure, Skip, expect, expect_eq, run, serve_port, spawn, tap,  # noqa: E402
                    wait_until, wicket)

HERE = os.path.dirname(os.path.abspath(__file__))
SYS_PY = "/usr/bin/python3"  # Debian's, where python3-paramiko lives
CTR = ["aes128-ctr", "aes256-ctr"]
MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256",
        "hmac-sha2-512"]
HOSTALGS = {"ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa", "rsa-sha2-512": "rsa",
            "rsa-sha2-256": "rsa"}
S = {}


def setup():
    need = [t for t in ("ssh", "ssh-keygen", "ssh-keyscan") if not shutil.which(t)]
    if need:
        raise Skip("not installed: " + " ".join(need))
    tmp = S["tmp"] = tap.tmpdir()
    S["agent"] = Agent(tmp)
    S["env"] = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    for name, t in (("id", "ed25519"), ("host_ed25519", "ed25519"), ("host_ecdsa", "ecdsa"),
                    ("host_rsa", "rsa")):
        run(["ssh-keygen", "-q", "-t", t, "-N", "", "-C", name, "-f", os.path.join(tmp, name)])
    with open(os.path.join(tmp, "authorized_keys"), "w") as f:
        f.write(open(os.path.join(tmp, "id.pub")).read())
    os.chmod(os.path.join(tmp, "authorized_keys"), 0o600)
    with open(os.path.join(tmp, "data"), "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))


def runp(argv, **kw):
    kw.setdefault("env", S["env"])
    kw.setdefault("cwd", S["tmp"])
    return run(argv, **kw)


def host_key_args(types=("ed25519", "ecdsa", "rsa")):
    out = []
    for t in types:
        out += ["--host-key", os.path.join(S["tmp"], "host_" + t)]
    return out


def proxy_cmd(*extra):
    return " ".join(wicket("proxy", "--ssh", *extra, S["agent"].target))


def ssh_base(*opts):
    return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o",
            "IdentitiesOnly=yes", "-i", os.path.join(S["tmp"], "id")] + list(opts)


def start_serve(*extra):
    tmp = S["tmp"]
    n = len(S.setdefault("serves", []))
    log = open(os.path.join(tmp, "serve%d.log" % n), "w+b")
    # -vv: the key exchanges' choices in the log (the packet log goes nowhere).
    p = spawn(wicket("--packet-log", "/dev/null", "-v", "-v", "serve", "--listen", "127.0.0.1:0", "--authorized-keys",
                     tmp + "/authorized_keys", *extra, S["agent"].target),
              stdin=subprocess.DEVNULL, stderr=log, env=S["env"])
    S["serves"].append(p)

    return serve_port(p, log), log


def serve_all():
    if "serve" not in S:
        S["serve"] = start_serve(*host_key_args())
    return S["serve"]


def log_text(log):
    log.seek(0)
    return log.read()


# ---------------------------------------------------------------- ciphers and MACs


@tap.check("our KEXINIT: AEAD ciphers first, then aes256-ctr, aes128-ctr; etm MACs first")
def _():
    r = runp(wicket("proxy", "--ssh", S["agent"].target), input=b"SSH-2.0-probe\r\n")
    out = r.out
    i = out.index(b"\r\n") + 2
    ln = int.from_bytes(out[i:i + 4], "big")
    pkt = out[i + 5:i + 4 + ln]
    expect_eq(pkt[0], 20, "KEXINIT")
    j, lists = 17, []
    for _ in range(10):
        n = int.from_bytes(pkt[j:j + 4], "big")
        lists.append(pkt[j + 4:j + 4 + n].decode())
        j += 4 + n
    expect_eq(lists[2], "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,"
              "aes128-gcm@openssh.com,aes256-ctr,aes128-ctr", "ciphers")
    expect_eq(lists[4], ",".join(MACS), "MACs")
    expect_eq(lists[1], "ssh-ed25519", "host key algorithms with the default key")


@tap.check("OpenSSH ssh -c aes128-ctr/aes256-ctr -m each hmac-sha2 MAC: exec, exit status, "
           "3 MiB both ways (proxy --ssh)")
def _():
    data = open(os.path.join(S["tmp"], "data"), "rb").read()
    for c in CTR:
        for m in MACS:
            r = runp(ssh_base("-v", "-c", c, "-m", m, "-o", "ProxyCommand=" + proxy_cmd(), "x",
                              "cat; exit 9"), input=data, timeout=120)
            expect(r.rc == 9 and r.out == data,
                   "%s %s: exit %d, %d of %d bytes\n%s" % (c, m, r.rc, len(r.out), len(data),
                                                           r.describe()))
            want = "kex: server->client cipher: %s MAC: %s" % (c, m)
            expect(want.encode() in r.err, "%s %s negotiated: %r" % (c, m, r.err[-1500:]))


@tap.check("strict kex and rekey with aes-ctr + MAC: RekeyLimit=256K over 3 MiB, etm and not")
def _():
    data = open(os.path.join(S["tmp"], "data"), "rb").read()
    for c, m in (("aes128-ctr", "hmac-sha2-256-etm@openssh.com"), ("aes256-ctr", "hmac-sha2-512")):
        r = runp(ssh_base("-vv", "-c", c, "-m", m, "-o", "RekeyLimit=256K", "-o",
                          "ProxyCommand=" + proxy_cmd(), "x", "cat"), input=data, timeout=120)
        n = r.err.count(b"SSH2_MSG_NEWKEYS received")
        expect(r.rc == 0 and r.out == data and n >= 5,
               "%s %s: exit %d, identical %s, %d key exchanges\n%s" % (
                   c, m, r.rc, r.out == data, n, r.describe()))
        # Both proposals name strict kex: OpenSSH then resets the sequence
        # numbers at each NEWKEYS, and so must we or the MACs fail.
        props = re.findall(rb"debug2: KEX algorithms: (\S+)", r.err)
        expect(len(props) >= 2 and b"kex-strict-c-v00@openssh.com" in props[0]
               and b"kex-strict-s-v00@openssh.com" in props[1], "strict kex: %r" % props[:2])


@tap.check("a bit flipped after kex fails the MAC check with aes-ctr, etm and not")
def _():
    flip = os.path.join(HERE, "ssh_flip.py")
    for c in CTR:
        for m in MACS:
            pc = "ProxyCommand=%s %s 200000 %s" % (sys.executable, flip, proxy_cmd())
            r = runp(ssh_base("-c", c, "-m", m, "-o", pc, "x", "cat >/dev/null"),
                     input=os.urandom(1 << 20), timeout=60)
            expect(r.rc == 255 and b"message authentication failed" in r.err,
                   "%s %s\n%s" % (c, m, r.describe()))


def need_paramiko():
    if not os.access(SYS_PY, os.X_OK):
        raise Skip("no " + SYS_PY)
    r = run([SYS_PY, "-W", "ignore", "-c", "import paramiko; print(paramiko.__version__)"])
    if r.rc != 0:
        raise Skip("%s lacks paramiko (Debian python3-paramiko)" % SYS_PY)
    return r.out.decode().strip()


PARAMIKO = r"""
import paramiko, sys, os, socket
port, tmp, cipher, mac, hostalg, want_pub = sys.argv[1:7]
if port == "proxy":
    sock = paramiko.ProxyCommand(sys.argv[7])
else:
    sock = socket.create_connection(("127.0.0.1", int(port)))
t = paramiko.Transport(sock)
o = t.get_security_options()
o.ciphers = (cipher,)
o.digests = (mac,)
if hostalg != "-":
    o.key_types = (hostalg,)
t.start_client(timeout=30)
hk = t.get_remote_server_key()
assert hk.get_name() + " " + hk.get_base64() == want_pub, (hk.get_name(), want_pub[:30])
assert (t.remote_cipher, t.remote_mac, t.local_cipher, t.local_mac) == (cipher, mac, cipher, mac)
if port == "proxy":
    t.auth_none("root")
else:
    t.auth_publickey("root", paramiko.Ed25519Key.from_private_key_file(tmp + "/id"))
ch = t.open_session()
ch.exec_command("echo paramiko $((6*7)); exit 5")
out = ch.makefile().read()
assert (out, ch.recv_exit_status()) == (b"paramiko 42\n", 5), (out,)
sftp = paramiko.SFTPClient.from_transport(t)
dst = tmp + "/pm-%s-%s" % (cipher, mac.split("@")[0])
sftp.put(tmp + "/data", dst)
sftp.get(dst, dst + ".back")
assert open(dst + ".back", "rb").read() == open(tmp + "/data", "rb").read()
t.close()
print("ok", cipher, mac)
"""


def pubkey(t):
    return " ".join(open(os.path.join(S["tmp"], "host_%s.pub" % t)).read().split()[:2])


@tap.check("python3-paramiko 2.12 (no AEAD): every aes-ctr x hmac-sha2 pair against serve: "
           "exec, exit status, sftp put and get")
def _():
    ver = need_paramiko()
    port, log = serve_all()
    for c in CTR:
        for m in MACS:
            r = runp([SYS_PY, "-W", "ignore", "-c", PARAMIKO, str(port), S["tmp"], c, m,
                      "ssh-ed25519", pubkey("ed25519")], timeout=120)
            expect(r.rc == 0 and r.out.startswith(b"ok "),
                   "paramiko %s %s %s\n%s" % (ver, c, m, r.describe()))
    expect(b"key exchange 1 done (aes256-ctr hmac-sha2-512)" in log_text(log),
           "serve's log names the pair: %r" % log_text(log)[-600:])


@tap.check("python3-paramiko through proxy --ssh (ProxyCommand), aes128-ctr + hmac-sha2-256")
def _():
    need_paramiko()
    r = runp([SYS_PY, "-W", "ignore", "-c", PARAMIKO, "proxy", S["tmp"], "aes128-ctr",
              "hmac-sha2-256", "ssh-ed25519", pubkey("ed25519"),
              proxy_cmd("--host-key", os.path.join(S["tmp"], "host_ed25519"))], timeout=120)
    expect(r.rc == 0 and r.out.startswith(b"ok "), "paramiko via ProxyCommand\n" + r.describe())


@tap.check("python3-paramiko with each host key algorithm (ed25519, ecdsa, rsa-sha2-512/256)")
def _():
    need_paramiko()
    port, _log = serve_all()
    for alg, t in HOSTALGS.items():
        r = runp([SYS_PY, "-W", "ignore", "-c", PARAMIKO, str(port), S["tmp"], "aes256-ctr",
                  "hmac-sha2-256-etm@openssh.com", alg, pubkey(t)], timeout=120)
        expect(r.rc == 0, "paramiko host key %s\n%s" % (alg, r.describe()))


@tap.check("curl sftp:// (libssh2, no AEAD here): download and upload against serve")
def _():
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    v = run(["curl", "-V"]).out.decode()
    m = re.search(r"libssh2/(\S+)", v)
    if not m or "sftp" not in v:
        raise Skip("this curl has no sftp:// through libssh2: " + v.splitlines()[0])
    port, log = serve_all()
    tmp = S["tmp"]
    mark = len(log_text(log))
    base = ["curl", "-sS", "--fail", "-k", "--key", tmp + "/id", "--pubkey", tmp + "/id.pub"]
    r = runp(base + ["-o", tmp + "/curl.down", "sftp://root@127.0.0.1:%d%s/data" % (port, tmp)],
             timeout=120)
    expect(r.rc == 0 and open(tmp + "/curl.down", "rb").read() == open(tmp + "/data", "rb").read(),
           "curl download (libssh2 %s)\n%s" % (m.group(1), r.describe()))
    r = runp(base + ["-T", tmp + "/data", "sftp://root@127.0.0.1:%d%s/curl.up" % (port, tmp)],
             timeout=120)
    expect(r.rc == 0 and open(tmp + "/curl.up", "rb").read() == open(tmp + "/data", "rb").read(),
           "curl upload\n" + r.describe())
    text = log_text(log)[mark:]
    got = re.findall(rb"key exchange 1 done \(([^)]*)\)", text)
    expect(got, "serve logged the pair curl used: %r" % text[-600:])
    if m.group(1).startswith(("1.9", "1.10")):
        expect(all(g.split()[0] in (b"aes128-ctr", b"aes256-ctr") for g in got),
               "libssh2 %s has no AEAD cipher, so it used aes-ctr: %r" % (m.group(1), got))
    tap._diag("curl %s used %s" % (m.group(1), sorted(set(g.decode() for g in got))))


# ---------------------------------------------------------------- host keys


@tap.check("ssh-keyscan -t rsa,ecdsa,ed25519 against serve with three --host-key: each "
           "equals ssh-keygen's .pub")
def _():
    port, _log = serve_all()
    for t in ("rsa", "ecdsa", "ed25519"):
        r = runp(["ssh-keyscan", "-p", str(port), "-t", t, "127.0.0.1"], timeout=30)
        lines = [ln for ln in r.out.decode().splitlines() if ln and not ln.startswith("#")]
        expect_eq([" ".join(ln.split()[1:3]) for ln in lines], [pubkey(t)], "keyscan -t " + t)


@tap.check("ssh -o HostKeyAlgorithms=X logs in with the host key pinned, for each algorithm "
           "(serve and proxy --ssh)")
def _():
    port, _log = serve_all()
    tmp = S["tmp"]
    for alg, t in HOSTALGS.items():
        kh = os.path.join(tmp, "kh_" + alg)
        with open(kh, "w") as f:
            f.write("[127.0.0.1]:%d %s\npinned %s\n" % (port, pubkey(t), pubkey(t)))
        common = ["ssh", "-F", "/dev/null", "-v", "-o", "BatchMode=yes", "-o",
                  "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + kh, "-o",
                  "IdentitiesOnly=yes", "-i", tmp + "/id", "-o", "HostKeyAlgorithms=" + alg]
        r = runp(common + ["-p", str(port), "root@127.0.0.1", "echo in"], timeout=60)
        expect(r.rc == 0 and r.out == b"in\n", "serve %s\n%s" % (alg, r.describe()))
        expect(("kex: host key algorithm: " + alg).encode() in r.err, "negotiated " + alg)
        r = runp(common + ["-o", "HostKeyAlias=pinned", "-o",
                           "ProxyCommand=" + proxy_cmd(*host_key_args()), "x", "echo in"],
                 timeout=60)
        expect(r.rc == 0 and r.out == b"in\n", "proxy --ssh %s\n%s" % (alg, r.describe()))


@tap.check("default: one ed25519 host key, keyscan -t rsa,ecdsa finds nothing; "
           "only rsa: ed25519-only clients are refused with the reason")
def _():
    port, log = start_serve()
    r = runp(["ssh-keyscan", "-p", str(port), "-t", "rsa,ecdsa", "127.0.0.1"], timeout=30)
    expect_eq([ln for ln in r.out.decode().splitlines() if ln and not ln.startswith("#")], [],
              "keyscan -t rsa,ecdsa against the default key")
    r = runp(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"], timeout=30)
    expect(b"ssh-ed25519 " in r.out, "the default ed25519 key: %r" % r.out)
    port, log = start_serve(*host_key_args(["rsa"]))
    r = runp(ssh_base("-o", "HostKeyAlgorithms=ssh-ed25519", "-p", str(port), "root@127.0.0.1",
                      "true"), timeout=60)
    expect(r.rc == 255, "ed25519-only client against an rsa-only server\n" + r.describe())
    wait_until(lambda: b"no common host key algorithm (we have rsa-sha2-512,rsa-sha2-256)"
               in log_text(log), what="the refusal in serve's log")


@tap.check("--host-key: a second key of one type, a 0644 key, a 1024-bit rsa key are refused "
           "at start-up with the reason")
def _():
    tmp = S["tmp"]
    r = runp(wicket("proxy", "--ssh", "--host-key", tmp + "/host_rsa", "--host-key",
                    tmp + "/host_rsa", S["agent"].target), input=b"")
    expect(r.rc == 255 and b"a second ssh-rsa host key" in r.err, r.describe())
    run(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", tmp + "/weak"])
    r = runp(wicket("proxy", "--ssh", "--host-key", tmp + "/weak", S["agent"].target), input=b"")
    expect(r.rc == 255 and b"1024 bits" in r.err, r.describe())
    os.chmod(tmp + "/weak", 0o644)
    r = runp(wicket("proxy", "--ssh", "--host-key", tmp + "/weak", S["agent"].target), input=b"")
    expect(r.rc == 255 and b"too open" in r.err, r.describe())


# ---------------------------------------------------------------- identification, early IGNORE


@tap.check("proxy --ssh: an empty line, garbage, a line before the version, SSH-1.5: exit 255 "
           "at once with 'Invalid SSH identification string'")
def _():
    for inp, answer in ((b"\r\n", b"Invalid SSH identification string.\r\n"),
                        (b"garbage\r\n", b"Invalid SSH identification string.\r\n"),
                        (b"hello\r\nSSH-2.0-late\r\n", b"Invalid SSH identification string.\r\n"),
                        (b"garbage", b"Invalid SSH identification string.\r\n"),
                        (b"SSH-1.5-old\r\n", b"Protocol major versions differ.\r\n")):
        # stdin stays open: exiting must not wait for EOF.
        p = subprocess.Popen(wicket("proxy", "--ssh", S["agent"].target), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=S["env"])
        t0 = time.monotonic()
        p.stdin.write(inp)
        p.stdin.flush()
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Failure("%r: still running after 10 s" % inp)
        dt = time.monotonic() - t0
        expect(p.returncode == 255 and b"Invalid SSH identification string" in err and dt < 5,
               "%r: exit %d after %.1f s, stderr %r" % (inp, p.returncode, dt, err))
        # Our version line and sshd's answer, no KEXINIT: it follows a good version line.
        expect(re.fullmatch(rb"SSH-2\.0-wicket_\S+\r\n" + re.escape(answer), out),
               "%r: what the client got: %r" % (inp, out[-200:]))


@tap.check("serve drops a client with a bad identification line at once (not after the "
           "grace time) and logs it with the address")
def _():
    port, log = serve_all()
    for inp in (b"\r\n", b"garbage\r\n", b"SSH-1.0-x\r\n"):
        mark = len(log_text(log))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        c.sendall(inp)
        got = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            got += d
        dt = time.monotonic() - t0
        c.close()
        expect(dt < 5 and (b"\r\nInvalid SSH identification string.\r\n" in got
                           or b"\r\nProtocol major versions differ.\r\n" in got),
               "%r: closed after %.1f s, got %r" % (inp, dt, got[-200:]))
        wait_until(lambda: re.search(rb"127\.0\.0\.1: Invalid SSH identification string",
                                     log_text(log)[mark:]), what="the log line for %r" % inp)
        wait_until(lambda: b"127.0.0.1: connection closed before authentication: Invalid SSH "
                   b"identification string" in log_text(log)[mark:],
                   what="the [preauth] line for %r" % inp)
    # Still serving.
    r = runp(ssh_base("-p", str(port), "root@127.0.0.1", "echo alive"), timeout=60)
    expect_eq((r.rc, r.out), (0, b"alive\n"), "serve after bad clients\n" + r.describe())


def raw(scenario):
    r = run([SYS_PY, "-W", "ignore", "-c", "import cryptography"])
    if r.rc != 0:
        raise Skip("%s lacks cryptography (Debian python3-cryptography)" % SYS_PY)
    r = runp([SYS_PY, "-W", "ignore", os.path.join(HERE, "ssh_rawclient.py"), scenario]
             + wicket("proxy", "--ssh", S["agent"].target))
    return r.out.decode().strip(), r


@tap.check("IGNORE and DEBUG before KEXINIT: accepted without strict kex (RFC 4253 11.2), "
           "a disconnect with it")
def _():
    res, r = raw("ignore-before-kexinit-nostrict")
    expect_eq(res, "OK relayed", "without strict kex\n" + r.describe())
    res, r = raw("ignore-before-kexinit")
    expect(res.startswith("DISCONNECT 2 strict kex: KEXINIT was not the first packet"),
           "with strict kex\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
