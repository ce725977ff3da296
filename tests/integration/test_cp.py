#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""wicket cp: copies both ways against wicketd's sftp server (and OpenSSH's
and psusan's), -p, --resume, failures, interruption, ENOSPC, and a
malicious sftp server (evil_sftp.py).

How resume is detected: the partial destination holds the first K bytes of
the source with one byte flipped.  A real resume keeps that prefix (the
flipped byte survives, the rest is appended); a full re-copy would restore
the source's byte.

`python3 test_cp.py --relay SOCKET BYTES_PER_SEC` is a helper mode used as
wicket's --proxy-command: it relays stdin/stdout to the agent's socket,
throttling our upload direction so a copy can be interrupted mid-way."""

import glob
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import (WICKETD, Agent, Failure, Skip, expect, expect_eq, run,  # noqa: E402
                    socket_accepts, spawn, strace_env, tap, wait_until, wicket)

HERE = os.path.dirname(os.path.abspath(__file__))
EVIL = os.path.join(HERE, "evil_sftp.py")
OPENSSH_SFTP = "/usr/lib/openssh/sftp-server"
BIG = 50 * 1024 * 1024

S = {}  # state from setup


def relay_main(path, rate, down_rate=0):
    """stdin -> socket throttled to rate bytes/s; socket -> stdout throttled
    to down_rate (0: as fast as possible)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)

    def pace(t0, done, r):
        ahead = done / r - (time.monotonic() - t0) if r else 0
        if ahead > 0:
            time.sleep(ahead)

    def down():
        t0, got = time.monotonic(), 0
        while True:
            d = s.recv(16384)
            if not d:
                break
            os.write(1, d)
            got += len(d)
            pace(t0, got, down_rate)
        os._exit(0)
    threading.Thread(target=down, daemon=True).start()
    t0 = time.monotonic()
    sent = 0
    while True:
        d = os.read(0, 16384)
        if not d:
            s.shutdown(socket.SHUT_WR)
            break
        s.sendall(d)
        sent += len(d)
        pace(t0, sent, rate)
    threading.Event().wait()


def server_kind():
    own = os.path.join(os.path.dirname(WICKETD), "wicket-sftp-server")
    if os.access(own, os.X_OK):
        return "wicket", []
    if os.access(OPENSSH_SFTP, os.X_OK):
        return "openssh", ["--sftp-server", OPENSSH_SFTP]
    return None, []


def setup():
    os.umask(0o022)
    S["tmp"] = tap.tmpdir("wicket-cp-")
    kind, extra = server_kind()
    S["kind"] = kind
    if kind:
        S["agent"] = Agent(S["tmp"], extra=extra)
        S["t"] = S["agent"].target
    if os.access(OPENSSH_SFTP, os.X_OK):
        S["ossh"] = Agent(S["tmp"], name="openssh.sock", extra=["--sftp-server", OPENSSH_SFTP])


def need_agent():
    if not S.get("kind"):
        raise Skip("no sftp server: neither wicket-sftp-server nor %s" % OPENSSH_SFTP)
    return S["t"]


def fresh(name):
    d = os.path.join(S["tmp"], name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def rnd(n, seed):
    r = random.Random(seed)
    return r.randbytes(n) if hasattr(r, "randbytes") else os.urandom(n)


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def make_tree(root, symlinks=True, big=BIG):
    os.makedirs(root)
    write(os.path.join(root, "a file with spaces.txt"), b"hello, world\n")
    os.makedirs(os.path.join(root, "dir with space", "deeper"))
    write(os.path.join(root, "dir with space", "inner file"), b"inner\n" * 1000)
    write(os.path.join(root, "dir with space", "deeper", "leaf"), b"leaf")
    os.makedirs(os.path.join(root, "empty dir"))
    write(os.path.join(root, "zero"), b"")
    write(os.path.join(root, "big.bin"), rnd(big, 1))
    if symlinks:
        os.symlink("a file with spaces.txt", os.path.join(root, "link"))
        os.symlink("/nonexistent/dangling target", os.path.join(root, "dangling"))


def compare_trees(a, b):
    r = run(["diff", "-r", "--no-dereference", a, b], timeout=120)
    expect_eq(r.rc, 0, "diff -r %s %s\n%s" % (a, b, r.describe()))
    for dirpath, dirs, files in os.walk(a):
        rel = os.path.relpath(dirpath, a)
        for n in dirs + files:
            pa = os.path.join(dirpath, n)
            pb = os.path.join(b, rel, n)
            sa, sb = os.lstat(pa), os.lstat(pb)
            expect_eq(stat.S_IFMT(sb.st_mode), stat.S_IFMT(sa.st_mode), "type of " + pb)
            if stat.S_ISLNK(sa.st_mode):
                expect_eq(os.readlink(pb), os.readlink(pa), "symlink target of " + pb)
    leftovers = [p for p in glob.glob(os.path.join(b, "**", ".*wicket-*"), recursive=True)]
    expect(not leftovers, "temporary files left behind: %s" % leftovers)


def cp(*args, timeout=180, proxy=None):
    # A proxy command here is a throttled relay or a hostile server made for
    # one copy: each copy gets its own stream (the mux has tests of its own).
    g = ["--share", "no", "--proxy-command", proxy] if proxy else []
    return run(wicket(*g, "cp", *args), timeout=timeout)


def ok(r, what):
    expect_eq(r.rc, 0, what + "\n" + r.describe())


# ---------------------------------------------------------------- copies


@tap.check("upload a tree (spaces, empty dir, symlinks, 0-byte, 50 MB): diff -r clean")
def _():
    t = need_agent()
    d = fresh("up")
    make_tree(os.path.join(d, "src"))
    ok(cp("-r", os.path.join(d, "src"), "%s:%s" % (t, os.path.join(d, "dst"))), "upload")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "dst"))
    # Into an existing directory: lands as dst/src.
    ok(cp("-rq", os.path.join(d, "src"), "%s:%s/" % (t, os.path.join(d, "dst"))), "upload into dir")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "dst", "src"))


@tap.check("download a tree (spaces, empty dir, symlinks, 0-byte, 50 MB): diff -r clean")
def _():
    t = need_agent()
    d = fresh("down")
    make_tree(os.path.join(d, "src"))
    ok(cp("-r", "%s:%s" % (t, os.path.join(d, "src")), os.path.join(d, "dst")), "download")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "dst"))
    os.makedirs(os.path.join(d, "into"))
    ok(cp("-r", "%s:%s" % (t, os.path.join(d, "src")), os.path.join(d, "into")), "download into dir")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "into", "src"))


@tap.check("single files, several sources into a directory, a new name, remote relative paths")
def _():
    t = need_agent()
    d = fresh("files")
    write(os.path.join(d, "f1"), b"one\n")
    write(os.path.join(d, "f2"), b"two\n")
    os.makedirs(os.path.join(d, "up"))
    ok(cp(os.path.join(d, "f1"), os.path.join(d, "f2"), "%s:%s" % (t, os.path.join(d, "up"))),
       "two files up")
    expect_eq(open(os.path.join(d, "up", "f2"), "rb").read(), b"two\n", "up/f2")
    ok(cp(os.path.join(d, "f1"), "%s:%s" % (t, os.path.join(d, "renamed"))), "to a new name")
    expect_eq(open(os.path.join(d, "renamed"), "rb").read(), b"one\n", "renamed")
    ok(cp(os.path.join(d, "f2"), "%s:%s" % (t, os.path.join(d, "renamed"))), "overwrite")
    expect_eq(open(os.path.join(d, "renamed"), "rb").read(), b"two\n", "overwritten")
    os.makedirs(os.path.join(d, "down"))
    ok(cp("%s:%s" % (t, os.path.join(d, "f1")), "%s:%s" % (t, os.path.join(d, "f2")),
          os.path.join(d, "down")), "two files down")
    expect_eq(sorted(os.listdir(os.path.join(d, "down"))), ["f1", "f2"], "down/")
    # A local name with ':' written as ./a:b stays local.
    write(os.path.join(d, "a:b"), b"colon\n")
    r = run(wicket("cp", "./a:b", "%s:%s" % (t, os.path.join(d, "up"))), cwd=d, timeout=60)
    ok(r, "./a:b upload")
    expect_eq(open(os.path.join(d, "up", "a:b"), "rb").read(), b"colon\n", "up/a:b")


@tap.check("interop: both ways against OpenSSH's sftp-server (wicketd --sftp-server)")
def _():
    if "ossh" not in S:
        raise Skip("%s is not installed" % OPENSSH_SFTP)
    t = S["ossh"].target
    d = fresh("ossh")
    make_tree(os.path.join(d, "src"), big=3 << 20)
    ok(cp("-rq", os.path.join(d, "src"), "%s:%s" % (t, os.path.join(d, "up"))), "upload")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "up"))
    ok(cp("-rq", "%s:%s" % (t, os.path.join(d, "src")), os.path.join(d, "down")), "download")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "down"))


@tap.check("interop: both ways through psusan's sftp server (no symlink support there)")
def _():
    if not shutil.which("psusan"):
        raise Skip("psusan (putty-tools) is not installed")
    d = fresh("psusan")
    make_tree(os.path.join(d, "src"), symlinks=False, big=3 << 20)
    ok(cp("-rq", os.path.join(d, "src"), "x:" + os.path.join(d, "up"), proxy="psusan"), "upload")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "up"))
    ok(cp("-rq", "x:" + os.path.join(d, "src"), os.path.join(d, "down"), proxy="psusan"),
       "download")
    compare_trees(os.path.join(d, "src"), os.path.join(d, "down"))


# ---------------------------------------------------------------- -p


def attrs_of(p):
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), int(st.st_mtime)


@tap.check("-p keeps mode and mtime (files and directories, both ways); without -p: mode & ~umask")
def _():
    t = need_agent()
    d = fresh("preserve")
    src = os.path.join(d, "src")
    os.makedirs(os.path.join(src, "sub"))
    write(os.path.join(src, "f"), b"x" * 1000, 0o640)
    write(os.path.join(src, "sub", "g"), b"y", 0o751)
    write(os.path.join(src, "open"), b"z", 0o666)
    os.chmod(os.path.join(src, "sub"), 0o750)
    for p, when in (("f", 1000000000), ("sub/g", 1100000000), ("sub", 1200000000),
                    ("open", 1300000000)):
        os.utime(os.path.join(src, p), (when, when))
    os.utime(src, (1250000000, 1250000000))
    ok(cp("-rpq", src, "%s:%s" % (t, os.path.join(d, "up"))), "upload -p")
    ok(cp("-rpq", "%s:%s" % (t, src), os.path.join(d, "down")), "download -p")
    for top in ("up", "down"):
        for p in ("f", "sub/g", "sub", "open", ""):
            expect_eq(attrs_of(os.path.join(d, top, p)), attrs_of(os.path.join(src, p)),
                      "(mode, mtime) of %s/%s vs source" % (top, p))
    ok(cp("-q", "%s:%s" % (t, os.path.join(src, "open")), os.path.join(d, "plain")),
       "download without -p")
    mode, mtime = attrs_of(os.path.join(d, "plain"))
    expect_eq(oct(mode), oct(0o644), "mode of a 0666 file downloaded with umask 022")
    expect(mtime != 1300000000, "mtime kept without -p")


# ---------------------------------------------------------------- resume

RESUME_SRC = 3 * 1024 * 1024 + 17


def resume_cases():
    return [0, 1, 1024, 1024 * 1024, RESUME_SRC - 1]


def flipped_prefix(data, k):
    p = bytearray(data[:k])
    if k:
        p[k // 2] ^= 0xff
    return bytes(p)


def check_resume(direction):
    t = need_agent()
    d = fresh("resume-" + direction)
    data = rnd(RESUME_SRC, 7)
    src = os.path.join(d, "source.bin")
    write(src, data)
    bad = []
    for k in resume_cases():
        dst = os.path.join(d, "dst-%d" % k)
        prefix = flipped_prefix(data, k)
        write(dst, prefix)
        if direction == "up":
            r = cp("-q", "--resume", src, "%s:%s" % (t, dst))
        else:
            r = cp("-q", "--resume", "%s:%s" % (t, src), dst)
        if r.rc != 0:
            bad.append("size %d: %s" % (k, r.describe()))
            continue
        got = open(dst, "rb").read()
        if got != prefix + data[k:]:
            how = "re-copied from 0 (prefix not kept)" if got == data else "content wrong"
            bad.append("size %d: %s (got %d bytes)" % (k, how, len(got)))
        left = glob.glob(os.path.join(d, ".*wicket-*"))
        if left:
            bad.append("size %d: left %s" % (k, left))
    expect(not bad, "resume failures:\n" + "\n".join(bad))


@tap.check("--resume upload at prefix sizes 0, 1, 1 KiB, 1 MiB, size-1: prefix kept, rest appended")
def _():
    check_resume("up")


@tap.check("--resume download at prefix sizes 0, 1, 1 KiB, 1 MiB, size-1: prefix kept, rest appended")
def _():
    check_resume("down")


@tap.check("--resume continues from a leftover .NAME.wicket-part temp file (both ways)")
def _():
    t = need_agent()
    d = fresh("resume-part")
    data = rnd(1 << 20, 9)
    src = os.path.join(d, "s.bin")
    write(src, data)
    for direction in ("up", "down"):
        dst = os.path.join(d, "f-" + direction)
        part = os.path.join(d, ".f-%s.wicket-part" % direction)
        prefix = flipped_prefix(data, 4096)
        write(part, prefix)
        if direction == "up":
            r = cp("-q", "--resume", src, "%s:%s" % (t, dst))
        else:
            r = cp("-q", "--resume", "%s:%s" % (t, src), dst)
        ok(r, direction)
        expect_eq(open(dst, "rb").read() == prefix + data[4096:], True,
                  "%s: result is the kept prefix + the rest" % direction)
        expect(not os.path.exists(part), "%s: %s still there" % (direction, part))


# ---------------------------------------------------------------- failures


@tap.check("copying to a nonexistent remote directory: exit 1, message names it")
def _():
    t = need_agent()
    d = fresh("nodir")
    write(os.path.join(d, "f"), b"f")
    missing = os.path.join(d, "no-such-dir")
    r = cp(os.path.join(d, "f"), "%s:%s/f" % (t, missing))
    expect_eq(r.rc, 1, "exit status\n" + r.describe())
    expect(missing.encode() in r.err and b"wicket: cp: " in r.err, "message\n" + r.describe())
    r = cp(os.path.join(d, "f"), "%s:%s/" % (t, missing))
    expect_eq(r.rc, 1, "exit status (trailing slash)\n" + r.describe())
    expect(missing.encode() in r.err, "message (trailing slash)\n" + r.describe())
    expect(not os.path.exists(missing), "created %s" % missing)


@tap.check("one failing source does not stop the others (exit 1); a directory without -r is named")
def _():
    t = need_agent()
    d = fresh("partial")
    write(os.path.join(d, "good"), b"good")
    os.makedirs(os.path.join(d, "adir"))
    os.makedirs(os.path.join(d, "out"))
    r = cp(os.path.join(d, "missing"), os.path.join(d, "adir"), os.path.join(d, "good"),
           "%s:%s" % (t, os.path.join(d, "out")))
    expect_eq(r.rc, 1, "exit status\n" + r.describe())
    expect(b"missing: No such file or directory" in r.err, "missing source named\n" + r.describe())
    expect(b"adir: is a directory" in r.err, "directory named\n" + r.describe())
    expect_eq(os.listdir(os.path.join(d, "out")), ["good"], "what got copied")
    r = cp("%s:%s" % (t, os.path.join(d, "nope")), os.path.join(d, "x"))
    expect_eq(r.rc, 1, "missing remote source\n" + r.describe())
    expect(b"nope" in r.err, "missing remote source named\n" + r.describe())


@tap.check("usage errors exit 255 naming the problem (local-only, remote-to-remote, bad option)")
def _():
    t = need_agent()
    for args, word in ((["a", "b"], b"no remote operand"),
                       (["%s:/a" % t, "%s:/b" % t], b"two remote operands"),
                       (["-z", "a", "%s:/b" % t], b"-z"),
                       (["a"], b"needs a source and a destination"),
                       (["unix/x:/a", "unix/y:/b", "c"], b"same target")):
        r = cp(*args, timeout=30)
        expect_eq(r.rc, 255, "exit status of %s\n%s" % (args, r.describe()))
        expect(word in r.err, "message for %s\n%s" % (args, r.describe()))
    r = cp("/etc/hostname", "unix/%s/none.sock:/tmp/x" % S["tmp"], timeout=30)
    expect_eq(r.rc, 255, "unreachable target\n" + r.describe())


def relay_cmd(t, up, down=0):
    """A --proxy-command running this file's --relay to target @t's socket,
    throttled to @up bytes/s towards the agent and @down back (0: unthrottled)."""
    return "%s %s --relay %s %d%s" % (sys.executable, os.path.abspath(__file__), t[len("unix/"):],
                                      up, " %d" % down if down else "")


def start_bg(argv, d):
    """Popen in its own session, stderr to a file (the relay, a grandchild,
    may hold a pipe open long after wicket is gone); killed at cleanup."""
    errpath = os.path.join(d, "stderr.txt")
    with open(errpath, "wb") as ef:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=ef, start_new_session=True)

    def kill_group():
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    tap.at_cleanup(kill_group)
    p.err = lambda: open(errpath, "rb").read()
    return p


def slow_upload(d, big_name, rate=4 << 20):
    """Start an upload through a throttled relay; returns (Popen, remote dir)."""
    t = need_agent()
    src = os.path.join(d, big_name)
    with open(src, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    rdir = os.path.join(d, "remote")
    os.makedirs(rdir)
    relay = relay_cmd(t, rate)
    p = start_bg(wicket("--share", "no", "--proxy-command", relay, "cp", src, "x:" + rdir), d)

    def temp_seen():
        if p.poll() is not None:
            raise Failure("wicket ended early: %s %r" % (p.returncode, p.err()))
        return glob.glob(os.path.join(rdir, "." + big_name + ".wicket-*"))
    wait_until(temp_seen, timeout=30, what="the temporary upload file")
    time.sleep(0.5)
    return p, rdir


@tap.check("two --resume downloads to one destination: the second fails clearly, the first goes on")
def _():
    t = need_agent()
    d = fresh("resume-twice")
    src = os.path.join(d, "huge")
    with open(src, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    local = os.path.join(d, "local")
    os.makedirs(local)
    dst = os.path.join(local, "huge")
    part = os.path.join(local, ".huge.wicket-part")
    relay = relay_cmd(t, 1 << 30, 4 << 20)
    p = start_bg(wicket("--share", "no", "--proxy-command", relay, "cp", "-q", "--resume", "x:" + src, dst), d)
    wait_until(lambda: os.path.exists(part) and os.path.getsize(part) > 0, timeout=30,
               what="the first copy's .part file")
    r = cp("-q", "--resume", "%s:%s" % (t, src), dst, timeout=60)
    expect_eq(r.rc, 1, "second run's exit status\n" + r.describe())
    expect(b"another wicket cp --resume" in r.err, "second run's message\n" + r.describe())
    expect(p.poll() is None, "the first copy still runs (stderr %r)" % p.err())
    expect(os.path.exists(part) and not os.path.exists(dst),
           "the first copy's .part is still there, no final file yet")
    size = os.path.getsize(part)
    wait_until(lambda: os.path.getsize(part) > size, timeout=30,
               what="the first copy to keep writing")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)


@tap.check("two --resume uploads to one destination: the second fails clearly, the first goes on (lock@wicket)")
def _():
    t = need_agent()
    if S["kind"] != "wicket":
        raise Skip("lock@wicket is wicket-sftp-server's; other servers cannot lock")
    d = fresh("resume-twice-up")
    src = os.path.join(d, "src")
    data = rnd(48 * 1024 * 1024, 11)
    write(src, data)
    rdir = os.path.join(d, "remote")
    os.makedirs(rdir)
    dst = os.path.join(rdir, "dst")
    part = os.path.join(rdir, ".dst.wicket-part")
    # The first copy's upload direction is throttled to 2 MiB/s: it runs for
    # the whole test.
    relay = relay_cmd(t, 2 << 20)
    p = start_bg(wicket("--share", "no", "--proxy-command", relay, "cp", "-q", "--resume", src, "x:" + dst), d)
    wait_until(lambda: os.path.exists(part) and os.path.getsize(part) > 0, timeout=30,
               what="the first copy's .part file")
    r = cp("-q", "--resume", src, "%s:%s" % (t, dst), timeout=60)
    expect_eq(r.rc, 1, "second run's exit status\n" + r.describe())
    expect(b"another wicket cp --resume" in r.err, "second run's message\n" + r.describe())
    expect(p.poll() is None, "the first copy still runs (stderr %r)" % p.err())
    size = os.path.getsize(part)
    wait_until(lambda: os.path.getsize(part) > size, timeout=30,
               what="the first copy to keep writing")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    expect(not os.path.exists(dst), "no final file from either run")
    # Neither truncated nor overwritten by the second run.
    with open(part, "rb") as f:
        got = f.read()
    expect(len(got) > 0 and got == data[:len(got)],
           "the .part file is a clean prefix of the source (%d bytes)" % len(got))
    # A later run takes over the lock and finishes.
    r = cp("-q", "--resume", src, "%s:%s" % (t, dst), timeout=120)
    expect_eq(r.rc, 0, "third run\n" + r.describe())
    expect(os.path.exists(dst) and open(dst, "rb").read() == data, "third run's result")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


@tap.check("download: DATA payloads spliced socket -> pipe -> file, byte-exact (odd size, sha256)")
def _():
    t = need_agent()
    if S["kind"] != "wicket":
        raise Skip("needs wicket-sftp-server's 255 KiB DATA replies")
    d = fresh("splice-down")
    src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
    size = 40 * 1024 * 1024 + 12345  # no multiple of the 255 KiB chunk
    write(src, rnd(size, 7))
    ok(cp("-q", "%s:%s" % (t, src), dst), "download")
    expect_eq(sha256(dst), sha256(src), "sha256 of the download")
    if not shutil.which("strace"):
        raise Skip("strace is not installed: spliced path not checked")
    log = os.path.join(d, "strace")
    os.unlink(dst)
    r = run(["strace", "-f", "-qq", "-e", "trace=splice", "-o", log] +
            wicket("cp", "-q", "%s:%s" % (t, src), dst), timeout=180, env=strace_env())
    ok(r, "download under strace")
    expect_eq(sha256(dst), sha256(src), "sha256 of the download under strace")
    # splice(PIPE, NULL, FILE, [OFFSET], ...) = N: payload bytes into the file.
    into_file = 0
    for line in open(log):
        m = re.search(r"splice\(\d+, NULL, \d+, \[\d+\], \d+, [A-Z_|]+\) = (\d+)", line)
        if m:
            into_file += int(m.group(1))
    expect(into_file > size // 2, "spliced into the file: %d of %d bytes" % (into_file, size))


def traced_agent(d, extra=()):
    """wicketd (monitor, workers, sftp servers) under strace -e splice, a log
    per process (one shared log splits calls that overlap into unfinished and
    resumed lines); returns (target, log prefix: LOG.PID are the files)."""
    if not shutil.which("strace"):
        raise Skip("strace is not installed: spliced path not checked")
    sock, log = os.path.join(d, "traced.sock"), os.path.join(d, "strace")
    logf = open(os.path.join(d, "wicketd.log"), "ab")
    tap.at_cleanup(logf.close)
    spawn(["strace", "-f", "-ff", "-qq", "-e", "trace=splice", "-o", log, WICKETD, "--listen",
           "unix/" + sock] + list(extra), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
          env=strace_env())
    wait_until(lambda: os.path.exists(sock) and socket_accepts(sock), timeout=20,
               what="traced wicketd")
    return "unix/" + sock, log


@tap.check("upload: payloads spliced socket -> child stdin -> file (worker and sftp server), byte-exact (odd size, sha256)")
def _():
    need_agent()
    if S["kind"] != "wicket":
        raise Skip("needs wicket-sftp-server")
    d = fresh("splice-up")
    t, log = traced_agent(d)
    src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
    size = 40 * 1024 * 1024 + 12345  # no multiple of the 255 KiB chunk
    write(src, rnd(size, 8))
    ok(cp("-q", src, "%s:%s" % (t, dst)), "upload under strace")
    expect_eq(sha256(dst), sha256(src), "sha256 of the upload")
    # sftp server: splice(PIPE, NULL, FILE, [OFFSET], ...) into the file;
    # worker: splice(SOCKET, NULL, PIPE, NULL, ...) (replies the other way
    # are a few bytes each).
    calls = []
    for path in glob.glob(log + ".*"):
        pid = path.rsplit(".", 1)[1]
        for line in open(path):
            m = re.match(r"splice\(\d+, NULL, \d+, (NULL|\[\d+\]), \d+, [A-Z_|]+\) = (\d+)",
                         line)
            if m:
                calls.append((pid, m.group(1) != "NULL", int(m.group(2))))
    server = {pid for pid, off, _ in calls if off}
    into_file = sum(n for _, off, n in calls if off)
    stream = sum(n for pid, off, n in calls if pid not in server)
    # A full child stdin makes the worker wait for room instead of queueing
    # a copy; only what comes before the child runs (at most a window) and
    # splices racing the payload's arrival are copied.
    expect(stream > size // 2, "spliced from the stream into the pipe: %d of %d" % (stream, size))
    expect(into_file > size // 2, "spliced from stdin into the file: %d of %d" % (into_file, size))


@tap.check("upload to a --sftp-read-only agent: refused with a clear error, no file")
def _():
    need_agent()
    d = fresh("ro-up")
    rdir = os.path.join(d, "remote")
    os.makedirs(rdir)
    sock = os.path.join(d, "ro.sock")
    a = Agent(d, name="ro.sock", extra=["--sftp-read-only"])
    write(os.path.join(d, "src"), rnd(3 << 20, 9))
    r = cp(os.path.join(d, "src"), "%s:%s" % (a.target, os.path.join(rdir, "dst")))
    expect_eq(r.rc, 1, "exit status\n" + r.describe())
    expect(b"read-only session" in r.err, "the server's reason\n" + r.describe())
    expect_eq(os.listdir(rdir), [], "files left in the remote directory")
    del sock


def change_mid_download(name, change):
    """Download a 16 MiB file through a relay paced at 8 MiB/s, calling
    change(src) half a second in; returns (result, src, dst)."""
    t = need_agent()
    d = fresh(name)
    src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
    write(src, rnd(16 << 20, 11))
    relay = relay_cmd(t, 1 << 30, 8 << 20)
    th = threading.Timer(0.5, change, (src,))
    th.start()
    r = cp("-q", "x:" + src, dst, proxy=relay, timeout=120)
    th.join()
    return r, src, dst


@tap.check("download through a pipe transport of a file that grows mid-copy: a prefix of it, byte-exact")
def _():
    def grow(src):
        with open(src, "ab") as f:
            for i in range(30):
                f.write(rnd(100003, 100 + i))
                f.flush()
                time.sleep(0.01)
    r, src, dst = change_mid_download("grow", grow)
    ok(r, "download")
    got = open(dst, "rb").read()
    final = open(src, "rb").read()
    expect(len(got) >= 16 << 20, "at least the original size: %d" % len(got))
    expect(got == final[:len(got)], "a byte-exact prefix of the grown file (%d of %d bytes)"
           % (len(got), len(final)))


@tap.check("download through a pipe transport of a file that shrinks mid-copy: what remains is exact")
def _():
    keep = (1 << 20) + 777

    def shrink(src):
        os.truncate(src, keep)
    r, src, dst = change_mid_download("shrink", shrink)
    ok(r, "download")
    got = open(dst, "rb").read()
    final = open(src, "rb").read()
    expect_eq(len(final), keep, "source size after the shrink")
    expect(len(got) >= keep and got[:keep] == final,
           "the remaining bytes arrived exactly (%d bytes copied)" % len(got))


@tap.check("SIGINT mid-download: wicket dies of the signal, no temp file, no final file")
def _():
    t = need_agent()
    d = fresh("sigint-down")
    src = os.path.join(d, "huge")
    with open(src, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    local = os.path.join(d, "local")
    os.makedirs(local)
    relay = relay_cmd(t, 1 << 30, 4 << 20)
    p = start_bg(wicket("--share", "no", "--proxy-command", relay, "cp", "x:" + src, local), d)
    wait_until(lambda: glob.glob(os.path.join(local, ".huge.wicket-*")), timeout=30,
               what="the temporary download file")
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGINT)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise Failure("wicket did not exit within 15 s of SIGINT")
    expect_eq(p.returncode, -signal.SIGINT, "wait status (stderr %r)" % p.err())
    expect_eq(os.listdir(local), [], "local directory after SIGINT")


@tap.check("kill -9 of wicket mid-upload leaves no file under the final name")
def _():
    d = fresh("kill9")
    p, rdir = slow_upload(d, "huge")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    time.sleep(0.5)
    expect(not os.path.exists(os.path.join(rdir, "huge")), "final name exists after kill -9")
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@tap.check("SIGTERM mid-upload: wicket dies of the signal and removes its temp file")
def _():
    d = fresh("sigterm")
    p, rdir = slow_upload(d, "huge")
    os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise Failure("wicket did not exit within 15 s of SIGTERM")
    expect_eq(p.returncode, -signal.SIGTERM, "wait status (stderr %r)" % p.err())
    time.sleep(0.5)
    expect_eq(os.listdir(rdir), [], "remote directory after SIGTERM")


def mount_small_tmpfs(path):
    os.makedirs(path)
    r = run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path], timeout=30)
    if r.rc != 0:
        raise Skip("cannot mount a tmpfs here: %s" % r.err.decode(errors="replace").strip())
    tap.at_cleanup(lambda: run(["umount", "-l", path], timeout=30))


@tap.check("ENOSPC uploading into a 1 MiB tmpfs: exit 1, 'No space left on device', no final file")
def _():
    t = need_agent()
    d = fresh("enospc")
    small = os.path.join(d, "small")
    mount_small_tmpfs(small)
    write(os.path.join(d, "three-mb"), rnd(3 << 20, 3))
    r = cp(os.path.join(d, "three-mb"), "%s:%s" % (t, small))
    expect_eq(r.rc, 1, "exit status\n" + r.describe())
    expect_eq(os.listdir(small), [], "files left in the full tmpfs")
    if S["kind"] == "openssh":
        raise Skip("OpenSSH's sftp-server reports only 'Failure' (checked exit and no file)")
    expect(b"No space left on device" in r.err, "server's message\n" + r.describe())


@tap.check("ENOSPC downloading into a 1 MiB tmpfs: exit 1, 'No space left on device', no file")
def _():
    t = need_agent()
    d = fresh("enospc-down")
    small = os.path.join(d, "small")
    mount_small_tmpfs(small)
    write(os.path.join(d, "three-mb"), rnd(3 << 20, 4))
    r = cp("%s:%s" % (t, os.path.join(d, "three-mb")), small)
    expect_eq(r.rc, 1, "exit status\n" + r.describe())
    expect(b"No space left on device" in r.err, "message\n" + r.describe())
    expect_eq(os.listdir(small), [], "files left in the full tmpfs")


# ---------------------------------------------------------------- progress


@tap.check("progress bar on a tty (name, 100%, rate); silent without a tty and with -q")
def _():
    t = need_agent()
    if not shutil.which("script"):
        raise Skip("script (util-linux) is not installed")
    d = fresh("progress")
    write(os.path.join(d, "payload.bin"), rnd(8 << 20, 5))
    cmd = " ".join("'%s'" % a for a in wicket("cp", os.path.join(d, "payload.bin"),
                                               "%s:%s/copy" % (t, d)))
    r = run(["script", "-qec", cmd, "/dev/null"], timeout=60)
    ok(r, "cp on a tty")
    expect(b"payload.bin" in r.out and b"100%" in r.out and b"/s" in r.out,
           "progress line on the tty\n" + r.describe())
    r = run(["script", "-qec", cmd.replace("' 'cp'", "' 'cp' '-q'"), "/dev/null"], timeout=60)
    ok(r, "cp -q on a tty")
    expect(b"100%" not in r.out, "-q still drew progress\n" + r.describe())
    r = cp(os.path.join(d, "payload.bin"), "%s:%s/copy2" % (t, d))
    ok(r, "cp without a tty")
    expect_eq(r.err, b"", "stderr without a tty")


# ---------------------------------------------------------------- hostile server


def evil(mode, *args, outside="/nonexistent-wicket-outside"):
    cmd = "%s %s --mode %s --outside %s" % (sys.executable, EVIL, mode, outside)
    return cp(*args, timeout=60, proxy=cmd)


@tap.check("malicious server: READDIR names ../escape, /etc/x, newline... refused, nothing outside DEST")
def _():
    d = fresh("evil")
    parent = os.path.join(d, "parent")
    dest = os.path.join(parent, "DEST")
    outside = os.path.join(d, "outside")
    os.makedirs(dest)
    os.makedirs(outside)
    etc_x = os.path.exists("/etc/x") and os.lstat("/etc/x")
    r = evil("names", "-r", "x:/dir", dest, outside=outside)
    expect(r.rc not in (0, None) and r.rc > 0, "exit status\n" + r.describe())
    expect(b"refusing suspicious name from remote" in r.err, "message\n" + r.describe())
    for n in (b"../escape", b"/etc/x", b"new\\x0aline", b"nul\\x00byte"):
        expect(n in r.err, "%r not named in the message\n%s" % (n, r.describe()))
    expect(b"\x1b" not in r.err and b"new\nline" not in r.err,
           "raw control bytes reached stderr\n" + r.describe())
    expect_eq(sorted(os.listdir(parent)), ["DEST"], "parent of DEST")
    expect_eq(os.listdir(outside), [], "directory the evil symlink points to")
    expect_eq(os.path.exists("/etc/x") and os.lstat("/etc/x"), etc_x, "/etc/x")
    found = []
    for dirpath, dirs, files in os.walk(dest):
        found += [os.path.relpath(os.path.join(dirpath, n), dest) for n in dirs + files]
    expect("dir/good" in found, "the good file was not copied: %s" % found)
    for f in found:
        expect("escape" not in f and "\n" not in f and "red" not in f, "wrote %r" % f)
    expect_eq(open(os.path.join(dest, "dir", "good"), "rb").read(), b"good file content\n",
              "content of the good file")


@tap.check("malicious server: DATA longer than requested -> protocol error (255), no crash, no file")
def _():
    d = fresh("evil-data")
    # /file: the reply fits one channel packet; /bigfile: it spans many.
    for src in ("/file", "/bigfile"):
        r = evil("bigdata", "x:" + src, os.path.join(d, "f"))
        expect_eq(r.rc, 255, "%s: exit status\n%s" % (src, r.describe()))
        expect(b"bytes of DATA for a READ of" in r.err, "%s: message\n%s" % (src, r.describe()))
        expect_eq(os.listdir(d), [], "files left")
    # The same server without lies delivers /bigfile intact.
    ok(evil("names", "x:/bigfile", os.path.join(d, "f")), "honest /bigfile")
    expect_eq(open(os.path.join(d, "f"), "rb").read(), b"B" * (1 << 20), "content of /bigfile")


@tap.check("malicious server: absurd NAME count, 256 MiB packet, unknown request id -> 255")
def _():
    d = fresh("evil-misc")
    for mode, word in (("hugecount", b"entries"), ("hugepkt", b"packet of 268435456"),
                       ("badid", b"not pending")):
        r = evil(mode, "-r", "x:/dir", d)
        expect_eq(r.rc, 255, "%s: exit status\n%s" % (mode, r.describe()))
        expect(word in r.err, "%s: message\n%s" % (mode, r.describe()))


@tap.check("malicious server: random garbage among honest replies (25 seeds) -> clean exit, never a crash")
def _():
    d = fresh("evil-garbage")
    outside = os.path.join(d, "outside")
    dest = os.path.join(d, "dest")
    os.makedirs(outside)
    os.makedirs(dest)
    bad = []
    for seed in range(1, 26):
        for src in ("x:/dir", "x:/bigfile"):
            cmd = "%s %s --mode garbage --seed %d --outside %s" % (sys.executable, EVIL, seed,
                                                                    outside)
            r = cp("-rq", src, dest, timeout=60, proxy=cmd)
            if r.rc not in (0, 1, 255) or (r.rc and b"wicket: cp: " not in r.err):
                bad.append("seed %d %s: %s" % (seed, src, r.describe()))
    expect(not bad, "\n".join(bad))
    expect_eq(os.listdir(outside), [], "directory the evil symlink points to")
    expect_eq(sorted(os.listdir(d)), ["dest", "outside"], "next to DEST")


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--relay":
        relay_main(sys.argv[2], *map(int, sys.argv[3:]))
        sys.exit(0)
    tap.main(setup)
