#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the hand-made seeds of the fuzz corpora (tests/fuzz/corpus/*/gen-*).

Seeds captured from real sessions (cap-*) are kept as they are; see
tests/fuzz/README.md for how they were recorded.  Re-running this script
rewrites every gen-* file (deterministically, except for ECDSA signatures,
which are randomised by nature).  Needs python3-cryptography for the signed
seeds (publickey userauth, sshkey_verify).
"""
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # pragma: no cover
    sys.exit("mkcorpus.py: needs python3-cryptography")


def u32(n):
    return struct.pack(">I", n)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def u64(n):
    return struct.pack(">Q", n)


def mpint(n):
    if n == 0:
        return s(b"")
    b = n.to_bytes((n.bit_length() + 8) // 8, "big")
    return s(b)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "gen-" + name), "wb") as f:
        f.write(data)


def clean():
    for t in os.listdir(CORPUS):
        d = os.path.join(CORPUS, t)
        for f in os.listdir(d):
            if f.startswith("gen-"):
                os.unlink(os.path.join(d, f))


# ---------------------------------------------------------------- keys

def load_key(name):
    with open(os.path.join(HERE, "keys", name), "rb") as f:
        return serialization.load_ssh_private_key(f.read(), password=None)


def pub_blob(name):
    with open(os.path.join(HERE, "keys", name + ".pub")) as f:
        import base64
        return base64.b64decode(f.read().split()[1])


def sign(name, algo, data):
    """An SSH signature blob (string algo + string sig) over data."""
    k = load_key(name)
    if name == "ed25519":
        return s(algo) + s(k.sign(data))
    if name == "ecdsa":
        r, ss = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
        return s(algo) + s(mpint(r) + mpint(ss))
    md = hashes.SHA256() if algo == "rsa-sha2-256" else hashes.SHA512()
    return s(algo) + s(k.sign(data, padding.PKCS1v15(), md))


# ---------------------------------------------------------------- conn

GREETING = b"SSHCONNECTION@putty.projects.tartarus.org-2.0-fuzz\r\n"


def pkt(payload):
    return u32(len(payload)) + payload


def conn_hdr(maxchunk=256, opts=0, seed=1):
    return bytes([maxchunk - 1, opts, seed >> 8, seed & 0xFF])


def chan_open(kind, sender, win=0x10000, maxpkt=0x4000, extra=b""):
    return pkt(bytes([90]) + s(kind) + u32(sender) + u32(win) + u32(maxpkt) + extra)


def chan_req(rid, kind, want, args=b""):
    return pkt(bytes([98]) + u32(rid) + s(kind) + bytes([want]) + args)


def data(rid, d, ext=None):
    if ext is None:
        return pkt(bytes([94]) + u32(rid) + s(d))
    return pkt(bytes([95]) + u32(rid) + u32(ext) + s(d))


def eof(rid):
    return pkt(bytes([96]) + u32(rid))


def close(rid):
    return pkt(bytes([97]) + u32(rid))


def gen_conn():
    pty = s("xterm") + u32(80) + u32(24) + u32(0) + u32(0) + s(bytes([1, 0, 0, 0, 3, 53, 0, 0, 0, 1, 0]))
    exec_true = GREETING + chan_open("session", 0) + chan_req(0, "exec", 1, s("true")) + close(0)
    write("conn", "exec-true", conn_hdr(256) + exec_true)
    write("conn", "exec-true-bytewise", conn_hdr(1, 0, 7) + exec_true)
    shell = (GREETING + chan_open("session", 3) + chan_req(0, "pty-req", 1, pty)
             + chan_req(0, "env", 1, s("LANG") + s("C.UTF-8"))
             + chan_req(0, "env", 0, s("EVIL") + s("x"))
             + chan_req(0, "shell", 1) + data(0, b"ls\n") + data(0, b"err", 1)
             + chan_req(0, "window-change", 0, u32(100) + u32(40) + u32(0) + u32(0))
             + chan_req(0, "signal", 0, s("TERM")) + eof(0) + close(0))
    write("conn", "shell-pty", conn_hdr(16, 1, 3) + shell)
    write("conn", "shell-pty-small-window", conn_hdr(5, 2 | 8 | 16, 9) + shell)
    argv = (GREETING + chan_open("session", 1) + chan_req(0, "exec-argv@wicket", 1,
            u32(3) + s("printf") + s("%s\n") + s("a b")) + data(0, b"x" * 200) + eof(0)
            + pkt(bytes([93]) + u32(0) + u32(1000)) + close(0))
    write("conn", "exec-argv", conn_hdr(64, 8, 11) + argv)
    two = (GREETING + chan_open("session", 1) + chan_open("session", 2) + chan_open("session", 3)
           + chan_req(1, "subsystem", 1, s("sftp")) + chan_req(0, "exec", 1, s("sleep 1"))
           + pkt(bytes([80]) + s("no-more-sessions@openssh.com") + b"\x00")
           + pkt(bytes([80]) + s("keepalive@openssh.com") + b"\x01")
           + close(1) + close(0) + close(2))
    write("conn", "three-sessions-cap2", conn_hdr(32, 4, 5) + two)
    fwd = (GREETING + pkt(bytes([80]) + s("tcpip-forward") + b"\x01" + s("127.0.0.1") + u32(0))
           + pkt(bytes([91]) + u32(0) + u32(9) + u32(0x8000) + u32(0x4000))
           + data(0, b"reply") + eof(0) + close(0)
           + pkt(bytes([80]) + s("tcpip-forward") + b"\x01" + s("") + u32(8080))
           + pkt(bytes([92]) + u32(0) + u32(2) + s("no") + s(""))
           + pkt(bytes([80]) + s("cancel-tcpip-forward") + b"\x01" + s("") + u32(8080)))
    write("conn", "tcpip-forward", conn_hdr(256, 0, 1) + fwd)
    direct = (GREETING
              + chan_open("direct-tcpip", 4, extra=s("localhost") + u32(22) + s("1.2.3.4") + u32(5))
              + chan_open("direct-tcpip", 5, extra=s("localhost") + u32(23) + s("1.2.3.4") + u32(5))
              + chan_open("x11", 6) + data(0, b"early") + data(0, b"hello") + eof(0) + close(0))
    write("conn", "direct-tcpip", conn_hdr(8, 0, 2) + direct)
    big = GREETING + chan_open("session", 0) + chan_req(0, "exec", 1, s("big"))
    write("conn", "exec-big", conn_hdr(256, 0, 4) + big + pkt(bytes([93]) + u32(0) + u32(0x100000)) + eof(0))
    # Hostile ones.
    write("conn", "garbage-before-greeting", conn_hdr(256) + b"\x00stale\xffbytes SSHCONN" + exec_true)
    write("conn", "long-greeting", conn_hdr(256) + GREETING[:-2] + b"v" * 300 + b"\r\n")
    write("conn", "zero-length", conn_hdr(256) + GREETING + u32(0))
    write("conn", "huge-length", conn_hdr(256) + GREETING + u32(0x7FFFFFFF) + b"\x5a")
    write("conn", "kexinit", conn_hdr(256) + GREETING + pkt(bytes([20]) + b"\x00" * 16))
    write("conn", "unknown-conn-msg", conn_hdr(256) + GREETING + pkt(bytes([120, 1, 2])) + pkt(bytes([2]) + s("ign")))
    write("conn", "window-overflow", conn_hdr(256) + GREETING + chan_open("session", 0, win=0xFFFFFFF0)
          + pkt(bytes([93]) + u32(0) + u32(0x100)))
    # zlib@wicket: the request, then every packet raw-deflated on one stream
    # with a sync flush per packet whose 00 00 ff ff tail is left out.
    def zstream(payloads):
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        out = b""
        for p in payloads:
            d = co.compress(p) + co.flush(zlib.Z_SYNC_FLUSH)
            assert d.endswith(b"\x00\x00\xff\xff")
            out += pkt(d[:-4])
        return out
    zreq = pkt(bytes([80]) + s("zlib@wicket") + bytes([1]))
    sess = [bytes([90]) + s("session") + u32(0) + u32(0x10000) + u32(0x4000),
            bytes([98]) + u32(0) + s("exec") + bytes([1]) + s("true"),
            bytes([94]) + u32(0) + s(b"some input " * 50), bytes([96]) + u32(0),
            bytes([97]) + u32(0)]
    write("conn", "zlib-session", conn_hdr(256) + GREETING + zreq + zstream(sess))
    write("conn", "zlib-session-bytewise", conn_hdr(1, 0, 3) + GREETING + zreq + zstream(sess))
    write("conn", "zlib-ports", conn_hdr(16, 1, 5) + GREETING + zreq + zstream(sess))
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    bd = bomb.compress(bytes([94]) + u32(0) + u32(1 << 20) + bytes(1 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    write("conn", "zlib-bomb", conn_hdr(256) + GREETING + zreq + zstream(sess[:1]) + pkt(bd[:-4]))
    write("conn", "zlib-garbage", conn_hdr(256) + GREETING + zreq + pkt(b"\xff\xfe\x13\x37garbage"))
    write("conn", "zlib-twice", conn_hdr(64) + GREETING + zreq + zstream([bytes([80]) + s("zlib@wicket") + bytes([1])] + sess))
    write("conn", "data-over-window", conn_hdr(256, 2) + GREETING + chan_open("session", 0)
          + data(0, b"y" * 100))
    write("conn", "wrong-channel", conn_hdr(256) + GREETING + data(7, b"x"))
    write("conn", "zero-maxpkt", conn_hdr(256) + GREETING + chan_open("session", 0, maxpkt=0))
    write("conn", "reply-unasked", conn_hdr(256) + GREETING + chan_open("session", 0) + pkt(bytes([99]) + u32(0)))
    write("conn", "disconnect", conn_hdr(256) + GREETING + chan_open("session", 0)
          + pkt(bytes([1]) + u32(11) + s("bye") + s("")))
    write("conn", "data-after-eof", conn_hdr(256) + GREETING + chan_open("session", 0) + eof(0) + data(0, b"late"))
    write("conn", "double-close", conn_hdr(256) + GREETING + chan_open("session", 0) + close(0) + close(0))
    # Ports (option bit 0): what hosts that are gone leave, and the host after them.
    pfx = GREETING[:-len(b"fuzz\r\n")]
    live = pfx + b"live nonce@wicket=n1\r\n" + chan_open("session", 0) + chan_req(0, "exec", 1, s("true"))
    bye = pkt(bytes([1]) + u32(11) + s("client gave up") + s(""))
    write("conn", "port-stale-greetings", conn_hdr(256, 1) + pfx + b"dead1\r\n" + chan_open("session", 0)
          + pfx + b"dead2\r\n" + chan_open("session", 0) + bye + live)
    write("conn", "port-gave-up", conn_hdr(16, 1, 3) + pfx + b"dead\r\n" + chan_open("session", 0) + bye
          + b"\x00\xffjunk" + live)
    write("conn", "port-cut-greeting", conn_hdr(7, 1, 5) + pfx + b"wic" + pfx[:20] + live)
    write("conn", "port-long-line", conn_hdr(256, 1) + pfx + b"v" * 300 + live)
    write("conn", "port-restart", conn_hdr(8, 1, 3) + GREETING + chan_open("session", 0)
          + chan_req(0, "exec", 1, s("sleep")) + live)
    write("conn", "port-greeting-in-packet", conn_hdr(32, 1, 9) + GREETING + chan_open("session", 0)
          + u32(1000) + bytes([94]) + u32(0) + live)
    write("conn", "port-half-length", conn_hdr(8, 1, 4) + GREETING + b"\x00\x00" + live)
    write("conn", "port-cut-disconnect", conn_hdr(8, 1, 6) + GREETING + chan_open("session", 0)
          + pkt(bytes([1]) + u32(11) + s("session finished") + s(""))[:13] + live)
    # The host side (bit 5): an answer meant for another host, then ours.
    write("conn", "host-foreign-answer", conn_hdr(64, 32, 2) + pfx + b"agent reply@wicket=other\r\n"
          + pkt(bytes([91]) + u32(0) + u32(0) + u32(0x8000) + u32(0x4000)) + pfx + b"agent reply@wicket=-\r\n"
          + pfx + b"agent reply@wicket=fz\r\n" + chan_open("session", 0) + chan_req(0, "exec", 1, s("true")))


# ---------------------------------------------------------------- sftp

def sp(t, body):
    b = bytes([t]) + body
    return u32(len(b)) + b


def handle(slot, gen):
    return s(u32(slot) + u32(gen))


def attrs(flags=0, size=None, perm=None, times=None, ids=None):
    b = u32(flags)
    if flags & 1:
        b += u64(size)
    if flags & 2:
        b += u32(ids[0]) + u32(ids[1])
    if flags & 4:
        b += u32(perm)
    if flags & 8:
        b += u32(times[0]) + u32(times[1])
    return b


def ext(i, name, body=b""):
    return sp(200, u32(i) + s(name) + body)


def gen_sftp():
    init = sp(1, u32(3))
    # Handles are slot + generation; the first open gets slot 0, gen 1.
    h1, h2 = handle(0, 1), handle(1, 2)
    read_a = (init + sp(3, u32(1) + s("a") + u32(1) + attrs()) + sp(5, u32(2) + h1 + u64(0) + u32(4096))
              + sp(5, u32(3) + h1 + u64(100) + u32(10)) + sp(8, u32(4) + h1)
              + ext(5, "fstatvfs@openssh.com", h1) + sp(4, u32(6) + h1) + sp(4, u32(7) + h1))
    write("sftp", "read", bytes([0, 31]) + read_a)
    write("sftp", "read-chunked", bytes([0, 0]) + read_a)
    dirs = (init + sp(11, u32(1) + s(".")) + sp(12, u32(2) + h1) + sp(12, u32(3) + h1) + sp(4, u32(4) + h1)
            + sp(14, u32(5) + s("newdir") + attrs(4, perm=0o700)) + sp(15, u32(6) + s("newdir"))
            + sp(16, u32(7) + s("d/dl/..")) + sp(16, u32(8) + s("/../..")) + sp(17, u32(9) + s("l"))
            + sp(7, u32(10) + s("l")) + sp(19, u32(11) + s("l")) + sp(19, u32(12) + s("a")))
    write("sftp", "dirs", bytes([0, 255]) + dirs)
    write_f = (init + sp(3, u32(1) + s("new") + u32(0x1A) + attrs(4, perm=0o644))
               + sp(6, u32(2) + h1 + u64(0) + s(b"hello world\n")) + sp(6, u32(3) + h1 + u64(1 << 40) + s("x"))
               + sp(10, u32(4) + h1 + attrs(1 | 4 | 8, size=3, perm=0o600, times=(1, 2)))
               + ext(5, "fsync@openssh.com", h1) + ext(15, "lock@wicket", h1)
               + ext(16, "lock@wicket", h1 + u32(0)) + sp(4, u32(6) + h1)
               + sp(9, u32(7) + s("new") + attrs(1, size=100))
               + sp(18, u32(8) + s("new") + s("a")) + ext(9, "posix-rename@openssh.com", s("new") + s("a2"))
               + ext(10, "hardlink@openssh.com", s("a2") + s("d/hard")) + sp(20, u32(11) + s("a") + s("d/sym"))
               + ext(12, "lsetstat@openssh.com", s("d/sym") + attrs(8, times=(5, 6)))
               + sp(13, u32(13) + s("d/hard")) + sp(13, u32(14) + s("d")))
    write("sftp", "write", bytes([0, 15]) + write_f)
    write("sftp", "write-readonly", bytes([1, 15]) + write_f)
    write("sftp", "write-3-handles", bytes([2, 15]) + write_f)
    write("sftp", "write-deny", bytes([4, 3]) + write_f)
    escape = init
    for i, p in enumerate(["up", "../outside/secret", "/../outside/secret", "abs", "d/dl/../../outside/secret",
                           "/proc/self/root/etc/passwd", "d/dl/d/dl/up"]):
        escape += sp(3, u32(10 + i) + s(p) + u32(3) + attrs())
        escape += sp(17, u32(30 + i) + s(p))
        escape += sp(9, u32(50 + i) + s(p) + attrs(4, perm=0o777))
    escape += sp(20, u32(70) + s("/" + "../" * 8 + "etc") + s("esc"))
    escape += sp(11, u32(71) + s("esc"))
    escape += ext(72, "hardlink@openssh.com", s("up") + s("d/uplink"))
    escape += sp(18, u32(73) + s("up") + s("../outside/x"))
    write("sftp", "escape", bytes([0, 255]) + escape)
    exts = (init + ext(1, "limits@openssh.com") + ext(2, "expand-path@openssh.com", s("~"))
            + ext(3, "expand-path@openssh.com", s("~root/d")) + ext(4, "expand-path@openssh.com", s("~nobody"))
            + ext(5, "home-directory", s("")) + ext(6, "statvfs@openssh.com", s("."))
            + ext(7, "users-groups-by-id@openssh.com", s(u32(0) + u32(65534)) + s(u32(0)))
            + ext(8, "no-such@ext") + sp(99, u32(9)) + ext(10, "limits@openssh.com", b"x"))
    write("sftp", "extensions", bytes([0, 255]) + exts)
    copy = (init + sp(3, u32(1) + s("a") + u32(1) + attrs()) + sp(3, u32(2) + s("c") + u32(0x1A) + attrs())
            + ext(3, "copy-data", h1 + u64(0) + u64(0) + h2 + u64(0))
            + ext(4, "copy-data", h1 + u64(0) + u64(5) + h2 + u64(1 << 20))
            + ext(5, "copy-data", h1 + u64(0) + u64(0) + h1 + u64(0)))
    write("sftp", "copy-data", bytes([0, 255]) + copy)
    # Two handles on one file, copy to a higher offset "until EOF": the
    # copy chases its own end; the harness's RLIMIT_FSIZE stops it.
    selfcopy = (init + sp(3, u32(1) + s("a") + u32(3) + attrs()) + sp(3, u32(2) + s("a") + u32(3) + attrs())
                + ext(3, "copy-data", h1 + u64(0) + u64(0) + h2 + u64(6)))
    write("sftp", "copy-data-self", bytes([0, 255]) + selfcopy)
    bad = (sp(3, u32(1)) + sp(5, u32(2) + s("xx") + u64(0)) + u32(3) + b"\x05"
           + sp(3, u32(4) + s(b"a\x00b") + u32(1) + attrs()) + sp(4, u32(5) + handle(7, 7))
           + sp(3, u32(6) + s("a") + u32(1) + u32(0x80000000) + u32(2) + s("k") + s("v") + s("k2") + s("v2"))
           + u32(0x00100000))
    write("sftp", "malformed", bytes([0, 255]) + bad)
    write("sftp", "oversized", bytes([0, 255]) + init + u32(300 * 1024) + b"\x03")


# ---------------------------------------------------------------- ssh

def ssh_pkt(payload):
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return u32(1 + len(payload) + pad) + bytes([pad]) + payload + b"\x00" * pad


def namelist(*n):
    return s(",".join(n))


def kexinit(kex=("curve25519-sha256", "ext-info-c", "kex-strict-c-v00@openssh.com"),
            ciphers=("chacha20-poly1305@openssh.com",), comp=("none",), follows=0,
            hk=("ssh-ed25519",), macs=("hmac-sha2-256",)):
    return (bytes([20]) + b"\x11" * 16 + namelist(*kex) + namelist(*hk) + namelist(*ciphers)
            + namelist(*ciphers) + namelist(*macs) + namelist(*macs) + namelist(*comp)
            + namelist(*comp) + s("") + s("") + bytes([follows]) + u32(0))


# fuzz_ssh.c's byte 4 (bit 7 of byte 0): key sets and keys in force.
EXT = 128
CIPHER_NO = {"aes256-ctr": 3, "aes128-ctr": 4}
MAC_NO = {"hmac-sha2-256-etm@openssh.com": 0, "hmac-sha2-512-etm@openssh.com": 1,
          "hmac-sha2-256": 2, "hmac-sha2-512": 3}


def ctr_stream(cipher, mac, payloads, seq=3, corrupt=False):
    """Packets as a client with fuzz_ssh.c's fixed keys sends them (aes-ctr + HMAC)."""
    import hashlib
    import hmac as hm
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    key = b"\x11" * (32 if "256" in cipher else 16)
    enc = Cipher(algorithms.AES(key), modes.CTR(b"\x22" * 16)).encryptor()
    etm = mac.endswith("-etm@openssh.com")
    md = hashlib.sha512 if "512" in mac else hashlib.sha256
    mk = b"\x33" * md().digest_size
    out = b""
    for p in payloads:
        base = 1 + len(p) if etm else 5 + len(p)
        pad = 16 - base % 16
        if pad < 4:
            pad += 16
        body = bytes([pad]) + p + b"\x00" * pad
        ln = u32(len(body))
        if etm:
            ct = enc.update(body)
            out += ln + ct + hm.new(mk, u32(seq) + ln + ct, md).digest()
        else:
            tag = hm.new(mk, u32(seq) + ln + body, md).digest()
            out += enc.update(ln + body) + tag
        seq += 1
    if corrupt:
        out = out[:-1] + bytes([out[-1] ^ 1])
    return out


SESSION_ID = bytes(range(32))


def userauth_pk(user, key, algo, with_sig=True):
    blob = pub_blob(key)
    body = s(user) + s("ssh-connection") + s("publickey")
    if not with_sig:
        return bytes([50]) + body + b"\x00" + s(algo) + s(blob)
    signed = s(SESSION_ID) + bytes([50]) + body + b"\x01" + s(algo) + s(blob)
    return bytes([50]) + body + b"\x01" + s(algo) + s(blob) + s(sign(key, algo, signed))


def ssh_hdr(opts, chunk=255, guest=b"", ext=None):
    """fuzz_ssh.c's header; @ext is byte 4 (and sets bit 7 of byte 0)."""
    if ext is not None:
        return bytes([opts | EXT, chunk, len(guest) >> 8, len(guest) & 0xFF, ext]) + guest
    return bytes([opts, chunk, len(guest) >> 8, len(guest) & 0xFF]) + guest


def gen_ssh():
    ver = b"SSH-2.0-fuzz_client\r\n"
    q_c = bytes(range(1, 33))
    t = ssh_pkt(kexinit()) + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21]))
    write("ssh", "kex", ssh_hdr(0) + ver + t)
    write("ssh", "kex-bytewise", ssh_hdr(0, 0) + b"banner line\r\n" + ver + t)
    write("ssh", "kex-gcm-zlib", ssh_hdr(0) + ver + ssh_pkt(kexinit(ciphers=("aes256-gcm@openssh.com",),
          comp=("zlib@openssh.com", "none"))) + ssh_pkt(bytes([30]) + s(q_c)))
    write("ssh", "kex-guess", ssh_hdr(0) + ver + ssh_pkt(kexinit(kex=("sntrup761x25519-sha512@openssh.com",
          "curve25519-sha256"), follows=1)) + ssh_pkt(bytes([30]) + s(b"\x09" * 32)) + ssh_pkt(bytes([30]) + s(q_c)))
    write("ssh", "kex-nomatch", ssh_hdr(0) + ver + ssh_pkt(kexinit(kex=("diffie-hellman-group1-sha1",))))
    write("ssh", "kex-bad-len", ssh_hdr(0) + ver + u32(7) + b"\x04" * 7)
    write("ssh", "ssh1", ssh_hdr(0) + b"SSH-1.5-old\r\n")
    write("ssh", "ident-empty", ssh_hdr(0) + b"\r\n" + ver + t)
    write("ssh", "ident-garbage", ssh_hdr(0, 0) + b"garbage\r\n")
    # IGNORE and DEBUG before KEXINIT: fine without strict kex, not with it.
    early = ssh_pkt(bytes([2]) + s("x")) + ssh_pkt(bytes([4, 0]) + s("dbg") + s(""))
    write("ssh", "ignore-before-kexinit", ssh_hdr(0) + ver + early + ssh_pkt(kexinit(kex=("curve25519-sha256",)))
          + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21])))
    write("ssh", "ignore-before-kexinit-strict", ssh_hdr(0) + ver + early + t)
    # Host key algorithms (byte 4: 1 all three keys, 2 ecdsa only, 3 rsa only).
    for name, keys, hk in (("hk-ecdsa", 1, ("ecdsa-sha2-nistp256", "ssh-ed25519")),
                           ("hk-rsa512", 1, ("rsa-sha2-512", "rsa-sha2-256")),
                           ("hk-rsa256-only", 3, ("ssh-rsa", "rsa-sha2-256")),
                           ("hk-nomatch", 2, ("ssh-ed25519", "ssh-rsa"))):
        write("ssh", "kex-" + name, ssh_hdr(0, ext=keys) + ver + ssh_pkt(kexinit(hk=hk))
              + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21])))
    write("ssh", "kex-hk-guess", ssh_hdr(0, ext=1) + ver
          + ssh_pkt(kexinit(hk=("rsa-sha2-512", "ssh-ed25519"), follows=1))
          + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21])))
    # aes-ctr with each MAC negotiated; a cipher that needs a MAC and no common one.
    for c in ("aes128-ctr", "aes256-ctr"):
        for mac in MAC_NO:
            write("ssh", "kex-%s-%s" % (c, mac.split("@")[0]), ssh_hdr(0) + ver
                  + ssh_pkt(kexinit(ciphers=(c,), macs=(mac, "hmac-sha1")))
                  + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21])))
    write("ssh", "kex-ctr-nomac", ssh_hdr(0) + ver + ssh_pkt(kexinit(ciphers=("aes128-ctr",), macs=("hmac-sha1",))))
    # Mode 1: after the key exchange, "none" cipher kept.
    svc = ssh_pkt(bytes([5]) + s("ssh-userauth"))
    guest = (GREETING + pkt(bytes([91]) + u32(0) + u32(0) + u32(0x200000) + u32(0x8000))
             + pkt(bytes([94]) + u32(0) + s("guest output")) + pkt(bytes([90]) + s("x11") + u32(1) + u32(0) + u32(0))
             + pkt(bytes([90]) + s("forwarded-tcpip") + u32(2) + u32(0) + u32(0))
             + pkt(bytes([96]) + u32(0)) + pkt(bytes([97]) + u32(0)) + pkt(bytes([2]) + s("")))
    relay = (ssh_pkt(bytes([90]) + s("session") + u32(0) + u32(0x200000) + u32(0x8000))
             + ssh_pkt(bytes([98]) + u32(0) + s("pty-req") + b"\x01" + s("xterm") + u32(80) + u32(24) + u32(0) + u32(0) + s(b"\x00"))
             + ssh_pkt(bytes([98]) + u32(0) + s("exec") + b"\x01" + s("id"))
             + ssh_pkt(bytes([98]) + u32(0) + s("auth-agent-req@openssh.com") + b"\x00")
             + ssh_pkt(bytes([80]) + s("tcpip-forward") + b"\x01" + s("") + u32(0))
             + ssh_pkt(bytes([90]) + s("direct-tcpip") + u32(1) + u32(0x200000) + u32(0x8000) + s("h") + u32(1) + s("o") + u32(2))
             + ssh_pkt(bytes([94]) + u32(0) + s("stdin")) + ssh_pkt(bytes([96]) + u32(0)) + ssh_pkt(bytes([97]) + u32(0)))
    none = svc + ssh_pkt(bytes([50]) + s("root") + s("ssh-connection") + s("none"))
    write("ssh", "auth-none-relay", ssh_hdr(1 | 2, 255, guest) + none + relay)
    write("ssh", "auth-none-refused", ssh_hdr(1 | 8) + none + relay)
    write("ssh", "auth-none-noguest", ssh_hdr(1 | 2 | 16) + none + relay)
    # zlib: payloads after USERAUTH_SUCCESS are one deflate stream.
    z = zlib.compressobj()
    zrelay = b""
    for p in [bytes([90]) + s("session") + u32(0) + u32(0x200000) + u32(0x8000),
              bytes([98]) + u32(0) + s("shell") + b"\x01", bytes([94]) + u32(0) + s("ls -l\n" * 20)]:
        zrelay += ssh_pkt(z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH))
    write("ssh", "auth-none-zlib", ssh_hdr(1 | 2 | 32, 255, guest) + none + zrelay)
    for key, algos in [("ed25519", ["ssh-ed25519"]), ("ecdsa", ["ecdsa-sha2-nistp256"]),
                       ("rsa", ["rsa-sha2-256", "rsa-sha2-512"])]:
        for algo in algos:
            q = ssh_pkt(userauth_pk("root", key, algo, with_sig=False))
            a = ssh_pkt(userauth_pk("root", key, algo))
            write("ssh", "auth-pk-%s" % algo, ssh_hdr(1 | 8, 255, guest) + svc + q + a + relay)
    write("ssh", "auth-pk-ssh-rsa-sha1", ssh_hdr(1 | 8) + svc + ssh_pkt(userauth_pk("root", "rsa", "ssh-rsa", False)))
    kbd = (svc + ssh_pkt(bytes([50]) + s("root") + s("ssh-connection") + s("keyboard-interactive") + s("") + s(""))
           + ssh_pkt(bytes([61]) + u32(1) + s("wrong")) +
           ssh_pkt(bytes([50]) + s("root") + s("ssh-connection") + s("keyboard-interactive") + s("") + s(""))
           + ssh_pkt(bytes([61]) + u32(1) + s("fuzz-one-time-token-4711")))
    write("ssh", "auth-kbd-token", ssh_hdr(1 | 4 | 8, 255, guest) + kbd + relay)
    rekey = svc + ssh_pkt(kexinit(kex=("curve25519-sha256@libssh.org",))) + ssh_pkt(bytes([30]) + s(q_c)) + ssh_pkt(bytes([21]))
    write("ssh", "rekey", ssh_hdr(1 | 2) + rekey)
    write("ssh", "early-conn-msg", ssh_hdr(1 | 2) + svc + ssh_pkt(bytes([90]) + s("session") + u32(0) + u32(1) + u32(1)))
    write("ssh", "unimplemented", ssh_hdr(1) + ssh_pkt(bytes([200])) + ssh_pkt(bytes([2]) + s("x")) + svc + svc)
    # Keys in force (byte 4 bit 2): aes-ctr + each MAC, the login and relay encrypted.
    plain = [bytes([5]) + s("ssh-userauth"), bytes([50]) + s("root") + s("ssh-connection") + s("none"),
             bytes([90]) + s("session") + u32(0) + u32(0x200000) + u32(0x8000),
             bytes([98]) + u32(0) + s("exec") + b"\x01" + s("id"), bytes([94]) + u32(0) + s("stdin" * 50),
             bytes([2]) + s(""), bytes([96]) + u32(0)]
    for c in CIPHER_NO:
        for mac in MAC_NO:
            ext = 4 | CIPHER_NO[c] << 3 | MAC_NO[mac] << 6
            name = "enc-%s-%s" % (c, mac.split("@")[0])
            write("ssh", name, ssh_hdr(1 | 2, 255, guest, ext) + ctr_stream(c, mac, plain))
            write("ssh", name + "-bytewise", ssh_hdr(1 | 2, 0, guest, ext) + ctr_stream(c, mac, plain[:3]))
            write("ssh", name + "-badmac", ssh_hdr(1 | 2, ext=ext) + ctr_stream(c, mac, plain[:2], corrupt=True))


# ---------------------------------------------------------------- keys

def gen_sshkey():
    for key in ["ed25519", "ecdsa", "rsa"]:
        blob = pub_blob(key)
        write("sshkey", "blob-" + key, b"\x00" + blob)
        with open(os.path.join(HERE, "keys", key + ".pub"), "rb") as f:
            write("sshkey", "text-" + key, b"\x01" + b" ".join(f.read().split()[:2]))
    with open(os.path.join(HERE, "keys", "ed25519"), "rb") as f:
        write("sshkey", "private-ed25519", b"\x02" + f.read())
    for key in ("ecdsa", "rsa"):  # host keys of those types (ssh-keygen's own format)
        with open(os.path.join(HERE, "keys", key), "rb") as f:
            write("sshkey", "private-" + key, b"\x02" + f.read())
    msg = b"data to sign"
    for i, (key, algo) in enumerate([("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256"),
                                     ("rsa", "rsa-sha2-256"), ("rsa", "rsa-sha2-512")]):
        which = ["ed25519", "ecdsa", "rsa"].index(key)
        write("sshkey", "verify-" + algo, b"\x03" + bytes([which]) + s(algo) + s(sign(key, algo, msg)) + msg)
        write("sshkey", "verify-blob-" + algo, b"\x03\x03" + s(pub_blob(key)) + s(algo) + s(sign(key, algo, msg)) + msg)
    # Hostile shapes.
    write("sshkey", "blob-ecdsa-wrong-curve", b"\x00" + s("ecdsa-sha2-nistp256") + s("nistp384") + s(b"\x04" + b"\x01" * 64))
    write("sshkey", "blob-rsa-small", b"\x00" + s("ssh-rsa") + mpint(65537) + mpint((1 << 1023) + 1))
    write("sshkey", "blob-rsa-even-e", b"\x00" + s("ssh-rsa") + mpint(4) + mpint((1 << 2047) + 1))
    write("sshkey", "blob-ed25519-short", b"\x00" + s("ssh-ed25519") + s(b"\x01" * 31))
    write("sshkey", "verify-ssh-rsa-sha1", b"\x03\x02" + s("ssh-rsa") + s(s("ssh-rsa") + s(b"\x00" * 256)) + msg)
    write("sshkey", "verify-ecdsa-neg", b"\x03\x01" + s("ecdsa-sha2-nistp256") + s(s("ecdsa-sha2-nistp256") + s(s(b"\xff" * 33) + s(b""))) + msg)
    write("sshkey", "private-bad", b"\x02-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n")


def gen_authkeys():
    def line(key, pre=b"", comment=b" c"):
        with open(os.path.join(HERE, "keys", key + ".pub"), "rb") as f:
            t, b = f.read().split()[:2]
        return pre + t + b" " + b + comment + b"\n"
    write("authkeys", "plain", line("ed25519") + line("ecdsa") + line("rsa"))
    write("authkeys", "options",
          b"# comment\n\n" + line("ed25519", b'restrict,pty,command="echo \\"hi\\"" ')
          + line("ecdsa", b'from="192.0.2.0/24,!10.0.0.0/8,2001:db8::/32,*.example.com,19?.0.2.*" ')
          + line("rsa", b"no-port-forwarding,no-pty,no-agent-forwarding,no-X11-forwarding,no-user-rc,"
                        b"port-forwarding,X11-forwarding,agent-forwarding,user-rc ") + b"\r\n")
    write("authkeys", "invalid",
          line("ed25519", b'permitopen="host" ') + line("ecdsa", b'command="a",command="b" ')
          + line("rsa", b'from="192.0.2.1/24" ') + line("ed25519", b'from="::ffff:192.0.2.7" ')
          + line("ed25519", b'command="unterminated ') + b"ssh-dss AAAAB3NzaC1kc3MAAACBAP= x\n"
          + b"ssh-ed25519 !!!notbase64\n" + line("ed25519", b"RESTRICT,PTY ", b"") + b"\x00\n"
          + b"ssh-ed25519 " + b"A" * 2000 + b"\n")
    write("authkeys", "from-v6", line("ecdsa", b'from="fe80::/10,!2001:db8::1,::ffff:192.0.2.0/120" '))
    # sshd 9.x options: expiry-time, environment, permitopen, permitlisten, principals.
    write("authkeys", "sshd9",
          line("ed25519", b'expiry-time="20990101Z",environment="A=1",environment="A=2",'
                          b'environment="LANG=C.UTF-8",permitopen="localhost:80",permitopen="[::1]:*",'
                          b'permitopen="*:5432",permitlisten="8080",permitlisten="localhost:9000",'
                          b'permitlisten="[::1]:*" ')
          + line("ecdsa", b'restrict,agent-forwarding,X11-forwarding,principals="alice,bob",'
                          b'expiry-time="203006151234",expiry-time="20000101UTC" ')
          + line("rsa", b'expiry-time="20000101Z" ') + line("rsa", b'permitlisten="10.0.0.?:*" '))
    write("authkeys", "sshd9-invalid",
          line("ed25519", b'expiry-time="20991301" ') + line("ed25519", b'environment="A-B=1" ')
          + line("ecdsa", b'permitopen="h:0" ') + line("ecdsa", b'permitlisten="h:x" ')
          + line("rsa", b'cert-authority ') + line("rsa", b'tunnel="1" ')
          + line("ed25519", b'principals="a",principals="b" ')
          + line("ed25519", b'command="' + b"x" * 9000 + b'" '))


# ---------------------------------------------------------------- mux

def mux_rec(who, payload=b""):
    """One record of fuzz_mux's input: who (slot, |4 guest, |8 leaves), u16 length."""
    return bytes([who]) + struct.pack(">H", len(payload)) + payload


def gen_mux():
    G = 4
    def open_(sender, typ=b"session", win=0x100000, mx=0x8000, extra=b""):
        return bytes([90]) + s(typ) + u32(sender) + u32(win) + u32(mx) + extra
    def confirm(rcpt, sender, win=0x100000, mx=0x8000):
        return bytes([91]) + u32(rcpt) + u32(sender) + u32(win) + u32(mx)
    def data(rcpt, d):
        return bytes([94]) + u32(rcpt) + s(d)
    def chan(t, rcpt):
        return bytes([t]) + u32(rcpt)
    def req(rcpt, name, want, rest=b""):
        return bytes([98]) + u32(rcpt) + s(name) + bytes([want]) + rest
    def glob(name, want, rest=b""):
        return bytes([80]) + s(name) + bytes([want]) + rest
    # Two clients, one channel each, data both ways, closes from both ends.
    two = (mux_rec(0, open_(0)) + mux_rec(1, open_(0)) + mux_rec(G, confirm(0, 100))
           + mux_rec(G, confirm(1, 101)) + mux_rec(0, req(0, "exec", 1, s("true")))
           + mux_rec(G, bytes([99]) + u32(0)) + mux_rec(0, data(0, b"in"))
           + mux_rec(G, data(1, b"out")) + mux_rec(G, req(0, "exit-status", 0, u32(0)))
           + mux_rec(G, chan(96, 0)) + mux_rec(G, chan(97, 0)) + mux_rec(0, chan(97, 0))
           + mux_rec(1, chan(96, 1)) + mux_rec(1, chan(97, 1)) + mux_rec(G, chan(97, 1)))
    write("mux", "two-sessions", two)
    # Client 1 names client 0's channel; then leaves; 0 goes on.
    write("mux", "intrusion", mux_rec(0, open_(3)) + mux_rec(G, confirm(0, 7))
          + mux_rec(1, data(0, b"x")) + mux_rec(1 | 8) + mux_rec(0, data(0, b"ok")))
    # Forwards: port 0 (allocated 4444) for 0, 5555 for 1, opens routed, 0 leaves.
    fwd = (mux_rec(0, glob("tcpip-forward", 1, s("127.0.0.1") + u32(0)))
           + mux_rec(1, glob("tcpip-forward", 0, s("127.0.0.1") + u32(5555)))
           + mux_rec(2, glob("mux-status@wicket", 1))
           + mux_rec(G, bytes([81]) + u32(4444)) + mux_rec(G, bytes([81]))
           + mux_rec(G, open_(50, b"forwarded-tcpip", extra=s("127.0.0.1") + u32(4444) + s("10.0.0.2") + u32(9)))
           + mux_rec(G, open_(51, b"forwarded-tcpip", extra=s("127.0.0.1") + u32(5555) + s("10.0.0.2") + u32(9)))
           + mux_rec(0, confirm(0, 1)) + mux_rec(G, data(0, b"hi"))
           + mux_rec(1, bytes([92]) + u32(1) + u32(2) + s("no") + s(""))
           + mux_rec(0 | 8) + mux_rec(G, bytes([82]))
           + mux_rec(3, glob("streamlocal-forward@openssh.com", 1, s("/tmp/s")))
           + mux_rec(G, bytes([81]))
           + mux_rec(G, open_(52, b"forwarded-streamlocal@openssh.com", extra=s("/tmp/s") + s(""))))
    write("mux", "forwards", fwd)
    # Windows: over the guest's, over the client's, overflow, EOF then data.
    win = (mux_rec(0, open_(0, win=16, mx=8)) + mux_rec(G, confirm(0, 9, win=16, mx=8))
           + mux_rec(0, data(0, b"12345678")) + mux_rec(0, data(0, b"123456789"))
           + mux_rec(1, open_(0, win=4)) + mux_rec(G, confirm(1, 10))
           + mux_rec(G, data(1, b"toolong")) )
    write("mux", "windows", win)
    over = (mux_rec(2, open_(0)) + mux_rec(G, confirm(0, 5)) + mux_rec(2, bytes([93]) + u32(0) + u32(0xFFFFFFFF))
            + mux_rec(3, open_(0)) + mux_rec(G, confirm(1, 6)) + mux_rec(3, chan(96, 1)) + mux_rec(3, data(1, b"late")))
    write("mux", "overflow-eof", over)
    # Malformed and disallowed messages from clients, stray replies from the guest.
    bad = (mux_rec(0, bytes([90]) + u32(0xFFFF)) + mux_rec(1, bytes([20, 0]))
           + mux_rec(2, bytes([81])) + mux_rec(3, chan(99, 0)) + mux_rec(0, bytes([1]) + u32(11) + s("bye") + s(""))
           + mux_rec(1, glob("tcpip-forward", 1, s("x"))) + mux_rec(G, bytes([2]) + s("ignore"))
           + mux_rec(G, bytes([80]) + s("keepalive@openssh.com") + bytes([1])) + mux_rec(G, bytes([81])))
    write("mux", "malformed", bad)
    # A pending open whose client leaves before the guest answers.
    write("mux", "orphan-open", mux_rec(0, open_(0)) + mux_rec(0 | 8) + mux_rec(G, confirm(0, 70))
          + mux_rec(G, data(0, b"x")) + mux_rec(G, chan(97, 0)) + mux_rec(1, open_(0))
          + mux_rec(G, bytes([92]) + u32(0) + u32(1) + s("no") + s("")))


def main():
    os.makedirs(CORPUS, exist_ok=True)
    clean()
    gen_mux()
    gen_conn()
    gen_sftp()
    gen_ssh()
    gen_sshkey()
    gen_authkeys()


if __name__ == "__main__":
    main()
