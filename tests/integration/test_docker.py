#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""docker/NAME (transports/docker.c) against a real dockerd: the test's own
(data root, exec root, socket in a temporary directory; cgroupfs, no
iptables, no bridge) unless one already answers.  The image holds one
static program and a data file: no shell, no tar, no wicketd; the container
runs read-only, without network, with a tmpfs and a volume.  A second image
has a wicketd of its own, reached with `docker exec -i`.  Skips with the
reason when dockerd cannot run here."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctrlib import (DATA, PASSWD_MARK, build_probe, check, expect_confined_like,  # noqa: E402
                    find_pid, guarded, make_rootfs, popen_wicket, sha256, static_agent,
                    status)
from taplib import (Failure, Skip, expect, expect_eq, run, tap, wait_until,  # noqa: E402
                    wicket)

S = {}
TAG = "wicket-it-%d" % os.getpid()
DIRECT = None  # set in setup: the environment with WICKET_SHARE=no


def docker(*args, timeout=120, input=None, env=None, check=True):
    r = run(["docker"] + list(args), timeout=timeout, input=input, env=env)
    if check and r.rc != 0:
        raise Failure("docker %s failed\n%s" % (" ".join(args), r.describe()))
    return r


def daemon_answers():
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20).rc == 0
    except Failure:
        return False


def start_dockerd():
    """Our own dockerd; its socket becomes DOCKER_HOST."""
    if not shutil.which("dockerd"):
        raise Skip("dockerd is not installed (Debian: docker.io)")
    d = tempfile.mkdtemp(prefix="wdk-", dir="/tmp")  # short: a socket path
    sock = os.path.join(d, "docker.sock")
    log = open(os.path.join(d, "dockerd.log"), "wb")
    argv = ["dockerd", "--data-root", os.path.join(d, "data"), "--exec-root",
            os.path.join(d, "exec"), "--pidfile", os.path.join(d, "docker.pid"),
            "-H", "unix://" + sock, "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--exec-opt", "native.cgroupdriver=cgroupfs", "--containerd-namespace", TAG,
            "--containerd-plugins-namespace", TAG + "-plugins", "--userland-proxy=false"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)

    def stop():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()
        # Whatever it left mounted under its directories.
        with open("/proc/self/mountinfo") as f:
            mps = [ln.split()[4] for ln in f if ln.split()[4].startswith(d + "/")]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.call(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)
    tap.at_cleanup(stop)
    os.environ["DOCKER_HOST"] = "unix://" + sock
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        if os.path.exists(sock) and daemon_answers():
            S["sock"] = sock
            return
        time.sleep(0.5)
    with open(os.path.join(d, "dockerd.log"), "rb") as f:
        tail = f.read()[-600:].decode(errors="replace")
    raise Skip("dockerd cannot run here: %s" % " | ".join(tail.splitlines()[-3:]))


def setup():
    global DIRECT
    if not shutil.which("docker"):
        raise Skip("the docker CLI is not installed (Debian: docker.io)")
    S["tmp"] = tap.tmpdir("wicket-docker-it-")
    os.chmod(S["tmp"], 0o755)
    os.environ["DOCKER_CONFIG"] = os.path.join(S["tmp"], "docker-config")
    os.makedirs(os.environ["DOCKER_CONFIG"])
    if not daemon_answers():  # none runs (DOCKER_HOST, context or default)
        os.environ.pop("DOCKER_HOST", None)
        os.environ.pop("DOCKER_CONTEXT", None)
        start_dockerd()
    DIRECT = dict(os.environ, WICKET_SHARE="no")
    S["agent"] = static_agent()
    probe = build_probe(S["tmp"])
    images = []
    for name, extra in (("probe", ()), ("own", ((S["agent"], "/usr/bin/wicketd"),))):
        root = os.path.join(S["tmp"], "root-" + name)
        make_rootfs(root, probe, extra)
        tar = subprocess.run(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE,
                             check=True).stdout
        img = "%s-%s:1" % (TAG, name)
        docker("import", "-", img, input=tar)
        images.append(img)
    S["img"], S["img_own"] = images
    S["vol"] = TAG + "-vol"
    docker("volume", "create", S["vol"])

    def cleanup():
        r = run(["docker", "ps", "-aq", "--filter", "name=" + TAG], timeout=60)
        ids = r.out.split()
        if ids:
            run(["docker", "rm", "-f"] + [i.decode() for i in ids], timeout=120)
        run(["docker", "volume", "rm", "-f", S["vol"]], timeout=60)
        run(["docker", "rmi", "-f"] + images, timeout=60)
    tap.at_cleanup(cleanup)
    S["c1"] = container("c1", volume=True)
    S["c2"] = container("c2", image=S["img_own"])


def container(name, image=None, volume=False):
    full = "%s-%s" % (TAG, name)
    args = ["run", "-d", "--name", full, "--read-only", "--network", "none", "--tmpfs", "/tmp"]
    if volume:
        args += ["-v", S["vol"] + ":/vol"]
    docker(*(args + [image or S["img"], "/probe", "sleep", "100000"]))
    return full


def init_pid(c):
    return int(docker("inspect", "--format", "{{.State.Pid}}", c).out)


def px(c, *args, env="direct", timeout=120, input=None):
    return run(wicket("exec", "docker/" + c, "--", "/probe", *args),
               env=DIRECT if env == "direct" else env, timeout=timeout, input=input)


def top(c, field="args"):
    """The commands (or their comm) running in container @c (docker top)."""
    r = docker("top", c, "-o", "pid," + field)
    return [ln.split(None, 1)[1].strip() for ln in r.out.decode().splitlines()[1:]]


def only_its_own(c):
    wait_until(lambda: top(c) == ["/probe sleep 100000"], timeout=20,
               what="docker top %s to show only its own process (%r)" % (c, top(c)))


@check("exact argv, exit status, 128+N for a signal, stderr apart, stdin, 127 with "
           "a reason: in a container with no shell and no wicketd")
def _():
    c = S["c1"]
    r = px(c, "argv", "a b", "", "*", "$HOME", "--x")
    expect_eq((r.rc, r.out, r.err), (0, b"[a b]\n[]\n[*]\n[$HOME]\n[--x]\n", b""),
              "argv\n" + r.describe())
    expect_eq(px(c, "exit", "9").rc, 9, "exit status")
    r = px(c, "kill", "15")
    expect_eq(r.rc, 143, "signal\n" + r.describe())
    r = px(c, "err")
    expect_eq((r.rc, r.out, r.err), (0, b"out\n", b"err\n"), "stderr apart\n" + r.describe())
    r = px(c, "stdin", input=b"through stdin\n")
    expect_eq(r.out, b"through stdin\n", "stdin\n" + r.describe())
    r = run(wicket("exec", "docker/" + c, "--", "sh", "-c", "true"), env=DIRECT)
    expect(r.rc == 127 and b"'sh'" in r.err, "no shell inside: 127\n" + r.describe())
    only_its_own(c)


@check("--tools: the host's static busybox in the container with no shell (ls, sh, ps), "
       "nothing of it left there (docker diff, docker top)")
def _():
    if not os.path.exists("/bin/busybox"):
        raise Skip("busybox-static is not installed")
    c = S["c1"]
    before = docker("diff", c).out
    r = run(wicket("exec", "--tools", "docker/" + c, "--", "ls", "/"), env=DIRECT, timeout=120)
    names = r.out.split()
    expect(r.rc == 0 and b"probe" in names and b"bin" not in names, "ls /\n" + r.describe())
    r = run(wicket("exec", "--tools", "docker/" + c, "--", "sh", "-c", "echo $((6*7)); ps"),
            env=DIRECT, timeout=120)
    expect(r.rc == 0 and r.out.startswith(b"42\n") and b"/probe sleep 100000" in r.out,
           "sh and ps\n" + r.describe())
    only_its_own(c)
    expect_eq(docker("diff", c).out, before, "docker diff")


@check("the brought-in agent and its session: the container's namespaces, root, "
           "cgroups, uid and capabilities, no_new_privs; the agent runs from a memfd")
def _():
    c = S["c1"]
    p = popen_wicket(wicket("exec", "docker/" + c, "--", "/probe", "sleep", "60", "conf"),
                     env=DIRECT)
    sess = find_pid(["/probe", "sleep", "60", "conf"])
    target = init_pid(c)
    expect_confined_like(sess, target, "session")
    agent = int(status(sess)["PPid"])
    expect_confined_like(agent, target, "agent")
    exe = os.readlink("/proc/%d/exe" % agent)
    expect(exe.startswith("/memfd:"), "agent runs %r" % exe)
    cid = docker("inspect", "--format", "{{.Id}}", c).out.decode().strip()
    with open("/proc/%d/cgroup" % sess) as f:
        expect(cid in f.read(), "the session is not in the container's cgroup")
    os.kill(sess, signal.SIGKILL)
    p.communicate(timeout=30)
    expect_eq(p.returncode, 128 + signal.SIGKILL, "killed session's status")
    only_its_own(c)


@check("wicket cp both ways to its tmpfs and its volume; docker diff unchanged; "
           "nothing of ours left (docker top)")
def _():
    c = S["c1"]
    before = docker("diff", c).out
    data = os.urandom(2 << 20)
    src = os.path.join(S["tmp"], "up.bin")
    with open(src, "wb") as f:
        f.write(data)
    for d in ("/tmp", "/vol"):
        r = run(wicket("cp", src, "docker/%s:%s/up.bin" % (c, d)), env=DIRECT, timeout=120)
        expect_eq(r.rc, 0, "upload to %s\n%s" % (d, r.describe()))
        expect(px(c, "cat", d + "/up.bin").out == data, "%s/up.bin differs inside" % d)
        dst = os.path.join(S["tmp"], "down.bin")
        r = run(wicket("cp", "docker/%s:%s/up.bin" % (c, d), dst), env=DIRECT, timeout=120)
        expect_eq(r.rc, 0, "download from %s\n%s" % (d, r.describe()))
        with open(dst, "rb") as f:
            expect(f.read() == data, "download from %s differs" % d)
    r = run(wicket("cp", "docker/%s:/data.txt" % c, os.path.join(S["tmp"], "data")),
            env=DIRECT)
    expect_eq(r.rc, 0, "download /data.txt\n" + r.describe())
    with open(os.path.join(S["tmp"], "data"), "rb") as f:
        expect_eq(f.read(), DATA, "its data file")
    r = run(wicket("cp", src, "docker/%s:/up.bin" % c), env=DIRECT)
    expect(r.rc != 0 and b"Read-only" in r.err, "upload to its read-only root\n" + r.describe())
    expect_eq(docker("diff", c).out, before, "docker diff")
    only_its_own(c)


@check("through the mux (the default): exec and cp share one brought-in agent; "
           "mux stop leaves nothing behind")
def _():
    c = S["c1"]
    t = "docker/" + c
    tap.at_cleanup(lambda: run(wicket("mux", "stop", t)))
    r = run(wicket("exec", t, "--", "/probe", "argv", "muxed"), timeout=120)
    expect_eq((r.rc, r.out), (0, b"[muxed]\n"), "exec\n" + r.describe())
    r = run(wicket("cp", t + ":/data.txt", os.path.join(S["tmp"], "m")), timeout=120)
    expect_eq(r.rc, 0, "cp\n" + r.describe())
    agents = [a for a in top(c, "comm") if "wicketd" in a and "worker" not in a]
    expect_eq(len(agents), 1, "agents in the container (%r)" % top(c, "comm"))
    r = run(wicket("mux", "stop", t))
    expect_eq(r.rc, 0, "mux stop\n" + r.describe())
    only_its_own(c)


@check("a container with its own wicketd is reached with docker exec -i (its binary "
           "runs, nothing brought in)")
def _():
    c = S["c2"]
    r = px(c, "argv", "own agent", "")
    expect_eq((r.rc, r.out), (0, b"[own agent]\n[]\n"), "exec\n" + r.describe())
    p = popen_wicket(wicket("exec", "docker/" + c, "--", "/probe", "sleep", "60", "own"),
                     env=DIRECT)
    sess = find_pid(["/probe", "sleep", "60", "own"])
    agent = int(status(sess)["PPid"])
    exe = os.readlink("/proc/%d/exe" % agent)
    expect(exe.endswith("/usr/bin/wicketd"), "the agent runs %r, not its own wicketd" % exe)
    os.kill(sess, signal.SIGKILL)
    p.communicate(timeout=30)
    dst = os.path.join(S["tmp"], "own-data")
    r = run(wicket("cp", "docker/%s:/data.txt" % c, dst), env=DIRECT, timeout=120)
    expect_eq(r.rc, 0, "cp\n" + r.describe())
    only_its_own(c)


@check("the container stopping mid-session: 255 and the reason (brought-in agent and "
           "its own); afterwards 'not running'")
def _():
    for name, image in (("stop1", None), ("stop2", S["img_own"])):
        c = container(name, image=image)
        px(c, "argv", "warm")
        p = popen_wicket(wicket("exec", "docker/" + c, "--", "/probe", "sleep", "100", name),
                         env=DIRECT)
        find_pid(["/probe", "sleep", "100", name])
        docker("kill", c)
        out, err = p.communicate(timeout=60)
        expect(p.returncode == 255 and b"the container stopped" in err,
               "%s: rc %s, stderr %r" % (name, p.returncode, err))
        r = px(c, "argv", "x")
        expect(r.rc == 255 and r.err == b"wicket: docker/%s: the container is not running\n"
               % c.encode(),
               "stopped container\n" + r.describe())


@check("errors, one line and 255: no such container, daemon unreachable, docker not "
           "installed, not a name; DOCKER_CONTEXT is honoured")
def _():
    cases = [
        ("docker/%s-nope" % TAG, DIRECT, b"no such container"),
        ("docker/" + S["c1"], dict(DIRECT, DOCKER_HOST="unix:///nonexistent/docker.sock"),
         b"the docker daemon is unreachable"),
        ("docker/" + S["c1"], dict(DIRECT, PATH="/nonexistent"), b"docker is not installed"),
        ("docker/-rm", DIRECT, b"not a docker container name"),
    ]
    for t, env, want in cases:
        r = run(wicket("exec", t, "--", "/probe", "argv"), env=env)
        expect(r.rc == 255 and want in r.err and r.err.count(b"\n") == 1,
               "%s: expected 255 and %r\n%s" % (t, want, r.describe()))
    host = os.environ.get("DOCKER_HOST")
    if not host:
        raise Skip("the daemon in use is the default one: no context to make")
    docker("context", "create", TAG, "--docker", "host=" + host)
    env = dict(DIRECT, DOCKER_CONTEXT=TAG)
    env.pop("DOCKER_HOST")
    r = run(wicket("exec", "docker/" + S["c1"], "--", "/probe", "argv", "ctx"), env=env,
            timeout=120)
    expect_eq((r.rc, r.out), (0, b"[ctx]\n"), "through a context\n" + r.describe())


@check("hostile container: symlinks in cp resolve inside it (its own /etc/passwd), an "
           "upload through a link to a host path stays inside, the agent's /proc/PID/exe "
           "cannot be written, no host fd inside")
def _():
    c = S["c1"]
    t = "docker/" + c
    victim = os.path.join(S["tmp"], "victim")
    with open(victim, "w") as f:
        f.write("original")
    for tgt, link in (("/etc/passwd", "/tmp/l1"), ("../../../../../../etc/shadow", "/tmp/l2"),
                      (victim, "/tmp/l3"), ("/proc/1/root", "/tmp/l4")):
        r = px(c, "symlink", tgt, link)
        expect_eq(r.rc, 0, "symlink\n" + r.describe())
    dst = os.path.join(S["tmp"], "got")
    for src in ("/tmp/l1", "/tmp/l4/etc/passwd"):
        r = run(wicket("cp", t + ":" + src, dst), env=DIRECT)
        expect_eq(r.rc, 0, "download %s\n%s" % (src, r.describe()))
        with open(dst) as f:
            expect(PASSWD_MARK in f.read(), "%s is not the container's passwd" % src)
        os.unlink(dst)
    r = run(wicket("cp", t + ":/tmp/l2", dst), env=DIRECT)
    expect(r.rc != 0 and not os.path.exists(dst), "host /etc/shadow\n" + r.describe())
    up = os.path.join(S["tmp"], "evil")
    with open(up, "w") as f:
        f.write("evil")
    run(wicket("cp", up, t + ":/tmp/l3"), env=DIRECT)
    with open(victim) as f:
        expect_eq(f.read(), "original", "the host file behind /tmp/l3")
    before = sha256(S["agent"])
    p = popen_wicket(wicket("exec", t, "--", "/probe", "sleep", "60", "exe"), env=DIRECT)
    sess = find_pid(["/probe", "sleep", "60", "exe"])
    inside = status(int(status(sess)["PPid"]))["NSpid"].split()[-1]
    r = px(c, "exe", inside)
    expect(r.out.startswith(b"/memfd:"), "agent %s runs %r" % (inside, r.out))
    r = px(c, "openw", "/proc/%s/exe" % inside)
    expect(r.out.startswith(b"error "), "its exe opened for writing: %r" % r.out)
    os.kill(sess, signal.SIGKILL)
    p.communicate(timeout=30)
    expect_eq(sha256(S["agent"]), before, "wicketd-static on the host changed")
    secret = os.path.join(S["tmp"], "host-secret-fd")
    with open(secret, "w") as f:
        f.write("secret")
    fd = os.open(secret, os.O_RDONLY)
    try:
        p = popen_wicket(wicket("exec", t, "--", "/probe", "allfds"), env=DIRECT,
                         pass_fds=(fd,))
        out, err = p.communicate(timeout=60)
    finally:
        os.close(fd)
    bad = [ln for ln in out.decode().splitlines()
           if "host-secret" in ln or S["tmp"] in ln or "/dev/pts" in ln]
    expect(p.returncode == 0 and out and not bad, "host fds inside: %r %r" % (bad, err))
    only_its_own(c)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("1..0 # SKIP the docker tests run as root (they start a dockerd)")
        sys.exit(0)
    tap.main(guarded(setup))
