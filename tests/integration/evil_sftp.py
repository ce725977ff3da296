#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A malicious sftp server speaking bare ssh-connection on stdin/stdout.

Used as `wicket --proxy-command "python3 evil_sftp.py --mode MODE" cp ...`
to check that wicket cp treats everything from the guest as hostile.

It serves a fake tree: /dir (a directory) holding a good file `good`,
/file (18 bytes) and /bigfile (1 MiB, so DATA replies span many channel
packets), and, depending on the mode:

  names     READDIR also returns `../escape`, `/etc/x`, a name with a
            newline, one with an escape sequence, one with a NUL byte,
            `.` and `..`; plus `lnk` twice: as a symlink to --outside and
            as a directory holding `pwned` (a symlink race in one listing)
  bigdata   every READ is answered with more bytes than asked for
  hugecount READDIR answers a NAME claiming 2^31-1 entries in a few bytes
  hugepkt   the STAT reply announces an sftp packet of 256 MiB
  badid     replies carry a request id that was never sent
  garbage   like names, but a quarter of the replies are random bytes
            shaped like sftp (--seed N): the client must fail cleanly

Everything else (OPEN/READ/CLOSE/STAT) is answered plausibly.  Standard
library only; one connection, then exit.
"""

import argparse
import os
import random
import struct
import sys

GREETING = b"SSHCONNECTION@putty.projects.tartarus.org-2.0-evil\r\n"

MSG_DISCONNECT = 1
MSG_CHANNEL_OPEN = 90
MSG_CHANNEL_OPEN_CONFIRMATION = 91
MSG_CHANNEL_WINDOW_ADJUST = 93
MSG_CHANNEL_DATA = 94
MSG_CHANNEL_EOF = 96
MSG_CHANNEL_CLOSE = 97
MSG_CHANNEL_REQUEST = 98
MSG_CHANNEL_SUCCESS = 99
MSG_CHANNEL_FAILURE = 100

FXP_INIT, FXP_VERSION, FXP_OPEN, FXP_CLOSE, FXP_READ = 1, 2, 3, 4, 5
FXP_LSTAT, FXP_FSTAT, FXP_OPENDIR, FXP_READDIR = 7, 8, 11, 12
FXP_STAT, FXP_READLINK = 17, 19
FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 101, 102, 103, 104, 105
FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_FAILURE, FX_OP_UNSUPPORTED = 0, 1, 2, 4, 8

ATTR_SIZE, ATTR_PERM, ATTR_TIME = 0x1, 0x4, 0x8
S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000

GOOD = b"good file content\n"
BIGSIZE = 1 << 20  # /bigfile: READs of full size, DATA spanning channel packets

OUR_CHAN = 7
OUR_MAXPKT = 32768


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def sstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def attrs(mode, size=0):
    return u32(ATTR_SIZE | ATTR_PERM | ATTR_TIME) + u64(size) + u32(mode) + u32(1000000000) * 2


class Cursor:
    def __init__(self, d):
        self.d, self.i = d, 0

    def u8(self):
        v = self.d[self.i]
        self.i += 1
        return v

    def u32(self):
        v = struct.unpack(">I", self.d[self.i:self.i + 4])[0]
        self.i += 4
        return v

    def u64(self):
        v = struct.unpack(">Q", self.d[self.i:self.i + 8])[0]
        self.i += 8
        return v

    def str(self):
        n = self.u32()
        v = self.d[self.i:self.i + n]
        self.i += n
        return v


class Server:
    def __init__(self, mode, outside, seed=0):
        self.mode = mode
        self.rng = random.Random(seed)
        self.outside = outside
        self.inb = b""
        self.sftp_in = b""
        self.peer_chan = None
        self.peer_win = 0
        self.peer_maxpkt = 0
        self.pending = b""   # sftp bytes waiting for window
        self.handles = {}
        self.next_handle = 1
        self.consumed = 0

    # -- transport
    def write(self, b):
        os.write(1, b)

    def send_pkt(self, payload):
        self.write(u32(len(payload)) + payload)

    def read_more(self):
        d = os.read(0, 65536)
        if not d:
            sys.exit(0)
        self.inb += d

    def recv_pkt(self):
        while True:
            if len(self.inb) >= 4:
                n = struct.unpack(">I", self.inb[:4])[0]
                if len(self.inb) >= 4 + n:
                    p = self.inb[4:4 + n]
                    self.inb = self.inb[4 + n:]
                    return p
            self.read_more()

    def read_greeting(self):
        while b"\n" not in self.inb:
            self.read_more()
        line, self.inb = self.inb.split(b"\n", 1)
        if b"SSHCONNECTION@" not in line:
            sys.exit(1)

    # -- channel output with window and max packet respected
    def sftp_send(self, pkt):
        self.pending += pkt
        self.flush()

    def sftp_send_raw_len(self, length, body):
        """An sftp packet whose length field lies."""
        self.sftp_send(u32(length) + body)

    def flush(self):
        while self.pending and self.peer_win > 0:
            n = min(len(self.pending), self.peer_win, self.peer_maxpkt, OUR_MAXPKT)
            chunk, self.pending = self.pending[:n], self.pending[n:]
            self.peer_win -= n
            self.send_pkt(bytes([MSG_CHANNEL_DATA]) + u32(self.peer_chan) + sstr(chunk))

    def reply(self, body):
        self.sftp_send(u32(len(body)) + body)

    def status(self, rid, code, msg=""):
        self.reply(bytes([FXP_STATUS]) + u32(rid) + u32(code) + sstr(msg) + sstr(""))

    # -- sftp
    def path_kind(self, p):
        p = p.rstrip(b"/") or b"/"
        if p in (b"/dir", b"/dir/lnk"):
            return "dir"
        if p == b"/bigfile":
            return "big"
        if p in (b"/file", b"/dir/good", b"/dir/lnk/pwned") or p.startswith(b"/dir/"):
            return "file"
        return None

    def handle_sftp(self, p):
        c = Cursor(p)
        t = c.u8()
        if t == FXP_INIT:
            self.reply(bytes([FXP_VERSION]) + u32(3))
            return
        rid = c.u32()
        if self.mode == "garbage" and self.rng.random() < 0.25:
            self.garbage(rid, t)
            return
        if self.mode == "badid":
            rid ^= 0x5a5a0000
        if t in (FXP_STAT, FXP_LSTAT):
            path = c.str()
            if self.mode == "hugepkt":
                # 256 MiB announced: the client must refuse, not allocate.
                self.sftp_send_raw_len(256 << 20, bytes([FXP_ATTRS]) + u32(rid) + b"x" * 64)
                return
            k = self.path_kind(path)
            if k == "dir":
                self.reply(bytes([FXP_ATTRS]) + u32(rid) + attrs(S_IFDIR | 0o755))
            elif k == "file":
                self.reply(bytes([FXP_ATTRS]) + u32(rid) + attrs(S_IFREG | 0o644, len(GOOD)))
            elif k == "big":
                self.reply(bytes([FXP_ATTRS]) + u32(rid) + attrs(S_IFREG | 0o644, BIGSIZE))
            else:
                self.status(rid, FX_NO_SUCH_FILE, "No such file")
        elif t in (FXP_OPEN, FXP_OPENDIR):
            path = c.str()
            h = b"h%d" % self.next_handle
            self.next_handle += 1
            self.handles[h] = [path, 0]
            self.reply(bytes([FXP_HANDLE]) + u32(rid) + sstr(h))
        elif t == FXP_READDIR:
            h = c.str()
            st = self.handles.get(h)
            if st is None:
                self.status(rid, FX_FAILURE, "bad handle")
                return
            if st[1]:
                self.status(rid, FX_EOF, "")
                return
            st[1] = 1
            if self.mode == "hugecount":
                self.reply(bytes([FXP_NAME]) + u32(rid) + u32(0x7fffffff) + sstr("a") + sstr("a"))
                return
            if st[0].rstrip(b"/") == b"/dir/lnk":
                ents = [(b"pwned", attrs(S_IFREG | 0o644, len(GOOD)))]
            else:
                ents = [
                    (b".", attrs(S_IFDIR | 0o755)),
                    (b"..", attrs(S_IFDIR | 0o755)),
                    (b"good", attrs(S_IFREG | 0o644, len(GOOD))),
                    (b"../escape", attrs(S_IFREG | 0o644, len(GOOD))),
                    (b"/etc/x", attrs(S_IFREG | 0o644, len(GOOD))),
                    (b"new\nline", attrs(S_IFREG | 0o644, len(GOOD))),
                    (b"\x1b[31mred", attrs(S_IFREG | 0o644, len(GOOD))),
                    (b"nul\x00byte", attrs(S_IFREG | 0o644, len(GOOD))),
                ]
                if self.mode in ("names", "garbage"):
                    ents += [
                        (b"lnk", attrs(S_IFLNK | 0o777)),
                        (b"lnk", attrs(S_IFDIR | 0o755)),
                    ]
            body = b"".join(sstr(n) + sstr(n) + a for n, a in ents)
            self.reply(bytes([FXP_NAME]) + u32(rid) + u32(len(ents)) + body)
        elif t == FXP_READLINK:
            self.reply(bytes([FXP_NAME]) + u32(rid) + u32(1) + sstr(self.outside)
                       + sstr(self.outside) + u32(0))
        elif t == FXP_READ:
            h = c.str()
            off = c.u64()
            ln = c.u32()
            if self.mode == "bigdata":
                self.reply(bytes([FXP_DATA]) + u32(rid) + sstr(b"A" * (ln + 100)))
                return
            content = GOOD if self.handles.get(h, [b""])[0] != b"/bigfile" else b"B" * BIGSIZE
            if off >= len(content):
                self.status(rid, FX_EOF, "")
            else:
                self.reply(bytes([FXP_DATA]) + u32(rid) + sstr(content[off:off + ln]))
        elif t == FXP_FSTAT:
            self.reply(bytes([FXP_ATTRS]) + u32(rid) + attrs(S_IFREG | 0o644, len(GOOD)))
        elif t == FXP_CLOSE:
            self.handles.pop(c.str(), None)
            self.status(rid, FX_OK, "")
        else:
            self.status(rid, FX_OP_UNSUPPORTED, "not here")

    def garbage(self, rid, t):
        r = self.rng
        typ = r.choice([FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS, 201, 2, 0, 255])
        rid = rid if r.random() < 0.8 else r.getrandbits(32)
        body = bytes([typ]) + u32(rid)
        kind = r.randrange(6)
        if kind == 0:
            body += r.randbytes(r.randrange(0, 64))
        elif kind == 1:  # plausible STATUS / HANDLE / DATA with odd lengths
            body += u32(r.choice([0, 1, 2, 4, 0xffffffff, r.getrandbits(32)]))
            body += r.randbytes(r.randrange(0, 16))
        elif kind == 2:  # NAME with a count and some entries
            n = r.choice([0, 1, 2, 3, 0x7fffffff])
            body += u32(n) + b"".join(sstr(r.randbytes(r.randrange(0, 8))) * 2
                                      + u32(r.getrandbits(32)) for _ in range(min(n, 3)))
        elif kind == 3:  # ATTRS with random flags
            body += u32(r.getrandbits(32)) + r.randbytes(r.randrange(0, 40))
        elif kind == 4:  # a valid-looking reply of the expected kind
            if t in (FXP_STAT, FXP_LSTAT, FXP_FSTAT):
                body = bytes([FXP_ATTRS]) + u32(rid) + attrs(r.choice([S_IFDIR, S_IFREG, S_IFLNK])
                                                             | 0o755, r.getrandbits(20))
            elif t in (FXP_OPEN, FXP_OPENDIR):
                body = bytes([FXP_HANDLE]) + u32(rid) + sstr(r.randbytes(r.randrange(0, 300)))
            else:
                body = bytes([FXP_STATUS]) + u32(rid) + u32(r.randrange(9)) + sstr("x") + sstr("")
        else:  # lie about the packet length
            self.sftp_send(u32(r.choice([0, 300000, 0xffffffff])) + body)
            return
        self.reply(body)

    def feed_sftp(self, data):
        self.sftp_in += data
        while len(self.sftp_in) >= 4:
            n = struct.unpack(">I", self.sftp_in[:4])[0]
            if len(self.sftp_in) < 4 + n:
                break
            p = self.sftp_in[4:4 + n]
            self.sftp_in = self.sftp_in[4 + n:]
            self.handle_sftp(p)

    def run(self):
        self.write(GREETING)
        self.read_greeting()
        while True:
            p = self.recv_pkt()
            c = Cursor(p)
            t = c.u8()
            if t == MSG_DISCONNECT:
                return
            if t == MSG_CHANNEL_OPEN:
                c.str()
                self.peer_chan = c.u32()
                self.peer_win = c.u32()
                self.peer_maxpkt = c.u32()
                self.send_pkt(bytes([MSG_CHANNEL_OPEN_CONFIRMATION]) + u32(self.peer_chan)
                              + u32(OUR_CHAN) + u32(1 << 24) + u32(OUR_MAXPKT))
            elif t == MSG_CHANNEL_REQUEST:
                c.u32()
                name = c.str()
                want = c.u8()
                if want:
                    ok = name == b"subsystem"
                    self.send_pkt(bytes([MSG_CHANNEL_SUCCESS if ok else MSG_CHANNEL_FAILURE])
                                  + u32(self.peer_chan))
            elif t == MSG_CHANNEL_DATA:
                c.u32()
                d = c.str()
                self.consumed += len(d)
                if self.consumed >= 1 << 22:
                    self.send_pkt(bytes([MSG_CHANNEL_WINDOW_ADJUST]) + u32(self.peer_chan)
                                  + u32(self.consumed))
                    self.consumed = 0
                self.feed_sftp(d)
            elif t == MSG_CHANNEL_WINDOW_ADJUST:
                c.u32()
                self.peer_win += c.u32()
                self.flush()
            elif t == MSG_CHANNEL_EOF:
                pass
            elif t == MSG_CHANNEL_CLOSE:
                self.send_pkt(bytes([MSG_CHANNEL_CLOSE]) + u32(self.peer_chan))
                return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="names",
                    choices=["names", "bigdata", "hugecount", "hugepkt", "badid", "garbage"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outside", default="/nonexistent-wicket-outside",
                    help="where the evil symlink points")
    a = ap.parse_args()
    try:
        Server(a.mode, a.outside.encode(), a.seed).run()
    except (BrokenPipeError, ConnectionResetError):
        pass


if __name__ == "__main__":
    main()
