#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""selinux/: the wicketd policy module builds with the reference policy's
devel Makefile (Debian selinux-policy-dev).  SELinux need not be enabled:
building is the check (checkmodule + semodule_package against the
installed interfaces); nothing is loaded."""

import os
import re
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import SRCDIR, Skip, expect, run, tap  # noqa: E402

DEVEL = os.environ.get("SELINUX_DEVEL", "/usr/share/selinux/devel/Makefile")
TUNABLES = ["wicketd_read_all_files", "wicketd_manage_all_files", "wicketd_sysadm_login",
            "wicketd_forwarding"]
S = {}


def build():
    """Build once (in a copy: the source tree stays clean); Skip if we cannot."""
    if "skip" in S:
        raise Skip(S["skip"])
    if "pp" in S:
        return
    if not os.path.exists(DEVEL):
        S["skip"] = "%s missing (Debian: apt-get install selinux-policy-dev)" % DEVEL
        raise Skip(S["skip"])
    for tool in ("make", "checkmodule", "semodule_package", "m4"):
        if not shutil.which(tool):
            S["skip"] = "%s is not installed (comes with selinux-policy-dev)" % tool
            raise Skip(S["skip"])
    d = os.path.join(tap.tmpdir("wicket-selinux-"), "selinux")
    shutil.copytree(os.path.join(SRCDIR, "selinux"), d)
    r = run(["make", "SELINUX_DEVEL=" + DEVEL], cwd=d, timeout=240)
    S["log"] = r
    expect(r.rc == 0, "make failed\n" + r.describe())
    S["dir"] = d
    S["pp"] = os.path.join(d, "wicketd.pp")
    # The devel Makefile leaves the m4-expanded module source in tmp/.
    with open(os.path.join(d, "tmp", "wicketd.tmp"), encoding="utf-8", errors="replace") as f:
        S["conf"] = f.read()


@tap.check("wicketd.pp builds with the refpolicy devel Makefile")
def _():
    build()
    with open(S["pp"], "rb") as f:
        head = f.read(4)
    expect(head == b"\x8f\xff\x7c\xf9", "wicketd.pp is not a policy package (magic %r)" % head)
    expect(os.path.getsize(S["pp"]) > 1000, "wicketd.pp is suspiciously small")


@tap.check("the build prints no warnings")
def _():
    build()
    text = (S["log"].out + S["log"].err).decode("utf-8", "replace")
    bad = [ln for ln in text.splitlines() if re.search(r"warning|error", ln, re.I)]
    expect(not bad, "make printed:\n" + "\n".join(bad))


@tap.check("own domain with wicketd_exec_t as its entry point, started by init")
def _():
    build()
    c = S["conf"]
    expect(re.search(r"type_transition init_t wicketd_exec_t:process wicketd_t;", c),
           "no init_t -> wicketd_t transition")
    with open(os.path.join(SRCDIR, "selinux", "wicketd.fc")) as f:
        fc = f.read()
    expect(re.search(r"^/usr/sbin/wicketd\s+--\s+gen_context\(system_u:object_r:wicketd_exec_t", fc, re.M),
           "/usr/sbin/wicketd is not labelled wicketd_exec_t")


@tap.check("transports: vsock sockets, virtio-serial ports, serial ttys")
def _():
    build()
    c = S["conf"]
    expect(re.search(r"allow wicketd_t self:vsock_socket .*listen accept", c), "no vsock listen/accept")
    expect(re.search(r"allow wicketd_t virtio_device_t:chr_file", c), "no virtio-serial port access")
    expect(re.search(r"allow wicketd_t tty_device_t:chr_file", c), "no serial tty access")


@tap.check("ptys: allocated as wicketd_devpts_t and relabelled for the session user")
def _():
    build()
    c = S["conf"]
    expect(re.search(r"type_transition wicketd_t devpts_t:chr_file wicketd_devpts_t", c),
           "no pty type transition")
    expect(re.search(r"allow wicketd_t user_devpts_t:chr_file .*relabelto", c),
           "cannot relabel ptys to the user's type")


@tap.check("sessions transition to the user's domain")
def _():
    build()
    c = S["conf"]
    expect(re.search(r"allow wicketd_t self:process .*setexec", c), "no setexec")
    expect(re.search(r"allow wicketd_t unpriv_userdomain:process .*transition", c),
           "no transition to unprivileged user domains")


@tap.check("file-access tunables exist and are off by default")
def _():
    build()
    c = S["conf"]
    for t in TUNABLES:
        expect(re.search(r"^\s*bool %s false;" % t, c, re.M), "%s missing or not false" % t)
    expect(re.search(r"if \(wicketd_read_all_files\)", c), "wicketd_read_all_files guards nothing")
    expect(re.search(r"if \(wicketd_manage_all_files\)", c), "wicketd_manage_all_files guards nothing")


if __name__ == "__main__":
    tap.main()
