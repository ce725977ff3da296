#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Throwaway QEMU guests for wicket's tests and demo (Python 3 stdlib only).

    vm = boot(workdir, extra_append="wicket.vsock=1")
    try:
        ... wicket exec unix/<vm.agent_sock> -- ...
    finally:
        vm.stop()

boot() runs Debian's kernel with the initramfs of mkinitramfs.py under
qemu-system-x86_64 (KVM when it works, else TCG), with

  - a virtio-serial port org.wicket.agent.0 on WORKDIR/agent.sock
    (wicketd --listen virtio/org.wicket.agent.0 in the guest),
  - with serial=True a second UART (ttyS1) on WORKDIR/serial.sock
    (boot adds wicket.serial=ttyS1: wicketd --listen serial//dev/ttyS1),
  - the console (ttyS0) in WORKDIR/console.log,
  - with vsock_cid=N and a usable /dev/vhost-vsock, a vhost-vsock device,
  - with qga=True a second virtio-serial port org.qemu.guest_agent.0 on
    WORKDIR/qga.sock, served by qemu-ga in the guest (the image then
    includes qemu-ga; boot adds wicket.qga=1),

and waits until `wicket exec unix/WORKDIR/agent.sock -- true` succeeds.
QEMU gets PR_SET_PDEATHSIG(SIGKILL): it dies with the process that
started it even if that one is killed with SIGKILL.

`python3 vmlib.py --demo` boots a demo VM and opens `wicket shell` into it
(or, without a terminal, runs a few `wicket exec` commands), then stops it.
"""

import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkinitramfs  # noqa: E402

SRCDIR = mkinitramfs.SRCDIR
AGENT_PORT_NAME = "org.wicket.agent.0"
QGA_PORT_NAME = "org.qemu.guest_agent.0"
QEMU = "qemu-system-x86_64"


class VMError(Exception):
    """The guest could not be started; the message says why."""


def builddir():
    return os.path.abspath(os.environ.get("WICKET_BUILDDIR") or os.path.join(SRCDIR, "build"))


def wicket_binary():
    return os.environ.get("WICKET") or os.path.join(builddir(), "host-tool", "wicket")


def missing():
    """Why no guest can be booted here (None when one can)."""
    if not shutil.which(QEMU):
        return "%s is not installed (Debian package qemu-system-x86)" % QEMU
    k, _ = mkinitramfs.find_kernel()
    if not k:
        return "no readable /boot/vmlinuz-* with modules (Debian package linux-image-amd64)"
    if not mkinitramfs.find_busybox():
        return "busybox is not installed (Debian package busybox-static)"
    return None


def vhost_vsock_usable():
    try:
        fd = os.open("/dev/vhost-vsock", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


_kvm_cache = []


def kvm_usable():
    """Does `-accel kvm` really run a guest here?  (/dev/kvm may exist and
    open but hang at run time, as without working nested virtualisation.)
    The probe boots the kernel under KVM and waits up to 6 s for its banner
    on the serial port.  WICKET_VM_ACCEL=kvm|tcg skips the probe."""
    if _kvm_cache:
        return _kvm_cache[0]
    ok = False
    if os.environ.get("WICKET_VM_ACCEL") in ("tcg", "kvm"):
        ok = os.environ["WICKET_VM_ACCEL"] == "kvm"
    elif os.access("/dev/kvm", os.R_OK | os.W_OK) and shutil.which(QEMU):
        k, _ = mkinitramfs.find_kernel()
        ok = bool(k) and _kvm_probe(k)
    _kvm_cache.append(ok)
    return ok


def _kvm_probe(kernel, limit=6.0):
    """True if a KVM guest prints the kernel banner within `limit` s."""
    import select
    try:
        p = subprocess.Popen(
            [QEMU, "-accel", "kvm", "-M", "q35", "-m", "128", "-display", "none",
             "-monitor", "none", "-nodefaults", "-serial", "stdio", "-no-reboot",
             "-kernel", kernel, "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
    except OSError:
        return False
    got = b""
    deadline = time.monotonic() + limit
    try:
        while b"Linux version" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                return False
            d = os.read(p.stdout.fileno(), 4096)
            if not d:
                return False
            got += d
        return True
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()
        p.stdout.close()


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the parent dies; own process group."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    os.setpgid(0, 0)


class VM:
    """A running guest.  stop() is idempotent."""

    def __init__(self, workdir, proc, agent_sock, serial_sock, console_log, accel, argv,
                 own_workdir):
        self.workdir = workdir
        self.proc = proc
        self.agent_sock = agent_sock
        self.serial_sock = serial_sock
        self.console_log = console_log
        self.accel = accel
        self.argv = argv
        self.boot_seconds = None
        self.qga_sock = None
        self._own_workdir = own_workdir

    @property
    def target(self):
        """wicket TARGET for the virtio-serial agent."""
        return "unix/" + self.agent_sock

    @property
    def serial_target(self):
        return "unix/" + self.serial_sock if self.serial_sock else None

    def alive(self):
        return self.proc.poll() is None

    def console(self, limit=None):
        try:
            with open(self.console_log, "rb") as f:
                t = f.read()
        except OSError:
            return ""
        t = t.decode("utf-8", "replace").replace("\r\n", "\n")
        return t[-limit:] if limit else t

    def wicket(self, *args, target=None, timeout=60, input=None):
        """Run `wicket ARGS[0] TARGET ARGS[1:]`; returns CompletedProcess."""
        argv = [wicket_binary(), args[0], target or self.target] + list(args[1:])
        return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              timeout=timeout)

    def stop(self):
        """Kill QEMU, wait for it, remove the sockets (and the workdir if boot made it)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(timeout=10)
        for p in (self.agent_sock, self.serial_sock, self.qga_sock):
            if p:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _agent_answers(wicket, target, timeout):
    try:
        r = subprocess.run([wicket, "exec", "-n", target, "--", "true"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout)
        return r.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def boot(workdir=None, extra_append="", serial=True, vsock_cid=None, memory=512, accel=None,
         timeout=None, kernel=None, initrd=None, wait=True, extra_qemu=(), qga=False):
    """Start a guest; returns a VM once its virtio-serial agent answers.

    workdir: where the sockets and console.log go (None: a new temp dir,
    removed by stop()).  extra_append: more kernel command line (e.g.
    "wicket.vsock=1 wicket.vsock_hostonly=9023").  accel: "kvm", "tcg" or
    None (KVM when kvm_usable(), else TCG).  timeout: seconds to wait for
    the agent (default 120 under TCG, 60 under KVM).  qga: also run
    qemu-ga on WORKDIR/qga.sock (vm.qga_sock; needs qemu-guest-agent on
    the host, whose /usr/sbin/qemu-ga goes into the image).  Raises VMError."""
    why = missing()
    if why:
        raise VMError(why)
    own = workdir is None
    if own:
        workdir = tempfile.mkdtemp(prefix="wicket-vm-")
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    if not initrd:
        try:
            initrd, vmlinuz, _ = mkinitramfs.build(builddir(), kernel, qga=qga)
        except mkinitramfs.BuildError as e:
            raise VMError("initramfs: %s" % e)
        kernel = kernel or vmlinuz
    elif not kernel:
        kernel, _ = mkinitramfs.find_kernel()
    if accel is None:
        accel = "kvm" if kvm_usable() else "tcg"
    if timeout is None:
        timeout = 120 if accel == "tcg" else 60
    agent_sock = os.path.join(workdir, "agent.sock")
    serial_sock = os.path.join(workdir, "serial.sock") if serial else None
    qga_sock = os.path.join(workdir, "qga.sock") if qga else None
    console_log = os.path.join(workdir, "console.log")
    # Unix socket paths are limited to 107 bytes.
    for p in (agent_sock, serial_sock, qga_sock):
        if p and len(p.encode()) > 100:
            raise VMError("socket path too long for AF_UNIX: %s" % p)
        if p and os.path.exists(p):
            os.unlink(p)
    append = "console=ttyS0 panic=-1 loglevel=4 quiet"
    if serial:
        append += " wicket.serial=ttyS1"
    if qga:
        append += " wicket.qga=1"
    if extra_append:
        append += " " + extra_append
    argv = [QEMU, "-accel", accel, "-M", "q35", "-m", str(memory), "-smp", "1",
            "-display", "none", "-monitor", "none", "-no-reboot", "-nodefaults",
            "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-chardev", "file,id=con0,path=%s" % console_log, "-serial", "chardev:con0"]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    if serial:
        argv += ["-chardev", "socket,id=ser1,path=%s,server=on,wait=off" % serial_sock,
                 "-serial", "chardev:ser1"]
    argv += ["-device", "virtio-serial-pci,id=vser0",
             "-chardev", "socket,id=agent0,path=%s,server=on,wait=off" % agent_sock,
             "-device", "virtserialport,bus=vser0.0,chardev=agent0,name=%s" % AGENT_PORT_NAME]
    if qga:
        argv += ["-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % qga_sock,
                 "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=%s" % QGA_PORT_NAME]
    if vsock_cid is not None:
        if not vhost_vsock_usable():
            raise VMError("no usable /dev/vhost-vsock: host<->guest vsock is impossible here")
        argv += ["-device", "vhost-vsock-pci,guest-cid=%d" % vsock_cid]
    argv += list(extra_qemu)
    qlog = open(os.path.join(workdir, "qemu.log"), "ab")
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog,
                                preexec_fn=_die_with_parent)
    finally:
        qlog.close()
    vm = VM(workdir, proc, agent_sock, serial_sock, console_log, accel, argv, own)
    vm.qga_sock = qga_sock
    if not wait:
        return vm
    try:
        _wait_ready(vm, t0, timeout)
    except BaseException:
        vm.stop()
        raise
    vm.boot_seconds = time.monotonic() - t0
    return vm


def _wait_ready(vm, t0, timeout):
    """Until the readiness line is on the console and the agent answers."""
    wicket = wicket_binary()
    if not os.access(wicket, os.X_OK):
        raise VMError("%s is not built" % wicket)
    deadline = t0 + timeout

    def died():
        try:
            with open(os.path.join(vm.workdir, "qemu.log"), "rb") as f:
                q = f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            q = ""
        return VMError("QEMU exited with status %s during boot\nqemu: %s\nconsole:\n%s"
                       % (vm.proc.returncode, q, vm.console(3000)))

    while "wicket-vm: ready" not in vm.console():
        if not vm.alive():
            raise died()
        if time.monotonic() > deadline:
            raise VMError("no readiness line after %d s (%s); console:\n%s"
                          % (timeout, vm.accel, vm.console(3000)))
        time.sleep(0.1)
    while True:
        if not vm.alive():
            raise died()
        left = deadline - time.monotonic()
        if left <= 0:
            raise VMError("the guest agent did not answer on %s within %d s (%s); console:\n%s"
                          % (vm.agent_sock, timeout, vm.accel, vm.console(3000)))
        if os.path.exists(vm.agent_sock) and _agent_answers(wicket, vm.target, min(left, 15)):
            return
        time.sleep(0.2)


# ---------------------------------------------------------------- demo


DEMO_UNAVAILABLE = 3  # exit status of --demo when no VM can be booted here


def demo():
    """Boot a demo VM; `wicket shell` on a terminal, else a few execs.
    Returns the exit status (the shell's, or DEMO_UNAVAILABLE)."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    why = missing()
    if why:
        print("wicket demo: cannot boot a VM here: %s" % why, file=sys.stderr)
        return DEMO_UNAVAILABLE
    accel = "kvm" if kvm_usable() else "tcg"
    print("wicket demo: booting a throwaway VM (QEMU with %s; kernel %s; busybox + wicketd)..."
          % ("KVM" if accel == "kvm" else "TCG: KVM is not usable here, so a bit slow",
             os.path.basename(mkinitramfs.find_kernel()[0])), flush=True)
    try:
        vm = boot(serial=False, accel=accel)
    except VMError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 1
    # SIGTERM/SIGHUP still stop the VM (finally below).
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda n, f: sys.exit(128 + n))
    wicket = wicket_binary()
    try:
        print("wicket demo: guest up after %.1f s; its agent is on %s (virtio-serial)"
              % (vm.boot_seconds, vm.agent_sock), flush=True)
        if interactive:
            print("wicket demo: opening `wicket shell %s`; '~.' or 'exit' leaves and "
                  "stops the VM" % vm.target, flush=True)
            p = subprocess.Popen([wicket, "shell", vm.target])
            while True:
                try:
                    return p.wait()
                except KeyboardInterrupt:  # the shell has the terminal; it decides
                    continue
        cmds = [
            ["uname", "-a"],
            ["sh", "-c", 'echo "hostname: $(hostname), user: $(id -un), '
                         'agent port: $(cat /sys/class/virtio-ports/*/name)"'],
            ["sh", "-c", "echo network interfaces:; tail -n +3 /proc/net/dev | cut -d: -f1"],
        ]
        rc = 0
        for c in cmds:
            print("$ wicket exec %s -- %s" % (vm.target, " ".join(shlex.quote(a) for a in c)),
                  flush=True)
            rc = subprocess.call([wicket, "exec", "-n", vm.target, "--"] + c) or rc
        return rc
    finally:
        vm.stop()
        print("wicket demo: VM stopped", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--demo"]:
        sys.exit(demo())
    print("usage: %s --demo" % sys.argv[0], file=sys.stderr)
    sys.exit(2)
