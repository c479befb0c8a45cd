#!/usr/bin/env python3
"""The OCI verbs, minirun next to runc (and crun), from one interleaved run.

    sudo /opt/minirun/venv/bin/python bench/runtimes.py [-n 15] [--live 200] [--par 200]
         [--runtimes runc,crun] [--variants nonet,netns,userns] [--minirun PATH]

Every figure of a row comes from the same loop: each iteration runs every
runtime (and the Python floor) once, in an order rotated per iteration, so
load from other work on the machine falls on all columns alike.  Tables give
medians, and the median of the per-iteration ratios to minirun's column.

Rows (ms unless noted):
  python floor       `python -S -c pass`, `python -I -S -c pass`, `python -c pass`
                     (the interpreter minirun runs on, nothing imported)
  VARIANT run        `run` of /bin/true: wall, cpu (user+sys), peak RSS (MB)
  VARIANT create ... one lifecycle of `sleep`: create, state (created), start,
                     kill KILL, delete (after the init was reaped)
  live N: state/list `state ID` and `list` with N sleeping containers per runtime
  par N              N x `run` of /bin/true started at once: median latency of
                     one, time until all are done, failures

Bundles (built here, in a temporary directory): the default config of
`minirun spec` (the same as `runc spec`) with terminal off, on a read-only
busybox rootfs; nonet = pid/ipc/uts/mount/cgroup namespaces, netns = +network,
userns = +user with ids 0-65535 mapped to 100000 (rootfs chowned).  Every
runtime has its own --root in the temporary directory; everything is deleted
at the end.  crun refuses a hybrid cgroup host whose cgroup2 mount has
controllers; --hide-unified runs the whole benchmark (every runtime alike) in
a private mount namespace where /sys/fs/cgroup/unified is detached.

Timing: a small C helper (built with cc if present) forks, execs and wait4()s
each command and reports wall, cpu and ru_maxrss; without cc, RSS is not shown
(a child forked from Python starts with Python's RSS as its peak).
"""
import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
/* usage: timeit FD PROGRAM ARGS...: run it, write "wall_ns cpu_us maxrss_kb status" to FD */
int main(int argc, char **argv) {
    struct timespec a, b; struct rusage ru; int status; int fd = atoi(argv[1]);
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) { close(fd); execvp(argv[2], argv + 2); _exit(127); }
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 125;
    clock_gettime(CLOCK_MONOTONIC, &b);
    dprintf(fd, "%lld %ld %ld %d\n", (b.tv_sec - a.tv_sec) * 1000000000LL + b.tv_nsec - a.tv_nsec,
            (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec
            + ru.ru_stime.tv_usec, ru.ru_maxrss, status);
    return 0;
}
"""
DEVNULL = os.open(os.devnull, os.O_RDWR)
# An installed minirun is byte-compiled (install.sh); a checkout being edited
# is not, and with PYTHONDONTWRITEBYTECODE every call would compile again what
# changed.  Commands run with Python allowed to cache bytecode, so the warm-up
# iterations leave every column measuring the same thing: the installed case.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


class Result:
    def __init__(self, wall, cpu, rss, status):
        self.wall, self.cpu, self.rss, self.status = wall, cpu, rss, status


class Harness:
    """Starts commands, reaps them (and orphaned container inits: we are a
    child subreaper), and measures them through the C helper."""

    def __init__(self, workdir):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.reaped = {}
        self.helper = None
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc:
            src = os.path.join(workdir, "timeit.c")
            with open(src, "w") as f:
                f.write(HELPER_C)
            exe = os.path.join(workdir, "timeit")
            if subprocess.run([cc, "-O2", "-o", exe, src]).returncode == 0:
                self.helper = exe

    def _reap(self, pid):
        while pid not in self.reaped:
            try:
                got, status, ru = os.wait4(-1, 0)
            except ChildProcessError:
                raise RuntimeError(f"pid {pid} is not our child") from None
            self.reaped[got] = (status, ru)
        return self.reaped.pop(pid)

    def reap_orphans(self):
        while True:
            try:
                got, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if got == 0:
                return
            self.reaped[got] = (status, ru)

    def forget(self, pid):
        self.reaped.pop(pid, None)

    def wait_reaped(self, pid, timeout=30):
        """Wait for a container init re-parented to us to exit."""
        deadline = time.monotonic() + timeout
        while pid not in self.reaped:
            self.reap_orphans()
            if pid in self.reaped:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid {pid} did not exit")
            time.sleep(0.0005)
        self.reaped.pop(pid)

    def start(self, argv, stdout=DEVNULL):
        exe = shutil.which(argv[0]) or argv[0]
        actions = [(os.POSIX_SPAWN_DUP2, DEVNULL, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                   (os.POSIX_SPAWN_DUP2, DEVNULL, 2)]
        t0 = time.perf_counter()
        if self.helper:
            r, w = os.pipe()
            actions.append((os.POSIX_SPAWN_DUP2, w, 3))
            pid = os.posix_spawn(self.helper, [self.helper, "3", exe, *argv[1:]], ENV,
                                 file_actions=actions)
            os.close(w)
            return pid, t0, r
        pid = os.posix_spawn(exe, argv, ENV, file_actions=actions)
        return pid, t0, None

    def finish(self, started):
        pid, t0, r = started
        status, ru = self._reap(pid)
        wall = time.perf_counter() - t0
        if r is None:
            return Result(wall, ru.ru_utime + ru.ru_stime, None, os.waitstatus_to_exitcode(status))
        with os.fdopen(r, "rb") as f:
            fields = f.read().split()
        if len(fields) != 4:
            return Result(wall, 0, None, 127)
        return Result(int(fields[0]) / 1e9, int(fields[1]) / 1e6, int(fields[2]) / 1024,
                      os.waitstatus_to_exitcode(int(fields[3])))

    def run(self, argv):
        return self.finish(self.start(argv))

    def output(self, argv):
        r, w = os.pipe()
        started = self.start(argv, stdout=w)
        os.close(w)
        with os.fdopen(os.dup(r), "rb") as f:
            out = f.read()
        os.close(r)
        started = (started[0], started[1], started[2])
        res = self.finish(started)
        return res.status, out.decode(errors="replace")


class Runtime:
    def __init__(self, name, argv, workdir):
        self.name = name
        self.root = os.path.join(workdir, f"root-{name}")
        self.argv = [*argv, "--root", self.root]
        self.live = set()

    def cmd(self, *args):
        return [*self.argv, *args]


def build_bundles(workdir, variants):
    from minirun.spec import default_spec

    busybox = shutil.which("busybox")
    if not busybox:
        raise SystemExit("needs a static busybox (Debian: busybox-static)")
    rootfs = os.path.join(workdir, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in ("sh", "true", "sleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    bundles = {}
    for variant in [*variants, "sleep"]:
        config = default_spec()
        config["ociVersion"] = "1.0.2"  # what `runc spec` writes; crun 1.8 knows no later one
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/sleep", "3600"] if variant == "sleep" else ["/bin/true"]
        namespaces = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
        root = {"path": rootfs, "readonly": True}
        if variant in ("netns", "userns"):
            namespaces.append({"type": "network"})
        if variant == "userns":
            namespaces.append({"type": "user"})
            urootfs = os.path.join(workdir, "rootfs-userns")
            shutil.copytree(rootfs, urootfs, symlinks=True)
            for dirpath, dirnames, filenames in os.walk(urootfs):
                for name in [*dirnames, *filenames, "."]:
                    os.lchown(os.path.join(dirpath, name), 100000, 100000)
            root["path"] = urootfs
            ids = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"]["uidMappings"] = ids
            config["linux"]["gidMappings"] = ids
            # cgroupfs and sysfs mounts of a user namespace are not ours to make
            config["mounts"] = [m for m in config["mounts"]
                                if m["type"] not in ("cgroup",)]
        config["linux"]["namespaces"] = namespaces
        config["root"] = root
        path = os.path.join(workdir, f"bundle-{variant}")
        os.makedirs(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        bundles[variant] = path
    return bundles


class Table:
    """rows of {column: [samples]}; prints medians and ratios to minirun."""

    def __init__(self, columns):
        self.columns = columns
        self.rows = []

    def add(self, label, unit, samples, scale=1000.0):
        self.rows.append((label, unit, samples, scale))

    def render(self):
        base = "minirun"
        peers = [c for c in self.columns if c != base]
        head = ["measurement", base, *peers, *[f"{base}/{p}" for p in peers]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, unit, samples, scale in self.rows:
            cells = [f"{label} ({unit})"]
            for c in [base, *peers]:
                s = [x for x in samples.get(c, []) if x is not None]
                cells.append(_fmt(statistics.median(s) * scale) if s else "-")
            for p in peers:
                pairs = [a / b for a, b in zip(samples.get(base, []), samples.get(p, []))
                         if a is not None and b]
                cells.append(f"{statistics.median(pairs):.2f}" if pairs else "-")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(x):
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def single(h, runtimes, bundles, variants, n, warmup, table):
    py = sys.executable
    floors = {"python -S -c pass": [py, "-S", "-c", "pass"],
              "python -I -S -c pass": [py, "-I", "-S", "-c", "pass"],
              "python -c pass": [py, "-c", "pass"]}
    data = {}

    def note(key, rt, value):
        data.setdefault(key, {}).setdefault(rt, []).append(value)

    for it in range(warmup + n):
        keep = it >= warmup
        order = runtimes[it % len(runtimes):] + runtimes[:it % len(runtimes)]
        for rt in order:
            if keep:  # the floor next to each runtime's turn, same moment
                for label, argv in floors.items():
                    note(("floor", label), rt.name, h.run(argv).wall)
            for v in variants:
                cid = f"b{os.getpid()}-{it}-{v}"
                r = h.run(rt.cmd("run", "--bundle", bundles[v], cid))
                if r.status != 0:
                    raise SystemExit(f"{rt.name} run ({v}) failed: {r.status}")
                h.reap_orphans()
                if keep:
                    note((v, "run wall"), rt.name, r.wall)
                    note((v, "run cpu"), rt.name, r.cpu)
                    note((v, "run peak RSS"), rt.name, r.rss)
                cid = f"c{os.getpid()}-{it}-{v}"
                times = lifecycle(h, rt, bundles["sleep"] if v == "nonet" else bundles[v], cid,
                                  sleeper=v == "nonet")
                if keep:
                    for k, x in times.items():
                        note((v, k), rt.name, x)
    for label in floors:
        # measured next to every runtime's turn; shown in minirun's column
        samples = [x for s in data[("floor", label)].values() for x in s]
        table.add(f"python floor: {label}", "ms", {"minirun": samples})
    for v in variants:
        for k in ("run wall", "run cpu", "run peak RSS", "create", "state", "start", "kill",
                  "delete", "create+start+delete"):
            if (v, k) in data:
                unit = "MB" if "RSS" in k else "ms"
                table.add(f"{v}: {k}", unit, data[(v, k)], 1.0 if unit == "MB" else 1000.0)


def lifecycle(h, rt, bundle, cid, sleeper):
    """create, state, start, [kill], delete of one container; returns the times."""
    times = {}
    r = h.run(rt.cmd("create", "--bundle", bundle, cid))
    if r.status != 0:
        raise SystemExit(f"{rt.name} create failed: {r.status}")
    rt.live.add(cid)
    times["create"] = r.wall
    status, out = h.output(rt.cmd("state", cid))
    pid = json.loads(out)["pid"]
    times["state"] = h.run(rt.cmd("state", cid)).wall
    times["start"] = h.run(rt.cmd("start", cid)).wall
    if sleeper:
        times["kill"] = h.run(rt.cmd("kill", cid, "KILL")).wall
    h.wait_reaped(pid)
    r = h.run(rt.cmd("delete", cid))
    if r.status != 0:
        raise SystemExit(f"{rt.name} delete failed: {r.status}")
    rt.live.discard(cid)
    times["delete"] = r.wall
    times["create+start+delete"] = times["create"] + times["start"] + times["delete"]
    return times


def live(h, runtimes, bundles, count, reps, table):
    pids = {}
    for rt in runtimes:
        for i in range(count):
            cid = f"l{os.getpid()}-{i}"
            if h.run(rt.cmd("create", "--bundle", bundles["sleep"], cid)).status != 0:
                raise SystemExit(f"{rt.name} create (live) failed")
            rt.live.add(cid)
            if h.run(rt.cmd("start", cid)).status != 0:
                raise SystemExit(f"{rt.name} start (live) failed")
        pids[rt.name] = True
    data = {"state": {}, "list": {}}
    last = f"l{os.getpid()}-{count - 1}"
    for it in range(reps):
        order = runtimes[it % len(runtimes):] + runtimes[:it % len(runtimes)]
        for rt in order:
            data["state"].setdefault(rt.name, []).append(h.run(rt.cmd("state", last)).wall)
            data["list"].setdefault(rt.name, []).append(h.run(rt.cmd("list")).wall)
    table.add(f"live {count}: state ID", "ms", data["state"])
    table.add(f"live {count}: list", "ms", data["list"])
    for rt in runtimes:
        for cid in list(rt.live):
            h.run(rt.cmd("delete", "--force", cid))
            rt.live.discard(cid)
    time.sleep(0.2)
    h.reap_orphans()
    h.reaped.clear()


def parallel(h, runtimes, bundles, count, reps, table):
    """count `run`s of /bin/true (create, start, wait, delete) started at once."""
    data = {"latency": {}, "total": {}, "failures": {}}
    for rep in range(reps):
        order = runtimes[rep % len(runtimes):] + runtimes[:rep % len(runtimes)]
        for rt in order:
            ids = [f"p{os.getpid()}-{rep}-{i}" for i in range(count)]
            t0 = time.perf_counter()
            started = [h.start(rt.cmd("run", "--bundle", bundles["nonet"], cid)) for cid in ids]
            results = [h.finish(s) for s in started]
            total = time.perf_counter() - t0
            h.reap_orphans()
            h.reaped.clear()
            for cid, r in zip(ids, results):
                if r.status != 0:  # a failed run may leave its state behind
                    h.run(rt.cmd("delete", "--force", cid))
            data["latency"].setdefault(rt.name, []).append(
                statistics.median(r.wall for r in results))
            data["total"].setdefault(rt.name, []).append(total)
            data["failures"].setdefault(rt.name, []).append(
                sum(1 for r in results if r.status != 0))
    table.add(f"par {count}: `run` median latency", "ms", data["latency"])
    table.add(f"par {count}: all done", "s", data["total"], 1.0)
    table.add(f"par {count}: failures (all reps)", "count",
              {k: [sum(v)] for k, v in data["failures"].items()}, 1.0)


def hide_unified():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC|MS_PRIVATE
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if libc.umount2(b"/sys/fs/cgroup/unified", 2) != 0:  # MNT_DETACH
        raise OSError(ctypes.get_errno(), "umount -l /sys/fs/cgroup/unified")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="measured iterations (default 15)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runtimes", default="runc", help="peers, comma-separated (runc,crun)")
    ap.add_argument("--variants", default="nonet,netns,userns")
    ap.add_argument("--minirun", default=shutil.which("minirun",
                                                      path=os.path.dirname(sys.executable))
                    or shutil.which("minirun"))
    ap.add_argument("--live", type=int, default=200, help="containers for state/list (0: skip)")
    ap.add_argument("--par", type=int, default=200, help="parallel lifecycles (0: skip)")
    ap.add_argument("--scale-reps", type=int, default=3)
    ap.add_argument("--hide-unified", action="store_true",
                    help="detach /sys/fs/cgroup/unified in a private mount ns (for crun)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if a.hide_unified:
        hide_unified()
    workdir = tempfile.mkdtemp(prefix="minirun-bench-", dir="/var/tmp")
    os.chmod(workdir, 0o755)  # the userns variant's root (uid 100000) walks through it
    h = Harness(workdir)
    variants = [v for v in a.variants.split(",") if v]
    runtimes = [Runtime("minirun", [a.minirun], workdir)]
    for name in [p for p in a.runtimes.split(",") if p]:
        if not shutil.which(name):
            print(f"# {name}: not installed, skipped")
            continue
        runtimes.append(Runtime(name, [name], workdir))
    try:
        bundles = build_bundles(workdir, variants)
        versions = []
        for rt in runtimes:
            status, out = h.output([rt.argv[0], "--version"])
            versions.append(f"{rt.name}: {out.splitlines()[0] if out else '?'}")
        load = open("/proc/loadavg").read().split()[:3]
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  kernel {os.uname().release}  "
              f"{os.cpu_count()} cpus  load {' '.join(load)}  python {sys.version.split()[0]}")
        print("# " + "; ".join(versions))
        print(f"# medians of {a.n} interleaved iterations (+{a.warmup} warm-up); "
              f"ratio = median of per-iteration minirun/peer")
        table = Table([rt.name for rt in runtimes])
        if a.n:
            single(h, runtimes, bundles, variants, a.n, a.warmup, table)
        if a.live:
            live(h, runtimes, bundles, a.live, max(5, a.n), table)
        if a.par:
            parallel(h, runtimes, bundles, a.par, a.scale_reps, table)
        print(table.render())
        if not h.helper:
            print("# no C compiler: peak RSS not measured")
    finally:
        for rt in runtimes:
            for cid in list(rt.live):
                h.run(rt.cmd("delete", "--force", cid))
        h.reap_orphans()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
