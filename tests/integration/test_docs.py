#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Man pages, --help and bash completion.

- Every page in doc/man passes `mandoc -T lint -W warning` (skips when
  mandoc is missing).
- Each page's option list equals what its program's --help prints: names
  and whether an argument follows.  wicket(1) per command: the GLOBAL
  OPTIONS section against `wicket --help`, each `.Ss CMD` against `wicket
  CMD --help`, and the commands themselves against `wicket --help`'s list.
  wicketd.conf(5)'s keys against the keys wicketd accepts.  A check proves
  the comparison notices an option on one side only.
- `wicket CMD --help` and `-h` exit 0 for every command; usage errors keep
  their exit codes (wicket 255, wicketd and wicket-sftp-server 2,
  wicket-auth-plugin 64).
- completion/wicket.bash driven as bash drives it (COMP_LINE, COMP_POINT,
  COMP_WORDS split at ':'): commands, options per command, targets, pid/
  and unix/ paths, remote paths of `wicket cp TARGET:PATH` from a real
  wicketd on a Unix socket (hostile names left out), and vm/ names from a
  real libvirtd of this test's own (tests/integration/test_libvirt.py's).
- completion/wicket.fish (which asks the bash one) through fish's own
  `complete -C`, and completion/_wicket (zsh; also asks the bash one) in an
  interactive zsh under compinit on a zpty (each skips when its shell is
  missing)."""

import json
import os
import re
import shlex
import shutil
import stat
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from taplib import (BUILDDIR, SRCDIR, WICKET, WICKETD, Agent, Failure, Skip,  # noqa: E402
                    expect, expect_eq, run, tap)

MAN = os.path.join(SRCDIR, "doc", "man")
COMPLETION = os.path.join(SRCDIR, "completion", "wicket.bash")
SFTP_SERVER = os.path.join(BUILDDIR, "agent", "wicket-sftp-server")
AUTH_PLUGIN = os.path.join(BUILDDIR, "host-tool", "wicket-auth-plugin")
PAGES = ["wicket.1", "wicket-auth-plugin.1", "wicketd.conf.5", "wicketd.8",
         "wicket-sftp-server.8"]
S = {}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- parsing

OPT_LINE = re.compile(r"^ {2,6}(-.*)$")
OPT_NAME = re.compile(r"^(-[-A-Za-z0-9]+)(.*)$")


def help_options(text, section=None):
    """{name: takes_argument} from the option lines of a --help text: lines
    indented 2 to 6 spaces starting with '-'; names separated by ', '; an
    argument when one space and a word follow the last name.  @section: only
    the lines after the header line starting with it, up to a blank line."""
    lines = text.splitlines()
    if section is not None:
        starts = [i for i, l in enumerate(lines) if l.startswith(section)]
        if not starts:
            raise Failure("no section %r in:\n%s" % (section, text))
        lines = lines[starts[0] + 1:]
        if "" in lines:
            lines = lines[:lines.index("")]
    opts = {}
    for line in lines:
        m = OPT_LINE.match(line)
        if not m:
            continue
        rest, names = m.group(1), []
        while True:
            n = OPT_NAME.match(rest)
            if not n:
                break
            names.append(n.group(1))
            rest = n.group(2)
            if not rest.startswith(", -"):
                break
            rest = rest[2:]
        takes = bool(re.match(r"^ \S", rest))
        for n in names:
            if n in opts:
                raise Failure("option %s listed twice in --help" % n)
            opts[n] = takes
    return opts


def mdoc_part(text, sh, ss=None):
    """The lines of section .Sh @sh (and subsection .Ss @ss inside it)."""
    out, in_sh, in_ss = [], False, ss is None
    for line in text.splitlines():
        if line.startswith(".Sh "):
            in_sh = line[4:].strip() == sh
            in_ss = ss is None
            continue
        if ss is not None and line.startswith(".Ss "):
            in_ss = line[4:].strip() == ss
            continue
        if in_sh and in_ss:
            out.append(line)
    if not out:
        raise Failure("no section %s%s in the page" % (sh, " / " + ss if ss else ""))
    return out


def mdoc_options(lines):
    """{name: takes_argument} from the .It lines of the outermost .Bl lists:
    each `Fl NAME` there is an option, with an argument when a token other
    than ',' follows it."""
    opts, depth = {}, 0
    for line in lines:
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        elif line.startswith(".It") and depth == 1:
            toks = line.split()[1:]
            for k, t in enumerate(toks):
                if t != "Fl" or k + 1 >= len(toks):
                    continue
                name = "-" + toks[k + 1].replace("\\-", "-")
                nxt = toks[k + 2] if k + 2 < len(toks) else ","
                if name in opts:
                    raise Failure("option %s listed twice in the page" % name)
                opts[name] = nxt != ","
    return opts


def mdoc_subsections(lines):
    return [l[4:].strip() for l in lines if l.startswith(".Ss ")]


def diff(page, helptext, what):
    """Failure text when the two option maps differ, else None."""
    bad = []
    for n in sorted(set(page) | set(helptext)):
        if n not in page:
            bad.append("%s: %s is in --help but not in the man page" % (what, n))
        elif n not in helptext:
            bad.append("%s: %s is in the man page but not in --help" % (what, n))
        elif page[n] != helptext[n]:
            bad.append("%s: %s takes an argument in %s only" %
                       (what, n, "the man page" if page[n] else "--help"))
    return "\n".join(bad) or None


def help_of(argv):
    r = run(argv + ["--help"], timeout=10)
    expect(r.rc == 0 and r.out and not r.err, "--help\n" + r.describe())
    return r.out.decode()


def wicket_commands():
    """The command words `wicket --help` lists."""
    text = help_of([WICKET])
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("Commands"))
    cmds = []
    for l in lines[i + 1:]:
        if not l.strip():
            break
        cmds.append(l.split()[0])
    return cmds


# ---------------------------------------------------------------- man pages


@tap.check("mandoc -T lint -W warning: every man page is clean")
def _():
    mandoc = shutil.which("mandoc")
    if not mandoc:
        raise Skip("mandoc is not installed (Debian package mandoc)")
    for p in PAGES:
        r = run([mandoc, "-T", "lint", "-W", "warning", os.path.join(MAN, p)], timeout=30)
        expect(r.rc == 0 and not r.out and not r.err, "%s\n%s" % (p, r.describe()))


@tap.check("wicket(1) GLOBAL OPTIONS = wicket --help's global options")
def _():
    page = mdoc_options(mdoc_part(read(os.path.join(MAN, "wicket.1")), "GLOBAL OPTIONS"))
    helped = help_options(help_of([WICKET]), "Global options")
    expect(len(helped) > 10, "few global options parsed: %r" % helped)
    d = diff(page, helped, "global options")
    expect(d is None, d)


@tap.check("wicket(1) COMMANDS: one .Ss per command of wicket --help, options = CMD --help's")
def _():
    text = read(os.path.join(MAN, "wicket.1"))
    cmds = wicket_commands()
    expect_eq(sorted(mdoc_subsections(mdoc_part(text, "COMMANDS"))), sorted(cmds),
              "commands in the man page vs wicket --help")
    bad, total = [], 0
    for c in cmds:
        page = mdoc_options(mdoc_part(text, "COMMANDS", c))
        htext = help_of([WICKET, c])
        helped = help_options(htext, "Options") if "\nOptions" in htext else {}
        total += len(helped)
        d = diff(page, helped, "wicket " + c)
        if d:
            bad.append(d)
    expect(not bad, "\n".join(bad))
    expect(total > 25, "only %d command options parsed" % total)


@tap.check("wicketd(8), wicket-sftp-server(8), wicket-auth-plugin(1): OPTIONS = --help")
def _():
    bad = []
    for page, prog in (("wicketd.8", WICKETD), ("wicket-sftp-server.8", SFTP_SERVER),
                       ("wicket-auth-plugin.1", AUTH_PLUGIN)):
        if not os.access(prog, os.X_OK):
            raise Failure("%s is not built" % prog)
        p = mdoc_options(mdoc_part(read(os.path.join(MAN, page)), "OPTIONS"))
        h = help_options(help_of([prog]))
        expect(len(h) >= 3, "%s: few options parsed from --help: %r" % (prog, h))
        d = diff(p, h, page)
        if d:
            bad.append(d)
    expect(not bad, "\n".join(bad))


@tap.check("the comparison notices an option added on one side only")
def _():
    text = read(os.path.join(MAN, "wicket.1"))
    htext = help_of([WICKET, "exec"])
    page = mdoc_options(mdoc_part(text, "COMMANDS", "exec"))
    helped = help_options(htext, "Options")
    expect(diff(page, helped, "exec") is None, "exec differs already")
    more_page = text.replace(".Ss exec\n", ".Ss exec\n.Bl -tag -width Ds\n.It Fl \\-bogus\n"
                             "x\n.El\n", 1)
    d = diff(mdoc_options(mdoc_part(more_page, "COMMANDS", "exec")), helped, "exec")
    expect(d and "--bogus is in the man page but not in --help" in d, "page side: %r" % d)
    more_help = htext.replace("Options:\n", "Options:\n  --bogus N     x\n", 1)
    d = diff(page, help_options(more_help, "Options"), "exec")
    expect(d and "--bogus is in --help but not in the man page" in d, "help side: %r" % d)
    argless = htext.replace("  -e CHAR|none  ", "  -e            ", 1)
    d = diff(page, help_options(argless, "Options"), "exec")
    expect(d and "-e takes an argument in the man page only" in d, "argument: %r" % d)


@tap.check("wicketd.conf(5) keys = the keys wicketd --config accepts")
def _():
    page = read(os.path.join(MAN, "wicketd.conf.5"))
    keys = {}
    for line in mdoc_part(page, "KEYS"):
        m = re.match(r"^\.It Cm (\S+)(.*)$", line)
        if m:
            keys[m.group(1)] = "Ar" in m.group(2).split()
    tmp = S["tmp"]
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("no-such-key 1\n")
    r = run([WICKETD, "--config", conf, "--print-syscalls"], timeout=10)
    m = re.search(rb"without '--': ([^)]*)\)", r.err)
    expect(r.rc == 2 and m, "unknown key\n" + r.describe())
    listed = sorted(k.strip() for k in m.group(1).decode().split(","))
    expect_eq(sorted(keys), listed, "keys in wicketd.conf(5) vs wicketd's message")
    for k, takes in keys.items():
        with open(conf, "w") as f:
            f.write("%s%s\n" % (k, " 1" if takes else ""))
        r = run([WICKETD, "--config", conf, "--print-syscalls"], timeout=10)
        expect(b"unknown key" not in r.err and b"needs a value" not in r.err and
               b"takes no value" not in r.err, "key %s\n%s" % (k, r.describe()))
        # ... and each key is also a wicketd option in wicketd(8).
    opts = mdoc_options(mdoc_part(read(os.path.join(MAN, "wicketd.8")), "OPTIONS"))
    for k, takes in keys.items():
        expect(opts.get("--" + k) == takes, "--%s in wicketd(8): %r" % (k, opts.get("--" + k)))


# ---------------------------------------------------------------- --help


@tap.check("every option --help lists is one the program accepts")
def _():
    tmp = S["tmp"]
    env = dict(os.environ, HOME=tmp, XDG_STATE_HOME=tmp + "/state")
    none = "unix/" + tmp + "/none.sock"
    tails = {"exec": [none, "true"], "shell": [none], "cp": [none + ":/x", tmp + "/y"],
             "forward": [none], "proxy": [none], "serve": [none], "ssh-config": [],
             "list": [], "mux": ["status", none]}
    bad, tried = [], 0

    def try_(argv, unknown):
        nonlocal tried
        r = run(argv, timeout=20, env=env, cwd=tmp)
        tried += 1
        if unknown(r):
            bad.append(r.describe())
    for o, takes in help_options(help_of([WICKET]), "Global options").items():
        try_([WICKET, o] + (["1"] if takes else []) + ["ssh-config"],
             lambda r: b"unknown option" in r.err)
    for c in wicket_commands():
        htext = help_of([WICKET, c])
        if "\nOptions" not in htext:
            continue
        for o, takes in help_options(htext, "Options").items():
            pre = ["--ssh"] if c == "proxy" and o != "--ssh" else []
            try_([WICKET, c] + pre + [o] + (["1"] if takes else []) + tails[c],
                 lambda r: b"unknown option" in r.err or b"is for 'wicket serve'" in r.err)
    for prog in (WICKETD, SFTP_SERVER):
        for o, takes in help_options(help_of([prog])).items():
            try_([prog, o] + (["1"] if takes else []),
                 lambda r: b"unrecognized option" in r.err or b"invalid option" in r.err)
    for o, takes in help_options(help_of([AUTH_PLUGIN])).items():
        try_([AUTH_PLUGIN, o] + (["1"] if takes else []), lambda r: r.rc == 64)
    expect(not bad, "refused:\n" + "\n".join(bad))
    expect(tried > 60, "only %d options tried" % tried)


@tap.check("wicket CMD --help and -h: exit 0, that command's usage, on stdout")
def _():
    for c in wicket_commands():
        for flag in ("--help", "-h"):
            for argv in ([WICKET, c, flag], [WICKET, "-v", c, flag], [WICKET, "help", c]):
                r = run(argv, timeout=10)
                expect(r.rc == 0 and not r.err and
                       r.out.startswith(b"Usage: wicket [GLOBAL-OPTION...] " + c.encode()),
                       r.describe())
    r = run([WICKET, "mux", "status", "--help"], timeout=10)
    expect(r.rc == 0 and r.out.startswith(b"Usage: wicket [GLOBAL-OPTION...] mux"), r.describe())
    # After the TARGET, --help is the remote command's.
    r = run([WICKET, "--share", "no", "exec", "unix/" + S["tmp"] + "/none", "ls", "--help"],
            timeout=10)
    expect(r.rc == 255 and b"cannot connect" in r.err and not r.out, r.describe())


@tap.check("usage errors keep their codes: wicket 255, wicketd 2, sftp server 2, plugin 64")
def _():
    for argv, code in (([WICKET, "exec", "--bogus", "x", "y"], 255),
                       ([WICKET, "cp", "--bogus", "a", "b"], 255),
                       ([WICKET, "proxy", "--ssh", "--max-clients", "3", "x"], 255),
                       ([WICKET, "help", "bogus"], 255),
                       ([WICKETD, "--bogus"], 2), ([SFTP_SERVER, "--bogus"], 2),
                       ([AUTH_PLUGIN, "--bogus"], 64)):
        r = run(argv, timeout=10)
        expect(r.rc == code and r.err and not r.out, "want %d\n%s" % (code, r.describe()))


# ---------------------------------------------------------------- completion


def complete(line, env=None):
    """Complete at the end of @line as bash does: COMP_LINE/COMP_POINT, and
    COMP_WORDS split at COMP_WORDBREAKS' ':' and '='."""
    words = re.findall(r"[^\s:=]+|[:=]", line)
    if line.endswith(" ") or not line:
        words.append("")
    elif line[-1] in ":=":
        words.append("")
    script = ("source %s\nCOMP_LINE=%s\nCOMP_POINT=${#COMP_LINE}\nCOMP_WORDS=(%s)\n"
              "COMP_CWORD=%d\n_wicket\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n"
              % (shlex.quote(COMPLETION), shlex.quote(line),
                 " ".join(shlex.quote(w) for w in words), len(words) - 1))
    e = dict(os.environ)
    e.update(env or {})
    r = run(["bash", "--norc", "--noprofile", "-c", script], timeout=20, env=e)
    expect(r.rc == 0 and not r.err, "completion of %r\n%s" % (line, r.describe()))
    return [l for l in r.out.decode().split("\n") if l]


W = shlex.quote(WICKET)


@tap.check("completion: bash -n; commands; options per command; option values")
def _():
    r = run(["bash", "-n", COMPLETION], timeout=10)
    expect(r.rc == 0, r.describe())
    expect_eq(sorted(complete(W + " ")), sorted(wicket_commands() + ["help"]), "commands")
    expect_eq(complete(W + " sh"), ["shell"], "'sh'")
    got = complete(W + " exec -")
    for o in ("-t", "-n", "-e", "--tools", "--share", "-c", "--help"):
        expect(o in got, "exec -: %s missing from %r" % (o, got))
    expect("--resume" not in got, "exec -: cp's --resume offered: %r" % got)
    expect_eq(sorted(complete(W + " cp --re")), ["--recursive", "--requests", "--resume"],
              "cp --re")
    expect_eq(sorted(complete(W + " serve --max")), ["--max-clients", "--max-unauth"],
              "serve --max")
    expect_eq(sorted(complete(W + " --share ")), ["auto", "no", "only"], "--share")
    expect_eq(sorted(complete(W + " mux st")), ["start", "status", "stop"], "mux st")
    # After exec's TARGET the words are the remote command's.
    expect_eq(complete(W + " exec demo ls -"), [], "after the target")


@tap.check("completion: target kinds, pid/ numbers, unix/ paths as files")
def _():
    got = complete(W + " shell ")
    for k in ("vm/", "podman/", "docker/", "pid/", "k8s/", "unix/", "serial/", "demo"):
        expect(k in got, "%s missing from %r" % (k, got))
    mine = str(os.getpid())
    got = complete(W + " exec pid/" + mine)
    expect("pid/" + mine in got, "pid/%s not in %r" % (mine, got))
    got = complete(W + " exec unix/" + S["tmp"] + "/agent.so")
    expect_eq(sorted(got), ["unix/" + S["agent"].path, "unix/" + S["agent"].path + ".log"],
              "unix/ path")
    got = complete(W + " exec unix/" + S["tmp"] + "/rem")
    expect_eq(got, ["unix/" + S["remote"] + "/"], "unix/ directory")
    got = complete(W + " cp unix/" + S["tmp"] + "/agent.sock")
    # COMP_WORDS ends at the ':' bash breaks at: the reply is the whole word.
    expect_eq(sorted(got), sorted(["unix/" + S["agent"].path + ":",
                                   "unix/" + S["agent"].path + ".log:"]), "cp operand")


@tap.check("completion: k8s/ pods and namespaces from kubectl, --context passed on "
           "(the fake kubectl of test_k8s)")
def _():
    bindir = os.path.join(S["tmp"], "kbin")
    os.makedirs(bindir, exist_ok=True)
    if not os.path.exists(os.path.join(bindir, "kubectl")):
        os.symlink(os.path.join(HERE, "fake_kubectl.py"), os.path.join(bindir, "kubectl"))
    kc = os.path.join(S["tmp"], "kubeconfig")
    with open(kc, "w") as f:
        f.write("contexts:\n- context:\n    namespace: shop\n  name: ci\n")
    log = os.path.join(S["tmp"], "kubectl.log")
    env = {"PATH": bindir + ":" + os.environ.get("PATH", ""), "KUBECONFIG": kc,
           "FAKE_KUBECTL_LOG": log}
    got = complete(W + " exec k8s/", env)
    for want in ("k8s/has-agent", "k8s/scratch", "k8s/shop/", "k8s/default/"):
        expect(want in got, "%s missing from %r" % (want, got))
    expect_eq(complete(W + " shell k8s/sh", env), ["k8s/shared", "k8s/shop/"], "k8s/sh")
    expect_eq(complete(W + " exec k8s/shop/fl", env), ["k8s/shop/flaky"], "k8s/shop/fl")
    expect_eq(complete(W + " exec k8s/default/", env), [], "an empty namespace")
    got = complete(W + " cp k8s/shop/scr", env)
    expect_eq(got, ["k8s/shop/scratch:"], "cp operand")
    env["FAKE_K8S_CONTEXT"] = "prod"
    expect_eq(complete(W + " --context prod exec k8s/shop/has", env), ["k8s/shop/has-agent"],
              "with --context")
    expect_eq(complete(W + " --context=prod exec k8s/shop/has", env), ["k8s/shop/has-agent"],
              "with --context=")
    with open(log) as f:
        calls = [json.loads(l) for l in f]
    expect(["--context=prod", "--namespace=shop", "get", "pods", "--output=name",
            "--request-timeout=2s"] in calls, "kubectl calls: %r" % calls[-4:])


@tap.check("completion: wicket cp TARGET:PATH lists the guest's names (real wicketd)")
def _():
    tgt = S["agent"].target
    d = S["remote"]
    got = complete(W + " cp " + tgt + ":" + d + "/")
    # bash replaces only what follows the last ':' of the word.
    want = [d + "/file-one", d + "/file-two", d + "/with\\ space", d + "/sub/"]
    expect_eq(sorted(got), sorted(want), "names in %s" % d)
    expect_eq(sorted(complete(W + " cp " + tgt + ":" + d + "/file-")),
              [d + "/file-one", d + "/file-two"], "prefix file-")
    expect_eq(complete(W + " cp " + tgt + ":" + d + "/.h"), [d + "/.hidden/"], "hidden")
    expect_eq(complete(W + " cp -r " + tgt + ":" + d + "/nowhere/x"), [], "missing dir")
    # Straight: the hostile name is not printed, a missing directory exits 1.
    r = run([WICKET, "cp", "--complete", tgt + ":" + d + "/"], timeout=20)
    expect(r.rc == 0 and b"evil" not in r.out and r.out.count(b"\n") == 4, r.describe())
    r = run([WICKET, "cp", "--complete", tgt + ":" + d + "/nowhere/"], timeout=20)
    expect(r.rc == 1 and not r.out, r.describe())


def libvirtd_with_domains(n):
    """test_libvirt.py's own libvirtd (private state, as root), with @n
    domains defined (never started): their URI and names."""
    saved = list(tap.checks)
    try:
        import test_libvirt as lv  # its checks register on import: taken back
    finally:
        tap.checks[:] = saved
    why = lv.why_not_here()
    if why:
        raise Skip(why)
    tmp = tap.tmpdir("wicket-docs-lv-")
    os.chmod(tmp, 0o755)
    lv.S["tmp"] = tmp
    lv.ensure_qemu_user()
    uri = lv.start_libvirtd(tmp)
    names = []
    for k in range(n):
        name = "wicket-docs-%d-%d" % (os.getpid(), k)
        xml = os.path.join(tmp, name + ".xml")
        with open(xml, "w") as f:
            f.write("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
                    "<os><type arch='x86_64'>hvm</type></os></domain>\n" % name)
        r = run(["virsh", "-q", "-c", uri, "define", xml], timeout=120)
        expect(r.rc == 0, "virsh define\n" + r.describe() + "\n" + lv.daemon_log())
        names.append(name)
    return uri, names


@tap.check("completion: vm/ names from a real libvirtd (-c URI respected)")
def _():
    uri, names = libvirtd_with_domains(2)
    got = complete(W + " -c " + shlex.quote(uri) + " exec vm/")
    expect_eq(sorted(got), sorted("vm/" + n for n in names), "vm/ names")
    got = complete(W + " --connect " + shlex.quote(uri) + " cp vm/" + names[0][:-1])
    expect_eq(sorted(got), sorted("vm/" + n + ":" for n in names), "cp vm/ operand")
    # Without -c: $LIBVIRT_DEFAULT_URI, as wicket itself.
    got = complete(W + " shell vm/", env={"LIBVIRT_DEFAULT_URI": uri})
    expect_eq(sorted(got), sorted("vm/" + n for n in names), "vm/ names by LIBVIRT_DEFAULT_URI")


@tap.check("fish completion (asks the bash one): commands, options, remote cp paths")
def _():
    fish = shutil.which("fish")
    if not fish:
        raise Skip("fish is not installed (Debian package fish)")
    script = os.path.join(BUILDDIR, "completion", "wicket.fish")
    env = dict(os.environ, WICKET_BASH_COMPLETION=COMPLETION,
               PATH=os.path.dirname(WICKET) + ":" + os.environ.get("PATH", ""))

    def fcomplete(line):
        r = run([fish, "--no-config", "-c", "source %s; complete -C %s"
                 % (shlex.quote(script), shlex.quote(line))], timeout=30, env=env)
        expect(r.rc == 0 and not r.err, "fish completion of %r\n%s" % (line, r.describe()))
        return sorted(l.split("\t")[0] for l in r.out.decode().split("\n") if l)
    expect_eq(fcomplete("wicket sh"), ["shell"], "'wicket sh'")
    got = fcomplete("wicket cp -")
    for o in ("--resume", "--complete", "-r", "--share"):
        expect(o in got, "%s missing from %r" % (o, got))
    tgt = S["agent"].target
    d = S["remote"]
    # fish keeps the whole token (no ':' break) and quotes names itself.
    expect_eq(fcomplete("wicket cp %s:%s/" % (tgt, d)),
              sorted("%s:%s/%s" % (tgt, d, n) for n in ("file-one", "file-two", "with space",
                                                         "sub/")), "remote names")


# An interactive zsh on a pty (zpty) with compinit and our _wicket on fpath:
# the line is typed, then Tab; compadd is replaced by one that writes down
# the words it is given.
ZSH_DRIVER = r"""
zmodload zsh/zpty
out=$1 line=$2 dir=$3
zpty z 'zsh -f -i'
zpty -w z "fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "compadd() { while (( \$# )); do case \$1 in (-S|-P|-J|-V|-X|-x) shift 2;; (--) shift; break;; (-*) shift;; (*) break;; esac; done; print -rl -- \"\$@\" >> $out; }"
zpty -w z "print READY"
zpty -r z l '*READY*'
zpty -r z l '*READY*'
zpty -w -n z "$line"$'\t'
for i in {1..100}; do [[ -s $out ]] && break; sleep 0.1; done
sleep 0.3
zpty -d z
"""


@tap.check("zsh completion (asks the bash one) under compinit: commands, options, remote paths")
def _():
    zsh = shutil.which("zsh")
    if not zsh:
        raise Skip("zsh is not installed (Debian package zsh)")
    driver = os.path.join(S["tmp"], "driver.zsh")
    with open(driver, "w") as f:
        f.write(ZSH_DRIVER)
    env = dict(os.environ, WICKET_BASH_COMPLETION=COMPLETION,
               PATH=os.path.dirname(WICKET) + ":" + os.environ.get("PATH", ""))
    n = [0]

    def zcomplete(line):
        n[0] += 1
        out = os.path.join(S["tmp"], "zsh-out-%d" % n[0])
        r = run([zsh, "-f", driver, out, line, os.path.join(BUILDDIR, "completion")],
                timeout=30, env=env)
        expect(r.rc == 0, "zsh driver for %r\n%s" % (line, r.describe()))
        try:
            return sorted(l for l in read(out).split("\n") if l)
        except FileNotFoundError:
            return []
    expect_eq(zcomplete("wicket sh"), ["shell"], "'wicket sh'")
    expect_eq(zcomplete("wicket cp --re"), ["--recursive", "--requests", "--resume"], "cp --re")
    tgt = S["agent"].target
    d = S["remote"]
    expect_eq(zcomplete("wicket cp %s:%s/file" % (tgt, d)),
              sorted("%s:%s/%s" % (tgt, d, n) for n in ("file-one", "file-two")), "remote names")


def setup():
    S["tmp"] = tap.tmpdir("wicket-docs-")
    S["agent"] = Agent(S["tmp"])
    d = S["remote"] = os.path.join(S["tmp"], "remote")
    os.makedirs(os.path.join(d, "sub"))
    os.makedirs(os.path.join(d, ".hidden"))
    for n in ("file-one", "file-two", "with space", "evil\nname"):
        with open(os.path.join(d, n), "w") as f:
            f.write("x")


if __name__ == "__main__":
    tap.main(setup)
