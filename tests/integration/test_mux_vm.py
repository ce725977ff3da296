#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The host-side mux (host-tool/mux/) against real guests (issue 10).

A QEMU guest of tests/vm/ (TCG when KVM is not usable) with wicketd on a
virtio-serial port (vm.target) and on its second UART (vm.serial_target),
and a QEMU human monitor on WORKDIR/monitor.sock for system_reset; then a
TCG domain of a test-owned libvirtd (as in test_libvirt.py) with the
org.wicket.agent.0 channel.  Every command for one target shares one
stream through its mux: many sessions at once on one virtio-serial port,
on one serial line and on one libvirt channel, none waiting for or
aborting another; PuTTY tools on the mux socket; clients and the mux killed
with SIGKILL; the guest reset under an open mux.  At the end no QEMU,
libvirtd, mux, libvirt helper or other helper of this run is left."""

import hashlib
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
from taplib import (MUX_RUNTIME, tcp_server, WICKET, Failure, Skip, expect, expect_eq,  # noqa: E402
                    mux_pids, read_until, run, show, spawn, tap, wait_until, wicket)
import vmlib  # noqa: E402

S = {}  # "why" (no VM here), "vm", "tmp", "mon", "tmux"...; "lv_*" for libvirt


def say(msg):
    sys.stdout.write("# %s\n" % msg)
    sys.stdout.flush()


def need_vm():
    if "why" in S:
        raise Skip(S["why"])
    vm = S.get("vm")
    if vm is None:
        raise Failure("no guest (its boot failed: see check 1)")
    if not vm.alive():
        raise Failure("QEMU is not running any more (exit %s); console:\n%s"
                      % (vm.proc.returncode, vm.console(2000)))
    return vm


def wx(target, *cmd, timeout=60, input=None, opts=()):
    """wicket [opts] exec TARGET -- CMD..."""
    return run(wicket(*opts, "exec", target, "--", *cmd), timeout=timeout, input=input)


def ok(r, what, out=None):
    if r.rc != 0 or (out is not None and r.out != out):
        raise Failure("%s: exit %s%s\n%s" % (what, r.rc, "" if out is None else
                                             ", want stdout %s" % show(out), r.describe()))


def popen(argv, stdin=subprocess.DEVNULL, **kw):
    """A client in the background, killed (its group) at cleanup."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, **kw)

    def stop():
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                f.close()
    tap.at_cleanup(stop)
    return p


def ready(p, token, timeout=60):
    """Read @p's stdout until @token (kept: finish() returns all of stdout)."""
    p.pre = getattr(p, "pre", b"") + read_until(p.stdout, token, timeout=timeout)


def finish(p, timeout, input=None):
    """(status, stdout, stderr, seconds) of a popen() client."""
    t0 = time.monotonic()
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise Failure("%s still runs after %s s (killed); stdout %s stderr %s"
                      % (show(" ".join(p.args)), timeout, show(getattr(p, "pre", b"") + out),
                         show(err)))
    return p.returncode, getattr(p, "pre", b"") + out, err, time.monotonic() - t0


def stop_group(p):
    """SIGTERM to @p's process group, and wait for @p."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def finish_all(procs, timeout):
    """finish() of each, waited for at once: [(status, stdout, stderr, seconds
    from now to its end)]."""
    res = [None] * len(procs)

    def one(i):
        try:
            res[i] = finish(procs[i], timeout)
        except Failure as e:
            res[i] = e
    th = [threading.Thread(target=one, args=(i,)) for i in range(len(procs))]
    for x in th:
        x.start()
    for x in th:
        x.join()
    for r in res:
        if isinstance(r, Failure):
            raise r
    return res


# ---------------------------------------------------------------- the mux


def muxes_for(target):
    """Pids of this run's mux processes serving @target."""
    out = []
    for pid in mux_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[2] == target.encode():
            out.append(pid)
    return out


def mux_status(target, opts=()):
    """`wicket mux status TARGET`: (exit status, text)."""
    r = run(wicket(*opts, "mux", "status", target), timeout=30)
    return r.rc, r.out.decode("utf-8", "replace")


def mux_field(text, name):
    m = re.search(r"^%s: (\S+)" % re.escape(name), text, re.M)
    return m.group(1) if m else None


def mux_pid(target, opts=()):
    rc, text = mux_status(target, opts)
    return int(mux_field(text, "pid")) if rc == 0 else None


def channels(target, opts=()):
    rc, text = mux_status(target, opts)
    return int(mux_field(text, "channels")) if rc == 0 else -1


def wait_channels(target, n, timeout=60, opts=()):
    """Until the target's mux has at least @n channels open."""
    last = [""]

    def enough():
        rc, last[0] = mux_status(target, opts)
        return rc == 0 and int(mux_field(last[0], "channels")) >= n
    try:
        wait_until(enough, timeout=timeout, interval=0.3, what="%d channels on the mux" % n)
    except Failure as e:
        raise Failure("%s\nstatus:\n%s" % (e, last[0]))


def mux_stop(target, opts=()):
    """No mux for @target afterwards (stopped if one ran)."""
    run(wicket(*opts, "mux", "stop", target), timeout=30)
    wait_until(lambda: mux_status(target, opts)[0] == 1, timeout=15, what="the mux to stop")


def mux_log(target, limit=2500):
    """The log of the newest mux that served @target (NAME.log next to the socket)."""
    best = None
    for p in glob.glob(os.path.join(MUX_RUNTIME, "wicket", "*.log")):
        try:
            with open(p, "rb") as f:
                t = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if ("serving %s on" % target) in t and (best is None or
                                                os.path.getmtime(p) > best[0]):
            best = (os.path.getmtime(p), p, t)
    if not best:
        return "(no mux log for %s under %s)" % (target, MUX_RUNTIME)
    return "mux log %s (tail):\n%s" % (best[1], best[2][-limit:])


def guest_ps(target):
    r = wx(target, "ps", "-o", "pid,args", timeout=60)
    ok(r, "ps in the guest")
    return r.out.decode("utf-8", "replace")


def guest_runs(target, marker):
    """Lines of the guest's ps naming @marker."""
    return [ln for ln in guest_ps(target).splitlines() if marker in ln]


def virtio_log(vm):
    """The virtio agent's log in the guest, read over the serial line (diagnostics)."""
    try:
        r = wx(vm.serial_target, "sh", "-c", "tail -n 15 /tmp/wicketd-virtio.log; "
               "ps -o pid,args | grep '[w]icketd --listen virtio'", timeout=30)
        return "guest /tmp/wicketd-virtio.log (tail) and its processes:\n" + \
            r.out.decode("utf-8", "replace")
    except Failure as e:
        return "(no virtio agent log over the serial line: %s)" % e


def wait_agent(vm, nready, timeout):
    """Until the guest's @nready-th readiness line is on the console and its
    virtio agent answers a direct connection (--share no, no mux), retried
    like vmlib's probe; returns the number of unanswered probes.

    Not through a mux: the readiness line comes just before init starts the
    agents, and a host that connects as the agent starts may lose its
    greeting (the agent can die of SIGIO then: its port is O_ASYNC before
    SIGIO is blocked); a probe through a mux then leaves a mux that waits
    for the agent's greeting forever, and every later probe attaches to it."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while vm.console().count("wicket-vm: ready") < nready:
        if not vm.alive():
            raise Failure("QEMU exited with %s while booting; console:\n%s"
                          % (vm.proc.returncode, vm.console(3000)))
        if time.monotonic() > deadline:
            raise Failure("no readiness line %d after %d s; console:\n%s"
                          % (nready, timeout, vm.console(3000)))
        time.sleep(0.1)
    misses = 0
    last = None
    while True:
        expect(not muxes_for(vm.target), "a mux runs for %s: %s" % (vm.target,
                                                                    muxes_for(vm.target)))
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("the guest's virtio agent did not answer within %d s\n%s\n%s"
                          % (timeout, last.describe() if last else "", console_tail(vm)))
        try:
            last = run(wicket("--share", "no", "exec", "-n", vm.target, "--", "true"),
                       timeout=min(left, 10))
            if last.rc == 0:
                if misses:
                    say("guest agent exits on the console: %s" % [
                        ln for ln in vm.console().splitlines()
                        if "wicket-vm: agent" in ln or "I/O possible" in ln])
                return misses
        except Failure:
            last = None
        misses += 1
        time.sleep(0.3)


def console_tail(vm, n=1500):
    return "console (last %d chars):\n%s" % (n, vm.console(n))


def marker(n):
    """A unique argument for sleep: 6NN.25 seconds."""
    return "%d.%02d" % (600 + os.getpid() % 300, n)


# ---------------------------------------------------------------- helpers: tmux, monitor


def tmux(*args, timeout=15):
    r = run(["tmux", "-S", S["tmux"], "-f", S["tmuxconf"]] + list(args), timeout=timeout,
            env=S["tmuxenv"])
    if r.rc != 0:
        raise Failure("tmux %s failed\n%s" % (" ".join(args), r.describe()))
    return r


def tmux_setup():
    if "tmux" in S:
        return
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    S["tmux"] = os.path.join(S["tmp"], "tmux.sock")
    S["tmuxconf"] = os.path.join(S["tmp"], "tmux.conf")
    with open(S["tmuxconf"], "w") as f:
        f.write("set -g status off\nset -g history-limit 5000\n")
    env = dict(os.environ)
    env.setdefault("TERM", "xterm")
    env.pop("TMUX", None)
    S["tmuxenv"] = env
    tap.at_cleanup(tmux_kill)


def tmux_kill():
    if "tmux" in S:
        subprocess.run(["tmux", "-S", S["tmux"], "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=15, env=S["tmuxenv"])


def pane(name):
    return tmux("capture-pane", "-p", "-J", "-t", name, "-S", "-").out.decode("utf-8", "replace")


def wait_pane(name, pattern, timeout=30):
    rx = re.compile(pattern, re.M)
    last = [""]

    def found():
        last[0] = pane(name)
        return rx.search(last[0])
    try:
        return wait_until(found, timeout=timeout, interval=0.2, what=pattern)
    except Failure as e:
        raise Failure("%s\npane now:\n%s" % (e, last[0].rstrip()[-1500:]))


def shell_in_tmux(name, target):
    """`wicket shell TARGET` in a tmux session; returns the file its status goes to."""
    tmux_setup()
    base = os.path.join(S["tmp"], "shell-" + name)
    q = shlex.quote
    with open(base + ".sh", "w") as f:
        f.write("#!/bin/sh\n{w} shell {t}\necho $? > {b}.rc.tmp && mv {b}.rc.tmp {b}.rc\n"
                "exec sleep 600\n".format(w=q(WICKET), t=q(target), b=q(base)))
    tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "37", "sh " + q(base + ".sh"))
    return base + ".rc"


def shell_says(name, cmd, want, timeout=60):
    """Type @cmd (which prints @want, a regex line) into the shell and wait for it."""
    tmux("send-keys", "-t", name, cmd, "Enter")
    wait_pane(name, want, timeout=timeout)


def hmp(command, timeout=15):
    """One command on QEMU's human monitor (WORKDIR/monitor.sock); its output."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(S["mon"])
    got = b""
    try:
        while got.count(b"(qemu) ") < 1:
            d = s.recv(4096)
            if not d:
                raise Failure("the monitor closed before its prompt: %s" % show(got))
            got += d
        s.sendall(command.encode() + b"\n")
        while got.count(b"(qemu) ") < 2:
            d = s.recv(4096)
            if not d:
                break
            got += d
    finally:
        s.close()
    return got.decode("utf-8", "replace")


# ---------------------------------------------------------------- helpers: network


def echo_server(tag):
    """A host TCP server answering TAG:LINE to one line, then closing."""
    def serve(c):
        try:
            c.settimeout(10)
            got = b""
            while b"\n" not in got:
                d = c.recv(100)
                if not d:
                    break
                got += d
            c.sendall(tag + b":" + got)
        except OSError:
            pass
        finally:
            c.close()
    return tcp_server(serve)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def host_probe(port, line=b"yo\n"):
    """What a host connection to 127.0.0.1:@port gets back for @line (None: refused)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return None
    try:
        s.sendall(line)
        got = b""
        while True:
            d = s.recv(100)
            if not d:
                break
            got += d
        return got
    except OSError:
        return None
    finally:
        s.close()


def guest_probe(target, port):
    """What a guest connection to 127.0.0.1:@port gets back for 'hi' (None: failed)."""
    r = wx(target, "sh", "-c", "echo hi | nc -w 5 127.0.0.1 %d" % port, timeout=60)
    return r.out.strip() if r.rc == 0 and r.out else None


def ssh_env():
    return dict(os.environ, XDG_STATE_HOME=os.path.join(S["tmp"], "state"))


def ssh_proxy_config(target):
    """An ssh_config whose Host g goes through `wicket proxy --ssh TARGET`."""
    cfg = os.path.join(S["tmp"], "ssh_config")
    with open(cfg, "w") as f:
        f.write("Host g\n\tProxyCommand %s proxy --ssh %s\n\tStrictHostKeyChecking no\n"
                "\tUserKnownHostsFile /dev/null\n\tLogLevel error\n\tBatchMode yes\n"
                "\tExitOnForwardFailure yes\n" % (shlex.quote(WICKET), shlex.quote(target)))
    return cfg


# ---------------------------------------------------------------- boot


@tap.check("guest boots (QEMU with a monitor socket; wicketd on virtio-serial and ttyS1)")
def _():
    why = vmlib.missing()
    if why:
        S["why"] = why
        raise Skip(why)
    if not os.access(WICKET, os.X_OK):
        raise Failure("WICKET is not built: %s" % WICKET)
    S["tmp"] = tap.tmpdir("wicket-muxvm-")
    os.chmod(S["tmp"], 0o755)  # libvirt's QEMU (user libvirt-qemu) reads a kernel from here
    S["mon"] = os.path.join(S["tmp"], "monitor.sock")
    # The monitor for system_reset; -action after vmlib's -no-reboot makes a
    # reset reset the guest instead of ending QEMU.
    extra = ["-monitor", "unix:%s,server=on,wait=off" % S["mon"], "-action", "reboot=reset"]
    t0 = time.monotonic()
    # wait=False: boot()'s own readiness probe goes through a mux (see wait_agent()).
    try:
        vm = vmlib.boot(os.path.join(S["tmp"], "vm"), serial=True, extra_qemu=extra, wait=False)
    except vmlib.VMError as e:
        raise Failure(str(e))
    S["vm"] = vm
    tap.at_cleanup(vm.stop)
    misses = wait_agent(vm, 1, 120 if vm.accel == "tcg" else 60)
    say("booted with %s in %.1f s, with the initramfs; %d direct probe(s) unanswered"
        % (vm.accel.upper(), time.monotonic() - t0, misses))
    st = hmp("info status")
    expect("running" in st, "the monitor on %s says %s" % (S["mon"], show(st)))


# ---------------------------------------------------------------- 1: 16 execs and a shell


@tap.check("virtio: 16 concurrent wicket exec while a wicket shell is open under tmux: all "
           "answer at once, the shell answers before, during and after")
def _():
    vm = need_vm()
    tmux_setup()
    t = vm.target
    rcfile = shell_in_tmux("one", t)
    shell_says("one", "echo BEF''ORE-$((6*7)) $(hostname)", r"^BEFORE-42 wicket-vm\s*$")
    pid0 = mux_pid(t)
    expect(pid0, "no mux runs for %s while its shell is open" % t)
    t0 = time.monotonic()
    procs = [popen(wicket("exec", t, "--", "sh", "-c", "sleep 4; echo n%d $(hostname)" % i))
             for i in range(16)]
    shell_says("one", "echo DUR''ING-$((5*5))", r"^DURING-25\s*$")
    running = sum(p.poll() is None for p in procs)
    say("%d of the 16 commands still running when the shell answered" % running)
    expect(running > 0, "the shell answered only after all 16 commands ended")
    peak = channels(t)
    for i, p in enumerate(procs):
        rc, out, err, _ = finish(p, 120)
        expect_eq((rc, out, err), (0, b"n%d wicket-vm\n" % i, b""),
                  "exec %d (status, stdout, stderr)\n%s" % (i, mux_log(t)))
    dt = time.monotonic() - t0
    say("16 x `sleep 4` done in %.1f s; %d channels on the mux meanwhile" % (dt, peak))
    expect(dt < 40, "16 x `sleep 4` took %.1f s: queued, not concurrent" % dt)
    shell_says("one", "echo AF''TER-$((3*3))", r"^AFTER-9\s*$")
    expect_eq(mux_pid(t), pid0, "the mux's pid (the same mux served everyone)")
    tmux("send-keys", "-t", "one", "exit 3", "Enter")
    wait_until(lambda: os.path.exists(rcfile), timeout=30, what="wicket shell to exit")
    with open(rcfile) as f:
        expect_eq(f.read().strip(), "3", "wicket shell's exit status")


# ---------------------------------------------------------------- 2: cp


def md5(b):
    return hashlib.md5(b).hexdigest()


@tap.check("virtio: wicket cp both ways (4 MB, byte for byte, md5 in the guest) while a "
           "shell and a session are open")
def _():
    vm = need_vm()
    t = vm.target
    tmux_setup()
    rcfile = shell_in_tmux("two", t)
    shell_says("two", "echo SH''ELL-UP", r"^SHELL-UP\s*$")
    held = popen(wicket("exec", t, "--", "sh", "-c", "echo held; read x; echo still $x"),
                 stdin=subprocess.PIPE)
    ready(held, b"held\n", timeout=60)
    data = os.urandom(4 << 20) + b"tail\n"
    src = os.path.join(S["tmp"], "cp.in")
    back = os.path.join(S["tmp"], "cp.out")
    with open(src, "wb") as f:
        f.write(data)
    r = run(wicket("cp", "-q", src, "%s:/tmp/cp.up" % t), timeout=300)
    ok(r, "cp into the guest")
    say("4 MB in: %.1f s" % r.elapsed)
    r = wx(t, "md5sum", "/tmp/cp.up")
    ok(r, "md5sum")
    expect_eq(r.out.split()[:1], [md5(data).encode()], "md5 of /tmp/cp.up in the guest")
    shell_says("two", "echo MID''DLE $(md5sum < /tmp/cp.up | cut -c1-8)",
               r"^MIDDLE %s\s*$" % md5(data)[:8])
    r = run(wicket("cp", "-q", "%s:/tmp/cp.up" % t, back), timeout=300)
    ok(r, "cp out of the guest")
    say("4 MB out: %.1f s" % r.elapsed)
    with open(back, "rb") as f:
        got = f.read()
    expect(got == data, "downloaded %d bytes md5 %s, want %d bytes md5 %s"
           % (len(got), md5(got), len(data), md5(data)))
    expect(held.poll() is None, "the open session ended during the copies")
    rc, out, err, _ = finish(held, 30, b"here\n")
    expect_eq((rc, out), (0, b"held\nstill here\n"), "the open session (stderr %s)" % show(err))
    tmux("send-keys", "-t", "two", "exit", "Enter")
    wait_until(lambda: os.path.exists(rcfile), timeout=30, what="wicket shell to exit")


# ---------------------------------------------------------------- 3: PuTTY tools


@tap.check("virtio: plink -ssh-connection and psftp attach to the mux socket (wicket mux "
           "start's path) and work in the guest")
def _():
    vm = need_vm()
    t = vm.target
    if not shutil.which("plink") or not shutil.which("psftp"):
        raise Skip("putty-tools (plink, psftp) is not installed")
    r = run(wicket("mux", "start", t), timeout=30)
    ok(r, "wicket mux start")
    sock = r.out.decode().strip()
    expect(sock.startswith(MUX_RUNTIME + "/") and os.path.exists(sock),
           "mux start printed %s" % show(r.out))
    r = run(["plink", "-ssh-connection", "-batch", sock,
             "echo via-plink $(hostname) $(cat /sys/class/virtio-ports/*/name); exit 4"],
            timeout=60)
    expect_eq((r.rc, r.out), (4, b"via-plink wicket-vm org.wicket.agent.0\n"),
              "plink\n" + r.describe())
    d = os.path.join(S["tmp"], "psftp")
    os.makedirs(d)
    data = os.urandom(300 << 10)
    with open(os.path.join(d, "put.bin"), "wb") as f:
        f.write(data)
    script = "lcd %s\nput put.bin /tmp/psftp.bin\nget /tmp/psftp.bin got.bin\nquit\n" % d
    r = run(["psftp", "-ssh-connection", "-batch", sock], input=script.encode(), timeout=120)
    expect(r.rc == 0, "psftp\n" + r.describe())
    r2 = wx(t, "md5sum", "/tmp/psftp.bin")
    expect_eq(r2.out.split()[:1], [md5(data).encode()], "md5 of psftp's upload in the guest")
    with open(os.path.join(d, "got.bin"), "rb") as f:
        expect(f.read() == data, "psftp's download differs")


# ---------------------------------------------------------------- 4: a client killed


@tap.check("virtio: kill -9 of one client: its guest command is gone, the other clients "
           "(an exec, a shell) are unaffected")
def _():
    vm = need_vm()
    t = vm.target
    tmux_setup()
    mk = marker(4)
    rcfile = shell_in_tmux("four", t)
    shell_says("four", "echo FO''UR-UP", r"^FOUR-UP\s*$")
    pid0 = mux_pid(t)
    victim = popen(wicket("exec", t, "--", "sleep", mk))
    other = popen(wicket("exec", t, "--", "sh", "-c", "echo ready; read x; echo got $x"),
                  stdin=subprocess.PIPE)
    ready(other, b"ready\n", timeout=60)
    wait_until(lambda: guest_runs(t, "sleep " + mk), timeout=30, interval=0.5,
               what="the victim's `sleep %s` in the guest" % mk)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    last = [[]]

    def gone():
        last[0] = guest_runs(t, "sleep " + mk)
        return not last[0]
    try:
        wait_until(gone, timeout=20, interval=0.5, what="the victim's guest command to end")
    except Failure as e:
        raise Failure("%s: %s\n%s" % (e, last[0], mux_log(t)))
    expect_eq(other.poll(), None, "the other exec's state after the kill")
    rc, out, err, _ = finish(other, 30, b"on\n")
    expect_eq((rc, out, err), (0, b"ready\ngot on\n", b""), "the other exec")
    shell_says("four", "echo FO''UR-AFTER", r"^FOUR-AFTER\s*$")
    expect_eq(mux_pid(t), pid0, "the mux's pid (the same mux serves on)")
    tmux("send-keys", "-t", "four", "exit", "Enter")
    wait_until(lambda: os.path.exists(rcfile), timeout=30, what="wicket shell to exit")


# ---------------------------------------------------------------- 7: ssh via proxy --ssh


@tap.check("virtio: two ssh sessions at once through wicket proxy --ssh, on one mux")
def _():
    vm = need_vm()
    t = vm.target
    if not shutil.which("ssh"):
        raise Skip("OpenSSH ssh is not installed")
    cfg = ssh_proxy_config(t)
    pid0 = mux_pid(t)
    base = channels(t)
    a = popen(["ssh", "-F", cfg, "g", "echo ready-a; read x; echo A $x $(hostname)"],
              stdin=subprocess.PIPE, env=ssh_env())
    b = popen(["ssh", "-F", cfg, "g", "echo ready-b; read x; echo B $x $(hostname)"],
              stdin=subprocess.PIPE, env=ssh_env())
    ready(a, b"ready-a\n", timeout=90)
    ready(b, b"ready-b\n", timeout=90)
    expect(channels(t) >= base + 2, "the two ssh sessions are not both on the mux")
    expect_eq(mux_pid(t), pid0, "mux pid (one mux for both)")
    rb, ob, eb, _ = finish(b, 60, b"2\n")
    ra, oa, ea, _ = finish(a, 60, b"1\n")
    expect_eq((ra, oa), (0, b"ready-a\nA 1 wicket-vm\n"), "ssh a (stderr %s)" % show(ea))
    expect_eq((rb, ob), (0, b"ready-b\nB 2 wicket-vm\n"), "ssh b (stderr %s)" % show(eb))


# ---------------------------------------------------------------- 9: forwards


@tap.check("virtio: wicket forward -L, plink -R on the mux socket and ssh -R through proxy "
           "--ssh at once: each connection reaches the right client")
def _():
    vm = need_vm()
    t = vm.target
    for tool in ("plink", "ssh"):
        if not shutil.which(tool):
            raise Skip("%s is not installed" % tool)
    sock = run(wicket("mux", "start", t), timeout=30).out.decode().strip()
    # A server in the guest for -L: busybox nc answering G:LINE.
    gport = 7101
    srv = popen(wicket("exec", t, "--", "sh", "-c", "echo up; exec nc -ll -p %d -e sh -c "
                       "'read x; echo G:$x'" % gport))
    ready(srv, b"up\n", timeout=60)
    lp = free_port()
    fwd = popen(wicket("forward", t, "-L", "%d:127.0.0.1:%d" % (lp, gport)))
    # Remote forwards: guest ports 7201 (plink's client) and 7202 (ssh's).
    pa, pb = echo_server(b"A"), echo_server(b"B")
    ra, rb = 7201, 7202
    pl = popen(["plink", "-ssh-connection", "-batch", "-N", "-R",
                "127.0.0.1:%d:127.0.0.1:%d" % (ra, pa), sock])
    cfg = ssh_proxy_config(t)
    sh = popen(["ssh", "-F", cfg, "-N", "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rb, pb), "g"],
               env=ssh_env())
    try:
        def alive(what, p):
            if p.poll() is not None:
                raise Failure("%s exited with %s: %s\n%s" % (what, p.returncode,
                                                             show(p.stderr.read()), mux_log(t)))
        last = {}

        def lf():
            alive("wicket forward", fwd)
            last["L"] = host_probe(lp)
            return last["L"] == b"G:yo\n"

        def rf(port, want, who, p):
            def f():
                alive(who, p)
                last[port] = guest_probe(t, port)
                return last[port] == want
            return f
        try:
            wait_until(lf, timeout=60, interval=0.5, what="wicket forward -L to the guest's nc")
            wait_until(rf(ra, b"A:hi", "plink -R", pl), timeout=60, interval=0.5,
                       what="plink's remote forward")
            wait_until(rf(rb, b"B:hi", "ssh -R", sh), timeout=60, interval=0.5,
                       what="ssh's remote forward")
        except Failure as e:
            raise Failure("%s; last answers %r\n%s" % (e, last, mux_log(t)))
        # All three at once, interleaved, a few times.
        for i in range(3):
            expect_eq(guest_probe(t, rb), b"B:hi", "ssh's forward, round %d" % i)
            expect_eq(host_probe(lp, b"r%d\n" % i), b"G:r%d\n" % i,
                      "the -L forward, round %d" % i)
            expect_eq(guest_probe(t, ra), b"A:hi", "plink's forward, round %d" % i)
        # plink leaves: its forward is cancelled, the others stay.
        os.killpg(pl.pid, signal.SIGKILL)
        pl.wait()
        wait_until(lambda: guest_probe(t, ra) is None, timeout=30, interval=0.5,
                   what="plink's forward to be cancelled")
        expect_eq(guest_probe(t, rb), b"B:hi", "ssh's forward after plink left")
        expect_eq(host_probe(lp), b"G:yo\n", "the -L forward after plink left")
    finally:
        for p in (pl, sh, fwd, srv):
            stop_group(p)


# ---------------------------------------------------------------- 8: serve on serial


@tap.check("serial: wicket serve with three OpenSSH clients at once on the guest's serial "
           "line: one mux, three sessions, each correct")
def _():
    vm = need_vm()
    t = vm.serial_target
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        raise Skip("OpenSSH is not installed")
    key = os.path.join(S["tmp"], "id_serve")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key + "_host"])
    ak = os.path.join(S["tmp"], "ak_serve")
    shutil.copy(key + ".pub", ak)
    os.chmod(ak, 0o600)
    logp = os.path.join(S["tmp"], "serve.log")
    log = open(logp, "w+b")
    tap.at_cleanup(log.close)
    srv = spawn(wicket("serve", "--listen", "127.0.0.1:0", "--host-key", key + "_host",
                 "--authorized-keys", ak, t), stdin=subprocess.DEVNULL, stderr=log)
    try:
        def port():
            log.seek(0)
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read())
            return int(m.group(1)) if m else None
        pt = wait_until(port, timeout=30, what="serve to listen")
        argv = ["ssh", "-F", "/dev/null", "-p", str(pt), "-i", key, "-o", "BatchMode=yes", "-o",
                "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
                "LogLevel=error", "127.0.0.1"]
        # Each session prints the command lines of its ancestors: the serial agent's.
        anc = ("p=$$; while [ $p -gt 1 ]; do tr '\\0' ' ' < /proc/$p/cmdline; echo; "
               "p=$(cut -d' ' -f4 /proc/$p/stat); done")
        ps = [popen(argv + ["echo ready%d; read x; echo c%d $x; %s" % (i, i, anc)],
                    stdin=subprocess.PIPE) for i in range(3)]
        try:
            for i, p in enumerate(ps):
                ready(p, b"ready%d\n" % i, timeout=120)
        except Failure as e:
            log.seek(0)
            text = log.read().decode("utf-8", "replace")[-1500:]
            raise Failure("%s\nserve log:\n%s\n%s" % (e, text, mux_log(t)))
        wait_channels(t, 3, timeout=30)
        expect_eq(len(muxes_for(t)), 1, "muxes serving the serial line")
        for i, p in enumerate(ps):
            rc, out, err, _ = finish(p, 60, b"x%d\n" % i)
            expect_eq(rc, 0, "ssh client %d status (stderr %s)" % (i, show(err)))
            expect(out.startswith(b"ready%d\nc%d x%d\n" % (i, i, i)),
                   "ssh client %d output %s" % (i, show(out)))
            expect(b"--listen serial" in out and b"--listen virtio" not in out,
                   "ssh client %d: not a session of the serial agent: %s" % (i, show(out)))
    finally:
        stop_group(srv)


# ---------------------------------------------------------------- 5: the mux killed


@tap.check("virtio: kill -9 of the mux: its clients fail fast (255, no hang); the next "
           "command starts a fresh mux that works; the old guest commands end")
def _():
    vm = need_vm()
    t = vm.target
    mux_stop(t)
    ok(wx(t, "true"), "a command that starts a mux")
    pid0 = mux_pid(t)
    expect(pid0, "no mux after a command")
    mks = [marker(50 + i) for i in range(2)]
    procs = [popen(wicket("exec", t, "--", "sleep", mk)) for mk in mks]
    held = popen(wicket("exec", t, "--", "sh", "-c", "echo ready; cat"), stdin=subprocess.PIPE)
    ready(held, b"ready\n", timeout=60)
    procs.append(held)
    plink = None
    if shutil.which("plink"):
        sock = run(wicket("mux", "start", t), timeout=30).out.decode().strip()
        plink = popen(["plink", "-ssh-connection", "-batch", sock, "echo pl-ready; exec cat"],
                      stdin=subprocess.PIPE)
        ready(plink, b"pl-ready\n", timeout=60)
    wait_until(lambda: all(guest_runs(t, "sleep " + mk) for mk in mks), timeout=30,
               interval=0.5, what="the clients' sleeps in the guest")
    os.kill(pid0, signal.SIGKILL)
    t0 = time.monotonic()
    for i, p in enumerate(procs):
        rc, out, err, _ = finish(p, 15)
        expect_eq(rc, 255, "client %d status (stderr %s)" % (i, show(err)))
        expect(err.count(b"\n") == 1 and b"connection lost" in err,
               "client %d message %s" % (i, show(err)))
    if plink:
        rc, out, err, _ = finish(plink, 15)
        expect(rc != 0, "plink ended with 0 after its mux was killed")
    dt = time.monotonic() - t0
    say("all clients ended %.2f s after the kill" % dt)
    expect(dt < 5, "the clients took %.1f s to end" % dt)
    t1 = time.monotonic()
    r = wx(t, "echo", "fresh", timeout=60)
    ok(r, "the next command\n" + mux_log(t) + "\n" + vm.console(1000), b"fresh\n")
    say("the next command (a fresh mux) answered in %.2f s" % (time.monotonic() - t1))
    pid1 = mux_pid(t)
    expect(pid1 and pid1 != pid0, "a fresh mux (pid %s, the killed one %d)" % (pid1, pid0))
    last = [""]

    def ended():
        last[0] = [ln for ln in guest_ps(t).splitlines()
                   if any("sleep " + mk in ln for mk in mks)]
        return not last[0]
    try:
        wait_until(ended, timeout=30, interval=1, what="the killed mux's sleeps to end")
    except Failure as e:
        raise Failure("%s: %s" % (e, last[0]))


# ---------------------------------------------------------------- 6: reset


@tap.check("virtio: system_reset under an open mux (--keepalive 1): its clients end with "
           "255 and a reason naming the lost agent within 10 s; after the boot the next "
           "command works")
def _():
    vm = need_vm()
    t = vm.target
    mux_stop(t)
    boots = vm.console().count("wicket-vm: ready")
    a = popen(wicket("--keepalive", "1", "exec", t, "--", "sh", "-c",
                     "echo ready; exec sleep %s" % marker(60)))
    ready(a, b"ready\n", timeout=60)
    rc, text = mux_status(t)
    expect(rc == 0 and "keepalive: every 1 s" in text, "the mux's keepalive\n" + text)
    b = popen(wicket("exec", t, "--", "sh", "-c", "echo ready; cat"), stdin=subprocess.PIPE)
    ready(b, b"ready\n", timeout=60)
    tmux_setup()
    rcfile = shell_in_tmux("six", t)
    shell_says("six", "echo SIX''-UP", r"^SIX-UP\s*$")
    wait_channels(t, 3)
    old = muxes_for(t)
    # The serial line's mux would outlive the reset by 3 keepalives: gone
    # before, so virtio_log() can read the guest's log over a fresh one.
    mux_stop(vm.serial_target)
    out = hmp("system_reset")
    t0 = time.monotonic()
    ends = {}
    for name, p in (("exec a", a), ("exec b", b)):
        rc, _, err, _ = finish(p, 30)
        ends[name] = time.monotonic() - t0
        expect_eq(rc, 255, "%s status (stderr %s)\n%s" % (name, show(err), mux_log(t)))
        e = err.decode("utf-8", "replace")
        expect(("agent of %s" % t) in e and "stopped answering" in e,
               "%s: the reason does not name the lost agent: %s" % (name, show(err)))
        say("%s ended after %.1f s: %s" % (name, ends[name], e.strip()))
    wait_until(lambda: os.path.exists(rcfile), timeout=15, what="wicket shell to end")
    ends["shell"] = time.monotonic() - t0
    with open(rcfile) as f:
        expect_eq(f.read().strip(), "255", "wicket shell's exit status")
    expect(max(ends.values()) < 10, "clients ended after %r s (monitor said %s)"
           % (ends, show(out)))
    misses = wait_agent(vm, boots + 1, 180)
    say("guest's agent answering again %.1f s after the reset (%d direct probe(s) "
        "unanswered)" % (time.monotonic() - t0, misses))
    try:
        r = wx(t, "echo", "back", timeout=60)
    except Failure as e:
        raise Failure("%s\n%s\n%s\n%s" % (e, mux_log(t), virtio_log(vm), console_tail(vm)))
    expect_eq((r.rc, r.out, r.err), (0, b"back\n", b""), "the next command after the reset\n"
              + r.describe() + "\n" + mux_log(t))
    pid1 = mux_pid(t)
    expect(pid1 and pid1 not in old, "a fresh mux serves (pid %s; before the reset %s)"
           % (pid1, old))
    say("the next exec answered %.1f s after the reset" % (time.monotonic() - t0))


# ---------------------------------------------------------------- the QEMU guest, stopped


@tap.check("the QEMU guest's muxes stop; QEMU stops; none of their processes is left")
def _():
    vm = need_vm()
    for t in (vm.target, vm.serial_target):
        mux_stop(t)
    tmux_kill()
    vm.stop()
    expect(vm.proc.poll() is not None, "QEMU still running")
    left = leftovers([vm.workdir])
    expect(not left, "left behind: %s" % left)


# ---------------------------------------------------------------- 10: libvirt


CHANNEL_XML = ("<channel type='unix'><source mode='bind'/>"
               "<target type='virtio' name='org.wicket.agent.0'/></channel>")


def lv_need():
    if "lv_why" in S:
        raise Skip(S["lv_why"])
    if "lv_name" not in S:
        raise Failure("the libvirt domain did not come up (see its check)")
    return "vm/" + S["lv_name"], ("-c", S["lv_uri"])


def lv_daemon_log(limit=1500):
    try:
        with open(os.path.join(S["lv_tmp"], "libvirtd.log"), "rb") as f:
            return "libvirtd log (tail):\n" + f.read().decode("utf-8", "replace")[-limit:]
    except (OSError, KeyError):
        return ""


def lv_console(limit=1500):
    try:
        with open(os.path.join(S["lv_tmp"], "console.log"), "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r\n", "\n")[-limit:]
    except (OSError, KeyError):
        return ""


def lv_why_not():
    r = run(wicket("-c", "test:///default", "list"), timeout=30)
    if b"without libvirt" in r.err:
        return "this wicket was built without libvirt (libvirt-dev missing at configure time)"
    if os.geteuid() != 0:
        return "needs root to start libvirtd"
    for tool in ("libvirtd", "virsh", "qemu-system-x86_64", "unshare"):
        if not shutil.which(tool):
            return "%s is not installed" % tool
    why = vmlib.missing()
    return "no test guest can be booted: " + why if why else None


def lv_kvm_group():
    import grp
    try:
        grp.getgrnam("kvm")
        return True
    except KeyError:
        return False


def lv_ensure_qemu_user():
    """Debian's qemu driver runs QEMU as libvirt-qemu (as test_libvirt.py does)."""
    import grp
    import pwd
    try:
        grp.getgrnam("libvirt-qemu")
    except KeyError:
        r = run(["groupadd", "--system", "libvirt-qemu"])
        expect(r.rc == 0 or b"already exists" in r.err, "groupadd\n" + r.describe())
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        extra = ["-G", "kvm"] if lv_kvm_group() else []
        r = run(["useradd", "--system", "-g", "libvirt-qemu"] + extra +
                ["-M", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin", "libvirt-qemu"])
        expect(r.rc == 0 or b"already exists" in r.err, "useradd\n" + r.describe())


def lv_start_daemon(tmp):
    """A libvirtd of ours in a private mount namespace (see test_libvirt.py)."""
    etc = os.path.join(tmp, "etc")
    rundir = os.path.join(tmp, "run")
    os.makedirs(etc)
    os.makedirs(rundir)
    private = {"/etc/libvirt": etc}
    for d in ("/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt"):
        private[d] = os.path.join(tmp, "state" + d.replace("/", "-"))
        os.makedirs(private[d], mode=0o755)
    for f in ("libvirt.conf", "libvirt-admin.conf"):
        if os.path.exists("/etc/libvirt/" + f):
            shutil.copy("/etc/libvirt/" + f, etc)
    with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
        f.write('unix_sock_dir = "%s"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                'unix_sock_ro_perms = "0777"\nunix_sock_rw_perms = "0700"\n'
                'log_outputs = "3:file:%s"\n' % (rundir, os.path.join(tmp, "libvirtd.log")))
    with open(os.path.join(etc, "qemu.conf"), "w") as f:
        f.write('stdio_handler = "file"\nsecurity_driver = "none"\nnamespaces = [ ]\n'
                'cgroup_controllers = [ ]\n')
        if lv_kvm_group():
            f.write('group = "kvm"\n')
    r = run(["unshare", "-m", "--propagation", "private", "true"], timeout=30)
    if r.rc != 0:
        raise Skip("unshare -m fails here (no private /etc/libvirt for libvirtd): %s"
                   % r.err.decode("utf-8", "replace").strip())
    script = "set -e\n"
    for d, src in sorted(private.items()):
        script += "mkdir -p %s\nmount --bind %s %s\n" % (d, shlex.quote(src), d)
    script += "exec libvirtd -f %s -p %s\n" % (shlex.quote(os.path.join(etc, "libvirtd.conf")),
                                               shlex.quote(os.path.join(tmp, "libvirtd.pid")))
    out = open(os.path.join(tmp, "libvirtd.out"), "ab")
    tap.at_cleanup(out.close)
    proc = spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    S["lv_daemon"] = proc
    sock = os.path.join(rundir, "libvirt-sock")
    uri = "qemu:///system?socket=" + sock

    def up():
        if proc.poll() is not None:
            raise Failure("libvirtd exited with %s at start-up\n%s"
                          % (proc.returncode, lv_daemon_log()))
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(sock)
            s.close()
        except OSError:
            return False
        return run(["virsh", "-c", uri, "version"], timeout=30).rc == 0
    wait_until(up, timeout=60, interval=0.2, what="libvirtd to answer on " + sock)
    return uri


def lv_kill_stray_qemu(name):
    for pid in qemu_of_domain(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def qemu_of_domain(name):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                any(a.startswith(b"guest=%s," % name.encode()) or a == name.encode()
                    for a in argv):
            out.append(int(d))
    return out


def lv_domain_xml(name, tmp, dtype):
    return """<domain type='{dtype}'>
  <name>{name}</name>
  <memory unit='MiB'>384</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{tmp}/vmlinuz</kernel>
    <initrd>{tmp}/initrd.img</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=4 quiet</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='{tmp}/console.log'/><target port='0'/></serial>
    {chan}
    <memballoon model='none'/>
  </devices>
</domain>
""".format(dtype=dtype, name=name, tmp=tmp, chan=CHANNEL_XML)


def lv_stop_domain():
    name = S.get("lv_dom")
    if not name:
        return
    if "lv_uri" in S and S["lv_daemon"].poll() is None:
        run(["virsh", "-c", S["lv_uri"], "destroy", name], timeout=60)
    lv_kill_stray_qemu(name)


def lv_stop_daemon():
    p = S.get("lv_daemon")
    if p and p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


@tap.check("libvirt: a TCG domain of a test-owned libvirtd with the org.wicket.agent.0 "
           "channel boots; its agent answers (--share no, no mux yet)")
def _():
    why = lv_why_not()
    if why:
        S["lv_why"] = why
        raise Skip(why)
    base = S.get("tmp") or tap.tmpdir("wicket-muxvm-")
    tmp = os.path.join(base, "lv")
    os.makedirs(tmp, mode=0o755)
    os.chmod(base, 0o755)
    S["lv_tmp"] = tmp
    try:
        initrd, vmlinuz, kver = vmlib.mkinitramfs.build(vmlib.builddir())
    except vmlib.mkinitramfs.BuildError as e:
        raise Failure("cannot build the guest initramfs: %s" % e)
    for src, dst in ((vmlinuz, "vmlinuz"), (initrd, "initrd.img")):
        shutil.copy(src, os.path.join(tmp, dst))
        os.chmod(os.path.join(tmp, dst), 0o644)
    lv_ensure_qemu_user()
    try:
        S["lv_uri"] = lv_start_daemon(tmp)
    except Skip as e:
        S["lv_why"] = str(e)
        raise
    tap.at_cleanup(lv_stop_daemon)  # runs after the domain's cleanup
    name = "wicket-muxvm-%d" % os.getpid()
    dtype = "kvm" if os.environ.get("WICKET_VM_ACCEL") == "kvm" else "qemu"
    xml = os.path.join(tmp, "domain.xml")
    with open(xml, "w") as f:
        f.write(lv_domain_xml(name, tmp, dtype))
    S["lv_dom"] = name
    tap.at_cleanup(lv_stop_domain)
    t0 = time.monotonic()
    r = run(["virsh", "-q", "-c", S["lv_uri"], "create", xml], timeout=120)
    expect(r.rc == 0, "virsh create\n%s\n%s" % (r.describe(), lv_daemon_log()))
    deadline = t0 + 240
    while "wicket-vm: ready" not in lv_console():
        if time.monotonic() > deadline:
            raise Failure("no readiness line after 240 s; console:\n%s\n%s"
                          % (lv_console(), lv_daemon_log()))
        time.sleep(0.2)
    last = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("the agent never answered through libvirt\n%s\nconsole:\n%s"
                          % (last.describe() if last else "", lv_console()))
        try:
            last = run(wicket("-c", S["lv_uri"], "--share", "no", "exec", "-n", "vm/" + name,
                              "--", "true"), timeout=min(left, 30))
        except Failure:
            last = None
            continue
        if last.rc == 0:
            break
        time.sleep(0.5)
    S["lv_name"] = name
    say("virsh create to the first exec through libvirt: %.1f s" % (time.monotonic() - t0))
    expect_eq(mux_status("vm/" + name, ("-c", S["lv_uri"]))[0], 1, "mux status (none yet)")


@tap.check("libvirt: two wicket exec vm/NAME at once (a long `sleep 5; echo a`, a short "
           "one) share one mux: neither is aborted, both correct")
def _():
    t, c = lv_need()
    long_ = popen(wicket(*c, "exec", t, "--", "sh", "-c", "sleep 5; echo a"))
    wait_channels(t, 1, opts=c)
    pid0 = mux_pid(t, c)
    r = run(wicket(*c, "exec", t, "--", "echo", "b"), timeout=60)
    expect_eq((r.rc, r.out, r.err), (0, b"b\n", b""), "the short exec\n" + r.describe())
    expect(long_.poll() is None, "the long exec ended before the short one answered "
           "(status %s)" % long_.returncode)
    rc, out, err, _ = finish(long_, 60)
    expect_eq((rc, out, err), (0, b"a\n", b""), "the long exec\n" + mux_log(t))
    expect_eq(mux_pid(t, c), pid0, "the mux's pid (one for both)")
    # And both starting at the very same moment (one mux start race).
    mux_stop(t, c)
    r1, r2 = finish_all([
        popen(wicket(*c, "exec", t, "--", "sh", "-c", "sleep 5; echo a")),
        popen(wicket(*c, "exec", t, "--", "sh", "-c", "echo b"))], 90)
    expect_eq(r2[:3], (0, b"b\n", b""), "the short exec started at once\n" + mux_log(t))
    expect_eq(r1[:3], (0, b"a\n", b""), "the long exec started at once\n" + mux_log(t))
    expect(r2[3] < r1[3], "the short exec (%.1f s) waited for the long one (%.1f s)"
           % (r2[3], r1[3]))
    expect_eq(len(muxes_for(t)), 1, "muxes for vm/NAME")


@tap.check("libvirt: wicket --share no exec vm/NAME while the mux holds the channel is "
           "refused (255, names the mux); the mux's session is not hurt")
def _():
    t, c = lv_need()
    held = popen(wicket(*c, "exec", t, "--", "sh", "-c", "echo ready; read x; echo c $x"),
                 stdin=subprocess.PIPE)
    ready(held, b"ready\n", timeout=60)
    pid0 = mux_pid(t, c)
    r = run(wicket(*c, "--share", "no", "exec", t, "--", "echo", "direct"), timeout=60)
    expect_eq(r.rc, 255, "--share no status\n" + r.describe())
    expect_eq(r.out, b"", "--share no stdout")
    expect(r.err.count(b"\n") == 1 and b"mux" in r.err, "--share no message %s" % show(r.err))
    say("refused: %s" % r.err.decode("utf-8", "replace").strip())
    time.sleep(1)
    expect(held.poll() is None, "the mux's session ended (status %s, stderr %s)"
           % (held.returncode, show(held.stderr.read() if held.poll() is not None else b"")))
    rc, out, err, _ = finish(held, 30, b"fine\n")
    expect_eq((rc, out, err), (0, b"ready\nc fine\n", b""), "the mux's session\n" + mux_log(t))
    expect_eq(mux_pid(t, c), pid0, "the mux's pid")
    ok(run(wicket(*c, "exec", t, "--", "echo", "after"), timeout=60), "exec after", b"after\n")


# ---------------------------------------------------------------- end


def leftovers(paths):
    """Processes (not us) whose command line names one of @paths or MUX_RUNTIME."""
    needles = [p.encode() for p in paths if p] + [MUX_RUNTIME.encode()]
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cl = f.read()
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rfind(b")") + 2:][:1] == b"Z":
            continue
        if any(n in cl for n in needles):
            out[int(d)] = cl.replace(b"\0", b" ").decode("utf-8", "replace")[:200]
    return out


@tap.check("at the end no QEMU, libvirtd, mux, libvirt helper or other helper of this run "
           "is left")
def _():
    if "tmp" not in S:
        raise Skip(S.get("why") or S.get("lv_why") or "nothing was started")
    if "lv_name" in S:
        mux_stop("vm/" + S["lv_name"], ("-c", S["lv_uri"]))
    for t in ("vm" in S and (S["vm"].target, S["vm"].serial_target)) or ():
        if t:
            run(wicket("mux", "stop", t), timeout=30)
    tmux_kill()
    if "vm" in S:
        S["vm"].stop()
    lv_stop_domain()
    lv_stop_daemon()
    wait_until(lambda: not mux_pids(), timeout=15, what="every mux of this run to leave")
    paths = [S["tmp"], S.get("lv_dom")]
    try:
        wait_until(lambda: not leftovers(paths), timeout=15, interval=0.2,
                   what="every process of this run to leave")
    except Failure:
        raise Failure("left behind: %r" % leftovers(paths))
    if S.get("lv_dom"):
        expect_eq(qemu_of_domain(S["lv_dom"]), [], "QEMU of the libvirt domain")


if __name__ == "__main__":
    tap.main()
