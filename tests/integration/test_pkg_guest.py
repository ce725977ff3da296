#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The wicketd package in a real systemd-booted Debian guest.

mmdebstrap makes a minimal Debian 12 root (systemd, udev) from Debian's
archive with the wicketd .deb built from this tree (scripts/build-deb.sh)
installed by dpkg, as an image builder would; QEMU (KVM if usable, else
TCG) boots it with this machine's Debian kernel and initrd.  The VM starts
with a virtio-serial controller and no port.  Then, as the package
promises: the port org.wicket.agent.0 is hot-plugged (QMP chardev-add +
device_add) and the udev rule + wicketd@.service start the agent, which
the build tree's wicket reaches on the port's Unix socket; unplugging the
port and plugging it again gives a new instance (another InvocationID); and
wicketd-vsock.socket, enabled by the package, listens in the VM.

Skips (with the reason) when not root, or mmdebstrap, mke2fs, QEMU, a
kernel with its initrd, or Debian's archive are not there."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import SRCDIR, WICKET, Failure, Skip, expect, run, tap  # noqa: E402

sys.path.insert(0, os.path.join(SRCDIR, "tests", "vm"))
import mkinitramfs  # noqa: E402
import vmlib  # noqa: E402

PORT = "org.wicket.agent.0"
UNIT = "wicketd@%s.service" % PORT
S = {}


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(30)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            ln = self.f.readline()
            if not ln:
                raise Failure("QMP connection closed")
            msg = json.loads(ln)
            if "event" not in msg:
                return msg

    def cmd(self, _name, **args):
        self.f.write(json.dumps({"execute": _name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        r = self._read()
        expect("return" in r, "QMP %s failed: %s" % (_name, r))
        return r["return"]


def need():
    if "skip" in S:
        raise Skip(S["skip"])
    if "qmp" not in S:
        raise Failure("the guest did not boot (see the first check)")


def skip_all(why):
    S["skip"] = why
    raise Skip(why)


def wx(*argv, timeout=60):
    sock = os.path.join(S["dir"], "agent.sock")
    return run([WICKET, "--share", "no", "exec", "unix/" + sock, "--"] + list(argv),
               timeout=timeout)


def plug():
    S["qmp"].cmd("chardev-add", id="wchar", backend={"type": "socket", "data": {
        "addr": {"type": "unix", "data": {"path": os.path.join(S["dir"], "agent.sock")}},
        "server": True, "wait": False}})
    S["qmp"].cmd("device_add", driver="virtserialport", bus="vser.0", chardev="wchar",
                 name=PORT, id="wport")


def unplug():
    S["qmp"].cmd("device_del", id="wport")
    # device_del completes when the guest lets go of the port.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        devs = S["qmp"].cmd("qom-list", path="/machine/peripheral")
        if not any(d["name"] == "wport" for d in devs):
            break
        time.sleep(0.5)
    else:
        raise Failure("the guest did not release the port within 60 s")
    # The chardev stays busy a little after the device is gone.
    while True:
        try:
            S["qmp"].cmd("chardev-remove", id="wchar")
            return
        except Failure:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def agent_answers(timeout):
    """The unit's InvocationID, read through the agent once it answers."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = wx("systemctl", "show", "-P", "InvocationID", UNIT, timeout=30)
        if r.rc == 0 and r.out.strip():
            return r.out.decode().strip()
        last = r
        time.sleep(1)
    raise Failure("no agent on the hot-plugged port within %d s\n%s\nconsole tail:\n%s" % (
        timeout, last.describe() if last else "", console_tail()))


def console_tail(n=30):
    try:
        with open(os.path.join(S["dir"], "console.log"), "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


@tap.check("a Debian 12 image with the wicketd .deb boots under systemd (mmdebstrap + QEMU)")
def check_boot():
    for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("mke2fs", "e2fsprogs"),
                      ("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"),
                      (vmlib.QEMU, "qemu-system-x86")):
        if not shutil.which(tool):
            skip_all("%s is not installed (Debian package %s)" % (tool, pkg))
    kernel, ver = mkinitramfs.find_kernel()
    initrd = "/boot/initrd.img-%s" % ver if ver else None
    if not kernel or not os.path.exists(initrd):
        skip_all("no /boot/vmlinuz-* with its initrd and /lib/modules (linux-image-amd64)")
    d = S["dir"] = tap.tmpdir("wicket-pkg-guest-")
    r = run([os.path.join(SRCDIR, "scripts", "build-deb.sh"), os.path.join(d, "deb")],
            timeout=1800)
    expect(r.rc == 0, "build-deb.sh failed\n" + r.describe())
    deb = glob.glob(os.path.join(d, "deb", "wicketd_*.deb"))[0]
    tar = os.path.join(d, "root.tar")
    hooks = [
        'copy-in %s /tmp' % deb,
        'chroot "$1" dpkg -i /tmp/%s' % os.path.basename(deb),
        'rm "$1/tmp/%s"' % os.path.basename(deb),
        'mkdir -p "$1/lib/modules" && cp -a /lib/modules/%s "$1/lib/modules/"' % ver,
    ]
    argv = ["mmdebstrap", "--variant=minbase", "--include=systemd-sysv,udev,kmod"]
    for h in hooks:
        argv.append("--customize-hook=" + h)
    r = run(argv + ["bookworm", tar], timeout=1200)
    if r.rc != 0 and (b"Could not resolve" in r.err or b"Failed to fetch" in r.err or
                      b"Temporary failure" in r.err):
        skip_all("Debian's archive is not reachable for mmdebstrap")
    expect(r.rc == 0, "mmdebstrap failed\n" + r.describe())
    root = os.path.join(d, "root")
    os.mkdir(root)
    expect(run(["tar", "-C", root, "-xf", tar], timeout=300).rc == 0, "untar failed")
    os.unlink(tar)
    img = os.path.join(d, "root.img")
    with open(img, "wb") as f:
        f.truncate(3 << 30)
    r = run(["mke2fs", "-q", "-t", "ext4", "-d", root, img], timeout=300)
    expect(r.rc == 0, r.describe())
    shutil.rmtree(root)
    accel = "kvm" if vmlib.kvm_usable() else "tcg"
    qmp = os.path.join(d, "qmp.sock")
    console = os.path.join(d, "console.log")
    p = subprocess.Popen(
        [vmlib.QEMU, "-accel", accel, "-m", "1024", "-smp", "1", "-display", "none",
         "-no-reboot", "-kernel", kernel, "-initrd", initrd,
         "-append", "root=/dev/vda rw console=ttyS0 panic=-1",
         "-drive", "file=%s,format=raw,if=virtio" % img,
         "-device", "virtio-serial-pci,id=vser", "-qmp", "unix:%s,server=on,wait=off" % qmp,
         "-serial", "file:" + console],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    S["qemu"] = p
    tap.at_cleanup(lambda: (p.kill(), p.wait()))
    t0 = time.monotonic()
    limit = 120 if accel == "kvm" else 600
    while time.monotonic() - t0 < limit:
        if p.poll() is not None:
            raise Failure("QEMU exited (%s)\n%s" % (p.returncode, console_tail()))
        try:
            with open(console, "rb") as f:
                if b"Multi-User System" in f.read():
                    break
        except FileNotFoundError:  # QEMU has not opened it yet
            pass
        time.sleep(1)
    else:
        raise Failure("no multi-user.target within %d s (%s)\n%s" % (limit, accel,
                                                                   console_tail()))
    tap._diag("booted under %s in %.0f s" % (accel.upper(), time.monotonic() - t0))
    S["qmp"] = QMP(qmp)


@tap.check("hot-plugging the port org.wicket.agent.0 starts the agent (udev rule + wicketd@)")
def check_hotplug():
    need()
    plug()
    t0 = time.monotonic()
    S["inv1"] = agent_answers(120)
    tap._diag("agent answered %.1f s after the port appeared" % (time.monotonic() - t0))
    r = wx("systemctl", "is-active", UNIT)
    expect(r.rc == 0 and r.out.strip() == b"active", r.describe())


@tap.check("unplugged and plugged again, the port is served by a new wicketd instance")
def check_replug():
    need()
    expect("inv1" in S, "no first instance (see the previous check)")
    unplug()
    plug()
    inv2 = agent_answers(120)
    expect(inv2 != S["inv1"], "same InvocationID %s: the instance was not restarted" % inv2)


@tap.check("the package enabled wicketd-vsock.socket, which listens in the VM")
def check_vsock_socket():
    need()
    r = wx("systemctl", "is-enabled", "wicketd-vsock.socket")
    expect(r.rc == 0 and r.out.strip() == b"enabled", r.describe())
    r = wx("systemctl", "is-active", "wicketd-vsock.socket")
    expect(r.rc == 0 and r.out.strip() == b"active", r.describe())


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("1..0 # SKIP the packaged-guest test runs as root (mmdebstrap, dpkg in a chroot)")
        sys.exit(0)
    tap.main()
