#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Privilege separation of the SSH wrapper (host-tool/ssh/privsep.h): the
process that talks to the client runs under seccomp with NO_NEW_PRIVS and
tight rlimits, cannot open files, and cannot talk its monitor into
anything: test-only probes (WICKET_TESTING=1 WICKET_TEST_SANDBOX_PROBE=...)
make it call openat, ask for the guest before authentication, send a
request outside the table, or ignore the monitor's refusal of a wrong key."""

import os
import pwd
import re
import shutil
import subprocess
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proclib  # noqa: E402
from taplib import (Agent, Failure, Skip, expect, expect_eq, run, spawn, tap,  # noqa: E402
                    wait_until, wicket)

NET = "wicket-ssh-net"  # comm of the network process
S = {}


def setup():
    need = [t for t in ("ssh", "ssh-keygen") if not shutil.which(t)]
    if need:
        raise Skip("not installed: " + " ".join(need))
    out = run(wicket("serve", "--print-syscalls")).out
    if b"network process" not in out:
        raise Skip("wicket was built without the SSH wrapper (libcrypto)")
    S["seccomp"] = b"not enforced" not in out
    S["asan"] = proclib.sanitized(wicket()[0])
    tmp = S["tmp"] = tap.tmpdir("wicket-sshsb-")
    S["agent"] = Agent(tmp)
    S["env"] = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
    for k in ("ok", "bad", "host"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f",
             os.path.join(tmp, "id_" + k)])
    ak = os.path.join(tmp, "authorized_keys")
    with open(ak, "w") as f:
        f.write(open(os.path.join(tmp, "id_ok.pub")).read())
    os.chmod(ak, 0o600)


def ssh_opts(key):
    return ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error",
            "-o", "IdentitiesOnly=yes", "-i", os.path.join(S["tmp"], "id_" + key)]


class Serve:
    """wicket serve with its stderr on a pipe (so RLIMIT_FSIZE 0 applies)."""

    def __init__(self, env=None):
        tmp = S["tmp"]
        self.buf = b""
        self.lock = threading.Lock()
        self.p = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key",
                              tmp + "/id_host", "--authorized-keys", tmp + "/authorized_keys",
                              S["agent"].target),
                       stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=dict(S["env"], **(env or {})))
        threading.Thread(target=self._read, daemon=True).start()

        def port():
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", self.text())
            if self.p.poll() is not None:
                raise Failure("wicket serve exited:\n%r" % self.text())
            return int(m.group(1)) if m else None
        self.port = wait_until(port, what="wicket serve to listen")

    def _read(self):
        for chunk in iter(lambda: self.p.stderr.read1(4096), b""):
            with self.lock:
                self.buf += chunk

    def text(self):
        with self.lock:
            return self.buf

    def ssh(self, key, *cmd):
        return ["ssh"] + ssh_opts(key) + ["-p", str(self.port), "root@127.0.0.1"] + list(cmd)


def proxy_cmd(log, env="", keys=True):
    """A ProxyCommand running `wicket proxy --ssh` that appends its stderr and
    exit status to log."""
    W = wicket()[0]
    ak = "--authorized-keys %s/authorized_keys " % S["tmp"] if keys else ""
    return ("sh -c '%s %s proxy --ssh --host-key %s/id_host %s%s 2>>%s; echo exit=$? >>%s'"
            % (env, W, S["tmp"], ak, S["agent"].target, log, log))


def proxy_ssh(key, log, env="", keys=True, *cmd):
    return (["ssh"] + ssh_opts(key) + ["-o", "ProxyCommand=" + proxy_cmd(log, env, keys), "g"]
            + list(cmd))


def read_log(path):
    try:
        return open(path, "rb").read()
    except OSError:
        return b""


def net_below(root):
    """The one network process below root."""
    def find():
        n = [p for p in proclib.descendants(root) if proclib.comm(p) == NET]
        return n[0] if len(n) == 1 else None
    return wait_until(find, timeout=15, what="the network process")


def check_confined(net, no_files, log=None):
    st = proclib.status(net)
    if S["seccomp"]:
        expect_eq(st.get("Seccomp"), "2", "Seccomp mode of the network process %d" % net)
    else:
        print("# built without libseccomp: no filter to check (Seccomp %s)" % st.get("Seccomp"))
    expect_eq(st.get("NoNewPrivs"), "1", "NoNewPrivs of the network process")
    expect_eq(int(st.get("CapEff", "1"), 16), 0, "capabilities: CapEff %s" % st.get("CapEff"))
    if os.geteuid() == 0:
        # Run as root, it leaves uid 0 for nobody (real, effective, saved, fs).
        try:
            nobody = pwd.getpwnam("nobody")
            want = (nobody.pw_uid, nobody.pw_gid)
        except KeyError:
            want = (65534, 65534)
        expect_eq([int(x) for x in st["Uid"].split()], [want[0]] * 4, "uids of the network process")
        expect_eq([int(x) for x in st["Gid"].split()], [want[1]] * 4, "gids of the network process")
        expect_eq(st.get("Groups", "").split(), [], "supplementary groups of the network process")
    else:
        print("# not root: the network process keeps our uid %d" % os.geteuid())
    lim = proclib.limits(net)
    expect_eq(lim.get("Max open files"), ("16", "16"), "RLIMIT_NOFILE")
    expect_eq(lim.get("Max core file size"), ("0", "0"), "RLIMIT_CORE")
    if not S["asan"]:  # LeakSanitizer clones at exit
        expect_eq(lim.get("Max processes"), ("0", "0"), "RLIMIT_NPROC")
    if no_files:
        expect_eq(lim.get("Max file size"), ("0", "0"), "RLIMIT_FSIZE")
    expect_eq(os.readlink("/proc/%d/cwd" % net), "/", "working directory")
    for fd, t in proclib.fd_targets(net).items():
        ok = (t.startswith("socket:") or t.startswith("pipe:") or t == "/dev/null"
              or (fd == 2 and t == log))
        expect(ok, "network process fd %d is %s" % (fd, t))
    mon = int(st["PPid"])
    expect_eq(proclib.status(mon).get("Seccomp"), "0", "Seccomp mode of the monitor")
    # A fresh image, not a fork of the monitor: its own command line and,
    # with ASLR, its own layout (a fork would map wicket where the monitor does).
    with open("/proc/%d/cmdline" % net, "rb") as f:
        argv = f.read().split(b"\0")
    expect_eq(argv[:3], [b"wicket-ssh-net", b"--ssh-net-child", str(mon).encode()],
              "the network process's command line")
    try:
        with open("/proc/sys/kernel/randomize_va_space") as f:
            aslr = f.read().strip() != "0"
        bases = [proclib.exe_base(p) for p in (net, mon)]
    except OSError as e:
        print("# layouts not compared: %s" % e)
    else:
        if aslr:
            expect(bases[0] != bases[1], "wicket mapped at %#x in both: not re-executed" % bases[0])
        else:
            print("# ASLR is off here: layouts not compared")
    return mon


def hold_session(argv, env=None):
    """Start ssh running a command that stays until its stdin closes."""
    p = subprocess.Popen(argv + ["echo up; cat >/dev/null"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or S["env"],
                         start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and p.kill())
    line = p.stdout.readline()
    if line != b"up\n":
        p.kill()
        raise Failure("the session did not start: %r %r" % (line, p.stderr.read()[-500:]))
    return p


def end_session(p):
    p.stdin.close()
    p.wait(timeout=30)
    expect_eq(p.returncode, 0, "ssh exit status after the session")


# ---------------------------------------------------------------- the profile


@tap.check("--print-syscalls: the network process's allowlist has no open, exec or socket")
def _():
    r = run(wicket("serve", "--print-syscalls"))
    m = re.search(rb"^wicket ssh network process: (\d+) syscalls", r.out, re.M)
    expect(r.rc == 0 and m, r.describe())
    n = int(m.group(1))
    print("# wicket ssh network process: %d syscalls" % n)
    expect(n <= 30, "the allowlist grew to %d syscalls" % n)
    names = set(ln.split()[0] for ln in r.out.decode().splitlines()[1:] if ln.strip())
    for bad in ("open", "openat", "openat2", "execve", "execveat", "socket", "connect",
                "fork", "vfork", "clone", "clone3", "kill", "ptrace", "chdir", "unlink",
                "rt_sigaction"):
        expect(bad not in names, "the profile allows %s" % bad)


# ---------------------------------------------------------------- confinement


@tap.check("serve: while ssh is connected the network process is confined (Seccomp 2, uid nobody as root, "
           "NoNewPrivs 1, rlimits, cwd /, no files); the monitor is not")
def _():
    s = S.setdefault("serve", Serve())
    p = hold_session(s.ssh("ok"))
    net = net_below(s.p.pid)
    mon = check_confined(net, no_files=True)
    expect_eq(int(proclib.status(mon)["PPid"]), s.p.pid, "the monitor's parent is serve")
    end_session(p)


@tap.check("proxy --ssh (no keys: 'none'): the network process is confined the same way")
def _():
    log = os.path.join(S["tmp"], "proxy-confined.log")
    p = hold_session(proxy_ssh("ok", log, keys=False))
    net = net_below(p.pid)
    check_confined(net, no_files=False, log=log)  # its stderr is a log file here
    end_session(p)
    expect(b"ssh:" not in read_log(log), "proxy log: %r" % read_log(log))


# ---------------------------------------------------------------- probes


@tap.check("openat in the network process: SIGSYS kills it, the monitor says so and fails "
           "(proxy --ssh and serve)")
def _():
    if not S["seccomp"]:
        raise Skip("wicket was built without libseccomp: there is no filter to kill it")
    probe = "WICKET_TESTING=1 WICKET_TEST_SANDBOX_PROBE=openat"
    log = os.path.join(S["tmp"], "proxy-openat.log")
    r = run(proxy_ssh("ok", log, "env " + probe, True, "echo in"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (255, b""), "ssh through the probed proxy\n" + r.describe())
    wait_until(lambda: b"exit=" in read_log(log), what="the proxy to exit")
    text = read_log(log)
    expect(b"calls openat" in text, "the probe did not run: %r" % text)
    expect(b"killed by SIGSYS" in text and b"seccomp" in text, "monitor log: %r" % text)
    expect(b"no seccomp filter in place" not in text, "openat returned: %r" % text)
    expect(re.search(rb"exit=(\d+)", text).group(1) != b"0", "proxy exit: %r" % text)

    s = Serve(env={"WICKET_TESTING": "1", "WICKET_TEST_SANDBOX_PROBE": "openat"})
    r = run(s.ssh("ok", "echo in"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (255, b""), "ssh to the probed serve\n" + r.describe())
    wait_until(lambda: b"killed by SIGSYS" in s.text(), what="serve to log SIGSYS")
    expect(s.p.poll() is None, "serve itself died")


@tap.check("a network process asking for the guest before authentication is killed; "
           "the monitor exits non-zero")
def _():
    log = os.path.join(S["tmp"], "proxy-early.log")
    env = "env WICKET_TESTING=1 WICKET_TEST_SANDBOX_PROBE=guest-early"
    r = run(proxy_ssh("ok", log, env, True, "echo in"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (255, b""), "ssh through the probed proxy\n" + r.describe())
    wait_until(lambda: b"exit=" in read_log(log), what="the proxy to exit")
    text = read_log(log)
    expect(b"guest was asked for before authentication" in text and
           b"ending the network process" in text, "monitor log: %r" % text)
    expect(b"exit=255" in text, "proxy exit: %r" % text)


@tap.check("a request outside the monitor's table ends the network process")
def _():
    log = os.path.join(S["tmp"], "proxy-bad.log")
    env = "env WICKET_TESTING=1 WICKET_TEST_SANDBOX_PROBE=bad-request"
    r = run(proxy_ssh("ok", log, env, False, "echo in"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (255, b""), "ssh through the probed proxy\n" + r.describe())
    wait_until(lambda: b"exit=" in read_log(log), what="the proxy to exit")
    text = read_log(log)
    expect(b"request type 99 is not in the table" in text, "monitor log: %r" % text)
    expect(b"exit=255" in text, "proxy exit: %r" % text)


@tap.check("a network process that ignores the refusal of a wrong key gets no guest "
           "(serve); the right key still works under the same probe")
def _():
    s = Serve(env={"WICKET_TESTING": "1", "WICKET_TEST_SANDBOX_PROBE": "claim-auth"})
    r = run(s.ssh("bad", "echo pwned"), env=S["env"], timeout=60)
    expect(b"pwned" not in r.out, "the wrong key ran a command\n" + r.describe())
    expect_eq(r.rc, 255, "ssh with the wrong key\n" + r.describe())
    wait_until(lambda: b"guest was asked for before authentication" in s.text(),
               what="the monitor to refuse the guest")
    expect(b"ignores the monitor's refusal" in s.text(), "the probe did not run: %r"
           % s.text()[-800:])
    expect(b"accepted publickey" not in s.text(), "serve logged a login: %r" % s.text()[-800:])
    r = run(s.ssh("ok", "echo fine"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (0, b"fine\n"), "the right key\n" + r.describe())
    expect(s.p.poll() is None, "serve itself died")


@tap.check("the probes need WICKET_TESTING=1 as well")
def _():
    log = os.path.join(S["tmp"], "proxy-noprobe.log")
    env = "env WICKET_TEST_SANDBOX_PROBE=openat"
    r = run(proxy_ssh("ok", log, env, True, "echo in"), env=S["env"], timeout=60)
    expect_eq((r.rc, r.out), (0, b"in\n"), "ssh\n" + r.describe())


if __name__ == "__main__":
    tap.main(setup)
