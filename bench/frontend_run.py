#!/usr/bin/env python3
"""The Docker-like front end: `run --rm IMAGE true` next to podman, and the
monitor's memory next to conmon's.

    sudo /opt/minirun/venv/bin/python bench/frontend_run.py [-n 15] [--ps 100] [--containers 1,10,50]

Rows (one interleaved loop per row: minirun and podman alternate, order rotated):
  python -S -c pass              the interpreter's own start-up, the floor of any call
  run --rm busybox true          wall time of the whole command, median of n,
                                 with the default bridge network and with --network none;
                                 podman uses runc (crun refuses hybrid cgroup hosts)
  run -d busybox sleep           until the command returns (the container runs on)
  ps with N running              the listing with --ps containers running (default 100)
  monitor / conmon memory        RSS and PSS of what holds detached containers: minirun's
                                 one monitor per --root (all containers) and its forkserver
                                 (the pre-imported worker it forks workers from), podman's
                                 conmon (one per container), for 1, 10, 50 `sleep` containers

Both tools run inside a private mount and network namespace (unshare) with tmpfs
over /run and /var/lib, a private store, --root, containers.conf and
storage.conf: nothing of the machine's own state is touched, and all bridges,
veths, iptables/nftables rules vanish with the namespace.  The image is the
demo busybox (images/out/oci/busybox, built offline if missing).
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = os.path.join(REPO, "images", "out", "oci", "busybox")
MINIRUN = shutil.which("minirun", path=os.path.dirname(sys.executable)) or shutil.which("minirun")


def sh(argv, env=None, check=True, **kw):
    res = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Private_Dirty"):
                out[key] = int(value.split()[0])
    return out


class Minirun:
    name = "minirun"

    def __init__(self, base):
        self.root = os.path.join(base, "mr-root")
        # bytecode may be cached (a checkout being edited is not compiled yet;
        # an installed minirun is): the warm-up runs compile what changed
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["MINIRUN_STORE"] = os.path.join(base, "mr-store")
        sh([MINIRUN, "load", "-i", LAYOUT, "--name", "busybox:latest"], self.env)

    def cmd(self, *args):
        return [MINIRUN, "--root", self.root, *args]

    def holders(self):
        with open(os.path.join(self.root, ".frontend", "monitor.pid")) as f:
            monitor = int(f.read().split()[0])
        with open(f"/proc/{monitor}/task/{monitor}/children") as f:
            children = [int(p) for p in f.read().split()]
        forkservers = []
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"\0forkserver\0" in f.read():
                        forkservers.append(pid)
            except FileNotFoundError:
                pass
        return [monitor] + forkservers

    def cleanup(self):
        ids = sh(self.cmd("ps", "-aq", "--no-trunc"), self.env).stdout.split()
        if ids:
            sh(self.cmd("rm", "-f", *ids), self.env)


class Podman:
    name = "podman"

    def __init__(self, base):
        d = os.path.join(base, "podman")
        os.makedirs(d)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
        with open(os.path.join(d, "containers.conf"), "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
static_dir = "{d}/storage/libpod"
volume_path = "{d}/storage/volumes"
[network]
network_config_dir = "{d}/networks"
""")
        with open(os.path.join(d, "storage.conf"), "w") as f:
            f.write(f"""[storage]
driver = "overlay"
graphroot = "{d}/storage"
runroot = "{d}/run"
""")
        self.env = dict(os.environ, CONTAINERS_CONF=os.path.join(d, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(d, "storage.conf"))
        sh(["podman", "pull", "-q", f"oci:{LAYOUT}:latest"], self.env)
        image = sh(["podman", "images", "-q"], self.env).stdout.split()[0]
        sh(["podman", "tag", image, "busybox:latest"], self.env)

    def cmd(self, *args):
        return ["podman", *args]

    def holders(self):
        ids = sh(["podman", "ps", "-q"], self.env).stdout.split()
        out = sh(["podman", "inspect", "--format", "{{.State.ConmonPid}}", *ids], self.env)
        return [int(p) for p in out.stdout.split()]

    def cleanup(self):
        sh(["podman", "rm", "-af", "-t", "0"], self.env, check=False)


def interleaved(tools, argvs, n, after=None):
    """Wall times of argvs[tool] for every tool, n rounds, order rotated per
    round: machine load falls on every column alike."""
    out = {t.name: [] for t in tools}
    for i in range(n):
        for tool in tools[i % len(tools):] + tools[:i % len(tools)]:
            t0 = time.monotonic()
            res = sh(argvs[tool.name], tool.env)
            out[tool.name].append(time.monotonic() - t0)
            if after:
                after(tool, res)
    return out


def row(label, samples, tools):
    base = samples[tools[0].name]
    cells = [f"{statistics.median(samples[t.name]) * 1000:7.0f}" for t in tools]
    ratios = [f"{statistics.median(a / b for a, b in zip(base, samples[t.name])):5.2f}"
              for t in tools[1:]]
    return f"| {label} | " + " | ".join(cells + ratios) + " |"


def inner(args):
    """Runs inside the private namespaces."""
    sh(["ip", "link", "set", "lo", "up"])
    base = tempfile.mkdtemp(prefix="fe-bench-")
    tools = [Minirun(base)]
    if shutil.which("podman") and not args.no_podman:
        tools.append(Podman(base))
    names = [t.name for t in tools]
    load = open("/proc/loadavg").read().split()[:3]
    versions = [sh([t.cmd("--version")[0], "--version"], t.env).stdout.splitlines()[0]
                for t in tools]
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  kernel {os.uname().release}  "
          f"{os.cpu_count()} cpus  load {' '.join(load)}  " + "; ".join(versions))
    print("| measurement (ms, median of %d) | " % args.n + " | ".join(names)
          + "".join(f" | {names[0]}/{p}" for p in names[1:]) + " |")
    print("|" + "---|" * (1 + 2 * len(tools) - 1))
    floor = {t.name: [sys.executable, "-S", "-c", "pass"] for t in tools}
    print(row("python -S -c pass (the floor)", interleaved(tools, floor, args.n), tools))
    for net in ("bridge", "none"):
        extra = [] if net == "bridge" else ["--network", "none"]
        argvs = {t.name: t.cmd("run", "--rm", *extra, "busybox", "true") for t in tools}
        for t in tools:
            sh(argvs[t.name], t.env)  # warm caches (layers unpacked, monitor/netavark ready)
        print(row(f"run --rm busybox true ({net})", interleaved(tools, argvs, args.n), tools),
              flush=True)
    detached = {t.name: [] for t in tools}

    def keep(tool, res):
        detached[tool.name].append(res.stdout.strip())

    argvs = {t.name: t.cmd("run", "-d", "--network", "none", "busybox", "sleep", "3600")
             for t in tools}
    print(row("run -d busybox sleep (--network none)",
              interleaved(tools, argvs, args.n, keep), tools), flush=True)
    for t in tools:  # up to --ps containers each, then time `ps`
        while len(detached[t.name]) < args.ps:
            detached[t.name].append(sh(argvs[t.name], t.env).stdout.strip())
    argvs = {t.name: t.cmd("ps") for t in tools}
    print(row(f"ps with {args.ps} running", interleaved(tools, argvs, args.n), tools),
          flush=True)
    for t in tools:
        t.cleanup()
    print()
    counts = [int(c) for c in args.containers.split(",") if c]
    for tool in tools:
        started = 0
        for count in counts:
            while started < count:
                sh(tool.cmd("run", "-d", "--network", "none", "busybox", "sleep", "3600"),
                   tool.env)
                started += 1
            time.sleep(0.5)
            pids = tool.holders()
            mem = [memory(p) for p in pids]
            rss = sum(m["Rss"] for m in mem)
            pss = sum(m["Pss"] for m in mem)
            print(f"{tool.name:8} {count:3} containers: {len(pids):3} holder process(es), "
                  f"RSS {rss / 1024:6.1f} MB total ({rss / 1024 / count:5.2f} MB per container), "
                  f"PSS {pss / 1024:6.1f} MB", flush=True)
        tool.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs per timing row")
    parser.add_argument("--containers", default="1,10,50", help="for the memory rows ('' skips)")
    parser.add_argument("--ps", type=int, default=100, help="containers running for the ps row")
    parser.add_argument("--no-podman", action="store_true")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return inner(args)
    if not os.path.isdir(LAYOUT):
        sh([sys.executable, os.path.join(REPO, "images", "build_busybox.py")])
    script = 'mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && exec "$@"'
    argv = ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script, "sh",
            sys.executable, os.path.abspath(__file__), "--inner", "-n", str(args.n),
            "--containers", args.containers, "--ps", str(args.ps)] + (
                ["--no-podman"] if args.no_podman else [])
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
