#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicket-sftp-server against real clients and a raw Python client.

- OpenSSH `sftp -D` (the server on the client's stdio) in batch mode.
- psftp and `pscp -sftp -r` through `wicketd --stdio` (subsystem sftp).
- A small SFTP v3 client in this file for what clients never send:
  read-only refusals, --root escapes, ENOSPC, malformed packets.
Every check verifies the result on the real filesystem afterwards."""

import os
import pwd
import re
import select
import shutil
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (BUILDDIR, WICKETD, Failure, Reader, Skip, expect, expect_eq,  # noqa: E402
                    need_tool, run, show, spawn, sshstr, strace_env, tap, u32)

SERVER = os.path.join(BUILDDIR, "agent", "wicket-sftp-server")

# SFTP v3 numbers (lib/sftp.h)
FXP_INIT, FXP_VERSION, FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 1, 2, 3, 4, 5, 6
FXP_LSTAT, FXP_FSTAT, FXP_SETSTAT, FXP_FSETSTAT, FXP_OPENDIR, FXP_READDIR = 7, 8, 9, 10, 11, 12
FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_REALPATH, FXP_STAT, FXP_RENAME = 13, 14, 15, 16, 17, 18
FXP_READLINK, FXP_SYMLINK = 19, 20
FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 101, 102, 103, 104, 105
FXP_EXTENDED, FXP_EXTENDED_REPLY = 200, 201
FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE, FX_BAD_MESSAGE = 0, 1, 2, 3, 4, 5
FX_OP_UNSUPPORTED = 8
FXF_READ, FXF_WRITE, FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_EXCL = 1, 2, 4, 8, 16, 32
ATTR_SIZE, ATTR_UIDGID, ATTR_PERM, ATTR_TIME = 1, 2, 4, 8
MAX_PACKET = 256 * 1024 + 1024
MAX_DATA = 255 * 1024

EXTENSIONS = [
    ("posix-rename@openssh.com", "1"), ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"), ("hardlink@openssh.com", "1"), ("fsync@openssh.com", "1"),
    ("lsetstat@openssh.com", "1"), ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"), ("copy-data", "1"), ("home-directory", "1"),
    ("users-groups-by-id@openssh.com", "1"), ("lock@wicket", "1"),
]
REQUEST_NAMES = [
    "open", "close", "read", "write", "lstat", "fstat", "setstat", "fsetstat", "opendir",
    "readdir", "remove", "mkdir", "rmdir", "realpath", "stat", "rename", "readlink", "symlink",
    "posix-rename", "statvfs", "fstatvfs", "hardlink", "fsync", "lsetstat", "limits",
    "expand-path", "copy-data", "home-directory", "users-groups-by-id", "lock",
]

S = {}


def u64(v):
    return struct.pack(">Q", v)


def attrs(perm=None, size=None, times=None):
    flags, body = 0, b""
    if size is not None:
        flags |= ATTR_SIZE
        body += u64(size)
    if perm is not None:
        flags |= ATTR_PERM
        body += u32(perm)
    if times is not None:
        flags |= ATTR_TIME
        body += u32(times[0]) + u32(times[1])
    return u32(flags) + body


def read_attrs(r):
    a = {"flags": r.u32()}
    if a["flags"] & ATTR_SIZE:
        a["size"] = struct.unpack(">Q", r.d[r.i:r.i + 8])[0]
        r.i += 8
    if a["flags"] & ATTR_UIDGID:
        a["uid"], a["gid"] = r.u32(), r.u32()
    if a["flags"] & ATTR_PERM:
        a["perm"] = r.u32()
    if a["flags"] & ATTR_TIME:
        a["atime"], a["mtime"] = r.u32(), r.u32()
    return a


def rd_u64(r):
    v = struct.unpack(">Q", r.d[r.i:r.i + 8])[0]
    r.i += 8
    return v


class Reply:
    def __init__(self, ptype, rid, body):
        self.type, self.id, self.body = ptype, rid, body

    def reader(self):
        return Reader(self.body)

    def status(self):
        """(code, message) of a STATUS reply, else Failure."""
        if self.type != FXP_STATUS:
            raise Failure("expected STATUS, got type %d %s" % (self.type, show(self.body)))
        r = self.reader()
        code, msg = r.u32(), r.str().decode("utf-8", "replace")
        r.str()
        expect(r.end(), "junk after STATUS")
        return code, msg

    def handle(self):
        if self.type != FXP_HANDLE:
            raise Failure("expected HANDLE, got %s" % self.describe())
        r = self.reader()
        h = r.str()
        expect(r.end(), "junk after HANDLE")
        return h

    def names(self):
        """[(name, longname, attrs)] of a NAME reply."""
        if self.type != FXP_NAME:
            raise Failure("expected NAME, got %s" % self.describe())
        r = self.reader()
        out = []
        for _ in range(r.u32()):
            out.append((r.str(), r.str(), read_attrs(r)))
        expect(r.end(), "junk after NAME")
        return out

    def attrs(self):
        if self.type != FXP_ATTRS:
            raise Failure("expected ATTRS, got %s" % self.describe())
        r = self.reader()
        a = read_attrs(r)
        expect(r.end(), "junk after ATTRS")
        return a

    def data(self):
        if self.type != FXP_DATA:
            raise Failure("expected DATA, got %s" % self.describe())
        r = self.reader()
        d = r.str()
        expect(r.end(), "junk after DATA")
        return d

    def describe(self):
        if self.type == FXP_STATUS:
            try:
                return "STATUS %d %r" % self.status()
            except Failure:
                pass
        return "type %d body %s" % (self.type, show(self.body))


class Sftp:
    """The server on pipes, spoken to packet by packet."""

    def __init__(self, args=(), cwd=None, init=True, env=None, wrap=()):
        if not os.access(SERVER, os.X_OK):
            raise Failure("%s is not built" % SERVER)
        logdir = S["tmp"]
        self.logpath = os.path.join(logdir, "server-%d.log" % time.monotonic_ns())
        self.logf = open(self.logpath, "wb")
        tap.at_cleanup(self.logf.close)
        self.p = spawn(list(wrap) + [SERVER] + list(args), stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=self.logf, cwd=cwd, env=env)
        self.buf = b""
        self.next_id = 1
        self.extensions = None
        if init:
            self.init()

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, ptype, body=b"", rid=None):
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        payload = bytes([ptype]) + u32(rid) + body
        self.send_raw(u32(len(payload)) + payload)
        return rid

    def _fill(self, timeout):
        fd = self.p.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            raise Failure("timed out waiting for the server (have %s)\nlog: %s"
                          % (show(self.buf), self.log()[-2000:]))
        d = os.read(fd, 1 << 20)
        if not d:
            return False
        self.buf += d
        return True

    def recv(self, timeout=20):
        """Next reply, or None at EOF."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                expect(0 < n <= MAX_PACKET, "server sent a packet of length %d" % n)
                if len(self.buf) >= 4 + n:
                    p, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    if p[0] == FXP_VERSION:
                        return Reply(p[0], None, p[1:])
                    return Reply(p[0], struct.unpack(">I", p[1:5])[0], p[5:])
            if not self._fill(timeout):
                expect(not self.buf, "EOF inside a reply: %s" % show(self.buf))
                return None

    def call(self, ptype, body=b""):
        rid = self.send(ptype, body)
        rep = self.recv()
        expect(rep is not None, "server closed instead of answering type %d\nlog: %s"
               % (ptype, self.log()[-2000:]))
        expect_eq(rep.id, rid, "reply id for request type %d" % ptype)
        return rep

    def ext(self, name, body=b""):
        return self.call(FXP_EXTENDED, sshstr(name) + body)

    def init(self):
        self.send_raw(u32(5) + bytes([FXP_INIT]) + u32(3))
        rep = self.recv()
        expect(rep is not None and rep.type == FXP_VERSION, "no VERSION reply")
        r = rep.reader()
        expect_eq(r.u32(), 3, "server version")
        self.extensions = []
        while not r.end():
            self.extensions.append((r.str().decode(), r.str().decode()))
        return self.extensions

    # -- conveniences
    def open(self, path, pflags, a=None):
        return self.call(FXP_OPEN, sshstr(path) + u32(pflags) + (a or attrs()))

    def must_open(self, path, pflags, a=None):
        return self.open(path, pflags, a).handle()

    def close(self, h):
        return self.call(FXP_CLOSE, sshstr(h))

    def read(self, h, off, n):
        return self.call(FXP_READ, sshstr(h) + u64(off) + u32(n))

    def write(self, h, off, data):
        return self.call(FXP_WRITE, sshstr(h) + u64(off) + sshstr(data))

    def write_split(self, h, off, data, split):
        """WRITE sent as its header and @split payload bytes, a pause, then
        the rest: the server sees a big payload still in the pipe."""
        rid = self.next_id
        self.next_id += 1
        payload = bytes([FXP_WRITE]) + u32(rid) + sshstr(h) + u64(off) + sshstr(data)
        pkt = u32(len(payload)) + payload
        cut = len(pkt) - len(data) + split
        self.send_raw(pkt[:cut])
        time.sleep(0.05)
        self.send_raw(pkt[cut:])
        rep = self.recv()
        expect(rep is not None and rep.id == rid, "reply to the split WRITE\nlog: %s"
               % self.log()[-2000:])
        return rep

    def path(self, ptype, p, extra=b""):
        return self.call(ptype, sshstr(p) + extra)

    def two(self, ptype, a, b):
        return self.call(ptype, sshstr(a) + sshstr(b))

    def readdir_all(self, path):
        h = self.path(FXP_OPENDIR, path).handle()
        names = []
        while True:
            rep = self.call(FXP_READDIR, sshstr(h))
            if rep.type == FXP_STATUS:
                expect_eq(rep.status()[0], FX_EOF, "READDIR end status")
                break
            names += rep.names()
        expect_eq(self.close(h).status()[0], FX_OK, "CLOSE of the directory handle")
        return names

    def read_file(self, path):
        h = self.must_open(path, FXF_READ)
        data, off = b"", 0
        while True:
            rep = self.read(h, off, 65536)
            if rep.type == FXP_STATUS:
                expect_eq(rep.status()[0], FX_EOF, "READ end status")
                break
            d = rep.data()
            data += d
            off += len(d)
        self.close(h)
        return data

    def finish(self, timeout=10):
        """Close stdin; the server must exit; returns its status."""
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("server did not exit after EOF")


def expect_status(rep, code, what, msg_contains=None):
    c, m = rep.status()
    if c != code:
        raise Failure("%s: expected status %d, got %d %r" % (what, code, c, m))
    if msg_contains and msg_contains not in m:
        raise Failure("%s: status message %r lacks %r" % (what, m, msg_contains))
    return m


def expect_refused(rep, what):
    """Anything but success: a STATUS other than OK."""
    if rep.type != FXP_STATUS:
        raise Failure("%s: expected a refusal, got %s" % (what, rep.describe()))
    c, m = rep.status()
    if c == FX_OK:
        raise Failure("%s: succeeded but must not" % what)
    return c, m


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_path(path):
    with open(path, "rb") as f:
        return f.read()


def tree_snapshot(top):
    """{relative path: (mode, content or link target)} of everything below top."""
    out = {}
    for dp, dns, fns in os.walk(top):
        for n in dns + fns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                v = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                v = ("file", read_path(p), stat.S_IMODE(st.st_mode), st.st_nlink)
            else:
                v = ("dir", stat.S_IMODE(st.st_mode))
            out[os.path.relpath(p, top)] = v
    return out


def sftp_batch(batch, server_args=(), cwd=None, timeout=120):
    need_tool("sftp")
    bf = os.path.join(S["tmp"], "batch-%d" % time.monotonic_ns())
    with open(bf, "w") as f:
        f.write(batch)
    server = " ".join([SERVER] + list(server_args))
    return run(["sftp", "-D", server, "-b", bf], cwd=cwd, timeout=timeout)


def setup():
    S["tmp"] = tap.tmpdir("wicket-sftp-")
    os.chmod(S["tmp"], 0o755)
    os.environ.setdefault("TZ", "UTC")


def fresh(name):
    d = os.path.join(S["tmp"], name)
    os.makedirs(d)
    return d


# ------------------------------------------------------------------ OpenSSH sftp

@tap.check("sftp -D: put, get, ls -l, df, rename, ln -s, ln, chmod, mkdir/rmdir/rm, cp")
def check_openssh_basic():
    base = fresh("openssh")
    local, remote = os.path.join(base, "local"), os.path.join(base, "remote")
    os.makedirs(local)
    os.makedirs(remote)
    payload = os.urandom(3 * 1024 * 1024 + 12345)
    write_file(os.path.join(local, "file1"), payload)
    write_file(os.path.join(local, "small"), b"hello\n")
    r = sftp_batch("""lcd local
cd remote
put file1
put small
get file1 got1
rename small renamed
ln -s renamed sym
ln file1 hard
chmod 640 renamed
mkdir newdir
mkdir gone
rmdir gone
cp file1 copied
ls -l
df
df -i
rm hard
""", cwd=base)
    expect(r.rc == 0, "sftp batch failed\n" + r.describe())
    expect_eq(read_path(os.path.join(remote, "file1")), payload, "uploaded file1")
    expect_eq(read_path(os.path.join(local, "got1")), payload, "downloaded got1")
    expect_eq(read_path(os.path.join(remote, "copied")), payload, "cp (copy-data) result")
    expect_eq(read_path(os.path.join(remote, "renamed")), b"hello\n", "renamed file")
    expect(not os.path.exists(os.path.join(remote, "small")), "rename left the old name")
    expect_eq(os.readlink(os.path.join(remote, "sym")), "renamed", "symlink target")
    expect_eq(stat.S_IMODE(os.stat(os.path.join(remote, "renamed")).st_mode), 0o640, "chmod")
    expect(os.path.isdir(os.path.join(remote, "newdir")), "mkdir newdir")
    expect(not os.path.exists(os.path.join(remote, "gone")), "rmdir gone")
    expect(not os.path.exists(os.path.join(remote, "hard")), "rm hard")
    expect_eq(os.stat(os.path.join(remote, "file1")).st_nlink, 1, "nlink after rm of the hard link")
    out = r.out.decode("utf-8", "replace")
    # ls -l: the symlink shows as a link, the chmod'ed file with its mode.
    expect(re.search(r"^lrwxrwxrwx .* sym$", out, re.M), "ls -l lacks the symlink line:\n" + out)
    expect(re.search(r"^-rw-r----- .* 6 \w{3} [ \d]\d .* renamed$", out, re.M),
           "ls -l lacks 'renamed' with mode and size:\n" + out)
    expect(re.search(r"^-rw-r--r-- .* %d \w{3} .* hard$" % len(payload), out, re.M),
           "ls -l lacks the hard link:\n" + out)
    # df: statvfs@openssh.com numbers agree with os.statvfs.
    m = re.search(r"Size\s+Used\s+Avail\s+\(root\)\s+%Capacity\n\s*(\d+)\s+(\d+)\s+(\d+)", out)
    expect(m, "df output not understood:\n" + out)
    v = os.statvfs(remote)
    expect_eq(int(m.group(1)), v.f_frsize * v.f_blocks // 1024, "df size in KiB")
    expect(re.search(r"Inodes\s+Used\s+Avail", out), "df -i output missing:\n" + out)


@tap.check("sftp -D: reget and reput resume partial files")
def check_openssh_resume():
    base = fresh("resume")
    payload = os.urandom(2 * 1024 * 1024 + 777)
    write_file(os.path.join(base, "remote_full"), payload)
    write_file(os.path.join(base, "local_partial"), payload[:700001])
    write_file(os.path.join(base, "local_full"), payload)
    write_file(os.path.join(base, "remote_partial"), payload[:300003])
    r = sftp_batch("reget remote_full local_partial\nreput local_full remote_partial\n", cwd=base)
    expect(r.rc == 0, "sftp batch failed\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "local_partial")), payload, "reget result")
    expect_eq(read_path(os.path.join(base, "remote_partial")), payload, "reput result")


@tap.check("sftp -D -R: uploads refused, downloads work")
def check_openssh_read_only():
    base = fresh("ro-openssh")
    write_file(os.path.join(base, "there"), b"readable\n")
    write_file(os.path.join(base, "up"), b"upload me\n")
    os.makedirs(os.path.join(base, "d"))
    before = tree_snapshot(base)
    r = sftp_batch("-put up up2\n-mkdir m\n-rm there\n-rename there x\n-chmod 600 there\n"
                   "-ln -s there l\n-rmdir d\nget there got\n", server_args=["-R"], cwd=base)
    expect(r.rc == 0, "sftp batch failed\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "got")), b"readable\n", "download in read-only mode")
    after = tree_snapshot(base)
    del after["got"]
    expect_eq(after, before, "tree after refused writes")


# ------------------------------------------------------------------ PuTTY

def putty_cmd(tool, *args, extra_agent=()):
    path = need_tool(tool)
    agent = " ".join([WICKETD, "--stdio"] + list(extra_agent))
    return [path, "-batch", "-ssh-connection", "-proxycmd", agent] + list(args)


@tap.check("psftp via wicketd --stdio: lcd/cd/put/get/mkdir/mv/rm/ls")
def check_psftp():
    base = fresh("psftp")
    local, remote = os.path.join(base, "local"), os.path.join(base, "remote")
    os.makedirs(local)
    os.makedirs(remote)
    p1, p2 = os.urandom(1024 * 1024 + 3), os.urandom(70000)
    write_file(os.path.join(local, "file1"), p1)
    write_file(os.path.join(local, "file2"), p2)
    script = os.path.join(base, "script")
    with open(script, "w") as f:
        f.write("""lcd %s
cd %s
mkdir pdir
cd pdir
put file1
put file2 second
ls
mv second third
get third back3
get file1 back1
rm file1
cd ..
mkdir gone
rmdir gone
ls pdir
""" % (local, remote))
    r = run(putty_cmd("psftp", "-b", script, "guest"), timeout=120)
    expect(r.rc == 0, "psftp failed\n" + r.describe())
    pdir = os.path.join(remote, "pdir")
    expect_eq(sorted(os.listdir(pdir)), ["third"], "remote pdir contents")
    expect_eq(read_path(os.path.join(pdir, "third")), p2, "mv'ed file")
    expect_eq(read_path(os.path.join(local, "back3")), p2, "downloaded back3")
    expect_eq(read_path(os.path.join(local, "back1")), p1, "downloaded back1")
    expect(not os.path.exists(os.path.join(remote, "gone")), "rmdir gone")
    out = r.out.decode("utf-8", "replace")
    # wicketd starts the server in the home directory: REALPATH "." is home.
    pw = pwd.getpwuid(os.getuid())
    expect("Remote working directory is %s\n" % pw.pw_dir in out,
           "psftp did not start in the home directory:\n" + out)
    # psftp prints the server's longname verbatim.
    user = pw.pw_name
    expect(re.search(r"^-rw\S{7}    1 %s +\S+ +%d \w{3} [ \d]\d \d\d:\d\d file1$"
                     % (re.escape(user), len(p1)), out, re.M),
           "psftp ls lacks a proper longname for file1:\n" + out)
    expect(re.search(r"^-rw\S+ +1 .* third$", out, re.M), "second ls lacks 'third':\n" + out)


@tap.check("pscp -sftp -r via wicketd --stdio, both directions (diff -r)")
def check_pscp():
    base = fresh("pscp")
    tree = os.path.join(base, "tree")
    os.makedirs(os.path.join(tree, "sub", "deeper"))
    write_file(os.path.join(tree, "a"), b"alpha\n")
    write_file(os.path.join(tree, "empty"), b"")
    write_file(os.path.join(tree, "sub", "b"), os.urandom(300000))
    write_file(os.path.join(tree, "sub", "deeper", "c"), os.urandom(5))
    up = os.path.join(base, "up")
    # pscp -sftp creates the top directory only inside an existing target
    # (it does the same against OpenSSH's sftp-server).
    os.makedirs(up)
    r = run(putty_cmd("pscp", "-q", "-sftp", "-r", tree, "guest:" + up), timeout=120)
    expect(r.rc == 0, "pscp upload failed\n" + r.describe())
    d = run(["diff", "-r", tree, os.path.join(up, "tree")])
    expect(d.rc == 0, "uploaded tree differs\n" + d.describe())
    down = os.path.join(base, "down")
    r = run(putty_cmd("pscp", "-q", "-sftp", "-r", "guest:" + os.path.join(up, "tree"), down),
            timeout=120)
    expect(r.rc == 0, "pscp download failed\n" + r.describe())
    d = run(["diff", "-r", tree, down])
    expect(d.rc == 0, "downloaded tree differs\n" + d.describe())


@tap.check("wicketd --sftp-read-only passes -R: psftp put refused, get works")
def check_wicketd_read_only():
    base = fresh("ro-wicketd")
    write_file(os.path.join(base, "there"), b"content\n")
    write_file(os.path.join(base, "up"), b"x\n")
    script = os.path.join(base, "script")
    with open(script, "w") as f:
        f.write("lcd %s\ncd %s\nget there got\nput up up2\n" % (base, base))
    r = run(putty_cmd("psftp", "-b", script, "guest", extra_agent=["--sftp-read-only"]),
            timeout=60)
    expect(r.rc != 0, "psftp put succeeded in read-only mode\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "got")), b"content\n", "download")
    expect(not os.path.exists(os.path.join(base, "up2")), "read-only upload created a file")
    # psftp prints its own text for a status code.
    expect(b"open for write: permission denied" in r.out + r.err,
           "the refusal is not a permission error\n" + r.describe())


# ------------------------------------------------------------------ raw protocol

@tap.check("VERSION advertises the extensions; REALPATH . is the start directory")
def check_version():
    base = fresh("version")
    c = Sftp(cwd=base)
    expect_eq(c.extensions, EXTENSIONS, "advertised extensions")
    expect_eq(c.path(FXP_REALPATH, ".").names()[0][0], os.fsencode(os.path.realpath(base)),
              "REALPATH .")
    expect_eq(c.path(FXP_REALPATH, "").names()[0][0], os.fsencode(os.path.realpath(base)),
              "REALPATH of the empty path")
    expect_eq(c.path(FXP_REALPATH, "nonexistent/..").status()[0], FX_NO_SUCH_FILE,
              "REALPATH through a missing directory")
    expect_eq(c.path(FXP_REALPATH, "new-file").names()[0][0],
              os.fsencode(os.path.join(os.path.realpath(base), "new-file")),
              "REALPATH of a name that does not exist yet")
    expect_eq(c.finish(), 0, "exit status after EOF")


@tap.check("extensions: limits, statvfs, fsync, lsetstat, expand-path, home-directory, users-groups-by-id, copy-data, posix-rename vs RENAME, hardlink, READLINK, SETSTAT")
def check_extensions():
    base = fresh("ext")
    c = Sftp(cwd=base)
    r = c.ext("limits@openssh.com").reader()
    expect_eq([rd_u64(r) for _ in range(4)], [MAX_PACKET, MAX_DATA, MAX_DATA, 256], "limits")

    r = c.ext("statvfs@openssh.com", sshstr(".")).reader()
    vals = [rd_u64(r) for _ in range(11)]
    v = os.statvfs(base)
    expect_eq((vals[0], vals[1], vals[2], vals[10]),
              (v.f_bsize, v.f_frsize, v.f_blocks, v.f_namemax), "statvfs fields")

    h = c.must_open("f", FXF_READ | FXF_WRITE | FXF_CREAT, attrs(perm=0o600))
    expect_status(c.write(h, 0, b"0123456789"), FX_OK, "WRITE")
    expect_status(c.ext("fsync@openssh.com", sshstr(h)), FX_OK, "fsync")
    r = c.ext("fstatvfs@openssh.com", sshstr(h)).reader()
    expect_eq(rd_u64(r), v.f_bsize, "fstatvfs bsize")
    h2 = c.must_open("g", FXF_WRITE | FXF_CREAT)
    expect_status(c.ext("copy-data", sshstr(h) + u64(3) + u64(4) + sshstr(h2) + u64(0)), FX_OK,
                  "copy-data")
    expect_status(c.ext("copy-data", sshstr(h) + u64(0) + u64(0) + sshstr(h) + u64(20)),
                  FX_FAILURE, "copy-data onto the same handle")
    # Two handles of one file: overlapping ranges are refused at once (they
    # used to chase the growing end a byte at a time), disjoint ones work,
    # and a huge length stops at the source's end.
    write_file(os.path.join(base, "k"), b"0123456789")
    k1, k2 = c.must_open("k", FXF_READ), c.must_open("k", FXF_WRITE)
    t0 = time.monotonic()
    expect_status(c.ext("copy-data", sshstr(k1) + u64(0) + u64(1 << 40) + sshstr(k2) + u64(1)),
                  FX_FAILURE, "copy-data between overlapping ranges of one file")
    expect(time.monotonic() - t0 < 5, "the refusal took %.1f s" % (time.monotonic() - t0))
    expect_status(c.ext("copy-data", sshstr(k1) + u64(0) + u64(1 << 40) + sshstr(k2) + u64(10)),
                  FX_OK, "copy-data to the end of the same file (disjoint)")
    c.close(k1)
    c.close(k2)
    expect_eq(read_path(os.path.join(base, "k")), b"0123456789" * 2, "copy-data within one file")
    c.close(h)
    c.close(h2)
    expect_eq(read_path(os.path.join(base, "g")), b"3456", "copy-data result")
    expect_eq(stat.S_IMODE(os.stat(os.path.join(base, "f")).st_mode), 0o600,
              "OPEN with permissions")
    a = c.path(FXP_STAT, "f").attrs()
    expect_eq((a["size"], stat.S_IMODE(a["perm"]), stat.S_ISREG(a["perm"])), (10, 0o600, True),
              "STAT attrs")

    os.symlink("f", os.path.join(base, "lnk"))
    expect_eq(c.path(FXP_READLINK, "lnk").names()[0][0], b"f", "READLINK")
    expect_refused(c.path(FXP_READLINK, "f"), "READLINK of a regular file")
    expect(stat.S_ISLNK(c.path(FXP_LSTAT, "lnk").attrs()["perm"]), "LSTAT sees the link")
    expect(stat.S_ISREG(c.path(FXP_STAT, "lnk").attrs()["perm"]), "STAT follows the link")
    expect_status(c.ext("lsetstat@openssh.com", sshstr("lnk") + attrs(times=(1000, 2000))),
                  FX_OK, "lsetstat times")
    expect_eq(os.lstat(os.path.join(base, "lnk")).st_mtime, 2000, "lsetstat changed the link")
    expect(os.stat(os.path.join(base, "f")).st_mtime != 2000, "lsetstat left the target alone")
    expect_status(c.path(FXP_SETSTAT, "lnk", attrs(perm=0o644, times=(3000, 4000), size=4)),
                  FX_OK, "SETSTAT through the link")
    st = os.stat(os.path.join(base, "f"))
    expect_eq((stat.S_IMODE(st.st_mode), st.st_mtime, st.st_size), (0o644, 4000, 4),
              "SETSTAT result")

    write_file(os.path.join(base, "taken"), b"taken")
    expect_refused(c.two(FXP_RENAME, "g", "taken"), "RENAME onto an existing file")
    expect_eq(read_path(os.path.join(base, "taken")), b"taken", "RENAME did not replace")
    expect_status(c.ext("posix-rename@openssh.com", sshstr("g") + sshstr("taken")), FX_OK,
                  "posix-rename")
    expect_eq(read_path(os.path.join(base, "taken")), b"3456", "posix-rename replaced")
    expect_status(c.ext("hardlink@openssh.com", sshstr("taken") + sshstr("hl")), FX_OK,
                  "hardlink")
    expect_eq(os.stat(os.path.join(base, "hl")).st_ino, os.stat(os.path.join(base, "taken")).st_ino,
              "hard link shares the inode")
    expect_status(c.two(FXP_SYMLINK, "taken", "sl"), FX_OK, "SYMLINK (target first)")
    expect_eq(os.readlink(os.path.join(base, "sl")), "taken", "SYMLINK argument order")

    home = pwd.getpwuid(os.getuid()).pw_dir
    expect_eq(c.ext("home-directory", sshstr("")).names()[0][0], os.fsencode(home),
              "home-directory of the session user")
    expect_eq(c.ext("home-directory", sshstr("root")).names()[0][0],
              os.fsencode(pwd.getpwnam("root").pw_dir), "home-directory of root")
    expect_refused(c.ext("home-directory", sshstr("no-such-user-xyz")), "home of nobody")
    expect_eq(c.ext("expand-path@openssh.com", sshstr("~")).names()[0][0],
              os.fsencode(os.path.realpath(home)), "expand-path ~")
    expect_eq(c.ext("expand-path@openssh.com", sshstr("./f")).names()[0][0],
              os.fsencode(os.path.join(os.path.realpath(base), "f")),
              "expand-path of a plain path")
    r = c.ext("users-groups-by-id@openssh.com", sshstr(u32(0) + u32(4000000000)) +
              sshstr(u32(0))).reader()
    users, groups = Reader(r.str()), Reader(r.str())
    expect_eq((users.str(), users.str(), groups.str()), (b"root", b"", b"root"),
              "users-groups-by-id")
    expect_eq(c.finish(), 0, "exit status")


@tap.check("READDIR: all names, ls -l longnames, EOF; MKDIR/RMDIR/REMOVE")
def check_readdir():
    base = fresh("readdir")
    d = os.path.join(base, "d")
    os.makedirs(d)
    names = set()
    for i in range(357):
        n = "file-%03d" % i
        write_file(os.path.join(d, n), b"x" * i)
        names.add(n)
    os.symlink("file-001", os.path.join(d, "zlink"))
    os.makedirs(os.path.join(d, "zdir"))
    c = Sftp(cwd=base)
    got = c.readdir_all("d")
    byname = {n.decode(): (ln.decode(), a) for n, ln, a in got}
    expect_eq(set(byname), names | {".", "..", "zlink", "zdir"}, "READDIR names")
    user = pwd.getpwuid(os.getuid()).pw_name
    ln, a = byname["file-042"]
    expect(re.fullmatch(r"-rw-r--r--    1 %s +\S+ +42 \w{3} [ \d]\d \d\d:\d\d file-042"
                        % re.escape(user), ln), "longname of file-042: %r" % ln)
    expect_eq(a["size"], 42, "attrs size")
    expect(byname["zlink"][0].startswith("lrwxrwxrwx"), "symlink longname %r" % byname["zlink"][0])
    expect(byname["zdir"][0].startswith("drwx"), "dir longname %r" % byname["zdir"][0])
    expect_status(c.path(FXP_MKDIR, "newd", attrs(perm=0o700)), FX_OK, "MKDIR")
    expect_eq(stat.S_IMODE(os.stat(os.path.join(base, "newd")).st_mode), 0o700, "MKDIR mode")
    expect_status(c.path(FXP_MKDIR, "newd", attrs()), FX_FAILURE, "MKDIR of an existing dir",
                  "File exists")
    expect_status(c.path(FXP_RMDIR, "d"), FX_FAILURE, "RMDIR of a non-empty dir",
                  "Directory not empty")
    expect_status(c.path(FXP_RMDIR, "newd"), FX_OK, "RMDIR")
    expect_status(c.path(FXP_REMOVE, "d/file-000"), FX_OK, "REMOVE")
    expect(not os.path.exists(os.path.join(d, "file-000")), "REMOVE removed")
    expect_status(c.path(FXP_REMOVE, "d/file-000"), FX_NO_SUCH_FILE, "REMOVE again",
                  "No such file or directory")
    expect_status(c.path(FXP_OPENDIR, "d/file-001"), FX_FAILURE, "OPENDIR of a file",
                  "Not a directory")
    expect_eq(c.finish(), 0, "exit status")


@tap.check("read-only (-R): every write refused, zero-length create too; reads work")
def check_read_only():
    base = fresh("ro")
    write_file(os.path.join(base, "f"), b"data\n")
    os.makedirs(os.path.join(base, "d"))
    os.symlink("f", os.path.join(base, "l"))
    before = tree_snapshot(base)
    c = Sftp(["-R"], cwd=base)
    for pf in (FXF_WRITE, FXF_READ | FXF_WRITE, FXF_CREAT, FXF_READ | FXF_CREAT,
               FXF_CREAT | FXF_EXCL, FXF_TRUNC, FXF_APPEND, FXF_WRITE | FXF_CREAT | FXF_TRUNC):
        for p in ("f", "new"):
            expect_status(c.open(p, pf), FX_PERMISSION_DENIED, "OPEN %s pflags %#x" % (p, pf))
    expect_status(c.path(FXP_SETSTAT, "f", attrs(perm=0o777)), FX_PERMISSION_DENIED, "SETSTAT")
    expect_status(c.path(FXP_SETSTAT, "f", attrs()), FX_PERMISSION_DENIED, "empty SETSTAT")
    expect_status(c.path(FXP_REMOVE, "f"), FX_PERMISSION_DENIED, "REMOVE")
    expect_status(c.path(FXP_MKDIR, "m", attrs()), FX_PERMISSION_DENIED, "MKDIR")
    expect_status(c.path(FXP_RMDIR, "d"), FX_PERMISSION_DENIED, "RMDIR")
    expect_status(c.two(FXP_RENAME, "f", "g"), FX_PERMISSION_DENIED, "RENAME")
    expect_status(c.two(FXP_SYMLINK, "f", "s"), FX_PERMISSION_DENIED, "SYMLINK")
    for name, body in (("posix-rename@openssh.com", sshstr("f") + sshstr("g")),
                       ("hardlink@openssh.com", sshstr("f") + sshstr("g")),
                       ("lsetstat@openssh.com", sshstr("l") + attrs(times=(1, 1)))):
        expect_status(c.ext(name, body), FX_PERMISSION_DENIED, name)
    h = c.must_open("f", FXF_READ)
    expect_eq(c.read(h, 0, 100).data(), b"data\n", "READ")
    expect_status(c.write(h, 0, b"x"), FX_PERMISSION_DENIED, "WRITE", "read-only")
    expect_status(c.call(FXP_FSETSTAT, sshstr(h) + attrs(perm=0o600)), FX_PERMISSION_DENIED,
                  "FSETSTAT")
    expect_status(c.ext("fsync@openssh.com", sshstr(h)), FX_PERMISSION_DENIED, "fsync")
    expect_status(c.ext("copy-data", sshstr(h) + u64(0) + u64(0) + sshstr(h) + u64(9)),
                  FX_PERMISSION_DENIED, "copy-data")
    expect(c.call(FXP_FSTAT, sshstr(h)).attrs()["size"] == 5, "FSTAT")
    c.close(h)
    expect(len(c.readdir_all(".")) == 5, "READDIR works")
    c.path(FXP_STAT, "l").attrs()
    c.path(FXP_LSTAT, "l").attrs()
    c.path(FXP_READLINK, "l").names()
    c.path(FXP_REALPATH, "d").names()
    c.ext("statvfs@openssh.com", sshstr(".")).reader()
    expect_eq(c.finish(), 0, "exit status")
    expect_eq(tree_snapshot(base), before, "the tree after every refused write")


@tap.check("--root: '..', absolute paths and symlinks (absolute, relative) cannot reach outside")
def check_root():
    base = fresh("root")
    outside, root = os.path.join(base, "outside"), os.path.join(base, "root")
    os.makedirs(outside)
    os.makedirs(os.path.join(root, "sub"))
    secret = os.path.join(outside, "secret")
    write_file(secret, b"SECRET\n")
    os.chmod(secret, 0o640)
    write_file(os.path.join(root, "inside"), b"inside\n")
    os.symlink(secret, os.path.join(root, "abs"))
    os.symlink("../outside/secret", os.path.join(root, "rel"))
    os.symlink(outside, os.path.join(root, "dirabs"))
    os.symlink("../outside", os.path.join(root, "dirrel"))
    os.symlink("../../outside/secret", os.path.join(root, "sub", "deeprel"))
    os.symlink("/", os.path.join(root, "slash"))
    outside_before = tree_snapshot(outside)
    base_before = sorted(os.listdir(base))

    c = Sftp(["--root", root], cwd=base)
    for p in (".", "..", "/..", "/../../..", "sub/..", "dirrel/..", "../root"):
        rp = c.path(FXP_REALPATH, p)
        if rp.type == FXP_NAME:
            got = rp.names()[0][0]
            expect(got.startswith(b"/") and base.encode() not in got,
                   "REALPATH %s gives %r" % (p, got))
    expect_eq(c.path(FXP_REALPATH, ".").names()[0][0], b"/", "REALPATH . under --root")
    expect_eq(c.path(FXP_REALPATH, "/../..").names()[0][0], b"/", "REALPATH /../..")
    expect_eq(c.path(FXP_REALPATH, "sub").names()[0][0], b"/sub", "REALPATH sub")
    expect_eq(c.ext("home-directory", sshstr("")).names()[0][0], b"/", "home under --root")
    expect_eq(c.read_file("/inside"), b"inside\n", "absolute paths are relative to the root")
    expect_eq(c.read_file("../inside"), b"inside\n", "'..' at the top stays at the top")

    escapes = ["../outside/secret", "/../outside/secret", secret, "abs", "rel", "dirabs/secret",
               "dirrel/secret", "sub/deeprel", "sub/../../outside/secret", "slash" + secret,
               "/slash/../outside/secret"]
    in_root_links = ("abs", "rel", "sub/deeprel")
    for p in escapes:
        expect_refused(c.open(p, FXF_READ), "OPEN %s for reading" % p)
        expect_refused(c.path(FXP_STAT, p), "STAT %s" % p)
        expect_refused(c.path(FXP_SETSTAT, p, attrs(perm=0o666)), "SETSTAT %s" % p)
        rep = c.open(p, FXF_WRITE | FXF_CREAT | FXF_TRUNC)
        if rep.type == FXP_HANDLE:
            h = rep.handle()
            c.write(h, 0, b"pwned")
            c.close(h)
        if p not in in_root_links:  # removing a link inside is fine
            expect_refused(c.path(FXP_REMOVE, p), "REMOVE %s" % p)
        c.path(FXP_MKDIR, p + "-dir", attrs())
        c.two(FXP_RENAME, "inside", p + "-moved")
        c.two(FXP_RENAME, p + "-moved", "inside")
        c.ext("hardlink@openssh.com", sshstr(p) + sshstr("hl"))
        expect_refused(c.path(FXP_STAT, "hl"), "STAT of a hard link made from %s" % p)
        c.path(FXP_REMOVE, "hl")
        c.two(FXP_SYMLINK, p, "made")
        expect_refused(c.open("made", FXF_READ), "OPEN of a new symlink to %s" % p)
        c.path(FXP_REMOVE, "made")
        c.ext("lsetstat@openssh.com", sshstr(p) + attrs(times=(5, 5)))
        c.ext("statvfs@openssh.com", sshstr(p))
    for p in ("..", "/..", "../outside", "dirabs", "dirrel", "slash/..", "/slash/tmp"):
        rep = c.path(FXP_OPENDIR, p)
        if rep.type == FXP_HANDLE:
            h = rep.handle()
            seen = set()
            while True:
                rr = c.call(FXP_READDIR, sshstr(h))
                if rr.type != FXP_NAME:
                    break
                seen |= {n for n, _, _ in rr.names()}
            c.close(h)
            expect(b"secret" not in seen and b"outside" not in seen,
                   "OPENDIR %s listed outside names: %s" % (p, sorted(seen)))
    expect_eq(sorted(n for n, _, _ in c.readdir_all("slash")),
              sorted(n for n, _, _ in c.readdir_all("/")), "the symlink to / is the root")
    expect_eq(c.finish(), 0, "exit status")
    expect_eq(tree_snapshot(outside), outside_before, "the outside directory")
    expect_eq(sorted(os.listdir(base)), base_before, "the root's parent directory")
    expect(os.path.exists(os.path.join(root, "inside")), "inside file still there")

    # The same through OpenSSH's client.
    r = sftp_batch("-get ../outside/secret got1\n-get %s got2\n-get abs got3\n-get rel got4\n"
                   "-put %s/inside ../planted\nls /\n" % (secret, root),
                   server_args=["--root", root], cwd=base)
    expect(r.rc == 0, "sftp batch failed\n" + r.describe())
    for g in ("got1", "got2", "got3", "got4"):
        expect(not os.path.exists(os.path.join(base, g)), "sftp fetched %s from outside" % g)
    expect(not os.path.exists(os.path.join(base, "planted")), "sftp planted a file outside")
    expect(os.path.exists(os.path.join(root, "planted")), "put ../planted lands in the root")
    expect_eq(tree_snapshot(outside), outside_before, "the outside directory after sftp")


@tap.check("--root on a missing directory: exit 1 with a message")
def check_root_missing():
    r = run([SERVER, "--root", os.path.join(S["tmp"], "no-such-dir")], timeout=10)
    expect(r.rc == 1 and b"no-such-dir" in r.err, "bad --root\n" + r.describe())


@tap.check("ENOSPC on a 1 MiB tmpfs: 'No space left on device', next request served")
def check_enospc():
    mnt = fresh("tmpfs")
    r = run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], timeout=20)
    if r.rc != 0:
        raise Skip("cannot mount a tmpfs: %s" % r.err.decode("utf-8", "replace").strip())
    tap.at_cleanup(lambda: run(["umount", "-l", mnt], timeout=20))
    c = Sftp(["--root", mnt], cwd=mnt)
    h = c.must_open("fill", FXF_WRITE | FXF_CREAT | FXF_TRUNC)
    chunk = os.urandom(64 * 1024)
    msg = None
    for i in range(40):
        rep = c.write(h, i * len(chunk), chunk)
        code, m = rep.status()
        if code != FX_OK:
            expect_eq(code, FX_FAILURE, "status code of the failing write")
            msg = m
            break
    expect(msg is not None, "2.5 MiB fit on a 1 MiB tmpfs?")
    expect("No space left on device" in msg, "ENOSPC message: %r" % msg)
    # The session goes on: stat, free the space, write again.
    expect(c.call(FXP_FSTAT, sshstr(h)).attrs()["size"] > 0, "FSTAT after ENOSPC")
    expect_status(c.close(h), FX_OK, "CLOSE after ENOSPC")
    expect_status(c.path(FXP_REMOVE, "fill"), FX_OK, "REMOVE after ENOSPC")
    h = c.must_open("small", FXF_WRITE | FXF_CREAT)
    expect_status(c.write(h, 0, b"fits\n"), FX_OK, "WRITE after freeing space")
    c.close(h)
    expect_eq(read_path(os.path.join(mnt, "small")), b"fits\n", "file written after ENOSPC")
    expect_eq(c.finish(), 0, "exit status")

    # OpenSSH's client: the failing put does not end the session.
    src = fresh("enospc-src")
    write_file(os.path.join(src, "big"), os.urandom(3 * 1024 * 1024))
    write_file(os.path.join(src, "little"), b"little\n")
    os.remove(os.path.join(mnt, "small"))
    r = sftp_batch("lcd %s\n-put big\nrm big\nput little\nls -l\n" % src,
                   server_args=["--root", mnt], cwd=mnt)
    expect(r.rc == 0, "sftp batch after ENOSPC failed\n" + r.describe())
    expect_eq(read_path(os.path.join(mnt, "little")), b"little\n", "put after ENOSPC")
    expect(not os.path.exists(os.path.join(mnt, "big")), "rm after ENOSPC")


@tap.check("big WRITEs from a pipe: spliced into the file (strace), byte-exact; refused ones (bad handle, -R, -P write) and ENOSPC mid-payload keep the stream in sync")
def check_direct_write():
    base = fresh("direct")
    data = os.urandom(MAX_DATA - 7)
    wrap, log = (), os.path.join(base, "..", "direct.strace")
    if shutil.which("strace"):
        wrap = ("strace", "-qq", "-e", "trace=splice", "-o", log)
    c = Sftp([], cwd=base, wrap=wrap, env=strace_env())
    h = c.must_open("f", FXF_WRITE | FXF_CREAT | FXF_TRUNC)
    expect_status(c.write_split(h, 3, data, 100), FX_OK, "big WRITE")
    expect_status(c.write_split(h, 3 + len(data), data[:200000], 0), FX_OK, "second big WRITE")
    expect_status(c.write_split(b"\0" * 8, 0, data, 10), FX_FAILURE, "bad handle",
                  "invalid handle")
    expect_status(c.write(h, 0, b"abc"), FX_OK, "small WRITE after the refused one")
    c.close(h)
    want = b"abc" + data + data[:200000]
    expect_eq(read_path(os.path.join(base, "f")) == want, True, "file contents byte-exact")
    expect_eq(c.finish(), 0, "exit status")
    if wrap:
        into_file = 0
        for line in open(log):
            m = re.search(r"splice\(\d+, NULL, \d+, \[\d+\], \d+, [A-Z_|]+\) = (\d+)", line)
            if m:
                into_file += int(m.group(1))
        expect(into_file > len(data), "payloads spliced into the file: %d bytes" % into_file)
    # O_APPEND: the file takes no splice, the payload is copied.
    c = Sftp([], cwd=base)
    h = c.must_open("a", FXF_WRITE | FXF_CREAT | FXF_APPEND)
    expect_status(c.write_split(h, 0, data, 100), FX_OK, "big WRITE, append")
    expect_status(c.write_split(h, 0, data[:100000], 0), FX_OK, "second big WRITE, append")
    c.close(h)
    expect_eq(read_path(os.path.join(base, "a")) == data + data[:100000], True,
              "appended file byte-exact")
    expect_eq(c.finish(), 0, "exit status")
    for args, msg in ((["-R"], "read-only"), (["-P", "write"], "denied by server policy")):
        write_file(os.path.join(base, "r"), b"keep\n")
        c = Sftp(args, cwd=base)
        h = c.must_open("r", FXF_READ)
        expect_status(c.write_split(h, 0, data, 50), FX_PERMISSION_DENIED, "WRITE " + args[0], msg)
        expect_eq(c.read(h, 0, 100).data(), b"keep\n", "READ after the refused WRITE")
        c.close(h)
        expect_eq(c.finish(), 0, "exit status")
    mnt = fresh("direct-tmpfs")
    r = run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], timeout=20)
    if r.rc != 0:
        raise Skip("cannot mount a tmpfs: %s" % r.err.decode("utf-8", "replace").strip())
    tap.at_cleanup(lambda: run(["umount", "-l", mnt], timeout=20))
    c = Sftp([], cwd=mnt)
    h = c.must_open("fill", FXF_WRITE | FXF_CREAT)
    codes = [c.write_split(h, i * len(data), data, 1000).status() for i in range(6)]
    expect(codes[-1][0] == FX_FAILURE and "No space left on device" in codes[-1][1],
           "ENOSPC reported: %r" % codes)
    expect(c.call(FXP_FSTAT, sshstr(h)).attrs()["size"] > 0, "FSTAT after ENOSPC")
    c.close(h)
    expect_eq(c.finish(), 0, "exit status")


@tap.check("malformed packets: BAD_MESSAGE/OP_UNSUPPORTED/invalid handle, server keeps serving")
def check_malformed():
    base = fresh("malformed")
    write_file(os.path.join(base, "f"), b"0123456789" * 100000)
    c = Sftp(cwd=base)

    def alive(what):
        expect_eq(c.path(FXP_STAT, "f").attrs()["size"], 1000000, "STAT after " + what)

    rid = c.send(FXP_OPEN, sshstr("f"))  # pflags and attrs missing
    rep = c.recv()
    expect_eq((rep.id, rep.status()[0]), (rid, FX_BAD_MESSAGE), "truncated OPEN")
    alive("truncated OPEN")
    expect_status(c.call(FXP_STAT, sshstr("f") + b"junk"), FX_BAD_MESSAGE, "trailing bytes")
    expect_status(c.call(FXP_STAT, u32(999999) + b"f"), FX_BAD_MESSAGE, "string past the end")
    expect_status(c.call(FXP_STAT, sshstr(b"f\0x")), FX_BAD_MESSAGE, "NUL in a path")
    expect_status(c.call(FXP_SETSTAT, sshstr("f") + u32(0x80000000) + u32(0x7fffffff)),
                  FX_BAD_MESSAGE, "attrs with a huge extended count")
    expect_status(c.call(99), FX_OP_UNSUPPORTED, "unknown request type")
    expect_status(c.call(FXP_EXTENDED, sshstr("no-such@example.com")), FX_OP_UNSUPPORTED,
                  "unknown extension")
    expect_status(c.call(FXP_EXTENDED, u32(77)), FX_BAD_MESSAGE, "extension name past the end")
    alive("bad requests")

    h = c.must_open("f", FXF_READ)
    for bad in (b"", b"x", h[:7], h + b"\0", bytes(8), h[:4] + bytes([h[4] ^ 1]) + h[5:],
                b"\xff" * 8):
        expect_status(c.read(bad, 0, 10), FX_FAILURE, "READ with handle %s" % show(bad),
                      "invalid handle")
    expect_status(c.call(FXP_READDIR, sshstr(h)), FX_FAILURE, "READDIR with a file handle")
    d = c.read(h, 0, 0xffffffff).data()
    expect_eq(len(d), MAX_DATA, "READ of 4 GiB is clamped")
    expect_status(c.read(h, 1 << 40, 10), FX_EOF, "READ far past the end")
    c.close(h)
    expect_status(c.read(h, 0, 10), FX_FAILURE, "READ on a closed handle", "invalid handle")
    expect_status(c.close(h), FX_FAILURE, "double CLOSE", "invalid handle")

    # Packets too short for an id, and empty ones, get no reply at all.
    c.send_raw(u32(0) + u32(1) + bytes([FXP_STAT]) + u32(3) + bytes([FXP_STAT, 0, 0]))
    alive("packets without an id")

    # Pipelining: many requests in one write, answered in order.
    burst = b""
    ids = []
    for i in range(200):
        rid = 10000 + i
        ids.append(rid)
        p = bytes([FXP_STAT]) + u32(rid) + sshstr("f" if i % 2 else "nope")
        burst += u32(len(p)) + p
    c.send_raw(burst)
    got = [c.recv() for _ in ids]
    expect_eq([g.id for g in got], ids, "ids of pipelined replies")
    expect(all((g.type == FXP_ATTRS) == (i % 2 == 1) for i, g in enumerate(got)),
           "pipelined reply types")

    # A length over the limit ends the session, with a log line; what came
    # before it in the same write is still answered.
    p = bytes([FXP_STAT]) + u32(4242) + sshstr("f")
    c.send_raw(u32(len(p)) + p + u32(MAX_PACKET + 1) + bytes([FXP_STAT]) + u32(1))
    rep = c.recv()
    expect(rep is not None and rep.id == 4242, "the request before the huge one was answered")
    expect(c.recv() is None, "server must close after a huge length")
    rc = c.p.wait(timeout=10)
    expect(rc != 0, "exit status after a huge length: %s" % rc)
    expect("exceeds the limit" in c.log(), "no log line for the huge length: %r" % c.log())

    # EOF in the middle of a packet: a clean exit.
    c2 = Sftp(cwd=base)
    c2.send_raw(u32(100) + b"\x11\x00")
    expect_eq(c2.finish(), 0, "exit status after EOF inside a packet")
    expect("inside a packet" in c2.log(), "no log line for the cut packet: %r" % c2.log())


@tap.check("lock@wicket: a second session cannot lock an open, locked file; it can once the holder closes or exits")
def check_lock():
    base = fresh("lock")
    a, b = Sftp(cwd=base), Sftp(cwd=base)
    ha = a.must_open("part", FXF_WRITE | FXF_CREAT, attrs(perm=0o600))
    expect_status(a.ext("lock@wicket", sshstr(ha)), FX_OK, "first lock")
    expect_status(a.ext("lock@wicket", sshstr(ha)), FX_OK, "the holder locks again")
    hb = b.must_open("part", FXF_WRITE)
    expect_status(b.ext("lock@wicket", sshstr(hb)), FX_FAILURE, "second session's lock",
                  msg_contains="locked by another client")
    expect_status(b.write(hb, 0, b"x"), FX_OK, "an advisory lock: writes still work")
    expect_status(a.close(ha), FX_OK, "holder's CLOSE")
    expect_status(b.ext("lock@wicket", sshstr(hb)), FX_OK, "lock after the holder closed")
    c = Sftp(cwd=base)
    hc = c.must_open("part", FXF_WRITE)
    expect_status(c.ext("lock@wicket", sshstr(hc)), FX_FAILURE, "third session while b holds it")
    expect_eq(b.finish(), 0, "holder's exit status at EOF")
    expect_status(c.ext("lock@wicket", sshstr(hc)), FX_OK, "lock after the holder exited")
    expect_status(c.ext("lock@wicket", sshstr(b"nosuch")), FX_FAILURE, "unknown handle")
    for s in (a, c):
        expect_eq(s.finish(), 0, "exit status at EOF")


@tap.check("--max-handles: the cap gives 'too many open handles'; CLOSE frees a slot")
def check_max_handles():
    base = fresh("handles")
    write_file(os.path.join(base, "f"), b"x")
    c = Sftp(["--max-handles", "3"], cwd=base)
    hs = [c.must_open("f", FXF_READ), c.must_open("f", FXF_READ),
          c.path(FXP_OPENDIR, ".").handle()]
    expect_status(c.open("f", FXF_READ), FX_FAILURE, "4th handle", "too many open handles")
    expect_status(c.path(FXP_OPENDIR, "."), FX_FAILURE, "4th dir handle", "too many open handles")
    r = c.ext("limits@openssh.com").reader()
    expect_eq([rd_u64(r) for _ in range(4)][3], 3, "limits max-open-handles")
    c.close(hs[1])
    h = c.must_open("f", FXF_READ)
    expect_status(c.read(hs[1], 0, 1), FX_FAILURE, "old handle of the freed slot")
    expect_eq(c.read(h, 0, 1).data(), b"x", "new handle works")
    expect_eq(c.finish(), 0, "exit status")
    # The default is 256.
    c = Sftp(cwd=base)
    n = 0
    while True:
        rep = c.open("f", FXF_READ)
        if rep.type != FXP_HANDLE:
            expect_status(rep, FX_FAILURE, "open past the default cap", "too many open handles")
            break
        n += 1
        expect(n <= 256, "more than 256 handles opened")
    expect_eq(n, 256, "default handle cap")
    expect_eq(c.finish(), 0, "exit status")


@tap.check("options: -Q requests, -P, -p, -h, -V, -l, bad options")
def check_options():
    base = fresh("options")
    write_file(os.path.join(base, "f"), b"f")
    r = run([SERVER, "-Q", "requests"], timeout=10)
    expect_eq((r.rc, r.out.decode().split()), (0, REQUEST_NAMES), "-Q requests")
    r = run([SERVER, "-h"], timeout=10)
    expect(r.rc == 0 and b"Usage" in r.out and b"--root" in r.out, "-h\n" + r.describe())
    r = run([SERVER, "-V"], timeout=10)
    expect(r.rc == 0 and r.out.startswith(b"wicket-sftp-server "), "-V\n" + r.describe())
    for bad in (["-P", "remove,bogus"], ["-p", "nope"], ["-Q", "x"], ["--bogus"], ["-l", "loud"],
                ["--max-handles", "0"], ["-d", "%q"]):
        r = run([SERVER] + bad, timeout=10)
        expect(r.rc == 2 and r.err, "%s must fail with a message\n%s" % (bad, r.describe()))

    c = Sftp(["-P", "remove,hardlink,statvfs@openssh.com"], cwd=base)
    names = [n for n, _ in c.extensions]
    expect("hardlink@openssh.com" not in names and "statvfs@openssh.com" not in names and
           "fstatvfs@openssh.com" in names, "denied extensions advertised: %s" % names)
    expect_status(c.path(FXP_REMOVE, "f"), FX_PERMISSION_DENIED, "-P remove")
    expect(os.path.exists(os.path.join(base, "f")), "denied REMOVE removed")
    expect_status(c.ext("statvfs@openssh.com", sshstr(".")), FX_PERMISSION_DENIED, "-P statvfs")
    c.path(FXP_STAT, "f").attrs()
    c.finish()

    c = Sftp(["-p", "open,close,read,realpath,stat,lstat,opendir,readdir"], cwd=base)
    expect_eq(c.extensions, [], "-p without extensions advertises none")
    expect_eq(c.read_file("f"), b"f", "allowed requests work")
    expect_status(c.path(FXP_MKDIR, "m", attrs()), FX_PERMISSION_DENIED, "MKDIR not in -p")
    expect_status(c.ext("limits@openssh.com"), FX_PERMISSION_DENIED, "limits not in -p")
    c.finish()

    c = Sftp(["-l", "debug"], cwd=base)
    c.path(FXP_STAT, "f")
    c.finish()
    expect('stat (id 1): path "f"' in c.log(), "-l debug logs requests: %r" % c.log()[:500])


@tap.check("scp -s -D: operands after -- are ignored (SERVER -- HOST sftp), both ways")
def check_scp_sftp_mode():
    need_tool("scp")
    base = fresh("scp-s")
    payload = os.urandom(300 * 1024 + 7)
    write_file(os.path.join(base, "up"), payload)
    # What scp really starts: record its argv through a wrapper.
    wrap = os.path.join(base, "wrap.sh")
    with open(wrap, "w") as f:
        f.write('#!/bin/sh\nprintf "%%s\\n" "$@" > %s/argv\nexec %s "$@"\n' % (base, SERVER))
    os.chmod(wrap, 0o755)
    r = run(["scp", "-s", "-D", wrap, "up", "somehost:%s/down" % base], cwd=base, timeout=60)
    expect(r.rc == 0, "scp -s upload\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "down")), payload, "uploaded bytes")
    expect_eq(read_path(os.path.join(base, "argv")), b"--\nsomehost\nsftp\n",
              "scp -s -D starts SERVER -- HOST sftp")
    r = run(["scp", "-s", "-D", SERVER, "x:%s/down" % base, "back"], cwd=base, timeout=60)
    expect(r.rc == 0, "scp -s download\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "back")), payload, "downloaded bytes")
    r = run([SERVER, "-V", "--", "host", "sftp"], timeout=10)
    expect(r.rc == 0, "operands with -V\n" + r.describe())


@tap.check("-d DIR: the start directory as OpenSSH's (%d, %u; missing: logged, start as usual)")
def check_start_dir():
    base = fresh("startdir")
    os.makedirs(os.path.join(base, "top", "sub"))
    write_file(os.path.join(base, "top", "sub", "f"), b"in sub\n")
    r = sftp_batch("pwd\nget f got\n", server_args=["-d", os.path.join(base, "top", "sub")],
                   cwd=base)
    expect(r.rc == 0, "sftp -d\n" + r.describe())
    expect("Remote working directory: %s/top/sub" % base in r.out.decode(), "pwd\n" + r.describe())
    expect_eq(read_path(os.path.join(base, "got")), b"in sub\n", "relative get from the start dir")
    # %d and %u expand to this user's home and name.
    pw = pwd.getpwuid(os.getuid())
    if os.path.isdir(pw.pw_dir):
        r = sftp_batch("pwd\n", server_args=["-d", "%d"], cwd=base)
        expect("Remote working directory: %s" % os.path.realpath(pw.pw_dir) in r.out.decode(),
               "-d %%d\n" + r.describe())
    os.makedirs(os.path.join(base, "u-" + pw.pw_name))
    r = sftp_batch("pwd\n", server_args=["-d", os.path.join(base, "u-%u")], cwd=base)
    expect("Remote working directory: %s/u-%s" % (base, pw.pw_name) in r.out.decode(),
           "-d with %%u\n" + r.describe())
    # A start directory that does not exist: an error in the log, the session goes on.
    r = sftp_batch("pwd\n", server_args=["-d", os.path.join(base, "nope")], cwd=base)
    expect(r.rc == 0 and "Remote working directory: %s\n" % base in r.out.decode() and
           b"nope" in r.err, "missing -d\n" + r.describe())


@tap.check("--root with -d: relative paths start in -d, '..' still stops at the root")
def check_root_start_dir():
    base = fresh("rootstart")
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "a", "b"))
    write_file(os.path.join(root, "a", "b", "f"), b"deep\n")
    write_file(os.path.join(root, "top"), b"top\n")
    write_file(os.path.join(base, "secret"), b"outside\n")
    r = sftp_batch("pwd\nget f g1\nget ../../top g2\n-get ../../../secret g3\ncd ../../..\npwd\n"
                   "put %s/secret planted\n" % base,
                   server_args=["--root", root, "-d", "/a/b"], cwd=base)
    out = r.out.decode()
    expect(r.rc == 0, "sftp --root -d\n" + r.describe())
    expect("Remote working directory: /a/b\n" in out, "pwd is /a/b inside the root\n" + out)
    expect_eq(read_path(os.path.join(base, "g1")), b"deep\n", "relative get")
    expect_eq(read_path(os.path.join(base, "g2")), b"top\n", "../.. reaches the root's top")
    expect(not os.path.exists(os.path.join(base, "g3")), "../../../secret escaped the root")
    expect("Remote working directory: /\n" in out, "cd past the top stays at /\n" + out)
    expect(os.path.exists(os.path.join(root, "planted")), "put after cd .. lands at the root")
    # A relative -d is inside the root too; a missing one: logged, start at the top.
    r = sftp_batch("pwd\n", server_args=["--root", root, "-d", "a"], cwd=base)
    expect("Remote working directory: /a\n" in r.out.decode(), "-d a under --root\n" + r.describe())
    r = sftp_batch("pwd\n", server_args=["--root", root, "-d", "../../.."], cwd=base)
    expect("Remote working directory: /\n" in r.out.decode(),
           "-d ../../.. stays at the root\n" + r.describe())
    r = sftp_batch("pwd\n", server_args=["--root", root, "-d", "/missing"], cwd=base)
    expect(r.rc == 0 and "Remote working directory: /\n" in r.out.decode() and b"missing" in r.err,
           "missing -d under --root\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
