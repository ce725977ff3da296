#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark the full-SSH wrapper against OpenSSH's own server.

Both contenders are reached by the same OpenSSH `ssh` client through a
ProxyCommand, on the same cipher, in the same run, alternating every round:

  a) ProxyCommand `wicket proxy --ssh unix/S`  (wicketd --listen unix/S behind)
  b) ProxyCommand `sshd -i -f CONFIG`           (OpenSSH's server on stdio)

  throughput  ssh HOST 'cat FILE' > /dev/null   (FILE: --size-mib, default 512)
  connect     ssh HOST true

Reports medians and the ratios wicket/sshd against the targets (throughput
time ≤ 1.0× sshd's, connect+exec time ≤ 0.5× sshd's).  Exit 0 when the
measurement worked (targets met or not), 1 when something broke, 77 when
sshd (Debian openssh-server) is missing.  Standard library only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"throughput_wicket_vs_sshd": 1.0, "connect_wicket_vs_sshd": 0.5}
MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("bench-ssh: " + msg, file=sys.stderr, flush=True)


def default_binary(env, rel):
    v = os.environ.get(env)
    if v:
        return v
    return os.path.join(os.environ.get("WICKET_BUILDDIR", os.path.join(HERE, "..", "build")), rel)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wicket", default=default_binary("WICKET", "host-tool/wicket"))
    p.add_argument("--wicketd", default=default_binary("WICKETD", "agent/wicketd"))
    p.add_argument("--sshd", default=shutil.which("sshd") or "/usr/sbin/sshd")
    p.add_argument("--size-mib", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connect-rounds", type=int, default=15)
    p.add_argument("--cipher", default="chacha20-poly1305@openssh.com")
    a = p.parse_args()
    if not os.access(a.sshd, os.X_OK) or not shutil.which("ssh"):
        log("sshd or ssh not installed (Debian openssh-server, openssh-client): skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="wicket-bench-ssh-")
    agent = None
    try:
        sock = os.path.join(tmp, "agent.sock")
        agent = subprocess.Popen([a.wicketd, "--listen", "unix/" + sock, "--quiet"],
                                 stdin=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        for k in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(tmp, k)], check=True)
        shutil.copy(os.path.join(tmp, "user.pub"), os.path.join(tmp, "authorized_keys"))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True) if os.geteuid() == 0 else None
        with open(os.path.join(tmp, "sshd_config"), "w") as f:
            f.write("HostKey %s/host\nAuthorizedKeysFile %s/authorized_keys\nUsePAM no\n"
                    "StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n"
                    "LogLevel ERROR\nPrintMotd no\nPrintLastLog no\n" % (tmp, tmp))
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
        common = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=error",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "IdentitiesOnly=yes", "-i", os.path.join(tmp, "user"), "-c", a.cipher]
        contenders = {
            "wicket": common + ["-o", "ProxyCommand=%s proxy --ssh unix/%s" % (a.wicket, sock), "x"],
            "sshd": common + ["-o", "ProxyCommand=%s -i -f %s/sshd_config" % (a.sshd, tmp), "x"],
        }
        data = os.path.join(tmp, "data")
        with open(data, "wb") as f:
            chunk = os.urandom(MIB)
            for _ in range(a.size_mib):
                f.write(chunk)
        for name, argv in contenders.items():
            r = subprocess.run(argv + ["echo ready"], capture_output=True, env=env, timeout=60)
            if r.stdout != b"ready\n":
                log("%s does not work: %r" % (name, r.stderr[-500:]))
                return 1
        res = {k: {"throughput": [], "connect": []} for k in contenders}
        for rnd in range(a.rounds):
            for name, argv in (list(contenders.items()) if rnd % 2 == 0
                               else list(reversed(list(contenders.items())))):
                t0 = time.monotonic()
                with open(os.devnull, "wb") as null:
                    r = subprocess.run(argv + ["cat " + data], stdout=null, env=env, timeout=600)
                dt = time.monotonic() - t0
                if r.returncode:
                    log("%s: cat failed (%d)" % (name, r.returncode))
                    return 1
                res[name]["throughput"].append(dt)
                log("round %d %s: %.0f MiB/s" % (rnd + 1, name, a.size_mib / dt))
        for rnd in range(a.connect_rounds):
            for name, argv in contenders.items():
                t0 = time.monotonic()
                r = subprocess.run(argv + ["true"], env=env, timeout=60)
                res[name]["connect"].append(time.monotonic() - t0)
                if r.returncode:
                    log("%s: connect+true failed" % name)
                    return 1
        med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in res.items()}
        ratios = {
            "throughput_wicket_vs_sshd": med["wicket"]["throughput"] / med["sshd"]["throughput"],
            "connect_wicket_vs_sshd": med["wicket"]["connect"] / med["sshd"]["connect"],
        }
        for k in contenders:
            print("%-7s %s: %7.1f MiB/s  connect+true %6.1f ms" % (
                k, a.cipher, a.size_mib / med[k]["throughput"], 1000 * med[k]["connect"]))
        for k, v in ratios.items():
            print("%-28s %.2f (target <= %.2f) %s" % (k, v, TARGETS[k],
                                                       "met" if v <= TARGETS[k] else "MISSED"))
        print(json.dumps({"cipher": a.cipher, "size_mib": a.size_mib, "medians": med,
                          "ratios": ratios, "targets": TARGETS}))
        return 0
    finally:
        if agent:
            agent.terminate()
            agent.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
