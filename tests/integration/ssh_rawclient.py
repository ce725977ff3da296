#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A deliberately small, misbehaving SSH client for wicket's negative tests.

Runs under Debian's /usr/bin/python3 (needs python3-cryptography).  Speaks to
`CMD...` over its stdin/stdout (e.g. `wicket proxy --ssh TARGET`): version
exchange, curve25519-sha256 with strict kex (without it for scenarios ending
in "-nostrict"), aes256-gcm@openssh.com, then does
one SCENARIO and prints what the server answered, one line:
  DISCONNECT <code> <reason> | EOF | OK <detail> | UNEXPECTED <type>
The host key signature is not checked: this is a test of the server's
reactions, not a client to trust.
"""

import hashlib
import os
import struct
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization


def u32(v):
    return struct.pack(">I", v)


def sstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def mpint(b):
    b = b.lstrip(b"\0")
    if b and b[0] & 0x80:
        b = b"\0" + b
    return sstr(b)


class R:
    def __init__(self, d):
        self.d, self.i = d, 0

    def take(self, n):
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def s(self):
        return self.take(self.u32())


class Eof(Exception):
    pass


class Client:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        self.tx = self.rx = None  # (AESGCM, iv bytearray)

    def read(self, n):
        while len(self.buf) < n:
            d = os.read(self.p.stdout.fileno(), 65536)
            if not d:
                raise Eof()
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n:]
        return v

    def line(self):
        while b"\n" not in self.buf:
            d = os.read(self.p.stdout.fileno(), 65536)
            if not d:
                raise Eof()
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r")

    def write(self, b):
        try:
            self.p.stdin.write(b)
            self.p.stdin.flush()
        except BrokenPipeError:
            pass  # the server hung up: what it said is still to be read

    @staticmethod
    def bump(iv):
        n = int.from_bytes(iv[4:], "big") + 1
        iv[4:] = (n & (2**64 - 1)).to_bytes(8, "big")

    def send(self, payload, raw_len=None):
        bs = 16 if self.tx else 8
        base = (1 + len(payload)) if self.tx else (5 + len(payload))
        pad = bs - base % bs
        if pad < 4:
            pad += bs
        body = bytes([pad]) + payload + os.urandom(pad)
        ln = u32(raw_len if raw_len is not None else len(body))
        if not self.tx:
            self.write(ln + body)
            return
        g, iv = self.tx
        ct = g.encrypt(bytes(iv), body, ln)
        self.bump(iv)
        self.write(ln + ct)

    def recv(self):
        ln = self.read(4)
        n = struct.unpack(">I", ln)[0]
        if n > 300000:
            raise Exception("server sent length %d" % n)
        if not self.rx:
            body = self.read(n)
        else:
            g, iv = self.rx
            body = g.decrypt(bytes(iv), self.read(n + 16), ln)
            self.bump(iv)
        return body[1:len(body) - body[0]]

    def expect(self, want):
        while True:
            p = self.recv()
            if p[0] in (2, 4, 7):  # IGNORE, DEBUG, EXT_INFO
                continue
            if p[0] != want:
                raise Unexpected(p)
            return p


class Unexpected(Exception):
    def __init__(self, p):
        self.p = p


def kexinit(strict=True):
    kex = "curve25519-sha256" + (",kex-strict-c-v00@openssh.com" if strict else "")
    return (bytes([20]) + os.urandom(16) + sstr(kex)
            + sstr("ssh-ed25519") + sstr("aes256-gcm@openssh.com") * 2
            + sstr("hmac-sha2-256") * 2 + sstr("none") * 2 + sstr("") * 2 + b"\0" + u32(0))


def kex(c, scenario):
    vc = b"SSH-2.0-rawclient"
    c.write(vc + b"\r\n")
    vs = c.line()
    while not vs.startswith(b"SSH-"):
        vs = c.line()
    if scenario.startswith("ignore-before-kexinit"):
        # RFC 4253 11.2: fine at any time, unless strict kex is asked for.
        c.send(bytes([2]) + sstr("before kexinit"))
        c.send(bytes([4, 0]) + sstr("debug before kexinit") + sstr(""))
    ic = kexinit(strict=not scenario.endswith("-nostrict"))
    c.send(ic)
    if scenario == "ignore-in-kex":
        c.send(bytes([2]) + sstr("x"))
    if scenario == "oversize-in-kex":
        c.write(u32(300000) + b"\0" * 64)
    is_ = c.expect(20)
    priv = X25519PrivateKey.generate()
    qc = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    c.send(bytes([30]) + sstr(qc))
    r = R(c.expect(31)[1:])
    ks, qs, _sig = r.s(), r.s(), r.s()
    k = priv.exchange(X25519PublicKey.from_public_bytes(qs))
    km = mpint(k)
    h = hashlib.sha256(sstr(vc) + sstr(vs) + sstr(ic) + sstr(is_) + sstr(ks) + sstr(qc)
                       + sstr(qs) + km).digest()

    def derive(letter, n):
        out = hashlib.sha256(km + h + letter + h).digest()
        while len(out) < n:
            out += hashlib.sha256(km + h + out).digest()
        return out[:n]
    c.expect(21)
    c.send(bytes([21]))
    c.tx = (AESGCM(derive(b"C", 32)), bytearray(derive(b"A", 12)))
    c.rx = (AESGCM(derive(b"D", 32)), bytearray(derive(b"B", 12)))


def scenario_run(c, sc):
    kex(c, sc)
    if sc == "conn-before-auth":
        c.send(bytes([90]) + sstr("session") + u32(0) + u32(65536) + u32(32768))
        c.expect(91)
        return "OK accepted a channel before auth"
    if sc == "oversize":
        c.send(b"\x02" + sstr("x"), raw_len=300000)
        c.write(b"\0" * 64)
        c.expect(2)
        return "OK"
    c.send(bytes([5]) + sstr("ssh-userauth"))
    c.expect(6)
    if sc == "userauth-success":
        c.send(bytes([52]))
        c.expect(52)
        return "OK accepted USERAUTH_SUCCESS"
    c.send(bytes([50]) + sstr("root") + sstr("ssh-connection") + sstr("none"))
    c.expect(52)
    if sc == "guest-msg":
        c.send(bytes([5]) + sstr("ssh-userauth"))  # not connection layer after auth
        c.expect(6)
        return "OK"
    # "ok": a real exec through the relay
    c.send(bytes([90]) + sstr("session") + u32(7) + u32(1 << 20) + u32(32768))
    r = R(c.expect(91)[1:])
    r.u32()
    them = r.u32()
    c.send(bytes([98]) + u32(them) + sstr("exec") + b"\1" + sstr("echo relayed"))
    out = b""
    while True:
        p = c.recv()
        if p[0] == 94:
            rr = R(p[1:])
            rr.u32()
            out += rr.s()
        if p[0] in (96, 97):
            break
    return "OK " + out.decode().strip()


def main():
    sc = sys.argv[1]
    c = Client(sys.argv[2:])
    try:
        res = scenario_run(c, sc)
    except Eof:
        res = "EOF"
    except Unexpected as e:
        p = e.p
        if p[0] == 1:
            r = R(p[1:])
            code = r.u32()
            res = "DISCONNECT %d %s" % (code, r.s().decode("utf-8", "replace"))
        else:
            res = "UNEXPECTED %d" % p[0]
    print(res, flush=True)
    try:
        c.p.stdin.close()
    except (OSError, ValueError):
        pass
    c.p.wait(timeout=10)


if __name__ == "__main__":
    main()
