#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vm/NAME through a real libvirtd: `wicket exec/cp/shell/proxy/list` against
transient QEMU domains (TCG) booting the test guest of tests/vm/.

The test starts its own libvirtd (as root) in a private mount namespace
where /etc/libvirt, /run/libvirt, /var/lib/libvirt and /var/log/libvirt are
temporary directories (qemu.conf: stdio to files, no virtlogd, no cgroups,
no security driver) and its sockets are in the temporary directory too, so
neither the machine's own libvirtd nor another run of this test (another
developer's meson test) is touched or in the way.  Debian's daemon wants a
`libvirt-qemu` user and group; they are created when missing, as Debian's
libvirt-daemon-system would (and left in place: removing them could pull
them from under a concurrent run).

Domains: A has the virtio-serial channel org.wicket.agent.0 (wicketd
listens on it), B has none (wicket must print the channel XML to add),
C is defined but never started.  Everything started here is stopped in
cleanups (virsh destroy/undefine, libvirtd, stray QEMU), also on failure."""

import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from taplib import (SRCDIR, WICKET, Failure, Skip, expect, expect_eq, pids_with_argv,  # noqa: E402
                    run, show, spawn, tap, wait_until, wicket)
from gaveup import answered_after, impatient_behind_holder  # noqa: E402

CHANNEL = "org.wicket.agent.0"
CHANNEL_XML = ("<channel type='unix'><source mode='bind'/>"
               "<target type='virtio' name='org.wicket.agent.0'/></channel>")
S = {}  # "why" (cannot run here), "uri", "tmp", "A", "B", "C", "kver", "figures"


def say(msg):
    """A TAP diagnostic line right away (figures, progress)."""
    sys.stdout.write("# %s\n" % msg)
    sys.stdout.flush()


def need():
    if "why" in S:
        raise Skip(S["why"])
    if "A" not in S:
        raise Failure("domain A did not come up (see the first check)")


def virsh(*args, timeout=60, check=True):
    r = run(["virsh", "-q", "-c", S["uri"]] + list(args), timeout=timeout)
    if check and r.rc != 0:
        raise Failure("virsh %s failed\n%s\n%s" % (" ".join(args), r.describe(), daemon_log()))
    return r


def wk(*args, timeout=60, input=None, env=None):
    """wicket -c URI ARGS..."""
    return run(wicket("-c", S["uri"], *args), timeout=timeout, input=input, env=env)


def daemon_log(limit=2000):
    p = S.get("daemon_log")
    if not p:
        return ""
    try:
        with open(p, "rb") as f:
            t = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "libvirtd log (tail):\n" + t[-limit:]


def console(name, limit=2000):
    try:
        with open(os.path.join(S["tmp"], "console-%s.log" % name), "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r\n", "\n")[-limit:]
    except OSError:
        return ""


# ---------------------------------------------------------------- setup


def no_libvirt_build():
    r = run(wicket("-c", "test:///default", "list"), timeout=30)
    if b"without libvirt" in r.err:
        return "this wicket was built without libvirt (libvirt-dev missing at configure time)"
    return None


def why_not_here():
    why = no_libvirt_build()
    if why:
        return why
    if os.geteuid() != 0:
        return "needs root to start libvirtd"
    for tool in ("libvirtd", "virsh", "qemu-system-x86_64", "unshare"):
        if not shutil.which(tool):
            return "%s is not installed" % tool
    vmdir = os.path.join(SRCDIR, "tests", "vm")
    if not os.path.exists(os.path.join(vmdir, "vmlib.py")):
        return "tests/vm/ (the guest harness) is not there"
    return None


def ensure_qemu_user():
    """Debian's qemu driver runs QEMU as libvirt-qemu: make the account exist."""
    import grp
    import pwd
    try:
        grp.getgrnam("libvirt-qemu")
    except KeyError:
        r = run(["groupadd", "--system", "libvirt-qemu"])
        expect(r.rc == 0 or b"already exists" in r.err,
               "groupadd libvirt-qemu failed\n" + r.describe())
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        # In kvm like Debian's packaging does it (see kvm_group()).
        extra = ["-G", "kvm"] if kvm_group() else []
        r = run(["useradd", "--system", "-g", "libvirt-qemu"] + extra +
                ["-M", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin", "libvirt-qemu"])
        expect(r.rc == 0 or b"already exists" in r.err,
               "useradd libvirt-qemu failed\n" + r.describe())


def kvm_group():
    """Does a `kvm` group exist?  QEMU then runs with it (qemu.conf group):
    libvirt keeps its QEMU capability cache only while /dev/kvm is as
    accessible to QEMU's user as when it probed, else it re-probes QEMU
    (seconds under TCG) on every call: /dev/kvm exists on these machines
    although KVM does not work."""
    import grp
    try:
        grp.getgrnam("kvm")
        return True
    except KeyError:
        return False


def socket_accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_libvirtd(tmp):
    """Our own libvirtd with private config and state; returns its URI."""
    etc = os.path.join(tmp, "etc")
    run_dir = os.path.join(tmp, "run")
    os.makedirs(etc)
    os.makedirs(run_dir)
    private = {"/etc/libvirt": etc}
    for d in ("/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt"):
        private[d] = os.path.join(tmp, "state" + d.replace("/", "-"))
        os.makedirs(private[d], mode=0o755)
    for f in ("libvirt.conf", "libvirt-admin.conf"):
        if os.path.exists("/etc/libvirt/" + f):
            shutil.copy("/etc/libvirt/" + f, etc)
    S["daemon_log"] = os.path.join(tmp, "libvirtd.log")
    with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
        f.write('unix_sock_dir = "%s"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                'unix_sock_ro_perms = "0777"\nunix_sock_rw_perms = "0700"\n'
                'log_outputs = "3:file:%s"\n' % (run_dir, S["daemon_log"]))
    with open(os.path.join(etc, "qemu.conf"), "w") as f:
        f.write('stdio_handler = "file"\nsecurity_driver = "none"\nnamespaces = [ ]\n'
                'cgroup_controllers = [ ]\n')
        if kvm_group():
            f.write('group = "kvm"\n')
    # Can we have a private mount namespace at all?
    r = run(["unshare", "-m", "--propagation", "private", "true"], timeout=30)
    if r.rc != 0:
        raise Skip("unshare -m fails here (no private /etc/libvirt for libvirtd): %s"
                   % r.err.decode("utf-8", "replace").strip())
    # Mount points (on the real /run and /var: empty directories at worst).
    script = "set -e\n"
    for d, src in sorted(private.items()):
        script += "mkdir -p %s\nmount --bind %s %s\n" % (d, shlex.quote(src), d)
    script += "exec libvirtd -f %s -p %s\n" % (
        shlex.quote(os.path.join(etc, "libvirtd.conf")),
        shlex.quote(os.path.join(tmp, "libvirtd.pid")))
    out = open(os.path.join(tmp, "libvirtd.out"), "ab")
    tap.at_cleanup(out.close)
    # spawn() kills the process group at cleanup: registered before the
    # domains' cleanups, so it runs after them.
    proc = spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    S["libvirtd"] = proc
    sock = os.path.join(run_dir, "libvirt-sock")
    uri = "qemu:///system?socket=" + sock

    def up():
        if proc.poll() is not None:
            with open(os.path.join(tmp, "libvirtd.out"), "rb") as f:
                o = f.read().decode("utf-8", "replace")
            raise Failure("libvirtd exited with %s at start-up\n%s\n%s"
                          % (proc.returncode, o[-1500:], daemon_log()))
        return socket_accepts(sock) and run(["virsh", "-c", uri, "version"], timeout=30).rc == 0
    t0 = time.monotonic()
    wait_until(up, timeout=60, interval=0.2, what="libvirtd to answer on " + sock)
    say("libvirtd up after %.1f s (pid %d, private /etc/libvirt, /run/libvirt, "
        "/var/lib/libvirt, /var/log/libvirt)" % (time.monotonic() - t0, proc.pid))
    return uri


def domain_xml(name, kernel, initrd, channel, dtype):
    chan = CHANNEL_XML if channel else ""
    return """<domain type='{dtype}'>
  <name>{name}</name>
  <memory unit='MiB'>384</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=4 quiet</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    {chan}
    <memballoon model='none'/>
  </devices>
</domain>
""".format(dtype=dtype, name=name, kernel=kernel, initrd=initrd, chan=chan,
           console=os.path.join(S["tmp"], "console-%s.log" % name))


def kill_stray_qemu(name):
    """QEMU of domain NAME still running (libvirtd died before destroying it)."""
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
            try:
                os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


def create_domain(key, channel):
    name = "wicket-it-%d-%s" % (os.getpid(), key)
    path = os.path.join(S["tmp"], "%s.xml" % key)
    with open(path, "w") as f:
        f.write(domain_xml(name, S["kernel"], S["initrd"], channel, S["dtype"]))

    def stop():
        if "uri" in S:
            run(["virsh", "-c", S["uri"], "destroy", name], timeout=60)
        kill_stray_qemu(name)
    tap.at_cleanup(stop)
    S["created_at_" + key] = time.monotonic()
    virsh("create", path, timeout=120)
    S[key] = name
    return name


def setup():
    why = why_not_here()
    if why:
        S["why"] = why
        return
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "vm"))
    import vmlib
    why = vmlib.missing()
    if why:
        S["why"] = "no test guest can be booted: " + why
        return
    tmp = tap.tmpdir("wicket-lv-")
    os.chmod(tmp, 0o755)  # QEMU runs as libvirt-qemu and reads the kernel from here
    S["tmp"] = tmp
    try:
        initrd, vmlinuz, kver = vmlib.mkinitramfs.build(vmlib.builddir())
    except vmlib.mkinitramfs.BuildError as e:
        raise Failure("cannot build the guest initramfs: %s" % e)
    S["kver"] = kver
    S["kernel"] = os.path.join(tmp, "vmlinuz")
    S["initrd"] = os.path.join(tmp, "initrd.img")
    shutil.copy(vmlinuz, S["kernel"])
    shutil.copy(initrd, S["initrd"])
    for p in (S["kernel"], S["initrd"]):
        os.chmod(p, 0o644)
    # TCG: KVM is not usable on these machines; WICKET_VM_ACCEL=kvm opts in.
    S["dtype"] = "kvm" if os.environ.get("WICKET_VM_ACCEL") == "kvm" else "qemu"
    ensure_qemu_user()
    try:
        S["uri"] = start_libvirtd(tmp)
    except Skip as e:
        S["why"] = str(e)


# ---------------------------------------------------------------- checks


@tap.check("transient domain A (TCG, channel) boots; wicket exec vm/A -- uname -r is exact")
def _():
    if "why" in S:
        raise Skip(S["why"])
    name = create_domain("A", channel=True)
    t0 = S["created_at_A"]
    deadline = t0 + 240
    while "wicket-vm: ready" not in console(name):
        if time.monotonic() > deadline:
            raise Failure("no readiness line after 240 s; console:\n%s\n%s"
                          % (console(name), daemon_log()))
        time.sleep(0.2)
    say("virsh create to the guest's readiness line: %.1f s" % (time.monotonic() - t0))
    S.pop("A")  # not usable until the agent answers
    last = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("the agent never answered through libvirt\n%s\nconsole:\n%s"
                          % (last.describe() if last else "", console(name)))
        try:
            last = wk("exec", "-n", "vm/" + name, "--", "true", timeout=min(left, 30))
        except Failure:
            last = None
            continue
        if last.rc == 0:
            break
        time.sleep(0.5)
    S["A"] = name
    say("virsh create to first successful exec through libvirt: %.1f s"
        % (time.monotonic() - t0))
    r = wk("exec", "vm/" + name, "--", "uname", "-r")
    expect_eq((r.rc, r.out, r.err), (0, (S["kver"] + "\n").encode(), b""),
              "(status, stdout, stderr) of uname -r")
    times = []
    for _ in range(5):
        r = wk("exec", "-n", "vm/" + name, "--", "true")
        expect_eq(r.rc, 0, "status of exec true")
        times.append(r.elapsed)
    say("one `wicket exec vm/A -- true` through libvirt (warm): best %.0f ms, median %.0f ms"
        % (min(times) * 1000, sorted(times)[2] * 1000))


@tap.check("exec vm/A: stdin, stdout and stderr apart, exit status; 4 MiB through the channel")
def _():
    need()
    data = os.urandom(4 << 20)
    r = wk("exec", "vm/" + S["A"], "--", "sh", "-c", "cat; echo to-stderr >&2; exit 3",
           input=data, timeout=180)
    expect_eq(r.rc, 3, "exit status")
    expect_eq(r.err, b"to-stderr\n", "stderr")
    expect(r.out == data, "stdout differs from stdin: %d bytes back, sha256 %s vs %s"
           % (len(r.out), hashlib.sha256(r.out).hexdigest()[:16],
              hashlib.sha256(data).hexdigest()[:16]))
    say("4 MiB echoed through vm/A in %.2f s" % r.elapsed)


@tap.check("no helper process is left behind after exec vm/A")
def _():
    need()
    argv = wicket("-c", S["uri"], "exec", "-n", "vm/" + S["A"], "--", "true")
    r = run(argv)
    expect_eq(r.rc, 0, "status")
    wait_until(lambda: not pids_with_argv(argv), timeout=5,
               what="the libvirt helper to exit")


@tap.check("wicket cp to and from vm/A")
def _():
    need()
    probe = run(wicket("cp"), timeout=30)
    if b"unknown command" in probe.err:
        raise Skip("this wicket has no cp command")
    src = os.path.join(S["tmp"], "cp-src")
    back = os.path.join(S["tmp"], "cp-back")
    data = os.urandom(3 << 20) + b"end\n"
    with open(src, "wb") as f:
        f.write(data)
    r = wk("cp", src, "vm/%s:/tmp/cp-dst" % S["A"], timeout=180)
    expect(r.rc == 0, "cp to the guest failed\n" + r.describe())
    r = wk("exec", "vm/" + S["A"], "--", "sha256sum", "/tmp/cp-dst", timeout=60)
    expect_eq(r.out.split()[:1], [hashlib.sha256(data).hexdigest().encode()],
              "sha256 of the copy in the guest")
    r = wk("cp", "vm/%s:/tmp/cp-dst" % S["A"], back, timeout=180)
    expect(r.rc == 0, "cp from the guest failed\n" + r.describe())
    with open(back, "rb") as f:
        expect(f.read() == data, "the file copied back differs")


@tap.check("wicket shell vm/A in tmux: stty size is the pane size, exit status comes back")
def _():
    need()
    if not shutil.which("tmux"):
        raise Skip("tmux is not installed")
    sock = os.path.join(S["tmp"], "tmux.sock")
    conf = os.path.join(S["tmp"], "tmux.conf")
    with open(conf, "w") as f:
        f.write("set -g status off\n")
    env = dict(os.environ)
    env.setdefault("TERM", "xterm")
    env.pop("TMUX", None)

    def tmux(*a):
        r = run(["tmux", "-S", sock, "-f", conf] + list(a), timeout=15, env=env)
        expect(r.rc == 0, "tmux %s failed\n%s" % (" ".join(a), r.describe()))
        return r
    tap.at_cleanup(lambda: run(["tmux", "-S", sock, "kill-server"], timeout=15, env=env))
    rcfile = os.path.join(S["tmp"], "shell.rc")
    cmd = "%s -c %s shell vm/%s; echo $? > %s.tmp && mv %s.tmp %s; exec sleep 600" % (
        shlex.quote(WICKET), shlex.quote(S["uri"]), shlex.quote(S["A"]),
        rcfile, rcfile, rcfile)
    tmux("new-session", "-d", "-s", "lv", "-x", "91", "-y", "33", cmd)
    last = [""]

    def seen(rx):
        def f():
            last[0] = tmux("capture-pane", "-p", "-J", "-t", "lv").out.decode("utf-8", "replace")
            return re.search(rx, last[0], re.M)
        try:
            wait_until(f, timeout=60, interval=0.2, what=rx)
        except Failure as e:
            raise Failure("%s\npane:\n%s" % (e, last[0].rstrip()[-1500:]))
    tmux("send-keys", "-t", "lv", "echo wkt''up", "Enter")
    seen(r"^wktup\s*$")
    tmux("send-keys", "-t", "lv", "stty size", "Enter")
    seen(r"^33 91\s*$")
    tmux("send-keys", "-t", "lv", "exit 4", "Enter")
    wait_until(lambda: os.path.exists(rcfile), timeout=30, what="wicket shell to exit")
    with open(rcfile) as f:
        expect_eq(f.read().strip(), "4", "wicket shell's exit status")


@tap.check("plink -ssh-connection -proxycmd 'wicket proxy vm/A' runs a command")
def _():
    need()
    if not shutil.which("plink"):
        raise Skip("plink is not installed (putty-tools)")
    proxy = "%s -c %s proxy vm/%s" % (shlex.quote(WICKET), shlex.quote(S["uri"]),
                                      shlex.quote(S["A"]))
    r = run(["plink", "-batch", "-ssh-connection", "-proxycmd", proxy, "x", "echo plink-ok"],
            timeout=60)
    expect_eq((r.rc, r.out), (0, b"plink-ok\n"), "plink's status and output")


@tap.check("wicket list shows A running with the channel, B without an agent channel")
def _():
    need()
    if "B" not in S:
        create_domain("B", channel=False)
    r = wk("list")
    expect(r.rc == 0, "wicket list failed\n" + r.describe())
    text = r.out.decode()
    la = [ln for ln in text.splitlines() if ln.split()[:1] == [S["A"]]]
    lb = [ln for ln in text.splitlines() if ln.split()[:1] == [S["B"]]]
    expect(la and re.search(r"\brunning\b.*channel org\.wicket\.agent\.0", la[0]),
           "no line for A with 'running' and the channel:\n" + text)
    expect(lb and "no agent channel" in lb[0], "no line for B with 'no agent channel':\n" + text)
    # LIBVIRT_DEFAULT_URI is used when there is no -c.
    env = dict(os.environ, LIBVIRT_DEFAULT_URI=S["uri"])
    r2 = run(wicket("list"), env=env, timeout=60)
    expect(r2.rc == 0 and S["A"].encode() in r2.out,
           "wicket list with LIBVIRT_DEFAULT_URI\n" + r2.describe())


@tap.check("vm/B without the channel: exit 255, one clear line with the channel XML")
def _():
    need()
    if "B" not in S:
        create_domain("B", channel=False)
    r = wk("exec", "vm/" + S["B"], "--", "true")
    expect_eq(r.rc, 255, "exit status")
    expect_eq(r.out, b"", "stdout")
    err = r.err.decode()
    expect(err.count("\n") == 1 and err.startswith("wicket: "), "not one line: %s" % show(err))
    expect(CHANNEL_XML in err, "the channel XML is not in %s" % show(err))
    say("error: " + err.strip())


@tap.check("unknown domain, defined-but-stopped domain, bad URI: exit 255, clear one-line errors")
def _():
    need()
    r = wk("exec", "vm/no-such-domain-%d" % os.getpid(), "--", "true")
    expect_eq(r.rc, 255, "status for an unknown domain")
    expect(b"no libvirt domain named" in r.err and r.err.count(b"\n") == 1,
           "unknown domain: %s" % show(r.err))
    # C: defined (persistent), never started.
    name = "wicket-it-%d-C" % os.getpid()
    path = os.path.join(S["tmp"], "C.xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, S["kernel"], S["initrd"], True, S["dtype"]))
    tap.at_cleanup(lambda: run(["virsh", "-c", S["uri"], "undefine", name], timeout=60))
    virsh("define", path)
    r = wk("exec", "vm/" + name, "--", "true")
    expect_eq(r.rc, 255, "status for a stopped domain")
    expect(b"is not running" in r.err and r.err.count(b"\n") == 1,
           "stopped domain: %s" % show(r.err))
    r = wk("list")
    ln = [x for x in r.out.decode().splitlines() if x.split()[:1] == [name]]
    expect(ln and "shut off" in ln[0] and "channel" in ln[0],
           "wicket list: no 'shut off' line with the channel for C:\n%s" % r.out.decode())
    bad = "qemu:///system?socket=%s/nothing-here" % S["tmp"]
    r = run(wicket("-c", bad, "exec", "vm/x", "--", "true"), timeout=60)
    expect_eq(r.rc, 255, "status for an unreachable URI")
    expect(b"cannot connect to libvirt at " + bad.encode() in r.err, "bad URI: %s" % show(r.err))


@tap.check("permission denied (an unprivileged user on the root-only socket): exit 255, says so")
def _():
    need()
    if not shutil.which("setpriv"):
        raise Skip("setpriv is not installed")
    # The binary must be reachable by nobody (not under a 0700 home).
    r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", WICKET, "--version"])
    if r.rc != 0:
        raise Skip("user nobody cannot run %s here" % WICKET)
    r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", WICKET,
             "-c", S["uri"], "exec", "vm/" + S["A"], "--", "true"], timeout=60)
    expect_eq(r.rc, 255, "status")
    expect(b"permission denied" in r.err.lower() and r.err.count(b"\n") == 1,
           "no clear permission error: %s" % show(r.err))


@tap.check("^C to wicket's whole process group (helper included) reaches the remote: 130")
def _():
    need()
    argv = wicket("-c", S["uri"], "exec", "-n", "vm/" + S["A"], "--", "sleep", "300")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
    time.sleep(2)
    if p.poll() is not None:
        raise Failure("exec ended early (%s): %s" % (p.returncode, show(p.stderr.read())))
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's ^C does
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure("wicket still runs 30 s after SIGINT")
    expect_eq(p.returncode, 128 + signal.SIGINT, "status (stderr %s)" % show(err))
    r = wk("exec", "vm/" + S["A"], "--", "echo", "still-here")
    expect_eq((r.rc, r.out), (0, b"still-here\n"), "the next exec")


@tap.check("vm/NAME with a vsock CID connects over AF_VSOCK")
def _():
    need()
    try:
        fd = os.open("/dev/vhost-vsock", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        raise Skip("no usable /dev/vhost-vsock here (%s): host<->guest vsock is impossible, "
                   "vm/NAME falls back to the channel" % e.strerror)
    name = "wicket-it-%d-D" % os.getpid()
    cid = 1000 + os.getpid() % 50000
    xml = domain_xml(name, S["kernel"], S["initrd"], False, S["dtype"]).replace(
        "quiet</cmdline>", "quiet wicket.vsock_hostonly=9022</cmdline>").replace(
        "<memballoon", "<vsock model='virtio'><cid auto='no' address='%d'/></vsock>\n"
        "    <memballoon" % cid)
    path = os.path.join(S["tmp"], "D.xml")
    with open(path, "w") as f:
        f.write(xml)
    tap.at_cleanup(lambda: (run(["virsh", "-c", S["uri"], "destroy", name], timeout=60),
                            kill_stray_qemu(name)))
    virsh("create", path, timeout=120)
    deadline = time.monotonic() + 240
    while True:
        r = wk("-v", "exec", "-n", "vm/" + name, "--", "echo", "over-vsock", timeout=60)
        if r.rc == 0:
            break
        if time.monotonic() > deadline:
            raise Failure("no answer over vsock CID %d\n%s\nconsole:\n%s"
                          % (cid, r.describe(), console(name)))
        time.sleep(1)
    expect_eq(r.out, b"over-vsock\n", "stdout")
    expect(b"over vsock CID %d" % cid in r.err, "not connected over vsock: %s" % show(r.err))


@tap.check("through libvirt's channel (--share no): a streaming holder and 8 impatient hosts "
           "that force the channel from one another; the next host is answered within 2 s")
def _():
    need()
    # Each virDomainOpenChannel(FORCE) aborts the stream before it, so the
    # agent sees a host cut off mid-packet, then greetings of hosts killed
    # by their timeouts, with or without a hang-up between them (issue 15).
    # The earlier checks' mux holds the channel (and --share no refuses to
    # abort it): these hosts are on their own.
    r = wk("mux", "stop", "vm/" + S["A"])
    expect_eq(r.rc, 0, "status of wicket mux stop\n" + r.describe())
    xs = wicket("-c", S["uri"], "--share", "no", "exec", "vm/" + S["A"], "--")
    rcs, t_free = impatient_behind_holder(xs, 8, lambda: console(S["A"], 2500),
                                          streaming=True, spacing=0.1)
    # Forced off (255), killed by its timeout (124) or served (0): all
    # are fair here; what matters is the host after them.
    expect(set(rcs) <= {0, 124, 255}, "clients' exit statuses %s" % rcs)
    say("impatient clients' exit statuses: %s" % rcs)
    dt = answered_after(xs, t_free, "back", lambda: console(S["A"], 2500))
    say("answered %.2f s after the last client ended" % dt)
    expect(dt < 2.0, "answered %.1f s after the channel was free\n%s"
           % (dt, console(S["A"], 2500)))


@tap.check("domain destroyed under a running exec: wicket ends (255) promptly, no helper left")
def _():
    need()
    argv = wicket("-c", S["uri"], "exec", "-n", "vm/" + S["A"], "--", "sleep", "300")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    tap.at_cleanup(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
    time.sleep(2)
    if p.poll() is not None:
        raise Failure("exec ended early (%s): %s" % (p.returncode, show(p.stderr.read())))
    virsh("destroy", S["A"])
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure("wicket still runs 30 s after the domain was destroyed")
    expect_eq(p.returncode, 255, "status (stderr %s)" % show(err))
    wait_until(lambda: not pids_with_argv(argv), timeout=5, what="the helper to exit")


TEST_NODE = """<node>
  <domain type='test'><name>vsock-only</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><vsock model='virtio'><cid auto='no' address='4242'/></vsock></devices></domain>
  <domain type='test'><name>both</name><memory>65536</memory><os><type>hvm</type></os>
    <devices>
      <channel type='unix'><source mode='bind' path='/nonexistent/x.sock'/>
        <target type='virtio' name='org.wicket.agent.0'/></channel>
      <vsock model='virtio'><cid auto='no' address='4243'/></vsock>
    </devices></domain>
  <domain type='test'><name>file-channel</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><channel type='file'><source path='/nonexistent/f'/>
      <target type='virtio' name='org.wicket.agent.0'/></channel></devices></domain>
  <domain type='test'><name>other-channel</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><channel type='unix'><source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>
</node>
"""


@tap.check("libvirt's test driver (no daemon): list and errors for vsock CIDs and channel types")
def _():
    why = no_libvirt_build()
    if why:
        raise Skip(why)
    node = os.path.join(tap.tmpdir(), "node.xml")
    with open(node, "w") as f:
        f.write(TEST_NODE)
    uri = "test://" + node
    r = run(wicket("-c", uri, "list"), timeout=30)
    expect(r.rc == 0, "list failed\n" + r.describe())
    # The domains' table only (running containers follow after a blank line).
    table = r.out.decode().split("\n\n")[0]
    rows = {ln.split()[0]: ln for ln in table.splitlines()[1:] if ln.strip()}
    expect_eq(sorted(rows), ["both", "file-channel", "other-channel", "vsock-only"], "domains")
    expect(rows["vsock-only"].endswith("vsock CID 4242"), "vsock-only: %r" % rows["vsock-only"])
    expect(rows["both"].endswith("vsock CID 4243, channel org.wicket.agent.0"),
           "both: %r" % rows["both"])
    expect(rows["other-channel"].endswith("no agent channel"),
           "other-channel: %r" % rows["other-channel"])

    def fails(name, *needles):
        res = run(wicket("-c", uri, "exec", "vm/" + name, "--", "true"), timeout=30)
        expect_eq(res.rc, 255, "status for vm/%s (stderr %s)" % (name, show(res.err)))
        expect(res.err.count(b"\n") == 1, "not one line: %s" % show(res.err))
        for n in needles:
            expect(n.encode() in res.err, "%r not in %s" % (n, show(res.err)))
    # No vsock transport to CID 4242 from here, and no channel: the XML to add.
    fails("vsock-only", "vsock CID 4242", CHANNEL_XML)
    fails("other-channel", CHANNEL_XML)
    fails("file-channel", "must be of type 'unix' or 'pty'", CHANNEL_XML)
    # vsock fails, so the channel is tried (the test driver cannot open one).
    fails("both", "cannot open channel org.wicket.agent.0")


if __name__ == "__main__":
    tap.main(setup)
