#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Run every benchmark in bench/ once and write bench/REPORT.md with plots.

    bench/report.py [--quick] [--only NAME,...] [--builddir DIR] [--out FILE]

Each bench_*.py runs as its own process (the same command lines as in
bench/README.md); its `BENCH-JSON` line gives the figures.  The report
has the date, the machine (CPU, cores, memory, kernel, load before and
after each bench), the git revision, per bench its targets (value, limit,
met or missed) and a plot of the contenders' medians, and one plot of every
target as a fraction of its limit.  Plots are PNG files next to the report
(bench/report/*.png), drawn with Debian's python3-matplotlib (this script
runs under /usr/bin/python3 for that reason).

A bench that exits 77 (a peer or prerequisite missing) is listed as skipped
with the reason it printed; one that fails is listed as failed with the
tail of its output.  Exit status: 0 when every bench that could run gave
figures (whether or not targets were met), 1 when one failed, 2 on usage.
--quick uses smaller sizes and fewer rounds (minutes instead of an hour);
the report says which was used.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)

# name, script, title, peer, full arguments, --quick arguments
BENCHES = [
    ("exec", "bench_exec.py", "exec round trip and throughput over unix/",
     "psusan + plink, a raw pipe", [], ["--size-mib", "64", "--rounds", "3", "--exec-rounds", "20"]),
    ("cp", "bench_cp.py", "wicket cp (sftp) over unix/", "cp, psftp + psusan, OpenSSH sftp",
     [], ["--size-mib", "128", "--rounds", "2"]),
    ("ssh", "bench_ssh.py", "the SSH wrapper (wicket proxy --ssh)", "OpenSSH sshd -i",
     [], ["--size-mib", "128", "--rounds", "2", "--connect-rounds", "8"]),
    ("vm", "bench_vm.py", "a TCG guest: wicket against qemu-guest-agent", "qemu-guest-agent",
     [], ["--size-mib", "32", "--rounds", "2", "--exec-rounds", "10"]),
    ("mux", "bench_mux.py", "the host-side mux", "--share no, psusan + plink",
     [], ["--size-mib", "64", "--rounds", "3", "--exec-rounds", "20", "--vm-rounds", "6"]),
    ("podman", "bench_podman.py", "podman/NAME containers", "podman exec, podman cp",
     [], ["--size-mib", "128", "--rounds", "3", "--exec-rounds", "10"]),
    ("slow", "bench_slow.py", "a simulated 115200-baud serial line", "the line rate",
     [], ["--rounds", "1", "--random-kib", "256", "--samples", "4"]),
]


def log(msg):
    print("report: " + msg, file=sys.stderr, flush=True)


def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def field(path, pattern):
    """Group 1 of @pattern's first match in the file @path, or ""."""
    try:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
    except OSError:
        return ""
    return m.group(1) if m else ""


def machine():
    kb = field("/proc/meminfo", r"MemTotal:\s+(\d+)")
    return {"cpu": field("/proc/cpuinfo", r"^model name\s*:\s*(.+)$"), "cores": os.cpu_count(),
            "memory": "%.1f GiB" % (int(kb) / 1024 / 1024) if kb else "",
            "kernel": platform.release(),
            "distribution": field("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)'),
            "revision": sh(["git", "-C", SRCDIR, "describe", "--always", "--dirty"])}


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def bench_json(out):
    """The bench's figures: its BENCH-JSON line, else a bare JSON line."""
    found = None
    for line in out.splitlines():
        s = line[len("BENCH-JSON "):] if line.startswith("BENCH-JSON ") else line
        if not s.startswith("{"):
            continue
        try:
            d = json.loads(s)
        except ValueError:
            continue
        if isinstance(d, dict):
            found = d
    return found


def targets_of(d):
    """{name: (value, op, limit, met)} whatever shape the bench used."""
    out = {}
    ts = d.get("targets") or {}
    for k, t in ts.items():
        if isinstance(t, (int, float)):  # bench_ssh: limit only, all "<="
            v = (d.get("ratios") or {}).get(k)
            out[k] = (v, "<=", t, None if v is None else v <= t)
            continue
        if "op" in t:
            op, lim = t["op"], t["limit"]
        elif "max" in t:
            op, lim = "<=", t["max"]
        else:
            op, lim = ">=", t.get("min")
        v = t.get("value")
        met = t.get("met")
        if met is None and v is not None and lim is not None:
            met = v <= lim if op == "<=" else v >= lim
        out[k] = (v, op, lim, met)
    return out


def median_of(x):
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, list) and x and all(isinstance(v, (int, float)) for v in x):
        return statistics.median(x)
    if isinstance(x, dict):
        for k in ("median_s", "median"):
            if isinstance(x.get(k), (int, float)):
                return float(x[k])
    return None


def groups_of(name, d):
    """Plot groups: [(title, unit, {contender: value})]."""
    g = []

    def flat(title, dd, unit="s", scale=1.0, samples_only=False):
        vals = {}
        for k, v in (dd or {}).items():
            if samples_only and not isinstance(v, (dict, list)):
                continue  # a setting of the run (boot time, memory), not a contender
            m = median_of(v)
            if m is not None:
                vals[k] = m * scale
        if vals:
            g.append((title, unit, vals))
    if name == "ssh":
        med = d.get("medians") or {}
        flat("throughput (%s MiB), time" % d.get("size_mib"),
             {k: v.get("throughput") for k, v in med.items()})
        flat("connect + true", {k: v.get("connect") for k, v in med.items()}, "ms", 1e3)
    elif name == "cp":
        for direction, dd in (d.get("throughput") or {}).items():
            flat("%s (%s MiB), time" % (direction, d.get("size_mib")), dd)
    elif name == "podman":
        flat("exec -- true", d.get("exec"), "ms", 1e3)
        flat("cp (%s MiB), time" % d.get("size_mib"), d.get("cp"))
    elif name == "slow":
        flat("copies, multiple of the line rate", d.get("x_line_rate"), "x")
        lat = d.get("latency_s") or {}
        for phase, dd in lat.items():
            if isinstance(dd, dict):
                flat("latency %s" % phase, dd)
    else:
        flat("round trip", d.get("roundtrip"), "ms", 1e3)
        flat("throughput (%s MiB), time" % d.get("size_mib"), d.get("throughput"))
        flat("bulk (%s MiB), time" % d.get("size_mib"), d.get("bulk"))
        vm = d.get("vm")
        if isinstance(vm, dict):
            flat("TCG guest exec -- true", vm.get("roundtrip") or vm, "ms", 1e3, True)
    return g


def plot_bench(plt, name, groups, path):
    n = len(groups)
    fig, axes = plt.subplots(n, 1, figsize=(8, 0.5 + sum(0.35 * len(v) + 0.8 for _, _, v in groups)),
                             squeeze=False)
    for ax, (title, unit, vals) in zip(axes[:, 0], groups):
        names = list(vals)
        ys = range(len(names))
        colors = ["#2b6cb0" if "wicket" in k or k.startswith(("warm", "mux", "text", "random"))
                  else "#a0aec0" for k in names]
        ax.barh(list(ys), [vals[k] for k in names], color=colors)
        ax.set_yticks(list(ys))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("median, %s" % unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_targets(plt, rows, path):
    """Every target as value / limit (time ratios: below 1 is met; for '>=' the inverse)."""
    labels, fr, colors = [], [], []
    for bench, k, v, op, lim, met in rows:
        if v is None or not lim:
            continue
        f = v / lim if op == "<=" else (lim / v if v else float("inf"))
        labels.append("%s: %s" % (bench, k))
        fr.append(min(f, 5.0))
        colors.append("#2f855a" if met else "#c53030")
    if not labels:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.3 * len(labels)))
    ax.barh(range(len(labels)), fr, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("value / limit (1 = exactly the target; left of the line is met; capped at 5)",
                  fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def fmt(v):
    if v is None:
        return "n/a"
    return "%.3g" % v if abs(v) < 100 else "%.0f" % v


def main(argv):
    p = argparse.ArgumentParser(description="Run every bench and write bench/REPORT.md.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    p.add_argument("--only", default="", help="comma-separated bench names (%s)"
                   % ",".join(b[0] for b in BENCHES))
    p.add_argument("--builddir", default=os.path.join(SRCDIR, "build"))
    p.add_argument("--out", default=os.path.join(HERE, "REPORT.md"))
    p.add_argument("--timeout", type=float, default=3600, help="per bench (default 3600 s)")
    p.add_argument("--render-only", action="store_true",
                   help="run nothing: write the report again from bench/report/results.json")
    a = p.parse_args(argv)
    only = set(x for x in a.only.split(",") if x)
    unknown = only - set(b[0] for b in BENCHES)
    if unknown:
        p.error("unknown bench %s (have %s)" % (", ".join(sorted(unknown)),
                                                 ", ".join(b[0] for b in BENCHES)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: needs Debian's python3-matplotlib (apt-get install python3-matplotlib)",
              file=sys.stderr)
        return 1
    outdir = os.path.dirname(os.path.abspath(a.out))
    plotdir = os.path.join(outdir, "report")
    os.makedirs(plotdir, exist_ok=True)
    saved = os.path.join(plotdir, "results.json")
    if a.render_only:
        try:
            with open(saved) as f:
                run = json.load(f)
        except (OSError, ValueError) as e:
            print("report: cannot read %s: %s" % (saved, e), file=sys.stderr)
            return 1
        return render(plt, a, run["started"], run["quick"], run["machine"], run["results"],
                      plotdir)
    wicket = os.path.join(a.builddir, "host-tool", "wicket")
    if not os.access(wicket, os.X_OK):
        print("report: no %s: build first (ninja -C %s)" % (wicket, a.builddir), file=sys.stderr)
        return 1
    env = dict(os.environ, WICKET=wicket, WICKETD=os.path.join(a.builddir, "agent", "wicketd"))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    results = []
    for name, script, title, peer, full, quick in BENCHES:
        if only and name not in only:
            continue
        extra = quick if a.quick else full
        if name in ("vm", "mux"):
            extra = ["--builddir", a.builddir] + extra
        argv = [sys.executable, os.path.join(HERE, script)] + extra
        l0 = load()
        t0 = time.monotonic()
        log("%s: %s" % (name, " ".join(argv[1:])))
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=a.timeout)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = -1, e.stdout or "", "timed out after %.0f s" % a.timeout
            out = out.decode() if isinstance(out, bytes) else out
        dt = time.monotonic() - t0
        d = bench_json(out) if rc == 0 else None
        state = "ok" if d else ("skipped" if rc == 77 else "failed")
        log("%s: %s in %.0f s" % (name, state, dt))
        results.append({"name": name, "title": title, "peer": peer, "argv": argv[1:],
                        "rc": rc, "state": state, "data": d, "seconds": dt,
                        "load": (l0, load()),
                        "tail": "\n".join((out + "\n" + err).strip().splitlines()[-12:])})
    mach = machine()
    with open(saved, "w") as f:
        json.dump({"started": started, "quick": a.quick, "machine": mach, "results": results},
                  f, indent=1, sort_keys=True)
    return render(plt, a, started, a.quick, mach, results, plotdir)


def render(plt, a, started, quick, mach, results, plotdir):
    lines = ["# wicket benchmark report", "",
             "Written by `bench/report.py%s` on %s UTC, all figures from that one run. "
             "Every bench alternates its contenders round by round and reports medians; "
             "see [README.md](README.md) for what each one measures and how." % (
                 " --quick" if quick else "", started), "",
             "Machine: %s, %s cores, %s, kernel %s, %s; guests run under TCG (the benches' "
             "default); wicket %s. This machine is shared (other jobs build and test beside "
             "it): the load average before and after each bench is given, and only ratios "
             "between contenders of the same run mean much." % (
                 mach["cpu"] or "unknown CPU", mach["cores"], mach["memory"], mach["kernel"],
                 mach["distribution"], mach["revision"]), ""]
    rows = []
    lines += ["| bench | what | against | state | time | load before / after |",
              "|---|---|---|---|---|---|"]
    for r in results:
        lines.append("| %s | %s | %s | %s | %.0f s | %.1f / %.1f |" % (
            r["name"], r["title"], r["peer"], r["state"], r["seconds"], r["load"][0],
            r["load"][1]))
    lines.append("")
    for r in results:
        if r["data"]:
            for k, (v, op, lim, met) in targets_of(r["data"]).items():
                rows.append((r["name"], k, v, op, lim, met))
    if plot_targets(plt, rows, os.path.join(plotdir, "targets.png")):
        lines += ["## Every target", "", "![targets](report/targets.png)", ""]
    for r in results:
        lines += ["## %s: %s" % (r["name"], r["title"]), "",
                  "`bench/%s`" % " ".join(os.path.basename(x) if x.endswith(".py") else x
                                          for x in r["argv"]), ""]
        if not r["data"]:
            lines += ["%s (exit %d):" % (r["state"], r["rc"]), "", "```",
                      r["tail"], "```", ""]
            continue
        ts = targets_of(r["data"])
        if ts:
            lines += ["| target | value | limit | |", "|---|---|---|---|"]
            for k, (v, op, lim, met) in ts.items():
                lines.append("| %s | %s | %s %s | %s |" % (
                    k, fmt(v), op, fmt(lim), "n/a" if met is None else "met" if met else
                    "**missed**"))
            lines.append("")
        groups = groups_of(r["name"], r["data"])
        if groups:
            png = "%s.png" % r["name"]
            plot_bench(plt, r["name"], groups, os.path.join(plotdir, png))
            lines += ["![%s](report/%s)" % (r["name"], png), ""]
            for title, unit, vals in groups:
                lines.append("- %s: %s" % (title, ", ".join(
                    "%s %s %s" % (k, fmt(v), unit) for k, v in vals.items())))
            lines.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    log("wrote %s and %s/" % (a.out, plotdir))
    return 1 if any(r["state"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
