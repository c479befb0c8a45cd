#!/usr/bin/env python3
"""Run the tour's commands on this machine and write their real output into the chapters.

    docs/tour/generate.py            rewrite every chapter's output blocks
    docs/tour/generate.py 03 05      only chapters whose file names start so
    docs/tour/generate.py --check    fail (exit 1, with a diff) if any block is stale

A chapter is Markdown.  Every ```console block in it is live: each line that
starts with "$ " is a command, continued by the lines right after it that
start with "> " (after a trailing "\\", or in a here-document); the lines after it, up to the next command, are its
output and are replaced by what the command prints now (stdout and stderr
together, in order), followed by "(exit status N)" when N is not 0.

Outside the blocks, `<!-- tour-run: CMD -->` runs CMD without showing it, and
`<!-- tour-cleanup: CMD -->` runs CMD when the chapter ends, even after a
failure.  Containers named `tour-...` in a chapter are deleted before and
after it.  Commands run as root, one at a time, in one bash per chapter started
in the repository's root (so `cd` and variables carry over, as in the
reader's shell); images go to a private store (shown as the default
/var/lib/minirun).

--check compares after masking what changes from run to run (pids, ids,
digests, times; see VOLATILE) and runs in CI, so the tour cannot drift from
the code: when minirun's behaviour or trace changes, run this script and
commit the chapters with the change.
"""
import difflib
import os
import re
import shutil
import subprocess
import sys
import select
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHOWN_CHECKOUT = "/vagrant"
DEFAULT_STORE = "/var/lib/minirun"
TIMEOUT = 60  # seconds per command

# Host programs the chapters run besides minirun and coreutils.
TOOLS = ["minirun", "bash", "gcc", "python3", "ip", "nsenter", "nft", "curl", "capsh", "ps",
         "tar", "awk", "sed", "diff", "stat", "mount"]
CHAPTER = re.compile(r"^\d\d-.*\.md$")
FENCE_OPEN = "```console"
FENCE = "```"
HIDDEN = re.compile(r"^<!-- tour-(run|cleanup): (.*) -->\s*$")
CONTAINER_NAME = re.compile(r"\btour-[a-z0-9][a-z0-9-]*")

# What differs between two runs of the same commands on the same kind of
# machine.  Applied (only) when comparing, to both sides.
VOLATILE = [
    (re.compile(r"\[minirun \d+\]|/proc/\d+/|cgroup\.procs <- '\d+'"),
     lambda m: re.sub(r"\d+", "N", m.group())),                           # pids, any size
    # a pod's random suffix (Kubernetes' alphabet) after its template hash
    (re.compile(r"(-[0-9a-f]{10}-)[bcdfghjklmnpqrstvwxz2456789]{5}(?![a-z0-9])"), r"\1XXXXX"),
    # addresses in networks made from the user pool (ipam.USER_POOL_PREFIXES):
    # which /24 a network gets depends on what the host has already
    (re.compile(r"\b10\.(7[6-9]|8[0-3])\.\d{1,3}\.\d{1,3}\b"), "POOL-IP"),
    (re.compile(r"\b(sha256:)?[0-9a-f]{12,64}\b"), "HEX"),                  # ids, digests
    (re.compile(r"\b\w+:\[\d+\]"), "NS:[INODE]"),                           # namespaces
    (re.compile(r"\bmrv[0-9a-f]{11}\b"), "mrvHEX"),                          # veths, by container id
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "TIME"),
    # ages grow with the calendar: an image built months ago ages every day
    (re.compile(r"\b(\d+|About an?|Less than a) (second|minute|hour|day|week|month|year)s? ago\b",
                re.I), "TIME ago"),
    # a running container's uptime ("Up 2 seconds", "Up Less than a second")
    (re.compile(r"\bUp (\d+|About an?|Less than a) (second|minute|hour|day)s?\b"), "Up TIME"),
    # an address a resolver returned (nslookup's "Address: 10.76.0.2"): networks get
    # subnets from a pool, after whatever the host already has
    (re.compile(r"^Address:\s+(\d{1,3}(\.\d{1,3}){3}|POOL-IP)$"), "Address: IP"),
    (re.compile(r"\d+(\.\d+)?\s?(ms|µs|us)\b"), "DURATION"),
    (re.compile(r"\b[A-Z][a-z][a-z] +\d\d? +(\d\d:\d\d|\d{4})\b"), "DATE"),     # ls -l
    # pids (>= 300 once the kernel wraps around, no leading 0), ports, counters;
    # not modes and settings ("mode=755") nor exit statuses (< 256).
    (re.compile(r"(?<![\d.=])(?:[3-9]\d\d|[1-9]\d{3,6})(?![\d.])"), "N"),
    (re.compile(r"[ \t]+"), " "),                                          # column widths
]


# A checkout's path in committed outputs may differ from this one's (CI clones
# elsewhere, the box uses /vagrant): any path leading to the repo's own dirs.
CHECKOUT_PATH = re.compile(r"/[^\s'\"]*?(?=/(?:images|docs|minirun|tests)/)")


def normalise(text):
    text = text.replace(REPO, "REPO")  # where the checkout is (/vagrant in the box)
    text = CHECKOUT_PATH.sub("REPO", text)
    for pattern, repl in VOLATILE:
        text = pattern.sub(repl, text)
    return text.strip()


# ---------------------------------------------------------------- parsing

class Block:
    """A ```console block: [(command, [output lines])]; lines [start, end) of
    the file hold its body."""

    def __init__(self, start, end, items):
        self.start, self.end, self.items = start, end, items


def parse(lines):
    """-> (blocks, hidden): the live blocks and the (line number, kind, cmd)
    of tour-run/tour-cleanup comments, in file order."""
    blocks, hidden = [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = HIDDEN.match(line)
        if m:
            hidden.append((i, m.group(1), m.group(2)))
            i += 1
            continue
        if line.rstrip() != FENCE_OPEN:
            i += 1
            continue
        start = i + 1
        j = start
        while j < len(lines) and lines[j].rstrip() != FENCE:
            j += 1
        if j == len(lines):
            raise SystemExit(f"unclosed ```console block at line {i + 1}")
        blocks.append(Block(start, j, parse_block(lines[start:j], start)))
        i = j + 1
    return blocks, hidden


def parse_block(body, offset):
    items = []
    k = 0
    while k < len(body):
        line = body[k]
        if not line.startswith("$ "):
            raise SystemExit(f"line {offset + k + 1}: expected a `$ command` line, got {line!r}")
        shown = [line]
        cmd = line[2:]
        while k + 1 < len(body) and body[k + 1].startswith("> "):
            k += 1
            shown.append(body[k])
            cmd = cmd + "\n" + body[k][2:]
        k += 1
        out = []
        while k < len(body) and not body[k].startswith("$ "):
            out.append(body[k])
            k += 1
        items.append((shown, cmd, out))
    return items


# ---------------------------------------------------------------- running

class Shell:
    """One bash per chapter, like the reader's: `cd` and variables persist
    from one command to the next."""

    def __init__(self, store):
        self.store = store
        self.env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", TERM="dumb",
                        COLUMNS="100", MINIRUN_STORE=store, PYTHONDONTWRITEBYTECODE="1")
        self.env.pop("MINIRUN_TRACE", None)
        self.env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.proc = None

    def __enter__(self):
        self.status_r, status_w = os.pipe()
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile"], cwd=REPO, env=self.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(status_w,),
                                     start_new_session=True, text=True)
        self.status_fd = status_w
        os.close(status_w)
        self.status = os.fdopen(self.status_r)
        return self

    def __exit__(self, *exc):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.status.close()

    def run(self, cmd):
        """-> output lines (stdout+stderr in order, + exit status if not 0)."""
        # Output to a file, not a pipe: a detached container inherits it and
        # would hold a pipe open forever.
        with tempfile.NamedTemporaryFile(prefix="minirun-tour-out-") as out:
            self.proc.stdin.write(f"{{\n{cmd}\n}} >{out.name} 2>&1 </dev/null\n"
                                  f"echo $? >&{self.status_fd}\n")
            self.proc.stdin.flush()
            line = self._read_status(cmd)
            with open(out.name, "rb") as f:
                text = f.read().decode(errors="replace")
        text = text.replace(self.store, DEFAULT_STORE)
        # Pages show the checkout where the Vagrant box has it, not where this one is.
        text = text.replace(REPO + "/", SHOWN_CHECKOUT + "/")
        lines = [l.rstrip() for l in text.rstrip("\n").split("\n")] if text.strip() else []
        if line != "0":
            lines.append(f"(exit status {line})")
        return lines

    def _read_status(self, cmd):
        ready, _, _ = select.select([self.status], [], [], TIMEOUT)
        if not ready:
            os.killpg(self.proc.pid, 9)
            raise SystemExit(f"command timed out after {TIMEOUT}s: {cmd}")
        line = self.status.readline().strip()
        if not line:
            raise SystemExit(f"the shell exited during: {cmd}")
        return line


def delete_containers(env, names):
    for name in sorted(names):
        subprocess.run(["minirun", "delete", "--force", name], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_cleanups(store, cleanups):
    if cleanups:
        with Shell(store) as sh:
            for cmd in cleanups:
                sh.run(cmd)


def run_chapter(path, store):
    """Run a chapter; -> (old lines, new lines)."""
    with open(path) as f:
        lines = f.read().split("\n")
    blocks, hidden = parse(lines)
    names = set(CONTAINER_NAME.findall("\n".join(
        [cmd for b in blocks for _, cmd, _ in b.items] + [c for _, _, c in hidden])))
    cleanups = [c for _, kind, c in hidden if kind == "cleanup"]
    events = sorted([(b.start, "block", b) for b in blocks] +
                    [(n, "run", c) for n, kind, c in hidden if kind == "run"],
                    key=lambda e: e[0])
    env = Shell(store).env
    delete_containers(env, names)
    run_cleanups(store, cleanups)
    new_bodies = {}
    try:
        with Shell(store) as sh:
            for _, kind, what in events:
                if kind == "run":
                    sh.run(what)
                    continue
                body = []
                for shown, cmd, _ in what.items:
                    body += shown + sh.run(cmd)
                new_bodies[what.start] = body
    finally:
        delete_containers(env, names)
        run_cleanups(store, cleanups)
    new = []
    i = 0
    for b in blocks:
        new += lines[i:b.start] + new_bodies[b.start]
        i = b.end
    new += lines[i:]
    return lines, new


def chapters(prefixes):
    names = sorted(n for n in os.listdir(HERE) if CHAPTER.match(n))
    if prefixes:
        names = [n for n in names if any(n.startswith(p) for p in prefixes)]
    return [os.path.join(HERE, n) for n in names]


def main(argv):
    check = "--check" in argv
    prefixes = [a for a in argv if not a.startswith("--")]
    if os.geteuid() != 0:
        raise SystemExit("generate.py: run as root (the tour starts real containers)")
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=Shell("").env["PATH"])]
    if missing:
        raise SystemExit(f"generate.py: the tour's commands need {', '.join(missing)} "
                         "(Debian/Ubuntu packages: curl, libcap2-bin, procps, gcc, ...)")
    if not os.path.isdir(os.path.join(REPO, "images", "out", "busybox")):
        raise SystemExit("generate.py: no demo image: run ./scripts/install.sh "
                         "(or images/build_busybox.py) first")
    store = tempfile.mkdtemp(prefix="minirun-tour-store-")
    stale = []
    started = time.monotonic()
    try:
        for path in chapters(prefixes):
            t0 = time.monotonic()
            old, new = run_chapter(path, store)
            name = os.path.relpath(path, REPO)
            took = f"{time.monotonic() - t0:.1f}s"
            if check:
                a = [normalise(l) for l in old]
                b = [normalise(l) for l in new]
                if a != b:
                    stale.append(name)
                    sys.stdout.writelines(difflib.unified_diff(
                        [l + "\n" for l in a], [l + "\n" for l in b],
                        f"{name} (committed)", f"{name} (this machine, now)", n=2))
                print(f"{name}: {'STALE' if a != b else 'ok'} ({took})")
            else:
                if old != new:
                    tmp = path + ".tmp"
                    with open(tmp, "w") as f:
                        f.write("\n".join(new))
                    os.replace(tmp, path)
                print(f"{name}: {'updated' if old != new else 'unchanged'} ({took})")
    finally:
        # The store may hold read-only layer dirs and mounts of its own.
        subprocess.run(["minirun", "image", "prune", "--store", store], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=Shell(store).env)
        shutil.rmtree(store, ignore_errors=True)
    print(f"{time.monotonic() - started:.1f}s")
    if stale:
        print(f"stale: {', '.join(stale)}; run docs/tour/generate.py and commit the result",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
